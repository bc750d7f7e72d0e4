"""faceforge prepare: photos -> aligned training faces, every rejection reported with its reason."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from faceforge.imaging import encode_image, load_image
from faceforge.prepare import REASONS, dhash, prepare_folder


@pytest.fixture(scope="module")
def detector_and_mesh(detector, face_mesh):
    return detector, face_mesh


@pytest.fixture
def photos(tmp_path, astronaut_rgb):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "astronaut.png").write_bytes(encode_image(astronaut_rgb, "png"))
    (folder / "sub" / "astronaut_copy.png").write_bytes(encode_image(astronaut_rgb, "png"))          # same bytes
    (folder / "astronaut_q60.jpg").write_bytes(encode_image(astronaut_rgb, "jpeg", quality=60))      # re-encoded
    (folder / "wall.png").write_bytes(encode_image(np.full((240, 320, 3), 120, np.uint8), "png"))
    (folder / "notes.jpg").write_text("not a photo")
    small = cv2.resize(astronaut_rgb, (128, 128), interpolation=cv2.INTER_AREA)
    canvas = np.full((300, 300, 3), 90, np.uint8)
    canvas[86:214, 86:214] = small                          # a ~23 px face: a 64 px crop would upsample it 2.9x
    (folder / "far.png").write_bytes(encode_image(canvas, "png"))
    (folder / "readme.txt").write_text("skipped: not an image suffix")
    return folder


def test_prepare_keeps_one_aligned_face_and_reports_every_other(tmp_path, photos, detector_and_mesh):
    detector, mesh = detector_and_mesh
    dest = tmp_path / "dataset"
    report = prepare_folder(photos, dest, size=64, detector=detector, mesh=mesh)
    assert report.photos == 6
    assert [k.source for k in report.kept] == ["astronaut.png"]
    crop = load_image(dest / "00000.png")
    assert crop.shape == (64, 64, 3) and report.kept[0].upscale < 1  # the 512 px portrait's face is shrunk
    counts = report.counts()
    assert counts["duplicate"] == 2 and counts["no-face"] == 1 and counts["unreadable"] == 1, counts
    assert counts["too-small"] == 1, report.rejected
    by_source = {r.source: r for r in report.rejected}
    assert "byte-identical" in by_source["sub/astronaut_copy.png"].detail
    assert "00000.png" in by_source["astronaut_q60.jpg"].detail          # the re-encoded copy, found by dHash
    assert "upsampled" in by_source["far.png"].detail
    saved = json.loads((dest / "report.json").read_text())
    assert saved["kept_count"] == 1 and saved["rejected_counts"] == counts and set(saved["reasons"]) == set(REASONS)


def test_prepare_rejects_turned_heads_and_refuses_a_used_folder(tmp_path, photos, detector_and_mesh):
    detector, mesh = detector_and_mesh
    strict = prepare_folder(photos, tmp_path / "strict", size=64, max_yaw=0.5, detector=detector, mesh=mesh)
    turned = [r for r in strict.rejected if r.reason == "too-turned"]
    assert not strict.kept and turned and "yaw" in turned[0].detail  # the astronaut is turned by a few degrees
    with pytest.raises(FileExistsError):
        prepare_folder(photos, tmp_path / "strict", size=64, detector=detector, mesh=mesh)
    with pytest.raises(ValueError):
        prepare_folder(photos, tmp_path / "other", size=8, detector=detector, mesh=mesh)


def test_dhash_tolerates_re_encoding_but_not_another_face(astronaut_rgb):
    face = astronaut_rgb[60:190, 160:290]
    again = load_image_bytes(encode_image(face, "jpeg", quality=50))
    assert bin(dhash(face) ^ dhash(again)).count("1") <= 6
    assert bin(dhash(face) ^ dhash(np.ascontiguousarray(face[:, ::-1]))).count("1") > 6


def load_image_bytes(data: bytes) -> np.ndarray:
    from faceforge.imaging import decode_image

    return decode_image(data)


def test_cli_prints_the_reasons_and_fails_when_nothing_is_kept(tmp_path, photos):
    from faceforge.cli import main

    result = CliRunner().invoke(main, ["prepare", str(photos), "-o", str(tmp_path / "ds"), "--size", "64"])
    assert result.exit_code == 0, result.output
    assert "kept 1 face(s)" in result.output and "duplicate" in result.output and "too-small" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "wall.png").write_bytes(encode_image(np.full((100, 100, 3), 0, np.uint8), "png"))
    result = CliRunner().invoke(main, ["prepare", str(empty), "-o", str(tmp_path / "ds2")])
    assert result.exit_code == 1 and "no face was kept" in result.output
