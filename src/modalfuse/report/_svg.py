"""Matplotlib figures as inline SVG: text kept as text, no XML prolog, no namespace URLs, ids made unique
per figure so several figures can share one HTML page."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["PALETTE", "figure", "to_svg"]

#: Okabe-Ito colours (distinguishable with the common colour-vision deficiencies).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
#: Matplotlib settings of every figure: text as SVG text in the page's font, plain light axes.
_RC = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
}

_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)
_NAMESPACE = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_SIZE = re.compile(r'(<svg[^>]*?)\s+width="[^"]*"\s+height="[^"]*"')
_ID = re.compile(r'\bid="([^"]+)"')
_HREF = re.compile(r'(xlink:href|href)="#([^"]+)"')
_URL = re.compile(r"url\(#([^)]+)\)")
_STYLE = re.compile(r"<style[^>]*>.*?</style>", re.S)


@contextmanager
def figure(width: float, height: float) -> Iterator[Any]:
    """A new matplotlib ``Figure`` of ``width`` x ``height`` inches under the report's style (no pyplot:
    nothing global is touched)."""
    import matplotlib
    from cycler import cycler
    from matplotlib.figure import Figure

    rc = {**_RC, "axes.prop_cycle": cycler(color=list(PALETTE))}
    with matplotlib.rc_context(rc):
        fig = Figure(figsize=(width, height), layout="constrained")
        yield fig


def to_svg(fig: Any, prefix: str, title: str) -> str:
    """``fig`` as an ``<svg>`` element for an HTML page: ids prefixed with ``prefix`` (and references to
    them), no prolog or namespace declarations, a ``<title>`` and ``role="img"`` for screen readers, and
    the size left to CSS (the ``viewBox`` keeps the aspect ratio)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": prefix}):
        fig.savefig(
            buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None}
        )
    svg = _PROLOG.sub("", buffer.getvalue(), count=1)
    svg = _NAMESPACE.sub("", svg)
    svg = _SIZE.sub(r"\1", svg, count=1)
    svg = _STYLE.sub("", svg)
    svg = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = _HREF.sub(lambda m: f'href="#{prefix}-{m.group(2)}"', svg)
    svg = _URL.sub(lambda m: f"url(#{prefix}-{m.group(1)})", svg)
    label = _escape(title)
    width = float(fig.get_size_inches()[0]) * 110  # CSS pixels: a little above the figure's own size, at most
    head = f'<svg role="img" aria-label="{label}" style="max-width:{width:.0f}px"'
    return svg.replace("<svg", head, 1).replace(">", f"><title>{label}</title>", 1)


def _escape(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
