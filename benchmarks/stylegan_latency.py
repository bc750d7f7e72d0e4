"""StyleGAN2 generation latency and throughput by resolution and batch size (issue 5, deliverable 7).

For every resolution (default 32, 64, 128, 256) a :class:`~faceforge.models.stylegan2.StyleGAN2Generator`
with the registry's default channel configuration (``z_dim = w_dim = 256``, ``channel_base 8192``,
``channel_max 256``, 8 mapping layers; random weights: the speed does not depend on their values) is
timed on every batch size (default 1, 4, 16): ``G(z)`` with constant noise under ``torch.inference_mode``,
both modulation implementations (``fused``: one grouped convolution per layer; ``unfused``: activation
scaling around a shared-weight convolution), after ``warmup`` untimed calls; ``repeats`` timed calls give
the median and the 10/90th percentiles of the latency per call, and images per second at the median.
On CUDA (when present, or ``--device cuda``) every call is synchronised before the clock stops. Also
reported: parameters and multiply-accumulates per image (``torch.utils.flop_counter``, MACs = FLOPs / 2).

With ``weights`` (``--weights default`` or a generator file: faceforge ``.pt``, rosinality ``.pt``,
NVlabs ``.pkl``) that trained generator is timed too, at its own resolution and configuration, end to
end as users call it: :func:`faceforge.stylegan.generate` of ``batch`` seeds (seed -> z, mapping,
synthesis with constant noise, uint8 conversion), one row per batch size and modulation.

Writes ``<out>/<name>.json`` (machine, torch, threads, rows), ``<name>.md`` (a table) and
``<name>.png`` (latency per image vs resolution, one line per batch size and modulation). It never
asserts speed. Example::

    python -m benchmarks.stylegan_latency --resolutions 32,64,128,256 --batch-sizes 1,4,16 --threads 2
    faceforge bench stylegan-latency ...   (same options)
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks import RESULTS_DIR, parse_ints, write_results

DEFAULT_NAME = "stylegan_latency"


def _macs_per_image(G, device) -> int | None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            G(torch.zeros(1, G.z_dim, device=device))
        return int(counter.get_total_flops() // 2)
    except Exception:  # pragma: no cover - counter coverage varies by torch version
        return None


def time_generator(G, batch_size: int, repeats: int, warmup: int, device) -> dict[str, float]:
    """Median, p10 and p90 seconds per ``G(z)`` call on a ``(batch_size, z_dim)`` batch, and images/s."""
    import torch

    z = torch.randn(batch_size, G.z_dim, device=device)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            G(z)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return _figures(times, batch_size)


def _figures(times: Sequence[float], batch_size: int) -> dict[str, float]:
    """Median / p10 / p90 seconds per batch, ms per image and images per second of timed batches."""
    t = np.asarray(times)
    median = float(np.median(t))
    return {"median_s": round(median, 6), "p10_s": round(float(np.percentile(t, 10)), 6),
            "p90_s": round(float(np.percentile(t, 90)), 6), "ms_per_image": round(1000 * median / batch_size, 3),
            "images_per_s": round(batch_size / median, 2)}


def time_generate(G, batch_size: int, repeats: int, warmup: int) -> dict[str, float]:
    """:func:`time_generator`'s figures for ``faceforge.stylegan.generate(G, batch_size seeds)`` (end to end)."""
    from faceforge.stylegan import generate

    seeds = list(range(batch_size))
    times = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        generate(G, seeds, batch_size=batch_size)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return _figures(times, batch_size)


def run(resolutions: Sequence[int] = (32, 64, 128, 256), batch_sizes: Sequence[int] = (1, 4, 16),
        repeats: int = 10, warmup: int = 2, threads: int | None = None, device: str = "auto",
        config: dict[str, Any] | None = None, modulations: Sequence[str] = ("fused", "unfused"),
        out_dir: Path = RESULTS_DIR, name: str = DEFAULT_NAME, plot: bool = True,
        weights: Sequence[str] = ()) -> dict[str, Any]:
    """Time generation for every resolution x batch size x modulation; write json/md/png.

    Args:
        resolutions: output sides (powers of two >= 8).
        batch_sizes: images per call.
        repeats, warmup: timed and untimed calls per configuration.
        threads: torch CPU threads (``None``: torch's default).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:N]``.
        config: generator arguments other than ``resolution`` (default: the registry's stylegan2 config).
        modulations: ``fused`` and/or ``unfused``.
        out_dir, name: where to write ``<name>.json|md|png``.
        plot: write the PNG (matplotlib).
        weights: trained generators to time end to end (``"default"`` or files), each at its own resolution.

    Returns:
        The JSON document (``{"machine", "device", "torch", "threads", "config", "rows": [...]}``).
    """
    import torch

    from faceforge.models import get_spec
    from faceforge.models.stylegan2 import StyleGAN2Generator
    from training.runs import resolve_device

    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    base = {k: v for k, v in {**get_spec("stylegan2").kwargs, **(config or {})}.items() if k != "resolution"}
    rows = []
    for res in resolutions:
        torch.manual_seed(0)
        G = StyleGAN2Generator(resolution=int(res), **base).to(dev).eval()
        params = sum(p.numel() for p in G.parameters())
        macs = _macs_per_image(G, dev)
        for mod in modulations:
            G.fused_modconv = mod == "fused"
            for bs in batch_sizes:
                r = time_generator(G, int(bs), repeats, warmup, dev)
                rows.append({"resolution": int(res), "batch_size": int(bs), "modulation": mod, "params": params,
                             "macs_per_image": macs, "weights": "random", **r})
                print(f"{res:>4} px  batch {bs:>3}  {mod:<7}  {r['ms_per_image']:>9.2f} ms/image  "
                      f"{r['images_per_s']:>8.2f} images/s", flush=True)
    from faceforge.models import create_model

    for w in weights:
        path = get_spec("stylegan2").default_weights_path if str(w) == "default" else Path(w)
        G = create_model("stylegan2", weights=path).to(dev).eval()
        params, macs = sum(p.numel() for p in G.parameters()), _macs_per_image(G, dev)
        label = "default" if str(w) == "default" else Path(w).name
        for mod in modulations:
            G.fused_modconv = mod == "fused"
            for bs in batch_sizes:
                r = time_generate(G, int(bs), repeats, warmup)
                rows.append({"resolution": G.resolution, "batch_size": int(bs), "modulation": mod, "params": params,
                             "macs_per_image": macs, "weights": f"{label} (end to end)", **r})
                print(f"{label}: {G.resolution:>4} px  batch {bs:>3}  {mod:<7}  {r['ms_per_image']:>9.2f} ms/image  "
                      f"{r['images_per_s']:>8.2f} images/s", flush=True)
    doc = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine(),
           "processor": platform.processor() or None, "device": str(dev),
           "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
           "torch": torch.__version__, "threads": torch.get_num_threads(), "repeats": repeats, "warmup": warmup,
           "config": base, "weights": "random (speed does not depend on the values)",
           "trained": [str(w) if str(w) == "default" else Path(w).name for w in weights], "rows": rows}
    has_random = any(r["weights"] == "random" for r in rows)  # the plot is over resolutions of random configs
    write_results(doc, out_dir, name, markdown, write_plot if plot and has_random else None)
    return doc


