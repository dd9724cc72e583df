//! The provider's piece store: piece files on disk, an index in redb, and
//! the capacity they take.
//!
//! # Layout
//!
//! ```text
//! <data dir>/index.redb                    (deal ‖ piece) -> length, root, leaf count, stored at;
//!                                          (deal ‖ piece) -> block roots (see `blocks`)
//! <data dir>/pieces/<deal hex>-<piece hex> the piece's bytes, exactly
//! <data dir>/tmp/…​.part                    pieces being received
//! ```
//!
//! # Crash safety
//!
//! A piece is written to `tmp/`, fsynced, renamed into `pieces/`, the
//! directory fsynced, and only then indexed (a durable redb commit) and
//! acknowledged. A delete removes the file before the index entry. So after
//! a crash at any moment, [`PieceStore::open`] finds only these states and
//! reconciles them: temporary files (removed), piece files without an entry
//! (re-hashed: re-indexed if they match their name, removed otherwise), and
//! entries without a file or whose file has the wrong length (dropped).
//! Afterwards the index and the files agree, and every indexed file was
//! complete when it was renamed.
//!
//! A piece's block roots (what an audit needs of its proof tree above its
//! 8 KiB blocks) are indexed in the same commit as its entry, so they exist
//! exactly when it does: no file and no fsync of their own.
//!
//! Rot after that is caught by verifying on read (whole-piece reads
//! re-hash; audits hash the challenged leaves' blocks against their kept
//! roots, re-hashing the whole piece on a mismatch; range reads check the
//! length) and by the scrub ([`PieceStore::scrub`]), which re-hashes every
//! piece at a set rate. A piece found corrupt is dropped and counted, never
//! served.
//!
//! # Cost
//!
//! Every method is synchronous and may wait for the disk (fsync, redb
//! commits) or hash whole pieces: async callers run them on a blocking pool.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy_primitives::B256;
use dbytes_ledger::commitment::{PieceTree, leaf_count_for};
use dbytes_ledger::piece::PieceId;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tracing::{error, info, warn};

use crate::deal::DealId;
use crate::metrics::ProviderMetrics;
use crate::wire::{AuditReply, MAX_PIECE_BYTES, Refusal, StoredPiece};

mod blocks;

use blocks::{BlockTree, BlockTreeBuilder, HashedPiece, block_span};

/// `deal ‖ piece` -> `length ‖ root ‖ leaf count ‖ stored at` (big-endian).
const PIECES: TableDefinition<&[u8; 64], &[u8; RECORD_BYTES]> = TableDefinition::new("pieces");
const RECORD_BYTES: usize = 8 + 32 + 8 + 8;
/// `deal ‖ piece` -> [`BlockTree::encode`], for pieces of more than one
/// block; written and removed in the same transactions as `PIECES`.
/// Pieces stored before it existed have no entry (their audits re-hash).
const BLOCK_ROOTS: TableDefinition<&[u8; 64], &[u8]> = TableDefinition::new("block_roots");

/// Bytes read or hashed at a time when streaming a piece from disk.
pub const CHUNK_BYTES: usize = 256 << 10;

/// Where a store lives and how much it may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The data directory (created if missing).
    pub data_dir: PathBuf,
    /// The bytes of pieces the provider offers in total.
    pub capacity_bytes: u64,
}

/// What the store knows of one stored piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceRecord {
    /// The deal the piece is stored under.
    pub deal: DealId,
    /// The piece.
    pub piece: PieceId,
    /// Its length in bytes.
    pub length: u64,
    /// The root of its proof tree.
    pub root: B256,
    /// Its leaf count.
    pub leaf_count: u64,
    /// When it was stored (seconds since the Unix epoch).
    pub stored_at_secs: u64,
}

impl PieceRecord {
    /// What the provider reports to the uploader.
    pub fn stored(&self) -> StoredPiece {
        StoredPiece {
            length: self.length,
            root: self.root,
            leaf_count: self.leaf_count,
        }
    }

    fn encode(&self) -> [u8; RECORD_BYTES] {
        let mut value = [0u8; RECORD_BYTES];
        value[..8].copy_from_slice(&self.length.to_be_bytes());
        value[8..40].copy_from_slice(self.root.as_slice());
        value[40..48].copy_from_slice(&self.leaf_count.to_be_bytes());
        value[48..].copy_from_slice(&self.stored_at_secs.to_be_bytes());
        value
    }

    fn decode(key: &[u8; 64], value: &[u8; RECORD_BYTES]) -> PieceRecord {
        let (deal, piece) = split_key(key);
        let u64_at = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&value[at..at + 8]);
            u64::from_be_bytes(bytes)
        };
        PieceRecord {
            deal,
            piece,
            length: u64_at(0),
            root: B256::from_slice(&value[8..40]),
            leaf_count: u64_at(40),
            stored_at_secs: u64_at(48),
        }
    }
}

/// What [`PieceStore::open`] repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Temporary files of interrupted uploads, removed.
    pub temp_files_removed: usize,
    /// Piece files without an index entry whose bytes matched their id,
    /// indexed again.
    pub reindexed: usize,
    /// Piece files without an index entry that did not match their id,
    /// removed.
    pub orphans_removed: usize,
    /// Index entries without a whole file, dropped.
    pub entries_dropped: usize,
    /// Files in `pieces/` that are not named like pieces, left alone.
    pub foreign_files: usize,
}

/// The store's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreUsage {
    /// The configured capacity.
    pub capacity_bytes: u64,
    /// Bytes of stored pieces.
    pub used_bytes: u64,
    /// Bytes reserved by uploads in progress.
    pub reserved_bytes: u64,
    /// Pieces stored.
    pub piece_count: u64,
}

