// The app's compile step, as tsc would be: src/server.js -> dist/server.js, stamped with a
// devDependency's answer (left-pad is only there at build time; the build image's Node.js does
// not have it either, as Debian's npm brings is-number).
const fs = require("fs");
const leftPad = require("left-pad");

fs.rmSync("dist", { recursive: true, force: true });
fs.mkdirSync("dist");
const code = fs.readFileSync("src/server.js", "utf8").replace("%BUILT%", `built: left-pad(7) ${leftPad("7", 3, "0")}`);
fs.writeFileSync("dist/server.js", code);
console.log("compiled dist/server.js");
