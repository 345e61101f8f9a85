"""Pretrained encoders (the ``pretrained`` extra): accuracy, embedding-cache speed-up, streaming memory.

Four parts, each written to its own JSON under ``benchmarks/results/`` (``pretrained-<part>.json``):

``clothing``
    Women's clothing reviews (``clothing_reviews/val.csv``), with and without Rating, stratified 5-fold
    (``make_splits(y, None, cv=5, seed=0)``): ``mf.compare`` with ``encoders={"Title": "minilm", "Review
    Text": "minilm"}`` (frozen all-MiniLM-L6-v2 embeddings, heads trained in each fold) against the tuned
    scikit-learn reference of ``benchmarks/clothing.py`` (TF-IDF + one-hot + scaled numerics, logistic
    regression whose C is chosen by inner CV on the training rows only), on the same folds; paired
    bootstrap intervals (over the folds) in macro-F1 and accuracy against the best reference.
``avdigits``
    AV-Digits hard, leave-one-speaker-out, with ``encoders={"audio": AUDIO}`` (default
    ``whisper-tiny-en``) and the default image encoder; the from-scratch figures of
    ``benchmarks/results/avdigits-hard.json`` are copied beside them (never replaced).
``cache``
    The same evaluation (clothing without Rating, ``fusion=unimodal``) run twice in one process on an
    empty embedding cache in a temporary folder: the seconds spent in the pretrained encoders
    (``PretrainedPreprocessor.embed_values``, cache look-ups included) of the first run against the
    second's.
``memory``
    :func:`modalfuse.encoders.encode_table` over a generated Parquet table (a short unique text and a
    unique 24x24 PNG per row; minilm and efficientnet-lite0 at 32 px) of 10,000 and of 100,000 rows, each
    in a fresh child process started by this script; peak resident memory of each (``VmHWM``: the child's
    own, not its parent's), their ratio, and rows per second.

    python benchmarks/pretrained.py clothing|avdigits|cache|memory [--data-root ../shared/datasets]
        [--epochs 20] [--fusion all] [--threads 1] [--rows 10000,100000] [--audio whisper-tiny-en]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import modalfuse as mf
from bench_common import environment, format_paired, paired_vs_reference, peak_rss_bytes
from modalfuse.evaluate import format_table, make_splits

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_ROOT = HERE.parents[1] / "shared" / "datasets"
TEXT_ENCODERS = {"Title": "minilm", "Review Text": "minilm"}


def _write(part: str, doc: dict[str, Any]) -> None:
    out = RESULTS / f"pretrained-{part}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str))
    print(f"written {out}")


def _load() -> dict[str, Any]:
    """One-second load average before a part starts (the machine is shared)."""
    return {"loadavg_1_5_15": list(os.getloadavg()), "cpus": os.cpu_count()}


# -------------------------------------------------------------------------------------------- clothing
def clothing(args: argparse.Namespace) -> None:
    import clothing as cl

    csv = Path(args.data_root) / "clothing_reviews" / "val.csv"
    runs = {}
    load = _load()
    for rating in (False, True):
        label = "with_rating" if rating else "without_rating"
        table = cl.load(csv, rating=rating)
        splits = make_splits(table.y, None, cv=5, seed=0)
        t0 = time.perf_counter()
        result = mf.compare(
            table,
            fusion=args.fusion,
            cv=5,
            seed=0,
            epochs=args.epochs,
            encoders=TEXT_ENCODERS,
            n_threads=args.threads,
        )
        result["wall_seconds"] = time.perf_counter() - t0
        assert result["cv"]["fold_sizes"] == [len(t) for _, t in splits], "compare used other folds"
        reference = cl.sklearn_reference(table, splits)
        paired = paired_vs_reference(result, reference, metrics=("f1_macro", "accuracy"))
        paired["f1_macro_by_reference"] = paired_by_reference(result, reference)
        strategies = {**result["strategies"], **reference}
        print(cl.format_compact(f"clothing {label}, text by minilm", strategies))
        print(format_paired(paired), flush=True)
        runs[label] = {"modalfuse": result, "reference": {"strategies": reference}, "paired": paired}
    _write(
        "clothing",
        {
            "benchmark": "clothing_reviews val.csv, stratified 5-fold (seed 0), text by frozen minilm",
            "command": f"python benchmarks/pretrained.py clothing --epochs {args.epochs} --fusion "
            f"{args.fusion} --threads {args.threads}",
            "encoders": TEXT_ENCODERS,
            "load_at_start": load,
            "environment": environment(),
            "runs": runs,
        },
    )


def paired_by_reference(result: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """Macro-F1 of each modalfuse strategy minus each tuned TF-IDF reference (``sklearn:all``, TF-IDF +
    tabular; ``sklearn:text``, TF-IDF alone), paired bootstrap over the folds."""
    from modalfuse.evaluate import paired_difference

    ok = {n: e for n, e in result["strategies"].items() if "error" not in e}
    return {
        ref: {
            name: paired_difference(e["f1_macro"]["folds"], reference[ref]["f1_macro"]["folds"], seed=0)
            for name, e in ok.items()
        }
        for ref in ("sklearn:all", "sklearn:text")
        if ref in reference
    }


# -------------------------------------------------------------------------------------------- avdigits
def avdigits(args: argparse.Namespace) -> None:
    import avdigits as av

    load = _load()
    table = mf.load_dataset("av-digits-hard", root=args.data_root)
    t0 = time.perf_counter()
    encoders = {"audio": args.audio, **({"image": args.image} if args.image else {})}
    result = av.run_modalfuse(
        table, fusion=args.fusion, epochs=args.epochs, encoders=encoders, n_threads=args.threads
    )
    result["wall_seconds"] = time.perf_counter() - t0
    print(format_table(result), flush=True)
    scratch_path = RESULTS / "avdigits-hard.json"
    scratch = (
        json.loads(scratch_path.read_text())["modalfuse"]["strategies"] if scratch_path.is_file() else {}
    )
    side = {
        name: {
            "pretrained": (entry.get("accuracy") or {}).get("mean"),
            "from_scratch": ((scratch.get(name) or {}).get("accuracy") or {}).get("mean"),
        }
        for name, entry in result["strategies"].items()
    }
    for name, row in side.items():
        print(f"{name:20s} pretrained audio {row['pretrained']}  from scratch {row['from_scratch']}")
    part = "avdigits" if not args.image and args.fusion == "all" else f"avdigits-{args.fusion}-{args.image}"
    _write(
        part.replace(":", "_").replace(",", "+"),
        {
            "benchmark": "av-digits-hard, leave-one-speaker-out, audio by a frozen pretrained encoder",
            "command": f"python benchmarks/pretrained.py avdigits --audio {args.audio} --epochs {args.epochs} "
            f"--fusion {args.fusion} --threads {args.threads}"
            + (f" --image {args.image}" if args.image else ""),
            "encoders": encoders,
            "load_at_start": load,
            "environment": environment(),
            "accuracy_beside_from_scratch": side,
            "from_scratch_source": str(scratch_path.relative_to(HERE.parent)),
            "modalfuse": result,
        },
    )


# ----------------------------------------------------------------------------------------------- cache
def cache(args: argparse.Namespace) -> None:
    import clothing as cl
    from modalfuse.encoders import PretrainedPreprocessor

    spent = {"seconds": 0.0}
    original = PretrainedPreprocessor.embed_values

    def timed(self: Any, values: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(self, values, **kw)
        finally:
            spent["seconds"] += time.perf_counter() - t0

    PretrainedPreprocessor.embed_values = timed  # type: ignore[method-assign]
    load = _load()
    csv = Path(args.data_root) / "clothing_reviews" / "val.csv"
    table = cl.load(csv, rating=False)
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        os.environ["MODALFUSE_CACHE"] = folder
        for attempt in (1, 2):
            spent["seconds"] = 0.0
            t0 = time.perf_counter()
            result = mf.compare(
                table, fusion="unimodal", cv=5, seed=0, encoders=TEXT_ENCODERS, n_threads=args.threads
            )
            info = mf.EmbeddingCache(Path(folder) / "embeddings").info()
            runs.append(
                {
                    "run": attempt,
                    "encode_seconds": spent["seconds"],
                    "wall_seconds": time.perf_counter() - t0,
                    "cache_entries": info["entries"],
                    "cache_file_bytes": info["file_bytes"],
                    "macro_f1": {n: e["f1_macro"]["mean"] for n, e in result["strategies"].items()},
                }
            )
            print(runs[-1], flush=True)
    speedup = runs[0]["encode_seconds"] / max(runs[1]["encode_seconds"], 1e-9)
    print(f"encoding speed-up of the second run: {speedup:.1f}x")
    _write(
        "cache",
        {
            "benchmark": "the same evaluation twice (clothing without Rating, unimodal, minilm text), "
            "empty embedding cache in a temporary folder",
            "command": f"python benchmarks/pretrained.py cache --threads {args.threads}",
            "load_at_start": load,
            "environment": environment(),
            "runs": runs,
            "encode_speedup": speedup,
            "identical_results": runs[0]["macro_f1"] == runs[1]["macro_f1"],
        },
    )


# ---------------------------------------------------------------------------------------------- memory
WORDS = (
    "fabric fit colour size soft warm light summer dress shirt small large lovely cheap great poor".split()
)


def generate(folder: Path, n: int) -> Path:
    """A Parquet table of ``n`` rows: ``text`` (a short unique text) and ``image`` (a unique 24x24 RGB PNG
    in ``folder/img``), made once and reused (the first rows of a larger one are the smaller's)."""
    import pandas as pd
    from PIL import Image

    path = folder / f"table-{n}.parquet"
    if path.is_file():
        return path
    images = folder / "img"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    texts, files = [], []
    for i in range(n):
        name = images / f"{i:06d}.png"
        if not name.is_file():
            Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(name)
        texts.append(f"review {i}: " + " ".join(rng.choice(WORDS, size=8)))
        files.append(f"img/{name.name}")
    pd.DataFrame({"text": texts, "image": files}).to_parquet(path, row_group_size=2048)
    return path


def _child(path: str, threads: int, batch_rows: int) -> None:
    """Run in a fresh process: encode ``path``, print a JSON line with the summary and the peak RSS."""
    from modalfuse._threads import torch_threads
    from modalfuse.encoders import encode_table

    with torch_threads(threads), tempfile.TemporaryDirectory() as out:
        summary = encode_table(
            path,
            encoders={"text": "minilm", "image": "efficientnet-lite0"},
            preprocess={"text": {"cache": False}, "image": {"size": 32, "cache": False}},
            out=Path(out) / "embeddings.parquet",
            batch_rows=batch_rows,
        )
        summary["out_bytes"] = os.path.getsize(summary["out"])
    summary["peak_rss_bytes"] = peak_rss_bytes()
    print("RESULT " + json.dumps(summary, default=str), flush=True)


def memory(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.rows.split(",")]
    load = _load()
    runs = {}
    with tempfile.TemporaryDirectory() as folder:
        generate(Path(folder), max(sizes))
        for n in sizes:
            path = generate(Path(folder), n)
            proc = subprocess.run(
                [sys.executable, __file__, "_child", str(path), str(args.threads), str(args.batch_rows)],
                capture_output=True,
                text=True,
                check=True,
            )
            line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
            runs[n] = json.loads(line[len("RESULT ") :])
            print(n, {k: runs[n][k] for k in ("rows", "seconds", "rows_per_second", "peak_rss_bytes")})
    small, large = min(sizes), max(sizes)
    ratio = runs[large]["peak_rss_bytes"] / runs[small]["peak_rss_bytes"]
    print(f"peak RSS {large} rows / {small} rows: {ratio:.3f}")
    _write(
        "memory",
        {
            "benchmark": "encode_table over generated tables (short texts + 24x24 PNGs), one child per size",
            "command": f"python benchmarks/pretrained.py memory --rows {args.rows} --threads {args.threads} "
            f"--batch-rows {args.batch_rows}",
            "encoders": {"text": "minilm", "image": "efficientnet-lite0 (size 32)"},
            "embedding_cache": "off (cache=False): the encoders themselves are measured",
            "load_at_start": load,
            "environment": environment(),
            "runs": runs,
            "peak_rss_ratio": ratio,
        },
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        _child(argv[1], int(argv[2]), int(argv[3]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", choices=("clothing", "avdigits", "cache", "memory"))
    parser.add_argument("--data-root", default=os.environ.get("MODALFUSE_DATA") or str(DEFAULT_ROOT))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--fusion", default="all")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", default="10000,100000")
    parser.add_argument("--batch-rows", type=int, default=1024)
    parser.add_argument("--audio", default="whisper-tiny-en")
    parser.add_argument("--image", default=None, help="image encoder (default: modalfuse's default)")
    args = parser.parse_args(argv)
    {"clothing": clothing, "avdigits": avdigits, "cache": cache, "memory": memory}[args.part](args)


if __name__ == "__main__":
    main()
