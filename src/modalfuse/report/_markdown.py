"""The comparison as Markdown: the recommendation and the tables of the HTML report, without figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modalfuse.report._content import Note, best_explained, is_number, part, strategy_rows

__all__ = ["render_markdown"]


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    align = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(map(_cell, headers)) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def _num(value: Any, fmt: str = ".3f") -> str:
    return format(value, fmt) if is_number(value) else "n/a"


def _strategies(result: Mapping[str, Any]) -> str:
    rows, failed = strategy_rows(result)
    table = [
        (
            r["name"] + (" ★" if r["recommended"] else "") + (" *" if r["best_unimodal"] else ""),
            f"{_num(r['accuracy'])} ± {_num(r['accuracy_std'])}",
            f"{_num(r['interval'][0])} to {_num(r['interval'][1])}" if r["interval"] else "n/a",
            _num(r["f1_macro"]),
            _num(r["fit_seconds"], ".1f"),
        )
        for r in rows
    ]
    text = _table(("strategy", "accuracy", "95% interval", "macro-F1", "fit s"), table, (1, 2, 3, 4))
    text += "\n\n★ recommended; * best single modality. Interval: 95% bootstrap of the mean over the folds."
    if failed:
        text += "\n\nFailed: " + "; ".join(f"{f['name']} (fold {f['fold']}: {f['error']})" for f in failed)
    return text


def _paired(result: Mapping[str, Any]) -> str:
    ref = (result.get("best") or {}).get("baseline")
    paired = result.get("paired_vs_baseline")
    if not ref or not isinstance(paired, Mapping) or not paired:
        raise Note("no paired comparisons in the results")
    rows = []
    for name, d in paired.items():
        ci = d.get("ci95") or [None, None]
        rows.append(
            (
                name,
                _num(d.get("mean_diff"), "+.3f"),
                f"{_num(ci[0], '+.3f')} to {_num(ci[1], '+.3f')}",
                f"{d.get('wins')} of {d.get('n')}",
            )
        )
    return f"Against the best baseline, {ref}:\n\n" + _table(
        ("strategy", "accuracy difference", "95% interval", "better in"), rows, (1, 2, 3)
    )


def _stat(summary: Mapping[str, Any], key: str, name: str) -> str:
    entry = (summary.get(key) or {}).get(name) or {}
    if not is_number(entry.get("mean")):
        return "n/a"
    return (
        f"{entry['mean']:.3f} ± {entry['std']:.3f}" if is_number(entry.get("std")) else f"{entry['mean']:.3f}"
    )


def _shapley(result: Mapping[str, Any]) -> str:
    chosen = best_explained(result)
    if chosen is None:
        raise Note("no Shapley values in the results (run with explain=True / --explain)")
    name, summary = chosen
    rows = [
        (
            n,
            _stat(summary, "mean_abs_phi", n),
            _stat(summary, "mean_phi_true", n),
            _stat(summary, "loo_drop", n),
        )
        for n in summary.get("inputs") or []
    ]
    agrees = summary.get("ranking_agrees_folds") or []
    text = f"Modality Shapley values of {name} (mean ± std over the folds; probability units):\n\n"
    text += _table(
        ("input", "mean abs phi", "mean phi toward true class", "accuracy drop left out"), rows, (1, 2, 3)
    )
    text += f"\n\nThe rankings agree in {sum(a is True for a in agrees)} of {len(agrees)} folds."
    pairs = summary.get("interactions") or {}
    if pairs:
        text += "\n\n" + _table(
            ("pair", "mean interaction"),
            [(p.replace("*", " × "), _stat(summary, "interactions", p)) for p in pairs],
            (1,),
        )
    return text


def render_markdown(result: Mapping[str, Any]) -> str:
    """A comparison result as Markdown: title, recommendation, strategies with intervals, paired
    comparisons against the best baseline, modality Shapley values (when computed) and the seed and data
    digest. A part the result lacks is replaced by a line saying so."""
    cv = result.get("cv") or {}
    title = f"# modalfuse report: {result.get('dataset') or 'results'}"
    lines = [
        title,
        "",
        f"{result.get('n_rows', 'n/a')} rows, {cv.get('kind', 'n/a')} cross-validation, {cv.get('n_folds', 'n/a')} folds.",
    ]
    rec = result.get("recommendation") or {}
    if rec.get("reason"):
        lines += ["", f"**Recommendation: {rec.get('strategy') or 'none'}.** {rec['reason']}"]
    for heading, build in (
        ("Strategies", _strategies),
        ("Paired comparisons", _paired),
        ("Modality Shapley values", _shapley),
    ):
        body, note = part(heading, lambda b=build: b(result))
        lines += ["", f"## {heading}", "", body if note is None else f"_{note}_"]
    rep = result.get("reproducibility") or {}
    if rep:
        lines += [
            "",
            "## Reproducibility",
            "",
            f"- command: `{rep.get('command') or 'modalfuse.compare(...) from Python'}`",
            f"- seed: {rep.get('seed')}",
            f"- data digest: `{rep.get('data_digest')}`",
            "- versions: " + ", ".join(f"{k} {v}" for k, v in (rep.get("versions") or {}).items()),
        ]
    return "\n".join(lines) + "\n"
