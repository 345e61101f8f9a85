"""Checking a table's cells column by column: what is usable, what is missing and why.

Each check takes one column's values and returns the cleaned values, a presence mask and one
:class:`Problem` per unusable cell; nothing here raises for a bad cell.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modalfuse._errors import DecodeError, OptionError
from modalfuse.data._media import CellError, decode_media, media_cell, resolve_media_path
from modalfuse.data._schema import is_missing

__all__ = ["MAX_ABS_NUMBER", "CellContext", "Problem", "check_column", "parse_grouped_numbers"]

#: Numbers beyond this magnitude are treated as missing (with a problem entry): their squares (1e300 and
#: up) are within a factor of 1e8 of float64's largest value, so sums of squares, variances and the
#: networks' arithmetic would overflow. No measured quantity in a table comes near it; such a value is a
#: sentinel or a corrupt cell.
MAX_ABS_NUMBER = 1e150


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


@dataclass(frozen=True)
class CellContext:
    """What the cell checks need to know besides the values.

    Attributes
    ----------
    row_ids : numpy.ndarray
        Row positions in the table as read, one per value.
    root : Path
        Folder relative media paths are resolved against.
    confine : bool
        Refuse media paths that resolve outside ``root``.
    decode : bool
        Decode media cells now.
    name : str
        The table's name, for error messages.
    """

    row_ids: np.ndarray
    root: Path
    confine: bool = False
    decode: bool = True
    name: str = "table"


# ------------------------------------------------------------------------------------------- numbers
def _to_numbers(values: list[Any]) -> np.ndarray:
    """float64 array; NaN where a cell is missing or not a number (``"3.5"`` is a number)."""
    try:
        nums = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
        if pd.api.types.is_complex_dtype(nums.dtype):  # a real number only where the imaginary part is 0
            nums = pd.Series(np.where(np.imag(nums.to_numpy()) == 0, np.real(nums.to_numpy()), np.nan))
        return np.array(nums.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64, copy=True)
    except (TypeError, ValueError):  # arrays, lists, bytes ... in the column: cell by cell
        out = np.full(len(values), np.nan)
        for i, v in enumerate(values):
            try:
                out[i] = float(pd.to_numeric(v, errors="coerce"))
            except (TypeError, ValueError):
                pass
        return out


def _number_problem(value: Any, number: float) -> str | None:
    if is_missing(value):
        return "empty cell"
    if np.isnan(number):
        return f"not a number: {value!r:.60}"
    if not np.isfinite(number):
        return f"not a finite number: {value!r:.60}"
    if abs(number) > MAX_ABS_NUMBER:
        return (
            f"number too large in magnitude: {number:.6g} (beyond +-{MAX_ABS_NUMBER:g}, where arithmetic on it "
            "overflows; treated as missing)"
        )
    return None


def _check_numbers(values: list[Any], ctx: CellContext, column: str) -> tuple[Any, np.ndarray, list[Problem]]:
    nums = _to_numbers(values)
    mask = np.ones(len(values), dtype=bool)
    problems = []
    for i, v in enumerate(values):
        reason = _number_problem(v, nums[i])
        if reason is not None:
            problems.append(Problem(int(ctx.row_ids[i]), column, reason))
            mask[i], nums[i] = False, np.nan
    return nums, mask, problems


# ------------------------------------------------------------------------------------------- text
def as_text(value: Any) -> str:
    """A categorical or text cell as a string; whole floats lose their ``.0``; bytes are decoded as UTF-8.

    pandas reads an integer column with a missing cell as floats, so without this the same category
    would be ``"1.0"`` in one table and ``"1"`` in another.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _check_text(values: list[Any], ctx: CellContext, column: str) -> tuple[Any, np.ndarray, list[Problem]]:
    mask = np.ones(len(values), dtype=bool)
    problems = []
    out: list[Any] = list(values)
    for i, v in enumerate(values):
        if is_missing(v):
            problems.append(Problem(int(ctx.row_ids[i]), column, "empty cell"))
            mask[i], out[i] = False, None
        else:
            out[i] = as_text(v)
    return out, mask, problems


# ------------------------------------------------------------------------------------------- media
def _media_value(value: Any, modality: str, ctx: CellContext, row: int, column: str) -> Any:
    """The usable form of one media cell (a resolved path, bytes, an array or a wave tuple), decoded once
    when ``ctx.decode``. Raises :class:`CellError`."""
    cell = media_cell(value, modality)
    if isinstance(cell, str):
        where = f"{ctx.name}: row {row}, column {column!r}: "
        cell = resolve_media_path(cell, ctx.root, confine=ctx.confine, where=where)
    if ctx.decode:
        try:
            decode_media(cell, modality)
        except DecodeError as exc:
            raise CellError(exc.reason) from None
        except MemoryError:
            raise CellError(f"cannot decode {modality}: out of memory") from None
        except (OSError, ValueError, TypeError, RuntimeError) as exc:
            raise CellError(f"cannot decode {modality}: {type(exc).__name__}: {exc}") from None
    return cell


