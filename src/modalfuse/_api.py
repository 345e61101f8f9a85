"""Top-level conveniences: strategies by name, cross-validation and comparison on a table."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from modalfuse._backend import Backend, resolve_backend
from modalfuse._cache import Cache, using_cache
from modalfuse._errors import SchemaError, UnknownNameError
from modalfuse.data._schema import Schema
from modalfuse.data._table import MultimodalTable

if TYPE_CHECKING:  # imported lazily at run time (see __getattr__), so torch loads only when needed
    from modalfuse.fusion import FusionStrategy, NeuralFusion, get_fusion, list_fusions, register_fusion
    from modalfuse.report import ComparisonResult

__all__ = [
    "FusionStrategy",
    "NeuralFusion",
    "compare",
    "cross_validate",
    "get_fusion",
    "list_fusions",
    "make_strategies",
    "missing_policies",
    "register_fusion",
    "robustness",
    "with_groups",
]

#: What ``--fusion`` families expand to (besides ``unimodal``, which gives one baseline per input).
FAMILIES: dict[str, list[str]] = {
    "late": ["late:mean", "late:weighted", "late:stacking", "late:product", "late:confidence"],
    "early": ["early"],
    "joint": ["tensor", "lowrank", "attention"],
    "shared": ["shared", "cca"],
}


def __getattr__(name: str) -> Any:
    if name in ("FusionStrategy", "NeuralFusion", "get_fusion", "list_fusions", "register_fusion"):
        import modalfuse.fusion as fusion

        return getattr(fusion, name)
    raise AttributeError(name)


def with_groups(table: MultimodalTable, groups: str | Sequence[Any] | np.ndarray | None) -> MultimodalTable:
    """``table`` with its groups set from a column name (taken out of the features) or an array."""
    if groups is None:
        return table
    frame, schema, present = table.frame, dict(table.schema.columns), dict(table.present)
    if isinstance(groups, str):
        if groups == table.group_column:
            return table
        if groups not in frame.columns:
            raise SchemaError(
                f"groups column {groups!r} is not in the table; columns are {list(frame.columns)}"
            )
        values = frame[groups].astype(str).to_numpy()
        frame = frame.drop(columns=groups)
        schema.pop(groups, None)
        present.pop(groups, None)
        column: str | None = groups
    else:
        values = np.asarray(groups).astype(str)
        if len(values) != len(table):
            raise SchemaError(f"groups has {len(values)} values for a table of {len(table)} rows")
        column = table.group_column
    return MultimodalTable(
        frame,
        schema=Schema(schema),
        y=table.y,
        label=table.label,
        groups=values,
        group_column=column,
        present=present,
        problems=table.problems,
        notes=table.notes,
        row_ids=table.row_ids,
        name=table.name,
    )


def cross_validate(
    estimator: Any,
    table: MultimodalTable,
    *,
    cv: int | str | Any = 5,
    groups: str | Sequence[Any] | None = None,
    seed: int = 0,
    return_predictions: bool = False,
    progress: Callable[..., None] | None = None,
    cache: Cache | None = None,
    backend: Backend | str | None = None,
) -> dict[str, Any]:
    """Cross-validate ``estimator`` on ``table``: stratified folds, grouped when groups are known.

    Parameters
    ----------
    cv : int, "loso" or a scikit-learn splitter
        ``K`` stratified (grouped) folds, ``"loso"`` for leave-one-group-out, ``"kfold:K"`` for plain folds.
    groups : str or array, optional
        A column (taken out of the features) or one group per row; defaults to the table's own groups.
    cache : Cache, optional
        The cache of decoded media, features and fitted per-input models for this run (see
        :class:`modalfuse.Cache`); default: a new one, released when the run ends.
    backend : Backend or str, optional
        Where the folds run: ``"serial"`` (default), ``"processes"`` (local worker processes) or ``"ray"``
        (Ray tasks, here or on a cluster), or a :class:`modalfuse.Backend` with its settings; the same seed
        gives the same numbers on every backend.

    Returns
    -------
    dict
        ``metrics`` (mean, std, folds of accuracy, F1 and the rest), ``confusion_matrix``, timings.
    """
    from modalfuse.evaluate import cross_validate as _cv

    backend = resolve_backend(backend)  # a wrong one fails before anything is read
    with using_cache(Cache() if cache is None else cache):
        return _cv(
            estimator,
            with_groups(table, groups),
            cv=cv,
            seed=seed,
            return_predictions=return_predictions,
            progress=progress,
            backend=backend,
        )


#: The tuned linear baseline that :func:`make_strategies` adds to every comparison of fusions.
LINEAR = "linear"


def _fusion_items(fusion: str | Sequence[str]) -> list[str]:
    """The entries of a ``--fusion`` list, ``all`` expanded to every family."""
    items = [f.strip() for f in (fusion.split(",") if isinstance(fusion, str) else fusion) if f.strip()]
    return ["unimodal", *FAMILIES] if "all" in items else items


def _expand(item: str, table: MultimodalTable, known: list[str]) -> list[str]:
    """The strategy names one ``--fusion`` entry stands for; an exact name is checked against ``table``."""
    if item == "unimodal":
        return [f"unimodal:{n}" for n in table.inputs]
    if item in FAMILIES:
        return FAMILIES[item]
    if item.partition(":")[0] in known:
        _check_strategy_name(item, table)
        return [item]
    raise UnknownNameError("fusion", item, ["unimodal", *FAMILIES, "all", *known])


def _linear_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` for the linear baseline: of the shared ``encoders``, only the classical ones (it cannot
    use a trainable encoder; its own classical defaults take those inputs)."""
    from modalfuse.encoders import get_encoder, list_encoders

    encoders = params.get("encoders")
    if not encoders:
        return params
    known = set(list_encoders())
    classical = {k: v for k, v in encoders.items() if v not in known or not get_encoder(v).trainable}
    return {**params, "encoders": classical or None}


