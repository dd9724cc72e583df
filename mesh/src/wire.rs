//! The piece protocol's messages and their encoding.
//!
//! Every request runs on its own QUIC bidirectional stream of a connection
//! negotiated with ALPN [`PIECE_ALPN`]. The requester writes one *frame*
//! holding a [`Request`], then (for [`Request::PutPiece`] only) exactly
//! `length` raw piece bytes, then finishes its side. The provider answers
//! with one frame holding a [`Response`], then (for [`Response::Piece`]
//! only) exactly `length` raw bytes, then finishes. A refusal is a
//! [`Response::Refused`] frame, never a silently dropped stream; a provider
//! that refuses a put before reading its body also stops the stream with
//! [`STOP_ANSWERED`] so the uploader stops sending.
//!
//! A frame is a 4-byte big-endian length, then that many bytes of the
//! message in postcard (serde's compact binary format: varint integers,
//! length-prefixed sequences). A length above the reader's maximum
//! ([`MAX_FRAME_BYTES`]) is refused before anything is allocated. Every
//! list and string in a message has its own maximum ([`MAX_AUDIT_LEAVES`],
//! [`MAX_COMMITMENT_PIECES`], [`MAX_SIGNATURE_BYTES`], [`MAX_TEXT_BYTES`],
//! a proof's leaf and depth), checked against the declared length before
//! anything is allocated for it and again while its entries decode, so a
//! frame never costs more memory than a small multiple of its own size
//! (a list of one-byte varints would otherwise cost eight times the frame).
//! A frame that breaks such a limit fails with [`WireError::TooManyEntries`],
//! which names the field and the limit.
//!
//! Ids, roots and deal ids travel as raw 32-byte arrays (the serde helpers
//! `raw_*` here), not as the hex strings their human-facing serde forms use.
//!
//! This module is pure: bytes in, values out. The stream I/O that calls it is
//! in [`crate::transport`].

use alloy_primitives::B256;
use dbytes_ledger::commitment::MerkleProof;
use dbytes_ledger::piece::PieceId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::commitment::{Commitment, CommitmentProblem, MAX_COMMITMENT_PIECES};
use crate::deal::DealId;

/// The ALPN of the piece protocol; the suffix is its version.
pub const PIECE_ALPN: &[u8] = b"dbytes/piece/1";

/// The version of the piece protocol, as [`ProviderStat`] reports it.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame either side reads: room for a commitment of
/// [`MAX_COMMITMENT_PIECES`] piece ids.
pub const MAX_FRAME_BYTES: usize = 32 * MAX_COMMITMENT_PIECES + (1 << 20);

/// The largest piece a provider accepts (the gateway's pieces are at most
/// 32 MiB: a segment of ~32 MiB over k ≥ 1 data pieces).
pub const MAX_PIECE_BYTES: u64 = 64 << 20;

/// The most leaves one audit may ask for.
pub const MAX_AUDIT_LEAVES: usize = 256;

/// The longest signature a provider may return (an EIP-712 signature is 65
/// bytes).
pub const MAX_SIGNATURE_BYTES: usize = 1024;

/// The longest text in a message (a refusal's reason, a software version).
pub const MAX_TEXT_BYTES: usize = 4096;

/// Stream error code: the provider answered before reading the whole
/// request (a refusal, or a put of a piece it already holds) and stopped
/// reading; the answer is in the response frame.
pub const STOP_ANSWERED: u32 = 1;

/// Stream error code: the provider found its copy of the piece corrupt while
/// sending it and abandoned the stream (the bytes sent must be discarded).
pub const RESET_CORRUPT: u32 = 2;

/// Stream error code: the requester gave up on the request (cancelled or
/// timed out).
pub const RESET_CANCELLED: u32 = 3;

