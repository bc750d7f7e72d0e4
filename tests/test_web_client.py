"""The web client (``client/web``, served at ``/app``) in a real browser against a live ``faceforge serve``.

Headless Debian Chromium driven by Playwright for Python (``executable_path``: Playwright's own browser
download is not reachable here) loads the page from a werkzeug server on a free loopback port, uploads
scikit-image's astronaut photo and reads the result the page writes into ``#result-json``:

1. on-device (LiteRT.js Wasm running ``mobile_assets/`` files, pre/post-processing from the manifest in
   ``client/web/src/pipeline.js``) against faceforge's Python on-device path for the same manifest entry
   (``FaceDetector`` + ``OnDeviceClassifier.align/preprocess/__call__``): same number of faces, boxes within
   2 px, same top label, probabilities within 0.02 — the bounds of ``tests/test_app_contract.py``;
2. the fallback (``?device=off``): the page posts to ``/v1/emotion`` and shows the server's faces;
3. an upload that is no image: the server's problem+json shown as a sentence;
4. the heavy tasks as server jobs (generate; restore, swap with its second picker and toonify on a shared
   photo), Cancel sending ``DELETE /v1/jobs/<id>`` (a queued and a running job, the server's record checked),
   and retries on 429/503 honouring ``Retry-After`` (answers injected with Playwright's ``page.route``;
   the retry's delay measured, the number of retries bounded).

Skips with the reason when Chromium, Playwright or the built page (``npm ci && npm run build`` in
client/web, which needs Node) is absent. The screenshot goes to the test's tmp dir.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "mobile_assets"
DIST = ROOT / "client" / "web" / "dist"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DEVICE_PAGE = "/app/?budget_ms=60000"  # the page's latency budget would turn the device off on a loaded CI machine
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]

pytest.importorskip("playwright.sync_api", reason="Playwright for Python not installed (pip install -e '.[dev]')")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="no Chromium (apt-get install chromium)"),
    pytest.mark.skipif(not (DIST / "index.html").is_file(),
                       reason="client/web is not built: needs Node/npm, then `npm ci && npm run build` in client/web"),
    pytest.mark.skipif(not (ASSETS / "manifest.json").is_file(), reason="mobile_assets/manifest.json not generated"),
]


@pytest.fixture(scope="module")
def server_app():
    from server import create_app

    app = create_app({"stylegan2_weights": "default", "stylegan2_toon_weights": "default"})  # shipped 32 px
    yield app
    app.extensions["faceforge"]["jobs"].close()


@pytest.fixture(scope="module")
def base_url(server_app):
    from server.testing import serve_in_thread

    with serve_in_thread(server_app) as url:
        yield url


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:  # one per module: Playwright's sync API cannot nest
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory, astronaut_rgb) -> Path:
    import cv2

    path = tmp_path_factory.mktemp("web") / "astronaut.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR))
    return path


def _open(browser, url: str, console: bool = False, route=None):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    if route is not None:  # (pattern, handler): answered by the test before the page loads
        page.route(*route)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    if console:
        page.on("console", lambda m: print("console:", m.type, m.text[:300]))
        page.on("request", lambda r: print("request:", r.method, r.url[:120]))
        page.on("requestfailed", lambda r: print("failed:", r.url[:120], r.failure))
        page.on("response", lambda r: print("response:", r.status, r.url[:120]))
    response = page.goto(url)
    assert response is not None and response.ok, f"{url}: {response and response.status}"
    page.wait_for_function("document.body.dataset.state === 'ready'", timeout=60_000)
    return page, errors, response


def _submit(page, path: Path) -> None:
    page.evaluate("document.body.dataset.state = 'submitted'")  # so the previous photo's 'done' is not read
    page.set_input_files("#file", str(path))
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=60_000)


def _result(page) -> dict:
    return json.loads(page.inner_text("#result-json"))


def _python_on_device(rgb: np.ndarray, fmt: str):
    """faceforge's own on-device path for manifest entry (mini_xception, fmt): faces and probabilities."""
    from faceforge.faces.detect import FaceDetector
    from faceforge.ondevice import OnDeviceClassifier, find_entry, load_manifest

    clf = OnDeviceClassifier(ASSETS, find_entry(load_manifest(ASSETS), "mini_xception", fmt), num_threads=1)
    faces = FaceDetector("auto", num_threads=1).detect(rgb)
    probs = [clf(clf.preprocess(clf.align(rgb, [f])))[0] for f in faces]
    return faces, probs, clf.labels


