"""Image quality metrics that need no downloaded network: realism of a set, and what blur cannot fake.

Two groups:

- **Set distances** (realism): the sliced Wasserstein distance on Laplacian-pyramid patches (:func:`swd`,
  below) and a kernel (KID-style) distance on any feature vectors, e.g. the face-identity network's
  128-d embeddings (:func:`kernel_distance`). Compare a figure with the same distance between two
  disjoint *real* sets of the same size: that is the floor a perfect generator would reach.
- **Per-image figures a blurred output cannot pass** (issue 14): sharpness inside the face region as the
  variance of the Laplacian (:func:`laplacian_variance`, :func:`sharpness_ratio`; Pech-Pacheco et al.,
  "Diatom autofocusing in brightfield microscopy: a comparative study", ICPR 2000), a **blur control**
  (:func:`blur_to_sharpness`, :func:`blur_control`: each input blurred by a Gaussian whose sigma is found
  by bisection so that its sharpness equals its output's; an estimator's shift on these tells what
  blur alone does), the **seam** at a paste boundary (:func:`paste_band`, :func:`seam_ratio`: gradient
  magnitude in the band where the paste mask ramps, output over input) and **chroma**
  (:func:`max_chroma`: a grayscale photo must stay grayscale).

The SWD part:

Sliced Wasserstein distance on Laplacian-pyramid patches (SWD; Karras, Aila, Laine, Lehtinen,
"Progressive Growing of GANs for Improved Quality, Stability, and Variation", ICLR 2018,
arXiv:1710.10196, section 5 and appendix D).

Why this and not FID: FID (Heusel et al. 2017) compares Inception-v3 features, and the Inception
weights cannot be downloaded here; a FID computed with other weights is not comparable with anyone's
FID. SWD needs nothing but the pixels, so it is computable offline and reproducible from the code. It
compares the *distribution* of local 7x7 patches at every scale of a Laplacian pyramid: the finest
levels measure per-scale fidelity (sharp edges, texture, no artefacts), the coarse levels the
structure (pose, face layout, colour blobs); a generator that collapses onto a few faces produces a
narrow patch distribution and scores badly too, so the figure tracks both fidelity and variation
(Karras et al.: "an ideal generator should produce samples whose local structure is similar to the
training set over all scales"). Like FID it is a distribution distance: lower is better, 0 for two
draws of the same set only in the limit of many samples. Absolute values depend on the resolution,
the number of images and the descriptors per image, so compare figures computed with the same
settings (the trainer logs them with fixed settings and a fixed real set).

Procedure (following the paper's description; written for faceforge, not copied):

1. Laplacian pyramid of each image with the 5x5 binomial filter ``[1, 4, 6, 4, 1] / 16``: level 0 is
   ``img - up(down(img))`` at full resolution, ..., down to ``min_resolution`` (16 px by default),
   where the last level is the low-pass image itself.
2. From every level, ``descriptors_per_image`` random 7x7x3 neighbourhoods (147-dim descriptors).
3. Each set's descriptors are normalised per colour channel (zero mean, unit std over the set).
4. Sliced Wasserstein distance between the two descriptor sets per level: ``num_projections``
   (512) random unit directions; project both sets, sort, mean absolute difference of the sorted
   projections (the 1-D Wasserstein-1 distance), averaged over directions.
5. Reported x 1e3 per level, and the mean over levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["laplacian_pyramid", "patch_descriptors", "sliced_wasserstein", "SWDReference", "swd", "face_region_mask",
           "laplacian_variance", "sharpness_ratio", "gaussian_blur", "blur_to_sharpness", "blur_control",
           "colour_control", "paste_band", "seam_ratio", "max_chroma", "kernel_distance", "summarize"]

_BINOMIAL5 = (1.0, 4.0, 6.0, 4.0, 1.0)


def _as_float_nchw(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` (numpy) or float ``(N, C, H, W)`` (torch, any range) -> float32 NCHW."""
    if isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"numpy images must be (N, H, W, 3) uint8, got {images.shape}")
        return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    if images.ndim != 4:
        raise ValueError(f"tensor images must be (N, C, H, W), got {tuple(images.shape)}")
    return images.detach().float()


