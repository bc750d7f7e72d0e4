"""StyleGAN2 trainer (training/stylegan2.py), the SWD metric (faceforge/metrics.py) and the fine-tuning
path used by toonify, on tiny synthetic images (16 px, a few thousand parameters)."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from faceforge.checkpoints import load_checkpoint
from faceforge.imaging import load_image, save_image
from faceforge.metrics import SWDReference, laplacian_pyramid, swd
from faceforge.models import create_model
from faceforge.models.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from training.stylegan2 import (STATE_ARCH, StyleGAN2Trainer, config_from_preset, load_image_set, network_configs,
                                swd_columns, train)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blobs(n: int, size: int, seed: int) -> np.ndarray:
    """Synthetic "faces": a coloured ellipse with two dark eyes on a coloured background, uint8 NHWC."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        img = np.full((size, size, 3), rng.integers(0, 255, 3), np.uint8)
        c = size // 2 + rng.integers(-size // 8, size // 8 + 1, 2)
        axes = (int(size * rng.uniform(0.2, 0.35)), int(size * rng.uniform(0.3, 0.45)))
        cv2.ellipse(img, (int(c[0]), int(c[1])), axes, 0, 0, 360, [int(v) for v in rng.integers(0, 255, 3)], -1)
        for dx in (-1, 1):
            eye = (int(c[0] + dx * axes[0] // 2), int(c[1] - axes[1] // 4))
            cv2.circle(img, eye, max(1, size // 16), (20, 20, 20), -1)
        out[i] = img
    return out


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faces")
    for i, img in enumerate(_blobs(24, 24, seed=0)):  # 24 px files: the loader resizes them to 16
        save_image(folder / f"{i:03d}.png", img)
    return folder


@pytest.fixture(scope="module")
def toon_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toons")
    for i, img in enumerate(_blobs(8, 40, seed=1)):
        rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])  # RGBA like the Twemoji set
        save_image(folder / f"t{i}.png", rgba)
    return folder


def _cfg(tmp_path, data, **kw):
    base = dict(data=str(data), runs_dir=str(tmp_path / "runs"), device="cpu", progress=False, cache_dir=None,
                log_every=1)
    return config_from_preset("tiny", **{**base, **kw})


def _tiny_trainer(**kw) -> StyleGAN2Trainer:
    cfg = config_from_preset("tiny", **kw)
    g, d = network_configs(cfg)
    torch.manual_seed(0)
    return StyleGAN2Trainer(StyleGAN2Generator(**g), StyleGAN2Discriminator(**d), cfg, torch.device("cpu"))


# --------------------------------------------------------------------------------------------------
# SWD
# --------------------------------------------------------------------------------------------------
def test_swd_zero_on_itself_and_grows_with_distortion():
    a, b = _blobs(64, 32, seed=0), _blobs(64, 32, seed=1)
    kw = dict(descriptors_per_image=32, num_projections=128)
    assert swd(a, a, **kw) == {"swd_32": 0.0, "swd_16": 0.0, "swd_avg": 0.0}
    same_kind = swd(a, b, **kw)["swd_avg"]
    blurred = [swd(a, np.stack([cv2.GaussianBlur(x, (0, 0), s) for x in b]), **kw)["swd_avg"] for s in (0.7, 1.5, 3.0)]
    rng = np.random.default_rng(0)
    noisy = [swd(a, np.clip(b + rng.normal(0, s, b.shape), 0, 255).astype(np.uint8), **kw)["swd_avg"]
             for s in (10, 40, 120)]
    assert 0 < same_kind < blurred[0] < blurred[1] < blurred[2]
    assert same_kind < noisy[0] < noisy[1] < noisy[2]


def test_swd_reference_levels_and_errors():
    imgs = _blobs(8, 64, seed=2)
    assert [lev.shape[-1] for lev in laplacian_pyramid(torch.zeros(1, 3, 64, 64))] == [64, 32, 16]
    ref = SWDReference.from_images(imgs, descriptors_per_image=8)
    assert ref.level_resolutions == [64, 32, 16] and swd_columns(64) == ["swd_64", "swd_32", "swd_16", "swd_avg"]
    out = ref.distance(torch.from_numpy(imgs).permute(0, 3, 1, 2).float(), num_projections=16)  # float NCHW input
    assert out["swd_avg"] == 0.0
    with pytest.raises(ValueError, match="need 8 images"):
        ref.distance(imgs[:4])


# --------------------------------------------------------------------------------------------------
# The step: lazy regularization, EMA
# --------------------------------------------------------------------------------------------------
def test_lazy_regularizers_fire_on_their_steps():
    tr = _tiny_trainer(r1_interval=4, pl_weight=2.0, pl_interval=3)
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    fired = [tr.train_step(real) for _ in range(9)]
    assert [i for i, o in enumerate(fired) if "R1" in o] == [0, 4, 8]
    assert [i for i, o in enumerate(fired) if "PL" in o] == [0, 3, 6]
    # Adam of a lazily regularised network runs with lr * c and betas ** c, c = k / (k + 1)
    assert tr.opt_D.param_groups[0]["lr"] == pytest.approx(0.0025 * 4 / 5)
    assert tr.opt_D.param_groups[0]["betas"][1] == pytest.approx(0.99 ** (4 / 5))
    assert tr.opt_G.param_groups[0]["lr"] == pytest.approx(0.0025 * 3 / 4)
    assert tr.r1_gamma == pytest.approx(0.0002 * 16 ** 2 / 4)  # the "auto" heuristic
    off = _tiny_trainer(r1_gamma=0.0)
    assert not any("R1" in off.train_step(real) for _ in range(2)) and "PL" not in off.train_step(real)


def test_g_lr_gives_the_generator_its_own_rate_and_only_moves_g_that_much():
    """TTUR: --g-lr sets G's Adam rate (still scaled for lazy regularization); D keeps --lr. Adam's first
    step moves each parameter by about its lr, so G's largest change is ~g_lr while D's is ~lr."""
    tr = _tiny_trainer(lr=0.002, g_lr=0.0002, pl_weight=0.0, r1_gamma=0.0)
    assert tr.opt_G.param_groups[0]["lr"] == pytest.approx(0.0002)
    assert tr.opt_D.param_groups[0]["lr"] == pytest.approx(0.002)
    g0 = {k: v.clone() for k, v in tr.G.synthesis.named_parameters()}
    d0 = {k: v.clone() for k, v in tr.D.named_parameters()}
    tr.train_step(torch.rand(4, 3, 16, 16) * 2 - 1)
    g_move = max(float((p - g0[k]).abs().max()) for k, p in tr.G.synthesis.named_parameters())
    d_move = max(float((p - d0[k]).abs().max()) for k, p in tr.D.named_parameters())
    assert 0 < g_move <= 0.0002 * 1.01 and 0.002 * 0.5 < d_move <= 0.002 * 1.01
    assert _tiny_trainer(lr=0.002).opt_G.param_groups[0]["lr"] == pytest.approx(0.002)  # default: --lr


def test_freeze_below_trains_only_the_new_levels():
    """--freeze-below 8 on a 16 px G: mapping and the 4 / 8 px blocks keep their values, the 16 px block moves."""
    tr = _tiny_trainer(freeze_below=8, r1_gamma=0.0)
    before = {k: v.clone() for k, v in tr.G.named_parameters()}
    for _ in range(2):
        tr.train_step(torch.rand(4, 3, 16, 16) * 2 - 1)
    moved = {k for k, p in tr.G.named_parameters() if not torch.equal(p, before[k])}
    assert moved and all(k.startswith("synthesis.b16.") for k in moved)
    assert set(tr.frozen) == {k for k in before if not k.startswith("synthesis.b16.")}
    with pytest.raises(ValueError, match="freezes every synthesis block"):
        _tiny_trainer(freeze_below=16)


def test_ema_moves_toward_g_by_the_documented_beta():
    tr = _tiny_trainer(batch_size=4, ema_kimg=0.01, ema_rampup=0)   # half-life 10 images
    beta = tr.ema_beta()
    assert beta == pytest.approx(0.5 ** (4 / 10))
    assert beta ** (10 / 4) == pytest.approx(0.5)                      # half-life of ema_kimg * 1000 images
    before = [p.clone() for p in tr.G_ema.parameters()]
    with torch.no_grad():
        for p in tr.G.parameters():
            p.add_(torch.randn_like(p))
    assert tr.update_ema() == beta
    for p_old, p_ema, p in zip(before, tr.G_ema.parameters(), tr.G.parameters()):
        torch.testing.assert_close(p_ema, beta * p_old + (1 - beta) * p)
    ramp = _tiny_trainer(batch_size=4, ema_kimg=10.0, ema_rampup=0.05)
    assert ramp.ema_beta(nimg=0) == 0.0                                # step 0: G_ema := G
    assert ramp.ema_beta(nimg=400) == pytest.approx(0.5 ** (4 / 20))  # capped at 5% of 400 images


# --------------------------------------------------------------------------------------------------
# The loop: run folder, resume, fine-tuning, CLI
# --------------------------------------------------------------------------------------------------
def test_train_writes_run_folder_and_changes_weights(tmp_path, faces_dir):
    run = train(_cfg(tmp_path, faces_dir, stop_after_steps=3, swd_every=2, swd_images=12, sample_every=2))
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["config"]["resolution"] == 16 and cfg["images"] == 24 and cfg["total_steps"] == 25
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["step"] for r in rows] == ["0", "1", "2", "3"]
    assert rows[0]["swd_avg"] and rows[2]["swd_avg"] and not rows[1]["swd_avg"]   # start, every 2, at the end
    assert rows[1]["R1"] and not rows[2]["R1"] and float(rows[1]["G_loss"]) > 0
    assert float(rows[3]["sec_per_step"]) > 0 and float(rows[3]["seconds"]) >= float(rows[3]["sec_per_step"])
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000000.png", "step_0000002.png",
                                                                 "step_0000003.png"]
    assert load_image(run / "samples" / "step_0000003.png").shape == (4 * 16, 8 * 16, 3)  # 32 samples, 8 a row
    state = load_checkpoint(run / "last.pt", arch=STATE_ARCH)
    g_kwargs = state["config"]["G"]
    torch.manual_seed(0)                                          # the trainer's initialisation
    init = StyleGAN2Generator(**g_kwargs).state_dict()
    changed = [k for k, v in init.items() if not torch.equal(v, state["state_dict"][f"G.{k}"])]
    assert any(k.startswith("synthesis.") for k in changed) and any(k.startswith("mapping.fc") for k in changed)
    G = create_model("stylegan2", weights=run / "G_ema.pt")          # the shipped artefact loads by registry
    assert G.resolution == 16 and G.faceforge_meta["step"] == 3 and "swd_avg" in G.faceforge_meta["metrics"]


