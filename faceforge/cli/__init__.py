"""The ``faceforge`` command.

Subcommands are imported lazily, so ``faceforge --help`` is instant and a command whose optional
dependencies are missing (e.g. ``export`` without the export toolchain) fails with a clear message
instead of breaking the others.

To add a command: write a click command object in its own module and add ``name: "module:attr"``
to :data:`COMMANDS`.

Exit codes, the same for every command:

- ``0``: done.
- ``1``: runtime error: the input cannot be used (not an image, truncated, no face), a model or
  weights file is unusable, a server cannot be reached, an output cannot be written. One line,
  ``Error: <reason>``, on stderr; no traceback. Every :class:`~faceforge.errors.FaceforgeError` and
  ``OSError`` (missing files, refused connections) that a command lets through ends this way.
- ``2``: usage error: unknown command or option, an option value out of range (click's own checks).

A bug in faceforge itself (any other exception, including an ``ImportError`` of faceforge's own
modules) keeps its traceback: it is never disguised as "not installed" or as the user's mistake.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Any

import click

from faceforge.errors import FaceforgeError

OWN_PACKAGES = ("faceforge", "training", "export", "server", "benchmarks")
"""Top-level packages of faceforge itself: an ImportError naming one of them is a bug, not a missing extra."""

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("faceforge.cli.demo:demo", "Run the emotion feature end to end on a photo (on-device style and server)."),
    "detect": ("faceforge.cli.detect:detect", "Detect faces in a photo and save an annotated copy."),
    "emotion": ("faceforge.cli.emotion_video:emotion",
                "Annotate a video (or camera) with each face's emotion, on-device files, smoothed across frames."),
    "models": ("faceforge.cli:models", "List registered models, their inputs and default weights."),
    "translate": ("faceforge.cli.translate:translate", "Translate the faces of a photo (CycleGAN; task: age)."),
    "frontalize": ("faceforge.cli.frontalize:frontalize",
                   "Predict the frontal face of turned faces in a photo (pix2pix, pose-pair trained)."),
    "swap": ("faceforge.cli.swap:swap", "Put the face of one photo onto the faces of another (classical swap)."),
    "provenance": ("faceforge.provenance:provenance",
                   "Check images for faceforge's AI-made marks (IPTC metadata, invisible watermark)."),
    "restore": ("faceforge.cli.restore:restore",
                "Restore the faces of a photo (GPEN blind face restoration, or classical filters)."),
    "virtual-model": ("faceforge.cli.virtual_model:virtual_model",
                      "Put one identity (a photo or a generated person) on every product photo's model."),
    "makeup": ("faceforge.cli.makeup:makeup", "Move a reference face's lip, eye-shadow and skin colours onto a photo."),
    "prepare": ("faceforge.cli.prepare:prepare",
                "Turn a folder of photos into aligned training faces (drops duplicates, small, turned)."),
    "train": ("training.cli:train", "Train faceforge's models."),
    "export": ("export.cli:export", "Export light models to ONNX, TFLite/LiteRT and Core ML with parity checks."),
    "stylegan": ("faceforge.cli.stylegan:stylegan", "StyleGAN2: generate, style-mix, toonify, project, morph faces."),
    "serve": ("server.cli:serve", "Run the Flask server (heavy models and light-model fallback)."),
    "worker": ("server.worker:worker", "Run a Celery worker for heavy jobs (FACEFORGE_JOB_BACKEND=celery)."),
    "bench": ("benchmarks.cli:bench", "Measure on-device vs server latency and model accuracy."),
}


class LazyGroup(click.Group):
    """A click group that imports each subcommand only when it is invoked or its help is shown."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        target, short_help = COMMANDS[name]
        module, attr = target.split(":")
        try:
            cmd = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            missing = exc.name or str(exc)
            if missing.split(".")[0] in OWN_PACKAGES and missing != module.split(".")[0]:
                raise  # faceforge's own code is broken: show the real error
            if missing.split(".")[0] in OWN_PACKAGES:
                # the command's package itself is absent (e.g. an install without training/)
                missing = module

            @click.command(name, help=f"{short_help} (unavailable: {missing} is not installed)")
            def unavailable() -> None:
                raise click.ClickException(f"'faceforge {name}' needs {missing!r}, which is not installed: "
                                           "see README.md for the extras (pip install -e '.[serve]', '[export]', ...)")
            return unavailable
        return cmd

    def invoke(self, ctx: click.Context):  # noqa: D102 - see the module docstring (exit codes)
        try:
            return super().invoke(ctx)
        except FaceforgeError as exc:
            raise click.ClickException(one_line(exc)) from None
        except OSError as exc:
            raise click.ClickException(one_line(exc)) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Use the static short help so `faceforge --help` imports nothing heavy.
        with formatter.section("Commands"):
            formatter.write_dl([(n, h) for n, (_, h) in COMMANDS.items()])


