#!/usr/bin/env python3
"""Writes Prometheus' target files for `make run`'s local network.

The local network binds every `/metrics` endpoint to a port the OS picks,
anew on each start, so the targets cannot be fixed in prometheus.yml. This
reads them from where the network leaves them:

- each provider's `node.json` in its data dir (`metrics_addr`, written by
  the daemon once it listens; `<dir>/provider-N/data/node.json`, the data
  dir being `[mesh] data_dir` of `<dir>/provider-N/provider.toml`);
- the gateway's from the banner `make run` prints
  (`gateway metrics http://127.0.0.1:PORT/metrics`): pass the saved output
  with `--banner FILE` (`make run | tee devnet.out`), or the address itself
  with `--gateway 127.0.0.1:PORT`.

and writes targets/gateway-devnet.json and targets/provider-devnet.json next
to this script, which prometheus.yml's file_sd reads (and rereads when they
change: run this again after each restart of the network). python3 with its
standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

TARGETS = Path(__file__).resolve().parent / "targets"
GATEWAY_LINE = re.compile(r"gateway metrics\s+http://([^/\s]+)/metrics")


def running(pid: object) -> bool:
    """Whether a process with this id runs (and is visible to us)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def data_dir(config: Path) -> Path:
    """A provider's data dir: `[mesh] data_dir` of its config, relative to
    the config's directory."""
    text = config.read_text(encoding="utf-8")
    try:
        import tomllib  # Python 3.11+

        value = tomllib.loads(text).get("mesh", {}).get("data_dir", "data")
    except ImportError:
        match = re.search(r'^data_dir\s*=\s*"([^"]*)"', text, re.M)
        value = match.group(1) if match else "data"
    return config.parent / value


def provider_targets(devnet: Path) -> list[str]:
    """The metrics addresses of the network's providers, in their order."""
    found = []

    def index_of(path: Path) -> int:  # provider-10 after provider-9
        suffix = path.parent.name.removeprefix("provider-")
        return int(suffix) if suffix.isdigit() else sys.maxsize

    configs = sorted(devnet.glob("provider-*/provider.toml"), key=index_of)
    for node_file in (data_dir(config) / "node.json" for config in configs):
        if not node_file.exists():
            print(f"warning: no {node_file} (the provider has not started yet?)", file=sys.stderr)
            continue
        try:
            node = json.loads(node_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            print(f"warning: skipping {node_file}: {err}", file=sys.stderr)
            continue
        address = node.get("metrics_addr")
        if not address:
            print(f"warning: {node_file} names no metrics address", file=sys.stderr)
            continue
        if not running(node.get("pid")):
            print(
                f"warning: {node_file.parent.name} ({address}) is not running now; "
                "listed anyway (DbytesTargetDown will say so)",
                file=sys.stderr,
            )
        found.append(address)
    return found


def gateway_from_banner(banner: Path) -> str | None:
    """The last gateway metrics address the banner file mentions (a file
    appended to over several runs names the newest last)."""
    matches = GATEWAY_LINE.findall(banner.read_text(encoding="utf-8", errors="replace"))
    return matches[-1] if matches else None


def write_targets(path: Path, addresses: list[str]) -> None:
    """Writes one file_sd file, atomically: Prometheus may read it anytime."""
    groups = [{"targets": addresses, "labels": {}}] if addresses else []
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(groups, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    print(f"{path}: {', '.join(addresses) or 'no target'}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Write Prometheus' file_sd targets for the local network (`make run`)."
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("dbytes-devnet"),
        help="the local network's directory (`dbytes devnet --dir`; default dbytes-devnet)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--banner", type=Path, help="a file holding what `make run` printed")
    source.add_argument("--gateway", help="the gateway's metrics address, host:port")
    parser.add_argument(
        "--out", type=Path, default=TARGETS, help=f"where to write the files (default {TARGETS})"
    )
    args = parser.parse_args()

    if not args.dir.is_dir():
        print(
            f"error: {args.dir} is not a local network's directory; start one with `make run` "
            "or pass --dir",
            file=sys.stderr,
        )
        return 1
    providers = provider_targets(args.dir)
    if not providers:
        print(f"warning: no provider with a metrics address in {args.dir}", file=sys.stderr)
    gateway = args.gateway
    if args.banner is not None:
        gateway = gateway_from_banner(args.banner)
        if gateway is None:
            print(f"error: no `gateway metrics http://...` line in {args.banner}", file=sys.stderr)
            return 1
    if gateway is None:
        print(
            "warning: the gateway's target is left as it was: pass --banner FILE (what "
            "`make run` printed) or --gateway HOST:PORT (its `gateway metrics` line)",
            file=sys.stderr,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    write_targets(args.out / "provider-devnet.json", providers)
    if gateway is not None:
        write_targets(args.out / "gateway-devnet.json", [gateway])
    return 0


if __name__ == "__main__":
    sys.exit(main())
