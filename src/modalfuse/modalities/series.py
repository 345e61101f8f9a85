"""Series modality: sensor recordings with timestamps, resampled by time, filtered, windowed.

Conventions
-----------
* A recording is a :class:`Recording`: ``values`` (samples, channels) float64, channel names, the
  timestamp of every sample in seconds (or none, for a uniformly sampled array with a known ``rate``),
  optional per-sample labels, and where it came from (``source``, named in every message).
* Recordings are read from CSV/TSV or Parquet files with a timestamp column (:func:`load_series`), or
  given in memory: a :class:`Recording`, a DataFrame with a timestamp column, or a 2-D array
  (samples, channels) sampled uniformly.
* Resampling is by timestamp, never by sample index (:func:`resample_series`): each channel is
  interpolated at the times of a common grid; grid points inside a gap longer than ``max_gap`` seconds,
  or outside the recording, are marked invalid instead of being interpolated across.
* Arrays handed to encoders are ``(channels, samples)`` float32 (:func:`as_channels_first`).

Nothing here learns from data: the learned steps (per-channel scaling) live in the series preprocessor,
fitted on training rows only.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modalfuse._errors import DecodeError

__all__ = [
    "LABEL_NAMES",
    "SERIES_EXTENSIONS",
    "TIMESTAMP_NAMES",
    "Recording",
    "add_magnitudes",
    "as_recording",
    "catch22_features",
    "decode_series",
    "filter_series",
    "jerk",
    "load_series",
    "magnitude_groups",
    "majority_labels",
    "resample_series",
    "window_starts",
]

#: File extensions read as series recordings.
SERIES_EXTENSIONS: frozenset[str] = frozenset({".csv", ".tsv", ".parquet", ".pq"})
#: Column names taken as the timestamp column when none is named (case-insensitive), in this order.
TIMESTAMP_NAMES: tuple[str, ...] = ("timestamp", "timestamps", "time", "ts", "t", "datetime", "date")
#: Column names taken as per-sample labels when none is named (case-insensitive); never channels.
LABEL_NAMES: tuple[str, ...] = ("label", "labels", "activity", "class")
#: A recording where more than this share of samples repeat the previous timestamp is refused.
MAX_DUPLICATE_SHARE = 0.5
#: A recording where more than this share of samples hold NaN is refused.
MAX_NAN_SHARE = 0.5


@dataclass(frozen=True, eq=False)
class Recording:
    """One multichannel recording.

    Attributes
    ----------
    values : numpy.ndarray of shape (n_samples, n_channels), float64
    channels : tuple of str
        One name per column of ``values``.
    timestamps : numpy.ndarray of shape (n_samples,) or None
        Seconds (float64, strictly increasing), or None for a uniform recording at ``rate``.
    rate : float or None
        Samples per second of a uniform recording (None when ``timestamps`` are given).
    labels : numpy.ndarray of shape (n_samples,) or None
        Per-sample labels (object), if the recording has them.
    source : str
        The file it was read from, or ``"<array>"``; messages name it.
    notes : tuple of str
        What was repaired while reading (duplicated timestamps merged, NaN samples dropped).

    Recordings compare and hash by identity (their arrays make value equality ambiguous).
    """

    values: np.ndarray
    channels: tuple[str, ...]
    timestamps: np.ndarray | None = None
    rate: float | None = None
    labels: np.ndarray | None = None
    source: str = "<array>"
    notes: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.values)

    @property
    def n_channels(self) -> int:
        return self.values.shape[1]

    def times(self) -> np.ndarray:
        """Timestamps in seconds of every sample (``i / rate`` for a uniform recording)."""
        if self.timestamps is not None:
            return self.timestamps
        return np.arange(len(self.values)) / float(self.rate or 1.0)

    @property
    def duration(self) -> float:
        """Seconds from the first sample to the last."""
        t = self.times()
        return float(t[-1] - t[0]) if len(t) > 1 else 0.0

    def median_rate(self) -> float:
        """Samples per second: ``rate``, or the number of sample intervals per second of timestamps."""
        if self.rate is not None:
            return float(self.rate)
        return (len(self) - 1) / self.duration if self.duration > 0 else 0.0

    def shifted(self, seconds: float, drift: float = 0.0) -> Recording:
        """A copy whose clock reads ``t + seconds + drift * (t - t0)`` (``t0`` its first timestamp)."""
        t = self.times()
        return replace(self, timestamps=t + seconds + drift * (t - t[0]), rate=None)


# ------------------------------------------------------------------------------------------- reading
def _find_column(
    columns: Sequence[str], wanted: str | None, names: Sequence[str], what: str, src: str
) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise DecodeError(f"no {what} column {wanted!r} (columns: {list(columns)})", path=src)
        return wanted
    lower = {c.lower(): c for c in columns}
    for name in names:
        if name in lower:
            return lower[name]
    raise DecodeError(
        f"no {what} column (looked for {', '.join(names)}; columns: {list(columns)}); name it with "
        f"{what}=...",
        path=src,
    )


def _seconds(raw: pd.Series, unit: str, src: str) -> np.ndarray:
    """Timestamps as float64 seconds; NaN where a value is not a time."""
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        out = (raw - pd.Timestamp(0, tz=getattr(raw.dt, "tz", None))).dt.total_seconds()
        return out.to_numpy(dtype=np.float64, na_value=np.nan)
    nums = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isnan(nums).all() and len(nums):
        parsed = pd.to_datetime(raw, errors="coerce", utc=True)
        if parsed.notna().any():
            return _seconds(parsed, unit, src)
        raise DecodeError(
            f"timestamp column {raw.name!r} holds no times (first value {raw.iloc[0]!r:.40})", path=src
        )
    scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    if unit == "auto":
        first = np.nanmedian(np.abs(nums)) if np.isfinite(nums).any() else 0.0
        unit = "ns" if first >= 1e17 else "us" if first >= 1e14 else "ms" if first >= 1e11 else "s"
    if unit not in scale:
        raise DecodeError(f"unknown time unit {unit!r} (use one of s, ms, us, ns, auto)", path=src)
    return nums * scale[unit]


def _read_frame(path: str) -> pd.DataFrame:
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if ext == ".tsv" else ",")
    except FileNotFoundError:
        raise DecodeError("file not found", path=path) from None
    except pd.errors.EmptyDataError:
        raise DecodeError("empty file: no header, no samples", path=path) from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DecodeError(f"cannot read the recording: {type(exc).__name__}: {exc}", path=path) from None


def _channel_values(frame: pd.DataFrame, channels: Sequence[str], src: str) -> np.ndarray:
    """The channels as float64 (samples, channels); NaN where a value is not a number."""
    cols = []
    for c in channels:
        col = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if len(col) and np.isnan(col).all():
            raise DecodeError(
                f"channel {c!r} holds no numbers (first value {frame[c].iloc[0]!r:.40})", path=src
            )
        cols.append(col)
    return np.stack(cols, axis=1) if cols else np.zeros((len(frame), 0))


def _merge_duplicates(
    t: np.ndarray, values: np.ndarray, labels: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Samples sharing a timestamp (a sensor delivering in bursts) averaged into one; the first label kept."""
    keep = np.r_[True, np.diff(t) > 0]
    starts = np.flatnonzero(keep)
    sums = np.add.reduceat(values, starts, axis=0)
    counts = np.diff(np.r_[starts, len(t)])[:, None]
    return t[starts], sums / counts, None if labels is None else labels[starts]


