//! How an object is cut into segments and a segment into pieces.

use std::ops::Range;

use dbytes_ledger::commitment;
use dbytes_placement::RedundancyPolicy;

use super::CodecError;

/// Plaintext bytes per AES-GCM block. A range read decrypts only the blocks
/// it touches, so this bounds the over-read of a small range (64 KiB).
pub const BLOCK_SIZE: usize = 64 * 1024;
/// Bytes of GCM tag after each encrypted block.
pub const TAG_SIZE: usize = 16;
/// Bytes a block takes in the ciphertext: the block and its tag.
pub const SEALED_BLOCK_SIZE: usize = BLOCK_SIZE + TAG_SIZE;
/// The segment size the default piece size aims at.
pub const TARGET_SEGMENT_SIZE: u64 = 32 * 1024 * 1024;
/// Pieces are a multiple of this: the erasure code's SIMD lanes work on
/// 64-byte units, and it keeps piece ranges aligned.
pub const PIECE_ALIGN: usize = 64;

/// The shape of every segment of an object: its redundancy policy and the
/// size of a full segment's pieces.
///
/// A full segment's ciphertext fills exactly k pieces of `piece_size` bytes
/// (as Sia's 4 MiB sectors in 40 MiB slabs), so pieces of full segments
/// have one size and a deal's proof tree is a plain tree of piece slots.
/// The last segment of an object is shorter, and so are its pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentLayout {
    policy: RedundancyPolicy,
    piece_size: usize,
}

impl SegmentLayout {
    /// A layout with pieces of `piece_size` bytes, a power of two of at least
    /// one sealed block.
    pub fn new(policy: RedundancyPolicy, piece_size: usize) -> Result<Self, CodecError> {
        if !piece_size.is_power_of_two() || piece_size < SEALED_BLOCK_SIZE.next_power_of_two() {
            return Err(CodecError::InvalidPieceSize(piece_size));
        }
        Ok(SegmentLayout { policy, piece_size })
    }

    /// The default layout of `policy`: pieces of the power of two nearest to
    /// 32 MiB / k, so segments are 24-45 MiB (k=4: 8 MiB pieces, 32 MiB
    /// segments; k=10: 4 MiB pieces, 40 MiB segments).
    pub fn for_policy(policy: RedundancyPolicy) -> Self {
        let ideal = TARGET_SEGMENT_SIZE as f64 / f64::from(policy.data_pieces());
        let exponent = ideal.log2().round() as u32;
        let floor = SEALED_BLOCK_SIZE.next_power_of_two().trailing_zeros();
        let piece_size = 1usize << exponent.clamp(floor, 30);
        SegmentLayout { policy, piece_size }
    }

    /// The redundancy policy.
    pub fn policy(&self) -> RedundancyPolicy {
        self.policy
    }

    /// k.
    pub fn data_pieces(&self) -> usize {
        usize::from(self.policy.data_pieces())
    }

    /// n.
    pub fn total_pieces(&self) -> usize {
        usize::from(self.policy.total_pieces())
    }

    /// Bytes of each piece of a full segment.
    pub fn piece_size(&self) -> usize {
        self.piece_size
    }

    /// Plaintext bytes of a full segment: the whole blocks whose sealed form
    /// fits in k pieces.
    pub fn segment_size(&self) -> u64 {
        let blocks = self.data_pieces() * self.piece_size / SEALED_BLOCK_SIZE;
        (blocks * BLOCK_SIZE) as u64
    }

    /// The height of the proof-tree slot a piece of this layout fills.
    pub fn slot_height(&self) -> u32 {
        // Invariant: piece_size ≤ 2^30, far below the commitment's maximum depth.
        commitment::depth(commitment::leaf_count_for(self.piece_size as u64))
            .expect("a piece of at most 1 GiB fits the commitment's depth")
    }

    /// How many segments an object of `object_len` bytes has (0 when empty).
    pub fn segment_count(&self, object_len: u64) -> u64 {
        object_len.div_ceil(self.segment_size())
    }

