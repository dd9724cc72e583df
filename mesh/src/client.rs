//! The requester side of the piece protocol, used by the gateway.
//!
//! [`PieceClient`] keeps one connection per provider and runs each request
//! on its own stream, so many requests to one provider run at once. Every
//! call is bounded by a timeout, and every call is cancellation-safe:
//! dropping its future resets the stream, so the provider sees an abandoned
//! request (an abandoned upload stores nothing) rather than a complete one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dbytes_ledger::commitment::leaf_count_for;
use dbytes_ledger::piece::PieceId;
use iroh::endpoint::{Connection, ReadError, RecvStream, SendStream, VarInt};
use iroh::{Endpoint, EndpointAddr, EndpointId};

use crate::audit::{AuditMismatch, check_audit, pick_leaves};
use crate::commitment::Commitment;
use crate::deal::DealId;
use crate::transport::{FrameError, GuardedSend, read_frame, write_frame};
use crate::wire::{
    AuditReply, ByteRange, MAX_AUDIT_LEAVES, MAX_FRAME_BYTES, MAX_PIECE_BYTES, PIECE_ALPN,
    ProviderStat, RESET_CANCELLED, RESET_CORRUPT, Refusal, Request, Response, StoredPiece,
};

/// Timeouts of a [`PieceClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Connecting to a provider.
    pub connect_timeout: Duration,
    /// A request without a piece body (stat, delete, audit, sign).
    pub request_timeout: Duration,
    /// A put or get of a piece, whole or a range.
    pub transfer_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            transfer_timeout: Duration::from_secs(120),
        }
    }
}

