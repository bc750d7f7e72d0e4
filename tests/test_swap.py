"""Classical face swap (faceforge/swap.py) and ``faceforge swap``: the algorithm's pieces on synthetic
arrays, real swaps (scikit-image's astronaut as the target, a shared portrait as the source), every
refusal, and the CLI's exit codes."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from faceforge.errors import FaceSelectionError, NoFaceError
from faceforge.swap import (BLENDS, MIN_SOURCE_FACE, FaceSwapper, FaceTooSmallError, PoseGapError, SameFaceError,
                            delaunay_triangles, feather_blend, hull_mask, laplacian_blend, poisson_blend,
                            reinhard_transfer, same_face, swap_face)

# --------------------------------------------------------------------------------------------------
# pieces, on synthetic arrays


def test_delaunay_triangles_cover_the_hull_with_index_triples():
    rng = np.random.default_rng(0)
    pts = np.vstack([[[0, 0], [100, 0], [100, 80], [0, 80]], rng.uniform(5, 75, (40, 2))])
    tris = delaunay_triangles(pts)
    assert tris.dtype == np.int64 and tris.shape[1] == 3 and tris.min() >= 0 and tris.max() < len(pts)
    # a triangulation of n points with h on the hull has 2n - 2 - h triangles
    hull = len(cv2.convexHull(pts.astype(np.float32)))
    assert len(tris) == 2 * len(pts) - 2 - hull
    p = pts[tris]
    area = 0.5 * np.abs((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                        - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0]))
    assert area.sum() == pytest.approx(100 * 80, rel=1e-6)
    with pytest.raises(ValueError):
        delaunay_triangles(np.array([[0, 0], [1, 1], [2, 2]], float))


def test_reinhard_transfer_matches_the_reference_statistics_inside_the_mask():
    rng = np.random.default_rng(1)
    image = np.clip(rng.normal(90, 20, (64, 64, 3)), 0, 255).astype(np.uint8)
    reference = np.clip(rng.normal((180, 140, 120), 12, (64, 64, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[8:56, 8:56] = True
    out = reinhard_transfer(image, reference, mask)
    lab = [cv2.cvtColor(x.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[mask] for x in (out, reference)]
    assert np.abs(lab[0].mean(0) - lab[1].mean(0)).max() < 1.0
    assert np.abs(lab[0].std(0) - lab[1].std(0)).max() < 1.5
    with pytest.raises(ValueError):
        reinhard_transfer(image, reference[:32], mask)
    # a black-and-white reference turns a colourful face grey (no lower clamp on the chroma ratio)
    grey = np.repeat(np.clip(rng.normal(120, 25, (64, 64, 1)), 0, 255).astype(np.uint8), 3, axis=2)
    colourful = np.clip(rng.normal((200, 120, 60), 30, (64, 64, 3)), 0, 255).astype(np.uint8)
    out = reinhard_transfer(colourful, grey, mask)
    assert np.abs(out.astype(int) - out.mean(-1, keepdims=True)).max() <= 3


def test_blends_keep_the_background_outside_and_the_foreground_inside():
    rng = np.random.default_rng(2)
    fg = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    bg = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    assert np.array_equal(laplacian_blend(fg, bg, np.ones((96, 128))), fg)
    assert np.array_equal(laplacian_blend(fg, bg, np.zeros((96, 128))), bg)
    alpha = np.zeros((96, 128), np.float32)
    alpha[30:60, 40:90] = 1
    lap = laplacian_blend(fg, bg, cv2.GaussianBlur(alpha, (0, 0), 3), levels=3)
    assert np.array_equal(lap[:, :10], bg[:, :10])  # far from the mask: exactly the background
    assert np.array_equal(feather_blend(fg, bg, alpha)[alpha == 1], fg[alpha == 1])
    mask = alpha > 0
    poi = poisson_blend(fg, bg, mask)
    assert poi.shape == bg.shape and poi.dtype == np.uint8
    assert np.array_equal(poi[~mask], bg[~mask])
    # Poisson keeps the foreground's gradients: a constant offset inside the mask disappears
    flat = np.full((96, 128, 3), 100, np.uint8)
    shifted = flat.copy()
    shifted[20:70, 30:100] = 160
    assert np.abs(poisson_blend(shifted, flat, mask).astype(int) - 100).max() <= 2
    with pytest.raises(ValueError):
        laplacian_blend(fg, bg[:50], alpha)


def test_hull_mask_fills_the_convex_hull():
    pts = np.array([[10, 10], [50, 10], [50, 40], [10, 40], [30, 25]], float)
    m = hull_mask(pts, (60, 70))
    assert m.dtype == np.uint8 and m.shape == (60, 70)
    assert m[25, 30] == 255 and m[5, 5] == 0 and m[45, 30] == 0
    assert abs(int((m > 0).sum()) - 40 * 30) < 80


# --------------------------------------------------------------------------------------------------
# real photos


@pytest.fixture(scope="module")
def swapper(detector, face_mesh):
    return FaceSwapper(detector=detector, mesh=face_mesh)


@pytest.fixture(scope="module")
def portrait(data_dir):
    """A shared real portrait (Barack Obama, face ~290 px): the source face."""
    from faceforge.imaging import load_image

    path = data_dir / "photos" / "portraits" / "obama.jpg"
    if not path.is_file():
        pytest.skip(f"shared portrait {path} not found")
    return load_image(path)


def _face_box(swapper, rgb, index=0):
    return swapper.detector.detect(rgb)[index].box


@pytest.mark.parametrize("blend", BLENDS)
def test_swap_changes_the_face_and_nothing_far_from_it(swapper, portrait, astronaut_rgb, blend):
    default = swapper.blend
    swapper.blend = blend
    try:
        result = swapper.swap(portrait, astronaut_rgb)
    finally:
        swapper.blend = default
    out = result.image
    assert out.shape == astronaut_rgb.shape and out.dtype == np.uint8
    assert [f.swapped for f in result.faces] == [True] and result.source.faces_found == 1
    x0, y0, x1, y1 = _face_box(swapper, astronaut_rgb)
    w = x1 - x0
    inner = (slice(int(y0 + 0.3 * w), int(y1 - 0.2 * w)), slice(int(x0 + 0.2 * w), int(x1 - 0.2 * w)))
    diff = np.abs(out.astype(np.int16) - astronaut_rgb.astype(np.int16))
    assert diff[inner].mean() > 8, "the face region did not change"
    far = np.ones(out.shape[:2], bool)
    far[max(0, int(y0 - 0.5 * w)):int(y1 + 0.5 * w), max(0, int(x0 - 0.5 * w)):int(x1 + 0.5 * w)] = False
    assert far.sum() > 0.5 * far.size and diff[far].max() == 0, "pixels far from the face changed"
    # the swapped face keeps the target's pose: Face Mesh finds it where the target's face was
    box = _face_box(swapper, out)
    assert np.abs(box - np.array([x0, y0, x1, y1])).max() < 0.15 * w


def test_the_swapper_is_a_face_pipeline(swapper, portrait, astronaut_rgb):
    """FaceSwapper runs FacePipeline's steps: Face Mesh as the preparation, the warp and blend as the paste;
    the source face lives on the copy that ran the photo, not on the swapper."""
    from faceforge.pipelines import FacePipeline

    assert isinstance(swapper, FacePipeline)
    with pytest.raises(ValueError, match="source="):
        swapper.run(astronaut_rgb)
    source = swapper.prepare_source(portrait)
    run = swapper.run(astronaut_rgb, "largest", source=source)
    assert list(run.timings_ms) == ["source", "detect", "landmarks", "swap", "paste"] and swapper._source is None
    (job,) = run.jobs
    assert job.input.shape == (468, 3) and job.output is job.input and abs(job.extra["yaw_gap"]) < 30
    result = swapper.swap(source, astronaut_rgb, faces="largest")
    assert np.array_equal(result.image, run.image) and list(result.timings_ms) == ["source", "detect", "landmarks",
                                                                                   "swap"]
    assert np.array_equal(result.faces[0].points, job.extra["points"]) and result.faces[0].swapped


def test_swap_face_keeps_shape_on_a_non_square_image(swapper, portrait, astronaut_rgb):
    target = np.ascontiguousarray(np.pad(astronaut_rgb, ((0, 37), (101, 0), (0, 0)), mode="edge"))
    src = swapper.prepare_source(portrait)
    t_pts = swapper.mesh.landmarks_3d(target, swapper.detector.detect(target)[0])
    out, weight = swap_face(portrait, src.points, target, t_pts, blend="feather", return_mask=True)
    assert out.shape == target.shape and out.dtype == np.uint8
    assert weight.shape == target.shape[:2] and weight.max() == pytest.approx(1.0, abs=0.05)
    assert np.array_equal(out[weight == 0], target[weight == 0])
    moved = np.abs(out.astype(int) - target).sum(-1) > 0
    assert not moved[:, :101].any() and not moved[-37:].any()


def test_mask_leaves_out_the_upper_forehead_and_the_open_mouth(swapper, portrait, astronaut_rgb):
    from faceforge.swap import MOUTH_INNER, face_mask_points

    t_pts = swapper.mesh.landmarks_3d(portrait, swapper.detector.detect(portrait)[0])  # smiling, teeth visible
    lowered = face_mask_points(t_pts, 0.5)
    assert lowered[10, 1] > t_pts[10, 1] + 5 and np.allclose(lowered[152], t_pts[152, :2])
    assert np.array_equal(face_mask_points(t_pts, 1.0), t_pts[:, :2])
    src = swapper.prepare_source(astronaut_rgb)
    out, weight = swap_face(astronaut_rgb, src.points, portrait, t_pts, blend="feather", return_mask=True)
    mouth = np.zeros(portrait.shape[:2], np.uint8)
    cv2.fillPoly(mouth, [np.round(t_pts[list(MOUTH_INNER), :2]).astype(np.int32)], 1)
    mouth = cv2.erode(mouth, np.ones((9, 9), np.uint8)) > 0
    assert mouth.sum() > 500  # the teeth
    assert weight[mouth].max() < 0.05 and np.abs(out[mouth].astype(int) - portrait[mouth]).max() <= 8
    assert weight[int(t_pts[4, 1]), int(t_pts[4, 0])] > 0.99  # the nose is swapped
    with pytest.raises(ValueError):
        swap_face(astronaut_rgb, src.points, portrait, t_pts, forehead=1.5)


def test_same_face_tells_copies_from_other_photos(swapper, portrait, astronaut_rgb):
    from faceforge.imaging import decode_image, encode_image

    det, mesh = swapper.detector, swapper.mesh
    a = mesh.landmarks_3d(astronaut_rgb, det.detect(astronaut_rgb)[0])
    copy = decode_image(encode_image(astronaut_rgb, "jpeg", 80))
    assert same_face(astronaut_rgb, a, copy, mesh.landmarks_3d(copy, det.detect(copy)[0]))[0]
    p = mesh.landmarks_3d(portrait, det.detect(portrait)[0])
    different, mad = same_face(astronaut_rgb, a, portrait, p)
    assert not different and mad > 20


# --------------------------------------------------------------------------------------------------
# refusals


def test_no_face_in_source_or_target(swapper, astronaut_rgb):
    grey = np.full((256, 256, 3), 128, np.uint8)
    with pytest.raises(NoFaceError, match="source"):
        swapper.swap(grey, astronaut_rgb)
    flipped = np.ascontiguousarray(astronaut_rgb[:, ::-1])
    with pytest.raises(NoFaceError, match="target"):
        swapper.swap(flipped, grey)


def test_source_face_too_small_states_the_minimum(swapper, portrait, astronaut_rgb):
    small = cv2.resize(portrait, None, fx=0.16, fy=0.16, interpolation=cv2.INTER_AREA)  # face ~46 px
    width = _face_box(swapper, small)[2] - _face_box(swapper, small)[0]
    assert width < MIN_SOURCE_FACE
    with pytest.raises(FaceTooSmallError, match=f"at least {MIN_SOURCE_FACE} px") as info:
        swapper.swap(small, astronaut_rgb)
    assert info.value.status == 422 and info.value.extra["role"] == "source"


def test_target_face_too_small(swapper, portrait, astronaut_rgb):
    from faceforge.swap import MIN_TARGET_FACE

    tiny = cv2.resize(astronaut_rgb, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA)
    target = np.ascontiguousarray(np.pad(tiny, ((100, 100), (100, 100), (0, 0)), mode="edge"))  # face ~18 px
    with pytest.raises(FaceTooSmallError, match=f"target face 0 is .* at least {MIN_TARGET_FACE} px") as info:
        swapper.swap(portrait, target)
    assert info.value.extra["role"] == "target"


def test_source_equal_to_target_is_refused(swapper, astronaut_rgb):
    with pytest.raises(SameFaceError, match="source face itself"):
        swapper.swap(astronaut_rgb, astronaut_rgb)
    from faceforge.imaging import decode_image, encode_image
    with pytest.raises(SameFaceError):
        swapper.swap(decode_image(encode_image(astronaut_rgb, "jpeg", 85)), astronaut_rgb)


def test_all_faces_skips_the_source_face_but_named_faces_raise(swapper, portrait, astronaut_rgb):
    """Target: the astronaut beside the portrait (scaled to the same height); source: the astronaut."""
    scaled = cv2.resize(portrait, (int(portrait.shape[1] * 512 / portrait.shape[0]), 512), interpolation=cv2.INTER_AREA)
    target = np.ascontiguousarray(np.concatenate([astronaut_rgb, scaled], axis=1))
    result = swapper.swap(astronaut_rgb, target)
    by_side = sorted(result.faces, key=lambda f: f.box[0])
    assert [f.swapped for f in by_side] == [False, True]
    assert "source face itself" in by_side[0].skipped
    assert np.array_equal(result.image[:, :512], astronaut_rgb)
    with pytest.raises(SameFaceError):
        swapper.swap(astronaut_rgb, target, faces=[by_side[0].index])
    with pytest.raises(FaceSelectionError):
        swapper.swap(astronaut_rgb, target, faces="7")
    with pytest.raises(ValueError, match="no target face"):
        swapper.swap(astronaut_rgb, target, faces=[])


def test_yaw_gap_refused_with_both_yaws_and_the_limit_or_warned(swapper, portrait, astronaut_rgb):
    from faceforge.faces.rotate import build_scene, render_yaw

    pts = swapper.mesh.landmarks_3d(astronaut_rgb, swapper.detector.detect(astronaut_rgb)[0])
    turned = render_yaw(astronaut_rgb, build_scene(pts, (512, 512)), 60.0).image  # Face Mesh reads ~+45 deg
    strict = FaceSwapper(detector=swapper.detector, mesh=swapper.mesh, max_yaw_gap=30)
    with pytest.raises(PoseGapError) as info:
        strict.swap(portrait, turned)
    err = info.value
    message = str(err)
    assert f"{err.extra['source_yaw']:+.0f} deg" in message and f"{err.extra['target_yaw']:+.0f} deg" in message
    assert "limit of 30 deg" in message and err.extra["gap"] > 30 and err.status == 422
    loose = FaceSwapper(detector=swapper.detector, mesh=swapper.mesh, max_yaw_gap=30, allow_pose_gap=True)
    with pytest.warns(UserWarning, match="swapped anyway"):
        result = loose.swap(portrait, turned)
    assert result.faces[0].swapped and "limit of 30 deg" in result.faces[0].warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert FaceSwapper(detector=swapper.detector, mesh=swapper.mesh, max_yaw_gap=80).swap(portrait, turned).swapped


@pytest.mark.parametrize("kwargs", [{"blend": "clone"}, {"max_yaw_gap": 0}, {"max_yaw_gap": 91},
                                    {"min_source_face": 8}])
def test_out_of_range_options(kwargs):
    with pytest.raises(ValueError):
        FaceSwapper(**kwargs)


def test_errors_are_problem_documents():
    from faceforge import errors
    from server.errors import problem_types

    listed = problem_types()  # what the server's OpenAPI document lists
    for cls, slug in ((PoseGapError, "pose-gap-too-large"), (FaceTooSmallError, "face-too-small"),
                      (SameFaceError, "same-source-and-target")):
        problem = cls("detail", face=1).to_problem()
        assert problem["status"] == 422 and problem["type"].endswith(slug) and problem["face"] == 1
        assert getattr(errors, cls.__name__) is cls and issubclass(cls, errors.SwapError)  # one hierarchy
        assert cls in listed, cls


def test_cli_same_face_refusal_is_one_line_exit_1(tmp_path, astronaut_rgb):
    """The same photo in two encodings (different bytes): the swap's SameFaceError, one line, exit 1."""
    from faceforge.cli import main
    from faceforge.imaging import save_image

    src = save_image(tmp_path / "a.png", astronaut_rgb)
    tgt = tmp_path / "a.jpg"
    Image.fromarray(astronaut_rgb).save(tgt, quality=95)
    r = CliRunner().invoke(main, ["swap", str(src), str(tgt), "-o", str(tmp_path / "x.png"), "--faces", "largest"])
    assert r.exit_code == 1, r.output
    lines = _error_lines(r.output)
    assert len(lines) == 1 and "source face itself" in lines[0] and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------------------------------
