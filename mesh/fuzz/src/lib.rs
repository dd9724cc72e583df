//! What the piece protocol's fuzz targets share: decode arbitrary bytes as a
//! frame and as a frame body, require a clean `Ok` or `Err` (a panic is a
//! crash libFuzzer reports), require that decoding allocated no more than a
//! small multiple of the input (a decoder that trusted a declared length
//! would allocate for it), and require that whatever decodes survives an
//! encode/decode round trip unchanged.
//!
//! Not for throughput or for the stream I/O: `mesh/tests/protocol.rs` sends
//! malformed frames to a running provider.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};

use dbytes_mesh::wire::{MAX_FRAME_BYTES, decode_body, decode_frame, encode_frame};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bytes any decode may hold at once whatever its input: the wire's
/// bounded lists pre-allocate at most 4 KiB whatever length they declare,
/// and a message nests at most three lists being filled at a time.
pub const ALLOWANCE_BYTES: usize = 64 << 10;

/// Bytes a decode may hold per input byte beyond the allowance: the
/// largest in-memory form of the smallest encoding (a proof of three input
/// bytes is a ~120-byte value, decoded and then converted).
pub const BYTES_PER_INPUT_BYTE: usize = 64;

/// The system allocator, counting live bytes and their peak, so a target
/// can tell what one decode allocated (libFuzzer runs one input at a time
/// on one thread).
pub struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK_BYTES.fetch_max(live, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE_BYTES.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are
// bookkeeping only.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The most bytes `work` held at once beyond what was live before it.
fn peak_allocation<R>(work: impl FnOnce() -> R) -> (R, usize) {
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    PEAK_BYTES.store(before, Ordering::Relaxed);
    let result = work();
    let peak = PEAK_BYTES.load(Ordering::Relaxed).saturating_sub(before);
    (result, peak)
}

/// Decodes `data` as a whole frame and as a frame body of `T`; panics (a
/// finding) if decoding allocated beyond the bound or if a decoded message
/// does not round-trip. Returns the messages that decoded.
pub fn check_decoder<T>(data: &[u8]) -> Vec<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bound = ALLOWANCE_BYTES + BYTES_PER_INPUT_BYTE * data.len();
    let (framed, peak) = peak_allocation(|| decode_frame::<T>(data, MAX_FRAME_BYTES));
    assert!(
        peak <= bound,
        "decoding a {}-byte frame held {peak} bytes (bound {bound})",
        data.len()
    );
    let (body, peak) = peak_allocation(|| decode_body::<T>(data));
    assert!(
        peak <= bound,
        "decoding a {}-byte body held {peak} bytes (bound {bound})",
        data.len()
    );
    if let Ok((_, used)) = &framed {
        assert!(*used <= data.len(), "a frame used more bytes than given");
    }
    let decoded: Vec<T> = framed
        .ok()
        .map(|(message, _)| message)
        .into_iter()
        .chain(body.ok())
        .collect();
    for message in &decoded {
        let frame = encode_frame(message).expect("a decoded message encodes");
        let (again, used) =
            decode_frame::<T>(&frame, MAX_FRAME_BYTES).expect("a re-encoded message decodes");
        assert_eq!(used, frame.len(), "a re-encoded frame is used whole");
        assert_eq!(&again, message, "a decoded message survives a round trip");
    }
    decoded
}
