"""The self-contained HTML report: one file, styles inline, figures as inline SVG, no script, no URL."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from modalfuse.report import _figures as figures
from modalfuse.report._content import (
    Note,
    alignment_entries,
    best_explained,
    fold_labels,
    is_number,
    part,
    recommended,
    robustness_curves,
    strategy_rows,
)

__all__ = ["SECTIONS", "render_html"]

#: The report's sections, in order: (id, title).
SECTIONS = (
    ("data", "Data"),
    ("strategies", "Strategies"),
    ("folds", "Per fold"),
    ("groups", "Per group"),
    ("confusion", "Confusion matrix"),
    ("paired", "Paired comparisons"),
    ("shapley", "Modality Shapley values"),
    ("robustness", "Robustness"),
    ("alignment", "Alignment"),
    ("reproducibility", "Reproducibility"),
)
#: Most rows of a per-group or per-recording table.
MAX_TABLE_ROWS = 200

_CSS = """
:root{color-scheme:light;--ink:#1b1f24;--muted:#5b6470;--line:#d8dde3;--accent:#0072B2;--rec:#D55E00}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--ink);background:#fff}
main{max-width:60rem;margin:0 auto;padding:1rem 1.25rem 3rem}
h1{font-size:1.6rem;margin:.5rem 0 .25rem}h2{font-size:1.25rem;margin:2rem 0 .5rem;padding-top:.5rem;
border-top:1px solid var(--line)}h3{font-size:1.05rem;margin:1.25rem 0 .4rem}
p{margin:.4rem 0}.muted{color:var(--muted);font-size:.9rem}
.lede{font-size:1.05rem;padding:.6rem .8rem;border-left:4px solid var(--rec);background:#fbf4ef}
nav ol{columns:2 14rem;margin:.5rem 0;padding-left:1.2rem}nav a{color:var(--accent)}
.note{padding:.5rem .75rem;background:#f4f6f8;border-left:4px solid #9aa5b1;color:var(--muted)}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.5rem 0;font-size:.88rem;font-variant-numeric:tabular-nums}
th,td{padding:.25rem .6rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f4f6f8;font-weight:600}td.n,th.n{text-align:right;white-space:nowrap}
tr.rec td{background:#fbf4ef;font-weight:600}
figure{margin:1rem 0;break-inside:avoid;page-break-inside:avoid}
figure svg{display:block;width:100%;height:auto;max-width:46rem}
figure svg *{stroke-linejoin:round;stroke-linecap:butt}
figcaption{color:var(--muted);font-size:.88rem;margin-top:.25rem}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem}
pre{white-space:pre-wrap;word-break:break-all;background:#f4f6f8;padding:.5rem .75rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:.5rem 0}dt{font-weight:600}
dd{margin:0;word-break:break-word}
@media (max-width:40rem){body{font-size:14px}main{padding:.75rem}nav ol{columns:1}
dl{grid-template-columns:1fr}dt{margin-top:.4rem}}
@media print{body{font-size:10.5pt}main{max-width:none;padding:0}nav{display:none}
h2{break-after:avoid;page-break-after:avoid}table,figure,.lede{break-inside:avoid}
a{color:inherit;text-decoration:none}.scroll{overflow:visible}}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, fmt: str = ".3f") -> str:
    return format(value, fmt) if is_number(value) else "n/a"


def _seconds(value: Any) -> str:
    if not is_number(value):
        return "n/a"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    numeric: Sequence[int] = (),
    classes: Sequence[str] | None = None,
) -> str:
    """An HTML table (cells escaped; columns in ``numeric`` right-aligned) in a horizontally scrolling box."""
    head = "".join(
        f'<th class="n">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>" for i, h in enumerate(headers)
    )
    body = []
    for r, row in enumerate(rows):
        cls = f' class="{classes[r]}"' if classes and classes[r] else ""
        cells = "".join(
            f'<td class="n">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>" for i, c in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _figure(svg: str, caption: str, fig_id: str) -> str:
    return f'<figure id="{fig_id}" class="figure">{svg}<figcaption>{_e(caption)}</figcaption></figure>'


class _Builder:
    """Builds the sections of one report from the loaded results; numbers the figures."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.result: Mapping[str, Any] = doc.get("comparison") or {}
        self.doc = doc
        self.n_figures = 0

    def fig(self, draw: Callable[[str], str], caption: str) -> str:
        self.n_figures += 1
        fig_id = f"fig{self.n_figures}"
        return _figure(draw(fig_id), caption, fig_id)

    def comparison(self) -> Mapping[str, Any]:
        if not self.result:
            raise Note("no comparison results were given (a `modalfuse evaluate --json` file)")
        return self.result

    # ------------------------------------------------------------------------------------------ data
    def data(self) -> str:
        result = self.comparison()
        data = result.get("data")
        out = []
        if not isinstance(data, Mapping):
            classes = result.get("classes") or []
            out.append(f"<p>{_e(result.get('n_rows', 'n/a'))} rows, {len(classes)} classes.</p>")
            out.append(
                _note(
                    "The results hold no data summary (written by an older modalfuse, or by the "
                    "evaluation functions rather than modalfuse.compare): inputs, missing shares "
                    "and problem cells are not shown."
                )
            )
            return "".join(out)
        groups = (
            f", groups {_e(data.get('groups'))} ({_e(data.get('n_groups'))})" if data.get("groups") else ""
        )
        out.append(
            f"<p>{_e(data.get('n_rows'))} rows, label <code>{_e(data.get('label'))}</code>{groups}. "
            f"Content digest <code>{_e(data.get('digest'))}</code>.</p>"
        )
        inputs = data.get("inputs") or {}
        rows = [
            (
                n,
                s.get("modality"),
                ", ".join(map(str, s.get("columns") or [])),
                s.get("present"),
                s.get("missing"),
                _num(100 * s["missing_rate"], ".1f") if is_number(s.get("missing_rate")) else "n/a",
            )
            for n, s in inputs.items()
        ]
        out.append(
            "<h3>Inputs</h3>"
            + _table(("input", "modality", "columns", "present", "missing", "missing %"), rows, (3, 4, 5))
        )
        out.append(self._classes(data.get("classes") or {}))
        out.append(self._problems(data.get("problems") or {}))
        notes = data.get("notes") or []
        if notes:
            out.append(
                "<h3>Notes from reading the table</h3><ul>"
                + "".join(f"<li>{_e(n)}</li>" for n in notes[:20])
                + "</ul>"
            )
        return "".join(out)

    @staticmethod
    def _classes(classes: Mapping[str, Any]) -> str:
        if not classes:
            return ""
        items = list(classes.items())
        if len(items) > 30:
            counts = [c for _, c in items]
            return f"<h3>Classes</h3><p>{len(items)} classes, {min(counts)} to {max(counts)} rows each.</p>"
        return "<h3>Classes</h3>" + _table(("class", "rows"), items, (1,))

    @staticmethod
    def _problems(problems: Mapping[str, Any]) -> str:
        count = problems.get("count", 0)
        if not count:
            return "<h3>Problems found</h3><p>No missing or unusable cell.</p>"
        by_col = ", ".join(f"{_e(c)}: {_e(n)}" for c, n in (problems.get("by_column") or {}).items())
        rows = [(p.get("row"), p.get("column"), p.get("reason")) for p in problems.get("examples") or []]
        shown = f" (the first {len(rows)})" if len(rows) < count else ""
        return (
            f"<h3>Problems found</h3><p>{_e(count)} missing or unusable cell(s), treated as missing: {by_col}.</p>"
            + (
                f'<p class="muted">Listed{shown}:</p>' + _table(("row", "column", "reason"), rows, (0,))
                if rows
                else ""
            )
        )

    # ------------------------------------------------------------------------------------ strategies
    def strategies(self) -> str:
        result = self.comparison()
        rows, failed = strategy_rows(result)
        table_rows, classes = [], []
        for r in rows:
            marks = (
                (" ★" if r["recommended"] else "")
                + (" *" if r["best_unimodal"] else "")
                + (" +" if r["name"] == "linear" else "")
            )
            interval = f"{r['interval'][0]:.3f} to {r['interval'][1]:.3f}" if r["interval"] else "n/a"
            table_rows.append(
                (
                    r["name"] + marks,
                    _num(r["accuracy"]),
                    _num(r["accuracy_std"]),
                    interval,
                    _num(r["f1_macro"]),
                    _seconds(r["fit_seconds"]),
                    _seconds(r["predict_seconds"]),
                    f"{r['n_parameters']:,}" if r["n_parameters"] is not None else "n/a",
                )
            )
            classes.append("rec" if r["recommended"] else "")
        out = [self._recommendation(result)]
        out.append(
            _table(
                (
                    "strategy",
                    "accuracy",
                    "± std",
                    "95% interval",
                    "macro-F1",
                    "fit s",
                    "predict s",
                    "parameters",
                ),
                table_rows,
                (1, 2, 3, 4, 5, 6, 7),
                classes,
            )
        )
        out.append(
            '<p class="muted">★ recommended; * best single modality; + tuned linear baseline. Accuracy is the '
            "mean over the folds; the interval is a 95% percentile bootstrap of that mean over the folds. "
            "Fit seconds count per-input models reused from another strategy's fit.</p>"
        )
        if failed:
            out.append(
                "<h3>Failed</h3>"
                + _table(
                    ("strategy", "fold", "error"), [(f["name"], f["fold"], f["error"]) for f in failed], (1,)
                )
            )
        out.append(
            self.fig(
                lambda p: figures.strategies_figure(rows, p),
                "Mean accuracy of every strategy with its 95% interval over the folds; red: recommended, light blue: baselines.",
            )
        )
        return "".join(out)

    @staticmethod
    def _recommendation(result: Mapping[str, Any]) -> str:
        rec = result.get("recommendation") or {}
        if not rec.get("reason"):
            return _note("The results hold no recommendation.")
        rule = f'<p class="muted">Rule: {_e(rec["rule"])}</p>' if rec.get("rule") else ""
        return f'<p class="lede"><strong>Recommendation: {_e(rec.get("strategy") or "none")}.</strong> {_e(rec["reason"])}</p>{rule}'

    def folds(self) -> str:
        result = self.comparison()
        rows, _ = strategy_rows(result)
        labels = fold_labels(result)
        if len(labels) < 2:
            raise Note("one fold only: nothing to plot per fold")
        cv = result.get("cv") or {}
        sizes = cv.get("fold_sizes") or []
        text = (
            f"<p>{_e(cv.get('kind', ''))} cross-validation, {len(labels)} folds"
            + (f", grouped by <code>{_e(cv['groups'])}</code>" if cv.get("groups") else "")
            + (f"; test rows per fold {min(sizes)} to {max(sizes)}" if sizes else "")
            + ".</p>"
        )
        return text + self.fig(
            lambda p: figures.folds_figure(rows, labels, p),
            "Accuracy in each fold (held-out groups on the axis) of the recommended strategy (red, thick) and the next best ones.",
        )

    def groups(self) -> str:
        result = self.comparison()
        name = recommended(result)
        entry = (result.get("strategies") or {}).get(name) or {}
        groups = entry.get("groups")
        if not isinstance(groups, Mapping) or not groups:
            raise Note(
                "no per-group results: the table has no groups, or the results were written by an older modalfuse"
            )
        ordered = sorted(
            groups.items(),
            key=lambda kv: kv[1].get("accuracy") if is_number(kv[1].get("accuracy")) else math.inf,
        )
        rows = [(g, _num(v.get("accuracy")), v.get("n"), v.get("fold")) for g, v in ordered[:MAX_TABLE_ROWS]]
        more = f" (the {MAX_TABLE_ROWS} hardest of {len(groups)})" if len(groups) > MAX_TABLE_ROWS else ""
        drawn = min(len(groups), figures.MAX_GROUPS_DRAWN)
        return (
            f"<p>Accuracy of <strong>{_e(name)}</strong> on each group's rows, over the folds that held them out. "
            f"The hardest groups come first.</p>"
            + self.fig(
                lambda p: figures.groups_figure(groups, name, p),
                f"Accuracy per group of {name}: the {drawn} hardest of {len(groups)} groups.",
            )
            + f"<details><summary>Every group{_e(more)}</summary>"
            + _table(("group", "accuracy", "rows", "fold"), rows, (1, 2, 3))
            + "</details>"
        )

    def confusion(self) -> str:
        result = self.comparison()
        name = recommended(result)
        matrix = ((result.get("strategies") or {}).get(name) or {}).get("confusion_matrix")
        if not matrix:
            raise Note("no confusion matrix in the results")
        classes = result.get("classes") or list(range(len(matrix)))
        return (
            f"<p>Confusion matrix of <strong>{_e(name)}</strong>, summed over the folds (rows: true class, "
            "columns: predicted class; shade: share of the true class).</p>"
            + self.fig(
                lambda p: figures.confusion_figure(matrix, classes, name, p), f"Confusion matrix of {name}."
            )
        )

    def paired(self) -> str:
        result = self.comparison()
        out = [f'<p class="muted">{_e(result.get("paired_method", ""))}</p>']
        best = result.get("best") or {}
        done = False
        for key, ref, what in (
            ("paired_vs_baseline", best.get("baseline"), "the best baseline"),
            ("paired", best.get("unimodal"), "the best single modality"),
        ):
            paired = result.get(key)
            if not isinstance(paired, Mapping) or not paired or not ref:
                continue
            done = True
            rows = []
            for n, d in sorted(
                paired.items(),
                key=lambda kv: -(kv[1].get("mean_diff") if is_number(kv[1].get("mean_diff")) else -math.inf),
            ):
                ci = d.get("ci95") or [None, None]
                rows.append(
                    (
                        n,
                        _num(d.get("mean_diff"), "+.3f"),
                        f"{_num(ci[0], '+.3f')} to {_num(ci[1], '+.3f')}",
                        f"{d.get('wins', 'n/a')} of {d.get('n', 'n/a')}",
                        _num(d.get("p_value")),
                    )
                )
            out.append(f"<h3>Against {_e(what)}: {_e(ref)}</h3>")
            out.append(
                _table(
                    ("strategy", "accuracy difference", "95% interval", "better in", "p"), rows, (1, 2, 3, 4)
                )
            )
            if key == "paired_vs_baseline":
                out.append(
                    self.fig(
                        lambda p, pr=paired, r=ref: figures.paired_figure(pr, r, p),
                        f"Per-fold accuracy difference of each strategy to {ref}, mean and 95% interval; green: better in every resample, red: worse.",
                    )
                )
        if not done:
            raise Note("no paired comparisons in the results")
        return "".join(out)

    # ---------------------------------------------------------------------------------------- shapley
    def shapley(self) -> str:
        result = self.comparison()
        chosen = best_explained(result)
        if chosen is None:
            raise Note(
                "no Shapley values in the results: run `modalfuse evaluate ... --explain` (or "
                "mf.compare(..., explain=True)) to compute them in every fold"
            )
        name, summary = chosen
        inputs = list(summary.get("inputs") or [])
        out = [
            f"<p>Modality Shapley values of <strong>{_e(name)}</strong> on each fold's test rows "
            f"({_e(', '.join(summary.get('methods') or []))}; a coalition is the set of inputs left present, "
            "the others masked as missing ones are). φ is in probability units: each row's values add up "
            "to its predicted probability minus the prediction with no input. Beside them, the accuracy "
            "lost when the input is left out of every test row, with the same model.</p>"
        ]
        stat = lambda key, n, fmt=".3f": _stat(summary, key, n, fmt)  # noqa: E731
        rows = [
            (
                n,
                stat("mean_abs_phi", n),
                stat("mean_abs_phi_log_odds", n),
                stat("mean_phi_true", n),
                stat("loo_drop", n),
                stat("accuracy_alone", n),
                stat("present_share", n, ".2f"),
            )
            for n in inputs
        ]
        out.append(
            _table(
                (
                    "input",
                    "mean |φ|",
                    "mean |φ| log-odds",
                    "mean φ true class",
                    "accuracy drop left out",
                    "accuracy alone",
                    "present",
                ),
                rows,
                (1, 2, 3, 4, 5, 6),
            )
        )
        agrees = summary.get("ranking_agrees_folds") or []
        n_agree = sum(a is True for a in agrees)
        out.append(
            f"<p>Ranking by mean |φ|: {_e(' > '.join(summary.get('rank_by_shapley') or []))}; by the accuracy "
            f"drop: {_e(' > '.join(summary.get('rank_by_loo') or []))}. They agree in {n_agree} of {len(agrees)} folds.</p>"
        )
        out.append(
            self.fig(
                lambda p: figures.shapley_figure(summary, name, p),
                f"Global modality Shapley values of {name}: mean over the folds (bars) and their spread (lines).",
            )
        )
        if summary.get("interactions"):
            out.append(
                "<h3>Interactions</h3><p>The pairwise Shapley interaction index, averaged over the rows toward "
                "their predicted class: positive when two inputs cooperate (together they do more than apart), "
                "negative when they duplicate each other.</p>"
            )
            out.append(
                self.fig(
                    lambda p: figures.interactions_figure(summary, name, p),
                    f"Pairwise modality interactions of {name}.",
                )
            )
        out.append(self._other_explanations(result, name))
        return "".join(out)

    @staticmethod
    def _other_explanations(result: Mapping[str, Any], shown: str) -> str:
        rows = []
        for name, entry in (result.get("strategies") or {}).items():
            summary = entry.get("explanation") if isinstance(entry, Mapping) else None
            if not isinstance(summary, Mapping):
                continue
            rows.append(
                (
                    name,
                    ", ".join(
                        f"{n} {_stat(summary, 'mean_abs_phi', n)}" for n in summary.get("inputs") or []
                    ),
                    ", ".join(f"{n} {_stat(summary, 'loo_drop', n)}" for n in summary.get("inputs") or []),
                    f"{sum(a is True for a in summary.get('ranking_agrees_folds') or [])} of {len(summary.get('ranking_agrees_folds') or [])}",
                )
            )
        if len(rows) < 2:
            return ""
        return "<h3>Every strategy explained</h3>" + _table(
            ("strategy", "mean |φ| per input", "accuracy drop left out", "rankings agree"), rows, (3,)
        )

    # ------------------------------------------------------------------------------- robustness, alignment
    def robustness(self) -> str:
        doc = self.doc.get("robustness")
        if not isinstance(doc, Mapping):
            raise Note(
                "no robustness results (give a `modalfuse robustness --json` file beside the results to include them)"
            )
        curves = robustness_curves(doc)
        out = []
        for corruption, by_strategy in curves.items():
            out.append(f"<h3>{_e(corruption)}</h3>")
            out.append(
                self.fig(
                    lambda p, c=corruption, b=by_strategy: figures.robustness_figure(c, b, p),
                    f"Accuracy under {corruption}, mean over the folds (line) and its spread (band).",
                )
            )
        for key, title in (
            ("area", "Area under each curve"),
            ("relative_robustness", "Relative robustness"),
            ("effective_robustness", "Effective robustness"),
        ):
            table = doc.get(key)
            if isinstance(table, Mapping) and table:
                out.append(f"<h3>{_e(title)}</h3>" + _nested_table(table))
        return "".join(out)

    def alignment(self) -> str:
        doc = self.doc.get("alignment")
        if doc is None:
            raise Note(
                "no alignment results (give a `modalfuse align --json` file beside the results to include them)"
            )
        entries = alignment_entries(doc)
        given = [e for e in entries if not e.get("abstained")]
        unc = sorted(e["uncertainty_ms"] for e in given if is_number(e.get("uncertainty_ms")))
        median = unc[len(unc) // 2] if unc else None
        text = (
            f"<p>{len(entries)} recording(s): an offset estimated for {len(given)}, abstained on "
            f"{len(entries) - len(given)}; median uncertainty {_num(median, '.1f')} ms. "
            "<code>offset_ms</code> is how much later the other clock reads than the reference at the start.</p>"
        )
        rows = [
            (
                e["recording"],
                _num(e.get("offset_ms"), ".1f"),
                _num(e.get("drift_ppm"), ".1f"),
                _num(e.get("uncertainty_ms"), ".1f"),
                "yes" if e.get("abstained") else "no",
            )
            for e in entries[:MAX_TABLE_ROWS]
        ]
        more = f" (the first {MAX_TABLE_ROWS} of {len(entries)})" if len(entries) > MAX_TABLE_ROWS else ""
        return (
            text
            + self.fig(
                lambda p: figures.alignment_figure(entries, p),
                "Estimated clock offset of every recording, with its uncertainty; crosses: abstained.",
            )
            + f"<details><summary>Every recording{_e(more)}</summary>"
            + _table(("recording", "offset ms", "drift ppm", "uncertainty ms", "abstained"), rows, (1, 2, 3))
            + "</details>"
        )

    # ------------------------------------------------------------------------------------ reproducibility
    def reproducibility(self) -> str:
        result = self.comparison()
        rep = result.get("reproducibility")
        cv = result.get("cv") or {}
        items: list[tuple[str, str]] = []
        if isinstance(rep, Mapping):
            items.append(
                ("command", rep.get("command") or "modalfuse.compare(...) from Python (see the call below)")
            )
            call = rep.get("call") or {}
            items += [
                ("call", ", ".join(f"{k}={v!r}" for k, v in call.items() if k != "params")),
                (
                    "classifier settings",
                    ", ".join(f"{k}={v!r}" for k, v in (call.get("params") or {}).items()) or "defaults",
                ),
                ("seed", str(rep.get("seed"))),
                ("data digest", str(rep.get("data_digest"))),
                ("versions", ", ".join(f"{k} {v}" for k, v in (rep.get("versions") or {}).items())),
                ("platform", str(rep.get("platform"))),
            ]
        items += [
            ("folds", f"{cv.get('kind')} cross-validation, {cv.get('n_folds')} folds, seed {cv.get('seed')}"),
            ("wall time", f"{_seconds(result.get('wall_seconds'))} s"),
            ("sources", ", ".join(self.doc.get("sources") or [])),
        ]
        body = "".join(f"<dt>{_e(k)}</dt><dd><code>{_e(v)}</code></dd>" for k, v in items)
        note = (
            ""
            if isinstance(rep, Mapping)
            else _note(
                "The results hold no reproducibility record (written by an older modalfuse): only the folds are known."
            )
        )
        return f"<dl>{body}</dl>{note}"


def _stat(summary: Mapping[str, Any], key: str, name: str, fmt: str = ".3f") -> str:
    entry = (summary.get(key) or {}).get(name) or {}
    mean, std = entry.get("mean"), entry.get("std")
    if not is_number(mean):
        return "n/a"
    return f"{mean:{fmt}} ± {std:{fmt}}" if is_number(std) else f"{mean:{fmt}}"


def _nested_table(table: Mapping[str, Any]) -> str:
    """A table of ``{row: {column: value}}`` (values: numbers or ``{"mean": ...}``), or of ``{row: value}``."""
    columns = list(dict.fromkeys(c for v in table.values() if isinstance(v, Mapping) for c in v))

    def cell(value: Any) -> str:
        if isinstance(value, Mapping):
            value = value.get("mean")
        return _num(value)

    if not columns:
        return _table(("", "value"), [(k, cell(v)) for k, v in table.items()], (1,))
    rows = [
        (k, *(cell((v or {}).get(c)) for c in columns)) for k, v in table.items() if isinstance(v, Mapping)
    ]
    return _table(("", *columns), rows, tuple(range(1, len(columns) + 1)))


def _title(doc: Mapping[str, Any]) -> str:
    result = doc.get("comparison") or {}
    name = result.get("dataset") or (result.get("data") or {}).get("name") or "results"
    return f"modalfuse report: {name}"


def render_html(doc: Mapping[str, Any]) -> str:
    """The report of loaded results (see :func:`modalfuse.report.load_results`) as one HTML document.

    Every section is there; a part the results lack (or hold in a form this version cannot read) is
    replaced by a note saying so.
    """
    import modalfuse

    builder = _Builder(doc)
    parts = []
    for section_id, title in SECTIONS:
        body, note = part(title, getattr(builder, section_id))
        parts.append(
            f'<section id="{section_id}"><h2>{_e(title)}</h2>{body if note is None else _note(note)}</section>'
        )
    result = doc.get("comparison") or {}
    cv = result.get("cv") or {}
    subtitle = " · ".join(
        x
        for x in (
            f"{result['n_rows']} rows" if is_number(result.get("n_rows")) else "",
            f"{len(result.get('classes') or [])} classes" if result.get("classes") else "",
            f"{cv.get('kind')} cross-validation, {cv.get('n_folds')} folds" if cv else "",
            f"grouped by {cv['groups']}" if cv.get("groups") else "",
        )
        if x
    )
    toc = "".join(f'<li><a href="#{sid}">{_e(t)}</a></li>' for sid, t in SECTIONS)
    notes = "".join(_note(n) for n in doc.get("notes") or [])
    title = _title(doc)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="modalfuse {_e(modalfuse.__version__)}">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
        f'<header><h1>{_e(title)}</h1><p class="muted">{_e(subtitle)}</p>{notes}'
        f'<nav aria-label="Sections"><ol>{toc}</ol></nav></header>'
        + "".join(parts)
        + "</main></body></html>\n"
    )
