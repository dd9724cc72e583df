//! A local chain: anvil from the pinned npm package, on 127.0.0.1 with a
//! port the OS picks, stopped when the handle drops.
//!
//! Used by the integration tests and by the local network (`dbytes devnet`).
//! The binary is the native one inside `@foundry-rs/anvil-<os>-<arch>` (not
//! the node wrapper in `.bin`, so signals reach anvil itself), found from
//! `DBYTES_ANVIL` or the repository's `ledger/contracts/node_modules`
//! (installed by `make setup`).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use dbytes_ledger::chain::anvil::{Anvil, AnvilOptions};
//! let anvil = Anvil::spawn(&AnvilOptions::default())?;
//! let url = anvil.endpoint(); // http://127.0.0.1:<port>
//! anvil.increase_time(3600).await?; // and mine a block
//! # Ok(()) }
//! ```

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;

use super::client::install_crypto_provider;
use super::error::ChainError;
use super::wallet::account_path;
use crate::keys::RootSecret;

/// The phrase anvil derives its funded dev accounts from (public; test use only).
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// Why anvil could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AnvilError {
    /// No binary found.
    #[error(
        "anvil not found at {0}; run `make setup` (installs the pinned Foundry toolchain) or set \
         DBYTES_ANVIL to an anvil binary"
    )]
    NotFound(PathBuf),
    /// The process could not be started.
    #[error("starting {path} failed: {reason}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// It started but never said where it listens.
    #[error("anvil did not report its address within {secs} s; its output ended with: {output}")]
    NoAddress {
        /// How long we waited.
        secs: u64,
        /// The last lines it printed.
        output: String,
    },
    /// An anvil of an earlier run would not stop.
    #[error(
        "an anvil of an earlier run (process {pid}) still runs and did not stop within {secs} s \
         of SIGTERM; stop it (`kill {pid}`) and start again"
    )]
    Stray {
        /// Its process id.
        pid: u32,
        /// How long we waited.
        secs: u64,
    },
}

/// How to start anvil.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnvilOptions {
    /// The binary; `None` finds the pinned one ([`anvil_binary`]).
    pub binary: Option<PathBuf>,
    /// Seconds per block; `None` mines one block per transaction.
    pub block_time_secs: Option<u64>,
    /// Funded accounts to derive from [`DEV_MNEMONIC`].
    pub accounts: u32,
    /// Chain id.
    pub chain_id: u64,
    /// A file to load the chain from and save it to on exit (`--state`),
    /// so a local network resumes where it stopped.
    pub state_file: Option<PathBuf>,
    /// Also save the state file every this many seconds
    /// (`--state-interval`), so a killed anvil loses at most that much.
    pub state_interval_secs: Option<u64>,
    /// Where to record anvil's process id. An anvil still running under a
    /// recorded id (the process that started it was killed before it could
    /// stop it) is stopped gracefully before the new one starts, so it
    /// saves its chain to the state file instead of holding it in memory
    /// and racing the new one for the file.
    pub pid_file: Option<PathBuf>,
}

impl Default for AnvilOptions {
    fn default() -> Self {
        AnvilOptions {
            binary: None,
            block_time_secs: None,
            accounts: 10,
            chain_id: 31337,
            state_file: None,
            state_interval_secs: None,
            pid_file: None,
        }
    }
}

/// The npm package directory holding anvil for this host (`anvil-linux-amd64`, ...).
pub fn platform_package() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("anvil-{os}-{arch}")
}

/// The pinned anvil: `DBYTES_ANVIL` if set, else the native binary of the
/// npm package under `ledger/contracts/node_modules`, looked for from this
/// crate's directory (at run time under cargo, then as built) and from the
/// working directory and its parents (a `dbytes` run inside a checkout).
pub fn anvil_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DBYTES_ANVIL") {
        return PathBuf::from(path);
    }
    let exe = if cfg!(windows) { "anvil.exe" } else { "anvil" };
    let package = Path::new("contracts/node_modules/@foundry-rs")
        .join(platform_package())
        .join("bin")
        .join(exe);
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        candidates.push(PathBuf::from(dir).join(&package));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(&package));
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            candidates.push(dir.join("ledger").join(&package));
            candidates.push(dir.join(&package));
        }
    }
    let fallback = candidates[0].clone();
    candidates
        .into_iter()
        .find(|path| path.is_file())
        .unwrap_or(fallback)
}

