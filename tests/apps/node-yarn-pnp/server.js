// A tiny app whose one dependency (ms) yarn 4 resolves with Plug'n'Play: no node_modules at all.
const http = require("http");
const ms = require("ms");

let dev = "absent";
try { require("is-number"); dev = "present"; } catch (_) {}
const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(`Hello from node-yarn-pnp: a day is ${ms("1d")} ms, devDependency ${dev}, pnp ${!!process.versions.pnp}\n`);
}).listen(port, () => console.log(`listening on ${port}`));
