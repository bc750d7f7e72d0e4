"""The emotion trainer's distillation, weight EMA and resume (tiny synthetic FER2013-layout data)."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import training.emotion as emotion
from faceforge.checkpoints import load_checkpoint
from faceforge.models.mini_xception import FER2013_LABELS
from training.emotion import EmotionConfig, WeightEMA, distillation_loss


def test_distillation_loss_reduces_to_its_two_terms():
    student, teacher = torch.randn(16, 7), torch.randn(16, 7)
    labels = torch.randint(0, 7, (16,))
    hard_only = EmotionConfig(kd_alpha=0.0, label_smoothing=0.0)
    torch.testing.assert_close(distillation_loss(student, teacher, labels, hard_only), F.cross_entropy(student, labels))
    soft_only = EmotionConfig(kd_alpha=1.0, kd_temperature=2.0)
    assert distillation_loss(teacher, teacher, labels, soft_only).abs() < 1e-6  # KL of a distribution with itself
    assert distillation_loss(student, teacher, labels, soft_only) > 0.01


def test_weight_ema_follows_the_weights_and_copies_buffers():
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = WeightEMA(net, decay=0.9)
    before = ema.module[0].weight.clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].running_mean.fill_(5.0)
    ema.update(net)
    torch.testing.assert_close(ema.module[0].weight, before + 0.1)  # 0.9 * old + 0.1 * (old + 1)
    assert torch.all(ema.module[1].running_mean == 5.0)
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(net, decay=1.0)


@pytest.fixture
def tiny_fer(tmp_path):
    """fer2013/{train,test}/<label>/*.png, 48x48 grayscale: each class a different brightness pattern."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("test", 6)):
        for c, name in enumerate(FER2013_LABELS):
            folder = tmp_path / "fer2013" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = np.clip(rng.normal(30 * c + 20, 10, (48, 48)), 0, 255).astype(np.uint8)
                cv2.imwrite(str(folder / f"{i}.png"), img)
    return tmp_path


def test_distilled_ema_run_resumes_after_an_interruption(tiny_fer, tmp_path, monkeypatch):
    """A run stopped after epoch 1 continues from last.pt (same config, EMA and optimizer state) and
    finishes with a test report that includes the flip-TTA figure."""
    teacher = tmp_path / "teacher.pt"
    from faceforge.checkpoints import save_checkpoint
    from faceforge.models import create_model, get_spec

    save_checkpoint(teacher, create_model("mini_xception"), "mini_xception", get_spec("mini_xception").kwargs, {})
    cfg = EmotionConfig(epochs=2, batch_size=16, lr=1e-3, teacher=str(teacher), ema_decay=0.9, threads=1,
                        runs_dir=str(tmp_path / "runs"), data_root=str(tiny_fer))
    real_predict = emotion.predict_logits
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # validation of epoch 2
            raise KeyboardInterrupt
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(emotion, "predict_logits", interrupted)
    with pytest.raises(KeyboardInterrupt):
        emotion.train(cfg)
    run = tmp_path / "runs" / "emotion" / "000"
    state = load_checkpoint(run / "last.pt", arch=emotion.STATE_ARCH)  # the project's checkpoint format
    assert state["meta"]["epoch"] == 1 and any(k.startswith("ema.") for k in state["state_dict"])
    assert not (run / "test_report.json").exists()

    monkeypatch.setattr(emotion, "predict_logits", real_predict)
    assert emotion.train(EmotionConfig(threads=1), resume=run) == run
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    report = json.loads((run / "test_report.json").read_text())
    assert 0.0 <= report["flip_tta_accuracy"] <= 1.0 and report["n"] == 6 * 7
    meta = load_checkpoint(run / "best.pt", arch="mini_xception")["meta"]
    assert "distilled from" in meta["recipe"] and "weight EMA 0.9" in meta["recipe"]
    assert "test_acc_flip_tta" in meta["metrics"]


def test_time_limit_stops_between_epochs_and_resume_finishes(tiny_fer, tmp_path):
    """``time_limit_min`` (``--time-limit``, a runtime field) ends the run after the epoch that passes it,
    before the test evaluation; a resume with a new limit finishes it."""
    cfg = EmotionConfig(epochs=2, batch_size=16, lr=1e-3, threads=1, time_limit_min=1e-9,
                        runs_dir=str(tmp_path / "runs"), data_root=str(tiny_fer))
    run = emotion.train(cfg)
    assert [r["epoch"] for r in csv.DictReader((run / "metrics.csv").open())] == ["1"]
    assert not (run / "test_report.json").exists()
    assert emotion.train(EmotionConfig(threads=1), resume=run) == run  # no limit this time
    assert [r["epoch"] for r in csv.DictReader((run / "metrics.csv").open())] == ["1", "2"]
    assert json.loads((run / "test_report.json").read_text())["n"] == 6 * 7


def test_swa_epochs_average_the_weights_and_recompute_batchnorm(tiny_fer, tmp_path, monkeypatch):
    """``swa_epochs``: each SWA epoch's end is averaged (n_averaged counts them), the average's BatchNorm
    statistics are those of the unaugmented train images, and the recipe says so."""
    seen = []
    real_update_bn = emotion.update_bn_statistics

    def spy(swa, images_u8, batch_size=512):
        real_update_bn(swa, images_u8, batch_size)
        seen.append((int(swa.n_averaged), swa.module.stem[1].running_mean.clone(), images_u8))

    monkeypatch.setattr(emotion, "update_bn_statistics", spy)
    cfg = EmotionConfig(epochs=3, swa_epochs=2, swa_lr=1e-3, batch_size=16, lr=1e-3, threads=1,
                        runs_dir=str(tmp_path / "runs"), data_root=str(tiny_fer))
    run = emotion.train(cfg)
    assert [n for n, _, _ in seen] == [1, 2]
    _, running_mean, images = seen[-1]
    swa_net = load_checkpoint(run / "last.pt", arch=emotion.STATE_ARCH)["state_dict"]
    stem = {k[len("swa.module.stem."):]: v for k, v in swa_net.items() if k.startswith("swa.module.stem.")}
    with torch.no_grad():  # the first BatchNorm's mean = mean of the first convolution's output on the images
        conv_out = F.conv2d(emotion.to_input(images), stem["0.weight"])
    torch.testing.assert_close(running_mean, conv_out.mean((0, 2, 3)), rtol=1e-4, atol=1e-4)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["lr"] for r in rows][1:] == ["1.00e-03", "1.00e-03"]
    assert "SWA over the last 2 epochs" in load_checkpoint(run / "best.pt", arch="mini_xception")["meta"]["recipe"]


def test_qat_epochs_train_toward_the_int8_simulation_and_keep_the_last_epoch(tiny_fer, tmp_path):
    cfg = EmotionConfig(epochs=2, qat_epochs=1, qat_lr=1e-4, batch_size=16, lr=1e-3, threads=1,
                        runs_dir=str(tmp_path / "runs"), data_root=str(tiny_fer))
    run = emotion.train(cfg)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert rows[0]["val_int8_agree"] == "" and 0.0 <= float(rows[1]["val_int8_agree"]) <= 1.0
    assert rows[1]["lr"] == "1.00e-04"
    ckpt = load_checkpoint(run / "best.pt", arch="mini_xception")
    assert ckpt["meta"]["best_epoch"] == 2 and "quantization-aware" in ckpt["meta"]["recipe"]
    assert 0.0 <= json.loads((run / "test_report.json").read_text())["int8_sim_agreement"] <= 1.0
    with pytest.raises(ValueError, match="cannot be combined"):
        emotion.train(EmotionConfig(epochs=3, qat_epochs=1, swa_epochs=1, threads=1, runs_dir=str(tmp_path / "r2"),
                                    data_root=str(tiny_fer)))
    with pytest.raises(ValueError, match="must be in"):
        emotion.train(EmotionConfig(epochs=1, swa_epochs=2, threads=1, runs_dir=str(tmp_path / "r3"),
                                    data_root=str(tiny_fer)))


def test_agreement_loss_is_cross_entropy_to_the_float_top1_with_gradient_on_the_simulation_only():
    sim = torch.randn(5, 7, requires_grad=True)
    flt = torch.randn(5, 7, requires_grad=True)
    loss = emotion.agreement_loss(sim, flt)
    torch.testing.assert_close(loss, F.cross_entropy(sim, flt.argmax(1)))
    loss.backward()
    assert sim.grad.abs().sum() > 0 and flt.grad is None


def test_val_fraction_zero_trains_on_every_image_and_keeps_the_last_epoch(tiny_fer, tmp_path):
    """``val_fraction=0`` (``--val-fraction 0``): no validation split, all train images in the steps, every epoch
    replaces the kept checkpoint, and the provenance says so instead of giving a validation figure."""
    train_idx, val_idx = emotion.stratified_split(np.repeat(np.arange(7), 24), 0.0, seed=0)
    assert len(train_idx) == 7 * 24 and len(val_idx) == 0
    cfg = EmotionConfig(epochs=2, val_fraction=0.0, batch_size=16, lr=1e-3, threads=1,
                        runs_dir=str(tmp_path / "runs"), data_root=str(tiny_fer))
    run = emotion.train(cfg)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["val_acc"] for r in rows] == ["", ""]
    meta = load_checkpoint(run / "best.pt", arch="mini_xception")["meta"]
    assert meta["best_epoch"] == 2 and meta["metrics"]["val_acc"] is None
    assert "all 168 train images, no validation split" in meta["data"]
    report = json.loads((run / "test_report.json").read_text())  # strict JSON: no NaN
    assert report["val_acc"] is None and report["n"] == 6 * 7
