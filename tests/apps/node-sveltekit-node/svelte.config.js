import adapter from "@sveltejs/adapter-node";

// kit.version.name defaults to the time of the build (Date.now()), which makes every build
// differ; SvelteKit's documentation suggests a fixed one, as here, for reproducible builds.
export default { kit: { adapter: adapter(), version: { name: "0.0.1" } } };
