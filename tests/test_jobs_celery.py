"""The ``celery`` job backend without worker processes: the Redis job store (fakeredis), idempotent
execution by job id, attempts, queue limits and Retry-After, the HTTP API on top of it, the Celery
settings, the in-process backend's refusal under a multi-process server, and (real ``redis-server``)
what a broker message and the stored job hold. The fault tests with real processes are in
``test_jobs_celery_faults.py``.
"""

from __future__ import annotations

import base64
import io
import json
import sys
import time
import types

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("celery")
pytest.importorskip("redis")

from faceforge.errors import NoFaceError, PROBLEM_TYPE_PREFIX  # noqa: E402
from server import create_app, schemas  # noqa: E402
from server import celery_backend as cb  # noqa: E402
from server.config import Config  # noqa: E402
from server.errors import JobNotFoundError, NotReadyError, QueueFullError  # noqa: E402
from server.jobs import TaskResult, web_processes  # noqa: E402


def png(value: int = 0, size: int = 4) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def fake():
    fakeredis = pytest.importorskip("fakeredis")
    return fakeredis.FakeRedis()


@pytest.fixture
def store(fake):
    return cb.RedisJobStore(fake, ttl_s=60, live_ttl_s=600, max_queued=3, max_attempts=3, retry_after_s=7)


def run_ok(task, payload):
    return TaskResult([png(1), png(2)], {"task": task, "n": payload.get("n")})


# ------------------------------------------------------------------------------ payloads, routing
def test_payload_bytes_travel_raw_and_round_trip():
    payload = {"image": b"\x89PNG raw", "images": [b"a", b"b\x00"], "t": [0.0, 0.5], "seeds": None, "x": {"y": b"z"}}
    doc, blobs = cb.pack_payload(payload)
    assert blobs == [b"\x89PNG raw", b"a", b"b\x00", b"z"]
    assert b"PNG" not in doc and json.loads(doc)["images"] == [{"$blob": 1}, {"$blob": 2}]
    assert cb.unpack_payload(doc, blobs) == payload
    with pytest.raises(TypeError, match="JSON values and bytes"):
        cb.pack_payload({"bad": object()})


def test_heavy_and_light_queues():
    assert cb.queue_for("generate", {"seeds": [1]}) == cb.LIGHT_QUEUE
    assert cb.queue_for("style-mix", {}) == cb.LIGHT_QUEUE
    assert cb.queue_for("toonify", {"seeds": [1], "image": None}) == cb.LIGHT_QUEUE
    assert cb.queue_for("toonify", {"image": b"x"}) == cb.HEAVY_QUEUE
    assert cb.queue_for("project", {"image": b"x"}) == cb.HEAVY_QUEUE
    assert cb.queue_for("morph", {"mode": "latent", "seeds": [1, 2], "images": None}) == cb.LIGHT_QUEUE
    assert cb.queue_for("morph", {"mode": "latent", "images": [b"a", b"b"]}) == cb.HEAVY_QUEUE
    assert cb.queue_for("morph", {"mode": "delaunay", "images": [b"a", b"b"]}) == cb.LIGHT_QUEUE


# ------------------------------------------------------------------------------ the store
def test_job_lifecycle_images_under_their_own_keys_and_ttls(store, fake):
    job = store.create("project", {"image": b"raw upload", "steps": 5}, cb.HEAVY_QUEUE)
    assert len(job.id) == 32 and store.get(job.id).status == "queued"
    assert store.waiting(cb.HEAVY_QUEUE) == 1 and store.waiting(cb.LIGHT_QUEUE) == 0
    assert fake.hget(store.payload_key(job.id), "blob:0") == b"raw upload"  # raw bytes, no base64
    assert 590 <= fake.ttl(store.record_key(job.id)) <= 600  # live TTL while queued
    calls = []
    status = cb.execute_job(store, job.id, lambda t, p: calls.append(p) or run_ok(t, p), worker="w/1")
    assert status == "succeeded" and calls == [{"image": b"raw upload", "steps": 5}]
    got = store.get(job.id)
    assert got.status == "succeeded" and got.result.images == [png(1), png(2)]
    assert got.result.data == {"task": "project", "n": None} and got.error is None
    assert got.created <= got.started <= got.finished and got.timings_ms()["run"] >= 0
    assert fake.get(store.image_key(job.id, 1)) == png(2)
    for key in (store.record_key(job.id), store.image_key(job.id, 0), store.image_key(job.id, 1)):
        assert 0 < fake.ttl(key) <= 60  # job_ttl_s from the finish
    assert not fake.exists(store.payload_key(job.id)) and store.waiting(cb.HEAVY_QUEUE) == 0
    assert store.stats() == {"queued": 0, "running": 0, "succeeded": 1, "failed": 0, "cancelled": 0}
    fake.delete(store.record_key(job.id))  # as the TTL would
    with pytest.raises(JobNotFoundError):
        store.get(job.id)


