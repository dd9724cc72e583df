//! The provider daemon: a [`ProviderNode`] serving chain deals, plus the
//! loops that make it earn without attention.
//!
//! [`ProviderDaemon::start`] opens the wallet, connects to the chain, starts
//! the node with the marketplace as its deal authority ([`ChainDeals`]) and
//! its wallet as commitment signer ([`ChainSigner`], recording every signed
//! commitment so it can prove it later), serves `/metrics`, writes
//! `node.json` (how to dial it) and runs four loops:
//!
//! - listing ([`listing`]): registers or updates the listing to match the
//!   config and tops up the collateral pool;
//! - deals ([`deals`]): reads new deal events forward from where it
//!   stopped (saved in `deal_scan.json`), sends the operator's queued
//!   decisions ([`decisions`]: the `deals accept|decline` command hands
//!   them over so two processes never send from one wallet at once), and
//!   accepts or declines the other proposals by the `[policy]` rules (or
//!   leaves them to the operator);
//! - proofs ([`proofs`]): each period, anchors the seed, builds the
//!   challenged proofs from the store and submits them in one transaction,
//!   well before the window closes; counts proofs made and missed;
//! - claims ([`claims`]): settles the deals (bounded) and withdraws credit.
//!
//! Each loop retries with exponential backoff and jitter: an RPC outage
//! logs a warning and delays, a panic in one run is logged, and neither
//! stops the node or the other loops. [`ProviderDaemon::shutdown`] stops
//! everything.
//!
//! What it is not: the piece protocol ([`crate::provider`]) or the chain
//! client (`dbytes_ledger::chain`). Main types: [`ProviderDaemon`],
//! [`config::DaemonConfig`], [`state::NodeFile`], [`state::StatusFile`],
//! [`init::init_provider`], [`operator`] (what `dbytes provider status` and
//! `deals` do).

pub mod claims;
pub mod config;
pub mod deals;
pub mod decisions;
pub mod exporter;
pub mod init;
pub mod listing;
pub mod operator;
pub mod policy;
pub mod proofs;
pub mod prove;
pub mod state;

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use dbytes_ledger::chain::{ChainClient, ChainError, Deal, Deployment, RetryPolicy, WalletSource};
use iroh::{EndpointAddr, EndpointId};
use prometheus::Registry;
use rand::Rng;
use tokio::task::{JoinHandle, spawn_blocking};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use zeroize::Zeroizing;

use crate::chain::{ChainDeals, ChainSigner, DEFAULT_DEAL_TTL};
use crate::commitment::{Commitment, CommitmentSigner, SignError};
use crate::deal::DealTerms;
use crate::metrics::ProviderMetrics;
use crate::provider::{ProviderError, ProviderNode};
use crate::settings::SettingsError;
use crate::store::PieceStore;
use crate::transport::{TransportError, load_or_create_node_secret, node_id};
use config::{AcceptRules, ConfigError, DaemonConfig, IntervalSettings, ListingPlan};
use decisions::DecisionQueue;
use state::{CommitmentBook, DealScan, NodeFile, StateError, StatusFile};

