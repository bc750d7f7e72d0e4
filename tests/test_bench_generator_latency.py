"""``benchmarks.generator_latency`` end to end on tiny settings: files written, every kind of row present with
positive times. Narrow random generators at 64 px, ONNX + LiteRT fp16 only, one repeat, one thread, the
astronaut as the photo. Timings are never asserted."""

from __future__ import annotations

import json

import pytest

TINY = {"cyclegan_resnet9": {"ngf": 4, "n_blocks": 1}, "cyclegan_mobile": {"ngf": 4, "n_blocks": 1},
        "pix2pix_unet128": {"ngf": 4}, "pix2pix_unet256": {"ngf": 4}, "pix2pix_mobile": {"ngf": 4}}


def test_model_choice_and_unet_depth():
    from benchmarks.generator_latency import model_name, random_config

    assert model_name("frontalize", "full", 256) == "pix2pix_unet256"
    assert model_name("frontalize", "full", 128) == "pix2pix_unet128"
    assert model_name("translate", "full", 128) == "cyclegan_resnet9"
    assert random_config("pix2pix_mobile", 128)["num_downs"] == 7
    assert random_config("pix2pix_unet128", 64)["num_downs"] == 6
    with pytest.raises(ValueError, match="cannot be timed"):
        from benchmarks.generator_latency import run
        run(sizes=(64,), formats=("coreml_fp16",))


@pytest.mark.slow
@pytest.mark.export
def test_generator_latency_tiny_end_to_end(tmp_path, astronaut_rgb, one_torch_thread):
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("onnxruntime")
    from benchmarks.generator_latency import run
    from faceforge.imaging import encode_image

    from faceforge.checkpoints import save_checkpoint
    from faceforge.models import create_model

    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(encode_image(astronaut_rgb, "jpeg"))
    config = {**TINY["cyclegan_mobile"], "norm": "batch"}  # a given translator checkpoint (mobile arch)
    weights = save_checkpoint(tmp_path / "G_A.pt", create_model("cyclegan_mobile", **config), "cyclegan_mobile",
                              config, {"direction": "A->B"})
    doc = run(sizes=(64,), threads=(1,), formats=("onnx", "tflite_fp16"), repeats=1, warmup=0, photo=photo,
              translate_weights=weights, model_kwargs=TINY, out_dir=tmp_path, name="gl")

    for suffix in ("json", "md", "png"):
        assert (tmp_path / f"gl.{suffix}").stat().st_size > 0
    assert json.loads((tmp_path / "gl.json").read_text())["benchmark"] == "gl"
    md = (tmp_path / "gl.md").read_text()
    assert "## On-device style" in md and "## Modeled phone networks" in md

    assert {(m["family"], m["role"]) for m in doc["models"]} == {
        (f, r) for f in ("translate", "frontalize") for r in ("full", "mobile")}
    assert all(m["params"] > 0 and m["macs"] > 0 for m in doc["models"])
    given = [m for m in doc["models"] if m["weights"] == str(weights)]
    assert [(m["family"], m["role"]) for m in given] == [("translate", "mobile")]
    assert all("random" in m["weights"] for m in doc["models"] if m not in given)
    assert {(r["family"], r["format"]) for r in doc["on_device"]} == {
        (f, fmt) for f in ("translate", "frontalize") for fmt in ("onnx", "tflite_fp16")}
    tflite = next(r for r in doc["on_device"] if r["format"] == "tflite_fp16")
    assert tflite["input"]["shape"] == [1, 64, 64, 3]  # NHWC as exported
    assert len(doc["server_torch"]) == 4
    assert len(doc["round_trips"]) == 4 and not any(r["error"] for r in doc["round_trips"])
    for rows, key in ((doc["on_device"], "ms"), (doc["server_torch"], "ms"), (doc["round_trips"], "round_trip")):
        assert all(r[key]["median"] > 0 for r in rows)
    assert all(r["upload_bytes"]["median"] > 0 and r["download_bytes"]["median"] > 0 for r in doc["round_trips"])
    assert len(doc["on_device_steps"]) == 2
    assert len(doc["networks"]) == 2 * 4
    assert all(n["on_device_ms"] > 0 and n["server_full_warm_ms"] > n["rtt_ms"] for n in doc["networks"])


def test_pad_variants_and_litert_onnx_ratio():
    import torch

    from benchmarks.generator_latency import has_reflection_pads, litert_onnx_ratios, pad_variant
    from faceforge.models import create_model

    g = create_model("cyclegan_mobile", ngf=4, n_blocks=1)
    assert has_reflection_pads(g) and not has_reflection_pads(create_model("pix2pix_mobile", ngf=4, num_downs=5))
    old = pad_variant(g, "mirror_pad")
    assert old is not g and pad_variant(g, "concat") is g
    assert {m.mode for m in old.modules() if hasattr(m, "resolved_mode")} == {"pad"}
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(old(x), g(x))
    with pytest.raises(ValueError, match="pad graph"):
        pad_variant(g, "reflect")
    row = {"family": "translate", "size": 128, "threads": 1}
    doc = {"on_device": [{**row, "format": "onnx", "pad_graph": None, "ms": {"median": 20.0}},
                         {**row, "format": "tflite_int8", "pad_graph": "mirror_pad", "ms": {"median": 45.0}},
                         {**row, "format": "tflite_int8", "pad_graph": "concat", "ms": {"median": 10.0}},
                         {**row, "threads": 2, "format": "tflite_int8", "pad_graph": "concat", "ms": {"median": 9.0}}]}
    ratios = litert_onnx_ratios(doc)
    assert [(q["pad_graph"], q["ratio"]) for q in ratios] == [("mirror_pad", 2.25), ("concat", 0.5)]