def make_strategies(
    table: MultimodalTable, fusion: str | Sequence[str] = "all", **params: Any
) -> dict[str, Any]:
    """Name -> unfitted :class:`MultimodalClassifier` for a ``--fusion`` list.

    ``fusion`` is a comma-separated list (or sequence) of ``unimodal``, ``late``, ``early``, ``all`` or exact
    strategy names such as ``late:stacking`` or ``unimodal:audio``. ``unimodal`` gives one baseline per
    input; ``late`` gives its mean, weighted, stacking, product and confidence combiners. The baselines are
    always added when any fusion is asked for, so a fusion is never reported without them: the unimodal ones
    (when the table has more than one input) and ``linear``, the tuned linear baseline on the classical
    features of every input (it keeps only the classical entries of ``encoders``).
    """
    from modalfuse.estimator import MultimodalClassifier
    from modalfuse.fusion import list_fusions

    known = list_fusions()
    unimodal = [f"unimodal:{n}" for n in table.inputs]
    names = [name for item in _fusion_items(fusion) for name in _expand(item, table, known)]
    if any(not n.startswith("unimodal:") and n != LINEAR for n in names):
        names = [*(unimodal if len(unimodal) > 1 else []), LINEAR, *names]
    names = list(dict.fromkeys(names))
    return {
        n: MultimodalClassifier(fusion=n, **(_linear_params(params) if n == LINEAR else params))
        for n in names
    }


def _check_strategy_name(name: str, table: MultimodalTable) -> None:
    """Refuse an exact strategy name that cannot run on ``table`` (an unknown ``late:`` method, a
    ``unimodal:`` input the table lacks) before anything is trained."""
    from modalfuse.fusion import get_fusion

    get_fusion(name)  # UnknownNameError / OptionError for a bad name or ':' argument
    base, _, only = name.partition(":")
    if base == "unimodal" and only not in table.inputs:
        raise UnknownNameError("input", only, table.inputs, hint=f"fusion {name!r}; table {table.name!r}")


