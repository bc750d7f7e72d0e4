// The on-device emotion pipeline, written from mobile_assets/manifest.json alone.
//
// Pure functions (no DOM, no runtime): images are {data: Uint8Array RGB (or gray), width, height,
// channels}; the model runner is injected, so Node can check this module against OpenCV/numpy and the
// page runs it with LiteRT.js. It is the same algorithm as tests/app_reader.py (the Python reader of the
// manifest): letterbox -> BlazeFace -> decode against SSD anchors (MediaPipe SsdAnchorsCalculator) in
// float32 -> weighted NMS (MediaPipe NonMaxSuppressionCalculator WEIGHTED) -> tiles and the close-up
// pass of `detector_policy` -> Umeyama (1991) similarity onto the template -> OpenCV-exact resize /
// warpAffine / RGB2GRAY on uint8 -> normalization, int8 quantization -> dequantization -> softmax.
//
// Every number comes from the manifest; the few that the manifest states inside a sentence (the tiling
// threshold, the drop margin, the area-shrink rule) are parsed out of that sentence, and parsing fails
// loudly if the sentence changes. The OpenCV arithmetic (float32 bilinear warp, float32 INTER_AREA
// tables, 15-bit fixed-point luma) follows OpenCV's imgproc sources
// (resize.cpp, warp_kernels.simd.hpp, color_rgb.simd.hpp of OpenCV 5.0, the version faceforge runs); those are
// what the manifest means by "OpenCV INTER_AREA / INTER_LINEAR", "warpAffine" and "COLOR_RGB2GRAY"; each is
// checked value for value against cv2 5.0 by tests/test_web_pipeline.py.

const f32 = Math.fround;

/** Round half to even (Python's round, numpy's np.round, OpenCV's cvRound). */
export function roundHalfEven(x) {
  const r = Math.round(x);
  return (Math.abs(x % 1) === 0.5 && r % 2 !== 0) ? r - 1 : r;
}

/** A number read out of a manifest sentence with `re` (first group); throws if the sentence changed. */
export function numberIn(text, re, what) {
  const m = re.exec(String(text));
  if (!m) throw new Error(`manifest: cannot read ${what} from "${text}"`);
  return Number(m[1]);
}

// ------------------------------------------------------------------------------------------ images
export function makeImage(width, height, channels = 3, data = null) {
  return { width, height, channels, data: data || new Uint8Array(width * height * channels) };
}

/** RGBA bytes (canvas ImageData) -> RGB image, alpha ignored. */
export function rgbaToRgb(rgba, width, height) {
  const out = makeImage(width, height, 3);
  for (let i = 0, j = 0; i < width * height; i++, j += 4) {
    out.data[3 * i] = rgba[j]; out.data[3 * i + 1] = rgba[j + 1]; out.data[3 * i + 2] = rgba[j + 2];
  }
  return out;
}

export function cropImage(img, x0, y0, x1, y1) {
  const c = img.channels, out = makeImage(x1 - x0, y1 - y0, c);
  for (let y = y0; y < y1; y++) {
    out.data.set(img.data.subarray((y * img.width + x0) * c, (y * img.width + x1) * c), (y - y0) * (x1 - x0) * c);
  }
  return out;
}

/** OpenCV COLOR_RGB2GRAY on uint8: luma weights (the manifest's `colour_conversion`, e.g. BT.601 0.299,
 * 0.587, 0.114) in OpenCV's 15-bit fixed point: r = round(wr 2^15), g = round(wg 2^15), b = 2^15 - r - g,
 * Y = (r R + g G + b B + 2^14) >> 15 (9798, 19235, 3735 for BT.601). */
export function rgbToGray(img, weights) {
  const out = makeImage(img.width, img.height, 1);
  const [wr, wg] = weights, r15 = Math.round(wr * 32768), g15 = Math.round(wg * 32768), b15 = 32768 - r15 - g15;
  for (let i = 0; i < img.width * img.height; i++) {
    const r = img.data[3 * i], g = img.data[3 * i + 1], b = img.data[3 * i + 2];
    out.data[i] = (r * r15 + g * g15 + b * b15 + 16384) >> 15;
  }
  return out;
}

