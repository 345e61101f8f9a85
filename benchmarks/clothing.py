"""Women's clothing reviews (text + tabular), 5-fold stratified CV: modalfuse against a scikit-learn reference.

The data: ``clothing_reviews/val.csv`` (2,349 reviews). Inputs: the texts ``Title`` and ``Review Text``, and
one tabular input of the categoricals ``Division Name``, ``Department Name``, ``Class Name`` and the numerics
``Rating``, ``Age``, ``Positive Feedback Count``. Label: ``Recommended IND`` (1 = recommended, the positive
class; 1,924 of 2,349 rows). ``Clothing ID`` and the saved index column are declared ``ignore``.

``Rating`` nearly gives the label away, so everything runs twice, with and without it. Each run uses the same
five folds (``make_splits(y, None, cv=5, seed=0)``) for:

- modalfuse: ``mf.compare(table, fusion=..., cv=5, seed=0, epochs=...)``: unimodal baselines, late fusion
  (mean, weighted, stacking) and early fusion with the default trainable encoders;
- a scikit-learn reference, fitted inside each training fold (a ``Pipeline`` with a ``ColumnTransformer``):
  TF-IDF (word 1-2 grams, sublinear tf, min_df=2) of Title + Review Text, one-hot categoricals, median-imputed
  and standardised numerics, and a logistic regression whose strength C is chosen by a stratified 5-fold
  inner cross-validation of the training rows only (log loss, over :data:`bench_common.REFERENCE_CS`;
  ``LogisticRegressionCV``), refitted on them; on all of them (``sklearn:all``) and, for context beside
  modalfuse's unimodal baselines, on the text alone, on the tabular columns alone and (with Rating) on
  Rating alone. (Until this was tuned, the reference used ``C=1.0``, which predicts the majority class for
  nearly every row without Rating.)

Reported per strategy: F1 and PR-AUC (average precision) of the positive class, macro-F1 and accuracy (mean ±
std over the folds) and the fit seconds summed over the folds; paired bootstrap intervals (over the folds) of
modalfuse's strategies against the best reference, in accuracy and macro-F1; plus the wall time of every
run and the environment the numbers depend on. Writes JSON (default ``benchmarks/results/clothing.json``)
and prints a compact table.

    python benchmarks/clothing.py [--data-root ../shared/datasets] [--epochs 20] [--fusion all] [--out PATH]
                                  [--rows N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

import modalfuse as mf
from bench_common import REFERENCE_CS, environment, format_paired, paired_vs_reference
from modalfuse.evaluate import classification_metrics, make_splits, summarize

LABEL = "Recommended IND"
IGNORED = ("Unnamed: 0", "Clothing ID")
#: Declared modalities: everything explicit, so nothing depends on inference.
MODALITIES: dict[str, str] = {
    "Unnamed: 0": "ignore",
    "Clothing ID": "ignore",
    "Title": "text",
    "Review Text": "text",
    "Division Name": "categorical",
    "Department Name": "categorical",
    "Class Name": "categorical",
    "Rating": "numeric",
    "Age": "numeric",
    "Positive Feedback Count": "numeric",
}
#: Metrics reported, in column order: (result key, table header).
REPORTED = (
    ("f1_positive", "F1+"),
    ("pr_auc_positive", "PR-AUC+"),
    ("f1_macro", "macro-F1"),
    ("accuracy", "accuracy"),
)
#: BLAS/OpenMP threads of the scikit-learn reference fits.
REFERENCE_THREADS = 1
DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def load(csv: Path, *, rating: bool) -> mf.MultimodalTable:
    """The table with every column declared; ``Rating`` declared ``ignore`` when ``rating`` is False."""
    modalities = dict(MODALITIES)
    if not rating:
        modalities["Rating"] = "ignore"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # notes (none expected) are kept in table.notes
        return mf.read_table(
            csv,
            label=LABEL,
            modalities=modalities,
            name="clothing_reviews" + ("" if rating else " (no Rating)"),
        )


def reference_models(table: mf.MultimodalTable) -> dict[str, Any]:
    """Name -> unfitted Pipeline of the scikit-learn reference on ``table``'s columns (all of them, the text
    alone, the tabular columns alone and, where it is a column, Rating alone)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    text = table.schema.of("text")
    categorical = table.schema.of("categorical")
    numeric = table.schema.of("numeric")

    def build(use_text: bool, categorical: list[str], numeric: list[str]) -> Pipeline:
        parts: list[tuple[str, Any, Any]] = []
        if use_text:
            parts.append(("text", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2), "text"))
        if categorical:
            parts.append(
                (
                    "categorical",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value="<missing>"),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    categorical,
                )
            )
        if numeric:
            parts.append(
                ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric)
            )
        # C is chosen by an inner CV of the rows the pipeline is fitted on: the training rows of a fold
        model = LogisticRegressionCV(
            Cs=list(REFERENCE_CS),
            cv=StratifiedKFold(n_splits=5, shuffle=True, random_state=0),
            scoring="neg_log_loss",
            max_iter=2000,
        )
        return Pipeline([("features", ColumnTransformer(parts)), ("model", model)])

    models: dict[str, Any] = {}
    if text:
        models["sklearn:all"] = build(True, categorical, numeric)
        models["sklearn:text"] = build(True, [], [])
    if categorical or numeric:
        models["sklearn:tabular"] = build(False, categorical, numeric)
    if "Rating" in numeric:  # how much of the label Rating gives away on its own
        models["sklearn:rating-only"] = build(False, [], ["Rating"])
    return models