def test_resume_continues_step_count_and_rng(tmp_path, faces_dir):
    kw = dict(r1_interval=2, pl_weight=1.0, pl_interval=3, swd_every=0)
    straight = train(_cfg(tmp_path / "a", faces_dir, stop_after_steps=5, **kw))
    split = train(_cfg(tmp_path / "b", faces_dir, stop_after_steps=2, **kw))
    from training.stylegan2 import StyleGAN2TrainConfig
    train(StyleGAN2TrainConfig(resume=str(split), stop_after_steps=3, device="cpu", progress=False, cache_dir=None))
    a = load_checkpoint(straight / "last.pt")
    b = load_checkpoint(split / "last.pt")
    assert a["meta"]["step"] == b["meta"]["step"] == 5
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=0, atol=1e-6, msg=k)
    assert torch.equal(a["meta"]["data_rng"], b["meta"]["data_rng"]) and torch.equal(a["meta"]["rng"], b["meta"]["rng"])
    steps = [r["step"] for r in csv.DictReader((split / "metrics.csv").open())]
    assert steps == ["1", "2", "3", "4", "5"]


def test_finetune_starts_from_the_given_weights_and_toonifies(tmp_path, faces_dir, toon_dir):
    from faceforge.stylegan import generate, toonify

    base_run = train(_cfg(tmp_path / "base", faces_dir, stop_after_steps=2, swd_every=0))
    base_state = load_checkpoint(base_run / "last.pt")["state_dict"]
    # from a G checkpoint: G and G_ema start from it, D is fresh; the architecture is the checkpoint's
    ft = train(_cfg(tmp_path / "ft", toon_dir, finetune_from=str(base_run / "G_ema.pt"), resolution=32,
                    channel_base=999, lr=1e-9, stop_after_steps=1, swd_every=0))
    cfg = json.loads((ft / "config.json").read_text())
    assert cfg["config"]["resolution"] == 16 and cfg["config"]["channel_base"] == 128
    assert cfg["finetune_from"].endswith("G_ema.pt") and cfg["images"] == 8
    state = load_checkpoint(ft / "last.pt")["state_dict"]
    for k in ("synthesis.b16.conv1.weight", "mapping.fc0.weight"):
        torch.testing.assert_close(state[f"G.{k}"], base_state[f"G_ema.{k}"], rtol=0, atol=1e-5)
    assert not torch.allclose(state["D.fromrgb.weight"], base_state["D.fromrgb.weight"])
    # from a run folder: D continues too
    ft2 = train(_cfg(tmp_path / "ft2", toon_dir, finetune_from=str(base_run), lr=1e-9, stop_after_steps=1,
                     swd_every=0))
    state2 = load_checkpoint(ft2 / "last.pt")["state_dict"]
    torch.testing.assert_close(state2["D.fromrgb.weight"], base_state["D.fromrgb.weight"], rtol=0, atol=1e-5)
    torch.testing.assert_close(state2["G.synthesis.b8.conv0.weight"], base_state["G.synthesis.b8.conv0.weight"],
                               rtol=0, atol=1e-5)
    # the fine-tuned G_ema plugs into toonify with the base
    base = create_model("stylegan2", weights=base_run / "G_ema.pt")
    toon = create_model("stylegan2", weights=ft / "G_ema.pt")
    mixed = toonify(base, toon, swap_resolution=8)
    assert generate(mixed, [0, 1]).shape == (2, 16, 16, 3)


