//! The chain watcher: what the chain says about the user's deals, acted on.
//!
//! Every round (a fraction of a period) it reads the user's deals and:
//!
//! - **Reports missed proofs.** A running deal under a commitment whose
//!   provider left a closed period unproven is reported with
//!   `reportMissed(deal, period)`: the marketplace settles the deal up to
//!   that period, slashing the provider's collateral for each unproven
//!   period on the way (most of it refunded to the user, a share to the
//!   reporter: the user's own wallet) and failing the deal after three
//!   misses in a row. Only closed periods (past their proof grace), under a
//!   commitment, past a repair deal's fill deadline and not yet settled are
//!   reportable; the watcher reports the latest such unproven period it
//!   finds, which settles (and slashes) every missed one before it too.
//! - **Moves pieces off lost deals.** A deal that failed, closed early,
//!   is ending, is being exited by its provider, or whose provider left the
//!   registry, and that the book still lists pieces under, has every
//!   segment with such a piece queued for repair in the book (the piece
//!   marked unhealthy), so the repair worker regenerates it onto other
//!   providers, opening deals from the market within the budget when room
//!   is short.
//! - **Closes failed deals it is done with.** A failed deal the book lists
//!   no piece under any more (every piece moved) is closed with
//!   `closeFailed`: the gateway repairs by regenerating pieces elsewhere,
//!   never by reassigning the deal, so the repair reward the deal earmarked
//!   goes back to the user's credit.
//!
//! What it learns is kept in the book ([`DealWatch`]): how far each deal is
//! known proven, and which deals it already found lost, so a restarted
//! gateway picks up where it stopped.
//!
//! It is not where pieces are audited or repaired (`crate::repair`) nor
//! where deals are placed (`crate::mesh`). Main types: [`ChainWatcher`],
//! [`WatchTuning`], [`WatchMetrics`], [`WatchReport`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use alloy_primitives::U256;
use dbytes_ledger::book::{Book, BookError, DealWatch, RepairTask, SegmentRef};
use dbytes_ledger::chain::deal::Settlement;
use dbytes_ledger::chain::{ChainClient, ChainError, Deal, DealState, ListingStatus};
use prometheus::{IntCounter, IntGauge, Registry};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::mesh::{MeshPieceStore, parse_placement};

/// How the watcher behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchTuning {
    /// Time between rounds.
    pub interval: Duration,
    /// Closed periods of one deal checked for a proof per round, at most
    /// (each is one chain read).
    pub periods_per_round: u64,
}

impl WatchTuning {
    /// Rounds every quarter of a period (between 1 s and a minute): a
    /// missed proof is reported within a quarter period of its period
    /// closing.
    pub fn for_period(period_secs: u64) -> WatchTuning {
        WatchTuning {
            interval: Duration::from_secs((period_secs / 4).clamp(1, 60)),
            periods_per_round: 64,
        }
    }
}

/// The watcher's Prometheus metrics.
#[derive(Debug, Clone)]
pub struct WatchMetrics {
    /// `reportMissed` transactions that went through.
    pub missed_reports: IntCounter,
    /// Deals found failed, closed early or being left while the book
    /// listed pieces under them.
    pub deals_lost: IntCounter,
    /// Deals the watcher's own reports failed.
    pub deals_failed: IntCounter,
    /// Segments queued for repair because a deal was lost.
    pub segments_queued: IntCounter,
    /// Failed deals closed once their pieces had moved.
    pub deals_closed: IntCounter,
    /// When the last round finished (Unix seconds).
    pub last_round_timestamp: IntGauge,
}

