"""Model cards: every pretrained weight faceforge knows, by one name, resolved in one place.

A **model card** is one set of weights for one architecture, named ``arch.tag`` (``cyclegan_resnet9.age``,
``stylegan2.utkface32``): the file, the input size it was trained at (which may differ from the
architecture's default configuration: the shipped frontalizer is a 128 px ``pix2pix_mobile``), the
alignment template, the normalization, the labels, the license of the weights and the terms of their
training data, the metrics measured on them and the environment variable that overrides them. The
numbers come from the provenance JSON written beside each file by ``faceforge train ... --install``,
so a card never restates a figure by hand.

Where weights live, in the order :func:`resolve` looks:

1. what the caller names: a card name (``"stylegan2.anime32"``), a file or a run folder;
2. the card's environment variable (e.g. ``FACEFORGE_TRANSLATE_AGE_WEIGHTS``), when set;
3. ``"default"``: the copy ``--install`` put in the **user weights folder**
   (:func:`user_weights_dir`: ``$FACEFORGE_HOME/weights`` if set, else platformdirs'
   ``user_data_dir("faceforge")/weights``), else the copy that ships in the package
   (``faceforge/weights/``). Installing never writes into the package.

CLI (``faceforge models``), server configuration, export and benchmarks all call :func:`resolve`;
this module imports no other faceforge module but :mod:`faceforge.errors`, so anything may import it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from faceforge.errors import UnknownModelError, WeightsNotFoundError

__all__ = ["PACKAGE_WEIGHTS_DIR", "ModelCard", "CARDS", "get_card", "list_cards", "default_card",
           "user_weights_dir", "user_cache_dir", "resolve", "install"]

PACKAGE_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
"""The weights that ship inside the package (read-only for faceforge)."""

HOME_ENV = "FACEFORGE_HOME"
"""Environment variable of faceforge's user folder (weights installed by ``--install`` go to ``weights/``)."""

UTKFACE_TERMS = "UTKFace: non-commercial research use only (Zhang, Song, Qi, CVPR 2017)"
FER2013_TERMS = "FER2013: research use (ICML 2013 challenge data, Goodfellow et al.)"
ANIME_TERMS = "selfie2anime trainB (U-GAT-IT, Kim et al., ICLR 2020): research use, image rights unclear"


