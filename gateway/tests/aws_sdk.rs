//! The gateway as the AWS SDK for Rust (aws-sdk-s3) meets it, against a
//! local network the test starts (anvil, the contracts, four provider
//! daemons, the gateway over the mesh): every S3 operation the gateway
//! offers, versioning, multipart, checksums, presigned URLs and the error
//! codes, then every object read back with two providers gone.
//!
//! The Python twin of this suite (boto3) is `s3_suite.py`; the SDKs differ
//! in what they send by default (this one: CRC32 trailers on aws-chunked
//! bodies, `x-id` query parameters, its own presigning), which is why both
//! run.

use std::collections::HashMap;
use std::fmt::Debug;
use std::time::Duration;

mod common;
#[path = "support/sdk.rs"]
mod sdk;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::delete_object::builders::DeleteObjectFluentBuilder;
use aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder;
use aws_sdk_s3::operation::head_object::builders::HeadObjectFluentBuilder;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketVersioningStatus, ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload,
    CompletedPart, Delete, MetadataDirective, ObjectIdentifier, VersioningConfiguration,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{new_user, start_devnet};
use dbytes_ledger::book::AccessKey;
use md5::Digest as _;
use sdk::{client_with, pattern};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client for `endpoint` signing as `key`, no retries (a refused request
/// must show its first error).
fn client_for(endpoint: &str, key: &AccessKey) -> Client {
    sdk::client(endpoint, key, RetryConfig::disabled())
}

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(md5::Md5::digest(bytes))
}

fn crc32_b64(bytes: &[u8]) -> String {
    BASE64.encode(crc32fast::hash(bytes).to_be_bytes())
}

/// The S3 error code (or, for bodiless replies, the status) and the status
/// of a failed call; panics when it succeeded.
fn failure<T: Debug, E: ProvideErrorMetadata + Debug>(
    what: &str,
    result: Result<T, SdkError<E, HttpResponse>>,
) -> (String, u16) {
    let err = match result {
        Ok(value) => panic!("{what}: succeeded ({value:?}), an error was expected"),
        Err(err) => err,
    };
    let status = err
        .raw_response()
        .map(|response| response.status().as_u16())
        .unwrap_or_else(|| panic!("{what}: no response: {err:?}"));
    let code = err
        .code()
        .map(str::to_owned)
        .unwrap_or_else(|| status.to_string());
    (code, status)
}

/// Asserts a call failed with `code` and `status`.
fn expect_error<T: Debug, E: ProvideErrorMetadata + Debug>(
    what: &str,
    result: Result<T, SdkError<E, HttpResponse>>,
    code: &str,
    status: u16,
) {
    assert_eq!(
        failure(what, result),
        (code.to_owned(), status),
        "{what}: wrong error"
    );
}

fn get(s3: &Client, bucket: &str, key: &str) -> GetObjectFluentBuilder {
    s3.get_object().bucket(bucket).key(key)
}

fn head(s3: &Client, bucket: &str, key: &str) -> HeadObjectFluentBuilder {
    s3.head_object().bucket(bucket).key(key)
}

fn del(s3: &Client, bucket: &str, key: &str) -> DeleteObjectFluentBuilder {
    s3.delete_object().bucket(bucket).key(key)
}

async fn create(s3: &Client, bucket: &str) {
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|err| panic!("create bucket {bucket}: {err:?}"));
}

async fn body_of(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let object = get(client, bucket, key)
        .send()
        .await
        .unwrap_or_else(|err| panic!("GET {bucket}/{key}: {err:?}"));
    object.body.collect().await.expect("read the body").to_vec()
}

async fn put(client: &Client, bucket: &str, key: &str, body: &[u8]) -> String {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|err| panic!("PUT {bucket}/{key}: {err:?}"))
        .e_tag()
        .expect("an ETag")
        .to_owned()
}

/// Every object the groups leave behind, to read back at the end.
type Kept = Vec<(String, String, Vec<u8>)>;

