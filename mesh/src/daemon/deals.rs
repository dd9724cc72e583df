//! The deals loop: keeps the list of this provider's deals (which the proof
//! and claim loops work from), and answers proposals by the `[policy]`
//! rules, unless the operator decides (`decide = "operator"`), in which case
//! they wait for `dbytes provider deals accept|decline`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use dbytes_ledger::chain::{Deal, DealState};
use tracing::{info, warn};

use super::config::Decider;
use super::policy::{Verdict, judge};
use super::state::DealStatus;
use super::{Context, LoopResult};
use crate::deal::DealId;

/// Every deal proposed to or opened with `context`'s provider.
pub(crate) async fn provider_deals(context: &Context) -> Result<Vec<Deal>, String> {
    let client = &context.client;
    let ids = client
        .provider_deal_ids(context.me)
        .await
        .map_err(|err| err.to_string())?;
    // Closed deals never change again: only the others are read afresh.
    let closed: HashMap<_, Deal> = context
        .known()
        .into_iter()
        .filter(|deal| deal.state == DealState::Closed)
        .map(|deal| (deal.id, deal))
        .collect();
    let mut deals = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(deal) = closed.get(&id) {
            deals.push(deal.clone());
        } else if let Some(deal) = client.deal(id).await.map_err(|err| err.to_string())? {
            deals.push(deal);
        }
    }
    Ok(deals)
}

/// One run: refresh the deal list, answer open proposals.
pub(crate) async fn run(context: Arc<Context>) -> LoopResult {
    let mut deals = provider_deals(&context).await?;
    let current = context
        .client
        .current_period()
        .await
        .map_err(|err| err.to_string())?;
    let open_proposals: Vec<usize> = deals
        .iter()
        .enumerate()
        .filter(|(_, deal)| deal.state == DealState::Proposed && current < deal.settled_to)
        .map(|(index, _)| index)
        .collect();
    if !open_proposals.is_empty() && context.rules.decide == Decider::Rules {
        let period_secs = context.client.clock().period_secs;
        for index in open_proposals {
            let deal = &deals[index];
            // Read the listing afresh for each: an accepted deal uses capacity.
            let listing = context
                .client
                .listing(context.me)
                .await
                .map_err(|err| err.to_string())?
                .ok_or_else(|| "the provider has no listing yet".to_string())?;
            let periods = deal.end.saturating_sub(deal.settled_to);
            match judge(&context.rules, deal, periods, &listing, period_secs) {
                Verdict::Accept => {
                    context
                        .client
                        .accept_deal(deal.id)
                        .await
                        .map_err(|err| format!("accepting deal {} failed: {err}", deal.id))?;
                    context.deals.invalidate(DealId(deal.id));
                    info!(deal = %deal.id, consumer = %deal.consumer, "accepted a proposed deal");
                }
                Verdict::Decline(reason) => {
                    context
                        .client
                        .decline_deal(deal.id)
                        .await
                        .map_err(|err| format!("declining deal {} failed: {err}", deal.id))?;
                    warn!(deal = %deal.id, %reason, "declined a proposed deal");
                }
            }
            if let Some(updated) = context
                .client
                .deal(deal.id)
                .await
                .map_err(|err| err.to_string())?
            {
                deals[index] = updated;
            }
        }
    }
    publish(&context, deals);
    Ok(())
}

/// Shares the deal list with the other loops, the status file and metrics.
pub(crate) fn publish(context: &Context, deals: Vec<Deal>) {
    let mut by_state: BTreeMap<&'static str, i64> = BTreeMap::new();
    for state in [
        DealState::Proposed,
        DealState::Active,
        DealState::Terminating,
        DealState::Exiting,
        DealState::Failed,
        DealState::Closed,
    ] {
        by_state.insert(state.name(), 0);
    }
    for deal in &deals {
        *by_state.entry(deal.state.name()).or_default() += 1;
    }
    for (state, count) in by_state {
        context.metrics.deals.with_label_values(&[state]).set(count);
    }
    {
        let mut status = context.status();
        let previous: BTreeMap<String, (u64, u64)> = status
            .deals
            .iter()
            .map(|deal| (deal.deal.clone(), (deal.proven, deal.missed)))
            .collect();
        status.deals = deals
            .iter()
            .map(|deal| {
                let id = deal.id.to_string();
                let (proven, missed) = previous.get(&id).copied().unwrap_or_default();
                DealStatus {
                    deal: id,
                    state: deal.state.name().to_string(),
                    consumer: deal.consumer,
                    capacity_bytes: deal.capacity_bytes,
                    settled_to: deal.settled_to,
                    end: deal.end,
                    proven,
                    missed,
                }
            })
            .collect();
    }
    context.set_known(deals);
}
