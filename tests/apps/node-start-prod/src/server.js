const http = require("http");
const ms = require("ms");

const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(`Hello from node-start-prod (__BUILT__): a day is ${ms("1d")} ms\n`);
}).listen(port, () => console.log(`listening on ${port}`));
