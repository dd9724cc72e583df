//! Which proposed deals a provider takes: the `[policy]` rules applied to a
//! proposal. Pure: the deals loop reads the proposal and the listing from
//! the chain and acts on the [`Verdict`].

use alloy_primitives::U256;
use dbytes_ledger::chain::deal::MONTH_SECS;
use dbytes_ledger::chain::units::{GIB, format_bytes, format_tokens};
use dbytes_ledger::chain::{Deal, Listing};

use super::config::AcceptRules;

/// What to do with a proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accept it.
    Accept,
    /// Decline it, for this reason.
    Decline(String),
}

/// The price per GiB-month a deal pays, from its rate per period (rounded
/// down: the rate itself was rounded down from the offered price).
pub fn price_per_gib_month(deal: &Deal, period_secs: u64) -> U256 {
    if deal.capacity_bytes == 0 || period_secs == 0 {
        return U256::ZERO;
    }
    U256::from(deal.rate_per_period) * U256::from(GIB) * U256::from(MONTH_SECS)
        / (U256::from(deal.capacity_bytes) * U256::from(period_secs))
}

/// Judges proposal `deal` of `periods` periods against `rules`, given the
/// provider's `listing` (for its free capacity).
pub fn judge(
    rules: &AcceptRules,
    deal: &Deal,
    periods: u64,
    listing: &Listing,
    period_secs: u64,
) -> Verdict {
    if rules.deny_consumers.contains(&deal.consumer) {
        return Verdict::Decline(format!("consumer {} is denied", deal.consumer));
    }
    if !rules.allow_consumers.is_empty() && !rules.allow_consumers.contains(&deal.consumer) {
        return Verdict::Decline(format!("consumer {} is not allowed", deal.consumer));
    }
    if periods < u64::from(rules.min_periods) || periods > u64::from(rules.max_periods) {
        return Verdict::Decline(format!(
            "{periods} periods is outside {}..={}",
            rules.min_periods, rules.max_periods
        ));
    }
    // The rate was rounded down from the offered price; allow that rounding.
    let offered = price_per_gib_month(deal, period_secs);
    let floor = U256::from(rules.min_price_per_gib_month);
    let tolerance = U256::from(GIB) * U256::from(MONTH_SECS)
        / (U256::from(deal.capacity_bytes.max(1)) * U256::from(period_secs.max(1)))
        + U256::from(1);
    if offered + tolerance < floor {
        return Verdict::Decline(format!(
            "it pays {} per GiB-month, below the minimum {}",
            format_tokens(offered),
            format_tokens(floor)
        ));
    }
    let free = listing.free_bytes();
    if deal.capacity_bytes.saturating_add(rules.keep_free_bytes) > free {
        return Verdict::Decline(format!(
            "it needs {} and {} must stay free, but only {} is free",
            format_bytes(deal.capacity_bytes),
            format_bytes(rules.keep_free_bytes),
            format_bytes(free)
        ));
    }
    Verdict::Accept
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, B256, Bytes};
    use dbytes_ledger::chain::deal::rate_for;
    use dbytes_ledger::chain::{AcceptPolicy, DealState, ListingStatus, ListingTerms, Region};

    use crate::daemon::config::Decider;

    const TOKEN: u128 = 1_000_000_000_000_000_000;
    const PERIOD: u64 = 3600;

    fn rules() -> AcceptRules {
        AcceptRules {
            decide: Decider::Rules,
            min_price_per_gib_month: TOKEN,
            min_periods: 2,
            max_periods: 10,
            keep_free_bytes: GIB,
            allow_consumers: vec![],
            deny_consumers: vec![Address::repeat_byte(9)],
        }
    }

    fn deal(price: u128, capacity_bytes: u64) -> Deal {
        Deal {
            id: U256::from(1),
            provider: Address::repeat_byte(2),
            consumer: Address::repeat_byte(1),
            rate_per_period: rate_for(price, capacity_bytes, PERIOD).to::<u128>(),
            end: 10,
            settled_to: 5,
            state: DealState::Proposed,
            missed_run: 0,
            missed_total: 0,
            collateral: 0,
            capacity_bytes,
            fill_by: 0,
            held_back: 0,
            slashed: 0,
            consumer_node_id: B256::ZERO,
            repair_reward: 0,
            term_end: 0,
        }
    }

    fn listing(capacity_bytes: u64, used_bytes: u64) -> Listing {
        Listing {
            provider: Address::repeat_byte(2),
            status: ListingStatus::Active,
            terms: ListingTerms {
                node_id: B256::repeat_byte(1),
                address_hints: Bytes::new(),
                capacity_bytes,
                price_per_gib_month: TOKEN,
                min_periods: 1,
                max_periods: 100,
                collateral_bps: 20_000,
                collateral_per_gib: 0,
                region: Region::NONE,
                policy: AcceptPolicy::Manual,
                quote_signer: None,
            },
            used_bytes,
            live_deals: 0,
        }
    }

    #[test]
    fn a_fair_proposal_that_fits_is_accepted() {
        let verdict = judge(
            &rules(),
            &deal(TOKEN, 10 * GIB),
            5,
            &listing(100 * GIB, 0),
            PERIOD,
        );
        assert_eq!(verdict, Verdict::Accept);
        // Rounding of the rate does not turn the listed price into a decline.
        let small = deal(TOKEN, 1 << 20);
        assert_eq!(
            judge(&rules(), &small, 5, &listing(100 * GIB, 0), PERIOD),
            Verdict::Accept
        );
    }

    #[test]
    fn proposals_are_declined_for_price_length_capacity_and_consumer() {
        let rules = rules();
        let room = listing(100 * GIB, 0);
        let declined = |verdict: Verdict| matches!(verdict, Verdict::Decline(_));
        assert!(declined(judge(
            &rules,
            &deal(TOKEN / 2, 10 * GIB),
            5,
            &room,
            PERIOD
        )));
        assert!(declined(judge(
            &rules,
            &deal(TOKEN, 10 * GIB),
            1,
            &room,
            PERIOD
        )));
        assert!(declined(judge(
            &rules,
            &deal(TOKEN, 10 * GIB),
            11,
            &room,
            PERIOD
        )));
        // 10 GiB needed, 1 GiB must stay free, 10.5 GiB free.
        let tight = listing(100 * GIB, 89 * GIB + GIB / 2);
        assert!(declined(judge(
            &rules,
            &deal(TOKEN, 10 * GIB),
            5,
            &tight,
            PERIOD
        )));
        let mut denied = deal(TOKEN, GIB);
        denied.consumer = Address::repeat_byte(9);
        assert!(declined(judge(&rules, &denied, 5, &room, PERIOD)));
        let only_others = AcceptRules {
            allow_consumers: vec![Address::repeat_byte(7)],
            ..rules.clone()
        };
        assert!(declined(judge(
            &only_others,
            &deal(TOKEN, GIB),
            5,
            &room,
            PERIOD
        )));
    }
}
