import http from "node:http";
import ms from "ms";

const port = Number(process.env.PORT ?? 3000);
const greeting = process.env.GREETING ?? "Hello";

http
  .createServer((req, res) => {
    res.setHeader("content-type", "text/plain; charset=utf-8");
    res.end(`${greeting} from node-env-file: a fortnight is ${ms("14d")} ms (NODE_ENV ${process.env.NODE_ENV})\n`);
  })
  .listen(port, () => console.log(`listening on ${port}`));
