"""What differs between the rows given to a fitted model and the rows it was trained on.

:class:`DriftReport` lists missing, empty and extra columns, category values the model has no slot for,
columns whose kind of values changed (numbers now text, say) and unusable cells. The estimator builds one
at every prediction (:meth:`MultimodalClassifier.predict_frame` returns it in ``.attrs["drift"]``) and warns
:class:`~modalfuse.InputDriftWarning` with its summary when it finds drift.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modalfuse.data._media import media_kind_of_bytes
from modalfuse.data._schema import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, SERIES_EXTENSIONS, is_missing
from modalfuse.data._table import Problem
from modalfuse.modalities.tabular import _category_key

__all__ = ["DriftReport", "column_kind", "input_drift"]

#: Modality -> the kind of values a column of it holds.
_KIND = {
    "numeric": "numeric",
    "categorical": "text",
    "text": "text",
    "image": "image",
    "audio": "audio",
    "series": "series",
}
_SHOWN = 3  # values / columns named in a summary line before "..."


@dataclass(frozen=True)
class DriftReport:
    """Differences between the rows to predict and the model's training rows.

    Attributes
    ----------
    n_rows : int
        Rows predicted.
    missing_columns : list of str
        Columns the model was fitted on that the rows do not have; each is treated as missing in every row.
    empty_columns : list of str
        Columns the rows have but with no usable value in any row (also treated as missing).
    extra_columns : list of str
        Columns the model was not fitted on; they are ignored.
    unseen_categories : dict of str to dict of str to int
        Categorical column -> value -> number of rows holding a value the model has no category for (it is
        encoded as "other").
    type_changes : dict of str to dict of str to str
        Column -> ``{"fitted": kind, "now": kind}`` where the kind of values (``numeric``, ``text``,
        ``image``, ``audio``) differs from the one the model was fitted on.
    problems : list of Problem
        Cells that are missing or could not be used (row, column, reason), empty cells included.
    """

    n_rows: int
    missing_columns: list[str] = field(default_factory=list)
    empty_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    unseen_categories: dict[str, dict[str, int]] = field(default_factory=dict)
    type_changes: dict[str, dict[str, str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def unusable_cells(self) -> list[Problem]:
        """The problems other than empty cells (missing files, undecodable files, non-numbers...)."""
        return [p for p in self.problems if not p.reason.startswith("empty cell")]

    @property
    def has_drift(self) -> bool:
        """Whether anything changes the predictions against rows like the training rows.

        Extra columns and empty cells alone are not drift: extra columns are ignored and a model is fitted to
        cope with missing cells.
        """
        return bool(
            self.missing_columns
            or self.empty_columns
            or self.unseen_categories
            or self.type_changes
            or self.unusable_cells
        )

    def __bool__(self) -> bool:
        return self.has_drift

    def lines(self) -> list[str]:
        """One line per kind of finding, for a person to read."""
        out = []
        if self.missing_columns:
            out.append(
                f"{len(self.missing_columns)} input column(s) absent, treated as missing in every row: "
                + _names(self.missing_columns)
            )
        if self.empty_columns:
            out.append(
                f"{len(self.empty_columns)} input column(s) with no usable value in any row: "
                + _names(self.empty_columns)
            )
        for col, change in self.type_changes.items():
            out.append(f"column {col!r} was {change['fitted']} when fitted and is now {change['now']}")
        for col, values in self.unseen_categories.items():
            rows = sum(values.values())
            shown = ", ".join(repr(v) for v in list(values)[:_SHOWN]) + (
                " ..." if len(values) > _SHOWN else ""
            )
            out.append(
                f"column {col!r}: {len(values)} value(s) the model has no category for, in {rows} row(s) "
                f"({shown}), encoded as 'other'"
            )
        unusable = self.unusable_cells
        if unusable:
            first = unusable[0]
            out.append(
                f"{len(unusable)} unusable cell(s) treated as missing (first: row {first.row}, column "
                f"{first.column!r}: {first.reason})"
            )
        if self.extra_columns:
            out.append(
                f"{len(self.extra_columns)} column(s) the model does not use, ignored: "
                + _names(self.extra_columns)
            )
        return out

    def summary(self) -> str:
        """The findings in one line (``"no input drift"`` when there are none)."""
        lines = [line for line in self.lines() if self.has_drift or "ignored" in line]
        if not lines:
            return f"no input drift in {self.n_rows} row(s)"
        return f"input drift in {self.n_rows} row(s) to predict: " + "; ".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able data."""
        doc = asdict(self)
        doc["problems"] = [{"row": p.row, "column": p.column, "reason": p.reason} for p in self.problems]
        doc["has_drift"] = self.has_drift
        return doc

    def to_frame(self) -> pd.DataFrame:
        """Every finding as one row: ``kind``, ``column``, ``row`` (empty for whole-column findings),
        ``value``, ``count`` and ``detail``; what ``modalfuse predict --problems FILE`` writes."""
        records: list[dict[str, Any]] = []

        def add(
            kind: str, column: str, row: Any = None, value: Any = None, count: Any = None, detail: str = ""
        ):
            records.append(
                {"kind": kind, "column": column, "row": row, "value": value, "count": count, "detail": detail}
            )

        for col in self.missing_columns:
            add("missing column", col, count=self.n_rows, detail="absent: treated as missing in every row")
        for col in self.empty_columns:
            add("empty column", col, count=self.n_rows, detail="no usable value in any row")
        for col, change in self.type_changes.items():
            add("type change", col, detail=f"was {change['fitted']}, now {change['now']}")
        for col, values in self.unseen_categories.items():
            for value, count in values.items():
                add("unseen category", col, value=value, count=count, detail="encoded as 'other'")
        for col in self.extra_columns:
            add("extra column", col, detail="not used by the model")
        for p in self.problems:
            add(
                "empty cell" if p.reason.startswith("empty cell") else "unusable cell",
                p.column,
                p.row,
                detail=p.reason,
            )
        frame = pd.DataFrame.from_records(
            records, columns=["kind", "column", "row", "value", "count", "detail"]
        )
        return frame.astype({"row": "Int64", "count": "Int64"})


