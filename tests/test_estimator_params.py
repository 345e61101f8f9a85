"""MultimodalClassifier's hyperparameters: checked before anything is decoded or trained, random_state,
class_weight and sample_weight, float64 probabilities, scikit-learn's NotFittedError."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn.exceptions
import torch
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

import modalfuse as mf
from modalfuse.encoders import FeatureMLP, _prep
from modalfuse.fusion._train import FusionNet, TrainConfig, train_network

FAST: dict[str, Any] = {"epochs": 2, "min_steps": 20, "batch_size": 16, "inner_folds": 2, "n_threads": 1}


def _imbalanced(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Tabular rows, 18 % of them the minority class, whose two informative columns are shifted by 0.8."""
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.18, "minor", "major")
    shift = np.where(y == "minor", 0.8, 0.0)
    frame = pd.DataFrame(
        {
            "a": rng.standard_normal(n) + shift,
            "b": rng.standard_normal(n) + shift,
            "c": rng.standard_normal(n),
            "kind": rng.choice(["x", "y", "z"], n),
        }
    )
    return frame, y


@pytest.fixture(scope="module")
def imbalanced() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    return (*_imbalanced(240, 0), *_imbalanced(400, 1))


# ------------------------------------------------------------------------------------ checked up front
@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything is decoded or a preprocessor is fitted."""

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("decoded or fitted before the parameters were checked")

    monkeypatch.setattr(_prep, "decode_media", boom)
    monkeypatch.setattr(_prep.Preprocessor, "fit", boom)


BAD_PARAMS = [
    ({"epochs": 0}, mf.OptionError, r"parameter 'epochs' must be an integer >= 1, got 0"),
    ({"epochs": "many"}, mf.OptionError, r"parameter 'epochs' must be an integer >= 1, got 'many'"),
    ({"min_steps": -1}, mf.OptionError, r"parameter 'min_steps' must be an integer >= 0, got -1"),
    (
        {"batch_size": 1},
        mf.OptionError,
        r"'batch_size' must be an integer >= 2 \(a one-row batch is skipped, as BatchNorm",
    ),
    ({"learning_rate": 0}, mf.OptionError, r"'learning_rate' must be a number > 0, got 0"),
    ({"learning_rate": float("nan")}, mf.OptionError, r"'learning_rate' must be a number > 0, got nan"),
    ({"weight_decay": -1e-4}, mf.OptionError, r"'weight_decay' must be a number >= 0"),
    ({"modality_dropout": 1.0}, mf.OptionError, r"'modality_dropout' must be a number in \[0, 1\), got 1.0"),
    ({"recombine_ratio": 1.5}, mf.OptionError, r"'recombine_ratio' must be a number in \[0, 1\], got 1.5"),
    ({"mixup_alpha": -0.5}, mf.OptionError, r"'mixup_alpha' must be a number >= 0, got -0.5"),
    ({"inner_folds": 0}, mf.OptionError, r"'inner_folds' must be an integer >= 1, got 0"),
    ({"hidden": "wide"}, mf.OptionError, r"'hidden' must be an integer >= 0, got 'wide'"),
    ({"augment": "maybe"}, mf.OptionError, r"'augment' must be true or false, got 'maybe'"),
    ({"random_state": -1}, mf.OptionError, r"'random_state' must be an integer in \[0, 2147483647\], got -1"),
    ({"device": 3}, mf.OptionError, r"'device' must be a string, got 3"),
    ({"device": "quantum"}, mf.OptionError, r"'device' 'quantum' is not usable here"),
    ({"fusion": "erly"}, mf.UnknownNameError, r"unknown fusion 'erly'; did you mean 'early'\?"),
    ({"fusion": "late:median"}, mf.UnknownNameError, r"did you mean 'late:mean'\?"),
    (
        {"fusion": "lowrank", "fusion_options": {"rnak": 8}},
        mf.OptionError,
        r"fusion 'lowrank': unknown option 'rnak'; did you mean 'rank'\?",
    ),
    (
        {"fusion": "lowrank", "hidden": 0},
        mf.OptionError,
        r"fusion 'lowrank': option 'hidden' must be an integer >= 1",
    ),
    ({"fusion_options": ["rank", 8]}, mf.OptionError, r"parameter 'fusion_options' must be a dict"),
    ({"encoders": {"image": "hgo"}}, mf.UnknownNameError, r"unknown encoder 'hgo'; did you mean 'hog'\?"),
    (
        {"encoders": {"image": "mfcc"}},
        mf.OptionError,
        r"input 'image' is image, but encoder 'mfcc' is for audio",
    ),
    ({"encoders": {"imgae": "hog"}}, mf.UnknownNameError, r"unknown input 'imgae'; did you mean 'image'\?"),
    (
        {"preprocess": {"audio": {"n_mel": 20}}},
        mf.OptionError,
        r"unknown option 'n_mel'; did you mean 'n_mels'\?",
    ),
    ({"preprocess": {"audio": {"n_mels": 0}}}, mf.OptionError, r"'n_mels' must be an integer >= 1, got 0"),
    ({"preprocess": {"audio": 40}}, mf.OptionError, r"preprocess\['audio'\] must be a dict of options"),
    ({"class_weight": "balance"}, mf.OptionError, r"'class_weight' must be None, 'balanced' or a dict"),
    ({"class_weight": {"a": -1}}, mf.OptionError, r"class_weight\['a'\] must be a finite number >= 0"),
    (
        {"class_weight": {"d": 2.0}},
        mf.OptionError,
        r"class_weight names the label 'd', which no training row has",
    ),
    ({"seed": 3, "random_state": 4}, mf.OptionError, r"seed=3 and random_state=4 disagree"),
]


@pytest.mark.parametrize(("params", "error", "message"), BAD_PARAMS, ids=[str(p) for p, _, _ in BAD_PARAMS])
def test_bad_parameters_fail_before_anything_is_decoded(table, no_decoding, params, error, message) -> None:
    clf = mf.MultimodalClassifier(**FAST).set_params(**params)
    with pytest.raises(error, match=message) as info:
        clf.fit(table)
    assert "\n" not in str(info.value)
    assert not hasattr(clf, "fusion_")


def test_an_unavailable_accelerator_is_refused_before_fitting(table, no_decoding) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(mf.OptionError, match=r"parameter 'device' 'cuda:0' is not usable here"):
        mf.MultimodalClassifier(device="cuda:0", **FAST).fit(table)


def test_training_that_makes_no_step_is_an_error() -> None:
    """batch_size=1 used to skip every (one-row) batch and return the untrained network silently."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    net = FusionNet({"x": FeatureMLP(3, dim=4)}, 2, hidden=1)
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(
        mf.TrainingError, match=r"no optimiser step \(8 rows, batch_size=1\).*batch_size >= 2"
    ):
        train_network(net, {"x": (x, np.ones(8, bool))}, np.arange(8) % 2, TrainConfig(batch_size=1))
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    empty = {"x": (np.zeros((0, 3), np.float32), np.zeros(0, bool))}
    with pytest.raises(mf.TrainingError, match=r"\(0 rows"):
        train_network(FusionNet({"x": FeatureMLP(3, dim=4)}, 2, hidden=1), empty, np.zeros(0), TrainConfig())


