"""Asynchronous jobs for heavy tasks: a small :class:`JobQueue` interface and its in-process backend.

Heavy tasks (StyleGAN2 generation, projection, ...) take seconds on a CPU, so they never run on a
request thread: ``POST /v1/<task>`` validates the request, calls :meth:`JobQueue.submit` and answers
``202 Accepted`` with the job id; the client polls ``GET /v1/jobs/<id>``. A job belongs to the queue,
not to the request, so it finishes (and its result waits ``job_ttl_s`` seconds) even when the client
disconnects or never polls. ``DELETE /v1/jobs/<id>`` cancels a job (:meth:`JobQueue.cancel`): a queued job
never runs, a running one is marked ``cancelled`` at once (what actually stops depends on the backend: see
:meth:`InProcessJobQueue.cancel` and :meth:`server.celery_backend.CeleryJobQueue.cancel`), a finished one
answers 409.

A task that works in steps (the StyleGAN2 projections of :mod:`server.tasks`, through
:func:`step_callback`) reports ``progress`` (:func:`report_progress`: ``{step, total, fraction}``) on its
record, on both backends; ``GET /v1/jobs/<id>`` shows it (``null`` for one-shot tasks and queued jobs).

A job is ``(task, payload)``: ``task`` a name in :data:`server.tasks.TASKS`, ``payload`` a dict of JSON
values and ``bytes`` (uploaded images), so it can cross a process boundary as is. Running it is
``runner(task, payload) -> TaskResult`` (:func:`server.tasks.run_task` with the process's ModelHub).

Backends (``Config.job_backend``, env ``FACEFORGE_JOB_BACKEND``), registered in :data:`JOB_BACKENDS`:

``inprocess`` (default)
    :class:`InProcessJobQueue`: a bounded ``queue.Queue(maxsize=max_jobs)`` feeding ``job_workers``
    daemon threads (started on the first submit); job records in a dict, expired lazily. One process,
    no extra services: the embedded demo and ``faceforge serve``. Jobs are lost if the process stops,
    and a second process would not know the first one's jobs, so this backend **refuses to start
    under a multi-process server** (:func:`web_processes`: ``FACEFORGE_WEB_PROCESSES``, or gunicorn's
    ``-w`` when gunicorn loads the app) with a ``ValueError`` naming the fix, and under gevent
    (``gunicorn -k gevent``), where its job threads would be green threads stalling every request.

``celery``
    :class:`server.celery_backend.CeleryJobQueue`: records, payloads and results in Redis
    (``FACEFORGE_REDIS_URL``) with a TTL, tasks run by ``faceforge worker`` processes; any web process
    answers any job id, jobs survive web restarts and worker crashes (re-run, idempotent by job id).

A backend is a factory ``(config, runner) -> JobQueue`` in :data:`JOB_BACKENDS`; the HTTP layer and
the tasks do not change.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import os
import queue
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from faceforge.errors import FaceforgeError

from server.errors import JobFinishedError, JobNotFoundError, QueueFullError

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED_STATUSES = ("succeeded", "failed", "cancelled")
"""Terminal states: the record changes no more (and expires ``job_ttl_s`` after ``finished``)."""


@dataclass
class TaskResult:
    """What a task returns: encoded images (PNG bytes) and JSON-ready data."""

    images: list[bytes] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


Runner = Callable[[str, Mapping[str, Any]], TaskResult]


@dataclass
class Job:
    """One job's record. Times are ``time.time()`` seconds; ``error`` is an RFC 9457 problem dict."""

    id: str
    task: str
    status: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    result: TaskResult | None = None
    error: dict[str, Any] | None = None
    payload: Mapping[str, Any] | None = field(default=None, repr=False)
    progress: dict[str, Any] | None = None
    """``{"step", "total", "fraction"}`` of a task that works in steps (:func:`report_progress`), else None."""

    def timings_ms(self) -> dict[str, float | None]:
        """``queued`` (submit -> start) and ``run`` (start -> finish) in milliseconds, None if not yet."""
        queued = None if self.started is None else (self.started - self.created) * 1e3
        run = None if self.started is None or self.finished is None else (self.finished - self.started) * 1e3
        return {"queued": None if queued is None else round(queued, 3), "run": None if run is None else round(run, 3)}


