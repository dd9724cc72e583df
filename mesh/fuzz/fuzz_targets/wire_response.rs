//! Arbitrary bytes as a piece protocol response (what the gateway's client
//! reads from any provider): decoded cleanly or refused, within bounded
//! memory.

#![no_main]

use dbytes_mesh::wire::Response;
use dbytes_mesh_fuzz::check_decoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_decoder::<Response>(data);
});
