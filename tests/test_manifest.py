"""mobile_assets/manifest.json: schema, file integrity, consistency with the registry and the files.

Runs in the default test run with no export toolchain (jsonschema, and the LiteRT interpreter that
faceforge needs anyway). Tests of the shipped manifest skip when it has not been generated yet.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema not installed (pip install -e '.[dev]')")

from export.formats import FORMATS  # noqa: E402
from export.manifest import sha256_file, validate_manifest, verify_files  # noqa: E402
from export.schema import SCHEMA  # noqa: E402
from faceforge.errors import ExportError  # noqa: E402
from faceforge.models import get_spec  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "mobile_assets"


@pytest.fixture(scope="module")
def manifest() -> dict:
    path = ASSETS / "manifest.json"
    if not path.is_file():
        pytest.skip("mobile_assets/manifest.json not generated yet (run `faceforge export`)")
    return json.loads(path.read_text())


def _minimal_manifest() -> dict:
    """A small valid manifest (one int8 file) to test the schema's teeth without shipped files."""
    return {
        "schema_version": 1,
        "generator": {"name": "t", "faceforge_version": "0", "generated_at": "2026-01-01T00:00:00+00:00",
                      "toolchain": {}},
        "models": [{
            "name": "m", "task": "emotion", "version": "1", "format": "tflite_int8", "precision": "int8",
            "platform": "android", "file": "android/m_int8.tflite", "bytes": 10, "sha256": "0" * 64,
            "input": {"name": "image", "shape": [1, 48, 48, 1], "layout": "NHWC", "dtype": "int8", "colour": "gray",
                      "normalization": {"scale": 1 / 127.5, "offset": -1.0},
                      "quantization": {"scale": 0.0078, "zero_point": 0}},
            "output": {"name": "logits", "shape": [1, 7], "layout": "NC", "dtype": "int8", "values": "logits",
                       "labels": ["a"], "quantization": {"scale": 0.1, "zero_point": 3}},
            "face_alignment": {"template": "fer2013", "size": 48, "keypoints": [[0.3, 0.4], [0.7, 0.4]]},
            "parity": {"validation": "run", "compared": "LiteRT", "images": 10, "passed": True, "bounds": {}},
            "provenance": {"weights": "w.pt"}, "validation": "run", "license": "x",
        }],
        "detectors": [], "licenses": [],
    }


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    validate_manifest(_minimal_manifest())


@pytest.mark.parametrize("path, value, why", [
    (("input", "quantization"), None, "int8 input without quantization"),
    (("output", "quantization"), None, "int8 output without quantization"),
    (("sha256",), "xyz", "bad sha256"),
    (("file",), "/abs/path.tflite", "absolute path"),
    (("file",), "../outside.tflite", "path escaping the folder"),
    (("parity", "passed"), False, "a failed parity check"),
    (("validation",), "trusted", "unknown validation"),
    (("input", "layout"), "CHWN", "unknown layout"),
])
def test_schema_rejects(path, value, why):
    bad = copy.deepcopy(_minimal_manifest())
    target = bad["models"][0]
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    with pytest.raises(ExportError, match="does not match its schema"):
        validate_manifest(bad)


def test_manifest_validates_against_schema(manifest):
    validate_manifest(manifest)
    shipped_schema = json.loads((ASSETS / "manifest.schema.json").read_text())
    assert shipped_schema == SCHEMA, "mobile_assets/manifest.schema.json is stale: re-run faceforge export"


