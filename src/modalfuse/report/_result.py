"""The result of :func:`modalfuse.compare`: a plain ``dict`` (its JSON shape unchanged) that also writes
itself as a report."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

__all__ = ["ComparisonResult", "write_report", "write_text_atomic"]


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (a temporary file beside it, then ``os.replace``),
    with the permissions the user's umask gives a new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_report(sources: Any, path: str | os.PathLike) -> Path:
    """Write the HTML report of ``sources`` (result files or dicts; see :func:`load_results`) to ``path``,
    atomically. Returns the path."""
    from modalfuse.report._html import render_html
    from modalfuse.report._load import load_results

    items = [sources] if isinstance(sources, dict | str | os.PathLike) else list(sources)
    return write_text_atomic(path, render_html(load_results(items)))


class ComparisonResult(dict):
    """A comparison's results: a ``dict`` (``json.dumps`` gives the same JSON as before) with
    :meth:`to_html` and :meth:`to_markdown`."""

    def to_html(self, path: str | os.PathLike) -> Path:
        """Write the self-contained HTML report (styles and figures inline, no script, no URL) to
        ``path``; returns the path."""
        return write_report(dict(self), path)

    def to_markdown(self) -> str:
        """The recommendation and the tables of the report, as Markdown."""
        from modalfuse.report._markdown import render_markdown

        return render_markdown(self)
