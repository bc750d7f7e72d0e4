"""faceforge.emotion: preprocessing numbers, weights loading errors, the detect-align-classify pipeline.

The pipeline tests use a checkpoint of random weights made here, so they never depend on trained
weights; the one test that checks what the trained model says skips when those are absent.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceforge.checkpoints import save_checkpoint
from faceforge.emotion import EmotionRecognizer, EmotionResult, preprocess_faces
from faceforge.errors import CheckpointError, NoFaceError, WeightsNotFoundError
from faceforge.models import get_spec
from faceforge.models.mini_xception import FER2013_LABELS
from server.testing import make_random_emotion_checkpoint

SPEC = get_spec("mini_xception")


def make_random_checkpoint(path):
    return make_random_emotion_checkpoint(path, version="test-random")


# --------------------------------------------------------------------------- preprocess_faces
def test_preprocess_rgb_is_bt601_luma_scaled_to_minus1_1():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(3, 48, 48, 3), dtype=np.uint8)
    out = preprocess_faces(crops)
    assert out.shape == (3, 1, 48, 48) and out.dtype == np.float32
    luma = crops[..., 0] * 0.299 + crops[..., 1] * 0.587 + crops[..., 2] * 0.114  # ITU-R BT.601
    expected = luma / 127.5 - 1.0
    # OpenCV rounds fixed-point luma to uint8: within one grey level (1/127.5 in [-1, 1] units)
    assert np.abs(out[:, 0] - expected).max() <= 1 / 127.5


def test_preprocess_gray_endpoints_and_sequence_input():
    gray = np.stack([np.zeros((48, 48), np.uint8), np.full((48, 48), 255, np.uint8)])
    out = preprocess_faces(list(gray))
    assert out.shape == (2, 1, 48, 48)
    assert np.all(out[0] == -1.0) and np.all(out[1] == 1.0)
    assert preprocess_faces([]).shape == (0, 1, 48, 48)


@pytest.mark.parametrize("bad", [
    np.zeros((1, 64, 64), np.uint8),            # wrong size: never resized silently
    np.zeros((1, 48, 48), np.float32),          # not uint8
    np.zeros((48, 48), np.uint8),               # missing batch dimension
    np.zeros((1, 48, 48, 4), np.uint8),         # RGBA
])
def test_preprocess_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        preprocess_faces(bad)


# --------------------------------------------------------------------------- loading errors
def test_missing_default_weights_is_a_clear_error(without_card):
    without_card("mini_xception.fer2013")  # a checkout without the shipped file
    with pytest.raises(WeightsNotFoundError, match="faceforge train emotion") as info:
        EmotionRecognizer("default", detector=object())
    assert isinstance(info.value, CheckpointError) and info.value.status == 503


def test_missing_weights_path(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="not found"):
        EmotionRecognizer(tmp_path / "nope.pt", detector=object())


def test_checkpoint_of_another_architecture_is_rejected(tmp_path):
    path = save_checkpoint(tmp_path / "other.pt", torch.nn.Linear(2, 2), "other_arch", {})
    with pytest.raises(CheckpointError, match="other_arch"):
        EmotionRecognizer(path, detector=object())


# --------------------------------------------------------------------------- classification
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "mini_xception_random.pt")


@pytest.fixture(scope="module")
def recognizer(checkpoint):
    """One recognizer (and one BlazeFace detector) for the module."""
    return EmotionRecognizer(checkpoint)


def test_version_and_describe_come_from_the_checkpoint(recognizer, checkpoint):
    assert recognizer.version == "test-random"
    info = recognizer.describe()
    assert info["weights"] == str(checkpoint) and info["labels"] == list(FER2013_LABELS)
    assert info["input"]["shape"] == (1, 48, 48)


def test_classify_crops_probabilities_and_batch_independence(recognizer):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, size=(5, 48, 48), dtype=np.uint8)
    probs = recognizer.classify_crops(gray)
    assert probs.shape == (5, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(probs >= 0)
    # batching must not change a face's result (eval-mode BatchNorm, no cross-sample ops)
    single = np.concatenate([recognizer.classify_crops(gray[i:i + 1]) for i in range(5)])
    np.testing.assert_allclose(probs, single, atol=1e-5)
    # and different faces give different outputs (the input reaches the network)
    assert np.abs(probs[0] - probs[1]).max() > 1e-4
    assert recognizer.classify_crops(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)


def test_predict_astronaut_one_face(recognizer, astronaut_rgb):
    rgb = astronaut_rgb
    result = recognizer.predict(rgb)
    assert isinstance(result, EmotionResult)
    assert result.image_size == (512, 512)
    assert len(result.faces) == 1
    face = result.faces[0]
    assert list(face.probabilities) == list(FER2013_LABELS)
    assert abs(sum(face.probabilities.values()) - 1.0) < 1e-5
    assert face.label == max(face.probabilities, key=face.probabilities.get)
    assert face.box.shape == (4,) and face.keypoints.shape == (6, 2)
    # the astronaut's face lies in the upper middle of the picture
    xmin, ymin, xmax, ymax = face.box
    assert 100 < xmin < xmax < 320 and 0 < ymin < ymax < 260
    assert 0 < face.score <= 1
    assert set(result.timings_ms) == {"detect", "align", "classify"}
    assert all(v >= 0 for v in result.timings_ms.values())
    # predict = detect + align + classify_crops: the same probabilities through classify_crops
    from faceforge.faces.align import align_face
    crop = align_face(rgb, recognizer.detect(rgb)[0], 48, template="fer2013").image
    np.testing.assert_allclose(recognizer.classify_crops(crop[None])[0],
                               np.array(list(face.probabilities.values()), np.float32), atol=1e-6)


def test_predict_max_faces_keeps_the_best(recognizer, astronaut_rgb):
    rgb = astronaut_rgb
    pair = np.concatenate([rgb, rgb[:, ::-1]], axis=1)  # two faces side by side
    both = recognizer.predict(np.ascontiguousarray(pair))
    assert len(both.faces) == 2
    scores = [f.score for f in both.faces]
    assert scores == sorted(scores, reverse=True)
    one = recognizer.predict(np.ascontiguousarray(pair), max_faces=1)
    assert len(one.faces) == 1 and one.faces[0].score == pytest.approx(scores[0])


def test_no_face_raises(recognizer):
    with pytest.raises(NoFaceError):
        recognizer.predict(np.full((200, 200, 3), 128, np.uint8))


def test_predict_rejects_bad_arrays(recognizer):
    with pytest.raises(ValueError):
        recognizer.predict(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError):
        recognizer.predict(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError):
        recognizer.predict(np.zeros((64, 64, 3), np.uint8), max_faces=0)


def test_trained_weights_see_a_smile(recognizer, astronaut_rgb):
    """With faceforge's trained weights, the smiling astronaut is classified as happy."""
    path = SPEC.default_weights_path
    if path is None or not path.is_file():
        pytest.skip(f"trained weights absent ({path}); run `faceforge train emotion`")
    trained = EmotionRecognizer("default", detector=recognizer.detector)
    face = trained.predict(astronaut_rgb).faces[0]
    assert face.label == "happy", face.probabilities


