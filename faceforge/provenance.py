"""Provenance of faceforge's outputs: a machine-readable "AI-made" label and an invisible watermark.

Every swapped (or generated) image faceforge writes carries two independent marks:

1. **Metadata**: the IPTC Photo Metadata property *Digital Source Type* (IPTC Photo Metadata Standard
   2023.1, ``Iptc4xmpExt:DigitalSourceType``; values from the IPTC NewsCodes vocabulary
   ``http://cv.iptc.org/newscodes/digitalsourcetype/``) in an XMP packet (ISO 16684-1), stored where
   each format keeps XMP: PNG ``iTXt`` chunk ``XML:com.adobe.xmp`` (plus a plain ``tEXt``
   ``DigitalSourceType``), JPEG ``APP1`` segment, WebP ``XMP `` chunk (Pillow writes all three). A swap
   is ``compositeSynthetic`` (:data:`SWAP_SOURCE_TYPE`: a photo with synthetic elements composited in);
   a wholly generated face would be ``trainedAlgorithmicMedia``. Metadata is lost when an image is
   re-encoded by a tool that drops it.
2. **Invisible watermark**: the 64-bit payload :data:`PAYLOAD` embedded by the PyPI package
   ``invisible-watermark`` (ShieldMnt, MIT; the watermark Stable Diffusion's reference scripts use) with
   its ``dwtDctSvd`` method: Haar DWT of the U (chroma) channel, 4x4 blocks of the LL band, each
   block's DCT's largest singular value quantized to carry one bit, the payload repeated over the
   image. Strength ``scales=[0, 48, 0]`` (:data:`WATERMARK_SCALES`), chosen on the shared photos: at
   the package's default 36 the 1920x1080 portrait lost it after JPEG quality 80 (42/64 bits); at 48
   every photo tried kept >= 63/64 bits at quality 80 and >= 59/64 at 70, for 36-40 dB PSNR. It
   survives re-encoding (JPEG quality 80 is tested), not cropping, resizing or rotation. It needs an
   image of at least 256x256 pixels (the package's limit); smaller images get the metadata only.

Detection (:func:`check`): the metadata is parsed, and the payload is decoded and compared bit by bit:
it is *present* when at least :data:`MIN_MATCHING_BITS` (56) of 64 bits match. An unmarked photo
matches about 32 (measured 23-35 on the shared photos); 56 or more by chance has probability < 1e-9.

Install: ``pip install --no-deps invisible-watermark==0.2.0`` plus ``PyWavelets`` (the extra
``provenance``): the package's metadata asks for ``opencv-python`` (which would clash with faceforge's
``opencv-python-headless``) and an unpinned ``torch`` it needs only for its RivaGAN method, unused here.
Without it, outputs carry the metadata and a warning says the watermark is missing.

C2PA Content Credentials (signed manifests) are not written yet: they need a signing key and
``c2pa-python``.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from faceforge.errors import MissingDependencyError

__all__ = ["IPTC_DIGITAL_SOURCE_TYPE", "SWAP_SOURCE_TYPE", "GENERATED_SOURCE_TYPE", "PAYLOAD", "MIN_MATCHING_BITS",
           "watermark_available", "embed_watermark", "read_watermark", "xmp_packet", "encode_marked", "save_marked",
           "ProvenanceReport", "check", "check_file", "provenance"]

IPTC_DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/"
"""Prefix of the IPTC Digital Source Type NewsCodes."""
SWAP_SOURCE_TYPE = IPTC_DIGITAL_SOURCE_TYPE + "compositeSynthetic"
"""Digital source type of a face swap: a capture with synthetic elements composited in."""
GENERATED_SOURCE_TYPE = IPTC_DIGITAL_SOURCE_TYPE + "trainedAlgorithmicMedia"
"""Digital source type of an image made entirely by a trained model (e.g. a StyleGAN2 face)."""
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"

PAYLOAD = b"faceforg"
"""The watermark's 64-bit payload."""
WATERMARK_METHOD = "dwtDctSvd"
WATERMARK_SCALES = [0, 48, 0]
"""Quantization steps per YUV channel (0 = unused): the U channel only (see the module docstring)."""
MIN_MATCHING_BITS = 56
"""Payload bits (of 64) that must match for the watermark to count as present."""
MIN_WATERMARK_PIXELS = 256 * 256
INSTALL_HINT = "pip install --no-deps invisible-watermark==0.2.0 && pip install PyWavelets"

