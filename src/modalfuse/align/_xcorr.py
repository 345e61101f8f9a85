"""Clock offset and drift between two recordings of the same motion, by cross-correlation.

Both recordings are resampled by timestamp onto a grid at ``rate`` in their own clocks, and reduced to
orientation-free signals: the magnitude of each sensor triplet (``x_acc, y_acc, z_acc``, ``x_gyro, ...``).
The lag is found in stages:

1. every motion signal (each magnitude raw and low-passed at ``1 / smooth`` Hz, and each accelerometer's
   jerk) is cross-correlated at once over ``±max_offset`` seconds (the mean over signals of each lag's
   Pearson correlation over the overlap); peaks at least ``min_separation`` apart are ranked by that
   correlation times the share of the recording the lag overlaps (a maximum at the end of the range
   searched is not a peak), and the best is refined to a fraction of a grid step by a parabola;
2. a periodic gait makes lags one step apart fit almost equally: when the runner-up reaches ``max_ratio``
   of the best, the jerk signals alone (the impacts of each step) are searched the same way, and the best
   lag is kept only when the jerk's own best peak is the same lag (within ``min_separation / 6``) and is
   unambiguous; otherwise, or when the best correlation is below ``min_peak``, the estimate *abstains*
   instead of guessing;
3. windows of ``window`` seconds every ``step`` give local lags; a Theil-Sen line through them is the
   drift (kept when it is resolved: its 95 % interval excludes 0 and it is within ``max_drift_ppm``), and
   the spread of the windows around the line, or the peak's width, gives the uncertainty.

Sign: ``offset_ms`` is how much later the ``other`` clock reads than the reference clock at the first
sample of the reference: an event at reference time ``t`` is stamped ``t + offset + drift * (t - t0)`` by
the other clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from modalfuse._errors import DecodeError, ModalfuseError, OptionError
from modalfuse.modalities.series import Recording, as_recording, magnitude_groups, resample_series

__all__ = ["DTW_RATE", "AlignOptions", "align", "align_pairs", "motion_signals", "pool_offsets"]

#: Grid rate (Hz) of the DTW method: DTW is quadratic in the length, so it works on a coarser grid.
DTW_RATE = 25.0


@dataclass(frozen=True)
class AlignOptions:
    """Settings of :func:`align` (see its parameters)."""

    rate: float = 100.0
    max_offset: float = 3.0
    smooth: float = 0.5
    fine_range: float = 0.2
    window: float = 4.0
    step: float = 1.0
    min_peak: float = 0.1
    max_ratio: float = 0.85
    min_separation: float = 0.3
    max_drift_ppm: float = 2000.0
    method: str = "xcorr"

    def check(self) -> None:
        for name in ("rate", "max_offset", "smooth", "fine_range", "window", "step", "min_separation"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise OptionError(f"align: {name} must be a number > 0, got {value!r}")
        if not 0 < self.max_ratio <= 1:
            raise OptionError(f"align: max_ratio must be in (0, 1], got {self.max_ratio!r}")
        if self.method not in ("xcorr", "dtw"):
            raise OptionError(f"align: method must be 'xcorr' or 'dtw', got {self.method!r}")


# ------------------------------------------------------------------------------------------- signals
def _sensors(rec: Recording) -> tuple[list[list[int]], list[list[int]]]:
    """(every sensor triplet, the accelerometer triplets): triplets named like ``x_acc``; the
    accelerometers are those whose name holds ``acc`` (all triplets if none does). A recording without
    triplets is one sensor made of all its channels."""
    groups = magnitude_groups(rec.channels)
    if not groups:
        every = [list(range(rec.n_channels))]
        return every, every
    acc = [idx for name, idx in groups if "acc" in name]
    return [idx for _, idx in groups], acc or [idx for _, idx in groups]


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    # a constant signal (up to rounding: filtering a constant leaves ~1e-15 wiggles) carries no timing
    return (x - x.mean()) / sd if sd > 1e-9 * (1.0 + abs(x.mean())) else np.zeros_like(x)


def _lowpass(x: np.ndarray, cutoff: float, rate: float) -> np.ndarray:
    from scipy import signal

    if cutoff >= rate / 2 or len(x) <= 15:
        return x
    return signal.sosfiltfilt(signal.butter(2, cutoff, fs=rate, output="sos"), x)


def _motion(rec: Recording, rate: float, smooth: float) -> tuple[np.ndarray, list[str], float]:
    """:func:`motion_signals` with the kind of each signal (``raw``, ``smooth``, ``jerk``)."""
    values, _, times = resample_series(rec, rate, max_gap=np.inf)
    if len(times) < 16:
        raise DecodeError(f"{rec.duration:.2f} s: too short to align", path=rec.source)
    every, acc = _sensors(rec)
    out, kinds = [], []
    for idx in every:
        m = np.sqrt(np.sum(values[:, idx] ** 2, axis=1))
        out += [m, _lowpass(m, 1.0 / smooth, rate)]
        kinds += ["raw", "smooth"]
        if idx in acc:
            out.append(np.diff(_lowpass(m, 10.0, rate), prepend=m[0]) * rate)
            kinds.append("jerk")
    return np.asarray([_zscore(x) for x in out]), kinds, float(times[0])


def motion_signals(rec: Recording, rate: float, smooth: float = 0.5) -> tuple[np.ndarray, float]:
    """Orientation-free motion signals of a recording on a uniform grid at ``rate`` in its own clock.

    Returns
    -------
    signals : numpy.ndarray of shape (2 * n_sensors + n_acc, n)
        For every sensor triplet its magnitude, raw and low-passed at ``1 / smooth`` Hz (the slow part
        follows the activity: still, standing up, walking, turning); for every accelerometer also the jerk
        (the derivative of the magnitude low-passed at 10 Hz), which marks every step and impact.
        Z-scored.
    start : float
        Time of the first grid point (the recording's first timestamp, in its clock).
    """
    signals, _, start = _motion(rec, rate, smooth)
    return signals, start


# ------------------------------------------------------------------------------------------- correlation
def _correlation(a: np.ndarray, b: np.ndarray, lags: np.ndarray, min_overlap: int) -> np.ndarray:
    """Mean over channels of the Pearson correlation of ``a[:, i]`` and ``b[:, i + L]`` over their overlap,
    for each lag ``L``; NaN where the overlap is shorter than ``min_overlap`` samples (or no channel varies
    there). The sums over every overlap come from one FFT cross-correlation and cumulative sums."""
    from scipy.signal import fftconvolve

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    lags = np.asarray(lags, dtype=np.int64)
    n_a, n_b = a.shape[1], b.shape[1]
    out = np.full(len(lags), np.nan)
    i0, i1 = np.maximum(0, -lags), np.minimum(n_a, n_b - lags)
    n = i1 - i0
    ok = n >= max(min_overlap, 2)
    if not ok.any():
        return out
    lag, i0, i1, n = lags[ok], i0[ok], i1[ok], n[ok]
    full = fftconvolve(b, a[:, ::-1], axes=1)  # full[:, L + n_a - 1] = sum_i a[:, i] * b[:, i + L]

    def csum(x: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, axis=1)], axis=1)

    ca, ca2, cb, cb2 = csum(a), csum(a * a), csum(b), csum(b * b)
    sxy = full[:, lag + n_a - 1]
    sx, sx2 = ca[:, i1] - ca[:, i0], ca2[:, i1] - ca2[:, i0]
    sy, sy2 = cb[:, i1 + lag] - cb[:, i0 + lag], cb2[:, i1 + lag] - cb2[:, i0 + lag]
    cov = sxy - sx * sy / n
    den = np.sqrt(np.maximum(sx2 - sx * sx / n, 0.0) * np.maximum(sy2 - sy * sy / n, 0.0))
    good = den > 1e-9 * n
    r = np.where(good, cov / np.where(good, den, 1.0), 0.0)
    count = good.sum(axis=0)
    out[ok] = np.where(count > 0, r.sum(axis=0) / np.maximum(count, 1), np.nan)
    return out


def _local_maxima(c: np.ndarray, edges: bool = True) -> np.ndarray:
    """Indices of the local maxima of ``c`` (NaN never is one); with ``edges=False`` the first and last
    points are not (a maximum there lies outside the range searched)."""
    x = np.where(np.isnan(c), -np.inf, c)
    pad = -np.inf if edges else np.inf
    left = np.r_[pad, x[:-1]]
    right = np.r_[x[1:], pad]
    return np.flatnonzero((x >= left) & (x >= right) & np.isfinite(x))


def _refine(c: np.ndarray, k: int) -> tuple[float, float]:
    """Sub-sample peak position (offset from ``k`` in samples) and its half-width at 90 % of the peak,
    from a parabola through ``c[k-1], c[k], c[k+1]``."""
    if k <= 0 or k >= len(c) - 1 or np.isnan(c[k - 1]) or np.isnan(c[k + 1]):
        return 0.0, 1.0
    y0, y1, y2 = c[k - 1], c[k], c[k + 1]
    curv = y0 - 2 * y1 + y2
    if curv >= 0:
        return 0.0, 1.0
    delta = float(np.clip(0.5 * (y0 - y2) / curv, -0.5, 0.5))
    peak = y1 - 0.25 * (y0 - y2) * delta
    width = float(np.sqrt(max(0.1 * abs(peak), 1e-12) / (-curv / 2)))
    return delta, width


@dataclass
class _Peak:
    lag: float  # samples, refined
    value: float
    second: float  # value of the best other peak at least min_separation away (nan if none)
    width: float  # samples


def _peaks(c: np.ndarray, lags: np.ndarray, separation: int, *, edges: bool = True) -> list[_Peak]:
    """The local maxima of ``c``, best first, each at least ``separation`` lags from every better one
    (``second`` is the value of the next one, NaN for the last)."""
    found = _local_maxima(c, edges)
    kept: list[int] = []
    for k in found[np.argsort(-c[found], kind="stable")]:
        if all(abs(lags[k] - lags[j]) >= separation for j in kept):
            kept.append(int(k))
    out = []
    for n, k in enumerate(kept):
        delta, width = _refine(c, k)
        second = float(c[kept[n + 1]]) if n + 1 < len(kept) else np.nan
        out.append(_Peak(float(lags[k]) + delta, float(c[k]), second, width))
    return out


def _best_peak(c: np.ndarray, lags: np.ndarray, separation: int) -> _Peak | None:
    found = _peaks(c, lags, separation)
    return found[0] if found else None


# ------------------------------------------------------------------------------------------- estimate
def _abstain(reason: str, **extra: Any) -> dict[str, Any]:
    return {
        "offset_ms": None,
        "drift_ppm": None,
        "uncertainty_ms": None,
        "abstained": True,
        "reason": reason,
        **extra,
    }


def _search(sig_a: np.ndarray, sig_b: np.ndarray, base: float, o: AlignOptions) -> tuple[_Peak, float] | str:
    """The best lag (samples of ``b`` relative to ``a``) within ``max_offset`` of a zero offset and the
    ratio of the runner-up (the best other peak at least ``min_separation`` away) to it, or the reason to
    abstain. Peaks are compared by their correlation times the share of the shorter recording the lag
    overlaps; the returned peak's ``value`` is its correlation. A maximum at the end of the range
    searched is not a peak."""
    reach = round(o.max_offset * o.rate)
    center = round(base * o.rate)
    lags = np.arange(center - reach, center + reach + 1)
    n_a, n_b = sig_a.shape[1], sig_b.shape[1]
    min_overlap = max(8, min(n_a, n_b) // 2)
    c = _correlation(sig_a, sig_b, lags, min_overlap)
    # candidates are ranked by the correlation times the share of the recording the lag overlaps (the
    # biased cross-correlation): a chance match over two thirds of a short recording can out-correlate
    # the true lag's full overlap, and nothing else tells it apart
    overlap = np.minimum(n_a, n_b - lags) - np.maximum(0, -lags)
    score = c * (np.clip(overlap, 0, None) / min(n_a, n_b))
    found = _peaks(score, lags, round(o.min_separation * o.rate), edges=False)
    if not found:
        return f"no correlation peak within ±{o.max_offset:g} s (the recordings overlap too little?)"
    best = found[0]
    value = float(c[np.argmin(np.abs(lags - best.lag))])
    if value < o.min_peak:
        return f"no shared motion: best correlation {value:.2f} < {o.min_peak:g}"
    ratio = best.second / best.value if np.isfinite(best.second) and best.second > 0 else 0.0
    return _Peak(best.lag, value, value * ratio, best.width), float(ratio)


def _confirm(
    sig_a: np.ndarray, sig_b: np.ndarray, kinds: Sequence[str], best: _Peak, base: float, o: AlignOptions
) -> float | None:
    """Second stage for an ambiguous lag: the jerk signals alone (the impacts of each step, not the slow
    sway and activity that dominate the other signals) searched over the same range by the same rule.
    The best lag is kept when the jerk's own best peak is the same peak (within ``min_separation / 6``,
    50 ms by default) and is itself unambiguous (its runner-up below ``max_ratio`` of it, its correlation
    at least ``min_peak``); returns the jerk's peak ratio then, None otherwise (abstain). A regular gait
    makes lags one step apart fit the sway almost equally; steps that differ from one another (a stumble,
    the first and last steps, a turn) still single out one lag in their impacts. When the impacts are as
    regular as the sway, the jerk is ambiguous too and the estimate abstains."""
    jerk = [k == "jerk" for k in kinds]
    if not any(jerk) or all(jerk):
        return None
    found = _search(sig_a[jerk], sig_b[jerk], base, o)
    if isinstance(found, str):
        return None
    peak, ratio = found
    if ratio >= o.max_ratio or abs(peak.lag - best.lag) > o.min_separation / 6 * o.rate:
        return None
    return ratio


def _fine(a: np.ndarray, b: np.ndarray, around: float, o: AlignOptions, min_overlap: int) -> _Peak | None:
    reach = max(1, round(o.fine_range * o.rate))
    lags = np.arange(round(around) - reach, round(around) + reach + 1)
    c = _correlation(a, b, lags, min_overlap)
    if np.isnan(c).all():
        return None
    return _best_peak(c, lags, round(o.min_separation * o.rate))


def _window_lags(sig_a: np.ndarray, sig_b: np.ndarray, lag: float, o: AlignOptions) -> np.ndarray:
    """(centre seconds, lag samples, peak) of each window of the reference whose peak near ``lag`` is
    clear."""
    size, hop = round(o.window * o.rate), max(1, round(o.step * o.rate))
    rows = []
    for s in range(0, max(1, sig_a.shape[1] - size + 1), hop):
        part = sig_a[:, s : s + size]
        b0 = max(0, s + round(lag) - round(o.fine_range * o.rate) - 2)  # b[b0 + j] is b's sample j here
        peak = _fine(part, sig_b[:, b0:], lag + s - b0, o, max(8, part.shape[1] * 3 // 4))
        if peak is not None and peak.value >= o.min_peak:
            rows.append(((s + part.shape[1] / 2) / o.rate, peak.lag - (s - b0), peak.value))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def _drift_fit(wins: np.ndarray, lag: float, o: AlignOptions) -> tuple[float, float, float, bool]:
    """(drift as a fraction, lag at time 0 in samples, spread in samples, resolved) from window lags."""
    from scipy.stats import theilslopes

    if len(wins) < 3 or np.ptp(wins[:, 0]) <= 0:
        spread = float(np.std(wins[:, 1] - lag)) if len(wins) > 1 else 0.0
        return 0.0, lag, spread, False
    slope, intercept, low, high = theilslopes(wins[:, 1], wins[:, 0])
    resid = wins[:, 1] - (intercept + slope * wins[:, 0])
    spread = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    drift = slope / o.rate  # samples per second / samples per second
    resolved = (low > 0 or high < 0) and abs(drift) * 1e6 <= o.max_drift_ppm
    if not resolved:
        return 0.0, lag, spread, False
    t_mid = float(np.median(wins[:, 0]))
    return float(drift), float(lag - slope * t_mid), spread, True


def _xcorr_estimate(ref: Recording, other: Recording, o: AlignOptions) -> dict[str, Any]:
    sig_a, kinds, t_a = _motion(ref, o.rate, o.smooth)
    sig_b, _, t_b = _motion(other, o.rate, o.smooth)
    if sig_a.shape[0] != sig_b.shape[0]:
        raise DecodeError(
            f"{sig_a.shape[0]} motion signal(s) in the reference but {sig_b.shape[0]} in {other.source}: "
            "they do not hold the same sensors",
            path=other.source,
        )
    base = t_a - t_b  # lag (s) of a zero offset: b[i + L] is a[i] when t_b + (i + L)/r = t_a + i/r
    found = _search(sig_a, sig_b, base, o)
    if isinstance(found, str):
        return _abstain(found)
    best, ratio = found
    confirmed = None
    if ratio >= o.max_ratio:
        jerk_ratio = _confirm(sig_a, sig_b, kinds, best, base, o)
        if jerk_ratio is None:
            return _abstain(
                f"ambiguous: another lag at least {o.min_separation:g} s away fits almost as well (peak "
                f"ratio {ratio:.2f} >= {o.max_ratio:g}) and the jerk alone does not single it out; "
                "periodic motion?",
                second_peak_ratio=round(ratio, 4),
            )
        confirmed = round(jerk_ratio, 4)
    wins = _window_lags(sig_a, sig_b, best.lag, o)
    drift, lag0, spread, resolved = _drift_fit(wins, best.lag, o)
    if not resolved:
        lag0 = best.lag
    n = max(1, len(wins))
    unc = max(best.width, spread / np.sqrt(n), 1 / np.sqrt(12)) / o.rate
    offset = lag0 / o.rate - base
    return {
        "offset_ms": 1000.0 * offset,
        "drift_ppm": 1e6 * drift,
        "uncertainty_ms": 1000.0 * unc,
        "abstained": False,
        "reason": None,
        "peak": round(best.value, 4),
        "second_peak_ratio": round(ratio, 4),
        "n_windows": len(wins),
        "drift_resolved": resolved,
        "jerk_confirmed_ratio": confirmed,
    }


def _dtw_estimate(ref: Recording, other: Recording, o: AlignOptions) -> dict[str, Any]:
    """Offset and drift from a DTW warping path (``dtaidistance``) between the coarse signals on a grid at
    ``min(rate, DTW_RATE)`` Hz, constrained to ``max_offset`` seconds, with a Theil-Sen line through the
    path's time differences. Never abstains: DTW always returns a path."""
    try:
        from dtaidistance import dtw
    except ImportError:
        raise ModalfuseError("method='dtw' needs dtaidistance: pip install 'modalfuse[series]'") from None
    from scipy.stats import theilslopes

    rate = min(o.rate, DTW_RATE)
    sig_a, kinds, t_a = _motion(ref, rate, o.smooth)
    sig_b, _, t_b = _motion(other, rate, o.smooth)
    slow = [k == "smooth" for k in kinds]
    a, b = _zscore(sig_a[slow].mean(axis=0)), _zscore(sig_b[slow].mean(axis=0))
    band = round((o.max_offset + abs(t_a - t_b)) * rate) + abs(len(a) - len(b)) + 1
    path = np.asarray(dtw.warping_path(a, b, window=band), dtype=np.float64)
    ta, tb = path[:, 0] / rate, path[:, 1] / rate + (t_b - t_a)  # both relative to ref start
    slope, intercept, _, _ = theilslopes(tb - ta, ta)
    resid = tb - ta - (intercept + slope * ta)
    spread = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    return {
        "offset_ms": 1000.0 * float(intercept),
        "drift_ppm": 1e6 * float(slope),
        "uncertainty_ms": 1000.0 * max(spread, 1 / (rate * np.sqrt(12))),
        "abstained": False,
        "reason": None,
        "method": "dtw",
    }