impl WatchMetrics {
    /// Fresh metrics, not yet registered.
    pub fn new() -> WatchMetrics {
        // Invariant: constant, valid metric names and help strings.
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        WatchMetrics {
            missed_reports: counter(
                "dbytes_watch_missed_reports_total",
                "Missed storage proofs reported on chain (each slashes the provider)",
            ),
            deals_lost: counter(
                "dbytes_watch_deals_lost_total",
                "Deals holding pieces found failed, closed early or being left",
            ),
            deals_failed: counter(
                "dbytes_watch_deals_failed_total",
                "Deals failed on chain by the gateway's reports of missed proofs",
            ),
            segments_queued: counter(
                "dbytes_watch_segments_queued_total",
                "Segments queued for repair because a deal holding a piece was lost",
            ),
            deals_closed: counter(
                "dbytes_watch_deals_closed_total",
                "Failed deals closed on chain (closeFailed) once none of their pieces was left",
            ),
            last_round_timestamp: IntGauge::new(
                "dbytes_watch_last_round_timestamp_seconds",
                "When the chain watcher's last round finished",
            )
            .expect("valid metric"),
        }
    }

    /// Registers every metric into `registry`.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.missed_reports.clone()))?;
        registry.register(Box::new(self.deals_lost.clone()))?;
        registry.register(Box::new(self.deals_failed.clone()))?;
        registry.register(Box::new(self.segments_queued.clone()))?;
        registry.register(Box::new(self.deals_closed.clone()))?;
        registry.register(Box::new(self.last_round_timestamp.clone()))?;
        Ok(())
    }
}

impl Default for WatchMetrics {
    fn default() -> Self {
        WatchMetrics::new()
    }
}

/// Why a round stopped early (the next round tries again).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The chain could not be read.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The book failed.
    #[error(transparent)]
    Book(#[from] BookError),
    /// A blocking task failed.
    #[error("a chain watcher task failed: {0}")]
    Task(String),
}

/// A missed period reported by a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissedReport {
    /// The deal.
    pub deal: U256,
    /// The period reported.
    pub period: u64,
    /// What settling up to it did (slashed collateral, the deal's state).
    pub settlement: Settlement,
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchReport {
    /// Missed periods reported.
    pub reported: Vec<MissedReport>,
    /// Deals holding pieces that are failed, closed early or being left.
    pub lost_deals: Vec<U256>,
    /// Segments newly queued for repair (or with more pieces marked).
    pub segments_queued: usize,
    /// Failed deals closed on chain.
    pub closed: Vec<U256>,
}

/// The chain watcher (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub struct ChainWatcher {
    store: MeshPieceStore,
    chain: ChainClient,
    book: Book,
    tuning: WatchTuning,
    metrics: WatchMetrics,
    stop: CancellationToken,
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BookError> + Send + 'static,
) -> Result<T, WatchError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => Ok(result?),
        Err(err) => Err(WatchError::Task(err.to_string())),
    }
}

/// Whether the pieces under `deal` must move: it no longer runs (failed,
/// closed), takes its last period now, is being exited by its provider, or
/// its provider left the registry.
fn is_lost(deal: &Deal, listing: ListingStatus, current_period: u64) -> bool {
    !deal.is_live_in(current_period.saturating_add(1))
        || deal.state == DealState::Exiting
        || listing == ListingStatus::None
}

impl ChainWatcher {
    /// A watcher of the deals `store` places on, acting with `chain` (the
    /// user's wallet) and `book`; start it with [`ChainWatcher::spawn`].
    pub fn new(
        store: MeshPieceStore,
        chain: ChainClient,
        book: Book,
        tuning: WatchTuning,
    ) -> ChainWatcher {
        ChainWatcher {
            store,
            chain,
            book,
            tuning,
            metrics: WatchMetrics::new(),
            stop: CancellationToken::new(),
        }
    }

    /// The watcher's metrics (register them to export them).
    pub fn metrics(&self) -> &WatchMetrics {
        &self.metrics
    }

