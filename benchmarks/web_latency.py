"""``faceforge bench web-latency``: the web client's in-page latency next to Python's LiteRT, same files.

Headless Chromium (Debian's ``chromium``, through Playwright) opens ``/app/`` of a live ``faceforge serve``
on loopback once per thread count (``?threads=N``: LiteRT.js loads its threaded Wasm only when the page is
cross-origin isolated and N > 1) and classifier file (``?format=``, ``--formats``: the int8 file Android ships
and the page's default fp16), uploads the astronaut photo and calls the page's ``faceforgeBench``: each
model file of the on-device path on a zero input, the whole photo pipeline (detect + align + classify in
the page) and the page's server round trip (``POST /v1/emotion``). The same files then run on Python's
LiteRT interpreter (``ai_edge_litert``, XNNPACK) with the same thread counts. Medians and p90 in ms;
writes ``web_latency.md`` / ``.json`` and a screenshot of the page (``web_client.jpg``) under ``--out``. Never asserts speed.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path

import click
import numpy as np

from benchmarks import RESULTS_DIR, parse_names

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def _stats(values) -> str:
    v = np.asarray(values, np.float64)
    return f"{np.median(v):.2f} / {np.percentile(v, 90):.2f}" if len(v) else "-"


def _python_litert(path: Path, threads: int, repeats: int) -> list[float]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    d = interp.get_input_details()[0]
    x = np.zeros(d["shape"], d["dtype"])
    interp.set_tensor(d["index"], x)
    interp.invoke()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        interp.set_tensor(d["index"], x)
        interp.invoke()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


@click.command("web-latency")
@click.option("--threads", default="1,2", show_default=True, help="Comma-separated thread counts.")
@click.option("--formats", default="tflite_fp16,tflite_int8", show_default=True,
              help="Comma-separated mini_xception manifest formats the page runs (?format=).")
@click.option("--repeats", type=click.IntRange(1), default=20, show_default=True, help="Timed runs each.")
@click.option("--chromium", default=None, help="Chromium executable [default: chromium on PATH].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
              show_default=True)
def main(threads: str, formats: str, repeats: int, chromium: str | None, out_dir: Path) -> None:
    """In-page (LiteRT.js Wasm) latency per model at 1 and N threads, Python LiteRT beside it, and the
    page's server round trip. Needs Chromium, Playwright and a built client/web (npm run build)."""
    import cv2
    from skimage import data as skimage_data

    from server import create_app
    from server.testing import serve_in_thread

    chromium = chromium or shutil.which("chromium")
    if not chromium:
        raise click.ClickException("no chromium on PATH (apt-get install chromium)")
    if not (ROOT / "client" / "web" / "dist" / "index.html").is_file():
        raise click.ClickException("client/web is not built: run `npm ci && npm run build` in client/web")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise click.ClickException("Playwright for Python is not installed (pip install playwright)") from None
    counts = [int(t) for t in threads.split(",")]
    fmts = parse_names(formats)
    out_dir.mkdir(parents=True, exist_ok=True)
    photo = out_dir / ".web_latency_astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    page_runs = {}
    try:
        with serve_in_thread(create_app({})) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            for n in counts:
                for fmt in fmts:
                    page = browser.new_page()
                    page.goto(f"{url}/app/?threads={n}&format={fmt}&budget_ms=60000")  # measure, never fall back
                    page.wait_for_function("document.body.dataset.state === 'ready'", timeout=60_000)
                    if page.evaluate("document.body.dataset.device") != "on":
                        raise click.ClickException(f"{fmt}: {page.inner_text('#runtime')}")
                    page.set_input_files("#file", str(photo))
                    page.wait_for_function("document.body.dataset.state === 'done'", timeout=60_000)
                    if n == counts[0] and fmt == fmts[0]:  # what the page showed (astronaut: public domain, NASA)
                        page.screenshot(path=str(out_dir / "web_client.jpg"), type="jpeg", quality=80, full_page=True)
                    page_runs[(n, fmt)] = page.evaluate(f"faceforgeBench({repeats})")
                    page.close()
            version = browser.version
            browser.close()
    finally:
        photo.unlink(missing_ok=True)
    assets = ROOT / "mobile_assets"
    files = list(dict.fromkeys(f for run in page_runs.values() for f in run["models"]))  # detectors, then classifiers
    python_runs = {n: {f: _python_litert(assets / f, n, repeats) for f in files} for n in counts}

    def page_model(n: int, f: str) -> list[float]:
        return next(run["models"][f] for (m, _), run in page_runs.items() if m == n and f in run["models"])
    lines = ["# Web client latency: LiteRT.js in the page vs Python LiteRT", "",
             f"Chromium {version}, headless, no GPU; {platform.machine()} CPU shared with other jobs (not a phone). "
             f"Medians / p90 in ms over {repeats} runs after a warm-up; zero inputs for the per-model rows; the "
             "pipeline and server rows on the 512x512 astronaut photo (1 face).", "",
             "| what | " + " | ".join(f"page, {n} thread(s) ({page_runs[(n, fmts[0])]['variant']})" for n in counts) + " | "
             + " | ".join(f"Python LiteRT, {n} thread(s)" for n in counts) + " |",
             "|---|" + "---:|" * (2 * len(counts))]
    for f in files:
        lines.append(f"| `{f}` | " + " | ".join(_stats(page_model(n, f)) for n in counts) + " | "
                     + " | ".join(_stats(python_runs[n][f]) for n in counts) + " |")
    for fmt in fmts:
        lines.append(f"| whole photo in the page (detect auto + align + classify, {fmt}) | "
                     + " | ".join(_stats(page_runs[(n, fmt)]["pipeline"]) for n in counts) + " |" + " - |" * len(counts))
    lines.append("| page's server round trip (POST /v1/emotion, loopback) | "
                 + " | ".join(_stats(page_runs[(n, fmts[0])]["server"]) for n in counts) + " |" + " - |" * len(counts))
    lines += ["", "LiteRT.js 2.5.3 as published has no int8 tensors; `npm run build` adds the int8 row to its vendored "
              "copy (client/web/scripts/build.mjs), so the page can run the int8 file Android ships "
              "(`?format=tflite_int8`); it runs fp16 by default (parity, README)."]
    (out_dir / "web_latency.md").write_text("\n".join(lines) + "\n")
    (out_dir / "web_latency.json").write_text(json.dumps(
        {"chromium": version, "repeats": repeats, "page": {f"{n} {fmt}": v for (n, fmt), v in page_runs.items()},
         "python_litert": {str(k): v for k, v in python_runs.items()}}, indent=1))
    click.echo("\n".join(lines))
    click.echo(f"\nwritten: {out_dir / 'web_latency.md'}")
