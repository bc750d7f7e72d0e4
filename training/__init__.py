"""Training code for faceforge's models: one trainer per family, run folders, and the trainer skeleton.

Every trainer runs in the skeleton of :mod:`training.loop` (:class:`~training.loop.TrainingRun`: resume,
numbered run folder ``runs/<family>/<NNN>/`` with the resolved config as JSON, metrics CSV, sample grids,
``train.lock``, logging; :class:`~training.loop.StepLoop`: progress bar, stop-after / time limit, loss
windows, periodic evaluation / samples / checkpoints) and supplies only its own step, evaluation, sample and
save functions. Configurations live in :mod:`training.configs` (each default and help text once); the
``faceforge train`` options are generated from them (:mod:`training.options`). Datasets come from the
core data layer :mod:`faceforge.data`.

To add a family: a config dataclass in :mod:`training.configs` (fields with ``opt(...)`` metadata), a module
``training/<family>.py`` with a ``train(config) -> Path`` function built on :mod:`training.loop`, and a
click command in :mod:`training.cli` decorated with ``config_options(<Config>)``.
"""
