"""AV-Digits: spoken digits (FSDD) paired with handwritten digits (MNIST).

The benchmark is built the way AV-MNIST was built:

- Rows: the FSDD recordings ``{digit}_{speaker}_{take}.wav`` sorted by file name (plain string sort);
  label = digit, group = speaker.
- Pairing: for each digit ``d``, the recordings of ``d`` in that order get, one to one, the MNIST test-set
  images of label ``d`` in ascending index order.
- Variant ``"clean"``: the images scaled to [0, 1].
- Variant ``"hard"``: each image projected onto the leading ``k`` principal components of the MNIST training
  images (scaled to [0, 1], mean-centred), ``k`` being the smallest number whose cumulative explained-variance
  ratio reaches 0.25, then reconstructed (mean added back) and clipped to [0, 1].

The raw data are never bundled: :func:`build_av_digits` finds them on disk (see its docstring) or downloads the
public sources with ``download=True`` (:func:`download_av_digits`, ``modalfuse datasets --download``). Only a
small sample ships with the package, for the demo: :func:`build_demo_sample` writes it from the full data
(built-in dataset ``av-digits-sample``, folder :data:`DEMO_SAMPLE_DIR`).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from modalfuse._errors import ChecksumMismatchError, DatasetError, DatasetNotFoundError, DecodeError

__all__ = [
    "AV_DIGITS_GROUPS",
    "AV_DIGITS_LABEL",
    "CHECKSUMS",
    "AVDigits",
    "ChecksumMismatchError",
    "DatasetError",
    "DatasetNotFoundError",
    "build_av_digits",
]

AV_DIGITS_LABEL = "digit"
"""Name of the label column of :meth:`AVDigits.to_frame`."""

AV_DIGITS_GROUPS = "speaker"
"""Name of the group column of :meth:`AVDigits.to_frame` (leave-one-speaker-out protocol)."""

HARD_VARIANCE_THRESHOLD = 0.25
"""Cumulative explained-variance ratio the ``hard`` variant's ``k`` components must reach."""

FSDD_TAG = "v1.0.10"
FSDD_ZIP_NAME = "free-spoken-digit-dataset-1.0.10.zip"
FSDD_ZIP_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.zip"
MNIST_BASE_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

