//! The repair queue: segments that have lost pieces, kept in the book so a
//! restarted gateway resumes where it stopped, and the one transaction that
//! swaps a repaired segment's pieces in.
//!
//! A segment is named by its manifest (bucket, key id), its part and its
//! index ([`SegmentRef`]). The queue is small (segments below full health),
//! so it is read whole and ordered by how few healthy pieces each segment
//! has left: the most endangered first.
//!
//! The worker also records what its last health round found and what it
//! has repaired in all ([`RepairStatus`]), so `dbytes repair status` can
//! tell an operator how redundancy stands from the book alone.

use std::collections::{BTreeMap, HashMap};

use alloy_primitives::U256;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::deals::add_deal_slots_in;
use super::{
    BUCKETS, Book, BookError, Bucket, BucketId, DealSlot, KeyId, MANIFESTS, Manifest, PieceRecord,
    Placement, Redundancy, UnixMillis, decode, encode, queue_free_in,
};
use crate::piece::PieceId;

/// `bucket ‖ key id ‖ part ‖ segment` -> [`RepairTask`].
const REPAIRS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("repairs");
/// `"status"` -> [`RepairStatus`].
const REPAIR_STATUS: TableDefinition<&str, &[u8]> = TableDefinition::new("repair_status");
const STATUS_ROW: &str = "status";

/// What one health round (every placed piece audited once) found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthRound {
    /// When it started.
    pub started_ms: UnixMillis,
    /// When it finished.
    pub finished_ms: UnixMillis,
    /// Segments looked at.
    pub segments: u64,
    /// Pieces audited.
    pub pieces_audited: u64,
    /// Pieces found unhealthy (gone, unreachable or failing their audit).
    pub pieces_unhealthy: u64,
    /// Segments by their count of healthy pieces.
    pub segments_by_healthy: BTreeMap<u16, u64>,
    /// Segments it queued (below their repair threshold).
    pub queued: u64,
}

/// The repair worker's record: its last health round and its totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairStatus {
    /// The last finished health round.
    pub last_round: Option<HealthRound>,
    /// When the last pass over the queue finished.
    pub last_pass_ms: Option<UnixMillis>,
    /// When a segment was last repaired.
    pub last_repair_ms: Option<UnixMillis>,
    /// Segments brought back to full redundancy, ever.
    pub repaired_segments: u64,
    /// Regenerated piece bytes stored, ever.
    pub repaired_bytes: u64,
    /// Repair attempts that failed, ever.
    pub failed_attempts: u64,
}

/// One segment of one object version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SegmentRef {
    /// The bucket.
    pub bucket: BucketId,
    /// The key id the version's manifest is stored under.
    pub key_id: KeyId,
    /// The part of the manifest.
    pub part: u32,
    /// The segment in the part.
    pub segment: u32,
}

impl SegmentRef {
    fn manifest_row(&self) -> Vec<u8> {
        let mut row = Vec::with_capacity(32);
        row.extend_from_slice(&self.bucket.0);
        row.extend_from_slice(&self.key_id.0);
        row
    }

    fn row(&self) -> Vec<u8> {
        let mut row = self.manifest_row();
        row.extend_from_slice(&self.part.to_be_bytes());
        row.extend_from_slice(&self.segment.to_be_bytes());
        row
    }
}

/// A segment waiting for repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairTask {
    /// The segment.
    pub segment: SegmentRef,
    /// Pieces found healthy when it was queued.
    pub healthy: u16,
    /// The piece indexes found unhealthy (missing, unreachable or failing
    /// audits).
    pub unhealthy: Vec<u16>,
    /// When it was queued.
    pub queued_ms: UnixMillis,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the last failed attempt ended (0: none yet); with `attempts`
    /// it says when the next may start, across restarts.
    #[serde(default)]
    pub last_attempt_ms: UnixMillis,
}

/// What [`Book::repair_segment`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairOutcome {
    /// The manifest now lists the new pieces.
    Applied,
    /// The version was deleted (or the segment changed) meanwhile: the new
    /// pieces were queued for freeing instead.
    Gone,
}

