"""Tabular modality: imputation, scaling and categorical encoding of DataFrame columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from modalfuse._errors import NotFittedError, SchemaError

__all__ = ["TabularPreprocessor"]

MISSING_SLOT = "<missing>"
OTHER_SLOT = "<other>"

#: Scaled numeric values are clipped to +-Z_CLIP standard deviations, so that one extreme value (at fit
#: or at predict time) can never become an infinity in float32 or overflow the networks downstream.
Z_CLIP = 1e4


def _category_key(value: object) -> str | None:
    """The string a categorical cell is known by, or ``None`` when it is missing.

    Integral floats are written without their ``.0`` (so ``3`` and ``3.0`` are one category);
    empty or blank strings count as missing.
    """
    if value is None:
        return None
    if isinstance(value, str):
        stripped = value.strip()
        return stripped if stripped else None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation (``ddof=0``) that cannot overflow: computed on values scaled by their
    largest magnitude. A column with no spread (or no value) gets std 1."""
    if not values.size:
        return 0.0, 1.0
    scale = float(np.max(np.abs(values)))  # finite: _numeric turns infinities into NaN, then imputed
    if scale == 0.0:
        return 0.0, 1.0
    scaled = values / scale
    mean = float(scaled.mean()) * scale
    std = float(scaled.std()) * scale
    if not np.isfinite(std) or std <= 1e-12 * max(1.0, abs(mean)):
        std = 1.0
    return mean, std


def _median(values: np.ndarray) -> float:
    """The median without overflow (two middle values near float64's limit are not summed)."""
    if not values.size:
        return 0.0
    with np.errstate(over="ignore"):
        median = float(np.median(values))
    if np.isfinite(median):
        return median
    ordered = np.sort(values)
    mid = values.size // 2
    return float(ordered[mid - 1] / 2 + ordered[mid] / 2)


def _scale(values: np.ndarray, mean: float, std: float) -> np.ndarray:
    """``(values - mean) / std`` clipped to +-:data:`Z_CLIP`, finite even for values near float64's limit."""
    with np.errstate(over="ignore", invalid="ignore"):
        z = values / std - mean / std
    return np.clip(np.nan_to_num(z, nan=0.0, posinf=Z_CLIP, neginf=-Z_CLIP), -Z_CLIP, Z_CLIP)


def _numeric(df: pd.DataFrame, column: str) -> np.ndarray:
    """Column as float64 with non-numeric strings, missing values and infinities as NaN."""
    col = df[column]
    if col.dtype == bool or pd.api.types.is_bool_dtype(col.dtype):
        col = col.astype("float64")
    values = pd.to_numeric(col, errors="coerce")
    # to_numpy may return a read-only view of the column under copy-on-write: work on a copy.
    arr = np.array(values.to_numpy(dtype="float64", na_value=np.nan), dtype=np.float64, copy=True)
    arr[~np.isfinite(arr)] = np.nan
    return arr


