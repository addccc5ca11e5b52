// Says which Node.js runs it: one of 25 or later, whose official build needs libatomic.so.1.
const http = require("http");

const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(`Hello from node-engines-current on Node.js ${Number(process.versions.node.split(".")[0]) >= 25 ? ">=25" : "<25"}\n`);
}).listen(port, () => console.log(`listening on ${port}`));
