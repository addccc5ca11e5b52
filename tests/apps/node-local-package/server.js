const http = require("http");
const greet = require("greet");

const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(`${greet("node-local-package")}\n`);
}).listen(port, () => console.log(`listening on ${port}`));
