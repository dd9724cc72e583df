//! What `dbytes repair status` prints: how redundancy stands, from the
//! gateway's book (the running gateway makes it for its admin socket; with
//! the gateway stopped the command opens the book), or, when a running
//! gateway's admin socket does not answer, from its `/metrics` (redb lets
//! one process open the book at a time).
//!
//! From the book: the queue's length, segments by healthy-piece count in
//! the last health round, the most endangered queued segments, when the
//! last round and pass ran, and what has been repaired in all. From the
//! metrics: the same but the segment list and the all-time totals (a
//! running gateway's counters start at its start).
//!
//! Main items: [`book_report`], [`metrics_report`].

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use dbytes_ledger::book::{Book, BookError, BucketId, RepairStatus, RepairTask};

/// Queued segments listed, most endangered first.
pub const ENDANGERED_SHOWN: usize = 10;

/// The report of a book (read it with the gateway stopped).
pub fn book_report(book: &Book, now_ms: u64) -> Result<String, BookError> {
    let status = book.repair_status()?;
    let queue = book.repair_queue()?;
    let names: HashMap<BucketId, String> = book
        .all_buckets()?
        .into_iter()
        .map(|bucket| (bucket.id, bucket.name))
        .collect();
    Ok(render_book(&status, &queue, &names, now_ms))
}

fn ago(at_ms: Option<u64>, now_ms: u64) -> String {
    match at_ms {
        None | Some(0) => "never".to_owned(),
        Some(at) => format!("{} s ago", now_ms.saturating_sub(at) / 1000),
    }
}

fn histogram(out: &mut String, by_healthy: &BTreeMap<u16, u64>) {
    if by_healthy.is_empty() {
        out.push_str("segments by healthy pieces: none audited yet\n");
        return;
    }
    out.push_str("segments by healthy pieces:\n");
    for (healthy, count) in by_healthy {
        let _ = writeln!(out, "  {healthy:>3} healthy  {count} segment(s)");
    }
}

/// The report of a book's repair record and queue.
pub fn render_book(
    status: &RepairStatus,
    queue: &[RepairTask],
    names: &HashMap<BucketId, String>,
    now_ms: u64,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "repair queue: {} segment(s)", queue.len());
    match &status.last_round {
        Some(round) => {
            let _ = writeln!(
                out,
                "last health round: finished {} (took {} ms), {} segment(s), {} piece(s) \
                 audited, {} unhealthy, {} queued",
                ago(Some(round.finished_ms), now_ms),
                round.finished_ms.saturating_sub(round.started_ms),
                round.segments,
                round.pieces_audited,
                round.pieces_unhealthy,
                round.queued
            );
            histogram(&mut out, &round.segments_by_healthy);
        }
        None => out.push_str("last health round: never\n"),
    }
    let _ = writeln!(
        out,
        "last repair pass: {}; last segment repaired: {}",
        ago(status.last_pass_ms, now_ms),
        ago(status.last_repair_ms, now_ms)
    );
    let _ = writeln!(
        out,
        "repaired in all: {} segment(s), {} byte(s) regenerated, {} failed attempt(s)",
        status.repaired_segments, status.repaired_bytes, status.failed_attempts
    );
    if !queue.is_empty() {
        let _ = writeln!(out, "most endangered (fewest healthy pieces first):");
        for task in queue.iter().take(ENDANGERED_SHOWN) {
            let segment = &task.segment;
            let bucket = names
                .get(&segment.bucket)
                .cloned()
                .unwrap_or_else(|| format!("(deleted bucket {})", hex::encode(segment.bucket.0)));
            let _ = writeln!(
                out,
                "  {bucket} key-id {} part {} segment {}: {} healthy, pieces {:?} lost, \
                 queued {}, {} failed attempt(s)",
                hex::encode(segment.key_id.0),
                segment.part,
                segment.segment,
                task.healthy,
                task.unhealthy,
                ago(Some(task.queued_ms), now_ms),
                task.attempts
            );
        }
        if queue.len() > ENDANGERED_SHOWN {
            let _ = writeln!(out, "  … and {} more", queue.len() - ENDANGERED_SHOWN);
        }
    }
    out
}

