//! Listing search over the index: what a consumer (or a gateway opening
//! deals by itself) asks of the market.

use super::MarketError;
use super::index::{MarketIndex, ProviderRecord};
use crate::chain::types::{AcceptPolicy, ListingStatus, Region};

/// What a consumer is looking for; every field left `None` matches all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListingQuery {
    /// At least this many bytes free.
    pub min_free_bytes: Option<u64>,
    /// Asking at most this price per GiB-month, base units.
    pub max_price_per_gib_month: Option<u128>,
    /// In this region.
    pub region: Option<Region>,
    /// Taking deals of this many periods (within the listing's bounds).
    pub periods: Option<u32>,
    /// With a proof score at least this (0 to 1).
    pub min_score: Option<f64>,
    /// Accepting deals this way.
    pub policy: Option<AcceptPolicy>,
    /// Include paused listings (they take no new deals).
    pub include_paused: bool,
}

impl ListingQuery {
    /// Whether `record` satisfies the query.
    pub fn matches(&self, record: &ProviderRecord) -> bool {
        let Some(terms) = &record.terms else {
            return false;
        };
        let status_ok = record.status == ListingStatus::Active
            || (self.include_paused && record.status == ListingStatus::Paused);
        status_ok
            && self
                .min_free_bytes
                .is_none_or(|min| record.free_bytes() >= min)
            && self
                .max_price_per_gib_month
                .is_none_or(|max| terms.price_per_gib_month <= max)
            && self.region.is_none_or(|region| terms.region == region)
            && self
                .periods
                .is_none_or(|p| p >= terms.min_periods && p <= terms.max_periods)
            && self
                .min_score
                .is_none_or(|min| record.reputation.score() >= min)
            && self.policy.is_none_or(|policy| terms.policy == policy)
    }
}

impl MarketIndex {
    /// Listings matching `query`, cheapest first, then by proof score and
    /// free space.
    pub fn search(&self, query: &ListingQuery) -> Result<Vec<ProviderRecord>, MarketError> {
        let mut found: Vec<ProviderRecord> = self
            .providers()?
            .into_iter()
            .filter(|record| query.matches(record))
            .collect();
        found.sort_by(|a, b| {
            let price = |r: &ProviderRecord| {
                r.terms
                    .as_ref()
                    .map_or(u128::MAX, |t| t.price_per_gib_month)
            };
            price(a)
                .cmp(&price(b))
                .then(b.reputation.score().total_cmp(&a.reputation.score()))
                .then(b.free_bytes().cmp(&a.free_bytes()))
        });
        Ok(found)
    }
}
