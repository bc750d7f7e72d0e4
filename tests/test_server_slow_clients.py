"""Slow clients cannot freeze the service (issue 15): 50 connections trickling a request at 1 byte/s
into the README's production web command (``gunicorn -w 2 -k gevent``) while ``/healthz`` answers
within a second, every time. (With ``-k gthread --threads 4`` the same 50 connections hold every
thread: all 20 probes waited more than 1 s, measured.) Real processes on loopback: ``redis-server``
and gunicorn with the celery job backend; no worker is needed for the probes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("gevent")
pytest.importorskip("gunicorn")
pytest.importorskip("celery")
requests = pytest.importorskip("requests")

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SLOW_CLIENTS = 50


def test_50_trickling_clients_do_not_freeze_healthz(tmp_path, redis_server):
    from redis_server import free_port

    from server.testing import stop_processes

    port = free_port()
    env = {**os.environ, "FACEFORGE_JOB_BACKEND": "celery", "FACEFORGE_REDIS_URL": redis_server.url}
    log = tmp_path / "web.log"
    web = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-k", "gevent", "--worker-connections",
                            "1000", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "2", "--error-logfile", str(log),
                            "server:create_app()"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                           stderr=subprocess.STDOUT)
    base, stop = f"http://127.0.0.1:{port}", threading.Event()
    sent = [0]

    def trickle() -> None:
        message = (b"POST /v1/emotion HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                   b"Content-Length: 100000\r\n\r\n" + b"a" * 100_000)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                for byte in message:
                    if stop.is_set():
                        return
                    s.send(bytes([byte]))
                    sent[0] += 1
                    time.sleep(1.0)
        except OSError:
            pass

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert web.poll() is None, log.read_text()
            try:
                if requests.get(base + "/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        threads = [threading.Thread(target=trickle, daemon=True) for _ in range(SLOW_CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(3)  # every slow connection is open and mid-request
        assert sent[0] >= 2 * SLOW_CLIENTS
        latencies = []
        for _ in range(20):
            t0 = time.monotonic()
            response = requests.get(base + "/healthz", timeout=5)
            latencies.append(time.monotonic() - t0)
            assert response.status_code == 200
            time.sleep(0.2)
        print(f"[slow clients] {SLOW_CLIENTS} trickling; /healthz max {max(latencies) * 1e3:.0f} ms, "
              f"median {sorted(latencies)[10] * 1e3:.0f} ms")
        assert max(latencies) < 1.0, latencies
    finally:
        stop.set()
        stop_processes([web], timeout=20)
