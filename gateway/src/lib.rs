//! dbytes-gateway: what S3 clients talk to.
//!
//! The gateway turns objects into pieces and back: it cuts an object into
//! segments, seals each with the object version's key, erasure-codes it into
//! pieces ([`codec`]), streams bodies through that codec to a piece store and
//! back ([`pipeline`]), and serves the S3 API over the book ([`s3`]). As the
//! mesh is built it places the pieces on providers, reads them back with
//! long-tail cancellation, repairs what is lost, serves the console, and
//! exports metrics.
//!
//! It is not where keys are derived, commitments defined or the book kept
//! (that is `dbytes-ledger`) nor where bytes cross the network (`dbytes-mesh`).
//!
//! Main types: [`s3::Gateway`] (build one, then [`s3::Gateway::serve`]),
//! [`pipeline::PieceStore`] (the seam to the mesh), [`pipeline::Pipeline`],
//! [`codec::SegmentLayout`] (segment and piece sizes of a redundancy policy),
//! [`codec::encode_segment`], [`codec::decode_segment`], [`codec::RangePlan`]
//! and [`codec::decode_range`], [`metrics::GatewayMetrics`],
//! [`settings::GatewaySettings`] (the config file), [`node::GatewayNode`]
//! (a whole running gateway), [`watch::ChainWatcher`] (missed proofs
//! reported, lost deals repaired) and [`devnet::Devnet`] (the local network).

pub mod admin;
pub mod codec;
pub mod devnet;
pub mod mesh;
pub mod metrics;
pub mod node;
pub mod pipeline;
pub mod repair;
pub mod s3;
pub mod settings;
pub mod watch;

/// Locks `mutex`, also after a panic elsewhere poisoned it: the maps the
/// gateway guards stay consistent between statements.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
