//! The piece store of a running gateway: pieces on providers, over iroh,
//! under the user's deals on chain.
//!
//! [`MeshPieceStore`] implements [`PieceStore`]:
//!
//! - **Deals.** It keeps the user's running deals (from the chain's
//!   `DealCreated` events, refreshed periodically and whenever placement
//!   comes up short) and how much room each has left, in proof-tree slots.
//!   When too few deals have room it opens new ones itself from the market
//!   index, with providers whose listings accept automatically, within a
//!   [`DealBudget`].
//! - **Writes.** The n pieces of a segment go to n distinct providers
//!   (the `placement` crate's provider selection), spread over regions; a failed piece is retried on a
//!   spare provider. Each stored piece is audited (a few random leaves with
//!   their proofs against the bytes sent) before it counts. Once the
//!   policy's success threshold is stored the slowest uploads are
//!   cancelled; below it the segment fails with
//!   [`PieceStoreError::NotEnoughStored`] and what was stored is deleted.
//! - **Reads.** Pieces are fetched from the healthiest, fastest providers
//!   first, `needed` plus a few spares at once; the rest are cancelled as
//!   soon as `needed` have arrived. A range inside one data piece is one
//!   request to one provider.
//! - **Deletes** remove pieces from their providers and from their deals'
//!   slot lists in the book, which frees room on the deal.
//! - **Commitments.** Every stored piece is listed in its deal's slots in
//!   the book; a background task co-signs each changed deal's commitment
//!   (root over the slots, leaf count, version + 1) with its provider and
//!   posts it on chain, at most once per deal per period.
//!
//! It is not where segments are encoded (the pipeline) nor where the piece
//! protocol or the contracts are defined (`dbytes-mesh`, `dbytes-ledger`).
//!
//! Main types: [`MeshPieceStore`] (start it with [`MeshStoreConfig`]),
//! [`DealBudget`], [`MeshTuning`], [`MeshMetrics`], [`CommitReport`].

mod commit;
mod directory;
mod fetch;
mod market;
mod metrics;
mod select;
mod upload;

use crate::lock;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256};
use bytes::Bytes;
use dbytes_ledger::book::{Book, BookError, Placement};
use dbytes_ledger::chain::{ChainClient, ChainError};
use dbytes_ledger::keys::NodeSecret;
use dbytes_ledger::market::{MarketError, MarketIndex};
use dbytes_ledger::piece::PieceId;
use dbytes_mesh::audit::AuditMismatch;
use dbytes_mesh::client::{ClientConfig, ClientError, PieceClient};
use dbytes_mesh::transport::{TransportConfig, TransportError, bind_endpoint};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::codec::{EncodedSegment, SegmentLayout};
use crate::pipeline::{PieceRequest, PieceStore, PieceStoreError};

pub use commit::CommitReport;
pub use metrics::MeshMetrics;
pub use upload::PlacedPiece;

pub(crate) use directory::parse_placement;
use directory::{DealEntry, Directory};

/// How much the gateway may spend opening deals by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DealBudget {
    /// The most escrow, in token base units, the user's running deals may
    /// hold in all (deals opened by hand count too).
    pub budget: U256,
    /// Never pay more than this per GiB-month, in token base units.
    pub max_price_per_gib_month: u128,
    /// How long new deals run, in periods.
    pub deal_periods: u32,
    /// How many bytes each new deal reserves.
    pub deal_capacity_bytes: u64,
}

/// How the store behaves; the defaults suit a gateway in production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshTuning {
    /// Leaves audited after each piece is stored (a root over data altered
    /// in a fraction f of its leaves passes with probability (1-f)^leaves).
    pub audit_leaves: usize,
    /// One stored piece in this many is audited before it counts, drawn
    /// after the provider reported its root (1: every piece). An audit
    /// makes the provider re-read and re-hash the whole piece; a provider
    /// lying about the roots of m pieces escapes with (1 - 1/this)^m.
    pub audit_one_in: u32,
    /// Extra providers chosen per segment to retry failed pieces on.
    pub spare_providers: usize,
    /// Extra pieces requested at once on a read beyond those needed.
    pub read_spares: usize,
    /// A read waits this long for any provider to answer before it asks
    /// one more (the long tail: a provider that died with its connection
    /// open would otherwise hold the read until its timeout).
    pub hedge_after: Duration,
    /// How often the deal list is read again from the chain.
    pub refresh_interval: Duration,
    /// How often changed deals are committed (at most once per period each).
    pub commit_interval: Duration,
    /// How long a provider that failed twice in a row is skipped (doubling
    /// with further failures).
    pub down_for: Duration,
}

