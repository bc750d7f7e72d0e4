"""faceforge checkpoints: float16 storage of shipped weights, float32 on load."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from faceforge.checkpoints import load_checkpoint, save_checkpoint, to_fp16_storage
from faceforge.errors import CheckpointError


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 64, 1), nn.Linear(256, 256))


def test_fp16_storage_halves_the_file_and_loads_as_float32(tmp_path):
    model = _model()
    src = save_checkpoint(tmp_path / "m.pt", model, "toy", {"k": 1}, {"data": "none"})
    dst = to_fp16_storage(src, tmp_path / "m16.pt")
    raw = torch.load(dst, map_location="cpu", weights_only=True)
    assert raw["state_dict"]["0.weight"].dtype == torch.float16
    assert raw["state_dict"]["1.num_batches_tracked"].dtype == torch.int64  # integers untouched
    assert raw["meta"]["storage_dtype"] == "float16" and raw["meta"]["data"] == "none"

    loaded = load_checkpoint(dst, arch="toy")
    assert all(v.dtype != torch.float16 for v in loaded["state_dict"].values())
    ref = model.state_dict()
    for k, v in loaded["state_dict"].items():
        if v.is_floating_point():
            # float16 rounding: relative error <= 2**-11
            assert torch.allclose(v, ref[k], rtol=2 ** -10, atol=1e-7), k
    assert dst.stat().st_size < 0.75 * src.stat().st_size


def test_fp16_storage_in_place_and_bad_input(tmp_path):
    src = save_checkpoint(tmp_path / "m.pt", _model(), "toy", {})
    assert to_fp16_storage(src) == src
    assert load_checkpoint(src)["meta"]["storage_dtype"] == "float16"
    with pytest.raises(FileNotFoundError):
        to_fp16_storage(tmp_path / "absent.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        to_fp16_storage(tmp_path / "bad.pt")


def test_write_atomically_replaces_the_file_or_leaves_it_and_no_temporary(tmp_path):
    from faceforge.checkpoints import write_atomically

    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    assert write_atomically(target, lambda tmp: open(tmp, "wb").write(b"new")) == target
    assert target.read_bytes() == b"new"

    def fails(tmp):
        open(tmp, "wb").write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(target, fails)
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_weights_version_is_the_stated_one_else_a_digest_of_the_files(tmp_path):
    import hashlib

    from faceforge.checkpoints import weights_version

    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"first")
    b.write_bytes(b"second")
    assert weights_version({"version": "2026.11.23-run000"}, a) == "2026.11.23-run000"
    assert weights_version({}, a) == "sha256:" + hashlib.sha256(b"first").hexdigest()[:12]
    assert weights_version({"version": ""}, a, b) == "sha256:" + hashlib.sha256(b"firstsecond").hexdigest()[:12]
