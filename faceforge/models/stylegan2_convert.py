"""Converters of published StyleGAN2 checkpoint formats into faceforge checkpoint dicts.

:func:`load_stylegan2` reads a StyleGAN2 generator from any format faceforge knows, recognised by
content: a faceforge checkpoint (:mod:`faceforge.checkpoints`), a rosinality/stylegan2-pytorch ``.pt``
(:func:`convert_rosinality_stylegan2`) or an NVlabs stylegan2-ada-pytorch ``.pkl``
(:func:`convert_nvlabs_stylegan2_ada`). ``create_model("stylegan2", weights=path)`` loads through it:
this module installs it as the ``stylegan2`` spec's ``weights_loader``
(:func:`faceforge.models.registry.set_weights_loader`) when :mod:`faceforge.models` is imported.

Layering: this module sits above both the checkpoint format (:mod:`faceforge.checkpoints`, which knows
no model) and the networks (:mod:`faceforge.models.stylegan2`, which knows no file format), so none of
them imports another in a circle. (Until issue 11 the converters lived in ``faceforge/checkpoints.py``.)

References: Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN" (CVPR,
arXiv:1912.04958); the tensor layouts of github.com/rosinality/stylegan2-pytorch (``model.py``) and
github.com/NVlabs/stylegan2-ada-pytorch (``training/networks.py``, ``torch_utils/persistence.py``).
"""

from __future__ import annotations

import argparse
import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from faceforge.checkpoints import FORMAT, VERSION, git_commit, load_checkpoint
from faceforge.errors import CheckpointError
from faceforge.models.registry import set_weights_loader
from faceforge.models.stylegan2 import StyleGAN2Generator, channels_at, estimate_w_avg, make_filter

__all__ = ["STYLEGAN2_ARCH", "convert_nvlabs_stylegan2_ada", "convert_rosinality_stylegan2", "load_stylegan2"]


# ==================================================================================================
# StyleGAN2: published checkpoint formats
# ==================================================================================================
# faceforge's StyleGAN2 (faceforge.models.stylegan2) names its tensors like NVlabs stylegan2-ada-pytorch.
# R = resolution, k = log2(R), blocks b4, b8, ..., bR; j = 0 .. k-3 indexes the blocks b8 .. bR.
#
#   faceforge key                          rosinality g_ema key                 NVlabs G_ema key
#   mapping.fc{i}.weight (w, z|w)          style.{i+1}.weight                   mapping.fc{i}.weight
#   mapping.fc{i}.bias   (w,)              style.{i+1}.bias                     mapping.fc{i}.bias
#   mapping.w_avg        (w,)              latent_avg (top level, optional)     mapping.w_avg
#   synthesis.b4.const   (C, 4, 4)         input.input (1, C, 4, 4)             synthesis.b4.const
#   synthesis.b4.conv1.weight (O, I, 3, 3) conv1.conv.weight (1, O, I, 3, 3)    synthesis.b4.conv1.weight
#   ....conv1.affine.weight (I, w)         conv1.conv.modulation.weight         ....conv1.affine.weight
#   ....conv1.affine.bias   (I,)           conv1.conv.modulation.bias           ....conv1.affine.bias
#   ....conv1.bias          (O,)           conv1.activate.bias                  ....conv1.bias
#   ....conv1.noise_strength ()            conv1.noise.weight (1,)              ....conv1.noise_strength
#   ....conv1.noise_const  (4, 4)          noises.noise_0 (1, 1, 4, 4)          ....conv1.noise_const
#   synthesis.b4.torgb.weight (3, I, 1, 1) to_rgb1.conv.weight (1, 3, I, 1, 1)  synthesis.b4.torgb.weight
#   synthesis.b4.torgb.affine.*            to_rgb1.conv.modulation.*            synthesis.b4.torgb.affine.*
#   synthesis.b4.torgb.bias (3,)           to_rgb1.bias (1, 3, 1, 1)            synthesis.b4.torgb.bias
#   synthesis.b{r}.conv0.* (up-conv)       convs.{2j}.*   (as conv1 above)      synthesis.b{r}.conv0.*
#   synthesis.b{r}.conv1.*                 convs.{2j+1}.*                       synthesis.b{r}.conv1.*
#   ....conv0 / conv1 .noise_const (r, r)  noises.noise_{2j+1} / noise_{2j+2}   ....noise_const
#   synthesis.b{r}.torgb.*                 to_rgbs.{j}.*                        synthesis.b{r}.torgb.*
#   (fixed FIR filters, not stored)        convs.{2j}.conv.blur.kernel,         *.resample_filter
#                                          to_rgbs.{j}.upsample.kernel
#
# Both published layouts store the up-convolution kernels in the orientation their transposed
# convolution uses as is (both flipped the original TensorFlow kernels on conversion), so no flip is
# needed between them and faceforge. The FIR filters must be [1, 3, 3, 1] (checked, else rejected).
# The rosinality and NVlabs codes put the equalized-lr gain of demodulated convolutions in different
# places; demodulation cancels it, so the stored weights are interchangeable.
#
# Supported files:
# * rosinality/stylegan2-pytorch ``.pt`` (torch.save zip or legacy file): a dict with ``g_ema`` (a
#   state dict as above) and optionally ``latent_avg``, ``g``, ``d``, optimizer states and ``args``
#   (an argparse.Namespace, allowed); or a bare ``g_ema`` state dict. Loaded with
#   ``torch.load(weights_only=True)``. Assumes the mapping lr multiplier 0.01 (rosinality's default
#   ``lr_mlp``; it is not stored). Without ``latent_avg`` the W average is estimated from 4096 seeded
#   samples (recorded in ``meta``).
# * NVlabs stylegan2-ada-pytorch ``.pkl`` (``network-snapshot-*.pkl``, the official converted FFHQ
#   files): a plain pickle of ``{"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}`` whose
#   networks are ``torch_utils.persistence`` objects. Read with a restricted unpickler: the persistence
#   reconstructor is replaced by a stand-in that keeps the object's state and never executes the
#   embedded source code; only tensors (``torch._utils`` rebuilders, storages via a weights-only
#   ``torch.load``), ``collections.OrderedDict``, ``dnnlib.util.EasyDict`` (as a dict), numpy
#   scalars/dtypes/arrays (as opaque placeholders) and ``_codecs.encode`` for latin-1 bytes are
#   resolved; any other global is refused before anything is called. Unconditional (c_dim = 0),
#   skip-architecture generators only; ``conv_clamp``, ``w_avg_beta`` and the mapping lr multiplier are
#   read from the stored constructor arguments when present.
# The original TensorFlow StyleGAN2 ``.pkl`` files are not supported (convert them with the NVlabs
# tools first).

