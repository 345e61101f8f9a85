"""Reading the result files a report is made from, with one-line errors for files that are not results."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modalfuse._errors import ModalfuseError

__all__ = ["classify", "load_results"]

#: What a report is made of: ``comparison`` (a compare result), ``robustness``, ``alignment``.
KINDS = ("comparison", "robustness", "alignment")


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModalfuseError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ModalfuseError(f"{path}: is a folder; give a results file (JSON)") from None
    except UnicodeDecodeError:
        raise ModalfuseError(f"{path}: not a text file; give a results file (JSON)") from None
    except OSError as exc:
        raise ModalfuseError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not text.strip():
        raise ModalfuseError(f"{path}: the file is empty; give a results file (JSON)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        end = " (the file ends there: is it truncated?)" if exc.pos >= len(text.rstrip()) - 1 else ""
        raise ModalfuseError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}{end}"
        ) from None


def _is_alignment_list(doc: Any) -> bool:
    return (
        isinstance(doc, list)
        and bool(doc)
        and all(isinstance(e, Mapping) for e in doc)
        and any("offset_ms" in e or "abstained" in e for e in doc)
    )


def classify(doc: Any) -> dict[str, Any]:
    """The report parts a decoded JSON document holds: ``{"comparison": ..., "robustness": ...,
    "alignment": ...}`` (only those found). A comparison is an object with ``strategies``; robustness
    results an object with ``robustness``; alignment results a list of per-recording entries (with
    ``offset_ms`` or ``abstained``) or an object holding them under ``alignment``. A comparison may carry
    the other two under those keys; a benchmark's file (``benchmarks/avdigits.py``) holds its comparison
    under ``modalfuse``."""
    found: dict[str, Any] = {}
    if _is_alignment_list(doc):
        return {"alignment": doc}
    if not isinstance(doc, Mapping):
        return found
    if isinstance(doc.get("strategies"), Mapping):
        found["comparison"] = doc
    elif isinstance(doc.get("modalfuse"), Mapping) and isinstance(
        doc["modalfuse"].get("strategies"), Mapping
    ):
        found["comparison"] = doc[
            "modalfuse"
        ]  # a benchmark's file: modalfuse's comparison beside a reference
    if isinstance(doc.get("robustness"), Mapping):
        found["robustness"] = doc
    alignment = doc.get("alignment")
    if _is_alignment_list(alignment) or (
        isinstance(alignment, Mapping)
        and _is_alignment_list(alignment.get("recordings", alignment.get("entries")))
    ):
        found["alignment"] = doc
    return found


def _describe(doc: Any) -> str:
    if isinstance(doc, Mapping):
        keys = list(doc)[:8]
        return f"its top-level keys are {keys}" if keys else "it is an empty object"
    return f"it holds a JSON {type(doc).__name__}"


def load_results(sources: Sequence[str | os.PathLike | Mapping[str, Any]]) -> dict[str, Any]:
    """Read result files (or already decoded results) into what :func:`render_html` reports.

    Parameters
    ----------
    sources : sequence of paths or dicts
        Comparison results (``modalfuse evaluate --json``), robustness results and alignment results,
        in any order; each is recognised by its content.

    Returns
    -------
    dict
        ``comparison``, ``robustness`` and ``alignment`` (None where not given), ``sources`` (names) and
        ``notes`` (for the page).

    Raises
    ------
    ModalfuseError
        One line naming the file: unreadable, empty, not JSON (truncated), not a modalfuse result, or a
        second file of a kind already given.
    """
    if not sources:
        raise ModalfuseError("no results to report: give a results file (modalfuse evaluate --json)")
    out: dict[str, Any] = {kind: None for kind in KINDS}
    out["sources"], out["notes"] = [], []
    origin: dict[str, str] = {}
    for source in sources:
        if isinstance(source, Mapping):
            name, doc = "results", source
        else:
            name, doc = str(source), _read_json(Path(source))
        found = classify(doc)
        if not found:
            raise ModalfuseError(
                f"{name}: not a modalfuse result: expected comparison results (modalfuse evaluate --json), "
                f"robustness results or alignment results; {_describe(doc)}"
            )
        for kind, value in found.items():
            if out[kind] is not None and origin.get(kind) != name:
                raise ModalfuseError(f"{name}: holds {kind} results, but {origin[kind]} gave them already")
            out[kind] = value if kind != "comparison" else dict(value)
            origin[kind] = name
        out["sources"].append(Path(name).name if not isinstance(source, Mapping) else name)
    if out["comparison"] is None:
        out["notes"].append(
            "No comparison results were given: the sections about the data, the strategies and the "
            "explanations are empty."
        )
    return out
