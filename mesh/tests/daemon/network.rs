//! A local network for the daemon tests: anvil behind an RPC proxy that the
//! test can cut, the contracts, `dbytes provider run` child processes, and a
//! consumer with its own node key and wallet.

#![allow(dead_code)] // Each test uses its own subset.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use dbytes_ledger::chain::anvil::{Anvil, AnvilOptions, DEV_MNEMONIC};
use dbytes_ledger::chain::deal::DealRequest;
use dbytes_ledger::chain::deploy::{DeployOptions, deploy};
use dbytes_ledger::chain::{ChainClient, Deployment, RetryPolicy};
use dbytes_ledger::keys::NodeSecret;
use dbytes_mesh::client::{ClientConfig, PieceClient};
use dbytes_mesh::daemon::config::{CONFIG_FILE, PASSWORD_ENV};
use dbytes_mesh::daemon::init::{InitOptions, init_provider};
use dbytes_mesh::daemon::state::{NodeFile, StatusFile};
use dbytes_mesh::deal::DealId;
use dbytes_mesh::transport::{TransportConfig, bind_endpoint, node_id, peer_addr};
use iroh::EndpointAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

pub const PASSWORD: &str = "provider test password";
/// One token in base units.
pub const TOKEN: u128 = 1_000_000_000_000_000_000;
/// Dev account of the consumer (the providers take 2 and up).
pub const CONSUMER: u32 = 1;

pub use tempfile::TempDir;

/// A directory under the system's temp dir named after `label`, removed
/// when dropped.
pub fn temp_dir(label: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("dbytes-daemon-{label}-"))
        .tempdir()
        .expect("make a temp dir")
}

/// Waits until `check` returns `Some`, failing the test after `secs`.
pub async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The `dbytes` binary next to this test's (target/<profile>/dbytes), or
/// `DBYTES_BIN`.
pub fn dbytes_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DBYTES_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/<profile>/deps/<test> -> target/<profile>/dbytes
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let binary = profile_dir.join(format!("dbytes{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "the dbytes binary is not built at {}: run `cargo build --bin dbytes` first (the \
         Makefile's test-rust target does), or set DBYTES_BIN",
        binary.display()
    );
    binary
}

/// A TCP proxy in front of anvil that the test can cut (every connection
/// dropped, new ones closed at once) to play an RPC outage.
pub struct RpcProxy {
    pub url: String,
    up: Arc<AtomicBool>,
    cut: Arc<std::sync::Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl RpcProxy {
    pub async fn start(target: SocketAddr) -> RpcProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (task_up, task_cut, task_stop) = (up.clone(), cut.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = tokio::select! {
                    _ = task_stop.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                };
                if !task_up.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let cut = task_cut.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = cut.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        RpcProxy { url, up, cut, stop }
    }

    /// Cuts the chain off: open connections drop, new ones are closed.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut cut = self.cut.lock().unwrap();
        cut.cancel();
        *cut = CancellationToken::new();
    }

    /// Lets the chain through again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut.lock().unwrap().cancel();
    }
}

/// Anvil (one block a second), the contracts, the proxy.
pub struct Network {
    pub anvil: Anvil,
    pub deployment: Deployment,
    pub deployment_file: PathBuf,
    pub proxy: RpcProxy,
    pub dir: TempDir,
}

impl Network {
    /// A market whose periods last `period_secs` (time is moved by the test).
    pub async fn start(label: &str, period_secs: u64, grace_secs: u64) -> Network {
        let anvil = Anvil::spawn(&AnvilOptions {
            block_time_secs: Some(1),
            ..AnvilOptions::default()
        })
        .expect("anvil starts (run `make setup`)");
        let options = DeployOptions {
            period_secs,
            proof_grace_secs: grace_secs,
            challenges: 2,
            seed_lookahead_blocks: 2,
            ..DeployOptions::default()
        };
        let deployment = deploy(anvil.endpoint(), anvil.account(0), &options)
            .await
            .expect("the contracts deploy");
        let dir = temp_dir(label);
        let deployment_file = dir.path().join("deployment.json");
        deployment.save(&deployment_file).unwrap();
        let target: SocketAddr = format!("127.0.0.1:{}", anvil.port()).parse().unwrap();
        let proxy = RpcProxy::start(target).await;
        Network {
            anvil,
            deployment,
            deployment_file,
            proxy,
            dir,
        }
    }

