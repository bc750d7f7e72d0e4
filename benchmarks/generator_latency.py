"""Image-to-image generator latency: on-device style vs server, at 256 and 128 (issue 3, deliverable 7).

Two families, each a mobile generator (what ships in ``mobile_assets/``) and a full server generator:

=============  ==================  =====================================================================
family         mobile              full (server)
=============  ==================  =====================================================================
``translate``  ``cyclegan_mobile`` ``cyclegan_resnet9`` (CycleGAN aging, ``POST /v1/translate``)
``frontalize`` ``pix2pix_mobile``  ``pix2pix_unet256`` at >= 256 px, ``pix2pix_unet128`` below
                                   (``POST /v1/frontalize``)
=============  ==================  =====================================================================

For every family and input side ``S`` (default 256 and 128):

1. **On-device style** — the mobile generator exported at the fixed input ``(1, S, S, 3)`` (NHWC,
   LiteRT) / ``(1, 3, S, S)`` (NCHW, ONNX) through the exporter's own backends
   (:data:`export.formats.FORMATS`: ``tflite_fp16``, ``tflite_dynint8``, ``tflite_int8``, ``onnx`` by
   default) into a temporary folder, or the ``mobile_assets/`` file when the manifest already lists one
   of that model at that size (and no weights were given). Timed: one ``invoke`` of LiteRT
   (:class:`faceforge.runtime.LiteRTModel`, XNNPACK) or one ``InferenceSession.run`` of ONNX Runtime on
   a batch-1 input already in the file's dtype (an int8 file gets int8 input), at 1 and 2 threads,
   after ``warmup`` untimed calls. Full-integer int8 is calibrated on ``calibration_size`` synthetic
   images (:func:`export.calibration.random_images`; the speed does not depend on the scales).
2. **Server** — the full and the mobile generator in PyTorch (eval, ``torch.inference_mode``, batch 1,
   NCHW float32) at 1 and 2 torch threads; and the whole-photo round trip ``POST /v1/translate``
   (``faces=largest``, JPEG answer) or ``POST /v1/frontalize`` (``faces=largest``, PNG face answer)
   over real HTTP on loopback to a server in this process (werkzeug, threaded; :mod:`server.testing`),
   one server per generator and torch thread count, serving a checkpoint of that generator at ``S``
   (``crop_size`` in its meta). The first request of each server is a discarded warm-up.
3. **On-device whole photo** — the steps a phone runs around the generator, measured with the same
   code the server uses (LiteRT BlazeFace at the on-device thread count, cv2 warps): decode, detect,
   align and paste (translate) or detect, Face Mesh landmarks and the frontal rerender (frontalize).
4. **Network model** — the phone profiles of :data:`benchmarks.emotion_latency.NETWORKS` added to the
   measured loopback round trips (RTT, JPEG upload of the photo, download of the answer), against the
   on-device total (whole-photo steps + the reference file's invoke at the first thread count).
5. **Complexity** — parameters and GMACs per model and size (:func:`faceforge.models.cyclegan.complexity`,
   ``torch.utils.flop_counter``; MACs = FLOPs / 2; also the per-output-pixel count of transposed
   convolutions).

Weights: a translator checkpoint (``translate_weights``: run folder, ``G_A.pt`` or ``last.pt``) and a
frontalizer one (``frontalize_weights``: run folder, ``G.pt`` or ``last.pt``) are used for the rows of
their own architecture wherever they fit the size (a U-Net needs sides divisible by ``2^num_downs``);
every other row runs seeded **random weights**: the speed of these networks does not depend on the
values, and the output files say which rows are random. The photo is the first portrait of
``<data>/photos/portraits`` (``$FACEFORGE_DATA`` or ``../shared/data``) with a detectable face; without
one the round trips, the whole-photo steps and the network model are skipped, with the reason recorded.

All times are milliseconds of wall-clock time on this machine (an x86-64 CPU, not a phone), given as
median / 90th percentile. Writes ``<out>/generator_latency.{json,md,png}``. It never asserts speed.
Example::

    faceforge bench generator-latency --translate-weights runs/cyclegan/001/G_A.pt \\
        --frontalize-weights runs/frontalize/001 --sizes 256,128
    python -m benchmarks.generator_latency --sizes 128 --formats tflite_int8 --repeats 3
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks import (NETWORKS, NEW_CONNECTION_RTTS, RESULTS_DIR, add_round_trip, parse_ints, parse_names,
                        phone_network_ms, round_trip_samples, write_results)
from benchmarks.emotion_latency import Stat

DEFAULT_NAME = "generator_latency"

FAMILIES: dict[str, dict[str, Any]] = {
    "translate": {"mobile": "cyclegan_mobile", "full": "cyclegan_resnet9", "endpoint": "/v1/translate",
                  "weights_key": "translate_age_weights"},
    "frontalize": {"mobile": "pix2pix_mobile", "full": "pix2pix_unet256", "full_small": "pix2pix_unet128",
                   "endpoint": "/v1/frontalize", "weights_key": "frontalize_weights"},
}
"""Per family: the mobile and full registry names (``full_small``: the full model below 256 px), the
server endpoint and the :class:`server.config.Config` field naming its weights."""

DEFAULT_FORMATS = ("tflite_fp16", "tflite_dynint8", "tflite_int8", "onnx")
ROLES = ("full", "mobile")
RANDOM_NOTE = "random initialisation (seeded; speed does not depend on the values)"


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


def _stat(values: Sequence[float]) -> dict[str, float] | None:
    return Stat.of(list(values)).__dict__ if len(values) else None


# --------------------------------------------------------------------------------------------------
# Models


def model_name(family: str, role: str, size: int) -> str:
    """Registry name of the ``role`` (``"full"`` or ``"mobile"``) generator of ``family`` at side ``size``."""
    fam = FAMILIES[family]
    if role == "full" and size < 256 and "full_small" in fam:
        return fam["full_small"]
    return fam[role]


def _fits(config: dict[str, Any], size: int) -> bool:
    """Whether a generator of this constructor ``config`` runs at side ``size`` (U-Nets: ``2^num_downs`` divides it)."""
    downs = config.get("num_downs")
    return size % 4 == 0 if downs is None else size % (2 ** int(downs)) == 0


def random_config(name: str, size: int, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The registry config of ``name`` with ``overrides``, ``num_downs`` lowered until the U-Net fits ``size``."""
    from faceforge.models import get_spec

    config = {**get_spec(name).kwargs, **(overrides or {})}
    if "num_downs" in config:
        while config["num_downs"] > 1 and size % (2 ** int(config["num_downs"])):
            config["num_downs"] -= 1
    return config


