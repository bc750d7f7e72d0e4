"""The shared face pipeline: detect -> select -> align -> model -> paste back, timed per step."""

from __future__ import annotations

import numpy as np
import pytest

from faceforge.errors import FaceSelectionError, NoFaceError, NotAnImageError
from faceforge.imaging import encode_image
from faceforge.pipelines import FacePipeline


class Invert(FacePipeline):
    """A toy task: the model inverts the aligned crop; the result is pasted back."""

    face_template = "utkface"
    model_step = "invert"
    pastes = True

    def __init__(self, detector) -> None:
        self.crop_size = 64
        self._detector = detector
        self.calls: list[int] = []

    def run_model(self, inputs, strength: float = 1.0, **_):
        self.calls.append(len(inputs))
        return [(255 - x).astype(np.uint8) if strength else x for x in inputs]


def test_run_detects_aligns_runs_once_and_pastes_back(two_faces, detector):
    task = Invert(detector)
    run = task.run(two_faces, "all", strength=1.0)
    assert len(run.found) == 2 and run.chosen == [0, 1] and task.calls == [2]  # one batched model call
    assert list(run.timings_ms) == ["detect", "align", "invert", "paste"]
    assert all(v >= 0 for v in run.timings_ms.values())
    for job in run.jobs:
        assert job.input.shape == (64, 64, 3) and np.array_equal(job.output, 255 - job.input)
    assert run.image.shape == two_faces.shape and run.image is not two_faces
    x0, y0, x1, y1 = (int(v) for v in run.found[0].box)
    face_change = np.abs(run.image[y0:y1, x0:x1].astype(int) - two_faces[y0:y1, x0:x1]).mean()
    assert face_change > 40                                    # the face region was replaced
    assert np.array_equal(run.image[-20:, :], two_faces[-20:, :])  # far from any face: untouched


def test_selection_options_pass_through(two_faces, detector):
    task = Invert(detector)
    largest = task.run(two_faces, "largest", strength=0)
    assert len(largest.jobs) == 1 and largest.job(largest.chosen[0]) is largest.jobs[0]
    assert np.array_equal(largest.jobs[0].output, largest.jobs[0].input)  # strength=0 reached run_model
    capped = task.run(two_faces, "all", max_faces=1)
    assert capped.chosen == [0]
    with pytest.raises(FaceSelectionError):
        task.run(two_faces, [5])


def test_bad_inputs_are_clear_errors(detector):
    task = Invert(detector)
    with pytest.raises(ValueError, match="uint8"):
        task.run(np.zeros((10, 10), np.float32))
    with pytest.raises(NoFaceError):
        task.run(np.full((200, 300, 3), 128, np.uint8))
    with pytest.raises(NotAnImageError):
        task.run_bytes(b"not an image")


def test_run_bytes_times_the_decode(astronaut_rgb, detector):
    run = Invert(detector).run_bytes(encode_image(astronaut_rgb, "png"))
    assert list(run.timings_ms)[:2] == ["decode", "detect"] and len(run.jobs) == 1


def test_every_face_task_is_a_pipeline():
    from faceforge.age import AgeEstimator
    from faceforge.emotion import EmotionRecognizer
    from faceforge.frontalize import Frontalizer
    from faceforge.translate import FaceTranslator

    for cls, step in ((EmotionRecognizer, "classify"), (AgeEstimator, "estimate"), (FaceTranslator, "translate"),
                      (Frontalizer, "generate")):
        assert issubclass(cls, FacePipeline) and cls.model_step == step
        assert cls.run_model is not FacePipeline.run_model
