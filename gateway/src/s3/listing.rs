//! ListObjects (v1, v2) and ListObjectVersions.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as TOKEN;
use dbytes_ledger::book::{
    ListEntry, ListQuery, ObjectVersion as StoredVersion, VersionEntry, VersionQuery,
};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::objects::etag_of;
use super::{Shared, owned_bucket, parse_version_id, request_user, timestamp};

/// S3's most keys per page.
const MAX_KEYS: i32 = 1000;

fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_KEYS as usize),
        Some(keys) if keys < 0 => Err(s3_error!(
            InvalidArgument,
            "max-keys must be a non-negative integer"
        )),
        Some(keys) => Ok(keys.min(MAX_KEYS) as usize),
    }
}

/// Whether the response must URL-encode keys (`encoding-type=url`, which
/// aws-cli always asks for).
fn url_encoded(encoding: Option<&EncodingType>) -> S3Result<bool> {
    match encoding.map(EncodingType::as_str) {
        None => Ok(false),
        Some(EncodingType::URL) => Ok(true),
        Some(other) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request: {other}"
        )),
    }
}

/// Percent-encodes `text` as S3 does for `encoding-type=url`.
fn encode(text: &str, url: bool) -> String {
    if !url {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn owner(shared: &Shared, user: &str) -> Owner {
    let display_name = shared
        .book
        .user(user)
        .ok()
        .flatten()
        .map_or_else(|| user.to_owned(), |user| user.display_name);
    Owner {
        display_name: Some(display_name),
        id: Some(user.to_owned()),
    }
}

fn checksum_algorithms(version: &StoredVersion) -> Option<Vec<ChecksumAlgorithm>> {
    let sums = &version.checksums;
    let present = [
        (ChecksumAlgorithm::CRC32, &sums.crc32),
        (ChecksumAlgorithm::CRC32C, &sums.crc32c),
        (ChecksumAlgorithm::CRC64NVME, &sums.crc64nvme),
        (ChecksumAlgorithm::SHA1, &sums.sha1),
        (ChecksumAlgorithm::SHA256, &sums.sha256),
    ];
    let algorithms: Vec<ChecksumAlgorithm> = present
        .into_iter()
        .filter(|(_, value)| value.is_some())
        .map(|(name, _)| ChecksumAlgorithm::from_static(name))
        .collect();
    (!algorithms.is_empty()).then_some(algorithms)
}

fn object_entry(version: &StoredVersion, url: bool, owner: Option<Owner>) -> Object {
    Object {
        key: Some(encode(&version.key, url)),
        last_modified: Some(timestamp(version.last_modified_ms)),
        e_tag: Some(etag_of(version)),
        size: i64::try_from(version.size).ok(),
        owner,
        checksum_algorithm: checksum_algorithms(version),
        checksum_type: version
            .checksums
            .checksum_type
            .clone()
            .map(ChecksumType::from),
        ..Default::default()
    }
}

/// One page of current objects, shared by v1 and v2.
struct Page {
    contents: Vec<Object>,
    common_prefixes: Vec<CommonPrefix>,
    truncated: bool,
    next_after: Option<String>,
    count: usize,
}

/// What a v1 or v2 listing asks for.
struct PageRequest<'a> {
    bucket: &'a str,
    prefix: Option<&'a str>,
    delimiter: Option<&'a str>,
    after: Option<String>,
    max_keys: usize,
    url: bool,
    fetch_owner: bool,
}

async fn list_page(shared: &Shared, user: &str, request: PageRequest<'_>) -> S3Result<Page> {
    let PageRequest {
        bucket,
        prefix,
        delimiter,
        after,
        max_keys,
        url,
        fetch_owner,
    } = request;
    let bucket = owned_bucket(shared, user, bucket)?;
    let prefix = prefix.unwrap_or_default().to_owned();
    let delimiter = delimiter
        .filter(|delimiter| !delimiter.is_empty())
        .map(str::to_owned);
    let listing = shared
        .book(move |book| {
            let query = ListQuery {
                prefix: &prefix,
                delimiter: delimiter.as_deref(),
                after: after.as_deref(),
                max_keys,
            };
            book.list_objects(&bucket.id, &query)
        })
        .await?;
    let owner = fetch_owner.then(|| owner(shared, user));
    let count = listing.entries.len();
    let mut page = Page {
        contents: Vec::new(),
        common_prefixes: Vec::new(),
        truncated: listing.truncated,
        next_after: listing.next_after,
        count,
    };
    for entry in listing.entries {
        match entry {
            ListEntry::Object(version) => {
                page.contents
                    .push(object_entry(&version, url, owner.clone()))
            }
            ListEntry::CommonPrefix(prefix) => page.common_prefixes.push(CommonPrefix {
                prefix: Some(encode(&prefix, url)),
            }),
        }
    }
    Ok(page)
}

pub(super) async fn list_objects(
    shared: &Shared,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let user = request_user(&req)?;
    let input = req.input;
    let url = url_encoded(input.encoding_type.as_ref())?;
    let max = max_keys(input.max_keys)?;
    let request = PageRequest {
        bucket: &input.bucket,
        prefix: input.prefix.as_deref(),
        delimiter: input.delimiter.as_deref(),
        after: input.marker.clone().filter(|marker| !marker.is_empty()),
        max_keys: max,
        url,
        fetch_owner: true,
    };
    let page = list_page(shared, &user, request).await?;
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(encode(input.prefix.as_deref().unwrap_or_default(), url)),
        marker: Some(encode(input.marker.as_deref().unwrap_or_default(), url)),
        max_keys: Some(max as i32),
        is_truncated: Some(page.truncated),
        next_marker: page.next_after.map(|after| encode(&after, url)),
        contents: (!page.contents.is_empty()).then_some(page.contents),
        common_prefixes: (!page.common_prefixes.is_empty()).then_some(page.common_prefixes),
        delimiter: input.delimiter.map(|delimiter| encode(&delimiter, url)),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

pub(super) async fn list_objects_v2(
    shared: &Shared,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let user = request_user(&req)?;
    let input = req.input;
    let url = url_encoded(input.encoding_type.as_ref())?;
    let max = max_keys(input.max_keys)?;
    let after = match input.continuation_token.as_deref() {
        Some(token) => {
            let decoded = TOKEN
                .decode(token)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    s3_error!(
                        InvalidArgument,
                        "The continuation token provided is incorrect"
                    )
                })?;
            Some(decoded)
        }
        None => input.start_after.clone().filter(|after| !after.is_empty()),
    };
    let request = PageRequest {
        bucket: &input.bucket,
        prefix: input.prefix.as_deref(),
        delimiter: input.delimiter.as_deref(),
        after,
        max_keys: max,
        url,
        fetch_owner: input.fetch_owner.unwrap_or(false),
    };
    let page = list_page(shared, &user, request).await?;
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(encode(input.prefix.as_deref().unwrap_or_default(), url)),
        max_keys: Some(max as i32),
        key_count: Some(page.count as i32),
        continuation_token: input.continuation_token,
        is_truncated: Some(page.truncated),
        next_continuation_token: page.next_after.map(|after| TOKEN.encode(after.as_bytes())),
        contents: (!page.contents.is_empty()).then_some(page.contents),
        common_prefixes: (!page.common_prefixes.is_empty()).then_some(page.common_prefixes),
        delimiter: input.delimiter.map(|delimiter| encode(&delimiter, url)),
        encoding_type: input.encoding_type,
        start_after: input.start_after.map(|after| encode(&after, url)),
        ..Default::default()
    }))
}

