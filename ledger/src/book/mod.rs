//! The gateway's local book: users and access keys, buckets, object versions
//! and their manifests, multipart uploads, and pieces waiting to be freed,
//! in one redb file.
//!
//! It is pure storage: no networking, no clock (callers pass `now`), no
//! cryptography beyond drawing random ids. Every write is one redb
//! transaction, so an object version becomes visible whole or not at all,
//! and what it replaces is queued for freeing in the same commit.
//!
//! Rows are ordered as S3 lists them (see `row_key`): listing is a range scan
//! over `(bucket, key, version)` keys, never a full scan.
//!
//! Main types: [`Book`], [`Bucket`], [`ObjectVersion`], [`Manifest`],
//! [`Upload`], [`Part`], [`FreeTask`], [`BookError`].

mod deals;
mod listing;
mod multipart;
mod objects;
mod records;
mod repairs;
mod row_key;
#[cfg(test)]
mod tests;
mod watch;

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use rand::Rng;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::piece::PieceId;

pub use deals::{DealPieces, DealSlot, PostedCommitment};
pub use listing::{ListEntry, ListQuery, Listing, VersionEntry, VersionListing, VersionQuery};
pub use multipart::{
    CompletedPart, Completion, NewUpload, PartListing, UploadEntry, UploadListing, UploadQuery,
};
pub use objects::{DeleteOutcome, NewVersion, PutOutcome};
pub use records::{
    AccessKey, Bucket, BucketId, Checksums, DataKind, FreeTask, InvalidVersionId, KeyId, Manifest,
    ManifestPart, NewData, ObjectHeaders, ObjectVersion, Part, PieceRecord, Placement, Redundancy,
    SegmentRecord, UnixMillis, Upload, User, VersionId, Versioning, WriteCondition,
};
pub use repairs::{HealthRound, RepairOutcome, RepairStatus, RepairTask, SegmentRef};
pub use watch::DealWatch;

/// Counters (`seq`: the next sequence number for versions, uploads and frees).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// User id -> [`User`].
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// Access key id -> [`AccessKey`].
const ACCESS_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("access_keys");
/// Bucket name -> [`Bucket`].
const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
/// `bucket ‖ key ‖ !seq` -> [`ObjectVersion`], newest version of a key first.
const VERSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("versions");
/// `bucket ‖ key ‖ version id` -> seq of that version.
const VERSION_IDS: TableDefinition<&[u8], u64> = TableDefinition::new("version_ids");
/// `bucket ‖ key` -> seq of its latest version, for keys whose latest version
/// is an object (not a delete marker): what ListObjects walks.
const CURRENT: TableDefinition<&[u8], u64> = TableDefinition::new("current");
/// `bucket ‖ key id` -> sealed bytes of a small object.
const INLINE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("inline");
/// `bucket ‖ key id` -> [`Manifest`] of an object version.
const MANIFESTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("manifests");
/// `bucket ‖ key ‖ upload id` -> [`Upload`].
const UPLOADS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("uploads");
/// `bucket ‖ key ‖ upload id ‖ part number` -> [`Part`].
const PARTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("parts");
/// Task id -> [`FreeTask`].
const FREES: TableDefinition<u64, &[u8]> = TableDefinition::new("frees");

