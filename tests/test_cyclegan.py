"""CycleGAN: network shapes and complexity, BatchNorm folding, history pool, schedule, one training
step and resume on tiny synthetic domains, distillation, the unpaired dataset and the UTKFace split."""

from __future__ import annotations

import copy
import csv
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from faceforge.checkpoints import load_checkpoint
from faceforge.faces.align import TEMPLATES
from faceforge.faces.detect import Face
from faceforge.imaging import load_image, save_image
from faceforge import translate
from faceforge.models import create_model, get_spec, list_models
from faceforge.models.cyclegan import (MobileResnetGenerator, NLayerDiscriminator, ResnetGenerator, complexity,
                                       fold_batchnorm)
from training.cyclegan import CycleGANConfig, ImagePool, gan_loss, lr_factor, train
from training.unpaired import (UnpairedImageFolder, build_age_split, parse_utkface_name, scan_utkface,
                               utkface_dir)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------------------------------
# networks


def test_resnet_generator_shape_range_and_layout():
    g = ResnetGenerator(ngf=8, n_blocks=2).eval()
    x = torch.rand(2, 3, 64, 48) * 2 - 1
    y = g(x)
    assert y.shape == (2, 3, 64, 48) and torch.isfinite(y).all() and y.abs().max() < 1
    kinds = {type(m) for m in g.modules()}
    assert {nn.ReflectionPad2d, nn.InstanceNorm2d, nn.ConvTranspose2d, nn.Tanh} <= kinds
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in g.modules()) == 2


@pytest.mark.parametrize("size,n_layers", [(256, 3), (64, 3), (96, 2)])
def test_patchgan_output_size_follows_formula(size, n_layers):
    d = NLayerDiscriminator(ndf=2, n_layers=n_layers).eval()
    out = d(torch.zeros(1, 3, size, size))
    expected = size // 2 ** n_layers - 2
    assert out.shape == (1, 1, expected, expected)
    if size == 256 and n_layers == 3:
        assert expected == 30


def test_patchgan_receptive_field_is_70():
    d = NLayerDiscriminator(ndf=2, n_layers=3, norm="none")  # no norm: no coupling across the image
    x = torch.randn(1, 3, 160, 160, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad.abs().sum((0, 1)).sum(1)).flatten()
    cols = torch.nonzero(x.grad.abs().sum((0, 1)).sum(0)).flatten()
    assert int(rows.max() - rows.min() + 1) == 70 and int(cols.max() - cols.min() + 1) == 70


def test_mobile_generator_is_int8_friendly_and_shapes():
    g = MobileResnetGenerator(ngf=8, n_blocks=2).eval()
    y = g(torch.rand(1, 3, 32, 64) * 2 - 1)
    assert y.shape == (1, 3, 32, 64) and y.abs().max() < 1
    kinds = {type(m) for m in g.modules()}
    assert nn.ConvTranspose2d not in kinds and nn.InstanceNorm2d not in kinds
    assert nn.Upsample in kinds and nn.BatchNorm2d in kinds
    assert any(isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1 for m in g.modules())  # depthwise


@pytest.mark.parametrize("padding,shape", [(1, (2, 3, 5, 7)), (3, (1, 4, 8, 6)), (2, (1, 1, 3, 3))])
def test_reflection_pad_concat_form_is_bit_identical(padding, shape):
    from faceforge.models.cyclegan import ReflectionPad2d

    x = torch.randn(shape)
    ref = nn.ReflectionPad2d(padding)(x)
    pad = ReflectionPad2d(padding, mode="concat")
    assert isinstance(pad, nn.ReflectionPad2d)
    assert torch.equal(pad(x), ref)
    assert torch.equal(ReflectionPad2d(padding, mode="pad")(x), ref)
    assert ReflectionPad2d(padding).resolved_mode() == "pad"  # eager: the single op
    with pytest.raises(ValueError, match="mode"):
        ReflectionPad2d(1, mode="mirror")


