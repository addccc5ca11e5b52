// The workspace's library; its own dependency (ms) is found from libs/greet at run time.
const ms = require("ms");

module.exports = (who) => `Hello from node-pnpm-workspaces, ${who}: a minute is ${ms("1m")} ms`;