/// Why a book operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    /// The database file could not be read or written.
    #[error("the gateway's book (redb) failed: {0}; check the disk and the file's permissions")]
    Storage(#[from] redb::Error),
    /// A stored record did not decode: the file is damaged or from an
    /// incompatible version.
    #[error(
        "the book's {table} table holds a record that does not decode ({reason}); restore the book from a snapshot"
    )]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// No user has this id.
    #[error("no user {0:?}; add it first with `dbytes gateway user add`")]
    NoSuchUser(String),
    /// A user with this id exists.
    #[error("user {0:?} already exists")]
    UserExists(String),
    /// The user still owns buckets.
    #[error("user {user:?} still owns {buckets} bucket(s); delete them first")]
    UserOwnsBuckets {
        /// The user.
        user: String,
        /// How many buckets.
        buckets: usize,
    },
    /// No access key has this id.
    #[error("no access key {0:?}")]
    NoSuchAccessKey(String),
    /// An access key with this id exists.
    #[error("access key {0:?} already exists")]
    AccessKeyExists(String),
    /// No bucket has this name (or it was deleted and created again).
    #[error("no bucket {0:?}")]
    NoSuchBucket(String),
    /// The bucket name is taken.
    #[error("bucket {name:?} already exists (owned by {owner:?})")]
    BucketExists {
        /// The name.
        name: String,
        /// Its owner.
        owner: String,
    },
    /// The bucket still holds object versions or delete markers.
    #[error("bucket {0:?} is not empty: delete every object version and delete marker first")]
    BucketNotEmpty(String),
    /// Versioning cannot go back to unversioned once enabled.
    #[error("bucket {0:?} has had versioning enabled; it can be suspended, not turned off")]
    VersioningCannotBeDisabled(String),
    /// No multipart upload has this id (for this bucket and key).
    #[error("no multipart upload {0:?} (completed, aborted or never created)")]
    NoSuchUpload(String),
    /// A part named in a completion is missing or has another ETag.
    #[error("part {0} was not uploaded or its ETag does not match")]
    InvalidPart(u32),
    /// The parts of a completion are not in ascending order.
    #[error("the parts of a completion must be listed in ascending order of part number")]
    InvalidPartOrder,
    /// A part other than the last is smaller than the minimum part size.
    #[error(
        "part {part_number} is {size} bytes; every part but the last must be at least {min} bytes"
    )]
    EntityTooSmall {
        /// The part.
        part_number: u32,
        /// Its size.
        size: u64,
        /// The minimum.
        min: u64,
    },
    /// A write condition (If-Match / If-None-Match) did not hold.
    #[error("the object's current state does not meet the write's condition")]
    PreconditionFailed,
}

impl From<redb::DatabaseError> for BookError {
    fn from(err: redb::DatabaseError) -> Self {
        BookError::Storage(err.into())
    }
}
impl From<redb::TransactionError> for BookError {
    fn from(err: redb::TransactionError) -> Self {
        BookError::Storage(err.into())
    }
}
impl From<redb::TableError> for BookError {
    fn from(err: redb::TableError) -> Self {
        BookError::Storage(err.into())
    }
}
impl From<redb::StorageError> for BookError {
    fn from(err: redb::StorageError) -> Self {
        BookError::Storage(err.into())
    }
}
impl From<redb::CommitError> for BookError {
    fn from(err: redb::CommitError) -> Self {
        BookError::Storage(err.into())
    }
}

/// The book: a cheap handle (clone it freely) on one redb database.
///
/// Every method is synchronous and may wait for the disk (a commit is an
/// fsync): async callers run them on a blocking pool.
#[derive(Clone)]
pub struct Book {
    db: Arc<Database>,
}

impl std::fmt::Debug for Book {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Book").finish_non_exhaustive()
    }
}

pub(crate) fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Invariant: the records are plain structs of strings, numbers and maps
    // with string keys, which JSON always encodes.
    serde_json::to_vec(record).expect("book records encode as JSON")
}

pub(crate) fn decode<T: DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, BookError> {
    serde_json::from_slice(bytes).map_err(|err| BookError::Corrupt {
        table,
        reason: err.to_string(),
    })
}

/// The range `[start, end)` of table keys, `end` `None` for unbounded.
pub(crate) fn bounds<'a>(
    start: &'a [u8],
    end: &'a Option<Vec<u8>>,
) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    (
        Bound::Included(start),
        end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
    )
}

/// Draws the next sequence number.
pub(crate) fn next_seq(txn: &WriteTransaction) -> Result<u64, BookError> {
    let mut meta = txn.open_table(META)?;
    let seq = meta.get("seq")?.map(|guard| guard.value()).unwrap_or(1);
    meta.insert("seq", seq + 1)?;
    Ok(seq)
}

/// Queues pieces for freeing inside `txn`.
pub(crate) fn queue_free_in(
    txn: &WriteTransaction,
    pieces: Vec<(PieceId, Placement)>,
    now: UnixMillis,
) -> Result<(), BookError> {
    if pieces.is_empty() {
        return Ok(());
    }
    let id = next_seq(txn)?;
    let task = FreeTask {
        id,
        pieces,
        attempts: 0,
        not_before_ms: now,
    };
    txn.open_table(FREES)?
        .insert(id, encode(&task).as_slice())?;
    Ok(())
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}

