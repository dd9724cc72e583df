//! The market's records as Rust values: listings, pools, deals,
//! commitments, and the period clock. Pure data, no I/O.

use std::fmt;
use std::str::FromStr;

use alloy::primitives::{Address, B256, Bytes, U256};
use serde::{Deserialize, Serialize};

/// A deal id: the marketplace's `uint256 dealId` (ids start at 1).
pub type DealId = U256;

/// Where a deal is in its life; states only move forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DealState {
    /// Unknown deal id.
    None,
    /// Escrow deposited, waiting for the provider.
    Proposed,
    /// Accepted: running, or waiting for its start period.
    Active,
    /// The consumer gave notice.
    Terminating,
    /// The provider gave notice.
    Exiting,
    /// Too many missed proofs or abandoned; may be reassigned.
    Failed,
    /// Settled, declined or cancelled.
    Closed,
}

impl DealState {
    /// The state of the contract's `DealState` value.
    pub fn from_u8(value: u8) -> Option<DealState> {
        Some(match value {
            0 => DealState::None,
            1 => DealState::Proposed,
            2 => DealState::Active,
            3 => DealState::Terminating,
            4 => DealState::Exiting,
            5 => DealState::Failed,
            6 => DealState::Closed,
            _ => return None,
        })
    }

    /// Whether the deal is accepted and not failed or closed (it may hold
    /// data and take commitments): Active, Terminating or Exiting.
    pub fn is_running(self) -> bool {
        matches!(
            self,
            DealState::Active | DealState::Terminating | DealState::Exiting
        )
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            DealState::None => "unknown",
            DealState::Proposed => "proposed",
            DealState::Active => "active",
            DealState::Terminating => "terminating",
            DealState::Exiting => "exiting",
            DealState::Failed => "failed",
            DealState::Closed => "closed",
        }
    }
}

impl fmt::Display for DealState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a listing exists and takes new deals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ListingStatus {
    /// No listing.
    None,
    /// Takes new deals.
    Active,
    /// Keeps its deals, takes no new ones.
    Paused,
}

impl ListingStatus {
    /// The status of the contract's `ListingStatus` value.
    pub fn from_u8(value: u8) -> Option<ListingStatus> {
        Some(match value {
            0 => ListingStatus::None,
            1 => ListingStatus::Active,
            2 => ListingStatus::Paused,
            _ => return None,
        })
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            ListingStatus::None => "absent",
            ListingStatus::Active => "active",
            ListingStatus::Paused => "paused",
        }
    }
}

/// How a provider takes deals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AcceptPolicy {
    /// Anyone may open a deal at the listed terms in one transaction.
    Auto,
    /// The provider accepts or declines each proposal.
    Manual,
    /// Deals open from the provider's signed quotes (or proposals).
    SignedQuote,
}

impl AcceptPolicy {
    /// The policy of the contract's `AcceptPolicy` value.
    pub fn from_u8(value: u8) -> Option<AcceptPolicy> {
        Some(match value {
            0 => AcceptPolicy::Auto,
            1 => AcceptPolicy::Manual,
            2 => AcceptPolicy::SignedQuote,
            _ => return None,
        })
    }

    /// The contract's value.
    pub fn to_u8(self) -> u8 {
        self as u8
    }

    /// Lower-case name, as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            AcceptPolicy::Auto => "auto",
            AcceptPolicy::Manual => "manual",
            AcceptPolicy::SignedQuote => "quote",
        }
    }
}

impl FromStr for AcceptPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Ok(AcceptPolicy::Auto),
            "manual" => Ok(AcceptPolicy::Manual),
            "quote" | "signed-quote" => Ok(AcceptPolicy::SignedQuote),
            _ => Err(format!(
                "{text:?} is not an accept policy; use auto, manual or quote"
            )),
        }
    }
}

/// How a policy value reads in a sentence ("automatically", ...).
pub(crate) fn policy_name(value: u8) -> &'static str {
    match AcceptPolicy::from_u8(value) {
        Some(AcceptPolicy::Auto) => "automatically",
        Some(AcceptPolicy::Manual) => "by hand (propose, then the provider accepts)",
        Some(AcceptPolicy::SignedQuote) => "from signed quotes only",
        None => "in an unknown way",
    }
}

/// A region code: up to 8 ASCII bytes, left-aligned, zero-padded ("DE", "EU-W").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Region(pub [u8; 8]);