@pytest.mark.parametrize("want", ["tflite_fp16", "tflite_int8"])
def test_on_device_result_equals_the_python_on_device_path(browser, base_url, astronaut_png, astronaut_rgb, tmp_path,
                                                           want):
    """The page's default classifier (fp16) and the int8 file Android ships (LiteRT.js 2.5.3 has no int8 tensors;
    the vendored copy `npm run build` writes adds them) against faceforge's Python path for the same file."""
    page, errors, response = _open(browser, base_url + DEVICE_PAGE + ("" if want == "tflite_fp16" else f"&format={want}"))
    assert response.headers["cross-origin-opener-policy"] == "same-origin"
    assert response.headers["cross-origin-embedder-policy"] == "require-corp"
    assert page.evaluate("crossOriginIsolated") is True
    assert page.evaluate("document.body.dataset.device") == "on", page.inner_text("#runtime")
    _submit(page, astronaut_png)
    shot = tmp_path / "web_client_on_device.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"\nscreenshot: {shot}")
    result = _result(page)
    assert result["path"] == "on-device", result
    assert not errors, errors
    name, fmt = result["entry"].split()
    assert name == "mini_xception" and fmt == want, result["entry"]

    faces, probs, labels = _python_on_device(astronaut_rgb, fmt)
    assert len(result["faces"]) == len(faces) >= 1
    worst_box = worst_p = 0.0
    for ours, face, p in zip(result["faces"], faces, probs):
        worst_box = max(worst_box, float(np.abs(np.asarray(ours["box"]) - face.box).max()))
        page_p = np.array([ours["probabilities"][label] for label in labels])
        worst_p = max(worst_p, float(np.abs(page_p - p).max()))
        assert ours["label"] == labels[int(np.argmax(p))]
    print(f"page vs Python ({fmt}): {len(faces)} face(s), box {worst_box:.2e} px, probability {worst_p:.2e}, "
          f"{result['runtime']}, {result['latency_ms']:.1f} ms")
    assert worst_box <= 2.0
    assert worst_p <= 0.02
    assert "On device" in page.inner_text("#path") and "ms" in page.inner_text("#path")
    if want == "tflite_int8":  # the same int8 inputs: LiteRT.js's raw int8 outputs equal Python LiteRT's exactly
        from faceforge.ondevice import find_entry, load_manifest
        from faceforge.runtime import LiteRTModel

        model = LiteRTModel(ASSETS / find_entry(load_manifest(ASSETS), "mini_xception", want)["file"], num_threads=1)
        rng = np.random.default_rng(0)
        for _ in range(5):
            q = rng.integers(-128, 128, size=tuple(model.input["shape"]), dtype=np.int8)
            ours = page.evaluate("(v) => faceforgeClassify(v)", q.reshape(-1).tolist())
            assert ours["format"] == want
            assert ours["output"] == model.run_quantized(q)[0].reshape(-1).astype(int).tolist()
    page.close()


def test_fallback_to_the_server_when_on_device_is_unavailable(browser, base_url, astronaut_png, astronaut_rgb):
    page, errors, _ = _open(browser, base_url + "/app/?device=off")
    assert "unavailable" in page.inner_text("#runtime")
    _submit(page, astronaut_png)
    result = _result(page)
    assert result["path"] == "server" and result["runtime"] == "POST /v1/emotion", result
    faces, probs, labels = _python_on_device(astronaut_rgb, "tflite_fp32")
    assert len(result["faces"]) == len(faces)
    assert np.abs(np.asarray(result["faces"][0]["box"]) - faces[0].box).max() <= 2.0
    assert result["faces"][0]["label"] == "happy"
    assert page.inner_text("#path").startswith("Server")
    assert not errors, errors
    page.close()
    page, errors, _ = _open(browser, base_url + "/app/?budget_ms=0.001")  # a device too slow for the budget
    assert "too slow here" in page.inner_text("#runtime"), page.inner_text("#runtime")
    _submit(page, astronaut_png)
    assert _result(page)["path"] == "server"
    assert not errors, errors
    page.close()


