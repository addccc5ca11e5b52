// Says which Node.js runs it, and uses an API Node.js 18 does not have (Array.prototype.toSorted arrived in 20).
const http = require("http");

const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(`Hello from node-engines-22 on Node.js ${process.versions.node.split(".")[0]}: ${[3, 1, 2].toSorted().join(",")}\n`);
}).listen(port, () => console.log(`listening on ${port}`));
