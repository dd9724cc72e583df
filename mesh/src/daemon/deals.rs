//! The deals loop: keeps the list of this provider's deals (which the proof
//! and claim loops work from), sends the operator's queued decisions
//! ([`super::decisions`]) and answers the other proposals by the `[policy]`
//! rules, unless the operator decides (`decide = "operator"`), in which case
//! they wait for `dbytes provider deals accept|decline`.
//!
//! The deals come from the marketplace's `DealCreated` events, read forward
//! from where the last run stopped in ranges of [`SCAN_RANGE_BLOCKS`], the
//! position saved after each range ([`DealScan`]), so neither a run nor a
//! restart reads the chain's history again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use alloy_primitives::U256;
use dbytes_ledger::chain::{ChainError, Deal, DealState};
use tokio::task::spawn_blocking;
use tracing::{info, warn};

use super::config::Decider;
use super::decisions::{Decision, DecisionOutcome};
use super::policy::{Verdict, judge};
use super::state::{DealScan, DealStatus};
use super::{Context, LoopResult, unix_now};
use crate::deal::DealId;

/// Blocks of deal events asked for at once.
pub const SCAN_RANGE_BLOCKS: u64 = 10_000;

/// Ranges read per run at most (a provider new to a long chain catches up
/// over several runs, keeping each bounded).
const SCAN_RANGES_PER_RUN: u32 = 50;

/// Reads the deal events since the last scan up to the chain's head (at
/// most [`SCAN_RANGES_PER_RUN`] ranges), saving the position after each
/// range; returns every deal id found so far.
async fn scan_deal_ids(context: &Context) -> Result<Vec<U256>, String> {
    let (head, _) = context.client.head().await.map_err(|err| err.to_string())?;
    let mut scan = context.scan();
    for _ in 0..SCAN_RANGES_PER_RUN {
        if scan.next_block > head {
            break;
        }
        let from = scan.next_block;
        let to = head.min(from.saturating_add(SCAN_RANGE_BLOCKS - 1));
        let found = context
            .client
            .provider_deal_ids_in(context.me, from, to)
            .await
            .map_err(|err| format!("reading deal events of blocks {from}..={to} failed: {err}"))?;
        scan.advance(to, found);
        save_scan(context, &scan).await?;
        context.metrics.deal_scan_blocks.inc_by(to - from + 1);
        context
            .metrics
            .deal_scan_next_block
            .set(i64::try_from(scan.next_block).unwrap_or(i64::MAX));
        context.status().deals_scanned_to_block = to;
    }
    Ok(scan.deal_ids)
}

async fn save_scan(context: &Context, scan: &DealScan) -> Result<(), String> {
    let saved = scan.clone();
    let dir = context.data_dir.clone();
    spawn_blocking(move || saved.save(&dir))
        .await
        .map_err(|err| format!("saving the deal scan failed: {err}"))?
        .map_err(|err| err.to_string())?;
    context.set_scan(scan.clone());
    Ok(())
}

