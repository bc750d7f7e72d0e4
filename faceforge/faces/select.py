"""Which detected faces a request processes: ``"all"``, ``"largest"`` or indices.

Every face pipeline (emotion, translate, frontalize, restore, swap) and the server's ``faces`` form
field use these three functions, so a selection means the same everywhere: indices are 0-based into
the detector's faces, highest detector score first.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from faceforge.errors import FaceSelectionError, NoFaceError

__all__ = ["parse_face_selection", "select_faces", "detect_and_select"]


def parse_face_selection(text: str | None) -> str | tuple[int, ...]:
    """Parse a face selection: ``"all"`` (default for ``None``/empty), ``"largest"``, or comma-separated
    0-based indices into the detector's faces (highest score first), e.g. ``"0,2"``.

    Returns:
        ``"all"``, ``"largest"`` or a sorted tuple of distinct indices.

    Raises:
        ValueError: anything else (negative or non-integer indices, empty items).
    """
    if text is None or not str(text).strip():
        return "all"
    value = str(text).strip().lower()
    if value in ("all", "largest"):
        return value
    try:
        indices = [int(part) for part in value.split(",")]
    except ValueError:
        raise ValueError(f"faces must be 'all', 'largest' or comma-separated indices such as '0,2', got {text!r}") from None
    if any(i < 0 for i in indices):
        raise ValueError(f"face indices must be >= 0, got {text!r}")
    return tuple(sorted(set(indices)))


def select_faces(faces: Sequence[Any], selection: str | Sequence[int] = "all") -> list[int]:
    """Indices of ``faces`` to process.

    Args:
        faces: detected faces (objects with ``box`` ``(4,)``), in the detector's order.
        selection: ``"all"``, ``"largest"`` (largest box area; the first on ties), or indices (a
            sequence of ints, or a string parsed by :func:`parse_face_selection`).

    Returns:
        Sorted list of indices into ``faces``.

    Raises:
        ValueError: a malformed selection string.
        FaceSelectionError: an index outside ``[0, len(faces))``; the problem's ``faces`` member holds
            the number of faces found.
    """
    if isinstance(selection, str):
        selection = parse_face_selection(selection)
    if selection == "all":
        return list(range(len(faces)))
    if selection == "largest":
        if not faces:
            return []
        areas = [float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])) for f in faces]
        return [int(np.argmax(areas))]
    indices = sorted({int(i) for i in selection})
    bad = [i for i in indices if not 0 <= i < len(faces)]
    if bad:
        raise FaceSelectionError(f"face indices {bad} are out of range: the image has {len(faces)} face(s), "
                                 f"indices 0-{len(faces) - 1} (highest detector score first)",
                                 faces=len(faces), requested=indices)
    return indices


def detect_and_select(detector: Any, rgb: np.ndarray, selection: str | Sequence[int] = "all",
                      max_faces: int | None = None, detected: Sequence[Any] | None = None) -> tuple[list[Any], list[int]]:
    """Detect faces in ``rgb`` (unless ``detected`` is given) and pick the ones to process.

    Args:
        detector: a :class:`~faceforge.faces.detect.FaceDetector` (anything with ``detect(rgb)``).
        rgb: uint8 ``(H, W, 3)`` photo.
        selection: see :func:`select_faces`.
        max_faces: keep at most this many of the chosen indices (detector order: highest score first).
        detected: faces already detected on ``rgb`` (skips the detector).

    Returns:
        ``(all faces found, chosen indices into them)``.

    Raises:
        NoFaceError: no face found.
        FaceSelectionError: a selected index is not among the faces found.
        ValueError: ``max_faces < 1`` or a bad selection.
    """
    found = list(detector.detect(rgb)) if detected is None else list(detected)
    if not found:
        raise NoFaceError(f"no face found in the {rgb.shape[1]}x{rgb.shape[0]} image")
    chosen = select_faces(found, selection)
    if max_faces is not None:
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        chosen = chosen[:max_faces]
    return found, chosen
