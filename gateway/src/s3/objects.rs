//! Object operations: put, get (ranges, conditions), head, delete, delete
//! many, copy.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::ops::Range as ByteRange;

use bytes::Bytes;
use dbytes_ledger::book::{
    Bucket, KeyId, Manifest, NewData, NewVersion, ObjectHeaders, ObjectVersion, VersionId,
    Versioning, WriteCondition,
};
use futures::Stream;
use hyper::HeaderMap;
use hyper::header::{ETAG, HeaderValue, LAST_MODIFIED};
use s3s::dto::*;
use s3s::header::{X_AMZ_DELETE_MARKER, X_AMZ_VERSION_ID};
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::checksum::{self, BodyHasher};
use super::errors::{book_error, pipeline_error};
use super::{Shared, now_ms, owned_bucket, parse_version_id, policy_of, request_user, timestamp};
use crate::pipeline::{ObjectSource, Written, WrittenData};

/// The stored headers of a request.
pub(super) fn headers_from(
    content_type: Option<ContentType>,
    content_encoding: Option<ContentEncoding>,
    content_disposition: Option<ContentDisposition>,
    content_language: Option<ContentLanguage>,
    cache_control: Option<CacheControl>,
    expires: Option<Expires>,
) -> ObjectHeaders {
    // `aws-chunked` is the transfer framing of the request, not the object's
    // encoding: S3 drops it.
    let content_encoding = content_encoding
        .map(|value| {
            value
                .split(',')
                .map(str::trim)
                .filter(|coding| !coding.eq_ignore_ascii_case("aws-chunked") && !coding.is_empty())
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|value| !value.is_empty());
    let expires = expires.and_then(|expires| {
        let mut text = Vec::new();
        expires.format(TimestampFormat::HttpDate, &mut text).ok()?;
        String::from_utf8(text).ok()
    });
    ObjectHeaders {
        content_type,
        content_encoding,
        content_disposition,
        content_language,
        cache_control,
        expires,
    }
}

fn expires_of(headers: &ObjectHeaders) -> Option<Timestamp> {
    headers
        .expires
        .as_deref()
        .and_then(|text| Timestamp::parse(TimestampFormat::HttpDate, text).ok())
}

pub(super) fn metadata_from(metadata: Option<Metadata>) -> BTreeMap<String, String> {
    metadata
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect()
}

fn metadata_out(metadata: &BTreeMap<String, String>) -> Option<Metadata> {
    (!metadata.is_empty()).then(|| {
        metadata
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    })
}

/// The version id to report: none for objects of never-versioned buckets.
pub(super) fn version_id_out(bucket: &Bucket, version_id: &VersionId) -> Option<String> {
    (bucket.versioning != Versioning::Unversioned || *version_id != VersionId::Null)
        .then(|| version_id.to_string())
}

pub(super) fn etag_of(version: &ObjectVersion) -> ETag {
    ETag::Strong(version.etag.clone())
}

/// `If-Match` / `If-None-Match` of a write, as the book checks them.
pub(super) fn write_condition(
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
) -> S3Result<Option<WriteCondition>> {
    match (if_match, if_none_match) {
        (None, None) => Ok(None),
        (None, Some(ETagCondition::Any)) => Ok(Some(WriteCondition::NoCurrentObject)),
        (Some(ETagCondition::ETag(etag)), None) => {
            Ok(Some(WriteCondition::CurrentETag(etag.into_value())))
        }
        _ => Err(s3_error!(
            NotImplemented,
            "Conditional writes support If-None-Match: * or If-Match: <etag>, one at a time"
        )),
    }
}

/// The instant S3 compares conditions against: last-modified, to the second.
fn modified_second(version: &ObjectVersion) -> Timestamp {
    timestamp(version.last_modified_ms / 1000 * 1000)
}

fn etag_matches(condition: &ETagCondition, version: &ObjectVersion) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(etag) => etag.value() == version.etag,
    }
}

/// Headers for an error response. They replace all of s3s's, so they
/// carry the XML body's content type too.
fn error_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    headers
}

