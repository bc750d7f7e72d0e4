"""Where the training data lives, and the FER2013 loader: re-exported from the core data layer
(:mod:`faceforge.data.paths`, :mod:`faceforge.data.fer2013`) for existing callers.

Data root: the ``FACEFORGE_DATA`` environment variable, else ``<repo>/../shared/data``.
"""

from __future__ import annotations

from faceforge.data.fer2013 import fer2013_dir, load_fer2013
from faceforge.data.paths import REPO_ROOT, data_root

__all__ = ["REPO_ROOT", "data_root", "fer2013_dir", "load_fer2013"]
