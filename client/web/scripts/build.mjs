// `npm run build`: client/web/dist/ = the page (src/) + LiteRT.js (its ES module, the wasm-utils module it
// imports, its Wasm files) copied from node_modules, so the served page fetches nothing from a CDN.
// The model files are not copied: `faceforge serve` answers /app/assets/<file> from mobile_assets/ (only
// files the manifest names); a static host copies mobile_assets/ to dist/assets/ itself.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const dist = path.join(root, "dist");
const nm = path.join(root, "node_modules", "@litertjs");
const copy = (from, to) => { fs.mkdirSync(path.dirname(to), { recursive: true }); fs.copyFileSync(from, to); };

if (!fs.existsSync(path.join(nm, "core", "dist", "index.js"))) {
  console.error("node_modules/@litertjs/core is missing: run `npm ci` in client/web first");
  process.exit(1);
}
fs.rmSync(dist, { recursive: true, force: true });
for (const f of fs.readdirSync(path.join(root, "src"))) copy(path.join(root, "src", f), path.join(dist, f));
copy(path.join(nm, "core", "dist", "index.js"), path.join(dist, "vendor", "litertjs-core.js"));
addInt8(path.join(dist, "vendor", "litertjs-core.js"));
copy(path.join(nm, "wasm-utils", "dist", "index.js"), path.join(dist, "vendor", "litertjs-wasm-utils.js"));
for (const f of fs.readdirSync(path.join(nm, "core", "wasm"))) copy(path.join(nm, "core", "wasm", f), path.join(dist, "wasm", f));
const version = JSON.parse(fs.readFileSync(path.join(nm, "core", "package.json"))).version;
fs.writeFileSync(path.join(dist, "build.json"), JSON.stringify({ litertjs: version, built: new Date().toISOString() }, null, 1));
console.log(`client/web/dist written (LiteRT.js ${version})`);

// LiteRT.js 2.5.3's JavaScript maps tensors to typed arrays through one table, DATATYPES (src/datatypes.ts),
// which lists only float32, int32 and uint8: any model with an int8 input or output throws "Element type INT8
// is not supported." while its signatures are read (CompiledModelSignatureRunner -> makeTensorDetails ->
// getDataType), before the Wasm runtime is asked anything. The Wasm side takes int8 host tensors (the
// runtime's element type INT8 = 9 and byte widths come from the C++ tensor type), and upstream's
// src/datatypes.ts (google-ai-edge/LiteRT, e.g. commit 06a57ccd40d5; not on npm as of 2.5.3) has the int8 row. This adds that one
// row to the vendored copy, only where the table lacks it, and fails the build if the table is not found.
function addInt8(file) {
  const src = fs.readFileSync(file, "utf8");
  const table = src.match(/var DATATYPES = Object\.freeze\(\[([\s\S]*?)\]\);/);
  if (!table) { console.error(`${file}: LiteRT.js's DATATYPES table not found; cannot add int8`); process.exit(1); }
  if (/dtype: "int8"/.test(table[1])) return;  // a LiteRT.js that maps int8 itself
  const row = `,\n  {\n    dtype: "int8",\n    typedArrayConstructor: Int8Array,\n    elementType: ElementType.INT8\n  }\n`;
  const patched = table[0].replace(/\s*\]\);$/, row + "]);");
  fs.writeFileSync(file, src.replace(table[0], `${patched} // int8 row added by client/web/scripts/build.mjs`));
  console.log("LiteRT.js: int8 tensors mapped to Int8Array (scripts/build.mjs, addInt8)");
}