@pytest.mark.parametrize(("n", "batch_size"), [(17, 16), (33, 16), (16, 16), (9, 4)])
def test_every_planned_step_is_made(monkeypatch: pytest.MonkeyPatch, n: int, batch_size: int) -> None:
    """A last batch of one row is skipped; it used to be counted in the plan, so with 17 rows in batches
    of 16 half the planned steps never came and the one-cycle schedule stopped at its peak."""
    planned: list[int] = []
    made: list[int] = []
    real_sched, real_step = torch.optim.lr_scheduler.OneCycleLR, torch.optim.AdamW.step

    def sched(opt, **kw):
        planned.append(kw["total_steps"])
        return real_sched(opt, **kw)

    def step(self, *args, **kwargs):
        made.append(1)
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.lr_scheduler, "OneCycleLR", sched)
    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    x = np.random.default_rng(0).standard_normal((n, 3)).astype(np.float32)
    net = FusionNet({"x": FeatureMLP(3, dim=4)}, 2, hidden=1)
    train_network(
        net, {"x": (x, np.ones(n, bool))}, np.arange(n) % 2, TrainConfig(epochs=3, batch_size=batch_size)
    )
    assert planned == [len(made)]
    assert len(made) == 3 * (n // batch_size + (n % batch_size >= 2))


# ------------------------------------------------------------------------------------- random_state
def test_random_state_is_the_seed_and_seed_its_alias(imbalanced) -> None:
    X, y, _, _ = imbalanced
    params = mf.MultimodalClassifier().get_params()
    assert params["random_state"] == 0 and params["seed"] is None and params["class_weight"] is None

    def proba(**kw: Any) -> np.ndarray:
        return mf.MultimodalClassifier(fusion="early", **FAST, **kw).fit(X, y).predict_proba(X)

    default = proba()
    np.testing.assert_array_equal(default, proba())  # repeatable by default
    np.testing.assert_array_equal(default, proba(random_state=0))
    other = proba(random_state=7)
    assert not np.allclose(other, default)
    np.testing.assert_array_equal(other, proba(seed=7))  # the alias
    np.testing.assert_array_equal(other, proba(seed=7, random_state=7))
    copy = clone(mf.MultimodalClassifier(random_state=7, class_weight={"minor": 2.0}))
    assert copy.get_params()["random_state"] == 7 and copy.get_params()["class_weight"] == {"minor": 2.0}
    assert copy.set_params(random_state=3, seed=None).random_state == 3


def test_compare_passes_an_explicit_random_state(imbalanced) -> None:
    X, y, _, _ = imbalanced
    table = mf.read_table(X.assign(y=y), label="y")
    result = mf.compare(table, fusion="cca", cv=2, random_state=3, **FAST)
    assert "error" not in result["strategies"]["cca"], result["strategies"]["cca"]
    assert mf.make_strategies(table, "cca", random_state=3)["cca"].random_state == 3


# ---------------------------------------------------------------------------------------- weights
@pytest.mark.parametrize("fusion", ["late:stacking", "early", "cca"])
def test_balanced_class_weight_raises_minority_recall(imbalanced, fusion: str) -> None:
    """With an 82/18 balance and short training every strategy predicted only the majority class."""
    X, y, X_test, y_test = imbalanced

    def minority_recall(class_weight: Any) -> float:
        clf = mf.MultimodalClassifier(fusion=fusion, class_weight=class_weight, **FAST).fit(X, y)
        return float(np.mean(clf.predict(X_test)[y_test == "minor"] == "minor"))

    plain, balanced = minority_recall(None), minority_recall("balanced")
    assert balanced >= plain + 0.3, (plain, balanced)
    assert balanced > 0.4


def test_class_weight_dict_and_sample_weight_reach_every_fit(imbalanced, monkeypatch) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y, _, _ = imbalanced
    seen: list[np.ndarray | None] = []
    real_fit = LogisticRegression.fit

    def spy(self, X_, y_, sample_weight=None, **kw):
        seen.append(None if sample_weight is None else np.asarray(sample_weight))
        return real_fit(self, X_, y_, sample_weight=sample_weight, **kw)

    monkeypatch.setattr(LogisticRegression, "fit", spy)
    mf.MultimodalClassifier(fusion="late:stacking", **FAST).fit(X, y)
    assert seen and all(w is None for w in seen)
    seen.clear()
    clf = mf.MultimodalClassifier(fusion="late:stacking", class_weight={"minor": 4.0}, **FAST)
    clf.fit(X, y)
    stacking = seen[-1]  # the meta-model, fitted on every training row's out-of-fold predictions
    expected = np.where(y == "minor", 4.0, 1.0)
    np.testing.assert_allclose(stacking, expected * len(y) / expected.sum())
    # the training prior is the weighted class share
    share = np.bincount((y == "minor").astype(int), weights=expected) / expected.sum()
    np.testing.assert_allclose(clf.fusion_.prior_, share)
    # sample_weight multiplies class_weight; only ratios matter
    seen.clear()
    sw = np.where(np.arange(len(y)) % 2 == 0, 1.0, 3.0)
    mf.MultimodalClassifier(fusion="cca", class_weight={"minor": 4.0}, **FAST).fit(
        X, y, sample_weight=10 * sw
    )
    np.testing.assert_allclose(seen[-1], expected * sw * len(y) / (expected * sw).sum())


def test_sample_weight_zero_on_a_class_removes_it(table) -> None:
    X, y = table.frame[["text", "num", "colour"]], np.asarray(table.y)
    for fusion in ("late:weighted", "early"):
        clf = mf.MultimodalClassifier(fusion=fusion, **FAST).fit(X, y, sample_weight=(y != "c").astype(float))
        assert np.mean(clf.predict(X) == "c") < 0.05  # class c's rows weigh nothing
        assert np.mean(clf.predict(X)[y != "c"] == y[y != "c"]) > 0.8


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.ones(5), r"sample_weight has shape \(5,\), expected \(72,\)"),
        (np.r_[-1.0, np.ones(71)], r"must be finite and >= 0; row 0 has -1.0"),
        (np.r_[np.ones(71), np.nan], r"row 71 has nan"),
        (np.zeros(72), r"sample_weight sums to 0"),
        (["x"] * 72, r"sample_weight must be numbers"),
    ],
)
def test_bad_sample_weights_are_refused_before_decoding(table, no_decoding, weights, message) -> None:
    with pytest.raises(mf.OptionError, match=message):
        mf.MultimodalClassifier(**FAST).fit(table, sample_weight=weights)


