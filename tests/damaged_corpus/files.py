"""Makers of good and damaged image, audio and table files for the damaged-input corpus.

Every maker writes one file (or link) and returns its path. The damaged images claim a huge size in
their header (a "decompression bomb") without holding the pixels, except :func:`png_zlib_bomb`, which is a
real one: a 389 KB PNG that inflates to 400 MB.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

SR = 8000


# ------------------------------------------------------------------------------------------- good files
def png(path: Path, value: int = 128, size: tuple[int, int] = (12, 12), mode: str = "L") -> Path:
    rng = np.random.default_rng(value)
    arr = np.clip(rng.normal(value, 30, size=size), 0, 255).astype(np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def png_bytes(value: int = 128, size: tuple[int, int] = (12, 12)) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.full(size, value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def wav(
    path: Path, freq: float = 440.0, seconds: float = 0.25, subtype: str = "PCM_16", channels: int = 1
) -> Path:
    t = np.arange(int(SR * seconds)) / SR
    wave = 0.5 * np.sin(2 * np.pi * freq * t)
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    fmt = {".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower(), "WAV")
    sf.write(path, data, SR, subtype=subtype if fmt == "WAV" else None, format=fmt)
    return path


# ------------------------------------------------------------------------------------------- image bombs
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_header_bomb(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A PNG whose header claims ``width x height`` grey pixels, holding one row of them."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    return path


def png_zlib_bomb(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid PNG of ``width x height`` black grey pixels (400 MB decoded), a few hundred KB on disk.

    The zlib stream repeats one fully flushed deflate block of zeros (blocks after a full flush never
    refer back), so it is built in milliseconds; the Adler-32 of n zero bytes is ``(n % 65521) << 16 | 1``.
    """
    rows_per_block = 64
    block_raw = b"\x00" * ((width + 1) * rows_per_block)
    c = zlib.compressobj(9)
    first = c.compress(block_raw) + c.flush(zlib.Z_FULL_FLUSH)
    header, block = first[:2], first[2:]
    n_blocks, rest_rows = divmod(height, rows_per_block)
    tail = b""
    if rest_rows:
        t = zlib.compressobj(9)
        tail = (t.compress(b"\x00" * ((width + 1) * rest_rows)) + t.flush(zlib.Z_FULL_FLUSH))[2:]
    total = (width + 1) * height
    adler = ((total % 65521) << 16) | 1
    stream = header + block * n_blocks + tail + b"\x03\x00" + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", stream)
        + _png_chunk(b"IEND", b"")
    )
    return path


def tiff_header_bomb(path: Path, width: int = 100000, height: int = 100000) -> Path:
    """A little-endian TIFF whose IFD claims ``width x height`` 8-bit grey pixels in one 10-byte strip."""
    entries = [
        (256, 4, 1, width),  # ImageWidth, LONG
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample, SHORT
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: black is zero
        (273, 4, 1, 8 + 2 + 12 * 8 + 4),  # StripOffsets: just after the IFD
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, 10),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        ifd += struct.pack("<HHI", tag, kind, count) + (
            struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        )
    path.write_bytes(
        b"II*\x00" + struct.pack("<I", 8) + ifd[:2] + ifd[2:] + struct.pack("<I", 0) + b"\x00" * 10
    )
    return path


def gif_header_bomb(path: Path, width: int = 65535, height: int = 65535) -> Path:
    """A GIF whose logical screen and only frame claim ``width x height`` pixels."""
    screen = b"GIF89a" + struct.pack("<HH", width, height) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHH", 0, 0, width, height) + b"\x00" + b"\x02\x02\x44\x01\x00"
    path.write_bytes(screen + frame + b"\x3b")
    return path


def bmp_header_bomb(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A 24-bit BMP whose header claims ``width x height`` pixels, holding 64 bytes of them."""
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    pixels = b"\x00" * 64
    head = b"BM" + struct.pack("<IHHI", 14 + len(dib) + len(pixels), 0, 0, 14 + len(dib))
    path.write_bytes(head + dib + pixels)
    return path


def jpeg_header_bomb(path: Path, width: int = 65500, height: int = 65500) -> Path:
    """A baseline JPEG whose frame header claims ``width x height`` grey pixels, with no scan data."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00\x00\x3f\x00"
    path.write_bytes(b"\xff\xd8" + sof + sos + b"\x00" * 16 + b"\xff\xd9")
    return path


def webp_header_bomb(path: Path, width: int = 16384, height: int = 16384) -> Path:
    """A lossless WebP whose VP8L header claims ``width x height`` pixels, followed by junk."""
    bits = (width - 1) | ((height - 1) << 14)  # 14 bits each, then alpha and version bits (0)
    vp8l = b"\x2f" + struct.pack("<I", bits) + b"\x00" * 32
    chunk = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk)
    return path


