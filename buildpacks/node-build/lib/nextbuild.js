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
//   node nextbuild.js standalone DIST    link the static assets and public/ into DIST/standalone
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const { walk, hashWithout, replaceAll } = require("./buildid");

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

//: DIST's build ID replaced in DIST and in the OTHER directories the build made (next build's
//: `output: "export"` writes out/, whose pages and _next/static/<id>/ hold it too): bin/build
//: names out/ only for a static export.
function fixBuildId(dist, ...others) {
  const idFile = path.join(dist, "BUILD_ID");
  if (!fs.existsSync(idFile)) return 1;
  const old = fs.readFileSync(idFile, "utf8").trim();
  if (!BUILD_ID.test(old)) return 1;
  const exported = others.filter((d) => fs.existsSync(d));
  const cache = [`${dist.replace(/\/+$/, "")}/cache`];
  const entries = walk([dist, ...exported], cache);
  // The ID is made from what is served: an export's pages (.next, which holds random keys, is not
  // in the image then), else DIST.
  const digest = hashWithout(exported.length ? walk(exported) : entries, [old]);
  const id = digest.toString("base64url").replace(/[-_]/g, "").slice(0, 21);
  replaceAll(entries, [old], [id]);
  console.log(`${old} ${id}`);
  return 0;
}

function forget(dist) {
  for (const f of ["trace", "trace-build"]) fs.rmSync(path.join(dist, f), { force: true });
  return 0;
}

//: output: "standalone" makes DIST/standalone/server.js, a server that serves DIST/standalone/DIST
//: and DIST/standalone/public, and copies neither the static assets nor public/ there (Next.js's
//: docs: "cp -r public .next/standalone/ && cp -r .next/static .next/standalone/.next/", as every
//: Dockerfile for it does): an app started with `node .next/standalone/server.js` rendered its
//: pages and answered 404 for every script, stylesheet and image. They are linked in: the static
//: assets relatively (DIST moves to the launch layer whole), public/ where the app is. Prints what
//: it linked.
function standalone(dist) {
  const inner = path.join(dist, "standalone");
  if (!fs.existsSync(path.join(inner, "server.js"))) return 0;
  const links = [[path.join(inner, dist, "static"), path.join(dist, "static"), true],
    [path.join(inner, "public"), "public", false]];
  const made = [];
  for (const [link, target, relative] of links) {
    if (!fs.existsSync(target) || fs.existsSync(link) || isLink(link)) continue;
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(relative ? path.relative(path.dirname(link), target) : path.resolve(target), link);
    made.push(link);
  }
  if (made.length) console.log(made.join(" "));
  return 0;
}

function isLink(file) {
  try {
    return fs.lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

const [cmd, dist, ...others] = process.argv.slice(2);
const commands = { seed, "fix-build-id": fixBuildId, forget, standalone };
if (!commands[cmd] || !dist) {
  console.error("usage: nextbuild.js seed|fix-build-id|forget|standalone DIST [OTHER...]");
  process.exit(2);
}
process.exit(commands[cmd](dist, ...others));