def test_ids_that_are_not_job_ids_never_reach_other_keys(store):
    job = store.create("generate", {"seeds": [1]}, cb.LIGHT_QUEUE)
    for bad in ("does-not-exist", f"{job.id}:payload", job.id.upper(), job.id + "0", ""):
        with pytest.raises(JobNotFoundError):
            store.get(bad)


def test_redelivery_of_a_finished_job_does_not_run_it_again(store):
    job = store.create("generate", {"n": 1}, cb.LIGHT_QUEUE)
    calls = []

    def runner(task, payload):
        calls.append(task)
        return run_ok(task, payload)

    assert cb.execute_job(store, job.id, runner) == "succeeded"
    assert cb.execute_job(store, job.id, runner) is None  # the same message delivered again
    assert calls == ["generate"] and store.get(job.id).status == "succeeded"


def test_a_job_whose_worker_died_runs_again_until_max_attempts(store, fake):
    job = store.create("generate", {"n": 2}, cb.LIGHT_QUEUE)
    assert store.start(job.id, "host/1") == ("generate", {"n": 2})  # ... and the worker dies here
    assert store.get(job.id).status == "running" and store.stats()["running"] == 1
    assert cb.execute_job(store, job.id, run_ok, worker="host/2") == "succeeded"  # redelivered: re-run
    assert fake.hget(store.record_key(job.id), "attempts") == b"2"
    doomed = store.create("project", {"image": b"kills workers"}, cb.HEAVY_QUEUE)
    for i in range(3):
        assert store.start(doomed.id, f"host/{i}") is not None
    assert cb.execute_job(store, doomed.id, run_ok) is None  # a 4th start is refused
    failed = store.get(doomed.id)
    assert failed.status == "failed" and failed.error["type"] == PROBLEM_TYPE_PREFIX + "internal-error"
    assert "stopped 3 times" in failed.error["detail"] and failed.result is None


def test_failures_carry_their_problem_and_hide_internals(store):
    from celery.exceptions import SoftTimeLimitExceeded  # raised inside the task at the soft limit

    def runner(task, payload):
        if payload["kind"] == "typed":
            raise NoFaceError("nobody here")
        if payload["kind"] == "slow":
            raise SoftTimeLimitExceeded()
        raise RuntimeError("secret /etc/passwd")

    ids = {k: store.create("project", {"kind": k}, cb.HEAVY_QUEUE).id for k in ("typed", "crash", "slow")}
    for job_id in ids.values():
        assert cb.execute_job(store, job_id, runner) == "failed"
    typed, crash, slow = (store.get(ids[k]) for k in ("typed", "crash", "slow"))
    assert typed.error["type"] == PROBLEM_TYPE_PREFIX + "no-face" and typed.error["status"] == 422
    assert crash.error["type"] == PROBLEM_TYPE_PREFIX + "internal-error" and "secret" not in json.dumps(crash.error)
    assert "time limit" in slow.error["detail"]
    assert store.stats()["failed"] == 3