/// What one scrub pass found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Pieces re-hashed.
    pub pieces_checked: u64,
    /// Bytes re-hashed.
    pub bytes_checked: u64,
    /// Pieces found corrupt or missing, and dropped.
    pub rotted: Vec<(DealId, PieceId)>,
    /// Whether the pass stopped early because it was asked to.
    pub stopped: bool,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory operation failed.
    #[error(
        "could not {action} {}: {source}; check the disk and the data directory's permissions",
        path.display()
    )]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The disk ran out of space (before the configured capacity).
    #[error("the disk holding {} is full; free space or lower the configured capacity", path.display())]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// The redb index failed.
    #[error(
        "the piece index failed: {0}; check the disk (the index is rebuilt from the piece files if it is lost)"
    )]
    Index(#[from] redb::Error),
    /// The piece does not fit the deal's remaining capacity.
    #[error(
        "deal {deal} has {used_bytes} of {capacity_bytes} bytes in use; {requested_bytes} more do not fit"
    )]
    OverDealCapacity {
        /// The deal.
        deal: DealId,
        /// Its capacity.
        capacity_bytes: u64,
        /// Bytes stored and reserved under it.
        used_bytes: u64,
        /// The piece's length.
        requested_bytes: u64,
    },
    /// The piece does not fit the store's configured capacity.
    #[error(
        "the store is full: {used_bytes} of {capacity_bytes} bytes in use, {requested_bytes} more do not fit"
    )]
    StoreFull {
        /// The capacity.
        capacity_bytes: u64,
        /// Bytes stored and reserved.
        used_bytes: u64,
        /// The piece's length.
        requested_bytes: u64,
    },
    /// The piece is larger than any piece the store takes.
    #[error("a piece of {length} bytes exceeds the maximum of {max}")]
    PieceTooLarge {
        /// Its length.
        length: u64,
        /// The maximum.
        max: u64,
    },
    /// Fewer bytes than declared arrived.
    #[error("the piece ended after {received} of {expected} bytes")]
    Truncated {
        /// The declared length.
        expected: u64,
        /// Bytes received.
        received: u64,
    },
    /// More bytes than declared arrived.
    #[error("more than the declared {expected} bytes arrived")]
    TooLong {
        /// The declared length.
        expected: u64,
    },
    /// The bytes do not hash to the piece id.
    #[error("the bytes hash to {actual}, not to the piece id {expected}")]
    PieceIdMismatch {
        /// The id claimed.
        expected: PieceId,
        /// The BLAKE3 of the bytes.
        actual: PieceId,
    },
    /// No such piece under the deal.
    #[error("no piece {piece} under deal {deal}")]
    NotFound {
        /// The deal.
        deal: DealId,
        /// The piece.
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
    /// A leaf index is past the piece's end.
    #[error("leaf {index} is outside the piece's {leaf_count} leaves")]
    LeafOutOfRange {
        /// The index.
        index: u64,
        /// The piece's leaf count.
        leaf_count: u64,
    },
    /// The stored piece turned out corrupt; it has been dropped.
    #[error("piece {piece} of deal {deal} was corrupt ({reason}) and has been dropped")]
    Corrupt {
        /// The deal.
        deal: DealId,
        /// The piece.
        piece: PieceId,
        /// What was wrong.
        reason: String,
    },
}

impl StoreError {
    /// The refusal a requester is sent for this error.
    pub fn to_refusal(&self) -> Refusal {
        match self {
            StoreError::DiskFull { .. } => Refusal::DiskFull,
            StoreError::OverDealCapacity {
                deal,
                capacity_bytes,
                used_bytes,
                requested_bytes,
            } => Refusal::OverDealCapacity {
                deal: *deal,
                capacity_bytes: *capacity_bytes,
                used_bytes: *used_bytes,
                requested_bytes: *requested_bytes,
            },
            StoreError::StoreFull {
                capacity_bytes,
                used_bytes,
                requested_bytes,
            } => Refusal::StoreFull {
                capacity_bytes: *capacity_bytes,
                used_bytes: *used_bytes,
                requested_bytes: *requested_bytes,
            },
            StoreError::PieceTooLarge { length, max } => Refusal::PieceTooLarge {
                length: *length,
                max: *max,
            },
            StoreError::Truncated { expected, received } => Refusal::Truncated {
                expected: *expected,
                received: *received,
            },
            StoreError::TooLong { expected } => Refusal::TooLong {
                expected: *expected,
            },
            StoreError::PieceIdMismatch { expected, actual } => Refusal::PieceIdMismatch {
                expected: *expected,
                actual: *actual,
            },
            StoreError::NotFound { deal, piece } => Refusal::NotFound {
                deal: *deal,
                piece: *piece,
            },
            StoreError::RangeOutOfBounds {
                offset,
                length,
                piece_length,
            } => Refusal::RangeOutOfBounds {
                offset: *offset,
                length: *length,
                piece_length: *piece_length,
            },
            StoreError::LeafOutOfRange { index, leaf_count } => Refusal::LeafOutOfRange {
                index: *index,
                leaf_count: *leaf_count,
            },
            StoreError::Corrupt { piece, .. } => Refusal::Corrupt(*piece),
            // Details of the provider's disk are the operator's business.
            StoreError::Io { .. } | StoreError::Index(_) => {
                Refusal::Internal("storage error".to_string())
            }
        }
    }
}

macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for StoreError {
            fn from(err: $error) -> Self {
                StoreError::Index(err.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| {
        if matches!(
            source.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        ) {
            StoreError::DiskFull {
                path: path.to_path_buf(),
            }
        } else {
            StoreError::Io {
                action,
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// Bytes stored and reserved, in total and per deal.
#[derive(Debug, Default)]
struct Accounts {
    used_bytes: u64,
    reserved_bytes: u64,
    piece_count: u64,
    deals: HashMap<DealId, DealUsage>,
}

#[derive(Debug, Default, Clone, Copy)]
struct DealUsage {
    used_bytes: u64,
    reserved_bytes: u64,
}

impl Accounts {
    fn add_piece(&mut self, deal: DealId, length: u64) {
        self.used_bytes += length;
        self.piece_count += 1;
        self.deals.entry(deal).or_default().used_bytes += length;
    }

    fn remove_piece(&mut self, deal: DealId, length: u64) {
        self.used_bytes = self.used_bytes.saturating_sub(length);
        self.piece_count = self.piece_count.saturating_sub(1);
        if let Some(usage) = self.deals.get_mut(&deal) {
            usage.used_bytes = usage.used_bytes.saturating_sub(length);
            if usage.used_bytes == 0 && usage.reserved_bytes == 0 {
                self.deals.remove(&deal);
            }
        }
    }

    fn release(&mut self, deal: DealId, length: u64) {
        self.reserved_bytes = self.reserved_bytes.saturating_sub(length);
        if let Some(usage) = self.deals.get_mut(&deal) {
            usage.reserved_bytes = usage.reserved_bytes.saturating_sub(length);
            if usage.used_bytes == 0 && usage.reserved_bytes == 0 {
                self.deals.remove(&deal);
            }
        }
    }
}

/// The piece store: a cheap handle (clone it freely).
#[derive(Clone)]
pub struct PieceStore {
    inner: Arc<Inner>,
}

struct Inner {
    pieces_dir: PathBuf,
    tmp_dir: PathBuf,
    db: Database,
    capacity_bytes: u64,
    /// Held while the index and the files change together (commit, delete,
    /// drop), so the accounts always match the index.
    accounts: Mutex<Accounts>,
    metrics: ProviderMetrics,
}

impl std::fmt::Debug for PieceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PieceStore")
            .field("pieces_dir", &self.inner.pieces_dir)
            .field("capacity_bytes", &self.inner.capacity_bytes)
            .finish_non_exhaustive()
    }
}

fn key(deal: DealId, piece: PieceId) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(&deal.to_be_bytes());
    key[32..].copy_from_slice(&piece.0);
    key
}

fn split_key(key: &[u8; 64]) -> (DealId, PieceId) {
    let mut deal = [0u8; 32];
    let mut piece = [0u8; 32];
    deal.copy_from_slice(&key[..32]);
    piece.copy_from_slice(&key[32..]);
    (DealId::from_be_bytes(deal), PieceId(piece))
}

fn file_name(deal: DealId, piece: PieceId) -> String {
    format!(
        "{}-{}",
        hex::encode(deal.to_be_bytes()),
        hex::encode(piece.0)
    )
}

fn parse_file_name(name: &str) -> Option<(DealId, PieceId)> {
    let (deal_hex, piece_hex) = name.split_once('-')?;
    let mut deal = [0u8; 32];
    let mut piece = [0u8; 32];
    hex::decode_to_slice(deal_hex, &mut deal).ok()?;
    hex::decode_to_slice(piece_hex, &mut piece).ok()?;
    Some((DealId::from_be_bytes(deal), PieceId(piece)))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error("fsync directory", dir))
}

/// Reads `file` to its end in chunks, handing each to `each`.
fn read_chunks(
    file: &mut File,
    path: &Path,
    mut each: impl FnMut(&[u8]) -> ControlFlow<()>,
) -> Result<u64, StoreError> {
    let mut buffer = vec![0u8; CHUNK_BYTES];
    let mut total = 0u64;
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(io_error("read", path)(err)),
        };
        total += read as u64;
        if each(&buffer[..read]).is_break() {
            return Ok(total);
        }
    }
}

