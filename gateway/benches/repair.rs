//! The repair benchmark: `make bench-repair`.
//!
//! Starts a local network (`Devnet`: anvil, 10 provider daemons with their
//! stores on tmpfs, a gateway whose repair worker audits every 5 s and is
//! not rate-limited, all in this process), stores `DBYTES_BENCH_MIB` MiB
//! (default 1024) of 64 MiB objects through the S3 API at 3-of-6 in a
//! bucket that repairs any lost piece (repair threshold = n), stops n - k =
//! 3 providers (the holders of three pieces of one segment, so that segment
//! is left with exactly k) and prints one line:
//!
//! ```text
//! repair regen_MBps=… time_to_full_redundancy_s=… audit_detect_s=…
//! ```
//!
//! - audit_detect_s: from the providers stopping to every segment that had
//!   a piece on them being queued for repair (or already repaired);
//! - time_to_full_redundancy_s: from the providers stopping to every
//!   segment having n pieces on n distinct running providers, queue empty;
//! - regen_MBps: regenerated piece bytes stored by the worker divided by
//!   the time from detection to full redundancy (fetching k pieces,
//!   rebuilding, regenerating and storing with audits, all included).
//!
//! MB are 10^6 bytes. A second line gives the counts behind the figures
//! and the peak resident memory of this process (gateway and providers)
//! while repairing.

mod common;
#[path = "../tests/support/sdk.rs"]
mod sdk;
#[path = "../tests/support/repair.rs"]
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{env_number, peak_rss_mib, reset_peak_rss};
use dbytes_ledger::book::SegmentRef;
use sdk::{pattern, put};
use support::{
    DATA_PIECES, TOTAL_PIECES, eager_bucket, live_holders, options, running, s3, segments, start,
    stop, victims,
};

/// Size of each object stored.
const OBJECT_MIB: u64 = 64;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(bench(env_number("DBYTES_BENCH_MIB", 1024)));
}

async fn bench(mib: u64) {
    // Provider stores on tmpfs when the machine has one.
    let scratch = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("a scratch directory");
    eprintln!("scratch (provider stores): {}", scratch.path().display());
    let mut devnet = start(&options(scratch.path(), 0, 5)).await;
    let client = s3(&devnet.s3_endpoint(), devnet.access_key());
    let book = devnet.gateway().gateway().book().clone();
    eager_bucket(&client, &book, "bench").await;
    let mut left = mib << 20;
    let mut seed = 0;
    let stored_at = Instant::now();
    while left > 0 {
        let len = left.min(OBJECT_MIB << 20);
        put(
            &client,
            "bench",
            &format!("object-{seed}"),
            pattern(len as usize, seed),
        )
        .await;
        left -= len;
        seed += 1;
    }
    eprintln!(
        "stored {mib} MiB in {seed} object(s) in {:?}",
        stored_at.elapsed()
    );

    let parity = usize::from(TOTAL_PIECES - DATA_PIECES);
    let gone = victims(&book, &running(&devnet), parity);
    let affected: HashSet<SegmentRef> = segments(&book)
        .into_iter()
        .filter(|(_, providers)| providers.iter().flatten().any(|p| gone.contains(p)))
        .map(|(segment, _)| segment)
        .collect();
    let bytes_before = book.repair_status().expect("status").repaired_bytes;
    let total = segments(&book).len();

    reset_peak_rss();
    let stopped_at = Instant::now();
    stop(&mut devnet, &gone).await;
    let live = running(&devnet);
    let limit = Duration::from_secs(1800);
    let mut seen: HashSet<SegmentRef> = HashSet::new();
    let mut detected = None;
    let full = loop {
        assert!(
            stopped_at.elapsed() < limit,
            "no full redundancy within {limit:?}"
        );
        let queue = book.repair_queue().expect("the queue");
        let now = segments(&book);
        let whole = |providers: &[Option<String>]| {
            live_holders(providers, &live) == usize::from(TOTAL_PIECES)
        };
        seen.extend(queue.iter().map(|task| task.segment));
        seen.extend(
            now.iter()
                .filter(|(segment, providers)| affected.contains(segment) && whole(providers))
                .map(|(segment, _)| *segment),
        );
        if detected.is_none() && affected.iter().all(|segment| seen.contains(segment)) {
            detected = Some(stopped_at.elapsed());
        }
        if detected.is_some() && queue.is_empty() && now.iter().all(|(_, p)| whole(p)) {
            break stopped_at.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let detected = detected.expect("set before the loop ends");
    let regenerated = book.repair_status().expect("status").repaired_bytes - bytes_before;
    let repair_secs = (full - detected).as_secs_f64().max(1e-3);
    println!(
        "repair regen_MBps={:.1} time_to_full_redundancy_s={:.1} audit_detect_s={:.1}",
        regenerated as f64 / 1e6 / repair_secs,
        full.as_secs_f64(),
        detected.as_secs_f64()
    );
    println!(
        "repair k={DATA_PIECES} n={TOTAL_PIECES} providers_stopped={parity} object_MiB={mib} \
         segments={total} segments_affected={} regenerated_bytes={regenerated} \
         peak_rss_during_repair_MiB={:.0}",
        affected.len(),
        peak_rss_mib()
    );
    drop(book);
    devnet.stop().await;
}