def test_queue_limit_per_queue_and_retry_after_from_recent_runs(store, fake):
    ids = [store.create("project", {"n": i}, cb.HEAVY_QUEUE).id for i in range(3)]
    with pytest.raises(QueueFullError) as full:
        store.create("project", {"n": 3}, cb.HEAVY_QUEUE)
    assert full.value.extra["retry_after"] == 7  # no run yet: the fixed hint
    assert store.waiting(cb.HEAVY_QUEUE) == 3  # the refused job left nothing behind
    store.create("generate", {"n": 0}, cb.LIGHT_QUEUE)  # the light queue is not blocked by heavy jobs
    # runs of 2, 4 and 10 s on two worker processes; 2 jobs wait -> ceil(2 x 4 / 2) = 4 s
    for job_id, (run_s, worker) in zip(ids, [(2.0, "a/1"), (4.0, "a/2"), (10.0, "a/1")]):
        store.start(job_id, worker)
        store.finish(job_id, TaskResult([], {}), run_s=run_s, worker=worker)
    store.create("project", {}, cb.HEAVY_QUEUE)
    store.create("project", {}, cb.HEAVY_QUEUE)
    assert store.retry_after(cb.HEAVY_QUEUE) == 4
    store.create("project", {}, cb.HEAVY_QUEUE)
    with pytest.raises(QueueFullError) as full:
        store.create("project", {}, cb.HEAVY_QUEUE)
    assert full.value.extra["retry_after"] == 6  # 3 waiting x 4 s / 2 workers


def test_finish_is_written_once(store):
    job = store.create("generate", {}, cb.LIGHT_QUEUE)
    store.start(job.id, "w/1")
    assert store.finish(job.id, TaskResult([png(3)], {"first": True}))
    assert not store.finish(job.id, error={"type": "x"})  # a late duplicate cannot overwrite it
    assert store.get(job.id).result.data == {"first": True}


def test_a_record_changed_between_watch_and_exec_is_read_again(store, fake, monkeypatch):
    """start() is a check-and-set transaction: a cancel that lands between its read and its write makes
    EXEC fail (WatchError) and start() read the record again, see ``cancelled`` and not run the job."""
    job = store.create("generate", {}, cb.LIGHT_QUEUE)
    real_pipeline, raced = fake.pipeline, []

    def pipeline(*args, **kwargs):
        pipe = real_pipeline(*args, **kwargs)
        multi = pipe.multi

        def racing_multi():
            if not raced:  # once: the first transaction's record changes under its WATCH
                raced.append(job.id)
                fake.hset(store.record_key(job.id), "status", "cancelled")
            multi()

        pipe.multi = racing_multi
        return pipe

    monkeypatch.setattr(fake, "pipeline", pipeline)
    assert store.start(job.id, "w/1") is None
    assert raced == [job.id] and store.status(job.id) == "cancelled"
    assert fake.hget(store.record_key(job.id), "attempts") == b"0"  # the raced write never happened


def test_cancel_in_the_store_queued_running_and_finished(store, fake):
    """A cancelled queued job never runs when its message arrives; a running one's late outcome is discarded
    (a revoke's SoftTimeLimitExceeded included); finished jobs raise JobFinishedError; the record stays."""
    from celery.exceptions import SoftTimeLimitExceeded

    from server.errors import JobFinishedError

    calls = []
    queued = store.create("project", {"image": b"upload", "n": 1}, cb.HEAVY_QUEUE)
    job, before = store.cancel(queued.id)
    assert before == "queued" and job.status == "cancelled" and job.started is None and job.finished
    assert not fake.exists(store.payload_key(queued.id)) and store.waiting(cb.HEAVY_QUEUE) == 0
    assert 0 < fake.ttl(store.record_key(queued.id)) <= 60  # a finished record's TTL from now
    assert cb.execute_job(store, queued.id, lambda t, p: calls.append(p) or run_ok(t, p)) is None  # message later
    assert calls == [] and store.get(queued.id).status == "cancelled"
    assert store.cancel(queued.id)[1] == "cancelled"  # idempotent

    running = store.create("generate", {"n": 2}, cb.LIGHT_QUEUE)

    def cancelled_meanwhile(task, payload):
        assert store.cancel(running.id)[1] == "running"  # DELETE arrives while it runs
        return run_ok(task, payload)

    assert cb.execute_job(store, running.id, cancelled_meanwhile, worker="w/1") == "cancelled"
    got = store.get(running.id)
    assert got.status == "cancelled" and got.result is None and got.started <= got.finished
    assert not fake.exists(store.image_key(running.id, 0))  # the late images were never written
    assert fake.zscore(store.RUNNING_KEY, running.id) is None

    revoked = store.create("project", {"n": 3}, cb.HEAVY_QUEUE)

    def interrupted(task, payload):
        store.cancel(revoked.id)
        raise SoftTimeLimitExceeded()  # what REVOKE_SIGNAL raises inside a prefork child

    assert cb.execute_job(store, revoked.id, interrupted) == "cancelled"
    assert store.get(revoked.id).error is None

    done = store.create("generate", {"n": 4}, cb.LIGHT_QUEUE)
    cb.execute_job(store, done.id, run_ok)
    with pytest.raises(JobFinishedError) as exc:
        store.cancel(done.id)
    assert exc.value.status == 409 and exc.value.extra["job_status"] == "succeeded"
    assert store.get(done.id).result.images == [png(1), png(2)]  # nothing of it lost
    with pytest.raises(JobNotFoundError):
        store.cancel("0" * 32)
    with pytest.raises(JobNotFoundError):
        store.cancel("not-a-job-id")
    assert store.stats() == {"queued": 0, "running": 0, "succeeded": 1, "failed": 0, "cancelled": 3}