async fn objects_and_buckets(s3: &Client, kept: &mut Kept) {
    create(s3, "objects").await;
    let body = pattern(300_000, 1);
    let put_out = s3
        .put_object()
        .bucket("objects")
        .key("dir/file.bin")
        .body(ByteStream::from(body.clone()))
        .content_type("application/x-test")
        .cache_control("max-age=60")
        .content_disposition("attachment; filename=\"f.bin\"")
        .metadata("colour", "blue")
        .metadata("Owner-Name", "Alice")
        .send()
        .await
        .expect("put with headers");
    assert_eq!(
        put_out.e_tag(),
        Some(format!("\"{}\"", md5_hex(&body)).as_str())
    );
    let got = get(s3, "objects", "dir/file.bin")
        .send()
        .await
        .expect("get");
    assert_eq!(got.content_type(), Some("application/x-test"));
    assert_eq!(got.cache_control(), Some("max-age=60"));
    assert_eq!(
        got.content_disposition(),
        Some("attachment; filename=\"f.bin\"")
    );
    let expected: HashMap<String, String> = [("colour", "blue"), ("owner-name", "Alice")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(got.metadata(), Some(&expected));
    assert_eq!(got.content_length(), Some(body.len() as i64));
    assert_eq!(got.body.collect().await.expect("body").to_vec(), body);
    let head_out = head(s3, "objects", "dir/file.bin")
        .send()
        .await
        .expect("head");
    assert_eq!(head_out.e_tag(), put_out.e_tag());
    assert_eq!(head_out.content_length(), Some(body.len() as i64));
    kept.push(("objects".into(), "dir/file.bin".into(), body.clone()));

    // Small, empty and oddly named objects.
    put(s3, "objects", "small", b"hello").await;
    assert_eq!(body_of(s3, "objects", "small").await, b"hello");
    let empty_tag = put(s3, "objects", "empty", b"").await;
    assert_eq!(empty_tag, format!("\"{}\"", md5_hex(b"")));
    assert!(body_of(s3, "objects", "empty").await.is_empty());
    let odd = "odd key/ü+%20&=?#[]";
    put(s3, "objects", odd, b"odd").await;
    assert_eq!(body_of(s3, "objects", odd).await, b"odd");

    // Ranges, suffix ranges, and the unsatisfiable ones.
    for (header, start, end) in [
        ("bytes=0-9", 0, 10),
        ("bytes=196600-196700", 196_600, 196_701),
        ("bytes=299990-", 299_990, 300_000),
        ("bytes=-5", 299_995, 300_000),
        ("bytes=-999999", 0, 300_000),
        ("bytes=299999-400000", 299_999, 300_000),
    ] {
        let part = get(s3, "objects", "dir/file.bin")
            .range(header)
            .send()
            .await
            .unwrap_or_else(|err| panic!("range {header}: {err:?}"));
        assert_eq!(
            part.content_range(),
            Some(format!("bytes {start}-{}/{}", end - 1, body.len()).as_str()),
            "{header}"
        );
        let bytes = part.body.collect().await.expect("range body").to_vec();
        assert_eq!(bytes, body[start..end], "{header}");
    }
    let ranged = |key: &str, range: &str| get(s3, "objects", key).range(range).send();
    expect_error(
        "range past the end",
        ranged("dir/file.bin", "bytes=300000-").await,
        "InvalidRange",
        416,
    );
    expect_error(
        "range of an empty object",
        ranged("empty", "bytes=0-1").await,
        "InvalidRange",
        416,
    );

    // Errors.
    expect_error(
        "missing key",
        get(s3, "objects", "missing").send().await,
        "NoSuchKey",
        404,
    );
    let (_, status) = failure(
        "HEAD of a missing key",
        head(s3, "objects", "missing").send().await,
    );
    assert_eq!(status, 404);
    expect_error(
        "missing bucket",
        get(s3, "no-such-bucket", "k").send().await,
        "NoSuchBucket",
        404,
    );
    expect_error(
        "bucket created twice",
        s3.create_bucket().bucket("objects").send().await,
        "BucketAlreadyOwnedByYou",
        409,
    );
    expect_error(
        "delete of a bucket with objects",
        s3.delete_bucket().bucket("objects").send().await,
        "BucketNotEmpty",
        409,
    );

    // Overwrite, delete twice (204 both times), then gone.
    put(s3, "objects", "small", b"second").await;
    assert_eq!(body_of(s3, "objects", "small").await, b"second");
    for _ in 0..2 {
        del(s3, "objects", "small").send().await.expect("delete");
    }
    expect_error(
        "deleted key",
        get(s3, "objects", "small").send().await,
        "NoSuchKey",
        404,
    );

    // DeleteObjects, then the bucket can go.
    create(s3, "scratch").await;
    let keys = ["a", "b/c", "d e"];
    for key in keys {
        put(s3, "scratch", key, key.as_bytes()).await;
    }
    let objects = keys
        .iter()
        .map(|key| ObjectIdentifier::builder().key(*key).build().expect("id"))
        .collect();
    let deleted = s3
        .delete_objects()
        .bucket("scratch")
        .delete(
            Delete::builder()
                .set_objects(Some(objects))
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("delete objects");
    let mut gone: Vec<&str> = deleted.deleted().iter().filter_map(|d| d.key()).collect();
    gone.sort_unstable();
    assert_eq!(gone, keys);
    let left = s3
        .list_objects_v2()
        .bucket("scratch")
        .send()
        .await
        .expect("list");
    assert_eq!(left.key_count(), Some(0));
    s3.delete_bucket()
        .bucket("scratch")
        .send()
        .await
        .expect("delete bucket");
    let (_, status) = failure(
        "HEAD of a deleted bucket",
        s3.head_bucket().bucket("scratch").send().await,
    );
    assert_eq!(status, 404);

    let names: Vec<String> = s3
        .list_buckets()
        .send()
        .await
        .expect("list buckets")
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect();
    assert_eq!(names, ["objects"]);
    s3.head_bucket()
        .bucket("objects")
        .send()
        .await
        .expect("head bucket");
    let location = s3
        .get_bucket_location()
        .bucket("objects")
        .send()
        .await
        .expect("location");
    let constraint = location
        .location_constraint()
        .map(|c| c.as_str().to_owned());
    assert!(
        matches!(constraint.as_deref(), None | Some("")),
        "{constraint:?}"
    );
}

async fn copy(s3: &Client, kept: &mut Kept) {
    create(s3, "copy-a").await;
    create(s3, "copy-b").await;
    let body = pattern(500_000, 7);
    s3.put_object()
        .bucket("copy-a")
        .key("src")
        .body(ByteStream::from(body.clone()))
        .content_type("text/plain")
        .metadata("m", "1")
        .send()
        .await
        .expect("put");
    let out = s3
        .copy_object()
        .bucket("copy-b")
        .key("dst")
        .copy_source("copy-a/src")
        .send()
        .await
        .expect("copy");
    let tag = out.copy_object_result().and_then(|r| r.e_tag());
    assert_eq!(tag, Some(format!("\"{}\"", md5_hex(&body)).as_str()));
    let got = head(s3, "copy-b", "dst").send().await.expect("head");
    assert_eq!(got.content_type(), Some("text/plain"));
    assert_eq!(
        got.metadata().and_then(|m| m.get("m")).map(String::as_str),
        Some("1")
    );
    assert_eq!(body_of(s3, "copy-b", "dst").await, body);
    kept.push(("copy-b".into(), "dst".into(), body));

    expect_error(
        "copy onto itself without REPLACE",
        s3.copy_object()
            .bucket("copy-a")
            .key("src")
            .copy_source("copy-a/src")
            .send()
            .await,
        "InvalidRequest",
        400,
    );
    s3.copy_object()
        .bucket("copy-a")
        .key("src")
        .copy_source("copy-a/src")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("application/json")
        .metadata("m", "2")
        .send()
        .await
        .expect("copy with REPLACE");
    let head_out = head(s3, "copy-a", "src").send().await.expect("head");
    assert_eq!(head_out.content_type(), Some("application/json"));
    assert_eq!(
        head_out
            .metadata()
            .and_then(|m| m.get("m"))
            .map(String::as_str),
        Some("2")
    );
    expect_error(
        "copy with a failing x-amz-copy-source-if-match",
        s3.copy_object()
            .bucket("copy-b")
            .key("x")
            .copy_source("copy-a/src")
            .copy_source_if_match("\"0000\"")
            .send()
            .await,
        "PreconditionFailed",
        412,
    );
    expect_error(
        "copy of a missing key",
        s3.copy_object()
            .bucket("copy-b")
            .key("x")
            .copy_source("copy-a/missing")
            .send()
            .await,
        "NoSuchKey",
        404,
    );
}

async fn versioning(s3: &Client, kept: &mut Kept) {
    let bucket = "versions";
    create(s3, bucket).await;
    let status = |s3: &Client| {
        let s3 = s3.clone();
        async move {
            s3.get_bucket_versioning()
                .bucket(bucket)
                .send()
                .await
                .expect("get versioning")
                .status()
                .cloned()
        }
    };
    let set = |state: BucketVersioningStatus| {
        s3.put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(VersioningConfiguration::builder().status(state).build())
            .send()
    };
    assert_eq!(status(s3).await, None);
    put(s3, bucket, "k", b"null-version").await;
    set(BucketVersioningStatus::Enabled)
        .await
        .expect("enable versioning");
    assert_eq!(status(s3).await, Some(BucketVersioningStatus::Enabled));
    let version = |body: &'static [u8]| {
        s3.put_object()
            .bucket(bucket)
            .key("k")
            .body(ByteStream::from_static(body))
            .send()
    };
    let v1 = version(b"one")
        .await
        .expect("put v1")
        .version_id()
        .map(str::to_owned);
    let v2 = version(b"two")
        .await
        .expect("put v2")
        .version_id()
        .map(str::to_owned);
    let (v1, v2) = (v1.expect("a version id"), v2.expect("a version id"));
    assert!(v1 != v2 && v1 != "null");
    let by_version = |id: &str| get(s3, bucket, "k").version_id(id).send();
    assert_eq!(body_of(s3, bucket, "k").await, b"two");
    let one = by_version(&v1).await.expect("get v1");
    assert_eq!(one.version_id(), Some(v1.as_str()));
    assert_eq!(one.body.collect().await.expect("body").to_vec(), b"one");
    let null = by_version("null").await.expect("get null");
    assert_eq!(
        null.body.collect().await.expect("body").to_vec(),
        b"null-version"
    );
    let head_out = head(s3, bucket, "k")
        .version_id(&v1)
        .send()
        .await
        .expect("head v1");
    assert_eq!(head_out.version_id(), Some(v1.as_str()));
    expect_error(
        "unknown version",
        by_version(&"0".repeat(32)).await,
        "NoSuchVersion",
        404,
    );
    expect_error(
        "malformed version",
        by_version("not-a-version").await,
        "InvalidArgument",
        400,
    );

    // A plain delete leaves a delete marker; GET says so.
    let deleted = del(s3, bucket, "k").send().await.expect("delete");
    assert_eq!(deleted.delete_marker(), Some(true));
    let marker = deleted.version_id().expect("the marker's id").to_owned();
    let err = get(s3, bucket, "k")
        .send()
        .await
        .expect_err("GET after delete");
    assert_eq!(err.code(), Some("NoSuchKey"));
    let marker_header = err
        .raw_response()
        .and_then(|r| r.headers().get("x-amz-delete-marker"))
        .map(str::to_owned);
    assert_eq!(marker_header.as_deref(), Some("true"));
    expect_error(
        "GET of a delete marker by id",
        by_version(&marker).await,
        "MethodNotAllowed",
        405,
    );
    let listing = s3
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .expect("list versions");
    let versions: Vec<(String, bool)> = listing
        .versions()
        .iter()
        .map(|v| {
            (
                v.version_id().unwrap_or_default().to_owned(),
                v.is_latest().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            (v2.clone(), false),
            (v1.clone(), false),
            ("null".into(), false)
        ]
    );
    let markers: Vec<(String, bool)> = listing
        .delete_markers()
        .iter()
        .map(|m| {
            (
                m.version_id().unwrap_or_default().to_owned(),
                m.is_latest().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(markers, [(marker.clone(), true)]);

    // Deleting the marker brings the object back; deleting a version
    // removes it for good.
    let undo = del(s3, bucket, "k")
        .version_id(&marker)
        .send()
        .await
        .expect("delete the marker");
    assert_eq!(undo.delete_marker(), Some(true));
    assert_eq!(undo.version_id(), Some(marker.as_str()));
    assert_eq!(body_of(s3, bucket, "k").await, b"two");
    del(s3, bucket, "k")
        .version_id(&v2)
        .send()
        .await
        .expect("delete v2");
    assert_eq!(body_of(s3, bucket, "k").await, b"one");

    // Suspended: writes replace the null version, older versions stay.
    set(BucketVersioningStatus::Suspended)
        .await
        .expect("suspend versioning");
    assert_eq!(status(s3).await, Some(BucketVersioningStatus::Suspended));
    let suspended = version(b"suspended").await.expect("put while suspended");
    assert_eq!(suspended.version_id(), Some("null"));
    let ids: Vec<String> = s3
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .expect("list versions")
        .versions()
        .iter()
        .filter_map(|v| v.version_id().map(str::to_owned))
        .collect();
    assert_eq!(ids, ["null".to_owned(), v1.clone()]);
    let null = by_version("null").await.expect("get null");
    assert_eq!(
        null.body.collect().await.expect("body").to_vec(),
        b"suspended"
    );
    kept.push((bucket.into(), "k".into(), b"suspended".to_vec()));

    // Paging through versions with key and version-id markers.
    set(BucketVersioningStatus::Enabled)
        .await
        .expect("enable versioning");
    for i in 0..5 {
        put(
            s3,
            bucket,
            &format!("p/{}", i % 2),
            i.to_string().as_bytes(),
        )
        .await;
    }
    let mut seen = Vec::new();
    let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
    for _ in 0..10 {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .prefix("p/")
            .max_keys(2)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .expect("a page of versions");
        seen.extend(page.versions().iter().map(|v| {
            (
                v.key().unwrap_or_default().to_owned(),
                v.is_latest().unwrap_or_default(),
            )
        }));
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
    }
    let expected: Vec<(String, bool)> = [
        ("p/0", true),
        ("p/0", false),
        ("p/0", false),
        ("p/1", true),
        ("p/1", false),
    ]
    .into_iter()
    .map(|(k, latest)| (k.to_owned(), latest))
    .collect();
    assert_eq!(seen, expected);
}

async fn listing(s3: &Client) {
    let bucket = "listing";
    create(s3, bucket).await;
    let keys = ["a.txt", "b/1", "b/2", "b/c/3", "c/4", "d", "e/5/6"];
    for key in keys {
        put(s3, bucket, key, key.as_bytes()).await;
    }
    let names = |page: &aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output| {
        let objects = page
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned));
        let prefixes = page
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix().map(str::to_owned));
        objects.chain(prefixes).collect::<Vec<String>>()
    };
    let top = s3
        .list_objects_v2()
        .bucket(bucket)
        .delimiter("/")
        .send()
        .await
        .expect("list");
    assert_eq!(names(&top), ["a.txt", "d", "b/", "c/", "e/"]);
    assert_eq!(top.key_count(), Some(5));
    assert_eq!(top.is_truncated(), Some(false));
    let sub = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("b/")
        .delimiter("/")
        .send()
        .await
        .expect("list b/");
    assert_eq!(names(&sub), ["b/1", "b/2", "b/c/"]);

    // Pages of two with continuation tokens; objects and prefixes both count.
    let mut pages = Vec::new();
    let mut token = None::<String>;
    for _ in 0..10 {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .delimiter("/")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("a page");
        pages.push(names(&page));
        if page.is_truncated() != Some(true) {
            break;
        }
        token = page.next_continuation_token().map(str::to_owned);
    }
    assert_eq!(pages, [vec!["a.txt", "b/"], vec!["d", "c/"], vec!["e/"]]);
    let after = s3
        .list_objects_v2()
        .bucket(bucket)
        .start_after("b/2")
        .send()
        .await
        .expect("start-after");
    assert_eq!(names(&after), ["b/c/3", "c/4", "d", "e/5/6"]);

    // v1 with markers.
    let mut seen = Vec::new();
    let mut marker = None::<String>;
    for _ in 0..10 {
        let page = s3
            .list_objects()
            .bucket(bucket)
            .max_keys(3)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("a v1 page");
        let page_keys: Vec<String> = page
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        marker = page
            .next_marker()
            .map(str::to_owned)
            .or_else(|| page_keys.last().cloned());
        seen.extend(page_keys);
        if page.is_truncated() != Some(true) {
            break;
        }
    }
    assert_eq!(seen, keys);
    let v1 = s3
        .list_objects()
        .bucket(bucket)
        .prefix("b/")
        .marker("b/1")
        .send()
        .await
        .expect("v1 with a marker");
    let v1_keys: Vec<&str> = v1.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(v1_keys, ["b/2", "b/c/3"]);
    let one = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("a.txt")
        .send()
        .await
        .expect("list one");
    let object = &one.contents()[0];
    assert_eq!(object.size(), Some(5));
    assert_eq!(
        object.e_tag(),
        Some(format!("\"{}\"", md5_hex(b"a.txt")).as_str())
    );
    expect_error(
        "list of a missing bucket",
        s3.list_objects_v2().bucket("no-such").send().await,
        "NoSuchBucket",
        404,
    );
}

async fn conditions(s3: &Client) {
    let bucket = "conditions";
    create(s3, bucket).await;
    let etag = put(s3, bucket, "k", b"payload").await;
    let get = || get(s3, bucket, "k");
    let past = DateTime::from_secs(946_684_800); // 2000-01-01
    let future = DateTime::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64
            + 86_400,
    );
    get().if_match(&etag).send().await.expect("if-match");
    expect_error(
        "if-match another etag",
        get().if_match("\"abc\"").send().await,
        "PreconditionFailed",
        412,
    );
    assert_eq!(
        failure("if-none-match", get().if_none_match(&etag).send().await).1,
        304
    );
    get()
        .if_none_match("\"other\"")
        .send()
        .await
        .expect("if-none-match other");
    get()
        .if_modified_since(past)
        .send()
        .await
        .expect("modified since 2000");
    assert_eq!(
        failure(
            "if-modified-since tomorrow",
            get().if_modified_since(future).send().await
        )
        .1,
        304
    );
    expect_error(
        "if-unmodified-since 2000",
        get().if_unmodified_since(past).send().await,
        "PreconditionFailed",
        412,
    );
    get()
        .if_unmodified_since(future)
        .send()
        .await
        .expect("unmodified since tomorrow");
    // If-Match wins over If-Unmodified-Since (RFC 9110).
    let both = get()
        .if_match(&etag)
        .if_unmodified_since(past)
        .send()
        .await
        .expect("if-match wins");
    assert_eq!(both.content_length(), Some(7));
    let head = || head(s3, bucket, "k");
    assert_eq!(
        failure(
            "HEAD if-none-match",
            head().if_none_match(&etag).send().await
        )
        .1,
        304
    );
    assert_eq!(
        failure("HEAD if-match", head().if_match("\"abc\"").send().await).1,
        412
    );
    // Conditional writes.
    let write = |key: &str| {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from_static(b"x"))
    };
    expect_error(
        "put if-none-match * over an object",
        write("k").if_none_match("*").send().await,
        "PreconditionFailed",
        412,
    );
    write("new")
        .if_none_match("*")
        .send()
        .await
        .expect("create-only put");
    expect_error(
        "put if-match another etag",
        write("k").if_match("\"abc\"").send().await,
        "PreconditionFailed",
        412,
    );
    write("k")
        .if_match(&etag)
        .send()
        .await
        .expect("put if-match");
    assert_eq!(body_of(s3, bucket, "k").await, b"x");
}

