// The one workspace with a start script: pallet starts it in packages/server, with node.
const http = require("http");
const format = require("@bw/format");

let dev = "present";
try {
  require.resolve("is-number");
} catch (_) {
  dev = "absent";
}
const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(`${format("server")}, devDependency ${dev}\n`);
}).listen(port, () => console.log(`listening on ${port}`));
