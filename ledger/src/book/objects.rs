//! Object versions: writing one (atomically, with what it replaces queued
//! for freeing), deleting (delete markers, the "null" version), and reading.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use super::records::{
    Bucket, BucketId, Checksums, DataKind, KeyId, Manifest, NewData, ObjectHeaders, ObjectVersion,
    UnixMillis, VersionId, Versioning, WriteCondition,
};
use super::{
    BUCKETS, Book, BookError, CURRENT, INLINE, MANIFESTS, VERSION_IDS, VERSIONS, bounds, decode,
    encode, next_seq, queue_free_in, row_key,
};

/// An object version to write with [`Book::put_version`].
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// The object key.
    pub key: String,
    /// The id the body was sealed under (drawn at random by the writer).
    /// With versioning enabled it is also the S3 version id.
    pub key_id: KeyId,
    /// Plaintext bytes.
    pub size: u64,
    /// The S3 ETag, without quotes.
    pub etag: String,
    /// The writing user.
    pub owner: String,
    /// Content-Type and the other stored headers.
    pub headers: ObjectHeaders,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
    /// Verified checksums.
    pub checksums: Checksums,
    /// The plaintext size of each part, for multipart objects.
    pub part_sizes: Vec<u64>,
    /// The body.
    pub data: NewData,
    /// A condition on the key's current object, checked in the commit.
    pub condition: Option<WriteCondition>,
}

/// What [`Book::put_version`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// The version now visible.
    pub version: ObjectVersion,
    /// The "null" version it replaced (its pieces are queued for freeing).
    pub replaced: Option<ObjectVersion>,
}

/// What [`Book::delete_object`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The version id S3 reports: the delete marker's when one was made, the
    /// deleted version's when one was named.
    pub version_id: Option<VersionId>,
    /// Whether a delete marker was made, or the deleted version was one.
    pub delete_marker: bool,
    /// The version removed, if any (its pieces are queued for freeing).
    pub removed: Option<ObjectVersion>,
}

/// The bucket `name`, if it still is the bucket with id `id`.
pub(super) fn bucket_in(
    txn: &WriteTransaction,
    name: &str,
    id: &BucketId,
) -> Result<Bucket, BookError> {
    let buckets = txn.open_table(BUCKETS)?;
    let bucket: Option<Bucket> = buckets
        .get(name)?
        .map(|guard| decode("buckets", guard.value()))
        .transpose()?;
    match bucket {
        Some(bucket) if bucket.id == *id => Ok(bucket),
        _ => Err(BookError::NoSuchBucket(name.to_owned())),
    }
}

/// The newest version (or delete marker) of `key`, with its sequence number.
pub(super) fn newest(
    versions: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket: &BucketId,
    key: &str,
) -> Result<Option<(u64, ObjectVersion)>, BookError> {
    let start = row_key::object(bucket, key);
    let end = row_key::successor(&start);
    let Some(row) = versions.range::<&[u8]>(bounds(&start, &end))?.next() else {
        return Ok(None);
    };
    let (row_key_guard, value) = row?;
    let seq =
        row_key::version_seq(&row_key_guard.value()[start.len()..]).ok_or(BookError::Corrupt {
            table: "versions",
            reason: "a version row without a sequence number".into(),
        })?;
    Ok(Some((seq, decode("versions", value.value())?)))
}

/// The sequence number of version `version_id` of `key`.
pub(super) fn find_seq(
    version_ids: &impl ReadableTable<&'static [u8], u64>,
    bucket: &BucketId,
    key: &str,
    version_id: &VersionId,
) -> Result<Option<u64>, BookError> {
    let row = row_key::with_suffix(bucket, key, &version_id.index_bytes());
    Ok(version_ids.get(row.as_slice())?.map(|guard| guard.value()))
}

fn data_row(bucket: &BucketId, key_id: &KeyId) -> Vec<u8> {
    let mut row = Vec::with_capacity(32);
    row.extend_from_slice(&bucket.0);
    row.extend_from_slice(&key_id.0);
    row
}

/// Removes one version with its index row and data; queues its pieces for freeing.
pub(super) fn remove_version_in(
    txn: &WriteTransaction,
    bucket: &BucketId,
    key: &str,
    seq: u64,
    now: UnixMillis,
) -> Result<Option<ObjectVersion>, BookError> {
    let removed: Option<ObjectVersion> = txn
        .open_table(VERSIONS)?
        .remove(row_key::version(bucket, key, seq).as_slice())?
        .map(|guard| decode("versions", guard.value()))
        .transpose()?;
    let Some(version) = removed else {
        return Ok(None);
    };
    txn.open_table(VERSION_IDS)?
        .remove(row_key::with_suffix(bucket, key, &version.version_id.index_bytes()).as_slice())?;
    let data = data_row(bucket, &version.key_id);
    match version.data {
        DataKind::Empty => {}
        DataKind::Inline => {
            txn.open_table(INLINE)?.remove(data.as_slice())?;
        }
        DataKind::Pieces => {
            let manifest: Option<Manifest> = txn
                .open_table(MANIFESTS)?
                .remove(data.as_slice())?
                .map(|guard| decode("manifests", guard.value()))
                .transpose()?;
            if let Some(manifest) = manifest {
                queue_free_in(txn, manifest.placed_pieces(), now)?;
            }
        }
    }
    Ok(Some(version))
}

