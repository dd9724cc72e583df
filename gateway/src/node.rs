//! A whole running gateway: the S3 endpoint over the mesh store, the
//! market follower, the workers (repair, chain watcher) and the `/metrics`
//! endpoint, started from [`GatewaySettings`] and the owner's root secret.
//!
//! This is what `dbytes gateway run` and `dbytes devnet` start. It is
//! assembly only: S3 is [`crate::s3`], pieces are [`crate::mesh`].
//!
//! Main type: [`GatewayNode`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use dbytes_ledger::book::Book;
use dbytes_ledger::chain::units::{parse_bytes, parse_tokens};
use dbytes_ledger::chain::{ChainClient, Deployment};
use dbytes_ledger::keys::RootSecret;
use dbytes_ledger::market::{FollowConfig, Follower, MarketIndex};
use dbytes_mesh::client::ClientConfig;
use dbytes_mesh::daemon::exporter::serve_metrics;
use dbytes_mesh::settings::parse_relays;
use dbytes_mesh::transport::TransportConfig;
use dbytes_placement::RedundancyPolicy;
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::mesh::{DealBudget, MeshPieceStore, MeshStoreConfig, MeshTuning};
use crate::pipeline::PipelineConfig;
use crate::s3::{Gateway, GatewayConfig};
use crate::settings::GatewaySettings;

