"""The phone contract: an app written from ``mobile_assets/manifest.json`` alone gets faceforge's results.

``tests/app_reader.py`` is that app (numpy, OpenCV and the LiteRT interpreter; no faceforge import).
Here it is checked against faceforge on real photos and on the parity sets:

1. Whole photos, detection included (the shared portraits and group photos): the same faces, boxes
   within 2 px, the same top emotion on >= 95 % of faces, probabilities within 0.02 of faceforge's
   on-device path (FaceDetector("auto") + align_face + the same .tflite file).
2. Each LiteRT classifier entry's parity figure, reproduced on its parity set as the manifest's
   ``parity.input`` describes it (pre-cropped faces, no detection): top-1 agreement with PyTorch within
   2e-4 of the stated figure.
3. Each LiteRT image-to-image entry fed as its ``input`` record says, on faces the app aligned itself:
   PSNR against the PyTorch model on the same float inputs meets the entry's bound (the file only; for the
   frontalizer that crop is not its phone input, see 5).
4. Aging on whole photos: the ``cyclegan_mobile`` entries' ``app_steps`` (detail transfer) around the LiteRT
   file against ``FaceTranslator(detail="transfer")``: fp16 file mean <= 0.05 levels and >= 99.9 % of the
   changed pixels within 1 level; int8 file mean <= 1.2 and >= 99 % within 3.
5. Frontalization: the ``pix2pix_mobile`` entries' ``app_steps`` (Face Mesh shipped in ``landmarks/``, yaw
   and range check, pose-tolerant crop, rerender triangulated with OpenCV's Subdiv2D, not scipy) against
   ``Frontalizer``: yaw within 0.5 degrees, the same refusals, the rerender within 2 levels on >= 99 % of
   pixels, output PSNR vs PyTorch >= the entry's bound - 3 dB.

Tolerances are stated in the assertions; a failure names the photo, the face and the step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app_reader import ManifestApp  # tests/ is on sys.path (conftest.py lives there)

ASSETS = Path(__file__).resolve().parents[1] / "mobile_assets"

pytestmark = pytest.mark.skipif(not (ASSETS / "manifest.json").is_file(),
                                reason="mobile_assets/manifest.json not generated (run faceforge export)")


@pytest.fixture(scope="module")
def app() -> ManifestApp:
    return ManifestApp(ASSETS)


def _photos(data_dir: Path) -> list[Path]:
    photos = sorted((data_dir / "photos" / "portraits").iterdir()) + sorted((data_dir / "photos" / "groups").iterdir())
    photos += sorted((data_dir / "photos" / "portraits_256").iterdir())[:20]
    return [p for p in photos if p.suffix.lower() in (".jpg", ".jpeg", ".png")]


def test_manifest_states_every_step_the_app_needs(app):
    for d in app.manifest["detectors"]:
        assert "scale_x" in d["decoding"]["units"] and "INTER_AREA" in d["input"]["resize"]
        assert "float32" in d["decoding"]["arithmetic"]
        assert d["keypoint_handedness"]
    assert {"tile_starts", "drop_rule"} <= set(app.policy["tiling"])
    for e in app.manifest["models"]:
        fa = e["face_alignment"]
        assert {"steps", "area_shrink", "opencv_matrix", "handedness", "pre_cropped_faces"} <= set(fa), e["file"]
        assert "no detection" in e["parity"]["input"]


def test_faceforge_on_device_path_reads_the_template_and_normalization_from_the_manifest(app, astronaut_rgb):
    import copy

    from faceforge.faces.detect import FaceDetector
    from faceforge.ondevice import OnDeviceClassifier

    entry = app.entry("mini_xception", "tflite_int8")
    face = FaceDetector(num_threads=1).detect(astronaut_rgb)[:1]
    ours = OnDeviceClassifier(ASSETS, entry)
    crop = ours.align(astronaut_rgb, face)[0]
    assert np.array_equal(crop, app.align(astronaut_rgb, face[0].keypoints, entry["face_alignment"]))
    assert np.array_equal(ours.preprocess([crop]).reshape(-1), (app.model_input(crop, {**entry, "input": {
        **entry["input"], "dtype": "float32"}})).reshape(-1))
    moved = copy.deepcopy(entry)  # a manifest whose template sits 10 % lower gives another crop
    moved["face_alignment"]["keypoints"] = [[x, y + 0.1] for x, y in entry["face_alignment"]["keypoints"]]
    assert not np.array_equal(OnDeviceClassifier(ASSETS, moved).align(astronaut_rgb, face)[0], crop)


@pytest.mark.data
@pytest.mark.slow
def test_whole_photo_emotion_matches_faceforge_on_device_path(app, data_dir):
    from faceforge.faces.detect import FaceDetector
    from faceforge.imaging import load_image
    from faceforge.ondevice import OnDeviceClassifier

    entry = app.entry("mini_xception", "tflite_int8")
    ours = OnDeviceClassifier(ASSETS, entry)
    detector = FaceDetector("auto", num_threads=1)
    faces = same_label = 0
    worst_box = worst_prob = 0.0
    for path in _photos(data_dir):
        rgb = load_image(path)
        boxes, kps, scores = app.detect(rgb)
        found = detector.detect(rgb)
        assert len(boxes) == len(found), f"{path.name}: app found {len(boxes)} faces, faceforge {len(found)}"
        for i, face in enumerate(found):
            box_err = float(np.abs(boxes[i] - face.box).max())
            worst_box = max(worst_box, box_err)
            assert box_err <= 2.0, f"{path.name} face {i}: box differs by {box_err:.2f} px"
            p_app = app.classify(app.align(rgb, kps[i], entry["face_alignment"]), entry)
            p_ours = ours(ours.preprocess(ours.align(rgb, [face])))[0]  # the demo's on-device path
            worst_prob = max(worst_prob, float(np.abs(p_app - p_ours).max()))
            faces += 1
            same_label += int(np.argmax(p_app) == np.argmax(p_ours))
    assert faces >= 30, f"only {faces} faces in the shared photos"
    print(f"\napp contract, whole photos: {faces} faces, max box difference {worst_box:.3f} px, "
          f"same label {same_label}/{faces}, max probability difference {worst_prob:.4f}")
    assert same_label / faces >= 0.95
    assert worst_prob <= 0.02


@pytest.fixture(scope="module")
def fer_test_reference(data_dir):
    """FER2013 test faces (pre-cropped 48x48, as ``parity.input`` says) and PyTorch's top-1 on them."""
    import torch

    from faceforge.models import create_model
    from training.data import load_fer2013

    images, _ = load_fer2013("test", root=data_dir)
    norm = ManifestApp(ASSETS).entry("mini_xception", "tflite_int8")["input"]["normalization"]
    floats = images.astype(np.float32) * np.float32(norm["scale"]) + np.float32(norm["offset"])
    with torch.no_grad():
        ref = create_model("mini_xception", weights="default")(torch.from_numpy(floats[:, None])).argmax(1).numpy()
    return images, ref


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["tflite_fp32", "tflite_fp16", "tflite_int8"])
def test_classifier_parity_figures_reproduce(app, fer_test_reference, fmt):
    try:
        entry = app.entry("mini_xception", fmt)
    except StopIteration:
        pytest.skip(f"no mini_xception {fmt} in the manifest")
    images, ref = fer_test_reference
    if len(images) != entry["parity"]["images"]:
        pytest.skip(f"FER2013 test has {len(images)} images here, the manifest's parity used {entry['parity']['images']}")
    probs = np.stack([app.classify(img[..., None], entry) for img in images])
    agree = float(np.mean(probs.argmax(1) == ref))
    print(f"\n{entry['file']}: app top-1 agreement {agree:.5f}, manifest {entry['parity']['top1_agreement']:.5f}")
    assert agree == pytest.approx(entry["parity"]["top1_agreement"], abs=2e-4)


