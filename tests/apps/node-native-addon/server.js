const fs = require("fs");
const http = require("http");
const path = require("path");
const bufferutil = require("bufferutil");

// node-gyp-build loads build/Release (compiled at install) before the prebuilds the package ships.
const dir = path.dirname(require.resolve("bufferutil/package.json"));
const compiled = fs.existsSync(path.join(dir, "build", "Release", "bufferutil.node"));
const data = Buffer.from("pallet");
const mask = Buffer.from([1, 2, 3, 4]);
const out = Buffer.alloc(data.length);
bufferutil.mask(data, mask, out, 0, data.length);
bufferutil.unmask(out, mask);
const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(`Hello from node-native-addon on Node.js ${process.versions.node.split(".")[0]}: compiled ${compiled}, ` +
          `unmasked ${out.toString()}\n`);
}).listen(port, () => console.log(`listening on ${port}`));