def _check_media(
    values: list[Any], ctx: CellContext, column: str, modality: str
) -> tuple[Any, np.ndarray, list[Problem]]:
    mask = np.ones(len(values), dtype=bool)
    problems = []
    out: list[Any] = list(values)
    for i, v in enumerate(values):
        row = int(ctx.row_ids[i])
        try:
            if is_missing(v):
                raise CellError("empty cell")
            out[i] = _media_value(v, modality, ctx, row, column)
        except CellError as exc:
            problems.append(Problem(row, column, exc.reason))
            mask[i], out[i] = False, None
    return out, mask, problems


# ------------------------------------------------------------------------------------------- series
def _series_value(value: Any, ctx: CellContext, row: int, column: str) -> tuple[Any, Any]:
    """``(cell, recording)``: a series cell as a resolved path or an in-memory recording, and the decoded
    recording (None when ``ctx.decode`` is off). Raises :class:`CellError`."""
    from modalfuse.modalities.series import as_recording, decode_series

    if isinstance(value, str | os.PathLike):
        where = f"{ctx.name}: row {row}, column {column!r}: "
        cell: Any = resolve_media_path(os.fspath(value), ctx.root, confine=ctx.confine, where=where)
        try:
            return cell, decode_series(cell) if ctx.decode else None
        except DecodeError as exc:
            raise CellError(str(exc)) from None
    try:
        rec = as_recording(value)
    except DecodeError as exc:
        raise CellError(str(exc)) from None
    return rec, rec


def _channel_problems(recs: dict[int, Any], ctx: CellContext, column: str) -> tuple[set[int], list[Problem]]:
    """Rows whose recording's channels differ from those of most rows of the column."""
    counts = Counter(r.channels for r in recs.values())
    if len(counts) < 2:
        return set(), []
    common = counts.most_common(1)[0][0]
    bad = {i for i, r in recs.items() if r.channels != common}
    problems = [
        Problem(
            int(ctx.row_ids[i]),
            column,
            f"{recs[i].source}: {len(recs[i].channels)} channels {list(recs[i].channels)}, but most rows of "
            f"the column have {len(common)}: {list(common)}",
        )
        for i in sorted(bad)
    ]
    return bad, problems


def _check_series(values: list[Any], ctx: CellContext, column: str) -> tuple[Any, np.ndarray, list[Problem]]:
    mask = np.ones(len(values), dtype=bool)
    problems = []
    out: list[Any] = list(values)
    recs: dict[int, Any] = {}
    for i, v in enumerate(values):
        row = int(ctx.row_ids[i])
        try:
            if not isinstance(v, np.ndarray) and is_missing(v):
                raise CellError("empty cell")
            out[i], rec = _series_value(v, ctx, row, column)
            if rec is not None:
                recs[i] = rec
        except CellError as exc:
            problems.append(Problem(row, column, exc.reason))
            mask[i], out[i] = False, None
    bad, found = _channel_problems(recs, ctx, column)
    for i in bad:
        mask[i], out[i] = False, None
    problems = sorted([*problems, *found], key=lambda p: p.row)
    return out, mask, problems


def check_column(
    values: list[Any], modality: str, ctx: CellContext, column: str
) -> tuple[pd.Series | list[Any] | np.ndarray, np.ndarray, list[Problem]]:
    """Check one feature column's cells.

    Returns
    -------
    values : numpy.ndarray (numeric, float64 with NaN where missing) or list
        Text and categorical cells as strings, media cells as resolved paths, bytes or in-memory values;
        ``None`` where missing.
    mask : numpy.ndarray of bool, shape (n,)
        True where the cell is usable.
    problems : list of Problem
        One per unusable cell, in row order.

    Raises
    ------
    SchemaError
        Only for a media path outside the root when ``ctx.confine``.
    """
    if modality == "numeric":
        return _check_numbers(values, ctx, column)
    if modality in ("image", "audio"):
        return _check_media(values, ctx, column, modality)
    if modality == "series":
        return _check_series(values, ctx, column)
    return _check_text(values, ctx, column)


# ------------------------------------------------------------------------------------------- digit groups
_GROUPS = {",": ",", ".": r"\.", " ": "[ \u00a0\u202f']"}
_DECIMALS = {".": r"\.", ",": ","}
#: (digit-group separator, decimal mark) conventions, as :func:`parse_grouped_numbers` tries them.
CONVENTIONS: tuple[tuple[str, str], ...] = ((",", "."), (".", ","), (" ", "."), (" ", ","))


