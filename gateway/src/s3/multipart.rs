//! Multipart uploads: each part is encoded and stored as it arrives; the
//! completion commits the chosen parts as one object version.

use std::collections::HashMap;

use dbytes_ledger::book::{
    Bucket, Checksums, CompletedPart as BookPart, Completion, KeyId, ManifestPart, NewUpload,
    Part as BookPartRecord, Upload,
};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::checksum::{self, BodyHasher, BodyHashes};
use super::errors::pipeline_error;
use super::objects::{
    CopyConditions, copy_source, etag_of, headers_from, metadata_from, source_of, version_id_out,
    write_body, write_condition,
};
use super::{Shared, now_ms, owned_bucket, policy_of, request_user, timestamp};
use crate::pipeline::WrittenData;

/// S3's most parts per upload, and parts per ListParts page.
const MAX_PARTS: i32 = 10_000;
const MAX_PAGE: i32 = 1000;

fn page_size(requested: Option<i32>, name: &str) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_PAGE as usize),
        Some(size) if size < 0 => Err(s3_error!(
            InvalidArgument,
            "{name} must be a non-negative integer"
        )),
        Some(size) => Ok(size.min(MAX_PAGE) as usize),
    }
}

pub(super) async fn create_multipart_upload(
    shared: &Shared,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let user = request_user(&req)?;
    let input = req.input;
    let bucket = owned_bucket(shared, &user, &input.bucket)?;
    let new = NewUpload {
        key: input.key.clone(),
        owner: user,
        headers: headers_from(
            input.content_type,
            input.content_encoding,
            input.content_disposition,
            input.content_language,
            input.cache_control,
            input.expires,
        ),
        metadata: metadata_from(input.metadata),
        checksum_algorithm: input
            .checksum_algorithm
            .as_ref()
            .map(|algorithm| algorithm.as_str().to_ascii_uppercase()),
        checksum_type: input
            .checksum_type
            .as_ref()
            .map(|kind| kind.as_str().to_owned()),
    };
    let upload = shared
        .book(move |book| book.create_upload(&bucket.name, &bucket.id, new, now_ms()))
        .await?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload.upload_id),
        checksum_algorithm: input.checksum_algorithm,
        checksum_type: input.checksum_type,
        ..Default::default()
    }))
}

/// The bucket, upload and part number an UploadPart(Copy) writes to,
/// checked before any byte is encoded.
async fn open_upload(
    shared: &Shared,
    user: &str,
    bucket: &str,
    key: &str,
    upload_id: &str,
    part_number: PartNumber,
) -> S3Result<(Bucket, Upload, u32)> {
    if !(1..=MAX_PARTS).contains(&part_number) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    let bucket = owned_bucket(shared, user, bucket)?;
    let upload = {
        let (bucket_id, key, upload_id) = (bucket.id, key.to_owned(), upload_id.to_owned());
        shared
            .book(move |book| book.upload(&bucket_id, &key, &upload_id))
            .await?
    };
    match upload {
        Some(upload) => Ok((bucket, upload, part_number as u32)),
        None => Err(s3_error!(
            NoSuchUpload,
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
        )),
    }
}

/// A part's encoded body and its hashes.
struct WrittenPart {
    key_id: KeyId,
    size: u64,
    data: WrittenData,
    hashes: BodyHashes,
}

/// Records a written part (replacing one with the same number).
async fn record_part(
    shared: &Shared,
    bucket: &Bucket,
    key: String,
    upload_id: String,
    part_number: u32,
    written: WrittenPart,
) -> S3Result<BookPartRecord> {
    let WrittenPart {
        key_id,
        size,
        data,
        hashes,
    } = written;
    let layout = shared
        .pipeline
        .layout(policy_of(&bucket.redundancy)?)
        .map_err(pipeline_error)?;
    let manifest = match data {
        WrittenData::Pieces(part) => part,
        WrittenData::Empty | WrittenData::Inline(_) => ManifestPart {
            key_id,
            size: 0,
            data_pieces: layout.policy().data_pieces(),
            total_pieces: layout.policy().total_pieces(),
            piece_size: layout.piece_size() as u64,
            segments: Vec::new(),
        },
    };
    let mut checksums = checksum::to_book(&hashes.sums);
    checksums.checksum_type = None;
    let part = BookPartRecord {
        part_number,
        size,
        etag: hex::encode(hashes.md5),
        checksums,
        last_modified_ms: now_ms(),
        manifest,
    };
    let recorded = part.clone();
    let bucket_id = bucket.id;
    shared
        .book(move |book| book.put_part(&bucket_id, &key, &upload_id, part, now_ms()))
        .await?;
    Ok(recorded)
}

