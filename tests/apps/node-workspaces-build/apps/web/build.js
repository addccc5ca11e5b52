// Stands for tsc or a bundler: the server is its build's output.
const fs = require("fs");

fs.mkdirSync("dist", { recursive: true });
fs.writeFileSync("dist/server.js", `const http = require("http");
const ui = require("@repo/ui");

const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(\`Hello from node-workspaces-build, web: \${ui()}\\n\`);
}).listen(port, () => console.log(\`listening on \${port}\`));
`);
