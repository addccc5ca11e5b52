const http = require("http");
const ms = require("ms");

const at = process.argv.indexOf("--greeting");
const greeting = at > 0 ? process.argv[at + 1] : "(no greeting)";
const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(`${greeting} from node-start-npm-run: an hour is ${ms("1h")} ms\n`);
}).listen(port, () => console.log(`listening on ${port}`));