class TabularPreprocessor:
    """Impute, scale and encode a table's numeric and categorical columns.

    Numeric columns are coerced with ``pd.to_numeric(errors="coerce")`` (non-numeric strings and
    infinities count as missing), imputed with the fit median (0 for a column with no value) and
    standardised with the fit mean and standard deviation (``ddof=0``, computed without overflow even
    for values near float64's limit; a constant column gets std 1); scaled values are clipped to
    +-:data:`Z_CLIP` so the output is always finite. A numeric column with any missing value in the fit data also gets a 0/1
    missing-indicator column.

    Categorical columns keep the ``max_categories`` most frequent values of the fit data (ties
    alphabetical). Each row maps to one slot: a kept category, ``<other>`` (rarer categories and
    categories never seen in fit) or ``<missing>`` (None, NaN, blank strings). Values are compared
    as strings (``3`` and ``3.0`` are the same category).

    Parameters
    ----------
    numeric : sequence of str
        Numeric column names.
    categorical : sequence of str
        Categorical column names.
    max_categories : int, default 50
        Largest number of named categories kept per categorical column.

    Attributes
    ----------
    medians_, means_, stds_ : dict of str to float
        Per numeric column.
    indicator_columns_ : list of str
        Numeric columns that get a missing indicator.
    categories_ : dict of str to list of str
        Kept categories per categorical column, in slot order.
    cardinalities_ : list of int
        Number of indices per categorical column (``len(categories) + 2``), for embedding layers.
    feature_names_ : list of str
        Name of each column of :meth:`transform`'s output: the numeric columns, then
        ``"<col>__missing"`` indicators, then ``"<col>=<category>"``, ``"<col>=<other>"`` and
        ``"<col>=<missing>"`` one-hot slots per categorical column.
    """

    def __init__(
        self,
        *,
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
        max_categories: int = 50,
    ) -> None:
        self.numeric = numeric
        self.categorical = categorical
        self.max_categories = max_categories

    # ------------------------------------------------------------------ fitting
    def _columns(self) -> tuple[list[str], list[str]]:
        numeric = [str(c) for c in self.numeric]
        categorical = [str(c) for c in self.categorical]
        both = set(numeric) & set(categorical)
        if both:
            raise SchemaError(f"columns declared both numeric and categorical: {sorted(both)}")
        if len(set(numeric)) != len(numeric) or len(set(categorical)) != len(categorical):
            raise SchemaError("duplicate column names in numeric or categorical")
        return numeric, categorical

    @staticmethod
    def _require(df: pd.DataFrame, columns: Sequence[str]) -> None:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
        absent = [c for c in columns if c not in df.columns]
        if absent:
            raise SchemaError(f"column(s) not found in the table: {absent}")

    def fit(self, df: pd.DataFrame) -> TabularPreprocessor:
        """Learn medians, scaling and categories from ``df``.

        Parameters
        ----------
        df : pandas.DataFrame
            Must hold every declared column; other columns are ignored.

        Returns
        -------
        TabularPreprocessor
            ``self``.
        """
        if self.max_categories < 0:
            raise ValueError(f"max_categories must be >= 0, got {self.max_categories}")
        numeric, categorical = self._columns()
        self._require(df, numeric + categorical)
        medians: dict[str, float] = {}
        means: dict[str, float] = {}
        stds: dict[str, float] = {}
        indicators: list[str] = []
        for col in numeric:
            values = _numeric(df, col)
            missing = np.isnan(values)
            present = values[~missing]
            median = _median(present)
            filled = np.where(missing, median, values)
            mean, std = _mean_std(filled)
            medians[col], means[col], stds[col] = median, mean, std
            if missing.any():
                indicators.append(col)
        categories: dict[str, list[str]] = {}
        for col in categorical:
            counts: dict[str, int] = {}
            for value in df[col].tolist():
                key = _category_key(value)
                if key is not None:
                    counts[key] = counts.get(key, 0) + 1
            ranked = sorted(counts, key=lambda k: (-counts[k], k))
            categories[col] = ranked[: self.max_categories]
        self._set_state(numeric, categorical, medians, means, stds, indicators, categories)
        return self

    def _set_state(
        self,
        numeric: list[str],
        categorical: list[str],
        medians: dict[str, float],
        means: dict[str, float],
        stds: dict[str, float],
        indicators: list[str],
        categories: dict[str, list[str]],
    ) -> None:
        self.numeric_columns_ = numeric
        self.categorical_columns_ = categorical
        self.medians_ = medians
        self.means_ = means
        self.stds_ = stds
        self.indicator_columns_ = indicators
        self.categories_ = categories
        self._slots = {col: {cat: i + 2 for i, cat in enumerate(cats)} for col, cats in categories.items()}
        self.cardinalities_ = [len(categories[c]) + 2 for c in categorical]
        names = list(numeric) + [f"{c}__missing" for c in indicators]
        for col in categorical:
            names += [f"{col}={cat}" for cat in categories[col]]
            names += [f"{col}={OTHER_SLOT}", f"{col}={MISSING_SLOT}"]
        self.feature_names_ = names

    def _check_fitted(self) -> None:
        if not hasattr(self, "feature_names_"):
            raise NotFittedError("this TabularPreprocessor is not fitted yet; call fit() first")

    # --------------------------------------------------------------- transform
    def category_indices(self, df: pd.DataFrame) -> np.ndarray:
        """Slot index of each categorical cell, for embedding layers.

        Parameters
        ----------
        df : pandas.DataFrame

        Returns
        -------
        numpy.ndarray of shape (N, n_categorical), int64
            0 = missing, 1 = other/unseen, ``2 + k`` = the ``k``-th kept category
            (``categories_[col][k]``). Column ``j`` takes values below ``cardinalities_[j]``.
        """
        self._check_fitted()
        self._require(df, self.categorical_columns_)
        out = np.zeros((len(df), len(self.categorical_columns_)), dtype=np.int64)
        for j, col in enumerate(self.categorical_columns_):
            slots = self._slots[col]
            keys = [_category_key(v) for v in df[col].tolist()]
            out[:, j] = [0 if k is None else slots.get(k, 1) for k in keys]
        return out

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Encode ``df`` with the fitted state.

        Parameters
        ----------
        df : pandas.DataFrame
            Must hold every declared column.

        Returns
        -------
        numpy.ndarray of shape (N, len(feature_names_)), float32
        """
        self._check_fitted()
        self._require(df, self.numeric_columns_ + self.categorical_columns_)
        n = len(df)
        blocks: list[np.ndarray] = []
        indicator_blocks: list[np.ndarray] = []
        for col in self.numeric_columns_:
            values = _numeric(df, col)
            missing = np.isnan(values)
            filled = np.where(missing, self.medians_[col], values)
            blocks.append(_scale(filled, self.means_[col], self.stds_[col])[:, None])
            if col in self.indicator_columns_:
                indicator_blocks.append(missing.astype(np.float64)[:, None])
        blocks += indicator_blocks
        if self.categorical_columns_:
            idx = self.category_indices(df)
            for j, col in enumerate(self.categorical_columns_):
                k = len(self.categories_[col])
                onehot = np.zeros((n, k + 2), dtype=np.float64)
                # slot order in the output: categories..., other, missing
                position = np.where(idx[:, j] >= 2, idx[:, j] - 2, np.where(idx[:, j] == 1, k, k + 1))
                onehot[np.arange(n), position] = 1.0
                blocks.append(onehot)
        if not blocks:
            return np.zeros((n, 0), dtype=np.float32)
        return np.hstack(blocks).astype(np.float32)

    def fit_transform(self, df: pd.DataFrame) -> np.ndarray:
        """``fit(df).transform(df)``."""
        return self.fit(df).transform(df)

    # ---------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fitted state (only str, int, float, list and dict)."""
        self._check_fitted()
        return {
            "type": "TabularPreprocessor",
            "numeric": list(self.numeric_columns_),
            "categorical": list(self.categorical_columns_),
            "max_categories": int(self.max_categories),
            "medians": {k: float(v) for k, v in self.medians_.items()},
            "means": {k: float(v) for k, v in self.means_.items()},
            "stds": {k: float(v) for k, v in self.stds_.items()},
            "indicator_columns": list(self.indicator_columns_),
            "categories": {k: list(v) for k, v in self.categories_.items()},
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TabularPreprocessor:
        """Rebuild a fitted preprocessor from :meth:`to_dict` output."""
        numeric = [str(c) for c in state["numeric"]]
        categorical = [str(c) for c in state["categorical"]]
        obj = cls(numeric=numeric, categorical=categorical, max_categories=int(state["max_categories"]))
        obj._set_state(
            numeric,
            categorical,
            {k: float(v) for k, v in state["medians"].items()},
            {k: float(v) for k, v in state["means"].items()},
            {k: float(v) for k, v in state["stds"].items()},
            [str(c) for c in state["indicator_columns"]],
            {k: [str(x) for x in v] for k, v in state["categories"].items()},
        )
        return obj

    def __repr__(self) -> str:
        return (
            f"TabularPreprocessor(numeric={list(self.numeric)!r}, categorical={list(self.categorical)!r}, "
            f"max_categories={self.max_categories})"
        )
