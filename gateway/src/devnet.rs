//! The whole local network in one process: anvil, the contracts, N provider
//! daemons and a gateway with an S3 user, as `dbytes devnet` and `make run`
//! start it.
//!
//! Everything lives under one directory, so running it again with the same
//! directory resumes where it stopped: anvil saves the chain to
//! `chain-state.json` when it stops and loads it when it starts, the
//! deployment file is kept, each provider keeps its keys and pieces, the
//! gateway its keys and book. What is only valid for one run (anvil's port)
//! is passed to each part as it starts rather than written to their config
//! files.
//!
//! This is for development on one machine: every keystore is protected by
//! the password [`DEVNET_PASSWORD`], accounts are funded from anvil and
//! the faucet, and the gateway opens one deal with each provider.
//! Providers can join a running network ([`Devnet::add_provider`]) and be
//! stopped ([`Devnet::stop_provider`]), which is what the repair tests do.
//!
//! Main types: [`DevnetOptions`], [`Devnet`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy_primitives::{Address, U256};
use dbytes_ledger::book::{AccessKey, Book};
use dbytes_ledger::chain::anvil::{Anvil, AnvilOptions, dev_account, set_balance};
use dbytes_ledger::chain::deal::DealRequest;
use dbytes_ledger::chain::deploy::{DeployOptions, deploy};
use dbytes_ledger::chain::{ChainClient, Deployment};
use dbytes_ledger::keys::RootSecret;
use dbytes_ledger::keystore;
use dbytes_mesh::daemon::ProviderDaemon;
use dbytes_mesh::daemon::config::DaemonConfig;
use dbytes_mesh::daemon::init::{InitOptions, init_provider};

use crate::node::GatewayNode;
use crate::settings::{GatewaySettings, RepairSettings};

/// The password of every keystore of a local network.
pub const DEVNET_PASSWORD: &str = "devnet";

/// How often the local chain is saved while it runs, seconds.
const ANVIL_SAVE_SECS: u64 = 5;

/// The S3 user a local network creates.
pub const DEVNET_USER: &str = "devnet";

/// How to start a local network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevnetOptions {
    /// Where everything is kept (resumed if it exists).
    pub dir: PathBuf,
    /// Provider daemons to run.
    pub providers: usize,
    /// The S3 endpoint (port 0: any free port).
    pub s3_addr: SocketAddr,
    /// Period length of a fresh deployment, seconds.
    pub period_secs: u64,
    /// Data pieces and total pieces of new buckets.
    pub redundancy: (u16, u16),
    /// Bytes each of the gateway's deals reserves.
    pub deal_bytes: u64,
    /// Periods each of the gateway's deals runs.
    pub deal_periods: u32,
    /// The gateway's repair worker (tests shorten its intervals).
    pub repair: RepairSettings,
    /// Piece size of new objects in bytes (a power of two of at least
    /// 128 KiB); 0 for the gateway's default. Small pieces give many
    /// segments from small objects.
    pub piece_size_bytes: u64,
    /// How many of the providers (the last ones) only list on the market:
    /// the gateway opens no deal with them at start, but may itself, within
    /// `deal_budget`, when it needs room (repairs of failed deals, say).
    pub market_providers: usize,
    /// The gateway's `[deals] budget` in tokens: how much escrow its
    /// running deals may hold in all before it stops opening deals from
    /// the market ("0": it opens none).
    pub deal_budget: String,
}

impl DevnetOptions {
    /// Six providers, S3 on 127.0.0.1:9000, one-minute periods, 4-of-6
    /// (fewer data pieces when there are fewer providers).
    pub fn new(dir: PathBuf, providers: usize) -> DevnetOptions {
        DevnetOptions {
            dir,
            providers,
            s3_addr: SocketAddr::from(([127, 0, 0, 1], 9000)),
            period_secs: 60,
            redundancy: default_redundancy(providers),
            deal_bytes: 2 << 30,
            deal_periods: 10_000,
            repair: RepairSettings::default(),
            piece_size_bytes: 0,
            market_providers: 0,
            deal_budget: "0".to_owned(),
        }
    }
}

/// The redundancy for `providers` providers: every provider holds a piece,
/// and two may be lost (one when there are fewer than four).
pub fn default_redundancy(providers: usize) -> (u16, u16) {
    let n = u16::try_from(providers.clamp(1, 60)).unwrap_or(60);
    let parity = match n {
        1 => 0,
        2 | 3 => 1,
        _ => 2,
    };
    (n - parity, n)
}

/// Why a local network did not start.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// A step failed; the message names it.
    #[error("{step}: {reason}")]
    Step {
        /// What was being done.
        step: String,
        /// Why it failed.
        reason: String,
    },
}