/// A request: the first frame of every stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Store a piece under a deal; exactly `length` bytes follow the frame.
    PutPiece {
        /// The deal paying for the piece.
        #[serde(with = "raw_deal_id")]
        deal: DealId,
        /// The BLAKE3 hash of the bytes that follow.
        #[serde(with = "raw_piece_id")]
        piece: PieceId,
        /// How many bytes follow.
        length: u64,
    },
    /// Read a piece, whole or a byte range.
    GetPiece {
        /// The deal the piece is stored under.
        #[serde(with = "raw_deal_id")]
        deal: DealId,
        /// The piece.
        #[serde(with = "raw_piece_id")]
        piece: PieceId,
        /// The bytes wanted; `None` for the whole piece (which the provider
        /// verifies against its id while sending).
        range: Option<ByteRange>,
    },
    /// The provider's capacity, usage, version and uptime.
    Stat,
    /// Delete a piece (the deal's consumer only).
    DeletePiece {
        /// The deal the piece is stored under.
        #[serde(with = "raw_deal_id")]
        deal: DealId,
        /// The piece.
        #[serde(with = "raw_piece_id")]
        piece: PieceId,
    },
    /// Leaves of a piece with their Merkle proofs against the piece's root.
    Audit {
        /// The deal the piece is stored under.
        #[serde(with = "raw_deal_id")]
        deal: DealId,
        /// The piece.
        #[serde(with = "raw_piece_id")]
        piece: PieceId,
        /// The leaves wanted (at most [`MAX_AUDIT_LEAVES`]).
        #[serde(deserialize_with = "bounded::audit_leaf_indexes")]
        leaf_indexes: Vec<u64>,
    },
    /// Check a commitment against the pieces held and sign it.
    SignCommitment(Commitment),
}

impl Request {
    /// A short name of the request's kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::PutPiece { .. } => "put",
            Request::GetPiece { range: None, .. } => "get",
            Request::GetPiece { range: Some(_), .. } => "get_range",
            Request::Stat => "stat",
            Request::DeletePiece { .. } => "delete",
            Request::Audit { .. } => "audit",
            Request::SignCommitment(_) => "sign_commitment",
        }
    }

    /// Checks the limits a well-formed request keeps.
    pub fn check_limits(&self) -> Result<(), Refusal> {
        match self {
            Request::PutPiece { length, .. } if *length > MAX_PIECE_BYTES => {
                Err(Refusal::PieceTooLarge {
                    length: *length,
                    max: MAX_PIECE_BYTES,
                })
            }
            Request::Audit { leaf_indexes, .. } if leaf_indexes.len() > MAX_AUDIT_LEAVES => {
                Err(Refusal::TooManyLeaves {
                    requested: leaf_indexes.len(),
                    max: MAX_AUDIT_LEAVES,
                })
            }
            Request::SignCommitment(commitment)
                if commitment.pieces.len() > MAX_COMMITMENT_PIECES =>
            {
                Err(Refusal::Commitment(CommitmentProblem::TooManyPieces {
                    pieces: commitment.pieces.len(),
                    max: MAX_COMMITMENT_PIECES,
                }))
            }
            _ => Ok(()),
        }
    }
}

/// A byte range of a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    /// The first byte.
    pub offset: u64,
    /// How many bytes.
    pub length: u64,
}

/// A response: the first frame the provider writes on a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The piece is stored (now, or it already was).
    Stored(StoredPiece),
    /// Exactly `length` bytes of the piece follow; they are valid only if the
    /// stream then finishes cleanly (a provider that finds its copy corrupt
    /// resets the stream with [`RESET_CORRUPT`] instead).
    Piece {
        /// How many bytes follow.
        length: u64,
    },
    /// The provider's state.
    Stat(ProviderStat),
    /// The piece is gone (`existed` says whether there was one to delete).
    Deleted {
        /// Whether the piece was stored.
        existed: bool,
    },
    /// The leaves asked for, with proofs.
    Audit(AuditReply),
    /// The provider's signature of the commitment.
    Signed {
        /// The signature, opaque to the mesh (EIP-712 from the chain client).
        #[serde(deserialize_with = "bounded::signature")]
        signature: Vec<u8>,
    },
    /// The request was refused; nothing changed.
    Refused(Refusal),
}

/// What a provider reports of a piece it stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPiece {
    /// The piece's length in bytes.
    pub length: u64,
    /// The root of the piece's proof tree, as the provider computed it from
    /// the bytes it received.
    #[serde(with = "raw_b256")]
    pub root: B256,
    /// The piece's leaf count.
    pub leaf_count: u64,
}

/// A provider's state, as [`Request::Stat`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStat {
    /// The piece protocol version ([`PROTOCOL_VERSION`]).
    pub protocol_version: u32,
    /// The provider software's version.
    #[serde(deserialize_with = "bounded::text")]
    pub software_version: String,
    /// The bytes the provider offers in total.
    pub capacity_bytes: u64,
    /// The bytes of pieces stored (and being stored).
    pub used_bytes: u64,
    /// The number of pieces stored.
    pub piece_count: u64,
    /// Seconds since the provider started.
    pub uptime_secs: u64,
}

