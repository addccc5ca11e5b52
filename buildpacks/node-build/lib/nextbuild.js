// What makes two `next build`s of one source differ, and what pallet does about each:
//
// - the build ID (.next/BUILD_ID: a random nanoid, also in paths .next/static/<id>/ and in the
//   manifests and pages): not a secret, so it is replaced after the build by one derived from
//   the output itself (a hash of .next with the ID taken out): the same source gives the same ID.
// - the Server Actions encryption key (.next/server/server-reference-manifest.json; the actions'
//   IDs in the chunks are hashed with it) and the preview/draft-mode keys (prerender-manifest.json:
//   previewModeId is the draft-mode cookie's value): secrets. Never derived from the source (anyone
//   with the source could forge them). Given NEXT_SERVER_ACTIONS_ENCRYPTION_KEY in the build's
//   environment (Next.js reads it; `--env`, a secret of the user's), the preview keys are derived
//   from it (HMAC-SHA256) and seeded where Next.js looks for them (.next/cache/.previewinfo), and
//   the build is reproducible; without it they are random, and the build says the image is not.
//
//   node nextbuild.js seed DIST          write DIST/cache/.previewinfo from the env's key (if set)
//   node nextbuild.js fix-build-id DIST [OTHER...]  the build ID made from the output (DIST, or
//                                        OTHER: out/ when exported); prints the old and the new
//   node nextbuild.js forget DIST        remove the build's timing traces (DIST/trace*)
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

//: A nanoid (Next.js's default) or what generateBuildId returns; anything else is left alone.
const BUILD_ID = /^[A-Za-z0-9_-]{8,64}$/;

function seed(dist) {
  const secret = process.env.NEXT_SERVER_ACTIONS_ENCRYPTION_KEY;
  if (!secret) return 1;
  const derive = (what, bytes) => crypto.createHmac("sha256", secret).update(`pallet next ${what}`).digest("hex")
    .slice(0, bytes * 2);
  const dir = path.join(dist, "cache");
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, ".previewinfo"), JSON.stringify({
    previewModeId: derive("previewModeId", 16),
    previewModeSigningKey: derive("previewModeSigningKey", 32),
    previewModeEncryptionKey: derive("previewModeEncryptionKey", 32),
    expireAt: 4102444800000,  // 2100: Next.js makes new keys once they expire (14 days after)
  }));
  return 0;
}

//: Every file and directory under each root but DIST's cache, sorted, as paths from the app.
function walk(roots) {
  const out = [];
  const visit = (rel) => {
    for (const e of fs.readdirSync(rel, { withFileTypes: true })) {
      const r = `${rel}/${e.name}`;
      if (r === `${roots[0]}/cache`) continue;
      out.push([r, e]);
      if (e.isDirectory()) visit(r);
    }
  };
  for (const root of roots) visit(root.replace(/\/+$/, ""));
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

//: DIST's build ID replaced in DIST and in the OTHER directories the build made (next build's
//: `output: "export"` writes out/, whose pages and _next/static/<id>/ hold it too): bin/build
//: names out/ only for a static export.
function fixBuildId(dist, ...others) {
  const idFile = path.join(dist, "BUILD_ID");
  if (!fs.existsSync(idFile)) return 1;
  const old = fs.readFileSync(idFile, "utf8").trim();
  if (!BUILD_ID.test(old)) return 1;
  const oldBytes = Buffer.from(old);
  const hole = Buffer.from("\0BUILD_ID\0");
  const exported = others.filter((d) => fs.existsSync(d));
  const entries = walk([dist, ...exported]);
  // The ID is made from what is served: an export's pages (.next, which holds random keys, is not
  // in the image then), else DIST.
  // In the order of the names without the ID (with it, .next/static/<id> sorts by the ID).
  const holed = (rel) => rel.split(old).join("\0BUILD_ID\0");
  const hashed = (exported.length ? walk(exported) : entries).map(([rel, e]) => [holed(rel), rel, e])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const hash = crypto.createHash("sha256");
  for (const [name, rel, e] of hashed) {
    hash.update(`${name}\0${e.isDirectory() ? "d" : e.isSymbolicLink() ? "l" : "f"}\0`);
    if (e.isFile()) {
      const data = fs.readFileSync(rel);
      hash.update(String(data.length));
      let at = 0;
      for (let i = data.indexOf(oldBytes); i >= 0; i = data.indexOf(oldBytes, at)) {
        hash.update(data.subarray(at, i));
        hash.update(hole);
        at = i + oldBytes.length;
      }
      hash.update(data.subarray(at));
    } else if (e.isSymbolicLink()) {
      hash.update(fs.readlinkSync(rel).split(old).join("\0BUILD_ID\0"));
    }
  }
  const id = hash.digest("base64url").replace(/[-_]/g, "").slice(0, 21);
  const newBytes = Buffer.from(id);
  for (const [rel, e] of entries) {
    if (!e.isFile()) continue;
    const file = rel;
    const data = fs.readFileSync(file);
    if (data.indexOf(oldBytes) < 0) continue;
    const parts = [];
    let at = 0;
    for (let i = data.indexOf(oldBytes); i >= 0; i = data.indexOf(oldBytes, at)) {
      parts.push(data.subarray(at, i), newBytes);
      at = i + oldBytes.length;
    }
    parts.push(data.subarray(at));
    const mode = fs.statSync(file).mode;
    fs.writeFileSync(file, Buffer.concat(parts));
    fs.chmodSync(file, mode);
  }
  // Names holding the ID (.next/static/<id>/), deepest first so a parent's rename comes last.
  for (const [rel] of entries.filter(([r]) => path.basename(r).includes(old)).reverse()) {
    const from = rel;
    fs.renameSync(from, path.join(path.dirname(from), path.basename(from).split(old).join(id)));
  }
  console.log(`${old} ${id}`);
  return 0;
}

function forget(dist) {
  for (const f of ["trace", "trace-build"]) fs.rmSync(path.join(dist, f), { force: true });
  return 0;
}

const [cmd, dist, ...others] = process.argv.slice(2);
const commands = { seed, "fix-build-id": fixBuildId, forget };
if (!commands[cmd] || !dist) {
  console.error("usage: nextbuild.js seed|fix-build-id|forget DIST [OTHER...]");
  process.exit(2);
}
process.exit(commands[cmd](dist, ...others));
