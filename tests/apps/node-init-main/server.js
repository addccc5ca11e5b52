const http = require("http");
const ms = require("ms");

const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(`Hello from node-init-main (${require("path").basename(__filename)}): two hours are ${ms("2h")} ms\n`);
}).listen(port, () => console.log(`listening on ${port}`));
