// The packages a server the build made imports (the file node runs, and the files it imports by
// relative path) that neither Node.js nor the app's production node_modules has: the image has
// production dependencies only, so such a server died as it started (ERR_MODULE_NOT_FOUND), as
// a Qwik City node-server build importing undici, a devDependency of its starter, did. Read
// with a pattern, not parsed: what it prints is a warning's, never a failure's.
// usage: node serverimports.js FILE (from /workspace); prints one package name a line.
"use strict";
const fs = require("fs");
const path = require("path");
const { builtinModules } = require("module");

const IMPORT = /(?:^|[;\s}])(?:import|export)\s*(?:[\w*{}\s,$]*?\s*from\s*)?["']([^"'\s]+)["']|\bimport\(\s*["']([^"'\s]+)["']\s*\)|\brequire\(\s*["']([^"'\s]+)["']\s*\)/g;
const MAX_FILES = 2000;

const isFile = (f) => { try { return fs.statSync(f).isFile(); } catch { return false; } };

// Whether node_modules/NAME is found from FILE's directory up (by the path node is given: the
// build's output is linked from /workspace, where the app's node_modules is).
function installed(name, file) {
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "node_modules", name))) return true;
    if (dir === path.dirname(dir)) return false;
  }
}

function missingImports(entry) {
  const queue = [path.resolve(entry)];
  const seen = new Set();
  const missing = new Set();
  while (queue.length && seen.size < MAX_FILES) {
    const file = queue.shift();
    if (seen.has(file)) continue;
    seen.add(file);
    let text;
    try {
      if (fs.statSync(file).size > 16 << 20) continue;
      text = fs.readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] || m[2] || m[3];
      if (spec.startsWith(".")) {
        const base = path.resolve(path.dirname(file), spec);
        const found = [base, `${base}.js`, `${base}.mjs`, `${base}.cjs`, path.join(base, "index.js")].find(isFile);
        if (found) queue.push(found);
        continue;
      }
      if (/^(node:|\/|#|[a-z][a-z0-9+.-]*:)/.test(spec)) continue;
      const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0];
      if (!/^(@[\w.-]+\/)?[\w.-]+$/.test(name) || builtinModules.includes(name)) continue;
      if (!installed(name, file)) missing.add(name);
    }
  }
  return [...missing].sort();
}

if (require.main === module) {
  for (const name of missingImports(process.argv[2])) console.log(name);
}
module.exports = { missingImports };