/// Why the daemon did not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The `[mesh]` settings are unusable.
    #[error("[mesh]: {0}")]
    Settings(#[from] SettingsError),
    /// The wallet, deployment or chain failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The node key could not be read or made.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The provider node did not start.
    #[error(transparent)]
    Node(#[from] ProviderError),
    /// A state file could not be written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The data directory or the metrics address is unusable.
    #[error("could not {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A start-up task failed.
    #[error("a start-up task failed: {0}")]
    Task(String),
    /// The daemon did not carry out an operator's decision.
    #[error("{0}")]
    Decision(String),
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Signs with the provider's wallet, after recording the commitment's
/// piece order durably: a commitment the provider cannot later prove must
/// never be signed.
struct RecordingSigner {
    signer: ChainSigner,
    book: CommitmentBook,
}

impl CommitmentSigner for RecordingSigner {
    async fn sign_commitment(
        &self,
        commitment: &Commitment,
        terms: &DealTerms,
    ) -> Result<Vec<u8>, SignError> {
        let book = self.book.clone();
        let record = commitment.clone();
        spawn_blocking(move || book.record(&record))
            .await
            .map_err(|err| SignError::Failed(format!("recording the commitment failed: {err}")))?
            .map_err(|err| SignError::Failed(format!("recording the commitment failed: {err}")))?;
        self.signer.sign_commitment(commitment, terms).await
    }
}

/// What the loops share.
pub(crate) struct Context {
    client: ChainClient,
    me: Address,
    node_id: B256,
    bound: Vec<SocketAddr>,
    plan: ListingPlan,
    rules: AcceptRules,
    intervals: IntervalSettings,
    deals: Arc<ChainDeals>,
    store: PieceStore,
    book: CommitmentBook,
    metrics: ProviderMetrics,
    status: Mutex<StatusFile>,
    known: Mutex<Vec<Deal>>,
    /// `(deal, period)` known to be proven, so each run asks the chain only
    /// about what is still due.
    proven: Mutex<HashSet<(U256, u64)>>,
    /// The data directory (state files).
    data_dir: PathBuf,
    /// How far the deal events are read (saved in the data dir).
    scan: Mutex<DealScan>,
    /// The operator's decisions waiting to be sent.
    decisions: DecisionQueue,
}

impl Context {
    fn status(&self) -> MutexGuard<'_, StatusFile> {
        // A poisoned lock means a loop panicked mid-update of plain counters.
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn known(&self) -> Vec<Deal> {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_known(&self, deals: Vec<Deal>) {
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) = deals;
    }

    fn scan(&self) -> DealScan {
        self.scan.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_scan(&self, scan: DealScan) {
        *self.scan.lock().unwrap_or_else(|e| e.into_inner()) = scan;
    }

    fn is_known_proven(&self, deal: U256, period: u64) -> bool {
        self.proven
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(deal, period))
    }

    /// Remembers that `deal` is proven for `period`, forgetting periods long
    /// closed (they are never asked about again).
    fn mark_proven(&self, deal: U256, period: u64) {
        let mut proven = self.proven.lock().unwrap_or_else(|e| e.into_inner());
        proven.retain(|(_, kept)| kept + 2 >= period);
        proven.insert((deal, period));
    }
}

/// Why one run of a loop failed.
pub(crate) type LoopResult = Result<(), String>;

/// The delay before retry number `failures` (1, 2, ...): doubling from one
/// second up to `max`, with ±25 % jitter so providers hit by the same outage
/// do not retry in lockstep.
pub fn backoff(failures: u32, max: Duration) -> Duration {
    let base = Duration::from_secs(1)
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(max);
    let jitter = rand::thread_rng().gen_range(0.75..=1.25);
    base.mul_f64(jitter)
}

/// Runs `run` every `every` until `stop`, backing off after failures; a run
/// that panics counts as a failure.
fn spawn_loop<F, Fut>(
    name: &'static str,
    context: Arc<Context>,
    every: Duration,
    stop: CancellationToken,
    run: F,
) -> JoinHandle<()>
where
    F: Fn(Arc<Context>) -> Fut + Send + 'static,
    Fut: Future<Output = LoopResult> + Send + 'static,
{
    tokio::spawn(async move {
        let max_backoff = Duration::from_secs(context.intervals.max_backoff_secs.max(1));
        let mut failures = 0u32;
        loop {
            let mut attempt = tokio::spawn(run(context.clone()));
            let result = tokio::select! {
                _ = stop.cancelled() => {
                    attempt.abort();
                    return;
                }
                joined = &mut attempt => {
                    joined.unwrap_or_else(|err| Err(format!("the run panicked: {err}")))
                }
            };
            let pause = match result {
                Ok(()) => {
                    if failures > 0 {
                        info!(chain_loop = name, "recovered");
                    }
                    failures = 0;
                    context.status().errors.remove(name);
                    every
                }
                Err(reason) => {
                    failures += 1;
                    let pause = backoff(failures, max_backoff);
                    warn!(chain_loop = name, failures, retry_in = ?pause, %reason, "a chain loop failed; retrying");
                    context
                        .metrics
                        .chain_errors
                        .with_label_values(&[name])
                        .inc();
                    context.status().errors.insert(name.to_string(), reason);
                    pause
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    })
}

/// Rewrites `status.json` when it changed (and at least once a minute).
fn spawn_status_writer(
    context: Arc<Context>,
    data_dir: PathBuf,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<(StatusFile, Instant)> = None;
        loop {
            let mut status = context.status().clone();
            let usage = context.store.usage();
            status.capacity_bytes = usage.capacity_bytes;
            status.used_bytes = usage.used_bytes;
            status.pieces = usage.piece_count;
            let stale = last.as_ref().is_none_or(|(saved, at)| {
                *saved != status || at.elapsed() > Duration::from_secs(60)
            });
            if stale {
                let mut stamped = status.clone();
                stamped.updated_at = unix_now();
                let dir = data_dir.clone();
                match spawn_blocking(move || stamped.save(&dir)).await {
                    Ok(Ok(())) => last = Some((status, Instant::now())),
                    Ok(Err(err)) => warn!(error = %err, "could not write the status file"),
                    Err(err) => error!(error = %err, "the status writer failed"),
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    })
}

/// A running provider daemon.
#[derive(Debug)]
pub struct ProviderDaemon {
    node: ProviderNode,
    wallet: Address,
    metrics_addr: Option<SocketAddr>,
    registry: Registry,
    data_dir: PathBuf,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Opens the wallet named by `config` (decrypting a keystore: blocking,
/// deliberately slow).
pub async fn open_wallet(config: &DaemonConfig) -> Result<PrivateKeySigner, DaemonError> {
    let source = WalletSource::Keystore {
        path: config.wallet.keystore.clone(),
        password: Zeroizing::new(config.password()?.to_string()),
        index: config.wallet.account,
    };
    spawn_blocking(move || source.open())
        .await
        .map_err(|err| DaemonError::Task(err.to_string()))?
        .map_err(DaemonError::from)
}

/// Connects to the chain of `config`, retrying an unreachable endpoint for
/// `[chain] connect_timeout_secs`; `wallet` signs, if given.
pub async fn connect(
    config: &DaemonConfig,
    wallet: Option<PrivateKeySigner>,
) -> Result<ChainClient, DaemonError> {
    let deployment = Deployment::load(&config.chain.deployment)?;
    // 0: keep trying for as long as it takes.
    let deadline = (config.chain.connect_timeout_secs > 0)
        .then(|| Instant::now() + Duration::from_secs(config.chain.connect_timeout_secs));
    let mut failures = 0;
    loop {
        match ChainClient::connect(
            deployment.clone(),
            config.chain.rpc_url.as_deref(),
            wallet.clone(),
        )
        .await
        {
            Ok(client) => {
                // The loops back off on their own; a read retries briefly.
                let retry = RetryPolicy {
                    attempts: 2,
                    first_delay: Duration::from_millis(250),
                    max_delay: Duration::from_secs(1),
                };
                return Ok(client.with_retry(retry, Duration::from_secs(60)));
            }
            Err(err) if err.is_transient() && deadline.is_none_or(|at| Instant::now() < at) => {
                failures += 1;
                let pause = backoff(failures, Duration::from_secs(10));
                warn!(error = %err, retry_in = ?pause, "the chain is unreachable; retrying");
                tokio::time::sleep(pause).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

impl ProviderDaemon {
    /// Starts a provider from `config`: opens the wallet (password from
    /// `DBYTES_PROVIDER_PASSWORD` or `[wallet] password_file`), connects to
    /// the chain (waiting up to `[chain] connect_timeout_secs` for it),
    /// starts the node, the metrics endpoint and the chain loops, and
    /// writes `<data dir>/node.json`. Relative paths in `config` are taken
    /// as they are (see [`DaemonConfig::load`], which resolves them).
    pub async fn start(config: DaemonConfig) -> Result<ProviderDaemon, DaemonError> {
        let checked = config.check()?;
        let wallet = open_wallet(&config).await?;
        let me = wallet.address();
        let client = connect(&config, Some(wallet.clone())).await?;
        let data_dir = config.mesh.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| DaemonError::Io {
            action: format!("create the data directory {}", data_dir.display()),
            source,
        })?;
        let secret = load_or_create_node_secret(&config.mesh.node_key_path())?;
        let mut provider_config = config.mesh.to_config(Some(me))?;
        provider_config.service.response_delay =
            Duration::from_millis(config.faults.response_delay_ms);
        if config.faults.response_delay_ms > 0 {
            warn!(
                response_delay_ms = config.faults.response_delay_ms,
                "fault injection: piece answers are delayed ([faults] is for tests only)"
            );
        }
        let book = CommitmentBook::open(&data_dir)?;
        let deals = Arc::new(ChainDeals::new(client.clone(), DEFAULT_DEAL_TTL));
        let signer = RecordingSigner {
            signer: ChainSigner::new(wallet, client.deployment().clone()),
            book: book.clone(),
        };
        let node = ProviderNode::start(&provider_config, &secret, deals.clone(), signer).await?;

        let registry = Registry::new();
        let metrics = node.metrics().clone();
        // Invariant: a fresh registry holds no metric yet, so names cannot clash.
        metrics
            .register(&registry)
            .map_err(|err| DaemonError::Task(err.to_string()))?;
        metrics
            .capacity_bytes
            .set(i64::try_from(provider_config.store.capacity_bytes).unwrap_or(i64::MAX));
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        let metrics_addr = match checked.metrics_addr {
            Some(addr) => {
                let (bound, task) =
                    exporter::serve_metrics(addr, registry.clone(), stop.child_token())
                        .await
                        .map_err(|source| DaemonError::Io {
                            action: format!("serve metrics on {addr}"),
                            source,
                        })?;
                tasks.push(task);
                Some(bound)
            }
            None => None,
        };

        let id = node_id(&secret);
        let bound: Vec<SocketAddr> = node.addr().ip_addrs().copied().collect();
        let started_at = unix_now();
        let node_file = NodeFile {
            node_id: id.to_string(),
            addrs: bound.clone(),
            wallet: me,
            metrics_addr,
            pid: std::process::id(),
            started_at,
        };
        let mut status = StatusFile::load(&data_dir)
            .ok()
            .flatten()
            .unwrap_or_default();
        status.started_at = started_at;
        status.pid = std::process::id();
        status.errors.clear();
        let deployment = client.deployment();
        let scan = DealScan::resume(
            &data_dir,
            DealScan::start(
                deployment.contracts.marketplace,
                deployment.deploy_block_hash,
                deployment.deploy_block,
            ),
        );
        metrics
            .deal_scan_next_block
            .set(i64::try_from(scan.next_block).unwrap_or(i64::MAX));
        info!(
            from_block = scan.next_block,
            deals = scan.deal_ids.len(),
            "reading deal events"
        );
        let context = Arc::new(Context {
            client,
            me,
            node_id: B256::from(*id.as_bytes()),
            bound,
            plan: checked.listing,
            rules: checked.rules,
            intervals: config.intervals.clone(),
            deals,
            store: node.store().clone(),
            book,
            metrics,
            status: Mutex::new(status),
            known: Mutex::new(Vec::new()),
            proven: Mutex::new(HashSet::new()),
            data_dir: data_dir.clone(),
            scan: Mutex::new(scan),
            decisions: DecisionQueue::new(&data_dir),
        });
        let every = |secs| Duration::from_secs(secs).max(Duration::from_millis(200));
        let intervals = &config.intervals;
        tasks.push(spawn_loop(
            "listing",
            context.clone(),
            every(intervals.listing_secs),
            stop.child_token(),
            listing::run,
        ));
        tasks.push(spawn_loop(
            "deals",
            context.clone(),
            every(intervals.deals_secs),
            stop.child_token(),
            deals::run,
        ));
        tasks.push(spawn_loop(
            "proofs",
            context.clone(),
            every(intervals.proofs_secs),
            stop.child_token(),
            proofs::run,
        ));
        tasks.push(spawn_loop(
            "claims",
            context.clone(),
            every(intervals.claims_secs),
            stop.child_token(),
            claims::run,
        ));
        tasks.push(spawn_status_writer(
            context,
            data_dir.clone(),
            stop.child_token(),
        ));
        node_file.save(&data_dir)?;
        info!(node = %id, wallet = %me, metrics = ?metrics_addr, "provider daemon started");
        Ok(ProviderDaemon {
            node,
            wallet: me,
            metrics_addr,
            registry,
            data_dir,
            stop,
            tasks,
        })
    }

    /// The address peers dial: node id and direct addresses.
    pub fn addr(&self) -> EndpointAddr {
        self.node.addr()
    }

    /// The node's iroh id (what the listing publishes).
    pub fn node_id(&self) -> EndpointId {
        self.node.endpoint().id()
    }

    /// The provider's wallet address (fund it; deals name it).
    pub fn wallet(&self) -> Address {
        self.wallet
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The metrics registry `/metrics` serves.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The data directory (pieces, `node.json`, `status.json`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The node underneath (store, endpoint, metrics).
    pub fn node(&self) -> &ProviderNode {
        &self.node
    }

    /// Fault injection for tests: holds back every later put, get, range
    /// get and audit answer by `delay` (zero: none), as `[faults]
    /// response_delay_ms` does from the start.
    pub fn set_response_delay(&self, delay: Duration) {
        self.node.faults().set_response_delay(delay);
    }

    /// Stops the loops and the metrics endpoint, then the node.
    pub async fn shutdown(self) -> Result<(), DaemonError> {
        self.stop.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        self.node.shutdown().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let max = Duration::from_secs(60);
        for _ in 0..50 {
            let first = backoff(1, max);
            assert!(first >= Duration::from_millis(750) && first <= Duration::from_millis(1250));
            let fourth = backoff(4, max);
            assert!(fourth >= Duration::from_secs(6) && fourth <= Duration::from_secs(10));
            assert!(backoff(40, max) <= max.mul_f64(1.25));
        }
    }
}
