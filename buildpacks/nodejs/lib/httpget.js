// What nodeapp.js and lockinstall.js share: a GET of the npm registry's documents and tarballs
// into memory, or past a bound into a file (over https, with the trust store pallet gives builds: NODE_EXTRA_CA_CERTS), and
// the build image's semver module. lockinstall.js is also copied, with this file, into the
// layer pallet/node-build runs it from.
"use strict";

const fs = require("fs");
const https = require("https");

function getURL(url, { limit = 64 << 20, agent, accept = "application/json, */*", redirects = 5, spill } = {}) {
  // An HTTP status is the error's `status`; too many bytes, its `tooLarge`. Redirects are
  // followed a few hops, to https only. With `spill` (see spooler), a body past spill.at bytes
  // goes on in a file and resolves as { file, size }: else it is a Buffer.
  return new Promise((resolve, reject) => {
    let body = null;   // what a 200 answer's bytes go to
    const fail = (message, fields) => reject(Object.assign(new Error(`GET ${url}: ${message}`), fields));
    const req = https.get(url, { agent, timeout: 60000, headers: { accept } }, (res) => {
      if ([301, 302, 303, 307, 308].includes(res.statusCode) && res.headers.location && redirects > 0) {
        res.resume();
        let next;
        try {
          next = new URL(res.headers.location, url);
        } catch (_) {
          fail(`a redirect to ${JSON.stringify(res.headers.location)}`, { status: res.statusCode });
          return;
        }
        if (next.protocol !== "https:") {
          fail(`a redirect to ${next.protocol}`, { status: res.statusCode });
          return;
        }
        resolve(getURL(next.toString(), { limit, agent, accept, redirects: redirects - 1, spill }));
        return;
      }
      if (res.statusCode !== 200) {
        res.resume();
        fail(`HTTP ${res.statusCode}`, { status: res.statusCode });
        return;
      }
      body = spooler(spill || { at: Infinity }, limit);
      res.on("data", (c) => {
        try {
          body.add(c);
        } catch (err) {
          req.destroy(Object.assign(err, { message: `GET ${url}: ${err.message}` }));
        }
      });
      res.on("end", () => {
        const got = body.end();
        resolve(spill ? got : got.tgz);
      });
      res.on("error", (err) => {
        body.abort();
        reject(err);
      });
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.on("error", (err) => {
      if (body) body.abort();   // a spilled part goes with it
      reject(err);
    });
  });
}

function spooler({ at, file }, limit) {
  // A body received in chunks: in memory up to `at` bytes, then in the file `file()` names, so
  // that downloads in parallel hold `at` bytes each, not `limit` (lockinstall's fifteen tarballs
  // of up to 1 GiB each were held whole as they came in).
  // add() throws past `limit` ({ tooLarge }) or when no file is given (null: the install stopped);
  // end() gives { tgz } or { file, size }; abort() removes the file.
  let chunks = [];
  let size = 0;
  let fd = null;
  let name = null;
  const abort = () => {
    if (fd !== null) fs.closeSync(fd);
    if (name !== null) fs.rmSync(name, { force: true });
    fd = name = null;
    chunks = [];
  };
  return {
    add(chunk) {
      size += chunk.length;
      if (size > limit) {
        abort();
        throw Object.assign(new Error(`more than ${limit} bytes`), { tooLarge: true });
      }
      if (fd === null && size > at) {
        name = file();
        if (name === null) throw new Error("the install has stopped");
        fd = fs.openSync(name, "wx", 0o600);
        for (const c of chunks) fs.writeSync(fd, c);
        chunks = [];
      }
      if (fd === null) chunks.push(chunk);
      else fs.writeSync(fd, chunk);
    },
    end() {
      if (fd === null) return { tgz: Buffer.concat(chunks) };
      fs.closeSync(fd);
      const done = { file: name, size };
      fd = name = null;   // the file is the caller's now: abort() leaves it
      return done;
    },
    abort,
  };
}

function loadSemver() {
  // node-semver: npm's own copy, or Debian's; null when the build image has neither.
  for (const candidate of ["semver", "/usr/share/nodejs/semver", "/usr/lib/node_modules/npm/node_modules/semver",
    "/usr/share/nodejs/npm/node_modules/semver"]) {
    try {
      return require(candidate);
    } catch (_) {}
  }
  return null;
}

module.exports = { getURL, spooler, loadSemver };
