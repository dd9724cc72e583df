# The two commands of the README: `make run` (the main job) and `make test`
# (every check CI runs). Both install the pinned toolchain first.

CONTRACTS := ledger/contracts
NODE_BIN  := $(CONTRACTS)/node_modules/.bin
# The native forge from the platform's npm package: the npm launcher in
# node_modules/.bin always exits 0, which would hide every failure.
FOUNDRY_PLATFORM := linux-$(if $(filter aarch64 arm64,$(shell uname -m)),arm64,amd64)
FORGE     := $(abspath $(CONTRACTS))/node_modules/@foundry-rs/forge-$(FOUNDRY_PLATFORM)/bin/forge
STAMP     := $(CONTRACTS)/node_modules/.dbytes-setup
NEXTEST_PROFILE := $(if $(CI),ci,default)
# CI builds once from a clean checkout: incremental caches would only double
# the target dir (~6 GB of ~11 GB) on a runner whose disk is not ours alone.
ifdef CI
export CARGO_INCREMENTAL := 0
endif

.PHONY: setup run test test-rust test-contracts lint bench bench-codec bench-gateway bench-gateway-rss bench-mesh bench-repair fuzz-mesh clean artifacts \
	check-artifacts check-observability gas

## setup: install the pinned contract toolchain (forge, anvil, cast, solcjs,
## OpenZeppelin, forge-std) from package-lock.json; idempotent.
setup: $(STAMP)

$(STAMP): $(CONTRACTS)/package.json $(CONTRACTS)/package-lock.json
	cd $(CONTRACTS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## run: the main job: the whole local network (anvil, the contracts, six
## providers, a gateway with an S3 user) in ./dbytes-devnet, S3 on
## 127.0.0.1:9000. Ctrl-C stops it; running it again resumes. DEVNET_ARGS
## passes options, e.g. DEVNET_ARGS="--providers 10 --s3-port 9100".
run: setup
	cargo run --release --locked -- devnet $(DEVNET_ARGS)

## test: formatting, lints, Rust tests, contract formatting and tests, the
## check that the committed contract artifacts match the sources, and the
## check that dashboards and alert rules name only exported metrics.
test: setup lint check-artifacts check-observability test-rust test-contracts

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cd $(CONTRACTS) && $(FORGE) fmt --check

# The daemon tests run `dbytes provider run` as child processes: build it first.
test-rust: setup
	cargo build --locked --bin dbytes
	cargo nextest run --workspace --locked --profile $(NEXTEST_PROFILE)

test-contracts: setup
	cd $(CONTRACTS) && $(FORGE) test

# The artifacts build has its own out and cache directories so it never races a
# `forge test` running in the same tree.
ARTIFACTS_OUT   := out/.artifacts
ARTIFACTS_BUILD := cd $(CONTRACTS) && $(FORGE) build --quiet --skip test --skip script \
	--out $(ARTIFACTS_OUT) --cache-path cache/.artifacts

## artifacts: rebuild ledger/contracts/artifacts/ (ABI + bytecode of each
## deployed contract), which the Rust bindings and `dbytes contracts deploy`
## read; commit them with every change to ledger/contracts/src.
artifacts: setup
	$(ARTIFACTS_BUILD)
	cd $(CONTRACTS) && node script/artifacts.mjs write $(ARTIFACTS_OUT)

## check-artifacts: fail when the committed artifacts are stale against src/.
check-artifacts: setup
	$(ARTIFACTS_BUILD)
	cd $(CONTRACTS) && node script/artifacts.mjs check $(ARTIFACTS_OUT)

## check-observability: the Grafana dashboards (grafana/) and the Prometheus
## alert rules (deploy/prometheus/) use only metrics and labels the code
## exports; promtool parses the queries, checks the config and rules and runs
## the rules' unit tests (required under CI, skipped loudly without it).
check-observability:
	python3 deploy/check.py

## gas: the gas report of test/Gas.t.sol, one `gas <operation>=<gas>` line per
## operation (transaction gas: intrinsic + calldata + execution - refund).
GAS_LOG := $(CONTRACTS)/out/gas-report.log
gas: setup
	@mkdir -p $(CONTRACTS)/out
	@cd $(CONTRACTS) && $(FORGE) test --match-contract Gas -vv > $(abspath $(GAS_LOG)) 2>&1 \
		|| { cat $(abspath $(GAS_LOG)); exit 1; }
	@sed -n 's/^ *\(gas [A-Za-z0-9_]*=[0-9]*\) *$$/\1/p' $(GAS_LOG)

## bench: every benchmark; bench-codec: the codec alone.
bench: bench-codec bench-gateway bench-mesh bench-repair

bench-codec:
	cargo bench -p dbytes-gateway --bench codec

## bench-gateway: a 1 GiB object through the S3 API (aws-cli) on a local
## network of 10 providers with stores on tmpfs (DBYTES_BENCH_MIB to change).
bench-gateway: setup
	cargo bench -p dbytes-gateway --bench gateway

## bench-gateway-rss: the gateway alone, as its own `dbytes gateway run`
## process, while a 10 GiB object streams in through aws-cli at 4-of-6 on 10
## providers (15 GiB of tmpfs, checked first): its peak resident memory and
## the upload's speed (DBYTES_BENCH_GIB to change the size). Not in `bench`.
bench-gateway-rss: setup
	cargo build --release --locked --bin dbytes
	DBYTES_BENCH_RSS=1 cargo bench -p dbytes-gateway --bench gateway

## bench-mesh: the piece protocol against raw iroh streams: 4 MiB pieces put
## and got over 8 streams to one provider on loopback (store on /dev/shm),
## 4 KiB range gets; medians of DBYTES_BENCH_ROUNDS rounds (default 5).
bench-mesh:
	cargo bench -p dbytes-mesh --bench mesh

## bench-repair: 1 GiB of objects at 3-of-6 on a local network of 10
## providers (stores on tmpfs), then 3 providers stopped: how long the repair
## worker takes to notice and to restore full redundancy, and how fast it
## regenerates (DBYTES_BENCH_MIB to change the amount).
bench-repair: setup
	cargo bench -p dbytes-gateway --bench repair

## fuzz-mesh: libFuzzer on the piece protocol's decoder (requests, then
## responses), FUZZ_SECS seconds each (default 180); not part of `make test`.
## Needs cargo-fuzz (`cargo install cargo-fuzz`); stable Rust works without a
## sanitizer. Findings land in mesh/fuzz/artifacts/.
FUZZ_SECS ?= 180
fuzz-mesh:
	cd mesh/fuzz && for target in wire_request wire_response; do \
		cargo fuzz run --sanitizer none $$target -- -max_total_time=$(FUZZ_SECS) \
			|| exit 1; \
	done

clean:
	cargo clean
	rm -rf $(CONTRACTS)/out $(CONTRACTS)/cache