class JobQueue:
    """Interface of a job backend. Implementations must be thread-safe."""

    def submit(self, task: str, payload: Mapping[str, Any]) -> Job:
        """Enqueue a job and return its record (status ``queued``).

        Raises:
            QueueFullError: too many jobs waiting (429).
        """
        raise NotImplementedError

    def get(self, job_id: str) -> Job:
        """A snapshot of the job's record: a copy taken at one instant, so its fields agree with each
        other (never ``queued`` with a ``started`` time, or ``running`` with a ``finished`` time) and do
        not change while the caller reads them.

        Raises:
            JobNotFoundError: unknown id or expired (404).
        """
        raise NotImplementedError

    def cancel(self, job_id: str) -> Job:
        """Cancel a job and return a snapshot of its record, now ``cancelled`` (``finished`` = the time of
        the cancel; the record keeps its task and times and expires ``ttl_s`` later like any finished job).
        A queued job never runs. A running job is marked cancelled at once and its result, should the
        task still return one, is discarded; whether its computation stops depends on the backend.
        Cancelling a job that is already ``cancelled`` returns its record again (idempotent).

        Raises:
            JobNotFoundError: unknown id or expired (404).
            JobFinishedError: the job already succeeded or failed (409); nothing changes.
        """
        raise NotImplementedError

    def stats(self) -> dict[str, int]:
        """Counts by status (for monitoring)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop accepting work and release resources (worker threads finish their current job)."""


def finished_error(job: Job) -> JobFinishedError:
    """The 409 of cancelling ``job``, which already succeeded or failed."""
    return JobFinishedError(f"job {job.id} already {job.status}; only queued or running jobs can be cancelled",
                            job_id=job.id, job_status=job.status)


_current = threading.local()


class JobCancelled(Exception):
    """Raised by a task between its steps when its job was cancelled (:func:`stop_if_cancelled`); the
    queue then ends the run quietly (the record is already ``cancelled``)."""


def cancel_requested() -> bool:
    """Inside a task run by :class:`InProcessJobQueue`: whether its job was cancelled since it started.

    The cooperative flag of the in-process backend: a task that works in steps (an optimisation loop)
    calls :func:`stop_if_cancelled` between steps. The StyleGAN2 projections of :mod:`server.tasks`
    (project, toonify, morph, edit of a photo) do; one-shot tasks (swap, restore, makeup) compute to their
    end and only their result is discarded. Outside a job thread: False.
    """
    event = getattr(_current, "cancelled", None)
    return bool(event is not None and event.is_set())


def stop_if_cancelled(*_: Any) -> None:
    """A step callback (e.g. ``faceforge.stylegan.project(callback=...)``) that raises
    :class:`JobCancelled` once :func:`cancel_requested` is true.

    Raises:
        JobCancelled: the running job was cancelled.
    """
    if cancel_requested():
        raise JobCancelled


def progress_dict(step: int, total: int) -> dict[str, Any]:
    """The job record's ``progress``: ``{"step": s, "total": t, "fraction": s / t}`` (fraction rounded to
    4 decimals).

    Raises:
        ValueError: not ``0 <= step <= total`` with ``total >= 1``.
    """
    step, total = int(step), int(total)
    if total < 1 or not 0 <= step <= total:
        raise ValueError(f"progress needs 0 <= step <= total and total >= 1, got {step} / {total}")
    return {"step": step, "total": total, "fraction": round(step / total, 4)}


