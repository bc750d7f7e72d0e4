"""GPEN (faceforge/models/gpen.py): architecture, the published-layout converter, the degradation model
(faceforge/degrade.py) and the trainer (training/gpen.py) on tiny synthetic data."""

from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from faceforge.checkpoints import load_checkpoint
from faceforge.degrade import (SEVERITIES, TRAINING, DegradationConfig, apply_degradation, degrade_fixed, degrade_pair,
                               gaussian_kernel, sample_params)
from faceforge.errors import CheckpointError
from faceforge.imaging import save_image
from faceforge.models import create_model
from faceforge.models.gpen import GPEN, GPENStyledConv, convert_gpen_state_dict, gpen_channels, load_gpen

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BLUR = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64


def reference_layout(size: int = 16, style_dim: int = 32, n_mlp: int = 8, channel_multiplier: float = 1,
                     narrow: float = 1 / 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """A GPEN ``FullGenerator`` state dict built by hand from the published key names and shapes
    (yangxy/GPEN face_model/gpen_model.py), random values; no reference code involved."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g)

    def ch(res):
        return int(512 * narrow) if res <= 32 else int((16384 // res) * channel_multiplier * narrow)

    sd: dict[str, torch.Tensor] = {}
    for i in range(1, n_mlp + 1):
        sd[f"generator.style.{i}.weight"] = r(style_dim, style_dim) * 100  # stored / lr_mul (0.01)
        sd[f"generator.style.{i}.bias"] = r(style_dim) * 0.1

    def styled(p, cin, cout, up=False):
        sd[p + ".conv.weight"] = r(1, cout, cin, 3, 3)
        sd[p + ".conv.modulation.weight"] = r(cin, style_dim)
        sd[p + ".conv.modulation.bias"] = torch.ones(cin)
        sd[p + ".noise.weight"] = torch.full((1,), 0.3)
        sd[p + ".activate.bias"] = r(2 * cout) * 0.1
        if up:
            sd[p + ".conv.blur.kernel"] = BLUR * 4

    def torgb(p, cin, up):
        sd[p + ".conv.weight"] = r(1, 3, cin, 1, 1)
        sd[p + ".conv.modulation.weight"] = r(cin, style_dim)
        sd[p + ".conv.modulation.bias"] = torch.ones(cin)
        sd[p + ".bias"] = r(1, 3, 1, 1) * 0.1
        if up:
            sd[p + ".upsample.kernel"] = BLUR * 4

    sd["generator.input.input"] = r(1, ch(4), 4, 4)
    styled("generator.conv1", ch(4), ch(4))
    torgb("generator.to_rgb1", 2 * ch(4), False)
    log2 = int(math.log2(size))
    cin = ch(4)
    for j, i in enumerate(range(3, log2 + 1)):
        cout = ch(2 ** i)
        styled(f"generator.convs.{2 * j}", 2 * cin, cout, up=True)
        styled(f"generator.convs.{2 * j + 1}", 2 * cout, cout)
        torgb(f"generator.to_rgbs.{j}", 2 * cout, True)
        cin = cout
    sd["ecd0.0.0.weight"] = r(ch(size), 3, 1, 1)
    sd["ecd0.0.1.bias"] = r(ch(size)) * 0.1
    cin = ch(size)
    for k, i in enumerate(range(log2, 2, -1), start=1):
        cout = ch(2 ** (i - 1))
        sd[f"ecd{k}.0.0.kernel"] = BLUR.clone()
        sd[f"ecd{k}.0.1.weight"] = r(cout, cin, 3, 3)
        sd[f"ecd{k}.0.2.bias"] = r(cout) * 0.1
        cin = cout
    sd["final_linear.0.weight"] = r(style_dim, ch(4) * 16)
    sd["final_linear.0.bias"] = r(style_dim) * 0.1
    return sd


# --------------------------------------------------------------------------------------------------
# Architecture


@pytest.mark.parametrize("size", [16, 32])
def test_forward_shapes_and_concatenated_noise(size):
    g = GPEN(size=size, style_dim=32, narrow=1 / 32).eval()
    x = torch.rand(2, 3, size, size) * 2 - 1
    y, w = g(x, return_latent=True)
    assert y.shape == (2, 3, size, size) and w.shape == (2, 32) and torch.isfinite(y).all()
    # decoder convolutions read twice the channels (conv output + encoder feature, concatenated)
    c = g.channels
    assert g.decoder.b8.conv0.weight.shape == (c[8], 2 * c[4], 3, 3)
    assert g.decoder.b8.conv1.weight.shape == (c[8], 2 * c[8], 3, 3)
    assert g.decoder.b8.conv1.bias.shape == (2 * c[8],)
    assert g.decoder.b4.torgb.weight.shape == (3, 2 * c[4], 1, 1)
    # encoder: 1x1 at R, then stride-2 convs down to 4x4, final linear 16 C4 -> style_dim
    _, feats = g.encode(x)
    assert sorted(feats) == [2 ** i for i in range(2, int(math.log2(size)) + 1)]
    assert all(f.shape == (2, c[r], r, r) for r, f in feats.items())
    assert g.final_linear.weight.shape == (32, 16 * c[4])


def test_encoder_features_reach_the_decoder_only_through_noise_strength():
    torch.manual_seed(0)
    g = GPEN(size=16, style_dim=16, narrow=1 / 32).eval()
    latent, feats = g.encode(torch.rand(1, 3, 16, 16))
    w = g.mapping(latent, update_w_avg=False)[:, 0]
    other = {r: torch.randn_like(f) for r, f in feats.items()}
    with torch.no_grad():  # noise strengths start at 0: the features are switched off
        assert torch.equal(g.decoder(w, feats), g.decoder(w, other))
        for m in g.modules():
            if isinstance(m, GPENStyledConv):
                m.noise_strength.fill_(0.5)
        assert not torch.allclose(g.decoder(w, feats), g.decoder(w, other))


def test_residual_option_starts_as_the_identity_and_round_trips(tmp_path):
    """residual=True (faceforge's option): an untrained network returns its input exactly; the learned gain
    scales the decoder's contribution; the option survives a checkpoint round trip through the restorer's
    loader, and a plain GPEN has no such parameter (published layouts unchanged)."""
    from faceforge.checkpoints import save_checkpoint
    from faceforge.restore import load_restorer

    torch.manual_seed(0)
    config = dict(size=16, style_dim=16, narrow=1 / 32, residual=True)
    g = GPEN(**config).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(g(x), x)
        g.residual_gain.fill_(0.5)
        plain = GPEN(**{**config, "residual": False}).eval()
        plain.load_state_dict({k: v for k, v in g.state_dict().items() if k != "residual_gain"})
        assert torch.allclose(g(x), x + 0.5 * plain(x), atol=1e-6)
    assert "residual_gain" not in plain.state_dict()
    save_checkpoint(tmp_path / "g.pt", g, "gpen", config)
    loaded, _, _ = load_restorer(tmp_path / "g.pt")
    with torch.no_grad():
        assert loaded.residual and torch.allclose(loaded(x), g(x), atol=1e-6)


def test_styled_conv_matches_the_reference_formula():
    """Modulate (scale * weight * style), demodulate, convolve, concatenate noise * weight, bias + lrelu * sqrt 2
    (the reference's ModulatedConv2d + NoiseInjection(isconcat) + FusedLeakyReLU), written out here."""
    torch.manual_seed(1)
    layer = GPENStyledConv(6, 4, 8)
    with torch.no_grad():
        layer.noise_strength.fill_(0.7)
        layer.bias.normal_()
    x, w, feat = torch.randn(2, 6, 5, 5), torch.randn(2, 8), torch.randn(2, 4, 5, 5)
    style = layer.affine(w)
    outs = []
    for n in range(2):
        wt = layer.weight / math.sqrt(6 * 9) * style[n].view(1, 6, 1, 1)
        wt = wt * torch.rsqrt(wt.square().sum([1, 2, 3]) + 1e-8).view(4, 1, 1, 1)
        outs.append(F.conv2d(x[n:n + 1], wt, padding=1))
    ref = torch.cat([torch.cat(outs), 0.7 * feat], 1)
    ref = F.leaky_relu(ref + layer.bias.view(1, -1, 1, 1), 0.2) * math.sqrt(2)
    assert torch.allclose(layer(x, w, feat), ref, atol=1e-4)


def test_fused_and_unfused_modulation_agree():
    torch.manual_seed(2)
    a = GPEN(size=16, style_dim=16, narrow=1 / 32).eval()
    for m in a.modules():
        if isinstance(m, GPENStyledConv):
            m.noise_strength.data.fill_(0.2)
    b = GPEN(size=16, style_dim=16, narrow=1 / 32, fused_modconv=False).eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    assert torch.allclose(a(x), b(x), atol=1e-5)


@pytest.mark.parametrize("bad", [8, 24, 0, "64"])
def test_bad_size_is_refused(bad):
    with pytest.raises(ValueError, match="power of two >= 16"):
        GPEN(size=bad)


def test_published_configurations_have_the_published_sizes():
    with torch.device("meta"):
        big = GPEN(size=512, style_dim=512, channel_multiplier=2, narrow=1)
        small = GPEN(size=256, style_dim=512, channel_multiplier=1, narrow=0.5)
    assert round(sum(p.numel() for p in big.parameters()) / 1e6, 1) == 71.0    # GPEN-BFR-512: ~71 M
    assert round(sum(p.numel() for p in small.parameters()) / 1e6, 1) == 18.9  # GPEN-BFR-256: ~19 M
    assert gpen_channels(64, 2, 1) == 512 and gpen_channels(256, 1, 0.5) == 32 and gpen_channels(16, 1, 0.5) == 256


def test_wrong_input_shape_is_refused():
    with pytest.raises(ValueError, match=r"\(N, 3, 16, 16\)"):
        GPEN(size=16, style_dim=8, narrow=1 / 32)(torch.zeros(1, 3, 32, 32))


# --------------------------------------------------------------------------------------------------
# Converter


@pytest.mark.parametrize("size,mult,narrow", [(16, 1, 1 / 32), (64, 2, 1 / 32)])
def test_converter_round_trip(tmp_path, size, mult, narrow):
    sd = reference_layout(size, 32, 8, mult, narrow)
    bare = tmp_path / "GPEN-BFR-tiny.pth"
    torch.save(sd, bare)
    training = tmp_path / "000100.pth"
    torch.save({"g": sd, "d": {"convs.0.0.weight": torch.zeros(1)}, "g_ema": sd, "g_optim": {}, "d_optim": {}},
               training)
    for path in (bare, training):
        ckpt = load_gpen(path)
        assert ckpt["config"] == {"size": size, "style_dim": 32, "n_mlp": 8, "channel_multiplier": mult,
                                  "narrow": narrow}
        model = create_model("gpen", weights=path)
        y = model(torch.rand(2, 3, size, size) * 2 - 1)
        assert y.shape == (2, 3, size, size) and torch.isfinite(y).all()
    state = model.state_dict()
    # the published tensors land where the table says (every source tensor is consumed, or it raises)
    assert torch.equal(state["mapping.fc0.weight"], sd["generator.style.1.weight"])
    assert torch.equal(state["decoder.b4.const"], sd["generator.input.input"][0])
    assert torch.equal(state["decoder.b8.conv0.weight"], sd["generator.convs.0.conv.weight"][0])
    assert torch.equal(state["decoder.b8.conv1.affine.bias"], sd["generator.convs.1.conv.modulation.bias"])
    assert float(state["decoder.b4.conv1.noise_strength"]) == pytest.approx(0.3)
    assert torch.equal(state[f"decoder.b{size}.torgb.bias"], sd[f"generator.to_rgbs.{int(math.log2(size)) - 3}.bias"].view(3))
    assert torch.equal(state["ecd1.weight"], sd["ecd1.0.1.weight"])
    assert torch.equal(state["final_linear.bias"], sd["final_linear.0.bias"])
    # a module. prefix (DataParallel) is accepted too
    assert convert_gpen_state_dict({f"module.{k}": v for k, v in sd.items()})["config"]["size"] == size


def upfirdn2d_literal(x, f, up=1, down=1, pad=(0, 0), gain=1.0):
    """upfirdn2d by its definition: zero-insert by ``up``, pad, true convolution with ``f * gain``, subsample."""
    n, c, h, w = x.shape
    if up > 1:
        z = torch.zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    k = (f * gain).flip([0, 1])
    return F.conv2d(x, k.expand(c, 1, *k.shape), groups=c)[:, :, ::down, ::down]


def gpen_reference_forward(sd, img):
    """An independent forward pass over the *published key names*, following the reference FullGenerator's
    operations: ConvLayer (blur pad (2, 2) + EqualConv2d stride 2, FusedLeakyReLU), EqualLinear (scale
    lr_mul / sqrt(fan_in), fused lrelu), PixelNorm + 8 EqualLinear (lr_mul 0.01), modulated convs with the
    scale on the weight, transposed-conv upsampling + blur, NoiseInjection(isconcat) of the encoder maps in
    the order noise[1:] of [f4, f4, f8, f8, ...], skip ToRGB."""
    lrelu = lambda x, b: F.leaky_relu(x + b.reshape(1, -1, *([1] * (x.ndim - 2))), 0.2) * math.sqrt(2)  # noqa: E731
    feats, x = [], img
    w0 = sd["ecd0.0.0.weight"]
    x = lrelu(F.conv2d(x, w0 / math.sqrt(w0[0].numel())), sd["ecd0.0.1.bias"])
    feats.append(x)
    k = 1
    while f"ecd{k}.0.1.weight" in sd:
        w = sd[f"ecd{k}.0.1.weight"]
        x = upfirdn2d_literal(x, sd[f"ecd{k}.0.0.kernel"], pad=(2, 2))
        x = lrelu(F.conv2d(x, w / math.sqrt(w[0].numel()), stride=2), sd[f"ecd{k}.0.2.bias"])
        feats.append(x)
        k += 1
    fl = sd["final_linear.0.weight"]
    z = lrelu(F.linear(x.flatten(1), fl / math.sqrt(fl.shape[1])), sd["final_linear.0.bias"])
    z = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)
    i = 1
    while f"generator.style.{i}.weight" in sd:
        w = sd[f"generator.style.{i}.weight"]
        z = lrelu(F.linear(z, w * (0.01 / math.sqrt(w.shape[1]))), sd[f"generator.style.{i}.bias"] * 0.01)
        i += 1
    noise = [f for f in feats for _ in range(2)][::-1][1:]  # f4, f8, f8, f16, f16, ...

    def modconv(name, x, demod=True, up=False):
        weight = sd[f"{name}.conv.weight"][0]
        cin, ks = weight.shape[1], weight.shape[-1]
        m = sd[f"{name}.conv.modulation.weight"]
        style = F.linear(z, m / math.sqrt(m.shape[1]), sd[f"{name}.conv.modulation.bias"])
        outs = []
        for n in range(x.shape[0]):
            wt = weight / math.sqrt(cin * ks * ks) * style[n].reshape(1, -1, 1, 1)
            if demod:
                wt = wt * torch.rsqrt(wt.square().sum([1, 2, 3], keepdim=True) + 1e-8)
            if up:
                y = F.conv_transpose2d(x[n:n + 1], wt.transpose(0, 1), stride=2)
                y = upfirdn2d_literal(y, sd[f"{name}.conv.blur.kernel"], pad=(1, 1))
            else:
                y = F.conv2d(x[n:n + 1], wt, padding=ks // 2)
            outs.append(y)
        return torch.cat(outs)

    def styled(name, x, nz, up=False):
        x = torch.cat([modconv(name, x, up=up), sd[f"{name}.noise.weight"] * nz], 1)
        return lrelu(x, sd[f"{name}.activate.bias"])

    def to_rgb(name, x, skip=None):
        out = modconv(name, x, demod=False) + sd[f"{name}.bias"]
        if skip is not None:
            out = out + upfirdn2d_literal(skip, sd[f"{name}.upsample.kernel"], up=2, pad=(2, 1))
        return out

    x = sd["generator.input.input"].repeat(img.shape[0], 1, 1, 1)
    x = styled("generator.conv1", x, noise[0])
    out = to_rgb("generator.to_rgb1", x)
    j = 0
    while f"generator.to_rgbs.{j}.conv.weight" in sd:
        x = styled(f"generator.convs.{2 * j}", x, noise[1 + 2 * j], up=True)
        x = styled(f"generator.convs.{2 * j + 1}", x, noise[2 + 2 * j])
        out = to_rgb(f"generator.to_rgbs.{j}", x, out)
        j += 1
    return out


@pytest.mark.parametrize("size,mult", [(16, 1), (64, 2)])
def test_converted_model_reproduces_the_reference_computation(size, mult):
    sd = reference_layout(size, 32, 8, mult, 1 / 32, seed=3)
    model = GPEN(**convert_gpen_state_dict(sd)["config"])
    model.load_state_dict(convert_gpen_state_dict(sd)["state_dict"])
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        ours, ref = model.eval()(x), gpen_reference_forward(sd, x)
    assert ref.shape == ours.shape and ref.abs().mean() > 0.05
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_converter_errors_name_what_was_expected(tmp_path):
    sd = reference_layout()
    with pytest.raises(CheckpointError, match="generator.style"):
        convert_gpen_state_dict({"conv.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="not part of a GPEN-16"):
        convert_gpen_state_dict({**sd, "generator.noises.noise_0": torch.zeros(1, 1, 4, 4)})
    with pytest.raises(CheckpointError, match="missing tensor 'ecd2.0.1.weight'"):
        convert_gpen_state_dict({k: v for k, v in sd.items() if k != "ecd2.0.1.weight"})
    with pytest.raises(CheckpointError, match=r"\[1, 3, 3, 1\]"):
        convert_gpen_state_dict({**sd, "ecd1.0.0.kernel": torch.ones(4, 4) / 16})
    with pytest.raises(CheckpointError, match="do not fit|size mismatch"):
        convert_gpen_state_dict({**sd, "final_linear.0.weight": torch.zeros(32, 7)})
    bad = tmp_path / "stylegan.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(2, 2)}}, bad)
    with pytest.raises(CheckpointError, match="GPEN FullGenerator state dict"):
        load_gpen(bad)
    with pytest.raises(FileNotFoundError):
        load_gpen(tmp_path / "absent.pth")


# --------------------------------------------------------------------------------------------------
# Degradation


def _face(size: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), rng.integers(40, 200, 3), np.uint8)
    cv2.ellipse(img, (size // 2, size // 2), (size // 3, size // 2 - 4), 0, 0, 360, (200, 160, 140), -1)
    for dx in (-1, 1):
        cv2.circle(img, (size // 2 + dx * size // 6, size // 2 - size // 8), size // 16, (20, 20, 20), -1)
    cv2.line(img, (size // 3, 3 * size // 4), (2 * size // 3, 3 * size // 4), (120, 40, 40), 2)
    noise = rng.integers(-10, 11, img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def test_fixed_severities_are_reproducible_and_ordered():
    faces = [_face(64, s) for s in range(6)]
    psnrs = {}
    for sev in SEVERITIES:
        vals = []
        for i, x in enumerate(faces):
            a, pa = degrade_fixed(x, sev, seed=0, index=i)
            b, pb = degrade_fixed(x, sev, seed=0, index=i)
            assert np.array_equal(a, b) and pa == pb and a.shape == x.shape and a.dtype == np.uint8
            cfg = SEVERITIES[sev]
            assert cfg.downsample[0] <= pa.downsample <= cfg.downsample[1] and cfg.jpeg[0] <= pa.jpeg <= cfg.jpeg[1]
            assert not pa.grayscale
            vals.append(cv2.PSNR(x, a))
        psnrs[sev] = np.mean(vals)
    assert psnrs["mild"] > psnrs["moderate"] > psnrs["severe"]
    assert not np.array_equal(degrade_fixed(faces[0], "moderate", 0, 0)[0], degrade_fixed(faces[0], "moderate", 0, 1)[0])
    with pytest.raises(ValueError, match="severity"):
        degrade_fixed(faces[0], "extreme")


def test_training_pairs_cover_the_ranges_and_grayscale_applies_to_both():
    rng = np.random.default_rng(0)
    x = _face(64)
    params = [sample_params(rng, 64, TRAINING) for _ in range(400)]
    s = np.array([p.downsample for p in params])
    q = np.array([p.jpeg for p in params])
    assert s.min() < 1.5 and s.max() > 7 and q.min() < 35 and q.max() > 95
    assert 0.03 < np.mean([p.grayscale for p in params]) < 0.2
    assert 0.3 < np.mean([p.sigma_x != p.sigma_y for p in params]) < 0.7
    gray = DegradationConfig(gray_prob=1.0)
    target, degraded, p = degrade_pair(x, np.random.default_rng(1), gray)
    assert p.grayscale
    for img in (target, degraded):
        assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])


def test_gaussian_kernel_is_normalised_and_oriented():
    k = gaussian_kernel(3.0, 0.5, 0.0)
    assert k.shape == (19, 19) and abs(float(k.sum()) - 1) < 1e-5
    assert k[9, :].sum() > k[:, 9].sum()  # wide along x when theta = 0
    kr = gaussian_kernel(3.0, 0.5, math.pi / 2)
    assert np.allclose(kr, k.T, atol=1e-6)
    with pytest.raises(ValueError):
        gaussian_kernel(0.0, 1.0)
    with pytest.raises(ValueError, match="uint8"):
        apply_degradation(np.zeros((8, 8, 3), np.float32), sample_params(np.random.default_rng(0), 8), None)


# --------------------------------------------------------------------------------------------------
# Trainer


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faces")
    for i in range(20):
        save_image(folder / f"{i:03d}.png", _face(24, i))  # the loader resizes them to 16
    return folder


def _cfg(tmp_path, data, **kw):
    from training.gpen import GPENTrainConfig

    base = dict(data=str(data), size=16, style_dim=16, narrow=1 / 32, batch_size=4, total_steps=4, runs_dir=str(tmp_path),
                device="cpu", progress=False, log_every=1, eval_every=2, sample_every=2, save_every=0, n_val=4,
                lambda_id=0.0, lambda_feat=0.0)
    base.update(kw)
    return GPENTrainConfig(**base)


@pytest.mark.slow
def test_train_smoke_and_exact_resume(tmp_path, faces_dir):
    from training.gpen import STATE_ARCH, train

    straight = train(_cfg(tmp_path / "a", faces_dir))
    stopped = train(_cfg(tmp_path / "b", faces_dir, stop_after_steps=2))
    assert load_checkpoint(stopped / "last.pt", arch=STATE_ARCH)["meta"]["step"] == 2
    resumed = train(_cfg(tmp_path / "other", "/nonexistent", resume=str(stopped)))  # stored config wins
    assert resumed == stopped
    a = load_checkpoint(straight / "G_ema.pt", arch="gpen")
    b = load_checkpoint(resumed / "G_ema.pt", arch="gpen")
    assert a["meta"]["step"] == b["meta"]["step"] == 4 and a["meta"]["face_template"] == "utkface"
    for k, v in a["state_dict"].items():
        assert torch.allclose(v, b["state_dict"][k], atol=1e-6), k
    with open(resumed / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3, 4]
    assert all(float(r["val_psnr"]) > 0 for r in rows if r["val_psnr"])
    config = json.loads((straight / "config.json").read_text())
    assert "off" in config["identity"] and config["train_images"] + config["held_out_images"] == 20
    assert (straight / "samples" / "step_0000004.png").is_file()
    model = create_model("gpen", weights=straight / "G_ema.pt")
    assert model(torch.zeros(1, 3, 16, 16)).shape == (1, 3, 16, 16)


def test_init_from_a_run_or_a_weights_file(tmp_path, faces_dir):
    """--init-from starts a new run (step 0, new loss weights) from an earlier run's networks: from a run
    folder G, G_ema and D; from a G_ema.pt file G and G_ema. A file of another size is refused by name."""
    from faceforge.errors import CheckpointError
    from training.gpen import STATE_ARCH, GPENTrainer, init_weights, train
    from faceforge.models.gpen import GPEN
    from faceforge.models.stylegan2 import StyleGAN2Discriminator

    first = train(_cfg(tmp_path / "a", faces_dir, total_steps=2, eval_every=2, sample_every=2))
    old = load_checkpoint(first / "last.pt", arch=STATE_ARCH)["state_dict"]
    second = train(_cfg(tmp_path / "b", faces_dir, total_steps=1, eval_every=1, sample_every=1, lambda_adv=0.0,
                        init_from=str(first)))
    config = json.loads((second / "config.json").read_text())
    assert config["config"]["lambda_adv"] == 0.0 and "G, G_ema and D" in config["init"]
    with open(second / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [0, 1]
    first_psnr = [float(r["val_psnr"]) for r in csv.DictReader(open(first / "metrics.csv")) if r["val_psnr"]][-1]
    assert float(rows[0]["val_psnr"]) == pytest.approx(first_psnr, abs=1e-3)  # step 0 = the old G_ema

    cfg = _cfg(tmp_path / "c", faces_dir)
    trainer = GPENTrainer(GPEN(**cfg.generator_config()), StyleGAN2Discriminator(**cfg.discriminator_config()),
                          cfg, torch.device("cpu"))
    d_before = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    note = init_weights(trainer, first / "G_ema.pt")
    assert "D fresh" in note and trainer.step == 0
    for k, v in trainer.G_ema.state_dict().items():
        assert torch.equal(v, old[f"G_ema.{k}"]) and torch.equal(trainer.G.state_dict()[k], v), k
    assert all(torch.equal(v, d_before[k]) for k, v in trainer.D.state_dict().items())

    wider = _cfg(tmp_path / "d", faces_dir, narrow=1 / 16)
    trainer = GPENTrainer(GPEN(**wider.generator_config()), StyleGAN2Discriminator(**wider.discriminator_config()),
                          wider, torch.device("cpu"))
    with pytest.raises(CheckpointError, match="do not fit"):
        init_weights(trainer, first)
    with pytest.raises(FileNotFoundError, match="init-from"):
        init_weights(trainer, tmp_path / "nothing")


def test_without_the_adversarial_term_d_is_not_run(tmp_path, faces_dir, monkeypatch):
    """lambda_adv = 0 trains G on L1 alone: D keeps its weights and is never called; with lambda_adv > 0 it
    is trained (the same step moves its weights)."""
    from faceforge.models.gpen import GPEN
    from faceforge.models.stylegan2 import StyleGAN2Discriminator
    from training.gpen import GPENTrainer

    torch.manual_seed(0)
    hq = torch.rand(4, 3, 16, 16) * 2 - 1
    lq = hq + 0.1 * torch.randn_like(hq)
    for lambda_adv in (0.0, 0.1):
        cfg = _cfg(tmp_path, faces_dir, lambda_adv=lambda_adv)
        trainer = GPENTrainer(GPEN(**cfg.generator_config()), StyleGAN2Discriminator(**cfg.discriminator_config()),
                              cfg, torch.device("cpu"))
        d_before = {k: v.clone() for k, v in trainer.D.state_dict().items()}
        g_before = {k: v.clone() for k, v in trainer.G.state_dict().items()}
        calls = []
        trainer.D.register_forward_hook(lambda *_: calls.append(1))
        out = trainer.train_step(lq, hq)
        d_moved = any(not torch.equal(v, d_before[k]) for k, v in trainer.D.state_dict().items())
        g_moved = any(not torch.equal(v, g_before[k]) for k, v in trainer.G.state_dict().items())
        assert g_moved and out["L1"] > 0
        if lambda_adv == 0:
            assert not d_moved and not calls and "D_loss" not in out and "G_adv" not in out
            assert out["G_loss"] == pytest.approx(out["L1"])
        else:
            assert d_moved and len(calls) >= 3 and {"D_loss", "G_adv"} <= out.keys()


def test_identity_hook_is_optional(monkeypatch):
    import training.gpen as tg

    monkeypatch.setattr(tg, "IDENTITY_MODULE", "faceforge.models.no_such_network")
    net, note = tg.load_identity_network()
    assert net is None and "skipped" in note and "no_such_network" in note


def test_identity_loss_with_a_stand_in_network():
    from training.gpen import IdentityLoss

    class Net(torch.nn.Module):  # [0, 255] RGB chips (N, 3, 150, 150) -> (N, 4), with features
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 5, stride=5)

        def features(self, x):
            return [self.conv(x / 255)]

        def forward(self, x):
            return self.features(x)[0].mean((2, 3))

    loss = IdentityLoss(Net().requires_grad_(False))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    same_id, same_feat = loss(x, x)
    assert float(same_id) == 0 and float(same_feat) == 0
    out = (x + 0.5 * torch.randn_like(x)).requires_grad_(True)
    ident, feat = loss(out, x)
    (ident + feat).backward()
    assert float(ident.detach()) > 0 and float(feat.detach()) > 0 and out.grad.abs().sum() > 0


def test_held_out_split_is_stable():
    from pathlib import Path

    from training.gpen import is_held_out, utkface_split

    names = [Path(f"{i}_0_0_2017.jpg.chip.jpg") for i in range(2000)]
    train, test = utkface_split(names)
    assert len(train) + len(test) == 2000 and 60 < len(test) < 140
    assert all(is_held_out(p.name) for p in test) and not any(is_held_out(p.name) for p in train)


def test_lowres_stage_is_the_fixed_degradation_before_upsampling():
    from faceforge.degrade import degrade_fixed_lowres

    x = _face(64, 3)
    for sev in SEVERITIES:
        full, p = degrade_fixed(x, sev, seed=2, index=7)
        small, q = degrade_fixed_lowres(x, sev, seed=2, index=7)
        assert p == q and small.shape[0] == round(64 / p.downsample)
        up = small if small.shape[:2] == (64, 64) else cv2.resize(small, (64, 64), interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(full, up)


@pytest.mark.slow
def test_train_with_the_identity_network(tmp_path):
    """Two steps at 32 px with the identity and face-feature terms of faceforge.models.dlib_resnet."""
    from training.gpen import load_identity_network, train

    net, note = load_identity_network()
    if net is None:
        pytest.skip(note)
    folder = tmp_path / "faces"
    for i in range(8):
        save_image(folder / f"{i:03d}.png", _face(40, i))
    run = train(_cfg(tmp_path, folder, size=32, total_steps=2, lambda_id=0.1, lambda_feat=0.1, eval_every=2))
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["ID"]) > 0 and float(rows[-1]["feat"]) > 0
    assert "dlib_resnet" in json.loads((run / "config.json").read_text())["identity"]