def test_every_file_matches_its_bytes_and_sha256(manifest):
    assert verify_files(manifest, ASSETS) == []
    listed = {e["file"] for e in manifest["models"] + manifest["detectors"]}
    listed |= {e["app_steps"]["landmark_model"]["file"] for e in manifest["models"]
               if (e.get("app_steps") or {}).get("landmark_model")}
    listed |= {lic["file"] for lic in manifest["licenses"]}
    from export.exporter import EXPORT_TMP_PREFIX  # an export running now (or killed) writes there first

    on_disk = {p.relative_to(ASSETS).as_posix() for p in ASSETS.rglob("*")
               if p.is_file() and not p.relative_to(ASSETS).parts[0].startswith(EXPORT_TMP_PREFIX)}
    unlisted = on_disk - listed - {"manifest.json", "manifest.schema.json", ".gitignore"}
    assert not unlisted, f"files in mobile_assets/ that the manifest does not describe: {sorted(unlisted)}"


def test_entries_agree_with_registry_and_formats_table(manifest):
    assert manifest["models"], "no model files in the manifest"
    for e in manifest["models"]:
        spec = get_spec(e["name"])
        if spec.labels is None:  # image-to-image models are exported at the crop size they were trained at
            from export.exporter import with_input_size
            trained = e["provenance"]["checkpoint_meta"]["config"]["crop_size"]
            spec = with_input_size(spec, trained)
        fmt = FORMATS[e["format"]]
        assert e["task"] == spec.task
        assert e["file"] == fmt.relpath(e["name"]) and e["platform"] == fmt.platform
        assert e["precision"] == fmt.precision and e["validation"] == fmt.validation
        assert e["parity"]["passed"] is True
        inp, out = e["input"], e["output"]
        assert inp["colour"] == spec.input.colour
        assert inp["normalization"]["scale"] == pytest.approx(spec.input.scale)
        assert inp["normalization"]["offset"] == pytest.approx(spec.input.offset)
        c, h, w = spec.input.shape
        expected = [1, h, w, c] if inp["layout"] == "NHWC" else [1, c, h, w]
        assert inp["shape"][1:] == expected[1:]
        if spec.labels:
            assert out["labels"] == list(spec.labels) and out["shape"][-1] == len(spec.labels)
            # Core ML classifiers end in a classifier output (softmax inside); every other file gives logits
            assert out["values"] == ("probabilities" if out.get("kind") == "classifier" else "logits")
            if "accuracy" in e["parity"]:
                bound = e["parity"]["bounds"]
                assert e["parity"]["top1_agreement"] >= bound["min_top1_agreement"]
                assert e["parity"]["accuracy_drop_points"] <= bound["max_accuracy_drop"]
        fa = e["face_alignment"]
        assert fa["template"] == spec.input.face_template and fa["size"] == h
        kp = np.asarray(fa["keypoints"])
        assert kp.ndim == 2 and kp.shape[1] == 2 and (kp >= 0).all() and (kp <= 1).all()
        np.testing.assert_allclose(np.asarray(fa["keypoints_px"]), kp * h, atol=1e-4)


def test_face_template_matches_align_module(manifest):
    from faceforge.faces import align

    for e in manifest["models"]:
        fa = e["face_alignment"]
        template = align.TEMPLATES[fa["template"]]
        np.testing.assert_allclose(np.asarray(fa["keypoints"]), np.asarray(template.keypoints), atol=1e-6)


def test_quantization_records_match_the_tflite_files(manifest):
    from ai_edge_litert.interpreter import Interpreter

    tflite = [e for e in manifest["models"] if e["file"].endswith(".tflite")]
    if not tflite:
        pytest.skip("no .tflite model in the manifest")
    for e in tflite:
        interp = Interpreter(model_path=str(ASSETS / e["file"]))
        for rec, det in ((e["input"], interp.get_input_details()[0]), (e["output"], interp.get_output_details()[0])):
            assert rec["dtype"] == np.dtype(det["dtype"]).name and rec["shape"] == [int(d) for d in det["shape"]]
            if rec["dtype"] == "int8":
                scale, zero_point = det["quantization"]
                assert rec["quantization"]["scale"] == pytest.approx(scale, rel=1e-6)
                assert rec["quantization"]["zero_point"] == zero_point
            else:
                assert "quantization" not in rec


