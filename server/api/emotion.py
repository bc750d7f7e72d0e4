"""``POST /v1/emotion``: multipart image upload -> faces with the 7 FER2013 emotion probabilities."""

from __future__ import annotations

import time

from flask import Blueprint, jsonify

from faceforge.errors import CheckpointError, InvalidFieldError, MissingFieldError, NoFaceError, WeightsNotFoundError
from server.api import IMAGE_ERRORS, form_fields, get_hub, read_upload, require_upload
from server.hub import public_weights_name
from server.schemas import EMOTION_PATH, IMAGE_FIELD, keypoint_names

bp = Blueprint("emotion", __name__)

ERRORS = (MissingFieldError, InvalidFieldError, *IMAGE_ERRORS, NoFaceError, WeightsNotFoundError, CheckpointError)
"""Errors this endpoint answers with (besides 404/405/500), listed in the OpenAPI document."""


@bp.post(EMOTION_PATH)
def emotion():
    """Detect faces in the uploaded image and classify each face's emotion.

    Request: ``multipart/form-data`` with the file in field ``image`` (JPEG, PNG, WebP, ... up to
    ``Config.max_bytes`` bytes and ``Config.max_pixels`` pixels) and optionally ``max_faces``.

    Response: see :func:`server.schemas.emotion_response_schema`; timings in milliseconds.
    """
    t0 = time.perf_counter()
    upload = require_upload(IMAGE_FIELD)
    max_faces = form_fields("emotion").max_faces
    _, rgb = read_upload(upload)
    t_decoded = time.perf_counter()

    t_load = time.perf_counter()
    recognizer = get_hub().emotion()  # loads once; not part of the timings
    load_s = time.perf_counter() - t_load

    result = recognizer.predict(rgb, max_faces=max_faces)
    total_ms = (time.perf_counter() - t0 - load_s) * 1e3
    timings = {"decode": (t_decoded - t0) * 1e3, **result.timings_ms, "total": total_ms}
    names = keypoint_names()
    return jsonify(
        model={"name": "mini_xception", "version": recognizer.version, "weights": public_weights_name(recognizer.weights_source),
               "labels": list(recognizer.labels), "face_template": recognizer.face_template},
        image={"width": result.image_size[0], "height": result.image_size[1]},
        faces=[face.to_dict(names) for face in result.faces],
        timings_ms={k: round(float(v), 3) for k, v in timings.items()},
    )
