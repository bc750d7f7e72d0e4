"""``faceforge emotion --video FILE -o OUT.mp4``: real-time style emotion on a video, on-device files.

Every frame goes through the phone pipeline (BlazeFace ``auto`` + the ``mini_xception`` file of
``mobile_assets/`` named by ``--format``, aligned and normalized as its manifest entry says, as
``faceforge demo``'s on-device path). Faces are followed from frame to frame by box overlap and their
probabilities smoothed by an exponential moving average, so a label does not flicker on single-frame
noise; the annotated video carries each face's smoothed label and the processing rate (frames per second).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from faceforge.errors import FaceforgeError


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``(4,)`` boxes ``xmin, ymin, xmax, ymax`` (px); 0 when disjoint."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class Track:
    """One face followed across frames: its last box and smoothed probabilities."""

    track_id: int
    box: np.ndarray
    probs: np.ndarray
    seen: int = 1


@dataclass
class EmaSmoother:
    """Exponential moving average of per-face probabilities across frames.

    A detection continues the track whose last box overlaps it most (IoU >= ``min_iou``, greedy, best
    pairs first); its smoothed probabilities become ``alpha * p + (1 - alpha) * previous``. A detection
    without a track starts one with its own ``p``; a track without a detection in a frame ends.
    ``alpha = 1`` turns smoothing off. (EMA: e.g. Brown 1956, exponential smoothing; the IoU matching is
    the greedy association of SORT, Bewley et al. 2016, without its motion model.)

    Args:
        alpha: weight of the current frame, in (0, 1].
        min_iou: overlap needed to continue a track, in [0, 1].

    Raises:
        ValueError: ``alpha`` or ``min_iou`` out of range.
    """

    alpha: float = 0.4
    min_iou: float = 0.3
    tracks: list[Track] = field(default_factory=list)
    _next_id: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if not 0 <= self.min_iou <= 1:
            raise ValueError(f"min_iou must be in [0, 1], got {self.min_iou}")

    def update(self, boxes: np.ndarray, probs: np.ndarray) -> list[Track]:
        """Feed one frame.

        Args:
            boxes: ``(N, 4)`` float boxes in px.
            probs: ``(N, K)`` probabilities of the frame's faces (rows sum to 1).

        Returns:
            The ``N`` tracks (same order as ``boxes``) with smoothed ``probs``.
        """
        boxes, probs = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(probs, np.float64)
        pairs = sorted(((box_iou(t.box, b), ti, bi) for ti, t in enumerate(self.tracks) for bi, b in enumerate(boxes)),
                       reverse=True)
        matched: dict[int, Track] = {}
        used: set[int] = set()
        for iou, ti, bi in pairs:
            if iou < self.min_iou or ti in used or bi in matched:
                continue
            t = self.tracks[ti]
            t.box, t.probs, t.seen = boxes[bi], self.alpha * probs[bi] + (1 - self.alpha) * t.probs, t.seen + 1
            matched[bi] = t
            used.add(ti)
        out = []
        for bi in range(len(boxes)):
            if bi not in matched:
                matched[bi] = Track(self._next_id, boxes[bi], probs[bi].copy())
                self._next_id += 1
            out.append(matched[bi])
        self.tracks = out
        return out


@click.command("emotion")
@click.option("--video", "video", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Video file to annotate (anything OpenCV reads: .mp4, .avi, .mov ...).")
@click.option("--camera", type=click.IntRange(0), default=None, help="Camera index instead of --video.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Annotated video to write (.mp4, MPEG-4 Part 2); default: <video>_emotion.mp4.")
@click.option("--assets", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="mobile_assets folder (default: the one of this source tree).")
@click.option("--format", "fmt", default="tflite_int8", show_default=True,
              help="mini_xception manifest entry to run (tflite_int8, tflite_fp16, tflite_fp32, onnx).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True), default=0.4, show_default=True,
              help="EMA weight of the current frame (1 = no smoothing).")
@click.option("--max-frames", type=click.IntRange(1), default=None, help="Stop after this many frames.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="LiteRT CPU threads.")
@click.option("--json", "as_json", is_flag=True, help="Print per-frame faces and labels as JSON.")
def emotion(video: Path | None, camera: int | None, output: Path | None, assets: Path | None, fmt: str,
            alpha: float, max_frames: int | None, threads: int, as_json: bool) -> None:
    """Recognise the emotion of every face in a video (or camera) on the phone's model files and
    write an annotated video: per face its smoothed label, per frame the processing rate.

    \b
    Examples:
        faceforge emotion --video talk.mp4 -o talk_emotion.mp4
        faceforge emotion --camera 0 -o live.mp4 --max-frames 300
        faceforge emotion --video clip.mp4 --alpha 1 --json      # no smoothing, JSON per frame
    """
    import cv2

    from faceforge.faces.detect import FaceDetector
    from faceforge.faces.draw import annotate
    from faceforge.ondevice import OnDeviceClassifier

    if (video is None) == (camera is None):
        raise click.UsageError("give exactly one of --video FILE or --camera INDEX")
    source = str(video) if video is not None else camera
    name = str(video) if video is not None else f"camera {camera}"
    if output is None:
        output = video.with_name(f"{video.stem}_emotion.mp4") if video is not None else Path("camera_emotion.mp4")
    assets = assets or Path(__file__).resolve().parents[2] / "mobile_assets"
    try:
        classifier = OnDeviceClassifier.from_manifest(assets, "mini_xception", fmt, num_threads=threads)
        detector = FaceDetector("auto", num_threads=threads)
    except (FaceforgeError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    capture = cv2.VideoCapture(source)
    ok, frame = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        capture.release()
        raise click.ClickException(f"cannot read a video frame from {name}")
    fps_in = capture.get(cv2.CAP_PROP_FPS)
    fps_in = fps_in if fps_in and np.isfinite(fps_in) and fps_in > 0 else 25.0
    height, width = frame.shape[:2]
    writer = cv2.VideoWriter(str(output), cv2.VideoWriter_fourcc(*"mp4v"), fps_in, (width, height))
    if not writer.isOpened():
        capture.release()
        raise click.ClickException(f"cannot write {output} (MPEG-4 encoder unavailable or folder not writable)")
    smoother, labels = EmaSmoother(alpha=alpha), classifier.labels
    frames: list[dict] = []
    t_start = time.perf_counter()
    try:
        while ok:
            t0 = time.perf_counter()
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            faces = detector.detect(rgb)
            probs = classifier(classifier.preprocess(classifier.align(rgb, faces))) if faces else np.zeros((0, len(labels)))
            tracks = smoother.update(np.array([f.box for f in faces]).reshape(-1, 4), probs)
            captions = [f"{labels[int(np.argmax(t.probs))]} {100 * float(np.max(t.probs)):.0f}%" for t in tracks]
            fps = 1.0 / max(time.perf_counter() - t0, 1e-6)
            out = annotate(rgb, faces, labels=captions, show_score=False)
            text_scale = max(0.4, width / 1200)
            cv2.putText(out, f"{fps:.1f} fps (on-device {fmt})", (8, int(8 + 24 * text_scale)),
                        cv2.FONT_HERSHEY_SIMPLEX, text_scale, (255, 255, 0), max(1, int(text_scale * 2)), cv2.LINE_AA)
            writer.write(cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
            frames.append({"frame": len(frames), "fps": round(fps, 2), "faces": [
                {"track": t.track_id, "box": [round(float(v), 2) for v in f.box],
                 "label": labels[int(np.argmax(p))], "smoothed_label": labels[int(np.argmax(t.probs))],
                 "smoothed_probability": round(float(np.max(t.probs)), 4)} for f, p, t in zip(faces, probs, tracks)]})
            if max_frames is not None and len(frames) >= max_frames:
                break
            ok, frame = capture.read()
    finally:
        capture.release()
        writer.release()
    elapsed = time.perf_counter() - t_start
    overall = len(frames) / elapsed if elapsed > 0 else 0.0
    if as_json:
        click.echo(json.dumps({"input": name, "output": str(output), "width": width, "height": height,
                               "fps_in": fps_in, "frames": len(frames), "fps": round(overall, 2), "format": fmt,
                               "alpha": alpha, "per_frame": frames}, indent=1))
        return
    with_faces = sum(1 for f in frames if f["faces"])
    click.echo(f"{name}: {len(frames)} frames ({width}x{height}), faces in {with_faces}, "
               f"{overall:.1f} frames/s on-device ({fmt}, alpha {alpha})")
    click.echo(f"annotated video: {output}")
