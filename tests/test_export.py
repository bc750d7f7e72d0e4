"""Export: formats table, calibration guard, all-or-nothing writes, and per-format round trips.

Round trips (``@pytest.mark.export``, ~1 min on 2 cores) export a randomly initialised mini-Xception
whose BatchNorm statistics are estimated on synthetic faces (so its predictions vary with the input,
unlike a fresh network whose outputs are nearly constant) and run each file with the runtime's own
API, independently of :mod:`faceforge.ondevice.runners`, against PyTorch. The last test checks that the int8
file in ``mobile_assets/``, fed exactly as ``manifest.json`` says, predicts what PyTorch predicts on
real FER2013 test faces.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from export import calibration, parity
from export.base import Artifact, ExportJob, TensorInfo, try_export
from export.formats import FORMATS, ExportFormat, ParityBounds, parse_formats
from faceforge.errors import ExportError, ParityError
from faceforge.models import InputSpec, create_model, get_spec

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "mobile_assets"
SPEC = get_spec("mini_xception")


# --- formats table and CLI validation (no toolchain) ------------------------------------------------------
def test_parse_formats_all_list_and_unknown():
    assert [f.name for f in parse_formats("all")] == list(FORMATS)
    assert [f.name for f in parse_formats("tflite_int8, onnx,onnx")] == ["onnx", "tflite_int8"]  # table order
    with pytest.raises(ValueError, match="tflite_fp16"):  # the message lists the valid names
        parse_formats("tflite_int4")
    with pytest.raises(ValueError):
        parse_formats(" , ")


def test_table_rows_are_consistent():
    for f in FORMATS.values():
        assert f.platform in ("android", "ios", "any")
        assert (f.runner is not None) == f.runs_on_linux and (f.proxy is not None) != f.runs_on_linux
        assert f.backend.format_name == f.name  # each backend is wrapped by try_export(<its row name>)
        assert 0 < f.bounds.min_top1_agreement <= 1
    names = [f.relpath("m") for f in FORMATS.values()]
    assert len(set(names)) == len(names)
    assert FORMATS["tflite_int8"].bounds.min_top1_agreement >= 0.99
    assert FORMATS["tflite_int8"].bounds.max_accuracy_drop <= 1.0


def test_cli_rejects_unknown_format_and_test_only_options_into_default_out():
    from export.cli import export

    result = CliRunner().invoke(export, ["--formats", "tflite_int4"])
    assert result.exit_code == 2 and "coreml_int8w" in result.output
    result = CliRunner().invoke(export, ["--weights", "random"])
    assert result.exit_code == 2 and "for tests" in result.output
    result = CliRunner().invoke(export, ["--parity-set", "zero"])
    assert result.exit_code == 2
    for bad in ("tflite_int8.min_top1_agreement", "tflite_int9.min_top1_agreement=0.9", "onnx.speed=1",
                "onnx.min_psnr_db=high"):
        result = CliRunner().invoke(export, ["--out", "/nonexistent/x", "--bound", bad])
        assert result.exit_code == 2 and "--bound" in result.output, bad


# --- decorator ----------------------------------------------------------------------------------------------
def _job(model=None, calib=None) -> ExportJob:
    model = model if model is not None else create_model("mini_xception")
    return ExportJob(model, SPEC, "t", {"labels": json.dumps(list(SPEC.labels))}, calib)


def test_try_export_wraps_failures_with_context(tmp_path):
    @try_export("fake")
    def broken(job, path):
        raise RuntimeError("converter exploded\nlong trace")

    @try_export("fake")
    def lazy(job, path):  # claims success without writing
        return None

    with pytest.raises(ExportError, match="fake export of mini_xception failed.*RuntimeError: converter exploded") \
            as info:
        broken(_job(), tmp_path / "x.bin")
    assert info.value.extra["format"] == "fake" and isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(ExportError, match="without writing"):
        lazy(_job(), tmp_path / "y.bin")


# --- calibration --------------------------------------------------------------------------------------------
def test_preprocess_is_gray_over_127_5_minus_1():
    images = np.array([[[0, 255], [127, 128]]], np.uint8)
    spec = dataclasses.replace(SPEC, input=InputSpec(shape=(1, 2, 2), colour="gray"))
    x = calibration.preprocess(images, spec)
    assert x.shape == (1, 1, 2, 2) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], images[0] / 127.5 - 1, atol=1e-6)
    with pytest.raises(ValueError, match="expects"):
        calibration.preprocess(np.zeros((1, 3, 3), np.uint8), spec)


def test_int8_calibration_refuses_to_run_without_data(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEFORGE_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(ExportError, match="FACEFORGE_DATA"):
        calibration.representative_dataset(SPEC, 10)
    x = calibration.representative_dataset(SPEC, 10, source="random")  # explicit opt-in only
    assert x.shape == (10, 1, 48, 48) and x.min() >= -1 and x.max() <= 1 and x.std() > 0.1
    np.testing.assert_array_equal(x, calibration.representative_dataset(SPEC, 10, source="random"))  # seeded


def test_representative_dataset_uses_real_training_faces(data_dir):
    x = calibration.representative_dataset(SPEC, 20, seed=3)
    again = calibration.representative_dataset(SPEC, 20, seed=3)
    assert x.shape == (20, 1, 48, 48) and x.dtype == np.float32
    np.testing.assert_array_equal(x, again)
    # values are k/127.5 - 1 for integer pixels k
    k = (x + 1) * 127.5
    np.testing.assert_allclose(k, np.round(k), atol=1e-3)


# --- parity figures ---------------------------------------------------------------------------------------
def test_compare_figures_and_bounds():
    fmt = FORMATS["tflite_int8"]
    ref = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [2.0, 0.0, 0.0]], np.float32)
    out = ref.copy()
    out[3] = [0.0, 3.0, 0.0]  # one flip out of four
    labels = np.array([0, 1, 2, 1])
    res = parity.compare(fmt, ref, out, labels, classifier=True)
    assert res.top1_agreement == 0.75 and res.accuracy == 1.0 and res.accuracy_pytorch == 0.75
    assert res.accuracy_drop_points == -25.0  # the file is more accurate here
    assert not res.passed and "agreement" in res.failures[0]
    with pytest.raises(ParityError, match="tflite_int8"):
        parity.enforce([res])
    assert res.near_tie_fraction == 0 and res.top1_agreement_clear == 0.75  # all margins are 2
    tie = ref.copy()
    tie[3] = [1.0, 0.95, 0.0]  # the flipped input is a near tie (margin 0.05)
    res = parity.compare(fmt, tie, out, labels, classifier=True)
    assert res.near_tie_fraction == 0.25 and res.top1_agreement_clear == 1.0
    same = parity.compare(fmt, ref, ref, labels, classifier=True)
    assert same.passed and same.prob_max_abs_error == 0
    img = np.zeros((2, 3, 4, 4), np.float32)
    res = parity.compare(fmt, img, img + 2 / 255, None, classifier=False, value_range=(-1, 1))
    assert res.psnr_db == pytest.approx(20 * np.log10(255), abs=1e-3)  # 1 grey level of error


# --- all or nothing -------------------------------------------------------------------------------------
def test_failed_export_leaves_existing_files_untouched(tmp_path, monkeypatch):
    from export import exporter

    out = tmp_path / "assets"
    (out / "android").mkdir(parents=True)
    good = out / "android" / "mini_xception_ok.bin"
    good.write_bytes(b"previous good file")
    (out / "manifest.json").write_text('{"previous": true}')

    def write(name):
        @try_export(name)
        def backend(job, path):
            path.write_bytes(b"new " + name.encode())
            if name == "breaks":
                raise RuntimeError("halfway")
            info = TensorInfo("image", [1, 1, 48, 48], "NCHW", "float32")
            return Artifact(name, path, info, TensorInfo("logits", [1, 7], "NC", "float32"))
        return backend

    bounds = ParityBounds(0.99, 1.0, 30)
    rows = [ExportFormat(n, ".bin", n, "fp32", "android", "android", False, write(n), bounds,
                         proxy=lambda m: m) for n in ("ok", "breaks")]
    monkeypatch.setenv("FACEFORGE_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(ExportError, match="nothing in .* was changed: breaks: .*halfway") as info:
        exporter.run_export("mini_xception", rows, weights="random", out=out, parity_limit=16,
                            parity_source="random", write_manifest=False)
    assert [o.ok for o in info.value.report.outcomes] == [True, False]
    assert good.read_bytes() == b"previous good file"
    assert (out / "manifest.json").read_text() == '{"previous": true}'
    assert sorted(p.name for p in out.iterdir()) == ["android", "manifest.json"]  # no temp folder left
    # the same rows without the broken one do move their file into place
    report = exporter.run_export("mini_xception", rows[:1], weights="random", out=out, parity_limit=16,
                                 parity_source="random", write_manifest=False)
    assert good.read_bytes() == b"new ok" and report.outcomes[0].parity.top1_agreement == 1.0


# --- round trips through the real toolchain ------------------------------------------------------------------
@pytest.fixture(scope="module")
def round_trip(tmp_path_factory, estimate_batchnorm):
    pytest.importorskip("litert_torch", reason="export toolchain not installed (pip install -e '.[export]')")
    pytest.importorskip("onnxruntime", reason="export toolchain not installed")
    torch.manual_seed(0)  # random weights; BatchNorm statistics from synthetic faces
    model = estimate_batchnorm(create_model("mini_xception"), SPEC, 256, 100)
    calib = calibration.representative_dataset(SPEC, 48, seed=1, source="random")
    x, _ = calibration.parity_dataset(SPEC, 128, seed=2, source="random")
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert len(np.unique(ref.argmax(1))) >= 2, "test model must not predict a single class"
    return model, _job(model, calib), x, ref, tmp_path_factory.mktemp("export")


def _unzipped(archive: Path, dest: Path) -> Path:
    """The ``.mlpackage`` folder inside a zipped Core ML file, extracted under ``dest``."""
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(dest)
        root = zf.namelist()[0].split("/")[0]
    return dest / root


def _run_tflite_independently(path: Path, x_nchw: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    d_in, d_out = interp.get_input_details()[0], interp.get_output_details()[0]
    out = []
    for sample in x_nchw.transpose(0, 2, 3, 1):  # NHWC
        sample = sample[None]
        if d_in["dtype"] == np.int8:
            s, z = d_in["quantization"]
            sample = np.clip(np.round(sample / s) + z, -128, 127).astype(np.int8)
        interp.set_tensor(d_in["index"], sample.astype(d_in["dtype"]))
        interp.invoke()
        y = interp.get_tensor(d_out["index"]).astype(np.float32)
        if d_out["dtype"] == np.int8:
            s, z = d_out["quantization"]
            y = (y - z) * s
        out.append(y)
    return np.concatenate(out)


@pytest.mark.export
@pytest.mark.slow
@pytest.mark.parametrize("name, max_logit_err, min_agree", [
    ("onnx", 1e-4, 1.0), ("tflite_fp32", 1e-4, 1.0), ("tflite_fp16", 2e-2, 0.98), ("tflite_int8", None, 0.95)])
def test_runnable_round_trip(round_trip, name, max_logit_err, min_agree):
    model, job, x, ref, tmp = round_trip
    fmt = FORMATS[name]
    art = fmt.backend(job, tmp / fmt.relpath("mini_xception"))
    assert art.path.is_file() and art.path.stat().st_size < 400_000
    if name == "onnx":
        import onnx
        import onnxruntime as ort

        proto = onnx.load(str(art.path))
        assert min(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
        assert json.loads({p.key: p.value for p in proto.metadata_props}["labels"]) == list(SPEC.labels)
        y = ort.InferenceSession(str(art.path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    else:
        from export.backends import read_tflite_metadata

        assert art.input.layout == "NHWC" and art.input.shape == [1, 48, 48, 1]
        assert json.loads(read_tflite_metadata(art.path)["labels"]) == list(SPEC.labels)
        y = _run_tflite_independently(art.path, x)
    agree = float((y.argmax(1) == ref.argmax(1)).mean())
    assert agree >= min_agree
    spread = float(ref.std())
    if max_logit_err is not None:
        assert np.abs(y - ref).max() <= max_logit_err * max(1.0, spread)
    else:  # full-integer int8: int8 tensors, parameters as read back, errors small against the logit spread
        assert art.input.dtype == "int8" and art.output.dtype == "int8"
        assert 0 < art.input.quantization["scale"] < 0.05 and -128 <= art.input.quantization["zero_point"] <= 127
        assert np.abs(y - ref).mean() < 0.1 * spread
        assert "QUANTIZE" in art.inspection["ops"] or "CONV_2D" in art.inspection["ops"]
    # the parity module (via faceforge.runtime) reports the same agreement as the independent run
    res = parity.measure(fmt, art.path, art.input, art.output, model, x, None, reference=ref)
    assert res.top1_agreement == pytest.approx(agree)


@pytest.mark.export
@pytest.mark.slow
@pytest.mark.parametrize("name", ["coreml_fp16", "coreml_int8w"])
def test_coreml_program_inspected_and_proxy_close(round_trip, name):
    pytest.importorskip("coremltools", reason="coremltools not installed")
    model, job, x, ref, tmp = round_trip
    fmt = FORMATS[name]
    art = fmt.backend(job, tmp / fmt.relpath("mini_xception"))
    info = art.inspection
    # an image input (gray 48x48, the normalization as ImageType scale/bias) and a classifier output with labels
    (image,) = info["inputs"]
    assert image == {"name": "image", "kind": "image", "dtype": "uint8", "color_space": "GRAYSCALE",
                     "shape": [1, 1, 48, 48]}
    assert sorted((o["kind"], o["dtype"]) for o in info["outputs"]) == [("classifier", "float64"), ("label", "string")]
    assert art.input.kind == "image" and art.output.kind == "classifier" and art.output.shape == [1, 7]
    assert art.output_values == "probabilities" and info["fp16_casts"] >= 2
    import coremltools as ct

    spec = ct.models.MLModel(str(_unzipped(art.path, tmp / f"{name}_unzipped")), skip_model_load=True).get_spec()
    assert spec.description.predictedFeatureName == "label"
    program = str(spec.mlProgram)
    assert all(f'"{label}"' in program for label in SPEC.labels)  # the class labels are in the file
    scale = next(op for f in spec.mlProgram.functions.values() for b in f.block_specializations.values()
                 for op in b.operations if op.type == "mul")
    assert scale.outputs[0].name.startswith("image__scaled")  # pixel * scale (+ bias) before the network
    if name == "coreml_int8w":
        from export.backends import INT8W_MIN_ELEMENTS

        big = sum(1 for m in model.modules() if isinstance(m, torch.nn.Conv2d)
                  and m.weight.numel() >= INT8W_MIN_ELEMENTS)
        assert 0 < big < info["conv_like_ops"]  # mini-Xception has both kinds
        assert info["ops"].get("constexpr_affine_dequantize", 0) == big
    else:
        assert not any(op.startswith("constexpr_") for op in info["ops"])
    with zipfile.ZipFile(art.path) as zf:
        names = zf.namelist()
        root = names[0].split("/")[0]
        assert root.endswith(".mlpackage") and f"{root}/Manifest.json" in names
        assert any(n.endswith(".mlmodel") for n in names)
    res = parity.measure(fmt, None, None, None, model, x, None, reference=ref)
    assert res.validation.startswith("inspected") and res.top1_agreement >= 0.97
    assert res.prob_max_abs_error < 0.05


class _Fb:
    """A minimal reader of the TFLite Support ``ModelMetadata`` flatbuffer, by field slot (the schema's
    declaration order, ``metadata_schema.fbs``), to check what :mod:`export.tflite_metadata` wrote."""

    def __init__(self, buf: bytes, pos: int | None = None) -> None:
        import flatbuffers

        self.buf = bytearray(buf)
        if pos is None:  # the root table
            pos = flatbuffers.encode.Get(flatbuffers.packer.uoffset, self.buf, 0)
        self.t = flatbuffers.table.Table(self.buf, pos)

    def _o(self, slot: int) -> int:
        return self.t.Offset(4 + 2 * slot)

    def string(self, slot: int) -> str | None:
        o = self._o(slot)
        return self.t.String(o + self.t.Pos).decode() if o else None

    def byte(self, slot: int) -> int:
        import flatbuffers

        o = self._o(slot)
        return self.t.Get(flatbuffers.number_types.Uint8Flags, o + self.t.Pos) if o else 0

    def table(self, slot: int) -> "_Fb | None":
        o = self._o(slot)
        return _Fb(self.buf, self.t.Indirect(o + self.t.Pos)) if o else None

    def tables(self, slot: int) -> list["_Fb"]:
        o = self._o(slot)
        if not o:
            return []
        start = self.t.Vector(o)
        return [_Fb(self.buf, self.t.Indirect(start + 4 * i)) for i in range(self.t.VectorLen(o))]

    def floats(self, slot: int) -> list[float]:
        import flatbuffers

        o = self._o(slot)
        start = self.t.Vector(o)
        return [self.t.Get(flatbuffers.number_types.Float32Flags, start + 4 * i) for i in range(self.t.VectorLen(o))]


@pytest.mark.export
@pytest.mark.slow
def test_tflite_files_carry_tflite_support_metadata(round_trip):
    """The TFLITE_METADATA entry (M001 flatbuffer) describes the gray 48x48 input with the manifest's
    normalization as mean/std and links labels.txt, appended as an uncompressed zip the interpreter ignores."""
    from ai_edge_litert import schema_py_generated as schema

    from export import tflite_metadata as tm

    model, job, x, ref, tmp = round_trip
    fmt = FORMATS["tflite_fp32"]
    art = fmt.backend(job, tmp / "support" / fmt.relpath("mini_xception"))
    buf = art.path.read_bytes()
    tfl = schema.Model.GetRootAs(bytearray(buf), 0)
    entries = {tfl.Metadata(i).Name().decode(): tfl.Metadata(i).Buffer() for i in range(tfl.MetadataLength())}
    data = tfl.Buffers(entries[tm.METADATA_NAME]).DataAsNumpy().tobytes()
    assert data[4:8] == tm.FILE_IDENTIFIER
    meta = _Fb(data)
    assert (meta.string(0), meta.string(2), meta.string(4), meta.string(7)) == ("mini_xception", "t", "faceforge",
                                                                                 "1.0.0")
    (subgraph,) = meta.tables(3)
    (image,) = subgraph.tables(2)
    (scores,) = subgraph.tables(3)
    content = image.table(3)
    assert image.string(0) == "image" and content.byte(0) == tm.CONTENT_IMAGE
    assert content.table(1).byte(0) == tm.COLOR_SPACE["gray"]
    (unit,) = image.tables(4)
    assert unit.byte(0) == tm.PROCESS_NORMALIZATION
    mean, std = unit.table(1).floats(0), unit.table(1).floats(1)
    scale, offset = SPEC.input.scale, SPEC.input.offset
    assert np.allclose([-mean[0] / std[0], 1 / std[0]], [offset, scale])  # x = (p - mean) / std
    assert image.table(5).floats(0) == [1.0] and image.table(5).floats(1) == [-1.0]
    (labels_file,) = scores.tables(6)
    assert labels_file.string(0) == tm.LABELS_FILE and labels_file.byte(2) == tm.FILE_TENSOR_AXIS_LABELS
    with zipfile.ZipFile(art.path) as zf:
        assert [i.compress_type for i in zf.infolist()] == [zipfile.ZIP_STORED]
        assert zf.read(tm.LABELS_FILE).decode().split() == list(SPEC.labels)
    res = parity.measure(fmt, art.path, art.input, art.output, model, x, None, reference=ref)  # still runs
    assert res.top1_agreement == 1.0


@pytest.mark.export
def test_int8_backend_needs_calibration(tmp_path):
    pytest.importorskip("litert_torch", reason="export toolchain not installed")
    with pytest.raises(ExportError, match="representative dataset"):
        FORMATS["tflite_int8"].backend(_job(), tmp_path / "x.tflite")


# --- the shipped int8 file, fed as the manifest says -------------------------------------------------------
@pytest.mark.export
def test_shipped_int8_file_matches_pytorch_when_fed_as_the_manifest_says(data_dir):
    manifest_path = ASSETS / "manifest.json"
    if not manifest_path.is_file():
        pytest.skip("mobile_assets/manifest.json not generated yet (run `faceforge export`)")
    manifest = json.loads(manifest_path.read_text())
    entry = next((e for e in manifest["models"] if e["name"] == "mini_xception" and e["format"] == "tflite_int8"),
                 None)
    if entry is None:
        pytest.skip("no tflite_int8 mini_xception in the manifest")
    weights = SPEC.default_weights_path
    from export.manifest import sha256_file

    if not weights.is_file() or sha256_file(weights) != entry["provenance"].get("weights_sha256"):
        pytest.skip("default weights absent or not the ones the shipped files were exported from")
    from ai_edge_litert.interpreter import Interpreter
    from training.data import load_fer2013

    images, _ = load_fer2013("test", root=data_dir)  # the parity set: FER2013 faces are already aligned 48x48
    parity_figures = entry["parity"]
    if len(images) != parity_figures["images"]:
        pytest.skip(f"FER2013 test has {len(images)} images here, the manifest's parity used {parity_figures['images']}")
    inp, out = entry["input"], entry["output"]
    norm, qin, qout = inp["normalization"], inp["quantization"], out["quantization"]
    interp = Interpreter(model_path=str(ASSETS / entry["file"]))
    interp.allocate_tensors()
    d_in, d_out = interp.get_input_details()[0], interp.get_output_details()[0]
    x = images.astype(np.float32) * norm["scale"] + norm["offset"]
    q = np.clip(np.round(x / qin["scale"]) + qin["zero_point"], -128, 127).astype(np.int8)
    preds = []
    for face in q:
        interp.set_tensor(d_in["index"], face.reshape(inp["shape"]))  # NHWC (1, 48, 48, 1) per the manifest
        interp.invoke()
        logits = (interp.get_tensor(d_out["index"]).astype(np.float32) - qout["zero_point"]) * qout["scale"]
        preds.append(int(logits.argmax()))
    model = create_model("mini_xception", weights="default")
    with torch.no_grad():
        ref = model(torch.from_numpy(calibration.preprocess(images, SPEC))).argmax(1).numpy()
    agree = float(np.mean(np.asarray(preds) == ref))
    # an app following the manifest reproduces the export's own parity figure, which met its bound
    assert agree == pytest.approx(parity_figures["top1_agreement"], abs=2e-4)
    assert agree >= parity_figures["bounds"]["min_top1_agreement"]
