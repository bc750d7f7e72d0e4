"""StyleGAN2 features (faceforge.stylegan): generation, style-mix matrix, toonify layer swapping,
projection, latent and Delaunay morphs, the personal emoji, and Face Mesh landmarks.

Generators are tiny (16 px, <= 16 feature maps, random weights) so every test takes well under a few
seconds on one CPU core; the behaviour checked does not depend on trained weights.
"""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
import torch

from faceforge import stylegan as S
from faceforge.models.stylegan2 import StyleGAN2Generator, estimate_w_avg, mix_styles

torch.set_num_threads(1)
Z = 16
R = 16


def tiny(seed: int = 0, resolution: int = R) -> StyleGAN2Generator:
    torch.manual_seed(seed)
    g = StyleGAN2Generator(resolution, Z, Z, channel_base=8 * resolution, channel_max=16).eval()
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.2)
        g.mapping.w_avg.copy_(estimate_w_avg(g, 512))
        # a trained generator's images lie in ~[-1, 1]; scale the random toRGB layers to that range
        # (projection compares with uint8 targets, which cannot hold values outside it)
        std = float(g.synthesis(g.mapping(torch.randn(16, Z), psi=0.6)).std())
        for name, p in g.named_parameters():
            if name.endswith("torgb.weight"):
                p.mul_(0.5 / std)
    return g


@pytest.fixture(scope="module")
def G() -> StyleGAN2Generator:
    return tiny()


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


# ------------------------------------------------------------------------------------ generation ---
def test_seed_z_follows_the_nvlabs_convention():
    z = S.seed_z([0, 42], 8)
    assert z.dtype == torch.float32 and z.shape == (2, 8)
    np.testing.assert_allclose(z[1].numpy(), np.random.RandomState(42).randn(8).astype(np.float32))
    with pytest.raises(ValueError, match="seeds"):
        S.seed_z([-1], 8)


def test_generate_is_deterministic_and_batch_independent(G):
    imgs = S.generate(G, [3, 5, 7], psi=0.7)
    assert imgs.shape == (3, R, R, 3) and imgs.dtype == np.uint8
    assert imgs.std() > 5  # not a flat image
    one = S.generate(G, [5], psi=0.7)
    assert max_diff(imgs[1], one[0]) <= 1  # batching changes nothing but float rounding
    assert max_diff(S.generate(G, [3, 5, 7], psi=0.7), imgs) == 0
    # psi = 0: every seed is the average face
    avg = S.generate(G, [1, 2], psi=0.0)
    assert max_diff(avg[0], avg[1]) == 0


def test_style_mix_grid_cells(G):
    rows, cols = [1, 2], [3, 4, 5]
    crossover = S.layers_up_to(G, 8)
    assert crossover == 4
    grid = S.style_mix(G, rows, cols, crossover=crossover, psi=0.8)
    assert grid.shape == ((len(rows) + 1) * R, (len(cols) + 1) * R, 3)

    def cell(i, j):
        return grid[i * R:(i + 1) * R, j * R:(j + 1) * R]

    assert not cell(0, 0).any()  # the corner is black
    col_imgs, row_imgs = S.generate(G, cols, psi=0.8), S.generate(G, rows, psi=0.8)
    for j in range(len(cols)):
        assert max_diff(cell(0, j + 1), col_imgs[j]) <= 1
    for i in range(len(rows)):
        assert max_diff(cell(i + 1, 0), row_imgs[i]) <= 1
    # cell (i, j): coarse layers from the column seed, the rest from the row seed
    ws = mix_styles(S.seed_ws(G, [cols[2]], 0.8), S.seed_ws(G, [rows[1]], 0.8), crossover)
    assert max_diff(cell(2, 3), S.synthesize(G, ws)[0]) <= 1
    assert max_diff(cell(2, 3), col_imgs[2]) > 10 and max_diff(cell(2, 3), row_imgs[1]) > 10
    # crossover at the ends: all styles from one side
    all_col = S.style_mix(G, rows, cols, crossover=G.num_ws, psi=0.8)
    assert max_diff(all_col[R:2 * R, R:2 * R], col_imgs[0]) <= 1
    all_row = S.style_mix(G, rows, cols, resolution=None, crossover=0, psi=0.8)
    assert max_diff(all_row[R:2 * R, R:2 * R], row_imgs[0]) <= 1
    with pytest.raises(ValueError):
        S.style_mix(G, rows, cols, crossover=G.num_ws + 1)
    with pytest.raises(ValueError):
        S.style_mix(G, [], cols)


