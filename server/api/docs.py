"""``GET /v1/openapi.json``: the OpenAPI 3.1 document of this server (built once per app)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from server.api import EXTENSION_KEY, get_config
from server.schemas import OPENAPI_PATH

bp = Blueprint("docs", __name__)

ERRORS = ()


@bp.get(OPENAPI_PATH)
def openapi_document():
    """Serve the document from :func:`server.openapi.build_openapi`."""
    ext = current_app.extensions[EXTENSION_KEY]
    if "openapi" not in ext:
        from server.openapi import build_openapi
        ext["openapi"] = build_openapi(get_config())
    return jsonify(ext["openapi"])