# CLI


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


def test_cli_swaps_and_keeps_alpha(tmp_path, portrait, astronaut_rgb):
    from faceforge.cli import main
    from faceforge.imaging import save_image

    src = save_image(tmp_path / "src.jpg", portrait)
    alpha = np.full(astronaut_rgb.shape[:2], 255, np.uint8)
    alpha[:40] = 0
    tgt = tmp_path / "tgt.png"
    Image.fromarray(np.dstack([astronaut_rgb, alpha])).save(tgt)
    out = tmp_path / "out.png"
    result = CliRunner().invoke(main, ["swap", str(src), str(tgt), "-o", str(out), "--blend", "laplacian", "--json"])
    assert result.exit_code == 0, result.output
    written = np.asarray(Image.open(out))
    assert written.shape == (512, 512, 4) and np.array_equal(written[..., 3], alpha)
    assert '"swapped": true' in result.output
    jpg = tmp_path / "out.jpg"
    result = CliRunner().invoke(main, ["swap", str(src), str(tgt), "-o", str(jpg)])
    assert result.exit_code == 0 and "swapped [0]" in result.output
    assert np.asarray(Image.open(jpg)).shape == (512, 512, 3)


def test_cli_exit_codes_and_one_line_errors(tmp_path, portrait, astronaut_rgb):
    from faceforge.cli import main
    from faceforge.imaging import save_image

    src = save_image(tmp_path / "src.png", portrait)
    tgt = save_image(tmp_path / "tgt.png", astronaut_rgb)
    grey = save_image(tmp_path / "grey.png", np.full((128, 128, 3), 128, np.uint8))
    copy = tmp_path / "copy.png"
    copy.write_bytes(tgt.read_bytes())
    runner = CliRunner()
    usage = {
        "same file": [str(tgt), str(tgt)],
        "same bytes": [str(tgt), str(copy)],
        "yaw gap range": [str(src), str(tgt), "--max-yaw-gap", "120"],
        "blend": [str(src), str(tgt), "--blend", "clone"],
        "faces syntax": [str(src), str(tgt), "--faces", "first"],
        "min source": [str(src), str(tgt), "--min-source-face", "4"],
        "output format": [str(src), str(tgt), "-o", str(tmp_path / "x.bmp")],
    }
    for name, args in usage.items():
        r = runner.invoke(main, ["swap", *args] + ([] if "-o" in args else ["-o", str(tmp_path / "x.png")]))
        assert r.exit_code == 2, (name, r.output)
        assert len(_error_lines(r.output)) == 1 and "Traceback" not in r.output, name
    runtime = {
        "no face in source": ([str(grey), str(tgt)], "source"),
        "no face in target": ([str(src), str(grey)], "target"),
        "face index": ([str(src), str(tgt), "--faces", "3"], "out of range"),
        "small source": ([str(src), str(tgt), "--min-source-face", "400"], "at least 400 px"),
        "not an image": ([str(src), str(tmp_path / "bad.png")], "bad.png"),
    }
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    for name, (args, words) in runtime.items():
        r = runner.invoke(main, ["swap", *args, "-o", str(tmp_path / "x.png")])
        assert r.exit_code == 1, (name, r.output)
        lines = _error_lines(r.output)
        assert len(lines) == 1 and words in lines[0] and len(r.output.strip().splitlines()) == 1, (name, r.output)
    assert not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------------------------------
