"""``faceforge export``: write phone files for a light model, check them against PyTorch, update the manifest.

The formats, their choices and ``all`` come from :data:`export.formats.FORMATS`.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path

import click

from export.formats import FORMATS, parse_formats

DEFAULT_OUT = Path("mobile_assets")


def _command_line() -> str:
    """This invocation as a shell-quoted ``faceforge export ...`` line (recorded in the manifest)."""
    return "faceforge export " + " ".join(shlex.quote(a) for a in sys.argv[2:])


def _parse_parity_set(value: str) -> int | None:
    if value == "test":
        return None
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter(f"expected 'test' or a number of images, got {value!r}") from None
    if n < 1:
        raise click.BadParameter(f"number of parity images must be >= 1, got {n}")
    return n


def _parse_bounds(items: tuple[str, ...]) -> dict:
    """``("tflite_int8.min_top1_agreement=0.97", ...)`` -> ``{format: ParityBounds}`` (table values elsewhere)."""
    import dataclasses

    from export.formats import ParityBounds

    out: dict[str, ParityBounds] = {}
    fields = [f.name for f in dataclasses.fields(ParityBounds)]
    for item in items:
        key, sep, value = item.partition("=")
        fmt, dot, field = key.strip().partition(".")
        if not sep or not dot or fmt not in FORMATS or field not in fields:
            raise click.BadParameter(f"{item!r}: expected FORMAT.FIELD=VALUE with FORMAT in {', '.join(FORMATS)} "
                                     f"and FIELD in {', '.join(fields)}", param_hint="--bound")
        try:
            number = float(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: {value!r} is not a number", param_hint="--bound") from None
        out[fmt] = dataclasses.replace(out.get(fmt, FORMATS[fmt].bounds), **{field: number})
    return out


def summary_table(report) -> str:
    """Plain-text table: format, file, KB, top-1 agreement (all inputs; inputs that are not near ties),
    accuracy (file / PyTorch), validation, status."""
    rows = [("format", "file", "KB", "agreement/PSNR", "clear margin", "accuracy (file/torch)", "validation",
             "status")]
    for o in report.outcomes:
        p = o.parity
        size = f"{o.bytes / 1024:.1f}" if o.bytes else "-"
        agree = f"{100 * p.top1_agreement:.2f}%" if p and p.top1_agreement is not None else (
            f"{p.psnr_db:.1f} dB" if p and p.psnr_db is not None else "-")
        clear = (f"{100 * p.top1_agreement_clear:.2f}% of {100 * (1 - p.near_tie_fraction):.1f}%"
                 if p and p.top1_agreement_clear is not None else "-")
        acc = f"{100 * p.accuracy:.2f}% / {100 * p.accuracy_pytorch:.2f}%" if p and p.accuracy is not None else "-"
        valid = "run" if o.format.runs_on_linux else "inspected+proxy"
        rel = o.format.relpath(report.model)
        rows.append((o.format.name, rel, size, agree, clear, acc, valid, "ok" if o.ok else "FAILED"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@click.command("export", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", default="mini_xception", required=False)
@click.option("--formats", "formats_text", default="all", show_default=True, metavar="all|NAME[,NAME...]",
              help=f"Formats to write: {', '.join(FORMATS)}.")
@click.option("--weights", default="default", show_default=True, metavar="default|PATH",
              help="faceforge's trained weights, or a faceforge checkpoint file ('random' = tests only).")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True,
              help="Output folder (android/, ios/, onnx/, detector/, LICENSES/, manifest.json; for gpen: required, "
                   "gpen_<S>.onnx + .json).")
@click.option("--calibration-size", type=click.IntRange(1, 100_000), default=500, show_default=True,
              help="Representative training images for full-integer int8 calibration.")
@click.option("--calibration", "calibration_source", type=click.Choice(["data", "random"]), default="data",
              show_default=True, help="'data' = real training images (FACEFORGE_DATA); 'random' = synthetic, "
              "for tests only (refused for the default output folder).")
@click.option("--parity-set", default="test", show_default=True, metavar="test|N",
              help="Compare with PyTorch on the whole test split, or on N random test images.")
@click.option("--parity-source", type=click.Choice(["data", "random"]), default="data", show_default=True,
              help="'random' = synthetic parity inputs without labels (tests only).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the calibration and parity subsets.")
@click.option("--threads", type=click.IntRange(1, 256), default=os.cpu_count() or 1, show_default="all cores",
              help="CPU threads for PyTorch and the runtimes.")
@click.option("--bound", "bound_overrides", multiple=True, metavar="FORMAT.FIELD=VALUE",
              help="Replace one parity bound of the formats table, e.g. tflite_int8.min_top1_agreement=0.97 "
              "(logged, and recorded in the manifest next to the figures). Repeatable.")
@click.option("--no-manifest", is_flag=True, help="Only write and check the model files (no detector, licenses, "
              "manifest).")
@click.option("--size", type=click.IntRange(16), default=None,
              help="Input side for image-to-image models (e.g. 128 or 256) [default: the size the checkpoint "
                   "was trained at, else the spec's].")
@click.option("--app-steps-only", is_flag=True, help="Only rewrite the app_steps of MODEL's entries in OUT/manifest.json "
              "from the library's constants (no file exported; the files are checked against the manifest).")
@click.option("--remove", "remove_text", default=None, metavar="NAME[,NAME...]",
              help="Only remove MODEL's files of these formats from OUT and their manifest entries (to stop shipping "
                   "a variant no app build uses; export it again any time).")
@click.option("-v", "--verbose", is_flag=True, help="Log every step and show the converters' own progress.")
def export(model: str, formats_text: str, weights: str, out: Path, calibration_size: int, calibration_source: str,
           parity_set: str, parity_source: str, seed: int, threads: int, bound_overrides: tuple[str, ...],
           no_manifest: bool, size: int | None, app_steps_only: bool, remove_text: str | None, verbose: bool) -> None:
    """Export MODEL (default mini_xception) to phone formats, check parity, update the manifest.

    Every file is written to a temporary folder, run (LiteRT, ONNX Runtime) or inspected (Core ML,
    with a PyTorch proxy of the same quantization) against PyTorch on real test images, and moved into
    OUT only if every requested format met its bounds; otherwise nothing in OUT changes.

    \b
    Examples:
      faceforge export                                   # all formats, trained weights -> mobile_assets/
      faceforge export --formats tflite_int8,coreml_fp16
      faceforge export --weights runs/emotion/000/best.pt --out /tmp/assets --parity-set 1000
      faceforge export cyclegan_mobile --weights runs/cyclegan/000/G_A.pt --parity-set 200 \\
          --formats onnx,tflite_fp16,tflite_dynint8,tflite_int8,coreml_fp16,coreml_int8w
      faceforge export pix2pix_mobile --app-steps-only   # the phone steps only, files unchanged
      faceforge export pix2pix_mobile --remove tflite_dynint8   # stop shipping one variant

    Image-to-image models (no labels, e.g. cyclegan_mobile) are compared by PSNR against PyTorch on
    real aligned faces (young UTKFace faces for cyclegan_*), with the per-format bounds of the table.

    \b
    GPEN (a server model, never in mobile_assets/; see export/gpen_onnx.py):
      faceforge export gpen --formats onnx --weights runs/gpen/000/G_ema.pt -o exports/gpen
      faceforge restore photo.jpg --weights exports/gpen/gpen_64.onnx -o out.png   # ONNX Runtime
    """
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faceforge").setLevel(logging.INFO if verbose else logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not verbose:
        os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")

    if model == "gpen":  # a server model: ONNX for server runtimes, no phone formats, no manifest
        import torch

        from export.gpen_onnx import export_command

        torch.set_num_threads(threads)
        return export_command(formats_text, weights, out, out.resolve() == DEFAULT_OUT.resolve(),
                              _parse_parity_set(parity_set),
                              parity_source, seed, threads, size, bound_overrides,
                              command=_command_line())

    from faceforge.errors import FaceforgeError
    from faceforge.models import get_spec

    if app_steps_only:  # the phone contract of unchanged files (export.manifest.refresh_app_steps)
        from export.manifest import refresh_app_steps

        try:
            get_spec(model)
            changed = refresh_app_steps(out, model, command=_command_line())
        except KeyError as exc:
            raise click.UsageError(str(exc)) from None
        except FaceforgeError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{model}: app_steps rewritten in {out}/manifest.json for {len(changed)} file(s)"
                   + (": " + ", ".join(changed) if changed else " (already current)"))
        return

    if remove_text is not None:  # export.manifest.remove_formats
        from export.manifest import remove_formats

        try:
            get_spec(model)
            names = [f.name for f in parse_formats(remove_text)]
            removed = remove_formats(out, model, names,
                                     command=_command_line())
        except (ValueError, KeyError) as exc:
            raise click.UsageError(str(exc)) from None
        except FaceforgeError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{model}: removed {', '.join(removed)} and their entries from {out}/manifest.json")
        return

    try:
        get_spec(model)
        formats = parse_formats(formats_text)
    except (ValueError, KeyError) as exc:
        raise click.UsageError(str(exc)) from None
    parity_limit = _parse_parity_set(parity_set)
    bounds = _parse_bounds(bound_overrides)
    if not any(f.needs_calibration for f in formats) and (calibration_source != "data" or calibration_size != 500):
        logging.getLogger("faceforge.export").warning(
            "--calibration/--calibration-size ignored: none of %s needs calibration", ",".join(f.name for f in formats))
    is_default_out = out.resolve() == DEFAULT_OUT.resolve()
    testing_only = [name for name, used in (("--weights random", weights == "random"),
                                            ("--calibration random", calibration_source == "random"
                                             and any(f.needs_calibration for f in formats)),
                                            ("--parity-source random", parity_source == "random")) if used]
    if testing_only and is_default_out:
        raise click.UsageError(f"{', '.join(testing_only)} is for tests; write to another --out than {DEFAULT_OUT}")

    import torch

    torch.set_num_threads(threads)
    from export.exporter import run_export

    command = _command_line() if len(sys.argv) > 1 else ""
    try:
        report = run_export(model, formats, weights=weights, out=out, calibration_size=calibration_size,
                            calibration_source=calibration_source, parity_limit=parity_limit,
                            parity_source=parity_source, seed=seed, threads=threads,
                            write_manifest=not no_manifest, command=command.strip(), progress=True,
                            bounds=bounds, size=size)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except FaceforgeError as exc:
        partial = getattr(exc, "report", None)
        if partial is not None:
            click.echo(summary_table(partial), err=True)
        raise click.ClickException(str(exc)) from None
    click.echo(summary_table(report))
    where = f"{out}/manifest.json" if not no_manifest else str(out)
    click.echo(f"\n{report.model} version {report.version}: {len(report.outcomes)} file(s) written; see {where}")


if __name__ == "__main__":  # python -m export.cli
    export()
