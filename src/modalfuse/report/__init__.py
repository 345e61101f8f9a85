"""Reports of comparisons: one self-contained HTML file (inline styles and SVG figures, no script, no URL)
or Markdown, and what a result records about its data and run.

``modalfuse report RESULTS.json --out report.html`` (with robustness or alignment results beside it, when
there are any), ``modalfuse evaluate ... --report report.html``, or ``mf.compare(...).to_html(path)``.
"""

from modalfuse.report._html import render_html
from modalfuse.report._load import classify, load_results
from modalfuse.report._markdown import render_markdown
from modalfuse.report._provenance import data_summary, environment, reproducibility, table_digest
from modalfuse.report._result import ComparisonResult, write_report

__all__ = [
    "ComparisonResult",
    "classify",
    "data_summary",
    "environment",
    "load_results",
    "render_html",
    "render_markdown",
    "reproducibility",
    "table_digest",
    "write_report",
]