/// Why a request to a provider failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The provider could not be reached.
    #[error("could not connect to provider {node}: {reason}")]
    Connect {
        /// The provider.
        node: EndpointId,
        /// Why.
        reason: String,
    },
    /// The request took longer than its timeout (and was abandoned).
    #[error("{operation} to provider {node} timed out after {after:?}")]
    Timeout {
        /// The provider.
        node: EndpointId,
        /// The request's kind.
        operation: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The provider refused the request; nothing changed.
    #[error("provider {node} refused: {refusal}")]
    Refused {
        /// The provider.
        node: EndpointId,
        /// Its reason.
        refusal: Refusal,
    },
    /// The connection or stream failed mid-request.
    #[error("the stream to provider {node} failed: {reason}")]
    Stream {
        /// The provider.
        node: EndpointId,
        /// Why.
        reason: String,
    },
    /// The provider broke the protocol (a bad frame, an unexpected answer).
    #[error("provider {node} broke the piece protocol: {reason}")]
    Protocol {
        /// The provider.
        node: EndpointId,
        /// How.
        reason: String,
    },
    /// The piece the provider sent is not the piece asked for.
    #[error("provider {node} sent corrupt bytes for piece {piece}")]
    CorruptPiece {
        /// The provider.
        node: EndpointId,
        /// The piece.
        piece: PieceId,
    },
    /// An audit's proofs do not match the bytes sent.
    #[error("provider {node} failed an audit of piece {piece}: {mismatch}")]
    AuditFailed {
        /// The provider.
        node: EndpointId,
        /// The piece.
        piece: PieceId,
        /// What did not match.
        mismatch: AuditMismatch,
    },
    /// The request is invalid before it is sent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// Requests pieces from providers over one iroh endpoint. Cheap to clone;
/// clones share the connections.
#[derive(Debug, Clone)]
pub struct PieceClient {
    endpoint: Endpoint,
    config: ClientConfig,
    connections: Arc<Mutex<HashMap<EndpointId, Connection>>>,
}

impl PieceClient {
    /// A client dialing from `endpoint` (which need accept no ALPN).
    pub fn new(endpoint: Endpoint, config: ClientConfig) -> PieceClient {
        PieceClient {
            endpoint,
            config,
            connections: Arc::default(),
        }
    }

    /// The endpoint the client dials from.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Stores `bytes` as piece `piece` under `deal` on `provider`; returns
    /// the root and leaf count the provider computed. If the provider
    /// already holds the piece under the deal, returns the stored record
    /// without sending the bytes again.
    ///
    /// The caller should check the root ([`PieceClient::spot_check`]) before
    /// committing to it.
    pub async fn put_piece(
        &self,
        provider: &EndpointAddr,
        deal: DealId,
        piece: PieceId,
        bytes: &[u8],
    ) -> Result<StoredPiece, ClientError> {
        let node = provider.id;
        let length = bytes.len() as u64;
        if length > MAX_PIECE_BYTES {
            return Err(ClientError::InvalidRequest(format!(
                "a piece of {length} bytes exceeds the maximum of {MAX_PIECE_BYTES}"
            )));
        }
        let request = Request::PutPiece {
            deal,
            piece,
            length,
        };
        let response = self
            .bounded("put", node, self.config.transfer_timeout, async {
                let (send, mut recv) = self.open_stream(provider).await?;
                let mut send = GuardedSend::new(send, RESET_CANCELLED);
                let sent = send_request(&mut send, &request, bytes).await;
                // Read the answer even if sending failed: a provider that
                // refuses stops the stream and says why.
                match read_frame::<Response>(&mut recv, MAX_FRAME_BYTES).await {
                    Ok(response) => Ok(response),
                    Err(err) => Err(match sent {
                        Err(send_err) => frame_error(node, send_err),
                        Ok(()) => frame_error(node, err),
                    }),
                }
            })
            .await?;
        match response {
            Response::Stored(stored) => {
                if stored.length != length || stored.leaf_count != leaf_count_for(length) {
                    return Err(ClientError::Protocol {
                        node,
                        reason: format!(
                            "stored {} bytes in {} leaves for a piece of {length} bytes",
                            stored.length, stored.leaf_count
                        ),
                    });
                }
                Ok(stored)
            }
            other => Err(unexpected(node, other)),
        }
    }

    /// The whole piece, verified against its id.
    pub async fn get_piece(
        &self,
        provider: &EndpointAddr,
        deal: DealId,
        piece: PieceId,
    ) -> Result<Vec<u8>, ClientError> {
        self.get(provider, deal, piece, None).await
    }

    /// `length` bytes of the piece from `offset`. The provider checks only
    /// that its copy has the right length: the caller authenticates the
    /// bytes (the gateway's AEAD blocks do).
    pub async fn get_range(
        &self,
        provider: &EndpointAddr,
        deal: DealId,
        piece: PieceId,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, ClientError> {
        self.get(provider, deal, piece, Some(ByteRange { offset, length }))
            .await
    }

    async fn get(
        &self,
        provider: &EndpointAddr,
        deal: DealId,
        piece: PieceId,
        range: Option<ByteRange>,
    ) -> Result<Vec<u8>, ClientError> {
        let node = provider.id;
        let request = Request::GetPiece { deal, piece, range };
        let operation = if range.is_some() { "get_range" } else { "get" };
        self.bounded(operation, node, self.config.transfer_timeout, async {
            let (send, mut recv) = self.open_stream(provider).await?;
            let mut send = GuardedSend::new(send, RESET_CANCELLED);
            send_request(&mut send, &request, &[])
                .await
                .map_err(|err| frame_error(node, err))?;
            let response = read_frame::<Response>(&mut recv, MAX_FRAME_BYTES)
                .await
                .map_err(|err| frame_error(node, err))?;
            let length = match response {
                Response::Piece { length } => length,
                other => return Err(unexpected(node, other)),
            };
            let expected = range.map_or(MAX_PIECE_BYTES, |range| range.length);
            if length > expected.min(MAX_PIECE_BYTES) {
                return Err(ClientError::Protocol {
                    node,
                    reason: format!("announced {length} bytes, more than asked for"),
                });
            }
            if range.is_some_and(|range| range.length != length) {
                return Err(ClientError::Protocol {
                    node,
                    reason: format!("announced {length} bytes for a range of another length"),
                });
            }
            // A whole piece is hashed chunk by chunk as it arrives (not in
            // one go on the executor at the end).
            let mut hasher = range.is_none().then(blake3::Hasher::new);
            let bytes = read_body(&mut recv, length, node, piece, hasher.as_mut()).await?;
            if let Some(hasher) = hasher
                && hasher.finalize() != blake3::Hash::from_bytes(piece.0)
            {
                return Err(ClientError::CorruptPiece { node, piece });
            }
            Ok(bytes)
        })
        .await
    }

    /// The provider's capacity, usage, version and uptime.
    pub async fn stat(&self, provider: &EndpointAddr) -> Result<ProviderStat, ClientError> {
        match self.call(provider, "stat", &Request::Stat).await? {
            Response::Stat(stat) => Ok(stat),
            other => Err(unexpected(provider.id, other)),
        }
    }

    /// Deletes the piece; returns whether the provider held it.
    pub async fn delete_piece(
        &self,
        provider: &EndpointAddr,
        deal: DealId,
        piece: PieceId,
    ) -> Result<bool, ClientError> {
        let request = Request::DeletePiece { deal, piece };
        match self.call(provider, "delete", &request).await? {
            Response::Deleted { existed } => Ok(existed),
            other => Err(unexpected(provider.id, other)),
        }
    }

    /// Leaves of the piece with Merkle proofs against its root. The proofs
    /// are not checked here: see [`crate::audit::check_audit`].
    pub async fn audit(
        &self,
        provider: &EndpointAddr,
        deal: DealId,
        piece: PieceId,
        leaf_indexes: Vec<u64>,
    ) -> Result<AuditReply, ClientError> {
        if leaf_indexes.len() > MAX_AUDIT_LEAVES {
            return Err(ClientError::InvalidRequest(format!(
                "an audit asks for at most {MAX_AUDIT_LEAVES} leaves"
            )));
        }
        let request = Request::Audit {
            deal,
            piece,
            leaf_indexes,
        };
        match self.call(provider, "audit", &request).await? {
            Response::Audit(reply) => Ok(reply),
            other => Err(unexpected(provider.id, other)),
        }
    }

    /// Checks what a provider reported storing against the bytes sent:
    /// audits `leaves` random leaves and checks each proof leads to the
    /// reported root and each leaf is the one sent. A root over data altered
    /// in a fraction `f` of its leaves passes with probability `(1-f)^leaves`.
    pub async fn spot_check(
        &self,
        provider: &EndpointAddr,
        deal: DealId,
        piece: PieceId,
        bytes: &[u8],
        stored: &StoredPiece,
        leaves: usize,
    ) -> Result<(), ClientError> {
        let indexes = pick_leaves(
            &mut rand::thread_rng(),
            stored.leaf_count,
            leaves.min(MAX_AUDIT_LEAVES),
        );
        let reply = self.audit(provider, deal, piece, indexes.clone()).await?;
        check_audit(bytes, stored, &indexes, &reply).map_err(|mismatch| ClientError::AuditFailed {
            node: provider.id,
            piece,
            mismatch,
        })
    }

    /// The provider's signature of `commitment`, given after it checked that
    /// it holds exactly the listed pieces and they make the root.
    pub async fn sign_commitment(
        &self,
        provider: &EndpointAddr,
        commitment: &Commitment,
    ) -> Result<Vec<u8>, ClientError> {
        let request = Request::SignCommitment(commitment.clone());
        match self.call(provider, "sign_commitment", &request).await? {
            Response::Signed { signature } => Ok(signature),
            other => Err(unexpected(provider.id, other)),
        }
    }

    /// Forgets the connection to `node` (e.g. after it misbehaved).
    pub fn disconnect(&self, node: EndpointId) {
        if let Some(connection) = self.lock().remove(&node) {
            connection.close(VarInt::from_u32(0), b"disconnect");
        }
    }

    /// A request with no body in either direction.
    async fn call(
        &self,
        provider: &EndpointAddr,
        operation: &'static str,
        request: &Request,
    ) -> Result<Response, ClientError> {
        let node = provider.id;
        self.bounded(operation, node, self.config.request_timeout, async {
            let (send, mut recv) = self.open_stream(provider).await?;
            let mut send = GuardedSend::new(send, RESET_CANCELLED);
            send_request(&mut send, request, &[])
                .await
                .map_err(|err| frame_error(node, err))?;
            read_frame::<Response>(&mut recv, MAX_FRAME_BYTES)
                .await
                .map_err(|err| frame_error(node, err))
        })
        .await
    }

    async fn bounded<T>(
        &self,
        operation: &'static str,
        node: EndpointId,
        after: Duration,
        work: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        let result = tokio::time::timeout(after, work)
            .await
            .map_err(|_| ClientError::Timeout {
                node,
                operation,
                after,
            })?;
        if let Err(ClientError::Refused { refusal, .. }) = &result {
            tracing::debug!(%node, operation, %refusal, "provider refused");
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EndpointId, Connection>> {
        // The map only holds connection handles; a panic mid-insert leaves
        // it usable.
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new stream to `provider`, over the cached connection if it still
    /// works, else over a new one.
    async fn open_stream(
        &self,
        provider: &EndpointAddr,
    ) -> Result<(SendStream, RecvStream), ClientError> {
        let node = provider.id;
        let connection = self.connection(provider).await?;
        match connection.open_bi().await {
            Ok(streams) => Ok(streams),
            Err(_) => {
                // The provider closed it (a restart, an idle timeout): dial
                // again, once.
                {
                    let mut connections = self.lock();
                    if connections
                        .get(&node)
                        .is_some_and(|cached| cached.stable_id() == connection.stable_id())
                    {
                        connections.remove(&node);
                    }
                }
                let connection = self.connection(provider).await?;
                connection
                    .open_bi()
                    .await
                    .map_err(|err| stream_error(node, err))
            }
        }
    }

    async fn connection(&self, provider: &EndpointAddr) -> Result<Connection, ClientError> {
        let node = provider.id;
        if let Some(connection) = self.lock().get(&node)
            && connection.close_reason().is_none()
        {
            return Ok(connection.clone());
        }
        let connection = tokio::time::timeout(
            self.config.connect_timeout,
            self.endpoint.connect(provider.clone(), PIECE_ALPN),
        )
        .await
        .map_err(|_| ClientError::Timeout {
            node,
            operation: "connect",
            after: self.config.connect_timeout,
        })?
        .map_err(|err| ClientError::Connect {
            node,
            reason: err.to_string(),
        })?;
        self.lock().insert(node, connection.clone());
        Ok(connection)
    }
}

/// Writes the request frame and `body`, then finishes the stream.
async fn send_request(
    send: &mut GuardedSend,
    request: &Request,
    body: &[u8],
) -> Result<(), FrameError> {
    let Some(stream) = send.stream() else {
        return Err(FrameError::Stream("the stream is closed".to_string()));
    };
    write_frame(stream, request).await?;
    if !body.is_empty() {
        stream
            .write_all(body)
            .await
            .map_err(|err| FrameError::Stream(err.to_string()))?;
    }
    send.finish()
}

/// Bytes of a whole piece hashed at a time as they arrive: enough for
/// BLAKE3's widest SIMD batch, little enough to hash while the rest streams.
const HASH_BATCH_BYTES: usize = 64 << 10;

/// Reads exactly `length` bytes and then the stream's clean end.
async fn read_body(
    recv: &mut RecvStream,
    length: u64,
    node: EndpointId,
    piece: PieceId,
    mut hasher: Option<&mut blake3::Hasher>,
) -> Result<Vec<u8>, ClientError> {
    let read_failed = |err: ReadError| match err {
        ReadError::Reset(code) if code == VarInt::from_u32(RESET_CORRUPT) => {
            ClientError::CorruptPiece { node, piece }
        }
        other => stream_error(node, other),
    };
    // Grow with the bytes that arrive rather than trusting the announced
    // length (already bounded by MAX_PIECE_BYTES).
    let length = length as usize;
    let mut bytes = Vec::with_capacity(length.min(4 << 20));
    // QUIC hands over a packet's worth (~1 KiB) at a time; BLAKE3 only
    // hashes several of its 1 KiB chunks at once (SIMD) when given them
    // together, so hash in batches, about 4x cheaper than per packet.
    let mut hashed = 0;
    while bytes.len() < length {
        match recv.read_chunk(length - bytes.len()).await {
            Ok(Some(chunk)) => {
                bytes.extend_from_slice(&chunk);
                if let Some(hasher) = hasher.as_mut()
                    && (bytes.len() - hashed >= HASH_BATCH_BYTES || bytes.len() == length)
                {
                    hasher.update(&bytes[hashed..]);
                    hashed = bytes.len();
                }
            }
            Ok(None) => {
                return Err(ClientError::Protocol {
                    node,
                    reason: format!("the piece ended after {} of {length} bytes", bytes.len()),
                });
            }
            Err(err) => return Err(read_failed(err)),
        }
    }
    // Only a clean end vouches for the bytes: a provider that found its copy
    // corrupt resets instead.
    match recv.read(&mut [0u8; 1]).await {
        Ok(None) => Ok(bytes),
        Ok(Some(_)) => Err(ClientError::Protocol {
            node,
            reason: "more bytes than announced".to_string(),
        }),
        Err(err) => Err(read_failed(err)),
    }
}

fn stream_error(node: EndpointId, err: impl std::fmt::Display) -> ClientError {
    ClientError::Stream {
        node,
        reason: err.to_string(),
    }
}

fn frame_error(node: EndpointId, err: FrameError) -> ClientError {
    match err {
        FrameError::Ended => ClientError::Protocol {
            node,
            reason: "the provider closed the stream without an answer".to_string(),
        },
        FrameError::Wire(err) => ClientError::Protocol {
            node,
            reason: err.to_string(),
        },
        FrameError::Stream(reason) => ClientError::Stream { node, reason },
    }
}

fn unexpected(node: EndpointId, response: Response) -> ClientError {
    match response {
        Response::Refused(refusal) => ClientError::Refused { node, refusal },
        other => ClientError::Protocol {
            node,
            reason: format!("unexpected answer {other:?}"),
        },
    }
}
