"""The checks of ``MultimodalClassifier``'s hyperparameters, run at the start of ``fit`` and on ``load``.

Each scalar hyperparameter is declared once in :data:`PARAMS` (kind, valid range, one-line help); the
mapping-valued ones (``encoders``, ``preprocess``, ``fusion_options``, ``class_weight``) and ``device`` have
checks of their own. Every failure is an :class:`~modalfuse.OptionError` (a ``ValueError``) or an
:class:`~modalfuse.UnknownNameError` (a ``KeyError``) that names the parameter and states what is valid.
Nothing here imports torch at module level.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from modalfuse._errors import OptionError, UnknownNameError, did_you_mean
from modalfuse._options import DEFAULT_HIDDEN, DEFAULT_INNER_FOLDS, Option

__all__ = [
    "MISSING_POLICIES",
    "OWNER",
    "PARAMS",
    "check_class_weight",
    "check_mappings",
    "check_scalar_params",
    "check_train_corruptions",
    "device_error",
    "make_strategy",
    "row_weights",
    "supports_sample_weight",
]

OWNER = "MultimodalClassifier"
_MAX_SEED = 2**31 - 1
#: The missing-modality policies of ``MultimodalClassifier(missing=...)`` (``native`` is ``mask``).
MISSING_POLICIES = ("mask", "native", "fill", "generate", "drop")

#: The scalar hyperparameters of ``MultimodalClassifier``: kind, default and valid range of each.
PARAMS: dict[str, Option] = {
    "epochs": Option(20, "int", "passes over the training rows", low=1),
    "min_steps": Option(200, "int", "fewest optimiser updates of a network", low=0),
    "batch_size": Option(
        64,
        "int",
        "rows per optimiser step",
        low=2,
        reason="a one-row batch is skipped, as BatchNorm needs two rows, so batch_size=1 would train nothing",
    ),
    "learning_rate": Option(3e-3, "float", "AdamW's peak learning rate", low=0.0, low_open=True),
    "weight_decay": Option(1e-4, "float", "AdamW's weight decay", low=0.0),
    "modality_dropout": Option(
        0.0, "float", "probability of hiding a present input", low=0.0, high=1.0, high_open=True
    ),
    "augment": Option(True, "bool", "train-time augmentation"),
    "recombine_ratio": Option(0.0, "float", "share of rows rebuilt from same-class rows", low=0.0, high=1.0),
    "mixup_alpha": Option(0.0, "float", "Beta(alpha, alpha) of multimodal mixup (0: off)", low=0.0),
    "inner_folds": Option(DEFAULT_INNER_FOLDS, "int", "folds of the cross-fitted per-input models", low=1),
    "hidden": Option(DEFAULT_HIDDEN, "int", "width of the fused head (0: linear, where allowed)", low=0),
    "random_state": Option(0, "int", "seed of every random choice", low=0, high=_MAX_SEED),
    "seed": Option(None, "int", "alias of random_state", low=0, high=_MAX_SEED, none_ok=True),
    "device": Option("cpu", "str", "torch device"),
    "n_threads": Option(
        None, "int", "torch CPU threads (None: OMP_NUM_THREADS, else 1)", low=1, none_ok=True
    ),
    "verbose": Option(0, "int", "progress lines: 0 none, 1 networks, 2 or more also epochs", low=0),
    "backend": Option(
        None,
        "str",
        "where a fit's per-input networks train: serial, processes or ray (None: serial)",
        choices=("serial", "processes", "ray"),
        none_ok=True,
    ),
    "missing": Option(
        "mask",
        "str",
        "a missing input: mask (handled natively), fill, generate or drop",
        choices=MISSING_POLICIES,
    ),
}


def check_scalar_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar hyperparameters of ``params`` (a ``get_params()`` dict), coerced and checked.

    Returns every entry of :data:`PARAMS` present in ``params``, plus ``"seed"`` set to the resolved seed
    (``seed`` when given, else ``random_state``).

    Raises
    ------
    OptionError
        A value of the wrong type or out of range (the message gives the valid range), or ``seed`` and
        ``random_state`` both set to different values.
    """
    out = {
        name: opt.coerce(params[name], name, OWNER, "parameter")
        for name, opt in PARAMS.items()
        if name in params
    }
    seed, state = out.get("seed"), out.get("random_state", 0)
    if seed is not None and state not in (0, seed):
        raise OptionError(
            f"{OWNER}: seed={seed} and random_state={state} disagree; seed is an alias of random_state, "
            "set one of them"
        )
    out["seed"] = state if seed is None else seed
    return out