def report_progress(step: int, total: int) -> None:
    """Inside a task run by a job backend: record that ``step`` of ``total`` steps are done on the job's
    record (``GET /v1/jobs/<id>`` shows it as ``progress``). Both backends install the sink
    (:func:`progress_sink`); the Celery one writes to Redis at most every
    :data:`server.celery_backend.PROGRESS_INTERVAL_S` seconds (and always the last step). Outside a job:
    nothing happens.

    Raises:
        ValueError: not ``0 <= step <= total`` with ``total >= 1``.
    """
    value = progress_dict(step, total)
    sink = getattr(_current, "progress", None)
    if sink is not None:
        sink(value)


def step_callback(total: int, offset: int = 0) -> Callable[..., None]:
    """A step callback for ``faceforge.stylegan.project(callback=...)`` (called ``callback(step, loss)``
    with ``step`` from 0) that stops a cancelled job (:func:`stop_if_cancelled`) and reports
    ``offset + step + 1`` of ``total`` steps done (:func:`report_progress`). ``offset`` places one
    projection of several in the task's whole count (a morph of two photos: ``0`` and ``steps`` of
    ``2 steps``).

    Raises:
        ValueError: ``total < 1`` or ``offset < 0``.
    """
    if int(total) < 1 or int(offset) < 0:
        raise ValueError(f"total must be >= 1 and offset >= 0, got {total}, {offset}")

    def callback(step: int, *_: Any) -> None:
        stop_if_cancelled()
        report_progress(min(int(offset) + int(step) + 1, int(total)), int(total))

    return callback


class progress_sink:  # noqa: N801 - a context manager used like a function
    """``with progress_sink(fn):`` run a task with ``fn(progress_dict)`` receiving its
    :func:`report_progress` calls (this thread only); the previous sink comes back afterwards."""

    def __init__(self, sink: Callable[[dict[str, Any]], None] | None) -> None:
        self.sink = sink

    def __enter__(self) -> None:
        self.previous = getattr(_current, "progress", None)
        _current.progress = self.sink

    def __exit__(self, *_: Any) -> None:
        _current.progress = self.previous