def _names(columns: Sequence[str]) -> str:
    shown = ", ".join(repr(c) for c in columns[:_SHOWN])
    return shown + (f" and {len(columns) - _SHOWN} more" if len(columns) > _SHOWN else "")


def column_kind(values: Iterable[Any]) -> str | None:
    """The kind of most non-missing values: ``numeric``, ``image``, ``audio`` or ``text`` (None if none).

    Mostly numbers (or strings that parse as numbers) is ``numeric``; arrays, and strings of which most end in an
    image extension, are ``image``; ``(wave, rate)`` tuples and strings ending in an audio extension are
    ``audio``; recordings (and strings ending in ``.csv``/``.parquet``) are ``series``; the bytes of files
    (or ``{"bytes"}`` dicts) are judged by their magic numbers (``image``, ``audio``, or None when most are
    neither: those cells are reported as undecodable instead); anything else is ``text``.
    """
    present = [v for v in values if not is_missing(v)]
    if not present:
        return None
    if type(present[0]).__name__ == "Recording" or (isinstance(present[0], dict) and "values" in present[0]):
        return "series"
    if isinstance(present[0], bytes | bytearray | memoryview | Mapping):
        return _file_kind(present)
    half = len(present) / 2
    # in-memory media (image arrays, (wave, rate) tuples) may sit beside file paths in one column
    arrays = sum(isinstance(v, np.ndarray) for v in present)
    waves = sum(isinstance(v, tuple) for v in present)
    scalars = [v for v in present if not isinstance(v, np.ndarray | tuple | list | dict)]
    numbers = pd.to_numeric(pd.Series(scalars, dtype=object).map(_as_number), errors="coerce")
    if numbers.notna().sum() > half:
        return "numeric"
    strings = [os.fspath(v) if isinstance(v, os.PathLike) else v for v in scalars]
    strings = [s.strip().lower() for s in strings if isinstance(s, str)]
    for extensions, kind, in_memory in (
        (IMAGE_EXTENSIONS, "image", arrays),
        (AUDIO_EXTENSIONS, "audio", waves),
        (SERIES_EXTENSIONS, "series", 0),
    ):
        if in_memory + sum(os.path.splitext(s)[1] in extensions for s in strings) > half:
            return kind
    return "text"


