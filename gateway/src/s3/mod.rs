//! The S3 API: an [s3s] implementation over the book and the pipeline,
//! served by hyper.
//!
//! - **Auth**: SigV4 (header and presigned) with access keys from the book
//!   ([`access::BookAuth`]); every request must be signed, and a user sees
//!   only the buckets it owns ([`access::BookAccess`]).
//! - **Operations**: buckets (list, create, head, delete, location,
//!   versioning), objects (put, get with ranges and conditions, head, delete,
//!   delete many, copy), listings (v1, v2, versions), multipart uploads. See
//!   the methods of [`S3Api`].
//! - **Data**: bodies go through the [`Pipeline`]; the book commits a
//!   version only once its body is whole and its checksums verified.
//!
//! It is not the CLI (`dbytes gateway` builds a [`Gateway`] and calls
//! [`Gateway::serve`]) nor the mesh (a [`PieceStore`] is passed in).
//!
//! Main types: [`Gateway`], [`GatewayConfig`], [`GatewayError`].

mod access;
mod buckets;
mod checksum;
mod errors;
mod listing;
mod multipart;
mod objects;
mod service;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dbytes_ledger::book::{Book, BookError, Bucket, Placement, Redundancy, UnixMillis};
use dbytes_ledger::keys::{BucketKey, DataMasterKey};
use dbytes_ledger::piece::PieceId;
use dbytes_placement::RedundancyPolicy;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Error, S3Result};
use tokio::net::TcpListener;

use crate::metrics::{GatewayMetrics, operation_of};
use crate::pipeline::{PieceStore, Pipeline, PipelineConfig, free_due_pieces};

pub use access::{BookAccess, BookAuth, RequestUser};
pub use service::S3Api;

/// S3's minimum size of every part of a multipart upload but the last.
pub const S3_MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// How a gateway runs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The region the gateway reports (and clients sign for; any region
    /// signs correctly, S3 clients default to `us-east-1`).
    pub region: String,
    /// The redundancy of new buckets.
    pub default_redundancy: RedundancyPolicy,
    /// The object pipeline's settings (inline threshold, segments in flight, piece size).
    pub pipeline: PipelineConfig,
    /// The smallest part of a multipart upload but the last ([`S3_MIN_PART_SIZE`]).
    pub min_part_size: u64,
    /// Domains for virtual-hosted-style requests (`bucket.domain`); path
    /// style always works.
    pub virtual_host_domains: Vec<String>,
    /// How often the free worker looks for pieces to delete.
    pub free_interval: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            region: "us-east-1".to_owned(),
            // Invariant: 4-of-6 is a valid policy.
            default_redundancy: RedundancyPolicy::new(4, 6).expect("4-of-6 is a valid policy"),
            pipeline: PipelineConfig::default(),
            min_part_size: S3_MIN_PART_SIZE,
            virtual_host_domains: Vec::new(),
            free_interval: Duration::from_secs(30),
        }
    }
}

/// Why the gateway could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A virtual-host domain is not a valid domain name.
    #[error("invalid virtual-host domain {domain:?}: {reason}")]
    InvalidDomain {
        /// The domain.
        domain: String,
        /// Why.
        reason: String,
    },
    /// The listener failed.
    #[error("the S3 listener failed: {0}")]
    Listener(#[from] std::io::Error),
}

/// What every request handler shares.
pub(crate) struct Shared {
    pub(crate) book: Book,
    pub(crate) pipeline: Pipeline,
    pub(crate) master: DataMasterKey,
    pub(crate) config: GatewayConfig,
    pub(crate) metrics: GatewayMetrics,
}

/// The time now, as the book records it.
pub fn now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

