"""Cross-validation of one estimator and side-by-side comparison of many over the same folds.

The objects evaluated are duck-typed:

- a *table* has ``len(table)``, ``table.y`` (labels), ``table.groups`` (array or ``None``),
  ``table.group_column`` (str or ``None``), ``table.name`` and ``table.take(indices)`` (row subset);
- an *estimator* follows scikit-learn: it is copied with :func:`sklearn.base.clone`, ``fit(table)``
  returns ``self`` and reads labels and groups from the table, ``predict_proba(table)`` returns an
  ``(n, n_classes)`` array whose columns follow ``classes_``.

Everything fitted is fitted on the training rows of a fold only: the estimator never sees a test row
before it predicts it.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats
from sklearn.base import clone

from modalfuse._backend import Backend, resolve_backend, task_memory
from modalfuse._cache import Cache, using_cache
from modalfuse._errors import ModalfuseError
from modalfuse.evaluate._checkpoint import StepLog, compare_settings, write_json_atomic
from modalfuse.evaluate._metrics import BINARY_METRICS, SCALAR_METRICS, classification_metrics, summarize
from modalfuse.evaluate._split import CVSpec, _cv_kind, encode_values, make_splits

__all__ = ["compare", "cross_validate", "format_table", "paired_difference", "recommend"]

logger = logging.getLogger(__name__)

#: Prefix that marks a single-modality baseline among the strategies of :func:`compare`.
UNIMODAL_PREFIX = "unimodal:"

#: Name of the tuned linear baseline among the strategies of :func:`compare`.
LINEAR_BASELINE = "linear"

#: Bootstrap resamples of the paired comparisons of :func:`compare`.
N_BOOT = 10000

#: How :func:`compare` compares two strategies (also written into its result).
PAIRED_METHOD = (
    f"paired percentile bootstrap over folds ({N_BOOT} resamples of the folds, with replacement) of the "
    "mean per-fold accuracy difference; 95% confidence interval"
)

#: The rule of :func:`recommend`, in words.
RECOMMENDATION_RULE = (
    "Take the strategy with the best mean accuracy (an exact tie goes to the cheaper fit). The baselines are "
    "the single-modality strategies and the tuned linear baseline (linear). If the best strategy is a fusion "
    "and the 95% paired bootstrap CI of its per-fold accuracy difference to the best baseline includes 0, no "
    "confident gain over that baseline is shown: say so, name the baseline, and recommend it when its fit is "
    "cheaper. Fit cost is the total fit time over the folds (fit_cost_seconds where present: it counts "
    "per-input models reused from another strategy's fit)."
)

Progress = Callable[..., Any]


def _emit(progress: Progress | None, event: str, **info: Any) -> None:
    """Call the progress callback, if any."""
    if progress is not None:
        progress(event, **info)


def _jsonable(value: Any) -> Any:
    """Turn numpy scalars (and arrays of them) into plain Python values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _table_classes(table: Any) -> np.ndarray:
    """The sorted distinct labels of ``table``."""
    return encode_values(np.asarray(table.y).reshape(-1))[0]


def _table_groups(table: Any) -> np.ndarray | None:
    groups = getattr(table, "groups", None)
    return None if groups is None else np.asarray(groups).reshape(-1)


def _metric_names(n_classes: int) -> tuple[str, ...]:
    return SCALAR_METRICS + (BINARY_METRICS if n_classes == 2 else ())


def _aligned_proba(estimator: Any, proba: Any, classes: np.ndarray, n_rows: int) -> np.ndarray:
    """Reorder ``proba`` columns from ``estimator.classes_`` to ``classes``.

    A training fold can lack a class; the estimator then has fewer columns, and the missing classes
    get probability 0.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[0] != n_rows:
        raise ModalfuseError(f"predict_proba returned shape {proba.shape}, expected ({n_rows}, n_classes)")
    fitted = getattr(estimator, "classes_", None)
    if fitted is None:
        if proba.shape[1] != len(classes):
            raise ModalfuseError(
                f"predict_proba returned {proba.shape[1]} columns for {len(classes)} classes and the "
                "estimator has no classes_ to say which is which"
            )
        return proba
    fitted_list = np.asarray(fitted).tolist()
    if len(fitted_list) != proba.shape[1]:
        raise ModalfuseError(
            f"predict_proba returned {proba.shape[1]} columns but classes_ has {len(fitted_list)} entries"
        )
    position = {c: i for i, c in enumerate(classes.tolist())}
    out = np.zeros((n_rows, len(classes)), dtype=np.float64)
    for column, label in enumerate(fitted_list):
        if label not in position:
            raise ModalfuseError(f"the estimator predicts class {label!r}, which is not in the table's label")
        out[:, position[label]] = proba[:, column]
    return out


def _fit_predict(
    estimator: Any, table: Any, train: np.ndarray, test: np.ndarray, classes: np.ndarray
) -> tuple[np.ndarray, float, float, Any]:
    """Fit a clone of ``estimator`` on ``train`` rows and predict ``test`` rows.

    Returns
    -------
    proba : ndarray of shape (len(test), n_classes)
    fit_seconds, predict_seconds : float
    fitted : the fitted clone
    """
    est = clone(estimator)
    train_table = table.take(train)
    test_table = table.take(test)
    start = time.perf_counter()
    fitted = est.fit(train_table)
    fit_seconds = time.perf_counter() - start
    est = fitted if fitted is not None else est
    start = time.perf_counter()
    raw = est.predict_proba(test_table)
    predict_seconds = time.perf_counter() - start
    return _aligned_proba(est, raw, classes, len(test)), fit_seconds, predict_seconds, est


def _n_parameters(estimator: Any) -> int | None:
    """The fitted estimator's ``n_parameters_``, or ``None`` when it has none (or it cannot be read)."""
    try:
        value = getattr(estimator, "n_parameters_", None)
    except Exception:  # a property that raises, e.g. on an estimator it does not apply to
        return None
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        return None
    return int(value)


def _reused_fit_seconds(estimator: Any) -> float:
    """Training seconds the fitted estimator saved by reusing models another fit trained (a shared cache).

    Read from the estimator's public ``reused_fit_seconds_``; 0 without.
    """
    value = getattr(estimator, "reused_fit_seconds_", None)
    if isinstance(value, int | float | np.floating) and math.isfinite(float(value)) and value > 0:
        return float(value)
    return 0.0


def _sum_matrices(matrices: Sequence[list[list[int]]], n_classes: int) -> list[list[int]]:
    total = np.zeros((n_classes, n_classes), dtype=np.int64)
    for matrix in matrices:
        total += np.asarray(matrix, dtype=np.int64)
    return total.tolist()


