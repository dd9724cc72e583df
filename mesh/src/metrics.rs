//! The provider's Prometheus metrics.
//!
//! The metrics exist from the start and are updated whether or not anyone
//! registers them; the daemon registers them into the registry its
//! `/metrics` endpoint serves ([`ProviderMetrics::register`]).

use prometheus::{
    Counter, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};

/// Handles on every provider metric; clones share the same metrics.
#[derive(Debug, Clone)]
pub struct ProviderMetrics {
    /// `dbytes_provider_pieces`: pieces stored.
    pub pieces: IntGauge,
    /// `dbytes_provider_stored_bytes`: bytes of pieces stored.
    pub stored_bytes: IntGauge,
    /// `dbytes_provider_capacity_bytes`: the configured capacity.
    pub capacity_bytes: IntGauge,
    /// `dbytes_provider_requests_total{kind, result}`: requests served, by
    /// kind (put, get, get_range, stat, delete, audit, sign_commitment) and
    /// result (`ok` or the refusal's kind).
    pub requests: IntCounterVec,
    /// `dbytes_provider_request_seconds{kind}`: time to serve a request.
    pub request_seconds: HistogramVec,
    /// `dbytes_provider_scrubbed_pieces_total`: pieces re-hashed by the scrub.
    pub scrubbed_pieces: IntCounter,
    /// `dbytes_provider_scrubbed_bytes_total`: bytes re-hashed by the scrub.
    pub scrubbed_bytes: IntCounter,
    /// `dbytes_provider_rotted_pieces_total`: pieces found corrupt or missing
    /// (by the scrub, a read or an audit) and dropped.
    pub rotted_pieces: IntCounter,
    /// `dbytes_provider_proofs_submitted_total`: deal periods proven on
    /// chain by this daemon.
    pub proofs_submitted: IntCounter,
    /// `dbytes_provider_proofs_missed_total`: deal periods that closed
    /// without a proof.
    pub proofs_missed: IntCounter,
    /// `dbytes_provider_earned_tokens_total`: tokens withdrawn from the
    /// marketplace (whole tokens, fractional).
    pub earned_tokens: Counter,
    /// `dbytes_provider_credit_tokens`: tokens credited and not yet withdrawn.
    pub credit_tokens: Gauge,
    /// `dbytes_provider_deals{state}`: the provider's deals by state.
    pub deals: IntGaugeVec,
    /// `dbytes_provider_chain_errors_total{loop}`: failed runs of each chain
    /// loop (listing, deals, proofs, claims).
    pub chain_errors: IntCounterVec,
    /// `dbytes_provider_deal_scan_blocks_total`: blocks whose deal events
    /// this process read (a restarted daemon resumes where it left off).
    pub deal_scan_blocks: IntCounter,
    /// `dbytes_provider_deal_scan_next_block`: the first block the deals
    /// loop has not read yet.
    pub deal_scan_next_block: IntGauge,
    /// `dbytes_provider_deal_decisions_total{decided_by, decision}`:
    /// proposals this process accepted or declined, by the `rules` or by
    /// the `operator`.
    pub deal_decisions: IntCounterVec,
}

