//! The object codec: segment → encrypt → erasure-code → pieces, and back.
//!
//! A segment's plaintext is sealed in [`BLOCK_SIZE`] blocks with AES-256-GCM
//! under the object version's key; block `b` of segment `s` uses the nonce
//! `s (8 bytes, big-endian) ‖ b (4 bytes, big-endian)` and the segment's
//! length as associated data, so a block cannot be moved, dropped from the
//! end or replayed into another segment unnoticed. The sealed blocks are laid
//! end to end and cut into k equal data pieces; systematic Reed-Solomon
//! (reed-solomon-simd) adds n - k parity pieces. Every piece is named by its
//! BLAKE3 hash ([`PieceId`]).
//!
//! - Reading the whole segment needs any k pieces; with the k data pieces no
//!   erasure decoding runs at all.
//! - Reading a range needs only the sealed blocks it touches, from the data
//!   pieces that hold them ([`SegmentLayout::plan_range`]).
//! - Erasure coding runs in stripes of a few tens of KiB per piece so the
//!   working set stays in cache (measured ~3× faster than one call over a
//!   32 MiB segment).
//!
//! Everything here is pure and synchronous: callers run it on a blocking
//! pool, a segment per task.

mod erasure;
mod layout;
#[cfg(test)]
mod tests;

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::{AeadInOut, Aes256Gcm, KeyInit, Nonce, Tag};
use dbytes_ledger::keys::VersionKey;
use dbytes_ledger::piece::PieceId;

pub use layout::{
    BLOCK_SIZE, PIECE_ALIGN, PieceRead, RangePlan, SEALED_BLOCK_SIZE, SegmentLayout, TAG_SIZE,
    TARGET_SEGMENT_SIZE, sealed_len,
};

/// Why a segment could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Piece sizes are powers of two of at least one sealed block.
    #[error("a piece size must be a power of two of at least 128 KiB, not {0} bytes")]
    InvalidPieceSize(usize),
    /// A segment is empty or larger than the layout's segment size.
    #[error("a segment holds 1 to {capacity} bytes, not {len}")]
    InvalidSegmentLength {
        /// The plaintext length given.
        len: u64,
        /// The layout's segment size.
        capacity: u64,
    },
    /// The caller passed a piece list of the wrong length.
    #[error("expected {expected} piece slots, got {actual}")]
    WrongPieceCount {
        /// n (or the number of reads in a range plan).
        expected: usize,
        /// What was passed.
        actual: usize,
    },
    /// Fewer than k pieces were present and intact.
    #[error(
        "segment {segment} needs {needed} intact pieces but only {intact} arrived intact \
         (pieces {rejected:?} failed their BLAKE3 check); fetch more pieces or repair the segment"
    )]
    NotEnoughPieces {
        /// The segment index.
        segment: u64,
        /// k.
        needed: usize,
        /// How many were intact.
        intact: usize,
        /// The pieces whose bytes did not match their id.
        rejected: Vec<usize>,
    },
    /// A sealed block failed authentication.
    #[error(
        "block {block} of segment {segment} failed authentication: its bytes were altered, or \
         the key or segment length is wrong"
    )]
    Tampered {
        /// The segment index.
        segment: u64,
        /// The block index inside the segment.
        block: usize,
    },
    /// A range that does not lie inside the segment.
    #[error("range {start}..{end} is not inside a segment of {segment_len} bytes")]
    RangeOutsideSegment {
        /// Range start.
        start: u64,
        /// Range end (exclusive).
        end: u64,
        /// The segment's length.
        segment_len: u64,
    },
    /// The bytes read for a range plan do not have the planned lengths.
    #[error("read {index} of the range plan returned {actual} bytes, {expected} were planned")]
    ShortRead {
        /// Index into [`RangePlan::reads`].
        index: usize,
        /// Planned length.
        expected: usize,
        /// Length received.
        actual: usize,
    },
    /// The erasure code refused its input (a bug or an unsupported shape).
    #[error("erasure coding failed: {0}")]
    ErasureCode(String),
}

