//! What the book stores: users, access keys, buckets, object versions,
//! manifests, multipart uploads and parts, and pieces waiting to be freed.
//!
//! Records are plain data (serde, JSON in the tables): the book gives them
//! meaning, the gateway fills and reads them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::piece::PieceId;

/// Milliseconds since the Unix epoch: how the book records time. Callers pass
/// `now` in, so the book never reads a clock.
pub type UnixMillis = u64;

/// A person or service that owns buckets and holds access keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Stable id (chosen by whoever adds the user, e.g. `alice`).
    pub id: String,
    /// Shown as the S3 owner's display name.
    pub display_name: String,
    /// When the user was added.
    pub created_ms: UnixMillis,
}

/// An S3 access key: the id a client signs with and the secret it signs with.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    /// The access key id (`AKIA…`-like, 20 characters when generated).
    pub access_key_id: String,
    /// The secret access key (40 characters when generated).
    pub secret_access_key: String,
    /// The user this key acts as.
    pub user_id: String,
    /// When the key was issued.
    pub created_ms: UnixMillis,
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"..")
            .field("user_id", &self.user_id)
            .field("created_ms", &self.created_ms)
            .finish()
    }
}

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(#[serde(with = "hex16")] pub [u8; 16]);

        impl $name {
            /// A fresh id from the operating system's CSPRNG (via `rand`).
            pub fn random() -> Self {
                $name(rand::random())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), hex::encode(self.0))
            }
        }

        impl FromStr for $name {
            type Err = hex::FromHexError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                let mut bytes = [0u8; 16];
                hex::decode_to_slice(text, &mut bytes)?;
                Ok($name(bytes))
            }
        }
    };
}

random_id!(
    /// The stable id of a bucket: its key derives from it, so a bucket deleted
    /// and created again under the same name never reuses keys.
    BucketId
);
random_id!(
    /// The id an object version's (or a part's) AES key is derived from:
    /// `bucket_key(bucket id).version_key(key id)`. Drawn at random for every
    /// stored body, so it never repeats within a bucket, even for the S3
    /// "null" version that is overwritten in place.
    KeyId
);

/// A bucket's S3 versioning state. A bucket starts unversioned and, once
/// versioning was enabled, can only be suspended, never unversioned again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    /// Never enabled: every write replaces the "null" version.
    Unversioned,
    /// Every write adds a version with a fresh id.
    Enabled,
    /// Writes replace the "null" version; older versions are kept.
    Suspended,
}

/// A redundancy policy as stored with a bucket (the `placement` crate's
/// `RedundancyPolicy`, which the gateway converts to and from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redundancy {
    /// k: the pieces any read needs.
    pub data_pieces: u16,
    /// n: the pieces encoded and placed.
    pub total_pieces: u16,
    /// Repair when fewer healthy pieces than this remain.
    pub repair_threshold: u16,
    /// A segment is committed once this many pieces are stored.
    pub success_threshold: u16,
}

/// A bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// The S3 bucket name (unique in the book).
    pub name: String,
    /// The stable random id its keys derive from.
    pub id: BucketId,
    /// The owning user's id.
    pub owner: String,
    /// When it was created.
    pub created_ms: UnixMillis,
    /// Its versioning state.
    pub versioning: Versioning,
    /// The redundancy of objects written to it from now on.
    pub redundancy: Redundancy,
}

/// The S3 version id of an object version: "null" for versions written while
/// versioning was off or suspended, else 16 random bytes (shown as hex).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VersionId {
    /// The "null" version.
    Null,
    /// A version written with versioning enabled.
    Id(#[serde(with = "hex16")] [u8; 16]),
}

impl VersionId {
    /// The id as the bytes the book indexes it by.
    pub(crate) fn index_bytes(&self) -> Vec<u8> {
        match self {
            VersionId::Null => vec![0],
            VersionId::Id(bytes) => {
                let mut out = Vec::with_capacity(17);
                out.push(1);
                out.extend_from_slice(bytes);
                out
            }
        }
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionId::Null => f.write_str("null"),
            VersionId::Id(bytes) => f.write_str(&hex::encode(bytes)),
        }
    }
}

