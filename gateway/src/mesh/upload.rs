//! Writes: a segment's pieces onto distinct providers, each audited before
//! it counts, with the long tail cancelled once the success threshold is
//! stored.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use dbytes_ledger::book::{DealSlot, Placement};
use dbytes_ledger::piece::PieceId;
use dbytes_mesh::client::ClientError;
use dbytes_mesh::deal::DealId;
use dbytes_mesh::wire::StoredPiece;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::directory::Target;
use super::{MeshPieceStore, blocking, lock, select};
use crate::codec::{EncodedSegment, SegmentLayout};
use crate::pipeline::PieceStoreError;

/// The providers a segment goes to, with room reserved on their deals.
struct Plan {
    pieces: Vec<Target>,
    spares: VecDeque<Target>,
}

/// One finished upload: the piece's index, where it went, what happened.
type Upload = (usize, Target, Result<StoredPiece, ClientError>);

impl MeshPieceStore {
    /// Chooses providers for `pieces` pieces of `piece_len` bytes (and
    /// spares) and reserves room on their deals.
    fn plan(&self, pieces: usize, piece_len: u64) -> Plan {
        self.plan_avoiding(pieces, piece_len, &[])
    }

    /// [`Self::plan`] with the providers named in `avoid` (placement
    /// provider strings) left out: a repaired segment's remaining holders.
    fn plan_avoiding(&self, pieces: usize, piece_len: u64, avoid: &[String]) -> Plan {
        let mut directory = lock(&self.inner.directory);
        let candidates: Vec<_> = directory
            .candidates(piece_len, Instant::now())
            .into_iter()
            .filter(|(_, target)| !avoid.contains(&target.placement().provider))
            .collect();
        let (selection, targets): (Vec<_>, Vec<_>) = candidates.into_iter().unzip();
        let choice = select::choose(
            &selection,
            piece_len,
            pieces,
            self.inner.tuning.spare_providers,
        );
        let mut reserve = |indexes: Vec<usize>| -> Vec<Target> {
            indexes
                .into_iter()
                .filter_map(|index| {
                    let target = targets[index].clone();
                    directory.reserve(target.deal, piece_len).then_some(target)
                })
                .collect()
        };
        Plan {
            pieces: reserve(choice.pieces),
            spares: reserve(choice.spares).into(),
        }
    }

    fn release(&self, targets: impl IntoIterator<Item = Target>) {
        let mut directory = lock(&self.inner.directory);
        for target in targets {
            directory.release(target.deal, false);
        }
    }

    /// Uploads one piece and, with probability 1 in
    /// [`super::MeshTuning::audit_one_in`], audits it: then the piece
    /// counts only if the provider proves random leaves of what it stored
    /// against the bytes sent. Sampled, because an audit costs the
    /// provider as much hashing as the put did (it re-reads the whole piece
    /// and rebuilds its BLAKE3 hash and SHA-256 proof tree) and holds the
    /// piece in memory meanwhile; drawn after the root is reported, so a
    /// provider cannot tell which roots will be checked.
    async fn upload_one(&self, index: usize, target: Target, id: PieceId, bytes: &[u8]) -> Upload {
        let inner = &self.inner;
        let started = Instant::now();
        let deal = DealId(target.deal);
        let result = async {
            let stored = inner
                .client
                .put_piece(&target.addr, deal, id, bytes)
                .await?;
            let audited = rand::random::<u32>().is_multiple_of(inner.tuning.audit_one_in.max(1));
            if !audited {
                return Ok(stored);
            }
            inner
                .client
                .spot_check(
                    &target.addr,
                    deal,
                    id,
                    bytes,
                    &stored,
                    inner.tuning.audit_leaves,
                )
                .await
                .map(|()| stored)
        }
        .await;
        match &result {
            Ok(_) => {
                inner
                    .metrics
                    .put_seconds
                    .observe(started.elapsed().as_secs_f64());
                lock(&inner.directory).answered(target.node, started.elapsed());
            }
            Err(err) => {
                let operation = if matches!(err, ClientError::AuditFailed { .. }) {
                    // The provider holds bytes it lied about: drop them.
                    self.forget_later(vec![(id, target.placement())]);
                    "audit"
                } else {
                    "put"
                };
                inner
                    .metrics
                    .piece_failures
                    .with_label_values(&[operation])
                    .inc();
                lock(&inner.directory).failed(target.node, Instant::now(), inner.tuning.down_for);
                tracing::debug!(deal = %target.deal, piece = %id, %err, "piece upload failed");
            }
        }
        (index, target, result)
    }