fn step<E: std::fmt::Display>(step: impl Into<String>) -> impl FnOnce(E) -> DevnetError {
    let step = step.into();
    move |err| DevnetError::Step {
        step,
        reason: err.to_string(),
    }
}

/// A running local network.
pub struct Devnet {
    anvil: Anvil,
    deployer: ChainClient,
    deployment_path: PathBuf,
    providers: Vec<ProviderDaemon>,
    /// The number the next provider's directory gets (`provider-<n>`).
    next_provider: usize,
    /// `None` once handed over to a `dbytes gateway run` process.
    gateway: Option<GatewayNode>,
    settings: GatewaySettings,
    root: RootSecret,
    options: DevnetOptions,
    access_key: AccessKey,
    dir: PathBuf,
}

impl std::fmt::Debug for Devnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devnet")
            .field("dir", &self.dir)
            .field("providers", &self.providers.len())
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

impl Devnet {
    /// Starts (or resumes) the local network of `options`.
    pub async fn start(options: &DevnetOptions) -> Result<Devnet, DevnetError> {
        let dir = absolute(&options.dir)?;
        std::fs::create_dir_all(&dir).map_err(step(format!("creating {}", dir.display())))?;
        // The chain is saved on a clean stop, every few seconds, and by an
        // anvil a killed earlier run left behind (stopped before this one).
        let anvil = Anvil::spawn(&AnvilOptions {
            block_time_secs: Some(1),
            state_file: Some(dir.join("chain-state.json")),
            state_interval_secs: Some(ANVIL_SAVE_SECS),
            pid_file: Some(dir.join("anvil.pid")),
            ..AnvilOptions::default()
        })
        .map_err(step("starting anvil"))?;
        let rpc = anvil.endpoint().to_owned();
        let deployment_path = dir.join("dbytes-deployment.json");
        let deployer = ChainClient::connect(
            deploy_or_resume(&rpc, &deployment_path, options.period_secs).await?,
            Some(&rpc),
            Some(dev_account(0)),
        )
        .await
        .map_err(step("connecting to anvil"))?;

        // Providers added to a running network have directories too: a
        // resumed network starts them all, or their pieces would look lost.
        let mut count = options.providers;
        while dir.join(format!("provider-{count}")).exists() {
            count += 1;
        }
        let mut providers = Vec::with_capacity(count);
        for index in 0..count {
            let provider_dir = dir.join(format!("provider-{index}"));
            let daemon = start_provider(&provider_dir, &rpc, &deployment_path, &deployer).await?;
            providers.push(daemon);
        }

        let gateway_dir = dir.join("gateway");
        let (settings, root) = gateway_settings(&gateway_dir, options, &rpc, &deployment_path)?;
        fund(
            &deployer,
            &rpc,
            root.address().map_err(step("the gateway's wallet"))?,
        )
        .await?;
        let access_key = devnet_user(&settings.book_path())?;
        let gateway = GatewayNode::start(&settings, &root)
            .await
            .map_err(step("starting the gateway"))?;
        // The last `market_providers` of the first `providers` only list on
        // the market; providers added later (`add_provider`) have deals.
        let market = options.providers.saturating_sub(options.market_providers)..options.providers;
        let dealt: Vec<_> = (providers.iter().enumerate())
            .filter(|(index, _)| !market.contains(index))
            .map(|(_, daemon)| daemon)
            .collect();
        open_deals(&gateway, &dealt, &rpc, &deployment_path, &root, options).await?;
        Ok(Devnet {
            anvil,
            deployer,
            deployment_path,
            providers,
            next_provider: count,
            gateway: Some(gateway),
            settings,
            root,
            options: options.clone(),
            access_key,
            dir,
        })
    }

    /// Starts one more provider daemon (in `provider-<n>`, listed on the
    /// chain, funded) and opens a deal between it and the gateway's user,
    /// which the gateway's mesh store then knows about: somewhere new for
    /// repairs and uploads to go. Returns its index in
    /// [`Devnet::providers`].
    pub async fn add_provider(&mut self) -> Result<usize, DevnetError> {
        let provider_dir = self.dir.join(format!("provider-{}", self.next_provider));
        let rpc = self.anvil.endpoint().to_owned();
        let daemon =
            start_provider(&provider_dir, &rpc, &self.deployment_path, &self.deployer).await?;
        let gateway = self.gateway.as_ref().ok_or_else(|| DevnetError::Step {
            step: "adding a provider".to_owned(),
            reason: "the gateway was handed over to another process; add providers before"
                .to_owned(),
        })?;
        let opened = open_deals(
            gateway,
            &[&daemon],
            &rpc,
            &self.deployment_path,
            &self.root,
            &self.options,
        )
        .await;
        // Kept even if the deal failed: a running daemon is stopped by
        // `stop`, and the next start resumes it.
        self.next_provider += 1;
        self.providers.push(daemon);
        opened?;
        Ok(self.providers.len() - 1)
    }

