//! What decoding a frame costs in memory: hostile frames that declare long
//! lists are refused, naming the field and its limit, before the lists are
//! allocated, and honest frames cost about their own size. Measured with a
//! counting allocator, per thread, so other tests do not disturb it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use dbytes_ledger::commitment::PieceTree;
use dbytes_ledger::piece::PieceId;
use dbytes_mesh::commitment::{Commitment, MAX_COMMITMENT_PIECES};
use dbytes_mesh::deal::DealId;
use dbytes_mesh::wire::{
    self, AuditReply, MAX_AUDIT_LEAVES, MAX_FRAME_BYTES, MAX_TEXT_BYTES, Refusal, Request,
    Response, WireError,
};

/// Counts the bytes this thread allocates.
struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn count(bytes: usize) {
    // During thread teardown the counter may be gone; nothing to count then.
    let _ = ALLOCATED.try_with(|allocated| allocated.set(allocated.get() + bytes));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size.saturating_sub(layout.size()));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The result of `decode` and the bytes it allocated on this thread.
fn measured<T>(decode: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.with(Cell::get);
    let value = decode();
    (value, ALLOCATED.with(Cell::get) - before)
}

/// A frame holding `body`.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

/// A postcard varint.
fn varint(mut value: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    while value >= 0x80 {
        bytes.push((value as u8) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
    bytes
}

const MIB: usize = 1 << 20;

#[test]
fn an_audit_request_of_millions_of_leaves_is_refused_without_allocating_them() {
    // A 5 MiB audit request whose leaf_indexes declares and holds ~5 Mi
    // one-byte varints: decoded whole, 40 MiB of u64.
    let leaves = 5 * MIB - 128;
    let mut body = vec![4u8]; // Request::Audit
    body.extend_from_slice(&[0; 64]); // deal, piece
    body.extend(varint(leaves as u64));
    body.resize(body.len() + leaves, 1);
    let hostile = frame(&body);
    assert!(hostile.len() <= MAX_FRAME_BYTES);
    let (decoded, allocated) =
        measured(|| wire::decode_frame::<Request>(&hostile, MAX_FRAME_BYTES));
    assert_eq!(
        decoded.err(),
        Some(WireError::TooManyEntries {
            field: "Request::Audit.leaf_indexes",
            max: MAX_AUDIT_LEAVES
        })
    );
    let text = WireError::TooManyEntries {
        field: "Request::Audit.leaf_indexes",
        max: MAX_AUDIT_LEAVES,
    }
    .to_string();
    assert!(text.contains("Request::Audit.leaf_indexes") && text.contains("256"));
    assert!(
        allocated < 64 << 10,
        "refusing a {} byte frame allocated {allocated} bytes",
        hostile.len()
    );

    // One leaf over the limit, declared honestly, is refused the same way.
    let one_over = wire::encode_frame(&Request::Audit {
        deal: DealId::from(1),
        piece: PieceId([0; 32]),
        leaf_indexes: vec![7; MAX_AUDIT_LEAVES + 1],
    })
    .unwrap();
    assert!(matches!(
        wire::decode_frame::<Request>(&one_over, MAX_FRAME_BYTES),
        Err(WireError::TooManyEntries {
            max: MAX_AUDIT_LEAVES,
            ..
        })
    ));
}

#[test]
fn an_audit_reply_of_millions_of_empty_proofs_is_refused_without_allocating_them() {
    // Each proof is 3 bytes on the wire (index, empty leaf, empty path) and
    // ~56 bytes decoded: a 5 MiB frame would cost ~90 MiB.
    let proofs = (5 * MIB - 64) / 3;
    let mut body = vec![4u8]; // Response::Audit
    body.extend_from_slice(&[0; 32]); // root
    body.push(1); // leaf_count
    body.extend(varint(proofs as u64));
    for _ in 0..proofs {
        body.extend_from_slice(&[0, 0, 0]);
    }
    let hostile = frame(&body);
    assert!(hostile.len() <= MAX_FRAME_BYTES);
    let (decoded, allocated) =
        measured(|| wire::decode_frame::<Response>(&hostile, MAX_FRAME_BYTES));
    assert_eq!(
        decoded.err(),
        Some(WireError::TooManyEntries {
            field: "Response::Audit.proofs",
            max: MAX_AUDIT_LEAVES
        })
    );
    assert!(allocated < 64 << 10, "refusing allocated {allocated} bytes");

    // A leaf longer than a leaf, inside an otherwise valid reply.
    let mut body = vec![4u8];
    body.extend_from_slice(&[0; 32]);
    body.extend_from_slice(&[1, 1, 0]); // leaf_count, one proof, index 0
    body.extend(varint(MIB as u64));
    body.resize(body.len() + MIB, 0xab);
    body.push(0); // empty path
    assert!(matches!(
        wire::decode_frame::<Response>(&frame(&body), MAX_FRAME_BYTES),
        Err(WireError::TooManyEntries {
            field: "Response::Audit.proofs[].leaf",
            ..
        })
    ));
}

#[test]
fn long_texts_and_signatures_are_refused_and_name_their_field() {
    let reason = "x".repeat(MAX_TEXT_BYTES + 1);
    let long_reason = wire::encode_frame(&Response::Refused(Refusal::Internal(reason))).unwrap();
    assert!(matches!(
        wire::decode_frame::<Response>(&long_reason, MAX_FRAME_BYTES),
        Err(WireError::TooManyEntries {
            max: MAX_TEXT_BYTES,
            ..
        })
    ));
    let long_signature = wire::encode_frame(&Response::Signed {
        signature: vec![1; 2 * MIB],
    })
    .unwrap();
    let (decoded, allocated) =
        measured(|| wire::decode_frame::<Response>(&long_signature, MAX_FRAME_BYTES));
    assert!(matches!(
        decoded,
        Err(WireError::TooManyEntries {
            field: "Response::Signed.signature",
            ..
        })
    ));
    assert!(allocated < 64 << 10, "refusing allocated {allocated} bytes");
}

#[test]
fn honest_frames_at_their_limits_cost_about_their_own_size() {
    let commitment = Request::SignCommitment(Commitment {
        deal: DealId::from(9),
        root: Default::default(),
        leaf_count: 1,
        version: 1,
        pieces: (0..MAX_COMMITMENT_PIECES)
            .map(|index| PieceId::of(&index.to_le_bytes()))
            .collect(),
    });
    let largest = wire::encode_frame(&commitment).unwrap();
    let (decoded, allocated) =
        measured(|| wire::decode_frame::<Request>(&largest, MAX_FRAME_BYTES));
    assert_eq!(decoded.unwrap().0, commitment);
    assert!(
        allocated <= 2 * largest.len(),
        "decoding a {} byte frame allocated {allocated} bytes",
        largest.len()
    );

    let piece = vec![5u8; 1 << 20];
    let tree = PieceTree::build(&piece);
    let audit = Response::Audit(AuditReply {
        root: tree.root(),
        leaf_count: tree.leaf_count(),
        proofs: (0..MAX_AUDIT_LEAVES as u64)
            .map(|index| tree.prove(&piece, index * 7).unwrap())
            .collect(),
    });
    let reply = wire::encode_frame(&audit).unwrap();
    let (decoded, allocated) = measured(|| wire::decode_frame::<Response>(&reply, MAX_FRAME_BYTES));
    assert_eq!(decoded.unwrap().0, audit);
    assert!(
        allocated <= 3 * reply.len(),
        "decoding a {} byte audit reply allocated {allocated} bytes",
        reply.len()
    );
}