function areaTab(ssize, dsize, scale) { // OpenCV computeResizeAreaTab (float32 alphas)
  const tab = [];
  for (let dx = 0; dx < dsize; dx++) {
    const fsx1 = dx * scale, fsx2 = fsx1 + scale, cell = Math.min(scale, ssize - fsx1);
    let sx1 = Math.ceil(fsx1), sx2 = Math.floor(fsx2);
    sx2 = Math.min(sx2, ssize - 1); sx1 = Math.min(sx1, sx2);
    if (sx1 - fsx1 > 1e-3) tab.push([dx, sx1 - 1, f32((sx1 - fsx1) / cell)]);
    for (let sx = sx1; sx < sx2; sx++) tab.push([dx, sx, f32(1.0 / cell)]);
    if (fsx2 - sx2 > 1e-3) tab.push([dx, sx2, f32(Math.min(Math.min(fsx2 - sx2, 1), cell) / cell)]);
  }
  return tab;
}

/** OpenCV resize(..., INTER_AREA) for a shrink (uint8). Integer factors use OpenCV's fast path. */
export function resizeArea(img, nw, nh) {
  const { width: w, height: h, channels: cn } = img, src = img.data, out = makeImage(nw, nh, cn);
  const sx = w / nw, sy = h / nh, isx = Math.round(sx), isy = Math.round(sy);
  if (sx < 1 || sy < 1) throw new Error("resizeArea: only shrinking is implemented");
  if (Math.abs(sx - isx) < Number.EPSILON && Math.abs(sy - isy) < Number.EPSILON) {
    const area = isx * isy, inv = f32(1 / area);
    for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) for (let c = 0; c < cn; c++) {
      if (isx === 2 && isy === 2) { // ResizeAreaFastVec: (a + b + c + d + 2) >> 2
        const p = (yy, xx) => src[(yy * w + xx) * cn + c];
        out.data[(y * nw + x) * cn + c] = (p(2 * y, 2 * x) + p(2 * y, 2 * x + 1) + p(2 * y + 1, 2 * x) + p(2 * y + 1, 2 * x + 1) + 2) >> 2;
        continue;
      }
      let sum = 0, count = 0;
      for (let dy = 0; dy < isy; dy++) for (let dx = 0; dx < isx; dx++) {
        const yy = y * isy + dy, xx = x * isx + dx;
        if (yy < h && xx < w) { sum += src[(yy * w + xx) * cn + c]; count++; }
      }
      const v = count === area ? f32(sum * inv) : f32(sum / count);
      out.data[(y * nw + x) * cn + c] = Math.max(0, Math.min(255, roundHalfEven(v)));
    }
    return out;
  }
  const xtab = areaTab(w, nw, sx), ytab = areaTab(h, nh, sy);
  const W = nw * cn, buf = new Float32Array(W), sum = new Float32Array(W);
  const flush = (dy) => { for (let i = 0; i < W; i++) out.data[dy * W + i] = Math.max(0, Math.min(255, roundHalfEven(sum[i]))); };
  let prev = ytab[0][0];
  for (const [dy, syy, beta] of ytab) {
    buf.fill(0);
    const row = syy * w * cn;
    for (const [dxn, sxn, alpha] of xtab) for (let c = 0; c < cn; c++) {
      buf[dxn * cn + c] = f32(buf[dxn * cn + c] + f32(src[row + sxn * cn + c] * alpha));
    }
    if (dy !== prev) { flush(prev); for (let i = 0; i < W; i++) sum[i] = f32(beta * buf[i]); prev = dy; }
    else for (let i = 0; i < W; i++) sum[i] = f32(sum[i] + f32(beta * buf[i]));
  }
  flush(prev);
  return out;
}

/** OpenCV resize(..., INTER_LINEAR) for uint8 (resize.cpp): float32 source positions (d + 0.5) * scale - 0.5,
 * 11-bit weights round(2048 (1 - f)), round(2048 f); columns clamped to the image (weight 2048 on the edge),
 * rows not (an edge row's weights stay fractional, its neighbour index is clamped); vertical pass as OpenCV's
 * SIMD kernel: ((b0 (r0 >> 4)) >> 16) + ((b1 (r1 >> 4)) >> 16) + 2) >> 2. */
