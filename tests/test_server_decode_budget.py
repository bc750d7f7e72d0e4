"""The decode memory budget (issue 15): header-based cost, waiting and 503 ``server-busy`` when the
budget stays full, serialised decodes of large images, and the server's 32 MP default refusing the
64 MP PNG on its header (no decode)."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from server import create_app
from server.decode_budget import BYTES_PER_PIXEL, DecodeBudget, decode_cost

EMOTION = "/v1/emotion"


def png(width: int, height: int, value: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature + IHDR claiming ``width x height`` RGB, and a tiny IDAT: what a decompression bomb
    looks like before decoding."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def is_busy(response) -> bool:
    return response.status_code == 503 and "server-busy" in response.get_data(as_text=True)


def test_budget_waits_times_out_and_runs_an_oversized_request_alone():
    budget = DecodeBudget(100)
    assert budget.acquire(60, 0) == 60 and budget.acquire(60, 0) is None  # would overrun: refused
    threading.Timer(0.1, budget.release, args=(60,)).start()
    t0 = time.monotonic()
    assert budget.acquire(60, 5) == 60 and 0.05 < time.monotonic() - t0 < 4  # waited for the release
    budget.release(60)
    assert budget.acquire(10_000, 0) == 100 and budget.used == 100  # larger than all: alone
    budget.release(100)
    assert budget.used == 0
    with pytest.raises(ValueError):
        DecodeBudget(0)


def test_cost_comes_from_the_header_only():
    assert decode_cost(png(100, 80)) == 100 * 80 * BYTES_PER_PIXEL
    assert decode_cost(png_header_only(8000, 8000)) == 64_000_000 * BYTES_PER_PIXEL  # nothing decoded
    assert decode_cost(b"not an image") == 0


def test_the_64_mp_png_is_refused_on_its_header_by_default(expect_problem):
    app = create_app()
    assert app.extensions["faceforge"]["config"].max_pixels == 32_000_000
    client = app.test_client()
    response = client.post(EMOTION, data={"image": (io.BytesIO(png_header_only(8000, 8000)), "bomb.png")},
                           content_type="multipart/form-data")
    body = expect_problem(response, 413, "too-many-pixels")
    assert "8000x8000" in body["detail"] and app.extensions["faceforge"]["decode_budget"].used == 0


def test_full_budget_is_503_with_retry_after_and_is_released_after_each_request(monkeypatch, expect_problem):
    import faceforge.imaging

    real_decode, entered, release = faceforge.imaging.decode_image, threading.Event(), threading.Event()

    def slow_decode(data, **kw):
        entered.set()
        release.wait(10)
        return real_decode(data, **kw)

    monkeypatch.setattr(faceforge.imaging, "decode_image", slow_decode)
    app = create_app({"decode_budget_mb": 16, "decode_wait_s": 0})
    budget = app.extensions["faceforge"]["decode_budget"]
    data = png(1000, 800)  # 11.2 MB of budget: one fits in 16 MiB, two do not
    first = []
    holder = threading.Thread(target=lambda: first.append(app.test_client().post(
        EMOTION, data={"image": (io.BytesIO(data), "a.png")}, content_type="multipart/form-data")))
    holder.start()
    assert entered.wait(10) and budget.used == 1000 * 800 * BYTES_PER_PIXEL
    busy = app.test_client().post(EMOTION, data={"image": (io.BytesIO(data), "b.png")},
                                  content_type="multipart/form-data")
    expect_problem(busy, 503, "server-busy")
    assert busy.headers["Retry-After"] == "1"
    release.set()
    holder.join(30)
    assert first and not is_busy(first[0]) and budget.used == 0  # released at the end of the request


def test_large_decodes_run_one_at_a_time_under_a_small_budget(monkeypatch):
    import faceforge.imaging

    real_decode, lock = faceforge.imaging.decode_image, threading.Lock()
    state = {"now": 0, "max": 0}

    def counting_decode(data, **kw):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        try:
            time.sleep(0.05)
            return real_decode(data, **kw)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(faceforge.imaging, "decode_image", counting_decode)
    data = png(2000, 2000)  # 56 MB of budget each; 64 MiB holds one
    app = create_app({"decode_budget_mb": 64, "decode_wait_s": 30})
    codes = []

    def post():
        codes.append(app.test_client().post(EMOTION, data={"image": (io.BytesIO(data), "a.png")},
                                            content_type="multipart/form-data"))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(codes) == 4 and not any(is_busy(r) for r in codes) and state["max"] == 1
