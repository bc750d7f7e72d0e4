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

3. **C2PA Content Credentials** (C2PA Technical Specification 2.x, https://c2pa.org/specifications/), only
   when a signing key and certificate chain are configured (:class:`C2paSigning`, environment variables
   :data:`C2PA_CERT_ENV` / :data:`C2PA_KEY_ENV`) and ``c2pa-python`` (the Content Authenticity Initiative's
   binding of the Rust SDK c2pa-rs) is installed: a manifest with one ``c2pa.actions`` assertion, action
   ``c2pa.created`` with the same IPTC ``digitalSourceType`` and faceforge as ``softwareAgent`` (the target
   photo is not embedded as an ingredient, so the swap is declared as a new composite rather than
   ``c2pa.edited``), signed with the key (COSE, ES256 by default) and embedded in the file (PNG ``caBX``
   chunk, JPEG ``APP11`` JUMBF, WebP ``C2PA`` chunk). Its hard binding (``c2pa.hash.data``, SHA-256 over the
   file outside the manifest) makes any later change of the bytes detectable. No thumbnail is embedded
   (it would add a JPEG copy of the image to every output). The certificate must suit C2PA: X.509 v3,
   key usage ``digitalSignature`` (critical), an extended key usage such as ``emailProtection`` or
   ``documentSigning``, issued by a CA (c2pa-rs refuses self-signed signing certificates); the chain PEM
   lists the signing certificate first, then intermediates. **Without a configured key the outputs carry
   only the metadata and the watermark** (:func:`c2pa_status` and ``faceforge provenance status`` say so);
   a configured key with c2pa-python missing is an error, not a silent downgrade.

Detection of C2PA (:func:`read_c2pa`): the manifest store is validated by c2pa-rs; ``validation_state``
``Invalid`` means a hash, signature or certificate check failed (a tampered file), ``Valid`` a correct
signature by a signer that is not on the configured trust list, ``Trusted`` a correct signature chaining to a
trust anchor (:data:`C2PA_TRUST_ENV` or ``--trust-anchors``). Nothing is fetched over the network while
reading (c2pa-rs skips OCSP by default); signing contacts a timestamp authority only when
:data:`C2PA_TSA_ENV` is set.
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

from faceforge.errors import FaceforgeError, MissingDependencyError

__all__ = ["IPTC_DIGITAL_SOURCE_TYPE", "SWAP_SOURCE_TYPE", "GENERATED_SOURCE_TYPE", "PAYLOAD", "MIN_MATCHING_BITS",
           "watermark_available", "embed_watermark", "read_watermark", "xmp_packet", "encode_marked", "save_marked",
           "C2PA_CERT_ENV", "C2PA_KEY_ENV", "C2PA_ALG_ENV", "C2PA_TSA_ENV", "C2PA_TRUST_ENV", "C2paSigning",
           "C2paConfigError", "C2paReport", "c2pa_available", "c2pa_status", "sign_c2pa", "read_c2pa",
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

C2PA_CERT_ENV = "FACEFORGE_C2PA_CERT"
"""Environment variable: path of the PEM certificate chain (signing certificate first, then intermediates)."""
C2PA_KEY_ENV = "FACEFORGE_C2PA_KEY"
"""Environment variable: path of the PEM (PKCS#8) private key of the signing certificate."""
C2PA_ALG_ENV = "FACEFORGE_C2PA_ALG"
"""Environment variable: signature algorithm, one of :data:`C2PA_ALGORITHMS` (default ``es256``)."""
C2PA_TSA_ENV = "FACEFORGE_C2PA_TSA_URL"
"""Environment variable: URL of an RFC 3161 timestamp authority (optional; contacted at every signing)."""
C2PA_TRUST_ENV = "FACEFORGE_C2PA_TRUST_ANCHORS"
"""Environment variable: PEM file of root certificates that :func:`read_c2pa` treats as trusted."""
C2PA_ALGORITHMS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")
C2PA_INSTALL_HINT = "pip install 'c2pa-python>=0.38,<1'"
_MIME_BY_FORMAT = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}


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


# --------------------------------------------------------------------------------------------------
# C2PA Content Credentials
# --------------------------------------------------------------------------------------------------
class C2paConfigError(FaceforgeError):
    """The configured C2PA signing key / certificate chain cannot be used (missing file, bad PEM, a
    certificate c2pa-rs refuses, a key that does not match the algorithm)."""

    slug = "c2pa-config"
    title = "The C2PA signing configuration is unusable"
    status = 500


def c2pa_available() -> bool:
    """True when ``c2pa-python`` imports."""
    try:
        import c2pa  # noqa: F401
    except ImportError:
        return False
    return True


def _c2pa():
    try:
        import c2pa
    except ImportError:
        raise MissingDependencyError(f"C2PA Content Credentials need c2pa-python: {C2PA_INSTALL_HINT}",
                                     dependency="c2pa-python") from None
    return c2pa


def _read_pem(path: str | os.PathLike, what: str) -> bytes:
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise C2paConfigError(f"cannot read the C2PA {what} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise C2paConfigError(f"the C2PA {what} {path} is not a PEM file (no '-----BEGIN' line)")
    return data


@dataclass(frozen=True)
class C2paSigning:
    """A C2PA signing identity: the certificate chain and private key as PEM bytes, and the algorithm.

    Attributes:
        cert_chain: PEM certificates, the signing (end-entity) certificate first, then intermediates up to
            (not necessarily including) the root.
        private_key: PEM private key of the signing certificate (PKCS#8 or SEC1 for EC keys).
        alg: one of :data:`C2PA_ALGORITHMS`, matching the key (``es256``: ECDSA P-256 with SHA-256).
        tsa_url: RFC 3161 timestamp authority, or ``None`` (no timestamp: the signature is then valid only
            within the certificate's validity period).
        source: where the configuration came from (for messages).
    """

    cert_chain: bytes
    private_key: bytes
    alg: str = "es256"
    tsa_url: str | None = None
    source: str = "arguments"

    def __post_init__(self) -> None:
        if self.alg not in C2PA_ALGORITHMS:
            raise C2paConfigError(f"C2PA algorithm must be one of {', '.join(C2PA_ALGORITHMS)}, got {self.alg!r}")

    @classmethod
    def from_files(cls, cert_chain: str | os.PathLike, private_key: str | os.PathLike, alg: str = "es256",
                   tsa_url: str | None = None) -> C2paSigning:
        """Read both PEM files.

        Raises:
            C2paConfigError: a file is missing / unreadable / not PEM, or an unknown algorithm.
        """
        return cls(_read_pem(cert_chain, "certificate chain"), _read_pem(private_key, "private key"),
                   alg.lower(), tsa_url or None, source=f"{cert_chain}, {private_key}")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> C2paSigning | None:
        """The signing identity configured by :data:`C2PA_CERT_ENV` and :data:`C2PA_KEY_ENV` (plus the
        optional :data:`C2PA_ALG_ENV`, :data:`C2PA_TSA_ENV`), or ``None`` when neither is set.

        Raises:
            C2paConfigError: only one of the two is set, or the files are unusable (see :meth:`from_files`).
        """
        env = os.environ if environ is None else environ
        cert, key = env.get(C2PA_CERT_ENV, "").strip(), env.get(C2PA_KEY_ENV, "").strip()
        if not cert and not key:
            return None
        if not cert or not key:
            missing = C2PA_CERT_ENV if not cert else C2PA_KEY_ENV
            raise C2paConfigError(f"C2PA signing needs both {C2PA_CERT_ENV} and {C2PA_KEY_ENV}; {missing} is not set")
        signing = cls.from_files(cert, key, env.get(C2PA_ALG_ENV, "es256").strip() or "es256",
                                 env.get(C2PA_TSA_ENV, "").strip() or None)
        return C2paSigning(signing.cert_chain, signing.private_key, signing.alg, signing.tsa_url,
                           source=f"{C2PA_CERT_ENV}={cert}, {C2PA_KEY_ENV}={key}")


def c2pa_status(environ: dict[str, str] | None = None) -> str:
    """One line saying whether outputs get C2PA Content Credentials, and why not.

    Raises:
        C2paConfigError: the configuration is set but unusable (see :meth:`C2paSigning.from_env`).
    """
    signing = C2paSigning.from_env(environ)
    if signing is None:
        return (f"C2PA: off, outputs carry only the IPTC metadata and the invisible watermark (set {C2PA_CERT_ENV} "
                f"and {C2PA_KEY_ENV} to sign them)")
    if not c2pa_available():
        return f"C2PA: configured ({signing.source}) but c2pa-python is not installed: {C2PA_INSTALL_HINT}"
    return f"C2PA: outputs are signed ({signing.alg}, {signing.source})"


def _c2pa_manifest(source_type: str, title: str, mime: str, description: str | None) -> dict[str, Any]:
    from faceforge import __version__

    action: dict[str, Any] = {"action": "c2pa.created", "digitalSourceType": source_type,
                              "softwareAgent": {"name": "faceforge", "version": __version__}}
    if description:
        action["description"] = description
    return {"claim_generator_info": [{"name": "faceforge", "version": __version__}], "title": title, "format": mime,
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}]}


