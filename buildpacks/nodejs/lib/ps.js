#!/usr/bin/env node
"use strict";
// `ps` for run images, which have no procps: what Node.js packages that stop a process tree ask of
// it, read from /proc. tree-kill (concurrently's, and so `"start": "concurrently ..."`) and pm2's
// copy of it run `ps -o pid --no-headers --ppid PID` to find a process's children; pidtree and
// ps-tree run `ps -A -o ppid,pid[,stat,comm]`. Without ps, concurrently and pm2-runtime died of
// an unhandled `spawn ps ENOENT` as they passed the stop signal on (docker stop), leaving the
// app's processes unstopped. pallet/nodejs puts this file on the image's PATH as `ps` when one of
// those packages is installed (bin/build). As procps, it exits 1 when it lists no process.
//
// Options: -A, -e (every process, as is no selection), -p/--pid LIST, --ppid LIST, -o/--format
// LIST (pid, ppid, pgid, stat, comm, args, rss), --no-headers. Others are an error naming them.

const fs = require("fs");

//: Field name -> [header, value of a parsed /proc/PID/stat].
const FIELDS = {
  pid: ["PID", (p) => p.pid], ppid: ["PPID", (p) => p.ppid], pgid: ["PGID", (p) => p.pgid],
  pgrp: ["PGRP", (p) => p.pgid], stat: ["STAT", (p) => p.state], s: ["S", (p) => p.state],
  state: ["S", (p) => p.state], comm: ["COMMAND", (p) => p.comm], ucomm: ["COMMAND", (p) => p.comm],
  args: ["COMMAND", (p) => p.args], command: ["COMMAND", (p) => p.args], cmd: ["CMD", (p) => p.args],
  rss: ["RSS", (p) => p.rss], rssize: ["RSS", (p) => p.rss],
};
const NUMERIC = new Set(["pid", "ppid", "pgid", "pgrp", "rss", "rssize"]);

//: One process from /proc, or null when it ended while being read. comm is in parentheses and may
//: itself hold spaces and parentheses: the fields after it start after the last ")".
function readProcess(pid) {
  let stat;
  let cmdline = "";
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    if (stat === undefined) return null;
  }
  const close = stat.lastIndexOf(")");
  const comm = stat.slice(stat.indexOf("(") + 1, close);
  const rest = stat.slice(close + 2).split(" ");
  const args = cmdline.split("\0").filter((a, i, all) => a || i < all.length - 1).join(" ");
  return { pid: Number(pid), comm, state: rest[0], ppid: Number(rest[1]), pgid: Number(rest[2]),
    rss: Number(rest[21]) * 4, args: args || `[${comm}]` };
}

function numbers(list) {
  return new Set(list.split(/[,\s]+/).filter(Boolean).map(Number));
}

//: The options as {fields, pids, ppids, headers}; throws on one this ps does not know.
function parse(argv) {
  const opts = { fields: [], pids: null, ppids: null, headers: true };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].startsWith("--") && argv[i].includes("=")
      ? [argv[i].slice(0, argv[i].indexOf("=")), argv[i].slice(argv[i].indexOf("=") + 1)] : [argv[i], undefined];
    const value = () => (inline !== undefined ? inline : argv[++i]);
    if (["-A", "-e"].includes(flag)) continue;
    if (["--no-headers", "--no-heading"].includes(flag)) opts.headers = false;
    else if (["-o", "--format", "-O"].includes(flag)) opts.fields.push(...value().split(/[,\s]+/).filter(Boolean));
    else if (/^-o./.test(flag)) opts.fields.push(...flag.slice(2).split(","));
    else if (["-p", "--pid"].includes(flag)) opts.pids = numbers(value());
    else if (flag === "--ppid") opts.ppids = numbers(value());
    else throw new Error(`option ${argv[i]} is not one this ps (pallet's, for Node.js process trees) has`);
  }
  if (!opts.fields.length) opts.fields = ["pid", "stat", "args"];
  const unknown = opts.fields.find((f) => !FIELDS[f]);
  if (unknown) throw new Error(`field ${unknown} is not one this ps (pallet's, for Node.js process trees) has`);
  return opts;
}

function main(argv) {
  let opts;
  try {
    opts = parse(argv);
  } catch (err) {
    process.stderr.write(`ps: ${err.message}\n`);
    return 1;
  }
  const procs = fs.readdirSync("/proc").filter((name) => /^\d+$/.test(name)).map(readProcess)
    .filter((p) => p && (!opts.pids || opts.pids.has(p.pid)) && (!opts.ppids || opts.ppids.has(p.ppid)))
    .sort((a, b) => a.pid - b.pid);
  const cell = (f, v, last) => (NUMERIC.has(f) ? String(v).padStart(7) : last ? String(v) : String(v).padEnd(8));
  const row = (values) => values.map((v, n) => cell(opts.fields[n], v, n === values.length - 1)).join(" ");
  const lines = procs.map((p) => row(opts.fields.map((f) => FIELDS[f][1](p))));
  if (opts.headers) lines.unshift(row(opts.fields.map((f) => FIELDS[f][0])));
  if (lines.length) process.stdout.write(`${lines.join("\n")}\n`);
  return procs.length ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
