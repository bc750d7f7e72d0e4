"""Published StyleGAN2 checkpoints stay first-class (issue 17, item 3): a rosinality ``.pt`` and an NVlabs
``.pkl``, built here at 16 px with the documented layouts (the builders of ``test_stylegan2``), run every
feature — generate, style mixing, toonify, projection, latent morph, the personal emoji and attribute
edits — through the library, the CLI (``--weights FILE``) and the server (configuration only).

Tiny random weights: the features' behaviour does not depend on trained values; each test takes a few
seconds on one core.
"""

from __future__ import annotations

import copy
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from faceforge import editing as E
from faceforge import stylegan as S
from faceforge.imaging import load_image, save_image
from faceforge.models import create_model
from test_stylegan2 import nvlabs_modules, nvlabs_tree, rosinality_g_ema, tiny  # noqa: F401 - fixture; tests/ on sys.path

torch.set_num_threads(1)
R = 16
FORMATS = ("rosinality", "nvlabs")


def _perturbed_rosinality(sd: dict, seed: int) -> dict:
    """The same layout with changed convolution weights: a stand-in "fine-tuned on cartoons" copy."""
    gen = torch.Generator().manual_seed(seed)
    return {k: v + 0.3 * v.std() * torch.randn(v.shape, generator=gen) if k.endswith("conv.weight") else v.clone()
            for k, v in sd.items()}


def write_published(fmt: str, folder, ns) -> tuple:
    """``(base, toon)`` files of format ``fmt`` in ``folder``; ``ns``: the NVlabs stand-in modules."""
    if fmt == "rosinality":
        sd = rosinality_g_ema(R, seed=0)
        base, toon = folder / "stylegan2-tiny-config-f.pt", folder / "stylegan2-tiny-toon.pt"
        torch.save({"g_ema": sd, "latent_avg": torch.randn(sd["style.1.weight"].shape[0])}, base)
        torch.save({"g_ema": _perturbed_rosinality(sd, 1)}, toon)
        return base, toon
    g = tiny(R)
    t = copy.deepcopy(g)
    with torch.no_grad():
        for name, p in t.named_parameters():
            if name.startswith("synthesis") and name.endswith("weight"):
                p.add_(0.3 * p.std() * torch.randn_like(p))
    paths = []
    for net, name in ((g, "network-snapshot-base.pkl"), (t, "network-snapshot-toon.pkl")):
        tree = nvlabs_tree(net, ns)
        data = {"G": tree, "D": ns.Persistent("Discriminator"), "G_ema": tree, "augment_pipe": None,
                "training_set_kwargs": ns.EasyDict(path="ffhq.zip", resolution=R)}
        (folder / name).write_bytes(pickle.dumps(data, protocol=4))
        paths.append(folder / name)
    return tuple(paths)


@pytest.fixture(params=FORMATS)
def published(request, tmp_path, nvlabs_modules):  # noqa: F811 - the imported fixture
    base, toon = write_published(request.param, tmp_path, nvlabs_modules)
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
        sys.modules.pop(name, None)  # loading must need neither NVlabs' code nor the stand-ins
    return request.param, base, toon


def brightness(images: np.ndarray) -> dict[str, np.ndarray]:
    return {"smile": images.reshape(len(images), -1).mean(1).astype(np.float64)}


def brightness_directions(G, samples: int = 300) -> E.Directions:
    """A "smile" direction of ``G`` that is really brightness, by least squares (no scikit-learn needed;
    the SVM boundary itself is tested in test_editing)."""
    ws = E.sample_latents(G, samples)
    y = brightness(S.synthesize(G, torch.from_numpy(ws)))["smile"]
    centred = ws - ws.mean(0)
    coef = np.linalg.lstsq(centred, y - y.mean(), rcond=None)[0]
    normal = coef / np.linalg.norm(coef)
    return E.Directions({"smile": E.Direction("smile", normal, float((centred @ normal).std()))}, G.w_dim)


def save_brightness_directions(G, weights_path, folder) -> Path:
    """:func:`brightness_directions` of ``G`` saved as ``folder/directions.json``, stamped with the sha256 of
    ``G``'s weights file (so the CLI and the server accept them for that generator); returns the path."""
    dirs = brightness_directions(G)
    dirs.meta["generator_sha256"] = E.file_sha256(weights_path)
    return dirs.save(folder / "directions.json")


