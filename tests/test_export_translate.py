"""Export of image-to-image models (task ``translate``): PSNR parity, UTKFace data, manifest entries.

The round trips (``@pytest.mark.slow``, ``@pytest.mark.export``; ~1-2 min on 2 busy cores) export a
tiny randomly initialised ``cyclegan_mobile`` (ngf 4, 2 residual blocks, 64x64 input) registered for
the module as ``cyclegan_mobile_tiny``. Its BatchNorm statistics are estimated on synthetic images
(as the emotion tests do), so its output varies with the input instead of sitting near 0. Every file
must meet its row's PSNR bound (fp16 >= 50 dB, int8 >= 35 dB) against PyTorch; no bound override
was needed. Figures seen here (mean PSNR on 16 synthetic 64x64 inputs, full-integer int8 calibrated
on 32): onnx 147.5 dB, tflite_fp16 86.4, tflite_dynint8 53.8, tflite_int8 48.5, coreml_fp16 (proxy)
82.1, coreml_int8w (proxy) 58.3; with ngf 8: 137.8, 78.1, 45.6, 42.4, 73.6, 49.4. Trained weights and
real faces will differ.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from export import calibration, parity
from export import manifest as mf
from export.base import Artifact, ExportJob, TensorInfo
from export.formats import FORMATS, ParityBounds
from export.schema import SCHEMA
from faceforge.errors import ParityError
from faceforge.models import get_spec, registry

TINY = "cyclegan_mobile_tiny"
SIZE = 64
BASE = get_spec("cyclegan_mobile")
TINY_SPEC = dataclasses.replace(
    BASE, name=TINY, input=dataclasses.replace(BASE.input, shape=(3, SIZE, SIZE)),
    kwargs={**BASE.kwargs, "ngf": 4, "n_blocks": 2}, description="tiny test generator (random weights)")


def _validate(instance: dict, definition: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = {"$schema": SCHEMA["$schema"], "$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{definition}"}
    jsonschema.Draft202012Validator(schema).validate(instance)


# --- fast: table, data source, PSNR figures, manifest records (no converters) ------------------------------
def test_psnr_bounds_per_row_and_classifier_bounds_unchanged():
    for name in ("tflite_fp16", "coreml_fp16"):
        assert FORMATS[name].bounds.min_psnr_db == 50.0
    for name in ("tflite_dynint8", "tflite_int8", "coreml_int8w"):
        assert FORMATS[name].bounds.min_psnr_db == 35.0
    assert FORMATS["tflite_int8"].bounds.min_top1_agreement == 0.99
    row = FORMATS["tflite_dynint8"]
    assert row.precision == "int8w" and row.runs_on_linux and not row.needs_calibration
    assert row.relpath(TINY) == f"android/{TINY}_dynint8.tflite"


def test_cyclegan_models_read_utkface_young_faces():
    for name in ("cyclegan_mobile", "cyclegan_resnet9", TINY):
        what, loader = calibration.data_source(name)
        assert "UTKFace" in what and "18-29" in what
    assert calibration.data_source("mini_xception")[0].startswith("FER2013")  # exact name still wins
    assert calibration.data_source("no_such_model") is None
    assert calibration.data_description("cyclegan_mobile").startswith("UTKFace young faces")


def test_random_calibration_still_works_for_image_models():
    x = calibration.representative_dataset(TINY_SPEC, 4, seed=1, source="random")
    assert x.shape == (4, 3, SIZE, SIZE) and x.dtype == np.float32 and -1 <= x.min() and x.max() <= 1


@pytest.mark.data
def test_utkface_parity_faces_resized_and_split_like_build_age_split(data_dir):
    x, labels = calibration.parity_dataset(TINY_SPEC, limit=3, seed=0)
    assert x.shape == (3, 3, SIZE, SIZE) and labels is None
    assert -1.0 <= x.min() < -0.5 and 0.5 < x.max() <= 1.0  # real faces span most of the range
    test, _ = calibration._utkface_young("test", 2, 0)
    train, _ = calibration._utkface_young("train", 2, 0)
    assert test.shape == train.shape == (2, 200, 200, 3)  # chips as released; resized by parity_dataset
    assert not any(np.array_equal(a, b) for a in test for b in train)  # disjoint splits


def test_psnr_compare_enforces_the_row_bound():
    rng = np.random.default_rng(0)
    ref = np.tanh(rng.normal(size=(4, 3, 16, 16))).astype(np.float32)
    fmt = FORMATS["tflite_int8"]
    step = 2 / 255  # one 8-bit pixel level in [-1, 1]
    close = parity.compare(fmt, ref, ref + rng.uniform(-step, step, ref.shape).astype(np.float32), None,
                           classifier=False)
    assert close.passed and 45 < close.psnr_db < 55 and close.top1_agreement is None
    noisy = parity.compare(fmt, ref, ref + rng.normal(0, 0.05, ref.shape).astype(np.float32), None,
                           classifier=False)
    assert not noisy.passed and noisy.psnr_db < 35 and "PSNR" in noisy.failures[0]
    relaxed = parity.compare(fmt, ref, ref + rng.normal(0, 0.05, ref.shape).astype(np.float32), None,
                             classifier=False, bounds=ParityBounds(0.99, 1.0, 25.0))
    assert relaxed.passed


def test_image_model_manifest_entry_validates(tmp_path):
    template = mf.face_template("utkface", SIZE)
    path = tmp_path / "android" / f"{TINY}_int8.tflite"
    path.parent.mkdir()
    path.write_bytes(b"not a real model")
    fmt = FORMATS["tflite_int8"]
    quant = {"scale": 2 / 255, "zero_point": 0}
    art = Artifact("tflite_int8", path, TensorInfo("image", [1, SIZE, SIZE, 3], "NHWC", "int8", quant),
                   TensorInfo("image_out", [1, SIZE, SIZE, 3], "NHWC", "int8", {"scale": 1 / 128, "zero_point": 0}),
                   output_values="image")
    ref = np.zeros((2, 3, SIZE, SIZE), np.float32)
    res = parity.compare(fmt, ref, ref + 0.001, None, classifier=False)
    entry = mf.model_entry(TINY_SPEC, fmt, art, res, version="t", provenance={"weights": "random"},
                           root=tmp_path, parity_dataset="synthetic", template=template)
    _validate(entry, "model_file")
    inp, out = entry["input"], entry["output"]
    assert inp["normalization"]["scale"] == pytest.approx(1 / 127.5) and inp["normalization"]["offset"] == -1.0
    assert out["values"] == "image" and out["value_range"] == [-1.0, 1.0] and "labels" not in out
    assert out["denormalization"]["scale"] == pytest.approx(127.5)
    assert out["denormalization"]["offset"] == pytest.approx(127.5)
    assert entry["face_alignment"]["template"] == "utkface" and entry["face_alignment"]["size"] == SIZE
    assert entry["parity"]["psnr_db"] >= 35 and "top1_agreement" not in entry["parity"]
    bad = json.loads(json.dumps(entry))
    bad["output"]["values"] = "pixels"
    with pytest.raises(Exception, match="pixels"):
        _validate(bad, "model_file")


def test_license_records_name_the_data_each_model_learned_from():
    records = mf.license_records([f"android/{TINY}_int8.tflite", "onnx/mini_xception.onnx"], ["detector/d.tflite"])
    by_note = {r["file"]: r["applies_to"] for r in records}
    assert by_note["LICENSES/UTKFace-weights-NOTE.md"] == [f"android/{TINY}_int8.tflite"]
    assert by_note["LICENSES/FER2013-weights-NOTE.md"] == ["onnx/mini_xception.onnx"]
    assert (mf.LICENSES_SRC / "UTKFace-weights-NOTE.md").is_file()


# --- round trips through the real toolchain ------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory, estimate_batchnorm):
    """The tiny generator registered as ``cyclegan_mobile_tiny`` for the module, its checkpoint, a job,
    parity inputs and PyTorch's outputs."""
    from faceforge.checkpoints import save_checkpoint

    mp = pytest.MonkeyPatch()
    mp.setitem(registry._REGISTRY, TINY, TINY_SPEC)
    torch.manual_seed(0)
    model = estimate_batchnorm(TINY_SPEC.factory(**TINY_SPEC.kwargs), TINY_SPEC, 64, 100)
    tmp = tmp_path_factory.mktemp("translate_export")
    ckpt = save_checkpoint(tmp / "tiny.pt", model, TINY, TINY_SPEC.kwargs, meta={"version": "test"})
    calib = calibration.representative_dataset(TINY_SPEC, 32, seed=1, source="random")
    x, _ = calibration.parity_dataset(TINY_SPEC, 16, seed=2, source="random")
    ref = parity.torch_outputs(model, x)
    assert ref.std() > 0.05, "test generator output must depend on its input"
    from export.exporter import embedded_metadata

    job = ExportJob(model, TINY_SPEC, "test", embedded_metadata(TINY_SPEC, "test"), calib, "32 random images")
    yield model, ckpt, job, x, ref, tmp
    mp.undo()


