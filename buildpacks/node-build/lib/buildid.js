// A framework's random build ID made from its output, shared by nextbuild.js and nuxtbuild.js:
// two builds of one source differ only in strings the framework drew at random (an ID) or from
// the clock (a date), so the output is hashed with those strings taken out ("holes"), and each is
// replaced, in every file's bytes and in names, by a value made from that hash or fixed.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

//: Every file and directory under each root but the SKIP paths, sorted, as paths from the app.
function walk(roots, skip = []) {
  const out = [];
  const visit = (rel) => {
    for (const e of fs.readdirSync(rel, { withFileTypes: true })) {
      const r = `${rel}/${e.name}`;
      if (skip.includes(r)) continue;
      out.push([r, e]);
      if (e.isDirectory()) visit(r);
    }
  };
  for (const root of roots) visit(root.replace(/\/+$/, ""));
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

//: DATA with each of OLDS (strings) replaced by the matching NEWS (Buffers): a list of Buffers.
function splice(data, olds, news) {
  const parts = [];
  let at = 0;
  for (;;) {
    let best = -1, which = -1;
    olds.forEach((o, k) => {
      const i = data.indexOf(o, at);
      if (i >= 0 && (best < 0 || i < best)) { best = i; which = k; }
    });
    if (best < 0) break;
    parts.push(data.subarray(at, best), news[which]);
    at = best + olds[which].length;
  }
  parts.push(data.subarray(at));
  return parts;
}

//: A sha256 of ENTRIES (walk's) with each of OLDS replaced by a hole: what the output is
//: without them. In the order of the names with the holes (a name holding an ID sorts by it).
function hashWithout(entries, olds) {
  const oldBytes = olds.map((o) => Buffer.from(o));
  const holes = olds.map((_, k) => Buffer.from(`\0HOLE${k}\0`));
  const holed = (s) => Buffer.concat(splice(Buffer.from(s), oldBytes, holes)).toString("latin1");
  const hash = crypto.createHash("sha256");
  for (const [name, rel, e] of entries.map(([rel, e]) => [holed(rel), rel, e])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    hash.update(`${name}\0${e.isDirectory() ? "d" : e.isSymbolicLink() ? "l" : "f"}\0`);
    if (e.isFile()) {
      const data = fs.readFileSync(rel);
      hash.update(String(data.length));
      for (const part of splice(data, oldBytes, holes)) hash.update(part);
    } else if (e.isSymbolicLink()) {
      hash.update(holed(fs.readlinkSync(rel)));
    }
  }
  return hash.digest();
}

//: Each of OLDS replaced by the matching NEWS in ENTRIES' files (modes kept) and names.
function replaceAll(entries, olds, news) {
  const oldBytes = olds.map((o) => Buffer.from(o));
  const newBytes = news.map((n) => Buffer.from(n));
  for (const [file, e] of entries) {
    if (!e.isFile()) continue;
    const data = fs.readFileSync(file);
    if (!oldBytes.some((o) => data.indexOf(o) >= 0)) continue;
    const mode = fs.statSync(file).mode;
    fs.writeFileSync(file, Buffer.concat(splice(data, oldBytes, newBytes)));
    fs.chmodSync(file, mode);
  }
  // Names holding one (.next/static/<id>/), deepest first so a parent's rename comes last.
  const rename = (name) => Buffer.concat(splice(Buffer.from(name), oldBytes, newBytes)).toString();
  for (const [from] of entries.filter(([r]) => rename(path.basename(r)) !== path.basename(r)).reverse()) {
    fs.renameSync(from, path.join(path.dirname(from), rename(path.basename(from))));
  }
}

module.exports = { walk, hashWithout, replaceAll };
