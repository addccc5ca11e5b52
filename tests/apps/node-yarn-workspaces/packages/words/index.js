// The workspace library: packages/web requires it by name (yarn links it at the root).
const ms = require("ms");

module.exports = (who) => `Hello from node-yarn-workspaces, ${who}: an hour is ${ms("1h")} ms`;
