"""Fault tests of the ``celery`` job backend with real processes, all on loopback: a real
``redis-server`` (``tests/redis_server.py``), the web app under ``gunicorn -w 2 -k gevent`` (the
README's production command; ``-k gthread`` where gevent is not installed) and ``faceforge worker``
subprocesses (Celery, prefork and solo pools).

The jobs are real tasks with faceforge's shipped 32 px StyleGAN2 (``FACEFORGE_STYLEGAN2_WEIGHTS=default``):
``generate`` (light queue, milliseconds) and ``project`` of an uploaded image without alignment
(heavy queue; ``steps`` sets its length, about a second or two here), and ``project`` with alignment
of a blank image for a failure (no face). No test-only task exists.

What is checked, one test each: polls spread over both gunicorn workers never answer 404 for a live
job; ``kill -9`` of the pool child running a job -> the job is re-run and succeeds; a TERM to a
worker drains its running job (exit 0, no SIGABRT) and leaves the waiting one queued; ``kill -9`` of a
whole solo worker -> another worker takes the job after the visibility timeout and it succeeds;
restarting (and HUP-reloading) the web server keeps finished results; ``DELETE`` of a running job stops it in
its pool child (revoke, SIGUSR1) and a cancelled queued one never runs; a failing task is ``failed``
with its problem; the in-process backend refuses ``gunicorn -w 2``.

Marked ``faults`` (select or deselect with ``-m faults``) and ``slow``: about a minute in all.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("celery")
pytest.importorskip("gunicorn")
requests = pytest.importorskip("requests")
redis = pytest.importorskip("redis")

from faceforge.errors import PROBLEM_TYPE_PREFIX  # noqa: E402
from server import celery_backend as cb  # noqa: E402
from server.testing import stop_processes  # noqa: E402

pytestmark = [pytest.mark.faults, pytest.mark.slow]

WEB_WORKER_CLASS = ("-k", "gevent", "--worker-connections", "1000") if importlib.util.find_spec("gevent") \
    else ("-k", "gthread", "--threads", "4")
"""The README's production worker class (gevent: slow clients cannot hold every thread), gthread without it."""
TIME_LIMIT_S = 8  # hard limit of a job run; visibility timeout 2 x = 16 s
PROJECT_STEPS = 60
FIGURES: dict[str, object] = {}
"""Measured figures, printed at the end of the module (run with -s to see them)."""


def _shipped_generator() -> None:
    from faceforge.models import get_spec

    path = get_spec("stylegan2").default_weights_path
    if path is None or not path.is_file():
        pytest.skip("faceforge ships no default StyleGAN2 weights in this checkout")


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


_X, _Y = np.meshgrid(np.arange(64, dtype=np.uint8) * 4, np.arange(64, dtype=np.uint8) * 3)
GRADIENT = _png(np.dstack([_X, _Y, np.full((64, 64), 90, np.uint8)]))
BLANK = _png(np.full((64, 64, 3), 128, np.uint8))