/// BLAKE3 id, proof tree and length of the file at `path`.
fn hash_file(path: &Path) -> Result<(PieceId, HashedPiece, u64), StoreError> {
    let mut file = File::open(path).map_err(io_error("open", path))?;
    let mut hasher = blake3::Hasher::new();
    let mut tree = BlockTreeBuilder::new();
    let length = read_chunks(&mut file, path, |chunk| {
        hasher.update(chunk);
        tree.update(chunk);
        ControlFlow::Continue(())
    })?;
    Ok((
        PieceId(*hasher.finalize().as_bytes()),
        tree.finish(),
        length,
    ))
}

/// Indexes `record` and its block roots in `write` (not yet committed).
fn insert_piece(
    write: &redb::WriteTransaction,
    record: &PieceRecord,
    blocks: Option<&BlockTree>,
) -> Result<(), StoreError> {
    let key = key(record.deal, record.piece);
    write.open_table(PIECES)?.insert(&key, &record.encode())?;
    if let Some(blocks) = blocks {
        write
            .open_table(BLOCK_ROOTS)?
            .insert(&key, blocks.encode().as_slice())?;
    }
    Ok(())
}

/// Removes the entry and the block roots of `key` in `write`.
fn remove_piece(write: &redb::WriteTransaction, key: &[u8; 64]) -> Result<(), StoreError> {
    write.open_table(PIECES)?.remove(key)?;
    write.open_table(BLOCK_ROOTS)?.remove(key)?;
    Ok(())
}

