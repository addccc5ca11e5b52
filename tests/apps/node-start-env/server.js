const http = require("http");
const ms = require("ms");

const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(`${process.env.GREETING} from node-start-env (NODE_ENV ${process.env.NODE_ENV}): a minute is ${ms("1m")} ms\n`);
}).listen(port, () => console.log(`listening on ${port}`));
