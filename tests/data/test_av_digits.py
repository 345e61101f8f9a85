"""Tests of the AV-Digits builder (FSDD audio + MNIST images): pairing, the hard variant, downloads."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import RECORDINGS, wav_bytes
from modalfuse._errors import DecodeError
from modalfuse.data import av_digits
from modalfuse.data.av_digits import (
    AV_DIGITS_GROUPS,
    AV_DIGITS_LABEL,
    ChecksumMismatchError,
    DatasetError,
    DatasetNotFoundError,
    build_av_digits,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
HARD_K = 4  # measured: cumulative explained variance 0.2297 at k=3, 0.2836 at k=4


# --------------------------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def shared() -> Path:
    if not (SHARED / "fsdd" / "recordings").is_dir() or not (SHARED / "mnist" / "mnist.npz").is_file():
        pytest.skip(f"AV-Digits data not available: {SHARED} (fsdd/recordings, mnist/mnist.npz) is absent")
    return SHARED


@pytest.fixture(scope="module")
def mnist(shared: Path) -> dict[str, np.ndarray]:
    with np.load(shared / "mnist" / "mnist.npz") as data:
        return {k: np.asarray(data[k]) for k in data.files}


@pytest.fixture(scope="module")
def clean(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> av_digits.AVDigits:
    return build_av_digits(shared, variant="clean", cache_dir=tmp_path_factory.mktemp("cache_clean"))


@pytest.fixture(scope="module")
def hard_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache_hard")


@pytest.fixture(scope="module")
def hard(shared: Path, hard_cache: Path) -> av_digits.AVDigits:
    return build_av_digits(shared, variant="hard", cache_dir=hard_cache)


def test_rows_labels_and_speakers(clean: av_digits.AVDigits) -> None:
    assert len(clean) == 3000
    assert len(clean.audio_paths) == 3000
    assert clean.images.shape == (3000, 28, 28)
    assert clean.images.dtype == np.float32
    assert clean.labels.dtype == np.int64
    assert clean.image_indices.dtype == np.int64
    assert clean.speakers.dtype == object
    assert Counter(clean.labels.tolist()) == dict.fromkeys(range(10), 300)
    speakers = Counter(clean.speakers.tolist())
    assert len(speakers) == 6
    assert set(speakers.values()) == {500}
    assert Path(clean.audio_paths[0]).name == "0_george_0.wav"
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in clean.audio_paths[:20])
    names = [Path(p).name for p in clean.audio_paths]
    assert names == sorted(names)
    assert clean.variant == "clean"
    assert clean.pca_components is None
    assert len(np.unique(clean.image_indices)) == 3000


def test_pairing_rule(clean: av_digits.AVDigits, shared: Path, mnist: dict[str, np.ndarray]) -> None:
    names = sorted(p.name for p in (shared / "fsdd" / "recordings").glob("*.wav"))
    by_name = dict(zip([Path(p).name for p in clean.audio_paths], clean.image_indices.tolist(), strict=True))
    for digit in (0, 3, 9):
        recordings = [n for n in names if n.split("_")[0] == str(digit)]
        images = np.flatnonzero(mnist["y_test"] == digit)
        assert len(recordings) == 300
        for i in (0, 1, 57, 299):
            assert by_name[recordings[i]] == images[i]
            row = [Path(p).name for p in clean.audio_paths].index(recordings[i])
            assert clean.labels[row] == digit
            assert clean.speakers[row] == recordings[i].split("_")[1]
    assert np.array_equal(mnist["y_test"][clean.image_indices], clean.labels)


def test_clean_images_are_scaled_test_images(clean: av_digits.AVDigits, mnist: dict[str, np.ndarray]) -> None:
    expected = mnist["x_test"][clean.image_indices].astype(np.float32) / 255
    np.testing.assert_array_equal(clean.images, expected)
    assert clean.images.min() >= 0.0
    assert clean.images.max() <= 1.0


def test_to_frame(clean: av_digits.AVDigits) -> None:
    frame = clean.to_frame()
    assert list(frame.columns) == ["audio", "image", AV_DIGITS_LABEL, AV_DIGITS_GROUPS]
    assert AV_DIGITS_LABEL == "digit"
    assert AV_DIGITS_GROUPS == "speaker"
    assert len(frame) == 3000
    assert frame["image"].dtype == object
    assert frame["image"].iloc[5].shape == (28, 28)
    assert frame["image"].iloc[5].dtype == np.float32
    np.testing.assert_array_equal(frame["image"].iloc[5], clean.images[5])
    assert frame["digit"].dtype == np.int64
    assert frame["audio"].iloc[0] == clean.audio_paths[0]
    assert frame["speaker"].iloc[0] == "george"


@pytest.mark.slow  # the exact PCA of the 60,000 MNIST training images
def test_hard_variant(
    hard: av_digits.AVDigits, clean: av_digits.AVDigits, mnist: dict[str, np.ndarray]
) -> None:
    # Independent reference: exact PCA of the training images scaled to [0, 1].
    x = mnist["x_train"].reshape(len(mnist["x_train"]), -1).astype(np.float64) / 255
    mean = x.mean(axis=0)
    x -= mean
    eigvals, eigvecs = np.linalg.eigh(x.T @ x)
    del x
    eigvals, eigvecs = eigvals[::-1], eigvecs[:, ::-1]
    cumulative = np.cumsum(eigvals) / eigvals.sum()

    k = hard.pca_components
    assert isinstance(k, int)
    assert k == HARD_K
    assert cumulative[k - 1] >= 0.25
    assert cumulative[k - 2] < 0.25

    assert hard.variant == "hard"
    assert hard.images.shape == (3000, 28, 28)
    assert hard.images.dtype == np.float32
    assert hard.images.min() >= 0.0
    assert hard.images.max() <= 1.0
    assert np.abs(hard.images - clean.images).mean() > 0.05
    np.testing.assert_array_equal(hard.image_indices, clean.image_indices)
    assert hard.audio_paths == clean.audio_paths

    basis = eigvecs[:, :k]
    rows = [0, 1, 1234, 2999]
    test = mnist["x_test"][hard.image_indices[rows]].reshape(len(rows), -1) / 255 - mean
    expected = np.clip(test @ basis @ basis.T + mean, 0, 1).reshape(len(rows), 28, 28)
    np.testing.assert_allclose(hard.images[rows], expected, atol=1e-5)


@pytest.mark.slow  # the exact PCA of the 60,000 MNIST training images
def test_hard_second_call_uses_cache(
    hard: av_digits.AVDigits, shared: Path, hard_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = list(hard_cache.glob("av_digits_pca_*.npz"))
    assert len(cached) == 1
    assert sorted(p.name for p in hard_cache.iterdir()) == [cached[0].name]  # nothing else written

    def no_fit(*args: object, **kwargs: object) -> None:
        raise AssertionError("the PCA was recomputed instead of read from the cache")

    monkeypatch.setattr(av_digits, "_fit_pca", no_fit)
    start = time.perf_counter()
    again = build_av_digits(shared, variant="hard", cache_dir=hard_cache)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    assert again.pca_components == hard.pca_components
    np.testing.assert_array_equal(again.images, hard.images)


def test_clean_writes_nothing(shared: Path, tmp_path: Path) -> None:
    build_av_digits(shared, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_found_through_environment(shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODALFUSE_DATA", str(shared))
    data = build_av_digits(cache_dir=tmp_path)
    assert Path(data.root) == shared.resolve()
    assert len(data) == 3000


# --------------------------------------------------------------------------------------------- not found


def test_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="root=") as info:
        build_av_digits(tmp_path / "nowhere", cache_dir=tmp_path / "cache")
    assert isinstance(info.value, FileNotFoundError)


def test_not_found_lists_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODALFUSE_DATA", raising=False)
    monkeypatch.setattr(av_digits, "_default_search", lambda: [("default", tmp_path / "shared")])
    with pytest.raises(DatasetNotFoundError) as info:
        build_av_digits(cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "MODALFUSE_DATA" in message
    assert str(tmp_path / "cache" / "datasets") in message
    assert str(tmp_path / "shared") in message
    assert "root=" in message
    assert "download=True" in message


def test_invalid_variant(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="variant"):
        build_av_digits(tmp_path, variant="noisy")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- synthetic
# The synthetic FSDD archive and MNIST files, and the local HTTP server serving them, are in conftest.py.


@pytest.fixture
def files(av_files: dict[str, bytes]) -> dict[str, bytes]:
    return av_files


@pytest.fixture
def server(av_server: tuple[str, Counter[str]]) -> tuple[str, Counter[str]]:
    return av_server


@pytest.fixture
def checksums(av_checksums: dict[str, str | None]) -> dict[str, str | None]:
    return av_checksums


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODALFUSE_DATA", raising=False)
    monkeypatch.delenv("MODALFUSE_CACHE", raising=False)


def test_download_once(
    server: tuple[str, Counter[str]],
    checksums: dict[str, str | None],
    files: dict[str, bytes],
    tmp_path: Path,
) -> None:
    base_url, requests = server
    cache = tmp_path / "cache"
    data = build_av_digits(download=True, cache_dir=cache, base_url=base_url, checksums=checksums)
    assert requests == dict.fromkeys(files, 1)

    datasets = cache / "datasets"
    assert Path(data.root) == datasets.resolve()
    assert sorted(p.name for p in (datasets / "fsdd" / "recordings").iterdir()) == sorted(RECORDINGS)
    recorded = json.loads((datasets / "checksums.json").read_text())
    zip_sha = hashlib.sha256(files["free-spoken-digit-dataset-1.0.10.zip"]).hexdigest()
    assert recorded == {"free-spoken-digit-dataset-1.0.10.zip": "sha256:" + zip_sha}
    assert not list(datasets.rglob("*.part"))

    names = [Path(p).name for p in data.audio_paths]
    assert names == sorted(RECORDINGS)
    assert data.labels.tolist() == [0, 0, 1, 1, 1, 2]
    assert data.speakers.tolist() == ["alice", "bob", "alice", "alice", "bob", "bob"]
    assert data.image_indices.tolist() == [0, 10, 1, 11, 15, 2]
    test_images = np.frombuffer(gzip.decompress(files["t10k-images-idx3-ubyte.gz"])[16:], dtype=np.uint8)
    expected = test_images.reshape(20, 28, 28)[[0, 10, 1, 11, 15, 2]] / 255
    np.testing.assert_allclose(data.images, expected, rtol=0, atol=1e-7)

    again = build_av_digits(download=True, cache_dir=cache, base_url=base_url, checksums=checksums)
    assert requests == dict.fromkeys(files, 1)  # second build: no request
    assert again.audio_paths == data.audio_paths
    offline = build_av_digits(cache_dir=cache)  # the cache is searched without download too
    assert offline.audio_paths == data.audio_paths
    assert sum(requests.values()) == len(files)


def test_download_hard_from_idx(
    server: tuple[str, Counter[str]],
    checksums: dict[str, str | None],
    files: dict[str, bytes],
    tmp_path: Path,
) -> None:
    base_url, _ = server
    cache = tmp_path / "cache"
    data = build_av_digits(
        variant="hard", download=True, cache_dir=cache, base_url=base_url, checksums=checksums
    )
    train = np.frombuffer(gzip.decompress(files["train-images-idx3-ubyte.gz"])[16:], dtype=np.uint8)
    x = train.reshape(30, -1) / 255
    eigvals = np.linalg.eigvalsh(np.cov(x, rowvar=False))[::-1]
    cumulative = np.cumsum(eigvals) / eigvals.sum()
    k = data.pca_components
    assert isinstance(k, int)
    assert cumulative[k - 1] >= 0.25 > (cumulative[k - 2] if k > 1 else 0.0)
    assert data.images.min() >= 0.0
    assert data.images.max() <= 1.0
    assert len(list(cache.glob("av_digits_pca_*.npz"))) == 1


def test_too_many_recordings_for_a_digit(
    server: tuple[str, Counter[str]],
    checksums: dict[str, str | None],
    files: dict[str, bytes],
    tmp_path: Path,
) -> None:
    base_url, _ = server
    cache = tmp_path / "cache"
    build_av_digits(download=True, cache_dir=cache, base_url=base_url, checksums=checksums)
    root = cache / "datasets"
    (root / "fsdd" / "recordings" / "1_carol_0.wav").write_bytes(wav_bytes())
    with pytest.raises(DatasetError, match=r"digit 1 has 4 recordings but only 3 MNIST test images"):
        build_av_digits(root, cache_dir=cache)


def test_wrong_checksum_deletes_file(
    server: tuple[str, Counter[str]], checksums: dict[str, str | None], tmp_path: Path
) -> None:
    base_url, _ = server
    cache = tmp_path / "cache"
    wrong = dict(checksums)
    wrong["t10k-labels-idx1-ubyte.gz"] = "sha256:" + "0" * 64
    with pytest.raises(ChecksumMismatchError) as info:
        build_av_digits(download=True, cache_dir=cache, base_url=base_url, checksums=wrong)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in message
    assert f"{base_url}/t10k-labels-idx1-ubyte.gz" in message
    assert "0" * 64 in message
    mnist_dir = cache / "datasets" / "mnist"
    assert not (mnist_dir / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list((cache / "datasets").rglob("*.part"))


def test_tampered_archive_is_fetched_again(
    server: tuple[str, Counter[str]],
    checksums: dict[str, str | None],
    files: dict[str, bytes],
    tmp_path: Path,
) -> None:
    base_url, requests = server
    cache = tmp_path / "cache"
    build_av_digits(download=True, cache_dir=cache, base_url=base_url, checksums=checksums)
    archive = cache / "datasets" / "fsdd" / "free-spoken-digit-dataset-1.0.10.zip"
    archive.write_bytes(b"damaged")
    build_av_digits(download=True, cache_dir=cache, base_url=base_url, checksums=checksums)
    assert requests["free-spoken-digit-dataset-1.0.10.zip"] == 2  # verified against the recorded digest
    assert archive.read_bytes() == files["free-spoken-digit-dataset-1.0.10.zip"]


def test_bad_idx_file(tmp_path: Path) -> None:
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x01\x02\x03\x04junk"))
    with pytest.raises(DecodeError, match="magic"):
        av_digits._read_idx(path)


# --------------------------------------------------------------------------------------------- command line


def _cli(*args: str) -> tuple[int, str, str]:
    from typer.testing import CliRunner

    from modalfuse.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_downloads_into_data_root_with_progress_once(
    server: tuple[str, Counter[str]],
    checksums: dict[str, str | None],
    files: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url, requests = server
    monkeypatch.setattr(av_digits, "CHECKSUMS", checksums)  # the synthetic files' digests
    monkeypatch.setenv("MODALFUSE_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    code, out, err = _cli(
        "datasets", "--download", "av-digits-hard", "--data-root", str(root), "--mirror", base_url
    )
    assert code == 0, err
    assert out.strip() == f"av-digits-hard: sources ready in {root}"
    for name, body in files.items():  # a progress line per file (stderr is not a terminal here)
        assert f"downloading {name} ({len(body) / 1e6:.1f} MB)" in err
    assert requests == dict.fromkeys(files, 1)
    assert sorted(p.name for p in (root / "fsdd" / "recordings").iterdir()) == sorted(RECORDINGS)
    assert not (tmp_path / "cache").exists()  # --data-root, not the cache
    code, _, err = _cli(
        "datasets", "--download", "av-digits-hard", "--data-root", str(root), "--mirror", base_url
    )
    assert code == 0 and "downloading" not in err
    assert sum(requests.values()) == len(files)  # verified on disk, nothing fetched again
    table = __import__("modalfuse").load_dataset("av-digits-hard", root=root)
    assert len(table) == len(RECORDINGS)


def test_cli_download_defaults_to_the_user_cache(
    server: tuple[str, Counter[str]],
    checksums: dict[str, str | None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url, _ = server
    monkeypatch.setattr(av_digits, "CHECKSUMS", checksums)
    monkeypatch.setenv("MODALFUSE_CACHE", str(tmp_path / "cache"))
    code, out, err = _cli("datasets", "--download", "av-digits", "--mirror", base_url)
    assert code == 0, err
    assert out.strip() == f"av-digits: sources ready in {tmp_path / 'cache' / 'datasets'}"


def test_cli_download_with_a_wrong_checksum_is_one_error_line(
    server: tuple[str, Counter[str]],
    checksums: dict[str, str | None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url, _ = server
    monkeypatch.setattr(
        av_digits, "CHECKSUMS", {**checksums, "t10k-labels-idx1-ubyte.gz": "sha256:" + "0" * 64}
    )
    code, _, err = _cli(
        "datasets", "--download", "av-digits", "--data-root", str(tmp_path), "--mirror", base_url
    )
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert (
        last.startswith("error: checksum mismatch for t10k-labels-idx1-ubyte.gz") and "Traceback" not in err
    )
    assert not (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_demo_full_downloads_what_it_does_not_find(
    server: tuple[str, Counter[str]],
    checksums: dict[str, str | None],
    files: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``demo --full`` with no data anywhere: downloads, then evaluates the full table (stubbed here; the
    evaluation itself is what ``evaluate`` tests cover)."""
    from modalfuse import cli

    base_url, requests = server
    monkeypatch.setattr(av_digits, "CHECKSUMS", checksums)
    monkeypatch.setattr(av_digits, "_default_search", lambda: [])  # no ../shared
    monkeypatch.setenv("MODALFUSE_CACHE", str(tmp_path / "cache"))
    seen = {}

    def evaluation(table, **settings):
        seen.update(table=table, **settings)
        return {"strategies": {}, "recommendation": {"strategy": None}}

    monkeypatch.setattr(cli, "_run_evaluation", evaluation)
    out_dir = tmp_path / "demo"
    code, out, err = _cli("demo", "--full", "--mirror", base_url, "--out", str(out_dir))
    assert code == 0, err
    assert "downloading them" in out
    assert requests == dict.fromkeys(files, 1)
    assert seen["table"].name == "av-digits-hard" and len(seen["table"]) == len(RECORDINGS)
    assert (seen["cv"], seen["fusion"], seen["epochs"], seen["min_steps"]) == ("loso", "all", 20, 200)
    assert json.loads((out_dir / "av-digits-hard.json").read_text())["strategies"] == {}
