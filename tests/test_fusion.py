"""Fusion strategies: registry, missing modalities, out-of-fold combiners, end-to-end training, explain."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import modalfuse as mf
from conftest import assert_probabilities
from modalfuse.fusion import _base, _late
from modalfuse.fusion._train import TrainConfig, seeded

FAST = {"epochs": 3, "min_steps": 20, "batch_size": 16, "inner_folds": 2, "n_threads": 1}
STRATEGIES = ["unimodal:text", "unimodal:image", "late:mean", "late:weighted", "late:stacking", "early"]
INPUTS = ["image", "audio", "text", "tabular"]
#: Settings of the cross-validated comparisons (shared, so their per-input models are shared too).
EVAL = {"epochs": 2, "min_steps": 20, "batch_size": 16, "inner_folds": 2, "n_threads": 1}


@pytest.fixture(scope="module")
def fitted(table) -> dict[str, mf.MultimodalClassifier]:
    """Every built-in strategy, fitted once on the synthetic table (which has missing cells)."""
    return {name: mf.MultimodalClassifier(fusion=name, seed=0, **FAST).fit(table) for name in STRATEGIES}


def _features(table) -> pd.DataFrame:
    return table.frame.copy()


# ---------------------------------------------------------------------------------------------- registry
def test_registry_names_and_shorthand() -> None:
    assert {"early", "late", "unimodal"} <= set(mf.list_fusions())
    late = mf.get_fusion("late:stacking")
    # options hold every declared option, resolved
    assert isinstance(late, mf.FusionStrategy)
    assert late.options == {"method": "stacking", "inner_folds": 3, "missing": "mask"}
    assert mf.get_fusion("unimodal:audio").options == {"input": "audio", "inner_folds": 3, "missing": "mask"}
    with pytest.raises(KeyError, match="unknown fusion"):
        mf.get_fusion("nope")
    with pytest.raises(KeyError, match="takes no ':' argument"):
        mf.get_fusion("early:x")
    with pytest.raises(ValueError, match="already registered"):
        mf.register_fusion(type("Dup", (mf.FusionStrategy,), {"name": "early"}))


def test_make_strategies_expands_families_and_adds_baselines(table) -> None:
    from modalfuse._api import FAMILIES

    names = list(mf.make_strategies(table, "late"))
    late = ["late:mean", "late:weighted", "late:stacking", "late:product", "late:confidence"]
    assert names == [f"unimodal:{n}" for n in INPUTS] + ["linear"] + late
    assert FAMILIES["late"] == late
    allnames = list(mf.make_strategies(table, "all", epochs=2, min_steps=20))
    assert allnames == [
        *names,
        *(n for family, members in FAMILIES.items() if family != "late" for n in members),
    ]
    assert "early" in allnames
    clf = mf.make_strategies(table, "early", epochs=2, seed=3)["early"]
    assert (clf.fusion, clf.epochs, clf.seed) == ("early", 2, 3)
    with pytest.raises(mf.UnknownNameError, match="unknown fusion 'quantum'"):
        mf.make_strategies(table, "quantum")
    # baselines only: no linear baseline is added
    assert list(mf.make_strategies(table, "unimodal")) == [f"unimodal:{n}" for n in INPUTS]
    assert list(mf.make_strategies(table, "linear")) == ["linear"]
    # the linear baseline keeps the classical encoders asked for, not the trainable ones
    both = mf.make_strategies(table, "early", encoders={"image": "hog", "audio": "audio-cnn"})
    assert both["linear"].encoders == {"image": "hog"}
    assert both["early"].encoders == {"image": "hog", "audio": "audio-cnn"}


# -------------------------------------------------------------------------------- fit / predict / missing
@pytest.mark.parametrize("name", STRATEGIES)
def test_strategy_learns_and_gives_probabilities(fitted, table, name: str) -> None:
    clf = fitted[name]
    assert_probabilities(clf.predict_proba(table), len(table), 3)
    assert list(clf.classes_) == ["a", "b", "c"]
    # strong signal: far above chance (1/3) on the training rows
    assert np.mean(clf.predict(table) == table.y) > 0.8


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_modality_missing_in_every_predict_row(fitted, table, name: str) -> None:
    clf = fitted[name]
    X = _features(table)
    for col in ["image", "text"]:
        hidden = X.copy()
        hidden[col] = None
        absent = X.drop(columns=[col])
        p_hidden = clf.predict_proba(hidden)
        p_absent = clf.predict_proba(absent)
        np.testing.assert_allclose(p_absent, p_hidden, atol=1e-6)  # absent column == missing everywhere
        np.testing.assert_allclose(p_hidden.sum(1), 1.0, atol=1e-6)
        assert np.isfinite(p_hidden).all()
    # every input missing: still a probability per row
    nothing = clf.predict_proba(X.assign(**dict.fromkeys(X.columns, None)).head(3))
    assert nothing.shape == (3, 3) and np.isfinite(nothing).all()
    # none of the model's columns at all: an error, not the class prior
    with pytest.raises(mf.SchemaError, match="none of the model's input columns"):
        clf.predict_proba(pd.DataFrame({"unrelated": [1, 2, 3]}))


def test_unimodal_rows_without_the_input_get_the_training_prior(fitted, table) -> None:
    clf = fitted["unimodal:image"]
    X = _features(table)
    X["image"] = None
    prior = np.bincount(np.unique(table.y, return_inverse=True)[1]) / len(table)
    np.testing.assert_allclose(clf.predict_proba(X), np.tile(prior, (len(X), 1)), atol=1e-12)
    # rows where only the image is missing in the table also get the prior
    missing = ~table.mask("image")
    np.testing.assert_allclose(clf.predict_proba(table)[missing], np.tile(prior, (missing.sum(), 1)))


def test_late_fusion_uses_only_the_inputs_present(fitted, table) -> None:
    """late:mean of a row equals the mean of its present inputs' probabilities."""
    clf = fitted["late:mean"]
    strategy = clf.fusion_
    data = clf.transform_inputs(table)
    probs, masks = strategy._per_input(data)
    expected = np.stack(
        [np.mean([probs[n][i] for n in probs if masks[n][i]], axis=0) for i in range(len(table))]
    )
    np.testing.assert_allclose(strategy.predict_proba(data), expected, atol=1e-12)


