"""Late fusion variants: product of experts and confidence weighting; per-input models stay plain."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

import modalfuse as mf
from conftest import assert_explanation_covers_inputs
from modalfuse.fusion._late import LateFusion

FAST = {"epochs": 3, "min_steps": 20, "batch_size": 16, "inner_folds": 2, "n_threads": 1, "seed": 0}
INPUTS = ["image", "audio", "text", "tabular"]


@pytest.fixture(scope="module")
def fitted(table) -> dict[str, mf.MultimodalClassifier]:
    """late:product and late:confidence on the synthetic table (they share their per-input models)."""
    return {
        name: mf.MultimodalClassifier(fusion=name, **FAST).fit(table)
        for name in ("late:product", "late:confidence")
    }


def _product(probs: dict[str, np.ndarray], masks: dict[str, np.ndarray], prior: np.ndarray) -> np.ndarray:
    """Row by row: the normalised product of the present inputs' probabilities, the prior with none."""
    out = []
    for i in range(len(next(iter(masks.values())))):
        present = [probs[n][i] for n in probs if masks[n][i]]
        if not present:
            out.append(prior)
            continue
        p = np.prod(present, axis=0)
        out.append(p / p.sum())
    return np.stack(out)


def _unfitted_confidence(gamma: float, prior: np.ndarray) -> LateFusion:
    strategy = mf.get_fusion("late:confidence")
    assert isinstance(strategy, LateFusion)
    strategy.prior_ = prior
    strategy.state["gamma"] = gamma
    return strategy


# ---------------------------------------------------------------------------------------- product of experts
def test_product_is_the_renormalised_product_of_the_inputs(fitted, table) -> None:
    clf = fitted["late:product"]
    strategy = clf.fusion_
    data = clf.transform_inputs(table)
    probs, masks = strategy._per_input(data)
    assert list(probs) == INPUTS and not all(m.all() for m in masks.values())  # the table has gaps
    expected = _product(probs, masks, strategy.prior_)
    np.testing.assert_allclose(strategy.predict_proba(data), expected, atol=1e-4)
    np.testing.assert_allclose(clf.predict_proba(table), expected, atol=1e-4)
    assert clf.score(table) > 0.8


def test_product_with_missing_inputs(fitted, table) -> None:
    clf = fitted["late:product"]
    strategy = clf.fusion_
    probs, masks = strategy._per_input(
        clf.transform_inputs(table)
    )  # audio and tabular do not depend on the rest
    X = table.frame.copy()
    X["image"] = None
    X["text"] = None
    expected = _product(
        {n: probs[n] for n in ("audio", "tabular")},
        {n: masks[n] for n in ("audio", "tabular")},
        strategy.prior_,
    )
    np.testing.assert_allclose(clf.predict_proba(X), expected, atol=1e-4)
    nothing = clf.predict_proba(X.head(2).assign(**dict.fromkeys(X.columns, None)))  # every input missing
    np.testing.assert_allclose(nothing, np.tile(strategy.prior_, (2, 1)), atol=1e-6)


# --------------------------------------------------------------------------------------- confidence weights
def test_confidence_is_one_minus_normalised_entropy() -> None:
    p = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(LateFusion.confidence(p), [1.0, 0.0, 1 - np.log(2) / np.log(3)], atol=1e-12)


def test_a_confident_input_weighs_more_than_an_uncertain_one() -> None:
    prior = np.array([0.5, 0.3, 0.2])
    strategy = _unfitted_confidence(1.0, prior)
    probs = {
        "image": np.array([[0.9, 0.05, 0.05], [0.34, 0.33, 0.33], [0.9, 0.05, 0.05], [0.2, 0.7, 0.1]]),
        "audio": np.array([[0.3, 0.4, 0.3], [0.05, 0.9, 0.05], [0.3, 0.4, 0.3], [0.2, 0.7, 0.1]]),
    }
    masks = {"image": np.array([True, True, False, False]), "audio": np.array([True, True, True, False])}
    W = strategy._row_weights(probs, masks)
    assert W.shape == (4, 2)
    assert W[0, 0] > W[0, 1]  # row 0: the image model is sure, the audio one is not
    assert W[1, 1] > W[1, 0]  # row 1: the other way round
    fused = strategy._combine_rows(probs, masks, W)
    assert fused[0].argmax() == 0 and fused[1].argmax() == 1  # the confident input decides
    conf = LateFusion.confidence
    w0 = np.array([conf(probs["image"][:1])[0], conf(probs["audio"][:1])[0]])
    w0 = w0 * 2 / w0.sum()  # rescaled to average 1 over the two present inputs
    want = softmax(w0[0] * np.log(probs["image"][0]) + w0[1] * np.log(probs["audio"][0]))
    np.testing.assert_allclose(fused[0], want, atol=1e-5)
    np.testing.assert_allclose(fused[2], probs["audio"][2], atol=1e-5)  # only audio present
    np.testing.assert_allclose(fused[3], prior, atol=1e-5)  # nothing present: the prior
    # gamma = 0 is the plain product of the present inputs; zero confidence everywhere falls back to it too
    product = _unfitted_confidence(0.0, prior)
    np.testing.assert_allclose(
        product._combine_rows(probs, masks, product._row_weights(probs, masks))[0],
        softmax(np.log(probs["image"][0]) + np.log(probs["audio"][0])),
        atol=1e-5,
    )
    flat = {n: np.full((4, 3), 1 / 3) for n in probs}
    np.testing.assert_allclose(
        strategy._combine_rows(flat, masks, strategy._row_weights(flat, masks))[:3], 1 / 3, atol=1e-6
    )
    # the contributions' weights average 1 over the present inputs of a row
    cw = strategy._contribution_weights(probs, masks)
    assert cw["image"][0] + cw["audio"][0] == pytest.approx(2.0) and cw["image"][0] > cw["audio"][0]
    assert cw["audio"][2] == pytest.approx(1.0) and cw["image"][2] == 0.0


