"""Export of faceforge's light models to phone formats, with parity checks and the mobile-assets manifest.

Modules:

- :mod:`export.formats`      THE formats table (``FORMATS``): suffix, precision, platform, backend,
                             runner or proxy, parity bounds. The CLI, the exporter and the benchmarks
                             read it.
- :mod:`export.backends`     one backend per format (ONNX, LiteRT fp32/fp16/dynamic-range int8/full
                             int8, Core ML fp16/int8w), each wrapped by
                             :func:`export.base.try_export`; PyTorch proxies for Core ML.
- :mod:`export.calibration`  representative data (real training images) and parity data per model
                             (FER2013 for mini_xception, young UTKFace faces for ``cyclegan_*``).
- :mod:`export.parity`       file vs PyTorch: top-1 agreement, accuracy, probability error, PSNR.
- :mod:`export.diagnose`     per-layer int8 error (fake quantization one layer at a time), for when
                             an int8 file misses its bound.
- :mod:`export.manifest`     ``manifest.json`` entries, detector files, licenses, validation.
- :mod:`export.schema`       the manifest's JSON Schema (draft 2020-12).
- :mod:`export.exporter`     :func:`~export.exporter.run_export`: all formats, all or nothing.
- :mod:`export.cli`          the ``faceforge export`` command.

To add a model: register it in :mod:`faceforge.models` (with ``input.face_template``), add its real
data loader to :data:`export.calibration.DATA_SOURCES`; classifiers are compared by top-1 agreement
and accuracy, image-to-image models (``labels=None``) by PSNR with the per-format ``min_psnr_db``.
To add a format: see :mod:`export.formats`.
"""
