"""The heavy-task job API: 202 -> poll -> result for every task, 429 on a full queue, 404/409
problems, failures carried in the job, TTL expiry, jobs that finish without any client, concurrent
clients, configuration and the OpenAPI document.

The StyleGAN2 weights are tiny random generators (16 px) saved by the tests: the API's behaviour does
not depend on trained weights, and every job takes well under a second.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import io
import math
import threading
import time

import numpy as np
import pytest
import torch
from jsonschema import Draft202012Validator
from PIL import Image

from faceforge import stylegan as S
from faceforge.checkpoints import save_checkpoint
from faceforge.errors import NoFaceError, PROBLEM_TYPE_PREFIX
from faceforge.models import create_model
from faceforge.models.stylegan2 import StyleGAN2Generator
from server import create_app, schemas
from server.errors import JobNotFoundError, QueueFullError
from server.jobs import InProcessJobQueue, TaskResult

from problems import assert_problem  # tests/problems.py (tests/ is on sys.path); test_jobs_* import it from here

torch.set_num_threads(1)
PROBLEM = "application/problem+json"
CONFIG = {"resolution": 16, "z_dim": 16, "w_dim": 16, "channel_base": 128, "channel_max": 16}


def encode_png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stylegan2")
    torch.manual_seed(0)
    g = StyleGAN2Generator(**CONFIG).eval()
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.2)
    base = save_checkpoint(folder / "base.pt", g, "stylegan2", CONFIG, meta={"version": "test-random"})
    toon = copy.deepcopy(g)
    with torch.no_grad():
        for name, p in toon.named_parameters():
            if name.startswith("synthesis"):
                p.add_(torch.randn_like(p) * 0.3)
    return base, save_checkpoint(folder / "toon.pt", toon, "stylegan2", CONFIG)


@pytest.fixture(scope="module")
def app(weights):
    app = create_app({"stylegan2_weights": str(weights[0]), "stylegan2_toon_weights": str(weights[1]),
                      "torch_threads": None, "max_jobs": 8, "job_ttl_s": 60, "max_images": 8})
    yield app
    app.extensions["faceforge"]["jobs"].close()


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


def submit(client, task: str, **kw):
    response = client.post(schemas.task_path(task), **kw)
    assert response.status_code == 202, response.get_data(as_text=True)
    body = response.get_json()
    Draft202012Validator(schemas.job_accepted_schema()).validate(body)
    assert response.headers["Location"] == body["url"] == f"{schemas.JOBS_PATH}/{body['id']}"
    return body["url"]


def wait(client, url: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(url)
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        Draft202012Validator(schemas.job_schema()).validate(body)
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.02)
    raise AssertionError(f"job {url} did not finish in {timeout} s")


@contextlib.contextmanager
def blocking_jobs(app, **queue_kwargs):
    """Serve ``app``'s jobs, inside the block, from a one-worker :class:`InProcessJobQueue` whose every job
    blocks until ``release`` is set; yields ``(started, release)``: ``started`` is set when a job runs.
    On leaving: release, close that queue and put the app's own queue back."""
    release, started = threading.Event(), threading.Event()

    def blocking(task, payload):
        started.set()
        release.wait(10)
        return TaskResult([encode_png(np.zeros((4, 4, 3), np.uint8))], {"task": task})

    jobs = app.extensions["faceforge"]["jobs"]
    app.extensions["faceforge"]["jobs"] = InProcessJobQueue(blocking, workers=1, **queue_kwargs)
    try:
        yield started, release
    finally:
        release.set()
        app.extensions["faceforge"]["jobs"].close()
        app.extensions["faceforge"]["jobs"] = jobs


def images_of(body: dict) -> list[np.ndarray]:
    assert body["status"] == "succeeded", body["error"]
    return [decode_png(base64.b64decode(img["png_base64"])) for img in body["result"]["images"]]