def _image_entries(app: ManifestApp) -> list[dict]:
    return [e for e in app.manifest["models"] if e["file"].endswith(".tflite") and e["output"].get("values") == "image"]


@pytest.mark.data
@pytest.mark.slow
def test_image_to_image_files_meet_their_bounds_on_app_aligned_faces(app, data_dir):
    import torch

    from faceforge.imaging import load_image
    from faceforge.models import cards, create_model

    faces = sorted((data_dir / "utkface").glob("2[0-5]_*.jpg"))[:6]
    if len(faces) < 6:
        pytest.skip("UTKFace faces aged 20-25 not found")
    entries = _image_entries(app)
    assert entries, "no LiteRT image-to-image entry in the manifest"
    for entry in entries:
        card = cards.default_card(entry["name"])
        if card is None or not card.available:
            continue
        model = create_model(entry["name"], weights="default")
        inp, out, fa = entry["input"], entry["output"], entry["face_alignment"]
        psnrs = []
        for path in faces:
            rgb = load_image(path)
            boxes, kps, _ = app.detect(rgb)
            assert len(boxes), f"{path.name}: no face"
            crop = app.align(rgb, kps[0], fa)
            x = crop.astype(np.float32) * np.float32(inp["normalization"]["scale"]) + np.float32(inp["normalization"]["offset"])
            y = _output_nchw(app, entry, crop)
            with torch.no_grad():
                ref = model(torch.from_numpy(x.transpose(2, 0, 1)[None].copy())).numpy()
            lo, hi = out["value_range"]
            mse = float(np.mean((np.clip(y, lo, hi) - np.clip(ref, lo, hi)) ** 2))
            psnrs.append(10 * np.log10((hi - lo) ** 2 / max(mse, 1e-12)))
        print(f"\n{entry['file']}: PSNR vs PyTorch on {len(psnrs)} app-aligned faces {np.mean(psnrs):.1f} dB "
              f"(manifest, its parity set: {entry['parity']['psnr_db']:.1f} dB, bound {entry['parity']['bounds']['min_psnr_db']})")
        assert np.mean(psnrs) >= entry["parity"]["bounds"]["min_psnr_db"], entry["file"]


# --------------------------------------------------------------------------------------------------
# 4. Aging on whole photos: the app runs the manifest's app_steps (detail transfer) around the LiteRT
#    generator; faceforge runs FaceTranslator(detail="transfer") with PyTorch. Only manifest numbers here.

def _steps(entry: dict, mode: str) -> dict[str, dict]:
    return {s["step"]: s for s in entry["app_steps"]["modes"][mode]["steps"]}


def _output_nchw(app: ManifestApp, entry: dict, crop: np.ndarray) -> np.ndarray:
    """uint8 crop -> the LiteRT file's float32 output ``(1, C, H, W)``, dequantized as the entry's output says."""
    out = entry["output"]
    interp = app.interpreter(entry["file"])
    interp.set_tensor(interp.get_input_details()[0]["index"], app.model_input(crop, entry))
    interp.invoke()
    y = interp.get_tensor(interp.get_output_details()[0]["index"]).astype(np.float32)
    if out["dtype"] == "int8":
        y = (y - out["quantization"]["zero_point"]) * np.float32(out["quantization"]["scale"])
    y = y.reshape(out["shape"])
    return y.transpose(0, 3, 1, 2) if out["layout"] == "NHWC" else y


def _run_image_model(app: ManifestApp, entry: dict, crop: np.ndarray) -> np.ndarray:
    """uint8 crop -> uint8 output image, as the entry's input/output records say."""
    out = entry["output"]
    y = _output_nchw(app, entry, crop)[0].transpose(1, 2, 0)
    den = out["denormalization"]
    return np.clip(np.rint(y * np.float32(den["scale"]) + np.float32(den["offset"])), 0, 255).astype(np.uint8)


def _feather_mask(side: int, feather: float) -> np.ndarray:
    i = np.arange(side, dtype=np.float32) + np.float32(0.5)
    r = np.ones(side, np.float32) if feather == 0 else np.clip(np.minimum(i, side - i) / np.float32(feather * side), 0, 1)
    return np.minimum(r[:, None], r[None, :])


def _paste_region(app: ManifestApp, m: np.ndarray, side: int, shape: tuple[int, ...]):
    import math

    import cv2

    inverse = cv2.invertAffineTransform(m)
    h, w = shape[:2]
    c = np.array([[0, 0, 1], [side, 0, 1], [0, side, 1], [side, side, 1]], np.float64) @ inverse.T
    x0 = int(np.clip(math.floor(c[:, 0].min()) - 1, 0, w))
    y0 = int(np.clip(math.floor(c[:, 1].min()) - 1, 0, h))
    x1 = int(np.clip(math.ceil(c[:, 0].max()) + 2, 0, w))
    y1 = int(np.clip(math.ceil(c[:, 1].max()) + 2, 0, h))
    if x1 <= x0 or y1 <= y0:
        return None
    shift = inverse.copy()
    shift[:, 2] -= (x0, y0)
    return (slice(y0, y1), slice(x0, x1)), app._opencv(shift), (x1 - x0, y1 - y0)