def load_given_weights(family: str, weights: str | Path):
    """Load a family's generator checkpoint: ``(module in eval mode on the CPU, arch, config)``.

    Raises:
        WeightsNotFoundError: the path does not exist / holds no generator.
        CheckpointError: not a generator of that family.
    """
    if family == "translate":
        from faceforge.translate import load_generators

        gens, _ = load_generators(weights)
        g = gens.get("A->B") or next(iter(gens.values()))
    else:
        from faceforge.frontalize import load_generator

        g, _ = load_generator(weights)
    return g.eval(), g.faceforge_arch, dict(g.faceforge_config)


def build_generator(family: str, role: str, size: int, given: tuple | None, weights_path: str | None,
                    overrides: dict[str, dict[str, Any]] | None, seed: int = 0):
    """The generator of one row: the given checkpoint when its arch is this row's and it fits ``size``,
    else seeded random weights. Returns ``(module, arch, config, weights description)``."""
    import torch

    from faceforge.models import create_model

    arch = model_name(family, role, size)
    if given is not None and given[1] == arch:
        if _fits(given[2], size):
            return given[0], arch, given[2], str(weights_path)
        note = f"{RANDOM_NOTE}; the checkpoint needs sides divisible by {2 ** int(given[2]['num_downs'])}"
    else:
        note = RANDOM_NOTE
    config = random_config(arch, size, (overrides or {}).get(arch))
    torch.manual_seed(seed)
    model = create_model(arch, **config)
    with torch.no_grad():  # BatchNorm statistics that are not the identity (no effect on speed)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval(), arch, config, note


def _complexity(model, size: int) -> dict[str, Any]:
    from faceforge.models.cyclegan import complexity

    try:
        c = complexity(model, (1, 3, size, size))
        return {"params": int(c["params"]), "macs": int(c["macs"]), "macs_output_pixel": int(c["macs_output_pixel"])}
    except Exception:  # noqa: BLE001 - informative only; the counter's coverage varies by torch version
        return {"params": sum(p.numel() for p in model.parameters()), "macs": None, "macs_output_pixel": None}


# --------------------------------------------------------------------------------------------------
# Timing