    /// The S3 endpoint, `http://127.0.0.1:<port>`.
    pub fn s3_endpoint(&self) -> String {
        format!("http://{}", self.gateway().s3_addr())
    }

    /// The S3 user's access key.
    pub fn access_key(&self) -> &AccessKey {
        &self.access_key
    }

    /// The chain's JSON-RPC endpoint.
    pub fn rpc_url(&self) -> &str {
        self.anvil.endpoint()
    }

    /// The running gateway. Panics after [`Devnet::hand_over_gateway`].
    pub fn gateway(&self) -> &GatewayNode {
        self.gateway
            .as_ref()
            .expect("the gateway was handed over with hand_over_gateway; use that process")
    }

    /// Stops the in-process gateway and writes what `dbytes gateway run`
    /// needs to take its place with the same keys, book and deals:
    /// `gateway/gateway.toml` (S3 on `s3_addr`, `/metrics` on
    /// `metrics_addr`) and `gateway/password`. Returns the config's path.
    /// The tests of a gateway killed with SIGKILL run it so; every
    /// [`Book`] handle on its book must be dropped before that process
    /// starts.
    pub async fn hand_over_gateway(
        &mut self,
        s3_addr: SocketAddr,
        metrics_addr: SocketAddr,
    ) -> Result<PathBuf, DevnetError> {
        if let Some(gateway) = self.gateway.take() {
            gateway.shutdown().await;
        }
        let gateway_dir = self.settings.storage.data_dir.clone();
        let password_file = gateway_dir.join("password");
        std::fs::write(&password_file, DEVNET_PASSWORD)
            .map_err(step(format!("writing {}", password_file.display())))?;
        let mut settings = self.settings.clone();
        settings.s3.listen = s3_addr;
        settings.metrics.listen = metrics_addr.to_string();
        settings.secret.password_file = password_file;
        let config = gateway_dir.join("gateway.toml");
        let text = toml::to_string(&settings).map_err(step("writing the gateway's config"))?;
        std::fs::write(&config, text).map_err(step(format!("writing {}", config.display())))?;
        Ok(config)
    }

    /// The running providers.
    pub fn providers(&self) -> &[ProviderDaemon] {
        &self.providers
    }

    /// Stops provider `index` (its pieces stay on disk); returns whether it ran.
    pub async fn stop_provider(&mut self, index: usize) -> bool {
        if index >= self.providers.len() {
            return false;
        }
        let daemon = self.providers.remove(index);
        if let Err(err) = daemon.shutdown().await {
            tracing::warn!(%err, "a provider did not stop cleanly");
        }
        true
    }

    /// The directory it keeps everything in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What to tell the person who started it: endpoint, keys, an example.
    pub fn banner(&self) -> String {
        let endpoint = self.s3_endpoint();
        let key = &self.access_key;
        let mut text = String::new();
        text.push_str(&format!(
            "dBytes local network in {}\n\n",
            self.dir.display()
        ));
        text.push_str(&format!("  chain (anvil)   {}\n", self.rpc_url()));
        for (index, provider) in self.providers.iter().enumerate() {
            text.push_str(&format!(
                "  provider {index}      node {}  wallet {}{}\n",
                short(&provider.node_id().to_string()),
                provider.wallet(),
                provider
                    .metrics_addr()
                    .map(|addr| format!("  metrics http://{addr}/metrics"))
                    .unwrap_or_default()
            ));
        }
        text.push_str(&format!("  S3 endpoint     {endpoint}\n"));
        if let Some(metrics) = self.gateway.as_ref().and_then(GatewayNode::metrics_addr) {
            text.push_str(&format!("  gateway metrics http://{metrics}/metrics\n"));
        }
        text.push_str(&format!(
            "\n  AWS_ACCESS_KEY_ID={}\n  AWS_SECRET_ACCESS_KEY={}\n",
            key.access_key_id, key.secret_access_key
        ));
        text.push_str(&format!(
            "\nTry it (another terminal):\n\n  export AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_DEFAULT_REGION=us-east-1\n  aws --endpoint-url {endpoint} s3 mb s3://demo\n  aws --endpoint-url {endpoint} s3 cp README.md s3://demo/\n  aws --endpoint-url {endpoint} s3 ls s3://demo/\n\nCtrl-C stops everything; run it again with the same --dir to resume.\n",
            key.access_key_id, key.secret_access_key
        ));
        text
    }

