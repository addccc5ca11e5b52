// Runs after the install, as patch-package or `prisma generate` do: reads a file of the app and
// writes into node_modules (as a patch does) and into the app.
const fs = require("fs");
const unit = fs.readFileSync("scripts/unit.txt", "utf8").trim();
fs.writeFileSync("node_modules/ms/pallet-unit.txt", unit);
fs.writeFileSync("generated.json", JSON.stringify({ unit }));