def _hide_at_fit(table, name: str, rows: np.ndarray) -> mf.MultimodalTable:
    present = dict(table.present)
    for col in table.inputs[name][1]:
        m = present[col].copy()
        m[rows] = False
        present[col] = m
    return mf.MultimodalTable(
        table.frame, schema=table.schema, y=table.y, label=table.label, present=present, name=table.name
    )


@pytest.mark.parametrize("name", ["late:weighted", "late:stacking", "early", "unimodal:audio"])
def test_a_modality_missing_in_every_training_row(table, name: str, tmp_path) -> None:
    no_audio = _hide_at_fit(table, "audio", np.arange(len(table)))
    clf = mf.MultimodalClassifier(fusion=name, seed=0, **FAST).fit(no_audio)
    assert "audio" not in clf.preprocessors_
    proba = clf.predict_proba(table)  # audio present at predict time: ignored, not a crash
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    if name == "unimodal:audio":
        np.testing.assert_allclose(proba, 1 / 3)  # nothing to learn from: the class prior
        assert list(clf.explain(table, method="native").columns) == ["prediction", "probability"]
        shapley = clf.explain(table)  # no input: every row is explained by the prior alone
        np.testing.assert_allclose(shapley["value"], shapley["base"])
    else:
        assert clf.score(table) > 0.8
    loaded = mf.MultimodalClassifier.load(clf.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.predict_proba(table), proba, atol=1e-6)


def test_a_modality_missing_in_most_training_rows(table) -> None:
    """An input present in a single training row cannot be cross-fitted, but must not break the fit."""
    hide = np.arange(1, len(table))
    clf = mf.MultimodalClassifier(fusion="late:stacking", seed=0, **FAST).fit(
        _hide_at_fit(table, "image", hide)
    )
    assert clf.fusion_.state["net_folds"]["image"] == [-1]  # one network, on every row that has it
    assert np.isnan(clf.fusion_.models_["image"].oof).all()
    assert clf.score(table) > 0.8


