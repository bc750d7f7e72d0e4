"""StyleGAN2: shapes, resampling vs. a literal upfirdn2d, style mixing, truncation, ONNX export and the
published-checkpoint converters (on checkpoints built here with the documented key layouts).

All configurations are tiny (8-32 px, <= 16 feature maps) so the file runs in seconds on one CPU core.
"""

from __future__ import annotations

import math
import os
import pickle
import sys
import types
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from faceforge.checkpoints import save_checkpoint
from faceforge.errors import CheckpointError
from faceforge.models import create_model, get_spec
from faceforge.models.stylegan2 import (StyleGAN2Discriminator, StyleGAN2Generator, fir_filter, make_filter,
                                        mix_styles, modulated_conv2d, upsample2d, downsample2d)
from faceforge.models.stylegan2_convert import (convert_nvlabs_stylegan2_ada, convert_rosinality_stylegan2,
                                                load_stylegan2)

torch.set_num_threads(1)
Z = 16  # latent size of the tiny configs


def tiny(resolution: int = 16, **kw) -> StyleGAN2Generator:
    """A tiny generator with non-trivial noise strengths and W average (zero-initialised otherwise)."""
    torch.manual_seed(resolution)
    g = StyleGAN2Generator(resolution, Z, Z, channel_base=8 * resolution, channel_max=16, **kw).eval()
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.2)
            elif name.endswith(".bias") and "affine" not in name:
                p.normal_(0, 0.1)
        g.mapping.w_avg.normal_()
    return g


def z_batch(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, Z, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------- model ---
@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_forward_shapes_and_finite(resolution):
    g = tiny(resolution)
    assert g.num_ws == 2 * int(math.log2(resolution)) - 2
    with torch.no_grad():
        img = g(z_batch(3))
        ws = g.mapping(z_batch(3), psi=0.7, cutoff=2)
        img2 = g.synthesis(ws)
    assert img.shape == img2.shape == (3, 3, resolution, resolution) and img.dtype == torch.float32
    assert ws.shape == (3, g.num_ws, Z)
    assert torch.isfinite(img).all() and img.std() > 1e-3
    d = StyleGAN2Discriminator(resolution, channel_base=8 * resolution, channel_max=16)
    logits = d(img)
    assert logits.shape == (3, 1) and torch.isfinite(logits).all()


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="power of two"):
        StyleGAN2Generator(24, Z, Z)
    with pytest.raises(ValueError, match="power of two"):
        StyleGAN2Generator(4, Z, Z)
    g = tiny(8)
    with pytest.raises(ValueError, match=r"z must be \(N, 16\)"):
        g(torch.randn(2, Z + 1))
    with pytest.raises(ValueError, match="ws must be"):
        g.synthesis(torch.randn(2, g.num_ws - 1, Z))
    with pytest.raises(ValueError, match="noise_mode"):
        g(z_batch(1), noise_mode="loud")
    with pytest.raises(ValueError, match="crossover"):
        mix_styles(torch.zeros(1, 4, Z), torch.zeros(1, 4, Z), 5)


def test_noise_modes():
    g = tiny(16)
    z = z_batch(2)
    with torch.no_grad():
        const_a, const_b = g(z, noise_mode="const"), g(z, noise_mode="const")
        rand_a, rand_b = g(z, noise_mode="random"), g(z, noise_mode="random")
        none = g(z, noise_mode="none")
    assert torch.equal(const_a, const_b)
    assert not torch.allclose(rand_a, rand_b) and not torch.allclose(none, const_a)


def upfirdn2d_reference(x, f, up=1, down=1, pad=(0, 0), gain=1.0):
    """Literal definition of upfirdn2d: zero-insert by ``up``, pad, convolve (true convolution) with
    ``f * gain``, keep every ``down``-th sample. Loops-free but op-for-op the textbook definition."""
    n, c, h, w = x.shape
    if up > 1:
        y = torch.zeros(n, c, h * up, w * up)
        y[:, :, ::up, ::up] = x
        x = y
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    k = (f * gain).flip([0, 1])  # convolution = correlation with the flipped kernel
    x = F.conv2d(x, k.expand(c, 1, *k.shape), groups=c)
    return x[:, :, ::down, ::down]


