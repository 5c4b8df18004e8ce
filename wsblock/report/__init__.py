"""Reports on run directories: figures, ``report.md`` and run comparisons.

Everything here reads records (through :mod:`wsblock.analysis.tidy`) and never
re-runs work.
"""

from wsblock.report.document import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