def _check_times(t: np.ndarray, src: str) -> None:
    back = np.flatnonzero(np.diff(t) < 0)
    if len(back):
        i = int(back[0]) + 1
        raise DecodeError(
            f"timestamps are not in order: sample {i} ({t[i]:.3f} s) comes before sample {i - 1} "
            f"({t[i - 1]:.3f} s) ({len(back)} backward step(s)); sort the file by time",
            path=src,
        )


def _clean(
    t: np.ndarray, values: np.ndarray, labels: np.ndarray | None, src: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[str]]:
    """Drop NaN samples, check the order, merge duplicated timestamps; notes on what was repaired."""
    notes = []
    n = len(t)
    bad = np.isnan(t) | np.isnan(values).any(axis=1)
    if bad.any():
        if bad.mean() > MAX_NAN_SHARE:
            raise DecodeError(
                f"{int(bad.sum())} of {n} samples hold NaN (a value or the timestamp)", path=src
            )
        notes.append(f"{int(bad.sum())} sample(s) with NaN dropped (gaps they leave are checked like others)")
        t, values = t[~bad], values[~bad]
        labels = None if labels is None else labels[~bad]
    _check_times(t, src)
    dup = int(np.sum(np.diff(t) == 0))
    if dup:
        if dup > MAX_DUPLICATE_SHARE * len(t):
            raise DecodeError(
                f"duplicated timestamps: {dup} of {len(t)} samples repeat the previous timestamp "
                "(a time column at too coarse a resolution, or not a time at all?)",
                path=src,
            )
        t, values, labels = _merge_duplicates(t, values, labels)
        notes.append(f"{dup} sample(s) sharing a timestamp with the previous one averaged into it")
    return t, values, labels, notes