def _file_kind(present: list[Any]) -> str | None:
    """The kind of most cells holding a file's bytes (or Hugging Face ``{"bytes"}`` / ``{"array"}`` dicts),
    from the bytes' magic numbers: ``image``, ``audio``, or None when most are neither."""
    kinds = []
    for v in present:
        if isinstance(v, Mapping):
            v = "audio" if v.get("array") is not None else v.get("bytes")
        if isinstance(v, bytes | bytearray | memoryview):
            v = media_kind_of_bytes(bytes(v))
        kinds.append(v if v in ("image", "audio") else None)
    top = max(set(kinds), key=kinds.count)
    return top if top is not None and kinds.count(top) > len(kinds) / 2 else None


def _as_number(value: Any) -> Any:
    if isinstance(value, bool | np.bool_):
        return np.nan  # True/False are categories, not numbers
    if isinstance(value, int) and abs(value) > sys.float_info.max:
        return np.inf if value > 0 else -np.inf  # a number, too large for pandas to convert
    return value.strip() if isinstance(value, str) else value


def _type_change(
    fitted: str, values: list[Any], known_categories: Sequence[str] | None
) -> dict[str, str] | None:
    now = column_kind(values)
    before = _KIND.get(fitted)
    if now is None or before is None or now == before:
        return None
    if fitted == "categorical" and now == "numeric" and known_categories:
        # numbers are valid categories: a change only when none of them is one the model knows
        keys = {_category_key(v) for v in values}
        if keys & set(known_categories):
            return None
    return {"fitted": fitted, "now": now}


def _unseen(values: list[Any], known: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    slots = set(known)
    for v in values:
        key = _category_key(v)
        if key is not None and key not in slots:
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _is_empty(values: list[Any], usable: np.ndarray | None) -> bool:
    """Whether a column with rows has no usable value (blank everywhere, or no row usable)."""
    if not values:
        return False
    if usable is not None and len(usable) and not np.any(usable):
        return True
    return all(is_missing(v) for v in values)


def input_drift(
    raw: pd.DataFrame,
    *,
    fitted: Mapping[str, str],
    categories: Mapping[str, Sequence[str]],
    problems: Sequence[Problem] = (),
    usable: Mapping[str, np.ndarray] | None = None,
    ignore: Iterable[str] = (),
) -> DriftReport:
    """Compare the rows to predict with what a model was fitted on.

    Parameters
    ----------
    raw : pandas.DataFrame
        The rows as given (before they are read under the fitted modalities).
    fitted : mapping of str to str
        Column -> modality the model was fitted on.
    categories : mapping of str to list of str
        Categorical column -> the values the model has a category for.
    problems : sequence of Problem
        Cells found missing or unusable while reading (and decoding) the rows.
    usable : mapping of str to ndarray of bool, optional
        Column -> rows with a usable value, where known; a fitted column present in ``raw`` with no usable
        row is an empty column.
    ignore : iterable of str
        Columns of ``raw`` that are neither inputs nor extra (an id column, the label).

    Returns
    -------
    DriftReport
    """
    ignored = set(ignore)
    missing = [c for c in fitted if c not in raw.columns]
    extra = [str(c) for c in raw.columns if c not in fitted and c not in ignored]
    empty, unseen, changes = [], {}, {}
    for col in (c for c in fitted if c in raw.columns):
        values = raw[col].tolist()
        if _is_empty(values, None if usable is None else usable.get(col)):
            empty.append(col)
        if all(is_missing(v) for v in values):
            continue
        change = _type_change(fitted[col], values, categories.get(col))
        if change is not None:
            changes[col] = change
        counts = (
            _unseen(values, categories[col]) if fitted[col] == "categorical" and col in categories else {}
        )
        if counts:
            unseen[col] = counts
    return DriftReport(
        n_rows=len(raw),
        missing_columns=missing,
        empty_columns=empty,
        extra_columns=extra,
        unseen_categories=unseen,
        type_changes=changes,
        problems=list(problems),
    )
