// LiteRT.js (the `@litertjs/core` npm package, Wasm XNNPACK on the CPU) running mobile_assets/ files.
// The Wasm files come from this page's own folder (wasm/, copied from node_modules by `npm run build`).
// Threads: LiteRT.js's threaded build needs cross-origin isolation (SharedArrayBuffer) and relaxed SIMD;
// without them it loads the single-threaded build.
import { loadLiteRt, loadAndCompile, supportsFeature, Tensor } from "@litertjs/core";

const DTYPES = { float32: Float32Array, int32: Int32Array, uint8: Uint8Array, int8: Int8Array };

/** Load the runtime once: {variant, threads, dtypes} (threads = the CPU threads the models are compiled with;
 * dtypes = the manifest dtypes LiteRT.js's Tensor carries here, see probeDtypes). */
export async function initRuntime(wasmDir, wantThreads) {
  if (typeof WebAssembly !== "object") throw new Error("this browser has no WebAssembly");
  const relaxed = await supportsFeature("relaxedSimd");
  const threaded = Boolean(globalThis.crossOriginIsolated && relaxed && wantThreads > 1 && await supportsFeature("threads"));
  await loadLiteRt(wasmDir, threaded ? { threads: true } : {});
  return { variant: threaded ? "threaded" : relaxed ? "relaxed-simd" : "compat", threads: threaded ? wantThreads : 1,
    dtypes: probeDtypes() };
}

/** The dtypes a LiteRT.js Tensor can be made of, tried one by one: @litertjs/core 2.5.3 as published maps only
 * float32, int32 and uint8 ("Typed array Int8Array is not supported."); the copy `npm run build` vendors adds
 * int8 (scripts/build.mjs, addInt8). A model whose tensors need a missing one is not used on the device. */
function probeDtypes() {
  const ok = new Set();
  for (const [dtype, Ctor] of Object.entries(DTYPES)) {
    try { new Tensor(new Ctor(1), [1]).delete(); ok.add(dtype); } catch { /* not mapped by this LiteRT.js */ }
  }
  return ok;
}

/** A compiled .tflite file: run(typedArray, shape) -> [typed arrays of the outputs, in signature order]. */
export async function loadModel(url, threads) {
  const bytes = new Uint8Array(await (await fetchOk(url)).arrayBuffer());
  const model = await loadAndCompile(bytes, { accelerator: "wasm", cpuOptions: { numThreads: threads } });
  const inputs = model.getInputDetails(), outputs = model.getOutputDetails();
  return {
    inputs, outputs,
    async run(data, shape) {
      const t = new Tensor(data, shape);
      try {
        const res = await model.run([t]);
        const arrays = res.map((r) => r.toTypedArray().slice());
        res.forEach((r) => r.delete());
        return arrays;
      } finally { t.delete(); }
    },
  };
}

export async function fetchOk(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r;
}

/** The typed array of a manifest dtype (float32, int32, uint8, int8). */
export function typedArray(dtype, length) {
  if (!(dtype in DTYPES)) throw new Error(`no typed array for dtype ${dtype}`);
  return new DTYPES[dtype](length);
}