impl fmt::Debug for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VersionId({self})")
    }
}

/// A version id that is neither "null" nor 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version id {0:?}: expected \"null\" or one this gateway issued (32 hex digits)")]
pub struct InvalidVersionId(pub String);

impl FromStr for VersionId {
    type Err = InvalidVersionId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "null" {
            return Ok(VersionId::Null);
        }
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| InvalidVersionId(text.to_owned()))?;
        Ok(VersionId::Id(bytes))
    }
}

/// The checksums of an object (or part) as S3 returns them: base64 digests,
/// and for multipart objects the composite form `digest-N`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    /// CRC32 (IEEE).
    pub crc32: Option<String>,
    /// CRC32C (Castagnoli).
    pub crc32c: Option<String>,
    /// CRC64/NVME.
    pub crc64nvme: Option<String>,
    /// SHA-1.
    pub sha1: Option<String>,
    /// SHA-256.
    pub sha256: Option<String>,
    /// `FULL_OBJECT` or `COMPOSITE`, when a checksum is present.
    pub checksum_type: Option<String>,
}

impl Checksums {
    /// Whether no checksum is recorded.
    pub fn is_empty(&self) -> bool {
        self.crc32.is_none()
            && self.crc32c.is_none()
            && self.crc64nvme.is_none()
            && self.sha1.is_none()
            && self.sha256.is_none()
    }
}

/// The HTTP headers S3 stores with an object and returns on GET and HEAD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHeaders {
    /// Content-Type.
    pub content_type: Option<String>,
    /// Content-Encoding.
    pub content_encoding: Option<String>,
    /// Content-Disposition.
    pub content_disposition: Option<String>,
    /// Content-Language.
    pub content_language: Option<String>,
    /// Cache-Control.
    pub cache_control: Option<String>,
    /// Expires, as the HTTP date the client sent.
    pub expires: Option<String>,
}

/// Where a piece was placed: filled in by the mesh layer, opaque to the book
/// except for the provider, by which the repair worker finds pieces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The provider holding the piece (e.g. its iroh node id).
    pub provider: String,
    /// Whatever else the mesh needs to reach and account for the piece
    /// (deal id, address hints, slot…), in its own encoding.
    #[serde(with = "hex_vec")]
    pub detail: Vec<u8>,
}

/// One piece of a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceRecord {
    /// BLAKE3 of the piece's bytes.
    pub id: PieceId,
    /// Where it is stored; `None` when it was not stored (a segment is
    /// committed once its success threshold is reached, not all n).
    pub placement: Option<Placement>,
}

/// One encoded segment of an object or part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// Plaintext bytes of the segment.
    pub len: u64,
    /// Bytes of each of its pieces.
    pub piece_len: u64,
    /// Its n pieces, data pieces first.
    pub pieces: Vec<PieceRecord>,
}

/// A body encoded under one key: a whole single-part object, or one part of a
/// multipart object. Segment `i` of it is sealed with segment index `i`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPart {
    /// The key id its segments are sealed under.
    pub key_id: KeyId,
    /// Plaintext bytes.
    pub size: u64,
    /// k of the layout it was encoded with.
    pub data_pieces: u16,
    /// n of the layout it was encoded with.
    pub total_pieces: u16,
    /// The piece size of a full segment of that layout.
    pub piece_size: u64,
    /// Its segments, in order.
    pub segments: Vec<SegmentRecord>,
}

impl ManifestPart {
    /// Every stored piece with its placement.
    pub fn placed_pieces(&self) -> impl Iterator<Item = (PieceId, Placement)> + '_ {
        self.segments.iter().flat_map(|segment| {
            segment
                .pieces
                .iter()
                .filter_map(|piece| piece.placement.clone().map(|place| (piece.id, place)))
        })
    }
}

/// Object version -> parts -> segments -> pieces -> placements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// One part for a single-part object, the completed parts of a multipart
    /// object, in order.
    pub parts: Vec<ManifestPart>,
}

