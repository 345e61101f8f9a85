"""Fold-parallel evaluation: the same AV-Digits (hard) comparison run serially, on local processes and on Ray.

Runs ``modalfuse evaluate av-digits-hard --cv loso --fusion F --epochs E`` (every strategy, six folds,
one speaker held out each) once per backend, in this one process and one after another, each with
``n_threads=1`` per fit and a fresh cache, and records:

- the wall time of the whole run per backend (Ray's local start and the worker processes' start
  included: they are part of what a user waits for) and its ratio to the serial run;
- per fold, the seconds its steps took (in the worker, for a parallel backend);
- whether every strategy's per-fold accuracies are identical to the serial run's (they must be);
- the load average before and after each run (the machine may be shared: a parallel run's ratio on a busy
  machine is not the ratio on a quiet one).

    python benchmarks/scaleout.py [--data-root ../shared/datasets] [--takes 50] [--fusion all]
                                  [--epochs 20] [--backends serial,processes,ray] [--n-jobs 2] [--out PATH]

``--takes K`` keeps the first K recordings of each digit per speaker (50: all 3,000 rows). The JSON is
rewritten after each backend, so an interrupted run keeps the finished ones.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import modalfuse as mf
from bench_common import environment

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "scaleout.json"


def fold_accuracies(result: dict[str, Any]) -> dict[str, Any]:
    """Strategy -> its per-fold accuracies (or its error)."""
    return {
        name: entry["accuracy"]["folds"] if "error" not in entry else entry["error"]
        for name, entry in result["strategies"].items()
    }


def run_backend(table: mf.MultimodalTable, backend: str, n_jobs: int, fusion: str, epochs: int) -> dict:
    """One comparison on ``backend``: wall time, per-fold step seconds, per-fold accuracies."""
    fold_seconds: dict[int, float] = {}

    def progress(event: str, **info: Any) -> None:
        if event == "step" and not info.get("skipped"):
            fold_seconds[info["fold"]] = fold_seconds.get(info["fold"], 0.0) + float(info.get("seconds", 0.0))

    spec = mf.Backend(backend, n_jobs=n_jobs) if backend != "serial" else mf.Backend()
    load_before = os.getloadavg()
    start = time.perf_counter()
    result = mf.compare(
        table, fusion=fusion, cv="loso", seed=0, epochs=epochs, n_threads=1, backend=spec, progress=progress
    )
    wall = time.perf_counter() - start
    return {
        "backend": backend,
        "n_jobs": n_jobs if backend != "serial" else 1,
        "wall_seconds": wall,
        "fold_seconds": [fold_seconds.get(i, 0.0) for i in range(result["cv"]["n_folds"])],
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "accuracy_folds": fold_accuracies(result),
        "accuracy_mean": {
            name: entry["accuracy"]["mean"]
            for name, entry in result["strategies"].items()
            if "error" not in entry
        },
    }


def summary(runs: dict[str, dict]) -> dict[str, Any]:
    """Each backend's wall-time ratio to the serial run, and whether its accuracies are identical."""
    serial = runs.get("serial")
    out: dict[str, Any] = {}
    for name, run in runs.items():
        if serial is None or name == "serial":
            continue
        different = {
            strategy: {"serial": serial["accuracy_folds"].get(strategy), name: folds}
            for strategy, folds in run["accuracy_folds"].items()
            if folds != serial["accuracy_folds"].get(strategy)
        }
        out[name] = {
            "wall_ratio_to_serial": run["wall_seconds"] / serial["wall_seconds"],
            "identical_accuracies": not different,
            "differences": different,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--takes", type=int, default=50, help="recordings per digit and speaker (50: all)")
    parser.add_argument("--fusion", default="all")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--backends", default="serial,processes,ray")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    table = mf.load_dataset("av-digits-hard", root=args.data_root)
    if args.takes < 50:
        from avdigits import first_takes

        table = first_takes(table, args.takes)
    doc: dict[str, Any] = {
        "command": (
            f"python benchmarks/scaleout.py --takes {args.takes} --fusion {args.fusion} --epochs {args.epochs} "
            f"--backends {args.backends} --n-jobs {args.n_jobs}"
        ),
        "dataset": table.name,
        "rows": len(table),
        "environment": environment(),
        "runs": {},
    }
    for backend in args.backends.split(","):
        run = run_backend(table, backend, args.n_jobs, args.fusion, args.epochs)
        doc["runs"][backend] = run
        doc["summary"] = summary(doc["runs"])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2))
        print(
            f"{backend}: {run['wall_seconds']:.1f} s, folds {[round(s) for s in run['fold_seconds']]}",
            flush=True,
        )
    print(json.dumps(doc.get("summary", {}), indent=2))


if __name__ == "__main__":
    main()
