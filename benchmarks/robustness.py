"""AV-Digits (hard), leave-one-speaker-out: missing and noisy modalities, and the policies against them.

Two parts, on the same six folds (one speaker held out each):

``curves``: every strategy is trained once per fold, then scored on the fold's test rows corrupted at every
level (:func:`modalfuse.evaluate.robustness`; the same corrupted rows for every strategy):

- ``audio:missing`` and ``image:missing`` at rates 0, 0.25, 0.5, 0.75, 1 (graceful degradation);
- ``audio:noise`` at 20, 10, 5, 0, -5 dB SNR on a random half of the test rows (``@0.5``; quality).

Strategies: the unimodal baselines, ``late:weighted`` and ``early`` as they are, and, with training-time
corruption (``train_corruptions``: copies of a random half of the training rows with white noise at 30,
20, 10, 0 or -10 dB, which the audio networks train on and whose out-of-fold predictions the combiners and
heads are fitted on): ``unimodal:audio``, ``late:weighted``, ``late:quality`` and ``early`` with
``quality_aware=True`` (names suffixed ``+tc``). ``late:weighted+tc`` has the same per-input networks as
``late:quality+tc``, so the two differ only in the quality-aware weights. The timings of this part give the
cost of a sweep: the seconds spent corrupting and predicting per level, against the seconds of the same
evaluation without them (fits and clean predictions), both measured in this run.

``policies``: the image is removed from a random 50 % of *all* rows (training and test), and
:func:`modalfuse.compare` runs ``late:weighted``, ``early`` and ``lowrank`` under each missing-input policy
(``mask``, ``fill``, ``generate``, ``drop``) beside the baselines, on the same folds.

    python benchmarks/robustness.py [--part curves|policies|all] [--data-root ../shared/datasets]
                                    [--epochs 20] [--takes 50] [--out PATH]

Writes JSON (default ``benchmarks/results/robustness-avdigits-hard.json``; each part is saved as soon as it
ends, beside the others already in the file) with the environment the numbers depend on and the load of the
machine (1-minute load average before and after each part).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import modalfuse as mf
from bench_common import environment
from modalfuse.evaluate import paired_difference, robustness

ROOT = Path(__file__).resolve().parent
#: The test-time corruptions of the curves.
CURVES = (
    "audio:missing=0,0.25,0.5,0.75,1",
    "image:missing=0,0.25,0.5,0.75,1",
    "audio:noise=20,10,5,0,-5@0.5",
)
#: The training-time corruption of the ``+tc`` strategies (levels other than the test levels).
TRAIN_CORRUPTION = "audio:noise=30,20,10,0,-10@0.5"
POLICIES = ("mask", "fill", "generate", "drop")
POLICY_FUSIONS = ("late:weighted", "early", "lowrank")


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on Linux
        return None


def _progress(event: str, **info: Any) -> None:
    if event == "step":
        print(f"  fold {info.get('fold')} {info.get('strategy')}: {info.get('seconds', 0):.1f}s", flush=True)


def curve_strategies(**params: Any) -> dict[str, mf.MultimodalClassifier]:
    """The strategies of the curves (see the module)."""
    tc = {"train_corruptions": [TRAIN_CORRUPTION]}
    return {
        "unimodal:audio": mf.MultimodalClassifier(fusion="unimodal:audio", **params),
        "unimodal:image": mf.MultimodalClassifier(fusion="unimodal:image", **params),
        "late:weighted": mf.MultimodalClassifier(fusion="late:weighted", **params),
        "early": mf.MultimodalClassifier(fusion="early", **params),
        "unimodal:audio+tc": mf.MultimodalClassifier(fusion="unimodal:audio", **tc, **params),
        "late:weighted+tc": mf.MultimodalClassifier(fusion="late:weighted", **tc, **params),
        "late:quality+tc": mf.MultimodalClassifier(fusion="late:quality", **tc, **params),
        "early:quality_aware+tc": mf.MultimodalClassifier(
            fusion="early", fusion_options={"quality_aware": True}, **tc, **params
        ),
    }


def _level_folds(result: dict, name: str, curve: str, level: str) -> list[float]:
    return result["robustness"][name][curve][level]["accuracy"]["folds"]


def degradation_check(result: dict) -> dict[str, Any]:
    """Per missing-rate curve and level: the best fused strategy against the best single input on the same
    corrupted rows (at rate 1, the unimodal baseline of the input still present), floor -0.01."""
    out: dict[str, Any] = {}
    names = list(result["robustness"])
    fused = [n for n in names if not n.startswith("unimodal:") and n != "linear"]
    singles = [n for n in names if n.startswith("unimodal:")]
    for curve, info in result["corruptions"].items():
        if info["corruption"] != "missing":
            continue

        def acc(name: str, level: str, curve: str = curve) -> float:
            return result["robustness"][name][curve][level]["accuracy"]["mean"]

        rows = {}
        for level in info["levels"]:
            best = max(fused, key=lambda n, lv=level: acc(n, lv))
            ref = max(singles, key=lambda n, lv=level: acc(n, lv))
            margin = acc(best, level) - acc(ref, level)
            rows[level] = {
                "best_fused": best,
                "accuracy": acc(best, level),
                "best_single": ref,
                "single_accuracy": acc(ref, level),
                "margin": margin,
                "meets_floor": margin >= -0.01,
            }
        out[curve] = rows
    return out


def quality_check(result: dict) -> dict[str, Any]:
    """``late:quality+tc`` against ``late:weighted`` (and ``late:weighted+tc``): per fold, the mean accuracy
    over SNR 5, 0 and -5 dB (noise on half the test rows), paired over folds; and on clean rows."""
    curve = "audio:noise@0.5"
    out: dict[str, Any] = {}
    for ref in ("late:weighted", "late:weighted+tc"):
        if ref not in result["robustness"] or "late:quality+tc" not in result["robustness"]:
            continue

        def noisy(name: str) -> list[float]:
            per_level = [_level_folds(result, name, curve, k) for k in ("5", "0", "-5")]
            return [sum(v) / len(v) for v in zip(*per_level, strict=True)]

        out[ref] = {
            "noisy_5_0_-5": paired_difference(noisy("late:quality+tc"), noisy(ref)),
            "clean": paired_difference(
                result["clean"]["late:quality+tc"]["accuracy"]["folds"],
                result["clean"][ref]["accuracy"]["folds"],
            ),
        }
    return out


def sweep_cost(result: dict) -> dict[str, Any]:
    """Seconds a sweep of 10 levels adds, against the same evaluation (fits and clean predictions)."""
    t = result["timing"]
    evaluation = t["fit_seconds"] + t["clean_predict_seconds"]
    per_level = t["corrupted_seconds"] / t["n_levels"]
    return {
        "evaluation_seconds": evaluation,
        "seconds_per_level": per_level,
        "ten_levels_seconds": 10 * per_level,
        "ratio_ten_levels": 10 * per_level / evaluation,
        "fits_per_strategy": t["fits"],
    }


def run_curves(table: mf.MultimodalTable, params: dict[str, Any]) -> dict[str, Any]:
    load_before, start = _load(), time.perf_counter()
    with mf.using_cache(mf.Cache()):
        result = robustness(
            curve_strategies(**params), table, list(CURVES), cv="loso", seed=0, progress=_progress
        )
    result["load"] = {"before": load_before, "after": _load(), "seconds": time.perf_counter() - start}
    result["train_corruption"] = TRAIN_CORRUPTION
    return result


def check_curves(result: dict[str, Any]) -> None:
    """Add the floors' measures to a curves result (also rerun by ``--recheck`` on a saved file)."""
    result["degradation"] = degradation_check(result)
    result["quality"] = quality_check(result)
    result["cost"] = sweep_cost(result)


