"""Checkpoints as plain dicts, saved atomically and loaded without executing foreign code.

Format (a ``torch.save`` file)::

    {"format": "faceforge-checkpoint", "version": 1,
     "arch": "mini_xception",            # registry name
     "config": {...},                    # constructor arguments
     "state_dict": {...},                # tensors only
     "meta": {"data": ..., "epochs": ..., "metrics": {...}, "command": ..., "git_commit": ...}}

Shipped weights may store their floating-point tensors as float16 (``meta["storage_dtype"] ==
"float16"``, written by :func:`to_fp16_storage`) to halve the repository's size; :func:`load_checkpoint`
returns them as float32, so every caller sees the same dtype whatever the storage.

Loading uses ``torch.load(weights_only=True)``, so a checkpoint can never run code. This module knows
the file format only, no model: converters of published formats return this same dict from modules
of their own above it (StyleGAN2 rosinality ``.pt`` / NVlabs ``.pkl``:
:mod:`faceforge.models.stylegan2_convert`; GPEN: :func:`faceforge.models.gpen.load_gpen`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from faceforge.errors import CheckpointError

FORMAT = "faceforge-checkpoint"
VERSION = 1


def git_commit() -> str | None:
    """Short git commit of the working tree faceforge runs from, or ``None`` outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def weights_version(meta: Mapping[str, Any], *files: str | Path) -> str:
    """The version of loaded weights, as ``/v1/models`` and the ``X-Faceforge-Model-Version`` headers report
    it: ``meta["version"]`` when the checkpoint states one, else ``"sha256:"`` and the first 12 hex digits
    of the SHA-256 of the files' bytes, in the order given (one file: that file's own digest).

    Raises:
        OSError: a file cannot be read.
    """
    if meta.get("version"):
        return str(meta["version"])
    digest = hashlib.sha256()
    for f in files:
        digest.update(Path(f).read_bytes())
    return f"sha256:{digest.hexdigest()[:12]}"


def write_atomically(path: str | Path, write: Callable[[str], Any], suffix: str = ".tmp") -> Path:
    """Replace ``path`` in one step with a file that ``write`` fills, so a reader (another process, a
    crash) never sees it half-written: ``write(tmp)`` writes a temporary file (mode 0600) made in the
    same folder, which then replaces ``path`` (``os.replace``, atomic within a file system).

    Args:
        path: the destination; its folder must exist.
        write: called with the temporary file's path, e.g. ``lambda tmp: torch.save(obj, tmp)``.
        suffix: the temporary file's ending (``np.savez`` wants ``".npz"``, else it appends one).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: the folder is not writable; whatever ``write`` raises. The temporary file is removed
            then, and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save_checkpoint(path: str | Path, model: nn.Module, arch: str, config: dict[str, Any],
                    meta: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights as a faceforge checkpoint, atomically.

    The file is written to a temporary name in the same folder and renamed over ``path``, so a crash
    mid-write never leaves a truncated checkpoint or destroys the previous one.

    Args:
        path: destination ``.pt`` file; parent folders are created.
        model: the network; its ``state_dict`` is stored on the CPU.
        arch: registry name of the architecture.
        config: constructor arguments that rebuild ``model``.
        meta: provenance (data, epochs, seed, metrics, command); ``git_commit`` is added.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "version": VERSION, "arch": arch, "config": dict(config),
               "state_dict": state, "meta": {"git_commit": git_commit(), **(meta or {})}}
    return write_atomically(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path, arch: str | None = None) -> dict[str, Any]:
    """Load a faceforge checkpoint dict safely (tensors and plain containers only).

    Args:
        path: the ``.pt`` file.
        arch: expected registry name; ``None`` accepts any.

    Returns:
        The checkpoint dict (see module docstring).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: not a faceforge checkpoint (e.g. a raw state dict or a pickle of classes),
            or a checkpoint of another architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise CheckpointError(f"{path} is not a loadable faceforge checkpoint: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        keys = list(ckpt)[:5] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path} is not a faceforge checkpoint (expected a dict with "
                              f"format={FORMAT!r}, arch, config, state_dict, meta; found {keys})")
    if arch is not None and ckpt.get("arch") != arch:
        raise CheckpointError(f"{path} holds a {ckpt.get('arch')!r} checkpoint, expected {arch!r}",
                              expected=arch, found=ckpt.get("arch"))
    state = ckpt.get("state_dict")
    if isinstance(state, dict):
        ckpt["state_dict"] = {k: v.float() if torch.is_tensor(v) and v.dtype == torch.float16 else v
                              for k, v in state.items()}
    return ckpt


def to_fp16_storage(src: str | Path, dst: str | Path | None = None) -> Path:
    """Rewrite a faceforge checkpoint with its float32 tensors stored as float16 (half the bytes).

    Integer tensors (e.g. BatchNorm's ``num_batches_tracked``) are kept as they are. The file records
    ``meta["storage_dtype"] = "float16"``; :func:`load_checkpoint` upcasts to float32 on load. Only use
    it where the model's outputs allow the rounding (relative error <= 2**-11 per weight): check the
    model's figures after conversion.

    Args:
        src: a faceforge checkpoint.
        dst: where to write; ``None`` overwrites ``src`` (atomically).

    Returns:
        The path written.

    Raises:
        FileNotFoundError, CheckpointError: as :func:`load_checkpoint`.
    """
    src = Path(src)
    dst = Path(dst) if dst is not None else src
    load_checkpoint(src)  # validates the format, raises the documented errors
    ckpt = torch.load(src, map_location="cpu", weights_only=True)  # as stored (no upcast)
    ckpt["state_dict"] = {k: v.half() if torch.is_tensor(v) and v.dtype == torch.float32 else v
                          for k, v in ckpt["state_dict"].items()}
    ckpt["meta"] = {**ckpt.get("meta", {}), "storage_dtype": "float16"}

    def write(tmp: str) -> None:
        torch.save(ckpt, tmp)
        os.chmod(tmp, 0o644)

    return write_atomically(dst, write)