async fn checksums(s3: &Client, kept: &mut Kept) {
    let bucket = "sums";
    create(s3, bucket).await;
    let body = pattern(200_000, 3);
    // The SDK's default: CRC32 in an aws-chunked trailer.
    let default = s3
        .put_object()
        .bucket(bucket)
        .key("default")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put with the default checksum");
    assert_eq!(default.checksum_crc32(), Some(crc32_b64(&body).as_str()));
    kept.push((bucket.into(), "default".into(), body.clone()));
    for algorithm in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Sha1,
    ] {
        let key = algorithm.as_str().to_owned();
        let out = s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .checksum_algorithm(algorithm.clone())
            .send()
            .await
            .unwrap_or_else(|err| panic!("put with {key}: {err:?}"));
        // The SDK validates the checksum of the body it reads back.
        let got = get(s3, bucket, &key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap_or_else(|err| panic!("get with {key}: {err:?}"));
        let (sent, returned) = match algorithm {
            ChecksumAlgorithm::Crc32 => (out.checksum_crc32(), got.checksum_crc32()),
            ChecksumAlgorithm::Crc32C => (out.checksum_crc32_c(), got.checksum_crc32_c()),
            ChecksumAlgorithm::Sha256 => (out.checksum_sha256(), got.checksum_sha256()),
            _ => (out.checksum_sha1(), got.checksum_sha1()),
        };
        assert!(
            sent.is_some() && sent == returned,
            "{key}: {sent:?} vs {returned:?}"
        );
        assert_eq!(
            got.body.collect().await.expect("body").to_vec(),
            body,
            "{key}"
        );
    }
    let sha = BASE64.encode(sha2::Sha256::digest(&body));
    let head_out = head(s3, bucket, "SHA256")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head_out.checksum_sha256(), Some(sha.as_str()));
    // A checksum or Content-MD5 that does not match is refused; nothing kept.
    expect_error(
        "a wrong CRC32",
        s3.put_object()
            .bucket(bucket)
            .key("bad")
            .body(ByteStream::from(body.clone()))
            .checksum_crc32("AAAAAA==")
            .send()
            .await,
        "BadDigest",
        400,
    );
    expect_error(
        "a wrong Content-MD5",
        s3.put_object()
            .bucket(bucket)
            .key("bad")
            .body(ByteStream::from(body.clone()))
            .content_md5(BASE64.encode(md5::Md5::digest(b"x")))
            .send()
            .await,
        "BadDigest",
        400,
    );
    expect_error(
        "the refused object",
        get(s3, bucket, "bad").send().await,
        "NoSuchKey",
        404,
    );
}

