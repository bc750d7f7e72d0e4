"""Training code for faceforge's models: datasets, losses, one trainer per family, run folders.

Every trainer writes a numbered run folder (``runs/<family>/<NNN>/``) holding the resolved config as
JSON, metrics as CSV, checkpoints (see :mod:`faceforge.checkpoints`) and plots. To add a family: a
module ``training/<family>.py`` with a ``train(config) -> Path`` function and a click command in
:mod:`training.cli`.
"""