/// The report of a running gateway's `/metrics` text (Prometheus text
/// format); `None` if it holds no repair metrics (the worker is off).
pub fn metrics_report(text: &str, now_ms: u64) -> Option<String> {
    let mut values: HashMap<&str, f64> = HashMap::new();
    let mut by_healthy = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        if let Some(labels) = name.strip_prefix("dbytes_repair_segments_by_healthy_pieces{") {
            let healthy = labels
                .trim_end_matches('}')
                .strip_prefix("healthy=\"")
                .and_then(|rest| rest.trim_end_matches('"').parse::<u16>().ok());
            if let Some(healthy) = healthy {
                by_healthy.insert(healthy, value as u64);
            }
        } else if name.starts_with("dbytes_repair_") {
            values.insert(name, value);
        }
    }
    let queue = *values.get("dbytes_repair_queue_length")?;
    let get = |name: &str| values.get(name).copied().unwrap_or(0.0);
    let seconds = |name: &str| {
        let at = get(name);
        (at > 0.0).then_some((at * 1000.0) as u64)
    };
    let mut out = String::new();
    let _ = writeln!(out, "repair queue: {queue} segment(s)");
    let _ = writeln!(
        out,
        "last health round: finished {}",
        ago(
            seconds("dbytes_repair_last_round_timestamp_seconds"),
            now_ms
        )
    );
    histogram(&mut out, &by_healthy);
    let _ = writeln!(
        out,
        "last repair pass: {}",
        ago(seconds("dbytes_repair_last_pass_timestamp_seconds"), now_ms)
    );
    let _ = writeln!(
        out,
        "repaired since the gateway started: {} segment(s), {} byte(s) regenerated, {} failed \
         attempt(s), {} failed audit(s)",
        get("dbytes_repair_segments_total"),
        get("dbytes_repair_bytes_total"),
        get("dbytes_repair_failed_attempts_total"),
        get("dbytes_repair_audit_failures_total")
    );
    out.push_str(
        "(from the running gateway's /metrics; stop it to list the most endangered segments \
         and all-time totals from its book)\n",
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use dbytes_ledger::book::{HealthRound, KeyId, SegmentRef};

    use super::*;
    use crate::repair::RepairMetrics;

    #[test]
    fn a_book_report_lists_the_most_endangered_first_with_bucket_names() {
        let bucket = BucketId([7; 16]);
        let task = |segment: u32, healthy: u16| RepairTask {
            segment: SegmentRef {
                bucket,
                key_id: KeyId([1; 16]),
                part: 0,
                segment,
            },
            healthy,
            unhealthy: vec![0, 1],
            queued_ms: 1_000,
            attempts: 2,
            last_attempt_ms: 0,
        };
        let status = RepairStatus {
            last_round: Some(HealthRound {
                started_ms: 1_000,
                finished_ms: 3_000,
                segments_by_healthy: BTreeMap::from([(4, 2), (6, 9)]),
                ..HealthRound::default()
            }),
            repaired_segments: 5,
            ..RepairStatus::default()
        };
        let names = HashMap::from([(bucket, "photos".to_owned())]);
        let text = render_book(&status, &[task(3, 3), task(1, 4)], &names, 11_000);
        assert!(text.contains("repair queue: 2 segment(s)"), "{text}");
        assert!(text.contains("finished 8 s ago (took 2000 ms)"), "{text}");
        assert!(text.contains("  4 healthy  2 segment(s)"), "{text}");
        assert!(text.contains("5 segment(s), 0 byte(s)"), "{text}");
        let first = text.find("segment 3: 3 healthy").expect("segment 3 listed");
        let second = text.find("segment 1: 4 healthy").expect("segment 1 listed");
        assert!(
            first < second && text.contains("photos key-id 0101"),
            "{text}"
        );
    }

    #[test]
    fn a_metrics_report_reads_what_the_worker_exports() {
        let metrics = RepairMetrics::new();
        let registry = prometheus::Registry::new();
        metrics.register(&registry).unwrap();
        metrics.queue_length.set(3);
        metrics.repaired_segments.inc_by(7);
        metrics.segments_by_healthy.with_label_values(&["4"]).set(3);
        metrics.last_round_timestamp.set(100);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        let report = metrics_report(&text, 105_000).expect("repair metrics found");
        assert!(report.contains("repair queue: 3 segment(s)"), "{report}");
        assert!(report.contains("finished 5 s ago"), "{report}");
        assert!(report.contains("  4 healthy  3 segment(s)"), "{report}");
        assert!(report.contains("7 segment(s)"), "{report}");
        assert!(report.contains("last repair pass: never"), "{report}");
        assert_eq!(metrics_report("other_metric 1\n", 0), None);
    }
}
