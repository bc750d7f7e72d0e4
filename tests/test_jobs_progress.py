"""Step progress of server jobs: ``progress: {step, total, fraction}`` on the job record, reported by the
StyleGAN2 projections (server.jobs.step_callback as project()'s callback), on the in-process backend
(through HTTP, with a real projection) and on the Celery backend's Redis store (fakeredis, no workers).
Every in-process queue and app made here is closed."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
import torch
from jsonschema import Draft202012Validator

from server import create_app, schemas
from server.jobs import InProcessJobQueue, TaskResult, progress_dict, report_progress, step_callback
from test_jobs import CONFIG, encode_png, submit, wait  # tests/ is on sys.path (rootdir conftest)


def test_progress_values_and_their_errors():
    assert progress_dict(3, 4) == {"step": 3, "total": 4, "fraction": 0.75}
    assert progress_dict(0, 1)["fraction"] == 0.0
    for step, total in ((5, 4), (-1, 4), (0, 0)):
        with pytest.raises(ValueError, match="0 <= step <= total"):
            progress_dict(step, total)
    with pytest.raises(ValueError):
        step_callback(0)
    report_progress(1, 2)  # outside a job: nothing to record, no error
    step_callback(3)(0, 1.0)


def test_inprocess_jobs_report_each_step_and_keep_the_last():
    """A task reporting 5 steps: polls see 1/5 .. 5/5 as they happen; the finished record keeps 5/5; a
    queued job has no progress; a cancelled job's progress no longer moves."""
    reached = [threading.Event() for _ in range(5)]
    go = [threading.Event() for _ in range(5)]

    def runner(task, payload):
        if task == "steps":
            callback = step_callback(5)
            for i in range(5):
                callback(i, 0.0)
                reached[i].set()
                assert go[i].wait(10)
        return TaskResult([], {"task": task})

    queue = InProcessJobQueue(runner, workers=1, max_queued=4, ttl_s=60)
    try:
        job = queue.submit("steps", {})
        waiting = queue.submit("one-shot", {})
        for i in range(5):
            assert reached[i].wait(10)
            assert queue.get(job.id).progress == progress_dict(i + 1, 5)
            assert queue.get(waiting.id).status == "queued" and queue.get(waiting.id).progress is None
            go[i].set()
        deadline = time.monotonic() + 10
        while queue.get(waiting.id).status != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.01)
        done = queue.get(job.id)
        assert done.status == "succeeded" and done.progress == {"step": 5, "total": 5, "fraction": 1.0}
        assert queue.get(waiting.id).progress is None  # a one-shot task reports nothing

        for e in (*reached, *go):
            e.clear()
        cancelled = queue.submit("steps", {})
        assert reached[0].wait(10)
        go[0].set()
        assert reached[1].wait(10)  # 2 of 5 steps reported
        queue.cancel(cancelled.id)
        for e in go[1:]:
            e.set()  # the next step's callback stops the task before it reports
        time.sleep(0.05)
        record = queue.get(cancelled.id)
        assert record.status == "cancelled" and record.progress == progress_dict(2, 5)
    finally:
        for e in go:
            e.set()
        queue.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from faceforge.checkpoints import save_checkpoint
    from faceforge.models.stylegan2 import StyleGAN2Generator

    torch.set_num_threads(1)
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path_factory.mktemp("sg2") / "base.pt", StyleGAN2Generator(**CONFIG).eval(),
                           "stylegan2", CONFIG, meta={"version": "test-random"})
    app = create_app({"stylegan2_weights": str(path), "torch_threads": None, "max_jobs": 4, "job_ttl_s": 60})
    yield app
    app.extensions["faceforge"]["jobs"].close()


def test_projection_jobs_show_progress_over_http_as_the_schema_says(app):
    client = app.test_client()
    validator = Draft202012Validator(schemas.job_schema())
    rng = np.random.default_rng(0)
    photo = lambda: (io.BytesIO(encode_png(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))), "p.png")  # noqa: E731
    body = wait(client, submit(client, "project", data={"image": photo(), "steps": "12", "align": "false"},
                               content_type="multipart/form-data"))
    assert body["status"] == "succeeded" and body["progress"] == {"step": 12, "total": 12, "fraction": 1.0}
    validator.validate(body)
    morph = wait(client, submit(client, "morph", data={"image_a": photo(), "image_b": photo(), "steps": "5",
                                                       "t": "0,0.5,1", "align": "false", "mode": "latent"},
                                content_type="multipart/form-data"))
    assert morph["status"] == "succeeded", morph
    assert morph["progress"] == {"step": 10, "total": 10, "fraction": 1.0}  # two projections, one count
    generated = wait(client, submit(client, "generate", json={"seeds": [1]}))
    assert generated["progress"] is None
    validator.validate(generated)
    # a poll while it runs sees a partial count
    url = submit(client, "project", data={"image": photo(), "steps": "1000", "align": "false"},
                 content_type="multipart/form-data")
    seen = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = client.get(url).get_json()
        if now["status"] == "running" and now["progress"] and 0 < now["progress"]["step"] < 1000:
            seen = now
            break
        time.sleep(0.01)
    client.delete(url)
    assert seen is not None and seen["progress"]["total"] == 1000
    validator.validate(seen)
    doc = client.get(schemas.OPENAPI_PATH).get_json()
    assert "progress" in doc["components"]["schemas"]["Job"]["properties"]


def test_celery_store_records_progress_only_while_running():
    fakeredis = pytest.importorskip("fakeredis")
    from server import celery_backend as cb

    fake = fakeredis.FakeRedis()
    store = cb.RedisJobStore(fake, ttl_s=60, live_ttl_s=600, max_queued=3, max_attempts=3, retry_after_s=7)
    job = store.create("project", {"steps": 3}, cb.HEAVY_QUEUE)
    assert store.get(job.id).progress is None and not store.set_progress(job.id, progress_dict(1, 3))
    seen = []

    def runner(task, payload):
        callback = step_callback(payload["steps"])
        for i in range(payload["steps"]):
            callback(i, 0.0)
            seen.append(store.get(job.id).progress)
        return TaskResult([], {})

    assert cb.execute_job(store, job.id, runner, worker="w/1") == "succeeded"
    assert seen[0] == progress_dict(1, 3)  # the first write is never throttled
    assert seen[-1] == progress_dict(3, 3)  # nor the last
    got = store.get(job.id)
    assert got.status == "succeeded" and got.progress == progress_dict(3, 3)
    assert not store.set_progress(job.id, progress_dict(1, 3))  # finished: no more changes
    assert store.get(job.id).progress == progress_dict(3, 3)