def app_age_photo(app: ManifestApp, entry: dict, rgb: np.ndarray, strength: float | None = None,
                  colour: float | None = None) -> tuple[np.ndarray, int]:
    """The aging app: every face of ``rgb`` translated by the manifest's ``transfer`` steps, with the user's
    ``strength`` and ``colour`` (default: the manifest's defaults).

    Returns:
        ``(photo, number of faces)``.
    """
    import math

    import cv2

    st = _steps(entry, "transfer")
    strength = st["chroma_scale"]["strength"]["default"] if strength is None else strength
    colour = st["chroma_scale"]["colour"]["default"] if colour is None else colour
    fa = entry["face_alignment"]
    size, max_side, multiple = (st["crop_side"][k] for k in ("generator_size", "max_side", "multiple"))
    names = app.detectors["full"]["keypoints"]
    out = rgb.copy()
    _, kps, _ = app.detect(rgb)
    for k in kps:
        src = k[[names.index(n) for n in fa["detector_keypoints"]]].astype(np.float64)
        a = app.umeyama(src, np.asarray(fa["keypoints"], np.float64) * size)
        s = math.sqrt(abs(np.linalg.det(a[:, :2])))
        side = max(size, min(max_side, math.ceil(size / s / multiple) * multiple))
        template = {**fa, "size": side, "keypoints_px": (np.asarray(fa["keypoints"], np.float64) * side).tolist()}
        hi = app.align(rgb, k, template)
        m = app.umeyama(src, np.asarray(template["keypoints_px"], np.float64))
        lo = hi if side == size else cv2.resize(hi, (size, size), interpolation=cv2.INTER_AREA)
        out_lo = _run_image_model(app, entry, lo)
        delta = out_lo.astype(np.float32) - lo.astype(np.float32)
        sigma = st["low_pass"]["sigma_px"]
        if sigma > 0:
            delta = cv2.GaussianBlur(delta, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
        x = hi.astype(np.int16)
        chroma = float((x.max(2) - x.min(2)).mean())
        grey = delta.mean(axis=2, keepdims=True)
        delta = strength * (grey + colour * min(1.0, chroma / st["chroma_scale"]["full_chroma"]) * (delta - grey))
        if side != size:
            delta = cv2.resize(delta, (side, side), interpolation=cv2.INTER_LINEAR)
        hi_out = np.clip(np.rint(hi.astype(np.float32) + delta), 0, 255).astype(np.uint8)
        change = hi_out.astype(np.float32) - hi.astype(np.float32)
        placed = _paste_region(app, m, side, rgb.shape)
        if placed is None:
            continue
        region, shift, roi = placed
        weighted = np.ascontiguousarray(change * _feather_mask(side, st["paste_change"]["feather"])[..., None])
        warped = cv2.warpAffine(weighted, shift, roi, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=(0, 0, 0))
        out[region] = np.clip(np.rint(out[region].astype(np.float32) + warped), 0, 255).astype(np.uint8)
    return out, len(kps)


def test_translator_entries_state_the_transfer_steps_with_the_library_numbers(app):
    import inspect

    from faceforge import translate as tr

    entries = [e for e in app.manifest["models"] if e["name"].startswith("cyclegan_")]
    assert entries
    for e in entries:
        steps = e["app_steps"]
        assert steps["default_mode"] == "transfer" and steps["supported_on_device"] is True
        st = _steps(e, "transfer")
        assert list(st)[0] == "detect" and list(st)[-1] == "faces_in_turn"
        defaults = inspect.signature(tr.FaceTranslator).parameters
        assert st["low_pass"]["sigma_px"] == defaults["detail_sigma"].default
        assert st["paste_change"]["feather"] == defaults["feather"].default
        assert st["crop_side"]["max_side"] == defaults["max_side"].default
        assert st["chroma_scale"]["full_chroma"] == tr.FULL_CHROMA
        call = inspect.signature(tr.FaceTranslator.translate).parameters
        assert st["chroma_scale"]["strength"]["default"] == call["strength"].default
        assert st["chroma_scale"]["colour"]["default"] == call["colour"].default
        assert st["chroma_scale"]["strength"]["max"] == tr.MAX_STRENGTH and st["chroma_scale"]["colour"]["max"] == 1
        assert st["crop_side"]["generator_size"] == e["face_alignment"]["size"]
        assert "BORDER_REFLECT_101" in st["low_pass"]["border"] and "INTER_AREA" in st["shrink"]["interpolation"]


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["tflite_fp16", "tflite_int8"])
def test_aging_transfer_on_whole_photos_matches_the_library(app, data_dir, fmt):
    """The app's aged photo vs ``FaceTranslator(detail="transfer")`` (PyTorch, the same generator weights).

    Tolerance, over the pixels either side changed: fp16 file (float compute): mean |difference| <= 0.05
    levels and >= 99.9 % within 1 level; full-integer int8 file (its own ~42 dB error vs PyTorch, low-passed
    by the transfer): mean <= 1.2 levels and >= 99 % within 3 levels. Figures printed."""
    from faceforge.imaging import load_image
    from faceforge.models import cards
    from faceforge.translate import FaceTranslator

    try:
        entry = app.entry("cyclegan_mobile", fmt)
    except StopIteration:
        pytest.skip(f"no cyclegan_mobile {fmt} in the manifest")
    card = cards.default_card("cyclegan_mobile")
    if card is None or not card.available:
        pytest.skip("cyclegan_mobile weights not available")
    translator = FaceTranslator("age", weights=card.path, detail="transfer")
    photos = [p for p in _photos(data_dir) if p.name != "32bit.png"][:22]
    diffs, faces, changed = [], 0, 0
    worst = 0
    for path in photos:
        rgb = load_image(path)
        ours, n = app_age_photo(app, entry, rgb)
        if n == 0:
            continue
        lib = translator.translate(rgb).image
        assert len(translator.detector.detect(rgb)) == n, path.name
        moved = (lib != rgb).any(2) | (ours != rgb).any(2)
        d = np.abs(ours.astype(np.int16) - lib.astype(np.int16))[moved]
        diffs.append(d.reshape(-1))
        worst = max(worst, int(d.max()) if d.size else 0)
        faces += n
        changed += int(moved.sum())
    d = np.concatenate(diffs)
    print(f"\n{entry['file']} aging transfer vs FaceTranslator (PyTorch) on {len(diffs)} photos / {faces} faces, "
          f"{changed} changed pixels: mean |diff| {d.mean():.4f} levels, within 1: {np.mean(d <= 1):.5f}, "
          f"within 2: {np.mean(d <= 2):.5f}, within 3: {np.mean(d <= 3):.5f}, max {worst} (manifest parity, pre-cropped: "
          f"{entry['parity']['psnr_db']:.1f} dB)")
    assert faces >= 20
    if fmt == "tflite_fp16":
        assert d.mean() <= 0.05 and np.mean(d <= 1) >= 0.999
    else:
        assert d.mean() <= 1.2 and np.mean(d <= 3) >= 0.99
    # the user's strength and colour, as an app's sliders would set them (a few photos: same steps otherwise)
    tried = [load_image(p) for p in photos[:4]]
    diffs = []
    for rgb in tried:
        ours = app_age_photo(app, entry, rgb, strength=1.5, colour=0.5)[0]
        lib = translator.translate(rgb, strength=1.5, colour=0.5).image
        moved = (lib != rgb).any(2) | (ours != rgb).any(2)
        diffs.append(np.abs(ours.astype(np.int16) - lib.astype(np.int16))[moved].reshape(-1))
    d = np.concatenate(diffs)
    print(f"strength 1.5, colour 0.5 on {len(tried)} photos: mean |diff| {d.mean():.4f} levels, "
          f"within 1: {np.mean(d <= 1):.5f}, within 3: {np.mean(d <= 3):.5f}, within 5: {np.mean(d <= 5):.5f}")
    assert d.size > 1000
    if fmt == "tflite_fp16":
        assert d.mean() <= 0.08 and np.mean(d <= 1) >= 0.998
    else:  # the file's own error is scaled by the strength too: the default bounds times 1.5
        assert d.mean() <= 1.8 and np.mean(d <= 5) >= 0.99