def _from_frame(
    frame: pd.DataFrame,
    src: str,
    *,
    timestamp: str | None,
    label: str | None,
    channels: Sequence[str] | None,
    time_unit: str,
) -> Recording:
    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    ts_col = _find_column(columns, timestamp, TIMESTAMP_NAMES, "timestamp", src)
    lab_col = label if label is not None and label in columns else None
    if label is None:
        lab_col = next((c for c in columns if c.lower() in LABEL_NAMES), None)
    if channels is None:
        channels = [c for c in columns if c not in (ts_col, lab_col)]
    missing = [c for c in channels if c not in columns]
    if missing:
        raise DecodeError(f"no channel column(s) {missing} (columns: {columns})", path=src)
    if not channels:
        raise DecodeError(f"no channel column besides the timestamp (columns: {columns})", path=src)
    if len(frame) < 2:
        raise DecodeError(f"{len(frame)} sample(s): a recording needs at least 2", path=src)
    t = _seconds(frame[ts_col], time_unit, src)
    values = _channel_values(frame, channels, src)
    labels = frame[lab_col].to_numpy(dtype=object) if lab_col is not None else None
    t, values, labels, notes = _clean(t, values, labels, src)
    if len(t) < 2:
        raise DecodeError("fewer than 2 samples with distinct timestamps", path=src)
    return Recording(values, tuple(map(str, channels)), t, None, labels, src, tuple(notes))


def load_series(
    source: str | os.PathLike | pd.DataFrame,
    *,
    timestamp: str | None = None,
    label: str | None = None,
    channels: Sequence[str] | None = None,
    time_unit: str = "auto",
) -> Recording:
    """Read a recording from a CSV/TSV or Parquet file (or a DataFrame) with a timestamp column.

    Parameters
    ----------
    source : path or DataFrame
        The recording: one row per sample.
    timestamp : str, optional
        The timestamp column (default: the first of :data:`TIMESTAMP_NAMES`, case-insensitive). Numbers
        are seconds, or epoch milliseconds / microseconds / nanoseconds recognised by their magnitude
        (``time_unit="auto"``); date-time strings and datetime columns are read as such.
    label : str, optional
        A column of per-sample labels (default: the first of :data:`LABEL_NAMES` present); it is not a
        channel.
    channels : sequence of str, optional
        The channel columns (default: every other column). A value that is not a number is NaN.
    time_unit : {"auto", "s", "ms", "us", "ns"}
        Unit of numeric timestamps.

    Returns
    -------
    Recording
        With strictly increasing timestamps in seconds: samples holding NaN are dropped and samples
        sharing a timestamp (a sensor delivering in bursts) are averaged into one; ``notes`` says so.

    Raises
    ------
    DecodeError
        Naming the file: not found or unreadable, no timestamp column, a channel without numbers,
        fewer than 2 samples, timestamps out of order, more than half the samples duplicating the
        previous timestamp or holding NaN.
    """
    if isinstance(source, pd.DataFrame):
        frame, src = source, "<dataframe>"
    else:
        src = os.fspath(source)
        if not Path(src).is_file():
            raise DecodeError("file not found", path=src)
        frame = _read_frame(src)
    return _from_frame(frame, src, timestamp=timestamp, label=label, channels=channels, time_unit=time_unit)


def _from_array(value: Any, rate: float | None) -> Recording:
    try:
        values = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"series array is not an array of numbers: {exc}") from None
    if values.ndim == 1 and values.dtype != object:
        values = values[:, None]
    if values.ndim != 2:
        raise DecodeError(f"a series array must be 2-D (samples, channels), got shape {values.shape}")
    if len(values) < 2:
        raise DecodeError(f"{len(values)} sample(s): a recording needs at least 2")
    if not np.isfinite(values).all():
        raise DecodeError(f"{int((~np.isfinite(values)).any(axis=1).sum())} sample(s) hold NaN or inf")
    names = tuple(f"c{i}" for i in range(values.shape[1]))
    return Recording(values, names, None, rate, None, "<array>")