# ------------------------------------------------------------------------------------ tasks ---------
def test_generate_job_end_to_end(client, weights):
    url = submit(client, "generate", json={"seeds": [3, 9], "psi": 0.7})
    body = wait(client, url)
    assert body["task"] == "generate" and body["error"] is None
    assert body["timings_ms"]["run"] > 0 and body["timings_ms"]["queued"] >= 0
    assert body["created_at"] <= body["started_at"] <= body["finished_at"] < body["expires_at"]
    got = images_of(body)
    G = create_model("stylegan2", weights=weights[0])
    expected = S.generate(G, [3, 9], psi=0.7)
    assert len(got) == 2 and all(np.array_equal(g, e) for g, e in zip(got, expected))
    assert body["result"]["data"]["seeds"] == [3, 9]
    first = body["result"]["images"][0]
    assert (first["width"], first["height"], first["channels"]) == (16, 16, 3)
    raw = client.get(first["url"])
    assert raw.status_code == 200 and raw.mimetype == "image/png"
    assert raw.data == base64.b64decode(first["png_base64"])


def test_generate_emoji_output_is_rgba(client):
    body = wait(client, submit(client, "generate", json={"seeds": [1], "output": "emoji"}))
    (emoji,) = images_of(body)
    assert emoji.ndim == 3 and emoji.shape[2] == 4 and body["result"]["images"][0]["channels"] == 4
    assert emoji[..., 3].min() < 30 and emoji[..., 3].max() == 255  # transparent corners, opaque face


def test_emoji_size_is_the_longer_side(client):
    body = wait(client, submit(client, "generate", json={"seeds": [1], "output": "emoji", "emoji_size": 128}))
    (emoji,) = images_of(body)
    assert emoji.shape[2] == 4 and max(emoji.shape[:2]) == 128 and emoji[0, 0, 3] == 0
    (default,) = images_of(wait(client, submit(client, "generate", json={"seeds": [1], "output": "emoji"})))
    assert max(default.shape[:2]) == 256  # the 16 px test generator's face, enlarged before masking
    assert_problem(client.post("/v1/generate", json={"seeds": [1], "output": "emoji", "emoji_size": 8}),
                   400, "invalid-field")


def test_style_mix_job(client):
    body = wait(client, submit(client, "style-mix", json={"row_seeds": [1, 2], "col_seeds": [3, 4, 5],
                                                          "resolution": 8}))
    (grid,) = images_of(body)
    assert grid.shape == (3 * 16, 4 * 16, 3)
    assert body["result"]["data"]["crossover"] == 4


def test_toonify_seeds_and_photo(client, astronaut_rgb):
    seeds = wait(client, submit(client, "toonify", json={"seeds": [5, 6], "swap_resolution": 8}))
    assert len(images_of(seeds)) == 2 and seeds["result"]["data"]["structure_from"] == "finetuned"
    photo = wait(client, submit(client, "toonify", data={"image": (io.BytesIO(encode_png(astronaut_rgb)), "a.png"),
                                                         "steps": "5"}, content_type="multipart/form-data"))
    crop, toon = images_of(photo)
    assert crop.shape == toon.shape == (16, 16, 3)


def test_project_job_returns_the_latent(client, weights):
    G = create_model("stylegan2", weights=weights[0])
    target = S.generate(G, [11], psi=0.5)[0]
    data = {"image": (io.BytesIO(encode_png(np.kron(target, np.ones((2, 2, 1), np.uint8)))), "t.png"),
            "steps": "20", "align": "false"}
    body = wait(client, submit(client, "project", data=data, content_type="multipart/form-data"))
    crop, recon = images_of(body)
    result = body["result"]["data"]
    assert np.array_equal(crop, target)  # 2x upsampled by kron, area-resized back: exact
    assert np.array(result["latent"]).shape == (1, 16) and result["w_plus"] is False
    assert result["loss_final"] < result["loss_initial"]
    w = torch.tensor(result["latent"][0])
    assert np.abs(S.synthesize(G, w[None]).astype(int) - recon).max() <= 1