def time_torch(model, size: int, threads: int, repeats: int, warmup: int) -> list[float]:
    """Milliseconds per ``model(x)`` call, ``x`` a ``(1, 3, size, size)`` float32 batch, at ``threads``
    torch threads (restored afterwards), under ``torch.inference_mode``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.rand(1, 3, size, size) * 2 - 1
        times = []
        with torch.inference_mode():
            for i in range(warmup + repeats):
                t0 = time.perf_counter()
                model(x)
                if i >= warmup:
                    times.append(_ms(t0))
        return times
    finally:
        torch.set_num_threads(before)


def _file_input(shape: Sequence[Any], dtype, quant: tuple[float, int] | None, rng) -> np.ndarray:
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in shape]  # symbolic batch -> 1
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    if quant is None:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / quant[0] + quant[1]), info.min, info.max).astype(dtype)


def time_file(path: Path, threads: int, repeats: int, warmup: int, seed: int = 0) -> tuple[list[float], dict]:
    """Milliseconds per invoke of an exported file (``.tflite``: LiteRT; ``.onnx``: ONNX Runtime CPU) on
    one input in the file's own shape and dtype; also ``{"shape", "dtype"}`` of that input.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a suffix other than ``.tflite`` / ``.onnx``, or a file the runtime rejects.
    """
    from faceforge.runtime import LiteRTModel, OnnxModel

    rng = np.random.default_rng(seed)
    if path.suffix == ".tflite":
        model = LiteRTModel(path, num_threads=threads)
        dtype = np.dtype(model.input["dtype"])
        x = _file_input(model.input_shape, dtype, model.input_quantization, rng)

        def call():
            model.run_quantized(x)
    elif path.suffix == ".onnx":
        model = OnnxModel(path, num_threads=threads)
        x = _file_input(model.input_shape, np.dtype(np.float32), None, rng)
        feed = {model.input_name: x}

        def call():
            model.session.run(None, feed)
    else:
        raise ValueError(f"cannot time {path.name}: expected a .tflite or .onnx file")
    times = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        call()
        if i >= warmup:
            times.append(_ms(t0))
    return times, {"shape": [int(d) for d in x.shape], "dtype": x.dtype.name}


def export_at_size(model, arch: str, size: int, formats: Sequence, out: Path, calibration_size: int = 32,
                   seed: int = 0) -> dict[str, Path]:
    """Write ``model`` (registry arch ``arch``) in each of ``formats`` (rows of ``export.formats.FORMATS``)
    at the fixed input side ``size`` under ``out``, with the exporter's backends; ``{format: path}``.

    No parity check (the export CLI does that); int8 calibration on ``calibration_size`` synthetic images.

    Raises:
        ExportError: a backend failed (the message names the format and the cause).
    """
    from export import calibration as calib
    from export.base import ExportJob
    from export.exporter import embedded_metadata, with_input_size
    from faceforge.models import get_spec

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    spec = with_input_size(get_spec(arch), size)
    version = f"bench-{size}"
    job = ExportJob(model, spec, version, embedded_metadata(spec, version))
    if any(f.needs_calibration for f in formats):
        job.calibration = calib.representative_dataset(spec, calibration_size, seed, "random")
    return {f.name: f.backend(job, out / f.relpath(arch)).path for f in formats}


def manifest_files(assets: Path | None, arch: str, size: int) -> dict[str, tuple[Path, dict]]:
    """``{format: (path, entry)}`` of ``assets/manifest.json`` entries of ``arch`` whose input side is ``size``."""
    if assets is None or not (Path(assets) / "manifest.json").is_file():
        return {}
    try:
        manifest = json.loads((Path(assets) / "manifest.json").read_text())
    except ValueError:
        return {}
    found = {}
    for e in manifest.get("models", []):
        shape = (e.get("input") or {}).get("shape") or []
        layout = (e.get("input") or {}).get("layout")
        hw = shape[1:3] if layout == "NHWC" else shape[2:4]
        path = Path(assets) / e.get("file", "")
        if e.get("name") == arch and list(hw) == [size, size] and path.is_file():
            found[e["format"]] = (path, e)
    return found


PAD_GRAPHS = ("mirror_pad", "concat")
"""How a generator's reflection padding (:class:`faceforge.models.cyclegan.ReflectionPad2d`) is written in
the LiteRT files: ``mirror_pad`` = one TFLite ``MIRROR_PAD`` op per pad (the graph before the fix; XNNPACK
has no kernel for it), ``concat`` = slices and concatenations XNNPACK delegates (the default; what the
exporter writes). ONNX files are always the single ``Pad(mode="reflect")`` graph."""
DEFAULT_PAD_GRAPH = "concat"


def has_reflection_pads(model) -> bool:
    """Whether ``model`` holds a :class:`faceforge.models.cyclegan.ReflectionPad2d` (whose graph can vary)."""
    from faceforge.models.cyclegan import ReflectionPad2d

    return any(isinstance(m, ReflectionPad2d) for m in model.modules())


def pad_variant(model, pad_graph: str | None):
    """``model`` itself (``None`` or ``"concat"``: the default ``"auto"`` padding) or a copy whose LiteRT
    graph keeps ``MIRROR_PAD`` (``"mirror_pad"``). Outputs are bit-identical either way.

    Raises:
        ValueError: ``pad_graph`` not in :data:`PAD_GRAPHS`.
    """
    import copy

    from faceforge.models.cyclegan import set_pad_mode

    if pad_graph is None or pad_graph == "concat":
        return model
    if pad_graph not in PAD_GRAPHS:
        raise ValueError(f"pad graph must be one of {', '.join(PAD_GRAPHS)}, got {pad_graph!r}")
    return set_pad_mode(copy.deepcopy(model), "pad")


def tflite_graph(path: Path, threads: int) -> dict[str, Any]:
    """How LiteRT runs a ``.tflite`` file at ``threads`` threads with its default XNNPACK delegate:
    ``{"delegate_partitions": XNNPACK partitions (DELEGATE nodes after delegation), "mirror_pads": MIRROR_PAD
    ops in the file, "ops": operators in the file}``. A graph XNNPACK covers whole has one partition;
    every op it cannot run splits the graph and runs on TFLite's builtin kernels."""
    from faceforge.runtime import LiteRTModel

    interp = LiteRTModel(path, num_threads=threads).interpreter
    ops = [o["op_name"] for o in interp._get_ops_details()]
    return {"delegate_partitions": ops.count("DELEGATE"), "mirror_pads": ops.count("MIRROR_PAD"),
            "ops": len(ops) - ops.count("DELEGATE")}


# --------------------------------------------------------------------------------------------------
# Whole photo: the on-device steps and the server round trip


def find_portrait(data_root: Path | None = None) -> tuple[str, bytes] | None:
    """``(name, bytes)`` of the first portrait under ``<data>/photos/portraits`` in which BlazeFace finds a
    face, or ``None``."""
    from faceforge.faces.detect import FaceDetector
    from faceforge.imaging import decode_image
    from faceforge.data.paths import data_root as default_root

    folder = (data_root or default_root()) / "photos" / "portraits"
    if not folder.is_dir():
        return None
    detector = None
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        try:
            data = p.read_bytes()
            rgb = decode_image(data)
            detector = detector or FaceDetector()
            if detector.detect(rgb):
                return f"portraits/{p.name}", data
        except Exception:  # noqa: BLE001 - an unreadable photo is simply not chosen
            continue
    return None


def _checkpoint(family: str, model, arch: str, config: dict, size: int, folder: Path) -> Path:
    """Save ``model`` as a checkpoint the server's loaders read, served at crop side ``size``."""
    from faceforge.checkpoints import save_checkpoint

    meta = {"version": f"bench-{arch}-{size}", "config": {"crop_size": size}}
    meta.update({"direction": "A->B"} if family == "translate" else {"input": "rerender"})
    name = "G_A.pt" if family == "translate" else "G.pt"
    return save_checkpoint(folder / name, model, arch, config, meta)


def _jpeg(photo: bytes) -> bytes:
    """The photo re-encoded as the JPEG (quality 90) the server path uploads."""
    from faceforge.imaging import decode_image, encode_image

    return encode_image(decode_image(photo), fmt="jpeg", quality=90)


def on_device_steps(family: str, checkpoint: Path, photo: bytes, threads: int, repeats: int) -> dict[str, list]:
    """Milliseconds of the whole-photo steps around the generator, on-device style (LiteRT detector and
    Face Mesh at ``threads``): ``decode`` (of ``photo``'s bytes) + ``detect``/``align``/``paste`` (translate) or
    ``detect``/``landmarks``/``render`` (frontalize), ``repeats`` runs after one warm-up.

    Raises:
        NoFaceError: no face in the photo.
    """
    import warnings

    from faceforge.imaging import decode_image

    rgb = decode_image(photo)
    if family == "translate":
        from faceforge.faces.detect import FaceDetector
        from faceforge.translate import FaceTranslator

        tool = FaceTranslator("age", weights=checkpoint, detector=FaceDetector(num_threads=threads))

        def run():
            return tool.translate(rgb, faces="largest").timings_ms
        skip = "translate"
    else:
        from faceforge.frontalize import Frontalizer

        tool = Frontalizer(weights=checkpoint, num_threads=threads)

        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return tool.frontalize(rgb, faces="largest").timings_ms
        skip = "generate"
    steps: dict[str, list] = {"decode": []}
    run()  # warm-up
    for _ in range(repeats):
        t0 = time.perf_counter()
        decode_image(photo)
        steps["decode"].append(_ms(t0))
        for k, v in run().items():
            if k != skip:
                steps.setdefault(k, []).append(float(v))
    return steps


