"""``POST /v1/frontalize``: multipart photo -> the frontal face of each selected (turned) face.

Request (``multipart/form-data``; field names in :mod:`server.schemas`):

=================  =========  ===========================================================================
field              default    meaning
=================  =========  ===========================================================================
``image``          required   the photo (JPEG, PNG, WebP, ...), limits of :class:`~server.config.Config`
``faces``          ``all``    ``all``, ``largest`` or 0-based indices ``0,2`` (detector order, highest
                              score first); ``all`` frontalizes at most ``Config.max_faces`` faces
``restore``        ``none``   blind face restoration of the frontal crops as the last step: ``auto`` (GPEN
                              when configured, else classical), ``gpen``, ``classical`` or ``none``; it runs on
                              the crop at its output size
``output_size``    ``face``   side of the frontal crops: ``face`` (the face's own side in the photo, at least
                              the generator's, at most 1024 px; the camera's pixels kept where it saw the face,
                              :func:`faceforge.frontalize.compose_frontal`), ``generator`` (the generator's
                              own output) or an integer side in [32, 1024]; anything else: 400
                              ``invalid-field``
``response``       ``json``   ``json``: every detected face with box, yaw, roll, range flag and, when
                              frontalized, its frontal crop as base64 PNG; ``image``: the PNG of one face
                              (the request must select exactly one: ``faces=largest`` or one index)
=================  =========  ===========================================================================

``response=json`` answers with :func:`server.schemas.frontalize_response_schema`. ``response=image``
answers ``200`` ``image/png`` with the headers of :data:`server.schemas.FRONTALIZE_HEADERS`.

Yaw is Face Mesh's estimate calibrated to the training pairs' yaw (:func:`faceforge.frontalize.calibrate_yaw`),
in degrees, positive when the nose points to the image's right. A face turned beyond the trained range is not
frontalized (``in_range: false`` and a ``warning``); when no selected face is left the answer is 422
``pose-out-of-range`` (:class:`faceforge.errors.PoseOutOfRangeError`, with ``yaws`` and ``max_yaw``).

Errors: the configured weights are absent -> 503 ``weights-not-found`` (the shipped default deleted, or
``FACEFORGE_FRONTALIZE_WEIGHTS`` pointing nowhere, or ``restore=gpen`` without GPEN weights); no face -> 422
``no-face`` (also for ``response=image`` when Face Mesh rejects the selected face); an index beyond
the detected faces -> 422 ``bad-face-selection``; ``response=image`` selecting several faces -> 400
``invalid-field``.
"""

from __future__ import annotations

import base64
import time
import warnings

from flask import Blueprint, current_app, jsonify

from faceforge.errors import (CheckpointError, FaceSelectionError, InvalidFieldError, MissingFieldError, NoFaceError,
                              WeightsNotFoundError)
from faceforge.imaging import encode_image
from server.api import IMAGE_ERRORS, form_fields, get_config, get_hub, read_upload, require_upload, server_timing
from server.hub import public_weights_name
from server.schemas import FACES_FIELD, FRONTALIZE_PATH, FRONTALIZE_TIMING_STEPS, IMAGE_FIELD

bp = Blueprint("frontalize", __name__)

ERRORS = (MissingFieldError, InvalidFieldError, *IMAGE_ERRORS, NoFaceError, FaceSelectionError, WeightsNotFoundError,
          CheckpointError)
"""Errors this endpoint answers with (besides 404/405/500), listed in the OpenAPI document."""


@bp.post(FRONTALIZE_PATH)
def frontalize():
    """Frontalize the selected faces of the uploaded photo; see the module docstring for fields and answers."""
    config = get_config()
    t0 = time.perf_counter()
    upload = require_upload(IMAGE_FIELD)
    form = form_fields("frontalize")
    selection, kind = form.faces, form.response
    _, rgb = read_upload(upload)
    t_decoded = time.perf_counter()

    t_load = time.perf_counter()
    frontalizer = get_hub().frontalizer()  # loads once; not part of the timings
    load_s = time.perf_counter() - t_load
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # out-of-range yaw is reported per face
        result = frontalizer.frontalize(rgb, faces=selection, max_faces=config.max_faces, restore=form.restore,
                                        output_size=form.output_size)
    selected = [f for f in result.faces if f.selected]
    if kind == "image" and len(selected) != 1:
        raise InvalidFieldError(f"response=image returns one face, but {len(selected)} are selected; send "
                                f"faces=largest or one index (0-{len(result.faces) - 1})", field=FACES_FIELD)
    t_enc = time.perf_counter()
    encoded = {f.index: encode_image(f.output, "png") for f in result.frontalized}
    t_end = time.perf_counter()
    timings = {"decode": (t_decoded - t0) * 1e3, "detail": 0.0, "restore": 0.0, **result.timings_ms, "encode": (t_end - t_enc) * 1e3,
               "total": (t_end - t0 - load_s) * 1e3}
    timings = {k: round(float(timings[k]), 3) for k in FRONTALIZE_TIMING_STEPS}
    restored = result.restored
    if kind == "image":
        face = selected[0]
        if not face.frontalized:
            raise NoFaceError(f"face {face.index} could not be frontalized: {face.warning}", face=face.index)
        response = current_app.response_class(encoded[face.index], status=200, mimetype="image/png")
        response.headers["X-Faceforge-Faces-Detected"] = str(len(result.faces))
        response.headers["X-Faceforge-Face-Index"] = str(face.index)
        response.headers["X-Faceforge-Yaw"] = f"{face.yaw:.2f}"
        response.headers["X-Faceforge-Yaw-In-Range"] = "true" if face.in_range else "false"
        response.headers["X-Faceforge-Model"] = frontalizer.arch
        response.headers["X-Faceforge-Model-Version"] = frontalizer.version
        response.headers["X-Faceforge-Restored"] = restored
        response.headers["X-Faceforge-Face-Px"] = f"{face.face_px:.1f}"
        response.headers["X-Faceforge-Upscaled"] = "true" if face.upscaled else "false"
        response.headers["Server-Timing"] = server_timing(timings)
        return response
    model = {"name": frontalizer.arch, "version": frontalizer.version,
             "weights": public_weights_name(frontalizer.weights_source), "input": frontalizer.input_mode,
             "size": frontalizer.size, "max_yaw": frontalizer.max_yaw}
    faces = []
    for f in result.faces:
        image = None
        if f.index in encoded:
            image = {"width": int(f.output.shape[1]), "height": int(f.output.shape[0]), "media_type": "image/png",
                     "data": base64.b64encode(encoded[f.index]).decode("ascii")}
        faces.append({**f.to_dict(), "image": image})
    return jsonify(restored=restored, output_size=form.output_size, model=model, faces=faces, timings_ms=timings)
