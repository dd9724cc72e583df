//! The provider side of the piece protocol, and the node that runs it.
//!
//! [`PieceService`] is the iroh protocol handler: it takes each stream of a
//! connection as one request, checks the deal with the [`DealAuthority`],
//! and serves it from the [`PieceStore`]. [`ProviderNode`] binds the
//! endpoint, opens the store, mounts the service and runs the scrub: what
//! `dbytes provider run` starts before the chain loops join it.
//!
//! Every refusal is a typed [`Refusal`] reply; a malformed or oversized
//! message gets one too, or a closed stream, never a crash. Requests in
//! flight are bounded (QUIC stream limits per connection and a semaphore
//! over all connections), bytes move through bounded queues to blocking
//! threads that hash and touch the disk, so a fast peer is held back by
//! flow control instead of filling memory.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use bytes::Bytes;
use dbytes_ledger::keys::NodeSecret;
use iroh::endpoint::{Connection, RecvStream, SendStream, VarInt};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh::{Endpoint, EndpointAddr};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet, spawn_blocking};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::commitment::{Commitment, CommitmentSigner, PieceSlot};
use crate::deal::{DealAuthority, DealId, DealTerms, NodeId};
use crate::metrics::ProviderMetrics;
use crate::store::{CHUNK_BYTES, PieceIngest, PieceStore, RecoveryReport, StoreConfig, StoreError};
use crate::transport::{
    FrameError, GuardedSend, TransportConfig, TransportError, bind_endpoint, read_frame,
    write_frame,
};
use crate::wire::{
    ByteRange, MAX_FRAME_BYTES, PIECE_ALPN, PROTOCOL_VERSION, ProviderStat, RESET_CANCELLED,
    RESET_CORRUPT, Refusal, Request, Response, STOP_ANSWERED,
};

/// Chunks (or batches of about [`CHUNK_BYTES`] of received bytes) queued
/// between the network and the disk per stream: about 1 MiB in memory per
/// upload or download.
const QUEUE_CHUNKS: usize = 4;

/// How the piece service treats requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// This provider's wallet address: deals of other providers are refused.
    /// `None` serves any deal the authority knows (a local mode).
    pub provider_address: Option<Address>,
    /// A stream must deliver its request frame within this time.
    pub request_timeout: Duration,
    /// An upload that sends nothing for this long is abandoned.
    pub body_idle_timeout: Duration,
    /// The deal authority must answer within this time.
    pub authority_timeout: Duration,
    /// Requests in flight over all connections; more wait for a slot before
    /// their stream is accepted.
    pub max_concurrent_requests: usize,
    /// Audits in flight (each holds a whole piece and its tree in memory).
    pub max_concurrent_audits: usize,
    /// The software version [`Request::Stat`] reports.
    pub software_version: String,
    /// Fault injection for tests only: how long every put, get, range get
    /// and audit answer is held back (zero: not at all). Change it on a
    /// running service through [`FaultInjection`].
    pub response_delay: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            provider_address: None,
            request_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            authority_timeout: Duration::from_secs(10),
            max_concurrent_requests: 256,
            max_concurrent_audits: 2,
            software_version: env!("CARGO_PKG_VERSION").to_string(),
            response_delay: Duration::ZERO,
        }
    }
}

/// Faults a running piece service injects, for tests of how consumers cope
/// with a slow provider. Clones share the settings: set them on the handle
/// from [`PieceService::faults`] or [`ProviderNode::faults`] and the
/// service's next answers follow.
#[derive(Debug, Clone, Default)]
pub struct FaultInjection {
    response_delay_ms: Arc<AtomicU64>,
}

impl FaultInjection {
    /// Settings that delay answers by `response_delay`.
    pub fn new(response_delay: Duration) -> FaultInjection {
        let faults = FaultInjection::default();
        faults.set_response_delay(response_delay);
        faults
    }

    /// Holds back every later put, get, range get and audit answer
    /// (refusals included) by `delay`, at millisecond resolution; zero
    /// turns the delay off.
    pub fn set_response_delay(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.response_delay_ms.store(millis, Ordering::Relaxed);
    }

