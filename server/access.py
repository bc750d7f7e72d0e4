"""Who may call the API and how often: API keys, per-key rate limits, CORS.

API keys (``FACEFORGE_API_KEYS``)
    Configured as ``name:sha256hex`` entries, the SHA-256 hex digest of each key: the server never
    stores a key, and a leaked configuration does not leak keys. Keys are 256-bit random tokens
    (:func:`new_api_key`, ``faceforge serve --new-api-key NAME``), so one fast hash suffices (there is
    nothing to brute-force, unlike passwords). A request sends ``Authorization: Bearer <key>`` or
    ``X-API-Key: <key>``; the digest is compared with every configured one in constant time
    (:func:`hmac.compare_digest`). Public without a key: :data:`PUBLIC_PATHS` (probes, the OpenAPI
    document), the reference web client under ``/app`` (static files) and CORS preflights (``OPTIONS``). Missing or unknown key: 401 ``unauthorized`` with
    ``WWW-Authenticate: Bearer``. No keys configured (the embedded demo, ``faceforge serve``): open.

Rate limits (``FACEFORGE_RATE_LIMIT``)
    flask-limiter (``limits`` strings such as ``60/minute;1000/hour``, fixed windows) over every POST of
    one key, shared by all endpoints; without keys, per client address (behind a reverse proxy that is
    the proxy's, unless the app is wrapped in werkzeug's ``ProxyFix``). GETs (job polls, results,
    probes) are not limited: they cost a Redis read. Counters in Redis (``FACEFORGE_REDIS_URL`` with
    the celery backend), so two gunicorn workers share them; with Redis unreachable the limiter falls
    back to per-process memory instead of failing requests. Over the limit: 429 ``rate-limited`` with
    ``Retry-After`` (seconds to the window's reset).

CORS (``FACEFORGE_CORS_ORIGINS``)
    flask-cors with the listed origins (or ``*``), the ``Authorization``/``X-API-Key``/``Content-Type``
    request headers, and ``Location``/``Retry-After`` exposed to scripts (the job API needs them).
    Unset: no CORS headers, so browsers allow same-origin pages only.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from typing import TYPE_CHECKING

from flask import Flask, g, request

from faceforge.errors import MissingDependencyError

from server.errors import RateLimitedError, UnauthorizedError, problem_response
from server.schemas import HEALTH_PATH, OPENAPI_PATH, READY_PATH

if TYPE_CHECKING:
    from server.config import Config

PUBLIC_PATHS = frozenset({HEALTH_PATH, READY_PATH, OPENAPI_PATH})
APP_PREFIX = "/app"
"""The reference web client (``server/api/app.py``): a static page and the phone files it runs, the
same files every app build ships, so they are public; the API calls the page makes carry a key."""
"""Paths served without an API key and never rate limited."""

_ENTRY = re.compile(r"([A-Za-z0-9_.@-]{1,64}):([0-9a-fA-F]{64})\Z")


def hash_api_key(key: str) -> str:
    """The SHA-256 hex digest (64 lower-case hex digits) of ``key`` (UTF-8)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_api_key(name: str) -> tuple[str, str]:
    """A new random key (43 URL-safe characters, 256 bits) and its ``name:sha256hex`` configuration entry.

    Raises:
        ValueError: ``name`` is not 1-64 characters of letters, digits, ``_ . @ -``.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name or ""):
        raise ValueError(f"an API key name is 1-64 letters, digits or _ . @ -, got {name!r}")
    key = secrets.token_urlsafe(32)
    return key, f"{name}:{hash_api_key(key)}"


def parse_api_keys(spec: str | None) -> dict[str, str]:
    """``"alice:<64 hex>,bob:<64 hex>"`` -> ``{digest: name}``.

    Raises:
        ValueError: an entry that is not ``name:sha256hex``, or a repeated name or digest.
    """
    keys: dict[str, str] = {}
    for raw in (spec or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        match = _ENTRY.match(entry)
        if match is None:
            shown = entry.split(":", 1)[0][:64]
            raise ValueError(f"FACEFORGE_API_KEYS: entry {shown!r}... is not name:sha256hex (the 64-hex-digit "
                             f"SHA-256 of the key; `faceforge serve --new-api-key NAME` makes one)")
        name, digest = match.group(1), match.group(2).lower()
        if digest in keys or name in keys.values():
            raise ValueError(f"FACEFORGE_API_KEYS: {name!r} or its digest appears twice")
        keys[digest] = name
    return keys


def _presented_key() -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.headers.get("X-API-Key") or None


def identify(keys: dict[str, str], key: str | None) -> str | None:
    """The name of ``key`` among ``keys`` (``{digest: name}``), compared in constant time; ``None``."""
    if not key:
        return None
    digest = hash_api_key(key)
    found = None
    for candidate, name in keys.items():
        if hmac.compare_digest(candidate, digest):
            found = name
    return found


def _is_public() -> bool:
    path = request.path
    return (path in PUBLIC_PATHS or request.method == "OPTIONS" or path == APP_PREFIX
            or path.startswith(APP_PREFIX + "/"))


def install(app: Flask, config: "Config") -> None:
    """Install the API-key check, the rate limiter and CORS on ``app`` as ``config`` asks (nothing when
    none is configured). Called by :func:`server.create_app`.

    Raises:
        ValueError: malformed ``api_keys`` or ``rate_limit``; ``require_api_key`` without keys.
        MissingDependencyError: flask-limiter / flask-cors not installed but configured.
    """
    keys = parse_api_keys(config.api_keys)
    if config.require_api_key and not keys:
        raise ValueError("FACEFORGE_REQUIRE_API_KEY is set but FACEFORGE_API_KEYS holds no key")
    if keys:
        @app.before_request
        def _require_key():  # registered before the limiter's: the limit is counted per key
            if _is_public():
                return None
            key = _presented_key()
            name = identify(keys, key)
            if name is None:
                detail = ("this endpoint needs an API key: send Authorization: Bearer <key> or X-API-Key: <key>"
                          if key is None else "the API key is not valid")
                return problem_response(UnauthorizedError(detail))
            g.faceforge_api_key = name
            return None
    if config.rate_limit:
        _install_limiter(app, config)
    if config.cors_origins:
        try:
            from flask_cors import CORS
        except ImportError as exc:
            raise MissingDependencyError("FACEFORGE_CORS_ORIGINS needs flask-cors: pip install -e '.[serve]'") from exc
        origins = [o.strip() for o in config.cors_origins.split(",") if o.strip()]
        CORS(app, origins="*" if origins == ["*"] else origins,
             allow_headers=["Authorization", "X-API-Key", "Content-Type"],
             expose_headers=["Location", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                             "X-RateLimit-Reset"], max_age=600)


def rate_limit_key() -> str:
    """What the limit is counted by: ``key:<name>`` of the request's API key, else ``addr:<client>``."""
    name = g.get("faceforge_api_key")
    return f"key:{name}" if name else f"addr:{request.remote_addr or '?'}"


