//! `dbytes repair status` as an operator runs it against a gateway's data
//! directory: the queue, the last health round, the most endangered
//! segments and the totals from the book; while a gateway holds the book,
//! the same report from it over its admin socket; and with the book held
//! and no admin socket answering, a pointer to the gateway's metrics.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use dbytes_gateway::admin;
use dbytes_ledger::book::{Book, HealthRound, KeyId, Redundancy, RepairTask, SegmentRef};
use tokio_util::sync::CancellationToken;

fn status(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dbytes"))
        .args(["repair", "status", "--dir"])
        .arg(dir)
        .output()
        .expect("run dbytes")
}

/// What the report says of the book the test writes.
fn assert_full_report(output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("repair queue: 3 segment(s)"), "{stdout}");
    assert!(
        stdout.contains("40 segment(s), 240 piece(s) audited, 7 unhealthy, 3 queued"),
        "{stdout}"
    );
    assert!(stdout.contains("    6 healthy  37 segment(s)"), "{stdout}");
    assert!(
        stdout.contains("12 segment(s), 12582912 byte(s) regenerated"),
        "{stdout}"
    );
    // The most endangered first: segment 1 (3 healthy) before the others.
    let first = stdout
        .find("segment 1: 3 healthy")
        .expect("segment 1 listed");
    let other = stdout
        .find("segment 0: 4 healthy")
        .expect("segment 0 listed");
    assert!(
        first < other && stdout.contains("photos key-id abab"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_status_reads_the_queue_and_the_last_round_from_the_book() {
    let dir = tempfile::tempdir().expect("temp dir");
    let now = dbytes_gateway::s3::now_ms();
    {
        let book = Book::open(dir.path().join("book.redb")).expect("a book");
        book.add_user("alice", "alice", now).expect("a user");
        let redundancy = Redundancy {
            data_pieces: 3,
            total_pieces: 6,
            repair_threshold: 5,
            success_threshold: 6,
        };
        let bucket = book
            .create_bucket("photos", "alice", redundancy, now)
            .expect("a bucket");
        for (segment, healthy) in [(0, 4), (1, 3), (2, 4)] {
            book.queue_repair(&RepairTask {
                segment: SegmentRef {
                    bucket: bucket.id,
                    key_id: KeyId([0xab; 16]),
                    part: 0,
                    segment,
                },
                healthy,
                unhealthy: (healthy..6).collect(),
                queued_ms: now - 5_000,
                attempts: 0,
                last_attempt_ms: 0,
            })
            .expect("queue a repair");
        }
        book.update_repair_status(|status| {
            status.last_round = Some(HealthRound {
                started_ms: now - 3_000,
                finished_ms: now - 2_000,
                segments: 40,
                pieces_audited: 240,
                pieces_unhealthy: 7,
                segments_by_healthy: BTreeMap::from([(3, 1), (4, 2), (6, 37)]),
                queued: 3,
            });
            status.repaired_segments = 12;
            status.repaired_bytes = 12 << 20;
        })
        .expect("record a round");

        // A running gateway holds the book and answers on its admin socket.
        let stop = CancellationToken::new();
        let server = admin::serve(&admin::socket_path(dir.path()), book.clone(), stop.clone())
            .expect("admin socket");
        let dir_path = dir.path().to_owned();
        let answered = tokio::task::spawn_blocking(move || status(&dir_path))
            .await
            .expect("run the command");
        assert_full_report(&answered);
        stop.cancel();
        server.await.expect("the admin socket closes");

        // Held with no socket answering: the command says where to ask.
        let locked = status(dir.path());
        assert!(!locked.status.success());
        let stderr = String::from_utf8_lossy(&locked.stderr);
        assert!(stderr.contains("--metrics"), "{stderr}");
    }

    // Stopped: the command opens the book itself.
    assert_full_report(&status(dir.path()));

    let missing = status(&dir.path().join("nowhere"));
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no gateway book"));
}
