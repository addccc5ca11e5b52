// The one workspace with a start script, an ES module importing the workspace @pe/format (an ES
// module too) through Plug'n'Play's ESM loader.
import http from "node:http";
import { createRequire } from "node:module";
import { size } from "@pe/format";

let dev = "absent";
try { createRequire(import.meta.url)("is-number"); dev = "present"; } catch (_) {}
const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(`Hello from node-yarn4-pnp-esm-workspaces, web: ${size(1337000)}, devDependency ${dev}, ` +
    `pnp ${!!process.versions.pnp}\n`);
}).listen(port, () => console.log(`listening on ${port}`));
