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
   PSNR against the PyTorch model on the same float inputs meets the entry's bound.

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
            interp = app.interpreter(entry["file"])
            interp.set_tensor(interp.get_input_details()[0]["index"], app.model_input(crop, entry))
            interp.invoke()
            y = interp.get_tensor(interp.get_output_details()[0]["index"]).astype(np.float32)
            if out["dtype"] == "int8":
                y = (y - out["quantization"]["zero_point"]) * np.float32(out["quantization"]["scale"])
            y = y.reshape(out["shape"])
            y = y.transpose(0, 3, 1, 2) if out["layout"] == "NHWC" else y
            with torch.no_grad():
                ref = model(torch.from_numpy(x.transpose(2, 0, 1)[None].copy())).numpy()
            lo, hi = out["value_range"]
            mse = float(np.mean((np.clip(y, lo, hi) - np.clip(ref, lo, hi)) ** 2))
            psnrs.append(10 * np.log10((hi - lo) ** 2 / max(mse, 1e-12)))
        print(f"\n{entry['file']}: PSNR vs PyTorch on {len(psnrs)} app-aligned faces {np.mean(psnrs):.1f} dB "
              f"(manifest, its parity set: {entry['parity']['psnr_db']:.1f} dB, bound {entry['parity']['bounds']['min_psnr_db']})")
        assert np.mean(psnrs) >= entry["parity"]["bounds"]["min_psnr_db"], entry["file"]