pub(super) async fn upload_part(
    shared: &Shared,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let user = request_user(&req)?;
    let input = req.input;
    let (bucket, upload, part_number) = open_upload(
        shared,
        &user,
        &input.bucket,
        &input.key,
        &input.upload_id,
        input.part_number,
    )
    .await?;
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
    // The upload's announced algorithm is computed for every part: the
    // object's composite checksum is built from them.
    let announced = input.checksum_algorithm.or_else(|| {
        upload
            .checksum_algorithm
            .clone()
            .map(ChecksumAlgorithm::from)
    });
    let hasher = BodyHasher::for_request(&sent, announced.as_ref(), trailer.as_deref())?;
    let (key_id, written) = match input.body {
        Some(body) => write_body(shared, &bucket, body, hasher, false).await?,
        None => {
            let empty = futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
            write_body(shared, &bucket, empty, hasher, false).await?
        }
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
    let written = WrittenPart {
        key_id,
        size: written.size,
        data: written.data,
        hashes,
    };
    let part = record_part(
        shared,
        &bucket,
        input.key,
        input.upload_id,
        part_number,
        written,
    )
    .await?;
    let sums = checksum::from_book(&part.checksums);
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(part.etag)),
        checksum_crc32: sums.checksum_crc32,
        checksum_crc32c: sums.checksum_crc32c,
        checksum_crc64nvme: sums.checksum_crc64nvme,
        checksum_sha1: sums.checksum_sha1,
        checksum_sha256: sums.checksum_sha256,
        ..Default::default()
    }))
}

/// `x-amz-copy-source-range: bytes=first-last` against a source of `size` bytes.
fn copy_range(range: Option<&str>, size: u64) -> S3Result<std::ops::Range<u64>> {
    let Some(text) = range else {
        return Ok(0..size);
    };
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    match Range::parse(text).map_err(|_| invalid())? {
        Range::Int {
            first,
            last: Some(last),
        } if last < size => Ok(first..last + 1),
        Range::Int { .. } => Err(s3_error!(
            InvalidRange,
            "Range specified is not valid for source object of size: {size}"
        )),
        Range::Suffix { .. } => Err(invalid()),
    }
}

pub(super) async fn upload_part_copy(
    shared: &Shared,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let user = request_user(&req)?;
    let input = req.input;
    let (bucket, upload, part_number) = open_upload(
        shared,
        &user,
        &input.bucket,
        &input.key,
        &input.upload_id,
        input.part_number,
    )
    .await?;
    let source = copy_source(
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
    let range = copy_range(input.copy_source_range.as_deref(), source.version.size)?;
    let announced = upload
        .checksum_algorithm
        .clone()
        .map(ChecksumAlgorithm::from);
    let hasher = BodyHasher::for_request(&Checksum::default(), announced.as_ref(), None)?;
    let data = source_of(shared, &source.bucket, &source.version).await?;
    let stream = shared
        .pipeline
        .read(&shared.bucket_key(&source.bucket), data, range.clone());
    let (key_id, written) = write_body(shared, &bucket, stream, hasher, false).await?;
    if written.size != range.end - range.start {
        shared.free_later(written.stored_pieces()).await;
        return Err(s3_error!(
            InternalError,
            "the copy read {} of {} bytes",
            written.size,
            range.end - range.start
        ));
    }
    let written = WrittenPart {
        key_id,
        size: written.size,
        data: written.data,
        hashes: written.digest.finish(),
    };
    let part = record_part(
        shared,
        &bucket,
        input.key,
        input.upload_id,
        part_number,
        written,
    )
    .await?;
    let sums = checksum::from_book(&part.checksums);
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(part.etag)),
            last_modified: Some(timestamp(part.last_modified_ms)),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
        }),
        copy_source_version_id: source
            .version_id
            .map(|_| source.version.version_id.to_string()),
        ..Default::default()
    }))
}

