"""dlib's face-landmark shape predictor (``shape_predictor_5_face_landmarks.dat``) without dlib.

An ensemble of regression trees (V. Kazemi and J. Sullivan, "One Millisecond Face Alignment with an
Ensemble of Regression Trees", CVPR 2014) as dlib implements and serializes it
(``dlib/image_processing/shape_predictor.h``): a mean shape, then a cascade of forests; each cascade
level reads the grey values at pixels placed relative to the current shape (anchor landmark + an
offset turned by the similarity between the mean shape and the current shape), and every tree
compares two of them against a threshold down to a leaf whose vector is added to the shape. Here
the parsed trees run vectorised in numpy (all 500 trees of a level at once), reproducing dlib's
arithmetic: float32 shapes and offsets, dlib's Umeyama similarity in double
(``find_similarity_transform``), pixel positions rounded as ``dlib::point`` rounds
(``floor(x + 0.5)``), grey = ``(R + G + B) // 3``, 0 outside the image, and the final points rounded
the same way. With these, the 5 points equal dlib's (integers), which makes
:func:`faceforge.identity.dlib_chip` the same chip without dlib.

File layout (``serialize(shape_predictor)``, encodings in :mod:`faceforge.models.dlib_format`): int
version 1; ``initial_shape`` (a dlib ``matrix<float,0,1>``: ``-nr``, ``-nc``, then the values);
``forests`` (vector of cascade levels, each a vector of trees; a tree is a vector of splits
``(idx1, idx2: unsigned long, thresh: float)`` and a vector of leaf matrices); ``anchor_idx``
(vector of vectors of unsigned long); ``deltas`` (vector of vectors of ``vector<float,2>``).
Parsing the 9 MB file (about 1.2 M variable-length floats) in Python takes seconds, so the parsed
arrays are cached (:func:`load_shape_predictor`, ``.npz`` keyed by the file's SHA-256).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceforge.errors import CheckpointError

__all__ = ["ShapePredictor", "read_shape_predictor", "load_shape_predictor", "write_shape_predictor"]

log = logging.getLogger(__name__)
CACHE_VERSION = "1"


class _Ints:
    """Fast sequential reader of dlib's integers/floats over bytes (the hot loop of the parser)."""

    def __init__(self, data: bytes, source: str) -> None:
        self.d, self.p, self.source = data, 0, source

    def fail(self, what: str) -> CheckpointError:
        return CheckpointError(f"{self.source}: cannot read {what} at byte {self.p} of {len(self.d)}: "
                               "truncated, or not a dlib shape_predictor file", path=self.source)

    def int(self, what: str = "an integer") -> int:
        d, p = self.d, self.p
        if p >= len(d):
            raise self.fail(what + " (file ends: truncated)")
        c = d[p]
        n = c & 0x0F
        if c & 0x70 or not 1 <= n <= 8 or p + 1 + n > len(d):
            raise self.fail(what + (" (file ends: truncated)" if p + 1 + n > len(d) else ""))
        v = int.from_bytes(d[p + 1:p + 1 + n], "little")
        self.p = p + 1 + n
        return -v if c & 0x80 else v

    def floats(self, count: int, what: str) -> np.ndarray:
        out = np.empty(count, np.float64)
        d = self.d
        p = self.p
        end = len(d)
        frombytes = int.from_bytes
        try:
            for i in range(count):
                c = d[p]
                n = c & 0x0F
                m = frombytes(d[p + 1:p + 1 + n], "little")
                if c & 0x80:
                    m = -m
                p += 1 + n
                c = d[p]
                n = c & 0x0F
                e = frombytes(d[p + 1:p + 1 + n], "little")
                if c & 0x80:
                    e = -e
                p += 1 + n
                if p > end:
                    raise IndexError
                out[i] = m * 2.0 ** e if e < 32000 else (np.inf, -np.inf, np.nan)[e - 32000]
        except IndexError:
            self.p = p
            raise self.fail(what + " (file ends: truncated)") from None
        self.p = p
        return out

    def matrix(self, what: str) -> np.ndarray:
        nr, nc = self.int(what + " rows"), self.int(what + " cols")
        nr, nc = abs(nr), abs(nc)
        if nr * nc > 1 << 24:
            raise self.fail(what + f" (implausible size {nr}x{nc})")
        return self.floats(nr * nc, what).reshape(nr, nc)


