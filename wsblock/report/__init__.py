"""Reports on run directories: figures, ``report.md`` and run comparisons.

Everything here draws what :mod:`wsblock.analysis` computed from the records
(the tidy table, the aggregated cells, the survival boundaries, changes and the
recommendation) and never re-runs work.
"""

from typing import Any

__all__ = ["ReportResult", "build_report"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the command line imports this package for its
    # subcommands, and every cell of a matrix is a command of its own that
    # must not pay for the report's plotting and statistics libraries.
    if name in __all__:
        from wsblock.report import document

        return getattr(document, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
