"""What a report shows, read from the result JSON: plain rows and numbers for the HTML and Markdown writers.

Every reader here accepts the JSON as it is and returns ``None`` (or an empty list) for a part that is
absent; :func:`part` turns a part that is there but malformed into a note instead of an exception.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "Note",
    "alignment_entries",
    "best_explained",
    "fold_labels",
    "is_number",
    "mean_interval",
    "part",
    "recommended",
    "robustness_curves",
    "strategy_rows",
]

#: Bootstrap resamples of a strategy's accuracy interval over its folds.
N_BOOT = 10000


class Note(Exception):
    """A part of the report that is left out, with the reason shown in its place."""


def part(name: str, build: Callable[[], Any]) -> tuple[Any, str | None]:
    """``(build(), None)``, or ``(None, note)`` when the part is missing (:class:`Note`) or malformed (the
    JSON has it in a shape this version cannot read: the note names it, never a traceback)."""
    try:
        return build(), None
    except Note as note:
        return None, str(note)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as exc:
        return (
            None,
            f"{name}: left out, the results hold it in a form this report cannot read ({type(exc).__name__}: {exc})",
        )


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def mean_interval(folds: Sequence[Any], *, n_boot: int = N_BOOT, seed: int = 0) -> list[float] | None:
    """95% percentile bootstrap interval of the mean of ``folds`` (resampled with replacement); None with
    fewer than 2 usable values."""
    values = np.asarray([float(v) for v in folds if is_number(v)])
    if len(values) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def recommended(result: Mapping[str, Any]) -> str | None:
    """The recommended strategy, else the best one, else None (only successful strategies)."""
    strategies = result.get("strategies") or {}
    for name in (
        (result.get("recommendation") or {}).get("strategy"),
        (result.get("best") or {}).get("strategy"),
    ):
        if name and "error" not in (strategies.get(name) or {"error": 1}):
            return name
    return None


def _mean(entry: Mapping[str, Any], metric: str) -> float | None:
    value = (entry.get(metric) or {}).get("mean") if isinstance(entry.get(metric), Mapping) else None
    return float(value) if is_number(value) else None


def strategy_rows(result: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Successful strategies, best mean accuracy first, as rows (name, role marks, accuracy mean / std /
    interval / folds, macro-F1, fit and predict seconds, parameters); and the failed ones (name, error,
    fold)."""
    strategies = result.get("strategies")
    if not isinstance(strategies, Mapping) or not strategies:
        raise Note("the results hold no strategy")
    best = result.get("best") or {}
    rec = recommended(result)
    rows, failed = [], []
    for name, entry in strategies.items():
        if not isinstance(entry, Mapping):
            raise TypeError(f"strategy {name!r} is not an object")
        if "error" in entry:
            failed.append({"name": name, "error": str(entry["error"]), "fold": entry.get("fold")})
            continue
        acc = entry.get("accuracy") or {}
        cost = entry.get("fit_cost_seconds", entry.get("fit_seconds"))
        rows.append(
            {
                "name": name,
                "recommended": name == rec,
                "best_unimodal": name == best.get("unimodal"),
                "baseline": name.startswith("unimodal:") or name == "linear",
                "accuracy": _mean(entry, "accuracy"),
                "accuracy_std": acc.get("std") if is_number(acc.get("std")) else None,
                "folds": list(acc.get("folds") or []),
                "interval": mean_interval(acc.get("folds") or []),
                "f1_macro": _mean(entry, "f1_macro"),
                "fit_seconds": cost if is_number(cost) else None,
                "predict_seconds": entry.get("predict_seconds")
                if is_number(entry.get("predict_seconds"))
                else None,
                "n_parameters": entry.get("n_parameters") if is_number(entry.get("n_parameters")) else None,
            }
        )
    rows.sort(key=lambda r: -(r["accuracy"] if r["accuracy"] is not None else -math.inf))
    return rows, failed