def test_an_upload_that_is_no_image_is_answered_with_the_servers_sentence(browser, base_url, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a photo\n")
    page, errors, _ = _open(browser, base_url + DEVICE_PAGE)
    _submit(page, text)
    assert page.evaluate("document.body.dataset.state") == "error"
    message = page.inner_text("#error")
    # the on-device path cannot decode it, the server's problem+json (not-an-image, 400) is shown as a sentence
    assert message == "The data is not an image: the data is not an image in any recognised format.", message
    assert not errors, errors
    page.close()


def test_published_litertjs_without_int8_falls_back(browser, base_url, astronaut_png):
    """The page with @litertjs/core 2.5.3 exactly as published (no int8 row; served in place of the vendored copy):
    its dtype probe leaves int8 out, so ?format=tflite_int8 turns the device path off with the reason and photos go
    to the server, while the default fp16 file still runs on the device."""
    published = ROOT / "client" / "web" / "node_modules" / "@litertjs" / "core" / "dist" / "index.js"
    if not published.is_file():
        pytest.skip("client/web/node_modules is not installed (npm ci)")
    assert 'dtype: "int8"' not in published.read_text()[:5000]  # else this LiteRT.js maps int8 itself: nothing to test

    def unpatched(route):
        route.fulfill(path=str(published), content_type="text/javascript")

    page, errors, _ = _open(browser, base_url + DEVICE_PAGE + "&format=tflite_int8", route=("**/vendor/litertjs-core.js", unpatched))
    assert page.evaluate("document.body.dataset.device") == "off"
    assert "whose tensors LiteRT.js carries here (float32, int32, uint8)" in page.inner_text("#runtime"), page.inner_text("#runtime")
    _submit(page, astronaut_png)
    assert _result(page)["path"] == "server"
    page.close()
    page, errors2, _ = _open(browser, base_url + DEVICE_PAGE, route=("**/vendor/litertjs-core.js", unpatched))
    assert page.evaluate("document.body.dataset.device") == "on", page.inner_text("#runtime")
    assert "tflite_fp16" in page.inner_text("#runtime")
    assert not errors and not errors2, errors + errors2
    page.close()


@pytest.mark.data
@pytest.mark.parametrize("fmt", ["tflite_int8", "tflite_fp16"])
def test_on_device_parity_on_the_shared_photos(browser, base_url, data_dir, fmt):
    """The issue's parity bounds on the photos of ``test_app_contract``: same faces, boxes within 2 px, same top
    label on >= 95 % of faces, probabilities within 0.02 (photos decoded by the browser vs faceforge), for fp16 (the
    page's default) and for the int8 file Android ships (``?format=tflite_int8``).

    int8 misses the 0.02 bound on a few faces (3 of 59 when measured: 0.022-0.033, all on robocup_team.png): the two
    detectors' keypoints differ by ~1e-4 px (float32 BlazeFace in LiteRT.js's Wasm vs Python's LiteRT), which changes
    a few pixels of the 48 px crop, and one output step of the int8 file is 0.1 logit. What is
    asserted for both: on every face Python's path fed the page's own keypoints gives the page's probabilities (to
    1e-5: alignment, quantization and the classifier agree exactly), and the keypoints agree to 1e-3 px."""
    import dataclasses

    from faceforge.faces.detect import FaceDetector
    from faceforge.imaging import load_image
    from faceforge.ondevice import OnDeviceClassifier, find_entry, load_manifest

    photos = sorted((data_dir / "photos" / "portraits").iterdir()) + sorted((data_dir / "photos" / "groups").iterdir())
    photos += sorted((data_dir / "photos" / "portraits_256").iterdir())[:20]
    photos = [p for p in photos if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    page, errors, _ = _open(browser, base_url + DEVICE_PAGE + f"&format={fmt}")
    detector = FaceDetector("auto", num_threads=1)
    clf = OnDeviceClassifier(ASSETS, find_entry(load_manifest(ASSETS), "mini_xception", fmt))
    faces_n = same = within = 0
    worst_box = worst_p = worst_kps = worst_own = 0.0
    problems, over = [], []
    for path in photos:
        _submit(page, path)
        result = _result(page)
        assert result["path"] == "on-device" and result["entry"] == f"mini_xception {fmt}", (path.name, result)
        rgb = load_image(path)
        found = detector.detect(rgb)
        if len(found) != len(result["faces"]):
            problems.append(f"{path.name}: page {len(result['faces'])} faces, Python {len(found)}")
            continue
        for ours, face in zip(result["faces"], found):
            p = clf(clf.preprocess(clf.align(rgb, [face])))[0]
            page_p = np.array([ours["probabilities"][lb] for lb in clf.labels])
            kps = np.asarray(ours["kps"], np.float32)
            own = clf(clf.preprocess(clf.align(rgb, [dataclasses.replace(face, keypoints=kps)])))[0]
            box = float(np.abs(np.asarray(ours["box"]) - face.box).max())
            dp = float(np.abs(page_p - p).max())
            worst_box, worst_p = max(worst_box, box), max(worst_p, dp)
            worst_kps = max(worst_kps, float(np.abs(kps - face.keypoints).max()))
            worst_own = max(worst_own, float(np.abs(page_p - own).max()))
            faces_n += 1
            same += int(ours["label"] == clf.labels[int(np.argmax(p))])
            within += int(dp <= 0.02)
            if box > 2.0:
                problems.append(f"{path.name}: box {box:.2f} px")
            if dp > 0.02:
                over.append(f"{path.name}: probability {dp:.4f}")
    print(f"\npage vs Python ({fmt}) on {len(photos)} photos: {faces_n} faces, same label {same}/{faces_n}, "
          f"probabilities within 0.02 on {within}/{faces_n} (max {worst_p:.2e}; {over}), max box {worst_box:.2e} px, "
          f"max keypoint {worst_kps:.2e} px; with the page's keypoints: max probability {worst_own:.2e}")
    assert not problems, problems
    assert faces_n >= 30 and same / faces_n >= 0.95
    assert worst_kps <= 1e-3  # the detectors agree to float32 noise
    assert worst_own <= 1e-5, worst_own  # same keypoints -> the same crop, int8 input and output
    if fmt != "tflite_int8":
        assert not over, over
    assert not errors, errors
    page.close()


def _write_y4m(path: Path, rgb: np.ndarray, frames: int) -> None:
    """A YUV4MPEG2 (4:2:0) clip of ``rgb`` drifting right 2 px a frame, for Chromium's fake camera."""
    import cv2

    h, w = rgb.shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            f.write(b"FRAME\n" + cv2.cvtColor(np.roll(rgb, 2 * i, axis=1), cv2.COLOR_RGB2YUV_I420).tobytes())


def test_real_time_emotion_from_a_fake_camera(playwright, base_url, astronaut_rgb, tmp_path):
    import cv2

    clip = tmp_path / "camera.y4m"
    _write_y4m(clip, cv2.resize(astronaut_rgb, (256, 256), interpolation=cv2.INTER_AREA), 10)
    args = CHROMIUM_ARGS + ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                            f"--use-file-for-fake-video-capture={clip}"]
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
    try:
        page, errors, _ = _open(b, base_url + DEVICE_PAGE)
        page.click("#camera")
        page.wait_for_function("(() => { const t = document.getElementById('result-json').textContent;"
                               " return t && JSON.parse(t).frames >= 8; })()", timeout=60_000)
        result, caption = _result(page), page.inner_text("#path")
        page.screenshot(path=str(tmp_path / "web_client_camera.png"), full_page=True)
        print(f"\ncamera: {result['frames']} frames, {result['fps']:.1f} frames/s, {tmp_path / 'web_client_camera.png'}")
        page.click("#camera")  # stop
        page.wait_for_function("document.body.dataset.state === 'done'", timeout=10_000)
    finally:
        b.close()
    assert result["path"] == "camera" and result["fps"] > 0
    assert len(result["faces"]) == 1 and result["faces"][0]["label"] == "happy"
    assert "Camera, on device" in caption and "frames/s" in caption, caption
    assert not errors, errors


def test_server_features_and_a_generate_job(browser, base_url, astronaut_png, tmp_path):
    page, errors, _ = _open(browser, base_url + DEVICE_PAGE)
    page.select_option("#feature", "age")
    _submit(page, astronaut_png)
    aged = _result(page)
    assert aged["path"] == "server" and aged["runtime"] == "POST /v1/translate", aged
    assert (aged["width"], aged["height"]) == (512, 512)  # the whole photo, its face translated
    page.evaluate("document.body.dataset.state = 'submitted'")
    page.select_option("#feature", "frontalize")  # re-runs on the same photo
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=60_000)
    front = _result(page)
    assert front["runtime"] == "POST /v1/frontalize" and front["width"] == front["height"], front
    page.evaluate("document.body.dataset.state = 'submitted'")
    page.click("#generate")
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=60_000)
    job = _result(page)
    assert job["runtime"] == "job POST /v1/generate" and job["width"] == 32, (job, page.inner_text("#error"))
    assert "succeeded" in page.inner_text("#progress")
    page.evaluate("document.body.dataset.state = 'submitted'")
    page.select_option("#feature", "edit")  # an InterFaceGAN edit of a generated face: one face per strength
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=60_000)
    edited = _result(page)
    assert page.is_visible("#attribute-label") and page.is_hidden("#source-label")
    assert edited["runtime"] == "job POST /v1/edit" and edited["images"] == 5, (edited, page.inner_text("#error"))
    assert edited["entry"].startswith("age of StyleGAN2 seed") and edited["entry"].endswith("-2, -1, 0, 1, 2 sigma")
    page.screenshot(path=str(tmp_path / "web_client_generate.png"), full_page=True)
    import cv2

    blank = tmp_path / "blank.png"
    assert cv2.imwrite(str(blank), np.full((96, 96, 3), 128, np.uint8))
    page.select_option("#feature", "restore")  # runs on the astronaut at once; then a photo without a face
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=60_000)
    _submit(page, blank)  # the job fails on the server: its problem is the sentence
    assert page.evaluate("document.body.dataset.state") == "error"
    assert page.inner_text("#error") == "No face was found in the image: no face found in the 96x96 image.", page.inner_text("#error")
    print(f"\naging {aged['latency_ms']:.0f} ms, frontalize {front['latency_ms']:.0f} ms, generate job "
          f"{job['latency_ms']:.0f} ms, edit job {edited['latency_ms']:.0f} ms; {tmp_path / 'web_client_generate.png'}")
    assert not errors, errors
    page.close()


