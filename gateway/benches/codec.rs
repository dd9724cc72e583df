//! The codec benchmark: `make bench-codec`.
//!
//! For each (k, n) it streams `DBYTES_BENCH_GIB` GiB (default 1) through the
//! codec on every core, a segment per task, and prints one line:
//!
//! ```text
//! codec k=10 n=20 encode_MBps=… decode_MBps=… degraded_decode_MBps=… tree_MBps=… peak_rss_MiB=…
//! ```
//!
//! - encode: encrypt + erasure-code + BLAKE3 piece ids, per plaintext byte;
//! - decode: BLAKE3-verify the k data pieces + decrypt, per plaintext byte;
//! - degraded_decode: the first n-k pieces lost (every data piece, when
//!   n-k >= k), so the erasure decoder rebuilds them, per plaintext byte;
//! - tree: the proof trees of all n pieces (what providers spend on ingest),
//!   per piece byte;
//! - peak_rss: the process's peak resident memory during that (k, n), which
//!   stays at a few segments whatever the stream length.
//!
//! Each figure is the median of `DBYTES_BENCH_RUNS` runs (default 3). A
//! `tree leaf=…` sweep follows, for the leaf-size choice in
//! `dbytes_ledger::commitment`. MB are 10^6 bytes.

mod common;

use common::{env_number, peak_rss_mib, reset_peak_rss};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use dbytes_gateway::codec::{
    EncodedSegment, SegmentLayout, decode_segment_into, encode_segment, encode_segment_into,
};
use dbytes_ledger::commitment::TreeBuilder;
use dbytes_ledger::keys::{BucketKey, VersionKey};
use dbytes_placement::RedundancyPolicy;
use rand::{Rng, SeedableRng, rngs::StdRng};
use sha2::{Digest, Sha256};

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
}

/// Runs `work(state, task)` for tasks 0..tasks on every core, each core with
/// its own `state` (reused buffers, as the gateway's pipeline keeps them);
/// returns the seconds taken.
fn parallel<S>(tasks: u64, state: impl Fn() -> S + Sync, work: impl Fn(&mut S, u64) + Sync) -> f64 {
    let next = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads() {
            scope.spawn(|| {
                let mut state = state();
                loop {
                    let task = next.fetch_add(1, Ordering::Relaxed);
                    if task >= tasks {
                        break;
                    }
                    work(&mut state, task);
                }
            });
        }
    });
    start.elapsed().as_secs_f64()
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn key() -> VersionKey {
    BucketKey::from_bytes([42; 32]).version_key(b"bench")
}

fn bench_policy(k: u16, n: u16, stream_bytes: u64, runs: u64) {
    let policy = RedundancyPolicy::new(k, n).expect("benchmark policies are valid");
    let layout = SegmentLayout::for_policy(policy);
    let key = key();
    let segment_size = layout.segment_size();
    let segments = stream_bytes.div_ceil(segment_size);
    let plaintext_bytes = (segments * segment_size) as f64;
    let mut base = vec![0u8; segment_size as usize];
    StdRng::seed_from_u64(7).fill(&mut base[..]);

    // A pool of encoded segments to decode and hash: a few per core, so the
    // stream is never held in memory whole.
    let pool: Vec<EncodedSegment> = (0..threads() as u64)
        .map(|index| encode_segment(&layout, &key, index, &base).expect("encodes"))
        .collect();
    reset_peak_rss();

    let mut encode = Vec::new();
    let mut decode = Vec::new();
    let mut degraded = Vec::new();
    let mut tree = Vec::new();
    for _ in 0..runs {
        let seconds = parallel(
            segments,
            || (base.clone(), EncodedSegment::default()),
            |(plaintext, encoded), index| {
                // A distinct segment each time, as a stream has.
                plaintext[..8].copy_from_slice(&index.to_le_bytes());
                encode_segment_into(&layout, &key, index, plaintext, encoded).expect("encodes");
                std::hint::black_box(encoded.ids());
            },
        );
        encode.push(plaintext_bytes / seconds / 1e6);

        for (lost, samples) in [(0, &mut decode), (usize::from(n - k), &mut degraded)] {
            let seconds = parallel(segments, Vec::new, |plaintext, task| {
                let index = task as usize % pool.len();
                let segment = &pool[index];
                let pieces: Vec<Option<&[u8]>> = segment
                    .pieces()
                    .enumerate()
                    .map(|(piece, bytes)| (piece >= lost).then_some(bytes))
                    .collect();
                decode_segment_into(
                    &layout,
                    &key,
                    index as u64,
                    segment.segment_len(),
                    &pieces,
                    segment.ids(),
                    plaintext,
                )
                .expect("decodes");
                std::hint::black_box(plaintext.len());
            });
            samples.push(plaintext_bytes / seconds / 1e6);
        }

        let piece_tasks = segments * u64::from(n);
        let seconds = parallel(
            piece_tasks,
            || (),
            |_, task| {
                let segment = &pool[(task / u64::from(n)) as usize % pool.len()];
                let mut builder = TreeBuilder::new();
                builder.update(segment.piece((task % u64::from(n)) as usize));
                std::hint::black_box(builder.finish());
            },
        );
        tree.push((piece_tasks * pool[0].piece_len() as u64) as f64 / seconds / 1e6);
    }
    println!(
        "codec k={k} n={n} encode_MBps={:.0} decode_MBps={:.0} degraded_decode_MBps={:.0} \
         tree_MBps={:.0} peak_rss_MiB={:.0}",
        median(encode),
        median(decode),
        median(degraded),
        median(tree),
        peak_rss_mib()
    );
}

/// A SHA-256 tree over `data` with `leaf` byte leaves (raw 32-byte leaves at
/// 32), on one core: the sweep behind the commitment's leaf size.
fn tree_sweep(runs: u64) {
    let mut data = vec![0u8; 32 << 20];
    StdRng::seed_from_u64(3).fill(&mut data[..]);
    for leaf in [32usize, 64, 256, 1024] {
        let samples = (0..runs)
            .map(|_| {
                let start = Instant::now();
                let mut level: Vec<[u8; 32]> = if leaf == 32 {
                    data.chunks(32)
                        .map(|c| c.try_into().expect("32-byte chunks"))
                        .collect()
                } else {
                    data.chunks(leaf)
                        .map(|c| Sha256::digest(c).into())
                        .collect()
                };
                while level.len() > 1 {
                    level = level
                        .chunks(2)
                        .map(|pair| {
                            let mut hasher = Sha256::new();
                            hasher.update(pair[0]);
                            hasher.update(pair[1]);
                            hasher.finalize().into()
                        })
                        .collect();
                }
                std::hint::black_box(level);
                data.len() as f64 / start.elapsed().as_secs_f64() / 1e6
            })
            .collect();
        println!("tree leaf={leaf} one_core_MBps={:.0}", median(samples));
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks policies ("10-20").
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let stream_bytes = env_number("DBYTES_BENCH_GIB", 1) << 30;
    let runs = env_number("DBYTES_BENCH_RUNS", 3).max(1);
    println!(
        "# {} GiB per figure, median of {runs} runs, {} threads",
        stream_bytes >> 30,
        threads()
    );
    for (k, n) in [(10, 20), (4, 8), (3, 10)] {
        if filter.is_empty() || filter.iter().any(|f| *f == format!("{k}-{n}")) {
            bench_policy(k, n, stream_bytes, runs);
        }
    }
    if filter.is_empty() || filter.iter().any(|f| f == "tree") {
        tree_sweep(runs);
    }
}
