"""Blind face restoration as the last step of frontalization (issue 13, item 5): ``restore=`` of
:meth:`faceforge.frontalize.Frontalizer.frontalize`, :func:`faceforge.frontalize.restore_frontal` and
``faceforge frontalize --restore``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from faceforge.checkpoints import save_checkpoint
from faceforge.errors import WeightsNotFoundError
from faceforge.frontalize import RESTORE_METHODS, Frontalizer, restore_frontal
from faceforge.imaging import save_image
from faceforge.models.gpen import GPEN
from faceforge.restore import ENV_VAR as GPEN_ENV, soft_mask
from test_frontalize_photo import RENDER, SIZE, _save  # tests/ is on sys.path (rootdir conftest)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def gpen_file(tmp_path_factory):
    """A tiny random GPEN-32 checkpoint as ``faceforge train gpen`` writes it."""
    torch.manual_seed(0)
    config = {"size": 32, "style_dim": 16, "n_mlp": 8, "channel_multiplier": 1, "narrow": 1 / 32}
    path = tmp_path_factory.mktemp("gpen") / "G_ema.pt"
    save_checkpoint(path, GPEN(**config), "gpen", config, {"face_template": "utkface", "version": "test-1"})
    return path


@pytest.fixture(scope="module")
def fr_weights(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("fr") / "G.pt")


@pytest.fixture(scope="module")
def frontalizer(fr_weights, detector):
    return Frontalizer(fr_weights, render_size=RENDER, detector=detector, num_threads=1)


@pytest.fixture(scope="module")
def frontal_face(astronaut_rgb, detector):
    """The astronaut aligned on ``utkface`` at 96 px: framed like a frontal crop, but a real face."""
    from faceforge.faces.align import align_face

    face = detector.detect(astronaut_rgb)[0]
    return align_face(astronaut_rgb, face.keypoints, 96, template="utkface").image


def _ring(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])


def test_classical_restore_changes_the_face_and_hardly_the_edges(frontal_face):
    (out,), used = restore_frontal([frontal_face], "classical")
    assert used == "classical" and out.shape == frontal_face.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - frontal_face.astype(int)).max(axis=2)
    inner = slice(24, 72)
    assert (diff[inner, inner] > 0).mean() > 0.5  # the restorer reached the face
    mask = soft_mask(frontal_face.shape[0])
    assert (_ring(diff) <= np.ceil(_ring(mask) * 255) + 1).all()  # the soft-mask blend bounds the edges
    assert diff[0, 0] == diff[0, -1] == diff[-1, 0] == diff[-1, -1] == 0


def test_none_and_bad_values(frontal_face):
    crops, used = restore_frontal([frontal_face], "none")
    assert used == "none" and crops[0] is not None and np.array_equal(crops[0], frontal_face)
    assert restore_frontal([], "classical") == ([], "none")
    with pytest.raises(ValueError, match="restore method"):
        restore_frontal([frontal_face], "sharpen")
    with pytest.raises(ValueError, match="uint8"):
        restore_frontal([frontal_face[:, :50]], "classical")


def test_auto_is_gpen_when_configured_else_classical(frontal_face, gpen_file, no_gpen, monkeypatch):
    _, used = restore_frontal([frontal_face], "auto")
    assert used == "classical"
    with pytest.raises(WeightsNotFoundError, match=GPEN_ENV):
        restore_frontal([frontal_face], "gpen")
    monkeypatch.setenv(GPEN_ENV, str(gpen_file))
    (out,), used = restore_frontal([frontal_face], "auto")
    assert used == "gpen" and out.shape == frontal_face.shape and not np.array_equal(out, frontal_face)


def test_the_frontalizer_option_reaches_the_restorer(frontalizer, astronaut_rgb, no_gpen):
    plain = frontalizer.frontalize(astronaut_rgb, "largest")
    restored = frontalizer.frontalize(astronaut_rgb, "largest", restore="auto")
    assert plain.restored == "none" and restored.restored == "classical" and "restore" in restored.timings_ms
    a, b = plain.frontalized[0].output, restored.frontalized[0].output
    side = max(SIZE, round(plain.frontalized[0].face_px))  # restored at the output's side (the face's own)
    assert a.shape == b.shape == (side, side, 3) and side > SIZE and not np.array_equal(a, b)
    expected, _ = restore_frontal([a], "classical")  # the generator is deterministic: the same restore
    assert np.array_equal(b, expected[0])
    with pytest.raises(ValueError, match="restore must be one of"):
        frontalizer.frontalize(astronaut_rgb, "largest", restore="yes")
    assert RESTORE_METHODS == ("none", "auto", "gpen", "classical")


def test_cli_restore(tmp_path, fr_weights, astronaut_rgb, no_gpen):
    from faceforge.cli import main

    photo = save_image(tmp_path / "astro.png", astronaut_rgb)
    base = ["frontalize", str(photo), "--weights", str(fr_weights)]
    ok = CliRunner().invoke(main, base + ["-o", str(tmp_path / "r.png"), "--restore", "classical", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output[ok.output.index("{"):])["restored"] == "classical"
    bad = CliRunner().invoke(main, base + ["--restore", "sharpen"])
    assert bad.exit_code == 2 and "Invalid value for '--restore'" in bad.output
    missing = CliRunner().invoke(main, base + ["-o", str(tmp_path / "g.png"), "--restore", "gpen"])
    assert missing.exit_code == 1 and GPEN_ENV in missing.output and "Traceback" not in missing.output
    assert missing.output.strip().startswith("Error:") and not (tmp_path / "g.png").exists()
