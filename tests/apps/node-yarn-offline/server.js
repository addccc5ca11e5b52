// A tiny app whose dependency (ms) yarn 4 installs from the offline cache the app carries.
const http = require("http");
const ms = require("ms");

let dev = "absent";
try { require("is-number"); dev = "present"; } catch (_) {}
const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(`Hello from node-yarn-offline: a day is ${ms("1d")} ms, devDependency ${dev}\n`);
}).listen(port, () => console.log(`listening on ${port}`));