def _mime(fmt: str) -> str:
    key = fmt.lower().lstrip(".")
    if key not in _MIME_BY_FORMAT:
        raise ValueError(f"C2PA manifests are written into png, jpeg and webp files here, not {fmt!r}")
    return _MIME_BY_FORMAT[key]


def sign_c2pa(data: bytes, fmt: str, signing: C2paSigning, source_type: str = SWAP_SOURCE_TYPE,
              title: str | None = None, description: str | None = None) -> bytes:
    """Embed a signed C2PA manifest (see the module docstring) into encoded image bytes.

    Args:
        data: PNG / JPEG / WebP file content.
        fmt: its format (``"png"``, ``"jpeg"``/``"jpg"``, ``"webp"``).
        signing: the key and certificate chain.
        source_type: IPTC digital source type URI of the ``c2pa.created`` action.
        title: the manifest's ``dc:title`` (default ``"faceforge output.<fmt>"``).
        description: the action's description.

    Returns:
        The file content with the manifest store embedded (pixels unchanged; ~3 KB larger).

    Raises:
        MissingDependencyError: c2pa-python is not installed.
        C2paConfigError: c2pa-rs refuses the key or certificate chain (the message says why).
        ValueError: unsupported format or source type.
    """
    if not source_type.startswith(IPTC_DIGITAL_SOURCE_TYPE):
        raise ValueError(f"source_type must be an IPTC digital source type ({IPTC_DIGITAL_SOURCE_TYPE}...), "
                         f"got {source_type!r}")
    mime = _mime(fmt)
    c2pa = _c2pa()
    manifest = _c2pa_manifest(source_type, title or f"faceforge output.{fmt.lower().lstrip('.')}", mime, description)
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(signing.alg.encode(), signing.cert_chain,
                                                           signing.private_key,
                                                           signing.tsa_url.encode() if signing.tsa_url else None))
    except c2pa.C2paError as exc:
        raise C2paConfigError(f"c2pa refuses the signing key / certificates ({signing.source}): {exc}") from None
    context = c2pa.Context(c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}}}))
    out = io.BytesIO()
    try:
        with c2pa.Builder(manifest, context=context) as builder:
            builder.sign(signer, mime, io.BytesIO(bytes(data)), out)
    except c2pa.C2paError as exc:
        raise C2paConfigError(f"C2PA signing failed with {signing.source}: {exc}") from None
    finally:
        signer.close()
        context.close()
    return out.getvalue()


