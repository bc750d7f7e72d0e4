"""The trainer skeleton every family's trainer runs in: run folder, lock, resume, metrics, sample grids,
checkpoint cadence, stopping, progress bar and logging. A family supplies only its own step, evaluation,
sample and save functions.

Lifecycle of one invocation (:class:`TrainingRun`)::

    session = TrainingRun("gpen", cfg, RUNTIME_FIELDS)       # resume: the run's stored config + runtime fields
    cfg = session.cfg                                          # (resolve paths, build networks, load data ...)
    if session.resumed:  restore from session.run / "last.pt"  (training.runs.restore_training_state)
    else:                session.create({...})                 # runs/<family>/<NNN>/config.json
    metrics = session.metrics()                                # metrics.csv (appended on resume)
    with StepLoop(session, total, start=step, control=cfg) as loop:   # train.lock held; tqdm bar
        while loop.running:                                    # False once total is reached or a stop fired
            losses = family_step()                             # the family's own step
            loop.record(losses, seconds)                       # window of losses, step count, stop check
            if loop.due(cfg.log_every):    metrics.log(**row(loop.take_window()))
            if loop.due(cfg.sample_every): session.save_grid(loop.step, family_grid())
            if loop.due(cfg.save_every):   family_save(final=loop.last)
    # the loop logs "run <folder>: finished" or "stopped at step s/total (resume with --resume <folder>)"

Epoch-based trainers (emotion, age, attributes) run :class:`EpochLoop` in a :class:`TrainingRun` (lock held by
``session.lock()``): per-epoch step bars, metrics rows that are also logged, a time limit between epochs.

Stopping: ``stop_after_steps`` (steps in this invocation) and ``time_limit_min`` (minutes since the loop
started) end the loop after the step that reaches them; the caller's ``due(...)`` checks are true on that
step (``at_stop``), so the state is saved and ``--resume`` continues exactly.

Logging: messages go to the ``faceforge.training.<family>`` loggers (Python :mod:`logging`), never
``print``; ``faceforge train`` shows INFO messages on stderr (:func:`configure_cli_logging`).
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

from training.runs import MetricsLog, command_line, new_run_dir, resume_config, run_lock, write_json

LOGGER_NAME = "faceforge.training"
"""Parent logger of every trainer (``faceforge.training.<family>``)."""


def family_logger(family: str) -> logging.Logger:
    """The logger a trainer writes to: ``faceforge.training.<family>``."""
    return logging.getLogger(f"{LOGGER_NAME}.{family}")


class _ClickHandler(logging.Handler):
    """Writes records through ``click.echo(err=True)``, resolved at emit time (so ``CliRunner`` sees them)."""

    def emit(self, record: logging.LogRecord) -> None:
        import click

        try:
            click.echo(self.format(record), err=True)
        except Exception:  # noqa: BLE001 - a logging handler must not raise
            self.handleError(record)


def configure_cli_logging(level: int = logging.INFO) -> logging.Handler:
    """Show trainer messages (``faceforge.training.*`` at ``level`` and above) on stderr, once.

    Returns:
        The handler (an existing one is reused, so calling this twice does not duplicate lines).
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(min(level, logger.level or level))
    for handler in logger.handlers:
        if isinstance(handler, _ClickHandler):
            return handler
    handler = _ClickHandler(level)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    return handler


