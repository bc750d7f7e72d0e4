"""Model registry: a name -> :class:`ModelSpec` table, ``create_model`` and ``list_models``.

A spec knows how to build the network, what input it expects (shape, layout, dtype, colour order,
value range), its labels, and where faceforge's default weights live. The CLI, the server, the
exporter and the benchmarks all read models through this table.

To add a model family: write ``faceforge/models/<family>.py`` with a plain ``nn.Module`` (explicit
constructor arguments), then register a spec at the bottom of that file::

    register_model(ModelSpec(
        name="my_model", task="emotion", factory=MyNet, kwargs={"num_classes": 7},
        input=InputSpec(shape=(1, 48, 48), colour="gray", value_range=(-1.0, 1.0)),
        labels=(...), default_weights="my_model.pt", source="Author et al. 2024, arXiv:...",
    ))

and import the module in ``faceforge/models/__init__.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from torch import nn

from faceforge.checkpoints import load_checkpoint
from faceforge.errors import CheckpointError, UnknownModelError
from faceforge.models import cards

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


@dataclass(frozen=True)
class InputSpec:
    """What a model expects as input (one sample, batch dimension excluded).

    Attributes:
        shape: ``(C, H, W)`` for the ``NCHW`` PyTorch model (``(z_dim,)`` for a latent).
        layout: memory layout of the PyTorch model's input, ``"NCHW"``.
        dtype: ``"float32"``.
        colour: ``"gray"`` (ITU-R BT.601 luma of RGB) or ``"rgb"``.
        value_range: ``(low, high)`` of the float input; pixels ``p`` in [0, 255] map to
            ``p * scale + offset`` with ``scale = (high - low) / 255`` and ``offset = low``.
        face_template: name of the alignment template in :mod:`faceforge.faces.align` that crops
            the face the model was trained on.
        kind: ``"image"``, or ``"latent"`` for generators fed a latent vector (then ``shape`` is
            ``(z_dim,)``, ``layout`` ``"NC"``, and ``colour``/``value_range``/``scale``/``offset`` do not
            apply and are left out of :meth:`to_dict`).
        distribution: for latents, how to sample them (e.g. ``"z ~ N(0, I)"``).
    """

    shape: tuple[int, ...]
    layout: str = "NCHW"
    dtype: str = "float32"
    colour: str = "rgb"
    value_range: tuple[float, float] = (-1.0, 1.0)
    face_template: str | None = None
    kind: str = "image"
    distribution: str | None = None

    @property
    def scale(self) -> float:
        """Multiplier from uint8 pixels to model input."""
        return (self.value_range[1] - self.value_range[0]) / 255.0

    @property
    def offset(self) -> float:
        """Offset added after scaling uint8 pixels."""
        return self.value_range[0]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if self.kind != "image":  # a latent vector: no pixels, so no colour, range or face template
            for key in ("colour", "value_range", "face_template"):
                d.pop(key)
            return d
        d.update(scale=self.scale, offset=self.offset)
        return d


@dataclass(frozen=True)
class ModelSpec:
    """Everything faceforge knows about one registered model.

    Attributes:
        name: registry name, e.g. ``"mini_xception"``.
        task: what it does, e.g. ``"emotion"``.
        factory: ``nn.Module`` class or function building the network.
        kwargs: constructor arguments of the default configuration.
        input: the :class:`InputSpec`.
        labels: class names in output order, or ``None`` for image-to-image models.
        default_weights: fallback file name under ``faceforge/weights/`` for a family that has no
            model card yet; a card (:mod:`faceforge.models.cards`) always wins over it.
        source: paper or reference implementation the architecture follows.
        license: license of the default weights.
        description: one line for ``faceforge models`` and ``GET /v1/models``.
        weights_loader: ``f(path, arch=name) -> checkpoint dict`` used by :func:`create_model` instead
            of :func:`~faceforge.checkpoints.load_checkpoint`, e.g. to convert published formats on load.
    """

    name: str
    task: str
    factory: Callable[..., nn.Module]
    input: InputSpec
    kwargs: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] | None = None
    default_weights: str | None = None
    source: str = ""
    license: str = "Apache-2.0"
    description: str = ""
    weights_loader: Callable[..., dict[str, Any]] | None = None

    @property
    def default_card(self) -> "cards.ModelCard | None":
        """The model card ``"default"`` loads for this architecture, or ``None``."""
        return cards.default_card(self.name)

    @property
    def default_weights_path(self) -> Path | None:
        """The file ``"default"`` loads: the default card's installed copy, else its shipped one (which
        may not exist); ``None`` if the architecture has no default weights at all."""
        card = self.default_card
        if card is not None:
            return card.expected_path
        return WEIGHTS_DIR / self.default_weights if self.default_weights else None


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry and return it.

    Raises:
        ValueError: if a model of that name is already registered.
    """
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def set_weights_loader(name: str, loader: Callable[..., dict[str, Any]]) -> ModelSpec:
    """Install ``loader`` as the ``weights_loader`` of the registered model ``name`` and return the new spec.

    For converters that live above the network module (they build the network, so the network module
    cannot name them without an import cycle), e.g. :mod:`faceforge.models.stylegan2_convert`.

    Raises:
        UnknownModelError: no model of that name is registered.
        ValueError: the spec already has a (different) loader.
    """
    spec = get_spec(name)
    if spec.weights_loader is not None and spec.weights_loader is not loader:
        raise ValueError(f"model {name!r} already has a weights loader ({spec.weights_loader.__qualname__})")
    _REGISTRY[name] = dataclasses.replace(spec, weights_loader=loader)
    return _REGISTRY[name]


