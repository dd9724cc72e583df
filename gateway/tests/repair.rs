//! Repair on a real local network (anvil, the contracts, ten provider
//! daemons, the gateway with its repair worker), 3-of-6 with small pieces
//! so objects have many segments:
//!
//! n - k providers stop; every object still reads back byte-identical;
//! new providers join; the worker finds the lost pieces by auditing,
//! regenerates them and places them on running providers the segments do
//! not use, until every segment of a bucket that repairs any loss has n
//! pieces on n distinct running providers (checked in the book's
//! manifests), while a bucket with the default policy has none left below
//! its repair threshold; then another n - k providers stop and every
//! object of the bucket repaired back to n still reads back byte-identical.
//!
//! And the gateway as its own `dbytes gateway run` process, killed with
//! SIGKILL in the middle of repairs and of a PUT: the queue survives in the
//! book, the cut-off PUT leaves no object, and the restarted gateway drains
//! the queue (seen through `dbytes repair status`, which asks the running
//! gateway over its admin socket since the book is locked).

#[path = "support/sdk.rs"]
mod sdk;
#[path = "support/repair.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::ByteStream;
use dbytes_ledger::book::Book;
use dbytes_placement::RedundancyPolicy;
use sdk::{get, pattern, put};
use support::{
    DATA_PIECES, TOTAL_PIECES, eager_bucket, live_holders, options, running, s3, segments, start,
    stop, victims, wait_for,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// 128 KiB pieces: 320 KiB segments at 3-of-6.
const PIECE_SIZE: u64 = 128 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repair_brings_every_segment_back_to_n_pieces_after_n_minus_k_providers_go() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut devnet = start(&options(dir.path(), PIECE_SIZE, 2)).await;
    eprintln!("network up after {:?}", started.elapsed());
    let client = s3(&devnet.s3_endpoint(), devnet.access_key());
    let book = devnet.gateway().gateway().book().clone();

    // A bucket that repairs any loss, and one with the default policy.
    let eager = eager_bucket(&client, &book, "eager").await;
    client
        .create_bucket()
        .bucket("plain")
        .send()
        .await
        .expect("create bucket");
    let objects = [
        ("eager", "one-segment", pattern(200 << 10, 1)),
        ("eager", "four-segments", pattern((1 << 20) + 17, 2)),
        ("eager", "eight-segments", pattern(5 << 19, 3)),
        ("plain", "five-segments", pattern(1_400_000, 4)),
    ];
    for (bucket, key, body) in &objects {
        put(&client, bucket, key, body.clone()).await;
    }
    let read_all = || async {
        for (bucket, key, body) in &objects {
            let got = get(&client, bucket, key).await;
            assert!(got == *body, "{bucket}/{key} read back different bytes");
        }
    };
    let before = segments(&book);
    assert_eq!(before.len(), 1 + 4 + 8 + 5, "segments in the book");

    // n - k providers go, chosen so one segment is left with exactly k.
    let parity = usize::from(TOTAL_PIECES - DATA_PIECES);
    let gone = victims(&book, &running(&devnet), parity);
    stop(&mut devnet, &gone).await;
    read_all().await;
    eprintln!(
        "{parity} providers stopped, all read back after {:?}",
        started.elapsed()
    );

    // Three providers join.
    for _ in 0..3 {
        devnet.add_provider().await.expect("a provider joins");
    }
    let joined: Vec<String> = (devnet.providers().len() - 3..devnet.providers().len())
        .map(|index| support::provider_id(&devnet, index))
        .collect();

    // Repair: every eager segment back to n pieces on n distinct running
    // providers, none of the stopped ones; nothing queued.
    let live = running(&devnet);
    let whole = wait_for(Duration::from_secs(150), || {
        let queue_empty = book.repair_queue().is_ok_and(|queue| queue.is_empty());
        queue_empty
            && segments(&book)
                .iter()
                .filter(|(segment, _)| segment.bucket == eager)
                .all(|(_, providers)| {
                    live_holders(providers, &live) == usize::from(TOTAL_PIECES)
                        && providers.iter().all(Option::is_some)
                })
    })
    .await;
    let after = segments(&book);
    assert!(
        whole,
        "repair did not bring every segment back to {TOTAL_PIECES} pieces on running providers \
         within 150 s: {:?}; queue {:?}",
        after
            .iter()
            .map(|(_, providers)| live_holders(providers, &live))
            .collect::<Vec<_>>(),
        book.repair_queue()
    );
    eprintln!("repaired after {:?}", started.elapsed());
    for (segment, providers) in after.iter().filter(|(s, _)| s.bucket == eager) {
        assert!(
            providers.iter().flatten().all(|p| !gone.contains(p)),
            "segment {segment:?} still lists a stopped provider"
        );
    }
    // The default policy: nothing left below its repair threshold.
    let threshold = RedundancyPolicy::new(DATA_PIECES, TOTAL_PIECES)
        .expect("3-of-6")
        .repair_threshold();
    for (segment, providers) in after.iter().filter(|(s, _)| s.bucket != eager) {
        assert!(
            live_holders(providers, &live) >= usize::from(threshold),
            "segment {segment:?} of the default-policy bucket is below its threshold {threshold}"
        );
    }
    let on_new = after
        .iter()
        .flat_map(|(_, providers)| providers.iter().flatten())
        .filter(|provider| joined.contains(provider))
        .count();
    assert!(on_new > 0, "no regenerated piece went to a new provider");
    let status = book.repair_status().expect("repair status");
    assert!(status.repaired_segments > 0 && status.repaired_bytes > 0);
    assert!(status.last_round.is_some());

    // Another n - k go (among those holding a whole segment now): every
    // object of the bucket that was repaired back to n pieces still reads
    // back. (The default-policy bucket keeps a segment at its threshold,
    // n - 1 pieces here, unrepaired; another n - k losses may leave it
    // below k, which is the risk its policy takes, so it is not read.)
    let gone_again = victims(&book, &running(&devnet), parity);
    stop(&mut devnet, &gone_again).await;
    for (bucket, key, body) in objects.iter().filter(|(bucket, ..)| *bucket == "eager") {
        let got = get(&client, bucket, key).await;
        assert!(got == *body, "{bucket}/{key} read back different bytes");
    }
    eprintln!("second loss survived after {:?}", started.elapsed());
    devnet.stop().await;
}

