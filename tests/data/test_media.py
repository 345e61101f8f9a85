"""Tests of media cells: what a path points at, the forms a cell may take, decoding by content."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from damaged_corpus.files import png, png_bytes, wav
from modalfuse._errors import DecodeError, SchemaError
from modalfuse.data._media import CellError, decode_media, media_cell, media_kind_of_bytes, resolve_media_path


def reason(value: str, root: Path, **kwargs: object) -> str:
    with pytest.raises(CellError) as info:
        resolve_media_path(value, root, **kwargs)
    return info.value.reason


def test_paths_resolve_to_regular_files(tmp_path: Path) -> None:
    png(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    assert resolve_media_path("a.png", tmp_path) == str((tmp_path / "a.png").resolve())
    assert resolve_media_path(" sub/../a.png ", tmp_path) == str((tmp_path / "a.png").resolve())
    assert resolve_media_path(str(tmp_path / "a.png"), Path("/")) == str((tmp_path / "a.png").resolve())


def test_accurate_reasons(tmp_path: Path) -> None:
    png(tmp_path / "a.png")
    os.symlink("loop2", tmp_path / "loop1")
    os.symlink("loop1", tmp_path / "loop2")
    os.symlink("/dev/zero", tmp_path / "zero.png")
    os.symlink(tmp_path, tmp_path / "dir.png")
    os.symlink(tmp_path / "gone.png", tmp_path / "broken.png")
    os.mkfifo(tmp_path / "pipe.wav")
    assert reason("loop1", tmp_path) == f"symlink loop: {tmp_path / 'loop1'}"
    assert reason("zero.png", tmp_path) == "not a regular file: character device: /dev/zero"
    assert reason("dir.png", tmp_path) == f"is a directory, not a file: {tmp_path.resolve()}"
    assert reason("broken.png", tmp_path) == (
        f"broken symbolic link: {tmp_path / 'broken.png'} points to {tmp_path / 'gone.png'}, which does not exist"
    )
    assert reason("pipe.wav", tmp_path).startswith("not a regular file: named pipe (FIFO)")  # never opened
    assert reason("nowhere.png", tmp_path) == f"file not found: {(tmp_path / 'nowhere.png').resolve()}"
    assert reason("a.png/x.png", tmp_path).startswith("file not found (a part of the path is not a folder)")
    assert (
        reason("x" * 5000 + ".png", tmp_path)
        == f"file name too long ({len(str(tmp_path)) + 5005} characters)"
    )
    assert reason("a\x00.png", tmp_path).startswith("invalid path")
    assert reason("https://example.com/a.png", tmp_path).startswith("a URL, not a local file")
    assert reason("s3://bucket/a.wav", tmp_path).startswith("a URL")


def test_confine_covers_dotdot_absolute_and_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    png(tmp_path / "secret.png")
    png(root / "ok.png")
    os.symlink(tmp_path / "secret.png", root / "inside.png")
    os.symlink(root / "ok.png", root / "alias.png")
    assert resolve_media_path("alias.png", root, confine=True) == str((root / "ok.png").resolve())
    for value in ("../secret.png", str(tmp_path / "secret.png"), "inside.png", "~/../../" + str(tmp_path)):
        with pytest.raises(
            SchemaError, match=r"t\.csv: row 2: path .* escapes the table's folder .*confine=True"
        ):
            resolve_media_path(value, root, confine=True, where="t.csv: row 2: ")
    assert resolve_media_path("inside.png", root) == str((tmp_path / "secret.png").resolve())  # opt-in


def test_magic_numbers(tmp_path: Path) -> None:
    assert media_kind_of_bytes(png_bytes()) == "image"
    for fmt in ("JPEG", "GIF", "BMP", "TIFF", "WEBP"):
        path = tmp_path / f"x.{fmt.lower()}"
        Image.new("RGB", (4, 4)).save(path, format=fmt)
        assert media_kind_of_bytes(path.read_bytes()) == "image", fmt
    for suffix in (".wav", ".flac", ".ogg"):
        assert media_kind_of_bytes(wav(tmp_path / f"a{suffix}").read_bytes()) == "audio", suffix
    assert media_kind_of_bytes(b"hello world") is None
    assert media_kind_of_bytes(b"") is None


def test_cell_forms() -> None:
    data = png_bytes()
    assert media_cell(Path("a.png"), "image") == "a.png"
    assert media_cell(bytearray(data), "image") == data
    assert media_cell({"bytes": data, "path": "x.png"}, "image") == data  # bytes first
    assert media_cell({"bytes": None, "path": "x.png"}, "image") == "x.png"
    assert media_cell({"bytes": b"", "path": Path("y.png")}, "audio") == "y.png"
    with pytest.raises(CellError, match=r"neither bytes nor a path \(keys \['bytes', 'path'\]\)"):
        media_cell({"bytes": None, "path": None}, "image")
    pil = Image.fromarray(np.full((3, 2), 7, np.uint8))
    np.testing.assert_array_equal(media_cell(pil, "image"), np.full((3, 2), 7, np.uint8))
    wave, sr = media_cell({"array": [0.0, 0.5, -0.5], "sampling_rate": 16000, "path": None}, "audio")
    assert sr == 16000 and wave.dtype == np.float32 and wave.tolist() == [0.0, 0.5, -0.5]
    stereo, _ = media_cell((np.ones((100, 2)), 8000), "audio")  # (samples, channels): mixed down
    assert stereo.shape == (100,)
    for bad, match in [
        ((np.zeros(10), 0), "implausible sample rate 0 Hz"),
        ((np.zeros(10), 8000.5), "not a whole number"),
        ((np.zeros(0), 8000), "no audio samples"),
        ((np.array([np.nan]), 8000), "non-finite"),
        ((np.zeros((2, 2, 2)), 8000), "must be 1-D"),
        (({"array": [0.1]}), "not a whole number"),
    ]:
        with pytest.raises(CellError, match=match):
            media_cell(bad, "audio")
    with pytest.raises(CellError, match="not a file path, bytes, an array or a PIL image: int 3"):
        media_cell(3, "image")


def test_decode_by_content(tmp_path: Path) -> None:
    from modalfuse._cache import default_cache

    default_cache.clear()
    data = png_bytes(value=200, size=(3, 5))
    first = decode_media(data, "image")
    assert first.shape == (3, 5, 1) and np.allclose(first, 200 / 255)
    decode_media(bytes(data), "image")
    assert (default_cache.misses, default_cache.hits) == (1, 1)  # the same bytes: decoded once
    sound = wav(tmp_path / "a.wav").read_bytes()
    wave, sr = decode_media(sound, "audio")
    assert sr == 8000 and wave.shape == (2000,)
    with pytest.raises(DecodeError, match="implausible sample rate"):
        decode_media((np.zeros(10, np.float32), 5), "audio")


def test_file_urls_and_windows_separators(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    png(tmp_path / "img" / "a b.png")
    target = str((tmp_path / "img" / "a b.png").resolve())
    assert resolve_media_path((tmp_path / "img" / "a b.png").as_uri(), Path("/")) == target  # file:// URL
    assert resolve_media_path("img\\a b.png", tmp_path) == target  # written on Windows
    assert reason("img\\gone.png", tmp_path).startswith("file not found")


def test_integer_waves_are_scaled() -> None:
    wave, _ = media_cell((np.array([0, 16384, -32768], np.int16), 8000), "audio")
    np.testing.assert_allclose(wave, [0.0, 0.5, -1.0])
