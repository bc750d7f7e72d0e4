"""Server configuration: one dataclass, read from ``FACEFORGE_*`` environment variables with overrides.

Every field has an environment variable named ``FACEFORGE_`` + the field name in upper case, e.g.
``FACEFORGE_MAX_BYTES=10485760``. Precedence: explicit overrides (``create_app({...})``) > environment
> the defaults below.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from typing import Any, Mapping

ENV_PREFIX = "FACEFORGE_"

MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""Room allowed on top of ``max_bytes`` for multipart boundaries, headers and small form fields."""


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


@dataclass(frozen=True)
class Config:
    """Settings of one server process.

    Attributes:
        max_bytes: largest accepted image upload in bytes (``FACEFORGE_MAX_BYTES``, default 25 MiB).
            The HTTP layer rejects bodies above ``max_bytes + 64 KiB`` before reading them.
        max_pixels: largest accepted decoded image, width x height (``FACEFORGE_MAX_PIXELS``, default
            32 MP: 24 and 32 MP photos pass; decoding costs ~14 bytes per pixel, 420 MiB at the limit);
            checked on the header before decoding; guards against decompression bombs.
        decode_budget_mb: MiB of decode memory all concurrent requests of one process may use; a decode
            that does not fit waits (``FACEFORGE_DECODE_BUDGET_MB``, default 1024; see
            :mod:`server.decode_budget`).
        decode_wait_s: seconds a decode waits for budget before the request is answered 503
            ``server-busy`` with ``Retry-After`` (``FACEFORGE_DECODE_WAIT_S``, default 10).
        min_side: smallest accepted image side in pixels (``FACEFORGE_MIN_SIDE``, default 16).
        max_faces: most faces analysed per request; a request's ``max_faces`` may only lower it
            (``FACEFORGE_MAX_FACES``, default 10).
        emotion_weights: ``"default"`` or a checkpoint path for mini_xception
            (``FACEFORGE_EMOTION_WEIGHTS``).
        translate_age_weights: weights of ``POST /v1/translate`` task ``age``: ``"default"`` (the
            shipped ``faceforge/weights/cyclegan_age.pt``), a run folder of
            ``faceforge train cyclegan`` or a generator checkpoint (``FACEFORGE_TRANSLATE_AGE_WEIGHTS``).
        frontalize_weights: weights of ``POST /v1/frontalize``: ``"default"`` (the installed
            shipped ``faceforge/weights/pix2pix_frontalize.pt``), a run folder of
            ``faceforge train frontalize`` or its ``G.pt`` (``FACEFORGE_FRONTALIZE_WEIGHTS``).
        detector_model: BlazeFace variant, ``"short"``, ``"full"`` or ``"auto"``
            (``FACEFORGE_DETECTOR_MODEL``).
        torch_threads: PyTorch intra-op threads, set for the whole process when the classifier
            loads (``FACEFORGE_TORCH_THREADS``, default 1: mini_xception is tiny, and a threaded
            server runs requests in parallel instead; on a loaded 2-core machine one face took
            2.4 ms with 1 thread vs 15 ms with 2). ``None`` leaves PyTorch's default.
        detector_threads: LiteRT threads of the BlazeFace detector; ``None`` lets LiteRT decide
            (``FACEFORGE_DETECTOR_THREADS``).
        warm_up: load the models inside ``create_app`` instead of at the first request
            (``FACEFORGE_WARM_UP``, default false).
        stylegan2_weights: StyleGAN2 generator for the heavy endpoints, any file
            :func:`faceforge.models.stylegan2_convert.load_stylegan2` reads (faceforge ``.pt``, rosinality ``.pt``,
            NVlabs ``.pkl``), or ``"default"``: faceforge's small 32 px UTKFace generator
            (``FACEFORGE_STYLEGAN2_WEIGHTS``). Unset: the heavy endpoints answer 503 ``weights-not-found``
            (the shipped generator is a CPU-trained stand-in, so serving it is an explicit choice).
        stylegan2_toon_weights: the same generator fine-tuned on cartoon faces, for ``/v1/toonify``, or
            ``"default"``: the anime fine-tune of the default generator (``FACEFORGE_STYLEGAN2_TOON_WEIGHTS``).
        stylegan2_directions: attribute edit directions of the base generator for ``/v1/edit``: a JSON file of
            ``faceforge stylegan directions``, or ``"default"``: those shipped for the default generator
            (``FACEFORGE_STYLEGAN2_DIRECTIONS``); directions of another generator answer 503.
        stylegan2_template: face template photos are aligned to before projection and Delaunay
            morphs, the framing of the generator's training data (``FACEFORGE_STYLEGAN2_TEMPLATE``,
            default ``utkface``; ``ffhq`` for published FFHQ generators).
        job_backend: where heavy jobs run (``FACEFORGE_JOB_BACKEND``): ``inprocess`` (worker threads
            in this process, the default; refuses to start under a multi-process server, see
            :func:`server.jobs.web_processes`) or ``celery`` (records and results in Redis at
            ``redis_url``, tasks run by ``faceforge worker`` processes; :mod:`server.celery_backend`).
        redis_url: Redis of the ``celery`` backend: Celery broker and job store
            (``FACEFORGE_REDIS_URL``, default ``redis://127.0.0.1:6379/0``).
        job_time_limit_s: hard time limit of one job run on a Celery worker, in seconds; the task gets a
            soft limit (``SoftTimeLimitExceeded``, reported as a failed job) at 90 % of it
            (``FACEFORGE_JOB_TIME_LIMIT_S``, default 600). Enforced by the prefork pool only.
        job_visibility_timeout_s: seconds an unacknowledged Celery message stays invisible before Redis
            redelivers it (a worker died without rejecting it); must be >= 2 x ``job_time_limit_s``
            so a slow but live run is never duplicated (``FACEFORGE_JOB_VISIBILITY_TIMEOUT_S``;
            ``None``: exactly 2 x ``job_time_limit_s``).
        job_restore_interval_s: seconds between the workers' sweeps that put messages past the
            visibility timeout back on their queue (``FACEFORGE_JOB_RESTORE_INTERVAL_S``, default 10).
        job_max_attempts: times a Celery job may be started; a job whose worker died that often is
            reported ``failed`` instead of being run again (``FACEFORGE_JOB_MAX_ATTEMPTS``, default 3).
        web_processes: web server processes serving this app (``FACEFORGE_WEB_PROCESSES``); ``None``
            detects gunicorn's worker count. The ``inprocess`` backend refuses to start when > 1.
        api_keys: accepted API keys as ``name:sha256hex`` entries, comma-separated: the SHA-256 hex
            digest of each key, never the key (``FACEFORGE_API_KEYS``; make one with
            ``faceforge serve --new-api-key NAME``). Set: every endpoint but ``/healthz``, ``/readyz`` and
            ``/v1/openapi.json`` needs ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (else 401).
            Unset (default, the embedded demo): no keys.
        require_api_key: refuse to start without ``api_keys`` (``FACEFORGE_REQUIRE_API_KEY``, default
            false; the README's production command sets it).
        rate_limit: flask-limiter limits of the POST requests of one API key (or, without keys, one
            client address), e.g. ``"60/minute;1000/hour"`` (``FACEFORGE_RATE_LIMIT``; unset: none).
            Over it: 429 ``rate-limited`` with ``Retry-After``.
        rate_limit_storage: where the counters live, a ``limits`` storage URI
            (``FACEFORGE_RATE_LIMIT_STORAGE``); unset: ``redis_url`` with the ``celery`` backend (shared by
            every web process), else ``memory://`` (one process).
        cors_origins: origins allowed to call the API from a browser, comma-separated, or ``*``
            (``FACEFORGE_CORS_ORIGINS``; unset: no CORS headers, same-origin pages only).
        job_workers: worker threads of the in-process backend (``FACEFORGE_JOB_WORKERS``, default 1).
        max_jobs: jobs that may wait in the queue; one more is answered 429 (``FACEFORGE_MAX_JOBS``,
            default 16).
        job_ttl_s: seconds a finished job and its result are kept (``FACEFORGE_JOB_TTL_S``, 600).
        max_images: most images one heavy request may produce (``FACEFORGE_MAX_IMAGES``, default 16).
        max_project_steps: upper bound of the projection ``steps`` field
            (``FACEFORGE_MAX_PROJECT_STEPS``, default 1000).
    """

    max_bytes: int = 25 * 2**20
    max_pixels: int = 32_000_000
    min_side: int = 16
    max_faces: int = 10
    emotion_weights: str = "default"
    translate_age_weights: str = "default"
    frontalize_weights: str = "default"
    detector_model: str = "auto"
    torch_threads: int | None = 1
    detector_threads: int | None = None
    warm_up: bool = False
    stylegan2_weights: str | None = None
    stylegan2_toon_weights: str | None = None
    stylegan2_template: str = "utkface"
    stylegan2_directions: str = "default"
    job_backend: str = "inprocess"
    job_workers: int = 1
    max_jobs: int = 16
    job_ttl_s: int = 600
    max_images: int = 16
    max_project_steps: int = 1000
    redis_url: str = "redis://127.0.0.1:6379/0"
    job_time_limit_s: int = 600
    job_visibility_timeout_s: int | None = None
    job_restore_interval_s: int = 10
    job_max_attempts: int = 3
    web_processes: int | None = None
    api_keys: str | None = None
    require_api_key: bool = False
    rate_limit: str | None = None
    rate_limit_storage: str | None = None
    cors_origins: str | None = None
    decode_budget_mb: int = 1024
    decode_wait_s: int = 10

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "min_side", "max_faces", "job_workers", "max_jobs", "job_ttl_s",
                     "max_images", "max_project_steps", "job_time_limit_s", "job_restore_interval_s",
                     "job_max_attempts", "decode_budget_mb"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"config {name} must be >= 1, got {getattr(self, name)}")
        for name in ("torch_threads", "detector_threads", "web_processes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"config {name} must be >= 1 or None, got {value}")
        if self.decode_wait_s < 0:
            raise ValueError(f"config decode_wait_s must be >= 0, got {self.decode_wait_s}")
        if self.job_visibility_timeout_s is not None and self.job_visibility_timeout_s < 2 * self.job_time_limit_s:
            raise ValueError(f"config job_visibility_timeout_s must be >= 2 x job_time_limit_s "
                             f"({2 * self.job_time_limit_s}), got {self.job_visibility_timeout_s}: a shorter one "
                             f"redelivers jobs that are still running")
        if self.detector_model not in ("short", "full", "auto"):
            raise ValueError(f"config detector_model must be short, full or auto, got {self.detector_model!r}")
        from faceforge.faces.align import TEMPLATES

        if self.stylegan2_template not in TEMPLATES:
            raise ValueError(f"config stylegan2_template must be one of {', '.join(TEMPLATES)}, "
                             f"got {self.stylegan2_template!r}")

    @property
    def visibility_timeout_s(self) -> int:
        """The Celery broker's visibility timeout in seconds (``job_visibility_timeout_s`` or 2 x the hard
        time limit)."""
        return self.job_visibility_timeout_s or 2 * self.job_time_limit_s

    @property
    def max_content_length(self) -> int:
        """Largest HTTP request body accepted (Flask ``MAX_CONTENT_LENGTH``), in bytes."""
        return self.max_bytes + MULTIPART_OVERHEAD_BYTES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Config":
        """Build a config from ``FACEFORGE_*`` variables, then apply ``overrides``.

        Args:
            environ: the environment to read (default ``os.environ``).
            **overrides: field values that win over the environment (names case-insensitive).

        Raises:
            ValueError: unknown override name, or a value that does not parse/validate.
        """
        environ = os.environ if environ is None else environ
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, f in known.items():
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is None or raw == "":
                continue
            try:
                values[name] = _convert(f, raw)
            except ValueError as exc:
                raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r}: {exc}") from None
        for key, value in overrides.items():
            name = key.lower()
            if name not in known:
                raise ValueError(f"unknown config key {key!r}; valid keys: {', '.join(known)}")
            values[name] = _convert(known[name], value) if isinstance(value, str) else value
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _convert(f: dataclasses.Field, raw: str) -> Any:
    kind = str(f.type)
    if kind == "bool":
        return _parse_bool(raw)
    if kind.startswith("int"):
        return None if raw.strip().lower() in ("none", "") and "None" in kind else int(raw)
    return raw