impl BookError {
    /// Whether the book is open in another process (a running gateway: redb
    /// opens a file in one process at a time).
    pub fn is_locked(&self) -> bool {
        matches!(self, BookError::Storage(redb::Error::DatabaseAlreadyOpen))
    }
}

impl Book {
    /// Every manifest in the book with the bucket and key id it is stored
    /// under (the repair worker's health scan). Reads them all: call it
    /// rarely.
    pub fn all_manifests(&self) -> Result<Vec<(BucketId, KeyId, Manifest)>, BookError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MANIFESTS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (key, value) = row?;
            let key = key.value();
            let (Ok(bucket), Ok(key_id)) = (
                <[u8; 16]>::try_from(&key[..16.min(key.len())]),
                <[u8; 16]>::try_from(&key[16.min(key.len())..]),
            ) else {
                return Err(BookError::Corrupt {
                    table: "manifests",
                    reason: format!("a row key of {} bytes, not 32", key.len()),
                });
            };
            out.push((
                BucketId(bucket),
                KeyId(key_id),
                decode("manifests", value.value())?,
            ));
        }
        Ok(out)
    }

    /// Every bucket (buckets are few: one scan), for the repair worker's
    /// thresholds and names in its status.
    pub fn all_buckets(&self) -> Result<Vec<Bucket>, BookError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BUCKETS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, value) = row?;
            out.push(decode("buckets", value.value())?);
        }
        Ok(out)
    }

    /// Every bucket's redundancy by bucket id.
    pub fn bucket_redundancies(&self) -> Result<HashMap<BucketId, Redundancy>, BookError> {
        Ok(self
            .all_buckets()?
            .into_iter()
            .map(|bucket| (bucket.id, bucket.redundancy))
            .collect())
    }

    /// The repair worker's record (empty before its first round).
    pub fn repair_status(&self) -> Result<RepairStatus, BookError> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(REPAIR_STATUS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(RepairStatus::default()),
            Err(err) => return Err(err.into()),
        };
        table
            .get(STATUS_ROW)?
            .map(|guard| decode("repair_status", guard.value()))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Changes the repair worker's record in one transaction.
    pub fn update_repair_status(
        &self,
        change: impl FnOnce(&mut RepairStatus),
    ) -> Result<RepairStatus, BookError> {
        let txn = self.db.begin_write()?;
        let status = {
            let mut table = txn.open_table(REPAIR_STATUS)?;
            let mut status: RepairStatus = table
                .get(STATUS_ROW)?
                .map(|guard| decode("repair_status", guard.value()))
                .transpose()?
                .unwrap_or_default();
            change(&mut status);
            table.insert(STATUS_ROW, encode(&status).as_slice())?;
            status
        };
        txn.commit()?;
        Ok(status)
    }

    /// Queues `task` (replacing an earlier task for the same segment, but
    /// keeping its attempt count).
    pub fn queue_repair(&self, task: &RepairTask) -> Result<(), BookError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(REPAIRS)?;
            let row = task.segment.row();
            let mut task = task.clone();
            if let Some(old) = table.get(row.as_slice())? {
                let old: RepairTask = decode("repairs", old.value())?;
                task.attempts = task.attempts.max(old.attempts);
                task.last_attempt_ms = task.last_attempt_ms.max(old.last_attempt_ms);
                task.queued_ms = old.queued_ms;
            }
            table.insert(row.as_slice(), encode(&task).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The queue, fewest healthy pieces first (then oldest first).
    pub fn repair_queue(&self) -> Result<Vec<RepairTask>, BookError> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(REPAIRS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(err) => return Err(err.into()),
        };
        let mut tasks = Vec::new();
        for row in table.iter()? {
            let (_, value) = row?;
            tasks.push(decode::<RepairTask>("repairs", value.value())?);
        }
        tasks.sort_by_key(|task| (task.healthy, task.queued_ms));
        Ok(tasks)
    }

    /// Drops a segment from the queue (healthy again, or gone).
    pub fn finish_repair(&self, segment: &SegmentRef) -> Result<(), BookError> {
        let txn = self.db.begin_write()?;
        txn.open_table(REPAIRS)?.remove(segment.row().as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Counts a failed attempt at repairing `segment`, ended at `now`.
    pub fn retry_repair(&self, segment: &SegmentRef, now: UnixMillis) -> Result<(), BookError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(REPAIRS)?;
            let row = segment.row();
            let task = table
                .get(row.as_slice())?
                .map(|guard| decode::<RepairTask>("repairs", guard.value()))
                .transpose()?;
            if let Some(mut task) = task {
                task.attempts += 1;
                task.last_attempt_ms = now;
                table.insert(row.as_slice(), encode(&task).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Swaps regenerated pieces into a segment, in one transaction: each
    /// `(index, piece)` replaces piece `index` of the segment (if it still
    /// has the id `piece.id`, which regeneration preserves), the new pieces
    /// are listed in their deals' slots, the old placements are queued for
    /// freeing, and the segment leaves the repair queue. If the version was
    /// deleted meanwhile, the new pieces are queued for freeing instead.
    pub fn repair_segment(
        &self,
        segment: &SegmentRef,
        replaced: &[(usize, PieceRecord)],
        slots: &[(U256, DealSlot)],
        now: UnixMillis,
    ) -> Result<RepairOutcome, BookError> {
        let txn = self.db.begin_write()?;
        let outcome = {
            let mut manifests = txn.open_table(MANIFESTS)?;
            let row = segment.manifest_row();
            let manifest = manifests
                .get(row.as_slice())?
                .map(|guard| decode::<Manifest>("manifests", guard.value()))
                .transpose()?;
            let fresh: Vec<(PieceId, Placement)> = replaced
                .iter()
                .filter_map(|(_, piece)| piece.placement.clone().map(|place| (piece.id, place)))
                .collect();
            let target = manifest.and_then(|mut manifest| {
                let record = manifest
                    .parts
                    .get_mut(segment.part as usize)?
                    .segments
                    .get_mut(segment.segment as usize)?;
                let matches = replaced.iter().all(|(index, piece)| {
                    record
                        .pieces
                        .get(*index)
                        .is_some_and(|old| old.id == piece.id)
                });
                matches.then_some(())?;
                let mut old = Vec::new();
                for (index, piece) in replaced {
                    let slot = &mut record.pieces[*index];
                    if let Some(place) = slot.placement.take() {
                        old.push((slot.id, place));
                    }
                    *slot = piece.clone();
                }
                Some((manifest, old))
            });
            match target {
                Some((manifest, old)) => {
                    manifests.insert(row.as_slice(), encode(&manifest).as_slice())?;
                    add_deal_slots_in(&txn, slots)?;
                    queue_free_in(&txn, old, now)?;
                    RepairOutcome::Applied
                }
                None => {
                    queue_free_in(&txn, fresh, now)?;
                    RepairOutcome::Gone
                }
            }
        };
        txn.open_table(REPAIRS)?.remove(segment.row().as_slice())?;
        txn.commit()?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repair_status_starts_empty_accumulates_and_persists() {
        let path = std::env::temp_dir().join(format!(
            "dbytes-repair-status-{}.redb",
            rand::random::<u64>()
        ));
        {
            let book = Book::open(&path).unwrap();
            assert_eq!(book.repair_status().unwrap(), RepairStatus::default());
            book.update_repair_status(|status| {
                status.repaired_segments += 2;
                status.last_round = Some(HealthRound {
                    segments: 5,
                    segments_by_healthy: BTreeMap::from([(6, 4), (3, 1)]),
                    ..HealthRound::default()
                });
            })
            .unwrap();
            let status = book
                .update_repair_status(|status| status.repaired_segments += 1)
                .unwrap();
            assert_eq!(status.repaired_segments, 3);
        }
        let status = Book::open(&path).unwrap().repair_status().unwrap();
        assert_eq!(status.repaired_segments, 3);
        let round = status.last_round.unwrap();
        assert_eq!(round.segments_by_healthy[&3], 1);
        let _ = std::fs::remove_file(&path);
    }
}