def test_detector_files_are_the_blazeface_models(manifest):
    from faceforge.faces import detect

    assert {d["model"] for d in manifest["detectors"]} == {"short", "full"}
    for d in manifest["detectors"]:
        assert d["license"] == "Apache-2.0" and (ASSETS / d["license_file"]).is_file()
        try:
            source = detect.detector_model_path(d["model"])
        except Exception as exc:  # package data absent on this machine
            pytest.skip(f"BlazeFace package data unavailable: {exc}")
        assert sha256_file(source) == d["sha256"]
    notice = (ASSETS / "LICENSES" / "MediaPipe-BlazeFace-NOTICE.txt").read_text()
    assert "Google LLC" in notice and "Apache License, Version 2.0" in notice


def test_weights_notes_name_the_data_each_family_learned_from(manifest):
    notes = {}
    for lic in manifest["licenses"]:
        for f in lic["applies_to"]:
            if lic["file"].endswith("-weights-NOTE.md"):
                notes[f] = lic["file"]
    for e in manifest["models"]:
        want = "FER2013" if e["name"] == "mini_xception" else "UTKFace"
        assert want in notes[e["file"]], f"{e['file']}: {notes.get(e['file'])}"


def test_app_steps_are_written_for_the_image_to_image_families(manifest):
    from export.manifest import app_steps

    for e in manifest["models"]:
        expected = app_steps(e["name"], e["face_alignment"]["size"], e.get("provenance"), ASSETS)
        if expected is None:
            assert "app_steps" not in e, e["file"]
            continue
        assert e["app_steps"] == json.loads(json.dumps(expected)), f"{e['file']}: app_steps are stale (re-run faceforge export)"


def test_weights_license_names_the_data_terms():
    from export.manifest import weights_license

    fer = get_spec("mini_xception").license
    assert weights_license("mini_xception", fer) == fer and "FER2013" in fer
    for name in ("cyclegan_mobile", "pix2pix_mobile"):
        text = weights_license(name, get_spec(name).license)
        assert "UTKFace" in text and "non-commercial" in text and "UTKFace-weights-NOTE.md" in text
    assert weights_license("gpen", "Apache-2.0 (code)") == "Apache-2.0 (code)"


def test_app_steps_take_their_numbers_from_the_library():
    import inspect

    from export.manifest import app_steps
    from faceforge import frontalize as fr
    from faceforge import translate as tr
    from faceforge.faces import landmarks as lm

    assert app_steps("mini_xception", 48) is None
    steps = app_steps("cyclegan_mobile", 128)
    st = {s["step"]: s for s in steps["modes"]["transfer"]["steps"]}
    defaults = inspect.signature(tr.FaceTranslator).parameters
    assert steps["default_mode"] == defaults["detail"].default == "transfer"
    assert st["low_pass"]["sigma_px"] == defaults["detail_sigma"].default
    assert st["low_pass"]["kernel_side"] == 9  # OpenCV's (0, 0) kernel for float32 at sigma 1: round(8 + 1) | 1
    assert st["chroma_scale"]["full_chroma"] == tr.FULL_CHROMA
    assert st["paste_change"]["feather"] == defaults["feather"].default
    assert st["crop_side"]["max_side"] == defaults["max_side"].default and st["crop_side"]["generator_size"] == 128
    front = app_steps("pix2pix_mobile", 128, {"weights": "no/such/file.pt"})
    assert front["default_mode"] == inspect.signature(fr.Frontalizer.frontalize).parameters["output_size"].default
    fs = {s["step"]: s for s in front["modes"]["generator"]["steps"]}
    assert fs["pose_tolerant_crop"]["render_size"] == max(fr.RENDER_SIZE, 128)  # the library's default without weights
    assert fs["range_check"]["max_yaw"] == fr.TRAINED_MAX_YAW
    face = {s["step"]: s for s in front["modes"]["face"]["steps"]}
    vis = inspect.signature(fr.rerender_visibility).parameters
    assert face["visibility"]["feather"] == vis["feather"].default
    assert face["visibility"]["stretch"] == list(vis["stretch"].default)
    assert face["visibility"]["depth_tolerance"] == vis["depth_tolerance"].default
    assert face["compose"]["sigma_px"] == inspect.signature(fr.Frontalizer).parameters["detail_sigma"].default
    assert face["compose"]["full_chroma"] == tr.FULL_CHROMA and face["compose"]["kernel_side"] == 9
    rec = front["landmark_model"]
    assert rec["roi"]["roi_scale"] == lm.ROI_SCALE and rec["presence_threshold"] == lm.PRESENCE_THRESHOLD
    assert rec["file"].endswith(lm.FACE_MESH_FILE) and rec["bytes"] < 3_000_000