def test_the_sharpening_exponent_is_fitted_on_out_of_fold_log_loss() -> None:
    """Each input is sure and right on half the rows and unsure (leaning wrong) on the others: weighting
    by confidence beats the plain product, so gamma > 0; with equally confident inputs gamma stays 0."""
    n = 40
    y = np.arange(n) % 2
    sure = np.where(y[:, None] == np.arange(2), 0.95, 0.05)
    unsure = np.where(y[:, None] == np.arange(2), 0.45, 0.55)
    half = (np.arange(n) < n // 2)[:, None]
    probs = {"a": np.where(half, sure, unsure), "b": np.where(half, unsure, sure)}
    masks = {"a": np.ones(n, bool), "b": np.ones(n, bool)}
    strategy = _unfitted_confidence(0.0, np.array([0.5, 0.5]))
    strategy._fit_row_weights(probs, masks, y)
    assert 0.0 < strategy.state["gamma"] <= 8.0
    both_sure = {"a": sure, "b": sure}
    strategy._fit_row_weights(both_sure, masks, y)
    assert strategy.state["gamma"] == 0.0  # confidence cannot help: the smallest exponent wins the tie


def test_confidence_end_to_end(fitted, table, tmp_path) -> None:
    clf = fitted["late:confidence"]
    strategy = clf.fusion_
    gamma = strategy.state["gamma"]
    assert 0.0 <= gamma <= 8.0
    data = clf.transform_inputs(table)
    probs, masks = strategy._per_input(data)
    conf = {n: np.where(masks[n], LateFusion.confidence(probs[n]) ** gamma, 0.0) for n in probs}
    expected = []
    for i in range(len(table)):
        w = np.array([conf[n][i] for n in probs])
        if w.sum() == 0:
            w = np.array([float(masks[n][i]) for n in probs])
        w = w * sum(masks[n][i] for n in probs) / w.sum()  # average 1 over the present inputs
        expected.append(softmax(sum(w[j] * np.log(probs[n][i] + 1e-6) for j, n in enumerate(probs))))
    np.testing.assert_allclose(clf.predict_proba(table), np.stack(expected), atol=1e-10)
    assert clf.score(table) > 0.8
    # missing inputs: the product over those present; none present: the prior
    X = table.frame.copy()
    X["audio"] = None
    p = clf.predict_proba(X)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-9)
    none = X.head(1).assign(**dict.fromkeys(X.columns, None))  # every input missing
    np.testing.assert_allclose(clf.predict_proba(none), [strategy.prior_])
    # gamma is saved with the model
    loaded = mf.MultimodalClassifier.load(clf.save(tmp_path / "conf"))
    assert loaded.fusion_.state["gamma"] == gamma
    np.testing.assert_allclose(loaded.predict_proba(table), clf.predict_proba(table), atol=1e-6)


@pytest.mark.parametrize("name", ["late:product", "late:confidence"])
def test_explain_new_methods(fitted, table, name: str) -> None:
    clf = fitted[name]
    out = clf.explain(table, method="native")
    assert_explanation_covers_inputs(out, table, INPUTS)
    assert out.loc[table.mask("text"), "text"].mean() > 0


# ---------------------------------------------------------------------------------- plain per-input models
def test_per_input_models_ignore_mixup_and_recombination(fitted, table) -> None:
    product = fitted["late:product"].fusion_
    joint = {"mixup_alpha": 0.4, "recombine_ratio": 0.5}
    other = mf.MultimodalClassifier(fusion="late:confidence", **FAST, **joint).fit(table)
    cfg = other.fusion_._input_config()
    assert (cfg.mixup_alpha, cfg.recombine_ratio) == (0.0, 0.0)
    assert (other.fusion_.config.mixup_alpha, other.fusion_.config.recombine_ratio) == (0.4, 0.5)
    for n in INPUTS:  # shared from the cache, not retrained
        assert other.fusion_.models_[n] is product.models_[n]
    assert other.fusion_.reused_fit_seconds_ > 0
    uni = mf.MultimodalClassifier(fusion="unimodal:text", **FAST, **joint).fit(table)
    assert uni.fusion_.models_["text"] is product.models_["text"]


def test_inner_folds_requirements(table) -> None:
    with pytest.raises(ValueError, match="inner_folds >= 2"):
        mf.MultimodalClassifier(fusion="late:confidence", **{**FAST, "inner_folds": 1}).fit(table)
    with pytest.raises(mf.UnknownNameError, match=r"unknown fusion 'late:median'.*late:confidence"):
        mf.MultimodalClassifier(fusion="late:median", **FAST).fit(table)