impl Shared {
    /// Runs a book operation on the blocking pool (commits wait for fsync).
    pub(crate) async fn book<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Book) -> Result<T, BookError> + Send + 'static,
    ) -> S3Result<T> {
        let book = self.book.clone();
        match tokio::task::spawn_blocking(move || work(&book)).await {
            Ok(result) => result.map_err(errors::book_error),
            Err(err) => Err(S3Error::internal_error(err)),
        }
    }

    /// The key of a bucket's objects.
    pub(crate) fn bucket_key(&self, bucket: &Bucket) -> BucketKey {
        self.master.bucket_key(&bucket.id.0)
    }

    /// Queues pieces of an uncommitted write for freeing (logged on failure:
    /// the repair worker's audit finds orphans too).
    pub(crate) async fn free_later(&self, pieces: Vec<(PieceId, Placement)>) {
        if pieces.is_empty() {
            return;
        }
        let count = pieces.len();
        if let Err(err) = self
            .book(move |book| book.queue_free(pieces, now_ms()))
            .await
        {
            tracing::error!(%err, count, "could not queue the pieces of a failed write for freeing");
        }
    }
}

/// Converts a redundancy policy to the form the book stores.
pub(crate) fn redundancy_of(policy: RedundancyPolicy) -> Redundancy {
    Redundancy {
        data_pieces: policy.data_pieces(),
        total_pieces: policy.total_pieces(),
        repair_threshold: policy.repair_threshold(),
        success_threshold: policy.success_threshold(),
    }
}

/// The policy a bucket's stored redundancy stands for.
pub(crate) fn policy_of(redundancy: &Redundancy) -> S3Result<RedundancyPolicy> {
    RedundancyPolicy::with_thresholds(
        redundancy.data_pieces,
        redundancy.total_pieces,
        redundancy.repair_threshold,
        redundancy.success_threshold,
    )
    .map_err(|err| {
        s3s::s3_error!(
            InternalError,
            "the bucket's redundancy policy is invalid: {err}"
        )
    })
}

/// An S3 gateway: the book, a pipeline over a piece store, and the data
/// master key. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway over `book`, storing pieces in `store`, with the data keys
    /// derived from `master` (`RootSecret::data_master_key`).
    pub fn new(
        book: Book,
        store: Arc<dyn PieceStore>,
        master: DataMasterKey,
        config: GatewayConfig,
    ) -> Self {
        let metrics = GatewayMetrics::new();
        let pipeline = Pipeline::new(store, config.pipeline.clone())
            .with_in_flight_gauge(metrics.segments_in_flight.clone());
        Gateway {
            shared: Arc::new(Shared {
                book,
                pipeline,
                master,
                config,
                metrics,
            }),
        }
    }

    /// The book it serves from.
    pub fn book(&self) -> &Book {
        &self.shared.book
    }

    /// Its metrics (register them to export them).
    pub fn metrics(&self) -> &GatewayMetrics {
        &self.shared.metrics
    }

    /// The s3s service (for embedding in another server, or tests).
    pub fn service(&self) -> Result<S3Service, GatewayError> {
        let mut builder = S3ServiceBuilder::new(S3Api::new(self.shared.clone()));
        builder.set_auth(BookAuth::new(self.shared.book.clone()));
        builder.set_access(BookAccess::new(self.shared.book.clone()));
        if !self.shared.config.virtual_host_domains.is_empty() {
            let domains = s3s::host::MultiDomain::new(&self.shared.config.virtual_host_domains)
                .map_err(|err| GatewayError::InvalidDomain {
                    domain: self.shared.config.virtual_host_domains.join(","),
                    reason: err.to_string(),
                })?;
            builder.set_host(domains);
        }
        Ok(builder.build())
    }

    /// One pass of the free worker (the serve loop runs it every
    /// `free_interval`); returns how many free tasks finished.
    pub async fn free_pending_pieces(&self) -> Result<usize, crate::pipeline::PipelineError> {
        free_due_pieces(
            &self.shared.book,
            self.shared.pipeline.store().as_ref(),
            now_ms(),
            64,
        )
        .await
    }

    /// Serves S3 on `listener` until `shutdown` completes, then stops
    /// accepting and gives open connections up to 10 s to finish. Also runs
    /// the free worker.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), GatewayError> {
        let service = self.service()?;
        let connections = ConnectionBuilder::new(TokioExecutor::new());
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let free_worker = {
            let gateway = self.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(gateway.shared.config.free_interval);
                loop {
                    ticks.tick().await;
                    if let Err(err) = gateway.free_pending_pieces().await {
                        tracing::warn!(%err, "the free worker's pass failed");
                    }
                }
            })
        };
        tracing::info!(address = ?listener.local_addr().ok(), "S3 gateway listening");
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = shutdown.as_mut() => break,
            };
            let socket = match accepted {
                Ok((socket, _)) => socket,
                Err(err) => {
                    tracing::warn!(%err, "accepting a connection failed");
                    // Out of file descriptors and the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let service = service.clone();
            let metrics = self.shared.metrics.clone();
            let handler = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let service = service.clone();
                    let metrics = metrics.clone();
                    async move { serve_request(&service, &metrics, request).await }
                },
            );
            let connection = connections.serve_connection(TokioIo::new(socket), handler);
            let connection = graceful.watch(connection.into_owned());
            tokio::spawn(async move {
                if let Err(err) = connection.await {
                    tracing::debug!(%err, "connection ended with an error");
                }
            });
        }
        free_worker.abort();
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(Duration::from_secs(10)) => {
                tracing::warn!("connections still open after 10 s; closing them");
            }
        }
        Ok(())
    }
}

