"""Every command the README shows is run here, as written, on small local data in a temporary folder.

The install lines are what ``.ci/run`` runs (checked below); the commands that train (``fit``, ``evaluate``,
``robustness``, the demo) run in the slow tests, the others in the default suite against models fitted
beforehand.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import modalfuse as mf
from conftest import make_frame
from modalfuse.cli import app
from modalfuse.data import av_digits

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
INSTALL = "python3 -m venv .venv && .venv/bin/pip install -c constraints.txt"
TRAINING = ("fit", "evaluate", "demo", "robustness")


def console_lines(text: str) -> list[str]:
    """The command lines of the ``console`` blocks, continuation lines joined, comments kept."""
    lines: list[str] = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        pending = ""
        for raw in block.splitlines():
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1] + " "
                continue
            if (pending + raw).strip():
                lines.append((pending + raw).strip())
            pending = ""
    return lines


def split_commands(line: str) -> list[list[str]]:
    """The commands of one line, split at ``&&`` and ``;`` (comments dropped); a pipe is an error."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    for token in lexer:
        if "|" in token:
            raise AssertionError(f"README line pipes one command into another: {line!r}")
        if token in ("&&", ";"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def readme_commands() -> list[list[str]]:
    """Every ``modalfuse`` command of the README (the first block's install lines excluded)."""
    out = []
    for line in console_lines(README.read_text(encoding="utf-8")):
        out += [cmd for cmd in split_commands(line) if cmd[0] == "modalfuse"]
    return out


def test_the_parser_reads_the_readme_commands() -> None:
    assert split_commands("a x && b 'y z' ; c # note") == [["a", "x"], ["b", "y z"], ["c"]]
    with pytest.raises(AssertionError, match="pipes"):
        split_commands("modalfuse encoders | modalfuse fusions")
    commands = readme_commands()
    assert len(commands) >= 10
    assert {c[1] for c in commands} >= {"inspect", "evaluate", "fit", "predict", "retrieve", "datasets"}


def test_the_install_lines_are_what_ci_runs() -> None:
    first, second = console_lines(README.read_text(encoding="utf-8"))[:2]
    assert first == f"{INSTALL} -e . && .venv/bin/modalfuse demo"
    assert second == f'{INSTALL} -e ".[test]" && .venv/bin/python -m pytest'
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert second in ci  # verbatim, as its own line
    assert ".venv/bin/python -m pytest -m slow -n 0" in ci
    assert ".venv/bin/ruff check src tests benchmarks" in ci
    assert ".venv/bin/ruff format --check src tests benchmarks" in ci


def test_nothing_refers_to_a_design_document_outside_the_repository() -> None:
    name = "DESIGN" + ".md"
    for folder in ("src", "tests", "docs", "benchmarks"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".md") and path.is_file():
                assert name not in path.read_text(encoding="utf-8"), path
    assert name not in README.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ running them


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, av_server, av_checksums) -> Path:
    """A folder holding ``data.csv`` (72 rows, label y, groups speaker, image and audio files) and
    ``new.csv`` (the rows without the label, with an ``id`` column); the AV-Digits public hosts are replaced
    by a local HTTP server serving synthetic files, and the user cache is in the folder."""
    frame = make_frame(tmp_path)
    frame.to_csv(tmp_path / "data.csv", index=False)
    new = frame.drop(columns=["y"])
    new.insert(0, "id", [f"row-{i}" for i in range(len(new))])
    new.to_csv(tmp_path / "new.csv", index=False)
    base_url, _ = av_server
    monkeypatch.setattr(av_digits, "FSDD_ZIP_URL", f"{base_url}/{av_digits.FSDD_ZIP_NAME}")
    monkeypatch.setattr(av_digits, "MNIST_BASE_URL", base_url)
    monkeypatch.setattr(av_digits, "CHECKSUMS", av_checksums)
    monkeypatch.setenv("MODALFUSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MODALFUSE_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(command: list[str]) -> str:
    result = CliRunner().invoke(app, command[1:])
    assert result.exit_code == 0, f"{shlex.join(command)}\n{result.output}"
    assert "Traceback" not in result.output
    return result.output


def _check_outputs(folder: Path, ran: set[str]) -> None:
    """What the README's commands write, where they ran."""
    if "predict" in ran:
        preds = pd.read_csv(folder / "predictions.csv")
        assert list(preds.columns) == ["id", "prediction", "p_a", "p_b", "p_c"]
        assert preds["id"].tolist() == [f"row-{i}" for i in range(72)]
        assert (folder / "problems.csv").is_file()
    if "explain" in ran:
        expl = pd.read_csv(folder / "explanations.csv")
        assert expl["id"].tolist() == [f"row-{i}" for i in range(72)]
        inputs = ["image", "audio", "text", "tabular"]
        assert (expl["base"] + expl[inputs].sum(axis=1) - expl["value"]).abs().max() < 1e-6
    if "report" in ran:
        assert "<svg" in (folder / "report.html").read_text(encoding="utf-8")
    if "retrieve" in ran:
        matches = pd.read_csv(folder / "matches.csv")
        assert list(matches.columns) == ["query_row", "rank", "match_row", "score"]
        assert set(matches["rank"]) == {1, 2, 3, 4, 5}
    if "encode" in ran:
        embeddings = pd.read_parquet(folder / "embeddings.parquet")
        assert list(embeddings.columns) == ["row", "speaker", "text"] and len(embeddings) == 72
    if "datasets --download" in ran:
        assert (folder / "cache" / "datasets" / "fsdd" / "recordings").is_dir()


def test_the_readme_commands_that_do_not_train(workdir: Path, table) -> None:
    """Every README command but fit/evaluate/demo, as written; ``model/`` and ``shared/`` are fitted
    beforehand with quick settings (the README's fit commands run in the slow test)."""
    quick = {"epochs": 1, "min_steps": 20, "inner_folds": 2, "n_threads": 1}
    train = mf.read_table(workdir / "data.csv", label="y")
    mf.MultimodalClassifier(fusion="late", **quick).fit(train).save(workdir / "model")
    mf.MultimodalClassifier(fusion="shared", **quick).fit(train).save(workdir / "shared")
    # what `evaluate --json results.json` writes, in brief (the README's evaluate runs in the slow test)
    folds = {"mean": 0.9, "std": 0.05, "folds": [0.85, 0.95]}
    (workdir / "results.json").write_text(
        json.dumps(
            {
                "n_rows": 72,
                "classes": ["a", "b", "c"],
                "cv": {"kind": "stratified-group", "n_folds": 2, "seed": 0},
                "strategies": {"linear": {"accuracy": folds}, "late": {"accuracy": folds}},
                "best": {"strategy": "linear"},
            }
        )
    )
    ran = set()
    for command in readme_commands():
        if command[1] in TRAINING:
            continue
        output = _run(command)
        ran.add(" ".join(command[1:3]) if command[2:3] == ["--download"] else command[1])
        if command[1:] == ["datasets"]:
            assert "av-digits-sample" in output
        if command[1] == "fusions":
            assert output.startswith("attention")
    assert ran >= {
        "inspect",
        "predict",
        "retrieve",
        "encoders",
        "fusions",
        "datasets",
        "datasets --download",
        "encode",
        "cache",
    }
    _check_outputs(workdir, ran)


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_every_readme_command_in_order(workdir: Path) -> None:
    """All the README's command-line examples in order, training included: 389 s on a quiet 2-core
    machine, more than pytest's default 600 s limit when other jobs share it."""
    ran = set()
    for command in readme_commands():
        _run(command)
        ran.add(command[1])
    _check_outputs(workdir, ran)
    assert (workdir / "results.json").is_file()
    assert (workdir / "robustness.json").is_file() and (workdir / "robustness.svg").is_file()
    assert sorted(p.name for p in (workdir / "model").iterdir()) == ["model.json", "weights.safetensors"]


@pytest.mark.slow
def test_the_demo_as_the_first_command_runs_it(tmp_path: Path) -> None:
    """``modalfuse demo`` in a fresh folder, no data around, no network needed: the whole journey."""
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "modalfuse"), "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for step in (
        "1. The data: av-digits-sample",
        "2. The folds: 6",
        "unimodal:audio",
        "unimodal:image",
        "late:",
    ):
        assert step in out, step
    assert re.search(r"^Recommendation: \S+\.", out, flags=re.M)
    assert "4. Results written to modalfuse-demo/av-digits-sample.json" in out
    assert (tmp_path / "modalfuse-demo" / "av-digits-sample.json").is_file()
    assert "Traceback" not in result.stderr
