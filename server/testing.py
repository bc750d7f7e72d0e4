"""Run an app on a free loopback port in a background thread (demo, benchmarks, tests).

Example::

    from server import create_app
    from server.testing import serve_in_thread

    with serve_in_thread(create_app()) as base_url:      # e.g. "http://127.0.0.1:53211"
        requests.get(base_url + "/healthz")
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable, Iterator

from flask import Flask
from werkzeug.serving import make_server

from server.schemas import HEALTH_PATH


def wait_until_healthy(base_url: str, timeout: float = 10.0, process: "subprocess.Popen | None" = None) -> None:
    """Poll ``GET {base_url}/healthz`` until it answers 200.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000``.
        timeout: seconds.
        process: the server process, when this caller started it: if it exits, waiting stops at once.

    Raises:
        TimeoutError: no 200 within ``timeout`` seconds, or ``process`` exited (its exit code is named).
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise TimeoutError(f"the server process exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(base_url + HEALTH_PATH, timeout=1.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{base_url}{HEALTH_PATH} did not answer within {timeout:.0f} s ({last})")


def stop_processes(processes: Iterable["subprocess.Popen | None"], timeout: float = 20.0) -> None:
    """Stop server processes this caller started (gunicorn, Celery workers): SIGTERM to each one still
    running, all first so they drain together, then wait up to ``timeout`` seconds for each in turn and
    SIGKILL (then wait 5 s more) one that has not exited. ``None`` entries are skipped."""
    started = [p for p in processes if p is not None]
    for p in started:
        if p.poll() is None:
            p.terminate()
    for p in started:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def make_random_emotion_checkpoint(path: str | Path, seed: int = 0, version: str = "random-init-test") -> Path:
    """Write a valid mini_xception checkpoint of random weights to ``path`` and return the path.

    For API tests, demos and latency benchmarks when the trained weights are absent: the server
    behaves (and costs) the same, only the probabilities are meaningless. BatchNorm running
    statistics are randomized too, so outputs depend on the input.
    """
    import torch

    from faceforge.checkpoints import save_checkpoint
    from faceforge.models import create_model, get_spec

    spec = get_spec("mini_xception")
    torch.manual_seed(seed)
    model = create_model("mini_xception")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return save_checkpoint(path, model, "mini_xception", spec.kwargs, meta={"version": version})


@contextlib.contextmanager
def serve_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0, timeout: float = 10.0) -> Iterator[str]:
    """Serve ``app`` with werkzeug's threaded server in a daemon thread; yield its base URL.

    Args:
        app: the Flask app (e.g. ``create_app()``).
        host: interface to bind, loopback by default.
        port: TCP port; 0 picks a free one.
        timeout: seconds to wait for ``/healthz`` before giving up.

    Yields:
        ``"http://<host>:<port>"``, once ``/healthz`` answers. The server is shut down on exit.

    Raises:
        TimeoutError: the server did not become healthy in time.
    """
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no per-request access lines on the console
    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="faceforge-server", daemon=True)
    thread.start()
    base_url = f"http://{host}:{server.server_port}"
    try:
        wait_until_healthy(base_url, timeout)
        yield base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