def test_unknown_unimodal_input_is_a_clear_error(table) -> None:
    with pytest.raises(mf.UnknownNameError, match="unknown input 'video'"):
        mf.MultimodalClassifier(fusion="unimodal:video", epochs=1).fit(table)


# ----------------------------------------------------------------------------------- out-of-fold combiners
@pytest.fixture(scope="module")
def noisy_table() -> mf.MultimodalTable:
    """A strong text input and 80 pure-noise numeric columns a linear model can memorise in-sample."""
    rng = np.random.default_rng(0)
    n = 60
    y = np.array(["a", "b", "c"] * (n // 3))
    words = {"a": "apple apricot", "b": "banana blueberry", "c": "cherry coconut"}
    frame = pd.DataFrame(rng.standard_normal((n, 80)), columns=[f"n{i}" for i in range(80)])
    noise = ["some", "fruit", "very", "fresh", "ripe", "sweet", "sour", "big", "small", "green"]
    frame.insert(0, "text", [f"{words[c]} {' '.join(rng.choice(noise, size=4))}" for c in y])
    frame["y"] = y
    table = mf.read_table(frame, label="y")
    assert table.inputs["text"][0] == "text"
    return table


def test_combiners_are_fitted_on_out_of_fold_predictions(noisy_table) -> None:
    params: dict[str, Any] = {
        "epochs": 30,
        "min_steps": 20,
        "batch_size": 16,
        "inner_folds": 3,
        "learning_rate": 0.02,
        "encoders": {"tabular": "tabular-scaled"},
        "seed": 0,
        "n_threads": 1,
    }
    weighted = mf.MultimodalClassifier(fusion="late:weighted", **params).fit(noisy_table)
    strategy = weighted.fusion_
    # in sample the noise model looks good, out of fold it is at chance
    data = weighted.transform_inputs(noisy_table)
    in_sample, _ = strategy._per_input(data)
    y = np.unique(noisy_table.y, return_inverse=True)[1]
    oof = strategy.models_["tabular"].oof
    assert np.mean(oof.argmax(1) == y) < 0.6
    assert np.mean(strategy.models_["text"].oof.argmax(1) == y) > 0.9
    assert np.mean(in_sample["tabular"].argmax(1) == y) > np.mean(oof.argmax(1) == y) + 0.2
    w = strategy.state["weights"]
    assert set(w) == {"text", "tabular"} and all(v >= 0 for v in w.values())
    assert w["text"] > 5 * w["tabular"]

    stacking = mf.MultimodalClassifier(fusion="late:stacking", **params).fit(noisy_table)
    coef = np.abs(np.asarray(stacking.fusion_.state["stacking"]["coef"]))
    assert coef.shape == (3, 2 * 3 + 2)  # log-probabilities of 2 inputs x 3 classes + 2 presence flags
    assert coef[:, 0:3].sum() > 2 * coef[:, 3:6].sum()  # text columns outweigh the noise columns


# ------------------------------------------------------------------------------------------- early fusion
def test_early_fusion_end_to_end_trains_every_encoder(table, tmp_path) -> None:
    clf = mf.MultimodalClassifier(fusion="early", seed=0, fusion_options={"end_to_end": True}, **FAST).fit(
        table
    )
    strategy = clf.fusion_
    assert strategy.state["end_to_end"] is True and not hasattr(strategy, "heads_")
    initial = strategy._net()
    trained = strategy.net_
    for name in INPUTS:
        before = dict(initial.encoders[name].named_parameters())
        changed = [
            k
            for k, p in trained.encoders[name].named_parameters()
            if not torch.equal(p.detach(), before[k].detach())
        ]
        assert changed, f"encoder {name!r} was not trained"
    head_before = dict(initial.head.named_parameters())
    assert any(
        not torch.equal(p.detach(), head_before[k].detach()) for k, p in trained.head.named_parameters()
    )
    assert clf.score(table) > 0.8
    loaded = mf.MultimodalClassifier.load(clf.save(tmp_path / "e2e"))
    assert loaded.fusion_.state["end_to_end"] is True
    np.testing.assert_allclose(loaded.predict_proba(table), clf.predict_proba(table), atol=1e-6)
    # saved before "end_to_end" was recorded (every joint model was then trained end to end): loads as such
    doc = json.loads((tmp_path / "e2e" / "model.json").read_text())
    del doc["fusion"]["state"]["end_to_end"], doc["fusion"]["options"]["end_to_end"]
    (tmp_path / "e2e" / "model.json").write_text(json.dumps(doc))
    old = mf.MultimodalClassifier.load(tmp_path / "e2e")
    np.testing.assert_allclose(old.predict_proba(table), clf.predict_proba(table), atol=1e-6)
    with pytest.raises(ValueError, match="'end_to_end' must be true or false"):
        mf.MultimodalClassifier(fusion="early", fusion_options={"end_to_end": "maybe"}, **FAST).fit(table)


def test_joint_heads_train_on_held_out_embeddings_of_the_shared_encoders(table, monkeypatch) -> None:
    """By default a joint strategy trains no encoder: it reads the per-input networks late fusion trained
    (the same objects), and each inner fold's head learns from the embeddings of that fold's held-out rows
    by the networks that never saw them."""
    from modalfuse.fusion import _early

    seen: list[tuple[dict, np.ndarray]] = []
    real = _early.train_network

    def spy(net, data, y, config, **kw):
        seen.append(({n: (x.copy(), m.copy()) for n, (x, m) in data.items()}, np.asarray(y).copy()))
        return real(net, data, y, config, **kw)

    late = mf.MultimodalClassifier(fusion="late:mean", seed=0, **FAST).fit(table)
    monkeypatch.setattr(_early, "train_network", spy)
    early = mf.MultimodalClassifier(fusion="early", seed=0, **FAST).fit(table)
    strategy = early.fusion_
    assert strategy.state["end_to_end"] is False
    assert all(strategy.encoders_.models_[n] is late.fusion_.models_[n] for n in INPUTS)  # trained once
    assert strategy.reused_fit_seconds_ > 0
    splits = strategy.encoders_.splits_
    assert len(splits) == len(strategy.heads_) == len(seen) == FAST["inner_folds"]
    data = early.transform_inputs(table)
    y = np.unique(table.y, return_inverse=True)[1]
    for fold, ((train, held_out), (head_data, head_y)) in enumerate(zip(splits, seen, strict=True)):
        assert len(held_out) and not set(train) & set(held_out)
        np.testing.assert_array_equal(head_y, y[held_out])
        for n in INPUTS:
            ens = strategy.encoders_.models_[n]
            assert ens.folds[fold] == fold  # network `fold` was trained without the held-out rows
            x, m = data[n]
            rows = held_out[m[held_out]]
            np.testing.assert_array_equal(head_data[n][1], m[held_out])
            want = next(iter(ens.nets[fold].encoders.values()))(torch.from_numpy(x[rows])).detach().numpy()
            np.testing.assert_allclose(head_data[n][0][m[held_out]], want, atol=1e-5)
    assert early.score(table) > 0.8


def test_seeded_network_builds_are_repeatable() -> None:
    net = lambda: torch.nn.Linear(4, 3)  # noqa: E731
    a, b, c = seeded(1, net), seeded(1, net), seeded(2, net)
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)
    state = torch.random.get_rng_state()
    seeded(5, net)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is left alone


def test_training_runs_for_any_number_of_steps() -> None:
    from modalfuse.encoders import FeatureMLP
    from modalfuse.fusion._train import FusionNet, train_network

    rng = np.random.default_rng(0)
    for n, bs, epochs in [(8, 4, 2), (4, 4, 4), (3, 16, 1), (1, 1, 1)]:  # 4 steps used to crash OneCycleLR
        x = rng.standard_normal((n, 3)).astype(np.float32)
        net = FusionNet({"x": FeatureMLP(3, dim=4)}, 2, hidden=1)
        train_network(
            net, {"x": (x, np.ones(n, bool))}, np.arange(n) % 2, TrainConfig(epochs=epochs, batch_size=bs)
        )


# ------------------------------------------------------------------------------------------------ explain
@pytest.mark.parametrize("name", ["late:weighted", "late:stacking", "late:mean", "early", "unimodal:text"])
def test_explain_gives_per_input_contributions(fitted, table, name: str) -> None:
    if name not in fitted:
        fitted[name] = mf.MultimodalClassifier(fusion=name, seed=0, **FAST).fit(table)
    clf = fitted[name]
    out = clf.explain(table, method="native")
    inputs = ["text"] if name.startswith("unimodal") else INPUTS
    assert list(out.columns) == ["prediction", "probability", *inputs]
    proba = clf.predict_proba(table)
    np.testing.assert_array_equal(out["prediction"], clf.classes_[proba.argmax(1)])
    np.testing.assert_allclose(out["probability"], proba.max(1))
    for n in inputs:
        missing = ~table.mask(n)
        assert (out.loc[missing, n] == 0).all()  # a missing input contributes nothing
        assert np.isfinite(out[n]).all()
    # the strong text input pushes rows toward their (mostly correct) prediction
    assert out.loc[table.mask("text"), "text"].mean() > 0


def test_early_contribution_is_the_occlusion_drop(fitted, table) -> None:
    clf = fitted["early"]
    out = clf.explain(table.take(np.arange(6)), method="native")
    X = _features(table).iloc[:6]
    full = clf.predict_proba(X)
    pred = full.argmax(1)
    without_text = X.copy()
    without_text["text"] = None
    drop = full[np.arange(6), pred] - clf.predict_proba(without_text)[np.arange(6), pred]
    present = table.mask("text")[:6]
    np.testing.assert_allclose(out["text"].to_numpy()[present], drop[present], atol=1e-6)


# ----------------------------------------------------------------------------------------- extension point
def test_user_strategy_runs_through_compare(table, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_base, "_FUSIONS", dict(_base._FUSIONS))  # keep the registry clean for others

    @mf.register_fusion
    class NearestCentroid(mf.FusionStrategy):
        """Nearest class centroid of the tabular input (the one-method-pair extension point)."""

        name = "centroid"

        def fit(self, data, y, groups):
            x, m = data["tabular"]
            self.centroids = np.stack([x[m & (y == k)].mean(0) for k in range(self.n_classes)])
            return self

        def predict_proba(self, data):
            x, _ = data["tabular"]
            d = ((x[:, None, :] - self.centroids[None]) ** 2).sum(-1)
            return np.exp(-d) / np.exp(-d).sum(1, keepdims=True)

    assert "centroid" in mf.list_fusions()
    result = mf.compare(table, fusion="centroid", cv=3, **EVAL)
    entry = result["strategies"]["centroid"]
    assert "error" not in entry, entry
    assert len(entry["accuracy"]["folds"]) == 3
    assert entry["accuracy"]["mean"] > 0.6  # the numeric column separates the classes
    assert {f"unimodal:{n}" for n in INPUTS} <= set(result["strategies"])  # baselines alongside


def test_compare_all_reports_every_strategy(table) -> None:
    import json

    result = mf.compare(table, fusion="all", cv=3, **EVAL)
    result = json.loads(json.dumps(result))  # JSON-able
    expected = list(mf.make_strategies(table, "all"))
    assert {"late:mean", "late:weighted", "late:stacking", "early"} <= set(expected)
    assert list(result["strategies"]) == expected
    for name in expected:
        entry = result["strategies"][name]
        assert "error" not in entry, (name, entry)
        for metric in ("accuracy", "f1_macro"):
            assert set(entry[metric]) >= {"mean", "std", "folds"}
            assert len(entry[metric]["folds"]) == 3
            assert 0.0 <= entry[metric]["mean"] <= 1.0
            assert entry[metric]["mean"] == pytest.approx(np.mean(entry[metric]["folds"]))
        assert entry["fit_seconds"] > 0
    assert result["cv"]["n_folds"] == 3 and result["n_rows"] == len(table)
    assert result["best"]["unimodal"].startswith("unimodal:")
    # two epochs only, but the text words give the classes away: well above chance (1/3)
    best = result["best"]["strategy"]
    assert result["strategies"][best]["accuracy"]["mean"] > 0.7
    assert result["strategies"]["unimodal:text"]["accuracy"]["mean"] > 0.5


def test_shared_per_input_models_do_not_change_results(noisy_table) -> None:
    """The per-input ensembles cached between strategies give the same result as a fresh fit."""
    params: dict[str, Any] = {
        "epochs": 3,
        "min_steps": 20,
        "batch_size": 16,
        "inner_folds": 2,
        "seed": 4,
        "n_threads": 1,
    }
    with mf.using_cache(mf.Cache()):
        first = mf.MultimodalClassifier(fusion="late:weighted", **params).fit(noisy_table)
        again = mf.MultimodalClassifier(fusion="late:stacking", **params).fit(noisy_table)
        other = mf.MultimodalClassifier(fusion="late:stacking", **{**params, "seed": 5}).fit(noisy_table)
    assert again.fusion_.models_["text"] is first.fusion_.models_["text"]  # shared, not retrained
    assert again.reused_fit_seconds_ > 0 and first.reused_fit_seconds_ == 0
    with mf.using_cache(mf.Cache()):
        fresh = mf.MultimodalClassifier(fusion="late:stacking", **params).fit(noisy_table)
    assert fresh.fusion_.models_["text"] is not first.fusion_.models_["text"]
    np.testing.assert_array_equal(again.predict_proba(noisy_table), fresh.predict_proba(noisy_table))
    assert other.fusion_.models_["text"] is not first.fusion_.models_["text"]  # the seed is in the key


def test_bad_late_settings_fail_before_training(table) -> None:
    with pytest.raises(mf.UnknownNameError, match="unknown fusion 'late:median'; did you mean 'late:mean'"):
        mf.MultimodalClassifier(fusion="late:median", **FAST).fit(table)
    with pytest.raises(ValueError, match="inner_folds >= 2"):
        mf.MultimodalClassifier(fusion="late:stacking", **{**FAST, "inner_folds": 1}).fit(table)
    # one network per input, no cross-fitting, is fine where no combiner is fitted
    clf = mf.MultimodalClassifier(fusion="late:mean", **{**FAST, "inner_folds": 1}).fit(table)
    assert all(folds == [-1] for folds in clf.fusion_.state["net_folds"].values())
    assert clf.score(table) > 0.8


def test_inner_folds_keep_groups_together_and_classes_balanced() -> None:
    y = np.repeat([0, 1, 2], 12)
    groups = np.tile(np.repeat(np.arange(6), 2), 3).astype(str)
    splits = _late.inner_splits(y, groups, 3, seed=0)
    assert len(splits) == 3
    covered = np.concatenate([va for _, va in splits])
    assert sorted(covered.tolist()) == list(range(len(y)))  # every row predicted out of fold once
    for tr, va in splits:
        assert set(groups[tr]).isdisjoint(groups[va])
    few = _late.inner_splits(y, None, 3, seed=0)
    for _, va in few:
        assert np.bincount(y[va]).tolist() == [4, 4, 4]


def test_modality_dropout_training(table) -> None:
    clf = mf.MultimodalClassifier(fusion="early", modality_dropout=0.5, seed=0, **FAST).fit(table)
    assert clf.score(table) > 0.8
    X = _features(table)
    only_text = X[["text"]]
    # trained with inputs hidden, text alone still carries the prediction
    assert np.mean(clf.predict(only_text) == table.y) > 0.7


def test_late_models_saved_with_network_counts_still_load(fitted, table, tmp_path) -> None:
    """Models saved before the inner folds were recorded per network ("n_nets": network i is fold i's)."""
    clf = fitted["late:stacking"]
    path = clf.save(tmp_path / "m")
    doc = json.loads((path / "model.json").read_text())
    state = doc["fusion"]["state"]
    state["n_nets"] = {n: len(folds) for n, folds in state.pop("net_folds").items()}
    (path / "model.json").write_text(json.dumps(doc))
    loaded = mf.MultimodalClassifier.load(path)
    np.testing.assert_allclose(loaded.predict_proba(table), clf.predict_proba(table), atol=1e-6)
