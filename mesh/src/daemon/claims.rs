//! The claims loop: settles this provider's deals (at most `[intervals]
//! settle_max_periods` periods each, so every transaction is bounded) and
//! withdraws the credit they paid.

use std::sync::Arc;

use alloy_primitives::U256;
use dbytes_ledger::chain::ChainError;
use dbytes_ledger::chain::units::format_tokens;
use tracing::{debug, info};

use super::{Context, LoopResult};

/// `amount` base units as whole tokens (for metrics).
pub fn tokens_f64(amount: U256) -> f64 {
    amount.to_string().parse::<f64>().unwrap_or(f64::MAX) / 1e18
}

/// One run: settle what is closed, withdraw what is credited.
pub(crate) async fn run(context: Arc<Context>) -> LoopResult {
    let client = &context.client;
    let now = client.now().await.map_err(|err| err.to_string())?;
    let first_open = client.clock().first_open_period(now);
    for deal in context.known() {
        if !deal.state.is_running() || deal.settled_to >= deal.end.min(first_open) {
            continue;
        }
        match client
            .settle(deal.id, context.intervals.settle_max_periods.max(1))
            .await
        {
            Ok(settlement) => info!(
                deal = %deal.id,
                from = settlement.from_period,
                to = settlement.to_period,
                paid = %format_tokens(settlement.paid),
                slashed = %format_tokens(settlement.slashed),
                "settled a deal"
            ),
            // The list is a little stale: someone else settled it.
            Err(ChainError::Refused(reason)) => {
                debug!(deal = %deal.id, %reason, "nothing to settle")
            }
            Err(err) => return Err(format!("settling deal {} failed: {err}", deal.id)),
        }
    }
    let credit = client
        .credit(context.me)
        .await
        .map_err(|err| err.to_string())?;
    context.metrics.credit_tokens.set(tokens_f64(credit));
    if credit.is_zero() {
        return Ok(());
    }
    let amount = client
        .withdraw()
        .await
        .map_err(|err| format!("withdrawing {} failed: {err}", format_tokens(credit)))?;
    context.metrics.earned_tokens.inc_by(tokens_f64(amount));
    context.metrics.credit_tokens.set(0.0);
    let mut status = context.status();
    let total = U256::from_str_radix(&status.withdrawn, 10).unwrap_or_default() + amount;
    status.withdrawn = total.to_string();
    info!(amount = %format_tokens(amount), total = %format_tokens(total), "withdrew earnings");
    Ok(())
}
