"""GPEN ONNX export for server runtimes (export/gpen_onnx.py), the ONNX Runtime restorer
(faceforge.restore.OnnxGPEN) and ``faceforge export gpen``.

One 16 px GPEN with random weights (noise_strength 0.5, so the concatenated encoder features matter) is
exported once per module (~10-15 s: the dynamo exporter); the rest reuses that file.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
ort = pytest.importorskip("onnxruntime")

from export import gpen_onnx  # noqa: E402
from faceforge.errors import CheckpointError, ParityError  # noqa: E402
from faceforge.restore import FaceRestorer, OnnxGPEN, load_restorer  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.export]

SIZE = 16
CONFIG = {"style_dim": 32, "narrow": 1 / 32}


def _faces(astronaut_rgb, n: int = 4, size: int = SIZE) -> np.ndarray:
    """Real-face inputs: the astronaut's face region at ``size``, flipped and shifted for variety."""
    import cv2

    face = astronaut_rgb[30:230, 140:340]
    out = []
    for i in range(n):
        crop = face[i * 6:200 - i * 6, i * 4:200 - i * 8]
        crop = crop[:, ::-1] if i % 2 else crop
        out.append(cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA))
    return np.stack(out)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model, config = gpen_onnx.random_gpen(SIZE, seed=3, config=CONFIG)
    path = tmp_path_factory.mktemp("gpen_onnx") / "gpen_16.onnx"
    meta = {"face_template": "utkface", "version": "test-onnx-1"}
    info = gpen_onnx.export_gpen_onnx(model, path, metadata=meta)
    return model, path, info


@pytest.mark.slow
def test_export_writes_a_dynamic_batch_opset18_file_with_metadata(exported):
    model, path, info = exported
    assert info["opset"] == gpen_onnx.ONNX_OPSET and info["input"] == [-1, 3, SIZE, SIZE]
    assert info["output"] == [-1, 3, SIZE, SIZE] and path.stat().st_size == info["bytes"]
    assert "Conv" in info["ops"] and "Concat" in info["ops"]  # modulated convs + concatenated noise inputs
    runner = OnnxGPEN(path, threads=1)
    assert runner.size == SIZE and runner.faceforge_meta == {"face_template": "utkface", "version": "test-onnx-1"}
    x = torch.rand(3, 3, SIZE, SIZE) * 2 - 1  # a batch of 3 through a file exported at batch 1
    with torch.no_grad():
        ref = model(x)
    np.testing.assert_allclose(runner(x).numpy(), ref.numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="input must be"):
        runner.run(np.zeros((1, 3, SIZE + 1, SIZE), np.float32))


@pytest.mark.slow
def test_parity_on_real_faces_and_the_encoder_features_matter(exported, astronaut_rgb):
    model, path, _ = exported
    faces = _faces(astronaut_rgb)
    p = gpen_onnx.gpen_parity(model, path, faces, threads=1)
    assert p.passed and p.faces == 4
    assert p.psnr_db > 80 and p.max_abs_diff < 1e-4 and p.max_pixel_diff <= 1
    # the concatenated encoder features reach the output in the file too: switching them off changes it
    off = gpen_onnx.copy.deepcopy(model)
    for m in off.modules():
        if isinstance(m, gpen_onnx.GPENStyledConv):
            m.noise_strength.data.zero_()
    assert gpen_onnx.gpen_parity(off, path, faces, threads=1).psnr_db < 60
    with pytest.raises(ValueError, match="faces must be uint8"):
        gpen_onnx.gpen_parity(model, path, faces.astype(np.float32))


@pytest.mark.slow
def test_restorer_runs_the_onnx_file_like_the_pytorch_weights(exported, tmp_path, astronaut_rgb):
    from faceforge.checkpoints import save_checkpoint

    model, path, _ = exported
    ckpt = save_checkpoint(tmp_path / "G_ema.pt", model, "gpen", {**gpen_onnx.DEFAULT_CONFIG, **CONFIG, "size": SIZE},
                           {"face_template": "utkface", "version": "test-onnx-1"})
    runner, template, meta = load_restorer(path)
    assert isinstance(runner, OnnxGPEN) and template.name == "utkface" and meta["version"] == "test-onnx-1"
    faces = _faces(astronaut_rgb)
    by_torch = FaceRestorer(weights=ckpt, detector=object()).restore_crops(faces)
    onnx_restorer = FaceRestorer(weights=path, detector=object())
    by_onnx = onnx_restorer.restore_crops(faces)
    assert onnx_restorer.version == "test-onnx-1"
    assert np.abs(by_onnx.astype(int) - by_torch.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="CPU"):
        runner.to("meta")


@pytest.mark.slow
def test_run_export_all_or_nothing_and_the_report(tmp_path, monkeypatch):
    monkeypatch.setattr(gpen_onnx, "DEFAULT_CONFIG", {**gpen_onnx.DEFAULT_CONFIG, **CONFIG})
    out = tmp_path / "out"
    with pytest.raises(ParityError, match="parity failed") as info:
        gpen_onnx.run_gpen_export("random", out, size=SIZE, parity_source="random", parity_faces=3,
                                  min_psnr_db=1e9)
    assert info.value.extra["report"]["parity"]["passed"] is False
    assert not any(p.suffix in (".onnx", ".json") for p in out.rglob("*"))  # nothing left behind
    report = gpen_onnx.run_gpen_export("random", out, size=SIZE, parity_source="random", parity_faces=3)
    assert sorted(p.name for p in out.iterdir()) == ["gpen_16.json", "gpen_16.onnx"]
    saved = json.loads((out / "gpen_16.json").read_text())
    assert saved["parity"]["passed"] and saved["parity"]["faces"] == 3 and saved["size"] == SIZE
    assert saved["sha256"] == report["sha256"] and "NOT trained" in saved["provenance"]["weights"]