def test_reflection_pad_auto_mode_follows_the_exporter():
    from faceforge.models.cyclegan import ReflectionPad2d, set_pad_mode

    pad = ReflectionPad2d(1)
    ops = {str(n.target) for n in torch.export.export(pad, (torch.zeros(1, 2, 6, 6),)).graph.nodes}
    assert any("cat" in o for o in ops) and not any("pad" in o for o in ops)  # litert-torch's path
    ops = {str(n.target) for n in torch.export.export(set_pad_mode(pad, "pad"), (torch.zeros(1, 2, 6, 6),)).graph.nodes}
    assert any("pad" in o for o in ops) and not any("cat" in o for o in ops)


def test_mobile_generator_pad_modes_same_output_and_state_dict():
    from faceforge.models.cyclegan import ReflectionPad2d, set_pad_mode

    g = MobileResnetGenerator(ngf=4, n_blocks=2).eval()
    assert sum(isinstance(m, ReflectionPad2d) for m in g.modules()) == 2 + 2 * 2 + 2
    x = torch.rand(2, 3, 16, 20) * 2 - 1
    with torch.no_grad():
        a = g(x)
        b = set_pad_mode(g, "concat")(x)
    assert torch.equal(a, b)
    # the old layout (torch's ReflectionPad2d) has the same parameters: old checkpoints load unchanged
    keys = [k for k in g.state_dict()]
    assert keys and all("pad" not in k for k in keys)
    with pytest.raises(ValueError):
        set_pad_mode(g, "nope")


def test_mobile_generator_macs_within_phone_budget():
    c = complexity(MobileResnetGenerator().eval(), (1, 3, 256, 256))
    assert 1e9 < c["macs"] <= 3e9
    assert c["macs_output_pixel"] == c["macs"]  # no transposed convolutions to count two ways
    assert c["params"] == sum(p.numel() for p in MobileResnetGenerator().parameters())


def test_complexity_counts_conv_and_transposed_conv_conventions():
    conv = nn.Conv2d(4, 6, 3, padding=1)
    assert complexity(conv, (2, 4, 10, 10))["macs"] == 2 * 10 * 10 * 9 * 4 * 6
    up = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)
    c = complexity(up, (1, 4, 10, 10))
    assert c["macs"] == 10 * 10 * 9 * 4 * 6              # torch's counter: per input pixel
    assert c["macs_output_pixel"] == 20 * 20 * 9 * 4 * 6  # per output pixel: 4x for stride 2


def test_resnet9_costs_more_than_15x_the_mobile_generator():
    # at 64x64 to stay fast: MACs scale with the pixel count for both
    big = complexity(ResnetGenerator().eval(), (1, 3, 64, 64))["macs"]
    small = complexity(MobileResnetGenerator().eval(), (1, 3, 64, 64))["macs"]
    assert big / small > 15


def test_fold_batchnorm_keeps_outputs():
    g = MobileResnetGenerator(ngf=4, n_blocks=2)
    g.train()
    for _ in range(3):  # give the running statistics non-trivial values
        g(torch.randn(4, 3, 32, 32))
    g.eval()
    x = torch.randn(2, 3, 32, 32)
    before = g(x)
    with pytest.raises(ValueError):
        fold_batchnorm(MobileResnetGenerator(ngf=4, n_blocks=1).train())
    fold_batchnorm(g)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in g.modules())
    torch.testing.assert_close(g(x), before, atol=1e-5, rtol=1e-4)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        ResnetGenerator(norm="layer")
    with pytest.raises(ValueError):
        MobileResnetGenerator(upsample="transpose")
    with pytest.raises(ValueError):
        NLayerDiscriminator(n_layers=0)


