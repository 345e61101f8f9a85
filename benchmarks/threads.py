"""Fit time of one small multimodal model against torch's CPU thread count, quiet and beside a busy process.

Each fit runs in a fresh Python process (as a user's script or ``modalfuse fit`` would), with
``n_threads`` in {1, 2, [every core, when more than 2], default} and ``OMP_NUM_THREADS`` unset, so
``default`` is what a user gets without choosing. The table is written once by this script: 200 rows of
real files on disk, 28x28 grey PNG images and 8 kHz mono WAV clips of 0.4-0.9 s (the sizes of AV-Digits),
10 classes. The model is ``MultimodalClassifier(fusion="early", epochs=5, min_steps=40, inner_folds=2)``:
two image and two audio networks (the cross-fitted per-input encoders) and two early-fusion heads. Each
timing is the ``fit`` call alone (files decoded and librosa's kernels compiled before it).

Conditions: ``quiet`` (nothing started beside the fits) and ``busy`` (one other process spinning a Python
loop for the whole condition). On a machine shared with other jobs ``quiet`` is not quiet: the JSON records
the load average before each fit.

Within each of ``repeats`` repeats, ``default`` and one thread run one after the other (which first
alternates), so they see the same background load; then the other settings, each stopped after ``CAP``
(3) times the slower of those two (recorded as ``stopped_after``: at least that slow, so not the best).
The floor: the default's time over the best explicit setting's time in the same repeat, median over
repeats (``ratio_default_to_best``), is at most 1.10 in both conditions. Medians and minima per setting are
recorded as well.

    python benchmarks/threads.py [--repeats 4] [--out benchmarks/results/threads.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROWS = 200
CLASSES = 10
MODEL = {"fusion": "early", "epochs": 5, "min_steps": 40, "inner_folds": 2, "seed": 0}
FLOOR = 1.10
#: Other settings are stopped after this many times the slower of the default and one thread.
CAP = 3.0

CHILD = """
import json, sys, time
import modalfuse as mf
from modalfuse._threads import resolve_threads
import torch

import numpy as np
from modalfuse.modalities.audio import log_mel

csv, n_threads, model = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
table = mf.read_table(csv, label="y")          # decodes every file once (kept in the cache)
log_mel(np.zeros(2048, dtype=np.float32), 8000)  # compiles librosa's numba kernels before the timing
clf = mf.MultimodalClassifier(n_threads=n_threads, **model)
start = time.perf_counter()
clf.fit(table)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "threads_used": resolve_threads(n_threads),
                  "threads_after": torch.get_num_threads()}))
"""


def write_table(folder: Path) -> Path:
    """``ROWS`` rows of PNG images and WAV clips whose content depends on the class; returns the CSV."""
    import pandas as pd
    import soundfile as sf
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for i in range(ROWS):
        label = i % CLASSES
        img = rng.uniform(0, 60, size=(28, 28))
        img[2 * label : 2 * label + 8, 4:24] += 180
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="L").save(folder / f"img_{i:03d}.png")
        t = np.arange(int(rng.uniform(0.4, 0.9) * 8000)) / 8000
        wave = 0.4 * np.sin(2 * np.pi * (200 + 150 * label) * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(folder / f"snd_{i:03d}.wav", wave.astype(np.float32), 8000)
        rows.append({"image": f"img_{i:03d}.png", "audio": f"snd_{i:03d}.wav", "y": f"c{label}"})
    csv = folder / "table.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def fit_once(csv: Path, n_threads: int | None, cap: float | None = None) -> dict[str, Any]:
    """One fit in a fresh process, ``OMP_NUM_THREADS`` unset: its seconds and the threads it used.

    With ``cap``, a process still running after ``cap`` seconds is stopped and recorded as
    ``{"seconds": None, "stopped_after": cap}`` (at least that slow).
    """
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    load = os.getloadavg()[0]
    try:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(csv), json.dumps(n_threads), json.dumps(MODEL)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=cap or 1800,
        )
    except subprocess.TimeoutExpired:
        if cap is None:
            raise
        return {"seconds": None, "stopped_after": cap, "load_average_before": load}
    if out.returncode != 0:
        raise RuntimeError(f"fit with n_threads={n_threads} failed:\n{out.stderr[-3000:]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "load_average_before": load}


def _seconds(run: dict[str, Any]) -> float:
    """A run's seconds; infinity for a run stopped at its cap (slower than any finished one)."""
    return math.inf if run["seconds"] is None else float(run["seconds"])