def test_every_feature_runs_on_published_checkpoints(published, tmp_path):
    fmt, base_path, toon_path = published
    G = create_model("stylegan2", weights=base_path).eval()
    toon = create_model("stylegan2", weights=toon_path).eval()
    assert G.resolution == R and G.faceforge_meta["converted_from"].lower().startswith(fmt[:5])

    faces = S.generate(G, [0, 1, 2], psi=0.7)
    assert faces.shape == (3, R, R, 3) and faces.std() > 1
    np.testing.assert_array_equal(S.generate(G, [1], psi=0.7)[0], faces[1])

    grid = S.style_mix(G, [1, 2], [3, 4, 5], resolution=8)
    assert grid.shape == (3 * R, 4 * R, 3)

    blended = S.toonify(G, toon, swap_resolution=8)
    toons = S.generate(blended, [0, 1, 2], psi=0.7)
    assert toons.shape == faces.shape and not np.array_equal(toons, faces)
    assert not np.array_equal(toons, S.generate(toon, [0, 1, 2], psi=0.7))

    result = S.project(G, faces[0], steps=3, num_w_samples=256)
    assert result.image.shape == (R, R, 3) and np.isfinite(result.losses).all() and result.ws.shape[1] == G.num_ws

    ws = S.seed_ws(G, [0, 1])
    frames = S.morph_latent(G, ws[0], ws[1], [0.0, 0.5, 1.0])
    assert frames.shape == (3, R, R, 3)
    assert int(np.abs(frames[0].astype(int) - S.synthesize(G, ws[:1])[0]).max()) <= 1

    emoji = S.personal_emoji(faces[0])
    assert emoji.shape[2] == 4 and emoji[..., 3].max() == 255 and emoji[0, 0, 3] < 255

    dirs = brightness_directions(G)
    edited = E.edit(G, S.seed_ws(G, list(range(6))), dirs, "smile", [-2, 0, 2])
    b = edited.reshape(6, 3, -1).mean(-1)
    assert b[:, 2].mean() > b[:, 0].mean()
    # a projected face edits too (W from the projection, broadcast to every layer)
    assert E.edit(G, result.ws, dirs, "smile", [0, 1]).shape == (1, 2, R, R, 3)


def test_cli_runs_published_checkpoints_by_weights_option(published, tmp_path):
    from faceforge.cli import main

    fmt, base_path, toon_path = published
    G = create_model("stylegan2", weights=base_path).eval()
    directions = save_brightness_directions(G, base_path, tmp_path)
    photo = tmp_path / "face.png"
    save_image(photo, S.generate(G, [7])[0])
    w, out = str(base_path), str(tmp_path / "out.png")
    runs = {
        "generate": (["stylegan", "generate", "--weights", w, "--seeds", "0-2", "-o", out], (R, 3 * R)),
        "emoji": (["stylegan", "generate", "--weights", w, "--seeds", "0", "--emoji", "-o", out], None),
        "mix": (["stylegan", "mix", "--weights", w, "--rows", "1", "--cols", "2,3", "-o", out], (2 * R, 3 * R)),
        "toonify": (["stylegan", "toonify", "--weights", w, "--toon", str(toon_path), "--seeds", "0,1",
                     "--swap-resolution", "8", "-o", out], (2 * R, 2 * R)),
        "project": (["stylegan", "project", "--weights", w, str(photo), "--no-align", "--steps", "2", "-o", out],
                    (R, 2 * R)),
        "morph": (["stylegan", "morph", "--weights", w, "--seeds", "1,2", "--frames", "3", "-o", out], (R, 3 * R)),
        "edit": (["stylegan", "edit", "--weights", w, "--directions", str(directions), "--seeds", "1,2",
                  "--attribute", "smile", "--strength", "2", "--frames", "3", "-o", out], (2 * R, 3 * R)),
        "edit photo": (["stylegan", "edit", "--weights", w, "--directions", str(directions), str(photo),
                        "--no-align", "--steps", "2", "--attribute", "smile", "--strength", "-1,1", "-o", out],
                       (R, 3 * R)),
    }
    for name, (argv, shape) in runs.items():
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 0, f"{fmt} {name}: {result.output}"
        if shape is not None:
            assert load_image(tmp_path / "out.png").shape[:2] == shape, name
    # the shipped directions belong to the shipped generator: refused for this one, with the fix named
    if E.default_directions_path().is_file():
        result = CliRunner().invoke(main, ["stylegan", "edit", "--weights", w, "--seeds", "1", "--attribute", "age",
                                           "-o", out])
        assert result.exit_code != 0 and "stylegan directions" in result.output


def test_server_serves_published_checkpoints_by_configuration(published, tmp_path):
    from server import create_app
    from test_jobs import images_of, submit, wait  # tests/ is on sys.path

    fmt, base_path, toon_path = published
    G = create_model("stylegan2", weights=base_path).eval()
    directions = save_brightness_directions(G, base_path, tmp_path)
    app = create_app({"stylegan2_weights": str(base_path), "stylegan2_toon_weights": str(toon_path),
                      "stylegan2_directions": str(directions), "torch_threads": None})
    client = app.test_client()
    try:
        got = images_of(wait(client, submit(client, "generate", json={"seeds": [3, 4], "psi": 0.7})))
        assert all(np.array_equal(a, b) for a, b in zip(got, S.generate(G, [3, 4], psi=0.7)))
        assert len(images_of(wait(client, submit(client, "toonify", json={"seeds": [1], "swap_resolution": 8})))) == 1
        assert len(images_of(wait(client, submit(client, "style-mix", json={"row_seeds": [1], "col_seeds": [2]})))) == 1
        assert len(images_of(wait(client, submit(client, "morph", json={"seeds": [1, 2], "t": [0, 1]})))) == 2
        assert len(images_of(wait(client, submit(client, "generate", json={"seeds": [1], "output": "emoji"})))) == 1
        assert len(images_of(wait(client, submit(client, "edit", json={"seeds": [1], "attribute": "smile",
                                                                       "strengths": [-1, 1]})))) == 2
    finally:
        app.extensions["faceforge"]["jobs"].close()
