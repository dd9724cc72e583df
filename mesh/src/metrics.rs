//! The provider's Prometheus metrics.
//!
//! The metrics exist from the start and are updated whether or not anyone
//! registers them; the daemon registers them into the registry its
//! `/metrics` endpoint serves ([`ProviderMetrics::register`]).

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
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