async fn multipart(s3: &Client, kept: &mut Kept) {
    let bucket = "multi";
    create(s3, bucket).await;
    let size = 5 * 1024 * 1024;
    let parts = [pattern(size, 11), pattern(size, 12), pattern(123_457, 13)];
    let upload_id = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key("big")
        .content_type("video/x-test")
        .metadata("a", "b")
        .send()
        .await
        .expect("create upload")
        .upload_id()
        .expect("an upload id")
        .to_owned();
    let uploads = s3
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .expect("list uploads");
    let listed: Vec<(Option<&str>, Option<&str>)> = uploads
        .uploads()
        .iter()
        .map(|u| (u.key(), u.upload_id()))
        .collect();
    assert_eq!(listed, [(Some("big"), Some(upload_id.as_str()))]);
    let mut etags = Vec::new();
    for (index, payload) in parts.iter().enumerate() {
        let part = s3
            .upload_part()
            .bucket(bucket)
            .key("big")
            .upload_id(&upload_id)
            .part_number(index as i32 + 1)
            .body(ByteStream::from(payload.clone()))
            .send()
            .await
            .expect("upload part");
        assert_eq!(
            part.e_tag(),
            Some(format!("\"{}\"", md5_hex(payload)).as_str())
        );
        etags.push(part.e_tag().unwrap_or_default().to_owned());
    }
    let listed = s3
        .list_parts()
        .bucket(bucket)
        .key("big")
        .upload_id(&upload_id)
        .send()
        .await
        .expect("list parts");
    let sizes: Vec<(Option<i32>, Option<i64>)> = listed
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.size()))
        .collect();
    assert_eq!(
        sizes,
        [
            (Some(1), Some(size as i64)),
            (Some(2), Some(size as i64)),
            (Some(3), Some(123_457))
        ]
    );
    let page = s3
        .list_parts()
        .bucket(bucket)
        .key("big")
        .upload_id(&upload_id)
        .max_parts(2)
        .send()
        .await
        .expect("a page of parts");
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(page.next_part_number_marker(), Some("2"));
    let completed = |list: &[(i32, &str)]| {
        CompletedMultipartUpload::builder()
            .set_parts(Some(
                list.iter()
                    .map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(*e).build())
                    .collect(),
            ))
            .build()
    };
    let complete = |list: &[(i32, &str)]| {
        s3.complete_multipart_upload()
            .bucket(bucket)
            .key("big")
            .upload_id(&upload_id)
            .multipart_upload(completed(list))
            .send()
    };
    let zero = format!("\"{}\"", "0".repeat(32));
    expect_error(
        "completion with an unknown part",
        complete(&[(1, &zero)]).await,
        "InvalidPart",
        400,
    );
    expect_error(
        "completion out of order",
        complete(&[(2, &etags[1]), (1, &etags[0])]).await,
        "InvalidPartOrder",
        400,
    );
    let all: Vec<(i32, &str)> = etags
        .iter()
        .enumerate()
        .map(|(i, e)| (i as i32 + 1, e.as_str()))
        .collect();
    let done = complete(&all).await.expect("complete");
    let joined: Vec<u8> = parts
        .iter()
        .flat_map(|p| md5::Md5::digest(p).to_vec())
        .collect();
    let expected = format!("\"{}-3\"", md5_hex(&joined));
    assert_eq!(done.e_tag(), Some(expected.as_str()));
    let whole = parts.concat();
    let got = get(s3, bucket, "big").send().await.expect("get");
    assert_eq!(got.e_tag(), Some(expected.as_str()));
    assert_eq!(got.content_type(), Some("video/x-test"));
    assert_eq!(
        got.metadata().and_then(|m| m.get("a")).map(String::as_str),
        Some("b")
    );
    assert!(got.body.collect().await.expect("body").to_vec() == whole);
    let second = get(s3, bucket, "big")
        .part_number(2)
        .send()
        .await
        .expect("get part 2");
    assert_eq!(second.parts_count(), Some(3));
    assert!(second.body.collect().await.expect("body").to_vec() == parts[1]);
    let across = get(s3, bucket, "big")
        .range(format!("bytes={}-{}", size - 10, size + 9))
        .send()
        .await
        .expect("a range across parts");
    let bytes = across.body.collect().await.expect("body").to_vec();
    assert_eq!(bytes, whole[size - 10..size + 10]);
    kept.push((bucket.into(), "big".into(), whole));
    expect_error(
        "parts of a completed upload",
        s3.list_parts()
            .bucket(bucket)
            .key("big")
            .upload_id(&upload_id)
            .send()
            .await,
        "NoSuchUpload",
        404,
    );

    // Abort.
    let gone = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key("gone")
        .send()
        .await
        .expect("create upload")
        .upload_id()
        .expect("an upload id")
        .to_owned();
    let upload_part = |body: &'static [u8]| {
        s3.upload_part()
            .bucket(bucket)
            .key("gone")
            .upload_id(&gone)
            .part_number(1)
            .body(ByteStream::from_static(body))
            .send()
    };
    upload_part(&[b'x'; 1000]).await.expect("upload part");
    let abort = || {
        s3.abort_multipart_upload()
            .bucket(bucket)
            .key("gone")
            .upload_id(&gone)
            .send()
    };
    abort().await.expect("abort");
    expect_error("a second abort", abort().await, "NoSuchUpload", 404);
    expect_error(
        "a part after abort",
        upload_part(b"late").await,
        "NoSuchUpload",
        404,
    );
    let left = s3
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .expect("list uploads");
    assert!(left.uploads().is_empty());

    // Parts with CRC32 give a composite object checksum.
    let summed = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key("summed")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .expect("create upload")
        .upload_id()
        .expect("an upload id")
        .to_owned();
    let mut sums = Vec::new();
    for (number, body) in [(1, parts[0].clone()), (2, b"tail".to_vec())] {
        let part = s3
            .upload_part()
            .bucket(bucket)
            .key("summed")
            .upload_id(&summed)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("upload part with CRC32");
        assert_eq!(part.checksum_crc32(), Some(crc32_b64(&body).as_str()));
        sums.push((
            number,
            part.e_tag().unwrap_or_default().to_owned(),
            part.checksum_crc32().unwrap_or_default().to_owned(),
        ));
    }
    let done = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key("summed")
        .upload_id(&summed)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(
                    sums.iter()
                        .map(|(n, e, c)| {
                            CompletedPart::builder()
                                .part_number(*n)
                                .e_tag(e)
                                .checksum_crc32(c)
                                .build()
                        })
                        .collect(),
                ))
                .build(),
        )
        .send()
        .await
        .expect("complete with checksums");
    let joined: Vec<u8> = sums
        .iter()
        .flat_map(|(_, _, c)| BASE64.decode(c).expect("base64"))
        .collect();
    assert_eq!(
        done.checksum_crc32(),
        Some(format!("{}-2", crc32_b64(&joined)).as_str())
    );
}

