"""The ``wsblock`` commands, one module each.

Every command module has ``add_parser(subparsers)``, which adds the command
(and its sub-commands) to the ``wsblock`` parser, and ``run(args) -> int``,
which does the command's work and returns its exit code (bad input raises
:class:`wsblock.errors.UsageError`). :mod:`wsblock.cli` lists them, builds the
parser and dispatches; :mod:`~wsblock.commands.options` holds the options and
checks several commands share. A command module uses no other command
module's helpers.
"""