def test_queue_cancel_revokes_and_terminates_only_running_tasks(store):
    sent, revoked = [], []
    queue = cb.CeleryJobQueue(store, send=lambda job_id, q: sent.append(job_id),
                              revoke=lambda job_id, terminate: revoked.append((job_id, terminate)))
    waiting, running = queue.submit("generate", {"seeds": [1]}), queue.submit("project", {"image": b"x"})
    store.start(running.id, "w/1")
    assert queue.cancel(waiting.id).status == "cancelled" and queue.cancel(running.id).status == "cancelled"
    assert queue.cancel(running.id).status == "cancelled"  # again: no second revoke
    assert revoked == [(waiting.id, False), (running.id, True)]

    def broker_down(job_id, terminate):
        raise ConnectionError("broker down")

    down = cb.CeleryJobQueue(store, send=lambda job_id, q: None, revoke=broker_down)
    job = down.submit("generate", {"seeds": [2]})
    assert down.cancel(job.id).status == "cancelled"  # the record is the truth; the revoke is best effort
    assert cb.execute_job(store, job.id, run_ok) is None

    class Control:
        def __init__(self):
            self.calls = []

        def revoke(self, job_id, **kw):
            self.calls.append((job_id, kw))

    app = types.SimpleNamespace(control=Control())
    real = cb.CeleryJobQueue(store, send=lambda job_id, q: None, celery_app=app)
    job = real.submit("project", {"image": b"y"})
    store.start(job.id, "w/2")
    real.cancel(job.id)
    assert app.control.calls == [(job.id, {"terminate": True, "signal": "SIGUSR1"})]


# ------------------------------------------------------------------------------ queue + HTTP
def test_submit_sends_only_the_job_id_and_undoes_a_failed_send(store):
    sent = []
    queue = cb.CeleryJobQueue(store, send=lambda job_id, q: sent.append((job_id, q)))
    job = queue.submit("project", {"image": b"x" * 1000, "steps": 3})
    assert sent == [(job.id, cb.HEAVY_QUEUE)] and queue.get(job.id).status == "queued"

    def broken(job_id, q):
        raise ConnectionError("broker down")

    down = cb.CeleryJobQueue(store, send=broken)
    with pytest.raises(NotReadyError):
        down.submit("generate", {"seeds": [1]})
    assert store.waiting(cb.LIGHT_QUEUE) == 0 and store.stats()["queued"] == 1  # only the first job


