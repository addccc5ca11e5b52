// The workspace library apps/site requires by name (yarn links it into the root's node_modules).
const ms = require("ms");

module.exports = (who) => `Hello from node-yarn4-workspaces, ${who}: two days are ${ms("2d")} ms`;