    /// A client of dev account `index` (straight to anvil, not through the
    /// proxy), with tokens from the faucet.
    pub async fn party(&self, index: u32) -> ChainClient {
        let client = ChainClient::connect(
            self.deployment.clone(),
            Some(self.anvil.endpoint()),
            Some(self.anvil.account(index)),
        )
        .await
        .unwrap()
        .with_retry(RetryPolicy::NONE, Duration::from_secs(30));
        let address = client.address().unwrap();
        if client.token_balance(address).await.unwrap().is_zero() {
            client.faucet_drip(address).await.unwrap();
        }
        client
    }

    /// Moves the chain's clock to `offset` seconds into `period` (if it is not there yet).
    pub async fn go_to(&self, client: &ChainClient, period: u64, offset: u64) {
        let target = self.deployment.clock().period_start(period) + offset;
        let now = client.now().await.unwrap();
        if target > now {
            self.anvil.increase_time(target - now).await.unwrap();
            self.anvil.mine(1).await.unwrap();
        }
    }
}

/// What a provider's config differs in, as environment overrides.
#[derive(Clone)]
pub struct ProviderSpec {
    /// Dev account of its wallet.
    pub account: u32,
    /// `[listing] accept`.
    pub accept: &'static str,
    /// `[mesh] capacity_bytes`.
    pub capacity_bytes: u64,
    /// More `DBYTES_PROVIDER_*` overrides.
    pub extra: Vec<(&'static str, String)>,
}

impl ProviderSpec {
    pub fn new(account: u32) -> ProviderSpec {
        ProviderSpec {
            account,
            accept: "auto",
            capacity_bytes: 64 << 20,
            extra: Vec::new(),
        }
    }
}

/// A `dbytes provider run` child process; killed (SIGKILL) when dropped.
pub struct ProviderProcess {
    pub dir: PathBuf,
    pub config: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    pub node: NodeFile,
}

impl ProviderProcess {
    /// Inits a provider directory under the network's and runs it.
    pub async fn spawn(network: &Network, name: &str, spec: ProviderSpec) -> ProviderProcess {
        let dir = network.dir.path().join(name);
        let options = InitOptions {
            rpc_url: Some(network.proxy.url.clone()),
            deployment: Some(network.deployment_file.clone()),
            mnemonic: Some(Zeroizing::new(DEV_MNEMONIC.to_string())),
            listen_addr: "127.0.0.1:0".parse().unwrap(),
            metrics_addr: "127.0.0.1:0".to_string(),
            ..InitOptions::new(dir.clone(), Zeroizing::new(PASSWORD.to_string()))
        };
        tokio::task::spawn_blocking(move || init_provider(&options))
            .await
            .unwrap()
            .unwrap();
        // Every provider shares the dev phrase: each takes its own account,
        // and a random node key instead of the phrase's.
        std::fs::remove_file(dir.join("data").join("node.key")).unwrap();
        // Fund it with tokens for collateral (dev accounts hold gas already).
        network.party(spec.account).await;
        let mut env: Vec<(String, String)> = vec![
            ("WALLET_ACCOUNT", spec.account.to_string()),
            ("LISTING_ACCEPT", spec.accept.to_string()),
            ("LISTING_PRICE_PER_GIB_MONTH", "1".to_string()),
            ("LISTING_COLLATERAL_DEPOSIT", "10000".to_string()),
            ("MESH_CAPACITY_BYTES", spec.capacity_bytes.to_string()),
            ("MESH_SCRUB_BYTES_PER_SEC", "0".to_string()),
            ("INTERVALS_LISTING_SECS", "2".to_string()),
            ("INTERVALS_DEALS_SECS", "1".to_string()),
            ("INTERVALS_PROOFS_SECS", "1".to_string()),
            ("INTERVALS_CLAIMS_SECS", "1".to_string()),
            ("INTERVALS_MAX_BACKOFF_SECS", "2".to_string()),
            ("CHAIN_CONNECT_TIMEOUT_SECS", "30".to_string()),
        ]
        .into_iter()
        .map(|(key, value)| (format!("DBYTES_PROVIDER_{key}"), value))
        .collect();
        env.extend(
            spec.extra
                .iter()
                .map(|(key, value)| (format!("DBYTES_PROVIDER_{key}"), value.clone())),
        );
        let mut process = ProviderProcess {
            config: dir.join(CONFIG_FILE),
            dir,
            env,
            child: None,
            node: NodeFile {
                node_id: String::new(),
                addrs: vec![],
                wallet: Address::ZERO,
                metrics_addr: None,
                pid: 0,
                started_at: 0,
            },
        };
        process.start().await;
        process
    }

