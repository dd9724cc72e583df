//! The listing loop: the on-chain listing and collateral pool follow the
//! config. Registers on first start, updates terms that differ (live deals
//! keep theirs), and tops the pool up to `[listing] collateral_deposit`. A
//! listing the operator paused stays paused.

use std::sync::Arc;

use alloy_primitives::U256;
use dbytes_ledger::chain::ListingTerms;
use dbytes_ledger::chain::units::format_tokens;
use tracing::info;

use super::{Context, LoopResult};

/// The terms the config asks for.
pub(crate) fn wanted_terms(context: &Context) -> ListingTerms {
    let plan = &context.plan;
    ListingTerms {
        node_id: context.node_id,
        address_hints: plan.hints(&context.bound),
        capacity_bytes: plan.capacity_bytes,
        price_per_gib_month: plan.price_per_gib_month,
        min_periods: plan.min_periods,
        max_periods: plan.max_periods,
        collateral_bps: plan.collateral_bps,
        collateral_per_gib: plan.collateral_per_gib,
        region: plan.region,
        policy: plan.accept,
        quote_signer: None,
    }
}

/// One run: register or update, then deposit.
pub(crate) async fn run(context: Arc<Context>) -> LoopResult {
    let client = &context.client;
    let wanted = wanted_terms(&context);
    match client
        .listing(context.me)
        .await
        .map_err(|err| err.to_string())?
    {
        None => {
            client
                .register(&wanted)
                .await
                .map_err(|err| format!("registering the listing failed: {err}"))?;
            info!(provider = %context.me, "listing registered");
        }
        Some(listing) if listing.terms != wanted => {
            client
                .update_listing(&wanted)
                .await
                .map_err(|err| format!("updating the listing failed: {err}"))?;
            info!(provider = %context.me, "listing updated to match the config");
        }
        Some(_) => {}
    }
    let target = context.plan.collateral_deposit;
    if !target.is_zero() {
        let pool = client
            .pool(context.me)
            .await
            .map_err(|err| err.to_string())?;
        let deposited = U256::from(pool.deposited);
        if deposited < target {
            let top_up = target - deposited;
            client.deposit_collateral(top_up).await.map_err(|err| {
                format!(
                    "depositing {} of collateral failed (fund {} with tokens): {err}",
                    format_tokens(top_up),
                    context.me
                )
            })?;
            info!(amount = %format_tokens(top_up), "collateral deposited");
        }
    }
    Ok(())
}