# Expected checksums of the downloaded files, as "<algorithm>:<hex digest>".
# The four MNIST values are the SHA-256 digests of the original LeCun .gz files as published by many
# projects (TensorFlow Datasets among them) and served byte for byte by the ossci-datasets mirror.
# Note: other copies of MNIST re-compressed with a different gzip header (the kelas/mnist copy in
# ../shared/datasets/mnist, for instance) decompress to the same bytes but have other digests; the checks
# apply to downloads only.
# The FSDD GitHub archive's digest cannot be known in advance (GitHub generates the zip): ``None`` means
# "record the SHA-256 on first download into checksums.json beside the data and verify it on later uses".
CHECKSUMS: dict[str, str | None] = {
    FSDD_ZIP_NAME: None,
    "train-images-idx3-ubyte.gz": "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

DownloadProgress = Callable[[str, int, "int | None"], None]
"""``progress(file_name, done_bytes, total_bytes)``, called while a file downloads."""

_RECORDING_RE = re.compile(r"^(\d+)_(.+)_(\d+)\.wav$")
_PCA_CACHE_VERSION = 1
_CHUNK_ROWS = 10_000
_USER_AGENT = "modalfuse (AV-Digits downloader)"


@dataclass(frozen=True, eq=False)
class AVDigits:
    """The AV-Digits benchmark: one row per FSDD recording, paired with one MNIST test image.

    Attributes
    ----------
    audio_paths : list of str
        Absolute paths of the recordings, sorted by file name.
    images : numpy.ndarray
        float32 array ``(n, 28, 28)`` in [0, 1]; the paired images (reconstructed ones for ``"hard"``).
    labels : numpy.ndarray
        int64 array ``(n,)``, the spoken and written digit.
    speakers : numpy.ndarray
        object array ``(n,)`` of speaker names (the groups of the leave-one-speaker-out protocol).
    image_indices : numpy.ndarray
        int64 array ``(n,)``, the MNIST test-set index of each row's image.
    variant : str
        ``"clean"`` or ``"hard"``.
    pca_components : int or None
        ``k``, the number of principal components kept (``"hard"``), else None.
    root : str
        The data folder the rows were built from (it holds ``fsdd/`` and ``mnist/``).
    """

    audio_paths: list[str]
    images: np.ndarray
    labels: np.ndarray
    speakers: np.ndarray
    image_indices: np.ndarray
    variant: str
    pca_components: int | None
    root: str

    def __len__(self) -> int:
        """Return the number of rows."""
        return len(self.audio_paths)

    def to_frame(self) -> pd.DataFrame:
        """Return the rows as a table for the modalfuse estimators.

        Returns
        -------
        pandas.DataFrame
            Columns ``"audio"`` (path str), ``"image"`` (object column, one ``(28, 28)`` float32 array per
            cell), ``"digit"`` (int64 label, :data:`AV_DIGITS_LABEL`) and ``"speaker"`` (str,
            :data:`AV_DIGITS_GROUPS`).
        """
        n = len(self.audio_paths)
        image_cells = np.empty(n, dtype=object)
        for i in range(n):
            image_cells[i] = self.images[i]
        return pd.DataFrame(
            {
                "audio": list(self.audio_paths),
                "image": pd.Series(image_cells, dtype=object),
                AV_DIGITS_LABEL: np.asarray(self.labels, dtype=np.int64),
                AV_DIGITS_GROUPS: [str(s) for s in self.speakers],
            }
        )


def build_av_digits(
    root: str | os.PathLike[str] | None = None,
    *,
    variant: Literal["clean", "hard"] = "clean",
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    checksums: Mapping[str, str | None] | None = None,
    progress: DownloadProgress | None = None,
) -> AVDigits:
    """Build the AV-Digits benchmark (FSDD audio + MNIST images) from files on disk.

    Parameters
    ----------
    root : str or path-like, optional
        A folder holding ``fsdd/recordings/*.wav`` and ``mnist/mnist.npz`` (or the MNIST idx files
        ``mnist/t10k-images-idx3-ubyte.gz``, ``mnist/t10k-labels-idx1-ubyte.gz`` and, for ``"hard"`` without
        ``mnist.npz``, ``mnist/train-images-idx3-ubyte.gz``). When given it must hold the data (or, with
        ``download=True``, it is where the public sources are downloaded to): nothing else is searched.
    variant : {"clean", "hard"}
        ``"clean"``: images / 255. ``"hard"``: images reconstructed from the leading ``k`` principal components
        of the MNIST training images, ``k`` the smallest number reaching 25% explained variance.
    download : bool
        If the data are not under ``root`` or ``$MODALFUSE_DATA``, download the public sources into ``root``
        when given, else ``cache_dir/datasets`` (once; later calls verify the files and download nothing): FSDD as the GitHub
        archive of tag v1.0.10 (its ``recordings/`` extracted into ``fsdd/recordings``) and the four MNIST idx
        files. Every download goes to a temporary file, is checked against :data:`CHECKSUMS` and then moved
        into place; a mismatch deletes it and raises :class:`ChecksumMismatchError`. An entry of ``None``
        (the FSDD zip, whose bytes GitHub generates) means: record the file's SHA-256 in
        ``cache_dir/datasets/checksums.json`` on first download and verify it on later uses.
    cache_dir : str or path-like, optional
        Default ``$MODALFUSE_CACHE`` or ``~/.cache/modalfuse``. Holds ``datasets/`` (downloads) and the
        ``"hard"`` variant's principal components (``av_digits_pca_<key>.npz``, keyed on the MNIST file's
        size and modification time) so that later builds take well under a second.
    base_url : str, optional
        Fetch every file from ``base_url + "/" + file name`` instead of the public hosts (the FSDD zip is then
        named ``free-spoken-digit-dataset-1.0.10.zip``). For mirrors and tests.
    checksums : mapping, optional
        Entries that override :data:`CHECKSUMS` (file name -> ``"sha256:<hex>"``, ``"md5:<hex>"``, a bare
        64-digit SHA-256, or None).
    progress : callable, optional
        ``progress(file_name, done_bytes, total_bytes)`` during downloads (``total_bytes`` None when the
        server does not send a length).

    Returns
    -------
    AVDigits
        The rows, sorted by recording file name.

    Raises
    ------
    DatasetNotFoundError
        If the data are found nowhere (the message lists the places searched and how to fix it).
    DatasetError
        If a digit has more recordings than MNIST test images of that digit, or a file name is not
        ``{digit}_{speaker}_{take}.wav``.
    ChecksumMismatchError
        If a download does not match its checksum.

    Notes
    -----
    Places searched, first complete one wins: ``root``; ``$MODALFUSE_DATA``; ``cache_dir/datasets``;
    ``../shared/datasets`` relative to the current directory and relative to the repository this module
    lives in. With ``download=True`` the last two are skipped: the data come from ``root``,
    ``$MODALFUSE_DATA`` or the (downloaded) cache.
    """
    if variant not in ("clean", "hard"):
        raise ValueError(f"variant must be 'clean' or 'hard', got {variant!r}")
    need_train = variant == "hard"
    cache = _resolve_cache_dir(cache_dir)
    data_root, to_download = _locate(root, cache, need_train=need_train, download=download)
    if to_download:
        expected = {**CHECKSUMS, **(dict(checksums) if checksums is not None else {})}
        _ensure_downloaded(data_root, base_url=base_url, checksums=expected, progress=progress)

    names, labels, speakers = _list_recordings(data_root / "fsdd" / "recordings")
    x_test, y_test = _load_mnist_test(data_root / "mnist")
    image_indices = _pair(labels, y_test)
    chosen = x_test[image_indices].reshape(len(image_indices), -1)

    k: int | None = None
    if variant == "clean":
        flat = chosen.astype(np.float32) / np.float32(255.0)
    else:
        mean, components, _ = _pca_cached(data_root / "mnist", cache)
        k = int(components.shape[0])
        centred = chosen.astype(np.float64) / 255.0 - mean
        flat = np.clip((centred @ components.T) @ components + mean, 0.0, 1.0).astype(np.float32)

    recordings = os.path.abspath(data_root / "fsdd" / "recordings")
    return AVDigits(
        audio_paths=[os.path.join(recordings, name) for name in names],
        images=flat.reshape((len(names), *x_test.shape[1:])),
        labels=labels,
        speakers=speakers,
        image_indices=image_indices,
        variant=variant,
        pca_components=k,
        root=os.path.abspath(data_root),
    )


# --------------------------------------------------------------------------------------------- locating


def _resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("MODALFUSE_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "modalfuse"


def _missing(base: Path, *, need_train: bool) -> list[str]:
    """Return what ``base`` lacks to build AV-Digits (empty when complete)."""
    missing = []
    recordings = base / "fsdd" / "recordings"
    if not recordings.is_dir() or not _wav_names(recordings):
        missing.append("fsdd/recordings/*.wav")
    mnist = base / "mnist"
    if not (mnist / "mnist.npz").is_file():
        needed = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
        if need_train:
            needed.append("train-images-idx3-ubyte.gz")
        absent = [name for name in needed if not (mnist / name).is_file()]
        if absent:
            missing.append("mnist/mnist.npz (or mnist/" + ", mnist/".join(absent) + ")")
    return missing


def _default_search() -> list[tuple[str, Path]]:
    repo = Path(__file__).resolve().parents[3]
    return [
        ("../shared/datasets from the current directory", Path.cwd() / ".." / "shared" / "datasets"),
        ("../shared/datasets from the repository", repo / ".." / "shared" / "datasets"),
    ]


def _locate(
    root: str | os.PathLike[str] | None, cache: Path, *, need_train: bool, download: bool
) -> tuple[Path, bool]:
    """Return the data folder and whether it is the download target (``cache/datasets`` with download)."""
    if root is not None:
        base = Path(root).expanduser()
        missing = _missing(base, need_train=need_train)
        if missing and download:
            return base, True
        if missing:
            raise DatasetNotFoundError(
                f"AV-Digits data not found under root={str(base)!r}: missing {'; '.join(missing)}. "
                "Pass a folder holding fsdd/recordings/*.wav and mnist/mnist.npz, or leave root unset "
                "(and set MODALFUSE_DATA, or use download=True)."
            )
        return base, False

    searched: list[str] = []
    candidates: list[tuple[str, Path]] = []
    env = os.environ.get("MODALFUSE_DATA")
    if env:
        candidates.append(("$MODALFUSE_DATA", Path(env).expanduser()))
    else:
        searched.append("$MODALFUSE_DATA: not set")
    cache_data = cache / "datasets"
    if download:
        for _label, base in candidates:
            if not _missing(base, need_train=need_train):
                return base, False
        return cache_data, True
    candidates.append(("cache", cache_data))
    seen: set[Path] = set()
    for label, base in [*candidates, *_default_search()]:
        resolved = base.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        missing = _missing(base, need_train=need_train)
        if not missing:
            return resolved, False
        searched.append(f"{label}: {resolved} (missing {'; '.join(missing)})")
    raise DatasetNotFoundError(
        "AV-Digits data (fsdd/recordings/*.wav and mnist/mnist.npz or the MNIST idx .gz files) not found; "
        "searched " + "; ".join(searched) + ". Fix: download the public sources (FSDD "
        f"{FSDD_TAG} from GitHub, the MNIST idx files; about 30 MB) into {cache_data} with "
        "`modalfuse datasets --download av-digits-hard` or build_av_digits(download=True), or pass "
        "root='/path/to/datasets' (--data-root; a folder holding fsdd/ and mnist/), or set MODALFUSE_DATA "
        "to such a folder."
    )


# --------------------------------------------------------------------------------------------- reading


def _wav_names(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(entry.name for entry in entries if entry.name.endswith(".wav"))


def _list_recordings(recordings: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    names = _wav_names(recordings)
    labels = np.empty(len(names), dtype=np.int64)
    speakers = np.empty(len(names), dtype=object)
    for i, name in enumerate(names):
        match = _RECORDING_RE.match(name)
        if match is None:
            raise DatasetError(
                f"{recordings / name}: recording names must be '{{digit}}_{{speaker}}_{{take}}.wav'"
            )
        labels[i] = int(match.group(1))
        speakers[i] = match.group(2)
    return names, labels, speakers


def _read_idx(path: Path) -> np.ndarray:
    """Decode an idx (optionally gzip-compressed) file of unsigned bytes into an array."""
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DecodeError(f"cannot read idx file ({exc})", path=str(path)) from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DecodeError("not an idx file (bad magic number)", path=str(path))
    if data[2] != 0x08:
        raise DecodeError(
            f"unsupported idx element type 0x{data[2]:02x} (expected unsigned byte)", path=str(path)
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DecodeError("truncated idx header", path=str(path))
    shape = struct.unpack(f">{ndim}I", data[4:header])
    size = int(np.prod(shape, dtype=np.int64))
    if len(data) - header != size:
        raise DecodeError(
            f"idx payload has {len(data) - header} bytes, header announces {size}", path=str(path)
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _load_mnist_test(mnist: Path) -> tuple[np.ndarray, np.ndarray]:
    npz = mnist / "mnist.npz"
    if npz.is_file():
        try:
            with np.load(npz) as data:
                return np.asarray(data["x_test"]), np.asarray(data["y_test"]).astype(np.int64)
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise DecodeError(f"cannot read x_test / y_test ({exc})", path=str(npz)) from exc
    images = _read_idx(mnist / "t10k-images-idx3-ubyte.gz")
    labels = _read_idx(mnist / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetError(
            f"{mnist}: MNIST test images {images.shape} and labels {labels.shape} do not match"
        )
    return images, labels


def _train_source(mnist: Path) -> Path:
    npz = mnist / "mnist.npz"
    return npz if npz.is_file() else mnist / "train-images-idx3-ubyte.gz"


def _load_mnist_train_images(mnist: Path) -> np.ndarray:
    source = _train_source(mnist)
    if source.suffix == ".npz":
        try:
            with np.load(source) as data:
                return np.asarray(data["x_train"])
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise DecodeError(f"cannot read x_train ({exc})", path=str(source)) from exc
    return _read_idx(source)


def _pair(labels: np.ndarray, y_test: np.ndarray) -> np.ndarray:
    """Give the i-th recording of each digit the i-th MNIST test image of that digit."""
    indices = np.empty(len(labels), dtype=np.int64)
    for digit in np.unique(labels):
        rows = np.flatnonzero(labels == digit)
        pool = np.flatnonzero(y_test == digit)
        if len(rows) > len(pool):
            raise DatasetError(
                f"digit {int(digit)} has {len(rows)} recordings but only {len(pool)} MNIST test images; "
                "each recording needs its own image"
            )
        indices[rows] = pool[: len(rows)]
    return indices


# --------------------------------------------------------------------------------------------- PCA


def _fit_pca(x_train: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact PCA of ``x_train / 255`` by ``eigh`` of the float64 covariance.

    Returns the mean (d,), the leading ``k`` components (k, d) and all explained-variance ratios (d,).
    """
    n = len(x_train)
    flat = x_train.reshape(n, -1)
    if n < 2:
        raise DatasetError(f"PCA needs at least 2 MNIST training images, got {n}")
    mean = flat.mean(axis=0, dtype=np.float64) / 255.0
    d = flat.shape[1]
    cov = np.zeros((d, d), dtype=np.float64)
    for start in range(0, n, _CHUNK_ROWS):
        chunk = flat[start : start + _CHUNK_ROWS].astype(np.float64) / 255.0 - mean
        cov += chunk.T @ chunk
    cov /= n - 1
    eigvals, eigvecs = np.linalg.eigh(cov)
    eigvals = np.clip(eigvals[::-1], 0.0, None)
    eigvecs = eigvecs[:, ::-1]
    total = eigvals.sum()
    if total <= 0:
        raise DatasetError("the MNIST training images have no variance; PCA is undefined")
    ratio = eigvals / total
    k = int(np.searchsorted(np.cumsum(ratio), threshold, side="left")) + 1
    k = min(k, d)
    components = eigvecs[:, :k].T.copy()
    # Fix each component's sign (largest-magnitude entry positive) so cached files are reproducible.
    signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    components *= np.where(signs == 0, 1.0, signs)[:, None]
    return mean, components, ratio


def _pca_cached(mnist: Path, cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    source = _train_source(mnist)
    stat = source.stat()
    key_text = (
        f"v{_PCA_CACHE_VERSION}|{source.name}|{stat.st_size}|{stat.st_mtime_ns}|{HARD_VARIANCE_THRESHOLD}"
    )
    key = hashlib.sha256(key_text.encode()).hexdigest()[:20]
    path = cache / f"av_digits_pca_{key}.npz"
    if path.is_file():
        try:
            with np.load(path) as data:
                return (
                    np.asarray(data["mean"]),
                    np.asarray(data["components"]),
                    np.asarray(data["explained_variance_ratio"]),
                )
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            pass  # a damaged cache file is recomputed and overwritten below
    mean, components, ratio = _fit_pca(_load_mnist_train_images(mnist), HARD_VARIANCE_THRESHOLD)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=".av_digits_pca_", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, mean=mean, components=components, explained_variance_ratio=ratio)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        warnings.warn(f"could not cache the AV-Digits PCA in {cache} ({exc})", RuntimeWarning, stacklevel=3)
    return mean, components, ratio


# --------------------------------------------------------------------------------------------- download


def _hash_file(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _parse_checksum(value: str) -> tuple[str, str]:
    if ":" in value:
        algorithm, hexdigest = value.split(":", 1)
    elif len(value) == 64:
        algorithm, hexdigest = "sha256", value
    else:
        raise ValueError(f"checksum {value!r} must be 'sha256:<hex>', 'md5:<hex>' or a bare SHA-256")
    algorithm = algorithm.strip().lower()
    if algorithm not in ("sha256", "md5"):
        raise ValueError(f"unsupported checksum algorithm {algorithm!r} (use sha256 or md5)")
    return algorithm, hexdigest.strip().lower()


def _url_for(name: str, base_url: str | None) -> str:
    if base_url is not None:
        return base_url.rstrip("/") + "/" + name
    if name == FSDD_ZIP_NAME:
        return FSDD_ZIP_URL
    return MNIST_BASE_URL.rstrip("/") + "/" + name


def _read_recorded(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read the recorded checksums ({exc}); delete the file") from exc
    return {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {}


def _write_recorded(path: Path, recorded: Mapping[str, str]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".checksums.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(dict(sorted(recorded.items())), fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _download(url: str, dest: Path, expected: str | None, progress: DownloadProgress | None = None) -> str:
    """Download ``url`` to ``dest`` atomically; return its SHA-256 (or raise on a checksum mismatch).

    ``progress(name, done_bytes, total_bytes)`` (total None when the server does not say) is called once
    before the first block and after every block.
    """
    algorithm, want = _parse_checksum(expected) if expected is not None else ("sha256", None)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.new(algorithm)
    sha256 = hashlib.sha256()
    try:
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=60) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            if progress is not None:
                progress(dest.name, done, total)
            for block in iter(lambda: response.read(1 << 16), b""):
                digest.update(block)
                sha256.update(block)
                out.write(block)
                done += len(block)
                if progress is not None:
                    progress(dest.name, done, total)
    except (urllib.error.URLError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise DatasetError(f"could not download {url} ({exc})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    got = digest.hexdigest()
    if want is not None and got != want:
        tmp.unlink(missing_ok=True)
        raise ChecksumMismatchError(
            f"checksum mismatch for {dest.name} downloaded from {url}: expected {algorithm} {want}, "
            f"got {algorithm} {got}. The file was deleted; retry later or check base_url / checksums."
        )
    os.replace(tmp, dest)
    return sha256.hexdigest()


def _ensure_file(
    name: str,
    dest: Path,
    *,
    base_url: str | None,
    expected: str | None,
    recorded: dict[str, str],
    progress: DownloadProgress | None = None,
) -> bool:
    """Make ``dest`` present and verified; return True when it was (re)downloaded."""
    check = expected if expected is not None else recorded.get(name)
    if dest.is_file():
        if check is None:
            recorded[name] = "sha256:" + _hash_file(dest, "sha256")
            return False
        algorithm, want = _parse_checksum(check)
        if _hash_file(dest, algorithm) == want:
            return False
        dest.unlink()  # damaged or replaced since it was verified: fetch it again
    url = _url_for(name, base_url)
    sha256 = _download(url, dest, check, progress)
    if check is None:
        recorded[name] = "sha256:" + sha256
    return True


def _extract_recordings(archive: Path, fsdd: Path) -> None:
    """Extract the archive's ``*/recordings/*.wav`` into ``fsdd/recordings`` (atomically)."""
    staging = Path(tempfile.mkdtemp(dir=fsdd, prefix=".recordings."))
    try:
        count = 0
        try:
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    parts = info.filename.rstrip("/").split("/")
                    if info.is_dir() or len(parts) < 2 or parts[-2] != "recordings":
                        continue
                    name = parts[-1]
                    if not name.endswith(".wav") or name in ("", ".", ".."):
                        continue
                    with zf.open(info) as src, open(staging / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    count += 1
        except zipfile.BadZipFile as exc:
            raise DatasetError(f"{archive}: not a valid zip archive ({exc})") from exc
        if count == 0:
            raise DatasetError(f"{archive}: holds no recordings/*.wav")
        target = fsdd / "recordings"
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _ensure_downloaded(
    data_root: Path,
    *,
    base_url: str | None,
    checksums: Mapping[str, str | None],
    progress: DownloadProgress | None = None,
) -> None:
    data_root.mkdir(parents=True, exist_ok=True)
    record_path = data_root / "checksums.json"
    recorded = _read_recorded(record_path)
    before = dict(recorded)
    try:
        fsdd = data_root / "fsdd"
        archive = fsdd / FSDD_ZIP_NAME
        fresh = _ensure_file(
            FSDD_ZIP_NAME,
            archive,
            base_url=base_url,
            expected=checksums.get(FSDD_ZIP_NAME),
            recorded=recorded,
            progress=progress,
        )
        if fresh or not (fsdd / "recordings").is_dir():
            _extract_recordings(archive, fsdd)
        for name in MNIST_FILES:
            _ensure_file(
                name,
                data_root / "mnist" / name,
                base_url=base_url,
                expected=checksums.get(name),
                recorded=recorded,
                progress=progress,
            )
    finally:
        if recorded != before:
            _write_recorded(record_path, recorded)


def download_av_digits(
    root: str | os.PathLike[str] | None = None,
    *,
    variant: Literal["clean", "hard"] = "hard",
    cache_dir: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    checksums: Mapping[str, str | None] | None = None,
    progress: DownloadProgress | None = None,
) -> Path:
    """Make sure the AV-Digits sources are on disk, downloading (and verifying) them where they are not.

    Parameters
    ----------
    root : str or path-like, optional
        Download into this folder (``fsdd/`` and ``mnist/`` are made in it); default ``$MODALFUSE_DATA``
        when it already holds the data, else ``cache_dir/datasets``.
    variant, cache_dir, base_url, checksums, progress
        As for :func:`build_av_digits`.

    Returns
    -------
    pathlib.Path
        The folder holding ``fsdd/`` and ``mnist/``. A folder that already holds complete data is returned
        without any request; the downloaded files are verified against :data:`CHECKSUMS` on every call.
    """
    if variant not in ("clean", "hard"):
        raise ValueError(f"variant must be 'clean' or 'hard', got {variant!r}")
    data_root, to_download = _locate(
        root, _resolve_cache_dir(cache_dir), need_train=variant == "hard", download=True
    )
    if to_download:
        expected = {**CHECKSUMS, **(dict(checksums) if checksums is not None else {})}
        _ensure_downloaded(data_root, base_url=base_url, checksums=expected, progress=progress)
    return data_root


# --------------------------------------------------------------------------------------------- demo sample

DEMO_SAMPLE_DIR = Path(__file__).resolve().parent / "av_digits_sample"
"""The sample of AV-Digits (hard) shipped with the package (built-in dataset ``av-digits-sample``)."""

DEMO_SAMPLE_TAKES = 5
"""Takes ``0 .. DEMO_SAMPLE_TAKES - 1`` of every digit by every speaker are in the demo sample."""

_DEMO_README = """\
# AV-Digits (hard) demo sample

{rows} rows of the AV-Digits (hard) benchmark: every one of the 6 FSDD speakers saying every digit
{takes} times (takes 0 to {last_take}), each recording paired with the same MNIST test image as in the full
benchmark, degraded to its projection on the leading {k} principal components of the MNIST training images.

- `data.csv`: columns `audio`, `image` (paths relative to this folder), `digit` (the label) and `speaker`
  (the groups: evaluate with speakers held out).
- `audio/{{digit}}_{{speaker}}_{{take}}.flac`: the FSDD recordings, losslessly re-encoded (mono, 16-bit,
  8,000 Hz; the samples are exactly those of the original WAV files).
- `image/mnist_test_{{index}}.png`: 28x28 8-bit grey images; `index` is the image's position in the MNIST
  test set. Grey level = round(255 x the reconstructed value in [0, 1]).

Built by `modalfuse.data.av_digits.build_demo_sample(root, out)` from FSDD v1.0.10 and MNIST; the test
suite rebuilds it and checks that it matches these files. The full benchmark (3,000 rows) is
`modalfuse demo --full` (it downloads the public sources when they are not found).

## Sources and licences

- Free Spoken Digit Dataset (FSDD), Jakobovski et al. (github.com/Jakobovski/free-spoken-digit-dataset,
  tag v1.0.10): Creative Commons Attribution-ShareAlike 4.0 International (CC BY-SA 4.0),
  https://creativecommons.org/licenses/by-sa/4.0/.
- MNIST, Yann LeCun, Corinna Cortes and Christopher J. C. Burges: commonly distributed under Creative
  Commons Attribution-ShareAlike 3.0 (CC BY-SA 3.0), https://creativecommons.org/licenses/by-sa/3.0/.

The audio and images here are adapted from these works (re-encoded, paired, degraded). The sample is shared
under CC BY-SA 4.0 (CC BY-SA 3.0 allows adaptations under a later version of the same licence); attribute
both sources when you publish results built on them.
"""


def build_demo_sample(
    root: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    *,
    takes: int = DEMO_SAMPLE_TAKES,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the AV-Digits (hard) demo sample shipped with the package, deterministically.

    Parameters
    ----------
    root : str or path-like or None
        Where the full sources are (see :func:`build_av_digits`).
    out : str or path-like
        Folder to write; made if needed. Files of an earlier sample in it are overwritten, others kept.
    takes : int, default=DEMO_SAMPLE_TAKES
        Keep takes ``0 .. takes - 1`` of every (digit, speaker): ``60 * takes`` rows.
    cache_dir : str or path-like, optional
        As for :func:`build_av_digits` (where the principal components are cached).

    Returns
    -------
    pathlib.Path
        ``out``, holding ``data.csv``, ``README.md``, ``audio/*.flac`` and ``image/*.png``.

    Notes
    -----
    The CSV and README are the same bytes on every build. The FLAC and PNG files decode to the same samples
    and pixels on every build; their bytes may differ between versions of libsndfile and zlib.
    """
    import soundfile as sf
    from PIL import Image

    full = build_av_digits(root, variant="hard", cache_dir=cache_dir)
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "image").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, path in enumerate(full.audio_paths):
        stem = Path(path).stem
        if int(_RECORDING_RE.match(Path(path).name).group(3)) >= takes:  # type: ignore[union-attr]
            continue
        samples, rate = sf.read(path, dtype="int16", always_2d=False)
        audio = f"audio/{stem}.flac"
        sf.write(out / audio, samples, rate, format="FLAC", subtype="PCM_16")
        image = f"image/mnist_test_{int(full.image_indices[i]):05d}.png"
        pixels = np.round(full.images[i].astype(np.float64) * 255.0).astype(np.uint8)
        Image.fromarray(pixels).save(out / image, format="PNG")
        rows.append(
            {
                "audio": audio,
                "image": image,
                AV_DIGITS_LABEL: int(full.labels[i]),
                AV_DIGITS_GROUPS: str(full.speakers[i]),
            }
        )
    pd.DataFrame(rows).to_csv(out / "data.csv", index=False, lineterminator="\n")
    readme = _DEMO_README.format(rows=len(rows), takes=takes, last_take=takes - 1, k=full.pca_components)
    (out / "README.md").write_text(readme, encoding="utf-8")
    return out