def markdown(doc: dict[str, Any]) -> str:
    """The results as a Markdown table with a header naming the machine and settings."""
    dev = doc["device_name"] or f"{doc['machine']} CPU, {doc['threads']} threads"
    lines = [f"# StyleGAN2 generation latency ({doc['date']})", "",
             f"Device: {doc['device']} ({dev}); torch {doc['torch']}; median of {doc['repeats']} calls after "
             f"{doc['warmup']} warm-up; random weights; config {json.dumps(doc['config'])}.", "",
             "Rows marked *end to end* time a trained generator through `faceforge.stylegan.generate` "
             "(seeds -> uint8 images) at its own configuration.", "",
             "| weights | resolution | batch | modulation | params | GMACs/image | median s/call | p10-p90 s "
             "| ms/image | images/s |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: |"]
    for r in doc["rows"]:
        gmacs = f"{r['macs_per_image'] / 1e9:.3f}" if r["macs_per_image"] else "-"
        lines.append(f"| {r.get('weights', 'random')} | {r['resolution']} | {r['batch_size']} | {r['modulation']} | "
                     f"{r['params']:,} | {gmacs} | "
                     f"{r['median_s']:.4f} | {r['p10_s']:.4f}-{r['p90_s']:.4f} | {r['ms_per_image']:.2f} | "
                     f"{r['images_per_s']:.2f} |")
    return "\n".join(lines) + "\n"


def write_plot(doc: dict[str, Any], path: Path) -> None:
    """Latency per image (log scale) against resolution: one line per batch size and modulation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    random_rows = [r for r in doc["rows"] if r.get("weights", "random") == "random"]
    keys = sorted({(r["batch_size"], r["modulation"]) for r in random_rows})
    for bs, mod in keys:
        pts = sorted((r["resolution"], r["ms_per_image"]) for r in random_rows
                     if r["batch_size"] == bs and r["modulation"] == mod)
        ax.plot(*zip(*pts), marker="o", linestyle="-" if mod == "fused" else "--", label=f"batch {bs}, {mod}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("resolution (px)")
    ax.set_ylabel("ms per image (median)")
    ax.set_title(f"StyleGAN2 generation, {doc['device_name'] or doc['device']} ({doc['threads']} threads)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _command():
    import click

    @click.command("stylegan-latency")
    @click.option("--resolutions", default="32,64,128,256", show_default=True, help="Comma-separated output sides.")
    @click.option("--batch-sizes", default="1,4,16", show_default=True, help="Comma-separated batch sizes.")
    @click.option("--repeats", type=click.IntRange(1), default=10, show_default=True)
    @click.option("--warmup", type=click.IntRange(0), default=2, show_default=True)
    @click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
    @click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
    @click.option("--modulation", type=click.Choice(["both", "fused", "unfused"]), default="both", show_default=True)
    @click.option("--channel-base", type=click.IntRange(1), default=None, help="Override the default config.")
    @click.option("--channel-max", type=click.IntRange(1), default=None)
    @click.option("--z-dim", type=click.IntRange(1), default=None, help="Sets z_dim and w_dim.")
    @click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
                  show_default=True)
    @click.option("--name", default=DEFAULT_NAME, show_default=True, help="Stem of the result files.")
    @click.option("--weights", "weights", multiple=True,
                  help="Also time this trained generator end to end ('default' or a file; repeatable).")
    def main(resolutions, batch_sizes, repeats, warmup, threads, device, modulation, channel_base, channel_max,
             z_dim, out_dir, name, weights) -> None:
        """StyleGAN2 generation latency and throughput by resolution and batch size (CPU; GPU when present)."""
        config = {k: v for k, v in (("channel_base", channel_base), ("channel_max", channel_max),
                                    ("z_dim", z_dim), ("w_dim", z_dim)) if v is not None}
        mods = ("fused", "unfused") if modulation == "both" else (modulation,)
        try:
            run(parse_ints(resolutions), parse_ints(batch_sizes), repeats, warmup, threads, device, config, mods, out_dir,
                name, weights=weights)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"wrote {Path(out_dir) / name}.json|md|png")

    return main


main = _command()

if __name__ == "__main__":  # pragma: no cover
    main()
