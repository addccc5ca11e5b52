// The assets' build: what a tailwind or esbuild step does, with a devDependency.
const fs = require("fs");
const ms = require("ms");
fs.mkdirSync("dist", { recursive: true });
fs.writeFileSync("dist/index.html", `<h1>Hello from go-embed-assets</h1><p>cached for ${ms("1d")} ms</p>\n`);
fs.writeFileSync("dist/site.css", "h1 { color: #0c4b33; }\n");
