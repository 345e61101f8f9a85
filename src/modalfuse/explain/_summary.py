"""Global summaries of modality Shapley values over a table, and leave-one-input-out accuracy beside them."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modalfuse.explain._shapley import ShapleyValues

__all__ = ["combine_folds", "fold_explanation", "global_summary", "ranking_agrees"]


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def ranking_agrees(importance: Mapping[str, float | None], drop: Mapping[str, float | None]) -> bool | None:
    """Whether no pair of inputs is ordered one way by ``importance`` and strictly the other way by
    ``drop`` (ties in either count as agreeing); None when a value is missing."""
    names = [n for n in importance if n in drop]
    if any(importance[n] is None or drop[n] is None for n in names):
        return None
    for a, b in itertools.combinations(names, 2):
        di, dd = importance[a] - importance[b], drop[a] - drop[b]  # type: ignore[operator]
        if di * dd < 0:
            return False
    return True


def _ranked(values: Mapping[str, float | None]) -> list[str]:
    """Input names, largest value first (missing values last)."""
    return sorted(values, key=lambda n: -(values[n] if values[n] is not None else -np.inf))


def _per_input(arr: np.ndarray, inputs: Sequence[str]) -> dict[str, float | None]:
    """Column means of an (N, M) array, by input name (None without rows)."""
    return {name: _mean(arr[:, i]) for i, name in enumerate(inputs)}


def _interaction_means(sv: ShapleyValues, k: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """Mean interaction index (probability units, the class ``k`` of each row) and mean |index| per pair."""
    if sv.interactions is None or not len(sv):
        return {}, {}
    rows = np.arange(len(sv))
    mean, mean_abs = {}, {}
    for i, j in itertools.combinations(range(len(sv.inputs)), 2):
        values = sv.interactions[rows, i, j, k]
        key = f"{sv.inputs[i]}*{sv.inputs[j]}"
        mean[key], mean_abs[key] = float(values.mean()), float(np.abs(values).mean())
    return mean, mean_abs


def global_summary(sv: ShapleyValues, y: np.ndarray | None = None) -> dict[str, Any]:
    """Global modality importance over the rows of ``sv``, JSON-safe.

    Parameters
    ----------
    sv : ShapleyValues
    y : ndarray of int, shape (N,), optional
        Each row's true class as an index into ``sv.classes`` (-1 for a class the model does not know);
        without it, the true-class and accuracy entries are None.

    Returns
    -------
    dict
        ``inputs``, ``n_rows``, ``method``, ``n_coalitions``, ``efficiency_gap`` (largest
        ``|base + sum(phi) - proba|`` over the rows, see :meth:`ShapleyValues.efficiency_gap`); per input: ``present_share``,
        ``mean_abs_phi`` and ``mean_abs_phi_log_odds`` (mean |phi| toward each row's predicted class, 0
        where the row lacks the input), ``mean_phi_true`` and ``mean_phi_true_log_odds`` (mean phi toward
        the row's true class, over rows whose class the model knows), ``accuracy_without`` (accuracy with
        the input left out of every row), ``loo_drop`` (``accuracy`` minus that) and ``accuracy_alone``
        (with that input only); ``accuracy`` (every input present), ``interactions`` and
        ``mean_abs_interactions`` (per pair ``"a*b"``, toward the predicted class), ``rank_by_shapley``,
        ``rank_by_loo`` and ``ranking_agrees`` (see :func:`ranking_agrees`).
    """
    inputs = list(sv.inputs)
    pred = sv.predicted
    rows = np.arange(len(sv))
    out: dict[str, Any] = {
        "inputs": inputs,
        "n_rows": len(sv),
        "method": sv.method,
        "n_coalitions": sv.n_coalitions,
        "efficiency_gap": sv.efficiency_gap(),
        "present_share": _per_input(sv.present.astype(float), inputs),
        "mean_abs_phi": _per_input(np.abs(sv.values[rows, :, pred]), inputs),
        "mean_abs_phi_log_odds": _per_input(np.abs(sv.values_log_odds[rows, :, pred]), inputs),
    }
    known = np.zeros(len(sv), bool) if y is None else np.asarray(y) >= 0
    truth = np.where(known, np.asarray(y) if y is not None else 0, 0).astype(np.int64)
    r, t = rows[known], truth[known]
    out["mean_phi_true"] = _per_input(sv.values[r, :, t], inputs)
    out["mean_phi_true_log_odds"] = _per_input(sv.values_log_odds[r, :, t], inputs)
    if y is None:
        out.update(
            accuracy=None, accuracy_without=dict.fromkeys(inputs), accuracy_alone=dict.fromkeys(inputs)
        )
    else:
        correct = truth[None, :] == np.concatenate([sv.without, sv.alone], axis=1).argmax(2).T  # (2M, N)
        full = _mean((pred == truth) & known)
        out["accuracy"] = full
        m = len(inputs)
        out["accuracy_without"] = {n: _mean(correct[i] & known) for i, n in enumerate(inputs)}
        out["accuracy_alone"] = {n: _mean(correct[m + i] & known) for i, n in enumerate(inputs)}
    out["loo_drop"] = {
        n: None if out["accuracy"] is None or v is None else out["accuracy"] - v
        for n, v in out["accuracy_without"].items()
    }
    out["interactions"], out["mean_abs_interactions"] = _interaction_means(sv, pred)
    out["rank_by_shapley"] = _ranked(out["mean_abs_phi"])
    out["rank_by_loo"] = _ranked(out["loo_drop"])
    out["ranking_agrees"] = ranking_agrees(out["mean_abs_phi"], out["loo_drop"])
    return out


#: The per-input and per-pair entries of :func:`global_summary` that :func:`combine_folds` summarises.
_KEYED = (
    "present_share",
    "mean_abs_phi",
    "mean_abs_phi_log_odds",
    "mean_phi_true",
    "mean_phi_true_log_odds",
    "accuracy_without",
    "loo_drop",
    "accuracy_alone",
    "interactions",
    "mean_abs_interactions",
)


def _stats(values: Sequence[float | None]) -> dict[str, Any]:
    usable = [float(v) for v in values if v is not None]
    return {
        "mean": float(np.mean(usable)) if usable else None,
        "std": float(np.std(usable)) if usable else None,
        "folds": [None if v is None else float(v) for v in values],
    }


def combine_folds(folds: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Per-fold :func:`global_summary` results (None for a fold without one) summarised: for every per-input
    (and per-pair) entry, ``{name: {"mean", "std", "folds"}}`` over the folds; ``accuracy`` likewise;
    ``ranking_agrees_folds`` (each fold's :func:`ranking_agrees`), ``ranking_agrees_all`` (True when every
    fold agrees), ``rank_by_shapley`` and ``rank_by_loo`` of the means, ``efficiency_gap`` (the largest
    of the folds') and ``n_rows`` (rows explained, over the folds)."""
    given = [f or {} for f in folds]
    out: dict[str, Any] = {
        "inputs": list(dict.fromkeys(n for f in given for n in f.get("inputs", []))),
        "n_folds": len(folds),
    }
    for key in _KEYED:
        out[key] = _keyed_stats([f.get(key) or {} for f in given])
    out["accuracy"] = _stats([f.get("accuracy") for f in given])
    agrees = [f.get("ranking_agrees") for f in given]
    out["ranking_agrees_folds"] = agrees
    out["ranking_agrees_all"] = bool(agrees) and all(a is True for a in agrees)
    out["rank_by_shapley"] = _ranked({k: v["mean"] for k, v in out["mean_abs_phi"].items()})
    out["rank_by_loo"] = _ranked({k: v["mean"] for k, v in out["loo_drop"].items()})
    out.update(_totals(given))
    return out


