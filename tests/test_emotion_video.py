"""``faceforge emotion --video``: an annotated video from the on-device files, labels smoothed across frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from faceforge.cli import main
from faceforge.cli.emotion_video import EmaSmoother

ASSETS = Path(__file__).resolve().parents[1] / "mobile_assets"


def test_ema_smoother_follows_faces_and_damps_a_one_frame_flip():
    s = EmaSmoother(alpha=0.4)
    happy, sad = np.array([0.1, 0.9]), np.array([0.8, 0.2])
    box = np.array([[10.0, 10, 60, 60]])
    first = s.update(box, happy[None])[0]
    assert np.allclose(first.probs, happy)
    flipped = s.update(box + 2, sad[None])[0]  # same face moved 2 px, one noisy frame
    assert flipped.track_id == first.track_id
    assert np.allclose(flipped.probs, 0.4 * sad + 0.6 * happy) and np.argmax(flipped.probs) == 1
    other = s.update(np.array([[200.0, 200, 250, 250]]), sad[None])[0]  # far away: a new face
    assert other.track_id != first.track_id and np.allclose(other.probs, sad)
    assert np.allclose(EmaSmoother(alpha=1.0).update(box, sad[None])[0].probs, sad)
    with pytest.raises(ValueError):
        EmaSmoother(alpha=0)


@pytest.mark.skipif(not (ASSETS / "manifest.json").is_file(), reason="mobile_assets/manifest.json not generated")
def test_video_is_annotated_with_smoothed_labels_and_fps(tmp_path, astronaut_rgb):
    import cv2

    src = tmp_path / "astronaut.mp4"
    small = cv2.resize(cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR), (256, 256), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (256, 256))
    for i in range(8):  # the photo drifting right by 2 px a frame
        writer.write(np.roll(small, 2 * i, axis=1))
    writer.release()
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(main, ["emotion", "--video", str(src), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["frames"] == 8 and report["fps"] > 0 and report["fps_in"] == 10.0
    tracks = {f["faces"][0]["track"] for f in report["per_frame"]}
    assert all(len(f["faces"]) == 1 for f in report["per_frame"]) and len(tracks) == 1  # one face, followed
    assert {f["faces"][0]["smoothed_label"] for f in report["per_frame"]} == {"happy"}
    back = cv2.VideoCapture(str(out))
    n = 0
    ok, frame = back.read()
    first = frame
    while ok:
        n += 1
        ok, frame = back.read()
    back.release()
    assert n == 8 and first.shape == (256, 256, 3)
    assert np.abs(first.astype(int) - small.astype(int)).max() > 100  # the drawing is there


def test_unreadable_video_is_a_one_line_error(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    result = CliRunner().invoke(main, ["emotion", "--video", str(bad), "-o", str(tmp_path / "o.mp4")])
    assert result.exit_code == 1 and "cannot read a video frame" in result.output
    assert CliRunner().invoke(main, ["emotion", "-o", str(tmp_path / "o.mp4")]).exit_code == 2
