"""The `modalfuse` command, run as a user would: on real files, checking what it prints and writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from modalfuse.cli import app

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_help_runs_as_a_real_process() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "modalfuse.cli", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("inspect", "evaluate", "fit", "predict", "retrieve", "demo"):
        assert command in out.stdout


def test_inspect_json_reports_schema_missing_counts_and_problems(csv_path: Path) -> None:
    code, out = run("inspect", str(csv_path), "--label", "y", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["rows"] == 72
    assert doc["schema"] == {
        "image": "image",
        "audio": "audio",
        "text": "text",
        "num": "numeric",
        "colour": "categorical",
        "speaker": "categorical",
    }
    assert doc["inputs"]["image"]["missing"] == 2 and doc["inputs"]["audio"]["missing"] == 2
    assert doc["classes"] == {"a": 24, "b": 24, "c": 24}
    assert {(p["row"], p["column"]) for p in doc["problems"]} >= {(1, "image"), (2, "audio"), (3, "text")}


def test_inspect_table_output(csv_path: Path) -> None:
    code, out = run("inspect", str(csv_path), "--label", "y")
    assert code == 0, out
    assert "tabular" in out and "num, colour, speaker" in out
    assert "row 1, column 'image': empty cell" in out


def test_evaluate_writes_the_documented_json(csv_path: Path, tmp_path: Path) -> None:
    out_json = tmp_path / "res.json"
    code, out = run(
        "evaluate",
        str(csv_path),
        "--label",
        "y",
        "--groups",
        "speaker",
        "--cv",
        "3",
        "--fusion",
        "late:mean,early",
        "--epochs",
        "2",
        "--min-steps",
        "20",
        "--json",
        str(out_json),
    )
    assert code == 0, out
    doc = json.loads(out_json.read_text())
    assert doc["cv"]["n_folds"] == 3 and doc["cv"]["groups"] == "speaker"
    names = set(doc["strategies"])
    assert names == {
        "unimodal:image",
        "unimodal:audio",
        "unimodal:text",
        "unimodal:tabular",
        "linear",
        "late:mean",
        "early",
    }
    for entry in doc["strategies"].values():
        assert len(entry["accuracy"]["folds"]) == 3
        assert 0.0 <= entry["accuracy"]["mean"] <= 1.0 and entry["fit_seconds"] > 0
        assert "f1_macro" in entry
    assert "late:mean" in out and "unimodal:audio" in out


def test_fit_then_predict_round_trip(csv_path: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    code, out = run(
        "fit",
        str(csv_path),
        "--label",
        "y",
        "--fusion",
        "late:stacking",
        "--epochs",
        "2",
        "--min-steps",
        "20",
        "--out",
        str(model),
    )
    assert code == 0, out
    assert sorted(p.name for p in model.iterdir()) == ["model.json", "weights.safetensors"]
    # predict on a copy of the table without its label column, in another folder (paths stay relative)
    frame = pd.read_csv(csv_path).drop(columns=["y"])
    frame["image"] = [None if pd.isna(v) else str(csv_path.parent / v) for v in frame["image"]]
    frame["audio"] = [None if pd.isna(v) else str(csv_path.parent / v) for v in frame["audio"]]
    new = tmp_path / "new" / "rows.csv"
    new.parent.mkdir()
    frame.to_csv(new, index=False)
    preds = tmp_path / "pred.csv"
    code, out = run("predict", str(model), str(new), "--out", str(preds))
    assert code == 0, out
    got = pd.read_csv(preds)
    assert list(got.columns) == ["row", "prediction", "p_a", "p_b", "p_c"]
    assert len(got) == 72 and got["row"].tolist() == list(range(72))
    assert got[["p_a", "p_b", "p_c"]].sum(axis=1).round(6).eq(1.0).all()
    truth = pd.read_csv(csv_path)["y"]
    assert (got["prediction"] == truth).mean() > 0.6  # strongly separable classes


def test_predict_with_a_modality_column_absent(csv_path: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    assert (
        run(
            "fit",
            str(csv_path),
            "--label",
            "y",
            "--fusion",
            "late:mean",
            "--epochs",
            "1",
            "--min-steps",
            "20",
            "--out",
            str(model),
        )[0]
        == 0
    )
    frame = pd.read_csv(csv_path).drop(columns=["audio", "y"])
    new = csv_path.parent / "no_audio.csv"
    frame.to_csv(new, index=False)
    code, out = run("predict", str(model), str(new), "--out", str(tmp_path / "p.csv"))
    assert code == 0, out
    assert len(pd.read_csv(tmp_path / "p.csv")) == 72


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inspect", "nope.csv", "--label", "y"], "no such file, and not a built-in dataset"),
        (["evaluate", "{csv}", "--label", "nolabel"], "label column 'nolabel' is not in the table"),
        (["evaluate", "{csv}", "--label", "y", "--cv", "loso"], "--cv loso needs groups"),
        (["inspect", "{csv}", "--label", "y", "--modality", "nosuch=text"], "nosuch"),
        (["evaluate", "{csv}", "--label", "y", "--fusion", "magic"], "unknown fusion 'magic'"),
    ],
)
def test_bad_input_gives_a_clear_error(csv_path: Path, args: list[str], message: str) -> None:
    code, out = run(*[a.replace("{csv}", str(csv_path)) for a in args])
    assert code == 2
    assert message in out
