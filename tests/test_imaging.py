"""faceforge.imaging: decoding untrusted bytes into RGB uint8 arrays, limits and typed errors."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from faceforge.errors import (
    ImageTooSmallError,
    NotAnImageError,
    TooManyBytesError,
    TooManyPixelsError,
    TruncatedImageError,
    UnsupportedFormatError,
)
from faceforge.imaging import decode_image, encode_image, load_image, save_image


def pil_bytes(im: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **options)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width x height`` RGB pixels, followed by one tiny IDAT and IEND."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_roundtrip_png_is_exact_and_contiguous(astronaut_rgb):
    out = decode_image(encode_image(astronaut_rgb, "png"))
    assert out.dtype == np.uint8 and out.shape == (512, 512, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, astronaut_rgb)


def test_jpeg_roundtrip_is_close(astronaut_rgb):
    out = decode_image(encode_image(astronaut_rgb, "jpeg", quality=95))
    assert out.shape == astronaut_rgb.shape
    assert np.abs(out.astype(int) - astronaut_rgb).mean() < 3


def test_truncated_jpeg_raises(astronaut_rgb):
    data = encode_image(astronaut_rgb, "jpeg")
    with pytest.raises(TruncatedImageError):
        decode_image(data[: len(data) // 2])


def test_truncated_png_raises(astronaut_rgb):
    data = encode_image(astronaut_rgb, "png")
    with pytest.raises(TruncatedImageError):
        decode_image(data[: len(data) // 2])


def test_truncated_jpeg_raises_even_when_pillow_pads(astronaut_rgb, monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = encode_image(astronaut_rgb, "jpeg")
    with pytest.raises(TruncatedImageError):
        decode_image(data[: len(data) // 2])


def test_one_pixel_image_is_too_small():
    with pytest.raises(ImageTooSmallError):
        decode_image(pil_bytes(Image.new("RGB", (1, 1)), "PNG"))
    assert decode_image(pil_bytes(Image.new("RGB", (1, 1)), "PNG"), min_side=1).shape == (1, 1, 3)


def test_huge_dimension_png_bomb_is_rejected_before_decoding():
    bomb = png_header_only(100_000, 100_000)  # 10 gigapixels claimed by a ~100-byte file
    assert len(bomb) < 200
    with pytest.raises(TooManyPixelsError):
        decode_image(bomb)
    # also below Pillow's own bomb limit: our max_pixels applies from the header alone
    with pytest.raises(TooManyPixelsError):
        decode_image(png_header_only(5000, 5000), max_pixels=1_000_000)


def test_byte_limit_checked_first():
    with pytest.raises(TooManyBytesError):
        decode_image(b"x" * 101, max_bytes=100)


def test_png_alpha_is_composited_over_white():
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 200                      # red channel
    rgba[:, :10, 3] = 0                     # left half fully transparent
    rgba[:, 10:, 3] = 255                   # right half opaque
    rgba[:5, 10:, 3] = 128                  # a half-transparent band
    out = decode_image(pil_bytes(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert out.shape == (20, 20, 3)
    assert np.all(out[:, :10] == 255)                       # white where transparent
    assert np.all(out[5:, 10:] == [200, 0, 0])              # colour where opaque
    np.testing.assert_allclose(out[0, 15], [228, 127, 127], atol=1)  # 200*128/255 + 255*127/255


def test_palette_gray_and_16bit_modes_become_rgb():
    gray = Image.fromarray(np.full((20, 30), 77, np.uint8), "L")
    assert np.all(decode_image(pil_bytes(gray, "PNG")) == 77)
    pal = gray.convert("P")
    assert np.all(decode_image(pil_bytes(pal, "GIF")) == 77)
    deep = Image.fromarray(np.full((20, 30), 65535, np.uint16))
    out = decode_image(pil_bytes(deep, "PNG"))
    assert out.shape == (20, 30, 3) and np.all(out == 255)
    cmyk = Image.new("CMYK", (20, 20), (0, 255, 255, 0))  # pure red in CMYK
    out = decode_image(pil_bytes(cmyk, "TIFF"))
    assert np.all(out == [255, 0, 0])


def test_exif_orientation_is_undone():
    # Stored pixels: 40 wide x 20 high, left half red, right half blue. Orientation 6 means a
    # viewer rotates it 90 degrees clockwise: upright it is 20 wide x 40 high, red on top.
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = [255, 0, 0]
    stored[:, 20:] = [0, 0, 255]
    im = Image.fromarray(stored)
    exif = Image.Exif()
    exif[274] = 6
    data = pil_bytes(im, "JPEG", quality=95, exif=exif.tobytes())
    out = decode_image(data)
    assert out.shape == (40, 20, 3)
    top, bottom = out[:18].reshape(-1, 3).mean(0), out[22:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 50, top          # red on top
    assert bottom[2] > 200 and bottom[0] < 50, bottom  # blue at the bottom
    raw = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(out, np.rot90(raw, k=-1))


def test_not_an_image():
    with pytest.raises(NotAnImageError):
        decode_image(b"this is definitely not an image, just some text " * 10)
    with pytest.raises(NotAnImageError):
        decode_image(b"")
    with pytest.raises(TypeError):
        decode_image("a string")  # type: ignore[arg-type]


def test_unsupported_formats():
    with pytest.raises(UnsupportedFormatError):
        decode_image(pil_bytes(Image.new("RGB", (32, 32)), "ICO"))
    with pytest.raises(UnsupportedFormatError):
        decode_image(pil_bytes(Image.new("RGB", (32, 32)), "TGA"))
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    with pytest.raises(UnsupportedFormatError):
        decode_image(heic)


def test_load_and_save(tmp_path, astronaut_rgb):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.jpg")
    path = save_image(tmp_path / "sub" / "a.png", astronaut_rgb)
    np.testing.assert_array_equal(load_image(path), astronaut_rgb)
    with pytest.raises(TooManyBytesError):
        load_image(path, max_bytes=10)
    with pytest.raises(ValueError):
        save_image(tmp_path / "a.xyz", astronaut_rgb)


def test_shared_photos_decode(data_dir):
    photos = sorted(p for p in (data_dir / "photos").rglob("*") if p.is_file())
    assert photos
    for path in photos:
        rgb = load_image(path)
        assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8, path
