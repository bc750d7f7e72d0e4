"""Where faceforge's datasets live.

Data root: the ``FACEFORGE_DATA`` environment variable, else ``<repo>/../shared/data`` (the layout of a
checkout beside a shared data folder). Nothing here touches the disk at import time; the functions
that need a folder raise :class:`~faceforge.errors.DatasetNotFoundError` (also a
:class:`FileNotFoundError`) naming the path and the variable to set.
"""

from __future__ import annotations

import os
from pathlib import Path

from faceforge.errors import DatasetNotFoundError

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout holding the ``faceforge`` package (its parent is where ``shared/data`` is looked for)."""

DATA_ENV = "FACEFORGE_DATA"
"""Environment variable naming the data root."""


def data_root() -> Path:
    """The data folder: ``$FACEFORGE_DATA`` (``~`` expanded) or ``<repo>/../shared/data`` (may not exist)."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "data"


def require_dir(path: str | Path, what: str, layout: str) -> Path:
    """``path`` as a :class:`~pathlib.Path` when it is a folder.

    Args:
        path: the folder.
        what: the dataset's name for the message (``"FER2013 train"``).
        layout: what the folder should hold, for the message (``"fer2013/{train,test}/<class>/*.jpg"``).

    Raises:
        DatasetNotFoundError: ``path`` is not a folder; the message says how to point faceforge at a copy.
    """
    path = Path(path)
    if not path.is_dir():
        raise DatasetNotFoundError(f"{what} folder not found at {path}; set {DATA_ENV} to a folder holding {layout} "
                                   "or pass the folder explicitly", path=str(path))
    return path
