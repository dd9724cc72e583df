//! Deals as a provider sees them, and who answers for them.
//!
//! A provider stores pieces only under a deal, and the deal decides who may
//! do what: the deal's consumer (identified by its iroh node id, which is on
//! the deal on chain) may put, read, delete and ask for commitment
//! signatures; repairers the consumer authorised may read. The chain is the
//! authority on deals; [`DealAuthority`] is the seam through which the
//! provider asks it, so the piece protocol does not depend on how the chain
//! is reached. [`StaticDeals`] is an in-memory authority for tests and for a
//! local mode without a chain.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock};

use alloy_primitives::{Address, U256};

/// The id of a deal: the marketplace contract's `uint256 dealId`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DealId(pub U256);

impl DealId {
    /// The id as 32 big-endian bytes (its ABI encoding).
    pub fn to_be_bytes(&self) -> [u8; 32] {
        self.0.to_be_bytes()
    }

    /// The id from 32 big-endian bytes.
    pub fn from_be_bytes(bytes: [u8; 32]) -> DealId {
        DealId(U256::from_be_bytes(bytes))
    }
}

impl From<u64> for DealId {
    fn from(id: u64) -> Self {
        DealId(U256::from(id))
    }
}

impl From<U256> for DealId {
    fn from(id: U256) -> Self {
        DealId(id)
    }
}

impl fmt::Display for DealId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for DealId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DealId({})", self.0)
    }
}

/// An iroh node id (an Ed25519 public key) as the 32 bytes stored on chain.
pub type NodeId = [u8; 32];

/// What a provider needs to know about a deal to serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DealTerms {
    /// The deal.
    pub deal: DealId,
    /// Whether the deal is running (accepted and not ended, failed or
    /// terminated). Only active deals take new pieces and commitments.
    pub active: bool,
    /// The consumer's wallet address.
    pub consumer: Address,
    /// The consumer's iroh node id: the only node that may put, delete and
    /// ask for commitment signatures.
    pub consumer_node: NodeId,
    /// The provider's wallet address.
    pub provider: Address,
    /// How many bytes of pieces the deal pays for.
    pub capacity_bytes: u64,
    /// Other nodes the consumer authorised to read the deal's pieces
    /// (repairers).
    pub readers: Vec<NodeId>,
}

impl DealTerms {
    /// Whether `node` may put and delete pieces and ask for commitment
    /// signatures under this deal.
    pub fn may_write(&self, node: &NodeId) -> bool {
        self.consumer_node == *node
    }

    /// Whether `node` may read pieces of this deal (get, range get, audit).
    ///
    /// Only the consumer and its repairers: a provider that could read the
    /// pieces of other providers could answer storage challenges for pieces
    /// it dropped by fetching the same ranges from the others.
    pub fn may_read(&self, node: &NodeId) -> bool {
        self.may_write(node) || self.readers.contains(node)
    }
}

/// Why a deal authority could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    /// The source of truth (usually the chain's RPC endpoint) did not
    /// answer; the request can be retried later.
    #[error("the deal authority is unavailable ({0}); retry later")]
    Unavailable(String),
}

/// Answers for deals: the provider asks it on every request.
///
/// The chain-backed implementation lives with the ledger's chain client;
/// it should cache (deal terms change rarely and every piece request asks)
/// and must not block the async executor.
pub trait DealAuthority: Send + Sync + 'static {
    /// The terms of `deal`, or `None` if no such deal exists.
    fn deal_terms(
        &self,
        deal: DealId,
    ) -> impl Future<Output = Result<Option<DealTerms>, AuthorityError>> + Send;
}

impl<T: DealAuthority> DealAuthority for Arc<T> {
    fn deal_terms(
        &self,
        deal: DealId,
    ) -> impl Future<Output = Result<Option<DealTerms>, AuthorityError>> + Send {
        self.as_ref().deal_terms(deal)
    }
}

/// A deal authority that answers from a table kept in memory.
///
/// For tests, and for a local mode where the provider's operator lists the
/// deals it serves by hand. It trusts whatever it is told: it is no
/// substitute for the chain when strangers pay for storage.
#[derive(Debug, Default)]
pub struct StaticDeals {
    deals: RwLock<HashMap<DealId, DealTerms>>,
}

impl StaticDeals {
    /// An authority that knows no deals.
    pub fn new() -> StaticDeals {
        StaticDeals::default()
    }

    /// Adds or replaces the terms of `terms.deal`.
    pub fn insert(&self, terms: DealTerms) {
        self.write().insert(terms.deal, terms);
    }

    /// Forgets `deal`; returns whether it was known.
    pub fn remove(&self, deal: DealId) -> bool {
        self.write().remove(&deal).is_some()
    }

    /// Marks `deal` active or not; returns whether it was known.
    pub fn set_active(&self, deal: DealId, active: bool) -> bool {
        match self.write().get_mut(&deal) {
            Some(terms) => {
                terms.active = active;
                true
            }
            None => false,
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<DealId, DealTerms>> {
        // A poisoned lock only means a writer panicked mid-insert of a plain
        // map entry; the map itself is still consistent.
        self.deals
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl DealAuthority for StaticDeals {
    async fn deal_terms(&self, deal: DealId) -> Result<Option<DealTerms>, AuthorityError> {
        let deals = self
            .deals
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(deals.get(&deal).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms() -> DealTerms {
        DealTerms {
            deal: DealId::from(7),
            active: true,
            consumer: Address::repeat_byte(1),
            consumer_node: [1; 32],
            provider: Address::repeat_byte(2),
            capacity_bytes: 1 << 20,
            readers: vec![[3; 32]],
        }
    }

    #[test]
    fn only_the_consumer_writes_and_only_it_and_its_repairers_read() {
        let terms = terms();
        assert!(terms.may_write(&[1; 32]));
        assert!(!terms.may_write(&[3; 32]));
        assert!(terms.may_read(&[1; 32]));
        assert!(terms.may_read(&[3; 32]));
        assert!(!terms.may_read(&[4; 32]));
    }

    #[test]
    fn deal_ids_are_big_endian_uint256() {
        let id = DealId::from(0x0102);
        let bytes = id.to_be_bytes();
        assert_eq!(&bytes[30..], &[1, 2]);
        assert!(bytes[..30].iter().all(|&b| b == 0));
        assert_eq!(DealId::from_be_bytes(bytes), id);
        assert_eq!(id.to_string(), "258");
    }

    #[tokio::test]
    async fn static_deals_answer_what_they_were_told() {
        let deals = StaticDeals::new();
        assert_eq!(deals.deal_terms(DealId::from(7)).await, Ok(None));
        deals.insert(terms());
        assert!(deals.set_active(DealId::from(7), false));
        let answer = deals.deal_terms(DealId::from(7)).await.unwrap().unwrap();
        assert!(!answer.active);
        assert!(deals.remove(DealId::from(7)));
        assert!(!deals.set_active(DealId::from(7), true));
    }
}