/// Leaves of a piece with proofs against its root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReply {
    /// The piece's root (as recorded when it was stored).
    #[serde(with = "raw_b256")]
    pub root: B256,
    /// The piece's leaf count.
    pub leaf_count: u64,
    /// One proof per requested leaf, in the order asked.
    #[serde(with = "raw_proofs")]
    pub proofs: Vec<MerkleProof>,
}

/// Why a provider refused a request. Nothing was changed by a refused
/// request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// The deal does not exist.
    #[error("the provider knows no deal {0}")]
    UnknownDeal(#[serde(with = "raw_deal_id")] DealId),
    /// The deal exists but is not running.
    #[error("deal {0} is not active: it takes no pieces or commitments")]
    DealNotActive(#[serde(with = "raw_deal_id")] DealId),
    /// The deal is another provider's.
    #[error("deal {0} is with another provider")]
    NotThisProvider(#[serde(with = "raw_deal_id")] DealId),
    /// Only the deal's consumer may put, delete and ask for signatures.
    #[error("only the consumer node of deal {0} may do this")]
    NotConsumer(#[serde(with = "raw_deal_id")] DealId),
    /// Only the consumer and its repairers may read.
    #[error("only the consumer of deal {0} and the repairers it authorised may read its pieces")]
    NotAuthorisedReader(#[serde(with = "raw_deal_id")] DealId),
    /// The piece does not fit what is left of the deal's capacity.
    #[error(
        "deal {deal} has {used_bytes} of {capacity_bytes} bytes in use; {requested_bytes} more do not fit: delete pieces or enlarge the deal"
    )]
    OverDealCapacity {
        /// The deal.
        #[serde(with = "raw_deal_id")]
        deal: DealId,
        /// The deal's capacity.
        capacity_bytes: u64,
        /// Bytes of the deal stored or being stored.
        used_bytes: u64,
        /// The piece's length.
        requested_bytes: u64,
    },
    /// The provider's configured capacity is used up.
    #[error(
        "the provider's store is full: {used_bytes} of {capacity_bytes} bytes in use, {requested_bytes} more do not fit"
    )]
    StoreFull {
        /// The provider's capacity.
        capacity_bytes: u64,
        /// Bytes stored or being stored.
        used_bytes: u64,
        /// The piece's length.
        requested_bytes: u64,
    },
    /// The provider's disk ran out of space before its configured capacity.
    #[error("the provider's disk is full")]
    DiskFull,
    /// The piece is larger than any provider accepts.
    #[error("a piece of {length} bytes exceeds the maximum of {max}")]
    PieceTooLarge {
        /// The declared length.
        length: u64,
        /// [`MAX_PIECE_BYTES`].
        max: u64,
    },
    /// The bytes received do not hash to the piece id; nothing was stored.
    #[error(
        "the bytes received hash to {actual}, not to the piece id {expected}; nothing was stored"
    )]
    PieceIdMismatch {
        /// The id in the request.
        #[serde(with = "raw_piece_id")]
        expected: PieceId,
        /// The BLAKE3 of the bytes received.
        #[serde(with = "raw_piece_id")]
        actual: PieceId,
    },
    /// The stream ended before the declared length; nothing was stored.
    #[error("the upload ended after {received} of {expected} bytes; nothing was stored")]
    Truncated {
        /// The declared length.
        expected: u64,
        /// Bytes received.
        received: u64,
    },
    /// More bytes arrived than declared; nothing was stored.
    #[error("more than the declared {expected} bytes arrived; nothing was stored")]
    TooLong {
        /// The declared length.
        expected: u64,
    },
    /// The provider holds no such piece under the deal.
    #[error("the provider holds no piece {piece} under deal {deal}")]
    NotFound {
        /// The deal.
        #[serde(with = "raw_deal_id")]
        deal: DealId,
        /// The piece.
        #[serde(with = "raw_piece_id")]
        piece: PieceId,
    },
    /// The range is not inside the piece.
    #[error("bytes {offset}..+{length} are outside the piece's {piece_length} bytes")]
    RangeOutOfBounds {
        /// The range's start.
        offset: u64,
        /// The range's length.
        length: u64,
        /// The piece's length.
        piece_length: u64,
    },
    /// An audit asked for too many leaves.
    #[error("an audit may ask for at most {max} leaves, not {requested}")]
    TooManyLeaves {
        /// Leaves asked for.
        requested: usize,
        /// [`MAX_AUDIT_LEAVES`].
        max: usize,
    },
    /// An audit asked for a leaf past the piece's end.
    #[error("leaf {index} is outside the piece's {leaf_count} leaves")]
    LeafOutOfRange {
        /// The index asked for.
        index: u64,
        /// The piece's leaf count.
        leaf_count: u64,
    },
    /// The commitment is not what the provider holds.
    #[error("the provider will not sign this commitment: {0}")]
    Commitment(CommitmentProblem),
    /// The provider's signer failed.
    #[error("the provider could not sign: {0}")]
    SigningFailed(#[serde(deserialize_with = "bounded::text")] String),
    /// The provider found its copy of the piece corrupt and dropped it.
    #[error("the provider's copy of piece {0} was corrupt and has been dropped; repair it")]
    Corrupt(#[serde(with = "raw_piece_id")] PieceId),
    /// The provider could not check the deal (chain unreachable); retry later.
    #[error("the provider cannot check deals right now ({0}); retry later")]
    Unavailable(#[serde(deserialize_with = "bounded::text")] String),
    /// The request broke the protocol.
    #[error("malformed request: {0}")]
    Malformed(#[serde(deserialize_with = "bounded::text")] String),
    /// The provider failed in a way the requester cannot fix.
    #[error("the provider failed: {0}")]
    Internal(#[serde(deserialize_with = "bounded::text")] String),
}

impl Refusal {
    /// A short name of the refusal, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::UnknownDeal(_) => "unknown_deal",
            Refusal::DealNotActive(_) => "deal_not_active",
            Refusal::NotThisProvider(_) => "not_this_provider",
            Refusal::NotConsumer(_) => "not_consumer",
            Refusal::NotAuthorisedReader(_) => "not_authorised_reader",
            Refusal::OverDealCapacity { .. } => "over_deal_capacity",
            Refusal::StoreFull { .. } => "store_full",
            Refusal::DiskFull => "disk_full",
            Refusal::PieceTooLarge { .. } => "piece_too_large",
            Refusal::PieceIdMismatch { .. } => "piece_id_mismatch",
            Refusal::Truncated { .. } => "truncated",
            Refusal::TooLong { .. } => "too_long",
            Refusal::NotFound { .. } => "not_found",
            Refusal::RangeOutOfBounds { .. } => "range_out_of_bounds",
            Refusal::TooManyLeaves { .. } => "too_many_leaves",
            Refusal::LeafOutOfRange { .. } => "leaf_out_of_range",
            Refusal::Commitment(_) => "commitment",
            Refusal::SigningFailed(_) => "signing_failed",
            Refusal::Corrupt(_) => "corrupt",
            Refusal::Unavailable(_) => "unavailable",
            Refusal::Malformed(_) => "malformed",
            Refusal::Internal(_) => "internal",
        }
    }
}

/// Why bytes did not decode into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A frame's declared length exceeds the reader's maximum.
    #[error("a frame of {length} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// The declared length.
        length: u64,
        /// The maximum.
        max: usize,
    },
    /// Fewer bytes than the frame declares.
    #[error("the frame is truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// The frame's body is not a valid message.
    #[error("the frame does not decode: {0}")]
    Decode(String),
    /// The message ends before the frame does.
    #[error("{0} bytes follow the message inside its frame")]
    TrailingBytes(usize),
    /// A list or text in the message is longer than its field allows.
    #[error("{field} holds more than the {max} entries allowed")]
    TooManyEntries {
        /// The message and field, like `Request::Audit.leaf_indexes`.
        field: &'static str,
        /// The field's maximum.
        max: usize,
    },
    /// The message could not be encoded (a bug: every message type encodes).
    #[error("the message does not encode: {0}")]
    Encode(String),
}

