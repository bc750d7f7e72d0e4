"""The virtual-model pipeline: one identity (a generated person, or a photo) on the model of every product photo.

A seed project built this for online shops: StyleGAN2 generates a person who does not exist, a face
swap puts that face onto the model in each product photo, a restoration step repairs the face region
the swap had blurred, and a first step sorts the shop's images into "has a face" / "has none" so that
product shots without a model pass through untouched. Per photo:

1. **Screen**: BlazeFace (``auto``) finds the faces; a photo without one is passed through unchanged
   (its bytes are not re-encoded) and reported as ``no-face``. :func:`screen` is that decision alone;
   ``faceforge bench swap-quality``-style figures for it come from :func:`screening_scores`.
2. **Swap** the chosen faces (all by default) with the source identity
   (:class:`faceforge.swap.FaceSwapper`, classical: Face Mesh, Delaunay warp, colour transfer,
   Laplacian blend). Faces the swapper refuses (pose gap, Face Mesh failure) are left as they were and
   reported with the reason.
3. **Restore** the swapped faces (:class:`faceforge.restore.FaceRestorer`: GPEN when weights are
   configured, else the classical restorer: non-local means + unsharp mask), pasted back with a soft
   mask.
4. **Mark** the output as AI-made (IPTC DigitalSourceType ``compositeSynthetic`` in XMP / PNG text and an
   invisible watermark, :mod:`faceforge.provenance`).

The source is either a photo (its largest face) or ``seed:N``: the shipped StyleGAN2 generator's face
for seed N, upscaled classically (Lanczos) to a size the swap accepts — faceforge's default generator is
32 px, so such a source gives a plausible but soft, generic face (a 256-1024 px FFHQ generator,
configured with ``--weights``, gives a real one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import cv2
import numpy as np

from faceforge.errors import FaceforgeError

__all__ = ["PhotoReport", "screen", "screening_scores", "source_from_seed", "VirtualModel"]

SEED_PREFIX = "seed:"
SEED_SOURCE_SIDE = 512
"""Side (px) a generated source face is upscaled to before the swap (the swap needs >= 64 px faces)."""


@dataclass
class PhotoReport:
    """What happened to one photo.

    Attributes:
        photo: its name.
        status: ``"swapped"``, ``"no-face"`` (passed through), ``"unchanged"`` (faces found, none swapped)
            or ``"error"`` (unreadable; the reason in ``detail``).
        faces: faces found.
        swapped: faces swapped (and restored).
        output: the file written, or ``None``.
        detail: reasons of refused faces, or the error.
        timings_ms: per step.
    """

    photo: str
    status: str
    faces: int = 0
    swapped: int = 0
    output: str | None = None
    detail: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"photo": self.photo, "status": self.status, "faces": self.faces, "swapped": self.swapped,
                "output": self.output, "detail": self.detail,
                "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()}}


def screen(detector: Any, rgb: np.ndarray) -> list[Any]:
    """The faces in ``rgb`` (empty: "has no face"); BlazeFace ``auto`` at its default score 0.5."""
    return list(detector.detect(rgb))


def screening_scores(labels: Sequence[bool], predictions: Sequence[bool]) -> dict[str, float | int]:
    """Precision and recall of "has a face" screening.

    Args:
        labels: true when the image really shows a face.
        predictions: true when the screen found one.

    Returns:
        ``{"tp", "fp", "fn", "tn", "precision", "recall"}`` (precision/recall ``nan`` when undefined).
    """
    y, p = np.asarray(labels, bool), np.asarray(predictions, bool)
    tp, fp = int((y & p).sum()), int((~y & p).sum())
    fn, tn = int((y & ~p).sum()), int((~y & ~p).sum())
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan")}


def source_from_seed(seed: int, weights: str | Path = "default", psi: float = 0.7) -> np.ndarray:
    """A face of a person who does not exist: StyleGAN2 ``seed``, upscaled (Lanczos) to 3/4 of
    :data:`SEED_SOURCE_SIDE` px on a flat backdrop of its edge colour, so the detector sees a portrait.

    Returns:
        uint8 ``(SEED_SOURCE_SIDE, SEED_SOURCE_SIDE, 3)`` RGB.

    Raises:
        WeightsNotFoundError: no StyleGAN2 weights.
        ValueError: a negative seed.
    """
    from faceforge import stylegan as S
    from faceforge.models import create_model

    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    G = create_model("stylegan2", weights=weights)
    face = S.generate(G, [seed], psi=psi)[0]
    side = int(SEED_SOURCE_SIDE * 0.75)
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_LANCZOS4)
    pad = (SEED_SOURCE_SIDE - side) // 2
    edge = np.concatenate([big[0], big[-1], big[:, 0], big[:, -1]]).mean(0)  # a flat backdrop of the edge colour
    return cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=[float(v) for v in edge])


class VirtualModel:
    """Run the virtual-model pipeline on photos (see the module docstring).

    Args:
        source: uint8 RGB photo of the source person, or ``"seed:N"``.
        faces: ``"all"`` or ``"largest"`` face of each photo.
        restore: ``"auto"`` (GPEN when ``FACEFORGE_GPEN_WEIGHTS`` / weights are configured, else
            classical), ``"gpen"``, ``"classical"`` or ``"none"``.
        restore_weights: GPEN weights (see :mod:`faceforge.restore`).
        allow_pose_gap: swap faces beyond the swapper's yaw-gap limit (with a warning) instead of skipping.
        stylegan_weights: generator for ``seed:N`` sources.

    Raises:
        NoFaceError: no usable face in the source (or Face Mesh rejects it).
        FaceTooSmallError: the source face is under the swapper's minimum width.
        WeightsNotFoundError: ``restore="gpen"`` without weights, or ``seed:N`` without a generator.
        ValueError: bad option.
    """

    def __init__(self, source: np.ndarray | str, faces: str = "all", restore: str = "auto",
                 restore_weights: str | Path | None = None, allow_pose_gap: bool = False,
                 stylegan_weights: str | Path = "default") -> None:
        from faceforge.faces.detect import FaceDetector
        from faceforge.faces.landmarks import FaceMesh
        from faceforge.swap import FaceSwapper

        if faces not in ("all", "largest"):
            raise ValueError(f"faces must be 'all' or 'largest', got {faces!r}")
        if restore not in ("auto", "gpen", "classical", "none"):
            raise ValueError(f"restore must be auto, gpen, classical or none, got {restore!r}")
        self.faces = faces
        self.detector = FaceDetector()
        mesh = FaceMesh(self.detector)
        self.swapper = FaceSwapper(allow_pose_gap=allow_pose_gap, detector=self.detector, mesh=mesh)
        if isinstance(source, str):
            if not source.startswith(SEED_PREFIX):
                raise ValueError(f"a text source must be seed:N, got {source!r}")
            try:
                seed = int(source[len(SEED_PREFIX):])
            except ValueError:
                raise ValueError(f"a seed source is seed:N with an integer N, got {source!r}") from None
            source = source_from_seed(seed, stylegan_weights)
            self.source_kind = f"generated (StyleGAN2 seed {seed})"
        else:
            self.source_kind = "photo"
        self.source_image = source
        self.source = self.swapper.prepare_source(source)
        self.restorer = self._restorer(restore, restore_weights)

    def _restorer(self, restore: str, weights: str | Path | None):
        from faceforge.restore import make_restorer

        return make_restorer(restore, self.detector, weights=weights)

    @property
    def restore_method(self) -> str:
        """``gpen``, ``classical`` or ``none``."""
        return "none" if self.restorer is None else self.restorer.method

    def process(self, rgb: np.ndarray, name: str = "photo") -> tuple[np.ndarray | None, PhotoReport]:
        """One photo: ``(output image or None when passed through, report)``."""
        report = PhotoReport(photo=name, status="unchanged")
        t0 = time.perf_counter()
        found = screen(self.detector, rgb)
        report.timings_ms["screen"] = (time.perf_counter() - t0) * 1e3
        report.faces = len(found)
        if not found:
            report.status = "no-face"
            return None, report
        t1 = time.perf_counter()
        try:
            result = self.swapper.swap(self.source, rgb, faces=self.faces, detected=found)
        except FaceforgeError as exc:
            report.detail.append(str(exc).splitlines()[0])
            return None, report
        report.timings_ms["swap"] = (time.perf_counter() - t1) * 1e3
        swapped = [f.index for f in result.faces if f.swapped]
        report.detail += [f"face {f.index}: {f.skipped or f.warning}" for f in result.faces if f.skipped or f.warning]
        report.swapped = len(swapped)
        if not swapped:
            return None, report
        image = result.image
        if self.restorer is not None:
            t2 = time.perf_counter()
            image = self.restorer.restore(image, faces=swapped, detected=found).image
            report.timings_ms["restore"] = (time.perf_counter() - t2) * 1e3
        report.status = "swapped"
        return image, report

    def run(self, photos: Iterable[Path], out_dir: Path,
            progress: Callable[[list[Path]], Iterable[Path]] | None = None) -> list[PhotoReport]:
        """Every photo -> ``out_dir/<name>.png`` (swapped, restored, marked) or a byte copy (no face).

        Raises:
            FileExistsError: ``out_dir`` holds files already.
        """
        import shutil

        from faceforge.imaging import load_image
        from faceforge.provenance import SWAP_SOURCE_TYPE, save_marked

        out_dir = Path(out_dir)
        if out_dir.exists() and any(out_dir.iterdir()):
            raise FileExistsError(f"{out_dir} is not empty: give a new folder")
        out_dir.mkdir(parents=True, exist_ok=True)
        photos = list(photos)
        reports = []
        for path in (progress(photos) if progress else photos):
            try:
                rgb = load_image(path)
            except (FaceforgeError, OSError) as exc:
                reports.append(PhotoReport(photo=path.name, status="error", detail=[str(exc).splitlines()[0]]))
                continue
            image, report = self.process(rgb, path.name)
            if image is None:
                dest = out_dir / path.name
                shutil.copyfile(path, dest)  # untouched: the shop's own file, bit for bit
            else:
                dest = save_marked(out_dir / f"{path.stem}.png", image, source_type=SWAP_SOURCE_TYPE,
                                   description=f"faceforge virtual model: face swapped ({self.source_kind}), "
                                               f"restored ({self.restore_method})")
            report.output = dest.name
            reports.append(report)
        return reports

    def describe(self) -> dict[str, Any]:
        return {"source": self.source_kind, "faces": self.faces, "restore": self.restore_method,
                "swap": {"method": "classical", "blend": self.swapper.blend, "max_yaw_gap": self.swapper.max_yaw_gap}}