/// Why a gateway did not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A setting does not make sense.
    #[error("invalid gateway setting {setting}: {reason}")]
    Setting {
        /// The setting, as `[section] key`.
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// The data directory or the book could not be opened.
    #[error("cannot open the gateway's state in {path}: {reason}")]
    State {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The chain could not be reached or the deployment file read.
    #[error(transparent)]
    Chain(#[from] dbytes_ledger::chain::ChainError),
    /// The market index failed.
    #[error(transparent)]
    Market(#[from] dbytes_ledger::market::MarketError),
    /// The mesh store did not start.
    #[error(transparent)]
    Mesh(#[from] crate::mesh::MeshStoreError),
    /// A listener did not bind.
    #[error("cannot listen on {addr} for {what}: {source}")]
    Listen {
        /// What the listener is for.
        what: &'static str,
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

fn setting(setting: &'static str, reason: impl ToString) -> NodeError {
    NodeError::Setting {
        setting,
        reason: reason.to_string(),
    }
}

/// A running gateway.
#[derive(Debug)]
pub struct GatewayNode {
    gateway: Gateway,
    store: MeshPieceStore,
    s3_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    wallet: Address,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl GatewayNode {
    /// Opens the book, connects to the chain with the owner's wallet, starts
    /// the mesh store, the market follower (when the gateway may open deals),
    /// the S3 endpoint and `/metrics`.
    pub async fn start(
        settings: &GatewaySettings,
        root: &RootSecret,
    ) -> Result<GatewayNode, NodeError> {
        let policy =
            RedundancyPolicy::new(settings.storage.data_pieces, settings.storage.total_pieces)
                .map_err(|err| setting("[storage] data_pieces/total_pieces", err))?;
        let relays =
            parse_relays(&settings.mesh.relays).map_err(|err| setting("[mesh] relays", err))?;
        let budget = deal_budget(settings)?;
        let data_dir = &settings.storage.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|err| NodeError::State {
            path: data_dir.display().to_string(),
            reason: err.to_string(),
        })?;
        let book_path = settings.book_path();
        let book = {
            let path = book_path.clone();
            tokio::task::spawn_blocking(move || Book::open(&path))
                .await
                .map_err(|err| NodeError::State {
                    path: book_path.display().to_string(),
                    reason: err.to_string(),
                })?
                .map_err(|err| NodeError::State {
                    path: book_path.display().to_string(),
                    reason: format!("{err} (is another gateway using this directory?)"),
                })?
        };
        let wallet = root
            .wallet()
            .map_err(|err| setting("[secret] keystore", err))?;
        let address = wallet.address();
        let deployment = Deployment::load(&settings.chain.deployment)?;
        let rpc_url = Some(settings.chain.rpc_url.as_str()).filter(|url| !url.is_empty());
        let chain = ChainClient::connect(deployment, rpc_url, Some(wallet)).await?;

        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        // Where `dbytes gateway user ...` reaches a gateway holding the book.
        let admin_path = crate::admin::socket_path(data_dir);
        let admin = crate::admin::serve(&admin_path, book.clone(), stop.clone());
        tasks.push(admin.map_err(|err| NodeError::State {
            path: admin_path.display().to_string(),
            reason: format!("serving the admin socket: {err}"),
        })?);
        let market = match &budget {
            Some(_) => {
                let index = Arc::new(MarketIndex::open(
                    &settings.market_index_path(),
                    chain.deployment(),
                )?);
                let follower = Follower::new(chain.clone(), index.clone(), follow_config(&chain));
                follower.sync().await?;
                let stop = stop.clone();
                tasks.push(tokio::spawn(async move {
                    follower.run(stop.cancelled_owned()).await;
                }));
                Some(index)
            }
            None => None,
        };
        let watch_chain = chain.clone();
        let (store, store_task) = MeshPieceStore::start(MeshStoreConfig {
            node_secret: root.node_secret(),
            chain,
            book: book.clone(),
            market,
            budget,
            transport: TransportConfig {
                bind_addr: settings.mesh.listen,
                relays,
                ..TransportConfig::default()
            },
            client: ClientConfig::default(),
            tuning: MeshTuning::default(),
        })
        .await?;
        tasks.push(store_task);

        let gateway = Gateway::new(
            book.clone(),
            Arc::new(store.clone()),
            root.data_master_key(),
            GatewayConfig {
                region: settings.s3.region.clone(),
                default_redundancy: policy,
                pipeline: PipelineConfig {
                    segments_in_flight: settings.storage.segments_in_flight,
                    piece_size: piece_size(settings)?,
                    ..PipelineConfig::default()
                },
                virtual_host_domains: settings.s3.virtual_host_domains.clone(),
                ..GatewayConfig::default()
            },
        );
        let registry = Registry::new();
        // Invariant: the two metric sets have distinct names, registered once.
        gateway
            .metrics()
            .register(&registry)
            .and_then(|()| store.metrics().register(&registry))
            .map_err(|err| setting("[metrics]", err))?;
        if settings.repair.enabled {
            let worker = crate::repair::RepairWorker::new(
                store.clone(),
                book.clone(),
                settings.repair.tuning(),
            );
            worker
                .metrics()
                .register(&registry)
                .map_err(|err| setting("[metrics]", err))?;
            let repair_task = worker.spawn();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                stop.cancelled().await;
                worker.shutdown();
                let _ = repair_task.await;
            }));
        }
        if settings.watch.enabled {
            let period_secs = watch_chain.deployment().parameters.period_secs;
            let watcher = crate::watch::ChainWatcher::new(
                store.clone(),
                watch_chain,
                book.clone(),
                settings.watch.tuning(period_secs),
            );
            watcher
                .metrics()
                .register(&registry)
                .map_err(|err| setting("[metrics]", err))?;
            let watch_task = watcher.spawn();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                stop.cancelled().await;
                watcher.shutdown();
                let _ = watch_task.await;
            }));
        }

        let listener = TcpListener::bind(settings.s3.listen)
            .await
            .map_err(|source| NodeError::Listen {
                what: "S3",
                addr: settings.s3.listen.to_string(),
                source,
            })?;
        let s3_addr = listener.local_addr().map_err(|source| NodeError::Listen {
            what: "S3",
            addr: settings.s3.listen.to_string(),
            source,
        })?;
        {
            let gateway = gateway.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(err) = gateway.serve(listener, stop.cancelled_owned()).await {
                    tracing::error!(%err, "the S3 endpoint stopped");
                }
            }));
        }
        let metrics_addr = match settings.metrics.listen.trim() {
            "" | "off" => None,
            text => {
                let addr: SocketAddr = text
                    .parse()
                    .map_err(|err| setting("[metrics] listen", format!("{text:?}: {err}")))?;
                let (bound, task) =
                    serve_metrics(addr, registry, stop.clone())
                        .await
                        .map_err(|source| NodeError::Listen {
                            what: "metrics",
                            addr: text.to_owned(),
                            source,
                        })?;
                tasks.push(task);
                Some(bound)
            }
        };
        tracing::info!(s3 = %s3_addr, metrics = ?metrics_addr, wallet = %address,
            node = %store.node_id(), "gateway running");
        Ok(GatewayNode {
            gateway,
            store,
            s3_addr,
            metrics_addr,
            wallet: address,
            stop,
            tasks,
        })
    }

    /// The S3 endpoint's address.
    pub fn s3_addr(&self) -> SocketAddr {
        self.s3_addr
    }

    /// The `/metrics` endpoint's address, if served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The owner's wallet (the consumer on its deals).
    pub fn wallet(&self) -> Address {
        self.wallet
    }

    /// The gateway's iroh node id (on its deals).
    pub fn node_id(&self) -> B256 {
        self.store.node_id()
    }

    /// The S3 gateway (its book, metrics).
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The mesh store (its deals, metrics).
    pub fn store(&self) -> &MeshPieceStore {
        &self.store
    }

    /// Stops accepting requests, lets open ones finish (up to 10 s), stops
    /// the workers and closes the endpoint.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.store.shutdown().await;
        for task in self.tasks {
            match tokio::time::timeout(Duration::from_secs(15), task).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(%err, "a gateway task failed"),
                Err(_) => tracing::warn!("a gateway task did not stop within 15 s"),
            }
        }
    }
}

