"""Heavy-job API over real HTTP: the round trip of every StyleGAN2 endpoint, and a few concurrent clients
(issue 5, deliverable 7).

The real Flask app (:func:`server.create_app` with ``stylegan2_weights`` = ``default``, the shipped 32 px
UTKFace generator, unless ``--weights`` names another) is served by werkzeug's threaded server in a
background thread on a free loopback port (:func:`server.testing.serve_in_thread`); this process talks
to it with ``requests``, one ``Session`` (keep-alive connection) per client, exactly as a phone app would
(minus the phone network). The server and the clients share this process and its CPU cores: on a small
machine the clients' Python competes with the jobs for the GIL, which is part of what is measured.

1. **Round trip per endpoint**, sequential, one job at a time: ``generate`` (1 seed), ``style-mix``
   (2 x 2 seeds, a 3 x 3 matrix), ``toonify`` (1 seed; only when ``--toon-weights`` is given, else the row
   says why it was skipped), ``project`` (a face photo uploaded as multipart, ``--project-steps``
   optimisation steps, aligned by the detector; skipped when there is no photo) and ``morph`` (latent
   mode, two seeds, 5 frames), ``edit`` (1 seed, age at strengths -2, 0, 2; the server's directions
   must belong to its generator, else the row is the 503) and ``makeup`` (the photo as target and
   reference, all three regions; skipped without a photo), ``swap`` (the face of ``--source-photo``, by
   default another person's portrait, onto the photo's faces; classical swap, Laplacian blend, AI-made PNG),
   ``restore`` (every face of the photo, ``method=auto``: GPEN when the server has GPEN weights, else
   classical) and ``virtual-model`` (the photo screened for faces, the shipped generator's person of seed 1
   swapped in, restored, marked; skipped without a photo). Per request: ``POST`` latency (ms, until the 202 is read), time from
   sending the ``POST`` to seeing ``succeeded`` while polling ``GET /v1/jobs/<id>`` every ``--poll-ms``
   (ms), the size of that final ``GET`` body (JSON with base64 PNGs, bytes) and of the PNGs in it
   (bytes), and the job's own ``timings_ms`` (``queued``, ``run``) as the server reports them. The first
   ``--warmup`` requests of each endpoint are reported apart (``first_ms``: it includes loading the
   generator, or the face detector for ``project``); the next ``--repeats`` give the median (and range).
   ``overhead`` = POST->succeeded minus the server's ``run``: HTTP, JSON, queue hand-off and polling
   granularity (on average half a poll interval).
2. **Concurrent clients**: for each K in ``--clients`` (default 1, 2, 4, 8), K threads, each with its own
   connection, wait on a barrier and submit one ``generate`` job of ``--burst-seeds`` images at the
   same instant, against ``job_workers`` = ``--workers`` (default 1) and ``max_jobs`` = ``--max-jobs``
   (default 4; ``max_jobs`` counts *waiting* jobs, the running ones are extra). Reported per K: how many
   were accepted (202) and refused (429, with their ``Retry-After`` values), POST latency, and for the
   accepted ones the time from POST to ``succeeded`` (median, max) and whether every one succeeded.
   Bursts run one after another on the same server, each after the previous one has drained.
3. **Disconnecting clients**: a client submits a job, reads the 202 and closes its connection without
   ever polling; another client then submits and polls its own job to the end; only then is the first
   job looked up (once). A second client hangs up right after sending its POST, before the answer
   arrives (raw socket); the server's job counts show whether that job ran too. Jobs belong to the
   queue, not to the request, so both must finish.

Writes ``<out>/<name>.json`` (machine, torch threads, settings, rows), ``<name>.md`` (tables) and
optionally ``<name>.png``. It never asserts speed. Example::

    python -m benchmarks.jobs_roundtrip --repeats 3 --clients 1,2,4,8 --max-jobs 4
    faceforge bench jobs-roundtrip ...   (same options)
"""

from __future__ import annotations

import base64
import json
import platform
import socket
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

import numpy as np

from benchmarks import RESULTS_DIR, parse_ints, write_results

DEFAULT_NAME = "jobs_roundtrip"
DEFAULT_PHOTO = Path("photos") / "portraits" / "obama.jpg"
"""The project photo, relative to the shared data folder (``$FACEFORGE_DATA`` or ``../shared/data``)."""
DEFAULT_SOURCE_PHOTO = "biden.jpg"
"""The swap's source face (another person than :data:`DEFAULT_PHOTO`), in the same shared-data folder."""
ENDPOINTS = ("generate", "style-mix", "toonify", "project", "morph", "edit", "makeup", "swap", "restore",
             "virtual-model")
