"""Face pipeline: detection, alignment, drawing.

* :mod:`faceforge.faces.detect` -- BlazeFace detector (:class:`~faceforge.faces.detect.FaceDetector`,
  :class:`~faceforge.faces.detect.Face`, :data:`~faceforge.faces.detect.KEYPOINT_NAMES`).
* :mod:`faceforge.faces.align` -- similarity alignment to templates (``align_face``, ``paste_back``).
* :mod:`faceforge.faces.draw` -- :func:`annotate` (boxes, keypoints, captions).

Importing this package loads no model; the detector's interpreter is built when a
``FaceDetector`` is constructed.
"""

from faceforge.faces.draw import annotate

__all__ = ["annotate"]