    /// Deletes pieces in the background (pieces of a failed segment, a
    /// failed audit); what fails here is caught by the commitment round,
    /// which deletes pieces a provider holds that no deal lists.
    fn forget_later(&self, pieces: Vec<(PieceId, Placement)>) {
        let store = self.clone();
        tokio::spawn(async move {
            if let Err(err) = store.delete(&pieces).await {
                tracing::debug!(%err, "deleting unlisted pieces failed; the commitment round retries");
            }
        });
    }

    /// [`crate::pipeline::PieceStore::store_segment`] on the mesh.
    pub(super) async fn store_pieces(
        &self,
        segment: &EncodedSegment,
        layout: &SegmentLayout,
    ) -> Result<Vec<Option<Placement>>, PieceStoreError> {
        let total = segment.piece_count();
        let needed = usize::from(layout.policy().success_threshold());
        let piece_len = segment.piece_len() as u64;
        let mut plan = self.plan(total, piece_len);
        let mut opened_note = String::new();
        if plan.pieces.len() < total {
            // Short of providers: open deals (if allowed) and look again.
            let short = total - plan.pieces.len();
            self.release(plan.pieces.drain(..).chain(plan.spares.drain(..)));
            match self.open_deals(short, piece_len).await {
                Ok(outcome) => opened_note = outcome.note(),
                Err(err) => {
                    tracing::warn!(%err, "opening deals failed");
                    opened_note = format!("; opening new deals failed: {err}");
                }
            }
            if let Err(err) = self.refresh_deals().await {
                tracing::warn!(%err, "reading the user's deals failed");
            }
            plan = self.plan(total, piece_len);
        }
        if plan.pieces.len() < needed {
            let found = plan.pieces.len();
            self.release(plan.pieces.drain(..).chain(plan.spares.drain(..)));
            return Err(PieceStoreError::NotEnoughStored {
                stored: 0,
                needed,
                reason: format!(
                    "only {found} provider(s) among the user's live deals have room for a piece of \
                     {piece_len} bytes, and a {}-of-{total} policy stores at least {needed} pieces \
                     on distinct providers{opened_note}",
                    layout.data_pieces()
                ),
            });
        }

        let ids = segment.ids();
        let mut uploads = FuturesUnordered::new();
        let mut active: HashMap<usize, Target> = HashMap::new();
        for (index, target) in plan.pieces.into_iter().enumerate() {
            lock(&self.inner.in_flight).insert((target.deal, ids[index]));
            active.insert(index, target.clone());
            uploads.push(self.upload_one(index, target, ids[index], segment.piece(index)));
        }
        let mut spares = plan.spares;
        let mut stored: Vec<(usize, Target, StoredPiece)> = Vec::new();
        let mut failures: Vec<String> = Vec::new();
        while stored.len() < needed {
            let Some((index, target, result)) = uploads.next().await else {
                break;
            };
            active.remove(&index);
            match result {
                Ok(piece) => stored.push((index, target, piece)),
                Err(err) => {
                    failures.push(err.to_string());
                    lock(&self.inner.in_flight).remove(&(target.deal, ids[index]));
                    self.release([target]);
                    if let Some(spare) = spares.pop_front() {
                        lock(&self.inner.in_flight).insert((spare.deal, ids[index]));
                        active.insert(index, spare.clone());
                        uploads.push(self.upload_one(
                            index,
                            spare,
                            ids[index],
                            segment.piece(index),
                        ));
                    }
                }
            }
        }
        // The long tail: uploads still running are cancelled (dropping a
        // request resets its stream; the provider stores nothing).
        drop(uploads);
        {
            let mut in_flight = lock(&self.inner.in_flight);
            for (index, target) in &active {
                in_flight.remove(&(target.deal, ids[*index]));
            }
        }
        self.release(active.into_values().chain(spares));

        let done: Vec<(PieceId, Placement)> = stored
            .iter()
            .map(|(index, target, _)| (ids[*index], target.placement()))
            .collect();
        let finish = |store: &Self| {
            let mut in_flight = lock(&store.inner.in_flight);
            for (index, target, _) in &stored {
                in_flight.remove(&(target.deal, ids[*index]));
            }
        };
        if stored.len() < needed {
            finish(self);
            self.release(stored.iter().map(|(_, target, _)| target.clone()));
            self.forget_later(done);
            let mut reason = failures.into_iter().take(3).collect::<Vec<_>>().join("; ");
            if reason.is_empty() {
                reason = "no provider answered".into();
            }
            return Err(PieceStoreError::NotEnoughStored {
                stored: stored.len(),
                needed,
                reason,
            });
        }

        // List the pieces in their deals' slots before they count: the
        // commitment round builds each deal's commitment from this list.
        let slots: Vec<_> = stored
            .iter()
            .map(|(index, target, piece)| {
                (
                    target.deal,
                    DealSlot {
                        piece: ids[*index],
                        root: piece.root,
                        leaf_count: piece.leaf_count,
                    },
                )
            })
            .collect();
        let book = self.inner.book.clone();
        let listed = blocking(move || book.add_deal_slots(&slots)).await;
        finish(self);
        if let Err(err) = listed {
            self.release(stored.iter().map(|(_, target, _)| target.clone()));
            self.forget_later(done);
            return Err(PieceStoreError::Failed(format!(
                "listing stored pieces in the book failed: {err}"
            )));
        }
        let mut placements = vec![None; total];
        {
            let mut directory = lock(&self.inner.directory);
            for (index, target, _) in &stored {
                directory.release(target.deal, true);
                placements[*index] = Some(target.placement());
            }
        }
        self.update_piece_metrics();
        Ok(placements)
    }
}

