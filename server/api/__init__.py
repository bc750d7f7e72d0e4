"""Blueprints, one per area: :mod:`.health` (``/healthz``, ``/readyz``), :mod:`.emotion`
(``/v1/emotion``), :mod:`.models` (``/v1/models``) and :mod:`.docs` (``/v1/openapi.json``).

Each blueprint module exposes ``bp`` and, where it can fail, ``ERRORS``: the error classes its
handlers raise, which the OpenAPI document lists as that operation's responses.
"""

from __future__ import annotations

from flask import current_app, request
from werkzeug.datastructures import FileStorage

from faceforge.errors import MissingFieldError

from server.config import Config
from server.hub import ModelHub

EXTENSION_KEY = "faceforge"


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
