"""Reading a multimodal table and keeping track of what is missing, row by row.

:func:`read_table` runs named steps: the source becomes a DataFrame (:mod:`modalfuse.data._frame`), the
label and groups columns are taken out, numbers written with digit groups are read as numbers, each
column's modality is inferred (:mod:`modalfuse.data._schema`), every cell is checked for its modality
(:mod:`modalfuse.data._cells`), columns missing in every row are dropped, and the notes are warned.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modalfuse._errors import MissingValueError, SchemaError, UnknownNameError, did_you_mean
from modalfuse.data._cells import CellContext, Problem, as_text, check_column, parse_grouped_numbers
from modalfuse.data._frame import frame_from_source, one_column_hint, read_frame
from modalfuse.data._media import decode_media
from modalfuse.data._schema import Schema, infer_schema, is_missing

__all__ = ["MultimodalTable", "Problem", "decode_media", "read_frame", "read_table"]

TableSource = str | os.PathLike | pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any] | Any


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

    def with_cells(
        self, frame: pd.DataFrame, present: dict[str, np.ndarray], schema: Schema | None = None
    ) -> MultimodalTable:
        """The same rows (labels, groups, problems, notes, ids, name) with other cells: ``frame`` and its
        ``present`` masks, and ``schema`` (default: this table's)."""
        return MultimodalTable(
            frame,
            schema=self.schema if schema is None else schema,
            y=self.y,
            label=self.label,
            groups=self.groups,
            group_column=self.group_column,
            present=present,
            problems=self.problems,
            notes=self.notes,
            row_ids=self.row_ids,
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


# ------------------------------------------------------------------------------------------- label, groups
def _missing_column(frame: pd.DataFrame, column: str, what: str) -> SchemaError:
    return SchemaError(
        f"{what} column {column!r} is not in the table{did_you_mean(column, frame.columns)} "
        f"(columns: {list(frame.columns)})" + one_column_hint(frame)
    )


def _check_roles(
    frame: pd.DataFrame,
    label: str | None,
    groups: str | None,
    modalities: Mapping[str, str] | None,
) -> tuple[str | None, str | None]:
    """The label and groups column names, checked against the table and ``modalities``."""
    if not len(frame):
        raise SchemaError("the table has no rows" + (" (a header only)" if len(frame.columns) else ""))
    roles = {what: str(col) for what, col in (("label", label), ("groups", groups)) if col is not None}
    for what, col in roles.items():
        if col not in frame.columns:
            raise _missing_column(frame, col, what)
    if len(roles) == 2 and roles["label"] == roles["groups"]:
        raise SchemaError(f"column {roles['label']!r} cannot be both the label and the groups")
    for col, mod in (modalities or {}).items():
        what = next((w for w, c in roles.items() if c == str(col)), None)
        if what is not None and mod not in ("ignore", "skip"):
            raise SchemaError(
                f"modalities declares column {str(col)!r} as {mod!r}, but it is the {what} column"
            )
    return roles.get("label"), roles.get("groups")


def _strip_labels(values: np.ndarray, label: str, notes: list[str]) -> np.ndarray:
    """String labels without surrounding spaces (``"yes "`` is ``"yes"``), with a note when that merges some."""
    if not any(isinstance(v, str) and v != v.strip() for v in values):
        return values
    stripped = np.array([v.strip() if isinstance(v, str) else v for v in values], dtype=object)
    merged = len(set(values.tolist())) - len(set(stripped.tolist()))
    if merged:
        notes.append(
            f"label column {label!r} has labels differing only in surrounding spaces ({merged} merged, "
            "e.g. 'yes ' and 'yes'); the spaces are ignored"
        )
    return stripped


def _label_values(values: np.ndarray, label: str, notes: list[str]) -> np.ndarray:
    """Labels of one type: whole-number floats become ints; numbers mixed with strings become strings;
    surrounding spaces are dropped."""
    if values.dtype.kind == "f" and len(values) and np.all(np.mod(values, 1) == 0):
        return values.astype(np.int64)
    if values.dtype != object:
        return values
    kinds = {"number" if isinstance(v, int | float | np.number) else "other" for v in values}
    if len(kinds) > 1:
        notes.append(f"label column {label!r} mixes numbers and strings; every label is read as a string")
        values = np.array([as_text(v) for v in values], dtype=object)
    return _strip_labels(values, label, notes)


def _few_rows_note(y: np.ndarray, row_ids: np.ndarray, label: str) -> str | None:
    """A note naming the classes that have a single row."""
    classes, counts = np.unique(y.astype(str) if y.dtype == object else y, return_counts=True)
    single = [
        c.item() if isinstance(c, np.generic) else c for c, n in zip(classes, counts, strict=True) if n == 1
    ]
    if not single:
        return None
    keys = y.astype(str) if y.dtype == object else y
    where = [int(row_ids[np.flatnonzero(keys == c)[0]]) for c in single]
    listing = ", ".join(f"{c!r} (row {r})" for c, r in zip(single, where, strict=True))
    return (
        f"class(es) of label {label!r} with a single row: {listing}; a model cannot both learn such a class "
        "and be evaluated on it, and stratified cross-validation needs at least as many rows per class as folds"
    )


def _take_label(
    frame: pd.DataFrame, label: str | None, strict: bool, notes: list[str]
) -> tuple[pd.DataFrame, np.ndarray | None, np.ndarray]:
    """Drop the rows without a label (with a note); return ``(frame, y, row_ids)``."""
    if label is None:
        return frame, None, np.arange(len(frame))
    missing = np.array([is_missing(v) for v in frame[label]], dtype=bool)
    if missing.all():
        raise SchemaError(f"label column {label!r} is empty: no value in any of its {len(frame)} rows")
    if missing.any():
        rows = np.flatnonzero(missing)
        if strict:
            raise MissingValueError(f"row {rows[0]}, column {label!r}: the label is missing")
        notes.append(
            f"{len(rows)} row(s) without a label were left out of training and evaluation: rows {rows[:10].tolist()}"
            + (" ..." if len(rows) > 10 else "")
        )
        frame = frame.loc[~missing]
    row_ids = frame.index.to_numpy()
    y = _label_values(frame[label].to_numpy(), label, notes)
    classes = [c.item() if isinstance(c, np.generic) else c for c in pd.unique(y)]
    if len(classes) < 2:
        raise SchemaError(
            f"label column {label!r} has a single class ({classes[0]!r} in all {len(y)} rows); "
            "a classifier needs at least two"
        )
    note = _few_rows_note(y, row_ids, label)
    if note:
        notes.append(note)
    return frame.reset_index(drop=True), y, row_ids


def _read_groups(
    frame: pd.DataFrame,
    groups: str | None,
    ctx: CellContext,
    strict: bool,
    problems: list[Problem],
    notes: list[str],
) -> np.ndarray | None:
    """Each row's group as a string; rows without one share ``"<missing>"`` (a problem each)."""
    if groups is None:
        return None
    values = np.empty(len(frame), dtype=object)
    missing = []
    for i, v in enumerate(frame[groups].tolist()):
        if is_missing(v):
            missing.append(
                Problem(int(ctx.row_ids[i]), groups, 'empty cell: no group (grouped as "<missing>")')
            )
            values[i] = "<missing>"
        else:
            values[i] = as_text(v)
    if missing:
        if strict:
            raise MissingValueError(str(missing[0]))
        problems.extend(missing)
        notes.append(
            f'{len(missing)} row(s) have no group in column {groups!r}; they share the group "<missing>"'
        )
    return values.astype(str)


# ------------------------------------------------------------------------------------------- columns
def _looks_like_index(series: pd.Series) -> bool:
    """True for a column of distinct whole numbers, which is what ``DataFrame.to_csv`` writes as index."""
    nums = pd.to_numeric(series, errors="coerce")
    return bool(nums.notna().all() and (nums % 1 == 0).all() and nums.is_unique)


def _unnamed_notes(frame: pd.DataFrame, exclude: list[str], declared: set[str]) -> list[str]:
    """Notes for header-less columns that are not a saved index (they are left out)."""
    return [
        f"column {col!r} has no header and is not used; declare it in modalities= to use it"
        for col in frame.columns
        if col.startswith("Unnamed:")
        and col not in declared
        and col not in exclude
        and not _looks_like_index(frame[col])
    ]


def _number_candidates(frame: pd.DataFrame, exclude: list[str], modalities: Mapping[str, str]) -> list[str]:
    """Columns that may hold numbers written with digit groups: undeclared, numeric or tabular ones."""
    return [
        c for c in frame.columns if c not in exclude and modalities.get(c) in (None, "numeric", "tabular")
    ]


def _check_cells(
    frame: pd.DataFrame, schema: Schema, ctx: CellContext, strict: bool, problems: list[Problem]
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Every feature cell checked for its column's modality: ``(features, present)``."""
    columns: dict[str, pd.Series] = {}
    present: dict[str, np.ndarray] = {}
    for col, mod in schema.columns.items():
        values, mask, found = check_column(frame[col].astype(object).tolist(), mod, ctx, col)
        if strict and found:
            raise MissingValueError(str(found[0]))
        dtype = np.float64 if mod == "numeric" else object
        columns[col] = pd.Series(values, index=frame.index, dtype=dtype)
        present[col] = mask
        problems.extend(found)
    return pd.DataFrame(columns, index=frame.index), present


def _drop_empty_columns(
    features: pd.DataFrame, schema: Schema, present: dict[str, np.ndarray], notes: list[str]
) -> pd.DataFrame:
    """Columns missing in every row leave the schema, with a note (their problems stay listed)."""
    empty = [col for col in schema.columns if not present[col].any()]
    for col in empty:
        notes.append(f"column {col!r} ({schema.columns[col]}) is missing in every row and is not used")
        del schema.columns[col]
        del present[col]
    return features.drop(columns=empty)


# ------------------------------------------------------------------------------------------- read_table
def read_table(
    source: TableSource,
    *,
    label: str | None = None,
    modalities: Mapping[str, str] | None = None,
    groups: str | None = None,
    root: str | os.PathLike | None = None,
    confine: bool = False,
    strict: bool = False,
    decode: bool = True,
    encoding: str | None = None,
    sep: str | None = None,
    thousands: str | None = None,
    decimal: str | None = None,
    name: str | None = None,
) -> MultimodalTable:
    """Read a multimodal table from a file, a DataFrame, records or a dataset object.

    Parameters
    ----------
    source : path, DataFrame, list of dicts, dict of columns, or an object with ``to_pandas()``
        The table: a CSV/TSV, Parquet, JSONL or JSON file (CSV and JSON optionally gzipped); a pandas
        DataFrame; a list of records; a mapping of column -> values; or any object with a ``to_pandas()``
        method, such as a Hugging Face ``datasets.Dataset`` (``datasets`` is not needed otherwise). File
        paths inside it are resolved relative to ``root`` (default: the table's folder, or the current
        directory for an in-memory source). Image cells may also be the bytes of an image file, decoded
        ``PIL.Image.Image`` objects, arrays (2-D or 3-D) or Hugging Face ``{"bytes": ..., "path": ...}``
        dicts (the bytes first, else the path); audio cells the bytes of a file, ``(wave, sample_rate)``
        tuples, or ``{"bytes", "path"}`` / ``{"array", "sampling_rate"}`` dicts.
    label : str, optional
        The label column. Omit it for a table to predict on. Rows without a label are left out, with a
        note. Whole-number float labels (pandas reads an integer column with a gap as floats) become ints;
        a label mixing numbers and strings is read as strings. A class with a single row gets a note.
    modalities : dict, optional
        Column -> modality (``image``, ``audio``, ``text``, ``numeric``, ``categorical``, ``tabular`` or
        ``ignore``) for the columns whose inferred modality is wrong. Others are inferred (see
        :func:`modalfuse.data.infer_schema`); unnamed columns (a saved index) and identifier-like columns
        (``id``, ``customer_id``, ``Clothing ID`` holding codes unique per row or with more than 50
        distinct values; see :func:`modalfuse.data.identifier_kind`) are left out, with a note, unless
        declared.
    groups : str, optional
        A column naming each row's group (speaker, subject, customer); grouped splits keep a group on one
        side. Not used as a feature. A row without a group is a problem; such rows share the group
        ``"<missing>"``.
    root : path, optional
        The folder relative file paths are resolved against.
    confine : bool
        Refuse media file paths that resolve outside ``root``: ``..`` paths, absolute paths and symbolic
        links pointing out alike (for a server reading tables it did not write).
    strict : bool
        Raise :class:`MissingValueError` on the first missing or undecodable cell (column by column)
        instead of masking it.
    decode : bool
        Decode every image and audio cell now (cached by content), so undecodable ones are found and
        reported here. Images over the pixel budget and audio over the sample budget are reported
        without being decoded (see :data:`modalfuse.modalities.image.MAX_IMAGE_PIXELS` and
        :data:`modalfuse.modalities.audio.MAX_AUDIO_SAMPLES`).
    encoding : str, optional
        Text encoding of a CSV/JSON file (default: from its byte-order mark, else UTF-8).
    sep : str, optional
        The CSV delimiter (default: sniffed among ``,``, ``;``, tab and ``|``).
    thousands, decimal : str, optional
        The digit-group separator and decimal mark of numbers written as text (default: recognised per
        column when unambiguous, see :func:`modalfuse.data._cells.parse_grouped_numbers`).
    name : str, optional
        Name of the table in messages (default: the file name, or ``"dataframe"``).

    Returns
    -------
    MultimodalTable
        ``present[column]`` is False for every empty cell (None, NaN, blank string), missing or unusable
        file (with the accurate reason: file not found, symlink loop, a directory, a device, ...),
        undecodable file, image over the pixel budget, and non-number in a numeric column (infinities and
        magnitudes beyond 1e150 included); ``problems`` lists each of them as ``Problem(row, column,
        reason)``. A column missing in every row is dropped from the schema with a note in ``notes`` (its
        problems stay listed); every note is also warned.

    Raises
    ------
    SchemaError
        A table with no rows, no such label column, a label with one class or none, an unknown column in
        ``modalities`` (or one naming the label or groups column), duplicate column names, no usable
        modality, an unreadable file or encoding, or a path escaping ``root`` when ``confine``.
    MissingValueError
        In ``strict`` mode, for the first missing or undecodable cell (a missing label included).
    TypeError
        For a source of none of the kinds above.
    """
    frame, base, name = frame_from_source(source, root=root, encoding=encoding, sep=sep, name=name)
    try:
        return _build_table(
            frame,
            _Options(label, groups, modalities, base, confine, strict, decode, thousands, decimal, name),
        )
    except (SchemaError, MissingValueError) as exc:
        if str(exc).startswith(f"{name}: "):
            raise
        raise type(exc)(f"{name}: {exc}") from exc


@dataclass(frozen=True)
class _Options:
    """read_table's keyword arguments, as the steps need them."""

    label: str | None
    groups: str | None
    modalities: Mapping[str, str] | None
    root: Path
    confine: bool
    strict: bool
    decode: bool
    thousands: str | None
    decimal: str | None
    name: str


def _build_table(frame: pd.DataFrame, opts: _Options) -> MultimodalTable:
    """The steps of :func:`read_table` after the source is read into ``frame``."""
    duplicated = sorted(set(frame.columns[frame.columns.duplicated()]))
    if duplicated:
        raise SchemaError(f"duplicate column name(s) {duplicated}; every column needs its own name")
    label, groups = _check_roles(frame, opts.label, opts.groups, opts.modalities)
    declared = {str(c): m for c, m in (opts.modalities or {}).items()}
    notes: list[str] = [f"the table{hint}" for hint in [one_column_hint(frame)] if hint]
    problems: list[Problem] = []
    frame, y, row_ids = _take_label(frame, label, opts.strict, notes)
    ctx = CellContext(
        row_ids=row_ids, root=opts.root, confine=opts.confine, decode=opts.decode, name=opts.name
    )
    group_values = _read_groups(frame, groups, ctx, opts.strict, problems, notes)
    exclude = [c for c in (label, groups) if c is not None]
    candidates = _number_candidates(frame, exclude, declared)
    notes += parse_grouped_numbers(frame, candidates, thousands=opts.thousands, decimal=opts.decimal)
    schema = infer_schema(frame, exclude=exclude, modalities=declared, root=opts.root, notes=notes)
    notes += _unnamed_notes(frame, exclude, set(declared))
    features, present = _check_cells(frame, schema, ctx, opts.strict, problems)
    features = _drop_empty_columns(features, schema, present, notes)
    if not schema.columns:
        raise SchemaError(
            "no usable modality: every feature column is empty, ignored, an identifier or missing in every row"
            + (f" (label {label!r}, groups {groups!r} are not features)" if label or groups else "")
        )
    for note in notes:
        warnings.warn(f"{opts.name}: {note}", stacklevel=3)
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
        name=opts.name,
    )
