"""The ``celery`` job backend: job records, payloads and results in Redis, tasks run by Celery workers.

Chosen with ``FACEFORGE_JOB_BACKEND=celery`` and ``FACEFORGE_REDIS_URL``; the HTTP layer does not
change (``POST /v1/<task>`` -> 202 + poll ``GET /v1/jobs/<id>``, 429 ``queue-full`` with
``Retry-After``). Any web process answers any job id, and a web process can stop at any time: it
holds no job. Workers are ``faceforge worker`` processes (:mod:`server.worker`), on this machine or
others that reach the same Redis.

Data layout (one Redis, keys prefixed :data:`KEY_PREFIX`; ``<id>`` = 32 hex digits):

=================================  ==========================================================  ==========
key                                value                                                       expires
=================================  ==========================================================  ==========
``faceforge:job:<id>``             hash: task, queue, status, created, started, finished,      live TTL,
                                   attempts, worker, images (count), data / error (JSON)       then job_ttl_s
``faceforge:job:<id>:payload``     hash: ``json`` (the payload, ``bytes`` values replaced by    live TTL,
                                   ``{"$blob": i}``) and ``blob:<i>`` (the raw uploaded files)  deleted at finish
``faceforge:job:<id>:image:<i>``   raw PNG bytes of result image ``i``                          job_ttl_s
``faceforge:waiting:<queue>``      sorted set: ids of jobs waiting in ``queue`` (score: submit)
``faceforge:running``              sorted set: ids of running jobs (score: start)
``faceforge:finished:<status>``    sorted set: ids finished in the last job_ttl_s (score: finish)
``faceforge:runtimes:<queue>``     list: ``"<run seconds> <worker>"`` of the last 32 runs
=================================  ==========================================================  ==========

The live TTL (queued or running records) is ``job_ttl_s + max_jobs x job_time_limit_s +
job_max_attempts x visibility timeout`` (a full queue drained by one worker, plus every redelivery),
renewed at each start, so a job that no worker ever takes is dropped eventually instead of piling up.

The Celery message carries only the job id (``args=[id]``, ``task_id=id``), never the payload or an
image: the broker stays small and a redelivered message finds its payload in Redis.

Delivery guarantees (Celery settings from :func:`celery_settings`; Redis-broker pitfalls from the
Celery documentation "Using Redis" / "Tasks: acks_late" and kombu's Redis transport):

* ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged after its task
  returned; when a prefork child dies mid-task (``kill -9``, OOM) the worker requeues the message at
  once; when a whole worker dies (a ``-P solo`` GPU worker) the message stays unacknowledged and any
  live worker's periodic sweep (``job_restore_interval_s``) requeues it once the broker's
  ``visibility_timeout`` has passed.
* ``visibility_timeout`` >= 2 x the hard time limit (checked by :class:`~server.config.Config`), so a
  run that is slow but alive is never handed to a second worker.
* Idempotent by job id (:meth:`RedisJobStore.start`): a delivery of a job that already finished is
  acknowledged without running it again; a job found ``running`` (its worker died) runs again, at most
  ``job_max_attempts`` times in all, then it is reported ``failed`` (a payload that kills its worker
  must not loop forever).
* ``worker_prefetch_multiplier=1``: a worker holds no more messages than it has free processes, so a
  long job does not strand queued ones behind it.
* Queues: :data:`LIGHT_QUEUE` (seed-only generation, style mixing, Delaunay morphs: well under a
  second) and :data:`HEAVY_QUEUE` (anything that projects a photo: seconds to minutes), see
  :func:`queue_for`, so light jobs are not stuck behind projections; each queue holds at most
  ``max_jobs`` waiting jobs.
* Soft time limit at 90 % of ``job_time_limit_s`` (the job fails with a timeout problem); the hard limit
  kills the child and the job is reported failed too (``JobTask.on_failure`` in :func:`make_celery`).

Cancellation (``DELETE /v1/jobs/<id>``, :meth:`CeleryJobQueue.cancel`): the record turns ``cancelled`` in
one Redis transaction (payload deleted, out of the waiting/running sets), so a later delivery of its
message is acknowledged without running (:meth:`RedisJobStore.start` treats ``cancelled`` as finished) and
a run that returns afterwards cannot overwrite it (:meth:`RedisJobStore.finish`). Then the task is revoked
through Celery's control broadcast: a queued message is dropped by the workers that receive it; a running
task gets ``terminate=True, signal="SIGUSR1"``, which a prefork pool child turns into
``SoftTimeLimitExceeded`` inside the task (billiard's soft-timeout handler), so the computation stops
between two Python bytecodes (not inside a long C call such as one convolution) and the child lives on
with its loaded models. ``-P solo`` and ``-P threads`` workers cannot terminate a task: there the run
goes on to its end and only its outcome is discarded.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

from faceforge.errors import FaceforgeError, MissingDependencyError

from server.errors import InternalError, JobNotFoundError, NotReadyError, QueueFullError
from server.jobs import (FINISHED_STATUSES, STATUSES, Job, JobQueue, Runner, TaskResult, finished_error,
                         progress_sink)

if TYPE_CHECKING:
    import redis
    from celery import Celery

    from server.config import Config

log = logging.getLogger(__name__)

KEY_PREFIX = "faceforge:"
LIGHT_QUEUE = "faceforge.light"
HEAVY_QUEUE = "faceforge.heavy"
QUEUES = {"light": LIGHT_QUEUE, "heavy": HEAVY_QUEUE}
"""Short names (``faceforge worker --queues light,heavy``) -> Celery queue names."""
TASK_NAME = "faceforge.run_job"
REDIS_RETRY_S = 2.0
"""Seconds between retries of a delivery that found the job store (Redis) unreachable."""
REDIS_RETRIES = 150
"""Retries of such a delivery (5 minutes at :data:`REDIS_RETRY_S`) before Celery gives up on it."""
RUNTIMES_KEPT = 32
FINISHED = FINISHED_STATUSES
PROGRESS_INTERVAL_S = 0.25
"""Least seconds between two progress writes of one job to Redis (the last step is always written)."""
REVOKE_SIGNAL = "SIGUSR1"
"""What a revoke sends to the pool child running a cancelled task: billiard's soft-timeout signal, so the
task sees ``SoftTimeLimitExceeded`` and its process survives (SIGTERM would kill it and its models)."""
_JOB_ID = re.compile(r"[0-9a-f]{32}\Z")
_T = TypeVar("_T")


def queue_for(task: str, payload: Mapping[str, Any]) -> str:
    """The queue a job goes to: :data:`HEAVY_QUEUE` when it projects or rewrites a photo (``project``,
    ``swap``, ``virtual-model``, ``restore``, ``makeup``; ``toonify`` or ``edit`` of an uploaded photo; a
    ``latent`` ``morph`` of two photos), else :data:`LIGHT_QUEUE`."""
    if task in ("project", "swap", "virtual-model", "restore", "makeup") or (
            task in ("toonify", "edit") and payload.get("image") is not None):
        return HEAVY_QUEUE
    if task == "morph" and payload.get("mode") == "latent" and payload.get("images"):
        return HEAVY_QUEUE
    return LIGHT_QUEUE


def pack_payload(payload: Mapping[str, Any]) -> tuple[bytes, list[bytes]]:
    """Split a job payload into JSON (UTF-8 bytes) and its ``bytes`` values (uploaded files).

    Each ``bytes`` value, at any depth of dicts and lists, becomes ``{"$blob": i}`` with the bytes as
    ``blobs[i]``; :func:`unpack_payload` reverses it.

    Raises:
        TypeError: a value that is neither JSON nor bytes.
    """
    blobs: list[bytes] = []

    def walk(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray, memoryview)):
            blobs.append(bytes(value))
            return {"$blob": len(blobs) - 1}
        if isinstance(value, Mapping):
            return {str(k): walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        raise TypeError(f"job payloads hold JSON values and bytes, not {type(value).__name__}")

    doc = walk(payload)
    return json.dumps(doc, separators=(",", ":")).encode(), blobs


def unpack_payload(doc: bytes, blobs: list[bytes]) -> dict[str, Any]:
    """The payload :func:`pack_payload` split (``bytes`` values restored; tuples come back as lists)."""
    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"$blob"}:
                return blobs[value["$blob"]]
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(json.loads(doc))


def worker_id() -> str:
    """``"<hostname>/<pid>"`` of this process: recorded in a running job, counted by Retry-After."""
    return f"{socket.gethostname()}/{os.getpid()}"


def _float(value: bytes | None) -> float | None:
    return None if value in (None, b"") else float(value)


def _problem(error: FaceforgeError) -> dict[str, Any]:
    return error.to_problem()


class RedisJobStore:
    """Job records, payloads and results in Redis (layout: module docstring); thread- and fork-safe
    (redis-py's connection pool reconnects in a forked child).

    Args:
        client: a ``redis.Redis`` with ``decode_responses=False`` (payloads and images are raw bytes).
        ttl_s: seconds a finished job and its images are kept.
        live_ttl_s: seconds a queued or running record is kept after its last change.
        max_queued: jobs that may wait in one queue; one more raises :class:`QueueFullError`.
        max_attempts: starts allowed per job (>= 1).
        retry_after_s: ``Retry-After`` before any job has run in the queue.
    """

    def __init__(self, client: "redis.Redis", ttl_s: int = 600, live_ttl_s: int | None = None,
                 max_queued: int = 16, max_attempts: int = 3, retry_after_s: int = 5) -> None:
        if ttl_s < 1 or max_queued < 1 or max_attempts < 1:
            raise ValueError("ttl_s, max_queued and max_attempts must be >= 1")
        self.client, self.ttl_s, self.max_queued, self.max_attempts = client, int(ttl_s), max_queued, max_attempts
        self.live_ttl_s = int(live_ttl_s or 4 * ttl_s)
        self.retry_after_s = retry_after_s

    @classmethod
    def from_config(cls, config: "Config") -> "RedisJobStore":
        """A store on ``config.redis_url`` sized by ``config`` (no connection is made here).

        Raises:
            MissingDependencyError: redis-py is not installed.
        """
        try:
            import redis
        except ImportError as exc:
            raise MissingDependencyError("the celery job backend needs redis-py and celery: "
                                         "pip install -e '.[serve]'") from exc
        client = redis.Redis.from_url(config.redis_url, socket_timeout=10, socket_connect_timeout=5,
                                      health_check_interval=30)
        return cls(client, ttl_s=config.job_ttl_s, live_ttl_s=live_ttl_s(config), max_queued=config.max_jobs,
                   max_attempts=config.job_max_attempts)

    # ------------------------------------------------------------------------------ keys
    @staticmethod
    def record_key(job_id: str) -> str:
        return f"{KEY_PREFIX}job:{job_id}"

    @staticmethod
    def payload_key(job_id: str) -> str:
        return f"{KEY_PREFIX}job:{job_id}:payload"

    @staticmethod
    def image_key(job_id: str, index: int) -> str:
        return f"{KEY_PREFIX}job:{job_id}:image:{index}"

    @staticmethod
    def waiting_key(queue: str) -> str:
        return f"{KEY_PREFIX}waiting:{queue}"

    @staticmethod
    def runtimes_key(queue: str) -> str:
        return f"{KEY_PREFIX}runtimes:{queue}"

    RUNNING_KEY = KEY_PREFIX + "running"

    @staticmethod
    def finished_key(status: str) -> str:
        return f"{KEY_PREFIX}finished:{status}"

    def _record_transaction(self, job_id: str, body: Callable[[Any, dict[bytes, bytes]], _T]) -> _T:
        """Run ``body(pipe, fields)`` as one optimistic transaction on the job's record; return its value.

        ``pipe`` is a transactional pipeline that ``WATCH``es the record; ``fields`` is the record's
        ``HGETALL`` read under that watch (``{}`` when there is no record). ``body`` either leaves
        without writing (it calls ``pipe.reset()``, then returns or raises) or calls ``pipe.multi()``,
        queues its writes and ``pipe.execute()``s them. When the record changed between ``WATCH`` and
        ``EXEC`` (redis-py raises ``WatchError``), ``body`` runs again from a fresh read, until one pass
        goes through. This is Redis's check-and-set (Redis docs, "Transactions: optimistic locking using
        check-and-set"; redis-py's ``Redis.transaction`` is the same loop, but returns the ``EXEC``
        replies where ``body`` here returns what its branch decided).

        Raises:
            whatever ``body`` raises (the pipeline is reset first); ``redis.RedisError`` on a lost
            connection.
        """
        import redis

        record = self.record_key(job_id)
        while True:
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(record)
                    return body(pipe, pipe.hgetall(record))
                except redis.WatchError:
                    continue  # the record changed between WATCH and EXEC: look again

    def _queue_finished(self, pipe: Any, job_id: str, queue: str, status: str, now: float,
                        fields: Mapping[str, Any]) -> None:
        """Queue, in a pipeline after ``pipe.multi()``, the writes that finish a job as ``status`` at
        ``now`` (Unix seconds): the record gets ``status``, ``finished`` and ``fields`` and expires in
        ``ttl_s``; the payload is deleted; the id leaves the running set and ``queue``'s waiting set
        and joins ``finished:<status>`` (trimmed to the last ``ttl_s`` seconds). Used by
        :meth:`finish` and :meth:`cancel`, so a cancelled job is counted and expired like any other."""
        record = self.record_key(job_id)
        pipe.hset(record, mapping={"status": status, "finished": repr(now), **fields})
        pipe.expire(record, self.ttl_s)
        pipe.delete(self.payload_key(job_id))
        pipe.zrem(self.RUNNING_KEY, job_id)
        pipe.zrem(self.waiting_key(queue), job_id)
        pipe.zadd(self.finished_key(status), {job_id: now})
        pipe.zremrangebyscore(self.finished_key(status), "-inf", now - self.ttl_s)

    # ------------------------------------------------------------------------------ web side
    def create(self, task: str, payload: Mapping[str, Any], queue: str) -> Job:
        """Store a new ``queued`` job (record + payload) and count it as waiting in ``queue``.

        Raises:
            QueueFullError: ``queue`` already holds ``max_queued`` waiting jobs (nothing is stored).
            TypeError: a payload value that is neither JSON nor bytes.
        """
        doc, blobs = pack_payload(payload)
        job = Job(id=uuid.uuid4().hex, task=task)
        waiting = self.waiting_key(queue)
        pipe = self.client.pipeline(transaction=True)
        pipe.zremrangebyscore(waiting, "-inf", job.created - self.live_ttl_s)  # ids of dropped records
        pipe.zadd(waiting, {job.id: job.created})
        pipe.zcard(waiting)
        count = pipe.execute()[-1]
        if count > self.max_queued:  # optimistic: add, count, take back (never more than max_queued wait)
            self.client.zrem(waiting, job.id)
            wait = self.retry_after(queue, waiting=count - 1)
            raise QueueFullError(f"{self.max_queued} jobs are already waiting; retry in about {wait} s",
                                 retry_after=wait)
        record = {"task": task, "queue": queue, "status": "queued", "created": repr(job.created), "attempts": 0}
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.record_key(job.id), mapping=record)
        pipe.expire(self.record_key(job.id), self.live_ttl_s)
        pipe.hset(self.payload_key(job.id), mapping={"json": doc, **{f"blob:{i}": b for i, b in enumerate(blobs)}})
        pipe.expire(self.payload_key(job.id), self.live_ttl_s)
        pipe.execute()
        return job

    def discard(self, job_id: str, queue: str) -> None:
        """Forget a job whose message could not be sent (record, payload, waiting entry)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.record_key(job_id), self.payload_key(job_id))
        pipe.zrem(self.waiting_key(queue), job_id)
        pipe.execute()

    def get(self, job_id: str) -> Job:
        """A snapshot of the job (one atomic ``HGETALL``; images were written before the status).

        Raises:
            JobNotFoundError: not a job id, unknown, or expired.
        """
        missing = JobNotFoundError(f"no job {job_id!r}: unknown id, or finished more than {self.ttl_s} s ago",
                                   job_id=job_id)
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise missing
        fields = self.client.hgetall(self.record_key(job_id))
        if not fields:
            raise missing
        status = fields[b"status"].decode()
        job = Job(id=job_id, task=fields[b"task"].decode(), status=status, created=float(fields[b"created"]),
                  started=_float(fields.get(b"started")), finished=_float(fields.get(b"finished")))
        if fields.get(b"error"):
            job.error = json.loads(fields[b"error"])
        if fields.get(b"progress"):
            job.progress = json.loads(fields[b"progress"])
        if status == "succeeded":
            n = int(fields.get(b"images", 0))
            images = self.client.mget([self.image_key(job_id, i) for i in range(n)]) if n else []
            if any(img is None for img in images):  # expired between the two reads
                raise missing
            job.result = TaskResult(list(images), json.loads(fields.get(b"data") or b"{}"))
        return job

    def waiting(self, queue: str) -> int:
        """Jobs waiting (submitted, not started) in ``queue``."""
        return int(self.client.zcard(self.waiting_key(queue)))

    def retry_after(self, queue: str, waiting: int | None = None) -> int:
        """Seconds a client turned away should wait: the time to drain ``queue``'s waiting jobs,
        ``ceil(waiting x median run time / workers)`` over the last 32 runs of that queue, where
        ``workers`` is the number of distinct worker processes among those runs (at least 1);
        ``retry_after_s`` before any run."""
        entries = self.client.lrange(self.runtimes_key(queue), 0, RUNTIMES_KEPT - 1)
        if not entries:
            return self.retry_after_s
        runs = sorted(float(e.split(b" ", 1)[0]) for e in entries)
        workers = len({e.split(b" ", 1)[1] if b" " in e else b"" for e in entries}) or 1
        waiting = self.waiting(queue) if waiting is None else waiting
        return max(1, math.ceil(max(waiting, 1) * runs[len(runs) // 2] / workers))

    def stats(self) -> dict[str, int]:
        """Counts by status: waiting jobs of every queue, running jobs, jobs finished in the last
        ``ttl_s`` seconds."""
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        for queue in QUEUES.values():
            pipe.zcount(self.waiting_key(queue), now - self.live_ttl_s, "+inf")
        pipe.zcount(self.RUNNING_KEY, now - self.live_ttl_s, "+inf")
        for status in FINISHED:
            pipe.zcount(self.finished_key(status), now - self.ttl_s, "+inf")
        counts = pipe.execute()
        n = len(QUEUES)
        return {"queued": int(sum(counts[:n])), "running": int(counts[n]),
                **{status: int(counts[n + 1 + i]) for i, status in enumerate(FINISHED)}}

    def cancel(self, job_id: str) -> tuple[Job, str]:
        """Mark a queued or running job ``cancelled`` in one transaction: ``finished`` = now, the record's
        TTL becomes ``ttl_s``, the payload is deleted, the id leaves the waiting and running sets and joins
        ``finished:cancelled``. Returns the job's snapshot and the status it had before (``queued``,
        ``running``, or ``cancelled`` when it already was: then nothing changes).

        Raises:
            JobNotFoundError: not a job id, unknown, or expired.
            JobFinishedError: the job already succeeded or failed (nothing changes).
        """
        self.get(job_id)  # JobNotFoundError for ids that are no job ids before any WATCH

        def cancel_record(pipe: Any, fields: dict[bytes, bytes]) -> tuple[Job, str]:
            if not fields:
                pipe.reset()
                raise JobNotFoundError(f"no job {job_id!r}: unknown id, or finished more than "
                                       f"{self.ttl_s} s ago", job_id=job_id)
            before = fields[b"status"].decode()
            if before in FINISHED:
                pipe.reset()
                job = self.get(job_id)
                if before == "cancelled":
                    return job, before
                raise finished_error(job)
            queue = fields.get(b"queue", b"").decode()
            now = time.time()
            pipe.multi()
            self._queue_finished(pipe, job_id, queue, "cancelled", now, {"images": 0})
            pipe.execute()
            return self.get(job_id), before

        return self._record_transaction(job_id, cancel_record)

    def status(self, job_id: str) -> str | None:
        """The job's status as stored now, or None when there is no record."""
        value = self.client.hget(self.record_key(job_id), "status")
        return None if value is None else value.decode()

    # ------------------------------------------------------------------------------ worker side
    def start(self, job_id: str, worker: str) -> tuple[str, dict[str, Any]] | None:
        """Mark the job ``running`` (attempt + 1) and return ``(task, payload)``, or ``None`` when it
        must not run: unknown/expired, already finished (a redelivered message), or out of attempts
        (then it is finished as ``failed`` here).

        A job found ``running`` is one whose worker died (the broker redelivered its message), so it
        runs again.
        """
        record = self.record_key(job_id)

        def claim(pipe: Any, fields: dict[bytes, bytes]) -> tuple[str, dict[bytes, bytes]] | None:
            if not fields:
                log.warning("job %s: no record (expired or unknown); not run", job_id)
                pipe.reset()
                return None
            status = fields[b"status"].decode()
            if status in FINISHED:
                log.info("job %s already %s; redelivery acknowledged without running it", job_id, status)
                pipe.reset()
                return None
            attempts = int(fields.get(b"attempts", 0)) + 1
            queue = fields.get(b"queue", b"").decode()
            if attempts > self.max_attempts:
                pipe.reset()
                self.finish(job_id, error=_problem(InternalError(
                    f"the job's worker stopped {attempts - 1} times while running it (killed or out of "
                    f"memory); it is not run again")))
                return None
            if status == "running":
                log.warning("job %s was running on %s, which stopped; running it again (attempt %d)",
                            job_id, fields.get(b"worker", b"?").decode(), attempts)
            now = time.time()
            pipe.multi()
            pipe.hset(record, mapping={"status": "running", "started": repr(now), "attempts": attempts,
                                       "worker": worker, "progress": ""})  # a re-run starts again at 0
            pipe.expire(record, self.live_ttl_s)
            pipe.expire(self.payload_key(job_id), self.live_ttl_s)
            pipe.zrem(self.waiting_key(queue), job_id)
            pipe.zadd(self.RUNNING_KEY, {job_id: now})
            pipe.zremrangebyscore(self.RUNNING_KEY, "-inf", now - self.live_ttl_s)
            pipe.hgetall(self.payload_key(job_id))
            return fields[b"task"].decode(), pipe.execute()[-1]

        claimed = self._record_transaction(job_id, claim)
        if claimed is None:
            return None
        task, stored = claimed
        if b"json" not in stored:
            self.finish(job_id, error=_problem(InternalError("the job's payload is missing from the job store")))
            return None
        blobs = [stored[f"blob:{i}".encode()] for i in range(len(stored) - 1)]
        return task, unpack_payload(stored[b"json"], blobs)

    def set_progress(self, job_id: str, progress: Mapping[str, Any]) -> bool:
        """Write a running job's ``progress`` (:func:`server.jobs.progress_dict`) to its record; return
        False (and write nothing) when the record is gone or no longer ``running`` (cancelled, finished,
        expired) or changed meanwhile (progress is best effort: the next step writes again)."""
        import redis

        record = self.record_key(job_id)
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(record)
                if pipe.hget(record, "status") != b"running":
                    pipe.reset()
                    return False
                pipe.multi()
                pipe.hset(record, "progress", json.dumps(dict(progress)))
                pipe.execute()
                return True
            except redis.WatchError:
                return False

    def finish(self, job_id: str, result: TaskResult | None = None, error: dict[str, Any] | None = None,
               run_s: float | None = None, worker: str | None = None) -> bool:
        """Record the outcome (``succeeded`` with ``result`` or ``failed`` with the problem ``error``),
        write the images under their own keys, start the ``ttl_s`` countdown, drop the payload; return
        False (and change nothing) when the job is gone or already finished."""
        status = "failed" if error is not None or result is None else "succeeded"

        def write_outcome(pipe: Any, fields: dict[bytes, bytes]) -> bool:
            if not fields or fields[b"status"].decode() in FINISHED:
                pipe.reset()
                return False
            queue = fields.get(b"queue", b"").decode()
            now = time.time()
            pipe.multi()
            images = result.images if result is not None and status == "succeeded" else []
            for i, png in enumerate(images):
                pipe.set(self.image_key(job_id, i), png, ex=self.ttl_s)
            mapping: dict[str, Any] = {"images": len(images)}
            if status == "succeeded":
                mapping["data"] = json.dumps(result.data)
            else:
                mapping["error"] = json.dumps(error or _problem(InternalError("the job failed")))
            self._queue_finished(pipe, job_id, queue, status, now, mapping)
            if run_s is not None:
                pipe.lpush(self.runtimes_key(queue), f"{run_s:.6f} {worker or '?'}")
                pipe.ltrim(self.runtimes_key(queue), 0, RUNTIMES_KEPT - 1)
            pipe.execute()
            return True

        return self._record_transaction(job_id, write_outcome)


def live_ttl_s(config: "Config") -> int:
    """Seconds a queued or running record lives after its last change: ``job_ttl_s``, plus the longest
    wait in a full queue with one worker (``max_jobs x job_time_limit_s``), plus one visibility timeout
    per allowed attempt (a redelivery can take that long)."""
    return int(config.job_ttl_s + config.max_jobs * config.job_time_limit_s
               + config.job_max_attempts * config.visibility_timeout_s)


def soft_time_limit_s(config: "Config") -> float:
    """The soft time limit: 90 % of ``job_time_limit_s`` (at least 0.5 s below it)."""
    hard = float(config.job_time_limit_s)
    return max(0.5, min(0.9 * hard, hard - 0.5))


def execute_job(store: RedisJobStore, job_id: str, runner: Runner, worker: str | None = None) -> str | None:
    """Run one delivery of job ``job_id``: :meth:`RedisJobStore.start`, ``runner(task, payload)``,
    :meth:`RedisJobStore.finish`. Returns the final status, or ``None`` when the delivery was skipped.

    A :class:`~faceforge.errors.FaceforgeError` becomes the job's problem; the soft time limit a
    ``time limit`` problem; any other exception a generic ``internal-error`` (logged, never shown).
    """
    try:
        from celery.exceptions import SoftTimeLimitExceeded
    except ImportError:  # running without Celery (tests, a custom runner): no soft limit exists
        SoftTimeLimitExceeded = ()  # noqa: N806
    worker = worker or worker_id()
    started = store.start(job_id, worker)
    if started is None:
        return None
    task, payload = started
    t0 = time.perf_counter()
    result, error = None, None
    last = [0.0]

    def progress(value: dict[str, Any]) -> None:  # throttled: a projection step can take milliseconds
        now = time.monotonic()
        if value["step"] == value["total"] or now - last[0] >= PROGRESS_INTERVAL_S:
            last[0] = now
            store.set_progress(job_id, value)

    try:
        with progress_sink(progress):
            result = runner(task, payload)
    except FaceforgeError as exc:
        error = exc.to_problem()
    except SoftTimeLimitExceeded:  # the soft time limit, or a revoke of a cancelled job (REVOKE_SIGNAL)
        if store.status(job_id) == "cancelled":
            log.info("job %s (%s) stopped: it was cancelled", job_id, task)
            return "cancelled"
        log.warning("job %s (%s) ran past its soft time limit", job_id, task)
        error = _problem(InternalError("the job ran past its time limit and was stopped"))
    except Exception:  # noqa: BLE001 - a failed job must not take the worker down
        log.exception("job %s (%s) failed", job_id, task)
        error = _problem(InternalError("the job failed; the error was logged"))
    if not store.finish(job_id, result=result, error=error, run_s=time.perf_counter() - t0, worker=worker):
        status = store.status(job_id)  # cancelled while it ran (or expired): the outcome is discarded
        log.info("job %s (%s) finished, but its record is %s; outcome discarded", job_id, task, status or "gone")
        return status
    return "failed" if error is not None else "succeeded"


# ---------------------------------------------------------------------------------- Celery
WORKER_PROC_ALIVE_TIMEOUT_S = 60.0
"""Seconds a new pool process may take to start (models included) before Celery kills it."""


def celery_settings(config: "Config") -> dict[str, Any]:
    """The Celery configuration of :func:`make_celery` (see the module docstring for why each)."""
    return {
        "broker_url": config.redis_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": config.visibility_timeout_s,
                                     "unacked_restore_interval": config.job_restore_interval_s,
                                     "unacked_restore_throttle": 1},
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": config.job_time_limit_s,
        "task_soft_time_limit": soft_time_limit_s(config),
        "task_ignore_result": True,  # records and results live in RedisJobStore
        "result_backend": None,
        "result_expires": config.job_ttl_s,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": LIGHT_QUEUE,
        "task_create_missing_queues": True,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        # a pool child loads its models in worker_process_init before it reports UP; Celery's default of
        # 4 s killed children over and over on a loaded 2-core machine (seen in the kill -9 fault test)
        "worker_proc_alive_timeout": WORKER_PROC_ALIVE_TIMEOUT_S,
    }


@dataclass
class _ProcessState:
    """What one worker process builds once (in ``worker_process_init``): its store, hub and runner."""

    store: RedisJobStore
    runner: Runner
    hub: Any = None


_PROCESS: _ProcessState | None = None
_PROCESS_PID: int | None = None


def init_worker_process(config: "Config", warm_up: bool = True) -> _ProcessState:
    """Build this process's :class:`~server.hub.ModelHub`, runner and job store (called by the
    ``worker_process_init`` signal in every pool process; lazily by the first task otherwise) and, with
    ``warm_up``, load the configured StyleGAN2 generators now, so every job of this process reuses
    them. A model that fails to load is logged; its jobs then fail with its problem."""
    global _PROCESS, _PROCESS_PID
    from server.hub import ModelHub
    from server.tasks import make_runner

    if config.torch_threads:
        import torch
        torch.set_num_threads(config.torch_threads)
    hub = ModelHub(config)
    if warm_up:
        for which, setting in (("base", config.stylegan2_weights), ("toon", config.stylegan2_toon_weights)):
            if setting:
                try:
                    hub.stylegan(which)
                except Exception as exc:  # noqa: BLE001 - report, keep serving the other jobs
                    log.warning("StyleGAN2 %s generator did not load: %s", which, exc)
    _PROCESS, _PROCESS_PID = _ProcessState(RedisJobStore.from_config(config), make_runner(hub), hub), os.getpid()
    return _PROCESS


_PROCESS_LOCK = threading.Lock()


def process_state(config: "Config") -> _ProcessState:
    """This process's state, built on first use (and again after a fork); once, also when the first
    tasks of a ``-P threads`` pool (which sends no ``worker_process_init``) arrive together."""
    if _PROCESS is None or _PROCESS_PID != os.getpid():
        with _PROCESS_LOCK:
            if _PROCESS is None or _PROCESS_PID != os.getpid():
                return init_worker_process(config)
    return _PROCESS


def make_celery(config: "Config") -> "Celery":
    """The Celery app of ``config``: broker ``config.redis_url``, :func:`celery_settings`, and the task
    :data:`TASK_NAME` ``(job_id) ->`` :func:`execute_job` with this process's hub.

    Raises:
        MissingDependencyError: Celery is not installed.
    """
    try:
        from celery import Celery, Task
        from celery.exceptions import TimeLimitExceeded
    except ImportError as exc:
        raise MissingDependencyError("the celery job backend needs celery and redis-py: "
                                     "pip install -e '.[serve]'") from exc

    class JobTask(Task):
        """Reports what the task body cannot: the hard time limit (the pool killed the child; Celery calls
        ``on_failure`` in the worker's main process then). Every other outcome is recorded by
        :func:`execute_job` itself; a lost worker's job is requeued (``reject_on_worker_lost``)."""

        def on_failure(self, exc, task_id, args, kwargs, einfo):  # noqa: D401 - Celery hook
            if not isinstance(exc, TimeLimitExceeded):
                return
            detail = f"the job ran past its hard time limit of {config.job_time_limit_s} s and was killed"
            job_id = args[0] if args else task_id
            try:
                RedisJobStore.from_config(config).finish(job_id, error=_problem(InternalError(detail)))
            except Exception:  # noqa: BLE001 - never take the worker's main process down
                log.exception("could not record the failure of job %s", job_id)

    app = Celery("faceforge", set_as_current=False)
    app.conf.update(celery_settings(config))
    app.faceforge_config = config  # type: ignore[attr-defined]

    @app.task(name=TASK_NAME, base=JobTask, bind=True, acks_late=True, reject_on_worker_lost=True, shared=False)
    def run_job(self, job_id: str) -> str | None:
        """Run job ``job_id`` (its payload is in Redis); idempotent by job id. When the job store is
        unreachable the delivery is retried (a new message for the same id, every
        :data:`REDIS_RETRY_S` seconds, at most :data:`REDIS_RETRIES` times) instead of being
        acknowledged with the job left ``queued`` forever."""
        import redis

        state = process_state(config)
        try:
            return execute_job(state.store, job_id, state.runner)
        except redis.RedisError as exc:
            log.warning("job %s: job store unreachable (%s); retrying in %s s", job_id, exc, REDIS_RETRY_S)
            raise self.retry(exc=exc, countdown=REDIS_RETRY_S, max_retries=REDIS_RETRIES) from None

    return app


class CeleryJobQueue(JobQueue):
    """The web side of the backend: :class:`RedisJobStore` for records, Celery to send the job id.

    Args:
        store: the job store.
        send: ``send(job_id, queue)`` publishes the job's message (``None``: through ``celery_app``).
        celery_app: the app of :func:`make_celery` (``send`` defaults to its ``send_task``).
        expires_s: seconds after which an unstarted message is discarded by the worker.
        revoke: ``revoke(job_id, terminate)`` revokes a cancelled job's task (``None``: Celery's control
            ``revoke``, with ``signal=REVOKE_SIGNAL`` when ``terminate``; nothing without ``celery_app``).
    """

    def __init__(self, store: RedisJobStore, send: Callable[[str, str], None] | None = None,
                 celery_app: "Celery | None" = None, expires_s: float | None = None,
                 revoke: Callable[[str, bool], None] | None = None) -> None:
        if send is None and celery_app is None:
            raise ValueError("give send or celery_app")
        self.store, self.celery_app = store, celery_app
        self.expires_s = expires_s or store.live_ttl_s
        self._send = send or self._send_task
        self._revoke = revoke or self._revoke_task

    @classmethod
    def from_config(cls, config: "Config", runner: Runner | None = None) -> "CeleryJobQueue":
        """The queue of ``config`` (``runner`` is unused: workers build their own). Connects nothing yet.

        Raises:
            MissingDependencyError: celery or redis-py is not installed.
        """
        return cls(RedisJobStore.from_config(config), celery_app=make_celery(config))

    @property
    def max_queued(self) -> int:
        return self.store.max_queued

    @property
    def ttl_s(self) -> int:
        return self.store.ttl_s

    def _send_task(self, job_id: str, queue: str) -> None:
        self.celery_app.send_task(TASK_NAME, args=[job_id], task_id=job_id, queue=queue, expires=self.expires_s,
                                  retry=True, retry_policy={"max_retries": 2, "interval_start": 0,
                                                            "interval_step": 0.5, "interval_max": 1})

    def submit(self, task: str, payload: Mapping[str, Any]) -> Job:
        import redis

        queue = queue_for(task, payload)
        try:
            job = self.store.create(task, payload, queue)
        except redis.RedisError as exc:
            raise self._unreachable(exc) from None
        try:
            self._send(job.id, queue)
        except Exception as exc:  # noqa: BLE001 - broker down: the job must not stay half-created
            try:
                self.store.discard(job.id, queue)
            except redis.RedisError:
                pass
            raise self._unreachable(exc) from None
        return job

    def get(self, job_id: str) -> Job:
        import redis

        try:
            return self.store.get(job_id)
        except redis.RedisError as exc:
            raise self._unreachable(exc) from None

    def _revoke_task(self, job_id: str, terminate: bool) -> None:
        if self.celery_app is not None:
            self.celery_app.control.revoke(job_id, terminate=terminate, signal=REVOKE_SIGNAL)

    def cancel(self, job_id: str) -> Job:
        """Cancel a job (see the module docstring, "Cancellation"): the store's record first (the truth
        every web process and worker reads), then a revoke broadcast to the workers (terminating the run
        when the job was running). A revoke that cannot be sent is logged, not raised: the record is
        already ``cancelled``, so a queued job still never runs; a running one then computes to its end.

        Raises:
            JobNotFoundError: unknown or expired id (404).
            JobFinishedError: the job already succeeded or failed (409).
            NotReadyError: Redis is unreachable (503).
        """
        import redis

        try:
            job, before = self.store.cancel(job_id)
        except redis.RedisError as exc:
            raise self._unreachable(exc) from None
        if before in ("queued", "running"):
            try:
                self._revoke(job_id, before == "running")
            except Exception as exc:  # noqa: BLE001 - the record already says cancelled
                log.warning("job %s cancelled, but its revoke could not be sent: %s: %s", job_id,
                            type(exc).__name__, exc)
        return job

    def stats(self) -> dict[str, int]:
        return self.store.stats()

    def retry_after(self, queue: str = LIGHT_QUEUE) -> int:
        return self.store.retry_after(queue)

    def close(self) -> None:
        self.store.client.close()

    @staticmethod
    def _unreachable(exc: Exception) -> NotReadyError:
        log.warning("job store/broker unreachable: %s: %s", type(exc).__name__, exc)
        return NotReadyError("the job queue (Redis) is unreachable; retry later")


assert set(STATUSES) == {"queued", "running", *FINISHED}
