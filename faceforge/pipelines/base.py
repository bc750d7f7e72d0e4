"""One face pipeline: decode -> detect -> select faces -> align -> model -> paste back, timed per step.

Every face task is this pipeline with its own model step (and, where needed, its own preparation):

==================  ==============================  ===============  =====================================
task                prepare (per selected face)     model step       output
==================  ==============================  ===============  =====================================
emotion             template alignment (48 px)      ``classify``     probabilities per face
age                 template alignment (64 px)      ``estimate``     an age per face
translate           template alignment              ``translate``    the photo, faces pasted back
frontalize          Face Mesh, pose crop, rerender  ``generate``     a frontal crop per face
swap (FaceShifter)  template alignment              ``swap``         the photo, faces pasted back
restore             own template; upscaled canvas   ``restore``      the (upscaled) photo, soft-mask paste
swap (classical)    Face Mesh, size/pose checks     none (``swap``)  the photo, faces warped in place
==================  ==============================  ===============  =====================================

A subclass sets :attr:`FacePipeline.face_template`, :attr:`crop_size`, :attr:`model_step` and
:attr:`pastes`, and implements :meth:`FacePipeline.run_model`; it overrides
:meth:`FacePipeline.prepare_faces` only when a face needs more than a template alignment, and
:meth:`FacePipeline.paste_canvas` / :meth:`FacePipeline.paste` / :meth:`FacePipeline.finish` when its
paste back is its own (the restorer's upscaled canvas and soft mask, the classical swap's in-place blend).
A subclass that keeps per-photo state between the steps (the restorer's canvas, the swap's source face)
runs each photo on a shallow copy of itself (``FacePipeline.run(copy.copy(self), ...)``), so one instance
serves concurrent callers.
:meth:`FacePipeline.run` returns a :class:`PipelineRun` that the task turns into its own result type.

Timings are wall-clock milliseconds per step (``decode`` when the pipeline decoded the bytes itself,
``detect``, the preparation step(s), the model step, ``paste``), measured with ``time.perf_counter``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from faceforge.faces.select import detect_and_select
from faceforge.imaging import check_rgb  # noqa: F401 (re-exported: faceforge.pipelines.check_rgb)

if TYPE_CHECKING:  # imported lazily at run time: the detector loads LiteRT
    from faceforge.faces.align import AlignedFace
    from faceforge.faces.detect import Face, FaceDetector

__all__ = ["FaceJob", "PipelineRun", "FacePipeline", "check_rgb", "face_fields"]


def face_fields(box: Any, keypoints: Any, score: float,
                keypoint_names: Sequence[str] | None = None) -> dict[str, Any]:
    """The JSON fields of one detected face in a task's result (``to_dict`` of the emotion, restore and
    translate faces; the HTTP answers' ``faces[i]``), as plain floats, unrounded.

    Args:
        box: ``(4,)`` ``xmin, ymin, xmax, ymax`` in pixels.
        keypoints: ``(K, 2)`` ``(x, y)`` pixels.
        score: detector confidence in [0, 1].
        keypoint_names: ``K`` names: keypoints become ``{name: [x, y]}``; ``None`` (or empty): a list
            of ``[x, y]`` pairs.

    Returns:
        ``{"box": [4 floats], "keypoints": {name: [x, y]} or [[x, y], ...], "score": float}``.
    """
    points = [[float(x), float(y)] for x, y in np.asarray(keypoints)]
    return {"box": [float(v) for v in box],
            "keypoints": dict(zip(keypoint_names, points)) if keypoint_names else points,
            "score": float(score)}


@dataclass
class FaceJob:
    """One selected face on its way through a pipeline.

    Attributes:
        index: 0-based index among the detected faces (highest detector score first).
        face: the detection (box, keypoints, score).
        aligned: the template alignment (crop + matrix) when the pipeline made one, else ``None``.
        input: the model's input for this face, uint8 ``(S, S, C)`` (the classical swap: the face's
            float64 ``(468, 3)`` Face Mesh landmarks); ``None`` when the face was skipped.
        output: the model's output for this face (a crop, a probability row, an age...).
        warning: why the face was skipped or is unreliable, else ``None``.
        extra: task-specific values (e.g. the frontalizer's yaw).
    """

    index: int
    face: "Face"
    aligned: "AlignedFace | None" = None
    input: np.ndarray | None = None
    output: Any = None
    warning: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineRun:
    """What :meth:`FacePipeline.run` did.

    Attributes:
        image: the photo with the outputs pasted back (pipelines with :attr:`FacePipeline.pastes`),
            a new array even when no face was pasted; ``None`` for pipelines that do not paste.
        found: every detected face, detector order.
        chosen: indices into ``found`` of the selected faces, sorted.
        jobs: one :class:`FaceJob` per selected face, in ``chosen`` order.
        timings_ms: milliseconds per step.
    """

    image: np.ndarray | None
    found: list["Face"]
    chosen: list[int]
    jobs: list[FaceJob]
    timings_ms: dict[str, float]

    def job(self, index: int) -> FaceJob | None:
        """The job of detected face ``index``, or ``None`` if that face was not selected."""
        return next((j for j in self.jobs if j.index == index), None)


class FacePipeline:
    """Base class of the face tasks (see the module docstring).

    Class attributes a subclass sets:
        face_template: alignment template name (:data:`faceforge.faces.align.TEMPLATES`).
        model_step: timing key of the model step, e.g. ``"translate"``.
        align_step: timing key of the default preparation (``"align"``).
        pastes: whether :meth:`run` pastes the outputs back into the photo.
        feather: paste-back ramp width, fraction of the crop side, in [0, 0.5].

    Instance attributes:
        crop_size: side in px of the aligned crop the model takes.
    """

    face_template: str = "utkface"
    model_step: str = "model"
    align_step: str = "align"
    pastes: bool = False
    feather: float = 0.1
    crop_size: int
    _detector: "FaceDetector | None" = None

    @property
    def detector(self) -> "FaceDetector":
        """The face detector (a default :class:`~faceforge.faces.detect.FaceDetector`, built on first use)."""
        if self._detector is None:
            from faceforge.faces.detect import FaceDetector

            self._detector = FaceDetector()
        return self._detector

    # ------------------------------------------------------------------ the steps a task may change
    def prepare_faces(self, rgb: np.ndarray, found: Sequence["Face"], chosen: Sequence[int],
                      timings: dict[str, float]) -> list[FaceJob]:
        """Build the model input of each chosen face; the default aligns on :attr:`face_template`.

        Adds its step time(s) to ``timings`` (default key: :attr:`align_step`).
        """
        from faceforge.faces.align import align_face

        t0 = time.perf_counter()
        jobs = []
        for i in chosen:
            aligned = align_face(rgb, found[i], self.crop_side(found[i]), template=self.face_template)
            jobs.append(FaceJob(index=i, face=found[i], aligned=aligned, input=aligned.image))
        timings[self.align_step] = (time.perf_counter() - t0) * 1e3
        return jobs

    def crop_side(self, face: "Face") -> int:
        """Side in px of this face's template crop in :meth:`prepare_faces` (default :attr:`crop_size`;
        a task that works at the face's own resolution overrides it)."""
        return self.crop_size

    def run_model(self, inputs: list[np.ndarray], **options: Any) -> Sequence[Any]:
        """The model step: one output per input (same order). Subclasses implement it."""
        raise NotImplementedError

    def paste_canvas(self, rgb: np.ndarray) -> np.ndarray:
        """The picture the outputs are pasted into (pipelines with :attr:`pastes`): by default a copy of
        ``rgb``; a subclass may return another new array, e.g. the restorer's upscaled photo."""
        return rgb.copy()

    def paste(self, image: np.ndarray, job: FaceJob) -> np.ndarray:
        """Paste one output back (default: feathered inverse warp of a template alignment)."""
        from faceforge.faces.align import paste_back

        return paste_back(image, job.output, job.aligned, feather=self.feather)

    def finish(self, image: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        """Last step of the paste, after every face (default: none), e.g. the restorer turning the result
        grey again for a grey photo. ``rgb`` is the input photo."""
        return image

    # ------------------------------------------------------------------ the pipeline
    def run(self, rgb: np.ndarray, faces: str | Sequence[int] = "all", *, detected: Sequence["Face"] | None = None,
            max_faces: int | None = None, **options: Any) -> PipelineRun:
        """Detect, select, prepare, run the model on and (if :attr:`pastes`) paste back the faces of a photo.

        Args:
            rgb: uint8 ``(H, W, 3)`` RGB photo.
            faces: ``"all"``, ``"largest"`` or indices (:func:`faceforge.faces.select.select_faces`).
            detected: faces already found in ``rgb`` (skips detection), detector order.
            max_faces: process at most this many selected faces, highest detector score first.
            **options: passed to :meth:`run_model`.

        Returns:
            :class:`PipelineRun`.

        Raises:
            ValueError: bad image, selection or ``max_faces``.
            NoFaceError: no face detected.
            FaceSelectionError: a selected index is not among the detected faces.
        """
        check_rgb(rgb)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        found, chosen = detect_and_select(self.detector, rgb, faces, max_faces, detected)
        timings["detect"] = (time.perf_counter() - t0) * 1e3
        jobs = self.prepare_faces(rgb, found, chosen, timings)
        t1 = time.perf_counter()
        ready = [j for j in jobs if j.input is not None]
        outputs = self.run_model([j.input for j in ready], **options) if ready else []
        for job, out in zip(ready, outputs):
            job.output = out
        timings[self.model_step] = (time.perf_counter() - t1) * 1e3
        image = None
        if self.pastes:
            t2 = time.perf_counter()
            image = self.paste_canvas(rgb)
            for job in ready:
                image = self.paste(image, job)
            image = self.finish(image, rgb)
            timings["paste"] = (time.perf_counter() - t2) * 1e3
        return PipelineRun(image=image, found=list(found), chosen=list(chosen), jobs=jobs, timings_ms=timings)

    def run_bytes(self, data: bytes, faces: str | Sequence[int] = "all", **kwargs: Any) -> PipelineRun:
        """:meth:`run` on encoded image bytes, decoded with faceforge's limits (EXIF rotation, size).

        Raises:
            The image errors of :func:`faceforge.imaging.decode_image`, and those of :meth:`run`.
        """
        from faceforge.imaging import decode_image

        t0 = time.perf_counter()
        rgb = decode_image(data)
        decode_ms = (time.perf_counter() - t0) * 1e3
        result = self.run(rgb, faces, **kwargs)
        result.timings_ms = {"decode": decode_ms, **result.timings_ms}
        return result
