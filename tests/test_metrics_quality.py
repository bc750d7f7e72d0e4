"""Quality metrics blur cannot pass (faceforge.metrics, issue 14): sharpness ratio, blur control by
bisection, SWD and the kernel distance as set distances, the seam band and ratio, chroma.

All on small synthetic images: each test must fail if the metric stops measuring what it claims."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceforge import metrics as M


def _texture(rng: np.random.Generator, n: int = 1, side: int = 64) -> np.ndarray:
    """Band-limited colour texture (noise blurred with sigma 1): fine detail at several scales."""
    noise = rng.normal(128, 60, (n, side, side, 3)).astype(np.float32)
    out = np.stack([cv2.GaussianBlur(x, (0, 0), 1.0) for x in noise])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def test_face_region_mask_is_the_central_ellipse():
    mask = M.face_region_mask(128)
    assert mask.shape == (128, 128) and mask.dtype == bool
    assert mask[66, 64] and not mask[2, 2] and not mask[64, 2] and not mask[126, 64]
    assert 0.4 < mask.mean() < 0.55  # pi * 0.36 * 0.44 = 0.498 of the square
    with pytest.raises(ValueError):
        M.face_region_mask(4)


def test_blur_lowers_the_sharpness_ratio_and_identity_keeps_it():
    rng = np.random.default_rng(0)
    x = _texture(rng, 4)
    mask = M.face_region_mask(64)
    assert np.allclose(M.sharpness_ratio(x, x, mask), 1.0)
    soft = np.stack([M.gaussian_blur(im, 1.5) for im in x])
    ratio = M.sharpness_ratio(soft, x, mask)
    assert ratio.shape == (4,) and (ratio < 0.3).all()
    noisy = np.clip(x.astype(np.int16) + rng.integers(-30, 31, x.shape), 0, 255).astype(np.uint8)
    assert (M.sharpness_ratio(noisy, x, mask) > 1.0).all()  # added texture raises it: report it beside realism
    with pytest.raises(ValueError):
        M.laplacian_variance(x.astype(np.float32))
    with pytest.raises(ValueError):
        M.laplacian_variance(x, np.zeros((64, 64), bool))


def test_blur_to_sharpness_bisection_hits_the_target():
    rng = np.random.default_rng(1)
    x = _texture(rng)[0]
    mask = M.face_region_mask(64)
    v0 = float(M.laplacian_variance(x, mask)[0])
    for frac in (0.6, 0.25, 0.05):
        img, sigma = M.blur_to_sharpness(x, frac * v0, mask)
        got = float(M.laplacian_variance(img, mask)[0])
        assert abs(got - frac * v0) <= 0.02 * frac * v0, (frac, got / v0)
        assert 0 < sigma < 8
    same, sigma = M.blur_to_sharpness(x, 2 * v0, mask)  # already below the target: untouched
    assert sigma == 0 and np.array_equal(same, x)
    with pytest.raises(ValueError):
        M.blur_to_sharpness(x, -1.0)


def test_blur_control_matches_each_outputs_sharpness():
    rng = np.random.default_rng(2)
    inputs = _texture(rng, 3)
    outputs = np.stack([M.gaussian_blur(im, s) for im, s in zip(_texture(rng, 3), (0.7, 1.2, 2.0))])
    blurred, sigmas = M.blur_control(inputs, outputs)
    assert blurred.shape == inputs.shape and blurred.dtype == np.uint8
    assert np.allclose(M.laplacian_variance(blurred), M.laplacian_variance(outputs), rtol=0.03)
    assert sigmas[0] < sigmas[1] < sigmas[2]
    with pytest.raises(ValueError):
        M.blur_control(inputs, outputs[:2])


def test_colour_control_takes_the_outputs_colour_and_sharpness_but_keeps_the_inputs_structure():
    """An output that is the input tinted yellow, darkened and blurred: its colour control has the output's
    Lab statistics inside the mask and its sharpness, and the input's (not the output's) pattern."""
    rng = np.random.default_rng(4)
    inputs, others = _texture(rng, 2), _texture(rng, 2)
    mask = np.ones((64, 64), bool)
    tint = np.array([1.1, 0.95, 0.6], np.float32)
    outputs = np.stack([M.gaussian_blur(np.clip(im * tint * 0.8, 0, 255).astype(np.uint8), 0.8) for im in inputs])
    controls, sigmas = M.colour_control(inputs, outputs, mask)
    assert controls.shape == inputs.shape and controls.dtype == np.uint8 and np.all(sigmas > 0)
    lab = lambda a: cv2.cvtColor(a.astype(np.float32) / 255, cv2.COLOR_RGB2Lab).reshape(-1, 3)  # noqa: E731
    for c, o, x in zip(controls, outputs, inputs):
        assert np.allclose(lab(c).mean(0), lab(o).mean(0), atol=1.5)  # the output's cast ...
        assert np.abs(lab(x).mean(0) - lab(o).mean(0)).max() > 10  # ... which the input did not have
    assert np.allclose(M.laplacian_variance(controls), M.laplacian_variance(outputs), rtol=0.05)
    # the structure is the input's: the control correlates with its own input, not with another texture
    corr = lambda a, b: np.corrcoef(a[..., 1].ravel(), b[..., 1].ravel())[0, 1]  # noqa: E731
    assert corr(controls[0], inputs[0]) > 0.8 and abs(corr(controls[0], others[0])) < 0.2
    with pytest.raises(ValueError):
        M.colour_control(inputs, outputs[:1], mask)


def test_swd_of_a_set_with_itself_is_zero_and_blur_is_far_beyond_sampling_noise():
    rng = np.random.default_rng(3)
    a, b = _texture(rng, 48, 32), _texture(rng, 48, 32)  # two draws of one distribution
    soft = np.stack([M.gaussian_blur(im, 1.2) for im in a])
    assert M.swd(a, a)["swd_avg"] == 0.0 and M.swd(a, a, normalize="reference")["swd_avg"] == 0.0
    same = M.swd(a, b, normalize="reference")["swd_avg"]
    blurred = M.swd(a, soft, normalize="reference")["swd_avg"]
    assert blurred > 3 * same > 0
    # the paper's per-set normalisation hides much of a blur's loss of contrast: the reason for "reference"
    assert M.swd(a, soft)["swd_avg"] < 0.5 * blurred
    with pytest.raises(ValueError):
        M.swd(a, b, normalize="mine")


def test_kernel_distance_is_near_zero_for_one_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, (200, 16)), rng.normal(0, 1, (200, 16))
    shifted = rng.normal(0.5, 1, (200, 16))
    same = M.kernel_distance(a, b)
    far = M.kernel_distance(a, shifted)
    assert abs(same["mmd2"]) < 0.02 and far["mmd2"] > 10 * max(abs(same["mmd2"]), same["std"])
    with pytest.raises(ValueError):
        M.kernel_distance(a, b[:, :8])


def test_seam_ratio_sees_a_hard_paste_edge_and_not_a_clean_one():
    rng = np.random.default_rng(5)
    photo = _texture(rng, 1, 96)[0]
    alpha = np.zeros((96, 96), np.float32)
    alpha[24:72, 24:72] = 1.0  # a hard square paste
    band = M.paste_band(alpha, pad=2)
    assert band[24, 48] and band[48, 24] and not band[48, 48] and not band[2, 2]
    assert M.seam_ratio(photo, photo, band) == pytest.approx(1.0)
    pasted = photo.copy()
    pasted[24:72, 24:72] = np.clip(photo[24:72, 24:72].astype(np.int16) + 60, 0, 255)  # a brighter patch
    assert M.seam_ratio(pasted, photo, band) > 1.3
    ramp = cv2.GaussianBlur(alpha, (0, 0), 4)
    assert M.paste_band(ramp).sum() > band.sum()  # the ramp widens the band


def test_max_chroma_is_zero_for_gray_and_sees_a_sepia_cast():
    gray = np.repeat(np.random.default_rng(6).integers(0, 256, (32, 32, 1), dtype=np.uint8), 3, axis=2)
    assert M.max_chroma(gray) == 0.0
    sepia = np.clip(gray.astype(np.float32) * np.array([1.07, 0.97, 0.82]), 0, 255).astype(np.uint8)
    assert M.max_chroma(sepia) > 20 and M.max_chroma(sepia, percentile=50) > 5
    with pytest.raises(ValueError):
        M.max_chroma(gray, percentile=101)


def test_summarize_quartiles():
    s = M.summarize([1, 2, 3, 4, 5, np.nan, np.inf])
    assert s["n"] == 5 and s["median"] == 3 and s["q1"] == 2 and s["q3"] == 4
    assert M.summarize([])["n"] == 0