def _finite(value: float) -> float | None:
    """``value``, or None for infinity (a median or minimum of stopped runs; JSON has no infinity)."""
    return value if math.isfinite(value) else None


def _summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per setting median and minimum; the default against the best explicit setting, per repeat."""
    medians = {name: statistics.median(_seconds(r) for r in rs) for name, rs in runs.items()}
    explicit = [name for name in runs if name != "default"]
    best = min(explicit, key=medians.__getitem__)
    paired = [
        _seconds(runs["default"][i]) / min(_seconds(runs[name][i]) for name in explicit)
        for i in range(len(runs["default"]))
    ]
    return {
        "median_seconds": {name: _finite(v) for name, v in medians.items()},
        "min_seconds": {name: _finite(min(_seconds(r) for r in rs)) for name, rs in runs.items()},
        "best": best,
        "ratio_default_to_best_median": medians["default"] / medians[best],
        "ratio_default_to_best_per_repeat": paired,
        "ratio_default_to_best": statistics.median(paired),
    }


def run_condition(csv: Path, settings: dict[str, int | None], repeats: int, busy: bool) -> dict[str, Any]:
    """Every setting ``repeats`` times; with ``busy``, beside one spinning process.

    Within a repeat the default and one thread run one after the other (which goes first alternates), so
    they see the same background load, then the other settings, each stopped after ``CAP`` times the
    slower of the first two (it is then no contender for the best). The headline ratio is the median over
    repeats of the default's time over the best explicit setting's time *in the same repeat*.
    """
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in settings}
    label = "busy" if busy else "quiet"
    try:
        for rep in range(repeats):
            pair = ["default", "1"] if rep % 2 else ["1", "default"]
            first: list[float] = []
            for name in [*pair, *(n for n in settings if n not in pair)]:
                cap = CAP * max(first) if len(first) == 2 else None
                result = fit_once(csv, settings[name], cap)
                runs[name].append(result)
                if cap is None:
                    first.append(_seconds(result))
                took = (
                    f"{result['seconds']:.2f}s" if result["seconds"] is not None else f"stopped at {cap:.0f}s"
                )
                print(f"  {label} repeat {rep + 1}/{repeats} n_threads={name}: {took}", flush=True)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return {"runs": runs, **_summary(runs)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "threads.json")
    args = parser.parse_args()

    import torch

    cores = os.cpu_count() or 1
    settings: dict[str, int | None] = {"1": 1, "2": 2}
    if cores > 2:
        settings[str(cores)] = cores
    settings["default"] = None
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="modalfuse-threads-") as tmp:
        csv = write_table(Path(tmp))
        fit_once(csv, 1)  # warm the disk cache and numba's compiled kernels (not recorded)
        conditions = {}
        for busy in (False, True):
            name = "busy" if busy else "quiet"
            print(f"{name}:", flush=True)
            conditions[name] = run_condition(csv, settings, args.repeats, busy)
    doc = {
        "benchmark": "threads",
        "command": f"python benchmarks/threads.py --repeats {args.repeats}",
        "design": "default and 1 thread adjacent in each repeat; other settings stopped after CAP x their time",
        "cap": CAP,
        "model": {
            **MODEL,
            "rows": ROWS,
            "classes": CLASSES,
            "inputs": "image (28x28 PNG), audio (8 kHz WAV)",
        },
        "settings": {k: v for k, v in settings.items()},
        "repeats": args.repeats,
        "conditions": conditions,
        "floor": {
            "max_ratio_default_to_best": FLOOR,
            "met": all(c["ratio_default_to_best"] <= FLOOR for c in conditions.values()),
        },
        "machine": {
            "cpu_count": cores,
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_default_threads": torch.get_num_threads(),
        },
        "note": (
            "Shared machine: other jobs ran beside every condition (see load_average_before per run), so "
            "'quiet' means no process started by this benchmark. Ratios within one condition are what count."
        ),
        "wall_seconds": time.perf_counter() - wall,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    for name, c in conditions.items():
        meds = ", ".join(
            f"{k}: {v:.2f}s" if v is not None else f"{k}: stopped" for k, v in c["median_seconds"].items()
        )
        print(f"{name}: medians {meds}; default/best ({c['best']}) = {c['ratio_default_to_best']:.3f}")
    print(
        f"floor (default within {FLOOR - 1:.0%} of the best) met: {doc['floor']['met']}; written to {args.out}"
    )


if __name__ == "__main__":
    main()
