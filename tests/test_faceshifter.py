"""FaceShifter AEI-Net: shapes, the AAD formula, the taotaonice G_latest.pth converter, the identity-size
check, and the trainer (smoke run + resume)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from faceforge.checkpoints import load_checkpoint
from faceforge.errors import CheckpointError
from faceforge.models import create_model, get_spec
from faceforge.models.faceshifter import (AADLayer, AEINet, MultiscaleDiscriminator, aei_channels, attribute_loss,
                                          check_identity_dim, convert_taotaonice_state_dict, hinge_d_loss,
                                          hinge_g_loss, load_faceshifter)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


# --------------------------------------------------------------------------------------------------
# Architecture


def test_published_channel_table():
    """size 256, width 1 is the reference's AEI_Net: MLAttrEncoder 32..1024 and AADGenerator's AAD_ResBlk table."""
    ch = aei_channels(256, 1)
    assert ch["encoder"] == [32, 64, 128, 256, 512, 1024, 1024]
    assert ch["attributes"] == [1024, 2048, 1024, 512, 256, 128, 64, 64]
    assert ch["generator"] == [1024, 1024, 1024, 512, 256, 128, 64, 3]


@pytest.mark.parametrize("size", [64, 128])
def test_forward_shapes_and_range(size):
    torch.manual_seed(0)
    net = AEINet(size=size, width=0.125, id_dim=128).eval()
    y, z = net(torch.rand(2, 3, size, size) * 2 - 1, torch.randn(2, 128))
    assert y.shape == (2, 3, size, size) and y.abs().max() < 1
    levels = int(np.log2(size))
    assert [t.shape[-1] for t in z] == [2 ** k for k in range(1, levels + 1)]
    assert [t.shape[1] for t in z] == aei_channels(size, 0.125)["attributes"]
    # the identity is used through its direction only (L2-normalised)
    z_id = torch.randn(2, 128)
    x = torch.rand(2, 3, size, size) * 2 - 1
    assert torch.allclose(net(x, z_id)[0], net(x, 3.7 * z_id)[0], atol=1e-5)
    # and it does change the output
    assert (net(x, z_id)[0] - net(x, torch.randn(2, 128))[0]).abs().max() > 1e-3


def test_aad_layer_matches_the_paper_formula():
    torch.manual_seed(1)
    layer = AADLayer(6, 5, 7)
    h, za, zi = torch.randn(2, 6, 4, 4), torch.randn(2, 5, 4, 4), torch.randn(2, 7)
    hn = (h - h.mean((2, 3), keepdim=True)) / torch.sqrt(h.var((2, 3), unbiased=False, keepdim=True) + 1e-5)
    a = F.conv2d(za, layer.att_gamma.weight, layer.att_gamma.bias) * hn + F.conv2d(za, layer.att_beta.weight,
                                                                                 layer.att_beta.bias)
    i = (zi @ layer.id_gamma.weight.T + layer.id_gamma.bias)[:, :, None, None] * hn + \
        (zi @ layer.id_beta.weight.T + layer.id_beta.bias)[:, :, None, None]
    m = torch.sigmoid(F.conv2d(hn, layer.mask.weight, layer.mask.bias))
    assert torch.allclose(layer(h, za, zi), (1 - m) * a + m * i, atol=1e-5)
    assert torch.allclose(layer.attention(h), m, atol=1e-6)


@pytest.mark.parametrize("bad", [32, 100, 48, "64", 0])
def test_bad_size_is_refused(bad):
    with pytest.raises(ValueError, match="power of two >= 64"):
        AEINet(size=bad)


def test_wrong_inputs_are_refused():
    net = AEINet(size=64, width=0.125, id_dim=128)
    with pytest.raises(ValueError, match=r"\(N, 3, 64, 64\)"):
        net(torch.zeros(1, 3, 32, 32), torch.zeros(1, 128))
    with pytest.raises(ValueError, match="id_dim=128"):
        net(torch.zeros(1, 3, 64, 64), torch.zeros(1, 512))


def test_discriminator_and_losses():
    d = MultiscaleDiscriminator(64, ndf=8)
    logits = d(torch.zeros(2, 3, 64, 64))
    assert len(logits) == 3 and all(t.shape[:2] == (2, 1) for t in logits)
    assert logits[0].shape[-1] > logits[2].shape[-1]
    big, small = [torch.full((2, 1, 3, 3), 5.0)], [torch.full((2, 1, 3, 3), -5.0)]
    assert float(hinge_d_loss(big, small)) == 0.0  # both sides beyond the margin
    assert float(hinge_d_loss(small, big)) == pytest.approx(0.5 * (6 + 6))
    assert float(hinge_g_loss(big)) == 0.0 and float(hinge_g_loss(small)) == pytest.approx(6.0)
    za = [torch.zeros(2, 4, 2, 2), torch.zeros(2, 2, 4, 4)]
    zb = [torch.ones(2, 4, 2, 2), torch.full((2, 2, 4, 4), 2.0)]
    assert float(attribute_loss(za, zb)) == pytest.approx(0.5 * (1 + 4))


def test_registered_and_create_model_round_trip(tmp_path):
    from faceforge.checkpoints import save_checkpoint

    spec = get_spec("faceshifter")
    assert spec.task == "swap" and spec.input.face_template == "utkface"
    net = AEINet(size=64, width=0.125, id_dim=128)
    path = save_checkpoint(tmp_path / "g.pt", net, "faceshifter", {"size": 64, "width": 0.125, "id_dim": 128})
    loaded = create_model("faceshifter", weights=path)
    x, z = torch.rand(1, 3, 64, 64) * 2 - 1, torch.randn(1, 128)
    net.eval()
    assert torch.equal(loaded(x, z)[0], net(x, z)[0])


# --------------------------------------------------------------------------------------------------
# taotaonice/FaceShifter G_latest.pth, constructed here from the reference's documented layout
# (network/AEI_Net.py MLAttrEncoder / AADGenerator(c_id), network/AADLayer.py AADLayer / AAD_ResBlk)

# published (cin, cout, c_attr) of AADGenerator.AADBlk1..8 and MLAttrEncoder's convs / deconvs
REF_BLOCKS = [(1024, 1024, 1024), (1024, 1024, 2048), (1024, 1024, 1024), (1024, 512, 512), (512, 256, 256),
              (256, 128, 128), (128, 64, 64), (64, 3, 64)]
REF_CONVS = [(3, 32), (32, 64), (64, 128), (128, 256), (256, 512), (512, 1024), (1024, 1024)]
REF_DECONVS = [(1024, 1024), (2048, 512), (1024, 256), (512, 128), (256, 64), (128, 32)]


def reference_state(div: int, c_id: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random AEI_Net(c_id).state_dict() with the reference's key names, every width divided by ``div``
    (the RGB channels stay 3)."""
    g = torch.Generator().manual_seed(seed)

    def c(n: int) -> int:
        return n if n == 3 else n // div

    def r(*shape: int, scale: float = 0.2) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    sd: dict[str, torch.Tensor] = {}

    def bn(prefix: str, n: int) -> None:
        sd[f"{prefix}.weight"] = 1 + r(n, scale=0.05)
        sd[f"{prefix}.bias"] = r(n, scale=0.05)
        sd[f"{prefix}.running_mean"] = r(n, scale=0.05)
        sd[f"{prefix}.running_var"] = 1 + torch.rand(n, generator=g) * 0.1
        sd[f"{prefix}.num_batches_tracked"] = torch.tensor(1000)

    for i, (ci, co) in enumerate(REF_CONVS, start=1):
        sd[f"encoder.conv{i}.0.weight"] = r(c(co), c(ci), 4, 4)
        bn(f"encoder.conv{i}.1", c(co))
    for j, (ci, co) in enumerate(REF_DECONVS, start=1):
        sd[f"encoder.deconv{j}.deconv.weight"] = r(c(ci), c(co), 4, 4)  # ConvTranspose2d: (in, out, k, k)
        bn(f"encoder.deconv{j}.bn", c(co))
    sd["generator.up1.weight"] = r(c_id, c(1024), 2, 2)
    sd["generator.up1.bias"] = r(c(1024))
    for k, (ci, co, ca) in enumerate(REF_BLOCKS, start=1):
        aads = ["AAD1", "AAD2"] + (["AAD3"] if ci != co else [])
        for a in aads:
            p = f"generator.AADBlk{k}.{a}"
            sd[f"{p}.conv1.weight"], sd[f"{p}.conv1.bias"] = r(c(ci), c(ca), 1, 1), 1 + r(c(ci))
            sd[f"{p}.conv2.weight"], sd[f"{p}.conv2.bias"] = r(c(ci), c(ca), 1, 1), r(c(ci))
            sd[f"{p}.fc1.weight"], sd[f"{p}.fc1.bias"] = r(c(ci), c_id), 1 + r(c(ci))
            sd[f"{p}.fc2.weight"], sd[f"{p}.fc2.bias"] = r(c(ci), c_id), r(c(ci))
            sd[f"{p}.conv_h.weight"], sd[f"{p}.conv_h.bias"] = r(1, c(ci), 1, 1), r(1)
        sd[f"generator.AADBlk{k}.conv1.weight"] = r(c(ci), c(ci), 3, 3, scale=0.05)
        sd[f"generator.AADBlk{k}.conv2.weight"] = r(c(co), c(ci), 3, 3, scale=0.05)
        if ci != co:
            sd[f"generator.AADBlk{k}.conv3.weight"] = r(c(co), c(ci), 3, 3, scale=0.05)
    return sd