def png_zero_width(path: Path) -> Path:
    ihdr = struct.pack(">IIBBBBB", 0, 8, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b""))
        + _png_chunk(b"IEND", b"")
    )
    return path


# ------------------------------------------------------------------------------------------- damaged audio
def _wav_header(data_size: int, rate: int = SR, channels: int = 1, bits: int = 16) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    riff_size = 4 + 8 + len(fmt) + 8 + (data_size if data_size != 0xFFFFFFFF else 0)
    return (
        b"RIFF"
        + struct.pack("<I", min(riff_size, 0xFFFFFFFF))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_size)
    )


def wav_giant_header(path: Path) -> Path:
    """A WAV whose data chunk claims 2 GB of audio; the file holds 0.1 s."""
    samples = (0.3 * 32767 * np.sin(np.arange(800) * 0.2)).astype("<i2").tobytes()
    path.write_bytes(_wav_header(0x7FFFFFF0) + samples)
    return path


def wav_streamed_size(path: Path) -> Path:
    """A WAV written by a streaming recorder: data size 0xFFFFFFFF ("unknown"), 0.25 s of audio present."""
    samples = (0.3 * 32767 * np.sin(np.arange(2000) * 0.2)).astype("<i2").tobytes()
    path.write_bytes(_wav_header(0xFFFFFFFF) + samples)
    return path


def wav_rate(path: Path, rate: int) -> Path:
    """A valid PCM WAV at an arbitrary (implausible) sample rate."""
    samples = (0.3 * 32767 * np.sin(np.arange(2000) * 0.2)).astype("<i2").tobytes()
    path.write_bytes(_wav_header(len(samples), rate=rate) + samples)
    return path


def flac_lying_length(path: Path) -> Path:
    """A valid FLAC whose STREAMINFO claims 2**36 - 1 samples (about 2.4 years at 8 kHz)."""
    wav(path, seconds=0.25)
    data = bytearray(path.read_bytes())
    # STREAMINFO body starts at 8; bytes 10..17 of it hold rate(20) channels(3) bps(5) total(36)
    body = 8
    packed = int.from_bytes(data[body + 10 : body + 18], "big")
    packed |= (1 << 36) - 1
    data[body + 10 : body + 18] = packed.to_bytes(8, "big")
    path.write_bytes(bytes(data))
    return path


def float_wav(path: Path, values: np.ndarray) -> Path:
    sf.write(path, values.astype(np.float32), SR, subtype="FLOAT")
    return path


def corrupt_flac(path: Path) -> Path:
    wav(path, seconds=0.5)
    data = path.read_bytes()
    path.write_bytes(data[:60] + b"\x00" * 400 + data[460:])
    return path


def truncated(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


# ------------------------------------------------------------------------------------------- odd but valid
def empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def text_file(path: Path, text: str = "this is not an image or a sound\n") -> Path:
    path.write_text(text)
    return path


def random_bytes(path: Path, n: int = 3000) -> Path:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes())
    return path


def png_16_bit(path: Path) -> Path:
    Image.fromarray(np.arange(144, dtype=np.uint16).reshape(12, 12) * 400).save(path)
    return path


def png_palette_transparent(path: Path) -> Path:
    img = Image.new("P", (12, 12))
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (3, 3, 9, 9))
    img.save(path, transparency=0)
    return path


def jpeg_cmyk(path: Path) -> Path:
    Image.new("CMYK", (12, 12), (10, 200, 30, 40)).save(path)
    return path


def gif_animated(path: Path) -> Path:
    Image.new("L", (12, 12)).save(path, save_all=True, append_images=[Image.new("L", (12, 12), 200)])
    return path


def png_1x1(path: Path) -> Path:
    Image.new("L", (1, 1), 90).save(path)
    return path
