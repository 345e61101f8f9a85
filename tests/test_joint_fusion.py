"""Joint-representation fusion (tensor, low-rank, attention) and training-time generation of new rows
(same-class recombination, multimodal mixup)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import modalfuse as mf
from conftest import assert_explanation_covers_inputs, assert_probabilities
from modalfuse.encoders import FeatureMLP
from modalfuse.fusion import _train
from modalfuse.fusion._joint import AttentionHead, LowRankHead, TensorHead, tensor_width
from modalfuse.fusion._train import FusionNet, TrainConfig, mix_embeddings, recombine, train_network

FAST = {"epochs": 3, "min_steps": 20, "batch_size": 16, "n_threads": 1}
JOINT = ["tensor", "lowrank", "attention"]
INPUTS = ["image", "audio", "text", "tabular"]
OTHER_COLUMNS = ["image", "audio", "num", "colour", "speaker"]  # every feature column but the text


@pytest.fixture(scope="module")
def fitted(table) -> dict[str, mf.MultimodalClassifier]:
    """Each joint strategy fitted once on the synthetic table (which has missing cells)."""
    return {name: mf.MultimodalClassifier(fusion=name, seed=0, **FAST).fit(table) for name in JOINT}


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------- registry
def test_joint_strategies_are_registered_with_their_shorthand() -> None:
    assert set(JOINT) <= set(mf.list_fusions())
    assert mf.get_fusion("lowrank:8").options["rank"] == 8  # the ':' argument, coerced
    assert mf.get_fusion("tensor:8").options["tensor_dim"] == 8
    assert isinstance(mf.get_fusion("attention"), mf.NeuralFusion)
    assert mf.get_fusion("lowrank:8").make_head({"a": 3, "b": 2}, 2).rank == 8
    with pytest.raises(KeyError, match="takes no ':' argument"):
        mf.get_fusion("attention:x")
    with pytest.raises(ValueError, match="'rank' must be an integer >= 1"):
        mf.get_fusion("lowrank:zero").make_head({"a": 3}, 2)
    with pytest.raises(ValueError, match="'tensor_dim'"):
        mf.get_fusion("tensor", tensor_dim=0).make_head({"a": 3}, 2)


# ------------------------------------------------------------------------------- through the estimator
@pytest.mark.parametrize("name", JOINT)
def test_joint_strategy_learns_and_gives_probabilities(fitted, table, name: str) -> None:
    clf = fitted[name]
    assert_probabilities(clf.predict_proba(table), len(table), 3)
    assert np.mean(clf.predict(table) == table.y) > 0.8  # chance is 1/3


@pytest.mark.parametrize("name", JOINT)
def test_joint_strategy_handles_missing_inputs(fitted, table, name: str) -> None:
    clf = fitted[name]
    X = table.frame.copy()
    only_text = X.copy()
    only_text[OTHER_COLUMNS] = None
    p_only = clf.predict_proba(only_text)
    assert np.isfinite(p_only).all()
    np.testing.assert_allclose(p_only.sum(1), 1.0, atol=1e-6)
    # a predict frame without the columns is the same as the inputs missing in every row
    np.testing.assert_allclose(clf.predict_proba(X[["text"]]), p_only, atol=1e-6)
    np.testing.assert_allclose(
        clf.predict_proba(X.drop(columns=["image"])), clf.predict_proba(X.assign(image=None)), atol=1e-6
    )
    # a single row holding one input only
    one = clf.predict_proba(only_text.iloc[[5]])
    assert one.shape == (1, 3) and np.isfinite(one).all()
    np.testing.assert_allclose(one, p_only[[5]], atol=1e-6)


@pytest.mark.parametrize("name", JOINT)
def test_joint_strategy_save_load_and_seed(fitted, table, name: str, tmp_path) -> None:
    clf = fitted[name]
    proba = clf.predict_proba(table)
    loaded = mf.MultimodalClassifier.load(clf.save(tmp_path / "m"))
    assert type(loaded.fusion_) is type(clf.fusion_)
    np.testing.assert_array_equal(loaded.predict_proba(table), proba)
    again = mf.MultimodalClassifier(fusion=name, seed=0, **FAST).fit(table)
    np.testing.assert_array_equal(again.predict_proba(table), proba)


@pytest.mark.parametrize("name", JOINT)
def test_joint_strategy_explains_by_occlusion(fitted, table, name: str) -> None:
    clf = fitted[name]
    out = clf.explain(table, method="native")
    assert_explanation_covers_inputs(out, table, INPUTS)
    X = table.frame.iloc[:6]
    full = clf.predict_proba(X)
    pred = full.argmax(1)
    drop = full[np.arange(6), pred] - clf.predict_proba(X.assign(text=None))[np.arange(6), pred]
    present = table.mask("text")[:6]
    np.testing.assert_allclose(out["text"].to_numpy()[:6][present], drop[present], atol=1e-6)


def test_tensor_width_shrinks_with_the_number_of_inputs() -> None:
    assert [tensor_width(m) for m in (1, 2, 3)] == [16, 16, 16]
    assert tensor_width(4) == 10 and 11**4 <= 20_000 < 12**4
    for m in range(1, 10):
        assert (tensor_width(m) + 1) ** m <= 20_000
    assert tensor_width(2, requested=4) == 4


# ----------------------------------------------------------------------------------------- head units
@pytest.mark.parametrize("head_cls", [TensorHead, LowRankHead, AttentionHead])
@pytest.mark.parametrize("n_inputs", [1, 5])
def test_heads_take_any_number_of_inputs(head_cls, n_inputs: int) -> None:
    dims = {f"m{i}": 3 + i for i in range(n_inputs)}
    head = head_cls(dims, 4).eval()
    emb = {n: _rand(6, d, seed=i) for i, (n, d) in enumerate(dims.items())}
    masks = {n: torch.arange(6) % (i + 2) != 0 for i, n in enumerate(dims)}
    masks["m0"][:] = False  # the first input missing everywhere, some rows with nothing at all
    out = head(emb, masks)
    assert out.shape == (6, 4) and torch.isfinite(out).all()


def test_tensor_fusion_is_the_outer_product() -> None:
    head = TensorHead({"a": 3, "b": 3}, 2, width=3).eval()
    with torch.no_grad():
        for lin in head.proj.values():
            lin.weight.copy_(torch.eye(3))
            lin.bias.zero_()
    a, b = _rand(4, 3, seed=1), _rand(4, 3, seed=2)
    ma = torch.tensor([True, True, False, True])
    mb = torch.tensor([True, False, True, True])
    one = torch.ones(4, 1)
    za = torch.cat([a * ma[:, None], one], 1)
    zb = torch.cat([b * mb[:, None], one], 1)
    expected = torch.einsum("ni,nj->nij", za, zb).reshape(4, 16)
    fused = head.fused({"a": a, "b": b}, {"a": ma, "b": mb})
    torch.testing.assert_close(fused, expected)
    # row 1 (b missing) keeps a's unimodal terms and the constant; all of b's terms are zero
    torch.testing.assert_close(fused[1].reshape(4, 4)[:, 3], za[1])
    assert (fused[1].reshape(4, 4)[:, :3] == 0).all()
    torch.testing.assert_close(head({"a": a, "b": b}, {"a": ma, "b": mb}), head.mlp(expected))


def test_low_rank_fusion_with_a_missing_input_is_the_formula() -> None:
    dims = {"a": 3, "b": 4, "c": 2}
    head = LowRankHead(dims, 3, rank=3, width=5).eval()
    emb = {n: _rand(4, d, seed=i) for i, (n, d) in enumerate(dims.items())}
    masks = {
        "a": torch.ones(4, dtype=torch.bool),
        "b": torch.tensor([False, True, False, True]),
        "c": torch.ones(4, dtype=torch.bool),
    }
    out = head(emb, masks).detach().numpy()
    W = {n: p.detach().numpy() for n, p in head.factors.items()}
    V, bias = head.out.weight.detach().numpy(), head.out.bias.detach().numpy()
    for i in range(4):
        h = np.zeros(5)
        for r in range(3):
            term = np.ones(5)
            for n in dims:
                z = emb[n][i].numpy() if masks[n][i] else np.zeros(dims[n])  # a missing input: only its 1
                term = term * (np.append(z, 1.0) @ W[n][r])
            h += term
        np.testing.assert_allclose(out[i], V @ h + bias, rtol=1e-4, atol=1e-5)
    changed = dict(emb, b=emb["b"] + 100.0)  # a missing input's values are never used
    torch.testing.assert_close(head(changed, masks)[[0, 2]], head(emb, masks)[[0, 2]])


def test_attention_masks_out_a_missing_input() -> None:
    dims = {"a": 6, "b": 5, "c": 4}
    head = AttentionHead(dims, 3).eval()
    emb = {n: _rand(3, d, seed=i) for i, (n, d) in enumerate(dims.items())}
    masks = {
        "a": torch.ones(3, dtype=torch.bool),
        "b": torch.tensor([False, True, True]),
        "c": torch.ones(3, dtype=torch.bool),
    }
    with torch.no_grad():
        base = head(emb, masks)
        changed = head(dict(emb, b=emb["b"] * 50 + 3), masks)
        torch.testing.assert_close(changed[0], base[0])  # row 0 does not have b: unchanged
        assert not torch.allclose(changed[1], base[1])  # row 1 has b: it matters
        # masked out of attention, not merely replaced: even the missing token does not reach the CLS token
        head.missing_token[1] += 10.0
        torch.testing.assert_close(head(emb, masks)[0], base[0])
        nothing = {n: torch.zeros(3, dtype=torch.bool) for n in dims}
        assert torch.isfinite(head(emb, nothing)).all()  # the CLS token alone


# ------------------------------------------------------------------------------------------ generation
def _batch(
    n: int = 30, seed: int = 0
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """Two inputs whose values name their row (float features and int token ids), ~1/3 missing."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.arange(n)
    xs = {"a": rows[:, None].float().repeat(1, 3), "b": rows[:, None].repeat(1, 2)}
    masks = {k: torch.rand(n, generator=g) > 0.35 for k in xs}
    y = torch.randint(0, 3, (n,), generator=g)
    return xs, masks, y


