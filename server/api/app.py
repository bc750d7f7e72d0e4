"""``GET /app``: the reference web client (``client/web/``), and ``/app/assets/<file>``: the phone files.

The page is the static build of ``client/web`` (``npm ci && npm run build`` writes ``client/web/dist/``);
its on-device path runs ``mobile_assets/`` files with LiteRT.js in the browser and falls back to
``POST /v1/emotion``. Only files that ``mobile_assets/manifest.json`` names (plus the manifest itself)
are served from ``/app/assets/``; nothing else of the work tree is reachable.

Every answer under ``/app`` is cross-origin isolated (``Cross-Origin-Opener-Policy: same-origin``,
``Cross-Origin-Embedder-Policy: require-corp``, ``Cross-Origin-Resource-Policy: same-origin``), which
browsers require for ``SharedArrayBuffer`` and hence for LiteRT.js's multi-threaded Wasm
(https://web.dev/articles/coop-coep).

Locations: ``app.config["FACEFORGE_WEB_DIST"]`` / ``["FACEFORGE_MOBILE_ASSETS"]`` when set, else
``client/web/dist`` and ``mobile_assets`` of the source tree this package sits in.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flask import Blueprint, Response, current_app, redirect, send_from_directory

from server.errors import RouteNotFoundError

bp = Blueprint("web_app", __name__)

ERRORS = (RouteNotFoundError,)

ROOT = Path(__file__).resolve().parents[2]
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}
MIME_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
              ".json": "application/json", ".html": "text/html", ".css": "text/css",
              ".tflite": "application/octet-stream", ".onnx": "application/octet-stream",
              ".zip": "application/zip", ".txt": "text/plain", ".md": "text/markdown"}


def web_dist() -> Path:
    """The built page's folder (``client/web/dist`` unless configured)."""
    return Path(current_app.config.get("FACEFORGE_WEB_DIST") or ROOT / "client" / "web" / "dist")


def mobile_assets() -> Path:
    """The ``mobile_assets`` folder whose manifest the page reads."""
    return Path(current_app.config.get("FACEFORGE_MOBILE_ASSETS") or ROOT / "mobile_assets")


def manifest_files(assets: Path) -> set[str]:
    """Relative paths the manifest names (model, detector and licence files) plus ``manifest.json``.

    Raises:
        RouteNotFoundError: no readable manifest in ``assets``.
    """
    try:
        manifest = json.loads((assets / "manifest.json").read_text())
    except (OSError, ValueError):
        raise RouteNotFoundError(f"no mobile_assets/manifest.json at {assets.name}/ on this server") from None
    names = {"manifest.json"}
    for record in list(manifest.get("models", [])) + list(manifest.get("detectors", [])):
        for key in ("file", "license_file"):
            if isinstance(record.get(key), str):
                names.add(record[key])
    for record in manifest.get("licenses", []) if isinstance(manifest.get("licenses"), list) else []:
        if isinstance(record, dict) and isinstance(record.get("file"), str):
            names.add(record["file"])
    return names


def _send(folder: Path, name: str) -> Response:
    response = send_from_directory(folder, name, mimetype=MIME_TYPES.get(os.path.splitext(name)[1].lower()),
                                   max_age=None)
    response.headers.update(ISOLATION_HEADERS)
    return response


@bp.get("/app")
def app_redirect():
    """``/app`` -> ``/app/`` (the page's relative URLs need the trailing slash)."""
    response = redirect("/app/", code=308)
    response.headers.update(ISOLATION_HEADERS)
    return response


@bp.get("/app/")
@bp.get("/app/<path:name>")
def app_file(name: str = "index.html"):
    """A file of the built page (``index.html`` for ``/app/``).

    Raises:
        RouteNotFoundError: the page is not built, or no such file.
    """
    dist = web_dist()
    if not (dist / "index.html").is_file():
        raise RouteNotFoundError("the web client is not built on this server: run `npm ci && npm run build` "
                                 "in client/web")
    if not (dist / name).is_file() or ".." in Path(name).parts:
        raise RouteNotFoundError(f"no file {name} in the web client")
    return _send(dist, name)


@bp.get("/app/assets/<path:name>")
def asset_file(name: str):
    """A file of ``mobile_assets/`` that the manifest names.

    Raises:
        RouteNotFoundError: the manifest names no such file (or it is missing on disk).
    """
    assets = mobile_assets()
    if name not in manifest_files(assets) or not (assets / name).is_file():
        raise RouteNotFoundError(f"mobile_assets/manifest.json names no file {name}")
    return _send(assets, name)
