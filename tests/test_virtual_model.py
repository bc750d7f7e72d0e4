"""The virtual-model pipeline: screen, swap, restore, mark; photos without a face pass through untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from faceforge.imaging import encode_image, load_image
from faceforge.models import get_spec
from faceforge.virtual_model import SEED_SOURCE_SIDE, VirtualModel, screening_scores, source_from_seed

needs_generator = pytest.mark.skipif(not get_spec("stylegan2").default_weights_path.is_file(),
                                     reason="no shipped StyleGAN2 generator in this checkout")


def test_screening_scores():
    s = screening_scores([True, True, False, False, True], [True, False, False, True, True])
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (2, 1, 1, 1)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert np.isnan(screening_scores([False], [False])["precision"])


@needs_generator
def test_seed_source_is_a_detectable_portrait():
    from faceforge.faces.detect import FaceDetector

    src = source_from_seed(3)
    assert src.shape == (SEED_SOURCE_SIDE, SEED_SOURCE_SIDE, 3) and src.dtype == np.uint8
    assert len(FaceDetector(num_threads=1).detect(src)) == 1
    with pytest.raises(ValueError):
        source_from_seed(-1)


@pytest.fixture
def shop(tmp_path, astronaut_rgb):
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "model.png").write_bytes(encode_image(astronaut_rgb, "png"))
    (folder / "product.jpg").write_bytes(encode_image(np.full((240, 320, 3), 200, np.uint8), "jpeg"))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    return folder


@needs_generator
def test_pipeline_swaps_restores_marks_and_passes_products_through(tmp_path, shop, astronaut_rgb):
    from faceforge.provenance import check_file

    vm = VirtualModel("seed:3", restore="classical")
    out = tmp_path / "out"
    reports = {r.photo: r for r in vm.run(sorted(shop.iterdir()), out)}
    assert reports["model.png"].status == "swapped" and reports["model.png"].swapped == 1
    assert reports["product.jpg"].status == "no-face" and reports["broken.jpg"].status == "error"
    assert (out / "product.jpg").read_bytes() == (shop / "product.jpg").read_bytes()   # untouched, byte for byte
    swapped = load_image(out / "model.png")
    x0, y0, x1, y1 = (int(v) for v in vm.detector.detect(astronaut_rgb)[0].box)
    assert np.abs(swapped[y0:y1, x0:x1].astype(int) - astronaut_rgb[y0:y1, x0:x1]).mean() > 5   # the face changed
    # far from the face only the invisible watermark (a few grey levels, spread over the image) differs
    assert np.abs(swapped[-40:].astype(int) - astronaut_rgb[-40:]).mean() < 3
    assert check_file(out / "model.png", watermark=False).ai_made
    with pytest.raises(FileExistsError):
        vm.run([shop / "model.png"], out)


@needs_generator
def test_cli_report(tmp_path, shop):
    from faceforge.cli import main

    out = tmp_path / "cli_out"
    result = CliRunner().invoke(main, ["virtual-model", str(shop), "--source", "seed:3", "-o", str(out),
                                       "--restore", "classical"])
    assert result.exit_code == 0, result.output
    assert "1 swapped, 1 no-face" in result.output and "1 error" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["pipeline"]["restore"] == "classical" and len(report["photos"]) == 3
    bad = CliRunner().invoke(main, ["virtual-model", str(shop), "--source", "seed:x", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "seed:N" in bad.output