# --------------------------------------------------------------------------------------------------
# 5. Frontalization: the app runs Face Mesh (shipped in landmarks/), the yaw check, the pose-tolerant crop
#    and the rerender as the pix2pix entries' app_steps say, then the LiteRT generator; faceforge runs
#    Frontalizer (PyTorch, scipy's Delaunay). The app triangulates with OpenCV's Subdiv2D instead.

def _fsteps(entry: dict, mode: str = "generator") -> dict[str, dict]:
    return {s["step"]: s for s in entry["app_steps"]["modes"][mode]["steps"]}


def app_face_mesh(app: ManifestApp, rec: dict, rgb: np.ndarray, box: np.ndarray, kps: np.ndarray) -> np.ndarray | None:
    """float32 ``(468, 3)`` photo-pixel landmarks as ``landmark_model`` says, or ``None`` (presence too low)."""
    import cv2

    names = app.detectors["full"]["keypoints"]
    right, left = kps[names.index("right_eye")], kps[names.index("left_eye")]
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    side = rec["roi"]["roi_scale"] * max(x1 - x0, y1 - y0)
    angle = np.degrees(np.arctan2(left[1] - right[1], left[0] - right[0]))
    n = rec["input"]["shape"][1]
    m = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle), n / float(side))
    m[:, 2] += (n / 2.0 - cx, n / 2.0 - cy)
    crop = cv2.warpAffine(rgb, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    interp = app.interpreter(rec["file"])
    interp.set_tensor(interp.get_input_details()[0]["index"], (crop.astype(np.float32) / 255.0)[None])
    interp.invoke()
    outs = {int(np.prod(d["shape"])): d["index"] for d in interp.get_output_details()}
    raw = interp.get_tensor(outs[rec["outputs"]["landmarks"]["values"]]).reshape(-1, 3).astype(np.float64)
    flag = float(interp.get_tensor(outs[rec["outputs"]["presence"]["values"]]).reshape(-1)[-1])
    if 1.0 / (1.0 + np.exp(-np.clip(flag, -100, 100))) < rec["presence_threshold"]:
        return None
    inv = cv2.invertAffineTransform(m)
    xy = raw[:, :2] @ inv[:, :2].T + inv[:, 2]
    return np.column_stack([xy, raw[:, 2] / np.sqrt(abs(np.linalg.det(m[:, :2])))]).astype(np.float32)


def _rotate(p: np.ndarray, deg: float, px: float, pz: float) -> np.ndarray:
    t = np.radians(deg)
    out = p.copy()
    dx, dz = p[:, 0] - px, p[:, 2] - pz
    out[:, 0] = px + dx * np.cos(t) - dz * np.sin(t)
    out[:, 2] = pz + dx * np.sin(t) + dz * np.cos(t)
    return out


def _delaunay_opencv(xy: np.ndarray) -> np.ndarray:
    """Delaunay triangles (indices) of ``xy`` with OpenCV's Subdiv2D (not scipy, which the library uses)."""
    import cv2

    lo, hi = np.floor(xy.min(0)) - 2, np.ceil(xy.max(0)) + 2
    sub = cv2.Subdiv2D((int(lo[0]), int(lo[1]), int(hi[0] - lo[0]), int(hi[1] - lo[1])))
    ids = [sub.insert((float(x), float(y))) for x, y in xy]
    vertex_to_point = {v: i for i, v in reversed(list(enumerate(ids)))}
    tris = []
    for t in sub.getTriangleList().reshape(-1, 3, 2):
        idx = []
        for x, y in t:
            v, _ = sub.findNearest((float(x), float(y)))
            idx.append(vertex_to_point.get(v, -1))
        if min(idx) >= 0:
            tris.append(idx)
    return np.asarray(tris, np.int64)


def _rasterize(xy: np.ndarray, tri: np.ndarray, order: np.ndarray, size: tuple[int, int], shift: int,
               min_area: float) -> np.ndarray:
    """The rerender's ``rasterize`` rule: int32 ``(h, w)`` id map of the triangle drawn last (-1: none)."""
    import cv2

    w, h = size
    q = xy[tri[order]]
    ar = 0.5 * ((q[:, 1, 0] - q[:, 0, 0]) * (q[:, 2, 1] - q[:, 0, 1]) - (q[:, 1, 1] - q[:, 0, 1]) * (q[:, 2, 0] - q[:, 0, 0]))
    order = order[np.isfinite(q).all((1, 2)) & (np.abs(ar) > min_area)]
    ids = np.full((h, w), -1, np.int32)
    polys = np.clip(np.round((xy[tri[order]] - 0.5) * (1 << shift)), -(1 << 28), 1 << 28).astype(np.int32)
    for ti, poly in zip(order, polys):
        cv2.fillConvexPoly(ids, poly, int(ti), lineType=cv2.LINE_8, shift=shift)
    return ids


def app_rerender(st: dict, crop: np.ndarray, pts: np.ndarray, yaw: float, scene: dict | None = None) -> np.ndarray:
    """The ``rerender`` step: uint8 ``(R, R, 3)``; ``scene`` (a dict), when given, receives what the
    ``visibility`` step reuses (points, triangles, source positions, the id map, the affine maps)."""
    import cv2

    rc, lc, depth_k = st["right_contour"], st["left_contour"], st["pivot_depth"]
    nf = len(pts)

    def pivot(p):
        a, b = p[rc], p[lc]
        width = float(np.hypot(*(b[:2] - a[:2])))
        return float((a[0] + b[0]) / 2), float((a[2] + b[2]) / 2 + depth_k * width)

    def cx(x):
        return float((x.min() + x.max()) / 2)

    front = _rotate(pts, -yaw, *pivot(pts))
    front[:, 0] += cx(pts[:, 0]) - cx(front[:, 0])
    h, w = crop.shape[:2]
    px, pz = pivot(front)
    hull_idx = cv2.convexHull(front[:, :2].astype(np.float32), returnPoints=False).reshape(-1)
    hull = front[hull_idx]
    c = hull[:, :2].mean(0)
    poly = c + (1.0 + st["margin"]) * (hull[:, :2] - c)
    closed = np.vstack([poly, poly[:1]])
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(closed, axis=0).T))])
    at = np.linspace(0.0, cum[-1], st["n_ring"], endpoint=False)
    ring = np.column_stack([np.interp(at, cum, closed[:, 0]), np.interp(at, cum, closed[:, 1])])
    pad = st["frame_pad"] * max(w, h)
    ring[:, 0] = np.clip(ring[:, 0], -pad / 2, w + pad / 2)
    ring[:, 1] = np.clip(ring[:, 1], -pad / 2, h + pad / 2)
    nearest = np.argmin(((ring[:, None] - hull[None, :, :2]) ** 2).sum(-1), axis=1)
    ring = np.column_stack([ring, 0.5 * (hull[nearest, 2] + pz)])
    t = np.linspace(0.0, 1.0, st["frame_per_side"])
    a0, a1 = -pad, w + pad
    b0, b1 = -pad, h + pad
    edges = [np.column_stack([a0 + t * (a1 - a0), np.full_like(t, b0)]), np.column_stack([np.full_like(t, a1), b0 + t * (b1 - b0)]),
             np.column_stack([a1 - t * (a1 - a0), np.full_like(t, b1)]), np.column_stack([np.full_like(t, a0), b1 - t * (b1 - b0)])]
    frame = np.unique(np.round(np.vstack(edges), 6), axis=0)
    allp = np.vstack([front, ring, np.column_stack([frame, np.full(len(frame), np.inf)])])
    tri = _delaunay_opencv(allp[:, :2])

    def areas(xy, tr):
        q = xy[tr]
        return 0.5 * ((q[:, 1, 0] - q[:, 0, 0]) * (q[:, 2, 1] - q[:, 0, 1]) - (q[:, 1, 1] - q[:, 0, 1]) * (q[:, 2, 0] - q[:, 0, 0]))

    ar = areas(allp[:, :2], tri)
    tri[ar < 0] = tri[ar < 0][:, [0, 2, 1]]
    tri = tri[np.abs(ar) > st["min_area"]]
    n_move = nf + st["n_ring"]
    background = (tri >= n_move).any(1)
    src = allp.copy()
    src[:n_move] = _rotate(src[:n_move], yaw, px, pz)
    src[:n_move, 0] += cx(front[:, 0]) - cx(src[:nf, 0])
    depth = np.where(background, np.inf, allp[tri, 2].mean(1))
    order = np.argsort(-depth, kind="stable")
    dst = allp[:, :2]
    ids = _rasterize(dst, tri, order, (w, h), st["subpixel_shift"], st["min_area"])
    covered = ids >= 0
    maps = np.full((h, w, 2), -1e4, np.float32)
    ys, xs = np.nonzero(covered)
    d3 = np.concatenate([dst[tri], np.ones(tri.shape + (1,))], axis=2)
    aff = np.linalg.inv(d3) @ src[tri][:, :, :2]
    if scene is not None:
        a, b = front[rc], front[lc]
        scene.update(points=allp, tri=tri, src=src, background=background, ids=ids, aff=aff,
                     face_width=float(np.hypot(*(b[:2] - a[:2]))))
    if len(ys):
        tid = ids[ys, xs]
        uv = np.einsum("nk,nkj->nj", np.column_stack([xs + 0.5, ys + 0.5, np.ones(len(xs))]), aff[tid]) - 0.5
        maps[ys, xs] = uv.astype(np.float32)
    out = cv2.remap(np.ascontiguousarray(crop), maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out[~covered] = 0
    if not covered.all():
        out = cv2.inpaint(out, (~covered).astype(np.uint8), st["inpaint_radius"], cv2.INPAINT_TELEA)
    return out


def app_visibility(vs: dict, sc: dict, size: int, feather: bool = True) -> np.ndarray:
    """The ``visibility`` step on the rerender's scene ``sc`` (see :func:`app_rerender`): float32 ``(P, P)``.
    ``feather=False`` stops before the feather substep (the hard mask, for the negative control)."""
    import cv2

    tri, src, dst, background, ids = sc["tri"], sc["src"], sc["points"][:, :2], sc["background"], sc["ids"]

    def areas(xy):
        q = xy[tri]
        return 0.5 * ((q[:, 1, 0] - q[:, 0, 0]) * (q[:, 2, 1] - q[:, 0, 1]) - (q[:, 1, 1] - q[:, 0, 1]) * (q[:, 2, 0] - q[:, 0, 0]))

    a_src, a_dst = areas(src[:, :2]), areas(dst)
    depth_src = np.where(background, np.inf, src[tri, 2].mean(1))
    ids_src = _rasterize(src[:, :2], tri, np.argsort(-depth_src, kind="stable"), (size, size),
                         sc["subpixel_shift"], vs["min_area"])
    ys, xs = np.nonzero(ids >= 0)
    tid = ids[ys, xs]
    uv = np.einsum("nk,nkj->nj", np.column_stack([xs + 0.5, ys + 0.5, np.ones(len(xs))]), sc["aff"][tid])
    iu, iv = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
    inside = (iu >= 0) & (iu < size) & (iv >= 0) & (iv < size)
    top = np.full(len(tid), -1, np.int64)
    top[inside] = ids_src[iv[inside], iu[inside]]
    d_top, d_own = depth_src[np.maximum(top, 0)], depth_src[tid]
    fin = np.isfinite(d_top) & np.isfinite(d_own)
    near = np.isinf(d_top) & np.isinf(d_own)
    near[fin] = np.abs(d_top[fin] - d_own[fin]) <= vs["depth_tolerance"] * sc["face_width"]
    hit = (top == tid) | ((top >= 0) & near)
    count = np.bincount(tid, minlength=len(tri))
    seen = (count > 0) & (np.bincount(tid, weights=hit, minlength=len(tri)) / np.maximum(count, 1) >= 0.5)
    lo_r, hi_r = vs["stretch"]
    ramp = np.clip((np.abs(a_src) / np.maximum(a_dst, vs["min_area"]) - lo_r) / (hi_r - lo_r), 0.0, 1.0)
    weight = np.where(seen, np.where(background, 1.0, ramp), 0.0)
    mask = np.where(ids >= 0, weight[np.maximum(ids, 0)], 0.0).astype(np.float32)
    radius = vs["feather"] * size
    if feather and radius >= 0.5:
        k = 2 * round(radius) + 1  # Python's round: half to even, as the step says
        mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)), borderType=cv2.BORDER_REPLICATE)
        mask = cv2.GaussianBlur(mask, (0, 0), radius, borderType=cv2.BORDER_REPLICATE)
    return np.clip(mask, 0.0, 1.0)