/// Points the `current` row of `key` at its newest version, or drops it when
/// there is none or it is a delete marker.
pub(super) fn refresh_current(
    txn: &WriteTransaction,
    bucket: &BucketId,
    key: &str,
) -> Result<(), BookError> {
    let newest = newest(&txn.open_table(VERSIONS)?, bucket, key)?;
    let mut current = txn.open_table(CURRENT)?;
    let row = row_key::object(bucket, key);
    match newest {
        Some((seq, version)) if !version.delete_marker => {
            current.insert(row.as_slice(), seq)?;
        }
        _ => {
            current.remove(row.as_slice())?;
        }
    }
    Ok(())
}

/// Inserts a version as the newest of its key.
pub(super) fn insert_version_in(
    txn: &WriteTransaction,
    bucket: &BucketId,
    version: &ObjectVersion,
    data: NewData,
) -> Result<(), BookError> {
    let seq = next_seq(txn)?;
    let index_row = row_key::with_suffix(bucket, &version.key, &version.version_id.index_bytes());
    {
        let mut version_ids = txn.open_table(VERSION_IDS)?;
        if version_ids.get(index_row.as_slice())?.is_some() {
            return Err(BookError::Corrupt {
                table: "version_ids",
                reason: format!(
                    "version id {} of {:?} drawn twice",
                    version.version_id, version.key
                ),
            });
        }
        version_ids.insert(index_row.as_slice(), seq)?;
    }
    txn.open_table(VERSIONS)?.insert(
        row_key::version(bucket, &version.key, seq).as_slice(),
        encode(version).as_slice(),
    )?;
    let data_key = data_row(bucket, &version.key_id);
    match data {
        NewData::Empty => {}
        NewData::Inline(bytes) => {
            txn.open_table(INLINE)?
                .insert(data_key.as_slice(), bytes.as_slice())?;
        }
        NewData::Pieces(manifest) => {
            txn.open_table(MANIFESTS)?
                .insert(data_key.as_slice(), encode(&manifest).as_slice())?;
        }
    }
    refresh_current(txn, bucket, &version.key)
}

/// Removes the "null" version of `key`, if any.
fn remove_null_in(
    txn: &WriteTransaction,
    bucket: &BucketId,
    key: &str,
    now: UnixMillis,
) -> Result<Option<ObjectVersion>, BookError> {
    let seq = find_seq(&txn.open_table(VERSION_IDS)?, bucket, key, &VersionId::Null)?;
    match seq {
        Some(seq) => remove_version_in(txn, bucket, key, seq, now),
        None => Ok(None),
    }
}

/// Writes a version inside `txn` per the bucket's versioning state.
pub(super) fn put_version_in(
    txn: &WriteTransaction,
    bucket: &Bucket,
    new: NewVersion,
    now: UnixMillis,
) -> Result<PutOutcome, BookError> {
    if let Some(condition) = &new.condition {
        let newest = newest(&txn.open_table(VERSIONS)?, &bucket.id, &new.key)?;
        let current = newest.filter(|(_, version)| !version.delete_marker);
        let holds = match condition {
            WriteCondition::NoCurrentObject => current.is_none(),
            WriteCondition::CurrentETag(etag) => {
                current.is_some_and(|(_, version)| version.etag == *etag)
            }
        };
        if !holds {
            return Err(BookError::PreconditionFailed);
        }
    }
    let (version_id, replaced) = match bucket.versioning {
        Versioning::Enabled => (VersionId::Id(new.key_id.0), None),
        Versioning::Unversioned | Versioning::Suspended => (
            VersionId::Null,
            remove_null_in(txn, &bucket.id, &new.key, now)?,
        ),
    };
    let kind = new.data.kind();
    let version = ObjectVersion {
        key: new.key,
        version_id,
        key_id: new.key_id,
        delete_marker: false,
        last_modified_ms: now,
        size: new.size,
        etag: new.etag,
        owner: new.owner,
        headers: new.headers,
        metadata: new.metadata,
        checksums: new.checksums,
        part_sizes: new.part_sizes,
        data: kind,
    };
    insert_version_in(txn, &bucket.id, &version, new.data)?;
    Ok(PutOutcome { version, replaced })
}

impl Book {
    /// Makes a new object version visible, in one transaction: per the
    /// bucket's versioning state it gets a fresh version id (Enabled) or
    /// replaces the "null" version (Unversioned, Suspended), whose pieces are
    /// queued for freeing in the same commit.
    ///
    /// `bucket_id` must be the id the body was sealed under: if the bucket was
    /// deleted (and perhaps created again) meanwhile, this fails with
    /// [`BookError::NoSuchBucket`] and the caller frees the pieces.
    pub fn put_version(
        &self,
        bucket_name: &str,
        bucket_id: &BucketId,
        new: NewVersion,
        now: UnixMillis,
    ) -> Result<PutOutcome, BookError> {
        let txn = self.db.begin_write()?;
        let bucket = bucket_in(&txn, bucket_name, bucket_id)?;
        let outcome = put_version_in(&txn, &bucket, new, now)?;
        txn.commit()?;
        Ok(outcome)
    }