MORPH_T = (0.0, 0.25, 0.5, 0.75, 1.0)
EDIT_STRENGTHS = (-2.0, 0.0, 2.0)
TERMINAL = ("succeeded", "failed")
RESULT_KEYS = ("method", "restored", "swapped", "status")
"""Fields of a job's ``result.data`` the tables report as its outcome (e.g. which restorer ``auto`` chose)."""


class JobRequestError(RuntimeError):
    """A job request did not go as the benchmark expects (no 202, or the job did not finish in time).

    Attributes:
        status: the HTTP status of the answer (0 when there was none).
        problem: the answer's RFC 9457 problem body, when it has one.
        retry_after: the answer's ``Retry-After`` (seconds), or ``None``.
    """

    def __init__(self, message: str, status: int = 0, problem: Mapping[str, Any] | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.problem, self.retry_after = status, dict(problem or {}), retry_after


def default_photo() -> Path | None:
    """The default project photo in the shared data, or ``None`` when it is absent."""
    from faceforge.data.paths import data_root

    path = data_root() / DEFAULT_PHOTO
    return path if path.is_file() else None


def endpoint_requests(project_steps: int = 20, photo: bytes | None = None,
                      source_photo: bytes | None = None) -> dict[str, dict[str, Any]]:
    """The request of each endpoint: ``requests.post`` keyword arguments (``json``, or ``data`` + ``files``).

    ``project``, ``makeup``, ``restore`` and ``virtual-model`` are absent when ``photo`` (the uploaded file's
    bytes) is ``None``; ``swap`` also when ``source_photo`` (another person's face) is ``None``.
    """
    reqs: dict[str, dict[str, Any]] = {
        "generate": {"json": {"seeds": [1], "psi": 0.7}},
        "style-mix": {"json": {"row_seeds": [1, 2], "col_seeds": [3, 4], "psi": 0.7}},
        "toonify": {"json": {"seeds": [1], "psi": 0.7}},
        "morph": {"json": {"seeds": [1, 2], "t": list(MORPH_T), "psi": 0.7}},
        "edit": {"json": {"seeds": [1], "attribute": "age", "strengths": list(EDIT_STRENGTHS), "psi": 0.7}},
    }
    if photo is not None:
        reqs["project"] = {"data": {"steps": str(project_steps)}, "files": {"image": ("photo", photo)}}
        # the photo's own makeup onto itself: the cost (detection, Face Mesh, transfer on both), not an effect
        reqs["makeup"] = {"data": {"regions": "lips,eyes,skin"},
                          "files": {"target": ("target", photo), "reference": ("reference", photo)}}
        reqs["restore"] = {"data": {"method": "auto"}, "files": {"image": ("image", photo)}}
        reqs["virtual-model"] = {"data": {"source_seed": "1", "restore": "auto"},
                                 "files": {"image": ("image", photo)}}
        if source_photo is not None:
            reqs["swap"] = {"data": {"blend": "laplacian"},
                            "files": {"source": ("source", source_photo), "target": ("target", photo)}}
    return reqs


def describe_request(task: str, req: Mapping[str, Any]) -> str:
    """A short human-readable summary of a request, for the tables."""
    if "json" in req:
        return ", ".join(f"{k} {v}" for k, v in req["json"].items() if k != "psi")
    upload = sum(len(f[1]) for f in req.get("files", {}).values())
    fields = ", ".join(f"{k} {v}" for k, v in req.get("data", {}).items())
    return f"photo {upload:,} B, {fields}"


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


def _problem(response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"detail": response.text[:200]}
    return body if isinstance(body, dict) else {"detail": str(body)[:200]}


def submit(http, base_url: str, task: str, req: Mapping[str, Any], timeout_s: float = 60.0) -> dict[str, Any]:
    """``POST /v1/<task>`` once.

    Args:
        http: a ``requests.Session`` (or the ``requests`` module).
        base_url: e.g. ``"http://127.0.0.1:5000"``.
        task: a job task (``generate``, ``style-mix``, ...).
        req: ``requests.post`` keyword arguments (see :func:`endpoint_requests`).
        timeout_s: socket timeout in seconds.

    Returns:
        ``{"status": HTTP status, "post_ms": latency until the answer is read (ms), "t0": perf_counter
        when the request was sent, "url": the job URL (202 only), "id", "retry_after": the header
        (seconds, 429 only), "problem": the problem body (non-202)}``.
    """
    from server.schemas import task_path

    t0 = time.perf_counter()
    response = http.post(base_url + task_path(task), timeout=timeout_s, **req)
    post_ms = _ms(t0)
    out: dict[str, Any] = {"status": response.status_code, "post_ms": post_ms, "t0": t0}
    if response.status_code == 202:
        body = response.json()
        out.update(url=response.headers["Location"], id=body["id"])
    else:
        out["problem"] = _problem(response)
        if "Retry-After" in response.headers:
            out["retry_after"] = int(response.headers["Retry-After"])
    return out


def poll(http, base_url: str, url: str, poll_s: float = 0.02, timeout_s: float = 300.0) -> dict[str, Any]:
    """Poll ``GET <url>`` every ``poll_s`` seconds until the job is ``succeeded`` or ``failed``.

    Returns:
        ``{"body": the final job JSON, "t_done": perf_counter when it was read, "polls": GETs made,
        "result_bytes": size of the final GET body (bytes), "png_bytes": size of its decoded PNGs
        (bytes), "images": their count}``.

    Raises:
        JobRequestError: a GET did not answer 200, or the job did not finish within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    polls = 0
    while True:
        response = http.get(base_url + url, timeout=max(timeout_s, 1.0))
        polls += 1
        if response.status_code != 200:
            raise JobRequestError(f"GET {url} answered {response.status_code}", response.status_code,
                                  _problem(response))
        body = response.json()
        if body["status"] in TERMINAL:
            t_done = time.perf_counter()
            images = (body.get("result") or {}).get("images") or []
            png = sum(len(base64.b64decode(img["png_base64"])) for img in images)
            return {"body": body, "t_done": t_done, "polls": polls, "result_bytes": len(response.content),
                    "png_bytes": png, "images": len(images)}
        if time.monotonic() > deadline:
            raise JobRequestError(f"job {url} is still {body['status']} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def polite_round_trip(http, base_url: str, task: str, req: Mapping[str, Any], poll_s: float = 0.02,
                      timeout_s: float = 300.0) -> dict[str, Any]:
    """:func:`round_trip` as a well-behaved client does it: a 429 (queue full) is retried after its
    ``Retry-After`` seconds (1 s without one) until ``timeout_s`` has passed. For the jobs a benchmark needs
    finished whatever else is queued (e.g. while the previous job is still waiting on a busy machine); the load
    rows count 429s and do not use this.

    Raises:
        JobRequestError: any answer other than 202 / 429, a 429 past ``timeout_s``, or a job that did not
            finish in time.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return round_trip(http, base_url, task, req, poll_s, timeout_s)
        except JobRequestError as exc:
            if exc.status != 429 or time.monotonic() > deadline:
                raise
            time.sleep(float(exc.retry_after or 1))


def round_trip(http, base_url: str, task: str, req: Mapping[str, Any], poll_s: float = 0.02,
               timeout_s: float = 300.0) -> dict[str, Any]:
    """One job from ``POST`` to ``succeeded``: submit, then poll until it is finished.

    Returns:
        ``{"status": the job's final status, "post_ms", "done_ms": POST sent -> final status seen (ms),
        "polls", "result_bytes", "png_bytes" (bytes), "images", "queued_ms", "run_ms": the server's own
        timings (ms), "error": the job's problem title or None}``.

    Raises:
        JobRequestError: the POST was not answered 202, or the job did not finish within ``timeout_s``.
    """
    sub = submit(http, base_url, task, req, timeout_s)
    if sub["status"] != 202:
        problem = sub.get("problem", {})
        raise JobRequestError(f"POST {task} answered {sub['status']}: {problem.get('detail') or problem}",
                              sub["status"], problem, sub.get("retry_after"))
    done = poll(http, base_url, sub["url"], poll_s, timeout_s)
    body, timings = done["body"], done["body"].get("timings_ms") or {}
    return {"status": body["status"], "post_ms": sub["post_ms"], "done_ms": (done["t_done"] - sub["t0"]) * 1e3,
            "polls": done["polls"], "result_bytes": done["result_bytes"], "png_bytes": done["png_bytes"],
            "images": done["images"], "queued_ms": timings.get("queued"), "run_ms": timings.get("run"),
            "error": (body.get("error") or {}).get("title"), "data": (body.get("result") or {}).get("data") or {}}


def _median(values: Sequence[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return round(float(np.median(v)), 3) if v else None


def endpoint_row(task: str, req: Mapping[str, Any], runs: list[dict[str, Any]], warm: list[dict[str, Any]]) -> dict:
    """Summary of one endpoint's timed runs: medians (ms, bytes) and ranges; ``first_ms`` from the warm-up."""
    ok = [r for r in runs if r["status"] == "succeeded"]
    row: dict[str, Any] = {"endpoint": task, "request": describe_request(task, req),
                           "status": "ok" if len(ok) == len(runs) else "failed", "repeats": len(runs),
                           "succeeded": len(ok), "first_ms": round(warm[0]["done_ms"], 3) if warm else None}
    for key in ("post_ms", "done_ms", "queued_ms", "run_ms", "polls", "result_bytes", "png_bytes", "images"):
        row[key] = _median([r[key] for r in runs])
    done = [r["done_ms"] for r in runs]
    row["done_ms_range"] = [round(min(done), 3), round(max(done), 3)] if done else None
    row["overhead_ms"] = _median([r["done_ms"] - r["run_ms"] for r in runs if r["run_ms"] is not None])
    errors = sorted({r["error"] for r in runs if r["error"]})
    if errors:
        row["errors"] = errors
    # what the server did, where the request leaves it open (restore method auto, faces swapped)
    data = ok[-1].get("data", {}) if ok else {}
    outcome = {k: data[k] for k in RESULT_KEYS if data.get(k) is not None}
    if outcome:
        row["outcome"] = outcome
    return row


def measure_endpoints(base_url: str, reqs: Mapping[str, Mapping[str, Any]], skipped: Mapping[str, str],
                      repeats: int, warmup: int, poll_s: float, timeout_s: float) -> list[dict[str, Any]]:
    """Sequential round trips of every endpoint in :data:`ENDPOINTS`: one row each (``status`` ``ok``,
    ``failed`` (a job failed), ``error`` (the POST was refused; ``reason`` holds the problem) or
    ``skipped`` (``reason`` says why))."""
    import requests

    rows = []
    with requests.Session() as http:
        for task in ENDPOINTS:
            if task in skipped:
                rows.append({"endpoint": task, "status": "skipped", "reason": skipped[task]})
                print(f"{task:<10} skipped: {skipped[task]}", flush=True)
                continue
            req = reqs[task]
            try:
                warm = [round_trip(http, base_url, task, req, poll_s, timeout_s) for _ in range(warmup)]
                runs = [round_trip(http, base_url, task, req, poll_s, timeout_s) for _ in range(repeats)]
            except JobRequestError as exc:
                rows.append({"endpoint": task, "request": describe_request(task, req), "status": "error",
                             "http_status": exc.status, "reason": str(exc)})
                print(f"{task:<10} error: {exc}", flush=True)
                continue
            row = endpoint_row(task, req, runs, warm)
            rows.append(row)
            print(f"{task:<10} POST {row['post_ms']:7.1f} ms  -> succeeded {row['done_ms']:8.1f} ms  "
                  f"(job run {row['run_ms']} ms)  {row['result_bytes']:,.0f} B", flush=True)
    return rows


def burst(base_url: str, clients: int, req: Mapping[str, Any], task: str = "generate", poll_s: float = 0.02,
          timeout_s: float = 300.0) -> dict[str, Any]:
    """``clients`` threads submit one job each at the same instant (a barrier), then poll their own job.

    Returns:
        The row: ``clients``, ``accepted`` (202), ``rejected`` (429), ``other`` (any other answer),
        ``retry_after_s`` (the distinct ``Retry-After`` values of the 429s, seconds), ``post_ms_median``,
        ``post_ms_max``, ``done_ms_median`` and ``done_ms_max`` (POST -> succeeded of the accepted jobs, ms),
        ``run_ms_median`` (server), ``succeeded``, ``all_accepted_succeeded``, ``errors`` (client-side
        exceptions, e.g. a timeout).
    """
    import requests

    barrier = threading.Barrier(clients)
    results: list[dict[str, Any]] = [{} for _ in range(clients)]

    def client(i: int) -> None:
        with requests.Session() as http:
            try:
                http.get(base_url + "/healthz", timeout=timeout_s)  # open the connection before the barrier
                barrier.wait(timeout_s)
                sub = submit(http, base_url, task, req, timeout_s)
                results[i] = sub
                if sub["status"] == 202:
                    done = poll(http, base_url, sub["url"], poll_s, timeout_s)
                    results[i].update(final=done["body"]["status"], done_ms=(done["t_done"] - sub["t0"]) * 1e3,
                                      run_ms=(done["body"].get("timings_ms") or {}).get("run"))
            except Exception as exc:  # noqa: BLE001 - reported in the row, the other clients go on
                results[i]["exception"] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=client, args=(i,), name=f"bench-client-{i}") for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = [r for r in results if r.get("status") == 202]
    rejected = [r for r in results if r.get("status") == 429]
    done = [r["done_ms"] for r in accepted if "done_ms" in r]
    posts = [r["post_ms"] for r in results if "post_ms" in r]
    succeeded = sum(r.get("final") == "succeeded" for r in accepted)
    return {"clients": clients, "accepted": len(accepted), "rejected": len(rejected),
            "other": clients - len(accepted) - len(rejected),
            "retry_after_s": sorted({r["retry_after"] for r in rejected if "retry_after" in r}),
            "rejected_without_retry_after": sum("retry_after" not in r for r in rejected),
            "post_ms_median": _median(posts), "post_ms_max": round(max(posts), 3) if posts else None,
            "done_ms_median": _median(done), "done_ms_max": round(max(done), 3) if done else None,
            "run_ms_median": _median([r.get("run_ms") for r in accepted]),
            "succeeded": succeeded, "all_accepted_succeeded": succeeded == len(accepted),
            "errors": [r["exception"] for r in results if "exception" in r]}


def _raw_post_and_hang_up(base_url: str, path: str, body: bytes) -> None:
    """Send ``POST path`` with a JSON body on a raw socket and close it without reading the answer."""
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        head = (f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode("ascii")
        sock.sendall(head + body)


def disconnecting_clients(base_url: str, jobs, req: Mapping[str, Any], task: str = "generate",
                          poll_s: float = 0.02, timeout_s: float = 300.0) -> list[dict[str, Any]]:
    """Jobs whose client goes away (see the module docstring, part 3): one row per kind of client.

    Args:
        jobs: the app's :class:`~server.jobs.JobQueue` (for the job counts of the client that hangs up
            before it learns its job id).

    Returns:
        Rows ``{"client", "accepted", "status_at_end", "succeeded", "run_ms", "note"}``.

    Raises:
        JobRequestError: the polling client's job was refused or did not finish in time.
    """
    import requests

    from server.schemas import task_path

    rows = []
    # 1. reads the 202, closes its connection, never polls; looked up once at the end
    with requests.Session() as gone:
        sub = submit(gone, base_url, task, req, timeout_s)
    with requests.Session() as http:
        polite_round_trip(http, base_url, task, req, poll_s, timeout_s)  # another client's job, polled to the end
        if sub["status"] == 202:
            body = http.get(base_url + sub["url"], timeout=timeout_s).json()
            rows.append({"client": "closed its connection after the 202, never polled", "accepted": True,
                         "status_at_end": body["status"], "succeeded": body["status"] == "succeeded",
                         "run_ms": (body.get("timings_ms") or {}).get("run"),
                         "note": "looked up once, after a later job had finished"})
        else:
            rows.append({"client": "closed its connection after the 202, never polled", "accepted": False,
                         "status_at_end": None, "succeeded": False, "run_ms": None,
                         "note": f"POST answered {sub['status']}"})
        # 2. hangs up before the answer: the job id never reaches it; the server's counts tell
        before = jobs.stats()
        _raw_post_and_hang_up(base_url, task_path(task), json.dumps(req["json"]).encode())
        appear_by = time.monotonic() + min(timeout_s, 10.0)  # the server has the whole request at once
        finish_by = time.monotonic() + timeout_s
        counts = jobs.stats()
        while True:
            counts = jobs.stats()
            arrived = sum(counts.values()) > sum(before.values())
            if arrived and counts["queued"] == counts["running"] == 0:
                break
            if time.monotonic() > (finish_by if arrived else appear_by):
                break
            time.sleep(poll_s)
        new = sum(counts.values()) - sum(before.values())
        healthy = http.get(base_url + "/healthz", timeout=timeout_s).status_code == 200
        rows.append({"client": "hung up right after sending its POST", "accepted": new == 1,
                     "status_at_end": "succeeded" if counts["succeeded"] > before["succeeded"] else
                     ("failed" if counts["failed"] > before["failed"] else None),
                     "succeeded": counts["succeeded"] == before["succeeded"] + 1, "run_ms": None,
                     "note": f"{new} new job(s) in the server's counts; server healthy afterwards: {healthy}"})
    return rows


def run(weights: str = "default", toon_weights: str | None = None, photo: str | Path | None = "default",
        source_photo: str | Path | None = "default", repeats: int = 3, warmup: int = 1, project_steps: int = 20, clients: Sequence[int] = (1, 2, 4, 8),
        max_jobs: int = 4, workers: int = 1, burst_seeds: int = 4, poll_ms: float = 20.0, threads: int | None = 1,
        timeout_s: float = 300.0, out_dir: Path = RESULTS_DIR, name: str = DEFAULT_NAME,
        plot: bool = True) -> dict[str, Any]:
    """Round trip of every heavy endpoint, then bursts of concurrent clients; write json/md (and png).

    Args:
        weights: ``stylegan2_weights`` of the server: ``"default"`` (the shipped 32 px generator) or a path.
        toon_weights: ``stylegan2_toon_weights``; ``None`` skips ``toonify``.
        photo: the photo ``project`` uploads: a path, ``"default"`` (:data:`DEFAULT_PHOTO` in the shared
            data) or ``None``; ``project``, ``makeup``, ``restore`` and ``virtual-model`` are skipped (with the
            reason) when there is none.
        source_photo: the source face of ``swap`` (another person): a path, ``"default"``
            (:data:`DEFAULT_SOURCE_PHOTO` next to the default photo) or ``None`` (``swap`` is skipped).
        repeats: timed round trips per endpoint (median).
        warmup: untimed round trips per endpoint before them (the first one is reported as ``first_ms``).
        project_steps: optimisation steps of ``project``.
        clients: burst sizes K.
        max_jobs: the server's ``max_jobs`` (waiting jobs; one more is answered 429).
        workers: the server's ``job_workers``.
        burst_seeds: images per ``generate`` job of the bursts and the disconnect checks.
        poll_ms: polling interval of ``GET /v1/jobs/<id>`` in milliseconds.
        threads: PyTorch CPU threads of this process (and the server's ``torch_threads``); ``None``
            leaves torch's default.
        timeout_s: seconds any one job may take before the benchmark gives up on it.
        out_dir, name: where to write ``<name>.json|md|png``.
        plot: write the PNG (matplotlib).

    Returns:
        The JSON document (``{"machine", "torch", "threads", "settings", "endpoints": [...],
        "concurrency": [...], "disconnects": [...]}``).

    Raises:
        ValueError: a setting out of range (``repeats``, ``clients``, ``max_jobs``, ``workers``, ...).
        FileNotFoundError: ``photo`` or ``source_photo`` is a path that does not exist.
        JobRequestError: the disconnect check's own job was refused or timed out.
        TimeoutError: the server did not start.
    """
    import requests
    import torch

    from server import create_app
    from server.testing import serve_in_thread

    if repeats < 1 or warmup < 0 or project_steps < 1 or burst_seeds < 1 or poll_ms <= 0 or max_jobs < 1 \
            or workers < 1 or not clients or min(clients) < 1:
        raise ValueError("repeats, project_steps, burst_seeds, max_jobs, workers and every K must be >= 1, "
                         "warmup >= 0 and poll_ms > 0")
    poll_s = poll_ms / 1e3
    skipped: dict[str, str] = {}
    photo_path: Path | None
    photo_tasks = ("project", "makeup", "swap", "restore", "virtual-model")
    if photo == "default":
        photo_path = default_photo()
        if photo_path is None:
            skipped.update(dict.fromkeys(photo_tasks, f"no photo: shared data has no {DEFAULT_PHOTO} (set "
                                                      "FACEFORGE_DATA or pass --photo)"))
    elif photo is None:
        photo_path = None
        skipped.update(dict.fromkeys(photo_tasks, "no photo given"))
    else:
        photo_path = Path(photo)
        if not photo_path.is_file():
            raise FileNotFoundError(f"photo not found: {photo_path}")
    source_path: Path | None = None
    if source_photo == "default":
        shared = default_photo()
        source_path = shared.parent / DEFAULT_SOURCE_PHOTO if shared else None
        if source_path is None or not source_path.is_file():
            source_path = None
            skipped.setdefault("swap", f"no source face: shared data has no {DEFAULT_SOURCE_PHOTO} next to "
                                       f"{DEFAULT_PHOTO} (pass --source-photo)")
    elif source_photo is None:
        skipped.setdefault("swap", "no source photo given")
    else:
        source_path = Path(source_photo)
        if not source_path.is_file():
            raise FileNotFoundError(f"source photo not found: {source_path}")
    if not toon_weights:
        skipped["toonify"] = "no cartoon fine-tuned generator given (--toon-weights)"
    reqs = endpoint_requests(project_steps, photo_path.read_bytes() if photo_path else None,
                             source_path.read_bytes() if source_path else None)
    burst_req = {"json": {"seeds": list(range(burst_seeds)), "psi": 0.7}}
    config = {"stylegan2_weights": weights, "stylegan2_toon_weights": toon_weights, "job_workers": workers,
              "max_jobs": max_jobs, "torch_threads": threads, "max_images": max(16, burst_seeds)}
    if threads:
        torch.set_num_threads(threads)
    app = create_app(config)
    jobs = app.extensions["faceforge"]["jobs"]
    try:
        with serve_in_thread(app, timeout=60) as base_url:
            endpoints = measure_endpoints(base_url, reqs, skipped, repeats, warmup, poll_s, timeout_s)
            with requests.Session() as http:  # warm the burst job (model loaded, first-call costs paid)
                round_trip(http, base_url, "generate", burst_req, poll_s, timeout_s)
            concurrency = []
            for k in clients:
                row = burst(base_url, int(k), burst_req, "generate", poll_s, timeout_s)
                concurrency.append(row)
                print(f"K={k:<3} 202: {row['accepted']}  429: {row['rejected']}  other: {row['other']}  "
                      f"done median {row['done_ms_median']} ms, max {row['done_ms_max']} ms, "
                      f"all succeeded: {row['all_accepted_succeeded']}", flush=True)
            disconnects = disconnecting_clients(base_url, jobs, burst_req, "generate", poll_s, timeout_s)
            for row in disconnects:
                print(f"disconnect: {row['client']}: {row['status_at_end']} ({row['note']})", flush=True)
    finally:
        jobs.close()
    doc = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine(),
           "processor": platform.processor() or None, "python": platform.python_version(),
           "torch": torch.__version__, "threads": torch.get_num_threads(),
           "settings": {"weights": weights if weights == "default" else Path(weights).name,
                        "toon_weights": None if not toon_weights else
                        (toon_weights if toon_weights == "default" else Path(toon_weights).name),
                        "photo": photo_path.name if photo_path else None,
                        "source_photo": source_path.name if source_path else None, "repeats": repeats,
                        "warmup": warmup,
                        "project_steps": project_steps, "clients": [int(k) for k in clients], "max_jobs": max_jobs,
                        "job_workers": workers, "burst_seeds": burst_seeds, "poll_ms": poll_ms,
                        "server": "werkzeug threaded, loopback, same process", "client": "requests.Session"},
           "endpoints": endpoints, "concurrency": concurrency, "disconnects": disconnects}
    write_results(doc, out_dir, name, markdown, write_plot if plot else None)
    return doc


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(doc: dict[str, Any]) -> str:
    """The results as Markdown: settings, the per-endpoint table, the concurrency table, the disconnects."""
    s = doc["settings"]
    lines = [f"# Job API round trip over HTTP ({doc['date']})", "",
             f"{doc['machine']} CPU, torch {doc['torch']} with {doc['threads']} thread(s); {s['server']}; "
             f"client {s['client']}. Generator: {s['weights']} (toon: {s['toon_weights'] or 'none'}); "
             f"job_workers {s['job_workers']}, max_jobs {s['max_jobs']} (waiting jobs); polling every "
             f"{s['poll_ms']:g} ms.", "",
             f"## Round trip per endpoint (sequential; median of {s['repeats']} after {s['warmup']} warm-up)", "",
             "POST = until the 202 is read; POST→succeeded = until polling sees `succeeded`; run = the job's "
             "own `timings_ms.run`; overhead = POST→succeeded − run (HTTP, queue hand-off, polling); first = "
             "the warm-up request (loads the generator, or the face detector for project); result = the final "
             "GET body (JSON, base64 PNGs).", "",
             "| endpoint | request | POST ms | POST→succeeded ms (range) | run ms | overhead ms | first ms "
             "| result bytes | PNG bytes | images |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in doc["endpoints"]:
        if r["status"] in ("skipped", "error"):
            lines.append(f"| {r['endpoint']} | {r['status']}: {r['reason']} | | | | | | | | |")
            continue
        rng = r["done_ms_range"]
        status = "" if r["status"] == "ok" else f" ({r['succeeded']}/{r['repeats']} succeeded: " \
                                                 f"{'; '.join(r.get('errors', []))})"
        if r.get("outcome"):
            status += " → " + ", ".join(f"{k} {v}" for k, v in r["outcome"].items())
        lines.append(f"| {r['endpoint']} | {r['request']}{status} | {_f(r['post_ms'])} | {_f(r['done_ms'])} "
                     f"({_f(rng[0], 0)}–{_f(rng[1], 0)}) | {_f(r['run_ms'])} | {_f(r['overhead_ms'])} | "
                     f"{_f(r['first_ms'], 0)} | {r['result_bytes']:,.0f} | {r['png_bytes']:,.0f} | "
                     f"{r['images']:.0f} |")
    lines += ["", f"## Concurrent clients (generate, {s['burst_seeds']} images per job; "
                  f"job_workers {s['job_workers']}, max_jobs {s['max_jobs']})", "",
              "K clients submit at the same instant (barrier), each on its own connection, then poll their own "
              "job. done = POST → `succeeded` of the accepted jobs.", "",
              "| K | 202 | 429 | other | Retry-After s | POST ms median / max | done ms median / max "
              "| run ms median | accepted jobs succeeded |",
              "| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |"]
    for r in doc["concurrency"]:
        ra = ", ".join(map(str, r["retry_after_s"])) or "-"
        if r["rejected_without_retry_after"]:
            ra += f" ({r['rejected_without_retry_after']} without)"
        ok = f"{r['succeeded']}/{r['accepted']}" + (" ✓" if r["all_accepted_succeeded"] else " ✗")
        if r["errors"]:
            ok += f"; client errors: {'; '.join(r['errors'])}"
        lines.append(f"| {r['clients']} | {r['accepted']} | {r['rejected']} | {r['other']} | {ra} | "
                     f"{_f(r['post_ms_median'])} / {_f(r['post_ms_max'])} | {_f(r['done_ms_median'])} / "
                     f"{_f(r['done_ms_max'])} | {_f(r['run_ms_median'])} | {ok} |")
    lines += ["", "## Clients that disconnect", "", "| client | job accepted | status at the end | note |",
              "| --- | --- | --- | --- |"]
    for r in doc["disconnects"]:
        lines.append(f"| {r['client']} | {'yes' if r['accepted'] else 'no'} | {r['status_at_end'] or '-'} | "
                     f"{r['note']} |")
    return "\n".join(lines) + "\n"


def write_plot(doc: dict[str, Any], path: Path) -> None:
    """Left: POST→succeeded per endpoint split into the job's run and the overhead. Right: completion
    time of accepted jobs (median, max) and accepted/refused counts against K."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    rows = [r for r in doc["endpoints"] if r["status"] not in ("skipped", "error")]
    names = [r["endpoint"] for r in rows]
    run = [r["run_ms"] or 0.0 for r in rows]
    over = [max((r["done_ms"] or 0.0) - (r["run_ms"] or 0.0), 0.0) for r in rows]
    ax1.bar(names, run, label="job run (server)")
    ax1.bar(names, over, bottom=run, label="HTTP + queue + polling")
    ax1.set_ylabel("ms, POST → succeeded (median)")
    ax1.set_title("Round trip per endpoint")
    ax1.legend(fontsize=8)
    conc = doc["concurrency"]
    ks = [r["clients"] for r in conc]
    ax2.plot(ks, [r["done_ms_median"] or np.nan for r in conc], marker="o", label="done median (ms)")
    ax2.plot(ks, [r["done_ms_max"] or np.nan for r in conc], marker="s", linestyle="--", label="done max (ms)")
    ax2.set_xlabel("concurrent clients K")
    ax2.set_ylabel("ms")
    ax2.set_xticks(ks)
    twin = ax2.twinx()
    width = 0.35
    twin.bar([k - width / 2 for k in ks], [r["accepted"] for r in conc], width, alpha=0.3, color="tab:green",
             label="202")
    twin.bar([k + width / 2 for k in ks], [r["rejected"] for r in conc], width, alpha=0.3, color="tab:red",
             label="429")
    twin.set_ylabel("requests")
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
    s = doc["settings"]
    ax2.set_title(f"Concurrent generate jobs (workers {s['job_workers']}, max_jobs {s['max_jobs']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _command():
    import click

    @click.command("jobs-roundtrip")
    @click.option("--weights", default="default", show_default=True,
                  help="StyleGAN2 generator served: 'default' (shipped 32 px) or a checkpoint path.")
    @click.option("--toon-weights", default=None, help="Cartoon fine-tune for toonify ('default' or a path); "
                  "without it toonify is skipped.")
    @click.option("--photo", default="default", show_default=True,
                  help=f"Face photo for project; 'default' = <shared data>/{DEFAULT_PHOTO.as_posix()}.")
    @click.option("--source-photo", default="default", show_default=True,
                  help=f"Source face of swap; 'default' = {DEFAULT_SOURCE_PHOTO} next to the default photo.")
    @click.option("--repeats", type=click.IntRange(1), default=3, show_default=True)
    @click.option("--warmup", type=click.IntRange(0), default=1, show_default=True)
    @click.option("--project-steps", type=click.IntRange(1), default=20, show_default=True)
    @click.option("--clients", default="1,2,4,8", show_default=True, help="Comma-separated burst sizes K.")
    @click.option("--max-jobs", type=click.IntRange(1), default=4, show_default=True,
                  help="Server max_jobs (waiting jobs).")
    @click.option("--workers", type=click.IntRange(1), default=1, show_default=True, help="Server job_workers.")
    @click.option("--burst-seeds", type=click.IntRange(1), default=4, show_default=True,
                  help="Images per generate job in the bursts.")
    @click.option("--poll-ms", type=click.FloatRange(min=1), default=20.0, show_default=True)
    @click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="torch CPU threads.")
    @click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=300.0, show_default=True,
                  help="Seconds one job may take.")
    @click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
                  show_default=True)
    @click.option("--name", default=DEFAULT_NAME, show_default=True, help="Stem of the result files.")
    @click.option("--no-plot", is_flag=True, help="Do not write the PNG.")
    def main(weights, toon_weights, photo, source_photo, repeats, warmup, project_steps, clients, max_jobs, workers,
             burst_seeds, poll_ms, threads, timeout_s, out_dir, name, no_plot) -> None:
        """Heavy-job API over real HTTP: round trip per job endpoint (StyleGAN2, makeup, swap, restore, virtual
        model) and concurrent clients (429s)."""
        try:
            run(weights, toon_weights, None if photo in ("", "none") else photo,
                None if source_photo in ("", "none") else source_photo, repeats, warmup, project_steps,
                parse_ints(clients), max_jobs, workers, burst_seeds, poll_ms, threads, timeout_s, out_dir, name,
                not no_plot)
        except (ValueError, FileNotFoundError, JobRequestError, TimeoutError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"wrote {Path(out_dir) / name}.json|md" + ("" if no_plot else "|png"))

    return main


main = _command()

if __name__ == "__main__":  # pragma: no cover
    main()
