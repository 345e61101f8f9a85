"""compare() written fold by fold to a checkpoint, and resumed after an interruption to the same result."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_eval_cv import CentroidClassifier, FailingClassifier, PriorClassifier, _grouped_table

from modalfuse._errors import ModalfuseError
from modalfuse.evaluate import compare, format_table
from modalfuse.evaluate._checkpoint import write_json_atomic

#: Result keys that hold wall-clock measurements, which no two runs share.
TIMING_KEYS = {
    "fit_seconds",
    "predict_seconds",
    "fit_cost_seconds",
    "fit_seconds_per_fold",
    "predict_seconds_per_fold",
    "wall_seconds",
    "seconds",
    "reason",  # cites fit costs in seconds
    "checkpoint",
}


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


class NoisyCentroid(CentroidClassifier):
    """A centroid classifier whose probabilities depend on a seeded draw, so folds differ in every metric."""

    def __init__(self, seed: int = 0, noise: float = 0.6) -> None:
        self.seed, self.noise = seed, noise

    def predict_proba(self, table: Any) -> np.ndarray:
        rng = np.random.default_rng(self.seed + int(table.index[0]))
        noise = rng.dirichlet(np.ones(len(self.classes_)), len(table))
        return (1 - self.noise) * super().predict_proba(table) + self.noise * noise


def _strategies() -> dict[str, Any]:
    return {
        "unimodal:centroid": CentroidClassifier(),
        "unimodal:prior": PriorClassifier(),
        "linear": NoisyCentroid(seed=1),
        "fused": NoisyCentroid(seed=2, noise=0.7),
        "late-break": FailingClassifier(fail_when_held_out=25),  # fails in a later fold
    }


class Interrupt:
    """A progress callback that raises KeyboardInterrupt at the ``after``-th step, like Ctrl-C would."""

    def __init__(self, after: int, path: Path | None = None) -> None:
        self.after, self.path, self.steps, self.stored = after, path, 0, 0

    def __call__(self, event: str, **info: Any) -> None:
        if event != "step" or info.get("resumed"):
            return
        self.steps += 1
        self.stored += not info.get("skipped")  # a strategy skipped after failing has nothing to store
        if self.path is not None and not info.get("skipped"):  # the step is in the file before its event
            doc = json.loads(self.path.read_text())
            assert doc["checkpoint"]["complete"] is False
            assert (doc["checkpoint"]["steps"][-1]["fold"], doc["checkpoint"]["steps"][-1]["strategy"]) == (
                info["fold"],
                info["strategy"],
            )
        if self.steps == self.after:
            raise KeyboardInterrupt


@pytest.mark.parametrize("after", [1, 7, 26])
def test_an_interrupted_compare_resumes_to_the_uninterrupted_result(tmp_path: Path, after: int) -> None:
    table = _grouped_table()
    reference = compare(_strategies(), table, cv="loso", seed=0)
    means = [e["accuracy"]["mean"] for e in reference["strategies"].values() if "error" not in e]
    assert len(set(means)) == len(means) == 4  # no tie, so no ranking by (timed) fit cost

    path = tmp_path / "run.json"
    interrupt = Interrupt(after, path)
    with pytest.raises(KeyboardInterrupt):
        compare(_strategies(), table, cv="loso", seed=0, checkpoint=path, progress=interrupt)
    stored = interrupt.stored
    partial = json.loads(path.read_text())
    assert partial["dataset"] == "grouped" and partial["cv"]["n_folds"] == 6
    assert len(partial["checkpoint"]["steps"]) == stored and partial["checkpoint"]["complete"] is False

    events: list[tuple[str, dict[str, Any]]] = []
    resumed = compare(
        _strategies(),
        table,
        cv="loso",
        seed=0,
        checkpoint=path,
        resume=True,
        progress=lambda e, **i: events.append((e, i)),
    )
    assert _without_timings(resumed) == _without_timings(reference)
    assert resumed["recommendation"]["strategy"] == reference["recommendation"]["strategy"]
    assert resumed["strategies"]["late-break"] == reference["strategies"]["late-break"]
    assert "error" in resumed["strategies"]["late-break"]
    # the finished steps were not run again, and every step is reported once
    assert events[0][1]["resumed"] == stored
    steps = [i for e, i in events if e == "step"]
    assert len(steps) == 6 * 5 and sum(1 for i in steps if i.get("resumed")) == stored
    final = json.loads(path.read_text())
    assert final["checkpoint"]["complete"] is True and final["checkpoint"]["resumed_steps"] == stored
    assert _without_timings(final) == _without_timings(json.loads(json.dumps(reference)))
    assert format_table(final).splitlines()[2:-1] != []


def test_resuming_a_complete_file_runs_nothing(tmp_path: Path) -> None:
    table = _grouped_table()
    path = tmp_path / "run.json"
    first = compare(_strategies(), table, cv=3, seed=0, checkpoint=path)
    ran: list[dict[str, Any]] = []
    again = compare(
        _strategies(),
        table,
        cv=3,
        seed=0,
        checkpoint=path,
        resume=True,
        progress=lambda e, **i: ran.append(i) if e == "step" and not i.get("resumed") else None,
    )
    # the failed strategy's later folds are skipped (ok=False, not resumed), nothing is fitted
    assert all(not i["ok"] for i in ran)
    assert _without_timings(again) == _without_timings(first)


def test_resume_without_a_file_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "new" / "run.json"
    result = compare(_strategies(), _grouped_table(), cv=3, seed=0, checkpoint=path, resume=True)
    assert json.loads(path.read_text())["checkpoint"]["steps"]
    assert result["checkpoint"]["resumed_steps"] == 0


@pytest.mark.parametrize(
    "change, message",
    [
        ({"seed": 1}, "seed: 0 in the file, 1 now"),
        ({"dataset_name": "other"}, "dataset: 'grouped' in the file, 'other' now"),
        ({"cv": 3}, "cv.spec: 'loso' in the file, 3 now"),
        ({"strategies": "params"}, "strategies.linear.params.seed: 1 in the file, 5 now"),
        ({"strategies": "names"}, "strategies.extra: '<absent>' in the file"),
        ({"rows": 50}, "n_rows: 60 in the file, 50 now"),
    ],
)
def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path: Path, change: dict, message: str) -> None:
    table = _grouped_table()
    path = tmp_path / "run.json"
    with pytest.raises(KeyboardInterrupt):
        compare(_strategies(), table, cv="loso", seed=0, checkpoint=path, progress=Interrupt(3))
    before = path.read_text()
    strategies = _strategies()
    kwargs: dict[str, Any] = {"cv": "loso", "seed": 0}
    if change.get("strategies") == "params":
        strategies["linear"] = NoisyCentroid(seed=5)
    elif change.get("strategies") == "names":
        strategies["extra"] = PriorClassifier()
    elif "rows" in change:
        table = table.take(np.arange(change["rows"]))
    else:
        kwargs.update(change)
    with pytest.raises(ModalfuseError) as info:
        compare(strategies, table, checkpoint=path, resume=True, **kwargs)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{path}: cannot resume") and message in text
    assert path.read_text() == before  # the checkpoint is left as it was


def test_resume_refuses_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"strategies": {}}))
    with pytest.raises(ModalfuseError, match="not a comparison checkpoint"):
        compare(_strategies(), _grouped_table(), cv=3, checkpoint=path, resume=True)
    path.write_text("{ not json")
    with pytest.raises(ModalfuseError, match="not readable JSON"):
        compare(_strategies(), _grouped_table(), cv=3, checkpoint=path, resume=True)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_checkpoint_files_get_the_permissions_of_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        path = write_json_atomic(tmp_path / "a.json", {"x": 1})
        compare({"p": PriorClassifier()}, _grouped_table(), cv=2, checkpoint=tmp_path / "b.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]  # no temporary file left


def test_a_failed_write_leaves_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_json_atomic(tmp_path / "a.json", {"x": 1})

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_json_atomic(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_resumed_modalfuse_strategies_match_an_uninterrupted_run_exactly(table, tmp_path: Path) -> None:
    """Real strategies whose per-input networks are shared between strategies in a fold: resumed in the
    middle of a fold, the later strategies train those networks again, and every number is the same."""
    import modalfuse as mf

    def cold() -> mf.Cache:  # as a new process would have: no per-input model cached
        return mf.using_cache(mf.Cache())

    frame = table.frame[["text", "num", "colour"]].assign(y=table.y, speaker=table.frame["speaker"])
    small = mf.read_table(frame, label="y", groups="speaker", name="small")
    settings = {"epochs": 2, "min_steps": 10, "inner_folds": 2, "n_threads": 1, "seed": 0}
    strategies = {
        name: mf.MultimodalClassifier(fusion=name, **settings)
        for name in ("unimodal:text", "unimodal:tabular", "late:mean")
    }
    with cold():
        reference = compare(strategies, small, cv=2, seed=0)
    path = tmp_path / "run.json"
    with cold(), pytest.raises(KeyboardInterrupt):  # after fold 1's unimodal:text: tabular, late:mean to come
        compare(strategies, small, cv=2, seed=0, checkpoint=path, progress=Interrupt(4))
    with cold():
        resumed = compare(strategies, small, cv=2, seed=0, checkpoint=path, resume=True)
    assert _without_timings(resumed) == _without_timings(reference)
    assert resumed["checkpoint"]["resumed_steps"] == 4


def test_evaluate_resume_on_the_command_line(csv_path: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from modalfuse.cli import app

    out = tmp_path / "res.json"
    base = ["evaluate", str(csv_path), "--label", "y", "--cv", "2", "--fusion", "linear", "--json", str(out)]
    runner = CliRunner()
    first = runner.invoke(app, base)
    assert first.exit_code == 0, first.output
    doc = json.loads(out.read_text())
    assert doc["checkpoint"]["complete"] is True and len(doc["checkpoint"]["steps"]) == 2
    again = runner.invoke(app, [*base, "--resume"])
    assert again.exit_code == 0, again.output
    resumed = json.loads(out.read_text())
    assert resumed["checkpoint"]["resumed_steps"] == 2
    assert resumed["strategies"]["linear"]["accuracy"] == doc["strategies"]["linear"]["accuracy"]
    other = runner.invoke(app, [*base, "--resume", "--seed", "1"])
    assert other.exit_code == 2
    errors = [line for line in other.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "seed: 0 in the file, 1 now" in errors[0]
    assert json.loads(out.read_text()) == resumed  # the file is left as it was
    no_file = runner.invoke(app, [*base[:-2], "--resume"])
    assert no_file.exit_code == 2 and "--resume needs --json FILE" in no_file.output
