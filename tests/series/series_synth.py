"""Synthetic phone/watch recordings for the series tests: the same aperiodic movement seen by two devices
with their own rates, jitter, noise and clocks, written as real CSV files with a timestamp column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CHANNELS = ["x_acc", "y_acc", "z_acc", "x_gyro", "y_gyro", "z_gyro"]
ACTIVITIES = ["SEATED", "WALKING", "TURNING"]


def movement(seconds: float, seed: int, fs: float = 400.0) -> tuple[np.ndarray, ...]:
    """A true movement at ``fs`` Hz: (times, 3-axis acceleration, 3-axis rotation rate), with random
    bursts of motion of random lengths (nothing periodic), and per-sample activity labels."""
    rng = np.random.default_rng(seed)
    t = np.arange(0, seconds, 1 / fs)
    acc = np.zeros((len(t), 3))
    gyro = np.zeros((len(t), 3))
    labels = np.full(len(t), ACTIVITIES[0], dtype=object)
    s = 0.5
    while s < seconds - 1:
        length = rng.uniform(0.3, 1.5)
        sel = (t >= s) & (t < s + length)
        env = np.sin(np.pi * (t[sel] - s) / length) ** 2
        acc[sel] += (
            env[:, None] * rng.normal(0, 3, 3) * np.sin(2 * np.pi * rng.uniform(1, 4) * t[sel])[:, None]
        )
        gyro[sel] += env[:, None] * rng.normal(0, 1.5, 3)
        labels[sel] = ACTIVITIES[1 + int(rng.integers(2))]
        s += length + rng.uniform(0.2, 1.2)
    acc[:, 2] += 9.81
    return t, acc, gyro, labels


def device(
    true: tuple[np.ndarray, ...],
    rate: float,
    *,
    offset: float = 0.0,
    drift: float = 0.0,
    jitter: float = 0.002,
    noise: float = 0.05,
    seed: int = 0,
    rotate: bool = False,
    epoch: float = 1_657_533_977.0,
) -> pd.DataFrame:
    """What one device records of the true movement: samples at about ``rate`` Hz with timing jitter,
    noise, optionally another orientation, stamped by a clock reading ``t + offset + drift * t``
    (epoch milliseconds), with a per-sample ``label``."""
    t, acc, gyro, true_labels = true
    rng = np.random.default_rng(seed)
    when = np.arange(0.05, t[-1] - 0.05, 1 / rate)
    when = np.sort(when + rng.uniform(-jitter, jitter, len(when)))
    a = np.column_stack([np.interp(when, t, acc[:, i]) for i in range(3)])
    g = np.column_stack([np.interp(when, t, gyro[:, i]) for i in range(3)])
    if rotate:  # another orientation: magnitudes are unchanged
        q, _ = np.linalg.qr(np.random.default_rng(seed + 99).normal(size=(3, 3)))
        a, g = a @ q, g @ q
    values = np.column_stack([a, g]) + rng.normal(0, noise, (len(when), 6))
    labels = true_labels[np.clip(np.searchsorted(t, when), 0, len(t) - 1)]
    stamp = np.round((epoch + when + offset + drift * when) * 1000).astype(np.int64)
    frame = pd.DataFrame(values, columns=CHANNELS)
    frame["timestamp"] = stamp
    frame["label"] = labels
    return frame


def write_session(
    folder: Path,
    subject: str,
    execution: int,
    *,
    seconds: float = 20.0,
    offset: float = 0.0,
    drift: float = 0.0,
    seed: int = 0,
) -> tuple[Path, Path]:
    """``folder/<subject>/<subject>_<NN>_{sp,sw}.csv``: a phone at ~111 Hz and a watch at ~100 Hz whose
    clock reads ``offset`` seconds later (and runs ``drift`` faster)."""
    true = movement(seconds, seed)
    d = folder / subject
    d.mkdir(parents=True, exist_ok=True)
    sp = device(true, 111.0, seed=seed + 1)
    sw = device(true, 100.0, offset=offset, drift=drift, seed=seed + 2, rotate=True)
    paths = (d / f"{subject}_{execution:02d}_sp.csv", d / f"{subject}_{execution:02d}_sw.csv")
    sp.to_csv(paths[0], index=False)
    sw.to_csv(paths[1], index=False)
    return paths