@dataclass
class C2paReport:
    """What :func:`read_c2pa` found in a C2PA manifest store.

    Attributes:
        validation_state: c2pa-rs's verdict: ``"Invalid"`` (a hash / signature / certificate check failed),
            ``"Valid"`` (correct signature, signer not on the trust list) or ``"Trusted"``.
        signer: the signing certificate's common name (``None`` if absent); issuer: its issuer's organisation.
        claim_generator: ``"name version"`` of the software that wrote the manifest.
        digital_source_type: the first ``digitalSourceType`` of the active manifest's actions, or ``None``.
        failures: validation failure codes of the active manifest (e.g. ``assertion.dataHash.mismatch``,
            ``signingCredential.untrusted``).
    """

    validation_state: str
    signer: str | None
    issuer: str | None
    claim_generator: str | None
    digital_source_type: str | None
    failures: list[str]

    @property
    def valid(self) -> bool:
        """The manifest and the file's bytes pass every check except, possibly, trust in the signer."""
        return self.validation_state in ("Valid", "Trusted")

    @property
    def trusted(self) -> bool:
        """The signer chains to a configured trust anchor."""
        return self.validation_state == "Trusted"

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "trusted": self.trusted, "validation_state": self.validation_state,
                "signer": self.signer, "issuer": self.issuer, "claim_generator": self.claim_generator,
                "digital_source_type": self.digital_source_type, "failures": self.failures}

    def summary(self) -> str:
        """A short phrase for people."""
        verdict = ("valid, trusted signer" if self.trusted else "valid, signer not on a trust list" if self.valid
                   else f"INVALID ({', '.join(self.failures) or 'validation failed'})")
        kind = self.digital_source_type.rsplit("/", 1)[-1] if self.digital_source_type else "no digitalSourceType"
        return (f"C2PA manifest {verdict}; signed by {self.signer or '?'} ({self.issuer or '?'}); "
                f"claim generator {self.claim_generator or '?'}; {kind}")


