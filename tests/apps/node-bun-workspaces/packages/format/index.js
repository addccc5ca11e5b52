// The workspace library packages/server requires by name (bun links it at the root).
const ms = require("ms");

module.exports = (who) => `Hello from node-bun-workspaces, ${who}: half an hour is ${ms("30m")} ms`;
