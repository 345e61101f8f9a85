"""Labelled recordings -> a table of fixed windows, one row per window, one series input per device.

:func:`windows` pairs the recordings of each session (a folder laid out like ``sp_sw_har/DATA``, files
``<recording>_<input>.csv``, or a table with one row per recording and one column per input), resamples
every input by timestamp onto one grid in the reference input's clock (optionally after correcting the
other clocks with :func:`modalfuse.align.align`), cuts windows of ``size`` samples every ``step`` where
every input is present, on a lattice counted from the reference's first sample (so the reference's windows
stay put whatever the other inputs do), and labels each by the majority of the reference's per-sample
labels. Rows keep their recording, the window's
start and the group (subject), so folds can hold subjects out.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modalfuse._errors import DecodeError, OptionError, SchemaError
from modalfuse.data._cells import Problem
from modalfuse.data._schema import Schema, is_missing
from modalfuse.data._table import MultimodalTable
from modalfuse.modalities.series import (
    SERIES_EXTENSIONS,
    Recording,
    as_recording,
    filter_series,
    labels_at,
    majority_labels,
    resample_series,
    window_starts,
)

__all__ = ["RecordingSet", "WindowOptions", "find_recordings", "windows"]


@dataclass
class RecordingSet:
    """Recordings to window: ``paths[recording][input]`` (a path or an in-memory series, None where
    absent), the group of each recording, and the inputs in order (the first is the reference)."""

    inputs: list[str]
    paths: dict[str, dict[str, Any]]
    groups: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class WindowOptions:
    """How :func:`windows` cuts recordings (see its parameters)."""

    size: int = 50
    step: int = 25
    rate: float = 100.0
    max_gap: float = 0.25
    lowpass: float | None = None
    highpass: float | None = None
    label: str | None = "label"
    timestamp: str | None = None
    align: bool = False
    align_options: Mapping[str, Any] | None = None
    offsets: Mapping[str, Any] | None = None
    on_abstain: str = "mask"

    def check(self) -> None:
        for name, value in (("size", self.size), ("step", self.step)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise OptionError(f"windows: {name} must be a whole number >= 1, got {value!r}")
        if not self.rate > 0:
            raise OptionError(f"windows: rate must be > 0 samples per second, got {self.rate!r}")
        if not self.max_gap > 0:
            raise OptionError(f"windows: max_gap must be > 0 seconds, got {self.max_gap!r}")
        if self.on_abstain not in ("mask", "keep"):
            raise OptionError(f"windows: on_abstain must be 'mask' or 'keep', got {self.on_abstain!r}")
        nyq = self.rate / 2
        for name, f in (("lowpass", self.lowpass), ("highpass", self.highpass)):
            if f is not None and not 0 < f < nyq:
                raise OptionError(f"windows: {name} {f} Hz must be between 0 and rate/2 = {nyq:g} Hz")


# ------------------------------------------------------------------------------------------- finding recordings
_SUFFIX = re.compile(r"^(?P<rec>.+)_(?P<input>[^_]+)$")


def _common_inputs(found: Counter) -> list[str]:
    """The suffixes that name inputs: those at least half as frequent as the most frequent one."""
    if not found:
        return []
    top = max(found.values())
    return sorted(k for k, n in found.items() if n * 2 >= top)


def find_recordings(folder: str | os.PathLike, inputs: Sequence[str] | None = None) -> RecordingSet:
    """The recordings of a folder laid out like ``sp_sw_har/DATA``: files ``<recording>_<input>.<ext>``
    (CSV, TSV or Parquet) anywhere below ``folder``, paired by the name before the last ``_``. The group
    of a recording is the name of its subfolder (``s01``), or None for files directly in ``folder``.

    ``inputs`` (default: the suffixes that occur for most recordings, sorted) picks and orders the inputs;
    the first is the reference.
    """
    root = Path(folder)
    if not root.is_dir():
        raise SchemaError(f"{root}: not a folder of recordings")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in SERIES_EXTENSIONS and p.is_file())
    matches = [(p, _SUFFIX.match(p.stem)) for p in files]
    matches = [(p, m) for p, m in matches if m is not None]
    if inputs is None:
        inputs = _common_inputs(Counter(m.group("input") for _, m in matches))
    inputs = list(inputs)
    paths: dict[str, dict[str, Any]] = {}
    groups: dict[str, str | None] = {}
    for p, m in matches:
        if m.group("input") not in inputs:
            continue
        rec = m.group("rec")
        paths.setdefault(rec, dict.fromkeys(inputs))[m.group("input")] = str(p)
        rel = p.parent.relative_to(root)
        groups[rec] = rel.parts[0] if rel.parts else None
    if not paths:
        raise SchemaError(
            f"{root}: no recordings named <recording>_<input>.csv/.parquet"
            + (f" for inputs {inputs}" if inputs else "")
        )
    return RecordingSet(inputs, dict(sorted(paths.items())), groups)


def _recordings_of_table(
    frame: pd.DataFrame, inputs: Sequence[str], recording: str | None, groups: str | None, root: Path
) -> RecordingSet:
    """A table with one row per recording: a column per input (paths relative to ``root``, or in-memory
    series), optional recording-id and group columns."""
    for col in [*inputs, *(c for c in (recording, groups) if c is not None)]:
        if col not in frame.columns:
            raise SchemaError(
                f"column {col!r} is not in the table of recordings (columns: {list(frame.columns)})"
            )
    paths: dict[str, dict[str, Any]] = {}
    group_of: dict[str, str | None] = {}
    for i, row in frame.reset_index(drop=True).iterrows():
        rec = str(row[recording]) if recording is not None else f"row{i}"
        if rec in paths:
            raise SchemaError(f"recording {rec!r} appears twice in the table of recordings")
        cells = {}
        for name in inputs:
            v = row[name]
            if isinstance(v, str) and not is_missing(v) and not os.path.isabs(v):
                v = str(root / v)
            cells[name] = None if not isinstance(v, np.ndarray | Recording | dict) and is_missing(v) else v
        paths[rec] = cells
        group_of[rec] = None if groups is None or is_missing(row[groups]) else str(row[groups])
    return RecordingSet(list(inputs), paths, group_of)


# ------------------------------------------------------------------------------------------- one recording
@dataclass
class _Built:
    """Rows built from one recording: per input the windows (or None) and the reason where masked."""

    cells: dict[str, list[Any]]
    reasons: dict[str, list[str | None]]
    labels: list[Any]
    starts: list[float]
    alignment: dict[str, Any] | None = None


def _to_reference_clock(rec: Recording, estimate: Mapping[str, Any] | None, t_ref0: float) -> Recording:
    """``rec`` with its timestamps mapped to the reference clock by an alignment estimate (``offset_ms``
    and ``drift_ppm`` as :func:`modalfuse.align.align` defines them), unchanged without one."""
    if not estimate or estimate.get("abstained") or estimate.get("offset_ms") is None:
        return rec
    offset = float(estimate["offset_ms"]) / 1000.0
    drift = float(estimate.get("drift_ppm") or 0.0) * 1e-6
    t = rec.times()
    return replace(rec, timestamps=t_ref0 + (t - t_ref0 - offset) / (1.0 + drift), rate=None)


def _grid_input(rec: Recording, start: float, n: int, opts: WindowOptions) -> tuple[np.ndarray, np.ndarray]:
    """The input resampled onto the grid and filtered: (values (n, C), valid (n,))."""
    values, valid, _ = resample_series(rec, opts.rate, start=start, n=n, max_gap=opts.max_gap)
    if (opts.lowpass or opts.highpass) and valid.any():
        idx = np.arange(n)
        filled = np.column_stack(
            [np.interp(idx, idx[valid], values[valid, c]) for c in range(values.shape[1])]
        )
        values = filter_series(filled, opts.rate, lowpass=opts.lowpass, highpass=opts.highpass)
    return values, valid


def _gap_reason(rec: Recording, valid: np.ndarray, s: int, opts: WindowOptions, start: float) -> str:
    bad = np.flatnonzero(~valid[s : s + opts.size])
    at = start + (s + bad[0]) / opts.rate - rec.times()[0]
    return (
        f"{rec.source}: gap of more than {opts.max_gap:g} s without samples at {at:.2f} s into the "
        f"recording ({len(bad)} of the window's {opts.size} grid points); the window is not interpolated"
    )


def _lattice_start(ref_t0: float, shared_t0: float, opts: WindowOptions) -> float:
    """The first window start at or after ``shared_t0`` (where every present input has begun) on the
    reference's own lattice ``ref_t0 + k * step / rate``: the reference's windows then do not move when
    another input starts later, is masked, or has its clock corrected."""
    k = int(np.ceil((shared_t0 - ref_t0) * opts.rate / opts.step - 1e-6))
    return ref_t0 + max(k, 0) * opts.step / opts.rate


def _window_rows(
    recs: Mapping[str, Recording | None],
    errors: Mapping[str, str],
    reference: str,
    opts: WindowOptions,
    rec_id: str,
) -> _Built | str:
    """The windows of one recording's inputs, or the reason why it has none."""
    ref = recs[reference]
    assert ref is not None
    present = {k: r for k, r in recs.items() if r is not None}
    shared = max(float(r.times()[0]) for r in present.values())
    stop = min(float(r.times()[-1]) for r in present.values())
    start = _lattice_start(float(ref.times()[0]), shared, opts)
    n = int(np.floor((stop - start) * opts.rate + 1e-9)) + 1 if stop > start else 0
    starts = window_starts(n, opts.size, opts.step)
    if not len(starts):
        names = ", ".join(r.source for r in present.values())
        span = f"{max(stop - shared, 0.0):.2f} s shared by its inputs"
        if stop - shared >= opts.size / opts.rate:  # long enough, but not from the first lattice point
            span += (
                f", {max(stop - start, 0.0):.2f} s of it from the first window start on the reference's steps"
            )
        return (
            f"recording {rec_id!r} ({names}): {span}, shorter than one window ({opts.size} samples at "
            f"{opts.rate:g} Hz = {opts.size / opts.rate:g} s); no windows"
        )
    grid_t = start + np.arange(n) / opts.rate
    labels = (
        majority_labels(labels_at(ref, grid_t), starts, opts.size) if opts.label else [None] * len(starts)
    )
    built = _Built({}, {}, list(labels), [float(start - ref.times()[0] + s / opts.rate) for s in starts])
    for name, rec in recs.items():
        if rec is None:
            built.cells[name] = [None] * len(starts)
            built.reasons[name] = [errors.get(name, "no recording for this input")] * len(starts)
            continue
        values, valid = _grid_input(rec, start, n, opts)
        cells, reasons = [], []
        for s in starts:
            if valid[s : s + opts.size].all():
                cells.append(
                    Recording(
                        values[s : s + opts.size].copy(), rec.channels, None, opts.rate, None, rec.source
                    )
                )
                reasons.append(None)
            else:
                cells.append(None)
                reasons.append(_gap_reason(rec, valid, int(s), opts, start))
        built.cells[name], built.reasons[name] = cells, reasons
    return built


