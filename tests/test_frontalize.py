"""Frontalization: U-Net generators (shapes, MACs, BatchNorm folding), the 3D yaw renderer on a
synthetic face and on a real UTKFace face, pose-pair synthesis, and the pix2pix trainer (smoke + resume)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from faceforge.faces.rotate import (SYMMETRIC_PAIRS, build_scene, estimate_yaw, head_pivot, render_yaw,
                                    rotate_and_render, rotate_yaw, warp_triangles)
from faceforge.models import create_model, get_spec, list_models
from faceforge.models.cyclegan import complexity, fold_batchnorm
from faceforge.models.pix2pix import MobileUnetGenerator, UnetGenerator

# --------------------------------------------------------------------------------------------------
# networks


def test_registered_and_mobile_within_budget():
    assert {"pix2pix_unet256", "pix2pix_unet128", "pix2pix_mobile"} <= set(list_models("frontalize"))
    assert get_spec("pix2pix_unet128").input.shape == (3, 128, 128)
    mob = complexity(create_model("pix2pix_mobile"), (1, 3, 256, 256))
    assert mob["macs"] <= 3e9 and mob["macs"] == mob["macs_output_pixel"]  # no transposed convolutions
    assert 1e6 < mob["params"] < 5e6


@pytest.mark.slow
def test_full_unet_complexity():
    c256 = complexity(create_model("pix2pix_unet256"), (1, 3, 256, 256))
    assert 54.3e6 < c256["params"] < 54.5e6  # the paper's U-Net-256: 54.4 M
    assert 5e9 < c256["macs"] < 7e9 and 17e9 < c256["macs_output_pixel"] < 19e9
    c128 = complexity(create_model("pix2pix_unet128"), (1, 3, 128, 128))
    assert 41e6 < c128["params"] < 43e6 and c128["macs"] < c256["macs"] / 3


@pytest.mark.parametrize("factory", [UnetGenerator, MobileUnetGenerator])
def test_unet_shapes_range_and_eval_determinism(factory):
    g = factory(num_downs=5, ngf=8).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        y1, y2 = g(x), g(x)
    assert y1.shape == (2, 3, 32, 32) and torch.isfinite(y1).all() and y1.abs().max() < 1
    assert torch.equal(y1, y2)  # dropout off in eval mode
    assert any(isinstance(m, torch.nn.Dropout) for m in g.modules())


def test_mobile_unet_batchnorm_folds():
    g = MobileUnetGenerator(num_downs=5, ngf=8).train()
    with torch.no_grad():  # give the BatchNorms non-trivial running statistics
        for _ in range(3):
            g(torch.randn(4, 3, 32, 32))
    g.eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        before = g(x)
        fold_batchnorm(g)
        after = g(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())
    assert torch.allclose(before, after, atol=1e-5)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in g.modules())


def test_mobile_unet_equalized_is_the_same_function_with_equal_channel_ranges():
    torch.manual_seed(0)
    g = MobileUnetGenerator(num_downs=4, ngf=8).train()
    with torch.no_grad():
        for _ in range(3):
            g(torch.randn(4, 3, 32, 32))
        for m in g.modules():  # channels of very different ranges, as trained U-Nets have
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.mul_(torch.logspace(-1.5, 1.5, len(m.weight))[torch.randperm(len(m.weight))])
    g.eval()
    x = torch.rand(16, 3, 32, 32) * 2 - 1
    e = g.equalized(x, strength=1.0, last_strength=1.0, max_gain=1e5)
    assert e is not g and any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())  # the original is kept
    with torch.no_grad():
        assert torch.allclose(g(x), e(x), atol=1e-5)

    def spread(model):  # largest / smallest per-channel peak of every encoder ReLU output (live channels)
        peaks = []
        hooks = [layer[-1].register_forward_hook(lambda m, i, o: peaks.append(o.amax(dim=(0, 2, 3))))
                 for layer in model.down]
        with torch.no_grad():
            model(x)
        for h in hooks:
            h.remove()
        return [float(p[p > 1e-6].max() / p[p > 1e-6].min()) for p in peaks]

    before, after = spread(g), spread(e)
    assert max(before) > 10 and max(after) < 1.01  # every live channel now spans the same range
    with pytest.raises(ValueError):
        g.equalized(torch.zeros(0, 3, 32, 32))


def test_unet_rejects_bad_arguments():
    with pytest.raises(ValueError):
        UnetGenerator(num_downs=1)
    with pytest.raises(ValueError):
        MobileUnetGenerator(norm="group")
    with pytest.raises(ValueError):
        MobileUnetGenerator(upsample="pixelshuffle")


# --------------------------------------------------------------------------------------------------
# renderer on a synthetic face


def synthetic_face(size: int = 128, seed: int = 0) -> np.ndarray:
    """(468, 3) points on the front of an ellipsoid head, mirror-symmetric at SYMMETRIC_PAIRS,
    cheek contours (234, 454) at the widest points: a stand-in for Face Mesh landmarks."""
    rng = np.random.default_rng(seed)
    r = 0.3 * size
    c = size / 2
    u = rng.uniform(-0.95, 0.95, 468)
    v = rng.uniform(-0.95, 0.95, 468)
    keep = u ** 2 + v ** 2 < 0.9
    u[~keep] *= 0.6
    v[~keep] *= 0.6
    pts = np.column_stack([c + r * u, c + 1.2 * r * v, -r * np.sqrt(np.clip(1 - u ** 2 - v ** 2, 0, 1))])
    for a, b in SYMMETRIC_PAIRS:
        pts[b] = pts[a] * (-1, 1, 1) + (2 * c, 0, 0)
    pts[234] = (c - r, c, 0.0)
    pts[454] = (c + r, c, 0.0)
    return pts


def textured(size: int = 128) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    img = np.stack([127 + 100 * np.sin(x / 5.0), 127 + 100 * np.cos(y / 7.0), (x * 2 + y) % 256], -1)
    return img.astype(np.uint8)


def test_estimate_yaw_recovers_a_rotation():
    pts = synthetic_face()
    assert abs(estimate_yaw(pts)) < 1e-6
    px, pz, width = head_pivot(pts, 0.1)
    assert width == pytest.approx(0.6 * 128)
    for yaw in (-60.0, -20.0, 35.0, 70.0):
        assert estimate_yaw(rotate_yaw(pts, yaw, (px, pz))) == pytest.approx(yaw, abs=1e-6)
    # positive yaw moves points in front of the axis (the nose) to the right
    nose = np.array([[64.0, 64.0, -40.0]])
    assert rotate_yaw(nose, 30, (64.0, 10.0))[0, 0] > 64.0


def test_warp_identity_and_coverage():
    img = textured(64)
    xy = np.array([[0, 0], [64, 0], [64, 64], [0, 64]], float)
    tris = np.array([[0, 1, 2], [0, 2, 3]])
    out, covered = warp_triangles(img, xy, xy, tris, np.arange(2), (64, 64))
    assert covered.all() and np.array_equal(out, img)
    out, covered = warp_triangles(img, xy, xy, tris, np.array([0]), (64, 64))  # half drawn
    assert 0.4 < covered.mean() < 0.6 and (out[~covered] == 0).all()


def test_yaw_zero_render_reproduces_input():
    img, pts = textured(), synthetic_face()
    scene = build_scene(pts, (128, 128))
    assert set(np.unique(scene.kind)) == {0, 1, 2}
    r = render_yaw(img, scene, 0.0)
    assert r.covered.all() and r.visible.all() and np.array_equal(r.image, img)
    rot, back = rotate_and_render(img, scene, 0.0)
    assert np.array_equal(back.image, img)


def test_rotation_changes_the_image_and_drops_back_facing_triangles():
    img, pts = textured(), synthetic_face()
    scene = build_scene(pts, (128, 128), pivot_depth=0.1)
    face = scene.kind == 0
    small = render_yaw(img, scene, 15.0)
    large = render_yaw(img, scene, 70.0)
    diff = np.abs(large.image.astype(int) - img).mean()
    assert diff > 20
    assert (~large.visible[face]).sum() > (~small.visible[face]).sum()
    # the dropped triangles are on the far side: image right for a positive yaw (the nose turns right)
    centres = scene.points[scene.triangles, 0].mean(1)
    assert centres[face & ~large.visible].mean() > scene.pivot[0]
    mirrored = render_yaw(img, scene, -70.0)
    assert centres[face & ~mirrored.visible].mean() < scene.pivot[0]
    # the way back restores the frontal geometry but not the hidden texture
    _, back = rotate_and_render(img, scene, 70.0)
    err_back = np.abs(back.image.astype(int) - img).mean()
    assert 0 < err_back < diff and back.covered.all()
    assert (back.visible == large.visible).all()


def test_scene_rejects_bad_points():
    with pytest.raises(ValueError):
        build_scene(np.zeros((10, 3)), (64, 64))
    with pytest.raises(ValueError):
        estimate_yaw(np.full((468, 3), np.nan))


# --------------------------------------------------------------------------------------------------
# real faces (UTKFace + Face Mesh)


@pytest.fixture(scope="module")
def face_tools():
    from faceforge.errors import MissingDependencyError
    from training.pose_pairs import _face_tools

    try:
        return _face_tools(1)
    except MissingDependencyError as exc:
        pytest.skip(f"Face Mesh / BlazeFace files absent: {exc}")


@pytest.fixture(scope="module")
def utkface(data_dir) -> Path:
    path = data_dir / "utkface"
    if not path.is_dir():
        pytest.skip(f"UTKFace not found at {path}")
    return path


@pytest.mark.data
def test_real_face_render_and_measured_yaw(utkface, face_tools):
    from faceforge.imaging import load_image
    from training.pose_pairs import frontal_sample, mesh_yaw

    detector, mesh = face_tools
    for path in sorted(utkface.iterdir())[:40]:
        crop, pts, yaw0 = frontal_sample(load_image(path), detector, mesh, 256)
        if abs(yaw0) < 8:
            break
    else:
        pytest.skip("no near-frontal face among the first 40 UTKFace files")
    assert crop.shape == (256, 256, 3) and pts.shape == (468, 3)
    assert ((pts[:, :2] > 0) & (pts[:, :2] < 256)).all(1).mean() > 0.9  # the tight template may cut the chin
    scene = build_scene(pts, (256, 256))
    assert np.array_equal(render_yaw(crop, scene, 0.0).image, crop)
    rot, back = rotate_and_render(crop, scene, 40.0)
    assert np.abs(rot.image.astype(int) - crop).mean() > np.abs(back.image.astype(int) - crop).mean() > 0
    measured = mesh_yaw(rot.image, detector, mesh)
    assert measured is not None and 10 < measured - yaw0 < 45  # Face Mesh sees the turn, same side


@pytest.mark.data
@pytest.mark.slow
def test_build_pose_pairs_is_deterministic(utkface, face_tools, tmp_path):
    from training.pose_pairs import PosePairConfig, PosePairDataset, build_pose_pairs, load_index

    runs = []
    for name in ("a", "b"):
        cfg = PosePairConfig(source=str(utkface), dest=str(tmp_path / name), faces=2, size=64, measure_yaw=False,
                             test_fraction=0.5, grid_faces=2, progress=False, seed=3)
        runs.append(load_index(build_pose_pairs(cfg)))
    a, b = runs
    assert a["counts"]["faces"] == 2 and len(a["pairs"]) == 8
    assert [(p["source"], p["yaw"], p["split"]) for p in a["pairs"]] == [(p["source"], p["yaw"], p["split"])
                                                                         for p in b["pairs"]]
    buckets = sorted(p["bucket"] for p in a["pairs"][:4])
    assert buckets == ["15-30", "30-45", "45-60", "60-75"]
    for p in a["pairs"]:
        assert abs(p["source_yaw"]) < 8 and 0.99 < p["covered"] <= 1 and 0 < p["visible"] < 1
        for key in ("frontal", "profile", "rerender"):
            assert (tmp_path / "a" / p[key]).read_bytes() == (tmp_path / "b" / p[key]).read_bytes()
    assert (tmp_path / "a" / "grid.png").is_file()
    ds = PosePairDataset(tmp_path / "a", "all", "profile", 72, 64, augment=True)
    item = ds[0]
    assert item["input"].shape == item["target"].shape == (3, 64, 64)


# --------------------------------------------------------------------------------------------------
# trainer


def test_trainer_smoke_and_resume(tmp_path, tiny_pose_pairs):
    pytest.importorskip("skimage")
    from faceforge.checkpoints import load_checkpoint
    from training.frontalize import FrontalizeConfig, train

    data = tiny_pose_pairs(tmp_path / "pairs")
    common = dict(num_workers=0, threads=1, progress=False)
    cfg = FrontalizeConfig(data=str(data), generator="pix2pix_mobile",
                           generator_kwargs={"ngf": 8, "num_downs": 5}, ndf=8, crop_size=32, load_size=36,
                           batch_size=4, n_epochs=1, n_epochs_decay=1, log_every=1, sample_every=100,
                           runs_dir=str(tmp_path / "runs"), stop_after_steps=2, **common)
    run = train(cfg)
    assert load_checkpoint(run / "last.pt")["meta"]["step"] == 2
    ev = json.loads((run / "eval.json").read_text())
    assert ev["step"] == 2 and set(ev["metrics"]) == {"15-30", "30-45", "45-60", "60-75", "all"}
    assert ev["metrics"]["all"]["n"] == 4 and np.isfinite(ev["metrics"]["all"]["psnr"])
    assert list((run / "samples").glob("*.png"))

    run2 = train(FrontalizeConfig(resume=str(run), stop_after_steps=2, **common))
    assert run2 == run
    assert load_checkpoint(run / "last.pt")["meta"]["step"] == 4
    steps = [int(line.split(",")[0]) for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4]
    g = create_model("pix2pix_mobile", weights=run / "G.pt")
    assert g.faceforge_meta["task"] == "frontalize" and g.faceforge_meta["step"] == 4
    with torch.no_grad():
        assert g(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_trainer_fine_tunes_from_weights_with_the_face_terms(tmp_path, tiny_pose_pairs):
    """init_from loads G (and D from a run's last.pt) before step 0; the face terms enter G's loss and the log."""
    pytest.importorskip("skimage")
    from faceforge.errors import CheckpointError, MissingDependencyError
    from training.face_losses import load_face_identity_loss
    from training.frontalize import FrontalizeConfig, init_weights, train

    try:
        load_face_identity_loss()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    data = tiny_pose_pairs(tmp_path / "pairs")
    tiny = dict(generator="pix2pix_mobile", generator_kwargs={"ngf": 8, "num_downs": 5}, ndf=8, crop_size=32,
                load_size=36, batch_size=4, n_epochs=1, n_epochs_decay=0, log_every=1, sample_every=100,
                runs_dir=str(tmp_path / "runs"), num_workers=0, threads=1, progress=False, stop_after_steps=1)
    first = train(FrontalizeConfig(data=str(data), **tiny))
    trained = create_model("pix2pix_mobile", weights=first / "G.pt").state_dict()

    from faceforge.models.cyclegan import NLayerDiscriminator

    for source, d_loaded in ((first / "G.pt", False), (first, True)):
        torch.manual_seed(1)
        G = create_model("pix2pix_mobile", ngf=8, num_downs=5)
        D = NLayerDiscriminator(input_nc=6, ndf=8, n_layers=3, norm="batch")
        d_before = {k: v.clone() for k, v in D.state_dict().items()}
        note = init_weights(G, D, "pix2pix_mobile", source)
        assert all(torch.equal(v, trained[k]) for k, v in G.state_dict().items())
        assert all(torch.equal(v, d_before[k]) for k, v in D.state_dict().items()) != d_loaded
        assert ("G and D" in note) == d_loaded
    with pytest.raises(CheckpointError, match="do not fit"):
        init_weights(create_model("pix2pix_mobile", ngf=4, num_downs=5), NLayerDiscriminator(input_nc=6, ndf=8),
                     "pix2pix_mobile", first / "G.pt")
    with pytest.raises(FileNotFoundError, match="not found"):
        init_weights(G, D, "pix2pix_mobile", tmp_path)

    tuned = train(FrontalizeConfig(data=str(data), init_from=str(first / "G.pt"), lambda_face_id=3.0,
                                   lambda_face_feat=0.5, id_views=1, **tiny))
    row = (tuned / "metrics.csv").read_text().splitlines()
    header, values = row[0].split(","), row[1].split(",")
    logged = dict(zip(header, values))
    assert float(logged["G_face_id"]) > 0 and float(logged["G_face_feat"]) > 0
    config = json.loads((tuned / "config.json").read_text())
    assert "dlib_resnet" in config["face_losses"] and "1 random views" in config["face_losses"]
    assert config["init"].startswith(f"initialised from {first / 'G.pt'}: G (D fresh)")
    assert "G_face_id" not in (first / "metrics.csv").read_text()
    assert "off" in json.loads((first / "config.json").read_text())["face_losses"]


def test_evaluate_with_an_independent_judge(tmp_path, tiny_pose_pairs):
    """judge="faceres" adds FaceRes columns: a generator that returns its input scores exactly as the input."""
    pytest.importorskip("skimage")
    from faceforge.models import tfjs_judges as mf
    from faceforge.data.pose_pairs import PosePairDataset
    from training.frontalize import evaluate

    data = tiny_pose_pairs(tmp_path / "pairs", size=64)
    dataset = PosePairDataset(data, "test", "rerender", 64, 64, augment=False)
    with pytest.raises(ValueError, match="judge"):
        evaluate(torch.nn.Identity(), dataset, torch.device("cpu"), identity=False, judge="arcface")
    if not mf.faceres_is_available():
        pytest.skip("FaceRes TF.js model not installed (npm install @vladmandic/human@3.3.6, or FACEFORGE_FACERES)")
    res = evaluate(torch.nn.Identity(), dataset, torch.device("cpu"), identity=False, judge="faceres")
    for r in res.values():
        assert r["fr_cos_output"] == r["fr_cos_input"] and r["fr_top1_output"] == r["fr_top1_input"]
        assert -1 <= r["fr_cos_output"] <= 1 and 0 <= r["fr_top1_output"] <= 1
    assert res["all"]["n"] == len(dataset)


def test_trainer_rejects_a_generator_of_another_task(tmp_path, tiny_pose_pairs):
    from training.frontalize import FrontalizeConfig, train

    data = tiny_pose_pairs(tmp_path / "pairs", n_faces=2)
    with pytest.raises(ValueError, match="not a frontalizer"):
        train(FrontalizeConfig(data=str(data), generator="cyclegan_mobile", runs_dir=str(tmp_path / "runs"),
                               progress=False, num_workers=0))


def test_trainer_checks_the_crop_against_the_levels(tmp_path, tiny_pose_pairs):
    from training.frontalize import FrontalizeConfig, train

    data = tiny_pose_pairs(tmp_path / "pairs", n_faces=2)
    with pytest.raises(ValueError, match="multiple of 2\\^num_downs = 64"):
        train(FrontalizeConfig(data=str(data), generator="pix2pix_mobile", generator_kwargs={"num_downs": 6},
                               crop_size=32, runs_dir=str(tmp_path / "runs"), progress=False, num_workers=0))


def test_finished_run_installs_as_the_default(tmp_path, monkeypatch, tiny_pose_pairs):
    pytest.importorskip("skimage")
    from faceforge.frontalize import load_generator
    from training.cli import install_frontalizer
    from training.frontalize import FrontalizeConfig, train

    data = tiny_pose_pairs(tmp_path / "pairs")
    cfg = FrontalizeConfig(data=str(data), generator="pix2pix_mobile", generator_kwargs={"ngf": 8, "num_downs": 5},
                           ndf=8, crop_size=32, batch_size=4, n_epochs=1, n_epochs_decay=0, log_every=1,
                           sample_every=100, runs_dir=str(tmp_path / "runs"), num_workers=0, threads=1,
                           progress=False, stop_after_steps=1)
    run = train(cfg)
    with pytest.raises(ValueError, match="has not finished"):
        install_frontalizer(run)
    train(FrontalizeConfig(resume=str(run), num_workers=0, threads=1, progress=False))
    dest = install_frontalizer(run)
    from faceforge.models import cards

    assert dest == cards.user_weights_dir() / "pix2pix_frontalize.pt"  # the user folder, never the package
    record = json.loads(dest.with_suffix(".json").read_text())
    assert record["finished"] and record["training_config"]["crop_size"] == 32 and record["training_minutes"] >= 0
    g = create_model("pix2pix_mobile", weights="default")  # the registry default now loads it
    assert g.faceforge_config["num_downs"] == 5
    _, info = load_generator(dest)  # no config.json beside the installed copy: the meta carries the cache's side
    assert info["crop_size"] == 32 and info["render_size"] is None and info["max_yaw"] is None  # tiny cache: no config
    with pytest.raises(ValueError, match="only pix2pix_mobile"):
        from faceforge.checkpoints import save_checkpoint
        other = tmp_path / "other"
        other.mkdir()
        unet = create_model("pix2pix_unet128", ngf=4)
        save_checkpoint(other / "G.pt", unet, "pix2pix_unet128", unet.faceforge_config, {"finished": True})
        install_frontalizer(other)


def test_frontalizer_calibration_data_are_the_cache_rerenders(tmp_path, monkeypatch, tiny_pose_pairs):
    import dataclasses

    from export.calibration import parity_dataset, representative_dataset
    from faceforge.errors import ExportError
    from faceforge.imaging import load_image

    spec = get_spec("pix2pix_mobile")
    spec = dataclasses.replace(spec, input=dataclasses.replace(spec.input, shape=(3, 32, 32)))
    monkeypatch.setenv("FACEFORGE_POSE_PAIRS", str(tmp_path / "absent"))
    with pytest.raises(ExportError, match="frontalize-pairs"):
        representative_dataset(spec, 4)
    root = tiny_pose_pairs(tmp_path / "pairs")
    monkeypatch.setenv("FACEFORGE_POSE_PAIRS", str(root))
    x, labels = parity_dataset(spec)  # the held-out face: 4 rerenders
    index = json.loads((root / "index.json").read_text())
    test = [p for p in index["pairs"] if p["split"] == "test"]
    expected = np.stack([load_image(root / p["rerender"]) for p in test]).transpose(0, 3, 1, 2) / 127.5 - 1
    assert labels is None and np.allclose(x, expected, atol=1e-6)
    cal = representative_dataset(spec, 5, seed=1)
    assert cal.shape == (5, 3, 32, 32) and cal.dtype == np.float32
    train_ids = {load_image(root / p["rerender"]).tobytes() for p in index["pairs"] if p["split"] == "train"}
    assert all(np.round((c.transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8).tobytes() in train_ids for c in cal)


def test_a_run_in_training_is_not_resumed_twice(tmp_path, tiny_pose_pairs):
    import os

    from training.frontalize import FrontalizeConfig, train
    from training.runs import LOCK_NAME

    data = tiny_pose_pairs(tmp_path / "pairs", n_faces=2)
    common = dict(num_workers=0, threads=1, progress=False)
    run = train(FrontalizeConfig(data=str(data), generator="pix2pix_mobile", generator_kwargs={"ngf": 4, "num_downs": 5},
                                 ndf=4, crop_size=32, batch_size=4, n_epochs=2, n_epochs_decay=0,
                                 runs_dir=str(tmp_path / "runs"), stop_after_steps=1, **common))
    assert not (run / LOCK_NAME).exists()  # released when training stops
    (run / LOCK_NAME).write_text(f"{os.getppid()}\n")  # a live process (pytest's parent) holds the run
    before = (run / "last.pt").read_bytes()
    with pytest.raises(RuntimeError, match=f"process {os.getppid()}"):
        train(FrontalizeConfig(resume=str(run), stop_after_steps=1, **common))
    assert (run / "last.pt").read_bytes() == before  # nothing written
    (run / LOCK_NAME).write_text("999999999\n")  # a lock left by a killed trainer is taken over
    train(FrontalizeConfig(resume=str(run), stop_after_steps=1, **common))
    assert (run / "last.pt").read_bytes() != before and not (run / LOCK_NAME).exists()


@pytest.mark.slow
@pytest.mark.export
def test_int8_export_of_the_mobile_unet_uses_its_equalized_form(tmp_path):
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_litert")
    from export.exporter import run_export
    from export.formats import FORMATS
    from faceforge.checkpoints import save_checkpoint

    torch.manual_seed(0)
    g = create_model("pix2pix_mobile", ngf=4, num_downs=4)
    weights = save_checkpoint(tmp_path / "G.pt", g, "pix2pix_mobile", g.faceforge_config, {"config": {"crop_size": 32}})
    report = run_export("pix2pix_mobile", [FORMATS["tflite_fp16"], FORMATS["tflite_int8"]], weights=str(weights),
                        out=tmp_path / "out", calibration_size=8, calibration_source="random", parity_limit=4,
                        parity_source="random", write_manifest=False)
    notes = {o.format.name: " ".join(o.artifact.notes) for o in report.outcomes}
    assert "re-parameterization" in notes["tflite_int8"] and "re-parameterization" not in notes["tflite_fp16"]
    assert all(o.ok for o in report.outcomes)
