"""Encoder registry, networks and per-input preprocessors (fitted on training rows only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import modalfuse as mf
from modalfuse.encoders import (
    AudioCNN,
    EncoderSpec,
    FeatureMLP,
    ImageCNN,
    Preprocessor,
    TextBag,
    build_network,
    default_encoder,
    make_preprocessor,
)

TRAINABLE = {"image-cnn": "image", "audio-cnn": "audio", "text-bag": "text", "tabular-mlp": "tabular"}
CLASSICAL = {"pixels": "image", "hog": "image", "mfcc": "audio", "tfidf": "text", "tabular-scaled": "tabular"}


# ----------------------------------------------------------------------------------------------- registry
def test_registry_lists_the_builtin_encoders() -> None:
    names = mf.list_encoders()
    assert names == sorted(names)
    assert set(TRAINABLE) | set(CLASSICAL) <= set(names)
    for name, modality in {**TRAINABLE, **CLASSICAL}.items():
        spec = mf.get_encoder(name)
        assert spec.name == name
        assert spec.modality == modality
        assert spec.trainable is (name in TRAINABLE)
    # the pretrained ones are registered whether their extra is installed or not (listed as not installed)
    assert mf.list_encoders("audio") == ["audio-cnn", "mfcc", "voicefilter-dvector", "whisper-tiny-en"]
    assert mf.list_encoders("image") == ["efficientnet-lite0", "hog", "image-cnn", "pixels"]
    assert mf.list_encoders("text") == ["hf-text", "minilm", "minilm-ft", "text-bag", "tfidf"]


def test_default_encoders_are_the_trainable_ones() -> None:
    for name, modality in TRAINABLE.items():
        assert default_encoder(modality).name == name


def test_unknown_encoder_error_lists_the_registered_ones() -> None:
    with pytest.raises(KeyError, match=r"known:.*audio-cnn"):
        mf.get_encoder("no-such-encoder")


def test_register_encoder_refuses_a_duplicate_name() -> None:
    with pytest.raises(ValueError, match="already registered"):
        mf.register_encoder(EncoderSpec("pixels", "image", "pixels", "linear", None, "dup"))


# ----------------------------------------------------------------------------------------------- networks
def test_networks_map_a_batch_to_embeddings_of_their_dim() -> None:
    torch.manual_seed(0)
    img = ImageCNN(3, dim=32, width=4)
    assert img(torch.randn(5, 3, 16, 16)).shape == (5, 32)
    aud = AudioCNN(1, dim=24, width=4)
    assert aud(torch.randn(5, 1, 40, 21)).shape == (5, 24)
    txt = TextBag(50, dim=16, embed=8)
    assert txt(torch.randint(0, 50, (5, 7))).shape == (5, 16)
    mlp = FeatureMLP(10, dim=12)
    assert mlp(torch.randn(5, 10)).shape == (5, 12) and mlp.dim == 12
    lin = build_network("linear", in_shape=(10,), vocab_size=None)
    x = torch.randn(5, 10)
    assert torch.equal(lin(x), x) and lin.dim == 10  # classical features pass through unchanged
    with pytest.raises(ValueError, match="unknown network"):
        build_network("transformer", in_shape=(3,), vocab_size=None)


def test_text_bag_handles_an_all_padding_row() -> None:
    net = TextBag(20, dim=8, embed=4).eval()
    ids = torch.tensor([[0, 0, 0], [3, 4, 0]])
    out = net(ids)
    assert torch.isfinite(out).all()
    # the empty row depends on no embedding: it equals the projection of zeros
    expected = net.proj(torch.zeros(1, 8))
    assert torch.allclose(out[0], expected[0])


# ------------------------------------------------------------------------------------------ preprocessors
@pytest.mark.parametrize("kind", ["image", "pixels", "hog", "audio", "mfcc", "text", "tfidf", "tabular"])
def test_preprocessor_masks_missing_rows_and_survives_json(table, kind: str) -> None:
    import json

    name = {
        "image": "image",
        "pixels": "image",
        "hog": "image",
        "audio": "audio",
        "mfcc": "audio",
        "text": "text",
        "tfidf": "text",
        "tabular": "tabular",
    }[kind]
    cols = table.inputs[name][1]
    prep = make_preprocessor(kind, name, cols).fit(table)
    X, mask = prep.transform(table)
    assert X.shape[0] == len(table) and mask.dtype == bool
    np.testing.assert_array_equal(mask, table.mask(name))
    if name != "tabular":  # the tabular input counts as present where any of its columns is
        assert not mask.all()  # the fixture has missing cells in every other input
    if kind != "text":
        assert np.all(X[~mask] == 0)  # a missing row is all zeros
        assert X.dtype == np.float32
    else:
        assert np.all(X[~mask] == 0) and X.dtype == np.int64  # padding only
    assert np.isfinite(X).all()
    again = Preprocessor.from_dict(json.loads(json.dumps(prep.to_dict())))
    X2, mask2 = again.transform(table)
    np.testing.assert_array_equal(mask2, mask)
    np.testing.assert_allclose(X2, X, rtol=0, atol=1e-6)


def _frame_with_labels(table) -> pd.DataFrame:
    frame = table.frame.copy()
    frame["y"] = table.y
    return frame


def test_text_vocabulary_comes_from_training_rows_only(table) -> None:
    frame = _frame_with_labels(table)
    test_rows = [60, 61, 62, 63]
    frame.loc[test_rows, "text"] = "zebra zebra giraffe " + frame.loc[test_rows, "text"].fillna("")
    full = mf.read_table(frame, label="y")
    train = full.take(np.arange(60))
    prep = make_preprocessor("text", "text", ["text"]).fit(train)
    tokens = prep.state["vocabulary"]["tokens"]
    assert "apple" in tokens and "zebra" not in tokens and "giraffe" not in tokens
    # control: fitted on every row, the test-only words are learned
    assert "zebra" in make_preprocessor("text", "text", ["text"]).fit(full).state["vocabulary"]["tokens"]
    tfidf = make_preprocessor("tfidf", "text", ["text"]).fit(train)
    assert "zebra" not in tfidf.state["vocabulary"]
    assert "zebra" in make_preprocessor("tfidf", "text", ["text"]).fit(full).state["vocabulary"]


def test_tabular_statistics_come_from_training_rows_only(table) -> None:
    train = table.take(np.arange(30))
    prep = make_preprocessor("tabular", "tabular", table.inputs["tabular"][1]).fit(train)
    state = prep.state["preprocessor"]
    nums = train.frame["num"].astype(float).to_numpy()
    median = np.nanmedian(nums)
    filled = np.where(np.isnan(nums), median, nums)
    assert state["medians"]["num"] == pytest.approx(median)
    assert state["means"]["num"] == pytest.approx(filled.mean())
    assert state["stds"]["num"] == pytest.approx(filled.std())
    all_nums = table.frame["num"].astype(float).to_numpy()
    assert state["means"]["num"] != pytest.approx(np.nanmean(all_nums), abs=1e-3)


def _write_media(folder: Path, n_train: int, n_test: int) -> pd.DataFrame:
    """Train rows: dark images, 0.25 s clips at 8 kHz; test rows: bright images, 1 s clips at 16 kHz."""
    import soundfile as sf
    from PIL import Image

    rng = np.random.default_rng(1)
    rows = []
    for i in range(n_train + n_test):
        test = i >= n_train
        label = "ab"[i % 2]
        pixels = rng.uniform(150, 255, (12, 12)) if test else rng.uniform(0, 60, (12, 12))
        Image.fromarray(pixels.astype(np.uint8), mode="L").save(folder / f"i{i}.png")
        sr, seconds = (16000, 1.0) if test else (8000, 0.25)
        t = np.arange(int(sr * seconds)) / sr
        sf.write(folder / f"a{i}.wav", (0.5 * np.sin(2 * np.pi * (400 if label == "a" else 1200) * t)), sr)
        rows.append({"image": str(folder / f"i{i}.png"), "audio": str(folder / f"a{i}.wav"), "y": label})
    return pd.DataFrame(rows)


def test_image_and_audio_settings_come_from_training_rows_only(tmp_path: Path) -> None:
    from PIL import Image

    frame = _write_media(tmp_path, n_train=8, n_test=12)
    full = mf.read_table(frame, label="y")
    train = full.take(np.arange(8))

    image = make_preprocessor("image", "image", ["image"]).fit(train)
    train_pixels = np.stack([np.asarray(Image.open(p), dtype=np.float64) / 255 for p in frame["image"][:8]])
    assert image.state["size"] == [12, 12] and image.state["channels"] == 1
    assert image.state["mean"][0] == pytest.approx(train_pixels.mean(), abs=1e-4)
    assert image.state["std"][0] == pytest.approx(train_pixels.std(), abs=1e-3)
    assert make_preprocessor("image", "image", ["image"]).fit(full).state["mean"][0] > 0.4  # control

    audio = make_preprocessor("audio", "audio", ["audio"]).fit(train)
    assert audio.state["sample_rate"] == 8000
    assert audio.state["n_samples"] <= 0.25 * 8000
    control = make_preprocessor("audio", "audio", ["audio"]).fit(full)
    assert control.state["sample_rate"] == 16000 and control.state["n_samples"] > 0.5 * 16000
    # test rows at another rate are resampled to the training rate and cut to the training length
    X, mask = audio.transform(full)
    assert mask.all() and X.shape[0] == 20
    X_train, _ = audio.transform(train)
    assert X.shape[1:] == X_train.shape[1:]


def test_classical_encoders_through_the_estimator(table) -> None:
    clf = mf.MultimodalClassifier(
        fusion="late:mean",
        epochs=10,
        min_steps=20,
        batch_size=16,
        inner_folds=2,
        learning_rate=0.03,
        n_threads=1,
        encoders={"image": "pixels", "audio": "mfcc", "text": "tfidf", "tabular": "tabular-scaled"},
    ).fit(table)
    assert {n: i.encoder for n, i in clf.inputs_.items()} == {
        "image": "pixels",
        "audio": "mfcc",
        "text": "tfidf",
        "tabular": "tabular-scaled",
    }
    assert clf.preprocessors_["audio"].name == "mfcc"
    assert clf.score(table) > 0.9


def test_encoder_for_another_modality_is_refused(table) -> None:
    clf = mf.MultimodalClassifier(
        fusion="early", epochs=1, min_steps=20, encoders={"image": "mfcc"}, n_threads=1
    )
    with pytest.raises(mf.OptionError, match="encoder 'mfcc' is for audio"):
        clf.fit(table)
