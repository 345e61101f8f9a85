"""Cross-validation splits: stratified by label, grouped when groups are given.

The public entry point is :func:`make_splits`. It turns a ``cv`` specification (an ``int``, a string
such as ``"loso"`` or ``"kfold:5"``, or a scikit-learn splitter) into a list of ``(train, test)`` index
arrays, validating the labels and groups first so that problems surface as a :class:`SchemaError` that
names them instead of as an obscure failure deep inside a fold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    LeaveOneGroupOut,
    StratifiedGroupKFold,
    StratifiedKFold,
)

from modalfuse._errors import ModalfuseError, SchemaError

__all__ = ["make_splits"]

#: Strings accepted for leave-one-group-out splitting.
LOGO_NAMES = frozenset(
    {"loso", "logo", "leave-one-group-out", "leave-one-subject-out", "leave-one-speaker-out"}
)

CVSpec = int | str | Any


def encode_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Encode a 1-d array as ``(uniques, codes)``.

    Values are sorted when they are mutually comparable (as :func:`numpy.unique` does) and kept in
    order of first appearance otherwise (for example a mix of ``str`` and ``int``).

    Parameters
    ----------
    values : ndarray of shape (n,)
        Hashable values.

    Returns
    -------
    uniques : ndarray of shape (k,)
        The distinct values.
    codes : ndarray of shape (n,), dtype int64
        ``uniques[codes]`` equals ``values``.
    """
    values = np.asarray(values)
    try:
        uniques, codes = np.unique(values, return_inverse=True)
    except TypeError:
        mapping: dict[Any, int] = {}
        codes = np.fromiter(
            (mapping.setdefault(v, len(mapping)) for v in values.tolist()), dtype=np.int64, count=len(values)
        )
        uniques = np.empty(len(mapping), dtype=object)
        for value, code in mapping.items():
            uniques[code] = value
    return uniques, np.asarray(codes, dtype=np.int64).reshape(-1)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (so messages read ``1``, not ``np.int64(1)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _parse_kfold(cv: str) -> int:
    """Parse ``"kfold:K"`` into ``K``."""
    _, _, number = cv.partition(":")
    try:
        n_splits = int(number)
    except ValueError:
        raise SchemaError(f"cv={cv!r}: expected 'kfold:K' with an integer K, for example 'kfold:5'") from None
    return n_splits


def _cv_kind(cv: CVSpec, groups: np.ndarray | None) -> str:
    """Name the kind of split ``cv`` produces (``"stratified"``, ``"stratified-group"``, ...)."""
    if isinstance(cv, bool):
        raise SchemaError(f"cv={cv!r} is not a valid cross-validation specification")
    if isinstance(cv, int | np.integer):
        return "stratified" if groups is None else "stratified-group"
    if isinstance(cv, str):
        name = cv.strip().lower()
        if name in LOGO_NAMES:
            return "leave-one-group-out"
        if name.startswith("kfold:"):
            return "kfold" if groups is None else "group-kfold"
        raise SchemaError(
            f"cv={cv!r} is not understood; use an integer number of folds, 'loso' (leave one group out), "
            "'kfold:K' (plain shuffled K-fold), or a scikit-learn splitter object"
        )
    if hasattr(cv, "split"):
        return type(cv).__name__
    raise SchemaError(
        f"cv={cv!r} is not understood; use an integer, 'loso', 'kfold:K' or a scikit-learn splitter object"
    )


def _check_n_splits(n_splits: int, n_rows: int) -> None:
    if n_splits < 2:
        raise SchemaError(f"cross-validation needs at least 2 folds, got {n_splits}")
    if n_splits > n_rows:
        raise SchemaError(f"cannot make {n_splits} folds from {n_rows} rows; use a smaller cv")


def _check_class_counts(classes: np.ndarray, y_codes: np.ndarray, n_splits: int) -> None:
    counts = np.bincount(y_codes, minlength=len(classes))
    smallest = int(np.argmin(counts))
    count = int(counts[smallest])
    if count < n_splits:
        smaller = f"use a smaller cv (cv={count}) or " if count >= 2 else "use "
        raise SchemaError(
            f"class {_plain(classes[smallest])!r} has only {count} row(s), fewer than the {n_splits} "
            f"stratified folds asked for; {smaller}cv='kfold:{n_splits}' for plain unstratified K-fold, "
            "or remove or merge that class"
        )


def _resolve_splitter(
    cv: CVSpec, y_codes: np.ndarray, classes: np.ndarray, groups: np.ndarray | None, seed: int
) -> Any:
    """Build (and validate the inputs for) the scikit-learn splitter that ``cv`` names."""
    kind = _cv_kind(cv, groups)
    n_rows = len(y_codes)
    n_groups = len(encode_values(groups)[0]) if groups is not None else None
    if kind in ("stratified", "stratified-group"):
        n_splits = int(cv)
        _check_n_splits(n_splits, n_rows)
        if n_groups is not None and n_splits > n_groups:
            raise SchemaError(
                f"cv={n_splits} folds asked for but the groups hold only {n_groups} distinct value(s); "
                f"use cv<={n_groups} or cv='loso' (one fold per group)"
            )
        _check_class_counts(classes, y_codes, n_splits)
        if groups is None:
            return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        return StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    if kind == "leave-one-group-out":
        if groups is None:
            raise SchemaError(
                f"cv={cv!r} (leave one group out) needs groups; name a group column (speaker, subject, ...)"
            )
        if n_groups is not None and n_groups < 2:
            raise SchemaError(f"cv={cv!r} needs at least 2 distinct groups, found {n_groups}")
        return LeaveOneGroupOut()
    if kind in ("kfold", "group-kfold"):
        n_splits = _parse_kfold(str(cv))
        _check_n_splits(n_splits, n_rows)
        if groups is None:
            return KFold(n_splits=n_splits, shuffle=True, random_state=seed)
        if n_groups is not None and n_splits > n_groups:
            raise SchemaError(
                f"cv={cv!r} asks for {n_splits} folds but the groups hold only {n_groups} distinct value(s); "
                f"use K<={n_groups} or cv='loso'"
            )
        return GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return cv


def _check_splits(
    splits: list[tuple[np.ndarray, np.ndarray]], group_codes: np.ndarray | None, n_rows: int
) -> None:
    """Check every fold is non-empty, in range and, with groups, never shares a group across sides."""
    if not splits:
        raise SchemaError("the splitter produced no folds")
    for i, (train, test) in enumerate(splits):
        if len(train) == 0 or len(test) == 0:
            raise SchemaError(f"fold {i} has an empty {'training' if len(train) == 0 else 'test'} set")
        if train.min() < 0 or test.min() < 0 or train.max() >= n_rows or test.max() >= n_rows:
            raise ModalfuseError(f"fold {i} holds row indices outside 0..{n_rows - 1}")
        if np.intersect1d(train, test).size:
            raise ModalfuseError(f"fold {i} puts the same row on both sides of the split")
        if group_codes is not None:
            shared = np.intersect1d(group_codes[train], group_codes[test])
            if shared.size:
                raise SchemaError(
                    f"fold {i} puts {shared.size} group(s) on both sides of the split; with groups, use a "
                    "group-aware splitter (an integer cv, 'loso', 'kfold:K', or e.g. GroupKFold)"
                )


def make_splits(
    y: np.ndarray | Any,
    groups: np.ndarray | Any | None = None,
    *,
    cv: CVSpec = 5,
    seed: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Make cross-validation folds, stratified by label and grouped when groups are given.

    Parameters
    ----------
    y : array-like of shape (n,)
        Labels (any hashable values). Missing labels are an error.
    groups : array-like of shape (n,), optional
        Group of each row (speaker, subject, patient). When given, rows of one group never appear on
        both sides of a split.
    cv : int, str or splitter, default=5
        - ``int`` K: stratified K-fold (:class:`~sklearn.model_selection.StratifiedKFold`, shuffled with
          ``seed``), or :class:`~sklearn.model_selection.StratifiedGroupKFold` when ``groups`` is given.
        - ``"loso"``, ``"logo"`` or ``"leave-one-group-out"``: one fold per group
          (:class:`~sklearn.model_selection.LeaveOneGroupOut`); needs ``groups``.
        - ``"kfold:K"``: plain shuffled K-fold without stratification, the fallback when a class is
          too small to stratify; with ``groups`` this is a shuffled
          :class:`~sklearn.model_selection.GroupKFold`.
        - any object with a scikit-learn ``split(X, y, groups)`` method, used as is.
    seed : int, default=0
        Random state of the shuffling splitters: the same seed gives the same folds.

    Returns
    -------
    list of (train, test)
        Sorted ``int64`` row-index arrays, one pair per fold.

    Raises
    ------
    SchemaError
        With fewer than two classes, more folds than rows or groups, a class with fewer rows than
        stratified folds (the message names the class and its count), ``"loso"`` without groups, an
        unknown ``cv``, or a splitter that puts a group on both sides of a split.
    """
    y_arr = np.asarray(y)
    if y_arr.ndim == 2 and y_arr.shape[1] == 1:
        y_arr = y_arr[:, 0]
    if y_arr.ndim != 1:
        raise SchemaError(f"labels must be one-dimensional, got shape {y_arr.shape}")
    n_rows = len(y_arr)
    missing = pd.isna(y_arr)
    if np.any(missing):
        raise SchemaError(
            f"the label has {int(np.sum(missing))} missing value(s); drop or fill those rows first"
        )
    classes, y_codes = encode_values(y_arr)
    if len(classes) < 2:
        found = f"only the class {_plain(classes[0])!r}" if len(classes) else "no rows"
        raise SchemaError(f"classification needs at least 2 classes in the label, found {found}")

    group_arr: np.ndarray | None = None
    group_codes: np.ndarray | None = None
    if groups is not None:
        group_arr = np.asarray(groups).reshape(-1)
        if len(group_arr) != n_rows:
            raise SchemaError(f"groups has {len(group_arr)} values but the label has {n_rows}")
        n_missing = int(np.sum(pd.isna(group_arr)))
        if n_missing:
            raise SchemaError(
                f"groups has {n_missing} missing value(s); every row needs a group for grouped splitting"
            )
        group_codes = encode_values(group_arr)[1]

    splitter = _resolve_splitter(cv, y_codes, classes, group_codes, seed)
    x_dummy = np.zeros((n_rows, 1))
    try:
        raw = list(splitter.split(x_dummy, y_codes, group_codes))
    except ValueError as exc:
        raise SchemaError(f"cv={cv!r} could not split these rows: {exc}") from exc
    splits = [
        (np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(test, dtype=np.int64)))
        for train, test in raw
    ]
    _check_splits(splits, group_codes, n_rows)
    return splits
