// The one workspace with a start script: pallet starts it in packages/web.
const http = require("http");
const words = require("@yw/words");

let dev = "present";
try {
  require.resolve("is-number");
} catch (_) {
  dev = "absent";
}
const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(`${words("web")}, devDependency ${dev}\n`);
}).listen(port, () => console.log(`listening on ${port}`));
