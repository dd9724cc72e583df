//! Multipart uploads: parts are recorded as they are encoded and stored;
//! completing an upload turns the chosen parts into one object version in
//! one transaction and queues the pieces of the parts left out for freeing.

use std::collections::BTreeMap;
use std::ops::Bound;

use redb::{ReadableDatabase, ReadableTable};

use super::listing::{
    Lower, as_slices, common_prefix, later, malformed, past_prefix, resume_after,
};
use super::objects::{NewVersion, PutOutcome, bucket_in, put_version_in};
use super::records::{
    BucketId, Checksums, KeyId, Manifest, NewData, ObjectHeaders, Part, UnixMillis, Upload,
    WriteCondition,
};
use super::{Book, BookError, PARTS, UPLOADS, decode, encode, next_seq, queue_free_in, row_key};

/// A multipart upload to create with [`Book::create_upload`].
#[derive(Debug, Clone, Default)]
pub struct NewUpload {
    /// The object key.
    pub key: String,
    /// The creating user.
    pub owner: String,
    /// Headers the completed object will carry.
    pub headers: ObjectHeaders,
    /// User metadata the completed object will carry.
    pub metadata: BTreeMap<String, String>,
    /// The checksum algorithm the client announced.
    pub checksum_algorithm: Option<String>,
    /// The checksum type the client announced.
    pub checksum_type: Option<String>,
}

/// A part as named in CompleteMultipartUpload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// Its number.
    pub part_number: u32,
    /// The ETag the client quotes for it (no quotes).
    pub etag: String,
}

/// What [`Book::complete_upload`] commits.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The object key (must be the upload's).
    pub key: String,
    /// The chosen parts, in ascending order.
    pub parts: Vec<CompletedPart>,
    /// Every part but the last must have at least this many bytes (S3: 5 MiB).
    pub min_part_size: u64,
    /// The object's ETag (`md5-of-md5s-N`), computed by the caller from the chosen parts.
    pub etag: String,
    /// The object's checksums, computed by the caller from the chosen parts.
    pub checksums: Checksums,
    /// A condition on the key's current object.
    pub condition: Option<WriteCondition>,
}

/// A ListMultipartUploads query.
#[derive(Debug, Clone, Default)]
pub struct UploadQuery<'a> {
    /// Only keys starting with this.
    pub prefix: &'a str,
    /// Roll keys up to common prefixes.
    pub delimiter: Option<&'a str>,
    /// Resume after this key (or, with `upload_id_marker`, after that upload of it).
    pub key_marker: Option<&'a str>,
    /// Resume after this upload of `key_marker`.
    pub upload_id_marker: Option<&'a str>,
    /// At most this many entries.
    pub max_uploads: usize,
}

/// One entry of an upload listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadEntry {
    /// An upload in progress.
    Upload(Box<Upload>),
    /// A common prefix.
    CommonPrefix(String),
}

/// A page of ListMultipartUploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadListing {
    /// Uploads by key, oldest first within a key.
    pub entries: Vec<UploadEntry>,
    /// Whether more follow.
    pub truncated: bool,
    /// When truncated: the next page's key marker.
    pub next_key_marker: Option<String>,
    /// When truncated after an upload: the next page's upload id marker.
    pub next_upload_id_marker: Option<String>,
}

/// A page of ListParts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartListing {
    /// Parts by number.
    pub parts: Vec<Part>,
    /// Whether more follow.
    pub truncated: bool,
    /// When truncated: the next page's part number marker.
    pub next_part_number_marker: Option<u32>,
}

/// Upload ids are `seq ‖ random` in hex: unguessable, and in creation order
/// within a key as S3 lists them.
fn upload_id_bytes(upload_id: &str) -> Option<[u8; 16]> {
    let mut bytes = [0u8; 16];
    hex::decode_to_slice(upload_id, &mut bytes).ok()?;
    Some(bytes)
}

