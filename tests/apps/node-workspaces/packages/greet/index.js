// The workspace's library: api requires it by name (@ws/greet), through the workspace link.
const ms = require("ms");

module.exports = (who) => `Hello from node-workspaces, ${who}: a week is ${ms("7d")} ms`;