def _cv_info(
    cv: CVSpec,
    seed: int,
    table: Any,
    groups: np.ndarray | None,
    splits: list[tuple[np.ndarray, np.ndarray]],
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "kind": _cv_kind(cv, groups),
        "n_folds": len(splits),
        "seed": seed,
        "groups": getattr(table, "group_column", None),
        "fold_sizes": [len(test) for _, test in splits],
    }
    if groups is not None:
        info["held_out_groups"] = [
            [_jsonable(g) for g in encode_values(groups[test])[0]] for _, test in splits
        ]
    return info


def _cv_fold(shared: tuple[Any, Any, list, np.ndarray], fold: int) -> tuple[np.ndarray, float, float]:
    """One fold of :func:`cross_validate`: the test rows' probabilities, fit and predict seconds.

    In a parallel worker (see :class:`~modalfuse.Backend`) the fold gets a cache of its own.
    """
    estimator, table, splits, classes = shared
    train, test = splits[fold]
    with _fold_cache():
        proba, fit_seconds, predict_seconds, _ = _fit_predict(estimator, table, train, test, classes)
    return proba, fit_seconds, predict_seconds


def _fold_cache() -> Any:
    """A fresh cache inside a backend's worker; the caller's (``contextlib.nullcontext``) here."""
    import contextlib

    from modalfuse._backend import in_worker

    return using_cache(Cache()) if in_worker() else contextlib.nullcontext()


def cross_validate(
    estimator: Any,
    table: Any,
    *,
    cv: CVSpec = 5,
    seed: int = 0,
    return_predictions: bool = False,
    progress: Progress | None = None,
    backend: Backend | str | None = None,
) -> dict[str, Any]:
    """Cross-validate one estimator on a multimodal table.

    Parameters
    ----------
    estimator : estimator
        Unfitted scikit-learn style estimator; a fresh :func:`~sklearn.base.clone` is fitted per fold.
    table : table
        Rows to evaluate; labels from ``table.y`` and groups from ``table.groups``.
    cv : int, str or splitter, default=5
        Fold specification, see :func:`~modalfuse.evaluate.make_splits`.
    seed : int, default=0
        Seed of the fold shuffling.
    return_predictions : bool, default=False
        Also return the out-of-fold predictions.
    progress : callable, optional
        Called as ``progress(event, **info)``: ``"start"`` with ``total`` (number of folds),
        ``"step"`` after each fold with ``fold``, ``fit_seconds`` and ``accuracy`` (in the order folds
        finish), ``"end"`` with ``wall_seconds``.
    backend : Backend or str, optional
        Where the folds run (:class:`~modalfuse.Backend`: ``"serial"``, ``"processes"``, ``"ray"``); each
        parallel fold uses a cache of its own. The same seed gives the same numbers on every backend.

    Returns
    -------
    dict
        ``metrics`` (metric name → :func:`~modalfuse.evaluate.summarize` dict, for every scalar metric),
        ``confusion_matrix`` (summed over folds, rows true, columns predicted, in ``classes`` order),
        ``fit_seconds`` and ``predict_seconds`` (summaries), ``n_folds``, ``classes``, ``fold_sizes``
        (test rows per fold), ``cv`` (the split description, as in :func:`compare`) and, with
        ``return_predictions``, ``predictions``: a dict of ``index`` (row indices, shape (m,)),
        ``fold`` (shape (m,)) and ``proba`` (shape (m, n_classes)) numpy arrays in fold order.

    Raises
    ------
    SchemaError
        When the folds cannot be made (see :func:`~modalfuse.evaluate.make_splits`).
    Exception
        Whatever the estimator raises; use :func:`compare` to isolate failures.
    """
    wall_start = time.perf_counter()
    y = np.asarray(table.y).reshape(-1)
    groups = _table_groups(table)
    splits = make_splits(y, groups, cv=cv, seed=seed)
    classes = _table_classes(table)
    names = _metric_names(len(classes))
    _emit(progress, "start", total=len(splits))

    scores: dict[int, dict[str, Any]] = {}

    def report(fold: int, out: tuple[np.ndarray, float, float]) -> None:
        scores[fold] = classification_metrics(y[splits[fold][1]], out[0], classes)
        _emit(progress, "step", fold=fold, fit_seconds=out[1], accuracy=scores[fold]["accuracy"])

    outs = resolve_backend(backend).map(
        _cv_fold,
        list(range(len(splits))),
        shared=(estimator, table, splits, classes),
        labels=[f"fold {fold}" for fold in range(len(splits))],
        on_result=report,
        memory=task_memory(table),
    )
    per_fold = [scores[fold] for fold in range(len(splits))]
    fit_times = [out[1] for out in outs]
    predict_times = [out[2] for out in outs]
    result: dict[str, Any] = {
        "metrics": {name: summarize([m[name] for m in per_fold]) for name in names},
        "confusion_matrix": _sum_matrices([m["confusion_matrix"] for m in per_fold], len(classes)),
        "fit_seconds": summarize(fit_times),
        "predict_seconds": summarize(predict_times),
        "n_folds": len(splits),
        "classes": [_jsonable(c) for c in classes],
        "fold_sizes": [len(test) for _, test in splits],
        "cv": _cv_info(cv, seed, table, groups, splits),
    }
    if return_predictions:
        result["predictions"] = {
            "index": np.concatenate([test for _, test in splits]),
            "fold": np.concatenate(
                [np.full(len(test), i, dtype=np.int64) for i, (_, test) in enumerate(splits)]
            ),
            "proba": np.concatenate([out[0] for out in outs], axis=0),
        }
    _emit(progress, "end", wall_seconds=time.perf_counter() - wall_start)
    return result


def _usable_pairs(a_folds: Sequence[float | None], b_folds: Sequence[float | None]) -> np.ndarray:
    """Per-fold differences ``a - b`` over the folds where both are defined and finite."""
    if len(a_folds) != len(b_folds):
        raise ValueError(f"a_folds has {len(a_folds)} values but b_folds has {len(b_folds)}")
    diffs = [
        float(a) - float(b)
        for a, b in zip(a_folds, b_folds, strict=True)
        if a is not None and b is not None and math.isfinite(float(a)) and math.isfinite(float(b))
    ]
    return np.asarray(diffs, dtype=np.float64)


def _bootstrap_ci(diffs: np.ndarray, n_boot: int, seed: int) -> list[float]:
    """Percentile bootstrap 95% interval of the mean of ``diffs`` (folds resampled with replacement)."""
    n = len(diffs)
    rng = np.random.default_rng(seed)
    boot = diffs[rng.integers(0, n, size=(max(int(n_boot), 1), n))].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return [float(lo), float(hi)]