@dataclass(frozen=True)
class ModelCard:
    """One pretrained weight file of one architecture.

    Attributes:
        name: ``"arch.tag"``, e.g. ``"cyclegan_resnet9.age"``.
        arch: architecture in :mod:`faceforge.models.registry`.
        task: what the weights do (``emotion``, ``translate``, ``frontalize``, ``age``, ``generate``...).
        file: file name in the weights folders.
        default: the architecture's default weights (``"default"`` of that arch resolves to this card).
        shipped: whether the package is meant to ship the file (``False``: train it to have it).
        input_size: side in px of the input the weights were trained at (``None``: read it from the
            provenance JSON); ``0`` for generators that take a latent.
        template: alignment template of the training crops (``faceforge.faces.align`` name) or ``None``.
        normalization: how pixels enter the network, e.g. ``"rgb [-1, 1]"``.
        labels: class names in output order (classifiers), else ``None``.
        license: license of the weights themselves.
        data_terms: terms of the training data, which bind the weights' use.
        env: environment variable that overrides the file, or ``None``.
        train_command: how to (re)make the weights.
    """

    name: str
    arch: str
    task: str
    file: str
    default: bool = True
    shipped: bool = True
    input_size: int | None = None
    template: str | None = None
    normalization: str = "rgb [-1, 1]"
    labels: tuple[str, ...] | None = None
    license: str = "Apache-2.0"
    data_terms: str = ""
    env: str | None = None
    train_command: str = ""
    _extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def tag(self) -> str:
        """The part after the dot, e.g. ``"age"``."""
        return self.name.split(".", 1)[1]

    @property
    def package_path(self) -> Path:
        """Where the shipped copy is (may not exist)."""
        return PACKAGE_WEIGHTS_DIR / self.file

    @property
    def user_path(self) -> Path:
        """Where ``--install`` puts this card's weights (may not exist)."""
        return user_weights_dir() / self.file

    @property
    def path(self) -> Path | None:
        """The file ``"default"`` means: the installed copy, else the shipped one; ``None`` if neither exists."""
        for candidate in (self.user_path, self.package_path):
            if candidate.is_file():
                return candidate
        return None

    @property
    def expected_path(self) -> Path:
        """:attr:`path` when a copy exists, else :attr:`package_path` (which may not exist): the file
        ``"default"`` stands for, to load or to name in a not-found message."""
        return self.path or self.package_path

    @property
    def available(self) -> bool:
        """Whether :attr:`path` exists."""
        return self.path is not None

    def provenance(self) -> dict[str, Any]:
        """The provenance JSON beside :attr:`path` (command, data, steps, metrics...), ``{}`` if none.

        Raises:
            Nothing: an unreadable JSON reads as ``{}`` (the weights still load).
        """
        path = self.path
        if path is None:
            return {}
        try:
            return json.loads(path.with_suffix(".json").read_text())
        except (OSError, ValueError):
            return {}

    def trained_input_size(self) -> int | None:
        """Input side (px) the weights were trained at: :attr:`input_size`, else the provenance's crop size."""
        if self.input_size is not None:
            return self.input_size
        prov = self.provenance()
        for section in (prov.get("training_config") or {}, prov.get("config") or {}, prov.get("model_config") or {}):
            for key in ("crop_size", "resolution", "image_size", "size"):
                if isinstance(section.get(key), int):
                    return int(section[key])
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no absolute path of this machine: the file is named relative to its folder)."""
        path = self.path
        where = None if path is None else ("user" if path == self.user_path else "package")
        prov = self.provenance()
        return {"name": self.name, "arch": self.arch, "task": self.task, "file": self.file,
                "default": self.default, "shipped": self.shipped, "available": path is not None, "location": where,
                "input_size": self.trained_input_size(), "template": self.template,
                "normalization": self.normalization, "labels": list(self.labels) if self.labels else None,
                "license": self.license, "data_terms": self.data_terms, "env": self.env,
                "train_command": prov.get("command") or self.train_command,
                "metrics": prov.get("metrics"), "steps": prov.get("step") or prov.get("steps"),
                "training_minutes": prov.get("training_minutes")}


EMOTION_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

CARDS: dict[str, ModelCard] = {c.name: c for c in (
    ModelCard("mini_xception.fer2013", "mini_xception", "emotion", "mini_xception_fer2013.pt", input_size=48,
              template="fer", normalization="gray [-1, 1]", labels=EMOTION_LABELS, data_terms=FER2013_TERMS,
              env="FACEFORGE_EMOTION_WEIGHTS", train_command="faceforge train emotion --epochs 60 --install"),
    ModelCard("age_resnet.utkface", "age_resnet", "age", "age_resnet_utkface.pt", input_size=64,
              template="utkface", data_terms=UTKFACE_TERMS, env="FACEFORGE_AGE_WEIGHTS",
              train_command="python -m training.age train --epochs 8 --widths 16,32,64,128 "
                            "--holdout data/utkface_age/testA --holdout data/utkface_age/testB"),
    ModelCard("cyclegan_resnet9.age", "cyclegan_resnet9", "translate", "cyclegan_age.pt", template="utkface",
              data_terms=UTKFACE_TERMS, env="FACEFORGE_TRANSLATE_AGE_WEIGHTS",
              train_command="faceforge train cyclegan --data data/utkface_age --install"),
    ModelCard("cyclegan_mobile.age", "cyclegan_mobile", "translate", "cyclegan_age_mobile.pt", template="utkface",
              data_terms=UTKFACE_TERMS, train_command="faceforge train cyclegan --netG mobile ... --install"),
    ModelCard("pix2pix_mobile.frontalize", "pix2pix_mobile", "frontalize", "pix2pix_frontalize.pt",
              template="frontalize (Face Mesh rerender, faceforge.frontalize)", data_terms=UTKFACE_TERMS,
              env="FACEFORGE_FRONTALIZE_WEIGHTS", train_command="faceforge train frontalize --install"),
    ModelCard("gpen.utkface64", "gpen", "restore", "gpen_restore.pt", shipped=False, input_size=64,
              template="utkface", data_terms=UTKFACE_TERMS, env="FACEFORGE_GPEN_WEIGHTS",
              train_command="faceforge train gpen --size 64 (then --weights RUN/G_ema.pt)"),
    ModelCard("faceshifter.utkface64", "faceshifter", "swap", "faceshifter_aeinet64_w025_utkface.pt",
              input_size=64, template="utkface", data_terms=UTKFACE_TERMS, env="FACEFORGE_FACESHIFTER_WEIGHTS",
              train_command="faceforge train faceshifter --size 64 --id-center --lambda-id 10, then --init-from that "
                            "run with --id-views 1 (the provenance JSON has the whole chain)"),
    ModelCard("stylegan2.utkface32", "stylegan2", "generate", "stylegan2_utkface32.pt", template="utkface",
              data_terms=UTKFACE_TERMS, env="FACEFORGE_STYLEGAN2_WEIGHTS",
              train_command="faceforge train stylegan2 --install"),
    ModelCard("attribute_net.utkface32", "attribute_net", "attributes", "attributes_utkface32.pt", input_size=32,
              template="utkface", labels=("log1p_age", "female_logit"), data_terms=UTKFACE_TERMS,
              env="FACEFORGE_ATTRIBUTE_WEIGHTS",
              train_command="python -m training.attributes --size 32 --epochs 6 -o attributes_utkface32.pt"),
    ModelCard("stylegan2.anime32", "stylegan2", "toonify", "stylegan2_anime32.pt", default=False,
              template="anime (centred, front-facing)", data_terms=ANIME_TERMS,
              env="FACEFORGE_STYLEGAN2_TOON_WEIGHTS",
              train_command="faceforge train stylegan2 --finetune-from default --data ANIME_FACES --install"),
)}
"""Every card, by name. A new trained family adds its card here (and nothing elsewhere names its file)."""


def get_card(name: str) -> ModelCard:
    """The card called ``name`` (``"arch.tag"``).

    Raises:
        UnknownModelError: no such card; the message lists the known names.
    """
    try:
        return CARDS[name]
    except KeyError:
        raise UnknownModelError(f"unknown model card {name!r}; known: {', '.join(sorted(CARDS))}",
                                valid=sorted(CARDS)) from None


def list_cards(task: str | None = None, arch: str | None = None) -> list[ModelCard]:
    """Cards sorted by name, optionally only those of ``task`` and/or ``arch``."""
    return [c for n, c in sorted(CARDS.items()) if (task is None or c.task == task) and (arch is None or c.arch == arch)]


def default_card(arch: str) -> ModelCard | None:
    """The card ``"default"`` means for architecture ``arch``, or ``None`` if it has none."""
    return next((c for c in list_cards(arch=arch) if c.default), None)


def user_weights_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder ``--install`` writes to: ``$FACEFORGE_HOME/weights``, else platformdirs' user data dir.

    Not created here (see :func:`install`).
    """
    environ = os.environ if environ is None else environ
    home = environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / "weights"
    import platformdirs

    return Path(platformdirs.user_data_dir("faceforge", appauthor=False)) / "weights"