def _need(name: str) -> None:
    pytest.importorskip("coremltools" if name.startswith("coreml") else
                        "onnxruntime" if name.startswith("onnx") else "litert_torch", reason="export toolchain not installed")


@pytest.mark.slow
@pytest.mark.export
@pytest.mark.parametrize("name", ["onnx", "onnx_fp16", "tflite_fp16", "tflite_dynint8", "tflite_int8", "coreml_fp16",
                                  "coreml_int8w"])
def test_round_trip_psnr_meets_the_row_bound(tiny, name):
    _need(name)
    model, _, job, x, ref, tmp = tiny
    fmt = FORMATS[name]
    art = fmt.backend(job, tmp / fmt.relpath(TINY))
    res = parity.measure(fmt, art.path, art.input, art.output, model, x, None, reference=ref, classifier=False)
    print(f"{name}: PSNR {res.psnr_db:.1f} dB (worst image {res.psnr_min_db:.1f} dB), {art.path.stat().st_size} bytes")
    assert res.passed, res.failures
    assert res.psnr_db >= fmt.bounds.min_psnr_db
    if name.startswith("coreml"):
        assert res.validation.startswith("inspected")
        assert art.inspection["outputs"][0]["shape"] == [1, 3, SIZE, SIZE]
        assert art.inspection["inputs"] == [{"name": "image", "kind": "image", "dtype": "uint8", "color_space": "RGB",
                                             "shape": [1, 3, SIZE, SIZE]}]  # ImageType, scale 2/255, bias -1
        assert art.input.kind == "image" and art.output.kind == "tensor" and art.output.dtype == "float32"
        return
    layout = "NCHW" if name.startswith("onnx") else "NHWC"
    assert art.input.layout == layout and art.output.layout == layout
    if name == "tflite_int8":  # full integer, tanh included: no float op left inside
        assert art.input.dtype == art.output.dtype == "int8"
        assert art.output.quantization == {"scale": 1 / 128, "zero_point": 0}
        assert "DEQUANTIZE" not in art.inspection["ops"] and "TANH" in art.inspection["ops"]
    elif name == "tflite_dynint8":
        assert art.input.dtype == art.output.dtype == "float32"
        assert any("int8 weight tensors" in n for n in art.notes)
    elif name == "onnx_fp16":  # half-size weights, float32 I/O: every runtime feeds it as the fp32 file
        import onnx

        assert art.input.dtype == art.output.dtype == "float32"
        proto = onnx.load(str(art.path))
        big = [i for i in proto.graph.initializer if np.prod(i.dims) >= 16]
        assert big and all(i.data_type == onnx.TensorProto.FLOAT16 for i in big)
        assert art.inspection["weights"]["fp16_initializers"] == len(big) == art.inspection["ops"]["Cast"]
        fp32 = FORMATS["onnx"].backend(job, tmp / "fp32" / FORMATS["onnx"].relpath(TINY))
        saved = fp32.path.stat().st_size - art.path.stat().st_size  # 2 bytes per weight, less the Cast nodes
        assert saved >= 1.5 * art.inspection["weights"]["fp16_elements"] > 0