def app_compose(cs: dict, rr: np.ndarray, lo: np.ndarray, out: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The ``compose`` step: uint8 ``(P, P, 3)`` from the rerender ``rr`` (P), the generator input ``lo`` and
    output ``out`` (S) and the visibility ``mask``."""
    import cv2

    side, s = rr.shape[0], out.shape[0]
    delta = out.astype(np.float32) - lo.astype(np.float32)

    def k(img):
        x = img.astype(np.int16)
        return min(1.0, float((x.max(axis=2) - x.min(axis=2)).mean()) / cs["full_chroma"])

    def carry(base, d):
        g = d.mean(axis=2, keepdims=True)
        d = g + np.float32(k(base)) * (d - g)
        if side != s:
            d = cv2.resize(d, (side, side), interpolation=cv2.INTER_LINEAR)
        return np.clip(np.rint(base.astype(np.float32) + d), 0, 255).astype(np.uint8)

    sigma = cs["sigma_px"]
    seen = carry(rr, cv2.GaussianBlur(delta, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101) if sigma > 0 else delta)
    up = cv2.resize(lo, (side, side), interpolation=cv2.INTER_LINEAR) if side != s else lo
    unseen = carry(up, delta)
    w = np.clip(np.asarray(mask, np.float32), 0.0, 1.0)[..., None]
    return np.clip(np.rint(w * seen + (1.0 - w) * unseen), 0, 255).astype(np.uint8)


def app_frontalize_face(app: ManifestApp, entry: dict, rgb: np.ndarray, box: np.ndarray, kps: np.ndarray,
                        mode: str = "generator") -> dict:
    """One face through the frontalizer's app steps of ``mode`` (``"generator"`` or ``"face"``): ``{"yaw",
    "in_range", "input", "output"}`` (face mode also ``"rerender"``, ``"mask"``, ``"hard_mask"``,
    ``"generated"``), or ``{}`` when Face Mesh rejects it."""
    import cv2

    st = _fsteps(entry, mode)
    pts = app_face_mesh(app, entry["app_steps"]["landmark_model"], rgb, box, kps)
    if pts is None:
        return {}
    p = pts.astype(np.float64)
    pairs = np.asarray(st["yaw"]["symmetric_pairs"])
    v = (p[pairs[:, 1]] - p[pairs[:, 0]]).sum(0)
    yaw_mesh = float(np.degrees(np.arctan2(v[2], v[0])))
    knots = np.asarray(st["calibrate_yaw"]["knots"], np.float64)
    a = abs(yaw_mesh)
    head = np.interp(a, knots[:, 0], knots[:, 1]) if a <= knots[-1, 0] else \
        knots[-1, 1] + (knots[-1, 1] - knots[-2, 1]) / (knots[-1, 0] - knots[-2, 0]) * (a - knots[-1, 0])
    yaw = float(np.copysign(min(head, 180.0), yaw_mesh))
    names = app.detectors["full"]["keypoints"]
    kk = kps.astype(np.float64)
    r_eye, l_eye, nose = kk[names.index("right_eye")], kk[names.index("left_eye")], kk[names.index("nose_tip")]
    ratio = (nose[0] - (r_eye[0] + l_eye[0]) / 2) / np.hypot(*(l_eye - r_eye))
    rc = st["range_check"]
    in_range = abs(yaw) <= rc["max_yaw"] and abs(ratio) < rc["profile_keypoint_ratio"]
    vr = (p[pairs[:, 1], :2] - p[pairs[:, 0], :2]).sum(0)
    t = np.radians(-float(np.degrees(np.arctan2(vr[1], vr[0]))))
    rm = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    q = p[:, :2] @ rm.T
    lo, hi = q.min(0), q.max(0)
    pc = st["pose_tolerant_crop"]
    r = pc["render_size"]
    if "output_side" in st:  # face mode: crop, rerender and visibility at the face's own side P
        os_ = st["output_side"]
        face_px = r / (pc["box_height"] * r / (hi[1] - lo[1]))
        r = int(min(os_["max_side"], max(os_["generator_size"], round(face_px))))
    s = pc["box_height"] * r / (hi[1] - lo[1])
    m = np.column_stack([s * rm, np.asarray(pc["box_centre"]) * r - s * (lo + hi) / 2])
    crop = cv2.warpAffine(np.ascontiguousarray(rgb), ManifestApp._opencv(m), (r, r), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    crop_pts = np.column_stack([p[:, :2] @ m[:, :2].T + m[:, 2], p[:, 2] * s])
    scene: dict = {"subpixel_shift": st["rerender"]["subpixel_shift"]} if "rerender" in st else {}
    rr = app_rerender(st["rerender"], crop, crop_pts, yaw_mesh, scene) if "rerender" in st else crop
    size = st["resize"]["generator_size"]
    x = rr
    if size != r:
        x = cv2.resize(rr, (size, size), interpolation=cv2.INTER_AREA if size < r else cv2.INTER_CUBIC)
    out = _run_image_model(app, entry, x)
    result = {"yaw": yaw, "in_range": bool(in_range), "input": x, "output": out}
    if "compose" in st:
        mask = app_visibility(st["visibility"], scene, r)
        result.update(rerender=rr, mask=mask, hard_mask=app_visibility(st["visibility"], scene, r, feather=False),
                      generated=out, output=app_compose(st["compose"], rr, x, out, mask))
    return result


def test_frontalizer_entries_state_the_face_mesh_rerender_and_ship_face_mesh(app):
    from faceforge import frontalize as fr
    from faceforge.translate import FULL_CHROMA

    entries = [e for e in app.manifest["models"] if e["name"].startswith("pix2pix_")]
    assert entries
    for e in entries:
        steps = e["app_steps"]
        assert steps["supported_on_device"] is True and steps["input_mode"] == "rerender"
        rec = steps["landmark_model"]
        f = ASSETS / rec["file"]
        assert f.is_file() and f.stat().st_size == rec["bytes"], rec["file"]
        import hashlib

        assert hashlib.sha256(f.read_bytes()).hexdigest() == rec["sha256"]
        assert (ASSETS / rec["license_file"]).is_file()
        assert any(rec["file"] in lic["applies_to"] for lic in app.manifest["licenses"])
        assert steps["default_mode"] == "face" and set(steps["modes"]) == {"face", "generator"}
        st = _fsteps(e)
        assert list(st) == ["detect", "face_mesh", "yaw", "calibrate_yaw", "range_check", "roll", "pose_tolerant_crop",
                            "rerender", "resize", "generator"]
        assert st["calibrate_yaw"]["knots"] == [list(k) for k in fr.YAW_CALIBRATION]
        assert st["pose_tolerant_crop"]["box_height"] == fr.BOX_HEIGHT
        assert st["range_check"]["profile_keypoint_ratio"] == fr.PROFILE_KEYPOINT_RATIO
        fs = _fsteps(e, "face")  # the library's default output: composed at the face's own side
        assert list(fs) == ["detect", "face_mesh", "yaw", "calibrate_yaw", "range_check", "roll", "output_side",
                            "pose_tolerant_crop", "rerender", "visibility", "resize", "generator", "compose"]
        assert fs["output_side"]["max_side"] == fr.MAX_OUTPUT_SIDE and fs["output_side"]["min_side"] == fr.MIN_OUTPUT_SIDE
        vis = fs["visibility"]
        assert vis["feather"] == fr.VISIBILITY_FEATHER and vis["depth_tolerance"] == fr.VISIBILITY_DEPTH_TOLERANCE
        assert vis["stretch"] == list(fr.VISIBILITY_STRETCH)
        assert fs["compose"]["sigma_px"] == fr.DETAIL_SIGMA and fs["compose"]["full_chroma"] == FULL_CHROMA
        assert fs["rerender"] == st["rerender"] and fs["pose_tolerant_crop"]["render_size"] == st["pose_tolerant_crop"][
            "render_size"]


def _turned_faces(data_dir: Path, yaws=(0.0, 25.0, 40.0)) -> list[tuple[str, np.ndarray]]:
    """UTKFace chips turned by faceforge's pose-pair renderer (test inputs with a known yaw)."""
    from faceforge.faces.detect import FaceDetector
    from faceforge.faces.landmarks import FaceMesh
    from faceforge.faces.rotate import build_scene, render_yaw
    from faceforge.imaging import load_image

    chips = sorted((data_dir / "utkface").glob("2[0-9]_*.jpg"))[:4]
    det = FaceDetector("auto", num_threads=1)
    mesh = FaceMesh(det, num_threads=1)
    out = []
    for path in chips:
        rgb = load_image(path)
        faces = det.detect(rgb)
        if not faces:
            continue
        scene = build_scene(mesh.landmarks_3d(rgb, faces[0]).astype(np.float64), (rgb.shape[1], rgb.shape[0]))
        for yaw in yaws:
            out.append((f"{path.name.split('.')[0]} turned {yaw:+.0f} deg", render_yaw(rgb, scene, yaw).image))
    return out


