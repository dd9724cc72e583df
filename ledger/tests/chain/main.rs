//! Integration tests of the chain client and the market index against a
//! real anvil (the pinned npm binary, started per test on 127.0.0.1 with a
//! port the OS picks, killed when the test ends, even on failure).
//! Time is moved forward with `evm_increaseTime` to drive periods.

mod anvil;
mod common;
mod deals;
mod errors;
mod index;