def _blur(x: torch.Tensor) -> torch.Tensor:
    t = torch.tensor(_BINOMIAL5, dtype=x.dtype, device=x.device)
    k = torch.outer(t, t) / 256.0
    c = x.shape[1]
    return F.conv2d(F.pad(x, [2, 2, 2, 2], mode="reflect"), k.expand(c, 1, 5, 5), groups=c)


def laplacian_pyramid(images: torch.Tensor, min_resolution: int = 16) -> list[torch.Tensor]:
    """Laplacian pyramid, finest level first.

    Args:
        images: float ``(N, C, H, W)`` with square power-of-two sides ``>= min_resolution``.
        min_resolution: side of the coarsest level (the low-pass residual).

    Returns:
        ``[band at H, band at H/2, ..., low-pass at min_resolution]`` float32 tensors ``(N, C, h, h)``;
        a single ``[images]`` when ``H == min_resolution``.

    Raises:
        ValueError: non-square or too small images.
    """
    n, c, h, w = images.shape
    if min_resolution < 8:
        raise ValueError(f"min_resolution must be >= 8 (7x7 neighbourhoods), got {min_resolution}")
    if h != w or h < min_resolution:
        raise ValueError(f"images must be square with side >= {min_resolution}, got {h}x{w}")
    levels = []
    cur = images
    while cur.shape[-1] > min_resolution:
        down = _blur(cur)[:, :, ::2, ::2]
        up = F.interpolate(down, scale_factor=2, mode="nearest")
        up = _blur(up)  # nearest + binomial blur = the standard pyrUp approximation
        levels.append(cur - up)
        cur = down
    levels.append(cur)
    return levels