class Cluster:
    """The processes of one deployment: gunicorn (``web``) and Celery workers, their logs in ``folder``."""

    def __init__(self, folder: Path, redis_url: str) -> None:
        from redis_server import free_port

        self.folder, self.redis_url = folder, redis_url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "FACEFORGE_JOB_BACKEND": "celery", "FACEFORGE_REDIS_URL": redis_url,
                    "FACEFORGE_STYLEGAN2_WEIGHTS": "default", "FACEFORGE_JOB_TTL_S": "300",
                    "FACEFORGE_JOB_TIME_LIMIT_S": str(TIME_LIMIT_S), "FACEFORGE_JOB_RESTORE_INTERVAL_S": "1",
                    "FACEFORGE_MAX_JOBS": "64", "FACEFORGE_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1",
                    "PYTHONUNBUFFERED": "1"}
        self.env.pop("SERVER_SOFTWARE", None)
        self.web: subprocess.Popen | None = None
        self.web_log = folder / "web.log"
        self.access_log = folder / "access.log"
        self.workers: dict[str, subprocess.Popen] = {}
        self.store = cb.RedisJobStore(redis.Redis.from_url(redis_url), ttl_s=300)

    # -------------------------------------------------------------------------------- processes
    def start_web(self, env: dict[str, str] | None = None, workers: int = 2) -> subprocess.Popen:
        self.web_log.write_text("")
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(workers), *WEB_WORKER_CLASS,
             "-b", f"127.0.0.1:{self.port}", "--graceful-timeout", "3", "--access-logfile", str(self.access_log),
             "--access-logformat", "%(p)s %(s)s %(m)s %(U)s", "--error-logfile", str(self.web_log),
             "server:create_app()"],
            env=env or self.env, cwd=self.folder, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if env is None:
            self.web = process
        return process

    def wait_web(self, workers: int = 2, timeout: float = 60.0) -> list[int]:
        """Wait until /healthz answers and ``workers`` gunicorn workers have booted; their pids."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.web.poll() is None, self.tail(self.web_log)
            pids = [int(p) for p in re.findall(r"Booting worker with pid: (\d+)", self.web_log.read_text())]
            try:
                if len(pids) >= workers and requests.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return pids[-workers:]
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError("gunicorn did not come up:\n" + self.tail(self.web_log))

    def start_worker(self, name: str, pool: str = "prefork") -> subprocess.Popen:
        log = self.folder / f"{name}.log"
        args = [sys.executable, "-c", "from server.worker import worker; worker()", "--queues", "light,heavy",
                "--pool", pool, "--concurrency", "1", "--loglevel", "INFO", "--hostname", f"{name}@%h"]
        with open(log, "wb") as out:
            process = subprocess.Popen(args, env=self.env, cwd=self.folder, stdout=out, stderr=subprocess.STDOUT)
        self.workers[name] = process
        return process

    def wait_worker(self, name: str, timeout: float = 60.0) -> None:
        log = self.folder / f"{name}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.workers[name].poll() is None, self.tail(log)
            if " ready." in log.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise AssertionError(f"worker {name} not ready:\n" + self.tail(log))

    def stop(self) -> None:
        stop_processes([self.web, *self.workers.values()], timeout=15)

    @staticmethod
    def tail(path: Path, n: int = 40) -> str:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""

    # -------------------------------------------------------------------------------- jobs
    def submit(self, task: str, **kw) -> str:
        response = requests.post(f"{self.base}/v1/{task}", timeout=30, **kw)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def project(self, image: bytes = GRADIENT, steps: int = PROJECT_STEPS, align: bool = False) -> str:
        # id_weight 0: the pixel-only projection, whose step time the time limits here were sized for
        return self.submit("project", files={"image": ("a.png", image, "image/png")},
                           data={"steps": str(steps), "align": str(align).lower(), "id_weight": "0"})

    def poll(self, job_id: str) -> dict:
        response = requests.get(f"{self.base}/v1/jobs/{job_id}", timeout=30)
        assert response.status_code == 200, (response.status_code, response.text)
        return response.json()

    def wait_status(self, job_id: str, statuses: tuple[str, ...], timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.poll(job_id)
            if body["status"] in statuses:
                return body
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} not {statuses} in {timeout} s: {body['status']}; worker logs:\n"
                             + "\n".join(self.tail(self.folder / f"{n}.log", 15) for n in self.workers))

    def record(self, job_id: str) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.store.client.hgetall(self.store.record_key(job_id)).items()}

    def running_pid(self, job_id: str) -> int:
        return int(self.record(job_id)["worker"].rsplit("/", 1)[1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server):
    _shipped_generator()
    redis.Redis.from_url(redis_server.url).flushdb()
    c = Cluster(tmp_path_factory.mktemp("faults"), redis_server.url)
    c.start_web()
    c.start_worker("w1")
    try:
        FIGURES["web_pids"] = c.wait_web()
        c.wait_worker("w1")
        yield c
    finally:
        c.stop()
        for key, value in FIGURES.items():
            print(f"[faults] {key}: {value}")


def test_polls_over_two_web_processes_never_404(cluster):
    from concurrent.futures import ThreadPoolExecutor

    from jsonschema import Draft202012Validator

    from server.schemas import job_schema

    validator = Draft202012Validator(job_schema())
    with ThreadPoolExecutor(4) as pool:  # concurrent submissions: the web processes' threads share Celery
        ids = list(pool.map(lambda s: cluster.submit("generate", json={"seeds": [s], "psi": 0.7}), range(8)))
        ids += list(pool.map(lambda _: cluster.project(steps=10), range(2)))
    cluster.access_log.write_text("")
    answers: Counter = Counter()
    seen: dict[str, list[str]] = {job_id: [] for job_id in ids}
    lock = threading.Lock()
    stop = threading.Event()

    def poller(offset: int) -> None:
        i = offset
        while not stop.is_set():
            job_id = ids[i % len(ids)]
            i += 1
            response = requests.get(f"{cluster.base}/v1/jobs/{job_id}", timeout=30)  # a new connection each
            with lock:
                answers[response.status_code] += 1
                if response.status_code == 200:
                    body = response.json()
                    if not validator.is_valid(body):
                        answers["invalid body"] += 1
                    seen[job_id].append(body["status"])
            time.sleep(0.01)  # leave the worker some CPU on a 2-core machine

    threads = [threading.Thread(target=poller, args=(k,)) for k in range(4)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with lock:
            total = sum(answers.values())
            done = all(s and s[-1] in ("succeeded", "failed") for s in seen.values())
        if total >= 1100 and done:
            break
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - t0
    total = sum(answers.values())
    order = {"queued": 0, "running": 1, "succeeded": 2, "failed": 2}
    statuses = Counter(s for history in seen.values() for s in history)
    time.sleep(0.5)  # gunicorn writes the access log line after the response
    pids = Counter(line.split()[0] for line in cluster.access_log.read_text().splitlines()
                   if "/v1/jobs/" in line and " GET " in line)
    FIGURES["polls"] = {"total": total, "by_http_status": dict(answers), "by_job_status": dict(statuses),
                        "by_web_pid": dict(pids), "seconds": round(elapsed, 1)}
    assert total >= 1000 and answers[404] == 0 and set(answers) == {200}, answers
    assert all(seen[j][-1] == "succeeded" for j in ids), {j: s[-1] for j, s in seen.items()}
    for history in seen.values():  # never back from running to queued, from finished to anything
        ranks = [order[s] for s in history]
        assert ranks == sorted(ranks)
    assert statuses["queued"] + statuses["running"] > 0  # live jobs were polled, not only finished ones
    assert len(pids) == 2 and min(pids.values()) >= max(50, 0.05 * total), pids  # both web processes answered
    # the result is the model's output, whichever process ran it
    from faceforge import stylegan as S
    from faceforge.models import create_model

    G = create_model("stylegan2", weights="default")
    body = cluster.poll(ids[3])
    got = np.asarray(Image.open(io.BytesIO(requests.get(cluster.base + body["result"]["images"][0]["url"],
                                                        timeout=30).content)))
    assert np.array_equal(got, S.generate(G, [3], psi=0.7)[0])
    FIGURES["job_for_restart"] = ids[3]
    # step progress written by the pool child to Redis: the projections end at 10 of 10, generation has none
    assert [cluster.poll(j)["progress"] for j in ids[8:]] == [{"step": 10, "total": 10, "fraction": 1.0}] * 2
    assert cluster.poll(ids[0])["progress"] is None


def test_failing_task_is_failed_with_its_problem(cluster):
    body = cluster.wait_status(cluster.project(BLANK, steps=2, align=True), ("succeeded", "failed"))
    FIGURES["failing_task"] = {"status": body["status"], "error": body["error"] and body["error"]["type"]}
    assert body["status"] == "failed" and body["result"] is None
    assert body["error"]["type"] == PROBLEM_TYPE_PREFIX + "no-face" and body["error"]["status"] == 422


def test_kill_9_of_the_pool_child_running_a_job_reruns_it(cluster):
    job_id = cluster.project()
    cluster.wait_status(job_id, ("running",))
    child = cluster.running_pid(job_id)
    assert child != cluster.workers["w1"].pid  # prefork: the job runs in a pool child
    t0 = time.monotonic()
    os.kill(child, signal.SIGKILL)
    body = cluster.wait_status(job_id, ("succeeded", "failed"), timeout=90)
    record = cluster.record(job_id)
    FIGURES["kill_9_pool_child"] = {"status": body["status"], "attempts": record["attempts"],
                                    "seconds_to_result_after_kill": round(time.monotonic() - t0, 1)}
    assert body["status"] == "succeeded", body["error"]
    assert record["attempts"] == "2" and cluster.running_pid(job_id) != child
    assert cluster.workers["w1"].poll() is None  # the worker itself lives on, with a new child
    assert len(body["result"]["images"]) == 2


def test_cancel_stops_the_running_job_in_its_pool_child_and_the_queued_one_never_runs(cluster):
    """DELETE of a running job: the revoke's SIGUSR1 stops the computation in the pool child, which lives on
    (same pid) and takes the next job at once; DELETE of a queued job: its message is skipped, never run."""
    long_job = cluster.project(steps=PROJECT_STEPS * 6)  # several seconds, below the soft time limit
    behind = cluster.project()
    cluster.wait_status(long_job, ("running",))
    child = cluster.running_pid(long_job)
    time.sleep(0.5)
    live = cluster.poll(long_job)["progress"]  # written by the pool child while it projects
    assert live is not None and 0 < live["step"] < live["total"] == PROJECT_STEPS * 6, live
    cancelled = requests.delete(f"{cluster.base}/v1/jobs/{behind}", timeout=30)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    t0 = time.monotonic()
    stopped = requests.delete(f"{cluster.base}/v1/jobs/{long_job}", timeout=30)
    assert stopped.status_code == 200 and stopped.json()["status"] == "cancelled", stopped.text
    after = cluster.submit("generate", json={"seeds": [5]})
    body = cluster.wait_status(after, ("succeeded", "failed"), timeout=60)
    freed_s = time.monotonic() - t0
    log = (cluster.folder / "w1.log").read_text(errors="replace")
    FIGURES["cancel_running"] = {"seconds_from_cancel_to_next_job_done": round(freed_s, 2),
                                 "same_pool_child": cluster.running_pid(after) == child}
    assert body["status"] == "succeeded", body["error"]
    assert cluster.running_pid(after) == child  # the child survived the revoke with its models
    assert f"job {long_job} (project) stopped: it was cancelled" in log, cluster.tail(cluster.folder / "w1.log")
    assert freed_s < 0.9 * TIME_LIMIT_S - 1  # stopped by the revoke, not by the soft time limit
    assert cluster.poll(long_job)["status"] == "cancelled" and cluster.poll(long_job)["result"] is None
    assert cluster.poll(behind)["started_at"] is None and "attempts" in cluster.record(behind)
    assert cluster.record(behind)["attempts"] == "0"  # never started
    finished = requests.delete(f"{cluster.base}/v1/jobs/{after}", timeout=30)
    assert finished.status_code == 409 and finished.headers["Content-Type"].startswith("application/problem+json")


def test_term_drains_then_a_killed_solo_worker_is_redelivered(cluster):
    w1 = cluster.workers["w1"]
    running, waiting = cluster.project(), cluster.project()
    cluster.wait_status(running, ("running",))
    assert cluster.poll(waiting)["status"] == "queued"
    w1.send_signal(signal.SIGTERM)  # warm shutdown
    rc = w1.wait(60)
    log = (cluster.folder / "w1.log").read_text(errors="replace")
    drained, left = cluster.poll(running), cluster.poll(waiting)
    FIGURES["term_prefork_worker"] = {"returncode": rc, "running_job": drained["status"], "waiting_job": left["status"]}
    assert rc == 0 and "terminate called" not in log and "SIGABRT" not in log, cluster.tail(cluster.folder / "w1.log")
    assert drained["status"] == "succeeded" and left["status"] == "queued"  # drained; the other one kept

    solo = cluster.start_worker("w2", pool="solo")  # picks up the waiting job ...
    cluster.wait_worker("w2")
    cluster.wait_status(waiting, ("running",))
    assert cluster.running_pid(waiting) == solo.pid
    solo.kill()  # ... and dies with it: the message stays unacknowledged in Redis
    solo.wait(10)
    t0 = time.monotonic()
    assert cluster.poll(waiting)["status"] == "running"
    cluster.start_worker("w3")  # a new worker requeues it once the visibility timeout (16 s) has passed
    cluster.wait_worker("w3")
    body = cluster.wait_status(waiting, ("succeeded", "failed"), timeout=2 * TIME_LIMIT_S + 60)
    record = cluster.record(waiting)
    FIGURES["kill_9_solo_worker"] = {"status": body["status"], "attempts": record["attempts"],
                                     "seconds_to_result_after_kill": round(time.monotonic() - t0, 1),
                                     "visibility_timeout_s": 2 * TIME_LIMIT_S}
    assert body["status"] == "succeeded" and record["attempts"] == "2", body["error"]
    assert time.monotonic() - t0 >= 2 * TIME_LIMIT_S - 3  # not duplicated before the visibility timeout


def test_web_restart_and_reload_keep_finished_results(cluster):
    job_id = FIGURES.get("job_for_restart") or cluster.submit("generate", json={"seeds": [3]})
    before = cluster.wait_status(job_id, ("succeeded",))
    cluster.web.send_signal(signal.SIGHUP)  # graceful reload: new worker processes
    old = set(FIGURES["web_pids"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = set(int(p) for p in re.findall(r"Booting worker with pid: (\d+)", cluster.web_log.read_text()))
        if len(pids - old) >= 2:
            break
        time.sleep(0.1)
    assert len(pids - old) >= 2, cluster.tail(cluster.web_log)
    assert cluster.poll(job_id) == before
    cluster.web.send_signal(signal.SIGTERM)
    assert cluster.web.wait(30) == 0
    cluster.start_web()
    cluster.wait_web()
    after = cluster.poll(job_id)
    ttl = cluster.store.client.ttl(cluster.store.record_key(job_id))
    FIGURES["web_restart"] = {"status_after_hup_and_restart": after["status"], "record_ttl_s": ttl}
    assert after == before and 0 < ttl <= 300  # kept until its TTL (FACEFORGE_JOB_TTL_S)


def test_inprocess_backend_refuses_gunicorn_with_two_workers(cluster):
    env = {**cluster.env, "FACEFORGE_JOB_BACKEND": "inprocess"}
    from redis_server import free_port

    log = cluster.folder / "inprocess.log"
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{free_port()}",
                                "--error-logfile", str(log), "server:create_app()"], env=env, cwd=cluster.folder,
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        rc = process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text(errors="replace")
    assert rc != 0 and "served by 2 processes" in text and "FACEFORGE_JOB_BACKEND=celery" in text