STYLEGAN2_ARCH = "stylegan2"
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def load_stylegan2(path: str | Path, arch: str | None = STYLEGAN2_ARCH) -> dict[str, Any]:
    """Load a StyleGAN2 checkpoint of any supported format as a faceforge checkpoint dict.

    The format is recognised by content, not by name: a faceforge checkpoint is returned as loaded; a
    torch file holding ``g_ema`` goes through :func:`convert_rosinality_stylegan2`; a plain pickle goes
    through :func:`convert_nvlabs_stylegan2_ada`. ``create_model("stylegan2", weights=path)`` uses this.

    Args:
        path: ``.pt`` / ``.pkl`` file.
        arch: expected architecture (``"stylegan2"``; ``None`` accepts any faceforge checkpoint).

    Returns:
        ``{"format", "version", "arch": "stylegan2", "config", "state_dict", "meta"}``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: unknown or unsupported format, or tensors that do not fit a StyleGAN2.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if arch not in (None, STYLEGAN2_ARCH):
        raise CheckpointError(f"load_stylegan2 loads {STYLEGAN2_ARCH!r} checkpoints, not {arch!r}")
    kind = _sniff(path)
    if kind == "pickle":
        return convert_nvlabs_stylegan2_ada(path)
    obj = _torch_load_weights(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return load_checkpoint(path, arch=arch)
    if isinstance(obj, dict) and ("g_ema" in obj or "style.1.weight" in obj):
        return convert_rosinality_stylegan2(obj, source=str(path))
    keys = sorted(map(str, obj))[:6] if isinstance(obj, dict) else type(obj).__name__
    raise CheckpointError(f"{path} is not a StyleGAN2 checkpoint faceforge knows: expected a faceforge "
                          f"checkpoint, a rosinality/stylegan2-pytorch .pt with 'g_ema', or an NVlabs "
                          f"stylegan2-ada-pytorch .pkl with 'G_ema'; found {keys}")


def _sniff(path: Path) -> str:
    """``"torch"`` for torch.save files (zip or legacy), ``"pickle"`` for other pickles."""
    if zipfile.is_zipfile(path):
        return "torch"
    with open(path, "rb") as f:
        head = f.read(2)
        if not head.startswith(b"\x80"):
            raise CheckpointError(f"{path} is neither a torch checkpoint nor a pickle (expected a faceforge "
                                  f"or rosinality .pt, or an NVlabs stylegan2-ada-pytorch .pkl)")
        f.seek(0)
        try:  # a legacy torch file starts with a pickled magic number; globals are refused here
            first = _NoGlobalsUnpickler(f).load()
        except Exception:  # noqa: BLE001 - anything else is not the legacy torch header
            first = None
    return "torch" if first == _TORCH_LEGACY_MAGIC else "pickle"


def _torch_load_weights(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(f"{path} could not be loaded as tensors only (torch.load weights_only): "
                              f"{type(exc).__name__}: {first}") from None


def _expect(state: dict[str, Any], key: str, what: str) -> torch.Tensor:
    value = state.get(key)
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(f"{what}: missing tensor {key!r}")
    return value.detach().to(torch.float32)


def _infer_channels(channels: dict[int, int], what: str) -> tuple[int, int]:
    """(channel_base, channel_max) reproducing ``channels[res] = min(base // res, max)`` exactly."""
    cmax = max(channels.values())
    top = max(channels)
    base = channels[top] * top
    for cand in (base, *(c * r for r, c in channels.items())):
        if all(channels_at(r, cand, cmax) == c for r, c in channels.items()):
            return cand, cmax
    raise CheckpointError(f"{what}: feature maps per resolution {dict(sorted(channels.items()))} do not follow "
                          f"min(channel_base // res, channel_max); faceforge's StyleGAN2 cannot hold them")


def _check_filter(kernel: Any, scale: float, what: str) -> None:
    if kernel is None:
        return
    if not isinstance(kernel, torch.Tensor) or kernel.shape != (4, 4) or \
            not torch.allclose(kernel.float(), make_filter() * scale, atol=1e-6):
        raise CheckpointError(f"{what}: resampling filter is not [1, 3, 3, 1]; only the standard filter "
                              f"is supported")


def _finish_stylegan2(config: dict[str, Any], state: dict[str, torch.Tensor], meta: dict[str, Any],
                      what: str) -> dict[str, Any]:
    """Build the generator, load ``state`` strictly, fill ``w_avg`` if absent, return the checkpoint dict."""
    try:
        model = StyleGAN2Generator(**config)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{what}: unsupported configuration {config}: {exc}") from None
    if "mapping.w_avg" not in state:
        state = {**state, "mapping.w_avg": torch.zeros(config["w_dim"])}
        estimate = True
    else:
        estimate = False
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{what}: tensors do not fit a StyleGAN2 generator {config}: "
                              f"{str(exc).splitlines()[0]} ...") from None
    if estimate:
        with torch.no_grad():
            model.mapping.w_avg.copy_(estimate_w_avg(model))
        meta["w_avg"] = "estimated: mean of mapping(z) over 4096 samples of N(0, I), seed 0"
    state_dict = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {"format": FORMAT, "version": VERSION, "arch": STYLEGAN2_ARCH, "config": config,
            "state_dict": state_dict, "meta": meta}


