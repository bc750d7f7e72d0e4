"""Turn a folder of photos into a training set of aligned faces, with a report of what was left out.

A seed project collected photos of the people it wanted and cropped and centred their faces before
training StyleGAN2 on them; ``faceforge prepare`` does that job reproducibly:

1. **Decode** every image file under the folder (EXIF rotation, faceforge's size limits; unreadable
   files are reported, never fatal).
2. **Detect** faces (BlazeFace ``auto``), keep ``"all"`` or the ``"largest"`` of each photo.
3. **Too small**: the aligned ``size x size`` crop would upsample the face by more than ``max_upscale``
   (default 2x; the crop's scale is the similarity transform's, in crop px per image px), i.e. the
   training image would be mostly interpolation.
4. **Too turned**: the head's yaw from Face Mesh (:func:`faceforge.faces.rotate.estimate_yaw`) beyond
   ``max_yaw`` degrees. Face Mesh under-reads strong turns (about 0.6-0.75 of the true yaw on real
   heads turned 26-50 degrees), so the default of 25 measured degrees keeps roughly frontal faces
   (true yaw up to about 35 degrees); faces Face Mesh rejects are reported as such.
5. **Align** on the generator's template (default ``utkface``, the framing of faceforge's StyleGAN2
   training data) at ``size`` px, area-shrinking large faces first (:func:`faceforge.faces.align.align_face`).
6. **Duplicates**: a 64-bit difference hash (dHash: the signs of horizontal gradients of the 9x8 grey
   thumbnail; Krawetz 2013, "Kind of like that") of each crop; a crop within ``max_hash_distance``
   bits (default 6) of a crop already kept is a duplicate (the same photo re-saved, resized or
   re-encoded), and so is a byte-identical file.

The result is ``DEST/NNNNN.png`` (one aligned face each) and ``DEST/report.json`` (every kept face
with its source, box, yaw, scale, and every rejection with its reason), ready for
``faceforge train stylegan2 --data DEST`` or ``--finetune-from``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import cv2
import numpy as np

from faceforge.errors import FaceforgeError

__all__ = ["IMAGE_SUFFIXES", "REASONS", "PreparedFace", "Rejection", "PrepareReport", "dhash", "prepare_folder"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
"""File suffixes read as images (case-insensitive); other files are skipped silently."""

REASONS = {
    "unreadable": "not a decodable image (or over the size limits)",
    "no-face": "no face detected",
    "too-small": "the face would be upsampled by more than max_upscale",
    "too-turned": "head yaw beyond max_yaw",
    "landmarks-failed": "Face Mesh rejected the detected face (occluded, cut off or not a face)",
    "duplicate": "the same face as one already kept (byte-identical file or dHash within max_hash_distance)",
}
"""Every rejection reason, with its meaning."""


@dataclass
class PreparedFace:
    """One kept face.

    Attributes:
        file: the written crop, relative to the dataset folder.
        source: the photo it came from, relative to the input folder.
        face: 0-based index among the photo's detections (highest score first).
        box: ``[x0, y0, x1, y1]`` in the photo, px.
        yaw: Face Mesh yaw estimate, degrees (positive: nose to the image's right).
        upscale: crop px per photo px of the alignment (below 1: the face was shrunk).
        dhash: the crop's difference hash, 16 hex digits.
    """

    file: str
    source: str
    face: int
    box: list[float]
    yaw: float
    upscale: float
    dhash: str


@dataclass
class Rejection:
    """One photo or face left out, and why (``reason`` is a key of :data:`REASONS`)."""

    source: str
    reason: str
    detail: str
    face: int | None = None


@dataclass
class PrepareReport:
    """What :func:`prepare_folder` did."""

    source: str
    dest: str
    size: int
    template: str
    settings: dict[str, Any]
    kept: list[PreparedFace] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    photos: int = 0

    def counts(self) -> dict[str, int]:
        """Rejections per reason (every reason listed, zeros included)."""
        return {r: sum(x.reason == r for x in self.rejected) for r in REASONS}

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "dest": self.dest, "size": self.size, "template": self.template,
                "settings": self.settings, "photos": self.photos, "kept_count": len(self.kept),
                "rejected_counts": self.counts(), "reasons": REASONS,
                "kept": [asdict(k) for k in self.kept], "rejected": [asdict(r) for r in self.rejected]}


def dhash(rgb: np.ndarray) -> int:
    """64-bit difference hash of an image: bit ``i`` is 1 where a 9x8 grey thumbnail (area-averaged)
    grows from left to right. Near-identical images (re-encoded, resized) differ in few bits.

    Args:
        rgb: uint8 ``(H, W, 3)`` or ``(H, W)``.

    Returns:
        int in ``[0, 2**64)``.
    """
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    small = cv2.resize(np.ascontiguousarray(grey), (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).reshape(-1)
    return int("".join("1" if b else "0" for b in bits), 2)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def prepare_folder(folder: str | Path, dest: str | Path, size: int = 256, template: str = "utkface",
                   faces: str = "all", max_upscale: float = 2.0, max_yaw: float = 25.0, max_hash_distance: int = 6,
                   detector: Any = None, mesh: Any = None,
                   progress: Callable[[Iterable[Path]], Iterable[Path]] | None = None) -> PrepareReport:
    """Detect, filter, align and de-duplicate every face of a folder of photos (see the module docstring).

    Args:
        folder: photos (searched recursively).
        dest: dataset folder to create (it must not hold files yet, so a dataset is never mixed).
        size: crop side in px (the generator's resolution), >= 16.
        template: alignment template (:data:`faceforge.faces.align.TEMPLATES`).
        faces: ``"all"`` or ``"largest"`` per photo.
        max_upscale: largest allowed upsampling of the face, > 0.
        max_yaw: largest allowed ``|yaw|`` (degrees, as Face Mesh measures it), in (0, 90].
        max_hash_distance: dHash bits within which two crops are duplicates, in [0, 64].
        detector, mesh: a :class:`~faceforge.faces.detect.FaceDetector` / :class:`~faceforge.faces.landmarks.FaceMesh`
            to reuse (default: built here).
        progress: wraps the list of photos (e.g. ``tqdm``) to show progress.

    Returns:
        :class:`PrepareReport`; also written to ``dest/report.json``.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        FileExistsError: ``dest`` exists and is not empty.
        ValueError: an option out of range.
        UnknownModelError: unknown template.
    """
    from faceforge.faces.align import align_face, get_template
    from faceforge.faces.rotate import estimate_yaw
    from faceforge.faces.select import select_faces
    from faceforge.imaging import load_image, save_image

    folder, dest = Path(folder), Path(dest)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    if size < 16:
        raise ValueError(f"size must be >= 16 px, got {size}")
    if faces not in ("all", "largest"):
        raise ValueError(f"faces must be 'all' or 'largest', got {faces!r}")
    if not max_upscale > 0 or not 0 < max_yaw <= 90 or not 0 <= max_hash_distance <= 64:
        raise ValueError("need max_upscale > 0, 0 < max_yaw <= 90 and 0 <= max_hash_distance <= 64")
    get_template(template)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty: give a new folder for the dataset")
    if detector is None:
        from faceforge.faces.detect import FaceDetector

        detector = FaceDetector("auto")
    if mesh is None:
        from faceforge.faces.landmarks import FaceMesh

        mesh = FaceMesh(detector)
    dest.mkdir(parents=True, exist_ok=True)
    settings = {"faces": faces, "max_upscale": max_upscale, "max_yaw": max_yaw, "max_hash_distance": max_hash_distance}
    report = PrepareReport(source=str(folder), dest=str(dest), size=int(size), template=template, settings=settings)
    seen_bytes: set[str] = set()
    hashes: list[int] = []
    photos = _images(folder)
    report.photos = len(photos)
    for path in (progress(photos) if progress else photos):
        rel = path.relative_to(folder).as_posix()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen_bytes:
            report.rejected.append(Rejection(rel, "duplicate", "byte-identical to a file already read"))
            continue
        seen_bytes.add(digest)
        try:
            rgb = load_image(path)
        except (FaceforgeError, OSError) as exc:
            report.rejected.append(Rejection(rel, "unreadable", str(exc).splitlines()[0]))
            continue
        found = detector.detect(rgb)
        if not found:
            report.rejected.append(Rejection(rel, "no-face", f"no face in the {rgb.shape[1]}x{rgb.shape[0]} photo"))
            continue
        for i in select_faces(found, faces):
            face = found[i]
            aligned = align_face(rgb, face, size, template=template)
            if aligned.scale > max_upscale:
                width = float(face.box[2] - face.box[0])
                report.rejected.append(Rejection(rel, "too-small", f"face {width:.0f} px wide would be upsampled "
                                                 f"{aligned.scale:.1f}x (max {max_upscale:g}x) to {size} px", i))
                continue
            try:
                yaw = estimate_yaw(mesh.landmarks_3d(rgb, face))
            except FaceforgeError as exc:
                report.rejected.append(Rejection(rel, "landmarks-failed", str(exc).splitlines()[0], i))
                continue
            if abs(yaw) > max_yaw:
                report.rejected.append(Rejection(rel, "too-turned", f"yaw {yaw:+.0f} deg (max {max_yaw:g})", i))
                continue
            h = dhash(aligned.image)
            twin = next((k for k, other in enumerate(hashes) if bin(h ^ other).count("1") <= max_hash_distance), None)
            if twin is not None:
                report.rejected.append(Rejection(rel, "duplicate", f"same face as {report.kept[twin].file} "
                                                 f"({report.kept[twin].source})", i))
                continue
            name = f"{len(report.kept):05d}.png"
            save_image(dest / name, aligned.image)
            hashes.append(h)
            report.kept.append(PreparedFace(file=name, source=rel, face=i, box=[round(float(v), 1) for v in face.box],
                                            yaw=round(float(yaw), 1), upscale=round(aligned.scale, 3),
                                            dhash=f"{h:016x}"))
    (dest / "report.json").write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    return report
