"""Tests for modalfuse.modalities.image, on real image files written with Pillow."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modalfuse._errors import DecodeError
from modalfuse.modalities import (
    IMAGE_EXTENSIONS,
    augment_images,
    flip_image,
    hog_features,
    image_quality,
    load_image,
    preprocess_image,
    rotate_image,
)


def test_extensions() -> None:
    assert {".png", ".jpg", ".jpeg", ".webp", ".tiff"} <= IMAGE_EXTENSIONS


# ----------------------------------------------------------------------------- load_image: errors
def test_missing_path_raises(tmp_path) -> None:
    path = tmp_path / "nope.png"
    with pytest.raises(DecodeError, match="file not found") as info:
        load_image(path)
    assert info.value.path == str(path)
    assert info.value.reason == "file not found"


def test_zero_byte_file_raises(tmp_path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(DecodeError, match=r"empty file \(0 bytes\)"):
        load_image(path)


def test_text_named_png_raises(tmp_path) -> None:
    path = tmp_path / "x.png"
    path.write_text("this is definitely not a picture\n")
    with pytest.raises(DecodeError, match="not a valid PNG image") as info:
        load_image(path)
    assert info.value.path == str(path)


@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("JPEG", ".jpg")])
def test_truncated_image_raises(tmp_path, fmt: str, suffix: str) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    path = tmp_path / f"cut{suffix}"
    Image.fromarray(pixels).save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match="truncated or corrupt"):
        load_image(path)


# ----------------------------------------------------------------------------- load_image: modes
def test_grey_png_exact_values(tmp_path) -> None:
    pixels = np.array([[0, 51, 255], [102, 204, 153]], dtype=np.uint8)
    path = tmp_path / "g.png"
    Image.fromarray(pixels).save(path)
    img = load_image(path)
    assert img.shape == (2, 3, 1)
    assert img.dtype == np.float32
    np.testing.assert_allclose(img[:, :, 0], pixels / 255.0, atol=1e-7)
    rgb = load_image(path, mode="RGB")
    assert rgb.shape == (2, 3, 3)
    np.testing.assert_allclose(rgb[:, :, 2], pixels / 255.0, atol=1e-7)


def test_rgb_to_grey_uses_luma(tmp_path) -> None:
    pixels = np.zeros((1, 3, 3), dtype=np.uint8)
    pixels[0, 0] = (255, 0, 0)
    pixels[0, 1] = (0, 255, 0)
    pixels[0, 2] = (0, 0, 255)
    path = tmp_path / "c.bmp"
    Image.fromarray(pixels).save(path)
    grey = load_image(path, mode="L")
    np.testing.assert_allclose(grey[0, :, 0], [0.299, 0.587, 0.114], atol=1e-6)


def test_rgba_composited_on_white(tmp_path) -> None:
    pixels = np.zeros((1, 3, 4), dtype=np.uint8)
    pixels[0, 0] = (255, 0, 0, 255)  # opaque red
    pixels[0, 1] = (0, 0, 0, 0)  # fully transparent -> white
    pixels[0, 2] = (0, 0, 0, 51)  # 20 % black over white -> 0.8
    path = tmp_path / "rgba.png"
    Image.fromarray(pixels, mode="RGBA").save(path)
    img = load_image(path)
    assert img.shape == (1, 3, 3)
    np.testing.assert_allclose(img[0, 0], [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(img[0, 1], [1.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(img[0, 2], [0.8, 0.8, 0.8], atol=1e-6)


def test_palette_image_expanded(tmp_path) -> None:
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    path = tmp_path / "pal.gif"
    pal.save(path)
    img = load_image(path)
    assert img.shape == (1, 2, 3)
    np.testing.assert_allclose(img[0, 0], [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(img[0, 1], [0.0, 0.0, 1.0], atol=1e-6)


def test_palette_with_transparency(tmp_path) -> None:
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    path = tmp_path / "palt.png"
    pal.save(path, transparency=0)
    img = load_image(path)
    np.testing.assert_allclose(img[0, 0], [1.0, 1.0, 1.0], atol=1e-6)  # transparent -> white
    np.testing.assert_allclose(img[0, 1], [0.0, 1.0, 0.0], atol=1e-6)


def test_sixteen_bit_png(tmp_path) -> None:
    pixels = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(pixels).save(path)
    img = load_image(path)
    assert img.shape == (2, 2, 1)
    np.testing.assert_allclose(img[:, :, 0], pixels / 65535.0, atol=1e-6)


def test_cmyk_jpeg_becomes_rgb(tmp_path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (4, 4), (0, 0, 0, 0)).save(path, quality=95)
    img = load_image(path)
    assert img.shape == (4, 4, 3)
    assert img.min() > 0.95  # no ink = white


def test_jpeg_round_trip_close(tmp_path) -> None:
    pixels = np.full((8, 8, 3), (200, 100, 50), dtype=np.uint8)
    path = tmp_path / "flat.jpeg"
    Image.fromarray(pixels).save(path, quality=95)
    img = load_image(path)
    np.testing.assert_allclose(img[4, 4], np.array([200, 100, 50]) / 255.0, atol=0.03)


def test_array_sources() -> None:
    u8 = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    out = load_image(u8)
    assert out.shape == (2, 2, 1)
    np.testing.assert_allclose(out[:, :, 0], u8 / 255.0, atol=1e-7)
    fl = np.array([[-0.5, 0.25], [1.5, 1.0]], dtype=np.float64)
    np.testing.assert_allclose(load_image(fl)[:, :, 0], [[0.0, 0.25], [1.0, 1.0]])
    with pytest.raises(DecodeError, match="non-finite"):
        load_image(np.array([[np.nan]], dtype=np.float32))
    with pytest.raises(DecodeError, match="shape"):
        load_image(np.zeros((2, 2, 5)))


# ------------------------------------------------------------------------------ preprocessing
def test_preprocess_layout_channels_and_normalisation() -> None:
    img = np.full((4, 6, 1), 0.75, dtype=np.float32)
    out = preprocess_image(img, channels=3, mean=0.5, std=0.25)
    assert out.shape == (3, 4, 6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 1.0)
    per_channel = preprocess_image(img, channels=3, mean=[0.5, 0.25, 0.75], std=[0.25, 0.5, 1.0])
    np.testing.assert_allclose(per_channel[:, 0, 0], [1.0, 1.0, 0.0])
    rgb = np.zeros((2, 2, 3), dtype=np.float32)
    rgb[..., 1] = 1.0
    np.testing.assert_allclose(preprocess_image(rgb, channels=1), 0.587, atol=1e-6)
    with pytest.raises(ValueError, match="3 channels"):
        preprocess_image(img, channels=3, mean=[0.1, 0.2])


def test_preprocess_resize() -> None:
    const = np.full((10, 7, 1), 0.3, dtype=np.float32)
    out = preprocess_image(const, size=(5, 9))
    assert out.shape == (1, 5, 9)
    np.testing.assert_allclose(out, 0.3, atol=1e-6)
    # a left-dark / right-bright image keeps its symmetric step when halved
    step = np.zeros((4, 4), dtype=np.float32)
    step[:, 2:] = 1.0
    half = preprocess_image(step, size=(2, 2))[0]
    np.testing.assert_allclose(half[:, 0] + half[:, 1], 1.0, atol=1e-6)
    assert half[0, 0] < 0.25 < 0.75 < half[0, 1]
    # antialiasing: a one-pixel checkerboard halves to roughly its mean (0.25), not to 0 or 1
    checker = np.zeros((8, 8), dtype=np.float32)
    checker[::2, ::2] = 1.0
    small = preprocess_image(checker, size=(4, 4))
    assert np.all(np.abs(small[0, 1:-1, 1:-1] - 0.25) < 0.05)


def test_preprocess_from_path(tmp_path) -> None:
    path = tmp_path / "p.png"
    Image.fromarray(np.full((3, 3), 255, dtype=np.uint8)).save(path)
    np.testing.assert_allclose(preprocess_image(str(path), size=(2, 2)), 1.0)


def test_rotate_known_pattern() -> None:
    pattern = np.arange(6, dtype=np.float32).reshape(1, 2, 3)  # [[0, 1, 2], [3, 4, 5]]
    ccw = rotate_image(pattern, 90)
    np.testing.assert_array_equal(ccw[0], [[2, 5], [1, 4], [0, 3]])
    cw = rotate_image(pattern, -90)
    np.testing.assert_array_equal(cw[0], [[3, 0], [4, 1], [5, 2]])
    np.testing.assert_array_equal(rotate_image(pattern, 270), cw)
    np.testing.assert_array_equal(rotate_image(pattern, 180)[0], [[5, 4, 3], [2, 1, 0]])
    np.testing.assert_array_equal(rotate_image(pattern, 360), pattern)
    tilted = rotate_image(np.ones((2, 9, 9), dtype=np.float32), 45)
    assert tilted.shape == (2, 9, 9)
    assert tilted[0, 4, 4] == pytest.approx(1.0)
    assert tilted[0, 0, 0] == pytest.approx(0.0)


def test_flip() -> None:
    pattern = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    np.testing.assert_array_equal(flip_image(pattern)[0], [[2, 1, 0], [5, 4, 3]])
    np.testing.assert_array_equal(flip_image(pattern, horizontal=False)[0], [[3, 4, 5], [0, 1, 2]])


# ------------------------------------------------------------------------------ augmentation
def test_augment_images_deterministic() -> None:
    batch = torch.rand(6, 1, 16, 20, generator=torch.Generator().manual_seed(5))
    a = augment_images(batch, generator=torch.Generator().manual_seed(0), hflip=True)
    b = augment_images(batch, generator=torch.Generator().manual_seed(0), hflip=True)
    c = augment_images(batch, generator=torch.Generator().manual_seed(1), hflip=True)
    assert a.shape == batch.shape
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # samples get different transforms
    same = augment_images(batch[:1].repeat(4, 1, 1, 1), generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(same[0], same[1])


def test_augment_images_identity_and_flip() -> None:
    batch = torch.rand(3, 2, 8, 8)
    ident = augment_images(batch, generator=torch.Generator(), max_rotate=0, max_shift=0, max_scale=0)
    torch.testing.assert_close(ident, batch, atol=1e-5, rtol=0)
    out = augment_images(
        batch, generator=torch.Generator().manual_seed(3), max_rotate=0, max_shift=0, max_scale=0, hflip=True
    )
    for i in range(3):
        flipped = torch.allclose(out[i], batch[i].flip(-1), atol=1e-5)
        kept = torch.allclose(out[i], batch[i], atol=1e-5)
        assert flipped or kept


def test_augment_images_shift_moves_content() -> None:
    img = torch.zeros(1, 1, 20, 20)
    img[0, 0, 8:12, 8:12] = 1.0
    out = augment_images(
        img, generator=torch.Generator().manual_seed(0), max_rotate=0, max_scale=0, max_shift=0.3
    )
    assert out.sum().item() == pytest.approx(16.0, rel=0.05)  # mass kept (bilinear shift, no zoom)
    ys, xs = torch.nonzero(out[0, 0] > 0.5, as_tuple=True)
    assert (ys.float().mean().item(), xs.float().mean().item()) != pytest.approx((9.5, 9.5), abs=0.5)


# ------------------------------------------------------------------------------ features, quality
def test_hog_features_shape_and_orientation() -> None:
    img = np.zeros((2, 1, 16, 16), dtype=np.float32)
    img[0, 0, :, 8:] = 1.0  # vertical edge -> horizontal gradient -> orientation 0 deg
    img[1, 0, 8:, :] = 1.0  # horizontal edge -> vertical gradient -> orientation 90 deg
    feats = hog_features(img, cell=4, bins=9)
    assert feats.shape == (2, 4 * 4 * 9)
    assert feats.dtype == np.float32
    cells = feats.reshape(2, 4, 4, 9)
    # the cells that contain the edge vote into bins around 0 deg (bins 0 and 8) and 90 deg (bin 4)
    vertical = cells[0, :, 1:3].sum(axis=(0, 1))
    horizontal = cells[1, 1:3, :].sum(axis=(0, 1))
    assert vertical[[0, 8]].sum() > 0.99 * vertical.sum()
    assert np.argmax(horizontal) == 4
    assert np.all(np.linalg.norm(cells, axis=-1) <= 1.0 + 1e-5)
    np.testing.assert_allclose(cells[0, 0, 0], 0.0)  # flat cell
    rgb = np.repeat(img, 3, axis=1)
    np.testing.assert_allclose(hog_features(rgb), feats, atol=1e-6)


def test_image_quality_orders_images() -> None:
    checker = np.indices((16, 16)).sum(axis=0) % 2
    sharp = checker[None].astype(np.float32)
    flat = np.full((1, 16, 16), 0.5, dtype=np.float32)
    ramp = np.tile(np.linspace(0.45, 0.55, 16, dtype=np.float32), (16, 1))[None]
    q_sharp, q_flat, q_ramp = image_quality(sharp), image_quality(flat), image_quality(ramp)
    assert q_sharp > 0.95
    assert q_flat == 0.0
    assert 0.0 <= q_ramp < 0.1


# ----------------------------------------------------------------------------- pixel budget, input forms
def test_decompression_bomb_is_refused_before_decoding(tmp_path) -> None:
    """A 394 KB PNG of 20000 x 20000 pixels (400 MB decoded): refused from its header, nothing allocated."""
    import resource

    from damaged_corpus.files import png_zlib_bomb

    path = png_zlib_bomb(tmp_path / "bomb.png")
    assert path.stat().st_size < 1_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(DecodeError) as info:
        load_image(path)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert info.value.path == str(path)
    assert info.value.reason.startswith("PNG image too large: 20000x20000 = 400,000,000 pixels")
    assert "over the pixel budget of 67,108,864" in info.value.reason
    assert grown_mib < 50  # decoding would have taken 400 MB (1.6 GB as float32)
    with pytest.raises(DecodeError, match="20000x20000"):  # the same bytes in memory
        load_image(path.read_bytes())


@pytest.mark.parametrize(
    ("maker", "suffix", "size"),
    [
        ("png_header_bomb", ".png", "30000x30000"),
        ("tiff_header_bomb", ".tif", "100000x100000"),
        ("gif_header_bomb", ".gif", "65535x65535"),
        ("bmp_header_bomb", ".bmp", "30000x30000"),
        ("jpeg_header_bomb", ".jpg", "65500x65500"),
        ("webp_header_bomb", ".webp", "268,435,456 pixels"),
    ],
)
def test_every_format_checks_the_pixel_budget(tmp_path, maker: str, suffix: str, size: str) -> None:
    from damaged_corpus import files

    path = getattr(files, maker)(tmp_path / f"big{suffix}")
    with pytest.raises(DecodeError, match="too large") as info:
        load_image(path)
    assert size in info.value.reason and "pixel budget" in info.value.reason


def test_pixel_budget_is_configurable(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modalfuse.modalities import image

    path = tmp_path / "wide.png"
    Image.fromarray(np.zeros((100, 300), np.uint8)).save(path)
    assert load_image(path).shape == (100, 300, 1)  # 30,000 pixels: within the default budget
    with pytest.raises(DecodeError, match=r"300x100 = 30,000 pixels, over the pixel budget of 20,000"):
        load_image(path, max_pixels=20_000)
    monkeypatch.setenv("MODALFUSE_MAX_IMAGE_PIXELS", "29_999")
    assert image.pixel_budget() == 29_999
    with pytest.raises(DecodeError, match="budget of 29,999"):
        load_image(path)
    monkeypatch.delenv("MODALFUSE_MAX_IMAGE_PIXELS")
    monkeypatch.setattr(image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DecodeError, match="budget of 1,000"):
        load_image(path)
    assert load_image(path, max_pixels=30_000).shape == (100, 300, 1)


def test_bytes_and_pil_sources(tmp_path) -> None:
    import io

    rgb = np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    np.testing.assert_allclose(load_image(buffer.getvalue()), rgb / 255.0, atol=1e-6)
    np.testing.assert_allclose(load_image(Image.fromarray(rgb)), rgb / 255.0, atol=1e-6)
    grey16 = Image.fromarray(np.full((3, 3), 65535, np.uint16))
    np.testing.assert_allclose(load_image(grey16), 1.0)
    palette = Image.new("P", (2, 2))
    palette.putpalette([255, 0, 0] + [0] * 765)
    np.testing.assert_allclose(load_image(palette)[0, 0], [1.0, 0.0, 0.0])
    with pytest.raises(DecodeError, match="not a valid in-memory image: unknown format"):
        load_image(b"\x00\x01 not an image")
    with pytest.raises(DecodeError, match="empty image bytes"):
        load_image(b"")