def convert_rosinality_stylegan2(path_or_state: str | Path | dict[str, Any], *,
                                 source: str | None = None) -> dict[str, Any]:
    """Convert a rosinality/stylegan2-pytorch generator (``g_ema``) to a faceforge checkpoint dict.

    Args:
        path_or_state: a ``.pt`` file, the dict ``torch.load`` returns for it (``{"g_ema": ...,
            "latent_avg": ...}``), or a bare ``g_ema`` state dict. Key layout: see the table above
            (``style.{i}.weight``, ``input.input``, ``conv1.conv.weight``, ``conv1.conv.modulation.*``,
            ``conv1.noise.weight``, ``conv1.activate.bias``, ``to_rgb1.*``, ``convs.{n}.*``,
            ``to_rgbs.{n}.*``, ``noises.noise_{n}``).
        source: description of where the tensors came from, for ``meta``.

    Returns:
        faceforge checkpoint dict for ``arch="stylegan2"`` (config inferred from tensor shapes).

    Raises:
        FileNotFoundError: a path that does not exist.
        CheckpointError: not this layout (missing/unused keys, shapes that do not fit, custom blur
            kernels, channel counts outside ``min(channel_base // res, channel_max)``).
    """
    if isinstance(path_or_state, (str, Path)):
        path = Path(path_or_state)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        source = source or str(path)
        path_or_state = _torch_load_weights(path)
    what = f"rosinality StyleGAN2 checkpoint {source or ''}".strip()
    if not isinstance(path_or_state, dict):
        raise CheckpointError(f"{what}: expected a dict with 'g_ema', found {type(path_or_state).__name__}")
    top = path_or_state
    g = top.get("g_ema", top)
    if not isinstance(g, dict) or "style.1.weight" not in g:
        raise CheckpointError(f"{what}: expected a 'g_ema' state dict with keys like 'style.1.weight', "
                              f"'input.input', 'conv1.conv.weight', 'to_rgb1.conv.weight'; found "
                              f"{sorted(map(str, g))[:6] if isinstance(g, dict) else type(g).__name__}")
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        used.add(key)
        return _expect(g, key, what)

    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in g:
        n_mlp += 1
    fc0 = _expect(g, "style.1.weight", what)
    w_dim, z_dim = int(fc0.shape[0]), int(fc0.shape[1])
    n_rgbs = 0
    while f"to_rgbs.{n_rgbs}.conv.weight" in g:
        n_rgbs += 1
    resolution = 2 ** (n_rgbs + 2)
    if n_rgbs < 1:
        raise CheckpointError(f"{what}: no 'to_rgbs.0.*' tensors; resolutions below 8 are not supported")
    state: dict[str, torch.Tensor] = {}
    for i in range(n_mlp):
        state[f"mapping.fc{i}.weight"] = take(f"style.{i + 1}.weight")
        state[f"mapping.fc{i}.bias"] = take(f"style.{i + 1}.bias")

    def styled(src: str, dst: str, noise_index: int) -> None:
        state[f"{dst}.weight"] = take(f"{src}.conv.weight").squeeze(0)
        state[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight")
        state[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias")
        state[f"{dst}.bias"] = take(f"{src}.activate.bias")
        state[f"{dst}.noise_strength"] = take(f"{src}.noise.weight").reshape(())
        noise = take(f"noises.noise_{noise_index}")                      # (1, 1, r, r)
        state[f"{dst}.noise_const"] = noise.reshape(noise.shape[-2], noise.shape[-1])

    def torgb(src: str, dst: str) -> None:
        state[f"{dst}.weight"] = take(f"{src}.conv.weight").squeeze(0)
        state[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight")
        state[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias")
        state[f"{dst}.bias"] = take(f"{src}.bias").reshape(-1)

    state["synthesis.b4.const"] = take("input.input").squeeze(0)
    styled("conv1", "synthesis.b4.conv1", 0)
    torgb("to_rgb1", "synthesis.b4.torgb")
    channels = {4: int(g["conv1.conv.weight"].shape[1])}
    for j in range(n_rgbs):
        r = 2 ** (j + 3)
        styled(f"convs.{2 * j}", f"synthesis.b{r}.conv0", 2 * j + 1)
        styled(f"convs.{2 * j + 1}", f"synthesis.b{r}.conv1", 2 * j + 2)
        torgb(f"to_rgbs.{j}", f"synthesis.b{r}.torgb")
        channels[r] = int(g[f"convs.{2 * j}.conv.weight"].shape[1])
        for key, scale in ((f"convs.{2 * j}.conv.blur.kernel", 4.0), (f"to_rgbs.{j}.upsample.kernel", 4.0)):
            used.add(key)
            _check_filter(g.get(key), scale, f"{what} ({key})")
    unused = sorted(k for k in g if k not in used)
    if unused:
        raise CheckpointError(f"{what}: tensors faceforge's StyleGAN2 has no place for: {unused[:8]}"
                              f"{' ...' if len(unused) > 8 else ''}")
    latent_avg = top.get("latent_avg") if top is not g else None
    if isinstance(latent_avg, torch.Tensor):
        state["mapping.w_avg"] = latent_avg.detach().to(torch.float32).reshape(-1)
    channel_base, channel_max = _infer_channels(channels, what)
    config = {"resolution": resolution, "z_dim": z_dim, "w_dim": w_dim, "channel_base": channel_base,
              "channel_max": channel_max, "mapping_layers": n_mlp, "mapping_lr_multiplier": 0.01,
              "w_avg_beta": 0.995, "img_channels": int(state["synthesis.b4.torgb.weight"].shape[0]),
              "use_noise": True, "conv_clamp": None}
    meta = {"converted_from": "rosinality/stylegan2-pytorch g_ema", "source_file": source,
            "w_avg": "latent_avg" if "mapping.w_avg" in state else None, "git_commit": git_commit()}
    return _finish_stylegan2(config, state, meta, what)


# --- NVlabs stylegan2-ada-pytorch pickles, read without executing foreign classes ------------------
class _Refused(Exception):
    """A pickle asked for a global outside the allow-list."""


class _PersistentStandIn:
    """Stand-in for a ``torch_utils.persistence`` object: keeps ``class_name`` and the pickled state
    (``__dict__`` of the original ``nn.Module``: ``_parameters``, ``_buffers``, ``_modules``, init
    kwargs). The embedded ``module_src`` is kept as text only, never executed."""

    def __init__(self, meta: Any) -> None:
        meta = meta if isinstance(meta, dict) else {}
        self.class_name = meta.get("class_name")
        self.state = meta.get("state") if isinstance(meta.get("state"), dict) else {}

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Flattened ``state_dict``-style ``{dotted.name: tensor}`` of parameters and buffers."""
        out: dict[str, torch.Tensor] = {}
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if isinstance(value, torch.Tensor):
                    out[prefix + name] = value.detach()
        for name, module in (self.state.get("_modules") or {}).items():
            if isinstance(module, _PersistentStandIn):
                out.update(module.tensors(f"{prefix}{name}."))
        return out

    def submodule(self, name: str) -> "_PersistentStandIn | None":
        module = (self.state.get("_modules") or {}).get(name)
        return module if isinstance(module, _PersistentStandIn) else None


class _EasyDictStandIn(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (a dict with attribute access): a plain dict here."""

    def __setstate__(self, state: Any) -> None:  # EasyDict pickles an empty __dict__
        pass


class _Opaque:
    """Placeholder for values the converter never needs (numpy scalars, dtypes, arrays)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def _reconstruct_persistent(meta: Any) -> _PersistentStandIn:
    return _PersistentStandIn(meta)


def _load_storage_bytes(data: bytes) -> Any:
    """Tensor storages inside a plain pickle are nested legacy ``torch.save`` blobs: load weights-only."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes (latin-1 only)."""
    if encoding not in ("latin1", "latin-1"):
        raise _Refused(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1")


def _nvlabs_allowed() -> dict[tuple[str, str], Any]:
    rebuild = torch._utils  # noqa: SLF001 - the tensor rebuilders torch's own weights_only loader allows
    allowed: dict[tuple[str, str], Any] = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent,
        ("dnnlib.util", "EasyDict"): _EasyDictStandIn,
        ("dnnlib", "EasyDict"): _EasyDictStandIn,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): rebuild._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): rebuild._rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): rebuild._rebuild_parameter_with_state,
        ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
        ("torch", "Size"): torch.Size,
        ("_codecs", "encode"): _codecs_encode,
        ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "scalar")] = _Opaque
        allowed[(mod, "_reconstruct")] = _Opaque
    allowed[("numpy", "dtype")] = _Opaque
    allowed[("numpy", "ndarray")] = _Opaque
    return allowed