/// Bytes of a frame's length prefix.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// `message` as a frame: length prefix and body.
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, WireError> {
    let mut frame = vec![0u8; FRAME_PREFIX_BYTES];
    frame =
        postcard::to_extend(message, frame).map_err(|err| WireError::Encode(err.to_string()))?;
    let body_len = frame.len() - FRAME_PREFIX_BYTES;
    let prefix = u32::try_from(body_len).map_err(|_| WireError::FrameTooLarge {
        length: body_len as u64,
        max: u32::MAX as usize,
    })?;
    frame[..FRAME_PREFIX_BYTES].copy_from_slice(&prefix.to_be_bytes());
    Ok(frame)
}

/// The body length a frame prefix declares, refused above `max`.
pub fn frame_body_len(prefix: [u8; FRAME_PREFIX_BYTES], max: usize) -> Result<usize, WireError> {
    let length = u32::from_be_bytes(prefix) as usize;
    if length > max {
        return Err(WireError::FrameTooLarge {
            length: length as u64,
            max,
        });
    }
    Ok(length)
}

/// Decodes a frame's body, which must hold exactly one message.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    bounded::clear_broken_limit();
    let (message, rest) = postcard::take_from_bytes(body).map_err(|err| {
        // postcard drops the text of custom errors; the bounded fields
        // leave theirs behind.
        bounded::take_broken_limit().unwrap_or_else(|| WireError::Decode(err.to_string()))
    })?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes(rest.len()));
    }
    Ok(message)
}

