"""``faceforge bench``: benchmarks that print and save figures under ``benchmarks/results/``."""

from __future__ import annotations

from pathlib import Path

import click

from benchmarks import RESULTS_DIR
from benchmarks.detections import main as detections
from benchmarks.editing_effect import main as editing_effect
from benchmarks.face_screening import main as face_screening
from benchmarks.frontalize_quality import main as frontalize_quality
from benchmarks.generator_latency import main as generator_latency
from benchmarks.identity_parity import main as identity_parity
from benchmarks.jobs_roundtrip import main as jobs_roundtrip
from benchmarks.restore_latency import main as restore_latency
from benchmarks.restore_last_step import main as restore_last_step
from benchmarks.restore_quality import main as restore_quality
from benchmarks.server_load import main as server_load
from benchmarks.stylegan_latency import main as stylegan_latency
from benchmarks.stylegan_quality import main as stylegan_quality
from benchmarks.swap_quality import main as swap_quality
from benchmarks.translate_quality import main as translate_quality
from benchmarks.web_latency import main as web_latency


@click.group()
def bench() -> None:
    """Measure latency, export fidelity and accuracy (results in benchmarks/results/; never asserts speed)."""


@bench.command("emotion-latency")
@click.option("--assets", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="mobile_assets folder [default: the repository's].")
@click.option("--repeats", type=click.IntRange(1), default=5, show_default=True,
              help="Timed runs per photo and configuration (after a warm-up).")
@click.option("--threads", default="1,2", show_default=True, help="Comma-separated LiteRT/ONNX Runtime threads.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
              show_default=True)
def emotion_latency(assets: Path | None, repeats: int, threads: str, out_dir: Path) -> None:
    """On-device style (LiteRT per precision, ONNX Runtime) vs server round trip, plus phone networks.

    Photos: ../shared/data/photos/{portraits,groups} (or $FACEFORGE_DATA); the astronaut without data.
    """
    from benchmarks.emotion_latency import run
    from faceforge.errors import FaceforgeError

    try:
        run(assets=assets, repeats=repeats, threads=tuple(int(t) for t in threads.split(",")), out_dir=out_dir)
    except FaceforgeError as exc:
        raise click.ClickException(str(exc)) from None


@bench.command("emotion-accuracy")
@click.option("--weights", default="default", show_default=True, help="'default' or a mini_xception checkpoint.")
@click.option("--no-peer", is_flag=True, help="Skip the published peer (needs fer + tf_keras).")
@click.option("--peer-from", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Reuse the peer's report from an earlier emotion_accuracy.json instead of running it.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
              show_default=True)
def emotion_accuracy(weights: str, no_peer: bool, peer_from: Path | None, out_dir: Path) -> None:
    """FER2013 test accuracy, overall and per class, ours vs the original mini-Xception (fer package)."""
    from benchmarks.emotion_accuracy import run
    from faceforge.errors import FaceforgeError

    try:
        run(weights=weights, out_dir=out_dir, with_peer=not no_peer, peer_from=peer_from)
    except (FaceforgeError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


bench.add_command(detections, "detections")
bench.add_command(translate_quality, "translate-quality")
bench.add_command(frontalize_quality, "frontalize-quality")
bench.add_command(stylegan_latency, "stylegan-latency")
bench.add_command(stylegan_quality, "stylegan-quality")
bench.add_command(editing_effect, "editing-effect")
bench.add_command(generator_latency, "generator-latency")
bench.add_command(jobs_roundtrip, "jobs-roundtrip")
bench.add_command(restore_quality, "restore-quality")
bench.add_command(restore_latency, "restore-latency")
bench.add_command(restore_last_step, "restore-last-step")
bench.add_command(swap_quality, "swap-quality")
bench.add_command(identity_parity, "identity-parity")
bench.add_command(server_load, "server-load")
bench.add_command(face_screening, "face-screening")
bench.add_command(web_latency, "web-latency")