def reference_frame(table: mf.MultimodalTable) -> Any:
    """The table's feature columns as scikit-learn reads them: one ``text`` column (Title + Review Text,
    empty where both are missing), categoricals as strings or NaN, numerics as floats or NaN."""
    text = table.schema.of("text")
    categorical = table.schema.of("categorical")
    numeric = table.schema.of("numeric")
    frame = table.frame[categorical + numeric].copy()
    for col in categorical:
        frame[col] = frame[col].where(table.present[col], np.nan).astype(object)
    for col in numeric:
        frame[col] = frame[col].astype(np.float64)
    joined = [
        " ".join(str(v) for v, c in zip(row, text, strict=True) if table.present[c][i])
        for i, row in enumerate(table.frame[text].itertuples(index=False, name=None))
    ]
    frame["text"] = joined
    return frame


def sklearn_reference(
    table: mf.MultimodalTable, splits: list[tuple[np.ndarray, np.ndarray]]
) -> dict[str, Any]:
    """Fit each reference pipeline in every training fold and score it on the fold's test rows."""
    from sklearn.base import clone
    from threadpoolctl import threadpool_limits

    X = reference_frame(table)
    y = np.asarray(table.y)
    classes = np.unique(y)
    models = reference_models(table)
    out: dict[str, Any] = {}
    for name, model in models.items():
        folds, seconds, chosen = [], [], []
        for train, test in splits:
            est = clone(model)
            # One BLAS/OpenMP thread: these fits take well under a second, and on a shared, loaded machine
            # two spinning threads made them 40x slower (7.6 s instead of 0.18 s for one fold).
            with threadpool_limits(REFERENCE_THREADS), warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore", FutureWarning
                )  # scikit-learn 1.9's notes on LogisticRegressionCV
                t0 = time.perf_counter()
                est.fit(X.iloc[train], y[train])
                seconds.append(time.perf_counter() - t0)
                proba = est.predict_proba(X.iloc[test])
            chosen.append(float(est.named_steps["model"].C_[0]))
            position = {c: i for i, c in enumerate(est.classes_.tolist())}
            aligned = np.zeros((len(test), len(classes)))
            for k, c in enumerate(classes.tolist()):
                if c in position:
                    aligned[:, k] = proba[:, position[c]]
            folds.append(classification_metrics(y[test], aligned, classes))
        entry = {key: summarize([f.get(key) for f in folds]) for key in folds[0] if key != "confusion_matrix"}
        entry["fit_seconds"] = float(sum(seconds))
        entry["fit_seconds_per_fold"] = seconds
        entry["confusion_matrix"] = np.sum([f["confusion_matrix"] for f in folds], axis=0).tolist()
        entry["C_per_fold"] = chosen
        out[name] = entry
    return out