/// The n pieces of one encoded segment.
///
/// The k data pieces are consecutive slices of one buffer (the sealed
/// segment), the parity pieces of another: nothing is copied to cut them.
#[derive(Debug, Clone, Default)]
pub struct EncodedSegment {
    segment_len: u64,
    piece_len: usize,
    data: Vec<u8>,
    parity: Vec<u8>,
    ids: Vec<PieceId>,
}

impl EncodedSegment {
    /// Plaintext bytes of the segment.
    pub fn segment_len(&self) -> u64 {
        self.segment_len
    }

    /// Bytes of each piece.
    pub fn piece_len(&self) -> usize {
        self.piece_len
    }

    /// The number of pieces (n).
    pub fn piece_count(&self) -> usize {
        self.ids.len()
    }

    /// The bytes of piece `index` (data pieces first, then parity).
    pub fn piece(&self, index: usize) -> &[u8] {
        let data_pieces = self.data.len() / self.piece_len;
        let (buffer, at) = if index < data_pieces {
            (&self.data, index)
        } else {
            (&self.parity, index - data_pieces)
        };
        &buffer[at * self.piece_len..(at + 1) * self.piece_len]
    }

    /// Every piece, in order.
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        self.data
            .chunks(self.piece_len)
            .chain(self.parity.chunks(self.piece_len))
    }

    /// The BLAKE3 ids of the pieces, in order.
    pub fn ids(&self) -> &[PieceId] {
        &self.ids
    }
}

/// A decoded segment, and which pieces turned out corrupt on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedSegment {
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// Pieces whose bytes did not match their id (for the repair worker).
    pub rejected: Vec<usize>,
}

fn nonce(segment_index: u64, block: usize) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&segment_index.to_be_bytes());
    // Invariant: a segment has at most 2^30 / 64 KiB blocks, far below 2^32.
    nonce[8..].copy_from_slice(&(block as u32).to_be_bytes());
    nonce.into()
}

fn cipher(key: &VersionKey) -> Aes256Gcm {
    Aes256Gcm::new(key.as_bytes().into())
}

/// Encrypts and erasure-codes one segment of plaintext into n pieces.
///
/// Costs one pass of AES-GCM over the segment, the erasure code over it, and
/// BLAKE3 over all n pieces. Allocates the pieces; [`encode_segment_into`]
/// reuses those of an earlier segment instead.
pub fn encode_segment(
    layout: &SegmentLayout,
    key: &VersionKey,
    segment_index: u64,
    plaintext: &[u8],
) -> Result<EncodedSegment, CodecError> {
    let mut encoded = EncodedSegment::default();
    encode_segment_into(layout, key, segment_index, plaintext, &mut encoded)?;
    Ok(encoded)
}

/// [`encode_segment`] into the buffers of `out`, which it overwrites.
///
/// A pipeline that recycles its segments this way spares the kernel
/// mapping and zeroing fresh pages for every segment (~15 % of the encode
/// time when measured).
pub fn encode_segment_into(
    layout: &SegmentLayout,
    key: &VersionKey,
    segment_index: u64,
    plaintext: &[u8],
    out: &mut EncodedSegment,
) -> Result<(), CodecError> {
    layout.check_shape()?;
    let segment_len = plaintext.len() as u64;
    if plaintext.is_empty() || segment_len > layout.segment_size() {
        return Err(CodecError::InvalidSegmentLength {
            len: segment_len,
            capacity: layout.segment_size(),
        });
    }
    let (k, n) = (layout.data_pieces(), layout.total_pieces());
    let piece_len = layout.piece_len(segment_len);
    out.segment_len = segment_len;
    out.piece_len = piece_len;
    out.data.resize(k * piece_len, 0);
    // Everything up to the sealed length is overwritten below; the padding
    // after it must be zero (the erasure code reads it).
    out.data[sealed_len(plaintext.len())..].fill(0);
    let cipher = cipher(key);
    let aad = segment_len.to_le_bytes();
    for (block, (plain, sealed)) in plaintext
        .chunks(BLOCK_SIZE)
        .zip(out.data.chunks_mut(SEALED_BLOCK_SIZE))
        .enumerate()
    {
        let (body, tag_out) = sealed.split_at_mut(plain.len());
        body.copy_from_slice(plain);
        let tag = cipher
            .encrypt_inout_detached(&nonce(segment_index, block), &aad, body.into())
            // Invariant: AES-GCM only refuses messages over 64 GiB.
            .expect("a 64 KiB block is within AES-GCM's limits");
        tag_out[..TAG_SIZE].copy_from_slice(&tag);
    }
    out.parity.resize((n - k) * piece_len, 0);
    erasure::encode(&out.data, &mut out.parity, k, n - k, piece_len)?;
    out.ids.clear();
    out.ids.extend(
        out.data
            .chunks(piece_len)
            .chain(out.parity.chunks(piece_len))
            .map(PieceId::of),
    );
    Ok(())
}