/// Decodes one whole frame (prefix and body) from `bytes`; returns the
/// message and the bytes the frame took.
pub fn decode_frame<T: DeserializeOwned>(
    bytes: &[u8],
    max: usize,
) -> Result<(T, usize), WireError> {
    let prefix: [u8; FRAME_PREFIX_BYTES] = bytes
        .get(..FRAME_PREFIX_BYTES)
        .and_then(|prefix| prefix.try_into().ok())
        .ok_or(WireError::Truncated {
            needed: FRAME_PREFIX_BYTES,
            available: bytes.len(),
        })?;
    let body_len = frame_body_len(prefix, max)?;
    let end = FRAME_PREFIX_BYTES + body_len;
    let body = bytes
        .get(FRAME_PREFIX_BYTES..end)
        .ok_or(WireError::Truncated {
            needed: end,
            available: bytes.len(),
        })?;
    Ok((decode_body(body)?, end))
}

/// Decoders for the lists and texts of messages that refuse more entries
/// than their field allows, before allocating for them.
pub(crate) mod bounded {
    use std::cell::Cell;
    use std::fmt;
    use std::marker::PhantomData;

    use serde::Deserialize;
    use serde::de::{self, Deserializer, SeqAccess, Visitor};

    use super::{MAX_AUDIT_LEAVES, MAX_SIGNATURE_BYTES, MAX_TEXT_BYTES, WireError};
    use crate::commitment::MAX_COMMITMENT_PIECES;
    use dbytes_ledger::commitment::{LEAF_SIZE, MAX_DEPTH};

    /// What a list allocates up front at most, whatever it declares: the
    /// rest grows with entries that actually decode.
    const PREALLOCATE_BYTES: usize = 4096;

    thread_local! {
        /// The limit the last decode on this thread broke: postcard keeps
        /// no text for custom errors, so the field is passed on here.
        static BROKEN: Cell<Option<(&'static str, usize)>> = const { Cell::new(None) };
    }

    pub(super) fn clear_broken_limit() {
        BROKEN.with(|broken| broken.set(None));
    }

    pub(super) fn take_broken_limit() -> Option<WireError> {
        BROKEN
            .with(|broken| broken.take())
            .map(|(field, max)| WireError::TooManyEntries { field, max })
    }

    fn broke<E: de::Error>(field: &'static str, max: usize) -> E {
        BROKEN.with(|broken| broken.set(Some((field, max))));
        E::custom(WireError::TooManyEntries { field, max })
    }

    /// A list of at most `max` entries of `T`.
    pub(crate) fn list<'de, D, T>(
        deserializer: D,
        field: &'static str,
        max: usize,
    ) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        struct Bounded<T> {
            field: &'static str,
            max: usize,
            entries: PhantomData<T>,
        }