def _totals(given: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The folds' methods, largest efficiency gap and rows explained."""
    gaps = [f["efficiency_gap"] for f in given if f.get("efficiency_gap") is not None]
    return {
        "methods": sorted({str(f.get("method")) for f in given if f}),
        "efficiency_gap": max(gaps) if gaps else None,
        "n_rows": sum(int(f.get("n_rows") or 0) for f in given),
    }


def _keyed_stats(per_fold: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{name: _stats(its value in every fold)}`` for every name any fold has."""
    keys = dict.fromkeys(k for entry in per_fold for k in entry)
    return {k: _stats([entry.get(k) for entry in per_fold]) for k in keys}


def fold_explanation(fitted: Any, test_table: Any) -> dict[str, Any]:
    """:func:`global_summary` of a fitted classifier's Shapley values on a fold's test rows (their labels
    are the truth; a label the classifier never saw counts as wrong and has no true-class value), with the
    seconds the values took (``seconds``)."""
    import time

    start = time.perf_counter()
    sv = fitted.shapley_values(test_table)
    position = {c: i for i, c in enumerate(np.asarray(fitted.classes_).tolist())}
    y = (
        None
        if test_table.y is None
        else np.array([position.get(v, -1) for v in np.asarray(test_table.y).tolist()])
    )
    out = global_summary(sv, y)
    out["seconds"] = time.perf_counter() - start
    return out
