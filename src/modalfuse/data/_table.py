"""Reading a multimodal table and keeping track of what is missing, row by row."""

from __future__ import annotations

import gzip
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modalfuse._cache import active_cache, content_key
from modalfuse._errors import DecodeError, MissingValueError, SchemaError, UnknownNameError
from modalfuse.data._schema import Schema, infer_schema, is_missing

__all__ = ["MultimodalTable", "Problem", "decode_media", "read_frame", "read_table"]


@dataclass(frozen=True)
class Problem:
    """One cell that is missing or could not be used.

    Attributes
    ----------
    row : int
        Position of the row in the table as read (0-based; a CSV's first data line is row 0).
    column : str
        Column name.
    reason : str
        What is wrong, for a person to read.
    """

    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column!r}: {self.reason}"


def decode_media(value: Any, modality: str) -> np.ndarray | tuple[np.ndarray, int]:
    """Decode one image or audio cell (cached by content). Raises ``DecodeError``.

    Images come back as float32 ``(H, W, C)`` in [0, 1]; audio as ``(wave float32, sample_rate)`` at the
    file's own rate, mixed down to mono.
    """
    if modality == "image":
        from modalfuse.modalities.image import load_image

        if isinstance(value, np.ndarray):
            return load_image(value)
        return active_cache().get_or_compute(("image", content_key(value)), lambda: load_image(value))
    if modality == "audio":
        from modalfuse.modalities.audio import load_audio

        if isinstance(value, tuple):  # (wave, sample_rate) given in memory
            return np.asarray(value[0], dtype=np.float32), int(value[1])
        return active_cache().get_or_compute(("audio", content_key(value)), lambda: load_audio(value))
    raise ValueError(f"not a media modality: {modality!r}")


