// What the Node.js buildpack knows about an app, from its files: package manager (and the version
// packageManager names), lockfile, workspaces, the Node.js version asked for (engines.node,
// .nvmrc, .node-version) against the stack's, and the start command. Runs with the build image's
// node, which is the stack's, from bin/build (bin/detect is plain bash: node takes ~0.15 s to
// start here, and detect runs on every build):
//
//   nodeapp.js plan LAYERS BP_DIR     shell assignments for bin/build, and LAYERS/launch.toml (the
//                                     web process); exit 1 with a message when the app cannot be
//                                     built as it is
//   nodeapp.js resolve-node RANGE ARCH   the newest official Node.js build matching RANGE on the
//                                     npm registry (package node-linux-ARCH): shell assignments
//                                     NODE_PKG, NODE_RESOLVED, NODE_INTEGRITY; exit 1 naming the
//                                     versions there are when none matches
//   nodeapp.js tool-version TOOL      the version of the package manager TOOL on PATH ("?" if none)
//   nodeapp.js fetch-tool NAME@X.Y.Z PREFIX   the package manager's release straight from the
//                                     registry (its tarball, sha512-checked) into PREFIX as
//                                     `npm install -g --prefix PREFIX` lays it out; exit 3 when it
//                                     is not a package to install that way (npm's job then)
//   nodeapp.js npm-for-node VERSION [RANGE]   the npm release to install with the app's own
//                                     Node.js VERSION (and engines.npm RANGE): npm@X.Y.Z, or "" to
//                                     keep the build image's
//   nodeapp.js strip-scripts FILE    FILE (the install root's package.json) without the root's
//                                     lifecycle scripts (rootScripts)
//   nodeapp.js relink LAYER           after an install in LAYER (an install root holding only the
//                                     manifests): links into a workspace's copy point at the app's
//                                     own directory (/workspace/...) instead
"use strict";

const childProcess = require("child_process");
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const { LtsError, isLtsAlias, ltsMajors, ltsRange } = require("./nodelts.js");
const httpget = require("./httpget.js");

//: Lockfiles and the tool each one needs, in order of precedence.
const LOCKFILES = [
  ["npm-shrinkwrap.json", "npm"],
  ["package-lock.json", "npm"],
  ["yarn.lock", "yarn"],
  ["pnpm-lock.yaml", "pnpm"],
  ["bun.lockb", "bun"],
  ["bun.lock", "bun"],
];
//: Files whose content decides node_modules (hashed into the layer's cache key), besides the
//: workspaces' package.json files.
const MANIFESTS = ["package.json", "npm-shrinkwrap.json", "package-lock.json", "yarn.lock", "pnpm-lock.yaml",
  "bun.lockb", "bun.lock", ".npmrc", ".yarnrc", ".yarnrc.yml", "pnpm-workspace.yaml"];
//: Files the app may have instead of a package.json (Paketo's order): run with node.
const ENTRY_FILES = ["server.js", "app.js", "main.js", "index.js"];
const WORKSPACE = "/workspace";

class AppError extends Error {}

const exists = (name) => fs.existsSync(name) && fs.statSync(name).isFile();
const isDir = (name) => fs.existsSync(name) && fs.statSync(name).isDirectory();

function readJSON(file) {
  // A byte-order mark (Windows editors write one) is stripped, as npm and Node.js's require do.
  try {
    return JSON.parse(fs.readFileSync(file, "utf8").replace(/^\uFEFF/, ""));
  } catch (err) {
    throw new AppError(`${file} is not valid JSON: ${err.message}`);
  }
}

function readPackage() {
  return exists("package.json") ? readJSON("package.json") : null;
}

function onPath(tool) {
  for (const dir of (process.env.PATH || "").split(":")) {
    try {
      fs.accessSync(path.join(dir, tool), fs.constants.X_OK);
      return path.join(dir, tool);
    } catch (_) {}
  }
  return "";
}

function stackName() {
  return process.env.CNB_STACK_ID || "this stack";
}

function loadSemver() {
  const semver = httpget.loadSemver();
  if (!semver) throw new AppError("the build image has no semver module for Node.js (node-semver): use a stack with npm");
  return semver;
}

// -- package manager -------------------------------------------------------------------------

//: corepack's field: "pnpm@9.15.9" or "yarn@4.5.0+sha512.abc..." (the hash is corepack's own
//: check of its download; the tool is installed with npm here, which checks the registry's).
function packageManagerField(pkg) {
  const field = pkg ? pkg.packageManager : undefined;
  if (field === undefined || field === null) return null;
  const m = typeof field === "string" && /^(npm|yarn|pnpm|bun)@([0-9][^+\s]*)(\+.*)?$/.exec(field.trim());
  if (!m) {
    throw new AppError(`package.json packageManager ${JSON.stringify(field)} is not NAME@VERSION ` +
      "(npm, yarn, pnpm or bun, e.g. \"pnpm@9.15.9\")");
  }
  return { name: m[1], version: m[2] };
}

function lockfileMajor(lockfile) {
  // pnpm: lockfileVersion '9.0' is pnpm 9 (and 10); '6.x' pnpm 8; '5.x' pnpm 7.
  const text = fs.readFileSync(lockfile, "utf8").slice(0, 4096);
  const m = /^lockfileVersion:\s*'?([0-9]+)(?:\.([0-9]+))?/m.exec(text);
  if (!m) return "9";
  return { 9: "9", 6: "8", 5: "7" }[m[1]] || "9";
}

function isBerryLock(lockfile) {
  return fs.readFileSync(lockfile, "utf8").slice(0, 4096).includes("__metadata:");
}

//: The npm packages the package managers come in (yarn 2+ is @yarnpkg/cli-dist).
const TOOL_PACKAGES = ["npm", "pnpm", "yarn", "@yarnpkg/cli-dist", "bun"];

function toolVersion(bin) {
  // The version in the tool's own package.json: npm, pnpm, yarn and bun are npm packages whose
  // command links into the package. Reading it costs nothing, while `npm --version` starts npm
  // (~0.3 s of CPU, in the middle of the install it competes with). Else the tool says.
  try {
    let dir = path.dirname(fs.realpathSync(bin));
    for (let i = 0; i < 4 && dir !== path.dirname(dir); i++, dir = path.dirname(dir)) {
      const file = path.join(dir, "package.json");
      if (!fs.existsSync(file)) continue;
      const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
      if (TOOL_PACKAGES.includes(pkg.name) && typeof pkg.version === "string" && pkg.version) return pkg.version;
      break;
    }
  } catch (_) {}
  try {
    return childProcess.execFileSync(bin, ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"],
      timeout: 30000 }).trim();
  } catch (_) {
    return "";
  }
}

//: The npm package that carries each tool at a version: yarn 2+ ("berry") is @yarnpkg/cli-dist.
function npmSpec(tool, version) {
  if (tool === "yarn" && !/^1(\.|$)/.test(version)) return `@yarnpkg/cli-dist@${version}`;
  return `${tool}@${version}`;
}

