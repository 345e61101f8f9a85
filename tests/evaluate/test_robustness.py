"""Robustness curves: strategies trained once per fold, scored on corrupted test rows; areas, relative and
effective robustness against the run's own baselines; the table, the figure and the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import modalfuse as mf
from modalfuse.cli import app
from modalfuse.evaluate import curve_area, format_robustness, plot_robustness

FAST = {"epochs": 2, "min_steps": 20, "inner_folds": 2, "n_threads": 1}
CURVES = ["text:missing=0,0.5,1", "tabular:noise=0.5,2@0.5"]


@pytest.fixture(scope="module")
def small_csv(table, tmp_path_factory) -> Path:
    """The synthetic table's text and tabular columns as a CSV (quick networks)."""
    path = tmp_path_factory.mktemp("rob") / "small.csv"
    table.frame[["text", "num", "colour"]].assign(y=table.y).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def result(small_csv) -> dict:
    small = mf.read_table(small_csv, label="y")
    return mf.robustness(small, CURVES, fusion="late:weighted", cv=2, seed=0, **FAST)


def _folds(result: dict, name: str, curve: str, level: str, metric: str = "accuracy") -> list[float]:
    return result["robustness"][name][curve][level][metric]["folds"]


def test_every_strategy_is_fitted_once_per_fold_and_scored_at_every_level(result) -> None:
    names = {"unimodal:text", "unimodal:tabular", "linear", "late:weighted"}
    assert set(result["robustness"]) == names and not result["errors"]
    assert result["timing"]["fits"] == dict.fromkeys(names, 2)  # never retrained per level
    assert result["timing"]["n_levels"] == 5
    assert set(result["corruptions"]) == {"text:missing", "tabular:noise@0.5"}
    entry = result["robustness"]["late:weighted"]["tabular:noise@0.5"]["2"]["f1_macro"]
    assert set(entry) >= {"mean", "std", "folds"} and len(entry["folds"]) == 2
    assert result["baselines"] == {"unimodal": ["unimodal:text", "unimodal:tabular"], "late": "late:weighted"}
    json.dumps(result)  # the documented JSON


def test_levels_do_what_they_say(result) -> None:
    for name in result["robustness"]:  # rate 0 changes nothing
        assert _folds(result, name, "text:missing", "0") == result["clean"][name]["accuracy"]["folds"]
    # the tabular model does not read the text: removing it changes nothing for it
    for level in ("0.5", "1"):
        assert _folds(result, "unimodal:tabular", "text:missing", level) == _folds(
            result, "unimodal:tabular", "text:missing", "0"
        )
    # without any text the text model predicts its training prior: chance level on balanced classes
    assert result["robustness"]["unimodal:text"]["text:missing"]["1"]["accuracy"]["mean"] < 0.5
    assert result["clean"]["unimodal:text"]["accuracy"]["mean"] > 0.9
    late = [result["robustness"]["late:weighted"]["text:missing"][k]["accuracy"]["mean"] for k in ("0", "1")]
    assert late[1] < late[0]
    # with no text in any row, late fusion is the tabular model alone: the same predictions
    assert _folds(result, "late:weighted", "text:missing", "1") == pytest.approx(
        _folds(result, "unimodal:tabular", "text:missing", "1")
    )


def test_area_relative_and_effective_robustness_follow_their_definitions(result) -> None:
    curve, levels = "text:missing", ["0", "0.5", "1"]
    for name in result["robustness"]:
        per_fold = [curve_area([_folds(result, name, curve, k)[f] for k in levels]) for f in range(2)]
        assert result["area"][name][curve]["accuracy"]["folds"] == pytest.approx(per_fold)
    mine = result["area"]["late:weighted"][curve]["accuracy"]
    ref = result["area"]["unimodal:text"][curve]["accuracy"]
    vs = result["relative_robustness"]["late:weighted"][curve]["accuracy"]["vs"]["unimodal:text"]
    assert vs["mean_diff"] == pytest.approx(mine["mean"] - ref["mean"])
    bases = [
        result["area"][b][curve]["accuracy"]["mean"]
        for b in ("unimodal:text", "unimodal:tabular", "late:weighted")
    ]
    normalized = result["relative_robustness"]["linear"][curve]["accuracy"]["normalized"]
    area = result["area"]["linear"][curve]["accuracy"]["mean"]
    assert normalized == pytest.approx((area - min(bases)) / (max(bases) - min(bases)))

    def drops(name: str) -> list[float]:
        clean = result["clean"][name]["accuracy"]["folds"]
        return [np.mean([_folds(result, name, curve, k)[f] for k in levels]) - clean[f] for f in range(2)]

    eff = result["effective_robustness"]["unimodal:tabular"][curve]["accuracy"]
    assert eff["drop"]["folds"] == pytest.approx(drops("unimodal:tabular"))
    expected = np.mean(np.subtract(drops("unimodal:tabular"), drops("late:weighted")))
    assert eff["vs"]["late:weighted"]["mean_diff"] == pytest.approx(expected)
    assert expected > 0  # the tabular model loses nothing when the text goes; late fusion loses a little


