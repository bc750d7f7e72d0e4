"""Numbered run folders: ``runs/<family>/<NNN>/`` with the resolved config and a metrics CSV."""

from __future__ import annotations

import csv
import json
import os
import shlex
import sys
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, TypeVar

if TYPE_CHECKING:
    import torch

C = TypeVar("C")


def new_run_dir(root: str | Path, family: str) -> Path:
    """Create and return the next free ``<root>/<family>/<NNN>`` folder (000, 001, ...)."""
    base = Path(root) / family
    base.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()]
    run = base / f"{max(taken, default=-1) + 1:03d}"
    run.mkdir()
    return run


def command_line(argv: list[str] | None = None) -> str:
    """The invoking command as a shell-quoted string for provenance, the program named by its base
    name (``faceforge train emotion ...``, not the virtual environment's absolute path)."""
    args = list(sys.argv if argv is None else argv)
    if args:
        args[0] = Path(args[0]).name
    return " ".join(shlex.quote(a) for a in args)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON."""
    path.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


class MetricsLog:
    """Append rows of metrics to a CSV file, writing the header on the first row.

    Args:
        path: the CSV file.
        append: continue an existing file (a resumed run) with its header, instead of truncating it.
    """

    def __init__(self, path: Path, append: bool = False) -> None:
        self.path = path
        self._fields: list[str] | None = None
        if append and path.is_file() and path.stat().st_size:
            with path.open(newline="") as f:
                self._fields = next(csv.reader(f))

    def log(self, **row: Any) -> None:
        if self._fields is None:
            self._fields = list(row)
            with self.path.open("w", newline="") as f:
                csv.DictWriter(f, self._fields).writeheader()
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self._fields).writerow(row)


def resume_config(cfg: C, resume: str | Path | None, runtime_fields: Iterable[str]) -> tuple[C, Path | None]:
    """The config to continue a run with: the run's stored ``config.json`` (so a resume trains the
    same model on the same data) with this invocation's ``runtime_fields`` (device, workers, limits).

    Args:
        cfg: this invocation's config (a dataclass instance).
        resume: the run folder to continue, or ``None`` for a new run.
        runtime_fields: field names taken from ``cfg`` rather than from the stored config.

    Returns:
        ``(config, run folder)``; ``(cfg, None)`` when ``resume`` is ``None``.

    Raises:
        FileNotFoundError: the folder has no ``last.pt`` and ``config.json``.
    """
    if not resume:
        return cfg, None
    run = Path(resume)
    if not (run / "last.pt").is_file() or not (run / "config.json").is_file():
        raise FileNotFoundError(f"cannot resume: {run} has no last.pt and config.json")
    stored = json.loads((run / "config.json").read_text())["config"]
    runtime = set(runtime_fields)
    names = {f.name for f in fields(cfg)}
    merged = {k: v for k, v in stored.items() if k in names and k not in runtime}
    merged.update({k: getattr(cfg, k) for k in runtime})
    return type(cfg)(**merged), run


def resolve_device(name: str) -> "torch.device":
    """``"auto"`` -> CUDA when available, else CPU; anything else as ``torch.device(name)``."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_requires_grad(nets: Iterable["torch.nn.Module"], flag: bool) -> None:
    """Switch gradients of every parameter of ``nets`` on or off (e.g. freeze D during the G step)."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def restore_training_state(run: Path, nets: "torch.nn.Module", optimizers: dict[str, "torch.optim.Optimizer"],
                           arch: str) -> dict[str, Any]:
    """Load ``<run>/last.pt`` into ``nets`` and ``optimizers`` and restore torch's CPU RNG, so a resumed
    run continues where it stopped.

    Args:
        run: the run folder.
        nets: the module holding every trained network (e.g. an ``nn.ModuleDict``), as saved.
        optimizers: ``{meta key: optimizer}``, e.g. ``{"opt_G": opt_G, "opt_D": opt_D}``.
        arch: the training-state architecture tag the checkpoint was saved with.

    Returns:
        The checkpoint's ``meta`` (``step`` and whatever else the trainer saved).

    Raises:
        CheckpointError: the file is not such a training state, or does not fit ``nets``.
    """
    import torch

    from faceforge.checkpoints import load_checkpoint
    from faceforge.errors import CheckpointError

    ckpt = load_checkpoint(run / "last.pt", arch=arch)
    try:
        nets.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{run / 'last.pt'} does not fit the configured networks: {exc}") from None
    meta = ckpt["meta"]
    for key, opt in optimizers.items():
        opt.load_state_dict(meta[key])
    torch.set_rng_state(meta["rng"])
    return meta


def init_from_weights(path: Path, family: str, state_arch: str, state_nets: "torch.nn.Module",
                      weights_net: "torch.nn.Module", read_weights: Any, state_what: str,
                      weights_what: str) -> str:
    """Load earlier weights into a trainer's networks in place (weights only, the trainers' ``init_from``).

    ``path`` is a run folder of ``family`` or its ``last.pt`` (a training state of ``arch == state_arch``:
    loaded into ``state_nets``, e.g. a ``ModuleDict`` of G and D), or else a weights file that
    ``read_weights(path) -> state dict`` reads (loaded into ``weights_net``, e.g. G alone). Optimizers, steps
    and random states are the caller's and stay fresh.

    Returns:
        A one-line note for the log and ``config.json``: what was loaded (``state_what`` / ``weights_what``).

    Raises:
        FileNotFoundError: nothing there (a folder without ``last.pt``).
        CheckpointError: neither such a training state nor a weights file ``read_weights`` accepts, or
            networks that do not fit the configured sizes.
    """
    from faceforge.checkpoints import load_checkpoint
    from faceforge.errors import CheckpointError

    state_path = path / "last.pt" if path.is_dir() else path
    if not state_path.is_file():
        raise FileNotFoundError(f"--init-from: {state_path} not found (a {family} run folder, its last.pt, or "
                                f"{weights_what.split(' (')[0]} weights)")
    try:  # a training state (read once), else a weights file
        nets, state, what = state_nets, load_checkpoint(state_path, arch=state_arch)["state_dict"], state_what
    except CheckpointError:
        nets, state, what = weights_net, read_weights(state_path), weights_what
    try:
        nets.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"--init-from {state_path}: its networks do not fit this configuration "
                              f"({str(exc).splitlines()[0]})") from None
    return f"initialised from {state_path}: {what}; fresh optimizers, step 0"


def epoch_steps(n_items: int, batch_size: int, cap: int | None = None, what: str = "items") -> int:
    """Full batches per epoch (``n_items // batch_size``), at most ``cap`` when given.

    Raises:
        ValueError: fewer than one full batch of ``what``.
    """
    steps = n_items // batch_size
    if cap:
        steps = min(steps, cap)
    if steps < 1:
        raise ValueError(f"{n_items} {what} are fewer than one batch of {batch_size}")
    return steps


def window_row(window: dict[str, list[float]], step: int, steps_per_epoch: int, lr: float, seconds: float,
               count_key: str) -> dict[str, Any]:
    """One ``metrics.csv`` row from the losses logged since the last row: ``step``, ``epoch``, ``lr``, the
    mean of each loss in ``window`` (5 decimals) and ``sec_per_step`` (``seconds`` over the number of
    values under ``count_key``)."""
    import numpy as np

    row: dict[str, Any] = {"step": step, "epoch": round(step / steps_per_epoch, 4), "lr": f"{lr:.3e}"}
    row.update({k: round(float(np.mean(v)), 5) for k, v in window.items()})
    row["sec_per_step"] = round(seconds / len(window[count_key]), 4)
    return row


def kimg_row(columns: list[str], step: int, batch_size: int, window: dict[str, list[float]],
             step_seconds: list[float], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ``metrics.csv`` row of a step-counted GAN trainer (GPEN, FaceShifter): every column present
    (blank when unknown), ``step``, ``kimg`` (images seen / 1000), ``sec_per_step`` (mean of
    ``step_seconds``), the mean of each loss in ``window`` that is a column (5 decimals), then ``extra``
    (e.g. held-out figures)."""
    import numpy as np

    row: dict[str, Any] = {c: "" for c in columns}
    row.update(step=step, kimg=round(step * batch_size / 1000, 3),
               sec_per_step=round(float(np.mean(step_seconds)), 4) if step_seconds else "")
    row.update({k: round(float(np.mean(v)), 5) for k, v in window.items() if k in row})
    row.update(extra or {})
    return row


LOCK_NAME = "train.lock"
"""File in a run folder while a trainer works in it: the process id, one line."""


@contextmanager
def run_lock(run: Path) -> Iterator[None]:
    """Hold ``run/train.lock`` while training in ``run``, so that a second trainer (e.g. a ``--resume``
    started while the first is still evaluating) cannot continue the same run from a stale state.

    A lock left by a process that no longer exists (a killed run) is taken over.

    Raises:
        RuntimeError: another live process holds the run; the message names its pid.
    """
    lock = Path(run) / LOCK_NAME
    if lock.is_file():
        try:
            pid = int(lock.read_text().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid and pid != os.getpid() and _alive(pid):
            raise RuntimeError(f"{run} is being trained by process {pid} ({lock}); wait for it to end, or "
                               f"delete the lock if that process is not a trainer")
    lock.write_text(f"{os.getpid()}\n")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
