"""The recommendation of compare: its rule on fake per-fold results, and the new per-strategy fields."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from modalfuse.evaluate import compare, format_table, paired_difference, recommend


def _entry(folds: list[float], fit: float, **extra: Any) -> dict[str, Any]:
    """A compare() strategy entry with the given per-fold accuracies and total fit seconds."""
    return {
        "accuracy": {"mean": float(np.mean(folds)), "std": float(np.std(folds)), "folds": folds},
        "fit_seconds": fit,
        **extra,
    }


UNI_A = [0.70, 0.72, 0.68, 0.71, 0.69]
UNI_B = [0.60, 0.62, 0.58, 0.61, 0.59]


def test_a_clear_winner_is_recommended() -> None:
    results = {
        "unimodal:a": _entry(UNI_A, 1.0),
        "unimodal:b": _entry(UNI_B, 1.0),
        "late:weighted": _entry([0.90, 0.92, 0.95, 0.91, 0.93], 3.0),
        "early": _entry([0.85, 0.88, 0.84, 0.86, 0.87], 9.0),
        "broken": {"error": "RuntimeError: boom", "fold": 0},
    }
    rec = recommend(results, seed=0)
    assert rec["strategy"] == "late:weighted" == rec["candidate"]
    assert rec["runner_up"] == "early" and rec["best_unimodal"] == "unimodal:a"
    assert rec["confident_gain_over_unimodal"] is True
    vs = paired_difference(
        results["late:weighted"]["accuracy"]["folds"], results["early"]["accuracy"]["folds"]
    )
    assert rec["vs_runner_up"] == vs
    reason = rec["reason"]
    assert reason.startswith("late:weighted has the best accuracy, 0.922 ± 0.017 over 5 folds")
    lo, hi = vs["ci95"]
    assert f"+0.062, 95% CI {lo:+.3f} to {hi:+.3f} against the runner-up early" in reason
    assert "against the best single modality unimodal:a" in reason and "3 s" in reason
    assert reason.count(".") >= 1 and reason.endswith(".")
    assert json.loads(json.dumps(rec)) == rec


@pytest.mark.parametrize("uni_cost, expected", [(1.0, "unimodal:a"), (5.0, "late:mean")])
def test_a_fusion_not_confidently_better_than_the_best_unimodal(uni_cost: float, expected: str) -> None:
    fused = [0.72, 0.68, 0.72, 0.69, 0.74]  # per fold: +0.02, -0.04, +0.04, -0.02, +0.05 against unimodal:a
    results = {
        "unimodal:a": _entry(UNI_A, uni_cost),
        "unimodal:b": _entry(UNI_B, 0.5),
        "late:mean": _entry(fused, 3.0),
        "late:stacking": _entry([0.66, 0.70, 0.69, 0.70, 0.68], 3.5),
    }
    rec = recommend(results, seed=0)
    assert rec["candidate"] == "late:mean" and rec["strategy"] == expected
    assert rec["confident_gain_over_unimodal"] is False
    lo, hi = rec["vs_best_unimodal"]["ci95"]
    assert lo <= 0 <= hi
    reason = rec["reason"]
    assert reason.startswith("No fusion beats the best single modality (unimodal:a) with confidence: ")
    assert "late:mean scores 0.710 ± 0.022 against 0.700 ± 0.014 over 5 folds, +0.010, 95% CI" in reason
    if expected == "unimodal:a":
        assert "unimodal:a is the cheaper fit (1 s against 3 s), so it is recommended." in reason
    else:
        assert "late:mean is kept as it costs no more to fit (3 s against 5 s)." in reason


def test_the_no_fusion_sentence_is_only_used_when_it_is_true() -> None:
    """The top fusion is not confidently better, but another fusion is: the reason names the top one."""
    results = {
        "unimodal:a": _entry([0.70] * 5, 1.0),
        "late:mean": _entry([0.95, 0.60, 0.95, 0.62, 0.90], 3.0),  # better on average, erratic
        "late:product": _entry([0.78, 0.77, 0.79, 0.78, 0.78], 3.0),  # steadily better
    }
    rec = recommend(results, seed=0)
    assert rec["candidate"] == "late:mean" and rec["strategy"] == "unimodal:a"
    assert rec["reason"].startswith(
        "late:mean does not beat the best single modality (unimodal:a) with confidence"
    )


def test_a_tie_is_broken_by_fit_cost() -> None:
    folds = [0.8, 0.9, 0.85]
    results = {
        "unimodal:a": _entry([0.5, 0.6, 0.55], 0.1),
        "early": _entry(folds, 4.0),
        "late:mean": _entry(folds, 2.0),
    }
    rec = recommend(results, seed=0)
    assert rec["candidate"] == rec["strategy"] == "late:mean" and rec["runner_up"] == "early"
    assert rec["reason"].startswith(
        "late:mean has the best accuracy, 0.850 ± 0.041 over 3 folds, +0.000, "
        "95% CI +0.000 to +0.000 against the runner-up early"
    )
    # between unimodal strategies the tie sentence is used
    results = {"unimodal:a": _entry(folds, 2.0), "unimodal:b": _entry(folds, 1.0)}
    rec = recommend(results, seed=0)
    assert rec["strategy"] == "unimodal:b"
    assert rec["reason"].startswith("unimodal:b ties with unimodal:a on accuracy (0.850 ± 0.041 over 3 folds")
    assert rec["reason"].endswith("and is the cheaper fit (1 s against 2 s).")


def test_a_unimodal_winner_is_reported_as_such_and_fit_cost_counts_reused_models() -> None:
    results = {
        "unimodal:a": _entry([0.9, 0.9, 0.8], 2.0),
        "late:mean": _entry([0.8, 0.8, 0.8], 0.2, fit_cost_seconds=4.2),
    }
    rec = recommend(results, seed=0)
    assert rec["strategy"] == "unimodal:a" and rec["confident_gain_over_unimodal"] is None
    assert rec["reason"].startswith(
        "No fusion beats the best single modality (unimodal:a): unimodal:a has the best accuracy"
    )
    assert "for a fit cost of 2 s" in rec["reason"]
    # the fusion is not confidently better, and its standalone cost (4.2 s), not its 0.2 s, is compared
    results["late:mean"] = _entry([0.95, 0.8, 0.9], 0.2, fit_cost_seconds=4.2)
    rec = recommend(results, seed=0)
    assert rec["candidate"] == "late:mean" and rec["strategy"] == "unimodal:a"
    assert "(2 s against 4.2 s)" in rec["reason"]


def test_degenerate_inputs() -> None:
    assert recommend({})["strategy"] is None
    failed = recommend({"a": {"error": "RuntimeError: x", "fold": 0}})
    assert failed["strategy"] is None and "nothing to recommend" in failed["reason"]
    one = recommend({"early": _entry([0.5, 0.7], 1.5)})
    assert one["strategy"] == "early" and one["runner_up"] is None
    assert one["reason"] == (
        "early is the only strategy that completed: accuracy 0.600 ± 0.100 over 2 folds, "
        "fit cost 1.5 s; there is nothing to compare it with."
    )
    json.dumps([failed, one], allow_nan=False)


# ---------------------------------------------------------------------------------- through compare()
class _Table:
    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y, self.groups, self.group_column, self.name = x, y, None, None, "toy"

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: np.ndarray) -> _Table:
        return _Table(self.x[idx], self.y[idx])


class _Threshold(ClassifierMixin, BaseEstimator):
    """Predicts 1 above ``cut``; reports parameters and (optionally) reused training seconds."""

    def __init__(self, cut: float = 0.0, n_params: int | None = 10, reused: float = 0.0) -> None:
        self.cut, self.n_params, self.reused = cut, n_params, reused

    def fit(self, table: _Table) -> _Threshold:
        self.classes_ = np.array([0, 1])
        if self.n_params is not None:
            self.n_parameters_ = self.n_params
        self.reused_fit_seconds_ = self.reused
        return self

    def predict_proba(self, table: _Table) -> np.ndarray:
        return np.eye(2)[(table.x > self.cut).astype(int)]


def test_compare_reports_costs_pairs_and_recommendation() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    y = (x > 0).astype(int)
    strategies = {
        "unimodal:good": _Threshold(0.0, n_params=3),
        "unimodal:bad": _Threshold(1.0, n_params=None),
        "late:mean": _Threshold(0.0, n_params=7, reused=0.5),
    }
    result = compare(strategies, _Table(x, y), cv=4, seed=0)
    s = result["strategies"]
    assert s["unimodal:good"]["n_parameters"] == 3 and s["unimodal:bad"]["n_parameters"] is None
    assert s["late:mean"]["n_parameters"] == 7
    assert s["late:mean"]["fit_cost_seconds"] == pytest.approx(s["late:mean"]["fit_seconds"] + 4 * 0.5)
    assert s["unimodal:good"]["fit_cost_seconds"] == pytest.approx(s["unimodal:good"]["fit_seconds"])
    for entry in s.values():
        assert entry["predict_seconds"] == pytest.approx(sum(entry["predict_seconds_per_fold"]))
    assert result["best"] == {
        "strategy": "unimodal:good",
        "unimodal": "unimodal:good",
        "baseline": "unimodal:good",
    }
    assert "bootstrap" in result["paired_method"] and "95%" in result["paired_method"]
    assert set(result["paired"]) == set(result["paired_vs_best"]) == {"unimodal:bad", "late:mean"}
    assert result["paired_vs_best"]["late:mean"]["vs"] == "unimodal:good"
    assert result["paired_vs_best"]["late:mean"]["mean_diff"] == 0.0
    assert result["paired_vs_best"]["unimodal:bad"]["mean_diff"] < 0
    rec = result["recommendation"]
    # late:mean ties with unimodal:good on accuracy, and costs more: the single modality is recommended
    assert rec["strategy"] == "unimodal:good" and rec["runner_up"] == "late:mean"
    assert rec["reason"].startswith("No fusion beats the best single modality (unimodal:good)")
    assert "exact tie goes to the cheaper" in rec["rule"]
    assert json.loads(json.dumps(result, allow_nan=False)) == result

    text = format_table(result)
    lines = text.splitlines()
    assert lines[1].split() == ["strategy", "accuracy", "macro-F1", "fit", "s", "predict", "s", "parameters"]
    good = next(line for line in lines if line.startswith("unimodal:good"))
    assert good.split()[-1] == "3"
    assert next(line for line in lines if line.startswith("unimodal:bad")).split()[-1] == "n/a"
    assert "fit s includes the training of per-input models reused" in text
    assert lines[-1] == f"Recommendation: unimodal:good. {rec['reason']}"
    assert format_table(json.loads(json.dumps(result))) == text


# ------------------------------------------------------------------------------- the tuned linear baseline
def test_a_fusion_must_beat_the_linear_baseline_too() -> None:
    """Confidently better than every single modality but not than the tuned linear baseline: the linear
    baseline is named, and recommended as the cheaper fit."""
    results = {
        "unimodal:a": _entry(UNI_A, 1.0),
        "unimodal:b": _entry(UNI_B, 1.0),
        "linear": _entry([0.88, 0.93, 0.90, 0.92, 0.90], 0.5),
        "early": _entry([0.90, 0.92, 0.95, 0.91, 0.93], 9.0),
    }
    rec = recommend(results, seed=0)
    assert rec["candidate"] == "early" and rec["best_baseline"] == "linear"
    assert rec["confident_gain_over_unimodal"] is True and rec["confident_gain_over_baseline"] is False
    assert rec["strategy"] == "linear"
    assert rec["reason"].startswith("No fusion beats the tuned linear baseline (linear) with confidence: ")
    assert "early scores 0.922 ± 0.017 against 0.906 ± 0.017 over 5 folds, +0.016, 95% CI" in rec["reason"]
    assert rec["reason"].endswith("and linear is the cheaper fit (0.5 s against 9 s), so it is recommended.")
    assert rec["vs_best_baseline"] == paired_difference(
        results["early"]["accuracy"]["folds"], results["linear"]["accuracy"]["folds"]
    )


def test_a_fusion_that_beats_every_baseline_with_confidence_is_recommended() -> None:
    results = {
        "unimodal:a": _entry(UNI_A, 1.0),
        "linear": _entry([0.80, 0.81, 0.79, 0.80, 0.82], 0.5),
        "late:mean": _entry([0.90, 0.92, 0.95, 0.91, 0.93], 3.0),
    }
    rec = recommend(results, seed=0)
    assert rec["strategy"] == "late:mean" and rec["runner_up"] == "linear"
    assert rec["confident_gain_over_baseline"] is True
    # the runner-up is the best baseline: the reason needs no second comparison
    assert rec["reason"].startswith("late:mean has the best accuracy, 0.922 ± 0.017 over 5 folds, +0.118")
    assert "against the runner-up linear, for a fit cost of 3 s." in rec["reason"]


def test_the_linear_baseline_on_top_is_reported_as_a_baseline() -> None:
    results = {
        "unimodal:a": _entry(UNI_A, 1.0),
        "linear": _entry([0.95, 0.96, 0.94, 0.95, 0.97], 0.5),
        "early": _entry([0.90, 0.92, 0.95, 0.91, 0.93], 9.0),
    }
    rec = recommend(results, seed=0)
    assert rec["strategy"] == "linear" and rec["confident_gain_over_baseline"] is None
    assert rec["reason"].startswith(
        "No fusion beats the tuned linear baseline (linear): linear has the best accuracy, 0.954 ± 0.010"
    )


def test_a_tie_names_the_same_best_single_modality_in_the_table_and_the_recommendation() -> None:
    """Two unimodal strategies with the same accuracy: the cheaper one (listed second) is the best for
    both the table's marker and the recommendation (it used to be the first listed in the table)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=60)
    y = (x > 0).astype(int)
    strategies = {
        "unimodal:costly": _Threshold(0.0, reused=5.0),
        "unimodal:cheap": _Threshold(0.0, reused=0.0),
        "late:mean": _Threshold(0.5, reused=5.0),
    }
    result = compare(strategies, _Table(x, y), cv=4, seed=0)
    acc = {n: e["accuracy"]["mean"] for n, e in result["strategies"].items()}
    assert acc["unimodal:costly"] == acc["unimodal:cheap"] > acc["late:mean"]
    rec = result["recommendation"]
    assert rec["best_unimodal"] == rec["strategy"] == "unimodal:cheap"
    assert result["best"] == {
        "strategy": "unimodal:cheap",
        "unimodal": "unimodal:cheap",
        "baseline": "unimodal:cheap",
    }
    assert "* best single modality: unimodal:cheap" in format_table(result)
    assert set(result["paired"]) == {"unimodal:costly", "late:mean"}
