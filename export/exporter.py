"""The export run: model -> files in every requested format -> parity -> manifest, all or nothing.

:func:`run_export` writes everything into a temporary folder inside the output folder and moves the
files into place only when every format exported and met its parity bounds; a failure leaves the
existing files and manifest untouched. The manifest keeps the entries of files not re-exported this
time (if they are still there, unchanged).
"""

from __future__ import annotations

import dataclasses

import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import torch

from export import calibration as calib
from export import manifest as mf
from export import parity
from export.base import Artifact, ExportJob
from export.formats import ExportFormat, ParityBounds
from export.schema import SCHEMA
from faceforge.errors import ExportError, ParityError, WeightsNotFoundError
from faceforge.models import create_model, get_spec
from faceforge.models.registry import ModelSpec


EXPORT_TMP_PREFIX = ".export-tmp-"
"""Prefix of the folder an export writes into inside the output folder before it moves the files in place
(``mobile_assets/.gitignore`` ignores it; a killed export leaves it behind, harmless)."""

log = logging.getLogger("faceforge.export")


@dataclass
class FormatOutcome:
    """One format's result in a run (a row of the CLI's summary table)."""

    format: ExportFormat
    artifact: Artifact | None = None
    parity: parity.ParityResult | None = None
    error: str | None = None
    bytes: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.parity is not None and self.parity.passed


@dataclass
class ExportReport:
    """What :func:`run_export` did.

    Attributes:
        model: registry name.
        version: version written into the files.
        outcomes: one per requested format, in table order.
        out: output folder.
        manifest: the manifest written (``None`` when not written).
    """

    model: str
    version: str
    outcomes: list[FormatOutcome] = field(default_factory=list)
    out: Path | None = None
    manifest: dict | None = None


def load_weights(spec: ModelSpec, weights: str, seed: int = 0) -> tuple[torch.nn.Module, dict, str]:
    """Build the model and describe its weights.

    Args:
        spec: model spec.
        weights: ``"default"``, ``"random"`` (seeded random initialisation; tests only) or a checkpoint path.
        seed: seed for ``"random"``.

    Returns:
        ``(model, provenance, version)``. ``version`` is the checkpoint's ``meta["version"]`` if any,
        else ``<faceforge version>+<first 8 hex of the weights' SHA-256>``.

    Raises:
        WeightsNotFoundError: default weights requested but absent (message says how to get them).
        FileNotFoundError: a given path does not exist.
        CheckpointError: the checkpoint does not fit the model.
    """
    import faceforge

    if weights == "random":
        torch.manual_seed(seed)
        model = create_model(spec.name)
        return model, {"weights": f"random initialisation (torch seed {seed}); NOT trained, not for shipping"}, \
            f"{faceforge.__version__}+random{seed}"
    if weights == "default":
        path = spec.default_weights_path
        if path is None or not path.is_file():
            raise WeightsNotFoundError(
                f"default weights of {spec.name} not found at {path}; train them (faceforge train) or pass "
                "--weights PATH", model=spec.name)
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
    model = create_model(spec.name, weights=path)
    digest = mf.sha256_file(path)
    meta = getattr(model, "faceforge_meta", {}) or {}
    try:
        shown = path.resolve().relative_to(Path(__file__).resolve().parent.parent).as_posix()
    except ValueError:
        shown = path.name
    provenance = {"weights": shown, "weights_sha256": digest, "config": getattr(model, "faceforge_config", {}),
                  "checkpoint_meta": meta}
    version = str(meta.get("version") or f"{faceforge.__version__}+{digest[:8]}")
    return model, provenance, version


def trained_size(net: torch.nn.Module, spec: ModelSpec) -> int | None:
    """The crop side an image-to-image checkpoint was trained at (its ``meta.config.crop_size``), or
    ``None`` (classifiers, latent models, random weights, checkpoints that do not record it)."""
    if spec.labels or spec.input.kind != "image":
        return None
    size = ((getattr(net, "faceforge_meta", None) or {}).get("config") or {}).get("crop_size")
    return int(size) if size else None


def with_input_size(spec: ModelSpec, size: int | None) -> ModelSpec:
    """``spec`` with a square input of side ``size`` (``None``: unchanged). Only for fully convolutional
    image-to-image models, which run at any multiple of 4 (two stride-2 stages).

    Raises:
        ValueError: a classifier or latent model, or ``size`` not a positive multiple of 4.
    """
    if size is None or tuple(spec.input.shape[1:]) == (size, size):
        return spec
    if spec.labels or spec.input.kind != "image":
        raise ValueError(f"{spec.name} has a fixed input {spec.input.shape}; size applies to image-to-image models")
    if size < 16 or size % 4:
        raise ValueError(f"size must be a multiple of 4 and >= 16, got {size}")
    return dataclasses.replace(spec, input=dataclasses.replace(spec.input, shape=(spec.input.shape[0], size, size)))