def test_onnx_runner_refuses_other_files(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    other = tmp_path / "other.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(other))
    with pytest.raises(CheckpointError, match="not a GPEN ONNX file"):
        OnnxGPEN(other)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="not a loadable ONNX model"):
        OnnxGPEN(junk)
    with pytest.raises(FileNotFoundError):
        load_restorer(tmp_path / "absent.onnx")


def test_cli_refusals_before_any_export(tmp_path):
    from faceforge.cli import main

    runner = CliRunner()
    r = runner.invoke(main, ["export", "gpen", "--weights", "random"])
    assert r.exit_code == 2 and "mobile_assets" in r.output and "--out" in r.output
    r = runner.invoke(main, ["export", "gpen", "--formats", "tflite_fp16", "-o", str(tmp_path)])
    assert r.exit_code == 2 and "only --formats onnx" in r.output
    r = runner.invoke(main, ["export", "gpen", "--bound", "tflite_int8.min_top1_agreement=0.9", "-o", str(tmp_path)])
    assert r.exit_code == 2 and "onnx.min_psnr_db" in r.output
    r = runner.invoke(main, ["export", "gpen", "--weights", str(tmp_path / "absent.pt"), "-o", str(tmp_path)])
    assert r.exit_code == 1 and "not found" in r.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_latency_benchmark_writes_rows_with_parity_and_load(tmp_path, monkeypatch):
    from benchmarks import restore_latency

    monkeypatch.setattr(gpen_onnx, "real_faces", lambda s, n, seed=0: gpen_onnx.random_faces(s, n, seed))
    doc = restore_latency.run([16], [], None, [1], repeats=2, warmup=1, faces=2, out_dir=tmp_path)
    (row,) = doc["rows"]
    assert row["model"] == "faceforge-16" and row["parity"]["passed"]
    lat = row["latency"]["1"]
    assert lat["pytorch"]["n"] == 2 and lat["onnxruntime"]["median_ms"] > 0 and lat["load_before"] >= 0
    md = (tmp_path / "restore_latency.md").read_text()
    assert "| faceforge-16 | 16 |" in md and "load avg 1 thr" in md
    assert json.loads((tmp_path / "restore_latency.json").read_text())["rows"][0]["size"] == 16


@pytest.mark.slow
def test_server_restore_job_runs_the_onnx_file(exported, astronaut_rgb, monkeypatch):
    """FACEFORGE_GPEN_WEIGHTS naming the .onnx file: POST /v1/restore method=gpen runs it (ONNX Runtime)."""
    from faceforge.imaging import encode_image
    from server import create_app
    from test_jobs import images_of, submit, wait  # tests/ is on sys.path

    _, path, _ = exported
    monkeypatch.setenv("FACEFORGE_GPEN_WEIGHTS", str(path))
    app = create_app({"stylegan2_weights": "default", "torch_threads": None, "job_workers": 1})
    try:
        client = app.test_client()
        url = submit(client, "restore", data={"image": (io.BytesIO(encode_image(astronaut_rgb, "png")), "a.png"),
                                              "method": "gpen"}, content_type="multipart/form-data")
        body = wait(client, url)
        assert body["status"] == "succeeded", body
        (image,) = images_of(body)
        data = body["result"]["data"]
        assert image.shape == astronaut_rgb.shape and data["method"] == "gpen" and data["restored"] == 1
        assert not np.array_equal(image, astronaut_rgb)
        assert np.array_equal(image, FaceRestorer(weights=path).restore(astronaut_rgb).image)  # the ONNX restorer
    finally:
        app.extensions["faceforge"]["jobs"].close()


@pytest.mark.slow
def test_published_layout_weights_export_with_their_template(tmp_path):
    """A GPEN-BFR-style .pth (built here at 16 px with the published key layout) exports by path; the ONNX
    file keeps the published models' framing (gpen_ffhq), so the restorer aligns faces as the PyTorch one."""
    from test_gpen import reference_layout  # tests/ is on sys.path

    from faceforge.restore import GPEN_FFHQ_TEMPLATE

    pth = tmp_path / "GPEN-BFR-16.pth"
    torch.save(reference_layout(16), pth)
    report = gpen_onnx.run_gpen_export(str(pth), tmp_path / "out", parity_source="random", parity_faces=2)
    assert report["parity"]["passed"] and report["provenance"]["face_template"] == "gpen_ffhq"
    runner, template, _ = load_restorer(tmp_path / "out" / "gpen_16.onnx")
    assert template is GPEN_FFHQ_TEMPLATE and runner.size == 16
    with pytest.raises(ValueError, match="differs"):
        gpen_onnx.load_for_export(str(pth), size=32)