def _large_faces(data_dir: Path, heights=(600, 1500)) -> list[tuple[str, np.ndarray]]:
    """The first shared portrait with one face, upscaled (bicubic) so that face's detector box is ``heights``
    pixels tall: faces above the 128-342 px of the shared photos, and one past the face-size output's cap
    (``MAX_OUTPUT_SIDE``, 1024 px)."""
    import cv2

    from faceforge.faces.detect import FaceDetector
    from faceforge.imaging import load_image

    det = FaceDetector("auto", num_threads=1)
    for path in sorted((data_dir / "photos" / "portraits").glob("*.jpg")):
        rgb = load_image(path)
        faces = det.detect(rgb)
        if len(faces) == 1:
            box_h = float(faces[0].box[3] - faces[0].box[1])
            return [(f"{path.name} x{h / box_h:.1f} (face {h} px)",
                     cv2.resize(rgb, None, fx=h / box_h, fy=h / box_h, interpolation=cv2.INTER_CUBIC)) for h in heights]
    return []


def _frontal_cases(app, fr, data_dir, large: bool = False):
    """The frontalizer tests' faces: 13 shared photos (not 32bit.png) and UTKFace chips turned 0-70 degrees
    (60-70: refusals and Face Mesh rejections); with ``large``, also :func:`_large_faces`. Yields ``(name, rgb,
    app boxes, app keypoints, library detections)`` for each image with a face, after checking that the app
    and the library find as many."""
    from faceforge.imaging import load_image

    cases = [(p.name, load_image(p)) for p in _photos(data_dir)[:14] if p.name != "32bit.png"]
    cases += _turned_faces(data_dir, yaws=(0.0, 25.0, 40.0, 60.0, 70.0))
    if large:
        cases += _large_faces(data_dir)
    for name, rgb in cases:
        boxes, kps, _ = app.detect(rgb)
        found = fr.detector.detect(rgb)
        assert len(boxes) == len(found), name
        if found:
            yield name, rgb, boxes, kps, found


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["tflite_fp16", "tflite_int8"])
def test_frontalizer_app_steps_match_the_library(app, data_dir, fmt):
    """The app's generator input (rerender) and frontal face vs ``Frontalizer`` on the same photos.

    Tolerances (stated in the assertions): calibrated yaw within 0.5 degrees, the same range decision,
    the rerender within 2 levels on >= 99 % of pixels (mean <= 0.3), and output PSNR vs the library's
    PyTorch output at least the entry's parity bound minus 3 dB (its parity figure is measured on
    the same generator inputs; here the inputs themselves also differ a little)."""
    from faceforge.frontalize import Frontalizer

    try:
        entry = app.entry("pix2pix_mobile", fmt)
    except StopIteration:
        pytest.skip(f"no pix2pix_mobile {fmt} in the manifest")
    fr = Frontalizer(num_threads=1, refuse_out_of_range=False)
    yaw_err, in_diff, psnrs, faces, refused, rejected, images = [], [], [], 0, 0, 0, 0
    for name, rgb, boxes, kps, found in _frontal_cases(app, fr, data_dir):
        images += 1
        run = fr.run(rgb, detected=found)
        for i, job in enumerate(run.jobs):
            ours = app_frontalize_face(app, entry, rgb, boxes[i], kps[i])
            lib = job.extra["face"]
            assert bool(ours) == (lib.crop is not None), f"{name} face {i}: Face Mesh accepted by one side only"
            if not ours:
                rejected += 1
                continue
            faces += 1
            yaw_err.append(abs(ours["yaw"] - lib.yaw))
            assert ours["in_range"] == lib.in_range, f"{name} face {i}: range decision differs"
            refused += int(not ours["in_range"])
            in_diff.append(np.abs(ours["input"].astype(np.int16) - lib.rerender.astype(np.int16)).reshape(-1))
            mse = float(np.mean((ours["output"].astype(np.float64) - job.output.astype(np.float64)) ** 2))
            psnrs.append(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))
    d = np.concatenate(in_diff)
    print(f"\n{entry['file']}: {faces} faces ({images} photos/turned chips with faces; {refused} refused as out of range "
          f"by both, {rejected} rejected by Face Mesh on both sides): calibrated yaw max |diff| "
          f"{max(yaw_err):.4f} deg; rerender mean |diff| {d.mean():.4f} levels, within 2: {np.mean(d <= 2):.5f}, "
          f"max {d.max()}; output PSNR vs the library (PyTorch) mean {np.mean(psnrs):.1f} dB, min {min(psnrs):.1f} "
          f"(manifest parity on pre-made rerenders {entry['parity']['psnr_db']:.1f} dB, bound "
          f"{entry['parity']['bounds']['min_psnr_db']})")
    assert faces >= 15 and refused >= 1
    assert max(yaw_err) <= 0.5
    assert d.mean() <= 0.3 and np.mean(d <= 2) >= 0.99
    assert np.mean(psnrs) >= entry["parity"]["bounds"]["min_psnr_db"] - 3