def test_project_job_id_weight(client, weights):
    """id_weight 0 is the pixel-only projection of before (same latent as the library's); a weight > 0 is
    reported with the final identity distance; a bad value is a 400 problem at submit."""
    from faceforge import identity

    G = create_model("stylegan2", weights=weights[0])
    target = S.generate(G, [12], psi=0.5)[0]
    png = encode_png(np.kron(target, np.ones((2, 2, 1), np.uint8)))

    def run(**fields):
        data = {"image": (io.BytesIO(png), "t.png"), "steps": "6", "align": "false", **fields}
        return wait(client, submit(client, "project", data=data, content_type="multipart/form-data"))

    off = run(id_weight="0")["result"]["data"]
    assert off["id_weight"] == 0 and "identity_distance" not in off
    np.testing.assert_allclose(off["latent"][0], S.project(G, target, steps=6).w.numpy(), atol=1e-5)
    if identity.is_available():
        on = run(id_weight="2")["result"]["data"]
        assert on["id_weight"] == 2 and 0 <= on["identity_distance"] < 2
        assert run()["result"]["data"]["id_weight"] == S.DEFAULT_ID_WEIGHT
    for bad in ("-1", "1000", "nan", "x"):
        data = {"image": (io.BytesIO(png), "t.png"), "id_weight": bad}
        body = assert_problem(client.post("/v1/project", data=data, content_type="multipart/form-data"), 400,
                              "invalid-field")
        assert "id_weight" in body["detail"]


def test_morph_latent_and_delaunay(client, astronaut_rgb):
    latent = wait(client, submit(client, "morph", json={"seeds": [1, 2], "t": [0, 0.5, 1]}))
    frames = images_of(latent)
    assert len(frames) == 3 and latent["result"]["data"]["mode"] == "latent"
    flipped = np.ascontiguousarray(astronaut_rgb[:, ::-1])
    data = {"image_a": (io.BytesIO(encode_png(astronaut_rgb)), "a.png"),
            "image_b": (io.BytesIO(encode_png(flipped)), "b.png"), "t": "0,0.5"}
    body = wait(client, submit(client, "morph", data=data, content_type="multipart/form-data"))
    a, mid = images_of(body)
    assert a.shape == mid.shape == (256, 256, 3) and body["result"]["data"]["mode"] == "delaunay"


# ------------------------------------------------------------------------------------ errors --------
def test_request_validation_problems(client):
    assert_problem(client.post("/v1/generate", json={}), 400, "missing-field")
    assert_problem(client.post("/v1/generate", json={"seeds": list(range(9))}), 400, "invalid-field")
    assert_problem(client.post("/v1/generate", json={"seeds": [1], "psi": "x"}), 400, "invalid-field")
    assert_problem(client.post("/v1/generate", json={"seeds": [-1]}), 400, "invalid-field")
    assert_problem(client.post("/v1/generate", data="nope", content_type="text/plain"), 400, "missing-field")
    assert_problem(client.post("/v1/morph", json={"seeds": [1]}), 400, "invalid-field")
    assert_problem(client.post("/v1/morph", json={"seeds": [1, 2], "t": [2]}), 400, "invalid-field")
    assert_problem(client.post("/v1/project", data={"steps": "5"}, content_type="multipart/form-data"),
                   400, "missing-field")
    bad = {"image": (io.BytesIO(b"not an image at all" * 10), "x.png")}
    assert_problem(client.post("/v1/project", data=bad, content_type="multipart/form-data"), 400, "not-an-image")
    assert_problem(client.get("/v1/generate"), 405, "method-not-allowed")


def test_unknown_job_and_unfinished_images(client):
    body = assert_problem(client.get(f"{schemas.JOBS_PATH}/does-not-exist"), 404, "job-not-found")
    assert body["job_id"] == "does-not-exist"
    url = submit(client, "generate", json={"seeds": [1]})
    wait(client, url)
    assert_problem(client.get(url + "/images/7"), 404, "job-not-found")