# ------------------------------------------------------------------------------------ toonify -------
@pytest.fixture(scope="module")
def finetuned(G) -> StyleGAN2Generator:
    g = copy.deepcopy(G)
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.startswith("synthesis"):
                p.add_(torch.randn_like(p) * 0.3)
    return g


def test_toonify_takes_low_resolution_blocks_from_the_structure_model(G, finetuned):
    before = {k: v.clone() for k, v in G.state_dict().items()}
    ws = S.seed_ws(G, [11, 12], psi=0.7)

    def render(model):
        with torch.no_grad():
            return model.synthesis(ws)

    base_img, toon_img = render(G), render(finetuned)
    # Toonify: structure (low-res) from the fine-tuned model; swap at R = the whole fine-tuned synthesis
    assert torch.equal(render(S.toonify(G, finetuned, swap_resolution=R)), toon_img)
    assert torch.equal(render(S.toonify(G, finetuned, swap_resolution=0)), base_img)
    # the reverse direction (paper fig. 1d): swap at R = the base model exactly
    assert torch.equal(render(S.toonify(G, finetuned, swap_resolution=R, structure_from="base")), base_img)
    mixed = S.toonify(G, finetuned, swap_resolution=8)
    assert not torch.equal(render(mixed), base_img) and not torch.equal(render(mixed), toon_img)
    state = mixed.state_dict()
    assert torch.equal(state["synthesis.b8.conv1.weight"], finetuned.state_dict()["synthesis.b8.conv1.weight"])
    assert torch.equal(state["synthesis.b16.conv1.weight"], G.state_dict()["synthesis.b16.conv1.weight"])
    assert torch.equal(state["mapping.fc0.weight"], G.state_dict()["mapping.fc0.weight"])  # base mapping
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())  # inputs untouched


def test_toonify_rejects_different_architectures(G):
    with pytest.raises(ValueError, match="architecture"):
        S.toonify(G, tiny(resolution=32), swap_resolution=8)
    with pytest.raises(ValueError, match="structure_from"):
        S.toonify(G, G, structure_from="toon")


# ------------------------------------------------------------------------------------ projection ----
def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def test_projection_recovers_a_generated_face(G):
    w_true = S.seed_ws(G, [21], psi=0.5)[0, 0]
    target = S.synthesize(G, w_true[None])[0]
    start = S.synthesize(G, G.w_avg[None])[0]
    result = S.project(G, target, steps=60, num_w_samples=256)
    # closer to the true latent, and to the target image, than the starting point w_avg
    assert float((result.w - w_true).norm()) < 0.7 * float((G.w_avg - w_true).norm())
    assert result.ws.shape == (1, G.num_ws, Z) and result.w.shape == (Z,)
    assert torch.equal(result.ws[0, 3], result.w)  # W mode: one vector on every layer
    assert len(result.losses) == 61 and result.losses[-1] < 0.5 * result.losses[0]
    assert _mse(result.image, target) < 0.3 * _mse(start, target)
    assert max_diff(result.image, S.synthesize(G, result.ws)[0]) <= 1
    # deterministic for a fixed seed
    again = S.project(G, target, steps=5, num_w_samples=256)
    assert torch.equal(again.ws, S.project(G, target, steps=5, num_w_samples=256).ws)