def _progress(label: str) -> Any:
    """A progress callback for ``mf.compare`` that prints one line per finished fold."""
    state: dict[str, Any] = {"done": 0, "per_fold": 1, "t0": time.perf_counter(), "failed": set()}

    def progress(event: str, **info: Any) -> None:
        if event == "start":
            state["per_fold"] = max(1, len(info.get("strategies") or [None]))
            state["t0"] = time.perf_counter()
            print(
                f"  [{label}] {len(info.get('strategies') or [])} strategies x {info.get('n_folds')} folds: "
                f"{', '.join(info.get('strategies') or [])}",
                flush=True,
            )
        elif event == "step":
            state["done"] += 1
            if not info.get("ok", True) and info.get("strategy") not in state["failed"]:
                state["failed"].add(info.get("strategy"))
                print(f"  [{label}] {info.get('strategy')} FAILED in fold {info.get('fold')}", flush=True)
            if state["done"] % state["per_fold"] == 0:
                print(
                    f"  [{label}] fold {info.get('fold')} done, {time.perf_counter() - state['t0']:.0f}s elapsed",
                    flush=True,
                )

    return progress


def _cell(summary: Mapping[str, Any] | None) -> str:
    if not summary or summary.get("mean") is None:
        return "n/a"
    return f"{summary['mean']:.3f} ± {summary.get('std') or 0.0:.3f}"