def test_weights_not_configured_is_503(tmp_path, weights):
    client = create_app({"torch_threads": None}).test_client()
    body = assert_problem(client.post("/v1/generate", json={"seeds": [1]}), 503, "weights-not-found")
    assert "FACEFORGE_STYLEGAN2_WEIGHTS" in body["detail"]
    missing = create_app({"stylegan2_weights": str(tmp_path / "absent.pt")}).test_client()
    body = assert_problem(missing.post("/v1/style-mix", json={"row_seeds": [1], "col_seeds": [2]}),
                          503, "weights-not-found")
    assert str(tmp_path) not in body["detail"]  # no server paths in answers
    no_toon = create_app({"stylegan2_weights": str(weights[0])}).test_client()
    assert_problem(no_toon.post("/v1/toonify", json={"seeds": [1]}), 503, "weights-not-found")


def test_shipped_default_generator_serves_by_configuration():
    from faceforge.models import get_spec

    path = get_spec("stylegan2").default_weights_path
    if path is None or not path.is_file():
        pytest.skip("faceforge ships no default StyleGAN2 weights in this checkout")
    client = create_app({"stylegan2_weights": "default", "torch_threads": None}).test_client()
    got = images_of(wait(client, submit(client, "generate", json={"seeds": [5], "psi": 0.7})))
    G = create_model("stylegan2", weights="default")
    assert len(got) == 1 and np.array_equal(got[0], S.generate(G, [5], psi=0.7)[0])
    assert got[0].shape == (G.resolution, G.resolution, 3) and got[0].std() > 5  # an image, not a flat field


def test_shipped_toon_generator_serves_by_configuration(monkeypatch, tmp_path, without_card):
    from faceforge.models import get_spec, stylegan2 as sg

    toon_path = sg.default_toon_weights_path()
    if not toon_path.is_file() or get_spec("stylegan2").default_weights_path is None:
        pytest.skip("faceforge ships no default cartoon StyleGAN2 weights in this checkout")
    client = create_app({"stylegan2_weights": "default", "stylegan2_toon_weights": "default",
                         "torch_threads": None}).test_client()
    got = images_of(wait(client, submit(client, "toonify", json={"seeds": [3], "psi": 0.7,
                                                                       "swap_resolution": 16})))
    base = create_model("stylegan2", weights="default")
    expected = S.generate(S.toonify(base, create_model("stylegan2", weights=toon_path), 16), [3], psi=0.7)
    assert len(got) == 1 and np.array_equal(got[0], expected[0])
    # toonified, not the base face again
    assert not np.array_equal(expected[0], S.generate(base, [3], psi=0.7)[0])
    # a checkout without the file: "default" is a clear 503, not a crash
    without_card(sg.TOON_CARD)
    toon = create_app({"stylegan2_weights": "default", "stylegan2_toon_weights": "default"}).test_client()
    assert_problem(toon.post("/v1/toonify", json={"seeds": [1]}), 503, "weights-not-found")


def test_failed_job_carries_its_problem(client):
    blank = {"image": (io.BytesIO(encode_png(np.full((64, 64, 3), 128, np.uint8))), "blank.png"), "steps": "2"}
    body = wait(client, submit(client, "project", data=blank, content_type="multipart/form-data"))
    assert body["status"] == "failed" and body["result"] is None
    assert body["error"]["type"] == PROBLEM_TYPE_PREFIX + "no-face" and body["error"]["status"] == 422
    url = body["id"]
    assert_problem(client.get(f"{schemas.JOBS_PATH}/{url}/images/0"), 409, "job-not-finished")


