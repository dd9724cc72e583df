//! The object data path between the S3 API and the mesh.
//!
//! - **Write**: the request body is cut into segments of the bucket's
//!   layout; each segment is hashed (MD5 for the ETag, the checksums the
//!   client asked for) and encoded (sealed + erasure-coded, [`crate::codec`])
//!   on tokio's blocking pool, then handed to the [`PieceStore`]. At most
//!   [`PipelineConfig::segments_in_flight`] segments per write are being
//!   stored at once, one more is being encoded and one read, and all writes
//!   together hold at most [`PipelineConfig::segments_total`] segments, so
//!   memory stays bounded whatever the object size and the number of
//!   requests. Objects of at most
//!   [`PipelineConfig::inline_threshold`] bytes are sealed and kept inline in
//!   the book instead.
//! - **Read**: a byte range becomes a list of segment jobs; a segment read
//!   whole fetches the data pieces first (no erasure decoding when they are
//!   intact) and more pieces only if some are lost or corrupt; a range inside
//!   a segment fetches only the sealed blocks it touches
//!   ([`crate::codec::SegmentLayout::plan_range`]), from one piece when it
//!   lies in one. Segments stream out in order, a few decoded ahead, with
//!   at most [`PipelineConfig::segments_total`] being fetched and decoded
//!   across all reads.
//! - **Free**: [`free_due_pieces`] deletes the pieces the book queued
//!   (deleted and overwritten versions, aborted uploads, failed writes),
//!   retrying with backoff.
//!
//! It is not where placement is decided nor where bytes cross the network:
//! that is the [`PieceStore`] (the mesh). It keeps no state of its own.

mod frees;
#[cfg(any(test, feature = "test-support"))]
pub mod memory;
mod read;
mod store;
#[cfg(test)]
mod tests;
mod write;

use std::sync::Arc;

use dbytes_placement::RedundancyPolicy;

use crate::codec::{CodecError, SegmentLayout};

pub use frees::free_due_pieces;
pub use read::{ObjectSource, ObjectStream};
pub use store::{PieceRequest, PieceStore, PieceStoreError};
pub use write::{BodyDigest, WriteFailure, Written, WrittenData};

/// Objects of at most this many bytes are kept inline by default: one
/// 64 KiB block, sealed, costs 16 bytes of tag and no provider round trip,
/// and keeps the book (which is snapshotted and backed up) small.
pub const DEFAULT_INLINE_THRESHOLD: usize = 64 * 1024;

/// The largest inline threshold: the plaintext capacity of the one-piece
/// layout inline objects are sealed with (960 KiB).
pub fn max_inline_threshold() -> usize {
    inline_layout().segment_size() as usize
}

/// The layout inline objects are sealed with: one 1 MiB piece, no parity
/// (the book is backed up as a whole; its bytes need no erasure code).
pub(crate) fn inline_layout() -> SegmentLayout {
    // Invariant: 1-of-1 is a valid policy and 1 MiB a valid piece size.
    let policy = RedundancyPolicy::new(1, 1).expect("1-of-1 is a valid policy");
    SegmentLayout::new(policy, 1 << 20).expect("1 MiB is a valid piece size")
}

/// Why the pipeline could not write or read an object.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The client's request body failed (disconnect, bad chunk signature, …).
    #[error("reading the request body failed: {0}")]
    Body(String),
    /// Encoding or decoding failed (including pieces that do not verify).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The piece store failed.
    #[error(transparent)]
    Store(#[from] PieceStoreError),
    /// The manifest does not describe a decodable object.
    #[error("the object's manifest is inconsistent: {0}; the book may be damaged")]
    Manifest(String),
    /// The book failed.
    #[error(transparent)]
    Book(#[from] dbytes_ledger::book::BookError),
    /// A worker task panicked or was cancelled.
    #[error("a pipeline task failed: {0}")]
    Worker(String),
}

/// How the pipeline runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Objects of at most this many bytes are sealed inline in the book
    /// (capped at [`max_inline_threshold`]). Multipart parts never are.
    pub inline_threshold: usize,
    /// Segments being stored at once per write (a share of
    /// `segments_total`, so that one write cannot take them all).
    pub segments_in_flight: usize,
    /// Segments all writes hold at once, from the first byte read to the
    /// pieces stored; and, separately, segments all reads fetch and decode
    /// at once. The memory bound: about this many times segment size ×
    /// (2 + n/k) for writes (plaintext and pieces), segment size × 2 for
    /// reads, whatever the number of requests and object sizes.
    pub segments_total: usize,
    /// Segments fetched and decoded ahead of the one being sent, per read.
    pub segments_ahead: usize,
    /// Overrides the piece size of [`SegmentLayout::for_policy`] (tests use
    /// small pieces to get many segments from small objects).
    pub piece_size: Option<usize>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            inline_threshold: DEFAULT_INLINE_THRESHOLD,
            segments_in_flight: 2,
            // 3-of-10 (24 MiB segments, 80 MiB of pieces): ~416 MiB of
            // write buffers at most; enough to keep 40 piece uploads going.
            segments_total: 4,
            segments_ahead: 2,
            piece_size: None,
        }
    }
}

/// The object data path: encodes bodies into pieces on a [`PieceStore`]
/// and streams them back. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    store: Arc<dyn PieceStore>,
    config: PipelineConfig,
    in_flight: prometheus::IntGauge,
    budget: Arc<write::SegmentBudget>,
    reads: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline over `store`.
    pub fn new(store: Arc<dyn PieceStore>, mut config: PipelineConfig) -> Self {
        config.inline_threshold = config.inline_threshold.min(max_inline_threshold());
        config.segments_in_flight = config.segments_in_flight.max(1);
        config.segments_ahead = config.segments_ahead.max(1);
        config.segments_total = config.segments_total.max(1);
        config.segments_in_flight = config.segments_in_flight.min(config.segments_total);
        // Invariant: a valid metric name; the gauge is registered only if
        // the gateway's metrics replace it (`with_in_flight_gauge`).
        let in_flight = prometheus::IntGauge::new("dbytes_gateway_segments_in_flight", "unused")
            .expect("a valid metric name");
        Pipeline {
            budget: write::SegmentBudget::new(config.segments_total),
            reads: Arc::new(tokio::sync::Semaphore::new(config.segments_total)),
            store,
            config,
            in_flight,
        }
    }

    /// The same pipeline, counting the segments it is storing in `gauge`.
    pub fn with_in_flight_gauge(mut self, gauge: prometheus::IntGauge) -> Self {
        self.in_flight = gauge;
        self
    }

    /// Its configuration.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// The piece store it writes to.
    pub fn store(&self) -> &Arc<dyn PieceStore> {
        &self.store
    }

    /// The layout new objects of a bucket with `policy` are encoded with.
    pub fn layout(&self, policy: RedundancyPolicy) -> Result<SegmentLayout, PipelineError> {
        match self.config.piece_size {
            Some(piece_size) => Ok(SegmentLayout::new(policy, piece_size)?),
            None => Ok(SegmentLayout::for_policy(policy)),
        }
    }
}
