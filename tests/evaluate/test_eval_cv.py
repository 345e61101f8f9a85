"""Tests of cross_validate, compare, paired_difference and format_table with a fake table and estimators."""

from __future__ import annotations

import itertools
import json
from typing import Any, ClassVar

import numpy as np
import pytest
from scipy import stats
from sklearn.base import BaseEstimator, ClassifierMixin

from modalfuse._errors import SchemaError
from modalfuse.evaluate import compare, cross_validate, format_table, make_splits, paired_difference


class FakeTable:
    """The duck-typed table contract: len, y, groups, group_column, name, take."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        groups: np.ndarray | None = None,
        *,
        group_column: str | None = None,
        name: str = "fake",
        index: np.ndarray | None = None,
    ) -> None:
        self.x = np.asarray(x, dtype=float)
        self.y = np.asarray(y)
        self.groups = None if groups is None else np.asarray(groups)
        self.group_column = group_column
        self.name = name
        self.index = np.arange(len(self.y)) if index is None else index

    def __len__(self) -> int:
        return len(self.y)

    def take(self, indices: np.ndarray) -> FakeTable:
        indices = np.asarray(indices)
        return FakeTable(
            self.x[indices],
            self.y[indices],
            None if self.groups is None else self.groups[indices],
            group_column=self.group_column,
            name=self.name,
            index=self.index[indices],
        )


class PriorClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the class frequencies of its training rows for every row."""

    def fit(self, table: FakeTable) -> PriorClassifier:
        self.classes_, counts = np.unique(table.y, return_counts=True)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, table: FakeTable) -> np.ndarray:
        return np.tile(self.prior_, (len(table), 1))


class CentroidClassifier(ClassifierMixin, BaseEstimator):
    """Nearest class mean on the table's numeric feature, as one-hot probabilities."""

    def fit(self, table: FakeTable) -> CentroidClassifier:
        self.classes_ = np.unique(table.y)
        self.centroids_ = np.array([table.x[table.y == c].mean() for c in self.classes_])
        return self

    def predict_proba(self, table: FakeTable) -> np.ndarray:
        nearest = np.argmin(np.abs(table.x[:, None] - self.centroids_[None, :]), axis=1)
        return np.eye(len(self.classes_))[nearest]


class RecordingClassifier(PriorClassifier):
    """A prior classifier that logs, class-wide, the original row indices it was fitted on and asked about."""

    log: ClassVar[list[tuple[str, str, int, frozenset[int]]]] = []

    def __init__(self, tag: str = "rec") -> None:
        self.tag = tag

    _serial: ClassVar[itertools.count] = itertools.count()

    def fit(self, table: FakeTable) -> RecordingClassifier:
        # a serial number, not id(self): ids of collected clones are reused
        self.owner_ = next(RecordingClassifier._serial)
        RecordingClassifier.log.append((self.tag, "fit", self.owner_, frozenset(table.index.tolist())))
        return super().fit(table)

    def predict_proba(self, table: FakeTable) -> np.ndarray:
        RecordingClassifier.log.append((self.tag, "predict", self.owner_, frozenset(table.index.tolist())))
        return super().predict_proba(table)


class FailingClassifier(PriorClassifier):
    """Raises in fit when row ``fail_when_held_out`` is in the test fold (or always when it is None)."""

    def __init__(self, fail_when_held_out: int | None = None) -> None:
        self.fail_when_held_out = fail_when_held_out

    def fit(self, table: FakeTable) -> FailingClassifier:
        if self.fail_when_held_out is None or self.fail_when_held_out not in table.index:
            raise RuntimeError("boom")
        return super().fit(table)


@pytest.fixture(autouse=True)
def _clear_log() -> None:
    RecordingClassifier.log.clear()


def _prior_table() -> FakeTable:
    rng = np.random.default_rng(0)
    y = rng.permutation(np.array(["a"] * 30 + ["b"] * 20 + ["c"] * 10))
    return FakeTable(np.zeros(len(y)), y, name="prior")


def _centroid_table() -> FakeTable:
    # 25 rows of "a" (20 at x=0, 5 mislabelled-looking at x=10) and 25 rows of "b" at x=10
    y = np.array(["a"] * 25 + ["b"] * 25)
    x = np.array([0.0] * 20 + [10.0] * 5 + [10.0] * 25)
    order = np.random.default_rng(1).permutation(len(y))
    return FakeTable(x[order], y[order], name="centroid")


