//! ListObjects (v1 and v2) and ListObjectVersions as range scans.
//!
//! A listing walks the rows of one prefix in key order. With a delimiter,
//! the first key that rolls up into a common prefix emits that prefix and the
//! scan jumps past every key sharing it, so a listing costs one seek per
//! common prefix plus one row per listed entry, never the whole bucket.

use std::ops::Bound;

use redb::ReadableDatabase;

use super::objects::find_seq;
use super::records::{BucketId, ObjectVersion, VersionId};
use super::{Book, BookError, CURRENT, VERSION_IDS, VERSIONS, decode, row_key};

/// A ListObjects / ListObjectsV2 query.
#[derive(Debug, Clone, Default)]
pub struct ListQuery<'a> {
    /// Only keys starting with this.
    pub prefix: &'a str,
    /// Roll keys up to common prefixes at the first occurrence of this after the prefix.
    pub delimiter: Option<&'a str>,
    /// Resume after this key (a v1 marker, a v2 start-after, or a v2
    /// continuation token's content). A common prefix resumes after every
    /// key under it.
    pub after: Option<&'a str>,
    /// At most this many entries (objects + common prefixes).
    pub max_keys: usize,
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    /// A current object version.
    Object(Box<ObjectVersion>),
    /// A common prefix.
    CommonPrefix(String),
}

/// A page of ListObjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Objects and common prefixes, in key order.
    pub entries: Vec<ListEntry>,
    /// Whether more entries follow.
    pub truncated: bool,
    /// When truncated, where the next page resumes (the last entry's key or
    /// common prefix): pass it back as [`ListQuery::after`].
    pub next_after: Option<String>,
}

/// A ListObjectVersions query.
#[derive(Debug, Clone, Default)]
pub struct VersionQuery<'a> {
    /// Only keys starting with this.
    pub prefix: &'a str,
    /// Roll keys up to common prefixes.
    pub delimiter: Option<&'a str>,
    /// Resume after this key (or, with `version_id_marker`, after that version of it).
    pub key_marker: Option<&'a str>,
    /// Resume after this version of `key_marker`.
    pub version_id_marker: Option<VersionId>,
    /// At most this many entries (versions + delete markers + common prefixes).
    pub max_keys: usize,
}

/// One entry of a version listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionEntry {
    /// A version or delete marker.
    Version {
        /// The version.
        version: Box<ObjectVersion>,
        /// Whether it is the newest of its key.
        is_latest: bool,
    },
    /// A common prefix.
    CommonPrefix(String),
}

/// A page of ListObjectVersions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionListing {
    /// Entries in key order, newest version of a key first.
    pub entries: Vec<VersionEntry>,
    /// Whether more entries follow.
    pub truncated: bool,
    /// When truncated: the key marker of the next page.
    pub next_key_marker: Option<String>,
    /// When truncated after a version: its id, the next page's version marker.
    pub next_version_id_marker: Option<VersionId>,
}

/// The common prefix `key` rolls up into, if any.
pub(super) fn common_prefix<'k>(
    key: &'k str,
    prefix: &str,
    delimiter: Option<&str>,
) -> Option<&'k str> {
    let delimiter = delimiter.filter(|delimiter| !delimiter.is_empty())?;
    let rest = key.strip_prefix(prefix)?;
    let at = rest.find(delimiter)?;
    Some(&key[..prefix.len() + at + delimiter.len()])
}

/// Owned bounds of a table scan.
pub(super) type Lower = Bound<Vec<u8>>;

/// Where a listing resumes after `marker`: past the whole common prefix the
/// marker lies in, else just past the marker's own rows.
pub(super) fn resume_after(
    bucket: &BucketId,
    prefix: &str,
    delimiter: Option<&str>,
    marker: &str,
) -> Lower {
    match common_prefix(marker, prefix, delimiter) {
        Some(rolled) => past_prefix(bucket, rolled),
        None => match row_key::successor(&row_key::object(bucket, marker)) {
            Some(next) => Bound::Included(next),
            None => Bound::Excluded(row_key::object(bucket, marker)),
        },
    }
}

pub(super) fn past_prefix(bucket: &BucketId, prefix: &str) -> Lower {
    let start = row_key::key_prefix(bucket, prefix);
    match row_key::successor(&start) {
        Some(next) => Bound::Included(next),
        // Nothing sorts after it: an empty scan.
        None => Bound::Excluded(vec![0xFF; start.len() + 1]),
    }
}

/// The later of two lower bounds.
pub(super) fn later(first: Lower, second: Lower) -> Lower {
    let key = |bound: &Lower| match bound {
        Bound::Included(key) => (key.clone(), 0),
        Bound::Excluded(key) => (key.clone(), 1),
        Bound::Unbounded => (Vec::new(), 0),
    };
    if key(&first) >= key(&second) {
        first
    } else {
        second
    }
}

pub(super) fn as_slices<'a>(
    lower: &'a Lower,
    upper: &'a Option<Vec<u8>>,
) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    let lower = match lower {
        Bound::Included(key) => Bound::Included(key.as_slice()),
        Bound::Excluded(key) => Bound::Excluded(key.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    };
    (
        lower,
        upper.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
    )
}

