// The app's "compiler": copies src/ to dist/, marking the output, as tsc or nest build would.
const fs = require("fs");

fs.mkdirSync("dist", { recursive: true });
const src = fs.readFileSync("src/server.js", "utf8");
fs.writeFileSync("dist/server.js", src.replace("__BUILT__", "built into dist/"));