impl PieceStore {
    /// Opens (or creates) the store in `config.data_dir` and reconciles the
    /// index with the files (see the module docs). Reports what it repaired.
    ///
    /// Cost: a directory listing and an index scan, plus re-hashing any piece
    /// file that lost its index entry.
    pub fn open(
        config: &StoreConfig,
        metrics: ProviderMetrics,
    ) -> Result<(PieceStore, RecoveryReport), StoreError> {
        let pieces_dir = config.data_dir.join("pieces");
        let tmp_dir = config.data_dir.join("tmp");
        for dir in [&pieces_dir, &tmp_dir] {
            fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        }
        let index_path = config.data_dir.join("index.redb");
        let db = Database::create(&index_path)?;
        let mut report = RecoveryReport::default();

        // Uploads that were in flight: never acknowledged, never indexed.
        for entry in fs::read_dir(&tmp_dir).map_err(io_error("list", &tmp_dir))? {
            let entry = entry.map_err(io_error("list", &tmp_dir))?;
            let path = entry.path();
            fs::remove_file(&path).map_err(io_error("remove", &path))?;
            report.temp_files_removed += 1;
        }
        sync_dir(&tmp_dir)?;

        let mut indexed: HashMap<[u8; 64], PieceRecord> = HashMap::new();
        {
            let read = db.begin_read()?;
            match read.open_table(PIECES) {
                Ok(table) => {
                    for entry in table.iter()? {
                        let (key, value) = entry?;
                        indexed.insert(
                            *key.value(),
                            PieceRecord::decode(key.value(), value.value()),
                        );
                    }
                }
                Err(redb::TableError::TableDoesNotExist(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }

        let write = db.begin_write()?;
        let mut whole: HashSet<[u8; 64]> = HashSet::new();
        {
            let mut table = write.open_table(PIECES)?;
            let mut block_roots = write.open_table(BLOCK_ROOTS)?;
            for entry in fs::read_dir(&pieces_dir).map_err(io_error("list", &pieces_dir))? {
                let entry = entry.map_err(io_error("list", &pieces_dir))?;
                let path = entry.path();
                let parsed = entry.file_name().to_str().and_then(parse_file_name);
                let is_file = entry
                    .file_type()
                    .map(|kind| kind.is_file())
                    .unwrap_or(false);
                let Some((deal, piece)) = parsed.filter(|_| is_file) else {
                    warn!(path = %path.display(), "a file in the pieces directory is not a piece; leaving it alone");
                    report.foreign_files += 1;
                    continue;
                };
                let key = key(deal, piece);
                let metadata = entry.metadata().map_err(io_error("stat", &path))?;
                if let Some(record) = indexed.get(&key) {
                    if metadata.len() == record.length {
                        whole.insert(key);
                    } else {
                        warn!(%deal, %piece, file_bytes = metadata.len(), indexed_bytes = record.length,
                            "a piece file has the wrong length; dropping the piece");
                        fs::remove_file(&path).map_err(io_error("remove", &path))?;
                    }
                    continue;
                }
                // Renamed into place but not indexed when the process died
                // (or the index was lost): keep it if it is what it says.
                let (actual, hashed, length) = hash_file(&path)?;
                if actual == piece && length <= MAX_PIECE_BYTES {
                    let stored_at_secs = metadata
                        .modified()
                        .ok()
                        .and_then(|modified| modified.duration_since(UNIX_EPOCH).ok())
                        .map_or_else(now_secs, |elapsed| elapsed.as_secs());
                    let record = PieceRecord {
                        deal,
                        piece,
                        length,
                        root: hashed.root,
                        leaf_count: hashed.leaf_count,
                        stored_at_secs,
                    };
                    table.insert(&key, &record.encode())?;
                    if let Some(blocks) = &hashed.blocks {
                        block_roots.insert(&key, blocks.encode().as_slice())?;
                    }
                    indexed.insert(key, record);
                    whole.insert(key);
                    report.reindexed += 1;
                } else {
                    fs::remove_file(&path).map_err(io_error("remove", &path))?;
                    report.orphans_removed += 1;
                }
            }
            let lost: Vec<[u8; 64]> = indexed
                .keys()
                .filter(|key| !whole.contains(*key))
                .copied()
                .collect();
            for key in lost {
                table.remove(&key)?;
                block_roots.remove(&key)?;
                indexed.remove(&key);
                report.entries_dropped += 1;
            }
        }
        sync_dir(&pieces_dir)?;
        write.commit()?;

        let mut accounts = Accounts::default();
        for record in indexed.values() {
            accounts.add_piece(record.deal, record.length);
        }
        if accounts.used_bytes > config.capacity_bytes {
            warn!(
                used_bytes = accounts.used_bytes,
                capacity_bytes = config.capacity_bytes,
                "the store holds more than its configured capacity; it will take no new pieces until pieces are deleted"
            );
        }
        metrics.capacity_bytes.set(clamp_i64(config.capacity_bytes));
        let store = PieceStore {
            inner: Arc::new(Inner {
                pieces_dir,
                tmp_dir,
                db,
                capacity_bytes: config.capacity_bytes,
                accounts: Mutex::new(accounts),
                metrics,
            }),
        };
        store.publish(&store.accounts());
        if report != RecoveryReport::default() {
            info!(?report, "piece store recovered from an unclean stop");
        }
        Ok((store, report))
    }

    fn accounts(&self) -> MutexGuard<'_, Accounts> {
        // The accounts are updated in single statements after the disk work
        // succeeded; a panic elsewhere under the lock leaves them consistent.
        self.inner
            .accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, accounts: &Accounts) {
        let metrics = &self.inner.metrics;
        metrics.pieces.set(clamp_i64(accounts.piece_count));
        metrics.stored_bytes.set(clamp_i64(accounts.used_bytes));
    }

    fn piece_path(&self, deal: DealId, piece: PieceId) -> PathBuf {
        self.inner.pieces_dir.join(file_name(deal, piece))
    }

    /// The store's capacity and usage.
    pub fn usage(&self) -> StoreUsage {
        let accounts = self.accounts();
        StoreUsage {
            capacity_bytes: self.inner.capacity_bytes,
            used_bytes: accounts.used_bytes,
            reserved_bytes: accounts.reserved_bytes,
            piece_count: accounts.piece_count,
        }
    }

    /// Bytes stored (not counting uploads in progress) under `deal`.
    pub fn deal_used_bytes(&self, deal: DealId) -> u64 {
        self.accounts()
            .deals
            .get(&deal)
            .map_or(0, |usage| usage.used_bytes)
    }

    /// The record of `piece` under `deal`, if stored.
    pub fn record(&self, deal: DealId, piece: PieceId) -> Result<Option<PieceRecord>, StoreError> {
        let read = self.inner.db.begin_read()?;
        let table = match read.open_table(PIECES) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let key = key(deal, piece);
        Ok(table
            .get(&key)?
            .map(|value| PieceRecord::decode(&key, value.value())))
    }

    /// The records of every piece stored under `deal`.
    pub fn deal_records(&self, deal: DealId) -> Result<Vec<PieceRecord>, StoreError> {
        let mut start = [0u8; 64];
        start[..32].copy_from_slice(&deal.to_be_bytes());
        let mut end = start;
        end[32..].fill(0xff);
        self.scan(start..=end)
    }

    /// The records of every stored piece.
    pub fn records(&self) -> Result<Vec<PieceRecord>, StoreError> {
        self.scan([0u8; 64]..=[0xffu8; 64])
    }

    fn scan(
        &self,
        range: std::ops::RangeInclusive<[u8; 64]>,
    ) -> Result<Vec<PieceRecord>, StoreError> {
        let read = self.inner.db.begin_read()?;
        let table = match read.open_table(PIECES) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(err) => return Err(err.into()),
        };
        let mut records = Vec::new();
        for entry in table.range::<&[u8; 64]>(range.start()..=range.end())? {
            let (key, value) = entry?;
            records.push(PieceRecord::decode(key.value(), value.value()));
        }
        Ok(records)
    }

    /// Starts receiving a piece of `length` bytes under `deal`, whose
    /// capacity is `deal_capacity_bytes`: reserves the space (refusing if
    /// the deal or the store has too little left) and opens a temporary
    /// file. Dropping the returned ingest abandons the piece.
    pub fn begin_put(
        &self,
        deal: DealId,
        piece: PieceId,
        length: u64,
        deal_capacity_bytes: u64,
    ) -> Result<PieceIngest, StoreError> {
        if length > MAX_PIECE_BYTES {
            return Err(StoreError::PieceTooLarge {
                length,
                max: MAX_PIECE_BYTES,
            });
        }
        let reservation = self.reserve(deal, length, deal_capacity_bytes)?;
        let tmp_path = self.inner.tmp_dir.join(format!(
            "{}.{:016x}.part",
            file_name(deal, piece),
            rand::random::<u64>()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .map_err(io_error("create", &tmp_path))?;
        Ok(PieceIngest {
            reservation,
            piece,
            length,
            file,
            tmp_path,
            hasher: blake3::Hasher::new(),
            tree: BlockTreeBuilder::new(),
            received: 0,
            committed: false,
        })
    }

    fn reserve(
        &self,
        deal: DealId,
        length: u64,
        deal_capacity_bytes: u64,
    ) -> Result<Reservation, StoreError> {
        let mut accounts = self.accounts();
        let usage = accounts.deals.get(&deal).copied().unwrap_or_default();
        let deal_in_use = usage.used_bytes + usage.reserved_bytes;
        if deal_in_use.saturating_add(length) > deal_capacity_bytes {
            return Err(StoreError::OverDealCapacity {
                deal,
                capacity_bytes: deal_capacity_bytes,
                used_bytes: deal_in_use,
                requested_bytes: length,
            });
        }
        let in_use = accounts.used_bytes + accounts.reserved_bytes;
        if in_use.saturating_add(length) > self.inner.capacity_bytes {
            return Err(StoreError::StoreFull {
                capacity_bytes: self.inner.capacity_bytes,
                used_bytes: in_use,
                requested_bytes: length,
            });
        }
        accounts.reserved_bytes += length;
        accounts.deals.entry(deal).or_default().reserved_bytes += length;
        Ok(Reservation {
            store: self.clone(),
            deal,
            bytes: length,
            settled: false,
        })
    }

    /// Opens a stored piece for reading, checking its file is whole.
    pub fn open_piece(&self, deal: DealId, piece: PieceId) -> Result<PieceReader, StoreError> {
        let record = self
            .record(deal, piece)?
            .ok_or(StoreError::NotFound { deal, piece })?;
        let path = self.piece_path(deal, piece);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                // Deleted since the lookup, or lost from the disk.
                return Err(match self.record(deal, piece)? {
                    Some(record) => self.drop_corrupt(&record, "its file is missing"),
                    None => StoreError::NotFound { deal, piece },
                });
            }
            Err(err) => return Err(io_error("open", &path)(err)),
        };
        let file_bytes = file.metadata().map_err(io_error("stat", &path))?.len();
        if file_bytes != record.length {
            return Err(self.drop_corrupt(
                &record,
                &format!("its file has {file_bytes} bytes, not {}", record.length),
            ));
        }
        Ok(PieceReader {
            store: self.clone(),
            record,
            file,
            path,
        })
    }

    /// Deletes `piece` of `deal`; returns whether it was stored.
    pub fn delete(&self, deal: DealId, piece: PieceId) -> Result<bool, StoreError> {
        let mut accounts = self.accounts();
        let Some(record) = self.record(deal, piece)? else {
            return Ok(false);
        };
        self.remove_locked(&mut accounts, &record)?;
        Ok(true)
    }

    /// Removes the file, then the entry: a crash in between leaves an entry
    /// without a file, which `open` drops (the other order would bring a
    /// deleted piece back).
    fn remove_locked(
        &self,
        accounts: &mut Accounts,
        record: &PieceRecord,
    ) -> Result<(), StoreError> {
        let path = self.piece_path(record.deal, record.piece);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_error("remove", &path)(err)),
        }
        sync_dir(&self.inner.pieces_dir)?;
        let write = self.inner.db.begin_write()?;
        remove_piece(&write, &key(record.deal, record.piece))?;
        write.commit()?;
        accounts.remove_piece(record.deal, record.length);
        self.publish(accounts);
        Ok(())
    }

    /// Drops a piece found corrupt (if the index still holds this very
    /// record) and returns the error that says so.
    fn drop_corrupt(&self, record: &PieceRecord, reason: &str) -> StoreError {
        error!(deal = %record.deal, piece = %record.piece, reason,
            "a stored piece is corrupt; dropping it (the consumer's repair will replace it)");
        let mut accounts = self.accounts();
        match self.record(record.deal, record.piece) {
            Ok(Some(current)) if current == *record => {
                if let Err(err) = self.remove_locked(&mut accounts, record) {
                    error!(error = %err, "could not drop a corrupt piece");
                }
                self.inner.metrics.rotted_pieces.inc();
            }
            Ok(_) => {}
            Err(err) => error!(error = %err, "could not drop a corrupt piece"),
        }
        StoreError::Corrupt {
            deal: record.deal,
            piece: record.piece,
            reason: reason.to_string(),
        }
    }

    /// Leaves of a stored piece with Merkle proofs against its root.
    ///
    /// Each leaf is read from the piece and hashed: a piece whose bytes
    /// changed on disk never yields a proof that verifies.
    ///
    /// Cost: with the piece's block roots kept (every piece of more than
    /// one 8 KiB block stored since they were), one read of its block roots
    /// (0.39 % of the piece) and the tree over them, and one 8 KiB read and
    /// hash per leaf. Otherwise (roots missing or not leading to the root,
    /// or a block that no longer hashes to its root), reads and re-hashes
    /// the whole piece as the scrub does, holding it in memory: a corrupt
    /// piece is dropped, and kept roots are (re)written.
    ///
    /// The provider daemon's on-chain proofs ([`crate::daemon::prove`])
    /// prove the challenged leaves of their pieces through this too.
    pub fn audit(
        &self,
        deal: DealId,
        piece: PieceId,
        leaf_indexes: &[u64],
    ) -> Result<AuditReply, StoreError> {
        let mut reader = self.open_piece(deal, piece)?;
        let record = *reader.record();
        // Refuse a bad index before reading anything.
        if let Some(&index) = leaf_indexes
            .iter()
            .find(|&&index| index >= record.leaf_count)
        {
            return Err(StoreError::LeafOutOfRange {
                index,
                leaf_count: record.leaf_count,
            });
        }
        if let Some(blocks) = self.block_tree(&record)? {
            let mut proofs = Vec::with_capacity(leaf_indexes.len());
            for &index in leaf_indexes {
                let (offset, length) = block_span(index, record.length);
                let block = reader.read_at(offset, length)?;
                match blocks.prove(index, &block) {
                    Some(proof) => proofs.push(proof),
                    None => break,
                }
            }
            if proofs.len() == leaf_indexes.len() {
                return Ok(AuditReply {
                    root: record.root,
                    leaf_count: record.leaf_count,
                    proofs,
                });
            }
            // The block's bytes changed since its root was kept: the
            // re-hash below finds the piece corrupt and drops it.
            warn!(%deal, %piece, "a challenged block no longer hashes to its kept root; re-hashing the piece");
        }
        self.audit_rehashing(reader, leaf_indexes)
    }

    /// The kept block roots of `record`, if there are any and they still
    /// lead to its root.
    fn block_tree(&self, record: &PieceRecord) -> Result<Option<BlockTree>, StoreError> {
        let read = self.inner.db.begin_read()?;
        let table = match read.open_table(BLOCK_ROOTS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let Some(kept) = table.get(&key(record.deal, record.piece))? else {
            return Ok(None);
        };
        let blocks = BlockTree::decode(kept.value(), record.root, record.leaf_count);
        if blocks.is_none() {
            warn!(deal = %record.deal, piece = %record.piece,
                "a piece's kept block roots do not lead to its root; re-hashing the piece");
        }
        Ok(blocks)
    }

    /// [`PieceStore::audit`] by reading and re-hashing the whole piece.
    fn audit_rehashing(
        &self,
        mut reader: PieceReader,
        leaf_indexes: &[u64],
    ) -> Result<AuditReply, StoreError> {
        let record = *reader.record();
        let bytes = reader.read_verified()?;
        let mut builder = BlockTreeBuilder::new();
        builder.update(&bytes);
        let hashed = builder.finish();
        if hashed.root != record.root || hashed.leaf_count != record.leaf_count {
            return Err(self.drop_corrupt(&record, "its proof tree no longer has the indexed root"));
        }
        // Indexes were checked against the leaf count, and the roots were
        // just built from these very bytes, so every leaf has a proof.
        let out_of_range = |index| StoreError::LeafOutOfRange {
            index,
            leaf_count: record.leaf_count,
        };
        let mut proofs = Vec::with_capacity(leaf_indexes.len());
        match &hashed.blocks {
            Some(blocks) => {
                self.keep_block_roots(&record, blocks);
                for &index in leaf_indexes {
                    let (offset, length) = block_span(index, record.length);
                    let block = &bytes[offset as usize..(offset + length) as usize];
                    proofs.push(
                        blocks
                            .prove(index, block)
                            .ok_or_else(|| out_of_range(index))?,
                    );
                }
            }
            // One block: its tree is small.
            None => {
                let tree = PieceTree::build(&bytes);
                for &index in leaf_indexes {
                    proofs.push(tree.prove(&bytes, index).map_err(|_| out_of_range(index))?);
                }
            }
        }
        Ok(AuditReply {
            root: record.root,
            leaf_count: record.leaf_count,
            proofs,
        })
    }

    /// Keeps `blocks` for `record` (if it is still stored), so its next
    /// audit need not re-hash it. Best effort: failing costs the next audit
    /// a re-hash, not a wrong answer.
    fn keep_block_roots(&self, record: &PieceRecord, blocks: &BlockTree) {
        let _accounts = self.accounts();
        let kept = self.record(record.deal, record.piece).and_then(|current| {
            if current != Some(*record) {
                return Ok(());
            }
            let write = self.inner.db.begin_write()?;
            write
                .open_table(BLOCK_ROOTS)?
                .insert(&key(record.deal, record.piece), blocks.encode().as_slice())?;
            write.commit()?;
            Ok(())
        });
        if let Err(err) = kept {
            warn!(deal = %record.deal, piece = %record.piece, error = %err,
                "could not keep a piece's block roots; its next audit re-hashes it too");
        }
    }

    /// Re-hashes every stored piece, at most `bytes_per_sec` bytes per
    /// second (0: as fast as the disk goes), dropping and reporting any that
    /// rotted. Stops early (with `stopped` set) once `keep_going` says no.
    pub fn scrub(
        &self,
        bytes_per_sec: u64,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<ScrubReport, StoreError> {
        let mut report = ScrubReport::default();
        let mut pacer = Pacer::new(bytes_per_sec);
        for record in self.records()? {
            if !keep_going() {
                report.stopped = true;
                return Ok(report);
            }
            let path = self.piece_path(record.deal, record.piece);
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    if self.record(record.deal, record.piece)? == Some(record) {
                        self.drop_corrupt(&record, "its file is missing");
                        report.rotted.push((record.deal, record.piece));
                    }
                    continue;
                }
                Err(err) => return Err(io_error("open", &path)(err)),
            };
            let mut hasher = blake3::Hasher::new();
            let mut stopped = false;
            let length = read_chunks(&mut file, &path, |chunk| {
                hasher.update(chunk);
                self.inner.metrics.scrubbed_bytes.inc_by(chunk.len() as u64);
                if pacer.pace(chunk.len() as u64, keep_going) {
                    ControlFlow::Continue(())
                } else {
                    stopped = true;
                    ControlFlow::Break(())
                }
            })?;
            report.bytes_checked += length;
            if stopped {
                report.stopped = true;
                return Ok(report);
            }
            report.pieces_checked += 1;
            self.inner.metrics.scrubbed_pieces.inc();
            let actual = PieceId(*hasher.finalize().as_bytes());
            if actual != record.piece || length != record.length {
                self.drop_corrupt(
                    &record,
                    &format!("the scrub read {length} bytes hashing to {actual}"),
                );
                report.rotted.push((record.deal, record.piece));
            }
        }
        Ok(report)
    }
}

fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Keeps a byte rate by sleeping; checks `keep_going` while it sleeps.
struct Pacer {
    bytes_per_sec: u64,
    started: Instant,
    bytes: u64,
}

impl Pacer {
    fn new(bytes_per_sec: u64) -> Pacer {
        Pacer {
            bytes_per_sec,
            started: Instant::now(),
            bytes: 0,
        }
    }

    /// Accounts `bytes` and sleeps until the rate allows them; returns
    /// whether to go on.
    fn pace(&mut self, bytes: u64, keep_going: &dyn Fn() -> bool) -> bool {
        self.bytes += bytes;
        if self.bytes_per_sec == 0 {
            return keep_going();
        }
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_sec as f64);
        loop {
            if !keep_going() {
                return false;
            }
            let elapsed = self.started.elapsed();
            if elapsed >= due {
                return true;
            }
            std::thread::sleep((due - elapsed).min(Duration::from_millis(50)));
        }
    }
}

/// Space held for an upload in progress; released when dropped unless the
/// piece was committed.
struct Reservation {
    store: PieceStore,
    deal: DealId,
    bytes: u64,
    settled: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.store.accounts().release(self.deal, self.bytes);
        }
    }
}

/// A piece being received: feed it the bytes with [`PieceIngest::write`],
/// then [`PieceIngest::finish`]. Dropping it before `finish` succeeds
/// removes the temporary file and releases the reserved space.
pub struct PieceIngest {
    reservation: Reservation,
    piece: PieceId,
    length: u64,
    file: File,
    tmp_path: PathBuf,
    hasher: blake3::Hasher,
    tree: BlockTreeBuilder,
    received: u64,
    committed: bool,
}

