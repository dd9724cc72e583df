//! Opening deals by itself when placement finds too little room.
//!
//! Only with a market index and a [`super::DealBudget`]: the index is
//! brought up to the chain's head, searched for listings that accept deals
//! automatically at or below the maximum price, with room for a deal of the
//! configured size and length, cheapest first; providers the user already
//! has a live deal with are skipped, and so are providers that let the
//! user down before (a deal of theirs failed on chain or was slashed).
//! Each deal is priced before it is opened, and none is opened that would
//! take the escrow of the user's running deals past the budget.

use std::collections::BTreeSet;

use alloy_primitives::U256;
use dbytes_ledger::chain::AcceptPolicy;
use dbytes_ledger::chain::deal::DealRequest;
use dbytes_ledger::chain::deploy::LOCAL_CHAIN_IDS;
use dbytes_ledger::commitment::LEAF_SIZE;
use dbytes_ledger::market::{FollowConfig, Follower, ListingQuery};

use super::directory::slot_leaves;
use super::{MeshPieceStore, MeshStoreError, lock};

/// What [`MeshPieceStore::open_deals`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct OpenedDeals {
    /// Deals opened.
    pub opened: usize,
    /// It stopped because the next deal would have gone past the budget.
    pub budget_spent: bool,
}

impl OpenedDeals {
    /// What to add to an error about too few providers: "; opened 2 new
    /// deal(s); the deal budget is spent", or nothing.
    pub fn note(&self) -> String {
        let mut note = String::new();
        if self.opened > 0 {
            note.push_str(&format!("; opened {} new deal(s)", self.opened));
        }
        if self.budget_spent {
            note.push_str("; the deal budget ([deals] budget) is spent: raise it to open more");
        }
        note
    }
}

impl MeshPieceStore {
    /// Opens up to `wanted` new deals with room for pieces of `piece_len`
    /// bytes (none without a market index or a budget).
    pub(super) async fn open_deals(
        &self,
        wanted: usize,
        piece_len: u64,
    ) -> Result<OpenedDeals, MeshStoreError> {
        let inner = &self.inner;
        let mut outcome = OpenedDeals::default();
        let (Some(market), Some(budget)) = (&inner.market, &inner.budget) else {
            return Ok(outcome);
        };
        let _one = inner.opening.lock().await;
        let follow = FollowConfig {
            confirmations: if LOCAL_CHAIN_IDS.contains(&inner.chain.deployment().chain_id) {
                0
            } else {
                5
            },
            ..FollowConfig::default()
        };
        Follower::new(inner.chain.clone(), market.clone(), follow)
            .sync()
            .await?;
        // Another segment may have opened deals while this one waited.
        self.refresh_deals().await?;
        let (have, shunned, mut spent) = {
            let directory = lock(&inner.directory);
            let have: BTreeSet<_> = directory.live_providers().collect();
            let shunned: BTreeSet<_> = directory
                .deals()
                .filter(|entry| entry.let_down)
                .map(|entry| entry.provider)
                .collect();
            let spent = directory
                .deals()
                .filter(|entry| entry.live)
                .fold(U256::ZERO, |sum, entry| sum.saturating_add(entry.escrow));
            (have, shunned, spent)
        };
        let capacity_bytes = budget
            .deal_capacity_bytes
            .max(slot_leaves(piece_len) * LEAF_SIZE as u64);
        let query = ListingQuery {
            min_free_bytes: Some(capacity_bytes),
            max_price_per_gib_month: Some(budget.max_price_per_gib_month),
            periods: Some(budget.deal_periods),
            policy: Some(AcceptPolicy::Auto),
            ..ListingQuery::default()
        };
        let index = market.clone();
        let found = tokio::task::spawn_blocking(move || index.search(&query))
            .await
            .map_err(|err| MeshStoreError::Task(err.to_string()))??;
        for record in found {
            if outcome.opened >= wanted {
                break;
            }
            if have.contains(&record.provider) || record.provider == inner.consumer {
                continue;
            }
            if shunned.contains(&record.provider) {
                tracing::debug!(provider = %record.provider, "skipping a provider that let a deal fail");
                continue;
            }
            let request = DealRequest {
                provider: record.provider,
                capacity_bytes,
                periods: budget.deal_periods,
                price_per_gib_month: None,
                consumer_node_id: inner.node_id,
            };
            let cost = match inner.chain.price_deal(&request).await {
                Ok((_, cost)) => cost,
                Err(err) => {
                    tracing::info!(provider = %record.provider, %err, "skipping a listing");
                    continue;
                }
            };
            if spent.saturating_add(cost.escrow) > budget.budget {
                tracing::warn!(
                    spent = %spent, escrow = %cost.escrow, budget = %budget.budget,
                    "the deal budget is spent; no more deals are opened"
                );
                outcome.budget_spent = true;
                break;
            }
            match inner.chain.open_deal(&request).await {
                Ok(deal) => {
                    outcome.opened += 1;
                    spent = spent.saturating_add(cost.escrow);
                    inner.metrics.deals_opened.inc();
                    tracing::info!(%deal, provider = %record.provider, escrow = %cost.escrow, "opened a deal");
                }
                Err(err) => {
                    tracing::warn!(provider = %record.provider, %err, "opening a deal failed");
                }
            }
        }
        Ok(outcome)
    }
}
