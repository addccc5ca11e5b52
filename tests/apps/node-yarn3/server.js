const http = require("http"); const ms = require("ms");
let pad = "absent"; try { require("left-pad"); pad = "present"; } catch (_) {}
http.createServer((q, r) => r.end(`Hello from node-yarn3: a day is ${ms("1d")} ms, devDependency ${pad}\n`)).listen(process.env.PORT || 8080);
