"""Clothing reviews: MiniLM with its last block fine-tuned in each fold, against the tuned TF-IDF reference.

``clothing_reviews/val.csv`` (2,349 rows), with or without ``Rating``, the same stratified 5 folds as
``benchmarks/clothing.py`` and ``benchmarks/pretrained.py clothing`` (``make_splits(y, None, cv=5,
seed=0)``). In every fold a :class:`modalfuse.MultimodalClassifier` is fitted on the training rows only:

- ``Review Text`` by ``minilm-ft`` (the lower five blocks of all-MiniLM-L6-v2 frozen, their token states in
  the embedding cache; the last ``--tail-layers`` block(s) copied from the shipped weights and trained with
  the fusion head, at ``--lr-scale`` times the learning rate); ``Title`` by ``--title`` (``minilm``,
  frozen, or ``minilm-ft``); the tabular columns by modalfuse's default encoder;
- fusion ``--fusion`` (``early``: one network per fold, trained end to end);
- optional ``--class-weight balanced``;
- optional ``--threshold K``: a decision threshold on P(positive) chosen for macro-F1 on out-of-fold
  predictions of a K-fold inner CV of the training rows (K more fits per fold), then applied to the
  model refitted on all training rows. Nothing is chosen on the test rows.

The reference is ``benchmarks/clothing.py``'s tuned TF-IDF logistic regression (C by inner 5-fold CV on
the training rows only), scored at its default decision (argmax), and, for a fair comparison with
``--threshold``, also with a threshold chosen the same way (inner K-fold out-of-fold probabilities of the
training rows). Paired bootstrap intervals over the folds (``modalfuse.evaluate.paired_difference``).

    python benchmarks/finetune.py [--data-root ../shared/datasets] [--rating] [--epochs 4]
        [--tail-layers 1] [--lr-scale 0.03] [--title minilm] [--class-weight balanced] [--threshold 3]
        [--max-folds N] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import modalfuse as mf
from bench_common import environment
from modalfuse.evaluate import classification_metrics, make_splits, paired_difference, summarize

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parents[1] / "shared" / "datasets"
THRESHOLDS = np.round(np.linspace(0.05, 0.95, 91), 3)


def best_threshold(y: np.ndarray, p_pos: np.ndarray) -> float:
    """The threshold on P(positive) of best macro-F1 on (y, p_pos); ties go to the one nearest 0.5."""
    from sklearn.metrics import f1_score

    scores = [f1_score(y, (p_pos >= t).astype(int), average="macro", zero_division=0) for t in THRESHOLDS]
    best = max(scores)
    candidates = [t for t, s in zip(THRESHOLDS, scores, strict=True) if s >= best - 1e-12]
    return float(min(candidates, key=lambda t: abs(t - 0.5)))


def thresholded(p_pos: np.ndarray, threshold: float) -> np.ndarray:
    """Two-column scores whose argmax is the decision ``p_pos >= threshold`` (for the threshold metrics
    only: PR-AUC and ROC-AUC are taken from the unshifted probabilities, see :func:`at_threshold`)."""
    shifted = np.clip(p_pos - threshold + 0.5, 0.0, 1.0)
    shifted = np.where((p_pos >= threshold) & (shifted <= 0.5), 0.5 + 1e-9, shifted)
    shifted = np.where((p_pos < threshold) & (shifted >= 0.5), 0.5 - 1e-9, shifted)
    return np.stack([1.0 - shifted, shifted], axis=1)


def at_threshold(y: np.ndarray, p_pos: np.ndarray, threshold: float, classes: np.ndarray) -> dict[str, Any]:
    """Metrics of the decision ``p_pos >= threshold``; the ranking metrics of ``p_pos`` itself."""
    out = classification_metrics(y, thresholded(p_pos, threshold), classes)
    ranked = classification_metrics(y, np.stack([1.0 - p_pos, p_pos], axis=1), classes)
    out["pr_auc_positive"], out["roc_auc"] = ranked["pr_auc_positive"], ranked["roc_auc"]
    return out


def inner_splits(y: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=0).split(np.zeros(len(y)), y))


def classifier(args: argparse.Namespace, seed: int = 0) -> mf.MultimodalClassifier:
    preprocess: dict[str, dict[str, Any]] = {
        "Review Text": {
            "max_length": args.max_length,
            "tail_layers": args.tail_layers,
            "lr_scale": args.lr_scale,
        }
    }
    if args.title == "minilm-ft":
        preprocess["Title"] = {"max_length": 32, "tail_layers": args.tail_layers, "lr_scale": args.lr_scale}
    return mf.MultimodalClassifier(
        fusion=args.fusion,
        encoders={"Title": args.title, "Review Text": "minilm-ft"},
        preprocess=preprocess,
        epochs=args.epochs,
        min_steps=0,
        batch_size=args.batch_size,
        class_weight=args.class_weight,
        n_threads=args.threads,
        seed=seed,
        fusion_options={"end_to_end": True} if args.end_to_end else None,
    )


def run_modalfuse(
    args: argparse.Namespace,
    table: mf.MultimodalTable,
    splits: list[tuple[np.ndarray, np.ndarray]],
    partial: Path | None = None,
) -> dict[str, Any]:
    """Fit in every fold and score its test rows; after each fold the folds done so far are written to
    ``partial`` (a long run stopped early keeps them)."""
    y = np.asarray(table.y)
    classes = np.unique(y)
    plain, tuned, chosen, seconds = [], [], [], []
    for k, (train, test) in enumerate(splits):
        t0 = time.perf_counter()
        threshold = None
        if args.threshold:
            inner_p = np.zeros(len(train))
            for itrain, itest in inner_splits(y[train], args.threshold):
                model = classifier(args).fit(table.take(train[itrain]))
                inner_p[itest] = model.predict_proba(table.take(train[itest]))[:, 1]
            threshold = best_threshold((y[train] == classes[1]).astype(int), inner_p)
        model = classifier(args).fit(table.take(train))
        proba = model.predict_proba(table.take(test))
        seconds.append(time.perf_counter() - t0)
        plain.append(classification_metrics(y[test], proba, classes))
        if threshold is not None:
            chosen.append(threshold)
            tuned.append(at_threshold(y[test], proba[:, 1], threshold, classes))
        print(
            f"fold {k}: macro-F1 {plain[-1]['f1_macro']:.3f} F1+ {plain[-1]['f1_positive']:.3f}"
            + (
                f", threshold {threshold:.2f}: {tuned[-1]['f1_macro']:.3f} / {tuned[-1]['f1_positive']:.3f}"
                if threshold is not None
                else ""
            )
            + f" ({seconds[-1]:.0f} s, load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        if partial is not None:
            done = {"folds_done": k + 1, "argmax_per_fold": plain, "inner_threshold_per_fold": tuned}
            done["thresholds"], done["seconds_per_fold"] = chosen, seconds
            partial.write_text(json.dumps(done, indent=1, default=_plain))
    out = {"argmax": _summary(plain, seconds)}
    if tuned:
        out["inner_threshold"] = {**_summary(tuned, seconds), "threshold_per_fold": chosen}
    return out


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _summary(folds: list[dict[str, Any]], seconds: list[float]) -> dict[str, Any]:
    keys = ("accuracy", "f1_macro", "f1_positive", "pr_auc_positive", "roc_auc")
    return {
        **{key: summarize([f.get(key) for f in folds]) for key in keys},
        "confusion_matrix": np.sum([f["confusion_matrix"] for f in folds], axis=0).tolist(),
        "seconds_per_fold": seconds,
    }


def run_reference(
    table: mf.MultimodalTable, splits: list[tuple[np.ndarray, np.ndarray]], k: int
) -> dict[str, Any]:
    """``sklearn:text`` and ``sklearn:all`` (tuned C), at argmax and with a threshold chosen on inner
    k-fold out-of-fold probabilities of the training rows."""
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_predict
    from threadpoolctl import threadpool_limits

    import clothing as cl

    X = cl.reference_frame(table)
    y = np.asarray(table.y)
    classes = np.unique(y)
    out: dict[str, Any] = {}
    for name, model in cl.reference_models(table).items():
        if name not in ("sklearn:text", "sklearn:all"):
            continue
        plain, tuned, chosen = [], [], []
        for train, test in splits:
            with threadpool_limits(1), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                est = clone(model).fit(X.iloc[train], y[train])
                p = est.predict_proba(X.iloc[test])[:, list(est.classes_).index(classes[1])]
                oof = cross_val_predict(
                    clone(model),
                    X.iloc[train],
                    y[train],
                    cv=inner_splits(y[train], k),
                    method="predict_proba",
                )[:, 1]
            threshold = best_threshold((y[train] == classes[1]).astype(int), oof)
            chosen.append(threshold)
            plain.append(classification_metrics(y[test], np.stack([1 - p, p], axis=1), classes))
            tuned.append(at_threshold(y[test], p, threshold, classes))
        out[name] = {
            "argmax": _summary(plain, []),
            "inner_threshold": {**_summary(tuned, []), "threshold_per_fold": chosen},
        }
    return out


def paired(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {m: paired_difference(a[m]["folds"], b[m]["folds"], seed=0) for m in ("f1_macro", "f1_positive")}


def main(argv: list[str] | None = None) -> None:
    import clothing as cl

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", default=os.environ.get("MODALFUSE_DATA") or str(DEFAULT_ROOT))
    parser.add_argument("--rating", action="store_true")
    parser.add_argument("--fusion", default="early")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--tail-layers", type=int, default=1)
    parser.add_argument("--lr-scale", type=float, default=0.03)
    parser.add_argument(
        "--end-to-end",
        action="store_true",
        help="early fusion trains one network on all training rows (default: one per inner fold + heads)",
    )
    parser.add_argument("--title", default="minilm", choices=("minilm", "minilm-ft"))
    parser.add_argument("--class-weight", default=None)
    parser.add_argument("--threshold", type=int, default=0, help="inner folds for the threshold (0: none)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-folds", type=int, default=None, help="only the first N folds (estimates)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    load = {"loadavg_1_5_15": list(os.getloadavg()), "cpus": os.cpu_count()}
    table = cl.load(Path(args.data_root) / "clothing_reviews" / "val.csv", rating=args.rating)
    splits = make_splits(table.y, None, cv=5, seed=0)[: args.max_folds]
    label = "with-rating" if args.rating else "without-rating"
    out = Path(args.out) if args.out else HERE / "results" / f"finetune-clothing-{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = run_modalfuse(args, table, splits, partial=out.with_suffix(".partial.json"))
    wall = time.perf_counter() - t0
    reference = run_reference(table, splits, args.threshold or 3)
    comparisons = {
        f"{mine} vs {ref} {how}": paired(result[mine], reference[ref][how])
        for mine in result
        for ref in reference
        for how in ("argmax", "inner_threshold")
    }
    for key, block in comparisons.items():
        d = block["f1_macro"]
        print(f"{key:50s} macro-F1 {d['mean_diff']:+.3f} ({d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f})")
    for name, entry in {
        **{f"modalfuse {k}": v for k, v in result.items()},
        **{f"{r} {h}": reference[r][h] for r in reference for h in ("argmax", "inner_threshold")},
    }.items():
        print(
            f"{name:40s} F1+ {entry['f1_positive']['mean']:.3f} PR-AUC {entry['pr_auc_positive']['mean']:.3f} "
            f"macro-F1 {entry['f1_macro']['mean']:.3f} acc {entry['accuracy']['mean']:.3f}"
        )
    given = list(argv if argv is not None else sys.argv[1:])
    if "--data-root" in given:  # the data's location is not part of the benchmark
        del given[given.index("--data-root") : given.index("--data-root") + 2]
    command = "python benchmarks/finetune.py " + " ".join(
        a for a in given if not a.startswith("--data-root=")
    )
    out.write_text(
        json.dumps(
            {
                "benchmark": "clothing_reviews val.csv, stratified 5-fold (seed 0), Review Text by minilm-ft "
                "(last block(s) fine-tuned in each fold)",
                "command": command,
                "settings": {k: v for k, v in vars(args).items() if k != "data_root"},
                "folds": len(splits),
                "load_at_start": load,
                "load_at_end": list(os.getloadavg()),
                "wall_seconds": wall,
                "environment": environment(),
                "modalfuse": result,
                "reference": reference,
                "paired": comparisons,
            },
            indent=2,
            default=str,
        )
    )
    out.with_suffix(".partial.json").unlink(missing_ok=True)
    print(f"written {out}")


if __name__ == "__main__":
    main()
