// What the Node.js buildpack knows about an app, from its files: package manager, lockfile,
// engines.node against the stack's Node.js, and the start command. Runs with the build image's
// node, which is the stack's (the run image has the same version), from bin/build (bin/detect
// is plain bash: node takes ~0.15 s to start here, and detect runs on every build):
//
//   nodeapp.js plan LAYERS BP_DIR   shell assignments for bin/build, and LAYERS/launch.toml (the
//                                   web process); exit 1 with a message when the app cannot be
//                                   built as it is
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

//: Lockfiles and the tool each one needs, in order of precedence.
const LOCKFILES = [
  ["npm-shrinkwrap.json", "npm"],
  ["package-lock.json", "npm"],
  ["yarn.lock", "yarn"],
  ["pnpm-lock.yaml", "pnpm"],
  ["bun.lockb", "bun"],
  ["bun.lock", "bun"],
];
//: Files whose content decides node_modules (hashed into the layer's cache key).
const MANIFESTS = ["package.json", "npm-shrinkwrap.json", "package-lock.json", "yarn.lock", "pnpm-lock.yaml", ".npmrc"];

class AppError extends Error {}

const exists = (name) => fs.existsSync(name) && fs.statSync(name).isFile();

function readPackage() {
  try {
    return JSON.parse(fs.readFileSync("package.json", "utf8"));
  } catch (err) {
    throw new AppError(`package.json is not valid JSON: ${err.message}`);
  }
}

function onPath(tool) {
  for (const dir of (process.env.PATH || "").split(":")) {
    try {
      fs.accessSync(path.join(dir, tool), fs.constants.X_OK);
      return true;
    } catch (_) {}
  }
  return false;
}

function stackName() {
  return process.env.CNB_STACK_ID || "this stack";
}

// -- package manager -------------------------------------------------------------------------

function manager() {
  const found = LOCKFILES.filter(([file]) => exists(file));
  const tools = [...new Set(found.map(([, tool]) => tool))];
  if (tools.length > 1) {
    const list = found.map(([file, tool]) => `${file} (${tool})`).join(", ");
    throw new AppError(`found the lockfiles of more than one package manager: ${list}. Keep the one you use ` +
      "and delete the others (or leave them out of the build with [build] exclude in project.toml)");
  }
  if (found.length === 0) {
    return { tool: "npm", lockfile: "", command: "npm install" };
  }
  const [lockfile, tool] = found[0];
  if (tool !== "npm" && !onPath(tool)) {
    throw new AppError(`${lockfile} needs ${tool}, which the build image does not have (it has npm ` +
      `${npmVersion()}): use npm (npm install --package-lock-only writes package-lock.json), or build on a ` +
      `stack whose build image has ${tool}`);
  }
  const command = { npm: "npm ci", yarn: "yarn install --frozen-lockfile", pnpm: "pnpm install --frozen-lockfile",
    bun: "bun install --frozen-lockfile" }[tool];
  return { tool, lockfile, command };
}

function npmVersion() {
  try {
    const pkg = "/usr/share/nodejs/npm/package.json";
    return JSON.parse(fs.readFileSync(pkg, "utf8")).version;
  } catch (_) {
    return "?";
  }
}

// -- Node.js version ---------------------------------------------------------------------------

function loadSemver() {
  for (const candidate of ["semver", "/usr/share/nodejs/semver", "/usr/lib/node_modules/npm/node_modules/semver",
    "/usr/share/nodejs/npm/node_modules/semver"]) {
    try {
      return require(candidate);
    } catch (_) {}
  }
  return null;
}

function checkEngines(pkg) {
  const wanted = pkg.engines && pkg.engines.node;
  if (!wanted) return "";
  const have = process.versions.node;
  const semver = loadSemver();
  if (!semver) return `engines.node ${wanted} (not checked: no semver module in the build image)`;
  if (!semver.validRange(wanted)) {
    throw new AppError(`package.json engines.node ${JSON.stringify(wanted)} is not a valid version range`);
  }
  if (!semver.satisfies(have, wanted)) {
    throw new AppError(`package.json engines.node ${JSON.stringify(wanted)} is not satisfied by the stack's ` +
      `Node.js ${have} (${stackName()}): widen engines.node, or build on a stack with a matching Node.js`);
  }
  return `engines.node ${wanted}`;
}

// -- start command -------------------------------------------------------------------------------

const SHELL_CHARS = /[$|&;<>()`*?~"'\\]/;

function startCommand(pkg) {
  const start = pkg.scripts && pkg.scripts.start;
  if (typeof start === "string" && start.trim()) {
    const s = start.trim();
    if (SHELL_CHARS.test(s)) return [["/bin/sh", "-c", s], "scripts.start"];
    return [s.split(/\s+/), "scripts.start"];
  }
  if (typeof pkg.main === "string" && pkg.main) return [["node", pkg.main], "main"];
  // npm's own default (npm start runs server.js), else index.js; chosen when the app starts, so
  // that the image depends on package.json alone, not on which files the app has.
  return [["/bin/sh", "-c", "if [ -f server.js ]; then exec node server.js; else exec node index.js; fi"],
    "no scripts.start or main: server.js, else index.js"];
}

// -- commands ------------------------------------------------------------------------------------

function sha256(file) {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

const quote = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

function plan(layers, bpDir) {
  const pkg = readPackage();
  const { tool, lockfile } = manager();
  const engines = checkEngines(pkg);
  const key = crypto.createHash("sha256");
  key.update(`node ${process.versions.node}\ntool ${tool} ${lockfile}\n`);
  for (const name of MANIFESTS) {
    if (exists(name)) key.update(`${name} ${sha256(name)}\n`);
  }
  for (const rel of ["bin/build", "lib/nodeapp.js"]) {
    key.update(`buildpack ${rel} ${sha256(path.join(bpDir, rel))}\n`);
  }
  const out = {
    TOOL: tool, LOCKFILE: lockfile, NODE_VERSION: process.versions.node, KEY: key.digest("hex"),
    NOTES: engines, HAS_BUILD_SCRIPT: pkg.scripts && pkg.scripts.build ? "1" : "",
  };
  const [cmd, why] = startCommand(pkg);
  out.WEB = `${cmd.join(" ")} (${why})`;
  for (const [k, v] of Object.entries(out)) console.log(`${k}=${quote(v)}`);
  const toml = `[[processes]]\ntype = "web"\ncommand = [${cmd.map((c) => JSON.stringify(c)).join(", ")}]\n` +
    "default = true\n";
  fs.writeFileSync(path.join(layers, "launch.toml"), toml);
  return 0;
}

function main(argv) {
  const [cmd, ...args] = argv;
  try {
    if (cmd === "plan") return plan(...args);
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    console.error(`error: ${err.message}`);
    return 1;
  }
  console.error(`nodeapp.js: unknown command ${cmd}`);
  return 2;
}

process.exitCode = main(process.argv.slice(2));