def test_refresh_app_steps_rewrites_only_the_models_app_steps(tmp_path):
    """``faceforge export MODEL --app-steps-only``: the named model's app_steps written from the library,
    nothing else changed; a file that no longer matches the manifest is refused."""
    from export.manifest import app_steps, copy_face_mesh, refresh_app_steps, write_json_atomic

    try:
        copy_face_mesh(tmp_path)
    except ExportError as exc:
        pytest.skip(f"Face Mesh package file unavailable: {exc}")
    m = _minimal_manifest()
    (tmp_path / "android").mkdir()
    front = copy.deepcopy(m["models"][0])
    (tmp_path / "android" / "f.tflite").write_bytes(b"frontalizer")
    front.update(name="pix2pix_mobile", task="frontalize", file="android/f.tflite", bytes=11,
                 sha256=sha256_file(tmp_path / "android" / "f.tflite"), provenance={"weights": "no/such/file.pt"},
                 app_steps={"steps": ["stale"]})
    front["face_alignment"]["size"] = 128
    other = m["models"][0]  # another model's entry (no file under tmp_path): left alone
    m["models"].append(front)
    write_json_atomic(tmp_path / "manifest.json", m)
    assert refresh_app_steps(tmp_path, "pix2pix_mobile") == ["android/f.tflite"]
    new = json.loads((tmp_path / "manifest.json").read_text())
    assert new["models"][0] == other
    refreshes = new["generator"].pop("refreshes")  # the full export's fields stay; the refresh is recorded
    assert new["generator"] == m["generator"]
    assert [(r["what"], r["model"], r["files"]) for r in refreshes] == [("app_steps", "pix2pix_mobile", ["android/f.tflite"])]
    assert refreshes[0]["command"] == "faceforge export pix2pix_mobile --app-steps-only" and refreshes[0]["at"]
    assert new["models"][1]["app_steps"] == json.loads(json.dumps(app_steps("pix2pix_mobile", 128, front["provenance"],
                                                                            tmp_path)))
    assert "compose" in {s["step"] for s in new["models"][1]["app_steps"]["modes"]["face"]["steps"]}
    assert refresh_app_steps(tmp_path, "pix2pix_mobile") == []  # already current
    from click.testing import CliRunner

    from export.cli import export

    run = CliRunner().invoke(export, ["pix2pix_mobile", "--app-steps-only", "--out", str(tmp_path)])
    assert run.exit_code == 0 and "already current" in run.output, run.output
    (tmp_path / "android" / "f.tflite").write_bytes(b"frontalizeR")
    with pytest.raises(ExportError, match="do not match"):
        refresh_app_steps(tmp_path, "pix2pix_mobile")
    with pytest.raises(ExportError, match="no entry"):
        refresh_app_steps(tmp_path, "cyclegan_mobile")