impl Default for MeshTuning {
    fn default() -> Self {
        MeshTuning {
            audit_leaves: 8,
            audit_one_in: 4,
            spare_providers: 2,
            read_spares: 1,
            hedge_after: Duration::from_secs(2),
            refresh_interval: Duration::from_secs(60),
            commit_interval: Duration::from_secs(60),
            down_for: Duration::from_secs(30),
        }
    }
}

/// What a [`MeshPieceStore`] needs.
pub struct MeshStoreConfig {
    /// The gateway's iroh node key: the node id on the user's deals.
    pub node_secret: NodeSecret,
    /// The chain, with the user's (consumer's) wallet.
    pub chain: ChainClient,
    /// The gateway's book, where each deal's slots are kept.
    pub book: Book,
    /// The market index to open new deals from; `None` opens none.
    pub market: Option<Arc<MarketIndex>>,
    /// Limits on opening deals; `None` opens none.
    pub budget: Option<DealBudget>,
    /// The gateway's endpoint.
    pub transport: TransportConfig,
    /// Timeouts of requests to providers.
    pub client: ClientConfig,
    /// Behaviour.
    pub tuning: MeshTuning,
}

impl std::fmt::Debug for MeshStoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshStoreConfig")
            .field("budget", &self.budget)
            .field("transport", &self.transport)
            .field("tuning", &self.tuning)
            .finish_non_exhaustive()
    }
}

/// Why the mesh store could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum MeshStoreError {
    /// The chain client has no wallet: the store acts as the user.
    #[error(
        "the chain client has no wallet; the gateway needs the user's wallet to find and pay for deals"
    )]
    NoWallet,
    /// The endpoint did not bind.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The chain could not be read or refused a transaction.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The book failed.
    #[error(transparent)]
    Book(#[from] BookError),
    /// The market index failed.
    #[error(transparent)]
    Market(#[from] MarketError),
    /// A provider failed or refused.
    #[error(transparent)]
    Provider(#[from] ClientError),
    /// A commitment could not be built from a deal's slots.
    #[error("the commitment of deal {deal} cannot be built: {reason}")]
    Commitment {
        /// The deal.
        deal: U256,
        /// Why.
        reason: String,
    },
    /// A background task failed.
    #[error("a mesh store task failed: {0}")]
    Task(String),
}

/// The state the store's handles and tasks share.
struct Inner {
    client: PieceClient,
    chain: ChainClient,
    consumer: Address,
    node_id: B256,
    book: Book,
    market: Option<Arc<MarketIndex>>,
    budget: Option<DealBudget>,
    tuning: MeshTuning,
    metrics: MeshMetrics,
    directory: Mutex<Directory>,
    /// `(deal, piece)` uploads in flight: a provider may hold them before
    /// the book lists them.
    in_flight: Mutex<HashSet<(U256, PieceId)>>,
    /// One round of opening deals at a time.
    opening: tokio::sync::Mutex<()>,
    /// One deal refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
    /// One commitment round at a time.
    committing: tokio::sync::Mutex<()>,
    stop: CancellationToken,
}

/// Pieces on providers under the user's deals (see the module docs).
/// Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct MeshPieceStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MeshPieceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshPieceStore")
            .field("consumer", &self.inner.consumer)
            .field("node_id", &self.inner.node_id)
            .finish_non_exhaustive()
    }
}

/// One of the user's deals as the store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DealView {
    /// The deal.
    pub deal: U256,
    /// The provider's wallet.
    pub provider: Address,
    /// The provider's iroh node id.
    pub provider_node: B256,
    /// Bytes the deal pays for.
    pub capacity_bytes: u64,
    /// Whether it takes pieces now.
    pub live: bool,
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BookError> + Send + 'static,
) -> Result<T, MeshStoreError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => Ok(result?),
        Err(err) => Err(MeshStoreError::Task(err.to_string())),
    }
}