/// The headers a 304, 404 or 405 about an object version carries.
fn object_headers(version: &ObjectVersion, bucket: &Bucket) -> HeaderMap {
    let mut headers = error_headers();
    if let Ok(value) = HeaderValue::from_str(&format!("\"{}\"", version.etag))
        && !version.delete_marker
    {
        headers.insert(ETAG, value);
    }
    let mut date = Vec::new();
    if timestamp(version.last_modified_ms)
        .format(TimestampFormat::HttpDate, &mut date)
        .is_ok()
        && let Ok(value) = HeaderValue::from_bytes(&date)
    {
        headers.insert(LAST_MODIFIED, value);
    }
    if let Some(id) = version_id_out(bucket, &version.version_id)
        && let Ok(value) = HeaderValue::from_str(&id)
    {
        headers.insert(X_AMZ_VERSION_ID, value);
    }
    if version.delete_marker {
        headers.insert(X_AMZ_DELETE_MARKER, HeaderValue::from_static("true"));
    }
    headers
}

/// Conditional GET/HEAD, in the order RFC 9110 and S3 evaluate them.
fn check_read_conditions(
    bucket: &Bucket,
    version: &ObjectVersion,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let modified = modified_second(version);
    let failed = match (if_match, if_unmodified_since) {
        (Some(condition), _) => !etag_matches(condition, version),
        (None, Some(since)) => modified > *since,
        (None, None) => false,
    };
    if failed {
        return Err(s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        ));
    }
    let not_modified = match (if_none_match, if_modified_since) {
        (Some(condition), _) => etag_matches(condition, version),
        (None, Some(since)) => modified <= *since,
        (None, None) => false,
    };
    if not_modified {
        let mut err = S3Error::new(s3s::S3ErrorCode::NotModified);
        err.set_headers(object_headers(version, bucket));
        return Err(err);
    }
    Ok(())
}

/// The version a GET/HEAD/copy names, with S3's delete-marker answers: the
/// latest being a marker is `NoSuchKey` (with `x-amz-delete-marker`), a
/// marker named by id is `MethodNotAllowed`.
pub(super) fn lookup(
    shared: &Shared,
    bucket: &Bucket,
    key: &str,
    version_id: Option<&VersionId>,
) -> S3Result<ObjectVersion> {
    let version = shared
        .book
        .get_version(&bucket.id, key, version_id)
        .map_err(book_error)?;
    match version {
        None if version_id.is_some() => Err(s3_error!(
            NoSuchVersion,
            "The specified version does not exist."
        )),
        None => Err(s3_error!(NoSuchKey, "The specified key does not exist.")),
        Some(version) if version.delete_marker => {
            let mut err = if version_id.is_some() {
                s3_error!(
                    MethodNotAllowed,
                    "The specified method is not allowed against this resource."
                )
            } else {
                s3_error!(NoSuchKey, "The specified key does not exist.")
            };
            err.set_headers(object_headers(&version, bucket));
            Err(err)
        }
        Some(version) => Ok(version),
    }
}

/// Where a version's bytes are, read from the book.
pub(super) async fn source_of(
    shared: &Shared,
    bucket: &Bucket,
    version: &ObjectVersion,
) -> S3Result<ObjectSource> {
    let (bucket_id, key_id, size) = (bucket.id, version.key_id, version.size);
    match version.data {
        dbytes_ledger::book::DataKind::Empty => Ok(ObjectSource::Empty),
        dbytes_ledger::book::DataKind::Inline => {
            let sealed = shared
                .book(move |book| book.inline_data(&bucket_id, &key_id))
                .await?;
            let sealed = sealed
                .ok_or_else(|| s3_error!(InternalError, "the object's inline data is missing"))?;
            Ok(ObjectSource::Inline {
                key_id,
                size,
                sealed,
            })
        }
        dbytes_ledger::book::DataKind::Pieces => {
            let manifest = shared
                .book(move |book| book.manifest(&bucket_id, &key_id))
                .await?;
            let manifest = manifest
                .ok_or_else(|| s3_error!(InternalError, "the object's manifest is missing"))?;
            Ok(ObjectSource::Pieces(manifest))
        }
    }
}

/// Encodes a body into `bucket` under a fresh key id; frees what was stored
/// if it fails.
pub(super) async fn write_body<S, E>(
    shared: &Shared,
    bucket: &Bucket,
    body: S,
    hasher: BodyHasher,
    allow_inline: bool,
) -> S3Result<(KeyId, Written<BodyHasher>)>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    let key_id = KeyId::random();
    let key = shared.bucket_key(bucket).version_key(&key_id.0);
    let layout = shared
        .pipeline
        .layout(policy_of(&bucket.redundancy)?)
        .map_err(pipeline_error)?;
    match shared
        .pipeline
        .write(body, layout, key, key_id, hasher, allow_inline)
        .await
    {
        Ok(written) => Ok((key_id, written)),
        Err(failure) => {
            shared.free_later(failure.stored).await;
            Err(pipeline_error(failure.error))
        }
    }
}