impl std::fmt::Debug for PieceIngest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PieceIngest")
            .field("deal", &self.reservation.deal)
            .field("piece", &self.piece)
            .field("length", &self.length)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl PieceIngest {
    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Writes the next bytes of the piece, hashing them on the way (BLAKE3
    /// and the proof tree: CPU-bound, so call it off the async executor).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if self.received + bytes.len() as u64 > self.length {
            return Err(StoreError::TooLong {
                expected: self.length,
            });
        }
        self.hasher.update(bytes);
        self.tree.update(bytes);
        self.file
            .write_all(bytes)
            .map_err(io_error("write", &self.tmp_path))?;
        self.received += bytes.len() as u64;
        Ok(())
    }

    /// Checks the piece is whole and is what its id says, makes it durable
    /// and indexes it; returns its root and leaf count. If the piece is
    /// already stored under the deal, keeps the stored copy.
    pub fn finish(mut self) -> Result<StoredPiece, StoreError> {
        let deal = self.reservation.deal;
        if self.received != self.length {
            return Err(StoreError::Truncated {
                expected: self.length,
                received: self.received,
            });
        }
        let actual = PieceId(*self.hasher.finalize().as_bytes());
        if actual != self.piece {
            return Err(StoreError::PieceIdMismatch {
                expected: self.piece,
                actual,
            });
        }
        self.file
            .sync_all()
            .map_err(io_error("fsync", &self.tmp_path))?;
        let hashed = std::mem::take(&mut self.tree).finish();
        debug_assert_eq!(hashed.leaf_count, leaf_count_for(self.length));
        let record = PieceRecord {
            deal,
            piece: self.piece,
            length: self.length,
            root: hashed.root,
            leaf_count: hashed.leaf_count,
            stored_at_secs: now_secs(),
        };

        let store = self.reservation.store.clone();
        let mut accounts = store.accounts();
        if let Some(existing) = store.record(deal, self.piece)? {
            // Stored meanwhile by another upload of the same bytes.
            return Ok(existing.stored());
        }
        let path = store.piece_path(deal, self.piece);
        fs::rename(&self.tmp_path, &path).map_err(io_error("rename into place", &path))?;
        self.committed = true;
        let indexed = sync_dir(&store.inner.pieces_dir).and_then(|()| {
            let write = store.inner.db.begin_write()?;
            insert_piece(&write, &record, hashed.blocks.as_ref())?;
            write.commit()?;
            Ok(())
        });
        if let Err(err) = indexed {
            // Not acknowledged: take the file back out so the index and
            // the files agree (if this fails too, `open` re-indexes it).
            let _ = fs::remove_file(&path);
            return Err(err);
        }
        accounts.release(deal, self.length);
        accounts.add_piece(deal, self.length);
        self.reservation.settled = true;
        store.publish(&accounts);
        Ok(record.stored())
    }
}

impl Drop for PieceIngest {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

/// A stored piece opened for reading.
pub struct PieceReader {
    store: PieceStore,
    record: PieceRecord,
    file: File,
    path: PathBuf,
}

impl std::fmt::Debug for PieceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PieceReader")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl PieceReader {
    /// The piece's record.
    pub fn record(&self) -> &PieceRecord {
        &self.record
    }

