"""Benchmarks: scripts that measure and write ``benchmarks/results/*.md|json|png``; they never assert speed.

- :mod:`benchmarks.emotion_accuracy`  our mini-Xception vs the published peer on FER2013 test.
- :mod:`benchmarks.emotion_latency`   on-device style (LiteRT, ONNX Runtime) vs server round trip.
- :mod:`benchmarks.detections`        BlazeFace detections on the shared real photos.
- :mod:`benchmarks.translate_quality` age shift and identity of the CycleGAN translators.
- :mod:`benchmarks.stylegan_latency`  StyleGAN2 generation latency/throughput by resolution and batch.
- :mod:`benchmarks.generator_latency` CycleGAN / pix2pix generators: on-device files vs server, 256 and 128.
- :mod:`benchmarks.jobs_roundtrip`    heavy-job API over HTTP: round trip per endpoint, concurrent clients.
"""

from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
