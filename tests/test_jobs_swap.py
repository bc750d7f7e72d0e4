"""Face swap and the virtual-model pipeline as jobs: POST /v1/swap, POST /v1/pipelines/virtual-model."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from faceforge.imaging import encode_image
from faceforge.models import get_spec
from server import create_app, schemas
from test_jobs import assert_problem, images_of, submit, wait  # tests/ is on sys.path

pytestmark = pytest.mark.skipif(not get_spec("stylegan2").default_weights_path.is_file(),
                                reason="no shipped StyleGAN2 generator (the generated source face)")


@pytest.fixture(scope="module")
def client():
    app = create_app({"stylegan2_weights": "default", "torch_threads": None, "job_workers": 1})
    yield app.test_client()
    app.extensions["faceforge"]["jobs"].close()  # no job thread outlives the module


@pytest.fixture(scope="module")
def source_png():
    from faceforge.virtual_model import source_from_seed

    return encode_image(source_from_seed(3), "png")


def _file(data: bytes, name: str = "a.png"):
    return io.BytesIO(data), name


def test_paths_and_schemas():
    assert schemas.task_path("virtual-model") == "/v1/pipelines/virtual-model"
    assert schemas.task_path("swap") == "/v1/swap"
    requests = schemas.job_request_schemas()
    assert requests["swap"]["required"] == ["source", "target"] and "source_seed" in requests["virtual-model"]["properties"]


def test_swap_job_returns_a_marked_swapped_photo(client, source_png, astronaut_rgb):
    from faceforge.provenance import check

    url = submit(client, "swap", data={"source": _file(source_png), "target": _file(encode_image(astronaut_rgb, "png")),
                                       "faces": "largest"}, content_type="multipart/form-data")
    body = wait(client, url)
    (image,) = images_of(body)
    assert image.shape == astronaut_rgb.shape and body["result"]["data"]["swapped"] == 1
    assert np.abs(image[60:180, 170:280].astype(int) - astronaut_rgb[60:180, 170:280]).mean() > 5
    png = base64.b64decode(body["result"]["images"][0]["png_base64"])
    assert check(png, watermark=False).ai_made


def test_virtual_model_job_passes_a_product_photo_through(client):
    product = np.full((240, 320, 3), 180, np.uint8)
    url = submit(client, "virtual-model", data={"image": _file(encode_image(product, "png")), "source_seed": "3"},
                 content_type="multipart/form-data")
    body = wait(client, url)
    (image,) = images_of(body)
    assert body["result"]["data"]["status"] == "no-face" and np.array_equal(image, product)


def test_bad_requests(client, source_png):
    assert_problem(client.post("/v1/swap", data={"source": _file(source_png)}, content_type="multipart/form-data"),
                   400, "missing-field")
    assert_problem(client.post("/v1/swap", data={"source": _file(source_png), "target": _file(source_png),
                                                 "faces": "x"}, content_type="multipart/form-data"),
                   400, "invalid-field")
    assert_problem(client.post("/v1/pipelines/virtual-model", data={"image": _file(source_png)},
                               content_type="multipart/form-data"), 400, "missing-field")


@pytest.mark.parametrize("method", ["classical", "aeinet"])
def test_swap_refusal_fails_the_job_with_its_problem(client, astronaut_rgb, method):
    """A refusal of the swap (faceforge.errors.SameFaceError: the target face is a JPEG copy of the source
    photo's) is the failed job's problem document, for both methods."""
    from faceforge.models import cards

    if method == "aeinet" and not cards.get_card("faceshifter.utkface64").package_path.is_file():
        pytest.skip("no shipped AEI-Net weights")
    jpg = io.BytesIO()
    from PIL import Image

    Image.fromarray(astronaut_rgb).save(jpg, "JPEG", quality=95)
    url = submit(client, "swap", data={"source": _file(encode_image(astronaut_rgb, "png")),
                                       "target": _file(jpg.getvalue(), "a.jpg"), "faces": "largest",
                                       "method": method}, content_type="multipart/form-data")
    body = wait(client, url)
    assert body["status"] == "failed", body
    error = body["error"]
    assert error["type"].endswith(":same-source-and-target") and error["status"] == 422, error
    assert "source face itself" in error["detail"]


def test_restore_job(client, astronaut_rgb):
    url = submit(client, "restore", data={"image": _file(encode_image(astronaut_rgb, "png")), "method": "classical"},
                 content_type="multipart/form-data")
    body = wait(client, url)
    (image,) = images_of(body)
    data = body["result"]["data"]
    assert image.shape == astronaut_rgb.shape and data["method"] == "classical" and data["restored"] == 1
    assert_problem(client.post("/v1/restore", data={"image": _file(encode_image(astronaut_rgb, "png")),
                                                    "method": "gpen"}, content_type="multipart/form-data"),
                   503, "weights-not-found")


def test_aeinet_swap_job_uses_the_shipped_weights(client, source_png, astronaut_rgb):
    """method=aeinet runs FaceShifter's AEI-Net (the shipped card), reports it, and changes the face."""
    from faceforge.models import cards

    if not cards.get_card("faceshifter.utkface64").package_path.is_file():
        pytest.skip("no shipped AEI-Net weights")
    target = encode_image(astronaut_rgb, "png")
    url = submit(client, "swap", data={"source": _file(source_png), "target": _file(target), "faces": "largest",
                                       "method": "aeinet"}, content_type="multipart/form-data")
    body = wait(client, url)
    data = body["result"]["data"]
    (image,) = images_of(body)
    assert data["method"] == "aeinet" and data["swapped"] == 1 and data["blend"] is None
    assert data["weights"]["size"] == 64 and [f["swapped"] for f in data["faces"]] == [True]
    assert image.shape == astronaut_rgb.shape
    face = np.abs(image[60:180, 170:280].astype(int) - astronaut_rgb[60:180, 170:280]).mean()
    corner = np.abs(image[:40, :40].astype(int) - astronaut_rgb[:40, :40]).mean()  # only the invisible watermark
    assert face > 3 * corner, (face, corner)
    bad = client.post("/v1/swap", data={"source": _file(source_png), "target": _file(target), "method": "hear"},
                      content_type="multipart/form-data")
    assert_problem(bad, 400, "invalid-field")