    /// The plaintext length of segment `index` of an object of `object_len` bytes.
    pub fn segment_len(&self, object_len: u64, index: u64) -> u64 {
        let start = index.saturating_mul(self.segment_size());
        object_len.saturating_sub(start).min(self.segment_size())
    }

    /// Bytes of each piece of a segment of `segment_len` plaintext bytes.
    pub fn piece_len(&self, segment_len: u64) -> usize {
        let sealed = sealed_len(segment_len as usize);
        sealed
            .div_ceil(self.data_pieces())
            .next_multiple_of(PIECE_ALIGN)
    }

    /// The segments an object byte range touches, each with the range inside it.
    pub fn segments_for_range(
        &self,
        range: Range<u64>,
    ) -> impl Iterator<Item = (u64, Range<u64>)> + use<> {
        let segment_size = self.segment_size();
        let first = range.start / segment_size;
        let end = range.end.div_ceil(segment_size);
        (first..end).filter_map(move |index| {
            let base = index * segment_size;
            let start = range.start.max(base) - base;
            let stop = range.end.min(base + segment_size) - base;
            (start < stop).then_some((index, start..stop))
        })
    }

    /// Which bytes of which data pieces hold plaintext `range` of a segment of
    /// `segment_len` bytes: only the sealed blocks the range touches, so a
    /// range inside one data piece is read from one provider.
    pub fn plan_range(&self, segment_len: u64, range: Range<u64>) -> Result<RangePlan, CodecError> {
        if range.start >= range.end || range.end > segment_len {
            return Err(CodecError::RangeOutsideSegment {
                start: range.start,
                end: range.end,
                segment_len,
            });
        }
        let first_block = (range.start / BLOCK_SIZE as u64) as usize;
        let last_block = ((range.end - 1) / BLOCK_SIZE as u64) as usize;
        let sealed_total = sealed_len(segment_len as usize);
        let sealed = first_block * SEALED_BLOCK_SIZE
            ..((last_block + 1) * SEALED_BLOCK_SIZE).min(sealed_total);
        let piece_len = self.piece_len(segment_len);
        let mut reads = Vec::new();
        let mut at = sealed.start;
        while at < sealed.end {
            let piece = at / piece_len;
            let piece_end = ((piece + 1) * piece_len).min(sealed.end);
            reads.push(PieceRead {
                piece,
                range: (at - piece * piece_len) as u64..(piece_end - piece * piece_len) as u64,
            });
            at = piece_end;
        }
        Ok(RangePlan {
            segment_len,
            first_block,
            sealed,
            skip: (range.start - (first_block * BLOCK_SIZE) as u64) as usize,
            take: (range.end - range.start) as usize,
            reads,
        })
    }

    /// Checks that the layout can encode with its policy.
    pub(crate) fn check_shape(&self) -> Result<(), CodecError> {
        if self.total_pieces() > self.data_pieces()
            && !reed_solomon_simd::ReedSolomonEncoder::supports(
                self.data_pieces(),
                self.total_pieces() - self.data_pieces(),
            )
        {
            return Err(CodecError::ErasureCode(format!(
                "{} data + {} parity pieces are not supported by the erasure code",
                self.data_pieces(),
                self.total_pieces() - self.data_pieces()
            )));
        }
        Ok(())
    }
}

/// Bytes of the sealed form of `plain_len` plaintext bytes.
pub fn sealed_len(plain_len: usize) -> usize {
    plain_len + plain_len.div_ceil(BLOCK_SIZE) * TAG_SIZE
}

/// One read of a contiguous byte range of one data piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceRead {
    /// The data piece (0..k).
    pub piece: usize,
    /// The bytes of that piece.
    pub range: Range<u64>,
}

/// What to read to decrypt a plaintext range of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePlan {
    pub(crate) segment_len: u64,
    pub(crate) first_block: usize,
    pub(crate) sealed: Range<usize>,
    pub(crate) skip: usize,
    pub(crate) take: usize,
    /// The piece reads, in order; their bytes concatenated are the sealed blocks.
    pub reads: Vec<PieceRead>,
}

impl RangePlan {
    /// Total bytes read from providers.
    pub fn read_len(&self) -> usize {
        self.sealed.len()
    }
}