export function resizeLinear(img, nw, nh) {
  const { width: w, height: h, channels: cn } = img, src = img.data, out = makeImage(nw, nh, cn);
  const coefs = (ssize, dsize, clampEdge) => {
    const scale = ssize / dsize, idx = new Int32Array(dsize), a = new Int32Array(2 * dsize);
    for (let d = 0; d < dsize; d++) {
      let f = f32((d + 0.5) * scale - 0.5);
      let s = Math.floor(f); f = f32(f - s);
      if (clampEdge && s < 0) { f = 0; s = 0; }
      if (clampEdge && s >= ssize - 1) { f = 0; s = ssize - 1; }
      idx[d] = s; a[2 * d] = roundHalfEven(f32(f32(1 - f) * 2048)); a[2 * d + 1] = roundHalfEven(f32(f * 2048));
    }
    return [idx, a];
  };
  const [xi, xa] = coefs(w, nw, true), [yi, ya] = coefs(h, nh, false);
  const cl = (v, hi) => (v < 0 ? 0 : v > hi ? hi : v);
  const hrow = (y) => {
    const r = new Int32Array(nw * cn);
    for (let x = 0; x < nw; x++) for (let c = 0; c < cn; c++) {
      const s0 = xi[x], s1 = Math.min(s0 + 1, w - 1);
      r[x * cn + c] = src[(y * w + s0) * cn + c] * xa[2 * x] + src[(y * w + s1) * cn + c] * xa[2 * x + 1];
    }
    return r;
  };
  for (let y = 0; y < nh; y++) {
    const r0 = hrow(cl(yi[y], h - 1)), r1 = hrow(cl(yi[y] + 1, h - 1)), b0 = ya[2 * y], b1 = ya[2 * y + 1];
    for (let i = 0; i < nw * cn; i++) {
      const v = (Math.floor(b0 * (r0[i] >> 4) / 65536) + Math.floor(b1 * (r1[i] >> 4) / 65536) + 2) >> 2;
      out.data[y * nw * cn + i] = Math.max(0, Math.min(255, v));
    }
  }
  return out;
}

/** OpenCV invertAffineTransform of a 2x3 matrix (row-major array of 6). */
export function invertAffine(m) {
  let d = m[0] * m[4] - m[1] * m[3]; d = d !== 0 ? 1 / d : 0;
  const a11 = m[4] * d, a22 = m[0] * d, a12 = -m[1] * d, a21 = -m[3] * d;
  return [a11, a12, -a11 * m[2] - a12 * m[5], a21, a22, -a21 * m[2] - a22 * m[5]];
}

/** OpenCV warpAffine(src, m, (size, size), INTER_LINEAR, BORDER_REPLICATE) on uint8, as OpenCV 5's
 * warp kernels compute it (warp_kernels.simd.hpp, warp_common.scalar.hpp): the inverse matrix in float32,
 * source x = fma(M0, x, float32(M1 y + M2)), bilinear lerps in float32, rounded half to even; neighbours
 * outside the image are clamped (replicated). */
