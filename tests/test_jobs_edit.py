"""``POST /v1/edit``: attribute edits as a job (seeds and a projected photo), validation at submit, and the
503 for directions that do not belong to the configured generator.

A tiny random generator (16 px) gets directions found for it on a stand-in attribute (brightness), so
the API's behaviour is checked without trained weights; each job takes well under a second.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from faceforge import editing as E
from faceforge import stylegan as S
from faceforge.checkpoints import save_checkpoint
from faceforge.models import create_model
from server import create_app
from test_jobs import CONFIG, assert_problem, images_of, submit, wait  # tests/ is on sys.path

pytest.importorskip("sklearn", reason="finding directions needs scikit-learn")
torch.set_num_threads(1)


def tiny_generator(seed: int = 0):
    from faceforge.models.stylegan2 import StyleGAN2Generator

    torch.manual_seed(seed)
    return StyleGAN2Generator(**CONFIG).eval()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edit")
    G = tiny_generator()
    weights = save_checkpoint(folder / "base.pt", G, "stylegan2", CONFIG)

    def scorer(images):
        x = images.astype(np.float64)
        return {"age": x.mean((1, 2, 3)), "smile": x[..., 0].mean((1, 2)) - x[..., 2].mean((1, 2))}

    dirs = E.find_directions(G, scorer, samples=400, batch_size=200)
    dirs.meta["generator_sha256"] = E.file_sha256(weights)
    path = dirs.save(folder / "directions.json")
    app = create_app({"stylegan2_weights": str(weights), "stylegan2_directions": str(path), "torch_threads": None,
                      "max_images": 4, "job_ttl_s": 60})
    yield app.test_client(), weights, path, folder
    app.extensions["faceforge"]["jobs"].close()


def test_edit_seeds_job(setup):
    client, weights, path, _ = setup
    body = wait(client, submit(client, "edit", json={"seeds": [1, 2], "attribute": "age", "strengths": [-2, 0, 2],
                                                     "condition": ["smile"], "psi": 0.8}))
    got = images_of(body)
    assert len(got) == 6 and got[0].shape == (16, 16, 3)
    G = create_model("stylegan2", weights=weights)
    expected = E.edit(G, S.seed_ws(G, [1, 2], 0.8), E.Directions.load(path), "age", [-2, 0, 2], condition=["smile"])
    assert all(np.array_equal(g, e) for g, e in zip(got, expected.reshape(-1, 16, 16, 3)))
    data = body["result"]["data"]
    assert data["strengths"] == [-2, 0, 2] and data["condition"] == ["smile"] and "row-major" in data["layout"]


def test_edit_photo_job_is_multipart(setup, astronaut_rgb):
    from faceforge.imaging import encode_image

    client = setup[0]
    form = {"image": (io.BytesIO(encode_image(astronaut_rgb, "png")), "a.png"), "attribute": "smile",
            "strengths": "-1,1", "steps": "2", "align": "false"}
    body = wait(client, submit(client, "edit", data=form, content_type="multipart/form-data"))
    got = images_of(body)
    assert len(got) == 3 and body["result"]["data"]["steps"] == 2  # [photo, two edits]


def test_edit_validation_at_submit(setup):
    client = setup[0]
    assert_problem(client.post("/v1/edit", json={"seeds": [1]}), 400, "missing-field")
    assert_problem(client.post("/v1/edit", json={"seeds": [1], "attribute": "gender"}), 400, "invalid-field")
    assert_problem(client.post("/v1/edit", json={"seeds": [1], "attribute": "age", "strengths": [99]}), 400,
                   "invalid-field")
    assert_problem(client.post("/v1/edit", json={"seeds": [1], "attribute": "age", "condition": ["age"]}), 400,
                   "invalid-field")
    assert_problem(client.post("/v1/edit", json={"seeds": [1, 2, 3, 4], "attribute": "age",
                                                 "strengths": [-2, -1, 0, 1, 2]}), 400, "invalid-field")


def test_directions_of_another_generator_are_503(setup, tmp_path):
    _, weights, path, folder = setup
    other = save_checkpoint(tmp_path / "other.pt", tiny_generator(seed=5), "stylegan2", CONFIG)
    app = create_app({"stylegan2_weights": str(other), "stylegan2_directions": str(path), "torch_threads": None})
    try:
        body = assert_problem(app.test_client().post("/v1/edit", json={"seeds": [1], "attribute": "age"}), 503,
                              "weights-not-found")
        assert "stylegan directions" in body["detail"] and str(folder) not in body["detail"]
    finally:
        app.extensions["faceforge"]["jobs"].close()


def test_celery_routes_photo_edits_and_makeup_to_the_heavy_queue():
    pytest.importorskip("celery", reason="the celery backend needs celery[redis]")
    from server import celery_backend as cb

    assert cb.queue_for("edit", {"seeds": [1], "image": None}) == cb.LIGHT_QUEUE
    assert cb.queue_for("edit", {"seeds": None, "image": b"x"}) == cb.HEAVY_QUEUE   # projects the photo first
    assert cb.queue_for("makeup", {"target": b"x", "reference": b"y"}) == cb.HEAVY_QUEUE
