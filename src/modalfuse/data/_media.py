"""Image and audio cells: the forms they come in, file paths checked for what they point at, decoding.

A media cell may be a file path (``str`` or ``os.PathLike``), the bytes of a file, a Hugging Face style
``{"bytes": ..., "path": ...}`` dict, a decoded ``PIL.Image.Image`` or array (images), or a
``(wave, sample_rate)`` tuple or ``{"array": ..., "sampling_rate": ...}`` dict (audio). :func:`media_cell`
turns each into one of three canonical forms: a path string, ``bytes``, or an in-memory value (an array
for images, a ``(wave, sample_rate)`` tuple for audio).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np

from modalfuse._cache import active_cache, content_key
from modalfuse._errors import DecodeError, SchemaError

__all__ = ["CellError", "decode_media", "media_cell", "media_kind_of_bytes", "resolve_media_path"]

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class CellError(Exception):
    """One cell cannot be used; ``reason`` says why (it becomes a :class:`Problem`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ------------------------------------------------------------------------------------------- kinds of bytes
def media_kind_of_bytes(data: bytes) -> str | None:
    """``"image"`` or ``"audio"`` from a file's first bytes (its magic number), or ``None``.

    Images: PNG, JPEG, GIF, BMP, TIFF, WebP. Audio: WAV, FLAC, OGG, AIFF, MP3 (ID3 tag or frame sync).
    """
    head = bytes(data[:16])
    riff = head[8:12] if head[:4] == b"RIFF" else b""
    if (
        head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*"))
        or riff == b"WEBP"
        or (head[:2] == b"BM" and len(data) > 26)
    ):
        return "image"
    if (
        riff == b"WAVE"
        or head.startswith((b"fLaC", b"OggS", b"ID3"))
        or (head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"))
        or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)
    ):
        return "audio"
    return None


# ------------------------------------------------------------------------------------------- paths
_FILE_KINDS = (
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISFIFO, "named pipe (FIFO)"),
    (stat.S_ISSOCK, "socket"),
)


def _stat_reason(exc: OSError | ValueError, candidate: Path) -> str:
    """What an ``os.stat`` failure means for a person."""
    if isinstance(exc, ValueError):  # "embedded null byte"
        return f"invalid path: {exc}"
    if exc.errno == errno.ENOENT:
        if os.path.islink(candidate):
            return (
                f"broken symbolic link: {candidate} points to {os.readlink(candidate)}, which does not exist"
            )
        return f"file not found: {candidate}"
    if exc.errno == errno.ELOOP:
        return f"symlink loop: {candidate}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied: {candidate}"
    if exc.errno == errno.ENAMETOOLONG:
        return f"file name too long ({len(str(candidate))} characters)"
    if exc.errno == errno.ENOTDIR:
        return f"file not found (a part of the path is not a folder): {candidate}"
    return f"cannot access file: {exc.strerror or exc}: {candidate}"


def _local_text(value: str) -> str:
    """The cell as a local path string: ``file://`` URLs are turned into paths, other URLs refused."""
    text = value.strip()
    if text.lower().startswith("file://"):
        return url2pathname(urlparse(text).path)
    if _URL.match(text):
        raise CellError(f"a URL, not a local file (modalfuse reads local files only): {text[:200]}")
    return text


def _regular_file(candidate: Path, full: Path) -> str:
    """``full`` when it is a regular, readable file, else :class:`CellError` saying what it is."""
    try:
        st = os.stat(full)
    except (OSError, ValueError) as exc:
        raise CellError(_stat_reason(exc, candidate if os.path.islink(candidate) else full)) from None
    if stat.S_ISDIR(st.st_mode):
        raise CellError(f"is a directory, not a file: {full}")
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(st.st_mode)), "special file")
        raise CellError(f"not a regular file: {kind}: {full}")
    if not os.access(full, os.R_OK):
        raise CellError(f"permission denied: {full}")
    return str(full)


def _resolve(text: str, value: str, root: Path, confine: bool, where: str) -> str:
    p = Path(os.path.expanduser(text))
    candidate = p if p.is_absolute() else root / p
    try:
        full = candidate.resolve()
    except RuntimeError:  # Python < 3.13: "Symlink loop from ..."
        raise CellError(f"symlink loop: {candidate}") from None
    except (OSError, ValueError) as exc:
        raise CellError(_stat_reason(exc, candidate)) from None
    if confine and not full.is_relative_to(root.resolve()):
        raise SchemaError(
            f"{where}path {value!r} escapes the table's folder {root} (it resolves to {full}; confine=True)"
        )
    return _regular_file(candidate, full)