    /// Stops the gateway, the providers and anvil (which saves the chain).
    pub async fn stop(self) {
        if let Some(gateway) = self.gateway {
            gateway.shutdown().await;
        }
        for daemon in self.providers {
            if let Err(err) = daemon.shutdown().await {
                tracing::warn!(%err, "a provider did not stop cleanly");
            }
        }
        let anvil = self.anvil;
        // Anvil writes its state file on SIGTERM; `stop` waits for it.
        let _ = tokio::task::spawn_blocking(move || anvil.stop()).await;
    }
}

fn short(text: &str) -> &str {
    text.get(..12).unwrap_or(text)
}

fn absolute(path: &Path) -> Result<PathBuf, DevnetError> {
    std::path::absolute(path).map_err(step(format!("resolving {}", path.display())))
}

/// Loads the deployment of a resumed network if its contracts are still on
/// the chain, otherwise deploys afresh (and says so when it replaces one).
async fn deploy_or_resume(
    rpc: &str,
    path: &Path,
    period_secs: u64,
) -> Result<Deployment, DevnetError> {
    if path.exists() {
        let deployment = Deployment::load(path).map_err(step("reading the deployment"))?;
        let client = ChainClient::connect(deployment.clone(), Some(rpc), None)
            .await
            .map_err(step("connecting to anvil"))?;
        if client.current_period().await.is_ok() {
            return Ok(deployment);
        }
        tracing::warn!(
            path = %path.display(),
            "the chain state was lost (anvil was killed?); deploying the contracts again"
        );
    }
    let deployment = deploy(
        rpc,
        dev_account(0),
        &DeployOptions::with_period(period_secs),
    )
    .await
    .map_err(step("deploying the contracts"))?;
    deployment
        .save(path)
        .map_err(step(format!("writing {}", path.display())))?;
    Ok(deployment)
}

/// Gives `account` gas and faucet tokens (once: an account that has
/// tokens is left alone).
async fn fund(deployer: &ChainClient, rpc: &str, account: Address) -> Result<(), DevnetError> {
    let ether = U256::from(10u64).pow(U256::from(18u64));
    set_balance(rpc, account, ether * U256::from(1000u64))
        .await
        .map_err(step(format!("giving {account} gas")))?;
    let tokens = deployer
        .token_balance(account)
        .await
        .map_err(step(format!("reading {account}'s tokens")))?;
    if tokens.is_zero() {
        deployer
            .faucet_drip(account)
            .await
            .map_err(step(format!("minting tokens to {account}")))?;
    }
    Ok(())
}

/// Initialises provider `dir` on first start, funds it, and starts its
/// daemon with this run's RPC endpoint.
async fn start_provider(
    dir: &Path,
    rpc: &str,
    deployment: &Path,
    deployer: &ChainClient,
) -> Result<ProviderDaemon, DevnetError> {
    let config_path = dir.join(dbytes_mesh::daemon::config::CONFIG_FILE);
    let password_file = dir.join("password");
    if !config_path.exists() {
        let mut options = InitOptions::new(
            dir.to_owned(),
            zeroize::Zeroizing::new(DEVNET_PASSWORD.to_owned()),
        );
        options.deployment = Some(deployment.to_owned());
        // A port of its own, kept in its config: a resumed network finds
        // its providers where the chain's listings say they are.
        options.listen_addr = free_local_addr()?;
        options.metrics_addr = "127.0.0.1:0".to_owned();
        tokio::task::spawn_blocking(move || init_provider(&options))
            .await
            .map_err(step("initialising a provider"))?
            .map_err(step(format!("initialising provider {}", dir.display())))?;
        std::fs::write(&password_file, DEVNET_PASSWORD)
            .map_err(step(format!("writing {}", password_file.display())))?;
    }
    let mut config = DaemonConfig::load(&config_path)
        .map_err(step(format!("reading {}", config_path.display())))?;
    config.chain.rpc_url = Some(rpc.to_owned());
    config.wallet.password_file = Some(password_file);
    config.listing.capacity = "64GiB".to_owned();
    config.listing.accept = "auto".to_owned();
    config.listing.collateral_deposit = "10000".to_owned();
    config.listing.max_periods = 100_000;
    let wallet = dbytes_mesh::daemon::open_wallet(&config)
        .await
        .map_err(step(format!("opening the wallet of {}", dir.display())))?;
    fund(deployer, rpc, wallet.address()).await?;
    ProviderDaemon::start(config)
        .await
        .map_err(step(format!("starting provider {}", dir.display())))
}

