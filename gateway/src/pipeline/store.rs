//! The seam between the object pipeline and where pieces live.

use std::ops::Range;

use bytes::Bytes;
use dbytes_ledger::book::Placement;
use dbytes_ledger::piece::PieceId;

use crate::codec::{EncodedSegment, SegmentLayout};

/// Why a piece store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PieceStoreError {
    /// Fewer pieces of a segment than its success threshold could be stored.
    #[error(
        "only {stored} of the {needed} pieces a segment needs could be stored ({reason}); \
         add providers or deals, or lower the bucket's redundancy"
    )]
    NotEnoughStored {
        /// Pieces stored.
        stored: usize,
        /// The success threshold.
        needed: usize,
        /// Why the others failed.
        reason: String,
    },
    /// The store failed for another reason (network, provider, local I/O).
    #[error("piece store failed: {0}")]
    Failed(String),
}

/// One piece (or byte range of one) to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceRequest {
    /// The piece's BLAKE3 id (the fetched bytes are checked against it by the
    /// decoder, not by the store).
    pub id: PieceId,
    /// Where it was placed.
    pub placement: Placement,
    /// The bytes of the piece wanted; `None` for the whole piece.
    pub range: Option<Range<u64>>,
}

/// Where the pieces of encoded segments are kept.
///
/// In a running gateway this is the mesh: placement over the user's deals,
/// providers reached through iroh, uploads to a few spare providers with the
/// long tail cancelled, reads from the fastest providers. The tests use an
/// in-memory double (`MemoryPieceStore`, feature `test-support`).
#[async_trait::async_trait]
pub trait PieceStore: Send + Sync + 'static {
    /// Stores the n pieces of one encoded segment, each on a distinct
    /// provider, and returns one entry per piece (in piece order): where it
    /// was placed, or `None` if it was not stored. Succeeds only once at
    /// least `layout.policy().success_threshold()` pieces are stored; a
    /// segment is never committed below it.
    async fn store_segment(
        &self,
        segment: &EncodedSegment,
        layout: &SegmentLayout,
    ) -> Result<Vec<Option<Placement>>, PieceStoreError>;

    /// Fetches pieces or byte ranges of pieces, returning one entry per
    /// request (in order): the bytes, or `None` if that piece could not be
    /// had. It may stop once `needed` requests have succeeded (cancelling the
    /// rest): callers put the pieces they prefer first and ask again for
    /// others if what arrived does not decode.
    async fn fetch_pieces(
        &self,
        requests: &[PieceRequest],
        needed: usize,
    ) -> Result<Vec<Option<Bytes>>, PieceStoreError>;

    /// Deletes pieces from where they were placed (a piece already gone
    /// counts as deleted). Called by the free worker, retried on error.
    async fn delete_pieces(&self, pieces: &[(PieceId, Placement)]) -> Result<(), PieceStoreError>;
}