class MultimodalTable:
    """Rows of multimodal values, their modalities, missing masks, label and groups.

    Build one with :func:`read_table`. Cells hold resolved absolute file paths (image, audio), in-memory
    arrays (images), strings (text, categorical) or numbers; a missing cell holds ``None`` (numbers: NaN).

    Attributes
    ----------
    frame : pandas.DataFrame
        The feature columns, shape (n_rows, n_columns), index 0..n-1.
    schema : Schema
        Column -> modality.
    y : numpy.ndarray or None
        Labels, shape (n_rows,).
    groups : numpy.ndarray or None
        Group of each row (speaker, subject, ...), shape (n_rows,).
    present : dict[str, numpy.ndarray]
        Column -> boolean mask, shape (n_rows,), True where the cell is usable.
    problems : list[Problem]
        Every missing or unusable cell, with the reason (``row`` is a position in the table as read,
        i.e. a value of ``row_ids``).
    notes : list[str]
        What was left out and why (rows without a label, columns missing in every row, ...).
    label, group_column : str or None
        Names of the label and groups columns (neither is a feature).
    row_ids : numpy.ndarray
        Position of each row in the table as read; survives :meth:`take`.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        schema: Schema,
        y: np.ndarray | None = None,
        label: str | None = None,
        groups: np.ndarray | None = None,
        group_column: str | None = None,
        present: Mapping[str, np.ndarray] | None = None,
        problems: Sequence[Problem] = (),
        notes: Sequence[str] = (),
        row_ids: np.ndarray | None = None,
        name: str = "table",
    ) -> None:
        self.frame = frame.reset_index(drop=True)
        self.schema = schema
        self.y = None if y is None else np.asarray(y)
        self.label = label
        self.groups = None if groups is None else np.asarray(groups)
        self.group_column = group_column
        self.present = (
            {c: np.asarray(m, dtype=bool) for c, m in present.items()}
            if present is not None
            else {c: np.array([not is_missing(v) for v in self.frame[c]], dtype=bool) for c in schema.columns}
        )
        self.problems = list(problems)
        self.notes = list(notes)
        self.row_ids = np.arange(len(self.frame)) if row_ids is None else np.asarray(row_ids)
        self.name = name

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        mods = ", ".join(f"{c}:{m}" for c, m in self.schema.columns.items())
        return f"MultimodalTable({self.name!r}, rows={len(self)}, label={self.label!r}, columns=[{mods}])"

    @property
    def inputs(self) -> dict[str, tuple[str, list[str]]]:
        """Model inputs, ``name -> (modality, columns)``; see :meth:`Schema.inputs`."""
        return self.schema.inputs()

    def mask(self, name: str) -> np.ndarray:
        """Boolean mask, shape (n_rows,): rows where input ``name`` is present (any of its columns)."""
        inputs = self.inputs
        if name not in inputs:
            raise UnknownNameError("input", name, inputs, hint=f"table {self.name!r}")
        _, cols = inputs[name]
        return np.logical_or.reduce([self.present[c] for c in cols])

    def take(self, indices: np.ndarray | Sequence[int]) -> MultimodalTable:
        """The rows at ``indices``, as a new table sharing nothing mutable with this one.

        ``indices`` are row positions (0..n-1, negative counting from the end) or a boolean mask of
        length n. Labels, groups, masks, ``row_ids`` and the problems of the rows taken stay aligned.
        """
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise IndexError(f"boolean mask of shape {idx.shape} for a table of {len(self)} rows")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False).reshape(-1)
        taken = set(self.row_ids[idx].tolist())
        return MultimodalTable(
            self.frame.iloc[idx],
            schema=Schema(dict(self.schema.columns)),
            y=None if self.y is None else self.y[idx],
            label=self.label,
            groups=None if self.groups is None else self.groups[idx],
            group_column=self.group_column,
            present={c: m[idx] for c, m in self.present.items()},
            problems=[p for p in self.problems if p.row in taken],
            notes=list(self.notes),
            row_ids=self.row_ids[idx],
            name=self.name,
        )

    def missing_summary(self) -> dict[str, dict[str, Any]]:
        """Per input: modality, columns, rows present and missing, missing rate."""
        out = {}
        for name, (mod, cols) in self.inputs.items():
            m = self.mask(name)
            out[name] = {
                "modality": mod,
                "columns": cols,
                "present": int(m.sum()),
                "missing": int((~m).sum()),
                "missing_rate": float((~m).mean()) if len(m) else 0.0,
            }
        return out


def _compressed(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def _first_bad_byte(path: Path, encoding: str) -> tuple[int, int, bytes] | None:
    """(file offset, line number, byte) of the first byte of ``path`` that ``encoding`` cannot decode."""
    try:
        with gzip.open(path, "rb") if _compressed(path) else path.open("rb") as f:
            raw = f.read()
        raw.decode(encoding)
    except UnicodeDecodeError as exc:
        return exc.start, raw.count(b"\n", 0, exc.start) + 1, raw[exc.start : exc.start + 1]
    except (OSError, LookupError):
        pass
    return None


def _read_any(path: Path, encoding: str | None) -> pd.DataFrame:
    """Read a table file; every failure becomes a :class:`SchemaError` naming the file."""
    suffix = "".join(path.suffixes[-2:]).lower() if _compressed(path) else path.suffix.lower()
    if not path.is_file():
        raise SchemaError(f"{path}: no such file")
    enc = encoding or "utf-8"
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz"):
            return pd.read_json(path, lines=True, dtype=False, encoding=enc)
        if suffix in (".json", ".json.gz"):
            return pd.read_json(path, dtype=False, encoding=enc)
        if suffix in (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz"):
            sep = "\t" if suffix.startswith(".tsv") else ","
            return pd.read_csv(path, sep=sep, encoding=enc, keep_default_na=True)
    except UnicodeDecodeError as exc:
        where = _first_bad_byte(path, enc)
        at = (
            f"line {where[1]}, byte {where[0]}: {where[2]!r}"
            if where is not None
            else f"byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r}"
        )
        raise SchemaError(
            f"{path}: not valid {enc} text ({at}); pass the file's encoding, e.g. encoding='latin-1' "
            "or encoding='cp1252' (CLI: --encoding latin-1)"
        ) from None
    except LookupError:
        raise SchemaError(
            f"{path}: unknown text encoding {encoding!r}; e.g. 'utf-8', 'latin-1', 'cp1252'"
        ) from None
    except (ValueError, OSError) as exc:  # empty file, malformed CSV/JSON, not a Parquet file, ...
        raise SchemaError(f"{path}: cannot read it as a {suffix.lstrip('.')} table: {exc}") from exc
    raise SchemaError(
        f"{path}: unsupported table format {suffix!r}; use .csv, .tsv, .parquet, .jsonl or .json (optionally .gz)"
    )


def read_frame(path: str | os.PathLike, *, encoding: str | None = None) -> pd.DataFrame:
    """Read a table file (CSV, TSV, Parquet, JSONL, JSON) into a DataFrame, as :func:`read_table` does.

    Raises :class:`SchemaError` naming the file for a missing, malformed or wrongly encoded file.
    """
    return _read_any(Path(path), encoding)


def _resolve_path(value: str, root: Path, confine: bool, row: int, column: str) -> str:
    p = Path(os.path.expanduser(value.strip()))
    full = (p if p.is_absolute() else root / p).resolve()
    if confine and not full.is_relative_to(root.resolve()):
        raise SchemaError(f"row {row}, column {column!r}: path {value!r} escapes the table's folder {root}")
    return str(full)


def _as_text(value: Any) -> str:
    """A categorical or text cell as a string; whole floats lose their ``.0``.

    pandas reads an integer column with a missing cell as floats, so without this the same category
    would be ``"1.0"`` in one table and ``"1"`` in another.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _to_numbers(values: list[Any]) -> np.ndarray:
    """float64 array; NaN where a cell is missing or not a number (``"3.5"`` is a number)."""
    try:
        nums = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
        return np.array(nums.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64, copy=True)
    except (TypeError, ValueError):  # arrays, lists, ... in the column: cell by cell
        out = np.full(len(values), np.nan)
        for i, v in enumerate(values):
            try:
                out[i] = float(pd.to_numeric(v, errors="coerce"))
            except (TypeError, ValueError):
                pass
        return out