    /// The delay answers are held back by.
    pub fn response_delay(&self) -> Duration {
        Duration::from_millis(self.response_delay_ms.load(Ordering::Relaxed))
    }

    /// Waits out the response delay, if there is one.
    async fn delay_response(&self) {
        let delay = self.response_delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

/// The piece protocol's handler: mount it on an iroh [`Router`] under
/// [`PIECE_ALPN`].
pub struct PieceService<A, S> {
    inner: Arc<Service<A, S>>,
}

impl<A, S> Clone for PieceService<A, S> {
    fn clone(&self) -> Self {
        PieceService {
            inner: self.inner.clone(),
        }
    }
}

impl<A, S> std::fmt::Debug for PieceService<A, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PieceService")
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

struct Service<A, S> {
    store: PieceStore,
    authority: A,
    signer: S,
    config: ServiceConfig,
    metrics: ProviderMetrics,
    started: Instant,
    requests: Arc<Semaphore>,
    audits: Semaphore,
    faults: FaultInjection,
}

/// How a request ended, for metrics.
enum Outcome {
    /// Answered in full.
    Served,
    /// Refused before any answer was written; the refusal is sent.
    Refused(Refusal),
    /// The answer had begun when it failed; the stream was reset or lost.
    Aborted(&'static str),
}

impl From<Refusal> for Outcome {
    fn from(refusal: Refusal) -> Self {
        Outcome::Refused(refusal)
    }
}

/// `?` on a refusal inside a handler returns `Outcome::Refused`.
macro_rules! refuse {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(refusal) => return Outcome::Refused(refusal),
        }
    };
}

impl<A: DealAuthority, S: CommitmentSigner> PieceService<A, S> {
    /// A service over `store` that checks deals with `authority` and signs
    /// commitments with `signer`.
    pub fn new(
        store: PieceStore,
        authority: A,
        signer: S,
        config: ServiceConfig,
        metrics: ProviderMetrics,
    ) -> PieceService<A, S> {
        PieceService {
            inner: Arc::new(Service {
                store,
                authority,
                signer,
                requests: Arc::new(Semaphore::new(config.max_concurrent_requests.max(1))),
                audits: Semaphore::new(config.max_concurrent_audits.max(1)),
                faults: FaultInjection::new(config.response_delay),
                config,
                metrics,
                started: Instant::now(),
            }),
        }
    }

    /// The service's fault injection (shared: changes apply at once).
    pub fn faults(&self) -> FaultInjection {
        self.inner.faults.clone()
    }
}

impl<A: DealAuthority, S: CommitmentSigner> ProtocolHandler for PieceService<A, S> {
    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        let remote: NodeId = *connection.remote_id().as_bytes();
        let mut streams = JoinSet::new();
        loop {
            // Take a slot before accepting: with none free, the peer's new
            // streams wait in QUIC's stream limit.
            let Ok(slot) = self.inner.requests.clone().acquire_owned().await else {
                break;
            };
            let (send, recv) = match connection.accept_bi().await {
                Ok(streams) => streams,
                Err(_) => break, // The connection closed.
            };
            while let Some(joined) = streams.try_join_next() {
                log_panic(joined);
            }
            let service = self.inner.clone();
            streams.spawn(async move {
                service.serve_stream(remote, send, recv).await;
                drop(slot);
            });
        }
        // The connection is gone: its streams fail promptly; let their
        // handlers clean up (abandoned uploads remove their files).
        while let Some(joined) = streams.join_next().await {
            log_panic(joined);
        }
        Ok(())
    }
}

/// Whether answers to requests of `kind` wait out the injected response
/// delay: the piece transfers and audits, not stat, delete or signing.
fn delayed(kind: &str) -> bool {
    matches!(kind, "put" | "get" | "get_range" | "audit")
}

fn log_panic(joined: Result<(), tokio::task::JoinError>) {
    if let Err(err) = joined
        && err.is_panic()
    {
        error!(error = %err, "a piece request handler panicked");
    }
}