def test_resampling_matches_upfirdn2d_definition():
    x = torch.randn(2, 3, 8, 8)
    f = make_filter()
    assert f.sum().item() == pytest.approx(1.0) and f[0, 0].item() == pytest.approx(1 / 64)
    torch.testing.assert_close(upsample2d(x, f), upfirdn2d_reference(x, f, up=2, pad=(2, 1), gain=4.0))
    torch.testing.assert_close(downsample2d(x, f), upfirdn2d_reference(x, f, down=2, pad=(1, 1)))
    torch.testing.assert_close(fir_filter(x, f, (1, 1), gain=4.0), upfirdn2d_reference(x, f, pad=(1, 1), gain=4.0))


def test_modulated_conv_definition_and_fused_equivalence():
    torch.manual_seed(0)
    x, weight, styles = torch.randn(3, 4, 6, 6), torch.randn(5, 4, 3, 3), torch.rand(3, 4) + 0.5
    f = make_filter()
    for up in (False, True):
        fused = modulated_conv2d(x, weight, styles, up=up, resample_filter=f, fused=True)
        split = modulated_conv2d(x, weight, styles, up=up, resample_filter=f, fused=False)
        torch.testing.assert_close(fused, split, rtol=1e-4, atol=1e-5)
        # per-sample reference: scale input channels, demodulate each output filter, plain conv
        for i in range(3):
            w = weight * styles[i].reshape(1, 4, 1, 1)
            w = w / w.square().sum(dim=[1, 2, 3], keepdim=True).add(1e-8).sqrt()
            if up:  # transposed stride-2 conv == zero insertion + conv with the flipped kernel, then blur
                z = torch.zeros(1, 4, 12, 12)
                z[:, :, ::2, ::2] = x[i:i + 1]
                y = F.conv2d(F.pad(z, [2, 2, 2, 2]), w.flip([2, 3]))[:, :, :13, :13]
                y = upfirdn2d_reference(y, f, pad=(1, 1), gain=4.0)
            else:
                y = F.conv2d(x[i:i + 1], w, padding=1)
            torch.testing.assert_close(fused[i:i + 1], y, rtol=1e-4, atol=1e-5)
    assert fused.shape == (3, 5, 12, 12)


def test_style_mixing_uses_a_before_crossover_and_b_after():
    g = tiny(16)  # num_ws = 6: layers 0..5
    z_a, z_b = z_batch(1, 1), z_batch(1, 2)
    crossover = 3
    with torch.no_grad():
        ws_a, ws_b = g.mapping(z_a), g.mapping(z_b)
        mixed = mix_styles(ws_a, ws_b, crossover)
        assert torch.equal(mixed[:, :crossover], ws_a[:, :crossover])
        assert torch.equal(mixed[:, crossover:], ws_b[:, crossover:])
        base = g.synthesis(mixed)
        torch.testing.assert_close(g.style_mix(z_a, z_b, crossover), base)
        # perturbing A changes the image only through layers < crossover, B only through >= crossover
        for src, layers in ((ws_a, range(crossover)), (ws_b, range(crossover, g.num_ws))):
            for layer in range(g.num_ws):
                bumped = src.clone()
                bumped[:, layer] += 3.0
                args = (bumped, ws_b) if src is ws_a else (ws_a, bumped)
                changed = not torch.equal(g.synthesis(mix_styles(*args, crossover)), base)
                assert changed == (layer in layers), (layer, src is ws_a)
        # all of A / all of B at the extremes
        torch.testing.assert_close(g.synthesis(mix_styles(ws_a, ws_b, g.num_ws)), g(z_a))
        torch.testing.assert_close(g.synthesis(mix_styles(ws_a, ws_b, 0)), g(z_b))


