#!/usr/bin/env node
// Copies the ABI and creation bytecode of each deployed contract from a forge
// build into `artifacts/<Name>.json`, the files the Rust bindings (alloy's
// `sol!`) and `dbytes contracts deploy` read, or checks that the committed
// files still match a fresh build.
//
//   node script/artifacts.mjs write <forge out dir>
//   node script/artifacts.mjs check <forge out dir>
//
// The Makefile's `artifacts` and `check-artifacts` targets run forge first
// (into their own out and cache directories, so a concurrent `forge test`
// is not disturbed). solc's output is deterministic for the same sources and
// settings (the metadata hash appended to the bytecode covers exactly those),
// so a byte-for-byte comparison is the staleness test.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// The contracts `dbytes contracts deploy` deploys; libraries and abstract
// contracts (MerkleVerify, PeriodClock) are compiled into these.
const CONTRACTS = ["StorageToken", "Faucet", "ProviderRegistry", "StorageProofs", "Marketplace"];

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const artifactsDir = join(root, "artifacts");

function render(name, outDir) {
  const path = join(outDir, `${name}.sol`, `${name}.json`);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: did forge build ${name}?`);
  }
  const built = JSON.parse(readFileSync(path, "utf8"));
  const bytecode = built.bytecode && built.bytecode.object;
  if (!bytecode || bytecode === "0x") {
    throw new Error(`${path} has no creation bytecode`);
  }
  const artifact = {
    contractName: name,
    source: `src/${name}.sol`,
    compiler: built.metadata ? built.metadata.compiler.version : undefined,
    abi: built.abi,
    bytecode,
  };
  return JSON.stringify(artifact, null, 2) + "\n";
}

const [mode, outDir] = process.argv.slice(2);
if (!["write", "check"].includes(mode) || !outDir) {
  process.stderr.write("usage: artifacts.mjs write|check <forge out dir>\n");
  process.exit(2);
}

let stale = [];
for (const name of CONTRACTS) {
  const text = render(name, outDir);
  const target = join(artifactsDir, `${name}.json`);
  if (mode === "write") {
    writeFileSync(target, text);
    process.stdout.write(`wrote artifacts/${name}.json\n`);
  } else if (!existsSync(target) || readFileSync(target, "utf8") !== text) {
    stale.push(name);
  }
}
if (stale.length > 0) {
  process.stderr.write(
    `stale contract artifacts: ${stale.join(", ")} differ from a fresh build of src/.\n` +
      "Run `make artifacts` and commit ledger/contracts/artifacts/ with the source change.\n",
  );
  process.exit(1);
}
if (mode === "check") process.stdout.write("contract artifacts match the sources\n");