function yarnrc() {
  // .yarnrc.yml, as far as the keys here go (flat "key: value" lines).
  const out = {};
  if (!exists(".yarnrc.yml")) return out;
  for (const line of fs.readFileSync(".yarnrc.yml", "utf8").split("\n")) {
    const m = /^([A-Za-z]+):\s*["']?([^"'#]*?)["']?\s*(#.*)?$/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

//: The version of the yarn release an app keeps in its repository and names in .yarnrc.yml's
//: yarnPath (`yarn set version` writes `.yarn/releases/yarn-3.8.7.cjs`; yarn 2's `yarn-berry.cjs`
//: says it inside, as the bundle's @yarnpkg/cli version), or "". Every yarn runs that file
//: instead of itself: taken for yarn 4 (a berry lockfile without packageManager), a yarn 3 app
//: failed the build at `workspaces focus`, which yarn 3 lacks without its plugin.
function yarnPathVersion() {
  const file = yarnrc().yarnPath;
  if (!file || path.isAbsolute(file) || path.normalize(file).startsWith("..") || !exists(file)) return "";
  const named = /yarn-(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)\.c?js$/.exec(file);
  if (named) return named[1];
  try {
    const text = fs.statSync(file).size < (64 << 20) ? fs.readFileSync(file, "latin1") : "";
    const inside = /name:\s*"@yarnpkg\/cli",\s*version:\s*"(\d+\.\d+\.\d+[^"]*)"/.exec(text);
    return inside ? inside[1] : "";
  } catch {
    return "";
  }
}

function manager(pkg) {
  const found = LOCKFILES.filter(([file]) => exists(file));
  const tools = [...new Set(found.map(([, tool]) => tool))];
  if (tools.length > 1) {
    const list = found.map(([file, tool]) => `${file} (${tool})`).join(", ");
    throw new AppError(`found the lockfiles of more than one package manager: ${list}. Keep the one you use ` +
      "and delete the others (or leave them out of the build with [build] exclude in project.toml)");
  }
  const field = packageManagerField(pkg);
  const lockfile = found.length ? found[0][0] : "";
  const tool = found.length ? found[0][1] : field ? field.name : "npm";
  if (field && field.name !== tool) {
    throw new AppError(`package.json packageManager says ${field.name}@${field.version}, but the lockfile is ` +
      `${lockfile} (${tool}): make them agree`);
  }
  // The version: packageManager's, else what the lockfile's format needs.
  let version = field ? field.version : "";
  if (!version) {
    if (tool === "yarn") version = yarnPathVersion() || (lockfile && isBerryLock(lockfile) ? "4" : "1");
    else if (tool === "pnpm") version = pnpmWithinEngines(pkg, lockfile ? lockfileMajor(lockfile) : "9");
    else if (tool === "bun") version = "1";
  }
  const berry = tool === "yarn" && !/^1(\.|$)/.test(version);
  const rc = berry ? yarnrc() : {};
  const linker = berry ? rc.nodeLinker || "pnp" : "";
  // The build image's tool, when it is the one asked for (no version asked: any).
  let install = "";
  const have = onPath(tool);
  const haveVersion = have ? toolVersion(have) : "";
  const semver = loadSemver();
  const fits = haveVersion && (!version || (semver.valid(haveVersion) &&
    semver.satisfies(haveVersion, /^\d+$/.test(version) ? `^${version}.0.0` : version)));
  if (!fits && !(tool === "npm" && !field)) install = npmSpec(tool, version);
  // engines.npm, when packageManager does not name npm: an npm that satisfies it (an app with
  // engine-strict=true in its .npmrc fails npm ci otherwise: EBADENGINE on its own package).
  const enginesNpm = tool === "npm" && !field ? npmEngines(pkg) : "";
  let haveFit = fits ? haveVersion : "";
  if (enginesNpm && !(haveVersion && semver.valid(haveVersion) && semver.satisfies(haveVersion, enginesNpm))) {
    install = npmFor(process.versions.node, enginesNpm);
    haveFit = "";
  }
  return { tool, lockfile, version, install, berry, linker, have: haveFit, enginesNpm, npmPinned: !!(field && tool === "npm"),
    offline: berry && isDir(".yarn/cache"), focus: berry && yarnFocuses(version) };
}

//: Whether yarn 2+ at this version has `workspaces focus`, the production-only install: yarn 4
//: has it built in, yarn 2 and 3 only with the workspace-tools plugin in .yarnrc.yml (without it
//: the build failed: Command not found). Heroku's buildpack then keeps the devDependencies; so does pallet.
function yarnFocuses(version) {
  if (!/^[23](\.|$)/.test(version)) return true;
  return exists(".yarnrc.yml") && fs.readFileSync(".yarnrc.yml", "utf8").includes("plugin-workspace-tools");
}

//: package.json engines[tool] when it is a valid range (npm itself reads nothing else there than
//: engines.npm; pnpm refuses to install a project whose engines.pnpm its own version does not satisfy).
function toolEngines(pkg, tool) {
  const asked = pkg && pkg.engines && typeof pkg.engines[tool] === "string" ? pkg.engines[tool].trim() : "";
  return asked && loadSemver().validRange(asked) ? asked : "";
}

function npmEngines(pkg) {
  return toolEngines(pkg, "npm");
}

//: The pnpm majors that install a lockfile as written (lockfileMajor's): '9.0' is pnpm 9's and 10's.
const PNPM_READERS = { 9: ["9", "10"], 8: ["8"], 7: ["7"] };

//: The pnpm to install without packageManager, within engines.pnpm: pnpm refuses to install a
//: project whose engines.pnpm its version does not satisfy (ERR_PNPM_UNSUPPORTED_ENGINE), and the
//: lockfile's major alone (9 for '9.0', which pnpm 10 writes too) failed an app asking for ">=10".
//: That major when engines.pnpm takes all of it (as without engines.pnpm), else the first major
//: that reads the lockfile and meets engines.pnpm, narrowed to it; else engines.pnpm alone.
function pnpmWithinEngines(pkg, major) {
  const wanted = toolEngines(pkg, "pnpm");
  if (!wanted) return major;
  const semver = loadSemver();
  for (const m of PNPM_READERS[major] || [major]) {
    const line = `^${m}.0.0`;
    if (semver.subset(line, wanted)) return m;
    const parts = wanted.split("||").map((p) => p.trim() || "*").filter((p) => semver.intersects(p, line))
      .map((p) => (semver.subset(p, line) ? p : `${p} ${line}`));
    if (parts.length) return parts.join(" || ");
  }
  return wanted;
}

//: npm releases to install with the app's own Node.js (an official build: the npm registry's
//: node-linux-* packages carry Node.js and its headers, not npm). The build image's npm is
//: Debian's, made for Debian's Node.js: its node-gyp compiles native addons against Debian's
//: headers and links them to Debian's libnode, and such an addon loaded into another Node.js
//: crashes it (SIGSEGV as the app starts). Exact releases (the same npm every build), newest
//: first, each with its engines.node: the first that takes the Node.js in use (and engines.npm).
const NPM_RELEASES = [["11.21.3", "^20.17.0 || >=22.9.0"], ["10.9.9", "^18.17.0 || >=20.5.0"]];

function npmFor(nodeVersion, wanted) {
  const semver = loadSemver();
  const fit = NPM_RELEASES.find(([v, engines]) => semver.satisfies(nodeVersion, engines) &&
    (!wanted || semver.satisfies(v, wanted)));
  if (fit) return `npm@${fit[0]}`;
  return wanted ? `npm@${wanted}` : "";
}

// -- workspaces ----------------------------------------------------------------------------------

function workspacePatterns(pkg, tool) {
  if (tool === "pnpm") {
    if (!exists("pnpm-workspace.yaml")) return [];
    const out = [];
    let inPackages = false;
    for (const line of fs.readFileSync("pnpm-workspace.yaml", "utf8").split("\n")) {
      if (/^packages:\s*$/.test(line)) { inPackages = true; continue; }
      if (inPackages) {
        const m = /^\s+-\s*["']?([^"'#]+?)["']?\s*(#.*)?$/.exec(line);
        if (m) out.push(checkedPattern(m[1], "pnpm-workspace.yaml packages"));
        else if (/^\S/.test(line)) inPackages = false;
      }
    }
    return out;
  }
  const ws = pkg && pkg.workspaces;
  const list = Array.isArray(ws) ? ws : ws && Array.isArray(ws.packages) ? ws.packages : [];
  return list.map((pattern) => checkedPattern(pattern, "package.json workspaces"));
}

//: A workspace pattern is a relative glob inside the app: not a string, absolute or climbing out
//: with ".." is refused (it would install a directory of the build image as a workspace).
function checkedPattern(pattern, where) {
  if (typeof pattern !== "string" || pattern === "") {
    throw new AppError(`${where}: ${JSON.stringify(pattern)} is not a directory pattern (a non-empty string)`);
  }
  const bare = pattern.replace(/^!/, "");
  if (path.isAbsolute(bare) || path.normalize(bare).split(path.sep).includes("..")) {
    throw new AppError(`${where}: ${JSON.stringify(pattern)} names a directory outside the app`);
  }
  return pattern;
}

function expand(pattern) {
  // Workspace globs as npm, yarn and pnpm write them: literal segments, "*" and a trailing "**".
  const segs = pattern.replace(/^\.\//, "").replace(/\/$/, "").split("/");
  let dirs = ["."];
  for (const seg of segs) {
    const next = [];
    for (const dir of dirs) {
      if (seg === "**") {
        const walk = (d) => {
          next.push(d);
          for (const e of fs.readdirSync(d, { withFileTypes: true })) {
            if (e.isDirectory() && e.name !== "node_modules" && !e.name.startsWith(".")) walk(path.join(d, e.name));
          }
        };
        walk(dir);
      } else if (seg.includes("*")) {
        const rx = new RegExp(`^${seg.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);
        if (!isDir(dir)) continue;
        for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
          if (e.isDirectory() && rx.test(e.name) && e.name !== "node_modules") next.push(path.join(dir, e.name));
        }
      } else if (isDir(path.join(dir, seg))) {
        next.push(path.join(dir, seg));
      }
    }
    dirs = next;
  }
  return dirs.map((d) => path.normalize(d));
}

function workspaces(pkg, tool) {
  const include = new Set();
  const exclude = new Set();
  for (const pattern of workspacePatterns(pkg, tool)) {
    if (pattern.startsWith("!")) expand(pattern.slice(1)).forEach((d) => exclude.add(d));
    else expand(pattern).forEach((d) => include.add(d));
  }
  return [...include].filter((d) => !exclude.has(d) && d !== "." && exists(path.join(d, "package.json"))).sort();
}

//: yarn 1's --frozen-lockfile does not check the workspaces' package.json files against
//: yarn.lock (yarnpkg/yarn#5840: it installs what they ask for and exits 0), so a workspace's
//: dependency missing from yarn.lock would be resolved at build time. This is the check it skips:
//: every NAME@RANGE a manifest asks for is a pattern of yarn.lock, except a workspace's own
//: package at a version the range takes (yarn links those and does not lock them).
function checkYarn1Workspaces(pkg, wsDirs) {
  const patterns = new Set();
  for (const line of fs.readFileSync("yarn.lock", "utf8").split("\n")) {
    if (!line || /^[\s#]/.test(line) || !line.trimEnd().endsWith(":")) continue;
    for (const m of line.trimEnd().slice(0, -1).matchAll(/"([^"]*)"|([^,\s][^,]*)/g)) {
      patterns.add((m[1] ?? m[2]).trim());
    }
  }
  const semver = loadSemver();
  const manifests = [["package.json", pkg],
    ...wsDirs.map((d) => [path.join(d, "package.json"), readJSON(path.join(d, "package.json"))])];
  const local = new Map(manifests.slice(1).filter(([, p]) => p.name).map(([, p]) => [p.name, p.version || "0.0.0"]));
  for (const [file, p] of manifests) {
    for (const field of ["dependencies", "devDependencies", "optionalDependencies"]) {
      for (const [name, range] of Object.entries(p[field] || {})) {
        if (typeof range !== "string" || !range) continue;
        if (local.has(name) && (range === "*" || semver.satisfies(local.get(name), range))) continue;
        if (!patterns.has(`${name}@${range}`)) {
          throw new AppError(`yarn.lock is out of sync with ${file}: it has no entry for ${name}@${range} (yarn 1's ` +
            "--frozen-lockfile does not check workspaces, so pallet does): run yarn install and commit yarn.lock");
        }
      }
    }
  }
}

//: Local packages the root depends on by path (`"greet": "file:libs/greet"`, `link:`, `./x`, a
//: tarball `file:vendor/x-1.0.0.tgz`): the install root holds only manifests, so npm found
//: nothing there (ENOENT). A directory's package.json goes into the install root as a
//: workspace's does (its link is then pointed at the app's directory); a tarball is copied.
//: { dirs, files }; a path outside the app is refused (pallet builds the app's directory alone).
function localDeps(pkg) {
  const dirs = new Set();
  const files = new Set();
  for (const field of ["dependencies", "optionalDependencies", "devDependencies"]) {
    for (const [name, spec] of Object.entries((pkg && pkg[field]) || {})) {
      if (typeof spec !== "string") continue;
      const m = /^(?:file:|link:)(.+)$/.exec(spec.trim()) || /^(\.\.?\/.*|\.\.?)$/.exec(spec.trim());
      if (!m) continue;
      const rel = path.normalize(m[1].replace(/^\/\/?/, ""));
      if (path.isAbsolute(m[1]) || rel.split(path.sep).includes("..") || rel === ".") {
        if (field === "devDependencies") continue;  // only the build needs it (pallet/node-build's)
        throw new AppError(`package.json ${field}: ${name} is ${JSON.stringify(spec)}, outside the app: pallet builds ` +
          "the app's directory alone (make it a workspace of a root that holds both, or publish it)");
      }
      if (isDir(rel) && exists(path.join(rel, "package.json"))) {
        if (field !== "devDependencies") dirs.add(rel);
      } else if (exists(rel)) {
        files.add(rel);
      } else if (field !== "devDependencies") {
        throw new AppError(`package.json ${field}: ${name} is ${JSON.stringify(spec)}, but the app has no ${rel}` +
          `${isDir(rel) ? "/package.json" : ""}`);
      }
    }
  }
  return { dirs: [...dirs].sort(), files: [...files].sort() };
}

//: A dependency from a git repository (`github:user/repo`, `git+ssh://...`, `user/repo#tag`) is
//: cloned by the package manager with git, and the hosts' shortcuts and git+ssh over ssh, which the
//: build image may lack: npm then fails with "An unknown git error occurred" (git or ssh: not
//: found). Said first, in one line, with what to do.
const GIT_SPEC = /^(git(\+[a-z]+)?:|github:|gitlab:|bitbucket:|gist:|[A-Za-z0-9][\w.-]*\/[\w.-]+(#.*)?$)/;
const SSH_SPEC = /^(git\+ssh:|github:|gitlab:|bitbucket:|gist:|[A-Za-z0-9][\w.-]*\/[\w.-]+(#.*)?$)/;

function checkGitDependencies(pkg) {
  if (!pkg) return;
  const has = (tool) => (process.env.PATH || "").split(":").some((d) => d && exists(path.join(d, tool)));
  const git = has("git");
  const ssh = has("ssh");
  if (git && ssh) return;
  const found = [];
  for (const field of ["dependencies", "devDependencies", "optionalDependencies"]) {
    const deps = pkg[field];
    if (!deps || typeof deps !== "object") continue;
    for (const [name, spec] of Object.entries(deps)) {
      const s = typeof spec === "string" ? spec.trim() : "";
      if (GIT_SPEC.test(s) && (!git || SSH_SPEC.test(s))) found.push(`${name} (${s})`);
    }
  }
  if (found.length) {
    throw new AppError(`${found.join(", ")} ${found.length > 1 ? "come" : "comes"} from git` +
      (git ? " over ssh, and the build image has no ssh" : ", and the build image has no git") +
      ": publish it to a registry, or pack it into the app (npm pack in its checkout, then " +
      "\"NAME\": \"file:vendor/NAME-VERSION.tgz\" in package.json)");
  }
}

// -- Node.js version ---------------------------------------------------------------------------

//: A version file's text as the stack choice reads it: UTF-8, or UTF-16 after its byte order mark
//: (PowerShell 5's `echo 20 > .nvmrc` writes UTF-16: its bytes were read as the range).
function versionFileText(file) {
  const data = fs.readFileSync(file);
  const units = data.subarray(2, 2 + ((data.length - 2) & ~1));
  if (data[0] === 0xff && data[1] === 0xfe) return units.toString("utf16le");
  if (data[0] === 0xfe && data[1] === 0xff) return Buffer.from(units).swap16().toString("utf16le");
  return data.toString("utf8");
}

//: What the app asks for, and where it says so: engines.node, else .nvmrc, else .node-version.
function nodeRequest(pkg) {
  // Paketo's $BP_NODE_VERSION (`--env BP_NODE_VERSION=22.*`), before the app's files as Paketo
  // reads it: a Paketo user's setting was ignored, and the app built on another Node.js.
  const env = (process.env.BP_NODE_VERSION || "").trim().replace(/^v(?=\d)/, "");
  if (env) return isLtsAlias(env) ? ltsRequest(env, "$BP_NODE_VERSION") : { range: env, source: "$BP_NODE_VERSION" };
  if (pkg && pkg.engines && typeof pkg.engines.node === "string" && pkg.engines.node.trim()) {
    const asked = pkg.engines.node.trim();
    if (isLtsAlias(asked)) return { ...ltsRequest(asked, "package.json engines.node"), asked: true };
    return { range: asked, source: "package.json engines.node", asked: true };
  }
  for (const file of [".nvmrc", ".node-version"]) {
    if (!exists(file)) continue;
    const line = versionFileText(file).split("\n").map((l) => l.replace(/#.*/, "").trim()).find(Boolean);
    if (!line) continue;
    const v = line.replace(/^v(?=\d)/, "");
    if (isLtsAlias(v)) return { ...ltsRequest(v, file), asked: true };
    if (/^(node$|stable$|latest$)/i.test(v)) {
      return { range: "*", source: `${file} ${JSON.stringify(line)} (taken as the newest release)`, asked: true };
    }
    return { range: v, source: file, asked: true };
  }
  return dependenciesRequest(pkg);
}

//: A comparator set (one alternative of a range: every comparator holds) as its tightest lower and
//: upper bound (and any exact version); null when no version satisfies it. Intersecting ranges
//: pairs their alternatives: Angular's nine packages of "^20.19.0 || ^22.12.0 || >=24.0.0" made
//: 3^9 sets, a 3 MB range ("Argument list too long"), kept to 3 when each is tightened.
function tighten(comparators, semver) {
  let lo = null;
  let hi = null;
  const exact = [];
  for (const c of comparators) {
    if (!c.value) continue;  // any version
    if (c.operator === ">" || c.operator === ">=") {
      const d = lo ? semver.compare(c.semver, lo.semver) : 1;
      if (d > 0 || (d === 0 && c.operator === ">")) lo = c;
    } else if (c.operator === "<" || c.operator === "<=") {
      const d = hi ? semver.compare(c.semver, hi.semver) : -1;
      if (d < 0 || (d === 0 && c.operator === "<")) hi = c;
    } else {
      exact.push(c);
    }
  }
  if (lo && hi) {
    const d = semver.compare(lo.semver, hi.semver);
    if (d > 0 || (d === 0 && (lo.operator === ">" || hi.operator === "<"))) return null;
  }
  const kept = [...exact, lo, hi].filter(Boolean);
  return exact.every((e) => kept.every((c) => c.test(e.semver))) ? kept : null;
}

//: The app asks for nothing, but its own dependencies do: package-lock.json records each
//: package's engines.node, and a framework checks it when it runs (next@16: "Node.js version
//: >=20.9.0 is required"; Vite 7 and Angular 20 likewise). When the stack's Node.js fails one of
//: the app's direct dependencies' (dependencies, devDependencies: the build runs with them),
//: the request is every such range at once (their intersection, as node-semver reads a range).
//: npm only warns (EBADENGINE), so without this the build failed later, in the framework.
//: The direct dependencies whose engines.node (as package-lock.json records it) the stack's
//: Node.js does not satisfy: { what, range } each.
function failingDependencies(pkg, lockfile, semver) {
  const lock = lockfile ? readJSON(lockfile) : null;
  const packages = lock && typeof lock.packages === "object" && lock.packages;
  if (!packages) return [];  // lockfile v1 (npm 6): no engines recorded
  const names = [...new Set([pkg.dependencies, pkg.devDependencies, pkg.optionalDependencies]
    .flatMap((deps) => (deps && typeof deps === "object" ? Object.keys(deps) : [])))].sort();
  const failing = [];
  for (const name of names) {
    const entry = packages[`node_modules/${name}`];
    const range = entry && entry.engines && typeof entry.engines.node === "string" ? entry.engines.node.trim() : "";
    if (!range || !semver.validRange(range) || semver.satisfies(process.versions.node, range)) continue;
    failing.push({ what: `${name}@${entry.version} ${range}`, range });
  }
  return failing;
}

//: A start script that runs node on a TypeScript file (`node src/index.ts`, as Node.js 22.18+
//: and 23.6+ run it, stripping the types): on an older Node.js it failed as it started
//: (ERR_UNKNOWN_FILE_EXTENSION); with --experimental-strip-types, 22.6+. [{ what, range }] when the
//: stack's Node.js cannot, else [].
const NODE_RUNS_TS = /(?:^|[\s;&|(])node((?:\s+-[^\s]+)*)\s+([^\s;&|)-][^\s;&|)]*\.[mc]?ts)(?=$|[\s;&|)])/;

function typeScriptStart(pkg, semver) {
  const start = pkg.scripts && typeof pkg.scripts.start === "string" ? pkg.scripts.start : "";
  // Without a start script, `main` is what runs (node MAIN): "main": "src/index.ts" too.
  const main = !start.trim() && typeof pkg.main === "string" && /\.[mc]?ts$/.test(pkg.main.trim()) ? pkg.main.trim() : "";
  const m = main ? ["", "", main] : NODE_RUNS_TS.exec(start);
  if (!m) return [];
  const range = /--experimental-strip-types/.test(m[1]) ? ">=22.6.0" : "^22.18.0 || >=23.6.0";
  if (semver.satisfies(process.versions.node, range)) return [];
  return [{ what: `${main ? "main, which runs as node" : "scripts.start runs node on"} ${m[2]}, TypeScript, which ` +
    `Node.js ${range} runs`, range }];
}

function dependenciesRequest(pkg, asked) {
  if (!pkg) return null;
  const lockfile = ["npm-shrinkwrap.json", "package-lock.json"].find(exists);
  const semver = loadSemver();
  const deps = failingDependencies(pkg, lockfile, semver);
  const needs = [...deps, ...typeScriptStart(pkg, semver)];
  if (!needs.length) return null;
  // The app's own request, which the stack's Node.js satisfies ("engines.node": ">=18"), is
  // narrowed to what they need, when some release satisfies both.
  const failing = asked ? [{ what: "", range: asked.range }, ...needs] : needs;
  let sets = [[]];  // (a || b) and (c || d): every pairing of their comparator sets, each tightened
  for (const { range } of failing) {
    const next = new Map();
    for (const s of sets) {
      for (const alt of new semver.Range(range).set) {
        const t = tighten([...s, ...alt], semver);
        if (t) next.set(t.map((c) => c.value).join(" "), t);
      }
    }
    sets = [...next.values()];
  }
  sets = sets.map((s) => s.map((c) => c.value).join(" ")).filter((r) => semver.validRange(r || "*"));
  if (asked && !sets.length) return null;
  const who = needs.map((f) => f.what).join(", ");
  // Not asked for by the app, so not the newest release (often a Current, odd line) but the
  // newest LTS line that has a matching release, as the rest of its requests are (lts/*).
  // A failed lookup fails the build (AppError), as lts/*'s does: never another Node.js by chance.
  let versions = npmJSON(["view", "node", "versions"]);
  if (typeof versions === "string") versions = [versions];
  const any = sets.map((r) => r || "*").join(" || ") || failing[0].range;
  const line = ltsMajors(versions).reverse().find((m) => semver.maxSatisfying(versions, `${any}`) &&
    semver.maxSatisfying(versions.filter((v) => semver.valid(v) && semver.major(v) === m), any));
  const range = line === undefined ? any : [...new Set(sets.map((r) => tighten(
    new semver.Range(`${r} >=${line}.0.0 <${line + 1}.0.0-0`).set[0], semver)).filter(Boolean)
    .map((t) => t.map((c) => c.value).join(" ")))].join(" || ");
  const lts = line === undefined ? "" : `: the newest LTS line with a match, Node.js ${line}`;
  const of = deps.length ? `engines.node of the app's dependencies in ${lockfile}` : "what the app runs";
  if (asked) return { range, source: `${asked.source} ${asked.range}, narrowed to ${of} (${who}${lts}):` };
  return { range, source: `${of} (${who}; the app sets none${lts})` };
}

//: lts/*, lts/-N or lts/<codename> as the range of its major line (nodelts.js); the release
//: list, for lts/* and lts/-N only, is the npm registry's `node` package's versions.
function ltsRequest(spec, file) {
  try {
    const lts = ltsRange(spec, () => {
      const versions = npmJSON(["view", "node", "versions"]);
      return typeof versions === "string" ? [versions] : versions;
    });
    return { range: lts.range, source: `${file} ${JSON.stringify(spec)} (${lts.why})` };
  } catch (err) {
    if (err instanceof LtsError) throw new AppError(`${file}: ${err.message}`);
    throw err;
  }
}

function checkNode(pkg) {
  let wanted = nodeRequest(pkg);
  const have = process.versions.node;
  if (!wanted) return { range: "", source: "", stackOk: true, note: "" };
  const semver = loadSemver();
  if (!semver.validRange(wanted.range)) {
    throw new AppError(`${wanted.source} ${JSON.stringify(wanted.range)} is not a valid version range`);
  }
  // The app's own request that the stack's Node.js satisfies, but not its dependencies'
  // engines.node or the TypeScript its start script runs: vite 7 (^20.19.0 || >=22.12.0) in an
  // app of "engines": {"node": ">=18"} failed its build on the stack's 18.
  if (wanted.asked && semver.satisfies(have, wanted.range)) wanted = dependenciesRequest(pkg, wanted) || wanted;
  const [ts] = pkg ? typeScriptStart(pkg, semver) : [];
  const ok = semver.satisfies(have, wanted.range);
  const note = ok ? `${wanted.source} ${wanted.range}: the stack's Node.js ${have}`
    : `${wanted.source} ${wanted.range} is not satisfied by the stack's Node.js ${have} (${stackName()}): ` +
      "installing a matching official build from the npm registry";
  // none that runs it: the request is the app's to change
  const warn = ts && !semver.intersects(wanted.range, ts.range) ? `\nwarning: ${ts.what}: ${wanted.source} ` +
    `${wanted.range} gives none of those: it fails as it starts (ERR_UNKNOWN_FILE_EXTENSION); ask for one that runs ` +
    "it (engines.node \">=22.18\"), or compile it first" : "";
  return { range: wanted.range, source: wanted.source, stackOk: ok, note: note + warn };
}

// -- start command -------------------------------------------------------------------------------

const SHELL_CHARS = /[$|&;<>()`*?~"'\\]/;
//: A shell variable assignment before the command (`NODE_ENV=production node server.js`): npm
//: runs scripts with a shell, which reads it as the command's environment; exec would take it
//: for the program's name.
const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*=/;

//: What startCommand changed in the start script, said by plan and explain.
const START_NOTES = [];

//: `node --env-file=.env server.js` (Node.js 20.6+; tsx and bun read it too) fails as it starts
//: when the file is not in the app ("node: .env: not found"), and it is not: a .env is ignored by
//: git (its secrets stay out of the image). The flag is left out of the web process then, and the
//: variables come from the platform (docker run -e, pallet run --env), as in production.
function dropMissingEnvFiles(script, dir) {
  return script.replace(/(^|\s)--env-file(?:=|\s+)("[^"]*"|'[^']*'|[^\s;&|]+)/g, (flag, _before, quoted) => {
    const file = quoted.replace(/^(["'])(.*)\1$/, "$2");
    if (exists(path.join(dir || ".", file))) return flag;
    START_NOTES.push(`${flag.trim()} left out of the web process: ${file} is not in the app (git ignores it, or it is not committed); ` +
      "give its variables at run time (docker run -e, pallet run --env)");
    return "";  // with the space before it: the one after it stays
  }).trim();
}

function fromScript(script, dir) {
  const s = dropMissingEnvFiles(script.trim(), dir);
  if (dir && dir !== ".") {
    return ["/bin/sh", "-c", `cd ${shq(dir)} && exec ${s}`];
  }
  if (SHELL_CHARS.test(s) || ASSIGNMENT.test(s)) return ["/bin/sh", "-c", s];
  return s.split(/\s+/);
}

//: Words a shell runs itself, which exec cannot (`cd`, `export`), or that end a compound command.
const SHELL_OWN = new Set(["cd", "export", "set", "unset", "readonly", ".", "source", "eval", "exit", "trap",
  "ulimit", "umask", "wait", "alias", "shift", "return", ":", "exec", "if", "then", "else", "elif", "fi", "for",
  "while", "until", "do", "done", "case", "esac", "{", "}", "!", "time", "function"]);

//: A script whose last command (after its last `&&` or `;`) is a simple one (`NODE_ENV=production
//: node server.js`, `node migrate.js && node server.js`, `concurrently "node api.js" "node
//: worker.js"`), with exec before that command's program (after its assignments); else the
//: script as it is. Debian's sh (dash) does not replace itself with a -c script's last command,
//: as bash (Heroku's and the CNB launcher's shell) does: as the container's PID 1 it kept the stop
//: signal from the app (the kernel drops SIGTERM for a PID 1 without a handler), so every docker
//: stop waited for its SIGKILL and no server shut down gracefully. A pipeline, `||`, `&`, a
//: subshell, redirection or command substitution leaves the script as it is.
function execSimple(script) {
  let quote = "";
  let last = 0;  // where the last command starts
  for (let i = 0; i < script.length; i++) {
    const c = script[i];
    if (quote === "'") {
      if (c === "'") quote = "";
    } else if (c === "\\") {
      i++;
    } else if (quote === '"') {
      if (c === '"') quote = "";
      else if (c === "`" || (c === "$" && script[i + 1] === "(")) return script;
    } else if (c === "'" || c === '"') {
      quote = c;
    } else if (c === ";" || (c === "&" && script[i + 1] === "&")) {
      if (c === "&") i++;
      last = i + 1;
    } else if (/[&|()<>`\n]/.test(c) || (c === "$" && script[i + 1] === "(")) {
      return script;
    }
  }
  const rest = script.slice(last);
  const words = rest.match(/^\s*((?:[A-Za-z_][A-Za-z0-9_]*=(?:"[^"]*"|'[^']*'|[^\s"']+)*\s+)*)(\S+)/);
  if (quote || !words || SHELL_OWN.has(words[2]) || ASSIGNMENT.test(words[2])) return script;
  const at = last + words[0].length - words[2].length;
  return `${script.slice(0, at)}exec ${script.slice(at)}`;
}

//: The command a process runs: a shell's one simple command with exec (execSimple).
function execShell(cmd) {
  return cmd.length === 3 && cmd[0] === "/bin/sh" && cmd[1] === "-c" ? ["/bin/sh", "-c", execSimple(cmd[2])] : cmd;
}

//: Commands that only set variables for the command after them (`cross-env NODE_ENV=production
//: node server.js`), as a shell does.
const ENV_SETTERS = ["cross-env", "cross-env-shell"];

//: The program a script runs: its first word after any variable assignments.
function commandWord(script) {
  const words = script.trim().split(/\s+/);
  while (words.length > 1 && ASSIGNMENT.test(words[0])) words.shift();
  return words[0];
}

const shq = (s) => (/^[A-Za-z0-9_./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

//: start scripts that run a front-end framework's development server (CRA and its wrappers craco
//: and react-app-rewired, Vite, Vue CLI, Angular, webpack, Gatsby, Docusaurus, Astro, Parcel,
//: Ember, Eleventy's --serve), also through npx (eleventy-base-blog's "npx @11ty/eleventy --serve"):
//: not a way to serve an app in production; the build output is.
const DEV_SERVER = /^(npx (-y |--yes )?)?((react-scripts|react-app-rewired|craco) start|vite( (dev|serve))?|vue-cli-service serve|ng serve|webpack-dev-server|webpack serve|gatsby develop|docusaurus start|astro dev|parcel( serve)?|ember serve|(@11ty\/)?eleventy( [^ ]+)* --serve)( |$)/;

//: A start script that only runs another script by name (`npm run dev`, `yarn dev`, with arguments
//: after `--`): followed for DEV_SERVER's test, as pallet/node-build's facts and pallet/static's
//: detect follow it (the same pattern in each).
const RUNS_SCRIPT = /^(?:npm run(?:-script)?|yarn(?: run)?|pnpm(?: run)?|bun run) ([A-Za-z0-9:_.][A-Za-z0-9:_.-]*)(?: -- (.*))?$/;

function devServerStart(pkg) {
  const scripts = pkg && pkg.scripts && typeof pkg.scripts === "object" ? pkg.scripts : {};
  let start = typeof scripts.start === "string" ? scripts.start.trim() : "";
  for (let i = 0; i < 8 && !DEV_SERVER.test(start); i++) {
    const m = RUNS_SCRIPT.exec(start);
    if (!m || m[1] === "start" || typeof scripts[m[1]] !== "string") break;
    start = [scripts[m[1]].trim(), m[2] || ""].join(" ").trim();
  }
  return DEV_SERVER.test(start) ? start : "";
}

//: Frameworks whose build script makes a Node.js server, run with node, and whose apps often have
//: no start script (their docs say to run the output): the dependency that says so, and the
//: server it builds. Nuxt's `nuxt generate` makes a static site instead (.output/public). The
//: same table is in pallet/node-build's facts and pallet/static's detect.
const SERVER_BUILDS = [
  ["@sveltejs/adapter-node", "build/index.js", "SvelteKit's adapter-node"],
  ["nuxt", ".output/server/index.mjs", "Nuxt's Nitro server"],
  ["nitropack", ".output/server/index.mjs", "Nitro's server"],
  ["@solidjs/start", ".output/server/index.mjs", "SolidStart's Nitro server"],
  ["@astrojs/node", "dist/server/entry.mjs", "Astro's Node.js adapter"],
];

//: Angular's server-side rendering (@angular/ssr): ng new --ssr keeps "start": "ng serve" and
//: writes the server's command as scripts["serve:ssr:<project>"] ("node dist/<project>/server/
//: server.mjs"); its browser/ has no index.html to serve statically. The script's file, else null.
const ANGULAR_SSR = /^node\s+(\S+\.m?js)$/;

function angularSsrEntry(pkg) {
  for (const [name, script] of Object.entries(pkg.scripts || {})) {
    const m = name.startsWith("serve:ssr:") && typeof script === "string" && ANGULAR_SSR.exec(script.trim());
    if (m) return m[1];
  }
  return null;
}

//: [entry, what makes it] when the build script makes a Node.js server (SERVER_BUILDS, Angular's
//: SSR), else null.
function serverBuild(pkg) {
  const build = pkg && pkg.scripts && typeof pkg.scripts.build === "string" ? pkg.scripts.build : "";
  if (!build || /\bgenerate\b/.test(build)) return null;
  const deps = { ...(pkg.devDependencies || {}), ...(pkg.dependencies || {}) };
  const found = SERVER_BUILDS.find(([dep]) => Object.prototype.hasOwnProperty.call(deps, dep));
  if (found) return [found[1], `${found[2]} (${found[0]})`];
  const ssr = Object.prototype.hasOwnProperty.call(deps, "@angular/ssr") && angularSsrEntry(pkg);
  if (ssr) return [ssr, "Angular's SSR server (@angular/ssr, scripts.serve:ssr:*)"];
  const qwik = QWIK_CITY.some((d) => Object.prototype.hasOwnProperty.call(deps, d)) && qwikServerEntry(pkg);
  return qwik ? [qwik, "Qwik City's server adapter (scripts.serve)"] : null;
}

//: Qwik City (Qwik 1's @builder.io/qwik-city, 2's @qwik.dev/router): `npm run qwik add node-server`
//: (or express, fastify) adds the adapter and "serve": "node server/entry.node-server", while
//: "start" stays the development server (vite --open --mode ssr). The file serve runs (.js added
//: as node adds it), else null. The same test in pallet/node-build's facts and pallet/static's detect.
const QWIK_CITY = ["@builder.io/qwik-city", "@qwik.dev/router"];
const QWIK_SERVE = /^node\s+([\w./-]+)$/;

function qwikServerEntry(pkg) {
  const m = pkg.scripts && typeof pkg.scripts.serve === "string" && QWIK_SERVE.exec(pkg.scripts.serve.trim());
  return m ? (/\.[mc]?js$/.test(m[1]) ? m[1] : `${m[1]}.js`) : null;
}

//: A Qwik City app without a server adapter (create-qwik's starters): its build makes neither a
//: server nor a site (dist/ holds no index.html) and node-build failed saying only that. The
//: plan fails naming the adapters (a build.server script is what `qwik add` writes).
function checkQwikAdapter(pkg) {
  const deps = pkg ? { ...(pkg.devDependencies || {}), ...(pkg.dependencies || {}) } : {};
  if (!QWIK_CITY.some((d) => Object.prototype.hasOwnProperty.call(deps, d)) || procfileWeb()) return;
  if (!pkg.scripts || typeof pkg.scripts.build !== "string" || pkg.scripts["build.server"]) return;
  throw new AppError("a Qwik City app without a server adapter: its build makes neither a server nor a site to serve; " +
    "add one: npm run qwik add node-server (a server: its serve script runs), or npm run qwik add static (a static site)");
}

//: SvelteKit's adapter-auto (`sv create`'s default) builds for the hosts it recognizes (Vercel,
//: Netlify, Cloudflare, ...) and elsewhere only says it found none: the build left neither a
//: server nor a site, and pallet/node-build failed after it, saying nothing of the adapter. A
//: svelte.config, or a vite.config (where sv create puts the adapter since SvelteKit 2.5x), that
//: imports it (unless a Procfile names the web process) fails the plan, naming the adapters that
//: work anywhere. (Only the failure depends on those files, as in checkSomethingStarts.)
const SVELTE_CONFIGS = ["svelte.config.js", "svelte.config.mjs", "svelte.config.ts", "vite.config.ts",
  "vite.config.js", "vite.config.mjs", "vite.config.mts"];

function checkSvelteKitAdapter(pkg) {
  const deps = pkg ? { ...(pkg.devDependencies || {}), ...(pkg.dependencies || {}) } : {};
  if (!Object.prototype.hasOwnProperty.call(deps, "@sveltejs/kit") || procfileWeb()) return;
  const config = SVELTE_CONFIGS.find((f) => exists(f) && fs.statSync(f).size < (1 << 20) &&
    /["']@sveltejs\/adapter-auto["']/.test(fs.readFileSync(f, "utf8")));
  if (!config) return;
  throw new AppError(`${config} uses @sveltejs/adapter-auto, which builds only for the hosts it recognizes (Vercel, ` +
    "Netlify, Cloudflare, ...): here its build makes neither a server nor a site; use @sveltejs/adapter-node for a " +
    "server (a devDependency, imported in its place), or @sveltejs/adapter-static for a static site");
}

//: Next.js's config files, and what makes its build a static site: `output: "export"` writes out/,
//: and `next start` refuses to serve it ("does not work with output: export"), though
//: create-next-app's start script stays "next start". The same test in pallet/node-build's facts
//: and pallet/static's detect.
const NEXT_CONFIGS = ["next.config.js", "next.config.mjs", "next.config.ts", "next.config.cjs", "next.config.mts"];
const NEXT_EXPORT = /\boutput\s*:\s*["'`]export["'`]/;

function nextStaticExport(pkg) {
  const deps = { ...(pkg && pkg.devDependencies), ...(pkg && pkg.dependencies) };
  if (!Object.prototype.hasOwnProperty.call(deps, "next")) return "";
  const config = NEXT_CONFIGS.find((f) => exists(f) && NEXT_EXPORT.test(fs.readFileSync(f, "utf8")));
  return config ? `${config} says output: "export"` : "";
}

function hasBuildOutputShape(pkg) {
  // A front-end app: a build script and nothing that starts a server (a development server
  // does not count, nor `next start` of a static export; nor does a build that makes a server,
  // nor a workspace's start script, which starts the app when the root has none: a monorepo
  // whose root builds every workspace).
  return !!(pkg && pkg.scripts && pkg.scripts.build &&
    (!pkg.scripts.start || devServerStart(pkg) || nextStaticExport(pkg)) && !pkg.main &&
    !ENTRY_FILES.some(exists) && !serverBuild(pkg) && !(!pkg.scripts.start && workspaceStarts(pkg)));
}

//: Whether a workspace (package.json workspaces or pnpm-workspace.yaml's packages, either) has a
//: start script: the rule pallet/node-build's facts and pallet/static's detect apply too.
function workspaceStarts(pkg) {
  const dirs = new Set([...workspaces(pkg, "npm"), ...workspaces(pkg, "pnpm")]);
  return [...dirs].some(hasStartScript);
}

//: Whether the workspace in directory d has a (non-empty) start script.
function hasStartScript(d) {
  const p = readJSON(path.join(d, "package.json"));
  return Boolean(p && p.scripts && typeof p.scripts.start === "string" && p.scripts.start.trim());
}

//: A root start script that only runs one workspace's start script through the package manager
//: (`yarn workspace @a/api start`, `npm start -w packages/api`, `pnpm --filter api start`,
//: `bun run --filter api start`) or Turborepo (`turbo run start`, `turbo start --filter=api`:
//: a devDependency's command), as monorepos write it: the run image has neither, so the image
//: runs that workspace's start script itself, in its directory. The workspace is named by its
//: package name or its directory (turbo without a filter: the one workspace with a start script,
//: the only one turbo would run); null when the script is anything else.
function delegatedStart(start, wsDirs) {
  if (SHELL_CHARS.test(start)) return null;
  const words = start.trim().split(/\s+/);
  if (words[0] === "npx" && words[1] === "turbo") words.shift();
  const tool = words.shift();
  if (!["yarn", "npm", "pnpm", "bun", "turbo"].includes(tool)) return null;
  if (tool === "turbo" && !words.some((w) => /^(--filter|-F)(=|$)/.test(w))) {
    const starters = wsDirs.filter(hasStartScript);
    if (starters.length !== 1) return null;
    words.push("--filter", starters[0]);
  }
  let selector = "";
  const rest = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    const eq = /^(--workspace|--filter)=(.+)$/.exec(w);
    if (eq && !selector) selector = eq[2];
    else if (["-w", "--workspace", "--filter", "-F"].includes(w) && !selector && i + 1 < words.length) {
      selector = words[++i];
    }
    else if (tool === "yarn" && w === "workspace" && i === 0 && i + 1 < words.length) selector = words[++i];
    else rest.push(w);
  }
  if (!selector || !["start", "run start", "run-script start"].includes(rest.join(" "))) return null;
  const dir = wsDirs.find((d) => d === path.normalize(selector.replace(/^\{(.*)\}$/, "$1")) ||
    readJSON(path.join(d, "package.json")).name === selector);
  if (!dir) return null;
  const p = readJSON(path.join(dir, "package.json"));
  const script = p.scripts && typeof p.scripts.start === "string" ? p.scripts.start.trim() : "";
  return script ? [dir, script, tool] : null;
}

//: The commands of the top-level packages (those npm links into node_modules/.bin) the production
//: install keeps, and those only devDependencies give, from an npm 7+ lockfile (which records
//: each package's commands and whether it is dev-only): { prod: Set, dev: Map command -> package },
//: or null without one.
function lockedCommands() {
  const file = ["npm-shrinkwrap.json", "package-lock.json"].find(exists);
  const lock = file ? readJSON(file) : null;
  if (!lock || !lock.packages || typeof lock.packages !== "object") return null;
  const prod = new Set();
  const dev = new Map();
  const devPkgs = new Set();
  for (const [key, p] of Object.entries(lock.packages)) {
    if (!key.startsWith("node_modules/") || key.slice(13).includes("/node_modules/") || !p) continue;
    if (p.dev) devPkgs.add(key.slice(13));
    if (!p.bin) continue;
    const names = typeof p.bin === "object" ? Object.keys(p.bin) : [];
    for (const name of names) {
      if (p.dev) dev.set(name, key.slice(13));
      else prod.add(name);
    }
  }
  for (const name of prod) dev.delete(name);
  return { prod, dev, devPkgs };
}

//: What a script runs that only a devDependency gives (lockedCommands' LOCKED): its command
//: (`nest start`), or a module node preloads (`node --import tsx src/index.ts`, `node -r
//: ts-node/register`, `-r dotenv/config`), which the image lacks as well: [what, package] or null.
function devOnlyUse(script, locked) {
  const word = commandWord(script);
  if (!locked || SHELL_CHARS.test(word)) return null;
  if (locked.dev.has(word)) return [word, locked.dev.get(word)];
  if (word !== "node") return null;
  const words = script.trim().split(/\s+/);
  for (let i = words.indexOf("node") + 1; i < words.length && words[i].startsWith("-"); i++) {
    const m = /^(--import|--require|-r|--loader|--experimental-loader)(?:=(.+))?$/.exec(words[i]);
    if (!m) continue;
    const spec = m[2] || words[++i] || "";
    const name = spec.split("/").slice(0, spec.startsWith("@") ? 2 : 1).join("/");
    if (locked.devPkgs.has(name)) return [`node ${m[1]} ${spec}`, name];
  }
  return null;
}

//: The root package's own lifecycle scripts, which the package manager runs at the end of an
//: install. The install runs in an install root holding only the manifests (node_modules then
//: depends on them alone), where these scripts find none of the app's files (`node
//: scripts/gen.js`, patch-package's patches/, prisma's schema) nor any devDependency (`"prepare":
//: "husky"`): so the install root's copy of package.json goes without them (the dependencies'
//: install scripts run as usual), and the root's install scripts run afterwards in /workspace
//: with the production modules. prepare (and prepublish) is for a development checkout or a
//: published package (git hooks, a build before publishing): not run for the image, as a
//: script whose command only a devDependency gives is not.
const ROOT_INSTALL_SCRIPTS = ["preinstall", "install", "postinstall"];
const ROOT_DEV_SCRIPTS = ["preprepare", "prepare", "postprepare", "prepublish"];

//: { run, skipped } when the root has such scripts, else null (its package.json as it is).
function rootScripts(pkg) {
  const scripts = pkg && pkg.scripts && typeof pkg.scripts === "object" ? pkg.scripts : {};
  const has = (n) => typeof scripts[n] === "string" && scripts[n].trim();
  if (![...ROOT_INSTALL_SCRIPTS, ...ROOT_DEV_SCRIPTS].some(has)) return null;
  const locked = lockedCommands();
  const run = [];
  const skipped = [];
  for (const name of ROOT_INSTALL_SCRIPTS.filter(has)) {
    // One that runs another script of the root (`npm run build`) is followed to what it runs.
    const own = ownScript(pkg, scripts[name]);
    const word = commandWord(own ? own[0] : scripts[name]);
    const dev = !SHELL_CHARS.test(word) && locked && locked.dev.get(word);
    if (own && own[1].includes("build") && typeof scripts.build === "string" && scripts.build.trim()) {
      skipped.push(`${name} (runs scripts.build, which pallet/node-build runs with the devDependencies)`);
    } else if (dev) {
      skipped.push(`${name} (runs ${word}, which only the devDependency ${dev} gives)`);
    } else {
      run.push(name);
    }
  }
  for (const name of ROOT_DEV_SCRIPTS.filter(has)) skipped.push(`${name} (a development or publishing hook)`);
  return { run, skipped };
}

//: The install root's package.json (FILE, a copy) without the root's lifecycle scripts.
function stripScripts(file) {
  const pkg = readJSON(file);
  for (const name of [...ROOT_INSTALL_SCRIPTS, ...ROOT_DEV_SCRIPTS]) {
    if (pkg.scripts && typeof pkg.scripts === "object") delete pkg.scripts[name];
  }
  fs.writeFileSync(file, JSON.stringify(pkg, null, 2) + "\n");
  return 0;
}

//: scripts.start as the run image can run it. A start script whose command only a devDependency
//: gives (`nest start`, `ts-node src/main.ts`) cannot: the image has production dependencies
//: only. A production start script beside it (NestJS's start:prod) is what runs then; else the
//: build stops with what to do, rather than an image that fails as it starts.
function rootStart(pkg, start) {
  const word = commandWord(start);
  const use = devOnlyUse(start, SHELL_CHARS.test(word) ? null : lockedCommands());
  const devOnly = use && use[1];
  // A front-end app's start script (a development server) is not what its image runs.
  if (!devOnly || hasBuildOutputShape(pkg)) return [fromScript(start, "."), "scripts.start"];
  // cross-env only sets variables for the command after them, as the shell does: without it,
  // the same script runs through sh (it is a devDependency as often as not).
  const rest = start.trim().split(/\s+/).slice(1);
  if (ENV_SETTERS.includes(word) && rest.length && ASSIGNMENT.test(rest[0]) && rest.some((w) => !ASSIGNMENT.test(w))) {
    return [["/bin/sh", "-c", rest.join(" ")], `scripts.start without ${word}, which only the devDependency ` +
      `${devOnly} gives: its variables set by sh`];
  }
  const why = `scripts.start ${JSON.stringify(start.trim())} runs ${use[0]}, which only the devDependency ${devOnly} ` +
    "gives (the image has production dependencies only)";
  for (const name of ["start:prod", "start:production"]) {
    const script = pkg.scripts[name];
    if (typeof script === "string" && script.trim()) return [fromScript(script, "."), `scripts.${name}: ${why}`];
  }
  throw new AppError(`${why}: add a start:prod script that runs the built app (e.g. "node dist/main.js"), make ` +
    `start run it, or move ${devOnly} to dependencies`);
}

//: A start script that only runs another script of the same package.json through the package
//: manager (`npm run serve`, `yarn serve`, `pnpm run start:prod -- --port 80`, `bun run serve`),
//: followed while it is one such call: the run image has no package manager, so the image runs
//: that script itself (with the arguments after `--`). [script, names followed, tool] or null.
function ownScript(pkg, start) {
  let script = start.trim();
  const via = [];
  let tool = "";
  while (via.length < 8 && !SHELL_CHARS.test(script)) {
    const words = script.split(/\s+/);
    if (!["npm", "yarn", "pnpm", "bun"].includes(words[0])) break;
    let rest = words.slice(1);
    let name = "";
    if (words[0] === "npm" && rest[0] === "start") name = "start";
    else if (["run", "run-script"].includes(rest[0]) && rest.length > 1) name = rest[1];
    else if (["yarn", "pnpm"].includes(words[0]) && rest.length && !rest[0].startsWith("-")) name = rest[0];
    else break;
    rest = rest.slice(name === rest[0] ? 1 : 2);
    if (rest[0] === "--") rest = rest.slice(1);
    else if (rest.length && words[0] === "npm") break;  // npm's own options: not followed
    const target = pkg.scripts[name];
    if (typeof target !== "string" || !target.trim() || via.includes(name) || (name === "start" && !via.length)) break;
    tool = words[0];
    via.push(name);
    script = [target.trim(), ...rest].join(" ");
  }
  return via.length ? [script, via, tool] : null;
}

//: Whether a command runs the app's build: its build script through the package manager (`npm run
//: build`, `yarn build`) or the build script's own text (`tsc` when "build" is "tsc").
function runsBuild(pkg, command) {
  const build = pkg.scripts && typeof pkg.scripts.build === "string" ? pkg.scripts.build.trim() : "";
  const c = command.trim();
  return Boolean(build) && (/^(npm run(-script)?|yarn( run)?|pnpm( run)?|bun run) build$/.test(c) || c === build);
}

//: A start script that builds first (`npm run build && node dist/index.js`), as one written for a
//: host that builds as it starts: pallet/node-build ran the build already, and the run image has
//: neither the package manager nor the devDependencies a build needs. What follows the build, or null.
function afterBuild(pkg, start) {
  const m = /^(.*?)&&(.*)$/s.exec(start.trim());
  return m && m[2].trim() && runsBuild(pkg, m[1]) ? m[2].trim() : null;
}

//: A start script whose steps joined by && run scripts of the root through the package manager
//: (hackathon-starter's `npm run scss && node app.js`): each such step is its script's command, as
//: npm runs it (the run image has no npm); one that runs the build is left out (it ran at build
//: time). The script with those steps replaced, or null when it has none (or quotes, which a
//: split at && could cut). Done once: what a replaced script itself runs is not followed again.
//: Only steps the image can run are replaced (runsInImage).
const INLINED = Symbol("own scripts inlined");

function withOwnScripts(pkg, start) {
  if (pkg[INLINED] || /["'`\\]|\$\(/.test(start)) return null;
  const steps = start.trim().split("&&").map((step) => step.trim());
  if (steps.length < 2 || steps.some((step) => !step)) return null;
  let changed = false;
  const kept = [];
  for (const step of steps) {
    const own = ownScript(pkg, step);
    if (runsBuild(pkg, step) || (own && own[1].includes("build"))) {
      changed = true;
      continue;
    }
    const inline = own && runsInImage(own[0]);
    changed = changed || Boolean(inline);
    kept.push(inline ? (/[;&|]/.test(own[0]) ? `{ ${own[0]}; }` : own[0]) : step);
  }
  return changed && kept.length ? kept.join(" && ") : null;
}

//: Whether each command of a script is node or a command a production dependency gives (the
//: npm lockfile says; without one, node only): a step the image could not run (`npm run lint`,
//: eslint a devDependency's or no package's) stays the package manager's, which the build names.
function runsInImage(script) {
  const locked = lockedCommands();
  return script.split(/&&|\|\||[;|&]/).every((part) => {
    const word = commandWord(part);
    return word === "node" || Boolean(locked && locked.prod.has(word));
  });
}

//: A prestart script, which `npm start` runs first (a migration, a check of the environment): run
//: before the start command, as npm runs it. Not one that runs the build or an install
//: (pallet/node-build and this buildpack did), nor one the image cannot run: a devDependency's
//: command (`"prestart": "npm run lint"`) or the package manager's (not in the run image); those
//: are named, and the app starts without them.
function withPrestart(pkg, [cmd, why]) {
  const pre = pkg.scripts && typeof pkg.scripts.prestart === "string" ? pkg.scripts.prestart.trim() : "";
  if (!pre || hasBuildOutputShape(pkg)) return [cmd, why];  // a front-end app's start script is not run
  if (runsBuild(pkg, pre)) return [cmd, `${why}; scripts.prestart runs the build, which ran at build time`];
  const own = ownScript(pkg, pre);
  const script = own ? own[0] : pre;
  const word = commandWord(script);
  if (/^(npm|yarn|pnpm|bun) (install|ci|i)( |$)/.test(script) || /^(yarn|pnpm|bun)$/.test(script)) {
    return [cmd, `${why}; scripts.prestart installs the dependencies, which the build did`];
  }
  const use = devOnlyUse(script, SHELL_CHARS.test(word) ? null : lockedCommands());
  const missing = use ? `${use[0]}, which only the devDependency ${use[1]} gives` :
    ["npm", "npx", "yarn", "pnpm", "bunx"].includes(word) ? `${word}, which the run image does not have` : "";
  if (missing) {
    START_NOTES.push(`warning: scripts.prestart ${JSON.stringify(pre)} (which npm start runs first) is not run: it runs ` +
      `${missing} (if it builds the app, make it the build script, run at build time)`);
    return [cmd, why];
  }
  const main = cmd[0] === "/bin/sh" && cmd[1] === "-c" && cmd.length === 3 ? cmd[2] : `exec ${cmd.map(shq).join(" ")}`;
  return [["/bin/sh", "-c", `${script} && ${main}`], `${why}; after scripts.prestart, as npm start runs it`];
}

//: A server file that listens on a port of its own (`Hapi.server({port: 3000})`, `app.listen(3000)`)
//: and never reads PORT: the image's web process would listen where requests to $PORT (8080
//: unless the platform sets another) never come, and the app looks dead. A warning, not an error:
//: the port may be the one the platform is told. Only the file node is given is read (1 MiB of
//: it, not through a link): a port from a module of its own is not guessed at. A file the build
//: makes (`node dist/main`, NestJS's start:prod) is read in its TypeScript source (serverSource).
//: Where a server file reads PORT: process.env.PORT, env["PORT"], `const { PORT = 3000 } = process.env`.
const READS_PORT = /\benv\s*(?:\.\s*PORT\b|\[\s*["'`]PORT["'`]\s*\])|\{[^{}]*\bPORT\b[^{}]*\}\s*=\s*(?:process\.)?env\b/;
//: A port of its own: `app.listen(3000)`, `{port: 3000}`, and Express's hello world, `const port =
//: 3000` then `app.listen(port)`.
const FILE_PORTS = [/\.listen\(\s*(\d{2,5})\b/, /\bport\s*:\s*(\d{2,5})\b/,
  /\b(?:const|let|var)\s+[Pp][Oo][Rr][Tt]\s*=\s*(\d{2,5})\s*(?:;|$)/m];

//: The server file `node FILE` runs and its text (1 MiB of it, not through a link), or null.
function serverFileText([program, ...args]) {
  const named = program === "node" ? args.find((a) => !a.startsWith("-")) : null;
  const file = named && serverSource(named);
  if (!file) return null;
  try {
    if (!fs.lstatSync(file).isFile()) return null;
    const fd = fs.openSync(file, "r");
    const buf = Buffer.alloc(1 << 20);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    fs.closeSync(fd);
    return [file, buf.subarray(0, n).toString("utf8")];
  } catch {
    return null;
  }
}

function filePortNote(server) {
  const [file, text] = server;
  const m = READS_PORT.test(text) ? null : FILE_PORTS.map((re) => re.exec(text)).find(Boolean);
  if (!m || m[1] === "8080") return null;
  return `warning: ${file} listens on port ${m[1]} (${m[0].trim()}) and never reads PORT: requests to $PORT (8080 unless ` +
    `the platform sets another) would not reach it; listen on process.env.PORT, or run the image with PORT=${m[1]} ` +
    `(pallet run -p ${m[1]})`;
}

//: A server file that listens on the loopback address only: `server.listen(port, hostname)` after
//: `const hostname = '127.0.0.1'` (Node.js's own getting-started server), `app.listen(PORT,
//: "localhost")`, `Hapi.server({ port, host: 'localhost' })` (Hapi's), or Fastify's
//: `fastify.listen({ port })`, whose host is localhost when none is given (its docs' first example;
//: fastify-cli's FASTIFY_ADDRESS does not reach it). In a container nothing from outside reaches
//: loopback: pallet run and every platform got no answer while the app logged that it listened.
//: Only a host given to listen or a server's options counts (a database's `host: 'localhost'` not).
const LOOPBACK = "[\"'`](?:localhost|127\\.0\\.0\\.1|::1)[\"'`]";
const FILE_LOOPBACK = [new RegExp(`\\.listen\\(\\s*[^;()]*?,[^,;()]*?${LOOPBACK}`),
  new RegExp(`(?:\\.listen|[Ss]erver)\\(\\s*\\{[^}]*?\\bhost\\s*:[^,}]*?${LOOPBACK}`)];
const LISTEN_HOST_NAMES = [/\.listen\(\s*[^;()]*?,\s*([A-Za-z_$][\w$]*)\s*[,)]/,
  /(?:\.listen|[Ss]erver)\(\s*\{[^}]*?\bhost\s*:\s*([A-Za-z_$][\w$]*)\s*[,}]/];
const FASTIFY = /\brequire\(\s*["'`]fastify["'`]\s*\)|\bfrom\s+["'`]fastify["'`]/;

//: Where the server file listens on loopback only: the text that says so, or null.
function loopbackListen(text) {
  const m = FILE_LOOPBACK.map((re) => re.exec(text)).find(Boolean);
  if (m) return m[0];
  for (const re of LISTEN_HOST_NAMES) {
    const name = re.exec(text);
    const set = name && new RegExp(`\\b(?:const|let|var)\\s+${name[1].replace(/\$/g, "\\$")}\\s*=[^;\\n]*?${LOOPBACK}`).exec(text);
    if (set) return set[0];
  }
  return null;
}

function fileHostNote(server) {
  const [file, text] = server;
  const found = loopbackListen(text);
  const fastify = !found && FASTIFY.test(text) && /\.listen\(/.test(text) && !/\bhost\b|0\.0\.0\.0|["'`]::["'`]/.test(text);
  if (!found && !fastify) return null;
  const what = found ? `listens on the loopback address only (${found.replace(/\s+/g, " ").trim()})` :
    "is a Fastify server whose listen() names no host: Fastify listens on localhost then";
  return `warning: ${file} ${what}: in a container no request from outside reaches it; listen on 0.0.0.0 ` +
    "(host: \"0.0.0.0\", or leave the host out where the server's default is every address)";
}

//: The file `node FILE` runs, as node finds it (FILE, FILE.js, .mjs, .cjs), or, when the build
//: makes it (none is there yet), the TypeScript file tsc compiles to it: under tsconfig.json's
//: outDir, the same path under its rootDir (src/ when it names none and src/ is there, as tsc's
//: common root of a NestJS or Express+tsc app's sources) ending .ts, .mts or .cts. Else null.
function serverSource(file) {
  const found = ["", ".js", ".mjs", ".cjs"].map((ext) => file + ext).find(exists);
  if (found) return found;
  const opts = tsconfigOptions();
  const outDir = typeof opts.outDir === "string" ? path.normalize(opts.outDir) : null;
  const rel = outDir ? path.relative(outDir, path.normalize(file)) : "";
  if (!rel || rel.startsWith("..") || path.isAbsolute(rel)) return null;
  const rootDir = typeof opts.rootDir === "string" ? opts.rootDir : isDir("src") ? "src" : ".";
  const base = path.join(rootDir, rel.replace(/\.[mc]?js$/, ""));
  return [".ts", ".mts", ".cts"].map((ext) => base + ext).find(exists) || null;
}

//: tsconfig.json's compilerOptions (its own, not those of a config it extends), read as tsc reads
//: it: JSON with comments and trailing commas. {} when there is none or it cannot be read.
function tsconfigOptions() {
  let text;
  try {
    text = exists("tsconfig.json") && fs.statSync("tsconfig.json").size < (1 << 20) ?
      fs.readFileSync("tsconfig.json", "utf8") : "";
  } catch {
    return {};
  }
  const json = text.replace(/("(?:[^"\\\n]|\\.)*")|\/\/[^\n]*|\/\*[\s\S]*?\*\//g, (m, str) => str || "")
    .replace(/,(\s*[}\]])/g, "$1");
  try {
    const opts = JSON.parse(json).compilerOptions;
    return opts && typeof opts === "object" && !Array.isArray(opts) ? opts : {};
  } catch {
    return {};
  }
}

//: `npx CMD ARGS` (`npx serve -s build`): npx runs an installed package's command, which the image
//: has on its PATH (node_modules/.bin), and the run image has no npx (npm's). CMD ARGS, or null
//: (also for `npx -p PKG CMD` and `npx PKG@VERSION`, which name a package to download).
function withoutNpx(start) {
  if (SHELL_CHARS.test(start)) return null;
  const words = start.trim().split(/\s+/);
  if (words[0] !== "npx") return null;
  let i = 1;
  while (["-y", "--yes", "--no-install", "--no", "--prefer-offline", "--offline"].includes(words[i])) i++;
  return i < words.length && /^[A-Za-z0-9_][\w.-]*$/.test(words[i]) ? words.slice(i).join(" ") : null;
}

//: Whether a web process runs Bun's runtime (`bun run src/index.ts`, `bun src/index.ts`, `bunx`):
//: the bun that installed the dependencies then goes into the image with them.
function runsBun(cmd) {
  const script = cmd[0] === "/bin/sh" && cmd[1] === "-c" ? cmd[2] : cmd.join(" ");
  return /(^|&&\s*|exec\s+|;\s*)(\w+=\S*\s+)*bunx?(\s|$)/.test(script);
}

//: A Procfile process run through the package manager (`web: npm start`, Heroku's convention;
//: `worker: yarn worker`, `release: npx prisma migrate deploy`): a plain command (no shell syntax)
//: whose program is npm, yarn, pnpm or npx. pallet/procfile's build leaves these to this buildpack
//: (the same test): the run image has none of those programs.
const PROCFILE_LINE = /^\s*([A-Za-z0-9._-]+):\s*(.*?)\s*$/;
const PM_PROGRAMS = ["npm", "yarn", "pnpm", "npx"];
//: The start script through the package manager: what `npm start` runs is the web process's command.
const RUNS_START = /^(npm|yarn|pnpm)( run| run-script)? start$/;

//: The Procfile's processes a package manager would run, as the run image runs them: the start
//: script's as the web process (`npm start`), another script run directly (`npm run worker --
//: ARGS`), a workspace's start script (`yarn workspace api start`), an installed package's command
//: (`npx prisma migrate deploy`). [type, command, why] each; an AppError for one that names no
//: script of package.json (the image could not run it: no npm there).
function procfileProcesses(pkg, wsDirs, web) {
  if (!pkg || !exists("Procfile")) return [];
  const found = [];
  for (const m of procfileEntries()) {
    if (SHELL_CHARS.test(m[2]) || !PM_PROGRAMS.includes(m[2].split(/\s+/)[0])) continue;
    const [type, cmd] = [m[1], m[2].replace(/\s+/g, " ")];
    const word = cmd.split(" ")[0];
    if (RUNS_START.test(cmd)) {
      found.push([type, web[0], `what ${cmd} runs: ${web[1]}`]);
      continue;
    }
    const ws = wsDirs.length ? delegatedStart(cmd, wsDirs) : null;
    const own = ownScript(pkg, cmd);
    const bare = withoutNpx(cmd);
    if (ws) found.push([type, fromScript(ws[1], ws[0]), `the start script of the workspace ${ws[0]}`]);
    else if (own) found.push([type, fromScript(own[0], "."), own[1].map((n) => `scripts.${n}`).join(", then ")]);
    else if (bare) {
      const locked = lockedCommands();
      if (locked && !locked.prod.has(bare.split(" ")[0])) {
        throw new AppError(`Procfile ${type}: ${JSON.stringify(cmd)}: ${bare.split(" ")[0]} is the command of no ` +
          "production dependency in the lockfile (npx would download it; the image has no npx): add its package to dependencies");
      }
      found.push([type, bare.split(" "), `${bare.split(" ")[0]}, an installed package's command`]);
    } else {
      throw new AppError(`Procfile ${type}: ${JSON.stringify(cmd)} runs ${word}, which the run image does not have, ` +
        "and names no script of package.json to run instead: make it run a script (npm run NAME) or the command itself");
    }
  }
  return found;
}

//: A web process that runs Bun's runtime needs the bun that installed the dependencies (it goes
//: into the image with them): said by plan and by explain (pallet detect).
function checkBunRuntime(cmd, mgr) {
  if (runsBun(cmd) && mgr.tool !== "bun") {
    throw new AppError(`the web process runs bun (${cmd.join(" ")}), which is in the image only when bun installs ` +
      "the app's dependencies (bun.lock or packageManager bun@...): add bun.lock (bun install), or start it with node");
  }
}

//: Programs of the package manager, absent from the run image, and runners that start npm scripts
//: through npm (npm-run-all's run-s and run-p).
const NEEDS_NPM = ["npm", "npx", "yarn", "pnpm", "pnpx", "npm-run-all", "run-s", "run-p"];

//: The package manager program a command runs, where a shell would start it (`npm start --prefix
//: server`, `cd server && npm start`, `NODE_ENV=production npm run serve`, `cross-env PORT=80 yarn
//: serve`), or null. Each part of a list or pipeline, after assignments, exec, env and cross-env;
//: and each command concurrently runs.
function packageManagerIn(cmd) {
  const script = cmd[0] === "/bin/sh" && cmd[1] === "-c" && cmd.length === 3 ? cmd[2] : cmd.join(" ");
  for (const part of script.split(/&&|\|\||[;|&]/)) {
    const words = part.trim().split(/\s+/).filter(Boolean);
    while (words.length > 1 && (ASSIGNMENT.test(words[0]) || ["exec", "env", ...ENV_SETTERS].includes(words[0]))) {
      words.shift();
    }
    if (NEEDS_NPM.includes(words[0])) return words[0];
    const inner = words[0] === "concurrently" ? concurrentlyPackageManager(words.slice(1)) : null;
    if (inner) return inner;
  }
  return null;
}

//: The package manager one of concurrently's commands runs (`concurrently "npm run server" "npm
//: run client"`, or its shorthand `npm:server`), or null: the image started concurrently, whose
//: commands then failed (npm: not found), and the container stopped.
function concurrentlyPackageManager(args) {
  for (const arg of args) {
    const short = /^["']?(npm|yarn|pnpm):\S/.exec(arg);
    if (short) return short[1];
    const first = /^["']/.test(arg) ? arg.replace(/^["']+|["']+$/g, "") : "";
    if (NEEDS_NPM.includes(first)) return first;
  }
  return null;
}

//: A process that runs the package manager could never start (the run image has none): a build
//: error. The web process unless the Procfile names its own, and the Procfile's processes this
//: buildpack resolved (`web: npm start` runs what scripts.start does); not when a production
//: dependency gives the program (the npm package, as a few apps have).
function checkNoPackageManager(cmd, procfile) {
  const procs = new Map(procfile.map(([type, c]) => [type, c]));
  if (!procs.has("web") && !procfileWeb()) procs.set("web", cmd);
  for (const [type, c] of procs) {
    const pm = packageManagerIn(c);
    if (!pm) continue;
    const npm = NEEDS_NPM.indexOf(pm) > 4 ? "npm" : pm;  // npm-run-all's commands start npm
    const locked = lockedCommands();
    if (locked && locked.prod.has(npm)) continue;
    throw new AppError(`the ${type} process (${c.join(" ")}) runs ${npm === pm ? pm : `${pm}, which runs npm`}, which ` +
      "the run image does not have (it has node and the production dependencies): make scripts.start run the app " +
      "itself (node server.js), or name the web process in a Procfile");
  }
}

//: The Procfile's lines that name a process type: PROCFILE_LINE's matches ([, type, command]).
function procfileEntries() {
  if (!exists("Procfile")) return [];
  return fs.readFileSync("Procfile", "utf8").split("\n")
    .map((line) => PROCFILE_LINE.exec(line.replace(/\r$/, ""))).filter(Boolean);
}

//: Whether the Procfile names a web process (pallet/procfile's then, whatever this buildpack says).
function procfileWeb() {
  return procfileEntries().some((m) => m[1] === "web");
}

function procfileNote([type, cmd, why]) {
  return `Procfile ${type}: ${cmd.join(" ")} (${why}: the run image has no npm, yarn or pnpm)`;
}

//: `pm2 start app.js` starts pm2's daemon, which forks the app, and returns: as a container's
//: process it exited at once, and the container with it (pm2's docs say pm2-runtime, or
//: --no-daemon, in containers). Its last command, `pm2 start ...` without --no-daemon, gets it.
const PM2_START = /(^|&&\s*|;\s*|\s)(pm2 start(?:\s+[^;&|]*?)?)(\s*)$/;

function pm2Foreground([cmd, why]) {
  const sh = cmd[0] === "/bin/sh" && cmd[1] === "-c" && cmd.length === 3;
  const script = sh ? cmd[2] : cmd.join(" ");
  const m = PM2_START.exec(script);
  if (!m || /\s--no-daemon\b/.test(m[2])) return [cmd, why];
  const fixed = `${script.slice(0, m.index + m[1].length)}${m[2]} --no-daemon${m[3]}`;
  START_NOTES.push(`${m[2].trim()} runs with --no-daemon: without it pm2 starts its daemon and returns, and the ` +
    "container stops at once (pm2-runtime, of the same package, is pm2's command for containers)");
  return [sh ? ["/bin/sh", "-c", fixed] : fixed.split(/\s+/), why];
}

//: Heroku's build steps, scripts it runs around the install (`heroku-postbuild` instead of
//: `build`: a MERN app's "npm install --prefix client && npm run build --prefix client"). pallet
//: runs neither: said, rather than an image that starts without what they make.
function herokuNotes(pkg) {
  const scripts = pkg && pkg.scripts && typeof pkg.scripts === "object" ? pkg.scripts : {};
  const hasBuild = typeof scripts.build === "string" && scripts.build.trim();
  return ["heroku-prebuild", "heroku-postbuild", "heroku-cleanup"].filter((n) => typeof scripts[n] === "string" &&
    scripts[n].trim()).map((n) => `warning: scripts.${n} (a Heroku build step) is not run: pallet runs ` +
    `scripts.build (with devDependencies)${hasBuild ? "" : ", which this app lacks"}: make that script do what the ` +
    "app needs built");
}

//: A port written into the web process's command (`PORT=3000 node server.js`, `next start -p
//: 3000`, `serve -s build -l 3000`): the server listens there, while the platform sends requests
//: to $PORT (8080 unless it sets another), so none reached it. A warning, as pallet/python's for
//: `app.run(port=5000)`: the image is what the app asks for. One reading $PORT (`-p $PORT`,
//: `${PORT:-3000}`) is not one.
//: Without one in the command, the server file node runs is looked at (filePortNote).
const FIXED_PORT = /(?:^|[\s;&|(])(?:PORT=(\d+)|(?:-p|--port|-l|--listen)(?:=|\s+)(\d+))(?=$|[\s;&|)])/;

function portNotes(cmd) {
  const script = cmd[0] === "/bin/sh" && cmd[1] === "-c" && cmd.length === 3 ? cmd[2] : cmd.join(" ");
  const m = FIXED_PORT.exec(script);
  const server = serverFileText(cmd);
  const host = server ? [fileHostNote(server)] : [];
  if (!m) return [server && filePortNote(server), ...host].filter(Boolean);  // else one the server file node runs writes
  return [...host, `warning: the web process listens on port ${m[1] || m[2]} (${m[0].trim()}), but requests come to $PORT ` +
    "(8080 unless the platform sets another): they would never reach it; leave the port to the server's default " +
    "(most read PORT) or pass $PORT"];
}

function startCommand(pkg, wsDirs) {
  START_NOTES.push(...herokuNotes(pkg));
  const started = pm2Foreground(rootStartCommand(pkg, wsDirs));
  if (pkg) checkStartFileIsMade(pkg, started[0]);
  START_NOTES.push(...portNotes(started[0]));
  return pkg && pkg.scripts && typeof pkg.scripts.start === "string" && pkg.scripts.start.trim() ?
    withPrestart(pkg, started) : started;
}

function rootStartCommand(pkg, wsDirs) {
  if (!pkg) {
    const entry = ENTRY_FILES.find(exists);
    if (!entry) throw new AppError(`no package.json and none of ${ENTRY_FILES.join(", ")}`);
    return [["node", entry], `${entry}, no package.json`];
  }
  const start = pkg.scripts && pkg.scripts.start;
  const server = serverBuild(pkg);
  if (server && (typeof start !== "string" || !start.trim() || devServerStart(pkg))) {
    const dev = devServerStart(pkg) ? `scripts.start is a development server (${devServerStart(pkg)}); ` : "no scripts.start: ";
    return [["node", server[0]], `${dev}the server scripts.build makes with ${server[1]}`];
  }
  if (typeof start === "string" && start.trim()) {
    const rest = afterBuild(pkg, start);
    if (rest) {
      const [cmd, why] = rootStartCommand({ ...pkg, scripts: { ...pkg.scripts, start: rest } }, wsDirs);
      return [cmd, `scripts.start ${JSON.stringify(start.trim())} without its build, which ran at build time` +
        (why === "scripts.start" ? "" : `; ${why}`)];
    }
    const inlined = withOwnScripts(pkg, start);
    if (inlined) {
      const [cmd, why] = rootStartCommand({ ...pkg, scripts: { ...pkg.scripts, start: inlined }, [INLINED]: true }, wsDirs);
      return [cmd, `scripts.start ${JSON.stringify(start.trim())} with the scripts it runs through the package manager ` +
        `as their commands (the run image has none)${why === "scripts.start" ? "" : `; ${why}`}`];
    }
    const ws = wsDirs.length ? delegatedStart(start, wsDirs) : null;
    if (ws) {
      return [fromScript(ws[1], ws[0]), `scripts.start ${JSON.stringify(start.trim())}: the start script of the ` +
        `workspace ${ws[0]}, run directly (the run image has no ${ws[2]})`];
    }
    const bare = withoutNpx(start);
    if (bare) {
      const word = bare.split(/\s+/)[0];
      const locked = lockedCommands();
      if (locked && !locked.prod.has(word) && !locked.dev.has(word) && !hasBuildOutputShape(pkg)) {
        throw new AppError(`scripts.start ${JSON.stringify(start.trim())}: ${word} is the command of no package in ` +
          "the lockfile (npx would download it as the app starts; the image has no npx): add the package that " +
          "gives it to dependencies");
      }
      const [cmd, why] = rootStartCommand({ ...pkg, scripts: { ...pkg.scripts, start: bare } }, wsDirs);
      return [cmd, `scripts.start ${JSON.stringify(start.trim())} without npx (the run image has none; ${word} is ` +
        `an installed package's command, on the image's PATH)${why === "scripts.start" ? "" : `; ${why}`}`];
    }
    const own = ownScript(pkg, start);
    if (own) {
      const [cmd, why] = rootStart(pkg, own[0]);
      return [cmd, `scripts.start ${JSON.stringify(start.trim())}: ${own[1].map((n) => `scripts.${n}`).join(", then ")}, ` +
        `run directly (the run image has no ${own[2]})${why === "scripts.start" ? "" : `; ${why}`}`];
    }
    return rootStart(pkg, start);
  }
  // npm init writes "main": "index.js" whatever the app's file is, and npm start never reads main
  // (it runs server.js): a main that is no file of the app, which no build makes, does not start it.
  let staleMain = "";
  if (typeof pkg.main === "string" && pkg.main) {
    const file = path.normalize(pkg.main);
    const built = pkg.scripts && typeof pkg.scripts.build === "string" && pkg.scripts.build.trim();
    if (built || wsDirs.length || [file, `${file}.js`, `${file}.cjs`, `${file}.mjs`, path.join(file, "index.js")].some(exists)) {
      return [["node", pkg.main], "main"];
    }
    staleMain = `, and main ${JSON.stringify(pkg.main)} is no file of the app`;
  }
  if (wsDirs.length) {
    const starters = wsDirs.filter(hasStartScript);
    if (starters.length === 1) {
      const p = readJSON(path.join(starters[0], "package.json"));
      return [fromScript(p.scripts.start, starters[0]), `scripts.start of the workspace ${starters[0]}, the only ` +
        "one with a start script"];
    }
    if (starters.length > 1) {
      throw new AppError(`several workspaces have a start script (${starters.join(", ")}) and the root has none: ` +
        "add a start script to the root package.json that starts the one to run, or a Procfile");
    }
  }
  checkSomethingStarts(pkg, staleMain);
  // npm's own default (npm start runs server.js), else index.js; chosen when the app starts, so
  // that the image depends on package.json alone, not on which files the app has.
  return [["/bin/sh", "-c", "if [ -f server.js ]; then exec node server.js; else exec node index.js; fi"],
    staleMain ? `no scripts.start${staleMain}: server.js, else index.js` : "no scripts.start or main: server.js, else index.js"];
}

//: No start script, main or workspace to start, and neither server.js nor index.js (nor a build
//: that could make one, nor a Procfile naming the processes): the image could never start (Cannot
//: find module '/workspace/index.js'), as a Hono or Express starter whose only script is its
//: development server ("dev": "tsx watch src/index.ts") built. A build error naming what it found.
//: (Only a failure depends on these files: a plan that passes still depends on package.json alone.)
function checkSomethingStarts(pkg, staleMain) {
  const scripts = pkg.scripts && typeof pkg.scripts === "object" ? pkg.scripts : {};
  if (typeof scripts.build === "string" && scripts.build.trim()) return;
  if (["server.js", "index.js", "Procfile"].some(exists)) return;
  const dev = ["dev", "serve", "develop"].find((n) => typeof scripts[n] === "string" && scripts[n].trim());
  const files = fs.readdirSync(".").filter((f) => /\.(m?js|cjs|ts|mts)$/.test(f) && exists(f)).sort().slice(0, 4);
  const build = namedBuild(scripts);
  throw new AppError(`nothing starts the app: no scripts.start${staleMain || ", no main"}, and no server.js or index.js ` +
    "(what npm start runs without them)" + (dev ? `; scripts.${dev} ${JSON.stringify(scripts[dev].trim())} is for ` +
    "development" : "") + (files.length ? `; the app's top-level scripts: ${files.join(", ")}` : "") +
    (build ? `; scripts.${build} is not scripts.build, which pallet runs: if it builds the site, name it build ` +
      `("build": ${JSON.stringify(scripts[build].trim())}; its output is served), else add` : ": add") +
    " a start script that runs the server with node (\"start\": \"node server.js\"; TypeScript compiled by a " +
    "build script first), or a Procfile");
}

//: `node FILE` as the web process, FILE not in the app, and what would make it not run: no build
//: script, prestart or Procfile, and the root's install script that would is not run, its command
//: a devDependency's (GCP's sample-node-tsc compiles in "postinstall": "tsc --build"): the image
//: died as it started (Cannot find module). A build error naming the script and the way out. (Only a failure depends on the file: a plan that passes depends on package.json alone.)
function checkStartFileIsMade(pkg, cmd) {
  const scripts = pkg.scripts && typeof pkg.scripts === "object" ? pkg.scripts : {};
  const has = (n) => typeof scripts[n] === "string" && scripts[n].trim();
  if (cmd[0] !== "node" || has("build") || has("prestart") || exists("Procfile") || hasBuildOutputShape(pkg)) return;
  const file = cmd.slice(1).find((a) => !a.startsWith("-"));
  if (!file || ["", ".js", ".mjs", ".cjs", "/index.js"].some((ext) => exists(file + ext))) return;
  const root = rootScripts(pkg);
  // a postinstall of the app's own that runs (node scripts/gen.js) may make it
  if (!root || root.run.length) return;
  const skipped = ROOT_INSTALL_SCRIPTS.find((n) => has(n) && root.skipped.some((why) => why.startsWith(`${n} (runs `)));
  if (!skipped) return;
  throw new AppError(`the web process runs node ${file}, which is not in the app, and nothing makes it: ` +
    `scripts.${skipped} ${JSON.stringify(scripts[skipped].trim())} would, but it runs a devDependency's command, and ` +
    "the image's install has production dependencies only; name it build (\"build\": " +
    `${JSON.stringify(scripts[skipped].trim())}), which pallet runs at build time with the devDependencies`);
}

//: A build script under another name (`docs:build`, what `vitepress init` writes, `build:prod`):
//: pallet runs scripts.build alone, so a site built by such a script gave no image. Its name, or null.
function namedBuild(scripts) {
  return Object.keys(scripts).sort().find((n) => /^[\w.-]+:build$|^build:[\w.-]+$/.test(n) &&
    typeof scripts[n] === "string" && scripts[n].trim()) || null;
}

// -- commands ------------------------------------------------------------------------------------

function sha256(file) {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

const quote = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

function plan(layers, bpDir) {
  process.env.npm_config_cache = process.env.npm_config_cache || path.join(layers, "npm-cache");  // lts/*'s lookup
  const pkg = readPackage();
  const mgr = manager(pkg);
  const wsDirs = pkg ? workspaces(pkg, mgr.tool) : [];
  if (mgr.tool === "yarn" && !mgr.berry && mgr.lockfile && wsDirs.length) checkYarn1Workspaces(pkg, wsDirs);
  checkGitDependencies(pkg);
  const node = checkNode(pkg);
  const key = crypto.createHash("sha256");
  key.update(`node ${process.versions.node} ${node.range}\ntool ${mgr.tool} ${mgr.version} ${mgr.lockfile}\n`);
  const local = pkg ? localDeps(pkg) : { dirs: [], files: [] };
  const localDirs = local.dirs.filter((d) => !wsDirs.includes(d));
  const manifests = MANIFESTS.filter(exists).concat(wsDirs.map((d) => path.join(d, "package.json")),
    localDirs.map((d) => path.join(d, "package.json")), local.files);
  for (const name of manifests) key.update(`${name} ${sha256(name)}\n`);
  for (const rel of ["bin/build", "lib/nodeapp.js"]) {
    key.update(`buildpack ${rel} ${sha256(path.join(bpDir, rel))}\n`);
  }
  const frontend = hasBuildOutputShape(pkg);
  checkSvelteKitAdapter(pkg);
  checkQwikAdapter(pkg);
  // (Plug'n'Play installs in /workspace itself, where the root's scripts find the app.)
  const root = pkg && !(mgr.berry && mgr.linker === "pnp") ? rootScripts(pkg) : null;
  const out = {
    HAS_PACKAGE_JSON: pkg ? "1" : "", TOOL: mgr.tool, TOOL_VERSION: mgr.version, TOOL_INSTALL: mgr.install,
    TOOL_HAVE: mgr.have, BERRY: mgr.berry ? "1" : "", YARN_LINKER: mgr.linker, YARN_OFFLINE: mgr.offline ? "1" : "", YARN_FOCUS: mgr.focus ? "1" : "",
    LOCKFILE: mgr.lockfile, MANIFESTS: manifests.join("\n"), WORKSPACES: wsDirs.join(" "),
    NODE_VERSION: process.versions.node, NODE_RANGE: node.range, NODE_SOURCE: node.source,
    NODE_STACK_OK: node.stackOk ? "1" : "", KEY: key.digest("hex"), NOTES: node.note,
    HAS_BUILD_SCRIPT: pkg && pkg.scripts && pkg.scripts.build ? "1" : "", FRONTEND: frontend ? "1" : "",
    NPM_ENGINES: mgr.enginesNpm || "", NPM_PINNED: mgr.npmPinned ? "1" : "",
    LOCAL_DIRS: localDirs.join(" "), ROOT_SCRIPTS: root ? "1" : "", ROOT_RUN: root ? root.run.join(" ") : "",
    ROOT_SKIPPED: root ? root.skipped.join(", ") : "",
  };
  const [cmd, why] = startCommand(pkg, wsDirs);
  out.WEB = `${cmd.join(" ")} (${why})`;
  out.BUN_RUNTIME = runsBun(cmd) ? "1" : "";
  if (!frontend) checkBunRuntime(cmd, mgr);
  const procfile = procfileProcesses(pkg, wsDirs, [cmd, why]);
  if (!frontend) checkNoPackageManager(cmd, procfile);
  START_NOTES.push(...procfile.map(procfileNote));
  if (START_NOTES.length) out.WEB += `\n${START_NOTES.join("\n")}`;
  for (const [k, v] of Object.entries(out)) console.log(`${k}=${quote(v)}`);
  // A file the build makes (dist/server.js, Angular SSR's server.mjs) is in pallet/node-build's
  // layer, linked from /workspace, and a server that listens only when it is the main module
  // (isMainModule, process.argv[1] === __filename) compares with the path node was given: node
  // keeps that path (--preserve-symlinks-main) for this command only. In NODE_OPTIONS it also
  // kept node_modules/.bin/next's, whose require("../server/require-hook") then failed.
  const launched = (c) => out.HAS_BUILD_SCRIPT && c[0] === "node" && c.length > 1 && !c[1].startsWith("-")
    ? ["node", "--preserve-symlinks-main", ...c.slice(1)] : execShell(c);
  const procs = new Map([["web", launched(cmd)]]);
  for (const [type, c] of procfile) procs.set(type, launched(c));
  const toml = [...procs].map(([type, c]) => `[[processes]]\ntype = ${tomlString(type)}\n` +
    `command = [${c.map(tomlString).join(", ")}]\n${type === "web" ? "default = true\n" : ""}`).join("\n");
  fs.writeFileSync(path.join(layers, "launch.toml"), toml);
  return 0;
}

function tomlString(text) {
  // A TOML basic string. JSON's escapes are TOML's, but JSON leaves DEL as it is and writes a
  // lone surrogate as \ud800, both invalid TOML: a start script with either failed the build on
  // launch.toml, naming neither the script nor package.json. A lone surrogate names no file or
  // program anyway: it becomes U+FFFD.
  const wellFormed = text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
  return JSON.stringify(wellFormed).replace(/\x7f/g, "\\u007f");
}

//: ``pallet detect``'s account of what the build will do, one line each (nothing installed).
function explain() {
  const pkg = readPackage();
  const lines = [];
  try {
    const mgr = manager(pkg);
    const wsDirs = pkg ? workspaces(pkg, mgr.tool) : [];
    if (mgr.tool === "yarn" && !mgr.berry && mgr.lockfile && wsDirs.length) checkYarn1Workspaces(pkg, wsDirs);
    checkGitDependencies(pkg);
    const node = checkNode(pkg);
    checkSvelteKitAdapter(pkg);
    checkQwikAdapter(pkg);
    if (!pkg) {
      lines.push("no package.json: nothing to install");
    } else {
      const tool = mgr.have ? `${mgr.tool} ${mgr.have} (the build image's)` : mgr.install ?
        `${mgr.install} (installed from the npm registry, build only)` : `the stack's ${mgr.tool}`;
      const how = !mgr.lockfile ? "npm install (no lockfile: not reproducible)" :
        mgr.tool === "npm" ? `npm ci --omit=dev (${mgr.lockfile})` :
        mgr.berry ? `yarn install --immutable, ${mgr.focus ? "then production only (" : "devDependencies included (yarn " +
          `${mgr.version} has no workspaces focus without its workspace-tools plugin; `}${mgr.lockfile}, nodeLinker ${mgr.linker}` +
          `${mgr.offline ? ", offline cache .yarn/cache" : ""})` :
        `${mgr.tool} install --frozen-lockfile, production dependencies (${mgr.lockfile})`;
      lines.push(`${how} with ${tool}`);
      if (wsDirs.length) lines.push(`workspaces: ${wsDirs.join(", ")} (installed once, at the root)`);
      const local = localDeps(pkg);
      const localDirs = local.dirs.filter((d) => !wsDirs.includes(d));
      if (localDirs.length || local.files.length) {
        lines.push(`local packages: ${[...localDirs, ...local.files].join(", ")} (from the app, by path)`);
      }
      const root = !(mgr.berry && mgr.linker === "pnp") ? rootScripts(pkg) : null;
      if (root) {
        lines.push("the app's own lifecycle scripts are not run in the install root" +
          (root.run.length ? `; ${root.run.join(", ")} run in /workspace after it` : "") +
          (root.skipped.length ? `; not run for the image: ${root.skipped.join(", ")}` : ""));
      }
    }
    lines.push(node.range ? node.note.replace(": installing", ": will install") :
      `Node.js ${process.versions.node} from the stack`);
    if (hasBuildOutputShape(pkg)) {
      const dev = devServerStart(pkg);
      const exported = !dev && pkg.scripts.start && nextStaticExport(pkg);
      lines.push("scripts.build runs at build time (with devDependencies); " + (dev ?
        `scripts.start is a development server (${dev}), not run in the image; no main or server file` : exported ?
        `${exported}: a static site (next start does not serve it); no main or server file` :
        "no start script, main or server file") + ": its output (dist/, build/, out/, _site/, public/ if the build makes it) is served as static files by " +
        "pallet-static");
    } else {
      if (pkg && pkg.scripts && pkg.scripts.build) lines.push("scripts.build runs at build time (with devDependencies)");
      const [cmd, why] = startCommand(pkg, wsDirs);
      checkBunRuntime(cmd, mgr);
      const procfile = procfileProcesses(pkg, wsDirs, [cmd, why]);
      checkNoPackageManager(cmd, procfile);
      lines.push(`web: ${cmd.join(" ")} (${why})`, ...START_NOTES, ...procfile.map(procfileNote));
    }
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    lines.push(`the build will fail: ${err.message}`);
  }
  for (const line of lines) console.log(line);
  return 0;
}

function npmJSON(args) {
  const done = childProcess.spawnSync("npm", [...args, "--json"], { encoding: "utf8", timeout: 300000,
    stdio: ["ignore", "pipe", "pipe"] });
  if (done.status !== 0) {
    throw new AppError(`npm ${args.join(" ")} failed: ${(done.stderr || done.stdout || "").trim().split("\n").pop()}`);
  }
  return JSON.parse(done.stdout || "null");
}

function resolveNode(range, arch) {
  const semver = loadSemver();
  const name = `node-linux-${{ amd64: "x64", arm64: "arm64", ppc64le: "ppc64le", s390x: "s390x" }[arch] || arch}`;
  let versions = npmJSON(["view", name, "versions"]);
  if (typeof versions === "string") versions = [versions];
  const best = semver.maxSatisfying(versions, range);
  if (!best) {
    const majors = [...new Set(versions.filter((v) => semver.valid(v)).map((v) => semver.major(v)))]
      .sort((a, b) => a - b);
    const newest = majors.map((m) => semver.maxSatisfying(versions, `${m}.x`));
    throw new AppError(`no Node.js matches ${JSON.stringify(range)}: tried the stack's ${process.versions.node} and ` +
      `the official builds on the npm registry (${name}: ${versions.length} versions, newest of each major ` +
      `${newest.slice(-8).join(", ")})`);
  }
  const dist = npmJSON(["view", `${name}@${best}`, "dist"]);
  if (!dist || !/^sha512-/.test(dist.integrity || "")) {
    throw new AppError(`the npm registry gives no sha512 integrity for ${name}@${best}: not installing it`);
  }
  for (const [k, v] of Object.entries({ NODE_PKG: name, NODE_RESOLVED: best, NODE_INTEGRITY: dist.integrity })) {
    console.log(`${k}=${quote(v)}`);
  }
  return 0;
}

//: What `fetch-tool` answers when npm must install the tool instead (not a fault).
const NOT_BY_ITSELF = 3;


async function fetchTool(spec, prefix) {
  // A package manager is one self-contained package (pnpm, yarn, @yarnpkg/cli-dist: bundled, no
  // dependencies, no install scripts): its release's tarball, checked against the registry's
  // sha512, unpacked where `npm install -g` puts it. npm's own start and its fetch of the whole
  // packument (every release's metadata) cost more than the download itself.
  const m = /^((?:@[a-z0-9._-]+\/)?[a-z0-9._-]+)@(\d+\.\d+\.\d+)$/.exec(spec || "");
  if (!m || !prefix) return NOT_BY_ITSELF;
  const [, name, version] = m;
  let manifest;
  try {
    manifest = JSON.parse((await httpget.getURL(`https://registry.npmjs.org/${name.replace("/", "%2f")}/${version}`, { limit: 8 << 20 }))
      .toString("utf8"));
  } catch (_) {
    return NOT_BY_ITSELF;  // npm tries, with its retries and its proxy settings, and says why
  }
  const scripts = manifest.scripts || {};
  const deps = { ...(manifest.dependencies || {}), ...(manifest.optionalDependencies || {}) };
  const integrity = (manifest.dist && manifest.dist.integrity) || "";
  // Bundled dependencies are in the tarball (npm's own release bundles all of its).
  const bundled = manifest.bundleDependencies || manifest.bundledDependencies;
  const unbundled = Object.keys(deps).filter((d) => bundled !== true && !(Array.isArray(bundled) && bundled.includes(d)));
  if (manifest.name !== name || manifest.version !== version || unbundled.length || scripts.preinstall ||
      scripts.install || scripts.postinstall || !/^sha512-/.test(integrity) || !manifest.dist.tarball) {
    return NOT_BY_ITSELF;
  }
  let tgz;
  try {
    tgz = await httpget.getURL(manifest.dist.tarball);
  } catch (_) {
    return NOT_BY_ITSELF;
  }
  const got = "sha512-" + crypto.createHash("sha512").update(tgz).digest("base64");
  if (got !== integrity) {
    throw new AppError(`${spec} from the npm registry does not match its integrity hash (${got}, the registry ` +
      `says ${integrity}): not installing it`);
  }
  const dir = path.join(prefix, "lib", "node_modules", name);
  fs.rmSync(prefix, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(prefix, ".download.tgz");
  fs.writeFileSync(file, tgz);
  const tar = childProcess.spawnSync("tar", ["-xzf", file, "-C", dir, "--strip-components=1", "--no-same-owner"],
    { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
  fs.rmSync(file, { force: true });
  if (tar.status !== 0) throw new AppError(`cannot unpack ${spec}: ${(tar.stderr || "").trim()}`);
  let bins = manifest.bin || {};
  if (typeof bins === "string") bins = { [name.split("/").pop()]: bins };
  fs.mkdirSync(path.join(prefix, "bin"), { recursive: true });
  for (const [bin, rel] of Object.entries(bins)) {
    const target = path.resolve(dir, String(rel));
    if (!/^[A-Za-z0-9._-]+$/.test(bin) || path.relative(dir, target).startsWith("..") || !fs.existsSync(target)) {
      throw new AppError(`${spec}: its bin ${JSON.stringify(bin)} -> ${JSON.stringify(rel)} is not a file of the package`);
    }
    fs.chmodSync(target, 0o755);
    fs.symlinkSync(path.relative(path.join(prefix, "bin"), target), path.join(prefix, "bin", bin));
  }
  console.log(`${spec}: its tarball from the registry, sha512 checked (${Object.keys(bins).join(", ")})`);
  return 0;
}

function relink(layer, ...wsDirs) {
  // npm, yarn and pnpm link a workspace's package into node_modules (node_modules/a ->
  // ../packages/a); in the install root that is the copy holding only package.json: point it at
  // the app's. The root's node_modules and each workspace's own.
  const root = path.resolve(layer);
  const walk = (dir, depth) => {
    let entries;
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (_) {
      return;
    }
    for (const e of entries) {
      const full = path.join(dir, e.name);
      if (e.isSymbolicLink()) {
        const target = path.resolve(dir, fs.readlinkSync(full));
        const rel = path.relative(root, target);
        if (!rel.startsWith("..") && !rel.split(path.sep).includes("node_modules")) {
          fs.unlinkSync(full);
          fs.symlinkSync(path.join(WORKSPACE, rel), full);
        }
      } else if (e.isDirectory() && depth < 3 && (e.name.startsWith("@") || e.name === "node_modules")) {
        walk(full, depth + 1);
      }
    }
  };
  for (const dir of [".", ...wsDirs]) walk(path.join(root, dir, "node_modules"), 0);
  return 0;
}

function main(argv) {
  const [cmd, ...args] = argv;
  try {
    if (cmd === "plan") return plan(...args);
    if (cmd === "explain") return explain();
    if (cmd === "resolve-node") return resolveNode(...args);
    if (cmd === "relink") return relink(...args);
    if (cmd === "strip-scripts") return stripScripts(args[0]);
    if (cmd === "npm-for-node") {
      console.log(npmFor(args[0], args[1] || ""));
      return 0;
    }
    if (cmd === "fetch-tool") {
      fetchTool(...args).then((code) => { process.exitCode = code; }, (err) => {
        console.error(`error: ${err instanceof AppError ? err.message : err}`);
        process.exitCode = 1;
      });
      return undefined;
    }
    if (cmd === "tool-version") {
      const bin = onPath(args[0] || "");
      console.log(bin ? toolVersion(bin) || "?" : "?");
      return 0;
    }
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    console.error(`error: ${err.message}`);
    return 1;
  }
  console.error(`nodeapp.js: unknown command ${cmd}`);
  return 2;
}

const code = main(process.argv.slice(2));
if (code !== undefined) process.exitCode = code;
