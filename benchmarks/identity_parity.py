"""Parity of faceforge's PyTorch port of dlib's face-recognition ResNet with dlib itself.

Both networks embed the **same** 150x150 chips (``dlib.get_face_chip(img, shape, 150, 0.25)``, what
``compute_face_descriptor`` cuts): dlib with ``face_recognition_model_v1.compute_face_descriptor(chip)``
(dlib-bin), ours with :class:`faceforge.models.dlib_resnet.DlibFaceResNet` (weights converted from the
same ``.dat``). Faces:

* ``--utkface N`` UTKFace chips (random, ``--seed``), landmarks in :data:`faceforge.identity.UTKFACE_BOX`;
* every face dlib's HOG detector finds (upsampled once) in the shared photos (``photos/portraits``,
  ``portraits_256``, ``groups``), 5-point landmarks in its box;
* the horizontal mirror of every chip (a genuine same-person pair with its original).

Figures: per-component absolute difference of the two embeddings (max over all faces and components,
mean, 99.9th percentile); on every pair of faces (all pairs among originals and mirrors), the
difference of the Euclidean distances and the agreement of the same-person decisions (distance < 0.6);
time per face of each network on this CPU (single chips, and batches of 32; dlib-bin's own threading,
PyTorch with ``--threads``), medians. Without dlib: how many faces get the same landmarks from
faceforge's port of the shape predictor and the same chip from
:func:`faceforge.identity.chip_from_landmarks`; for the UTKFace faces also the landmark-free chip
(:func:`faceforge.identity.chip_from_aligned`, fixed landmarks): its embedding's distance to the
landmark chip's, and how often its same-person decisions agree with dlib's.

This script measures; it never asserts. Usage::

    python -m benchmarks.identity_parity [--data ../shared/data] [--utkface 250] [--threads 1]

Writes ``benchmarks/results/identity_parity.{md,json}``.
"""

from __future__ import annotations

import os
import platform
import random
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks import RESULTS_DIR, display_path, write_results
from faceforge.data.paths import data_root

FOLDERS = ("portraits", "portraits_256", "groups")
THRESHOLD = 0.6


def collect_chips(data_dir: Path, n_utkface: int, seed: int) -> tuple[np.ndarray, list[str], list[np.ndarray], dict]:
    """dlib chips of the benchmark's faces: ``(chips uint8 (N, 150, 150, 3), labels, utkface crops,
    port)`` (the crops, for the fixed-landmark path, are the first ``len(crops)`` chips' sources);
    ``port`` counts the faces whose landmarks / chips from faceforge's ports (numpy shape predictor,
    :func:`faceforge.identity.chip_from_landmarks`) equal dlib's, in the same boxes."""
    from faceforge import identity
    from faceforge.imaging import load_image

    m = identity._load()
    dlib = m["dlib"]
    predictor = identity._numpy_predictor()
    chips, labels, crops = [], [], []
    port = {"faces": 0, "same_landmarks": 0, "same_chip": 0, "max_landmark_difference_px": 0}

    def add(rgb: np.ndarray, box: tuple[int, int, int, int], label: str) -> None:
        shape = m["landmarks"](rgb, dlib.rectangle(*box))
        chip = np.asarray(dlib.get_face_chip(rgb, shape, 150, 0.25), np.uint8)
        ref = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)])
        ours = predictor(rgb, box)
        port["faces"] += 1
        port["same_landmarks"] += int(np.array_equal(ref, ours))
        port["max_landmark_difference_px"] = max(port["max_landmark_difference_px"], int(np.abs(ref - ours).max()))
        port["same_chip"] += int(np.array_equal(identity.chip_from_landmarks(rgb, ours), chip))
        chips.append(chip)
        labels.append(label)

    names = sorted(p.name for p in (data_dir / "utkface").glob("*.jpg"))
    for name in random.Random(seed).sample(names, min(n_utkface, len(names))):
        crop = load_image(data_dir / "utkface" / name)
        add(crop, identity._fixed_box(crop.shape[1], crop.shape[0]), f"utkface/{name}")
        crops.append(crop)
    for folder in FOLDERS:
        for path in sorted((data_dir / "photos" / folder).glob("*")):
            if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            rgb = np.ascontiguousarray(load_image(path)[..., :3])
            for k, r in enumerate(m["detector"](rgb, 1)):
                add(rgb, (r.left(), r.top(), r.right(), r.bottom()), f"{folder}/{path.name}#{k}")
    return np.stack(chips), labels, crops, port