impl Book {
    /// Opens the book at `path`, creating it (and its tables) if absent.
    pub fn open(path: impl AsRef<Path>) -> Result<Book, BookError> {
        let db = Database::create(path)?;
        Self::with_database(db)
    }

    /// A book held in memory only (tests, throwaway gateways).
    pub fn in_memory() -> Result<Book, BookError> {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Self::with_database(db)
    }

    fn with_database(db: Database) -> Result<Book, BookError> {
        let txn = db.begin_write()?;
        txn.open_table(META)?;
        txn.open_table(USERS)?;
        txn.open_table(ACCESS_KEYS)?;
        txn.open_table(BUCKETS)?;
        txn.open_table(VERSIONS)?;
        txn.open_table(VERSION_IDS)?;
        txn.open_table(CURRENT)?;
        txn.open_table(INLINE)?;
        txn.open_table(MANIFESTS)?;
        txn.open_table(UPLOADS)?;
        txn.open_table(PARTS)?;
        txn.open_table(FREES)?;
        txn.commit()?;
        Ok(Book { db: Arc::new(db) })
    }

    // ---- users and access keys ----

    /// Adds a user.
    pub fn add_user(
        &self,
        id: &str,
        display_name: &str,
        now: UnixMillis,
    ) -> Result<User, BookError> {
        let txn = self.db.begin_write()?;
        let user = {
            let mut users = txn.open_table(USERS)?;
            if users.get(id)?.is_some() {
                return Err(BookError::UserExists(id.to_owned()));
            }
            let user = User {
                id: id.to_owned(),
                display_name: display_name.to_owned(),
                created_ms: now,
            };
            users.insert(id, encode(&user).as_slice())?;
            user
        };
        txn.commit()?;
        Ok(user)
    }

    /// The user with this id.
    pub fn user(&self, id: &str) -> Result<Option<User>, BookError> {
        let txn = self.db.begin_read()?;
        let users = txn.open_table(USERS)?;
        users
            .get(id)?
            .map(|guard| decode("users", guard.value()))
            .transpose()
    }

    /// Every user, by id.
    pub fn list_users(&self) -> Result<Vec<User>, BookError> {
        let txn = self.db.begin_read()?;
        let users = txn.open_table(USERS)?;
        users
            .iter()?
            .map(|row| decode("users", row?.1.value()))
            .collect()
    }