def test_projection_w_plus_with_noise(G):
    target = S.generate(G, [22], psi=0.6)[0]
    before = {k: v.clone() for k, v in G.state_dict().items()}
    result = S.project(G, np.kron(target, np.ones((2, 2, 1), np.uint8)), steps=30, w_plus=True,
                       optimize_noise=True, num_w_samples=256)  # a 32 px target is resized to 16
    assert result.w is None and result.ws.shape == (1, G.num_ws, Z)
    assert not torch.allclose(result.ws[0, 0], result.ws[0, -1])  # W+: layers differ
    assert set(result.noise) and all(abs(float(n.std()) - 1) < 0.1 for n in result.noise.values())
    assert result.losses[-1] < result.losses[0]
    rendered = S.synthesize(S.with_noise(G, result.noise), result.ws)[0]
    assert max_diff(rendered, result.image) <= 1
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    assert all(p.grad is None for p in G.parameters())
    with pytest.raises(ValueError, match="square"):
        S.project(G, np.zeros((16, 20, 3), np.uint8))


def _tiny_face_net():
    """A small random network of dlib's ResNet shape (the identity term needs only its form)."""
    from faceforge.models.dlib_resnet import DlibFaceResNet

    torch.manual_seed(3)
    return DlibFaceResNet(widths=(8, 8, 8, 8, 8), depths=(1, 1, 1, 1, 1), embedding_dim=16).eval().requires_grad_(False)


class _NoNet(torch.nn.Module):
    def forward(self, x):
        raise AssertionError("the identity network ran with id_weight = 0")


def _embedding_distance(net, a: np.ndarray, b: np.ndarray) -> float:
    with torch.no_grad():
        ea, eb = (net(S.identity_chip(S._to_tensor(x))) for x in (a, b))
    return float((ea - eb).norm())


def test_projection_id_weight_zero_is_unchanged(G):
    target = S.generate(G, [23], psi=0.6)[0]
    before = S.project(G, target, steps=8, num_w_samples=256)
    off = S.project(G, target, steps=8, num_w_samples=256, id_weight=0.0, feature_weight=0.0,
                    identity_target=S.generate(G, [24])[0], identity_net=_NoNet())
    assert torch.equal(off.ws, before.ws) and np.array_equal(off.image, before.image)
    assert off.losses == before.losses and off.id_distances == []


def test_projection_identity_term_pulls_towards_the_identity_target(G):
    """Constructed case: the pixel target is one face, the identity target another; the identity term must
    bring the projection's embedding closer to the identity target's than the pixel objective alone."""
    net = _tiny_face_net()
    target, other = S.generate(G, [25, 26], psi=0.8)
    plain = S.project(G, target, steps=40, num_w_samples=256)
    pulled = S.project(G, target, steps=40, num_w_samples=256, id_weight=3.0, identity_target=other,
                       identity_net=net)
    assert _embedding_distance(net, pulled.image, other) < 0.8 * _embedding_distance(net, plain.image, other)
    assert len(pulled.id_distances) == 41 and pulled.id_distances[-1] < pulled.id_distances[0]
    # the features term runs and reports the same distances
    both = S.project(G, target, steps=3, num_w_samples=256, id_weight=1.0, feature_weight=1.0, identity_net=net)
    assert len(both.id_distances) == 4 and np.isfinite(both.losses).all()


@pytest.mark.parametrize("kwargs, match", [({"id_weight": -1.0}, "id_weight"), ({"id_weight": float("nan")}, "id_weight"),
                                           ({"feature_weight": float("inf")}, "feature_weight"),
                                           ({"id_weight": 1.0, "identity_target": np.zeros((8, 9, 3), np.uint8)},
                                            "identity_target")])
def test_projection_bad_identity_arguments(G, kwargs, match):
    with pytest.raises(ValueError, match=match):
        S.project(G, S.generate(G, [1])[0], steps=1, num_w_samples=16, identity_net=_tiny_face_net(), **kwargs)


def test_resolve_id_weight(monkeypatch):
    from faceforge import identity

    monkeypatch.setattr(identity, "is_available", lambda: True)
    assert S.resolve_id_weight(None) == S.DEFAULT_ID_WEIGHT > 0
    assert S.resolve_id_weight(None, "ffhq") == 0.0  # the chip is cut at utkface's landmarks
    monkeypatch.setattr(identity, "is_available", lambda: False)
    assert S.resolve_id_weight(None) == 0.0 and S.resolve_id_weight(0, "ffhq") == 0.0
    for bad in (-0.5, S.ID_WEIGHT_MAX + 1, float("nan"), "x"):
        with pytest.raises(ValueError, match="id_weight must be a number"):
            S.resolve_id_weight(bad)
    with pytest.raises(ValueError, match="utkface"):
        S.resolve_id_weight(1.0, "ffhq")


