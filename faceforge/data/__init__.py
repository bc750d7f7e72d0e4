"""faceforge's data layer: the datasets and image helpers that training, export calibration/parity and
the benchmarks share, so no stage reads another stage's private names or replays its random draws.

============================  =====================================================================
module                        what
============================  =====================================================================
``faceforge.data.paths``      the data root (``$FACEFORGE_DATA`` or ``<repo>/../shared/data``)
``faceforge.data.fer2013``    FER2013 image folders -> uint8 arrays (:func:`load_fer2013`)
``faceforge.data.utkface``    UTKFace names, scanning, the age split (and its shipped split file),
                              the CRC hold-out
``faceforge.data.images``     ``list_images``, ``resize_square``, ``center_square``, ``label_tile``,
                              ``load_faces`` (cached decode)
``faceforge.data.tensors``    uint8 RGB <-> float tensors in [-1, 1] (torch)
``faceforge.data.unpaired``   :class:`UnpairedImageFolder` (CycleGAN's trainA/trainB layout; torch)
``faceforge.data.pose_pairs`` pose-pair caches: ``load_index``, :class:`PosePairDataset` (torch)
============================  =====================================================================

Importing needs no data: a missing dataset is reported when a function looks for it, as
:class:`~faceforge.errors.DatasetNotFoundError` (a ``FileNotFoundError`` too) naming the path and
``FACEFORGE_DATA``. This package imports nothing of ``training``, ``export``, ``server`` or
``benchmarks`` (``tests/test_layering.py``). The torch datasets are imported from their modules, not
here, so that ``import faceforge.data`` stays light.
"""

from faceforge.data.fer2013 import fer2013_dir, load_fer2013
from faceforge.data.images import (IMAGE_SUFFIXES, center_square, decode_squares, label_tile, list_images, load_faces,
                                   resize_square)
from faceforge.data.paths import DATA_ENV, REPO_ROOT, data_root
from faceforge.data.utkface import (UTKFaceRecord, age_split, crc_split, in_age_range, is_held_out,
                                    parse_utkface_name, read_split_file, scan_utkface, utkface_dir,
                                    write_split_file, young_faces)

__all__ = ["DATA_ENV", "IMAGE_SUFFIXES", "REPO_ROOT", "UTKFaceRecord", "age_split", "center_square", "crc_split", "decode_squares",
           "data_root", "fer2013_dir", "in_age_range", "is_held_out", "label_tile", "list_images", "load_faces",
           "load_fer2013", "parse_utkface_name", "read_split_file", "resize_square", "scan_utkface", "utkface_dir",
           "write_split_file", "young_faces"]