impl Region {
    /// No region.
    pub const NONE: Region = Region([0; 8]);

    /// Whether no region is set.
    pub fn is_none(&self) -> bool {
        self.0 == [0; 8]
    }
}

impl FromStr for Region {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.len() > 8 || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "{text:?} is not a region code: use up to 8 ASCII letters, digits or dashes, \
                 such as DE or EU-W"
            ));
        }
        let mut bytes = [0u8; 8];
        bytes[..text.len()].copy_from_slice(text.to_ascii_uppercase().as_bytes());
        Ok(Region(bytes))
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            return f.write_str("-");
        }
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(8);
        f.write_str(&String::from_utf8_lossy(&self.0[..end]))
    }
}

/// What a provider publishes (the registry's `ListingTerms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingTerms {
    /// The provider's iroh node id (Ed25519 public key), nonzero.
    pub node_id: B256,
    /// How to reach the node (opaque to the contract), at most 512 bytes.
    pub address_hints: Bytes,
    /// Total bytes offered across all deals.
    pub capacity_bytes: u64,
    /// Asking price in token base units per GiB per 30-day month (fits 96 bits).
    pub price_per_gib_month: u128,
    /// Shortest deal, in periods.
    pub min_periods: u32,
    /// Longest deal, in periods.
    pub max_periods: u32,
    /// Collateral per deal as a multiple of its total price, in basis points (>= 20000).
    pub collateral_bps: u32,
    /// Collateral floor per GiB of capacity, base units (fits 96 bits).
    pub collateral_per_gib: u128,
    /// Region code.
    pub region: Region,
    /// How deals are accepted.
    pub policy: AcceptPolicy,
    /// Key that signs quotes, commitments and renewals besides the provider; `None` for itself.
    pub quote_signer: Option<Address>,
}

/// A provider's listing as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The provider's address.
    pub provider: Address,
    /// Active or paused.
    pub status: ListingStatus,
    /// The published terms (the quote signer is the provider itself when it set none).
    pub terms: ListingTerms,
    /// Bytes reserved by live deals.
    pub used_bytes: u64,
    /// Deals accepted and not ended.
    pub live_deals: u32,
}

impl Listing {
    /// Bytes still free for new deals.
    pub fn free_bytes(&self) -> u64 {
        self.terms.capacity_bytes.saturating_sub(self.used_bytes)
    }
}

/// A provider's collateral pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Pool {
    /// Tokens deposited.
    pub deposited: u128,
    /// Of which locked by live deals.
    pub locked: u128,
}

impl Pool {
    /// Collateral that can back a new deal or be withdrawn.
    pub fn unlocked(&self) -> u128 {
        self.deposited.saturating_sub(self.locked)
    }
}

/// A deal record as the marketplace holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deal {
    /// The deal.
    pub id: DealId,
    /// Who stores.
    pub provider: Address,
    /// Who pays.
    pub consumer: Address,
    /// Pay per period, base units.
    pub rate_per_period: u128,
    /// First period after the deal (exclusive end).
    pub end: u64,
    /// First period not yet settled (the start period until the first settlement).
    pub settled_to: u64,
    /// Lifecycle state.
    pub state: DealState,
    /// Consecutive missed periods.
    pub missed_run: u8,
    /// Missed periods over the deal's life.
    pub missed_total: u8,
    /// Collateral posted, including renewals.
    pub collateral: u128,
    /// Bytes reserved.
    pub capacity_bytes: u64,
    /// Repair deals: unproven periods before it are not slashed.
    pub fill_by: u64,
    /// Pay withheld until the deal ends.
    pub held_back: u128,
    /// Collateral taken so far.
    pub slashed: u128,
    /// The consumer's iroh node id.
    pub consumer_node_id: B256,
    /// Reward earmarked for the provider that repairs the deal.
    pub repair_reward: u128,
    /// How far a successor of a failed or exiting deal may run (0 if none).
    pub term_end: u64,
}

impl Deal {
    /// Escrow the deal still holds: `rate × (end − settled_to)`.
    pub fn escrow(&self) -> U256 {
        U256::from(self.rate_per_period) * U256::from(self.end.saturating_sub(self.settled_to))
    }

    /// Whether the provider must hold the data in `period`: the deal is
    /// running and `period` is before its end.
    pub fn is_live_in(&self, period: u64) -> bool {
        self.state.is_running() && period < self.end
    }
}

