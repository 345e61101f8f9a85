"""Image modality: loading, preprocessing, augmentation, classical features and quality.

Conventions
-----------
* A loaded image is a ``float32`` array of shape ``(H, W, C)`` with values in ``[0, 1]``
  (``C = 1`` for grey, ``3`` for RGB), as returned by :func:`load_image`.
* A preprocessed image is a ``float32`` array of shape ``(C, H, W)`` (channels first, as PyTorch
  expects), as returned by :func:`preprocess_image`; the numpy helpers :func:`rotate_image`,
  :func:`flip_image` and :func:`image_quality` work on that layout.
* Batches are ``(N, C, H, W)``.

``torch`` is imported lazily inside :func:`augment_images` only.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from modalfuse._errors import DecodeError

if TYPE_CHECKING:
    import torch

__all__ = [
    "IMAGE_EXTENSIONS",
    "IMAGE_QUALITY_SCORES",
    "MAX_IMAGE_PIXELS",
    "augment_images",
    "flip_image",
    "hog_features",
    "image_quality",
    "image_quality_scores",
    "load_image",
    "pil_to_array",
    "pixel_budget",
    "preprocess_image",
    "rotate_image",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
)

# ITU-R BT.601 luma weights (the ones Pillow uses for RGB -> "L").
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})

ImageSource = str | os.PathLike[str] | np.ndarray | bytes | Image.Image

#: Pixel budget of :func:`load_image` (width x height of the first frame): 8192 x 8192 = 67,108,864 pixels,
#: enough for a 50-megapixel photo and below Pillow's own decompression-bomb warning (about 89 million);
#: an RGB image at the budget takes about 0.8 GB once converted to float32.
#: The header is read first and a larger image is refused before any pixel is decoded, so a
#: "decompression bomb" (a small file that claims to be 20000 x 20000) costs nothing. Change it per call
#: (``max_pixels=``), for the process (assign this attribute) or with the environment variable
#: ``MODALFUSE_MAX_IMAGE_PIXELS``. A budget above ``2 * PIL.Image.MAX_IMAGE_PIXELS`` also needs Pillow's
#: limit raised.
MAX_IMAGE_PIXELS: int = 8192 * 8192

_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def _composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Blend ``rgb`` (H, W, C) in [0, 1] over a white background using ``alpha`` (H, W, 1)."""
    return rgb * alpha + (1.0 - alpha)


def _pil_to_float(img: Image.Image) -> np.ndarray:
    """Convert a decoded Pillow image of any mode to float32 (H, W, 1|3) in [0, 1].

    Grey modes (1-bit, 8/16/32-bit integer, float) stay single-channel; everything else
    (palette, RGBA, CMYK, YCbCr, LAB, HSV, ...) becomes RGB. Transparency is composited over a
    white background.
    """
    mode = img.mode
    if mode == "P" or mode == "PA":
        # Palette images may carry transparency in their info dict; RGBA keeps it.
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("LA", "La"):
        arr = np.asarray(img.convert("LA"), dtype=np.float32) / 255.0
        return _composite_on_white(arr[..., :1], arr[..., 1:2]).astype(np.float32)
    if mode in ("RGBA", "RGBa"):
        arr = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        return _composite_on_white(arr[..., :3], arr[..., 3:4]).astype(np.float32)
    if mode == "1":
        arr = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    elif mode == "L":
        arr = np.asarray(img, dtype=np.float32) / 255.0
    elif mode.startswith("I;16") or mode == "I":
        # 16-bit grey (Pillow may expose 16-bit PNGs as "I;16" or "I"); scale by the 16-bit range.
        arr = np.asarray(img, dtype=np.float32) / 65535.0
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        if np.nanmax(arr, initial=0.0) > 1.0:
            arr = arr / 255.0
    elif mode == "RGB":
        arr = np.asarray(img, dtype=np.float32) / 255.0
    else:  # CMYK, YCbCr, LAB, HSV, RGBX, ...
        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.clip(arr, 0.0, 1.0).astype(np.float32, copy=False)