def test_recombination_takes_inputs_from_rows_of_the_same_class() -> None:
    xs, masks, y = _batch()
    before = {k: v.clone() for k, v in xs.items()}
    new_x, new_m = recombine(xs, masks, y, 1.0, torch.Generator().manual_seed(1))
    changed = torch.zeros(len(y), dtype=torch.bool)
    for k in xs:
        donor = new_x[k][:, 0].long()
        assert (new_x[k] == xs[k][donor]).all()  # whole rows taken
        assert (y[donor] == y).all()  # only from rows of the same class
        assert (new_m[k] == masks[k][donor]).all()  # the mask travels with the value
        for i in range(len(y)):
            candidates = (y == y[i]) & masks[k]
            if candidates.any():
                assert new_m[k][i]  # an input is taken from a row that has it
            if candidates.sum() - int(masks[k][i]) > 0:
                assert donor[i] != i  # from another row whenever there is one
        changed |= donor != torch.arange(len(y))
    assert changed.all()
    assert all(torch.equal(xs[k], before[k]) for k in xs)  # the batch itself is left alone
    again_x, again_m = recombine(xs, masks, y, 1.0, torch.Generator().manual_seed(1))
    assert all(torch.equal(again_x[k], new_x[k]) and torch.equal(again_m[k], new_m[k]) for k in xs)