def test_server_and_cli_name_the_library_id_weight_default_and_limit():
    from faceforge.cli.stylegan import ID_WEIGHT
    from server.request_models import ID_WEIGHT_MAX, ProjectRequest

    assert ID_WEIGHT_MAX == S.ID_WEIGHT_MAX
    assert f"default: {S.DEFAULT_ID_WEIGHT:g} when" in ID_WEIGHT(lambda: None).__click_params__[0].help
    assert f"Default: {S.DEFAULT_ID_WEIGHT:g} " in ProjectRequest.model_fields["id_weight"].description


def test_projection_loss_and_ssim():
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert float(S.ssim(x, x)) == pytest.approx(1.0, abs=1e-5)
    assert float(S.projection_loss(x, x)) == pytest.approx(0.0, abs=1e-5)
    assert float(S.projection_loss(x, -x)) > float(S.projection_loss(x, x * 0.9))


# ------------------------------------------------------------------------------------ morphs --------
def test_morph_latent_endpoints(G):
    wa, wb = S.seed_ws(G, [1], 0.7)[0, 0], S.seed_ws(G, [2], 0.7)[0, 0]
    frames = S.morph_latent(G, wa, wb, [0.0, 0.5, 1.0])
    assert frames.shape == (3, R, R, 3)
    ends = S.generate(G, [1, 2], psi=0.7)
    assert max_diff(frames[0], ends[0]) <= 1 and max_diff(frames[2], ends[1]) <= 1
    assert S.morph_latent(G, wa, wb, 0.5).shape == (R, R, 3)
    with pytest.raises(ValueError, match="latents"):
        S.morph_latent(G, torch.zeros(3), wb, 0.5)


def _dot_image(cx: int, cy: int, size: int = 64) -> np.ndarray:
    img = np.zeros((size, size, 3), np.uint8)
    img[cy - 2:cy + 3, cx - 2:cx + 3] = 255
    return img


def test_morph_delaunay_endpoints_and_midpoint():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (48, 40, 3), np.uint8), rng.integers(0, 256, (48, 40, 3), np.uint8)
    pa = np.array([[10, 12], [30, 12], [20, 25], [20, 36]], np.float32)
    pb = pa + rng.normal(0, 3, pa.shape).astype(np.float32)
    frames = S.morph_delaunay(a, b, pa, pb, [0.0, 0.3, 1.0])
    assert frames.shape == (3, 48, 40, 3) and frames.dtype == np.uint8
    assert max_diff(frames[0], a) == 0 and max_diff(frames[2], b) == 0
    # a feature moving from x=20 (A) to x=44 (B) sits half way at t=0.5, not doubled as in a cross-fade
    corners = [[12, 12], [52, 12], [12, 52], [52, 52]]
    pts_a = np.array([[20, 32], *corners], np.float32)
    pts_b = np.array([[44, 32], *corners], np.float32)
    mid = S.morph_delaunay(_dot_image(20, 32), _dot_image(44, 32), pts_a, pts_b, 0.5)
    ys, xs = np.nonzero(mid[..., 0] > 200)
    assert len(xs) > 0 and abs(xs.mean() - 32) <= 1 and abs(ys.mean() - 32) <= 1
    with pytest.raises(ValueError, match="size"):
        S.morph_delaunay(a, b[:40], pa, pb, 0.5)
    with pytest.raises(ValueError, match="t must be"):
        S.morph_delaunay(a, b, pa, pb, 1.5)