@pytest.mark.data
def test_heavy_jobs_restore_swap_makeup_and_toonify_on_a_shared_photo(browser, base_url, data_dir, tmp_path):
    """The page's heavy tasks end to end on the live server (real tasks, shipped models): restore and toonify of
    a shared portrait, a swap of another portrait's face onto it and a makeup transfer from a third (the second
    picker), each through the job API with its progress line; the returned photo is drawn."""
    from PIL import Image

    target = data_dir / "photos" / "portraits" / "obama.jpg"
    source = data_dir / "photos" / "portraits" / "biden.jpg"
    size = Image.open(target).size
    page, errors, _ = _open(browser, base_url + DEVICE_PAGE + "&toon_steps=5")  # 5 projection steps: ~17 s here
    progress: list[str] = []
    page.expose_function("reportProgress", lambda text: progress.append(text))
    page.evaluate("new MutationObserver(() => reportProgress(document.getElementById('progress').textContent))"
                  ".observe(document.getElementById('progress'), {childList: true, characterData: true, subtree: true})")
    page.select_option("#feature", "restore")
    assert page.is_hidden("#source-label")
    _submit(page, target)
    restored = _result(page)
    assert restored["runtime"] == "job POST /v1/restore", (restored, page.inner_text("#error"))
    assert (restored["width"], restored["height"]) == size and restored["entry"].endswith("1 of 1 face(s)"), restored
    assert any("(restore): running" in t or "(restore): queued" in t for t in progress), progress
    page.screenshot(path=str(tmp_path / "web_client_restore.png"), full_page=True)

    page.evaluate("document.body.dataset.state = 'submitted'")
    page.select_option("#feature", "swap")  # no source face yet: the page asks for it
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=30_000)
    assert "source face" in page.inner_text("#error"), page.inner_text("#error")
    assert page.is_visible("#source-label")
    page.evaluate("document.body.dataset.state = 'submitted'")
    page.set_input_files("#source", str(source))
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=60_000)
    swapped = _result(page)
    assert swapped["runtime"] == "job POST /v1/swap", (swapped, page.inner_text("#error"))
    assert (swapped["width"], swapped["height"]) == size and swapped["entry"].startswith("swap, 1 face(s)"), swapped
    shot = tmp_path / "web_client_swap.png"
    page.screenshot(path=str(shot), full_page=True)

    page.evaluate("document.body.dataset.state = 'submitted'")
    page.select_option("#feature", "makeup")  # the swap's source is no makeup reference: the page asks for one
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=30_000)
    assert "Makeup reference" in page.inner_text("#error") and page.inner_text("#source-title") == "Makeup reference"
    page.evaluate("document.body.dataset.state = 'submitted'")
    page.set_input_files("#source", str(data_dir / "photos" / "portraits" / "rose_leslie.jpg"))
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=60_000)
    made_up = _result(page)
    assert made_up["runtime"] == "job POST /v1/makeup", (made_up, page.inner_text("#error"))
    assert (made_up["width"], made_up["height"]) == size and made_up["entry"].endswith("1 face(s)"), made_up

    page.evaluate("document.body.dataset.state = 'submitted'")
    page.select_option("#feature", "toonify")  # the photo, projected then rendered by the toon generator
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=180_000)
    toon = _result(page)
    assert toon["runtime"] == "job POST /v1/toonify" and toon["width"] == 32, (toon, page.inner_text("#error"))
    assert toon["entry"] == "Toonify of the photo, 5 projection steps", toon
    print(f"\nrestore {restored['latency_ms']:.0f} ms (run {restored['run_ms']:.0f}), swap {swapped['latency_ms']:.0f} ms "
          f"(run {swapped['run_ms']:.0f}), makeup {made_up['latency_ms']:.0f} ms (run {made_up['run_ms']:.0f}), "
          f"toonify {toon['latency_ms']:.0f} ms (run {toon['run_ms']:.0f}); {shot}")
    assert not errors, errors
    page.close()