    /// S3 DeleteObject. Without a version id: Enabled buckets get a delete
    /// marker, Suspended ones a "null" delete marker replacing the "null"
    /// version, Unversioned ones lose the "null" version. With a version id:
    /// that version (or delete marker) is removed for good, if it exists.
    pub fn delete_object(
        &self,
        bucket_name: &str,
        key: &str,
        version_id: Option<VersionId>,
        owner: &str,
        now: UnixMillis,
    ) -> Result<DeleteOutcome, BookError> {
        let txn = self.db.begin_write()?;
        let bucket = {
            let buckets = txn.open_table(BUCKETS)?;
            let bucket: Option<Bucket> = buckets
                .get(bucket_name)?
                .map(|guard| decode("buckets", guard.value()))
                .transpose()?;
            bucket.ok_or_else(|| BookError::NoSuchBucket(bucket_name.to_owned()))?
        };
        let outcome = match version_id {
            Some(version_id) => {
                let seq = find_seq(&txn.open_table(VERSION_IDS)?, &bucket.id, key, &version_id)?;
                let removed = match seq {
                    Some(seq) => remove_version_in(&txn, &bucket.id, key, seq, now)?,
                    None => None,
                };
                refresh_current(&txn, &bucket.id, key)?;
                DeleteOutcome {
                    version_id: Some(version_id),
                    delete_marker: removed
                        .as_ref()
                        .is_some_and(|version| version.delete_marker),
                    removed,
                }
            }
            None => {
                let (marker_id, removed) = match bucket.versioning {
                    Versioning::Unversioned => {
                        let removed = remove_null_in(&txn, &bucket.id, key, now)?;
                        refresh_current(&txn, &bucket.id, key)?;
                        txn.commit()?;
                        return Ok(DeleteOutcome {
                            version_id: None,
                            delete_marker: false,
                            removed,
                        });
                    }
                    Versioning::Enabled => (VersionId::Id(rand::random()), None),
                    Versioning::Suspended => {
                        (VersionId::Null, remove_null_in(&txn, &bucket.id, key, now)?)
                    }
                };
                let marker = ObjectVersion {
                    key: key.to_owned(),
                    version_id: marker_id,
                    key_id: KeyId::random(),
                    delete_marker: true,
                    last_modified_ms: now,
                    size: 0,
                    etag: String::new(),
                    owner: owner.to_owned(),
                    headers: ObjectHeaders::default(),
                    metadata: BTreeMap::new(),
                    checksums: Checksums::default(),
                    part_sizes: Vec::new(),
                    data: DataKind::Empty,
                };
                insert_version_in(&txn, &bucket.id, &marker, NewData::Empty)?;
                DeleteOutcome {
                    version_id: Some(marker_id),
                    delete_marker: true,
                    removed,
                }
            }
        };
        txn.commit()?;
        Ok(outcome)
    }

    /// A version of `key`: the newest (which may be a delete marker) when
    /// `version_id` is `None`.
    pub fn get_version(
        &self,
        bucket: &BucketId,
        key: &str,
        version_id: Option<&VersionId>,
    ) -> Result<Option<ObjectVersion>, BookError> {
        let txn = self.db.begin_read()?;
        let versions = txn.open_table(VERSIONS)?;
        match version_id {
            None => Ok(newest(&versions, bucket, key)?.map(|(_, version)| version)),
            Some(version_id) => {
                let Some(seq) = find_seq(&txn.open_table(VERSION_IDS)?, bucket, key, version_id)?
                else {
                    return Ok(None);
                };
                versions
                    .get(row_key::version(bucket, key, seq).as_slice())?
                    .map(|guard| decode("versions", guard.value()))
                    .transpose()
            }
        }
    }

    /// The sealed bytes of a small object version.
    pub fn inline_data(
        &self,
        bucket: &BucketId,
        key_id: &KeyId,
    ) -> Result<Option<Vec<u8>>, BookError> {
        let txn = self.db.begin_read()?;
        let inline = txn.open_table(INLINE)?;
        Ok(inline
            .get(data_row(bucket, key_id).as_slice())?
            .map(|guard| guard.value().to_vec()))
    }

    /// The manifest of an object version stored as pieces.
    pub fn manifest(
        &self,
        bucket: &BucketId,
        key_id: &KeyId,
    ) -> Result<Option<Manifest>, BookError> {
        let txn = self.db.begin_read()?;
        let manifests = txn.open_table(MANIFESTS)?;
        manifests
            .get(data_row(bucket, key_id).as_slice())?
            .map(|guard| decode("manifests", guard.value()))
            .transpose()
    }
}
