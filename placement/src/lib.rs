//! dbytes-placement: the pure decisions of dBytes.
//!
//! How much redundancy a segment gets ([`RedundancyPolicy`]: k data pieces,
//! n pieces in all, when to repair, when an upload counts as stored), and as
//! the market grows, which providers hold which pieces, how durable a policy
//! is and what to repair first.
//!
//! It is not for doing any of it: no I/O, no async runtime, no clock (callers
//! pass `now`), no other dbytes crate. That keeps every decision a function
//! of its inputs, so it can be property-tested and reused by the gateway and
//! the command line alike.

pub mod policy;

pub use policy::{PolicyError, RedundancyPolicy};
