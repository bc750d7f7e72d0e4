"""Drawing detections on images (CLI, demo, benchmarks)."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from faceforge.imaging import check_rgb

# One colour per keypoint (RGB), in KEYPOINT_NAMES order: right eye red, left eye blue, nose green,
# mouth yellow, right ear magenta, left ear cyan. Subject's right/left: on a frontal face the red
# (right) eye is on the viewer's left.
KEYPOINT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 40, 40), (40, 90, 255), (40, 220, 40), (255, 220, 0), (255, 0, 255), (0, 230, 230),
)
BOX_COLOUR = (0, 255, 0)


def annotate(rgb: np.ndarray, faces: Sequence, labels: Sequence[str] | None = None,
             box_colour: tuple[int, int, int] = BOX_COLOUR, show_score: bool = True) -> np.ndarray:
    """Draw face boxes, keypoints and a caption (label and/or score) on a copy of an image.

    Line widths and text size scale with the image (and with each face) so the drawing stays
    readable on a 256 px portrait and on a 4000 px group photo.

    Args:
        rgb: uint8 ``(H, W, 3)`` RGB image (not modified).
        faces: objects with ``box`` ``(4,)`` ``xmin, ymin, xmax, ymax``, ``keypoints`` ``(K, 2)``
            and ``score`` (e.g. :class:`faceforge.faces.detect.Face`), in pixels of ``rgb``.
        labels: optional caption per face (same length as ``faces``), e.g. an emotion label.
        box_colour: RGB colour of the boxes.
        show_score: append the detection score to the caption.

    Returns:
        A new uint8 ``(H, W, 3)`` RGB array.

    Raises:
        ValueError: ``rgb`` is not uint8 ``(H, W, 3)`` or ``labels`` has the wrong length.
    """
    check_rgb(rgb)
    faces = list(faces)
    if labels is not None and len(labels) != len(faces):
        raise ValueError(f"{len(labels)} labels for {len(faces)} faces")
    out = np.ascontiguousarray(rgb).copy()
    side = max(out.shape[:2])
    base = max(1, int(round(side / 500)))
    for i, face in enumerate(faces):
        box = np.asarray(face.box, np.float64)
        fw = max(box[2] - box[0], 1.0)
        thick = max(1, min(base, int(round(fw / 40))))
        p1 = (int(round(box[0])), int(round(box[1])))
        p2 = (int(round(box[2])), int(round(box[3])))
        cv2.rectangle(out, p1, p2, box_colour, thick, cv2.LINE_AA)
        radius = max(1, int(round(fw / 30)))
        for j, (x, y) in enumerate(np.asarray(face.keypoints, np.float64)):
            colour = KEYPOINT_COLOURS[j % len(KEYPOINT_COLOURS)]
            cv2.circle(out, (int(round(x)), int(round(y))), radius, colour, -1, cv2.LINE_AA)
        parts = []
        if labels is not None:
            parts.append(str(labels[i]))
        if show_score:
            parts.append(f"{float(face.score):.2f}")
        if parts:
            text = " ".join(parts)
            scale = max(0.3, min(side / 1500, fw / 120))
            (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            x0, y0 = p1[0], max(th + baseline, p1[1])
            cv2.rectangle(out, (x0, y0 - th - baseline), (x0 + tw, y0), box_colour, -1)
            cv2.putText(out, text, (x0, y0 - baseline), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out
