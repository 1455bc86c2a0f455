"""Reports: figures and the HTML report of a fit (``report.html`` with ``figures/``), built from results alone."""

from .fit import render_from_dir, write_report
from .html import check_report_assets

__all__ = ["check_report_assets", "render_from_dir", "write_report"]
