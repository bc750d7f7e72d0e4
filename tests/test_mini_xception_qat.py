"""The simulated int8 forward pass of mini-Xception (quantization-aware fine-tuning)."""

from __future__ import annotations

import pytest
import torch

import faceforge.models.mini_xception_qat as qat
from faceforge.models import create_model
from faceforge.models.mini_xception_qat import FakeQuantMiniXception, fake_quant_weight


def _net(seed: int = 0):
    torch.manual_seed(seed)
    net = create_model("mini_xception").eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding is exercised
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net


def test_without_rounding_it_is_the_float_model_with_centred_logits(monkeypatch):
    net, x = _net(), torch.rand(4, 1, 48, 48) * 2 - 1
    monkeypatch.setattr(qat, "fake_quant_weight", lambda w: w)
    fq = FakeQuantMiniXception(net).eval()  # no ranges observed yet: activations pass through
    with torch.no_grad():
        ref = net(x)
        torch.testing.assert_close(fq(x), ref - ref.mean(1, keepdim=True), rtol=1e-4, atol=1e-4)


def test_weights_round_per_channel_to_127_levels():
    w = torch.randn(6, 4, 3, 3) * torch.arange(1, 7).view(-1, 1, 1, 1)
    q = fake_quant_weight(w)
    step = w.abs().flatten(1).amax(1) / 127
    levels = q / step.view(-1, 1, 1, 1)
    torch.testing.assert_close(levels, levels.round(), rtol=0, atol=1e-3)
    assert ((q - w).abs() <= step.view(-1, 1, 1, 1) / 2 + 1e-6).all()


def test_observed_ranges_quantize_and_gradients_reach_the_float_weights():
    net, x = _net(), torch.rand(8, 1, 48, 48) * 2 - 1
    fq = FakeQuantMiniXception(net, momentum=1.0).train()
    out = fq(x)
    assert all(r.hi >= r.lo for r in fq.ranges) and fq.ranges[0].lo == pytest.approx(x.min().item(), abs=1e-6)
    out.square().sum().backward()
    assert net.classifier.weight.grad is not None and net.stem[0].weight.grad.abs().sum() > 0
    fq.eval()
    with torch.no_grad():
        ref = net(x)
        q = fq(x)
    lo, hi = fq.ranges[-1].lo, fq.ranges[-1].hi
    step = float((hi - lo) / 255)
    assert 0 < (q - (ref - ref.mean(1, keepdim=True))).abs().max() < 0.5 * (hi - lo)
    codes = q / step  # logits on the output's int8 grid (multiples of the step)
    torch.testing.assert_close(codes, codes.round(), rtol=0, atol=1e-2)


def test_bad_input_is_refused():
    with pytest.raises(TypeError, match="MiniXception"):
        FakeQuantMiniXception(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="built for"):
        FakeQuantMiniXception(_net()).eval()(torch.zeros(1, 1, 64, 64))
