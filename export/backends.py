"""One backend per export format, plus the PyTorch-side proxies for the formats Linux cannot run.

Backends (each ``(job, path) -> Artifact``, wrapped by :func:`export.base.try_export`):

- :func:`export_onnx` — ``torch.onnx.export`` (dynamo exporter, opset 18), dynamic batch, NCHW,
  one self-contained file, metadata in ``metadata_props``; :func:`export_onnx_fp16` the same with
  float16 weights cast back to float32 in the graph (float32 I/O and compute).
- :func:`export_tflite_fp32`, :func:`export_tflite_fp16`, :func:`export_tflite_int8` — litert-torch.
  Image inputs (and image outputs) are channels-last (NHWC), the layout phone camera buffers and
  LiteRT kernels use. fp16 stores float16 weights dequantized at load (ai-edge-quantizer FLOAT_CAST
  recipe, activations float32); int8 is full-integer post-training static quantization through PT2E
  (torchao ``prepare_pt2e``/``convert_pt2e`` with litert-torch's per-channel symmetric quantizer,
  histogram observers on the representative dataset): int8 weights and activations, int8 input and
  output tensors whose scale and zero point are read back from the written file.
- :func:`export_coreml_fp16`, :func:`export_coreml_int8w` — coremltools ML Program (iOS 16+), fp16
  compute; image models take a Core ML image (``ct.ImageType``, gray or RGB, the normalization as its
  ``scale`` and ``bias``), classifiers end in softmax with a classifier output carrying the labels
  (``ct.ClassifierConfig``: ``label`` + ``label_probs``), so Vision's ``VNCoreMLRequest`` works without
  glue code; other outputs are float32 arrays. int8w adds per-channel symmetric int8 weights with
  ``coremltools.optimize.coreml.linear_quantize_weights`` (``constexpr_affine_dequantize`` ops).
  Saved as ``.mlpackage`` and zipped (deterministic entry order and timestamps) so the manifest can
  give one size and one SHA-256 per file.

Metadata embedded in every file: the same key -> text pairs (:attr:`ExportJob.metadata`): model name,
task, version, labels, input layout/colour/normalization, output meaning. TFLite: the TFLite Support
``ModelMetadata`` writer (tflite-support 0.4.4, the last release) requires protobuf < 4, which cannot
live beside this stack (protobuf 7), so the pairs are stored as one JSON document in the model
flatbuffer's generic ``metadata`` list under the name ``"faceforge"`` (the mechanism the converter
itself uses for ``min_runtime_version``); the manifest says so.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from export.base import Artifact, ExportJob, TensorInfo, require, try_export
from faceforge.errors import ExportError

log = logging.getLogger("faceforge.export")

ONNX_OPSET = 18
TFLITE_METADATA_NAME = "faceforge"
COREML_MIN_TARGET = "iOS16"


# --- naming and layout ---------------------------------------------------------------------------
def io_names(job: ExportJob, probabilities: bool = False) -> tuple[str, str]:
    """Input and output tensor names: ``("image", "logits"|"probabilities"|"image_out")``."""
    if not job.spec.labels:
        return "image", "image_out"
    return "image", ("probabilities" if probabilities else "logits")


def output_layout(job: ExportJob, channels_last: bool) -> str:
    """Layout of the model output: ``"NC"`` for class scores, else the image layout."""
    if job.spec.labels:
        return "NC"
    return "NHWC" if channels_last else "NCHW"


class ChannelsLastIO(nn.Module):
    """Wrap an NCHW image model so its input (and image output) are NHWC, with named I/O.

    Shapes: input ``(N, H, W, C)`` -> model on ``(N, C, H, W)`` -> ``{out_name: (N, K)}`` for class
    scores or ``{out_name: (N, H', W', C')}`` for images. For a single-channel input the transpose is a
    pure reshape.
    """

    def __init__(self, model: nn.Module, out_name: str, image_output: bool, softmax: bool = False) -> None:
        super().__init__()
        self.model = model
        self.out_name = out_name
        self.image_output = image_output
        self.softmax = softmax

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.model(image.permute(0, 3, 1, 2))
        if self.image_output:
            y = y.permute(0, 2, 3, 1)
        elif self.softmax:  # the ATen op the PT2E quantizer annotates (fixed int8 scale 1/256)
            y = torch.ops.aten._softmax.default(y, 1, False)
        return {self.out_name: y}


def _nhwc(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x)).permute(0, 2, 3, 1).contiguous()


# --- ONNX ------------------------------------------------------------------------------------------
@try_export("onnx")
def export_onnx(job: ExportJob, path: Path) -> Artifact:
    """Export to ONNX (opset 18) with a dynamic batch dimension and ``metadata_props``.

    Input ``image`` ``(batch, C, H, W)`` float32 NCHW; output ``logits`` ``(batch, K)`` float32 (or an
    image ``(batch, C', H', W')``). The file is self-contained (no external-data side file).
    """
    onnx = require("onnx")
    require("onnxscript")
    in_name, out_name = io_names(job)
    sample = torch.zeros(job.sample_shape)
    program = torch.onnx.export(job.model, (sample,), dynamo=True, opset_version=ONNX_OPSET,
                                input_names=[in_name], output_names=[out_name],
                                dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    proto = program.model_proto
    for node in proto.graph.node:  # exporter debug info (source stack traces, FX names): not for phones
        del node.metadata_props[:]
        node.doc_string = ""
    proto.producer_name = "faceforge"
    proto.doc_string = job.spec.description
    proto.model_version = 1
    del proto.metadata_props[:]
    for key, value in job.metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto, full_check=True)
    onnx.save_model(proto, str(path), save_as_external_data=False)

    loaded = onnx.load(str(path))
    opset = max(o.version for o in loaded.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 17:
        raise ExportError(f"ONNX opset {opset} < 17")

    def info(value_info, layout: str) -> TensorInfo:
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value_info.type.tensor_type.elem_type).name
        return TensorInfo(value_info.name, dims, layout, dtype)

    return Artifact("onnx", path, info(loaded.graph.input[0], "NCHW"),
                    info(loaded.graph.output[0], output_layout(job, False)),
                    embedded_metadata={"where": "ONNX ModelProto.metadata_props",
                                       "keys": sorted(job.metadata)},
                    inspection={"opset": opset, "ir_version": loaded.ir_version,
                                "ops": dict(sorted(Counter(n.op_type for n in loaded.graph.node).items()))})


FP16_MIN_ELEMENTS = 16
"""Float initializers with fewer elements stay float32 in ``onnx_fp16`` files (no size to gain, one node less)."""


def onnx_weights_to_fp16(proto: Any, min_elements: int = FP16_MIN_ELEMENTS) -> dict[str, Any]:
    """Store a model's float32 weights as float16, cast back to float32 inside the graph (in place).

    Each float32 initializer of the main graph with at least ``min_elements`` elements becomes a float16
    initializer ``<name>_fp16`` plus a ``Cast(to=FLOAT)`` node writing ``<name>``, so every op still
    computes in float32 and inputs/outputs keep their dtype (float32): the weights-only half precision
    of the LiteRT ``tflite_fp16`` files. ONNX Runtime folds the casts into float32 constants when it
    builds the session (graph optimization level basic and up), so the speed is that of the float32 file.
    (A whole-graph float16 conversion such as onnxconverter-common's ``convert_float_to_float16`` would
    also compute in float16, which ONNX Runtime's x86 CPU kernels do not cover for every op.)

    Args:
        proto: an ``onnx.ModelProto``; modified in place.
        min_elements: smaller float initializers are left float32.

    Returns:
        ``{"fp16_initializers", "fp32_initializers", "fp16_elements", "max_abs_weight"}``.

    Raises:
        ExportError: a finite weight beyond float16's range (|w| > 65504; it would become inf), or an
            initializer that is also a graph input (a caller could feed it, a cast would hide that).
    """
    onnx = require("onnx")
    from onnx import numpy_helper

    graph = proto.graph
    inputs = {i.name for i in graph.input}
    taken = {i.name for i in graph.initializer} | {o for n in graph.node for o in n.output}
    casts, converted, kept, elements, biggest = [], 0, 0, 0, 0.0
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        w = numpy_helper.to_array(init)
        if w.size < min_elements:
            kept += 1
            continue
        if init.name in inputs:
            raise ExportError(f"initializer {init.name!r} is also a graph input; refusing to cast it to float16")
        finite = w[np.isfinite(w)]
        peak = float(np.abs(finite).max()) if finite.size else 0.0
        if peak > float(np.finfo(np.float16).max):
            raise ExportError(f"initializer {init.name!r} has |w| = {peak:g} > 65504, beyond float16")
        biggest = max(biggest, peak)
        name, new = init.name, init.name + "_fp16"
        while new in taken:
            new += "_"
        taken.add(new)
        init.CopyFrom(numpy_helper.from_array(w.astype(np.float16), new))
        casts.append(onnx.helper.make_node("Cast", [new], [name], to=onnx.TensorProto.FLOAT, name=f"{name}_cast"))
        converted += 1
        elements += int(w.size)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # topological order: the casts read initializers only
    return {"fp16_initializers": converted, "fp32_initializers": kept, "fp16_elements": elements,
            "max_abs_weight": biggest}


@try_export("onnx_fp16")
def export_onnx_fp16(job: ExportJob, path: Path) -> Artifact:
    """ONNX as :func:`export_onnx`, with float16 weights (:func:`onnx_weights_to_fp16`): float32 input
    ``image`` ``(batch, C, H, W)`` NCHW and float32 output, float32 compute, about half the bytes."""
    onnx = require("onnx")
    fp32 = export_onnx.__wrapped__(job, path)
    proto = onnx.load(str(path))
    stats = onnx_weights_to_fp16(proto)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save_model(proto, str(path), save_as_external_data=False)
    ops = dict(sorted(Counter(n.op_type for n in proto.graph.node).items()))
    return dataclasses.replace(fp32, format="onnx_fp16",
                               inspection={**fp32.inspection, "ops": ops, "weights": stats},
                               notes=[*fp32.notes, "float16 initializers, each cast to float32 in the graph "
                                      "(Cast nodes; ONNX Runtime folds them at session creation): float32 "
                                      "inputs, outputs and compute"])


# --- TFLite / LiteRT ---------------------------------------------------------------------------------
def _litert_quiet() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _tflite_wrapper(job: ExportJob, probabilities: bool = False) -> tuple[ChannelsLastIO, dict[str, torch.Tensor]]:
    in_name, out_name = io_names(job, probabilities)
    wrapper = ChannelsLastIO(job.model, out_name, image_output=not job.spec.labels,
                             softmax=probabilities and bool(job.spec.labels)).eval()
    n, c, h, w = job.sample_shape
    return wrapper, {in_name: torch.zeros(n, h, w, c)}


def tflite_tensor_details(path: Path) -> tuple[dict, dict]:
    """Input and output details (name, shape, dtype, quantization) of a one-in one-out ``.tflite``."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    ins, outs = interp.get_input_details(), interp.get_output_details()
    if len(ins) != 1 or len(outs) != 1:
        raise ExportError(f"{path.name}: expected one input and one output, found {len(ins)} and {len(outs)}")
    return ins[0], outs[0]


def _tensor_info(detail: dict, layout: str, name: str) -> TensorInfo:
    dtype = np.dtype(detail["dtype"]).name
    quant = None
    if dtype in ("int8", "uint8", "int16"):
        scale, zero_point = detail["quantization"]
        if scale == 0:
            raise ExportError(f"integer tensor {detail['name']} has no quantization parameters")
        quant = {"scale": float(scale), "zero_point": int(zero_point)}
    return TensorInfo(name, [int(d) for d in detail["shape"]], layout, dtype, quant)


def embed_tflite_metadata(path: Path, metadata: dict[str, str], name: str = TFLITE_METADATA_NAME) -> None:
    """Add (or replace) a JSON metadata entry in a ``.tflite`` file's ``Model.metadata`` list.

    Args:
        path: the ``.tflite`` file, rewritten in place (atomically).
        metadata: key -> text pairs, stored as one UTF-8 JSON object.
        name: metadata entry name.

    See :func:`embed_tflite_entry` (which this calls) for the file's weights and the errors.
    """
    embed_tflite_entry(path, name, json.dumps(metadata, sort_keys=True).encode())


def embed_tflite_entry(path: Path, name: str, data: bytes) -> None:
    """Add (or replace) the ``Model.metadata`` entry ``name`` of a ``.tflite`` file, holding ``data``
    (its own buffer), rewriting the file in place (atomically). Anything after the flatbuffer (an
    appended zip of associated files) is dropped: append such files last.

    Weight data stored after the flatbuffer (``Buffer.offset``/``size``, which ai-edge-quantizer 0.x
    writes once its weights reach 256 KiB, e.g. the 256x256 ``cyclegan_mobile``) is moved back inside
    the flatbuffer, since the object-API round trip would otherwise drop it; the interpreter reads
    both forms.

    Raises:
        ExportError: the file is too large to hold its weights inside one flatbuffer (2 GB).
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    buf = path.read_bytes()
    model = schema.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    external = [b for b in model.buffers or [] if getattr(b, "offset", 0) > 1]
    if external:
        if len(buf) > 2**31 - 2**24:
            raise ExportError(f"{path.name} ({len(buf)} bytes) keeps its weights outside the flatbuffer and is "
                              "too large to inline them; cannot embed metadata")
        for b in external:  # offsets count from the start of the file
            b.data = np.frombuffer(buf, dtype=np.uint8, count=b.size, offset=b.offset).copy()
            b.offset, b.size = 0, 0
    def entry_name(m) -> str:
        return m.name.decode() if isinstance(m.name, bytes) else m.name

    model.metadata = [m for m in (model.metadata or []) if entry_name(m) != name]
    entry_buffer = schema.BufferT()
    entry_buffer.data = np.frombuffer(data, dtype=np.uint8)
    model.buffers.append(entry_buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(buf) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(builder.Output())
    os.replace(tmp, path)


def read_tflite_metadata(path: Path, name: str = TFLITE_METADATA_NAME) -> dict[str, str] | None:
    """Read back the JSON metadata entry written by :func:`embed_tflite_metadata` (``None`` if absent)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytearray(Path(path).read_bytes()), 0)
    for i in range(model.MetadataLength()):
        meta = model.Metadata(i)
        if meta.Name().decode() == name:
            return json.loads(model.Buffers(meta.Buffer()).DataAsNumpy().tobytes().decode())
    return None


def _finish_tflite(job: ExportJob, fmt: str, path: Path, notes: list[str], probabilities: bool = False) -> Artifact:
    metadata = dict(job.metadata)
    if probabilities and job.spec.labels:
        metadata["output"] = "probabilities (softmax inside the model) in label order"
    embed_tflite_metadata(path, metadata)
    support = _tflite_support_description(job, probabilities)
    if support is not None:  # TFLite Support ModelMetadata (Android Studio binding, Task Library), then its files
        from export import tflite_metadata

        embed_tflite_entry(path, tflite_metadata.METADATA_NAME, tflite_metadata.build_metadata(support))
        tflite_metadata.append_associated_files(path, support)
    detail_in, detail_out = tflite_tensor_details(path)
    from ai_edge_litert.interpreter import Interpreter

    ops = Counter(op["op_name"] for op in Interpreter(model_path=str(path))._get_ops_details())
    in_name, out_name = io_names(job, probabilities)
    return Artifact(fmt, path, _tensor_info(detail_in, "NHWC", in_name),
                    _tensor_info(detail_out, output_layout(job, True), out_name),
                    embedded_metadata={"where": f"TFLite Model.metadata entry {TFLITE_METADATA_NAME!r} "
                                                "(UTF-8 JSON)" + (", and 'TFLITE_METADATA' (TFLite Support "
                                                "ModelMetadata: image input, normalization mean/std, "
                                                + ("labels.txt appended as an uncompressed zip" if job.spec.labels
                                                   else "image output") + ")" if support is not None else ""),
                                      "keys": sorted(job.metadata)},
                    inspection={"ops": dict(sorted(ops.items())), "signature": "serving_default"},
                    output_values=("probabilities" if probabilities else "logits") if job.spec.labels else "image",
                    notes=notes + ([] if support is not None else [
                        "no TFLite Support ModelMetadata: the input is not an image"]) + [
                        "TFLite Support metadata is written with flatbuffers from its schema (export/tflite_metadata.py): "
                        "the tflite-support 0.4.4 writer pins protobuf<4 and needs libusb"])


def _tflite_support_description(job: ExportJob, probabilities: bool):
    """The TFLite Support metadata of an image model's file (``None`` for latent inputs): the input image
    (colour space, size; normalization ``x = (pixel - mean) / std`` with ``mean = -offset / scale``,
    ``std = 1 / scale``, the model's value range as Stats) and the output (labels file and [0, 1] range
    for probabilities; the image and its range for image-to-image models)."""
    from export import tflite_metadata as tm

    i = job.spec.input
    if i.kind != "image":
        return None
    channels, height, width = i.shape
    in_name, out_name = io_names(job, probabilities)
    mean, std = [-i.offset / i.scale] * channels, [1.0 / i.scale] * channels
    source = tm.TensorDescription(in_name, job.metadata.get("input", "aligned face"), image=i.colour,
                                  size=(width, height), mean=mean, std=std, value_range=tuple(i.value_range))
    if job.spec.labels:
        what = "probabilities (softmax) in label order" if probabilities else "logits (unnormalized scores) in label order"
        target = tm.TensorDescription(out_name, what, labels=list(job.spec.labels),
                                      value_range=(0.0, 1.0) if probabilities else None)
    else:
        target = tm.TensorDescription(out_name, job.metadata.get("output", "image"), image=i.colour,
                                      size=(width, height), value_range=tuple(i.value_range))
    return tm.ModelDescription(job.spec.name, job.spec.description, job.version, "faceforge", job.spec.license,
                               [source], [target])


@try_export("tflite_fp32")
def export_tflite_fp32(job: ExportJob, path: Path) -> Artifact:
    """Export a float32 ``.tflite`` with NHWC input (litert-torch)."""
    _litert_quiet()
    litert_torch = require("litert_torch")
    wrapper, kwargs = _tflite_wrapper(job)
    litert_torch.convert(wrapper, sample_kwargs=kwargs).export(str(path))
    return _finish_tflite(job, "tflite_fp32", path, [])


@try_export("tflite_fp16")
def export_tflite_fp16(job: ExportJob, path: Path) -> Artifact:
    """Export a ``.tflite`` with float16 weights (dequantized to float32 at load), float32 I/O."""
    _litert_quiet()
    litert_torch = require("litert_torch")
    from litert_torch.generative.quantize import quant_recipes

    wrapper, kwargs = _tflite_wrapper(job)
    litert_torch.convert(wrapper, sample_kwargs=kwargs,
                         quant_config=quant_recipes.full_fp16_recipe()).export(str(path))
    return _finish_tflite(job, "tflite_fp16", path,
                          ["float16 weights with DEQUANTIZE ops: half the size; float32 compute on CPU, "
                           "GPU delegates may run float16."])


def _annotate_tanh(gm: torch.fx.GraphModule) -> None:
    """Give every ``aten.tanh`` whose input is quantized a fixed int8 output: scale 1/128, zero point 0.

    TFLite's int8 TANH kernel requires exactly these output parameters (the range [-1, 1) in 256
    steps; LiteRT op-version table). litert-torch's PT2E quantizer (0.10) annotates sigmoid and
    softmax this way but not tanh, so without this pass a generator's output is dequantized before a
    float TANH and the file is not full-integer.
    """
    from torchao.quantization.pt2e.quantizer import FixedQParamsQuantizationSpec, QuantizationAnnotation

    spec = FixedQParamsQuantizationSpec(dtype=torch.int8, scale=1 / 128, zero_point=0, quant_min=-128,
                                        quant_max=127, qscheme=torch.per_tensor_affine)
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target not in (torch.ops.aten.tanh.default,):
            continue
        src = node.args[0]
        annotation = src.meta.get("quantization_annotation") if isinstance(src, torch.fx.Node) else None
        if annotation is None or annotation.output_qspec is None:
            continue
        old = node.meta.get("quantization_annotation")
        if old is not None and old._annotated:
            continue
        node.meta["quantization_annotation"] = QuantizationAnnotation(output_qspec=spec, _annotated=True)


@try_export("tflite_dynint8")
def export_tflite_dynint8(job: ExportJob, path: Path) -> Artifact:
    """Export a dynamic-range int8 ``.tflite``: int8 weights, float32 activations and I/O.

    litert-torch's ``full_dynamic_recipe`` (ai-edge-quantizer ``MIN_MAX_UNIFORM_QUANT``, int8 symmetric
    per-channel weights, ``compute_precision=INTEGER`` without explicit dequantize): convolutions keep
    int8 weights and run as LiteRT "hybrid" kernels that quantize their float input on the fly (range
    measured per inference), so no calibration data is needed. Ops the quantizer does not cover stay
    float; the notes list how many weight tensors are int8.
    """
    _litert_quiet()
    litert_torch = require("litert_torch")
    from litert_torch.generative.quantize import quant_recipes

    wrapper, kwargs = _tflite_wrapper(job)
    litert_torch.convert(wrapper, sample_kwargs=kwargs,
                         quant_config=quant_recipes.full_dynamic_recipe()).export(str(path))
    int8_weights = _count_int8_constants(path)
    artifact = _finish_tflite(job, "tflite_dynint8", path,
                              [f"dynamic-range int8: {int8_weights} int8 weight tensors (per-channel symmetric), "
                               "activations quantized per inference inside the kernels, float32 input/output; "
                               "no calibration data"])
    if artifact.input.dtype != "float32" or artifact.output.dtype != "float32":
        raise ExportError(f"tflite_dynint8: expected float32 input and output, got {artifact.input.dtype} "
                          f"and {artifact.output.dtype}")
    if int8_weights == 0:
        raise ExportError("tflite_dynint8: no int8 weight tensor in the file (the quantizer changed nothing)")
    return artifact


def _count_int8_constants(path: Path) -> int:
    """Number of int8 constant tensors (backed by buffer data, inline or after the flatbuffer) in a
    ``.tflite`` file."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytearray(Path(path).read_bytes()), 0)
    count = 0
    for g in range(model.SubgraphsLength()):
        sub = model.Subgraphs(g)
        for i in range(sub.TensorsLength()):
            t = sub.Tensors(i)
            data = model.Buffers(t.Buffer())
            if t.Type() == schema.TensorType.INT8 and (data.DataLength() > 0 or data.Offset() > 1):
                count += 1
    return count


@try_export("tflite_int8")
def export_tflite_int8(job: ExportJob, path: Path) -> Artifact:
    """Export a full-integer int8 ``.tflite`` (int8 input and output) by PT2E static quantization.

    Weights: int8 per-channel symmetric; activations: int8 per-tensor affine, ranges from histogram
    observers run over ``job.calibration`` one sample at a time. Output: int8 logits (classifiers) or
    an int8 image (image-to-image models; a final tanh gets TFLite's fixed int8 TANH output
    parameters, scale 1/128 and zero point 0).

    Raises:
        ExportError: no calibration data, or the produced file's input/output are not int8.
    """
    _litert_quiet()
    litert_torch = require("litert_torch")
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if job.calibration is None or len(job.calibration) == 0:
        raise ExportError("tflite_int8 needs a representative dataset (calibration data) and none was given")
    # Logits out, like every other format. (A softmax inside gives int8 probabilities but does not
    # help agreement: the logits are already int8 at the average-pool output before it.)
    probabilities = False
    wrapper, kwargs = _tflite_wrapper(job, probabilities=probabilities)
    (in_name,) = kwargs
    from litert_torch.quantize.pt2e_quantizer_utils import OP_TO_ANNOTATOR, propagate_annotation

    class Quantizer(PT2EQuantizer):
        """litert-torch's quantizer, plus a second pass so a softmax fed through a reshape (the
        classifier's flatten) gets its fixed int8 output parameters: the stock pass annotates softmax
        before reshapes inherit their producer's parameters, and then skips it. Also annotates tanh
        (image generators' last op), which the stock quantizer leaves in float: see
        :func:`_annotate_tanh`."""

        def annotate(self, model):
            model = super().annotate(model)
            OP_TO_ANNOTATOR["fixed_qparams"](model, self.global_config)
            _annotate_tanh(model)
            propagate_annotation(model)
            return model

    quantizer = Quantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    graph = torch.export.export(wrapper, (), kwargs).module()
    prepared = prepare_pt2e(graph, quantizer)
    calib = _nhwc(job.calibration.astype(np.float32))
    with torch.no_grad():
        for i in range(len(calib)):
            prepared(**{in_name: calib[i:i + 1]})
    quantized = convert_pt2e(prepared, fold_quantize=False)
    move_exported_model_to_eval(quantized)
    for module in quantized.modules():  # exported graphs keep training=True; litert-torch warns on it
        module.training = False
    litert_torch.convert(quantized, sample_kwargs=kwargs,
                         quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(str(path))
    notes = [f"full-integer int8 (PT2E static quantization, per-channel int8 weights, per-tensor int8 "
             f"activations), calibrated on {len(calib)} inputs: {job.calibration_description or 'unspecified'}"]
    if probabilities:
        notes.append("classifier output is softmax probabilities (int8, scale 1/256, zero point -128)")
    artifact = _finish_tflite(job, "tflite_int8", path, notes, probabilities=probabilities)
    if artifact.input.dtype != "int8" or artifact.output.dtype != "int8":
        raise ExportError(f"tflite_int8: expected int8 input and output, got {artifact.input.dtype} "
                          f"and {artifact.output.dtype}")
    float_ops = {"DEQUANTIZE"} & set(artifact.inspection["ops"])
    if float_ops:
        artifact.notes.append(f"contains {sorted(float_ops)} ops (some tensors stay float)")
    return artifact


# --- Core ML -----------------------------------------------------------------------------------------
def _converter_output():
    """Where converters may print progress bars: the console when ``faceforge.export`` logs at INFO
    (``faceforge export -v``), else nowhere (coremltools draws a tqdm bar per pass)."""
    import contextlib
    import io

    if log.isEnabledFor(logging.INFO):
        return contextlib.nullcontext()
    return contextlib.redirect_stderr(io.StringIO())


COREML_LABEL = "label"
"""Core ML classifiers' predicted-label feature (a string); coremltools names the probabilities beside it
``label_probs`` (label -> probability), the pair Vision's ``VNClassificationObservation`` reads."""


def _coreml_classifier(job: ExportJob) -> bool:
    """Whether the Core ML file is a classifier (labelled model with ``(N, classes)`` outputs)."""
    return bool(job.spec.labels) and job.spec.input.kind == "image"


def _coreml_convert(job: ExportJob):
    ct = require("coremltools")
    in_name, out_name = io_names(job)
    sample = torch.zeros(job.sample_shape)
    model = nn.Sequential(job.model, nn.Softmax(dim=1)).eval() if _coreml_classifier(job) else job.model
    with torch.no_grad():
        traced = torch.jit.trace(model, sample)
    with _converter_output():
        return _coreml_convert_traced(ct, job, traced, in_name, out_name)


def _coreml_convert_traced(ct, job: ExportJob, traced, in_name: str, out_name: str):
    """Image models take a Core ML image (``ct.ImageType``: gray or RGB pixels, the manifest's
    normalization as its ``scale`` and ``bias``, applied in float32 before the fp16 cast, as an app
    computes ``pixel * scale + offset``); classifiers end in softmax with a classifier output
    (``ct.ClassifierConfig`` with the labels), so Vision's ``VNCoreMLRequest`` needs no glue code.
    Latent inputs stay float32 tensors."""
    spec_in = job.spec.input
    if spec_in.kind == "image":
        channels = job.sample_shape[1]
        layout = ct.colorlayout.GRAYSCALE if spec_in.colour == "gray" else ct.colorlayout.RGB
        bias = float(spec_in.offset) if channels == 1 else [float(spec_in.offset)] * channels
        inputs = [ct.ImageType(name=in_name, shape=job.sample_shape, scale=float(spec_in.scale), bias=bias,
                               color_layout=layout)]
    else:
        inputs = [ct.TensorType(name=in_name, shape=job.sample_shape, dtype=np.float32)]
    extra: dict[str, Any] = {}
    if _coreml_classifier(job):
        extra["classifier_config"] = ct.ClassifierConfig(list(job.spec.labels), predicted_feature_name=COREML_LABEL)
    else:
        extra["outputs"] = [ct.TensorType(name=out_name, dtype=np.float32)]
    mlmodel = ct.convert(
        traced, convert_to="mlprogram", inputs=inputs, compute_precision=ct.precision.FLOAT16,
        minimum_deployment_target=getattr(ct.target, COREML_MIN_TARGET), **extra)
    return mlmodel


def _coreml_set_metadata(mlmodel, job: ExportJob) -> None:
    in_name, out_name = io_names(job)
    mlmodel.author = "faceforge"
    mlmodel.license = job.spec.license
    mlmodel.short_description = job.spec.description
    mlmodel.version = job.version
    mlmodel.input_description[in_name] = job.metadata.get("input", "")
    if _coreml_classifier(job):
        mlmodel.output_description[COREML_LABEL] = "most probable label"
        mlmodel.output_description[COREML_LABEL + "_probs"] = "probability of each label (softmax)"
    else:
        mlmodel.output_description[out_name] = job.metadata.get("output", "")
    for key, value in job.metadata.items():
        mlmodel.user_defined_metadata[key] = value


def zip_dir(src: Path, dest: Path) -> None:
    """Zip folder ``src`` into ``dest`` with ``src.name/`` as root, in a reproducible way.

    Entries are sorted, timestamps fixed to 1980-01-01 and permissions to 0644, so the same content
    gives the same bytes (and SHA-256).
    """
    tmp = dest.with_name(dest.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for file in sorted(p for p in src.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(f"{src.name}/{file.relative_to(src).as_posix()}", (1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, file.read_bytes())
    os.replace(tmp, dest)


def inspect_coreml(mlmodel, classes: int | None = None) -> dict[str, Any]:
    """Read a converted Core ML model's program back (Core ML ``predict`` is macOS-only).

    Args:
        mlmodel: the converted model.
        classes: number of labels of a classifier (the shape recorded for its probabilities).

    Features: arrays ``{name, shape, dtype}``; an image input ``{name, kind: "image", dtype: "uint8",
    color_space, shape: [1, C, H, W]}``; a classifier's outputs ``{name, kind: "label", dtype: "string"}``
    and ``{name, kind: "classifier", dtype: "float64", shape: [1, classes]}``.

    Returns:
        ``{"spec_version", "ops" (type -> count), "inputs"/"outputs" ([{name, shape, dtype}]),
        "quantized_weight_ops", "conv_like_ops", "fp16_casts"}``.
    """
    spec = mlmodel.get_spec()
    ops: Counter = Counter()
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            ops.update(op.type for op in block.operations)
    from coremltools.proto import FeatureTypes_pb2 as ft

    def features(descs) -> list[dict]:
        out = []
        for d in descs:
            kind = d.type.WhichOneof("Type")
            if kind == "imageType":
                img = d.type.imageType
                space = ft.ImageFeatureType.ColorSpace.Name(img.colorSpace)
                out.append({"name": d.name, "kind": "image", "dtype": "uint8", "color_space": space,
                            "shape": [1, 1 if space == "GRAYSCALE" else 3, int(img.height), int(img.width)]})
            elif kind == "dictionaryType":  # label -> probability (Core ML doubles)
                out.append({"name": d.name, "kind": "classifier", "dtype": "float64", "shape": [1, classes or 0]})
            elif kind == "stringType":
                out.append({"name": d.name, "kind": "label", "dtype": "string", "shape": [1]})
            else:
                arr = d.type.multiArrayType
                out.append({"name": d.name, "shape": list(arr.shape),
                            "dtype": ft.ArrayFeatureType.ArrayDataType.Name(arr.dataType).lower()})
        return out

    return {"spec_version": spec.specificationVersion, "ops": dict(sorted(ops.items())),
            "inputs": features(spec.description.input), "outputs": features(spec.description.output),
            "quantized_weight_ops": sum(n for t, n in ops.items() if t.startswith("constexpr_")),
            "conv_like_ops": ops.get("conv", 0) + ops.get("linear", 0) + ops.get("conv_transpose", 0)
            + ops.get("matmul", 0), "fp16_casts": ops.get("cast", 0)}


def _coreml_expected_io(job: ExportJob) -> tuple[list[str], list[str]]:
    """Feature dtypes a Core ML file of ``job`` must have: inputs, outputs."""
    inputs = ["uint8"] if job.spec.input.kind == "image" else ["float32"]
    outputs = ["string", "float64"] if _coreml_classifier(job) else ["float32"]
    return inputs, outputs


def _coreml_finish(job: ExportJob, fmt: str, mlmodel, path: Path, notes: list[str]) -> Artifact:
    _coreml_set_metadata(mlmodel, job)
    classifier = _coreml_classifier(job)
    info = inspect_coreml(mlmodel, classes=len(job.spec.labels) if classifier else None)
    want_in, want_out = _coreml_expected_io(job)
    got_in, got_out = [i["dtype"] for i in info["inputs"]], [o["dtype"] for o in info["outputs"]]
    if got_in != want_in or sorted(got_out) != sorted(want_out):
        raise ExportError(f"{fmt}: input/output features are {info['inputs']} / {info['outputs']}, expected "
                          f"{want_in} / {want_out}")
    if info["fp16_casts"] < 2:
        raise ExportError(f"{fmt}: no float32<->float16 casts found; compute precision is not fp16")
    if not path.name.endswith(".mlpackage.zip"):
        raise ExportError(f"{fmt}: Core ML files are written as <name>.mlpackage.zip, got {path.name}")
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        package = Path(tmp) / path.name[: -len(".zip")]
        mlmodel.save(str(package))
        zip_dir(package, path)
    i = info["inputs"][0]
    o = next(f for f in info["outputs"] if f["dtype"] != "string")
    kind_in = "image" if i.get("kind") == "image" else "tensor"
    io_note = ("image input (ct.ImageType: the normalization is the model's scale and bias, feed the aligned "
               f"uint8 face as a {i.get('color_space', '').lower()} CVPixelBuffer / CGImage)"
               if kind_in == "image" else "float32 input")
    out_note = (f"classifier output ({COREML_LABEL!r}: the most probable label, {o['name']!r}: label -> "
                "probability, softmax inside the model; Vision returns VNClassificationObservation)"
                if classifier else "float32 output")
    return Artifact(fmt, path, TensorInfo(i["name"], i["shape"], "NCHW", i["dtype"], kind=kind_in),
                    TensorInfo(o["name"], o["shape"], output_layout(job, False), o["dtype"],
                               kind="classifier" if classifier else "tensor"),
                    embedded_metadata={"where": "Core ML user_defined_metadata (plus author, license, "
                                                "version, short_description)", "keys": sorted(job.metadata)},
                    inspection=info, output_values="probabilities" if classifier else
                    ("logits" if job.spec.labels else "image"),
                    notes=notes + [f"ML Program, minimum deployment target {COREML_MIN_TARGET}, fp16 compute "
                                   f"with {io_note} and {out_note}; zipped .mlpackage (unzip, then add the "
                                   ".mlpackage folder to Xcode)."])


@try_export("coreml_fp16")
def export_coreml_fp16(job: ExportJob, path: Path) -> Artifact:
    """Export a Core ML ML Program with fp16 compute, as ``<name>.mlpackage.zip``: an image input (the
    normalization as ImageType scale/bias) and, for classifiers, a classifier output with the labels."""
    mlmodel = _coreml_convert(job)
    return _coreml_finish(job, "coreml_fp16", mlmodel, path, [])


INT8W_MIN_ELEMENTS = 256
"""Weight tensors with fewer elements stay fp16 in ``coreml_int8w`` (coremltools' ``weight_threshold``
idea; its default is 2048). Measured on the trained mini-Xception (7,178 FER2013 test faces, proxy):
quantizing all 23 weights gives 98.86 % top-1 agreement, the first depthwise 3x3 (72 weights) alone
costing 0.5 %; keeping the 6 tensors under 256 elements (688 weights, 0.7 KB more) gives 99.18 %."""


def _int8w_eligible(model: nn.Module) -> int:
    """Number of Conv/Linear weights of ``model`` that ``coreml_int8w`` quantizes."""
    return sum(1 for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d))
               and m.weight.numel() >= INT8W_MIN_ELEMENTS)


@try_export("coreml_int8w")
def export_coreml_int8w(job: ExportJob, path: Path) -> Artifact:
    """Export a Core ML ML Program with per-channel symmetric int8 weights (fp16 compute; inputs and
    outputs as :func:`export_coreml_fp16`).

    Weight tensors of fewer than :data:`INT8W_MIN_ELEMENTS` elements stay fp16.

    Raises:
        ExportError: the quantized weights are not exactly the eligible ones (the proxy would not match).
    """
    cto = require("coremltools.optimize.coreml")
    mlmodel = _coreml_convert(job)
    # coremltools quantizes a tensor when its size is > weight_threshold
    config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=INT8W_MIN_ELEMENTS - 1))
    with _converter_output():
        mlmodel = cto.linear_quantize_weights(mlmodel, config)
    info = inspect_coreml(mlmodel)
    eligible = _int8w_eligible(job.model)
    if info["quantized_weight_ops"] != eligible:  # the PyTorch proxy quantizes exactly these
        raise ExportError(f"coreml_int8w: {info['quantized_weight_ops']} quantized weights, expected the "
                          f"{eligible} conv/linear weights of >= {INT8W_MIN_ELEMENTS} elements")
    return _coreml_finish(job, "coreml_int8w", mlmodel, path,
                          [f"int8 weights (per-channel symmetric, constexpr_affine_dequantize) for tensors of "
                           f">= {INT8W_MIN_ELEMENTS} elements ({eligible} of {info['conv_like_ops']}), the "
                           f"smaller ones fp16; fp16 compute"])


# --- PyTorch-side proxies of the Core ML files (Core ML predict is macOS-only) -----------------------
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Return a copy of ``model`` with every Conv2d+BatchNorm2d pair folded (eval mode), as converters do."""
    import copy

    from torch.fx.experimental.optimization import fuse

    return fuse(copy.deepcopy(model).eval())


class _Fp16(nn.Module):
    """Run ``model`` in float16 with float32 input and output (the Core ML fp16 ML Program's casts)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float()


def proxy_coreml_fp16(model: nn.Module) -> nn.Module:
    """PyTorch stand-in for the ``coreml_fp16`` file: BatchNorm folded, fp16 compute, float32 I/O."""
    return _Fp16(fold_batchnorm(model)).eval()


def quantize_weights_per_channel(model: nn.Module, bits: int = 8, min_elements: int = 0) -> nn.Module:
    """Round every Conv/Linear weight of at least ``min_elements`` elements to per-output-channel
    symmetric ``bits``-bit integers (in place).

    ``scale_c = max|w_c| / (2**(bits-1) - 1)``; ``w_c <- round(w_c / scale_c) * scale_c`` — the
    ``linear_symmetric`` per-channel scheme of ``coremltools.optimize.coreml.OpLinearQuantizerConfig``.
    """
    qmax = 2 ** (bits - 1) - 1
    with torch.no_grad():
        for module in model.modules():
            if (isinstance(module, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d))
                    and module.weight.numel() >= min_elements):
                w = module.weight
                dim = 1 if isinstance(module, nn.ConvTranspose2d) else 0
                reduce = [d for d in range(w.ndim) if d != dim]
                scale = w.abs().amax(dim=reduce, keepdim=True).clamp_min(1e-12) / qmax
                w.copy_(torch.clamp(torch.round(w / scale), -qmax, qmax) * scale)
    return model


def proxy_coreml_int8w(model: nn.Module) -> nn.Module:
    """PyTorch stand-in for ``coreml_int8w``: BatchNorm folded, int8 per-channel weights (tensors of
    >= :data:`INT8W_MIN_ELEMENTS` elements), fp16 compute."""
    return _Fp16(quantize_weights_per_channel(fold_batchnorm(model), min_elements=INT8W_MIN_ELEMENTS)).eval()


def cleanup(path: Path) -> None:
    """Remove a file or folder if present (used for partial outputs)."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