    /// Removes a user and its access keys; refused while it owns buckets.
    pub fn remove_user(&self, id: &str) -> Result<(), BookError> {
        let owned = self.list_buckets(id)?.len();
        if owned > 0 {
            return Err(BookError::UserOwnsBuckets {
                user: id.to_owned(),
                buckets: owned,
            });
        }
        let txn = self.db.begin_write()?;
        {
            let mut users = txn.open_table(USERS)?;
            if users.remove(id)?.is_none() {
                return Err(BookError::NoSuchUser(id.to_owned()));
            }
            let mut keys = txn.open_table(ACCESS_KEYS)?;
            keys.retain(|_, value| {
                decode::<AccessKey>("access_keys", value).is_ok_and(|key| key.user_id != id)
            })?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Issues a fresh access key for `user_id`: a 20-character id and a
    /// 40-character secret drawn at random.
    pub fn issue_access_key(&self, user_id: &str, now: UnixMillis) -> Result<AccessKey, BookError> {
        const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const SECRET_ALPHABET: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let key = AccessKey {
            access_key_id: format!("DB{}", random_string(18, ID_ALPHABET)),
            secret_access_key: random_string(40, SECRET_ALPHABET),
            user_id: user_id.to_owned(),
            created_ms: now,
        };
        self.add_access_key(&key)?;
        Ok(key)
    }

    /// Records an access key with a known secret (e.g. one printed by `devnet`).
    pub fn add_access_key(&self, key: &AccessKey) -> Result<(), BookError> {
        let txn = self.db.begin_write()?;
        {
            if txn.open_table(USERS)?.get(key.user_id.as_str())?.is_none() {
                return Err(BookError::NoSuchUser(key.user_id.clone()));
            }
            let mut keys = txn.open_table(ACCESS_KEYS)?;
            if keys.get(key.access_key_id.as_str())?.is_some() {
                return Err(BookError::AccessKeyExists(key.access_key_id.clone()));
            }
            keys.insert(key.access_key_id.as_str(), encode(key).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The access key with this id.
    pub fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, BookError> {
        let txn = self.db.begin_read()?;
        let keys = txn.open_table(ACCESS_KEYS)?;
        keys.get(access_key_id)?
            .map(|guard| decode("access_keys", guard.value()))
            .transpose()
    }

    /// Access keys, of one user or of all.
    pub fn list_access_keys(&self, user_id: Option<&str>) -> Result<Vec<AccessKey>, BookError> {
        let txn = self.db.begin_read()?;
        let keys = txn.open_table(ACCESS_KEYS)?;
        let mut out = Vec::new();
        for row in keys.iter()? {
            let key: AccessKey = decode("access_keys", row?.1.value())?;
            if user_id.is_none_or(|user| user == key.user_id) {
                out.push(key);
            }
        }
        Ok(out)
    }

    /// Revokes an access key.
    pub fn remove_access_key(&self, access_key_id: &str) -> Result<(), BookError> {
        let txn = self.db.begin_write()?;
        if txn
            .open_table(ACCESS_KEYS)?
            .remove(access_key_id)?
            .is_none()
        {
            return Err(BookError::NoSuchAccessKey(access_key_id.to_owned()));
        }
        txn.commit()?;
        Ok(())
    }

    // ---- buckets ----

    /// Creates a bucket with a fresh random id, unversioned.
    pub fn create_bucket(
        &self,
        name: &str,
        owner: &str,
        redundancy: Redundancy,
        now: UnixMillis,
    ) -> Result<Bucket, BookError> {
        let txn = self.db.begin_write()?;
        let bucket = {
            let mut buckets = txn.open_table(BUCKETS)?;
            if let Some(existing) = buckets.get(name)? {
                let existing: Bucket = decode("buckets", existing.value())?;
                return Err(BookError::BucketExists {
                    name: name.to_owned(),
                    owner: existing.owner,
                });
            }
            let bucket = Bucket {
                name: name.to_owned(),
                id: BucketId::random(),
                owner: owner.to_owned(),
                created_ms: now,
                versioning: Versioning::Unversioned,
                redundancy,
            };
            buckets.insert(name, encode(&bucket).as_slice())?;
            bucket
        };
        txn.commit()?;
        Ok(bucket)
    }

    /// The bucket with this name.
    pub fn bucket(&self, name: &str) -> Result<Option<Bucket>, BookError> {
        let txn = self.db.begin_read()?;
        let buckets = txn.open_table(BUCKETS)?;
        buckets
            .get(name)?
            .map(|guard| decode("buckets", guard.value()))
            .transpose()
    }

    /// The buckets `owner` owns, by name (a scan of the bucket table, which
    /// holds hundreds of rows, not millions).
    pub fn list_buckets(&self, owner: &str) -> Result<Vec<Bucket>, BookError> {
        let txn = self.db.begin_read()?;
        let buckets = txn.open_table(BUCKETS)?;
        let mut out = Vec::new();
        for row in buckets.iter()? {
            let bucket: Bucket = decode("buckets", row?.1.value())?;
            if bucket.owner == owner {
                out.push(bucket);
            }
        }
        Ok(out)
    }

    fn update_bucket(
        &self,
        name: &str,
        change: impl FnOnce(&mut Bucket) -> Result<(), BookError>,
    ) -> Result<Bucket, BookError> {
        let txn = self.db.begin_write()?;
        let bucket = {
            let mut buckets = txn.open_table(BUCKETS)?;
            let mut bucket: Bucket = match buckets.get(name)? {
                Some(guard) => decode("buckets", guard.value())?,
                None => return Err(BookError::NoSuchBucket(name.to_owned())),
            };
            change(&mut bucket)?;
            buckets.insert(name, encode(&bucket).as_slice())?;
            bucket
        };
        txn.commit()?;
        Ok(bucket)
    }

    /// Sets a bucket's versioning state: Enabled or Suspended (Unversioned
    /// only while it has never been enabled).
    pub fn set_versioning(&self, name: &str, versioning: Versioning) -> Result<Bucket, BookError> {
        self.update_bucket(name, |bucket| {
            if versioning == Versioning::Unversioned && bucket.versioning != Versioning::Unversioned
            {
                return Err(BookError::VersioningCannotBeDisabled(name.to_owned()));
            }
            bucket.versioning = versioning;
            Ok(())
        })
    }

    /// Sets the redundancy of objects written to a bucket from now on.
    pub fn set_redundancy(&self, name: &str, redundancy: Redundancy) -> Result<Bucket, BookError> {
        self.update_bucket(name, |bucket| {
            bucket.redundancy = redundancy;
            Ok(())
        })
    }

    /// Deletes an empty bucket (no versions, no delete markers); its
    /// unfinished multipart uploads are aborted and their pieces queued for
    /// freeing.
    pub fn delete_bucket(&self, name: &str, now: UnixMillis) -> Result<(), BookError> {
        let txn = self.db.begin_write()?;
        {
            let mut buckets = txn.open_table(BUCKETS)?;
            let bucket: Bucket = match buckets.get(name)? {
                Some(guard) => decode("buckets", guard.value())?,
                None => return Err(BookError::NoSuchBucket(name.to_owned())),
            };
            let start = bucket.id.0.to_vec();
            let end = row_key::successor(&start);
            let range = bounds(&start, &end);
            if txn
                .open_table(VERSIONS)?
                .range::<&[u8]>(range)?
                .next()
                .is_some()
            {
                return Err(BookError::BucketNotEmpty(name.to_owned()));
            }
            txn.open_table(UPLOADS)?
                .retain_in::<&[u8], _>(range, |_, _| false)?;
            let mut freed = Vec::new();
            let mut parts = txn.open_table(PARTS)?;
            for row in parts.extract_from_if::<&[u8], _>(range, |_, _| true)? {
                let part: Part = decode("parts", row?.1.value())?;
                freed.extend(part.manifest.placed_pieces());
            }
            drop(parts);
            queue_free_in(&txn, freed, now)?;
            buckets.remove(name)?;
        }
        txn.commit()?;
        Ok(())
    }

    // ---- pieces to free ----

    /// Queues pieces for freeing (e.g. those of a write that failed half way).
    pub fn queue_free(
        &self,
        pieces: Vec<(PieceId, Placement)>,
        now: UnixMillis,
    ) -> Result<(), BookError> {
        if pieces.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        queue_free_in(&txn, pieces, now)?;
        txn.commit()?;
        Ok(())
    }

    /// Up to `limit` tasks whose time has come, oldest first.
    pub fn due_frees(&self, now: UnixMillis, limit: usize) -> Result<Vec<FreeTask>, BookError> {
        let txn = self.db.begin_read()?;
        let frees = txn.open_table(FREES)?;
        let mut out = Vec::new();
        for row in frees.iter()? {
            let task: FreeTask = decode("frees", row?.1.value())?;
            if task.not_before_ms <= now {
                out.push(task);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Every queued task (for status displays and tests).
    pub fn pending_frees(&self) -> Result<Vec<FreeTask>, BookError> {
        self.due_frees(UnixMillis::MAX, usize::MAX)
    }

    /// Drops a task whose pieces were deleted.
    pub fn finish_free(&self, id: u64) -> Result<(), BookError> {
        let txn = self.db.begin_write()?;
        txn.open_table(FREES)?.remove(id)?;
        txn.commit()?;
        Ok(())
    }

    /// Records a failed attempt: try again at `not_before_ms`.
    pub fn retry_free(&self, id: u64, not_before_ms: UnixMillis) -> Result<(), BookError> {
        let txn = self.db.begin_write()?;
        {
            let mut frees = txn.open_table(FREES)?;
            let task: Option<FreeTask> = frees
                .get(id)?
                .map(|guard| decode("frees", guard.value()))
                .transpose()?;
            if let Some(mut task) = task {
                task.attempts += 1;
                task.not_before_ms = not_before_ms;
                frees.insert(id, encode(&task).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}