# ------------------------------------------------------------------------------------ emoji, mesh ---
def test_personal_emoji_ellipse_and_contour():
    rgb = np.full((64, 64, 3), 120, np.uint8)
    emoji = S.personal_emoji(rgb, size=None)  # at the face's own resolution
    assert emoji.dtype == np.uint8 and emoji.shape[2] == 4
    assert emoji.shape[0] < 64 or emoji.shape[1] < 64  # cropped to the face
    h, w = emoji.shape[:2]
    assert emoji[h // 2, w // 2, 3] == 255 and emoji[0, 0, 3] < 30  # opaque face, transparent corner
    assert (emoji[..., :3] == 120).all()
    square = np.array([[16, 16], [48, 16], [48, 40], [16, 40], [30, 30]], np.float32)
    boxed = S.personal_emoji(rgb, points=square, size=None)
    assert 33 <= boxed.shape[1] <= 42 and 25 <= boxed.shape[0] <= 34  # hull 33 x 25 px + soft edge


def _contour_deviation(alpha: np.ndarray) -> float:
    """Largest distance (px) of the alpha = 0.5 contour from the ellipse fitted to it."""
    cs, _ = cv2.findContours((alpha >= 128).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(cs, key=len).reshape(-1, 2).astype(np.float64)
    (cx, cy), (d1, d2), angle = cv2.fitEllipse(c.astype(np.float32))
    t = np.deg2rad(angle)
    x, y = c[:, 0] - cx, c[:, 1] - cy
    u, v = x * np.cos(t) + y * np.sin(t), -x * np.sin(t) + y * np.cos(t)
    r = np.sqrt((u / (d1 / 2)) ** 2 + (v / (d2 / 2)) ** 2)
    return float(np.abs(r - 1).max() * (d1 + d2) / 4)


def _edge_bands(alpha: np.ndarray) -> list[int]:
    """Width (px) of the soft edge (5 % < alpha < 95 %) left, right, top and bottom through the centre."""
    h, w = alpha.shape
    row, col = alpha[h // 2], alpha[:, w // 2]
    soft = lambda a: int(((a >= 13) & (a <= 242)).sum())  # noqa: E731
    return [soft(row[:w // 2]), soft(row[w // 2:]), soft(col[:h // 2]), soft(col[h // 2:])]


def test_emoji_of_a_32px_face_is_256px_with_a_smooth_closed_contour():
    rng = np.random.default_rng(0)
    rgb = cv2.resize(rng.integers(60, 200, (8, 8, 3), dtype=np.uint8), (32, 32), interpolation=cv2.INTER_CUBIC)
    emoji = S.personal_emoji(rgb, upscaler="lanczos")
    assert emoji.dtype == np.uint8 and emoji.shape[2] == 4 and max(emoji.shape[:2]) == S.EMOJI_SIZE == 256
    assert 200 <= emoji.shape[1] <= 240  # an upright oval, cropped to it
    a = emoji[..., 3]
    h, w = a.shape
    assert a[h // 2, w // 2] == 255 and max(a[0, 0], a[0, -1], a[-1, 0], a[-1, -1]) == 0  # transparent corners
    assert a[0].max() < 30 and a[-1].max() < 30 and a[:, 0].max() < 30 and a[:, -1].max() < 30  # closed oval
    assert 0.4 < (a == 255).mean() < 0.7 and (a == 0).mean() > 0.1  # opaque face, transparent background
    bands = _edge_bands(a)  # feathered at 2 % of the 256 px drawing: ~17 px all round
    assert all(12 <= b <= 22 for b in bands) and max(bands) - min(bands) <= 3, bands
    assert _contour_deviation(a) < 1.0  # drawn at 256 px: the contour is a clean ellipse
    # the old way (mask at 32 px, then enlarged) is what this test tells apart: a coarser, uneven edge
    small = S.personal_emoji(rgb, size=None)
    blown = cv2.resize(small, (small.shape[1] * 256 // small.shape[0], 256), interpolation=cv2.INTER_LINEAR)
    assert _contour_deviation(blown[..., 3]) > 1.5
    assert max(_edge_bands(blown[..., 3])) - min(_edge_bands(blown[..., 3])) > 3
    # the face itself was enlarged (not a 32 px image under a big mask): the RGB follows the input
    centre = cv2.resize(emoji[..., :3], (w // 8, h // 8), interpolation=cv2.INTER_AREA)
    assert centre.std() > 10


def test_emoji_sizes_landmarks_upscalers_and_errors():
    rgb = np.full((32, 32, 3), 120, np.uint8)
    for size in (128, 300):
        assert max(S.personal_emoji(rgb, size=size, upscaler="classical").shape[:2]) == size
    big = np.full((512, 512, 3), 90, np.uint8)
    assert max(S.personal_emoji(big, size=128).shape[:2]) == 128  # a large face is shrunk, not enlarged
    square = np.array([[8, 8], [24, 8], [24, 20], [8, 20]], np.float32)  # hull 16 x 12 px at 32 px
    boxed = S.personal_emoji(rgb, points=square, upscaler="lanczos")
    assert boxed.shape[1] == 256 and 180 <= boxed.shape[0] <= 210  # the landmark hull, scaled with the face
    strided = np.repeat(square, 2, axis=1)[:, ::2]  # a non-contiguous view (as Face Mesh returns its points)
    assert np.array_equal(S.personal_emoji(rgb, points=strided, upscaler="lanczos"), boxed)
    with pytest.raises(ValueError, match="size"):
        S.personal_emoji(rgb, size=8)
    with pytest.raises(ValueError, match="upscaler"):
        S.personal_emoji(rgb, upscaler="bicubic")


def test_emoji_upscaler_uses_gpen_when_configured(tmp_path):
    from faceforge.checkpoints import save_checkpoint
    from faceforge.errors import WeightsNotFoundError
    from faceforge.models.gpen import GPEN
    from faceforge.restore import upscale_face

    face = np.full((32, 32, 3), 120, np.uint8)
    with pytest.raises(WeightsNotFoundError):
        upscale_face(face, (64, 64), "gpen", environ={})
    assert upscale_face(face, (64, 64), "auto", environ={})[1] == "classical"
    torch.manual_seed(0)
    config = {"size": 16, "style_dim": 16, "n_mlp": 2, "channel_multiplier": 1, "narrow": 1 / 32}
    path = save_checkpoint(tmp_path / "G_ema.pt", GPEN(**config), "gpen", config, {"face_template": "utkface"})
    out, used = upscale_face(face, (64, 64), "auto", environ={"FACEFORGE_GPEN_WEIGHTS": str(path)})
    assert used == "gpen" and out.shape == (64, 64, 3)
    assert upscale_face(face, (16, 16), "auto")[1] == "area"


def test_face_mesh_landmarks_on_a_real_photo(astronaut_rgb):
    pytest.importorskip("ai_edge_litert")
    from faceforge.faces.detect import FaceDetector
    from faceforge.faces.landmarks import FaceMesh, blazeface_points

    detector = FaceDetector()
    mesh = FaceMesh(detector)
    pts = mesh(astronaut_rgb)
    face = detector.detect(astronaut_rgb)[0]
    assert pts.shape == (468, 2) and pts.dtype == np.float32
    x0, y0, x1, y1 = face.box
    margin = 0.2 * (x1 - x0)
    assert (pts[:, 0] > x0 - margin).all() and (pts[:, 0] < x1 + margin).all()
    assert (pts[:, 1] > y0 - margin).all() and (pts[:, 1] < y1 + margin).all()
    assert np.linalg.norm(pts[1] - face.keypoints[2]) < 0.1 * (x1 - x0)  # mesh nose tip ~ BlazeFace nose
    assert pts[152, 1] > pts[1, 1] > pts[10, 1]  # chin below nose below forehead
    six = blazeface_points(detector)(astronaut_rgb)
    assert six.shape == (6, 2)
    # morph a face to its mirror image with the mesh: endpoints exact, a real in-between frame
    flipped = np.ascontiguousarray(astronaut_rgb[:, ::-1])
    mid = S.morph_delaunay(astronaut_rgb, flipped, pts, mesh(flipped), [0.0, 0.5])
    assert max_diff(mid[0], astronaut_rgb) == 0 and mid[1].std() > 10


# ------------------------------------------------------------------------------------ CLI -----------
def test_cli_generate_mix_and_latent_morph(G, tmp_path):
    from click.testing import CliRunner

    from faceforge.checkpoints import save_checkpoint
    from faceforge.cli import main

    config = {"resolution": R, "z_dim": Z, "w_dim": Z, "channel_base": 8 * R, "channel_max": 16}
    weights = save_checkpoint(tmp_path / "g.pt", G, "stylegan2", config)
    runner = CliRunner()
    out = tmp_path / "faces.png"
    result = runner.invoke(main, ["stylegan", "generate", "--weights", str(weights), "--seeds", "0-2,7",
                                  "--psi", "0.7", "-o", str(out)])
    assert result.exit_code == 0, result.output
    from PIL import Image
    strip = np.asarray(Image.open(out))
    assert strip.shape == (R, 4 * R, 3)
    assert np.array_equal(strip[:, 3 * R:], S.generate(G, [7], psi=0.7)[0])
    result = runner.invoke(main, ["stylegan", "generate", "--weights", str(weights), "--seeds", "0-2,7", "--cols", "3",
                                  "--psi", "0.7", "-o", str(out)])
    grid = np.asarray(Image.open(out))
    assert result.exit_code == 0 and grid.shape == (2 * R, 3 * R, 3)
    assert np.array_equal(grid[R:, :R], strip[:, 3 * R:]) and not grid[R:, R:].any()  # padded with black
    result = runner.invoke(main, ["stylegan", "mix", "--weights", str(weights), "--rows", "1,2", "--cols", "3",
                                  "-o", str(tmp_path / "mix.png")])
    assert result.exit_code == 0, result.output
    assert np.asarray(Image.open(tmp_path / "mix.png")).shape == (3 * R, 2 * R, 3)
    result = runner.invoke(main, ["stylegan", "morph", "--weights", str(weights), "--seeds", "1,2", "--frames", "3",
                                  "-o", str(tmp_path / "morph.png")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["stylegan", "generate", "--weights", str(weights), "--seeds", "x",
                                  "-o", str(out)])
    assert result.exit_code != 0 and "seeds" in result.output


def test_cli_toonify_with_a_file_and_the_shipped_default(G, tmp_path, monkeypatch, without_card):
    from click.testing import CliRunner
    from PIL import Image

    from faceforge.checkpoints import save_checkpoint
    from faceforge.cli import main
    from faceforge.models import stylegan2 as sg

    config = {"resolution": R, "z_dim": Z, "w_dim": Z, "channel_base": 8 * R, "channel_max": 16}
    base = save_checkpoint(tmp_path / "g.pt", G, "stylegan2", config)
    runner = CliRunner()
    out = tmp_path / "toon.png"
    result = runner.invoke(main, ["stylegan", "toonify", "--weights", str(base), "--toon", str(base), "--seeds", "1,2",
                                  "--swap-resolution", "8", "-o", str(out)])
    assert result.exit_code == 0, result.output
    grid = np.asarray(Image.open(out))
    assert grid.shape == (2 * R, 2 * R, 3)
    assert np.array_equal(grid[:R], grid[R:])  # toonifying with the model itself changes nothing
    result = runner.invoke(main, ["stylegan", "toonify", "--weights", str(base), "--toon", str(tmp_path / "no.pt"),
                                  "-o", str(out)])
    assert result.exit_code != 0 and "--toon" in result.output and "no.pt is not a file" in result.output
    # 'default' names the shipped anime fine-tune; a checkout without it gets a clear usage error
    without_card(sg.TOON_CARD)
    result = runner.invoke(main, ["stylegan", "toonify", "--weights", str(base), "--toon", "default", "-o", str(out)])
    assert result.exit_code != 0 and "ships no default cartoon StyleGAN2 weights" in result.output


def test_cli_emoji_size_for_generate_and_toonify(tmp_path):
    from click.testing import CliRunner

    from PIL import Image

    from faceforge.cli import main

    runner = CliRunner()
    for command in (["generate"], ["toonify"]):
        out = tmp_path / f"{command[0]}.png"
        r = runner.invoke(main, ["stylegan", *command, "--seeds", "1", "--emoji", "--emoji-size", "128",
                                 "--emoji-upscaler", "lanczos", "-o", str(out)])
        assert r.exit_code == 0, r.output
        rgba = np.asarray(Image.open(out))
        assert rgba.shape[2] == 4 and max(rgba.shape[:2]) == 128 and rgba[0, 0, 3] == 0
    r = runner.invoke(main, ["stylegan", "generate", "--seeds", "1,2", "--emoji", "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 1 and "one seed" in r.output
