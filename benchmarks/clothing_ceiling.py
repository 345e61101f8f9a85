"""How high can F1 of the positive class go on the clothing reviews without Rating? A ceiling, per fold.

The issue on pretrained encoders asks for F1+ >= 0.95 without Rating. This script measures how far any
decision threshold could take two models on the same five folds as ``benchmarks/clothing.py`` (stratified,
seed 0):

- ``minilm``: a logistic regression on the frozen MiniLM embeddings of ``Title`` and ``Review Text``
  (concatenated), C chosen by inner 5-fold CV of the training rows (log loss, the reference's grid);
- ``sklearn:text``: the tuned TF-IDF reference of ``benchmarks/clothing.py``.

For each it reports F1+ at the default decision (P(positive) >= 0.5), at a threshold chosen for F1+ on
out-of-fold probabilities of the training rows (a leak-free choice), and the **oracle**: the best F1+ any
threshold reaches on the fold's own test rows. The oracle uses the test labels and is not a result; it is
an upper bound on what thresholding these scores can give.

    python benchmarks/clothing_ceiling.py [--data-root ../shared/datasets] [--out results/clothing-ceiling.json]
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

from bench_common import REFERENCE_CS, environment
from clothing import DEFAULT_ROOT, load, reference_frame, reference_models
from modalfuse.encoders import make_preprocessor
from modalfuse.evaluate import make_splits


def _best_f1(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(best F1 of the positive class over every threshold on ``score``, that threshold)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, score)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    k = int(np.argmax(f1))
    return float(f1[k]), float(thresholds[k])


def _f1(y: np.ndarray, score: np.ndarray, threshold: float) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, score >= threshold))


def _minilm_model() -> Any:
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(),
        LogisticRegressionCV(
            Cs=list(REFERENCE_CS),
            cv=StratifiedKFold(n_splits=5, shuffle=True, random_state=0),
            scoring="neg_log_loss",
            max_iter=3000,
        ),
    )


def _embed(table: Any, columns: list[str]) -> np.ndarray:
    """Frozen MiniLM embeddings of each text column (zeros where missing), side by side."""
    parts = []
    for col in columns:
        encoder = make_preprocessor("minilm", col, [col])
        present = np.asarray(table.present[col])
        values = [str(v) for v in table.frame[col][present]]
        got = encoder.embed_values(values, label=col)
        block = np.zeros((len(table), encoder.dim()), np.float32)
        block[np.flatnonzero(present)] = np.stack([got[i] for i in range(len(values))])
        parts.append(block)
    return np.hstack(parts)


def run(csv: Path) -> dict[str, Any]:
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    table = load(csv, rating=False)
    y_raw = np.asarray(table.y)
    positive = 1 if 1 in set(y_raw.tolist()) else sorted(set(y_raw.tolist()))[-1]
    y = (y_raw == positive).astype(int)
    splits = make_splits(table.y, None, cv=5, seed=0)
    text = table.schema.of("text")
    t0 = time.perf_counter()
    features = {"minilm": _embed(table, text), "sklearn:text": reference_frame(table)}
    embed_seconds = time.perf_counter() - t0
    models = {"minilm": _minilm_model(), "sklearn:text": reference_models(table)["sklearn:text"]}
    out: dict[str, Any] = {}
    for name, model in models.items():
        X = features[name]
        take = X.iloc.__getitem__ if hasattr(X, "iloc") else X.__getitem__
        folds = []
        for k, (train, test) in enumerate(splits):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = clone(model).fit(take(train), y[train])
                score = est.predict_proba(take(test))[:, 1]
                inner = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
                oof = cross_val_predict(clone(model), take(train), y[train], cv=inner, method="predict_proba")
            _, chosen = _best_f1(y[train], oof[:, 1])
            oracle, oracle_threshold = _best_f1(y[test], score)
            folds.append(
                {
                    "fold": k,
                    "f1_pos_default": _f1(y[test], score, 0.5),
                    "in_fold_threshold": chosen,
                    "f1_pos_in_fold_threshold": _f1(y[test], score, chosen),
                    "f1_pos_oracle": oracle,
                    "oracle_threshold": oracle_threshold,
                }
            )
            print(
                f"{name} fold {k}: " + ", ".join(f"{a} {b:.3f}" for a, b in folds[-1].items() if a != "fold")
            )
        out[name] = {
            "folds": folds,
            "mean": {
                key: float(np.mean([f[key] for f in folds]))
                for key in ("f1_pos_default", "f1_pos_in_fold_threshold", "f1_pos_oracle")
            },
        }
    return {
        "dataset": str(csv),
        "rows": len(table),
        "positive_share": float(y.mean()),
        "all_positive_f1": float(2 * y.mean() / (1 + y.mean())),
        "text_columns": text,
        "models": out,
        "embed_seconds": embed_seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-root",
        default=os.environ.get("MODALFUSE_DATA") or str(DEFAULT_ROOT),
        help="folder holding clothing_reviews/val.csv (default: ../shared/datasets)",
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "clothing-ceiling.json"))
    args = parser.parse_args(argv)
    csv = Path(args.data_root).expanduser() / "clothing_reviews" / "val.csv"
    if not csv.is_file():
        print(f"clothing_reviews data not found: {csv} is missing; pass --data-root", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    result = run(csv)
    result["wall_seconds"] = time.perf_counter() - t0
    result["environment"] = environment()
    result["command"] = "python benchmarks/clothing_ceiling.py"
    Path(args.out).write_text(json.dumps(result, indent=2))
    for name, entry in result["models"].items():
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in entry["mean"].items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