def _pair_stats(ref: np.ndarray, ours: np.ndarray) -> dict[str, Any]:
    i, j = np.triu_indices(len(ref), 1)
    d_ref = np.linalg.norm(ref[i] - ref[j], axis=1)
    d_ours = np.linalg.norm(ours[i] - ours[j], axis=1)
    same_ref, same_ours = d_ref < THRESHOLD, d_ours < THRESHOLD
    return {"pairs": int(len(i)), "same_person_pairs_dlib": int(same_ref.sum()),
            "decisions_agree": int((same_ref == same_ours).sum()),
            "decisions_differ": int((same_ref != same_ours).sum()),
            "max_abs_distance_difference": float(np.abs(d_ref - d_ours).max()),
            "pairs_within_1e-3_of_threshold": int((np.abs(d_ref - THRESHOLD) < 1e-3).sum()),
            "closest_to_threshold": float(np.abs(d_ref - THRESHOLD).min())}


def _time_per_face(fn, chips: np.ndarray, batch: int) -> float:
    """Median wall-clock ms per face of ``fn(chips[i:i + batch])`` over the set (after one warm-up)."""
    fn(chips[:batch])
    per = []
    for start in range(0, len(chips) - batch + 1, batch):
        t = time.perf_counter()
        fn(chips[start:start + batch])
        per.append((time.perf_counter() - t) * 1000 / batch)
    return float(np.median(per))