/// The composite checksum of the chosen parts, for the algorithm the upload announced.
fn composite_checksums(
    algorithm: Option<&str>,
    checksum_type: Option<&str>,
    chosen: &[BookPart],
    stored: &HashMap<u32, BookPartRecord>,
) -> Checksums {
    let mut out = Checksums::default();
    let Some(algorithm) = algorithm else {
        return out;
    };
    if checksum_type.is_some_and(|kind| kind.eq_ignore_ascii_case(ChecksumType::FULL_OBJECT)) {
        // A full-object CRC of a multipart object needs the parts' CRCs
        // combined; not computed here, so none is claimed.
        return out;
    }
    let field = |sums: &Checksums| -> Option<String> {
        match algorithm {
            ChecksumAlgorithm::CRC32 => sums.crc32.clone(),
            ChecksumAlgorithm::CRC32C => sums.crc32c.clone(),
            ChecksumAlgorithm::SHA1 => sums.sha1.clone(),
            ChecksumAlgorithm::SHA256 => sums.sha256.clone(),
            _ => None,
        }
    };
    let sums: Vec<Option<String>> = chosen
        .iter()
        .map(|part| {
            stored
                .get(&part.part_number)
                .and_then(|stored| field(&stored.checksums))
        })
        .collect();
    let views: Vec<Option<&str>> = sums.iter().map(Option::as_deref).collect();
    let Some(value) = checksum::composite(algorithm, &views) else {
        return out;
    };
    match algorithm {
        ChecksumAlgorithm::CRC32 => out.crc32 = Some(value),
        ChecksumAlgorithm::CRC32C => out.crc32c = Some(value),
        ChecksumAlgorithm::SHA1 => out.sha1 = Some(value),
        ChecksumAlgorithm::SHA256 => out.sha256 = Some(value),
        _ => return out,
    }
    out.checksum_type = Some(ChecksumType::COMPOSITE.to_owned());
    out
}

pub(super) async fn complete_multipart_upload(
    shared: &Shared,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let user = request_user(&req)?;
    let input = req.input;
    let bucket = owned_bucket(shared, &user, &input.bucket)?;
    let upload = {
        let (bucket_id, key, upload_id) = (bucket.id, input.key.clone(), input.upload_id.clone());
        shared
            .book(move |book| book.upload(&bucket_id, &key, &upload_id))
            .await?
    };
    let Some(upload) = upload else {
        return Err(s3_error!(
            NoSuchUpload,
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
        ));
    };
    let requested = input
        .multipart_upload
        .and_then(|upload| upload.parts)
        .filter(|parts| !parts.is_empty())
        .ok_or_else(|| s3_error!(MalformedXML, "You must specify at least one part"))?;
    let mut chosen = Vec::with_capacity(requested.len());
    for part in requested {
        let number = part
            .part_number
            .filter(|number| (1..=MAX_PARTS).contains(number))
            .ok_or_else(|| {
                s3_error!(
                    InvalidPart,
                    "Every part needs a part number between 1 and 10000"
                )
            })?;
        let etag = part
            .e_tag
            .map(ETag::into_value)
            .ok_or_else(|| s3_error!(InvalidPart, "Every part needs its ETag"))?;
        chosen.push(BookPart {
            part_number: number as u32,
            etag,
        });
    }
    let etag = checksum::multipart_etag(chosen.iter().map(|part| part.etag.as_str())).ok_or_else(
        || {
            s3_error!(
                InvalidPart,
                "One or more of the specified parts could not be found"
            )
        },
    )?;
    let stored: HashMap<u32, BookPartRecord> = {
        let (bucket_id, key, upload_id) = (bucket.id, input.key.clone(), input.upload_id.clone());
        shared
            .book(move |book| book.parts(&bucket_id, &key, &upload_id))
            .await?
            .into_iter()
            .map(|part| (part.part_number, part))
            .collect()
    };
    let checksums = composite_checksums(
        upload.checksum_algorithm.as_deref(),
        upload.checksum_type.as_deref(),
        &chosen,
        &stored,
    );
    let completion = Completion {
        key: input.key.clone(),
        parts: chosen,
        min_part_size: shared.config.min_part_size,
        etag,
        checksums: checksums.clone(),
        condition: write_condition(input.if_match, input.if_none_match)?,
    };
    let (name, bucket_id, upload_id) = (bucket.name.clone(), bucket.id, input.upload_id.clone());
    let outcome = shared
        .book(move |book| book.complete_upload(&name, &bucket_id, &upload_id, completion, now_ms()))
        .await?;
    let version = outcome.version;
    let sums = checksum::from_book(&checksums);
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        e_tag: Some(etag_of(&version)),
        version_id: version_id_out(&bucket, &version.version_id),
        checksum_crc32: sums.checksum_crc32,
        checksum_crc32c: sums.checksum_crc32c,
        checksum_crc64nvme: sums.checksum_crc64nvme,
        checksum_sha1: sums.checksum_sha1,
        checksum_sha256: sums.checksum_sha256,
        checksum_type: sums.checksum_type,
        ..Default::default()
    }))
}