def round_trip(family: str, checkpoint: Path, photo: bytes, threads: int, repeats: int) -> dict[str, Any]:
    """Whole-photo round trips to a loopback server serving ``checkpoint`` at ``threads`` torch threads.

    Returns ``{"encode", "round_trip", "server_total", "transport", "upload_bytes", "download_bytes"}``
    (lists; ms and bytes), ``"server_steps"`` (``{step: [ms]}`` from the response's ``Server-Timing``) and
    ``"error"`` (the first non-200 answer, else ``None``).
    """
    import requests
    import torch

    from faceforge.imaging import decode_image, encode_image
    from server import create_app
    from server.testing import serve_in_thread

    fam = FAMILIES[family]
    form = {"faces": "largest", **({"format": "jpeg"} if family == "translate" else {"response": "image"})}
    rgb = decode_image(photo)
    out: dict[str, Any] = round_trip_samples()
    out["server_steps"], out["error"] = {}, None
    before = torch.get_num_threads()  # the server sets torch threads for the whole process: restored below
    try:
        app = create_app({fam["weights_key"]: str(checkpoint), "torch_threads": threads, "max_faces": 1})
        with serve_in_thread(app, timeout=60) as url, requests.Session() as http:
            for r in range(repeats + 1):
                t0 = time.perf_counter()
                jpeg = encode_image(rgb, fmt="jpeg", quality=90)
                t1 = time.perf_counter()
                resp = http.post(url + fam["endpoint"], files={"image": ("photo.jpg", jpeg, "image/jpeg")}, data=form,
                                 timeout=600)
                rt = _ms(t1)
                if resp.status_code != 200:
                    out["error"] = f"HTTP {resp.status_code}: {resp.text[:300]}"
                    break
                if r == 0:
                    continue  # warm-up: first kernels, lazy detector / Face Mesh loads
                srv = {}
                for part in resp.headers.get("Server-Timing", "").split(","):
                    key, _, dur = part.strip().partition(";dur=")
                    if dur:
                        srv[key] = float(dur)
                add_round_trip(out, out["server_steps"], (t1 - t0) * 1e3, rt, srv, len(jpeg), len(resp.content))
    finally:
        torch.set_num_threads(before)
    return out


# --------------------------------------------------------------------------------------------------
# The run


def _check_args(sizes, threads, formats, families) -> list:
    from export.formats import FORMATS

    if not sizes or any(int(s) < 16 or int(s) % 4 for s in sizes):
        raise ValueError(f"sizes must be multiples of 4 and >= 16, got {list(sizes)}")
    if not threads or any(int(t) < 1 for t in threads):
        raise ValueError(f"threads must be >= 1, got {list(threads)}")
    unknown = [f for f in families if f not in FAMILIES]
    if not families or unknown:
        raise ValueError(f"families must be among {', '.join(FAMILIES)}, got {list(families)}")
    runnable = [n for n, f in FORMATS.items() if f.runs_on_linux]
    bad = [f for f in formats if f not in runnable]
    if bad:
        raise ValueError(f"format(s) {', '.join(bad)} cannot be timed here; choose among {', '.join(runnable)}")
    return [FORMATS[n] for n in dict.fromkeys(formats)]


