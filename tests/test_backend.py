"""Backends of fold-parallel evaluation and per-input training: serial, local processes, Ray.

The same seed must give the same numbers on every backend; a task's error comes back as itself; a worker
that dies or a task past its timeout stops the run with an error naming the task, without hanging and
without leaving worker processes behind. Ray tests skip where Ray is not installed (the ``ray`` extra).

The Ray tests and the CLI run are marked slow (Ray starts once for them: about 1-2 minutes on a quiet
2-core machine, 6 on a busy one); the process-pool tests run by default.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import cloudpickle
import numpy as np
import pytest

import modalfuse as mf
from modalfuse._backend import Backend, in_worker, task_memory

# the tasks below are defined in this test module, which worker processes cannot import: send them by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])

FAST = {"epochs": 1, "min_steps": 8, "batch_size": 16, "inner_folds": 2, "n_threads": 1}
#: A trainable input and a classical one: quick, and both kinds of per-input model are compared.
STRATEGIES = "unimodal:image,unimodal:tabular"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


# ------------------------------------------------------------------------------------------- tasks
def _where(shared: float, item: int) -> tuple[int, int, int, bool, str | None]:
    """Sleep (later items less, so they finish first), then say where and how the task ran."""
    import torch

    time.sleep(shared * (3 - item))
    return item, os.getpid(), torch.get_num_threads(), in_worker(), os.environ.get("OMP_NUM_THREADS")


def _raise(shared: None, item: int) -> int:
    if item == 1:
        raise ValueError(f"row {item} is bad")
    return item


def _die(shared: str, item: int) -> int:
    """Item 1 kills its own worker process; the others report their pid to the file ``shared``."""
    with open(shared, "a") as f:
        f.write(f"{os.getpid()}\n")
    if item == 1:
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.5)
    return item


def _sleep(shared: str, item: int) -> int:
    """Item 0 sleeps a minute; each writes ``item pid`` to the file ``shared``."""
    with open(shared, "a") as f:
        f.write(f"{item} {os.getpid()}\n")
    time.sleep(60 if item == 0 else 0)
    return item


def _pids(path) -> list[int]:
    """The pids written to ``path`` (the last number of each line)."""
    return [int(line.split()[-1]) for line in path.read_text().splitlines()] if path.exists() else []


def _pid_of(path, item: int) -> int | None:
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.split()[0] == str(item):
            return int(line.split()[1])
    return None


# --------------------------------------------------------------------------------------- settings
def test_backend_names_and_settings_are_checked():
    with pytest.raises(mf.UnknownNameError, match="did you mean 'ray'"):
        Backend("rya")
    with pytest.raises(mf.OptionError, match="address= is for the 'ray' backend"):
        Backend("processes", address="127.0.0.1:6379")
    with pytest.raises(mf.OptionError, match="n_jobs must be a whole number >= 1"):
        Backend("processes", n_jobs=0)
    with pytest.raises(mf.OptionError, match="timeout must be None or a number of seconds > 0"):
        Backend("ray", timeout=-1)
    with pytest.raises(mf.OptionError, match="backend must be one of serial, processes, ray"):
        mf.compare(None, backend=3)  # checked before the table is looked at
    assert not Backend().parallel and Backend("processes").parallel


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(mf.OptionError, match=r"pip install 'modalfuse\[ray\]'"):
        Backend("ray").map(_raise, [0, 2])


def test_task_memory_counts_the_media_files(table):
    files = sum(os.path.getsize(p) for col in ("image", "audio") for p in table.frame[col].dropna())
    frame = int(table.frame.memory_usage(deep=True).sum())
    assert task_memory(table) == 512 * 1024**2 + frame + 4 * files


# ------------------------------------------------------------------------------------------ processes
def test_processes_gather_in_order_in_workers_with_one_thread():
    finished = []
    out = Backend("processes", n_jobs=2).map(
        _where, [0, 1, 2], shared=0.3, on_result=lambda i, r: finished.append(i)
    )
    assert [r[0] for r in out] == [0, 1, 2]  # the items' order, whatever order they finished in
    assert sorted(finished) == [0, 1, 2]
    assert all(pid != os.getpid() for _, pid, _, _, _ in out)
    assert all(threads == 1 and worker and omp == "1" for _, _, threads, worker, omp in out)
    assert not in_worker()


def test_serial_runs_here():
    out = Backend().map(_where, [2], shared=0.0)
    assert out[0][1] == os.getpid() and out[0][3] is False


# ------------------------------------------------------------------------------ the same numbers
def _fold_accuracies(result):
    return {
        name: entry.get("accuracy", {}).get("folds", entry.get("error"))
        for name, entry in result["strategies"].items()
    }


def test_compare_on_processes_gives_the_serial_numbers(table, tmp_path):
    serial = mf.compare(table, fusion=STRATEGIES, cv=3, **FAST)
    steps = []
    parallel = mf.compare(
        table,
        fusion=STRATEGIES,
        cv=3,
        backend=Backend("processes", n_jobs=2),
        checkpoint=tmp_path / "run.json",
        progress=lambda event, **info: steps.append(info) if event == "step" else None,
        **FAST,
    )
    assert _fold_accuracies(parallel) == _fold_accuracies(serial)
    assert parallel["recommendation"]["strategy"] == serial["recommendation"]["strategy"]
    assert len(steps) == 3 * len(serial["strategies"])  # every step reported
    import json

    saved = json.loads((tmp_path / "run.json").read_text())
    assert len(saved["checkpoint"]["steps"]) == len(steps) and saved["checkpoint"]["complete"]


def test_cross_validate_on_processes_gives_the_serial_numbers(table):
    clf = mf.MultimodalClassifier(fusion="unimodal:image", **FAST)
    serial = mf.cross_validate(clf, table, cv=3, return_predictions=True)
    parallel = mf.cross_validate(clf, table, cv=3, return_predictions=True, backend="processes")
    assert parallel["metrics"]["accuracy"]["folds"] == serial["metrics"]["accuracy"]["folds"]
    np.testing.assert_array_equal(parallel["predictions"]["proba"], serial["predictions"]["proba"])
    np.testing.assert_array_equal(parallel["predictions"]["index"], serial["predictions"]["index"])


def test_fit_on_processes_gives_the_serial_model(table):
    models = {}
    for backend in ("serial", "processes"):
        with mf.using_cache(mf.Cache()):  # nothing reused from the other fit
            clf = mf.MultimodalClassifier(
                fusion="late:stacking", encoders={"audio": "mfcc", "text": "tfidf"}, backend=backend, **FAST
            ).fit(table)
        models[backend] = clf.predict_proba(table)
    np.testing.assert_array_equal(models["processes"], models["serial"])


def test_fit_checks_the_backend_name(table):
    with pytest.raises(mf.OptionError, match="backend"):
        mf.MultimodalClassifier(backend="threads").fit(table)


# ------------------------------------------------------- failures (last: they kill the worker pool)
def test_a_task_error_comes_back_as_itself():
    with pytest.raises(ValueError, match="row 1 is bad"):
        Backend("processes", n_jobs=2).map(_raise, [0, 1, 2])


def test_a_killed_worker_stops_the_run_with_its_task_named(tmp_path):
    record = tmp_path / "pids"
    start = time.monotonic()
    # loky cannot tell which worker died, so the error names every task running then (fold 1 among them)
    with pytest.raises(mf.TrainingError, match=r"fold 1\b.*: (its|a) worker.* died .*; the run stopped"):
        Backend("processes", n_jobs=2, timeout=60).map(
            _die, [0, 1, 2, 3], shared=str(record), labels=[f"fold {i}" for i in range(4)]
        )
    assert time.monotonic() - start < 45  # an error, not a hang until the timeout
    time.sleep(1.0)
    assert _pids(record) and not any(_alive(pid) for pid in _pids(record))  # no worker left behind


def test_a_task_past_its_timeout_stops_the_run(tmp_path):
    record = tmp_path / "pids"
    Backend("processes", n_jobs=2).map(
        _raise, [0, 2]
    )  # the workers started (their start counts in a timeout)
    start = time.monotonic()
    with pytest.raises(mf.TrainingError, match=r"input 'audio': still running after the 2 s timeout"):
        Backend("processes", n_jobs=2, timeout=2).map(
            _sleep, [0, 1], shared=str(record), labels=["input 'audio'", "input 'image'"]
        )
    assert time.monotonic() - start < 30
    time.sleep(1.0)
    assert _pids(record) and not any(_alive(pid) for pid in _pids(record))


# ----------------------------------------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def local_ray():
    """Ray started here once for these tests (2 CPUs, no dashboard, no usage reporting)."""
    ray = pytest.importorskip(
        "ray", reason="Ray is not installed: pip install 'modalfuse[ray]' to run the Ray backend tests"
    )
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_gathers_in_order_in_workers_with_one_thread(local_ray):
    out = Backend("ray").map(_where, [0, 1, 2], shared=0.3)
    assert [r[0] for r in out] == [0, 1, 2]
    assert all(pid != os.getpid() and threads == 1 and worker for _, pid, threads, worker, _ in out)
    assert local_ray.is_initialized()  # Ray started by the caller is left running


@pytest.mark.slow
def test_compare_on_ray_gives_the_serial_numbers(local_ray, table):
    serial = mf.compare(table, fusion=STRATEGIES, cv=3, **FAST)
    parallel = mf.compare(table, fusion=STRATEGIES, cv=3, backend="ray", **FAST)
    assert _fold_accuracies(parallel) == _fold_accuracies(serial)


@pytest.mark.slow
def test_ray_task_error_comes_back_as_itself(local_ray):
    with pytest.raises(ValueError, match="row 1 is bad"):
        Backend("ray").map(_raise, [0, 1, 2])


@pytest.mark.slow
def test_ray_killed_worker_names_its_task(local_ray, tmp_path):
    record = tmp_path / "pids"
    start = time.monotonic()
    with pytest.raises(
        mf.TrainingError, match=r"^fold 1: its worker died \(\w+Error: .*\); the run stopped$"
    ):
        Backend("ray", timeout=60).map(
            _die, [0, 1, 2], shared=str(record), labels=["fold 0", "fold 1", "fold 2"]
        )
    assert time.monotonic() - start < 45


@pytest.mark.slow
def test_ray_task_past_its_timeout_stops_the_run(local_ray, tmp_path):
    record = tmp_path / "pids"
    Backend("ray").map(_raise, [0, 2])  # workers started
    start = time.monotonic()
    with pytest.raises(mf.TrainingError, match=r"input 'audio': still running after the 3 s timeout"):
        Backend("ray", timeout=3).map(
            _sleep, [0, 1], shared=str(record), labels=["input 'audio'", "input 'image'"]
        )
    assert time.monotonic() - start < 30
    time.sleep(2.0)
    stuck = _pid_of(record, 0)
    assert stuck is not None and not _alive(stuck)  # the stuck task's worker was stopped


# ------------------------------------------------------------------------------------------------ CLI
@pytest.mark.slow
def test_cli_evaluate_on_processes_gives_the_library_numbers(csv_path, tmp_path):
    from typer.testing import CliRunner

    from modalfuse.cli import app

    out = tmp_path / "run.json"
    args = ["evaluate", str(csv_path), "--label", "y", "--cv", "3", "--fusion", "unimodal:tabular"]
    args += ["--epochs", "1", "--min-steps", "8", "--backend", "processes", "--jobs", "2", "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    import json

    cli = json.loads(out.read_text())
    library = mf.compare(
        mf.read_table(csv_path, label="y"), fusion="unimodal:tabular", cv=3, epochs=1, min_steps=8, seed=0
    )
    assert _fold_accuracies(cli) == _fold_accuracies(library)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "threads"], "error: unknown backend 'threads'"),
        (
            ["--backend", "processes", "--ray-address", "127.0.0.1:6379"],
            "error: --ray-address is for --backend ray",
        ),
        (["--backend", "processes", "--jobs", "0"], "Invalid value for '--jobs'"),
    ],
)
def test_cli_refuses_a_wrong_backend_before_any_work(csv_path, args, message):
    from typer.testing import CliRunner

    from modalfuse.cli import app

    result = CliRunner().invoke(app, ["evaluate", str(csv_path), "--label", "y", *args])
    assert result.exit_code == 2 and message in result.output, result.output


# ------------------------------------------------------------------------------------------ Ray Data
@pytest.mark.slow
def test_ray_data_encoding_writes_each_rows_features(local_ray, table, tmp_path):
    import pandas as pd

    clf = mf.MultimodalClassifier(fusion="linear").fit(table)  # classical encoders: tabular-scaled, tfidf...
    clf.save(tmp_path / "model")
    source = tmp_path / "table.parquet"
    table.frame.assign(id=np.arange(len(table))).to_parquet(source)
    done = mf.encode_with_ray(tmp_path / "model", source, tmp_path / "enc", id_column="id", batch_rows=16)
    assert done["rows"] == len(table)
    out = pd.read_parquet(tmp_path / "enc").sort_values("id")
    assert out["id"].tolist() == list(range(len(table)))
    for name, (X, mask) in clf.transform_inputs(table.frame).items():
        np.testing.assert_allclose(np.stack(out[name].to_numpy()), X.reshape(len(X), -1), rtol=1e-6)
        np.testing.assert_array_equal(out[f"{name}_present"].to_numpy(), mask)


@pytest.mark.slow
def test_ray_data_encoding_fills_the_embedding_cache_with_a_pretrained_encoders_vectors(
    local_ray, table, tmp_path, monkeypatch
):
    import pandas as pd

    from modalfuse._embedcache import EmbeddingCache

    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("MODALFUSE_CACHE", str(tmp_path / "fit-cache"))  # the fit's own cache, apart
    clf = mf.MultimodalClassifier(fusion="linear", encoders={"text": "minilm"}).fit(table)
    clf.save(tmp_path / "model")
    source = tmp_path / "table.parquet"
    table.frame.assign(id=np.arange(len(table))).to_parquet(source)
    workers_cache = tmp_path / "workers-cache"
    mf.encode_with_ray(tmp_path / "model", source, tmp_path / "enc", id_column="id", cache=workers_cache)
    texts = table.frame["text"].dropna()
    info = EmbeddingCache(workers_cache / "embeddings").info()
    (encoder,) = info["encoders"]  # the encoder's name, weights version and recipe revision
    assert encoder.startswith("minilm@")
    assert info["encoders"][encoder]["entries"] == texts.nunique()  # one per distinct text, none missing
    out = pd.read_parquet(tmp_path / "enc").sort_values("id")
    X, mask = clf.transform_inputs(table.frame)["text"]
    np.testing.assert_allclose(np.stack(out["text"].to_numpy())[mask], X[mask], rtol=1e-5, atol=1e-6)


def test_ray_data_encoding_refuses_a_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(mf.OptionError, match="not a model folder"):
        mf.encode_with_ray(tmp_path, tmp_path / "t.parquet", tmp_path / "out")


class _KillsItsWorker:
    """A duck-typed estimator whose fit kills the process it runs in (a worker dying mid-run)."""

    def get_params(self, deep: bool = True) -> dict:
        return {}

    def set_params(self, **params) -> _KillsItsWorker:
        return self

    def fit(self, table) -> _KillsItsWorker:
        os.kill(os.getpid(), signal.SIGKILL)
        return self

    def predict_proba(self, table) -> np.ndarray:  # never reached
        raise AssertionError("fit should not have returned")


def test_a_comparison_whose_worker_dies_stops_with_the_fold_named(table, tmp_path):
    from modalfuse.evaluate import compare

    start = time.monotonic()
    with pytest.raises(mf.TrainingError, match=r"^fold \d( or fold \d)*: .*died .*; the run stopped$"):
        compare({"dies": _KillsItsWorker()}, table, cv=3, backend=Backend("processes", n_jobs=2))
    assert time.monotonic() - start < 60


@pytest.mark.slow
def test_cli_fit_on_processes_saves_the_serial_model(csv_path, tmp_path):
    from typer.testing import CliRunner

    from modalfuse.cli import app

    base = [
        "fit",
        str(csv_path),
        "--label",
        "y",
        "--fusion",
        "late:mean",
        "--epochs",
        "1",
        "--min-steps",
        "8",
    ]
    for backend in ("serial", "processes"):
        result = CliRunner().invoke(app, [*base, "--backend", backend, "--out", str(tmp_path / backend)])
        assert result.exit_code == 0, result.output
    frame = mf.read_table(csv_path, label="y").frame
    serial = mf.MultimodalClassifier.load(tmp_path / "serial").predict_proba(frame)
    parallel = mf.MultimodalClassifier.load(tmp_path / "processes")
    assert parallel.backend == "processes"
    np.testing.assert_array_equal(parallel.predict_proba(frame), serial)
