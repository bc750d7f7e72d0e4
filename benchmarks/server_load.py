"""Load on a real deployment: throughput and latency percentiles of ``/v1/emotion`` and of heavy jobs,
with the in-process and the Celery job backends (issue 15, deliverable 6).

Each backend runs as its documented processes on loopback, started and stopped here:

- ``inprocess``: ``gunicorn -w 1 -k gthread --threads 8 'server:create_app()'`` (the in-process job
  queue refuses more than one web process, and gevent).
- ``celery``: a throwaway ``redis-server`` (:mod:`server.local_redis`), ``gunicorn -w 2 -k gevent``
  (the README's production web command) and one ``faceforge worker`` (prefork, concurrency 1,
  queues ``light,heavy``).

Clients are threads of this process, one ``requests.Session`` (keep-alive) each:

1. **Light** (``/v1/emotion``, multipart upload of one portrait, default the 910x1137
   ``photos/portraits/obama.jpg`` of the shared data, else the astronaut): for each K in ``--clients``,
   K clients post back to back for ``--duration`` seconds. Per K: requests, throughput (req/s),
   latency p50/p95/p99 (ms), 429s, 503s, other errors.
2. **Heavy** (``/v1/generate``, one seed of the shipped 32 px StyleGAN2): K clients each submit
   ``--jobs`` jobs one after another and poll each to its end (every 50 ms); a 429 is retried after its
   ``Retry-After``. Per K: jobs, throughput (jobs/s), POST-to-succeeded p50/p95 (ms), 429s, failed,
   and **lost** jobs (a poll that answered 404 for an id the server gave out: must be 0).

**Compute limit**: the same decode + detect + align + classify of the portrait, in this process on
one thread (median of 20 after warm-up), gives the per-request compute time ``t``; ``cores / t`` is
what the machine could serve if the web stack cost nothing. The light throughput at the best K is
reported beside it (target: within 2x, i.e. ratio >= 0.5).

**Memory**: resident set size (VmRSS from ``/proc``) of every server process (gunicorn master and
workers, Celery worker and its pool) after each backend's run, MiB.

Writes ``<out>/server_load.{json,md,png}``; never asserts speed. On a shared 2-core machine the clients
compete with the server for the cores: read the figures as the whole machine's, not the server's alone.

Example::

    faceforge bench server-load --clients 1,4,16,64 --duration 15
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks import RESULTS_DIR, parse_names, write_results

NAME = "server_load"
BACKENDS = ("inprocess", "celery")


# ------------------------------------------------------------------------------------------ figures
def percentiles(values_ms: Sequence[float]) -> dict[str, float | None]:
    """``{"p50", "p95", "p99"}`` of ``values_ms`` (linear interpolation), ``None`` when empty."""
    if not values_ms:
        return {"p50": None, "p95": None, "p99": None}
    v = np.asarray(values_ms, np.float64)
    return {f"p{q}": round(float(np.percentile(v, q)), 1) for q in (50, 95, 99)}


def rss_mib(pids: Sequence[int]) -> float:
    """Sum of VmRSS of ``pids`` and all their descendants (Linux ``/proc``), MiB; 0 for unknown pids."""
    seen, stack, total = set(), list(pids), 0
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
            for task in Path(f"/proc/{pid}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(c) for c in children)
        except (OSError, StopIteration, ValueError):
            continue
    return round(total / 1024, 1)


def compute_time_ms(photo: bytes, repeats: int = 20) -> float:
    """Median ms of decode + detect + align + classify of ``photo`` on one thread in this process."""
    import torch

    from faceforge.emotion import EmotionRecognizer
    from faceforge.faces.detect import FaceDetector
    from faceforge.imaging import decode_image

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rec = EmotionRecognizer("default", detector=FaceDetector(num_threads=1))
        rec.predict(decode_image(photo))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            rec.predict(decode_image(photo))
            times.append((time.perf_counter() - t0) * 1e3)
    finally:
        torch.set_num_threads(threads)
    return float(statistics.median(times))


# ------------------------------------------------------------------------------------------ processes
class Deployment:
    """The processes of one backend on loopback (see the module docstring); a context manager."""

    def __init__(self, backend: str, folder: Path) -> None:
        from server.local_redis import free_port

        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend, self.folder = backend, folder
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "FACEFORGE_STYLEGAN2_WEIGHTS": "default", "FACEFORGE_TORCH_THREADS": "1",
                    "OMP_NUM_THREADS": "1", "FACEFORGE_MAX_JOBS": "256", "PYTHONUNBUFFERED": "1",
                    "FACEFORGE_JOB_BACKEND": backend}
        self.env.pop("SERVER_SOFTWARE", None)
        self.processes: list[subprocess.Popen] = []
        self.redis = None

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen:
        out = open(self.folder / log, "wb")
        process = subprocess.Popen(args, env=self.env, cwd=self.folder, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def __enter__(self) -> "Deployment":
        import requests

        if self.backend == "celery":
            from server.local_redis import start_redis

            self.redis = start_redis(self.folder / "redis")
            self.env["FACEFORGE_REDIS_URL"] = self.redis.url
            self._spawn([sys.executable, "-c", "from server.worker import worker; worker()", "--queues", "light,heavy",
                         "--pool", "prefork", "--concurrency", "1", "--loglevel", "WARNING"], "worker.log")
            web = ["-w", "2", "-k", "gevent"]
        else:
            web = ["-w", "1", "-k", "gthread", "--threads", "8"]
        self._spawn([sys.executable, "-m", "gunicorn", *web, "-b", f"127.0.0.1:{self.port}",
                     "server:create_app()"], "web.log")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"{self.backend}: a server process exited; see {self.folder}")
            try:
                if requests.get(self.base + "/readyz", timeout=5).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.backend}: the server was not ready within 120 s; see {self.folder}")

    def rss(self) -> float:
        return rss_mib([p.pid for p in self.processes])

    def __exit__(self, *exc: Any) -> None:
        from server.testing import stop_processes

        stop_processes(self.processes, timeout=20)
        if self.redis is not None:
            self.redis.stop()


# ------------------------------------------------------------------------------------------ load
def _light(base: str, photo: bytes, clients: int, duration_s: float) -> dict[str, Any]:
    import requests

    lat, codes, lock = [], [], threading.Lock()
    barrier = threading.Barrier(clients)

    def client() -> None:
        session = requests.Session()
        barrier.wait()
        end = time.monotonic() + duration_s
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                code = session.post(base + "/v1/emotion", files={"image": ("p.jpg", photo, "image/jpeg")},
                                    timeout=120).status_code
            except requests.RequestException:
                code = -1
            with lock:
                codes.append(code)
                if code == 200:
                    lat.append((time.perf_counter() - t0) * 1e3)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    ok = codes.count(200)
    return {"clients": clients, "requests": len(codes), "ok": ok, "throughput": round(ok / wall, 2),
            **percentiles(lat), "429": codes.count(429), "503": codes.count(503),
            "errors": len(codes) - ok - codes.count(429) - codes.count(503)}


def _heavy(base: str, clients: int, jobs: int) -> dict[str, Any]:
    import requests

    lat, counts, lock = [], {"succeeded": 0, "failed": 0, "lost": 0, "429": 0}, threading.Lock()

    def client(k: int) -> None:
        session = requests.Session()
        for j in range(jobs):
            t0 = time.perf_counter()
            while True:
                r = session.post(base + "/v1/generate", json={"seeds": [k * 1000 + j]}, timeout=60)
                if r.status_code != 429:
                    break
                with lock:
                    counts["429"] += 1
                time.sleep(float(r.headers.get("Retry-After", "1")))
            if r.status_code != 202:
                with lock:
                    counts["failed"] += 1
                continue
            job = r.json()["id"]
            while True:
                p = session.get(f"{base}/v1/jobs/{job}", timeout=60)
                if p.status_code == 404:
                    with lock:
                        counts["lost"] += 1
                    break
                status = p.json()["status"]
                if status in ("succeeded", "failed", "cancelled"):
                    with lock:
                        counts["succeeded" if status == "succeeded" else "failed"] += 1
                        if status == "succeeded":
                            lat.append((time.perf_counter() - t0) * 1e3)
                    break
                time.sleep(0.05)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    return {"clients": clients, "jobs": clients * jobs, "throughput": round(counts["succeeded"] / wall, 2),
            **{k: v for k, v in percentiles(lat).items() if k != "p99"}, **counts}


def run(clients: Sequence[int] = (1, 4, 16, 64), duration_s: float = 10.0, jobs: int = 2,
        backends: Sequence[str] = BACKENDS, photo: Path | None = None, out_dir: Path = RESULTS_DIR,
        heavy_clients: Sequence[int] | None = None) -> dict[str, Any]:
    """Run the benchmark (see the module docstring) and write its results.

    Args:
        clients: concurrent clients per light step.
        duration_s: seconds per light step.
        jobs: jobs per client in the heavy steps.
        backends: subset of :data:`BACKENDS`.
        photo: the uploaded portrait (default: shared obama.jpg, else the astronaut).
        out_dir: results folder.
        heavy_clients: concurrent clients per heavy step (default: ``clients`` capped at 16).

    Returns:
        The results document (also written as JSON).

    Raises:
        FileNotFoundError: the Celery backend without a redis-server binary.
        RuntimeError: a server process did not start.
    """
    from faceforge.cli.demo import default_photo_bytes

    if photo is None:
        from faceforge.data.paths import data_root

        candidate = data_root() / "photos" / "portraits" / "obama.jpg"
        photo_bytes, photo_name = (candidate.read_bytes(), candidate.name) if candidate.is_file() else \
            (default_photo_bytes(), "astronaut")
    else:
        photo_bytes, photo_name = Path(photo).read_bytes(), Path(photo).name
    heavy_clients = list(heavy_clients or [k for k in clients if k <= 16] or [1])
    t_ms = compute_time_ms(photo_bytes)
    cores = os.cpu_count() or 1
    doc: dict[str, Any] = {
        "machine": f"{platform.machine()}, {cores} cores", "python": platform.python_version(),
        "photo": photo_name, "duration_s": duration_s, "jobs_per_client": jobs,
        "compute_ms": round(t_ms, 1), "compute_limit_rps": round(cores * 1e3 / t_ms, 2), "backends": {}}
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix=f"faceforge-load-{backend}-") as tmp, \
                Deployment(backend, Path(tmp)) as dep:
            light = [_light(dep.base, photo_bytes, k, duration_s) for k in clients]
            heavy = [_heavy(dep.base, k, jobs) for k in heavy_clients]
            best = max(r["throughput"] for r in light)
            doc["backends"][backend] = {"light": light, "heavy": heavy, "rss_mib": dep.rss(),
                                        "best_light_rps": best,
                                        "ratio_to_compute_limit": round(best / doc["compute_limit_rps"], 3)}
            print(f"{backend}: best {best} req/s (compute limit {doc['compute_limit_rps']}), "
                  f"lost jobs {sum(h['lost'] for h in heavy)}, RSS {dep.rss()} MiB", flush=True)
    write_results(doc, out_dir, NAME, markdown, plot)
    return doc


def markdown(doc: dict[str, Any]) -> str:
    """The results as Markdown tables."""
    lines = [f"# Server load ({doc['machine']}, Python {doc['python']})", "",
             f"Photo `{doc['photo']}`; compute per request (decode + detect + align + classify, 1 thread): "
             f"{doc['compute_ms']} ms -> compute limit {doc['compute_limit_rps']} req/s on all cores. "
             f"Clients run on the same machine.", "",
             "| backend | clients | requests | req/s | p50 ms | p95 ms | p99 ms | 429 | 503 | errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, b in doc["backends"].items():
        for r in b["light"]:
            lines.append(f"| {name} | {r['clients']} | {r['requests']} | {r['throughput']} | {r['p50']} | {r['p95']} | "
                         f"{r['p99']} | {r['429']} | {r['503']} | {r['errors']} |")
    lines += ["", "| backend | best req/s | / compute limit | server RSS (MiB) |", "|---|---:|---:|---:|"]
    for name, b in doc["backends"].items():
        lines.append(f"| {name} | {b['best_light_rps']} | {b['ratio_to_compute_limit']} | {b['rss_mib']} |")
    lines += ["", f"Heavy jobs (`/v1/generate`, 1 seed, {doc['jobs_per_client']} per client, polled every 50 ms):", "",
              "| backend | clients | jobs | jobs/s | p50 ms | p95 ms | succeeded | failed | 429 | **lost** |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, b in doc["backends"].items():
        for r in b["heavy"]:
            lines.append(f"| {name} | {r['clients']} | {r['jobs']} | {r['throughput']} | {r['p50']} | {r['p95']} | "
                         f"{r['succeeded']} | {r['failed']} | {r['429']} | **{r['lost']}** |")
    return "\n".join(lines) + "\n"


def plot(doc: dict[str, Any], path: Path) -> None:
    """Light throughput and p95 latency against clients, one line per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for name, b in doc["backends"].items():
        ks = [r["clients"] for r in b["light"]]
        ax1.plot(ks, [r["throughput"] for r in b["light"]], "o-", label=name)
        ax2.plot(ks, [r["p95"] or np.nan for r in b["light"]], "o-", label=name)
    ax1.axhline(doc["compute_limit_rps"], ls="--", c="grey", label="compute limit")
    for ax, title in ((ax1, "/v1/emotion throughput (req/s)"), (ax2, "p95 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _main() -> Any:
    import click

    from benchmarks import parse_ints

    @click.command("server-load")
    @click.option("--clients", default="1,4,16,64", show_default=True, help="Concurrent clients per light step.")
    @click.option("--heavy-clients", default=None, help="Concurrent clients per heavy step [default: --clients up to 16].")
    @click.option("--duration", type=click.FloatRange(0.5), default=10.0, show_default=True, help="Seconds per light step.")
    @click.option("--jobs", type=click.IntRange(1), default=2, show_default=True, help="Heavy jobs per client.")
    @click.option("--backends", default=",".join(BACKENDS), show_default=True, help="inprocess, celery or both.")
    @click.option("--photo", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                  help="Portrait to upload [default: shared photos/portraits/obama.jpg, else the astronaut].")
    @click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
                  show_default=True)
    def main(clients: str, heavy_clients: str | None, duration: float, jobs: int, backends: str, photo: Path | None,
             out_dir: Path) -> None:
        """Throughput, latency percentiles, 429s, lost jobs and RSS of real deployments (gunicorn +
        in-process jobs; gunicorn gevent + Redis + a Celery worker), next to the compute limit."""
        chosen = parse_names(backends)
        if not chosen or any(b not in BACKENDS for b in chosen):
            raise click.BadParameter(f"backends must be among {', '.join(BACKENDS)}", param_hint="--backends")
        try:
            run(parse_ints(clients), duration, jobs, chosen, photo, out_dir,
                parse_ints(heavy_clients) if heavy_clients else None)
        except (FileNotFoundError, RuntimeError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None

    return main


main = _main()

if __name__ == "__main__":  # python -m benchmarks.server_load
    main()