def test_truncation_psi_zero_gives_average_and_one_is_identity():
    g = tiny(16)
    z = z_batch(4)
    with torch.no_grad():
        avg_img = g.synthesis(g.w_avg.reshape(1, 1, -1).repeat(4, g.num_ws, 1))
        torch.testing.assert_close(g(z, psi=0.0), avg_img)
        ws = g.mapping(z, psi=1.0)
        torch.testing.assert_close(g(z, psi=1.0), g.synthesis(ws))
        assert not torch.allclose(ws, g.w_avg.expand_as(ws))
        half = g.mapping(z, psi=0.5, cutoff=2)
        torch.testing.assert_close(half[:, :2], g.w_avg + 0.5 * (ws[:, :2] - g.w_avg))
        torch.testing.assert_close(half[:, 2:], ws[:, 2:])


def test_w_avg_is_an_ema_tracked_in_training_only():
    g = tiny(8)
    before = g.w_avg.clone()
    g.eval()
    g(z_batch(8))
    assert torch.equal(g.w_avg, before)
    g.train()
    z = z_batch(8)
    with torch.no_grad():
        mean_w = g.mapping(z, update_w_avg=False)[:, 0].mean(0)
    g.mapping(z)
    torch.testing.assert_close(g.w_avg, mean_w.lerp(before, 0.995))
    assert "mapping.w_avg" in g.state_dict()


def test_registry_spec_and_create_model():
    spec = get_spec("stylegan2")
    assert spec.task == "generate" and spec.default_card.name == "stylegan2.utkface32"
    if spec.default_weights_path.is_file():  # the shipped generator loads with its own (32 px) config
        g_default = create_model("stylegan2", weights="default")
        assert g_default.resolution == 32 and g_default.faceforge_meta["data"]
        with torch.no_grad():
            img = g_default(torch.randn(2, g_default.z_dim), psi=0.7)
        assert img.shape == (2, 3, 32, 32) and torch.isfinite(img).all()
    assert spec.input.kind == "latent" and spec.input.shape == (spec.kwargs["z_dim"],)
    d = spec.input.to_dict()
    assert "scale" not in d and "colour" not in d and d["layout"] == "NC"
    g = create_model("stylegan2", resolution=8, z_dim=Z, w_dim=Z, channel_base=64, channel_max=8)
    assert g(z_batch(1)).shape == (1, 3, 8, 8)
    assert get_spec("pix2pix_unet256").default_card is None  # a spec that ships none: a clear error
    with pytest.raises(CheckpointError, match="ships no default weights"):
        create_model("pix2pix_unet256", weights="default")