/// A running anvil; killed (and reaped) on drop, even when a test panics.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    port: u16,
    endpoint: String,
    chain_id: u64,
    pid_file: Option<PathBuf>,
}

/// How long a stray anvil gets to save its chain and exit after SIGTERM.
const STRAY_STOP: Duration = Duration::from_secs(20);

/// Stops the anvil recorded in `pid_file` if it still runs (its command
/// line names anvil: a recycled process id is left alone), waiting for it
/// to save its state and exit. Linux only (it reads `/proc`); elsewhere a
/// stray anvil is left running.
fn stop_stray(pid_file: &Path) -> Result<(), AnvilError> {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return Ok(());
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return Ok(());
    };
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let is_anvil = |dir: &Path| {
        std::fs::read(dir.join("cmdline"))
            .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("anvil"))
    };
    if !is_anvil(&proc_dir) {
        return Ok(());
    }
    tracing::warn!(
        pid,
        "an anvil of an earlier run still runs; stopping it so it saves the chain"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = std::time::Instant::now() + STRAY_STOP;
    while std::time::Instant::now() < deadline {
        let exited = std::fs::read_to_string(proc_dir.join("stat")).map_or(true, |stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        });
        if exited || !is_anvil(&proc_dir) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(AnvilError::Stray {
        pid,
        secs: STRAY_STOP.as_secs(),
    })
}