/// Decodes a segment from whichever of its pieces are at hand.
///
/// `pieces[i]` is piece i's bytes if fetched, `ids` the ids the manifest
/// recorded. Pieces that do not match their id are set aside and reported
/// in [`DecodedSegment::rejected`]. With all k data pieces intact no erasure
/// decoding runs and nothing is copied but the plaintext out; otherwise any
/// k intact pieces rebuild the missing ones.
pub fn decode_segment(
    layout: &SegmentLayout,
    key: &VersionKey,
    segment_index: u64,
    segment_len: u64,
    pieces: &[Option<&[u8]>],
    ids: &[PieceId],
) -> Result<DecodedSegment, CodecError> {
    let mut plaintext = Vec::new();
    let rejected = decode_segment_into(
        layout,
        key,
        segment_index,
        segment_len,
        pieces,
        ids,
        &mut plaintext,
    )?;
    Ok(DecodedSegment {
        plaintext,
        rejected,
    })
}

/// [`decode_segment`] into `plaintext` (resized to the segment's length),
/// returning the rejected pieces.
pub fn decode_segment_into(
    layout: &SegmentLayout,
    key: &VersionKey,
    segment_index: u64,
    segment_len: u64,
    pieces: &[Option<&[u8]>],
    ids: &[PieceId],
    plaintext: &mut Vec<u8>,
) -> Result<Vec<usize>, CodecError> {
    let checked = check_pieces(layout, segment_index, segment_len, pieces, ids)?;
    plaintext.resize(segment_len as usize, 0);
    let piece_len = layout.piece_len(segment_len);
    let k = layout.data_pieces();
    if checked.intact[..k].iter().all(Option::is_some) {
        let data: Vec<&[u8]> = checked.intact[..k].iter().flatten().copied().collect();
        open_blocks(
            key,
            segment_index,
            segment_len,
            0,
            &PieceView::new(&data, piece_len),
            plaintext,
        )?;
    } else {
        let sealed = restore_data(layout, &checked.intact, piece_len)?;
        open_blocks(
            key,
            segment_index,
            segment_len,
            0,
            &PieceView::new(&[&sealed], sealed.len()),
            plaintext,
        )?;
    }
    Ok(checked.rejected)
}

/// The pieces of a segment that passed their BLAKE3 check.
struct CheckedPieces<'a> {
    intact: Vec<Option<&'a [u8]>>,
    rejected: Vec<usize>,
}

/// The sealed bytes of a segment as consecutive pieces, read without copying
/// where a block lies inside one piece.
struct PieceView<'a, 'b> {
    pieces: &'b [&'a [u8]],
    piece_len: usize,
}

