const ms = require("ms");

module.exports = (name) => `Hello from ${name} (greet is at ${__dirname}): an hour is ${ms("1h")} ms`;