def test_http_api_on_the_celery_backend(fake, monkeypatch):
    """202 + poll, the image endpoint, a failed job and 429, with a synchronous stand-in worker."""
    store = cb.RedisJobStore(fake, ttl_s=60, max_queued=2, retry_after_s=9)

    def runner(task, payload):
        if task == "morph":
            raise NoFaceError("no face in image_a")
        return TaskResult([png(v) for v in payload["seeds"]], {"seeds": payload["seeds"]})

    app = create_app({"stylegan2_weights": "default", "job_backend": "celery"})
    app.extensions["faceforge"]["jobs"] = cb.CeleryJobQueue(store, send=lambda job_id, q: cb.execute_job(
        store, job_id, runner))
    client = app.test_client()
    if client.post("/v1/generate", json={"seeds": [1]}).status_code == 503:
        pytest.skip("faceforge ships no default StyleGAN2 weights in this checkout")
    accepted = client.post("/v1/generate", json={"seeds": [5, 6]})
    assert accepted.status_code == 202
    body = client.get(accepted.headers["Location"]).get_json()
    assert body["status"] == "succeeded" and [i["width"] for i in body["result"]["images"]] == [4, 4]
    assert base64.b64decode(body["result"]["images"][1]["png_base64"]) == png(6)
    raw = client.get(body["result"]["images"][0]["url"])
    assert raw.mimetype == "image/png" and raw.data == png(5)
    photo = {"image_a": (io.BytesIO(png(0, 64)), "a.png"), "image_b": (io.BytesIO(png(0, 64)), "b.png")}
    failed = client.get(client.post("/v1/morph", data=photo, content_type="multipart/form-data")
                        .headers["Location"]).get_json()
    assert failed["status"] == "failed" and failed["error"]["type"] == PROBLEM_TYPE_PREFIX + "no-face"
    assert client.get(f"{schemas.JOBS_PATH}/{'0' * 32}").status_code == 404
    done = accepted.headers["Location"]
    finished = client.delete(done)
    assert finished.status_code == 409 and finished.get_json()["type"] == PROBLEM_TYPE_PREFIX + "job-finished"
    stuck = cb.CeleryJobQueue(store, send=lambda job_id, q: None)  # nobody consumes: the queue fills
    app.extensions["faceforge"]["jobs"] = stuck
    waiting = client.post("/v1/generate", json={"seeds": [7]}).headers["Location"]
    cancelled = client.delete(waiting)
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert client.get(waiting).get_json()["status"] == "cancelled" and client.get(done).get_json()["status"] == "succeeded"
    assert client.delete(f"{schemas.JOBS_PATH}/{'0' * 32}").status_code == 404
    app.extensions["faceforge"]["jobs"] = stuck
    assert [client.post("/v1/generate", json={"seeds": [1]}).status_code for _ in range(3)] == [202, 202, 429]
    full = client.post("/v1/generate", json={"seeds": [1]})
    assert full.headers["Retry-After"] and int(full.headers["Retry-After"]) >= 1


def test_redis_down_is_a_503_problem(expect_problem):
    redis = pytest.importorskip("redis")
    from redis_server import free_port

    client = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    app = create_app({"stylegan2_weights": "default"})
    app.extensions["faceforge"]["jobs"] = cb.CeleryJobQueue(cb.RedisJobStore(client), send=lambda *a: None)
    http = app.test_client()
    expect_problem(http.get(f"{schemas.JOBS_PATH}/{'a' * 32}"), 503, "not-ready")
    response = http.post("/v1/generate", json={"seeds": [1]})
    if response.status_code != 503 or "weights" in response.get_data(as_text=True):
        pytest.skip("faceforge ships no default StyleGAN2 weights in this checkout")
    expect_problem(response, 503, "not-ready")


# ------------------------------------------------------------------------------ settings, detection
def test_celery_settings_follow_the_delivery_rules():
    config = Config(job_backend="celery", job_time_limit_s=100, job_ttl_s=300)
    s = cb.celery_settings(config)
    assert s["task_acks_late"] and s["task_reject_on_worker_lost"] and s["worker_prefetch_multiplier"] == 1
    assert s["broker_transport_options"]["visibility_timeout"] >= 2 * s["task_time_limit"] == 200
    assert s["task_soft_time_limit"] == 90 and s["result_expires"] == 300 and s["task_ignore_result"]
    assert cb.live_ttl_s(config) == 300 + 16 * 100 + 3 * 200  # TTL + a full queue + every redelivery
    with pytest.raises(ValueError, match="2 x job_time_limit_s"):
        Config(job_time_limit_s=100, job_visibility_timeout_s=150)
    env = {"FACEFORGE_JOB_BACKEND": "celery", "FACEFORGE_REDIS_URL": "redis://h:1/2",
           "FACEFORGE_JOB_VISIBILITY_TIMEOUT_S": "500", "FACEFORGE_WEB_PROCESSES": "4"}
    config = Config.from_env(env, job_time_limit_s=250)
    assert (config.redis_url, config.visibility_timeout_s, config.web_processes) == ("redis://h:1/2", 500, 4)
    app = cb.make_celery(config)
    assert app.conf.task_acks_late and app.conf.broker_url == "redis://h:1/2" and cb.TASK_NAME in app.tasks


