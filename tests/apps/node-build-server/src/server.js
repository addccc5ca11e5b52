// Compiled into dist/ by the build script; requires a production dependency (ms) from there.
const http = require("http");
const ms = require("ms");

let dev = "absent";
try { require("is-number"); dev = "present"; } catch (_) {}
const port = Number(process.env.PORT || 8080);
// Only as the main module (as Angular's SSR server checks with isMainModule): the path node was
// given is this file's, though dist/ is a link to the build's layer.
if (process.argv[1] === __filename) {
  http.createServer((req, res) => {
    res.setHeader("Content-Type", "text/plain; charset=utf-8");
    res.end(`Hello from node-build-server (%BUILT%): a day is ${ms("1d")} ms, devDependency ${dev} at run time\n`);
  }).listen(port, () => console.log(`listening on ${port}`));
} else {
  console.log(`not the main module: ${process.argv[1]} is not ${__filename}`);
}