    /// Starts (or restarts) the child and waits for its `node.json`.
    pub async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .unwrap();
        let child = Command::new(dbytes_binary())
            .args(["provider", "run", "--config"])
            .arg(&self.config)
            .env(PASSWORD_ENV, PASSWORD)
            .env("RUST_LOG", "info,dbytes_mesh=debug")
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dbytes provider run starts");
        let pid = child.id();
        self.child = Some(child);
        let data_dir = self.dir.join("data");
        let node = wait_for("the daemon writes node.json", 60, || {
            let data_dir = data_dir.clone();
            let exited = self.exited();
            async move {
                assert!(!exited, "the daemon exited during start");
                NodeFile::load(&data_dir)
                    .ok()
                    .flatten()
                    .filter(|node| node.pid == pid)
            }
        })
        .await;
        self.node = node;
    }

    /// Whether the child has exited.
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().ok().flatten().is_some(),
            None => true,
        }
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The provider's dial address.
    pub fn addr(&self) -> EndpointAddr {
        let id = self.node.node_id_bytes().expect("node.json has a node id");
        peer_addr(&id, self.node.addrs.iter().copied(), None).unwrap()
    }

    pub fn wallet(&self) -> Address {
        self.node.wallet
    }

    pub fn status(&self) -> Option<StatusFile> {
        StatusFile::load(&self.dir.join("data")).ok().flatten()
    }

    /// The daemon's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// `GET /metrics`.
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.node.metrics_addr.expect("metrics are served");
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).await.unwrap();
        body
    }

    /// Runs `dbytes provider <args> --config <config>` to completion.
    pub fn command(&self, args: &[&str]) -> std::process::Output {
        Command::new(dbytes_binary())
            .arg("provider")
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env(PASSWORD_ENV, PASSWORD)
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .output()
            .unwrap()
    }
}

impl Drop for ProviderProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- log of {} ---\n{}", self.dir.display(), self.log());
        }
    }
}

/// The value of metric line `name` (with labels) in a Prometheus text body.
pub fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// A consumer: a wallet (dev account) and a node key of its own.
pub struct Consumer {
    pub chain: ChainClient,
    pub secret: NodeSecret,
    pub pieces: PieceClient,
}

impl Consumer {
    pub async fn new(network: &Network, account: u32) -> Consumer {
        let secret = NodeSecret::from_bytes(rand::random());
        Consumer {
            chain: network.party(account).await,
            pieces: piece_client(&secret).await,
            secret,
        }
    }

    pub fn node_id(&self) -> B256 {
        B256::from(*node_id(&self.secret).as_bytes())
    }

    /// Opens a deal with `provider` (auto-accepting) once its listing is up.
    pub async fn open_deal(
        &self,
        provider: &ProviderProcess,
        capacity_bytes: u64,
        periods: u32,
    ) -> DealId {
        wait_for_listing(&self.chain, provider.wallet()).await;
        let id = self
            .chain
            .open_deal(&DealRequest {
                provider: provider.wallet(),
                capacity_bytes,
                periods,
                price_per_gib_month: None,
                consumer_node_id: self.node_id(),
            })
            .await
            .unwrap();
        DealId(id)
    }
}

/// A piece client dialing from its own endpoint with `secret`.
pub async fn piece_client(secret: &NodeSecret) -> PieceClient {
    let endpoint = bind_endpoint(secret, &TransportConfig::local(), vec![])
        .await
        .unwrap();
    PieceClient::new(
        endpoint,
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            transfer_timeout: Duration::from_secs(30),
        },
    )
}

/// Waits until `provider`'s listing and collateral are on chain.
pub async fn wait_for_listing(client: &ChainClient, provider: Address) {
    wait_for(
        "the provider's listing and collateral are on chain",
        60,
        || async {
            let listed = client.listing(provider).await.ok().flatten().is_some();
            let pool = client.pool(provider).await.ok()?;
            (listed && U256::from(pool.deposited) >= U256::from(10_000 * TOKEN)).then_some(())
        },
    )
    .await;
}

/// Deterministic pseudo-random bytes.
pub fn piece_bytes(length: usize, seed: u64) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut bytes = vec![0u8; length];
    rng.fill(&mut bytes[..]);
    bytes
}
