"""Image decoding and encoding with validation: the one place images enter and leave faceforge.

Every image faceforge reads (CLI, server uploads, benchmarks, training data preparation) goes through
:func:`decode_image`, which turns untrusted bytes into a contiguous ``(H, W, 3)`` uint8 RGB array or
raises one of the typed errors of :mod:`faceforge.errors`:

========================  ==========================================================================
error                     when
========================  ==========================================================================
TooManyBytesError         ``len(data) > max_bytes`` (checked before anything is parsed)
NotAnImageError           empty data, or bytes no image decoder recognises
UnsupportedFormatError    a recognised image format outside :data:`SUPPORTED_FORMATS` (e.g. ICO, PSD,
                          TGA, PDF, and HEIC/HEIF, whose signature is recognised here)
TooManyPixelsError        ``width * height > max_pixels``, read from the header *before* the pixel
                          data is decoded (decompression-bomb guard); Pillow's own
                          ``DecompressionBombWarning``/``Error`` are mapped to this error too
ImageTooSmallError        ``min(width, height) < min_side``
TruncatedImageError       the pixel data ends early or is corrupt (never padded with grey)
========================  ==========================================================================

Supported formats (:data:`SUPPORTED_FORMATS`): JPEG (and MPO, the multi-picture JPEG variant many
phone cameras write: first picture), PNG, WebP (first frame if animated), BMP, GIF (first frame) and
TIFF (first page). These are the formats phones, browsers and common tools produce; anything else
Pillow happens to parse (ICO, PSD, TGA, PCX, EPS, ...) is refused rather than trusted.

Normalisation applied by :func:`decode_image`:

* EXIF orientation (tag 274) is applied (``PIL.ImageOps.exif_transpose``), so the array is upright
  as a viewer shows it.
* Transparency (RGBA, LA, PA, palette images with a transparent index) is composited over white.
* Every mode becomes 8-bit RGB: ``L``/``1``/``P``/``CMYK``/``YCbCr``/``LAB``/``HSV`` via Pillow's
  conversions; 16-bit grey (``I;16*``, ``I``) is scaled by ``1/257`` (65535 -> 255) instead of being
  clipped; 32-bit float grey (``F``) is taken as ``[0, 1]`` if its maximum is at most 1, else as
  ``[0, 255]``, and clipped.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from faceforge.errors import (
    ImageError,
    ImageTooSmallError,
    NotAnImageError,
    TooManyBytesError,
    TooManyPixelsError,
    TruncatedImageError,
    UnsupportedFormatError,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MIN_SIDE",
    "SUPPORTED_FORMATS",
    "decode_image",
    "load_image",
    "encode_image",
    "save_image",
]

DEFAULT_MAX_BYTES = 25 * 2**20
"""Default upload size limit: 25 MiB."""
DEFAULT_MAX_PIXELS = 64_000_000
"""Default pixel limit (width * height): 64 megapixels, above any phone camera's full resolution."""
DEFAULT_MIN_SIDE = 16
"""Default smallest accepted side in pixels: below this no face can be detected."""

SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF"})
"""Pillow format names :func:`decode_image` accepts (multi-frame formats: first frame/page)."""

_ENCODE_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP", "bmp": "BMP"}

# ISO base-media "ftyp" brands of HEIF/HEIC/AVIF-like containers Pillow cannot read without plugins.
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")


def _check_limits_args(max_bytes: int | None, max_pixels: int | None, min_side: int) -> None:
    if max_bytes is not None and max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1 or None, got {max_bytes}")
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1 or None, got {max_pixels}")
    if min_side < 1:
        raise ValueError(f"min_side must be >= 1, got {min_side}")