        impl<'de, T: Deserialize<'de>> Visitor<'de> for Bounded<T> {
            type Value = Vec<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "{} (at most {} entries)", self.field, self.max)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
                // postcard hints the declared length when the input can hold
                // it, nothing otherwise; entries are counted either way.
                let declared = seq.size_hint().unwrap_or(0);
                if declared > self.max {
                    return Err(broke(self.field, self.max));
                }
                let room = PREALLOCATE_BYTES / std::mem::size_of::<T>().max(1);
                let mut entries = Vec::with_capacity(declared.min(room));
                while let Some(entry) = seq.next_element()? {
                    if entries.len() == self.max {
                        return Err(broke(self.field, self.max));
                    }
                    entries.push(entry);
                }
                Ok(entries)
            }
        }

        deserializer.deserialize_seq(Bounded {
            field,
            max,
            entries: PhantomData,
        })
    }

    /// A text of at most `max` bytes; decoded in place before it is copied.
    fn bounded_text<'de, D: Deserializer<'de>>(
        deserializer: D,
        field: &'static str,
        max: usize,
    ) -> Result<String, D::Error> {
        struct Bounded {
            field: &'static str,
            max: usize,
        }

        impl Visitor<'_> for Bounded {
            type Value = String;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "{} (at most {} bytes of UTF-8)", self.field, self.max)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<String, E> {
                if text.len() > self.max {
                    return Err(broke(self.field, self.max));
                }
                Ok(text.to_string())
            }
        }

        deserializer.deserialize_str(Bounded { field, max })
    }

    pub(crate) fn audit_leaf_indexes<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u64>, D::Error> {
        list(
            deserializer,
            "Request::Audit.leaf_indexes",
            MAX_AUDIT_LEAVES,
        )
    }

    pub(crate) fn commitment_pieces<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<[u8; 32]>, D::Error> {
        list(
            deserializer,
            "Request::SignCommitment.pieces",
            MAX_COMMITMENT_PIECES,
        )
    }

    pub(crate) fn signature<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        list(
            deserializer,
            "Response::Signed.signature",
            MAX_SIGNATURE_BYTES,
        )
    }

    pub(crate) fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        bounded_text(deserializer, "a text (reason or version)", MAX_TEXT_BYTES)
    }

    pub(crate) fn audit_proofs<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        list(deserializer, "Response::Audit.proofs", MAX_AUDIT_LEAVES)
    }

    pub(crate) fn proof_leaf<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        list(deserializer, "Response::Audit.proofs[].leaf", LEAF_SIZE)
    }

    pub(crate) fn proof_path<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<[u8; 32]>, D::Error> {
        list(
            deserializer,
            "Response::Audit.proofs[].path",
            MAX_DEPTH as usize,
        )
    }
}

/// Serde helpers that put 32-byte values on the wire as raw arrays.
pub(crate) mod raw_piece_id {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(id: &PieceId, serializer: S) -> Result<S::Ok, S::Error> {
        id.0.serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<PieceId, D::Error> {
        <[u8; 32]>::deserialize(deserializer).map(PieceId)
    }
}

pub(crate) mod raw_piece_ids {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        ids: &[PieceId],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(ids.iter().map(|id| id.0))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<PieceId>, D::Error> {
        let ids = super::bounded::commitment_pieces(deserializer)?;
        Ok(ids.into_iter().map(PieceId).collect())
    }
}

pub(crate) mod raw_b256 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &B256, serializer: S) -> Result<S::Ok, S::Error> {
        value.0.serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<B256, D::Error> {
        <[u8; 32]>::deserialize(deserializer).map(B256::from)
    }
}

pub(crate) mod raw_deal_id {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        deal: &DealId,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        deal.to_be_bytes().serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DealId, D::Error> {
        <[u8; 32]>::deserialize(deserializer).map(DealId::from_be_bytes)
    }
}

