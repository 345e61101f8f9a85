"""Print a Markdown table from a benchmark JSON written by ``benchmarks/avdigits.py``.

python benchmarks/to_markdown.py benchmarks/results/avdigits-hard.json
"""

from __future__ import annotations

import json
import sys


def _cell(entry: dict, metric: str) -> str:
    m = entry.get(metric)
    if not isinstance(m, dict) or m.get("mean") is None:
        return "–"
    return f"{m['mean']:.3f} ± {m['std']:.3f}"


def main(path: str) -> None:
    doc = json.loads(open(path).read())
    result = doc["modalfuse"]
    extra = sorted(
        {
            k
            for e in result["strategies"].values()
            for k in e
            if k.startswith("retrieval_") and k.endswith("recall@1_label")
        }
    )
    head = ["strategy", "accuracy", "macro-F1", "fit s (own + reused)", "predict s", *extra]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    rows = sorted(result["strategies"].items(), key=lambda kv: -kv[1].get("accuracy", {}).get("mean", -1))
    for name, e in rows:
        if "error" in e:
            print(f"| {name} | failed: {e['error']} |")
            continue
        cells = [
            name,
            _cell(e, "accuracy"),
            _cell(e, "f1_macro"),
            f"{e['fit_seconds']:.0f} ({e.get('fit_cost_seconds', e['fit_seconds']):.0f})",
            f"{e['predict_seconds']:.1f}",
            *(_cell(e, k) for k in extra),
        ]
        print("| " + " | ".join(cells) + " |")
    for name, e in doc.get("reference", {}).get("strategies", {}).items():
        print(
            f"| {name} | {_cell(e, 'accuracy')} | {_cell(e, 'f1_macro')} | {e['fit_seconds']:.1f} | – |"
            + " – |" * len(extra)
        )
    print()
    print(
        f"modalfuse wall time {result['wall_seconds']:.0f} s; scikit-learn reference "
        f"{doc.get('reference', {}).get('wall_seconds', float('nan')):.0f} s."
    )
    rec = result.get("recommendation")
    if rec:
        print(f"Recommendation: **{rec['strategy']}** — {rec['reason']}")


if __name__ == "__main__":
    main(sys.argv[1])
