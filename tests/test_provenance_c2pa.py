"""C2PA Content Credentials (faceforge/provenance.py): signing PNG and JPEG outputs with a throwaway CA +
signing certificate built here, reading the manifest back (valid / trusted / signer / claim generator /
digital source type), detecting tampering, the environment configuration, and the behaviour without a key or
without c2pa-python."""

from __future__ import annotations

import datetime
import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from faceforge.errors import MissingDependencyError
from faceforge.imaging import decode_image, encode_image
from faceforge.provenance import (C2PA_CERT_ENV, C2PA_KEY_ENV, SWAP_SOURCE_TYPE, C2paConfigError, C2paSigning,
                                  c2pa_available, c2pa_status, check, encode_marked, read_c2pa)

needs_c2pa = pytest.mark.skipif(not c2pa_available(), reason="c2pa-python not installed (pip install c2pa-python)")


def _name(cn: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "faceforge test CA")])


def _key_usage(sign: bool, ca: bool):
    from cryptography import x509

    return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def _make_chain(root_cn: str = "faceforge test root") -> dict[str, bytes]:
    """A CA certificate and a signing certificate issued by it, both ECDSA P-256, with the extensions the
    C2PA trust model asks of a claim signer (KU digitalSignature critical, EKU emailProtection, CA false,
    subject / authority key identifiers). PEM bytes: ``chain`` (signer, then CA), ``key``, ``root``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=7)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name(root_cn)).issuer_name(_name(root_cn))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(_key_usage(sign=False, ca=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(_name("faceforge test signer")).issuer_name(_name(root_cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(sign=True, ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return {"chain": leaf.public_bytes(pem) + ca.public_bytes(pem), "root": ca.public_bytes(pem),
            "key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())}


@pytest.fixture(scope="module")
def pki():
    pytest.importorskip("cryptography", reason="the test certificates are built with the cryptography package")
    if not c2pa_available():
        pytest.skip("c2pa-python not installed (pip install c2pa-python)")
    return _make_chain()


@pytest.fixture(scope="module")
def signing(pki) -> C2paSigning:
    return C2paSigning(pki["chain"], pki["key"])


@pytest.fixture
def image(astronaut_rgb) -> np.ndarray:
    return np.ascontiguousarray(astronaut_rgb[96:352, 128:384])  # 256 x 256: the watermark's minimum


def _edit_pixels(data: bytes, fmt: str) -> bytes:
    """Change one pixel value and keep every other byte, the manifest included (a decodable forgery).

    PNG: the IDAT stream is inflated, one sample byte changed, deflated again into one IDAT chunk with a fresh
    CRC. JPEG: one byte inside the entropy-coded scan is changed (decoders tolerate it)."""
    if fmt != "png":
        out = bytearray(data)
        out[data.rindex(b"\xff\xda") + 400] ^= 0x5A
        return bytes(out)
    import struct
    import zlib

    chunks, pos = [], 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        chunks.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]))
        pos += 12 + n
    raw = bytearray(zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT")))
    raw[1000] ^= 0x40  # a sample, not a row's filter byte (rows are 1 + 256 * 3 bytes)
    out, idat_done = [data[:8]], False
    for kind, body in chunks:
        if kind == b"IDAT":
            if idat_done:
                continue
            kind, body, idat_done = b"IDAT", zlib.compress(bytes(raw), 6), True
        out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body)))
    return b"".join(out)


@needs_c2pa
@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_signed_output_reads_back_valid_and_tampering_is_detected(image, signing, pki, fmt, tmp_path):
    unsigned = encode_marked(image, fmt, signing=None)
    signed = encode_marked(image, fmt, signing=signing, title=f"swap.{fmt}")
    assert np.array_equal(decode_image(signed), decode_image(unsigned))  # the manifest leaves the pixels alone
    assert 0 < len(signed) - len(unsigned) < 20_000  # no thumbnail: measured ~3 KB
    assert read_c2pa(unsigned) is None and check(unsigned, watermark=False).c2pa is None

    report = check(signed)  # every mark at once
    assert report.source_type == SWAP_SOURCE_TYPE and report.watermarked and report.ai_made
    cred = report.c2pa
    assert cred is not None and cred.valid and not cred.trusted and cred.validation_state == "Valid"
    assert cred.failures == ["signingCredential.untrusted"]  # no trust list given
    assert cred.signer == "faceforge test signer" and cred.issuer == "faceforge test CA"
    assert cred.claim_generator.startswith("faceforge ") and cred.digital_source_type == SWAP_SOURCE_TYPE
    trusted = read_c2pa(signed, trust_anchors=pki["root"])
    assert trusted.trusted and trusted.valid and trusted.failures == []
    other_root = _make_chain("another root")["root"]
    assert read_c2pa(signed, trust_anchors=other_root).validation_state == "Valid"  # not chained to that root

    tampered = _edit_pixels(signed, fmt)
    assert not np.array_equal(decode_image(tampered), decode_image(signed))
    bad = read_c2pa(tampered, trust_anchors=pki["root"])
    assert bad is not None and not bad.valid and bad.validation_state == "Invalid"
    assert "assertion.dataHash.mismatch" in bad.failures
    assert bad.digital_source_type == SWAP_SOURCE_TYPE  # the claim is still reported

    # pixels re-encoded without the metadata: the manifest is gone, the watermark stays
    stripped = check(encode_image(decode_image(signed), "jpeg", quality=90))
    assert stripped.c2pa is None and stripped.watermarked

    from faceforge.cli import main

    (tmp_path / f"ok.{fmt}").write_bytes(signed)
    (tmp_path / f"bad.{fmt}").write_bytes(tampered)
    (tmp_path / "root.pem").write_bytes(pki["root"])
    result = CliRunner().invoke(main, ["provenance", "check", str(tmp_path / f"ok.{fmt}"), str(tmp_path / f"bad.{fmt}"),
                                       "--trust-anchors", str(tmp_path / "root.pem")])
    assert result.exit_code == 0, result.output
    ok_line, bad_line = result.output.strip().splitlines()
    assert "C2PA manifest valid, trusted signer; signed by faceforge test signer" in ok_line
    assert "compositeSynthetic" in ok_line.rsplit("C2PA", 1)[1]
    assert "C2PA manifest INVALID" in bad_line and "assertion.dataHash.mismatch" in bad_line
    result = CliRunner().invoke(main, ["provenance", "check", "--json", str(tmp_path / f"ok.{fmt}")])
    record = json.loads(result.output)
    assert record["c2pa"]["valid"] is True and record["c2pa"]["signer"] == "faceforge test signer"


@needs_c2pa
def test_signing_is_configured_by_the_environment(image, pki, tmp_path, monkeypatch):
    monkeypatch.delenv(C2PA_CERT_ENV, raising=False)
    monkeypatch.delenv(C2PA_KEY_ENV, raising=False)
    assert C2paSigning.from_env() is None
    assert c2pa_status().startswith("C2PA: off, outputs carry only the IPTC metadata and the invisible watermark")
    assert read_c2pa(encode_marked(image, "png", watermark=False)) is None  # default "env": nothing configured

    (tmp_path / "chain.pem").write_bytes(pki["chain"])
    (tmp_path / "key.pem").write_bytes(pki["key"])
    monkeypatch.setenv(C2PA_CERT_ENV, str(tmp_path / "chain.pem"))
    with pytest.raises(C2paConfigError, match=f"{C2PA_KEY_ENV} is not set"):
        encode_marked(image, "png", watermark=False)
    monkeypatch.setenv(C2PA_KEY_ENV, str(tmp_path / "key.pem"))
    assert c2pa_status().startswith("C2PA: outputs are signed (es256")
    cred = read_c2pa(encode_marked(image, "jpeg", watermark=False))
    assert cred is not None and cred.valid and cred.signer == "faceforge test signer"

    from faceforge.cli import main

    result = CliRunner().invoke(main, ["provenance", "status"])
    assert result.exit_code == 0 and "outputs are signed" in result.output
    monkeypatch.setenv(C2PA_KEY_ENV, str(tmp_path / "missing.pem"))
    result = CliRunner().invoke(main, ["provenance", "status"])
    assert result.exit_code == 1 and "cannot read the C2PA private key" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


@needs_c2pa
def test_unusable_keys_and_certificates_are_refused_clearly(image, pki, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    (tmp_path / "not.pem").write_text("hello")
    with pytest.raises(C2paConfigError, match="not a PEM file"):
        C2paSigning.from_files(tmp_path / "not.pem", tmp_path / "not.pem")
    with pytest.raises(C2paConfigError, match="algorithm must be one of"):
        C2paSigning(pki["chain"], pki["key"], alg="md5")
    other_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(C2paConfigError, match="C2PA signing failed"):
        encode_marked(image, "png", watermark=False, signing=C2paSigning(pki["chain"], other_key))
    with pytest.raises(C2paConfigError, match="C2PA signing failed"):  # c2pa-rs refuses a CA as claim signer
        encode_marked(image, "png", watermark=False, signing=C2paSigning(pki["root"], pki["key"]))


def test_without_c2pa_python(image, monkeypatch):
    """c2pa-python absent: reading says it was not checked, and a configured key is an error, not a silent
    downgrade."""
    monkeypatch.setitem(sys.modules, "c2pa", None)  # import c2pa -> ImportError
    assert not c2pa_available()
    data = encode_marked(image, "png", watermark=False, signing=None)
    report = check(data, watermark=False)
    assert report.c2pa is None and "c2pa-python is not installed" in report.c2pa_note
    assert "C2PA: not checked (c2pa-python is not installed" in report.summary()
    with pytest.raises(MissingDependencyError, match="c2pa-python"):
        encode_marked(image, "png", watermark=False, signing=C2paSigning(b"-----BEGIN x", b"-----BEGIN y"))
