"""The benchmark scripts: the CLI and ``benchmarks/avdigits.py`` give the same numbers for the same settings,
the scikit-learn references tune C inside each training fold, and the JSON records the environment."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

import modalfuse as mf
from modalfuse.evaluate import make_splits, paired_difference

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
CLOTHING_CSV = (
    Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "clothing_reviews" / "val.csv"
)


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> Iterator[dict[str, ModuleType]]:
    """The benchmark scripts as modules (their folder on sys.path, as when they run as scripts)."""
    sys.path.insert(0, str(BENCH))
    try:
        yield {
            name: _load(name)
            for name in ("avdigits", "clothing", "clothing_ceiling", "quality_ceiling", "bench_common")
        }
    finally:
        sys.path.remove(str(BENCH))


class _Recorded(mf.ModalfuseError):
    """Raised by the stand-in for ``modalfuse.evaluate.compare`` once it has recorded its call."""


def _record_compare(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Replace ``modalfuse.evaluate.compare`` (what ``mf.compare`` calls) by a recorder of its arguments."""
    import modalfuse.evaluate as evaluate

    calls: list[dict] = []

    def recorder(strategies, table, **kwargs):
        calls.append(
            {
                "strategies": {name: est.get_params() for name, est in strategies.items()},
                "rows": len(table),
                "groups": None if table.groups is None else list(table.groups),
                **{k: v for k, v in kwargs.items() if k not in ("progress", "fold_metrics", "checkpoint")},
                "fold_metrics": kwargs.get("fold_metrics"),
            }
        )
        raise _Recorded("recorded")

    monkeypatch.setattr(evaluate, "compare", recorder)
    return calls


