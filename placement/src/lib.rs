//! dbytes-placement: the pure decisions of dBytes.
//!
//! How much redundancy a segment gets ([`RedundancyPolicy`]: k data pieces,
//! n pieces in all, when to repair, when an upload counts as stored), how
//! durable that is and which policy is the cheapest for a target
//! ([`durability`]: a Markov model of piece losses and repairs, and the
//! planner), and which providers hold the pieces ([`selection`]: distinct
//! providers spread over regions and operators, scored by price, speed and
//! proof record, load spread by power-of-two choices).
//!
//! It is not for doing any of it: no I/O, no async runtime, no clock (callers
//! pass `now`), no other dbytes crate. That keeps every decision a function
//! of its inputs, so it can be property-tested and reused by the gateway and
//! the command line alike.

pub mod durability;
pub mod policy;
pub mod selection;

pub use durability::{Durability, DurabilityError, DurabilityTarget, FailureModel, Plan};
pub use policy::{PolicyError, RedundancyPolicy};
pub use selection::{Candidate, Constraints, Selection, SelectionError, select_providers};
