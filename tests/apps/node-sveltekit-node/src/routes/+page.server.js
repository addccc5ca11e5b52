import ms from "ms";

// Runs in the server adapter-node built: ms is a production dependency, from node_modules.
export function load() {
  return { week: ms("7d"), node: process.versions.node.split(".")[0] };
}