def _load(value: Any, opts: WindowOptions) -> Recording:
    label = opts.label if opts.label else None
    rec = as_recording(value, timestamp=opts.timestamp, label=label)
    if opts.label and rec.labels is None:
        raise DecodeError(f"no label column {opts.label!r}", path=rec.source)
    return rec


def _load_inputs(
    cells: Mapping[str, Any], inputs: Sequence[str], opts: WindowOptions
) -> tuple[dict[str, Recording | None], dict[str, str]]:
    recs: dict[str, Recording | None] = {}
    errors: dict[str, str] = {}
    for i, name in enumerate(inputs):
        value = cells.get(name)
        if value is None:
            recs[name] = None
            continue
        try:
            rec = as_recording(value, timestamp=opts.timestamp, label=opts.label or None)
            if i == 0:
                rec = _load(rec, opts)
            recs[name] = rec
        except DecodeError as exc:
            recs[name] = None
            errors[name] = str(exc)
    return recs, errors


def _common_channels(
    loaded: Mapping[str, tuple[dict[str, Recording | None], dict[str, str]]],
) -> dict[str, tuple]:
    """Per input, the channels most of its recordings have (ties: the first seen)."""
    counts: dict[str, Counter] = {}
    for recs, _ in loaded.values():
        for name, rec in recs.items():
            if rec is not None:
                counts.setdefault(name, Counter())[rec.channels] += 1
    return {name: c.most_common(1)[0][0] for name, c in counts.items()}


