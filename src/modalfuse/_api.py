"""Top-level conveniences: strategies by name, cross-validation and comparison on a table."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from modalfuse._cache import Cache, using_cache
from modalfuse._errors import SchemaError, UnknownNameError
from modalfuse.data._schema import Schema
from modalfuse.data._table import MultimodalTable

if TYPE_CHECKING:  # imported lazily at run time (see __getattr__), so torch loads only when needed
    from modalfuse.fusion import FusionStrategy, NeuralFusion, get_fusion, list_fusions, register_fusion

__all__ = [
    "FusionStrategy",
    "NeuralFusion",
    "compare",
    "cross_validate",
    "get_fusion",
    "list_fusions",
    "make_strategies",
    "register_fusion",
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

    Returns
    -------
    dict
        ``metrics`` (mean, std, folds of accuracy, F1 and the rest), ``confusion_matrix``, timings.
    """
    from modalfuse.evaluate import cross_validate as _cv

    with using_cache(Cache() if cache is None else cache):
        return _cv(
            estimator,
            with_groups(table, groups),
            cv=cv,
            seed=seed,
            return_predictions=return_predictions,
            progress=progress,
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
    **params: Any,
) -> dict[str, Any]:
    """Run every strategy of ``fusion`` and the baselines (unimodal, tuned linear) on the same folds.

    ``params`` are :class:`MultimodalClassifier` settings shared by every strategy (``epochs=``,
    ``n_threads=``, ``verbose=``, ...); ``fold_metrics`` adds per-fold measures, ``checkpoint`` writes the
    results fold by fold to a JSON file and ``resume`` continues from it (see
    :func:`modalfuse.evaluate.compare`). ``cache`` holds the decoded media, features and per-input models
    the strategies share (see :class:`modalfuse.Cache`); default: a new one, released when the run ends, so
    one run never reuses another's models.
    Returns the comparison as a JSON-able dict (see ``modalfuse evaluate --json``).
    """
    from modalfuse._params import check_installed
    from modalfuse.evaluate import compare as compare_estimators

    check_installed(params.get("encoders"))  # once, not once per strategy and fold
    table = with_groups(table, groups)
    model_seed = {} if "random_state" in params else {"seed": seed}  # an explicit random_state wins
    strategies = make_strategies(table, fusion, **model_seed, **params)
    with using_cache(Cache() if cache is None else cache):
        return compare_estimators(
            strategies,
            table,
            cv=cv,
            seed=seed,
            progress=progress,
            dataset_name=table.name,
            fold_metrics=fold_metrics,
            checkpoint=checkpoint,
            resume=resume,
        )
