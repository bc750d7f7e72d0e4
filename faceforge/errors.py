"""Typed errors shared by the library, the CLI and the server.

Every error carries a stable ``type`` (a URI, RFC 9457 section 3.1.1), a short ``title`` and the HTTP
``status`` the server answers with, so the server turns any of them into an
``application/problem+json`` response without a lookup table, and the CLI prints ``str(error)`` as its
one-line reason.

To add an error: subclass the closest class below, set ``slug``, ``title`` and ``status``.
"""

from __future__ import annotations

PROBLEM_TYPE_PREFIX = "urn:faceforge:problem:"


class FaceforgeError(Exception):
    """Base class of every error faceforge raises on purpose.

    Attributes:
        slug: stable machine-readable name, e.g. ``"no-face"``.
        title: short human-readable summary that does not change between occurrences.
        status: HTTP status code the server answers with.
    """

    slug = "faceforge-error"
    title = "faceforge error"
    status = 500

    def __init__(self, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def type(self) -> str:
        """Stable problem type URI, e.g. ``urn:faceforge:problem:no-face``."""
        return PROBLEM_TYPE_PREFIX + self.slug

    def to_problem(self, instance: str | None = None) -> dict:
        """Return the RFC 9457 problem details object for this error (JSON-serializable dict)."""
        problem = {"type": self.type, "title": self.title, "status": self.status, "detail": self.detail}
        if instance:
            problem["instance"] = instance
        problem.update({k: v for k, v in self.extra.items() if v is not None})
        return problem


# --- image input ---------------------------------------------------------------------------------
class ImageError(FaceforgeError):
    """The input is not a usable image."""

    slug = "invalid-image"
    title = "The upload is not a usable image"
    status = 400


class NotAnImageError(ImageError):
    slug = "not-an-image"
    title = "The data is not an image"
    status = 400


class TruncatedImageError(ImageError):
    slug = "truncated-image"
    title = "The image file is truncated or corrupt"
    status = 400


class UnsupportedFormatError(ImageError):
    slug = "unsupported-format"
    title = "The image format is not supported"
    status = 415


class TooManyBytesError(ImageError):
    slug = "too-many-bytes"
    title = "The upload is larger than the byte limit"
    status = 413


class TooManyPixelsError(ImageError):
    slug = "too-many-pixels"
    title = "The image has more pixels than the limit (possible decompression bomb)"
    status = 413


class ImageTooSmallError(ImageError):
    slug = "image-too-small"
    title = "The image is too small to contain a face"
    status = 422


# --- faces -----------------------------------------------------------------------------------------
class NoFaceError(FaceforgeError):
    slug = "no-face"
    title = "No face was found in the image"
    status = 422


class FaceSelectionError(FaceforgeError):
    """The faces a request asks for (e.g. index 3) are not among the faces found in the image."""

    slug = "bad-face-selection"
    title = "The selected faces are not in the image"
    status = 422


class PoseOutOfRangeError(FaceforgeError):
    """Every selected face is turned beyond what the model was trained on (e.g. the frontalizer's yaw
    range), so no result is returned rather than an unreliable one."""

    slug = "pose-out-of-range"
    title = "The face is turned beyond the model's trained range"
    status = 422


# --- face swap (faceforge.swap; the FaceShifter swapper raises the face errors above) ------------------
class SwapError(FaceforgeError):
    """The chosen faces cannot be swapped (they were found; the swap refuses them). Base of the swap's
    own refusals, so a caller can catch them together; each subclass keeps its own ``slug``."""

    slug = "swap-refused"
    title = "The faces cannot be swapped"
    status = 422


class PoseGapError(SwapError):
    """The source and target faces are turned too differently for a 2D warp
    (:data:`faceforge.swap.DEFAULT_MAX_YAW_GAP`).

    ``extra``: ``source_yaw``, ``target_yaw``, ``gap``, ``limit`` (degrees), ``face`` (target index)."""

    slug = "pose-gap-too-large"
    title = "The source and target faces are turned too differently for the classical swap"
    status = 422


class FaceTooSmallError(SwapError):
    """A face is below the size the swap needs; ``extra``: ``role``, ``width``, ``minimum`` (pixels)."""

    slug = "face-too-small"
    title = "The face is too small to swap"
    status = 422


class SameFaceError(SwapError):
    """Source and target are the same image or the same face; swapping would change nothing."""

    slug = "same-source-and-target"
    title = "The source and target are the same face"
    status = 422

# --- models and checkpoints -------------------------------------------------------------------------
class UnknownModelError(FaceforgeError, KeyError):
    slug = "unknown-model"
    title = "Unknown model name"
    status = 404

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.detail


class CheckpointError(FaceforgeError):
    slug = "bad-checkpoint"
    title = "The checkpoint does not match the expected architecture or format"
    status = 500


class DatasetNotFoundError(FaceforgeError, FileNotFoundError):
    """A dataset (FER2013, UTKFace, a pose-pair cache, an image folder) is not where it was looked for;
    the message names the path and how to point faceforge at a copy (:mod:`faceforge.data`). A
    :class:`FileNotFoundError` too, so callers catching that keep working."""

    slug = "dataset-not-found"
    title = "A dataset is not available"
    status = 500

    def __str__(self) -> str:  # OSError would otherwise format errno fields
        return self.detail


class MissingDependencyError(FaceforgeError):
    slug = "missing-dependency"
    title = "An optional dependency is not installed"
    status = 500


# --- export -------------------------------------------------------------------------------------------
class ExportError(FaceforgeError):
    slug = "export-failed"
    title = "Export failed"
    status = 500


class ManifestError(FaceforgeError):
    slug = "bad-manifest"
    title = "mobile_assets/manifest.json is missing or does not list the requested file"
    status = 500


class ParityError(ExportError):
    slug = "parity-failed"
    title = "An exported file does not match PyTorch within its bound"


# --- requests (server) ---------------------------------------------------------------------------------
class RequestError(FaceforgeError):
    """A request to the server is malformed (beyond the image itself)."""

    slug = "bad-request"
    title = "The request is malformed"
    status = 400


class MissingFieldError(RequestError):
    slug = "missing-field"
    title = "A required request field is missing"
    status = 400


class InvalidFieldError(RequestError):
    slug = "invalid-field"
    title = "A request field has an invalid value"
    status = 400


class UnknownTaskError(InvalidFieldError):
    """A request names a task (e.g. ``task=age`` of ``/v1/translate``) the server does not know; the
    problem's ``valid`` member lists the known tasks."""

    slug = "unknown-task"
    title = "Unknown task"
    status = 400


class WeightsNotFoundError(CheckpointError):
    """The weights file a model needs is absent (e.g. default weights not trained or not installed)."""

    slug = "weights-not-found"
    title = "The model's weights file is not available"
    status = 503
