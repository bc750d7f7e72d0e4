"""bench emotion-accuracy: the results files, and --peer-from (the peer's report reused from an earlier run).

FER2013 and the model are replaced by a few synthetic faces and fixed probabilities, so the test needs
neither the data nor ``fer``/``tf_keras`` and stays fast.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import benchmarks.emotion_accuracy as ea


@pytest.fixture
def tiny_split(monkeypatch):
    labels = np.arange(14) % 7
    images = np.zeros((14, 48, 48), np.uint8)
    monkeypatch.setattr("faceforge.data.fer2013.load_fer2013", lambda split, *a, **k: (images, labels))

    def fake_probs(images_u8, weights="default", flip_tta=False):
        probs = np.eye(7, dtype=np.float32)[labels]  # always right ...
        if not flip_tta:
            probs[0] = np.eye(7, dtype=np.float32)[3]  # ... but the single pass misses one face
        return probs, {"version": "test"}

    monkeypatch.setattr(ea, "ours_probabilities", fake_probs)
    return labels


def test_peer_from_reuses_an_earlier_report_and_names_it(tmp_path, tiny_split):
    from training.emotion import classification_report

    earlier = tmp_path / "earlier.json"
    peer = classification_report(tiny_split, np.roll(tiny_split, 1))
    earlier.write_text(json.dumps({"reports": {"peer: fer mini-Xception (64x64)": peer}}))
    reports = ea.run(out_dir=tmp_path / "out", peer_from=earlier)
    names = list(reports)
    assert names[2] == "peer: fer mini-Xception (64x64), earlier run" and reports[names[2]] == peer
    assert reports[names[0]]["accuracy"] == pytest.approx(13 / 14) and reports[names[1]]["accuracy"] == 1.0
    md = (tmp_path / "out" / "emotion_accuracy.md").read_text()
    assert "earlier run" in md and "**92.86 %**" in md and (tmp_path / "out" / "emotion_accuracy.png").is_file()


def test_peer_from_refuses_a_report_of_another_split(tmp_path, tiny_split):
    from training.emotion import classification_report

    earlier = tmp_path / "earlier.json"
    other = classification_report(tiny_split[:7], tiny_split[:7])
    earlier.write_text(json.dumps({"reports": {"peer: fer mini-Xception (64x64)": other}}))
    with pytest.raises(ValueError, match="no peer report on these 14"):
        ea.run(out_dir=tmp_path / "out", peer_from=earlier)
