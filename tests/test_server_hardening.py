"""Response hardening (issue 15): security headers on every answer, no version banner from the
development server, and a cached ``/readyz`` that runs no inference once ready."""

from __future__ import annotations

import threading
import time

import pytest
from jsonschema import Draft202012Validator

from server import create_app, schemas
from server.api import health


def test_security_headers_on_answers_and_problems():
    client = create_app().test_client()
    for response in (client.get(schemas.HEALTH_PATH), client.get("/no/such/route"),
                     client.post("/v1/generate", json={"seeds": [1]})):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
    assert client.get("/no/such/route").status_code == 404


def test_dev_server_sends_no_version_banner():
    requests = pytest.importorskip("requests")
    from werkzeug.serving import make_server

    from server.security import QuietRequestHandler

    server = make_server("127.0.0.1", 0, create_app(), threaded=True, request_handler=QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        long_uri = requests.get(base + "/" + "x" * 70_000, timeout=10)  # answered by the HTTP parser
        long_header = requests.get(base + schemas.HEALTH_PATH, headers={"X-Big": "y" * 70_000}, timeout=10)
        for response in (requests.get(base + schemas.HEALTH_PATH, timeout=10), long_uri, long_header):
            banner = response.headers.get("Server", "")
            assert banner == "faceforge" and "Werkzeug" not in banner and "Python" not in banner
        for response, status in ((long_uri, 414), (long_header, 431)):
            assert response.status_code == status
            assert response.headers["Content-Type"] == "application/problem+json"
            body = response.json()
            assert body["status"] == status and body["type"] == "urn:faceforge:problem:bad-request"
            assert body["title"] and body["detail"] and "<" not in response.text
            Draft202012Validator(schemas.problem_schema()).validate(body)
    finally:
        server.shutdown()
        server.server_close()


def test_serve_command_uses_the_quiet_handler(monkeypatch):
    from click.testing import CliRunner
    from flask import Flask

    from server.cli import serve
    from server.security import QuietRequestHandler

    seen = {}
    monkeypatch.setattr(Flask, "run", lambda self, **kw: seen.update(kw))
    result = CliRunner().invoke(serve, ["--port", "0", "--no-warm-up"])
    assert result.exit_code == 0, result.output
    assert seen["request_handler"] is QuietRequestHandler and seen["port"] == 0


def test_readyz_is_cached_once_ready(monkeypatch):
    app = create_app()
    hub = app.extensions["faceforge"]["hub"]
    calls = []

    def warm_up():
        calls.append(time.monotonic())
        time.sleep(0.05)
        return {"detector": "ok", "mini_xception": "ok"}

    monkeypatch.setattr(hub, "warm_up", warm_up)
    client = app.test_client()
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(app.test_client().get(schemas.READY_PATH)))
               for _ in range(4)]  # concurrent first probes run one check
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    answers += [client.get(schemas.READY_PATH) for _ in range(20)]
    assert len(calls) == 1 and all(r.status_code == 200 for r in answers)
    assert answers[-1].get_json() == {"status": "ready", "models": {"detector": "ok", "mini_xception": "ok"}}


def test_readyz_rechecks_a_failure_after_a_while(monkeypatch):
    app = create_app()
    hub = app.extensions["faceforge"]["hub"]
    reports = [{"mini_xception": "urn:faceforge:problem:weights-not-found: absent"}, {"mini_xception": "ok"}]
    calls = []
    monkeypatch.setattr(hub, "warm_up", lambda: calls.append(1) or reports[min(len(calls) - 1, 1)])
    monkeypatch.setattr(health, "READY_RECHECK_S", 0.2)
    client = app.test_client()
    assert client.get(schemas.READY_PATH).status_code == 503
    assert client.get(schemas.READY_PATH).status_code == 503 and len(calls) == 1  # within the recheck delay
    time.sleep(0.25)
    assert client.get(schemas.READY_PATH).status_code == 200 and len(calls) == 2  # weights installed since
    assert client.get(schemas.READY_PATH).status_code == 200 and len(calls) == 2


@pytest.mark.slow
def test_gunicorn_parser_errors_are_problem_json(tmp_path):
    """A real gunicorn process: its own 400/414/431 answers (before the app sees the request) are
    problem+json with nosniff, not gunicorn's HTML page."""
    import json
    import os
    import socket
    import subprocess
    import sys

    pytest.importorskip("gunicorn")
    from redis_server import free_port

    port = free_port()
    log = tmp_path / "web.log"
    web = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "1", "-k", "gthread", "-b", f"127.0.0.1:{port}",
                            "--error-logfile", str(log), "server:create_app()"], cwd=tmp_path, env=dict(os.environ),
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def raw(request: bytes) -> tuple[int, dict[str, str], bytes]:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(request)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        return int(lines[0].split()[1]), headers, body

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = log.read_text() if log.exists() else ""
            assert web.poll() is None, text
            if "Booting worker" in text:
                try:
                    if raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200:
                        break
                except OSError:
                    pass
            time.sleep(0.1)
        cases = {414: b"GET /" + b"x" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                 431: b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 9000 + b"\r\n\r\n",
                 400: b"GET / HTTP/9.9 extra\r\nHost: x\r\n\r\n"}
        for status, request in cases.items():
            code, headers, body = raw(request)
            assert code == status, (code, body[:200])
            assert headers["Content-Type"] == "application/problem+json"
            assert headers["X-Content-Type-Options"] == "nosniff"
            problem = json.loads(body)
            assert problem["status"] == status and problem["type"] == "urn:faceforge:problem:bad-request"
            Draft202012Validator(schemas.problem_schema()).validate(problem)
            assert b"<html" not in body
    finally:
        web.terminate()
        web.wait(20)