def _wilcoxon_p(diffs: np.ndarray) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value; ``None`` under 5 folds, 1.0 when every difference is 0."""
    if len(diffs) < 5:
        return None
    if np.all(diffs == 0):
        return 1.0
    try:
        p = float(stats.wilcoxon(diffs).pvalue)
    except ValueError:
        return None
    return p if math.isfinite(p) else None


def paired_difference(
    a_folds: Sequence[float | None],
    b_folds: Sequence[float | None],
    *,
    n_boot: int = 10000,
    seed: int = 0,
) -> dict[str, Any]:
    """Compare two strategies scored on the same folds.

    Parameters
    ----------
    a_folds, b_folds : sequence of float or None
        Per-fold scores (higher is better) of strategies ``a`` and ``b``, fold ``i`` of both being the
        same split. Folds where either is ``None`` or NaN are dropped.
    n_boot : int, default=10000
        Bootstrap resamples of the folds.
    seed : int, default=0
        Seed of the bootstrap.

    Returns
    -------
    dict
        ``mean_diff`` (mean of ``a - b`` per fold), ``ci95`` (``[lo, hi]``, percentile bootstrap
        interval of that mean, resampling folds with replacement), ``method``, ``n`` (folds used),
        ``wins`` (number of folds where ``a > b``), ``win_rate`` (their fraction) and ``p_value``
        (two-sided Wilcoxon signed-rank test, ``None`` with fewer than 5 folds; ``1.0`` when every
        difference is zero). With no usable fold every number is ``None``.
    """
    diffs = _usable_pairs(a_folds, b_folds)
    result: dict[str, Any] = {"method": "paired bootstrap over folds", "n": len(diffs)}
    if not len(diffs):
        result.update(mean_diff=None, ci95=[None, None], wins=0, win_rate=None, p_value=None)
        return result
    wins = int(np.sum(diffs > 0))
    result.update(
        mean_diff=float(diffs.mean()),
        ci95=_bootstrap_ci(diffs, n_boot, seed),
        wins=wins,
        win_rate=wins / len(diffs),
        p_value=_wilcoxon_p(diffs),
    )
    return result


def is_baseline(name: str) -> bool:
    """Whether ``name`` is a baseline of :func:`compare`: a single-modality one or the tuned linear one."""
    return name.startswith(UNIMODAL_PREFIX) or name == LINEAR_BASELINE


def _baseline_phrase(name: str) -> str:
    """How a recommendation names the baseline ``name``."""
    return "the tuned linear baseline" if name == LINEAR_BASELINE else "the best single modality"


def _cost(entry: Mapping[str, Any]) -> float | None:
    """Total fit cost of a strategy: ``fit_cost_seconds`` when present, else ``fit_seconds``."""
    for key in ("fit_cost_seconds", "fit_seconds"):
        value = entry.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def _seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "<0.01 s" if 0 < value < 0.01 else f"{value:.3g} s"


def _score(entry: Mapping[str, Any]) -> str:
    acc = entry["accuracy"]
    return f"{acc['mean']:.3f} ± {acc.get('std') or 0.0:.3f}"


def _ci(diff: Mapping[str, Any]) -> str:
    lo, hi = diff["ci95"]
    if diff.get("mean_diff") is None or lo is None or hi is None:
        return "no paired folds"
    return f"{diff['mean_diff']:+.3f}, 95% CI {lo:+.3f} to {hi:+.3f}"


def _includes_zero(diff: Mapping[str, Any]) -> bool:
    """Whether the 95% CI of a paired difference includes 0 (true when it could not be computed)."""
    lo, hi = diff["ci95"]
    return lo is None or hi is None or lo <= 0.0 <= hi


def _completed(strategies: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The strategies that completed every fold (no ``error``, a mean accuracy)."""
    return [
        name
        for name, entry in strategies.items()
        if "error" not in entry and (entry.get("accuracy") or {}).get("mean") is not None
    ]


