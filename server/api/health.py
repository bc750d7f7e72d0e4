"""``GET /healthz`` (the process answers) and ``GET /readyz`` (the served models are loaded).

``/readyz`` is cached per app: the first call loads every served model and runs one inference through
each (:meth:`server.hub.ModelHub.warm_up`); once that succeeded, later calls answer from the cache
(models are never unloaded), so a load balancer probing every second costs no inference. A failed check
is repeated at most every :data:`READY_RECHECK_S` seconds (weights installed later make the process
ready). Concurrent probes wait for one check instead of running their own.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import Blueprint, current_app, jsonify

from server.api import EXTENSION_KEY, get_hub
from server.errors import NotReadyError
from server.schemas import HEALTH_PATH, READY_PATH

bp = Blueprint("health", __name__)

ERRORS = (NotReadyError,)


@bp.get(HEALTH_PATH)
def healthz():
    """Liveness: 200 ``{"status": "ok"}`` whenever the process serves HTTP; loads nothing."""
    return jsonify(status="ok")


READY_RECHECK_S = 5.0
"""Seconds a failed readiness check is answered from the cache before it is run again."""


class ReadinessCache:
    """The last :meth:`~server.hub.ModelHub.warm_up` report of one app, and when it was taken."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.report: dict[str, str] | None = None
        self.checked = 0.0  # time.monotonic() of the check

    def get(self, check: Any, recheck_s: float | None = None) -> dict[str, str]:
        """The cached report, or ``check()``'s when none is cached or the cached one failed more than
        ``recheck_s`` (default :data:`READY_RECHECK_S`) seconds ago."""
        recheck_s = READY_RECHECK_S if recheck_s is None else recheck_s
        with self.lock:
            ok = self.report is not None and all(v == "ok" for v in self.report.values())
            if self.report is None or (not ok and time.monotonic() - self.checked > recheck_s):
                self.report, self.checked = check(), time.monotonic()
            return dict(self.report)


def _readiness() -> ReadinessCache:
    return current_app.extensions[EXTENSION_KEY].setdefault("readiness", ReadinessCache())


@bp.get(READY_PATH)
def readyz():
    """Readiness: loads the served models if needed (once); 200 when all load, else 503 problem; cached
    (see the module docstring).

    The 503 problem carries ``checks``: ``{model: "ok" | "<problem type>: <detail>"}``.
    """
    report = _readiness().get(get_hub().warm_up)
    if all(v == "ok" for v in report.values()):
        return jsonify(status="ready", models=report)
    failed = ", ".join(k for k, v in report.items() if v != "ok")
    raise NotReadyError(f"models failed to load: {failed}", checks=report)
