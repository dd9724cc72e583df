//! The AWS SDK for Rust as the tests against a running gateway use it: a
//! client signing as one user, deterministic bodies, and whole-object PUT
//! and GET that panic with the SDK's error naming the object.
//!
//! Included with `#[path = "support/sdk.rs"] mod sdk;` by each test binary
//! (and `make bench-repair`) that needs it.

#![allow(dead_code)] // Each binary uses its own part.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, retry::RetryConfig};
use aws_sdk_s3::primitives::ByteStream;
use dbytes_ledger::book::AccessKey;

/// A client for `endpoint` signing with `key_id`/`secret`, path-style,
/// plain HTTP, retrying as `retry` says (disabled where a refused request
/// must show its first error).
pub fn client_with(endpoint: &str, key_id: &str, secret: &str, retry: RetryConfig) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(key_id, secret, None, None, "dbytes-test"))
        .force_path_style(true)
        .retry_config(retry)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    Client::from_conf(config)
}

/// A client for `endpoint` signing as `key`.
pub fn client(endpoint: &str, key: &AccessKey, retry: RetryConfig) -> Client {
    client_with(endpoint, &key.access_key_id, &key.secret_access_key, retry)
}

/// `len` deterministic pseudo-random bytes (xorshift from `seed`).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Makes bucket `name`.
pub async fn create_bucket(s3: &Client, name: &str) {
    s3.create_bucket()
        .bucket(name)
        .send()
        .await
        .unwrap_or_else(|err| panic!("create bucket {name}: {err:?}"));
}

/// Stores `body` as `bucket/key`.
pub async fn put(s3: &Client, bucket: &str, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap_or_else(|err| panic!("PUT {bucket}/{key}: {err:?}"));
}

/// Reads `bucket/key` whole.
pub async fn get(s3: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|err| panic!("GET {bucket}/{key}: {err:?}"));
    object
        .body
        .collect()
        .await
        .unwrap_or_else(|err| panic!("reading {bucket}/{key}: {err:?}"))
        .into_bytes()
        .to_vec()
}