def reference_forward(sd: dict[str, torch.Tensor], xt: torch.Tensor, z_id: torch.Tensor) -> torch.Tensor:
    """The reference AEI_Net.forward (eval mode), written functionally on the reference's keys."""
    def bn(x, p):
        return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                            False, 0.0, 1e-5)

    feats, x = [], xt
    for i in range(1, 8):
        x = F.leaky_relu(bn(F.conv2d(x, sd[f"encoder.conv{i}.0.weight"], stride=2, padding=1), f"encoder.conv{i}.1"), 0.1)
        feats.append(x)
    attrs = [feats[-1]]
    for j in range(1, 7):
        y = F.conv_transpose2d(attrs[-1], sd[f"encoder.deconv{j}.deconv.weight"], stride=2, padding=1)
        attrs.append(torch.cat([F.leaky_relu(bn(y, f"encoder.deconv{j}.bn"), 0.1), feats[-1 - j]], 1))
    attrs.append(F.interpolate(attrs[-1], scale_factor=2, mode="bilinear", align_corners=True))

    def aad(h, za, p):
        h = F.instance_norm(h)
        a = F.conv2d(za, sd[f"{p}.conv1.weight"], sd[f"{p}.conv1.bias"]) * h + F.conv2d(za, sd[f"{p}.conv2.weight"],
                                                                                      sd[f"{p}.conv2.bias"])
        gi = F.linear(z_id, sd[f"{p}.fc1.weight"], sd[f"{p}.fc1.bias"])[:, :, None, None]
        bi = F.linear(z_id, sd[f"{p}.fc2.weight"], sd[f"{p}.fc2.bias"])[:, :, None, None]
        m = torch.sigmoid(F.conv2d(h, sd[f"{p}.conv_h.weight"], sd[f"{p}.conv_h.bias"]))
        return (1 - m) * a + m * (gi * h + bi)

    m = F.conv_transpose2d(z_id[:, :, None, None], sd["generator.up1.weight"], sd["generator.up1.bias"])
    for k in range(1, 9):
        p, za = f"generator.AADBlk{k}", attrs[k - 1]
        x = F.conv2d(F.relu(aad(m, za, f"{p}.AAD1")), sd[f"{p}.conv1.weight"], padding=1)
        x = F.conv2d(F.relu(aad(x, za, f"{p}.AAD2")), sd[f"{p}.conv2.weight"], padding=1)
        if f"{p}.conv3.weight" in sd:
            m = F.conv2d(F.relu(aad(m, za, f"{p}.AAD3")), sd[f"{p}.conv3.weight"], padding=1)
        m = x + m
        if k < 8:
            m = F.interpolate(m, scale_factor=2, mode="bilinear", align_corners=True)
    return torch.tanh(m)