pub(crate) mod raw_proofs {
    use super::*;
    use serde::{Deserializer, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Proof {
        index: u64,
        #[serde(deserialize_with = "super::bounded::proof_leaf")]
        leaf: Vec<u8>,
        #[serde(deserialize_with = "super::bounded::proof_path")]
        path: Vec<[u8; 32]>,
    }

    pub(crate) fn serialize<S: Serializer>(
        proofs: &[MerkleProof],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(proofs.iter().map(|proof| Proof {
            index: proof.index,
            leaf: proof.leaf.to_vec(),
            path: proof.path.iter().map(|node| node.0).collect(),
        }))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<MerkleProof>, D::Error> {
        let proofs: Vec<Proof> = super::bounded::audit_proofs(deserializer)?;
        Ok(proofs
            .into_iter()
            .map(|proof| MerkleProof {
                index: proof.index,
                leaf: proof.leaf.into(),
                path: proof.path.into_iter().map(B256::from).collect(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbytes_ledger::commitment::PieceTree;
    use proptest::prelude::*;

    fn piece_id() -> impl Strategy<Value = PieceId> {
        any::<[u8; 32]>().prop_map(PieceId)
    }

    fn deal_id() -> impl Strategy<Value = DealId> {
        any::<[u8; 32]>().prop_map(DealId::from_be_bytes)
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            (deal_id(), piece_id(), any::<u64>()).prop_map(|(deal, piece, length)| {
                Request::PutPiece {
                    deal,
                    piece,
                    length,
                }
            }),
            (
                deal_id(),
                piece_id(),
                proptest::option::of((any::<u64>(), any::<u64>()))
            )
                .prop_map(|(deal, piece, range)| Request::GetPiece {
                    deal,
                    piece,
                    range: range.map(|(offset, length)| ByteRange { offset, length }),
                }),
            Just(Request::Stat),
            (deal_id(), piece_id()).prop_map(|(deal, piece)| Request::DeletePiece { deal, piece }),
            (
                deal_id(),
                piece_id(),
                proptest::collection::vec(any::<u64>(), 0..40)
            )
                .prop_map(|(deal, piece, leaf_indexes)| Request::Audit {
                    deal,
                    piece,
                    leaf_indexes
                }),
            (
                deal_id(),
                any::<[u8; 32]>(),
                any::<u64>(),
                any::<u32>(),
                proptest::collection::vec(piece_id(), 0..20)
            )
                .prop_map(|(deal, root, leaf_count, version, pieces)| {
                    Request::SignCommitment(Commitment {
                        deal,
                        root: B256::from(root),
                        leaf_count,
                        version,
                        pieces,
                    })
                }),
        ]
    }

    fn response() -> impl Strategy<Value = Response> {
        prop_oneof![
            (any::<u64>(), any::<[u8; 32]>(), any::<u64>()).prop_map(
                |(length, root, leaf_count)| Response::Stored(StoredPiece {
                    length,
                    root: B256::from(root),
                    leaf_count,
                })
            ),
            any::<u64>().prop_map(|length| Response::Piece { length }),
            (any::<u32>(), ".{0,20}", any::<[u64; 4]>()).prop_map(|(version, software, n)| {
                Response::Stat(ProviderStat {
                    protocol_version: version,
                    software_version: software,
                    capacity_bytes: n[0],
                    used_bytes: n[1],
                    piece_count: n[2],
                    uptime_secs: n[3],
                })
            }),
            any::<bool>().prop_map(|existed| Response::Deleted { existed }),
            (
                proptest::collection::vec(any::<u8>(), 1..2000),
                any::<u64>()
            )
                .prop_map(|(piece, pick)| {
                    let tree = PieceTree::build(&piece);
                    let index = pick % tree.leaf_count();
                    Response::Audit(AuditReply {
                        root: tree.root(),
                        leaf_count: tree.leaf_count(),
                        proofs: vec![tree.prove(&piece, index).unwrap()],
                    })
                }),
            proptest::collection::vec(any::<u8>(), 0..100)
                .prop_map(|signature| Response::Signed { signature }),
            (deal_id(), piece_id(), any::<u64>(), ".{0,30}").prop_map(|(deal, piece, n, text)| {
                Response::Refused(match n % 6 {
                    0 => Refusal::NotFound { deal, piece },
                    1 => Refusal::OverDealCapacity {
                        deal,
                        capacity_bytes: n,
                        used_bytes: n / 2,
                        requested_bytes: 7,
                    },
                    2 => Refusal::PieceIdMismatch {
                        expected: piece,
                        actual: PieceId([1; 32]),
                    },
                    3 => Refusal::Malformed(text),
                    4 => Refusal::Commitment(CommitmentProblem::MissingPiece(piece)),
                    _ => Refusal::DiskFull,
                })
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn requests_round_trip(request in request()) {
            let frame = encode_frame(&request).unwrap();
            let (decoded, used) = decode_frame::<Request>(&frame, MAX_FRAME_BYTES).unwrap();
            prop_assert_eq!(used, frame.len());
            prop_assert_eq!(decoded, request);
        }

        #[test]
        fn responses_round_trip(response in response()) {
            let frame = encode_frame(&response).unwrap();
            let (decoded, used) = decode_frame::<Response>(&frame, MAX_FRAME_BYTES).unwrap();
            prop_assert_eq!(used, frame.len());
            prop_assert_eq!(decoded, response);
        }

        #[test]
        fn truncated_frames_are_refused(request in request(), response in response(), cut in any::<prop::sample::Index>()) {
            for frame in [encode_frame(&request).unwrap(), encode_frame(&response).unwrap()] {
                let cut = cut.index(frame.len());
                prop_assert!(decode_frame::<Request>(&frame[..cut], MAX_FRAME_BYTES).is_err());
                prop_assert!(decode_frame::<Response>(&frame[..cut], MAX_FRAME_BYTES).is_err());
                // A body cut short inside a correct prefix is refused too.
                if cut > FRAME_PREFIX_BYTES {
                    prop_assert!(decode_body::<Request>(&frame[FRAME_PREFIX_BYTES..cut]).is_err()
                        || decode_body::<Response>(&frame[FRAME_PREFIX_BYTES..cut]).is_err());
                }
            }
        }

        /// Arbitrary bytes never panic the decoder, and whatever decodes
        /// survives a round trip unchanged.
        #[test]
        fn arbitrary_bytes_decode_or_fail_cleanly(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(request) = decode_body::<Request>(&body) {
                let frame = encode_frame(&request).unwrap();
                prop_assert_eq!(decode_frame::<Request>(&frame, MAX_FRAME_BYTES).unwrap().0, request);
            }
            if let Ok(response) = decode_body::<Response>(&body) {
                let frame = encode_frame(&response).unwrap();
                prop_assert_eq!(decode_frame::<Response>(&frame, MAX_FRAME_BYTES).unwrap().0, response);
            }
        }

        /// A frame declaring more than the maximum is refused from its
        /// prefix alone, whatever follows.
        #[test]
        fn oversized_frames_are_refused_from_the_prefix(excess in 1u32..=u32::MAX - MAX_FRAME_BYTES as u32) {
            let declared = MAX_FRAME_BYTES as u32 + excess;
            let mut frame = declared.to_be_bytes().to_vec();
            frame.extend_from_slice(&[0; 16]);
            prop_assert_eq!(
                decode_frame::<Request>(&frame, MAX_FRAME_BYTES).err(),
                Some(WireError::FrameTooLarge { length: declared as u64, max: MAX_FRAME_BYTES })
            );
        }
    }

    /// A sequence that declares billions of elements in a small frame fails
    /// for want of input instead of allocating for them.
    #[test]
    fn huge_declared_lengths_do_not_allocate() {
        // Audit variant (index 4), deal, piece, then a varint of 2^63 leaves.
        let mut body = vec![4u8];
        body.extend_from_slice(&[0; 64]);
        body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        body.extend_from_slice(&[1, 2, 3]);
        assert!(matches!(
            decode_body::<Request>(&body),
            Err(WireError::Decode(_))
        ));
        // The same for a signature of 2^32 bytes and a string in a refusal.
        let mut body = vec![5u8, 0xff, 0xff, 0xff, 0xff, 0x0f, 9];
        assert!(decode_body::<Response>(&body).is_err());
        body = vec![6u8, 21, 0xff, 0xff, 0xff, 0xff, 0x0f, b'a'];
        assert!(decode_body::<Response>(&body).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut frame = encode_frame(&Request::Stat).unwrap();
        frame.push(0);
        let len = (frame.len() - FRAME_PREFIX_BYTES) as u32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(
            decode_frame::<Request>(&frame, MAX_FRAME_BYTES).err(),
            Some(WireError::TrailingBytes(1))
        );
    }

    #[test]
    fn limits_are_checked() {
        let put = Request::PutPiece {
            deal: DealId::from(1),
            piece: PieceId([0; 32]),
            length: MAX_PIECE_BYTES + 1,
        };
        assert!(matches!(
            put.check_limits(),
            Err(Refusal::PieceTooLarge { .. })
        ));
        let audit = Request::Audit {
            deal: DealId::from(1),
            piece: PieceId([0; 32]),
            leaf_indexes: vec![0; MAX_AUDIT_LEAVES + 1],
        };
        assert!(matches!(
            audit.check_limits(),
            Err(Refusal::TooManyLeaves { .. })
        ));
        assert_eq!(Request::Stat.check_limits(), Ok(()));
    }
}
