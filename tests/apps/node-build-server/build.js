// The app's compile step, as tsc would be: src/server.js -> dist/server.js, stamped with a
// devDependency's answer (is-number is only there at build time).
const fs = require("fs");
const isNumber = require("is-number");

fs.rmSync("dist", { recursive: true, force: true });
fs.mkdirSync("dist");
const code = fs.readFileSync("src/server.js", "utf8").replace("%BUILT%", `built: is-number(7) ${isNumber(7)}`);
fs.writeFileSync("dist/server.js", code);
console.log("compiled dist/server.js");
