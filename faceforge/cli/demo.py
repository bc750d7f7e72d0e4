"""``faceforge demo``: the emotion feature end to end on one photo, on-device style and through the server.

Steps (each printed with its time):

1. decode the photo (EXIF orientation, limits) — default: the public-domain NASA astronaut portrait
   (Eileen Collins) that scikit-image ships, so the demo needs nothing from outside;
2. on-device path, as the app does it with ``mobile_assets/``: BlazeFace (LiteRT) -> align to the
   FER2013 template -> mini-Xception full-integer int8 ``.tflite`` on the LiteRT interpreter;
3. server path, as the fallback does it: JPEG-encode, ``POST /v1/emotion`` over real HTTP on loopback
   to a server started in-process (or as a subprocess, or at a URL you give);
4. print each face's result from both paths and both latencies, save an annotated image.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click
import numpy as np

from faceforge.errors import FaceforgeError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ASSETS = REPO_ROOT / "mobile_assets"
DEFAULT_PHOTO_NAME = "astronaut (scikit-image, public domain)"


def default_photo_bytes() -> bytes:
    """PNG bytes of scikit-image's astronaut portrait (public domain, NASA).

    Raises:
        click.ClickException: scikit-image is not installed.
    """
    try:
        from skimage import data
    except ImportError:
        raise click.ClickException("the default photo comes from scikit-image: pip install -e '.[serve]', "
                                   "or pass a photo path") from None
    from faceforge.imaging import encode_image

    return encode_image(np.ascontiguousarray(data.astronaut()), fmt="png")


class Steps:
    """Prints numbered steps with their wall-clock time, e.g. ``[2/6] detect faces ... 12.3 ms``."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0

    @contextmanager
    def step(self, title: str) -> Iterator[dict]:
        self.done += 1
        click.echo(f"[{self.done}/{self.total}] {title} ...", nl=False, err=True)
        info: dict = {}
        t0 = time.perf_counter()
        try:
            yield info
        except BaseException:
            click.echo(" failed", err=True)
            raise
        ms = (time.perf_counter() - t0) * 1e3
        click.echo(f" {ms:.1f} ms{' ' + info['note'] if 'note' in info else ''}", err=True)


@contextmanager
def running_server(mode: str, weights: str | None) -> Iterator[str]:
    """Yield the base URL of a faceforge server: ``inprocess`` thread, ``subprocess``, or a URL."""
    if mode.startswith(("http://", "https://")):
        yield mode.rstrip("/")
        return
    from server.testing import wait_until_healthy

    if mode == "inprocess":
        from server import create_app
        from server.testing import serve_in_thread

        config = {"warm_up": True, **({"emotion_weights": weights} if weights else {})}
        with serve_in_thread(create_app(config), timeout=60) as url:
            yield url
        return
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "faceforge", "serve", "--port", str(port), "--warm-up"]
    if weights:
        cmd += ["--emotion-weights", weights]
    # stderr goes to a file, not a pipe: a chatty server could otherwise fill the pipe and block.
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, timeout=90, process=proc)
        yield url
    except TimeoutError as exc:
        proc.kill()
        proc.wait(timeout=10)
        log.seek(0)
        tail = " ".join(log.read().split())[-600:]
        raise click.ClickException(f"the server subprocess did not start ({exc}): "
                                   f"{tail or 'it printed nothing'}") from None
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        log.close()


def _format_probs(probs: dict[str, float], k: int = 3) -> str:
    top = sorted(probs.items(), key=lambda kv: -kv[1])[:k]
    return ", ".join(f"{name} {p:.2f}" for name, p in top)


@click.command("demo")
@click.argument("photo", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("demo_annotated.jpg"),
              show_default=True, help="Where to save the annotated image.")
@click.option("--server", "server_mode", default="inprocess", show_default=True,
              help="'inprocess' (thread), 'subprocess' (faceforge serve), or the base URL of a running server.")
@click.option("--assets", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_ASSETS,
              show_default=True, help="mobile_assets folder (manifest.json and the exported files).")
@click.option("--format", "fmt", default="tflite_int8", show_default=True,
              help="Exported format the on-device path runs (a row of the manifest).")
@click.option("--threads", type=click.IntRange(1, 8), default=1, show_default=True,
              help="LiteRT interpreter threads on the on-device path (1-2 model a phone's big cores).")