def list_models(task: str | None = None) -> list[str]:
    """Registered model names, sorted; only those of ``task`` when given."""
    return sorted(n for n, s in _REGISTRY.items() if task is None or s.task == task)


def get_spec(name: str) -> ModelSpec:
    """Return the spec registered as ``name``.

    Raises:
        UnknownModelError: if no model has that name; the message lists the valid names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        valid = ", ".join(list_models()) or "(none)"
        raise UnknownModelError(f"unknown model {name!r}; valid names: {valid}", valid=list_models()) from None


def create_model(name: str, weights: str | Path | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered model, optionally loading weights, in eval mode on the CPU.

    Args:
        name: registry name (see :func:`list_models`).
        weights: ``None`` for random initialisation, ``"default"`` for faceforge's shipped weights,
            or a path to a faceforge checkpoint (see :mod:`faceforge.checkpoints`) or, for specs with a
            ``weights_loader``, a published format it converts (e.g. StyleGAN2 ``.pt``/``.pkl``).
        **kwargs: constructor arguments overriding the spec's defaults. When a checkpoint is loaded,
            its stored config is used and these must not contradict it.

    Returns:
        The ``nn.Module`` in eval mode. Loaded checkpoints leave their ``meta`` in ``model.faceforge_meta``.

    Raises:
        UnknownModelError: unknown ``name``.
        FileNotFoundError: the weights file does not exist.
        CheckpointError: the checkpoint is of another architecture, or its tensors do not fit.
    """
    spec = get_spec(name)
    config = {**spec.kwargs, **kwargs}
    ckpt = None
    if weights is not None:
        path = spec.default_weights_path if weights == "default" else Path(weights)
        if path is None:
            raise CheckpointError(f"model {name!r} ships no default weights")
        ckpt = (spec.weights_loader or load_checkpoint)(path, arch=name)
        stored = ckpt.get("config", {})
        clash = {k: (v, stored[k]) for k, v in kwargs.items() if k in stored and stored[k] != v}
        if clash:
            raise CheckpointError(f"arguments contradict the checkpoint's config: {clash}")
        config = {**spec.kwargs, **stored, **kwargs}  # kwargs may only add what the checkpoint leaves open
    model = spec.factory(**config)
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["state_dict"], strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint {weights} does not fit {name!r}: {exc}") from None
        model.faceforge_meta = ckpt.get("meta", {})
    model.faceforge_config = config
    return model.eval()


def build_from_state(arch: str, config: dict[str, Any], state_dict: dict[str, Any], source: str,
                     task: str | None = None) -> nn.Module:
    """Build registered model ``arch`` from a stored constructor ``config`` and load ``state_dict``
    (e.g. one network out of a training state that holds several), in eval mode.

    Config keys the constructor does not take (training-only fields) are ignored; missing ones come
    from the spec. The result carries ``faceforge_config`` and ``faceforge_arch``.

    Args:
        arch: registry name.
        config: stored constructor arguments.
        state_dict: the network's tensors.
        source: where they come from, for error messages (file, or file and part).
        task: if given, the spec's task must be this (e.g. ``"translate"``).

    Raises:
        UnknownModelError: unknown ``arch``.
        CheckpointError: the model is of another task, or the tensors do not fit.
    """
    import inspect

    spec = get_spec(arch)
    if task is not None and spec.task != task:
        raise CheckpointError(f"{source} holds a {arch!r} model (task {spec.task!r}), not a {task!r} model")
    accepted = set(inspect.signature(spec.factory).parameters)
    kwargs = {**spec.kwargs, **{k: v for k, v in config.items() if k in accepted}}
    model = spec.factory(**kwargs)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{source} does not fit {arch!r}: {str(exc).splitlines()[0]}") from None
    model.faceforge_config = kwargs
    model.faceforge_arch = arch
    return model.eval()