def as_recording(value: Any, *, rate: float | None = None, **read_options: Any) -> Recording:
    """A :class:`Recording` from any series cell: a path, a DataFrame, a Recording, a ``{"values",
    "timestamps" or "rate", "channels"}`` dict, or a 2-D array (samples, channels) sampled at ``rate``.

    Raises :class:`DecodeError` (naming the file where there is one) for anything unusable.
    """
    if isinstance(value, Recording):
        return value
    if isinstance(value, str | os.PathLike):
        return load_series(value, **read_options)
    if isinstance(value, pd.DataFrame):
        return load_series(value, **read_options)
    if isinstance(value, dict) and "values" in value:
        rec = _from_array(value["values"], value.get("rate", rate))
        if value.get("channels") is not None:
            rec = replace(rec, channels=tuple(map(str, value["channels"])))
        if value.get("timestamps") is not None:
            t = np.asarray(value["timestamps"], dtype=np.float64)
            if t.shape != (len(rec),):
                raise DecodeError(f"{len(t)} timestamps for {len(rec)} samples")
            t, vals, _, notes = _clean(t, rec.values, None, "<array>")
            rec = replace(rec, values=vals, timestamps=t, rate=None, notes=tuple(notes))
        return rec
    if isinstance(value, np.ndarray | list):
        return _from_array(value, rate)
    raise DecodeError(f"not a series: {type(value).__name__} {value!r:.40}")


