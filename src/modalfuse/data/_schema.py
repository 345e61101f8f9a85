"""Which column holds which modality: inference and validation."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from modalfuse._errors import SchemaError

__all__ = ["MODALITIES", "Schema", "identifier_kind", "infer_schema", "is_missing"]

#: Modalities a column can hold. ``numeric`` and ``categorical`` are both tabular.
MODALITIES = ("image", "audio", "text", "numeric", "categorical", "series")
_ALIASES = {"tabular": None, "ignore": "ignore", "skip": "ignore"}

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"})
#: Recordings of a ``series`` column (a timestamp column and channels).
SERIES_EXTENSIONS = frozenset({".csv", ".tsv", ".parquet", ".pq"})


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

        Every image, audio, text and series column is an input of its own; all numeric and categorical
        columns together form one ``tabular`` input.
        """
        out: dict[str, tuple[str, list[str]]] = {}
        tab = self.of("numeric", "categorical")
        for col, mod in self.columns.items():
            if mod in ("image", "audio", "text", "series"):
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


def _object_modality(first: object, name: object) -> str | None:
    """The modality of a column whose first present value is not a scalar, or None for scalars.

    Raises :class:`SchemaError` for containers no modality reads.
    """
    if isinstance(first, np.ndarray):
        if first.ndim in (2, 3):
            return "image"
        raise SchemaError(
            f"column {name!r} holds {first.ndim}-D arrays: declare its modality with modalities={{...}}"
        )
    if isinstance(first, tuple) and len(first) == 2 and isinstance(first[0], np.ndarray | list):
        return "audio"  # (wave, sample_rate) in memory
    if type(first).__name__ == "Recording" and type(first).__module__ == "modalfuse.modalities.series":
        return "series"
    if type(first).__module__.startswith("PIL.") and hasattr(first, "getbands"):
        return "image"  # a decoded PIL.Image.Image
    if isinstance(first, bytes | bytearray | memoryview):
        return _bytes_modality(bytes(first), name)
    if isinstance(first, Mapping):
        return _mapping_modality(first, name)
    if isinstance(first, list | tuple | set):
        raise SchemaError(
            f"column {name!r} holds {type(first).__name__} values, which no modality reads; "
            f"declare it with modalities={{{str(name)!r}: ...}} or drop it with 'ignore'"
        )
    return None


def _bytes_modality(data: bytes, name: object) -> str:
    from modalfuse.data._media import media_kind_of_bytes

    kind = media_kind_of_bytes(data)
    if kind is None:
        raise SchemaError(
            f"column {name!r} holds bytes that are not a known image or audio format (they start "
            f"{data[:8]!r}); declare it with modalities={{{str(name)!r}: ...}} or drop it with 'ignore'"
        )
    return kind


def _mapping_modality(cell: Mapping, name: object) -> str:
    """A Hugging Face style cell: ``{"array", "sampling_rate"}`` is audio; ``{"bytes", "path"}`` is read
    by the bytes' magic number, else by the path's extension."""
    if cell.get("array") is not None and "sampling_rate" in cell:
        return "audio"
    data = cell.get("bytes")
    if isinstance(data, bytes | bytearray | memoryview) and len(data):
        return _bytes_modality(bytes(data), name)
    path = cell.get("path")
    if isinstance(path, str | os.PathLike):
        ext = os.path.splitext(os.fspath(path).strip())[1].lower()
        for exts, modality in ((IMAGE_EXTENSIONS, "image"), (AUDIO_EXTENSIONS, "audio")):
            if ext in exts:
                return modality
    raise SchemaError(
        f"column {name!r} holds dict values with keys {sorted(map(str, cell))}, which no modality reads "
        "(images and audio are read from {'bytes', 'path'} and {'array', 'sampling_rate'} dicts); "
        f"declare it with modalities={{{str(name)!r}: ...}} or drop it with 'ignore'"
    )


def _string_modality(present: pd.Series, root: Path) -> str:
    """The modality of a column of strings (and stray scalars)."""
    for exts, modality in ((IMAGE_EXTENSIONS, "image"), (AUDIO_EXTENSIONS, "audio")):
        share = _extension_share(present, exts)
        if share >= 0.5 and (share == 1.0 or _any_exists(present, root)):
            return modality
    if _extension_share(present, SERIES_EXTENSIONS) >= 0.5 and _any_exists(present, root):
        return "series"  # recordings: CSV/Parquet files with a timestamp column
    as_numbers = pd.to_numeric(present.astype(object), errors="coerce")
    if as_numbers.notna().mean() >= 0.95:
        return "numeric"
    strings = present.astype(str)
    n_unique = strings.nunique()
    if n_unique <= 50 and n_unique / len(strings) < 0.5:
        return "categorical"
    if strings.str.split().str.len().mean() >= 2 or strings.str.len().mean() > 20:
        return "text"
    return "categorical"


