//! The gateway's Prometheus metrics.
//!
//! [`GatewayMetrics`] exists from the start and is updated whether or not
//! anyone registers it; `dbytes gateway` registers it (with the mesh
//! store's metrics) into the registry its `/metrics` endpoint serves.
//!
//! Requests are counted at the HTTP layer, by S3 operation and status. The
//! operation is read from the method, the path's shape (bucket or object)
//! and the query's sub-resource, as S3 routes requests: [`operation_of`].

use std::time::Duration;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Handles on every gateway metric; clones share the same metrics.
#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    /// `dbytes_gateway_requests_total{operation, status}`.
    pub requests: IntCounterVec,
    /// `dbytes_gateway_request_seconds{operation}`: time to the response
    /// head (a GET's body streams after it).
    pub request_seconds: HistogramVec,
    /// `dbytes_gateway_received_bytes_total`: request bodies, by their
    /// declared length.
    pub received_bytes: IntCounter,
    /// `dbytes_gateway_sent_bytes_total`: response bodies, by their
    /// declared length.
    pub sent_bytes: IntCounter,
    /// `dbytes_gateway_segments_in_flight`: segments being stored now.
    pub segments_in_flight: IntGauge,
}

impl GatewayMetrics {
    /// Fresh metrics, not yet registered anywhere.
    pub fn new() -> GatewayMetrics {
        // Invariant: the names and label sets below are valid Prometheus
        // identifiers, which is all these constructors check.
        let counter =
            |name: &str, help: &str| IntCounter::new(name, help).expect("a valid metric name");
        GatewayMetrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "dbytes_gateway_requests_total",
                    "S3 requests answered, by operation and HTTP status.",
                ),
                &["operation", "status"],
            )
            .expect("a valid metric name and labels"),
            request_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "dbytes_gateway_request_seconds",
                    "Time from an S3 request to its response head, by operation.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 120.0,
                ]),
                &["operation"],
            )
            .expect("a valid metric name and labels"),
            received_bytes: counter(
                "dbytes_gateway_received_bytes_total",
                "Bytes of S3 request bodies (declared lengths).",
            ),
            sent_bytes: counter(
                "dbytes_gateway_sent_bytes_total",
                "Bytes of S3 response bodies (declared lengths).",
            ),
            segments_in_flight: IntGauge::new(
                "dbytes_gateway_segments_in_flight",
                "Segments being stored on providers now.",
            )
            .expect("a valid metric name"),
        }
    }

    /// Registers every metric into `registry`.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.requests.clone()))?;
        registry.register(Box::new(self.request_seconds.clone()))?;
        registry.register(Box::new(self.received_bytes.clone()))?;
        registry.register(Box::new(self.sent_bytes.clone()))?;
        registry.register(Box::new(self.segments_in_flight.clone()))?;
        Ok(())
    }

    /// Records one answered request.
    pub fn record(&self, operation: &str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[operation, &status.to_string()])
            .inc();
        self.request_seconds
            .with_label_values(&[operation])
            .observe(elapsed.as_secs_f64());
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        GatewayMetrics::new()
    }
}

/// The S3 operation a request names, from its method, path and query
/// (path-style addressing; a virtual-hosted request whose bucket is in the
/// host counts its key's first segment as the bucket, which only shifts it
/// between bucket and object operations of the same family).
pub fn operation_of(method: &str, path: &str, query: Option<&str>) -> &'static str {
    let path = path.trim_start_matches('/');
    let (bucket, key) = match path.split_once('/') {
        Some((bucket, key)) if !key.is_empty() => (bucket, Some(key)),
        Some((bucket, _)) => (bucket, None),
        None => (path, None),
    };
    let has = |name: &str| {
        query.is_some_and(|query| {
            query
                .split('&')
                .any(|pair| pair.split('=').next() == Some(name))
        })
    };
    match (method, bucket.is_empty(), key.is_some()) {
        ("GET", true, _) => "ListBuckets",
        ("GET", false, false) if has("versioning") => "GetBucketVersioning",
        ("GET", false, false) if has("location") => "GetBucketLocation",
        ("GET", false, false) if has("uploads") => "ListMultipartUploads",
        ("GET", false, false) if has("versions") => "ListObjectVersions",
        ("GET", false, false) if has("list-type") => "ListObjectsV2",
        ("GET", false, false) => "ListObjects",
        ("HEAD", false, false) => "HeadBucket",
        ("PUT", false, false) if has("versioning") => "PutBucketVersioning",
        ("PUT", false, false) => "CreateBucket",
        ("DELETE", false, false) => "DeleteBucket",
        ("POST", false, false) if has("delete") => "DeleteObjects",
        ("GET", false, true) if has("uploadId") => "ListParts",
        ("GET", false, true) => "GetObject",
        ("HEAD", false, true) => "HeadObject",
        ("PUT", false, true) if has("partNumber") => "UploadPart",
        ("PUT", false, true) => "PutObject",
        ("POST", false, true) if has("uploads") => "CreateMultipartUpload",
        ("POST", false, true) if has("uploadId") => "CompleteMultipartUpload",
        ("DELETE", false, true) if has("uploadId") => "AbortMultipartUpload",
        ("DELETE", false, true) => "DeleteObject",
        _ => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_read_as_s3_routes_them() {
        let cases = [
            ("GET", "/", None, "ListBuckets"),
            ("GET", "/b", Some("list-type=2&prefix=a"), "ListObjectsV2"),
            ("GET", "/b/", None, "ListObjects"),
            ("GET", "/b", Some("versions"), "ListObjectVersions"),
            ("PUT", "/b", None, "CreateBucket"),
            ("PUT", "/b", Some("versioning"), "PutBucketVersioning"),
            ("POST", "/b", Some("delete"), "DeleteObjects"),
            (
                "PUT",
                "/b/k/x",
                Some("partNumber=1&uploadId=u"),
                "UploadPart",
            ),
            ("PUT", "/b/k", None, "PutObject"),
            ("GET", "/b/k", Some("versionId=v"), "GetObject"),
            ("GET", "/b/k", Some("uploadId=u"), "ListParts"),
            ("POST", "/b/k", Some("uploads"), "CreateMultipartUpload"),
            (
                "POST",
                "/b/k",
                Some("uploadId=u"),
                "CompleteMultipartUpload",
            ),
            ("DELETE", "/b/k", Some("uploadId=u"), "AbortMultipartUpload"),
            ("DELETE", "/b/k", None, "DeleteObject"),
            ("PATCH", "/b/k", None, "Other"),
        ];
        for (method, path, query, expected) in cases {
            assert_eq!(
                operation_of(method, path, query),
                expected,
                "{method} {path} {query:?}"
            );
        }
    }

    #[test]
    fn metrics_register_once_and_count() {
        let metrics = GatewayMetrics::new();
        let registry = Registry::new();
        metrics.register(&registry).unwrap();
        assert!(metrics.register(&registry).is_err(), "names are unique");
        metrics.record("PutObject", 200, Duration::from_millis(3));
        assert_eq!(
            metrics
                .requests
                .with_label_values(&["PutObject", "200"])
                .get(),
            1
        );
    }
}