def test_registry_specs():
    assert {"cyclegan_resnet9", "cyclegan_mobile"} <= set(list_models("translate"))
    for name, cls in (("cyclegan_resnet9", ResnetGenerator), ("cyclegan_mobile", MobileResnetGenerator)):
        spec = get_spec(name)
        assert spec.input.shape == (3, 256, 256) and spec.input.colour == "rgb"
        assert spec.input.value_range == (-1.0, 1.0) and spec.input.face_template in TEMPLATES
        assert spec.labels is None
        # the server's ResNet default is the age task's file; the mobile default is what export ships
        assert spec.default_card.file == ("cyclegan_age.pt" if name == "cyclegan_resnet9" else "cyclegan_age_mobile.pt")
        assert isinstance(create_model(name, ngf=4, n_blocks=1), cls)


# --------------------------------------------------------------------------------------------------
# training pieces


def test_image_pool_fills_then_mixes_history():
    torch.manual_seed(0)
    assert torch.equal(ImagePool(0).query(torch.ones(2, 1, 1, 1)), torch.ones(2, 1, 1, 1))
    pool = ImagePool(3)
    first = torch.arange(3.0).reshape(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: returned as given
    seen, swapped = {0.0, 1.0, 2.0}, 0
    for v in range(100, 200):
        out = float(pool.query(torch.full((1, 1, 1, 1), float(v))))
        assert out == v or out in seen
        swapped += out != v
        seen.add(float(v))
        assert len(pool.images) == 3 and {float(t) for t in pool.images} <= seen
    assert 30 <= swapped <= 70  # each query swaps with probability 1/2
    restored = ImagePool(3)
    restored.load(pool.state())
    assert [float(t) for t in restored.images] == [float(t) for t in pool.images]
    with pytest.raises(ValueError):
        ImagePool(-1)


def test_lsgan_loss_and_schedule():
    assert gan_loss(torch.ones(2, 1, 3, 3), True).item() == 0.0
    assert gan_loss(torch.full((2, 1, 3, 3), 0.5), False).item() == pytest.approx(0.25)
    with pytest.raises(ValueError):
        gan_loss(torch.ones(1), True, mode="wgan")
    factors = [lr_factor(e, 100, 100) for e in range(200)]
    assert factors[:100] == [1.0] * 100
    assert all(a > b for a, b in zip(factors[100:], factors[101:])) and 0 < factors[-1] < 0.01
    assert lr_factor(200, 100, 100) == 0.0


def _make_domains(root: Path, n: int = 3, side: int = 40) -> Path:
    rng = np.random.default_rng(0)
    for folder, mean in (("trainA", 60), ("trainB", 190), ("testA", 60), ("testB", 190)):
        for i in range(n):
            img = np.clip(rng.normal(mean, 30, (side, side, 3)), 0, 255).astype(np.uint8)
            save_image(root / folder / f"{folder}_{i}.png", img)
    return root


def _tiny_config(data: Path, runs: Path, **kw) -> CycleGANConfig:
    base = dict(dataroot=str(data), generator="cyclegan_mobile", generator_kwargs={"ngf": 4, "n_blocks": 1},
                ndf=4, load_size=36, crop_size=32, batch_size=2, n_epochs=1, n_epochs_decay=1, steps_per_epoch=2,
                log_every=1, sample_every=100, n_samples=2, runs_dir=str(runs), num_workers=0, progress=False)
    base.update(kw)
    return CycleGANConfig(**base)


def _metrics(run: Path) -> list[dict]:
    with (run / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_one_training_step_changes_weights_and_writes_run(tmp_path):
    data = _make_domains(tmp_path / "data")
    cfg = _tiny_config(data, tmp_path / "runs", stop_after_steps=1)
    torch.manual_seed(cfg.seed)  # the trainer seeds, then builds G_A first: the same initial weights
    initial = create_model("cyclegan_mobile", ngf=4, n_blocks=1).state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BatchNorm with batch size 2
        run = train(cfg)
    assert run == tmp_path / "runs" / "cyclegan" / "000"
    saved = load_checkpoint(run / "G_A.pt", arch="cyclegan_mobile")
    assert saved["meta"]["step"] == 1 and saved["meta"]["direction"] == "A->B"
    changed = [k for k, v in saved["state_dict"].items() if v.is_floating_point() and not torch.equal(v, initial[k])]
    assert len(changed) > 10
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["generator"] == "cyclegan_mobile" and config["train_sizes"] == {"A": 3, "B": 3}
    rows = _metrics(run)
    assert [r["step"] for r in rows] == ["1"]
    assert {"G_A_gan", "cycle_A", "idt_A", "D_A", "D_B"} <= set(rows[0]) and np.isfinite(float(rows[0]["G"]))
    grid = load_image(run / "samples" / "step_0000001.png")
    assert grid.shape == (2 * 32, 6 * 32, 3)
    model = create_model("cyclegan_mobile", weights=run / "G_A.pt")
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_resume_continues_step_counter_and_metrics(tmp_path):
    data = _make_domains(tmp_path / "data", n=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = train(_tiny_config(data, tmp_path / "runs", stop_after_steps=1))
        first = load_checkpoint(run / "G_A.pt")["state_dict"]
        resumed = train(_tiny_config("", tmp_path / "other", resume=str(run), stop_after_steps=2))
    assert resumed == run and not (tmp_path / "other").exists()
    assert load_checkpoint(run / "last.pt")["meta"]["step"] == 3
    assert [r["step"] for r in _metrics(run)] == ["1", "2", "3"]
    second = load_checkpoint(run / "G_A.pt")["state_dict"]
    assert any(not torch.equal(first[k], second[k]) for k in first if first[k].is_floating_point())
    # the decay epoch (epoch 2 of 1 + 1) runs at a lower learning rate
    assert float(_metrics(run)[-1]["lr"]) < float(_metrics(run)[0]["lr"])
    with pytest.raises(FileNotFoundError):
        train(_tiny_config(data, tmp_path / "runs", resume=str(tmp_path / "nowhere")))


def test_distillation_uses_teacher_and_no_cycle_loss(tmp_path):
    data = _make_domains(tmp_path / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        teacher = train(_tiny_config(data, tmp_path / "runs", stop_after_steps=1))
        student = train(_tiny_config(data, tmp_path / "runs", stop_after_steps=1, teacher=str(teacher),
                                     generator_kwargs={"ngf": 2, "n_blocks": 1}))
    row = _metrics(student)[0]
    assert {"distill_A", "distill_B", "G_A_gan"} <= set(row) and "cycle_A" not in row
    assert float(row["distill_A"]) > 0
    assert json.loads((student / "config.json").read_text())["mode"] == "distillation"


def test_init_from_starts_every_network_from_an_earlier_run(tmp_path):
    from faceforge.errors import CheckpointError

    data = _make_domains(tmp_path / "data")
    first = train(_tiny_config(data, tmp_path / "runs", stop_after_steps=1))
    # zero steps of training would be equal; one step at lr 1e-12 must stay (numerically) equal too
    second = train(_tiny_config(data, tmp_path / "runs", stop_after_steps=1, init_from=str(first), lr=1e-12,
                                lambda_identity=0.0))
    a, b = load_checkpoint(first / "last.pt")["state_dict"], load_checkpoint(second / "last.pt")["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a if "running" not in k and "num_batches" not in k)
    assert json.loads((second / "config.json").read_text())["config"]["init_from"] == str(first)
    with pytest.raises(CheckpointError, match="do not fit"):
        train(_tiny_config(data, tmp_path / "runs", stop_after_steps=1, init_from=str(first),
                           generator_kwargs={"ngf": 2, "n_blocks": 1}))


def test_face_identity_and_feature_terms_are_trained_and_recorded(tmp_path):
    """lambda_face_id / lambda_face_feat add dlib-network terms to G's loss, logged and noted in config.json."""
    from faceforge.errors import MissingDependencyError
    from training.face_losses import load_face_identity_loss

    try:
        load_face_identity_loss()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    data = _make_domains(tmp_path / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = train(_tiny_config(data, tmp_path / "runs", stop_after_steps=1, lambda_face_id=2.0,
                                 lambda_face_feat=0.5))
        plain = train(_tiny_config(data, tmp_path / "runs", stop_after_steps=1))
    row, plain_row = _metrics(run)[0], _metrics(plain)[0]
    assert float(row["face_id"]) > 0 and float(row["face_feat"]) > 0
    assert "face_id" not in plain_row
    # same seed, same data: G's total differs from the plain run's by the two new terms (plus the effect of
    # nothing else: the other terms are computed before the update)
    others = sum(float(row[k]) for k in row if k.startswith(("G_A_gan", "G_B_gan", "cycle_", "idt_")))
    assert float(row["G"]) == pytest.approx(others + float(row["face_id"]) + float(row["face_feat"]), abs=1e-3)
    assert float(row["cycle_A"]) == pytest.approx(float(plain_row["cycle_A"]), rel=1e-4)
    config = json.loads((run / "config.json").read_text())
    assert "dlib_resnet" in config["face_losses"] and "off" in json.loads((plain / "config.json").read_text())["face_losses"]
    with pytest.raises(ValueError, match=">= 32 px"):
        train(_tiny_config(data, tmp_path / "runs", load_size=24, crop_size=24, lambda_face_id=1.0))


def test_cli_trains_one_step_of_the_resnet_generator_and_installs_it(tmp_path, monkeypatch):
    from training.cli import train as train_group

    data = _make_domains(tmp_path / "data")
    args = ["cyclegan", "--data", str(data), "--ngf", "4", "--n-blocks", "1",
            "--load-size", "34", "--crop-size", "32", "--batch-size", "2", "--epochs", "1", "--epochs-decay", "0",
            "--stop-after", "1", "--workers", "0", "--runs-dir", str(tmp_path / "runs")]
    monkeypatch.setenv("FACEFORGE_HOME", str(tmp_path / "home"))
    weights = tmp_path / "home" / "weights"  # --install writes to the user weights folder, never the package
    result = CliRunner().invoke(train_group, args + ["--install"])
    assert result.exit_code == 0, result.output
    # --install: G_A (young -> old) becomes the age task's default, with provenance
    installed = load_checkpoint(weights / "cyclegan_age.pt", arch="cyclegan_resnet9")
    assert installed["meta"]["direction"] == "A->B" and installed["meta"]["config"]["crop_size"] == 32
    assert json.loads((weights / "cyclegan_age.json").read_text())["arch"] == "cyclegan_resnet9"
    assert translate.resolve_weights("age", "default", environ={}) == weights / "cyclegan_age.pt"
    g_b = load_checkpoint(tmp_path / "runs" / "cyclegan" / "000" / "G_B.pt", arch="cyclegan_resnet9")
    assert g_b["config"]["ngf"] == 4 and g_b["meta"]["direction"] == "B->A"
    bad = CliRunner().invoke(train_group, ["cyclegan", "--data", str(tmp_path / "missing"), "--workers", "0",
                                           "--runs-dir", str(tmp_path / "runs")])
    assert bad.exit_code != 0 and "domain folder not found" in bad.output


# --------------------------------------------------------------------------------------------------
# data


def test_unpaired_dataset_items_and_errors(tmp_path):
    data = _make_domains(tmp_path / "data", n=3, side=40)
    (data / "trainB" / "notes.txt").write_text("not an image")
    ds = UnpairedImageFolder(data, "train", load_size=36, crop_size=32)
    assert len(ds) == 3
    torch.manual_seed(0)
    item = ds[1]
    assert item["A"].shape == (3, 32, 32) and item["A"].dtype == torch.float32
    assert item["A"].min() >= -1 and item["A"].max() <= 1 and item["A_path"].endswith("trainA_1.png")
    assert "trainB" in item["B_path"]
    crops = {ds[0]["A"].sum().item() for _ in range(6)}
    assert len(crops) > 1  # random crop / flip
    plain = UnpairedImageFolder(data, "test", load_size=32, crop_size=32, augment=False)
    torch.testing.assert_close(plain[0]["A"], plain[0]["A"])
    with pytest.raises(FileNotFoundError):
        UnpairedImageFolder(tmp_path / "nothing")
    (tmp_path / "empty" / "trainA").mkdir(parents=True)
    (tmp_path / "empty" / "trainB").mkdir()
    with pytest.raises(ValueError):
        UnpairedImageFolder(tmp_path / "empty")
    with pytest.raises(ValueError):
        UnpairedImageFolder(data, load_size=16, crop_size=32)


UTK_NAMES = {
    "20_0_0_20170116174525125.jpg.chip.jpg": "A", "25_1_2_20170116174525126.jpg.chip.jpg": "A",
    "29_0_3_20170116174525127.jpg.chip.jpg": "A", "18_1_1_20170116174525128.jpg.chip.jpg": "A",
    "60_0_0_20170116174525129.jpg.chip.jpg": "B", "85_1_4_20170116174525130.jpg.chip.jpg": "B",
    "5_0_0_20170116174525131.jpg.chip.jpg": None, "40_1_1_20170116174525132.jpg.chip.jpg": None,
    "17_0_0_20170116174525133.jpg.chip.jpg": None,
}
UTK_MALFORMED = ["39_1_20170116174525125.jpg.chip.jpg", "24_0_1_20170116220224657 .jpg.chip.jpg",
                 "55_0_0_20170116232725357jpg.chip.jpg", "28_1_2_201701161846515488.jpg.chip.jpg"]


def _make_utkface(folder: Path) -> Path:
    folder.mkdir(parents=True)
    img = np.full((40, 40, 3), 128, np.uint8)
    for name in [*UTK_NAMES, *UTK_MALFORMED]:
        save_image(folder / name, img)
    return folder


def test_parse_utkface_names():
    rec = parse_utkface_name("/x/61_1_3_20170109142408075.jpg.chip.jpg")
    assert (rec.age, rec.gender, rec.race, rec.datetime) == (61, 1, 3, "20170109142408075")
    assert all(parse_utkface_name(n) is None for n in UTK_MALFORMED)
    assert parse_utkface_name("20_2_0_20170116174525125.jpg.chip.jpg") is None  # gender must be 0/1


@pytest.mark.parametrize("mode", ["link", "copy"])
def test_age_split_skips_and_counts_malformed(tmp_path, mode):
    src = _make_utkface(tmp_path / "utk")
    report = build_age_split(src, tmp_path / "split", mode=mode, test_fraction=0.25, progress=False)
    assert report["malformed"] == len(UTK_MALFORMED) and sorted(report["malformed_names"]) == sorted(UTK_MALFORMED)
    assert report["outside_ranges"] == 3
    assert report["counts"] == {"trainA": 3, "testA": 1, "trainB": 1, "testB": 1}
    got = {p.name: p.parent.name[-1] for p in (tmp_path / "split").glob("*/*.jpg")}
    assert got == {n: d for n, d in UTK_NAMES.items() if d}
    assert json.loads((tmp_path / "split" / "split.json").read_text())["counts"] == report["counts"]
    assert len(UnpairedImageFolder(tmp_path / "split", load_size=40, crop_size=32)) == 3
    with pytest.raises(FileExistsError):
        build_age_split(src, tmp_path / "split", mode=mode, progress=False)


class _FakeDetector:
    """Finds a face (keypoints of the utkface template scaled to the image) except in 85-year-olds."""

    def detect(self, rgb):
        if rgb[0, 0, 0] == 1:
            return []
        kps = np.zeros((6, 2), np.float32)
        kps[:4] = TEMPLATES["utkface"].points(rgb.shape[1])
        return [Face(np.array([0, 0, rgb.shape[1], rgb.shape[0]], np.float32), kps, 0.9)]


def test_age_split_aligns_with_the_face_pipeline(tmp_path):
    src = _make_utkface(tmp_path / "utk")
    save_image(src / "85_1_4_20170116174525130.jpg.chip.jpg", np.ones((40, 40, 3), np.uint8), quality=100)
    report = build_age_split(src, tmp_path / "split", mode="align", size=48, test_fraction=0.0,
                             detector=_FakeDetector(), progress=False)
    assert report["no_face"] == 1 and report["no_face_names"] == ["85_1_4_20170116174525130.jpg.chip.jpg"]
    assert report["counts"] == {"trainA": 4, "trainB": 1, "testA": 0, "testB": 0}
    out = load_image(tmp_path / "split" / "trainA" / "20_0_0_20170116174525125.jpg.chip.jpg")
    assert out.shape == (48, 48, 3) and abs(int(out.mean()) - 128) <= 2
    with pytest.raises(ValueError):
        build_age_split(src, tmp_path / "x", young=(18, 65), progress=False)


@pytest.fixture(scope="module")
def utkface_folder(data_dir) -> Path:
    folder = utkface_dir(data_dir)
    if not folder.is_dir():
        pytest.skip(f"UTKFace not found at {folder}")
    return folder


@pytest.mark.data
def test_real_utkface_names_parse(utkface_folder):
    records, malformed = scan_utkface(utkface_folder)
    n_files = sum(1 for name in os.listdir(utkface_folder) if name.lower().endswith(".jpg"))
    assert len(records) + len(malformed) == n_files and 0 < len(malformed) < 0.01 * n_files
    assert all(0 <= r.age <= 120 for r in records)


@pytest.mark.data
def test_real_utkface_alignment_lands_on_the_template(utkface_folder, tmp_path):
    from faceforge.faces.detect import FaceDetector

    detector = FaceDetector("short", num_threads=1)
    report = build_age_split(utkface_folder, tmp_path / "split", mode="align", limit=2, test_fraction=0.0,
                             detector=detector, progress=False)
    assert report["counts"]["trainA"] + report["no_face"] >= 2 and report["counts"]["trainA"] >= 1
    tpl = TEMPLATES["utkface"].points(256)
    for path in sorted((tmp_path / "split").glob("train?/*.jpg")):
        crop = load_image(path)
        assert crop.shape == (256, 256, 3)
        faces = detector.detect(crop)
        assert faces, path.name
        assert np.abs(faces[0].keypoints[:4] - tpl).max() < 0.06 * 256, path.name


@pytest.mark.slow
@pytest.mark.export
def test_litert_graph_of_the_mobile_generator_has_no_mirror_pad(tmp_path):
    """XNNPACK has no MIRROR_PAD kernel: with the slice + concat padding the whole LiteRT graph but the
    nearest-neighbour resizes runs as XNNPACK partitions; the old graph is split at every pad."""
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_litert")
    from benchmarks.generator_latency import export_at_size, tflite_graph
    from export.formats import FORMATS
    from faceforge.models.cyclegan import set_pad_mode

    torch.manual_seed(0)
    g = MobileResnetGenerator(ngf=4, n_blocks=1).eval()
    new = export_at_size(g, "cyclegan_mobile", 32, [FORMATS["tflite_fp32"]], tmp_path / "new")["tflite_fp32"]
    old = export_at_size(set_pad_mode(copy.deepcopy(g), "pad"), "cyclegan_mobile", 32, [FORMATS["tflite_fp32"]],
                         tmp_path / "old")["tflite_fp32"]
    after, before = tflite_graph(new, 1), tflite_graph(old, 1)
    assert after["mirror_pads"] == 0 and before["mirror_pads"] == 2 + 2 * 1 + 2
    assert after["delegate_partitions"] <= 3 < before["delegate_partitions"]
    from faceforge.runtime import LiteRTModel

    x = (np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3))).astype(np.float32)
    assert np.abs(LiteRTModel(new)(x) - LiteRTModel(old)(x)).max() < 1e-5