@pytest.mark.slow
@pytest.mark.export
def test_fp16_weights_over_256_kib_are_inlined_so_metadata_can_be_embedded(tmp_path):
    """ai-edge-quantizer writes weights of >= 256 KiB after the flatbuffer (buffer offsets); the
    metadata writer moves them back inside. ngf 32 (the real width) with 2 blocks: ~180 k parameters."""
    pytest.importorskip("litert_torch", reason="export toolchain not installed")
    from export.backends import read_tflite_metadata
    from export.exporter import embedded_metadata

    spec = dataclasses.replace(TINY_SPEC, kwargs={**TINY_SPEC.kwargs, "ngf": 32})
    torch.manual_seed(0)
    model = spec.factory(**spec.kwargs).eval()
    assert 2 * sum(p.numel() for p in model.parameters()) > 256 * 1024
    job = ExportJob(model, spec, "test", embedded_metadata(spec, "test"))
    fmt = FORMATS["tflite_fp16"]
    art = fmt.backend(job, tmp_path / "big_fp16.tflite")
    assert read_tflite_metadata(art.path)["name"] == TINY
    x, _ = calibration.parity_dataset(spec, 4, seed=2, source="random")
    res = parity.measure(fmt, art.path, art.input, art.output, model, x, None, classifier=False)
    assert res.passed, res.failures


