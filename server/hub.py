"""Models of one server process, loaded lazily once and shared by every request thread.

Nothing is loaded at import time or in ``create_app`` (unless ``Config.warm_up``): the first request
that needs a model, ``/readyz`` or :meth:`ModelHub.warm_up` loads it under a lock, so concurrent first
requests load it once. A failed load is not cached: the next request tries again (e.g. after the
weights file has been installed).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceforge.models import get_spec, list_models

from server.config import Config

if TYPE_CHECKING:
    from faceforge.emotion import EmotionRecognizer
    from faceforge.faces.detect import FaceDetector
    from faceforge.faces.landmarks import FaceMesh
    from faceforge.faceshifter import FaceShifterSwapper
    from faceforge.frontalize import Frontalizer
    from faceforge.models.stylegan2 import StyleGAN2Generator
    from faceforge.translate import FaceTranslator


def public_weights_name(weights: str | Path | None) -> str:
    """How responses name a weights setting: ``"default"``, ``"random-init"`` or the file name only
    (server paths are not shown to clients)."""
    if weights is None:
        return "random-init"
    if str(weights) in ("default", "random-init"):
        return str(weights)
    return Path(weights).name


class ModelHub:
    """Lazily loaded, shared models: the face detector, the emotion recognizer, and for the heavy jobs
    the StyleGAN2 generators and Face Mesh.

    Args:
        config: the server :class:`~server.config.Config` (weights paths, detector variant, threads).
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock = threading.RLock()
        self._detector: FaceDetector | None = None
        self._emotion: EmotionRecognizer | None = None
        self._stylegan: dict[str, StyleGAN2Generator] = {}
        self._face_mesh: FaceMesh | None = None
        self._translators: dict[str, FaceTranslator] = {}
        self._frontalizer: Frontalizer | None = None
        self._faceshifter: FaceShifterSwapper | None = None
        self.faceshifter_lock = threading.Lock()
        """Held around each AEI-Net swap (one swap at a time through the shared swapper)."""

    def detector(self) -> FaceDetector:
        """The shared BlazeFace detector, built on first use.

        Raises:
            MissingDependencyError: the detector model files or LiteRT are not installed.
        """
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    from faceforge.faces.detect import FaceDetector
                    self._detector = FaceDetector(model=self.config.detector_model,
                                                  num_threads=self.config.detector_threads)
        return self._detector

    def emotion(self) -> EmotionRecognizer:
        """The shared emotion recognizer (mini_xception + the shared detector), built on first use.

        Raises:
            WeightsNotFoundError: the configured weights file is absent (503).
            CheckpointError: the weights file is not a mini_xception checkpoint.
        """
        if self._emotion is None:
            with self._lock:
                if self._emotion is None:
                    from faceforge.emotion import EmotionRecognizer
                    recognizer = EmotionRecognizer(weights=self.config.emotion_weights, detector=self.detector())
                    if self.config.torch_threads:
                        import torch
                        torch.set_num_threads(self.config.torch_threads)
                    self._emotion = recognizer
        return self._emotion

    def translator(self, task: str) -> FaceTranslator:
        """The shared translator of ``task`` (CycleGAN generator(s) + the shared detector), built on
        first use from ``Config.translate_<task>_weights``.

        Raises:
            UnknownTaskError: unknown task (400).
            WeightsNotFoundError: no weights installed/configured for the task (503).
            CheckpointError: the weights are not a translation generator.
        """
        translator = self._translators.get(task)
        if translator is None:
            from faceforge.errors import WeightsNotFoundError
            from faceforge.translate import FaceTranslator, get_task, resolve_weights

            spec = get_task(task)
            with self._lock:
                translator = self._translators.get(spec.name)
                if translator is None:
                    setting = getattr(self.config, spec.config_key, "default")
                    try:  # FACEFORGE_* already read by Config
                        weights = resolve_weights(spec, setting, environ={})
                    except WeightsNotFoundError as exc:  # the client sees no server paths
                        raise WeightsNotFoundError(
                            f"no weights are installed for task {spec.name!r}: the server operator must train a "
                            f"translator (`faceforge train cyclegan`) and set {spec.env_var} to its run folder",
                            task=spec.name, weights=public_weights_name(setting)) from exc
                    translator = FaceTranslator(spec.name, weights=weights, detector=self.detector())
                    if self.config.torch_threads:
                        import torch
                        torch.set_num_threads(self.config.torch_threads)
                    self._translators[spec.name] = translator
        return translator

    def frontalizer(self) -> "Frontalizer":
        """The shared frontalizer (pix2pix generator, its own full-range detector and Face Mesh), built on
        first use from ``Config.frontalize_weights``.

        Raises:
            WeightsNotFoundError: the configured weights are absent (503).
            CheckpointError: the weights are not a frontalization generator.
        """
        if self._frontalizer is None:
            from faceforge.errors import WeightsNotFoundError
            from faceforge.frontalize import ENV_VAR, Frontalizer, resolve_weights

            with self._lock:
                if self._frontalizer is None:
                    setting = self.config.frontalize_weights
                    try:  # FACEFORGE_FRONTALIZE_WEIGHTS already read by Config
                        weights = resolve_weights(setting, environ={})
                    except WeightsNotFoundError as exc:  # the client sees no server paths
                        raise WeightsNotFoundError(
                            "no frontalization weights are installed: the server operator must train a generator "
                            f"(`faceforge train frontalize`) and set {ENV_VAR} to its run folder",
                            task="frontalize", weights=public_weights_name(setting)) from exc
                    frontalizer = Frontalizer(weights=weights, num_threads=self.config.detector_threads)
                    if self.config.torch_threads:
                        import torch
                        torch.set_num_threads(self.config.torch_threads)
                    self._frontalizer = frontalizer
        return self._frontalizer

    def _translate_tasks_to_warm(self) -> list[str]:
        """Tasks whose weights are configured explicitly or installed (absent default weights do not make
        the server unready: only ``/v1/translate`` answers 503 then)."""
        from faceforge.translate import TASKS

        tasks = []
        for name, spec in TASKS.items():
            setting = getattr(self.config, spec.config_key, "default")
            if setting != "default" or (spec.default_weights_path and spec.default_weights_path.exists()):
                tasks.append(name)
        return tasks

    def _frontalize_to_warm(self) -> bool:
        """Whether frontalization weights are configured explicitly or installed (absent default weights
        do not make the server unready: only ``/v1/frontalize`` answers 503 then)."""
        from faceforge.frontalize import default_weights_path

        return self.config.frontalize_weights != "default" or default_weights_path().exists()

    def stylegan(self, which: str = "base") -> "StyleGAN2Generator":
        """The shared StyleGAN2 generator (``"base"``: ``Config.stylegan2_weights``; ``"toon"``: the
        cartoon fine-tune ``Config.stylegan2_toon_weights``), loaded on first use, eval mode.

        Raises:
            WeightsNotFoundError: the weights are not configured or the file is absent (503).
            CheckpointError: the file is not a StyleGAN2 checkpoint faceforge reads.
        """
        path = self.stylegan_weights_path(which)
        if which not in self._stylegan:
            with self._lock:
                if which not in self._stylegan:
                    from faceforge.models import create_model
                    self._stylegan[which] = create_model("stylegan2", weights=path).eval()
        return self._stylegan[which]

    def stylegan_weights_path(self, which: str = "base") -> Path:
        """The configured, existing StyleGAN2 weights file (checks the file only, loads nothing).

        Raises:
            WeightsNotFoundError: not configured, or the file is absent.
        """
        from faceforge.errors import WeightsNotFoundError

        key, env = {"base": ("stylegan2_weights", "FACEFORGE_STYLEGAN2_WEIGHTS"),
                    "toon": ("stylegan2_toon_weights", "FACEFORGE_STYLEGAN2_TOON_WEIGHTS")}[which]
        value = getattr(self.config, key)
        what = "StyleGAN2 generator" if which == "base" else "cartoon fine-tuned StyleGAN2 generator"
        if not value:
            raise WeightsNotFoundError(f"no {what} is configured: set {env} to 'default' (faceforge's small "
                                       f"32 px UTKFace generator / its anime fine-tune) or to a faceforge, rosinality .pt "
                                       f"or NVlabs .pkl file", model="stylegan2")
        if value == "default":  # the generators faceforge ships: 32 px UTKFace and its anime fine-tune
            from faceforge.models import get_spec
            from faceforge.models.stylegan2 import default_toon_weights_path

            path = get_spec("stylegan2").default_weights_path if which == "base" else default_toon_weights_path()
            if path is None or not path.is_file():
                raise WeightsNotFoundError(f"faceforge ships no default {what} ({env}=default)", model="stylegan2")
            return path
        path = Path(value).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"the {what} weights file {path.name} does not exist ({env})",
                                       model="stylegan2")
        return path

    def faceshifter(self) -> "FaceShifterSwapper":
        """The shared FaceShifter AEI-Net swapper (the shipped ``faceshifter.utkface64`` weights, or
        ``$FACEFORGE_FACESHIFTER_WEIGHTS``), with the shared detector, built on first use. Swap through it
        while holding :attr:`faceshifter_lock`.

        Raises:
            WeightsNotFoundError: no AEI-Net weights are installed (503).
            CheckpointError: the configured file is not an AEI-Net checkpoint.
        """
        if self._faceshifter is None:
            with self._lock:
                if self._faceshifter is None:
                    from faceforge.faceshifter import FaceShifterSwapper
                    self._faceshifter = FaceShifterSwapper(detector=self.detector())
        return self._faceshifter

    def face_mesh(self) -> "FaceMesh":
        """The shared MediaPipe Face Mesh landmarker (uses the shared detector), built on first use.

        Raises:
            MissingDependencyError: model files or LiteRT absent.
        """
        if self._face_mesh is None:
            with self._lock:
                if self._face_mesh is None:
                    from faceforge.faces.landmarks import FaceMesh
                    self._face_mesh = FaceMesh(self.detector(), num_threads=self.config.detector_threads)
        return self._face_mesh

    def warm_up(self) -> dict[str, str]:
        """Load every served model now and run one inference through each (first calls pay one-off
        kernel set-up), so the first real request is not the slowest; return
        ``{name: "ok" | "<error type>: <detail>"}``.

        Never raises for a model that fails to load (the failure is reported in the result).
        """
        from faceforge.errors import FaceforgeError

        report: dict[str, str] = {}
        import numpy as np

        def detector() -> None:
            self.detector().detect(np.zeros((128, 128, 3), np.uint8))

        def emotion() -> None:
            recognizer = self.emotion()
            recognizer.classify_crops(np.zeros((1, recognizer.crop_size, recognizer.crop_size), np.uint8))

        def translate(task: str) -> None:
            translator = self.translator(task)
            translator.translate_crops(np.zeros((1, translator.size, translator.size, 3), np.uint8),
                                       translator.directions[0])

        loaders = [("detector", detector), ("mini_xception", emotion)]
        loaders += [(f"translate:{t}", lambda t=t: translate(t)) for t in self._translate_tasks_to_warm()]
        if self._frontalize_to_warm():
            def frontalize() -> None:
                frontalizer = self.frontalizer()
                frontalizer.frontalize_crops(np.zeros((1, frontalizer.size, frontalizer.size, 3), np.uint8))
            loaders.append(("frontalize", frontalize))
        for name, load in loaders:
            try:
                load()
                report[name] = "ok"
            except FaceforgeError as exc:
                report[name] = f"{exc.type}: {exc.detail}"
            except Exception as exc:  # noqa: BLE001 - readiness reports, never crashes
                report[name] = f"{type(exc).__name__}: {exc}"
        return report

    @property
    def loaded(self) -> dict[str, bool]:
        return {"detector": self._detector is not None, "mini_xception": self._emotion is not None,
                **{f"translate:{t}": True for t in self._translators},
                **({"frontalize": True} if self._frontalizer is not None else {}),
                **({"faceshifter": True} if self._faceshifter is not None else {})}

    def describe(self) -> list[dict[str, Any]]:
        """One JSON-ready entry per registered model: spec, input, weights, loaded state, version."""
        from faceforge.errors import FaceforgeError

        entries = []
        for name in list_models():
            spec = get_spec(name)
            entry: dict[str, Any] = {
                "name": name, "task": spec.task, "description": spec.description, "source": spec.source,
                "license": spec.license, "labels": list(spec.labels) if spec.labels else None,
                "input": spec.input.to_dict(), "loaded": False, "served": name == "mini_xception",
                "weights": {"configured": "default", "available": bool(spec.default_weights_path
                                                                        and spec.default_weights_path.is_file()),
                            "version": None, "provenance": None},
            }
            if name == "stylegan2":
                entry["served"] = bool(self.config.stylegan2_weights)
                entry["loaded"] = "base" in self._stylegan
                if self.config.stylegan2_weights:
                    entry["weights"]["configured"] = public_weights_name(self.config.stylegan2_weights)
                    try:
                        entry["weights"]["available"] = self.stylegan_weights_path("base").is_file()
                    except FaceforgeError:
                        entry["weights"]["available"] = False
                if "base" in self._stylegan:
                    meta = getattr(self._stylegan["base"], "faceforge_meta", {}) or {}
                    entry["weights"]["version"] = str(meta["version"]) if meta.get("version") else None
            if name == "mini_xception":
                entry["weights"]["configured"] = public_weights_name(self.config.emotion_weights)
                if self.config.emotion_weights != "default":
                    entry["weights"]["available"] = Path(self.config.emotion_weights).expanduser().is_file()
                if self._emotion is not None:
                    info = self._emotion.describe()
                    entry["loaded"] = True
                    entry["weights"].update(version=info["version"], provenance=info["provenance"],
                                            available=True)
            for task, translator in self._translators.items():
                if translator.arch == name:  # the generator a /v1/translate task runs
                    info = translator.describe()
                    entry.update(loaded=True, served=True)
                    entry["weights"].update(configured=public_weights_name(info["weights"]), available=True,
                                            version=info["version"], provenance={"task": task, **info["provenance"]})
            if self._frontalizer is not None and self._frontalizer.arch == name:  # what /v1/frontalize runs
                info = self._frontalizer.describe()
                entry.update(loaded=True, served=True)
                entry["weights"].update(configured=public_weights_name(info["weights"]), available=True,
                                        version=info["version"], provenance={"task": "frontalize",
                                                                             **info["provenance"]})
            entries.append(entry)
        return entries