_SOURCE_TYPE_RE = re.compile(rb"DigitalSourceType(?:=\"|>)\s*([^\"<\s]+)")


def watermark_available() -> bool:
    """True when ``invisible-watermark`` (``imwatermark``) and PyWavelets import."""
    try:
        import imwatermark  # noqa: F401
        import pywt  # noqa: F401
    except ImportError:
        return False
    return True


def _imwatermark():
    try:
        from imwatermark import WatermarkDecoder, WatermarkEncoder
    except ImportError:
        raise MissingDependencyError(f"the invisible watermark needs invisible-watermark and PyWavelets: {INSTALL_HINT}",
                                     dependency="invisible-watermark") from None
    return WatermarkEncoder, WatermarkDecoder


def _check_rgb(rgb: Any) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError("image must be a uint8 (H, W, 3) RGB or (H, W, 4) RGBA array")
    return rgb


def embed_watermark(rgb: np.ndarray) -> np.ndarray:
    """Embed :data:`PAYLOAD` invisibly (see the module docstring).

    Args:
        rgb: uint8 ``(H, W, 3)`` RGB (or ``(H, W, 4)`` RGBA: alpha is kept as is), ``H * W >= 256 * 256``.

    Returns:
        uint8 array of the same shape (36-40 dB PSNR to the input on the shared photos).

    Raises:
        MissingDependencyError: invisible-watermark or PyWavelets is not installed.
        ValueError: bad array, or fewer than 256 * 256 pixels.
    """
    import cv2

    rgb = _check_rgb(rgb)
    if rgb.shape[0] * rgb.shape[1] < MIN_WATERMARK_PIXELS:
        raise ValueError(f"the watermark needs at least 256x256 pixels, the image is {rgb.shape[1]}x{rgb.shape[0]}")
    encoder_cls, _ = _imwatermark()
    enc = encoder_cls()
    enc.set_watermark("bytes", PAYLOAD)
    bgr = enc.encode(cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2BGR), WATERMARK_METHOD,
                     scales=WATERMARK_SCALES)
    out = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return np.dstack([out, rgb[..., 3]]) if rgb.shape[2] == 4 else out


def read_watermark(rgb: np.ndarray) -> int | None:
    """How many of the 64 payload bits the image carries (>= :data:`MIN_MATCHING_BITS`: watermarked),
    or ``None`` when the image is too small to hold the watermark.

    Raises:
        MissingDependencyError: invisible-watermark or PyWavelets is not installed.
        ValueError: bad array.
    """
    import cv2

    rgb = _check_rgb(rgb)
    if rgb.shape[0] * rgb.shape[1] < MIN_WATERMARK_PIXELS:
        return None
    _, decoder_cls = _imwatermark()
    got = decoder_cls("bytes", 8 * len(PAYLOAD)).decode(cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]),
                                                                     cv2.COLOR_RGB2BGR),
                                                        WATERMARK_METHOD, scales=WATERMARK_SCALES)
    bits = np.unpackbits(np.frombuffer(bytes(got), np.uint8))
    ref = np.unpackbits(np.frombuffer(PAYLOAD, np.uint8))
    return int((bits[:len(ref)] == ref).sum()) if len(bits) >= len(ref) else 0