@pytest.mark.slow
@pytest.mark.export
def test_run_export_writes_a_valid_manifest_for_a_translator(tiny, tmp_path):
    pytest.importorskip("litert_torch", reason="export toolchain not installed")
    pytest.importorskip("onnxruntime", reason="export toolchain not installed")
    pytest.importorskip("jsonschema")
    from export.exporter import run_export

    _, ckpt, *_ = tiny
    names = ["onnx", "tflite_dynint8", "tflite_int8"]
    out = tmp_path / "assets"
    report = run_export(TINY, [FORMATS[n] for n in names], weights=str(ckpt), out=out, calibration_size=16,
                        calibration_source="random", parity_limit=8, parity_source="random", seed=0)
    manifest = json.loads((out / "manifest.json").read_text())
    mf.validate_manifest(manifest)
    assert mf.verify_files(manifest, out) == []
    entries = {e["format"]: e for e in manifest["models"]}
    assert sorted(entries) == sorted(names)
    for name, e in entries.items():
        assert e["task"] == "translate" and e["output"]["values"] == "image"
        assert e["face_alignment"]["template"] == "utkface" and e["face_alignment"]["size"] == SIZE
        assert e["parity"]["psnr_db"] >= FORMATS[name].bounds.min_psnr_db
        assert "8 synthetic images" in e["parity"]["dataset"]
        assert e["app_steps"]["default_mode"] == "transfer"  # the aging app steps, from the library
        assert "UTKFace" in e["license"] and "non-commercial" in e["license"]  # the data terms travel with the file
        assert b"non-commercial" in (out / e["file"]).read_bytes()  # ONNX metadata_props / TFLite ModelMetadata
    assert entries["tflite_int8"]["input"]["quantization"]["zero_point"] in range(-128, 128)
    assert "RANDOM" in entries["tflite_int8"]["provenance"]["calibration"]
    notes = {r["file"]: r["applies_to"] for r in manifest["licenses"]}
    assert sorted(notes["LICENSES/UTKFace-weights-NOTE.md"]) == sorted(e["file"] for e in entries.values())
    assert (out / "LICENSES" / "UTKFace-weights-NOTE.md").is_file()
    assert all(o.ok for o in report.outcomes)


@pytest.mark.slow
@pytest.mark.export
def test_a_missed_psnr_bound_fails_loudly_and_writes_nothing(tiny, tmp_path):
    pytest.importorskip("onnxruntime", reason="export toolchain not installed")
    from export.exporter import run_export

    _, ckpt, *_ = tiny
    out = tmp_path / "assets"
    strict = {"onnx": dataclasses.replace(FORMATS["onnx"].bounds, min_psnr_db=1000.0)}
    with pytest.raises(ParityError, match="PSNR .* dB < 1000"):
        run_export(TINY, [FORMATS["onnx"]], weights=str(ckpt), out=out, parity_limit=4, parity_source="random",
                   write_manifest=False, bounds=strict)
    assert not any(p.is_file() for p in out.rglob("*"))