class InProcessJobQueue(JobQueue):
    """Bounded queue + worker threads in this process (see the module docstring).

    Args:
        runner: ``runner(task, payload) -> TaskResult``; a :class:`~faceforge.errors.FaceforgeError` it
            raises becomes the job's problem; any other exception a generic ``internal-error`` (logged).
        workers: worker threads (>= 1).
        max_queued: jobs that may wait (not counting running ones); one more raises QueueFullError.
        ttl_s: seconds a finished job is kept.
        retry_after_s: the ``Retry-After`` hint of a 429 before any job has finished; afterwards the hint
            is estimated as the time to drain the queue: ``ceil(max_queued * median run time of the last
            32 jobs / workers)`` seconds, at least 1.
    """

    def __init__(self, runner: Runner, workers: int = 1, max_queued: int = 16, ttl_s: float = 600.0,
                 retry_after_s: int = 5) -> None:
        if workers < 1 or max_queued < 1 or ttl_s <= 0:
            raise ValueError("workers and max_queued must be >= 1 and ttl_s > 0")
        self.runner, self.workers, self.max_queued, self.ttl_s = runner, workers, max_queued, ttl_s
        self.retry_after_s = retry_after_s
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=max_queued)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._run_times: collections.deque[float] = collections.deque(maxlen=32)  # seconds, recent jobs
        self._cancel_events: dict[str, threading.Event] = {}  # running job id -> its cooperative flag

    def retry_after(self) -> int:
        """Seconds a client turned away (429) should wait: the estimated time to drain a full queue."""
        with self._lock:
            times = sorted(self._run_times)
        if not times:
            return self.retry_after_s
        return max(1, math.ceil(self.max_queued * times[len(times) // 2] / self.workers))

    def _start_workers(self) -> None:
        if not self._threads:
            for i in range(self.workers):
                thread = threading.Thread(target=self._work, name=f"faceforge-job-{i}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _expire(self, now: float) -> None:
        for job_id in [j.id for j in self._jobs.values() if j.finished is not None and now - j.finished > self.ttl_s]:
            del self._jobs[job_id]

    def submit(self, task: str, payload: Mapping[str, Any]) -> Job:
        job = Job(id=uuid.uuid4().hex, task=task, payload=payload)
        with self._lock:
            if self._closed:
                raise QueueFullError("the job queue is shut down", retry_after=self.retry_after_s)
            self._expire(time.time())
            self._start_workers()
            try:
                self._queue.put_nowait(job.id)
            except queue.Full:
                full = True
            else:
                full = False
                self._jobs[job.id] = job
        if full:
            wait = self.retry_after()
            raise QueueFullError(f"{self.max_queued} jobs are already waiting; retry in about {wait} s",
                                 retry_after=wait)
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:  # the worker updates a record under this lock; copy it whole under it too
            self._expire(time.time())
            job = self._jobs.get(job_id)
            job = None if job is None else dataclasses.replace(job)
        if job is None:
            raise JobNotFoundError(f"no job {job_id!r}: unknown id, or finished more than {self.ttl_s:.0f} s ago",
                                   job_id=job_id)
        return job

    def cancel(self, job_id: str) -> Job:
        """Cancel a job (see :meth:`JobQueue.cancel`). What stops, exactly:

        * ``queued``: the job is marked ``cancelled`` and its payload dropped; its id stays in the bounded
          queue until a worker thread takes it and skips it (it still counts towards ``max_queued`` until
          then, at the cost of one lookup).
        * ``running``: the record is ``cancelled`` at once and the task's cooperative flag is set
          (:func:`cancel_requested`). A Python thread cannot be interrupted, so the task computes on until
          it checks that flag (the StyleGAN2 projections do, between steps, via :func:`stop_if_cancelled`)
          or returns; its worker thread is busy until then, and its result or error is discarded.
        """
        with self._lock:
            self._expire(time.time())
            job = self._jobs.get(job_id)
            if job is None:
                raise JobNotFoundError(f"no job {job_id!r}: unknown id, or finished more than {self.ttl_s:.0f} s "
                                       f"ago", job_id=job_id)
            if job.status in ("succeeded", "failed"):
                raise finished_error(job)
            if job.status != "cancelled":
                event = self._cancel_events.get(job_id)
                if event is not None:
                    event.set()
                job.status, job.finished, job.payload = "cancelled", time.time(), None
            return dataclasses.replace(job)

    def stats(self) -> dict[str, int]:
        with self._lock:
            counts = {status: 0 for status in STATUSES}
            for job in self._jobs.values():
                counts[job.status] += 1
        return counts

    def close(self) -> None:
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)  # blocks only while the queue is full of jobs still to run

    def _set_progress(self, job: Job, value: dict[str, Any]) -> None:
        with self._lock:
            if job.status == "running":  # a cancelled record changes no more
                job.progress = value

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                job = self._jobs.get(job_id)
                if job is None or job.status != "queued":  # expired, or cancelled while it waited
                    continue
                job.status, job.started = "running", time.time()
                payload = job.payload or {}
                _current.cancelled = self._cancel_events[job_id] = threading.Event()
            try:
                with progress_sink(lambda value, job=job: self._set_progress(job, value)):
                    result = self.runner(job.task, payload)
                status, error = "succeeded", None
            except JobCancelled:  # the task stopped between steps; the record says cancelled already
                result, status, error = None, "cancelled", None
            except FaceforgeError as exc:
                result, status, error = None, "failed", exc.to_problem()
            except Exception:  # noqa: BLE001 - a failed job must not kill the worker
                log.exception("job %s (%s) failed", job.id, job.task)
                result, status = None, "failed"
                error = {"type": "urn:faceforge:problem:internal-error", "title": "Internal server error",
                         "status": 500, "detail": "the job failed; the error was logged"}
            with self._lock:
                _current.cancelled = None
                del self._cancel_events[job_id]
                if job.status == "cancelled":  # cancelled while it ran: its outcome is discarded
                    log.info("job %s (%s) was cancelled while running; its outcome is discarded", job.id, job.task)
                    continue
                job.result, job.error, job.status, job.finished = result, error, status, time.time()
                self._run_times.append(job.finished - job.started)
                job.payload = None  # drop uploaded images once done


def web_processes(config: Any = None) -> int | None:
    """How many processes serve this app: ``config.web_processes`` (``FACEFORGE_WEB_PROCESSES``) when
    set; else, when gunicorn is loading the app (gunicorn's master sets ``SERVER_SOFTWARE=gunicorn/<v>``
    in the environment), its worker count (``-w``), read from the gunicorn application or worker object
    whose call loads the app (``load_wsgi``, or the master's with ``--preload``); else ``None``
    (not known to be more than this process).

    Workers added later with gunicorn's ``TTIN`` signal are not seen; other pre-forking servers
    (uWSGI, ...) are not detected: set ``FACEFORGE_WEB_PROCESSES`` for them.
    """
    configured = getattr(config, "web_processes", None)
    if configured:
        return int(configured)
    if not os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn"):
        return None
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        workers = getattr(getattr(owner, "cfg", None), "workers", None)
        if isinstance(workers, int) and type(owner).__module__.startswith("gunicorn"):
            return workers
        frame = frame.f_back
    log.warning("SERVER_SOFTWARE says gunicorn, but its worker count was not found; set FACEFORGE_WEB_PROCESSES")
    return None


def _inprocess_backend(config: Any, runner: Runner) -> JobQueue:
    processes = web_processes(config)
    if processes is not None and processes > 1:
        raise ValueError(
            f"the in-process job backend keeps jobs inside one process, but this app is served by {processes} "
            f"processes (gunicorn -w {processes} or FACEFORGE_WEB_PROCESSES): polls would reach the wrong process "
            f"and answer 404. Set FACEFORGE_JOB_BACKEND=celery and FACEFORGE_REDIS_URL and run `faceforge "
            f"worker` (README, production), or serve with one process (-w 1)")
    if _green_threads():
        raise ValueError(
            "the in-process job backend runs jobs on threads of the web process, but this process runs on "
            "gevent (gunicorn -k gevent), where a job's seconds of computation would stall every other request: "
            "set FACEFORGE_JOB_BACKEND=celery (README, production), or use -k gthread")
    return InProcessJobQueue(runner, workers=config.job_workers, max_queued=config.max_jobs, ttl_s=config.job_ttl_s)


def _green_threads() -> bool:
    """Whether gevent has monkey-patched ``threading`` in this process (gunicorn's gevent worker)."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_module_patched("threading"))


def _celery_backend(config: Any, runner: Runner) -> JobQueue:
    from server.celery_backend import CeleryJobQueue

    return CeleryJobQueue.from_config(config, runner)


JOB_BACKENDS: dict[str, Callable[[Any, Runner], JobQueue]] = {"inprocess": _inprocess_backend,
                                                               "celery": _celery_backend}
"""Job backend name -> factory ``(config, runner) -> JobQueue``."""


def make_job_queue(config: Any, runner: Runner) -> JobQueue:
    """The job queue ``config.job_backend`` names, sized by ``config``.

    Raises:
        ValueError: unknown backend name, or the ``inprocess`` backend under a multi-process server.
        MissingDependencyError: the ``celery`` backend without celery / redis-py installed.
    """
    factory = JOB_BACKENDS.get(config.job_backend)
    if factory is None:
        raise ValueError(f"unknown job backend {config.job_backend!r} (FACEFORGE_JOB_BACKEND); available: "
                         f"{', '.join(JOB_BACKENDS)}")
    return factory(config, runner)