export function warpAffine(img, m, size) {
  const { width: w, height: h, channels: cn } = img, src = img.data, out = makeImage(size, size, cn);
  const M = invertAffine(m).map(f32);
  const cl = (v, hi) => (v < 0 ? 0 : v > hi ? hi : v);
  for (let y = 0; y < size; y++) {
    const mx = f32(f32(M[1] * y) + M[2]), my = f32(f32(M[4] * y) + M[5]);
    for (let x = 0; x < size; x++) {
      let sx = f32(M[0] * x + mx), sy = f32(M[3] * x + my);
      const ix = Math.floor(sx), iy = Math.floor(sy);
      sx = f32(sx - ix); sy = f32(sy - iy);
      const x0 = cl(ix, w - 1), x1 = cl(ix + 1, w - 1), y0 = cl(iy, h - 1), y1 = cl(iy + 1, h - 1);
      for (let c = 0; c < cn; c++) {
        const p00 = src[(y0 * w + x0) * cn + c], p01 = src[(y0 * w + x1) * cn + c];
        const p10 = src[(y1 * w + x0) * cn + c], p11 = src[(y1 * w + x1) * cn + c];
        const v0 = f32(p00 + f32(sx * (p01 - p00))), v1 = f32(p10 + f32(sx * (p11 - p10)));
        const v = f32(v0 + f32(sy * f32(v1 - v0)));
        out.data[(y * size + x) * cn + c] = Math.max(0, Math.min(255, roundHalfEven(v)));
      }
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------ detection
/** (N, 2) float32 anchor centres from a detector entry's `anchors` record (fixed anchor size). */
export function anchors(spec) {
  const a = spec.anchors;
  if (!a.fixed_anchor_size) throw new Error("manifest: only fixed-size anchors are implemented");
  const perLayer = a.aspect_ratios.length + (a.interpolated_scale_aspect_ratio > 0 ? 1 : 0);
  const out = [];
  let layer = 0;
  while (layer < a.num_layers) {
    let last = layer;
    while (last < a.num_layers && a.strides[last] === a.strides[layer]) last++;
    const perCell = perLayer * (last - layer), grid = Math.ceil(a.input_size / a.strides[layer]);
    for (let y = 0; y < grid; y++) for (let x = 0; x < grid; x++) for (let k = 0; k < perCell; k++) {
      out.push([f32((x + a.anchor_offset_x) / grid), f32((y + a.anchor_offset_y) / grid)]);
    }
    layer = last;
  }
  if (out.length !== a.count) throw new Error(`manifest: ${out.length} anchors made, the entry says ${a.count}`);
  return out;
}

/** The letterboxed float32 NHWC input of a detector entry, and how to map back. */
export function letterbox(img, spec) {
  const side = spec.input.shape[1], { width: w, height: h } = img, scale = side / Math.max(h, w);
  const nw = Math.min(side, Math.max(1, roundHalfEven(w * scale))), nh = Math.min(side, Math.max(1, roundHalfEven(h * scale)));
  const resized = scale < 1 ? resizeArea(img, nw, nh) : resizeLinear(img, nw, nh);
  const padX = Math.floor((side - nw) / 2), padY = Math.floor((side - nh) / 2);
  // "x = pixel / 127.5 - 1 in float32": the divisor and offset are the entry's 1 / scale and offset
  const div = f32(1 / spec.input.scale), off = spec.input.offset;
  const cn = spec.input.shape[3];
  if (spec.input.layout !== "NHWC" || cn !== img.channels) throw new Error(`manifest: detector input ${spec.input.layout} with ${cn} channels is not implemented`);
  const x = new Float32Array(side * side * cn).fill(f32(f32(0 / div) + off));
  for (let yy = 0; yy < nh; yy++) for (let xx = 0; xx < nw; xx++) for (let c = 0; c < cn; c++) {
    x[((yy + padY) * side + xx + padX) * cn + c] = f32(f32(resized.data[(yy * nw + xx) * cn + c] / div) + off);
  }
  return { input: x, side, padX, padY, scaleX: f32(nw / w), scaleY: f32(nh / h) };
}

/** Decode raw detector outputs (float32 arrays) into image-pixel faces with score >= minScore. */
export function decode(spec, lb, regressors, logits, anc, minScore) {
  const clip = spec.decoding.score_clip, s = f32(lb.side), faces = [];
  const per = spec.outputs.regressors.shape[2], nk = (per - 4) / 2; // 4 box values, then (x, y) per keypoint
  const ix = (v) => f32(f32(f32(v * s) - lb.padX) / lb.scaleX), iy = (v) => f32(f32(f32(v * s) - lb.padY) / lb.scaleY);
  for (let i = 0; i < anc.length; i++) {
    const l = Math.max(-clip, Math.min(clip, logits[i]));
    const score = f32(1 / (1 + Math.exp(-l)));
    if (!(score >= minScore)) continue;
    const r = regressors.subarray(i * per, i * per + per), [ax, ay] = anc[i];
    const cx = f32(f32(r[0] / s) + ax), cy = f32(f32(r[1] / s) + ay), bw = f32(r[2] / s), bh = f32(r[3] / s);
    const box = [ix(f32(cx - f32(bw / 2))), iy(f32(cy - f32(bh / 2))), ix(f32(cx + f32(bw / 2))), iy(f32(cy + f32(bh / 2)))];
    const kps = [];
    for (let k = 0; k < nk; k++) kps.push([ix(f32(f32(r[4 + 2 * k] / s) + ax)), iy(f32(f32(r[5 + 2 * k] / s) + ay))]);
    faces.push({ box, kps, score });
  }
  return faces;
}

export function iou(a, b) { // float32, as the reader's numpy arrays
  const ix = Math.max(f32(Math.min(a[2], b[2]) - Math.max(a[0], b[0])), 0);
  const iy = Math.max(f32(Math.min(a[3], b[3]) - Math.max(a[1], b[1])), 0);
  const inter = f32(ix * iy);
  const union = f32(f32(f32(f32(a[2] - a[0]) * f32(a[3] - a[1])) + f32(f32(b[2] - b[0]) * f32(b[3] - b[1]))) - inter);
  return union > 0 ? f32(inter / union) : 0;
}

function pairwiseSum(a, lo, n) { // numpy's float32 pairwise summation (8 accumulators, blocks of 128)
  if (n < 8) { let r = 0; for (let i = 0; i < n; i++) r = f32(r + a[lo + i]); return r; }
  if (n <= 128) {
    const r = a.slice(lo, lo + 8).map(f32);
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] = f32(r[j] + a[lo + i + j]);
    let res = f32(f32(f32(r[0] + r[1]) + f32(r[2] + r[3])) + f32(f32(r[4] + r[5]) + f32(r[6] + r[7])));
    for (; i < n; i++) res = f32(res + a[lo + i]);
    return res;
  }
  let n2 = Math.floor(n / 2); n2 -= n2 % 8;
  return f32(pairwiseSum(a, lo, n2) + pairwiseSum(a, lo + n2, n - n2));
}

/** MediaPipe WEIGHTED non-maximum suppression: clusters by IoU > threshold around the best score;
 * box and keypoints = score-weighted mean (float32), score = the cluster's best. */
export function weightedNms(faces, threshold) {
  const t = f32(threshold);
  let order = faces.map((_, i) => i).sort((i, j) => faces[j].score - faces[i].score);
  const out = [];
  while (order.length) {
    const top = order[0], cluster = [], rest = [];
    for (const i of order) ((i === top || iou(faces[top].box, faces[i].box) > t) ? cluster : rest).push(i);
    order = rest;
    const total = pairwiseSum(cluster.map((i) => faces[i].score), 0, cluster.length);
    const box = [0, 0, 0, 0], kps = faces[top].kps.map(() => [0, 0]);
    for (const i of cluster) {
      const wt = f32(faces[i].score / total);
      for (let k = 0; k < 4; k++) box[k] = f32(box[k] + f32(faces[i].box[k] * wt));
      faces[i].kps.forEach((p, k) => { kps[k][0] = f32(kps[k][0] + f32(p[0] * wt)); kps[k][1] = f32(kps[k][1] + f32(p[1] * wt)); });
    }
    out.push({ box, kps, score: faces[top].score });
  }
  return out;
}

/** Tile starts along one axis, as `detector_policy.tiling.tile_starts` states them. */
export function tileStarts(length, tile, overlap) {
  if (length <= tile) return [0];
  const n = Math.ceil((length - tile) / (tile * (1 - overlap))) + 1, out = [];
  for (let i = 0; i < n; i++) out.push(roundHalfEven(i * (length - tile) / (n - 1)));
  return out;
}

/**
 * The manifest's `auto` detector policy on an RGB image.
 * @param manifest the parsed manifest.json
 * @param img RGB image
 * @param run async (detectorEntry, Float32Array NHWC input) -> {regressors: Float32Array (N * per-anchor values), classificators: Float32Array (N)}
 * @returns faces {box [x0, y0, x1, y1] px, kps [[x, y] x 6] px, score}, best score first
 */
export async function detect(manifest, img, run) {
  const byModel = Object.fromEntries(manifest.detectors.map((d) => [d.model, d]));
  const full = byModel.full, short = byModel.short, policy = manifest.detector_policy;
  const pass = async (spec, image, minScore) => {
    const lb = letterbox(image, spec);
    const out = await run(spec, lb.input);
    return decode(spec, lb, out.regressors, out.classificators, anchors(spec), minScore);
  };
  const minScore = full.thresholds.min_score, thr = full.nms.iou_threshold;
  let found = await pass(full, img, minScore);
  const tiling = policy.tiling;
  const when = numberIn(tiling.when, />\s*(\d+)\s*px/, "the tiling threshold");
  const margin = numberIn(tiling.drop_rule, /xmin\s*>\s*([\d.]+)/, "the tile drop margin");
  const { width: w, height: h } = img;
  if (Math.max(w, h) > when) {
    const tw = Math.min(tiling.tile_side, w), th = Math.min(tiling.tile_side, h);
    for (const y0 of tileStarts(h, th, tiling.overlap)) for (const x0 of tileStarts(w, tw, tiling.overlap)) {
      for (const f of await pass(full, cropImage(img, x0, y0, x0 + tw, y0 + th), minScore)) {
        const b = f.box;
        if ((x0 > 0 && !(b[0] > margin)) || (y0 > 0 && !(b[1] > margin)) ||
            (x0 + tw < w && !(b[2] < tw - margin)) || (y0 + th < h && !(b[3] < th - margin))) continue;
        found.push({ box: [f32(b[0] + x0), f32(b[1] + y0), f32(b[2] + x0), f32(b[3] + y0)],
                     kps: f.kps.map(([x, y]) => [f32(x + x0), f32(y + y0)]), score: f.score });
      }
    }
  }
  let faces = weightedNms(found, thr);
  const close = weightedNms(await pass(short, img, short.thresholds.min_score), short.nms.iou_threshold);
  const added = close.filter((c) => !faces.length || Math.max(...faces.map((f) => iou(c.box, f.box))) <= f32(thr));
  if (added.length) faces = faces.concat(added).map((f, i) => [f, i]).sort((a, b) => (b[0].score - a[0].score) || (a[1] - b[1])).map((p) => p[0]);
  return faces;
}

// ------------------------------------------------------------------------------------------ alignment
/** Least-squares similarity (Umeyama 1991, proper rotation) mapping src points onto dst: 2x3 row-major. */
export function similarity(src, dst) {
  const n = src.length, ms = [0, 0], md = [0, 0];
  for (let i = 0; i < n; i++) { ms[0] += src[i][0] / n; ms[1] += src[i][1] / n; md[0] += dst[i][0] / n; md[1] += dst[i][1] / n; }
  let a = 0, b = 0, v = 0;
  for (let i = 0; i < n; i++) {
    const sx = src[i][0] - ms[0], sy = src[i][1] - ms[1], dx = dst[i][0] - md[0], dy = dst[i][1] - md[1];
    a += sx * dx + sy * dy; b += sx * dy - sy * dx; v += sx * sx + sy * sy;
  }
  a /= v; b /= v;
  return [a, -b, md[0] - (a * ms[0] - b * ms[1]), b, a, md[1] - (b * ms[0] + a * ms[1])];
}

/** The entry's `face_alignment` steps: uint8 (size, size, 3) crop of the face with detector keypoints `kps`. */
export function align(img, kps, alignment, keypointNames) {
  const size = alignment.size;
  const src = alignment.detector_keypoints.map((name) => {
    const i = keypointNames.indexOf(name);
    if (i < 0) throw new Error(`manifest: detector has no keypoint ${name}`);
    return kps[i];
  });
  const m = similarity(src, alignment.keypoints_px);
  const s = Math.sqrt(Math.abs(m[0] * m[4] - m[1] * m[3]));
  const sh = alignment.area_shrink;
  const below = numberIn(sh.when, /s\s*<\s*([\d.]+)/, "the area-shrink threshold");
  const padNum = numberIn(sh.region, /pad\s*=\s*([\d.]+)\s*\/\s*s/, "the area-shrink pad");
  const fMul = numberIn(sh.factor, /min\(1,\s*([\d.]+)\s*s\)/, "the area-shrink factor");
  let source = img, warp = m;
  if (s < below) {
    const { width: w, height: h } = img, inv = invertAffine(m);
    const cs = [[0, 0], [size, 0], [0, size], [size, size]].map(([x, y]) => [inv[0] * x + inv[1] * y + inv[2], inv[3] * x + inv[4] * y + inv[5]]);
    const pad = padNum / s, xs = cs.map((c) => c[0]), ys = cs.map((c) => c[1]);
    const clip = (v, lo, hi) => Math.min(Math.max(v, lo), hi);
    const x0 = clip(Math.floor(Math.min(...xs) - pad), 0, w - 1), y0 = clip(Math.floor(Math.min(...ys) - pad), 0, h - 1);
    const x1 = clip(Math.ceil(Math.max(...xs) + pad), x0 + 1, w), y1 = clip(Math.ceil(Math.max(...ys) + pad), y0 + 1, h);
    const f = Math.min(1, fMul * s);
    const nw = Math.max(1, roundHalfEven((x1 - x0) * f)), nh = Math.max(1, roundHalfEven((y1 - y0) * f));
    source = resizeArea(cropImage(img, x0, y0, x1, y1), nw, nh);
    const fx = nw / (x1 - x0), fy = nh / (y1 - y0);
    // M_small = M @ inverse([[fx, 0, -fx x0], [0, fy, -fy y0], [0, 0, 1]])
    warp = [m[0] / fx, m[1] / fy, m[0] * x0 + m[1] * y0 + m[2], m[3] / fx, m[4] / fy, m[3] * x0 + m[4] * y0 + m[5]];
  }
  // OpenCV pixel centres (alignment.opencv_matrix): t += A @ (0.5, 0.5) - (0.5, 0.5)
  const cv = [warp[0], warp[1], warp[2] + (warp[0] * 0.5 + warp[1] * 0.5) - 0.5, warp[3], warp[4], warp[5] + (warp[3] * 0.5 + warp[4] * 0.5) - 0.5];
  return warpAffine(source, cv, size);
}

// ------------------------------------------------------------------------------------------ the model
/** The R, G, B weights of a `colour_conversion` sentence such as "Y = 0.299 R + 0.587 G + 0.114 B". */
export function lumaWeights(text) {
  return ["R", "G", "B"].map((c) => numberIn(text, new RegExp(`([\\d.]+)\\s*${c}\\b`), `the ${c} luma weight`));
}
/** uint8 crop -> the typed array the entry's file takes (colour, normalization, quantization, layout). */
export function modelInput(crop, entry) {
  const inp = entry.input;
  let px = crop;
  if (inp.colour === "gray" && crop.channels === 3) px = rgbToGray(crop, lumaWeights(inp.colour_conversion));
  const c = px.channels, hw = px.width * px.height, norm = inp.normalization;
  const scale = f32(norm.scale), offset = f32(norm.offset);
  const x = new Float32Array(hw * c);
  for (let i = 0; i < hw * c; i++) x[i] = f32(f32(px.data[i] * scale) + offset);
  let out = x;
  if (inp.dtype === "int8") {
    const q = inp.quantization, qs = f32(q.scale);
    out = new Int8Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = Math.max(-128, Math.min(127, roundHalfEven(f32(x[i] / qs)) + q.zero_point));
  }
  if (inp.layout === "NCHW" && c > 1) {
    const t = new out.constructor(out.length);
    for (let i = 0; i < hw; i++) for (let k = 0; k < c; k++) t[k * hw + i] = out[i * c + k];
    out = t;
  }
  return out;
}

/** Raw output (Int8Array or Float32Array) -> probabilities (float64) in the entry's label order. */
export function probabilities(raw, entry) {
  const out = entry.output;
  let y = Array.from(raw);
  if (out.dtype === "int8") { const qs = f32(out.quantization.scale); y = y.map((q) => f32(f32(q - out.quantization.zero_point) * qs)); }
  if (out.values === "logits") {
    const mx = Math.max(...y), e = y.map((v) => Math.exp(v - mx)), sum = e.reduce((p, q) => p + q, 0);
    return e.map((v) => v / sum);
  }
  return y;
}

/** Detect, align and classify every face: [{box, kps, score, probabilities, label}]. */
export async function emotion(manifest, entry, img, runDetector, runModel) {
  const full = manifest.detectors.find((d) => d.model === "full");
  const faces = await detect(manifest, img, runDetector);
  const labels = entry.output.labels;
  for (const f of faces) {
    const crop = align(img, f.kps, entry.face_alignment, full.keypoints);
    f.probabilities = probabilities(await runModel(entry, modelInput(crop, entry)), entry);
    f.label = labels[f.probabilities.indexOf(Math.max(...f.probabilities))];
  }
  return faces;
}