@pytest.mark.export
def test_onnx_export_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    g = tiny(8)
    z = z_batch(2)
    program = torch.onnx.export(g, (z,), dynamo=True, opset_version=18, input_names=["z"],
                                output_names=["image"], verbose=False)
    path = tmp_path / "stylegan2.onnx"
    program.save(str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    z2 = z_batch(2, seed=5)
    out = sess.run(None, {"z": z2.numpy()})[0]
    with torch.no_grad():
        ref = g(z2).numpy()
    assert out.shape == (2, 3, 8, 8)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------- rosinality converter ---
def rosinality_g_ema(resolution: int = 16, z_dim: int = Z, channels: int = 8, n_mlp: int = 3, seed: int = 0):
    """A g_ema state dict with rosinality/stylegan2-pytorch's key names and shapes, random values."""
    gen = torch.Generator().manual_seed(seed)
    rnd = lambda *shape, s=1.0: torch.randn(*shape, generator=gen) * s  # noqa: E731
    blur = make_filter() * 4
    sd = {}
    for i in range(1, n_mlp + 1):
        sd[f"style.{i}.weight"] = rnd(z_dim, z_dim, s=100.0)  # stored / lr_mul (0.01)
        sd[f"style.{i}.bias"] = rnd(z_dim)
    sd["input.input"] = rnd(1, channels, 4, 4)

    def styled(name, cin, cout, up):
        sd[f"{name}.conv.weight"] = rnd(1, cout, cin, 3, 3)
        sd[f"{name}.conv.modulation.weight"] = rnd(cin, z_dim)
        sd[f"{name}.conv.modulation.bias"] = 1 + rnd(cin, s=0.1)
        sd[f"{name}.noise.weight"] = rnd(1, s=0.3)
        sd[f"{name}.activate.bias"] = rnd(cout, s=0.1)
        if up:
            sd[f"{name}.conv.blur.kernel"] = blur.clone()

    def to_rgb(name, cin, up):
        sd[f"{name}.conv.weight"] = rnd(1, 3, cin, 1, 1)
        sd[f"{name}.conv.modulation.weight"] = rnd(cin, z_dim)
        sd[f"{name}.conv.modulation.bias"] = 1 + rnd(cin, s=0.1)
        sd[f"{name}.bias"] = rnd(1, 3, 1, 1, s=0.1)
        if up:
            sd[f"{name}.upsample.kernel"] = blur.clone()

    styled("conv1", channels, channels, False)
    to_rgb("to_rgb1", channels, False)
    log2 = int(math.log2(resolution))
    for j in range(log2 - 2):
        styled(f"convs.{2 * j}", channels, channels, True)
        styled(f"convs.{2 * j + 1}", channels, channels, False)
        to_rgb(f"to_rgbs.{j}", channels, True)
    for i in range(2 * (log2 - 2) + 1):
        r = 2 ** (2 + (i + 1) // 2)
        sd[f"noises.noise_{i}"] = rnd(1, 1, r, r)
    return sd


def rosinality_reference(sd, ws, latent_avg=None):
    """Independent forward pass over the *rosinality key names*, following that implementation's
    operations (EqualLinear scale 1/sqrt(fan_in) * lr_mul, fused lrelu, modulated conv with the scale
    on the weight, transposed-conv upsampling + blur, skip toRGB), on per-layer ws (N, num_ws, w)."""
    f = make_filter()

    def modconv(name, x, w, demod=True, up=False):
        weight = sd[f"{name}.conv.weight"][0]
        cin, k = weight.shape[1], weight.shape[-1]
        mod_w = sd[f"{name}.conv.modulation.weight"]
        style = F.linear(w, mod_w / math.sqrt(mod_w.shape[1]), sd[f"{name}.conv.modulation.bias"])
        outs = []
        for i in range(x.shape[0]):
            wt = weight / math.sqrt(cin * k * k) * style[i].reshape(1, -1, 1, 1)
            if demod:
                wt = wt * torch.rsqrt(wt.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
            if up:
                y = F.conv_transpose2d(x[i:i + 1], wt.transpose(0, 1), stride=2)
                y = upfirdn2d_reference(y, f, pad=(1, 1), gain=4.0)
            else:
                y = F.conv2d(x[i:i + 1], wt, padding=k // 2)
            outs.append(y)
        return torch.cat(outs)

    def styled(name, x, w, noise, up=False):
        x = modconv(name, x, w, up=up)
        x = x + sd[f"{name}.noise.weight"] * noise
        return F.leaky_relu(x + sd[f"{name}.activate.bias"].reshape(1, -1, 1, 1), 0.2) * math.sqrt(2)

    def to_rgb(name, x, w, skip=None):
        out = modconv(name, x, w, demod=False) + sd[f"{name}.bias"]
        if skip is not None:
            out = out + upfirdn2d_reference(skip, f, up=2, pad=(2, 1), gain=4.0)
        return out

    n = ws.shape[0]
    x = sd["input.input"].repeat(n, 1, 1, 1)
    x = styled("conv1", x, ws[:, 0], sd["noises.noise_0"])
    img = to_rgb("to_rgb1", x, ws[:, 1])
    j, i = 0, 1
    while f"to_rgbs.{j}.conv.weight" in sd:
        x = styled(f"convs.{2 * j}", x, ws[:, i], sd[f"noises.noise_{2 * j + 1}"], up=True)
        x = styled(f"convs.{2 * j + 1}", x, ws[:, i + 1], sd[f"noises.noise_{2 * j + 2}"])
        img = to_rgb(f"to_rgbs.{j}", x, ws[:, i + 2], img)
        j, i = j + 1, i + 2
    return img


def rosinality_mapping(sd, z):
    x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
    i = 1
    while f"style.{i}.weight" in sd:
        w = sd[f"style.{i}.weight"]
        x = F.leaky_relu(F.linear(x, w * (0.01 / math.sqrt(w.shape[1])), sd[f"style.{i}.bias"] * 0.01), 0.2)
        x = x * math.sqrt(2)
        i += 1
    return x


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_rosinality_conversion_reproduces_reference_outputs(tmp_path, zip_format):
    sd = rosinality_g_ema(16)
    latent_avg = torch.randn(Z)
    path = tmp_path / "550000.pt"
    torch.save({"g_ema": sd, "latent_avg": latent_avg}, path, _use_new_zipfile_serialization=zip_format)
    g = create_model("stylegan2", weights=path)
    assert g.faceforge_config["resolution"] == 16 and g.num_ws == 6 and g.faceforge_config["mapping_layers"] == 3
    assert g.faceforge_meta["converted_from"].startswith("rosinality")
    torch.testing.assert_close(g.w_avg, latent_avg)
    z = z_batch(2, 3)
    with torch.no_grad():
        w = rosinality_mapping(sd, z)
        ws = g.mapping(z)
        torch.testing.assert_close(ws[:, 0], w, rtol=1e-4, atol=1e-5)
        ref = rosinality_reference(sd, w.unsqueeze(1).repeat(1, 6, 1))
        out = g(z, noise_mode="const")
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
        # truncation towards the converted latent_avg, as rosinality's truncation_latent
        ref_t = rosinality_reference(sd, latent_avg.lerp(w, 0.5).unsqueeze(1).repeat(1, 6, 1))
        torch.testing.assert_close(g(z, psi=0.5), ref_t, rtol=1e-4, atol=1e-4)
    assert out.abs().max() > 0.05  # not a degenerate all-zero comparison


def test_rosinality_training_snapshot_and_bare_state_dict(tmp_path):
    import argparse

    sd = rosinality_g_ema(8, seed=1)
    path = tmp_path / "snapshot.pt"  # train.py layout: g, d, g_ema, optimizers, args; no latent_avg
    torch.save({"g": sd, "d": {}, "g_ema": sd, "g_optim": {}, "d_optim": {},
                "args": argparse.Namespace(size=8, channel_multiplier=2), "ada_aug_p": 0.0}, path)
    ckpt = load_stylegan2(path)
    assert ckpt["meta"]["w_avg"].startswith("estimated")
    g = StyleGAN2Generator(**ckpt["config"])
    g.load_state_dict(ckpt["state_dict"])
    with torch.no_grad():
        expected = rosinality_mapping(sd, torch.randn(4096, Z, generator=torch.Generator().manual_seed(0))).mean(0)
    torch.testing.assert_close(g.w_avg, expected, rtol=1e-4, atol=1e-5)
    bare = convert_rosinality_stylegan2(sd)
    for key, value in bare["state_dict"].items():
        if key != "mapping.w_avg":
            assert torch.equal(value, ckpt["state_dict"][key]), key
    # a faceforge checkpoint of the converted model loads through the same entry point
    saved = save_checkpoint(tmp_path / "ff.pt", g, "stylegan2", ckpt["config"])
    again = create_model("stylegan2", weights=saved)
    with torch.no_grad():
        torch.testing.assert_close(again(z_batch(1)), g(z_batch(1)))


def test_rosinality_layout_errors(tmp_path):
    sd = rosinality_g_ema(8)
    extra = {**sd, "convs.9.conv.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="no place for.*convs.9"):
        convert_rosinality_stylegan2({"g_ema": extra})
    missing = {k: v for k, v in sd.items() if k != "noises.noise_1"}
    with pytest.raises(CheckpointError, match="missing tensor 'noises.noise_1'"):
        convert_rosinality_stylegan2({"g_ema": missing})
    odd_blur = {**sd, "convs.0.conv.blur.kernel": torch.ones(4, 4)}
    with pytest.raises(CheckpointError, match=r"\[1, 3, 3, 1\]"):
        convert_rosinality_stylegan2({"g_ema": odd_blur})


# ----------------------------------------------------------------------------- NVlabs converter ---
@pytest.fixture
def nvlabs_modules(monkeypatch):
    """Stand-ins for NVlabs' ``torch_utils.persistence`` and ``dnnlib.util``, registered only while the
    test pickles; the converter never imports them."""
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - never called by the converter
        raise AssertionError("the converter must not call the original reconstructor")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util.EasyDict = EasyDict

    class Persistent:
        """Pickles like a torch_utils.persistence object: reconstructor + meta with source and state."""

        def __init__(self, class_name, params=(), buffers=(), modules=(), **attrs):
            self.class_name = class_name
            self.state = {"training": False, "_parameters": OrderedDict(params),
                          "_buffers": OrderedDict(buffers), "_modules": OrderedDict(modules), **attrs}

        def __reduce__(self):
            meta = {"type": "class", "version": 6, "module_src": "import os\nos.system('echo pwned')\n",
                    "class_name": self.class_name, "state": self.state}
            return (_reconstruct_persistent_obj, (meta,))

    for name, module in (("torch_utils", types.ModuleType("torch_utils")), ("torch_utils.persistence", persistence),
                         ("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.util", util)):
        monkeypatch.setitem(sys.modules, name, module)
    return types.SimpleNamespace(Persistent=Persistent, EasyDict=EasyDict)


def nvlabs_tree(g: StyleGAN2Generator, ns, conv_clamp=None):
    """G_ema as NVlabs lays it out: nested persistent modules, Parameters, buffers, numpy attributes."""
    P, E = ns.Persistent, ns.EasyDict
    sd = g.state_dict()
    filt = make_filter()

    def fc(prefix, lr=1.0):
        return P("FullyConnectedLayer", params=[("weight", torch.nn.Parameter(sd[prefix + ".weight"])),
                                                ("bias", torch.nn.Parameter(sd[prefix + ".bias"]))],
                 weight_gain=np.float64(lr / math.sqrt(sd[prefix + ".weight"].shape[1])), bias_gain=lr)

    def layer(prefix):
        return P("SynthesisLayer", params=[(k, torch.nn.Parameter(sd[f"{prefix}.{k}"]))
                                           for k in ("weight", "bias", "noise_strength")],
                 buffers=[("noise_const", sd[f"{prefix}.noise_const"]), ("resample_filter", filt)],
                 modules=[("affine", fc(prefix + ".affine"))], act_gain=np.float32(math.sqrt(2)))

    blocks = []
    for res in g.synthesis.block_resolutions:
        pre = f"synthesis.b{res}"
        mods = [] if res == 4 else [("conv0", layer(pre + ".conv0"))]
        mods += [("conv1", layer(pre + ".conv1")),
                 ("torgb", P("ToRGBLayer", params=[("weight", torch.nn.Parameter(sd[pre + ".torgb.weight"])),
                                                   ("bias", torch.nn.Parameter(sd[pre + ".torgb.bias"]))],
                             modules=[("affine", fc(pre + ".torgb.affine"))]))]
        params = [("const", torch.nn.Parameter(sd[pre + ".const"]))] if res == 4 else []
        blocks.append((f"b{res}", P("SynthesisBlock", params=params, buffers=[("resample_filter", filt)],
                                    modules=mods, resolution=res)))
    mapping = P("MappingNetwork", buffers=[("w_avg", sd["mapping.w_avg"])],
                modules=[(f"fc{i}", fc(f"mapping.fc{i}", 0.01)) for i in range(g.mapping.num_layers)])
    init = E(z_dim=g.z_dim, c_dim=0, w_dim=g.w_dim, img_resolution=g.resolution, img_channels=3,
             mapping_kwargs=E(num_layers=g.mapping.num_layers, lr_multiplier=0.01),
             synthesis_kwargs=E(channel_base=8 * g.resolution, channel_max=16, architecture="skip",
                                conv_clamp=conv_clamp, num_fp16_res=0))
    return P("Generator", modules=[("synthesis", P("SynthesisNetwork", modules=blocks)), ("mapping", mapping)],
             _init_args=(), _init_kwargs=init, z_dim=g.z_dim, c_dim=0, w_dim=g.w_dim, img_resolution=g.resolution)


@pytest.mark.parametrize("protocol", [2, 4])
def test_nvlabs_pickle_conversion_reproduces_outputs(tmp_path, nvlabs_modules, protocol):
    g = tiny(16)
    tree = nvlabs_tree(g, nvlabs_modules)
    data = {"G": tree, "D": nvlabs_modules.Persistent("Discriminator"), "G_ema": tree, "augment_pipe": None,
            "training_set_kwargs": nvlabs_modules.EasyDict(path="ffhq.zip", resolution=16)}
    path = tmp_path / "network-snapshot-000000.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
        sys.modules.pop(name)  # the converter must not need the stand-ins (nor NVlabs' code)
    converted = create_model("stylegan2", weights=path)
    assert converted.faceforge_meta["converted_from"].startswith("NVlabs")
    assert converted.faceforge_meta["init_kwargs"]["synthesis_kwargs"]["architecture"] == "skip"
    for key, value in g.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key
    z = z_batch(3, 7)
    with torch.no_grad():
        torch.testing.assert_close(converted(z, psi=0.7), g(z, psi=0.7))
    assert convert_nvlabs_stylegan2_ada(path)["config"]["conv_clamp"] is None


def test_nvlabs_conditional_or_resnet_generators_are_refused(tmp_path, nvlabs_modules):
    g = tiny(8)
    tree = nvlabs_tree(g, nvlabs_modules)
    tree.state["_init_kwargs"]["synthesis_kwargs"]["architecture"] = "resnet"
    path = tmp_path / "resnet.pkl"
    path.write_bytes(pickle.dumps({"G_ema": tree}))
    with pytest.raises(CheckpointError, match="only 'skip'"):
        convert_nvlabs_stylegan2_ada(path)
    tree.state["_init_kwargs"]["synthesis_kwargs"]["architecture"] = "skip"
    tree.state["c_dim"] = 10
    path.write_bytes(pickle.dumps({"G_ema": tree}))
    with pytest.raises(CheckpointError, match="conditional"):
        convert_nvlabs_stylegan2_ada(path)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_executing(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Evil(marker)}))
    with pytest.raises(CheckpointError, match=r"refused to load (posix|os|nt)\.system.*nothing was executed"):
        create_model("stylegan2", weights=path)
    with pytest.raises(CheckpointError, match="system"):
        convert_nvlabs_stylegan2_ada(path)
    # the same payload inside a torch-style file is refused by the weights-only loader
    torch_path = tmp_path / "evil.pt"
    torch.save({"g_ema": _Evil(marker)}, torch_path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_stylegan2(torch_path)
    assert not marker.exists()


def test_wrong_formats_are_clear_errors(tmp_path):
    text = tmp_path / "weights.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="neither a torch checkpoint nor a pickle"):
        create_model("stylegan2", weights=text)
    other = tmp_path / "other.pt"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, other)
    with pytest.raises(CheckpointError, match="g_ema.*G_ema"):
        create_model("stylegan2", weights=other)
    no_g = tmp_path / "no_g.pkl"
    no_g.write_bytes(pickle.dumps({"G": None, "D": None}))
    with pytest.raises(CheckpointError, match="no 'G_ema' network"):
        create_model("stylegan2", weights=no_g)
    truncated = tmp_path / "cut.pkl"
    truncated.write_bytes(pickle.dumps({"G_ema": list(range(100))})[:20])
    with pytest.raises(CheckpointError, match="unreadable"):
        convert_nvlabs_stylegan2_ada(truncated)
    emotion = create_model("mini_xception")
    ff = save_checkpoint(tmp_path / "emotion.pt", emotion, "mini_xception", {"num_classes": 7, "in_channels": 1})
    with pytest.raises(CheckpointError, match="'mini_xception' checkpoint, expected 'stylegan2'"):
        create_model("stylegan2", weights=ff)
    with pytest.raises(FileNotFoundError):
        create_model("stylegan2", weights=tmp_path / "absent.pkl")


def test_converters_are_the_stylegan2_loader_and_left_checkpoints():
    """The converters live in ``faceforge.models.stylegan2_convert`` (the spec's weights loader);
    ``faceforge.checkpoints`` knows no model and no longer offers them."""
    from faceforge import checkpoints
    from faceforge.models import stylegan2_convert

    assert not hasattr(checkpoints, "load_stylegan2")
    assert get_spec("stylegan2").weights_loader is stylegan2_convert.load_stylegan2