def compare(
    table: MultimodalTable,
    *,
    fusion: str | Sequence[str] = "all",
    cv: int | str | Any = 5,
    groups: str | Sequence[Any] | None = None,
    seed: int = 0,
    progress: Callable[..., None] | None = None,
    fold_metrics: Callable[[str, Any, Any], Any] | None = None,
    cache: Cache | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    backend: Backend | str | None = None,
    explain: bool | Sequence[str] = False,
    missing: str | Sequence[str] | None = None,
    **params: Any,
) -> ComparisonResult:
    """Run every strategy of ``fusion`` and the baselines (unimodal, tuned linear) on the same folds.

    ``missing`` is a missing-input policy (see :class:`MultimodalClassifier`), or a list of policies to
    compare: each strategy that is not a baseline runs once per policy on the same folds, named
    ``"<strategy>"`` for ``mask`` and ``"<strategy>/<policy>"`` for the others (``early/fill``); the
    baselines (unimodal, ``linear``) always run with ``mask``, as the references. A strategy that cannot
    take a policy (``fill`` and ``generate`` need the shared per-input encoders: not ``cca`` or ``linear``) is left out of that policy and listed in the
    result's ``missing_policies.skipped``.

    ``params`` are :class:`MultimodalClassifier` settings shared by every strategy (``epochs=``,
    ``n_threads=``, ``verbose=``, ...); ``fold_metrics`` adds per-fold measures, ``checkpoint`` writes the
    results fold by fold to a JSON file and ``resume`` continues from it (see
    :func:`modalfuse.evaluate.compare`). ``cache`` holds the decoded media, features and per-input models
    the strategies share (see :class:`modalfuse.Cache`); default: a new one, released when the run ends, so
    one run never reuses another's models. ``backend`` runs the folds side by side: ``"processes"`` (local
    worker processes), ``"ray"`` (Ray tasks, here or on the cluster at ``RAY_ADDRESS``) or a
    :class:`modalfuse.Backend`; the same seed gives the same numbers as ``"serial"``, the default.
    ``explain=True`` (or a list of strategy names) also computes, in every fold, the modality Shapley
    values of each strategy (of those named) on the fold's test rows, summarised per input beside the
    leave-one-input-out accuracy drop (:func:`modalfuse.explain.global_summary`); each strategy's entry
    then has ``explanation`` (:func:`modalfuse.explain.combine_folds` of the folds, with ``per_fold``).
    Explaining costs fusion-head evaluations on the test rows, not training.

    Returns the comparison as a JSON-able dict (see ``modalfuse evaluate --json``), a
    :class:`~modalfuse.report.ComparisonResult`: a ``dict`` with ``to_html(path)`` and ``to_markdown()``.
    Besides :func:`modalfuse.evaluate.compare`'s keys it holds ``data`` (rows, classes, inputs, missing
    shares, problem cells, content digest; see :func:`modalfuse.report.data_summary`) and
    ``reproducibility`` (settings, seed, data digest, versions).
    """
    from modalfuse._params import check_installed
    from modalfuse.evaluate import compare as compare_estimators
    from modalfuse.report import ComparisonResult, data_summary, reproducibility

    backend = resolve_backend(backend)  # a wrong one fails before anything is trained
    check_installed(params.get("encoders"))  # once, not once per strategy and fold
    table = with_groups(table, groups)
    model_seed = {} if "random_state" in params else {"seed": seed}  # an explicit random_state wins
    policies = missing_policies(missing)
    strategies = make_strategies(table, fusion, **model_seed, **params)
    skipped: list[str] = []
    if policies != ["mask"]:
        strategies, skipped = with_policies(strategies, policies)
    with using_cache(Cache() if cache is None else cache):
        result = compare_estimators(
            strategies,
            table,
            cv=cv,
            seed=seed,
            progress=progress,
            dataset_name=table.name,
            fold_metrics=fold_metrics,
            checkpoint=checkpoint,
            resume=resume,
            backend=backend,
            fold_details=_explainer(explain, list(strategies)),
        )
    _attach_explanations(result)
    result["data"] = data_summary(table)
    result["reproducibility"] = reproducibility(
        table, fusion=fusion, cv=cv, seed=seed, params=params, digest=result["data"]["digest"]
    )
    if policies != ["mask"]:
        result["missing_policies"] = {"policies": policies, "skipped": skipped}
    if checkpoint is not None:
        from modalfuse.evaluate._checkpoint import write_json_atomic

        write_json_atomic(checkpoint, result)
    return ComparisonResult(result)


def _explainer(explain: bool | Sequence[str], names: list[str]) -> Callable[[str, Any, Any], Any] | None:
    """The ``fold_details`` of :func:`compare` that explains the strategies ``explain`` selects (None: no
    explanations). A failure to explain is recorded, never fails the strategy."""
    if explain is False or explain is None:
        return None
    chosen = set(names) if explain is True else set(_fusion_items(explain))
    unknown = sorted(chosen - set(names))
    if unknown:
        raise UnknownNameError("strategy to explain", unknown[0], names)

    def details(name: str, fitted: Any, test_table: Any) -> dict[str, Any] | None:
        if name not in chosen:
            return None
        from modalfuse.explain import fold_explanation

        try:
            return {"explanation": fold_explanation(fitted, test_table)}
        except Exception as exc:  # an explanation that fails leaves the strategy's scores as they are
            return {"explanation_error": f"{type(exc).__name__}: {exc}"}

    return details


def _attach_explanations(result: dict[str, Any]) -> None:
    """Each strategy's per-fold explanations (``fold_details``) summarised over the folds as
    ``explanation`` (errors, if any, in ``explanation_errors``)."""
    from modalfuse.explain import combine_folds

    for entry in result.get("strategies", {}).values():
        details = entry.pop("fold_details", None)
        if not details:
            continue
        folds = [(d or {}).get("explanation") for d in details]
        errors = [(d or {}).get("explanation_error") for d in details]
        if any(f is not None for f in folds):
            entry["explanation"] = {**combine_folds(folds), "per_fold": folds}
        if any(errors):
            entry["explanation_errors"] = errors