fn upload_row(bucket: &BucketId, key: &str, upload_id: &str) -> Result<Vec<u8>, BookError> {
    let bytes =
        upload_id_bytes(upload_id).ok_or_else(|| BookError::NoSuchUpload(upload_id.to_owned()))?;
    Ok(row_key::with_suffix(bucket, key, &bytes))
}

fn part_row(upload_row: &[u8], part_number: u32) -> Vec<u8> {
    let mut row = upload_row.to_vec();
    row.extend_from_slice(&part_number.to_be_bytes());
    row
}

fn parts_range(upload_row: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let start = upload_row.to_vec();
    let end = row_key::successor(&start);
    (start, end)
}

impl Book {
    /// Starts a multipart upload in `bucket_name` (which must still have id `bucket_id`).
    pub fn create_upload(
        &self,
        bucket_name: &str,
        bucket_id: &BucketId,
        new: NewUpload,
        now: UnixMillis,
    ) -> Result<Upload, BookError> {
        let txn = self.db.begin_write()?;
        bucket_in(&txn, bucket_name, bucket_id)?;
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&next_seq(&txn)?.to_be_bytes());
        id[8..].copy_from_slice(&rand::random::<[u8; 8]>());
        let upload = Upload {
            upload_id: hex::encode(id),
            key: new.key,
            initiated_ms: now,
            owner: new.owner,
            headers: new.headers,
            metadata: new.metadata,
            checksum_algorithm: new.checksum_algorithm,
            checksum_type: new.checksum_type,
        };
        txn.open_table(UPLOADS)?.insert(
            row_key::with_suffix(bucket_id, &upload.key, &id).as_slice(),
            encode(&upload).as_slice(),
        )?;
        txn.commit()?;
        Ok(upload)
    }

    /// The upload `upload_id` of `key`.
    pub fn upload(
        &self,
        bucket: &BucketId,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<Upload>, BookError> {
        let Some(bytes) = upload_id_bytes(upload_id) else {
            return Ok(None);
        };
        let txn = self.db.begin_read()?;
        let uploads = txn.open_table(UPLOADS)?;
        uploads
            .get(row_key::with_suffix(bucket, key, &bytes).as_slice())?
            .map(|guard| decode("uploads", guard.value()))
            .transpose()
    }

    /// Records an uploaded part, replacing (and queueing for freeing) an
    /// earlier part with the same number. If the upload is gone (completed
    /// or aborted meanwhile) the part's own pieces are queued for freeing and
    /// [`BookError::NoSuchUpload`] is returned.
    pub fn put_part(
        &self,
        bucket: &BucketId,
        key: &str,
        upload_id: &str,
        part: Part,
        now: UnixMillis,
    ) -> Result<Option<Part>, BookError> {
        let txn = self.db.begin_write()?;
        let upload_row = upload_row(bucket, key, upload_id);
        let exists = match &upload_row {
            Ok(row) => txn.open_table(UPLOADS)?.get(row.as_slice())?.is_some(),
            Err(_) => false,
        };
        let upload_row = match upload_row {
            Ok(row) if exists => row,
            _ => {
                queue_free_in(&txn, part.manifest.placed_pieces().collect(), now)?;
                txn.commit()?;
                return Err(BookError::NoSuchUpload(upload_id.to_owned()));
            }
        };
        let replaced: Option<Part> = txn
            .open_table(PARTS)?
            .insert(
                part_row(&upload_row, part.part_number).as_slice(),
                encode(&part).as_slice(),
            )?
            .map(|guard| decode("parts", guard.value()))
            .transpose()?;
        if let Some(old) = &replaced {
            queue_free_in(&txn, old.manifest.placed_pieces().collect(), now)?;
        }
        txn.commit()?;
        Ok(replaced)
    }

    /// One page of the parts of an upload, after part `after`.
    pub fn list_parts(
        &self,
        bucket: &BucketId,
        key: &str,
        upload_id: &str,
        after: Option<u32>,
        max_parts: usize,
    ) -> Result<PartListing, BookError> {
        let upload_row = upload_row(bucket, key, upload_id)?;
        let txn = self.db.begin_read()?;
        if txn
            .open_table(UPLOADS)?
            .get(upload_row.as_slice())?
            .is_none()
        {
            return Err(BookError::NoSuchUpload(upload_id.to_owned()));
        }
        let parts_table = txn.open_table(PARTS)?;
        let (start, end) = parts_range(&upload_row);
        let lower: Lower = match after {
            Some(number) => Bound::Excluded(part_row(&upload_row, number)),
            None => Bound::Included(start),
        };
        let mut listing = PartListing {
            parts: Vec::new(),
            truncated: false,
            next_part_number_marker: None,
        };
        for row in parts_table.range::<&[u8]>(as_slices(&lower, &end))? {
            if listing.parts.len() >= max_parts {
                listing.truncated = max_parts > 0;
                break;
            }
            listing.parts.push(decode("parts", row?.1.value())?);
        }
        if listing.truncated {
            listing.next_part_number_marker = listing.parts.last().map(|part| part.part_number);
        }
        Ok(listing)
    }

    /// Every part of an upload, by number.
    pub fn parts(
        &self,
        bucket: &BucketId,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<Part>, BookError> {
        Ok(self
            .list_parts(bucket, key, upload_id, None, usize::MAX)?
            .parts)
    }

    /// Completes an upload: checks the chosen parts (present, ETags match,
    /// ascending, all but the last at least `min_part_size`), then in one
    /// transaction makes them one object version (per the bucket's
    /// versioning), drops the upload and queues the pieces of unchosen parts
    /// for freeing.
    pub fn complete_upload(
        &self,
        bucket_name: &str,
        bucket_id: &BucketId,
        upload_id: &str,
        completion: Completion,
        now: UnixMillis,
    ) -> Result<PutOutcome, BookError> {
        let txn = self.db.begin_write()?;
        let bucket = bucket_in(&txn, bucket_name, bucket_id)?;
        let upload_row = upload_row(bucket_id, &completion.key, upload_id)?;
        let upload: Upload = match txn.open_table(UPLOADS)?.remove(upload_row.as_slice())? {
            Some(guard) => decode("uploads", guard.value())?,
            None => return Err(BookError::NoSuchUpload(upload_id.to_owned())),
        };
        let mut stored: BTreeMap<u32, Part> = BTreeMap::new();
        {
            let (start, end) = parts_range(&upload_row);
            let mut parts_table = txn.open_table(PARTS)?;
            for row in
                parts_table.extract_from_if::<&[u8], _>(super::bounds(&start, &end), |_, _| true)?
            {
                let part: Part = decode("parts", row?.1.value())?;
                stored.insert(part.part_number, part);
            }
        }
        let mut chosen = Vec::with_capacity(completion.parts.len());
        let mut previous = 0;
        for (index, wanted) in completion.parts.iter().enumerate() {
            if wanted.part_number <= previous {
                return Err(BookError::InvalidPartOrder);
            }
            previous = wanted.part_number;
            let part = stored
                .remove(&wanted.part_number)
                .filter(|part| part.etag == wanted.etag)
                .ok_or(BookError::InvalidPart(wanted.part_number))?;
            let last = index + 1 == completion.parts.len();
            if !last && part.size < completion.min_part_size {
                return Err(BookError::EntityTooSmall {
                    part_number: part.part_number,
                    size: part.size,
                    min: completion.min_part_size,
                });
            }
            chosen.push(part);
        }
        if chosen.is_empty() {
            return Err(BookError::InvalidPart(0));
        }
        let unchosen = stored
            .values()
            .flat_map(|part| part.manifest.placed_pieces())
            .collect();
        queue_free_in(&txn, unchosen, now)?;
        let new = NewVersion {
            key: upload.key,
            key_id: KeyId::random(),
            size: chosen.iter().map(|part| part.size).sum(),
            etag: completion.etag,
            owner: upload.owner,
            headers: upload.headers,
            metadata: upload.metadata,
            checksums: completion.checksums,
            part_sizes: chosen.iter().map(|part| part.size).collect(),
            data: NewData::Pieces(Manifest {
                parts: chosen.into_iter().map(|part| part.manifest).collect(),
            }),
            condition: completion.condition,
        };
        let outcome = put_version_in(&txn, &bucket, new, now)?;
        txn.commit()?;
        Ok(outcome)
    }

    /// Aborts an upload and queues its parts' pieces for freeing.
    pub fn abort_upload(
        &self,
        bucket: &BucketId,
        key: &str,
        upload_id: &str,
        now: UnixMillis,
    ) -> Result<(), BookError> {
        let upload_row = upload_row(bucket, key, upload_id)?;
        let txn = self.db.begin_write()?;
        if txn
            .open_table(UPLOADS)?
            .remove(upload_row.as_slice())?
            .is_none()
        {
            return Err(BookError::NoSuchUpload(upload_id.to_owned()));
        }
        let mut freed = Vec::new();
        {
            let (start, end) = parts_range(&upload_row);
            let mut parts_table = txn.open_table(PARTS)?;
            for row in
                parts_table.extract_from_if::<&[u8], _>(super::bounds(&start, &end), |_, _| true)?
            {
                let part: Part = decode("parts", row?.1.value())?;
                freed.extend(part.manifest.placed_pieces());
            }
        }
        queue_free_in(&txn, freed, now)?;
        txn.commit()?;
        Ok(())
    }

    /// One page of the uploads in progress in a bucket.
    pub fn list_uploads(
        &self,
        bucket: &BucketId,
        query: &UploadQuery<'_>,
    ) -> Result<UploadListing, BookError> {
        let txn = self.db.begin_read()?;
        let uploads = txn.open_table(UPLOADS)?;
        let prefix_start = row_key::key_prefix(bucket, query.prefix);
        let upper = row_key::successor(&prefix_start);
        let mut lower = Bound::Included(prefix_start);
        if let Some(marker) = query.key_marker {
            let resume = match (
                query.upload_id_marker.and_then(upload_id_bytes),
                common_prefix(marker, query.prefix, query.delimiter),
            ) {
                (Some(id), None) => Bound::Excluded(row_key::with_suffix(bucket, marker, &id)),
                _ => resume_after(bucket, query.prefix, query.delimiter, marker),
            };
            lower = later(lower, resume);
        }
        let mut listing = UploadListing {
            entries: Vec::new(),
            truncated: false,
            next_key_marker: None,
            next_upload_id_marker: None,
        };
        'scan: loop {
            for row in uploads.range::<&[u8]>(as_slices(&lower, &upper))? {
                let (row_key_guard, value) = row?;
                let (key, _) =
                    row_key::split(row_key_guard.value()).ok_or_else(|| malformed("uploads"))?;
                if listing.entries.len() >= query.max_uploads {
                    listing.truncated = query.max_uploads > 0;
                    break 'scan;
                }
                if let Some(rolled) = common_prefix(&key, query.prefix, query.delimiter) {
                    listing
                        .entries
                        .push(UploadEntry::CommonPrefix(rolled.to_owned()));
                    lower = past_prefix(bucket, rolled);
                    continue 'scan;
                }
                listing
                    .entries
                    .push(UploadEntry::Upload(decode("uploads", value.value())?));
            }
            break;
        }
        if listing.truncated {
            match listing.entries.last() {
                Some(UploadEntry::Upload(upload)) => {
                    listing.next_key_marker = Some(upload.key.clone());
                    listing.next_upload_id_marker = Some(upload.upload_id.clone());
                }
                Some(UploadEntry::CommonPrefix(prefix)) => {
                    listing.next_key_marker = Some(prefix.clone())
                }
                None => {}
            }
        }
        Ok(listing)
    }
}
