// @ts-check
import { defineConfig } from "astro/config";
import node from "@astrojs/node";

// Every page rendered on request, by the Node.js adapter's own server (dist/server/entry.mjs).
export default defineConfig({
  output: "server",
  adapter: node({ mode: "standalone" }),
});