def _open(data: bytes) -> Image.Image:
    """``Image.open`` that only parses the header; Pillow's bomb signals become TooManyPixelsError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooManyPixelsError(f"the image exceeds Pillow's decompression-bomb limit: {exc}") from exc
    except UnidentifiedImageError as exc:
        if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
            raise UnsupportedFormatError(
                "HEIC/HEIF images are not supported; convert to JPEG or PNG (phones can be set to "
                "'most compatible')", format="HEIF") from exc
        raise NotAnImageError("the data is not an image in any recognised format") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # header recognised but broken
        raise TruncatedImageError(f"the image header is corrupt: {exc}") from exc


def _to_rgb_uint8(im: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to contiguous ``(H, W, 3)`` uint8 RGB, alpha composited over white."""
    mode = im.mode
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info) \
        or (mode in ("L", "RGB") and "transparency" in im.info)
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint16)
        alpha = rgba[..., 3:4]
        # round(c * a / 255 + 255 * (255 - a) / 255), integer arithmetic
        out = (rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255
        return np.ascontiguousarray(out.astype(np.uint8))
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(im).astype(np.float64)
        if mode == "I" and values.size and values.max() <= 255 and values.min() >= 0:
            gray = values
        else:
            gray = values / 257.0
        gray = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if mode == "F":
        values = np.asarray(im, dtype=np.float64)
        finite = values[np.isfinite(values)]
        scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0
        gray = np.clip(np.rint(np.nan_to_num(values) * scale), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def decode_image(data: bytes | bytearray | memoryview, *, max_bytes: int | None = DEFAULT_MAX_BYTES,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, min_side: int = DEFAULT_MIN_SIDE) -> np.ndarray:
    """Decode untrusted image bytes into an upright RGB array, with size limits.

    Checks run cheapest first: the byte count, then the header (format, width, height) before any
    pixel data is decoded, then the pixel data itself. See the module docstring for the supported
    formats and the colour-mode normalisation.

    Args:
        data: the encoded file content (JPEG, PNG, WebP, BMP, GIF, TIFF).
        max_bytes: largest accepted ``len(data)``; ``None`` for no limit.
        max_pixels: largest accepted ``width * height`` (header values, before EXIF rotation, which
            does not change the product); ``None`` for no limit of ours (Pillow's own
            decompression-bomb limit, ``PIL.Image.MAX_IMAGE_PIXELS``, still applies).
        min_side: smallest accepted ``min(width, height)`` in pixels.

    Returns:
        C-contiguous uint8 array ``(H, W, 3)``, RGB, values in [0, 255], EXIF orientation applied,
        transparency composited over white.

    Raises:
        TypeError: ``data`` is not bytes-like.
        ValueError: a limit argument is out of range.
        TooManyBytesError: the data is larger than ``max_bytes``.
        NotAnImageError: empty data or an unrecognised format.
        UnsupportedFormatError: a recognised format outside :data:`SUPPORTED_FORMATS`.
        TooManyPixelsError: more pixels than ``max_pixels`` (or Pillow's bomb limit).
        ImageTooSmallError: a side shorter than ``min_side``.
        TruncatedImageError: the file is truncated or its pixel data is corrupt.

    Example:
        >>> rgb = decode_image(open("photo.jpg", "rb").read())  # doctest: +SKIP
        >>> rgb.shape, rgb.dtype                                 # doctest: +SKIP
        ((1080, 1920, 3), dtype('uint8'))
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
    _check_limits_args(max_bytes, max_pixels, min_side)
    data = bytes(data)
    if max_bytes is not None and len(data) > max_bytes:
        raise TooManyBytesError(f"the image is {len(data)} bytes; the limit is {max_bytes}",
                                bytes=len(data), limit=max_bytes)
    if not data:
        raise NotAnImageError("the data is empty")

    im = _open(data)
    try:
        fmt = im.format or "unknown"
        if fmt not in SUPPORTED_FORMATS:
            raise UnsupportedFormatError(
                f"{fmt} images are not supported; use one of {', '.join(sorted(SUPPORTED_FORMATS))}",
                format=fmt)
        width, height = im.size
        if max_pixels is not None and width * height > max_pixels:
            raise TooManyPixelsError(
                f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
                pixels=width * height, limit=max_pixels)
        if min(width, height) < min_side:
            raise ImageTooSmallError(
                f"the image is {width}x{height}; each side must be at least {min_side} pixels",
                width=width, height=height, min_side=min_side)
        if ImageFile.LOAD_TRUNCATED_IMAGES and _missing_trailer(fmt, data):
            # Someone switched Pillow's global "pad truncated images" mode on; do not let it hide
            # a truncated upload as grey padding.
            raise TruncatedImageError(f"the {fmt} data has no end marker (truncated file)")
        try:
            im.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise TooManyPixelsError(f"the image exceeds Pillow's decompression-bomb limit: {exc}") from exc
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
            raise TruncatedImageError(f"the {fmt} image is truncated or corrupt: {exc}") from exc
        try:
            upright = ImageOps.exif_transpose(im)
        except Exception:  # noqa: BLE001 - a malformed EXIF block must not reject a good image
            upright = im
        return _to_rgb_uint8(upright if upright is not None else im)
    finally:
        im.close()


def _missing_trailer(fmt: str, data: bytes) -> bool:
    """Whether a JPEG lacks its EOI marker or a PNG its IEND chunk (only used when padding is on)."""
    if fmt in ("JPEG", "MPO"):
        return b"\xff\xd9" not in data[-4096:]
    if fmt == "PNG":
        return b"IEND" not in data[-64:]
    return False


def load_image(path: str | os.PathLike, *, max_bytes: int | None = DEFAULT_MAX_BYTES,
               max_pixels: int | None = DEFAULT_MAX_PIXELS, min_side: int = DEFAULT_MIN_SIDE) -> np.ndarray:
    """Read and decode an image file (see :func:`decode_image`).

    The file size is checked against ``max_bytes`` before the file is read.

    Args:
        path: file path.
        max_bytes, max_pixels, min_side: limits as in :func:`decode_image`.

    Returns:
        uint8 ``(H, W, 3)`` RGB array.

    Raises:
        FileNotFoundError: ``path`` does not exist (or is not a file).
        The errors of :func:`decode_image`, their message prefixed with ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {path}")
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise TooManyBytesError(f"{path} is {size} bytes; the limit is {max_bytes}", bytes=size, limit=max_bytes)
    try:
        return decode_image(path.read_bytes(), max_bytes=max_bytes, max_pixels=max_pixels, min_side=min_side)
    except ImageError as exc:  # name the file: a command reading several images must say which one failed
        exc.detail = f"{path}: {exc.detail}"
        exc.args = (exc.detail, *exc.args[1:])
        raise


def check_rgb(rgb: Any, name: str = "rgb") -> np.ndarray:
    """``rgb`` itself when it is a uint8 ``(H, W, 3)`` RGB array: the image every face function takes.

    Args:
        rgb: the value to check.
        name: what the message calls it (``"source"``, ``"crop"``, ...).

    Raises:
        ValueError: anything else, ``"<name> must be a uint8 (H, W, 3) array"`` (decode file bytes with
            :func:`decode_image` first).
    """
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{name} must be a uint8 (H, W, 3) array")
    return rgb


def _check_encodable(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise ValueError("image must be a uint8 numpy array")
    if rgb.ndim == 2:
        return rgb
    if rgb.ndim != 3 or rgb.shape[2] not in (1, 3, 4):
        raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got shape {rgb.shape}")
    return rgb[..., 0] if rgb.shape[2] == 1 else rgb


def encode_image(rgb: np.ndarray, fmt: str = "png", quality: int = 90) -> bytes:
    """Encode an image array to PNG, JPEG, WebP or BMP bytes.

    Args:
        rgb: uint8 ``(H, W, 3)`` RGB (also accepted: ``(H, W)`` gray, ``(H, W, 4)`` RGBA; JPEG and
            BMP drop alpha by compositing over white).
        fmt: ``"png"`` (lossless), ``"jpeg"``/``"jpg"``, ``"webp"`` or ``"bmp"``, case-insensitive.
        quality: JPEG/WebP quality 1-100 (ignored for PNG/BMP).

    Returns:
        The encoded file content.

    Raises:
        ValueError: bad array dtype/shape, unknown ``fmt`` or ``quality`` out of range.
    """
    arr = _check_encodable(rgb)
    key = fmt.lower().lstrip(".")
    if key not in _ENCODE_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {sorted(_ENCODE_FORMATS)}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    pil_fmt = _ENCODE_FORMATS[key]
    im = Image.fromarray(np.ascontiguousarray(arr))
    if im.mode == "RGBA" and pil_fmt in ("JPEG", "BMP"):
        im = Image.fromarray(_to_rgb_uint8(im))
    buf = io.BytesIO()
    options: dict = {}
    if pil_fmt in ("JPEG", "WEBP"):
        options["quality"] = int(quality)
    if pil_fmt == "PNG":
        options["compress_level"] = 6
    im.save(buf, format=pil_fmt, **options)
    return buf.getvalue()


def save_image(path: str | os.PathLike, rgb: np.ndarray, quality: int = 90) -> Path:
    """Write an image array to a file whose suffix (.png, .jpg, .jpeg, .webp, .bmp) picks the format.

    Args:
        path: destination; parent folders are created.
        rgb: uint8 ``(H, W, 3)`` RGB (or gray / RGBA, see :func:`encode_image`).
        quality: JPEG/WebP quality 1-100.

    Returns:
        The path written.

    Raises:
        ValueError: unknown suffix or bad array (see :func:`encode_image`).
    """
    path = Path(path)
    data = encode_image(rgb, fmt=path.suffix.lower().lstrip(".") or "?", quality=quality)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
