"""Modality Shapley values on real data: global tables beside the leave-one-input-out accuracy drop, the
efficiency property on every row, the speed of exact values on cached embeddings, and the HTML report.

For each dataset (AV-Digits hard, leave one speaker out: audio and image; the clothing reviews, stratified
5-fold: Title, Review Text and the tabular columns):

1. ``mf.compare(table, fusion=F, explain=True, ...)``: every strategy's exact modality Shapley values on
   every fold's test rows, with the accuracy lost when each input is left out of those rows, and whether
   the two rankings of the inputs agree in each fold. Written as ``shapley-<dataset>-compare.json`` and
   rendered as ``report-<dataset>.html`` (:func:`modalfuse.report.write_report`).
2. Speed: a late-fusion model and a joint head (``early``) fitted on the first fold's training rows
   explain every row of the table exactly. ``prepare`` is the encoders' pass (once per row);
   ``shapley`` the 2^M coalitions through the fusion head plus the Shapley weights (what a row costs once
   its embeddings are cached); ``rows_per_second`` is rows / ``shapley`` seconds (median of
   ``--repeats``), ``end_to_end_rows_per_second`` includes preprocessing and encoders.

    python benchmarks/shapley.py [--datasets avdigits,clothing] [--epochs 10] [--takes 50]
                                 [--data-root ../shared/datasets] [--out benchmarks/results/shapley.json]
                                 [--speed-only]

The speed of the Shapley step depends on the model's shape (inputs, embedding sizes, heads), not on how
long it trained: ``--speed-only --epochs 1`` measures it without the comparison.

``--takes K`` keeps the first K recordings of each digit per speaker of AV-Digits (50: all of them).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import modalfuse as mf
from bench_common import environment
from modalfuse.explain import shapley_values
from modalfuse.report import write_report

RESULTS = Path(__file__).parent / "results"


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (as the results record it), else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(RESULTS.parent.parent.resolve()))
    except ValueError:  # --out outside the repository
        return str(path)


DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
FUSION = "late:weighted,early"
SPEED_MODELS = ("late:weighted", "early")


def load(name: str, root: Path, takes: int) -> tuple[mf.MultimodalTable, Any, str | None]:
    """The table, its cv and its groups column."""
    if name == "avdigits":
        from avdigits import first_takes

        table = mf.load_dataset("av-digits-hard", root=root)
        return (first_takes(table, takes) if takes < 50 else table), "loso", None
    import clothing

    return clothing.load(root / "clothing_reviews" / "val.csv", rating=True), 5, None


def shapley_table(result: dict[str, Any]) -> dict[str, Any]:
    """Per strategy and input: mean |phi|, mean phi toward the true class and the leave-one-input-out
    accuracy drop (mean and std over the folds), with the per-fold agreement of the two rankings."""
    out = {}
    for name, entry in result["strategies"].items():
        e = entry.get("explanation")
        if not e:
            out[name] = {"error": entry.get("error") or entry.get("explanation_errors")}
            continue
        out[name] = {
            "accuracy": entry["accuracy"]["mean"],
            "inputs": {
                n: {
                    key: {"mean": e[key][n]["mean"], "std": e[key][n]["std"]}
                    for key in ("mean_abs_phi", "mean_phi_true", "loo_drop", "accuracy_alone")
                }
                for n in e["inputs"]
            },
            "interactions": {p: v["mean"] for p, v in e["interactions"].items()},
            "rank_by_shapley": e["rank_by_shapley"],
            "rank_by_loo": e["rank_by_loo"],
            "ranking_agrees_folds": e["ranking_agrees_folds"],
            "ranking_agrees_every_fold": e["ranking_agrees_all"],
            "efficiency_gap": e["efficiency_gap"],
            "rows_explained": e["n_rows"],
        }
    return out


def _median_seconds(work, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = work()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def speed(table: mf.MultimodalTable, name: str, epochs: int, repeats: int) -> dict[str, Any]:
    """Fit ``name`` on the first fold's training rows; time exact Shapley values of every row."""
    from modalfuse.evaluate import make_splits

    train, _ = make_splits(table.y, table.groups, cv="loso" if table.groups is not None else 5, seed=0)[0]
    start = time.perf_counter()
    clf = mf.MultimodalClassifier(fusion=name, epochs=epochs, seed=0).fit(table.take(train))
    fit_seconds = time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.InputDriftWarning)
        data = clf._transform(table)  # the preprocessed inputs, as predict_proba sees them
        strategy = clf.fusion_
        inputs = strategy.coalition_inputs()
        present = np.stack([np.asarray(data[n][1], bool) for n in inputs], axis=1)
        prepare_seconds, prepared = _median_seconds(lambda: strategy.prepare_coalitions(data), repeats)

        def explain() -> Any:
            return shapley_values(
                lambda c: strategy.proba_of_coalitions(prepared, c), present, inputs, clf.classes_
            )

        shapley_seconds, sv = _median_seconds(explain, repeats)
        end_to_end_seconds, _ = _median_seconds(lambda: clf.shapley_values(table), 1)
    return {
        "strategy": name,
        "inputs": inputs,
        "rows": len(table),
        "fit_seconds": fit_seconds,
        "prepare_seconds": prepare_seconds,
        "shapley_seconds": shapley_seconds,
        "rows_per_second": len(table) / shapley_seconds,
        "end_to_end_seconds": end_to_end_seconds,
        "end_to_end_rows_per_second": len(table) / end_to_end_seconds,
        "coalitions": sv.n_coalitions,
        "efficiency_gap": sv.efficiency_gap(),
    }