impl Manifest {
    /// Every stored piece with its placement.
    pub fn placed_pieces(&self) -> Vec<(PieceId, Placement)> {
        self.parts
            .iter()
            .flat_map(ManifestPart::placed_pieces)
            .collect()
    }
}

/// Where an object version's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataKind {
    /// No bytes (empty objects and delete markers).
    Empty,
    /// Small object: its sealed bytes are in the book ([`crate::book::Book::inline_data`]).
    Inline,
    /// Its pieces are on providers ([`crate::book::Book::manifest`]).
    Pieces,
}

/// An object version or delete marker, without its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectVersion {
    /// The object key.
    pub key: String,
    /// The S3 version id.
    pub version_id: VersionId,
    /// The id its key derives from (and its inline data or manifest is stored under).
    pub key_id: KeyId,
    /// Whether this is a delete marker.
    pub delete_marker: bool,
    /// When it was written.
    pub last_modified_ms: UnixMillis,
    /// Plaintext bytes.
    pub size: u64,
    /// The S3 ETag, without quotes.
    pub etag: String,
    /// The user that wrote it.
    pub owner: String,
    /// Content-Type and the other stored headers.
    pub headers: ObjectHeaders,
    /// User metadata (`x-amz-meta-*`), names lower-cased without the prefix.
    pub metadata: BTreeMap<String, String>,
    /// Checksums the client sent or asked for, verified.
    pub checksums: Checksums,
    /// The plaintext size of each part, for multipart objects.
    pub part_sizes: Vec<u64>,
    /// Where its bytes are.
    pub data: DataKind,
}

/// An object's bytes as handed to [`crate::book::Book::put_version`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewData {
    /// No bytes.
    Empty,
    /// Sealed bytes kept in the book.
    Inline(Vec<u8>),
    /// Pieces on providers.
    Pieces(Manifest),
}

impl NewData {
    pub(crate) fn kind(&self) -> DataKind {
        match self {
            NewData::Empty => DataKind::Empty,
            NewData::Inline(_) => DataKind::Inline,
            NewData::Pieces(_) => DataKind::Pieces,
        }
    }
}

/// A condition a write must meet against the key's current object, checked
/// in the same transaction that commits the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// `If-None-Match: *`: only if the key has no current object.
    NoCurrentObject,
    /// `If-Match: etag`: only if the current object has this ETag.
    CurrentETag(String),
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// The upload id clients quote.
    pub upload_id: String,
    /// The object key.
    pub key: String,
    /// When it was created.
    pub initiated_ms: UnixMillis,
    /// The user that created it.
    pub owner: String,
    /// Headers the completed object will carry.
    pub headers: ObjectHeaders,
    /// User metadata the completed object will carry.
    pub metadata: BTreeMap<String, String>,
    /// The checksum algorithm the client announced (`CRC32`, …).
    pub checksum_algorithm: Option<String>,
    /// The checksum type the client announced (`COMPOSITE`, `FULL_OBJECT`).
    pub checksum_type: Option<String>,
}

/// One uploaded part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// 1..=10000.
    pub part_number: u32,
    /// Plaintext bytes.
    pub size: u64,
    /// MD5 of the part (hex, no quotes).
    pub etag: String,
    /// Checksums the client sent, verified.
    pub checksums: Checksums,
    /// When it was uploaded.
    pub last_modified_ms: UnixMillis,
    /// Its encoded body.
    pub manifest: ManifestPart,
}

/// Pieces to delete from providers (a deleted or overwritten version, an
/// aborted upload, a failed write), retried until done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeTask {
    /// The task's id in the queue.
    pub id: u64,
    /// The pieces and where they are.
    pub pieces: Vec<(PieceId, Placement)>,
    /// Attempts made so far.
    pub attempts: u32,
    /// Do not try again before this time.
    pub not_before_ms: UnixMillis,
}

mod hex16 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 16], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 16], D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(text.as_ref(), &mut bytes).map_err(serde::de::Error::custom)?;
        Ok(bytes)
    }
}

mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        hex::decode(text.as_ref()).map_err(serde::de::Error::custom)
    }
}
