"""TFLite Model Metadata (the TensorFlow Lite Support schema) written directly with ``flatbuffers``.

Android Studio's ML Model Binding and the TFLite Task Library read a ``.tflite`` file's
``TFLITE_METADATA`` entry: a ``ModelMetadata`` flatbuffer (file identifier ``M001``) that describes the
input image (colour space, size, normalization as mean/std, value range) and the outputs (a labels
file for classifiers), plus the associated files packed as an uncompressed zip archive appended to the
model file.

Why not the ``tflite-support`` package's metadata writers: tflite-support 0.4.4 (the last release,
2023-07) pins ``protobuf<4`` (pip would downgrade protobuf 7 under onnx and coremltools), and its
native metadata module needs ``libusb-1.0`` even when installed without dependencies (checked
2026-12: ``ImportError: libusb-1.0.so.0``). The flatbuffer written here follows the schema
``tensorflow_lite_support/metadata/metadata_schema.fbs`` (version 1.5.0; only fields of 1.0.0 are
used, so ``min_parser_version`` is ``1.0.0``); field slots below are the schema's declaration order
(a union takes two slots: its type, then its value).

Reference: https://www.tensorflow.org/lite/models/convert/metadata (the metadata format and how
associated files are packed).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import flatbuffers

__all__ = ["METADATA_NAME", "FILE_IDENTIFIER", "MIN_PARSER_VERSION", "TensorDescription", "ModelDescription",
           "build_metadata", "append_associated_files", "LABELS_FILE"]

METADATA_NAME = "TFLITE_METADATA"
"""Name of the ``Model.metadata`` entry readers look up."""
FILE_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"
"""Associated file of classifiers: one label per line, in output order (``TENSOR_AXIS_LABELS``)."""

# enum values (metadata_schema.fbs)
COLOR_SPACE = {"rgb": 1, "gray": 2}                 # ColorSpaceType
CONTENT_FEATURE, CONTENT_IMAGE = 1, 2                 # ContentProperties union: FeatureProperties, ImageProperties
PROCESS_NORMALIZATION = 1                             # ProcessUnitOptions union: NormalizationOptions
FILE_TENSOR_AXIS_LABELS = 2                           # AssociatedFileType


@dataclass(frozen=True)
class TensorDescription:
    """One input or output tensor's metadata.

    Attributes:
        name: tensor name shown by the binding (e.g. ``"image"``).
        description: one line.
        image: ``"gray"`` / ``"rgb"`` for image tensors, ``None`` for feature tensors (scores, logits).
        size: ``(width, height)`` of an image tensor, pixels.
        mean, std: normalization ``x = (pixel - mean) / std`` per channel (image inputs), else ``None``.
        value_range: ``(min, max)`` of the (normalized) values, recorded as ``Stats``.
        labels: class names in output order; written to :data:`LABELS_FILE` and linked here.
    """

    name: str
    description: str
    image: str | None = None
    size: tuple[int, int] | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    value_range: tuple[float, float] | None = None
    labels: Sequence[str] | None = None


@dataclass(frozen=True)
class ModelDescription:
    """The model-level fields: name, description, version, author, license, one subgraph's tensors."""

    name: str
    description: str
    version: str
    author: str
    license: str
    inputs: Sequence[TensorDescription] = field(default_factory=tuple)
    outputs: Sequence[TensorDescription] = field(default_factory=tuple)


def _floats(b: flatbuffers.Builder, values: Sequence[float]) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(list(values)):
        b.PrependFloat32(float(v))
    return b.EndVector()


