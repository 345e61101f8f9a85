"""Robustness curves: strategies trained once per fold, evaluated on corrupted copies of the test rows.

For each fold, every strategy is fitted once on the training rows; then each corruption level is applied to
the fold's test rows (seeded: every strategy sees the same corrupted rows, see :mod:`modalfuse._corruptions`)
and every fitted strategy predicts them. Nothing is retrained per level, and only test rows are corrupted.

Measures, for each strategy, each curve (a corruption spec) and each metric (accuracy, macro-F1), all computed
per fold and summarised over folds (mean, sample standard deviation, per-fold values):

- the score at each level, and on the clean test rows;
- ``area``: the area under the curve, the levels spaced evenly on [0, 1] in the order given (trapezoids; a
  single level is its score), so it is the curve's average score and lies in [0, 1];
- ``relative_robustness``: the area compared with the user's own baselines run on the same folds (each
  unimodal baseline and the late-fusion baseline): the paired difference of per-fold areas with its bootstrap
  interval for each baseline, and the area rescaled so the worst baseline's is 0 and the best one's 1
  (``normalized``; above 1: better than every baseline). MultiBench rescales against curves hard-coded for
  its own tasks; here the references are measured on the same data and folds;
- ``effective_robustness``: how much less the strategy loses than a baseline, level by level: per fold, the
  mean over the levels of ``(s(level) - s(clean)) - (b(level) - b(clean))`` (positive: it degrades less than
  the baseline ``b``; MultiBench's definition, against the late-fusion baseline, with the baseline measured
  here), with the paired bootstrap interval over folds, against the late-fusion baseline and each unimodal one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import clone

from modalfuse._corruptions import CorruptionSpec, corrupt_table, parse_corruptions
from modalfuse.evaluate._cv import _aligned_proba, _cv_info, _emit, _jsonable, _table_classes, _table_groups
from modalfuse.evaluate._cv import paired_difference as _paired
from modalfuse.evaluate._metrics import classification_metrics, summarize
from modalfuse.evaluate._split import CVSpec, make_splits

__all__ = ["LATE_BASELINES", "curve_area", "format_robustness", "plot_robustness", "robustness"]

logger = logging.getLogger(__name__)

#: The metrics of a robustness curve.
METRICS = ("accuracy", "f1_macro")
#: Late-fusion strategies that can serve as the late-fusion baseline, in order of preference.
LATE_BASELINES = ("late:weighted", "late", "late:product", "late:mean", "late:stacking", "late:confidence")

DEFINITIONS = {
    "area": "area under the curve with its levels spaced evenly on [0, 1] in the order given (the curve's "
    "average score), per fold",
    "relative_robustness": "the area against each baseline's on the same folds (paired bootstrap over folds "
    "of the per-fold area difference); normalized: the area rescaled so the worst baseline's area is 0 and "
    "the best one's is 1",
    "effective_robustness": "per fold, the mean over the levels of (score(level) - score(clean)) minus the "
    "same for a baseline: positive when the strategy loses less than the baseline; paired bootstrap over "
    "folds",
}


def curve_area(values: Sequence[float]) -> float:
    """Area under ``values`` placed evenly on [0, 1] (trapezoids); one value is its own area."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 1:
        return float(v[0])
    return float(np.sum((v[1:] + v[:-1]) / 2.0) / (len(v) - 1))


