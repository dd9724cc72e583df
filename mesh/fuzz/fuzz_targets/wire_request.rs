//! Arbitrary bytes as a piece protocol request (what a provider reads from
//! any peer): decoded cleanly or refused, within bounded memory.

#![no_main]

use dbytes_mesh::wire::Request;
use dbytes_mesh_fuzz::check_decoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for request in check_decoder::<Request>(data) {
        // What the provider does next with a decoded request.
        let _ = request.kind();
        let _ = request.check_limits();
    }
});