impl Anvil {
    /// Starts anvil on 127.0.0.1 with an OS-chosen port and waits until it listens.
    pub fn spawn(options: &AnvilOptions) -> Result<Anvil, AnvilError> {
        let path = options.binary.clone().unwrap_or_else(anvil_binary);
        if !path.is_file() {
            return Err(AnvilError::NotFound(path));
        }
        let mut command = Command::new(&path);
        command
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--chain-id", &options.chain_id.to_string()])
            .args(["--accounts", &options.accounts.to_string()])
            .args(["--mnemonic", DEV_MNEMONIC])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(secs) = options.block_time_secs {
            command.args(["--block-time", &secs.to_string()]);
        }
        if let Some(state) = &options.state_file {
            command.arg("--state").arg(state);
            if let Some(secs) = options.state_interval_secs {
                command.args(["--state-interval", &secs.max(1).to_string()]);
            }
        }
        if let Some(pid_file) = &options.pid_file {
            stop_stray(pid_file)?;
        }
        let mut child = command.spawn().map_err(|err| AnvilError::Spawn {
            path: path.clone(),
            reason: err.to_string(),
        })?;
        let stdout = child.stdout.take();
        let (lines_tx, lines_rx) = mpsc::channel();
        // Read anvil's output on a thread (it blocks); keep draining it after
        // the address line so anvil never stalls on a full pipe.
        std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    // Nobody listens any more; keep draining quietly.
                    continue;
                }
            }
        });
        let timeout = Duration::from_secs(30);
        let deadline = std::time::Instant::now() + timeout;
        let mut tail: Vec<String> = Vec::new();
        let mut anvil = Anvil {
            child,
            port: 0,
            endpoint: String::new(),
            chain_id: options.chain_id,
            pid_file: None,
        };
        if let Some(pid_file) = &options.pid_file {
            std::fs::write(pid_file, anvil.child.id().to_string()).map_err(|err| {
                AnvilError::Spawn {
                    path: pid_file.clone(),
                    reason: format!("recording anvil's process id: {err}"),
                }
            })?;
            anvil.pid_file = Some(pid_file.clone());
        }
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(address) = line.trim().strip_prefix("Listening on ")
                        && let Some(port) = address.rsplit(':').next().and_then(|p| p.parse().ok())
                    {
                        anvil.port = port;
                        anvil.endpoint = format!("http://127.0.0.1:{port}");
                        return Ok(anvil);
                    }
                    tail.push(line);
                    if tail.len() > 5 {
                        tail.remove(0);
                    }
                }
                Err(_) => {
                    return Err(AnvilError::NoAddress {
                        secs: timeout.as_secs(),
                        output: tail.join(" | "),
                    });
                }
            }
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The port anvil listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The operating system's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Dev account `index` (funded with 10000 ETH, no tokens).
    pub fn account(&self, index: u32) -> PrivateKeySigner {
        dev_account(index)
    }

    /// Stops anvil now (also done on drop). With a state file, anvil saves
    /// the chain on SIGTERM; this sends SIGKILL, so call [`Anvil::stop`] to keep state.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(pid_file) = self.pid_file.take() {
            let _ = std::fs::remove_file(pid_file);
        }
    }

    /// Stops anvil gracefully (SIGTERM, so a `--state` file is written),
    /// falling back to a kill after five seconds.
    pub fn stop(mut self) {
        #[cfg(unix)]
        {
            let pid = self.child.id().to_string();
            let terminated = Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .is_ok_and(|s| s.success());
            if terminated {
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                while std::time::Instant::now() < deadline {
                    // Dropping it then forgets the pid (see `kill`).
                    if let Ok(Some(_)) = self.child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        self.kill();
    }

    /// Moves the chain's clock forward by `secs` and mines a block at the new time.
    pub async fn increase_time(&self, secs: u64) -> Result<(), ChainError> {
        increase_time(&self.endpoint, secs).await
    }

    /// Mines `blocks` blocks.
    pub async fn mine(&self, blocks: u64) -> Result<(), ChainError> {
        mine(&self.endpoint, blocks).await
    }

    /// Takes a snapshot of the chain (`evm_snapshot`); [`Anvil::revert`]
    /// returns to it, dropping every block since: a reorg, for tests.
    pub async fn snapshot(&self) -> Result<String, ChainError> {
        let id: serde_json::Value =
            dev_rpc(&self.endpoint, "evm_snapshot", serde_json::json!([])).await?;
        Ok(id
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| id.to_string()))
    }

    /// Returns the chain to snapshot `id` (`evm_revert`).
    pub async fn revert(&self, id: &str) -> Result<(), ChainError> {
        let reverted: bool = dev_rpc(&self.endpoint, "evm_revert", serde_json::json!([id])).await?;
        if reverted {
            Ok(())
        } else {
            Err(ChainError::Unexpected {
                action: "revert to a snapshot".into(),
                reason: format!("anvil has no snapshot {id}"),
            })
        }
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Dev account `index` of [`DEV_MNEMONIC`] (what anvil funds).
pub fn dev_account(index: u32) -> PrivateKeySigner {
    // The dev phrase is a valid constant and the path is well formed.
    RootSecret::from_phrase(DEV_MNEMONIC)
        .and_then(|root| root.wallet_at(&account_path(index)))
        .expect("the dev mnemonic derives every account")
}

async fn dev_rpc<
    R: serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + Unpin + 'static,
>(
    endpoint: &str,
    method: &'static str,
    params: serde_json::Value,
) -> Result<R, ChainError> {
    install_crypto_provider();
    let url = endpoint
        .parse()
        .map_err(|_| ChainError::Refused(format!("{endpoint:?} is not an RPC URL")))?;
    let provider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .connect_http(url);
    provider
        .raw_request::<_, R>(method.into(), params)
        .await
        .map_err(|err| ChainError::from_rpc(endpoint, method, &err))
}

/// On a development chain (anvil, Hardhat): moves the clock forward by
/// `secs` and mines a block at the new time.
pub async fn increase_time(endpoint: &str, secs: u64) -> Result<(), ChainError> {
    let _: serde_json::Value =
        dev_rpc(endpoint, "evm_increaseTime", serde_json::json!([secs])).await?;
    mine(endpoint, 1).await
}

/// On a development chain: sets `account`'s native balance to `wei` (gas
/// for a local network's accounts).
pub async fn set_balance(endpoint: &str, account: Address, wei: U256) -> Result<(), ChainError> {
    let _: serde_json::Value = dev_rpc(
        endpoint,
        "anvil_setBalance",
        serde_json::json!([account, format!("{wei:#x}")]),
    )
    .await?;
    Ok(())
}

/// On a development chain: mines `blocks` blocks.
pub async fn mine(endpoint: &str, blocks: u64) -> Result<(), ChainError> {
    for _ in 0..blocks {
        let _: serde_json::Value = dev_rpc(endpoint, "evm_mine", serde_json::json!([])).await?;
    }
    Ok(())
}