def device_error(device: str) -> str | None:
    """Why ``device`` cannot hold tensors on this machine (a message), or None when it can."""
    import torch

    try:
        torch.empty(0, device=torch.device(device))
    except (RuntimeError, AssertionError, ValueError, TypeError) as exc:  # AssertionError: no CUDA build
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def _check_names(param: str, value: Any, item: str) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise OptionError(f"{OWNER}: parameter {param!r} must be a dict of {item} or None, got {value!r}")
    for key in value or {}:
        if not isinstance(key, str):
            raise OptionError(f"{OWNER}: parameter {param!r}: keys must be strings, got {key!r}")


def check_mappings(encoders: Any, preprocess: Any, fusion_options: Any, modalities: Any) -> None:
    """Types of the mapping-valued hyperparameters; every encoder named must be registered.

    Raises
    ------
    OptionError
        Not a dict (or None), a non-string key, a preprocess entry that is not a dict.
    UnknownNameError
        An encoder name that is not registered (with the closest registered name).
    """
    from modalfuse.encoders._registry import get_encoder

    _check_names("encoders", encoders, "input/column/modality -> encoder name")
    for key, name in (encoders or {}).items():
        if not isinstance(name, str):
            raise OptionError(f"{OWNER}: encoders[{key!r}] must be an encoder name, got {name!r}")
        get_encoder(name)
    check_installed(encoders)
    _check_names("preprocess", preprocess, "input/column/modality -> options")
    for key, opts in (preprocess or {}).items():
        if not isinstance(opts, Mapping):
            raise OptionError(f"{OWNER}: preprocess[{key!r}] must be a dict of options, got {opts!r}")
    _check_names("fusion_options", fusion_options, "option -> value")
    _check_names("modalities", modalities, "column -> modality")


def check_train_corruptions(value: Any) -> list[Any]:
    """``train_corruptions`` (None, a spec string or a list of them) as parsed specs (syntax only; the
    inputs are checked against the table at ``fit``).

    Raises
    ------
    OptionError
        Not a string or a list of strings, or a malformed spec (the message names it).
    """
    from modalfuse._corruptions import parse_corruptions

    if value is None:
        return []
    if not isinstance(value, str) and (
        not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value)
    ):
        raise OptionError(
            f"{OWNER}: parameter 'train_corruptions' must be None, a spec such as 'audio:noise=10,0@0.5' or a "
            f"list of them, got {value!r}"
        )
    try:
        return parse_corruptions(value)
    except OptionError as exc:
        raise OptionError(f"{OWNER}: parameter 'train_corruptions': {exc}") from None


def strategy_missing(policy: str) -> str:
    """The ``missing`` option a strategy gets for the estimator's policy: ``fill`` and ``generate`` are the
    strategy's; ``mask``, ``native`` and ``drop`` (the estimator trains on complete rows) give ``mask``."""
    return policy if policy in ("fill", "generate") else "mask"


def check_installed(encoders: Any) -> None:
    """Every pretrained encoder named in ``encoders`` has its packages installed, else a one-line
    :class:`~modalfuse.ModalfuseError` naming the extra to install (before anything is read)."""
    from modalfuse.encoders._pretrained import PRETRAINED

    for name in encoders.values() if isinstance(encoders, Mapping) else ():
        if isinstance(name, str) and name in PRETRAINED:
            PRETRAINED[name].check_installed()


def make_strategy(fusion: Any, fusion_options: Mapping[str, Any] | None, scalars: Mapping[str, Any]) -> Any:
    """A new strategy for ``fusion``, given the estimator's ``inner_folds``, ``hidden`` and ``missing`` where
    it declares them and ``fusion_options`` (which win), all checked by the strategy.

    Raises
    ------
    UnknownNameError
        ``fusion`` is not registered, or its ``:`` argument is not one of its choices.
    OptionError
        An option the strategy does not declare, or a bad value; ``missing="fill"`` or ``"generate"`` for a
        strategy that has no per-input encoders to impute embeddings of.
    """
    from modalfuse.fusion._base import get_fusion, list_fusions, strategy_class

    if not isinstance(fusion, str):
        raise UnknownNameError("fusion", repr(fusion), list_fusions(), hint="a fusion is named by a string")
    declared = strategy_class(fusion).declared_options()
    shared = {k: scalars[k] for k in ("inner_folds", "hidden") if k in declared and k in scalars}
    policy = strategy_missing(scalars.get("missing") or "mask")
    if policy != "mask":
        if "missing" not in declared:
            raise OptionError(
                f"{OWNER}: missing={policy!r} imputes embeddings of the shared per-input encoders, which fusion "
                f"{fusion!r} does not use (it works with unimodal, late and the joint strategies; 'mask' and "
                "'drop' work with every strategy)"
            )
        shared["missing"] = policy
    return get_fusion(fusion, **{**shared, **(fusion_options or {})})


