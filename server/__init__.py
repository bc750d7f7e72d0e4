"""faceforge's HTTP server: a Flask app factory, one blueprint per area, problem+json errors.

Usage::

    from server import create_app
    app = create_app({"max_faces": 5})       # dict or Config overrides; FACEFORGE_* env otherwise

Development: ``faceforge serve --port 8000`` (Flask's threaded dev server). Production (gunicorn, two
worker processes with four threads each; every worker loads its own models on first use)::

    gunicorn -w 2 -k gthread --threads 4 -b 0.0.0.0:8000 'server:create_app()'

Layout: :mod:`server.config` (Config from the environment), :mod:`server.hub` (models, loaded lazily
once per process, shared by threads), :mod:`server.errors` (RFC 9457 problem responses),
:mod:`server.schemas` (paths, field names, JSON Schemas), :mod:`server.openapi` (the OpenAPI 3.1
document built from those), :mod:`server.api` (blueprints), :mod:`server.cli` (``faceforge serve``),
:mod:`server.testing` (run an app on a free loopback port).

To add an endpoint area: write ``server/api/<area>.py`` with ``bp = Blueprint(...)`` and ``ERRORS``
(the error classes its handlers raise), register it in :func:`create_app`, put its paths and response
schemas in :mod:`server.schemas` and its operation in :func:`server.openapi.build_openapi`.

Heavy tasks (planned, not built): StyleGAN2 generation, GPEN restoration, face swap take seconds and a
GPU, so they must not run on request threads. They go in ``server/jobs.py`` behind an interface
``JobQueue.submit(task, payload) -> job_id`` / ``status(job_id)`` / ``result(job_id)`` with a bounded
in-process implementation (a ``queue.Queue(maxsize=Config.max_jobs)`` and one worker thread per
device) as the embedded default. A blueprint ``server/api/jobs.py`` maps it to HTTP:
``POST /v1/<task>`` -> ``202 Accepted`` + ``Location: /v1/jobs/<id>``; ``GET /v1/jobs/<id>`` -> status
(queued/running/done/failed) and, when done, the result; a full queue raises a ``QueueFullError``
(429 problem with ``Retry-After``). Swapping the in-process queue for Celery+Redis or Ray Serve is then
a config choice (``FACEFORGE_JOB_BACKEND``), not an API change.
"""

from __future__ import annotations

from typing import Any, Mapping

from flask import Flask

from server.config import Config

__all__ = ["Config", "create_app"]


def create_app(config: Config | Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app (no model is loaded here unless ``config.warm_up``).

    Args:
        config: a :class:`Config`, a mapping of :class:`Config` field names (overriding the
            environment), or ``None`` for the environment/defaults.

    Returns:
        The app, with ``app.extensions["faceforge"] = {"config": Config, "hub": ModelHub}``.

    Raises:
        ValueError: unknown config key or invalid value.
    """
    from server import errors
    from server.api import EXTENSION_KEY, docs, emotion, health, models, translate
    from server.hub import ModelHub

    if not isinstance(config, Config):
        config = Config.from_env(**dict(config or {}))
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_content_length
    app.json.sort_keys = False  # keep label order (FER2013 ids) and documented key order
    hub = ModelHub(config)
    app.extensions[EXTENSION_KEY] = {"config": config, "hub": hub}
    for module in (health, emotion, translate, models, docs):
        app.register_blueprint(module.bp)
    errors.register_error_handlers(app)
    if config.warm_up:
        hub.warm_up()
    return app
