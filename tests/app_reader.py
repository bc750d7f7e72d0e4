"""An independent app: runs ``mobile_assets/`` the way a phone app written from ``manifest.json`` would.

It reads nothing of faceforge but the manifest and the files it names; it imports numpy, OpenCV and
the LiteRT interpreter only (no faceforge module), so every number it uses comes from the JSON. If the
manifest leaves a step out or states it wrongly, this reader's results part from faceforge's own
on-device path, and ``tests/test_app_contract.py`` says where.

Steps, as the manifest's detector entries, ``detector_policy`` and each model's ``face_alignment``,
``input`` and ``output`` records describe them: letterbox -> BlazeFace -> decode against SSD anchors
-> weighted NMS (+ tiles and the short-range close-up pass of the ``auto`` policy) -> similarity
alignment on the template (area-shrinking large faces first) -> colour conversion, normalization and
int8 quantization -> interpreter -> dequantization -> softmax.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np


class ManifestApp:
    """The app's model layer for one ``mobile_assets`` folder.

    Args:
        assets: the folder holding ``manifest.json``.
    """

    def __init__(self, assets: str | Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter_cls = Interpreter
        self.root = Path(assets)
        self.manifest = json.loads((self.root / "manifest.json").read_text())
        self.detectors = {d["model"]: d for d in self.manifest["detectors"]}
        self.policy = self.manifest["detector_policy"]
        self._interpreters: dict[str, Any] = {}
        self._anchors: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ entries and interpreters
    def entry(self, name: str, fmt: str) -> dict[str, Any]:
        """The manifest entry of model ``name`` in format ``fmt``."""
        return next(e for e in self.manifest["models"] if e["name"] == name and e["format"] == fmt)

    def interpreter(self, file: str):
        if file not in self._interpreters:
            interp = self._interpreter_cls(model_path=str(self.root / file), num_threads=1)
            interp.allocate_tensors()
            self._interpreters[file] = interp
        return self._interpreters[file]

    # ------------------------------------------------------------------ detection
    def anchors(self, spec: dict[str, Any]) -> np.ndarray:
        """``(N, 2)`` anchor centres from the entry's ``anchors`` record (fixed anchor size: w = h = 1)."""
        a = spec["anchors"]
        key = spec["file"]
        if key in self._anchors:
            return self._anchors[key]
        assert a["fixed_anchor_size"], "this reader implements fixed-size anchors only (the manifest's case)"
        per_layer = len(a["aspect_ratios"]) + (1 if a["interpolated_scale_aspect_ratio"] > 0 else 0)
        centres = []
        strides, layer = a["strides"], 0
        while layer < a["num_layers"]:
            last = layer
            while last < a["num_layers"] and strides[last] == strides[layer]:
                last += 1
            per_cell = per_layer * (last - layer)
            grid = math.ceil(a["input_size"] / strides[layer])
            for y in range(grid):
                for x in range(grid):
                    centres += [((x + a["anchor_offset_x"]) / grid, (y + a["anchor_offset_y"]) / grid)] * per_cell
            layer = last
        out = np.asarray(centres, np.float32)
        assert len(out) == a["count"], (len(out), a["count"])
        self._anchors[key] = out
        return out

    def _run_detector(self, spec: dict[str, Any], rgb: np.ndarray, min_score: float):
        side = spec["input"]["shape"][1]
        h, w = rgb.shape[:2]
        scale = side / max(h, w)
        new_w, new_h = min(side, max(1, int(round(w * scale)))), min(side, max(1, int(round(h * scale))))
        resized = cv2.resize(np.ascontiguousarray(rgb), (new_w, new_h),
                             interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        pad_x, pad_y = (side - new_w) // 2, (side - new_h) // 2
        canvas = np.zeros((side, side, 3), np.uint8)
        canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = resized
        x = canvas.astype(np.float32)[None] / np.float32(127.5) - np.float32(1.0)
        interp = self.interpreter(spec["file"])
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        # float32 arithmetic, as a phone app does (the manifest's "decoding" formulas, "arithmetic": float32)
        reg = interp.get_tensor(spec["outputs"]["regressors"]["index"])[0].astype(np.float32)
        logit = interp.get_tensor(spec["outputs"]["classificators"]["index"])[0].reshape(-1).astype(np.float64)
        clip = spec["decoding"]["score_clip"]
        score = (1.0 / (1.0 + np.exp(-np.clip(logit, -clip, clip)))).astype(np.float32)
        keep = score >= min_score
        reg, anc, score = reg[keep], self.anchors(spec)[keep], score[keep]
        s = np.float32(side)
        cx, cy = reg[:, 0] / s + anc[:, 0], reg[:, 1] / s + anc[:, 1]
        bw, bh = reg[:, 2] / s, reg[:, 3] / s
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
        kps = reg[:, 4:16].reshape(-1, 6, 2) / s + anc[:, None, :]
        sx, sy = new_w / w, new_h / h  # per axis, as decoding.units says

        def to_image(v: np.ndarray) -> np.ndarray:
            out = v.astype(np.float32)
            out[..., 0::2] = (v[..., 0::2] * s - np.float32(pad_x)) / np.float32(sx)
            out[..., 1::2] = (v[..., 1::2] * s - np.float32(pad_y)) / np.float32(sy)
            return out

        return to_image(boxes), to_image(kps.reshape(-1, 12)).reshape(-1, 6, 2), score

    @staticmethod
    def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
        iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
        inter = ix * iy
        union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)

    def weighted_nms(self, boxes, kps, scores, threshold):
        order = np.argsort(-scores, kind="stable")
        out = []
        while order.size:
            top = order[0]
            member = (self.iou(boxes[top], boxes[order]) > threshold) | (order == top)
            cluster, order = order[member], order[~member]
            wts = scores[cluster] / scores[cluster].sum()
            out.append(((boxes[cluster] * wts[:, None]).sum(0), (kps[cluster] * wts[:, None, None]).sum(0), scores[top]))
        if not out:
            return np.zeros((0, 4), np.float32), np.zeros((0, 6, 2), np.float32), np.zeros(0, np.float32)
        return (np.array([o[0] for o in out], np.float32), np.array([o[1] for o in out], np.float32),
                np.array([o[2] for o in out], np.float32))

    @staticmethod
    def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
        if length <= tile:
            return [0]
        n = math.ceil((length - tile) / (tile * (1 - overlap))) + 1
        return [int(round(i * (length - tile) / (n - 1))) for i in range(n)]

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``auto`` policy: full range on the image (+ tiles when large), then the close-up pass.

        Returns:
            boxes ``(M, 4)``, keypoints ``(M, 6, 2)`` (image px), scores ``(M,)``, highest score first.
        """
        full, short = self.detectors["full"], self.detectors["short"]
        min_score, iou = full["thresholds"]["min_score"], full["nms"]["iou_threshold"]
        parts = [self._run_detector(full, rgb, min_score)]
        tiling = self.policy["tiling"]
        threshold = int(tiling["when"].split(">")[1].split("px")[0])
        h, w = rgb.shape[:2]
        if max(h, w) > threshold:
            side, overlap, margin = tiling["tile_side"], tiling["overlap"], 2.0
            tw, th = min(side, w), min(side, h)
            for y0 in self.tile_starts(h, th, overlap):
                for x0 in self.tile_starts(w, tw, overlap):
                    b, k, s = self._run_detector(full, rgb[y0:y0 + th, x0:x0 + tw], min_score)
                    keep = np.ones(len(b), bool)
                    if x0 > 0:
                        keep &= b[:, 0] > margin
                    if y0 > 0:
                        keep &= b[:, 1] > margin
                    if x0 + tw < w:
                        keep &= b[:, 2] < tw - margin
                    if y0 + th < h:
                        keep &= b[:, 3] < th - margin
                    off = np.array([x0, y0], np.float32)
                    parts.append((b[keep] + np.tile(off, 2), k[keep] + off, s[keep]))
        boxes, kps, scores = self.weighted_nms(np.concatenate([p[0] for p in parts]),
                                               np.concatenate([p[1] for p in parts]),
                                               np.concatenate([p[2] for p in parts]), iou)
        sb, sk, ss = self.weighted_nms(*self._run_detector(short, rgb, short["thresholds"]["min_score"]),
                                       short["nms"]["iou_threshold"])
        new = [i for i in range(len(sb)) if not len(boxes) or self.iou(sb[i], boxes).max() <= iou]
        if new:
            boxes, kps, scores = np.concatenate([boxes, sb[new]]), np.concatenate([kps, sk[new]]), \
                np.concatenate([scores, ss[new]])
            order = np.argsort(-scores, kind="stable")
            boxes, kps, scores = boxes[order], kps[order], scores[order]
        return boxes, kps, scores

    # ------------------------------------------------------------------ alignment and the model
    @staticmethod
    def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        mu_s, mu_d = src.mean(0), dst.mean(0)
        sc, dc = src - mu_s, dst - mu_d
        u, d, vt = np.linalg.svd(dc.T @ sc / len(src))
        sign = np.array([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
        rot = u @ np.diag(sign) @ vt
        c = (d * sign).sum() / ((sc ** 2).sum() / len(src))
        return np.hstack([c * rot, (mu_d - c * rot @ mu_s)[:, None]])

    @staticmethod
    def _opencv(m: np.ndarray) -> np.ndarray:
        m = m.copy()
        m[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
        return m

    def align(self, rgb: np.ndarray, keypoints: np.ndarray, alignment: dict[str, Any]) -> np.ndarray:
        """The ``face_alignment`` steps: uint8 ``(size, size, 3)`` crop."""
        names = self.detectors["full"]["keypoints"]
        size = alignment["size"]
        src = keypoints[[names.index(n) for n in alignment["detector_keypoints"]]].astype(np.float64)
        m = self.umeyama(src, np.asarray(alignment["keypoints_px"], np.float64))
        s = math.sqrt(abs(np.linalg.det(m[:, :2])))
        source, warp = rgb, m
        if s < 0.5:
            h, w = rgb.shape[:2]
            inv = cv2.invertAffineTransform(m)
            corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ inv.T
            pad = 2.0 / s
            x0 = int(np.clip(np.floor(corners[:, 0].min() - pad), 0, w - 1))
            y0 = int(np.clip(np.floor(corners[:, 1].min() - pad), 0, h - 1))
            x1 = int(np.clip(np.ceil(corners[:, 0].max() + pad), x0 + 1, w))
            y1 = int(np.clip(np.ceil(corners[:, 1].max() + pad), y0 + 1, h))
            f = min(1.0, 2.0 * s)
            nw, nh = max(1, int(round((x1 - x0) * f))), max(1, int(round((y1 - y0) * f)))
            source = cv2.resize(np.ascontiguousarray(rgb[y0:y1, x0:x1]), (nw, nh), interpolation=cv2.INTER_AREA)
            fx, fy = nw / (x1 - x0), nh / (y1 - y0)
            warp = m @ np.linalg.inv(np.array([[fx, 0, -fx * x0], [0, fy, -fy * y0], [0, 0, 1]]))
        return cv2.warpAffine(np.ascontiguousarray(source), self._opencv(warp), (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)

    def model_input(self, crop: np.ndarray, entry: dict[str, Any]) -> np.ndarray:
        """uint8 crop -> the tensor the file takes (colour, normalization, quantization, layout)."""
        inp = entry["input"]
        pixels = crop if crop.ndim == 3 and crop.shape[-1] == 3 else crop.reshape(*crop.shape[:2], 1)
        if inp["colour"] == "gray" and pixels.shape[-1] == 3:  # an RGB crop: BT.601 luma, as colour_conversion says
            pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)[..., None]
        norm = inp["normalization"]
        x = pixels.astype(np.float32) * np.float32(norm["scale"]) + np.float32(norm["offset"])
        if inp["dtype"] == "int8":
            q = inp["quantization"]
            x = np.clip(np.round(x / q["scale"]) + q["zero_point"], -128, 127).astype(np.int8)
        if inp["layout"] == "NCHW":
            x = x.transpose(2, 0, 1)
        return x.reshape(inp["shape"])

    def classify(self, crop_or_input: np.ndarray, entry: dict[str, Any], prepared: bool = False) -> np.ndarray:
        """Probabilities ``(K,)`` in the entry's label order for one aligned crop (or a prepared input)."""
        x = crop_or_input if prepared else self.model_input(crop_or_input, entry)
        interp = self.interpreter(entry["file"])
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        y = interp.get_tensor(interp.get_output_details()[0]["index"]).reshape(-1)
        out = entry["output"]
        if out["dtype"] == "int8":
            q = out["quantization"]
            y = (y.astype(np.float32) - q["zero_point"]) * np.float32(q["scale"])
        y = y.astype(np.float64)
        e = np.exp(y - y.max())
        return e / e.sum()
