"""The `modalfuse` command, run as a user would: on real files, checking what it prints and writes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import modalfuse as mf
from modalfuse.cli import app

runner = CliRunner()
FAST = ("--epochs", "1", "--min-steps", "20")


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def run3(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr (what a user sees on each stream)."""
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


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


# ------------------------------------------------------------------------------------------ misuse


@pytest.fixture(scope="module")
def model_dir(table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small late:mean model of the synthetic table, saved as ``fit`` saves it."""
    import modalfuse as mf

    clf = mf.MultimodalClassifier(fusion="late:mean", epochs=1, min_steps=20, inner_folds=2, n_threads=1)
    return clf.fit(table).save(tmp_path_factory.mktemp("models") / "late")


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to train a model fails the test: misuse must be caught before training."""
    from modalfuse.estimator import MultimodalClassifier

    def fit(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a model was trained before the mistake was reported")

    monkeypatch.setattr(MultimodalClassifier, "fit", fit)


def _paths(csv_path: Path, model_dir: Path, tmp_path: Path) -> dict[str, str]:
    not_a_model = tmp_path / "results"
    not_a_model.mkdir()
    (not_a_model / "notes.txt").write_text("mine")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    other = tmp_path / "other.csv"
    pd.DataFrame({"foo": [1, 2], "bar": ["a", "b"]}).to_csv(other, index=False)
    return {
        "{csv}": str(csv_path),
        "{model}": str(model_dir),
        "{folder}": str(not_a_model),
        "{file}": str(a_file),
        "{other}": str(other),
        "{tmp}": str(tmp_path),
        "{nowhere}": str(tmp_path / "nowhere"),
    }


MISUSE = [
    (["inspect", "nope.csv", "--label", "y"], "no such file, and not a built-in dataset"),
    (["inspect", "av-digits-smple"], "did you mean 'av-digits-sample'?"),
    (["evaluate", "{csv}", "--label", "nolabel"], "label column 'nolabel' is not in the table"),
    (["evaluate", "{csv}", "--label", "y", "--cv", "loso"], "--cv loso needs groups"),
    (["evaluate", "{csv}", "--label", "y", "--cv", "banana"], "cv='banana'"),
    (["inspect", "{csv}", "--label", "y", "--modality", "nosuch=text"], "nosuch"),
    (["inspect", "{csv}", "--label", "y", "--modality", "num=picture"], "unknown modality 'picture'"),
    (["evaluate", "{csv}", "--label", "y", "--fusion", "magic"], "unknown fusion 'magic'"),
    (
        ["evaluate", "{csv}", "--label", "y", "--fusion", "unimodal:Text"],
        "unknown input 'Text'; did you mean 'text'?",
    ),
    (["evaluate", "{csv}", "--label", "y", "--fusion", "late:median"], "did you mean 'late:mean'?"),
    (
        ["evaluate", "{csv}", "--label", "y", "--encoder", "audio=mfc"],
        "unknown encoder 'mfc'; did you mean 'mfcc'?",
    ),
    (
        ["evaluate", "{csv}", "--label", "y", "--encoder", "sound=mfcc"],
        "unknown input, column or modality 'sound'",
    ),
    (["evaluate", "{csv}", "--label", "y", "--json", "{folder}"], "--json"),
    (
        ["fit", "{csv}", "--label", "y", "--fusion", "late:median", "--out", "{nowhere}"],
        "unknown fusion 'late:median'",
    ),
    (["fit", "{csv}", "--label", "y", "--fusion", "all", "--out", "{nowhere}"], "fit takes one strategy"),
    (
        ["fit", "{csv}", "--label", "y", "--fusion", "unimodal", "--out", "{nowhere}"],
        "fit takes one strategy",
    ),
    (["fit", "{csv}", "--label", "y", "--fusion", "joint", "--out", "{nowhere}"], "fit takes one strategy"),
    (["fit", "{csv}", "--label", "y", "--out", "{folder}"], "exists and is not a saved modalfuse model"),
    (["fit", "{csv}", "--label", "y", "--out", "{file}"], "exists and is a file"),
    (["fit", "{csv}", "--out", "{nowhere}"], "the table has no label: pass --label COLUMN"),
    (["fit", "{csv}", "--label", "y"], "Missing option '--out'"),
    (["predict", "{nowhere}", "{csv}", "--out", "{tmp}/p.csv"], "no model.json"),
    (["predict", "{model}", "{other}", "--out", "{tmp}/p.csv"], "has none of the model's input columns"),
    (["predict", "{model}", "{csv}", "--out", "{tmp}/p.csv", "--id", "ident"], "unknown column 'ident'"),
    (["predict", "{model}", "{csv}", "--out", "{folder}"], "is a folder"),
    (
        ["retrieve", "{model}", "{csv}", "--from", "audio", "--to", "image", "--out", "{tmp}/m.csv"],
        "no shared space",
    ),
    (["evaluate", "av-digits-hard", "--data-root", "{nowhere}"], "AV-Digits data not found under root="),
    (["datasets", "--download", "mnist"], "unknown dataset 'mnist'"),
    (["datasets", "--download", "av-digits-sample"], "ships with modalfuse: nothing to download"),
    (["demo", "--out", "{file}"], "--out"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["--bogus"], "No such option: --bogus"),
]


@pytest.mark.parametrize(
    ("args", "message"), MISUSE, ids=[" ".join(a[:2]) + f" {i}" for i, (a, _) in enumerate(MISUSE)]
)
def test_misuse_gives_one_error_line_and_exit_2(
    csv_path: Path, model_dir: Path, tmp_path: Path, no_training: None, args: list[str], message: str
) -> None:
    paths = _paths(csv_path, model_dir, tmp_path)
    for key, value in paths.items():
        args = [a.replace(key, value) for a in args]
    code, stdout, stderr = run3(*args)
    assert code == 2, stdout + stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], stderr
    assert [line for line in lines if line.startswith("error")] == lines[-1:]
    assert "Traceback" not in stdout + stderr


def test_debug_shows_the_traceback_of_a_misuse() -> None:
    cmd = [sys.executable, "-m", "modalfuse.cli"]
    plain = subprocess.run([*cmd, "inspect", "nope.csv"], capture_output=True, text=True)
    assert (
        plain.returncode == 2
        and plain.stderr.startswith("error: nope.csv")
        and "Traceback" not in plain.stderr
    )
    debug = subprocess.run([*cmd, "--debug", "inspect", "nope.csv"], capture_output=True, text=True)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr and "OptionError: nope.csv" in debug.stderr


def test_version_matches_the_installed_package() -> None:
    from importlib.metadata import version

    out = subprocess.run(
        [sys.executable, "-m", "modalfuse.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"modalfuse {version('modalfuse')}"


def test_fusions_shows_whole_plain_first_sentences() -> None:
    code, out = run("fusions")
    assert code == 0
    lines = dict(line.split(None, 1) for line in out.strip().splitlines())
    assert lines["late"] == (
        "Late fusion of per-input models; method is one of mean, weighted, stacking, product or confidence."
    )
    assert lines["attention"].endswith("(see AttentionHead).")
    for name, text in lines.items():
        assert text.endswith("."), name
        assert "`" not in text and ":class:" not in text, name


def test_a_warning_is_printed_once_as_a_note(csv_path: Path) -> None:
    code, _stdout, stderr = run3("inspect", str(csv_path), "--label", "y", "--modality", "num=audio")
    assert code == 0, stderr
    note = "column 'num' (audio) is missing in every row and is not used"
    assert stderr.count(note) == 1, stderr
    assert "UserWarning" not in stderr and "warnings.warn" not in stderr and ".py:" not in stderr


def test_evaluate_exits_1_and_says_why_when_every_strategy_failed(
    csv_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modalfuse.fusion._late import UnimodalFusion

    def broken(self, *args, **kwargs):
        raise mf.TrainingError("training made no optimiser step (simulated)")

    monkeypatch.setattr(UnimodalFusion, "fit", broken)
    code, stdout, stderr = run3(
        "evaluate", str(csv_path), "--label", "y", "--cv", "2", "--fusion", "unimodal:image", *FAST
    )
    assert code == 1
    assert "unimodal:image" in stdout and "failed in fold 0" in stdout
    last = stderr.strip().splitlines()[-1]
    assert last == (
        "error: every strategy failed: unimodal:image (fold 0): TrainingError: training made no optimiser "
        "step (simulated)"
    )


def test_an_encoder_of_another_modality_stops_before_training(csv_path: Path) -> None:
    code, stdout, stderr = run3(
        "evaluate", str(csv_path), "--label", "y", "--fusion", "unimodal:image", "--encoder", "image=mfcc"
    )
    assert code == 2 and stdout == ""
    assert stderr.strip().splitlines()[-1] == (
        "error: --encoder image=mfcc: 'image' is image, but 'mfcc' encodes audio (encoders for image: "
        "efficientnet-lite0, hog, image-cnn, pixels)"
    )


def test_files_keep_the_users_umask(csv_path: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        model = tmp_path / "model"
        code, out = run(
            "fit", str(csv_path), "--label", "y", "--fusion", "unimodal:tabular", *FAST, "--out", str(model)
        )
        assert code == 0, out
        res = tmp_path / "res.json"
        code, out = run(
            "evaluate",
            str(csv_path),
            "--label",
            "y",
            "--cv",
            "2",
            "--fusion",
            "unimodal:tabular",
            *FAST,
            "--json",
            str(res),
        )
        assert code == 0, out
    finally:
        os.umask(old)
    assert stat.S_IMODE(model.stat().st_mode) == 0o755
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in model.iterdir()} == {
        "model.json": 0o644,
        "weights.safetensors": 0o644,
    }
    assert stat.S_IMODE(res.stat().st_mode) == 0o644
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


# ------------------------------------------------------------------------------------------ predict


def _rows_to_predict(csv_path: Path, folder: Path) -> pd.DataFrame:
    """The synthetic rows without the label, with absolute media paths, in a new order, with an id."""
    frame = pd.read_csv(csv_path).drop(columns=["y"])
    for col in ("image", "audio"):
        frame[col] = [None if pd.isna(v) else str(csv_path.parent / v) for v in frame[col]]
    frame.insert(0, "ident", [f"id-{i:03d}" for i in range(len(frame))])
    folder.mkdir(parents=True, exist_ok=True)
    return frame.iloc[::-1].reset_index(drop=True)


def test_predict_carries_an_id_and_keeps_the_input_order(
    model_dir: Path, csv_path: Path, tmp_path: Path
) -> None:
    import modalfuse as mf

    frame = _rows_to_predict(csv_path, tmp_path / "new")
    new = tmp_path / "new" / "rows.csv"
    frame.to_csv(new, index=False)
    preds = tmp_path / "pred.csv"
    code, _stdout, stderr = run3("predict", str(model_dir), str(new), "--out", str(preds), "--id", "ident")
    assert code == 0, stderr
    got = pd.read_csv(preds)
    assert list(got.columns) == ["ident", "prediction", "p_a", "p_b", "p_c"]
    assert got["ident"].tolist() == frame["ident"].tolist()  # id-071 first: the input's order
    clf = mf.MultimodalClassifier.load(model_dir)
    expected = clf.predict_proba(mf.read_table(new, modalities={"ident": "ignore"}))
    np.testing.assert_allclose(got[["p_a", "p_b", "p_c"]].to_numpy(), expected, atol=1e-6)
    assert "input column" not in stderr and "no category" not in stderr  # same columns: no drift


def test_predict_reports_drift_on_stderr_and_lists_it_with_problems(
    model_dir: Path, csv_path: Path, tmp_path: Path
) -> None:
    frame = _rows_to_predict(csv_path, tmp_path / "new").drop(columns=["audio"])
    frame["colour"] = frame["colour"].replace({"red": "crimson"})
    n_crimson = int((frame["colour"] == "crimson").sum())
    frame["num"] = frame["num"].astype(object)
    frame.loc[[0, 1], "num"] = "twelve"
    frame["shop"] = "north"
    new = tmp_path / "new" / "drift.csv"
    frame.to_csv(new, index=False)
    problems = tmp_path / "problems.csv"
    code, _stdout, stderr = run3(
        "predict",
        str(model_dir),
        str(new),
        "--out",
        str(tmp_path / "p.csv"),
        "--id",
        "ident",
        "--problems",
        str(problems),
    )
    assert code == 0, stderr
    assert "1 input column(s) absent, treated as missing in every row: 'audio'" in stderr
    assert (
        f"column 'colour': 1 value(s) the model has no category for, in {n_crimson} row(s) ('crimson')"
        in stderr
    )
    assert "column(s) the model does not use, ignored: 'shop'" in stderr
    assert (
        "unusable cell(s) treated as missing (first: row 0, column 'num': not a number: 'twelve')" in stderr
    )
    listed = pd.read_csv(problems)
    assert list(listed.columns) == ["kind", "column", "row", "value", "count", "detail"]
    kinds = listed.groupby("kind")["column"].apply(list).to_dict()
    assert kinds["missing column"] == ["audio"] and kinds["extra column"] == ["shop"]
    unseen = listed[listed["kind"] == "unseen category"]
    assert unseen[["column", "value", "count"]].values.tolist() == [["colour", "crimson", n_crimson]]
    bad = listed[listed["kind"] == "unusable cell"]
    assert sorted(bad["row"]) == [0, 1] and set(bad["column"]) == {"num"}
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(frame)
