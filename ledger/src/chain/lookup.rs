//! What the other rooms ask of the chain about deals.
//!
//! - A provider daemon authorises every piece request by its deal:
//!   [`ChainClient::deal_info`] answers whether the deal is active, who its
//!   consumer is (address and iroh node id), its capacity, commitments and
//!   period; [`DealCache`] keeps answers for a while, since every request
//!   asks and deals change rarely.
//! - A gateway places pieces on its running deals:
//!   [`ChainClient::consumer_deals`] lists them with each provider's node id
//!   and address hints, from the chain alone (no index needed).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, Bytes};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use serde::{Deserialize, Serialize};

use super::bindings::market::Marketplace as M;
use super::client::ChainClient;
use super::error::ChainError;
use super::types::{
    CommitmentState, Deal, DealId, DealState, ListingStatus, PeriodClock, Region, ToU64,
};

/// A deal as a provider needs it to serve requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealInfo {
    /// The deal record.
    pub deal: Deal,
    /// Whether the provider must serve it now: running and before its end.
    pub active: bool,
    /// Its commitments (in effect and pending).
    pub commitments: CommitmentState,
    /// The period the chain is in.
    pub current_period: u64,
    /// The deployment's period clock.
    pub clock: PeriodClock,
}

impl DealInfo {
    /// The consumer's iroh node id: the only node that may write and read.
    pub fn consumer_node_id(&self) -> [u8; 32] {
        self.deal.consumer_node_id.0
    }
}

/// One of a consumer's deals, with how to reach its provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerDeal {
    /// The deal record.
    pub deal: Deal,
    /// The period the deal started (from its `DealCreated` event).
    pub start: u64,
    /// The provider's iroh node id (zero if it has left the registry).
    pub provider_node_id: B256,
    /// The provider's address hints.
    pub address_hints: Bytes,
    /// The provider's region.
    pub region: Region,
    /// Whether the provider's listing is active, paused or gone.
    pub listing_status: ListingStatus,
}

impl ChainClient {
    /// Deal `id` as a provider needs it to authorise a request, or `None`
    /// if there is no such deal.
    pub async fn deal_info(&self, id: DealId) -> Result<Option<DealInfo>, ChainError> {
        let Some(deal) = self.deal(id).await? else {
            return Ok(None);
        };
        let commitments = self.commitments(id).await?;
        let current_period = self.current_period().await?;
        Ok(Some(DealInfo {
            active: deal.is_live_in(current_period),
            deal,
            commitments,
            current_period,
            clock: self.clock(),
        }))
    }

    /// Every deal `consumer` has opened or proposed (closed ones left out),
    /// with its provider's node id and address hints, read from the
    /// marketplace's `DealCreated` events and the current records.
    pub async fn consumer_deals(&self, consumer: Address) -> Result<Vec<ConsumerDeal>, ChainError> {
        let filter = Filter::new()
            .address(self.deployment.contracts.marketplace)
            .event_signature(M::DealCreated::SIGNATURE_HASH)
            .topic2(consumer.into_word());
        let (head, _) = self.head().await?;
        let logs = self
            .rpc
            .logs(&filter, self.deployment.deploy_block, head)
            .await?;
        let mut listings = HashMap::new();
        let mut deals = Vec::new();
        for log in logs {
            let Ok(created) = M::DealCreated::decode_log(&log.inner) else {
                continue;
            };
            let Some(deal) = self.deal(created.dealId).await? else {
                continue;
            };
            if deal.state == DealState::Closed {
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(entry) = listings.entry(deal.provider)
            {
                entry.insert(self.listing(deal.provider).await?);
            }
            let listing = listings.get(&deal.provider).cloned().flatten();
            deals.push(ConsumerDeal {
                start: created.start.to_u64(),
                provider_node_id: listing.as_ref().map_or(B256::ZERO, |l| l.terms.node_id),
                address_hints: listing
                    .as_ref()
                    .map(|l| l.terms.address_hints.clone())
                    .unwrap_or_default(),
                region: listing.as_ref().map_or(Region::NONE, |l| l.terms.region),
                listing_status: listing.map_or(ListingStatus::None, |l| l.status),
                deal,
            });
        }
        Ok(deals)
    }

    /// Every deal id ever proposed to or opened with `provider`, oldest first.
    pub async fn provider_deal_ids(&self, provider: Address) -> Result<Vec<DealId>, ChainError> {
        let (head, _) = self.head().await?;
        self.provider_deal_ids_in(provider, self.deployment.deploy_block, head)
            .await
    }

    /// The deal ids proposed to or opened with `provider` in blocks
    /// `from_block..=to_block`, oldest first: a daemon that remembers how
    /// far it read asks only about the blocks since.
    pub async fn provider_deal_ids_in(
        &self,
        provider: Address,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<DealId>, ChainError> {
        let filter = Filter::new()
            .address(self.deployment.contracts.marketplace)
            .event_signature(M::DealCreated::SIGNATURE_HASH)
            .topic3(provider.into_word());
        let logs = self.rpc.logs(&filter, from_block, to_block).await?;
        Ok(logs
            .iter()
            .filter_map(|log| M::DealCreated::decode_log(&log.inner).ok())
            .map(|created| created.dealId)
            .collect())
    }
}

/// Deal answers kept for `ttl`, for a provider that authorises every piece
/// request by its deal. Errors are not cached; a failed lookup is asked
/// again next time.
#[derive(Debug)]
pub struct DealCache {
    client: ChainClient,
    ttl: Duration,
    entries: Mutex<HashMap<DealId, (Instant, Option<DealInfo>)>>,
}

impl DealCache {
    /// A cache in front of `client`; `ttl` bounds how stale an answer may be
    /// (a few seconds: deals end at period boundaries, hours apart in production).
    pub fn new(client: ChainClient, ttl: Duration) -> DealCache {
        DealCache {
            client,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Deal `id` from the cache, or from the chain if older than the ttl.
    pub async fn get(&self, id: DealId) -> Result<Option<DealInfo>, ChainError> {
        if let Some((at, info)) = self.lock().get(&id)
            && at.elapsed() < self.ttl
        {
            return Ok(info.clone());
        }
        let info = self.client.deal_info(id).await?;
        self.lock().insert(id, (Instant::now(), info.clone()));
        Ok(info)
    }

    /// Forgets deal `id` (after a change this process made to it).
    pub fn invalidate(&self, id: DealId) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DealId, (Instant, Option<DealInfo>)>> {
        // A poisoned cache holds nothing worse than stale answers.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
