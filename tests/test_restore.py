"""Whole-photo face restoration (faceforge/restore.py) and ``faceforge restore`` (faceforge/cli/restore.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from faceforge.checkpoints import save_checkpoint
from faceforge.errors import WeightsNotFoundError
from faceforge.imaging import load_image, save_image
from faceforge.models.gpen import GPEN, GPENStyledConv
from faceforge.restore import (ENV_VAR, GPEN_FFHQ_TEMPLATE, FaceRestorer, _paste, boundary_difference,
                               classical_restore, is_grayscale, match_colour, resolve_weights, soft_mask)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def gpen_weights(tmp_path_factory):
    """A tiny random GPEN-32 saved as ``faceforge train gpen`` saves G_ema.pt (a run folder)."""
    run = tmp_path_factory.mktemp("gpen_run")
    torch.manual_seed(0)
    config = {"size": 32, "style_dim": 16, "n_mlp": 8, "channel_multiplier": 1, "narrow": 1 / 32}
    g = GPEN(**config)
    for m in g.modules():
        if isinstance(m, GPENStyledConv):
            m.noise_strength.data.fill_(0.5)
    save_checkpoint(run / "G_ema.pt", g, "gpen", config, {"face_template": "utkface", "version": "test-1"})
    return run


@pytest.fixture(scope="module")
def astronaut_faces(detector, astronaut_rgb):
    faces = detector.detect(astronaut_rgb)
    assert len(faces) == 1
    return faces


@pytest.fixture
def astronaut_png(tmp_path, astronaut_rgb):
    return save_image(tmp_path / "astronaut.png", astronaut_rgb)


# --------------------------------------------------------------------------------------------------
# weights


def test_resolve_weights_order_and_the_missing_weights_message(tmp_path, gpen_weights, no_gpen):
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights(None, environ={})
    message = str(info.value)
    assert "\n" not in message and "--weights" in message and ENV_VAR in message and "classical" in message
    assert resolve_weights(None, environ={ENV_VAR: str(gpen_weights)}) == gpen_weights / "G_ema.pt"
    assert resolve_weights(gpen_weights / "G_ema.pt", environ={ENV_VAR: "/elsewhere"}) == gpen_weights / "G_ema.pt"
    with pytest.raises(WeightsNotFoundError, match="not found"):
        resolve_weights(tmp_path / "absent.pt", environ={})


def test_cli_without_weights_says_so_in_one_line(astronaut_png, no_gpen):
    from faceforge.cli import main

    result = CliRunner().invoke(main, ["restore", str(astronaut_png), "-o", str(astronaut_png.with_name("o.png"))])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and ENV_VAR in lines[0] and "--weights" in lines[0]
    assert not astronaut_png.with_name("o.png").exists()


def test_converted_weights_use_the_gpen_template(tmp_path):
    from test_gpen import reference_layout  # tests/ is on sys.path (rootdir conftest, prepend import mode)

    path = tmp_path / "GPEN-BFR-16.pth"
    torch.save(reference_layout(16), path)
    r = FaceRestorer(weights=path, detector=object())
    assert r.size == 16 and r.template is GPEN_FFHQ_TEMPLATE
    assert r.restore_crops(np.zeros((2, 16, 16, 3), np.uint8)).shape == (2, 16, 16, 3)
    # eyes 0.39 / 0.61 of the side, mouth below the nose (the reference's framing)
    pts = GPEN_FFHQ_TEMPLATE.keypoints
    assert pts[0, 0] == pytest.approx(0.3946, abs=1e-3) and pts[1, 0] == pytest.approx(0.6044, abs=1e-3)
    assert pts[3, 1] > pts[2, 1] > pts[0, 1]


# --------------------------------------------------------------------------------------------------
# building blocks


def test_soft_mask_and_colour_matching():
    m = soft_mask(64)
    assert m.shape == (64, 64) and m[32, 32] == pytest.approx(1, abs=1e-3) and m[0, 0] < 0.01
    assert np.all(np.diff(m[32, :32]) >= -1e-6)  # rises monotonically towards the centre
    rng = np.random.default_rng(0)
    ref = rng.integers(60, 200, (32, 32, 3), dtype=np.uint8)
    tinted = np.clip(ref.astype(int) + [30, -20, 10], 0, 255).astype(np.uint8)
    fixed = match_colour(tinted, ref)
    assert np.abs(fixed.reshape(-1, 3).mean(0) - ref.reshape(-1, 3).mean(0)).max() < 3.0  # Lab vs RGB means
    assert np.abs(tinted.reshape(-1, 3).mean(0) - ref.reshape(-1, 3).mean(0)).max() > 15


def test_seam_measure_soft_mask_and_colour_matching_beat_a_hard_paste():
    """Mean absolute difference across the mask boundary: a face pasted 40 grey levels too bright leaves a seam
    (soft or hard mask alike: about half the offset); colour matching removes it."""
    rng = np.random.default_rng(1)
    photo = np.clip(rng.normal(128, 20, (96, 96, 3)), 0, 255).astype(np.uint8)
    inverse = np.array([[1.0, 0, 16], [0, 1.0, 16]])  # crop (64 px) -> photo
    crop = photo[16:80, 16:80]
    restored = np.clip(crop.astype(int) + 40, 0, 255).astype(np.uint8)  # brighter, like a drifting restorer
    seams = {}
    for name, mask, face in (("hard", soft_mask(64, inset=0.06, sigma=0.0), restored),
                             ("soft", soft_mask(64), restored),
                             ("soft+colour", soft_mask(64), match_colour(restored, crop, soft_mask(64)))):
        out, alpha, (x0, y0, x1, y1) = _paste(photo, face, inverse, mask)
        seams[name] = boundary_difference(photo[y0:y1, x0:x1], out[y0:y1, x0:x1], alpha)
        assert np.array_equal(out[:8], photo[:8])  # outside the mask nothing changes
    assert 12 < seams["hard"] < 28 and 12 < seams["soft"] < 28
    assert seams["soft+colour"] < 0.1 * seams["soft"]


def test_grayscale_detection_and_classical_filter():
    rng = np.random.default_rng(2)
    color = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    gray = np.repeat(color[..., :1], 3, axis=2)
    assert is_grayscale(gray) and not is_grayscale(color)
    noisy = np.clip(np.full((64, 64, 3), 120.0) + rng.normal(0, 12, (64, 64, 3)), 0, 255).astype(np.uint8)
    assert classical_restore(noisy).std() < 0.5 * noisy.std()  # non-local means removes the noise
    with pytest.raises(ValueError):
        classical_restore(noisy.astype(np.float32))


# --------------------------------------------------------------------------------------------------
# whole photos


def test_classical_restore_of_a_photo_keeps_the_background(astronaut_rgb, astronaut_faces, detector):
    r = FaceRestorer(method="classical", detector=detector)
    result = r.restore(astronaut_rgb, detected=astronaut_faces)
    assert result.image.shape == astronaut_rgb.shape and result.method == "classical" and not result.grayscale
    face = result.restored[0]
    x0, y0, x1, y1 = face.box
    changed = np.any(result.image != astronaut_rgb, axis=2)
    assert changed.any()
    ys, xs = np.nonzero(changed)  # only a square around the face changes
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 1.5 * max(x1 - x0, y1 - y0)
    assert abs(xs - cx).max() < half and abs(ys - cy).max() < half
    assert result.seam < 3.0  # grey levels across the mask boundary


def test_the_restorer_is_a_face_pipeline_with_per_photo_state(astronaut_rgb, astronaut_faces, gpen_weights, detector):
    """FaceRestorer runs FacePipeline's steps (timings per step); the canvas and the grey flag live on
    the copy that ran the photo, so a grey photo after a colour one (or concurrently) is not affected."""
    from faceforge.pipelines import FacePipeline

    r = FaceRestorer(weights=gpen_weights, upscale=2, detector=detector)
    assert isinstance(r, FacePipeline) and r.crop_size == 32 and r.model_step == "restore"
    run = r.run(astronaut_rgb, detected=astronaut_faces)
    assert list(run.timings_ms) == ["detect", "align", "restore", "paste"] and run.image.shape == (1024, 1024, 3)
    (job,) = run.jobs
    assert job.input.shape == job.output.shape == job.extra["pasted"].shape == (32, 32, 3) and job.extra["seam"] >= 0
    gray_in = np.repeat(astronaut_rgb.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    gray = r.restore(gray_in, detected=astronaut_faces)
    colour = r.restore(astronaut_rgb, detected=astronaut_faces)
    assert gray.grayscale and not colour.grayscale and r._canvas is None and not r._gray
    assert np.array_equal(colour.image[:100, :100], run.image[:100, :100])
    assert not np.array_equal(colour.image[..., 0], colour.image[..., 1])


def test_gpen_restore_upscale_and_grayscale(astronaut_rgb, astronaut_faces, gpen_weights, detector):
    r = FaceRestorer(weights=gpen_weights, upscale=2, detector=detector)
    assert r.describe()["version"] == "test-1" and r.size == 32
    result = r.restore(astronaut_rgb, detected=astronaut_faces)
    assert result.image.shape == (1024, 1024, 3) and result.restored[0].output.shape == (32, 32, 3)
    corner = result.image[:100, :100].astype(int)  # background: the Lanczos upscale, untouched by the paste
    import cv2
    lanczos = cv2.resize(astronaut_rgb, (1024, 1024), interpolation=cv2.INTER_LANCZOS4)[:100, :100].astype(int)
    assert np.array_equal(corner, lanczos)
    gray_in = np.repeat(astronaut_rgb.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    gray = FaceRestorer(weights=gpen_weights, detector=detector).restore(gray_in, detected=astronaut_faces)
    assert gray.grayscale and np.array_equal(gray.image[..., 0], gray.image[..., 1])
    assert np.array_equal(gray.image[..., 1], gray.image[..., 2]) and not np.array_equal(gray.image, gray_in)


def test_face_selection_and_errors(astronaut_rgb, astronaut_faces, gpen_weights, detector):
    from faceforge.errors import FaceSelectionError

    r = FaceRestorer(weights=gpen_weights, detector=detector)
    with pytest.raises(FaceSelectionError):
        r.restore(astronaut_rgb, faces=[3], detected=astronaut_faces)
    with pytest.raises(ValueError):
        r.restore(astronaut_rgb.astype(np.float32), detected=astronaut_faces)
    with pytest.raises(ValueError, match="method"):
        FaceRestorer(method="magic")
    with pytest.raises(ValueError, match="crops"):
        r.restore_crops(np.zeros((1, 16, 16, 3), np.uint8))


@pytest.mark.slow
def test_cli_restores_a_photo(tmp_path, astronaut_png, gpen_weights, monkeypatch):
    import json

    from faceforge.cli import main

    out = tmp_path / "restored.png"
    monkeypatch.setenv(ENV_VAR, str(gpen_weights))
    result = CliRunner().invoke(main, ["restore", str(astronaut_png), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output[result.output.index("{"):])
    assert doc["model"]["method"] == "gpen" and doc["faces"][0]["restored"] and doc["seam"] is not None
    assert load_image(out).shape == (512, 512, 3)
    classical = CliRunner().invoke(main, ["restore", str(astronaut_png), "-o", str(out), "--method", "classical",
                                          "--upscale", "2"])
    assert classical.exit_code == 0 and load_image(out).shape == (1024, 1024, 3)


def test_benchmark_helpers_rank_the_severities(tmp_path):
    from benchmarks.restore_quality import baseline_methods, evaluate, grid, markdown, sharpness

    rng = np.random.default_rng(3)
    clean = np.stack([np.clip(cv2_blobs(rng), 0, 255).astype(np.uint8) for _ in range(4)])
    metrics, outputs = evaluate(clean, baseline_methods(32), ("mild", "severe"), seed=0, identity=False)
    assert set(metrics["mild"]) == {"input", "bicubic", "lanczos", "nlmeans+usm"}
    assert metrics["mild"]["input"]["psnr"] > metrics["severe"]["input"]["psnr"]
    assert metrics["mild"]["lanczos"]["ssim"] > metrics["severe"]["lanczos"]["ssim"]
    assert outputs["severe"]["bicubic"].shape == clean.shape
    assert grid(clean, outputs, 2, ["input", "lanczos"]).shape == (64, 32 * 5, 3)
    flat = np.full((32, 32, 3), 100, np.uint8)
    assert sharpness(flat) == 0 and sharpness(clean[0]) > 0
    doc = {"faces": 4, "size": 32, "seed": 0, "restorer": None, "metrics": metrics, "seconds": 1.0, "machine": "x"}
    assert "| lanczos |" in markdown(doc) and "baselines only" in markdown(doc)


def cv2_blobs(rng) -> np.ndarray:
    import cv2

    img = np.full((32, 32, 3), rng.integers(30, 220, 3), np.float64)
    cv2.circle(img, (16, 16), 10, [float(v) for v in rng.integers(0, 255, 3)], -1)
    cv2.circle(img, (12, 13), 2, (10.0, 10.0, 10.0), -1)
    cv2.circle(img, (20, 13), 2, (10.0, 10.0, 10.0), -1)
    return img + rng.normal(0, 6, img.shape)


def test_restore_last_restores_only_the_given_faces(astronaut_rgb):
    from faceforge.faces.detect import FaceDetector
    from faceforge.restore import restore_last

    detector = FaceDetector(num_threads=1)
    faces = detector.detect(astronaut_rgb)
    same, method = restore_last(astronaut_rgb, [], "classical", detector=detector)
    assert same is astronaut_rgb and method == "none"
    out, method = restore_last(astronaut_rgb, faces, "classical", detector=detector)
    assert method == "classical" and out.shape == astronaut_rgb.shape
    x0, y0, x1, y1 = (int(v) for v in faces[0].box)
    assert np.abs(out[y0:y1, x0:x1].astype(int) - astronaut_rgb[y0:y1, x0:x1]).mean() > 0.5   # the face changed
    assert np.array_equal(out[-40:], astronaut_rgb[-40:])                                      # the rest did not
    with pytest.raises(ValueError):
        restore_last(astronaut_rgb, faces, "magic")


def test_restorers_share_one_loaded_model_until_the_file_changes(tmp_path, gpen_weights):
    """A server builds a restorer per request and an emoji batch one per image: GPEN is loaded once per
    file; a file rewritten in place is loaded again."""
    import os
    import shutil

    path = shutil.copy(gpen_weights / "G_ema.pt", tmp_path / "G_ema.pt")
    a, b = (FaceRestorer(weights=path, detector=object()) for _ in range(2))
    assert a.model is b.model and a.meta == b.meta and a.meta is not b.meta
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    c = FaceRestorer(weights=path, detector=object())
    assert c.model is not a.model and c.describe()["version"] == a.describe()["version"]
