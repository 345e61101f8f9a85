"""Ray Data encoding (``modalfuse.encode_with_ray``): driver memory against table size, throughput against
workers.

Generates a table (8 numeric columns, a category, a short text unique to each row; label ``y``), fits the
tuned linear baseline (``fusion="linear"``) on 2,000 rows with the text embedded by a pretrained encoder
(``--text-encoder``, default ``minilm``; ``tfidf`` for the classical one) and saves it, writes tables of
10,000 and 100,000 rows (each a folder of 10 Parquet files), then encodes them, each run in a fresh
process (Ray started there with the given CPUs, no dashboard) with an empty embedding cache of its own
that the workers fill, recording the driver process's peak resident memory, the wall time, rows per
second and the cache's entries afterwards:

- 10,000 and 100,000 rows with 2 workers: the driver's peak memory should stay within 10 % (streaming);
- 100,000 rows with 1 and with 2 workers: throughput ratio. With ``--repeats N`` the two runs alternate
  N times (2 workers, 1 worker, 2 workers, ...) and each pair gives a ratio: the same encoding in a plain
  process took 34 s in one run and 40 s in the next (19 %) on the shared 2-core machine, so one pair
  can mislead. The load average before and after each run is recorded.

The driver's peak memory is its own ``VmHWM``: ``getrusage``'s ``ru_maxrss`` would report this script's
size, which a child inherits across ``exec`` on Linux.

    python benchmarks/raydata.py [--rows 10000,100000] [--text-encoder minilm] [--repeats 1]
                                 [--out benchmarks/results/raydata.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bench_common import peak_rss_bytes

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "raydata.json"
WORDS = {0: ["alpha", "amber", "apple"], 1: ["bravo", "brick", "berry"], 2: ["charlie", "cedar", "cherry"]}


def make_table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=n) + (y == i % 3) for i in range(8)})
    frame["kind"] = rng.choice(["p", "q", "r", "s"], size=n)
    frame["text"] = [  # unique per row: every row is encoded, none is a cache hit
        " ".join(rng.choice(WORDS[int(c)], size=3)) + f" some words here, order {i}" for i, c in enumerate(y)
    ]
    frame["id"] = np.arange(n)
    frame["y"] = y
    return frame


def child(model: str, table: str, out: str, jobs: int) -> dict:
    """One encoding run in this process: Ray started here with ``jobs`` CPUs."""
    import ray

    import modalfuse as mf

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=jobs, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        result = mf.encode_with_ray(model, table, out, id_column="id", batch_rows=2048, n_jobs=jobs)
    finally:
        ray.shutdown()
    result["driver_peak_rss_mib"] = peak_rss_bytes() / 2**20
    from modalfuse._embedcache import embedding_cache

    result["cache_entries"] = embedding_cache().info()["entries"]
    return result


def run_child(model: Path, table: Path, jobs: int, work: Path) -> dict:
    out = work / f"enc-{table.stem}-{jobs}"
    shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()
    cache = work / f"cache-{table.stem}-{jobs}"  # empty: the run encodes every row
    shutil.rmtree(cache, ignore_errors=True)
    cmd = [sys.executable, __file__, "--child", str(model), str(table), str(out), str(jobs)]
    env = {**os.environ, "MODALFUSE_CACHE": str(cache)}
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(jobs=jobs, table_rows=int(table.stem.split("-")[-1]), load_before=list(load))
    result["load_after"] = list(os.getloadavg())
    shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10000,100000")
    parser.add_argument(
        "--text-encoder", default="minilm", help="encoder of the text column (tfidf: classical)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="alternating pairs of 2- and 1-worker runs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--child", nargs=4, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, table, out, jobs = args.child
        print(json.dumps(child(model, table, out, int(jobs))))
        return

    import modalfuse as mf

    small, large = (int(n) for n in args.rows.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train = make_table(2000, seed=1)
        os.environ["MODALFUSE_CACHE"] = str(work / "fit-cache")
        clf = mf.MultimodalClassifier(fusion="linear", encoders={"text": args.text_encoder}, n_threads=1)
        clf.fit(mf.read_table(train.drop(columns="id"), label="y"))
        clf.save(work / "model")
        tables = {}
        for n in (small, large):  # a folder of 10 Parquet files: Ray Data reads files in parallel
            tables[n] = work / f"table-{n}"
            tables[n].mkdir()
            frame = make_table(n)
            for part, rows in enumerate(np.array_split(np.arange(n), 10)):
                frame.iloc[rows].to_parquet(tables[n] / f"part-{part:02d}.parquet")
        runs = {
            "small_2_workers": run_child(work / "model", tables[small], 2, work),
            "large_2_workers": run_child(work / "model", tables[large], 2, work),
            "large_1_worker": run_child(work / "model", tables[large], 1, work),
        }
        pairs = [(runs["large_2_workers"], runs["large_1_worker"])]
        for _ in range(args.repeats - 1):
            two = run_child(work / "model", tables[large], 2, work)
            pairs.append((two, run_child(work / "model", tables[large], 1, work)))
    memory_ratio = (
        runs["large_2_workers"]["driver_peak_rss_mib"] / runs["small_2_workers"]["driver_peak_rss_mib"]
    )
    ratios = [two["rows_per_second"] / one["rows_per_second"] for two, one in pairs]
    doc = {
        "command": f"python benchmarks/raydata.py --rows {args.rows} --text-encoder {args.text_encoder}"
        f" --repeats {args.repeats}",
        "cpus": os.cpu_count(),
        "runs": runs,
        "repeated_pairs": [{"2_workers": two, "1_worker": one} for two, one in pairs[1:]],
        "driver_memory_ratio_large_to_small": memory_ratio,
        "throughput_ratio_2_to_1_workers": float(np.median(ratios)),
        "throughput_ratios_per_pair": ratios,
        "throughput_ratio_pooled": sum(two["rows"] for two, _ in pairs)
        / sum(two["seconds"] for two, _ in pairs)
        / (sum(one["rows"] for _, one in pairs) / sum(one["seconds"] for _, one in pairs)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2))
    print(json.dumps({k: v for k, v in doc.items() if k not in ("runs", "repeated_pairs")}, indent=2))


if __name__ == "__main__":
    main()
