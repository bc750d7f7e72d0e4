"""faceforge: face-image models for mobile apps, from training to phone and server.

The shared core lives here:

- :mod:`faceforge.imaging`      decode/encode images with validation (the one place images enter).
- :mod:`faceforge.faces`        BlazeFace detection, alignment to templates, paste back.
- :mod:`faceforge.models`       ``nn.Module`` families and the model registry.
- :mod:`faceforge.checkpoints`  plain-dict checkpoints and converters for published formats.
- :mod:`faceforge.emotion`      the emotion feature end to end (photo -> faces -> probabilities).
- :mod:`faceforge.cli`          the ``faceforge`` command.

Top-level packages ``training``, ``export``, ``server`` and ``benchmarks`` build on this core.
"""

__version__ = "0.1.0"
