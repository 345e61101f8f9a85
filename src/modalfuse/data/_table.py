"""Reading a multimodal table and keeping track of what is missing, row by row."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modalfuse._cache import content_key, default_cache
from modalfuse._errors import DecodeError, MissingValueError, SchemaError
from modalfuse.data._schema import Schema, infer_schema, is_missing

__all__ = ["MultimodalTable", "Problem", "decode_media", "read_table"]


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
        return default_cache.get_or_compute(("image", content_key(value)), lambda: load_image(value))
    if modality == "audio":
        from modalfuse.modalities.audio import load_audio

        if isinstance(value, tuple):  # (wave, sample_rate) given in memory
            return np.asarray(value[0], dtype=np.float32), int(value[1])
        return default_cache.get_or_compute(("audio", content_key(value)), lambda: load_audio(value))
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
        Every missing or unusable cell, with the reason.
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
        _, cols = self.inputs[name]
        return np.logical_or.reduce([self.present[c] for c in cols])

    def take(self, indices: np.ndarray | Sequence[int]) -> MultimodalTable:
        """The rows at ``indices`` (positions), as a new table sharing nothing mutable with this one."""
        idx = np.asarray(indices, dtype=np.int64)
        taken = set(self.row_ids[idx].tolist())
        return MultimodalTable(
            self.frame.iloc[idx],
            schema=self.schema,
            y=None if self.y is None else self.y[idx],
            label=self.label,
            groups=None if self.groups is None else self.groups[idx],
            group_column=self.group_column,
            present={c: m[idx] for c, m in self.present.items()},
            problems=[p for p in self.problems if p.row in taken],
            notes=self.notes,
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


def _read_any(path: Path, encoding: str | None) -> pd.DataFrame:
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    if not path.is_file():
        raise SchemaError(f"{path}: no such file")
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".jsonl", ".ndjson", ".jsonl.gz"):
        return pd.read_json(path, lines=True, dtype=False, encoding=encoding or "utf-8")
    if suffix == ".json":
        return pd.read_json(path, dtype=False, encoding=encoding or "utf-8")
    if suffix in (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz"):
        sep = "\t" if suffix.startswith(".tsv") else ","
        try:
            return pd.read_csv(path, sep=sep, encoding=encoding or "utf-8", keep_default_na=True)
        except UnicodeDecodeError as exc:
            raise SchemaError(
                f"{path}: not valid {encoding or 'UTF-8'} text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
                "pass the file's encoding, e.g. encoding='latin-1' (CLI: --encoding latin-1)"
            ) from None
    raise SchemaError(f"{path}: unsupported table format {suffix!r}; use .csv, .tsv, .parquet, .jsonl or .json")


def _resolve_path(value: str, root: Path, confine: bool, row: int, column: str) -> str:
    p = Path(os.path.expanduser(value.strip()))
    full = (p if p.is_absolute() else root / p).resolve()
    if confine and not full.is_relative_to(root.resolve()):
        raise SchemaError(f"row {row}, column {column!r}: path {value!r} escapes the table's folder {root}")
    return str(full)


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
        or the current directory for a DataFrame).
    label : str, optional
        The label column. Omit it for a table to predict on.
    modalities : dict, optional
        Column -> modality (``image``, ``audio``, ``text``, ``numeric``, ``categorical``, ``tabular`` or
        ``ignore``) for the columns whose inferred modality is wrong. Others are inferred.
    groups : str, optional
        A column naming each row's group (speaker, subject, customer); grouped splits keep a group on one
        side. Not used as a feature.
    confine : bool
        Refuse file paths that resolve outside ``root``.
    strict : bool
        Raise :class:`MissingValueError` on the first missing or undecodable cell instead of masking it.
    decode : bool
        Decode every image and audio file now (cached), so undecodable files are found and reported here.
    encoding : str, optional
        Text encoding of a CSV/JSON file (default UTF-8).

    Returns
    -------
    MultimodalTable
        With ``problems`` listing every missing or unusable cell and ``notes`` anything dropped.

    Raises
    ------
    SchemaError
        No such label column, a label with one class, an unknown column in ``modalities``, no usable
        modality, an unreadable file or encoding, or a path escaping ``root`` when ``confine``.
    MissingValueError
        In ``strict`` mode, for the first missing or undecodable cell.
    """
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
        base = Path(root) if root is not None else Path.cwd()
        name = name or "dataframe"
    else:
        path = Path(source)
        frame = _read_any(path, encoding)
        base = Path(root) if root is not None else path.resolve().parent
        name = name or path.name
    frame.columns = [str(c) for c in frame.columns]
    frame = frame.reset_index(drop=True)
    for col, what in ((label, "label"), (groups, "groups")):
        if col is not None and col not in frame.columns:
            raise SchemaError(f"{what} column {col!r} is not in the table; columns are {list(frame.columns)}")
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
        classes = pd.unique(y)
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
        group_values = frame[groups].astype(str).to_numpy()

    exclude = [c for c in (label, groups) if c is not None]
    schema = infer_schema(frame, exclude=exclude, modalities=modalities, root=base)
    features = frame[list(schema.columns)].astype(object)
    present: dict[str, np.ndarray] = {}
    for col, mod in schema.columns.items():
        values = features[col].tolist()
        mask = np.ones(len(values), dtype=bool)
        for i, v in enumerate(values):
            row = int(row_ids[i])
            if mod == "numeric" and not is_missing(v):
                num = pd.to_numeric(pd.Series([v]), errors="coerce").iloc[0]
                if pd.isna(num):
                    problems.append(Problem(row, col, f"not a number: {v!r}"))
                    mask[i], values[i] = False, np.nan
                    continue
                values[i] = float(num)
                continue
            if is_missing(v):
                problems.append(Problem(row, col, "empty cell"))
                mask[i], values[i] = False, (np.nan if mod == "numeric" else None)
                continue
            if mod in ("image", "audio"):
                if isinstance(v, str):
                    v = values[i] = _resolve_path(v, base, confine, row, col)
                    if not os.path.isfile(v):
                        problems.append(Problem(row, col, f"file not found: {v}"))
                        mask[i], values[i] = False, None
                        continue
                if decode:
                    try:
                        decode_media(v, mod)
                    except DecodeError as exc:
                        problems.append(Problem(row, col, exc.reason))
                        mask[i], values[i] = False, None
            elif mod in ("text", "categorical"):
                values[i] = str(v)
        features[col] = pd.Series(values, index=features.index, dtype=object)
        present[col] = mask
        if strict and not mask.all():
            first = next(p for p in problems if p.column == col)
            raise MissingValueError(str(first))
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
