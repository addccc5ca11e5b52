const fs = require("fs");
const http = require("http");
const ms = require("ms");

const port = Number(process.env.PORT || 8080);
const unit = fs.readFileSync(require.resolve("ms/pallet-unit.txt"), "utf8");
const generated = JSON.parse(fs.readFileSync("generated.json", "utf8"));
let husky = "absent";
try { require.resolve("husky"); husky = "present"; } catch (_) {}
http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(`Hello from node-pnpm-root-scripts: ${unit} are ${ms(unit)} ms (generated ${generated.unit}), husky ${husky}\n`);
}).listen(port, () => console.log(`listening on ${port}`));
