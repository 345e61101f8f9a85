"""Classification metrics for one fold, and their summary over folds.

Every number returned is a plain Python ``float`` (or ``int`` in a confusion matrix), or ``None`` where
a metric is undefined for the fold, so results can go straight into ``json.dumps``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from modalfuse._errors import SchemaError

__all__ = ["SCALAR_METRICS", "classification_metrics", "summarize"]

#: Smallest probability used in the log loss, so a confident mistake costs a finite amount.
PROBA_EPS = 1e-15

#: Scalar metrics every problem gets, in reporting order.
SCALAR_METRICS: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc",
    "log_loss",
)

#: Extra scalar metrics of binary problems (positive class = ``classes[1]``).
BINARY_METRICS: tuple[str, ...] = ("f1_positive", "pr_auc_positive")


def _float_or_none(value: Any) -> float | None:
    """Convert to a plain ``float``; NaN, infinity and ``None`` become ``None``."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _label_codes(y_true: np.ndarray, classes: Sequence[Any]) -> np.ndarray:
    """Map each label to its position in ``classes``; unknown labels are an error."""
    index = {c: i for i, c in enumerate(np.asarray(classes).tolist())}
    if len(index) != len(classes):
        raise SchemaError(f"classes must be distinct, got {list(classes)!r}")
    codes = np.empty(len(y_true), dtype=np.int64)
    for row, label in enumerate(np.asarray(y_true).tolist()):
        try:
            codes[row] = index[label]
        except (KeyError, TypeError):
            raise SchemaError(
                f"label {label!r} (row {row}) is not one of the classes {list(index)!r}"
            ) from None
    return codes


def classification_metrics(y_true: Any, proba: Any, classes: Sequence[Any]) -> dict[str, Any]:
    """Compute the classification metrics of one fold.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        True labels; each must be one of ``classes``.
    proba : array-like of shape (n, n_classes)
        Predicted class probabilities, columns in ``classes`` order.
    classes : sequence of length n_classes
        All classes of the problem (not only those present in this fold), in column order.

    Returns
    -------
    dict
        ``accuracy``, ``balanced_accuracy``, ``precision_macro``, ``recall_macro``, ``f1_macro``,
        ``precision_weighted``, ``recall_weighted``, ``f1_weighted``, ``roc_auc``, ``log_loss``,
        ``confusion_matrix`` and, for binary problems, ``f1_positive`` and ``pr_auc_positive``.

    Notes
    -----
    - Predictions are ``classes[argmax(proba)]`` (ties go to the first class).
    - Macro and weighted precision, recall and F1 average over the classes that occur in this fold's
      true or predicted labels (scikit-learn's default label set); a 0/0 ratio counts as 0.
      Balanced accuracy is the mean recall over the classes present in ``y_true``.
    - ``roc_auc``: binary problems score ``classes[1]`` as the positive class; multiclass problems use
      the unweighted mean of one-vs-rest AUCs. It is ``None`` when a class is absent from ``y_true``.
    - ``log_loss`` uses probabilities clipped to ``[1e-15, 1]`` and renormalised per row.
    - ``pr_auc_positive`` is the average precision of ``classes[1]``; ``None`` when it is absent.
    - ``confusion_matrix`` is a list of lists of ``int``: rows are true, columns predicted classes,
      both in ``classes`` order.
    """
    classes = list(np.asarray(classes).tolist())
    n_classes = len(classes)
    if n_classes < 2:
        raise SchemaError(f"classification metrics need at least 2 classes, got {classes!r}")
    proba_arr = np.asarray(proba, dtype=np.float64)
    y_arr = np.asarray(y_true).reshape(-1)
    if proba_arr.ndim != 2 or proba_arr.shape != (len(y_arr), n_classes):
        raise SchemaError(
            f"proba must have shape (n_rows, n_classes) = ({len(y_arr)}, {n_classes}), got {proba_arr.shape}"
        )
    if len(y_arr) == 0:
        raise SchemaError("cannot compute metrics on zero rows")
    if not np.all(np.isfinite(proba_arr)):
        raise SchemaError("proba contains NaN or infinite values")
    y_idx = _label_codes(y_arr, classes)
    pred_idx = np.argmax(proba_arr, axis=1)
    present = np.zeros(n_classes, dtype=bool)
    present[y_idx] = True

    seen = np.union1d(y_idx, pred_idx)
    out: dict[str, Any] = {"accuracy": float(np.mean(y_idx == pred_idx))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["balanced_accuracy"] = float(balanced_accuracy_score(y_idx, pred_idx))
        for average in ("macro", "weighted"):
            precision, recall, f1, _ = precision_recall_fscore_support(
                y_idx, pred_idx, labels=seen, average=average, zero_division=0
            )
            out[f"precision_{average}"] = float(precision)
            out[f"recall_{average}"] = float(recall)
            out[f"f1_{average}"] = float(f1)

        if not present.all():
            out["roc_auc"] = None
        elif n_classes == 2:
            out["roc_auc"] = _float_or_none(roc_auc_score(y_idx == 1, proba_arr[:, 1]))
        else:
            aucs = [roc_auc_score(y_idx == k, proba_arr[:, k]) for k in range(n_classes)]
            out["roc_auc"] = _float_or_none(np.mean(aucs))

    clipped = np.clip(proba_arr, PROBA_EPS, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    out["log_loss"] = float(-np.mean(np.log(clipped[np.arange(len(y_idx)), y_idx])))

    if n_classes == 2:
        tp = int(np.sum((pred_idx == 1) & (y_idx == 1)))
        fp = int(np.sum((pred_idx == 1) & (y_idx == 0)))
        fn = int(np.sum((pred_idx == 0) & (y_idx == 1)))
        out["f1_positive"] = float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0
        if present[1]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out["pr_auc_positive"] = _float_or_none(average_precision_score(y_idx == 1, proba_arr[:, 1]))
        else:
            out["pr_auc_positive"] = None

    matrix = confusion_matrix(y_idx, pred_idx, labels=np.arange(n_classes))
    out["confusion_matrix"] = [[int(v) for v in row] for row in matrix]
    return out


def summarize(values: Sequence[float | None]) -> dict[str, Any]:
    """Summarise one metric over folds.

    Parameters
    ----------
    values : sequence of float or None
        One value per fold; ``None`` (or NaN) marks a fold where the metric is undefined.

    Returns
    -------
    dict
        ``mean`` and ``std`` over the defined values (``None`` when there are none), and ``folds``, the
        per-fold values as plain floats with ``None`` kept in place. ``std`` is the sample standard
        deviation (``ddof=1``) when at least two values are defined and ``0.0`` for a single value.
    """
    folds = [_float_or_none(v) for v in values]
    defined = np.array([v for v in folds if v is not None], dtype=np.float64)
    if defined.size == 0:
        return {"mean": None, "std": None, "folds": folds}
    std = float(np.std(defined, ddof=1)) if defined.size > 1 else 0.0
    return {"mean": float(np.mean(defined)), "std": std, "folds": folds}
