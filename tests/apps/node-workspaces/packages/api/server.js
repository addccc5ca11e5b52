// The one workspace with a start script: pallet starts it from its own directory.
const http = require("http");
const greet = require("@ws/greet");

const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(`${greet("api")} (cwd ${process.cwd()})\n`);
}).listen(port, () => console.log(`listening on ${port}`));