/// A GET of `url` over plain HTTP/1.1: the status and the body.
async fn http_get(url: &str) -> (u16, Vec<u8>) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut reply))
        .await
        .expect("a reply within 30 s")
        .expect("read");
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let mut body = reply[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = input.windows(2).position(|w| w == b"\r\n") {
        let len = usize::from_str_radix(String::from_utf8_lossy(&input[..end]).trim(), 16)
            .expect("a chunk size");
        if len == 0 {
            break;
        }
        out.extend_from_slice(&input[end + 2..end + 2 + len]);
        input = &input[end + 4 + len..];
    }
    out
}

async fn auth(endpoint: &str, alice: &Client, bob: &Client, alice_key: &AccessKey) {
    alice
        .create_bucket()
        .bucket("alices")
        .send()
        .await
        .expect("create");
    put(alice, "alices", "secret", b"for alice only").await;
    let bob_buckets = bob.list_buckets().send().await.expect("bob's buckets");
    assert!(bob_buckets.buckets().is_empty());
    expect_error(
        "bob reads alice's object",
        get(bob, "alices", "secret").send().await,
        "AccessDenied",
        403,
    );
    expect_error(
        "bob writes into alice's bucket",
        bob.put_object()
            .bucket("alices")
            .key("x")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        "AccessDenied",
        403,
    );
    expect_error(
        "bob lists alice's bucket",
        bob.list_objects_v2().bucket("alices").send().await,
        "AccessDenied",
        403,
    );
    expect_error(
        "bob deletes alice's bucket",
        bob.delete_bucket().bucket("alices").send().await,
        "AccessDenied",
        403,
    );
    expect_error(
        "bob creates alice's bucket",
        bob.create_bucket().bucket("alices").send().await,
        "BucketAlreadyExists",
        409,
    );
    create(bob, "bobs").await;
    expect_error(
        "bob copies alice's object",
        bob.copy_object()
            .bucket("bobs")
            .key("stolen")
            .copy_source("alices/secret")
            .send()
            .await,
        "AccessDenied",
        403,
    );
    let wrong = client_with(
        endpoint,
        &alice_key.access_key_id,
        "not-the-secret",
        RetryConfig::disabled(),
    );
    expect_error(
        "a wrong secret",
        wrong.list_buckets().send().await,
        "SignatureDoesNotMatch",
        403,
    );
    let unknown = client_with(
        endpoint,
        "DBUNKNOWNKEY00000000",
        "whatever",
        RetryConfig::disabled(),
    );
    expect_error(
        "an unknown key",
        unknown.list_buckets().send().await,
        "InvalidAccessKeyId",
        403,
    );

    // Unsigned, presigned, tampered and expired URLs.
    let (status, _) = http_get(&format!("{endpoint}/alices/secret")).await;
    assert_eq!(status, 403, "an anonymous GET");
    let presign =
        |secs: u64| PresigningConfig::expires_in(Duration::from_secs(secs)).expect("presign");
    let url = get(alice, "alices", "secret")
        .presigned(presign(300))
        .await
        .expect("presign GET")
        .uri()
        .to_owned();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert_eq!(http_get(&url).await, (200, b"for alice only".to_vec()));
    let (status, body) = http_get(&url.replace("/secret?", "/secret2?")).await;
    assert_eq!(status, 403, "a tampered presigned URL");
    assert!(String::from_utf8_lossy(&body).contains("SignatureDoesNotMatch"));
    let expired = get(alice, "alices", "secret")
        .presigned(presign(1))
        .await
        .expect("presign GET")
        .uri()
        .to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(http_get(&expired).await.0, 403, "an expired presigned URL");
}

