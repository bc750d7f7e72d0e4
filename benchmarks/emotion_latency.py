"""Emotion latency: on-device style vs server fallback, on the same photos.

Two paths per photo:

- **on-device style** — what the app does with ``mobile_assets/``: decode, BlazeFace (LiteRT),
  align, mini-Xception per face (batch 1) for every runnable exported format (the formats table:
  LiteRT fp32/fp16/int8, ONNX Runtime) at 1 and 2 threads;
- **server fallback** — JPEG-encode, ``POST /v1/emotion`` over real HTTP on loopback to a server in
  this process (werkzeug, threaded), response parsed; the server reports its own step timings.

Desktop x86 timings are not phone timings: the table states MACs and file sizes beside them, and the
network model adds phone links (RTT, uplink, downlink) to the measured loopback round trip to show
where each path wins. Writes ``results/emotion_latency.{json,md,png}``. Never asserts speed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import (NETWORKS, NEW_CONNECTION_RTTS, RESULTS_DIR, add_round_trip, phone_network_ms,
                        round_trip_samples)


@dataclass
class Stat:
    median: float
    p90: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> "Stat":
        v = np.asarray(values, float)
        return cls(float(np.median(v)), float(np.percentile(v, 90)), len(v))

    def __str__(self) -> str:
        return f"{self.median:.2f} / {self.p90:.2f}"


def benchmark_photos(data_root: Path | None = None) -> list[tuple[str, bytes]]:
    """``(name, file bytes)`` of the shared portraits and group photos, or the astronaut if absent."""
    from faceforge.data.paths import data_root as default_root

    root = (data_root or default_root()) / "photos"
    files = sorted(p for sub in ("portraits", "groups") for p in (root / sub).glob("*")
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png")) if root.is_dir() else []
    if files:
        return [(f"{p.parent.name}/{p.name}", p.read_bytes()) for p in files]
    from faceforge.cli.demo import default_photo_bytes

    return [("astronaut.png", default_photo_bytes())]


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


def run(assets: Path | None = None, repeats: int = 5, threads: tuple[int, ...] = (1, 2),
        out_dir: Path = RESULTS_DIR, photos: list[tuple[str, bytes]] | None = None,
        weights: str | None = None) -> dict:
    """Measure both paths on every photo and write the results files.

    Args:
        assets: ``mobile_assets`` folder (default: the repository's).
        repeats: timed repetitions per photo and configuration (after one warm-up).
        threads: interpreter thread counts for the on-device path.
        out_dir: where to write ``emotion_latency.*``.
        photos: ``(name, bytes)`` pairs; default :func:`benchmark_photos`.
        weights: server-side checkpoint (default: shipped weights).

    Returns:
        The JSON-ready results dict.
    """
    import requests

    from export.formats import FORMATS
    from faceforge.cli.demo import DEFAULT_ASSETS
    from faceforge.emotion import preprocess_faces
    from faceforge.faces.align import align_face
    from faceforge.faces.detect import FaceDetector
    from faceforge.imaging import decode_image, encode_image
    from faceforge.ondevice import OnDeviceClassifier, load_manifest
    from server import create_app
    from server.testing import serve_in_thread

    assets = assets or DEFAULT_ASSETS
    manifest = load_manifest(assets)
    photos = photos or benchmark_photos()
    runnable = [f for f in FORMATS.values() if f.runs_on_linux]
    entries = {e["format"]: e for e in manifest["models"] if e["name"] == "mini_xception"}
    formats = [f.name for f in runnable if f.name in entries]

    # ---- on-device style ------------------------------------------------------------------------
    steps: dict[str, list[float]] = {"decode": [], "align": []}
    detect: dict[int, list[float]] = {t: [] for t in threads}
    classify: dict[tuple[str, int], list[float]] = {(f, t): [] for f in formats for t in threads}
    per_photo = []
    detectors = {t: FaceDetector(num_threads=t) for t in threads}
    classifiers = {(f, t): OnDeviceClassifier(assets, entries[f], num_threads=t) for f in formats for t in threads}
    from tqdm import tqdm

    for name, data in tqdm(photos, desc="on-device", disable=None):
        rgb = decode_image(data)
        for _ in range(repeats):
            t0 = time.perf_counter()
            decode_image(data)
            steps["decode"].append(_ms(t0))
        faces = []
        for t, det in detectors.items():
            det.detect(rgb)  # warm-up
            for _ in range(repeats):
                t0 = time.perf_counter()
                faces = det.detect(rgb)
                detect[t].append(_ms(t0))
        crops = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            crops = [align_face(rgb, f, 48, template="fer2013").image for f in faces]
            steps["align"].append(_ms(t0) / max(len(faces), 1))
        x = preprocess_faces(crops) if crops else None
        for key, clf in classifiers.items():
            if x is None:
                continue
            clf(x[:1])  # warm-up
            for _ in range(repeats):
                for i in range(len(x)):  # one face per invoke, as on the phone
                    t0 = time.perf_counter()
                    clf(x[i:i + 1])
                    classify[key].append(_ms(t0))
        per_photo.append({"photo": name, "size": [int(rgb.shape[1]), int(rgb.shape[0])], "faces": len(faces),
                          "bytes": len(data)})

    # ---- server fallback ----------------------------------------------------------------------------
    server = round_trip_samples()
    server_steps: dict[str, list[float]] = {}
    config = {"warm_up": True, "max_faces": 64, **({"emotion_weights": weights} if weights else {})}
    with serve_in_thread(create_app(config), timeout=60) as url, requests.Session() as http:
        for name, data in tqdm(photos, desc="server", disable=None):
            rgb = decode_image(data)
            for r in range(repeats + 1):
                t0 = time.perf_counter()
                jpeg = encode_image(rgb, fmt="jpeg", quality=90)
                t1 = time.perf_counter()
                resp = http.post(f"{url}/v1/emotion", files={"image": ("photo.jpg", jpeg, "image/jpeg")}, timeout=120)
                rt = _ms(t1)
                if r == 0:
                    continue  # warm-up
                body = resp.json()
                if resp.status_code != 200:
                    continue  # e.g. no face: counted in per_photo["faces"] == 0
                srv = {k: float(v) for k, v in body.get("timings_ms", {}).items()}
                add_round_trip(server, server_steps, (t1 - t0) * 1e3, rt, srv, len(jpeg), len(resp.content))

    results = _summarize(photos, per_photo, steps, detect, classify, server, server_steps, entries, manifest, threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "emotion_latency.json").write_text(json.dumps(results, indent=1))
    (out_dir / "emotion_latency.md").write_text(_markdown(results))
    _plot(results, out_dir / "emotion_latency.png")
    print(_markdown(results))
    return results


def _summarize(photos, per_photo, steps, detect, classify, server, server_steps, entries, manifest, threads) -> dict:
    def s(v):
        return Stat.of(v).__dict__ if v else None

    res = {
        "photos": per_photo,
        "on_device": {
            "decode_ms": s(steps["decode"]), "align_ms_per_face": s(steps["align"]),
            "detect_ms": {str(t): s(v) for t, v in detect.items()},
            "classify_ms_per_face": {f"{f}@{t}t": s(v) for (f, t), v in classify.items()},
        },
        "server": {k: s(v) for k, v in server.items()},
        "server_steps_ms": {k: s(v) for k, v in server_steps.items()},
        "files": {f: {"file": e["file"], "bytes": e["bytes"]} for f, e in entries.items()},
        "detector_files": {d.get("file", "?"): d.get("bytes") for d in manifest.get("detectors", [])},
        "model": {"params": 56951, "macs_48x48": _macs()},
        "networks": {},
    }
    # Median on-device total per photo (int8, 1 thread) vs modeled server latency per network profile.
    faces_med = float(np.median([p["faces"] for p in per_photo])) if per_photo else 1.0
    fmt_best = "tflite_int8" if "tflite_int8" in entries else next(iter(entries))
    t0 = str(threads[0])
    cls = res["on_device"]["classify_ms_per_face"].get(f"{fmt_best}@{t0}t") or {"median": 0.0}
    on_device = (res["on_device"]["decode_ms"]["median"] + res["on_device"]["detect_ms"][t0]["median"]
                 + faces_med * (res["on_device"]["align_ms_per_face"]["median"] + cls["median"]))
    up = float(np.median(server["upload_bytes"])) if server["upload_bytes"] else 0.0
    down = float(np.median(server["download_bytes"])) if server["download_bytes"] else 0.0
    srv = res["server"]
    for name, network in NETWORKS.items():
        rtt, up_mbit, down_mbit = network
        modeled = phone_network_ms(srv["encode"]["median"], srv["round_trip"]["median"], up, down, network)
        warm = modeled["warm_ms"]
        res["networks"][name] = {
            "rtt_ms": rtt, "uplink_mbit_s": up_mbit, "downlink_mbit_s": down_mbit,
            "upload_ms": modeled["upload_ms"], "server_warm_ms": warm,
            "server_cold_ms": modeled["cold_ms"], "on_device_ms": on_device,
            "on_device_wins_by_ms": warm - on_device, "speedup": warm / on_device if on_device else None,
        }
    res["assumptions"] = (f"on-device = decode + detect ({t0} thread) + median faces per photo ({faces_med:g}) x "
                          f"(align + {fmt_best} classify); server warm = client JPEG encode + measured loopback round "
                          f"trip (server work included) + 1 RTT + upload/download at the profile's rates; cold adds "
                          f"{NEW_CONNECTION_RTTS} RTTs (TCP + TLS 1.3). Median upload {up / 1024:.0f} KB.")
    return res


def _macs() -> int | None:
    try:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        from faceforge.models import create_model
        model = create_model("mini_xception")
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 1, 48, 48))
        return int(counter.get_total_flops() // 2)
    except Exception:  # noqa: BLE001 - the figure is informative only
        return None


def _markdown(r: dict) -> str:
    od = r["on_device"]
    lines = ["# Emotion latency: on-device style vs server fallback", "",
             f"{len(r['photos'])} photos; medians / p90 in ms on this machine (x86-64 CPU, not a phone). "
             f"mini-Xception: {r['model']['params']:,} parameters, {(r['model']['macs_48x48'] or 0) / 1e6:.2f} M MACs at 48x48.",
             "", "## On-device style, per step", "", "| step | median / p90 (ms) |", "|---|---:|",
             f"| decode (photo) | {Stat(**od['decode_ms'])} |"]
    for t, v in od["detect_ms"].items():
        lines.append(f"| detect, BlazeFace auto, {t} thread(s) (photo) | {Stat(**v)} |")
    lines.append(f"| align (per face) | {Stat(**od['align_ms_per_face'])} |")
    for k, v in od["classify_ms_per_face"].items():
        if v:
            fmt = k.split("@")[0]
            lines.append(f"| classify {k} (per face; {r['files'][fmt]['bytes'] / 1024:.0f} KB file) | {Stat(**v)} |")
    lines += ["", "## Server fallback (loopback HTTP, per photo)", "", "| step | median / p90 (ms) |", "|---|---:|"]
    for k in ("encode", "round_trip", "transport", "server_total"):
        if r["server"].get(k):
            lines.append(f"| {k} | {Stat(**r['server'][k])} |")
    for k, v in r["server_steps_ms"].items():
        if v and k != "total":
            lines.append(f"| server {k} | {Stat(**v)} |")
    up = r["server"].get("upload_bytes")
    if up:
        lines.append(f"| upload size (bytes) | {up['median']:.0f} / {up['p90']:.0f} |")
    lines += ["", "## Modeled phone networks (per photo, medians)", "",
              "| network | RTT ms | up / down Mbit/s | on-device ms | server warm ms | server cold ms | on-device wins by |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, n in r["networks"].items():
        lines.append(f"| {name} | {n['rtt_ms']:.0f} | {n['uplink_mbit_s']:g} / {n['downlink_mbit_s']:g} | "
                     f"{n['on_device_ms']:.1f} | {n['server_warm_ms']:.1f} | {n['server_cold_ms']:.1f} | "
                     f"{n['on_device_wins_by_ms']:.0f} ms ({n['speedup']:.1f}x) |")
    lines += ["", r["assumptions"], ""]
    return "\n".join(lines)


def _plot(r: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    cls = {k: v for k, v in r["on_device"]["classify_ms_per_face"].items() if v}
    names = list(cls)
    ax1.barh(names, [cls[k]["median"] for k in names], xerr=[[0] * len(names),
             [cls[k]["p90"] - cls[k]["median"] for k in names]], color="tab:blue")
    ax1.set_xlabel("ms per face (median, whisker to p90)")
    ax1.set_title("mini-Xception per face, by format @ threads")
    nets = list(r["networks"])
    x = np.arange(len(nets))
    ax2.bar(x - 0.2, [r["networks"][n]["on_device_ms"] for n in nets], 0.4, label="on-device (int8, LiteRT)")
    ax2.bar(x + 0.2, [r["networks"][n]["server_warm_ms"] for n in nets], 0.4, label="server fallback (warm)")
    ax2.set_xticks(x, nets)
    ax2.set_ylabel("ms per photo (median)")
    ax2.set_title("whole photo: on-device vs server over phone networks")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    run()
