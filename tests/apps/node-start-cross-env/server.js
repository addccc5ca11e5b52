const http = require("http");
const ms = require("ms");

let crossEnv = "absent";
try { require.resolve("cross-env"); crossEnv = "present"; } catch (_) {}
const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(`${process.env.GREETING} from node-start-cross-env (NODE_ENV ${process.env.NODE_ENV}, cross-env ${crossEnv}): ` +
          `a week is ${ms("7d")} ms\n`);
}).listen(port, () => console.log(`listening on ${port}`));
