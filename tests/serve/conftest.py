"""Fixtures of the serving tests: a small saved model of the synthetic table (image, audio, text and
tabular inputs) and a real ``modalfuse serve`` process on a free port of 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Limits of the test server: small enough to test with small bodies.
MAX_UPLOAD_MB = 1.0
MAX_BATCH = 8

#: An evaluation summary placed in the model folder, in the shape ``modalfuse evaluate --json`` writes.
EVALUATION = {
    "dataset": "data.csv",
    "n_rows": 72,
    "cv": {"kind": "stratified-group", "n_folds": 3, "groups": "speaker", "seed": 0},
    "strategies": {
        "late": {
            "accuracy": {"mean": 0.875, "std": 0.05, "folds": [0.8, 0.9, 0.925]},
            "f1_macro": {"mean": 0.87, "std": 0.06, "folds": [0.79, 0.9, 0.92]},
            "fit_seconds": 3.0,
        },
        "unimodal:image": {"accuracy": {"mean": 0.7, "std": 0.1, "folds": [0.6, 0.7, 0.8]}},
    },
    "recommendation": {"strategy": "late", "reason": "late has the best accuracy"},
}


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen | None, log: Path | None, timeout: float = 120.0) -> None:
    """Poll ``url/health`` until it answers 200; fail with the server's output if it dies or never does."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            output = log.read_text() if log is not None else ""
            pytest.fail(f"the server exited with status {proc.returncode}:\n{output}")
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the server at {url} did not become healthy in {timeout:.0f} s")


@pytest.fixture(scope="session")
def serve_model_dir(table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A late-fusion model (CNN encoders, trained briefly) of the synthetic table, saved, with an
    ``evaluation.json`` beside it."""
    import modalfuse as mf

    clf = mf.MultimodalClassifier(fusion="late", epochs=1, min_steps=10, inner_folds=2, n_threads=1)
    clf.fit(table)
    folder = tmp_path_factory.mktemp("served") / "model"
    clf.save(folder)
    (folder / "evaluation.json").write_text(json.dumps(EVALUATION))
    return folder


@pytest.fixture(scope="session")
def served_clf(serve_model_dir: Path):
    """The served model, loaded in the test process: what the server's answers are compared with."""
    import modalfuse as mf

    return mf.MultimodalClassifier.load(serve_model_dir)


@dataclass
class Server:
    url: str
    port: int
    pid: int
    log: Path


@pytest.fixture(scope="session")
def server(serve_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``modalfuse serve`` in its own process on a free port of 127.0.0.1 (the default host)."""
    pytest.importorskip("httpx", reason="the server tests need httpx: pip install 'modalfuse[test]'")
    port = free_port()
    log = tmp_path_factory.mktemp("server-log") / "server.log"
    command = [
        sys.executable,
        "-m",
        "modalfuse.cli",
        "serve",
        str(serve_model_dir),
        "--port",
        str(port),
        "--max-upload-mb",
        str(MAX_UPLOAD_MB),
        "--max-batch",
        str(MAX_BATCH),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield Server(url, port, proc.pid, log)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
