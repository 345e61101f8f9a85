"""How much could per-row weights gain under noise? A ceiling for quality-aware late fusion on AV-Digits.

The floor of ``late:quality`` asks for +2 points of accuracy over ``late:weighted`` with white noise on the
audio of a random half of the test rows, averaged over SNR 5, 0 and -5 dB. Quality-aware weights can only
re-weigh the same per-input predictions. This script measures how far the best possible such weighting by
noise level could go, on the folds and corrupted rows of ``benchmarks/robustness.py`` (leave-one-speaker-out,
all six folds, seed 0, the trainable CNN encoders, 20 epochs, at least 200 updates):

- per fold, ``late:weighted`` is fitted as it is, and again with the curves' ``train_corruptions`` (its
  audio networks train on the noisy copies too: ``late:weighted+tc``);
- the fold's test rows are scored clean and with noise on half of them at 5, 0 and -5 dB;
- the **oracle** keeps the image's fitted weight and multiplies the audio's weight on the noisy rows by the
  one factor in 0, 0.05, ..., 2 that scores best on those very test rows, per level. It reads the test
  labels, so it is not a result: it bounds what any weighting that follows the noise level (a perfect SNR
  estimate, say) could give these predictions.

    python benchmarks/quality_ceiling.py [--data-root ../shared/datasets] [--jobs 2] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

import modalfuse as mf
from bench_common import environment
from modalfuse.evaluate import make_splits
from robustness import CURVES, TRAIN_CORRUPTION

ROOT = Path(__file__).resolve().parent
NOISE = next(c for c in CURVES if c.startswith("audio:noise"))
LEVELS = (5, 0, -5)
FACTORS = np.round(np.arange(0, 2.0001, 0.05), 2)
PARAMS = {"epochs": 20, "min_steps": 200, "seed": 0, "n_threads": 1}
MODELS = {"late:weighted": {}, "late:weighted+tc": {"train_corruptions": [TRAIN_CORRUPTION]}}


def _per_input(clf: mf.MultimodalClassifier, table: mf.MultimodalTable) -> dict[str, np.ndarray]:
    """Each input's probabilities on ``table``'s rows (the training class prior where it is missing)."""
    probs, _ = clf.fusion_._per_input(clf.transform_inputs(table))
    return probs


def factor_accuracies(audio: np.ndarray, image: np.ndarray, hit: np.ndarray, y: np.ndarray) -> list[float]:
    """Accuracy of ``factor * audio + image`` on the rows ``hit`` (``audio + image`` elsewhere), for each of
    :data:`FACTORS`, from the weighted log-probabilities of the two inputs."""
    return [float(np.mean((np.where(hit, f, 1.0)[:, None] * audio + image).argmax(1) == y)) for f in FACTORS]


def _scores(
    clf: mf.MultimodalClassifier, clean: dict[str, np.ndarray], noisy: mf.MultimodalTable, y: np.ndarray
) -> dict[str, Any]:
    """The model's accuracy on ``noisy`` and the oracle's (see the module)."""
    probs = _per_input(clf, noisy)
    hit = ~np.isclose(probs["audio"], clean["audio"], atol=1e-7).all(1)  # rows whose audio the noise changed
    weights = clf.fusion_.state["weights"]
    audio, image = (weights[n] * np.log(probs[n] + 1e-12) for n in ("audio", "image"))
    model = float(np.mean(clf.predict(noisy) == y))
    tried = factor_accuracies(audio, image, hit, y)
    best = int(np.argmax(tried))
    return {
        "accuracy": model,
        "weighted_product": tried[int(np.flatnonzero(FACTORS == 1.0)[0])],
        "oracle": tried[best],
        "oracle_factor": float(FACTORS[best]),
        "noisy_rows": int(hit.sum()),
    }


def run_fold(args: tuple[str, int]) -> dict[str, Any]:
    data_root, fold = args
    table = mf.load_dataset("av-digits-hard", root=data_root)
    train, test = make_splits(np.asarray(table.y), np.asarray(table.groups), cv="loso", seed=0)[fold]
    test_table = table.take(test)
    y = np.asarray(test_table.y)
    out: dict[str, Any] = {"fold": fold, "speaker": str(np.asarray(table.groups)[test][0])}
    with mf.using_cache(mf.Cache()):
        for name, extra in MODELS.items():
            start = time.perf_counter()
            clf = mf.MultimodalClassifier(fusion="late:weighted", **extra, **PARAMS).fit(table.take(train))
            clean = _per_input(clf, test_table)
            entry: dict[str, Any] = {"clean": float(np.mean(clf.predict(test_table) == y))}
            for level in LEVELS:
                noisy = mf.corrupt_table(test_table, NOISE, level, seed=0)
                entry[str(level)] = _scores(clf, clean, noisy, y)
            entry["weights"] = clf.fusion_.state["weights"]
            entry["seconds"] = time.perf_counter() - start
            out[name] = entry
            print(f"fold {fold} {name}: {entry['seconds']:.0f}s", flush=True)
    return out


def summary(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per model: mean accuracy over SNR 5, 0, -5 and the oracle's, per fold and averaged over folds."""
    out = {}
    for name in MODELS:
        model = [float(np.mean([f[name][str(lv)]["accuracy"] for lv in LEVELS])) for f in folds]
        oracle = [float(np.mean([f[name][str(lv)]["oracle"] for lv in LEVELS])) for f in folds]
        gain = [o - m for o, m in zip(oracle, model, strict=True)]
        out[name] = {
            "noisy_5_0_-5": {"mean": float(np.mean(model)), "folds": model},
            "oracle_5_0_-5": {"mean": float(np.mean(oracle)), "folds": oracle},
            "oracle_gain": {"mean": float(np.mean(gain)), "max": float(np.max(gain)), "folds": gain},
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", default=str(ROOT.parent.parent / "shared" / "datasets"))
    parser.add_argument("--jobs", type=int, default=1, help="folds in this many worker processes")
    parser.add_argument("--out", default=str(ROOT / "results" / "quality-ceiling-avdigits-hard.json"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    tasks = [(args.data_root, fold) for fold in range(6)]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            folds = list(pool.map(run_fold, tasks))
    else:
        folds = [run_fold(t) for t in tasks]
    doc = {
        "benchmark": "ceiling of noise-level weights for late fusion on av-digits-hard, leave-one-speaker-out",
        "command": f"python benchmarks/quality_ceiling.py --jobs {args.jobs}",
        "noise": NOISE,
        "train_corruption": TRAIN_CORRUPTION,
        "levels": list(LEVELS),
        "factors": FACTORS.tolist(),
        "environment": environment(),
        "seconds": time.perf_counter() - start,
        "folds": folds,
        "summary": summary(folds),
    }
    Path(args.out).write_text(json.dumps(doc, indent=1))
    for name, s in doc["summary"].items():
        print(
            f"{name}: noisy 5/0/-5 {s['noisy_5_0_-5']['mean']:.3f}, oracle {s['oracle_5_0_-5']['mean']:.3f}, "
            f"gain {s['oracle_gain']['mean']:+.3f} (largest fold {s['oracle_gain']['max']:+.3f})"
        )
    print(f"written to {args.out} ({doc['seconds']:.0f}s)")


if __name__ == "__main__":
    main()
