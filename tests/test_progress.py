"""Progress of fit: events for a listener, ``verbose`` lines through the standard ``logging`` module."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

import modalfuse as mf
from modalfuse import _progress as progress

QUICK = {"fusion": "late:mean", "epochs": 2, "min_steps": 8, "inner_folds": 2, "n_threads": 1}


@pytest.fixture(scope="module")
def two_inputs(csv_path) -> mf.MultimodalTable:
    """The synthetic table with its text and tabular inputs only (quick to train)."""
    return mf.read_table(csv_path, label="y", modalities={"image": "ignore", "audio": "ignore"})


def _fit(table: mf.MultimodalTable, **params: Any) -> mf.MultimodalClassifier:
    with mf.using_cache(mf.Cache()):  # trained afresh, so every network reports
        return mf.MultimodalClassifier(**{**QUICK, **params}).fit(table)


def _lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("modalfuse") and r.levelno == level]


def test_verbose_2_logs_every_epoch_with_its_loss(two_inputs, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    _fit(two_inputs, verbose=2)
    info = _lines(caplog, logging.INFO)
    epochs = [m for m in info if "epoch" in m]
    pattern = re.compile(r"^(text|tabular): network [12]/2: epoch (\d+)/(\d+), loss (\d+\.\d{4})$")
    assert epochs and all(pattern.match(m) for m in epochs), epochs[:3]
    for name in ("text", "tabular"):
        for k in (1, 2):  # every epoch of every network, in order
            numbers = [
                pattern.match(m).groups()[1:3] for m in epochs if m.startswith(f"{name}: network {k}/2")
            ]
            total = int(numbers[0][1])
            assert [int(i) for i, _ in numbers] == list(range(1, total + 1))
    losses = [float(pattern.match(m).group(4)) for m in epochs]
    assert all(0 < v < 5 for v in losses)
    assert info[0] == "fitting late:mean on 72 rows, inputs text, tabular"
    assert re.match(r"^fitted late:mean in \d+\.\ds$", info[-1])
    ends = [m for m in info if ": done in " in m]
    assert len(ends) == 4 and all(re.search(r"held out accuracy \d\.\d{3}$", m) for m in ends)


def test_verbose_1_logs_networks_but_not_epochs(two_inputs, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    _fit(two_inputs, verbose=1)
    info = _lines(caplog, logging.INFO)
    assert sum(": done in " in m for m in info) == 4 and not any("epoch" in m for m in info)
    assert [r.levelno for r in caplog.records if "epoch" in r.getMessage()] == []  # DEBUG is filtered out


def test_verbose_0_logs_nothing_at_info(two_inputs, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    _fit(two_inputs)
    assert _lines(caplog, logging.INFO) == []
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="modalfuse")  # asking the logger for DEBUG shows everything
    _fit(two_inputs)
    assert _lines(caplog, logging.INFO) == [] and any("epoch 1/" in m for m in _lines(caplog, logging.DEBUG))


def test_the_listener_sees_each_network_and_epoch_in_order(two_inputs) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    with progress.listening(lambda event, **info: events.append((event, info))):
        _fit(two_inputs)
    names = [e for e, _ in events]
    assert names[0] == "fit_start" and names[-1] == "fit_end"
    assert names.count("network_start") == names.count("network_end") == 4
    first_end = names.index("network_end")
    assert names[1] == "network_start" and set(names[2:first_end]) == {"epoch"}
    epoch = events[2][1]
    assert epoch["network"] == "text: network 1/2" and epoch["epoch"] == 1 and epoch["loss"] > 0
    end = events[first_end][1]
    assert (
        end["seconds"] > 0 and 0 <= end["held_out_accuracy"] <= 1 and (end["index"], end["total"]) == (1, 2)
    )
    assert events[-1][1]["seconds"] > 0


def test_reused_networks_are_reported(two_inputs) -> None:
    events: list[str] = []
    with mf.using_cache(mf.Cache()), progress.listening(lambda event, **info: events.append(info["message"])):
        mf.MultimodalClassifier(**QUICK).fit(two_inputs)
        events.clear()
        mf.MultimodalClassifier(**{**QUICK, "fusion": "late:product"}).fit(two_inputs)
    assert [m for m in events if "reused" in m] == [
        m
        for m in events
        if re.match(r"^(text|tabular): 2 network\(s\) reused from the cache \(trained in", m)
    ]
    assert sum("reused" in m for m in events) == 2 and not any("epoch" in m for m in events)


def test_a_failing_listener_does_not_stop_the_fit(two_inputs, caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: str, **info: Any) -> None:
        raise ValueError("display gone")

    with progress.listening(broken):
        clf = _fit(two_inputs)
    assert hasattr(clf, "fusion_")
    assert any(r.levelno == logging.WARNING and "listener failed" in r.getMessage() for r in caplog.records)


@contextlib.contextmanager
def _root_handlers(*handlers: logging.Handler) -> Iterator[None]:
    """The root logger with only ``handlers`` inside the block (pytest's own put back afterwards)."""
    root = logging.getLogger()
    saved = list(root.handlers)
    for h in saved:
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    try:
        yield
    finally:
        for h in handlers:
            root.removeHandler(h)
        for h in saved:
            root.addHandler(h)


def test_verbose_prints_to_stderr_when_logging_is_not_configured(capsys: pytest.CaptureFixture[str]) -> None:
    package = logging.getLogger("modalfuse")
    assert package.level == logging.NOTSET
    with _root_handlers(), progress.verbosity(1):  # as in a script that never configured logging
        progress.emit("fit_start", "fitting early on 3 rows")
        progress.epoch(1, 4, [0.5])  # verbose 1: no epoch lines
        assert package.level == logging.INFO
    with _root_handlers(), progress.verbosity(2):
        progress.epoch(2, 4, [0.5, 0.0])
    with _root_handlers(), progress.verbosity(0):
        progress.emit("fit_start", "silent")
    assert (
        capsys.readouterr().err
        == "[modalfuse] fitting early on 3 rows\n[modalfuse] network: epoch 2/4, loss 0.2500\n"
    )
    assert package.level == logging.NOTSET and package.handlers == []  # nothing left behind


def test_verbose_respects_a_configured_logging(capsys: pytest.CaptureFixture[str]) -> None:
    package = logging.getLogger("modalfuse")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    package.setLevel(logging.WARNING)  # the user's own choice for modalfuse
    try:
        with _root_handlers(Keep()), progress.verbosity(2):
            progress.emit("fit_start", "hidden by the user's level")
        assert records == [] and capsys.readouterr().err == ""  # no handler of our own was added
    finally:
        package.setLevel(logging.NOTSET)
    with _root_handlers(Keep()), progress.verbosity(1):
        progress.emit("fit_start", "shown through the user's handler")
    assert records == ["shown through the user's handler"] and capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------ command line
def test_cli_prints_progress_lines_when_stderr_is_not_a_terminal(csv_path, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from modalfuse.cli import app

    quick = ["--label", "y", "-m", "image=ignore", "-m", "audio=ignore", "--epochs", "1", "--min-steps", "4"]
    runner = CliRunner()
    fit = runner.invoke(
        app,
        [
            "fit",
            str(csv_path),
            *quick,
            "--fusion",
            "late:mean",
            "--out",
            str(tmp_path / "m"),
            "--threads",
            "1",
        ],
    )
    assert fit.exit_code == 0, fit.output
    lines = fit.stderr.splitlines()
    assert "fitting late:mean on 72 rows, inputs text, tabular" in lines
    done = [line for line in lines if re.match(r"^(text|tabular): network [123]/3: done in \d+\.\ds", line)]
    assert len(done) == 6 and not any("epoch" in line for line in lines)
    assert json.loads((tmp_path / "m" / "model.json").read_text())["params"]["n_threads"] == 1

    verbose = runner.invoke(
        app,
        [
            "fit",
            str(csv_path),
            *quick,
            "--fusion",
            "unimodal:text",
            "--out",
            str(tmp_path / "v"),
            "-v",
            "--seed",
            "1",
        ],
    )
    assert verbose.exit_code == 0, verbose.output
    assert re.search(r"^text: network 1/3: epoch 1/\d+, loss \d\.\d{4}$", verbose.stderr, re.MULTILINE)

    predict = runner.invoke(
        app,
        ["predict", str(tmp_path / "m"), str(csv_path), "--out", str(tmp_path / "p.csv"), "--threads", "1"],
    )
    assert predict.exit_code == 0, predict.output
    assert "72 predictions written" in predict.stdout

    evaluate = runner.invoke(app, ["evaluate", str(csv_path), *quick, "--fusion", "unimodal", "--cv", "2"])
    assert evaluate.exit_code == 0, evaluate.output
    lines = evaluate.stderr.splitlines()
    assert sum(bool(re.match(r"^(text|tabular): network [123]/3: done in", line)) for line in lines) == 12
    assert [line.split(" ")[0] for line in lines if re.match(r"^\[\d/4\] fold", line)] == [
        "[1/4]",
        "[2/4]",
        "[3/4]",
        "[4/4]",
    ]
    bad = runner.invoke(app, ["fit", str(csv_path), *quick, "--out", str(tmp_path / "x"), "--threads", "0"])
    assert bad.exit_code == 2 and "--threads" in bad.output