# ------------------------------------------------------------------------------------ the queue -----
def test_full_queue_is_429_with_retry_after(app):
    with blocking_jobs(app, max_queued=2, retry_after_s=7) as (started, release):
        client = app.test_client()
        urls = [submit(client, "generate", json={"seeds": [1]})]
        assert started.wait(5)  # the worker holds job 1; two more may wait
        urls += [submit(client, "generate", json={"seeds": [2]}), submit(client, "generate", json={"seeds": [3]})]
        full = client.post("/v1/generate", json={"seeds": [4]})
        assert_problem(full, 429, "queue-full")
        assert full.headers["Retry-After"] == "7"
        assert client.get(urls[0]).get_json()["status"] == "running"
        assert client.get(urls[2]).get_json()["status"] == "queued"
        release.set()
        assert all(wait(client, url)["status"] == "succeeded" for url in urls)
        queue_ = app.extensions["faceforge"]["jobs"]
        assert queue_.stats()["succeeded"] == 3
        # once jobs have finished, the hint is the time to drain a full queue (2 x median run / 1 worker)
        runs = sorted(queue_._run_times)
        assert len(runs) == 3 and queue_.retry_after() == max(1, math.ceil(2 * runs[1]))
        queue_._run_times.extend([30.0] * 3)
        assert queue_.retry_after() == 60


def test_jobs_finish_without_any_client_and_expire():
    done = threading.Event()

    def runner(task, payload):
        time.sleep(0.05)
        done.set()
        return TaskResult([], {"n": payload["n"]})

    queue = InProcessJobQueue(runner, workers=1, max_queued=2, ttl_s=0.3)
    job = queue.submit("generate", {"n": 1})  # nobody ever polls
    assert done.wait(5)
    deadline = time.monotonic() + 5
    while queue.get(job.id).status != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert queue.get(job.id).result.data == {"n": 1} and queue.get(job.id).payload is None
    time.sleep(0.4)
    with pytest.raises(JobNotFoundError):
        queue.get(job.id)  # expired after ttl_s
    queue.close()
    with pytest.raises(QueueFullError):
        queue.submit("generate", {"n": 2})


def test_worker_survives_failing_jobs():
    def runner(task, payload):
        if payload["kind"] == "typed":
            raise NoFaceError("nobody here")
        if payload["kind"] == "crash":
            raise RuntimeError("secret /etc/passwd")
        return TaskResult([], {"ok": True})

    queue = InProcessJobQueue(runner, workers=1, max_queued=4)
    ids = [queue.submit("project", {"kind": k}).id for k in ("typed", "crash", "fine")]
    deadline = time.monotonic() + 5
    while queue.get(ids[-1]).status != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.01)
    typed, crash, fine = (queue.get(i) for i in ids)
    assert typed.status == "failed" and typed.error["type"] == PROBLEM_TYPE_PREFIX + "no-face"
    assert crash.status == "failed" and "secret" not in str(crash.error)
    assert fine.status == "succeeded"
    queue.close()


