//! The mesh piece store's Prometheus metrics.
//!
//! They exist from the start and are updated whether or not anyone
//! registers them; the gateway registers them into the registry its
//! `/metrics` endpoint serves ([`MeshMetrics::register`]).

use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Handles on every metric of the mesh piece store; clones share them.
#[derive(Debug, Clone)]
pub struct MeshMetrics {
    /// `dbytes_gateway_provider_pieces{provider}`: pieces the gateway's
    /// deals list per provider (its node id).
    pub pieces_per_provider: IntGaugeVec,
    /// `dbytes_gateway_deal_spend_tokens`: escrow of the running deals the
    /// gateway knows, in tokens (what storage costs the user).
    pub deal_spend_tokens: Gauge,
    /// `dbytes_gateway_deals_opened_total`: deals the gateway opened by itself.
    pub deals_opened: IntCounter,
    /// `dbytes_gateway_piece_put_seconds`: one piece's upload and audit.
    pub put_seconds: Histogram,
    /// `dbytes_gateway_piece_get_seconds`: one piece's (or range's) download.
    pub get_seconds: Histogram,
    /// `dbytes_gateway_piece_failures_total{operation}`: piece requests that
    /// failed, by operation (put, audit, get, delete).
    pub piece_failures: IntCounterVec,
    /// `dbytes_gateway_commitments_total{result}`: deal commitments posted
    /// (`posted`) or attempted and failed (`failed`).
    pub commitments: IntCounterVec,
}

impl Default for MeshMetrics {
    fn default() -> Self {
        MeshMetrics::new()
    }
}

impl MeshMetrics {
    /// Fresh metrics, not yet registered anywhere.
    pub fn new() -> MeshMetrics {
        // Invariant: the names, help texts and label sets below are valid
        // Prometheus identifiers, which is all these constructors check.
        let valid = "a valid metric name, help and labels";
        let buckets = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        let histogram = |name: &str, help: &str| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.clone()))
                .expect(valid)
        };
        MeshMetrics {
            pieces_per_provider: IntGaugeVec::new(
                Opts::new(
                    "dbytes_gateway_provider_pieces",
                    "Pieces the gateway's deals list, per provider node id.",
                ),
                &["provider"],
            )
            .expect(valid),
            deal_spend_tokens: Gauge::new(
                "dbytes_gateway_deal_spend_tokens",
                "Escrow of the gateway's running deals, in tokens.",
            )
            .expect(valid),
            deals_opened: IntCounter::new(
                "dbytes_gateway_deals_opened_total",
                "Deals the gateway opened by itself from the market.",
            )
            .expect(valid),
            put_seconds: histogram(
                "dbytes_gateway_piece_put_seconds",
                "Time to upload one piece to a provider and audit it.",
            ),
            get_seconds: histogram(
                "dbytes_gateway_piece_get_seconds",
                "Time to download one piece or range from a provider.",
            ),
            piece_failures: IntCounterVec::new(
                Opts::new(
                    "dbytes_gateway_piece_failures_total",
                    "Piece requests to providers that failed, by operation.",
                ),
                &["operation"],
            )
            .expect(valid),
            commitments: IntCounterVec::new(
                Opts::new(
                    "dbytes_gateway_commitments_total",
                    "Deal commitments posted on chain, or attempted and failed.",
                ),
                &["result"],
            )
            .expect(valid),
        }
    }

    /// Registers every metric in `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.pieces_per_provider.clone()))?;
        registry.register(Box::new(self.deal_spend_tokens.clone()))?;
        registry.register(Box::new(self.deals_opened.clone()))?;
        registry.register(Box::new(self.put_seconds.clone()))?;
        registry.register(Box::new(self.get_seconds.clone()))?;
        registry.register(Box::new(self.piece_failures.clone()))?;
        registry.register(Box::new(self.commitments.clone()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_register_once_under_their_names() {
        let metrics = MeshMetrics::new();
        let registry = Registry::new();
        metrics.register(&registry).unwrap();
        metrics
            .pieces_per_provider
            .with_label_values(&["ab"])
            .set(3);
        metrics.put_seconds.observe(0.01);
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|family| family.name().to_owned())
            .collect();
        assert!(names.contains(&"dbytes_gateway_provider_pieces".to_owned()));
        assert!(names.contains(&"dbytes_gateway_piece_put_seconds".to_owned()));
        // A second registration of the same metrics is refused.
        assert!(metrics.register(&registry).is_err());
    }
}
