// An ES module (package.json "type": "module") importing an ES module package under Plug'n'Play:
// pretty-ms and its own dependency parse-ms are "type": "module" and live in zip files, which
// only Plug'n'Play's ESM loader (.pnp.loader.mjs) resolves and reads.
import http from "node:http";
import { createRequire } from "node:module";
import prettyMs from "pretty-ms";

let dev = "absent";
try { createRequire(import.meta.url)("is-number"); dev = "present"; } catch (_) {}
const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(`Hello from node-yarn-pnp-esm: 90061000 ms is ${prettyMs(90061000)}, devDependency ${dev}, ` +
    `pnp ${!!process.versions.pnp}\n`);
}).listen(port, () => console.log(`listening on ${port}`));
