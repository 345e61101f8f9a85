"""Modality Shapley values: the exact and sampled estimators against brute force, the Shapley axioms on
every strategy, the fast coalition paths against plain masked predictions, ``explain`` and its CLI."""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import modalfuse as mf
from modalfuse.cli import app
from modalfuse.explain import (
    ShapleyValues,
    coalition_matrix,
    global_summary,
    ranking_agrees,
    shapley_values,
)
from modalfuse.fusion import FusionStrategy

FAST = {"epochs": 2, "min_steps": 20, "batch_size": 16, "inner_folds": 2, "n_threads": 1}
INPUTS = ["image", "audio", "text", "tabular"]
ROWS = np.arange(8)  # rows 1-4 lack one input each


@pytest.fixture(scope="module")
def fitted(table) -> dict[str, mf.MultimodalClassifier]:
    """Strategies of every family, fitted once on the synthetic table; more are added on demand."""
    return {}


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _clf(fitted, table, name: str) -> mf.MultimodalClassifier:
    if name not in fitted:
        fusion, _, option = name.partition("+")
        options = {"end_to_end": True} if option == "e2e" else None
        missing = option if option in ("fill", "generate") else "mask"
        fitted[name] = mf.MultimodalClassifier(
            fusion=fusion, fusion_options=options, missing=missing, seed=0, **FAST
        ).fit(table)
    return fitted[name]


