// Stands in for `gatsby build`: one HTML page per file of src/pages, and a 404 page, in public/.
const fs = require("fs");
const path = require("path");
const ms = require("ms");

const page = (title, body) =>
  `<!doctype html><html><head><title>${title}</title></head><body>${body}</body></html>\n`;
fs.rmSync("public", { recursive: true, force: true });
for (const file of fs.readdirSync("src/pages").sort()) {
  const name = path.basename(file, ".txt");
  const text = fs.readFileSync(path.join("src/pages", file), "utf8").trim();
  const dir = name === "index" ? "public" : path.join("public", name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "index.html"), page(text, `<h1>${text}</h1><p>cached for ${ms("1h")} ms</p>`));
}
fs.writeFileSync("public/404.html", page("Not found", "<h1>node-gatsby-public: no such page</h1>"));