pub(super) async fn list_object_versions(
    shared: &Shared,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let user = request_user(&req)?;
    let input = req.input;
    let url = url_encoded(input.encoding_type.as_ref())?;
    let max = max_keys(input.max_keys)?;
    let bucket = owned_bucket(shared, &user, &input.bucket)?;
    let key_marker = input.key_marker.clone().filter(|marker| !marker.is_empty());
    let version_marker = match input
        .version_id_marker
        .as_deref()
        .filter(|marker| !marker.is_empty())
    {
        Some(_) if key_marker.is_none() => {
            return Err(s3_error!(
                InvalidArgument,
                "A version-id marker cannot be specified without a key marker."
            ));
        }
        marker => parse_version_id(marker)?,
    };
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input
        .delimiter
        .clone()
        .filter(|delimiter| !delimiter.is_empty());
    let bucket_id = bucket.id;
    let listing = shared
        .book(move |book| {
            let query = VersionQuery {
                prefix: &prefix,
                delimiter: delimiter.as_deref(),
                key_marker: key_marker.as_deref(),
                version_id_marker: version_marker,
                max_keys: max,
            };
            book.list_versions(&bucket_id, &query)
        })
        .await?;
    let owner = owner(shared, &user);
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    let mut common_prefixes = Vec::new();
    for entry in listing.entries {
        match entry {
            VersionEntry::Version { version, is_latest } if version.delete_marker => {
                markers.push(DeleteMarkerEntry {
                    is_latest: Some(is_latest),
                    key: Some(encode(&version.key, url)),
                    last_modified: Some(timestamp(version.last_modified_ms)),
                    owner: Some(owner.clone()),
                    version_id: Some(version.version_id.to_string()),
                })
            }
            VersionEntry::Version { version, is_latest } => versions.push(ObjectVersion {
                checksum_algorithm: checksum_algorithms(&version),
                checksum_type: version
                    .checksums
                    .checksum_type
                    .clone()
                    .map(ChecksumType::from),
                e_tag: Some(etag_of(&version)),
                is_latest: Some(is_latest),
                key: Some(encode(&version.key, url)),
                last_modified: Some(timestamp(version.last_modified_ms)),
                owner: Some(owner.clone()),
                size: i64::try_from(version.size).ok(),
                version_id: Some(version.version_id.to_string()),
                ..Default::default()
            }),
            VersionEntry::CommonPrefix(prefix) => common_prefixes.push(CommonPrefix {
                prefix: Some(encode(&prefix, url)),
            }),
        }
    }
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(encode(input.prefix.as_deref().unwrap_or_default(), url)),
        key_marker: Some(encode(input.key_marker.as_deref().unwrap_or_default(), url)),
        version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
        max_keys: Some(max as i32),
        is_truncated: Some(listing.truncated),
        next_key_marker: listing.next_key_marker.map(|marker| encode(&marker, url)),
        next_version_id_marker: listing.next_version_id_marker.map(|id| id.to_string()),
        versions: (!versions.is_empty()).then_some(versions),
        delete_markers: (!markers.is_empty()).then_some(markers),
        common_prefixes: (!common_prefixes.is_empty()).then_some(common_prefixes),
        delimiter: input.delimiter.map(|delimiter| encode(&delimiter, url)),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}
