"""The asv suite of wsblock; ``asv.conf.json`` at the repository root points here.

The parameter grid comes from a named matrix profile (``WSBLOCK_ASV_PROFILE``,
default ``quick``): see ``benchmarks/common.py`` and ``docs/asv.md``.
"""
