"""The HTTP API: problem+json for every error type, the emotion happy path, models/health/ready,
the OpenAPI document, configuration, and a real HTTP round trip.

One app per module (its detector and classifier load once, on the first request that needs them).
The classifier is a random-weights checkpoint made here: API behaviour never depends on trained weights.
"""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from PIL import Image

from faceforge.errors import PROBLEM_TYPE_PREFIX
from faceforge.models.mini_xception import FER2013_LABELS
from server import create_app, schemas
from server.config import MULTIPART_OVERHEAD_BYTES, Config
from server.testing import make_random_emotion_checkpoint

from problems import assert_problem  # tests/problems.py (tests/ is on sys.path)

PROBLEM = "application/problem+json"
MAX_BYTES = 1 * 2**20
MAX_PIXELS = 2_000_000
MAX_FACES = 4


def problem_type(slug: str) -> str:
    return PROBLEM_TYPE_PREFIX + slug


def encode(rgb: np.ndarray, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def astronaut_jpeg(astronaut_rgb) -> bytes:
    return encode(astronaut_rgb, "JPEG", quality=90)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_random_emotion_checkpoint(tmp_path_factory.mktemp("weights") / "mini_xception_random.pt",
                                          version="test-random")


@pytest.fixture(scope="module")
def app(checkpoint):
    # torch_threads=None: leave the test process's PyTorch threads alone
    return create_app({"emotion_weights": str(checkpoint), "max_bytes": MAX_BYTES, "max_pixels": MAX_PIXELS,
                       "max_faces": MAX_FACES, "torch_threads": None})


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


def post_image(client, data: bytes, field: str = "image", **form):
    return client.post(schemas.EMOTION_PATH, data={field: (io.BytesIO(data), "upload.bin"), **form},
                       content_type="multipart/form-data")


# --------------------------------------------------------------------------- errors, one per type
def test_not_an_image(client):
    assert_problem(post_image(client, b"this is plain text, not a picture" * 10), 400, "not-an-image")


def test_truncated_image(client, astronaut_jpeg):
    assert_problem(post_image(client, astronaut_jpeg[: len(astronaut_jpeg) // 2]), 400, "truncated-image")


def test_unsupported_format(client, astronaut_rgb):
    # a real image in a format Pillow reads but faceforge does not accept (Photoshop-era PCX)
    assert_problem(post_image(client, encode(astronaut_rgb[:64, :64], "PCX")), 415, "unsupported-format")


def test_too_many_bytes_at_the_http_layer(client):
    body = assert_problem(post_image(client, b"\0" * (MAX_BYTES + 2 * MULTIPART_OVERHEAD_BYTES)),
                          413, "too-many-bytes")
    assert str(MAX_BYTES + MULTIPART_OVERHEAD_BYTES) in body["detail"]


def test_too_many_bytes_in_the_file(client):
    # the body fits MAX_CONTENT_LENGTH (multipart slack) but the file itself is over max_bytes
    assert_problem(post_image(client, b"\xff" * (MAX_BYTES + 10)), 413, "too-many-bytes")


def test_too_many_pixels_decompression_bomb(client):
    side = 2000  # 4 MP of a single colour: a few kB of PNG, over the 2 MP limit
    bomb = encode(np.zeros((side, side), np.uint8), "PNG", optimize=True)
    assert len(bomb) < 64 * 1024 < MAX_BYTES
    assert_problem(post_image(client, bomb), 413, "too-many-pixels")


def test_image_too_small(client):
    assert_problem(post_image(client, encode(np.full((8, 8, 3), 200, np.uint8), "PNG")), 422, "image-too-small")


def test_no_face(client):
    assert_problem(post_image(client, encode(np.full((240, 320, 3), 128, np.uint8), "PNG")), 422, "no-face")


def test_missing_field(client, astronaut_jpeg):
    body = assert_problem(post_image(client, astronaut_jpeg, field="photo"), 400, "missing-field")
    assert body["field"] == "image"
    assert_problem(client.post(schemas.EMOTION_PATH, json={"image": "x"}), 400, "missing-field")


@pytest.mark.parametrize("value", ["0", "abc", str(MAX_FACES + 1)])
def test_invalid_max_faces(client, astronaut_jpeg, value):
    assert_problem(post_image(client, astronaut_jpeg, max_faces=value), 400, "invalid-field")


def test_not_found_and_method_not_allowed(client):
    assert_problem(client.get("/v1/nothing-here"), 404, "not-found")
    response = client.get(schemas.EMOTION_PATH)
    assert_problem(response, 405, "method-not-allowed")
    assert "POST" in response.headers["Allow"]


def test_unexpected_exception_is_a_500_problem_without_internals(checkpoint):
    app = create_app({"emotion_weights": str(checkpoint)})

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internal state /etc/passwd")

    body = assert_problem(app.test_client().get("/boom"), 500, "internal-error")
    assert "secret" not in str(body) and "Traceback" not in str(body)


def test_missing_weights_are_503_and_not_ready(tmp_path, astronaut_jpeg):
    client = create_app({"emotion_weights": str(tmp_path / "absent.pt")}).test_client()
    assert_problem(post_image(client, astronaut_jpeg), 503, "weights-not-found")
    body = assert_problem(client.get(schemas.READY_PATH), 503, "not-ready")
    assert body["checks"]["mini_xception"].startswith(problem_type("weights-not-found"))
    assert client.get(schemas.HEALTH_PATH).status_code == 200  # alive, just not ready


# --------------------------------------------------------------------------- happy path
def test_emotion_astronaut(client, astronaut_jpeg, checkpoint):
    response = post_image(client, astronaut_jpeg)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    Draft202012Validator(schemas.emotion_response_schema()).validate(body)
    assert body["image"] == {"width": 512, "height": 512}
    assert body["model"]["name"] == "mini_xception" and body["model"]["version"] == "test-random"
    assert body["model"]["weights"] == checkpoint.name  # a file name, never a server path
    assert len(body["faces"]) == 1
    face = body["faces"][0]
    assert list(face["probabilities"]) == list(FER2013_LABELS)  # FER2013 id order, kept on the wire
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)
    xmin, ymin, xmax, ymax = face["box"]
    assert 0 <= xmin < xmax <= 512 and 0 <= ymin < ymax <= 512
    timings = body["timings_ms"]
    assert list(timings) == list(schemas.TIMING_STEPS)
    steps = sum(timings[k] for k in ("decode", "detect", "align", "classify"))
    assert steps <= timings["total"] + 0.01  # each value is rounded to 1 us


def test_emotion_max_faces(client, astronaut_rgb):
    pair = encode(np.ascontiguousarray(np.concatenate([astronaut_rgb, astronaut_rgb[:, ::-1]], axis=1)))
    both = post_image(client, pair).get_json()
    assert len(both["faces"]) == 2
    one = post_image(client, pair, max_faces="1").get_json()
    assert len(one["faces"]) == 1
    assert one["faces"][0]["score"] == pytest.approx(max(f["score"] for f in both["faces"]))


# --------------------------------------------------------------------------- operations endpoints
def test_healthz_readyz_and_models(client, checkpoint):
    assert client.get(schemas.HEALTH_PATH).get_json() == {"status": "ok"}
    ready = client.get(schemas.READY_PATH)
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"
    body = client.get(schemas.MODELS_PATH).get_json()
    Draft202012Validator(schemas.models_response_schema()).validate(body)
    entry = {m["name"]: m for m in body["models"]}["mini_xception"]
    assert entry["loaded"] is True and entry["served"] is True
    assert entry["weights"] == {"configured": checkpoint.name, "available": True, "version": "test-random",
                                "provenance": entry["weights"]["provenance"]}
    assert entry["labels"] == list(FER2013_LABELS)
    assert entry["input"]["shape"] == [1, 48, 48] and entry["input"]["face_template"] == "fer2013"
    assert body["detector"]["loaded"] is True


def test_models_before_loading_loads_nothing(checkpoint):
    app = create_app({"emotion_weights": str(checkpoint)})
    body = app.test_client().get(schemas.MODELS_PATH).get_json()
    entry = {m["name"]: m for m in body["models"]}["mini_xception"]
    assert entry["loaded"] is False and entry["weights"]["version"] is None
    assert app.extensions["faceforge"]["hub"].loaded == {"detector": False, "mini_xception": False}


def test_openapi_document(client):
    response = client.get(schemas.OPENAPI_PATH)
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"].startswith("3.1")
    jobs = {schemas.task_path(t) for t in schemas.JOB_TASKS} | {schemas.JOBS_PATH + "/{job_id}",
                                                                schemas.JOBS_PATH + "/{job_id}/images/{index}"}
    assert set(doc["paths"]) == {schemas.EMOTION_PATH, schemas.TRANSLATE_PATH, schemas.FRONTALIZE_PATH,
                                 schemas.MODELS_PATH,
                                 schemas.HEALTH_PATH, schemas.READY_PATH, schemas.OPENAPI_PATH} | jobs
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    op = doc["paths"][schemas.EMOTION_PATH]["post"]
    form = op["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == [schemas.IMAGE_FIELD]
    assert form["properties"][schemas.MAX_FACES_FIELD]["maximum"] == MAX_FACES
    # every problem type the endpoint documents is a known type, under its own status code
    known = {p["type"]: p["status"] for p in doc["x-problem-types"]}
    for slug, status in [("no-face", 422), ("missing-field", 400), ("too-many-pixels", 413),
                         ("unsupported-format", 415), ("weights-not-found", 503)]:
        assert known[problem_type(slug)] == status
        assert slug in op["responses"][str(status)]["content"][PROBLEM]["examples"]
    # all $refs resolve
    import json
    for ref in {part.split('"')[0] for part in json.dumps(doc).split('"$ref": "')[1:]}:
        node = doc
        for key in ref.removeprefix("#/").split("/"):
            node = node[key]


def test_problem_types_are_unique_and_http_errors():
    from server.errors import problem_types

    types = problem_types()
    slugs = [cls.slug for cls in types]
    assert len(slugs) == len(set(slugs))  # a `type` URN names exactly one error
    assert {"missing-field", "no-face", "not-found", "internal-error", "weights-not-found"} <= set(slugs)
    assert all(400 <= cls.status <= 599 for cls in types)


def test_openapi_document_passes_the_spec_validator(client):
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(client.get(schemas.OPENAPI_PATH).get_json())


# --------------------------------------------------------------------------- config, loading, HTTP
def test_config_from_environment(monkeypatch):
    monkeypatch.setenv("FACEFORGE_MAX_FACES", "3")
    monkeypatch.setenv("FACEFORGE_WARM_UP", "no")
    monkeypatch.setenv("FACEFORGE_MAX_BYTES", "1000")
    monkeypatch.setenv("FACEFORGE_TORCH_THREADS", "none")
    config = Config.from_env(max_bytes=5000)
    assert (config.max_faces, config.warm_up, config.max_bytes) == (3, False, 5000)  # override wins
    assert config.torch_threads is None and config.max_content_length == 5000 + MULTIPART_OVERHEAD_BYTES
    assert create_app({"MAX_FACES": 2}).extensions["faceforge"]["config"].max_faces == 2
    with pytest.raises(ValueError, match="unknown config key"):
        Config.from_env(max_face=2)
    monkeypatch.setenv("FACEFORGE_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match="FACEFORGE_MAX_PIXELS"):
        Config.from_env()
    monkeypatch.delenv("FACEFORGE_MAX_PIXELS")
    assert Config.from_env(stylegan2_template="ffhq").stylegan2_template == "ffhq"
    with pytest.raises(ValueError, match="stylegan2_template must be one of .*ffhq.*got .ffhg."):
        Config.from_env(stylegan2_template="ffhg")


def test_concurrent_first_requests_load_once(checkpoint, monkeypatch):
    import torch
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)  # record instead of changing the process
    hub = create_app({"emotion_weights": str(checkpoint), "torch_threads": 1}).extensions["faceforge"]["hub"]
    results, barrier = [], threading.Barrier(4)

    def first_use():
        barrier.wait()
        results.append(hub.emotion())

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r is results[0] for r in results)
    assert calls == [1]  # loaded once, torch threads set once


def test_real_http_round_trip(app, astronaut_jpeg):
    requests = pytest.importorskip("requests")
    from server.testing import serve_in_thread

    with serve_in_thread(app) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        response = requests.post(base_url + schemas.EMOTION_PATH,
                                 files={"image": ("astronaut.jpg", astronaut_jpeg, "image/jpeg")}, timeout=60)
        assert response.status_code == 200, response.text
        assert len(response.json()["faces"]) == 1
        missing = requests.post(base_url + schemas.EMOTION_PATH, files={"photo": ("a.jpg", b"x")}, timeout=10)
        assert missing.status_code == 400 and missing.headers["Content-Type"] == PROBLEM
    with pytest.raises(requests.ConnectionError):
        requests.get(base_url + schemas.HEALTH_PATH, timeout=2)  # shut down on exit