# benchmark helpers (benchmarks/swap_quality.py)


def test_bench_summary_retrieval_and_expression_error():
    from benchmarks.swap_quality import expression_error, summarize, utkface_age

    rng = np.random.default_rng(3)
    src = rng.normal(size=(6, 128))
    tgt = rng.normal(size=(6, 128))
    near = src + 0.01 * rng.normal(size=src.shape)
    near[5] = src[2]  # pair 5's swap looks like source 2
    row = summarize(near, src, tgt, None, None)
    assert row["n"] == 6 and row["id_top1"] == pytest.approx(5 / 6) and row["id_top5"] == 1.0
    assert summarize(tgt, src, tgt, None, None)["id_dist_target"] == 0.0
    pts = rng.uniform(0, 100, (468, 3))
    pts[33, :2], pts[263, :2] = (30, 40), (70, 40)
    rot = np.array([[0.0, -1.0], [1.0, 0.0]]) * 2.0
    moved = pts.copy()
    moved[:, :2] = pts[:, :2] @ rot.T + 5.0  # a similarity: no expression change
    assert expression_error(moved, pts) == pytest.approx(0.0, abs=1e-9)
    moved[13, :2] += 40.0  # one of 468 landmarks moves by half an inter-ocular distance (40 px at scale 2)
    assert 0.05 < expression_error(moved, pts) < 0.5  # percent of the IOD, averaged over all landmarks
    assert utkface_age("26_1_0_20170116.jpg.chip.jpg") == 26 and utkface_age("bad.jpg") is None