class TrainingRun:
    """One trainer invocation's run folder: resume, ``config.json``, metrics files, sample grids, lock, log.

    Args:
        family: the model family (``"cyclegan"``); the run folder is ``<cfg.runs_dir>/<family>/<NNN>``.
        cfg: this invocation's config (a dataclass with a ``runs_dir`` field).
        runtime_fields: fields a resume takes from ``cfg`` (device, threads, limits); every other field comes
            from the run's stored ``config.json`` (:func:`training.runs.resume_config`).
        resume: the run folder to continue; default ``cfg.resume`` when the config has that field.

    Attributes:
        cfg: the config to train with (stored one on resume; replace it with :meth:`update_config`).
        run: the run folder (``None`` until :meth:`create` for a new run).
        resumed: whether this invocation continues a run.
        command: the invoking command line (provenance).
        log: the family's logger.

    Raises:
        FileNotFoundError: ``resume`` has no ``last.pt`` and ``config.json``.
    """

    def __init__(self, family: str, cfg: Any, runtime_fields: Iterable[str], resume: str | Path | None = None) -> None:
        if resume is None:
            resume = getattr(cfg, "resume", None)
        self.family = family
        self.cfg, self.run = resume_config(cfg, resume, runtime_fields)
        self.resumed = self.run is not None
        self.command = command_line()
        self.log = family_logger(family)

    def update_config(self, cfg: Any) -> Any:
        """Replace the config (e.g. with resolved absolute paths) before :meth:`create`; returns it."""
        self.cfg = cfg
        return cfg

    def create(self, record: dict[str, Any] | None = None) -> Path:
        """The run folder: a new ``<runs_dir>/<family>/<NNN>`` with ``config.json`` =
        ``{"config": asdict(cfg), "command": ..., **record}``, or the resumed folder unchanged."""
        if self.run is None:
            self.run = new_run_dir(self.cfg.runs_dir, self.family)
            write_json(self.run / "config.json", {"config": asdict(self.cfg), "command": self.command,
                                                  **(record or {})})
        return self.run

    def metrics(self, name: str = "metrics.csv", append: bool = True) -> MetricsLog:
        """A CSV metrics log in the run folder (``append``: continue the header of an existing file)."""
        return MetricsLog(self.require_run() / name, append=append)

    def save_grid(self, step: int, grid: Any) -> Path:
        """Write a uint8 ``(H, W, 3)`` sample grid as ``samples/step_<step, 7 digits>.png``."""
        from faceforge.imaging import save_image

        samples = self.require_run() / "samples"
        samples.mkdir(exist_ok=True)
        return save_image(samples / f"step_{step:07d}.png", grid)

    def lock(self):
        """Context manager holding ``train.lock`` (:func:`training.runs.run_lock`; RuntimeError if taken)."""
        return run_lock(self.require_run())

    def require_run(self) -> Path:
        if self.run is None:
            raise RuntimeError("the run folder does not exist yet: call create() first")
        return self.run

    def info(self, msg: str, *args: Any) -> None:
        """Log an INFO message on the family's logger."""
        self.log.info(msg, *args)


class StepLoop:
    """The step loop of a step-counted trainer: lock, progress bar, stopping, windows of losses and times.

    Args:
        session: the :class:`TrainingRun` (its folder must exist).
        total: the step count of the whole run.
        start: the step the run is at (0, or the resumed step).
        control: an object with ``stop_after_steps``, ``time_limit_min`` and ``progress`` (a trainer config).
        desc: the bar's label (default: the family).
        steps_per_epoch: for :meth:`due`'s ``at_epoch_end`` and :attr:`end_of_epoch`.

    Attributes:
        step: the current step (after :meth:`record`: the number of steps done).
        stop: a stop condition fired on this step (``stop_after_steps`` or ``time_limit_min``).
        last: the step is the run's last (``step >= total``).
        steps_this_call: steps done by this invocation.
    """

    def __init__(self, session: TrainingRun, total: int, start: int = 0, control: Any = None, desc: str | None = None,
                 steps_per_epoch: int | None = None) -> None:
        self.session, self.total, self.step = session, int(total), int(start)
        self.stop_after = getattr(control, "stop_after_steps", None)
        self.time_limit_min = getattr(control, "time_limit_min", None)
        self.progress = bool(getattr(control, "progress", True))
        self.desc = desc or session.family
        self.steps_per_epoch = steps_per_epoch
        self.stop = False
        self.last = self.step >= self.total
        self.steps_this_call = 0
        self.t_start: float | None = None
        self.window: dict[str, list[float]] = {}
        self.step_seconds: list[float] = []
        self.t_window = time.time()
        self._stack: ExitStack | None = None
        self.bar = None

    def __enter__(self) -> "StepLoop":
        from tqdm import tqdm

        self._stack = ExitStack()
        self._stack.enter_context(self.session.lock())
        self.bar = tqdm(total=self.total, initial=self.step, disable=not self.progress or None, desc=self.desc,
                        mininterval=5)
        self._stack.callback(self.bar.close)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._stack is not None
        self._stack.close()
        if exc[0] is None:
            self.session.info("run %s: %s", self.session.run, self.outcome())

    @property
    def running(self) -> bool:
        """Whether to take another step; starts the time-limit clock on first use."""
        if self.t_start is None:
            self.t_start = self.t_window = time.time()
        return self.step < self.total and not self.stop

    @property
    def end_of_epoch(self) -> bool:
        return bool(self.steps_per_epoch) and self.step % self.steps_per_epoch == 0

    def record(self, losses: dict[str, float], seconds: float | None = None) -> None:
        """Count one step: add ``losses`` (floats) to the window, ``seconds`` (the step's own time) to the
        step times, advance the bar, and evaluate the stop conditions."""
        self.step += 1
        self.steps_this_call += 1
        if self.bar is not None:
            self.bar.update(1)
        for k, v in losses.items():
            self.window.setdefault(k, []).append(float(v))
        if seconds is not None:
            self.step_seconds.append(seconds)
        out_of_time = (self.time_limit_min is not None and self.t_start is not None
                       and time.time() - self.t_start > 60 * self.time_limit_min)
        self.stop = (self.stop_after is not None and self.steps_this_call >= self.stop_after) or out_of_time
        self.last = self.step >= self.total

    def due(self, every: int | None, *, at_stop: bool = True, at_last: bool = True, at_epoch_end: bool = False) -> bool:
        """Whether a periodic action falls on this step: ``every`` divides it (``0``/``None``: never by
        count), or it is the stopping step (``at_stop``), the run's last (``at_last``) or an epoch's last
        (``at_epoch_end``)."""
        return bool((every and self.step % every == 0) or (at_stop and self.stop) or (at_last and self.last)
                    or (at_epoch_end and self.end_of_epoch))

    def take_window(self) -> tuple[dict[str, list[float]], list[float], float]:
        """``(losses window, step seconds, wall seconds since the last take)``, then start a new window."""
        now = time.time()
        out = self.window, self.step_seconds, now - self.t_window
        self.window, self.step_seconds, self.t_window = {}, [], now
        return out

    def postfix(self, **values: Any) -> None:
        """Show figures on the progress bar."""
        if self.bar is not None:
            self.bar.set_postfix(refresh=False, **values)

    def outcome(self) -> str:
        """``"finished"`` or ``"stopped at step s/total (resume with --resume <run>)"``."""
        if self.step >= self.total:
            return "finished"
        return f"stopped at step {self.step}/{self.total} (resume with --resume {self.session.run})"


