"""``python -m wsblock`` is the ``wsblock`` command."""

from wsblock.cli import main

raise SystemExit(main())