def test_inprocess_backend_refuses_a_multi_process_server(monkeypatch):
    with pytest.raises(ValueError, match="FACEFORGE_JOB_BACKEND=celery"):
        create_app({"web_processes": 2})
    assert create_app({"web_processes": 1}).extensions["faceforge"]["jobs"].max_queued >= 1
    # under gunicorn: the worker count comes from the gunicorn object whose call loads the app
    monkeypatch.setenv("SERVER_SOFTWARE", "gunicorn/27.0")
    gunicorn_like = type("Worker", (), {"__module__": "gunicorn.workers.gthread"})

    def load_wsgi(self, config):  # the frame that calls create_app, as gunicorn's Worker.load_wsgi does
        return web_processes(config), create_app
    worker = gunicorn_like()
    for workers, expected in ((2, 2), (1, 1)):
        worker.cfg = types.SimpleNamespace(workers=workers)
        assert load_wsgi(worker, Config())[0] == expected
    worker.cfg = types.SimpleNamespace(workers=3)

    def boot(self):
        return create_app({})
    with pytest.raises(ValueError, match="served by 3 processes"):
        boot(worker)
    monkeypatch.delenv("SERVER_SOFTWARE")
    assert web_processes(Config()) is None
    # under gevent (gunicorn -k gevent) the job threads would be green threads: refused too
    monkeypatch.setitem(sys.modules, "gevent.monkey", types.SimpleNamespace(is_module_patched=lambda m: True))
    with pytest.raises(ValueError, match="gevent"):
        create_app({"web_processes": 1})
    assert create_app({"job_backend": "celery"}).extensions["faceforge"]["jobs"].max_queued >= 1


def test_worker_command_arguments(monkeypatch):
    from click.testing import CliRunner

    from server.worker import queue_names, worker, worker_argv

    assert queue_names("light, heavy") == [cb.LIGHT_QUEUE, cb.HEAVY_QUEUE]
    argv = worker_argv("heavy", 4, "prefork", "INFO", "gpu0@%h", ("--max-tasks-per-child", "100"))
    assert argv[:2] == ["worker", f"--queues={cb.HEAVY_QUEUE}"] and "--concurrency=4" in argv
    assert argv[-2:] == ["--max-tasks-per-child", "100"] and "--hostname=gpu0@%h" in argv
    assert not any(a.startswith("--concurrency") for a in worker_argv("heavy", 4, "solo", "INFO", None))
    result = CliRunner().invoke(worker, ["--queues", "medium"])
    assert result.exit_code != 0 and "unknown queue medium" in result.output
    import server.worker

    monkeypatch.setenv("FACEFORGE_REDIS_URL", "redis://10.0.0.9:6390/3")
    monkeypatch.setattr(server.worker, "_APP", None)
    assert server.worker.app.conf.broker_url == "redis://10.0.0.9:6390/3"  # celery -A server.worker
    assert cb.TASK_NAME in server.worker.app.tasks
    from faceforge.cli import main

    result = CliRunner().invoke(main, ["worker", "--help"])
    assert result.exit_code == 0 and "--pool" in result.output and "celery" in result.output.lower()


# ------------------------------------------------------------------------------ a real Redis
def test_broker_message_holds_only_the_job_id(redis_server, redis_client):
    """A real send to a real Redis, no worker: the queued message is tiny although the upload is
    100 kB, the payload is raw bytes in its own key, and the record's TTL is the live TTL."""
    config = Config(job_backend="celery", redis_url=redis_server.url, job_time_limit_s=30, job_ttl_s=60)
    queue = cb.CeleryJobQueue.from_config(config)
    upload = bytes(np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8))
    job = queue.submit("project", {"image": upload, "steps": 10, "align": False, "w_plus": False})
    messages = redis_client.lrange(cb.HEAVY_QUEUE, 0, -1)
    assert len(messages) == 1 and len(messages[0]) < 3000
    message = json.loads(messages[0])
    body = json.loads(base64.b64decode(message["body"]))
    assert body[0] == [job.id] and body[1] == {} and message["headers"]["id"] == job.id
    assert redis_client.hget(queue.store.payload_key(job.id), "blob:0") == upload
    assert 0 < redis_client.ttl(queue.store.record_key(job.id)) <= cb.live_ttl_s(config)
    assert queue.get(job.id).status == "queued" and queue.stats()["queued"] == 1
    queue.close()