def _check_channels(
    recs: dict[str, Recording | None], errors: dict[str, str], common: Mapping[str, tuple]
) -> None:
    """Mask an input whose channels differ from those most recordings of the input have."""
    for name, rec in recs.items():
        if rec is None or rec.channels == common[name]:
            continue
        expected = common[name]
        errors[name] = (
            f"{rec.source}: {len(rec.channels)} channels {list(rec.channels)}, but most recordings of input "
            f"{name!r} have {len(expected)}: {list(expected)}"
        )
        recs[name] = None


def _given_offset(offsets: Mapping[str, Any], rec_id: str, name: str) -> Mapping[str, Any] | None:
    """The known correction of input ``name`` of recording ``rec_id``: ``offsets[rec_id]`` is an estimate
    (it has ``offset_ms``) or a mapping input -> estimate."""
    entry = offsets.get(rec_id)
    if isinstance(entry, Mapping) and "offset_ms" not in entry:
        entry = entry.get(name)
    return entry


def _align_inputs(
    recs: dict[str, Recording | None],
    errors: dict[str, str],
    reference: str,
    opts: WindowOptions,
    rec_id: str,
) -> dict[str, Any]:
    """Estimate and correct each other input's clock against the reference (``align=True`` or given
    ``offsets``); returns the estimates by input. An input whose estimate abstains is masked (its windows
    would be cut on an uncorrected clock) unless ``on_abstain='keep'``."""
    from modalfuse.align import align as estimate_alignment

    ref = recs[reference]
    assert ref is not None
    out = {}
    for name, rec in recs.items():
        if name == reference or rec is None:
            continue
        if opts.offsets is not None:
            est = _given_offset(opts.offsets, rec_id, name)
        else:
            est = estimate_alignment(ref, rec, **dict(opts.align_options or {}))
        out[name] = est
        if opts.on_abstain == "mask" and est and (est.get("abstained") or est.get("offset_ms") is None):
            why = est.get("reason") or "no offset"
            errors[name] = (
                f"{rec.source}: clock not aligned to {ref.source} ({why}); masked rather than windowed on "
                "an uncorrected clock"
            )
            recs[name] = None
            continue
        recs[name] = _to_reference_clock(rec, est, float(ref.times()[0]))
    return out