pub(super) fn new_data(data: WrittenData) -> NewData {
    match data {
        WrittenData::Empty => NewData::Empty,
        WrittenData::Inline(sealed) => NewData::Inline(sealed),
        WrittenData::Pieces(part) => NewData::Pieces(Manifest { parts: vec![part] }),
    }
}

/// Commits a written version; frees its pieces if the commit is refused.
async fn commit(
    shared: &Shared,
    bucket: &Bucket,
    new: NewVersion,
    stored: Vec<(
        dbytes_ledger::piece::PieceId,
        dbytes_ledger::book::Placement,
    )>,
) -> S3Result<ObjectVersion> {
    let (name, id) = (bucket.name.clone(), bucket.id);
    match shared
        .book(move |book| book.put_version(&name, &id, new, now_ms()))
        .await
    {
        Ok(outcome) => Ok(outcome.version),
        Err(err) => {
            shared.free_later(stored).await;
            Err(err)
        }
    }
}

fn empty_body() -> futures::stream::Empty<Result<Bytes, std::io::Error>> {
    futures::stream::empty()
}

pub(super) async fn put_object(
    shared: &Shared,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let user = request_user(&req)?;
    let input = req.input;
    let bucket = owned_bucket(shared, &user, &input.bucket)?;
    let trailer = req
        .headers
        .get("x-amz-trailer")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut sent = Checksum {
        checksum_crc32: input.checksum_crc32,
        checksum_crc32c: input.checksum_crc32c,
        checksum_crc64nvme: input.checksum_crc64nvme,
        checksum_sha1: input.checksum_sha1,
        checksum_sha256: input.checksum_sha256,
        checksum_type: None,
    };
    let hasher =
        BodyHasher::for_request(&sent, input.checksum_algorithm.as_ref(), trailer.as_deref())?;
    let condition = write_condition(input.if_match, input.if_none_match)?;
    let headers = headers_from(
        input.content_type,
        input.content_encoding,
        input.content_disposition,
        input.content_language,
        input.cache_control,
        input.expires,
    );
    let (key_id, written) = match input.body {
        Some(body) => write_body(shared, &bucket, body, hasher, true).await?,
        None => write_body(shared, &bucket, empty_body(), hasher, true).await?,
    };
    let stored = written.stored_pieces();
    let hashes = written.digest.finish();
    let verified = checksum::merge_trailers(&mut sent, req.trailing_headers.as_ref())
        .and_then(|()| checksum::verify(&sent, &hashes.sums))
        .and_then(|()| checksum::verify_content_md5(input.content_md5.as_deref(), &hashes.md5));
    if let Err(err) = verified {
        shared.free_later(stored).await;
        return Err(err);
    }
    let checksums = checksum::to_book(&hashes.sums);
    let new = NewVersion {
        key: input.key,
        key_id,
        size: written.size,
        etag: hex::encode(hashes.md5),
        owner: user,
        headers,
        metadata: metadata_from(input.metadata),
        checksums: checksums.clone(),
        part_sizes: Vec::new(),
        data: new_data(written.data),
        condition,
    };
    let version = commit(shared, &bucket, new, stored).await?;
    let sums = checksum::from_book(&checksums);
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(etag_of(&version)),
        version_id: version_id_out(&bucket, &version.version_id),
        checksum_crc32: sums.checksum_crc32,
        checksum_crc32c: sums.checksum_crc32c,
        checksum_crc64nvme: sums.checksum_crc64nvme,
        checksum_sha1: sums.checksum_sha1,
        checksum_sha256: sums.checksum_sha256,
        checksum_type: sums.checksum_type,
        size: i64::try_from(version.size).ok(),
        ..Default::default()
    }))
}