def fold_labels(result: Mapping[str, Any]) -> list[str]:
    """A label per fold: its held-out groups (``fold 2: bob, eve``; the group alone for one group per
    fold), else ``fold i``."""
    cv = result.get("cv") or {}
    n = cv.get("n_folds") or max((len(r["folds"]) for r in strategy_rows(result)[0]), default=0)
    held = cv.get("held_out_groups")
    if isinstance(held, list) and len(held) == n and all(isinstance(h, list) for h in held):
        if all(len(h) == 1 for h in held):
            return [str(h[0]) for h in held]
        return [
            f"fold {i}: " + ", ".join(map(str, h[:3])) + (" ..." if len(h) > 3 else "")
            for i, h in enumerate(held)
        ]
    return [f"fold {i}" for i in range(int(n))]


def best_explained(result: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """The strategy whose explanation the report shows: the recommended one if explained, else the best
    explained strategy (by mean accuracy); None when no strategy has an explanation."""
    strategies = result.get("strategies") or {}
    explained = {
        n: e
        for n, e in strategies.items()
        if isinstance(e, Mapping) and isinstance(e.get("explanation"), Mapping)
    }
    if not explained:
        return None
    rec = recommended(result)
    if rec in explained:
        return rec, explained[rec]["explanation"]
    name = max(explained, key=lambda n: _mean(explained[n], "accuracy") or -math.inf)
    return name, explained[name]["explanation"]


def robustness_curves(
    doc: Mapping[str, Any],
) -> dict[str, dict[str, list[tuple[str, float | None, float | None]]]]:
    """``{corruption: {strategy: [(level, accuracy mean, std), ...]}}`` from a robustness result
    (``{"robustness": {STRATEGY: {CORRUPTION: {LEVEL: {"accuracy": {"mean", "std", "folds"}}}}}}``)."""
    section = doc.get("robustness")
    if not isinstance(section, Mapping) or not section:
        raise Note("no robustness results")
    curves: dict[str, dict[str, list[tuple[str, float | None, float | None]]]] = {}
    for strategy, by_corruption in section.items():
        if not isinstance(by_corruption, Mapping):
            continue
        for corruption, levels in by_corruption.items():
            if not isinstance(levels, Mapping):
                continue
            points = []
            for level, metrics in levels.items():
                acc = (metrics or {}).get("accuracy") if isinstance(metrics, Mapping) else None
                acc = acc if isinstance(acc, Mapping) else {}
                mean, std = acc.get("mean"), acc.get("std")
                points.append(
                    (str(level), mean if is_number(mean) else None, std if is_number(std) else None)
                )
            curves.setdefault(str(corruption), {})[str(strategy)] = points
    if not curves:
        raise Note("the robustness results hold no curve")
    return curves


_ALIGNMENT_FIELDS = ("offset_ms", "drift_ppm", "uncertainty_ms", "abstained")


def alignment_entries(doc: Any) -> list[dict[str, Any]]:
    """The per-recording alignment entries (``recording``, ``offset_ms``, ``drift_ppm``, ``uncertainty_ms``,
    ``abstained``) of an alignment result: a list of them, or an object holding one under ``alignment``
    (or ``alignment.recordings``)."""
    if isinstance(doc, Mapping):
        doc = doc.get("alignment")
        if isinstance(doc, Mapping):
            doc = doc.get("recordings", doc.get("entries"))
    if not isinstance(doc, list) or not doc:
        raise Note("no alignment results")
    entries = [e for e in doc if isinstance(e, Mapping) and any(k in e for k in _ALIGNMENT_FIELDS)]
    if not entries:
        raise Note(
            "the alignment results hold no entry with offset_ms, drift_ppm, uncertainty_ms or abstained"
        )
    return [
        {
            "recording": str(e.get("recording", e.get("name", i))),
            **{k: e.get(k) for k in _ALIGNMENT_FIELDS},
        }
        for i, e in enumerate(entries)
    ]
