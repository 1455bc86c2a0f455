"""Reports: figures and the HTML report of a fit (``report.html`` with ``figures/``), built from results alone."""

from .fit import render_from_dir, write_report

__all__ = ["render_from_dir", "write_report"]