def run(data_dir: Path, n_utkface: int = 250, seed: int = 0, threads: int = 1, out_dir: Path = RESULTS_DIR,
        timing_faces: int = 64) -> dict[str, Any]:
    """Measure, print and write the results (see the module docstring). Returns the JSON document."""
    import torch

    from faceforge import identity
    from faceforge.models.dlib_resnet import load_dlib_resnet

    torch.set_num_threads(threads)
    chips, labels, crops, port = collect_chips(data_dir, n_utkface, seed)
    mirrored = np.ascontiguousarray(chips[:, :, ::-1])
    all_chips = np.concatenate([chips, mirrored])
    rec = identity._load()["recognition"]

    def dlib_embed(batch: np.ndarray) -> np.ndarray:
        return np.asarray([np.asarray(v) for v in rec.compute_face_descriptor(list(batch))], np.float64)

    t0 = time.perf_counter()
    model = load_dlib_resnet(cache=False)
    convert_s = time.perf_counter() - t0
    load_dlib_resnet(cache=True)  # fills the cache
    t0 = time.perf_counter()
    load_dlib_resnet(cache=True)
    cached_s = time.perf_counter() - t0

    def torch_embed(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float()
            return model(x).double().numpy()

    ref = np.concatenate([dlib_embed(all_chips[i:i + 32]) for i in range(0, len(all_chips), 32)])
    ours = np.concatenate([torch_embed(all_chips[i:i + 32]) for i in range(0, len(all_chips), 32)])
    diff = np.abs(ref - ours)
    n = len(chips)
    mirror_d_ref = np.linalg.norm(ref[:n] - ref[n:], axis=1)
    mirror_d_ours = np.linalg.norm(ours[:n] - ours[n:], axis=1)

    timing = chips[:timing_faces]
    times = {"dlib_single_ms": _time_per_face(lambda b: [rec.compute_face_descriptor(c) for c in b], timing, 1),
             "torch_single_ms": _time_per_face(torch_embed, timing, 1),
             "dlib_batch32_ms": _time_per_face(dlib_embed, timing, 32),
             "torch_batch32_ms": _time_per_face(torch_embed, timing, 32)}

    if crops:  # cutting the chip of an aligned crop: dlib vs faceforge's ports
        m = identity._load()
        predictor = identity._numpy_predictor()

        def cut_dlib(c: np.ndarray) -> np.ndarray:
            shape = m["landmarks"](c, m["dlib"].rectangle(*identity._fixed_box(c.shape[1], c.shape[0])))
            return np.asarray(m["dlib"].get_face_chip(c, shape, 150, 0.25))

        def cut_port(c: np.ndarray) -> np.ndarray:
            return identity.chip_from_landmarks(c, predictor(c, identity._fixed_box(c.shape[1], c.shape[0])))

        for key, fn in (("chip_dlib_ms", cut_dlib), ("chip_port_ms", cut_port)):
            per = []
            for c in crops[:timing_faces]:
                t = time.perf_counter()
                fn(c)
                per.append((time.perf_counter() - t) * 1000)
            times[key] = float(np.median(per))

    # dlib-free chips of the UTKFace crops (fixed landmarks on the utkface template)
    k = len(crops)
    free = torch_embed(np.stack([identity.chip_from_aligned(c) for c in crops])) if k else np.zeros((0, 128))
    free_d = np.linalg.norm(free - ref[:k], axis=1) if k else np.zeros(0)
    free_pairs = _pair_stats(ref[:k], free) if k > 1 else {}

    doc = {
        "faces": {"total": int(n), "utkface": int(k), "photos": int(n - k), "with_mirrors": int(len(all_chips)),
                  "photo_faces": [lab for lab in labels if not lab.startswith("utkface/")]},
        "embedding_difference": {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
                                 "p99_9_abs": float(np.percentile(diff, 99.9)),
                                 "max_abs_per_face_median": float(np.median(diff.max(1))),
                                 "embedding_norm_dlib_median": float(np.median(np.linalg.norm(ref, axis=1)))},
        "pairs": _pair_stats(ref, ours),
        "mirror_pairs": {"n": int(n), "same_dlib": int((mirror_d_ref < THRESHOLD).sum()),
                         "same_ours": int((mirror_d_ours < THRESHOLD).sum()),
                         "median_distance_dlib": float(np.median(mirror_d_ref))},
        "dlib_free_landmarks_and_chip": port,
        "time_per_face_ms": times,
        "load_s": {"convert_from_dat": round(convert_s, 3), "from_cache": round(cached_s, 3)},
        "dlib_free_chip_utkface": {
            "n": int(k),
            "distance_to_landmark_chip": ({"median": float(np.median(free_d)), "p95": float(np.percentile(free_d, 95)),
                                           "max": float(free_d.max())} if k else {}),
            "pairs_vs_dlib": free_pairs},
        "setup": {"seed": seed, "torch_threads": threads, "torch": torch.__version__,
                  "dlib": __import__("dlib").__version__, "cpu": platform.processor() or platform.machine(),
                  "cores": os.cpu_count(), "data": display_path(data_dir)},
    }
    write_results(doc, out_dir, "identity_parity", markdown)
    print(markdown(doc))
    return doc


def markdown(doc: dict[str, Any]) -> str:
    f, e, p, t = doc["faces"], doc["embedding_difference"], doc["pairs"], doc["time_per_face_ms"]
    m, fr, pt = doc["mirror_pairs"], doc["dlib_free_chip_utkface"], doc["dlib_free_landmarks_and_chip"]
    lines = [
        "# Identity network: faceforge's PyTorch port vs dlib's `compute_face_descriptor`",
        "",
        f"Same 150x150 dlib chips fed to both: {f['total']} real faces ({f['utkface']} UTKFace, {f['photos']} "
        f"found by dlib's HOG detector in the shared photos) and their mirrors: {f['with_mirrors']} chips. "
        f"Produced by `python -m benchmarks.identity_parity` (torch {doc['setup']['torch']}, "
        f"dlib {doc['setup']['dlib']}, {doc['setup']['cores']} CPU cores shared with other jobs).",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| max abs difference per component (all chips, all 128 components) | {e['max_abs']:.2e} |",
        f"| mean abs difference | {e['mean_abs']:.2e} |",
        f"| 99.9th percentile abs difference | {e['p99_9_abs']:.2e} |",
        f"| median embedding norm (dlib; not normalised) | {e['embedding_norm_dlib_median']:.3f} |",
        f"| pairs compared (all pairs of chips) | {p['pairs']:,} |",
        f"| same-person (< 0.6) pairs by dlib | {p['same_person_pairs_dlib']:,} |",
        f"| same-person decisions that differ | {p['decisions_differ']} |",
        f"| max abs difference of pair distances | {p['max_abs_distance_difference']:.2e} |",
        f"| pairs within 1e-3 of the threshold (dlib) | {p['pairs_within_1e-3_of_threshold']} |",
        f"| mirror pairs judged same person: dlib / ours | {m['same_dlib']} / {m['same_ours']} of {m['n']} |",
        "",
        f"Without dlib: faceforge's port of the 5-point shape predictor gives the same landmarks as dlib's on "
        f"{pt['same_landmarks']} of {pt['faces']} faces (largest difference {pt['max_landmark_difference_px']} px), "
        f"and `identity.chip_from_landmarks` the same chip as `dlib.get_face_chip` (bit-exact) on "
        f"{pt['same_chip']} of {pt['faces']}, in the same boxes: the dlib-free embedding is the one above.",
        "",
        "Time per face on this CPU (median ms; chips already cut):",
        "",
        "| network | single chip | batches of 32 |",
        "| --- | --- | --- |",
        f"| dlib-bin `compute_face_descriptor` | {t['dlib_single_ms']:.1f} | {t['dlib_batch32_ms']:.1f} |",
        f"| faceforge `DlibFaceResNet` ({doc['setup']['torch_threads']} torch thread(s)) | "
        f"{t['torch_single_ms']:.1f} | {t['torch_batch32_ms']:.1f} |",
        "",
    ]
    if "chip_dlib_ms" in t:
        lines += [f"Cutting the chip of a 200 px UTKFace crop (5 landmarks + chip, median ms): dlib "
                  f"{t['chip_dlib_ms']:.1f}, faceforge's ports (numpy) {t['chip_port_ms']:.1f}.", ""]
    lines += [
        f"Loading: converting the .dat {doc['load_s']['convert_from_dat']} s, from the cache "
        f"{doc['load_s']['from_cache']} s.",
        "",
    ]
    if fr.get("n"):
        d, fp = fr["distance_to_landmark_chip"], fr["pairs_vs_dlib"]
        lines += [
            f"Without landmarks at all ({fr['n']} UTKFace crops): the chip cut at fixed landmarks "
            "(`identity.chip_from_aligned`) instead of dlib's 5-point landmarks; embedding distance to the "
            f"landmark chip's: median {d['median']:.3f}, 95th percentile {d['p95']:.3f}, max {d['max']:.3f}; "
            f"same-person decisions on {fp['pairs']:,} pairs differ from dlib's in {fp['decisions_differ']} "
            f"({100 * fp['decisions_differ'] / max(1, fp['pairs']):.2f} %).",
            "",
        ]
    return "\n".join(lines)


@click.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="shared data folder (default: $FACEFORGE_DATA or <repo>/../shared/data)")
@click.option("--utkface", "n_utkface", type=click.IntRange(0), default=250, show_default=True,
              help="UTKFace faces (random)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="PyTorch threads")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
              show_default=True)
def main(data_dir: Path | None, n_utkface: int, seed: int, threads: int, out_dir: Path) -> None:
    """Embed the same dlib chips with dlib and with faceforge's port; write the parity figures."""
    data_dir = data_dir or data_root()
    if not (data_dir / "utkface").is_dir() and not (data_dir / "photos").is_dir():
        raise click.ClickException(f"no utkface/ or photos/ under {data_dir} (set FACEFORGE_DATA or --data)")
    from faceforge import identity
    from faceforge.errors import FaceforgeError

    if not (identity.is_available() and identity.has_dlib()):
        raise click.ClickException(f"dlib and its model files are needed: {identity.INSTALL_HINT}")
    try:
        run(data_dir, n_utkface=n_utkface, seed=seed, threads=threads, out_dir=out_dir)
    except FaceforgeError as exc:
        raise click.ClickException(str(exc)) from None


if __name__ == "__main__":
    main()