def test_cancel_queued_running_and_finished_jobs():
    """A queued job never runs; a running one is cancelled at once, its task sees the cooperative flag and its
    result is discarded; finished jobs answer JobFinishedError; other jobs and their results are kept."""
    from server.errors import JobFinishedError
    from server.jobs import cancel_requested

    release, started, ran, saw_flag = threading.Event(), threading.Event(), [], []

    def runner(task, payload):
        ran.append(payload["n"])
        if payload["n"] == 1:
            started.set()
            deadline = time.monotonic() + 10
            while not cancel_requested() and time.monotonic() < deadline:  # a task working in steps
                time.sleep(0.005)
            saw_flag.append(cancel_requested())
            release.wait(10)
            return TaskResult([encode_png(np.zeros((4, 4, 3), np.uint8))], {"n": 1})
        if payload["n"] == 4:
            raise NoFaceError("nobody here")
        return TaskResult([], {"n": payload["n"]})

    queue = InProcessJobQueue(runner, workers=1, max_queued=4, ttl_s=60)
    try:
        running = queue.submit("generate", {"n": 1})
        assert started.wait(5)
        queued = queue.submit("generate", {"n": 2})
        later = queue.submit("generate", {"n": 3})
        failing = queue.submit("project", {"n": 4})
        cancelled = queue.cancel(queued.id)
        assert cancelled.status == "cancelled" and cancelled.started is None and cancelled.finished is not None
        assert cancelled.payload is None and cancelled.task == "generate"
        stopped = queue.cancel(running.id)
        assert stopped.status == "cancelled" and stopped.started is not None and stopped.finished >= stopped.started
        assert queue.cancel(running.id).finished == stopped.finished  # cancelling again changes nothing
        release.set()
        deadline = time.monotonic() + 5
        while queue.get(failing.id).status != "failed" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ran == [1, 3, 4] and saw_flag == [True]  # job 2 never ran
        assert queue.get(running.id).status == "cancelled" and queue.get(running.id).result is None
        assert queue.get(queued.id).status == "cancelled"
        assert queue.get(later.id).status == "succeeded" and queue.get(later.id).result.data == {"n": 3}
        for done in (later, failing):
            with pytest.raises(JobFinishedError) as exc:
                queue.cancel(done.id)
            assert exc.value.status == 409 and exc.value.extra["job_status"] == queue.get(done.id).status
        assert queue.get(later.id).result.data == {"n": 3}  # a refused cancel changes nothing
        assert queue.stats() == {"queued": 0, "running": 0, "succeeded": 1, "failed": 1, "cancelled": 2}
        with pytest.raises(JobNotFoundError):
            queue.cancel("0" * 32)
        assert not cancel_requested()  # outside a job thread
    finally:
        release.set()
        queue.close()


def test_cancel_over_http(app):
    """DELETE /v1/jobs/<id>: 200 with the cancelled record (schema-valid), 409 job-finished once it finished,
    404 for unknown ids; a cancelled job has no images (409 job-not-finished); the OpenAPI operation."""
    with blocking_jobs(app, max_queued=2) as (started, release):
        client = app.test_client()
        running = submit(client, "generate", json={"seeds": [1]})
        assert started.wait(5)
        queued = submit(client, "generate", json={"seeds": [2]})
        for url, before in ((queued, "queued"), (running, "running")):
            assert client.get(url).get_json()["status"] == before
            response = client.delete(url)
            assert response.status_code == 200, response.get_data(as_text=True)
            body = response.get_json()
            Draft202012Validator(schemas.job_schema()).validate(body)
            assert body["status"] == "cancelled" and body["result"] is None and body["expires_at"]
            assert client.get(url).get_json()["status"] == "cancelled"
            assert_problem(client.get(url + "/images/0"), 409, "job-not-finished")
        assert client.get(queued).get_json()["started_at"] is None
        assert client.delete(queued).get_json()["status"] == "cancelled"  # again: the same record
        release.set()
        done = submit(client, "generate", json={"seeds": [3]})
        assert wait(client, done)["status"] == "succeeded"
        body = assert_problem(client.delete(done), 409, "job-finished")
        assert body["job_status"] == "succeeded" and "cannot be cancelled" in body["title"]
        assert client.get(done).get_json()["status"] == "succeeded"
        assert_problem(client.delete(f"{schemas.JOBS_PATH}/{'0' * 32}"), 404, "job-not-found")
        assert client.get(running).get_json()["status"] == "cancelled"  # its late result was discarded
    op = client.get(schemas.OPENAPI_PATH).get_json()["paths"][schemas.JOBS_PATH + "/{job_id}"]["delete"]
    assert op["operationId"] == "cancelJob" and {"200", "404", "409"} <= set(op["responses"])


