"""Whole-photo translation: face selection, post-filter, weights layouts, the FaceTranslator on real
photos (only the selected faces' squares change), ``faceforge translate`` and ``POST /v1/translate``.

Generators are tiny random CycleGAN generators written here (no trained weights ship yet): the tests
check the pipeline's geometry and the API's contract, never the look of the output.
"""

from __future__ import annotations

import base64
import io

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from PIL import Image
from torch import nn

from faceforge.checkpoints import save_checkpoint
from faceforge.errors import (CheckpointError, FaceSelectionError, UnknownTaskError,
                              WeightsNotFoundError)
from faceforge.faces.detect import Face
from faceforge.models import create_model
from faceforge.translate import (TASKS, FaceTranslator, get_task, load_generators, parse_face_selection, postfilter,
                                 resolve_weights, select_faces, transfer_change)

PROBLEM = "application/problem+json"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny(arch: str = "cyclegan_mobile", seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    kw = {"ngf": 4, "n_blocks": 1}
    return create_model(arch, **kw)


def _save_generator(path, arch="cyclegan_mobile", direction="A->B", crop_size=None, seed=0):
    g = _tiny(arch, seed)
    meta = {"direction": direction}
    if crop_size:
        meta["config"] = {"crop_size": crop_size}
    return save_checkpoint(path, g, arch, g.faceforge_config, meta)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run-folder look-alike with G_A.pt (A->B) and G_B.pt (B->A), trained at 128 px."""
    run = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    _save_generator(run / "G_A.pt", direction="A->B", crop_size=128, seed=1)
    _save_generator(run / "G_B.pt", direction="B->A", crop_size=128, seed=2)
    return run


# --------------------------------------------------------------------------------------------------
# selection and post-filter


def _face(x0, y0, x1, y1, score=0.9):
    return Face(box=np.array([x0, y0, x1, y1], np.float32), keypoints=np.zeros((6, 2), np.float32), score=score)


def test_parse_face_selection():
    assert parse_face_selection(None) == "all"
    assert parse_face_selection(" ") == "all"
    assert parse_face_selection("LARGEST") == "largest"
    assert parse_face_selection("2, 0,2") == (0, 2)
    for bad in ("first", "1,,2", "-1", "1.5"):
        with pytest.raises(ValueError):
            parse_face_selection(bad)


def test_select_faces():
    faces = [_face(0, 0, 10, 10), _face(0, 0, 30, 20), _face(0, 0, 20, 20)]
    assert select_faces(faces, "all") == [0, 1, 2]
    assert select_faces(faces, "largest") == [1]
    assert select_faces(faces, "2,0") == [0, 2]
    assert select_faces(faces, [2, 2]) == [2]
    with pytest.raises(FaceSelectionError) as info:
        select_faces(faces, [1, 3])
    assert info.value.status == 422 and info.value.extra["faces"] == 3


def test_postfilter_smooths_noise_and_keeps_shape():
    rng = np.random.default_rng(0)
    flat = np.full((256, 256, 3), 128, np.float32)  # default sigmas are for 256 px crops
    noisy = np.clip(flat + rng.normal(0, 20, flat.shape), 0, 255).astype(np.uint8)
    out = postfilter(noisy)
    assert out.shape == noisy.shape and out.dtype == np.uint8
    assert out.astype(float).std() < 0.6 * noisy.astype(float).std()
    # amount 0: a plain Gaussian blur; a constant image stays constant under both steps
    const = np.full((32, 32, 3), 77, np.uint8)
    assert np.array_equal(postfilter(const), const)
    # the unsharp step raises edge contrast compared with blurring alone
    edge = np.zeros((256, 256, 3), np.uint8)
    edge[:, 128:] = 200
    blurred, sharpened = postfilter(edge, amount=0), postfilter(edge)
    assert np.abs(np.diff(sharpened[32, :, 0].astype(int))).max() > np.abs(np.diff(blurred[32, :, 0].astype(int))).max()
    with pytest.raises(ValueError):
        postfilter(np.zeros((8, 8), np.uint8))


# --------------------------------------------------------------------------------------------------
# weights


def test_tasks_and_resolve_weights(tmp_path, run_dir, without_card):
    assert "age" in TASKS and get_task("age").env_var == "FACEFORGE_TRANSLATE_AGE_WEIGHTS"
    with pytest.raises(UnknownTaskError) as info:
        get_task("gender")
    assert info.value.extra["valid"] == list(TASKS) and "age" in str(info.value)
    # explicit > environment > installed default
    assert resolve_weights("age", run_dir, environ={"FACEFORGE_TRANSLATE_AGE_WEIGHTS": "/nope"}) == run_dir
    assert resolve_weights("age", None, environ={"FACEFORGE_TRANSLATE_AGE_WEIGHTS": str(run_dir)}) == run_dir
    with pytest.raises(WeightsNotFoundError, match="no such|not found"):
        resolve_weights("age", tmp_path / "missing.pt", environ={})
    # the installed default (faceforge ships cyclegan_age.pt); when absent, a 503-type error naming the variable
    assert get_task("age").default_weights_path.name == "cyclegan_age.pt"
    without_card(get_task("age").card)
    with pytest.raises(WeightsNotFoundError, match="FACEFORGE_TRANSLATE_AGE_WEIGHTS") as info:
        resolve_weights("age", "default", environ={})
    assert info.value.status == 503


def test_shipped_default_translator_ages_a_real_face(astronaut_rgb, detector):
    default = get_task("age").default_weights_path
    if not default.is_file():
        pytest.skip("no default aging weights in this checkout")
    tr = FaceTranslator("age", detector=detector)
    assert tr.describe()["weights"] == "default" and tr.size == 128  # trained at 128 px on CPU
    result = tr.translate(astronaut_rgb)
    out = result.image
    assert out.shape == astronaut_rgb.shape and out.dtype == np.uint8 and len(result.translated) == 1
    (face,) = detector.detect(astronaut_rgb)
    x0, y0, x1, y1 = (int(v) for v in face.box)
    inside = np.abs(out[y0:y1, x0:x1].astype(int) - astronaut_rgb[y0:y1, x0:x1]).mean()
    outside = np.abs(out[-60:, :60].astype(int) - astronaut_rgb[-60:, :60]).mean()
    assert inside > 3 and outside == 0  # the face changed, the rest of the photo is untouched


def test_load_generators_layouts(tmp_path, run_dir):
    gens, meta = load_generators(run_dir)
    assert set(gens) == {"A->B", "B->A"} and meta["config"]["crop_size"] == 128
    assert all(not g.training for g in gens.values())
    # one generator file: the direction its meta states
    single, _ = load_generators(run_dir / "G_B.pt")
    assert set(single) == {"B->A"}
    # a training state (last.pt) holds both generators and the discriminators
    from faceforge.models.cyclegan import NLayerDiscriminator
    nets = nn.ModuleDict({"G_A": _tiny(seed=3), "G_B": _tiny(seed=4), "D_A": NLayerDiscriminator(ndf=4),
                          "D_B": NLayerDiscriminator(ndf=4)})
    cfg = {"input_nc": 3, "ndf": 4, "n_layers": 3, "norm": "batch", "generator": "cyclegan_mobile",
           **nets["G_A"].faceforge_config}
    save_checkpoint(tmp_path / "last.pt", nets, "cyclegan_training_state", cfg, {"step": 7})
    state, meta = load_generators(tmp_path / "last.pt")
    assert set(state) == {"A->B", "B->A"} and meta["step"] == 7
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(state["A->B"](x), nets["G_A"].eval()(x))
    # errors: another task's checkpoint, an empty folder, a missing path
    m = create_model("mini_xception")
    save_checkpoint(tmp_path / "emotion.pt", m, "mini_xception", m.faceforge_config)
    with pytest.raises(CheckpointError, match="not a 'translate' model"):
        load_generators(tmp_path / "emotion.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsNotFoundError):
        load_generators(tmp_path / "empty")
    with pytest.raises(WeightsNotFoundError):
        load_generators(tmp_path / "nothing")


# --------------------------------------------------------------------------------------------------
# the translator on photos


def _changed_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.abs(a.astype(int) - b.astype(int)).sum((0, 2)) > 0)


def test_translator_changes_only_the_selected_faces(run_dir, two_faces, detector):
    tr = FaceTranslator("age", weights=run_dir, detector=detector)
    assert tr.size == 128 and tr.directions == ("A->B", "B->A") and tr.arch == "cyclegan_mobile"
    faces = detector.detect(two_faces)
    assert len(faces) == 2
    result = tr.translate(two_faces, faces="all", detected=faces)
    assert result.image.shape == two_faces.shape and result.image.dtype == np.uint8
    assert [f.translated for f in result.faces] == [True, True]
    assert all(f.crop.shape == (128, 128, 3) and f.output.shape == (128, 128, 3) for f in result.faces)
    cols = _changed_columns(result.image, two_faces)
    assert cols.min() < 512 <= cols.max()  # both halves changed
    assert set(result.timings_ms) == {"detect", "align", "translate", "paste"}

    # one face by index: the other half is untouched, and changes stay near that face's box
    i = int(np.argmax([f.box[0] for f in faces]))  # the right-hand face
    one = tr.translate(two_faces, faces=[i], detected=faces, apply_postfilter=True)
    assert [f.translated for f in one.faces] == [k == i for k in range(2)]
    assert np.array_equal(one.image[:, :512], two_faces[:, :512])
    box = faces[i].box
    cols = _changed_columns(one.image, two_faces)
    w = box[2] - box[0]
    assert box[0] - w < cols.min() and cols.max() < box[2] + w
    # input is never modified
    assert not np.shares_memory(one.image, two_faces)

    with pytest.raises(FaceSelectionError):
        tr.translate(two_faces, faces="0,5", detected=faces)


def test_translator_sizes_directions_and_crops(tmp_path, astronaut_rgb, detector):
    path = _save_generator(tmp_path / "G_A.pt", arch="cyclegan_resnet9")  # no crop_size: the spec's 256
    tr = FaceTranslator("age", weights=path, detector=detector)
    assert tr.size == 256 and tr.directions == ("A->B",)
    with pytest.raises(ValueError, match="G_B"):
        tr.translate(astronaut_rgb, direction="B->A")
    with pytest.raises(ValueError):
        FaceTranslator("age", weights=path, size=130, detector=detector)
    small = FaceTranslator("age", weights=path, size=128, detector=detector)
    out = small.translate(astronaut_rgb, faces="largest")
    assert out.translated[0].output.shape == (128, 128, 3)
    crops = np.zeros((3, 128, 128, 3), np.uint8)
    assert small.translate_crops(crops, batch_size=2).shape == (3, 128, 128, 3)
    with pytest.raises(ValueError):
        small.translate_crops(np.zeros((1, 128, 128), np.uint8))


def test_translate_cli(tmp_path, run_dir, astronaut_rgb):
    from faceforge.cli import main
    from faceforge.imaging import save_image

    photo = save_image(tmp_path / "astronaut.png", astronaut_rgb)
    out = tmp_path / "older.png"
    result = CliRunner().invoke(main, ["translate", str(photo), "--task", "age", "-o", str(out), "--weights",
                                       str(run_dir), "--faces", "largest", "--postfilter", "--json"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and np.asarray(Image.open(out)).shape == astronaut_rgb.shape
    assert '"translated": true' in result.output
    missing = CliRunner().invoke(main, ["translate", str(photo), "--weights", str(tmp_path / "none")],
                                 env={"FACEFORGE_TRANSLATE_AGE_WEIGHTS": ""})
    assert missing.exit_code != 0 and "not found" in missing.output
    unknown = CliRunner().invoke(main, ["translate", str(photo), "--task", "hair", "--weights", str(run_dir)])
    assert unknown.exit_code != 0 and "known tasks: age" in unknown.output
    too_strong = CliRunner().invoke(main, ["translate", str(photo), "--weights", str(run_dir), "--strength", "2.5",
                                           "-o", str(tmp_path / "x.png")])
    assert too_strong.exit_code != 0 and "strength must be in [0, 2]" in too_strong.output
    assert not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------------------------------
# POST /v1/translate


@pytest.fixture(scope="module")
def astronaut_jpeg(astronaut_rgb) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(astronaut_rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def client(run_dir):
    from server import create_app
    return create_app({"translate_age_weights": str(run_dir), "torch_threads": None, "max_faces": 2}).test_client()


def _post(client, data: bytes, **form):
    from server import schemas
    return client.post(schemas.TRANSLATE_PATH, data={"image": (io.BytesIO(data), "photo.jpg"), **form},
                       content_type="multipart/form-data")


def test_api_weights_not_found_is_503_without_server_paths(astronaut_jpeg, tmp_path, expect_problem):
    from server import create_app
    client = create_app({"translate_age_weights": str(tmp_path / "absent"), "torch_threads": None}).test_client()
    body = expect_problem(_post(client, astronaut_jpeg), 503, "weights-not-found")
    assert "FACEFORGE_TRANSLATE_AGE_WEIGHTS" in body["detail"] and str(tmp_path) not in str(body)
    # an explicitly configured path that is absent is a misconfiguration /readyz reports (an absent
    # *default* is not: the server stays ready and only /v1/translate answers 503)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "translate:age" in ready.get_json()["checks"]


def test_api_request_errors(client, astronaut_jpeg, expect_problem):
    body = expect_problem(_post(client, astronaut_jpeg, task="hair"), 400, "unknown-task")
    assert body["valid"] == ["age"]
    expect_problem(_post(client, astronaut_jpeg, faces="biggest"), 400, "invalid-field")
    expect_problem(_post(client, astronaut_jpeg, faces="0,1,2"), 400, "invalid-field")  # over max_faces=2
    expect_problem(_post(client, astronaut_jpeg, format="gif"), 400, "invalid-field")
    expect_problem(_post(client, astronaut_jpeg, postfilter="maybe"), 400, "invalid-field")
    expect_problem(_post(client, astronaut_jpeg, faces="4"), 422, "bad-face-selection")
    expect_problem(_post(client, np.zeros(10, np.uint8).tobytes()), 400, "not-an-image")
    from server import schemas
    expect_problem(client.post(schemas.TRANSLATE_PATH, data={"task": "age"}, content_type="multipart/form-data"),
             400, "missing-field")


def test_api_image_answer(client, astronaut_jpeg, astronaut_rgb):
    for fmt, mime in (("png", "image/png"), ("jpeg", "image/jpeg")):
        r = _post(client, astronaut_jpeg, format=fmt, faces="largest")
        assert r.status_code == 200 and r.mimetype == mime
        img = np.asarray(Image.open(io.BytesIO(r.data)))
        assert img.shape == astronaut_rgb.shape
        assert r.headers["X-Faceforge-Faces-Detected"] == "1"
        assert r.headers["X-Faceforge-Faces-Translated"] == "0"
        assert r.headers["X-Faceforge-Model"] == "cyclegan_mobile"
        steps = [part.split(";")[0].strip() for part in r.headers["Server-Timing"].split(",")]
        from server.schemas import TRANSLATE_TIMING_STEPS
        assert steps == list(TRANSLATE_TIMING_STEPS)


def test_api_json_answer_matches_schema(client, astronaut_jpeg, astronaut_rgb):
    from server import schemas
    r = _post(client, astronaut_jpeg, response="json", direction="b->a", postfilter="true")
    assert r.status_code == 200 and r.mimetype == "application/json"
    body = r.get_json()
    Draft202012Validator(schemas.translate_response_schema()).validate(body)
    assert body["direction"] == "B->A" and body["postfilter"] is True and body["model"]["size"] == 128
    assert body["faces"][0]["translated"] is True
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["image"]["data"]))))
    assert img.shape == astronaut_rgb.shape and body["image"]["media_type"] == "image/png"
    # /v1/models shows the loaded generator as served
    models = {m["name"]: m for m in client.get(schemas.MODELS_PATH).get_json()["models"]}
    assert models["cyclegan_mobile"]["served"] and models["cyclegan_mobile"]["loaded"]


def test_api_strength(client, astronaut_jpeg, expect_problem):
    """``strength`` reaches the translator: 0 gives the uploaded photo back untouched (the JSON answer states
    it); out of range or not a number is one clear 400."""
    from server import schemas
    from server.request_models import STRENGTH_MAX
    import faceforge.translate as T

    assert STRENGTH_MAX == T.MAX_STRENGTH
    r = _post(client, astronaut_jpeg, response="json", strength="0")
    body = r.get_json()
    Draft202012Validator(schemas.translate_response_schema()).validate(body)
    assert body["strength"] == 0.0 and body["faces"][0]["translated"] is True
    returned = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["image"]["data"]))))
    np.testing.assert_array_equal(returned, np.asarray(Image.open(io.BytesIO(astronaut_jpeg)).convert("RGB")))
    changed = np.asarray(Image.open(io.BytesIO(_post(client, astronaut_jpeg, strength="1.5").data)))
    assert np.abs(changed.astype(int) - returned.astype(int)).max() > 10
    for bad in ("2.5", "-1", "strong"):
        detail = expect_problem(_post(client, astronaut_jpeg, strength=bad), 400, "invalid-field")["detail"]
        assert "strength" in detail
    grey_only = _post(client, astronaut_jpeg, response="json", colour="0").get_json()
    assert grey_only["colour"] == 0.0 and grey_only["strength"] == 1.0
    assert "colour" in expect_problem(_post(client, astronaut_jpeg, colour="1.5"), 400, "invalid-field")["detail"]


def test_api_restore_as_last_step(client, astronaut_jpeg, expect_problem, monkeypatch, tmp_path):
    """``restore=classical`` restores the translated face (the answer says which restorer ran and times it);
    the default runs none; ``restore=gpen`` without GPEN weights is a 503, an unknown value a 400."""
    from server import schemas

    def photo(r):
        assert r.status_code == 200, r.get_data(as_text=True)
        return np.asarray(Image.open(io.BytesIO(r.data))).astype(np.int16)

    plain = _post(client, astronaut_jpeg, faces="largest")
    restored = _post(client, astronaut_jpeg, faces="largest", restore="classical")
    assert plain.headers["X-Faceforge-Restored"] == "none" and restored.headers["X-Faceforge-Restored"] == "classical"
    changed = np.abs(photo(restored) - photo(plain)).max(axis=2) > 0
    assert changed.mean() > 0.01                       # the face region changed
    assert not changed[:8].any() and not changed[:, :8].any()  # the photo's border did not
    body = _post(client, astronaut_jpeg, faces="largest", restore="Classical", response="json").get_json()
    Draft202012Validator(schemas.translate_response_schema()).validate(body)
    assert body["restored"] == "classical" and body["timings_ms"]["restore"] > 0
    expect_problem(_post(client, astronaut_jpeg, restore="sharpen"), 400, "invalid-field")
    monkeypatch.setenv("FACEFORGE_GPEN_WEIGHTS", str(tmp_path / "absent.pt"))
    expect_problem(_post(client, astronaut_jpeg, restore="gpen"), 503, "weights-not-found")


def test_openapi_documents_translate(client):
    from openapi_spec_validator import validate

    doc = client.get("/v1/openapi.json").get_json()
    validate(doc)
    op = doc["paths"]["/v1/translate"]["post"]
    assert set(op["responses"]["200"]["content"]) == {"image/png", "image/jpeg", "application/json"}
    assert "X-Faceforge-Faces-Translated" in op["responses"]["200"]["headers"]
    props = op["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"image", "task", "faces", "direction", "postfilter", "format", "response"} <= set(props)
    for status, slug in (("503", "weights-not-found"), ("400", "unknown-task"), ("422", "bad-face-selection")):
        assert slug in op["responses"][status]["content"][PROBLEM]["examples"]


def test_identity_generator_pastes_back_the_same_photo(run_dir, two_faces, detector):
    """Geometry check: with a generator that returns its input, align -> translate -> paste back must give
    the photo back up to two bilinear resamplings (a misplaced or mirrored paste would not)."""
    tr = FaceTranslator("age", weights=run_dir, size=256, detector=detector, detail="off")
    tr.generators["A->B"] = nn.Identity()
    faces = detector.detect(two_faces)
    out = tr.translate(two_faces, detected=faces).image
    changed = np.abs(out.astype(int) - two_faces.astype(int)).sum(2) > 0
    assert changed.any()
    err = (out.astype(float) - two_faces.astype(float))[changed]
    psnr = 10 * np.log10(255.0 ** 2 / np.mean(err ** 2))
    assert psnr > 30, psnr


class _AddConstant(nn.Module):
    """A stand-in generator that brightens by ``delta`` in its (-1, 1) range."""

    def __init__(self, delta: float) -> None:
        super().__init__()
        self.delta = delta

    def forward(self, x):
        return (x + self.delta).clamp(-1, 1)


class _Tint(nn.Module):
    """A stand-in generator that adds one shift per RGB channel in its (-1, 1) range."""

    def __init__(self, shift: tuple[float, float, float]) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(shift).view(1, 3, 1, 1))

    def forward(self, x):
        return (x + self.shift).clamp(-1, 1)


def test_detail_transfer_keeps_the_photo_and_carries_only_the_change(run_dir, two_faces, detector):
    """``detail="transfer"``: an identity generator gives the photo back exactly (nothing is resampled),
    and a generator that brightens moves the face's pixels by that amount while keeping their detail."""
    faces = detector.detect(two_faces)
    tr = FaceTranslator("age", weights=run_dir, size=128, detector=detector)
    assert tr.detail == "transfer"
    tr.generators["A->B"] = nn.Identity()
    result = tr.translate(two_faces, detected=faces, faces="largest")
    np.testing.assert_array_equal(result.image, two_faces)
    face = result.translated[0]
    assert face.crop.shape[0] >= 128 and face.crop.shape[0] % 4 == 0  # the face's own resolution

    tr.generators["A->B"] = _AddConstant(20 / 127.5)
    out = tr.translate(two_faces, detected=faces, faces="largest").image.astype(np.float32)
    diff = out - two_faces.astype(np.float32)
    x0, y0, x1, y1 = [int(v) for v in faces[0].box]
    inner = diff[y0 + (y1 - y0) // 4:y1 - (y1 - y0) // 4, x0 + (x1 - x0) // 4:x1 - (x1 - x0) // 4]
    saturated = two_faces[y0 + (y1 - y0) // 4:y1 - (y1 - y0) // 4, x0 + (x1 - x0) // 4:x1 - (x1 - x0) // 4] > 230
    assert abs(float(np.median(inner[~saturated])) - 20) <= 1.5
    # the change is smooth: its Laplacian is tiny compared with the photo's own
    lap = lambda a: cv2.Laplacian(a.mean(axis=2).astype(np.float32), cv2.CV_32F).var()  # noqa: E731
    assert lap(diff) < 0.05 * lap(two_faces.astype(np.float32))
    far = np.ones(diff.shape[:2], bool)
    bw, bh = x1 - x0, y1 - y0
    far[max(0, y0 - bh):y1 + bh, max(0, x0 - bw):x1 + bw] = False
    assert np.all(diff[far] == 0)  # only the face's square changed


def test_colour_scales_only_the_colour_part_of_the_change(run_dir, two_faces, detector):
    """``colour``: a tinting generator's change keeps its grey part at every ``colour``; its colour part (the
    deviation of each channel from the pixel's grey) scales with ``colour``, 0 leaving a brightness-only
    change."""
    faces = detector.detect(two_faces)
    tr = FaceTranslator("age", weights=run_dir, size=128, detector=detector)
    tr.generators["A->B"] = _Tint((0.3, 0.1, -0.1))
    x0, y0, x1, y1 = [int(v) for v in faces[0].box]
    inner = (slice(y0 + (y1 - y0) // 3, y1 - (y1 - y0) // 3), slice(x0 + (x1 - x0) // 3, x1 - (x1 - x0) // 3))
    ok = np.all((two_faces[inner] > 40) & (two_faces[inner] < 200), axis=2)
    parts = {}
    for colour in (1.0, 0.5, 0.0):
        out = tr.translate(two_faces, detected=faces, faces="largest", colour=colour).image
        diff = (out.astype(np.float32) - two_faces.astype(np.float32))[inner][ok]
        grey = diff.mean(1, keepdims=True)
        parts[colour] = (float(np.median(grey)), np.median(diff - grey, axis=0))
    assert max(abs(parts[c][0] - parts[1.0][0]) for c in parts) <= 1.0  # the brightness change is kept
    assert parts[1.0][1][0] - parts[1.0][1][2] > 15  # red up, blue down ...
    np.testing.assert_allclose(parts[0.5][1], 0.5 * parts[1.0][1], atol=1.0)  # ... halved ...
    assert np.abs(parts[0.0][1]).max() <= 0.5  # ... and gone


def test_detail_transfer_keeps_grayscale_photos_gray(run_dir, two_faces, detector):
    """Grayscale in, grayscale out: a generator that tints (red up, blue down) changes only the grey level."""
    gray = np.repeat(cv2.cvtColor(two_faces, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    faces = detector.detect(gray)
    tr = FaceTranslator("age", weights=run_dir, size=128, detector=detector)
    tr.generators["A->B"] = _Tint((0.3, 0.0, -0.2))
    out = tr.translate(gray, detected=faces).image.astype(int)
    assert np.abs(out - gray).max() > 5  # it did change
    assert max(np.abs(out[..., 0] - out[..., 1]).max(), np.abs(out[..., 1] - out[..., 2]).max()) <= 1
    with pytest.raises(ValueError, match="detail"):
        FaceTranslator("age", weights=run_dir, detail="sharp")


def test_strength_scales_the_carried_change_and_is_checked(run_dir, two_faces, detector):
    """``strength``: the face's pixels move by strength x the generator's change (0: the photo itself), and a
    strength out of range, or one with ``detail="off"``, is a clear error before any work."""
    faces = detector.detect(two_faces)
    tr = FaceTranslator("age", weights=run_dir, size=128, detector=detector)
    tr.generators["A->B"] = _AddConstant(20 / 127.5)
    x0, y0, x1, y1 = [int(v) for v in faces[0].box]
    inner = (slice(y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4), slice(x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4))
    unsaturated = two_faces[inner] < 200
    for strength, moved in ((0.0, 0.0), (0.5, 10.0), (1.5, 30.0)):
        out = tr.translate(two_faces, detected=faces, faces="largest", strength=strength).image
        diff = (out.astype(np.float32) - two_faces.astype(np.float32))[inner]
        assert abs(float(np.median(diff[unsaturated])) - moved) <= 1.5, strength
    for bad in (-0.1, 2.5, float("nan"), "strong"):
        with pytest.raises(ValueError, match="strength"):
            tr.translate(two_faces, detected=faces, strength=bad)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="colour must be in"):
            tr.translate(two_faces, detected=faces, colour=bad)
    off = FaceTranslator("age", weights=run_dir, size=128, detector=detector, detail="off")
    with pytest.raises(ValueError, match="detail='transfer'"):
        off.translate(two_faces, detected=faces, strength=1.5)
    with pytest.raises(ValueError, match="colour needs detail='transfer'"):
        off.translate(two_faces, detected=faces, colour=0.5)
    with pytest.raises(ValueError, match="strength"):
        transfer_change(two_faces[:64, :64], two_faces[:32, :32], two_faces[:32, :32], strength=-1)