@pytest.fixture
def held_jobs(server_app):
    """The live server's job queue replaced by one whose task waits until released: a job stays running (and the
    next one queued) as long as a test needs; yields (queue, started event, release event, task names run, tasks
    returned)."""
    import threading

    from server.jobs import InProcessJobQueue, TaskResult

    started, release, ran, returned = threading.Event(), threading.Event(), [], []

    def held(task, payload):
        ran.append(task)
        started.set()
        release.wait(30)
        returned.append(task)
        return TaskResult([], {})

    jobs = server_app.extensions["faceforge"]["jobs"]
    queue = server_app.extensions["faceforge"]["jobs"] = InProcessJobQueue(held, workers=1, max_queued=4)
    try:
        yield queue, started, release, ran, returned
    finally:
        release.set()
        queue.close()
        server_app.extensions["faceforge"]["jobs"] = jobs


def _job_id(page, task: str) -> str:
    """The id of the page's ``task`` job once its progress line shows it polling (``Job <id> (<task>): ...``)."""
    import re

    pattern = rf"Job ([0-9a-f]{{32}}) \({task}\): (queued|running)"
    page.wait_for_function(f"/{pattern}/.test(document.getElementById('progress').textContent)", timeout=30_000)
    return re.search(pattern, page.inner_text("#progress")).group(1)