def test_http_clients_disconnect_and_concurrent_clients(app):
    requests = pytest.importorskip("requests")
    from server.testing import serve_in_thread

    with serve_in_thread(app) as base_url:
        with requests.Session() as session:  # submit, then drop the connection without polling
            accepted = session.post(base_url + "/v1/generate", json={"seeds": [7]}, timeout=30)
        assert accepted.status_code == 202
        job_id = accepted.json()["id"]
        jobs = app.extensions["faceforge"]["jobs"]
        deadline = time.monotonic() + 30
        while jobs.get(job_id).status != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert jobs.get(job_id).status == "succeeded"  # finished with no client attached

        results: list[str] = []

        def client_thread(seed: int) -> None:
            url = requests.post(base_url + "/v1/generate", json={"seeds": [seed]}, timeout=30).headers["Location"]
            for _ in range(1500):
                body = requests.get(base_url + url, timeout=30).json()
                if body["status"] in ("succeeded", "failed"):
                    results.append(body["status"])
                    return
                time.sleep(0.02)

        threads = [threading.Thread(target=client_thread, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == ["succeeded"] * 4


# ------------------------------------------------------------------------------------ config, docs --
def test_job_config_from_environment(monkeypatch, weights):
    monkeypatch.setenv("FACEFORGE_STYLEGAN2_WEIGHTS", str(weights[0]))
    monkeypatch.setenv("FACEFORGE_MAX_JOBS", "3")
    app = create_app()
    config = app.extensions["faceforge"]["config"]
    assert config.stylegan2_weights == str(weights[0]) and config.max_jobs == 3
    assert app.extensions["faceforge"]["jobs"].max_queued == 3
    monkeypatch.setenv("FACEFORGE_JOB_BACKEND", "carrier-pigeon")
    with pytest.raises(ValueError, match="job backend"):
        create_app()


def test_models_endpoint_reports_stylegan2(client):
    wait(client, submit(client, "generate", json={"seeds": [1]}))
    entry = {m["name"]: m for m in client.get(schemas.MODELS_PATH).get_json()["models"]}["stylegan2"]
    assert entry["served"] is True and entry["loaded"] is True
    assert entry["weights"]["configured"] == "base.pt" and entry["weights"]["version"] == "test-random"


def test_openapi_lists_the_job_endpoints(client):
    doc = client.get(schemas.OPENAPI_PATH).get_json()
    for task in schemas.JOB_TASKS:
        op = doc["paths"][schemas.task_path(task)]["post"]
        assert "202" in op["responses"] and "429" in op["responses"] and "503" in op["responses"]
    assert "404" in doc["paths"][schemas.JOBS_PATH + "/{job_id}"]["get"]["responses"]
    assert "multipart/form-data" in doc["paths"]["/v1/project"]["post"]["requestBody"]["content"]
    Draft202012Validator.check_schema(doc["components"]["schemas"]["Job"])
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(doc)


def test_cancelled_projection_stops_between_steps(weights):
    """In-process cancel stops a StyleGAN2 projection between its optimisation steps (the tasks pass
    stop_if_cancelled as project()'s callback): the worker is free again long before the steps are done,
    the record stays cancelled with no error, and the next job runs."""
    from server.jobs import stop_if_cancelled

    G = create_model("stylegan2", weights=weights[0]).eval()
    target = S.generate(G, [5])[0]
    started, steps_run = threading.Event(), []

    def runner(task, payload):
        if task == "project":
            def callback(step, loss):
                steps_run.append(step)
                started.set()
                stop_if_cancelled(step, loss)

            S.project(G, target, steps=100_000, num_w_samples=64, callback=callback)
            raise AssertionError("the projection ran to its end")
        return TaskResult([], {"n": payload["n"]})

    queue = InProcessJobQueue(runner, workers=1, max_queued=4, ttl_s=60)
    try:
        job = queue.submit("project", {"n": 1})
        assert started.wait(30)
        queue.cancel(job.id)
        follower = queue.submit("generate", {"n": 2})
        deadline = time.monotonic() + 30
        while queue.get(follower.id).status != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert queue.get(follower.id).status == "succeeded"
        record = queue.get(job.id)
        assert record.status == "cancelled" and record.error is None
        assert 1 <= len(steps_run) < 100_000
    finally:
        queue.close()