class EpochLoop:
    """The epoch loop of an epoch-based trainer (emotion, age, attributes): per-epoch progress bars, metrics
    rows that are also logged, and a time limit checked between epochs.

    Iterating yields the 0-based epochs from ``start`` to ``total - 1``. After an epoch's body (which saves
    its state), if ``time_limit_min`` minutes have passed since the loop began and epochs remain, the loop
    logs "time limit reached after epoch e/total; continue with resume=<run>", sets :attr:`stopped` and ends.

    Args:
        session: the :class:`TrainingRun`.
        total: the run's epoch count.
        start: the first epoch to train (0, or the resumed epoch count).
        time_limit_min: minutes, or ``None`` for no limit.
        progress: show the per-epoch step bars (tqdm; off when not a terminal anyway).
        metrics: the run's metrics log (:meth:`TrainingRun.metrics`), for :meth:`log_row`.
    """

    def __init__(self, session: TrainingRun, total: int, start: int = 0, time_limit_min: float | None = None,
                 progress: bool = True, metrics: MetricsLog | None = None) -> None:
        self.session, self.total, self.start = session, int(total), int(start)
        self.time_limit_min, self.progress, self.metrics = time_limit_min, progress, metrics
        self.stopped = False
        self.t_start: float | None = None

    def __iter__(self):
        self.t_start = time.time()
        for epoch in range(self.start, self.total):
            yield epoch
            if (self.time_limit_min is not None and epoch + 1 < self.total
                    and time.time() - self.t_start > 60 * self.time_limit_min):
                self.stopped = True
                self.session.info("time limit reached after epoch %d/%d; continue with resume=%s", epoch + 1,
                                  self.total, self.session.run)
                return

    def steps(self, n: int, epoch: int) -> Iterable[int]:
        """``range(n)`` behind a progress bar labelled ``epoch e/total`` (removed when done)."""
        from tqdm import tqdm

        return tqdm(range(n), desc=f"epoch {epoch + 1}/{self.total}", leave=False,
                    disable=not self.progress or None, mininterval=5)

    def log_row(self, message: str | None = None, **row: Any) -> None:
        """Append ``row`` to the metrics CSV and log it (``k=v ...``, or ``message``)."""
        if self.metrics is not None:
            self.metrics.log(**row)
        self.session.info(message if message is not None else " ".join(f"{k}={v}" for k, v in row.items()))
