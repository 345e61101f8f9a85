"""Shared fixtures: a small synthetic multimodal table with real image and audio files; synthetic AV-Digits
sources served by a real local HTTP server."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import struct
import threading
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pandas as pd
import pytest


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (the default options): one worker per core this process may use, at most 4.

    modalfuse fits on one torch thread by default, so the workers add up to the cores without oversubscribing.
    """
    return max(1, min(4, len(os.sched_getaffinity(0))))


#: Class -> words that make up most of a row's text.
CLASS_WORDS = {
    "a": ["apple", "apricot", "avocado"],
    "b": ["banana", "blueberry", "blackberry"],
    "c": ["cherry", "coconut", "cranberry"],
}
NOISE_WORDS = ["the", "and", "fruit", "some", "very", "with"]
#: Class -> sine frequency (Hz) of its audio clips.
FREQS = {"a": 300.0, "b": 900.0, "c": 2000.0}
CLASSES = ("a", "b", "c")


def _image(label: str, rng: np.random.Generator) -> np.ndarray:
    """16x16 grey image: horizontal stripes (a), vertical stripes (b) or a bright centre square (c)."""
    img = rng.uniform(0, 40, size=(16, 16))
    if label == "a":
        img[::4] += 200
        img[1::4] += 200
    elif label == "b":
        img[:, ::4] += 200
        img[:, 1::4] += 200
    else:
        img[4:12, 4:12] += 200
    return np.clip(img, 0, 255).astype(np.uint8)


def _wave(label: str, rng: np.random.Generator, sr: int = 8000) -> np.ndarray:
    seconds = rng.uniform(0.2, 0.4)
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.5 * np.sin(2 * np.pi * FREQS[label] * t) + 0.02 * rng.standard_normal(len(t))
    return wave.astype(np.float32)


def make_frame(folder: Path, n: int = 72, seed: int = 0, missing: bool = True) -> pd.DataFrame:
    """A DataFrame of ``n`` rows (classes a, b, c balanced) whose image/audio cells are files in ``folder``."""
    import soundfile as sf
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        label = CLASSES[i % 3]
        img_path = folder / f"img_{i:03d}.png"
        Image.fromarray(_image(label, rng), mode="L").save(img_path)
        wav_path = folder / f"snd_{i:03d}.wav"
        sf.write(wav_path, _wave(label, rng), 8000)
        words = list(rng.choice(CLASS_WORDS[label], size=4)) + list(rng.choice(NOISE_WORDS, size=2))
        rng.shuffle(words)
        rows.append(
            {
                "image": img_path.name,
                "audio": wav_path.name,
                "text": " ".join(words),
                "num": {"a": -2.0, "b": 0.0, "c": 2.0}[label] + 0.3 * rng.standard_normal(),
                "colour": str(rng.choice(["red", "green", "blue"])),
                "speaker": f"s{i % 6}",
                "y": label,
            }
        )
    frame = pd.DataFrame(rows)
    if missing:
        # a few missing cells in every modality, never all of a row
        frame.loc[[1, 8], "image"] = None
        frame.loc[[2, 9], "audio"] = None
        frame.loc[[3, 10], "text"] = None
        frame.loc[[4, 11], "num"] = np.nan
    return frame


