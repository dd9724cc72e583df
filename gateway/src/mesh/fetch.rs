//! Reads from the fastest providers with the rest cancelled, and deletes.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use alloy_primitives::U256;
use bytes::Bytes;
use dbytes_ledger::book::Placement;
use dbytes_ledger::piece::PieceId;
use dbytes_mesh::client::ClientError;
use dbytes_mesh::deal::DealId;
use dbytes_mesh::wire::Refusal;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::directory::parse_placement;
use super::{MeshPieceStore, blocking, lock};
use crate::pipeline::{PieceRequest, PieceStoreError};

impl MeshPieceStore {
    /// Fetches one request; `None` if it failed.
    async fn fetch_one(&self, index: usize, request: &PieceRequest) -> (usize, Option<Bytes>) {
        let inner = &self.inner;
        let Some((node, deal)) = parse_placement(&request.placement) else {
            tracing::warn!(provider = %request.placement.provider, "a piece placed outside the mesh; skipped");
            return (index, None);
        };
        let addr = lock(&inner.directory).addr_of(node);
        let started = Instant::now();
        let deal = DealId(deal);
        let result = match &request.range {
            None => inner.client.get_piece(&addr, deal, request.id).await,
            Some(range) => {
                inner
                    .client
                    .get_range(
                        &addr,
                        deal,
                        request.id,
                        range.start,
                        range.end.saturating_sub(range.start),
                    )
                    .await
            }
        };
        match result {
            Ok(bytes) => {
                inner
                    .metrics
                    .get_seconds
                    .observe(started.elapsed().as_secs_f64());
                lock(&inner.directory).answered(node, started.elapsed());
                (index, Some(Bytes::from(bytes)))
            }
            Err(err) => {
                inner
                    .metrics
                    .piece_failures
                    .with_label_values(&["get"])
                    .inc();
                // A refusal (the piece is gone, say) says nothing about
                // the provider's health; silence does.
                if !matches!(err, ClientError::Refused { .. }) {
                    lock(&inner.directory).failed(node, Instant::now(), inner.tuning.down_for);
                }
                tracing::debug!(piece = %request.id, %err, "piece fetch failed");
                (index, None)
            }
        }
    }