impl<A: DealAuthority, S: CommitmentSigner> Service<A, S> {
    async fn serve_stream(&self, remote: NodeId, send: SendStream, mut recv: RecvStream) {
        let started = Instant::now();
        let mut send = GuardedSend::new(send, RESET_CANCELLED);
        let request = match timeout(
            self.config.request_timeout,
            read_frame::<Request>(&mut recv, MAX_FRAME_BYTES),
        )
        .await
        {
            Ok(Ok(request)) => request,
            Ok(Err(FrameError::Ended | FrameError::Stream(_))) => return,
            Ok(Err(FrameError::Wire(err))) => {
                debug!(error = %err, "refusing a malformed request");
                self.finish_refused(&mut send, &mut recv, Refusal::Malformed(err.to_string()))
                    .await;
                self.count("malformed", "malformed", started);
                return;
            }
            Err(_) => {
                let refusal = Refusal::Malformed(format!(
                    "no request arrived within {:?}",
                    self.config.request_timeout
                ));
                self.finish_refused(&mut send, &mut recv, refusal).await;
                self.count("malformed", "timeout", started);
                return;
            }
        };
        let kind = request.kind();
        let outcome = match request.check_limits() {
            Err(refusal) => Outcome::Refused(refusal),
            Ok(()) => self.dispatch(remote, request, &mut send, &mut recv).await,
        };
        let result = match outcome {
            Outcome::Served => "ok",
            Outcome::Aborted(why) => why,
            Outcome::Refused(refusal) => {
                debug!(kind, %refusal, "refused a request");
                let label = refusal.kind();
                if delayed(kind) {
                    self.faults.delay_response().await;
                }
                self.finish_refused(&mut send, &mut recv, refusal).await;
                label
            }
        };
        self.count(kind, result, started);
    }

    fn count(&self, kind: &str, result: &str, started: Instant) {
        self.metrics
            .requests
            .with_label_values(&[kind, result])
            .inc();
        self.metrics
            .request_seconds
            .with_label_values(&[kind])
            .observe(started.elapsed().as_secs_f64());
    }

    async fn finish_refused(
        &self,
        send: &mut GuardedSend,
        recv: &mut RecvStream,
        refusal: Refusal,
    ) {
        // Tell the requester to stop sending; the answer says why.
        let _ = recv.stop(VarInt::from_u32(STOP_ANSWERED));
        let _ = reply(send, &Response::Refused(refusal)).await;
    }

    async fn dispatch(
        &self,
        remote: NodeId,
        request: Request,
        send: &mut GuardedSend,
        recv: &mut RecvStream,
    ) -> Outcome {
        match request {
            Request::PutPiece {
                deal,
                piece,
                length,
            } => self.put(remote, deal, piece, length, send, recv).await,
            Request::GetPiece { deal, piece, range } => {
                self.get(remote, deal, piece, range, send).await
            }
            Request::Stat => {
                let usage = self.store.usage();
                let stat = ProviderStat {
                    protocol_version: PROTOCOL_VERSION,
                    software_version: self.config.software_version.clone(),
                    capacity_bytes: usage.capacity_bytes,
                    used_bytes: usage.used_bytes + usage.reserved_bytes,
                    piece_count: usage.piece_count,
                    uptime_secs: self.started.elapsed().as_secs(),
                };
                answer(send, &Response::Stat(stat)).await
            }
            Request::DeletePiece { deal, piece } => {
                let terms = refuse!(self.terms(deal).await);
                if !terms.may_write(&remote) {
                    return Refusal::NotConsumer(deal).into();
                }
                let store = self.store.clone();
                let existed = refuse!(blocking(move || store.delete(deal, piece)).await);
                answer(send, &Response::Deleted { existed }).await
            }
            Request::Audit {
                deal,
                piece,
                leaf_indexes,
            } => {
                let terms = refuse!(self.terms(deal).await);
                if !terms.may_read(&remote) {
                    return Refusal::NotAuthorisedReader(deal).into();
                }
                let Ok(_permit) = self.audits.acquire().await else {
                    return Refusal::Internal("shutting down".to_string()).into();
                };
                let store = self.store.clone();
                let reply =
                    refuse!(blocking(move || store.audit(deal, piece, &leaf_indexes)).await);
                self.faults.delay_response().await;
                answer(send, &Response::Audit(reply)).await
            }
            Request::SignCommitment(commitment) => {
                self.sign_commitment(remote, commitment, send).await
            }
        }
    }

