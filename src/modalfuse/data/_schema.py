"""Which column holds which modality: inference and validation."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from modalfuse._errors import SchemaError

__all__ = ["MODALITIES", "Schema", "infer_schema", "is_missing"]

#: Modalities a column can hold. ``numeric`` and ``categorical`` are both tabular.
MODALITIES = ("image", "audio", "text", "numeric", "categorical")
_ALIASES = {"tabular": None, "ignore": "ignore", "skip": "ignore"}

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"})


def is_missing(value: object) -> bool:
    """True for None, NaN (Python or NumPy floats of any width), NA, NaT and blank strings.

    Arrays, tuples and other containers are never missing here (an empty array is a value that fails to
    decode, not an empty cell).
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating) and np.isnan(value):
        return True
    if isinstance(value, np.datetime64) and np.isnat(value):
        return True
    if isinstance(value, str) and not value.strip():
        return True
    return False


@dataclass(frozen=True)
class Schema:
    """Column -> modality for the feature columns of a table.

    Attributes
    ----------
    columns : dict[str, str]
        Feature column name -> one of ``MODALITIES``, in table order.
    """

    columns: dict[str, str] = field(default_factory=dict)

    def of(self, *modalities: str) -> list[str]:
        """Feature columns holding any of ``modalities``, in table order."""
        return [c for c, m in self.columns.items() if m in modalities]

    def inputs(self) -> dict[str, tuple[str, list[str]]]:
        """Model inputs: ``name -> (modality, columns)``.

        Every image, audio and text column is an input of its own; all numeric and categorical columns
        together form one ``tabular`` input.
        """
        out: dict[str, tuple[str, list[str]]] = {}
        tab = self.of("numeric", "categorical")
        for col, mod in self.columns.items():
            if mod in ("image", "audio", "text"):
                out[col] = (mod, [col])
            elif tab and col == tab[0]:
                name = "tabular" if "tabular" not in self.columns else "tabular_columns"
                out[name] = ("tabular", tab)
        return out

    def to_dict(self) -> dict[str, str]:
        return dict(self.columns)


def _as_path_string(value: object) -> str | None:
    """The value as a path string when it is a non-blank string or an ``os.PathLike``, else None."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and not is_missing(value):
        return value
    return None


def _extension_share(values: pd.Series, extensions: frozenset[str]) -> float:
    strings = [s for s in map(_as_path_string, values) if s is not None]
    if not strings:
        return 0.0
    return sum(os.path.splitext(s.strip())[1].lower() in extensions for s in strings) / len(strings)


def _any_exists(values: pd.Series, root: Path, limit: int = 50) -> bool:
    checked = 0
    for v in map(_as_path_string, values):
        if v is not None:
            p = Path(os.path.expanduser(v.strip()))  # as read_table resolves it
            if (p if p.is_absolute() else root / p).is_file():
                return True
            checked += 1
            if checked >= limit:
                break
    return False


def _infer_column(series: pd.Series, root: Path) -> str:
    """Guess one column's modality from its non-missing values.

    In order: 2-D/3-D arrays are images and ``(wave, sample_rate)`` tuples audio; booleans are
    categorical and numbers numeric; strings that mostly (at least half) end in an image/audio extension
    are image/audio when at least one such file exists under ``root``, and also when *every* value has
    such an extension though none exists (so a wrong folder shows up as "file not found" per row rather
    than as a text column of paths); strings that are almost all (95 %) numbers are numeric (the others
    are reported as "not a number"); few distinct values are categorical; multi-word or long strings are
    text; anything else is categorical.
    """
    present = series[[not is_missing(v) for v in series]]
    if len(present) == 0:
        return "numeric" if pd.api.types.is_numeric_dtype(series) else "text"
    first = present.iloc[0]
    if isinstance(first, np.ndarray):
        if first.ndim in (2, 3):
            return "image"
        raise SchemaError(
            f"column {series.name!r} holds {first.ndim}-D arrays: declare its modality with modalities={{...}}"
        )
    if isinstance(first, tuple) and len(first) == 2 and isinstance(first[0], np.ndarray | list):
        return "audio"  # (wave, sample_rate) in memory
    if isinstance(first, list | tuple | dict | set | np.ndarray):
        raise SchemaError(
            f"column {series.name!r} holds {type(first).__name__} values, which no modality reads; "
            f"declare it with modalities={{{str(series.name)!r}: ...}} or drop it with 'ignore'"
        )
    if pd.api.types.is_bool_dtype(series) or all(isinstance(v, bool | np.bool_) for v in present):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    for exts, modality in ((IMAGE_EXTENSIONS, "image"), (AUDIO_EXTENSIONS, "audio")):
        share = _extension_share(present, exts)
        if share >= 0.5 and (share == 1.0 or _any_exists(present, root)):
            return modality
    as_numbers = pd.to_numeric(present.astype(object), errors="coerce")
    if as_numbers.notna().mean() >= 0.95:
        return "numeric"
    strings = present.astype(str)
    n_unique = strings.nunique()
    words = strings.str.split().str.len().mean()
    if n_unique <= 50 and n_unique / len(strings) < 0.5:
        return "categorical"
    if words >= 2 or strings.str.len().mean() > 20:
        return "text"
    return "categorical"


def infer_schema(
    frame: pd.DataFrame,
    *,
    exclude: list[str],
    modalities: Mapping[str, str] | None = None,
    root: Path,
) -> Schema:
    """Infer each feature column's modality; ``modalities`` overrides (``"ignore"`` drops a column).

    Columns in ``exclude`` (label, groups) and columns without a header (pandas names them
    ``"Unnamed: <i>"``, typically a saved index) are not features unless ``modalities`` declares them.
    ``"tabular"`` in ``modalities`` means numeric or categorical, whichever fits the values.

    Raises
    ------
    SchemaError
        If ``modalities`` names a column the table does not have or an unknown modality.
    """
    declared = {str(c): m for c, m in (modalities or {}).items()}
    for col, mod in declared.items():
        if col not in frame.columns:
            raise SchemaError(
                f"modalities names column {col!r}, which the table does not have; "
                f"columns are {list(map(str, frame.columns))}"
            )
        if mod not in MODALITIES and mod not in _ALIASES:
            raise SchemaError(
                f"column {col!r}: unknown modality {mod!r}; use one of {[*MODALITIES, 'ignore']}"
            )
    columns: dict[str, str] = {}
    for col in frame.columns:
        if col in exclude:
            continue
        mod = declared.get(col)
        if mod is None and str(col).startswith("Unnamed:"):
            continue  # a saved pandas index, not a feature
        if mod == "ignore" or mod == "skip":
            continue
        if mod == "tabular" or mod is None:
            inferred = _infer_column(frame[col], root)
            if mod == "tabular" and inferred not in ("numeric", "categorical"):
                inferred = "categorical"
            mod = inferred
        columns[str(col)] = mod
    return Schema(columns)
