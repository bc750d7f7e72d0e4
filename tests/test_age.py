"""Age estimator: network and DEX head, losses, the seeded split with holdout folders, one training
epoch on synthetic UTKFace-named files (and on a few hundred real ones when the data is present), the
AgeEstimator on crops and photos, and ``faceforge train age``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from faceforge.age import AgeEstimator, preprocess_crops
from faceforge.errors import WeightsNotFoundError
from faceforge.imaging import save_image
from faceforge.models import get_spec, list_models
from faceforge.models.agenet import AgeNet, expected_age
from training.age import AgeConfig, age_loss, age_report, split_records, train


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fake_utkface(tmp_path_factory):
    """120 UTKFace-named images (ages 1-119): brightness grows with age, so one epoch can learn a little."""
    folder = tmp_path_factory.mktemp("utkface")
    rng = np.random.default_rng(0)
    for i in range(120):
        age = 1 + i % 119
        img = np.clip(rng.normal(40 + 1.8 * age, 15, (48, 48, 3)), 0, 255).astype(np.uint8)
        save_image(folder / f"{age}_{i % 2}_{i % 5}_2017011{i:010d}.jpg.chip.jpg", img, quality=95)
    (folder / "broken_name.jpg").write_bytes(b"not parsed")  # skipped as malformed
    return folder


def test_agenet_shapes_and_registry():
    assert "age_resnet" in list_models("age")
    spec = get_spec("age_resnet")
    assert spec.input.shape == (3, 64, 64) and spec.input.face_template == "utkface"
    net = AgeNet().eval()
    for side in (64, 96):
        logits = net(torch.zeros(2, 3, side, side))
        assert logits.shape == (2, 101) and torch.isfinite(logits).all()
    ages = expected_age(torch.randn(5, 101) * 3)
    assert ages.shape == (5,) and (ages >= 0).all() and (ages <= 100).all()
    peaked = torch.full((1, 101), -50.0)
    peaked[0, 37] = 50.0
    assert abs(float(expected_age(peaked)) - 37) < 1e-3
    with pytest.raises(ValueError):
        AgeNet(widths=(8, 16), blocks=(1,))


@pytest.mark.parametrize("kind", ["dldl", "dex", "l1"])
def test_losses_are_finite_and_prefer_the_right_age(kind):
    ages = torch.tensor([20.0, 70.0])
    right = torch.full((2, 101), -20.0)
    right[0, 20] = right[1, 70] = 20.0
    wrong = torch.full((2, 101), -20.0)
    wrong[0, 60] = wrong[1, 10] = 20.0
    logits = torch.zeros(2, 101, requires_grad=True)
    loss = age_loss(logits, ages, kind)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad.abs().sum() > 0
    assert age_loss(right, ages, kind) < age_loss(wrong, ages, kind)
    with pytest.raises(ValueError):
        age_loss(logits, ages, "mse")


def test_split_is_seeded_disjoint_and_honours_holdout():
    names = [f"f{i}" for i in range(200)]
    a = split_records(names, 0.1, 0.15, seed=3)
    b = split_records(names, 0.1, 0.15, seed=3)
    assert a == b and a != split_records(names, 0.1, 0.15, seed=4)
    parts = [set(a[k]) for k in ("train", "val", "test")]
    assert sum(map(len, parts)) == 200 and set.union(*parts) == set(range(200))
    assert len(a["test"]) == 30 and len(a["val"]) == 20
    held = split_records(names, 0.1, 0.15, seed=3, holdout={"f1", "f2", "f199"})
    assert {1, 2, 199} <= set(held["test"]) and len(held["test"]) == 30
    with pytest.raises(ValueError):
        split_records(names, 0.5, 0.5, seed=0)


def test_age_report_groups():
    rep = age_report(np.array([20, 25, 70, 5]), np.array([22, 35, 60, 5]))
    assert rep["n"] == 4 and rep["mae"] == pytest.approx((2 + 10 + 10 + 0) / 4)
    assert rep["groups"]["18-29"]["n"] == 2 and rep["groups"]["18-29"]["mean_pred"] == 28.5
    assert rep["groups"]["60+"]["bias"] == -10 and rep["groups"]["30-44"] == {"n": 0}
    assert rep["cs5"] == 0.5


def test_train_one_epoch_on_synthetic_faces(tmp_path, fake_utkface):
    holdout = tmp_path / "testA"
    holdout.mkdir()
    chosen = sorted(p.name for p in fake_utkface.glob("*.chip.jpg"))[:3]
    for name in chosen:
        (holdout / name).write_bytes(b"")
    cfg = AgeConfig(epochs=1, batch_size=16, data=str(fake_utkface), runs_dir=str(tmp_path / "runs"),
                    holdout=[str(holdout)], progress=False, size=64)
    run = train(cfg)
    assert {p.name for p in run.iterdir()} >= {"config.json", "split.json", "metrics.csv", "best.pt",
                                                "test_report.json"}
    split = json.loads((run / "split.json").read_text())
    assert split["counts"] == {"train": 96, "val": 12, "test": 12}
    assert set(chosen) <= set(split["test"]) and split["holdout_in_test"] == 3
    assert not set(split["train"]) & (set(split["val"]) | set(split["test"]))
    config = json.loads((run / "config.json").read_text())
    assert config["malformed"] == 1 and config["records"] == 120
    report = json.loads((run / "test_report.json").read_text())
    assert report["n"] == 12 and np.isfinite(report["mae"])

    est = AgeEstimator(run / "best.pt")
    assert est.size == 64 and est.version.endswith("-run000")
    ages = est.predict_crops(np.zeros((3, 256, 256, 3), np.uint8))
    assert ages.shape == (3,) and ages.dtype == np.float32 and ((ages >= 0) & (ages <= 100)).all()
    dist = est.predict_distribution([np.zeros((50, 50, 3), np.uint8)])
    assert dist.shape == (1, 101) and abs(float(dist.sum()) - 1) < 1e-4
    assert est.describe()["metrics"]["test_mae"] == report["mae"]


def test_preprocess_and_estimator_errors(tmp_path, astronaut_rgb):
    batch = preprocess_crops(np.full((2, 128, 128, 3), 255, np.uint8), 64)
    assert batch.shape == (2, 3, 64, 64) and np.allclose(batch, 1.0)
    with pytest.raises(ValueError):
        preprocess_crops(np.zeros((1, 64, 32, 3), np.uint8), 64)
    with pytest.raises(WeightsNotFoundError):
        AgeEstimator(tmp_path / "absent.pt")
    est = AgeEstimator(None)  # random weights: shapes only
    faces = est.predict(astronaut_rgb)
    assert len(faces) == 1 and 0 <= faces[0].age <= 100
    assert est.version == "random-init"


def test_train_age_cli(tmp_path, fake_utkface):
    from faceforge.cli import main

    result = CliRunner().invoke(main, ["train", "age", "--epochs", "1", "--batch-size", "16", "--limit", "100",
                                       "--data", str(fake_utkface), "--runs-dir", str(tmp_path), "--size", "96"])
    assert result.exit_code == 0, result.output
    assert "test_mae" in result.output and (tmp_path / "age" / "000" / "best.pt").is_file()
    assert AgeEstimator(tmp_path / "age" / "000" / "best.pt").size == 96
    bad = CliRunner().invoke(main, ["train", "age", "--data", str(tmp_path / "none"), "--runs-dir", str(tmp_path)])
    assert bad.exit_code != 0 and "not found" in bad.output


@pytest.mark.data
@pytest.mark.slow
def test_train_age_on_real_utkface(tmp_path, data_dir):
    utk = data_dir / "utkface"
    if not utk.is_dir():
        pytest.skip(f"UTKFace not found at {utk}")
    run = train(AgeConfig(epochs=1, batch_size=64, limit=300, data=str(utk), runs_dir=str(tmp_path), progress=False))
    report = json.loads((run / "test_report.json").read_text())
    assert report["n"] == 30 and 0 < report["mae"] < 60


def test_small_widths_time_limit_resume_and_ship(tmp_path, fake_utkface):
    from faceforge.checkpoints import load_checkpoint
    from training.age import ship

    cfg = AgeConfig(epochs=2, batch_size=16, data=str(fake_utkface), runs_dir=str(tmp_path / "runs"),
                    progress=False, widths=[8, 16, 32, 64], time_limit=0)
    run = train(cfg)
    assert (run / "last.pt").is_file() and not (run / "test_report.json").exists()  # stopped after epoch 1
    with pytest.raises(FileNotFoundError):
        ship(run, tmp_path / "w")
    train(AgeConfig(resume=str(run), progress=False))
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
    est = AgeEstimator(run / "best.pt")
    assert sum(p.numel() for p in est.model.parameters()) < 100_000  # the small widths, not the registry's 1.25 M
    dest = ship(run, tmp_path / "w", note="test")
    assert dest.name == "age_resnet_utkface.pt"
    assert load_checkpoint(dest)["meta"]["storage_dtype"] == "float16"
    record = json.loads(dest.with_suffix(".json").read_text())
    assert record["card"] == "age_resnet.utkface" and record["epochs"] == 2 and record["training_minutes"] >= 0
    assert len(record["val_mae_by_epoch"]) == 2 and record["metrics"]["test_mae"] == record["test_report"]["mae"]
    assert str(tmp_path) not in dest.with_suffix(".json").read_text()  # no machine paths in a shipped file
    fp16 = AgeEstimator(dest).predict_crops(np.full((2, 64, 64, 3), 128, np.uint8))
    fp32 = est.predict_crops(np.full((2, 64, 64, 3), 128, np.uint8))
    assert np.abs(fp16 - fp32).max() < 0.5


def test_shipped_estimator_loads_and_reads_a_real_face(astronaut_rgb):
    """The shipped card age_resnet.utkface: float16 file under 1 MB with provenance, held-out figures, and a
    plausible age for the astronaut portrait (Eileen Collins, born 1956, photographed in the 1990s)."""
    from faceforge.models import cards

    card = cards.get_card("age_resnet.utkface")
    assert card.shipped and card.package_path.is_file() and card.package_path.stat().st_size < 1_000_000
    prov = card.provenance()
    assert prov["metrics"]["test_mae"] < 7 and prov["storage"]["dtype"] == "float16"
    assert {"utkface_age/testA", "utkface_age/testB"} <= set(prov["training_config"]["holdout"])
    est = AgeEstimator("default")
    assert est.size == 64 and est.describe()["metrics"]["test_mae"] == prov["metrics"]["test_mae"]
    faces = est.predict(astronaut_rgb)
    assert len(faces) == 1 and 25 <= faces[0].age <= 60, faces[0].age
