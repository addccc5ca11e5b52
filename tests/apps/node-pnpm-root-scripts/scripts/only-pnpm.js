// The guard pnpm's documentation advises ("preinstall": "npx only-allow pnpm"), without its
// download: the installing package manager is the one npm_config_user_agent names.
const agent = process.env.npm_config_user_agent || "";
if (!agent.startsWith("pnpm/")) {
  console.error(`Use "pnpm install" for installation in this project (user agent: ${agent || "none"})`);
  process.exit(1);
}
