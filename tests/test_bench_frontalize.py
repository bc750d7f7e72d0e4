"""``benchmarks.frontalize_quality`` end to end on a tiny random generator: per-bucket tables from the
held-out pairs of a pose-pair cache, the pair grid, and the real-photo part on the (near-frontal)
astronaut, listed below the yaw threshold and left out above it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from faceforge.checkpoints import save_checkpoint
from faceforge.imaging import load_image, save_image
from faceforge.models import create_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    torch.manual_seed(0)
    g = create_model("pix2pix_mobile", ngf=4, num_downs=5)
    path = tmp_path_factory.mktemp("g") / "G.pt"
    return save_checkpoint(path, g, "pix2pix_mobile", g.faceforge_config, {"input": "rerender",
                                                                            "config": {"crop_size": 32}})


def test_pairs_table_and_grid(tmp_path, generator, tiny_pose_pairs):
    pytest.importorskip("skimage")
    from benchmarks.frontalize_quality import markdown, run

    cache = tiny_pose_pairs(tmp_path / "pairs", n_faces=3)
    doc = run(str(generator), cache, out_dir=tmp_path / "out", figures=tmp_path / "fig", identity=False,
              pipeline_faces=1)
    from benchmarks import display_path

    assert doc["pairs"] == {"cache": display_path(cache), "test_pairs": 4, "test_faces": 1}
    assert not doc["pairs"]["cache"].startswith("/")  # no absolute path of the measuring machine
    pp = doc["pipeline_pairs"]  # the whole pipeline on the (noise) profiles: every pair accounted for
    assert pp["pairs"] == 4 and pp["frontalized"] + pp["refused"] + pp["no_face"] == 4
    assert set(doc["metrics"]) == {"15-30", "30-45", "45-60", "60-75", "all"}
    assert all(r["n"] == 1 for k, r in doc["metrics"].items() if k != "all")
    # the input's PSNR against the frontal is recomputed independently here
    index = json.loads((cache / "index.json").read_text())
    p = next(p for p in index["pairs"] if p["split"] == "test" and p["bucket"] == "15-30")
    x, y = (load_image(cache / p[k]).astype(np.float64) for k in ("rerender", "frontal"))
    assert doc["metrics"]["15-30"]["psnr_input"] == pytest.approx(10 * np.log10(255 ** 2 / ((x - y) ** 2).mean()),
                                                                  abs=1e-3)
    assert json.loads((tmp_path / "out" / "frontalize_quality.json").read_text())["metrics"] == doc["metrics"]
    md = (tmp_path / "out" / "frontalize_quality.md").read_text()
    assert md == markdown(doc) and "| 60-75 | 1 |" in md and "id profile" in md
    assert "The whole pipeline on held-out profiles" in md
    grid = load_image(tmp_path / "fig" / "frontalize_quality_pairs.png")
    assert grid.shape == (32, 13 * 32, 3)  # one face: 4 x (profile, input, output) + frontal


def test_photos_list_turned_faces(tmp_path, generator, astronaut_rgb, tiny_pose_pairs):
    pytest.importorskip("skimage")
    from benchmarks.frontalize_quality import run
    from faceforge.errors import MissingDependencyError

    photos = tmp_path / "photos"
    save_image(photos / "frontal.png", astronaut_rgb)
    cache = tiny_pose_pairs(tmp_path / "pairs", n_faces=2)
    try:
        doc = run(str(generator), cache, photos=[photos], min_yaw=0.0, photo_faces_n=2, out_dir=tmp_path / "out",
                  figures=tmp_path / "fig", identity=False)
    except MissingDependencyError as exc:
        pytest.skip(f"detector files absent: {exc}")
    turned = doc["photos"]["turned"]
    assert doc["photos"]["faces_total"] == 1 and len(turned) == 1
    assert turned[0]["file"] == "photos/frontal.png" and abs(turned[0]["yaw"]) < 15
    grid = load_image(tmp_path / "fig" / "frontalize_quality_photos.png")
    assert grid.shape == (256, 2 * 3 * 256, 3)  # one face (input | generator enlarged | new output), one blank
    doc = run(str(generator), cache, photos=[photos], min_yaw=15.0, out_dir=tmp_path / "out",
              figures=tmp_path / "fig2", identity=False, restore=(), tile=64)
    assert doc["photos"]["turned"] == []
    assert load_image(tmp_path / "fig2" / "frontalize_quality_photos.png").shape == (64, 2 * 3 * 64, 3)


def test_photo_quality_figures_without_pairs(tmp_path, generator, astronaut_rgb):
    """Real photos only (no pose-pair cache): sharpness ratios, the gray photo's chroma, realism against
    real near-frontal faces beside real-vs-real."""
    import cv2

    from benchmarks.frontalize_quality import markdown, run
    from faceforge.errors import MissingDependencyError

    photos, real = tmp_path / "photos", tmp_path / "real"
    save_image(photos / "frontal.png", astronaut_rgb)
    gray = np.repeat(cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    save_image(photos / "gray.png", gray)
    rng = np.random.default_rng(0)
    for i in range(4):  # jittered copies of the near-frontal astronaut as the "real frontal" folder
        save_image(real / f"{i}.png", np.clip(astronaut_rgb.astype(int) + rng.integers(-6, 7, astronaut_rgb.shape),
                                              0, 255).astype(np.uint8))
    try:
        doc = run(str(generator), None, photos=[photos], min_yaw=0.0, out_dir=tmp_path / "out",
                  figures=tmp_path / "fig", identity=False, real_frontal=real)
    except MissingDependencyError as exc:
        pytest.skip(f"detector files absent: {exc}")
    assert doc["pairs"] is None and doc["metrics"] is None
    q = doc["photos"]["quality"]
    names = ["generator (enlarged)", "rerender", "output_size=face", "output_size=face + classical restore"]
    assert q["faces"] == 2 and list(q["variants"]) == names and "not applicable" in q["seam"]
    assert q["face_px"]["median"] > 100 and all(r["output_px"] == round(r["face_px"]) for r in q["rows"])  # face's side
    assert q["upscaled"] == 0 and q["identity"] is False and q["visibility_seam"]["n"] <= 2
    for name in names:
        v = q["variants"][name]
        assert v["faces"] == 2 and v["sharpness_vs_crop"]["n"] == 2 and v["gray_faces"] == 1 and v["id_to_input"] is None
    rows = q["rows"]
    gray = next(r for r in rows if r["gray_photo"])
    assert gray["variants"]["output_size=face"]["chroma_p99"] <= 2  # grayscale in, grayscale out
    # the composed output keeps the camera's detail: far sharper than the random generator's crop enlarged
    for r in rows:
        v = r["variants"]
        assert v["output_size=face"]["sharpness_vs_crop"] > 2 * v["generator (enlarged)"]["sharpness_vs_crop"]
    sets = doc["photos"]["realism"]["sets"]
    assert set(sets) == {"real frontal (real-vs-real)", "inputs (rerender)", "outputs",
                         "new outputs (shrunk to the generator's side)"}
    assert sets["outputs"]["swd_avg"] > 0
    md = markdown(doc)
    assert "not measured in this run" in md and "real-vs-real" in md and "sharpness vs the input crop" in md
    assert "| output_size=face |" in md and "| generator (enlarged) |" in md
