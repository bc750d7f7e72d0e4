"""uint8 RGB arrays <-> float tensors in [-1, 1] (``x = p / 127.5 - 1``), the input range of faceforge's
generators (CycleGAN, pix2pix, GPEN, FaceShifter, StyleGAN2)."""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` RGB -> float32 ``(3, H, W)`` in [-1, 1] (``p / 127.5 - 1``)."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def batch_to_tensor(batch: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` -> float32 ``(N, 3, H, W)`` in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float ``(3, H, W)`` or ``(N, 3, H, W)`` in [-1, 1] -> uint8 ``(H, W, 3)`` / ``(N, H, W, 3)`` RGB
    (clamped to [-1, 1], rounded)."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).numpy()
