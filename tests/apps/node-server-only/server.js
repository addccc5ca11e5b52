// A Node.js app with no package.json at all: pallet runs server.js with node.
const http = require("http");

const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(`Hello from node-server-only (Node.js ${process.versions.node.split(".")[0]})\n`);
}).listen(port, () => console.log(`listening on ${port}`));
