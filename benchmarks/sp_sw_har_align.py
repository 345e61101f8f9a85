"""sp-sw-har clock alignment: recover known offsets (and drift) added to the watch's timestamps.

For every recording of ``sp_sw_har/DATA`` (223 phone/watch pairs), and each seed, the watch's clock is
shifted by an offset drawn uniformly from ±1.5 s and (``drift``) a drift drawn from ±300 ppm: its
timestamps become ``t + offset + drift * (t - t0)``. :func:`modalfuse.align.align` (default options)
estimates the offset from the phone and the shifted watch; the error is the estimate minus the injected
offset. Conditions: ``seed<S>_nodrift`` and ``seed<S>_drift`` for each seed.

Also reported:

- the same protocol for a plain cross-correlation of the acceleration jerk (the difference of the
  magnitude) over ±3 s, the baseline the issue names;
- the offsets :func:`~modalfuse.align.align` finds on the original, un-shifted recordings;
- an independent check of the original clocks that the estimator never sees: both files of a recording
  carry per-sample activity labels, and the median difference between the watch's and the phone's
  timestamps of the same label changes says how far the two clocks (as the labels were stamped) disagree.

Writes JSON (default ``benchmarks/results/sp_sw_har_align.json``): per condition the median absolute
error, the share within 20 and 50 ms of the estimates given, the errors above 250 ms, abstentions, the
recordings more than 50 ms off; per-recording rows; the wall time and load average.

    python benchmarks/sp_sw_har_align.py [--data-root DIR] [--seeds 0 1] [--max-ratio R] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench_common import environment
from modalfuse.align import AlignOptions, align
from modalfuse.align._xcorr import _correlation, options_dict
from modalfuse.data._windows import find_recordings
from modalfuse.data.sp_sw_har import find_sp_sw_har
from modalfuse.modalities.series import Recording, load_series, resample_series


def plain_jerk_offset(ref: Recording, other: Recording, rate: float = 100.0, reach: float = 3.0) -> float:
    """The baseline: cross-correlation of the jerk of the acceleration magnitude, best lag within ±reach."""
    sig = []
    for rec in (ref, other):
        v, _, t = resample_series(rec, rate, max_gap=np.inf)
        m = np.linalg.norm(v[:, :3], axis=1)
        sig.append((np.diff(m, prepend=m[0])[None], t[0]))
    (a, ta), (b, tb) = sig
    base = ta - tb
    lags = np.arange(round((base - reach) * rate), round((base + reach) * rate) + 1)
    c = _correlation(a, b, lags, a.shape[1] // 2)
    return 1000.0 * (lags[int(np.nanargmax(c))] / rate - base)


def label_clock_offset(ref: Recording, other: Recording) -> float | None:
    """Median of (other's timestamp - reference's timestamp) over the label changes both files share, in
    the same order (ms); None when they share none."""

    def changes(rec: Recording) -> list[tuple[Any, float]]:
        lab, t = rec.labels, rec.times()
        if lab is None or len(lab) < 2:
            return []
        at = np.flatnonzero(lab[1:] != lab[:-1]) + 1
        return [(lab[i], float(t[i])) for i in at]

    pairs = [(x[1], y[1]) for x, y in zip(changes(ref), changes(other), strict=False) if x[0] == y[0]]
    return 1000.0 * float(np.median([b - a for a, b in pairs])) if pairs else None


def summarize(errors: list[float | None], recordings: list[str] | None = None) -> dict[str, Any]:
    given = np.abs([e for e in errors if e is not None])
    n = len(errors)
    if not len(given):
        return {"n": n, "abstained": n}
    out = {
        "n": n,
        "abstained": n - len(given),
        "abstained_share": round((n - len(given)) / n, 4),
        "median_abs_ms": round(float(np.median(given)), 2),
        "within_20ms": round(float(np.mean(given <= 20)), 4),
        "within_50ms": round(float(np.mean(given <= 50)), 4),
        "over_250ms": int(np.sum(given > 250)),
        "max_abs_ms": round(float(given.max()), 1),
    }
    if recordings is not None:
        out["over_50ms"] = {
            r: round(e, 1) for r, e in zip(recordings, errors, strict=True) if e and abs(e) > 50
        }
    return out


def run(data_root: str | None, seeds: list[int], options: dict[str, Any] | None = None) -> dict[str, Any]:
    options = dict(options or {})
    rset = find_recordings(find_sp_sw_har(data_root), ["sp", "sw"])
    pairs = {k: (load_series(v["sp"]), load_series(v["sw"])) for k, v in rset.paths.items()}
    rows: dict[str, list[dict[str, Any]]] = {"original": []}
    for rec, (sp, sw) in pairs.items():
        est = align(sp, sw, **options)
        labels = label_clock_offset(sp, sw)
        rows["original"].append(
            {"recording": rec, "subject": rset.groups[rec], "label_clock_ms": labels, **est}
        )
    for seed in seeds:
        for drift_on in (False, True):
            key = f"seed{seed}_{'drift' if drift_on else 'nodrift'}"
            rng = np.random.default_rng(seed)
            rows[key] = []
            for rec, (sp, sw) in pairs.items():
                offset, drift = rng.uniform(-1.5, 1.5), rng.uniform(-300e-6, 300e-6)
                shifted = sw.shifted(offset, drift if drift_on else 0.0)
                est = align(sp, shifted, **options)
                err = None if est["abstained"] else est["offset_ms"] - 1000 * offset
                plain = plain_jerk_offset(sp, shifted) - 1000 * offset
                rows[key].append(
                    {
                        "recording": rec,
                        "offset_ms_true": 1000 * offset,
                        "drift_ppm_true": 1e6 * drift * drift_on,
                        "error_ms": err,
                        "plain_jerk_error_ms": plain,
                        **est,
                    }
                )
    return summaries(rows)


def summaries(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per condition: the errors against the injected offset, for modalfuse and the plain baseline; for
    the original recordings the offsets found and the label-change check of the clocks."""
    orig = rows["original"]
    per_subject: dict[str, list[float]] = {}
    for r in orig:
        if r["offset_ms"] is not None:
            per_subject.setdefault(r["subject"], []).append(r["offset_ms"])
    labels = [r["label_clock_ms"] for r in orig if r.get("label_clock_ms") is not None]
    out: dict[str, Any] = {
        "original": {
            "offsets_found": summarize([r["offset_ms"] for r in orig], [r["recording"] for r in orig]),
            "per_subject_median_ms": {
                s: round(float(np.median(v)), 1) for s, v in sorted(per_subject.items())
            },
            "label_change_clock_difference_ms": {
                "n": len(labels),
                "median": round(float(np.median(labels)), 1),
                "median_abs": round(float(np.median(np.abs(labels))), 1),
                "max_abs": round(float(np.max(np.abs(labels))), 1),
            },
        },
        "conditions": {},
    }
    for key, rs in rows.items():
        if key == "original":
            continue
        recs = [r["recording"] for r in rs]
        out["conditions"][key] = {
            "modalfuse": summarize([r["error_ms"] for r in rs], recs),
            "plain_jerk_xcorr": summarize([r["plain_jerk_error_ms"] for r in rs]),
        }
    out["rows"] = rows
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "sp_sw_har_align.json"))
    ap.add_argument(
        "--max-ratio", type=float, default=None, help="align's max_ratio (default: align's own default)"
    )
    ap.add_argument("--resummarize", action="store_true", help="recompute the summaries of --out's rows")
    args = ap.parse_args()
    if args.resummarize:
        old = json.loads(Path(args.out).read_text())
        res = {**old, **summaries(old["rows"])}
    else:
        t0 = time.perf_counter()
        options = {} if args.max_ratio is None else {"max_ratio": args.max_ratio}
        res = run(args.data_root, args.seeds, options)
        res["align_options"] = {**options_dict(AlignOptions()), **options}
        res["wall_seconds"] = round(time.perf_counter() - t0, 1)
        res["environment"] = environment()
        res["load_average_at_end"] = list(np.round(os.getloadavg(), 2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1, default=float))
    for key, c in res["conditions"].items():
        for name, summary in c.items():
            print(key, name, {k: v for k, v in summary.items() if k != "over_50ms"})
    print("original", {k: v for k, v in res["original"]["offsets_found"].items() if k != "over_50ms"})
    print("label-change clock check", res["original"]["label_change_clock_difference_ms"])


if __name__ == "__main__":
    main()