/// The byte range a GET/HEAD asks for (`Range` or `partNumber`), and its
/// `Content-Range` when partial.
fn requested_range(
    version: &ObjectVersion,
    range: Option<&Range>,
    part_number: Option<PartNumber>,
) -> S3Result<(ByteRange<u64>, Option<String>)> {
    let size = version.size;
    let range = match (range, part_number) {
        (Some(_), Some(_)) => {
            return Err(s3_error!(
                InvalidRequest,
                "Cannot specify both Range header and partNumber query parameter"
            ));
        }
        (Some(range), None) => match range.check(size) {
            Ok(range) => range,
            Err(_) => {
                let mut err = s3_error!(InvalidRange, "The requested range is not satisfiable");
                let mut headers = error_headers();
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(hyper::header::CONTENT_RANGE, value);
                }
                err.set_headers(headers);
                return Err(err);
            }
        },
        (None, Some(number)) => {
            let sizes: &[u64] = if version.part_sizes.is_empty() {
                std::slice::from_ref(&version.size)
            } else {
                &version.part_sizes
            };
            let index = usize::try_from(number)
                .ok()
                .and_then(|number| number.checked_sub(1))
                .filter(|&index| index < sizes.len())
                .ok_or_else(|| {
                    s3_error!(InvalidRange, "The requested partnumber is not satisfiable")
                })?;
            let start: u64 = sizes[..index].iter().sum();
            start..start + sizes[index]
        }
        (None, None) => return Ok((0..size, None)),
    };
    let content_range = (range.end > range.start)
        .then(|| format!("bytes {}-{}/{size}", range.start, range.end - 1));
    Ok((range, content_range))
}

fn checksums_if_whole(
    version: &ObjectVersion,
    mode: Option<&ChecksumMode>,
    range: &ByteRange<u64>,
) -> Checksum {
    let enabled =
        mode.is_some_and(|mode| mode.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED));
    if enabled && range.start == 0 && range.end == version.size {
        checksum::from_book(&version.checksums)
    } else {
        Checksum::default()
    }
}

fn parts_count(version: &ObjectVersion, part_number: Option<PartNumber>) -> Option<i32> {
    (part_number.is_some() && !version.part_sizes.is_empty())
        .then_some(version.part_sizes.len() as i32)
}

pub(super) async fn get_object(
    shared: &Shared,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let user = request_user(&req)?;
    let input = req.input;
    let bucket = owned_bucket(shared, &user, &input.bucket)?;
    let version_id = parse_version_id(input.version_id.as_deref())?;
    let version = lookup(shared, &bucket, &input.key, version_id.as_ref())?;
    check_read_conditions(
        &bucket,
        &version,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )?;
    let (range, content_range) =
        requested_range(&version, input.range.as_ref(), input.part_number)?;
    let source = source_of(shared, &bucket, &version).await?;
    let stream = shared
        .pipeline
        .read(&shared.bucket_key(&bucket), source, range.clone())
        .ready()
        .await
        .map_err(pipeline_error)?;
    let sums = checksums_if_whole(&version, input.checksum_mode.as_ref(), &range);
    Ok(S3Response::new(GetObjectOutput {
        body: Some(StreamingBlob::wrap(stream)),
        content_length: i64::try_from(range.end - range.start).ok(),
        content_range,
        accept_ranges: Some("bytes".to_owned()),
        e_tag: Some(etag_of(&version)),
        last_modified: Some(timestamp(version.last_modified_ms)),
        metadata: metadata_out(&version.metadata),
        content_type: version.headers.content_type.clone(),
        content_encoding: version.headers.content_encoding.clone(),
        content_disposition: version.headers.content_disposition.clone(),
        content_language: version.headers.content_language.clone(),
        cache_control: version.headers.cache_control.clone(),
        expires: expires_of(&version.headers),
        version_id: version_id_out(&bucket, &version.version_id),
        parts_count: parts_count(&version, input.part_number),
        checksum_crc32: sums.checksum_crc32,
        checksum_crc32c: sums.checksum_crc32c,
        checksum_crc64nvme: sums.checksum_crc64nvme,
        checksum_sha1: sums.checksum_sha1,
        checksum_sha256: sums.checksum_sha256,
        checksum_type: sums.checksum_type,
        ..Default::default()
    }))
}