/// Every deal proposed to or opened with `context`'s provider.
pub(crate) async fn provider_deals(context: &Context) -> Result<Vec<Deal>, String> {
    let ids = scan_deal_ids(context).await?;
    let client = &context.client;
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

/// Whether `deal` is a proposal that can still be answered in `current`.
fn is_open_proposal(deal: &Deal, current: u64) -> bool {
    deal.state == DealState::Proposed && current < deal.settled_to
}

/// Accepts or declines proposal `deal` with the daemon's wallet, counted
/// under `decided_by`.
async fn answer(
    context: &Context,
    deal: U256,
    accept: bool,
    decided_by: &'static str,
) -> Result<(), ChainError> {
    if accept {
        context.client.accept_deal(deal).await?;
        context.deals.invalidate(DealId(deal));
    } else {
        context.client.decline_deal(deal).await?;
    }
    context
        .metrics
        .deal_decisions
        .with_label_values(&[decided_by, if accept { "accept" } else { "decline" }])
        .inc();
    Ok(())
}

/// Reads `deal` afresh into `deals`.
async fn refresh(context: &Context, deals: &mut Vec<Deal>, deal: U256) -> Result<(), String> {
    let Some(updated) = context
        .client
        .deal(deal)
        .await
        .map_err(|err| err.to_string())?
    else {
        return Ok(());
    };
    match deals.iter_mut().find(|known| known.id == deal) {
        Some(known) => *known = updated,
        None => deals.push(updated),
    }
    Ok(())
}

/// Sends the operator's queued decisions, one at a time with the daemon's
/// other transactions, and records each outcome for the waiting command.
/// A decision that failed for a reason that may pass (the node unreachable,
/// a receipt late) stays queued and the run fails, to be retried.
async fn send_decisions(
    context: &Context,
    deals: &mut Vec<Deal>,
    current: u64,
) -> Result<(), String> {
    let queue = context.decisions.clone();
    let pending = spawn_blocking(move || queue.pending())
        .await
        .map_err(|err| format!("reading the decision queue failed: {err}"))?
        .map_err(|err| err.to_string())?;
    for decision in pending {
        let id = decision.deal;
        let deal = match deals.iter().find(|deal| deal.id == id) {
            Some(deal) => Some(deal.clone()),
            None => context
                .client
                .deal(id)
                .await
                .map_err(|err| err.to_string())?,
        };
        let (sent, message) = match deal {
            None => (false, format!("there is no deal {id}; nothing was sent")),
            Some(deal) if deal.provider != context.me => (
                false,
                format!(
                    "deal {id} is with provider {}, not this one; nothing was sent",
                    deal.provider
                ),
            ),
            Some(deal) if !is_open_proposal(&deal, current) => (
                false,
                format!(
                    "deal {id} is {}, not an open proposal; nothing was sent",
                    if deal.state == DealState::Proposed {
                        "an expired proposal"
                    } else {
                        deal.state.name()
                    }
                ),
            ),
            Some(_) => match answer(context, id, decision.accept, "operator").await {
                Ok(()) => {
                    info!(deal = %id, accept = decision.accept, "sent the operator's decision");
                    let message = if decision.accept {
                        format!("accepted deal {id}")
                    } else {
                        format!("declined deal {id}; its escrow went back to the consumer")
                    };
                    (true, message)
                }
                Err(
                    err @ (ChainError::Unreachable { .. }
                    | ChainError::Rpc { .. }
                    | ChainError::ReceiptTimeout { .. }),
                ) => {
                    return Err(format!(
                        "sending the operator's decision on deal {id} failed (it stays queued): {err}"
                    ));
                }
                Err(err) => (
                    false,
                    format!("{} deal {id} failed: {err}", verb(&decision)),
                ),
            },
        };
        if !sent {
            warn!(deal = %id, %message, "the operator's decision was not sent");
        }
        let outcome = DecisionOutcome {
            decision,
            sent,
            message,
            decided_at: unix_now(),
        };
        let queue = context.decisions.clone();
        spawn_blocking(move || queue.finish(&outcome))
            .await
            .map_err(|err| format!("recording a decision failed: {err}"))?
            .map_err(|err| err.to_string())?;
        refresh(context, deals, id).await?;
    }
    Ok(())
}

fn verb(decision: &Decision) -> &'static str {
    if decision.accept {
        "accepting"
    } else {
        "declining"
    }
}

/// One run: read new deal events, refresh the deal list, send the
/// operator's decisions, answer the other open proposals by the rules.
pub(crate) async fn run(context: Arc<Context>) -> LoopResult {
    let mut deals = provider_deals(&context).await?;
    let current = context
        .client
        .current_period()
        .await
        .map_err(|err| err.to_string())?;
    send_decisions(&context, &mut deals, current).await?;
    let open_proposals: Vec<U256> = deals
        .iter()
        .filter(|deal| is_open_proposal(deal, current))
        .map(|deal| deal.id)
        .collect();
    if !open_proposals.is_empty() && context.rules.decide == Decider::Rules {
        let period_secs = context.client.clock().period_secs;
        for id in open_proposals {
            let Some(deal) = deals.iter().find(|deal| deal.id == id).cloned() else {
                continue;
            };
            // Read the listing afresh for each: an accepted deal uses capacity.
            let listing = context
                .client
                .listing(context.me)
                .await
                .map_err(|err| err.to_string())?
                .ok_or_else(|| "the provider has no listing yet".to_string())?;
            let periods = deal.end.saturating_sub(deal.settled_to);
            match judge(&context.rules, &deal, periods, &listing, period_secs) {
                Verdict::Accept => {
                    answer(&context, id, true, "rules")
                        .await
                        .map_err(|err| format!("accepting deal {id} failed: {err}"))?;
                    info!(deal = %id, consumer = %deal.consumer, "accepted a proposed deal");
                }
                Verdict::Decline(reason) => {
                    answer(&context, id, false, "rules")
                        .await
                        .map_err(|err| format!("declining deal {id} failed: {err}"))?;
                    warn!(deal = %id, %reason, "declined a proposed deal");
                }
            }
            refresh(&context, &mut deals, id).await?;
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
