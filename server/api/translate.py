"""``POST /v1/translate``: multipart photo -> the photo with its faces translated (CycleGAN; task ``age``).

Request (``multipart/form-data``; field names in :mod:`server.schemas`):

=============  =========  ===========================================================================
field          default    meaning
=============  =========  ===========================================================================
``image``      required   the photo (JPEG, PNG, WebP, ...), limits of :class:`~server.config.Config`
``task``       ``age``    translation task (:data:`faceforge.translate.TASKS`)
``faces``      ``all``    ``all``, ``largest`` or 0-based indices ``0,2`` (detector order, highest
                          score first); ``all`` translates at most ``Config.max_faces`` faces
``direction``  ``A->B``   ``A->B`` (age: young -> old) or ``B->A`` (needs both generators)
``postfilter`` ``false``  Gaussian blur + unsharp mask on the translated faces
``strength``   ``1``      how much of the generator's change is added, in [0, 2] (above 1: exaggerated)
``colour``     ``1``      how much of the change's colour part is kept, in [0, 1] (0: brightness only)
``restore``    ``none``   blind face restoration of the translated faces as the last step: ``auto``
                          (GPEN when configured, else classical), ``gpen``, ``classical`` or ``none``
``format``     ``png``    encoding of the returned photo: ``png`` (lossless) or ``jpeg`` (quality 90)
``response``   ``image``  ``image``: the body is the photo; ``json``: a JSON body with the photo base64
                          encoded plus every detected face (box, keypoints, score, translated)
=============  =========  ===========================================================================

``response=image`` answers ``200`` with ``Content-Type: image/png|image/jpeg`` and headers
``X-Faceforge-Faces-Detected`` (count), ``X-Faceforge-Faces-Translated`` (comma-separated indices),
``X-Faceforge-Model`` (generator name), ``X-Faceforge-Model-Version``, ``X-Faceforge-Restored`` (the
restorer that ran: ``none``, ``gpen`` or ``classical``) and ``Server-Timing`` (W3C
Server Timing: ``decode;dur=12.3, detect;dur=...``, milliseconds). ``response=json`` answers with
:func:`server.schemas.translate_response_schema`. A client that needs the boxes asks for JSON; one that
only shows the picture takes the bytes (no base64 overhead).

Errors: the task's configured weights are absent -> 503 ``weights-not-found`` (the shipped default
deleted, or ``FACEFORGE_TRANSLATE_AGE_WEIGHTS`` pointing nowhere, or ``restore=gpen`` without GPEN weights); unknown task -> 400 ``unknown-task`` with
``valid``; an index beyond the detected faces -> 422 ``bad-face-selection``.
"""

from __future__ import annotations

import base64
import time

from flask import Blueprint, current_app, jsonify

from faceforge.errors import (CheckpointError, FaceSelectionError, InvalidFieldError, MissingFieldError, NoFaceError,
                              UnknownTaskError, WeightsNotFoundError)
from faceforge.imaging import encode_image
from server.api import IMAGE_ERRORS, form_fields, get_config, get_hub, read_upload, require_upload, server_timing
from server.hub import public_weights_name
from server.schemas import DIRECTION_FIELD, IMAGE_FIELD, TRANSLATE_PATH, TRANSLATE_TIMING_STEPS, keypoint_names

bp = Blueprint("translate", __name__)

ERRORS = (MissingFieldError, InvalidFieldError, UnknownTaskError, *IMAGE_ERRORS, NoFaceError, FaceSelectionError,
          WeightsNotFoundError, CheckpointError)
"""Errors this endpoint answers with (besides 404/405/500), listed in the OpenAPI document."""

JPEG_QUALITY = 90
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}


@bp.post(TRANSLATE_PATH)
def translate():
    """Translate the selected faces of the uploaded photo; see the module docstring for fields and answers."""
    from faceforge.translate import get_task

    config = get_config()
    t0 = time.perf_counter()
    upload = require_upload(IMAGE_FIELD)
    form = form_fields("translate")
    task = get_task(form.task)
    selection, direction, apply_postfilter = form.faces, form.direction, form.postfilter
    fmt, response_kind = form.format, form.response
    _, rgb = read_upload(upload)
    t_decoded = time.perf_counter()

    t_load = time.perf_counter()
    translator = get_hub().translator(task.name)  # loads once; not part of the timings
    load_s = time.perf_counter() - t_load
    if direction not in translator.directions:
        raise InvalidFieldError(f"the installed {task.name!r} weights translate only {', '.join(translator.directions)}",
                                field=DIRECTION_FIELD, valid=list(translator.directions))

    result = translator.translate(rgb, faces=selection, direction=direction, apply_postfilter=apply_postfilter,
                                  max_faces=config.max_faces, strength=form.strength, colour=form.colour)
    t_restore = time.perf_counter()
    restored = "none"
    if form.restore != "none":
        from faceforge.restore import restore_last

        result.image, restored = restore_last(result.image, result.translated, form.restore,
                                              detector=translator.detector)
    t_enc = time.perf_counter()
    body = encode_image(result.image, fmt, quality=JPEG_QUALITY)
    t_end = time.perf_counter()
    timings = {"decode": (t_decoded - t0) * 1e3, **result.timings_ms, "restore": (t_enc - t_restore) * 1e3,
               "encode": (t_end - t_enc) * 1e3, "total": (t_end - t0 - load_s) * 1e3}
    timings = {k: round(float(timings[k]), 3) for k in TRANSLATE_TIMING_STEPS}
    model = {"name": translator.arch, "version": translator.version,
             "weights": public_weights_name(translator.weights_source), "size": translator.size,
             "face_template": translator.describe()["face_template"], "directions": list(translator.directions)}
    translated = [f.index for f in result.translated]
    if response_kind == "json":
        names = keypoint_names()
        return jsonify(
            task=task.name, direction=direction, postfilter=apply_postfilter, strength=form.strength,
            colour=form.colour, restored=restored, model=model,
            image={"width": int(rgb.shape[1]), "height": int(rgb.shape[0]), "media_type": MEDIA_TYPES[fmt],
                   "data": base64.b64encode(body).decode("ascii")},
            faces=[f.to_dict(names) for f in result.faces], timings_ms=timings)
    response = current_app.response_class(body, status=200, mimetype=MEDIA_TYPES[fmt])
    response.headers["X-Faceforge-Faces-Detected"] = str(len(result.faces))
    response.headers["X-Faceforge-Faces-Translated"] = ",".join(map(str, translated))
    response.headers["X-Faceforge-Model"] = translator.arch
    response.headers["X-Faceforge-Model-Version"] = translator.version
    response.headers["X-Faceforge-Restored"] = restored
    response.headers["Server-Timing"] = server_timing(timings)
    return response