def patch_descriptors(level: torch.Tensor, per_image: int, generator: torch.Generator,
                      size: int = 7) -> torch.Tensor:
    """Random ``size x size`` neighbourhoods of one pyramid level, normalised per channel.

    Args:
        level: ``(N, C, h, h)`` float.
        per_image: descriptors drawn from each image (positions uniform, with replacement).
        generator: torch RNG for the positions (CPU).
        size: neighbourhood side (7 in the paper).

    Returns:
        float32 ``(N * per_image, C * size * size)``, each channel zero-mean and unit-std over the set.
    """
    if level.shape[-1] < size:
        raise ValueError(f"pyramid level of side {level.shape[-1]} is smaller than the {size}x{size} neighbourhood")
    return _normalise(_raw_patches(level, per_image, generator, size))


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, num_projections: int = 512,
                       generator: torch.Generator | None = None, chunk: int = 128) -> float:
    """Sliced Wasserstein-1 distance between two equally sized point sets.

    Args:
        a, b: float ``(M, D)`` each (same ``M``; subsample the larger set first).
        num_projections: random unit directions (512 in the paper: 4 repeats of 128).
        generator: torch RNG for the directions (CPU); the same for both sets by construction.
        chunk: directions processed at a time (memory: ``2 * M * chunk`` floats).

    Returns:
        Mean over directions of the 1-D Wasserstein-1 distance of the projections (a float >= 0).

    Raises:
        ValueError: shapes differ.
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"need two (M, D) sets of equal shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    total = 0.0
    done = 0
    while done < num_projections:
        k = min(chunk, num_projections - done)
        dirs = torch.randn(a.shape[1], k, generator=generator).to(a.device)
        dirs = dirs / dirs.norm(dim=0, keepdim=True)
        # numpy's vectorised sort is ~50x faster than torch.sort on the CPU for these shapes
        pa = np.sort((dirs.T @ a.T).cpu().numpy(), axis=1)
        pb = np.sort((dirs.T @ b.T).cpu().numpy(), axis=1)
        total += float(np.abs(pa - pb).mean(axis=1).sum())
        done += k
    return total / num_projections


def _descriptors(images: np.ndarray | torch.Tensor, per_image: int, min_resolution: int, seed: int,
                 batch: int = 256, stats: list[tuple[torch.Tensor, torch.Tensor]] | None = None
                 ) -> list[torch.Tensor]:
    x = _as_float_nchw(images)
    gen = torch.Generator().manual_seed(seed)
    per_level: list[list[torch.Tensor]] = []
    for i in range(0, x.shape[0], batch):
        levels = laplacian_pyramid(x[i:i + batch], min_resolution)
        if not per_level:
            per_level = [[] for _ in levels]
        for j, lev in enumerate(levels):  # raw patches first; normalisation over the whole set below
            per_level[j].append(_raw_patches(lev, per_image, gen))
    if stats is not None and not stats:  # [] = raw descriptors, (M, C, s*s), for the caller to normalise
        return [torch.cat(chunks) for chunks in per_level]
    return [_normalise(torch.cat(chunks), None if stats is None else stats[j]) for j, chunks in enumerate(per_level)]


def _channel_stats(desc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return desc.mean(dim=(0, 2), keepdim=True), desc.std(dim=(0, 2), keepdim=True)


def _normalise(desc: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """``(M, C, s*s)`` raw patches -> ``(M, C*s*s)``, each channel zero-mean, unit-std over the set (or with
    the given per-channel ``(mean, std)``, e.g. another set's)."""
    mean, std = _channel_stats(desc) if stats is None else stats
    return ((desc - mean) / (std + 1e-8)).flatten(1)


def _raw_patches(level: torch.Tensor, per_image: int, generator: torch.Generator, size: int = 7) -> torch.Tensor:
    n, c, h, w = level.shape
    ys = torch.randint(0, h - size + 1, (n, per_image), generator=generator)
    xs = torch.randint(0, w - size + 1, (n, per_image), generator=generator)
    offs = torch.arange(size)
    rows = (ys[..., None] + offs).reshape(n, per_image, size, 1).expand(-1, -1, -1, size)
    cols = (xs[..., None] + offs).reshape(n, per_image, 1, size).expand(-1, -1, size, -1)
    flat = (rows * w + cols).reshape(n, 1, -1).expand(-1, c, -1)
    patches = level.reshape(n, c, h * w).gather(2, flat).reshape(n, c, per_image, size * size)
    return patches.permute(0, 2, 1, 3).reshape(n * per_image, c, size * size)


@dataclass
class SWDReference:
    """Precomputed, normalised descriptors of a reference (real) image set, reused across evaluations.

    Build with :meth:`from_images`; compare a generated set with :meth:`distance`.
    """

    descriptors: list[torch.Tensor]
    resolution: int
    num_images: int
    descriptors_per_image: int
    min_resolution: int
    stats: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    """Per level, the reference's raw per-channel ``(mean, std)`` (for ``normalize="reference"``)."""

    @classmethod
    def from_images(cls, images: np.ndarray | torch.Tensor, descriptors_per_image: int = 128,
                    min_resolution: int = 16, seed: int = 0) -> "SWDReference":
        """Descriptors of ``images`` (uint8 ``(N, H, W, 3)`` or float ``(N, 3, H, W)``)."""
        raw = _descriptors(images, descriptors_per_image, min_resolution, seed, stats=[])
        stats = [_channel_stats(r) for r in raw]
        desc = [_normalise(r, st) for r, st in zip(raw, stats)]
        return cls(desc, int(_as_float_nchw(images[:1]).shape[-1]), len(images), descriptors_per_image,
                   min_resolution, stats)

    @property
    def level_resolutions(self) -> list[int]:
        """Side of each pyramid level, finest first."""
        return [self.resolution >> i for i in range(len(self.descriptors))]

    def distance(self, images: np.ndarray | torch.Tensor, num_projections: int = 512,
                 seed: int = 0, normalize: str = "each") -> dict[str, float]:
        """SWD x 1e3 between ``images`` and the reference, per level and averaged.

        Args:
            images: as many images as the reference, same resolution (uint8 NHWC or float NCHW).
            num_projections: random directions per level.
            seed: seed of patch positions (as the reference's by default) and, plus one, of the
                directions; fixed so that figures over training stay comparable.
            normalize: ``"each"`` (Karras et al.: each set's descriptors by its own per-channel mean and
                std, which makes the figure blind to a uniform loss of contrast in a band, i.e. to much of
                what blur does) or ``"reference"`` (both sets by the *reference's* statistics, so a set
                with weaker fine detail is farther: what a blur-aware realism distance needs; faceforge's
                deviation from the paper, used by the quality benchmarks).

        Returns:
            ``{"swd_<res>": ..., ..., "swd_avg": ...}`` (x 1e3, lower is better).

        Raises:
            ValueError: a different number of images or resolution.
        """
        x = _as_float_nchw(images)
        if x.shape[0] != self.num_images or x.shape[-1] != self.resolution:
            raise ValueError(f"need {self.num_images} images of {self.resolution} px, got {x.shape[0]} of "
                             f"{x.shape[-1]} px")
        if normalize not in ("each", "reference"):
            raise ValueError(f"normalize must be 'each' or 'reference', got {normalize!r}")
        if normalize == "reference" and self.stats is None:
            raise ValueError("this reference keeps no statistics: build it with SWDReference.from_images")
        desc = _descriptors(x, self.descriptors_per_image, self.min_resolution, seed,
                            stats=self.stats if normalize == "reference" else None)
        gen = torch.Generator().manual_seed(seed + 1)
        out = {}
        for res, a, b in zip(self.level_resolutions, self.descriptors, desc):
            out[f"swd_{res}"] = round(1e3 * sliced_wasserstein(a, b, num_projections, gen), 3)
        out["swd_avg"] = round(float(np.mean(list(out.values()))), 3)
        return out


def swd(images_a: np.ndarray | torch.Tensor, images_b: np.ndarray | torch.Tensor,
        descriptors_per_image: int = 128, num_projections: int = 512, min_resolution: int = 16,
        seed: int = 0, normalize: str = "each") -> dict[str, float]:
    """SWD x 1e3 between two image sets (same count and resolution), per pyramid level and averaged.

    Args:
        images_a, images_b: uint8 ``(N, H, W, 3)`` or float ``(N, 3, H, W)``; H = W a power of two
            ``>= min_resolution``.
        descriptors_per_image: 7x7 neighbourhoods drawn per image and level (128 in the paper).
        num_projections: random directions (512).
        min_resolution: coarsest pyramid level (16).
        seed: seed of positions and directions.
        normalize: ``"each"`` (the paper) or ``"reference"`` (both by ``images_a``'s statistics; see
            :meth:`SWDReference.distance`).

    Returns:
        ``{"swd_<res>": float, ..., "swd_avg": float}``.

    Example:
        >>> imgs = np.random.default_rng(0).integers(0, 255, (64, 32, 32, 3), dtype=np.uint8)
        >>> swd(imgs, imgs)["swd_avg"]
        0.0
    """
    ref = SWDReference.from_images(images_a, descriptors_per_image, min_resolution, seed)
    return ref.distance(images_b, num_projections, seed=seed, normalize=normalize)


# --------------------------------------------------------------------------------------------------
# Figures blur cannot pass (issue 14)

UTKFACE_FACE_ELLIPSE = ((0.5, 0.52), (0.36, 0.44))
"""``((cx, cy), (ax, ay))`` of the face-region ellipse on a ``utkface``-aligned crop, fractions of the side:
centred between the eyes (y 0.29) and the mouth (y 0.72) of the template (:mod:`faceforge.faces.align`),
from the brows to the chin and across the cheeks; hair, ears and background stay outside."""


def face_region_mask(size: int, ellipse: tuple[tuple[float, float], tuple[float, float]] = UTKFACE_FACE_ELLIPSE
                     ) -> np.ndarray:
    """Boolean ``(size, size)`` mask of the face region of an aligned crop (an ellipse).

    Args:
        size: crop side in px (>= 8).
        ellipse: ``((cx, cy), (ax, ay))``, centre and semi-axes as fractions of the side (default: the
            ``utkface`` template's face, :data:`UTKFACE_FACE_ELLIPSE`).

    Returns:
        bool ``(size, size)``, True inside (pixel centres ``(i + 0.5) / size``).

    Raises:
        ValueError: ``size < 8`` or non-positive axes.
    """
    (cx, cy), (ax, ay) = ellipse
    if size < 8 or ax <= 0 or ay <= 0:
        raise ValueError(f"need size >= 8 and positive axes, got {size}, {ellipse}")
    c = (np.arange(size) + 0.5) / size
    return ((c[None, :] - cx) / ax) ** 2 + ((c[:, None] - cy) / ay) ** 2 <= 1.0


def _gray(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"need a uint8 (H, W, 3) RGB image, got {getattr(rgb, 'dtype', type(rgb))} "
                         f"{getattr(rgb, 'shape', '')}")
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)


