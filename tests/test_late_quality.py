"""Quality-aware fusion: ``late:quality``'s per-row weights, ``quality_aware`` joint heads and
``train_corruptions`` (corrupted copies of training rows for the per-input networks, the combiners and
the heads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import modalfuse as mf
from conftest import assert_probabilities
from modalfuse._inputdata import InputData
from modalfuse.fusion import _late
from modalfuse.fusion._late import LateFusion

FAST = {"epochs": 2, "min_steps": 20, "inner_folds": 2, "n_threads": 1, "seed": 0}
NOISE = "tabular:noise=1,3@0.5"


@pytest.fixture(scope="module")
def small(table) -> mf.MultimodalTable:
    return mf.read_table(table.frame[["text", "num", "colour"]].assign(y=table.y), label="y")


@pytest.fixture(scope="module")
def cache() -> mf.Cache:
    return mf.Cache()


def _synthetic(n: int = 900, seed: int = 0):
    """Input a: sure and right on rows of good quality, sure and wrong on the others; b: unsure, right on
    70 % of the rows whatever their quality."""
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=n)
    good = rng.random(n) < 0.5
    a_class = np.where(good, y, (y + rng.integers(1, 3, size=n)) % 3)
    a = np.full((n, 3), 0.05)
    a[np.arange(n), a_class] = 0.9
    b_class = np.where(rng.random(n) < 0.7, y, (y + rng.integers(1, 3, size=n)) % 3)
    b = np.full((n, 3), 0.225)
    b[np.arange(n), b_class] = 0.55
    q = np.where(good, 1.0, -1.0)[:, None] + 0.1 * rng.standard_normal((n, 1))
    probs = {"a": a, "b": b}
    masks = {"a": np.ones(n, bool), "b": np.ones(n, bool)}
    quality = {"a": q, "b": np.zeros((n, 1))}
    return probs, masks, y, good, quality


def _combiner() -> LateFusion:
    strategy = mf.get_fusion("late:quality")
    assert isinstance(strategy, LateFusion)
    strategy.n_classes, strategy.prior_ = 3, np.full(3, 1 / 3)
    strategy.state["weights"] = {"a": 1.0, "b": 1.0}
    return strategy


def test_quality_weights_follow_the_quality_of_each_row() -> None:
    probs, masks, y, _, quality = _synthetic()
    strategy = _combiner()
    strategy._fit_quality(probs, masks, y, None, quality)
    test_probs, test_masks, test_y, test_good, test_quality = _synthetic(seed=1)
    proba, weights = strategy._quality_predict(test_probs, test_masks, InputData({}, quality=test_quality))
    assert weights["a"][test_good].mean() > 5 * weights["a"][~test_good].mean()
    accuracy = proba.argmax(1) == test_y
    product = (np.log(test_probs["a"]) + np.log(test_probs["b"])).argmax(1) == test_y
    assert accuracy[~test_good].mean() > 0.6 and product[~test_good].mean() < 0.2  # the product trusts a
    assert accuracy[test_good].mean() > 0.95
    # without scores (a plain dict of inputs) every row sits at the training mean: one weight for all
    _, flat = strategy._quality_predict(test_probs, test_masks, None)
    assert np.ptp(flat["a"]) < 1e-9


def _clean_and_copies(n: int = 900, seed: int = 0):
    """Rows as given: input a right on 90 % of them, its one quality score uninformative noise around 0;
    b right on 70 %. Then corrupted copies of the first half: a's score far below the range of the rows
    (-6) and a wrong on 90 % of them, b unchanged."""
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=n)

    def sure(right_share: float, rows: int, labels: np.ndarray, top: float) -> np.ndarray:
        cls = np.where(rng.random(rows) < right_share, labels, (labels + rng.integers(1, 3, size=rows)) % 3)
        p = np.full((rows, 3), (1 - top) / 2)
        p[np.arange(rows), cls] = top
        return p

    m = n // 2
    y_all = np.concatenate([y, y[:m]])
    b = sure(0.7, n, y, 0.5)
    probs = {"a": np.concatenate([sure(0.9, n, y, 0.8), sure(0.1, m, y[:m], 0.8)]), "b": np.r_[b, b[:m]]}
    quality = {
        "a": np.r_[rng.standard_normal(n), -6.0 + 0.1 * rng.standard_normal(m)][:, None],
        "b": np.zeros((n + m, 1)),
    }
    masks = {k: np.ones(n + m, bool) for k in probs}
    return probs, masks, y_all, quality, n


def test_quality_weights_in_the_reference_range_ignore_the_corrupted_copies() -> None:
    probs, masks, y, quality, n = _clean_and_copies()
    with_copies = _combiner()
    with_copies._fit_quality(probs, masks, y, None, quality, n_reference=n)
    rows_only = _combiner()
    rows_only._fit_quality(
        {k: p[:n] for k, p in probs.items()},
        {k: v[:n] for k, v in masks.items()},
        y[:n],
        None,
        {k: q[:n] for k, q in quality.items()},
    )
    test_probs, test_masks, test_y, test_quality, m = _clean_and_copies(seed=1)
    data = InputData({}, quality=test_quality)
    proba, weights = with_copies._quality_predict(test_probs, test_masks, data)
    _, reference = rows_only._quality_predict(test_probs, test_masks, data)
    inside = np.abs(test_quality["a"][:, 0]) < 2  # well inside the rows' range
    assert inside[:m].mean() > 0.9
    # inside the range: the weights learned on the rows as given, untouched by the copies
    np.testing.assert_allclose(weights["a"][inside], reference["a"][inside], rtol=1e-3)
    np.testing.assert_allclose(weights["b"][inside], reference["b"][inside], rtol=1e-3)
    # far below it (the copies' corruption): a's weight falls, and the fusion follows b there
    assert weights["a"][m:].mean() < 0.2 * weights["a"][:m][inside[:m]].mean()
    assert (proba[m:].argmax(1) == test_y[m:]).mean() > 0.6
    assert (proba[:m].argmax(1) == test_y[:m]).mean() > 0.85
    # without copies nothing lies outside the range: the distances' slopes stay near 0
    assert np.abs(np.asarray(rows_only.state["quality"]["theta"]["a"][3:])).max() < 0.5


def test_a_missing_input_weighs_nothing() -> None:
    probs, masks, y, _, quality = _synthetic()
    strategy = _combiner()
    strategy._fit_quality(probs, masks, y, None, quality)
    masks["a"][:10] = False
    proba, weights = strategy._quality_predict(probs, masks, InputData({}, quality=quality))
    assert (weights["a"][:10] == 0).all()
    b_alone = probs["b"][:10] ** weights["b"][:10, None]
    np.testing.assert_allclose(proba[:10], b_alone / b_alone.sum(1, keepdims=True), atol=1e-6)


def test_late_quality_trains_on_corrupted_copies_and_round_trips(
    small, cache, tmp_path: Path, monkeypatch
) -> None:
    seen = []
    real = LateFusion._fit_quality

    def spy(self, probs, masks, y, sample_weight, quality, n_reference=None):
        seen.append((len(y), {n: q.shape for n, q in quality.items()}, n_reference))
        return real(self, probs, masks, y, sample_weight, quality, n_reference)

    monkeypatch.setattr(LateFusion, "_fit_quality", spy)
    with mf.using_cache(cache):
        clf = mf.MultimodalClassifier(fusion="late:quality", train_corruptions=NOISE, **FAST).fit(small)
    n_rows, shapes, n_reference = seen[0]
    assert n_rows == len(small) + round(0.5 * len(small))  # the rows and a copy of half of them
    assert n_reference == len(small)  # the rows as given come first
    assert shapes == {"text": (n_rows, 2), "tabular": (n_rows, 1)}
    theta = clf.fusion_.state["quality"]["theta"]
    # bias, 2 scores, confidence, then each score's distances below and above the reference range
    assert set(theta) == {"text", "tabular"} and len(theta["text"]) == 4 + 4 and len(theta["tabular"]) == 5
    proba = clf.predict_proba(small)
    assert_probabilities(proba, len(small), 3)
    assert clf.score(small) > 0.8
    weights = clf.explain(small) if hasattr(clf, "explain") else None
    assert weights is not None
    clf.save(tmp_path / "m")
    again = mf.MultimodalClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(small), proba, atol=1e-6)
    assert again.train_corruptions == NOISE


@pytest.mark.parametrize("backend", ["serial", "processes"])
def test_each_input_network_trains_on_the_copies_of_its_own_training_rows(
    small, backend: str, monkeypatch
) -> None:
    """With ``train_corruptions``, a network of the corrupted input trains on its inner fold's training rows
    and the corrupted copies of exactly those rows (never of a row it holds out, whose copy it predicts out
    of fold); the other input's networks train on the rows alone."""
    trained: list[tuple[str, np.ndarray]] = []
    real_fit_linear, real_train = _late.fit_linear, _late.train_network

    def fit_linear(net, x, y, n_classes, sample_weight=None):
        trained.append((next(iter(net.encoders)), np.asarray(x)))
        return real_fit_linear(net, x, y, n_classes, sample_weight=sample_weight)

    def train_network(net, data, y, config, **kw):
        ((name, (x, _)),) = data.items()
        trained.append((name, np.asarray(x)))
        return real_train(net, data, y, config, **kw)

    monkeypatch.setattr(_late, "fit_linear", fit_linear)
    monkeypatch.setattr(_late, "train_network", train_network)
    with mf.using_cache(mf.Cache()):
        clf = mf.MultimodalClassifier(
            fusion="late:weighted", train_corruptions=NOISE, backend=backend, **FAST
        ).fit(small)
    if backend == "processes":  # the spies live in this process only: retrain here to look
        trained.clear()
        with mf.using_cache(mf.Cache()):
            again = mf.MultimodalClassifier(fusion="late:weighted", train_corruptions=NOISE, **FAST).fit(
                small
            )
        np.testing.assert_allclose(again.predict_proba(small), clf.predict_proba(small), atol=1e-6)
    strategy = clf.fusion_
    data = clf.transform_inputs(small)
    rows, copies = _copies(small)
    copy_x = clf.preprocessors_["tabular"].transform(copies)[0]
    assert len(rows) == round(0.5 * len(small))
    by_input = {n: [x for name, x in trained if name == n] for n in ("text", "tabular")}
    assert len(by_input["tabular"]) == len(by_input["text"]) == len(strategy.splits_) == 2
    nets = zip(strategy.splits_, by_input["tabular"], by_input["text"], strict=True)
    for (train, held_out), tab_x, text_x in nets:
        assert len(text_x) == data["text"][1][train].sum()  # not corrupted: its rows (where present) alone
        present = train[data["tabular"][1][train]]
        expected = np.concatenate([data["tabular"][0][present], copy_x[np.isin(rows, present)]])
        np.testing.assert_allclose(tab_x, expected, atol=1e-6)
        held_copies = {r.tobytes() for r in copy_x[np.isin(rows, held_out)].astype(np.float32)}
        assert held_copies and not held_copies & {r.tobytes() for r in tab_x.astype(np.float32)}