def _install_limiter(app: Flask, config: "Config") -> None:
    try:
        from flask_limiter import Limiter, RateLimitExceeded
        from limits import parse_many
    except ImportError as exc:
        raise MissingDependencyError("FACEFORGE_RATE_LIMIT needs flask-limiter: pip install -e '.[serve]'") from exc
    try:
        parse_many(config.rate_limit)
    except ValueError as exc:
        raise ValueError(f"FACEFORGE_RATE_LIMIT={config.rate_limit!r}: {exc}") from None
    storage = config.rate_limit_storage or (config.redis_url if config.job_backend == "celery" else "memory://")
    limiter = Limiter(rate_limit_key, app=app, storage_uri=storage, application_limits=[config.rate_limit],
                      application_limits_exempt_when=lambda: request.method != "POST" or _is_public(),
                      headers_enabled=True, strategy="fixed-window", key_prefix="faceforge-limits",
                      swallow_errors=True, in_memory_fallback_enabled=True)
    app.extensions.setdefault("faceforge", {})["limiter"] = limiter

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(exc):
        current = limiter.current_limit
        wait = max(1, math.ceil(current.reset_at - time.time())) if current is not None else 1
        who = g.get("faceforge_api_key")
        detail = (f"{'API key ' + repr(who) if who else 'this client'} used up its limit of {exc.limit.limit}; "
                  f"retry in {wait} s")
        return problem_response(RateLimitedError(detail, retry_after=wait))
