"""Attribute editing (faceforge.editing): InterFaceGAN boundaries, conditional directions, edits, the
shipped classifier and directions, and ``faceforge stylegan edit`` / ``directions``.

Method tests use synthetic latents and tiny random generators (fast, exact expectations); the shipped
files are checked on a few generated faces of the default generator.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from faceforge import editing as E
from faceforge import stylegan as S
from faceforge.errors import CheckpointError, WeightsNotFoundError
from faceforge.models.stylegan2 import StyleGAN2Generator, estimate_w_avg

pytest.importorskip("sklearn", reason="finding directions needs scikit-learn (pip install -e '.[train]')")


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def tiny(seed: int = 0, resolution: int = 16, z: int = 16) -> StyleGAN2Generator:
    torch.manual_seed(seed)
    g = StyleGAN2Generator(resolution, z, z, channel_base=8 * resolution, channel_max=16).eval()
    with torch.no_grad():
        g.mapping.w_avg.copy_(estimate_w_avg(g, 256))
        std = float(g.synthesis(g.mapping(torch.randn(16, z))).std())
        for name, p in g.named_parameters():
            if name.endswith("torgb.weight"):
                p.mul_(0.5 / std)
    return g


def brightness(images: np.ndarray) -> dict[str, np.ndarray]:
    """A stand-in attribute any generator has: mean brightness of the image."""
    return {"bright": images.reshape(len(images), -1).mean(1).astype(np.float64)}


# ------------------------------------------------------------------------------------------ method ---
def test_train_boundary_recovers_a_known_linear_attribute():
    rng = np.random.default_rng(0)
    d = 24
    truth = rng.standard_normal(d)
    truth /= np.linalg.norm(truth)
    ws = rng.standard_normal((3000, d)) * rng.uniform(0.5, 2.0, d)  # anisotropic, as W is
    scores = ws @ truth + 0.1 * rng.standard_normal(3000)
    normal, info = E.train_boundary(ws, scores, ratio=0.2)
    assert normal.shape == (d,) and abs(np.linalg.norm(normal) - 1) < 1e-5
    assert float(normal @ truth) > 0.95           # the SVM normal is the attribute's direction, sign included
    assert info["val_accuracy"] > 0.95 and info["chosen_per_side"] == 600
    assert info["score_high_mean"] > info["score_low_mean"]
    with pytest.raises(ValueError, match="per side"):
        E.train_boundary(ws[:30], scores[:30], ratio=0.2)
    with pytest.raises(ValueError, match="finite"):
        E.train_boundary(ws, np.where(np.arange(3000) == 5, np.nan, scores))


def test_orthogonalize_projects_out_every_condition():
    rng = np.random.default_rng(1)
    n, a, b = rng.standard_normal((3, 10))
    out = E.orthogonalize(n, [a, b])
    assert abs(np.linalg.norm(out) - 1) < 1e-5
    assert abs(out @ a) < 1e-5 and abs(out @ b) < 1e-5
    assert out @ n > 0  # still the same attribute
    with pytest.raises(ValueError, match="span"):
        E.orthogonalize(a + b, [a, b])


def test_edit_ws_moves_only_the_chosen_layers_by_strength_times_sigma():
    ws = torch.randn(2, 6, 8)
    v = np.zeros(8, np.float32)
    v[3] = 1.0
    out = E.edit_ws(ws, v, [-1.0, 0.0, 2.0], sigma=0.5, layers=slice(0, 4))
    assert out.shape == (2, 3, 6, 8)
    torch.testing.assert_close(out[:, 1], ws)
    torch.testing.assert_close(out[:, 2, :4, 3] - ws[:, :4, 3], torch.full((2, 4), 1.0))
    torch.testing.assert_close(out[:, 2, 4:], ws[:, 4:])
    torch.testing.assert_close(out[:, 0, :, :3], ws[:, :, :3])
    with pytest.raises(ValueError, match="ws must be"):
        E.edit_ws(ws[0], v, [1.0])
    with pytest.raises(ValueError, match="strength"):
        E.edit_ws(ws, v, [])


def test_found_direction_changes_its_attribute_monotonically(tmp_path):
    G = tiny()
    dirs = E.find_directions(G, brightness, samples=600, ratio=0.2, batch_size=200)
    d = dirs["bright"]
    assert d.sigma > 0 and d.info["projection_score_pearson_r"] > 0.5
    seeds = list(range(8))
    images = E.edit(G, S.seed_ws(G, seeds), dirs, "bright", [-2, 0, 2])
    assert images.shape == (8, 3, 16, 16, 3)
    b = images.reshape(8, 3, -1).mean(-1)
    assert b[:, 2].mean() > b[:, 1].mean() + 5 > b[:, 0].mean() + 10  # on average by a clear margin
    assert (b[:, 2] > b[:, 0]).all()                                    # and for every face, -2 -> +2
    np.testing.assert_array_equal(images[:, 1], S.generate(G, seeds))  # strength 0 = the face itself
    # save / load round trip, and the checks against another generator
    path = dirs.save(tmp_path / "d.json")
    again = E.Directions.load(path)
    np.testing.assert_allclose(again["bright"].normal, d.normal, atol=1e-6)
    assert again.w_dim == G.w_dim and again["bright"].sigma == pytest.approx(d.sigma, rel=1e-5)
    with pytest.raises(CheckpointError, match="w_dim"):
        again.check(tiny(z=8))
    weights = tmp_path / "g.pt"
    weights.write_bytes(b"one generator")
    again.meta["generator_sha256"] = E.file_sha256(weights)
    again.check(G, weights)
    other = tmp_path / "h.pt"
    other.write_bytes(b"another generator")
    with pytest.raises(CheckpointError, match="stylegan directions"):
        again.check(G, other)
    with pytest.raises(ValueError, match="no 'age' direction"):
        again["age"]


def test_conditional_direction_keeps_the_other_attribute():
    G = tiny(seed=3)

    def two(images):
        x = images.astype(np.float64)
        return {"red": x[..., 0].mean((1, 2)) - x[..., 1:].mean((1, 2, 3)), "bright": x.mean((1, 2, 3))}

    dirs = E.find_directions(G, two, samples=600, batch_size=200)
    v = dirs.vector("red", ["bright"])
    assert abs(float(v @ dirs["bright"].normal)) < 1e-5
    with pytest.raises(ValueError, match="itself"):
        dirs.vector("red", ["red"])


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(WeightsNotFoundError):
        E.Directions.load(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "faceforge-directions", "w_dim": 4, "directions": {"age": {"normal": [1, 0],
                                                                                                    "sigma": 1}}}))
    with pytest.raises(CheckpointError, match="normal of shape"):
        E.Directions.load(bad)
    with pytest.raises(WeightsNotFoundError, match="training.attributes"):
        E.load_attribute_net(tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="unknown attribute"):
        E.attribute_scores(np.zeros((1, 32, 32, 3), np.uint8), ["beauty"])
    with pytest.raises(ValueError, match="uint8"):
        E.smile_logits(None, np.zeros((1, 32, 32), np.uint8))


# ------------------------------------------------------------------------------------ shipped files ---
@pytest.fixture(scope="module")
def default_G():
    from faceforge.models import create_model, get_spec

    path = get_spec("stylegan2").default_weights_path
    if path is None or not path.is_file() or not E.default_directions_path().is_file():
        pytest.skip("the default generator or its directions are not shipped in this checkout")
    return create_model("stylegan2", weights=path).eval(), path


def test_shipped_directions_belong_to_the_default_generator_and_edit_it(default_G):
    G, path = default_G
    dirs = E.Directions.load()
    dirs.check(G, path)
    assert set(dirs.attributes) == set(E.ATTRIBUTES)
    assert dirs.meta["samples"] >= 1000 and dirs.meta["command"].startswith("faceforge stylegan directions")
    for d in dirs.directions.values():
        assert d.info["val_accuracy"] > 0.8
    seeds = list(range(8))
    imgs = E.edit(G, S.seed_ws(G, seeds, 0.8), dirs, "age", [-2.0, 2.0])
    ages = E.AttributeClassifier().predict(imgs.reshape(-1, *imgs.shape[2:]))["age"].reshape(8, 2)
    assert (ages[:, 1] > ages[:, 0]).mean() >= 0.75 and (ages[:, 1] - ages[:, 0]).mean() > 5


def test_shipped_classifier_scores_faces():
    if not E.default_classifier_path().is_file():
        pytest.skip("attributes_utkface32.pt is not shipped in this checkout")
    clf = E.AttributeClassifier()
    assert clf.size == 32 and clf.meta["metrics"]["gender_accuracy"] > 0.8
    out = clf.predict(np.full((3, 64, 64, 3), 128, np.uint8))   # any side: resized
    assert out["age"].shape == (3,) and np.isfinite(out["gender"]).all() and (out["age"] >= 0).all()


@pytest.mark.data
def test_shipped_classifier_on_heldout_utkface(data_dir):
    if not E.default_classifier_path().is_file():
        pytest.skip("attributes_utkface32.pt is not shipped in this checkout")
    from faceforge.imaging import load_image
    from training.unpaired import resize_square, scan_utkface

    records, _ = scan_utkface(data_dir / "utkface")
    held = np.random.default_rng(0).permutation(len(records))[:len(records) // 10][:200]  # the trainer's split
    imgs = np.stack([resize_square(load_image(records[i].path), 32) for i in held])
    pred = E.AttributeClassifier().predict(imgs)
    ages = np.array([records[i].age for i in held])
    genders = np.array([records[i].gender for i in held])
    assert np.abs(pred["age"] - ages).mean() < 10
    assert ((pred["gender"] > 0) == genders).mean() > 0.8


def test_smile_scores_from_the_emotion_model():
    from faceforge.models import get_spec

    if not get_spec("mini_xception").default_weights_path.is_file():
        pytest.skip("the emotion weights are not shipped in this checkout")
    from faceforge.emotion import EmotionRecognizer

    rng = np.random.default_rng(0)
    logits = E.smile_logits(EmotionRecognizer(), rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8))
    assert logits.shape == (4,) and np.isfinite(logits).all()


# ---------------------------------------------------------------------------------------------- CLI ---
def test_cli_edit_writes_a_strip_per_face(default_G, tmp_path):
    from faceforge.cli import main
    from faceforge.imaging import load_image

    out = tmp_path / "edit.png"
    result = CliRunner().invoke(main, ["stylegan", "edit", "--seeds", "1,2", "--attribute", "smile",
                                       "--strength", "2", "--frames", "3", "--condition", "gender", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert load_image(out).shape == (2 * 32, 3 * 32, 3)
    assert "-2, 0, 2" in result.output
    bad = CliRunner().invoke(main, ["stylegan", "edit", "--seeds", "1", "--attribute", "age", "--strength", "x",
                                    "-o", str(out)])
    assert bad.exit_code != 0 and "--strength" in bad.output
    coarse = CliRunner().invoke(main, ["stylegan", "edit", "--seeds", "1", "--attribute", "age", "--strength", "0,3",
                                       "--max-resolution", "8", "-o", str(out)])
    assert coarse.exit_code == 0, coarse.output
    G = default_G[0]
    expected = E.edit(G, S.seed_ws(G, [1]), E.Directions.load(), "age", [0, 3], layers=slice(0, 4))
    np.testing.assert_array_equal(load_image(out), np.concatenate(list(expected[0]), axis=1))
    bad = CliRunner().invoke(main, ["stylegan", "edit", "--seeds", "1", "--attribute", "age", "--max-resolution", "12",
                                    "-o", str(out)])
    assert bad.exit_code == 2 and "--max-resolution" in bad.output


def test_cli_refuses_directions_of_another_generator(tmp_path):
    from faceforge.checkpoints import save_checkpoint
    from faceforge.cli import main

    if not E.default_directions_path().is_file():
        pytest.skip("the shipped directions are absent")
    G = tiny(z=128)  # the shipped directions' w_dim, but not their generator
    weights = save_checkpoint(tmp_path / "g.pt", G, "stylegan2",
                              {"resolution": 16, "z_dim": 128, "w_dim": 128, "channel_base": 128, "channel_max": 16})
    result = CliRunner().invoke(main, ["stylegan", "edit", "--weights", str(weights), "--seeds", "1",
                                       "--attribute", "age", "-o", str(tmp_path / "x.png")])
    assert result.exit_code != 0 and "stylegan directions" in result.output


def test_cli_directions_makes_a_file_edit_accepts(default_G, tmp_path):
    from faceforge.cli import main

    out = tmp_path / "dirs.json"
    result = CliRunner().invoke(main, ["stylegan", "directions", "--attributes", "gender,smile", "--samples", "200",
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    dirs = E.Directions.load(out)
    assert dirs.attributes == ("gender", "smile") and dirs.meta["samples"] == 200
    assert dirs.meta["generator_sha256"] == E.file_sha256(default_G[1]) and "/" not in dirs.meta["generator"]
    assert dirs.meta["classifiers"]["age_gender"]["heldout"]["gender_accuracy"] > 0.8
    edit = CliRunner().invoke(main, ["stylegan", "edit", "--directions", str(out), "--seeds", "1", "--attribute",
                                     "gender", "--frames", "2", "-o", str(tmp_path / "g.png")])
    assert edit.exit_code == 0, edit.output
    bad = CliRunner().invoke(main, ["stylegan", "directions", "--attributes", "beauty", "-o", str(out)])
    assert bad.exit_code == 2 and "--attributes" in bad.output


def test_classifier_resolves_through_its_model_card(tmp_path, monkeypatch):
    """``attribute_net.utkface32`` is a card: ``FACEFORGE_ATTRIBUTE_WEIGHTS`` overrides the shipped file, and a
    file of another architecture is refused by name."""
    from faceforge.checkpoints import save_checkpoint
    from faceforge.models import cards

    card = cards.get_card(E.ATTRIBUTE_CARD)
    assert card.arch == E.ATTRIBUTE_ARCH and card.file == "attributes_utkface32.pt" and card.input_size == 32
    net = E.AttributeNet(size=16, widths=(4, 4, 4, 4))
    own = tmp_path / "own.pt"
    save_checkpoint(own, net, arch=E.ATTRIBUTE_ARCH, config={"size": 16, "widths": [4, 4, 4, 4]})
    monkeypatch.setenv("FACEFORGE_ATTRIBUTE_WEIGHTS", str(own))
    loaded, _ = E.load_attribute_net()
    assert loaded.size == 16 and torch.equal(loaded.head.weight, net.head.weight)
    other = tmp_path / "other.pt"
    save_checkpoint(other, torch.nn.Linear(2, 2), arch="mini_xception", config={})
    with pytest.raises(CheckpointError):
        E.load_attribute_net(other)