pub(super) fn malformed(table: &'static str) -> BookError {
    BookError::Corrupt {
        table,
        reason: "a row key that does not split into bucket, object key and suffix".into(),
    }
}

impl Book {
    /// One page of ListObjects over the bucket's current objects (keys whose
    /// newest version is not a delete marker).
    pub fn list_objects(
        &self,
        bucket: &BucketId,
        query: &ListQuery<'_>,
    ) -> Result<Listing, BookError> {
        let txn = self.db.begin_read()?;
        let current = txn.open_table(CURRENT)?;
        let versions = txn.open_table(VERSIONS)?;
        let prefix_start = row_key::key_prefix(bucket, query.prefix);
        let upper = row_key::successor(&prefix_start);
        let mut lower = Bound::Included(prefix_start);
        if let Some(after) = query.after {
            lower = later(
                lower,
                resume_after(bucket, query.prefix, query.delimiter, after),
            );
        }
        let mut listing = Listing {
            entries: Vec::new(),
            truncated: false,
            next_after: None,
        };
        'scan: loop {
            for row in current.range::<&[u8]>(as_slices(&lower, &upper))? {
                let (row_key_guard, seq) = row?;
                let (key, _) =
                    row_key::split(row_key_guard.value()).ok_or_else(|| malformed("current"))?;
                if listing.entries.len() >= query.max_keys {
                    listing.truncated = query.max_keys > 0;
                    break 'scan;
                }
                if let Some(rolled) = common_prefix(&key, query.prefix, query.delimiter) {
                    listing
                        .entries
                        .push(ListEntry::CommonPrefix(rolled.to_owned()));
                    lower = past_prefix(bucket, rolled);
                    continue 'scan;
                }
                let version = versions
                    .get(row_key::version(bucket, &key, seq.value()).as_slice())?
                    .ok_or(BookError::Corrupt {
                        table: "current",
                        reason: format!("{key:?} points at a version that does not exist"),
                    })?;
                listing.entries.push(ListEntry::Object(Box::new(decode(
                    "versions",
                    version.value(),
                )?)));
            }
            break;
        }
        if listing.truncated {
            listing.next_after = listing.entries.last().map(|entry| match entry {
                ListEntry::Object(version) => version.key.clone(),
                ListEntry::CommonPrefix(prefix) => prefix.clone(),
            });
        }
        Ok(listing)
    }

    /// One page of ListObjectVersions: every version and delete marker, by
    /// key, newest first within a key.
    pub fn list_versions(
        &self,
        bucket: &BucketId,
        query: &VersionQuery<'_>,
    ) -> Result<VersionListing, BookError> {
        let txn = self.db.begin_read()?;
        let versions = txn.open_table(VERSIONS)?;
        let prefix_start = row_key::key_prefix(bucket, query.prefix);
        let upper = row_key::successor(&prefix_start);
        let mut lower = Bound::Included(prefix_start);
        // The key whose newest versions the previous page already listed.
        let mut last_key: Option<String> = None;
        if let Some(marker) = query.key_marker {
            let resume = match (
                &query.version_id_marker,
                common_prefix(marker, query.prefix, query.delimiter),
            ) {
                (Some(version_id), None) => {
                    match find_seq(&txn.open_table(VERSION_IDS)?, bucket, marker, version_id)? {
                        Some(seq) => {
                            last_key = Some(marker.to_owned());
                            Bound::Excluded(row_key::version(bucket, marker, seq))
                        }
                        None => resume_after(bucket, query.prefix, query.delimiter, marker),
                    }
                }
                _ => resume_after(bucket, query.prefix, query.delimiter, marker),
            };
            lower = later(lower, resume);
        }
        let mut listing = VersionListing {
            entries: Vec::new(),
            truncated: false,
            next_key_marker: None,
            next_version_id_marker: None,
        };
        'scan: loop {
            for row in versions.range::<&[u8]>(as_slices(&lower, &upper))? {
                let (row_key_guard, value) = row?;
                let (key, _) =
                    row_key::split(row_key_guard.value()).ok_or_else(|| malformed("versions"))?;
                if listing.entries.len() >= query.max_keys {
                    listing.truncated = query.max_keys > 0;
                    break 'scan;
                }
                if let Some(rolled) = common_prefix(&key, query.prefix, query.delimiter) {
                    listing
                        .entries
                        .push(VersionEntry::CommonPrefix(rolled.to_owned()));
                    lower = past_prefix(bucket, rolled);
                    continue 'scan;
                }
                let is_latest = last_key.as_deref() != Some(key.as_str());
                let version: ObjectVersion = decode("versions", value.value())?;
                last_key = Some(key);
                listing.entries.push(VersionEntry::Version {
                    version: Box::new(version),
                    is_latest,
                });
            }
            break;
        }
        if listing.truncated {
            match listing.entries.last() {
                Some(VersionEntry::Version { version, .. }) => {
                    listing.next_key_marker = Some(version.key.clone());
                    listing.next_version_id_marker = Some(version.version_id);
                }
                Some(VersionEntry::CommonPrefix(prefix)) => {
                    listing.next_key_marker = Some(prefix.clone())
                }
                None => {}
            }
        }
        Ok(listing)
    }
}