def _sniff_mime(data: bytes) -> str | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:2] == b"\xff\xd8":
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def read_c2pa(data: bytes, trust_anchors: bytes | None = None) -> C2paReport | None:
    """Validate the C2PA manifest store embedded in PNG / JPEG / WebP bytes.

    Args:
        data: file content.
        trust_anchors: PEM root certificates to trust (default: the file named by :data:`C2PA_TRUST_ENV`,
            else none: a correct signature is then ``Valid``, not ``Trusted``).

    Returns:
        :class:`C2paReport`, or ``None`` when the file carries no manifest (or is not PNG / JPEG / WebP).

    Raises:
        MissingDependencyError: c2pa-python is not installed.
        C2paConfigError: the trust anchor file is unusable.
    """
    c2pa = _c2pa()
    mime = _sniff_mime(bytes(data[:16]))
    if mime is None:
        return None
    if trust_anchors is None and os.environ.get(C2PA_TRUST_ENV, "").strip():
        trust_anchors = _read_pem(os.environ[C2PA_TRUST_ENV].strip(), "trust anchors")
    settings = {"trust": {"trust_anchors": trust_anchors.decode("ascii", "replace")}} if trust_anchors else {}
    context = c2pa.Context(c2pa.Settings.from_dict(settings)) if settings else None
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(bytes(data)), context=context)
    except c2pa.C2paError as exc:  # a store that cannot even be parsed
        return C2paReport("Invalid", None, None, None, None, [f"unreadable manifest store: {exc}"])
    finally:
        if context is not None:
            context.close()
    if reader is None:
        return None
    import json

    with reader:
        store = json.loads(reader.json())
        state = reader.get_validation_state() or "Invalid"
        results = reader.get_validation_results() or {}
    manifest = store.get("manifests", {}).get(store.get("active_manifest") or "", {})
    info = manifest.get("signature_info") or {}
    gen = (manifest.get("claim_generator_info") or [{}])[0]
    claim_generator = " ".join(str(gen[k]) for k in ("name", "version") if gen.get(k)) or manifest.get(
        "claim_generator")
    source_type = None
    for assertion in manifest.get("assertions", []):
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            for action in assertion.get("data", {}).get("actions", []):
                source_type = source_type or action.get("digitalSourceType")
    failures = [f.get("code", "?") for f in (results.get("activeManifest") or {}).get("failure", [])]
    if not results:  # older stores: the flat validation_status list
        failures = [f.get("code", "?") for f in store.get("validation_status") or []]
    return C2paReport(state, info.get("common_name"), info.get("issuer"), claim_generator, source_type, failures)