def user_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """faceforge's cache folder (decoded data sets, converted weights): ``$FACEFORGE_HOME/cache``, else
    platformdirs' user cache dir. Never inside the working tree; not created here."""
    environ = os.environ if environ is None else environ
    home = environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir("faceforge", appauthor=False))


def resolve(weights: str | os.PathLike | None, card: str | ModelCard, *,
            environ: Mapping[str, str] | None = None, hint: str = "") -> Path:
    """The weights file (or run folder) to load for ``card``.

    Args:
        weights: ``None`` or ``""`` (use ``card.env`` when set, else the default), ``"default"``, another
            card's name (``"stylegan2.anime32"``), or a path to a file or run folder.
        card: the card whose default applies (name or object).
        environ: environment to read (default ``os.environ``).
        hint: appended to the not-found message (e.g. how to train these weights).

    Returns:
        An existing path.

    Raises:
        UnknownModelError: ``card`` is not a card name.
        WeightsNotFoundError: the default is neither installed nor shipped, or the named path does not
            exist; the message says where faceforge looked, the variable to set and how to train.
    """
    card = get_card(card) if isinstance(card, str) else card
    environ = os.environ if environ is None else environ
    chosen = str(weights) if weights not in (None, "") else (environ.get(card.env, "") if card.env else "")
    chosen = chosen or "default"
    if chosen in CARDS and chosen != card.name:
        card, chosen = CARDS[chosen], "default"
    if chosen in ("default", card.name):
        path = card.path
        if path is None:
            how = hint or (f"train them with `{card.train_command}`" if card.train_command else "")
            raise WeightsNotFoundError(
                f"no weights for {card.name} are installed or shipped (looked for {card.file} in the user "
                f"weights folder and in the package's faceforge/weights/)" + (f"; {how}" if how else "")
                + (f", or set {card.env} (or --weights) to a file" if card.env else ""),
                path=card.file, card=card.name, env=card.env)
        return path
    path = Path(chosen).expanduser()
    if not path.exists():
        raise WeightsNotFoundError(f"weights for {card.name} not found: {path}" + (f" ({hint})" if hint else ""),
                                   path=str(path), card=card.name, env=card.env)
    return path


def install(checkpoint: str | os.PathLike, card: str | ModelCard, provenance: Mapping[str, Any] | None = None,
            dest_dir: str | os.PathLike | None = None) -> Path:
    """Copy a trained checkpoint to the user weights folder as ``card``'s file, atomically.

    Args:
        checkpoint: the file to install.
        card: which card it becomes the default of.
        provenance: written beside it as ``<file>.json`` (command, data, steps, metrics...).
        dest_dir: another folder (default :func:`user_weights_dir`). Never the package folder.

    Returns:
        The installed file.

    Raises:
        FileNotFoundError: ``checkpoint`` does not exist.
        ValueError: ``dest_dir`` is the package's own weights folder.
    """
    from faceforge.checkpoints import write_atomically

    card = get_card(card) if isinstance(card, str) else card
    src = Path(checkpoint)
    if not src.is_file():
        raise FileNotFoundError(f"checkpoint not found: {src}")
    folder = Path(dest_dir) if dest_dir is not None else user_weights_dir()
    if folder.resolve() == PACKAGE_WEIGHTS_DIR:
        raise ValueError("installing into the package's weights folder is refused; use the user folder "
                         f"({user_weights_dir()}) or another --install-dir")
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / card.file
    for data, target in ((src.read_bytes(), dest),
                         (None if provenance is None else
                          (json.dumps(dict(provenance), indent=1, default=str) + "\n").encode(), dest.with_suffix(".json"))):
        if data is None:
            continue
        write_atomically(target, lambda tmp, data=data: Path(tmp).write_bytes(data))
    return dest