impl<'a, 'b> PieceView<'a, 'b> {
    fn new(pieces: &'b [&'a [u8]], piece_len: usize) -> Self {
        PieceView { pieces, piece_len }
    }

    /// Sealed bytes `start..start + len`, borrowed when inside one piece,
    /// else gathered into `scratch`.
    fn bytes<'s>(&'s self, start: usize, len: usize, scratch: &'s mut Vec<u8>) -> &'s [u8] {
        let (piece, at) = (start / self.piece_len, start % self.piece_len);
        if at + len <= self.piece_len {
            return &self.pieces[piece][at..at + len];
        }
        scratch.clear();
        let mut position = start;
        while scratch.len() < len {
            let (piece, at) = (position / self.piece_len, position % self.piece_len);
            let take = (self.piece_len - at).min(len - scratch.len());
            scratch.extend_from_slice(&self.pieces[piece][at..at + take]);
            position += take;
        }
        scratch
    }
}

/// The sealed segment (its k data pieces), rebuilt from any k intact pieces.
pub struct SealedSegment {
    /// k × piece_len bytes: the sealed blocks, then zero padding.
    pub data: Vec<u8>,
    /// Pieces whose bytes did not match their id.
    pub rejected: Vec<usize>,
}

/// Verifies the pieces at hand and rebuilds the sealed segment, without
/// decrypting: what the repair worker needs to regenerate lost pieces.
pub fn reassemble(
    layout: &SegmentLayout,
    segment_index: u64,
    segment_len: u64,
    pieces: &[Option<&[u8]>],
    ids: &[PieceId],
) -> Result<SealedSegment, CodecError> {
    let checked = check_pieces(layout, segment_index, segment_len, pieces, ids)?;
    let data = restore_data(layout, &checked.intact, layout.piece_len(segment_len))?;
    Ok(SealedSegment {
        data,
        rejected: checked.rejected,
    })
}

/// Checks piece lengths and ids until k intact pieces are found, data pieces
/// first: with all of them intact, no parity piece is even hashed.
fn check_pieces<'a>(
    layout: &SegmentLayout,
    segment_index: u64,
    segment_len: u64,
    pieces: &[Option<&'a [u8]>],
    ids: &[PieceId],
) -> Result<CheckedPieces<'a>, CodecError> {
    let (k, n) = (layout.data_pieces(), layout.total_pieces());
    if pieces.len() != n || ids.len() != n {
        return Err(CodecError::WrongPieceCount {
            expected: n,
            actual: pieces.len().min(ids.len()),
        });
    }
    if segment_len == 0 || segment_len > layout.segment_size() {
        return Err(CodecError::InvalidSegmentLength {
            len: segment_len,
            capacity: layout.segment_size(),
        });
    }
    let piece_len = layout.piece_len(segment_len);
    let mut rejected = Vec::new();
    let mut intact: Vec<Option<&[u8]>> = vec![None; n];
    let mut count = 0;
    for (index, piece) in pieces.iter().enumerate() {
        if count == k {
            break;
        }
        if let Some(bytes) = piece {
            if bytes.len() == piece_len && ids[index].matches(bytes) {
                intact[index] = Some(bytes);
                count += 1;
            } else {
                rejected.push(index);
            }
        }
    }
    if count < k {
        return Err(CodecError::NotEnoughPieces {
            segment: segment_index,
            needed: k,
            intact: count,
            rejected,
        });
    }
    Ok(CheckedPieces { intact, rejected })
}

/// The k data pieces end to end, the missing ones rebuilt by the erasure code.
fn restore_data(
    layout: &SegmentLayout,
    intact: &[Option<&[u8]>],
    piece_len: usize,
) -> Result<Vec<u8>, CodecError> {
    let k = layout.data_pieces();
    let mut data = vec![0u8; k * piece_len];
    for (index, piece) in intact[..k].iter().enumerate() {
        if let Some(bytes) = piece {
            data[index * piece_len..(index + 1) * piece_len].copy_from_slice(bytes);
        }
    }
    if intact[..k].iter().any(Option::is_none) {
        erasure::restore(&mut data, intact, k, piece_len)?;
    }
    Ok(data)
}

