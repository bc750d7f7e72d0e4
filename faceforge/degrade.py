"""Seeded blind degradation of face images: what a face restorer is trained and benchmarked on.

The model follows the "classical" degradation of GFPGAN (X. Wang, Y. Li, H. Zhang, Y. Shan, "Towards
Real-World Blind Face Restoration with Generative Facial Prior", CVPR 2021, eq. 4) that the GPEN
reference trainer also uses, and its first-order part as in Real-ESRGAN (X. Wang, L. Xie, C. Dong,
Y. Shan, "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data", ICCVW 2021)::

    y = resize_up( JPEG_q( resize_down(x * k_sigma, 1/s) + n_delta ), s )

applied to a uint8 RGB image ``x`` of side ``H x W`` in this order:

1. **blur** ``k``: isotropic Gaussian (one sigma) or anisotropic Gaussian (two sigmas and a rotation
   ``theta``), kernel side ``2 ceil(3 sigma_max) + 1`` (at most 41), ``cv2.filter2D`` with reflected borders;
2. **downsample** by a factor ``s`` in [1, 8] to ``round(H / s) x round(W / s)`` (bilinear, as GFPGAN);
3. **Gaussian noise** of standard deviation ``delta`` (0-255 scale), independent per pixel and channel,
   then rounding to uint8;
4. **JPEG** at quality ``q`` (30-100; OpenCV/libjpeg, 4:2:0 chroma), skipped at 100;
5. **upsample** back to ``H x W`` (bilinear);
6. occasionally **grayscale** (ITU-R BT.601 luma in all three channels): applied to the *target* as well
   (as GFPGAN does), so a restorer learns to keep a gray photo gray rather than to colourise it.

Sigmas are given in pixels of a 128-px face and scaled by ``side / 128`` (:data:`REFERENCE_SIDE`), so a
degradation looks alike at 64, 128 or 512 px. Training (:data:`TRAINING`) draws every parameter
uniformly from wide ranges; the benchmarks use three named severities (:data:`SEVERITIES`: ``mild``,
``moderate``, ``severe``) with narrower, disjoint ranges and no grayscale, drawn per image from a seed
derived from ``(severity, seed, index)`` so the same benchmark always sees the same degraded images.

Everything is numpy/OpenCV; randomness only from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

__all__ = ["REFERENCE_SIDE", "DegradationConfig", "DegradationParams", "TRAINING", "SEVERITIES", "sample_params",
           "gaussian_kernel", "apply_degradation_lowres", "apply_degradation", "degrade", "degrade_pair",
           "severity_rng", "degrade_fixed", "degrade_fixed_lowres"]

REFERENCE_SIDE = 128
"""Image side (pixels) at which the blur sigmas of a config are given; they scale with ``side / 128``."""

MAX_KERNEL = 41
"""Largest blur kernel side (GFPGAN's ``blur_kernel_size`` at 512 px)."""


@dataclass(frozen=True)
class DegradationConfig:
    """Ranges a degradation is drawn from (uniform in each closed interval).

    Attributes:
        blur_sigma: Gaussian sigma range in pixels at :data:`REFERENCE_SIDE` (0 = no blur).
        aniso_prob: probability of an anisotropic kernel (two sigmas, random rotation).
        downsample: range of the downsampling factor ``s`` (1 = none, 8 = an eighth of the side).
        noise: Gaussian noise standard-deviation range, 0-255 scale.
        jpeg: JPEG quality range (integers, 1-100; 100 = no JPEG step).
        gray_prob: probability of converting target and degraded image to grayscale.
    """

    blur_sigma: tuple[float, float] = (0.2, 3.0)
    aniso_prob: float = 0.5
    downsample: tuple[float, float] = (1.0, 8.0)
    noise: tuple[float, float] = (0.0, 20.0)
    jpeg: tuple[int, int] = (30, 100)
    gray_prob: float = 0.1

    def __post_init__(self) -> None:
        for name in ("blur_sigma", "downsample", "noise", "jpeg"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} range must be (low, high) with low <= high, got {(lo, hi)}")
        if self.blur_sigma[0] < 0 or self.noise[0] < 0:
            raise ValueError("blur sigma and noise must be >= 0")
        if self.downsample[0] < 1:
            raise ValueError(f"downsample factors must be >= 1, got {self.downsample}")
        if not (1 <= self.jpeg[0] and self.jpeg[1] <= 100):
            raise ValueError(f"JPEG quality must be within 1-100, got {self.jpeg}")
        if not (0 <= self.aniso_prob <= 1 and 0 <= self.gray_prob <= 1):
            raise ValueError("aniso_prob and gray_prob must be probabilities")


TRAINING = DegradationConfig()
"""Training distribution: blur sigma 0.2-3 px at 128 px (iso or aniso 50/50), downsampling x1-x8, noise
0-20, JPEG 30-100, 10 % grayscale (GFPGAN's ranges, blur rescaled from 512 px to 128 px: 0.1-10 at 512
is 0.03-2.5 at 128; widened a little; JPEG down to 30 as the issue asks)."""

SEVERITIES: dict[str, DegradationConfig] = {
    "mild": DegradationConfig(blur_sigma=(0.5, 1.0), downsample=(1.0, 2.0), noise=(0.0, 5.0), jpeg=(80, 95),
                              gray_prob=0.0),
    "moderate": DegradationConfig(blur_sigma=(1.0, 2.0), downsample=(2.0, 4.0), noise=(5.0, 10.0), jpeg=(50, 80),
                                  gray_prob=0.0),
    "severe": DegradationConfig(blur_sigma=(2.0, 3.0), downsample=(4.0, 8.0), noise=(10.0, 20.0), jpeg=(30, 50),
                                gray_prob=0.0),
}
"""Benchmark severities (disjoint ranges, no grayscale); sigmas in pixels of a 128-px face."""


@dataclass(frozen=True)
class DegradationParams:
    """One drawn degradation (see the module docstring for the order of the steps).

    Attributes:
        sigma_x, sigma_y: blur sigmas in pixels of the image being degraded (already scaled by side/128);
            equal for an isotropic kernel; 0 = no blur.
        theta: kernel rotation in radians (0 for isotropic).
        downsample: factor ``s >= 1``.
        noise: noise standard deviation, 0-255 scale.
        jpeg: JPEG quality 1-100 (100: skipped).
        grayscale: convert to gray (target too, in :func:`degrade_pair`).
    """

    sigma_x: float
    sigma_y: float
    theta: float
    downsample: float
    noise: float
    jpeg: int
    grayscale: bool

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def sample_params(rng: np.random.Generator, side: int, config: DegradationConfig = TRAINING) -> DegradationParams:
    """Draw one degradation for an image of ``side`` pixels (``max(H, W)``) from ``config``'s ranges.

    Raises:
        ValueError: ``side < 1``.
    """
    if side < 1:
        raise ValueError(f"side must be >= 1, got {side}")
    k = side / REFERENCE_SIDE
    sx = float(rng.uniform(*config.blur_sigma)) * k
    if rng.uniform() < config.aniso_prob:
        sy = float(rng.uniform(*config.blur_sigma)) * k
        theta = float(rng.uniform(-math.pi, math.pi))
    else:
        sy, theta = sx, 0.0
        rng.uniform(), rng.uniform()  # keep the stream aligned whichever branch is taken
    s = float(rng.uniform(*config.downsample))
    noise = float(rng.uniform(*config.noise))
    q = int(rng.integers(config.jpeg[0], config.jpeg[1] + 1))
    gray = bool(rng.uniform() < config.gray_prob)
    return DegradationParams(sx, sy, theta, s, noise, q, gray)


def gaussian_kernel(sigma_x: float, sigma_y: float, theta: float = 0.0, size: int | None = None) -> np.ndarray:
    """Normalised 2-D Gaussian kernel, anisotropic when ``sigma_x != sigma_y``, rotated by ``theta``.

    ``k(p) ~ exp(-p^T S^-1 p / 2)`` with ``S = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T``.

    Args:
        sigma_x, sigma_y: standard deviations in pixels (> 0).
        theta: rotation in radians.
        size: odd kernel side; default ``2 ceil(3 max(sigma)) + 1``, at most :data:`MAX_KERNEL`.

    Returns:
        float32 ``(size, size)`` summing to 1.

    Raises:
        ValueError: non-positive sigmas or an even ``size``.
    """
    if sigma_x <= 0 or sigma_y <= 0:
        raise ValueError(f"sigmas must be > 0, got {sigma_x}, {sigma_y}")
    if size is None:
        size = min(MAX_KERNEL, 2 * math.ceil(3 * max(sigma_x, sigma_y)) + 1)
    if size % 2 == 0 or size < 1:
        raise ValueError(f"kernel size must be odd and positive, got {size}")
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([sigma_x ** 2, sigma_y ** 2]) @ rot.T
    inv = np.linalg.inv(cov)
    r = np.arange(size) - size // 2
    xx, yy = np.meshgrid(r, r)
    pts = np.stack([xx, yy], -1).astype(np.float64)
    k = np.exp(-0.5 * np.einsum("...i,ij,...j->...", pts, inv, pts))
    return (k / k.sum()).astype(np.float32)


def _gray(rgb: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def _check(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("image must be a uint8 (H, W, 3) RGB array")
    return np.ascontiguousarray(rgb)


def apply_degradation_lowres(rgb: np.ndarray, params: DegradationParams, rng: np.random.Generator) -> np.ndarray:
    """Steps 1-4 (and 6) of the degradation: blur, downsample, noise, JPEG; the image stays small.

    Returns uint8 ``(round(H / s), round(W / s), 3)`` RGB (gray in all channels when ``params.grayscale``):
    what an upscaler baseline (bicubic, Lanczos) starts from. :func:`apply_degradation` is this followed by
    the bilinear upsampling back to ``H x W``; both draw the same noise from ``rng``.

    Raises:
        ValueError: not a uint8 RGB image.
    """
    rgb = _check(rgb)
    h, w = rgb.shape[:2]
    x = _gray(rgb) if params.grayscale else rgb
    x = x.astype(np.float32)
    if params.sigma_x > 0 and params.sigma_y > 0:
        x = cv2.filter2D(x, -1, gaussian_kernel(params.sigma_x, params.sigma_y, params.theta),
                         borderType=cv2.BORDER_REFLECT_101)
    if params.downsample > 1:
        size = (max(1, round(w / params.downsample)), max(1, round(h / params.downsample)))
        x = cv2.resize(x, size, interpolation=cv2.INTER_LINEAR)
    if params.noise > 0:
        noise = rng.normal(0.0, params.noise, x.shape[:2] + (1,) if params.grayscale else x.shape)
        x = x + noise.astype(np.float32)
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if params.jpeg < 100:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(params.jpeg)])
        if not ok:  # pragma: no cover - libjpeg does not fail on valid arrays
            raise RuntimeError("JPEG encoding failed")
        x = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if params.grayscale:  # JPEG chroma may have tinted it a little
        x = _gray(np.ascontiguousarray(x))
    return np.ascontiguousarray(x)


def apply_degradation(rgb: np.ndarray, params: DegradationParams, rng: np.random.Generator) -> np.ndarray:
    """Degrade one image with fixed parameters (the noise image is drawn from ``rng``).

    Args:
        rgb: uint8 ``(H, W, 3)`` RGB.
        params: the degradation (:func:`sample_params`).
        rng: source of the noise.

    Returns:
        uint8 ``(H, W, 3)`` RGB, same size (gray in all channels when ``params.grayscale``).

    Raises:
        ValueError: not a uint8 RGB image.
    """
    h, w = _check(rgb).shape[:2]
    x = apply_degradation_lowres(rgb, params, rng)
    if x.shape[:2] != (h, w):
        x = cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR)
        if params.grayscale:
            x = _gray(x)
    return np.ascontiguousarray(x)