pub(super) async fn head_object(
    shared: &Shared,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let user = request_user(&req)?;
    let input = req.input;
    let bucket = owned_bucket(shared, &user, &input.bucket)?;
    let version_id = parse_version_id(input.version_id.as_deref())?;
    let version = lookup(shared, &bucket, &input.key, version_id.as_ref())?;
    check_read_conditions(
        &bucket,
        &version,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )?;
    let (range, content_range) =
        requested_range(&version, input.range.as_ref(), input.part_number)?;
    let sums = checksums_if_whole(&version, input.checksum_mode.as_ref(), &range);
    Ok(S3Response::new(HeadObjectOutput {
        content_length: i64::try_from(range.end - range.start).ok(),
        content_range,
        accept_ranges: Some("bytes".to_owned()),
        e_tag: Some(etag_of(&version)),
        last_modified: Some(timestamp(version.last_modified_ms)),
        metadata: metadata_out(&version.metadata),
        content_type: version.headers.content_type.clone(),
        content_encoding: version.headers.content_encoding.clone(),
        content_disposition: version.headers.content_disposition.clone(),
        content_language: version.headers.content_language.clone(),
        cache_control: version.headers.cache_control.clone(),
        expires: expires_of(&version.headers),
        version_id: version_id_out(&bucket, &version.version_id),
        parts_count: parts_count(&version, input.part_number),
        checksum_crc32: sums.checksum_crc32,
        checksum_crc32c: sums.checksum_crc32c,
        checksum_crc64nvme: sums.checksum_crc64nvme,
        checksum_sha1: sums.checksum_sha1,
        checksum_sha256: sums.checksum_sha256,
        checksum_type: sums.checksum_type,
        ..Default::default()
    }))
}

/// One DeleteObject: what S3 reports for it.
async fn delete_one(
    shared: &Shared,
    bucket: &Bucket,
    user: &str,
    key: String,
    version_id: Option<&str>,
) -> S3Result<(Option<bool>, Option<String>)> {
    let version_id = parse_version_id(version_id)?;
    let (name, owner) = (bucket.name.clone(), user.to_owned());
    let outcome = shared
        .book(move |book| book.delete_object(&name, &key, version_id, &owner, now_ms()))
        .await?;
    let reported = outcome.version_id.filter(|id| {
        bucket.versioning != Versioning::Unversioned
            || *id != VersionId::Null
            || version_id.is_some()
    });
    Ok((
        outcome.delete_marker.then_some(true),
        reported.map(|id| id.to_string()),
    ))
}

pub(super) async fn delete_object(
    shared: &Shared,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let user = request_user(&req)?;
    let input = req.input;
    let bucket = owned_bucket(shared, &user, &input.bucket)?;
    let (delete_marker, version_id) = delete_one(
        shared,
        &bucket,
        &user,
        input.key,
        input.version_id.as_deref(),
    )
    .await?;
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker,
        version_id,
        ..Default::default()
    }))
}