/// Regenerates the pieces `wanted` (any of 0..n) of a sealed segment: the
/// repair worker's path, with no key and no decryption.
pub fn regenerate_pieces(
    layout: &SegmentLayout,
    sealed: &SealedSegment,
    wanted: &[usize],
) -> Result<Vec<Vec<u8>>, CodecError> {
    let k = layout.data_pieces();
    let piece_len = sealed.data.len() / k;
    let mut parity = Vec::new();
    if wanted.iter().any(|&index| index >= k) {
        let parity_pieces = layout.total_pieces() - k;
        parity.resize(parity_pieces * piece_len, 0);
        erasure::encode(&sealed.data, &mut parity, k, parity_pieces, piece_len)?;
    }
    wanted
        .iter()
        .map(|&index| {
            let (buffer, at) = if index < k {
                (&sealed.data, index)
            } else {
                (&parity, index - k)
            };
            buffer
                .get(at * piece_len..(at + 1) * piece_len)
                .map(<[u8]>::to_vec)
                .ok_or(CodecError::WrongPieceCount {
                    expected: layout.total_pieces(),
                    actual: index + 1,
                })
        })
        .collect()
}

/// Decrypts the plaintext range a [`RangePlan`] was made for, from the bytes
/// of its reads (in order). Authenticates every block it decrypts.
pub fn decode_range(
    key: &VersionKey,
    segment_index: u64,
    plan: &RangePlan,
    reads: &[&[u8]],
) -> Result<Vec<u8>, CodecError> {
    if reads.len() != plan.reads.len() {
        return Err(CodecError::WrongPieceCount {
            expected: plan.reads.len(),
            actual: reads.len(),
        });
    }
    let mut sealed = Vec::with_capacity(plan.sealed.len());
    for (index, (read, bytes)) in plan.reads.iter().zip(reads).enumerate() {
        let expected = (read.range.end - read.range.start) as usize;
        if bytes.len() != expected {
            return Err(CodecError::ShortRead {
                index,
                expected,
                actual: bytes.len(),
            });
        }
        sealed.extend_from_slice(bytes);
    }
    let plain_start = plan.first_block * BLOCK_SIZE;
    let plain_end = (plain_start + sealed.len()
        - sealed.len().div_ceil(SEALED_BLOCK_SIZE) * TAG_SIZE)
        .min(plan.segment_len as usize);
    let mut plaintext = vec![0u8; plain_end - plain_start];
    open_blocks(
        key,
        segment_index,
        plan.segment_len,
        plan.first_block,
        &PieceView::new(&[&sealed], sealed.len()),
        &mut plaintext,
    )?;
    plaintext.truncate(plan.skip + plan.take);
    plaintext.drain(..plan.skip);
    Ok(plaintext)
}

/// Decrypts consecutive sealed blocks, the first being `first_block`, into `out`.
fn open_blocks(
    key: &VersionKey,
    segment_index: u64,
    segment_len: u64,
    first_block: usize,
    sealed: &PieceView<'_, '_>,
    out: &mut [u8],
) -> Result<(), CodecError> {
    let cipher = cipher(key);
    let aad = segment_len.to_le_bytes();
    let mut scratch = Vec::new();
    for (offset, plain) in out.chunks_mut(BLOCK_SIZE).enumerate() {
        let block = first_block + offset;
        let bytes = sealed.bytes(
            offset * SEALED_BLOCK_SIZE,
            plain.len() + TAG_SIZE,
            &mut scratch,
        );
        let (body, tag) = bytes.split_at(plain.len());
        let tampered = CodecError::Tampered {
            segment: segment_index,
            block,
        };
        // Invariant: `bytes` is exactly the block and its 16-byte tag.
        let tag = Tag::try_from(tag).map_err(|_| tampered.clone())?;
        let buffer = InOutBuf::new(body, plain).map_err(|_| tampered.clone())?;
        cipher
            .decrypt_inout_detached(&nonce(segment_index, block), &aad, buffer, &tag)
            .map_err(|_| tampered)?;
    }
    Ok(())
}
