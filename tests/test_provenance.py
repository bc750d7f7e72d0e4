"""Provenance marks (faceforge/provenance.py): IPTC DigitalSourceType in PNG/JPEG/WebP metadata, the
invisible watermark (also after JPEG re-encoding at quality 80), ``faceforge provenance check``, and the
marks on ``faceforge swap``'s output."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from faceforge.imaging import decode_image, encode_image
from faceforge.provenance import (GENERATED_SOURCE_TYPE, MIN_MATCHING_BITS, SWAP_SOURCE_TYPE, check, encode_marked,
                                  watermark_available, xmp_packet)

needs_watermark = pytest.mark.skipif(not watermark_available(),
                                     reason="invisible-watermark not installed (pip install --no-deps "
                                            "invisible-watermark==0.2.0 && pip install PyWavelets)")


def test_xmp_packet_states_the_iptc_source_type():
    xmp = xmp_packet(GENERATED_SOURCE_TYPE).decode()
    assert 'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"' in xmp
    assert 'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"' in xmp
    import xml.dom.minidom
    xml.dom.minidom.parseString(xmp.split("?>", 1)[1].rsplit("<?xpacket", 1)[0])  # well-formed
    with pytest.raises(ValueError):
        xmp_packet("made by me")


@pytest.mark.parametrize("fmt,pil", [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_metadata_is_written_where_each_format_keeps_xmp(astronaut_rgb, fmt, pil):
    data = encode_marked(astronaut_rgb, fmt, watermark=False)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == pil
        xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    assert xmp is not None and b"compositeSynthetic" in (xmp if isinstance(xmp, bytes) else xmp.encode())
    if fmt == "jpeg":
        assert b"http://ns.adobe.com/xap/1.0/\x00" in data[:200]  # the XMP APP1 segment's signature
    report = check(data, watermark=False)
    assert report.source_type == SWAP_SOURCE_TYPE and report.ai_made
    assert check(encode_image(astronaut_rgb, fmt), watermark=False).source_type is None


@needs_watermark
def test_watermark_survives_jpeg_quality_80_and_is_absent_from_clean_images(astronaut_rgb):
    marked = encode_marked(astronaut_rgb, "png")
    pixels = decode_image(marked)
    psnr = 10 * np.log10(255.0 ** 2 / np.mean((pixels.astype(float) - astronaut_rgb) ** 2))
    assert psnr > 33, psnr  # invisible: measured 36.4 dB
    reencoded = encode_image(pixels, "jpeg", quality=80)  # pixels only: the metadata is gone
    report = check(reencoded)
    assert report.source_type is None and report.watermarked and report.ai_made
    assert report.watermark_bits >= MIN_MATCHING_BITS
    clean = check(encode_image(astronaut_rgb, "jpeg", quality=80))
    assert not clean.watermarked and not clean.ai_made and clean.watermark_bits < 45


def test_small_images_get_the_metadata_and_a_warning(astronaut_rgb):
    small = np.ascontiguousarray(astronaut_rgb[:200, :200])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = encode_marked(small, "png")
    assert any("256x256" in str(w.message) or "not installed" in str(w.message) for w in caught)
    report = check(data)
    assert report.ai_made and report.watermark_bits is None and report.note


def test_provenance_check_cli(tmp_path, astronaut_rgb):
    from faceforge.cli import main

    marked = tmp_path / "marked.png"
    marked.write_bytes(encode_marked(astronaut_rgb, "png"))
    clean = tmp_path / "clean.jpg"
    clean.write_bytes(encode_image(astronaut_rgb, "jpeg"))
    result = CliRunner().invoke(main, ["provenance", "check", str(marked), str(clean)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(f"{marked}: AI-made; metadata: IPTC DigitalSourceType compositeSynthetic")
    assert lines[1].startswith(f"{clean}: no AI mark found")
    result = CliRunner().invoke(main, ["provenance", "check", str(marked), "--json"])
    assert result.exit_code == 0 and '"ai_made": true' in result.output
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"no image")
    result = CliRunner().invoke(main, ["provenance", "check", str(bad)])
    assert result.exit_code == 1 and result.output.count("Error:") == 1
    assert CliRunner().invoke(main, ["provenance", "check"]).exit_code == 2


@needs_watermark
def test_swap_output_carries_both_marks(tmp_path, data_dir, astronaut_rgb):
    from faceforge.cli import main
    from faceforge.imaging import save_image

    portrait = data_dir / "photos" / "portraits" / "obama.jpg"
    if not portrait.is_file():
        pytest.skip(f"shared portrait {portrait} not found")
    target = save_image(tmp_path / "target.png", astronaut_rgb)
    out = tmp_path / "swapped.jpg"
    result = CliRunner().invoke(main, ["swap", str(portrait), str(target), "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = check(out.read_bytes())
    assert report.source_type == SWAP_SOURCE_TYPE and report.watermarked
    assert check(encode_image(decode_image(out.read_bytes()), "jpeg", 80)).watermarked