def test_cancel_sends_delete_and_the_server_cancels_the_job(browser, base_url, astronaut_png, held_jobs):
    """Cancel on a running restore job and on a queued generate job: the page sends DELETE /v1/jobs/<id>, the
    server's record is cancelled (the queued one never runs), and the page says so."""
    requests = pytest.importorskip("requests")
    queue, started, release, ran, returned = held_jobs
    blocker = queue.submit("generate", {})  # holds the only worker: the page's generate job stays queued
    assert started.wait(10)
    page, errors, _ = _open(browser, base_url + DEVICE_PAGE)
    methods = []
    page.on("request", lambda r: methods.append((r.method, r.url)) if "/v1/jobs/" in r.url else None)
    page.evaluate("document.body.dataset.state = 'submitted'")
    page.click("#generate")
    queued_id = _job_id(page, "generate")
    assert requests.get(f"{base_url}/v1/jobs/{queued_id}", timeout=10).json()["status"] == "queued"
    page.click("#cancel")
    page.wait_for_function("['cancelled', 'done', 'error'].includes(document.body.dataset.state)", timeout=30_000)
    assert page.evaluate("document.body.dataset.state") == "cancelled", (page.inner_text("#progress"), page.inner_text("#error"))
    assert "cancelled on the server" in page.inner_text("#progress") and "it was queued" in page.inner_text("#progress")
    assert requests.get(f"{base_url}/v1/jobs/{queued_id}", timeout=10).json()["status"] == "cancelled"
    assert ("DELETE", f"{base_url}/v1/jobs/{queued_id}") in methods
    release.set()  # the blocker returns; the worker skips the cancelled job
    deadline = time.monotonic() + 10
    while not returned and time.monotonic() < deadline:
        time.sleep(0.02)
    assert returned == ["generate"] and queue.get(blocker.id).status == "succeeded"
    release.clear()
    started.clear()
    page.select_option("#feature", "restore")
    page.evaluate("document.body.dataset.state = 'submitted'")
    page.set_input_files("#file", str(astronaut_png))  # a photo: the restore job is submitted and runs
    running_id = _job_id(page, "restore")
    assert started.wait(10)
    page.wait_for_function(f"document.getElementById('progress').textContent.includes('{running_id} (restore): running')",
                           timeout=30_000)
    page.click("#cancel")
    page.wait_for_function("['cancelled', 'done', 'error'].includes(document.body.dataset.state)", timeout=30_000)
    assert page.evaluate("document.body.dataset.state") == "cancelled", page.inner_text("#error")
    assert "it was running" in page.inner_text("#progress")
    body = requests.get(f"{base_url}/v1/jobs/{running_id}", timeout=10).json()
    assert body["status"] == "cancelled" and body["started_at"] is not None
    assert ran == ["generate", "restore"]  # the cancelled queued generate job never ran
    assert not errors, errors
    page.close()