def missing_policies(missing: str | Sequence[str] | None) -> list[str]:
    """The policies of ``compare(missing=...)``: one (a string) or several (a list or comma list), ``native``
    read as ``mask``, each checked (an :class:`UnknownNameError` names a bad one)."""
    from modalfuse._params import MISSING_POLICIES

    if missing is None:
        return ["mask"]
    items = [m.strip() for m in (missing.split(",") if isinstance(missing, str) else missing)]
    items = list(dict.fromkeys("mask" if m == "native" else m for m in items if m))
    for item in items:
        if item not in MISSING_POLICIES:
            raise UnknownNameError("missing-input policy", item, MISSING_POLICIES)
    return items or ["mask"]


def with_policies(strategies: dict[str, Any], policies: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """Each strategy that is not a baseline once per policy (``name`` for ``mask``, ``name/policy``
    otherwise), the baselines once with ``mask``; and the ``name/policy`` pairs a strategy cannot take."""
    from sklearn.base import clone

    from modalfuse._errors import OptionError
    from modalfuse._params import make_strategy
    from modalfuse.evaluate._cv import is_baseline

    out: dict[str, Any] = {}
    skipped = []
    for name, est in strategies.items():
        if is_baseline(name):
            out[name] = clone(est).set_params(missing="mask")
            continue
        for policy in policies:
            key = name if policy == "mask" else f"{name}/{policy}"
            candidate = clone(est).set_params(missing=policy)
            try:
                make_strategy(candidate.fusion, candidate.fusion_options, candidate.get_params())
            except OptionError:
                skipped.append(key)
                continue
            out[key] = candidate
    return out, skipped


def robustness(
    table: MultimodalTable,
    corrupt: str | Sequence[str],
    *,
    fusion: str | Sequence[str] = "all",
    cv: int | str | Any = 5,
    groups: str | Sequence[Any] | None = None,
    seed: int = 0,
    corruption_seed: int | None = None,
    progress: Callable[..., None] | None = None,
    cache: Cache | None = None,
    missing: str | Sequence[str] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Robustness curves: every strategy of ``fusion`` and the baselines trained once per fold, then scored
    on the fold's test rows corrupted at every level of every spec of ``corrupt``.

    Parameters
    ----------
    table : MultimodalTable
    corrupt : str or list of str
        Corruption specs ``INPUT:NAME=LEVEL[,LEVEL...][@SHARE]``, e.g. ``"audio:noise=20,10,5,0,-5@0.5"``
        (white noise at those SNRs on a random half of the test rows) or ``"image:missing=0,0.5,1"`` (see
        :func:`modalfuse.list_corruptions`); checked against the table before anything is trained.
    fusion : str or list of str, default="all"
        As for :func:`compare`; the unimodal baselines, ``linear`` and the late-fusion baseline
        (``late:weighted``, added when no late strategy is listed) are always run, as the references of
        relative and effective robustness.
    cv, groups, seed, progress, cache, missing
        As for :func:`compare` (``missing``: one policy or several, each strategy run once per policy);
        ``corruption_seed`` seeds the corruptions (default: ``seed``).
    **params
        :class:`MultimodalClassifier` settings shared by every strategy.

    Returns
    -------
    dict
        See :func:`modalfuse.evaluate.robustness`: per strategy, curve and level the accuracy and macro-F1
        (mean, std, per fold), the area under each curve, relative and effective robustness against the
        baselines, the fits per strategy (one per fold) and the timings.
    """
    from modalfuse._corruptions import parse_corruptions
    from modalfuse.estimator import MultimodalClassifier
    from modalfuse.evaluate._robustness import LATE_BASELINES
    from modalfuse.evaluate._robustness import robustness as robustness_curves

    table = with_groups(table, groups)
    specs = parse_corruptions(corrupt, table.inputs)
    model_seed = {} if "random_state" in params else {"seed": seed}
    strategies = make_strategies(table, fusion, **model_seed, **params)
    if not any(name in LATE_BASELINES for name in strategies):
        strategies["late:weighted"] = MultimodalClassifier(fusion="late:weighted", **model_seed, **params)
    policies = missing_policies(missing)
    if policies != ["mask"]:
        strategies, _ = with_policies(strategies, policies)
    with using_cache(Cache() if cache is None else cache):
        return robustness_curves(
            strategies,
            table,
            specs,
            cv=cv,
            seed=seed,
            corruption_seed=corruption_seed,
            progress=progress,
            dataset_name=table.name,
        )