# ------------------------------------------------------------------------------------------- resampling
def resample_series(
    rec: Recording,
    rate: float,
    *,
    start: float | None = None,
    n: int | None = None,
    max_gap: float = 0.1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interpolate every channel at the times of a uniform grid, by timestamp.

    Parameters
    ----------
    rec : Recording
    rate : float
        Grid rate in samples per second.
    start : float, optional
        Time of the first grid point (default: the recording's first timestamp).
    n : int, optional
        Grid points (default: as many as fit in the recording).
    max_gap : float, default=0.1
        A grid point between two samples farther apart than this (seconds) is invalid, as is one outside
        the recording: nothing is interpolated across a gap.

    Returns
    -------
    values : numpy.ndarray of shape (n, n_channels), float64
        Linear interpolation at the grid times (0 where invalid).
    valid : numpy.ndarray of shape (n,), bool
    times : numpy.ndarray of shape (n,)
        The grid times in seconds.
    """
    t = rec.times()
    start = float(t[0]) if start is None else float(start)
    if n is None:
        n = int(np.floor((t[-1] - start) * rate + 1e-9)) + 1
    times = start + np.arange(max(int(n), 0)) / float(rate)
    j = np.searchsorted(t, times, side="right")  # t[j-1] <= time < t[j]
    inside = (j > 0) & ((j < len(t)) | (times == t[-1]))
    lo = np.clip(j - 1, 0, len(t) - 1)
    hi = np.clip(j, 0, len(t) - 1)
    exact = t[lo] == times
    valid = inside & (exact | (t[hi] - t[lo] <= max_gap + 1e-9))
    out = np.zeros((len(times), rec.n_channels))
    for c in range(rec.n_channels):
        out[:, c] = np.interp(times, t, rec.values[:, c])
    out[~valid] = 0.0
    return out, valid, times


def labels_at(rec: Recording, times: np.ndarray) -> np.ndarray:
    """The label of the sample nearest in time to each of ``times`` (object array)."""
    if rec.labels is None:
        raise DecodeError("the recording has no per-sample labels", path=rec.source)
    t = rec.times()
    j = np.clip(np.searchsorted(t, times), 1, len(t) - 1)
    nearest = np.where(np.abs(t[j - 1] - times) <= np.abs(t[j] - times), j - 1, j)
    return rec.labels[nearest]


# ------------------------------------------------------------------------------------------- filtering
def filter_series(
    values: np.ndarray,
    rate: float,
    *,
    lowpass: float | None = None,
    highpass: float | None = None,
    order: int = 4,
    axis: int = 0,
) -> np.ndarray:
    """Zero-phase Butterworth low-, high- or band-pass filter along ``axis`` (samples; default 0, or -2
    for a stack of recordings (rows, samples, channels)).

    ``lowpass`` and ``highpass`` are cut-off frequencies in Hz (both: a band-pass); each must be below
    the Nyquist frequency ``rate / 2``. Returns ``values`` unchanged when neither is given.
    """
    from scipy import signal

    if lowpass is None and highpass is None:
        return values
    nyq = rate / 2.0
    for name, f in (("lowpass", lowpass), ("highpass", highpass)):
        if f is not None and not 0 < f < nyq:
            raise ValueError(f"{name} {f} Hz must be between 0 and the Nyquist frequency {nyq:g} Hz")
    if lowpass is not None and highpass is not None:
        sos = signal.butter(order, [highpass, lowpass], btype="bandpass", fs=rate, output="sos")
    elif lowpass is not None:
        sos = signal.butter(order, lowpass, btype="lowpass", fs=rate, output="sos")
    else:
        sos = signal.butter(order, highpass, btype="highpass", fs=rate, output="sos")
    if values.shape[axis] <= 3 * (2 * order + 1):
        return values  # too short for the zero-phase filter's padding
    return signal.sosfiltfilt(sos, values, axis=axis)


# ------------------------------------------------------------------------------------------- derived channels
def magnitude_groups(channels: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Triplets of channels that are the x, y, z axes of one sensor, named like ``x_acc, y_acc, z_acc``,
    ``acc_x, acc_y, acc_z`` or ``ax, ay, az``: ``[(sensor name, [ix, iy, iz]), ...]``, in channel order."""
    index = {c.lower(): i for i, c in enumerate(channels)}
    groups = []
    seen: set[int] = set()
    for i, c in enumerate(channels):
        low = c.lower()
        for pos in (0, len(low) - 1):
            if low[pos] != "x" or i in seen:
                continue
            others = [low[:pos] + a + low[pos + 1 :] for a in "yz"]
            if all(o in index for o in others):
                stem = (low[:pos] + low[pos + 1 :]).strip("_-. ") or "xyz"
                members = [i, index[others[0]], index[others[1]]]
                groups.append((stem, members))
                seen.update(members)
    return groups


def add_magnitudes(
    values: np.ndarray, channels: Sequence[str], groups: Sequence[tuple[str, Sequence[int]]] | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """``values`` (samples, channels) with one Euclidean-norm channel appended per sensor triplet
    (default: :func:`magnitude_groups`), named ``<sensor>_mag``. Channels are the last axis, so a stack
    of recordings (rows, samples, channels) gets its magnitudes in one call."""
    groups = magnitude_groups(channels) if groups is None else groups
    if not groups:
        return values, tuple(channels)
    mags = [np.sqrt(np.sum(values[..., list(idx)] ** 2, axis=-1)) for _, idx in groups]
    out = np.concatenate([values, np.stack(mags, axis=-1)], axis=-1)
    return out, (*channels, *(f"{name}_mag" for name, _ in groups))


def jerk(values: np.ndarray, rate: float) -> np.ndarray:
    """The time derivative along axis 0 (first differences times ``rate``; same length, first row 0)."""
    d = np.diff(values, axis=0, prepend=values[:1]) * rate
    return d


# ------------------------------------------------------------------------------------------- windows
def window_starts(n: int, size: int, step: int) -> np.ndarray:
    """Start indices of the full windows of ``size`` samples every ``step`` samples over ``n`` samples."""
    if size < 1 or step < 1:
        raise ValueError(f"window size and step must be >= 1, got {size} and {step}")
    if n < size:
        return np.zeros(0, np.int64)
    return np.arange(0, n - size + 1, step, dtype=np.int64)


def majority_labels(labels: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
    """The most common label in each window ``labels[s : s + size]``; a tie goes to the label that comes
    first in the window."""
    out = np.empty(len(starts), dtype=object)
    for k, s in enumerate(starts):
        part = labels[s : s + size]
        counts = Counter(part.tolist())
        top = max(counts.values())
        out[k] = next(v for v in part.tolist() if counts[v] == top)
    return out


def as_channels_first(values: np.ndarray) -> np.ndarray:
    """(samples, channels) -> (channels, samples) float32, contiguous."""
    return np.ascontiguousarray(np.asarray(values, dtype=np.float32).T)


def decode_series(value: Any, **read_options: Any) -> Recording:
    """:func:`as_recording`, cached by content in the active cache for files (see
    :func:`modalfuse.using_cache`)."""
    if isinstance(value, str | os.PathLike) and not read_options:
        from modalfuse._cache import active_cache, content_key

        return active_cache().get_or_compute(("series", content_key(value)), lambda: load_series(value))
    return as_recording(value, **read_options)


def catch22_features(values: np.ndarray) -> np.ndarray:
    """The 22 catch22 features plus mean and standard deviation ("catch24") of every channel of ``values``
    (samples, channels), channel after channel: (24 * channels,) float64, from ``pycatch22`` (the reference
    C implementation; install the ``series`` extra). A feature that is not finite (a constant channel) is 0.
    """
    try:
        import pycatch22
    except ImportError:
        from modalfuse._errors import ModalfuseError

        raise ModalfuseError("the catch22 encoder needs pycatch22: pip install 'modalfuse[series]'") from None
    out = []
    for c in range(values.shape[1]):
        col = values[:, c]
        if np.ptp(col) == 0:
            feats = [0.0] * 22 + [float(col[0]), 0.0]
        else:
            feats = pycatch22.catch22_all(col.tolist(), catch24=True)["values"]
        out.extend(feats)
    arr = np.asarray(out, dtype=np.float64)
    return np.where(np.isfinite(arr), arr, 0.0)