def align(reference: Any, other: Any, **options: Any) -> dict[str, Any]:
    """Estimate the clock offset and drift of ``other`` against ``reference`` from shared motion.

    Parameters
    ----------
    reference, other : Recording, path or any series cell
        Two recordings of the same movement (say a phone and a watch worn together), each with its own
        timestamps; accelerometer/gyroscope triplets named like ``x_acc``/``acc_x`` are used through their
        magnitudes, so the devices' orientations do not matter.
    **options
        :class:`AlignOptions`: ``rate`` (grid, Hz, default 100), ``max_offset`` (seconds searched either
        side, 3), ``smooth`` (coarse low-pass period, seconds, 0.5), ``fine_range`` (seconds around each
        coarse candidate, 0.2), ``window``/``step`` (seconds, for the drift, 4 and 1), ``min_peak`` (0.1),
        ``max_ratio`` (0.85)
        and ``min_separation`` (0.3 s) of the abstention rule (an ambiguous lag is kept when the jerk
        alone confirms it, ``jerk_confirmed_ratio``), ``max_drift_ppm`` (2000), ``method``
        (``"xcorr"``, or ``"dtw"`` through ``dtaidistance``).

    Returns
    -------
    dict
        ``offset_ms`` (how much later ``other``'s clock reads than the reference's at the reference's
        first sample), ``drift_ppm`` (how much faster it runs, parts per million; 0 when the recording is
        too short to resolve it, with ``drift_resolved`` False), ``uncertainty_ms`` (one standard error),
        ``abstained`` and ``reason`` (offset, drift and uncertainty are None when it abstains), and
        diagnostics (``peak``, ``second_peak_ratio``, ``jerk_confirmed_ratio``: the jerk's own peak
        ratio when the second stage confirmed an ambiguous lag, else None; ``n_windows``).

    Raises
    ------
    DecodeError
        A recording that cannot be read (naming its file) or too short to align.
    OptionError
        An unknown or invalid option.
    """
    known = AlignOptions.__dataclass_fields__
    unknown = [k for k in options if k not in known]
    if unknown:
        from modalfuse._errors import did_you_mean

        raise OptionError(f"align: unknown option {unknown[0]!r}{did_you_mean(unknown[0], list(known))}")
    o = AlignOptions(**options)
    o.check()
    ref, oth = as_recording(reference), as_recording(other)
    if o.method == "dtw":
        return _dtw_estimate(ref, oth, o)
    return _xcorr_estimate(ref, oth, o)