def _ranked(strategies: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The completed strategies, best mean accuracy first; ties to the cheaper fit, then the first listed."""
    ok = _completed(strategies)
    order = {name: i for i, name in enumerate(ok)}

    def key(name: str) -> tuple[float, float, int]:
        cost = _cost(strategies[name])
        return (-float(strategies[name]["accuracy"]["mean"]), math.inf if cost is None else cost, order[name])

    return sorted(ok, key=key)


class _Ranking:
    """The completed strategies of a comparison ranked for :func:`recommend`, and their paired differences."""

    def __init__(self, strategies: Mapping[str, Mapping[str, Any]], seed: int, n_boot: int) -> None:
        self.strategies = strategies
        self.seed, self.n_boot = seed, n_boot
        self.ranked = _ranked(strategies)
        self.top = self.ranked[0] if self.ranked else None
        self.runner = self.ranked[1] if len(self.ranked) > 1 else None
        self.best_unimodal = next((n for n in self.ranked if n.startswith(UNIMODAL_PREFIX)), None)
        self.best_baseline = next((n for n in self.ranked if is_baseline(n)), None)
        self.fusions = [n for n in self.ranked if not is_baseline(n)]

    def diff(self, a: str, b: str) -> dict[str, Any]:
        return paired_difference(
            self.strategies[a]["accuracy"]["folds"],
            self.strategies[b]["accuracy"]["folds"],
            n_boot=self.n_boot,
            seed=self.seed,
        )

    def entry(self, name: str) -> Mapping[str, Any]:
        return self.strategies[name]

    def n_folds(self, name: str) -> int:
        return len(self.strategies[name]["accuracy"].get("folds") or [])


def _recommend_top(r: _Ranking, out: dict[str, Any]) -> dict[str, Any]:
    """The candidate is a baseline, or there is no baseline: it is recommended."""
    top, runner = r.top, r.runner
    assert top is not None
    entry, n_folds, cost_top = r.entry(top), r.n_folds(top), _cost(r.entry(top))
    out["strategy"] = top
    if runner is None:
        out["reason"] = (
            f"{top} is the only strategy that completed: accuracy {_score(entry)} over {n_folds} folds, "
            f"fit cost {_seconds(cost_top)}; there is nothing to compare it with."
        )
        return out
    vs_runner = out["vs_runner_up"]
    lead = f"No fusion beats {_baseline_phrase(top)} ({top}): " if is_baseline(top) and r.fusions else ""
    if r.entry(runner)["accuracy"]["mean"] == entry["accuracy"]["mean"]:
        body = (
            f"{top} ties with {runner} on accuracy ({_score(entry)} over {n_folds} folds; {_ci(vs_runner)}) "
            f"and is the cheaper fit ({_seconds(cost_top)} against {_seconds(_cost(r.entry(runner)))})."
        )
    else:
        body = (
            f"{top} has the best accuracy, {_score(entry)} over {n_folds} folds, {_ci(vs_runner)} against "
            f"the runner-up {runner}, for a fit cost of {_seconds(cost_top)}."
        )
    out["reason"] = lead + body
    return out


def _recommend_confident_fusion(
    r: _Ranking, out: dict[str, Any], vs_base: Mapping[str, Any]
) -> dict[str, Any]:
    """The candidate fusion beats the best baseline with confidence: it is recommended."""
    top, runner, base = r.top, r.runner, r.best_baseline
    assert top is not None and base is not None
    out["strategy"] = top  # a baseline exists, so there is a runner-up
    against = "" if runner == base else f", and {_ci(vs_base)} against {_baseline_phrase(base)} {base}"
    out["reason"] = (
        f"{top} has the best accuracy, {_score(r.entry(top))} over {r.n_folds(top)} folds, "
        f"{_ci(out['vs_runner_up'])} against the runner-up {runner}{against}, for a fit cost of "
        f"{_seconds(_cost(r.entry(top)))}."
    )
    return out


def _recommend_unconfident_fusion(
    r: _Ranking, out: dict[str, Any], vs_base: Mapping[str, Any]
) -> dict[str, Any]:
    """The candidate fusion does not beat the best baseline with confidence: say so, and recommend the
    baseline when its fit is cheaper."""
    top, base = r.top, r.best_baseline
    assert top is not None and base is not None
    others_confident = [
        other
        for other in r.fusions[1:]
        if not _includes_zero(gain := r.diff(other, base)) and (gain["mean_diff"] or 0.0) > 0
    ]
    subject = "No fusion beats" if not others_confident else f"{top} does not beat"
    lead = f"{subject} {_baseline_phrase(base)} ({base}) with confidence: "
    detail = (
        f"{top} scores {_score(r.entry(top))} against {_score(r.entry(base))} over {r.n_folds(top)} folds, "
        f"{_ci(vs_base)}"
    )
    cost_top, cost_base = _cost(r.entry(top)), _cost(r.entry(base))
    if cost_base is not None and (cost_top is None or cost_base < cost_top):
        out["strategy"] = base
        out["reason"] = (
            f"{lead}{detail}, and {base} is the cheaper fit ({_seconds(cost_base)} against "
            f"{_seconds(cost_top)}), so it is recommended."
        )
    else:
        out["strategy"] = top
        out["reason"] = (
            f"{lead}{detail}; {top} is kept as it costs no more to fit ({_seconds(cost_top)} against "
            f"{_seconds(cost_base)})."
        )
    return out


def recommend(
    strategies: Mapping[str, Mapping[str, Any]], *, seed: int = 0, n_boot: int = N_BOOT
) -> dict[str, Any]:
    """Recommend one strategy from per-fold results over the same folds (the rule of :func:`compare`).

    The rule (also :data:`RECOMMENDATION_RULE`):

    1. Rank the strategies that completed every fold by mean accuracy; an exact tie goes to the one with
       the lower fit cost (``fit_cost_seconds`` where present, else ``fit_seconds``), then to the one
       listed first. The top one is the candidate; the next one is the runner-up.
    2. The *baselines* are the single-modality strategies (``unimodal:<input>``) and the tuned linear
       baseline (``linear``); the best baseline, ``B``, is the best ranked of them. If the candidate is a
       fusion and there is a baseline, compare it with ``B`` by :func:`paired_difference` of the per-fold
       accuracies. When that 95% CI includes 0 the fusion shows no confident gain over ``B``: the reason
       says so plainly and names ``B``, and ``B`` is recommended when its fit is cheaper (otherwise the
       fusion, which costs no more, is kept).
    3. Otherwise the candidate is recommended.

    The reason is one sentence citing the accuracy (mean ± std over the folds), the paired difference
    to the runner-up (or, in case 2, between the fusion and ``B``) with its 95% CI, and the fit cost.

    Parameters
    ----------
    strategies : mapping of str to dict
        Entries shaped like those of :func:`compare`'s ``strategies``: ``accuracy`` with ``mean``,
        ``std`` and ``folds`` (fold ``i`` the same split for all), ``fit_seconds`` and optionally
        ``fit_cost_seconds``. Entries with an ``error`` (or no accuracy) are skipped.
    seed, n_boot : int
        Seed and resamples of the bootstrap.

    Returns
    -------
    dict
        ``strategy`` (the name, ``None`` when nothing completed), ``reason`` (one sentence),
        ``candidate`` (the best by accuracy), ``runner_up`` (or ``None``), ``best_unimodal`` and
        ``best_baseline`` (or ``None``), ``vs_runner_up``, ``vs_best_unimodal`` and ``vs_best_baseline``
        (:func:`paired_difference` of the candidate minus the other, or ``None``; the last two only for
        a fusion candidate), ``confident_gain_over_unimodal`` and ``confident_gain_over_baseline``
        (``None`` when the candidate is a baseline or there is none to compare with).
    """
    r = _Ranking(strategies, seed, n_boot)
    out: dict[str, Any] = {
        "strategy": None,
        "reason": "",
        "candidate": r.top,
        "runner_up": r.runner,
        "best_unimodal": r.best_unimodal,
        "best_baseline": r.best_baseline,
        "vs_runner_up": None,
        "vs_best_unimodal": None,
        "vs_best_baseline": None,
        "confident_gain_over_unimodal": None,
        "confident_gain_over_baseline": None,
    }
    if r.top is None:
        out["reason"] = "No strategy completed every fold, so there is nothing to recommend."
        return out
    out["vs_runner_up"] = r.diff(r.top, r.runner) if r.runner is not None else None
    if is_baseline(r.top) or r.best_baseline is None:
        return _recommend_top(r, out)
    if r.best_unimodal is not None:
        out["vs_best_unimodal"] = r.diff(r.top, r.best_unimodal)
        out["confident_gain_over_unimodal"] = not _includes_zero(out["vs_best_unimodal"])
    vs_base = r.diff(r.top, r.best_baseline)
    out["vs_best_baseline"] = vs_base
    out["confident_gain_over_baseline"] = not _includes_zero(vs_base)
    if out["confident_gain_over_baseline"]:
        return _recommend_confident_fusion(r, out, vs_base)
    return _recommend_unconfident_fusion(r, out, vs_base)


# ------------------------------------------------------------------------------------------------ compare
class _Plan:
    """What every step of a comparison shares: the strategies, labels, folds and classes."""

    def __init__(self, strategies: Mapping[str, Any], table: Any, cv: CVSpec, seed: int) -> None:
        self.strategies = strategies
        self.names = list(strategies)
        self.y = np.asarray(table.y).reshape(-1)
        groups = _table_groups(table)
        self.splits = make_splits(self.y, groups, cv=cv, seed=seed)
        self.classes = _table_classes(table)
        self.metric_names = _metric_names(len(self.classes))
        self.cv_info = _cv_info(cv, seed, table, groups, self.splits)


def _group_counts(groups: np.ndarray | None, correct: np.ndarray) -> dict[str, list[int]] | None:
    """Per group of the test rows: ``[rows predicted correctly, rows]`` (None without groups)."""
    if groups is None:
        return None
    values, inverse = np.unique(groups.astype(str), return_inverse=True)
    right = np.bincount(inverse, weights=correct.astype(float), minlength=len(values))
    total = np.bincount(inverse, minlength=len(values))
    return {str(g): [int(r), int(n)] for g, r, n in zip(values, right, total, strict=True)}


def _run_step(
    plan: _Plan,
    table: Any,
    fold: int,
    name: str,
    fold_metrics: Callable[[str, Any, Any], Mapping[str, float | None] | None] | None,
    fold_details: Callable[[str, Any, Any], Mapping[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Fit strategy ``name`` on fold ``fold``'s training rows and score it on its test rows.

    Returns the step's record: metrics, timings, parameter count, per-group counts, ``fold_metrics``'
    values and ``fold_details``' result, or the error when the strategy raised (anything but an
    interruption).
    """
    train, test = plan.splits[fold]
    start = time.perf_counter()
    try:
        proba, fit_seconds, predict_seconds, fitted = _fit_predict(
            plan.strategies[name], table, train, test, plan.classes
        )
        metrics = classification_metrics(plan.y[test], proba, plan.classes)
        extra = (fold_metrics(name, fitted, table.take(test)) or {}) if fold_metrics is not None else {}
        details = fold_details(name, fitted, table.take(test)) if fold_details is not None else None
    except Exception as exc:
        logger.info("strategy %r failed in fold %d", name, fold, exc_info=True)
        return {
            "fold": fold,
            "strategy": name,
            "error": f"{type(exc).__name__}: {exc}",
            "seconds": time.perf_counter() - start,
        }
    groups = _table_groups(table)
    correct = plan.classes[proba.argmax(1)] == plan.y[test]
    counts = _group_counts(None if groups is None else groups[test], correct)
    return {
        "fold": fold,
        "strategy": name,
        "metrics": metrics,
        "fit_seconds": float(fit_seconds),
        "predict_seconds": float(predict_seconds),
        "reused_fit_seconds": _reused_fit_seconds(fitted),
        "n_parameters": _n_parameters(fitted),
        "extra": {key: _jsonable(value) for key, value in dict(extra).items()},
        **({"details": details} if details is not None else {}),
        **({"group_counts": counts} if counts is not None else {}),
        "seconds": time.perf_counter() - start,
    }


def _run_steps(
    plan: _Plan,
    table: Any,
    log: StepLog,
    progress: Progress | None,
    fold_metrics: Callable[[str, Any, Any], Mapping[str, float | None] | None] | None,
    fold_details: Callable[[str, Any, Any], Mapping[str, Any] | None] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every (fold, strategy) step, folds outermost; finished steps in ``log`` are not run again.

    A strategy that fails in a fold is skipped in the later folds. Returns each strategy's step records
    in fold order (the last one holds the error of a failed strategy).
    """
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in plan.names}
    failed: set[str] = set()
    for fold in range(len(plan.splits)):
        for name in plan.names:
            if name in failed:
                _emit(progress, "step", fold=fold, strategy=name, ok=False, seconds=0.0, skipped=True)
                continue
            step = log.get(fold, name)
            resumed = step is not None
            if step is None:
                log.add(_run_step(plan, table, fold, name, fold_metrics, fold_details))
                step = log.get(fold, name)
            assert step is not None
            records[name].append(step)
            ok = "error" not in step
            if not ok:
                failed.add(name)
            seconds = 0.0 if resumed else float(step.get("seconds", 0.0))
            info = {"resumed": True} if resumed else {}
            _emit(progress, "step", fold=fold, strategy=name, ok=ok, seconds=seconds, **info)
    return records


def _fold_task(
    shared: tuple[_Plan, Any, tuple[Callable[..., Any] | None, Callable[..., Any] | None]],
    item: tuple[int, list[str]],
) -> list[dict[str, Any]]:
    """Every strategy of ``item`` (fold, names) on that fold, in order, with a cache of their own."""
    from modalfuse._backend import worker_info

    plan, table, (fold_metrics, fold_details) = shared
    fold, names = item
    with _fold_cache():
        steps = [_run_step(plan, table, fold, name, fold_metrics, fold_details) for name in names]
    where = worker_info()
    return [{**step, "worker": where} for step in steps]


def _backend_section(backend: Backend, log: StepLog, n_folds: int, names: Sequence[str]) -> dict[str, Any]:
    """The ``backend`` entry of a parallel comparison: its name and settings, and where each fold ran (the
    ``worker`` of its first step: host, pid, Ray node id; None for a fold read from a checkpoint without)."""
    workers = []
    for fold in range(n_folds):
        steps = [log.get(fold, name) for name in names]
        workers.append(next((s["worker"] for s in steps if s is not None and "worker" in s), None))
    return {
        "name": backend.name,
        "n_jobs": backend.n_jobs,
        "address": backend.address,
        "fold_workers": workers,
    }


def _fold_label(plan: _Plan, fold: int) -> str:
    """How errors name a fold: its number, and the groups it holds out when the folds are grouped."""
    held_out = plan.cv_info.get("held_out_groups")
    if not held_out:
        return f"fold {fold}"
    groups = held_out[fold]
    shown = ", ".join(map(str, groups[:3])) + (f" and {len(groups) - 3} more" if len(groups) > 3 else "")
    return f"fold {fold} (held-out groups: {shown})"


def _run_folds_parallel(
    plan: _Plan,
    table: Any,
    log: StepLog,
    progress: Progress | None,
    hooks: tuple[Callable[..., Any] | None, Callable[..., Any] | None],
    backend: Backend,
) -> dict[str, list[dict[str, Any]]]:
    """:func:`_run_steps` with each fold's unfinished steps as one task of ``backend``; ``hooks`` are
    ``(fold_metrics, fold_details)``, run inside the task.

    Each fold's steps go to ``log`` (and ``progress``) as soon as it finishes; the records are then read
    in fold order, a strategy's stopping at its first failure, as a serial run has them.
    """
    pending = [
        (fold, [n for n in plan.names if log.get(fold, n) is None]) for fold in range(len(plan.splits))
    ]
    pending = [(fold, names) for fold, names in pending if names]

    def save(i: int, steps: list[dict[str, Any]]) -> None:
        for step in steps:
            log.add(step)
            ok = "error" not in step
            _emit(
                progress, "step", fold=step["fold"], strategy=step["strategy"], ok=ok, seconds=step["seconds"]
            )

    backend.map(
        _fold_task,
        pending,
        shared=(plan, table, hooks),
        labels=[_fold_label(plan, fold) for fold, _ in pending],
        on_result=save,
        memory=task_memory(table),
    )
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in plan.names}
    failed: set[str] = set()
    for fold in range(len(plan.splits)):
        for name in plan.names:
            step = log.get(fold, name)
            if name in failed or step is None:
                continue
            records[name].append(step)
            if "error" in step:
                failed.add(name)
    return records


def _timings(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Fit and predict seconds of a strategy's steps: totals, per fold, and the standalone fit cost."""
    fit = [float(r["fit_seconds"]) for r in records]
    predict = [float(r["predict_seconds"]) for r in records]
    reused = [float(r.get("reused_fit_seconds") or 0.0) for r in records]
    return {
        "fit_seconds": float(sum(fit)),
        "predict_seconds": float(sum(predict)),
        "fit_cost_seconds": float(sum(fit) + sum(reused)),
        "fit_seconds_per_fold": fit,
        "predict_seconds_per_fold": predict,
    }


def _extra_summaries(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Summaries of the ``fold_metrics`` values of a strategy's steps (a fold without one counts as None)."""
    extras = [r.get("extra") or {} for r in records]
    keys = dict.fromkeys(k for d in extras for k in d)
    return {key: summarize([d.get(key) for d in extras]) for key in keys}


def _strategy_entry(records: Sequence[Mapping[str, Any]], plan: _Plan) -> dict[str, Any]:
    """One strategy's summary over its step records (its error and fold if the last one failed)."""
    if records and "error" in records[-1]:
        return {"error": records[-1]["error"], "fold": records[-1]["fold"]}
    entry: dict[str, Any] = {
        metric: summarize([r["metrics"][metric] for r in records]) for metric in plan.metric_names
    }
    timings = _timings(records)
    entry.update(fit_seconds=timings["fit_seconds"], predict_seconds=timings["predict_seconds"])
    entry["fit_cost_seconds"] = timings["fit_cost_seconds"]
    entry["n_parameters"] = records[-1].get("n_parameters") if records else None
    entry["fit_seconds_per_fold"] = timings["fit_seconds_per_fold"]
    entry["predict_seconds_per_fold"] = timings["predict_seconds_per_fold"]
    entry["confusion_matrix"] = _sum_matrices(
        [r["metrics"]["confusion_matrix"] for r in records], len(plan.classes)
    )
    entry.update(_extra_summaries(records))
    groups = _group_accuracy(records)
    if groups:
        entry["groups"] = groups
    if any("details" in r for r in records):
        entry["fold_details"] = [r.get("details") for r in records]
    return entry


def _group_accuracy(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Accuracy per group of rows over every fold's test rows: ``{group: {"accuracy", "n", "fold"}}``
    (``fold``: the fold whose test rows held the group, the first one if several)."""
    counts: dict[str, list[int]] = {}
    where: dict[str, int] = {}
    for r in records:
        for group, (right, n) in (r.get("group_counts") or {}).items():
            total = counts.setdefault(group, [0, 0])
            total[0] += int(right)
            total[1] += int(n)
            where.setdefault(group, int(r["fold"]))
    return {
        g: {"accuracy": right / n if n else None, "n": n, "fold": where[g]}
        for g, (right, n) in counts.items()
    }


def _paired_against(
    results: Mapping[str, Mapping[str, Any]], ok_names: Sequence[str], reference: str | None, seed: int
) -> dict[str, dict[str, Any]]:
    """Paired difference of every other successful strategy's per-fold accuracy to ``reference``'s."""
    if reference is None:
        return {}
    folds = results[reference]["accuracy"]["folds"]
    return {
        name: {
            "vs": reference,
            "metric": "accuracy",
            **paired_difference(results[name]["accuracy"]["folds"], folds, n_boot=N_BOOT, seed=seed),
        }
        for name in ok_names
        if name != reference
    }


def _comparison(
    results: dict[str, dict[str, Any]], seed: int
) -> tuple[dict[str, str | None], dict[str, dict[str, dict[str, Any]]], dict[str, Any]]:
    """The best strategies, the paired comparisons and the recommendation of ``results``."""
    ok_names = [name for name, entry in results.items() if "error" not in entry]
    recommendation = recommend(results, seed=seed)
    recommendation["rule"] = RECOMMENDATION_RULE
    # the table's "best" and the recommendation rank by one rule (ties: the cheaper fit, then listed first)
    best = {
        "strategy": recommendation["candidate"],
        "unimodal": recommendation["best_unimodal"],
        "baseline": recommendation["best_baseline"],
    }
    paired = {
        "paired": _paired_against(results, ok_names, best["unimodal"], seed),
        "paired_vs_baseline": _paired_against(results, ok_names, best["baseline"], seed),
        "paired_vs_best": _paired_against(results, ok_names, best["strategy"], seed),
    }
    return best, paired, recommendation


def compare(
    strategies: Mapping[str, Any],
    table: Any,
    *,
    cv: CVSpec = 5,
    seed: int = 0,
    progress: Progress | None = None,
    dataset_name: str | None = None,
    fold_metrics: Callable[[str, Any, Any], Mapping[str, float | None] | None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    backend: Backend | str | None = None,
    fold_details: Callable[[str, Any, Any], Mapping[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Evaluate several strategies on the same folds, compare them and recommend one.

    Folds are the outer loop and strategies the inner one, so a per-fold cache (of encoded embeddings,
    say) filled by one strategy serves the next. A strategy that raises in a fold is recorded as failed
    and skipped from then on; the others carry on.

    Parameters
    ----------
    strategies : mapping of str to estimator
        Unfitted estimators by name. Single-modality baselines are named ``"unimodal:<modality>"`` and
        the tuned linear baseline ``"linear"``.
    table : table
        Rows to evaluate; labels from ``table.y`` and groups from ``table.groups``.
    cv : int, str or splitter, default=5
        Fold specification, see :func:`~modalfuse.evaluate.make_splits`.
    seed : int, default=0
        Seed of the fold shuffling and of the bootstrap of the paired comparison.
    progress : callable, optional
        Called as ``progress(event, **info)``: ``"start"`` with ``total`` (folds × strategies),
        ``n_folds``, ``strategies`` and ``resumed`` (steps read from the checkpoint); ``"step"`` after
        each strategy in each fold with ``fold``, ``strategy``, ``ok`` and ``seconds`` (and
        ``resumed=True`` for a step read from the checkpoint, ``skipped=True`` for a strategy that failed
        in an earlier fold); ``"end"`` with ``wall_seconds``. A step is
        saved to the checkpoint before its event, so a callback that raises ``KeyboardInterrupt`` stops
        the comparison with that step kept.
    dataset_name : str, optional
        Name to report; defaults to ``table.name``.
    fold_metrics : callable, optional
        ``fold_metrics(name, fitted_estimator, test_table) -> {metric: value}`` (or None), called after
        each strategy's fit in each fold; the values are summarised per strategy beside the built-in
        metrics (mean, std, folds). Use it for measures only some strategies have, e.g. retrieval recall.
    fold_details : callable, optional
        ``fold_details(name, fitted_estimator, test_table) -> dict`` (JSON-safe, or None), called like
        ``fold_metrics``; its results are kept as they are, one per fold, in the strategy's
        ``fold_details`` list (None for a fold without one). Use it for structured per-fold results
        (global explanations, say).
    checkpoint : path, optional
        A JSON file rewritten atomically after every (fold, strategy) step with the settings and the
        steps finished so far (their metrics, timings and errors), and at the end with the whole
        result; an interrupted comparison keeps what finished.
    resume : bool, default=False
        Continue from ``checkpoint``: its finished steps are not run again, and the result is the one an
        uninterrupted run gives (timings aside). It must have been written with the same dataset name,
        rows, classes, folds, seed, strategies and parameters; otherwise a one-line
        :class:`~modalfuse.ModalfuseError` names what differs. A missing file starts afresh.
    backend : Backend or str, optional
        Where the folds run (:class:`~modalfuse.Backend`: ``"serial"``, ``"processes"``, ``"ray"``). A
        parallel fold is one task running every strategy on that fold, with a cache of its own shared by
        its strategies; its steps are saved to ``checkpoint`` and reported to ``progress`` when it
        finishes. There a strategy that fails in a fold still runs in the other folds, but the result is
        the same: the same seed gives the same numbers on every backend (timings aside).

    Returns
    -------
    dict
        JSON-safe result::

            {"dataset": str, "n_rows": int, "classes": [...],
             "cv": {"kind", "n_folds", "seed", "groups", "fold_sizes", "held_out_groups" (if grouped)},
             "strategies": {name: {metric: {"mean", "std", "folds"}, ...,
                                   "fit_seconds": total, "predict_seconds": total,
                                   "fit_cost_seconds": total, "n_parameters": int or None,
                                   "fit_seconds_per_fold": [...], "predict_seconds_per_fold": [...],
                                   "confusion_matrix": [[...]],
                                   "groups": {group: {"accuracy", "n", "fold"}} (grouped tables),
                                   "fold_details": [...] (with fold_details)}
                                  or {"error": "Type: message", "fold": i}},
             "best": {"strategy": name or None, "unimodal": name or None, "baseline": name or None},
             "paired_method": str,
             "paired": {name: {"vs": best_unimodal, "metric": "accuracy", "mean_diff", "ci95",
                               "method", "n", "wins", "win_rate", "p_value"}},
             "paired_vs_baseline": {name: {"vs": best_baseline, ...same keys...}},
             "paired_vs_best": {name: {"vs": best, ...same keys...}},
             "recommendation": {"strategy": name or None, "reason": str, "rule": str, ...},
             "wall_seconds": float,
             "checkpoint": {...}}  # only with checkpoint=

        ``best`` ranks by mean accuracy; ``baseline`` is the best of the baselines (the unimodal ones
        and ``linear``). ``paired`` compares every other successful strategy's per-fold accuracy with
        the best unimodal one (empty without a unimodal strategy), ``paired_vs_baseline`` with the best
        baseline and ``paired_vs_best`` with the best strategy overall; all by
        :func:`paired_difference` (``mean_diff`` is the strategy minus the reference; see
        ``paired_method``). ``fit_cost_seconds`` is ``fit_seconds`` plus the training time of models the
        fitted estimator reused from another strategy's fit on the same fold (the estimator's
        ``reused_fit_seconds_``), i.e. what the strategy costs on its own. ``n_parameters`` is
        the fitted estimator's ``n_parameters_`` in the last fold, ``None`` where it has none.
        ``recommendation`` is :func:`recommend`'s result (its rule in ``rule``). ``checkpoint`` holds the
        settings and the step records a later ``resume`` reads.

    Raises
    ------
    SchemaError
        When the folds cannot be made. Errors of the strategies are never raised.
    ModalfuseError
        With ``resume``, when the checkpoint cannot be read or was written with other settings.
    """
    wall_start = time.perf_counter()
    plan = _Plan(strategies, table, cv, seed)
    dataset = dataset_name if dataset_name is not None else getattr(table, "name", None)
    header = {
        "dataset": dataset,
        "n_rows": len(table),
        "classes": [_jsonable(c) for c in plan.classes],
        "cv": plan.cv_info,
    }
    settings = compare_settings(
        strategies,
        dataset=dataset,
        n_rows=len(table),
        classes=header["classes"],
        cv=cv,
        cv_info=plan.cv_info,
        splits=plan.splits,
        seed=seed,
    )
    log = StepLog(checkpoint, settings, resume=resume, header=header)
    _emit(
        progress,
        "start",
        total=len(plan.splits) * len(plan.names),
        n_folds=len(plan.splits),
        strategies=plan.names,
        resumed=log.resumed,
    )
    runner = resolve_backend(backend)
    if runner.parallel:
        records = _run_folds_parallel(plan, table, log, progress, (fold_metrics, fold_details), runner)
        header["backend"] = _backend_section(runner, log, len(plan.splits), plan.names)
    else:
        records = _run_steps(plan, table, log, progress, fold_metrics, fold_details)
    results = {name: _strategy_entry(records[name], plan) for name in plan.names}
    best, paired, recommendation = _comparison(results, seed)
    result: dict[str, Any] = {
        **header,
        "strategies": results,
        "best": best,
        "paired_method": PAIRED_METHOD,
        **paired,
        "recommendation": recommendation,
        "wall_seconds": time.perf_counter() - wall_start,
    }
    if checkpoint is not None:
        result["checkpoint"] = log.section(complete=True)
        write_json_atomic(checkpoint, result)
    _emit(progress, "end", wall_seconds=result["wall_seconds"])
    return result


# --------------------------------------------------------------------------------------------- the table
def _mean_std(summary: Mapping[str, Any] | None) -> str:
    if not summary or summary.get("mean") is None:
        return "n/a"
    return f"{summary['mean']:.3f} ± {summary.get('std') or 0.0:.3f}"


def _number(value: Any, fmt: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return format(value, fmt)
    return "n/a"


#: How :func:`format_table` marks the baselines: the best single modality and the tuned linear one.
BEST_UNIMODAL_MARK = "*"
LINEAR_MARK = "+"


def _label(name: str, best_unimodal: str | None) -> str:
    if name == best_unimodal:
        return f"{name} {BEST_UNIMODAL_MARK}"
    if name == LINEAR_BASELINE:
        return f"{name} {LINEAR_MARK}"
    return name


def _uses_reused_models(entry: Mapping[str, Any]) -> bool:
    """Whether the entry's fit cost includes per-input models trained by another strategy's fit."""
    fit, wall = _cost(entry), entry.get("fit_seconds")
    return fit is not None and isinstance(wall, int | float) and fit > wall + 1e-9


def _table_row(name: str, entry: Mapping[str, Any], best_unimodal: str | None) -> tuple[str, ...]:
    return (
        _label(name, best_unimodal),
        _mean_std(entry.get("accuracy")),
        _mean_std(entry.get("f1_macro")),
        _number(_cost(entry), ".2f"),
        _number(entry.get("predict_seconds"), ".2f"),
        _number(entry.get("n_parameters"), ","),
    )


def _title(result: Mapping[str, Any]) -> str:
    cv = result.get("cv") or {}
    bits = [str(result.get("dataset") or "dataset")]
    if result.get("n_rows") is not None:
        bits.append(f"{result['n_rows']} rows")
    if cv:
        fold_text = f"{cv.get('kind')} CV, {cv.get('n_folds')} folds"
        if cv.get("groups"):
            fold_text += f", grouped by {cv['groups']}"
        bits.append(fold_text)
    return " | ".join(bits)


def _paired_line(result: Mapping[str, Any], key: str, reference: str) -> list[str]:
    """``best vs reference: ...`` from ``result[key]``, when the best strategy has that comparison."""
    best_name = (result.get("best") or {}).get("strategy")
    diff = (result.get(key) or {}).get(best_name) if best_name else None
    if not diff or diff.get("mean_diff") is None or diff.get("vs") != reference:
        return []
    lo, hi = diff["ci95"]
    return [
        f"{best_name} vs {reference}: {diff['mean_diff']:+.3f} accuracy "
        f"(95% CI {lo:+.3f} to {hi:+.3f}, better in {diff['wins']} of {diff['n']} folds)"
    ]


def _footer(result: Mapping[str, Any], strategies: Mapping[str, Any], reused: bool) -> list[str]:
    lines = []
    if reused:
        lines.append("fit s includes the training of per-input models reused from another strategy's fit")
    best_unimodal = (result.get("best") or {}).get("unimodal")
    if best_unimodal is not None:
        lines.append(f"{BEST_UNIMODAL_MARK} best single modality: {best_unimodal}")
        lines += _paired_line(result, "paired", best_unimodal)
    linear = strategies.get(LINEAR_BASELINE)
    if linear is not None and "error" not in linear:
        lines.append(
            f"{LINEAR_MARK} tuned linear baseline: logistic regression on the classical features of every "
            "input, C chosen by inner cross-validation"
        )
        lines += _paired_line(result, "paired_vs_baseline", LINEAR_BASELINE)
    recommendation = result.get("recommendation") or {}
    if recommendation.get("reason"):
        lines.append(
            f"Recommendation: {recommendation.get('strategy') or 'none'}. {recommendation['reason']}"
        )
    return lines


def _by_accuracy(
    strategies: Mapping[str, Any],
) -> tuple[list[tuple[str, Mapping[str, Any]]], list[tuple[str, Mapping[str, Any]]]]:
    """The successful strategies, best mean accuracy first, and the failed ones, as (name, entry) pairs."""
    ok = [(name, entry) for name, entry in strategies.items() if "error" not in entry]
    failed = [(name, entry) for name, entry in strategies.items() if "error" in entry]
    ok.sort(key=lambda item: -(item[1].get("accuracy", {}).get("mean") or -math.inf))
    return ok, failed


def _widths(header: Sequence[str], rows: Sequence[Sequence[str]], failed: Sequence[str]) -> list[int]:
    """Column widths: the widest cell of each column (failed strategies' names count in the first)."""
    widths = [max([len(header[i])] + [len(row[i]) for row in rows]) for i in range(len(header))]
    widths[0] = max([widths[0]] + [len(name) for name in failed])
    return widths


def format_table(result: Mapping[str, Any]) -> str:
    """Format a :func:`compare` result as a plain-text table.

    Parameters
    ----------
    result : dict
        The output of :func:`compare` (or the same shape read back from JSON).

    Returns
    -------
    str
        One line per strategy, best mean accuracy first, with accuracy and macro-F1 as
        ``mean ± std``, the total fit time (``fit_cost_seconds`` where present), the total predict time
        and the number of parameters; the baselines are marked: the best unimodal strategy ``*``, the
        tuned linear baseline ``+``; failed strategies are listed last with their error. Then the best
        strategy's paired difference to the best unimodal one and to the linear baseline, and the
        recommendation with its reason.
    """
    strategies: Mapping[str, Any] = result.get("strategies", {})
    best_unimodal = (result.get("best") or {}).get("unimodal")
    ok, failed = _by_accuracy(strategies)

    header = ("strategy", "accuracy", "macro-F1", "fit s", "predict s", "parameters")
    rows = [_table_row(name, entry, best_unimodal) for name, entry in ok]
    widths = _widths(header, rows, [name for name, _ in failed])

    def render(row: Sequence[str]) -> str:
        cells = [f"{row[0]:<{widths[0]}}"] + [f"{cell:>{widths[i + 1]}}" for i, cell in enumerate(row[1:])]
        return "  ".join(cells)

    lines = [_title(result), render(header), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    lines.extend(render(row) for row in rows)
    lines.extend(
        f"{name:<{widths[0]}}  failed in fold {entry.get('fold')}: {entry['error']}" for name, entry in failed
    )
    reused = any(_uses_reused_models(entry) for _, entry in ok)
    lines.extend(_footer(result, strategies, reused))
    return "\n".join(lines)
