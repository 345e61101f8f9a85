"""Per-row quality scores of every modality, their table, their scaling, and ``modalfuse inspect --quality``."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import modalfuse as mf
from modalfuse._quality import QualityScaler, input_quality, summarize_quality
from modalfuse.cli import app
from modalfuse.modalities.audio import audio_quality_scores
from modalfuse.modalities.image import image_quality_scores
from modalfuse.modalities.text import Vocabulary, text_quality_scores

SR = 8000


def _bursts(rng: np.random.Generator, seconds: float = 2.0) -> np.ndarray:
    """Speech-like audio: 0.25 s tone bursts separated by 0.25 s pauses."""
    t = np.arange(int(seconds * SR)) / SR
    on = (t % 0.5) < 0.25
    return (0.5 * np.sin(2 * np.pi * 440 * t) * on).astype(np.float32) + 1e-4 * rng.standard_normal(len(t))


def _with_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(len(wave))
    gain = np.sqrt(np.mean(wave**2) / (np.mean(noise**2) * 10 ** (snr_db / 10)))
    return wave + gain * noise


# ------------------------------------------------------------------------------------------------- audio
def test_estimated_snr_falls_with_the_noise_added() -> None:
    rng = np.random.default_rng(0)
    clean = _bursts(rng)
    estimates = [
        audio_quality_scores(_with_noise(clean, snr, rng), SR)["snr_db"] for snr in (30, 20, 10, 0, -5)
    ]
    assert audio_quality_scores(clean, SR)["snr_db"] > estimates[0]
    assert all(a > b + 3 for a, b in itertools.pairwise(estimates))
    # noise filling the pauses of speech active half the time reads about 3 dB above the clip's SNR
    assert estimates[2] == pytest.approx(10 + 3, abs=2.5)


def test_clipping_and_silence_shares() -> None:
    rng = np.random.default_rng(1)
    wave = _bursts(rng)
    loud = np.clip(wave * 10, -1, 1)
    scores = audio_quality_scores(loud, SR)
    assert scores["clipping"] > 0.3 and audio_quality_scores(wave, SR)["clipping"] == 0
    padded = np.concatenate([np.zeros(3 * SR, np.float32), wave])  # 3 s of silence before 2 s of bursts
    assert audio_quality_scores(padded, SR)["silence"] == pytest.approx(0.8, abs=0.05)
    assert audio_quality_scores(np.zeros(100), SR) == {"snr_db": -20.0, "clipping": 0.0, "silence": 1.0}


# ------------------------------------------------------------------------------------------------- image
def test_image_scores() -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (32, 32, 3))
    img[8:24, 8:24] = 1.0
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(img, sigma=(2, 2, 0))
    sharp, soft = image_quality_scores(img), image_quality_scores(blurred)
    assert soft["sharpness"] < sharp["sharpness"] - 1
    grey = img.mean(axis=2)
    assert sharp["contrast"] == pytest.approx(grey.std()) and sharp["exposure"] == pytest.approx(grey.mean())
    chw = np.moveaxis(img, 2, 0)
    assert image_quality_scores(chw) == pytest.approx(sharp)  # channels first or last
    assert image_quality_scores(np.full((8, 8), 0.3)) == {"sharpness": -6.0, "contrast": 0.0, "exposure": 0.3}


# -------------------------------------------------------------------------------------------------- text
def test_text_scores_count_tokens_and_unknown_ones() -> None:
    vocab = Vocabulary().fit(["the cat sat", "the dog ran"])
    s = text_quality_scores("the cat flew away", vocab)
    assert s["unknown"] == pytest.approx(0.5) and s["length"] == pytest.approx(np.log10(5))
    assert text_quality_scores("", vocab) == {"length": 0.0, "unknown": 0.0}
    assert text_quality_scores("anything at all")["unknown"] == 0.0  # no vocabulary: nothing is unknown


# ----------------------------------------------------------------------------------------------- a table
def test_quality_scores_of_a_table(table) -> None:
    frame = mf.quality_scores(table)
    assert list(frame.columns) == [
        "image.sharpness",
        "image.contrast",
        "image.exposure",
        "audio.snr_db",
        "audio.clipping",
        "audio.silence",
        "text.length",
        "text.unknown",
        "tabular.missing",
    ]
    assert list(frame.index) == list(table.row_ids)
    for name in ("image", "audio", "text"):
        missing = ~table.mask(name)
        assert frame.filter(like=f"{name}.")[missing].isna().all().all()
        assert frame.filter(like=f"{name}.")[~missing].notna().all().all()
    # rows 4 and 11 lack num but have colour: half the tabular columns (num, colour, speaker) is 1/3
    assert frame["tabular.missing"].iloc[4] == pytest.approx(1 / 3)
    assert frame["tabular.missing"].iloc[0] == 0
    assert (frame["text.length"].dropna() == np.log10(7)).all()  # six words each


def test_a_fitted_text_preprocessor_counts_words_it_never_saw(table) -> None:
    clf = mf.MultimodalClassifier(fusion="unimodal:text", epochs=1, min_steps=5, inner_folds=1, n_threads=1)
    clf.fit(table.take(np.arange(60)))
    texts = table.frame["text"].tolist()
    texts[0] = "zebra quokka apple banana"
    new = mf.read_table(pd.DataFrame({"text": texts, "y": table.y}), label="y", modalities={"text": "text"})
    scores = clf.preprocessors_["text"].quality(new)
    assert scores[0, 1] == pytest.approx(0.5)
    assert np.isnan(input_quality(new, "text")[3]).all()  # row 3 has no text


def test_scaler_standardises_on_training_rows_and_zeroes_missing() -> None:
    q = np.array([[1.0, 5.0], [3.0, 5.0], [np.nan, np.nan]])
    scaler = QualityScaler().fit({"a": q})
    z = scaler.transform("a", q)
    np.testing.assert_allclose(z[:2, 0], [-1, 1])
    np.testing.assert_allclose(z[:, 1], 0)  # a constant score: std counts as 1, all at the mean
    np.testing.assert_allclose(z[2], 0)  # a missing row sits at the training mean
    assert (
        QualityScaler(json.loads(json.dumps(scaler.state))).transform("a", np.array([[100.0, 5]]))[0, 0] == 5
    )


def test_summary_percentiles() -> None:
    frame = pd.DataFrame({"x.s": [0.0, 1.0, 2.0, 3.0, np.nan]})
    s = summarize_quality(frame)["x"]["s"]
    assert s["rows"] == 4 and s["mean"] == 1.5 and s["median"] == 1.5 and s["max"] == 3.0


def test_inspect_quality_prints_and_writes_every_rows_scores(csv_path: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out_csv = tmp_path / "q.csv"
    result = runner.invoke(
        app, ["inspect", str(csv_path), "--label", "y", "--quality", "--json", "--quality-csv", str(out_csv)]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["quality"]["audio"]["snr_db"]["rows"] == 70
    assert set(doc["quality"]) == {"image", "audio", "text", "tabular"}
    rows = pd.read_csv(out_csv)
    assert len(rows) == 72 and "audio.snr_db" in rows and rows["row"].tolist() == list(range(72))
    result = runner.invoke(app, ["inspect", str(csv_path), "--label", "y", "--quality"])
    assert result.exit_code == 0 and "snr_db" in result.stdout and "sharpness" in result.stdout
    result = runner.invoke(app, ["inspect", str(csv_path), "--label", "y", "--quality-csv", str(out_csv)])
    assert result.exit_code == 2 and "error: --quality-csv needs --quality" in result.output