def policy_table(table: mf.MultimodalTable) -> mf.MultimodalTable:
    """``table`` with the image removed from a random 50 % of its rows (seed 1)."""
    return mf.corrupt_table(table, "image:missing=0.5", 0.5, seed=1)


def run_policies(table: mf.MultimodalTable, params: dict[str, Any]) -> dict[str, Any]:
    load_before, start = _load(), time.perf_counter()
    fusions = params.pop("policy_fusions", ",".join(POLICY_FUSIONS))
    checkpoint = params.pop("checkpoint", None)
    result = mf.compare(
        policy_table(table),
        checkpoint=checkpoint,
        fusion=fusions,
        cv="loso",
        missing=list(POLICIES),
        progress=_progress,
        **params,
    )
    result["load"] = {"before": load_before, "after": _load(), "seconds": time.perf_counter() - start}
    return result


def _accuracy(entry: dict[str, Any]) -> dict[str, Any]:
    """A strategy's accuracy summary, in a comparison's result or a checkpoint's partial one."""
    return entry.get("metrics", entry)["accuracy"]


def check_policies(result: dict[str, Any]) -> None:
    """Add the policy table (accuracy per fusion and policy, the best against ``drop``) to a result."""
    entries = result["strategies"]
    best = {}
    for fusion in (f for f in POLICY_FUSIONS if f in entries):
        names = {p: fusion if p == "mask" else f"{fusion}/{p}" for p in POLICIES}
        ok = {p: n for p, n in names.items() if n in entries and "error" not in entries[n]}
        scores = {p: _accuracy(entries[n])["mean"] for p, n in ok.items()}
        winner = max((p for p in scores if p != "drop"), key=scores.get, default=None)
        best[fusion] = {
            "accuracy": scores,
            "best_policy": winner,
            "best_vs_drop": None
            if winner is None or "drop" not in ok
            else paired_difference(
                _accuracy(entries[ok[winner]])["folds"],
                _accuracy(entries[ok["drop"]])["folds"],
            ),
        }
    result["policies"] = best