impl ProviderMetrics {
    /// Fresh metrics, not yet registered anywhere.
    pub fn new() -> ProviderMetrics {
        // Invariant: the names and label sets below are valid Prometheus
        // identifiers, which is all these constructors check.
        let gauge = |name: &str, help: &str| {
            IntGauge::new(name, help).expect("a valid metric name and help")
        };
        let counter = |name: &str, help: &str| {
            IntCounter::new(name, help).expect("a valid metric name and help")
        };
        ProviderMetrics {
            pieces: gauge("dbytes_provider_pieces", "Pieces stored."),
            stored_bytes: gauge("dbytes_provider_stored_bytes", "Bytes of pieces stored."),
            capacity_bytes: gauge(
                "dbytes_provider_capacity_bytes",
                "Bytes the provider offers in total.",
            ),
            requests: IntCounterVec::new(
                Opts::new(
                    "dbytes_provider_requests_total",
                    "Piece protocol requests served, by kind and result.",
                ),
                &["kind", "result"],
            )
            .expect("a valid metric name and labels"),
            request_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "dbytes_provider_request_seconds",
                    "Time to serve a piece protocol request, by kind.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0,
                ]),
                &["kind"],
            )
            .expect("a valid metric name and labels"),
            scrubbed_pieces: counter(
                "dbytes_provider_scrubbed_pieces_total",
                "Pieces re-hashed by the scrub.",
            ),
            scrubbed_bytes: counter(
                "dbytes_provider_scrubbed_bytes_total",
                "Bytes re-hashed by the scrub.",
            ),
            rotted_pieces: counter(
                "dbytes_provider_rotted_pieces_total",
                "Pieces found corrupt or missing and dropped.",
            ),
            proofs_submitted: counter(
                "dbytes_provider_proofs_submitted_total",
                "Deal periods proven on chain by this provider.",
            ),
            proofs_missed: counter(
                "dbytes_provider_proofs_missed_total",
                "Deal periods that closed without a proof.",
            ),
            earned_tokens: Counter::new(
                "dbytes_provider_earned_tokens_total",
                "Tokens withdrawn from the marketplace.",
            )
            .expect("a valid metric name and help"),
            credit_tokens: Gauge::new(
                "dbytes_provider_credit_tokens",
                "Tokens credited by the marketplace and not yet withdrawn.",
            )
            .expect("a valid metric name and help"),
            deals: IntGaugeVec::new(
                Opts::new("dbytes_provider_deals", "The provider's deals, by state."),
                &["state"],
            )
            .expect("a valid metric name and labels"),
            chain_errors: IntCounterVec::new(
                Opts::new(
                    "dbytes_provider_chain_errors_total",
                    "Failed runs of the provider's chain loops, by loop.",
                ),
                &["loop"],
            )
            .expect("a valid metric name and labels"),
            deal_scan_blocks: counter(
                "dbytes_provider_deal_scan_blocks_total",
                "Blocks whose deal events this process read.",
            ),
            deal_scan_next_block: gauge(
                "dbytes_provider_deal_scan_next_block",
                "The first block the deals loop has not read yet.",
            ),
            deal_decisions: IntCounterVec::new(
                Opts::new(
                    "dbytes_provider_deal_decisions_total",
                    "Proposals accepted or declined, by who decided.",
                ),
                &["decided_by", "decision"],
            )
            .expect("a valid metric name and labels"),
        }
    }

    /// Registers every metric into `registry`.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.pieces.clone()))?;
        registry.register(Box::new(self.stored_bytes.clone()))?;
        registry.register(Box::new(self.capacity_bytes.clone()))?;
        registry.register(Box::new(self.requests.clone()))?;
        registry.register(Box::new(self.request_seconds.clone()))?;
        registry.register(Box::new(self.scrubbed_pieces.clone()))?;
        registry.register(Box::new(self.scrubbed_bytes.clone()))?;
        registry.register(Box::new(self.rotted_pieces.clone()))?;
        registry.register(Box::new(self.proofs_submitted.clone()))?;
        registry.register(Box::new(self.proofs_missed.clone()))?;
        registry.register(Box::new(self.earned_tokens.clone()))?;
        registry.register(Box::new(self.credit_tokens.clone()))?;
        registry.register(Box::new(self.deals.clone()))?;
        registry.register(Box::new(self.chain_errors.clone()))?;
        registry.register(Box::new(self.deal_scan_blocks.clone()))?;
        registry.register(Box::new(self.deal_scan_next_block.clone()))?;
        registry.register(Box::new(self.deal_decisions.clone()))?;
        Ok(())
    }
}

impl Default for ProviderMetrics {
    fn default() -> Self {
        ProviderMetrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_register_once_and_export() {
        let metrics = ProviderMetrics::new();
        let registry = Registry::new();
        metrics.register(&registry).unwrap();
        assert!(metrics.register(&registry).is_err(), "names are unique");
        metrics.requests.with_label_values(&["put", "ok"]).inc();
        let families = registry.gather();
        assert!(
            families
                .iter()
                .any(|family| family.name() == "dbytes_provider_requests_total")
        );
    }
}