/// The piece size of `[storage] piece_size_bytes`, `None` for the default.
fn piece_size(settings: &GatewaySettings) -> Result<Option<usize>, NodeError> {
    match settings.storage.piece_size_bytes {
        0 => Ok(None),
        bytes => {
            let policy = RedundancyPolicy::new(1, 1).map_err(|err| setting("[storage]", err))?;
            let size = usize::try_from(bytes)
                .map_err(|_| setting("[storage] piece_size_bytes", "too large"))?;
            crate::codec::SegmentLayout::new(policy, size)
                .map_err(|err| setting("[storage] piece_size_bytes", err))?;
            Ok(Some(size))
        }
    }
}

/// The deal budget of `[deals]`, or `None` when it is zero.
fn deal_budget(settings: &GatewaySettings) -> Result<Option<DealBudget>, NodeError> {
    let deals = &settings.deals;
    let budget = parse_tokens(&deals.budget).map_err(|err| setting("[deals] budget", err))?;
    if budget == U256::ZERO {
        return Ok(None);
    }
    let max_price = parse_tokens(&deals.max_price_per_gib_month)
        .map_err(|err| setting("[deals] max_price_per_gib_month", err))?;
    let max_price = u128::try_from(max_price)
        .map_err(|_| setting("[deals] max_price_per_gib_month", "too large"))?;
    let capacity =
        parse_bytes(&deals.deal_size).map_err(|err| setting("[deals] deal_size", err))?;
    let periods = u32::try_from(deals.deal_periods)
        .map_err(|_| setting("[deals] deal_periods", "too large"))?;
    Ok(Some(DealBudget {
        budget,
        max_price_per_gib_month: max_price,
        deal_periods: periods,
        deal_capacity_bytes: capacity,
    }))
}

/// How closely the market follower trails the chain: at the head on a
/// local chain, five blocks behind elsewhere (reorgs).
fn follow_config(chain: &ChainClient) -> FollowConfig {
    let local =
        dbytes_ledger::chain::deploy::LOCAL_CHAIN_IDS.contains(&chain.deployment().chain_id);
    FollowConfig {
        confirmations: if local { 0 } else { 5 },
        ..FollowConfig::default()
    }
}