def test_app_compose_step_reproduces_compose_frontal():
    """The manifest's ``compose`` step (app side, numpy + OpenCV) against :func:`faceforge.frontalize.
    compose_frontal` on synthetic inputs (no data needed): bit-identical at P > S, P == S and on a grey face."""
    import cv2

    from faceforge.frontalize import compose_frontal

    entry = next((e for e in ManifestApp(ASSETS).manifest["models"] if e["name"] == "pix2pix_mobile"), None)
    if entry is None:
        pytest.skip("no pix2pix_mobile entry in the manifest")
    cs = _fsteps(entry, "face")["compose"]
    rng = np.random.default_rng(0)
    for side, grey in ((301, False), (128, False), (256, True)):
        rr = cv2.GaussianBlur(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), (0, 0), 2)
        if grey:
            rr = np.repeat(rr[..., :1], 3, axis=2)
        lo = cv2.resize(rr, (128, 128), interpolation=cv2.INTER_AREA) if side > 128 else rr
        out = np.clip(lo.astype(np.int16) + rng.integers(-40, 41, lo.shape), 0, 255).astype(np.uint8)
        mask = np.clip(cv2.GaussianBlur((rng.random((side, side)) > 0.3).astype(np.float32), (0, 0), 4) * 1.5, 0, 1)
        ours, lib = app_compose(cs, rr, lo, out, mask), compose_frontal(rr, out, mask)
        assert np.array_equal(ours, lib), f"side {side}: max diff {np.abs(ours.astype(int) - lib).max()}"
        assert not np.array_equal(app_compose({**cs, "sigma_px": 0.0}, rr, lo, out, mask), lib)  # the check has teeth
        assert not np.array_equal(app_compose(cs, rr, lo, out, np.ones_like(mask)), lib)