@dataclass
class ShapePredictor:
    """A parsed dlib shape predictor, runnable without dlib.

    Attributes:
        initial_shape: float32 ``(P, 2)`` mean shape, in the face box's unit square.
        splits_idx: int32 ``(L, T, S, 2)`` feature indices of each split (L cascade levels, T trees,
            S = 2**depth - 1 splits in dlib's breadth-first order).
        splits_thresh: float32 ``(L, T, S)`` thresholds.
        leaves: float32 ``(L, T, S + 1, P, 2)`` leaf vectors.
        anchor_idx: int64 ``(L, F)`` anchor landmark of each feature pixel.
        deltas: float32 ``(L, F, 2)`` offsets of the feature pixels from their anchors.
    """

    initial_shape: np.ndarray
    splits_idx: np.ndarray
    splits_thresh: np.ndarray
    leaves: np.ndarray
    anchor_idx: np.ndarray
    deltas: np.ndarray

    @property
    def num_parts(self) -> int:
        return int(self.initial_shape.shape[0])

    def __call__(self, rgb: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
        """The landmarks of the face in ``rect``, as dlib's ``shape_predictor(img, rect)`` returns them.

        Args:
            rgb: uint8 ``(H, W, 3)`` RGB (or ``(H, W)`` grey) image.
            rect: ``(left, top, right, bottom)`` integer box, dlib's ``rectangle`` (inclusive corners).

        Returns:
            int64 ``(P, 2)`` ``(x, y)`` points (dlib rounds them to integers).

        Raises:
            ValueError: not a uint8 image.
        """
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim not in (2, 3):
            raise ValueError("rgb must be a uint8 (H, W, 3) or (H, W) array")
        grey = rgb if rgb.ndim == 2 else (rgb[..., :3].astype(np.uint32).sum(2) // 3).astype(np.uint8)
        h, w = grey.shape
        left, top, right, bottom = (int(v) for v in rect)
        sx, sy = float(right - left), float(bottom - top)  # unnormalizing_tform: (0,0)->tl, (1,1)->br
        shape = self.initial_shape.copy()
        levels, trees, n_splits = self.splits_thresh.shape
        depth = int(np.log2(n_splits + 1))
        t_idx = np.arange(trees)
        for lvl in range(levels):
            m = _similarity(self.initial_shape, shape).astype(np.float32)
            d = self.deltas[lvl]
            # float32 as dlib: tform * delta + location(current_shape, anchor)
            fx = (m[0, 0] * d[:, 0] + m[0, 1] * d[:, 1]).astype(np.float32) + shape[self.anchor_idx[lvl], 0]
            fy = (m[1, 0] * d[:, 0] + m[1, 1] * d[:, 1]).astype(np.float32) + shape[self.anchor_idx[lvl], 1]
            px = np.floor(left + fx.astype(np.float64) * sx + 0.5).astype(np.int64)
            py = np.floor(top + fy.astype(np.float64) * sy + 0.5).astype(np.int64)
            inside = (px >= 0) & (py >= 0) & (px < w) & (py < h)
            values = np.zeros(len(px), np.float32)
            values[inside] = grey[py[inside], px[inside]]
            node = np.zeros(trees, np.int64)
            idx, thr = self.splits_idx[lvl], self.splits_thresh[lvl]
            for _ in range(depth):
                i1, i2 = idx[t_idx, node, 0], idx[t_idx, node, 1]
                go_left = (values[i1] - values[i2]) > thr[t_idx, node]
                node = np.where(go_left, 2 * node + 1, 2 * node + 2)
            leaf = self.leaves[lvl][t_idx, node - n_splits]  # (T, P, 2)
            # dlib adds the trees' vectors one by one in float32; cumsum is sequential too (np.sum is not)
            shape = np.cumsum(np.concatenate([shape[None], leaf]), axis=0, dtype=np.float32)[-1]
        x = np.floor(left + shape[:, 0].astype(np.float64) * sx + 0.5)
        y = np.floor(top + shape[:, 1].astype(np.float64) * sy + 0.5)
        return np.stack([x, y], axis=1).astype(np.int64)


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """dlib's ``find_similarity_transform`` (Umeyama 1991, eqs. 34-43; double precision): the 2x2
    linear part mapping ``src`` points onto ``dst`` (the translation is not needed here)."""
    a, b = src.astype(np.float64), dst.astype(np.float64)
    ma, mb = a.mean(0), b.mean(0)
    ac, bc = a - ma, b - mb
    sigma = (ac ** 2).sum() / len(a)
    cov = bc.T @ ac / len(a)
    u, dvals, vt = np.linalg.svd(cov)
    s = np.eye(2)
    det = np.linalg.det(cov)
    if det < 0 or (det == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
        if dvals[1] < dvals[0]:
            s[1, 1] = -1
        else:
            s[0, 0] = -1
    r = u @ s @ vt
    c = (dvals * np.diag(s)).sum() / sigma if sigma != 0 else 1.0
    return c * r


def read_shape_predictor(path: str | Path) -> ShapePredictor:
    """Parse a dlib ``shape_predictor`` ``.dat`` (e.g. ``shape_predictor_5_face_landmarks.dat``).

    Raises:
        CheckpointError: truncated, or not a shape predictor with full binary trees of equal depth.
        FileNotFoundError: no such file.
    """
    data = Path(path).read_bytes()
    r = _Ints(data, str(path))
    if r.int("the version") != 1:
        raise r.fail("version 1 of dlib::shape_predictor")
    init = r.matrix("initial_shape")
    if init.shape[1] != 1 or init.size % 2 or init.size == 0:
        raise r.fail(f"initial_shape as a column of 2P values (found {init.shape})")
    parts = init.size // 2
    n_levels = r.int("the number of cascade levels")
    sidx, sthr, leaves = [], [], []
    for lvl in range(n_levels):
        n_trees = r.int(f"level {lvl}'s number of trees")
        li, lt, ll = [], [], []
        for t in range(n_trees):
            n_splits = r.int(f"tree {lvl}/{t}'s number of splits")
            trip = []
            for _ in range(n_splits):
                trip.append((r.int("a split index"), r.int("a split index")))
                trip.append(r.floats(1, "a split threshold")[0])
            li.append([trip[k] for k in range(0, len(trip), 2)])
            lt.append([trip[k] for k in range(1, len(trip), 2)])
            n_leaves = r.int(f"tree {lvl}/{t}'s number of leaves")
            if n_leaves != n_splits + 1 or n_leaves & (n_leaves - 1):
                raise r.fail(f"a full binary tree (found {n_splits} splits, {n_leaves} leaves)")
            ll.append([r.matrix("a leaf").reshape(-1) for _ in range(n_leaves)])
        sidx.append(li)
        sthr.append(lt)
        leaves.append(ll)
    anchor = [[r.int("an anchor index") for _ in range(r.int("the number of anchors"))] for _ in range(r.int("anchor levels"))]
    n_delta_levels = r.int("delta levels")
    deltas = []
    for _ in range(n_delta_levels):
        n = r.int("the number of deltas")
        deltas.append(r.floats(2 * n, "the deltas").reshape(n, 2))
    if r.p != len(data):
        raise r.fail(f"the end of the file ({len(data) - r.p} unexpected bytes)")
    try:
        pred = ShapePredictor(
            initial_shape=init.reshape(parts, 2).astype(np.float32),
            splits_idx=np.asarray(sidx, np.int32), splits_thresh=np.asarray(sthr, np.float32),
            leaves=np.asarray(leaves, np.float32).reshape(n_levels, len(sidx[0]), -1, parts, 2),
            anchor_idx=np.asarray(anchor, np.int64), deltas=np.asarray(deltas, np.float32))
    except ValueError as exc:  # ragged: levels of different sizes
        raise CheckpointError(f"{path}: cascade levels of unequal size are not supported ({exc})",
                              path=str(path)) from None
    n_feat = pred.deltas.shape[1]
    if pred.anchor_idx.shape != (n_levels, n_feat) or pred.splits_idx.max(initial=0) >= n_feat \
            or pred.anchor_idx.max(initial=0) >= parts:
        raise CheckpointError(f"{path}: inconsistent shape predictor (indices out of range)", path=str(path))
    return pred


def write_shape_predictor(pred: ShapePredictor) -> bytes:
    """Serialize ``pred`` in dlib's format (the inverse of :func:`read_shape_predictor`; for tests)."""
    from faceforge.models.dlib_format import DlibWriter

    w = DlibWriter()
    w.int(1)
    p = pred.num_parts
    w.int(-2 * p)
    w.int(-1)
    for v in pred.initial_shape.reshape(-1):
        w.float(float(v))
    levels, trees, n_splits = pred.splits_thresh.shape
    w.int(levels)
    for lvl in range(levels):
        w.int(trees)
        for t in range(trees):
            w.int(n_splits)
            for s in range(n_splits):
                w.int(int(pred.splits_idx[lvl, t, s, 0]))
                w.int(int(pred.splits_idx[lvl, t, s, 1]))
                w.float(float(pred.splits_thresh[lvl, t, s]))
            w.int(n_splits + 1)
            for leaf in pred.leaves[lvl, t]:
                w.int(-2 * p)
                w.int(-1)
                for v in leaf.reshape(-1):
                    w.float(float(v))
    w.int(levels)
    for lvl in range(levels):
        w.int(pred.anchor_idx.shape[1])
        for a in pred.anchor_idx[lvl]:
            w.int(int(a))
    w.int(levels)
    for lvl in range(levels):
        w.int(pred.deltas.shape[1])
        for v in pred.deltas[lvl].reshape(-1):
            w.float(float(v))
    return w.getvalue()


def load_shape_predictor(path: str | Path, cache: bool = True) -> ShapePredictor:
    """:func:`read_shape_predictor`, cached as ``.npz`` under
    :func:`faceforge.models.dlib_resnet.cache_dir` ``/dlib_shape/<sha256>-v1.npz`` (parsing takes
    seconds in Python, the cache milliseconds). An unwritable cache is logged and skipped.

    Raises:
        CheckpointError: missing, truncated or not a shape predictor.
    """
    from faceforge.checkpoints import write_atomically
    from faceforge.models.dlib_resnet import _sha256, cache_dir

    src = Path(path)
    if not src.is_file():
        raise CheckpointError(f"dlib shape predictor {src} does not exist", path=str(src))
    target = cache_dir() / "dlib_shape" / f"{_sha256(src)}-v{CACHE_VERSION}.npz" if cache else None
    if target is not None and target.is_file():
        try:
            with np.load(target) as z:
                return ShapePredictor(**{k: z[k] for k in z.files})
        except Exception as exc:  # damaged cache entry: parse again
            log.warning("ignoring unreadable cached shape predictor %s: %s", target, exc)
    pred = read_shape_predictor(src)
    if target is not None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(target, lambda tmp: np.savez(tmp, **pred.__dict__), suffix=".npz")
        except OSError as exc:
            log.warning("cannot cache the parsed shape predictor in %s: %s", target.parent, exc)
    return pred


