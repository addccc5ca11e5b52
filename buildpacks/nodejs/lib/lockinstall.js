// pallet's lockfile installer: the node_modules `npm ci` makes from a package-lock.json (v2/v3),
// for the lockfiles where that is a download-and-unpack: every package a registry tarball with
// its integrity, no links, no npm settings (install scripts are npm's: `npm rebuild` runs them
// once every package is in place, as npm ci's last step does). `npm ci` spends
// most of a cold install starting npm and walking its tree (~0.5 s before the first download on
// two cores); here the downloads start at once, many at a time, and each is unpacked as it lands.
//
// The tree is the one npm 9's `npm ci` makes, byte for byte (tests/test_lockinstall.py builds
// apps both ways and compares the images' digests): the same packages (dev omitted or not,
// optional ones for another platform or Node.js left out), pacote's unpacking rules (first path
// part stripped, only files, links dropped, modes `mode | 0o666 | 0o600` under the umask, a
// .gitignore named .npmignore), and bin-links' .bin links (in path order, the first wins; the
// target made executable, a CRLF hashbang line fixed).
//
// Anything else is npm's: having written nothing, the installer runs `npm ci` with the same
// options (which also gives npm's own error for a lockfile out of sync with package.json), and
// exits as it does; so does BP_NPM_INSTALLER=npm. A TERM stops npm too (the buildpack's early
// install is killed when the plan wants another).
//
//   node lockinstall.js --omit=dev|--include=dev [npm ci's other options]     (in the install root)
//
// Exit: npm's, or 0 installed; 1 a package's download does not match the lockfile's integrity
// (as npm ci fails: EINTEGRITY).
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const zlib = require("zlib");
const httpget = require("./httpget.js");

const NPM = 3;
const REGISTRY = "https://registry.npmjs.org/";
const SOCKETS = 15;                 // npm's maxsockets
const MAX_TARBALL = 1 << 30;        // bytes, compressed and unpacked: beyond, npm streams it
const SETTINGS_NPM_SETS = new Set(["cache", "update_notifier", "fund", "audit", "progress", "nodedir",
  "loglevel", "prefer_offline", "script_shell", "user_agent"]);
const ALGORITHMS = ["sha512", "sha384", "sha256", "sha1"];   // strongest first, as ssri picks

class ToNpm extends Error {}        // npm installs this one: the message says why
class Fatal extends Error {}

// -- whether this lockfile is one to install here ------------------------------------------------

function loadSemver() {
  const semver = httpget.loadSemver();
  if (!semver) throw new ToNpm("no semver module");
  return semver;
}

function npmVersion() {
  // The npm `npm ci` would be: the build image's (its package.json, up from the real npm-cli.js).
  for (const dir of (process.env.PATH || "").split(":")) {
    let real;
    try {
      real = fs.realpathSync(path.join(dir, "npm"));
    } catch (_) {
      continue;
    }
    for (let d = path.dirname(real), i = 0; i < 4; d = path.dirname(d), i++) {
      try {
        const pkg = JSON.parse(fs.readFileSync(path.join(d, "package.json"), "utf8"));
        if (pkg.name === "npm" && typeof pkg.version === "string") return pkg.version;
      } catch (_) {}
    }
    break;
  }
  throw new ToNpm("no npm found on PATH");
}

//: Settings of an app's .npmrc that change nothing npm ci installs (saving, messages, npm init's
//: and version's, peer resolution when the lockfile is made); engine-strict is checked.
const HARMLESS = new Set(["save", "save-exact", "save-prefix", "fund", "audit", "update-notifier", "progress",
  "loglevel", "color", "unicode", "message", "sign-git-commit", "sign-git-tag", "git-tag-version",
  "tag-version-prefix", "init-author-name", "init-author-email", "init-author-url", "init-license", "init-version",
  "legacy-peer-deps", "strict-peer-deps", "engine-strict"]);