def test_the_cli_and_the_benchmark_ask_for_the_same_comparison(
    bench, csv_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same strategies in the same order with the same parameters (epochs, min_steps, threads, encoders,
    seed...), same folds: the benchmark differs from ``modalfuse evaluate`` only by its retrieval hook."""
    from typer.testing import CliRunner

    from modalfuse.cli import app

    calls = _record_compare(monkeypatch)
    args = [
        "evaluate",
        str(csv_path),
        "--label",
        "y",
        "--groups",
        "speaker",
        "--cv",
        "loso",
        "--fusion",
        "all",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "recorded" in result.output
    table = mf.read_table(csv_path, label="y", groups="speaker")
    with pytest.raises(_Recorded):
        bench["avdigits"].run_modalfuse(table, fusion="all")
    cli, benchmark = calls
    assert cli["fold_metrics"] is None
    assert benchmark.pop("fold_metrics") is bench["avdigits"].retrieval_metrics
    cli.pop("fold_metrics")
    assert benchmark == cli
    baselines = ["unimodal:image", "unimodal:audio", "unimodal:text", "unimodal:tabular", "linear"]
    assert list(cli["strategies"])[:5] == baselines
    assert cli["cv"] == "loso" and cli["seed"] == 0
    assert {p["epochs"] for p in cli["strategies"].values()} == {20}


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the CLI's own process compiles librosa's kernels first
def test_the_cli_and_the_benchmark_give_identical_numbers(
    bench, csv_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``modalfuse evaluate`` in a process of its own, and the benchmark's call in this one (its per-input
    model cache emptied), on the same table and settings: every number of every fold is the same, and the
    benchmark's retrieval measurement adds its own keys without changing the others. Both run with one
    CPU seen by Python (``os.cpu_count`` patched), so both take modalfuse's default torch thread count for
    one CPU, and with the default BLAS threads (``OMP_NUM_THREADS`` set in only one of them changes
    ``cca``'s probabilities: its linear algebra sums in another order)."""

    settings = ["--cv", "2", "--fusion", "shared", "--epochs", "1", "--min-steps", "5", "--seed", "0"]
    out = tmp_path / "cli.json"
    cli_args = [
        "evaluate",
        str(csv_path),
        "--label",
        "y",
        "--groups",
        "speaker",
        *settings,
        "--json",
        str(out),
    ]
    code = (
        "import os, sys; os.cpu_count = lambda: 1; from modalfuse.cli import main; "
        f"sys.argv = ['modalfuse', *{cli_args!r}]; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    cli = json.loads(out.read_text())

    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    table = mf.read_table(csv_path, label="y", groups="speaker")
    result = bench["avdigits"].run_modalfuse(table, fusion="shared", cv=2, seed=0, epochs=1, min_steps=5)

    assert list(result["strategies"]) == list(cli["strategies"])
    assert {"linear", "shared", "cca"} <= set(cli["strategies"])
    timing = {"fit_seconds", "predict_seconds", "fit_cost_seconds", "fit_seconds_per_fold"}
    timing |= {"predict_seconds_per_fold"}
    for name, entry in cli["strategies"].items():
        assert "error" not in entry, (name, entry)
        mine = result["strategies"][name]
        for key, value in entry.items():
            if key not in timing:
                assert mine[key] == value, (name, key)
        assert all(k.startswith("retrieval_") for k in set(mine) - set(entry))
    assert any(k.startswith("retrieval_") for k in result["strategies"]["shared"])
    assert result["cv"] == cli["cv"] and result["best"] == cli["best"]
    assert result["recommendation"]["strategy"] == cli["recommendation"]["strategy"]


def test_the_benchmark_environment_records_what_the_numbers_depend_on(bench) -> None:
    import torch

    env = bench["bench_common"].environment()
    assert env["torch"] == torch.__version__
    assert env["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["torch_threads_at_start"] == torch.get_num_threads()
    for key in ("numpy", "scipy", "scikit_learn", "platform", "python", "cpus"):
        assert env[key]
    assert all("num_threads" in pool for pool in env["native_threadpools"])
    json.dumps(env)


def test_paired_intervals_against_the_best_reference(bench) -> None:
    common = bench["bench_common"]

    def entry(folds: list[float]) -> dict:
        return {"accuracy": {"mean": float(np.mean(folds)), "folds": folds}}

    modalfuse = {
        "strategies": {
            "early": entry([0.9, 0.8, 0.85]),
            "linear": entry([0.7, 0.75, 0.7]),
            "broken": {"error": "RuntimeError: x", "fold": 0},
        }
    }
    reference = {"sklearn:a": entry([0.8, 0.8, 0.8]), "sklearn:b": entry([0.5, 0.6, 0.5])}
    out = common.paired_vs_reference(modalfuse, reference, metrics=("accuracy",), seed=0)
    block = out["accuracy"]
    assert block["reference"] == "sklearn:a"
    assert list(block["strategies"]) == ["early", "linear"]
    assert block["strategies"]["early"] == paired_difference([0.9, 0.8, 0.85], [0.8, 0.8, 0.8], seed=0)
    text = common.format_paired(out)
    assert "paired against sklearn:a" in text and "linear" in text and "worse" in text


def test_the_avdigits_reference_chooses_C_by_speaker_grouped_inner_folds(bench) -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat([f"s{i}" for i in range(5)], 20)
    y = np.tile(np.arange(4), 25)
    X = rng.normal(size=(100, 6)) + y[:, None] * np.array([1.0, 0, 0, 0, 0, 0])
    model = bench["avdigits"]._tuned_logistic(X, y, groups)
    search = model[-1]
    assert search.C_[0] in bench["bench_common"].REFERENCE_CS
    assert len(search.cv) == 3
    for train, held_out in search.cv:
        assert set(groups[train]).isdisjoint(groups[held_out])
        assert len(train) + len(held_out) == 100  # the rows it was given, and no others


@pytest.mark.slow
def test_the_avdigits_reference_runs_on_real_recordings(bench, shared_datasets: Path) -> None:
    table = bench["avdigits"].first_takes(mf.load_dataset("av-digits-hard", root=shared_datasets), 2)
    assert len(table) == 120
    splits = make_splits(table.y, table.groups, cv="loso", seed=0)
    reference = bench["avdigits"].sklearn_reference(table, splits)
    assert set(reference) == {"sklearn:audio", "sklearn:image", "sklearn:concat", "sklearn:sum-logprob"}
    for name in ("sklearn:audio", "sklearn:image", "sklearn:concat"):
        assert len(reference[name]["C_per_fold"]) == 6
        assert set(reference[name]["C_per_fold"]) <= set(bench["bench_common"].REFERENCE_CS)
    assert reference["sklearn:concat"]["accuracy"]["mean"] > 0.3  # chance is 0.1


def _clothing_like(declared: dict[str, str], n: int = 120, seed: int = 0) -> mf.MultimodalTable:
    """A small table with the clothing benchmark's columns: the words of the texts give the label away."""
    rng = np.random.default_rng(seed)
    liked = rng.random(n) < 0.75
    good, bad = ["great", "lovely", "perfect", "soft"], ["awful", "tight", "cheap", "returned"]
    frame = pd.DataFrame(
        {
            "Title": [" ".join(rng.choice(good if ok else bad, 2)) for ok in liked],
            "Review Text": [
                " ".join(rng.choice((good if ok else bad) + ["dress", "the"], 6)) for ok in liked
            ],
            "Division Name": rng.choice(["General", "Petite"], n),
            "Department Name": rng.choice(["Tops", "Dresses"], n),
            "Class Name": rng.choice(["Knits", "Blouses"], n),
            "Age": rng.integers(20, 70, n).astype(float),
            "Positive Feedback Count": rng.integers(0, 5, n).astype(float),
            "Recommended IND": liked.astype(int),
        }
    )
    modalities = {k: v for k, v in declared.items() if k in frame.columns}
    return mf.read_table(frame, label="Recommended IND", modalities=modalities)


def test_the_clothing_reference_tunes_C_on_the_training_rows_of_each_fold(
    bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LogisticRegressionCV

    seen: list[int] = []
    real_fit = LogisticRegressionCV.fit

    def spy(self, X, y, *args, **kwargs):
        seen.append(X.shape[0])
        return real_fit(self, X, y, *args, **kwargs)

    monkeypatch.setattr(LogisticRegressionCV, "fit", spy)
    table = _clothing_like(bench["clothing"].MODALITIES)
    splits = make_splits(table.y, None, cv=3, seed=0)
    reference = bench["clothing"].sklearn_reference(table, splits)
    assert set(reference) == {"sklearn:all", "sklearn:text", "sklearn:tabular"}
    # every fit saw one fold's training rows, never its test rows
    assert seen == [len(train) for _ in reference for train, _ in splits]
    for entry in reference.values():
        assert len(entry["C_per_fold"]) == 3
        assert set(entry["C_per_fold"]) <= set(bench["bench_common"].REFERENCE_CS)
    # the words give the label away: the tuned model does not fall back to the majority class
    assert reference["sklearn:text"]["f1_macro"]["mean"] > 0.9


@pytest.mark.slow
@pytest.mark.skipif(not CLOTHING_CSV.is_file(), reason=f"clothing_reviews data not found at {CLOTHING_CSV}")
def test_the_tuned_clothing_reference_is_not_a_majority_class_predictor(bench) -> None:
    """With C=1 the reference without Rating scored macro-F1 0.536 (nearly always "recommended"); tuned
    inside each training fold it is a real competitor."""
    clothing = bench["clothing"]
    table = clothing.load(CLOTHING_CSV, rating=False)
    splits = make_splits(table.y, None, cv=5, seed=0)
    reference = clothing.sklearn_reference(table, splits)
    assert reference["sklearn:all"]["f1_macro"]["mean"] > 0.7


def test_the_f1_ceiling_is_the_best_threshold_on_the_scores(bench) -> None:
    best_f1 = bench["clothing_ceiling"]._best_f1
    y = np.array([0, 0, 1, 1, 1, 0, 1])
    score = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.75, 0.9])
    # every threshold by hand: predicting positive from 0.35 up catches all four positives with two false
    # positives, F1 = 8/10; from 0.7 up, three of four with one false positive, F1 = 6/8
    f1, threshold = best_f1(y, score)
    assert f1 == pytest.approx(0.8) and threshold == pytest.approx(0.35)
    assert bench["clothing_ceiling"]._f1(y, score, 0.7) == pytest.approx(0.75)


def test_the_noise_level_oracle_scales_the_audio_on_the_noisy_rows_only(bench) -> None:
    factor_accuracies, factors = bench["quality_ceiling"].factor_accuracies, bench["quality_ceiling"].FACTORS
    y = np.array([0, 1, 0, 1])
    hit = np.array([False, False, True, True])  # rows 2 and 3 noisy: their audio says the wrong class
    audio = np.log(np.array([[0.9, 0.1], [0.1, 0.9], [0.2, 0.8], [0.8, 0.2]]))
    image = np.log(np.array([[0.4, 0.6], [0.6, 0.4], [0.7, 0.3], [0.3, 0.7]]))
    tried = dict(zip(factors.tolist(), factor_accuracies(audio, image, hit, y), strict=True))
    # factor 1 is the plain weighted product: the sure audio wins everywhere, right on the clean rows only
    assert tried[1.0] == 0.5
    # silencing the noisy rows' audio leaves the image there (right), the clean rows keep their audio
    assert tried[0.0] == 1.0
    # ln(7/3) / ln(4) = 0.61: from there on up the noisy audio outweighs the image
    assert tried[0.6] == 1.0 and tried[0.65] == 0.5
