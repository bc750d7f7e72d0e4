"""Makeup transfer: region masks from Face Mesh, Lab colour transfer, untouched background."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from faceforge.errors import NoFaceError
from faceforge.imaging import encode_image
from faceforge.makeup import MakeupTransfer, region_masks


@pytest.fixture(scope="module")
def transfer(detector, face_mesh):
    return MakeupTransfer(detector=detector, mesh=face_mesh)


@pytest.fixture(scope="module")
def painted(transfer, astronaut_rgb):
    """The astronaut with deep red lips painted through her own lip mask: a reference with visible makeup."""
    face = transfer.detector.detect(astronaut_rgb)[0]
    masks = region_masks(transfer.mesh.landmarks(astronaut_rgb, face), astronaut_rgb.shape[:2])
    lips = masks["lips"][..., None]
    red = np.array([175, 15, 45], np.float32)
    return (astronaut_rgb * (1 - 0.85 * lips) + red * 0.85 * lips).astype(np.uint8), masks


def _redness(rgb: np.ndarray, mask: np.ndarray) -> float:
    a = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)[..., 1].astype(np.float32)
    return float((a * mask).sum() / mask.sum())


def test_region_masks_are_disjoint_soft_and_inside_the_face(painted):
    _, masks = painted
    assert set(masks) == {"lips", "eyes", "skin"}
    for name, m in masks.items():
        assert m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1 and m.max() > 0.6, name
        assert 0 < float((m > 0.05).mean()) < 0.2, name                 # a region of the face, not the photo
        assert ((m > 0.05) & (m < 0.95)).any(), name                     # feathered edges
    assert not ((masks["lips"] > 0.9) & (masks["skin"] > 0.9)).any()    # the regions meet only in their ramps
    assert not ((masks["eyes"] > 0.6) & (masks["skin"] > 0.9)).any()


def test_lipstick_moves_to_the_target_and_nothing_else_changes(transfer, painted, astronaut_rgb):
    reference, masks = painted
    target = np.ascontiguousarray(astronaut_rgb[:, ::-1])            # the same face mirrored, bare lips
    face = transfer.detector.detect(target)[0]
    target_masks = region_masks(transfer.mesh.landmarks(target, face), target.shape[:2])
    lips = (target_masks["lips"] > 0.5).astype(np.float32)
    before = _redness(target, lips)
    result = MakeupTransfer(strength=1.0, regions=["lips"], detector=transfer.detector, mesh=transfer.mesh).apply(
        target, reference)
    after = _redness(result.image, lips)
    assert after > before + 10, (before, after)                      # a clearly redder mouth (Lab a*)
    assert result.faces[0]["made_up"] and result.regions == ("lips",)
    far = target_masks["lips"] + target_masks["eyes"] + target_masks["skin"] == 0
    assert np.array_equal(result.image[far], target[far])           # background bit-exact


def test_strength_zero_and_grayscale(transfer, painted, astronaut_rgb):
    reference, _ = painted
    same = MakeupTransfer(strength=0.0, detector=transfer.detector, mesh=transfer.mesh).apply(astronaut_rgb, reference)
    assert np.abs(same.image.astype(int) - astronaut_rgb).max() <= 1   # an 8-bit Lab round trip at most
    gray = np.repeat(cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    out = transfer.apply(gray, reference).image
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_bad_input_is_a_clear_error(transfer, astronaut_rgb):
    wall = np.full((200, 200, 3), 128, np.uint8)
    with pytest.raises(NoFaceError):
        transfer.apply(astronaut_rgb, wall)
    with pytest.raises(NoFaceError):
        transfer.apply(wall, astronaut_rgb)
    with pytest.raises(ValueError):
        MakeupTransfer(regions=["hair"])
    with pytest.raises(ValueError):
        MakeupTransfer(strength=2)


def test_cli(tmp_path, painted, astronaut_rgb):
    from faceforge.cli import main

    ref, target, out = tmp_path / "ref.png", tmp_path / "me.png", tmp_path / "out.png"
    ref.write_bytes(encode_image(painted[0], "png"))
    target.write_bytes(encode_image(np.ascontiguousarray(astronaut_rgb[:, ::-1]), "png"))
    result = CliRunner().invoke(main, ["makeup", str(target), str(ref), "-o", str(out), "--regions", "lips,eyes"])
    assert result.exit_code == 0, result.output
    assert "makeup on 1 of 1 face(s)" in result.output and out.is_file()
    bad = CliRunner().invoke(main, ["makeup", str(target), str(ref), "--regions", "hair"])
    assert bad.exit_code == 2 and "regions" in bad.output


# ------------------------------------------------------------------------------ server: POST /v1/makeup ---
@pytest.fixture(scope="module")
def client():
    from server import create_app

    app = create_app({"torch_threads": None})  # no StyleGAN2 weights: makeup needs none
    yield app.test_client()
    app.extensions["faceforge"]["jobs"].close()


def _form(**files_and_fields):
    import io

    return {k: (io.BytesIO(v), f"{k}.png") if isinstance(v, bytes) else v for k, v in files_and_fields.items()}


def test_makeup_job(client, transfer, painted, astronaut_rgb):
    from test_jobs import images_of, submit, wait  # tests/ is on sys.path

    target = np.ascontiguousarray(astronaut_rgb[:, ::-1])
    form = _form(target=encode_image(target, "png"), reference=encode_image(painted[0], "png"), regions="lips",
                 strength="1")
    body = wait(client, submit(client, "makeup", data=form, content_type="multipart/form-data"))
    (image,) = images_of(body)
    face = transfer.detector.detect(target)[0]
    lips = (region_masks(transfer.mesh.landmarks(target, face), target.shape[:2])["lips"] > 0.5).astype(np.float32)
    assert image.shape == target.shape and _redness(image, lips) > _redness(target, lips) + 10
    data = body["result"]["data"]
    assert data["made_up"] == 1 and data["regions"] == ["lips"] and data["strength"] == 1.0


def test_makeup_job_validation_and_failures(client, astronaut_rgb):
    from test_jobs import assert_problem, submit, wait

    png = encode_image(astronaut_rgb, "png")
    assert_problem(client.post("/v1/makeup", data=_form(target=png), content_type="multipart/form-data"), 400,
                   "missing-field")
    for field, value in (("regions", "hair"), ("strength", "2"), ("faces", "x")):
        response = client.post("/v1/makeup", data=_form(target=png, reference=png, **{field: value}),
                               content_type="multipart/form-data")
        assert_problem(response, 400, "invalid-field")
    wall = encode_image(np.full((200, 200, 3), 128, np.uint8), "png")
    body = wait(client, submit(client, "makeup", data=_form(target=png, reference=wall),
                               content_type="multipart/form-data"))
    assert body["status"] == "failed" and body["error"]["type"].endswith("no-face")
