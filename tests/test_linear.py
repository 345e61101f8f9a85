"""The tuned linear baseline ``linear``: classical features of every input, C chosen by inner CV on the
training rows, missing inputs, explanations, save/load, and its place in ``compare``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file
from scipy.special import softmax

import modalfuse as mf
from conftest import assert_explanation_covers_inputs, assert_probabilities
from modalfuse.evaluate import format_table
from modalfuse.fusion import _linear
from modalfuse.fusion._linear import c_grid

DEFAULT_CS = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)

INPUTS = ["image", "audio", "text", "tabular"]
FAST = {"inner_folds": 3, "n_threads": 1}


@pytest.fixture(scope="module")
def fitted(table) -> mf.MultimodalClassifier:
    return mf.MultimodalClassifier(fusion="linear", **FAST).fit(table)


def test_linear_uses_the_classical_features_of_every_input(fitted, table) -> None:
    assert {n: i.encoder for n, i in fitted.inputs_.items()} == {
        "image": "pixels",
        "audio": "mfcc",
        "text": "tfidf",
        "tabular": "tabular-scaled",
    }
    assert [b["input"] for b in fitted.fusion_.state["layout"]] == INPUTS
    proba = fitted.predict_proba(table)
    assert_probabilities(proba, len(table), 3)
    assert fitted.score(table) > 0.9  # every input separates the classes
    # features then one presence indicator per input
    width = fitted.fusion_.state["layout"][-1]["stop"] + len(INPUTS)
    assert fitted.fusion_.coef_.shape == (3, width)
    assert fitted.n_parameters_ == 3 * width + 3


def test_the_chosen_C_minimises_the_inner_cv_log_loss_of_the_training_rows(table, monkeypatch) -> None:
    seen: list[dict[str, Any]] = []
    real = _linear.inner_splits

    def spy(y: np.ndarray, groups: np.ndarray | None, k: int, seed: int) -> list:
        splits = real(y, groups, k, seed)
        seen.append({"n": len(y), "groups": groups, "splits": splits})
        return splits

    monkeypatch.setattr(_linear, "inner_splits", spy)
    train = table.take(np.arange(48))
    clf = mf.MultimodalClassifier(fusion="linear", **FAST).fit(train)
    (call,) = seen
    assert call["n"] == 48  # the inner folds cover the 48 training rows and nothing else
    held_out = np.concatenate([va for _, va in call["splits"]])
    assert sorted(held_out.tolist()) == list(range(48))
    for tr, va in call["splits"]:
        assert set(tr.tolist()).isdisjoint(va.tolist())
    state = clf.fusion_.state
    losses = dict((c, v) for c, v in state["cv_log_loss"])
    assert sorted(losses) == sorted(DEFAULT_CS)
    assert state["C"] == min(losses, key=lambda c: (losses[c], c))
    assert json.loads(json.dumps(state)) == state


def test_inner_folds_keep_groups_together_and_each_fold_stores_its_own_C(table, monkeypatch) -> None:
    groups: list[np.ndarray | None] = []
    real = _linear.inner_splits

    def spy(y: np.ndarray, g: np.ndarray | None, k: int, seed: int) -> list:
        splits = real(y, g, k, seed)
        groups.append(g)
        for tr, va in splits:
            assert set(g[tr]).isdisjoint(g[va])
        return splits

    monkeypatch.setattr(_linear, "inner_splits", spy)
    result = mf.compare(
        table,
        fusion="linear",
        groups="speaker",
        cv=3,
        fold_metrics=lambda name, clf, test: {"C": clf.fusion_.state["C"]},
        **FAST,
    )
    assert len(groups) == 3 and all(g is not None for g in groups)
    entry = result["strategies"]["linear"]
    assert len(entry["C"]["folds"]) == 3 and set(entry["C"]["folds"]) <= set(DEFAULT_CS)


def test_a_trainable_encoder_is_refused_with_the_input_named(table) -> None:
    with pytest.raises(mf.OptionError, match="input 'text' has the trainable encoder 'text-bag'"):
        mf.MultimodalClassifier(fusion="linear", encoders={"text": "text-bag"}, **FAST).fit(table)


def test_the_grid_of_c_is_declared_and_checked() -> None:
    assert mf.get_fusion("linear").Cs == DEFAULT_CS == c_grid(1e-3, 100.0, 6)
    assert mf.get_fusion("linear", c_min=0.1, c_max=10, n_c=3).Cs == (0.1, 1.0, 10.0)
    with pytest.raises(mf.OptionError, match="'c_min' must be a number > 0"):
        mf.get_fusion("linear", c_min=0.0)
    with pytest.raises(mf.OptionError, match=r"c_min .* must not exceed c_max"):
        mf.get_fusion("linear", c_min=10, c_max=1)
    with pytest.raises(mf.OptionError, match="unknown option 'Cs'"):
        mf.get_fusion("linear", Cs=[1.0])


def test_row_weights_change_the_fit(table) -> None:
    plain = mf.MultimodalClassifier(fusion="linear", **FAST).fit(table)
    weights = np.where(table.y == "a", 5.0, 1.0)
    weighted = mf.MultimodalClassifier(fusion="linear", **FAST).fit(table, sample_weight=weights)
    p_plain, p_weighted = plain.predict_proba(table), weighted.predict_proba(table)
    a = list(plain.classes_).index("a")
    assert p_weighted[:, a].mean() > p_plain[:, a].mean()


def test_missing_inputs_are_zeros_with_an_indicator_and_contribute_nothing(fitted, table) -> None:
    out = fitted.explain(table, method="native")
    assert_explanation_covers_inputs(out, table, INPUTS)
    # the contributions and the centred intercept add up to the predicted class's centred logit
    data = {n: p.transform(table) for n, p in fitted.preprocessors_.items()}
    logits, _, _ = fitted.fusion_._logits(data)
    predicted = logits.argmax(1)
    centred = logits - logits.mean(1, keepdims=True)
    intercept = fitted.fusion_.intercept_ - fitted.fusion_.intercept_.mean()
    total = out[INPUTS].to_numpy().sum(1) + intercept[predicted]
    np.testing.assert_allclose(total, centred[np.arange(len(table)), predicted], atol=1e-9)
    # an input missing from every row to predict: still probabilities, and that input contributes 0
    frame = table.frame.copy()
    frame["audio"] = None
    proba = fitted.predict_proba(frame)
    assert_probabilities(proba, len(table), 3)
    assert (fitted.explain(frame, method="native")["audio"] == 0).all()
    # the presence indicator is part of the model: a missing input is not the same as an average one
    indicator = fitted.fusion_.state["layout"][-1]["stop"] + INPUTS.index("audio")
    assert np.any(fitted.fusion_.coef_[:, indicator] != 0)


def test_an_input_missing_in_most_training_rows(table) -> None:
    frame = table.frame.copy()
    frame.loc[frame.index[6:], "image"] = None  # six rows keep their image
    sparse = mf.read_table(frame.assign(y=table.y), label="y", root=None, decode=False)
    clf = mf.MultimodalClassifier(fusion="linear", **FAST).fit(sparse)
    assert_probabilities(clf.predict_proba(sparse), len(sparse), 3)
    assert (clf.explain(sparse, method="native")["image"].to_numpy()[6:] == 0).all()


def test_save_load_round_trip_gives_identical_probabilities(fitted, table, tmp_path) -> None:
    path = fitted.save(tmp_path / "model")
    tensors = load_file(str(path / "weights.safetensors"))
    assert set(tensors) == {"coef", "intercept", "mean", "scale"}
    assert tensors["coef"].dtype == np.float64
    doc = json.loads((path / "model.json").read_text())
    assert doc["fusion"]["state"]["C"] == fitted.fusion_.state["C"]
    loaded = mf.MultimodalClassifier.load(path)
    assert np.array_equal(loaded.predict_proba(table), fitted.predict_proba(table))
    assert loaded.explain(table).equals(fitted.explain(table))


def test_binary_labels(table) -> None:
    keep = np.flatnonzero(table.y != "c")
    binary = table.take(keep)
    clf = mf.MultimodalClassifier(fusion="linear", **FAST).fit(binary)
    proba = clf.predict_proba(binary)
    assert_probabilities(proba, len(binary), 2)
    # one logit against zero for the first class: a logistic, as scikit-learn's binary model gives
    assert np.all(clf.fusion_.coef_[0] == 0) and clf.fusion_.intercept_[0] == 0


def _linear_table(n: int = 150, seed: int = 0) -> mf.MultimodalTable:
    """Two inputs: tabular columns whose linear combination is the label, and text that carries nothing."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = np.where(X @ np.array([1.5, -2.0, 1.0, 0.5, -1.0]) > 0, "yes", "no")
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    frame["note"] = [" ".join(rng.choice(words, size=5)) for _ in range(n)]
    frame["y"] = y
    return mf.read_table(frame, label="y", modalities={"note": "text"}, name="linear-world")


