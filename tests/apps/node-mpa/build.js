// The site's build step, as a static-site generator's would be: each pages/NAME.html becomes
// dist/index.html (home) or dist/NAME/index.html, inside one layout; 404.html as it is. The
// footer uses a devDependency (ms), which only the build has.
const fs = require("fs");
const path = require("path");
const ms = require("ms");

const layout = (body) => `<!doctype html>\n<html><head><meta charset="utf-8"><title>node-mpa</title></head>\n` +
  `<body>\n${body}<footer>cached for ${ms("1d")} ms</footer>\n</body></html>\n`;
fs.rmSync("dist", { recursive: true, force: true });
for (const file of fs.readdirSync("pages").sort()) {
  const name = path.basename(file, ".html");
  const body = fs.readFileSync(path.join("pages", file), "utf8");
  const out = name === "404" ? "dist/404.html" : name === "home" ? "dist/index.html" : `dist/${name}/index.html`;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, layout(body));
}
console.log("built dist/");
