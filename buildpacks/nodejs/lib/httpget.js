// What nodeapp.js and lockinstall.js share: a GET of the npm registry's documents and tarballs
// into memory (over https, with the trust store pallet gives builds: NODE_EXTRA_CA_CERTS), and
// the build image's semver module. lockinstall.js is also copied, with this file, into the
// layer pallet/node-build runs it from.
"use strict";

const https = require("https");

function getURL(url, { limit = 64 << 20, agent, accept = "application/json, */*", redirects = 5 } = {}) {
  // An HTTP status is the error's `status`; too many bytes, its `tooLarge`. Redirects are
  // followed a few hops, to https only.
  return new Promise((resolve, reject) => {
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
        resolve(getURL(next.toString(), { limit, agent, accept, redirects: redirects - 1 }));
        return;
      }
      if (res.statusCode !== 200) {
        res.resume();
        fail(`HTTP ${res.statusCode}`, { status: res.statusCode });
        return;
      }
      const chunks = [];
      let size = 0;
      res.on("data", (c) => {
        size += c.length;
        if (size > limit) {
          req.destroy(Object.assign(new Error(`GET ${url}: more than ${limit} bytes`), { tooLarge: true }));
        } else {
          chunks.push(c);
        }
      });
      res.on("end", () => resolve(Buffer.concat(chunks)));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.on("error", reject);
  });
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

module.exports = { getURL, loadSemver };