def embedded_metadata(spec: ModelSpec, version: str) -> dict[str, str]:
    """Key -> text pairs embedded in every exported file (ONNX, TFLite, Core ML)."""
    i = spec.input
    meta = {
        "name": spec.name, "task": spec.task, "version": version, "producer": "faceforge",
        "source": spec.source, "license": spec.license,
        "input": f"{i.colour} image {i.shape[1]}x{i.shape[2]}, x = pixel * {i.scale:.10g} + {i.offset:g} "
                 f"(range {list(i.value_range)})",
        "normalization": json.dumps({"scale": i.scale, "offset": i.offset, "value_range": list(i.value_range)}),
        "colour": i.colour,
        "face_template": i.face_template or "",
    }
    if spec.labels:
        meta["labels"] = json.dumps(list(spec.labels))
        meta["output"] = "logits in label order; probabilities = softmax(logits)"
    else:
        meta["output"] = f"image in range {list(i.value_range)}"
    return meta


def _describe_parity_set(spec: ModelSpec, limit: int | None, source: str, n: int) -> str:
    if source == "random":
        return f"{n} synthetic images (random, seeded)"
    what = calib.data_description(spec.name)
    return f"{what} test split, {'all' if limit is None else 'random subset of'} {n} images"


def run_export(model: str = "mini_xception", formats: Iterable[ExportFormat] = (), *, weights: str = "default",
               out: Path = Path("mobile_assets"), calibration_size: int = 500, calibration_source: str = "data",
               parity_limit: int | None = None, parity_source: str = "data", seed: int = 0, threads: int = 1,
               write_manifest: bool = True, command: str = "", progress: bool = False,
               bounds: dict[str, ParityBounds] | None = None, size: int | None = None) -> ExportReport:
    """Export ``model`` in ``formats`` into ``out``, check parity, write the manifest; all or nothing.

    Args:
        model: registry name.
        formats: rows of :data:`export.formats.FORMATS`.
        weights: ``"default"``, ``"random"`` (tests) or a checkpoint path.
        out: output folder (created).
        calibration_size: representative images for int8.
        calibration_source: ``"data"`` or ``"random"`` (tests only).
        parity_limit: ``None`` = the whole test split, else that many images.
        parity_source: ``"data"`` or ``"random"``.
        seed: seed of the calibration/parity subsets (and of ``weights="random"``).
        threads: CPU threads for the runtimes.
        write_manifest: also copy detector/licenses and write ``manifest.json`` + schema.
        command: the command line, recorded in the manifest.
        progress: show a tqdm bar.
        bounds: per-format parity bounds replacing the table's (recorded in the manifest with a note).
        size: input side in pixels for image-to-image models (fully convolutional; e.g. 128 or 256).
            ``None``: the crop size the checkpoint was trained at (``meta.config.crop_size``), else the
            spec's. The exported graph has this fixed input shape.

    Returns:
        The :class:`ExportReport`.

    Raises:
        ExportError: a backend failed (nothing in ``out`` is replaced); ``ParityError`` when a file
            misses its bounds; ``WeightsNotFoundError`` etc. from :func:`load_weights`.
        ValueError: ``size`` given for a classifier or latent model, or not a positive multiple of 4.
    """
    formats = list(formats)
    if not formats:
        raise ExportError("no formats to export")
    spec = get_spec(model)
    out = Path(out)
    net, provenance, version = load_weights(spec, weights, seed)
    spec = with_input_size(spec, size if size is not None else trained_size(net, spec))
    if weights != "random":  # faceforge-trained weights: the files' license names the data terms
        spec = dataclasses.replace(spec, license=mf.weights_license(spec.name, spec.license))
    report = ExportReport(model, version, out=out)

    template = None
    if write_manifest:  # fail before the slow steps if the manifest cannot be completed
        template = mf.face_template(spec.input.face_template, spec.input.shape[-1]) \
            if spec.input.face_template else None
        if template is None:
            raise ExportError(f"{spec.name} names no face template; the manifest requires one")
        # the app steps of every family import the library's task modules: do it now, not after the slow
        # steps (a module that fails to import then would waste the whole run)
        for family, side in (("cyclegan_", 128), ("pix2pix_", 128)):
            mf.app_steps(family, side, provenance)

    job = ExportJob(net, spec, version, embedded_metadata(spec, version))
    if any(f.needs_calibration for f in formats):
        job.calibration = calib.representative_dataset(spec, calibration_size, seed, calibration_source)
        job.calibration_description = (
            f"{len(job.calibration)} RANDOM synthetic images (seed {seed}; tests only)"
            if calibration_source == "random" else
            f"{calib.data_description(spec.name)} train split, seeded random subset "
            f"(seed {seed}), preprocessed as the model input")
        provenance = {**provenance, "calibration": job.calibration_description}
    int8_job = job  # full-integer files of models that re-parameterize for int8 (same function, see equalized())
    if job.calibration is not None and callable(getattr(net, "equalized", None)):
        int8_job = dataclasses.replace(job, model=net.equalized(job.calibration))
    x, labels = calib.parity_dataset(spec, parity_limit, seed, parity_source)
    parity_desc = _describe_parity_set(spec, parity_limit, parity_source, len(x))
    log.info("parity set: %s", parity_desc)
    reference = parity.torch_outputs(net, x)
    classifier = bool(spec.labels)

    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=EXPORT_TMP_PREFIX, dir=out))
    try:
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(formats, desc=f"export {model}", unit="format")
        for fmt in bar if bar is not None else formats:
            if bar is not None:
                bar.set_postfix_str(fmt.name)
            outcome = FormatOutcome(fmt)
            report.outcomes.append(outcome)
            try:
                equalized = fmt.needs_calibration and int8_job is not job
                outcome.artifact = fmt.backend(int8_job if equalized else job, tmp / fmt.relpath(model))
                if equalized:
                    outcome.artifact.notes.append(getattr(  # the re-parameterization's own note, if it has one
                        int8_job.model, "int8_note",
                        "exported from the model's int8 re-parameterization (BatchNorm folded, ReLU channels "
                        "rescaled to equal ranges on the calibration inputs; same float function)"))
                outcome.bytes = outcome.artifact.path.stat().st_size
                override = (bounds or {}).get(fmt.name)
                if override is not None and override != fmt.bounds:
                    changed = {k: (getattr(fmt.bounds, k), v) for k, v in asdict(override).items()
                               if getattr(fmt.bounds, k) != v}
                    outcome.artifact.notes.append(
                        "parity bounds overridden on the command line: " + ", ".join(
                            f"{k} {new} instead of {old}" for k, (old, new) in changed.items()))
                    log.warning("%s: parity bounds overridden: %s", fmt.name, changed)
                outcome.parity = parity.measure(fmt, outcome.artifact.path, outcome.artifact.input,
                                                outcome.artifact.output, net, x, labels, reference=reference,
                                                classifier=classifier, value_range=spec.input.value_range,
                                                threads=threads, output_values=outcome.artifact.output_values,
                                                bounds=override)
                if not outcome.parity.passed:
                    outcome.error = "parity: " + "; ".join(outcome.parity.failures)
            except ExportError as exc:
                outcome.error = str(exc)
                log.error("%s", exc)
            except Exception as exc:  # parity run crashed: a failed format, reported with the others
                outcome.error = f"parity run failed: {type(exc).__name__}: {exc}"
                log.exception("%s: parity run failed", fmt.name)
        failed = [o for o in report.outcomes if not o.ok]
        if failed:
            bad_parity = [o.parity for o in failed if o.parity is not None and not o.parity.passed]
            detail = "; ".join(f"{o.format.name}: {o.error}" for o in failed)
            err_cls = ParityError if len(bad_parity) == len(failed) else ExportError
            error = err_cls(f"export of {model} failed, nothing in {out} was changed: {detail}",
                            formats=[o.format.name for o in failed],
                            figures=[p.to_dict() for p in bad_parity] or None)
            error.report = report  # for the CLI's summary table
            raise error

        if command:  # each entry keeps the command that made it (the manifest's generator.command is the last one)
            provenance = {**provenance, "export_command": command}
        if write_manifest:
            detectors = mf.copy_detectors(tmp)
            mf.copy_licenses(tmp)
            entries = [mf.model_entry(spec, o.format, o.artifact, o.parity, version=version, provenance=provenance,
                                      root=tmp, parity_dataset=parity_desc, template=template)
                       for o in report.outcomes]
            manifest = mf.build_manifest(entries, detectors, existing=mf.load_manifest(out / mf.MANIFEST_NAME),
                                         existing_root=out, command=command, policy=mf.detector_policy())
            if any((m.get("app_steps") or {}).get("landmark_model") for m in manifest["models"]):
                mf.copy_face_mesh(tmp)  # what the frontalizer's app steps run before the generator
            mf.validate_manifest(manifest)
            mf.write_json_atomic(tmp / mf.SCHEMA_NAME, SCHEMA)
            report.manifest = manifest
        # Everything is in tmp and checked: move into place, manifest last.
        moved = sorted((p for p in tmp.rglob("*") if p.is_file()), key=lambda p: p.name == mf.MANIFEST_NAME)
        for src in moved:
            dest = out / src.relative_to(tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
        for o in report.outcomes:
            o.artifact.path = out / o.artifact.path.relative_to(tmp)
        if write_manifest:
            mf.write_json_atomic(out / mf.MANIFEST_NAME, report.manifest)
            problems = mf.verify_files(report.manifest, out)
            if problems:
                raise ExportError(f"manifest written but files do not match it: {'; '.join(problems)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report