def test_hard_time_limit_is_recorded_by_the_task_class(redis_server, redis_client):
    """Celery calls ``on_failure`` of the task in the worker's main process when the pool killed a child at
    the hard limit; the job must then be ``failed``, not ``running`` forever."""
    from celery.exceptions import TimeLimitExceeded

    config = Config(job_backend="celery", redis_url=redis_server.url, job_time_limit_s=30)
    store = cb.RedisJobStore.from_config(config)
    job = store.create("project", {"image": b"x"}, cb.HEAVY_QUEUE)
    store.start(job.id, "w/1")
    task = cb.make_celery(config).tasks[cb.TASK_NAME]
    task.on_failure(RuntimeError("other"), job.id, [job.id], {}, None)
    assert store.get(job.id).status == "running"  # only the hard limit is handled there
    task.on_failure(TimeLimitExceeded(30), job.id, [job.id], {}, None)
    failed = store.get(job.id)
    assert failed.status == "failed" and "hard time limit of 30 s" in failed.error["detail"]


def test_finished_jobs_expire_after_their_ttl_in_redis(redis_server, redis_client):
    """Redis itself drops a finished job's record and images ``job_ttl_s`` after the finish (404 then)."""
    store = cb.RedisJobStore(redis_client, ttl_s=1, live_ttl_s=60)
    job = store.create("generate", {"seeds": [1]}, cb.LIGHT_QUEUE)
    assert cb.execute_job(store, job.id, run_ok) == "succeeded"
    assert store.get(job.id).result.images == [png(1), png(2)]
    time.sleep(1.3)
    with pytest.raises(JobNotFoundError):
        store.get(job.id)
    assert not redis_client.exists(store.record_key(job.id), store.image_key(job.id, 0), store.payload_key(job.id))


def test_a_worker_process_builds_its_models_once(monkeypatch):
    """``-P threads`` sends no ``worker_process_init``: concurrent first tasks must still build one hub."""
    import threading

    calls = []

    def init(config, warm_up=True):
        calls.append(config)
        time.sleep(0.1)
        state = cb._ProcessState(store=None, runner=run_ok)
        monkeypatch.setattr(cb, "_PROCESS", state)
        monkeypatch.setattr(cb, "_PROCESS_PID", __import__("os").getpid())
        return state

    monkeypatch.setattr(cb, "_PROCESS", None)
    monkeypatch.setattr(cb, "init_worker_process", init)
    got = []
    threads = [threading.Thread(target=lambda: got.append(cb.process_state(Config()))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(calls) == 1 and len(got) == 4 and all(g is got[0] for g in got)


def test_a_delivery_that_finds_redis_down_is_retried_not_dropped(monkeypatch):
    """Redis unreachable while a worker starts a job: the task retries (a new message for the same id)
    instead of returning, which would acknowledge the message and leave the job queued forever."""
    import redis

    calls = []

    class Down:
        def start(self, job_id, worker):
            calls.append(job_id)
            raise redis.ConnectionError("connection refused")

    monkeypatch.setattr(cb, "process_state", lambda config: cb._ProcessState(store=Down(), runner=run_ok))
    monkeypatch.setattr(cb, "REDIS_RETRIES", 2)
    monkeypatch.setattr(cb, "REDIS_RETRY_S", 0)
    app = cb.make_celery(Config(job_backend="celery"))
    app.conf.task_always_eager = True  # run here; a retry runs again at once
    result = app.tasks[cb.TASK_NAME].apply(args=["a" * 32])
    assert calls == ["a" * 32] * 3 and isinstance(result.result, redis.ConnectionError)