def _tables(b: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(list(offsets)):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _tensor(b: flatbuffers.Builder, t: TensorDescription) -> int:
    name, description = b.CreateString(t.name), b.CreateString(t.description)
    # Content { content_properties_type (0), content_properties (1), range (2) }
    if t.image is not None:
        size = None
        if t.size is not None:
            b.StartObject(2)  # ImageSize { width (0), height (1) }
            b.PrependUint32Slot(0, int(t.size[0]), 0)
            b.PrependUint32Slot(1, int(t.size[1]), 0)
            size = b.EndObject()
        b.StartObject(2)  # ImageProperties { color_space (0), default_size (1) }
        b.PrependInt8Slot(0, COLOR_SPACE[t.image], 0)
        if size is not None:
            b.PrependUOffsetTRelativeSlot(1, size, 0)
        props, kind = b.EndObject(), CONTENT_IMAGE
    else:
        b.StartObject(0)  # FeatureProperties {}
        props, kind = b.EndObject(), CONTENT_FEATURE
    b.StartObject(3)
    b.PrependUint8Slot(0, kind, 0)
    b.PrependUOffsetTRelativeSlot(1, props, 0)
    content = b.EndObject()
    units = None
    if t.mean is not None and t.std is not None:
        mean, std = _floats(b, t.mean), _floats(b, t.std)
        b.StartObject(2)  # NormalizationOptions { mean (0), std (1) }
        b.PrependUOffsetTRelativeSlot(0, mean, 0)
        b.PrependUOffsetTRelativeSlot(1, std, 0)
        norm = b.EndObject()
        b.StartObject(2)  # ProcessUnit { options_type (0), options (1) }
        b.PrependUint8Slot(0, PROCESS_NORMALIZATION, 0)
        b.PrependUOffsetTRelativeSlot(1, norm, 0)
        units = _tables(b, [b.EndObject()])
    stats = None
    if t.value_range is not None:
        hi, lo = _floats(b, [t.value_range[1]]), _floats(b, [t.value_range[0]])
        b.StartObject(2)  # Stats { max (0), min (1) }
        b.PrependUOffsetTRelativeSlot(0, hi, 0)
        b.PrependUOffsetTRelativeSlot(1, lo, 0)
        stats = b.EndObject()
    files = None
    if t.labels:
        fname, fdesc = b.CreateString(LABELS_FILE), b.CreateString("class labels, one per line, in output order")
        b.StartObject(5)  # AssociatedFile { name (0), description (1), type (2), locale (3), version (4) }
        b.PrependUOffsetTRelativeSlot(0, fname, 0)
        b.PrependUOffsetTRelativeSlot(1, fdesc, 0)
        b.PrependInt8Slot(2, FILE_TENSOR_AXIS_LABELS, 0)
        files = _tables(b, [b.EndObject()])
    # TensorMetadata { name (0), description (1), dimension_names (2), content (3), process_units (4),
    #                  stats (5), associated_files (6) }
    b.StartObject(7)
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    b.PrependUOffsetTRelativeSlot(1, description, 0)
    b.PrependUOffsetTRelativeSlot(3, content, 0)
    if units is not None:
        b.PrependUOffsetTRelativeSlot(4, units, 0)
    if stats is not None:
        b.PrependUOffsetTRelativeSlot(5, stats, 0)
    if files is not None:
        b.PrependUOffsetTRelativeSlot(6, files, 0)
    return b.EndObject()


def build_metadata(model: ModelDescription) -> bytes:
    """The ``ModelMetadata`` flatbuffer (file identifier ``M001``) describing ``model``."""
    b = flatbuffers.Builder(1024)
    inputs = _tables(b, [_tensor(b, t) for t in model.inputs])
    outputs = _tables(b, [_tensor(b, t) for t in model.outputs])
    b.StartObject(10)  # SubGraphMetadata { name (0), description (1), input_tensor_metadata (2),
    b.PrependUOffsetTRelativeSlot(2, inputs, 0)  # output_tensor_metadata (3), ... }
    b.PrependUOffsetTRelativeSlot(3, outputs, 0)
    subgraphs = _tables(b, [b.EndObject()])
    strings = [b.CreateString(s) for s in (model.name, model.description, model.version, model.author,
                                          model.license, MIN_PARSER_VERSION)]
    name, description, version, author, license_, parser = strings
    # ModelMetadata { name (0), description (1), version (2), subgraph_metadata (3), author (4), license (5),
    #                 associated_files (6), min_parser_version (7) }
    b.StartObject(8)
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    b.PrependUOffsetTRelativeSlot(1, description, 0)
    b.PrependUOffsetTRelativeSlot(2, version, 0)
    b.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    b.PrependUOffsetTRelativeSlot(4, author, 0)
    b.PrependUOffsetTRelativeSlot(5, license_, 0)
    b.PrependUOffsetTRelativeSlot(7, parser, 0)
    b.Finish(b.EndObject(), file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def append_associated_files(path: Path, model: ModelDescription) -> list[str]:
    """Append the associated files (a classifier's :data:`LABELS_FILE`) to the ``.tflite`` file as an
    uncompressed zip archive, the TFLite Support packing (the interpreter reads the flatbuffer at the
    start and ignores the tail). Entries have fixed timestamps, so the same labels give the same bytes.

    Returns:
        The names appended (empty when the model has none).
    """
    labels = next((t.labels for t in model.outputs if t.labels), None)
    if not labels:
        return []
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as zf:
        info = zipfile.ZipInfo(LABELS_FILE, (1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        zf.writestr(info, "\n".join(labels) + "\n")
    return [LABELS_FILE]
