// A tiny app whose one dependency (ms) yarn installs from its lockfile.
const http = require("http");
const ms = require("ms");

const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(`Hello from node-yarn: a day is ${ms("1d")} ms\n`);
}).listen(port, () => console.log(`listening on ${port}`));