async fn bad_input(s3: &Client) {
    let bucket = "badinput";
    create(s3, bucket).await;
    put(s3, bucket, "k", b"kept").await;
    let long = |n: usize| "k".repeat(n);
    expect_error(
        "a key of 1025 bytes",
        s3.put_object()
            .bucket(bucket)
            .key(long(1025))
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        "KeyTooLongError",
        400,
    );
    put(s3, bucket, &long(1024), b"longest").await;
    assert_eq!(body_of(s3, bucket, &long(1024)).await, b"longest");
    expect_error(
        "an unsatisfiable range",
        get(s3, bucket, "k").range("bytes=10-20").send().await,
        "InvalidRange",
        416,
    );
    expect_error(
        "a malformed range",
        get(s3, bucket, "k").range("bytes=abc").send().await,
        "InvalidArgument",
        400,
    );
    // Malformed XML, signed as sent.
    let broken = s3
        .delete_objects()
        .bucket(bucket)
        .delete(
            Delete::builder()
                .objects(ObjectIdentifier::builder().key("k").build().expect("id"))
                .build()
                .expect("delete"),
        )
        .customize()
        .mutate_request(|request| {
            let body = b"<Delete><Object><Key>k</Key>".to_vec();
            let headers = request.headers_mut();
            let drop: Vec<String> = headers
                .iter()
                .map(|(name, _)| name.to_owned())
                .filter(|name| {
                    let name = name.to_ascii_lowercase();
                    name == "content-md5"
                        || name.starts_with("x-amz-checksum")
                        || name == "x-amz-sdk-checksum-algorithm"
                })
                .collect();
            for name in drop {
                headers.remove(name);
            }
            headers.insert("content-length", body.len().to_string());
            *request.body_mut() = body.into();
        })
        .send()
        .await;
    let (code, status) = failure("malformed DeleteObjects XML", broken);
    assert_eq!(status, 400, "malformed DeleteObjects XML: {code}");
    assert!(
        matches!(
            code.as_str(),
            "MalformedXML" | "InvalidRequest" | "BadDigest"
        ),
        "malformed DeleteObjects XML: {code}"
    );
    assert_eq!(body_of(s3, bucket, "k").await, b"kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aws_sdk_for_rust_against_the_local_network() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Four providers, 2-of-4: any two may go.
    let mut devnet = start_devnet(dir.path(), 4).await;
    let (alice_key, bob_key) = (new_user(&devnet, "sdk-alice"), new_user(&devnet, "sdk-bob"));
    let endpoint = devnet.s3_endpoint();
    let (alice, bob) = (
        client_for(&endpoint, &alice_key),
        client_for(&endpoint, &bob_key),
    );

    let mut kept = Kept::new();
    objects_and_buckets(&alice, &mut kept).await;
    copy(&alice, &mut kept).await;
    versioning(&alice, &mut kept).await;
    listing(&alice).await;
    conditions(&alice).await;
    checksums(&alice, &mut kept).await;
    multipart(&alice, &mut kept).await;
    auth(&endpoint, &alice, &bob, &alice_key).await;
    bad_input(&alice).await;

    // Two of the four providers gone: everything still reads back.
    assert!(devnet.stop_provider(0).await);
    assert!(devnet.stop_provider(0).await);
    for (bucket, key, body) in &kept {
        let got = body_of(&alice, bucket, key).await;
        assert!(
            got == *body,
            "{bucket}/{key} differs with two providers gone"
        );
    }
    devnet.stop().await;

    // Resumed from its directory, the network serves the same objects to the
    // same keys at once: providers keep their ports, so the listings the
    // gateway reads on start still lead to them (no wait for a refresh).
    let devnet = start_devnet(dir.path(), 4).await;
    let endpoint = devnet.s3_endpoint();
    let alice = client_for(&endpoint, &alice_key);
    let reread = async {
        for (bucket, key, body) in &kept {
            let got = body_of(&alice, bucket, key).await;
            assert!(got == *body, "{bucket}/{key} differs after a resume");
        }
    };
    tokio::time::timeout(Duration::from_secs(45), reread)
        .await
        .expect("a resumed network serves its objects within 45 s, not after a deal refresh");
    devnet.stop().await;
}