def test_remove_formats_deletes_the_files_and_entries_and_keeps_the_rest(tmp_path):
    """``faceforge export MODEL --remove FORMATS``: the files and their entries go, the licences follow the
    remaining files, the removal is recorded; unknown entries, a changed file and removing all are refused."""
    from click.testing import CliRunner

    from export.cli import export
    from export.manifest import load_manifest, remove_formats, write_json_atomic

    m = _minimal_manifest()
    (tmp_path / "android").mkdir()
    for fmt, data in (("tflite_dynint8", b"dynamic"), ("tflite_fp16", b"half")):
        entry = copy.deepcopy(m["models"][0])
        name = f"android/m_{fmt.split('_')[1]}.tflite"
        (tmp_path / name).write_bytes(data)
        entry.update(format=fmt, file=name, bytes=len(data), sha256=sha256_file(tmp_path / name))
        m["models"].append(entry)
    m["models"] = m["models"][1:]  # the two with real files
    m["licenses"] = [{"applies_to": ["android/m_dynint8.tflite"], "license": "x", "file": "LICENSES/a.txt"},
                     {"applies_to": ["android/m_dynint8.tflite", "android/m_fp16.tflite"], "license": "y",
                      "file": "LICENSES/b.txt"}]
    write_json_atomic(tmp_path / "manifest.json", m)
    with pytest.raises(ExportError, match="no m entry of tflite_int8 .*it has: tflite_dynint8, tflite_fp16"):
        remove_formats(tmp_path, "m", ["tflite_int8"])
    with pytest.raises(ExportError, match="every m file"):
        remove_formats(tmp_path, "m", ["tflite_dynint8", "tflite_fp16"])
    (tmp_path / "android/m_dynint8.tflite").write_bytes(b"dynamiC")
    with pytest.raises(ExportError, match="differ from the manifest"):
        remove_formats(tmp_path, "m", ["tflite_dynint8"])
    assert (tmp_path / "android/m_dynint8.tflite").is_file() and load_manifest(tmp_path / "manifest.json") == m
    (tmp_path / "android/m_dynint8.tflite").write_bytes(b"dynamic")

    run = CliRunner().invoke(export, ["m", "--remove", "tflite_dynint8", "--out", str(tmp_path)])
    assert run.exit_code != 0 and "m" in run.output  # not a registered model: a usage error, nothing removed
    assert (tmp_path / "android/m_dynint8.tflite").is_file()
    assert remove_formats(tmp_path, "m", ["tflite_dynint8"]) == ["android/m_dynint8.tflite"]
    new = load_manifest(tmp_path / "manifest.json")
    assert not (tmp_path / "android/m_dynint8.tflite").exists() and (tmp_path / "android/m_fp16.tflite").is_file()
    assert [e["file"] for e in new["models"]] == ["android/m_fp16.tflite"]
    assert new["licenses"] == [{"applies_to": ["android/m_fp16.tflite"], "license": "y", "file": "LICENSES/b.txt"}]
    (refresh,) = new["generator"]["refreshes"]
    assert (refresh["what"], refresh["model"], refresh["files"]) == ("removed", "m", ["android/m_dynint8.tflite"])
    assert verify_files(new, tmp_path) == ["LICENSES/b.txt: missing"]  # the files that remain match
    validate_manifest(new)
    assert json.loads((tmp_path / "manifest.schema.json").read_text()) == json.loads(json.dumps(SCHEMA))


def test_verify_files_checks_the_frontalizers_face_mesh(tmp_path):
    from export.manifest import copy_face_mesh

    try:
        rec = copy_face_mesh(tmp_path)
    except ExportError as exc:
        pytest.skip(f"Face Mesh package file unavailable: {exc}")
    manifest = {"models": [{"app_steps": {"landmark_model": rec}, "file": rec["file"], "bytes": rec["bytes"],
                            "sha256": rec["sha256"]}], "detectors": [], "licenses": []}
    assert verify_files(manifest, tmp_path) == []
    with open(tmp_path / rec["file"], "r+b") as f:  # one byte changed: caught by the digest
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    assert any("face_landmark.tflite" in p and "SHA-256" in p for p in verify_files(manifest, tmp_path))