/// A commitment `(root, leaf_count, version)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    /// Root of the deal tree.
    pub root: B256,
    /// Leaves (256 bytes each) the tree commits.
    pub leaf_count: u64,
    /// Strictly increasing per deal.
    pub version: u32,
}

/// A deal's commitments: the one in effect and the one replacing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommitmentState {
    /// In effect from `committed_from` (or about to be, for the first one).
    pub current: Option<Commitment>,
    /// First period under any commitment.
    pub committed_from: u64,
    /// Pending, in effect from `next_from`.
    pub next: Option<(Commitment, u64)>,
}

impl CommitmentState {
    /// The most recent commitment, pending or in effect.
    pub fn latest(&self) -> Option<Commitment> {
        self.next.map(|(c, _)| c).or(self.current)
    }

    /// The commitment in effect in `period` (as the contract's `commitmentAt`).
    pub fn at(&self, period: u64) -> Option<Commitment> {
        match self.next {
            Some((next, from)) if period >= from => Some(next),
            _ if period >= self.committed_from => self.current,
            _ => None,
        }
    }
}

/// The period clock the deployment runs on (`PeriodClock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodClock {
    /// Period length in seconds.
    pub period_secs: u64,
    /// Unix time period 0 starts.
    pub genesis: u64,
    /// Seconds after a period during which its proofs are accepted.
    pub proof_grace_secs: u64,
}

impl PeriodClock {
    /// The period unix time `now` falls in.
    pub fn period_at(&self, now: u64) -> u64 {
        now.saturating_sub(self.genesis) / self.period_secs.max(1)
    }

    /// Unix time `period` starts.
    pub fn period_start(&self, period: u64) -> u64 {
        self.genesis + period * self.period_secs
    }

    /// Unix time from which proofs for `period` are refused.
    pub fn proof_deadline(&self, period: u64) -> u64 {
        self.genesis + (period + 1) * self.period_secs + self.proof_grace_secs
    }

    /// The oldest period still open to proofs at `now`.
    pub fn first_open_period(&self, now: u64) -> u64 {
        let elapsed = now.saturating_sub(self.genesis);
        if elapsed < self.proof_grace_secs {
            0
        } else {
            (elapsed - self.proof_grace_secs) / self.period_secs.max(1)
        }
    }
}

/// Period numbers and counts from events and views, whatever integer width
/// the contract gives them, as `u64` (saturating: periods never get near it).
pub(crate) trait ToU64 {
    fn to_u64(self) -> u64;
}

impl ToU64 for u32 {
    fn to_u64(self) -> u64 {
        self.into()
    }
}

impl ToU64 for u64 {
    fn to_u64(self) -> u64 {
        self
    }
}

impl ToU64 for U256 {
    fn to_u64(self) -> u64 {
        self.saturating_to()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_round_trip() {
        let region: Region = "eu-w".parse().unwrap();
        assert_eq!(region.to_string(), "EU-W");
        assert_eq!(&region.0[..5], b"EU-W\0");
        assert!("way-too-long".parse::<Region>().is_err());
        assert_eq!(Region::NONE.to_string(), "-");
    }

    #[test]
    fn clock_matches_the_contract() {
        let clock = PeriodClock {
            period_secs: 60,
            genesis: 1000,
            proof_grace_secs: 10,
        };
        assert_eq!(clock.period_at(1000), 0);
        assert_eq!(clock.period_at(1059), 0);
        assert_eq!(clock.period_at(1060), 1);
        assert_eq!(clock.proof_deadline(0), 1070);
        assert_eq!(clock.first_open_period(1069), 0);
        assert_eq!(clock.first_open_period(1070), 1);
    }

    #[test]
    fn commitment_in_effect() {
        let c1 = Commitment {
            root: B256::repeat_byte(1),
            leaf_count: 4,
            version: 1,
        };
        let c2 = Commitment {
            root: B256::repeat_byte(2),
            leaf_count: 8,
            version: 2,
        };
        let state = CommitmentState {
            current: Some(c1),
            committed_from: 5,
            next: Some((c2, 7)),
        };
        assert_eq!(state.at(4), None);
        assert_eq!(state.at(5), Some(c1));
        assert_eq!(state.at(7), Some(c2));
        assert_eq!(state.latest(), Some(c2));
    }
}