    /// Stops the background task after its current step.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Runs rounds until [`ChainWatcher::shutdown`].
    pub fn spawn(&self) -> JoinHandle<()> {
        let watcher = self.clone();
        tokio::spawn(async move {
            loop {
                match watcher.check().await {
                    Ok(report) if report == WatchReport::default() => {}
                    Ok(report) => tracing::info!(
                        reported = report.reported.len(),
                        lost_deals = report.lost_deals.len(),
                        segments_queued = report.segments_queued,
                        closed = report.closed.len(),
                        "chain watcher round"
                    ),
                    Err(err) => {
                        tracing::warn!(%err, "the chain watcher's round failed; will retry")
                    }
                }
                tokio::select! {
                    () = watcher.stop.cancelled() => return,
                    () = tokio::time::sleep(watcher.tuning.interval.max(Duration::from_millis(100))) => {}
                }
            }
        })
    }

    /// One round: reports missed proofs, queues the segments of lost deals
    /// for repair and closes failed deals whose pieces have all moved. What
    /// it learned is written to the book at the end, even if it stopped
    /// early.
    pub async fn check(&self) -> Result<WatchReport, WatchError> {
        let book = self.book.clone();
        let before = blocking(move || book.deal_watches()).await?;
        let mut watches = before.clone();
        let round = self.round(&mut watches).await;
        let changed: Vec<(U256, DealWatch)> = watches
            .into_iter()
            .filter(|(deal, watch)| before.get(deal).copied().unwrap_or_default() != *watch)
            .collect();
        let book = self.book.clone();
        blocking(move || book.put_deal_watches(&changed)).await?;
        round
    }

    /// [`ChainWatcher::check`] with the book's records in `watches`.
    async fn round(
        &self,
        watches: &mut HashMap<U256, DealWatch>,
    ) -> Result<WatchReport, WatchError> {
        let mut report = WatchReport::default();
        let Some(consumer) = self.chain.address() else {
            return Ok(report);
        };
        let node_id = self.store.node_id();
        let deals: Vec<_> = self
            .chain
            .consumer_deals(consumer)
            .await?
            .into_iter()
            .filter(|listed| listed.deal.consumer_node_id == node_id)
            .collect();
        let (_, now) = self.chain.head().await?;
        let clock = self.chain.clock();
        let current = clock.period_at(now);
        let first_open = clock.first_open_period(now);

        let mut lost: BTreeSet<U256> = BTreeSet::new();
        for listed in &deals {
            if self.stop.is_cancelled() {
                return Ok(report);
            }
            let deal = &listed.deal;
            if deal.state.is_running()
                && let Some(missed) = self
                    .report_missed(deal, first_open, watches.entry(deal.id).or_default())
                    .await?
            {
                if missed.settlement.state == DealState::Failed {
                    self.metrics.deals_failed.inc();
                    lost.insert(deal.id);
                }
                report.reported.push(missed);
            }
            if is_lost(deal, listed.listing_status, current) {
                lost.insert(deal.id);
            }
        }
        // Deals the book lists pieces under that the chain no longer lists
        // (closed) are lost too.
        let book = self.book.clone();
        let holding: BTreeMap<U256, u64> = blocking(move || book.all_deal_pieces())
            .await?
            .into_iter()
            .filter(|deal| deal.pieces > 0)
            .map(|deal| (deal.deal, deal.pieces))
            .collect();
        let listed: HashSet<U256> = deals.iter().map(|listed| listed.deal.id).collect();
        lost.extend(holding.keys().filter(|deal| !listed.contains(deal)));
        lost.retain(|deal| holding.contains_key(deal));
        for deal in &lost {
            let watch = watches.entry(*deal).or_default();
            if !watch.lost {
                watch.lost = true;
                self.metrics.deals_lost.inc();
                tracing::warn!(%deal, pieces = holding.get(deal).copied().unwrap_or(0),
                    "a deal holding pieces is lost; queueing its segments for repair");
            }
        }
        if !lost.is_empty() {
            report.segments_queued = self.queue_lost(&lost).await?;
            self.metrics
                .segments_queued
                .inc_by(report.segments_queued as u64);
        }
        report.lost_deals = lost.into_iter().collect();
        for listed in &deals {
            let deal = &listed.deal;
            if deal.state == DealState::Failed
                && !holding.contains_key(&deal.id)
                && !self.stop.is_cancelled()
                && self.close_failed(deal).await?
            {
                report.closed.push(deal.id);
            }
        }
        self.metrics
            .last_round_timestamp
            .set(i64::try_from(crate::s3::now_ms() / 1000).unwrap_or(i64::MAX));
        Ok(report)
    }