    /// The deal's terms, if it exists and is this provider's.
    async fn terms(&self, deal: DealId) -> Result<DealTerms, Refusal> {
        let answer = timeout(
            self.config.authority_timeout,
            self.authority.deal_terms(deal),
        )
        .await
        .map_err(|_| Refusal::Unavailable("the deal authority timed out".to_string()))?
        .map_err(|err| Refusal::Unavailable(err.to_string()))?;
        let terms = answer.ok_or(Refusal::UnknownDeal(deal))?;
        if let Some(me) = self.config.provider_address
            && terms.provider != me
        {
            return Err(Refusal::NotThisProvider(deal));
        }
        Ok(terms)
    }

    /// The terms of an active deal whose consumer is `remote`.
    async fn terms_for_consumer(
        &self,
        deal: DealId,
        remote: &NodeId,
    ) -> Result<DealTerms, Refusal> {
        let terms = self.terms(deal).await?;
        if !terms.may_write(remote) {
            return Err(Refusal::NotConsumer(deal));
        }
        if !terms.active {
            return Err(Refusal::DealNotActive(deal));
        }
        Ok(terms)
    }

    async fn put(
        &self,
        remote: NodeId,
        deal: DealId,
        piece: dbytes_ledger::piece::PieceId,
        length: u64,
        send: &mut GuardedSend,
        recv: &mut RecvStream,
    ) -> Outcome {
        let terms = refuse!(self.terms_for_consumer(deal, &remote).await);
        let store = self.store.clone();
        if let Some(record) = refuse!(blocking(move || store.record(deal, piece)).await) {
            // Already here: the bytes are not needed.
            let _ = recv.stop(VarInt::from_u32(STOP_ANSWERED));
            self.faults.delay_response().await;
            return answer(send, &Response::Stored(record.stored())).await;
        }
        let store = self.store.clone();
        let ingest = refuse!(
            blocking(move || store.begin_put(deal, piece, length, terms.capacity_bytes)).await
        );

        // The disk side: copying, hashing and writing off the executor
        // (which drives QUIC for every connection), fed through a bounded
        // queue so the network waits for the disk. The bytes arrive as
        // QUIC hands them over, in packet-sized pieces; they are gathered
        // into one reused buffer, so BLAKE3 hashes whole chunks with its
        // widest SIMD and no chunk is allocated afresh.
        let (batches, mut queued) = mpsc::channel::<Vec<Bytes>>(QUEUE_CHUNKS);
        let writer = spawn_blocking(move || -> Result<PieceIngest, StoreError> {
            let mut ingest = ingest;
            let mut chunk = Vec::with_capacity(2 * CHUNK_BYTES);
            while let Some(batch) = queued.blocking_recv() {
                for bytes in batch {
                    chunk.extend_from_slice(&bytes);
                }
                if chunk.len() >= CHUNK_BYTES {
                    ingest.write(&chunk)?;
                    chunk.clear();
                }
            }
            if !chunk.is_empty() {
                ingest.write(&chunk)?;
            }
            Ok(ingest)
        });
        let received = self.receive_body(recv, length, &batches).await;
        drop(batches);
        let written = writer.await;
        let ingest = match (received, written) {
            (_, Ok(Err(err))) => return store_refusal(err).into(),
            (_, Err(err)) => {
                error!(error = %err, "a piece writer failed");
                return Refusal::Internal("the piece writer failed".to_string()).into();
            }
            (Err(refusal), Ok(Ok(_abandoned))) => return refusal.into(),
            (Ok(()), Ok(Ok(ingest))) => ingest,
        };
        let stored = refuse!(blocking(move || ingest.finish()).await);
        self.faults.delay_response().await;
        answer(send, &Response::Stored(stored)).await
    }