def test_retry_after_is_honoured_on_429_and_503_and_bounded(browser, base_url, astronaut_png):
    """Playwright answers the page's POST /v1/emotion itself: first 429 + Retry-After: 1, then the real server.
    The retry comes >= 1 s after the 429, the waiting sentence is shown meanwhile; a server that keeps
    answering 503 + Retry-After: 1 gets RETRIES (2) retries, then its sentence."""
    page, errors, _ = _open(browser, base_url + "/app/?device=off")
    seen: list[tuple[float, str]] = []
    busy = {"left": 1, "status": 429}

    def handle(route):
        seen.append((time.monotonic(), route.request.method))
        if busy["left"] > 0:
            busy["left"] -= 1
            route.fulfill(status=busy["status"], headers={"Retry-After": "1", "Content-Type": "application/problem+json"},
                          body=json.dumps({"type": "urn:faceforge:problem:queue-full", "title": "Too many requests",
                                           "status": busy["status"], "detail": "the test server is busy"}))
        else:
            route.continue_()

    page.route("**/v1/emotion", handle)
    page.evaluate("document.body.dataset.state = 'submitted'")
    page.set_input_files("#file", str(astronaut_png))
    page.wait_for_function("!document.getElementById('notice').hidden", timeout=30_000)
    notice = page.inner_text("#notice")
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=60_000)
    result = _result(page)
    assert result["path"] == "server" and result["faces"][0]["label"] == "happy", (result, page.inner_text("#error"))
    assert notice == "The server is busy (429); trying again in 1 s (retry 1 of 2).", notice
    assert len(seen) == 2 and seen[1][0] - seen[0][0] >= 1.0, seen
    assert page.evaluate("document.getElementById('notice').hidden") is True
    gap_429 = seen[1][0] - seen[0][0]

    seen.clear()
    busy.update(left=10, status=503)
    page.evaluate("document.body.dataset.state = 'submitted'")
    page.set_input_files("#file", str(astronaut_png))
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=60_000)
    message = page.inner_text("#error")
    assert page.evaluate("document.body.dataset.state") == "error"
    assert message == "Too many requests: the test server is busy. Try again in 1 s.", message
    gaps = [b[0] - a[0] for a, b in zip(seen, seen[1:])]
    assert len(seen) == 3 and min(gaps) >= 1.0, seen  # the first try + 2 retries, each after Retry-After
    parsed = page.evaluate("""async () => { const { retryAfterSeconds: s } = await import('./app.js');
        const inTen = new Date(Date.now() + 10_000).toUTCString();
        return [s('3'), s(' 7 '), s(inTen), s('Wed, 21 Oct 2015 07:28:00 GMT'), s('soon'), s(null), s('')]; }""")
    assert parsed[:2] == [3, 7] and 9 <= parsed[2] <= 11 and parsed[3:] == [0, None, None, None], parsed  # RFC 9110
    print(f"\nretry after 429: {gap_429:.2f} s; 503 x3: gaps {[round(g, 2) for g in gaps]} s, then: {message}")
    assert not errors, errors
    page.close()