function checkSettings(root) {
  // npm's settings change what it installs and from where (a registry, a token, a proxy,
  // omit/include, ignore-scripts, a umask...): with any but the app's harmless ones, npm
  // installs. Answers whether engine-strict is on.
  let engineStrict = false;
  const npmrc = path.join(root, ".npmrc");
  if (fs.existsSync(npmrc)) {
    let text;
    try {
      text = fs.readFileSync(npmrc, "utf8");
    } catch (err) {
      throw new ToNpm(`cannot read .npmrc: ${err.message}`);
    }
    for (const raw of text.split(/\r?\n/)) {
      const line = raw.trim();
      if (!line || line.startsWith("#") || line.startsWith(";")) continue;
      const eq = line.indexOf("=");
      const key = (eq < 0 ? line : line.slice(0, eq)).trim().toLowerCase();
      const value = eq < 0 ? "true" : line.slice(eq + 1).trim();
      if (!HARMLESS.has(key) || value.includes("${")) throw new ToNpm(`.npmrc sets ${key}`);
      if (key === "engine-strict") engineStrict = !["false", "0", ""].includes(value.toLowerCase());
    }
  }
  for (const name of Object.keys(process.env)) {
    const lower = name.toLowerCase();
    if (lower.startsWith("npm_config_") && !SETTINGS_NPM_SETS.has(lower.slice("npm_config_".length))) {
      throw new ToNpm(`npm setting ${name}`);
    }
    if (["http_proxy", "https_proxy", "all_proxy"].includes(lower)) throw new ToNpm(`${name} is set`);
  }
  return engineStrict;
}

function checkGlobalSettings() {
  // The user's and the system's npmrc: whatever they say is npm's to apply.
  for (const f of [path.join(process.env.HOME || "/nonexistent", ".npmrc"), "/etc/npmrc", "/usr/etc/npmrc"]) {
    if (fs.existsSync(f)) throw new ToNpm(`npm settings in ${f}`);
  }
}

function checkEngines(pkg, lock, semver, npmVer) {
  // engine-strict: npm ci refuses a required package (the app's own too) whose engines this
  // Node.js or npm does not satisfy (EBADENGINE): npm says so.
  for (const [location, listed] of Object.entries(lock.packages)) {
    const entry = location === "" ? pkg : listed;   // the app's own: its package.json
    if (entry && typeof entry === "object" && !entry.optional && !installable(entry, semver, npmVer).engineOk) {
      throw new ToNpm(`engine-strict, and ${location || "the app"} asks for another Node.js or npm`);
    }
  }
}

const DEP_FIELDS = ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies"];

function sameObject(a, b) {
  const ka = Object.keys(a || {}).sort();
  const kb = Object.keys(b || {}).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && (a[k] === b[k]));
}

function checkInSync(pkg, lock, semver) {
  // npm ci refuses a lockfile out of sync with package.json; npm says so in its words.
  const rootEntry = lock.packages[""];
  if (!rootEntry || typeof rootEntry !== "object") throw new ToNpm("the lockfile has no root entry");
  for (const field of ["workspaces", "overrides", "bundleDependencies", "bundledDependencies"]) {
    if (pkg[field] !== undefined) throw new ToNpm(`package.json has ${field}`);
  }
  for (const field of DEP_FIELDS) {
    if (!sameObject(pkg[field], rootEntry[field])) throw new ToNpm(`package.json's ${field} differ from the lockfile's`);
    for (const [name, spec] of Object.entries(pkg[field] || {})) {
      const node = lock.packages[`node_modules/${name}`];
      if (!node) {
        if (field === "optionalDependencies" || field === "peerDependencies") continue;
        throw new ToNpm(`${name} is not in the lockfile`);
      }
      if (typeof spec !== "string" || !semver.validRange(spec, true) || typeof node.version !== "string" ||
          !semver.satisfies(node.version, spec, true)) {
        throw new ToNpm(`${name}@${spec} is not a registry range the lockfile's ${node.version} satisfies`);
      }
    }
  }
}

// A package's place: node_modules/NAME (@SCOPE/NAME), nested under another's; no part starting
// with a dot, and no control character or backslash anywhere (no npm name has one; a NUL made
// the unpacking fail with Node.js's own message).
const PART = String.raw`[^/.\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]*`;
const NAME_AT = String.raw`node_modules/(?:@${PART}/)?${PART}`;
const LOCATION = new RegExp(String.raw`^${NAME_AT}(?:/${NAME_AT})*$`);

function checkList(value, list) {
  // npm-install-checks' rule: none of the negated values, and one of the others if any.
  if (typeof list === "string") list = [list];
  if (!Array.isArray(list)) return true;
  if (list.length === 1 && list[0] === "any") return true;
  let negated = 0;
  let match = false;
  for (const entry of list) {
    const negate = String(entry).startsWith("!");
    const test = negate ? String(entry).slice(1) : String(entry);
    if (negate) {
      negated++;
      if (value === test) return false;
    } else {
      match = match || value === test;
    }
  }
  return match || negated === list.length;
}

