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


def test_translate_quality_smoke(setup):
    from benchmarks.translate_quality import run

    root, age_ckpt = setup
    res = run({"mobile": root / "run", "single": root / "run" / "G_A.pt"}, age_ckpt, root / "young",
              old=root / "young", limit=4, out_dir=root / "out", name="tq", grid_rows=3)
    for suffix in (".json", ".md", "_grid.png"):
        assert (root / "out" / f"tq{suffix}").is_file()
    assert res["faces"] == 4 and res["size"] == 128
    assert res["estimator"]["overlap"] == {"checked": True, "in_estimator_train_or_val": 1, "in_estimator_test": 0}
    assert res["true_age"]["mean"] == pytest.approx(21.5)
    g = res["generators"]["mobile"]
    assert g["params"] == sum(p.numel() for p in create_model("cyclegan_mobile", ngf=4, n_blocks=1).parameters())
    assert g["age_shift"]["mean"] == pytest.approx(g["age_after"]["mean"] - res["age_before"]["mean"], abs=1e-2)
    # same weights through a run folder or the generator file: same figures
    assert res["generators"]["single"]["age_after"] == g["age_after"]
    from faceforge import identity
    if identity.is_available():
        assert 0 <= g["same_person_fraction"] <= 1 and g["identity_distance"]["median"] > 0
    else:
        assert "identity_distance" not in g
    md = (root / "out" / "tq.md").read_text()
    assert "| mobile | cyclegan_mobile |" in md
    grid = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(root / "out" / "tq_grid.png"))
    assert grid.shape == (24 + 3 * 128, 3 * 128, 3)


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