def test_flip_tta_averages_a_face_and_its_mirror():
    """With test-time flip a face and its mirror image get the same probabilities; without, they differ."""
    from faceforge.emotion import EmotionRecognizer

    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    mirrored = np.ascontiguousarray(crops[:, :, ::-1])
    torch.manual_seed(0)
    tta = EmotionRecognizer(weights=None, detector=object(), flip_tta=True)
    plain = EmotionRecognizer(weights=None, detector=object())
    plain.model.load_state_dict(tta.model.state_dict())
    tta.model.eval(), plain.model.eval()
    np.testing.assert_allclose(tta.classify_crops(crops), tta.classify_crops(mirrored), atol=1e-6)
    assert np.abs(plain.classify_crops(crops) - plain.classify_crops(mirrored)).max() > 1e-4
    both = 0.5 * (plain.classify_crops(crops) + plain.classify_crops(mirrored))
    np.testing.assert_allclose(tta.classify_crops(crops), both, atol=1e-6)


def test_class_probabilities_flip_tta_is_the_mean_over_the_mirror_and_checks_shapes():
    """The shared flip-TTA rule: probabilities (not logits) of a face and its mirror image averaged."""
    from faceforge.emotion import class_probabilities

    faces = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) / 24
    weights = torch.from_numpy(np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32))

    def logits_of(batch):
        return torch.from_numpy(batch).reshape(len(batch), -1) @ weights

    plain = class_probabilities(logits_of, faces)
    mirrored = class_probabilities(logits_of, np.ascontiguousarray(faces[:, :, ::-1]))
    tta = class_probabilities(logits_of, faces, flip_tta=True)
    assert tta.shape == (2, 5) and tta.dtype == torch.float32
    torch.testing.assert_close(tta, 0.5 * (plain + mirrored))
    torch.testing.assert_close(tta.sum(1), torch.ones(2))
    assert not torch.allclose(plain, mirrored)
    with pytest.raises(ValueError, match="batch"):
        class_probabilities(logits_of, faces[0])
    with pytest.raises(ValueError, match="logits"):
        class_probabilities(lambda b: torch.zeros(len(b)), faces)