def test_compare_recommends_linear_where_a_linear_model_is_optimal() -> None:
    table = _linear_table()
    result = mf.compare(table, fusion="late:mean", cv=3, epochs=1, min_steps=5, inner_folds=2, n_threads=1)
    assert list(result["strategies"]) == ["unimodal:tabular", "unimodal:note", "linear", "late:mean"]
    linear = result["strategies"]["linear"]["accuracy"]["mean"]
    assert linear > 0.9
    assert result["best"]["baseline"] == "linear"
    rec = result["recommendation"]
    assert rec["strategy"] == "linear" and rec["best_baseline"] == "linear"
    assert rec["reason"].startswith("No fusion beats the tuned linear baseline (linear)")
    assert result["paired_vs_baseline"]["late:mean"]["vs"] == "linear"
    text = format_table(result)
    assert "linear +" in text and "+ tuned linear baseline" in text
    assert text.splitlines()[-1].startswith(
        "Recommendation: linear. No fusion beats the tuned linear baseline"
    )


def test_compare_softmax_of_the_stored_coefficients_is_the_prediction(fitted, table) -> None:
    data = {n: p.transform(table) for n, p in fitted.preprocessors_.items()}
    X, masks = fitted.fusion_._raw(data)
    Z = fitted.fusion_._standardise(X, masks, fitted.fusion_.mean_, fitted.fusion_.scale_)
    np.testing.assert_allclose(
        softmax(Z @ fitted.fusion_.coef_.T + fitted.fusion_.intercept_, axis=1), fitted.predict_proba(table)
    )