def test_converter_consumes_every_reference_key_and_reproduces_the_reference(tmp_path):
    sd = reference_state(div=32, c_id=512)
    path = tmp_path / "G_latest.pth"
    torch.save(sd, path)
    ckpt = load_faceshifter(path)
    assert ckpt["config"] == {"size": 256, "width": 1 / 32, "id_dim": 512}
    assert len(ckpt["state_dict"]) == len(sd)  # every key consumed, none invented
    assert "ArcFace" in ckpt["meta"]["identity"]
    model = create_model("faceshifter", weights=path)
    assert model.id_dim == 512 and model.size == 256
    torch.manual_seed(0)
    xt = torch.rand(2, 3, 256, 256) * 2 - 1
    z_id = F.normalize(torch.randn(2, 512), dim=1)  # the reference feeds unit ArcFace embeddings
    with torch.no_grad():
        ours, _ = model(xt, z_id)
        ref = reference_forward(sd, xt, z_id)
    assert ours.std() > 0.05  # not a saturated or constant output
    assert (ours - ref).abs().max() < 1e-4
    # a DataParallel-saved file loads too
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "dp.pth")
    assert load_faceshifter(tmp_path / "dp.pth")["config"]["id_dim"] == 512


def test_converted_published_layout_is_refused_with_the_dlib_identity(tmp_path):
    sd = reference_state(div=32, c_id=512)
    torch.save(sd, tmp_path / "G_latest.pth")
    model = create_model("faceshifter", weights=tmp_path / "G_latest.pth")
    with pytest.raises(CheckpointError, match="512-D identity.*128-D.*ArcFace"):
        check_identity_dim(model, 128, "dlib's ResNet")
    check_identity_dim(AEINet(64, 0.125, 128), 128)  # matching sizes pass


