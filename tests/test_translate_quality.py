"""Smoke test of ``benchmarks/translate_quality.py`` with tiny random generators and a random age model
(no trained weights exist yet): files written, figures present and consistent, CLI wiring."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from faceforge.checkpoints import save_checkpoint
from faceforge.imaging import save_image
from faceforge.models import create_model


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, astronaut_rgb):
    from faceforge.faces.align import align_face
    from faceforge.faces.detect import FaceDetector

    root = tmp_path_factory.mktemp("tq")
    torch.manual_seed(0)
    for name, direction in (("G_A", "A->B"), ("G_B", "B->A")):
        g = create_model("cyclegan_mobile", ngf=4, n_blocks=1)
        save_checkpoint(root / "run" / f"{name}.pt", g, "cyclegan_mobile", g.faceforge_config,
                        {"direction": direction, "config": {"crop_size": 128}})
    age = create_model("age_resnet")
    age_ckpt = save_checkpoint(root / "age" / "best.pt", age, "age_resnet", age.faceforge_config,
                               {"version": "random-test"})
    (root / "age" / "split.json").write_text(json.dumps({"train": ["20_0_0_20170101000000001.jpg.chip.jpg"],
                                                        "val": [], "test": []}))
    # young faces: the astronaut aligned on the utkface template, plus jittered copies, UTKFace-named
    face = FaceDetector(num_threads=1).detect(astronaut_rgb)[0]
    crop = align_face(astronaut_rgb, face, 256, "utkface").image
    rng = np.random.default_rng(0)
    for i in range(5):
        img = np.clip(crop.astype(int) + rng.integers(-8, 9, crop.shape), 0, 255).astype(np.uint8)
        save_image(root / "young" / f"{20 + i}_0_0_2017010100000000{i + 1}.jpg.chip.jpg", img, quality=95)
    return root, age_ckpt


def test_translate_quality_smoke(setup, astronaut_rgb):
    from benchmarks.translate_quality import run

    root, age_ckpt = setup
    save_image(root / "photos" / "astronaut.png", astronaut_rgb)
    res = run({"mobile": root / "run", "single": root / "run" / "G_A.pt"}, age_ckpt, root / "young",
              old=root / "young", limit=4, out_dir=root / "out", name="tq", grid_rows=3, figures=root / "fig",
              options={"single": {"feather": 0.2}}, photos=[root / "photos"], gray_faces=2)
    for path in (root / "out" / "tq.json", root / "out" / "tq.md", root / "fig" / "tq_grid.jpg",
                 root / "fig" / "tq_photos.jpg"):
        assert path.is_file()
    assert res["faces"] == 4 and res["size"] == 128
    assert res["estimator"]["overlap"] == {"checked": True, "in_estimator_train_or_val": 1, "in_estimator_test": 0}
    assert res["true_age"]["mean"] == pytest.approx(21.5)
    sens = res["estimator"]["blur_sensitivity"]  # plain blur: sharpness falls with sigma
    assert [r["sigma_px"] for r in sens] == [0.5, 1.0, 2.0, 4.0]
    assert sens[0]["sharpness_ratio_median"] > sens[-1]["sharpness_ratio_median"]
    g = res["generators"]["mobile"]
    assert g["params"] == sum(p.numel() for p in create_model("cyclegan_mobile", ngf=4, n_blocks=1).parameters())
    assert g["age_shift"]["mean"] == pytest.approx(g["age_after"]["mean"] - res["age_before"]["mean"], abs=1e-2)
    assert g["age_shift_beyond_blur_control"]["mean"] == pytest.approx(
        g["age_shift"]["mean"] - g["blur_control_age_shift"]["mean"], abs=1e-2)
    assert g["age_shift_beyond_colour_control"]["mean"] == pytest.approx(
        g["age_shift"]["mean"] - g["colour_control_age_shift"]["mean"], abs=1e-2)
    assert g["sharpness_ratio"]["n"] == 4 and g["sharpness_ratio"]["median"] >= 0
    assert g["blur_control_sigma"]["n"] == 4 and g["blur_control_sigma"]["median"] > 0  # random nets blur
    # same weights through a run folder or the generator file: same figures; the option reached the constructor
    assert res["generators"]["single"]["age_after"] == g["age_after"]
    opts = res["generators"]["single"]["options"]
    assert opts["constructor"] == {"feather": 0.2} and opts["call"] == {} and opts["feed"] in ("generator", "full")
    assert res["generators"]["single"]["settings"]["feather"] == 0.2
    # realism: the inputs are the reference set itself here, so their distance is 0; outputs are farther
    sets = res["realism"]["sets"]
    assert sets["young inputs"]["swd"]["swd_avg"] == 0.0 and sets["mobile"]["swd"]["swd_avg"] > 0
    assert {"mobile", "mobile blur control", "single", "single blur control"} <= set(sets)
    assert g["gray_inputs"]["n"] == 2 and g["gray_inputs"]["output_chroma_max"]["n"] == 2
    photos = g["photos"]
    assert photos["faces"] == 1 and photos["seam_ratio"]["n"] == 1 and photos["rows"][0]["file"] == "photos/astronaut.png"
    assert photos["sharpness_ratio"]["median"] > 0 and not photos["rows"][0]["gray_photo"]
    row = photos["rows"][0]  # the photo-level blur control: ages of input, output and blurred input
    assert {"age_in", "age_out", "age_blur_control", "blur_sigma"} <= set(row)
    assert photos["age_shift"]["median"] == pytest.approx(row["age_out"] - row["age_in"], abs=0.02)
    from faceforge import identity
    if identity.is_available():
        assert 0 <= g["same_person_fraction"] <= 1 and g["identity_distance"]["median"] > 0
        assert "kernel_identity" in sets["mobile"]
    else:
        assert "identity_distance" not in g
    md = (root / "out" / "tq.md").read_text()
    assert "| mobile | - | cyclegan_mobile |" in md and "feather=0.2" in md and "blur control" in md
    assert "shift beyond colour control" in md and "Colour control: each input" in md
    assert str(root) not in (root / "out" / "tq.json").read_text()  # no absolute paths in results
    grid = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(root / "fig" / "tq_grid.jpg"))
    assert grid.shape == (24 + 3 * 128, 7 * 128, 3)  # input | (output | blur control | colour control) per generator


def test_translate_quality_options_are_routed_and_checked():
    from benchmarks.translate_quality import parse_options, route_options

    opts = parse_options(["feather=0.3", "after:apply_postfilter=true", "after:mode=detail"], ["before", "after"])
    assert opts == {"before": {"feather": 0.3}, "after": {"feather": 0.3, "apply_postfilter": True, "mode": "detail"}}
    assert route_options({"feather": 0.3, "batch_size": 4}) == ({"feather": 0.3}, {"batch_size": 4})
    assert route_options({"strength": 1.5}) == ({}, {"strength": 1.5})  # run_model's option
    assert route_options({"feed": "full"}) == ({}, {})  # the benchmark's own option
    with pytest.raises(ValueError, match="feed"):
        route_options({"feed": "sideways"})
    with pytest.raises(ValueError, match="no option"):
        route_options({"no_such_option": 1})
    with pytest.raises(ValueError):
        parse_options(["x:feather=1"], ["before"])
    with pytest.raises(ValueError):
        parse_options(["feather"], ["before"])


def test_translate_quality_cli(setup):
    from faceforge.cli import main

    root, age_ckpt = setup
    result = CliRunner().invoke(main, ["bench", "translate-quality", "--generator", f"m={root / 'run'}",
                                       "--age-weights", str(age_ckpt), "--young", str(root / "young"), "--limit", "2",
                                       "--no-identity", "--out", str(root / "cli"), "--name", "x"])
    assert result.exit_code == 0, result.output
    data = json.loads((root / "cli" / "x.json").read_text())
    assert data["identity_metric"].startswith("skipped") and data["faces"] == 2
    missing = CliRunner().invoke(main, ["bench", "translate-quality", "--generator", f"m={root / 'run'}",
                                        "--age-weights", str(age_ckpt), "--young", str(root / "none")])
    assert missing.exit_code != 0 and "not found" in missing.output


def test_photo_masks_are_the_paste_mask(astronaut_rgb):
    """The seam band is cut from the mask paste_back blends with: pasting a white crop onto a black photo
    gives 255 * alpha."""
    from benchmarks.translate_quality import _photo_masks
    from faceforge.faces.align import align_face, paste_back
    from faceforge.faces.detect import FaceDetector

    face = FaceDetector(num_threads=1).detect(astronaut_rgb)[0]
    aligned = align_face(astronaut_rgb, face, 128, "utkface")
    black = np.zeros_like(astronaut_rgb)
    pasted = paste_back(black, np.full((128, 128, 3), 255, np.uint8), aligned, feather=0.1)
    alpha, face_mask = _photo_masks(astronaut_rgb.shape[:2], aligned, 128, 0.1)
    assert np.abs(pasted[..., 0].astype(np.float32) - 255 * alpha).max() <= 1.0
    # the face region lies inside the paste; its chin and brow reach into the feather ramp
    assert face_mask.sum() > 0 and (alpha[face_mask] > 0).all() and alpha[face_mask].mean() > 0.95