def degrade(rgb: np.ndarray, rng: np.random.Generator, config: DegradationConfig = TRAINING) -> tuple[np.ndarray, DegradationParams]:
    """Draw a degradation from ``config`` and apply it: ``(degraded uint8 (H, W, 3), params)``."""
    rgb = _check(rgb)
    params = sample_params(rng, max(rgb.shape[:2]), config)
    return apply_degradation(rgb, params, rng), params


def degrade_pair(rgb: np.ndarray, rng: np.random.Generator,
                 config: DegradationConfig = TRAINING) -> tuple[np.ndarray, np.ndarray, DegradationParams]:
    """A training pair: ``(target, degraded, params)``; the target is ``rgb``, or its grayscale version
    when the drawn degradation is grayscale (GFPGAN's convention), both uint8 ``(H, W, 3)``."""
    degraded, params = degrade(rgb, rng, config)
    target = _gray(_check(rgb)) if params.grayscale else _check(rgb)
    return target, degraded, params


def severity_rng(severity: str, seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index`` at ``severity`` for benchmark ``seed`` (stable across runs and
    machines: seeded from ``crc32(severity)``, ``seed`` and ``index``).

    Raises:
        ValueError: unknown severity.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    return np.random.default_rng([zlib.crc32(severity.encode()), int(seed), int(index)])


def degrade_fixed(rgb: np.ndarray, severity: str, seed: int = 0, index: int = 0) -> tuple[np.ndarray, DegradationParams]:
    """The benchmark degradation of image ``index`` at a named severity: the same inputs always give the
    same output. Returns ``(degraded uint8 (H, W, 3), params)``.

    Raises:
        ValueError: unknown severity or a bad image.
    """
    return degrade(rgb, severity_rng(severity, seed, index), SEVERITIES[severity])


def degrade_fixed_lowres(rgb: np.ndarray, severity: str, seed: int = 0, index: int = 0) -> tuple[np.ndarray, DegradationParams]:
    """:func:`degrade_fixed` before its final upsampling (same parameters, same noise):
    ``(small uint8 (round(H / s), round(W / s), 3), params)``, for upscaler baselines.

    Raises:
        ValueError: unknown severity or a bad image.
    """
    rgb = _check(rgb)
    rng = severity_rng(severity, seed, index)
    params = sample_params(rng, max(rgb.shape[:2]), SEVERITIES[severity])
    return apply_degradation_lowres(rgb, params, rng), params