    /// Closes the failed `deal` (no piece of the user's is left under it);
    /// returns whether it did.
    async fn close_failed(&self, deal: &Deal) -> Result<bool, WatchError> {
        match self.chain.close_failed(deal.id).await {
            Ok(()) => {
                self.metrics.deals_closed.inc();
                tracing::info!(deal = %deal.id, provider = %deal.provider,
                    repair_reward = deal.repair_reward,
                    "closed a failed deal whose pieces have all moved; its repair reward is credited");
                Ok(true)
            }
            // Closed or reassigned meanwhile (by hand, say): nothing to do.
            Err(err @ (ChainError::Refused(_) | ChainError::Reverted { .. })) => {
                tracing::info!(deal = %deal.id, reason = %err, "did not close a failed deal");
                Ok(false)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Reports the latest closed, committed, unproven and unsettled period
    /// of `deal` (checking at most [`WatchTuning::periods_per_round`]
    /// periods from `watch.proven_to`, which it moves on), if there is one.
    async fn report_missed(
        &self,
        deal: &Deal,
        first_open: u64,
        watch: &mut DealWatch,
    ) -> Result<Option<MissedReport>, WatchError> {
        let start = deal.settled_to.max(deal.fill_by).max(watch.proven_to);
        let stop = first_open
            .min(deal.end)
            .min(start.saturating_add(self.tuning.periods_per_round));
        if start >= stop {
            return Ok(None);
        }
        let commitments = self.chain.commitments(deal.id).await?;
        if commitments.current.is_none() {
            return Ok(None);
        }
        let mut missed = None;
        let mut proven_to = start;
        for period in start.max(commitments.committed_from)..stop {
            if commitments.at(period).is_none() {
                continue;
            }
            if self.chain.is_proven(deal.id, period).await? {
                if missed.is_none() {
                    proven_to = period + 1;
                }
            } else {
                missed = Some(period);
            }
        }
        if missed.is_none() {
            proven_to = stop.max(proven_to);
        }
        watch.proven_to = proven_to;
        let Some(period) = missed else {
            return Ok(None);
        };
        match self.chain.report_missed(deal.id, period).await {
            Ok(settlement) => {
                self.metrics.missed_reports.inc();
                tracing::warn!(deal = %deal.id, provider = %deal.provider, period,
                    slashed = %settlement.slashed, state = %settlement.state.name(),
                    "reported a missed storage proof; the provider was slashed");
                watch.proven_to = settlement.to_period;
                Ok(Some(MissedReport {
                    deal: deal.id,
                    period,
                    settlement,
                }))
            }
            // Settled by someone else meanwhile (the provider's claims, or a
            // late proof in a race): nothing to report.
            Err(err @ (ChainError::Refused(_) | ChainError::Reverted { .. })) => {
                tracing::info!(deal = %deal.id, period, reason = %err, "did not report a missed period");
                Ok(None)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Queues every segment with a piece under one of `lost` for repair,
    /// those pieces marked unhealthy (added to what an earlier task for the
    /// segment marked). Returns how many segments were queued or changed.
    async fn queue_lost(&self, lost: &BTreeSet<U256>) -> Result<usize, WatchError> {
        let book = self.book.clone();
        let lost = lost.clone();
        blocking(move || {
            let manifests = book.all_manifests()?;
            let queued: HashMap<SegmentRef, RepairTask> = book
                .repair_queue()?
                .into_iter()
                .map(|task| (task.segment, task))
                .collect();
            let now = crate::s3::now_ms();
            let mut changed = 0;
            for (bucket, key_id, manifest) in &manifests {
                for (part_index, part) in manifest.parts.iter().enumerate() {
                    for (segment_index, segment) in part.segments.iter().enumerate() {
                        let on_lost: Vec<u16> = segment
                            .pieces
                            .iter()
                            .enumerate()
                            .filter(|(_, piece)| {
                                piece
                                    .placement
                                    .as_ref()
                                    .and_then(parse_placement)
                                    .is_some_and(|(_, deal)| lost.contains(&deal))
                            })
                            .map(|(index, _)| index as u16)
                            .collect();
                        if on_lost.is_empty() {
                            continue;
                        }
                        let segment_ref = SegmentRef {
                            bucket: *bucket,
                            key_id: *key_id,
                            part: part_index as u32,
                            segment: segment_index as u32,
                        };
                        let earlier = queued.get(&segment_ref);
                        let mut unhealthy: BTreeSet<u16> = earlier
                            .map(|task| task.unhealthy.iter().copied().collect())
                            .unwrap_or_default();
                        let before = unhealthy.len();
                        unhealthy.extend(on_lost);
                        if earlier.is_some() && unhealthy.len() == before {
                            continue;
                        }
                        let total = segment.pieces.len();
                        book.queue_repair(&RepairTask {
                            segment: segment_ref,
                            healthy: total.saturating_sub(unhealthy.len()) as u16,
                            unhealthy: unhealthy.into_iter().collect(),
                            queued_ms: earlier.map_or(now, |task| task.queued_ms),
                            attempts: earlier.map_or(0, |task| task.attempts),
                            last_attempt_ms: earlier.map_or(0, |task| task.last_attempt_ms),
                        })?;
                        changed += 1;
                    }
                }
            }
            Ok(changed)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, B256};

    fn deal(state: DealState, end: u64) -> Deal {
        Deal {
            id: U256::from(1),
            provider: Address::ZERO,
            consumer: Address::ZERO,
            rate_per_period: 1,
            end,
            settled_to: 0,
            state,
            missed_run: 0,
            missed_total: 0,
            collateral: 0,
            capacity_bytes: 1,
            fill_by: 0,
            held_back: 0,
            slashed: 0,
            consumer_node_id: B256::ZERO,
            repair_reward: 0,
            term_end: 0,
        }
    }

    #[test]
    fn running_deals_with_listed_providers_are_kept() {
        assert!(!is_lost(
            &deal(DealState::Active, 100),
            ListingStatus::Active,
            10
        ));
        assert!(!is_lost(
            &deal(DealState::Terminating, 100),
            ListingStatus::Paused,
            10
        ));
    }

    #[test]
    fn failed_ending_exited_and_orphaned_deals_are_lost() {
        let active = ListingStatus::Active;
        assert!(is_lost(&deal(DealState::Failed, 100), active, 10));
        assert!(is_lost(&deal(DealState::Closed, 100), active, 10));
        // Its last period is the current one: move the pieces now.
        assert!(is_lost(&deal(DealState::Active, 11), active, 10));
        assert!(is_lost(&deal(DealState::Exiting, 100), active, 10));
        assert!(is_lost(
            &deal(DealState::Active, 100),
            ListingStatus::None,
            10
        ));
    }

    #[test]
    fn rounds_are_a_quarter_period_within_bounds() {
        assert_eq!(WatchTuning::for_period(20).interval, Duration::from_secs(5));
        assert_eq!(WatchTuning::for_period(2).interval, Duration::from_secs(1));
        assert_eq!(
            WatchTuning::for_period(86_400).interval,
            Duration::from_secs(60)
        );
    }
}