def test_bench_robust_transforms_and_mirrored_detection(astronaut_rgb, detector):
    """The identity check's transforms keep shape and dtype; a mirrored detection is where BlazeFace finds the
    face in the flipped photo, with the subject's right and left keypoints exchanged."""
    from benchmarks.swap_quality import ROBUST_TRANSFORMS, mirror_face, transform_image

    rgb = np.ascontiguousarray(astronaut_rgb)
    for name in ROBUST_TRANSFORMS:
        out = transform_image(rgb, name)
        assert out.shape == rgb.shape and out.dtype == np.uint8, name
        diff = np.abs(out.astype(np.int16) - rgb.astype(np.int16)).mean()
        assert (diff > 0.3) and (name == "flip" or diff < 8), (name, diff)  # changed, but not destroyed
    np.testing.assert_array_equal(transform_image(rgb, "flip"), rgb[:, ::-1])
    with pytest.raises(ValueError, match="unknown transform"):
        transform_image(rgb, "sepia")
    face = detector.detect(rgb)[0]
    mirrored = mirror_face(face, rgb.shape[1])
    found = detector.detect(transform_image(rgb, "flip"))[0]
    np.testing.assert_allclose(mirrored.box, found.box, atol=4)
    np.testing.assert_allclose(mirrored.keypoints, found.keypoints, atol=4)  # right eye <-> left eye etc.
    assert mirrored.keypoints[0, 0] < mirrored.keypoints[1, 0] == pytest.approx(rgb.shape[1] - face.keypoints[0, 0])
    again = mirror_face(mirrored, rgb.shape[1])
    np.testing.assert_allclose(again.box, face.box)
    np.testing.assert_allclose(again.keypoints, face.keypoints)