/// A regenerated piece stored by [`MeshPieceStore::place_pieces`], not yet
/// listed in the book (the repair worker lists it with its manifest change).
#[derive(Debug, Clone)]
pub struct PlacedPiece {
    /// The piece's index in its segment.
    pub index: usize,
    /// Where it went.
    pub placement: Placement,
    /// Its deal.
    pub deal: alloy_primitives::U256,
    /// Its slot for the deal's commitment.
    pub slot: DealSlot,
}

impl MeshPieceStore {
    /// Stores each `(index, id, bytes)` on a distinct provider not named in
    /// `avoid`, audited like any upload, retrying failures on spares and
    /// opening deals when too few have room. Stores what it can: the
    /// caller lists the returned pieces in the book in its own transaction
    /// (and frees them if it cannot).
    pub async fn place_pieces(
        &self,
        pieces: &[(usize, PieceId, Vec<u8>)],
        avoid: &[String],
    ) -> Vec<PlacedPiece> {
        let Some(piece_len) = pieces.first().map(|(_, _, bytes)| bytes.len() as u64) else {
            return Vec::new();
        };
        let mut plan = self.plan_avoiding(pieces.len(), piece_len, avoid);
        if plan.pieces.len() < pieces.len() {
            self.release(plan.pieces.drain(..).chain(plan.spares.drain(..)));
            if let Err(err) = self.open_deals(pieces.len(), piece_len).await {
                tracing::warn!(%err, "opening deals for repair failed");
            }
            if let Err(err) = self.refresh_deals().await {
                tracing::warn!(%err, "reading the user's deals failed");
            }
            plan = self.plan_avoiding(pieces.len(), piece_len, avoid);
        }
        let mut uploads = FuturesUnordered::new();
        for ((position, (_, id, bytes)), target) in pieces.iter().enumerate().zip(plan.pieces) {
            lock(&self.inner.in_flight).insert((target.deal, *id));
            uploads.push(self.upload_one(position, target, *id, bytes));
        }
        let mut spares = plan.spares;
        let mut placed = Vec::new();
        while let Some((position, target, result)) = uploads.next().await {
            let (index, id, bytes) = &pieces[position];
            lock(&self.inner.in_flight).remove(&(target.deal, *id));
            match result {
                Ok(stored) => {
                    lock(&self.inner.directory).release(target.deal, true);
                    placed.push(PlacedPiece {
                        index: *index,
                        placement: target.placement(),
                        deal: target.deal,
                        slot: DealSlot {
                            piece: *id,
                            root: stored.root,
                            leaf_count: stored.leaf_count,
                        },
                    });
                }
                Err(_) => {
                    self.release([target]);
                    if let Some(spare) = spares.pop_front() {
                        lock(&self.inner.in_flight).insert((spare.deal, *id));
                        uploads.push(self.upload_one(position, spare, *id, bytes));
                    }
                }
            }
        }
        self.release(spares);
        placed
    }
}