# --- per-layer int8 error (export.diagnose) ---------------------------------------------------------------
def test_diagnose_ranks_the_layers_an_outlier_channel_passes_through(one_torch_thread, estimate_batchnorm):
    """One channel with a +40 offset after the second downsampling widens the int8 range of every
    tensor it reaches (ReLU ``model.9``, residual blocks ``model.10``/``model.11``): they rank near the
    top. On the clean tiny model the fake-quantized whole model gave 47.8 dB against 48.5 dB for the
    real tflite_int8 file."""
    from export.diagnose import format_report, layer_errors

    torch.manual_seed(0)
    model = TINY_SPEC.factory(**TINY_SPEC.kwargs)
    with torch.no_grad():
        model.model[8].bias[0] += 40.0  # BatchNorm shift of channel 0 before ReLU model.9
    estimate_batchnorm(model, TINY_SPEC, 32, 100)
    calib = calibration.representative_dataset(TINY_SPEC, 8, seed=1, source="random")
    x, _ = calibration.parity_dataset(TINY_SPEC, 4, seed=2, source="random")
    report = layer_errors(model, calib, x)
    worst = [e.worst_db for e in report.layers]
    assert worst == sorted(worst) and report.images == 4
    assert report.all_int8_psnr_db < report.weights_only_psnr_db
    top = {e.name for e in report.layers[:5]}
    assert {"model.9", "model.10", "model.11"} <= top
    assert all(e.out_max > 30 for e in report.layers if e.name in ("model.9", "model.10", "model.11"))
    names = {e.name for e in report.layers}
    assert "model.7" not in names or next(e for e in report.layers if e.name == "model.7").psnr_activation_db is None
    assert not any(n.endswith(("model.0", "model.12")) for n in names)  # padding, nearest resize: exact
    text = format_report(report, top=3)
    assert "all int8" in text and len(text.splitlines()) == 5


# --- input size: the crop size the generator was trained at ----------------------------------------------
def test_export_input_size_follows_the_training_crop_unless_given():
    from export.exporter import trained_size, with_input_size

    net = torch.nn.Identity()
    assert trained_size(net, BASE) is None  # no checkpoint meta
    net.faceforge_meta = {"config": {"crop_size": 128}}
    assert trained_size(net, BASE) == 128
    assert trained_size(net, get_spec("mini_xception")) is None  # classifiers keep their fixed input
    spec = with_input_size(BASE, 128)
    assert spec.input.shape == (3, 128, 128) and spec.name == BASE.name and BASE.input.shape == (3, 256, 256)
    assert with_input_size(BASE, None) is BASE and with_input_size(BASE, 256) is BASE
    with pytest.raises(ValueError, match="multiple of 4"):
        with_input_size(BASE, 130)
    with pytest.raises(ValueError, match="fixed input"):
        with_input_size(get_spec("mini_xception"), 64)


@pytest.mark.slow
@pytest.mark.export
def test_onnx_export_runs_at_the_size_the_checkpoint_was_trained_at(tiny, tmp_path):
    pytest.importorskip("onnxruntime", reason="export toolchain not installed")
    from faceforge.checkpoints import save_checkpoint
    from export.exporter import run_export

    model, *_ = tiny
    ckpt = save_checkpoint(tmp_path / "g.pt", model, TINY, TINY_SPEC.kwargs,
                           meta={"version": "test", "config": {"crop_size": 32}})
    report = run_export(TINY, [FORMATS["onnx"]], weights=str(ckpt), out=tmp_path / "a", parity_limit=4,
                        parity_source="random", write_manifest=False)
    (outcome,) = report.outcomes
    import onnxruntime as ort

    session = ort.InferenceSession(str(outcome.artifact.path))
    assert session.get_inputs()[0].shape[1:] == [3, 32, 32]  # NCHW as PyTorch
    assert outcome.ok and outcome.parity.psnr_db >= 50
