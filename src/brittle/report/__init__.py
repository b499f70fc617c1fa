"""Reports a person reads (HTML with figures) and a machine reads (JSON)."""

from .content import build_report, write_json
from .html import ReportPaths, render_html, write_report

__all__ = ["ReportPaths", "build_report", "render_html", "write_json", "write_report"]