function installable(entry, semver, npmVer) {
  // npm's reify: an optional package for another OS, CPU or Node.js (engines) is skipped.
  const platformOk = (!entry.os || checkList(process.platform, entry.os)) && (!entry.cpu || checkList(process.arch, entry.cpu));
  const eng = entry.engines;
  const opt = { includePrerelease: true };
  const engineOk = !eng || typeof eng !== "object" ||
    (!(eng.node && !semver.satisfies(process.version, String(eng.node), opt)) &&
     !(eng.npm && !semver.satisfies(npmVer, String(eng.npm), opt)));
  return { platformOk, engineOk };
}

function edgesOf(location, entry) {
  // A package's dependencies as arborist's edges: [name, optional]. optionalDependencies win
  // over dependencies; a peer is optional when peerDependenciesMeta says so; devDependencies
  // count for the root only.
  const edges = new Map();
  const meta = (entry.peerDependenciesMeta && typeof entry.peerDependenciesMeta === "object") ? entry.peerDependenciesMeta : {};
  for (const name of Object.keys(entry.peerDependencies || {})) edges.set(name, !!(meta[name] && meta[name].optional));
  if (location === "") for (const name of Object.keys(entry.devDependencies || {})) edges.set(name, false);
  for (const name of Object.keys(entry.dependencies || {})) edges.set(name, false);
  for (const name of Object.keys(entry.optionalDependencies || {})) edges.set(name, true);
  return edges;
}

function resolveIn(packages, from, name) {
  // Node.js's lookup over the lockfile's locations: from's own node_modules, then each parent's.
  for (let at = from; ; at = at.includes("/node_modules/") ? at.slice(0, at.lastIndexOf("/node_modules/")) : "") {
    const candidate = at === "" ? `node_modules/${name}` : `${at}/node_modules/${name}`;
    if (Object.prototype.hasOwnProperty.call(packages, candidate)) return candidate;
    if (at === "") return null;
  }
}

function optionalSet(failed, edgesIn, edgesOut) {
  // arborist's optional-set.js: up the non-optional edges to the optional boundary, then every
  // package depended on (not optionally) only from inside the set.
  const set = new Set([failed]);
  for (const node of set) {
    for (const [from, optional] of edgesIn.get(node) || []) if (!optional) set.add(from);
  }
  const deps = new Set(set);
  for (const node of deps) {
    for (const [to, optional] of edgesOut.get(node) || []) if (!optional) deps.add(to);
  }
  let changed = true;
  while (changed && deps.size) {
    changed = false;
    for (const dep of deps) {
      if ((edgesIn.get(dep) || []).some(([from, optional]) => !optional && !deps.has(from))) {
        deps.delete(dep);
        changed = true;
      }
    }
  }
  return deps;
}

function plan(lock, omitDev, semver, npmVer) {
  // Which lockfile entries npm ci would unpack, in location order: not the devDependencies it
  // omits, nor an optional package for another platform or Node.js with the packages only it
  // needs (arborist's optional set).
  const packages = lock.packages;
  const edgesIn = new Map();
  const edgesOut = new Map();
  for (const [location, entry] of Object.entries(packages)) {
    if (!entry || typeof entry !== "object") throw new ToNpm(`the lockfile's ${JSON.stringify(location)} is not an entry`);
    if (location !== "" && (!LOCATION.test(location) || location.split("/").some((p) => p === ".." || p === "." || p === ""))) {
      throw new ToNpm(`the lockfile names a package at ${JSON.stringify(location)}`);
    }
    const out = [];
    for (const [name, optional] of edgesOf(location, entry)) {
      const to = resolveIn(packages, location, name);
      if (to === null) continue;
      out.push([to, optional]);
      if (!edgesIn.has(to)) edgesIn.set(to, []);
      edgesIn.get(to).push([location, optional]);
    }
    edgesOut.set(location, out);
  }
  const removed = new Set();
  for (const [location, entry] of Object.entries(packages)) {
    if (location === "") continue;
    const { platformOk, engineOk } = installable(entry, semver, npmVer);
    if (!entry.optional) {
      // npm ci's ideal tree refuses a required package for another platform (EBADPLATFORM)
      if (!platformOk) throw new ToNpm(`${location} is not for this platform`);
      continue;
    }
    if ((omitDev && entry.dev) || removed.has(location) || (platformOk && engineOk)) continue;
    for (const node of optionalSet(location, edgesIn, edgesOut)) removed.add(node);
  }
  if (removed.has("")) throw new ToNpm("an optional package's set reaches the app itself");
  if (removed.size && semver.major(npmVer) !== 9) throw new ToNpm(`optional packages for another platform, with npm ${npmVer}`);
  const chosen = [];
  for (const [location, entry] of Object.entries(packages)) {
    if (location === "" || (omitDev && entry.dev) || removed.has(location)) continue;
    if (entry.link) throw new ToNpm(`${location} is a link (a workspace or a local package)`);
    // A bundled package comes in its parent's tarball, and npm links its bins and runs its
    // scripts (arborist's rebuildBundle): npm's to install.
    if (entry.inBundle) throw new ToNpm(`${location} is bundled in its parent's tarball`);
    if (entry.libc !== undefined && semver.major(npmVer) >= 10) {
      throw new ToNpm(`${location} is for one C library (libc), which npm ${npmVer} checks and this installer does not`);
    }
    chosen.push({ location, entry, url: tarballURL(location, entry, semver),
      integrity: parseIntegrity(location, entry.integrity), scripts: !!entry.hasInstallScript });
  }
  chosen.sort((a, b) => (a.location < b.location ? -1 : a.location > b.location ? 1 : 0));
  return chosen;
}

