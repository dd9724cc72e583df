#!/usr/bin/env node
// forge drives solc through two calls: `--version` and `--standard-json`
// (input on stdin, output on stdout). No native solc binary exists for this
// machine, so this wrapper answers both with the pinned solcjs from npm.
// Sources arrive inline in the standard JSON; imports are never read here.
"use strict";
const solc = require("solc");

const args = process.argv.slice(2);
if (args.includes("--version")) {
  // forge parses the `Version: x.y.z+commit.hash` line.
  process.stdout.write(
    "solc, the solidity compiler commandline interface\nVersion: " + solc.version() + "\n",
  );
  process.exit(0);
}
if (!args.includes("--standard-json")) {
  process.stderr.write(
    "solc-wrapper: only --version and --standard-json are supported (got: " + args.join(" ") + ")\n",
  );
  process.exit(2);
}
const chunks = [];
process.stdin.on("data", (chunk) => chunks.push(chunk));
process.stdin.on("end", () => {
  const input = Buffer.concat(chunks).toString("utf8");
  const missingImport = (path) => ({ error: "solc-wrapper: import not provided inline by forge: " + path });
  process.stdout.write(solc.compile(input, { import: missingImport }));
});