def xmp_packet(source_type: str = SWAP_SOURCE_TYPE, description: str | None = None) -> bytes:
    """An XMP packet (UTF-8) stating the IPTC Digital Source Type, faceforge as the creator tool, and a
    ``dc:description``.

    Raises:
        ValueError: ``source_type`` is not an IPTC digital source type URI.
    """
    from xml.sax.saxutils import escape, quoteattr

    from faceforge import __version__

    if not source_type.startswith(IPTC_DIGITAL_SOURCE_TYPE):
        raise ValueError(f"source_type must be an IPTC digital source type ({IPTC_DIGITAL_SOURCE_TYPE}...), "
                         f"got {source_type!r}")
    text = description or "AI-edited image: a face was replaced by faceforge (face swap)."
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        f'  <rdf:Description rdf:about="" xmlns:Iptc4xmpExt="{IPTC_EXT_NS}" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        f'   Iptc4xmpExt:DigitalSourceType={quoteattr(source_type)}\n'
        f'   xmp:CreatorTool={quoteattr(f"faceforge {__version__}")}>\n'
        f'   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{escape(text)}</rdf:li></rdf:Alt></dc:description>\n'
        '  </rdf:Description>\n'
        ' </rdf:RDF>\n'
        '</x:xmpmeta>\n'
        '<?xpacket end="w"?>').encode("utf-8")