def encode_marked(rgb: np.ndarray, fmt: str = "png", quality: int = 90, source_type: str = SWAP_SOURCE_TYPE,
                  watermark: bool = True, description: str | None = None,
                  signing: C2paSigning | None | str = "env", title: str | None = None) -> bytes:
    """Encode an image with the provenance metadata, (by default) the invisible watermark, and a signed C2PA
    manifest when a signing key is configured.

    Args:
        rgb: uint8 ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (JPEG composites alpha over white).
        fmt: ``"png"``, ``"jpeg"``/``"jpg"`` or ``"webp"``.
        quality: JPEG/WebP quality 1-100.
        source_type: IPTC digital source type URI.
        watermark: embed the watermark; when invisible-watermark is missing, or the image is smaller than
            256x256, a :class:`UserWarning` says so and only the metadata is written.
        description: ``dc:description`` text.
        signing: the C2PA signing identity; ``"env"`` (default): :meth:`C2paSigning.from_env`; ``None``: no
            C2PA manifest (the default too when nothing is configured).
        title: the C2PA manifest's title (default ``"faceforge output.<fmt>"``).

    Returns:
        The encoded file content.

    Raises:
        ValueError: bad array, format or quality.
        C2paConfigError: the configured signing key / certificates are unusable.
        MissingDependencyError: a signing key is configured but c2pa-python is not installed.
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
    if isinstance(signing, str):
        if signing != "env":
            raise ValueError(f"signing must be a C2paSigning, None or 'env', got {signing!r}")
        signing = C2paSigning.from_env()
    if signing is not None:
        return sign_c2pa(buf.getvalue(), key, signing, source_type, title, description)
    return buf.getvalue()


def save_marked(path: str | os.PathLike, rgb: np.ndarray, quality: int = 90, source_type: str = SWAP_SOURCE_TYPE,
                watermark: bool = True, description: str | None = None,
                signing: C2paSigning | None | str = "env") -> Path:
    """:func:`encode_marked` into a file whose suffix (.png, .jpg, .jpeg, .webp) picks the format;
    parent folders are created; the C2PA manifest's title is the file name. Returns the path.

    Raises:
        ValueError: an unsupported suffix or bad array. The errors of :func:`encode_marked`.
    """
    path = Path(path)
    data = encode_marked(rgb, path.suffix.lstrip(".") or "?", quality, source_type, watermark, description,
                         signing=signing, title=path.name)
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
        c2pa: the C2PA manifest found (:class:`C2paReport`), or ``None`` (none, or not checked: see ``c2pa_note``).
        c2pa_note: why C2PA was not checked (c2pa-python absent), else ``None``.
    """

    source_type: str | None
    watermark_bits: int | None
    note: str | None = None
    c2pa: C2paReport | None = None
    c2pa_note: str | None = None

    @property
    def watermarked(self) -> bool:
        """The invisible watermark is present."""
        return self.watermark_bits is not None and self.watermark_bits >= MIN_MATCHING_BITS

    @property
    def ai_made(self) -> bool:
        """Any mark says the image was made or edited by AI (an invalid C2PA manifest's claim counts too: a
        changed file does not make the claim untrue)."""
        return self.watermarked or any(_is_ai_source_type(t) for t in (
            self.source_type, self.c2pa.digital_source_type if self.c2pa else None))

    def to_dict(self) -> dict[str, Any]:
        return {"ai_made": self.ai_made, "digital_source_type": self.source_type, "watermarked": self.watermarked,
                "watermark_bits": self.watermark_bits, "watermark_bits_needed": MIN_MATCHING_BITS, "note": self.note,
                "c2pa": self.c2pa.to_dict() if self.c2pa else None, "c2pa_note": self.c2pa_note}

    def summary(self) -> str:
        """One line for people."""
        meta = (f"metadata: IPTC DigitalSourceType {self.source_type.rsplit('/', 1)[-1]}" if self.source_type
                else "metadata: no IPTC DigitalSourceType")
        if self.watermark_bits is None:
            mark = f"watermark: not checked ({self.note})"
        else:
            mark = (f"watermark: {'present' if self.watermarked else 'absent'} ({self.watermark_bits}/64 payload bits, "
                    f"{MIN_MATCHING_BITS} needed)")
        cred = self.c2pa.summary() if self.c2pa else f"C2PA: not checked ({self.c2pa_note})" if self.c2pa_note \
            else "C2PA: no manifest"
        return f"{'AI-made' if self.ai_made else 'no AI mark found'}; {meta}; {mark}; {cred}"