def test_curve_area() -> None:
    assert curve_area([1.0]) == 1.0
    assert curve_area([1.0, 0.0]) == 0.5
    assert curve_area([1.0, 1.0, 0.0]) == pytest.approx(0.75)


def test_the_table_and_the_figure(result, tmp_path: Path) -> None:
    text = format_robustness(result)
    assert "text:missing (share of the rows), accuracy:" in text
    assert "effective vs late:weighted" in text and "unimodal:tabular" in text
    svg = tmp_path / "curves.svg"
    plot_robustness(result, svg, metric="f1_macro")
    content = svg.read_text()
    assert content.startswith("<?xml") and "text:missing" in content and "tabular:noise@0.5" in content


def test_the_same_rows_predicted_twice_run_the_networks_once(table, monkeypatch) -> None:
    from modalfuse.fusion import _late

    small = mf.read_table(table.frame[["text", "num"]].assign(y=table.y), label="y")
    with mf.using_cache(mf.Cache()):
        uni = mf.MultimodalClassifier(fusion="unimodal:text", seed=0, **FAST).fit(small)
        late = mf.MultimodalClassifier(fusion="late:product", seed=0, **FAST).fit(small)
    assert uni.fusion_.models_["text"] is late.fusion_.models_["text"]  # shared through the cache
    calls = []
    real = _late.predict_logits
    monkeypatch.setattr(_late, "predict_logits", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = uni.predict_proba(small)
    n_first = len(calls)
    assert n_first == 2  # the text input's two cross-fitted networks
    late.predict_proba(small)
    assert len(calls) == n_first + 2  # the tabular networks only: the text ones were remembered
    np.testing.assert_array_equal(uni.predict_proba(small), first)


# ----------------------------------------------------------------------------------------------- the command
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--corrupt", "text:nosie=1"], r"error: unknown corruption 'nosie'.*corruptions of text inputs"),
        (["--corrupt", "txt:missing=0.5"], r"error: unknown input 'txt'; did you mean 'text'\?"),
        (["--corrupt", "text:missing=2"], r"error: corruption 'text:missing=2': level 2 is out of range"),
        (
            ["--corrupt", "text:missing=1", "--plot", "out.txt"],
            r"error: --plot out.txt: give a file ending in",
        ),
        (["--corrupt", "text:missing=1", "--metric", "auc"], r"error: unknown metric 'auc'"),
        (["--corrupt", "text:missing=1", "--missing", "fil"], r"error: unknown missing-input policy 'fil'"),
        (
            ["--corrupt", "text:missing=1", "--train-corruption", "tabular:noise=500"],
            r"error: corruption 'tabular:noise=500': level 500 is out of range",
        ),
    ],
)
def test_bad_arguments_stop_before_training_with_one_line(small_csv, args, message) -> None:
    result = CliRunner().invoke(app, ["robustness", str(small_csv), "--label", "y", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and pd.Series(lines).str.contains(message).all(), result.output
    assert "network" not in result.output  # nothing was trained


@pytest.mark.slow
def test_the_command_writes_json_and_a_figure(small_csv, tmp_path: Path) -> None:
    """The command end to end (trains its strategies again: slow)."""
    out, svg = tmp_path / "r.json", tmp_path / "r.svg"
    result = CliRunner().invoke(
        app,
        [
            "robustness",
            str(small_csv),
            "--label",
            "y",
            "--cv",
            "2",
            "--fusion",
            "early",
            "--corrupt",
            "text:missing=0.5,1",
            "--epochs",
            "2",
            "--min-steps",
            "20",
            "--json",
            str(out),
            "--plot",
            str(svg),
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert set(doc["robustness"]["early"]["text:missing"]) == {"0.5", "1"}
    assert doc["baselines"]["late"] == "late:weighted"  # added as the late-fusion reference
    assert "late:weighted" in doc["robustness"]
    assert "effective vs late:weighted" in result.stdout and svg.exists()