def _grouped_table(n_groups: int = 6, per_group: int = 10) -> FakeTable:
    rng = np.random.default_rng(2)
    groups = np.repeat([f"spk{g}" for g in range(n_groups)], per_group)
    y = np.tile(np.array([0, 1]), len(groups) // 2)
    x = y * 5.0 + rng.normal(0, 0.5, len(y))
    return FakeTable(x, y, groups, group_column="speaker", name="grouped")


def test_cross_validate_prior_classifier_exact_accuracy() -> None:
    table = _prior_table()
    result = cross_validate(PriorClassifier(), table, cv=5, seed=0)
    # every stratified test fold holds 6 a, 4 b, 2 c; the prior always predicts "a"
    assert result["n_folds"] == 5
    assert result["fold_sizes"] == [12] * 5
    assert result["classes"] == ["a", "b", "c"]
    acc = result["metrics"]["accuracy"]
    assert acc["folds"] == pytest.approx([0.5] * 5)
    assert acc["mean"] == pytest.approx(0.5) and acc["std"] == pytest.approx(0.0)
    assert result["metrics"]["balanced_accuracy"]["mean"] == pytest.approx(1 / 3)
    assert result["metrics"]["roc_auc"]["mean"] == pytest.approx(0.5)
    assert result["confusion_matrix"] == [[30, 0, 0], [20, 0, 0], [10, 0, 0]]
    assert result["cv"]["kind"] == "stratified"
    assert set(result["fit_seconds"]) == {"mean", "std", "folds"}
    assert len(result["predict_seconds"]["folds"]) == 5


def test_cross_validate_centroid_classifier_exact_accuracy_and_predictions() -> None:
    table = _centroid_table()
    result = cross_validate(CentroidClassifier(), table, cv=5, seed=3, return_predictions=True)
    # the 5 "a" rows at x=10 are always nearer the "b" centroid; all others are right
    assert result["metrics"]["accuracy"]["mean"] == pytest.approx(45 / 50)
    assert result["confusion_matrix"] == [[20, 5], [0, 25]]
    assert "f1_positive" in result["metrics"] and "pr_auc_positive" in result["metrics"]
    preds = result["predictions"]
    assert np.array_equal(np.sort(preds["index"]), np.arange(50))
    assert preds["proba"].shape == (50, 2)
    assert np.allclose(preds["proba"].sum(axis=1), 1.0)
    predicted = np.array(result["classes"])[preds["proba"].argmax(axis=1)]
    wrong = preds["index"][predicted != table.y[preds["index"]]]
    assert sorted(table.x[wrong].tolist()) == [10.0] * 5
    assert all(table.y[wrong] == "a")
    folds = make_splits(table.y, cv=5, seed=3)
    for fold, (_, test) in enumerate(folds):
        assert np.array_equal(np.sort(preds["index"][preds["fold"] == fold]), test)


def test_cross_validate_is_repeatable_and_reports_progress() -> None:
    table = _centroid_table()
    events: list[tuple[str, dict[str, Any]]] = []
    first = cross_validate(
        CentroidClassifier(), table, cv=4, seed=5, progress=lambda e, **i: events.append((e, i))
    )
    again = cross_validate(CentroidClassifier(), table, cv=4, seed=5)
    assert first["metrics"] == again["metrics"]
    assert [e for e, _ in events] == ["start", "step", "step", "step", "step", "end"]
    assert events[0][1]["total"] == 4
    assert [i["fold"] for e, i in events if e == "step"] == [0, 1, 2, 3]


def test_cross_validate_aligns_columns_when_a_training_fold_lacks_a_class() -> None:
    y = np.array(["x"] * 8 + ["y"] * 8 + ["z"])
    table = FakeTable(np.zeros(len(y)), y)
    with pytest.raises(SchemaError, match="'z'"):
        cross_validate(PriorClassifier(), table, cv=3)
    result = cross_validate(PriorClassifier(), table, cv="kfold:3", seed=0, return_predictions=True)
    assert result["cv"]["kind"] == "kfold"
    assert sum(map(sum, result["confusion_matrix"])) == len(y)
    assert np.allclose(result["predictions"]["proba"].sum(axis=1), 1.0)
    # the fold that holds the single "z" row cannot know "z": its probability is 0 there
    z_row = int(np.flatnonzero(y == "z")[0])
    at = int(np.flatnonzero(result["predictions"]["index"] == z_row)[0])
    assert result["predictions"]["proba"][at, 2] == 0.0


def test_cross_validate_raises_the_estimator_error() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        cross_validate(FailingClassifier(), _prior_table(), cv=3)


def test_fitted_estimator_never_sees_test_rows() -> None:
    table = _grouped_table()
    cross_validate(RecordingClassifier(tag="leak"), table, cv="loso")
    log = [entry for entry in RecordingClassifier.log if entry[0] == "leak"]
    fits = {owner: rows for _, kind, owner, rows in log if kind == "fit"}
    predicts = {owner: rows for _, kind, owner, rows in log if kind == "predict"}
    assert len(fits) == 6 and fits.keys() == predicts.keys()
    for owner, train_rows in fits.items():
        test_rows = predicts[owner]
        assert train_rows.isdisjoint(test_rows)
        assert set(table.groups[sorted(train_rows)]).isdisjoint(table.groups[sorted(test_rows)])
        assert len(train_rows) + len(test_rows) == len(table)


def test_compare_uses_identical_folds_and_isolates_failures() -> None:
    table = _grouped_table()
    strategies = {
        "unimodal:centroid": CentroidClassifier(),
        "unimodal:prior": PriorClassifier(),
        "fused": RecordingClassifier(tag="fused"),
        "broken": FailingClassifier(),
        "late-break": FailingClassifier(fail_when_held_out=7),
        "other": RecordingClassifier(tag="other"),
    }
    events: list[tuple[str, dict[str, Any]]] = []
    result = compare(strategies, table, cv="loso", seed=0, progress=lambda e, **i: events.append((e, i)))

    fused_fits = [rows for tag, kind, _, rows in RecordingClassifier.log if tag == "fused" and kind == "fit"]
    other_fits = [rows for tag, kind, _, rows in RecordingClassifier.log if tag == "other" and kind == "fit"]
    assert len(fused_fits) == 6 and fused_fits == other_fits
    # folds are the outer loop: the two recorders alternate fold by fold
    fit_tags = [tag for tag, kind, _, _ in RecordingClassifier.log if kind == "fit"]
    assert fit_tags == ["fused", "other"] * 6

    assert result["strategies"]["broken"] == {"error": "RuntimeError: boom", "fold": 0}
    fold_of_7 = next(
        i for i, (_, test) in enumerate(make_splits(table.y, table.groups, cv="loso")) if 7 in test
    )
    assert result["strategies"]["late-break"] == {"error": "RuntimeError: boom", "fold": fold_of_7}
    centroid = result["strategies"]["unimodal:centroid"]
    assert centroid["accuracy"]["folds"] == pytest.approx([1.0] * 6)
    assert result["strategies"]["fused"]["accuracy"]["folds"] == pytest.approx([0.5] * 6)
    assert len(centroid["fit_seconds_per_fold"]) == 6
    assert centroid["fit_seconds"] == pytest.approx(sum(centroid["fit_seconds_per_fold"]))
    assert centroid["confusion_matrix"] == [[30, 0], [0, 30]]

    assert result["dataset"] == "grouped" and result["n_rows"] == 60 and result["classes"] == [0, 1]
    assert result["cv"] == {
        "kind": "leave-one-group-out",
        "n_folds": 6,
        "seed": 0,
        "groups": "speaker",
        "fold_sizes": [10] * 6,
        "held_out_groups": [[f"spk{g}"] for g in range(6)],
    }
    assert result["best"] == {
        "strategy": "unimodal:centroid",
        "unimodal": "unimodal:centroid",
        "baseline": "unimodal:centroid",
    }
    assert set(result["paired"]) == {"unimodal:prior", "fused", "other"}
    paired = result["paired"]["fused"]
    assert paired["vs"] == "unimodal:centroid"
    assert paired["mean_diff"] == pytest.approx(-0.5)
    assert paired["ci95"] == pytest.approx([-0.5, -0.5])
    assert paired["wins"] == 0 and paired["method"] == "paired bootstrap over folds"
    assert result["paired_vs_best"]["fused"] == paired  # the best unimodal is also the best overall
    assert centroid["n_parameters"] is None  # the fake estimators have no n_parameters_
    assert centroid["fit_cost_seconds"] == pytest.approx(centroid["fit_seconds"])
    assert len(centroid["predict_seconds_per_fold"]) == 6
    assert result["recommendation"]["strategy"] == "unimodal:centroid"
    assert "bootstrap" in result["paired_method"]

    assert events[0] == ("start", {"total": 36, "n_folds": 6, "strategies": list(strategies), "resumed": 0})
    assert sum(1 for e, _ in events if e == "step") == 36 and events[-1][0] == "end"

    text = json.dumps(result, allow_nan=False)
    assert json.loads(text) == result


def test_compare_stratified_folds_without_unimodal() -> None:
    table = _prior_table()
    result = compare(
        {"prior": PriorClassifier(), "rec": RecordingClassifier()},
        table,
        cv=3,
        seed=1,
        dataset_name="renamed",
    )
    assert result["dataset"] == "renamed"
    assert result["cv"]["kind"] == "stratified" and "held_out_groups" not in result["cv"]
    # the two tie on every fold, so the cheaper fit ranks first: which one that is depends on the machine's load
    best = result["best"]["strategy"]
    other = ({"prior", "rec"} - {best}).pop()
    assert result["best"] == {"strategy": best, "unimodal": None, "baseline": None}
    assert result["paired"] == {}
    assert set(result["paired_vs_best"]) == {other}
    rec = result["recommendation"]
    assert rec["strategy"] == best and " ties with " in rec["reason"]
    assert (
        result["strategies"]["prior"]["accuracy"]["folds"] == result["strategies"]["rec"]["accuracy"]["folds"]
    )
    json.dumps(result, allow_nan=False)


def test_compare_where_every_strategy_fails_still_returns() -> None:
    result = compare({"a": FailingClassifier(), "b": FailingClassifier()}, _prior_table(), cv=3)
    assert result["best"] == {"strategy": None, "unimodal": None, "baseline": None}
    assert all(entry["fold"] == 0 for entry in result["strategies"].values())
    assert "failed in fold 0" in format_table(result)


def test_paired_difference_values() -> None:
    a = [0.8, 0.9, 0.7, 0.85, 0.9]
    b = [0.7, 0.8, 0.7, 0.80, 0.8]
    diffs = np.array(a) - np.array(b)
    out = paired_difference(a, b, seed=0)
    assert out["mean_diff"] == pytest.approx(0.07)
    assert out["n"] == 5 and out["wins"] == 4 and out["win_rate"] == pytest.approx(0.8)
    lo, hi = out["ci95"]
    assert diffs.min() <= lo <= out["mean_diff"] <= hi <= diffs.max()
    assert out["p_value"] == pytest.approx(stats.wilcoxon(diffs).pvalue)
    assert paired_difference(a, b, seed=0) == out
    assert paired_difference(a[:4], b[:4])["p_value"] is None
    same = paired_difference([0.5] * 6, [0.5] * 6)
    assert same["mean_diff"] == 0.0 and same["ci95"] == [0.0, 0.0] and same["p_value"] == 1.0
    skipped = paired_difference([0.5, None, 0.7], [0.4, 0.1, None])
    assert skipped["n"] == 1 and skipped["mean_diff"] == pytest.approx(0.1)
    assert paired_difference([None], [0.3])["mean_diff"] is None
    with pytest.raises(ValueError):
        paired_difference([0.1], [0.1, 0.2])


def test_format_table_sorts_by_accuracy_and_marks_best_unimodal() -> None:
    table = _grouped_table()
    result = compare(
        {
            "fused": PriorClassifier(),
            "unimodal:centroid": CentroidClassifier(),
            "broken": FailingClassifier(),
        },
        table,
        cv=3,
        seed=0,
    )
    text = format_table(result)
    lines = text.splitlines()
    assert "grouped" in lines[0] and "grouped by speaker" in lines[0]
    body = [line for line in lines if line.startswith(("fused", "unimodal:", "broken"))]
    assert [line.split()[0] for line in body] == ["unimodal:centroid", "fused", "broken"]
    assert body[0].split()[1] == "*"
    assert "1.000 ± 0.000" in body[0]
    assert "failed in fold 0: RuntimeError: boom" in body[2]
    assert "* best single modality: unimodal:centroid" in text
    assert lines[1].split() == ["strategy", "accuracy", "macro-F1", "fit", "s", "predict", "s", "parameters"]
    assert body[0].split()[-1] == "n/a"  # no parameter count
    assert lines[-1].startswith("Recommendation: unimodal:centroid. No fusion beats the best single modality")
    # it also formats a result read back from JSON
    assert format_table(json.loads(json.dumps(result))) == text


def test_compare_summarises_fold_metrics_of_the_strategies_that_report_them() -> None:
    table = _prior_table()
    seen: list[tuple[str, int]] = []

    def fold_metrics(name: str, fitted: Any, test_table: FakeTable) -> dict[str, float] | None:
        seen.append((name, len(test_table)))
        return {"test_rows": float(len(test_table))} if name == "rec" else None

    result = compare(
        {"prior": PriorClassifier(), "rec": RecordingClassifier()},
        table,
        cv=3,
        seed=1,
        fold_metrics=fold_metrics,
    )
    assert result["strategies"]["rec"]["test_rows"]["folds"] == [float(n) for n in result["cv"]["fold_sizes"]]
    assert "test_rows" not in result["strategies"]["prior"]
    assert [n for n, _ in seen] == ["prior", "rec"] * 3