@pytest.fixture(scope="session")
def table_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``data.csv`` (72 rows) and its image and audio files."""
    folder = tmp_path_factory.mktemp("mm")
    make_frame(folder).to_csv(folder / "data.csv", index=False)
    return folder


@pytest.fixture(scope="session")
def csv_path(table_dir: Path) -> Path:
    return table_dir / "data.csv"


@pytest.fixture(scope="session")
def table(csv_path: Path):  # -> MultimodalTable
    """The synthetic table: inputs image, audio, text and tabular (num + colour); label y."""
    import modalfuse as mf

    return mf.read_table(csv_path, label="y")


@pytest.fixture(scope="session", autouse=True)
def _embedding_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The on-disk embedding cache of the pretrained encoders lives in a session folder, never the user's."""
    folder = tmp_path_factory.mktemp("modalfuse-cache")
    before = os.environ.get("MODALFUSE_CACHE")
    os.environ["MODALFUSE_CACHE"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("MODALFUSE_CACHE", None)
    else:
        os.environ["MODALFUSE_CACHE"] = before


@pytest.fixture(scope="session", autouse=True)
def _warm_librosa() -> None:
    """Compile librosa's numba kernels once per session, not inside the first test that touches audio."""
    from modalfuse.modalities.audio import log_mel

    log_mel(np.zeros(2048, dtype=np.float32), 8000)


SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``../shared/datasets`` beside the repository; tests using it skip where it is absent."""
    if not (SHARED_DATASETS / "fsdd" / "recordings").is_dir() or not (SHARED_DATASETS / "mnist").is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_DATASETS} (needs fsdd/ and mnist/)")
    return SHARED_DATASETS


def assert_probabilities(proba: np.ndarray, n_rows: int, n_classes: int) -> None:
    """``proba`` is an (n_rows, n_classes) array of probabilities: non-negative rows summing to 1."""
    assert proba.shape == (n_rows, n_classes)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    assert (proba >= 0).all()


def assert_explanation_covers_inputs(out: pd.DataFrame, table, inputs: list[str]) -> None:
    """``clf.explain`` output: prediction, probability and one finite column per input, 0 where it is missing."""
    assert list(out.columns) == ["prediction", "probability", *inputs]
    for n in inputs:
        assert (out.loc[~table.mask(n), n] == 0).all()
        assert np.isfinite(out[n]).all()


# ------------------------------------------------ synthetic AV-Digits sources and a local HTTP server


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def wav_bytes() -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(800) / 8000)
    sf.write(buffer, tone, 8000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


#: The recordings in the synthetic FSDD archive.
RECORDINGS = ["1_bob_0.wav", "0_alice_0.wav", "2_bob_3.wav", "1_alice_1.wav", "0_bob_0.wav", "1_alice_0.wav"]


def synthetic_av_digits_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    test_labels = np.arange(20) % 10  # test images of digit d at d and d + 10 ...
    test_labels[15] = 1  # ... and digit 1 also at 15
    test_images = rng.integers(0, 256, size=(20, 28, 28))
    train_images = rng.integers(0, 256, size=(30, 28, 28))
    train_labels = np.arange(30) % 10
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("free-spoken-digit-dataset-1.0.10/README.md", "synthetic")
        zf.writestr("free-spoken-digit-dataset-1.0.10/utils/x.wav", wav_bytes())  # not under recordings/
        for name in RECORDINGS:
            zf.writestr(f"free-spoken-digit-dataset-1.0.10/recordings/{name}", wav_bytes())
    return {
        "free-spoken-digit-dataset-1.0.10.zip": archive.getvalue(),
        "t10k-images-idx3-ubyte.gz": idx_bytes(test_images),
        "t10k-labels-idx1-ubyte.gz": idx_bytes(test_labels),
        "train-images-idx3-ubyte.gz": idx_bytes(train_images),
        "train-labels-idx1-ubyte.gz": idx_bytes(train_labels),
    }


@pytest.fixture(scope="session")
def av_files() -> dict[str, bytes]:
    """File name -> bytes of a tiny FSDD archive (6 recordings) and the four MNIST idx files."""
    return synthetic_av_digits_files()


@pytest.fixture
def av_server(av_files: dict[str, bytes]) -> Iterator[tuple[str, Counter[str]]]:
    """A real HTTP server on localhost serving ``av_files``: yields its base URL and a count of requests."""
    files = av_files
    requests: Counter[str] = Counter()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.rsplit("/", 1)[-1]
            requests[name] += 1
            body = files.get(name)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/mirror", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def av_checksums(av_files: dict[str, bytes]) -> dict[str, str | None]:
    """The SHA-256 of each of ``av_files`` (None for the FSDD zip: recorded on first download)."""
    sums: dict[str, str | None] = {
        name: "sha256:" + hashlib.sha256(body).hexdigest() for name, body in av_files.items()
    }
    sums["free-spoken-digit-dataset-1.0.10.zip"] = None  # recorded on first download
    return sums
