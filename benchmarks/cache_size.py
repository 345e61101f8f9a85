"""How many bytes of decoded and preprocessed data a full comparison on AV-Digits (hard) keeps in the cache.

Runs ``mf.compare(av-digits-hard, fusion="unimodal", cv="loso")`` (six folds, each fitting the audio and
image preprocessors on its training rows and transforming every row, as every strategy does) with an
unbounded :class:`modalfuse.Cache`, training as little as possible (``epochs=1, min_steps=1``: the
networks do not matter here, the data does). The cache's bytes at the end are everything the run would
keep: when they are below the default bound (:data:`modalfuse._cache.DEFAULT_MAX_BYTES`, 512 MiB), the
default cache evicts nothing in such a run.

    python benchmarks/cache_size.py [--data-root ../shared/datasets] [--out benchmarks/results/cache_size.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import modalfuse as mf
from modalfuse._cache import DEFAULT_MAX_BYTES


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cache_size.json")
    args = parser.parse_args()

    cache = mf.Cache(max_bytes=2**62, max_models=2**31)
    start = time.perf_counter()
    with mf.using_cache(cache):
        table = mf.load_dataset("av-digits-hard", root=args.data_root)
        read_bytes = cache.nbytes
        mf.compare(
            table,
            fusion="unimodal",
            cv="loso",
            epochs=1,
            min_steps=1,
            inner_folds=2,
            n_threads=1,
            cache=cache,
        )
    doc = {
        "benchmark": "cache_size",
        "command": "python benchmarks/cache_size.py",
        "dataset": {"name": "av-digits-hard", "rows": len(table)},
        "run": 'mf.compare(fusion="unimodal", cv="loso", epochs=1, min_steps=1, inner_folds=2)',
        "bytes_after_read_table": read_bytes,
        "bytes_after_compare": cache.nbytes,
        "data_entries": len(cache) - cache.n_models,
        "model_entries": cache.n_models,
        "default_max_bytes": DEFAULT_MAX_BYTES,
        "fits_default": cache.nbytes <= DEFAULT_MAX_BYTES,
        "wall_seconds": time.perf_counter() - start,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    mib = 1024**2
    print(
        f"read_table: {read_bytes / mib:.1f} MiB; after the comparison: {cache.nbytes / mib:.1f} MiB in "
        f"{doc['data_entries']} entries (default bound {DEFAULT_MAX_BYTES / mib:.0f} MiB: "
        f"{'fits' if doc['fits_default'] else 'does NOT fit'}); written to {args.out}"
    )


if __name__ == "__main__":
    main()