impl MeshPieceStore {
    /// Binds the gateway's endpoint with `config.node_secret`, reads the
    /// user's deals from the chain and starts the background task that
    /// refreshes them and commits changed deals. Returns the store and the
    /// task's handle (it ends after [`MeshPieceStore::shutdown`]).
    pub async fn start(
        config: MeshStoreConfig,
    ) -> Result<(MeshPieceStore, JoinHandle<()>), MeshStoreError> {
        let consumer = config.chain.address().ok_or(MeshStoreError::NoWallet)?;
        let endpoint = bind_endpoint(&config.node_secret, &config.transport, vec![]).await?;
        let node_id = B256::from(*endpoint.id().as_bytes());
        let store = MeshPieceStore {
            inner: Arc::new(Inner {
                client: PieceClient::new(endpoint, config.client),
                chain: config.chain,
                consumer,
                node_id,
                book: config.book,
                market: config.market,
                budget: config.budget,
                tuning: config.tuning,
                metrics: MeshMetrics::new(),
                directory: Mutex::default(),
                in_flight: Mutex::default(),
                opening: tokio::sync::Mutex::new(()),
                refreshing: tokio::sync::Mutex::new(()),
                committing: tokio::sync::Mutex::new(()),
                stop: CancellationToken::new(),
            }),
        };
        if let Err(err) = store.refresh_deals().await {
            store.inner.client.endpoint().close().await;
            return Err(err);
        }
        let task = tokio::spawn(store.clone().run());
        Ok((store, task))
    }

