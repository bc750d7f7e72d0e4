"""``InProcessJobQueue.get`` returns a snapshot: a record whose fields agree with each other.

The worker thread updates a job's status, times and result under the queue's lock; ``GET /v1/jobs/<id>``
then reads those fields one by one. Before the snapshot it read the live record, so a GET racing the
worker could answer e.g. ``status: queued`` with a ``started_at``, or ``running`` with a
``finished_at`` (seen in a stress run of the real ``job_to_dict``).
"""

from __future__ import annotations

import threading
import time

from server.jobs import InProcessJobQueue, TaskResult


def test_get_returns_a_snapshot_that_the_worker_does_not_change():
    release, started = threading.Event(), threading.Event()

    def runner(task, payload):
        started.set()
        release.wait(10)
        return TaskResult([b"png"], {"ok": True})

    queue = InProcessJobQueue(runner, workers=1, max_queued=2)
    try:
        job_id = queue.submit("generate", {}).id
        assert started.wait(5)
        running = queue.get(job_id)
        release.set()
        deadline = time.monotonic() + 5
        while queue.get(job_id).status != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.01)
        done = queue.get(job_id)
        assert done.status == "succeeded" and done.finished is not None and done.result.data == {"ok": True}
        # the earlier snapshot still describes the running job, consistently
        assert running.status == "running" and running.started is not None
        assert running.finished is None and running.result is None and running.error is None
        assert running is not done and running.id == done.id
    finally:
        release.set()
        queue.close()

