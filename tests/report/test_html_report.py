"""The HTML and Markdown reports: content from a real comparison, no external URL, bad inputs as one-line
errors or notes, size, and the page rendered in a real headless Chromium with the network off."""

from __future__ import annotations

import copy
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import modalfuse as mf
from modalfuse.cli import app
from modalfuse.report import ComparisonResult, load_results, render_html, write_report
from modalfuse.report._html import SECTIONS

EVAL = {"epochs": 2, "min_steps": 20, "batch_size": 16, "inner_folds": 2, "n_threads": 1}
SECTION_IDS = [s for s, _ in SECTIONS]
#: Sections a comparison with explanations fills (robustness and alignment need their own results).
FILLED = ["data", "strategies", "folds", "groups", "confusion", "paired", "shapley", "reproducibility"]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def result(table) -> ComparisonResult:
    """A real comparison, grouped by speaker, with modality Shapley values in every fold."""
    return mf.compare(table, fusion="late:mean,early", cv=3, groups="speaker", explain=["early"], **EVAL)


@pytest.fixture(scope="module")
def results_json(result, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "results.json"
    path.write_text(json.dumps(result))
    return path


@pytest.fixture(scope="module")
def report(result, tmp_path_factory) -> Path:
    return result.to_html(tmp_path_factory.mktemp("report") / "report.html")


class _Refs(HTMLParser):
    """Every tag and every attribute that can load something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if (
                name in ("src", "href", "xlink:href", "srcset", "action", "poster", "data")
                and value is not None
            ):
                self.refs.append((tag, name, value))


def _parse(text: str) -> _Refs:
    parser = _Refs()
    parser.feed(text)
    return parser


# ------------------------------------------------------------------------------------------ the results
def test_compare_records_data_groups_explanations_and_reproducibility(result, table) -> None:
    assert isinstance(result, dict) and json.loads(json.dumps(result)) == dict(result)
    data = result["data"]
    assert data["n_rows"] == len(table) and set(data["inputs"]) == {"image", "audio", "text", "tabular"}
    assert data["problems"]["count"] == len(table.problems) > 0 and len(data["digest"]) == 32
    early = result["strategies"]["early"]
    assert sum(g["n"] for g in early["groups"].values()) == len(table)  # every row once, in its group
    right = np.array(early["confusion_matrix"]).trace()
    assert sum(g["accuracy"] * g["n"] for g in early["groups"].values()) == pytest.approx(right)
    explanation = early["explanation"]
    assert len(explanation["per_fold"]) == 3 and explanation["inputs"] == data_inputs(result)
    for fold in explanation["per_fold"]:
        assert fold["method"] == "exact" and fold["n_coalitions"] == 16
        assert fold["accuracy"] == pytest.approx(
            early["accuracy"]["folds"][explanation["per_fold"].index(fold)]
        )
    assert "explanation" not in result["strategies"]["late:mean"]  # only the strategies named
    rep = result["reproducibility"]
    assert rep["seed"] == 0 and rep["data_digest"] == data["digest"] and rep["versions"]["numpy"]


def data_inputs(result) -> list[str]:
    return list(result["strategies"]["early"]["explanation"]["per_fold"][0]["inputs"])


def test_data_digest_follows_content_not_place(table, tmp_path) -> None:
    from modalfuse.report import table_digest

    assert table_digest(table) == table_digest(table.take(np.arange(len(table))))
    assert table_digest(table) != table_digest(table.take(np.arange(len(table) - 1)))


# ---------------------------------------------------------------------------------------------- the page
def test_report_has_every_section_and_figure_and_no_url(report, result) -> None:
    text = report.read_text(encoding="utf-8")
    parsed = _parse(text)
    assert not {"script", "link", "img", "iframe", "object", "embed", "base"} & set(parsed.tags)
    assert parsed.refs, "the table of contents links to the sections"
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    for tag, attr, value in parsed.refs:  # a fragment of this page, or inline data
        assert value.startswith(("#", "data:image/png;base64,")), f"<{tag} {attr}={value!r}> leaves the page"
        assert not value.startswith("#") or value[1:] in ids, f"{value} points nowhere"
    assert not re.search(r"(https?:|ftp:|file:|//[a-z0-9])", text), "a URL"
    assert "@import" not in text and "url(" not in re.sub(r"url\(#[\w-]+\)", "", text)
    for section in FILLED:
        body = re.search(rf'<section id="{section}">(.*?)</section>', text, re.S).group(1)
        assert 'class="note"' not in body, f"section {section} is a note"
    assert text.count("<figure") == text.count("<svg") == 7
    assert "Recommendation: " in text and result["recommendation"]["strategy"] in text
    assert "early" in re.search(r'<section id="shapley">(.*?)</section>', text, re.S).group(1)
    for section in ("robustness", "alignment"):
        assert re.search(rf'<section id="{section}"><h2>[^<]+</h2><p class="note">no {section}', text)


def test_markdown_gives_the_tables(result) -> None:
    md = result.to_markdown()
    assert md.startswith("# modalfuse report")
    assert f"**Recommendation: {result['recommendation']['strategy']}.**" in md
    assert "| strategy | accuracy | 95% interval |" in md and "| early" in md
    assert "## Modality Shapley values" in md and "Modality Shapley values of early" in md
    assert f"data digest: `{result['data']['digest']}`" in md


def _tiny_result() -> dict[str, Any]:
    """A comparison as an older modalfuse (or the evaluation functions) wrote it: no optional parts."""
    return {
        "n_rows": 6,
        "classes": ["a", "b"],
        "cv": {"kind": "stratified", "n_folds": 2, "seed": 0},
        "strategies": {
            "linear": {"accuracy": {"mean": 0.5, "std": 0.0, "folds": [0.5, 0.5]}},
            "broken": {"error": "TrainingError: no rows", "fold": 0},
        },
        "best": {"strategy": "linear"},
    }


def test_results_without_optional_parts_give_a_report_with_notes(tmp_path) -> None:
    text = render_html(load_results([_tiny_result()]))
    assert "The results hold no data summary" in text and "no per-group results" in text
    assert "no Shapley values in the results" in text and "no reproducibility record" in text
    assert "TrainingError: no rows" in text  # the failed strategy is listed
    assert text.count("<svg") == 2  # strategies and folds


def test_malformed_parts_become_notes_never_tracebacks() -> None:
    doc = copy.deepcopy(_tiny_result())
    doc["strategies"]["linear"]["explanation"] = {"inputs": ["a"], "mean_abs_phi": "oops"}
    doc["strategies"]["linear"]["groups"] = ["not", "a", "mapping"]
    doc["paired_vs_baseline"] = {"x": 3}
    doc["best"]["baseline"] = "linear"
    doc["data"] = {"inputs": {"a": "?"}}
    text = render_html(load_results([doc]))
    for section in ("data", "groups", "paired", "shapley"):
        body = re.search(rf'<section id="{section}">(.*?)</section>', text, re.S).group(1)
        assert 'class="note"' in body and "Traceback" not in body


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"strategies": {"x": {"accuracy"',
            "not valid JSON: .* \\(the file ends there: is it truncated\\?\\)",
        ),
        (
            '{"model": "xgboost", "auc": 0.9}',
            "not a modalfuse result: .* top-level keys are \\['model', 'auc'\\]",
        ),
        ("[1, 2, 3]", "not a modalfuse result: .* it holds a JSON list"),
        ("", "the file is empty"),
        ("\x00\xff", "not a text file"),
    ],
)
def test_bad_result_files_are_one_line_errors(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "other.json"
    path.write_text(content, encoding="latin-1")
    with pytest.raises(mf.ModalfuseError, match=message):
        load_results([path])
    code, out = run("report", str(path), "--out", str(tmp_path / "r.html"))
    assert code == 2 and out.startswith("error: ") and out.count("\n") == 1 and str(path) in out
    assert not (tmp_path / "r.html").exists()


def test_cli_report_with_robustness_and_alignment(results_json, tmp_path) -> None:
    robustness = tmp_path / "robustness.json"
    robustness.write_text(
        json.dumps(
            {
                "robustness": {
                    s: {
                        "noise": {
                            str(lv): {"accuracy": {"mean": 0.9 - lv * d, "std": 0.02}} for lv in (0, 1, 2)
                        }
                    }
                    for s, d in (("early", 0.1), ("late:mean", 0.2))
                }
            }
        )
    )
    alignment = tmp_path / "alignment.json"
    alignment.write_text(
        json.dumps(
            [
                {"recording": "r1", "offset_ms": 12.0, "drift_ppm": 3.0, "uncertainty_ms": 2.0},
                {"recording": "r2", "abstained": True},
            ]
        )
    )
    out, md = tmp_path / "r.html", tmp_path / "r.md"
    code, text = run(
        "report", str(results_json), str(robustness), str(alignment), "--out", str(out), "--markdown", str(md)
    )
    assert code == 0, text
    html = out.read_text()
    assert html.count("<svg") == 9  # the comparison's 7, a robustness curve and the offsets
    assert "Accuracy under noise" in html and "abstained on 1" in html
    assert md.read_text().startswith("# modalfuse report")
    again = tmp_path / "robustness-again.json"
    again.write_text(robustness.read_text())
    code, text = run("report", str(robustness), str(again), "--out", str(out))
    assert (
        code == 2
        and "robustness-again.json: holds robustness results" in text
        and "gave them already" in text
    )


def test_evaluate_writes_the_report(csv_path, tmp_path) -> None:
    out, res = tmp_path / "report.html", tmp_path / "res.json"
    args = [
        "evaluate",
        str(csv_path),
        "--label",
        "y",
        "--groups",
        "speaker",
        "--cv",
        "2",
        "--fusion",
        "late:mean",
    ]
    code, text = run(*args, "--epochs", "1", "--min-steps", "20", "--json", str(res), "--report", str(out))
    assert code == 0, text
    assert f"report written to {out}" in text
    doc = json.loads(res.read_text())
    assert doc["reproducibility"]["command"].startswith("modalfuse evaluate ")
    assert "explanation" in doc["strategies"]["late:mean"]  # --report turns the explanations on
    html = out.read_text()
    assert "modalfuse evaluate" in html and "Modality Shapley values of" in html


def test_a_large_comparison_stays_small(tmp_path) -> None:
    """10,000 rows, 5 inputs, 20 classes, 400 groups, 10 folds and 20 strategies all explained: under 2 MB."""
    rng = np.random.default_rng(0)
    inputs = [f"input{i}" for i in range(5)]
    folds = 10

    def stat(values: Any) -> dict[str, Any]:
        return {
            "mean": float(np.mean(values)),
            "std": float(np.std(values)),
            "folds": list(map(float, values)),
        }

    def explanation() -> dict[str, Any]:
        per = {n: stat(rng.random(folds)) for n in inputs}
        pairs = {
            f"{a}*{b}": stat(rng.normal(0, 0.01, folds))
            for i, a in enumerate(inputs)
            for b in inputs[i + 1 :]
        }
        keys = ("present_share", "mean_abs_phi", "mean_abs_phi_log_odds", "mean_phi_true", "loo_drop")
        return {
            "inputs": inputs,
            **{k: dict(per) for k in keys},
            "accuracy_alone": dict(per),
            "interactions": pairs,
            "mean_abs_interactions": pairs,
            "ranking_agrees_folds": [True] * folds,
            "rank_by_shapley": inputs,
            "rank_by_loo": inputs,
            "methods": ["exact"],
            "per_fold": [{"inputs": inputs, "mean_abs_phi": {n: 0.1 for n in inputs}} for _ in range(folds)],
        }

    strategies = {
        f"strategy{i}": {
            "accuracy": stat(rng.random(folds)),
            "f1_macro": stat(rng.random(folds)),
            "fit_seconds": 10.0,
            "predict_seconds": 1.0,
            "confusion_matrix": rng.integers(0, 30, (20, 20)).tolist(),
            "groups": {
                f"g{g}": {"accuracy": float(rng.random()), "n": 25, "fold": g % folds} for g in range(400)
            },
            "explanation": explanation(),
        }
        for i in range(20)
    }
    result = {
        "n_rows": 10_000,
        "classes": [f"class{c}" for c in range(20)],
        "cv": {
            "kind": "group",
            "n_folds": folds,
            "groups": "g",
            "held_out_groups": [[f"g{g}" for g in range(f, 400, folds)] for f in range(folds)],
        },
        "strategies": strategies,
        "best": {"strategy": "strategy0", "baseline": "strategy1", "unimodal": "strategy2"},
        "recommendation": {"strategy": "strategy0", "reason": "it is best"},
        "paired_vs_baseline": {
            n: {"mean_diff": 0.01, "ci95": [0.0, 0.02], "wins": 6, "n": 10} for n in strategies
        },
        "paired": {n: {"mean_diff": 0.01, "ci95": [-0.01, 0.02], "wins": 6, "n": 10} for n in strategies},
        "data": {
            "n_rows": 10_000,
            "inputs": {
                n: {"modality": "text", "columns": [n], "present": 9000, "missing": 1000, "missing_rate": 0.1}
                for n in inputs
            },
            "classes": {f"class{c}": 500 for c in range(20)},
            "problems": {
                "count": 5000,
                "by_column": {n: 1000 for n in inputs},
                "examples": [{"row": i, "column": "input0", "reason": "empty cell"} for i in range(20)],
            },
            "digest": "0" * 32,
        },
    }
    path = write_report(result, tmp_path / "big.html")
    size = path.stat().st_size
    assert size < 2_000_000, f"{size:,} bytes"
    assert path.read_text().count("<svg") == 7


# ------------------------------------------------------------------------------------------ in a browser
def _browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the browser test needs `pip install -e .[test]`"
    )
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return sync_api


def _ink(png: bytes) -> float:
    """Share of the pixels that are not near white."""
    import io

    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    return float((pixels < 200).mean())


def test_the_report_renders_in_chromium_offline(report, tmp_path) -> None:
    sync_api = _browser()
    problems: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            context = browser.new_context(offline=True, viewport={"width": 1100, "height": 900})
            page = context.new_page()
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri(), wait_until="load")
            for section in SECTION_IDS:
                heading = page.locator(f"section#{section} > h2")
                assert heading.is_visible(), section
            figures = page.locator("figure")
            assert figures.count() == 7
            for i in range(figures.count()):
                figure = figures.nth(i)
                box = figure.locator("svg").bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 80, figure.get_attribute(
                    "id"
                )
                assert figure.locator("svg text").count() > 3  # axis labels are text
                assert _ink(figure.screenshot()) > 0.01, figure.get_attribute("id")
            shot = page.screenshot(full_page=True)
            (tmp_path / "report.png").write_bytes(shot)
            assert _ink(shot) > 0.02
            # a narrow window: nothing wider than the screen but the scrolling tables
            page.set_viewport_size({"width": 360, "height": 800})
            assert page.evaluate("document.documentElement.scrollWidth") <= 361
            # printed
            page.emulate_media(media="print")
            pdf = page.pdf(format="A4")
            assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 3
        finally:
            browser.close()
    assert problems == []
    assert requests == [report.as_uri()]


def test_a_benchmark_file_reports_its_comparison(tmp_path) -> None:
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"benchmark": "x", "modalfuse": _tiny_result(), "reference": {}}))
    doc = load_results([bench])
    assert doc["comparison"]["n_rows"] == 6 and doc["sources"] == ["bench.json"]
    assert "linear" in render_html(doc)
