// After a failed build script: the direct dependency the build installed that does not support
// the Node.js the build ran on. npm only warns (EBADENGINE, lost among the install's lines), and
// the build then fails somewhere inside the framework. The usual cause is an app without a
// lockfile whose "latest" framework now needs a newer Node.js than the one chosen before the
// install (from engines.node, .nvmrc, or the stack's). Usage: node engines.js HTTPGET_JS
"use strict";
const fs = require("fs");
const path = require("path");

function readJSON(file) {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (_) {
    return null;
  }
}

function main(httpget) {
  let semver = null;
  try {
    semver = require(httpget).loadSemver();
  } catch (_) {}
  const pkg = readJSON("package.json");
  if (!semver || !pkg || typeof pkg !== "object") return;
  const names = Object.keys({ ...(pkg.dependencies || {}), ...(pkg.devDependencies || {}) }).sort();
  for (const name of names) {
    const dep = readJSON(path.join("node_modules", name, "package.json"));
    const range = dep && dep.engines && typeof dep.engines.node === "string" ? dep.engines.node : null;
    if (range && semver.validRange(range) && !semver.satisfies(process.versions.node, range)) {
      console.error(`error: ${name} ${dep.version} does not support the Node.js the build ran on, ` +
        `${process.versions.node} (its engines.node: ${range}): ask for one it supports in package.json's ` +
        "engines.node (or .nvmrc), and pallet installs that Node.js");
      return;
    }
  }
}

main(process.argv[2]);