def supports_sample_weight(strategy: Any) -> bool:
    """Whether ``strategy.fit`` takes ``sample_weight``."""
    params = inspect.signature(strategy.fit).parameters
    return "sample_weight" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def check_class_weight(class_weight: Any) -> None:
    """``class_weight`` is None, ``"balanced"`` or a dict label -> finite weight >= 0."""
    if class_weight is None or class_weight == "balanced":
        return
    if not isinstance(class_weight, Mapping):
        raise OptionError(
            f"{OWNER}: parameter 'class_weight' must be None, 'balanced' or a dict label -> weight, "
            f"got {class_weight!r}"
        )
    for label, w in class_weight.items():
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not (math.isfinite(w) and w >= 0):
            raise OptionError(f"{OWNER}: class_weight[{label!r}] must be a finite number >= 0, got {w!r}")


def _class_weights(class_weight: Any, classes: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Weight per class (in ``classes`` order) for ``class_weight``; None for None."""
    if class_weight is None:
        return None
    if class_weight == "balanced":  # as scikit-learn: n_rows / (n_classes * rows of the class)
        return len(y) / (len(classes) * np.bincount(y, minlength=len(classes)).astype(np.float64))
    known = classes.tolist()
    unknown = [label for label in class_weight if label not in known]
    if unknown:
        labels = [str(c) for c in known]
        raise OptionError(
            f"{OWNER}: class_weight names the label {unknown[0]!r}, which no training row has"
            f"{did_you_mean(str(unknown[0]), labels)} (labels: {', '.join(labels)})"
        )
    return np.array([float(class_weight.get(c, 1.0)) for c in known])


def _sample_weights(sample_weight: Any, n_rows: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise OptionError(f"{OWNER}.fit: sample_weight must be numbers, one per row") from None
    if w.shape != (n_rows,):
        raise OptionError(
            f"{OWNER}.fit: sample_weight has shape {w.shape}, expected ({n_rows},): one per row"
        )
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if len(bad):
        raise OptionError(
            f"{OWNER}.fit: sample_weight must be finite and >= 0; row {int(bad[0])} has {float(w[bad[0]])}"
        )
    if not w.sum() > 0:
        raise OptionError(f"{OWNER}.fit: sample_weight sums to 0: no row would count")
    return w


def row_weights(
    class_weight: Any, sample_weight: Any, classes: np.ndarray, y: np.ndarray
) -> np.ndarray | None:
    """One weight per training row: ``sample_weight`` times the weight of the row's class, rescaled to
    average 1 (only their ratios matter, also to the regularisation of the linear fits), or None when
    neither is set (every row counts once).

    Parameters
    ----------
    class_weight : None, "balanced" or dict
        Label -> weight (labels absent from the dict weigh 1); ``"balanced"`` weighs each class by
        ``n_rows / (n_classes * its rows)``.
    sample_weight : array-like of shape (n_rows,) or None
    classes : ndarray of shape (n_classes,)
        The sorted labels.
    y : ndarray of shape (n_rows,)
        Each row's class index.

    Raises
    ------
    OptionError
        ``sample_weight`` of the wrong length, negative, not finite or summing to 0; rows whose weights
        are all 0; a ``class_weight`` label that no training row has.
    """
    per_class = _class_weights(class_weight, classes, y)
    w = _sample_weights(sample_weight, len(y))
    if per_class is None and w is None:
        return None
    out = w if per_class is None else (per_class[y] if w is None else w * per_class[y])
    if not out.sum() > 0:
        raise OptionError(f"{OWNER}.fit: class_weight and sample_weight leave every row with weight 0")
    return out * (len(out) / out.sum())  # only ratios matter: the same fit whatever the weights' scale
