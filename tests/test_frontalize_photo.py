"""Whole-photo frontalization: geometry helpers, the Frontalizer on the astronaut photo and on a turned
rendering of it, weights layouts and errors, ``faceforge frontalize`` and ``POST /v1/frontalize``.

The generator is a tiny random ``pix2pix_mobile`` (ngf 4, 5 levels, 64 px) saved here, so these tests
check the pipeline's geometry and the API's contract fast; the shipped weights' look is measured by
``benchmarks/frontalize_quality.py`` and their loading by ``test_shipped_default_weights``.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from PIL import Image

from faceforge.models import cards
from faceforge.checkpoints import save_checkpoint
from faceforge.errors import CheckpointError, NoFaceError, PoseOutOfRangeError, WeightsNotFoundError
from faceforge.frontalize import (ENV_VAR, Frontalizer, _SYMMETRIC, calibrate_yaw, face_roll, load_generator,
                                  pose_tolerant_matrix, rerender_frontal, resolve_weights)
from faceforge.models import create_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROBLEM = "application/problem+json"
SIZE, RENDER = 64, 128


def _save(path, input_mode="rerender", arch="pix2pix_mobile"):
    torch.manual_seed(0)
    g = create_model(arch, ngf=4, num_downs=5)
    return save_checkpoint(path, g, arch, g.faceforge_config, {"input": input_mode, "config": {"crop_size": SIZE}})


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("fr") / "G.pt")


@pytest.fixture(scope="module")
def frontalizer(weights):
    return Frontalizer(weights, render_size=RENDER, num_threads=1)


@pytest.fixture(scope="module")
def astronaut_png(astronaut_rgb) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(astronaut_rgb).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def blank_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((96, 128, 3), 200, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------
# geometry


def test_symmetric_pairs_match_rotate():
    from faceforge.faces.rotate import SYMMETRIC_PAIRS
    assert _SYMMETRIC == SYMMETRIC_PAIRS


def _synthetic_points(yaw=0.0, roll=0.0):
    """A 468-point 'face': random points in an ellipse, mirrored pairs placed symmetrically."""
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(-40, 40, 468), rng.uniform(-50, 50, 468), rng.uniform(-10, 10, 468)])
    for a, b in _SYMMETRIC:
        pts[b] = pts[a] * [-1, 1, 1]
    pts[[p[0] for p in _SYMMETRIC], 0] = -np.abs(pts[[p[0] for p in _SYMMETRIC], 0]) - 5
    pts[[p[1] for p in _SYMMETRIC], 0] = -pts[[p[0] for p in _SYMMETRIC], 0]
    t = np.radians(roll)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    pts[:, :2] = pts[:, :2] @ rot.T + [300, 200]
    return pts


def test_roll_and_pose_tolerant_matrix():
    pts = _synthetic_points(roll=12.0)
    assert face_roll(pts) == pytest.approx(12.0, abs=1e-6)
    m = pose_tolerant_matrix(pts, 200)
    xy = pts[:, :2] @ m[:, :2].T + m[:, 2]
    # roll removed, box height and centre where the template says
    assert face_roll(np.column_stack([xy, pts[:, 2]])) == pytest.approx(0.0, abs=1e-6)
    assert (xy[:, 1].max() - xy[:, 1].min()) == pytest.approx(0.9655 * 200, rel=1e-6)
    assert (xy.min(0) + xy.max(0)) / 2 == pytest.approx([100.0, 0.4677 * 200], abs=1e-6)
    with pytest.raises(ValueError):
        pose_tolerant_matrix(pts[:10], 200)


def test_rerender_at_zero_yaw_is_nearly_the_crop(frontalizer, astronaut_rgb):
    face = frontalizer.detector.detect(astronaut_rgb)[0]
    prepared, pts = frontalizer._crop(astronaut_rgb, face)
    back, covered = rerender_frontal(prepared.crop, pts, 0.0)
    assert back.shape == prepared.crop.shape and back.dtype == np.uint8 and covered.mean() > 0.95
    assert np.abs(back.astype(int) - prepared.crop.astype(int)).mean() < 2.0


# --------------------------------------------------------------------------------------------------
# weights


def test_resolve_weights_names_the_env_var(tmp_path, weights, without_card):
    import faceforge.frontalize as frontalize

    assert resolve_weights(None, environ={}) == frontalize.default_weights_path() or \
        not frontalize.default_weights_path().exists()
    without_card(frontalize.CARD)  # a checkout without it
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights(None, environ={})
    assert ENV_VAR in str(info.value)
    with pytest.raises(WeightsNotFoundError):
        resolve_weights(tmp_path / "absent", environ={})
    assert resolve_weights(None, environ={ENV_VAR: str(weights)}) == weights


def test_load_generator_layouts(tmp_path, weights):
    run = tmp_path / "run"
    _save(run / "G.pt", input_mode="profile")
    data_config = {"size": 96, "buckets": [[15, 30], [30, 45]]}
    (run / "config.json").write_text(json.dumps({"crop_size": SIZE, "data_config": data_config}))
    g, info = load_generator(run)
    assert info["input"] == "profile" and info["crop_size"] == SIZE and info["render_size"] == 96
    assert info["max_yaw"] == 45.0 and not g.training
    with pytest.raises(WeightsNotFoundError):
        load_generator(tmp_path)  # a folder without G.pt
    other = create_model("cyclegan_mobile", ngf=4, n_blocks=1)
    save_checkpoint(tmp_path / "cg.pt", other, "cyclegan_mobile", other.faceforge_config)
    with pytest.raises(CheckpointError, match="not a 'frontalize' model"):
        load_generator(tmp_path / "cg.pt")


# --------------------------------------------------------------------------------------------------
# the frontalizer


def test_frontalize_astronaut(frontalizer, astronaut_rgb):
    """``output_size="generator"``: the generator's own crop, made as before this option existed (the
    render-size crop, its rerender, the generator on it)."""
    result = frontalizer.frontalize(astronaut_rgb, output_size="generator")
    face = result.faces[0]
    assert face.frontalized and face.in_range and face.warning is None
    assert face.output.shape == (SIZE, SIZE, 3) and face.output.dtype == np.uint8
    assert face.crop.shape == (RENDER, RENDER, 3) and face.rerender.shape == (RENDER, RENDER, 3)
    assert abs(face.yaw) < 10 and face.box.shape == (4,)
    assert set(result.timings_ms) == {"detect", "landmarks", "render", "generate", "detail"}
    assert face.visibility is None and face.generated is face.output
    prepared, pts = frontalizer._crop(astronaut_rgb, frontalizer.detector.detect(astronaut_rgb)[0])
    back, _ = rerender_frontal(prepared.crop, pts, prepared.yaw_mesh)
    np.testing.assert_array_equal(face.crop, prepared.crop)
    np.testing.assert_array_equal(face.output, frontalizer.frontalize_crops([back])[0])
    d = face.to_dict()
    assert json.dumps(d) and d["output_px"] == SIZE and d["face_px"] == pytest.approx(face.face_px, abs=0.05)
    assert d["upscaled"] is (SIZE > round(face.face_px))


def test_output_size_face_and_integer(frontalizer, astronaut_rgb):
    """The default output has the face's own side (at least the generator's), composed at that side; an
    integer gives that side; ``upscaled`` says whether the output has more pixels than the camera saw."""
    from faceforge.frontalize import MAX_OUTPUT_SIDE, _resize, compose_frontal

    face = frontalizer.frontalize(astronaut_rgb, "largest").frontalized[0]
    side = round(face.face_px)
    assert SIZE < side < MAX_OUTPUT_SIDE and face.output.shape == (side, side, 3) and face.upscaled is False
    assert face.crop.shape == face.rerender.shape == (side, side, 3) and face.visibility.shape == (side, side)
    assert face.generated.shape == (SIZE, SIZE, 3)
    np.testing.assert_array_equal(face.output, compose_frontal(face.rerender, face.generated, face.visibility))
    assert face.to_dict()["output_px"] == side and face.to_dict()["upscaled"] is False
    big = frontalizer.frontalize(astronaut_rgb, "largest", output_size=2 * side).frontalized[0]
    assert big.output.shape == (2 * side, 2 * side, 3) and big.upscaled is True
    small = frontalizer.frontalize(astronaut_rgb, "largest", output_size="48").frontalized[0]
    assert small.output.shape == (48, 48, 3) and small.visibility.shape == (SIZE, SIZE)  # composed at S, shrunk
    composed = compose_frontal(small.rerender, small.generated, small.visibility)
    np.testing.assert_array_equal(small.output, _resize(composed, 48))


def test_bad_output_size_is_a_clear_error(frontalizer, astronaut_rgb):
    from faceforge.frontalize import parse_output_size

    assert parse_output_size(" Face ") == "face" and parse_output_size("256") == 256 and parse_output_size(64) == 64
    for bad in ("huge", "0", "31", "1025", "-64", "12.5", "", True, 2000):
        with pytest.raises(ValueError, match=r"output_size must be 'face', 'generator' or an integer side in "
                                             r"\[32, 1024\] px"):
            parse_output_size(bad)
    with pytest.raises(ValueError, match="output_size"):
        frontalizer.frontalize(astronaut_rgb, output_size="big")


def test_compose_keeps_seen_pixels_and_uses_the_generator_elsewhere():
    """With a generator that changes nothing, the seen pixels are the rerender's (full detail) and the
    hidden ones the generator's output enlarged; a grey face stays grey whatever the generator's tint."""
    import cv2

    from faceforge.frontalize import _resize, compose_frontal

    rng = np.random.default_rng(0)
    hi = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    lo = _resize(hi, 32)
    w = np.zeros((96, 96), np.float32)
    w[:, :48] = 1.0
    out = compose_frontal(hi, lo, w, sigma=1.0)
    assert out.shape == hi.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :48], hi[:, :48])
    up = cv2.resize(lo, (96, 96), interpolation=cv2.INTER_LINEAR).astype(int)
    assert np.abs(out[:, 48:].astype(int) - up[:, 48:]).max() <= 1
    grey = np.repeat(hi[..., :1], 3, axis=2)
    tinted = _resize(grey, 32).astype(int)
    tinted[..., 0] += 40  # a generator with a red cast
    out = compose_frontal(grey, np.clip(tinted, 0, 255).astype(np.uint8), np.full((96, 96), 0.5, np.float32))
    assert np.ptp(out.astype(int), axis=2).max() == 0
    with pytest.raises(ValueError, match="visibility"):
        compose_frontal(hi, lo, np.ones((32, 32)))


def test_visibility_marks_the_hidden_side_of_a_turned_face(frontalizer, astronaut_rgb):
    from faceforge.faces.rotate import build_scene, render_yaw
    from faceforge.frontalize import rerender_visibility

    face = frontalizer.detector.detect(astronaut_rgb)[0]
    prepared, pts = frontalizer._crop(astronaut_rgb, face)
    frontal = rerender_visibility(pts, 0.0, RENDER)
    assert frontal.shape == (RENDER, RENDER) and frontal.dtype == np.float32
    inner = frontal[RENDER // 4:3 * RENDER // 4, RENDER // 4:3 * RENDER // 4]
    assert inner.min() > 0.99 and 0 <= frontal.min() and frontal.max() <= 1
    turned = render_yaw(prepared.crop, build_scene(pts, (RENDER, RENDER)), 40.0).image
    photo = np.pad(turned, ((64, 64), (64, 64), (0, 0)), mode="edge")
    got = frontalizer.prepare(photo, frontalizer.detector.detect(photo)[0], output_size="face")
    w, side = got.visibility, got.visibility.shape[0]
    assert got.yaw > 10 and side == got.rerender.shape[0] > SIZE
    band = slice(side // 4, 3 * side // 4)
    near, far = w[band, side // 4:side // 2].mean(), w[band, side // 2:3 * side // 4].mean()
    # the nose pointed to the image's right: the head turned to the subject's left, whose left cheek (the
    # image's right half) faced away from the camera
    assert far < near - 0.1 and far < 0.9 and near > 0.9
    with pytest.raises(ValueError):
        rerender_visibility(pts, 0.0, RENDER, feather=-1)


def test_grayscale_in_grayscale_out(frontalizer, astronaut_rgb):
    grey = np.repeat(astronaut_rgb.mean(axis=2, keepdims=True).round().astype(np.uint8), 3, axis=2)
    face = frontalizer.frontalize(grey, "largest").frontalized[0]
    assert face.output.shape[0] > SIZE and np.ptp(face.output.astype(int), axis=2).max() <= 1
    small = frontalizer.frontalize(grey, "largest", output_size=SIZE // 2).frontalized[0]  # composed at S too
    assert small.output.shape[0] == SIZE // 2 and np.ptp(small.output.astype(int), axis=2).max() <= 1
    assert np.ptp(small.generated.astype(int), axis=2).max() > 2  # the random generator itself tints it


def test_turned_face_sign_and_out_of_range_flag(frontalizer, astronaut_rgb):
    from faceforge.faces.rotate import build_scene, render_yaw

    face = frontalizer.detector.detect(astronaut_rgb)[0]
    prepared, pts = frontalizer._crop(astronaut_rgb, face)
    turned = render_yaw(prepared.crop, build_scene(pts, (RENDER, RENDER)), 40.0).image
    photo = np.pad(turned, ((64, 64), (64, 64), (0, 0)), mode="edge")
    got = frontalizer.frontalize(photo, faces="largest").frontalized[0]
    assert got.yaw > 10  # nose to the image's right -> positive
    assert got.yaw_mesh > 0 and abs(got.yaw - calibrate_yaw(got.yaw_mesh)) < 1e-9 and got.yaw > got.yaw_mesh
    strict = Frontalizer(frontalizer.weights_path, render_size=RENDER, max_yaw=5.0,
                         detector=frontalizer.detector, mesh=frontalizer.mesh)
    with pytest.warns(UserWarning, match="beyond the trained range"), \
            pytest.raises(PoseOutOfRangeError, match=r"trained range \|yaw\| <= 5 deg") as refused:
        strict.frontalize(photo, faces="largest")
    assert refused.value.status == 422 and refused.value.to_problem()["yaws"][0] > 5
    lenient = Frontalizer(frontalizer.weights_path, render_size=RENDER, max_yaw=5.0, refuse_out_of_range=False,
                          detector=frontalizer.detector, mesh=frontalizer.mesh)
    with pytest.warns(UserWarning, match="beyond the trained range"):
        flagged = lenient.frontalize(photo, faces="largest").faces
    chosen = [f for f in flagged if f.selected][0]
    assert chosen.frontalized and not chosen.in_range and "trained range" in chosen.warning


def test_calibrated_yaw_reads_turned_heads_larger_and_keeps_the_sign():
    from faceforge.frontalize import YAW_CALIBRATION

    assert calibrate_yaw(0.0) == 0.0
    values = [calibrate_yaw(y) for y in np.linspace(0, 80, 81)]
    assert np.all(np.diff(values) > 0)  # strictly increasing, also beyond the last knot
    assert calibrate_yaw(-30.0) == -calibrate_yaw(30.0) and calibrate_yaw(30.0) == pytest.approx(43.2)
    assert calibrate_yaw(20.0) > 20.0 * 1.2  # Face Mesh reads 0.57-0.75 of the yaw: the map scales it up
    assert calibrate_yaw(50.0) == pytest.approx(YAW_CALIBRATION[-1][1] + 5 * (55.7 - 52.7) / 5)
    assert calibrate_yaw(10.0, ((0, 0), (90, 45))) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        calibrate_yaw(float("nan"))
    with pytest.raises(ValueError, match="increasing"):
        calibrate_yaw(10.0, ((0, 0), (10, 5), (10, 6)))


def test_keypoint_profile_ratio():
    from faceforge.frontalize import PROFILE_KEYPOINT_RATIO, keypoint_profile_ratio

    frontal = np.array([[40, 50], [80, 50], [60, 70], [60, 85], [20, 55], [100, 55]], float)
    assert keypoint_profile_ratio(frontal) == 0.0
    turned = frontal.copy()
    turned[2, 0] = 60 + 0.9 * 40  # nose 0.9 eye distances to the image's right
    assert keypoint_profile_ratio(turned) == pytest.approx(0.9) and 0.9 >= PROFILE_KEYPOINT_RATIO
    mirrored = turned.copy()
    mirrored[:, 0] = 120 - mirrored[:, 0]
    assert keypoint_profile_ratio(mirrored) == pytest.approx(-0.9)
    with pytest.raises(ValueError):
        keypoint_profile_ratio(np.zeros((2, 2)))


def test_keypoints_showing_a_profile_are_refused(frontalizer, astronaut_rgb):
    from faceforge.faces.detect import Face

    face = frontalizer.detector.detect(astronaut_rgb)[0]
    k = np.array(face.keypoints, np.float32)
    eye = float(np.hypot(*(k[1] - k[0])))
    k[2, 0] = (k[0, 0] + k[1, 0]) / 2 + 1.2 * eye  # what BlazeFace reports on a profile
    profile = Face(box=face.box, keypoints=k, score=face.score)
    with pytest.warns(UserWarning, match="keypoints show a profile"), pytest.raises(PoseOutOfRangeError):
        frontalizer.frontalize(astronaut_rgb, detected=[profile])


def test_small_close_up_face_is_found_as_by_detect(frontalizer, astronaut_rgb):
    """A face filling a 112 px crop: outside the full-range model's scale range, found by the "auto" policy
    of ``faceforge detect`` (short range for close-ups), which the frontalizer now uses."""
    import cv2

    from faceforge.faces.detect import FaceDetector

    x0, y0, x1, y1 = frontalizer.detector.detect(astronaut_rgb)[0].box
    side, cx, cy = 0.9 * (x1 - x0), (x0 + x1) / 2, (y0 + y1) / 2
    a, b = int(cx - side / 2), int(cy - side / 2)
    crop = cv2.resize(np.ascontiguousarray(astronaut_rgb[b:int(b + side), a:int(a + side)]), (112, 112),
                      interpolation=cv2.INTER_AREA)
    assert FaceDetector("full", num_threads=1).detect(crop) == []  # what frontalize used before
    assert frontalizer.detector.model == "auto" and FaceDetector("auto", num_threads=1).detect(crop)
    face = frontalizer.frontalize(crop, faces="largest").frontalized[0]
    assert face.output.shape == (max(SIZE, round(face.face_px)),) * 2 + (3,) and face.in_range


@pytest.fixture(scope="module")
def turned_png(frontalizer, astronaut_rgb) -> bytes:
    """The astronaut turned by 40 degrees (rendered), as PNG bytes."""
    from faceforge.faces.rotate import build_scene, render_yaw

    face = frontalizer.detector.detect(astronaut_rgb)[0]
    prepared, pts = frontalizer._crop(astronaut_rgb, face)
    turned = render_yaw(prepared.crop, build_scene(pts, (RENDER, RENDER)), 40.0).image
    buf = io.BytesIO()
    Image.fromarray(np.pad(turned, ((64, 64), (64, 64), (0, 0)), mode="edge")).save(buf, format="PNG")
    return buf.getvalue()


def test_refusal_is_one_cli_line_and_a_422_problem(tmp_path, weights, turned_png, monkeypatch):
    import faceforge.frontalize as frontalize
    from faceforge.cli import main
    from server import create_app

    monkeypatch.setattr(frontalize, "TRAINED_MAX_YAW", 5.0)  # the tiny checkpoint names no range: this one
    photo = tmp_path / "turned.png"
    photo.write_bytes(turned_png)
    result = CliRunner().invoke(main, ["frontalize", str(photo), "--weights", str(weights)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: the selected face is turned beyond the trained range")
    client = create_app({"frontalize_weights": str(weights), "torch_threads": None, "max_faces": 2,
                         "detector_threads": 1}).test_client()
    response = _post(client, turned_png, faces="largest")
    assert response.status_code == 422 and response.mimetype == PROBLEM
    body = response.get_json()
    assert body["type"].endswith("pose-out-of-range") and body["max_yaw"] == 5.0 and body["yaws"][0] > 5


def test_no_face_raises(frontalizer):
    with pytest.raises(NoFaceError):
        frontalizer.frontalize(np.full((96, 128, 3), 200, np.uint8))


def test_cli(tmp_path, weights, astronaut_png, monkeypatch):
    import faceforge.frontalize as frontalize
    from faceforge.cli import main

    photo = tmp_path / "astro.png"
    photo.write_bytes(astronaut_png)
    out = tmp_path / "front.png"
    result = CliRunner().invoke(main, ["frontalize", str(photo), "-o", str(out), "--weights", str(weights), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output[result.output.index("{"):])
    face = doc["faces"][0]
    side = face["output_px"]
    assert face["output"] == str(out) and Image.open(out).size == (side, side) and doc["output_size"] == "face"
    assert side == round(face["face_px"]) > SIZE and face["upscaled"] is False
    gen = CliRunner().invoke(main, ["frontalize", str(photo), "-o", str(tmp_path / "g.png"), "--weights", str(weights),
                                    "--output-size", "generator"])
    assert gen.exit_code == 0, gen.output
    assert Image.open(tmp_path / "g.png").size == (SIZE, SIZE) and f"({SIZE} px" in gen.output
    for bad in ("huge", "0", "5000"):
        refused = CliRunner().invoke(main, ["frontalize", str(photo), "--weights", str(weights), "--output-size", bad])
        lines = [line for line in refused.output.splitlines() if line.strip()]
        assert refused.exit_code == 1 and len(lines) == 1 and "Traceback" not in refused.output
        assert lines[0] == (f"Error: --output-size must be 'face', 'generator' or an integer side in [32, 1024] px, "
                            f"got {bad!r}")
    if frontalize.default_weights_path().is_file():  # the shipped weights by default, at the face's side
        shipped = CliRunner().invoke(main, ["frontalize", str(photo), "-o", str(tmp_path / "d.png"), "--json"],
                                     env={ENV_VAR: ""})
        assert shipped.exit_code == 0, shipped.output
        face = json.loads(shipped.output[shipped.output.index("{"):])["faces"][0]
        side = max(128, round(face["face_px"]))  # never below the generator's side
        assert Image.open(tmp_path / "d.png").size == (side, side) and face["output_px"] == side
        assert face["upscaled"] is (side > round(face["face_px"]))
    monkeypatch.setitem(cards.CARDS, frontalize.CARD, dataclasses.replace(cards.get_card(frontalize.CARD),
                                                                          file="absent.pt"))  # a checkout without them
    missing = CliRunner().invoke(main, ["frontalize", str(photo)], env={ENV_VAR: ""})
    assert missing.exit_code != 0 and ENV_VAR in missing.output


# --------------------------------------------------------------------------------------------------
# the endpoint


@pytest.fixture(scope="module")
def client(weights):
    from server import create_app
    return create_app({"frontalize_weights": str(weights), "torch_threads": None, "max_faces": 2,
                       "detector_threads": 1}).test_client()


def _post(client, data: bytes, **form):
    from server import schemas
    return client.post(schemas.FRONTALIZE_PATH, data={"image": (io.BytesIO(data), "photo.png"), **form},
                       content_type="multipart/form-data")


def test_api_json_answer(client, astronaut_png):
    from server import schemas

    response = _post(client, astronaut_png)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    Draft202012Validator(schemas.frontalize_response_schema()).validate(body)
    face = body["faces"][0]
    assert face["frontalized"] and face["in_range"] and abs(face["yaw"]) < 10
    png = Image.open(io.BytesIO(base64.b64decode(face["image"]["data"])))
    side = face["output_px"]
    assert side == round(face["face_px"]) > SIZE and face["upscaled"] is False and body["output_size"] == "face"
    assert png.size == (side, side) == (face["image"]["width"], face["image"]["height"])
    assert body["model"]["input"] == "rerender" and body["model"]["size"] == SIZE
    assert body["timings_ms"]["detail"] > 0
    gen = _post(client, astronaut_png, output_size="generator").get_json()
    Draft202012Validator(schemas.frontalize_response_schema()).validate(gen)
    assert gen["output_size"] == "generator" and gen["faces"][0]["output_px"] == SIZE
    fixed = _post(client, astronaut_png, output_size=" 200 ").get_json()
    Draft202012Validator(schemas.frontalize_response_schema()).validate(fixed)
    assert fixed["output_size"] == 200 and fixed["faces"][0]["image"]["width"] == 200
    assert fixed["faces"][0]["upscaled"] is True


def test_api_image_answer(client, astronaut_png):
    response = _post(client, astronaut_png, faces="largest", response="image", output_size="generator")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert Image.open(io.BytesIO(response.data)).size == (SIZE, SIZE)
    assert response.headers["X-Faceforge-Upscaled"] in ("true", "false")
    assert float(response.headers["X-Faceforge-Face-Px"]) > SIZE
    assert response.headers["X-Faceforge-Face-Index"] == "0"
    assert abs(float(response.headers["X-Faceforge-Yaw"])) < 10
    assert response.headers["X-Faceforge-Yaw-In-Range"] == "true"


def test_api_restore_as_last_step(client, astronaut_png, expect_problem):
    """``restore=classical`` restores the frontal crop (named in the answer, timed); the default runs none."""
    from server import schemas

    def crop(body):
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(body["faces"][0]["image"]["data"])))).astype(np.int16)

    plain = _post(client, astronaut_png, faces="largest").get_json()
    restored = _post(client, astronaut_png, faces="largest", restore="classical").get_json()
    Draft202012Validator(schemas.frontalize_response_schema()).validate(restored)
    assert plain["restored"] == "none" and restored["restored"] == "classical"
    assert restored["timings_ms"]["restore"] > 0 and plain["timings_ms"]["restore"] == 0
    assert crop(restored).shape == crop(plain).shape and np.abs(crop(restored) - crop(plain)).mean() > 0.1
    image = _post(client, astronaut_png, faces="largest", response="image", restore="classical")
    assert image.headers["X-Faceforge-Restored"] == "classical"
    expect_problem(_post(client, astronaut_png, restore="sharpen"), 400, "invalid-field")


def test_api_errors(client, astronaut_png, blank_png, expect_problem):
    expect_problem(_post(client, blank_png), 422, "no-face")
    expect_problem(_post(client, astronaut_png, faces="3"), 422, "bad-face-selection")
    expect_problem(_post(client, astronaut_png, response="gif"), 400, "invalid-field")
    for bad in ("huge", "16", "4096", "1.5"):
        body = expect_problem(_post(client, astronaut_png, output_size=bad), 400, "invalid-field")
        assert body["field"] == "output_size" and body["detail"] == (
            f"output_size must be 'face', 'generator' or an integer side in [32, 1024] px, got {bad!r}")


def test_api_weights_not_found_is_503(astronaut_png, expect_problem, monkeypatch, tmp_path):
    import faceforge.frontalize as frontalize
    from server import create_app
    # a checkout whose default weights are missing (deleted, or a partial clone)
    monkeypatch.setitem(cards.CARDS, frontalize.CARD, dataclasses.replace(cards.get_card(frontalize.CARD),
                                                                          file="absent.pt"))
    client = create_app({"frontalize_weights": "default", "torch_threads": None}).test_client()
    body = expect_problem(_post(client, astronaut_png), 503, "weights-not-found")
    assert ENV_VAR in body["detail"] and str(tmp_path) not in str(body)  # no server paths leak


def test_openapi_documents_frontalize(client):
    from server import schemas

    doc = client.get(schemas.OPENAPI_PATH).get_json()
    op = doc["paths"][schemas.FRONTALIZE_PATH]["post"]
    assert {"200", "400", "422", "503"} <= set(op["responses"])
    assert "FrontalizeResponse" in doc["components"]["schemas"]
    field = op["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]["output_size"]
    assert field["default"] == "face" and "generator" in field["description"]
    assert "X-Faceforge-Upscaled" in op["responses"]["200"]["headers"]


# --------------------------------------------------------------------------------------------------
# identity per yaw bucket in the trainer's evaluation


def _tiny_pairs(root, size=48):
    from faceforge.imaging import save_image
    from training.pose_pairs import INDEX_VERSION, YAW_BUCKETS, bucket_name

    rng = np.random.default_rng(0)
    pairs = []
    save_image(root / "frontal" / "00000.png", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    for j, (lo, hi) in enumerate(YAW_BUCKETS[:2]):
        pid = f"00000_{j}"
        for kind in ("profile", "rerender"):
            save_image(root / kind / f"{pid}.png", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        yaw = (lo + hi) / 2
        pairs.append({"id": pid, "face": "00000", "split": "test", "yaw": yaw, "bucket": bucket_name(yaw),
                      "frontal": "frontal/00000.png", "profile": f"profile/{pid}.png",
                      "rerender": f"rerender/{pid}.png"})
    (root / "index.json").write_text(json.dumps({"version": INDEX_VERSION, "config": {}, "pairs": pairs}))
    return root


def test_evaluate_identity_columns(tmp_path):
    pytest.importorskip("skimage")
    from faceforge import identity
    from training.frontalize import evaluate
    from training.pose_pairs import PosePairDataset

    ds = PosePairDataset(_tiny_pairs(tmp_path), "test", "rerender", 48, 48)
    torch.manual_seed(0)
    g = create_model("pix2pix_mobile", ngf=4, num_downs=4)
    plain = evaluate(g, ds, torch.device("cpu"), identity=False)
    assert set(plain) == {"15-30", "30-45", "all"} and "id_output" not in plain["all"]
    if not identity.is_available():
        return  # skipped cleanly: evaluate(identity=None) leaves the columns out
    res = evaluate(g, ds, torch.device("cpu"))
    for name in ("15-30", "30-45", "all"):
        r = res[name]
        assert {"id_output", "id_input", "id_profile", "id_same_output", "id_same_profile"} <= set(r)
        assert r["id_output"] >= 0 and 0 <= r["id_same_profile"] <= 1


def test_models_lists_the_loaded_frontalizer(client, astronaut_png):
    assert _post(client, astronaut_png).status_code == 200
    entries = {m["name"]: m for m in client.get("/v1/models").get_json()["models"]}
    entry = entries["pix2pix_mobile"]
    assert entry["loaded"] and entry["served"] and entry["weights"]["provenance"]["task"] == "frontalize"


def test_shipped_default_weights(astronaut_rgb):
    """The installed generator loads by default at its trained size and, on a frontal face, gives back
    that face (a random or broken generator does not: ~10 dB)."""
    from faceforge.frontalize import default_weights_path

    if not default_weights_path().is_file():
        pytest.skip("no frontalization weights installed in this checkout")
    fz = Frontalizer("default", num_threads=1)
    assert fz.weights_source == "default" and fz.meta.get("finished") is True
    assert fz.size == fz.meta["config"]["crop_size"] and fz.render_size == fz.meta["data_config"]["size"]
    assert fz.max_yaw == 75
    (face,) = fz.frontalize(astronaut_rgb, output_size="generator").frontalized
    assert abs(face.yaw) < 10 and face.output.shape == (fz.size, fz.size, 3)
    from faceforge.frontalize import _resize
    ref = _resize(face.rerender, fz.size).astype(np.float64)
    psnr = 10 * np.log10(255 ** 2 / ((face.output.astype(np.float64) - ref) ** 2).mean())
    assert psnr > 20, psnr
    (full,) = fz.frontalize(astronaut_rgb, output_size=256).frontalized  # composed: closer to what the camera saw
    assert full.output.shape == full.rerender.shape == (256, 256, 3) and full.upscaled  # a 110 px face
    err = ((full.output.astype(np.float64) - full.rerender) ** 2).mean()
    assert 10 * np.log10(255 ** 2 / err) > psnr
