const http = require("http");
const ms = require("ms");

const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(`Hello from node-engines-npm: a second is ${ms("1s")} ms\n`);
}).listen(port, () => console.log(`listening on ${port}`));
