// Started by Bun's runtime (TypeScript as it is, Bun.serve): no Node.js at run time.
import ms from "ms";

const port: number = Number(process.env.PORT ?? 8080);
Bun.serve({ port, fetch: () => new Response(`Hello from node-bun-runtime on Bun ${Bun.version}: a day is ${ms("1d")} ms\n`) });
console.log(`listening on ${port}`);
