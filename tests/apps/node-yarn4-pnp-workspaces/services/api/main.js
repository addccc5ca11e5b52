// The one workspace with a start script; Plug'n'Play (NODE_OPTIONS) resolves every require.
const http = require("http");
const { describe } = require("@pw/units");

let dev = "absent";
try { require("is-number"); dev = "present"; } catch (_) {}
const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(`Hello from node-yarn4-pnp-workspaces, api: ${describe("3h")}, devDependency ${dev}, ` +
    `pnp ${!!process.versions.pnp}\n`);
}).listen(port, () => console.log(`listening on ${port}`));