def run_speed(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Only the speed part (``--speed-only``)."""
    table, _, _ = load(name, Path(args.data_root), args.takes)
    speeds = [speed(table, s, args.epochs, args.repeats) for s in SPEED_MODELS]
    _print_speeds(speeds)
    return {"rows": len(table), "speed": speeds}


def _print_speeds(speeds: list[dict[str, Any]]) -> None:
    for s in speeds:
        print(
            f"  speed {s['strategy']:14s} {s['rows_per_second']:,.0f} rows/s on cached embeddings "
            f"({s['end_to_end_rows_per_second']:,.0f} end to end), efficiency gap {s['efficiency_gap']:.1e}",
            flush=True,
        )


def run(name: str, args: argparse.Namespace) -> dict[str, Any]:
    if args.speed_only:
        return run_speed(name, args)
    table, cv, groups = load(name, Path(args.data_root), args.takes)
    print(f"{name}: {len(table)} rows, inputs {list(table.inputs)}", flush=True)
    start = time.perf_counter()
    result = mf.compare(
        table, fusion=args.fusion, cv=cv, groups=groups, explain=True, epochs=args.epochs, seed=0
    )
    result["wall_seconds"] = time.perf_counter() - start
    result.setdefault("reproducibility", {})["command"] = _command(args)
    RESULTS.mkdir(exist_ok=True)
    compare_path = Path(args.out).with_name(f"shapley-{name}-compare.json")
    compare_path.write_text(json.dumps(result, indent=1))
    report = write_report(result, Path(args.out).with_name(f"report-{name}.html"))
    table_ = shapley_table(result)
    for strategy, row in table_.items():
        if "inputs" in row:
            print(
                f"  {strategy:16s} acc {row['accuracy']:.3f}  "
                + "  ".join(
                    f"{n}: |phi| {v['mean_abs_phi']['mean']:.3f} drop {v['loo_drop']['mean']:+.3f}"
                    for n, v in row["inputs"].items()
                )
                + f"  agree {sum(a is True for a in row['ranking_agrees_folds'])}/{len(row['ranking_agrees_folds'])}"
                f"  eff {row['efficiency_gap']:.1e}",
                flush=True,
            )
    speeds = [speed(table, s, args.epochs, args.repeats) for s in SPEED_MODELS]
    _print_speeds(speeds)
    return {
        "rows": len(table),
        "inputs": {n: {"modality": m, "columns": c} for n, (m, c) in table.inputs.items()},
        "cv": result["cv"],
        "compare_wall_seconds": result["wall_seconds"],
        "shapley": table_,
        "speed": speeds,
        "report": {"path": _shown(report), "bytes": report.stat().st_size},
        "compare_json": _shown(compare_path),
    }


def _command(args: argparse.Namespace) -> str:
    return (
        f"python benchmarks/shapley.py --datasets {args.datasets} --epochs {args.epochs} --takes {args.takes}"
        f" --fusion {args.fusion}" + (" --speed-only" if args.speed_only else "")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="avdigits,clothing")
    parser.add_argument("--data-root", default=str(DEFAULT_ROOT))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--takes", type=int, default=50)
    parser.add_argument("--fusion", default=FUSION)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "shapley.json"))
    parser.add_argument(
        "--speed-only", action="store_true", help="only the speed part (no comparison, no report)"
    )
    args = parser.parse_args(argv)
    doc: dict[str, Any] = {
        "benchmark": "modality Shapley values: global tables, leave-one-input-out, efficiency, speed",
        "command": _command(args),
        "load_average_at_start": os.getloadavg(),
        "environment": environment(),
        "datasets": {},
    }
    out = Path(args.out)
    for name in args.datasets.split(","):
        doc["datasets"][name] = run(name, args)
        doc["load_average_at_end"] = os.getloadavg()
        out.write_text(json.dumps(doc, indent=2, default=str))
    print(f"written {out}")


if __name__ == "__main__":
    main()