def test_bench_restore_option_adds_restored_rows_and_keeps_the_others(tmp_path, monkeypatch, astronaut_rgb, detector):
    """``run(restore="classical")`` adds ``"<method> + classical restore"`` after each swap method (main table,
    yaw buckets, transformed-ID table), measured on outputs the classical restorer changed, and leaves every
    other row exactly as without the option. The UTKFace draw, the swap and the dlib embedding are replaced by
    stand-ins (a 256-D pixel sample) so this runs without the shared data; the restorer is the real one."""
    from types import SimpleNamespace

    import benchmarks.swap_quality as sq
    from faceforge.restore import make_restorer

    base = np.ascontiguousarray(astronaut_rgb)
    images = [base, np.ascontiguousarray(base[:, ::-1]), np.clip(base * 0.8, 0, 255).astype(np.uint8),
              np.ascontiguousarray(np.clip(base * 0.8 + 30, 0, 255).astype(np.uint8)[:, ::-1])]
    items = [{"path": tmp_path / f"{i}.jpg", "rgb": im, "face": detector.detect(im)[0],
              "source": SimpleNamespace(yaw=float(5 * i))} for i, im in enumerate(images)]

    def thumb(rgb, face):
        return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (16, 16), interpolation=cv2.INTER_NEAREST).ravel() / 255.0

    def measure(swapper, sources, targets, outs):
        return {"embedding": np.stack([thumb(o, None) for o in outs]), "pose": np.ones((len(outs), 3)),
                "expression": np.ones(len(outs))}

    monkeypatch.setattr(sq, "pick_pairs", lambda *a, **k: (items[:2], items[2:], 4))
    monkeypatch.setattr(sq, "_embedding", thumb)
    monkeypatch.setattr(sq, "measure_outputs", measure)
    monkeypatch.setattr(sq, "classical_method", lambda swapper, blend: lambda s, t: (
        cv2.addWeighted(t["rgb"], 0.7, s["rgb"], 0.3, 0), 2.0))
    kw = {"n": 2, "blends": ["laplacian"], "turned": 0, "out_dir": tmp_path, "figures": tmp_path / "fig", "threads": None}
    off = sq.run(tmp_path, name="off", **kw)
    on = sq.run(tmp_path, name="on", restore="classical", **kw)
    name = "classical laplacian" + sq.RESTORE_SUFFIX
    assert list(on["methods"]) == [*off["methods"], name] and name == "classical laplacian + classical restore"
    for key in ("methods", "robust", "buckets"):
        for method, row in off[key].items():
            assert on[key][method] == row, (key, method)
    assert set(on["robust"]) == {*off["robust"], name} and set(on["buckets"]) == {*off["buckets"], name}
    assert set(on["robust"][name]) == set(sq.ROBUST_TRANSFORMS)
    row, plain = on["methods"][name], on["methods"]["classical laplacian"]
    assert row["n"] == 2 and row["refused"] == plain["refused"]
    assert row["restore_ms_per_face"] > 0 and row["ms_per_face"] == pytest.approx(2.0 + row["restore_ms_per_face"])
    assert row["id_dist_source"] != plain["id_dist_source"]  # measured on the restored images, not a copy
    assert "restore" not in off and on["restore"] == "classical"
    assert "restore" not in sq.markdown(off) and f"| {name} | 2 |" in sq.markdown(on)
    with pytest.raises(ValueError, match="restore must be"):
        sq.run(tmp_path, name="bad", restore="gpen", **kw)
    # the restorer changes the face and leaves the photo far from it alone
    out, ms = sq.restore_outputs(make_restorer("classical", detector), [images[2]], [items[2]])
    x0, y0, x1, y1 = items[2]["face"].box.astype(int)
    diff = np.abs(out[0].astype(np.int16) - images[2].astype(np.int16))
    assert diff[y0:y1, x0:x1].mean() > 0.2 and diff[-20:, -20:].max() == 0 and len(ms) == 1


def test_cli_applies_exif_orientation(tmp_path, portrait, astronaut_rgb):
    """A phone JPEG stored sideways with EXIF orientation 6 is swapped upright, at the upright size."""
    from faceforge.cli import main
    from faceforge.imaging import load_image, save_image

    src = save_image(tmp_path / "src.jpg", portrait)
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(astronaut_rgb[:, :400], 1)))  # 400 wide, 512 high
    exif = Image.Exif()
    exif[274] = 6  # "rotate 90 degrees clockwise to display"
    tgt = tmp_path / "sideways.jpg"
    stored.save(tgt, quality=95, exif=exif)
    upright = load_image(tgt)
    assert upright.shape == (512, 400, 3)
    out = tmp_path / "out.png"
    result = CliRunner().invoke(main, ["swap", str(src), str(tgt), "-o", str(out)])
    assert result.exit_code == 0 and "swapped [0]" in result.output, result.output
    written = np.asarray(Image.open(out))
    assert written.shape == (512, 400, 3)
    # far below the face only the invisible watermark changes the pixels (a few levels)
    far = np.abs(written[-60:].astype(int) - upright[-60:])
    assert far.mean() < 3 and far.max() < 40, (far.mean(), far.max())