pub(super) async fn abort_multipart_upload(
    shared: &Shared,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let user = request_user(&req)?;
    let input = req.input;
    let bucket = owned_bucket(shared, &user, &input.bucket)?;
    let (bucket_id, key, upload_id) = (bucket.id, input.key, input.upload_id);
    shared
        .book(move |book| book.abort_upload(&bucket_id, &key, &upload_id, now_ms()))
        .await?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub(super) async fn list_parts(
    shared: &Shared,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let user = request_user(&req)?;
    let input = req.input;
    let bucket = owned_bucket(shared, &user, &input.bucket)?;
    let max = page_size(input.max_parts, "max-parts")?;
    let after = input
        .part_number_marker
        .and_then(|marker| u32::try_from(marker).ok())
        .filter(|marker| *marker > 0);
    let (bucket_id, key, upload_id) = (bucket.id, input.key.clone(), input.upload_id.clone());
    let (upload, listing) = shared
        .book(move |book| {
            let listing = book.list_parts(&bucket_id, &key, &upload_id, after, max)?;
            Ok((book.upload(&bucket_id, &key, &upload_id)?, listing))
        })
        .await?;
    let owner = Owner {
        display_name: Some(user.clone()),
        id: Some(user.clone()),
    };
    let parts = listing
        .parts
        .into_iter()
        .map(|part| {
            let sums = checksum::from_book(&part.checksums);
            Part {
                part_number: Some(part.part_number as i32),
                size: i64::try_from(part.size).ok(),
                e_tag: Some(ETag::Strong(part.etag)),
                last_modified: Some(timestamp(part.last_modified_ms)),
                checksum_crc32: sums.checksum_crc32,
                checksum_crc32c: sums.checksum_crc32c,
                checksum_crc64nvme: sums.checksum_crc64nvme,
                checksum_sha1: sums.checksum_sha1,
                checksum_sha256: sums.checksum_sha256,
            }
        })
        .collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        max_parts: Some(max as i32),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: listing.next_part_number_marker.map(|marker| marker as i32),
        is_truncated: Some(listing.truncated),
        parts: Some(parts),
        checksum_algorithm: upload
            .as_ref()
            .and_then(|upload| upload.checksum_algorithm.clone())
            .map(ChecksumAlgorithm::from),
        initiator: Some(Initiator {
            display_name: owner.display_name.clone(),
            id: owner.id.clone(),
        }),
        owner: Some(owner),
        ..Default::default()
    }))
}

pub(super) async fn list_multipart_uploads(
    shared: &Shared,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let user = request_user(&req)?;
    let input = req.input;
    let bucket = owned_bucket(shared, &user, &input.bucket)?;
    let max = page_size(input.max_uploads, "max-uploads")?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input
        .delimiter
        .clone()
        .filter(|delimiter| !delimiter.is_empty());
    let key_marker = input.key_marker.clone().filter(|marker| !marker.is_empty());
    let upload_id_marker = input
        .upload_id_marker
        .clone()
        .filter(|marker| !marker.is_empty());
    let bucket_id = bucket.id;
    let listing = shared
        .book(move |book| {
            let query = dbytes_ledger::book::UploadQuery {
                prefix: &prefix,
                delimiter: delimiter.as_deref(),
                key_marker: key_marker.as_deref(),
                upload_id_marker: upload_id_marker.as_deref(),
                max_uploads: max,
            };
            book.list_uploads(&bucket_id, &query)
        })
        .await?;
    let mut uploads = Vec::new();
    let mut common_prefixes = Vec::new();
    for entry in listing.entries {
        match entry {
            dbytes_ledger::book::UploadEntry::Upload(upload) => {
                let owner = Owner {
                    display_name: Some(upload.owner.clone()),
                    id: Some(upload.owner.clone()),
                };
                uploads.push(MultipartUpload {
                    key: Some(upload.key),
                    upload_id: Some(upload.upload_id),
                    initiated: Some(timestamp(upload.initiated_ms)),
                    checksum_algorithm: upload.checksum_algorithm.map(ChecksumAlgorithm::from),
                    initiator: Some(Initiator {
                        display_name: owner.display_name.clone(),
                        id: owner.id.clone(),
                    }),
                    owner: Some(owner),
                    ..Default::default()
                });
            }
            dbytes_ledger::book::UploadEntry::CommonPrefix(prefix) => {
                common_prefixes.push(CommonPrefix {
                    prefix: Some(prefix),
                });
            }
        }
    }
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix,
        delimiter: input.delimiter,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        max_uploads: Some(max as i32),
        is_truncated: Some(listing.truncated),
        next_key_marker: listing.next_key_marker,
        next_upload_id_marker: listing.next_upload_id_marker,
        uploads: Some(uploads),
        common_prefixes: (!common_prefixes.is_empty()).then_some(common_prefixes),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}
