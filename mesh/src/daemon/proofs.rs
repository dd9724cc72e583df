//! The proofs loop: every deal period under a commitment gets its storage
//! proof on chain, as early in the period as the seed allows.
//!
//! For each period still open to proofs (the current one, and the previous
//! one during its grace), the deals with a commitment in effect and no
//! proof yet are due. The period's seed comes from a block anchored once the
//! period started; if nobody anchored it (or the anchor expired), the
//! daemon anchors it and waits for the anchor block. Then it builds every
//! due deal's proof from the piece store ([`super::prove`]) and submits
//! them in one transaction. Closed periods are checked once for a proof,
//! and those without one are counted as missed.

use std::sync::Arc;

use alloy_primitives::U256;
use dbytes_ledger::chain::proof::{DealProof, challenge_indexes};
use dbytes_ledger::chain::{ChainClient, ChainError, Commitment};
use tokio::task::spawn_blocking;
use tracing::{debug, error, info, warn};

use super::prove::prove_deal;
use super::{Context, LoopResult};
use crate::deal::DealId;

/// Periods of one deal checked for misses per run, at most.
const MISS_CHECKS_PER_RUN: u64 = 64;

/// One run: prove what is due, count what was missed.
pub(crate) async fn run(context: Arc<Context>) -> LoopResult {
    let client = &context.client;
    let (head, now) = client.head().await.map_err(|err| err.to_string())?;
    let clock = client.clock();
    let current = clock.period_at(now);
    let first_open = clock.first_open_period(now);
    for period in first_open..=current {
        prove_period(&context, period, head).await?;
    }
    account_misses(&context, first_open).await
}

async fn prove_period(context: &Context, period: u64, head: u64) -> LoopResult {
    let client = &context.client;
    let mut due: Vec<(U256, Commitment)> = Vec::new();
    for deal in context.known() {
        if !deal.is_live_in(period)
            || period < deal.settled_to
            || context.is_known_proven(deal.id, period)
        {
            continue;
        }
        let commitments = client
            .commitments(deal.id)
            .await
            .map_err(|err| err.to_string())?;
        let Some(commitment) = commitments.at(period) else {
            continue;
        };
        if client
            .is_proven(deal.id, period)
            .await
            .map_err(|err| err.to_string())?
        {
            context.mark_proven(deal.id, period);
            continue;
        }
        due.push((deal.id, commitment));
    }
    if due.is_empty() {
        return Ok(());
    }
    let Some(seed) = client.seed(period).await.map_err(|err| err.to_string())? else {
        return ensure_anchor(client, period, head).await;
    };
    let mut batch: Vec<DealProof> = Vec::with_capacity(due.len());
    for (id, commitment) in due {
        let deal = DealId(id);
        // A deal that cannot be proven (a piece rotted, a commitment this
        // node never signed) must not hold back the others' proofs.
        let signed = match context.book.get(deal, commitment.version) {
            Ok(Some(signed))
                if signed.root == commitment.root && signed.leaf_count == commitment.leaf_count =>
            {
                signed
            }
            Ok(_) => {
                error!(%deal, version = commitment.version, period,
                    "this node never signed the commitment in effect; it cannot prove the deal");
                continue;
            }
            Err(err) => {
                error!(%deal, error = %err, "the signed commitment is unreadable");
                continue;
            }
        };
        let indexes = challenge_indexes(seed, id, client.challenges(), commitment.leaf_count);
        let store = context.store.clone();
        match spawn_blocking(move || prove_deal(&store, deal, &signed, &indexes)).await {
            Ok(Ok(proof)) => batch.push(proof),
            Ok(Err(err)) => error!(%deal, period, error = %err, "cannot prove a deal"),
            Err(err) => error!(%deal, period, error = %err, "building a proof failed"),
        }
    }
    if batch.is_empty() {
        return Ok(());
    }
    let accepted = match client.submit_proofs(period, &batch).await {
        Ok(accepted) => accepted,
        // One deal the chain will not take (its commitment changed since it
        // was read, say) must not sink the others' proofs: send them apart.
        Err(err @ (ChainError::Refused(_) | ChainError::Reverted { .. })) if batch.len() > 1 => {
            warn!(period, error = %err, "the batch of proofs was refused; sending them one by one");
            let mut accepted = 0;
            let mut kept = Vec::with_capacity(batch.len());
            for proof in batch {
                match client
                    .submit_proofs(period, std::slice::from_ref(&proof))
                    .await
                {
                    Ok(count) => {
                        accepted += count;
                        kept.push(proof);
                    }
                    Err(err @ (ChainError::Refused(_) | ChainError::Reverted { .. })) => {
                        error!(deal = %proof.deal_id, period, error = %err, "a proof was refused");
                    }
                    Err(err) => {
                        return Err(format!(
                            "submitting proofs for period {period} failed: {err}"
                        ));
                    }
                }
            }
            batch = kept;
            accepted
        }
        Err(err) => {
            return Err(format!(
                "submitting proofs for period {period} failed: {err}"
            ));
        }
    };
    context.metrics.proofs_submitted.inc_by(accepted);
    for proof in &batch {
        context.mark_proven(proof.deal_id, period);
    }
    let mut status = context.status();
    status.proofs_made += accepted;
    if accepted == batch.len() as u64 {
        for proof in &batch {
            let id = proof.deal_id.to_string();
            if let Some(deal) = status.deals.iter_mut().find(|deal| deal.deal == id) {
                deal.proven += 1;
            }
        }
    }
    info!(
        period,
        deals = batch.len(),
        accepted,
        "submitted storage proofs"
    );
    Ok(())
}