/// Serves one request and counts it in the metrics.
async fn serve_request(
    service: &S3Service,
    metrics: &GatewayMetrics,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<s3s::HttpResponse, s3s::HttpError> {
    let started = std::time::Instant::now();
    let operation = operation_of(
        request.method().as_str(),
        request.uri().path(),
        request.uri().query(),
    );
    metrics
        .received_bytes
        .inc_by(content_length(request.headers()));
    let response = close_after_refused_body(service, request).await;
    let status = match &response {
        Ok(response) => {
            metrics
                .sent_bytes
                .inc_by(content_length(response.headers()));
            response.status().as_u16()
        }
        Err(_) => 500,
    };
    metrics.record(operation, status, started.elapsed());
    response
}

/// A message's declared body length (0 when it declares none).
fn content_length(headers: &hyper::HeaderMap) -> u64 {
    headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// Serves one request; an error answered before the request's body was
/// read closes the connection. Otherwise body bytes still in flight (a
/// client sends headers, then the body) would be parsed as the next request
/// on a kept-alive connection.
async fn close_after_refused_body(
    service: &S3Service,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<s3s::HttpResponse, s3s::HttpError> {
    let headers = request.headers();
    let has_body = headers.contains_key(hyper::header::TRANSFER_ENCODING)
        || headers
            .get(hyper::header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0");
    let mut response = hyper::service::Service::call(service, request).await?;
    if has_body && !response.status().is_success() {
        response.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    Ok(response)
}

/// The user a request acts as (set by [`BookAccess`]).
pub(crate) fn request_user<T>(req: &s3s::S3Request<T>) -> S3Result<String> {
    req.extensions
        .get::<RequestUser>()
        .map(|user| user.0.clone())
        .ok_or_else(|| s3s::s3_error!(AccessDenied, "Access Denied"))
}

/// The bucket `name` if `user` owns it (`NoSuchBucket` / `AccessDenied` otherwise).
pub(crate) fn owned_bucket(shared: &Shared, user: &str, name: &str) -> S3Result<Bucket> {
    match shared.book.bucket(name).map_err(errors::book_error)? {
        None => Err(s3s::s3_error!(
            NoSuchBucket,
            "The specified bucket does not exist"
        )),
        Some(bucket) if bucket.owner != user => Err(s3s::s3_error!(AccessDenied, "Access Denied")),
        Some(bucket) => Ok(bucket),
    }
}

/// A book time as an S3 timestamp.
pub(crate) fn timestamp(ms: UnixMillis) -> s3s::dto::Timestamp {
    s3s::dto::Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

/// Parses a `versionId` parameter.
pub(crate) fn parse_version_id(
    version_id: Option<&str>,
) -> S3Result<Option<dbytes_ledger::book::VersionId>> {
    version_id
        .map(|text| {
            text.parse()
                .map_err(|_| s3s::s3_error!(InvalidArgument, "Invalid version id specified"))
        })
        .transpose()
}
