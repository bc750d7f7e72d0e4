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
copy(path.join(nm, "wasm-utils", "dist", "index.js"), path.join(dist, "vendor", "litertjs-wasm-utils.js"));
for (const f of fs.readdirSync(path.join(nm, "core", "wasm"))) copy(path.join(nm, "core", "wasm", f), path.join(dist, "wasm", f));
const version = JSON.parse(fs.readFileSync(path.join(nm, "core", "package.json"))).version;
fs.writeFileSync(path.join(dist, "build.json"), JSON.stringify({ litertjs: version, built: new Date().toISOString() }, null, 1));
console.log(`client/web/dist written (LiteRT.js ${version})`);