def _mask_for(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, bool)
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"mask of shape {mask.shape} does not fit an image of {shape}")
    mask = mask.astype(bool)
    if not mask.any():
        raise ValueError("the mask selects no pixel")
    return mask


def laplacian_variance(images: np.ndarray | Sequence[np.ndarray], mask: np.ndarray | None = None) -> np.ndarray:
    """Sharpness of each image: the variance of its Laplacian inside ``mask`` (Pech-Pacheco et al. 2000).

    The image is converted to gray (ITU-R BT.601 luma, ``cv2.COLOR_RGB2GRAY``, values 0-255), filtered
    with the 3x3 Laplacian ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]`` (``cv2.Laplacian``, ``ksize=1``,
    reflected borders) and the population variance of the response is taken over the masked pixels.
    Blur lowers it (a Gaussian of sigma ``s`` scales a band at frequency ``f`` by ``exp(-2 pi^2 s^2 f^2)``);
    noise and added texture raise it, so it is reported as a ratio beside the realism distances.

    Args:
        images: uint8 RGB ``(H, W, 3)``, ``(N, H, W, 3)`` or a sequence of ``(H, W, 3)``.
        mask: optional bool ``(H, W)`` region (e.g. :func:`face_region_mask`); default the whole image.

    Returns:
        float64 ``(N,)`` (``(1,)`` for one image), in grey levels squared, >= 0.

    Raises:
        ValueError: not uint8 RGB, or a mask that does not fit / selects nothing.
    """
    items = [images] if isinstance(images, np.ndarray) and images.ndim == 3 else list(images)
    out = np.empty(len(items), np.float64)
    for i, rgb in enumerate(items):
        lap = cv2.Laplacian(_gray(rgb), cv2.CV_64F, ksize=1, borderType=cv2.BORDER_REFLECT_101)
        out[i] = float(lap[_mask_for(mask, lap.shape)].var())
    return out


