"""Celery worker processes of the ``celery`` job backend: ``faceforge worker`` (or ``celery -A server.worker``).

A worker reads ``FACEFORGE_*`` like the web processes (same ``FACEFORGE_REDIS_URL``, weights, limits),
consumes the queues it is given (``light``: seed-only generation, style mixing, Delaunay morphs;
``heavy``: anything that projects a photo; see :func:`server.celery_backend.queue_for`) and builds one
:class:`~server.hub.ModelHub` per pool process in Celery's ``worker_process_init`` signal, so the
models load once per process, never in the parent (CUDA cannot be initialised before a fork).

Deployment (README, production)::

    # CPU machine: one prefork worker, one process per core, both queues
    faceforge worker --queues light,heavy --concurrency 4
    # GPU machine: one solo worker per GPU (no fork; time limits are not enforced by -P solo)
    CUDA_VISIBLE_DEVICES=0 faceforge worker --pool solo --queues heavy -n gpu0@%h
    CUDA_VISIBLE_DEVICES=1 faceforge worker --pool solo --queues heavy -n gpu1@%h

A TERM is Celery's warm shutdown: the running jobs finish, waiting messages stay in Redis for the
next worker. A worker killed outright (``kill -9``, OOM) loses nothing: a dead prefork child's job is
requeued at once, a dead worker's job after the broker's visibility timeout (``server.celery_backend``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import click

from server.config import Config

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

_CONFIG: Config | None = None
_CONNECTED = False
_APP: "Celery | None" = None


def _on_worker_process_init(**_: Any) -> None:
    """``worker_process_init`` receiver: build this pool process's hub, runner and job store."""
    from server.celery_backend import init_worker_process

    init_worker_process(_CONFIG or Config.from_env())


def create_worker_app(config: Config | None = None) -> "Celery":
    """The Celery app a worker runs (:func:`server.celery_backend.make_celery`), with the
    ``worker_process_init`` receiver connected once per process.

    Raises:
        ValueError: a ``FACEFORGE_*`` value does not parse (``config`` not given).
        MissingDependencyError: celery / redis-py are not installed.
    """
    global _CONFIG, _CONNECTED
    from server.celery_backend import make_celery

    _CONFIG = config or Config.from_env()
    app = make_celery(_CONFIG)
    if not _CONNECTED:
        from celery import signals

        signals.worker_process_init.connect(_on_worker_process_init, weak=False)
        _CONNECTED = True
    return app


def __getattr__(name: str) -> Any:
    """``server.worker.app``: the app of ``celery -A server.worker worker`` (built from the environment)."""
    global _APP
    if name in ("app", "celery"):
        if _APP is None:
            _APP = create_worker_app()
        return _APP
    raise AttributeError(name)


def queue_names(spec: str) -> list[str]:
    """``"light,heavy"`` -> Celery queue names (short names of :data:`server.celery_backend.QUEUES` or
    full names).

    Raises:
        click.BadParameter: an empty list or an unknown short name.
    """
    from server.celery_backend import QUEUES

    names = [part.strip() for part in spec.split(",") if part.strip()]
    if not names:
        raise click.BadParameter("give at least one queue", param_hint="--queues")
    unknown = [n for n in names if n not in QUEUES and n not in QUEUES.values()]
    if unknown:
        raise click.BadParameter(f"unknown queue {', '.join(unknown)}; known: {', '.join(QUEUES)}",
                                 param_hint="--queues")
    return [QUEUES.get(n, n) for n in names]


def worker_argv(queues: str, concurrency: int, pool: str, loglevel: str, hostname: str | None,
                extra: tuple[str, ...] = ()) -> list[str]:
    """The argument list ``faceforge worker`` passes to Celery's ``worker_main``."""
    argv = ["worker", f"--queues={','.join(queue_names(queues))}", f"--pool={pool}", f"--loglevel={loglevel}",
            "--without-gossip", "--without-mingle"]
    if pool != "solo":
        argv.append(f"--concurrency={concurrency}")
    if hostname:
        argv.append(f"--hostname={hostname}")
    return argv + list(extra)


@click.command("worker", context_settings={"ignore_unknown_options": True})
@click.option("--queues", "-Q", default="light,heavy", show_default=True,
              help="Queues to consume, comma-separated: light, heavy.")
@click.option("--concurrency", "-c", type=click.IntRange(1), default=1, show_default=True,
              help="Pool processes (prefork) or threads; ignored by --pool solo.")
@click.option("--pool", "-P", type=click.Choice(["prefork", "solo", "threads"]), default="prefork",
              show_default=True, help="prefork: one child process per job slot, time limits enforced; solo: "
                                      "jobs in the worker process itself (one per GPU).")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.option("--hostname", "-n", default=None, help="Worker node name, e.g. gpu0@%h.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(queues: str, concurrency: int, pool: str, loglevel: str, hostname: str | None,
           celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker for the celery job backend (FACEFORGE_JOB_BACKEND=celery).

    Settings come from FACEFORGE_* (FACEFORGE_REDIS_URL, the StyleGAN2 weights, job limits), the same
    as the web processes'. Arguments after the options go to Celery's worker unchanged.

    \b
    Examples:
      FACEFORGE_REDIS_URL=redis://127.0.0.1:6379/0 FACEFORGE_STYLEGAN2_WEIGHTS=default \\
        faceforge worker --queues light,heavy --concurrency 2
      CUDA_VISIBLE_DEVICES=0 faceforge worker --pool solo --queues heavy -n gpu0@%h
    """
    from faceforge.errors import FaceforgeError

    argv = worker_argv(queues, concurrency, pool, loglevel, hostname, celery_args)
    try:
        config = Config.from_env()
        app = create_worker_app(config)
    except (ValueError, FaceforgeError) as exc:
        raise click.ClickException(str(exc)) from None
    if config.job_backend != "celery":
        click.echo("note: FACEFORGE_JOB_BACKEND is not 'celery' here; web processes must set it to send "
                   "jobs to this worker", err=True)
    app.worker_main(argv)