def _is_ai_source_type(source_type: str | None) -> bool:
    return bool(source_type and source_type.startswith(IPTC_DIGITAL_SOURCE_TYPE)
                and not source_type.endswith(("digitalCapture", "negativeFilm", "positiveFilm", "print")))


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


def check(data: bytes, watermark: bool = True, trust_anchors: bytes | None = None) -> ProvenanceReport:
    """Read every mark of encoded image bytes: metadata, watermark, C2PA manifest.

    Args:
        data: file content (any format :func:`faceforge.imaging.decode_image` accepts).
        watermark: also decode the watermark (needs invisible-watermark).
        trust_anchors: PEM roots for the C2PA signer (see :func:`read_c2pa`).

    Returns:
        :class:`ProvenanceReport` (C2PA is checked when c2pa-python is installed, else ``c2pa_note`` says so).

    Raises:
        The errors of :func:`faceforge.imaging.decode_image` (not an image, too large, ...).
        C2paConfigError: the trust anchor file is unusable.
    """
    from faceforge.imaging import decode_image

    rgb = decode_image(data)
    source_type = _metadata_source_type(bytes(data))
    if c2pa_available():
        cred, cred_note = read_c2pa(bytes(data), trust_anchors), None
    else:
        cred, cred_note = None, f"c2pa-python is not installed: {C2PA_INSTALL_HINT}"
    if not watermark:
        return ProvenanceReport(source_type, None, "not asked", cred, cred_note)
    if not watermark_available():
        return ProvenanceReport(source_type, None, f"invisible-watermark is not installed: {INSTALL_HINT}", cred,
                                cred_note)
    bits = read_watermark(rgb)
    return ProvenanceReport(source_type, bits, None if bits is not None else "image smaller than 256x256", cred,
                            cred_note)


def check_file(path: str | os.PathLike, watermark: bool = True, trust_anchors: bytes | None = None) -> ProvenanceReport:
    """:func:`check` of a file.

    Raises:
        FileNotFoundError: no such file. The errors of :func:`check`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {path}")
    return check(path.read_bytes(), watermark, trust_anchors)


@click.group("provenance")
def provenance() -> None:
    """Read the AI-made marks (IPTC metadata, invisible watermark, C2PA Content Credentials) of images."""


@provenance.command("check")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per image.")
@click.option("--trust-anchors", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help=f"PEM root certificates whose C2PA signers count as trusted [default: ${C2PA_TRUST_ENV}].")
def check_command(images: tuple[Path, ...], as_json: bool, trust_anchors: Path | None) -> None:
    """Say whether each IMAGE carries faceforge's AI-made marks: the IPTC DigitalSourceType metadata, the
    invisible watermark (which survives JPEG re-encoding at quality 80; not cropping or resizing), and a C2PA
    manifest (valid / tampered, signer, claim generator, digital source type) when one is embedded.

    \b
    Examples:
      faceforge provenance check swapped.png
      faceforge provenance check a.jpg b.png --json
      faceforge provenance check signed.jpg --trust-anchors my_root.pem
    """
    import json

    try:
        anchors = _read_pem(trust_anchors, "trust anchors") if trust_anchors else None
        for path in images:
            report = check_file(path, trust_anchors=anchors)
            if as_json:
                click.echo(json.dumps({"image": str(path), **report.to_dict()}))
            else:
                click.echo(f"{path}: {report.summary()}")
    except FaceforgeError as exc:
        raise click.ClickException(str(exc)) from None


@provenance.command("status")
def status_command() -> None:
    """Say whether faceforge signs its outputs with C2PA Content Credentials (FACEFORGE_C2PA_CERT and
    FACEFORGE_C2PA_KEY: PEM certificate chain and private key; FACEFORGE_C2PA_ALG, default es256;
    FACEFORGE_C2PA_TSA_URL, optional timestamp authority)."""
    try:
        click.echo(c2pa_status())
    except FaceforgeError as exc:
        raise click.ClickException(str(exc)) from None