def resolve_media_path(value: str, root: Path, *, confine: bool = False, where: str = "") -> str:
    """The absolute path of a regular, readable file named by ``value`` (relative paths: against ``root``).

    Symbolic links are followed; ``file://`` URLs are read as paths; a relative path written with
    Windows backslashes (``img\\a.png``) that does not exist as written is tried with slashes. Raises
    :class:`CellError` with an accurate reason (``file not found``, ``symlink loop``, ``is a directory``,
    ``not a regular file: character device``, ``permission denied``, a URL, ...) and, with ``confine``,
    :class:`SchemaError` (prefixed by ``where``) for a path that resolves outside ``root``, through
    ``..``, an absolute path or a symbolic link alike.
    """
    text = _local_text(value)
    try:
        return _resolve(text, value, root, confine, where)
    except CellError as exc:
        if "\\" not in text or not exc.reason.startswith("file not found"):
            raise
        try:
            return _resolve(text.replace("\\", "/"), value, root, confine, where)
        except CellError:
            raise exc from None


# ------------------------------------------------------------------------------------------- cell forms
def _is_pil_image(value: Any) -> bool:
    from PIL import Image

    return isinstance(value, Image.Image)


def _wave_tuple(array: Any, rate: Any) -> tuple[np.ndarray, int]:
    """``(wave float32, sample_rate)`` from an in-memory wave, checked; ``(channels, samples)`` or
    ``(samples, channels)`` arrays are mixed down to mono (the shorter axis is the channels)."""
    try:
        raw = np.asarray(array)
        wave = raw.astype(np.float32)
    except (TypeError, ValueError) as exc:
        raise CellError(f"audio wave is not an array of numbers: {exc}") from None
    if np.issubdtype(raw.dtype, np.integer):  # PCM samples: scaled to [-1, 1] by their type's range
        wave /= float(np.iinfo(raw.dtype).max) + 1.0
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer | float) or rate != int(rate):
        raise CellError(f"audio sample rate is not a whole number: {rate!r:.40}")
    if wave.ndim == 2:
        wave = wave.mean(axis=int(np.argmin(wave.shape)))
    if wave.ndim != 1:
        raise CellError(f"audio wave must be 1-D (or channels x samples), got shape {wave.shape}")
    from modalfuse.modalities.audio import SAMPLE_RATE_RANGE

    lo, hi = SAMPLE_RATE_RANGE
    if not lo <= int(rate) <= hi:
        raise CellError(f"implausible sample rate {rate} Hz (expected {lo} to {hi:,} Hz)")
    if wave.size == 0:
        raise CellError("no audio samples")
    if not np.all(np.isfinite(wave)):
        raise CellError("non-finite samples (NaN or inf) in audio")
    return wave, int(rate)


def _from_mapping(value: Mapping, modality: str) -> Any:
    """A Hugging Face style cell: ``{"bytes", "path"}`` (bytes first, else the path), or for audio
    ``{"array", "sampling_rate"}``."""
    if modality == "audio" and value.get("array") is not None:
        return _wave_tuple(value["array"], value.get("sampling_rate"))
    data = value.get("bytes")
    if isinstance(data, bytes | bytearray | memoryview) and len(data):
        return bytes(data)
    path = value.get("path")
    if isinstance(path, str | os.PathLike) and str(path).strip():
        return os.fspath(path)
    keys = sorted(map(str, value))
    raise CellError(f"a dict cell with neither bytes nor a path (keys {keys})")


def media_cell(value: Any, modality: str) -> Any:
    """A non-missing image/audio cell in canonical form: a path string, ``bytes``, or an in-memory value.

    Raises :class:`CellError` for a value no form matches.
    """
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, Mapping):
        return _from_mapping(value, modality)
    if modality == "image":
        if isinstance(value, np.ndarray):
            return value
        if _is_pil_image(value):
            from modalfuse.modalities.image import pil_to_array

            try:
                return pil_to_array(value)
            except (OSError, ValueError) as exc:
                raise CellError(f"cannot read the PIL image: {exc}") from None
        expected = "bytes, an array or a PIL image"
    else:
        if isinstance(value, tuple) and len(value) == 2:
            return _wave_tuple(*value)
        expected = "bytes or a (wave, sample_rate) tuple"
    raise CellError(f"not a file path, {expected}: {type(value).__name__} {value!r:.40}")


# ------------------------------------------------------------------------------------------- decoding
def decode_media(value: Any, modality: str) -> np.ndarray | tuple[np.ndarray, int]:
    """Decode one image or audio cell (cached by content). Raises ``DecodeError``.

    ``value`` is a path, the bytes of a file, or an in-memory value (an image array, a PIL image, a
    ``(wave, sample_rate)`` tuple). Images come back as float32 ``(H, W, C)`` in [0, 1]; audio as
    ``(wave float32, sample_rate)`` at the file's own rate, mixed down to mono.
    """
    if modality == "image":
        from modalfuse.modalities.image import load_image

        if isinstance(value, np.ndarray) or _is_pil_image(value):
            return load_image(value)
        return active_cache().get_or_compute(("image", content_key(value)), lambda: load_image(value))
    if modality == "audio":
        from modalfuse.modalities.audio import load_audio

        if isinstance(value, tuple):  # (wave, sample_rate) given in memory
            try:
                return _wave_tuple(*value)
            except (CellError, TypeError) as exc:
                raise DecodeError(getattr(exc, "reason", str(exc))) from None
        return active_cache().get_or_compute(("audio", content_key(value)), lambda: load_audio(value))
    raise ValueError(f"not a media modality: {modality!r}")