    /// Reads exactly `length` body bytes into `batches` (of about
    /// [`CHUNK_BYTES`] each, as QUIC received them, not copied), then the
    /// stream's end.
    async fn receive_body(
        &self,
        recv: &mut RecvStream,
        length: u64,
        batches: &mpsc::Sender<Vec<Bytes>>,
    ) -> Result<(), Refusal> {
        let idle = self.config.body_idle_timeout;
        let mut received = 0u64;
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        while received < length {
            let want = (length - received).min(CHUNK_BYTES as u64) as usize;
            match timeout(idle, recv.read_chunk(want)).await {
                Ok(Ok(Some(bytes))) => {
                    received += bytes.len() as u64;
                    batch_bytes += bytes.len();
                    batch.push(bytes);
                }
                // Ended early, reset, connection lost or stalled.
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                    return Err(Refusal::Truncated {
                        expected: length,
                        received,
                    });
                }
            }
            if batch_bytes >= CHUNK_BYTES || received == length {
                batch_bytes = 0;
                if batches.send(std::mem::take(&mut batch)).await.is_err() {
                    // The writer failed; its error is the answer.
                    return Ok(());
                }
            }
        }
        match timeout(idle, recv.read(&mut [0u8; 1])).await {
            Ok(Ok(None)) => Ok(()),
            Ok(Ok(Some(_))) => Err(Refusal::TooLong { expected: length }),
            Ok(Err(_)) | Err(_) => Err(Refusal::Malformed(
                "the uploader abandoned the stream after the body".to_string(),
            )),
        }
    }

    async fn get(
        &self,
        remote: NodeId,
        deal: DealId,
        piece: dbytes_ledger::piece::PieceId,
        range: Option<ByteRange>,
        send: &mut GuardedSend,
    ) -> Outcome {
        let terms = refuse!(self.terms(deal).await);
        if !terms.may_read(&remote) {
            return Refusal::NotAuthorisedReader(deal).into();
        }
        let store = self.store.clone();
        let mut reader = refuse!(blocking(move || store.open_piece(deal, piece)).await);
        let piece_length = reader.record().length;
        let (offset, length) = match range {
            None => (0, piece_length),
            Some(ByteRange { offset, length }) => {
                if offset
                    .checked_add(length)
                    .is_none_or(|end| end > piece_length)
                {
                    return Refusal::RangeOutOfBounds {
                        offset,
                        length,
                        piece_length,
                    }
                    .into();
                }
                (offset, length)
            }
        };
        self.faults.delay_response().await;
        let Some(stream) = send.stream() else {
            return Outcome::Aborted("stream");
        };
        if write_frame(stream, &Response::Piece { length })
            .await
            .is_err()
        {
            return Outcome::Aborted("stream");
        }

        let (chunks, mut queued) = mpsc::channel::<Vec<u8>>(QUEUE_CHUNKS);
        let sender = spawn_blocking(move || {
            let each = |chunk| match chunks.blocking_send(chunk) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            };
            match range {
                None => reader.send_verified(each),
                Some(_) => reader.send_range(offset, length, each),
            }
        });
        let mut sent = true;
        while let Some(chunk) = queued.recv().await {
            let Some(stream) = send.stream() else {
                sent = false;
                break;
            };
            // Handed over whole: QUIC keeps the buffer instead of copying it.
            if stream.write_chunk(Bytes::from(chunk)).await.is_err() {
                sent = false;
                break;
            }
        }
        drop(queued);
        match sender.await {
            Ok(Ok(())) if sent => match send.finish() {
                Ok(()) => Outcome::Served,
                Err(_) => Outcome::Aborted("stream"),
            },
            Ok(Ok(())) => Outcome::Aborted("stream"),
            Ok(Err(StoreError::Corrupt { .. })) => {
                send.reset(RESET_CORRUPT);
                Outcome::Aborted("corrupt")
            }
            Ok(Err(err)) => {
                error!(error = %err, %deal, %piece, "reading a piece failed");
                send.reset(RESET_CORRUPT);
                Outcome::Aborted("internal")
            }
            Err(err) => {
                error!(error = %err, "a piece reader failed");
                send.reset(RESET_CORRUPT);
                Outcome::Aborted("internal")
            }
        }
    }

    async fn sign_commitment(
        &self,
        remote: NodeId,
        commitment: Commitment,
        send: &mut GuardedSend,
    ) -> Outcome {
        let deal = commitment.deal;
        let terms = refuse!(self.terms_for_consumer(deal, &remote).await);
        let store = self.store.clone();
        let checked_terms = terms.clone();
        let commitment = refuse!(
            spawn_blocking(move || -> Result<Commitment, Refusal> {
                let held: Vec<PieceSlot> = store
                    .deal_records(deal)
                    .map_err(store_refusal)?
                    .iter()
                    .map(|record| PieceSlot {
                        piece: record.piece,
                        root: record.root,
                        leaf_count: record.leaf_count,
                    })
                    .collect();
                commitment
                    .check(&held, &checked_terms)
                    .map_err(Refusal::Commitment)?;
                Ok(commitment)
            })
            .await
            .unwrap_or_else(|err| Err(Refusal::Internal(format!("checking failed: {err}"))))
        );
        let signature = refuse!(
            self.signer
                .sign_commitment(&commitment, &terms)
                .await
                .map_err(|err| Refusal::SigningFailed(err.to_string()))
        );
        info!(%deal, version = commitment.version, root = %commitment.root, "signed a commitment");
        answer(send, &Response::Signed { signature }).await
    }
}