class _NVlabsUnpickler(pickle.Unpickler):
    """Resolves only the allow-listed globals above; everything else raises :class:`_Refused` before
    it is called, so no foreign class or function ever runs."""

    _allowed = None

    def find_class(self, module: str, name: str) -> Any:
        if _NVlabsUnpickler._allowed is None:
            _NVlabsUnpickler._allowed = _nvlabs_allowed()
        found = _NVlabsUnpickler._allowed.get((module, name))
        if found is None and module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            found = getattr(torch, name)
        if found is None:
            raise _Refused(f"{module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused(f"persistent id {str(pid)[:40]!r}")


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Reads plain data only (used to peek at the legacy torch header)."""

    def find_class(self, module: str, name: str) -> Any:
        raise _Refused(f"{module}.{name}")


def _plain(value: Any, depth: int = 0) -> Any:
    """JSON-friendly copy of stored constructor kwargs (opaque values dropped)."""
    if depth > 6:
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()
                if isinstance(v, (dict, list, tuple, str, int, float, bool, type(None)))}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else None


def _number(value: Any, default: Any) -> Any:
    """``value`` if it is a plain int/float (not bool), else ``default`` (opaque numpy values, None)."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def convert_nvlabs_stylegan2_ada(path: str | Path) -> dict[str, Any]:
    """Convert the ``G_ema`` of an NVlabs stylegan2-ada-pytorch network pickle to a faceforge checkpoint.

    The pickle is read with a restricted unpickler (see the notes above): the persistent network
    classes are replaced by stand-ins holding their state, tensors are rebuilt weights-only, and any
    other global (e.g. ``os.system``) is refused without being called.

    Args:
        path: ``network-snapshot-*.pkl`` / official ``.pkl`` from stylegan2-ada-pytorch (or the
            stylegan3 repository's stylegan2 configs, same layout).

    Returns:
        faceforge checkpoint dict for ``arch="stylegan2"``; ``meta`` records the stored init kwargs.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: refused globals (named), not a dict with ``G_ema``, conditional (``c_dim > 0``)
            or non-skip generators, custom filters, or tensors that do not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    what = f"NVlabs stylegan2-ada-pytorch pickle {path}"
    expected = ("expected a stylegan2-ada-pytorch network pickle: a dict with 'G_ema' holding "
                "torch_utils.persistence networks, tensors, dnnlib.EasyDict and numpy scalars")
    try:
        with open(path, "rb") as f:
            data = _NVlabsUnpickler(f).load()
    except _Refused as exc:
        raise CheckpointError(f"{what}: refused to load {exc} (nothing was executed); {expected}",
                              refused=str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt pickles raise many types
        raise CheckpointError(f"{what}: unreadable ({type(exc).__name__}: {str(exc)[:120]}); {expected}") from None
    g = data.get("G_ema") if isinstance(data, dict) else None
    if not isinstance(g, _PersistentStandIn):
        found = sorted(map(str, data))[:6] if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{what}: no 'G_ema' network (found {found}); {expected}")
    init_kwargs = g.state.get("_init_kwargs") if isinstance(g.state.get("_init_kwargs"), dict) else {}
    mapping_kwargs, synthesis_kwargs = (v if isinstance(v, dict) else {} for v in
                                        (init_kwargs.get("mapping_kwargs"), init_kwargs.get("synthesis_kwargs")))
    tensors = g.tensors()
    c_dim = _number(g.state.get("c_dim"), _number(init_kwargs.get("c_dim"), 0))
    if c_dim or any(k.startswith("mapping.embed.") for k in tensors):
        raise CheckpointError(f"{what}: conditional generator (c_dim={c_dim}); only c_dim=0 is supported")
    architecture = synthesis_kwargs.get("architecture", "skip")
    if architecture != "skip":
        raise CheckpointError(f"{what}: synthesis architecture {architecture!r}; only 'skip' is supported")
    state: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if key.endswith("resample_filter"):
            _check_filter(value, 1.0, f"{what} ({key})")
            continue
        if not key.startswith(("mapping.", "synthesis.")):
            raise CheckpointError(f"{what}: unexpected tensor {key!r} in G_ema")
        state[key] = value.to(torch.float32)
    if "mapping.fc0.weight" not in state or "synthesis.b4.const" not in state:
        raise CheckpointError(f"{what}: G_ema lacks 'mapping.fc0.weight' / 'synthesis.b4.const'; {expected}")
    n_mlp = 0
    while f"mapping.fc{n_mlp}.weight" in state:
        n_mlp += 1
    fc0 = state["mapping.fc0.weight"]
    resolutions = sorted(int(k.split(".")[1][1:]) for k in state if k.endswith(".torgb.weight"))
    channels = {r: int(state[f"synthesis.b{r}.conv1.weight"].shape[0]) for r in resolutions
                if f"synthesis.b{r}.conv1.weight" in state}
    resolution = resolutions[-1] if resolutions else 0
    channel_base, channel_max = _infer_channels(channels, what) if channels else (0, 0)
    config = {"resolution": resolution, "z_dim": int(fc0.shape[1]), "w_dim": int(fc0.shape[0]),
              "channel_base": channel_base, "channel_max": channel_max, "mapping_layers": n_mlp,
              "mapping_lr_multiplier": float(_number(mapping_kwargs.get("lr_multiplier"), 0.01)),
              "w_avg_beta": float(_number(mapping_kwargs.get("w_avg_beta"), 0.995)),
              "img_channels": int(state["synthesis.b4.torgb.weight"].shape[0]),
              "use_noise": any(k.endswith("noise_strength") for k in state),
              "conv_clamp": _number(synthesis_kwargs.get("conv_clamp"), None)}
    meta = {"converted_from": "NVlabs stylegan2-ada-pytorch G_ema", "source_file": str(path),
            "init_kwargs": _plain(init_kwargs), "w_avg": "mapping.w_avg" if "mapping.w_avg" in state else None,
            "git_commit": git_commit()}
    return _finish_stylegan2(config, state, meta, what)


set_weights_loader(STYLEGAN2_ARCH, load_stylegan2)
