"""Benchmarks: scripts that measure and write ``benchmarks/results/*.md|json|png``; they never assert speed.

- :mod:`benchmarks.emotion_accuracy`  our mini-Xception vs the published peer on FER2013 test.
- :mod:`benchmarks.emotion_latency`   on-device style (LiteRT, ONNX Runtime) vs server round trip.
- :mod:`benchmarks.detections`        BlazeFace detections on the shared real photos.
- :mod:`benchmarks.translate_quality` age shift and identity of the CycleGAN translators.
- :mod:`benchmarks.frontalize_quality` PSNR/SSIM/identity per yaw bucket of a frontalizer; real-photo grid.
- :mod:`benchmarks.stylegan_latency`  StyleGAN2 generation latency/throughput by resolution and batch.
- :mod:`benchmarks.stylegan_quality`  StyleGAN2 SWD per pyramid level beside real-vs-real and blur controls.
- :mod:`benchmarks.generator_latency` CycleGAN / pix2pix generators: on-device files vs server, 256 and 128.
- :mod:`benchmarks.jobs_roundtrip`    heavy-job API over HTTP: round trip per endpoint, concurrent clients.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = RESULTS_DIR.parents[1]

# Phone network profiles: round-trip time (ms), uplink and downlink (Mbit/s). Typical medians, not
# guarantees: a congested 4G cell easily doubles the RTT and divides the uplink.
NETWORKS = {
    "3G": (150.0, 1.0, 4.0),
    "4G": (60.0, 10.0, 30.0),
    "5G": (25.0, 50.0, 200.0),
    "Wi-Fi": (10.0, 50.0, 100.0),
}
NEW_CONNECTION_RTTS = 2  # TCP + TLS 1.3 handshakes before the request on a cold connection

ROUND_TRIP_FIELDS = ("encode", "round_trip", "server_total", "transport", "upload_bytes", "download_bytes")
"""What :func:`add_round_trip` records of one whole-photo HTTP request (ms, and bytes)."""


def display_path(path: str | Path) -> str:
    """``path`` as results files record it: relative to the repository (``data/...``) or to its parent
    (``../shared/data/...``), never an absolute path of the measuring machine; other paths: the name."""
    resolved = Path(path).resolve()
    as_given = Path(os.path.normpath(Path(path).absolute()))  # symlinks kept (e.g. ../shared a link)
    for candidate in (as_given, resolved):
        for base, prefix in ((REPO_ROOT, ""), (REPO_ROOT.parent, "../")):
            try:
                return prefix + candidate.relative_to(base).as_posix()
            except ValueError:
                continue
    return resolved.name


def parse_ints(text: str) -> list[int]:
    """``"1,4,16"`` -> ``[1, 4, 16]`` (empty items ignored).

    Raises:
        ValueError: an item is not an integer.
    """
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from None


def parse_names(text: str) -> list[str]:
    """``"onnx, tflite_int8,"`` -> ``["onnx", "tflite_int8"]``: comma-separated names, stripped, empty items
    ignored (what a ``--formats``/``--backends``-style option holds)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def median_iqr(summary: dict[str, float] | None) -> str:
    """``"median [q1, q3]"`` (2 decimals) of a :func:`faceforge.metrics.summarize` dict, for result tables;
    ``"n/a"`` when there is none or it counts no value."""
    if not summary or not summary.get("n"):
        return "n/a"
    return f"{summary['median']:.2f} [{summary['q1']:.2f}, {summary['q3']:.2f}]"


def write_results(doc: dict[str, Any], out_dir: str | Path, name: str, markdown: Callable[[dict], str],
                  plot: Callable[[dict, Path], Any] | None = None) -> Path:
    """Write ``<out_dir>/<name>.json`` (``doc``), ``<name>.md`` (``markdown(doc)``) and, with ``plot``,
    ``<name>.png`` (``plot(doc, path)``); create ``out_dir``. Returns ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out_dir / f"{name}.md").write_text(markdown(doc))
    if plot is not None:
        plot(doc, out_dir / f"{name}.png")
    return out_dir


def round_trip_samples() -> dict[str, list[float]]:
    """Empty sample lists, one per :data:`ROUND_TRIP_FIELDS`, for :func:`add_round_trip`."""
    return {k: [] for k in ROUND_TRIP_FIELDS}


def add_round_trip(samples: dict[str, list[float]], steps: dict[str, list[float]], encode_ms: float,
                   round_trip_ms: float, server_ms: dict[str, float], upload_bytes: int, download_bytes: int) -> None:
    """Append one measured whole-photo round trip to ``samples`` (:func:`round_trip_samples`) and its server
    steps to ``steps``.

    Args:
        encode_ms: the client's JPEG encode of the photo.
        round_trip_ms: request sent -> answer read, server work included.
        server_ms: the server's own timings of that request (``{step: ms}``, with ``"total"``; a missing
            total counts as 0, so transport is then the whole round trip).
        upload_bytes, download_bytes: request body and answer sizes.

    ``transport`` = round trip - server total: what the loopback connection and HTTP stack cost.
    """
    total = server_ms.get("total", 0.0)
    samples["encode"].append(encode_ms)
    samples["round_trip"].append(round_trip_ms)
    samples["server_total"].append(total)
    samples["transport"].append(round_trip_ms - total)
    samples["upload_bytes"].append(upload_bytes)
    samples["download_bytes"].append(download_bytes)
    for k, v in server_ms.items():
        steps.setdefault(k, []).append(v)


def phone_network_ms(encode_ms: float, round_trip_ms: float, upload_bytes: float, download_bytes: float,
                     network: tuple[float, float, float]) -> dict[str, float]:
    """The modeled latency of a server call over a phone network, from a loopback measurement.

    Args:
        encode_ms, round_trip_ms: measured client encode and loopback round trip (medians), ms.
        upload_bytes, download_bytes: request and answer sizes (medians).
        network: ``(rtt_ms, uplink_mbit_s, downlink_mbit_s)``, a profile of :data:`NETWORKS`.

    Returns:
        ``upload_ms`` (the request body at the uplink rate), ``transfer_ms`` (upload + download at the
        profile's rates), ``warm_ms`` (encode + round trip + 1 RTT + transfer: an open connection) and
        ``cold_ms`` (warm + :data:`NEW_CONNECTION_RTTS` RTTs for TCP + TLS 1.3).
    """
    rtt, up_mbit, down_mbit = network
    upload_ms = upload_bytes * 8 / (up_mbit * 1e3)
    transfer = upload_ms + download_bytes * 8 / (down_mbit * 1e3)
    warm = encode_ms + round_trip_ms + rtt + transfer
    return {"upload_ms": upload_ms, "transfer_ms": transfer, "warm_ms": warm, "cold_ms": warm + NEW_CONNECTION_RTTS * rtt}