    /// Stops the background task and closes the endpoint (requests in
    /// flight fail).
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        self.inner.client.endpoint().close().await;
    }

    /// The gateway's iroh node id (what the user's deals must name).
    pub fn node_id(&self) -> B256 {
        self.inner.node_id
    }

    /// The user's wallet address.
    pub fn consumer(&self) -> Address {
        self.inner.consumer
    }

    /// The store's metrics (register them to export them).
    pub fn metrics(&self) -> &MeshMetrics {
        &self.inner.metrics
    }

    /// The user's deals as last read from the chain.
    pub fn deals(&self) -> Vec<DealView> {
        lock(&self.inner.directory)
            .deals()
            .map(|entry| DealView {
                deal: entry.deal,
                provider: entry.provider,
                provider_node: B256::from(*entry.node.as_bytes()),
                capacity_bytes: entry.capacity_bytes,
                live: entry.live,
            })
            .collect()
    }

    /// Reads the user's deals from the chain again, and the pieces the book
    /// lists on each.
    pub async fn refresh_deals(&self) -> Result<(), MeshStoreError> {
        let inner = &self.inner;
        let _one = inner.refreshing.lock().await;
        let listed = inner.chain.consumer_deals(inner.consumer).await?;
        let current = inner.chain.current_period().await?;
        let period_secs = inner.chain.deployment().parameters.period_secs;
        let entries: Vec<DealEntry> = listed
            .iter()
            .filter(|deal| deal.deal.consumer_node_id == inner.node_id)
            .filter_map(|deal| DealEntry::from_chain(deal, current, period_secs))
            .collect();
        let mut entries = entries;
        if let Some(market) = inner.market.clone() {
            // The market's proof record of each provider, for placement.
            let providers: Vec<Address> = entries.iter().map(|entry| entry.provider).collect();
            let records = tokio::task::spawn_blocking(move || {
                providers
                    .iter()
                    .map(|provider| market.provider(*provider).ok().flatten())
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|err| MeshStoreError::Task(err.to_string()))?;
            for (entry, record) in entries.iter_mut().zip(records) {
                if let Some(record) = record.filter(|record| record.proofs + record.missed > 0) {
                    entry.proof_score = record.reputation.score();
                    entry.proofs_made = record.proofs;
                }
            }
        }
        let book = inner.book.clone();
        let pieces = blocking(move || book.all_deal_pieces()).await?;
        let spend: U256 = entries
            .iter()
            .filter(|entry| entry.live)
            .map(|entry| entry.escrow)
            .fold(U256::ZERO, |sum, escrow| sum.saturating_add(escrow));
        inner
            .metrics
            .deal_spend_tokens
            .set(spend.saturating_to::<u128>() as f64 / 1e18);
        {
            let mut directory = lock(&inner.directory);
            directory.set_deals(entries);
            directory.set_listed(&pieces);
        }
        self.update_piece_metrics();
        Ok(())
    }

    fn update_piece_metrics(&self) {
        let counts = lock(&self.inner.directory).pieces_per_provider();
        for (provider, pieces) in counts {
            self.inner
                .metrics
                .pieces_per_provider
                .with_label_values(&[provider.as_str()])
                .set(i64::try_from(pieces).unwrap_or(i64::MAX));
        }
    }

    /// The background task: refreshes deals and commits changed ones until
    /// shut down.
    async fn run(self) {
        let tuning = self.inner.tuning.clone();
        let tick = tuning
            .refresh_interval
            .min(tuning.commit_interval)
            .max(Duration::from_millis(50));
        let mut last_refresh = Instant::now();
        let mut last_commit = Instant::now()
            .checked_sub(tuning.commit_interval)
            .unwrap_or_else(Instant::now);
        loop {
            tokio::select! {
                () = self.inner.stop.cancelled() => return,
                () = tokio::time::sleep(tick) => {}
            }
            if last_refresh.elapsed() >= tuning.refresh_interval {
                last_refresh = Instant::now();
                if let Err(err) = self.refresh_deals().await {
                    tracing::warn!(%err, "reading the user's deals failed; will retry");
                }
            }
            if last_commit.elapsed() >= tuning.commit_interval {
                last_commit = Instant::now();
                match self.commit_due().await {
                    Ok(report) if report.posted.is_empty() && report.failed.is_empty() => {}
                    Ok(report) => tracing::info!(
                        posted = report.posted.len(),
                        failed = report.failed.len(),
                        "deal commitments"
                    ),
                    Err(err) => tracing::warn!(%err, "committing deals failed; will retry"),
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl PieceStore for MeshPieceStore {
    async fn store_segment(
        &self,
        segment: &EncodedSegment,
        layout: &SegmentLayout,
    ) -> Result<Vec<Option<Placement>>, PieceStoreError> {
        self.store_pieces(segment, layout).await
    }

    async fn fetch_pieces(
        &self,
        requests: &[PieceRequest],
        needed: usize,
    ) -> Result<Vec<Option<Bytes>>, PieceStoreError> {
        Ok(self.fetch(requests, needed).await)
    }

    async fn delete_pieces(&self, pieces: &[(PieceId, Placement)]) -> Result<(), PieceStoreError> {
        self.delete(pieces).await
    }
}

impl MeshPieceStore {
    /// Audits one stored piece off chain: asks its provider for
    /// [`AUDIT_PIECE_LEAVES`] random leaves with their Merkle paths and
    /// checks that each leaf, hashed up its path, gives the root and leaf
    /// count the piece's deal slot recorded (the positional SHA-256 scheme
    /// the contracts verify). A provider that kept only the tree cannot
    /// answer: it needs the leaves' bytes. A root over data altered in a
    /// fraction f of its leaves passes with probability (1-f)^leaves.
    /// `false` when the provider is unreachable, no longer holds the piece,
    /// refuses, or answers for other bytes.
    pub async fn audit_piece(&self, id: PieceId, placement: &Placement) -> bool {
        let Some((node, deal)) = directory::parse_placement(placement) else {
            return false;
        };
        let book = self.inner.book.clone();
        let slots = match blocking(move || book.deal_slots(deal)).await {
            Ok(slots) => slots,
            Err(_) => return true, // the book, not the provider, failed
        };
        let Some(slot) = slots.into_iter().find(|slot| slot.piece == id) else {
            return false;
        };
        let asked = dbytes_mesh::audit::pick_leaves(
            &mut rand::thread_rng(),
            slot.leaf_count,
            AUDIT_PIECE_LEAVES,
        );
        let addr = lock(&self.inner.directory).addr_of(node);
        let reply = self
            .inner
            .client
            .audit(&addr, dbytes_mesh::deal::DealId(deal), id, asked.clone())
            .await;
        let verdict = match reply {
            Ok(reply) => check_audit_reply(&slot, &asked, &reply).map_err(|err| err.to_string()),
            Err(err) => Err(err.to_string()),
        };
        match verdict {
            Ok(()) => true,
            Err(reason) => {
                tracing::info!(piece = %id, %deal, provider = %placement.provider, %reason,
                    "a piece failed its audit");
                false
            }
        }
    }
}

/// Leaves asked for per piece in [`MeshPieceStore::audit_piece`]: a piece
/// with a tenth of its leaves gone or altered fails with probability
/// 1 - 0.9^4 ≈ 34 % per audit, and every further audit draws afresh.
pub const AUDIT_PIECE_LEAVES: usize = 4;

/// Checks an audit `reply` for leaves `asked` against the `slot` the
/// piece's deal commits to: same root and leaf count, one proof per leaf in
/// the order asked, each leaf hashing up its path to the root.
fn check_audit_reply(
    slot: &dbytes_ledger::book::DealSlot,
    asked: &[u64],
    reply: &dbytes_mesh::wire::AuditReply,
) -> Result<(), AuditMismatch> {
    if reply.leaf_count != slot.leaf_count {
        return Err(AuditMismatch::WrongLeafCount {
            expected: slot.leaf_count,
            reported: reply.leaf_count,
        });
    }
    dbytes_mesh::audit::check_proofs(slot.root, slot.leaf_count, asked, reply)
}

#[cfg(test)]
mod tests {
    use dbytes_ledger::book::DealSlot;
    use dbytes_ledger::commitment::{LEAF_SIZE, PieceTree};
    use dbytes_mesh::wire::AuditReply;

    use super::*;

    fn piece_and_slot() -> (Vec<u8>, PieceTree, DealSlot) {
        let piece: Vec<u8> = (0..16 * LEAF_SIZE + 9).map(|i| (i * 7) as u8).collect();
        let tree = PieceTree::build(&piece);
        let slot = DealSlot {
            piece: PieceId::of(&piece),
            root: tree.root(),
            leaf_count: tree.leaf_count(),
        };
        (piece, tree, slot)
    }

    fn honest(piece: &[u8], tree: &PieceTree, asked: &[u64]) -> AuditReply {
        AuditReply {
            root: tree.root(),
            leaf_count: tree.leaf_count(),
            proofs: asked
                .iter()
                .map(|&index| tree.prove(piece, index).unwrap())
                .collect(),
        }
    }

    #[test]
    fn an_honest_reply_passes() {
        let (piece, tree, slot) = piece_and_slot();
        let asked = [0, 7, 16];
        assert_eq!(
            check_audit_reply(&slot, &asked, &honest(&piece, &tree, &asked)),
            Ok(())
        );
    }

    #[test]
    fn a_provider_that_kept_only_the_tree_fails() {
        // It has every path but not the leaves' bytes: whatever it sends as
        // a leaf does not hash to the root.
        let (piece, tree, slot) = piece_and_slot();
        let asked = [3, 9];
        let mut reply = honest(&piece, &tree, &asked);
        for proof in &mut reply.proofs {
            proof.leaf = vec![0u8; LEAF_SIZE].into();
        }
        assert!(matches!(
            check_audit_reply(&slot, &asked, &reply),
            Err(AuditMismatch::BadProof { index: 3, .. })
        ));
        // One flipped bit in one leaf is enough.
        let mut reply = honest(&piece, &tree, &asked);
        let mut leaf = reply.proofs[1].leaf.to_vec();
        leaf[100] ^= 1;
        reply.proofs[1].leaf = leaf.into();
        assert!(matches!(
            check_audit_reply(&slot, &asked, &reply),
            Err(AuditMismatch::BadProof { index: 9, .. })
        ));
    }

    #[test]
    fn replies_for_other_pieces_or_leaves_fail() {
        let (piece, tree, slot) = piece_and_slot();
        let asked = [1, 2];
        // Proofs of other leaves than those asked for.
        let reply = honest(&piece, &tree, &[2, 1]);
        assert!(matches!(
            check_audit_reply(&slot, &asked, &reply),
            Err(AuditMismatch::WrongIndex { .. })
        ));
        // Too few proofs.
        let reply = honest(&piece, &tree, &[1]);
        assert!(matches!(
            check_audit_reply(&slot, &asked, &reply),
            Err(AuditMismatch::WrongCount { .. })
        ));
        // An honest answer for another piece.
        let other: Vec<u8> = piece.iter().map(|byte| byte ^ 0xff).collect();
        let other_tree = PieceTree::build(&other);
        assert_eq!(
            check_audit_reply(&slot, &asked, &honest(&other, &other_tree, &asked)),
            Err(AuditMismatch::WrongRoot)
        );
        // The slot's root with another leaf count.
        let mut reply = honest(&piece, &tree, &asked);
        reply.leaf_count += 1;
        assert!(matches!(
            check_audit_reply(&slot, &asked, &reply),
            Err(AuditMismatch::WrongLeafCount { .. })
        ));
    }
}