def run(sizes: Sequence[int] = (256, 128), threads: Sequence[int] = (1, 2),
        formats: Sequence[str] = DEFAULT_FORMATS, families: Sequence[str] = ("translate", "frontalize"),
        translate_weights: str | Path | None = None, frontalize_weights: str | Path | None = None,
        repeats: int = 5, warmup: int = 2, calibration_size: int = 32, assets: Path | None = None,
        photo: str | Path | None = "auto", round_trips: bool = True,
        model_kwargs: dict[str, dict[str, Any]] | None = None, out_dir: Path = RESULTS_DIR,
        name: str = DEFAULT_NAME, plot: bool = True, seed: int = 0,
        pad_graphs: Sequence[str] = (DEFAULT_PAD_GRAPH,), rounds: int = 1) -> dict[str, Any]:
    """Measure every family x size (see the module docstring) and write ``<out_dir>/<name>.{json,md,png}``.

    Args:
        sizes: input sides in pixels (multiples of 4, >= 16).
        threads: LiteRT / ONNX Runtime threads of the on-device rows and torch threads of the server rows.
        formats: export formats to time (runnable here: ``onnx``, ``tflite_fp32``, ``tflite_fp16``,
            ``tflite_dynint8``, ``tflite_int8``).
        families: ``translate`` and/or ``frontalize``.
        translate_weights, frontalize_weights: generator checkpoints (run folder, ``G_A.pt`` / ``G.pt``,
            ``last.pt``); ``None``: random weights.
        repeats, warmup: timed and untimed calls per configuration (round trips: one warm-up request).
        calibration_size: synthetic calibration images of ``tflite_int8``.
        assets: a ``mobile_assets`` folder whose manifest files are timed instead of exporting, when of
            the right model and size and no weights were given (default: the repository's).
        photo: ``"auto"`` (first portrait with a face in the shared data), a photo path, or ``None``
            (no whole-photo rows).
        round_trips: run the HTTP round trips (the slowest part with the full models).
        model_kwargs: constructor overrides per registry name for the random models (e.g. narrow test
            models ``{"cyclegan_mobile": {"ngf": 4}}``).
        out_dir, name: where to write the results.
        plot: write the PNG (matplotlib).
        seed: seed of the random weights and inputs.
        pad_graphs: the LiteRT graphs of reflection padding to time for generators that have it
            (:data:`PAD_GRAPHS`; ``("mirror_pad", "concat")`` times the graph before and after the XNNPACK
            fix side by side). Rows carry ``pad_graph``, ``delegate_partitions`` and ``mirror_pads``.
        rounds: on-device files are timed in this many round-robin rounds of ``repeats`` calls each (so a
            load change on a shared machine hits every file alike); statistics over all calls.

    Returns:
        The JSON document written to ``<name>.json``.

    Raises:
        ValueError: bad sizes, threads, families or a format that cannot run here.
        FileNotFoundError: ``photo`` is a path that does not exist.
        WeightsNotFoundError, CheckpointError: a weights path that is absent or not a generator of its family.
        ExportError: an export backend failed.
    """
    import torch

    from faceforge.cli.demo import DEFAULT_ASSETS

    fmts = _check_args(sizes, threads, formats, families)
    threads = [int(t) for t in threads]
    bad = [g for g in pad_graphs if g not in PAD_GRAPHS]
    if not pad_graphs or bad:
        raise ValueError(f"pad graphs must be among {', '.join(PAD_GRAPHS)}, got {list(pad_graphs)}")
    if int(rounds) < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    rounds = int(rounds)
    weights = {"translate": translate_weights, "frontalize": frontalize_weights}
    given = {f: load_given_weights(f, weights[f]) if weights[f] else None for f in families}
    assets = DEFAULT_ASSETS if assets is None else assets
    skipped: list[dict[str, str]] = []

    photo_name, photo_bytes = None, None
    if photo == "auto":
        found = find_portrait()
        if found:
            photo_name, photo_bytes = found
        else:
            skipped.append({"what": "whole-photo rows (round trips, on-device steps, networks)",
                            "reason": "no portrait with a detectable face under <data>/photos/portraits "
                                      "($FACEFORGE_DATA or ../shared/data)"})
    elif photo is not None:
        p = Path(photo)
        if not p.is_file():
            raise FileNotFoundError(f"photo not found: {p}")
        photo_name, photo_bytes = p.name, p.read_bytes()
    else:
        skipped.append({"what": "whole-photo rows", "reason": "no photo requested"})
    if photo_bytes is not None and not round_trips:
        skipped.append({"what": "server round trips", "reason": "disabled (--no-round-trip)"})

    models, on_device, server, trips, steps = [], [], [], [], []
    tmp = Path(tempfile.mkdtemp(prefix="generator-latency-"))
    try:
        for family in families:
            for size in [int(s) for s in sizes]:
                built = {}
                for role in ROLES:
                    model, arch, config, note = build_generator(family, role, size, given[family], weights[family],
                                                                model_kwargs, seed)
                    built[role] = (model, arch, config, note)
                    models.append({"family": family, "size": size, "role": role, "model": arch, "config": config,
                                   "weights": note, **_complexity(model, size)})
                    for t in threads:
                        v = time_torch(model, size, t, repeats, warmup)
                        server.append({"family": family, "size": size, "role": role, "model": arch, "threads": t,
                                       "ms": _stat(v)})
                        print(f"{family:<10} {size:>4}  server {role:<6} {arch:<17} {t}t  {Stat.of(v)} ms", flush=True)

                # on-device: exported files of the mobile generator (per reflection-pad graph, see PAD_GRAPHS)
                model, arch, config, note = built["mobile"]
                padded = has_reflection_pads(model)
                variants = list(pad_graphs) if padded else [None]
                jobs = []  # (format, pad graph, path, source)
                for k, variant in enumerate(variants):
                    fm = [f for f in fmts if k == 0 or f.name.startswith("tflite")]  # ONNX: one graph only
                    use_listed = given[family] is None and (not padded or variant == DEFAULT_PAD_GRAPH)
                    listed = manifest_files(assets, arch, size) if use_listed else {}
                    to_export = [f for f in fm if f.name not in listed]
                    files = {f: (p, "mobile_assets/" + e["file"]) for f, (p, e) in listed.items()
                             if f in {x.name for x in fm}}
                    if to_export:
                        written = export_at_size(pad_variant(model, variant), arch, size, to_export,
                                                 tmp / f"{family}-{size}-{variant}", calibration_size, seed)
                        files.update({f: (p, f"exported here ({note})") for f, p in written.items()})
                    jobs += [(f, variant if f.name.startswith("tflite") else None, *files[f.name]) for f in fm]
                times = {(i, t): [] for i in range(len(jobs)) for t in threads}
                inputs = {}
                for _ in range(rounds):  # round-robin, so a load change on the shared machine hits every file
                    for i, (f, variant, path, source) in enumerate(jobs):
                        for t in threads:
                            v, inputs[i] = time_file(path, t, repeats, warmup, seed)
                            times[i, t] += v
                for i, (f, variant, path, source) in enumerate(jobs):
                    for t in threads:
                        v = times[i, t]
                        row = {"family": family, "size": size, "model": arch, "format": f.name,
                               "precision": f.precision, "threads": t, "file": path.name,
                               "bytes": path.stat().st_size, "source": source, "input": inputs[i],
                               "pad_graph": variant, "ms": _stat(v)}
                        if path.suffix == ".tflite":
                            row.update(tflite_graph(path, t))
                        on_device.append(row)
                        tag = f"{f.name}{'/' + variant if variant else ''}"
                        print(f"{family:<10} {size:>4}  device {tag:<22} {t}t  {Stat.of(v)} ms", flush=True)

                if photo_bytes is None:
                    continue
                ckpts = {role: _checkpoint(family, b[0], b[1], b[2], size, tmp / f"ckpt-{family}-{size}-{role}")
                         for role, b in built.items()}
                for t in threads:  # the phone decodes the same JPEG the server path uploads
                    s = on_device_steps(family, ckpts["mobile"], _jpeg(photo_bytes), t, repeats)
                    steps.append({"family": family, "size": size, "threads": t,
                                  "steps_ms": {k: _stat(v) for k, v in s.items()}})
                if not round_trips:
                    continue
                for role in ROLES:
                    for t in threads:
                        r = round_trip(family, ckpts[role], photo_bytes, t, repeats)
                        row = {"family": family, "size": size, "role": role, "model": built[role][1], "threads": t,
                               "error": r["error"],
                               "server_steps_ms": {k: _stat(v) for k, v in r["server_steps"].items()},
                               **{k: _stat(r[k]) for k in ("encode", "round_trip", "server_total", "transport",
                                                           "upload_bytes", "download_bytes")}}
                        trips.append(row)
                        if r["error"]:
                            skipped.append({"what": f"round trip {family} {size} {role} {t}t", "reason": r["error"]})
                        else:
                            print(f"{family:<10} {size:>4}  HTTP   {role:<6} {t}t  {Stat(**row['round_trip'])} ms",
                                  flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    any_random = any(RANDOM_NOTE in m["weights"] for m in models)
    doc = {
        "benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine(),
        "processor": platform.processor() or None, "cpus": os.cpu_count(), "torch": torch.__version__,
        "runtimes": _runtime_versions(), "sizes": [int(s) for s in sizes], "threads": threads,
        "formats": [f.name for f in fmts], "repeats": repeats, "warmup": warmup, "rounds": rounds,
        "pad_graphs": list(pad_graphs),
        "weights": {f: (str(weights[f]) if weights[f] else None) for f in families},
        "weights_note": ("rows marked random run seeded random weights: speed does not depend on the values"
                         if any_random else "all rows run the given weights"),
        "photo": {"name": photo_name, "bytes": len(photo_bytes)} if photo_bytes else None,
        "models": models, "on_device": on_device, "server_torch": server, "round_trips": trips,
        "on_device_steps": steps, "skipped": skipped,
    }
    doc["networks"], doc["assumptions"] = network_model(doc)
    doc["litert_onnx_ratios"] = litert_onnx_ratios(doc)
    write_results(doc, out_dir, name, markdown, write_plot if plot else None)
    return doc


def _runtime_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("ai-edge-litert", "onnxruntime", "litert-torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def reference_format(doc: dict[str, Any], family: str, size: int) -> str | None:
    """The on-device file the network model uses: ``tflite_int8`` when timed, else the fastest at the first
    thread count."""
    t0 = doc["threads"][0]
    rows = [r for r in doc["on_device"] if r["family"] == family and r["size"] == size and r["threads"] == t0]
    if not rows:
        return None
    if any(r["format"] == "tflite_int8" for r in rows):
        return "tflite_int8"
    return min(rows, key=lambda r: r["ms"]["median"])["format"]


def network_model(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """Phone-network rows (ms, medians) per family, size and profile of :data:`NETWORKS`, and the
    assumptions behind them. Empty when no round trip was measured."""
    t0 = doc["threads"][0]
    rows = []
    for family in dict.fromkeys(m["family"] for m in doc["models"]):
        for size in doc["sizes"]:
            fmt = reference_format(doc, family, size)
            st = next((s for s in doc["on_device_steps"] if s["family"] == family and s["size"] == size
                       and s["threads"] == t0), None)
            trips = {r["role"]: r for r in doc["round_trips"] if r["family"] == family and r["size"] == size
                     and r["threads"] == t0 and not r["error"] and r["round_trip"]}
            if fmt is None or st is None or not trips:
                continue
            cands = [r for r in doc["on_device"] if r["family"] == family and r["size"] == size
                     and r["threads"] == t0 and r["format"] == fmt]
            gen = next((r for r in cands if r.get("pad_graph") in (None, DEFAULT_PAD_GRAPH)), cands[0])["ms"]["median"]
            on_device = gen + sum(v["median"] for v in st["steps_ms"].values() if v)
            for net, network in NETWORKS.items():
                rtt, up_mbit, down_mbit = network
                row = {"family": family, "size": size, "network": net, "rtt_ms": rtt, "uplink_mbit_s": up_mbit,
                       "downlink_mbit_s": down_mbit, "on_device_format": fmt, "on_device_ms": on_device}
                for role, r in trips.items():
                    modeled = phone_network_ms(r["encode"]["median"], r["round_trip"]["median"],
                                               r["upload_bytes"]["median"], r["download_bytes"]["median"], network)
                    row[f"server_{role}_warm_ms"] = modeled["warm_ms"]
                    row[f"server_{role}_cold_ms"] = modeled["cold_ms"]
                    row[f"transfer_{role}_ms"] = modeled["transfer_ms"]
                ref = row.get("server_full_warm_ms", row.get("server_mobile_warm_ms"))
                row["on_device_wins_by_ms"] = ref - on_device
                row["speedup"] = ref / on_device if on_device else None
                rows.append(row)
    text = (f"on-device = whole-photo steps measured on-device style at {t0} thread(s) (decode of the uploaded "
            f"JPEG, LiteRT detection, "
            f"alignment / landmarks, paste or rerender) + the reference file's invoke (tflite_int8 when timed, "
            f"else the fastest) at {t0} thread(s), on this x86 CPU; server warm = client JPEG encode (quality 90) + "
            f"measured loopback round trip (server work included, torch {t0} thread(s)) + 1 RTT + upload of the "
            f"photo JPEG and download of the answer (translate: the photo as JPEG; frontalize: the face as PNG) "
            f"at the profile's rates; cold adds {NEW_CONNECTION_RTTS} RTTs (TCP + TLS 1.3); 'wins by' compares "
            f"with the full server model.")
    return rows, text


def litert_onnx_ratios(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per LiteRT row: its median over the ONNX Runtime row's median of the same family, size and threads
    (both timed in this run); empty without ONNX rows."""
    onnx = {(r["family"], r["size"], r["threads"]): r["ms"]["median"] for r in doc["on_device"]
            if r["format"] == "onnx"}
    out = []
    for r in doc["on_device"]:
        ref = onnx.get((r["family"], r["size"], r["threads"]))
        if r["format"].startswith("tflite") and ref:
            out.append({"family": r["family"], "size": r["size"], "threads": r["threads"], "format": r["format"],
                        "pad_graph": r.get("pad_graph"), "litert_ms": r["ms"]["median"], "onnx_ms": ref,
                        "ratio": r["ms"]["median"] / ref})
    return out


# --------------------------------------------------------------------------------------------------
# Output


def _gmacs(v: int | None) -> str:
    return f"{v / 1e9:.3f}" if v else "-"


def markdown(doc: dict[str, Any]) -> str:
    """The results as Markdown: models, on-device invokes, server forwards, round trips, steps, networks."""
    rt = doc["runtimes"]
    lines = [f"# Generator latency: on-device vs server, image-to-image models ({doc['date']})", "",
             f"{doc['machine']} CPU ({doc['cpus']} logical cores; not a phone), torch {doc['torch']}, "
             f"ai-edge-litert {rt.get('ai-edge-litert')}, onnxruntime {rt.get('onnxruntime')}. Median / p90 in ms of "
             f"{doc['repeats']} calls after {doc['warmup']} warm-up"
             + (f" (on-device files: {doc['rounds']} round-robin rounds of them)" if doc.get("rounds", 1) > 1 else "")
             + ", batch 1. Weights: "
             + ", ".join(f"{f} {w or 'random'}" for f, w in doc["weights"].items()) + f"; {doc['weights_note']}.",
             "", "## Models", "",
             "| family | size | role | model | params | GMACs (torch counter) | GMACs (output-pixel) | weights |",
             "|---|---:|---|---|---:|---:|---:|---|"]
    for m in doc["models"]:
        lines.append(f"| {m['family']} | {m['size']} | {m['role']} | {m['model']} | {m['params']:,} | "
                     f"{_gmacs(m['macs'])} | {_gmacs(m['macs_output_pixel'])} | {m['weights']} |")
    lines += ["", "## On-device style: mobile generator file, one invoke (input already in the file's dtype)", "",
              "Reflection pad graph: `mirror_pad` = TFLite MIRROR_PAD ops (no XNNPACK kernel), `concat` = slices + "
              "concatenations (delegated); XNNPACK partitions: DELEGATE nodes after delegation (1 = the whole "
              "graph on XNNPACK).", "",
              "| family | size | format | pad graph | input | file KB | threads | XNNPACK partitions | median / p90 ms |",
              "|---|---:|---|---|---|---:|---:|---:|---:|"]
    for r in doc["on_device"]:
        inp = f"{'x'.join(map(str, r['input']['shape']))} {r['input']['dtype']}"
        parts = r.get("delegate_partitions")
        lines.append(f"| {r['family']} | {r['size']} | {r['format']} | {r.get('pad_graph') or '-'} | {inp} | "
                     f"{r['bytes'] / 1024:.0f} | {r['threads']} | {'-' if parts is None else parts} | "
                     f"{Stat(**r['ms'])} |")
    ratios = litert_onnx_ratios(doc)
    if ratios:
        lines += ["", "## LiteRT / ONNX Runtime (median over median, same run, same threads)", "",
                  "| family | size | threads | format | pad graph | LiteRT ms | ONNX Runtime ms | ratio |",
                  "|---|---:|---:|---|---|---:|---:|---:|"]
        for q in ratios:
            lines.append(f"| {q['family']} | {q['size']} | {q['threads']} | {q['format']} | {q['pad_graph'] or '-'} | "
                         f"{q['litert_ms']:.2f} | {q['onnx_ms']:.2f} | {q['ratio']:.2f} |")
    lines += ["", "## Server: PyTorch generator forward (eval, inference_mode, float32 NCHW)", "",
              "| family | size | role | model | torch threads | median / p90 ms |", "|---|---:|---|---|---:|---:|"]
    for r in doc["server_torch"]:
        lines.append(f"| {r['family']} | {r['size']} | {r['role']} | {r['model']} | {r['threads']} | "
                     f"{Stat(**r['ms'])} |")
    if doc["round_trips"]:
        lines += ["", f"## Server: whole-photo round trip over loopback HTTP ({doc['photo']['name']}, "
                      f"{doc['photo']['bytes'] / 1024:.0f} KB)", "",
                  "| family | size | role | torch threads | client encode | round trip | server total | transport "
                  "| up / down KB | server steps (medians) |", "|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in doc["round_trips"]:
            if r["error"] or not r["round_trip"]:
                lines.append(f"| {r['family']} | {r['size']} | {r['role']} | {r['threads']} | failed: "
                             f"{(r['error'] or '')[:80]} | | | | | |")
                continue
            srv = ", ".join(f"{k} {v['median']:.1f}" for k, v in r["server_steps_ms"].items() if v and k != "total")
            lines.append(f"| {r['family']} | {r['size']} | {r['role']} | {r['threads']} | {Stat(**r['encode'])} | "
                         f"{Stat(**r['round_trip'])} | {Stat(**r['server_total'])} | {Stat(**r['transport'])} | "
                         f"{r['upload_bytes']['median'] / 1024:.0f} / {r['download_bytes']['median'] / 1024:.0f} | "
                         f"{srv} |")
    if doc["on_device_steps"]:
        lines += ["", "## On-device style: whole-photo steps around the generator", "",
                  "| family | size | threads | steps, median / p90 ms |", "|---|---:|---:|---|"]
        for s in doc["on_device_steps"]:
            parts = "; ".join(f"{k} {Stat(**v)}" for k, v in s["steps_ms"].items() if v)
            lines.append(f"| {s['family']} | {s['size']} | {s['threads']} | {parts} |")
    if doc["networks"]:
        lines += ["", "## Modeled phone networks (per photo, medians)", "",
                  "| family | size | network | RTT ms | up / down Mbit/s | on-device ms (file) "
                  "| server full warm / cold ms "
                  "| server mobile warm ms | on-device wins by |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for n in doc["networks"]:
            full = (f"{n['server_full_warm_ms']:.0f} / {n['server_full_cold_ms']:.0f}"
                    if "server_full_warm_ms" in n else "-")
            mob = f"{n['server_mobile_warm_ms']:.0f}" if "server_mobile_warm_ms" in n else "-"
            speed = f" ({n['speedup']:.1f}x)" if n["speedup"] else ""
            lines.append(f"| {n['family']} | {n['size']} | {n['network']} | {n['rtt_ms']:.0f} | "
                         f"{n['uplink_mbit_s']:g} / {n['downlink_mbit_s']:g} | {n['on_device_ms']:.0f} "
                         f"({n['on_device_format']}) | {full} | {mob} | {n['on_device_wins_by_ms']:.0f} ms{speed} |")
        lines += ["", doc["assumptions"]]
    if doc["skipped"]:
        lines += ["", "## Skipped", ""] + [f"- {s['what']}: {s['reason']}" for s in doc["skipped"]]
    return "\n".join(lines) + "\n"


def write_plot(doc: dict[str, Any], path: Path) -> None:
    """Left: generator latency per row (log scale); right: modeled per-photo totals per network."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows = len(doc["on_device"]) + len(doc["server_torch"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, max(4.8, 0.22 * n_rows)))
    bars = [(f"{r['family']} {r['size']} {r['format']}{'/' + r['pad_graph'] if r.get('pad_graph') else ''} "
             f"{r['threads']}t", r["ms"], "tab:blue") for r in doc["on_device"]]
    bars += [(f"{r['family']} {r['size']} torch {r['role']} {r['threads']}t", r["ms"],
              "tab:red" if r["role"] == "full" else "tab:orange") for r in doc["server_torch"]]
    y = np.arange(len(bars))
    ax1.barh(y, [b[1]["median"] for b in bars], xerr=[[0] * len(bars), [b[1]["p90"] - b[1]["median"] for b in bars]],
             color=[b[2] for b in bars])
    ax1.set_yticks(y, [b[0] for b in bars], fontsize=7)
    ax1.invert_yaxis()
    ax1.set_xscale("log")
    ax1.set_xlabel("ms per call (median, whisker to p90)")
    ax1.set_title("generator: on-device file (blue) vs torch full (red) / mobile (orange)")
    nets = list(NETWORKS)
    groups = list(dict.fromkeys((n["family"], n["size"]) for n in doc["networks"]))
    if groups:
        width = 0.8 / (2 * len(groups))
        for i, (fam, size) in enumerate(groups):
            rows = {n["network"]: n for n in doc["networks"] if n["family"] == fam and n["size"] == size}
            x = np.arange(len(nets)) + (2 * i - len(groups)) * width + width / 2
            ax2.bar(x, [rows[n]["on_device_ms"] for n in nets], width, label=f"{fam} {size} on-device")
            ax2.bar(x + width, [rows[n].get("server_full_warm_ms", 0) for n in nets], width, hatch="//",
                    label=f"{fam} {size} server full (warm)")
        ax2.set_xticks(np.arange(len(nets)), nets)
        ax2.set_yscale("log")
        ax2.set_ylabel("ms per photo (median)")
        ax2.legend(fontsize=7)
    else:
        ax2.text(0.5, 0.5, "no round trip measured", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_axis_off()
    ax2.set_title("whole photo over phone networks")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------
# CLI


def _command():
    import click

    @click.command("generator-latency")
    @click.option("--translate-weights", default=None, metavar="PATH",
                  help="CycleGAN translator: run folder, G_A.pt or last.pt [default: random weights].")
    @click.option("--frontalize-weights", default=None, metavar="PATH",
                  help="Frontalizer: run folder, G.pt or last.pt [default: random weights].")
    @click.option("--sizes", default="256,128", show_default=True, help="Comma-separated input sides.")
    @click.option("--threads", default="1,2", show_default=True, help="Comma-separated runtime / torch threads.")
    @click.option("--formats", default=",".join(DEFAULT_FORMATS), show_default=True,
                  help="Exported formats to time (onnx, tflite_fp32, tflite_fp16, tflite_dynint8, tflite_int8).")
    @click.option("--families", default="translate,frontalize", show_default=True)
    @click.option("--repeats", type=click.IntRange(1), default=5, show_default=True)
    @click.option("--warmup", type=click.IntRange(0), default=2, show_default=True)
    @click.option("--rounds", type=click.IntRange(1), default=1, show_default=True,
                  help="Round-robin rounds of --repeats calls per on-device file (a shared machine's load hits "
                       "every file alike).")
    @click.option("--pad-graphs", default=DEFAULT_PAD_GRAPH, show_default=True,
                  help="LiteRT graphs of reflection padding to time (mirror_pad: before the XNNPACK fix, concat: "
                       "after); e.g. mirror_pad,concat.")
    @click.option("--photo", default="auto", show_default=True,
                  help="'auto' (first shared portrait with a face), a photo path, or 'none'.")
    @click.option("--no-round-trip", is_flag=True, help="Skip the HTTP round trips (and the network model).")
    @click.option("--assets", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="mobile_assets folder whose files of the right model and size are timed [default: the "
                       "repository's].")
    @click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
                  show_default=True)
    @click.option("--name", default=DEFAULT_NAME, show_default=True, help="Stem of the result files.")
    def main(translate_weights, frontalize_weights, sizes, threads, formats, families, repeats, warmup, rounds,
             pad_graphs, photo, no_round_trip, assets, out_dir, name) -> None:
        """Latency of the image-to-image generators: on-device files (LiteRT fp16/int8, ONNX Runtime) vs server
        (PyTorch full and mobile, whole-photo HTTP round trip), at 256 and 128, plus phone networks.

        Rows without weights run random weights (speed does not depend on the values). Never asserts speed.
        """
        from faceforge.errors import FaceforgeError

        try:
            run(parse_ints(sizes), parse_ints(threads), parse_names(formats), parse_names(families),
                translate_weights, frontalize_weights,
                repeats, warmup, assets=assets, photo=None if photo == "none" else photo,
                round_trips=not no_round_trip, out_dir=out_dir, name=name, rounds=rounds,
                pad_graphs=parse_names(pad_graphs))
        except (ValueError, FileNotFoundError, FaceforgeError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"wrote {Path(out_dir) / name}.json|md|png")

    return main


main = _command()

if __name__ == "__main__":  # pragma: no cover
    main()
