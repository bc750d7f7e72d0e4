"""The restore-as-last-step benchmark's figures (benchmarks/restore_last_step.py) on constructed crops."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.restore_last_step import SMALL_FACE, face_metrics, grid_image, markdown, measurement_side, summarise
from faceforge.metrics import gaussian_blur


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    rng = np.random.default_rng(0)
    return gaussian_blur(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8), 1.0)


def test_sharpness_ratio_of_a_copy_is_one_and_of_a_blur_below(crop):
    rows = face_metrics(crop, {"off": crop.copy(), "blurred": gaussian_blur(crop, 2.0)}, identity=False)
    assert rows["off"]["sharpness_ratio"] == pytest.approx(1.0)
    assert 0 < rows["blurred"]["sharpness_ratio"] < 0.5
    assert set(rows["off"]) == {"sharpness_ratio", "sharpness_ratio_half"}
    assert rows["off"]["sharpness_ratio_half"] == pytest.approx(1.0) and rows["blurred"]["sharpness_ratio_half"] < 1
    noisy = np.clip(crop.astype(int) + np.random.default_rng(1).normal(0, 12, crop.shape), 0, 255).astype(np.uint8)
    gain = face_metrics(crop, {"off": noisy}, identity=False)["off"]
    assert gain["sharpness_ratio"] > gain["sharpness_ratio_half"] > 1  # noise counts less at half scale


def test_identity_columns(crop):
    from faceforge import identity

    if not identity.is_available():
        pytest.skip("dlib ResNet model files not installed")
    rows = face_metrics(crop, {"off": crop.copy(), "classical": gaussian_blur(crop, 1.5)}, {"source": crop[::-1]})
    assert rows["off"]["id_input"] == pytest.approx(0.0, abs=1e-6) and "id_off" not in rows["off"]
    assert rows["classical"]["id_off"] >= 0 and "id_source" in rows["classical"]
    assert rows["classical"]["id_blur_control"] >= 0


def test_summary_markdown_and_grid():
    rows = [{"task": "translate", "file": "p/a.jpg", "face": i, "side": 128, "face_side": side,
             "methods": {"off": {"sharpness_ratio": 0.5}, "classical": {"sharpness_ratio": r}}}
            for i, (side, r) in enumerate([(64, 0.4), (200, 0.8), (300, 0.9)])]
    summary = summarise(rows, ["off", "classical"], ["translate"])
    s = summary["translate"]
    assert s["classical"]["sharpness_ratio"]["median"] == pytest.approx(0.8)
    assert s["classical"]["sharper_than_off"] == pytest.approx(2 / 3, abs=1e-3)
    assert s["by_face_side"]["classical"][f"<= {SMALL_FACE}"]["n"] == 1
    doc = {"created": "t", "photos": ["p/a.jpg"], "source": None, "gpen": None, "machine": {"torch_threads": 1},
           "seconds": 1.0, "summary": summary, "skipped": {"translate": []}, "note": "n"}
    text = markdown(doc)
    assert "| translate | classical | 3 | 0.80 [0.60, 0.85] | n/a | 67 % |" in text and "gpen rows absent" in text
    tile = np.zeros((112, 3 * 112, 3), np.uint8)
    assert grid_image({"translate": [tile, tile], "swap": []}, ["off", "classical"]).shape[0] == 2 * 112 + 18


def test_measurement_side_follows_the_face_and_is_clipped():
    from faceforge.faces.align import get_template

    tpl = get_template("utkface")
    kps = np.zeros((6, 2))
    kps[list(tpl.indices)] = tpl.points(200)
    assert measurement_side(kps) == 200
    assert measurement_side(kps * 0.1) == 64 and measurement_side(kps * 10) == 512


@pytest.mark.slow
def test_run_end_to_end_on_the_astronaut(tmp_path, astronaut_rgb, monkeypatch):
    """The whole benchmark on one photo (the installed translator and frontalizer, a tiny random GPEN); the swap
    source is the mirrored astronaut, so the swap may be refused as the same face (then it is counted)."""
    import json
    import os

    import torch

    from benchmarks.restore_last_step import run
    from faceforge.checkpoints import save_checkpoint
    from faceforge.imaging import save_image
    from faceforge.models.gpen import GPEN
    from faceforge.restore import ENV_VAR

    monkeypatch.delenv(ENV_VAR, raising=False)
    photos = tmp_path / "photos"
    photos.mkdir()
    save_image(photos / "astronaut.png", astronaut_rgb)
    source = save_image(tmp_path / "source.png", np.ascontiguousarray(astronaut_rgb[:, ::-1]))
    torch.manual_seed(0)
    config = {"size": 32, "style_dim": 16, "n_mlp": 8, "channel_multiplier": 1, "narrow": 1 / 32}
    gpen = save_checkpoint(tmp_path / "G_ema.pt", GPEN(**config), "gpen", config, {"face_template": "utkface"})
    from faceforge import frontalize, translate
    from faceforge.errors import WeightsNotFoundError

    try:
        translate.resolve_weights(translate.get_task("age"), None)
        frontalize.resolve_weights(None)
    except WeightsNotFoundError as exc:
        pytest.skip(f"installed weights absent: {exc}")
    doc = run(portraits=photos, groups_dir=photos, groups=(), source=source, gpen_weights=str(gpen),
              identity=False, out_dir=tmp_path / "out", grid=tmp_path / "grid.png")
    assert doc["methods"] == ["off", "classical", "gpen"] and ENV_VAR not in os.environ
    for task in ("translate", "frontalize"):
        rows = [r for r in doc["rows"] if r["task"] == task]
        assert len(rows) == 1 and set(rows[0]["methods"]) == {"off", "classical", "gpen"}
        assert rows[0]["methods"]["classical"]["sharpness_ratio"] != rows[0]["methods"]["off"]["sharpness_ratio"]
    swaps = [r for r in doc["rows"] if r["task"] == "swap"]
    assert len(swaps) + len(doc["skipped"]["swap"]) == 1
    saved = json.loads((tmp_path / "out" / "restore_last_step.json").read_text())
    assert saved["summary"]["frontalize"]["gpen"]["sharpness_ratio"]["n"] == 1
    assert (tmp_path / "grid.png").is_file() and (tmp_path / "out" / "restore_last_step.md").is_file()
