"""``client/web/src/pipeline.js`` (the page's reader of the manifest) against OpenCV and ``tests/app_reader.py``.

Runs the JavaScript module under Node (no browser) on scikit-image's astronaut photo and compares, value by
value: INTER_AREA letterbox resizes (OpenCV's fast integer path and its general float32 path), INTER_LINEAR
enlargements (the letterbox of a photo smaller than the detector input), RGB2GRAY,
warpAffine (bilinear, replicated border) for random similarities, the SSD anchors, tile starts, and for
the detected face the aligned 48 px crop (area-shrink included) and the int8 / float32 model inputs. All must
be identical (tolerance 0): an off-by-one grey level is what moved an int8 probability by 0.045 before the
manifest stated float32 decoding. Skips without Node.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from app_reader import ManifestApp  # tests/ is on sys.path (conftest.py lives there)

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "client" / "web" / "src" / "pipeline.js"
ASSETS = ROOT / "mobile_assets"
NODE = shutil.which("node")

pytestmark = [pytest.mark.skipif(NODE is None, reason="no Node.js (apt-get install nodejs) to run pipeline.js"),
              pytest.mark.skipif(not (ASSETS / "manifest.json").is_file(), reason="mobile_assets/manifest.json absent")]

SCRIPT = r"""
import fs from "node:fs";
const P = await import(process.argv[2]);
const dir = process.argv[3];
const job = JSON.parse(fs.readFileSync(dir + "/job.json"));
const manifest = JSON.parse(fs.readFileSync(job.manifest));
const raw = (n) => new Uint8Array(fs.readFileSync(`${dir}/${n}.bin`));
const astro = P.makeImage(job.w, job.h, 3, raw("astro"));
const out = {};
const save = (n, a) => { fs.writeFileSync(`${dir}/js_${n}.bin`, Buffer.from(a.buffer, a.byteOffset, a.byteLength)); };
for (const [n, w, h] of job.resizes) save(`area_${w}x${h}`, P.resizeArea(astro, w, h).data);
const small = P.cropImage(astro, 200, 100, 300, 180);
for (const [w, h] of job.linear) save(`lin_${w}x${h}`, P.resizeLinear(small, w, h).data);
save("gray", P.rgbToGray(astro, P.lumaWeights(job.entry.input.colour_conversion)).data);
job.warps.forEach((m, i) => save(`warp${i}`, P.warpAffine(astro, m, job.warp_size).data));
out.anchors = Object.fromEntries(manifest.detectors.map((d) => [d.model, P.anchors(d).flat()]));
out.tiles = job.tiles.map(([l, t, o]) => P.tileStarts(l, t, o));
const full = manifest.detectors.find((d) => d.model === "full");
const crop = P.align(astro, job.kps, job.entry.face_alignment, full.keypoints);
save("crop", crop.data);
save("input_int8", P.modelInput(crop, job.entry));
save("input_f32", P.modelInput(crop, { ...job.entry, input: { ...job.entry.input, dtype: "float32" } }));
console.log(JSON.stringify(out));
"""


def test_pipeline_js_equals_opencv_and_the_app_reader(tmp_path, astronaut_rgb):
    import cv2

    app = ManifestApp(ASSETS)
    entry = app.entry("mini_xception", "tflite_int8")
    rgb = np.ascontiguousarray(astronaut_rgb)
    rgb.tofile(tmp_path / "astro.bin")
    rng = np.random.default_rng(0)
    warps = []
    for _ in range(8):
        a, th = rng.uniform(0.2, 1.5), rng.uniform(-0.5, 0.5)
        warps.append([a * np.cos(th), -a * np.sin(th), rng.uniform(-300, 50),
                      a * np.sin(th), a * np.cos(th), rng.uniform(-300, 50)])
    _, kps, _ = app.detect(rgb)
    resizes = [("lb_full", 192, 192), ("lb_short", 128, 128), ("odd", 173, 91)]
    linear = [(192, 154), (128, 102), (77, 61), (300, 260)]  # letterbox of a small photo: INTER_LINEAR
    tiles = [[2000, 576, 0.25], [900, 576, 0.25], [500, 576, 0.25], [1428, 576, 0.25]]
    job = {"manifest": str(ASSETS / "manifest.json"), "w": rgb.shape[1], "h": rgb.shape[0], "entry": entry,
           "resizes": resizes, "linear": linear, "warps": warps, "warp_size": 160, "tiles": tiles, "kps": kps[0].tolist()}
    (tmp_path / "job.json").write_text(json.dumps(job))
    script = tmp_path / "run.mjs"
    script.write_text(SCRIPT)
    done = subprocess.run([NODE, str(script), PIPELINE.as_uri(), str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)

    def js(name, shape, dtype=np.uint8):
        return np.fromfile(tmp_path / f"js_{name}.bin", dtype).reshape(shape)

    for _, w, h in resizes:
        ref = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        assert np.array_equal(js(f"area_{w}x{h}", ref.shape), ref), f"INTER_AREA {w}x{h}"
    small = np.ascontiguousarray(rgb[100:180, 200:300])
    for w, h in linear:
        ref = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        got = js(f"lin_{w}x{h}", ref.shape)
        assert np.array_equal(got, ref), f"INTER_LINEAR {w}x{h}: {(got != ref).sum()} values differ"
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    assert np.array_equal(js("gray", gray.shape), gray)
    for i, m in enumerate(warps):
        ref = cv2.warpAffine(rgb, np.asarray(m).reshape(2, 3), (160, 160), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        got = js(f"warp{i}", ref.shape)
        assert np.array_equal(got, ref), f"warp {i}: {(got != ref).sum()} values differ"
    for d in app.manifest["detectors"]:
        assert np.array_equal(np.asarray(out["anchors"][d["model"]], np.float32).reshape(-1, 2), app.anchors(d))
    assert out["tiles"] == [app.tile_starts(*t) for t in tiles]
    crop = app.align(rgb, kps[0], entry["face_alignment"])
    assert np.array_equal(js("crop", crop.shape), crop), "aligned crop"
    x = app.model_input(crop, entry)
    assert np.array_equal(js("input_int8", x.shape, np.int8), x), "int8 model input"
    xf = app.model_input(crop, {**entry, "input": {**entry["input"], "dtype": "float32"}})
    assert np.array_equal(js("input_f32", xf.shape, np.float32), xf), "float32 model input"