def rows_of(strategies: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """One row of table cells per strategy (failed strategies say so), best F1+ first."""
    ok = [(n, e) for n, e in strategies.items() if "error" not in e]
    ok.sort(key=lambda item: -((item[1].get("f1_positive") or {}).get("mean") or -math.inf))
    rows = [
        (
            n,
            *(_cell(e.get(key)) for key, _ in REPORTED),
            f"{e['fit_seconds']:.1f}" if isinstance(e.get("fit_seconds"), int | float) else "n/a",
        )
        for n, e in ok
    ]
    rows += [
        (n, f"failed in fold {e.get('fold')}: {e['error']}") for n, e in strategies.items() if "error" in e
    ]
    return rows


def format_compact(title: str, strategies: Mapping[str, Any]) -> str:
    header = ("strategy", *(h for _, h in REPORTED), "fit s")
    rows = rows_of(strategies)
    full = [r for r in rows if len(r) == len(header)]
    widths = [
        max(len(header[i]), *(len(r[i]) for r in full)) if full else len(header[i])
        for i in range(len(header))
    ]
    widths[0] = max([widths[0], *(len(r[0]) for r in rows)])

    def render(row: tuple[str, ...]) -> str:
        if len(row) != len(header):
            return f"{row[0]:<{widths[0]}}  {row[1]}"
        return "  ".join(
            [f"{row[0]:<{widths[0]}}", *(f"{c:>{w}}" for c, w in zip(row[1:], widths[1:], strict=True))]
        )

    return "\n".join([title, render(header), "-" * (sum(widths) + 2 * (len(widths) - 1)), *map(render, rows)])


FIT_SECONDS_NOTE = (
    "fit s: summed over the 5 folds. modalfuse fits each input's models once per fold and shares "
    "them: the unimodal:* rows carry that cost, the late:* rows only their combiner's and the "
    "joint rows (early, tensor, lowrank, attention, shared) only their heads'."
)


def run(csv: Path, *, rating: bool, fusion: str, epochs: int, rows: int | None = None) -> dict[str, Any]:
    """One variant (with or without Rating): modalfuse's comparison and the scikit-learn reference
    (on the first ``rows`` rows only, for a quick run, when given)."""
    label = "with Rating" if rating else "without Rating"
    table = load(csv, rating=rating)
    if rows is not None:
        table = table.take(np.arange(min(rows, len(table))))
    splits = make_splits(table.y, None, cv=5, seed=0)
    print(
        f"== {label}: {len(table)} rows, inputs "
        + ", ".join(f"{n} ({m}: {', '.join(c)})" for n, (m, c) in table.inputs.items()),
        flush=True,
    )

    print(f"  modalfuse: mf.compare(fusion={fusion!r}, cv=5, seed=0, epochs={epochs}) ...", flush=True)
    t0 = time.perf_counter()
    result = mf.compare(table, fusion=fusion, cv=5, seed=0, epochs=epochs, progress=_progress(label))
    modalfuse_seconds = time.perf_counter() - t0
    result["wall_seconds"] = modalfuse_seconds
    # the same folds, checked rather than assumed
    assert result["cv"]["fold_sizes"] == [len(test) for _, test in splits], "compare used other folds"
    for name, entry in result["strategies"].items():
        missing = [key for key, _ in REPORTED if "error" not in entry and key not in entry]
        if missing:
            print(f"  warning: {name} has no {missing} in its metrics", file=sys.stderr)
    print(f"  modalfuse done in {modalfuse_seconds:.0f}s; scikit-learn reference ...", flush=True)

    t0 = time.perf_counter()
    reference = sklearn_reference(table, splits)
    reference_seconds = time.perf_counter() - t0
    print(f"  scikit-learn reference done in {reference_seconds:.1f}s", flush=True)
    paired = paired_vs_reference(result, reference, metrics=("accuracy", "f1_macro"))
    return {
        "rating": rating,
        "inputs": {n: {"modality": m, "columns": c} for n, (m, c) in table.inputs.items()},
        "missing": table.missing_summary(),
        "modalfuse": result,
        "reference": {"strategies": reference, "wall_seconds": reference_seconds},
        "wall_seconds": {"modalfuse": modalfuse_seconds, "reference": reference_seconds},
        "paired_vs_reference": paired,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-root",
        default=os.environ.get("MODALFUSE_DATA") or str(DEFAULT_ROOT),
        help="folder holding clothing_reviews/val.csv (default: ../shared/datasets)",
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--fusion", default="all", help="as modalfuse evaluate --fusion (default: all)")
    parser.add_argument("--rows", type=int, default=None, help="use the first N rows only (a quick run)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "clothing.json"))
    args = parser.parse_args(argv)
    env = environment()

    csv = Path(args.data_root).expanduser() / "clothing_reviews" / "val.csv"
    if not csv.is_file():
        print(
            f"clothing_reviews data not found: {csv} is missing; pass --data-root (a folder holding "
            "clothing_reviews/val.csv)",
            file=sys.stderr,
        )
        return 2

    t_all = time.perf_counter()
    runs = {
        "with_rating": run(csv, rating=True, fusion=args.fusion, epochs=args.epochs, rows=args.rows),
        "without_rating": run(csv, rating=False, fusion=args.fusion, epochs=args.epochs, rows=args.rows),
    }
    total = time.perf_counter() - t_all

    print()
    for r in runs.values():
        strategies = {**r["modalfuse"]["strategies"], **r["reference"]["strategies"]}
        title = (
            f"clothing_reviews, {'with' if r['rating'] else 'without'} Rating | "
            f"{r['modalfuse']['n_rows']} rows, stratified 5-fold CV (seed 0), epochs {args.epochs} | "
            f"wall: modalfuse {r['wall_seconds']['modalfuse']:.0f}s, "
            f"scikit-learn {r['wall_seconds']['reference']:.1f}s"
        )
        print(format_compact(title, strategies))
        best = r["modalfuse"].get("best") or {}
        print(f"best by accuracy: {best.get('strategy')} (best single input: {best.get('unimodal')})")
        print(format_paired(r["paired_vs_reference"]))
        print(FIT_SECONDS_NOTE + "\n")
    print(f"total wall time {total:.0f}s")

    command = f"python benchmarks/clothing.py --epochs {args.epochs} --fusion {args.fusion}"
    command += f" --rows {args.rows}" if args.rows is not None else ""
    doc = {
        "benchmark": "clothing_reviews val.csv, stratified 5-fold CV (seed 0), with and without Rating",
        "command": command,
        "data": {"path": str(csv), "label": LABEL, "positive_class": 1, "ignored_columns": list(IGNORED)},
        "environment": env,
        "settings": {
            "fusion": args.fusion,
            "epochs": args.epochs,
            "rows": args.rows,
            "cv": 5,
            "seed": 0,
            "reference_threads": REFERENCE_THREADS,
        },
        "notes": [
            FIT_SECONDS_NOTE,
            "Each run starts with modalfuse's shared per-input model cache empty.",
            f"scikit-learn reference fits use {REFERENCE_THREADS} BLAS/OpenMP thread(s).",
            f"scikit-learn reference: C from {list(REFERENCE_CS)} by stratified 5-fold inner CV (log loss) "
            "on the training rows of each fold.",
        ],
        "runs": runs,
        "wall_seconds": total,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
