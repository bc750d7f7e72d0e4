"""``GET /v1/models``: every registered model, loaded or not, with weights version and input spec."""

from __future__ import annotations

from flask import Blueprint, jsonify

from server.api import get_hub
from server.schemas import MODELS_PATH

bp = Blueprint("models", __name__)

ERRORS = ()


@bp.get(MODELS_PATH)
def models():
    """List registered models (see :func:`server.schemas.models_response_schema`). Loads nothing."""
    hub = get_hub()
    detector = {"name": "blazeface", "variant": hub.config.detector_model, "loaded": hub.loaded["detector"]}
    return jsonify(models=hub.describe(), detector=detector)