pub(super) async fn delete_objects(
    shared: &Shared,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let user = request_user(&req)?;
    let input = req.input;
    let bucket = owned_bucket(shared, &user, &input.bucket)?;
    if input.delete.objects.len() > 1000 {
        return Err(s3_error!(
            MalformedXML,
            "A DeleteObjects request names at most 1000 keys"
        ));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for object in input.delete.objects {
        let key = object.key.clone();
        match delete_one(
            shared,
            &bucket,
            &user,
            object.key,
            object.version_id.as_deref(),
        )
        .await
        {
            Ok((delete_marker, version_id)) => {
                if !quiet {
                    deleted.push(DeletedObject {
                        key: Some(key),
                        delete_marker,
                        delete_marker_version_id: delete_marker.and(version_id.clone()),
                        version_id: object.version_id.or(if delete_marker.is_some() {
                            None
                        } else {
                            version_id
                        }),
                    });
                }
            }
            Err(err) => errors.push(Error {
                code: Some(err.code().as_str().to_owned()),
                key: Some(key),
                message: err.message().map(str::to_owned),
                version_id: object.version_id,
            }),
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

/// The object a copy reads, resolved and checked.
pub(super) struct CopySourceObject {
    pub(super) bucket: Bucket,
    pub(super) key: String,
    pub(super) version_id: Option<VersionId>,
    pub(super) version: ObjectVersion,
}

/// The `x-amz-copy-source-if-*` conditions of a copy.
pub(super) struct CopyConditions<'a> {
    pub(super) if_match: Option<&'a ETagCondition>,
    pub(super) if_none_match: Option<&'a ETagCondition>,
    pub(super) if_modified_since: Option<&'a Timestamp>,
    pub(super) if_unmodified_since: Option<&'a Timestamp>,
}

/// Resolves `x-amz-copy-source` (which the user must own) and checks the
/// copy's conditions (any failing one is `PreconditionFailed`).
pub(super) fn copy_source(
    shared: &Shared,
    user: &str,
    source: &CopySource,
    conditions: CopyConditions<'_>,
) -> S3Result<CopySourceObject> {
    let (bucket, key, version_id) = match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => (bucket.to_string(), key.to_string(), version_id.clone()),
        _ => {
            return Err(s3_error!(
                NotImplemented,
                "Copying from an access point is not supported"
            ));
        }
    };
    let bucket = owned_bucket(shared, user, &bucket)?;
    let version_id = parse_version_id(version_id.as_deref())?;
    let version = match lookup(shared, &bucket, &key, version_id.as_ref()) {
        Err(err) if *err.code() == s3s::S3ErrorCode::MethodNotAllowed => {
            return Err(s3_error!(
                InvalidRequest,
                "The source of a copy request may not specifically refer to a delete marker by version id."
            ));
        }
        other => other?,
    };
    let modified = modified_second(&version);
    let failed = conditions
        .if_match
        .is_some_and(|condition| !etag_matches(condition, &version))
        || conditions
            .if_none_match
            .is_some_and(|condition| etag_matches(condition, &version))
        || conditions
            .if_unmodified_since
            .is_some_and(|since| modified > *since)
        || conditions
            .if_modified_since
            .is_some_and(|since| modified <= *since);
    if failed {
        return Err(s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        ));
    }
    Ok(CopySourceObject {
        bucket,
        key,
        version_id,
        version,
    })
}

pub(super) async fn copy_object(
    shared: &Shared,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let user = request_user(&req)?;
    let input = req.input;
    let CopySourceObject {
        bucket: source_bucket,
        key: source_key,
        version_id: source_version_id,
        version: source,
    } = copy_source(
        shared,
        &user,
        &input.copy_source,
        CopyConditions {
            if_match: input.copy_source_if_match.as_ref(),
            if_none_match: input.copy_source_if_none_match.as_ref(),
            if_modified_since: input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
        },
    )?;
    let bucket = owned_bucket(shared, &user, &input.bucket)?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|directive| directive.as_str() == MetadataDirective::REPLACE);
    if !replace
        && source_bucket.id == bucket.id
        && source_key == input.key
        && source_version_id.is_none()
    {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    let (headers, metadata) = if replace {
        (
            headers_from(
                input.content_type,
                input.content_encoding,
                input.content_disposition,
                input.content_language,
                input.cache_control,
                input.expires,
            ),
            metadata_from(input.metadata),
        )
    } else {
        (source.headers.clone(), source.metadata.clone())
    };
    let hasher = match &input.checksum_algorithm {
        Some(algorithm) => BodyHasher::for_request(&Checksum::default(), Some(algorithm), None)?,
        None => BodyHasher::like(&source.checksums),
    };
    let data = source_of(shared, &source_bucket, &source).await?;
    let stream = shared
        .pipeline
        .read(&shared.bucket_key(&source_bucket), data, 0..source.size);
    let (key_id, written) = write_body(shared, &bucket, stream, hasher, true).await?;
    let stored = written.stored_pieces();
    if written.size != source.size {
        shared.free_later(stored).await;
        return Err(s3_error!(
            InternalError,
            "the copy read {} of {} bytes",
            written.size,
            source.size
        ));
    }
    let hashes = written.digest.finish();
    let checksums = checksum::to_book(&hashes.sums);
    let new = NewVersion {
        key: input.key,
        key_id,
        size: written.size,
        etag: hex::encode(hashes.md5),
        owner: user,
        headers,
        metadata,
        checksums: checksums.clone(),
        part_sizes: Vec::new(),
        data: new_data(written.data),
        condition: None,
    };
    let version = commit(shared, &bucket, new, stored).await?;
    let sums = checksum::from_book(&checksums);
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag_of(&version)),
            last_modified: Some(timestamp(version.last_modified_ms)),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            checksum_type: sums.checksum_type,
        }),
        copy_source_version_id: version_id_out(&source_bucket, &source.version_id),
        version_id: version_id_out(&bucket, &version.version_id),
        ..Default::default()
    }))
}
