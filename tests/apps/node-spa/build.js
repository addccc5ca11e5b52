// The app's build step, as a bundler's would be: reads src/, writes dist/ (index.html and one
// script). It needs a devDependency (ms), which only the build has.
const fs = require("fs");
const ms = require("ms");

fs.rmSync("dist", { recursive: true, force: true });
fs.mkdirSync("dist/assets", { recursive: true });
const html = fs.readFileSync("src/index.html", "utf8").replace("%BUILT_WITH%", `ms ${ms("2h")}`);
fs.writeFileSync("dist/index.html", html);
fs.copyFileSync("src/app.js", "dist/assets/app.js");
console.log("built dist/");