/// A loopback address with a port nobody listens on now.
fn free_local_addr() -> Result<SocketAddr, DevnetError> {
    let socket =
        std::net::UdpSocket::bind(("127.0.0.1", 0)).map_err(step("finding a free port"))?;
    socket.local_addr().map_err(step("finding a free port"))
}

/// The gateway's settings and root secret, writing them on first start.
fn gateway_settings(
    dir: &Path,
    options: &DevnetOptions,
    rpc: &str,
    deployment: &Path,
) -> Result<(GatewaySettings, RootSecret), DevnetError> {
    std::fs::create_dir_all(dir).map_err(step(format!("creating {}", dir.display())))?;
    let keystore_path = dir.join("root-keystore.json");
    let root = if keystore_path.exists() {
        keystore::read_root(&keystore_path, DEVNET_PASSWORD)
            .map_err(step("opening the gateway's keystore"))?
    } else {
        let mut rng = rand::thread_rng();
        let root = RootSecret::generate(&mut rng, 24).map_err(step("making the gateway's keys"))?;
        keystore::write_root(&keystore_path, &root, DEVNET_PASSWORD, &mut rng)
            .map_err(step("writing the gateway's keystore"))?;
        root
    };
    let mut settings = GatewaySettings::default();
    settings.s3.listen = options.s3_addr;
    settings.storage.data_dir = dir.to_owned();
    (settings.storage.data_pieces, settings.storage.total_pieces) = options.redundancy;
    settings.chain.rpc_url = rpc.to_owned();
    settings.chain.deployment = deployment.to_owned();
    settings.secret.keystore = keystore_path;
    settings.mesh.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    settings.metrics.listen = "127.0.0.1:0".to_owned();
    settings.repair = options.repair.clone();
    settings.storage.piece_size_bytes = options.piece_size_bytes;
    settings.deals.budget = options.deal_budget.clone();
    Ok((settings, root))
}

/// The devnet user's access key, created on first start.
fn devnet_user(book_path: &Path) -> Result<AccessKey, DevnetError> {
    let book = Book::open(book_path).map_err(step("opening the gateway's book"))?;
    let now = crate::s3::now_ms();
    if book
        .user(DEVNET_USER)
        .map_err(step("reading users"))?
        .is_none()
    {
        book.add_user(DEVNET_USER, DEVNET_USER, now)
            .map_err(step("adding the devnet user"))?;
    }
    let keys = book
        .list_access_keys(Some(DEVNET_USER))
        .map_err(step("reading access keys"))?;
    match keys.into_iter().next() {
        Some(key) => Ok(key),
        None => book
            .issue_access_key(DEVNET_USER, now)
            .map_err(step("issuing an access key")),
    }
}

/// Opens a deal with every provider the gateway has none with yet.
async fn open_deals(
    gateway: &GatewayNode,
    providers: &[&ProviderDaemon],
    rpc: &str,
    deployment: &Path,
    root: &RootSecret,
    options: &DevnetOptions,
) -> Result<(), DevnetError> {
    let wallet = root.wallet().map_err(step("the gateway's wallet"))?;
    let deployment = Deployment::load(deployment).map_err(step("reading the deployment"))?;
    let consumer = ChainClient::connect(deployment, Some(rpc), Some(wallet))
        .await
        .map_err(step("connecting the gateway's wallet"))?;
    let have: Vec<Address> = gateway
        .store()
        .deals()
        .iter()
        .filter(|deal| deal.live)
        .map(|deal| deal.provider)
        .collect();
    let mut opened = 0;
    for provider in providers {
        if have.contains(&provider.wallet()) {
            continue;
        }
        let request = DealRequest {
            provider: provider.wallet(),
            capacity_bytes: options.deal_bytes,
            periods: options.deal_periods,
            price_per_gib_month: None,
            consumer_node_id: gateway.node_id(),
        };
        // The provider's listing appears once its daemon's first loop ran.
        let mut attempts = 0;
        loop {
            match consumer.open_deal(&request).await {
                Ok(_) => break,
                Err(err) if attempts < 30 => {
                    attempts += 1;
                    tracing::debug!(%err, provider = %provider.wallet(), "deal not open yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(err) => {
                    return Err(step(format!("opening a deal with {}", provider.wallet()))(
                        err,
                    ));
                }
            }
        }
        opened += 1;
    }
    if opened > 0 {
        gateway
            .store()
            .refresh_deals()
            .await
            .map_err(step("reading the new deals"))?;
    }
    Ok(())
}
