//! What the repair fault test (`tests/repair.rs`) and `make bench-repair`
//! (`benches/repair.rs`) share: a local network of ten providers with a
//! fast repair worker, objects through the AWS SDK, and the health of every
//! segment read from the gateway's book.
//!
//! Redundancy is 3-of-6: any three of the ten providers may go. Buckets
//! made with [`eager_bucket`] repair as soon as a piece is lost (repair
//! threshold = n), so "back to full redundancy" is something to wait for;
//! the default 3-of-6 policy would wait until fewer than five pieces are
//! healthy.
//!
//! Needs `support/sdk.rs` included as the crate's `sdk` module.

#![allow(dead_code)] // The test and the bench each use their own part.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use dbytes_gateway::devnet::{Devnet, DevnetOptions};
use dbytes_gateway::settings::RepairSettings;
use dbytes_ledger::book::{AccessKey, Book, BucketId, Redundancy, SegmentRef};

/// k.
pub const DATA_PIECES: u16 = 3;
/// n.
pub const TOTAL_PIECES: u16 = 6;
/// Providers the network starts with.
pub const PROVIDERS: usize = 10;

/// A ten-provider network under `dir`: 3-of-6, S3 on a free port,
/// hour-long periods, pieces of `piece_size_bytes` (0: the default), a
/// repair worker that audits every `audit_interval_secs` and passes over
/// its queue every second, with no practical rate limit.
pub fn options(dir: &Path, piece_size_bytes: u64, audit_interval_secs: u64) -> DevnetOptions {
    DevnetOptions {
        s3_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        period_secs: 3600,
        redundancy: (DATA_PIECES, TOTAL_PIECES),
        piece_size_bytes,
        repair: RepairSettings {
            enabled: true,
            interval_secs: 1,
            audit_interval_secs,
            segments_per_sec: 1000,
            bytes_per_sec: 1 << 34,
        },
        ..DevnetOptions::new(dir.join("net"), PROVIDERS)
    }
}

/// Starts the network of `options`; panics if it has not started within
/// three minutes.
pub async fn start(options: &DevnetOptions) -> Devnet {
    tokio::time::timeout(Duration::from_secs(180), Devnet::start(options))
        .await
        .expect("the local network starts within 3 minutes")
        .expect("the local network starts")
}

/// An S3 client of the network's user at `endpoint`, with the SDK's
/// retries (the gateway is killed and restarted under it).
pub fn s3(endpoint: &str, key: &AccessKey) -> Client {
    crate::sdk::client(endpoint, key, RetryConfig::standard())
}

/// Makes `name` and sets its repair threshold to n: any lost piece is
/// repaired. Returns its id.
pub async fn eager_bucket(s3: &Client, book: &Book, name: &str) -> BucketId {
    crate::sdk::create_bucket(s3, name).await;
    book.set_redundancy(
        name,
        Redundancy {
            data_pieces: DATA_PIECES,
            total_pieces: TOTAL_PIECES,
            repair_threshold: TOTAL_PIECES,
            success_threshold: TOTAL_PIECES,
        },
    )
    .expect("set the bucket's redundancy")
    .id
}

/// The id a provider's pieces are placed under: its node id in hex.
pub fn provider_id(devnet: &Devnet, index: usize) -> String {
    hex::encode(devnet.providers()[index].node_id().as_bytes())
}

/// The ids of the running providers.
pub fn running(devnet: &Devnet) -> HashSet<String> {
    (0..devnet.providers().len())
        .map(|index| provider_id(devnet, index))
        .collect()
}

/// Every segment in the book with the provider of each of its pieces
/// (`None`: not placed).
pub fn segments(book: &Book) -> Vec<(SegmentRef, Vec<Option<String>>)> {
    let mut out = Vec::new();
    for (bucket, key_id, manifest) in book.all_manifests().expect("read the manifests") {
        for (part_index, part) in manifest.parts.iter().enumerate() {
            for (segment_index, segment) in part.segments.iter().enumerate() {
                let providers = segment
                    .pieces
                    .iter()
                    .map(|piece| piece.placement.as_ref().map(|p| p.provider.clone()))
                    .collect();
                let segment = SegmentRef {
                    bucket,
                    key_id,
                    part: part_index as u32,
                    segment: segment_index as u32,
                };
                out.push((segment, providers));
            }
        }
    }
    out
}

/// Distinct running providers among `providers`.
pub fn live_holders(providers: &[Option<String>], running: &HashSet<String>) -> usize {
    providers
        .iter()
        .flatten()
        .filter(|provider| running.contains(*provider))
        .collect::<HashSet<_>>()
        .len()
}

/// `count` running providers whose loss leaves some segment with exactly
/// n - `count` pieces: the holders of the first pieces of the first segment
/// whose pieces all sit on running providers.
pub fn victims(book: &Book, running: &HashSet<String>, count: usize) -> Vec<String> {
    segments(book)
        .into_iter()
        .find(|(_, providers)| live_holders(providers, running) == providers.len())
        .map(|(_, providers)| providers.into_iter().flatten().take(count).collect())
        .expect("a segment with every piece on a running provider")
}

/// Stops the running providers named in `ids`.
pub async fn stop(devnet: &mut Devnet, ids: &[String]) {
    for id in ids {
        let index = (0..devnet.providers().len())
            .find(|index| &provider_id(devnet, *index) == id)
            .unwrap_or_else(|| panic!("provider {id} is not running"));
        assert!(devnet.stop_provider(index).await);
    }
}

/// Polls `done` every 250 ms until it holds; `false` if `limit` passed
/// first.
pub async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    done()
}