# ------------------------------------------------------------------------------------------- the table
@dataclass
class _Collected:
    rows: list[dict[str, Any]] = field(default_factory=list)
    cells: dict[str, list[Any]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # recordings that gave no window (warned)
    repairs: list[str] = field(default_factory=list)  # what reading repaired (in the notes, not warned)
    alignment: dict[str, dict[str, Any]] = field(default_factory=dict)


def _collect(rset: RecordingSet, opts: WindowOptions) -> _Collected:
    out = _Collected(cells={name: [] for name in rset.inputs})
    reference = rset.inputs[0]
    loaded = {rec_id: _load_inputs(cells, rset.inputs, opts) for rec_id, cells in rset.paths.items()}
    common = _common_channels(loaded)
    for rec_id, (recs, errors) in loaded.items():
        _check_channels(recs, errors, common)
        out.repairs.extend(f"{r.source}: {note}" for r in recs.values() if r is not None for note in r.notes)
        if recs[reference] is None:
            why = errors.get(reference, "no recording of the reference input")
            out.notes.append(f"recording {rec_id!r}: reference input {reference!r}: {why}; no windows")
            continue
        if opts.align or opts.offsets is not None:
            out.alignment[rec_id] = _align_inputs(recs, errors, reference, opts, rec_id)
        built = _window_rows(recs, errors, reference, opts, rec_id)
        if isinstance(built, str):
            out.notes.append(built)
            continue
        for k in range(len(built.labels)):
            row = len(out.rows)
            out.rows.append(
                {
                    "recording": rec_id,
                    "start": built.starts[k],
                    "group": rset.groups.get(rec_id),
                    "y": built.labels[k],
                }
            )
            for name in rset.inputs:
                out.cells[name].append(built.cells[name][k])
                reason = built.reasons[name][k]
                if reason is not None:
                    out.problems.append(Problem(row, name, reason))
    return out


def _table(rset: RecordingSet, got: _Collected, opts: WindowOptions, name: str) -> MultimodalTable:
    if not got.rows:
        raise SchemaError(f"{name}: no windows: " + ("; ".join(got.notes[:3]) or "no recordings"))
    meta = pd.DataFrame(got.rows)
    frame = pd.DataFrame({n: pd.Series(got.cells[n], dtype=object) for n in rset.inputs})
    frame["recording"] = meta["recording"].to_numpy()
    frame["start"] = meta["start"].to_numpy()
    present = {n: np.array([c is not None for c in got.cells[n]]) for n in rset.inputs}
    groups = meta["group"].to_numpy()
    has_groups = not all(g is None for g in groups)
    table = MultimodalTable(
        frame,
        schema=Schema(dict.fromkeys(rset.inputs, "series")),
        y=meta["y"].to_numpy() if opts.label else None,
        label=opts.label or None,
        groups=np.array([str(g) if g is not None else "<missing>" for g in groups]) if has_groups else None,
        group_column="group" if has_groups else None,
        present=present,
        problems=got.problems,
        notes=[*got.notes, *got.repairs],
        name=name,
    )
    table.alignment = got.alignment  # type: ignore[attr-defined]
    return table


def windows(
    source: str | os.PathLike | pd.DataFrame | RecordingSet,
    *,
    inputs: Sequence[str] | None = None,
    size: int = 50,
    step: int = 25,
    rate: float = 100.0,
    label: str | None = "label",
    max_gap: float = 0.25,
    lowpass: float | None = None,
    highpass: float | None = None,
    align: bool = False,
    align_options: Mapping[str, Any] | None = None,
    offsets: Mapping[str, Any] | None = None,
    on_abstain: str = "mask",
    recording: str | None = "recording",
    groups: str | None = None,
    timestamp: str | None = None,
    name: str | None = None,
) -> MultimodalTable:
    """Turn labelled recordings into a table of fixed windows: one row per window, one series input per
    device, labelled by the majority of the reference input's per-sample labels.

    Parameters
    ----------
    source : folder, table file, DataFrame or RecordingSet
        A folder laid out like ``sp_sw_har/DATA`` (files ``<recording>_<input>.csv`` or ``.parquet``,
        one subfolder per group, see :func:`find_recordings`), or a table (CSV/Parquet file or DataFrame)
        with one row per recording, one column per input holding a recording's path (relative to the
        table's folder) or an in-memory series, and optionally ``recording`` and ``groups`` columns.
    inputs : sequence of str, optional
        The inputs (file suffixes or table columns), the reference first: its clock is the grid's and its
        labels label the windows. Default: the suffixes found (a folder), required for a table.
    size, step : int, default 50, 25
        Window length and hop, in grid samples. Windows start at the reference's first sample plus a
        whole number of steps, from the first such point where every present input has begun.
    rate : float, default 100.0
        Grid rate (samples per second): every input is interpolated at the grid's times, by timestamp.
    label : str or None, default "label"
        The per-sample label column of the recordings; None builds unlabelled windows.
    max_gap : float, default 0.25
        Seconds without a sample beyond which a window touching the gap is masked for that input (with a
        problem naming the file and where), never interpolated across.
    lowpass, highpass : float, optional
        Butterworth filter cut-offs in Hz (both: band-pass), applied to each input on the grid.
    align : bool, default False
        Estimate each other input's clock offset and drift against the reference
        (:func:`modalfuse.align.align`, options ``align_options``) and correct its timestamps before
        resampling; the estimates are kept in ``table.alignment``.
    on_abstain : {"mask", "keep"}, default "mask"
        With ``align``/``offsets``: what to do with an input whose clock could not be corrected (its
        estimate abstained): ``mask`` its windows (a problem names the file
        and the reason; fusion strategies then treat the input as missing there) or ``keep`` them as
        recorded, on the uncorrected clock.
    offsets : mapping, optional
        Known corrections instead of estimating them: recording -> an estimate dict (``offset_ms``,
        ``drift_ppm``) or ``{input: estimate}``.
    recording, groups : str, optional
        For a table source: the columns naming each recording and its group (subject).
    timestamp : str, optional
        The recordings' timestamp column (default: found by name, see :func:`modalfuse.modalities.series.load_series`).
    name : str, optional
        The table's name in messages.

    Returns
    -------
    MultimodalTable
        Columns: one ``series`` input per device (cells are :class:`~modalfuse.modalities.series.Recording`
        windows of ``size`` samples at ``rate``; None where masked), plus ``recording`` and ``start``
        (seconds into the recording), which are not features. ``groups`` are the recordings' groups.
        ``problems`` names the file and the reason of each masked cell; ``notes`` lists recordings that
        gave no window (unreadable reference, shorter than one window) and why.

    Raises
    ------
    SchemaError
        No recordings, or no window at all. Bad recordings never raise: they are masked or noted.
    """
    opts = WindowOptions(
        size,
        step,
        float(rate),
        float(max_gap),
        lowpass,
        highpass,
        label,
        timestamp,
        align,
        align_options,
        offsets,
        on_abstain,
    )
    opts.check()
    if isinstance(source, RecordingSet):
        rset = source
    elif isinstance(source, str | os.PathLike) and Path(source).is_dir():
        rset = find_recordings(source, inputs)
    else:
        if inputs is None:
            raise OptionError("windows: name the inputs (the columns holding each device's recording)")
        from modalfuse.data._frame import read_frame

        frame = source if isinstance(source, pd.DataFrame) else read_frame(source)
        root = Path(source).parent if isinstance(source, str | os.PathLike) else Path.cwd()
        rec_col = recording if recording in frame.columns else None
        rset = _recordings_of_table(frame, inputs, rec_col, groups, root)
    if len(rset.inputs) < 1:
        raise SchemaError("windows: no inputs")
    got = _collect(rset, opts)
    for note in got.notes:
        warnings.warn(f"windows: {note}", stacklevel=2)
    label_name = name or (Path(source).name if isinstance(source, str | os.PathLike) else "windows")
    return _table(rset, got, opts, label_name)