@click.option("--weights", default=None, help="Server-side mini_xception checkpoint [default: shipped weights].")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
def demo(photo: Path | None, output: Path, server_mode: str, assets: Path, fmt: str, threads: int,
         weights: str | None, as_json: bool) -> None:
    """Recognise facial emotions on a photo: on-device style (LiteRT) and via the server.

    PHOTO defaults to the astronaut portrait that scikit-image ships.

    \b
    Examples:
      faceforge demo
      faceforge demo group.jpg -o group_emotions.jpg
      faceforge demo me.jpg --server http://127.0.0.1:8000
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        _demo(photo, output, server_mode, assets, fmt, threads, weights, as_json)
    except FaceforgeError as exc:
        raise click.ClickException(str(exc)) from None
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None


def _demo(photo: Path | None, output: Path, server_mode: str, assets: Path, fmt: str, threads: int,
          weights: str | None, as_json: bool) -> None:
    import requests

    from faceforge.errors import NoFaceError
    from faceforge.faces.detect import FaceDetector
    from faceforge.faces.draw import annotate
    from faceforge.imaging import decode_image, encode_image, save_image
    from faceforge.ondevice import OnDeviceClassifier

    steps = Steps(6)
    with steps.step("read photo"):
        if photo is None:
            data, name = default_photo_bytes(), DEFAULT_PHOTO_NAME
        else:
            if not photo.is_file():
                raise FileNotFoundError(f"photo not found: {photo}")
            data, name = photo.read_bytes(), str(photo)
    with steps.step("load on-device models (BlazeFace + mini-Xception)") as info:
        classifier = OnDeviceClassifier.from_manifest(assets, "mini_xception", fmt, num_threads=threads)
        detector = FaceDetector(num_threads=threads)
        info["note"] = f"({classifier.path.name}, {classifier.path.stat().st_size / 1024:.0f} KB)"

    # --- on-device path -----------------------------------------------------------------------------
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with steps.step("on-device: decode, detect, align, classify") as info:
        rgb = decode_image(data)
        t1 = time.perf_counter()
        faces = detector.detect(rgb)
        t2 = time.perf_counter()
        if not faces:
            raise NoFaceError(f"no face found in {name} ({rgb.shape[1]}x{rgb.shape[0]})")
        crops = classifier.align(rgb, faces)  # template, size, colour, normalization: from the manifest entry
        t3 = time.perf_counter()
        local_probs = classifier(classifier.preprocess(crops))
        t4 = time.perf_counter()
        timings = {"decode": (t1 - t0) * 1e3, "detect": (t2 - t1) * 1e3, "align": (t3 - t2) * 1e3,
                   "classify": (t4 - t3) * 1e3, "total": (t4 - t0) * 1e3}
        info["note"] = f"({len(faces)} face{'s' if len(faces) != 1 else ''} in {rgb.shape[1]}x{rgb.shape[0]})"

    # --- server path ---------------------------------------------------------------------------------
    with steps.step(f"start server ({server_mode})"):
        server_cm = running_server(server_mode, weights)
        base_url = server_cm.__enter__()
    try:
        with steps.step("server: JPEG-encode, upload, detect, classify, download") as info:
            s0 = time.perf_counter()
            jpeg = data if photo is not None and data[:3] == b"\xff\xd8\xff" else encode_image(rgb, fmt="jpeg", quality=90)
            s1 = time.perf_counter()
            response = requests.post(f"{base_url}/v1/emotion", files={"image": ("photo.jpg", jpeg, "image/jpeg")},
                                     timeout=120)
            s2 = time.perf_counter()
            body = response.json()
            if response.status_code != 200:
                raise click.ClickException(f"server answered {response.status_code}: {body.get('detail', body)}")
            server_timings = {"encode": (s1 - s0) * 1e3, "round_trip": (s2 - s1) * 1e3,
                              "total": (time.perf_counter() - s0) * 1e3, "upload_bytes": len(jpeg),
                              "server": body.get("timings_ms", {})}
            info["note"] = f"({len(jpeg) / 1024:.0f} KB up, {len(response.content) / 1024:.1f} KB down)"
    finally:
        server_cm.__exit__(None, None, None)

    with steps.step("annotate") as info:
        labels = [f"{classifier.labels[int(np.argmax(p))]} {float(np.max(p)):.2f}" for p in local_probs]
        save_image(output, annotate(rgb, faces, labels=labels, show_score=False))
        info["note"] = f"-> {output}"

    _report(name, rgb, faces, classifier, local_probs, timings, body, server_timings, as_json)


def _report(name, rgb, faces, classifier, local_probs, timings, body, server_timings, as_json) -> None:
    server_faces = body.get("faces", [])
    if as_json:
        click.echo(json.dumps({
            "photo": name, "size": [int(rgb.shape[1]), int(rgb.shape[0])],
            "on_device": {"file": classifier.path.name, "faces": [
                {"box": [round(float(v), 1) for v in f.box], "label": classifier.labels[int(np.argmax(p))],
                 "probabilities": dict(zip(classifier.labels, map(float, p)))} for f, p in zip(faces, local_probs)],
                "timings_ms": timings},
            "server": {**body, "client_timings_ms": server_timings}}, indent=1))
        return
    click.echo(f"\n{name}: {rgb.shape[1]}x{rgb.shape[0]}, {len(faces)} face(s)")
    click.echo(f"{'face':>4}  {'box (x0, y0, x1, y1)':24s}  {'on-device (' + classifier.path.name + ')':44s}  server")
    for i, (face, p) in enumerate(zip(faces, local_probs)):
        local = _format_probs(dict(zip(classifier.labels, map(float, p))))
        remote = _format_probs(server_faces[i]["probabilities"]) if i < len(server_faces) else "-"
        box = ", ".join(f"{v:.0f}" for v in face.box)
        click.echo(f"{i:>4}  {box:24s}  {local:44s}  {remote}")
    st = server_timings["server"]
    click.echo("\nlatency (ms)   on-device: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    click.echo("               server:    " + f"encode {server_timings['encode']:.1f}, HTTP round trip "
               f"{server_timings['round_trip']:.1f} (of which server " + ", ".join(
                   f"{k} {float(v):.1f}" for k, v in st.items()) + f"), total {server_timings['total']:.1f}")
    click.echo(f"model: on-device {classifier.path.name} v{classifier.version}; server "
               f"{body.get('model', {}).get('name')} v{body.get('model', {}).get('version')}")