def _array_to_float(arr: np.ndarray) -> np.ndarray:
    """Convert an in-memory array (H, W) or (H, W, 1|3|4) to float32 (H, W, 1|3) in [0, 1]."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise DecodeError(
            f"image array must have shape (H, W) or (H, W, C) with C in (1, 3, 4), got {a.shape}"
        )
    if a.dtype == np.bool_:
        out = a.astype(np.float32)
    elif a.dtype == np.uint8:
        out = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        out = a.astype(np.float32) / 65535.0
    elif np.issubdtype(a.dtype, np.integer):
        out = np.clip(a, 0, 255).astype(np.float32) / 255.0
    elif np.issubdtype(a.dtype, np.floating):
        out = a.astype(np.float32)
        if not np.all(np.isfinite(out)):
            raise DecodeError("image array contains non-finite values (NaN/inf)")
        out = np.clip(out, 0.0, 1.0)
    else:
        raise DecodeError(f"unsupported image array dtype {a.dtype}")
    if out.shape[2] == 4:
        out = _composite_on_white(out[..., :3], out[..., 3:4])
    return np.ascontiguousarray(out, dtype=np.float32)


def _to_mode(arr: np.ndarray, mode: Literal["L", "RGB"] | None) -> np.ndarray:
    """Convert a float (H, W, 1|3) image to the requested colour mode."""
    if mode is None:
        return arr
    if mode == "L":
        if arr.shape[2] == 3:
            return (arr @ _LUMA)[:, :, None].astype(np.float32)
        return arr
    if mode == "RGB":
        if arr.shape[2] == 1:
            return np.repeat(arr, 3, axis=2)
        return arr
    raise ValueError(f"mode must be 'L', 'RGB' or None, got {mode!r}")


def pixel_budget(max_pixels: int | None = None) -> int:
    """The pixel budget in force: ``max_pixels`` when given, else ``MODALFUSE_MAX_IMAGE_PIXELS`` from the
    environment, else :data:`MAX_IMAGE_PIXELS`."""
    if max_pixels is not None:
        return int(max_pixels)
    env = os.environ.get("MODALFUSE_MAX_IMAGE_PIXELS", "").strip().replace("_", "")
    if env.isdigit():
        return int(env)
    return int(MAX_IMAGE_PIXELS)


def pil_to_array(img: Image.Image) -> np.ndarray:
    """A decoded Pillow image as a compact array that :func:`load_image` accepts.

    Grey and RGB images stay ``uint8`` (``(H, W)`` or ``(H, W, 3)``), 16-bit grey ``uint16``, images
    with transparency (palette, LA, RGBA) ``uint8`` RGBA (composited over white when loaded), 32-bit
    integer and float images float32 in [0, 1]; other modes (CMYK, YCbCr, LAB, ...) become RGB. The EXIF
    orientation is applied, as for files.
    """
    try:
        img = ImageOps.exif_transpose(img) or img
    except Exception:  # a broken EXIF block must not hide the pixels
        pass
    mode = img.mode
    if mode in ("L", "RGB"):
        return np.array(img)
    if mode == "1":
        return np.array(img.convert("L"))
    if mode.startswith("I;16"):
        return np.array(img, dtype=np.uint16)
    if mode in ("P", "PA", "LA", "La", "RGBA", "RGBa"):
        return np.array(img.convert("RGBA"))
    if mode in ("I", "F"):
        return _pil_to_float(img)
    return np.array(img.convert("RGB"))


def _too_large(pixels: int, size: str, budget: int, kind: str) -> DecodeError:
    return DecodeError(
        f"{kind} image too large: {size}{pixels:,} pixels, over the pixel budget of {budget:,} "
        "(not decoded; raise it with MODALFUSE_MAX_IMAGE_PIXELS or modalfuse.modalities.image.MAX_IMAGE_PIXELS)"
    )


def _header_size(fp: str | io.BytesIO) -> tuple[int, int] | None:
    """Width and height as the header states them, read by the matching Pillow plugin (the classes
    registered in ``PIL.Image.OPEN``) without decoding, for the message about an image Pillow refused."""
    try:
        with open(fp, "rb") if isinstance(fp, str) else contextlib.nullcontext(fp) as f:
            f.seek(0)
            prefix = f.read(16)
            for fmt in Image.ID:
                factory, accept = Image.OPEN[fmt]
                if accept is not None and not accept(prefix):
                    continue
                f.seek(0)
                try:
                    return factory(f, None).size
                except Exception:  # not this plugin's format after all
                    continue
    except OSError:
        pass
    return None


def _open_within_budget(fp: str | io.BytesIO, budget: int, kind: str) -> Image.Image:
    """``Image.open`` (reads the header only), then the pixel budget, before anything is decoded."""
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb warning: the budget below reports the same thing as a problem
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fp)
    except Image.DecompressionBombError as exc:  # over twice Pillow's own limit: refused in the header
        found = _BOMB_PIXELS.search(str(exc))
        pixels = int(found.group(1)) if found else 0
        limit = 2 * int(Image.MAX_IMAGE_PIXELS or 0)
        size = _header_size(fp)
        shown = f"{size[0]}x{size[1]} = " if size else ""
        raise _too_large(pixels, shown, budget if pixels > budget else limit, kind) from None
    width, height = img.size
    if width <= 0 or height <= 0:
        img.close()
        raise DecodeError(f"{kind} image has no pixels ({width}x{height})")
    if width * height > budget:
        img.close()
        raise _too_large(width * height, f"{width}x{height} = ", budget, kind)
    return img


def load_image(
    source: ImageSource,
    *,
    mode: Literal["L", "RGB"] | None = None,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Load an image file (or wrap an in-memory array) as float32 in ``[0, 1]``.

    Parameters
    ----------
    source : str, os.PathLike, bytes, PIL.Image.Image or numpy.ndarray
        Path to an image file in any format Pillow reads, the bytes of such a file (PNG, JPEG, GIF,
        BMP, TIFF, WebP, ...), a decoded Pillow image, or an already-loaded array of shape ``(H, W)`` or
        ``(H, W, C)`` with ``C`` in ``(1, 3, 4)``. ``uint8`` arrays are divided by 255, ``uint16`` by
        65535; float arrays are kept and clipped to ``[0, 1]``.
    mode : {"L", "RGB"} or None, default None
        Colour mode of the result. ``"L"`` gives one grey channel (BT.601 luma), ``"RGB"`` three
        channels; ``None`` keeps grey images grey and turns every other mode into RGB.
    max_pixels : int, optional
        Pixel budget for files and bytes (default :func:`pixel_budget`: :data:`MAX_IMAGE_PIXELS`); the
        size in the header is checked before decoding and a larger image raises :class:`DecodeError`.

    Returns
    -------
    numpy.ndarray of shape (H, W, C), float32
        ``C`` is 1 for grey and 3 for RGB. Palette images are expanded, transparency is
        composited over white, 16-bit images are scaled by 65535, CMYK/YCbCr/LAB become RGB and
        the EXIF orientation tag is applied. Multi-frame files (GIF, TIFF) give their first frame.

    Raises
    ------
    DecodeError
        If the file does not exist, is empty, is not an image, has no pixels, is over the pixel budget,
        or is truncated/corrupt.
    """
    if isinstance(source, np.ndarray):
        return _to_mode(_array_to_float(source), mode)
    if isinstance(source, Image.Image):
        return _to_mode(_array_to_float(pil_to_array(source)), mode)
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if not data:
            raise DecodeError("empty image bytes (0 bytes)")
        arr = _decode_image(io.BytesIO(data), pixel_budget(max_pixels), "in-memory", None)
        return _to_mode(arr, mode)
    path = Path(os.fspath(source))
    if not path.is_file():
        raise DecodeError("file not found", path=str(path))
    if path.stat().st_size == 0:
        raise DecodeError("empty file (0 bytes)", path=str(path))
    kind = path.suffix.lstrip(".").upper() or "image"
    return _to_mode(_decode_image(str(path), pixel_budget(max_pixels), kind, str(path)), mode)


