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
// The input goes to the compiler through the WebAssembly heap, not through
// `solc.compile`: solc-js passes its string argument on the WebAssembly stack,
// which overflows ("RuntimeError: memory access out of bounds") once the
// standard JSON passes ~1.4 MB (argotorg/solidity#13966, argotorg/solc-js#692).
// forge-std alone brings ~0.7 MB, so a clean build of the contracts and their
// tests crosses it. No import callback is passed (a null pointer): forge
// provides every source inline, and solc reports any missing one as not found.
const soljson = require("solc/soljson");
const chunks = [];
process.stdin.on("data", (chunk) => chunks.push(chunk));
process.stdin.on("end", () => {
  const input = Buffer.concat(chunks).toString("utf8");
  const size = soljson.lengthBytesUTF8(input) + 1;
  const pointer = soljson._solidity_alloc(size);
  soljson.stringToUTF8(input, pointer, size);
  const output = soljson.UTF8ToString(soljson._solidity_compile(pointer, 0, 0));
  soljson._solidity_reset(); // frees the input and output buffers
  process.stdout.write(output);
});
