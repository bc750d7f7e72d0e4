"""A memory budget for image decoding in one server process: concurrent decodes cannot add up to GiBs.

Decoding costs far more than the upload: an 8000 x 8000 single-colour PNG is 203 kB on the wire but
:func:`faceforge.imaging.decode_image` peaks at +843 MiB while decoding it (Pillow's 4-byte-per-pixel
image, its upright copy, the RGB array: :data:`BYTES_PER_PIXEL`), and four at once took a worker
from 301 MiB to 3 GiB (issue 15). So before decoding, the server reads the image header (no pixel
data), reserves ``width x height x BYTES_PER_PIXEL`` bytes from a per-process :class:`DecodeBudget`
(``FACEFORGE_DECODE_BUDGET_MB``, default 1024), and releases them when the request ends (the decoded
array lives until then). A request that cannot get its share within ``FACEFORGE_DECODE_WAIT_S``
seconds is answered 503 ``server-busy`` with ``Retry-After``. An image larger than the whole budget
still runs, alone. Together with the server's pixel limit (``FACEFORGE_MAX_PIXELS``, default 32 MP,
checked on the header first) this bounds a process's decode memory to about the budget.
"""

from __future__ import annotations

import io
import math
import threading
import time

from flask import Flask, g

from server.errors import ServerBusyError

BYTES_PER_PIXEL = 14
"""Peak bytes per pixel of one ``decode_image`` call, measured: +843 MiB for 64 MP (13.8 B/px)."""


class DecodeBudget:
    """A counting semaphore over bytes (thread-safe).

    Args:
        limit_bytes: bytes all concurrent reservations may add up to (>= 1).
    """

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes < 1:
            raise ValueError("limit_bytes must be >= 1")
        self.limit = int(limit_bytes)
        self.used = 0
        self._cond = threading.Condition()

    def acquire(self, cost: int, timeout: float) -> int | None:
        """Reserve ``cost`` bytes (at most the whole budget), waiting up to ``timeout`` seconds; return
        the bytes reserved, or ``None`` when they did not become free in time."""
        cost = max(0, min(int(cost), self.limit))
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.used + cost > self.limit:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            self.used += cost
            return cost

    def release(self, cost: int) -> None:
        """Give back a reservation of :meth:`acquire`."""
        with self._cond:
            self.used = max(0, self.used - cost)
            self._cond.notify_all()


def decode_cost(data: bytes) -> int:
    """Estimated peak bytes of decoding ``data``: header ``width x height x`` :data:`BYTES_PER_PIXEL`;
    0 when the header does not parse (the decoder then rejects it cheaply)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the header only
            width, height = im.size
    except Exception:  # noqa: BLE001 - not an image: decode_image answers with the right problem
        return 0
    return int(width) * int(height) * BYTES_PER_PIXEL


def install(app: Flask, limit_bytes: int, wait_s: float) -> DecodeBudget:
    """Give ``app`` a :class:`DecodeBudget` (``app.extensions["faceforge"]["decode_budget"]``) and release
    a request's reservations when it ends."""
    budget = DecodeBudget(limit_bytes)
    app.extensions["faceforge"]["decode_budget"] = budget
    app.extensions["faceforge"]["decode_wait_s"] = float(wait_s)

    @app.teardown_request
    def _release(_exc):
        for cost in g.pop("faceforge_decode_reserved", []):
            budget.release(cost)

    return budget


def reserve(app: Flask, data: bytes, max_pixels: int | None = None) -> None:
    """Reserve the decode cost of ``data`` for the current request (released at its end).

    Images over ``max_pixels`` reserve nothing: the decoder refuses them on the header.

    Raises:
        ServerBusyError: the budget stayed full for ``decode_wait_s`` seconds (503 + Retry-After).
    """
    ext = app.extensions["faceforge"]
    budget: DecodeBudget | None = ext.get("decode_budget")
    if budget is None:
        return
    cost = decode_cost(data)
    if max_pixels is not None and cost > max_pixels * BYTES_PER_PIXEL:
        return
    got = budget.acquire(cost, ext["decode_wait_s"])
    if got is None:
        wait = max(1, math.ceil(ext["decode_wait_s"]))
        raise ServerBusyError(f"the server is decoding other large images; retry in about {wait} s",
                              retry_after=wait)
    g.setdefault("faceforge_decode_reserved", []).append(got)