def one_line(exc: BaseException) -> str:
    """The user-facing reason of ``exc`` on one line (first line of its message, or its type).

    ``FileNotFoundError`` from ``open()`` carries the path: it reads "file not found: PATH".
    """
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"file not found: {exc.filename}"
    text = str(exc).strip()
    if isinstance(exc, OSError) and type(exc).__module__.startswith(("requests", "urllib3")):
        request = getattr(exc, "request", None)
        where = f" at {request.url}" if getattr(request, "url", None) else ""
        errno = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
        text = f"cannot reach the server{where}: {errno.group(0) if errno else type(exc).__name__}"
    first = text.splitlines()[0] if text else type(exc).__name__
    return first if len(first) <= 400 else first[:397] + "..."


def save_or_fail(path: Path, rgb: Any, **kwargs: Any) -> None:
    """:func:`faceforge.imaging.save_image` of a uint8 ``(H, W, 3)`` image, a refusal (unknown extension,
    unwritable folder) turned into one CLI line ("cannot write PATH: reason", exit 1).

    Raises:
        click.ClickException: the image could not be written.
    """
    from faceforge.imaging import save_image

    try:
        save_image(path, rgb, **kwargs)
    except ValueError as exc:
        raise click.ClickException(f"cannot write {path}: {exc}") from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="faceforge")
def main() -> None:
    """faceforge: face-image models for mobile apps.

    \b
    Quick start:
      faceforge demo                      # astronaut portrait, on-device vs server
      faceforge demo my_photo.jpg -o out.jpg
      faceforge serve --port 8000
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@click.command()
@click.option("--task", default=None, help="Only models of this task (e.g. emotion, translate, generate).")
@click.option("--json", "as_json", is_flag=True, help="Print architectures and model cards as JSON.")
def models(task: str | None, as_json: bool) -> None:
    """List architectures and the pretrained weights (model cards) faceforge has, truthfully.

    A card is named ``arch.tag``; ``--weights default`` of a command loads the architecture's default
    card, ``--weights arch.tag`` another one. "where" says which copy ``default`` loads: ``user``
    (installed by ``faceforge train ... --install``), ``package`` (shipped) or ``-`` (not available:
    the card's train command makes it).

    \b
    Examples:
      faceforge models
      faceforge models --task translate
      faceforge models --json | python -m json.tool
    """
    import json

    from faceforge.models import cards, get_spec, list_models

    archs = [get_spec(n) for n in list_models()]
    chosen = cards.list_cards(task)
    if task is not None:
        archs = [a for a in archs if a.task == task or any(c.arch == a.name for c in chosen)]
    if as_json:
        click.echo(json.dumps({
            "architectures": [{"name": a.name, "task": a.task, "input": a.input.to_dict(), "source": a.source,
                               "description": a.description,
                               "default_card": a.default_card.name if a.default_card else None} for a in archs],
            "cards": [c.to_dict() for c in chosen]}, indent=1))
        return
    click.echo("Architectures (default configuration; a card may be trained at another size):")
    for a in archs:
        i = a.input
        card = a.default_card.name if a.default_card else "-"
        click.echo(f"  {a.name:17s} {a.task:10s} {i.layout} {str(i.shape):15s} {i.colour or '':4s} "
                   f"default weights: {card}")
        click.echo(f"  {'':17s} {a.description}; source: {a.source}")
    click.echo("\nModel cards (pretrained weights):")
    click.echo(f"  {'card':26s} {'task':10s} {'trained at':10s} {'where':7s} {'file':26s} data terms")
    for c in chosen:
        d = c.to_dict()
        size = f"{d['input_size']} px" if d["input_size"] else "-"
        click.echo(f"  {c.name:26s} {c.task:10s} {size:10s} {d['location'] or '-':7s} {c.file:26s} "
                   f"{c.data_terms or '-'}")
        if not d["available"]:
            click.echo(f"  {'':26s} not available here: {d['train_command'] or 'no train command'}"
                       + (f" (or set {c.env})" if c.env else ""))