def test_converter_errors_name_what_was_expected(tmp_path):
    sd = reference_state(div=32, c_id=128)
    with pytest.raises(CheckpointError, match="taotaonice/FaceShifter AEI_Net state dict"):
        convert_taotaonice_state_dict({"conv.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="found a list"):
        convert_taotaonice_state_dict([1, 2])
    missing = dict(sd)
    del missing["generator.AADBlk4.AAD3.fc2.bias"]
    with pytest.raises(CheckpointError, match=r"missing tensor 'generator\.AADBlk4\.AAD3\.fc2\.bias'"):
        convert_taotaonice_state_dict(missing)
    extra = {**sd, "generator.AADBlk9.conv1.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="not part of an AEI-Net"):
        convert_taotaonice_state_dict(extra)
    bad = {**sd, "generator.AADBlk2.AAD1.conv1.weight": torch.zeros(32, 32, 1, 1)}
    with pytest.raises(CheckpointError, match=r"AADBlk2\.AAD1\.conv1\.weight has shape \(32, 32, 1, 1\)"):
        convert_taotaonice_state_dict(bad)
    torch.save({"G": "not tensors"}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="not a tensor"):
        load_faceshifter(tmp_path / "x.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="weights_only"):
        load_faceshifter(tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError):
        load_faceshifter(tmp_path / "absent.pth")


# --------------------------------------------------------------------------------------------------
# Trainer


def _face(size: int, seed: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), rng.integers(40, 200, 3), np.uint8)
    cv2.ellipse(img, (size // 2, size // 2), (size // 3, size // 2 - 4), 0, 0, 360,
                tuple(int(v) for v in rng.integers(120, 220, 3)), -1)
    for dx in (-1, 1):
        cv2.circle(img, (size // 2 + dx * size // 6, size // 2 - size // 8), size // 16, (20, 20, 20), -1)
    return np.clip(img.astype(int) + rng.integers(-10, 11, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory):
    from faceforge.imaging import save_image

    folder = tmp_path_factory.mktemp("faces")
    for i in range(12):
        save_image(folder / f"{i:03d}.png", _face(80, i))  # the loader resizes them to 64
    return folder


@pytest.fixture(scope="module")
def small_identity():
    """A small randomly initialised network of dlib's ResNet shape (16-D): fast, and it gives the trainer
    the same interface as the real one."""
    from faceforge.models.dlib_resnet import DlibFaceResNet
    from training.faceshifter import IdentityEncoder

    torch.manual_seed(0)
    return IdentityEncoder(DlibFaceResNet(widths=(4, 4, 4, 4, 4), depths=(1, 1, 1, 1, 1), embedding_dim=16))


def _cfg(tmp_path, data, **kw):
    from training.faceshifter import FaceShifterTrainConfig

    base = dict(data=str(data), size=64, width=0.0625, ndf=4, batch_size=4, total_steps=4, runs_dir=str(tmp_path),
                device="cpu", progress=False, log_every=1, eval_every=2, sample_every=2, save_every=0, n_val=4,
                same_fraction=0.5)
    base.update(kw)
    return FaceShifterTrainConfig(**base)


def test_pair_sampler_same_fraction_and_distinct_sources():
    from training.faceshifter import SwapPairSampler

    faces = np.stack([_face(64, i) for i in range(5)])
    xs, xt, same = SwapPairSampler(faces, same_fraction=0.3, mirror=False, seed=0).sample(400)
    identical = (xs - xt).abs().flatten(1).amax(1) == 0
    assert torch.equal(identical, same.bool())  # same pairs are the very image, the others never
    assert 0.22 < float(same.mean()) < 0.38


def test_train_smoke_losses_finite_and_exact_resume(tmp_path, faces_dir, small_identity):
    from training.faceshifter import STATE_ARCH, train

    straight = train(_cfg(tmp_path / "a", faces_dir), identity=small_identity)
    stopped = train(_cfg(tmp_path / "b", faces_dir, stop_after_steps=2), identity=small_identity)
    assert load_checkpoint(stopped / "last.pt", arch=STATE_ARCH)["meta"]["step"] == 2
    resumed = train(_cfg(tmp_path / "other", "/nonexistent", resume=str(stopped)), identity=small_identity)
    assert resumed == stopped  # the stored config (data, sizes) wins over this invocation's
    a = load_checkpoint(straight / "G.pt", arch="faceshifter")
    b = load_checkpoint(resumed / "G.pt", arch="faceshifter")
    assert a["meta"]["step"] == b["meta"]["step"] == 4 and a["meta"]["face_template"] == "utkface"
    assert a["config"] == {"size": 64, "width": 0.0625, "id_dim": 16}
    for k, v in a["state_dict"].items():
        assert torch.allclose(v.float(), b["state_dict"][k].float(), atol=1e-6), k
    with open(resumed / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3, 4]
    for r in rows[1:]:
        for key in ("G_loss", "G_adv", "att", "id", "rec", "D_loss"):
            assert np.isfinite(float(r[key])), (key, r)
        assert float(r["id"]) >= 0 and float(r["att"]) > 0 and float(r["D_loss"]) > 0
    assert all(-1 <= float(r["val_id_src"]) <= 1 and float(r["val_rec_psnr"]) > 0 for r in rows if r["val_id_src"])
    config = json.loads((straight / "config.json").read_text())
    assert "dlib" in config["identity"] and config["train_images"] + config["held_out_images"] == 12
    assert (straight / "samples" / "step_0000004.png").is_file()
    model = create_model("faceshifter", weights=straight / "G.pt")
    y, _ = model(torch.zeros(1, 3, 64, 64), torch.randn(1, 16))
    assert y.shape == (1, 3, 64, 64) and torch.isfinite(y).all()


def test_identity_views_resume_exactly_and_change_only_the_identity_term(tmp_path, faces_dir, small_identity):
    """--id-views draws its random views from the saved torch RNG (a resumed run repeats them) and enters
    only the identity term: the first step's other losses equal the plain run's."""
    from training.faceshifter import STATE_ARCH, train

    straight = train(_cfg(tmp_path / "a", faces_dir, id_views=2), identity=small_identity)
    stopped = train(_cfg(tmp_path / "b", faces_dir, id_views=2, stop_after_steps=2), identity=small_identity)
    resumed = train(_cfg(tmp_path / "c", faces_dir, resume=str(stopped)), identity=small_identity)
    a, b = (load_checkpoint(r / "G.pt", arch="faceshifter")["state_dict"] for r in (straight, resumed))
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    assert json.loads((straight / "config.json").read_text())["config"]["id_views"] == 2
    plain = train(_cfg(tmp_path / "d", faces_dir, stop_after_steps=1), identity=small_identity)
    rows = {}
    for name, run in (("views", straight), ("plain", plain)):
        with open(run / "metrics.csv") as f:
            rows[name] = list(csv.DictReader(f))[1]
    for key in ("G_adv", "att", "rec"):
        assert float(rows["views"][key]) == pytest.approx(float(rows["plain"][key]), rel=1e-5), key
    assert float(rows["views"]["id"]) != pytest.approx(float(rows["plain"]["id"]), rel=1e-4)


def test_random_identity_view_is_a_mild_differentiable_reframing():
    from training.face_losses import random_identity_view

    torch.manual_seed(0)
    x = torch.rand(6, 3, 64, 64, requires_grad=True)
    y = random_identity_view(x)
    assert y.shape == x.shape and not torch.allclose(y, x, atol=1e-3)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    flat = torch.full((2, 3, 32, 32), 0.25)  # every transform is a weighted average of pixels: flat stays flat
    assert torch.allclose(random_identity_view(flat), flat, atol=1e-6)
    still = random_identity_view(x.detach(), max_scale=0, max_degrees=0, max_shift=0, blur_p=0, resample_p=0)
    assert torch.allclose(still, x.detach(), atol=1e-5)  # all switched off: the face itself
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        random_identity_view(torch.zeros(3, 64, 64))


def test_trainer_refuses_an_identity_network_of_another_size(tmp_path, faces_dir, small_identity):
    from training.faceshifter import FaceShifterTrainer

    cfg = _cfg(tmp_path, faces_dir)
    with pytest.raises(CheckpointError, match="expects 128-D identity vectors, but the identity network gives 16-D"):
        FaceShifterTrainer(AEINet(64, 0.0625, 128), MultiscaleDiscriminator(64, ndf=4), small_identity, cfg,
                           torch.device("cpu"))


def test_cli_bad_data_folder_is_one_line(tmp_path):
    from click.testing import CliRunner

    from training.cli import train

    result = CliRunner().invoke(train, ["faceshifter", "--data", str(tmp_path / "absent"), "--runs-dir",
                                        str(tmp_path / "runs"), "--device", "cpu"])
    assert result.exit_code != 0
    assert "Error:" in result.output and ("not found" in result.output or "does not exist" in result.output)
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------------------------------
# Whole-photo swap (faceforge.faceshifter)


@pytest.fixture(scope="module")
def small_generator(tmp_path_factory):
    from faceforge.checkpoints import save_checkpoint

    torch.manual_seed(3)
    config = {"size": 64, "width": 0.0625, "id_dim": 16}
    path = tmp_path_factory.mktemp("g") / "G.pt"
    return save_checkpoint(path, AEINet(**config), "faceshifter", config, {"face_template": "utkface"})


def test_whole_photo_swap_changes_only_the_face_region(astronaut_rgb, small_generator, small_identity):
    from faceforge.faceshifter import FaceShifterSwapper

    sw = FaceShifterSwapper(small_generator, identity=small_identity)
    source = np.ascontiguousarray(astronaut_rgb[..., ::-1])  # other pixels (BGR order), not the face itself
    run = sw.swap(source, astronaut_rgb)
    assert run.image.shape == astronaut_rgb.shape and run.image.dtype == np.uint8
    assert len(run.jobs) == 1 and run.jobs[0].output.shape == (64, 64, 3)
    assert {"detect", "align", "swap", "paste", "source"} <= set(run.timings_ms)
    x0, y0, x1, y1 = run.found[0].box
    w, h = x1 - x0, y1 - y0
    diff = np.abs(run.image.astype(int) - astronaut_rgb.astype(int)).sum(2)
    inside = diff[int(y0 + h / 4):int(y1 - h / 4), int(x0 + w / 4):int(x1 - w / 4)]
    assert inside.mean() > 5  # the face was replaced (random weights: by anything)
    far = np.ones_like(diff, bool)
    far[max(0, int(y0 - 1.5 * h)):int(y1 + 1.5 * h), max(0, int(x0 - 1.5 * w)):int(x1 + 1.5 * w)] = False
    assert diff[far].max() == 0  # nothing outside the face's surroundings moved


def test_whole_photo_swap_refusals(tmp_path, small_generator, small_identity):
    from faceforge.errors import NoFaceError, WeightsNotFoundError
    from faceforge.faceshifter import FaceShifterSwapper

    with pytest.raises(WeightsNotFoundError, match="faceforge train faceshifter"):
        FaceShifterSwapper(tmp_path / "absent.pt", identity=small_identity)
    torch.save(reference_state(div=32, c_id=512), tmp_path / "G_latest.pth")
    with pytest.raises(CheckpointError, match="512-D identity vectors, but the identity network gives 16-D"):
        FaceShifterSwapper(tmp_path / "G_latest.pth", identity=small_identity)
    sw = FaceShifterSwapper(small_generator, identity=small_identity)
    blank = np.full((256, 256, 3), 128, np.uint8)
    with pytest.raises(NoFaceError):
        sw.swap(blank, blank)
    with pytest.raises(ValueError, match="z_id"):
        sw.swap_crops(np.zeros((2, 64, 64, 3), np.uint8), torch.zeros(3, 16))
    with pytest.raises(ValueError, match=r"\(N, 64, 64, 3\)"):
        sw.swap_crops(np.zeros((1, 32, 32, 3), np.uint8), torch.zeros(1, 16))




def test_whole_photo_swap_refuses_the_source_face_itself_and_thumbnails(astronaut_rgb, small_generator,
                                                                          small_identity):
    """AEI-Net refuses what the classical swap refuses: the source face itself (the same photo, a JPEG copy),
    a source face too small to carry an identity; with faces='all' a refused face is skipped and reported
    while the others are swapped, and a face asked for by index raises."""
    import cv2

    from faceforge.errors import FaceTooSmallError, SameFaceError
    from faceforge.faceshifter import SAME_FACE_MAD, FaceShifterSwapper, aligned_difference

    sw = FaceShifterSwapper(small_generator, identity=small_identity)
    photo = np.ascontiguousarray(astronaut_rgb)
    with pytest.raises(SameFaceError, match="target face 0 is the source face itself"):
        sw.swap(photo, photo)
    jpeg = cv2.imdecode(cv2.imencode(".jpg", photo[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])[1], 1)[..., ::-1]
    with pytest.raises(SameFaceError):
        sw.swap(np.ascontiguousarray(jpeg), photo)

    other = np.ascontiguousarray(photo[..., ::-1])  # the same layout in other colours (BGR): other pixels
    pair = np.ascontiguousarray(np.concatenate([photo, other], axis=1))  # the source face and another one
    run = sw.swap(photo, pair)
    assert len(run.found) == 2
    refused = [j for j in run.jobs if j.output is None]
    swapped = [j for j in run.jobs if j.output is not None]
    assert len(refused) == len(swapped) == 1
    assert "source face itself" in refused[0].extra["skipped"]
    assert refused[0].extra["source_difference"] < SAME_FACE_MAD < swapped[0].extra["source_difference"]
    assert refused[0].face.box[0] < photo.shape[1] <= swapped[0].face.box[0]  # the original half was refused
    left = slice(0, photo.shape[1])
    assert np.array_equal(run.image[:, left], photo)  # nothing pasted over the refused face
    with pytest.raises(SameFaceError):
        sw.swap(photo, pair, faces=[refused[0].index])

    thumb = cv2.resize(photo, (96, 96), interpolation=cv2.INTER_AREA)
    with pytest.raises(FaceTooSmallError, match="source face is .* px wide"):
        sw.swap(thumb, other)
    with pytest.raises(ValueError, match="uint8"):
        aligned_difference(np.zeros((64, 64, 3), np.float32), np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="min_source_face"):
        FaceShifterSwapper(small_generator, identity=small_identity, min_source_face=8)
    tolerant = FaceShifterSwapper(small_generator, identity=small_identity, min_source_face=16)
    assert tolerant.swap(thumb, other).jobs[0].output is not None  # the 96 px photo's face passes 16 px


def test_colour_match_makes_a_grey_target_grey(astronaut_rgb, small_generator, small_identity):
    """``colour=True``: the rendered crop takes the target crop's Lab statistics, so a grey photo stays grey
    (random weights render colour noise; without the match it is pasted as it is)."""
    from faceforge.faceshifter import FaceShifterSwapper, face_ellipse

    grey = np.repeat(np.asarray(astronaut_rgb).mean(2, keepdims=True), 3, 2).astype(np.uint8)
    source = np.ascontiguousarray(astronaut_rgb[:, ::-1])

    def chroma(sw):
        run = sw.swap(source, grey)
        crop = run.jobs[0].output.astype(int)
        return float((crop.max(2) - crop.min(2))[face_ellipse(64)].mean())

    plain = chroma(FaceShifterSwapper(small_generator, identity=small_identity))
    matched = chroma(FaceShifterSwapper(small_generator, identity=small_identity, colour=True))
    assert plain > 3 and matched < 1.5, (plain, matched)
    mask = face_ellipse(64)
    assert mask.shape == (64, 64) and 0.25 < mask.mean() < 0.4 and not mask[0].any() and mask[36, 32]


def _dlib_identity_or_skip():
    from faceforge.errors import FaceforgeError
    from faceforge.faceshifter import IdentityEncoder

    try:
        return IdentityEncoder.dlib()
    except FaceforgeError as exc:  # face-recognition-models not installed
        pytest.skip(f"dlib's ResNet weights unavailable: {exc}")


def test_cli_swap_method_aeinet(tmp_path, astronaut_rgb):
    """``faceforge swap --method aeinet --weights G.pt``: a 128-D AEI-Net (random weights) with dlib's identity;
    a missing weights file is one line."""
    from click.testing import CliRunner

    from faceforge.checkpoints import save_checkpoint
    from faceforge.cli import main
    from faceforge.imaging import load_image, save_image

    _dlib_identity_or_skip()
    torch.manual_seed(5)
    config = {"size": 64, "width": 0.0625, "id_dim": 128}
    weights = save_checkpoint(tmp_path / "G.pt", AEINet(**config), "faceshifter", config, {"face_template": "utkface"})
    src = save_image(tmp_path / "src.png", np.ascontiguousarray(astronaut_rgb[:, ::-1]))
    tgt = save_image(tmp_path / "tgt.png", astronaut_rgb)
    out = tmp_path / "out.png"
    result = CliRunner().invoke(main, ["swap", str(src), str(tgt), "--method", "aeinet", "--weights", str(weights),
                                       "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output[result.output.index("{"):])
    assert doc["method"]["name"] == "aeinet" and doc["method"]["size"] == 64 and doc["method"]["colour"] is False
    assert [f["swapped"] for f in doc["faces"]] == [True]
    img = load_image(out)
    assert img.shape == astronaut_rgb.shape and np.abs(img.astype(int) - astronaut_rgb.astype(int)).max() > 0
    bad = CliRunner().invoke(main, ["swap", str(src), str(tgt), "--method", "aeinet", "--weights",
                                    str(tmp_path / "absent.pt"), "-o", str(out)])
    assert bad.exit_code == 1 and "faceforge train faceshifter" in bad.output and "Traceback" not in bad.output
    assert len(bad.output.strip().splitlines()) == 1



def test_shipped_weights_swap_a_face_toward_the_source(astronaut_rgb, data_dir):
    """The shipped AEI-Net (card faceshifter.utkface64) through the real loader and dlib's identity: a shared
    portrait's identity onto the astronaut moves the face's embedding toward the source, and only the face
    region changes."""
    from faceforge.faces.align import align_face
    from faceforge.faceshifter import DEFAULT_CARD, FaceShifterSwapper
    from faceforge.identity import embed
    from faceforge.imaging import load_image
    from faceforge.models import cards

    card = cards.get_card(DEFAULT_CARD)
    if not card.available:
        pytest.skip(f"{card.file} is neither shipped nor installed")
    portrait = data_dir / "photos" / "portraits" / "obama.jpg"
    if not portrait.is_file():
        pytest.skip(f"shared portrait {portrait} not found")
    identity = _dlib_identity_or_skip()
    sw = FaceShifterSwapper("default", identity=identity)
    assert sw.crop_size == 64 and sw.meta.get("storage_dtype") == "float16" and sw.identity.dim == 128
    source = load_image(portrait)
    run = sw.swap(source, astronaut_rgb, faces="largest")
    assert run.image.shape == astronaut_rgb.shape and len(run.jobs) == 1

    def emb(rgb, face):
        return embed(align_face(rgb, face, 150, template="utkface").image)

    face = run.found[run.chosen[0]]
    e_src = emb(source, sw.detector.detect(source)[0])
    before = float(np.linalg.norm(emb(astronaut_rgb, face) - e_src))
    after = float(np.linalg.norm(emb(run.image, face) - e_src))
    assert after < before - 0.05, (before, after)
    x0, y0, x1, y1 = face.box
    w, h = x1 - x0, y1 - y0
    diff = np.abs(run.image.astype(int) - astronaut_rgb.astype(int)).sum(2)
    far = np.ones_like(diff, bool)
    far[max(0, int(y0 - 1.5 * h)):int(y1 + 1.5 * h), max(0, int(x0 - 1.5 * w)):int(x1 + 1.5 * w)] = False
    assert diff[far].max() == 0


def test_id_center_measures_the_cosine_about_the_mean_embedding(tmp_path, faces_dir, small_identity):
    from training.faceshifter import FaceShifterTrainer, mean_embedding, train

    faces = np.stack([_face(64, i) for i in range(6)])
    mu = mean_embedding(small_identity, faces, n=4, seed=0)
    assert mu.shape == (16,)
    trainer = FaceShifterTrainer(AEINet(64, 0.0625, 16), MultiscaleDiscriminator(64, ndf=4), small_identity,
                                 _cfg(tmp_path, faces_dir), torch.device("cpu"), id_mean=mu)
    a, b = torch.randn(3, 16), torch.randn(3, 16)
    assert torch.allclose(trainer.identity_cosine(a, b), F.cosine_similarity(a - mu, b - mu, dim=1))
    run = train(_cfg(tmp_path, faces_dir, total_steps=1, id_center=True, id_center_faces=4, eval_every=1,
                     sample_every=1), identity=small_identity)
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["id_center"] is True and config["id_mean_norm"] > 0


def test_init_from_starts_from_another_runs_weights(tmp_path, faces_dir, small_identity):
    from training.faceshifter import STATE_ARCH, train

    first = train(_cfg(tmp_path / "a", faces_dir, total_steps=2), identity=small_identity)
    # the first evaluation (step 0) of the continued run is the first run's generator: same metrics
    second = train(_cfg(tmp_path / "b", faces_dir, total_steps=1, seed=5, init_from=str(first)),
                   identity=small_identity)
    fresh = train(_cfg(tmp_path / "c", faces_dir, total_steps=1, seed=5), identity=small_identity)
    with open(first / "metrics.csv") as f:
        end_a = list(csv.DictReader(f))[-1]
    with open(second / "metrics.csv") as f:
        start_b = list(csv.DictReader(f))[0]
    with open(fresh / "metrics.csv") as f:
        start_c = list(csv.DictReader(f))[0]
    assert start_b["val_rec_psnr"] == end_a["val_rec_psnr"] != start_c["val_rec_psnr"]
    assert load_checkpoint(second / "last.pt", arch=STATE_ARCH)["meta"]["step"] == 1  # a fresh schedule
    with pytest.raises(FileNotFoundError, match="--init-from"):
        train(_cfg(tmp_path / "d", faces_dir, init_from=str(tmp_path / "nothing")), identity=small_identity)
    with pytest.raises(CheckpointError, match="do not fit"):
        train(_cfg(tmp_path / "e", faces_dir, width=0.125, init_from=str(first)), identity=small_identity)
    # G alone from a weights file (G.pt, like the shipped weights): the same generator, D fresh
    third = train(_cfg(tmp_path / "f", faces_dir, total_steps=1, seed=5, init_from=str(first / "G.pt")),
                  identity=small_identity)
    with open(third / "metrics.csv") as f:
        assert list(csv.DictReader(f))[0]["val_rec_psnr"] == end_a["val_rec_psnr"]
    with pytest.raises(CheckpointError, match="do not fit"):
        train(_cfg(tmp_path / "g", faces_dir, width=0.125, init_from=str(first / "G.pt")), identity=small_identity)
    from faceforge.checkpoints import save_checkpoint
    other = save_checkpoint(tmp_path / "emotion.pt", create_model("mini_xception"), "mini_xception", {}, {})
    with pytest.raises(CheckpointError):
        train(_cfg(tmp_path / "h", faces_dir, init_from=str(other)), identity=small_identity)


def test_one_step_with_dlibs_identity_network(tmp_path, faces_dir):
    """The real identity network: dlib's 128-D ResNet on the 150 px chip of each 64 px face."""
    from faceforge.errors import FaceforgeError
    from training.faceshifter import load_identity, train

    try:
        identity = load_identity()
    except FaceforgeError as exc:  # face-recognition-models not installed
        pytest.skip(f"dlib's ResNet weights unavailable: {exc}")
    assert identity.dim == 128
    run = train(_cfg(tmp_path, faces_dir, total_steps=1, batch_size=2, n_val=2, eval_every=1, sample_every=1),
                identity=identity)
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert 0 < float(rows[-1]["id"]) < 2
    assert load_checkpoint(run / "G.pt", arch="faceshifter")["config"]["id_dim"] == 128


@pytest.mark.data
def test_same_face_threshold_separates_copies_from_other_photos_on_the_shared_photos(data_dir):
    """The calibration behind SAME_FACE_MAD, rechecked: copies of one photo (another size of it, a photo and the
    group photo it was cut from, a JPEG copy) fall below the threshold; other photos, of the same person or of
    others, stay well above it."""
    import cv2

    from faceforge.faces.align import align_face
    from faceforge.faces.detect import FaceDetector
    from faceforge.faceshifter import SAME_FACE_MAD, aligned_difference
    from faceforge.imaging import load_image

    photos = data_dir / "photos"
    detector = FaceDetector()

    def crops(rgb):
        return [align_face(rgb, f, 64, template="utkface").image for f in detector.detect(rgb)]

    def photo(name):
        return load_image(photos / name)

    obama = photo("portraits/obama.jpg")
    jpeg = np.ascontiguousarray(
        cv2.imdecode(cv2.imencode(".jpg", obama[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])[1], 1)[..., ::-1])
    (o,) = crops(obama)
    copies = {"obama-1080p": crops(photo("portraits/obama-1080p.jpg"))[0], "JPEG 80": crops(jpeg)[0],
              "obama-240p": crops(photo("portraits/obama-240p.jpg"))[0]}
    diffs = {k: aligned_difference(o, c) for k, c in copies.items()}
    biden, pair = crops(photo("portraits/biden.jpg"))[0], crops(photo("groups/two_people.jpg"))
    in_pair = sorted(aligned_difference(biden, c) for c in pair)
    others = [aligned_difference(o, c) for c in crops(photo("groups/obama_and_biden.jpg"))]  # Obama too, another photo
    others += [aligned_difference(o, c) for c in crops(photo("portraits/rose_leslie.jpg"))]
    assert max(diffs.values()) < SAME_FACE_MAD / 2, diffs
    assert len(pair) == 2 and in_pair[0] < SAME_FACE_MAD / 2 < SAME_FACE_MAD * 1.5 < in_pair[1], in_pair
    assert min(others) > SAME_FACE_MAD * 1.5, others


class _LookupG(torch.nn.Module):
    """A stand-in generator for :func:`training.faceshifter.evaluate`: returns the held-out face whose embedding
    is the given identity (``mode="source"``, a perfect swap) or the target itself (``mode="target"``)."""

    def __init__(self, faces, identity, mode):
        super().__init__()
        from faceforge.data.tensors import batch_to_tensor

        self.x = batch_to_tensor(faces)
        self.e = identity(self.x)
        self.mode = mode

    def forward(self, xt, e):
        if self.mode == "target":
            return xt, None
        return self.x[(torch.cdist(e, self.e)).argmin(1)], None


@pytest.mark.parametrize("mode, top1", [("source", 1.0), ("target", 0.0)])
def test_evaluate_reports_id_retrieval_among_the_held_out_sources(faces_dir, small_identity, mode, top1):
    from faceforge.data.images import list_images, load_faces
    from training.faceshifter import evaluate

    faces = load_faces(list_images(faces_dir)[:6], 64)
    with torch.no_grad():
        G = _LookupG(faces, small_identity, mode)
    metrics, images = evaluate(G, small_identity, faces, torch.device("cpu"), batch=4)
    assert metrics["val_id_top1"] == top1, metrics
    assert images["swap"].shape == (6, 3, 64, 64)
    if mode == "source":
        assert metrics["val_id_src"] > 0.999 and metrics["val_id_gap"] > 0
    with pytest.raises(ValueError, match="judge must be None or 'faceres'"):
        evaluate(G, small_identity, faces, torch.device("cpu"), judge="arcface")


def test_evaluate_faceres_judge_retrieves_a_perfect_swaps_source(faces_dir, small_identity):
    from faceforge.data.images import list_images, load_faces
    from faceforge.models import tfjs_judges as mf
    from training.faceshifter import evaluate

    if not mf.faceres_is_available():
        pytest.skip("FaceRes TF.js model not installed (npm install @vladmandic/human@3.3.6, or FACEFORGE_FACERES)")
    faces = load_faces(list_images(faces_dir)[:6], 64)
    with torch.no_grad():
        perfect, copy = _LookupG(faces, small_identity, "source"), _LookupG(faces, small_identity, "target")
    good = evaluate(perfect, small_identity, faces, torch.device("cpu"), judge="faceres")[0]
    bad = evaluate(copy, small_identity, faces, torch.device("cpu"), judge="faceres")[0]
    assert good["val_fr_top1"] == 1.0 and good["val_fr_cos_src"] > 0.999, good
    assert bad["val_fr_top1"] < 0.5 and bad["val_fr_cos_src"] < good["val_fr_cos_src"], bad