/// Writes `response` and finishes the stream.
async fn reply(send: &mut GuardedSend, response: &Response) -> Result<(), FrameError> {
    let Some(stream) = send.stream() else {
        return Err(FrameError::Stream("the stream is closed".to_string()));
    };
    write_frame(stream, response).await?;
    send.finish()
}

async fn answer(send: &mut GuardedSend, response: &Response) -> Outcome {
    match reply(send, response).await {
        Ok(()) => Outcome::Served,
        Err(_) => Outcome::Aborted("stream"),
    }
}

fn store_refusal(err: StoreError) -> Refusal {
    if matches!(err, StoreError::Io { .. } | StoreError::Index(_)) {
        error!(error = %err, "the piece store failed");
    }
    err.to_refusal()
}

/// Runs store work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Refusal> {
    match spawn_blocking(work).await {
        Ok(result) => result.map_err(store_refusal),
        Err(err) => {
            error!(error = %err, "a piece store task failed");
            Err(Refusal::Internal("a storage task failed".to_string()))
        }
    }
}

/// How often and how fast the scrub re-hashes the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrubConfig {
    /// Bytes re-hashed per second at most (0: no scrub).
    pub bytes_per_sec: u64,
    /// Pause between the end of a pass and the start of the next.
    pub pass_interval: Duration,
}

impl Default for ScrubConfig {
    /// 32 MiB/s (a TB a little under once every nine hours), a pass an hour.
    fn default() -> Self {
        ScrubConfig {
            bytes_per_sec: 32 << 20,
            pass_interval: Duration::from_secs(3600),
        }
    }
}

/// Runs scrub passes over `store` until `stop` is cancelled. Rotted pieces
/// are logged, counted in the metrics and dropped from the store.
pub fn spawn_scrubber(
    store: PieceStore,
    config: ScrubConfig,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if config.bytes_per_sec == 0 {
            return;
        }
        loop {
            let pass_store = store.clone();
            let pass_stop = stop.clone();
            let pass = spawn_blocking(move || {
                pass_store.scrub(config.bytes_per_sec, &|| !pass_stop.is_cancelled())
            })
            .await;
            match pass {
                Ok(Ok(report)) if !report.rotted.is_empty() => {
                    warn!(
                        rotted = report.rotted.len(),
                        pieces = report.pieces_checked,
                        "the scrub found rotted pieces and dropped them"
                    );
                }
                Ok(Ok(report)) => {
                    debug!(
                        pieces = report.pieces_checked,
                        bytes = report.bytes_checked,
                        "scrub pass done"
                    );
                }
                Ok(Err(err)) => error!(error = %err, "a scrub pass failed"),
                Err(err) => error!(error = %err, "a scrub pass panicked"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(config.pass_interval) => {}
            }
        }
    })
}