def test_d_warmup_trains_only_d_for_its_steps():
    trainer = _tiny_trainer(d_warmup_steps=2, batch_size=4)
    g0 = {k: v.clone() for k, v in trainer.G.named_parameters()}  # (its w_avg buffer tracks the fakes' w)
    e0 = {k: v.clone() for k, v in trainer.G_ema.state_dict().items()}
    d0 = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    for _ in range(2):
        out = trainer.train_step(real)
        assert "G_loss" not in out and "D_loss" in out
    assert all(torch.equal(v, g0[k]) for k, v in trainer.G.named_parameters())
    assert all(torch.equal(v, e0[k]) for k, v in trainer.G_ema.state_dict().items())
    assert any(not torch.equal(v, d0[k]) for k, v in trainer.D.state_dict().items())
    out = trainer.train_step(real)
    assert "G_loss" in out and trainer.step == 3
    assert any(not torch.equal(v, g0[k]) for k, v in trainer.G.named_parameters())


def test_grow_from_starts_as_the_source_upsampled(tmp_path, faces_dir):
    """--grow-from: a 32 px run from a 16 px one copies the mapping and the shared synthesis and D blocks;
    the new block's ToRGB starts at zero, so the grown generator first draws the source's faces upsampled."""
    from faceforge.errors import CheckpointError
    from faceforge.models.stylegan2 import make_filter, upsample2d

    base_run = train(_cfg(tmp_path / "base", faces_dir, stop_after_steps=2, swd_every=0))
    base_state = load_checkpoint(base_run / "last.pt")["state_dict"]
    grown_run = train(_cfg(tmp_path / "grown", faces_dir, grow_from=str(base_run), resolution=32, lr=1e-9,
                           stop_after_steps=2, d_warmup_steps=1, swd_every=0))
    cfg = json.loads((grown_run / "config.json").read_text())
    assert cfg["config"]["resolution"] == 32 and cfg["config"]["grow_from"] == str(base_run.resolve())
    assert cfg["grown"].startswith("grown from 16 px") and "b32" in cfg["grown"] and "fresh in ['b32'" in cfg["grown"]
    state = load_checkpoint(grown_run / "last.pt")["state_dict"]
    torch.testing.assert_close(state["D.b16.conv0.weight"], base_state["D.b16.conv0.weight"], rtol=0, atol=1e-6)
    assert state["D.fromrgb.weight"].shape != base_state["D.fromrgb.weight"].shape

    small = create_model("stylegan2", weights=base_run / "G_ema.pt")
    big = create_model("stylegan2", weights=grown_run / "G_ema.pt")
    z = torch.randn(3, small.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = small.synthesis(small.mapping(z, update_w_avg=False), noise_mode="const")
        b = big.synthesis(big.mapping(z, update_w_avg=False), noise_mode="const")
    assert b.shape == (3, 3, 32, 32)
    torch.testing.assert_close(b, upsample2d(a, make_filter()), rtol=0, atol=1e-4)

    with pytest.raises(ValueError, match="below --resolution 16"):
        train(_cfg(tmp_path / "same", faces_dir, grow_from=str(base_run), stop_after_steps=1, swd_every=0))
    with pytest.raises(CheckpointError, match="keep its channel_base"):
        train(_cfg(tmp_path / "wide", faces_dir, grow_from=str(base_run), resolution=32, channel_base=512,
                   stop_after_steps=1, swd_every=0))


def test_grow_with_d_fade_in_starts_as_the_source_d_on_downsampled_images(tmp_path, faces_dir):
    """--d-fade-kimg: the grown D first scores an image as the source run's trained D scores it at half size
    (fromRGB of the source on the 2x average-pooled image), then fades its new top block in, alpha 0 -> 1."""
    import torch.nn.functional as F

    from faceforge.models.stylegan2 import StyleGAN2Discriminator

    base_run = train(_cfg(tmp_path / "base", faces_dir, stop_after_steps=2, batch_size=2, swd_every=0))
    base = load_checkpoint(base_run / "last.pt")
    d_small = StyleGAN2Discriminator(**base["config"]["D"])
    d_small.load_state_dict({k[2:]: v for k, v in base["state_dict"].items() if k.startswith("D.")})
    grown_run = train(_cfg(tmp_path / "grown", faces_dir, grow_from=str(base_run), resolution=32, lr=1e-9,
                           stop_after_steps=3, d_warmup_steps=1, d_fade_kimg=0.004, batch_size=2, swd_every=0))
    state = load_checkpoint(grown_run / "last.pt")
    assert state["config"]["D"]["fade_in"] is True
    d_big = StyleGAN2Discriminator(**state["config"]["D"])
    d_big.load_state_dict({k[2:]: v for k, v in state["state_dict"].items() if k.startswith("D.")})
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        d_big.alpha = 0.0
        faded_out = d_big(x)
        d_big.alpha = 1.0
        full = d_big(x)
        expected = d_small(F.avg_pool2d(x, 2))
    torch.testing.assert_close(faded_out, expected, rtol=0, atol=1e-4)  # lr 1e-9: D barely moved
    assert (full - faded_out).abs().max() > 1e-3  # the new top block is a different judge
    with open(grown_run / "metrics.csv") as f:
        alphas = [float(r["D_alpha"]) for r in csv.DictReader(f) if r["D_alpha"]]
    # warm-up step alpha 0, then 2 images of the 4-image fade per step: 0, 0.5
    assert alphas[:2] == [0.0, 0.0] and alphas[2] == pytest.approx(0.5)

    with pytest.raises(ValueError, match="give --grow-from too"):
        train(_cfg(tmp_path / "nogrow", faces_dir, d_fade_kimg=1.0, stop_after_steps=1, swd_every=0))
    with pytest.raises(ValueError, match="is a generator file"):
        train(_cfg(tmp_path / "gfile", faces_dir, grow_from=str(base_run / "G_ema.pt"), resolution=32,
                   d_fade_kimg=1.0, stop_after_steps=1, swd_every=0))
    with pytest.raises(ValueError, match="grows by one level"):
        train(_cfg(tmp_path / "two", faces_dir, grow_from=str(base_run), resolution=64, d_fade_kimg=1.0,
                   stop_after_steps=1, swd_every=0))


def test_load_image_set_crops_resizes_and_caches(tmp_path, toon_dir):
    imgs = load_image_set(toon_dir, 16, cache_dir=tmp_path / "cache")
    assert imgs.shape == (8, 16, 16, 3) and imgs.dtype == np.uint8
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    np.testing.assert_array_equal(load_image_set(toon_dir, 16, cache_dir=tmp_path / "cache"), imgs)
    assert load_image_set(toon_dir, 16, limit=3).shape[0] == 3
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        load_image_set(tmp_path / "nope", 16)


def test_cli_train_and_install(tmp_path, faces_dir, monkeypatch):
    from faceforge.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACEFORGE_HOME", str(tmp_path / "home"))
    args = ["train", "stylegan2", "--preset", "tiny", "--data", str(faces_dir), "--stop-after", "2", "--device", "cpu",
            "--swd-every", "0", "--runs-dir", str(tmp_path / "runs"), "--install"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    from faceforge.models import get_spec

    installed = get_spec("stylegan2").default_weights_path  # the user folder's copy now wins over the package's
    assert installed == tmp_path / "home" / "weights" / "stylegan2_utkface32.pt" and installed.is_file()
    prov = json.loads(installed.with_suffix(".json").read_text())
    assert prov["arch"] == "stylegan2" and prov["model_config"]["resolution"] == 16 and prov["step"] == 2
    assert any((tmp_path / "home" / "cache" / "stylegan2").iterdir())  # decoded set cached for resumes (user cache)
    assert not (tmp_path / "cache").exists()                          # never in the working directory
    res = CliRunner().invoke(main, ["train", "stylegan2", "--data", str(tmp_path / "missing")])
    assert res.exit_code != 0 and "image folder not found" in res.output


def test_stylegan_latency_benchmark_smoke(tmp_path):
    from faceforge.cli import main

    args = ["bench", "stylegan-latency", "--resolutions", "8,16", "--batch-sizes", "1,2", "--repeats", "2",
            "--warmup", "0", "--threads", "1", "--device", "cpu", "--channel-base", "64", "--channel-max", "8",
            "--z-dim", "8", "--out", str(tmp_path), "--name", "sg"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "sg.json").read_text())
    assert len(doc["rows"]) == 2 * 2 * 2 and doc["device"] == "cpu" and doc["config"]["channel_base"] == 64
    row = doc["rows"][-1]
    assert row["resolution"] == 16 and row["batch_size"] == 2 and row["modulation"] == "unfused"
    assert row["images_per_s"] == pytest.approx(2 / row["median_s"], rel=0.01) and row["macs_per_image"] > 0
    assert "| 16 | 2 | unfused |" in (tmp_path / "sg.md").read_text()
    assert load_image(tmp_path / "sg.png").shape[2] == 3


def test_stylegan_quality_benchmark_puts_controls_beside_the_generator(tmp_path, faces_dir):
    """bench stylegan-quality: real vs real is the floor, the blur control is farther at the finest level,
    an untrained generator is far from the reals at every level; a run's SWD log is tabulated."""
    from benchmarks.stylegan_quality import read_run_swd
    from faceforge.cli import main

    run = train(_cfg(tmp_path / "base", faces_dir, stop_after_steps=1, swd_every=1, swd_images=8))
    more = tmp_path / "more"
    more.mkdir()
    for i, img in enumerate(_blobs(24, 24, seed=5)):
        save_image(more / f"m{i:03d}.png", img)
    for f in faces_dir.iterdir():
        save_image(more / f.name, load_image(f))
    args = ["bench", "stylegan-quality", "--weights", f"tiny={run / 'G_ema.pt'}", "--data", str(more), "--images", "16",
            "--run", str(run), "--threads", "1", "--out", str(tmp_path / "out"), "--name", "q"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "out" / "q.json").read_text())
    floor = doc["controls"]["real vs real"]["each"]
    blur = doc["controls"]["real at 8 px, upsampled (blur)"]["each"]
    gen = doc["generators"][0]
    assert doc["resolution"] == 16 and blur["swd_16"] > floor["swd_16"]
    assert all(gen["swd"]["each"][k] > floor[k] for k in ("swd_16",)) and gen["meets_target"] is False
    assert gen["ratio_to_real_each"]["swd_16"] == pytest.approx(gen["swd"]["each"]["swd_16"] / floor["swd_16"], abs=0.01)
    assert (tmp_path / "out" / "figures" / "q_tiny.jpg").is_file()
    assert read_run_swd(run)[0]["step"] == 0 and "SWD over training" in (tmp_path / "out" / "q.md").read_text()
    bad = CliRunner().invoke(main, ["bench", "stylegan-quality", "--weights", "nolabel", "--data", str(more)])
    assert bad.exit_code != 0 and "LABEL=PATH" in bad.output
    few = CliRunner().invoke(main, args[:6] + ["--images", "40", "--out", str(tmp_path / "o2")])
    assert few.exit_code != 0 and "need 80" in few.output