//: Hosts that serve the npm registry's tarballs under its paths (yarn's mirror of it).
const MIRRORS = ["https://registry.yarnpkg.com/"];

function tarballURL(location, entry, semver) {
  // The lockfile's resolved URL on the registry; none (npm's omit-lockfile-registry-resolved)
  // is the registry's own name for the tarball, as npm finds it in the packument. Either way the
  // bytes are checked against the lockfile's integrity.
  let url = entry.resolved;
  if (url === undefined) {
    const name = typeof entry.name === "string" ? entry.name : location.slice(location.lastIndexOf("node_modules/") + 13);
    if (!/^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/.test(name) || typeof entry.version !== "string" ||
        semver.valid(entry.version) !== entry.version) {
      throw new ToNpm(`${location} has no resolved URL and is not a registry package`);
    }
    url = `${REGISTRY}${name}/-/${name.split("/").pop()}-${entry.version}.tgz`;
  }
  if (typeof url !== "string") throw new ToNpm(`${location}'s resolved is not a URL`);
  for (const mirror of MIRRORS) if (url.startsWith(mirror)) url = REGISTRY + url.slice(mirror.length);
  if (!url.startsWith(REGISTRY) || !/\.tgz$/.test(url) || /[?#\\%]|\/\.\.?\//.test(url.slice(REGISTRY.length))) {
    throw new ToNpm(`${location} is not a tarball of ${REGISTRY}`);
  }
  return url;
}

function parseIntegrity(location, value) {
  const hashes = {};
  for (const part of String(value || "").trim().split(/\s+/)) {
    const m = /^(sha512|sha384|sha256|sha1)-([A-Za-z0-9+/=]+)(?:\?.*)?$/.exec(part);
    if (m) (hashes[m[1]] = hashes[m[1]] || []).push(m[2]);
  }
  const algorithm = ALGORITHMS.find((a) => hashes[a]);
  if (!algorithm) throw new ToNpm(`${location} has no integrity hash`);
  return { algorithm, digests: hashes[algorithm] };
}

// -- download --------------------------------------------------------------------------------------

function download(url, agent, room, attempt = 0) {
  // A few tries for what may pass (a reset connection, a timeout); an HTTP error or a tarball
  // over the bound is npm's to handle. One past SPILL_AT bytes goes on in a file of the room's.
  const spill = { at: SPILL_AT, file: () => room.spillFile() };
  return httpget.getURL(url, { agent, limit: MAX_TARBALL, accept: "application/octet-stream", redirects: 0, spill }).catch((err) => {
    if (err.status !== undefined || err.tooLarge || attempt >= 2) throw new ToNpm(String(err.message || err));
    return new Promise((r) => setTimeout(r, 200 * (attempt + 1))).then(() => download(url, agent, room, attempt + 1));
  });
}

function digestOf(algorithm, got) {
  // The tarball's digest, in memory ({ tgz }) or read from its file in pieces.
  const hash = crypto.createHash(algorithm);
  if (got.tgz) return hash.update(got.tgz).digest("base64");
  const fd = fs.openSync(got.file, "r");
  try {
    const piece = Buffer.alloc(1 << 20);
    for (let n; (n = fs.readSync(fd, piece, 0, piece.length, null)) > 0;) hash.update(piece.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest("base64");
}

function checkIntegrity(item, got) {
  const got64 = digestOf(item.integrity.algorithm, got);
  if (!item.integrity.digests.includes(got64)) {
    throw new Fatal(`${item.location}: ${item.url} does not match the lockfile's integrity ` +
      `(${item.integrity.algorithm}-${got64}, the lockfile says ${item.integrity.algorithm}-${item.integrity.digests[0]}): ` +
      "not installing it (EINTEGRITY)");
  }
}

// -- unpack ----------------------------------------------------------------------------------------

function octal(buf, start, len) {
  const field = buf.subarray(start, start + len);
  if (field[0] & 0x80) {   // base-256 (GNU), for sizes over 8 GiB: beyond this installer's bound anyway
    throw new ToNpm("a tar entry with a base-256 number");
  }
  const text = field.toString("latin1").replace(/\0.*$/s, "").trim();
  return text ? parseInt(text, 8) : 0;
}

function* tarEntries(tar) {
  // ustar, pax (path, size) and GNU long names: what npm's packages are made with.
  let offset = 0;
  let longName = null;
  let pax = {};
  while (offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) return;
    const sum = header.reduce((acc, b, i) => acc + (i >= 148 && i < 156 ? 32 : b), 0);
    if (sum !== octal(header, 148, 8)) throw new ToNpm("a tarball with a bad header checksum");
    const type = String.fromCharCode(header[156] || 48);
    let name = header.subarray(0, 100).toString("utf8").replace(/\0.*$/s, "");
    const prefix = header.subarray(257, 263).toString("latin1").startsWith("ustar")
      ? header.subarray(345, 500).toString("utf8").replace(/\0.*$/s, "") : "";
    if (prefix) name = `${prefix}/${name}`;
    let size = octal(header, 124, 12);
    if (pax.size !== undefined) size = Number(pax.size);
    if (!Number.isSafeInteger(size) || size < 0) throw new ToNpm("a tar entry with a bad size");
    const start = offset + 512;
    const end = start + size;
    if (end > tar.length) throw new ToNpm("a truncated tarball");
    const data = tar.subarray(start, end);
    offset = start + Math.ceil(size / 512) * 512;
    if (type === "x") {
      pax = parsePax(data);
      continue;
    }
    if (type === "g") continue;
    if (type === "L") {
      longName = data.toString("utf8").replace(/\0.*$/s, "");
      continue;
    }
    if (type === "K") continue;
    if (longName !== null) name = longName;
    if (pax.path !== undefined) name = pax.path;
    longName = null;
    pax = {};
    yield { name, type, mode: octal(header, 100, 8) & 0o777, data };
  }
}

function parsePax(data) {
  const out = {};
  let i = 0;
  while (i < data.length) {
    const space = data.indexOf(0x20, i);
    if (space < 0) break;
    const len = parseInt(data.subarray(i, space).toString("latin1"), 10);
    if (!(len > 0) || i + len > data.length) break;
    const record = data.subarray(space + 1, i + len - 1).toString("utf8");
    const eq = record.indexOf("=");
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    i += len;
  }
  return out;
}

function unpack(item, tar, root) {
  // pacote's rules (fetcher.js _tarxOptions): strip the first part, only regular files (no
  // directories of their own: they come as files' parents), no links, mode | 0o666 | 0o600
  // under the process umask, .gitignore as .npmignore unless one came first; node-tar refuses
  // a path with "..", and takes an absolute one as relative.
  const dir = path.join(root, item.location);
  const sawNpmignore = new Set();
  let gyp = false;
  for (const e of tarEntries(tar)) {
    if (!(e.type === "0" || e.type === "7" || e.type === "\0")) continue;
    const parts = e.name.split("/").slice(1).filter((p) => p !== "" && p !== ".");
    if (!parts.length || parts.includes("..")) continue;
    let rel = parts.join("/");
    const base = parts[parts.length - 1];
    if (base === ".npmignore") sawNpmignore.add(rel);
    else if (base === ".gitignore") {
      const renamed = rel.replace(/\.gitignore$/, ".npmignore");
      if (sawNpmignore.has(renamed)) continue;
      rel = renamed;
    }
    if (rel === "binding.gyp") gyp = true;
    const file = path.join(dir, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    try {
      fs.unlinkSync(file);    // a name given twice: the later entry, with its own mode
    } catch (_) {}
    fs.writeFileSync(file, e.data, { mode: e.mode | 0o666 | 0o600 });
  }
  if (gyp) {
    let pkg = {};
    try {
      pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
    } catch (_) {}
    const scripts = (pkg && pkg.scripts) || {};
    if ((pkg || {}).gypfile !== false && !scripts.install && !scripts.preinstall) item.scripts = true;   // node-gyp rebuild
  }
}

function sparseDirs(lock, items, root) {
  // arborist makes every package's directory first (its sparse tree), then removes the ones it
  // leaves out (devDependencies, optional ones for another platform): their parents stay, as
  // empty scope directories (node_modules/@eslint) and node_modules of installed packages.
  const installed = new Set(items.map((it) => it.location));
  const omitted = Object.entries(lock.packages)
    .filter(([location]) => location !== "" && !installed.has(location))
    .map(([location]) => location);
  for (const location of omitted) fs.mkdirSync(path.join(root, path.dirname(location)), { recursive: true });
  for (const location of omitted) fs.rmSync(path.join(root, location), { recursive: true, force: true });
}

// -- install scripts -------------------------------------------------------------------------------

function runScripts(items, root) {
  // Packages with install scripts (esbuild's, a native addon's node-gyp build): once every
  // package is in place and linked, `npm rebuild` runs them as npm ci's last step does (the same
  // npm, its script environment, its depth order and phases). One that fails is npm ci's to
  // handle (an optional package's failure removes its optional set): npm ci does it all again.
  const scripted = items.filter((it) => it.scripts);
  if (!scripted.length) return [];
  const specs = [];
  for (const { location, entry } of scripted) {
    const folder = location.slice(location.lastIndexOf("node_modules/") + "node_modules/".length);
    if ((entry.name !== undefined && entry.name !== folder) || typeof entry.version !== "string") {
      throw new ToNpm(`${location} (an alias) has install scripts`);
    }
    specs.push(`${folder}@${entry.version}`);
  }
  const unique = [...new Set(specs)].sort();
  // "--": a spec is never read as an option (a lockfile's "node_modules/--foo=bar" was one)
  const done = require("child_process").spawnSync("npm", ["rebuild", "--", ...unique], { cwd: root, stdio: "inherit" });
  if (done.status !== 0) throw new ToNpm(`npm rebuild ${unique.join(" ")} failed (above)`);
  return unique;
}

// -- bins ------------------------------------------------------------------------------------------

function normalizeBins(entry, location) {
  // npm-normalize-package-bin on the lockfile's bin (what npm ci links).
  let bin = entry.bin;
  const name = entry.name || location.slice(location.lastIndexOf("node_modules/") + "node_modules/".length);
  if (!bin) return {};
  if (typeof bin === "string") bin = { [name]: bin };
  else if (Array.isArray(bin)) bin = Object.fromEntries(bin.map((k) => [path.basename(String(k)), k]));
  if (typeof bin !== "object") return {};
  const clean = {};
  for (const [key, value] of Object.entries(bin)) {
    const base = path.join("/", path.basename(key.replace(/\\|:/g, "/"))).slice(1);
    if (typeof value !== "string" || !base) continue;
    const target = path.join("/", value).replace(/\\/g, "/").slice(1);
    if (target) clean[base] = target;
  }
  return clean;
}

function linkBins(items, root) {
  // bin-links: node_modules/.bin of the node_modules holding the package; in arborist's order
  // (depth, then path), the first link of a name wins; the target is made executable (0o777
  // under the umask) and a hashbang line ending in CRLF loses the CR.
  const umask = process.umask();
  const order = items.map((it) => ({ ...it, depth: it.location.split("/node_modules/").length }))
    .sort((a, b) => a.depth - b.depth || a.location.localeCompare(b.location, "en"));
  const seen = new Set();
  for (const { location, entry } of order) {
    const bins = normalizeBins(entry, location);
    const pkgDir = path.join(root, location);
    const nm = location.slice(0, location.lastIndexOf("node_modules/") + "node_modules".length);
    const binDir = path.join(root, nm, ".bin");
    for (const [name, target] of Object.entries(bins)) {
      const to = path.join(binDir, name);
      if (seen.has(to)) continue;
      seen.add(to);
      const absFrom = path.join(pkgDir, target);
      if (path.relative(pkgDir, absFrom).startsWith("..")) continue;
      let st;
      try {
        st = fs.lstatSync(absFrom);
      } catch (_) {
        continue;   // not in the package: npm skips it
      }
      fs.mkdirSync(binDir, { recursive: true });
      fs.symlinkSync(path.relative(binDir, absFrom), to);
      if (!st.isFile()) continue;
      fs.chmodSync(absFrom, 0o777 & ~umask);
      const head = Buffer.alloc(2048);
      const fd = fs.openSync(absFrom, "r");
      fs.readSync(fd, head, 0, 2048, 0);
      fs.closeSync(fd);
      if (head[0] === 0x23 && head[1] === 0x21 && /^#![^\n]+\r\n/.test(head.toString())) {
        const text = fs.readFileSync(absFrom, "utf8").replace(/^(#![^\n]+)\r\n/, "$1\n");
        const tmp = `${absFrom}.pallet-tmp`;
        fs.writeFileSync(tmp, text, { mode: 0o777 & ~umask });
        fs.renameSync(tmp, absFrom);
      }
    }
  }
}

// -- the install -----------------------------------------------------------------------------------

const AHEAD = 8;                // tarballs unzipped ahead of the one being unpacked (zlib's thread pool)
const AHEAD_LIMIT = 32 << 20;   // unpacked bytes of one unzipped ahead: a bigger one is unzipped at its turn
const HELD_LIMIT = 128 << 20;   // downloaded bytes waiting in memory for their turn: beyond, they wait on disk
const SPILL_AT = 16 << 20;      // bytes of one download held in memory as it comes in: beyond, it goes on in a file

function waitingRoom(root) {
  // Downloads land in any order but unpack in location order, so the ones that land early wait.
  // They waited in memory, all of them (a lockfile of many big packages, each up to MAX_TARBALL):
  // now to HELD_LIMIT in all, and the rest in files beside node_modules, read back at their turn.
  // An app's usual small packages never reach the bound: nothing is written.
  let held = 0;
  let dir = null;
  let closed = false;
  let count = 0;
  const spillFile = () => {
    if (closed) return null;   // the install has stopped: nothing more is kept, nothing written
    if (!dir) dir = fs.mkdtempSync(path.join(root, ".lockinstall-"));
    return path.join(dir, String(count++));
  };
  return {
    spillFile,
    keep(got) {
      // got: a download's { tgz } or { file, size } (one that came in past SPILL_AT), or a Buffer
      if (Buffer.isBuffer(got)) got = { tgz: got };
      if (got.file || closed) return closed ? null : got;
      const tgz = got.tgz;
      if (held + tgz.length <= HELD_LIMIT) {
        held += tgz.length;
        return { tgz };
      }
      const file = spillFile();
      fs.writeFileSync(file, tgz);
      return { file, size: tgz.length };
    },
    peek: (kept) => kept.tgz || fs.readFileSync(kept.file),
    take(kept) {
      if (kept.tgz) {
        held -= kept.tgz.length;
        return kept.tgz;
      }
      const tgz = fs.readFileSync(kept.file);
      fs.unlinkSync(kept.file);
      return tgz;
    },
    close() {
      closed = true;
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function unpackAll(items, tgzs, root, room = waitingRoom(root)) {
  // Each tarball (tgzs: promises of the checked downloads) unzipped and unpacked in location
  // order, so a package's files land the same way whatever order they arrive in. A few are
  // unzipped ahead, each to AHEAD_LIMIT at most; a bigger one alone at its turn (to MAX_TARBALL):
  // every tarball unzipped ahead at once held a whole app's unpacked packages in memory, and
  // gzip bombs a gigabyte each. The downloads wait in the waiting room.
  const gunzip = require("util").promisify(zlib.gunzip);
  for (let i = 0; i < tgzs.length; i++) tgzs[i] = tgzs[i].then((tgz) => room.keep(tgz));
  tgzs.forEach((p) => p.catch(() => {}));   // each is awaited below; a failure stops the rest
  const tars = [];
  const ahead = (i) => {
    if (i >= items.length || tars[i]) return;
    // one bigger than AHEAD_LIMIT on disk is not read back twice: it is unzipped at its turn
    tars[i] = tgzs[i].then((kept) => (kept.size > AHEAD_LIMIT ? null : gunzip(room.peek(kept), { maxOutputLength: AHEAD_LIMIT })
      .catch((err) => (err.code === "ERR_BUFFER_TOO_LARGE" ? null : Promise.reject(err)))));
    tars[i].catch(() => {});
  };
  try {
    for (let i = 0; i < AHEAD; i++) ahead(i);
    for (let i = 0; i < items.length; i++) {
      ahead(i + AHEAD);
      let tar;
      try {
        tar = await tars[i];
        const tgz = room.take(await tgzs[i]);
        if (tar === null) tar = await gunzip(tgz, { maxOutputLength: MAX_TARBALL });
      } catch (err) {
        if (err instanceof Fatal || err instanceof ToNpm) throw err;
        throw new ToNpm(`${items[i].location}: ${err.message}`);
      }
      unpack(items[i], tar, root);
      tars[i] = tgzs[i] = null;
    }
  } finally {
    room.close();
  }
}


let created = false;   // node_modules is this installer's: a failure removes it

async function install(root, omitDev) {
  const started = Date.now();
  const engineStrict = checkSettings(root);
  let lockName = "npm-shrinkwrap.json";
  if (!fs.existsSync(path.join(root, lockName))) lockName = "package-lock.json";
  let lock;
  let pkg;
  try {
    // a byte-order mark stripped, as npm reads them
    lock = JSON.parse(fs.readFileSync(path.join(root, lockName), "utf8").replace(/^\uFEFF/, ""));
    pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8").replace(/^\uFEFF/, ""));
  } catch (err) {
    throw new ToNpm(`cannot read ${lockName} or package.json: ${err.message}`);
  }
  if (!lock || typeof lock !== "object" || !(lock.lockfileVersion >= 2) || !lock.packages || typeof lock.packages !== "object") {
    throw new ToNpm(`${lockName} is not a lockfile of version 2 or 3`);
  }
  if (!pkg || typeof pkg !== "object") throw new ToNpm("package.json is not an object");
  const semver = loadSemver();
  const npmVer = npmVersion();
  checkInSync(pkg, lock, semver);
  if (engineStrict) checkEngines(pkg, lock, semver, npmVer);
  checkGlobalSettings();
  if (![9, 11].includes(semver.major(npmVer))) throw new ToNpm(`npm ${npmVer}: this installer makes npm 9's and 11's trees`);
  const items = plan(lock, omitDev, semver, npmVer);
  if (fs.existsSync(path.join(root, "node_modules"))) throw new ToNpm("node_modules exists");
  created = true;

  const https = require("https");
  const agent = new https.Agent({ keepAlive: true, maxSockets: SOCKETS });
  // Downloads in parallel; each tarball checked, then unzipped and unpacked in location order.
  const room = waitingRoom(root);
  const tgzs = items.map((item) => download(item.url, agent, room).then((got) => {
    checkIntegrity(item, got);
    return got;
  }));
  try {
    await unpackAll(items, tgzs, root, room);
    if (semver.major(npmVer) === 9) sparseDirs(lock, items, root);
    linkBins(items, root);
  } finally {
    agent.destroy();
  }
  const rebuilt = runScripts(items, root);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`added ${items.length} package${items.length === 1 ? "" : "s"} in ${seconds}s (${lockName}, pallet's lockfile installer: ` +
    `what npm ci makes, downloaded ${SOCKETS} at a time${rebuilt.length ? `; install scripts by npm rebuild: ${rebuilt.join(", ")}` : ""})`);
}

function npmCi(args) {
  const childProcess = require("child_process");
  const child = childProcess.spawn("npm", ["ci", ...args], { stdio: "inherit" });
  const stop = (signal) => () => child.kill(signal);
  process.on("SIGTERM", stop("SIGTERM"));
  process.on("SIGINT", stop("SIGINT"));
  child.on("error", (err) => {
    console.error(`error: cannot run npm ci: ${err.message}`);
    process.exitCode = 1;
  });
  child.on("exit", (code, signal) => {
    process.exitCode = code === null ? 128 + (require("os").constants.signals[signal] || 1) : code;
  });
}

function main(argv) {
  const [mode, ...npmArgs] = argv;
  if (!["--omit=dev", "--include=dev"].includes(mode)) {
    console.error("usage: lockinstall.js --omit=dev|--include=dev [npm ci's other options]");
    process.exitCode = 2;
    return;
  }
  if ((process.env.BP_NPM_INSTALLER || "pallet") === "npm") {
    npmCi([mode, ...npmArgs]);
    return;
  }
  const root = process.cwd();   // a TERM while installing ends the process (its caller removes the root)
  install(root, mode === "--omit=dev").then(() => {
    process.exitCode = 0;
  }, (err) => {
    if (created) fs.rmSync(path.join(root, "node_modules"), { recursive: true, force: true });
    if (err instanceof Fatal) {
      console.error(`error: ${err.message}`);
      process.exitCode = 1;
      return;
    }
    console.error(`npm ci installs: ${err instanceof ToNpm ? err.message : String((err && err.message) || err)}`);
    npmCi([mode, ...npmArgs]);
  });
}

if (require.main === module) main(process.argv.slice(2));
else module.exports = { plan, unpack, unpackAll, download, waitingRoom, checkIntegrity, linkBins, sparseDirs, tarballURL, runScripts, ToNpm, loadSemver };   // tests/test_lockinstall.py