/// What a provider node needs besides its key, its deal authority and its
/// signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    /// The piece store.
    pub store: StoreConfig,
    /// The endpoint.
    pub transport: TransportConfig,
    /// The piece service.
    pub service: ServiceConfig,
    /// The scrub.
    pub scrub: ScrubConfig,
}

/// Why a provider node did not start.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The piece store did not open.
    #[error("the piece store did not open: {0}")]
    Store(#[from] StoreError),
    /// The endpoint did not bind.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A task failed.
    #[error("a provider task failed: {0}")]
    Task(String),
}

/// A running provider: endpoint, piece service, store and scrub.
#[derive(Debug)]
pub struct ProviderNode {
    router: Router,
    store: PieceStore,
    metrics: ProviderMetrics,
    recovery: RecoveryReport,
    faults: FaultInjection,
    stop: CancellationToken,
    scrubber: JoinHandle<()>,
}

impl ProviderNode {
    /// Opens the store (recovering from an unclean stop), binds the endpoint
    /// with `secret`, serves the piece protocol and starts the scrub.
    pub async fn start<A: DealAuthority, S: CommitmentSigner>(
        config: &ProviderConfig,
        secret: &NodeSecret,
        authority: A,
        signer: S,
    ) -> Result<ProviderNode, ProviderError> {
        let metrics = ProviderMetrics::new();
        let store_config = config.store.clone();
        let store_metrics = metrics.clone();
        let (store, recovery) =
            spawn_blocking(move || PieceStore::open(&store_config, store_metrics))
                .await
                .map_err(|err| ProviderError::Task(err.to_string()))??;
        let endpoint = bind_endpoint(secret, &config.transport, vec![]).await?;
        let service = PieceService::new(
            store.clone(),
            authority,
            signer,
            config.service.clone(),
            metrics.clone(),
        );
        let faults = service.faults();
        let router = Router::builder(endpoint)
            .accept(PIECE_ALPN, service)
            .spawn();
        let stop = CancellationToken::new();
        let scrubber = spawn_scrubber(store.clone(), config.scrub, stop.clone());
        info!(node = %router.endpoint().id(), addrs = ?router.endpoint().addr().ip_addrs().collect::<Vec<_>>(),
            "provider serving the piece protocol");
        Ok(ProviderNode {
            router,
            store,
            metrics,
            recovery,
            faults,
            stop,
            scrubber,
        })
    }

    /// The node's endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        self.router.endpoint()
    }

    /// The address peers dial: node id and direct addresses.
    pub fn addr(&self) -> EndpointAddr {
        self.router.endpoint().addr()
    }

    /// The piece store.
    pub fn store(&self) -> &PieceStore {
        &self.store
    }

    /// The node's metrics (register them to export them).
    pub fn metrics(&self) -> &ProviderMetrics {
        &self.metrics
    }

    /// What opening the store repaired.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The node's fault injection (for tests: set a response delay on a
    /// running node).
    pub fn faults(&self) -> &FaultInjection {
        &self.faults
    }

    /// Stops the scrub, closes the endpoint and waits for both.
    pub async fn shutdown(self) -> Result<(), ProviderError> {
        self.stop.cancel();
        let routed = self.router.shutdown().await;
        let scrubbed = self.scrubber.await;
        routed.map_err(|err| ProviderError::Task(err.to_string()))?;
        scrubbed.map_err(|err| ProviderError::Task(err.to_string()))
    }
}
