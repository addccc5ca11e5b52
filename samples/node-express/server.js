// A small Express app: a page, a JSON API and a health check, on $PORT (default 8080).
"use strict";

const express = require("express");

const app = express();
const port = Number(process.env.PORT || 8080);

app.get("/", (req, res) => {
  res.type("text").send(`Hello from node-express (Node ${process.version}, Express ${require("express/package.json").version})\n`);
});

app.get("/api/time", (req, res) => {
  res.json({ now: new Date().toISOString(), env: process.env.NODE_ENV || "development" });
});

app.get("/healthz", (req, res) => res.type("text").send("ok\n"));

const server = app.listen(port, () => console.log(`node-express listening on ${port}`));
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
