"""Blueprints, one per area: :mod:`.health` (``/healthz``, ``/readyz``), :mod:`.emotion`
(``/v1/emotion``), :mod:`.models` (``/v1/models``) and :mod:`.docs` (``/v1/openapi.json``).

Each blueprint module exposes ``bp`` and, where it can fail, ``ERRORS``: the error classes its
handlers raise, which the OpenAPI document lists as that operation's responses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app, request
from werkzeug.datastructures import FileStorage

if TYPE_CHECKING:
    import numpy as np

from faceforge.errors import (ImageTooSmallError, MissingFieldError, NotAnImageError, TooManyBytesError,
                              TooManyPixelsError, TruncatedImageError, UnsupportedFormatError)

from server.config import Config
from server.hub import ModelHub

EXTENSION_KEY = "faceforge"

IMAGE_ERRORS = (NotAnImageError, TruncatedImageError, UnsupportedFormatError, TooManyBytesError, TooManyPixelsError,
                ImageTooSmallError)
"""What decoding an uploaded image (:func:`read_upload`) answers with, for an endpoint's ``ERRORS``."""


def get_config() -> Config:
    """The :class:`Config` of the current app."""
    return current_app.extensions[EXTENSION_KEY]["config"]


def get_hub() -> ModelHub:
    """The :class:`ModelHub` of the current app (shared by all request threads)."""
    return current_app.extensions[EXTENSION_KEY]["hub"]


def require_upload(field: str) -> FileStorage:
    """The uploaded file in multipart field ``field`` of the current request.

    Raises:
        MissingFieldError: the field is absent (400), with a hint when the request is not multipart.
    """
    upload = request.files.get(field)
    if upload is None:
        hint = "" if request.mimetype == "multipart/form-data" else (
            f" (the request is {request.mimetype or 'without a body'}; send multipart/form-data)")
        raise MissingFieldError(f"the multipart field {field!r} with the image file is missing{hint}", field=field)
    return upload


def read_upload(upload: FileStorage) -> tuple[bytes, "np.ndarray"]:
    """Read and decode an uploaded image within the app's byte, pixel and size limits.

    Returns:
        ``(file bytes, RGB uint8 (H, W, 3))`` (EXIF orientation applied, alpha flattened).

    Raises:
        TooManyBytesError, TooManyPixelsError, ImageTooSmallError, NotAnImageError, TruncatedImageError,
        UnsupportedFormatError: see :func:`faceforge.imaging.decode_image`.
        ServerBusyError: the process's decode memory budget stayed full (:mod:`server.decode_budget`).
    """
    from faceforge.imaging import decode_image

    from server.decode_budget import reserve

    config = get_config()
    data = upload.read(config.max_bytes + 1)
    if len(data) <= config.max_bytes:
        reserve(current_app, data, config.max_pixels)  # released when the request ends
    rgb = decode_image(data, max_bytes=config.max_bytes, max_pixels=config.max_pixels, min_side=config.min_side)
    return data, rgb


def server_timing(timings_ms: dict[str, float]) -> str:
    """The ``Server-Timing`` header value of per-step milliseconds (W3C Server Timing, ``dur`` in ms):
    ``{"decode": 3.1, "detect": 40.2}`` -> ``"decode;dur=3.1, detect;dur=40.2"``, in the dict's order."""
    return ", ".join(f"{k};dur={v}" for k, v in timings_ms.items())


def request_limits(attributes: tuple[str, ...] | None = None):
    """The configured limits the request models check (:class:`server.request_models.Limits`)."""
    from server.request_models import Limits

    config = get_config()
    return Limits(max_images=config.max_images, max_steps=config.max_project_steps, attributes=attributes,
                  max_faces=config.max_faces)


def form_fields(endpoint: str):
    """The current request's form, validated by the endpoint's model (:data:`server.request_models.FORMS`).

    Raises:
        InvalidFieldError: a refused value (``field`` names it; ``valid`` lists a fixed set of values).
    """
    from server.request_models import validate_form

    return validate_form(endpoint, request.form, request_limits())
