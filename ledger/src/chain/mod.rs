//! The chain side of the ledger: bindings to the dBytes contracts, their
//! deployment, and [`ChainClient`], a typed client for every operation of
//! the market.
//!
//! What it is for: providers register listings, post collateral, accept
//! deals and prove storage; consumers (gateways) open, commit, renew and
//! terminate deals; anyone settles and withdraws. Every call that can
//! revert is checked first, so a mistake reads as a sentence about the
//! input ([`ChainError::Refused`]); a revert the checks missed is decoded
//! from the contracts' custom errors ([`ChainError::Reverted`]).
//!
//! What it is not for: searching the market (that reads an index of events,
//! [`crate::market`]), or moving piece bytes (`dbytes-mesh`).
//!
//! Main types: [`ChainClient`], [`Deployment`] (the JSON file naming the
//! contracts), [`eip712`] (quotes, commitments, renewals to sign),
//! [`proof::DealProof`] (storage proofs from [`crate::commitment`] trees),
//! [`lookup::DealCache`] (deal terms for a provider's authorisation),
//! [`anvil::Anvil`] (a local chain from the pinned binary).

pub mod account;
pub mod anvil;
pub mod bindings;
mod client;
pub mod deal;
pub mod deploy;
pub mod deployment;
pub mod eip712;
mod error;
pub mod listing;
pub mod lookup;
pub mod proof;
pub mod revert;
pub mod types;
pub mod units;
pub mod wallet;

pub use client::{ChainClient, RetryPolicy};
pub use deployment::Deployment;
pub use error::ChainError;
pub use types::{
    AcceptPolicy, Commitment, CommitmentState, Deal, DealId, DealState, Listing, ListingStatus,
    ListingTerms, PeriodClock, Pool, Region,
};
pub use wallet::WalletSource;