def test_a_strategy_without_sample_weight_refuses_weights(table, monkeypatch) -> None:
    from modalfuse.fusion import _base

    class NoWeights(mf.FusionStrategy):
        name = "noweights"

        def fit(self, data, y, groups):  # no sample_weight
            self.prior_ = np.bincount(y, minlength=self.n_classes) / len(y)
            return self

        def predict_proba(self, data):
            return np.tile(self.prior_, (len(next(iter(data.values()))[1]), 1))

    monkeypatch.setitem(_base._FUSIONS, "noweights", NoWeights)
    X, y = table.frame[["num", "colour"]], table.y
    assert mf.MultimodalClassifier(fusion="noweights", **FAST).fit(X, y).predict_proba(X).shape == (72, 3)
    with pytest.raises(mf.OptionError, match="fusion 'noweights' does not take sample weights"):
        mf.MultimodalClassifier(fusion="noweights", class_weight="balanced", **FAST).fit(X, y)


# ----------------------------------------------------------------------------------- probabilities
@pytest.mark.parametrize("fusion", ["late:weighted", "early", "cca", "unimodal:text"])
def test_probabilities_are_float64_and_sum_to_one(table, fusion: str) -> None:
    X, y = table.frame[["text", "num", "colour"]], table.y
    clf = mf.MultimodalClassifier(fusion=fusion, **FAST).fit(X, y)
    for rows in (X, X.assign(text=None), X.iloc[:0]):
        p = clf.predict_proba(rows)
        assert p.dtype == np.float64 and p.shape == (len(rows), 3)
        np.testing.assert_allclose(p.sum(1), 1, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------ not fitted
def test_an_unfitted_estimator_raises_scikit_learns_not_fitted_error(table) -> None:
    clf = mf.MultimodalClassifier(**FAST)
    try:
        clf.predict(table)
    except sklearn.exceptions.NotFittedError as exc:
        assert isinstance(exc, mf.NotFittedError) and "not fitted" in str(exc)
    else:  # pragma: no cover - the failure being tested for
        pytest.fail("predict before fit did not raise")
    with pytest.raises(sklearn.exceptions.NotFittedError):
        check_is_fitted(clf)
    clf.fit(table.frame[["num", "colour"]], table.y)
    check_is_fitted(clf)  # fitted attributes end in "_"
