"""The ``faceforge`` command: help, model listing, and the demo's user-facing behaviour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from faceforge.cli import COMMANDS, main
from faceforge.imaging import encode_image
from faceforge.models import get_spec

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST = REPO_ROOT / "mobile_assets" / "manifest.json"


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def server_weights(tmp_path_factory) -> list[str]:
    """Use the shipped weights when present, else a random-weights checkpoint (behaviour tests only)."""
    if get_spec("mini_xception").default_weights_path.is_file():
        return []
    from server.testing import make_random_emotion_checkpoint

    return ["--weights", str(make_random_emotion_checkpoint(tmp_path_factory.mktemp("w") / "random.pt"))]


def test_help_lists_every_command(runner):
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_unknown_command_fails(runner):
    result = runner.invoke(main, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_models_lists_mini_xception(runner):
    result = runner.invoke(main, ["models", "--task", "emotion"])
    assert result.exit_code == 0
    assert "mini_xception" in result.output and "(1, 48, 48)" in result.output


def test_demo_missing_photo_exits_with_one_line_reason(runner, tmp_path):
    result = runner.invoke(main, ["demo", str(tmp_path / "nope.jpg")])
    assert result.exit_code == 1
    assert "photo not found" in result.output
    assert "Traceback" not in result.output


needs_assets = pytest.mark.skipif(not MANIFEST.is_file(), reason="mobile_assets/manifest.json not generated yet")


@needs_assets
def test_demo_unreadable_image_exits_with_reason(runner, tmp_path, server_weights):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"this is not a JPEG at all")
    result = runner.invoke(main, ["demo", str(bad), "-o", str(tmp_path / "out.jpg"), *server_weights])
    assert result.exit_code == 1
    assert "not an image" in result.output.lower()
    assert not (tmp_path / "out.jpg").exists()


@needs_assets
def test_demo_no_face_exits_with_reason(runner, tmp_path, server_weights):
    flat = tmp_path / "wall.png"
    flat.write_bytes(encode_image(np.full((200, 300, 3), 128, np.uint8)))
    result = runner.invoke(main, ["demo", str(flat), "-o", str(tmp_path / "out.jpg"), *server_weights])
    assert result.exit_code == 1
    assert "no face" in result.output.lower()


@pytest.mark.slow
@needs_assets
def test_demo_default_photo_end_to_end(runner, tmp_path, server_weights):
    out = tmp_path / "annotated.jpg"
    result = runner.invoke(main, ["demo", "-o", str(out), "--json", *server_weights])
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.stdout[result.stdout.index("{"):])
    local, remote = report["on_device"]["faces"], report["server"]["faces"]
    assert len(local) == len(remote) == 1
    assert abs(sum(local[0]["probabilities"].values()) - 1) < 1e-4
    # The on-device int8 file and the server's PyTorch model see the same face.
    assert np.allclose(local[0]["box"], remote[0]["box"], atol=1.0)
    if not server_weights:  # trained weights: both paths agree on the label of the astronaut's smile
        assert local[0]["label"] == remote[0]["label"] == "happy"
    assert out.is_file() and out.stat().st_size > 10_000
