# The two commands of the README: `make run` (the main job) and `make test`
# (every check CI runs). Both install the pinned toolchain first.

CONTRACTS := ledger/contracts
NODE_BIN  := $(CONTRACTS)/node_modules/.bin
FORGE     := $(abspath $(NODE_BIN))/forge
STAMP     := $(CONTRACTS)/node_modules/.dbytes-setup
NEXTEST_PROFILE := $(if $(CI),ci,default)

.PHONY: setup run test test-rust test-contracts lint bench bench-codec clean

## setup: install the pinned contract toolchain (forge, anvil, cast, solcjs,
## OpenZeppelin, forge-std) from package-lock.json; idempotent.
setup: $(STAMP)

$(STAMP): $(CONTRACTS)/package.json $(CONTRACTS)/package-lock.json
	cd $(CONTRACTS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## run: the main job.
run: setup
	cargo run --release -- --help

## test: formatting, lints, Rust tests, contract formatting and tests.
test: setup lint test-rust test-contracts

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cd $(CONTRACTS) && $(FORGE) fmt --check

test-rust: setup
	cargo nextest run --workspace --locked --profile $(NEXTEST_PROFILE)

test-contracts: setup
	cd $(CONTRACTS) && $(FORGE) test

## bench: every benchmark; bench-codec: the codec alone.
bench: bench-codec

bench-codec:
	cargo bench -p dbytes-gateway --bench codec

clean:
	cargo clean
	rm -rf $(CONTRACTS)/out $(CONTRACTS)/cache