def _decode_image(fp: str | io.BytesIO, budget: int, kind: str, where: str | None) -> np.ndarray:
    """Open, check the budget, decode the first frame and convert it to float (H, W, 1|3)."""
    try:
        with _open_within_budget(fp, budget, kind) as img:
            try:
                img.load()  # force a full decode so that truncated files fail here
            except (OSError, SyntaxError, ValueError) as exc:
                raise DecodeError(f"truncated or corrupt {kind} image: {exc}", path=where) from exc
            try:
                img = ImageOps.exif_transpose(img) or img
            except Exception:  # a broken EXIF block must not hide the pixels
                pass
            return _pil_to_float(img)
    except DecodeError as exc:
        if exc.path is None and where is not None:
            raise DecodeError(exc.reason, path=where) from None
        raise
    except UnidentifiedImageError as exc:
        detail = str(exc) if where is not None else "unknown format"
        raise DecodeError(f"not a valid {kind} image: {detail}", path=where) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DecodeError(f"cannot decode {kind} image: {exc}", path=where) from exc


def _per_channel(value: float | Sequence[float], channels: int, name: str) -> np.ndarray:
    """Broadcast a scalar or per-channel sequence to shape (C, 1, 1)."""
    arr = np.asarray(value, dtype=np.float32).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, channels)
    if arr.size != channels:
        raise ValueError(f"{name} has {arr.size} values but the image has {channels} channels")
    return arr.reshape(channels, 1, 1)


