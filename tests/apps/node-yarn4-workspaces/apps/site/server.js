// The one workspace with a start script: pallet starts it in apps/site.
const http = require("http");
const clock = require("@y4/clock");

let dev = "present";
try {
  require.resolve("is-number");
} catch (_) {
  dev = "absent";
}
const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(`${clock("site")}, devDependency ${dev}\n`);
}).listen(port, () => console.log(`listening on ${port}`));
