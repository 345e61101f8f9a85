"""Fine-tuning the last block of MiniLM (``minilm-ft``): the frozen part in the embedding cache under keys
of its own, the tail network equal to the frozen encoder before training, trained on the training rows of
each fit only, saved as safetensors and loaded back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import modalfuse as mf
from modalfuse.encoders import build_network, make_preprocessor
from modalfuse.fusion._train import TrainConfig, _optimiser

pytest.importorskip("transformers", reason="the 'pretrained' extra is not installed")

TEXTS = ["a lovely soft dress that fits", "the fabric was cheap and the fit poor", "ok"]


def padded(states: dict[int, np.ndarray], length: int) -> np.ndarray:
    X = np.zeros((len(states), length, 385), np.float32)
    for i, v in states.items():
        X[i, : len(v), :384] = v
        X[i, : len(v), 384] = 1.0
    return X


@pytest.mark.parametrize("layers", [1, 2])
def test_the_tail_at_the_shipped_weights_gives_the_frozen_minilm_embedding(layers: int) -> None:
    ft = make_preprocessor("minilm-ft", "t", ["t"], cache=False, max_length=24, tail_layers=layers)
    states = ft.embed_values(TEXTS)
    assert [states[i].shape for i in range(3)] == [(8, 384), (10, 384), (3, 384)]  # [CLS] words [SEP]
    net = build_network("minilm-tail", in_shape=(24, 385), vocab_size=None, layers=layers).eval()
    with torch.no_grad():
        tuned = net(torch.from_numpy(padded(states, 24))).numpy()
    frozen = make_preprocessor("minilm", "t", ["t"], cache=False).embed_values(TEXTS)
    np.testing.assert_allclose(tuned, np.stack([frozen[i] for i in range(3)]), atol=1e-5)
    assert len(net.blocks) == layers and net.dim == 384


def test_token_states_have_cache_keys_of_their_own() -> None:
    from modalfuse._embedcache import embedding_cache

    frozen = make_preprocessor("minilm", "t", ["t"]).embed_values(TEXTS)  # sentence vectors cached first
    ft = make_preprocessor("minilm-ft", "t", ["t"], max_length=24)
    assert ft.encoder_id().startswith("minilm-ft@") and ft.settings()["tail_layers"] == 1
    states = ft.embed_values(TEXTS)
    assert states[0].shape == (8, 384)  # not the (384,) sentence vector stored for the same text
    cache = embedding_cache()
    hits = cache.hits
    again = make_preprocessor("minilm-ft", "t", ["t"], max_length=24, lr_scale=0.5)  # not part of the key
    again._compute = None  # every state must come from the cache
    for i, v in again.embed_values(TEXTS).items():
        np.testing.assert_array_equal(v, states[i])
    assert cache.hits - hits == 3
    two = make_preprocessor("minilm-ft", "t", ["t"], max_length=24, tail_layers=2).embed_values(TEXTS)
    assert not np.allclose(two[0], states[0])  # another layer's states: another key
    assert make_preprocessor("minilm", "t", ["t"]).embed_values(TEXTS)[0].shape == frozen[0].shape == (384,)


def test_fine_tuned_blocks_get_the_scaled_learning_rate() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2))
    net[0].lr_scale = 0.1
    opt, _ = _optimiser(net, TrainConfig(learning_rate=1e-2), total_steps=10)
    assert [g["max_lr"] for g in opt.param_groups] == [pytest.approx(1e-3), pytest.approx(1e-2)]
    plain, _ = _optimiser(torch.nn.Linear(3, 2), TrainConfig(learning_rate=1e-2), total_steps=10)
    assert len(plain.param_groups) == 1


def test_a_classifier_fine_tunes_the_last_block_in_its_fit_saves_without_pickle_and_loads(
    csv_path: Path, tmp_path: Path
) -> None:
    from conftest import assert_probabilities

    table = mf.read_table(csv_path, label="y", modalities={"image": "ignore", "audio": "ignore"})
    train, test = table.take(np.arange(0, 60)), table.take(np.arange(60, 72))
    clf = mf.MultimodalClassifier(
        fusion="early",
        fusion_options={"end_to_end": True},  # one network: the fine-tuned block and the head together
        encoders={"text": "minilm-ft", "tabular": "tabular-scaled"},
        preprocess={"text": {"max_length": 16, "lr_scale": 0.1}},
        epochs=2,
        min_steps=0,
        n_threads=1,
        seed=0,
    ).fit(train)
    proba = clf.predict_proba(test)
    assert_probabilities(proba, 12, 3)
    info = clf.fusion_.inputs["text"]
    assert info.in_shape == (16, 385) and info.network_options == {"layers": 1, "lr_scale": 0.1}
    block = clf.fusion_.net_.encoders["text"].blocks[0]
    shipped = build_network("minilm-tail", in_shape=(16, 385), vocab_size=None).blocks[0]
    moved = [
        float((p.detach() - q.detach()).abs().max())
        for p, q in zip(block.parameters(), shipped.parameters(), strict=True)
    ]
    assert max(moved) > 1e-4  # the block was trained ...
    assert min(float(p.detach().abs().max()) for p in shipped.parameters()) > 0  # ... from the weights
    clf.save(tmp_path / "model")
    files = [p.name for p in (tmp_path / "model").rglob("*") if p.is_file()]
    assert any(f.endswith(".safetensors") for f in files)
    assert not any(f.endswith((".pkl", ".pickle", ".pt", ".bin")) for f in files)
    again = mf.MultimodalClassifier.load(tmp_path / "model")
    np.testing.assert_allclose(again.predict_proba(test), proba, atol=1e-5)


def test_streaming_refuses_the_fine_tuned_encoder(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text\nhello\n")
    with pytest.raises(mf.OptionError, match="learns from the rows"):
        mf.encode_table(path, encoders={"text": "minilm-ft"}, out=tmp_path / "e.parquet")