def _resize_channel(channel: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize one float (H, W) channel to ``size = (H, W)`` with Pillow's antialiased bilinear filter."""
    img = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32))
    out = img.resize((size[1], size[0]), resample=Image.Resampling.BILINEAR)
    return np.asarray(out, dtype=np.float32)


def preprocess_image(
    img: ImageSource,
    *,
    size: tuple[int, int] | None = None,
    channels: Literal[1, 3] | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
) -> np.ndarray:
    """Turn an image into a channels-first float32 array ready for a model.

    Parameters
    ----------
    img : numpy.ndarray of shape (H, W) or (H, W, C), or a path
        An image as returned by :func:`load_image` (anything :func:`load_image` accepts works).
    size : tuple of int (H, W), optional
        Output size; resized with Pillow's bilinear filter, which antialiases when shrinking.
    channels : {1, 3}, optional
        Number of output channels: grey is repeated to RGB, RGB is reduced to BT.601 luma.
    mean, std : float or sequence of float, optional
        Normalisation ``(x - mean) / std``, with scalars or one value per output channel.
        ``mean`` defaults to 0 and ``std`` to 1 when only one of them is given.

    Returns
    -------
    numpy.ndarray of shape (C, H, W), float32
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
    arr = load_image(img)
    if channels is not None:
        arr = _to_mode(arr, "L" if channels == 1 else "RGB")
    chw = np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)
    if size is not None:
        h, w = (int(s) for s in size)
        if h <= 0 or w <= 0:
            raise ValueError(f"size must be positive, got {size!r}")
        if (h, w) != chw.shape[1:]:
            chw = np.stack([_resize_channel(c, (h, w)) for c in chw])
    if mean is not None or std is not None:
        m = _per_channel(0.0 if mean is None else mean, chw.shape[0], "mean")
        s = _per_channel(1.0 if std is None else std, chw.shape[0], "std")
        if np.any(s == 0):
            raise ValueError("std must not contain zeros")
        chw = (chw - m) / s
    return chw.astype(np.float32, copy=False)


def rotate_image(img_chw: np.ndarray, degrees: float, *, fill: float = 0.0) -> np.ndarray:
    """Rotate a (C, H, W) image counter-clockwise by ``degrees``.

    Multiples of 90 degrees are exact (``numpy.rot90``; the height and width swap for 90 and
    270). Other angles use Pillow's bilinear rotation about the centre, keep the size ``(H, W)``
    and fill the uncovered corners with ``fill``.

    Parameters
    ----------
    img_chw : numpy.ndarray of shape (C, H, W)
    degrees : float
        Angle, positive = counter-clockwise.
    fill : float, default 0.0
        Value for pixels that come from outside the original image.

    Returns
    -------
    numpy.ndarray of shape (C, H, W) (or (C, W, H) for an odd multiple of 90), float32
    """
    arr = np.asarray(img_chw, dtype=np.float32)
    if arr.ndim != 3:
        raise ValueError(f"expected a (C, H, W) array, got shape {arr.shape}")
    quarter, rest = divmod(float(degrees), 90.0)
    if rest == 0.0:
        return np.ascontiguousarray(np.rot90(arr, k=int(quarter) % 4, axes=(1, 2)))
    out = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(c)).rotate(
                float(degrees), resample=Image.Resampling.BILINEAR, fillcolor=float(fill)
            ),
            dtype=np.float32,
        )
        for c in arr
    ]
    return np.stack(out).astype(np.float32, copy=False)


def flip_image(img_chw: np.ndarray, horizontal: bool = True) -> np.ndarray:
    """Mirror a (C, H, W) image left-right (``horizontal=True``) or top-bottom.

    Parameters
    ----------
    img_chw : numpy.ndarray of shape (C, H, W)
    horizontal : bool, default True
        ``True`` flips the width axis, ``False`` the height axis.

    Returns
    -------
    numpy.ndarray of shape (C, H, W)
    """
    arr = np.asarray(img_chw)
    if arr.ndim != 3:
        raise ValueError(f"expected a (C, H, W) array, got shape {arr.shape}")
    return np.ascontiguousarray(arr[:, :, ::-1] if horizontal else arr[:, ::-1, :])


def augment_images(
    batch: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    max_rotate: float = 10.0,
    max_shift: float = 0.1,
    max_scale: float = 0.1,
    hflip: bool = False,
) -> torch.Tensor:
    """Random affine augmentation of a batch, one transform per sample, fully batched.

    Each sample gets a rotation drawn uniformly from ``[-max_rotate, max_rotate]`` degrees, a
    shift of up to ``max_shift`` of the width/height in each direction, a zoom factor in
    ``[1 - max_scale, 1 + max_scale]`` and, with ``hflip``, a left-right flip with probability
    1/2. Pixels that come from outside the image are 0. The transform respects the aspect ratio
    (a rotation of a non-square image does not shear it).

    Parameters
    ----------
    batch : torch.Tensor of shape (N, C, H, W)
        Floating-point images.
    generator : torch.Generator, optional
        Source of randomness; the same generator state gives the same output. ``None`` uses
        PyTorch's global generator.
    max_rotate : float, default 10.0
    max_shift : float, default 0.1
    max_scale : float, default 0.1
    hflip : bool, default False

    Returns
    -------
    torch.Tensor of shape (N, C, H, W), same dtype and device as ``batch``.
    """
    import torch
    import torch.nn.functional as F

    if batch.ndim != 4:
        raise ValueError(f"expected a (N, C, H, W) tensor, got shape {tuple(batch.shape)}")
    n, _, h, w = batch.shape
    x = batch if batch.is_floating_point() else batch.float()
    if n == 0:
        return x.clone()
    gen_device = generator.device if generator is not None else torch.device("cpu")

    def uniform(lo: float, hi: float) -> torch.Tensor:
        r = torch.rand(n, generator=generator, device=gen_device, dtype=torch.float64)
        return (lo + (hi - lo) * r).to(x.device)

    angle = torch.deg2rad(uniform(-max_rotate, max_rotate))
    scale = uniform(1.0 - max_scale, 1.0 + max_scale)
    tx = uniform(-max_shift, max_shift)
    ty = uniform(-max_shift, max_shift)
    flip = (
        torch.rand(n, generator=generator, device=gen_device) < 0.5
        if hflip
        else torch.zeros(n, dtype=torch.bool, device=gen_device)
    ).to(x.device)

    # Forward map (in pixel-proportional coordinates): out = s * R(angle) @ in + t.
    # affine_grid needs the inverse (output -> input) in normalised [-1, 1] coordinates.
    cos, sin = torch.cos(angle), torch.sin(angle)
    inv = 1.0 / scale
    a11, a12 = cos * inv, sin * inv
    a21, a22 = -sin * inv, cos * inv
    # Convert to normalised coordinates: A_norm = diag(1/W, 1/H) A diag(W, H).
    a12n = a12 * (h / w)
    a21n = a21 * (w / h)
    t_x, t_y = 2.0 * tx, 2.0 * ty
    b1 = -(a11 * t_x + a12n * t_y)
    b2 = -(a21n * t_x + a22 * t_y)
    theta = torch.stack([torch.stack([a11, a12n, b1], dim=1), torch.stack([a21n, a22, b2], dim=1)], dim=1)
    # A horizontal flip of the output mirrors the output x coordinate.
    sign = torch.where(flip, -1.0, 1.0).to(theta.dtype)
    theta[:, :, 0] = theta[:, :, 0] * sign[:, None]
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def hog_features(batch: np.ndarray, *, cell: int = 4, bins: int = 9) -> np.ndarray:
    """Histogram-of-oriented-gradients features, vectorised over the batch.

    Gradients are central differences (``[-1, 0, 1]``, zero at the border); at each pixel the
    channel with the largest gradient magnitude is used. Unsigned orientations (0-180 degrees)
    vote into ``bins`` bins with linear interpolation between the two nearest bin centres,
    weighted by magnitude, summed over non-overlapping ``cell x cell`` cells (a remainder at the
    bottom/right edge is dropped). Each cell histogram is L2-normalised on its own.

    Parameters
    ----------
    batch : numpy.ndarray of shape (N, C, H, W)
    cell : int, default 4
        Cell size in pixels.
    bins : int, default 9
        Orientation bins.

    Returns
    -------
    numpy.ndarray of shape (N, (H // cell) * (W // cell) * bins), float32
    """
    x = np.asarray(batch, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"expected a (N, C, H, W) array, got shape {x.shape}")
    n, _, h, w = x.shape
    if cell < 1 or bins < 1:
        raise ValueError("cell and bins must be positive")
    hc, wc = h // cell, w // cell
    if hc == 0 or wc == 0:
        raise ValueError(f"image of size {h}x{w} is smaller than one {cell}x{cell} cell")
    out = np.empty((n, hc, wc, bins), dtype=np.float32)
    chunk = max(1, 2_000_000 // max(1, x[0].size))
    for start in range(0, n, chunk):
        xb = x[start : start + chunk]
        gx = np.zeros_like(xb)
        gy = np.zeros_like(xb)
        gx[..., :, 1:-1] = xb[..., :, 2:] - xb[..., :, :-2]
        gy[..., 1:-1, :] = xb[..., 2:, :] - xb[..., :-2, :]
        mag = np.hypot(gx, gy)
        best = np.argmax(mag, axis=1)[:, None]
        gx = np.take_along_axis(gx, best, axis=1)[:, 0]
        gy = np.take_along_axis(gy, best, axis=1)[:, 0]
        mag = np.take_along_axis(mag, best, axis=1)[:, 0]
        ang = np.mod(np.arctan2(gy, gx), np.pi)  # unsigned orientation in [0, pi)
        pos = ang / np.pi * bins - 0.5  # bin-centre coordinates
        lo = np.floor(pos)
        frac = (pos - lo).astype(np.float32)
        lo_bin = np.mod(lo, bins).astype(np.int64)
        hi_bin = np.mod(lo_bin + 1, bins)
        m = mag[:, : hc * cell, : wc * cell]
        lo_bin = lo_bin[:, : hc * cell, : wc * cell]
        hi_bin = hi_bin[:, : hc * cell, : wc * cell]
        frac = frac[:, : hc * cell, : wc * cell]
        w_lo = m * (1.0 - frac)
        w_hi = m * frac
        nb = xb.shape[0]
        for b in range(bins):
            votes = np.where(lo_bin == b, w_lo, 0.0) + np.where(hi_bin == b, w_hi, 0.0)
            out[start : start + nb, :, :, b] = votes.reshape(nb, hc, cell, wc, cell).sum(axis=(2, 4))
    norm = np.sqrt(np.sum(out**2, axis=-1, keepdims=True) + 1e-6)
    return (out / norm).reshape(n, -1).astype(np.float32, copy=False)


def image_quality(img_chw: np.ndarray) -> float:
    """Score an image's sharpness and contrast in ``[0, 1]``.

    The image is reduced to grey (mean over channels) and clipped to ``[0, 1]``. Then

    * contrast ``c = min(1, std / 0.25)`` (a half-black, half-white image has std 0.5),
    * sharpness ``s = v / (v + 0.01)`` where ``v`` is the variance of the 4-neighbour Laplacian,

    and the score is the geometric mean ``sqrt(c * s)``: a flat image scores 0, a blurred or
    washed-out one low, a crisp high-contrast one close to 1. Non-finite input scores 0.

    Parameters
    ----------
    img_chw : numpy.ndarray of shape (C, H, W) or (H, W)

    Returns
    -------
    float
    """
    arr = np.asarray(img_chw, dtype=np.float64)
    if arr.ndim == 3:
        grey = arr.mean(axis=0)
    elif arr.ndim == 2:
        grey = arr
    else:
        raise ValueError(f"expected a (C, H, W) or (H, W) array, got shape {arr.shape}")
    if grey.size == 0 or not np.all(np.isfinite(grey)):
        return 0.0
    grey = np.clip(grey, 0.0, 1.0)
    contrast = min(1.0, float(grey.std()) / 0.25)
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    lap = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4.0 * grey[1:-1, 1:-1]
    v = float(lap.var())
    sharp = v / (v + 0.01)
    return float(np.clip(np.sqrt(contrast * sharp), 0.0, 1.0))


#: The scores of :func:`image_quality_scores`, in order.
IMAGE_QUALITY_SCORES = ("sharpness", "contrast", "exposure")


def image_quality_scores(img: np.ndarray) -> dict[str, float]:
    """Per-image quality scores: sharpness, contrast and exposure, on the grey image in [0, 1].

    * ``sharpness``: ``log10(1e-6 + var(L))`` with ``L`` the 4-neighbour Laplacian of the grey image at
      its own resolution (-6 for a flat image; a crisp one is around -1 to 0; blur lowers it);
    * ``contrast``: the standard deviation of the grey levels (0 flat, 0.5 half black and half white);
    * ``exposure``: the mean grey level (0 black, 1 white).

    Parameters
    ----------
    img : numpy.ndarray of shape (H, W, C), (C, H, W) with C in (1, 3), or (H, W)
        Pixels in [0, 1] (as decoded); values outside are clipped.

    Returns
    -------
    dict
        ``{"sharpness", "contrast", "exposure"}``; an empty or non-finite image scores -6, 0, 0.
    """
    arr = np.asarray(img, dtype=np.float64)
    if arr.ndim == 3:
        channel_axis = 0 if arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3) else 2
        grey = arr.mean(axis=channel_axis)
    elif arr.ndim == 2:
        grey = arr
    else:
        raise ValueError(f"expected an (H, W, C), (C, H, W) or (H, W) array, got shape {arr.shape}")
    if grey.size == 0 or not np.all(np.isfinite(grey)):
        return {"sharpness": -6.0, "contrast": 0.0, "exposure": 0.0}
    grey = np.clip(grey, 0.0, 1.0)
    if grey.shape[0] >= 3 and grey.shape[1] >= 3:
        lap = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4.0 * grey[1:-1, 1:-1]
        variance = float(lap.var())
    else:
        variance = 0.0
    return {
        "sharpness": float(np.log10(1e-6 + variance)),
        "contrast": float(grey.std()),
        "exposure": float(grey.mean()),
    }