def _copies(table: mf.MultimodalTable) -> tuple[np.ndarray, mf.MultimodalTable]:
    from modalfuse._corruptions import corrupt_rows

    return corrupt_rows(table, [NOISE], seed=FAST["seed"])


def test_quality_aware_heads_see_the_scores(small, cache, tmp_path: Path) -> None:
    with mf.using_cache(cache):
        clf = mf.MultimodalClassifier(
            fusion="early", fusion_options={"quality_aware": True}, train_corruptions=NOISE, **FAST
        ).fit(small)
    assert clf.fusion_.state["quality"]["dims"] == {"text": 2, "tabular": 1}
    proba = clf.predict_proba(small)
    assert_probabilities(proba, len(small), 3)
    clf.save(tmp_path / "m")
    np.testing.assert_allclose(
        mf.MultimodalClassifier.load(tmp_path / "m").predict_proba(small), proba, atol=1e-5
    )
    with pytest.raises(mf.OptionError, match="quality_aware=True is not available for the shared space"):
        mf.MultimodalClassifier(fusion="shared", fusion_options={"quality_aware": True}, **FAST).fit(small)


def test_bad_train_corruptions_are_refused_before_training(small) -> None:
    with pytest.raises(mf.OptionError, match=r"parameter 'train_corruptions' must be None, a spec"):
        mf.MultimodalClassifier(fusion="late:quality", train_corruptions=5, **FAST).fit(small)
    with pytest.raises(mf.OptionError, match=r"parameter 'train_corruptions': corruption 'tabular=3'"):
        mf.MultimodalClassifier(fusion="late:quality", train_corruptions="tabular=3", **FAST).fit(small)
    with pytest.raises(mf.UnknownNameError, match=r"unknown input 'audio'.*in corruption 'audio:noise=5'"):
        mf.MultimodalClassifier(fusion="unimodal:text", train_corruptions=["audio:noise=5"], **FAST).fit(
            small
        )
