"""What modalfuse's numbers depend on: the same fits in fresh processes under different thread counts and
CPU kernel sets, compared bit for bit.

Each configuration runs in a process of its own (so nothing is cached between them) and fits the same
strategies on the same rows (AV-Digits (hard), the first ``--takes`` recordings of each digit per speaker;
one speaker held out), then records, per strategy, the held-out accuracy and a SHA-256 digest of the
predicted probabilities. Configurations: 1 torch thread, 1 thread again (run-to-run determinism), 2 threads,
and 2 threads with oneDNN limited to AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``, as on a processor without AVX-512).
Writes JSON (default ``benchmarks/results/reproducibility.json``) with the environment of the parent.

    python benchmarks/reproducibility.py [--data-root ../shared/datasets] [--takes 6] [--epochs 3] [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

#: (label, torch threads, extra environment) of each configuration.
CONFIGS: tuple[tuple[str, int, dict[str, str]], ...] = (
    ("1 thread", 1, {}),
    ("1 thread, again", 1, {}),
    ("2 threads", 2, {}),
    ("2 threads, oneDNN AVX2", 2, {"ONEDNN_MAX_CPU_ISA": "AVX2"}),
)
STRATEGIES = ("unimodal:audio", "unimodal:image", "early", "linear")


def fit_once(data_root: str | None, takes: int, epochs: int, threads: int) -> dict[str, Any]:
    """Fit every strategy of :data:`STRATEGIES` on all speakers but the first and predict the first."""
    import numpy as np
    import torch

    import modalfuse as mf
    from avdigits import first_takes

    table = first_takes(mf.load_dataset("av-digits-hard", root=data_root), takes)
    held_out = table.groups == sorted(set(table.groups))[0]
    train, test = table.take(np.flatnonzero(~held_out)), table.take(np.flatnonzero(held_out))
    out: dict[str, Any] = {
        "torch_threads": threads,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    for name in STRATEGIES:
        clf = mf.MultimodalClassifier(
            fusion=name, epochs=epochs, min_steps=30, inner_folds=2, n_threads=threads, seed=0
        ).fit(train)
        proba = np.ascontiguousarray(clf.predict_proba(test), dtype=np.float64)
        out[name] = {
            "accuracy": float((clf.classes_[proba.argmax(1)] == test.y).mean()),
            "proba_sha256": hashlib.sha256(proba.tobytes()).hexdigest()[:16],
            "p_row0_class0": float(proba[0, 0]),
        }
    return out


def run_config(args: argparse.Namespace, threads: int, extra_env: dict[str, str]) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", str(threads), "--takes", str(args.takes)]
    command += ["--epochs", str(args.epochs)] + (["--data-root", args.data_root] if args.data_root else [])
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **extra_env}, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize_runs(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per strategy: which configurations gave bit-identical probabilities to the first one."""
    first = next(iter(runs.values()))
    return {
        name: {label: run[name]["proba_sha256"] == first[name]["proba_sha256"] for label, run in runs.items()}
        for name in STRATEGIES
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--takes", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "reproducibility.json"))
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(fit_once(args.data_root, args.takes, args.epochs, args.child)))
        return

    from bench_common import environment

    runs = {}
    for label, threads, extra_env in CONFIGS:
        runs[label] = run_config(args, threads, extra_env)
        print(label, json.dumps({n: runs[label][n] for n in STRATEGIES}), flush=True)
    same = summarize_runs(runs)
    for name, by_config in same.items():
        print(f"{name:16s} identical to '{CONFIGS[0][0]}': {by_config}")
    doc = {
        "benchmark": "reproducibility of fits across thread counts and CPU kernel sets",
        "command": f"python benchmarks/reproducibility.py --takes {args.takes} --epochs {args.epochs}",
        "environment": environment(),
        "configs": {label: {"threads": t, "env": env} for label, t, env in CONFIGS},
        "runs": runs,
        "identical_to_first": same,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
