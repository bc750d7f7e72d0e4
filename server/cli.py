"""``faceforge serve``: run the HTTP server (Flask's development server).

For production use gunicorn instead (every worker process loads its own models on first use), with
the Celery job backend and ``faceforge worker`` processes (README, production)::

    FACEFORGE_JOB_BACKEND=celery FACEFORGE_REDIS_URL=redis://127.0.0.1:6379/0 \
        gunicorn -w 2 -k gevent --worker-connections 1000 -b 0.0.0.0:8000 'server:create_app()'
"""

from __future__ import annotations

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (0.0.0.0: all).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (0: pick a free one).")
@click.option("--threaded/--no-threaded", default=True, show_default=True,
              help="Serve each request on its own thread (models are shared and thread-safe).")
@click.option("--warm-up/--no-warm-up", default=None,
              help="Load the models before serving instead of at the first request "
                   "[default: FACEFORGE_WARM_UP or no].")
@click.option("--max-faces", type=click.IntRange(1), default=None,
              help="Most faces analysed per request [default: FACEFORGE_MAX_FACES or 10].")
@click.option("--emotion-weights", default=None,
              help="'default' or a mini_xception checkpoint path [default: FACEFORGE_EMOTION_WEIGHTS].")
@click.option("--new-api-key", "new_key_name", default=None, metavar="NAME",
              help="Print a new random API key for NAME and its FACEFORGE_API_KEYS entry (the key's "
                   "SHA-256), then exit.")
def serve(host: str, port: int, threaded: bool, warm_up: bool | None, max_faces: int | None,
          emotion_weights: str | None, new_key_name: str | None) -> None:
    """Serve the faceforge HTTP API (development server).

    Settings come from FACEFORGE_* environment variables (see server.config.Config); options given
    here override them.

    \b
    Examples:
      faceforge serve
      faceforge serve --host 0.0.0.0 --port 8080 --warm-up
      curl -F image=@photo.jpg http://127.0.0.1:8000/v1/emotion
    \b
    Production (README): FACEFORGE_JOB_BACKEND=celery FACEFORGE_REDIS_URL=redis://...
      gunicorn -w 2 -k gevent --worker-connections 1000 -b 0.0.0.0:8000 'server:create_app()'
      faceforge worker --queues light,heavy
    """
    if new_key_name is not None:
        from server.access import new_api_key

        try:
            key, entry = new_api_key(new_key_name)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--new-api-key") from None
        click.echo(f"API key (give it to {new_key_name}; it is not stored anywhere): {key}")
        click.echo(f"FACEFORGE_API_KEYS entry (comma-separate several): {entry}")
        return
    from server import create_app
    from server.config import Config
    from server.security import QuietRequestHandler

    overrides = {k: v for k, v in {"max_faces": max_faces, "emotion_weights": emotion_weights,
                                   "warm_up": warm_up}.items() if v is not None}
    try:
        config = Config.from_env(**overrides)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    app = create_app(config)
    if config.warm_up:  # already loaded by create_app; report the outcome
        for name, state in app.extensions["faceforge"]["hub"].warm_up().items():
            click.echo(f"{name}: {state}", err=True)
    app.run(host=host, port=port, threaded=threaded, debug=False, load_dotenv=False,
            request_handler=QuietRequestHandler)  # Server: faceforge, no Werkzeug/Python versions