def sharpness_ratio(outputs: np.ndarray | Sequence[np.ndarray], inputs: np.ndarray | Sequence[np.ndarray],
                    mask: np.ndarray | None = None) -> np.ndarray:
    """Per-image ``laplacian_variance(output) / laplacian_variance(input)`` in the same region.

    1 = as sharp as the input; a blurred output is below 1 (the issue's aging outputs: median ~0.5).
    Compare images of the same side: resample one of them first if they differ.

    Args:
        outputs, inputs: uint8 RGB, same count and shapes (see :func:`laplacian_variance`).
        mask: optional bool ``(H, W)`` region.

    Returns:
        float64 ``(N,)`` ratios >= 0 (``inf`` where an input is perfectly flat).

    Raises:
        ValueError: counts or shapes differ, or bad images/mask.
    """
    a = laplacian_variance(outputs, mask)
    b = laplacian_variance(inputs, mask)
    if a.shape != b.shape:
        raise ValueError(f"{len(a)} outputs but {len(b)} inputs")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.maximum(b, 1e-300), np.inf)


def gaussian_blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a uint8 RGB image (``cv2.GaussianBlur``, kernel side ``2 ceil(3 sigma) + 1``,
    reflected borders), rounded back to uint8; ``sigma <= 0`` returns a copy.

    Args:
        rgb: uint8 ``(H, W, 3)``.
        sigma: standard deviation in px.

    Returns:
        uint8 ``(H, W, 3)``.
    """
    _gray(rgb)  # validates
    if sigma <= 0:
        return rgb.copy()
    k = 2 * int(np.ceil(3 * sigma)) + 1
    out = cv2.GaussianBlur(rgb.astype(np.float32), (k, k), sigma, borderType=cv2.BORDER_REFLECT_101)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def blur_to_sharpness(rgb: np.ndarray, target: float, mask: np.ndarray | None = None, sigma_max: float = 8.0,
                      iterations: int = 24, rtol: float = 0.005) -> tuple[np.ndarray, float]:
    """Blur ``rgb`` until its sharpness (:func:`laplacian_variance` in ``mask``) equals ``target``.

    Bisection on the Gaussian sigma in ``[0, sigma_max]`` (the Laplacian variance falls monotonically
    with sigma, up to uint8 rounding): stops when within ``rtol`` of the target or after ``iterations``
    halvings. An input already at or below the target is returned unblurred (sigma 0); a target below
    what ``sigma_max`` reaches gives the ``sigma_max`` blur.

    Args:
        rgb: uint8 ``(H, W, 3)``.
        target: Laplacian variance to reach (e.g. the translated output's), >= 0.
        mask: optional bool ``(H, W)`` region the sharpness is measured in.
        sigma_max: largest sigma tried, px.
        iterations: bisection steps (24: sigma to ``sigma_max / 2**24``).
        rtol: relative tolerance on the sharpness.

    Returns:
        ``(blurred uint8 (H, W, 3), sigma)``.

    Raises:
        ValueError: negative target or bad image/mask.
    """
    if target < 0 or not np.isfinite(target):
        raise ValueError(f"target sharpness must be finite and >= 0, got {target}")
    sharp = lambda img: float(laplacian_variance(img, mask)[0])  # noqa: E731
    if sharp(rgb) <= target:
        return rgb.copy(), 0.0
    hi_img = gaussian_blur(rgb, sigma_max)
    if sharp(hi_img) >= target:
        return hi_img, float(sigma_max)
    lo, hi = 0.0, float(sigma_max)
    best, best_sigma, best_err = hi_img, hi, abs(sharp(hi_img) - target)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        img = gaussian_blur(rgb, mid)
        v = sharp(img)
        err = abs(v - target)
        if err < best_err:
            best, best_sigma, best_err = img, mid, err
        if err <= rtol * max(target, 1e-12):
            break
        if v > target:
            lo = mid
        else:
            hi = mid
    return best, best_sigma


def blur_control(inputs: np.ndarray | Sequence[np.ndarray], outputs: np.ndarray | Sequence[np.ndarray],
                 mask: np.ndarray | None = None, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """The blur control of a set of translations: each input blurred to its own output's sharpness.

    Whatever a judge (an age estimator, an identity network) reports for these images, blur alone can
    produce; a translation's effect is what it shows *beyond* its blur control.

    Args:
        inputs, outputs: uint8 RGB ``(N, H, W, 3)`` (or sequences), same shapes.
        mask: optional bool ``(H, W)`` region for the sharpness.
        **kwargs: passed to :func:`blur_to_sharpness`.

    Returns:
        ``(blurred uint8 (N, H, W, 3), sigmas float64 (N,))``.

    Raises:
        ValueError: counts or shapes differ.
    """
    inputs, outputs = list(inputs), list(outputs)
    if len(inputs) != len(outputs):
        raise ValueError(f"{len(inputs)} inputs but {len(outputs)} outputs")
    targets = laplacian_variance(outputs, mask) if outputs else np.zeros(0)
    blurred, sigmas = [], []
    for x, t in zip(inputs, targets):
        if x.shape != outputs[0].shape:
            raise ValueError(f"input of shape {x.shape} vs outputs of {outputs[0].shape}")
        img, s = blur_to_sharpness(x, float(t), mask, **kwargs)
        blurred.append(img)
        sigmas.append(s)
    return (np.stack(blurred) if blurred else np.zeros((0,) + (inputs[0].shape if inputs else (0, 0, 3)), np.uint8),
            np.asarray(sigmas, np.float64))


COLOUR_CONTROL_RATIO_RANGE = (0.2, 5.0)
"""Clamp of the per-channel standard-deviation ratios in :func:`colour_control` (wide: the control should
carry the output's colour statistics, not a tamed version of them)."""


def colour_control(inputs: np.ndarray | Sequence[np.ndarray], outputs: np.ndarray | Sequence[np.ndarray],
                   mask: np.ndarray, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """The colour control of a set of translations: each input given its own output's global colour
    statistics, then blurred to its output's sharpness.

    A judge that reads colour (an age estimator takes a yellowed, greyed or reddened face for an older
    one) can be satisfied by a colour cast alone; this control has the output's cast and blur but none of
    its structure (no wrinkle, no shape change), so a translation's effect is what it shows *beyond* it.
    Colour: Reinhard, Ashikhmin, Gooch, Shirley, "Color Transfer between Images", IEEE CG&A 2001, i.e.
    per-channel means and standard deviations in CIE L*a*b* matched inside ``mask``
    (:func:`faceforge.swap.reinhard_transfer` with plain means/deviations, ratios clamped to
    :data:`COLOUR_CONTROL_RATIO_RANGE`); blur: :func:`blur_to_sharpness`.

    Args:
        inputs, outputs: uint8 RGB ``(N, H, W, 3)`` (or sequences), same shapes.
        mask: bool ``(H, W)`` region whose colour statistics are matched and whose sharpness is measured
            (e.g. :func:`face_region_mask`).
        **kwargs: passed to :func:`blur_to_sharpness`.

    Returns:
        ``(controls uint8 (N, H, W, 3), blur sigmas float64 (N,))``.

    Raises:
        ValueError: counts or shapes differ, or the mask does not fit the images.
    """
    from faceforge.swap import reinhard_transfer  # the colour transfer the face swap uses

    inputs, outputs = list(inputs), list(outputs)
    if len(inputs) != len(outputs):
        raise ValueError(f"{len(inputs)} inputs but {len(outputs)} outputs")
    cast = [reinhard_transfer(x, y, mask, ratio_range=COLOUR_CONTROL_RATIO_RANGE,
                              chroma_max=COLOUR_CONTROL_RATIO_RANGE[1], robust=False)
            for x, y in zip(inputs, outputs)]
    return blur_control(cast, outputs, mask, **kwargs)  # (empty inputs: blur_control's empty answer)


def paste_band(alpha: np.ndarray, pad: int = 2, eps: float = 0.01) -> np.ndarray:
    """The seam band of a paste: pixels where the blending mask ramps (``eps < alpha < 1 - eps``),
    widened by ``pad`` px on both sides (a 3x3 dilation ``pad`` times) so a hard edge (no ramp) still
    yields a band around its step.

    Args:
        alpha: float ``(H, W)`` paste mask in [0, 1] in the photo's pixels (e.g. the translator's feathered
            square warped back, as :func:`faceforge.faces.align.paste_back` blends with).
        pad: dilation in px (>= 0).
        eps: margin from 0 and 1.

    Returns:
        bool ``(H, W)``.

    Raises:
        ValueError: not a 2-D array, or negative ``pad``.
    """
    alpha = np.asarray(alpha, np.float32)
    if alpha.ndim != 2 or pad < 0:
        raise ValueError(f"alpha must be (H, W) and pad >= 0, got {alpha.shape}, {pad}")
    ramp = (alpha > eps) & (alpha < 1 - eps)
    step = cv2.morphologyEx((alpha > 0.5).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    band = (ramp | step).astype(np.uint8)
    if pad:
        band = cv2.dilate(band, np.ones((3, 3), np.uint8), iterations=pad)
    return band.astype(bool)


def _gradient_magnitude(rgb: np.ndarray) -> np.ndarray:
    g = _gray(rgb)
    gx = cv2.Sobel(g, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    gy = cv2.Sobel(g, cv2.CV_64F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    return np.hypot(gx, gy)


def seam_ratio(output: np.ndarray, reference: np.ndarray, band: np.ndarray) -> float:
    """Seam figure: mean gradient magnitude in ``band`` of ``output`` over that of ``reference``.

    Gradients: 3x3 Sobel on the gray image (0-255 levels). A paste that blends in leaves the band's
    gradients as the photo had them (ratio ~1); a colour step, a ghost contour or a rectangular patch
    edge at the paste boundary adds gradient (ratio > 1); a smear lowers it (< 1).

    Args:
        output: uint8 ``(H, W, 3)`` photo after the paste.
        reference: uint8 ``(H, W, 3)`` the same photo before (the input).
        band: bool ``(H, W)`` (:func:`paste_band`).

    Returns:
        The ratio (float >= 0; ``inf`` when the reference is flat in the band).

    Raises:
        ValueError: shapes differ, bad images, or an empty band.
    """
    if output.shape != reference.shape:
        raise ValueError(f"output {output.shape} and reference {reference.shape} differ")
    band = _mask_for(band, output.shape[:2])
    a = float(_gradient_magnitude(output)[band].mean())
    b = float(_gradient_magnitude(reference)[band].mean())
    return a / b if b > 0 else float("inf")


def max_chroma(rgb: np.ndarray, mask: np.ndarray | None = None, percentile: float = 100.0) -> float:
    """Chroma of an image: the ``percentile`` (default the maximum) over pixels of ``max(R, G, B) -
    min(R, G, B)`` (the HSV/HSL chroma, Joblove & Greenberg, SIGGRAPH 1978), in 0-255 levels.

    A grayscale image has 0 everywhere; a sepia cast on a grayscale photo shows as tens of levels.

    Args:
        rgb: uint8 ``(H, W, 3)``.
        mask: optional bool ``(H, W)`` region.
        percentile: in [0, 100]; 100 = maximum, 99 ignores a few stray pixels.

    Returns:
        float in [0, 255].

    Raises:
        ValueError: bad image, mask or percentile.
    """
    _gray(rgb)
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    c = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2).astype(np.int16)
    return float(np.percentile(c[_mask_for(mask, c.shape)], percentile))


def kernel_distance(features_a: np.ndarray, features_b: np.ndarray, degree: int = 3, coef0: float = 1.0,
                    gamma: float | None = None, subsets: int = 10, subset_size: int | None = None,
                    seed: int = 0) -> dict[str, float]:
    """Kernel (KID-style) distance between two sets of feature vectors: the unbiased squared MMD with the
    polynomial kernel ``k(x, y) = (gamma x.y + coef0) ** degree`` (Binkowski, Sutherland, Arbel,
    Gretton, "Demystifying MMD GANs", ICLR 2018: KID uses Inception features, ``gamma = 1/d``, degree 3,
    averaged over random subsets). Here the features are whatever the caller gives, e.g. the
    face-identity network's 128-d embeddings (:func:`faceforge.identity.embed_many`): a figure relative
    to the same distance between two real sets, not comparable with anyone's KID.

    The unbiased estimate can be slightly negative when the sets come from one distribution.

    Args:
        features_a, features_b: float ``(N, d)`` and ``(M, d)``, ``N, M >= 2``.
        degree, coef0, gamma: kernel parameters (``gamma`` default ``1 / d``).
        subsets: random subsets averaged (KID's default 100 with 1000 images; 10 here).
        subset_size: size of each subset (default half of ``min(N, M)``, at least 2; drawn without
            replacement, so the spread over subsets means something).
        seed: numpy seed of the subsets.

    Returns:
        ``{"mmd2": mean, "std": std over subsets}`` (x 1 — unitless, lower is better).

    Raises:
        ValueError: shapes differ in ``d`` or fewer than 2 vectors per set.
    """
    a = np.asarray(features_a, np.float64)
    b = np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"need (N, d) and (M, d) features with N, M >= 2, got {a.shape} and {b.shape}")
    d = a.shape[1]
    gamma = 1.0 / d if gamma is None else float(gamma)
    m = max(2, min(len(a), len(b)) // 2) if subset_size is None else int(subset_size)
    if not 2 <= m <= min(len(a), len(b)):
        raise ValueError(f"subset_size must be in [2, {min(len(a), len(b))}], got {m}")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(max(1, subsets)):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = (gamma * x @ x.T + coef0) ** degree
        kyy = (gamma * y @ y.T + coef0) ** degree
        kxy = (gamma * x @ y.T + coef0) ** degree
        off = m * (m - 1)
        values.append((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean())
    return {"mmd2": float(np.mean(values)), "std": float(np.std(values))}


def summarize(values: np.ndarray | Sequence[float], digits: int = 3) -> dict[str, float]:
    """Median, quartiles, mean, 10th/90th percentiles and count of finite ``values`` (for result tables).

    Returns:
        ``{"n", "median", "q1", "q3", "mean", "p10", "p90"}``; NaN figures (``n`` 0) when nothing is finite.
    """
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0, **{k: float("nan") for k in ("median", "q1", "q3", "mean", "p10", "p90")}}
    q = np.percentile(v, [10, 25, 50, 75, 90])
    return {"n": int(v.size), "median": round(float(q[2]), digits), "q1": round(float(q[1]), digits),
            "q3": round(float(q[3]), digits), "mean": round(float(v.mean()), digits),
            "p10": round(float(q[0]), digits), "p90": round(float(q[4]), digits)}