def _number_pattern(group: str, decimal: str) -> re.Pattern[str]:
    g, d = _GROUPS[group], _DECIMALS[decimal]
    return re.compile(rf"[+-]?(?:\d{{1,3}}(?:{g}\d{{3}})+|\d+)(?:{d}\d+)?|[+-]?{d}\d+")


_PATTERNS = {c: _number_pattern(*c) for c in CONVENTIONS}


def _parse_with(strings: Sequence[str], convention: tuple[str, str]) -> np.ndarray | None:
    """The strings as numbers under one convention, or None when one of them does not fit it."""
    pattern = _PATTERNS[convention]
    group, decimal = convention
    out = np.empty(len(strings))
    for i, s in enumerate(strings):
        if not pattern.fullmatch(s):
            return None
        if group == " ":
            s = re.sub("[ \u00a0\u202f']", "", s)
        else:
            s = s.replace(group, "")
        out[i] = float(s.replace(decimal, "."))
    return out


def _number_strings(series: pd.Series, conventions: Sequence[tuple[str, str]]) -> list[str] | None:
    """The column's stripped strings when it may hold numbers with digit groups, else None (quickly: a
    text column fails on its first value)."""
    present = [v for v in series if not is_missing(v)]
    if not present or not all(isinstance(v, str) for v in present):
        return None
    strings = [v.strip() for v in present]
    if not any(_PATTERNS[c].fullmatch(strings[0]) for c in conventions):
        return None
    if pd.to_numeric(pd.Series(strings), errors="coerce").notna().all():
        return None  # plain numbers: the schema reads them as they are
    return strings


def _grouped_numbers(series: pd.Series, conventions: Sequence[tuple[str, str]]) -> tuple[str, Any]:
    """``("numbers", floats)``, ``("ambiguous", examples)`` or ``("no", None)`` for one column."""
    strings = _number_strings(series, conventions)
    readings = [r for r in (_parse_with(strings, c) for c in conventions) if r is not None] if strings else []
    if not readings:
        return "no", None
    if any(not np.array_equal(readings[0], r) for r in readings[1:]):
        return "ambiguous", strings[:3]
    values = np.full(len(series), np.nan)
    values[[not is_missing(v) for v in series]] = readings[0]
    return "numbers", values


_SPACES = (" ", "\u00a0", "\u202f", "'")


def _conventions(thousands: str | None, decimal: str | None) -> Sequence[tuple[str, str]]:
    """The conventions to try: all of them, or the one ``thousands`` and ``decimal`` declare."""
    if thousands is None and decimal is None:
        return CONVENTIONS
    if thousands not in (None, ",", ".", *_SPACES) or decimal not in (None, ",", "."):
        raise OptionError(
            f"thousands={thousands!r}, decimal={decimal!r}: thousands is one of ',', '.', ' ', \"'\" "
            "and decimal one of '.', ','"
        )
    group = " " if thousands in _SPACES else (thousands or ("." if decimal == "," else ","))
    mark = decimal or ("," if group == "." else ".")
    if group == mark:
        raise OptionError(f"thousands and decimal cannot both be {mark!r}")
    return [(group, mark)]


def parse_grouped_numbers(
    frame: pd.DataFrame,
    columns: Sequence[str],
    *,
    thousands: str | None = None,
    decimal: str | None = None,
) -> list[str]:
    """Read columns of numbers written with digit groups (``"1,234"``, ``"12 345"``, ``"1.234,5"``) as numbers.

    A column of strings is converted (in place, to float64) when every value is a number under one
    convention of digit-group separator (``,``, ``.``, space or apostrophe) and decimal mark (``.`` or
    ``,``), and every convention that fits reads the same numbers: ``"1,234.5"`` can only mean 1234.5,
    ``"1.234,5"`` only 1234.5, ``"1,5"`` only 1.5. When the readings differ (a column holding only
    ``"1,234"``-like values: 1234 or 1.234?) nothing is converted and a note says how to declare it.
    ``thousands`` and ``decimal`` force one convention for every column (:class:`OptionError` for
    separators other than those above).

    Returns
    -------
    list of str
        Notes: the columns converted, and the ambiguous ones.
    """
    conventions = _conventions(thousands, decimal)
    notes = []
    for col in columns:
        if frame[col].dtype != object and not pd.api.types.is_string_dtype(frame[col].dtype):
            continue
        verdict, found = _grouped_numbers(frame[col], conventions)
        if verdict == "numbers":
            frame[col] = found
            notes.append(f"column {col!r} holds numbers written with digit groups; read as numbers")
        elif verdict == "ambiguous":
            notes.append(
                f"column {col!r} holds numbers with separators that read two ways ({', '.join(map(repr, found))}: "
                "thousands or decimals?); it is not read as numbers: pass thousands=',' or decimal=',' "
                "(or thousands='.') to read_table"
            )
    return notes