/// The `dbytes` binary next to this test's (`cargo build --bin dbytes`
/// first), or `DBYTES_BIN`.
fn dbytes_binary() -> PathBuf {
    let binary = std::env::var_os("DBYTES_BIN").map_or_else(
        || {
            let exe = std::env::current_exe().expect("the test binary has a path");
            // target/<profile>/deps/<test> -> target/<profile>/dbytes
            exe.ancestors()
                .nth(2)
                .expect("target/<profile>")
                .join("dbytes")
        },
        PathBuf::from,
    );
    assert!(
        binary.is_file(),
        "no dbytes binary at {}: run `cargo build --bin dbytes` (make test-rust does) or set \
         DBYTES_BIN",
        binary.display()
    );
    binary
}

/// A free port on 127.0.0.1 (bound and released: the gateway binds it
/// right after).
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    listener.local_addr().expect("its address")
}

/// `dbytes gateway run --config <config>` as a child process, killed on
/// drop, logging to `log`.
fn spawn_gateway(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the gateway's log");
    Command::new(dbytes_binary())
        .args(["gateway", "run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start dbytes gateway run")
}

/// The value of the metric `name` on the gateway's `/metrics` at `addr`.
async fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: gateway\r\n\r\n")
            .await
            .ok()?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.ok()?;
        reply.lines().find_map(|line| {
            let (metric, value) = line.rsplit_once(' ')?;
            (metric == name).then(|| value.parse().ok())?
        })
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

/// Waits up to `limit` for `check` on the gateway's metrics.
async fn wait_for_metrics(
    addr: SocketAddr,
    limit: Duration,
    what: &str,
    check: impl Fn(f64, f64, f64) -> bool,
) {
    let started = Instant::now();
    loop {
        let queue = metric(addr, "dbytes_repair_queue_length").await;
        let repaired = metric(addr, "dbytes_repair_segments_total").await;
        let round = metric(addr, "dbytes_repair_last_round_timestamp_seconds").await;
        if let (Some(queue), Some(repaired), Some(round)) = (queue, repaired, round)
            && check(queue, repaired, round)
        {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "waited {limit:?} for {what}: queue {queue:?}, repaired {repaired:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_during_a_put_and_a_repair_resumes_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = options(dir.path(), PIECE_SIZE, 2);
    // Slow repairs, so the kill lands in the middle of them.
    options.repair.segments_per_sec = 2;
    let mut devnet = start(&options).await;
    let key = devnet.access_key().clone();
    let objects: Vec<(String, Vec<u8>)> = (0..3)
        .map(|seed| (format!("object-{seed}"), pattern(5 << 19, seed)))
        .collect();
    let (gone, book_path) = {
        let client = s3(&devnet.s3_endpoint(), &key);
        let book = devnet.gateway().gateway().book().clone();
        eager_bucket(&client, &book, "eager").await;
        for (name, body) in &objects {
            put(&client, "eager", name, body.clone()).await;
        }
        let parity = usize::from(TOTAL_PIECES - DATA_PIECES);
        (
            victims(&book, &running(&devnet), parity),
            dir.path().join("net/gateway/book.redb"),
        )
    };

    // The gateway moves to a process of its own, which the test can kill.
    let (s3_addr, metrics_addr) = (free_addr(), free_addr());
    let config = devnet
        .hand_over_gateway(s3_addr, metrics_addr)
        .await
        .expect("hand the gateway over");
    let log = dir.path().join("gateway.log");
    let mut gateway = spawn_gateway(&config, &log);
    let client = s3(&format!("http://{s3_addr}"), &key);
    stop(&mut devnet, &gone).await;
    // Repairs under way: some done, more queued.
    wait_for_metrics(
        metrics_addr,
        Duration::from_secs(120),
        "a repair under way",
        |queue, repaired, _| queue > 0.0 && repaired >= 1.0,
    )
    .await;
    // A PUT in flight too, then SIGKILL.
    let partial = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .put_object()
                .bucket("eager")
                .key("partial")
                .body(ByteStream::from(pattern(24 << 20, 99)))
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    gateway.start_kill().expect("SIGKILL the gateway");
    gateway.wait().await.expect("the gateway exits");
    assert!(
        partial.await.expect("the PUT task").is_err(),
        "the PUT finished before the kill; it should have been cut off"
    );

    // The book after the kill: the queue survived, the PUT left nothing.
    {
        let book = Book::open(&book_path).expect("open the book after the kill");
        let queued = book.repair_queue().expect("the queue").len();
        assert!(queued > 0, "the repair queue was lost in the kill");
        let bucket = book.bucket("eager").expect("read").expect("bucket");
        assert!(
            book.get_version(&bucket.id, "partial", None)
                .expect("read")
                .is_none(),
            "a partial object is visible after the kill"
        );
        eprintln!("{queued} segment(s) queued at the kill");
    }

    // Restarted, it finishes the repairs.
    let mut gateway = spawn_gateway(&config, &log);
    let restarted = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    wait_for_metrics(
        metrics_addr,
        Duration::from_secs(150),
        "the repair queue to drain after the restart",
        |queue, repaired, round| queue == 0.0 && repaired >= 1.0 && round >= restarted,
    )
    .await;
    let status = Command::new(dbytes_binary())
        .args(["repair", "status", "--config"])
        .arg(&config)
        .output()
        .await
        .expect("run dbytes repair status");
    let report = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success() && report.contains("repair queue: 0 segment(s)"),
        "dbytes repair status against the running gateway: {report}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    for (name, body) in &objects {
        assert!(get(&client, "eager", name).await == *body, "{name} changed");
    }
    let missing = client
        .head_object()
        .bucket("eager")
        .key("partial")
        .send()
        .await;
    assert!(missing.is_err(), "the cut-off PUT is visible: {missing:?}");
    gateway.start_kill().expect("stop the gateway");
    gateway.wait().await.expect("the gateway exits");

    // Every segment back at n pieces on running providers.
    let book = Book::open(&book_path).expect("open the book");
    let live = running(&devnet);
    assert!(book.repair_queue().expect("the queue").is_empty());
    for (segment, providers) in segments(&book) {
        assert_eq!(
            live_holders(&providers, &live),
            usize::from(TOTAL_PIECES),
            "segment {segment:?} is not back at full redundancy: {providers:?}"
        );
        assert!(providers.iter().flatten().all(|p| !gone.contains(p)));
    }
    drop(book);
    devnet.stop().await;
}
