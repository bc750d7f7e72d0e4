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
    import re

    listed = set(re.findall(r"^  (\S+)", result.output.split("Commands:")[1], flags=re.M))
    assert listed == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_target_imports_and_has_help(name):
    """Each COMMANDS entry names a real click command (an import failure here is a bug, not 'not installed')."""
    import importlib

    import click

    module, attr = COMMANDS[name][0].split(":")
    cmd = getattr(importlib.import_module(module), attr)
    assert isinstance(cmd, click.Command)
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "unavailable" not in result.output


def test_lazy_group_does_not_disguise_broken_own_code(monkeypatch):
    """An ImportError inside faceforge's own code surfaces as is; a missing third-party module does not."""
    import sys
    import types

    from faceforge import cli as cli_module

    broken = types.ModuleType("faceforge._broken_cmd")
    monkeypatch.setitem(sys.modules, "faceforge._broken_cmd", None)  # importing it raises ImportError
    monkeypatch.setitem(cli_module.COMMANDS, "broken", ("faceforge._broken_cmd:cmd", "broken"))
    monkeypatch.setitem(cli_module.COMMANDS, "needs-extra", ("no_such_third_party_pkg:cmd", "needs an extra"))
    with pytest.raises(ImportError):
        main.get_command(None, "broken")
    unavailable = main.get_command(None, "needs-extra")
    result = CliRunner().invoke(unavailable, [])
    assert result.exit_code == 1 and "no_such_third_party_pkg" in result.output and "not installed" in result.output
    del broken


def test_python_dash_m_faceforge_runs_the_same_group():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "faceforge", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Commands:" in out.stdout and "demo" in out.stdout


def _not_an_image(tmp_path: Path) -> Path:
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is a text file, not a photo")
    return bad


# Each command given a file that is not an image: exit 1, one line naming the file, no traceback.
BAD_IMAGE_COMMANDS = {
    "detect": lambda p, out: ["detect", p, "-o", out],
    "translate": lambda p, out: ["translate", p, "-o", out],
    "frontalize": lambda p, out: ["frontalize", p, "-o", out],
    "stylegan project": lambda p, out: ["stylegan", "project", p, "-o", out, "--steps", "1"],
    "stylegan morph": lambda p, out: ["stylegan", "morph", p, p, "-o", out],
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGE_COMMANDS))
def test_not_an_image_is_one_line_exit_1(runner, tmp_path, name):
    bad = _not_an_image(tmp_path)
    out = tmp_path / "out.png"
    result = runner.invoke(main, BAD_IMAGE_COMMANDS[name](str(bad), str(out)))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and "notes.jpg" in error_lines[0] and "not an image" in error_lines[0]
    assert not out.exists()


@pytest.mark.parametrize("argv", [["detect", "{missing}"], ["translate", "{missing}"], ["demo", "{missing}"],
                                  ["stylegan", "project", "{missing}", "-o", "{out}"]])
def test_missing_input_file_is_usage_error_exit_2(runner, tmp_path, argv):
    missing, out = tmp_path / "absent.jpg", tmp_path / "out.png"
    result = runner.invoke(main, [a.format(missing=missing, out=out) for a in argv])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_not_a_checkpoint_is_one_line_exit_1(runner, tmp_path):
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"\x80\x04not really a pickle")
    result = runner.invoke(main, ["stylegan", "generate", "--weights", str(weights), "--seeds", "0",
                                  "-o", str(tmp_path / "g.png")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("Error:")


def test_stylegan_weights_default_to_the_shipped_generator(runner, tmp_path):
    if not get_spec("stylegan2").default_weights_path.is_file():
        pytest.skip("no shipped StyleGAN2 weights in this checkout")
    out = tmp_path / "faces.png"
    result = runner.invoke(main, ["stylegan", "generate", "--seeds", "0-1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()


@pytest.mark.parametrize("value", ["-1", "nan", "1e9"])
def test_stylegan_bad_id_weight_is_one_line_exit_2(runner, tmp_path, value):
    if not get_spec("stylegan2").default_weights_path.is_file():
        pytest.skip("no shipped StyleGAN2 weights in this checkout")
    photo = tmp_path / "face.png"
    photo.write_bytes(encode_image(np.full((32, 32, 3), 120, np.uint8), "png"))
    for command in (["stylegan", "project"], ["stylegan", "edit", "--attribute", "age"]):
        result = runner.invoke(main, [*command, str(photo), "--no-align", "--steps", "1", "--id-weight", value,
                                      "-o", str(tmp_path / "out.png")])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        (line,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert "--id-weight" in line and "id_weight must be a number in [0, 100]" in line
        assert not (tmp_path / "out.png").exists()


def test_unreachable_server_is_one_line_exit_1(runner, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = runner.invoke(main, ["demo", "-o", str(tmp_path / "out.jpg"), "--server", f"http://127.0.0.1:{port}"])
    assert result.exit_code == 1
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert "cannot reach the server" in line and str(port) in line and len(line) < 300


def test_unknown_command_fails(runner):
    result = runner.invoke(main, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_models_lists_mini_xception(runner):
    result = runner.invoke(main, ["models", "--task", "emotion"])
    assert result.exit_code == 0
    assert "mini_xception" in result.output and "(1, 48, 48)" in result.output


def test_demo_missing_photo_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(main, ["demo", str(tmp_path / "nope.jpg")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
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
