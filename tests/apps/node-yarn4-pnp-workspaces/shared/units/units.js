// The shared workspace: Plug'n'Play resolves its ms, and services/api's require of it.
const ms = require("ms");

exports.describe = (span) => `${span} is ${ms(span)} ms`;
