// What makes two `nuxt build`s of one source differ, and what pallet does about each:
//
// - the build ID (a random UUID: OUTPUT/public/<buildAssetsDir>/builds/latest.json and
//   builds/meta/<id>.json, and the server's runtime config app.buildId): not a secret (the client
//   fetches latest.json and compares the ID with its own to learn of a new deployment), so it is
//   replaced by one made from the output itself (a hash of OUTPUT with the ID, the time and the
//   date taken out): the same source gives the same ID, another source another one.
// - the build's time (the builds' "timestamp", ms; informational, the client compares IDs) and
//   Nitro's build date (OUTPUT/nitro.json "date", for deployment tools): SOURCE_DATE_EPOCH's
//   (the reproducible-builds convention), else pallet's 1980-01-01T00:00:01Z.
// - Nitro's public assets manifest in the server (`const assets = {...}`: each file's mtime, its
//   Last-Modified; in the order the files were found, which varies): the mtimes the same date,
//   the entries sorted, and each etag and size made again from the file (the manifests' changed).
// - the server's styles module (`const styles = {...}` and `inlinedCSS`: the components' styles,
//   in the order Vite's parallel work finished them, which varies with the machine's load): the
//   entries sorted (a lookup by component; its source map has no mappings). First, since the
//   build ID is made from the output.
//
//   node nuxtbuild.js fix OUTPUT   (.output) prints the old and the new build ID
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const { walk, hashWithout, replaceAll } = require("./buildid");

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

//: The builds/latest.json Nuxt writes under OUTPUT/public (in buildAssetsDir: /_nuxt/ by default).
function latest(output) {
  const found = walk([path.join(output, "public")])
    .filter(([r, e]) => e.isFile() && r.endsWith("/builds/latest.json"));
  return found.length === 1 ? found[0][0] : null;
}

const ASSETS = "const assets = {";

//: Each server chunk with Nitro's public assets manifest (JSON.stringify(assets, null, 2)) and
//: where the manifest is in it.
function manifests(output) {
  const found = [];
  for (const [file, e] of walk([path.join(output, "server")])) {
    if (!e.isFile() || !file.endsWith(".mjs")) continue;
    const text = fs.readFileSync(file, "utf8");
    const start = text.indexOf(ASSETS);
    const end = start < 0 ? -1 : text.indexOf("\n}", start);
    if (end >= 0) found.push([file, text, start + ASSETS.length - 1, end + 2]);
  }
  return found;
}

//: The manifests sorted, their mtimes DATE; with FILES, each etag and size (Nitro's: size in hex,
//: sha1 in base64) made from the file, else left out (they hold the random ID's bytes).
function settle(output, date, files) {
  for (const [file, text, from, to] of manifests(output)) {
    let assets;
    try { assets = JSON.parse(text.slice(from, to)); } catch { continue; }
    const sorted = {};
    for (const key of Object.keys(assets).sort()) {
      const a = { ...assets[key], mtime: date };
      const served = typeof a.path === "string" ? path.resolve(output, "server", a.path) : "";
      if (!files) { a.etag = ""; a.size = 0; }
      else if (served && fs.existsSync(served) && !a.encoding) {
        const data = fs.readFileSync(served);
        a.size = data.length;
        a.etag = `"${data.length.toString(16)}-${crypto.createHash("sha1").update(data).digest("base64").replace(/=+$/, "")}"`;
      }
      sorted[key] = a;
    }
    fs.writeFileSync(file, text.slice(0, from) + JSON.stringify(sorted, null, 2) + text.slice(to));
  }
}

const STYLES = "const styles = {\n";
//: One entry a line, as Nitro writes the styles object: `  "COMPONENT": () => import(...)...`.
const STYLE_ENTRY = /^ {2}"(?:[^"\\]|\\.)*": /;

//: The styles object's entries and inlinedCSS's keys in each server chunk sorted.
function settleStyles(output) {
  for (const [file, e] of walk([path.join(output, "server")])) {
    if (!e.isFile() || !file.endsWith(".mjs")) continue;
    const text = fs.readFileSync(file, "utf8");
    const start = text.indexOf(STYLES);
    const from = start + STYLES.length;
    const to = start < 0 ? -1 : text.indexOf("\n};", from);
    if (to < 0) continue;
    const entries = text.slice(from, to).split("\n").map((l) => l.replace(/,$/, ""));
    if (!entries.every((l) => STYLE_ENTRY.test(l))) continue;
    let out = text.slice(0, from) + entries.sort().join(",\n") + text.slice(to);
    out = out.replace(/^const inlinedCSS = (\{.*\});$/m, (line, json) => {
      let css;
      try { css = JSON.parse(json); } catch { return line; }
      return `const inlinedCSS = ${JSON.stringify(Object.fromEntries(Object.keys(css).sort().map((k) => [k, css[k]])))};`;
    });
    if (out !== text) fs.writeFileSync(file, out);
  }
}

function fix(output) {
  if (fs.existsSync(path.join(output, "server"))) settleStyles(output);
  const manifest = fs.existsSync(path.join(output, "public")) ? latest(output) : null;
  if (!manifest) return 1;
  const { id, timestamp } = JSON.parse(fs.readFileSync(manifest, "utf8"));
  if (!UUID.test(id)) return 1;
  const epoch = Number(process.env.SOURCE_DATE_EPOCH || 315532801);
  const olds = [id], news = [null];
  if (Number.isInteger(timestamp)) { olds.push(String(timestamp)); news.push(String(epoch * 1000)); }
  const nitro = path.join(output, "nitro.json");
  const date = fs.existsSync(nitro) ? JSON.parse(fs.readFileSync(nitro, "utf8")).date : null;
  if (typeof date === "string" && date) { olds.push(date); news.push(new Date(epoch * 1000).toISOString()); }
  const when = new Date(epoch * 1000).toISOString();
  settle(output, when, false);
  const entries = walk([output]);
  const h = hashWithout(entries, olds).toString("hex");
  // A UUID (version 4's layout, as Nuxt's) from the hash.
  news[0] = `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${"89ab"[parseInt(h[16], 16) & 3]}${h.slice(17, 20)}-${h.slice(20, 32)}`;
  replaceAll(entries, olds, news);
  settle(output, when, true);
  console.log(`${id} ${news[0]}`);
  return 0;
}

const [cmd, output] = process.argv.slice(2);
if (cmd !== "fix" || !output) {
  console.error("usage: nuxtbuild.js fix OUTPUT");
  process.exit(2);
}
process.exit(fix(output));
