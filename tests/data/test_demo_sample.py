"""The AV-Digits (hard) sample shipped for the demo: what it holds, that it needs nothing outside the package,
and that it is exactly what ``build_demo_sample`` makes from the full data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

import modalfuse as mf
from modalfuse.data.av_digits import DEMO_SAMPLE_DIR, build_av_digits, build_demo_sample

SAMPLE = Path(DEMO_SAMPLE_DIR)
SPEAKERS = {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}


def _media_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_the_sample_is_small_and_covers_every_speaker_and_digit() -> None:
    frame = pd.read_csv(SAMPLE / "data.csv")
    assert list(frame.columns) == ["audio", "image", "digit", "speaker"]
    assert len(frame) == 300
    assert Counter(frame["speaker"]) == dict.fromkeys(SPEAKERS, 50)
    assert Counter(frame["digit"]) == dict.fromkeys(range(10), 30)
    assert Counter(zip(frame["speaker"], frame["digit"], strict=True)) == {
        (s, d): 5 for s in SPEAKERS for d in range(10)
    }
    files = _media_files(SAMPLE)
    assert files == sorted(["README.md", "data.csv", *frame["audio"], *frame["image"]])
    assert sum((SAMPLE / f).stat().st_size for f in files) < 3_000_000
    readme = (SAMPLE / "README.md").read_text(encoding="utf-8")
    for needed in ("CC BY-SA 4.0", "CC BY-SA 3.0", "Jakobovski", "LeCun", "Cortes", "Burges"):
        assert needed in readme


def test_the_sample_media_decode_as_declared() -> None:
    frame = pd.read_csv(SAMPLE / "data.csv")
    for audio in frame["audio"][::37]:
        info = sf.info(SAMPLE / audio)
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_16", 8000, 1)
    for image in frame["image"][::37]:
        with Image.open(SAMPLE / image) as img:
            assert (img.format, img.mode, img.size) == ("PNG", "L", (28, 28))


def test_loads_as_a_builtin_dataset_without_shared_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ../shared from here
    monkeypatch.delenv("MODALFUSE_DATA", raising=False)
    monkeypatch.setenv("MODALFUSE_CACHE", str(tmp_path / "cache"))
    assert "av-digits-sample" in mf.list_datasets()
    table = mf.load_dataset("av-digits-sample")
    assert len(table) == 300 and table.label == "digit" and table.group_column == "speaker"
    assert table.schema.columns == {"audio": "audio", "image": "image"}
    assert not table.problems  # every file found and decoded
    assert set(table.groups) == SPEAKERS
    assert not (tmp_path / "cache").exists()


def test_an_unknown_dataset_name_suggests_the_closest() -> None:
    with pytest.raises(mf.UnknownNameError, match="did you mean 'av-digits-sample'"):
        mf.load_dataset("av-digits-smple")


@pytest.fixture(scope="module")
def pca_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def rebuilt(shared_datasets: Path, pca_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_sample(shared_datasets, tmp_path_factory.mktemp("sample"), cache_dir=pca_cache)


@pytest.mark.slow  # builds AV-Digits (hard) from the real data: PCA of 60,000 images
def test_a_rebuild_from_the_full_data_equals_the_shipped_sample(rebuilt: Path) -> None:
    assert _media_files(rebuilt) == _media_files(SAMPLE)
    for name in ("data.csv", "README.md"):
        assert (rebuilt / name).read_bytes() == (SAMPLE / name).read_bytes(), name
    frame = pd.read_csv(SAMPLE / "data.csv")
    for audio, image in zip(frame["audio"], frame["image"], strict=True):
        np.testing.assert_array_equal(
            sf.read(rebuilt / audio, dtype="int16")[0], sf.read(SAMPLE / audio, dtype="int16")[0]
        )
        with Image.open(rebuilt / image) as a, Image.open(SAMPLE / image) as b:
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow  # builds AV-Digits (hard) from the real data: PCA of 60,000 images
def test_the_sample_holds_the_benchmark_rows_unchanged(shared_datasets: Path, pca_cache: Path) -> None:
    """Audio: the FSDD samples exactly; image: the full benchmark's hard image of that row, to 8 bits."""
    full = build_av_digits(shared_datasets, variant="hard", cache_dir=pca_cache)
    row_of = {Path(p).stem: i for i, p in enumerate(full.audio_paths)}
    frame = pd.read_csv(SAMPLE / "data.csv")
    for audio, image, digit, speaker in frame.itertuples(index=False):
        stem = Path(audio).stem
        i = row_of[stem]
        assert (full.labels[i], full.speakers[i]) == (digit, speaker)
        assert int(stem.split("_")[2]) < 5
        wav = shared_datasets / "fsdd" / "recordings" / f"{stem}.wav"
        np.testing.assert_array_equal(
            sf.read(SAMPLE / audio, dtype="int16")[0], sf.read(wav, dtype="int16")[0]
        )
        assert image == f"image/mnist_test_{full.image_indices[i]:05d}.png"
        with Image.open(SAMPLE / image) as img:
            pixels = np.asarray(img).astype(np.float64) / 255
        assert np.abs(pixels - full.images[i]).max() <= 0.5 / 255 + 1e-6


@pytest.mark.slow
def test_a_wheel_carries_the_sample(tmp_path: Path) -> None:
    """A non-editable install has the sample: build the wheel (from a copy of the sources, so nothing is
    written into the repository) and look inside."""
    root = Path(__file__).resolve().parents[2]
    copy = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(root / "src", copy / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, copy / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(copy),
        ],
        check=True,
        env={**os.environ, "PIP_NO_INDEX": "1"},
    )
    (wheel,) = tmp_path.glob("modalfuse-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = {n for n in zf.namelist() if "av_digits_sample" in n}
    shipped = {f"modalfuse/data/av_digits_sample/{f}" for f in _media_files(SAMPLE)}
    assert names == shipped