    /// [`crate::pipeline::PieceStore::fetch_pieces`] on the mesh: the
    /// healthy providers first (in the caller's order among them), `needed`
    /// plus a few spares at once, another whenever one fails or none has
    /// answered for [`super::MeshTuning::hedge_after`]; the rest are
    /// cancelled once `needed` have arrived.
    pub(super) async fn fetch(
        &self,
        requests: &[PieceRequest],
        needed: usize,
    ) -> Vec<Option<Bytes>> {
        let mut out = vec![None; requests.len()];
        if needed == 0 || requests.is_empty() {
            return out;
        }
        let mut order: Vec<usize> = (0..requests.len()).collect();
        {
            let now = Instant::now();
            let directory = lock(&self.inner.directory);
            let slow = |index: &usize| {
                parse_placement(&requests[*index].placement)
                    .is_none_or(|(node, _)| directory.is_slow(node, now))
            };
            order.sort_by_key(|index| slow(index));
        }
        let mut waiting: VecDeque<usize> = order.into();
        let width = (needed + self.inner.tuning.read_spares).min(requests.len());
        let mut fetches = FuturesUnordered::new();
        // When each outstanding request started, to tell stragglers.
        let mut started: BTreeMap<usize, Instant> = BTreeMap::new();
        for index in waiting.drain(..width) {
            started.insert(index, Instant::now());
            fetches.push(self.fetch_one(index, &requests[index]));
        }
        let mut arrived = 0;
        let hedge = self.inner.tuning.hedge_after;
        loop {
            // A provider that has not answered within `hedge_after` is not
            // waited for alone: the next candidate starts alongside it (a
            // dead provider's cached connection can hold a request until
            // its timeout, tens of seconds).
            let (index, bytes) = match tokio::time::timeout(hedge, fetches.next()).await {
                Ok(Some(done)) => done,
                Ok(None) => break,
                Err(_) => {
                    if let Some(next) = waiting.pop_front() {
                        started.insert(next, Instant::now());
                        fetches.push(self.fetch_one(next, &requests[next]));
                    }
                    continue;
                }
            };
            started.remove(&index);
            match bytes {
                Some(bytes) => {
                    out[index] = Some(bytes);
                    arrived += 1;
                    if arrived >= needed {
                        break;
                    }
                }
                None => {
                    if let Some(next) = waiting.pop_front() {
                        started.insert(next, Instant::now());
                        fetches.push(self.fetch_one(next, &requests[next]));
                    }
                }
            }
        }
        // Dropping the unfinished fetches resets their streams. Those left
        // unanswered past the hedge delay are read last for a while: a
        // stopped provider whose connection still looks open never fails,
        // it only goes silent, and would cost every segment the hedge delay.
        let now = Instant::now();
        let stragglers: Vec<_> = started
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= hedge)
            .filter_map(|(index, _)| parse_placement(&requests[*index].placement))
            .collect();
        if !stragglers.is_empty() {
            let mut directory = lock(&self.inner.directory);
            for (node, _) in stragglers {
                directory.stalled(node, now + self.inner.tuning.down_for);
            }
        }
        out
    }

    /// [`crate::pipeline::PieceStore::delete_pieces`] on the mesh: deletes
    /// each piece from its provider and drops it from its deal's slots. A
    /// piece the provider no longer holds, or whose deal has ended, counts
    /// as deleted; so does a piece under a deal the chain says no longer
    /// runs (failed, closed, ended), without asking its provider, which may
    /// be gone for good.
    pub(super) async fn delete(
        &self,
        pieces: &[(PieceId, Placement)],
    ) -> Result<(), PieceStoreError> {
        let inner = &self.inner;
        let mut deletes = FuturesUnordered::new();
        let mut done: BTreeMap<U256, Vec<PieceId>> = BTreeMap::new();
        for (id, placement) in pieces {
            let Some((node, deal)) = parse_placement(placement) else {
                // Not a mesh placement (a test double's, say): nothing to do.
                continue;
            };
            let (addr, ended) = {
                let directory = lock(&inner.directory);
                let ended = directory.deal(deal).is_some_and(|entry| !entry.live);
                (directory.addr_of(node), ended)
            };
            if ended {
                done.entry(deal).or_default().push(*id);
                continue;
            }
            let id = *id;
            deletes.push(async move {
                let result = inner.client.delete_piece(&addr, DealId(deal), id).await;
                (deal, id, node, result)
            });
        }
        let mut failures = Vec::new();
        while let Some((deal, id, node, result)) = deletes.next().await {
            match result {
                Ok(_)
                | Err(ClientError::Refused {
                    refusal:
                        Refusal::NotFound { .. } | Refusal::UnknownDeal(_) | Refusal::DealNotActive(_),
                    ..
                }) => done.entry(deal).or_default().push(id),
                Err(err) => {
                    inner
                        .metrics
                        .piece_failures
                        .with_label_values(&["delete"])
                        .inc();
                    if !matches!(err, ClientError::Refused { .. }) {
                        lock(&inner.directory).failed(node, Instant::now(), inner.tuning.down_for);
                    }
                    failures.push(err.to_string());
                }
            }
        }
        for (deal, ids) in done {
            let book = inner.book.clone();
            let removed = blocking(move || book.remove_deal_slots(deal, &ids))
                .await
                .map_err(|err| PieceStoreError::Failed(err.to_string()))?;
            lock(&inner.directory).removed(deal, removed as u64);
        }
        self.update_piece_metrics();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(PieceStoreError::Failed(format!(
                "{} of {} piece deletions failed: {}",
                failures.len(),
                pieces.len(),
                failures.into_iter().take(3).collect::<Vec<_>>().join("; ")
            )))
        }
    }
}