# ------------------------------------------------------------------------------ brute force, by definition
def _brute_force(value, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Shapley values by averaging marginal contributions over all m! orders, and the interaction index
    from its subset definition; ``value(frozenset) -> array`` (any shape)."""
    phi = [0.0] * m
    orders = list(itertools.permutations(range(m)))
    for order in orders:
        before: set[int] = set()
        for i in order:
            phi[i] = phi[i] + (value(frozenset(before | {i})) - value(frozenset(before))) / len(orders)
            before.add(i)
    inter = {}
    for i, j in itertools.combinations(range(m), 2):
        rest = [k for k in range(m) if k not in (i, j)]
        total = 0.0
        for size in range(len(rest) + 1):
            w = math.factorial(size) * math.factorial(m - size - 2) / math.factorial(m - 1)
            for s in itertools.combinations(rest, size):
                s = frozenset(s)
                total = total + w * (value(s | {i, j}) - value(s | {i}) - value(s | {j}) + value(s))
        inter[i, j] = total
    return np.stack(phi, axis=1), inter


def _blank(frame: pd.DataFrame, table, inputs: list[str], keep: frozenset[int]) -> pd.DataFrame:
    """The rows with every input outside ``keep`` emptied (its columns set to missing), as a user would."""
    out = frame.copy()
    for i, name in enumerate(inputs):
        if i not in keep:
            for column in table.inputs[name][1]:
                out[column] = None
    return out


@pytest.mark.parametrize("name", ["early", "late:weighted"])
def test_exact_values_equal_a_brute_force_over_blanked_tables(fitted, table, name: str) -> None:
    clf = _clf(fitted, table, name)
    frame = table.frame.iloc[ROWS].reset_index(drop=True)
    inputs = clf.fusion_.coalition_inputs()
    assert sorted(inputs) == sorted(INPUTS)
    cache: dict[frozenset[int], np.ndarray] = {}

    def value(keep: frozenset[int]) -> np.ndarray:  # the model's answer on the blanked table, (N, K)
        if keep not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cache[keep] = clf.predict_proba(_blank(frame, table, inputs, keep))
        return cache[keep]

    phi, inter = _brute_force(value, len(inputs))
    sv = clf.shapley_values(frame)
    np.testing.assert_allclose(sv.values, phi, atol=1e-6)
    np.testing.assert_allclose(sv.base, value(frozenset()), atol=1e-6)
    np.testing.assert_allclose(sv.proba, clf.predict_proba(frame), atol=1e-6)
    for (i, j), expected in inter.items():
        np.testing.assert_allclose(sv.interactions[:, i, j], expected, atol=1e-6)
        np.testing.assert_allclose(sv.interactions[:, j, i], expected, atol=1e-6)
    assert sv.method == "exact" and sv.n_coalitions == 2 ** len(inputs)


def test_exact_values_of_a_plain_function_equal_the_definition() -> None:
    rng = np.random.default_rng(0)
    m, n, k = 5, 7, 3
    table = rng.dirichlet(np.ones(k), size=(2**m, n))  # any value per coalition, row and class

    def proba_of(coalitions: np.ndarray) -> np.ndarray:
        index = (coalitions.astype(int) << np.arange(m)).sum(axis=1)
        return table[index]

    present = np.ones((n, m), bool)
    sv = shapley_values(proba_of, present, list("abcde"), ["x", "y", "z"])
    phi, inter = _brute_force(lambda s: table[sum(1 << i for i in s)], m)
    np.testing.assert_allclose(sv.values, phi, atol=1e-12)
    for (i, j), expected in inter.items():
        np.testing.assert_allclose(sv.interactions[:, i, j], expected, atol=1e-12)
    # log-odds units: the same definition applied to log(p / (1 - p))
    logit = np.log(table) - np.log1p(-table)
    phi_l, _ = _brute_force(lambda s: logit[sum(1 << i for i in s)], m)
    np.testing.assert_allclose(sv.values_log_odds, phi_l, atol=1e-9)
    assert sv.efficiency_gap() < 1e-12


def test_an_input_the_row_lacks_is_a_null_player() -> None:
    rng = np.random.default_rng(1)
    m, n = 3, 6
    table = rng.dirichlet(np.ones(2), size=(2**m, n))

    def proba_of(coalitions: np.ndarray) -> np.ndarray:
        return table[(coalitions.astype(int) << np.arange(m)).sum(axis=1)]

    present = np.ones((n, m), bool)
    present[0, 1] = present[3, 2] = False
    present[5] = False  # a row with no input at all
    sv = shapley_values(proba_of, present, ["a", "b", "c"], [0, 1])
    assert (sv.values[0, 1] == 0).all() and (sv.values[3, 2] == 0).all() and (sv.values[5] == 0).all()
    assert (sv.values_log_odds[0, 1] == 0).all() and (sv.interactions[0, 1] == 0).all()
    # the row's own game: coalitions with the absent input are worth what they are worth without it
    np.testing.assert_allclose(sv.proba[0], table[0b101, 0])
    np.testing.assert_allclose(sv.proba[5], sv.base[5])
    assert sv.efficiency_gap() < 1e-12


# ------------------------------------------------------------------------------------------ sampling
def _pair_game(m: int, n: int, a: np.ndarray, b: float):
    """A game with known values: p(S) = 0.3 + sum of a_i over S + b when inputs 0, 1 and 2 are all in S
    (a pairwise term would be exact: a permutation and its reverse order every pair both ways)."""

    def proba_of(coalitions: np.ndarray) -> np.ndarray:
        p = 0.3 + coalitions @ a + b * (coalitions[:, 0] & coalitions[:, 1] & coalitions[:, 2])
        p = np.repeat(p[:, None], n, axis=1)
        return np.stack([p, 1 - p], axis=2)

    truth = a.copy()
    truth[:3] += b / 3
    return proba_of, truth


def test_sampled_values_beyond_ten_inputs_are_efficient_with_honest_errors() -> None:
    m, n = 12, 4
    a = np.linspace(-0.02, 0.04, m)
    proba_of, truth = _pair_game(m, n, a, 0.1)
    present = np.ones((n, m), bool)
    present[1, 5] = False
    sv = shapley_values(
        proba_of, present, [f"x{i}" for i in range(m)], ["p", "q"], n_permutations=200, seed=3
    )
    assert sv.method == "permutation" and sv.n_permutations == 200 and sv.interactions is None
    assert sv.n_coalitions <= 200 * (m - 1) + 2 * m + 2
    assert sv.efficiency_gap() < 1e-12  # every permutation's contributions add up exactly
    est, se = sv.values[0, :, 0], sv.standard_error[0, :, 0]
    np.testing.assert_allclose(est[3:], truth[3:], atol=1e-12)  # additive players: no sampling error
    assert (se[3:] < 1e-12).all() and (se[:3] > 0.001).all()
    assert (np.abs(est[:3] - truth[:3]) <= 4 * se[:3]).all()
    assert sv.values[1, 5, 0] == 0.0
    # the estimate tightens with the budget
    wide = shapley_values(proba_of, present, [f"x{i}" for i in range(m)], ["p", "q"], n_permutations=20)
    assert wide.standard_error[0, 0, 0] > sv.standard_error[0, 0, 0]


def test_sampling_agrees_with_exact_values_on_a_small_game() -> None:
    rng = np.random.default_rng(2)
    table = rng.dirichlet(np.ones(2), size=(2**4, 3))

    def proba_of(coalitions: np.ndarray) -> np.ndarray:
        return table[(coalitions.astype(int) << np.arange(4)).sum(axis=1)]

    present = np.ones((3, 4), bool)
    exact = shapley_values(proba_of, present, list("abcd"), [0, 1], method="exact")
    sampled = shapley_values(
        proba_of, present, list("abcd"), [0, 1], method="permutation", n_permutations=400
    )
    assert (np.abs(sampled.values - exact.values) <= 4 * sampled.standard_error + 1e-12).all()


def test_bad_settings_are_clear_errors() -> None:
    with pytest.raises(mf.OptionError, match="method must be"):
        shapley_values(lambda c: None, np.ones((1, 2), bool), ["a", "b"], [0, 1], method="kernel")
    with pytest.raises(mf.OptionError, match="n_permutations"):
        shapley_values(lambda c: None, np.ones((1, 2), bool), ["a", "b"], [0, 1], n_permutations=1)


# ------------------------------------------------------------------------------------ every strategy
STRATEGIES = ["late:stacking", "unimodal:text", "linear", "early+e2e", "attention", "cca"]
# under fill / generate an input left out of a coalition is imputed (from the inputs the coalition keeps),
# exactly as a missing input is, not dropped to the prior
POLICIES = ["late:weighted+fill", "late:weighted+generate", "early+fill", "early+generate"]


@pytest.mark.parametrize("name", STRATEGIES + POLICIES)  # early and late:weighted: the brute force above
def test_fast_coalitions_equal_masked_predictions_and_the_values_are_efficient(fitted, table, name) -> None:
    clf = _clf(fitted, table, name)
    part = table.take(ROWS)
    data = clf._transform(part)
    strategy = clf.fusion_
    coalitions = coalition_matrix(len(strategy.coalition_inputs()))
    fast = strategy.coalition_proba(data, coalitions)
    plain = FusionStrategy.proba_of_coalitions(strategy, data, coalitions)  # predict_proba per coalition
    np.testing.assert_allclose(fast, plain, atol=1e-6)
    sv = clf.shapley_values(part)
    assert sv.efficiency_gap() < 1e-6
    np.testing.assert_allclose(sv.proba, clf.predict_proba(part), atol=1e-6)
    for i, name_i in enumerate(sv.inputs):
        assert (sv.values[~part.mask(name_i), i] == 0).all()


def test_unimodal_values_sit_on_its_one_input(fitted, table) -> None:
    sv = _clf(fitted, table, "unimodal:text").shapley_values(table)
    assert sv.inputs == ["text"]
    np.testing.assert_allclose(sv.base + sv.values[:, 0], sv.proba, atol=1e-12)


# -------------------------------------------------------------------------------------- explain(X)
def test_explain_defaults_to_shapley_values_per_row(fitted, table) -> None:
    clf = _clf(fitted, table, "early")
    out = clf.explain(table)
    assert list(out.columns[:5]) == ["prediction", "probability", "class", "value", "base"]
    assert (out["class"] == out["prediction"]).all()
    np.testing.assert_allclose(out["base"] + out[INPUTS].sum(axis=1), out["value"], atol=1e-6)
    log_cols = [f"{n}:log_odds" for n in INPUTS]
    np.testing.assert_allclose(
        out["base_log_odds"] + out[log_cols].sum(axis=1), out["value_log_odds"], atol=1e-6
    )
    assert (out.loc[~table.mask("audio"), "audio"] == 0).all()
    # every class, and interactions
    every = clf.explain(table.take(ROWS), target="all", interactions=True)
    assert len(every) == len(ROWS) * 3 and set(every["class"]) == {"a", "b", "c"}
    assert {"image*audio", "text*tabular"} <= set(every.columns)
    per_class = every.groupby(level=0)[INPUTS].sum()  # over the classes the values cancel: sum p = 1
    np.testing.assert_allclose(per_class, 0.0, atol=1e-6)
    only_b = clf.explain(table.take(ROWS), target="b")
    assert (only_b["class"] == "b").all()
    with pytest.raises(mf.UnknownNameError, match="unknown class 'z'"):
        clf.explain(table, target="z")


def test_the_earlier_explanations_stay_available_by_name(fitted, table) -> None:
    clf = _clf(fitted, table, "late:weighted")
    native = clf.explain(table, method="native")
    occlusion = clf.explain(table, method="occlusion")
    assert list(native.columns) == list(occlusion.columns) == ["prediction", "probability", *INPUTS]
    sv = clf.shapley_values(table)
    rows = np.arange(len(table))
    expected = sv.proba[rows, sv.predicted][:, None] - sv.without[rows, :, sv.predicted]
    np.testing.assert_allclose(occlusion[INPUTS], np.where(sv.present, expected, 0.0), atol=1e-9)
    with pytest.raises(mf.UnknownNameError, match="did you mean 'shapley'"):
        clf.explain(table, method="shapely")


# ------------------------------------------------------------------------------------------ summaries
def test_global_summary_and_leave_one_input_out() -> None:
    # input a decides the class; b is noise: a ranks first by |phi| and by the accuracy drop
    n = 40
    y = np.arange(n) % 2
    noise = np.random.default_rng(0).normal(0, 0.01, n)

    def proba_of(coalitions: np.ndarray) -> np.ndarray:
        p1 = 0.5 + 0.4 * coalitions[:, :1] * (2 * y[None, :] - 1) + coalitions[:, 1:2] * noise[None, :]
        return np.stack([1 - p1, p1], axis=2)

    sv = shapley_values(proba_of, np.ones((n, 2), bool), ["a", "b"], [0, 1])
    summary = global_summary(sv, y)
    assert summary["accuracy"] == 1.0
    assert summary["accuracy_without"]["a"] <= 0.75 and summary["loo_drop"]["a"] >= 0.25
    assert summary["loo_drop"]["b"] == 0.0
    assert summary["rank_by_shapley"] == ["a", "b"] and summary["ranking_agrees"] is True
    assert summary["mean_phi_true"]["a"] == pytest.approx(0.4, abs=1e-9)
    assert set(summary["interactions"]) == {"a*b"}


def test_ranking_agreement() -> None:
    assert ranking_agrees({"a": 0.3, "b": 0.1}, {"a": 0.2, "b": 0.0}) is True
    assert ranking_agrees({"a": 0.3, "b": 0.1}, {"a": 0.0, "b": 0.2}) is False
    assert ranking_agrees({"a": 0.3, "b": 0.1}, {"a": 0.1, "b": 0.1}) is True  # a tie disagrees with nothing
    assert ranking_agrees({"a": 0.3, "b": None}, {"a": 0.1, "b": 0.1}) is None


def test_shapley_values_of_no_rows(fitted, table) -> None:
    sv = _clf(fitted, table, "linear").shapley_values(table.frame.iloc[:0])
    assert isinstance(sv, ShapleyValues) and len(sv) == 0 and sv.values.shape == (0, 4, 3)
    assert len(sv.to_frame()) == 0


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_explain_writes_one_line_per_row(fitted, table, csv_path: Path, tmp_path: Path) -> None:
    model = _clf(fitted, table, "linear").save(tmp_path / "model")
    out = tmp_path / "expl.csv"
    code, text = run("explain", str(model), str(csv_path), "--out", str(out), "--interactions")
    assert code == 0, text
    assert f"{len(table)} row(s) explained (shapley)" in text
    frame = pd.read_csv(out)
    assert list(frame.columns[:6]) == ["row", "prediction", "probability", "class", "value", "base"]
    np.testing.assert_allclose(frame["base"] + frame[INPUTS].sum(axis=1), frame["value"], atol=1e-6)
    assert "image*audio" in frame.columns
    code, text = run("explain", str(model), str(csv_path), "--out", str(tmp_path / "b.csv"), "--class", "q")
    assert code == 2 and "error: unknown class 'q'" in text and "Traceback" not in text


@pytest.mark.parametrize("name", ["early", "early+e2e"])
def test_explaining_runs_the_encoders_once_per_row(fitted, table, name: str, monkeypatch) -> None:
    """2^4 coalitions cost head passes: the encoders see each row once (per head), as one prediction does."""
    from modalfuse.fusion._late import _PerInputModels
    from modalfuse.fusion._train import FusionNet

    clf = _clf(fitted, table, name)
    part = table.take(ROWS)
    calls = {"encode": 0, "embeddings": 0}
    encode, embeddings = FusionNet.encode, _PerInputModels.embeddings

    def counted_encode(self, xs):
        calls["encode"] += 1
        return encode(self, xs)

    def counted_embeddings(self, *args, **kwargs):
        calls["embeddings"] += 1
        return embeddings(self, *args, **kwargs)

    monkeypatch.setattr(FusionNet, "encode", counted_encode)
    monkeypatch.setattr(_PerInputModels, "embeddings", counted_embeddings)
    clf.predict_proba(part)
    one_prediction = dict(calls)
    assert sum(one_prediction.values()) > 0
    calls.update(encode=0, embeddings=0)
    sv = clf.shapley_values(part)
    assert sv.n_coalitions == 16
    assert calls == one_prediction


def test_folds_combine_into_means_spreads_and_agreement() -> None:
    from modalfuse.explain import combine_folds

    fold = {
        "inputs": ["a", "b"],
        "n_rows": 10,
        "method": "exact",
        "efficiency_gap": 1e-15,
        "accuracy": 0.8,
        "mean_abs_phi": {"a": 0.3, "b": 0.1},
        "loo_drop": {"a": 0.2, "b": 0.0},
        "ranking_agrees": True,
    }
    other = {**fold, "efficiency_gap": 3e-15, "accuracy": 0.6, "mean_abs_phi": {"a": 0.1, "b": 0.2}}
    other["ranking_agrees"] = False
    out = combine_folds([fold, other, None])
    assert out["n_folds"] == 3 and out["n_rows"] == 20 and out["efficiency_gap"] == 3e-15
    assert out["mean_abs_phi"]["a"] == {
        "mean": pytest.approx(0.2),
        "std": pytest.approx(0.1),
        "folds": [0.3, 0.1, None],
    }
    assert out["accuracy"]["mean"] == pytest.approx(0.7) and out["methods"] == ["exact"]
    assert out["ranking_agrees_folds"] == [True, False, None] and out["ranking_agrees_all"] is False
    assert out["rank_by_shapley"] == ["a", "b"] and out["rank_by_loo"] == ["a", "b"]