def _infer_column(series: pd.Series, root: Path) -> str:
    """Guess one column's modality from its non-missing values.

    In order: 2-D/3-D arrays and PIL images are images, ``(wave, sample_rate)`` tuples audio; bytes are
    images or audio by their magic number (PNG, JPEG, ... / WAV, FLAC, ...); Hugging Face style dicts
    (``{"bytes", "path"}``, ``{"array", "sampling_rate"}``) likewise; booleans are categorical and numbers
    numeric; strings that mostly (at least half) end in an image/audio extension are image/audio when at
    least one such file exists under ``root``, and also when *every* value has such an extension though
    none exists (so a wrong folder shows up as "file not found" per row rather than as a text column of
    paths); strings that are almost all (95 %) numbers are numeric (the others are reported as "not a
    number"); few distinct values are categorical; multi-word or long strings are text; anything else is
    categorical.
    """
    present = series[[not is_missing(v) for v in series]]
    if len(present) == 0:
        return "numeric" if pd.api.types.is_numeric_dtype(series) else "text"
    by_object = _object_modality(present.iloc[0], series.name)
    if by_object is not None:
        return by_object
    if pd.api.types.is_bool_dtype(series) or all(isinstance(v, bool | np.bool_) for v in present):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    return _string_modality(present, root)


# ------------------------------------------------------------------------------------------- identifiers
_ID_WORDS = frozenset({"id", "ids", "uuid", "guid", "identifier"})
#: Identifier-like columns with more distinct values than this are left out (as many as the categorical
#: inference and the tabular encoder's ``max_categories`` keep).
ID_MAX_CATEGORIES = 50


def _name_words(name: str) -> list[str]:
    """``"Clothing ID"``, ``"customer_id"``, ``"customerId"``, ``"CustomerID"`` -> lower-case words."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def _is_code(value: object) -> bool:
    """A whole number or a single-token string: what identifiers look like."""
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | np.integer):
        return True
    if isinstance(value, float | np.floating):
        return bool(np.isfinite(value) and float(value).is_integer())
    return isinstance(value, str) and len(value.split()) == 1


def identifier_kind(series: pd.Series) -> str | None:
    """How an undeclared column that looks like an identifier is treated, or None when it does not.

    A column looks like an identifier when its name's last word is ``id``, ``uuid``, ``guid`` or
    ``identifier`` (``id``, ``ID``, ``customer_id``, ``Clothing ID``, ``customerId``, ``uuid``; not
    ``idea`` or ``width``) and every value is a code: a whole number or a single-token string. Then:

    * ``"exclude"`` when the codes are unique per row or have more than :data:`ID_MAX_CATEGORIES`
      distinct values: a row number or a fine-grained key (``Clothing ID`` in the clothing reviews: 420
      items over 2,349 reviews) says nothing a model can generalise from, and as a number it is
      meaningless;
    * ``"categorical"`` for fewer distinct codes (a ``store_id`` with five stores): codes name things,
      they are not quantities, so they are never numeric.
    """
    words = _name_words(str(series.name))
    if not words or words[-1] not in _ID_WORDS:
        return None
    present = [v for v in series if not is_missing(v)]
    if not present or not all(_is_code(v) for v in present):
        return None
    keys = {str(int(v)) if isinstance(v, float | np.floating) else str(v) for v in present}
    if len(keys) == len(present) or len(keys) > ID_MAX_CATEGORIES:
        return "exclude"
    return "categorical"


def _check_declared(frame: pd.DataFrame, declared: Mapping[str, str]) -> None:
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


def _undeclared_modality(series: pd.Series, root: Path, notes: list[str] | None) -> str | None:
    """The inferred modality of an undeclared column, or None when it is left out (an identifier)."""
    kind = identifier_kind(series)
    if kind == "exclude":
        if notes is not None:
            n = series.map(lambda v: not is_missing(v)).sum()
            distinct = series[series.map(lambda v: not is_missing(v))].astype(str).nunique()
            notes.append(
                f"column {series.name!r} looks like an identifier ({distinct} distinct codes in {n} rows) "
                f"and is not used as a feature; declare it in modalities= to use it "
                f"(e.g. {{{str(series.name)!r}: 'categorical'}})"
            )
        return None
    return kind or _infer_column(series, root)


def infer_schema(
    frame: pd.DataFrame,
    *,
    exclude: list[str],
    modalities: Mapping[str, str] | None = None,
    root: Path,
    notes: list[str] | None = None,
) -> Schema:
    """Infer each feature column's modality; ``modalities`` overrides (``"ignore"`` drops a column).

    Columns in ``exclude`` (label, groups) and columns without a header (pandas names them
    ``"Unnamed: <i>"``, typically a saved index) are not features unless ``modalities`` declares them.
    Undeclared identifier-like columns (see :func:`identifier_kind`) are left out, with a note appended
    to ``notes``, or read as categorical. ``"tabular"`` in ``modalities`` means numeric or categorical,
    whichever fits the values.

    Raises
    ------
    SchemaError
        If ``modalities`` names a column the table does not have or an unknown modality.
    """
    declared = {str(c): m for c, m in (modalities or {}).items()}
    _check_declared(frame, declared)
    columns: dict[str, str] = {}
    for col in frame.columns:
        mod = declared.get(col)
        if col in exclude or mod in ("ignore", "skip"):
            continue
        if mod is None and str(col).startswith("Unnamed:"):
            continue  # a saved pandas index, not a feature
        if mod is None:
            mod = _undeclared_modality(frame[col], root, notes)
        elif mod == "tabular":
            mod = _infer_column(frame[col], root)
            mod = mod if mod in ("numeric", "categorical") else "categorical"
        if mod is not None:
            columns[str(col)] = mod
    return Schema(columns)