def test_static_build_on_another_host_calls_a_keyed_server_through_cors(browser, astronaut_png, tmp_path):
    """dist/ on its own static host (with mobile_assets/ copied as assets/), the API elsewhere with API keys and
    CORS for that origin: with the key typed in, the server answers; without it, its 401 is a sentence."""
    import functools
    import http.server
    import threading

    from server import create_app
    from server.access import new_api_key
    from server.testing import serve_in_thread

    site = tmp_path / "site"
    shutil.copytree(DIST, site)
    shutil.copytree(ASSETS, site / "assets", ignore=shutil.ignore_patterns("ios", "onnx"))

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
                          ".wasm": "application/wasm"}

        def end_headers(self):
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            super().end_headers()

        def log_message(self, *args):
            pass

    static = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(site)))
    threading.Thread(target=static.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{static.server_port}"
    key, entry = new_api_key("web")
    try:
        with serve_in_thread(create_app({"api_keys": entry, "cors_origins": origin})) as api:
            page, errors, _ = _open(browser, f"{origin}/?device=off&server={api}/")
            page.fill("#api-key", key)
            _submit(page, astronaut_png)
            result = _result(page)
            assert result["path"] == "server" and result["faces"][0]["label"] == "happy", (result, page.inner_text("#error"))
            page.fill("#api-key", "")
            _submit(page, astronaut_png)
            message = page.inner_text("#error")
            assert page.evaluate("document.body.dataset.state") == "error" and message.endswith("."), message
            assert "API key" in message or "unauthorized" in message.lower(), message
            print(f"\nwithout the key: {message}")
            assert not errors, errors
            page.close()
    finally:
        static.shutdown()
        static.server_close()
