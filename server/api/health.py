"""``GET /healthz`` (the process answers) and ``GET /readyz`` (the served models are loaded)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from server.api import get_hub
from server.errors import NotReadyError
from server.schemas import HEALTH_PATH, READY_PATH

bp = Blueprint("health", __name__)

ERRORS = (NotReadyError,)


@bp.get(HEALTH_PATH)
def healthz():
    """Liveness: 200 ``{"status": "ok"}`` whenever the process serves HTTP; loads nothing."""
    return jsonify(status="ok")


@bp.get(READY_PATH)
def readyz():
    """Readiness: loads the served models if needed (once); 200 when all load, else 503 problem.

    The 503 problem carries ``checks``: ``{model: "ok" | "<problem type>: <detail>"}``.
    """
    report = get_hub().warm_up()
    if all(v == "ok" for v in report.values()):
        return jsonify(status="ready", models=report)
    failed = ", ".join(k for k, v in report.items() if v != "ok")
    raise NotReadyError(f"models failed to load: {failed}", checks=report)