def _pm(summary: dict[str, Any]) -> str:
    return "–" if summary.get("mean") is None else f"{summary['mean']:.3f} ± {summary['std'] or 0:.3f}"


def _paired_text(p: dict[str, Any]) -> str:
    if p.get("mean_diff") is None:
        return "–"
    low, high = p["ci95"]
    return (
        f"{p['mean_diff']:+.3f} (95 % CI {low:+.3f} to {high:+.3f}; better in {p['wins']} of {p['n']} folds)"
    )


def curves_markdown(result: dict[str, Any]) -> list[str]:
    """The degradation and noise tables (accuracy, mean ± std over folds), areas, checks and the cost."""
    lines = []
    for curve, info in result["corruptions"].items():
        levels = info["levels"]
        lines += [
            f"**{curve}** ({info['level_meaning']}), accuracy:",
            "",
            "| strategy | clean | " + " | ".join(levels) + " | area | effective vs late:weighted |",
            "|---|" + "---|" * (len(levels) + 3),
        ]
        for name in result["robustness"]:
            eff = result["effective_robustness"][name][curve]["accuracy"]["vs"].get("late:weighted")
            cells = [
                _pm(result["clean"][name]["accuracy"]),
                *(_pm(result["robustness"][name][curve][k]["accuracy"]) for k in levels),
                _pm(result["area"][name][curve]["accuracy"]),
                "–" if not eff else _paired_text(eff),
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    for curve, rows in result.get("degradation", {}).items():
        lines.append(f"Graceful degradation, {curve}: best fused against best single input on the same rows:")
        lines.append("")
        lines += [
            "| rate | best fused | accuracy | best single | accuracy | margin | floor (-0.01) |",
            "|---|---|---|---|---|---|---|",
        ]
        for level, r in rows.items():
            lines.append(
                f"| {level} | {r['best_fused']} | {r['accuracy']:.3f} | {r['best_single']} | "
                f"{r['single_accuracy']:.3f} | {r['margin']:+.3f} | {'met' if r['meets_floor'] else 'missed'} |"
            )
        lines.append("")
    for ref, q in result.get("quality", {}).items():
        lines.append(
            f"- late:quality+tc against {ref}, mean accuracy over SNR 5, 0, -5 dB (noise on half the test rows): {_paired_text(q['noisy_5_0_-5'])}; on clean rows: {_paired_text(q['clean'])}"
        )
    cost = result.get("cost")
    if cost:
        lines.append(
            f"- Cost: fits and clean predictions {cost['evaluation_seconds']:.0f} s; each level "
            f"{cost['seconds_per_level']:.1f} s, so ten levels add {cost['ten_levels_seconds']:.0f} s = "
            f"{100 * cost['ratio_ten_levels']:.0f} % (fits per strategy: {sorted(set(cost['fits_per_strategy'].values()))})"
        )
    return lines


def policies_markdown(result: dict[str, Any]) -> list[str]:
    lines = [
        "| strategy | " + " | ".join(POLICIES) + " | best vs drop |",
        "|---|" + "---|" * (len(POLICIES) + 1),
    ]
    entries = result["strategies"]
    for fusion, row in result.get("policies", {}).items():
        cells = []
        for p in POLICIES:
            name = fusion if p == "mask" else f"{fusion}/{p}"
            cells.append(
                _pm(_accuracy(entries[name])) if name in entries and "error" not in entries[name] else "–"
            )
        best = row["best_vs_drop"]
        cells.append("–" if best is None else f"{row['best_policy']}: {_paired_text(best)}")
        lines.append(f"| {fusion} | " + " | ".join(cells) + " |")
    for name, e in entries.items():
        if name.startswith("unimodal:") or name == "linear":
            lines.append(f"| {name} (baseline) | " + _pm(_accuracy(e)) + " |" + " |" * len(POLICIES))
    return lines


def policies_from_checkpoint(path: Path) -> dict[str, Any]:
    """A policies result from the fold-by-fold checkpoint of an unfinished run: each strategy's accuracy
    over the folds it finished (``n_folds`` says how many), enough for :func:`check_policies`."""
    from modalfuse.evaluate import summarize

    steps = json.loads(path.read_text())["checkpoint"]["steps"]
    folds: dict[str, dict[int, float]] = {}
    for step in steps:
        if "metrics" in step:
            folds.setdefault(step["strategy"], {})[step["fold"]] = step["metrics"]["accuracy"]
    done = sorted(set.intersection(*(set(f) for f in folds.values()))) if folds else []
    strategies = {
        name: {"metrics": {"accuracy": summarize([f[k] for k in done])}, "folds_done": done}
        for name, f in folds.items()
    }
    return {"strategies": strategies, "n_folds": len(done), "partial": True}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("curves", "policies", "all"), default="all")
    parser.add_argument("--data-root", default=str(ROOT.parent.parent / "shared" / "datasets"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--min-steps", type=int, default=200, help="fewest optimiser updates of a network")
    parser.add_argument(
        "--encoders",
        default=None,
        help="INPUT=ENCODER,... (e.g. audio=mfcc,image=pixels; default: trainable)",
    )
    parser.add_argument("--takes", type=int, default=50, help="recordings per digit and speaker (50: all)")
    parser.add_argument("--out", default=str(ROOT / "results" / "robustness-avdigits-hard.json"))
    parser.add_argument(
        "--policy-fusions", default=",".join(POLICY_FUSIONS), help="strategies of the policies"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="policies: folds in this many worker processes (same numbers)"
    )
    parser.add_argument(
        "--backend",
        choices=("serial", "processes"),
        default="serial",
        help="curves: train each fit's per-input networks on this backend (same numbers)",
    )
    parser.add_argument("--recheck", action="store_true", help="only recompute the measures of --out's runs")
    parser.add_argument("--markdown", action="store_true", help="print --out's results as Markdown tables")
    parser.add_argument("--plot", default=None, help="with --markdown: draw the curves to this file")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.markdown:
        doc = json.loads(out.read_text())
        run_file = out.with_suffix(".policies-run.json")
        if "policies" not in doc and run_file.exists():  # an unfinished policies run: its finished folds
            doc["policies"] = policies_from_checkpoint(run_file)
            check_policies(doc["policies"])
            print(f"policies: the {doc['policies']['n_folds']} folds finished so far")
        if "curves" in doc:
            print("\n".join(curves_markdown(doc["curves"])))
            if args.plot:
                from modalfuse.evaluate import plot_robustness

                plot_robustness(doc["curves"], args.plot)
        if "policies" in doc:
            print("\n".join(policies_markdown(doc["policies"])))
        return
    checks = {"curves": check_curves, "policies": check_policies}
    if args.recheck:
        doc = json.loads(out.read_text())
        for part, check in checks.items():
            if part in doc:
                check(doc[part])
        out.write_text(json.dumps(doc, indent=1, default=str))
        return

    from avdigits import first_takes

    table = mf.load_dataset("av-digits-hard", root=args.data_root)
    if args.takes < 50:
        table = first_takes(table, args.takes)
    params = {"epochs": args.epochs, "min_steps": args.min_steps, "seed": 0}
    if args.encoders:
        params["encoders"] = dict(pair.split("=", 1) for pair in args.encoders.split(","))
    doc = json.loads(out.read_text()) if out.exists() else {}
    doc.update(
        benchmark="robustness on av-digits-hard, leave-one-speaker-out",
        command=f"python benchmarks/robustness.py --part {args.part} --epochs {args.epochs} --takes {args.takes}"
        f" --min-steps {args.min_steps} --policy-fusions {args.policy_fusions}"
        + (f" --encoders {args.encoders}" if args.encoders else "")
        + (f" --jobs {args.jobs}" if args.jobs > 1 else "")
        + (f" --backend {args.backend}" if args.backend != "serial" else ""),
        environment=environment(),
        rows=len(table),
    )
    for part, run in (("curves", run_curves), ("policies", run_policies)):
        if args.part in (part, "all"):
            print(f"{part}: {len(table)} rows", flush=True)
            extra: dict[str, Any] = (
                {"policy_fusions": args.policy_fusions, "checkpoint": out.with_suffix(".policies-run.json")}
                if part == "policies"
                else {}
            )
            if part == "policies" and args.jobs > 1:
                extra["backend"] = mf.Backend("processes", n_jobs=args.jobs)
            if part == "curves" and args.backend != "serial":
                extra["backend"] = args.backend
            doc[part] = run(table, {**params, **extra})
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(doc, indent=1, default=str))  # the run is kept even if a check fails
            checks[part](doc[part])
            out.write_text(json.dumps(doc, indent=1, default=str))
            print(f"{part} written to {out}", flush=True)


if __name__ == "__main__":
    main()