def encode_marked(rgb: np.ndarray, fmt: str = "png", quality: int = 90, source_type: str = SWAP_SOURCE_TYPE,
                  watermark: bool = True, description: str | None = None) -> bytes:
    """Encode an image with the provenance metadata and (by default) the invisible watermark.

    Args:
        rgb: uint8 ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (JPEG composites alpha over white).
        fmt: ``"png"``, ``"jpeg"``/``"jpg"`` or ``"webp"``.
        quality: JPEG/WebP quality 1-100.
        source_type: IPTC digital source type URI.
        watermark: embed the watermark; when invisible-watermark is missing, or the image is smaller than
            256x256, a :class:`UserWarning` says so and only the metadata is written.
        description: ``dc:description`` text.

    Returns:
        The encoded file content.

    Raises:
        ValueError: bad array, format or quality.
    """
    from PIL import Image, PngImagePlugin

    from faceforge.imaging import _to_rgb_uint8

    rgb = _check_rgb(rgb)
    key = fmt.lower().lstrip(".")
    formats = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
    if key not in formats:
        raise ValueError(f"provenance can be written into png, jpeg and webp files, not {fmt!r}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    if watermark:
        if rgb.shape[0] * rgb.shape[1] < MIN_WATERMARK_PIXELS:
            warnings.warn(f"the image ({rgb.shape[1]}x{rgb.shape[0]}) is too small for the invisible watermark "
                          "(256x256 at least); only the metadata marks it", UserWarning, stacklevel=2)
        elif not watermark_available():
            warnings.warn(f"invisible-watermark is not installed ({INSTALL_HINT}); only the metadata marks the image",
                          UserWarning, stacklevel=2)
        else:
            rgb = embed_watermark(rgb)
    xmp = xmp_packet(source_type, description)
    im = Image.fromarray(np.ascontiguousarray(rgb))
    buf = io.BytesIO()
    pil_fmt = formats[key]
    if pil_fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"), zip=False)
        info.add_text("DigitalSourceType", source_type)
        info.add_text("Software", "faceforge")
        im.save(buf, format="PNG", pnginfo=info, compress_level=6)
    else:
        if im.mode == "RGBA" and pil_fmt == "JPEG":
            im = Image.fromarray(_to_rgb_uint8(im))
        im.save(buf, format=pil_fmt, quality=int(quality), xmp=xmp)
    return buf.getvalue()


def save_marked(path: str | os.PathLike, rgb: np.ndarray, quality: int = 90, source_type: str = SWAP_SOURCE_TYPE,
                watermark: bool = True, description: str | None = None) -> Path:
    """:func:`encode_marked` into a file whose suffix (.png, .jpg, .jpeg, .webp) picks the format;
    parent folders are created. Returns the path.

    Raises:
        ValueError: an unsupported suffix or bad array.
    """
    path = Path(path)
    data = encode_marked(rgb, path.suffix.lstrip(".") or "?", quality, source_type, watermark, description)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@dataclass
class ProvenanceReport:
    """What :func:`check` found.

    Attributes:
        source_type: the IPTC digital source type URI in the metadata, or ``None``.
        watermark_bits: payload bits (of 64) found, ``None`` when not checked (image too small, or
            invisible-watermark absent: see ``note``).
        note: why the watermark was not checked, else ``None``.
    """

    source_type: str | None
    watermark_bits: int | None
    note: str | None = None

    @property
    def watermarked(self) -> bool:
        """The invisible watermark is present."""
        return self.watermark_bits is not None and self.watermark_bits >= MIN_MATCHING_BITS

    @property
    def ai_made(self) -> bool:
        """Either mark says the image was made or edited by AI."""
        return self.watermarked or bool(self.source_type and self.source_type.startswith(IPTC_DIGITAL_SOURCE_TYPE)
                                        and not self.source_type.endswith(("digitalCapture", "negativeFilm",
                                                                           "positiveFilm", "print")))

    def to_dict(self) -> dict[str, Any]:
        return {"ai_made": self.ai_made, "digital_source_type": self.source_type, "watermarked": self.watermarked,
                "watermark_bits": self.watermark_bits, "watermark_bits_needed": MIN_MATCHING_BITS, "note": self.note}

    def summary(self) -> str:
        """One line for people."""
        meta = (f"metadata: IPTC DigitalSourceType {self.source_type.rsplit('/', 1)[-1]}" if self.source_type
                else "metadata: no IPTC DigitalSourceType")
        if self.watermark_bits is None:
            mark = f"watermark: not checked ({self.note})"
        else:
            mark = (f"watermark: {'present' if self.watermarked else 'absent'} ({self.watermark_bits}/64 payload bits, "
                    f"{MIN_MATCHING_BITS} needed)")
        return f"{'AI-made' if self.ai_made else 'no AI mark found'}; {meta}; {mark}"


def _metadata_source_type(data: bytes) -> str | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            blobs = [v for k, v in im.info.items() if k in ("xmp", "XML:com.adobe.xmp", "DigitalSourceType")]
    except Exception:  # noqa: BLE001 - decode_image has already said whether the image is usable
        blobs = []
    for blob in blobs:
        raw = blob.encode("utf-8") if isinstance(blob, str) else bytes(blob)
        if raw.startswith(IPTC_DIGITAL_SOURCE_TYPE.encode()):
            return raw.decode("utf-8", "replace").strip()
        m = _SOURCE_TYPE_RE.search(raw)
        if m:
            return m.group(1).decode("utf-8", "replace")
    return None


def check(data: bytes, watermark: bool = True) -> ProvenanceReport:
    """Read both marks of encoded image bytes.

    Args:
        data: file content (any format :func:`faceforge.imaging.decode_image` accepts).
        watermark: also decode the watermark (needs invisible-watermark).

    Returns:
        :class:`ProvenanceReport`.

    Raises:
        The errors of :func:`faceforge.imaging.decode_image` (not an image, too large, ...).
    """
    from faceforge.imaging import decode_image

    rgb = decode_image(data)
    source_type = _metadata_source_type(bytes(data))
    if not watermark:
        return ProvenanceReport(source_type, None, "not asked")
    if not watermark_available():
        return ProvenanceReport(source_type, None, f"invisible-watermark is not installed: {INSTALL_HINT}")
    bits = read_watermark(rgb)
    return ProvenanceReport(source_type, bits, None if bits is not None else "image smaller than 256x256")


def check_file(path: str | os.PathLike, watermark: bool = True) -> ProvenanceReport:
    """:func:`check` of a file.

    Raises:
        FileNotFoundError: no such file. The errors of :func:`check`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {path}")
    return check(path.read_bytes(), watermark)


@click.group("provenance")
def provenance() -> None:
    """Read the AI-made marks (IPTC metadata, invisible watermark) of images."""


@provenance.command("check")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per image.")
def check_command(images: tuple[Path, ...], as_json: bool) -> None:
    """Say whether each IMAGE carries faceforge's AI-made marks: the IPTC DigitalSourceType metadata and
    the invisible watermark (which survives JPEG re-encoding at quality 80; not cropping or resizing).

    \b
    Examples:
      faceforge provenance check swapped.png
      faceforge provenance check a.jpg b.png --json
    """
    import json

    for path in images:
        report = check_file(path)
        if as_json:
            click.echo(json.dumps({"image": str(path), **report.to_dict()}))
        else:
            click.echo(f"{path}: {report.summary()}")
