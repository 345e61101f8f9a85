"""sp-sw-har on the published protocol: windows of 50 samples (100 Hz) every 25, majority label,
leave-one-subject-out (22 training subjects), mean window accuracy over the 23 subjects.

Published best (GeoTecINIT/har-performance-study, Keras, 50 epochs): phone 0.863 (CNN), watch 0.868
(CNN), fused 0.888 (CNN-LSTM). This runs ``modalfuse evaluate sp-sw-har --cv loso --fusion F`` (through
:func:`modalfuse.compare`) under up to three clock conditions:

- ``original``: the recordings as they are;
- ``shifted``: every watch recording's clock shifted by an offset drawn from ±1.5 s plus a drift from
  ±300 ppm (``--shift-seed``), windows cut without correction;
- ``aligned``: the same shifted recordings, windows cut with ``align=True`` (offsets estimated by
  :func:`modalfuse.align.align` and applied before resampling).

Writes JSON (default ``benchmarks/results/sp_sw_har.json``): per condition and strategy the accuracy per
held-out subject and its mean, macro-F1, fit times, the wall time, the load average and the environment.

``--held-out s01 s02`` runs only the folds holding out those subjects, each still trained on all 22
others (to time a fold before launching all 23); ``--subjects`` instead restricts the data to a subset.
``--jobs 2`` runs folds in 2 worker processes (``backend="processes"``), one torch thread each.

    python benchmarks/sp_sw_har.py [--data-root ../shared/datasets] [--fusion unimodal,late:mean]
        [--encoder series-cnn] [--epochs 10] [--inner-folds 1] [--conditions original shifted aligned]
        [--held-out s01 ...] [--subjects s01 s02 ...] [--jobs 2] [--threads N] [--no-linear] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

import modalfuse as mf
from bench_common import environment
from modalfuse.data._windows import RecordingSet, find_recordings
from modalfuse.data.sp_sw_har import find_sp_sw_har
from modalfuse.evaluate import format_table
from modalfuse.modalities.series import load_series

PUBLISHED = {"phone (CNN)": 0.863, "watch (CNN)": 0.868, "fused (CNN-LSTM)": 0.888}


def recordings(data_root: str | None, subjects: list[str] | None, shift_seed: int | None) -> RecordingSet:
    """The recording pairs; with ``shift_seed`` each watch recording read and its clock shifted."""
    rset = find_recordings(find_sp_sw_har(data_root), ["sp", "sw"])
    paths = {k: v for k, v in rset.paths.items() if subjects is None or rset.groups[k] in subjects}
    if shift_seed is not None:
        rng = np.random.default_rng(shift_seed)
        shifted = {}
        for rec, cells in rset.paths.items():  # draw for every recording, so subsets see the same shifts
            offset, drift = rng.uniform(-1.5, 1.5), rng.uniform(-300e-6, 300e-6)
            if rec in paths:
                shifted[rec] = {"sp": cells["sp"], "sw": load_series(cells["sw"]).shifted(offset, drift)}
        paths = shifted
    return RecordingSet(["sp", "sw"], paths, rset.groups)


class HeldOut:
    """Leave-one-subject-out folds for the listed subjects only (each trained on every other subject).
    The splitter sees the groups as codes (the sorted distinct subjects' positions)."""

    def __init__(self, subjects: list[str], all_subjects: Any) -> None:
        names = sorted({str(g) for g in all_subjects})
        self.subjects = subjects
        self.codes = [names.index(s) for s in subjects if s in names]

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Any:
        groups = np.asarray(groups)
        for code in self.codes:
            test = np.flatnonzero(groups == code)
            if len(test):
                yield np.flatnonzero(groups != code), test

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return len(self.subjects)


def per_subject(result: dict[str, Any]) -> dict[str, Any]:
    groups = result["cv"].get("held_out_groups")
    out = {}
    for name, s in result["strategies"].items():
        if "accuracy" not in s:
            out[name] = {"error": s.get("error")}
            continue
        folds = s["accuracy"]["folds"]
        out[name] = {
            "accuracy_mean": round(float(np.mean(folds)), 4),
            "f1_macro_mean": round(float(s["f1_macro"]["mean"]), 4),
            "per_subject": {
                str(g[0] if isinstance(g, list) else g): round(a, 4)
                for g, a in zip(groups, folds, strict=True)
            },
            "fit_seconds": round(float(s["fit_seconds"]), 1),
        }
    return out


def compare_without_linear(
    table: Any, args: argparse.Namespace, cv: Any, encoders: Any, extra: dict[str, Any]
) -> dict[str, Any]:
    """What :func:`modalfuse.compare` runs (the same strategies, settings, folds and per-fold cache of
    per-input models), less the tuned ``linear`` baseline it adds: the time floor is for the recommended
    strategy and its unimodal baselines."""
    from modalfuse.evaluate import compare

    backend = extra.pop("backend", None)
    strategies = mf.make_strategies(
        table, args.fusion, seed=0, epochs=args.epochs, n_threads=args.threads, encoders=encoders, **extra
    )
    strategies.pop("linear", None)
    with mf.using_cache(mf.Cache()):
        return compare(strategies, table, cv=cv, seed=0, backend=backend, dataset_name=table.name)


def run_condition(args: argparse.Namespace, condition: str) -> dict[str, Any]:
    shift = None if condition == "original" else args.shift_seed
    rset = recordings(args.data_root, args.subjects, shift)
    t0 = time.perf_counter()
    table = mf.windows(
        rset, size=50, step=25, rate=100.0, align=condition == "aligned", name=f"sp-sw-har/{condition}"
    )
    window_seconds = time.perf_counter() - t0
    encoders = {"sp": args.encoder, "sw": args.encoder} if args.encoder else None
    extra: dict[str, Any] = {}
    if args.batch_size is not None:
        extra["batch_size"] = args.batch_size
    if args.inner_folds is not None:
        extra["inner_folds"] = args.inner_folds
    if args.jobs > 1:
        extra["backend"] = mf.Backend("processes", n_jobs=args.jobs)
    cv = HeldOut(args.held_out, table.groups) if args.held_out else "loso"
    t0 = time.perf_counter()
    if args.no_linear:
        result = compare_without_linear(table, args, cv, encoders, extra)
    else:
        result = mf.compare(
            table,
            fusion=args.fusion,
            cv=cv,
            seed=0,
            epochs=args.epochs,
            n_threads=args.threads,
            encoders=encoders,
            **extra,
        )
    wall = time.perf_counter() - t0
    print(f"--- {condition}: {len(table)} windows, {wall:.0f} s")
    print(format_table(result))
    return {
        "n_windows": len(table),
        "watch_windows_masked": int((~table.present["sw"]).sum()),
        "alignment_abstained": sum(
            1 for e in getattr(table, "alignment", {}).values() if (e.get("sw") or {}).get("abstained")
        ),
        "window_seconds": round(window_seconds, 1),
        "compare_wall_seconds": round(wall, 1),
        "recommended": (result.get("recommendation") or {}).get("strategy"),
        "recommendation": (result.get("recommendation") or {}).get("reason"),
        "strategies": per_subject(result),
    }


def against_original(conditions: dict[str, Any]) -> dict[str, Any]:
    """Per condition other than ``original``, per strategy: the paired difference of mean window accuracy
    against the original clocks over the subjects both ran (a bootstrap over subjects, as
    :func:`modalfuse.evaluate.paired_difference`)."""
    from modalfuse.evaluate import paired_difference

    base = conditions.get("original", {}).get("strategies", {})
    out: dict[str, Any] = {}
    for condition, entry in conditions.items():
        if condition == "original":
            continue
        for name, got in entry.get("strategies", {}).items():
            ref = base.get(name, {}).get("per_subject")
            if not ref or "per_subject" not in got:
                continue
            subjects = [k for k in ref if k in got["per_subject"]]
            diff = paired_difference(
                [got["per_subject"][k] for k in subjects], [ref[k] for k in subjects], seed=0
            )
            out.setdefault(condition, {})[name] = diff
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--fusion", default="unimodal,late")
    ap.add_argument("--encoder", default=None, help="series encoder for both inputs (default: series-cnn)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument(
        "--inner-folds", type=int, default=None, help="cross-fitting folds (default: the library's)"
    )
    ap.add_argument("--batch-size", type=int, default=None, help="rows per step (default: the library's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes for the folds")
    ap.add_argument("--held-out", nargs="+", default=None, help="only the folds holding out these subjects")
    ap.add_argument(
        "--conditions", nargs="+", default=["original"], choices=["original", "shifted", "aligned"]
    )
    ap.add_argument(
        "--no-linear", action="store_true", help="leave out the tuned linear (catch22) baseline compare adds"
    )
    ap.add_argument("--shift-seed", type=int, default=0)
    ap.add_argument("--subjects", nargs="+", default=None)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "sp_sw_har.json"))
    args = ap.parse_args()
    res: dict[str, Any] = {"settings": vars(args), "published": PUBLISHED, "conditions": {}}
    res["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    for condition in args.conditions:
        res["conditions"][condition] = run_condition(args, condition)
        res["wall_seconds"] = round(time.perf_counter() - t0, 1)
        res.setdefault("load_average_per_condition", {})[condition] = [round(x, 2) for x in os.getloadavg()]
        res["load_average"] = [round(x, 2) for x in os.getloadavg()]
        res["environment"] = environment()
        res["against_original"] = against_original(res["conditions"])
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