    /// Hands `each` the bytes `offset..offset + length` in chunks of at most
    /// [`CHUNK_BYTES`]; stops early when `each` breaks.
    ///
    /// Only the file's length was checked: use [`PieceReader::send_verified`]
    /// for whole pieces.
    pub fn send_range(
        &mut self,
        offset: u64,
        length: u64,
        mut each: impl FnMut(Vec<u8>) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let piece_length = self.record.length;
        if offset
            .checked_add(length)
            .is_none_or(|end| end > piece_length)
        {
            return Err(StoreError::RangeOutOfBounds {
                offset,
                length,
                piece_length,
            });
        }
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(io_error("seek", &self.path))?;
        let mut left = length;
        while left > 0 {
            let chunk = self.read_chunk(left.min(CHUNK_BYTES as u64))?;
            left -= chunk.len() as u64;
            if each(chunk).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Hands `each` the whole piece in chunks, verifying it against its id
    /// as it goes. The last chunk is held back until the whole piece
    /// verified, so a corrupt piece is never handed over whole: on a
    /// mismatch the piece is dropped and [`StoreError::Corrupt`] returned.
    pub fn send_verified(
        &mut self,
        mut each: impl FnMut(Vec<u8>) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(io_error("seek", &self.path))?;
        let mut hasher = blake3::Hasher::new();
        let mut left = self.record.length;
        let mut held: Option<Vec<u8>> = None;
        while left > 0 {
            let chunk = self.read_chunk(left.min(CHUNK_BYTES as u64))?;
            left -= chunk.len() as u64;
            hasher.update(&chunk);
            if let Some(previous) = held.replace(chunk)
                && each(previous).is_break()
            {
                return Ok(());
            }
        }
        self.check_id(&hasher)?;
        if let Some(last) = held {
            let _ = each(last);
        }
        Ok(())
    }

    /// The whole piece, verified against its id.
    pub fn read_verified(&mut self) -> Result<Vec<u8>, StoreError> {
        let capacity = usize::try_from(self.record.length).unwrap_or(usize::MAX);
        let mut bytes = Vec::with_capacity(capacity);
        self.send_verified(|chunk| {
            bytes.extend_from_slice(&chunk);
            ControlFlow::Continue(())
        })?;
        Ok(bytes)
    }

    /// The bytes `offset..offset + length`, at most [`CHUNK_BYTES`], inside
    /// the piece (the file's length was checked when it was opened).
    fn read_at(&mut self, offset: u64, length: u64) -> Result<Vec<u8>, StoreError> {
        debug_assert!(length <= CHUNK_BYTES as u64 && offset + length <= self.record.length);
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(io_error("seek", &self.path))?;
        self.read_chunk(length)
    }

    /// The next `length` bytes, read into a fresh buffer's spare capacity
    /// (no zeroing first: the chunk is handed on, not reused).
    fn read_chunk(&mut self, length: u64) -> Result<Vec<u8>, StoreError> {
        // At most CHUNK_BYTES, so the cast cannot truncate.
        let mut chunk = Vec::with_capacity(length as usize);
        match (&mut self.file).take(length).read_to_end(&mut chunk) {
            Ok(read) if read as u64 == length => Ok(chunk),
            Ok(_) => Err(self
                .store
                .drop_corrupt(&self.record, "its file is shorter than indexed")),
            Err(err) => Err(io_error("read", &self.path)(err)),
        }
    }

    fn check_id(&self, hasher: &blake3::Hasher) -> Result<(), StoreError> {
        let actual = PieceId(*hasher.finalize().as_bytes());
        if actual == self.record.piece {
            Ok(())
        } else {
            Err(self
                .store
                .drop_corrupt(&self.record, &format!("its bytes hash to {actual}")))
        }
    }
}

#[cfg(test)]
impl PieceStore {
    /// Drops the kept block roots of `piece` of `deal`, as a store from
    /// before they were kept has none (for other modules' tests).
    pub(crate) fn forget_block_roots(&self, deal: DealId, piece: PieceId) {
        let write = self.inner.db.begin_write().unwrap();
        write
            .open_table(BLOCK_ROOTS)
            .unwrap()
            .remove(&key(deal, piece))
            .unwrap();
        write.commit().unwrap();
    }

    /// Where `piece` of `deal` is (or would be) stored (for other modules'
    /// tests).
    pub(crate) fn piece_file(&self, deal: DealId, piece: PieceId) -> PathBuf {
        self.piece_path(deal, piece)
    }

    /// Whether `piece` of `deal` is stored with block roots that lead to
    /// its root (for other modules' tests).
    pub(crate) fn keeps_block_roots(&self, deal: DealId, piece: PieceId) -> bool {
        let record = self.record(deal, piece).unwrap();
        record.is_some_and(|record| self.block_tree(&record).unwrap().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::check_audit;
    use blocks::{BLOCK_BYTES, BLOCK_LEAVES};
    use rand::{Rng, SeedableRng};

    #[test]
    fn file_names_round_trip() {
        let deal = DealId::from(42);
        let piece = PieceId::of(b"piece");
        let name = file_name(deal, piece);
        assert_eq!(name.len(), 129);
        assert_eq!(parse_file_name(&name), Some((deal, piece)));
        assert_eq!(parse_file_name("index.redb"), None);
        assert_eq!(parse_file_name(&format!("{name}.part")), None);
    }

    #[test]
    fn records_round_trip() {
        let record = PieceRecord {
            deal: DealId::from(9),
            piece: PieceId::of(b"x"),
            length: 700,
            root: B256::repeat_byte(7),
            leaf_count: 3,
            stored_at_secs: 1_700_000_000,
        };
        let key = key(record.deal, record.piece);
        assert_eq!(PieceRecord::decode(&key, &record.encode()), record);
    }

    #[test]
    fn the_pacer_keeps_the_rate() {
        let mut pacer = Pacer::new(1 << 20);
        let started = Instant::now();
        assert!(pacer.pace(1 << 18, &|| true));
        assert!(started.elapsed() >= Duration::from_millis(240));
        assert!(!pacer.pace(1 << 20, &|| false));
    }

    /// A directory removed when dropped.
    struct TestDir(PathBuf);

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A store in a fresh directory.
    struct TestStore {
        store: PieceStore,
        dir: TestDir,
    }

    const DEAL: DealId = DealId(alloy_primitives::U256::from_limbs([7, 0, 0, 0]));

    impl TestStore {
        fn new(label: &str) -> TestStore {
            let dir = TestDir(std::env::temp_dir().join(format!(
                "dbytes-store-{label}-{}-{:016x}",
                std::process::id(),
                rand::random::<u64>()
            )));
            let (store, _) = TestStore::open(&dir);
            TestStore { store, dir }
        }

        fn open(dir: &TestDir) -> (PieceStore, RecoveryReport) {
            let config = StoreConfig {
                data_dir: dir.0.clone(),
                capacity_bytes: 1 << 30,
            };
            PieceStore::open(&config, ProviderMetrics::new()).unwrap()
        }

        /// Closes the store and opens it again (as after a restart).
        fn reopen(self) -> (TestStore, RecoveryReport) {
            let TestStore { store, dir } = self;
            drop(store);
            let (store, report) = TestStore::open(&dir);
            (TestStore { store, dir }, report)
        }

        fn put(&self, bytes: &[u8]) -> (PieceId, StoredPiece) {
            let id = PieceId::of(bytes);
            let mut ingest = self
                .store
                .begin_put(DEAL, id, bytes.len() as u64, 1 << 30)
                .unwrap();
            for chunk in bytes.chunks(100_000) {
                ingest.write(chunk).unwrap();
            }
            (id, ingest.finish().unwrap())
        }

        fn piece_path(&self, piece: PieceId) -> PathBuf {
            self.store.piece_path(DEAL, piece)
        }

        /// XORs `mask` into the byte at `offset` of the piece file.
        fn rot(&self, piece: PieceId, offset: usize, mask: u8) {
            let path = self.piece_path(piece);
            let mut on_disk = fs::read(&path).unwrap();
            on_disk[offset] ^= mask;
            fs::write(&path, &on_disk).unwrap();
        }

        fn kept_roots(&self, piece: PieceId) -> Option<Vec<u8>> {
            let read = self.store.inner.db.begin_read().unwrap();
            let table = read.open_table(BLOCK_ROOTS).unwrap();
            table
                .get(&key(DEAL, piece))
                .unwrap()
                .map(|value| value.value().to_vec())
        }

        fn set_kept_roots(&self, piece: PieceId, roots: Option<&[u8]>) {
            let write = self.store.inner.db.begin_write().unwrap();
            {
                let mut table = write.open_table(BLOCK_ROOTS).unwrap();
                match roots {
                    Some(roots) => table.insert(&key(DEAL, piece), roots).unwrap(),
                    None => table.remove(&key(DEAL, piece)).unwrap(),
                };
            }
            write.commit().unwrap();
        }

        /// Audits `asked` and checks the answer against the bytes sent.
        fn audit_checks_out(&self, bytes: &[u8], stored: &StoredPiece, asked: &[u64]) {
            let reply = self.store.audit(DEAL, PieceId::of(bytes), asked).unwrap();
            assert_eq!(check_audit(bytes, stored, asked, &reply), Ok(()));
        }
    }

    fn random_bytes(length: usize, seed: u64) -> Vec<u8> {
        let mut bytes = vec![0u8; length];
        rand::rngs::StdRng::seed_from_u64(seed).fill(&mut bytes[..]);
        bytes
    }

    /// 40 blocks and a short one: leaves from every kind of place.
    const LENGTH: usize = 40 * BLOCK_BYTES + 1000;

    fn challenges(leaf_count: u64) -> Vec<u64> {
        vec![0, BLOCK_LEAVES - 1, BLOCK_LEAVES, 777, leaf_count - 1]
    }

    #[test]
    fn an_audit_reads_only_the_challenged_blocks_and_their_kept_roots() {
        let test = TestStore::new("audit-blocks");
        let bytes = random_bytes(LENGTH, 1);
        let (id, stored) = test.put(&bytes);
        assert!(
            test.kept_roots(id).is_some(),
            "the put keeps the block roots"
        );
        test.audit_checks_out(&bytes, &stored, &challenges(stored.leaf_count));

        // Rot in a block no challenge touches goes unseen by the audit (the
        // scrub's job): proof that the audit did not re-hash the piece.
        test.rot(id, 30 * BLOCK_BYTES + 5, 0x01);
        test.audit_checks_out(&bytes, &stored, &challenges(stored.leaf_count));
        assert!(test.store.record(DEAL, id).unwrap().is_some());
    }

    #[test]
    fn a_corrupt_or_deleted_piece_fails_its_audit() {
        let test = TestStore::new("audit-rot");
        let bytes = random_bytes(LENGTH, 2);
        let (id, stored) = test.put(&bytes);
        // A flipped byte in the short last block, the one challenged.
        test.rot(id, LENGTH - 3, 0x80);
        let last = stored.leaf_count - 1;
        assert!(matches!(
            test.store.audit(DEAL, id, &[3, last]),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(test.store.record(DEAL, id).unwrap(), None, "dropped");
        assert_eq!(test.kept_roots(id), None, "with its block roots");

        let (id, _) = test.put(&bytes);
        fs::remove_file(test.piece_path(id)).unwrap();
        assert!(matches!(
            test.store.audit(DEAL, id, &[3]),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(test.kept_roots(id), None);
    }

    #[test]
    fn lost_or_altered_block_roots_never_pass_a_wrong_audit() {
        let test = TestStore::new("audit-roots");
        let bytes = random_bytes(LENGTH, 3);
        let (id, stored) = test.put(&bytes);
        let kept = test.kept_roots(id).unwrap();
        let asked = challenges(stored.leaf_count);
        let mut flipped_root = kept.clone();
        flipped_root[2 + 32 + 7] ^= 0x01;
        let mut other_version = kept.clone();
        other_version[0] ^= 0xff;
        let short = &kept[..kept.len() - 32];
        let damages: [Option<&[u8]>; 5] = [
            None,
            Some(&flipped_root),
            Some(&other_version),
            Some(short),
            Some(&[]),
        ];
        for damage in damages {
            test.set_kept_roots(id, damage);
            // The audit re-hashes the intact piece, answers, and keeps the
            // right roots again.
            test.audit_checks_out(&bytes, &stored, &asked);
            assert_eq!(test.kept_roots(id).as_deref(), Some(&kept[..]));
        }

        // Altered roots and a rotted piece: the re-hash finds the rot.
        test.set_kept_roots(id, Some(&flipped_root));
        test.rot(id, 777 * 256 + 9, 0x04);
        assert!(matches!(
            test.store.audit(DEAL, id, &asked),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(test.store.record(DEAL, id).unwrap(), None);
    }

    #[test]
    fn pieces_stored_before_block_roots_were_kept_are_audited() {
        let test = TestStore::new("audit-old");
        let bytes = random_bytes(LENGTH, 4);
        let (id, stored) = test.put(&bytes);
        let kept = test.kept_roots(id).unwrap();
        // An index from before: no block-roots table at all.
        let write = test.store.inner.db.begin_write().unwrap();
        write.delete_table(BLOCK_ROOTS).unwrap();
        write.commit().unwrap();
        let (test, report) = test.reopen();
        assert_eq!(report, RecoveryReport::default());
        test.audit_checks_out(&bytes, &stored, &challenges(stored.leaf_count));
        assert_eq!(
            test.kept_roots(id),
            Some(kept),
            "kept from the first audit on"
        );

        // A piece of one block keeps none: its audit reads all of it.
        let small = random_bytes(BLOCK_BYTES - 100, 5);
        let (small_id, small_stored) = test.put(&small);
        assert_eq!(test.kept_roots(small_id), None);
        test.audit_checks_out(&small, &small_stored, &[0, small_stored.leaf_count - 1]);
        assert_eq!(test.kept_roots(small_id), None);
    }

    #[test]
    fn a_reindexed_piece_gets_its_block_roots_back_and_a_deleted_one_loses_them() {
        let test = TestStore::new("audit-reindex");
        let bytes = random_bytes(LENGTH, 6);
        let (id, stored) = test.put(&bytes);
        let kept = test.kept_roots(id).unwrap();
        // As if the process died after the rename, before the index commit.
        let write = test.store.inner.db.begin_write().unwrap();
        remove_piece(&write, &key(DEAL, id)).unwrap();
        write.commit().unwrap();
        let (test, report) = test.reopen();
        assert_eq!(report.reindexed, 1);
        assert_eq!(test.kept_roots(id), Some(kept));
        test.audit_checks_out(&bytes, &stored, &challenges(stored.leaf_count));

        assert!(test.store.delete(DEAL, id).unwrap());
        assert_eq!(test.kept_roots(id), None);
    }
}
