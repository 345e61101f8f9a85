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
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats
from sklearn.base import clone

from modalfuse._errors import ModalfuseError
from modalfuse.evaluate._metrics import BINARY_METRICS, SCALAR_METRICS, classification_metrics, summarize
from modalfuse.evaluate._split import CVSpec, _cv_kind, encode_values, make_splits

__all__ = ["compare", "cross_validate", "format_table", "paired_difference", "recommend"]

logger = logging.getLogger(__name__)

#: Prefix that marks a single-modality baseline among the strategies of :func:`compare`.
UNIMODAL_PREFIX = "unimodal:"

#: Bootstrap resamples of the paired comparisons of :func:`compare`.
N_BOOT = 10000

#: How :func:`compare` compares two strategies (also written into its result).
PAIRED_METHOD = (
    f"paired percentile bootstrap over folds ({N_BOOT} resamples of the folds, with replacement) of the "
    "mean per-fold accuracy difference; 95% confidence interval"
)

#: The rule of :func:`recommend`, in words.
RECOMMENDATION_RULE = (
    "Take the strategy with the best mean accuracy (an exact tie goes to the cheaper fit). If it is a fusion "
    "and the 95% paired bootstrap CI of its per-fold accuracy difference to the best unimodal strategy "
    "includes 0, no confident gain over the single best modality is shown: say so, and recommend that "
    "unimodal strategy when its fit is cheaper. Fit cost is the total fit time over the folds "
    "(fit_cost_seconds where present: it counts per-input models reused from another strategy's fit)."
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

    Read from ``reused_fit_seconds_`` of the estimator or of its fitted strategy ``fusion_``; 0 without.
    """
    for owner in (estimator, getattr(estimator, "fusion_", None)):
        value = getattr(owner, "reused_fit_seconds_", None)
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


def cross_validate(
    estimator: Any,
    table: Any,
    *,
    cv: CVSpec = 5,
    seed: int = 0,
    return_predictions: bool = False,
    progress: Progress | None = None,
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
        ``"step"`` after each fold with ``fold``, ``fit_seconds`` and ``accuracy``, ``"end"`` with
        ``wall_seconds``.

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

    per_fold: list[dict[str, Any]] = []
    fit_times: list[float] = []
    predict_times: list[float] = []
    oof_index: list[np.ndarray] = []
    oof_fold: list[np.ndarray] = []
    oof_proba: list[np.ndarray] = []
    for fold, (train, test) in enumerate(splits):
        proba, fit_seconds, predict_seconds, _ = _fit_predict(estimator, table, train, test, classes)
        metrics = classification_metrics(y[test], proba, classes)
        per_fold.append(metrics)
        fit_times.append(fit_seconds)
        predict_times.append(predict_seconds)
        if return_predictions:
            oof_index.append(test)
            oof_fold.append(np.full(len(test), fold, dtype=np.int64))
            oof_proba.append(proba)
        _emit(progress, "step", fold=fold, fit_seconds=fit_seconds, accuracy=metrics["accuracy"])

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
            "index": np.concatenate(oof_index),
            "fold": np.concatenate(oof_fold),
            "proba": np.concatenate(oof_proba, axis=0),
        }
    _emit(progress, "end", wall_seconds=time.perf_counter() - wall_start)
    return result


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
    if len(a_folds) != len(b_folds):
        raise ValueError(f"a_folds has {len(a_folds)} values but b_folds has {len(b_folds)}")
    pairs = [
        (float(a), float(b))
        for a, b in zip(a_folds, b_folds, strict=True)
        if a is not None and b is not None and math.isfinite(float(a)) and math.isfinite(float(b))
    ]
    result: dict[str, Any] = {"method": "paired bootstrap over folds", "n": len(pairs)}
    if not pairs:
        result.update(mean_diff=None, ci95=[None, None], wins=0, win_rate=None, p_value=None)
        return result
    diffs = np.array([a - b for a, b in pairs], dtype=np.float64)
    n = len(diffs)
    rng = np.random.default_rng(seed)
    boot = diffs[rng.integers(0, n, size=(max(int(n_boot), 1), n))].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    wins = int(np.sum(diffs > 0))
    p_value: float | None = None
    if n >= 5:
        if np.all(diffs == 0):
            p_value = 1.0
        else:
            try:
                p = float(stats.wilcoxon(diffs).pvalue)
                p_value = p if math.isfinite(p) else None
            except ValueError:
                p_value = None
    result.update(
        mean_diff=float(diffs.mean()),
        ci95=[float(lo), float(hi)],
        wins=wins,
        win_rate=wins / n,
        p_value=p_value,
    )
    return result


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


def recommend(
    strategies: Mapping[str, Mapping[str, Any]], *, seed: int = 0, n_boot: int = N_BOOT
) -> dict[str, Any]:
    """Recommend one strategy from per-fold results over the same folds (the rule of :func:`compare`).

    The rule (also :data:`RECOMMENDATION_RULE`):

    1. Rank the strategies that completed every fold by mean accuracy; an exact tie goes to the one with
       the lower fit cost (``fit_cost_seconds`` where present, else ``fit_seconds``), then to the one
       listed first. The top one is the candidate; the next one is the runner-up.
    2. If the candidate is a fusion (not ``unimodal:``) and there is a unimodal strategy, compare it with
       the best unimodal one, ``U``, by :func:`paired_difference` of the per-fold accuracies. When that
       95% CI includes 0 the fusion shows no confident gain over the single best modality: the reason
       says so plainly, and ``U`` is recommended when its fit is cheaper (otherwise the fusion, which
       costs no more, is kept).
    3. Otherwise the candidate is recommended.

    The reason is one sentence citing the accuracy (mean ± std over the folds), the paired difference
    to the runner-up (or, in case 2, between the fusion and ``U``) with its 95% CI, and the fit cost.

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
        ``candidate`` (the best by accuracy), ``runner_up`` (or ``None``), ``best_unimodal`` (or
        ``None``), ``vs_runner_up`` and ``vs_best_unimodal`` (:func:`paired_difference` of the candidate
        minus the other, or ``None``) and ``confident_gain_over_unimodal`` (``None`` when the candidate
        is unimodal or there is no unimodal strategy).
    """
    ok = [
        name
        for name, entry in strategies.items()
        if "error" not in entry and (entry.get("accuracy") or {}).get("mean") is not None
    ]
    out: dict[str, Any] = {
        "strategy": None,
        "reason": "",
        "candidate": None,
        "runner_up": None,
        "best_unimodal": None,
        "vs_runner_up": None,
        "vs_best_unimodal": None,
        "confident_gain_over_unimodal": None,
    }
    if not ok:
        out["reason"] = "No strategy completed every fold, so there is nothing to recommend."
        return out
    order = {name: i for i, name in enumerate(ok)}

    def key(name: str) -> tuple[float, float, int]:
        cost = _cost(strategies[name])
        return (-float(strategies[name]["accuracy"]["mean"]), math.inf if cost is None else cost, order[name])

    ranked = sorted(ok, key=key)
    top, runner = ranked[0], (ranked[1] if len(ranked) > 1 else None)
    unimodal = [n for n in ranked if n.startswith(UNIMODAL_PREFIX)]
    best_uni = unimodal[0] if unimodal else None
    fusions = [n for n in ranked if not n.startswith(UNIMODAL_PREFIX)]

    def diff(a: str, b: str) -> dict[str, Any]:
        return paired_difference(
            strategies[a]["accuracy"]["folds"], strategies[b]["accuracy"]["folds"], n_boot=n_boot, seed=seed
        )

    entry = strategies[top]
    n_folds = len(entry["accuracy"].get("folds") or [])
    cost_top = _cost(entry)
    out.update(candidate=top, runner_up=runner, best_unimodal=best_uni)
    vs_runner = diff(top, runner) if runner is not None else None
    out["vs_runner_up"] = vs_runner

    if top.startswith(UNIMODAL_PREFIX) or best_uni is None:
        out["strategy"] = top
        if runner is None:
            out["reason"] = (
                f"{top} is the only strategy that completed: accuracy {_score(entry)} over {n_folds} folds, "
                f"fit cost {_seconds(cost_top)}; there is nothing to compare it with."
            )
            return out
        tie = strategies[runner]["accuracy"]["mean"] == entry["accuracy"]["mean"]
        lead = (
            f"No fusion beats the best single modality ({top}): "
            if top.startswith(UNIMODAL_PREFIX) and fusions
            else ""
        )
        if tie:
            body = (
                f"{top} ties with {runner} on accuracy ({_score(entry)} over {n_folds} folds; {_ci(vs_runner)}) "
                f"and is the cheaper fit ({_seconds(cost_top)} against {_seconds(_cost(strategies[runner]))})."
            )
        else:
            body = (
                f"{top} has the best accuracy, {_score(entry)} over {n_folds} folds, {_ci(vs_runner)} against "
                f"the runner-up {runner}, for a fit cost of {_seconds(cost_top)}."
            )
        out["reason"] = lead + body
        return out

    # the candidate is a fusion and there is a unimodal baseline
    vs_uni = diff(top, best_uni)
    out["vs_best_unimodal"] = vs_uni
    confident = not _includes_zero(vs_uni)
    out["confident_gain_over_unimodal"] = confident
    uni_entry = strategies[best_uni]
    cost_uni = _cost(uni_entry)
    if confident:
        out["strategy"] = top  # a unimodal strategy exists, so there is a runner-up
        against_uni = (
            "" if runner == best_uni else f", and {_ci(vs_uni)} against the best single modality {best_uni}"
        )
        out["reason"] = (
            f"{top} has the best accuracy, {_score(entry)} over {n_folds} folds, {_ci(vs_runner)} against "
            f"the runner-up {runner}{against_uni}, for a fit cost of {_seconds(cost_top)}."
        )
        return out

    others_confident = []
    for other in fusions[1:]:
        gain = diff(other, best_uni)
        if not _includes_zero(gain) and (gain["mean_diff"] or 0.0) > 0:
            others_confident.append(other)
    lead = (
        f"No fusion beats the best single modality ({best_uni}) with confidence: "
        if not others_confident
        else f"{top} does not beat the best single modality ({best_uni}) with confidence: "
    )
    detail = f"{top} scores {_score(entry)} against {_score(uni_entry)} over {n_folds} folds, {_ci(vs_uni)}"
    uni_cheaper = cost_uni is not None and (cost_top is None or cost_uni < cost_top)
    if uni_cheaper:
        out["strategy"] = best_uni
        out["reason"] = (
            f"{lead}{detail}, and {best_uni} is the cheaper fit ({_seconds(cost_uni)} against "
            f"{_seconds(cost_top)}), so it is recommended."
        )
    else:
        out["strategy"] = top
        out["reason"] = (
            f"{lead}{detail}; {top} is kept as it costs no more to fit ({_seconds(cost_top)} against "
            f"{_seconds(cost_uni)})."
        )
    return out


def compare(
    strategies: Mapping[str, Any],
    table: Any,
    *,
    cv: CVSpec = 5,
    seed: int = 0,
    progress: Progress | None = None,
    dataset_name: str | None = None,
    fold_metrics: Callable[[str, Any, Any], Mapping[str, float | None] | None] | None = None,
) -> dict[str, Any]:
    """Evaluate several strategies on the same folds, compare them and recommend one.

    Folds are the outer loop and strategies the inner one, so a per-fold cache (of encoded embeddings,
    say) filled by one strategy serves the next. A strategy that raises in a fold is recorded as failed
    and skipped from then on; the others carry on.

    Parameters
    ----------
    strategies : mapping of str to estimator
        Unfitted estimators by name. Single-modality baselines are named ``"unimodal:<modality>"``.
    table : table
        Rows to evaluate; labels from ``table.y`` and groups from ``table.groups``.
    cv : int, str or splitter, default=5
        Fold specification, see :func:`~modalfuse.evaluate.make_splits`.
    seed : int, default=0
        Seed of the fold shuffling and of the bootstrap of the paired comparison.
    progress : callable, optional
        Called as ``progress(event, **info)``: ``"start"`` with ``total`` (folds × strategies),
        ``n_folds`` and ``strategies``; ``"step"`` after each strategy in each fold with ``fold``,
        ``strategy``, ``ok`` and ``seconds``; ``"end"`` with ``wall_seconds``.
    dataset_name : str, optional
        Name to report; defaults to ``table.name``.
    fold_metrics : callable, optional
        ``fold_metrics(name, fitted_estimator, test_table) -> {metric: value}`` (or None), called after
        each strategy's fit in each fold; the values are summarised per strategy beside the built-in
        metrics (mean, std, folds). Use it for measures only some strategies have, e.g. retrieval recall.

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
                                   "confusion_matrix": [[...]]}
                                  or {"error": "Type: message", "fold": i}},
             "best": {"strategy": name or None, "unimodal": name or None},
             "paired_method": str,
             "paired": {name: {"vs": best_unimodal, "metric": "accuracy", "mean_diff", "ci95",
                               "method", "n", "wins", "win_rate", "p_value"}},
             "paired_vs_best": {name: {"vs": best, ...same keys...}},
             "recommendation": {"strategy": name or None, "reason": str, "rule": str, ...},
             "wall_seconds": float}

        ``best`` ranks by mean accuracy. ``paired`` compares every other successful strategy's
        per-fold accuracy with the best unimodal one (empty without a unimodal strategy), and
        ``paired_vs_best`` with the best strategy overall; both by :func:`paired_difference`
        (``mean_diff`` is the strategy minus the reference; see ``paired_method``).
        ``fit_cost_seconds`` is ``fit_seconds`` plus the training time of models the fitted estimator
        reused from another strategy's fit on the same fold (``reused_fit_seconds_`` of the estimator or
        its ``fusion_``), i.e. what the strategy costs on its own. ``n_parameters`` is the fitted
        estimator's ``n_parameters_`` in the last fold, ``None`` where it has none. ``recommendation``
        is :func:`recommend`'s result (its rule in ``rule``).

    Raises
    ------
    SchemaError
        When the folds cannot be made. Errors of the strategies are never raised.
    """
    wall_start = time.perf_counter()
    names = list(strategies)
    y = np.asarray(table.y).reshape(-1)
    groups = _table_groups(table)
    splits = make_splits(y, groups, cv=cv, seed=seed)
    classes = _table_classes(table)
    metric_names = _metric_names(len(classes))
    _emit(progress, "start", total=len(splits) * len(names), n_folds=len(splits), strategies=names)

    per_fold: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    fit_times: dict[str, list[float]] = {name: [] for name in names}
    predict_times: dict[str, list[float]] = {name: [] for name in names}
    reused_times: dict[str, list[float]] = {name: [] for name in names}
    n_parameters: dict[str, int | None] = {name: None for name in names}
    extra: dict[str, list[Mapping[str, float | None]]] = {name: [] for name in names}
    failures: dict[str, dict[str, Any]] = {}
    for fold, (train, test) in enumerate(splits):
        for name in names:
            if name in failures:
                _emit(progress, "step", fold=fold, strategy=name, ok=False, seconds=0.0)
                continue
            start = time.perf_counter()
            try:
                proba, fit_seconds, predict_seconds, fitted = _fit_predict(
                    strategies[name], table, train, test, classes
                )
                metrics = classification_metrics(y[test], proba, classes)
                if fold_metrics is not None:
                    extra[name].append(fold_metrics(name, fitted, table.take(test)) or {})
            except Exception as exc:
                logger.info("strategy %r failed in fold %d", name, fold, exc_info=True)
                failures[name] = {"error": f"{type(exc).__name__}: {exc}", "fold": fold}
                _emit(
                    progress, "step", fold=fold, strategy=name, ok=False, seconds=time.perf_counter() - start
                )
                continue
            per_fold[name].append(metrics)
            fit_times[name].append(fit_seconds)
            predict_times[name].append(predict_seconds)
            reused_times[name].append(_reused_fit_seconds(fitted))
            n_parameters[name] = _n_parameters(fitted)
            del fitted
            _emit(progress, "step", fold=fold, strategy=name, ok=True, seconds=time.perf_counter() - start)

    results: dict[str, dict[str, Any]] = {}
    for name in names:
        if name in failures:
            results[name] = failures[name]
            continue
        folds = per_fold[name]
        entry: dict[str, Any] = {metric: summarize([m[metric] for m in folds]) for metric in metric_names}
        entry["fit_seconds"] = float(sum(fit_times[name]))
        entry["predict_seconds"] = float(sum(predict_times[name]))
        entry["fit_cost_seconds"] = float(sum(fit_times[name]) + sum(reused_times[name]))
        entry["n_parameters"] = n_parameters[name]
        entry["fit_seconds_per_fold"] = [float(t) for t in fit_times[name]]
        entry["predict_seconds_per_fold"] = [float(t) for t in predict_times[name]]
        entry["confusion_matrix"] = _sum_matrices([m["confusion_matrix"] for m in folds], len(classes))
        for key in dict.fromkeys(k for d in extra[name] for k in d):
            entry[key] = summarize([d.get(key) for d in extra[name]])
        results[name] = entry

    ok_names = [name for name in names if name not in failures]
    recommendation = recommend(results, seed=seed)
    # the table's "best" and the recommendation rank by one rule (ties: the cheaper fit, then listed first)
    best_unimodal = recommendation["best_unimodal"]
    best_overall = recommendation["candidate"]

    def paired_against(reference_name: str | None) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if reference_name is None:
            return out
        reference = results[reference_name]["accuracy"]["folds"]
        for name in ok_names:
            if name == reference_name:
                continue
            diff = paired_difference(results[name]["accuracy"]["folds"], reference, n_boot=N_BOOT, seed=seed)
            out[name] = {"vs": reference_name, "metric": "accuracy", **diff}
        return out

    recommendation["rule"] = RECOMMENDATION_RULE
    result: dict[str, Any] = {
        "dataset": dataset_name if dataset_name is not None else getattr(table, "name", None),
        "n_rows": len(table),
        "classes": [_jsonable(c) for c in classes],
        "cv": _cv_info(cv, seed, table, groups, splits),
        "strategies": results,
        "best": {"strategy": best_overall, "unimodal": best_unimodal},
        "paired_method": PAIRED_METHOD,
        "paired": paired_against(best_unimodal),
        "paired_vs_best": paired_against(best_overall),
        "recommendation": recommendation,
        "wall_seconds": time.perf_counter() - wall_start,
    }
    _emit(progress, "end", wall_seconds=result["wall_seconds"])
    return result


def _mean_std(summary: Mapping[str, Any] | None) -> str:
    if not summary or summary.get("mean") is None:
        return "n/a"
    return f"{summary['mean']:.3f} ± {summary.get('std') or 0.0:.3f}"


def _number(value: Any, fmt: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return format(value, fmt)
    return "n/a"


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
        and the number of parameters; the best unimodal strategy is marked ``*``, failed strategies are
        listed last with their error. Then the best strategy's paired difference to the best unimodal
        one and the recommendation with its reason.
    """
    strategies: Mapping[str, Any] = result.get("strategies", {})
    best = result.get("best") or {}
    best_unimodal = best.get("unimodal")
    ok = [(name, entry) for name, entry in strategies.items() if "error" not in entry]
    failed = [(name, entry) for name, entry in strategies.items() if "error" in entry]
    ok.sort(key=lambda item: -(item[1].get("accuracy", {}).get("mean") or -math.inf))

    header = ("strategy", "accuracy", "macro-F1", "fit s", "predict s", "parameters")
    rows: list[tuple[str, ...]] = []
    reused = False
    for name, entry in ok:
        label = f"{name} *" if name == best_unimodal else name
        fit = _cost(entry)
        wall = entry.get("fit_seconds")
        if fit is not None and isinstance(wall, int | float) and fit > wall + 1e-9:
            reused = True
        rows.append(
            (
                label,
                _mean_std(entry.get("accuracy")),
                _mean_std(entry.get("f1_macro")),
                _number(fit, ".2f"),
                _number(entry.get("predict_seconds"), ".2f"),
                _number(entry.get("n_parameters"), ","),
            )
        )
    n_ok = len(rows)
    widths = [max([len(header[i])] + [len(row[i]) for row in rows]) for i in range(len(header))]
    widths[0] = max([widths[0]] + [len(name) for name, _ in failed])
    lines: list[str] = []
    cv = result.get("cv") or {}
    title_bits = [str(result.get("dataset") or "dataset")]
    if result.get("n_rows") is not None:
        title_bits.append(f"{result['n_rows']} rows")
    if cv:
        fold_text = f"{cv.get('kind')} CV, {cv.get('n_folds')} folds"
        if cv.get("groups"):
            fold_text += f", grouped by {cv['groups']}"
        title_bits.append(fold_text)
    lines.append(" | ".join(title_bits))

    def render(row: Sequence[str]) -> str:
        cells = [f"{row[0]:<{widths[0]}}"] + [f"{cell:>{widths[i + 1]}}" for i, cell in enumerate(row[1:])]
        return "  ".join(cells)

    lines.append(render(header))
    lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    lines.extend(render(row) for row in rows[:n_ok])
    lines.extend(
        f"{name:<{widths[0]}}  failed in fold {entry.get('fold')}: {entry['error']}" for name, entry in failed
    )
    if reused:
        lines.append("fit s includes the training of per-input models reused from another strategy's fit")
    if best_unimodal is not None:
        lines.append(f"* best single modality: {best_unimodal}")
        paired = result.get("paired") or {}
        best_name = best.get("strategy")
        if best_name and best_name in paired and paired[best_name].get("mean_diff") is not None:
            diff = paired[best_name]
            lo, hi = diff["ci95"]
            lines.append(
                f"{best_name} vs {best_unimodal}: {diff['mean_diff']:+.3f} accuracy "
                f"(95% CI {lo:+.3f} to {hi:+.3f}, better in {diff['wins']} of {diff['n']} folds)"
            )
    recommendation = result.get("recommendation") or {}
    if recommendation.get("reason"):
        lines.append(
            f"Recommendation: {recommendation.get('strategy') or 'none'}. {recommendation['reason']}"
        )
    return "\n".join(lines)
