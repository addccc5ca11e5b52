// Stands for tsc: the package's code is its build's output.
const fs = require("fs");

fs.mkdirSync("dist", { recursive: true });
fs.writeFileSync("dist/index.js", 'const ms = require("ms");\nmodule.exports = () => `a day is ${ms("1d")} ms`;\n');
