// `lts/*`, `lts/-N` and `lts/<codename>` (nvm's aliases, in .nvmrc, .node-version or engines.node)
// as a semver range of one major line. Pure: the release list comes from the caller (the npm
// registry's `node` package versions: Node.js's own dist index is not reachable from a build).
//
// Which lines are LTS follows Node.js's release process rather than a table that would go
// stale: an even major N enters LTS in October, when N+1 is released; odd majors never do; 4
// (argon) was the first. So N is an LTS line once a later major has been released. The
// codenames are fixed names of fixed lines, so they are a table (an unknown one is an error
// that lists them).
//
//   node nodelts.js SPEC < versions.json   {"range": "24.x", "major": 24, "why": "..."} or
//                                          {"error": "..."} (exit 1): for tests
"use strict";

//: nvm's LTS codenames and their lines (https://github.com/nodejs/Release: CODENAMES.md).
const CODENAMES = {
  argon: 4, boron: 6, carbon: 8, dubnium: 10, erbium: 12, fermium: 14, gallium: 16, hydrogen: 18, iron: 20,
  jod: 22, krypton: 24,
};
const FIRST_LTS = 4;

class LtsError extends Error {}

const isLtsAlias = (spec) => /^lts\//i.test(String(spec).trim());

//: The majors of the release versions in ``versions`` (prereleases and builds left out).
function releasedMajors(versions) {
  const majors = new Set();
  for (const v of versions || []) {
    const m = /^v?(\d+)\.\d+\.\d+$/.exec(String(v).trim());
    if (m) majors.add(Number(m[1]));
  }
  return [...majors].sort((a, b) => a - b);
}

//: The LTS lines among ``versions``, oldest first: even, from 4, with a later major released.
function ltsMajors(versions) {
  const majors = releasedMajors(versions);
  const newest = majors.length ? majors[majors.length - 1] : -1;
  return majors.filter((n) => n >= FIRST_LTS && n % 2 === 0 && n < newest);
}

function knownCodenames() {
  return Object.entries(CODENAMES).map(([name, major]) => `${name} (${major})`).join(", ");
}

//: ``spec`` (lts/*, lts/-N, lts/<codename>, any case) -> {range, major, why}. ``versions`` is
//: only read for lts/* and lts/-N (a function, so a codename needs no registry).
function ltsRange(spec, versions) {
  const alias = String(spec).trim().replace(/^lts\//i, "").toLowerCase();
  if (Object.prototype.hasOwnProperty.call(CODENAMES, alias)) {
    const major = CODENAMES[alias];
    return { range: `${major}.x`, major, why: `the LTS line ${alias}, Node.js ${major}` };
  }
  const back = alias === "*" ? 0 : /^-(\d+)$/.test(alias) ? Number(alias.slice(1)) : null;
  if (back === null) {
    throw new LtsError(`unknown LTS codename ${JSON.stringify(alias)} in ${JSON.stringify(String(spec).trim())}: ` +
      `known are ${knownCodenames()}; or lts/* (the newest LTS line), lts/-1 (the one before), or a version`);
  }
  const lines = ltsMajors(typeof versions === "function" ? versions() : versions);
  if (back >= lines.length) {
    throw new LtsError(`${String(spec).trim()}: the Node.js releases listed have ` +
      (lines.length ? `only ${lines.length} LTS lines (${lines.join(", ")})` : "no LTS line"));
  }
  const major = lines[lines.length - 1 - back];
  const which = back === 0 ? "the newest LTS line" : `the LTS line ${back} before the newest`;
  return { range: `${major}.x`, major, why: `${which}, Node.js ${major}: an even major is LTS once the next is released` };
}

module.exports = { CODENAMES, LtsError, isLtsAlias, ltsMajors, ltsRange, releasedMajors };

if (require.main === module) {
  const versions = JSON.parse(require("fs").readFileSync(0, "utf8") || "[]");
  try {
    console.log(JSON.stringify(ltsRange(process.argv[2], versions)));
  } catch (err) {
    if (!(err instanceof LtsError)) throw err;
    console.log(JSON.stringify({ error: err.message }));
    process.exitCode = 1;
  }
}