/// Anchors `period`'s seed unless an anchor is pending (its block not yet
/// readable); the next run proves once it is.
async fn ensure_anchor(client: &ChainClient, period: u64, head: u64) -> LoopResult {
    let anchor = client
        .seed_anchor(period)
        .await
        .map_err(|err| err.to_string())?;
    if let Some(anchor) = anchor
        && head < anchor + 256
    {
        debug!(period, anchor, head, "waiting for the seed's anchor block");
        return Ok(());
    }
    match client.anchor_seed(period).await {
        Ok(block) => {
            info!(period, block, "anchored the period's seed");
            Ok(())
        }
        // Someone anchored it first (maybe in the same block), or the
        // period just closed.
        Err(err @ (ChainError::Refused(_) | ChainError::Reverted { .. })) => {
            debug!(period, reason = %err, "did not anchor the seed");
            Ok(())
        }
        Err(err) => Err(format!(
            "anchoring the seed of period {period} failed: {err}"
        )),
    }
}

/// Counts the closed periods, since the last run, in which a deal had a
/// commitment in effect and no proof.
async fn account_misses(context: &Context, first_open: u64) -> LoopResult {
    let client = &context.client;
    for deal in context.known() {
        if deal.state == dbytes_ledger::chain::DealState::Proposed {
            continue;
        }
        let key = deal.id.to_string();
        let mut stop = first_open.min(deal.end);
        if !deal.state.is_running() {
            stop = stop.min(deal.settled_to);
        }
        let known_start = context.status().accounted_to.get(&key).copied();
        if known_start.is_some_and(|start| start >= stop) {
            continue;
        }
        let commitments = client
            .commitments(deal.id)
            .await
            .map_err(|err| err.to_string())?;
        let start = match known_start {
            Some(start) => start,
            None if commitments.current.is_some() => commitments.committed_from,
            None => continue,
        };
        let stop = stop.min(start + MISS_CHECKS_PER_RUN);
        let mut missed = 0u64;
        for period in start..stop {
            if commitments.at(period).is_none() {
                continue;
            }
            if !client
                .is_proven(deal.id, period)
                .await
                .map_err(|err| err.to_string())?
            {
                warn!(deal = %deal.id, period, "a period closed without a proof");
                missed += 1;
            }
        }
        context.metrics.proofs_missed.inc_by(missed);
        let mut status = context.status();
        status.proofs_missed += missed;
        if let Some(entry) = status.deals.iter_mut().find(|entry| entry.deal == key) {
            entry.missed += missed;
        }
        status.accounted_to.insert(key, stop.max(start));
    }
    Ok(())
}
