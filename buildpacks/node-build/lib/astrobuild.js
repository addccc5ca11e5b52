// What makes two `astro build`s of a server (output: "server" with an adapter, dist/server/) differ,
// and what pallet does about each:
//
// - the name of the server's manifest chunk (SERVER/manifest_<hash>.mjs, which entry.mjs imports):
//   Astro adds Date.now() to its hash (its build-manifest plugin's augmentChunkHash), so every
//   build names it anew. Renamed after a hash of SERVER with the name taken out: the same source
//   gives the same name, another source another one.
// - the key that encrypts server islands' props (the manifest's "key"): a secret, random unless
//   ASTRO_KEY gives one (`astro create-key`), never derived from the source (anyone with it could
//   forge the props): pallet/node-build's build says that such an image is not reproducible.
//
//   node astrobuild.js fix SERVER   (dist/server) prints the old and the new name
"use strict";

const fs = require("fs");
const path = require("path");
const { walk, hashWithout, replaceAll } = require("./buildid");

const MANIFEST = /^manifest_[A-Za-z0-9_-]{8}\.mjs$/;

function fix(server) {
  const names = fs.readdirSync(server).filter((n) => MANIFEST.test(n));
  if (names.length !== 1) return null;  // none, or not Astro's one: left as it is
  const old = names[0].slice(0, -".mjs".length);
  const entries = walk([server]);
  const digest = hashWithout(entries, [old]).toString("base64url").slice(0, 8);
  const now = `manifest_${digest}`;
  replaceAll(entries, [old], [now]);
  return [old, now];
}

if (require.main === module) {
  const [cmd, server] = process.argv.slice(2);
  if (cmd !== "fix" || !server) {
    console.error("usage: astrobuild.js fix SERVER");
    process.exit(2);
  }
  const done = fix(server);
  if (done) console.log(done.join(" "));
}

module.exports = { fix };