# --------------------------------------------------------------------------- int8 re-parameterization
def test_linear_head_reparameterization_is_the_same_function_centred():
    from faceforge.models import create_model
    from faceforge.models.mini_xception import LinearHeadMiniXception

    torch.manual_seed(0)
    net = create_model("mini_xception").eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics and classifier bias
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
        net.classifier.bias.uniform_(-1, 1)
    x = torch.rand(8, 1, 48, 48) * 2 - 1
    head = net.equalized(np.zeros((2, 1, 48, 48), np.float32))
    assert isinstance(head, LinearHeadMiniXception) and not head.training
    assert head.fc.in_features == 128 * 3 * 3 and head.int8_note
    with torch.no_grad():
        ref, out = net(x), head(x)
    centred = ref - ref.mean(1, keepdim=True)
    assert torch.allclose(out, centred, atol=1e-5), float((out - centred).abs().max())
    assert torch.equal(out.argmax(1), ref.argmax(1))
    assert float(head.fc.weight.mean(0).abs().max()) < 1e-6 and abs(float(head.fc.bias.mean())) < 1e-6
    assert head.stem[0].weight is not net.stem[0].weight  # a copy: the trained model is left alone
    with pytest.raises(ValueError, match="too small"):
        LinearHeadMiniXception(net, (12, 12))


@pytest.mark.slow  # 51 simulated quantizations of mini-Xception: ~10-45 s on 2 shared cores
def test_layer_agreement_ranks_single_tensors_of_a_classifier():
    from export.diagnose import layer_agreement
    from faceforge.models import create_model

    torch.manual_seed(0)
    net = create_model("mini_xception").eval()
    rng = np.random.default_rng(0)
    calib = rng.uniform(-1, 1, (4, 1, 48, 48)).astype(np.float32)
    x = rng.uniform(-1, 1, (8, 1, 48, 48)).astype(np.float32)
    report = layer_agreement(net, calib, x, batch_size=8)
    assert report.images == 8 and 0.0 <= report.all_int8 <= 1.0
    assert "stem.0" in report.weights and "classifier" in report.weights and "pool" in report.activations
    assert "stem.0" not in report.activations  # fused into the ReLU stem.2, which is quantized instead
    assert "stem.2" in report.activations
    worst = report.worst(3)
    assert len(worst) == 3 and [w[2] for w in worst] == sorted(w[2] for w in worst)
    with pytest.raises(ValueError, match="needs calibration"):
        layer_agreement(net, calib[:0], x)