def _diff_figures(diffs: list[np.ndarray]) -> tuple[float, float, float, int]:
    d = np.concatenate([x.reshape(-1) for x in diffs])
    return float(d.mean()), float(np.mean(d <= 1)), float(np.mean(d <= 2)), int(d.max())


FACE_OUTPUT_BOUNDS = {"tflite_fp16": (0.05, 0.999), "tflite_int8": (1.2, 0.90)}
"""(largest mean |diff| in grey levels, smallest share within 2 levels) of the face-size output against the
library's, per file (measured 2026-12-01 on 40 faces: fp16 0.0047 / 0.9999, int8 0.94 / 0.940)."""


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["tflite_fp16", "tflite_int8"])
def test_frontalizer_face_output_matches_the_library(app, data_dir, fmt):
    """The manifest's default mode (``output_size="face"``): output side, crop, rerender and visibility at the
    face's own side P, the LiteRT generator at S, compose, all from the manifest, against ``Frontalizer.
    frontalize(output_size="face")`` (PyTorch) on the faces of the generator-mode test plus a portrait upscaled
    to a 600 px and a 1500 px face (sides above the shared photos' 342 px, and the 1024 px cap).

    Bounds (:data:`FACE_OUTPUT_BOUNDS`): fp16 file mean <= 0.05 levels and >= 99.9 % of values within 2,
    int8 file mean <= 1.2 and >= 90 % within 2 (its generator differs from PyTorch by 38-40 dB, which dominates:
    the file of the identity fine-tune, 38.1 dB, gives 1.16 / 91.3 %; the one before, 40.4 dB, gave about 93 %);
    the same P on every face; and the manifest's compose on the library's own rerender, generator output and
    mask gives the library's output exactly. Negative controls (the app without the visibility mask, without
    its feather, without the low-pass) must miss the fp16 bound; with the int8 file they are reported only
    (the int8 generator's own error is of their size)."""
    import cv2

    from faceforge.frontalize import MAX_OUTPUT_SIDE, Frontalizer

    try:
        entry = app.entry("pix2pix_mobile", fmt)
    except StopIteration:
        pytest.skip(f"no pix2pix_mobile {fmt} in the manifest")
    fs = _fsteps(entry, "face")
    fr = Frontalizer(num_threads=1, refuse_out_of_range=False)
    diffs, mask_diffs, sides, hidden = [], [], [], []
    controls = {"no visibility mask (w = 1)": [], "hard mask (no feather)": [], "no low-pass (sigma 0)": []}
    for name, rgb, boxes, kps, found in _frontal_cases(app, fr, data_dir, large=True):
        result = fr.frontalize(rgb, detected=found, output_size="face")
        for i, lib in enumerate(result.faces):
            ours = app_frontalize_face(app, entry, rgb, boxes[i], kps[i], mode="face")
            assert bool(ours) == (lib.output is not None), f"{name} face {i}: frontalized by one side only"
            if not ours:
                continue
            assert ours["output"].shape == lib.output.shape, f"{name} face {i}: output side differs"
            s = fs["resize"]["generator_size"]  # the resize step on the library's rerender (S <= P here)
            lib_lo = cv2.resize(lib.rerender, (s, s), interpolation=cv2.INTER_AREA) if lib.rerender.shape[0] > s \
                else lib.rerender
            same = app_compose(fs["compose"], lib.rerender, lib_lo, lib.generated, lib.visibility)
            assert np.array_equal(same, lib.output), f"{name} face {i}: compose step differs on the library's inputs"
            ref = lib.output.astype(np.int16)
            diffs.append(np.abs(ours["output"].astype(np.int16) - ref))
            mask_diffs.append(np.abs(ours["mask"] - lib.visibility))
            sides.append(lib.output.shape[0])
            hidden.append(float(np.mean(lib.visibility < 0.5)))
            args = (ours["rerender"], ours["input"], ours["generated"])
            for label, out in (("no visibility mask (w = 1)", app_compose(fs["compose"], *args, np.ones_like(ours["mask"]))),
                               ("hard mask (no feather)", app_compose(fs["compose"], *args, ours["hard_mask"])),
                               ("no low-pass (sigma 0)", app_compose({**fs["compose"], "sigma_px": 0.0}, *args,
                                                                     ours["mask"]))):
                controls[label].append(np.abs(out.astype(np.int16) - ref))
    mean, within1, within2, worst = _diff_figures(diffs)
    within3 = float(np.mean(np.concatenate([x.reshape(-1) for x in diffs]) <= 3))
    m = np.concatenate([x.reshape(-1) for x in mask_diffs])
    print(f"\n{entry['file']}, face mode: {len(diffs)} faces ({sum(x.size for x in diffs) / 1e6:.2f} M values), P {min(sides)}-{max(sides)} px (median "
          f"{int(np.median(sides))}), hidden (mask < 0.5) median {np.median(hidden):.3f} max {max(hidden):.3f}; output "
          f"vs Frontalizer(output_size='face'): mean |diff| {mean:.4f} levels, within 1: {within1:.5f}, within 2: "
          f"{within2:.5f}, within 3: {within3:.5f}, max {worst}; visibility mask mean |diff| {m.mean():.5f}, max {m.max():.3f}")
    bound_mean, bound_within2 = FACE_OUTPUT_BOUNDS[fmt]
    for label, c in controls.items():
        cm, c1, c2, cw = _diff_figures(c)
        print(f"  control, {label}: mean {cm:.4f}, within 1: {c1:.5f}, within 2: {c2:.5f}, max {cw}")
        if fmt == "tflite_fp16":
            assert cm > bound_mean or c2 < bound_within2, f"{label}: a wrong app would pass the bound"
    assert len(diffs) >= 15 and max(sides) > 128  # some faces composed above the generator's side
    assert any(342 < side < MAX_OUTPUT_SIDE for side in sides)  # faces above the shared photos' sides
    assert max(sides) == MAX_OUTPUT_SIDE  # and one at the cap
    assert mean <= bound_mean and within2 >= bound_within2