def _scores(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    metrics = classification_metrics(y, proba, classes)
    return {m: float(metrics[m]) for m in METRICS}


class _Folds:
    """Per-fold scores of one run: ``clean[s][f]`` and ``levels[s][curve][level][f]``, dicts of metrics."""

    def __init__(self, names: list[str], specs: list[CorruptionSpec], n_folds: int) -> None:
        self.n_folds = n_folds
        self.clean: dict[str, list[dict[str, float] | None]] = {s: [None] * n_folds for s in names}
        self.levels: dict[str, dict[str, dict[str, list[dict[str, float] | None]]]] = {
            s: {c.key: {k: [None] * n_folds for k in c.level_keys} for c in specs} for s in names
        }

    def clean_folds(self, name: str, metric: str) -> list[float | None]:
        return [None if r is None else r[metric] for r in self.clean[name]]

    def level_folds(self, name: str, curve: str, level: str, metric: str) -> list[float | None]:
        return [None if r is None else r[metric] for r in self.levels[name][curve][level]]


def _fit_fold(
    strategies: Mapping[str, Any],
    table: Any,
    train: np.ndarray,
    failed: dict[str, dict[str, Any]],
    fold: int,
    timing: dict[str, float],
    progress: Callable[..., Any] | None,
) -> dict[str, Any]:
    """Each strategy not failed yet, fitted once on the training rows (a failure is recorded)."""
    fitted = {}
    train_table = table.take(train)
    for name, estimator in strategies.items():
        if name in failed:
            continue
        start = time.perf_counter()
        try:
            est = clone(estimator)
            out = est.fit(train_table)
            fitted[name] = out if out is not None else est
            timing["fits"][name] = timing["fits"].get(name, 0) + 1
        except Exception as exc:
            logger.info("strategy %r failed in fold %d", name, fold, exc_info=True)
            failed[name] = {"error": f"{type(exc).__name__}: {exc}", "fold": fold}
        seconds = time.perf_counter() - start
        timing["fit_seconds"] += seconds
        _emit(progress, "step", fold=fold, strategy=name, ok=name not in failed, seconds=seconds)
    return fitted


def _predict_all(
    fitted: dict[str, Any],
    rows: Any,
    y: np.ndarray,
    classes: np.ndarray,
    failed: dict[str, dict[str, Any]],
    fold: int,
) -> dict[str, dict[str, float]]:
    """Every fitted strategy's scores on ``rows`` (a table); a strategy that raises is recorded as failed."""
    out = {}
    for name, est in list(fitted.items()):
        try:
            proba = _aligned_proba(est, est.predict_proba(rows), classes, len(rows))
        except Exception as exc:
            logger.info("strategy %r failed to predict in fold %d", name, fold, exc_info=True)
            failed[name] = {"error": f"{type(exc).__name__}: {exc}", "fold": fold}
            del fitted[name]
            continue
        out[name] = _scores(y, proba, classes)
    return out


def _run_fold(
    strategies: Mapping[str, Any],
    table: Any,
    split: tuple[np.ndarray, np.ndarray],
    fold: int,
    specs: list[CorruptionSpec],
    ctx: dict[str, Any],
) -> None:
    """Fit every strategy on the fold's training rows, then score it clean and at every level."""
    import warnings

    from modalfuse._errors import InputDriftWarning

    train, test = split
    folds, failed, timing, progress = ctx["folds"], ctx["failed"], ctx["timing"], ctx["progress"]
    fitted = _fit_fold(strategies, table, train, failed, fold, timing, progress)
    test_table = table.take(test)
    y, classes = np.asarray(test_table.y), ctx["classes"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputDriftWarning)  # corrupted cells are the point here
        start = time.perf_counter()
        for name, scores in _predict_all(fitted, test_table, y, classes, failed, fold).items():
            folds.clean[name][fold] = scores
        timing["clean_predict_seconds"] += time.perf_counter() - start
        for spec in specs:
            for level, key in zip(spec.levels, spec.level_keys, strict=True):
                start = time.perf_counter()
                corrupted = corrupt_table(test_table, spec, level, seed=ctx["corruption_seed"])
                for name, scores in _predict_all(fitted, corrupted, y, classes, failed, fold).items():
                    folds.levels[name][spec.key][key][fold] = scores
                seconds = time.perf_counter() - start
                timing["corrupted_seconds"] += seconds
                per_level = timing["per_level"].setdefault(spec.key, {})
                per_level[key] = per_level.get(key, 0.0) + seconds
                _emit(progress, "step", fold=fold, strategy=f"{spec.key}={key}", ok=True, seconds=seconds)


def _areas(folds: _Folds, name: str, spec: CorruptionSpec, metric: str) -> list[float | None]:
    """Per fold, the area under ``name``'s curve of ``spec`` (None where a level is missing)."""
    out: list[float | None] = []
    for f in range(folds.n_folds):
        values = [folds.level_folds(name, spec.key, k, metric)[f] for k in spec.level_keys]
        out.append(None if any(v is None for v in values) else curve_area(values))
    return out


def _drops(folds: _Folds, name: str, spec: CorruptionSpec, metric: str) -> list[float | None]:
    """Per fold, the mean over the levels of ``score(level) - score(clean)``."""
    clean = folds.clean_folds(name, metric)
    out: list[float | None] = []
    for f in range(folds.n_folds):
        values = [folds.level_folds(name, spec.key, k, metric)[f] for k in spec.level_keys]
        if clean[f] is None or any(v is None for v in values):
            out.append(None)
        else:
            out.append(float(np.mean(values)) - clean[f])
    return out


def _normalized(area: float | None, baseline_areas: list[float]) -> float | None:
    if area is None or len(baseline_areas) < 2:
        return None
    lo, hi = min(baseline_areas), max(baseline_areas)
    return None if hi - lo < 1e-12 else (area - lo) / (hi - lo)


def _summaries(
    folds: _Folds, names: list[str], specs: list[CorruptionSpec], baselines: list[str], seed: int
) -> dict[str, Any]:
    """The per-level summaries, areas, relative and effective robustness of every strategy."""
    curves: dict[str, Any] = {}
    area: dict[str, Any] = {}
    relative: dict[str, Any] = {}
    effective: dict[str, Any] = {}
    for name in names:
        curves[name], area[name], relative[name], effective[name] = {}, {}, {}, {}
        for spec in specs:
            curves[name][spec.key] = {
                k: {m: summarize(folds.level_folds(name, spec.key, k, m)) for m in METRICS}
                for k in spec.level_keys
            }
            area[name][spec.key] = {m: summarize(_areas(folds, name, spec, m)) for m in METRICS}
            relative[name][spec.key], effective[name][spec.key] = {}, {}
            for m in METRICS:
                mine, drops = _areas(folds, name, spec, m), _drops(folds, name, spec, m)
                refs = [b for b in baselines if b != name]
                relative[name][spec.key][m] = {
                    "area": area[name][spec.key][m]["mean"],
                    "vs": {b: _paired(mine, _areas(folds, b, spec, m), seed=seed) for b in refs},
                }
                effective[name][spec.key][m] = {
                    "drop": summarize(drops),
                    "vs": {b: _paired(drops, _drops(folds, b, spec, m), seed=seed) for b in refs},
                }
    for name in names:  # normalised against every baseline's area, once all are known
        for spec in specs:
            for m in METRICS:
                entry = relative[name][spec.key][m]
                bases = [
                    area[b][spec.key][m]["mean"]
                    for b in baselines
                    if area[b][spec.key][m]["mean"] is not None
                ]
                entry["normalized"] = _normalized(entry["area"], bases)
    return {
        "robustness": curves,
        "area": area,
        "relative_robustness": relative,
        "effective_robustness": effective,
    }


def _baselines(names: Sequence[str], late_baseline: str | None) -> tuple[list[str], str | None]:
    unimodal = [n for n in names if n.startswith("unimodal:")]
    late = late_baseline if late_baseline in names else next((n for n in LATE_BASELINES if n in names), None)
    return unimodal, late


def robustness(
    strategies: Mapping[str, Any],
    table: Any,
    corruptions: Sequence[str | CorruptionSpec] | str,
    *,
    cv: CVSpec = 5,
    seed: int = 0,
    corruption_seed: int | None = None,
    late_baseline: str | None = None,
    progress: Callable[..., Any] | None = None,
    dataset_name: str | None = None,
) -> dict[str, Any]:
    """Robustness curves of several strategies on the same folds (see the module for the measures).

    Parameters
    ----------
    strategies : mapping of str to estimator
        Unfitted estimators by name (as for :func:`compare`); ``unimodal:<input>`` ones and the late-fusion
        baseline are the references of relative and effective robustness.
    table : MultimodalTable
    corruptions : str or sequence of str
        Specs ``INPUT:NAME=LEVEL[,LEVEL...][@SHARE]`` (see :func:`modalfuse.parse_corruption`), checked
        against the table before anything is fitted.
    cv : int, str or splitter, default=5
        As for :func:`compare`.
    seed : int, default=0
        Seed of the folds and of the bootstrap intervals.
    corruption_seed : int, optional
        Seed of the corruptions (default: ``seed``).
    late_baseline : str, optional
        The late-fusion baseline (default: the first of :data:`LATE_BASELINES` among ``strategies``).
    progress : callable, optional
        ``progress(event, **info)``: ``"start"`` (``total``), ``"step"`` after each fit (``fold``,
        ``strategy``) and each corruption level (``strategy`` is ``"<curve>=<level>"``), ``"end"``.

    Returns
    -------
    dict
        ``{"dataset", "n_rows", "classes", "cv", "corruptions": {curve: {...}}, "clean": {strategy: {metric:
        summary}}, "robustness": {strategy: {curve: {level: {metric: {"mean", "std", "folds"}}}}}, "area":
        {strategy: {curve: {metric: summary}}}, "relative_robustness": {...}, "effective_robustness":
        {...}, "baselines": {"unimodal": [...], "late": name}, "definitions", "errors": {strategy: {"error",
        "fold"}}, "timing": {"fit_seconds", "clean_predict_seconds", "corrupted_seconds" (corrupting the
        test rows and predicting them, every level), "per_level", "fits" (fits per strategy: one per fold),
        "wall_seconds", "n_levels"}, "seed", "corruption_seed"}``; a curve is named
        by its spec without levels (``"audio:noise@0.5"``), a level by its value (``"20"``, ``"0.25"``).
    """
    if isinstance(corruptions, str):
        corruptions = [corruptions]
    specs = parse_corruptions(list(corruptions), table.inputs)
    if not specs:
        from modalfuse._errors import OptionError

        raise OptionError("robustness needs at least one corruption, e.g. 'audio:noise=20,10,5,0,-5'")
    corruption_seed = seed if corruption_seed is None else corruption_seed
    wall = time.perf_counter()
    y = np.asarray(table.y).reshape(-1)
    groups = _table_groups(table)
    splits = make_splits(y, groups, cv=cv, seed=seed)
    names = list(strategies)
    n_levels = sum(len(s.levels) for s in specs)
    folds = _Folds(names, specs, len(splits))
    timing: dict[str, Any] = {
        "fit_seconds": 0.0,
        "clean_predict_seconds": 0.0,
        "corrupted_seconds": 0.0,
        "per_level": {},
        "fits": {},
    }
    ctx = {
        "folds": folds,
        "failed": {},
        "timing": timing,
        "progress": progress,
        "classes": _table_classes(table),
        "corruption_seed": corruption_seed,
    }
    _emit(
        progress, "start", total=len(splits) * (len(names) + n_levels), n_folds=len(splits), strategies=names
    )
    for fold, split in enumerate(splits):
        _run_fold(strategies, table, split, fold, specs, ctx)
    ok = [n for n in names if n not in ctx["failed"]]
    unimodal, late = _baselines(ok, late_baseline)
    result = {
        "dataset": dataset_name if dataset_name is not None else getattr(table, "name", None),
        "n_rows": len(table),
        "classes": [_jsonable(c) for c in ctx["classes"]],
        "cv": _cv_info(cv, seed, table, groups, splits),
        "corruptions": {s.key: _describe(s, table) for s in specs},
        "clean": {n: {m: summarize(folds.clean_folds(n, m)) for m in METRICS} for n in ok},
        **_summaries(folds, ok, specs, [*unimodal, *([late] if late else [])], seed),
        "baselines": {"unimodal": unimodal, "late": late},
        "definitions": DEFINITIONS,
        "errors": ctx["failed"],
        "seed": seed,
        "corruption_seed": corruption_seed,
    }
    timing["wall_seconds"] = time.perf_counter() - wall
    timing["n_levels"] = n_levels
    result["timing"] = timing
    _emit(progress, "end", wall_seconds=timing["wall_seconds"])
    return result


def _describe(spec: CorruptionSpec, table: Any) -> dict[str, Any]:
    modality = table.inputs[spec.input][0]
    corruption = spec.corruption(modality)
    return {
        "input": spec.input,
        "modality": modality,
        "corruption": spec.name,
        "levels": spec.level_keys,
        "share": spec.share,
        "level_meaning": corruption.level,
        "description": corruption.description,
        "spec": spec.text or spec.key,
    }


# ----------------------------------------------------------------------------------------------- the table
def _mean(summary: Mapping[str, Any] | None) -> str:
    value = None if summary is None else summary.get("mean")
    return "  -  " if value is None else f"{value:.3f}"


def _effective_text(result: Mapping[str, Any], name: str, curve: str, metric: str) -> str:
    """``+0.012 [-0.004, +0.030]`` against the late-fusion baseline, or ``-``."""
    late = result["baselines"]["late"]
    entry = result["effective_robustness"][name][curve][metric]["vs"].get(late)
    if not entry or entry.get("mean_diff") is None:
        return "-"
    low, high = entry["ci95"]
    interval = "" if low is None or high is None else f" [{low:+.3f}, {high:+.3f}]"
    return f"{entry['mean_diff']:+.3f}{interval}"


def format_robustness(result: Mapping[str, Any], *, metric: str = "accuracy") -> str:
    """A plain-text table per curve of a :func:`robustness` result: each strategy's clean score, its score
    at every level (means over folds), the area under the curve and its effective robustness against the
    late-fusion baseline (mean and 95 % interval over folds)."""
    lines = []
    late = result["baselines"]["late"]
    for curve, info in result["corruptions"].items():
        levels = info["levels"]
        lines.append(f"{curve} ({info['level_meaning']}), {metric}:")
        width = max(len(n) for n in result["robustness"]) if result["robustness"] else 8
        header = ["strategy".ljust(width), "clean", *(k.rjust(5) for k in levels), " area"]
        lines.append("  ".join([*header, f"effective vs {late}" if late else ""]).rstrip())
        order = sorted(
            result["robustness"],
            key=lambda n: -(result["area"][n][curve][metric]["mean"] or -1.0),
        )
        for name in order:
            cells = [
                name.ljust(width),
                _mean(result["clean"][name][metric]),
                *(_mean(result["robustness"][name][curve][k][metric]) for k in levels),
                _mean(result["area"][name][curve][metric]),
                "" if name == late else _effective_text(result, name, curve, metric),
            ]
            lines.append("  ".join(cells).rstrip())
        lines.append("")
    return "\n".join(lines).rstrip()


# ---------------------------------------------------------------------------------------------- the figure
def plot_robustness(result: Mapping[str, Any], path: Any, *, metric: str = "accuracy") -> None:
    """Draw every curve of a :func:`robustness` result (one panel per curve, one line per strategy, the
    clean score first, bars of one standard deviation over folds) and save it (SVG by the file's suffix)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    curves = list(result["corruptions"])
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves) + 1.5, 3.6), squeeze=False)
    for ax, curve in zip(axes[0], curves, strict=True):
        levels = result["corruptions"][curve]["levels"]
        x = np.arange(len(levels) + 1)
        for name, per_curve in result["robustness"].items():
            clean = result["clean"][name][metric]
            points = [clean, *(per_curve[curve][k][metric] for k in levels)]
            means = [np.nan if p["mean"] is None else p["mean"] for p in points]
            stds = [0.0 if p["std"] is None else p["std"] for p in points]
            ax.errorbar(x, means, yerr=stds, marker="o", markersize=3, capsize=2, linewidth=1.2, label=name)
        ax.set_xticks(x, ["clean", *levels])
        info = result["corruptions"][curve]
        ax.set_xlabel(f"{info['level_meaning']}")
        ax.set_title(curve, fontsize=10)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