def _is_wave_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int | np.integer)


def _looks_like_index(series: pd.Series) -> bool:
    """True for a column of distinct whole numbers, which is what ``DataFrame.to_csv`` writes as index."""
    nums = pd.to_numeric(series, errors="coerce")
    return bool(nums.notna().all() and (nums % 1 == 0).all() and nums.is_unique)


def read_table(
    source: str | os.PathLike | pd.DataFrame,
    *,
    label: str | None = None,
    modalities: Mapping[str, str] | None = None,
    groups: str | None = None,
    root: str | os.PathLike | None = None,
    confine: bool = False,
    strict: bool = False,
    decode: bool = True,
    encoding: str | None = None,
    name: str | None = None,
) -> MultimodalTable:
    """Read a multimodal table from CSV, TSV, Parquet, JSONL/JSON or a pandas DataFrame.

    Parameters
    ----------
    source : path or DataFrame
        The table. File paths inside it are resolved relative to ``root`` (default: the table's folder,
        or the current directory for a DataFrame). A DataFrame may also hold images as in-memory arrays
        (2-D or 3-D) and audio as ``(wave, sample_rate)`` tuples.
    label : str, optional
        The label column. Omit it for a table to predict on. Rows without a label are left out, with a
        note. Whole-number float labels (pandas reads an integer column with a gap as floats) become ints.
    modalities : dict, optional
        Column -> modality (``image``, ``audio``, ``text``, ``numeric``, ``categorical``, ``tabular`` or
        ``ignore``) for the columns whose inferred modality is wrong. Others are inferred (see
        :func:`modalfuse.data.infer_schema`); unnamed columns (a saved index) are ignored unless declared.
    groups : str, optional
        A column naming each row's group (speaker, subject, customer); grouped splits keep a group on one
        side. Not used as a feature. A row without a group is a problem; such rows share the group
        ``"<missing>"``.
    root : path, optional
        The folder relative file paths are resolved against.
    confine : bool
        Refuse file paths that resolve outside ``root``.
    strict : bool
        Raise :class:`MissingValueError` on the first missing or undecodable cell (column by column)
        instead of masking it.
    decode : bool
        Decode every image and audio file now (cached by content), so undecodable files are found and
        reported here.
    encoding : str, optional
        Text encoding of a CSV/JSON file (default UTF-8).
    name : str, optional
        Name of the table in messages (default: the file name, or ``"dataframe"``).

    Returns
    -------
    MultimodalTable
        ``present[column]`` is False for every empty cell (None, NaN, blank string), missing file,
        undecodable file and non-number in a numeric column (infinities included); ``problems`` lists each
        of them as ``Problem(row, column, reason)``. A column missing in every row is dropped from the
        schema with a note in ``notes`` and a warning (its problems stay listed); notes are also warned.

    Raises
    ------
    SchemaError
        No such label column, a label with one class, an unknown column in ``modalities`` (or one naming
        the label or groups column), duplicate column names, no usable modality, an unreadable file or
        encoding, or a path escaping ``root`` when ``confine``.
    MissingValueError
        In ``strict`` mode, for the first missing or undecodable cell (a missing label included).
    """
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
        base = Path(os.path.expanduser(root)) if root is not None else Path.cwd()
        name = name or "dataframe"
    elif isinstance(source, str | os.PathLike):
        path = Path(os.path.expanduser(source))
        frame = _read_any(path, encoding)
        base = Path(os.path.expanduser(root)) if root is not None else path.resolve().parent
        name = name or path.name
    else:
        raise TypeError(f"read_table reads a file path or a pandas DataFrame, not {type(source).__name__}")
    frame.columns = [str(c) for c in frame.columns]
    duplicated = sorted(set(frame.columns[frame.columns.duplicated()]))
    if duplicated:
        raise SchemaError(f"{name}: duplicate column name(s) {duplicated}; every column needs its own name")
    frame = frame.reset_index(drop=True)
    label = None if label is None else str(label)
    groups = None if groups is None else str(groups)
    for col, what in ((label, "label"), (groups, "groups")):
        if col is not None and col not in frame.columns:
            raise SchemaError(f"{what} column {col!r} is not in the table; columns are {list(frame.columns)}")
    if label is not None and label == groups:
        raise SchemaError(f"column {label!r} cannot be both the label and the groups")
    for col, mod in (modalities or {}).items():
        if str(col) in (label, groups) and mod not in ("ignore", "skip"):
            what = "label" if str(col) == label else "groups"
            raise SchemaError(
                f"modalities declares column {str(col)!r} as {mod!r}, but it is the {what} column"
            )
    problems: list[Problem] = []
    notes: list[str] = []

    y = None
    if label is not None:
        missing_label = np.array([is_missing(v) for v in frame[label]], dtype=bool)
        if missing_label.any():
            rows = np.flatnonzero(missing_label)
            if strict:
                raise MissingValueError(f"row {rows[0]}, column {label!r}: the label is missing")
            notes.append(
                f"{len(rows)} row(s) without a label were left out of training and evaluation: rows {rows[:10].tolist()}"
                + (" ..." if len(rows) > 10 else "")
            )
            frame = frame.loc[~missing_label]
        y = frame[label].to_numpy()
        if y.dtype.kind == "f" and len(y) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        classes = [c.item() if isinstance(c, np.generic) else c for c in pd.unique(y)]
        if len(classes) < 2:
            raise SchemaError(
                f"label column {label!r} has a single class ({classes[0]!r} in all {len(y)} rows); "
                "a classifier needs at least two"
                if len(classes)
                else f"label column {label!r} is empty"
            )
    row_ids = frame.index.to_numpy()
    frame = frame.reset_index(drop=True)
    group_values = None
    if groups is not None:
        group_values = np.empty(len(frame), dtype=object)
        for i, v in enumerate(frame[groups].tolist()):
            if is_missing(v):
                problems.append(
                    Problem(int(row_ids[i]), groups, 'empty cell: no group (grouped as "<missing>")')
                )
                group_values[i] = "<missing>"
            else:
                group_values[i] = _as_text(v)
        no_group = [p for p in problems if p.column == groups]
        if no_group:
            if strict:
                raise MissingValueError(str(no_group[0]))
            notes.append(
                f'{len(no_group)} row(s) have no group in column {groups!r}; they share the group "<missing>"'
            )
        group_values = group_values.astype(str)

    exclude = [c for c in (label, groups) if c is not None]
    schema = infer_schema(frame, exclude=exclude, modalities=modalities, root=base)
    declared = {str(c) for c in (modalities or {})}
    for col in frame.columns:
        if col.startswith("Unnamed:") and col not in declared and col not in exclude:
            if not _looks_like_index(frame[col]):
                notes.append(
                    f"column {col!r} has no header and is not used; declare it in modalities= to use it"
                )
    features = frame[list(schema.columns)].astype(object)
    present: dict[str, np.ndarray] = {}
    for col, mod in schema.columns.items():
        values = features[col].tolist()
        mask = np.ones(len(values), dtype=bool)
        n_before = len(problems)
        if mod == "numeric":
            nums = _to_numbers(values)
            for i, v in enumerate(values):
                if is_missing(v):
                    reason = "empty cell"
                elif np.isnan(nums[i]):
                    reason = f"not a number: {v!r}"
                elif not np.isfinite(nums[i]):
                    reason = f"not a finite number: {v!r}"
                else:
                    continue
                problems.append(Problem(int(row_ids[i]), col, reason))
                mask[i], nums[i] = False, np.nan
            features[col] = pd.Series(nums, index=features.index, dtype=np.float64)
        else:
            for i, v in enumerate(values):
                row = int(row_ids[i])
                if is_missing(v):
                    problems.append(Problem(row, col, "empty cell"))
                    mask[i], values[i] = False, None
                    continue
                if mod in ("image", "audio"):
                    if isinstance(v, os.PathLike):
                        v = os.fspath(v)
                    if isinstance(v, str):
                        v = values[i] = _resolve_path(v, base, confine, row, col)
                        if not os.path.isfile(v):
                            problems.append(Problem(row, col, f"file not found: {v}"))
                            mask[i], values[i] = False, None
                            continue
                    elif not (isinstance(v, np.ndarray) if mod == "image" else _is_wave_tuple(v)):
                        expected = "an array" if mod == "image" else "a (wave, sample_rate) tuple"
                        problems.append(
                            Problem(row, col, f"not a file path or {expected}: {type(v).__name__} {v!r:.40}")
                        )
                        mask[i], values[i] = False, None
                        continue
                    if decode:
                        try:
                            decode_media(v, mod)
                        except DecodeError as exc:
                            reason = exc.reason
                        except (OSError, ValueError, TypeError, RuntimeError) as exc:
                            reason = f"cannot decode {mod}: {type(exc).__name__}: {exc}"
                        else:
                            continue
                        problems.append(Problem(row, col, reason))
                        mask[i], values[i] = False, None
                elif mod in ("text", "categorical"):
                    values[i] = _as_text(v)
            features[col] = pd.Series(values, index=features.index, dtype=object)
        present[col] = mask
        if strict and len(problems) > n_before:
            raise MissingValueError(str(problems[n_before]))
    for col in list(schema.columns):
        if not present[col].any():
            notes.append(f"column {col!r} ({schema.columns[col]}) is missing in every row and is not used")
            del schema.columns[col]
            del present[col]
            features = features.drop(columns=col)
    if not schema.columns:
        raise SchemaError(
            f"{name}: no usable modality: every feature column is empty, ignored or missing in every row"
            + (f" (label {label!r}, groups {groups!r} are not features)" if label or groups else "")
        )
    for note in notes:
        warnings.warn(f"{name}: {note}", stacklevel=2)
    return MultimodalTable(
        features,
        schema=schema,
        y=y,
        label=label,
        groups=group_values,
        group_column=groups,
        present=present,
        problems=problems,
        notes=notes,
        row_ids=row_ids,
        name=name,
    )
