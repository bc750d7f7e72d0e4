"""faceforge's HTTP server: a Flask app factory, one blueprint per area, problem+json errors.

Usage::

    from server import create_app
    app = create_app({"max_faces": 5})       # dict or Config overrides; FACEFORGE_* env otherwise

Development: ``faceforge serve --port 8000`` (Flask's threaded dev server). Production (gunicorn, two
gevent worker processes, so slow clients hold no thread; every worker loads its own models on first
use; heavy jobs on Celery workers with Redis, since the in-process job backend refuses more than one
process and gevent)::

    FACEFORGE_JOB_BACKEND=celery FACEFORGE_REDIS_URL=redis://127.0.0.1:6379/0 \
        gunicorn -w 2 -k gevent --worker-connections 1000 -b 0.0.0.0:8000 'server:create_app()'
    faceforge worker --queues light,heavy          # same FACEFORGE_* environment

Layout: :mod:`server.config` (Config from the environment), :mod:`server.hub` (models, loaded lazily
once per process, shared by threads), :mod:`server.errors` (RFC 9457 problem responses),
:mod:`server.schemas` (paths, field names, JSON Schemas), :mod:`server.openapi` (the OpenAPI 3.1
document built from those), :mod:`server.api` (blueprints), :mod:`server.cli` (``faceforge serve``),
:mod:`server.testing` (run an app on a free loopback port).

To add an endpoint area: write ``server/api/<area>.py`` with ``bp = Blueprint(...)`` and ``ERRORS``
(the error classes its handlers raise), register it in :func:`create_app`, put its paths and response
schemas in :mod:`server.schemas` and its operation in :func:`server.openapi.build_openapi`.

Heavy tasks (StyleGAN2 generation, style mixing, toonify, projection, morphing) take seconds, so
they never run on request threads: :mod:`server.jobs` (``JobQueue`` interface; bounded in-process
worker threads by default, ``FACEFORGE_JOB_BACKEND``), :mod:`server.tasks` (the task functions) and
:mod:`server.api.jobs` (``POST /v1/<task>`` -> ``202`` + ``Location: /v1/jobs/<id>``; ``GET
/v1/jobs/<id>`` -> queued/running/succeeded/failed and the result; a full queue -> 429 problem with
``Retry-After``). A distributed backend (Celery + Redis, Ray) is a new ``JobQueue`` chosen by
configuration, not an API change.
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
    from server import access, decode_budget, errors, security
    from server.api import EXTENSION_KEY, app as web_app, docs, emotion, frontalize, health, jobs, models, translate
    from server.hub import ModelHub
    from server.jobs import make_job_queue
    from server.tasks import make_runner

    if not isinstance(config, Config):
        config = Config.from_env(**dict(config or {}))
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_content_length
    app.json.sort_keys = False  # keep label order (FER2013 ids) and documented key order
    hub = ModelHub(config)
    # heavy jobs: the queue starts its worker threads on the first submit; models load inside jobs
    app.extensions[EXTENSION_KEY] = {"config": config, "hub": hub, "jobs": make_job_queue(config, make_runner(hub))}
    for module in (health, emotion, translate, frontalize, models, docs, jobs, web_app):
        app.register_blueprint(module.bp)
    errors.register_error_handlers(app)
    security.install(app)  # nosniff, Cache-Control: no-store
    access.install(app, config)  # API keys, rate limits, CORS (each only when configured)
    decode_budget.install(app, config.decode_budget_mb * 2**20, config.decode_wait_s)
    if config.warm_up:
        hub.warm_up()
    return app
