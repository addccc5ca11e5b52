// Compiled into dist/ by the build script; requires a production dependency (ms) from there.
const http = require("http");
const ms = require("ms");

let dev = "absent";
try { require("left-pad"); dev = "present"; } catch (_) {}
const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(`Hello from node-postinstall-build (%BUILT%): a day is ${ms("1d")} ms, devDependency ${dev} at run time\n`);
}).listen(port, () => console.log(`listening on ${port}`));