def pool_offsets(
    estimates: Mapping[str, Mapping[str, Any]], groups: Mapping[str, Any], *, fill_only: bool = True
) -> dict[str, dict[str, Any]]:
    """Pool the offsets of recordings that share clocks (one session, one subject).

    Per group, the pooled offset is the median of the estimates that did not abstain (drift 0), its
    uncertainty the spread of those estimates over the square root of their number. With ``fill_only``
    (default) only abstained recordings take the pooled value (``pooled=True``); otherwise every
    recording of the group does. A group where every recording abstained stays abstained.
    """
    by_group: dict[Any, list[float]] = {}
    for rec, est in estimates.items():
        if not est.get("abstained") and est.get("offset_ms") is not None:
            by_group.setdefault(groups.get(rec), []).append(float(est["offset_ms"]))
    out = {}
    for rec, est in estimates.items():
        found = by_group.get(groups.get(rec))
        if not found or (fill_only and not est.get("abstained")):
            out[rec] = dict(est)
            continue
        vals = np.asarray(found)
        spread = 1.4826 * float(np.median(np.abs(vals - np.median(vals)))) if len(vals) > 1 else np.nan
        unc = spread / np.sqrt(len(vals)) if np.isfinite(spread) else None
        out[rec] = {
            **est,
            "offset_ms": float(np.median(vals)),
            "drift_ppm": 0.0,
            "uncertainty_ms": unc,
            "abstained": False,
            "pooled": True,
            "pooled_from": len(vals),
        }
    return out


def options_dict(options: AlignOptions) -> dict[str, Any]:
    """The options as a JSON-safe dict."""
    return asdict(options)


def align_pairs(
    pairs: Mapping[str, Sequence[Any]],
    groups: Mapping[str, Any] | None = None,
    *,
    pool: bool = False,
    **options: Any,
) -> list[dict[str, Any]]:
    """:func:`align` for each ``recording -> (reference, other)``; a pair that cannot be read gives an
    abstained entry whose ``reason`` names the file. With ``pool``, abstained recordings take their
    group's pooled offset (:func:`pool_offsets`). Returns one entry per recording, ``recording`` first."""
    estimates: dict[str, dict[str, Any]] = {}
    for rec_id, (ref, oth) in pairs.items():
        try:
            if ref is None or oth is None:
                raise DecodeError("one of the two recordings is missing")
            estimates[rec_id] = align(ref, oth, **options)
        except DecodeError as exc:
            estimates[rec_id] = _abstain(str(exc))
    if pool:
        estimates = pool_offsets(estimates, groups or {})
    return [{"recording": rec_id, **est} for rec_id, est in estimates.items()]
