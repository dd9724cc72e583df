//! dbytes-gateway: what S3 clients talk to.
//!
//! The gateway turns objects into pieces and back: it cuts an object into
//! segments, seals each with the object version's key, erasure-codes it into
//! pieces ([`codec`]) and, as the mesh and the S3 API are built, places the
//! pieces on providers, reads them back with long-tail cancellation, repairs
//! what is lost, serves the S3 API and the console, and exports metrics.
//!
//! It is not where keys are derived or commitments defined (that is
//! `dbytes-ledger`) nor where bytes cross the network (`dbytes-mesh`).
//!
//! Main types: [`codec::SegmentLayout`] (segment and piece sizes of a
//! redundancy policy), [`codec::EncodedSegment`], [`codec::encode_segment`],
//! [`codec::decode_segment`], [`codec::RangePlan`] and [`codec::decode_range`].

pub mod codec;
pub mod pipeline;
pub mod s3;