def test_recombination_ratio_sets_the_share_of_rows_rebuilt() -> None:
    xs, masks, y = _batch()
    none_x, none_m = recombine(xs, masks, y, 0.0, torch.Generator().manual_seed(0))
    assert all(torch.equal(none_x[k], xs[k]) and torch.equal(none_m[k], masks[k]) for k in xs)
    half_x, _ = recombine(xs, masks, y, 0.5, torch.Generator().manual_seed(0))
    rebuilt = torch.stack([half_x[k][:, 0].long() != torch.arange(len(y)) for k in xs]).any(0)
    assert 0 < int(rebuilt.sum()) <= 15


def _small_problem(n: int = 24, n_inputs: int = 2) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    data = {}
    for i in range(n_inputs):
        x = (rng.standard_normal((n, 4)) + y[:, None]).astype(np.float32)
        m = rng.random(n) > 0.2
        data[f"x{i}"] = (x * m[:, None], m)
    return data, y


def _small_net(data: dict) -> FusionNet:
    return _train.seeded(
        0,
        lambda: FusionNet(
            {k: FeatureMLP(4, dim=8) for k in data},
            3,
            head=LowRankHead(dict.fromkeys(data, 8), 3, width=8),
            aux_heads=True,
        ),
    )


def test_generation_runs_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_recombine, real_mix = _train.recombine, _train.mix_embeddings

    def spy_recombine(*args, **kwargs):
        calls.append("recombine")
        return real_recombine(*args, **kwargs)

    def spy_mix(*args, **kwargs):
        calls.append("mix")
        return real_mix(*args, **kwargs)

    monkeypatch.setattr(_train, "recombine", spy_recombine)
    monkeypatch.setattr(_train, "mix_embeddings", spy_mix)
    data, y = _small_problem()
    plain = TrainConfig(epochs=2, batch_size=8)
    train_network(_small_net(data), data, y, plain)
    assert calls == []  # ratio 0 and alpha 0: the training loop of before
    train_network(_small_net(data), data, y, TrainConfig(epochs=2, batch_size=8, recombine_ratio=0.5))
    assert calls == ["recombine"] * 6
    calls.clear()
    one = {"x0": data["x0"]}
    train_network(
        _small_net(one), one, y, TrainConfig(epochs=2, batch_size=8, recombine_ratio=0.5, mixup_alpha=0.4)
    )
    assert calls == ["mix"] * 6  # nothing to recombine with one input; mixup still applies
    a = train_network(_small_net(data), data, y, TrainConfig(epochs=2, batch_size=8, mixup_alpha=0.4, seed=3))
    b = train_network(_small_net(data), data, y, TrainConfig(epochs=2, batch_size=8, mixup_alpha=0.4, seed=3))
    assert all(
        torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_small_tables_get_min_steps_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    """24 rows in batches of 8 for 2 epochs make 6 updates; min_steps=10 runs 10: more passes, then stops."""
    steps: list[int] = []
    real = torch.optim.AdamW.step

    def counting_step(self, *args, **kwargs):
        steps.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", counting_step)
    data, y = _small_problem()
    assert len(y) == 24
    train_network(_small_net(data), data, y, TrainConfig(epochs=2, batch_size=8))
    assert len(steps) == 6
    steps.clear()
    train_network(_small_net(data), data, y, TrainConfig(epochs=2, batch_size=8, min_steps=10))
    assert len(steps) == 10
    steps.clear()
    train_network(_small_net(data), data, y, TrainConfig(epochs=5, batch_size=8, min_steps=10))
    assert len(steps) == 15  # already more than min_steps: unchanged


def test_mix_embeddings_interpolates_present_inputs_and_ors_masks() -> None:
    e = {"a": _rand(4, 3, seed=1)}
    m = {"a": torch.tensor([True, True, False, False])}
    perm = torch.tensor([1, 2, 3, 0])
    out_e, out_m = mix_embeddings(e, m, 0.3, perm)
    a = e["a"]
    torch.testing.assert_close(out_e["a"][0], 0.3 * a[0] + 0.7 * a[1])  # both present
    torch.testing.assert_close(out_e["a"][1], a[1])  # partner missing: its own embedding, unscaled
    torch.testing.assert_close(out_e["a"][3], a[0])  # itself missing: the partner's embedding
    assert out_m["a"].tolist() == [True, True, False, True]
    same_e, same_m = mix_embeddings(e, m, 1.0, perm)
    assert torch.equal(same_e["a"], a) and torch.equal(same_m["a"], m["a"])


def test_mixup_loss_reduces_to_the_plain_loss() -> None:
    data, y = _small_problem()
    net = _small_net(data).eval()  # no dropout: the two losses see the same network
    xs = {k: torch.from_numpy(x) for k, (x, _) in data.items()}
    ms = {k: torch.from_numpy(m) for k, (_, m) in data.items()}
    yt = torch.from_numpy(y)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    plain = net.training_loss(xs, ms, ms, yt, loss_fn)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(net.training_loss(xs, ms, ms, yt, loss_fn, mixup=(1.0, perm)), plain)
    assert not torch.allclose(net.training_loss(xs, ms, ms, yt, loss_fn, mixup=(0.5, perm)), plain)


@pytest.mark.parametrize("name", JOINT)
def test_generated_rows_and_modality_dropout_still_learn(fitted, table, name: str) -> None:
    clf = mf.MultimodalClassifier(
        fusion=name, seed=0, recombine_ratio=0.5, mixup_alpha=0.4, modality_dropout=0.3, **FAST
    ).fit(table)
    assert clf.score(table) > 0.8
    assert not np.array_equal(clf.predict_proba(table), fitted[name].predict_proba(table))


def test_mixup_alone_still_learns(table) -> None:
    clf = mf.MultimodalClassifier(fusion="lowrank", seed=0, mixup_alpha=1.0, **FAST).fit(table)
    assert clf.score(table) > 0.8
    assert np.isfinite(clf.predict_proba(pd.DataFrame({"text": ["apple banana"]}))).all()
