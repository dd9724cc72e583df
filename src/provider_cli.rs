//! `dbytes provider`: init, run, status and deals. Parses arguments and
//! calls `dbytes_mesh::daemon`; no logic lives here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy_primitives::U256;
use anyhow::Context;
use clap::Subcommand;
use dbytes_mesh::daemon::ProviderDaemon;
use dbytes_mesh::daemon::config::{DaemonConfig, PASSWORD_ENV};
use dbytes_mesh::daemon::init::{InitOptions, init_provider};
use dbytes_mesh::daemon::operator::{
    await_decision, deal_lines, decide_deal, pending_deals, provider_report, queue_decision,
    running_daemon,
};
use dbytes_mesh::deal::DealId;
use zeroize::Zeroizing;

/// Run a storage provider: rent out disk, earn tokens.
#[derive(Subcommand)]
pub enum ProviderCommand {
    /// Write a provider directory: a commented config, a wallet keystore and
    /// a node key; prints the address to fund.
    Init {
        /// The provider directory.
        #[arg(long, default_value = "dbytes-provider")]
        dir: PathBuf,
        /// JSON-RPC endpoint (default: the deployment file's).
        #[arg(long, env = "DBYTES_RPC_URL")]
        rpc_url: Option<String>,
        /// The deployment file written by `dbytes contracts deploy`.
        #[arg(long, env = "DBYTES_DEPLOYMENT")]
        deployment: Option<PathBuf>,
        /// A file holding the recovery phrase to use (default: generate one).
        #[arg(long)]
        mnemonic_file: Option<PathBuf>,
        /// The piece protocol's UDP address.
        #[arg(long, default_value = "0.0.0.0:7700")]
        listen_addr: SocketAddr,
        /// Where /metrics is served (`off` for nowhere).
        #[arg(long, default_value = "127.0.0.1:9464")]
        metrics_addr: String,
        /// The keystore's password.
        #[arg(long, env = PASSWORD_ENV, hide_env_values = true)]
        password: String,
    },
    /// Run the provider daemon until interrupted.
    Run {
        /// The provider's config file.
        #[arg(long, default_value = "dbytes-provider/provider.toml")]
        config: PathBuf,
    },
    /// Capacity, deals, proofs, earnings and uptime (read-only; works while
    /// the daemon runs).
    Status {
        /// The provider's config file.
        #[arg(long, default_value = "dbytes-provider/provider.toml")]
        config: PathBuf,
    },
    /// List pending proposals (`--pending`), or `accept ID` / `decline ID`.
    /// While the daemon runs, the decision is handed to it (it sends it with
    /// its own transactions) and the command waits for the result.
    Deals {
        /// List proposals waiting for an answer (the default).
        #[arg(long)]
        pending: bool,
        #[command(subcommand)]
        action: Option<DealAction>,
        /// The provider's config file.
        #[arg(long, global = true, default_value = "dbytes-provider/provider.toml")]
        config: PathBuf,
        /// How long to wait for the running daemon to send a decision.
        #[arg(long, global = true, default_value_t = 120)]
        wait_secs: u64,
    },
}

/// What to do with a proposal.
#[derive(Subcommand)]
pub enum DealAction {
    /// Accept proposal ID, locking its collateral.
    Accept {
        /// The deal.
        id: U256,
    },
    /// Decline proposal ID; its escrow goes back to the consumer.
    Decline {
        /// The deal.
        id: U256,
    },
}

fn load(config: &Path) -> anyhow::Result<DaemonConfig> {
    DaemonConfig::load(config).with_context(|| {
        format!(
            "loading {} (create one with `dbytes provider init`)",
            config.display()
        )
    })
}

/// Waits for Ctrl-C or SIGTERM.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs one `dbytes provider` command.
pub async fn run(command: ProviderCommand) -> anyhow::Result<()> {
    match command {
        ProviderCommand::Init {
            dir,
            rpc_url,
            deployment,
            mnemonic_file,
            listen_addr,
            metrics_addr,
            password,
        } => {
            let mnemonic = mnemonic_file
                .map(|path| {
                    std::fs::read_to_string(&path)
                        .map(Zeroizing::new)
                        .with_context(|| format!("reading the phrase from {}", path.display()))
                })
                .transpose()?;
            let options = InitOptions {
                rpc_url,
                deployment,
                mnemonic,
                listen_addr,
                metrics_addr,
                ..InitOptions::new(dir, Zeroizing::new(password))
            };
            let report = tokio::task::spawn_blocking(move || init_provider(&options)).await??;
            if let Some(phrase) = &report.generated_phrase {
                println!("recovery phrase (write it down; it is the only backup of every key):");
                println!("  {}", phrase.as_str());
            }
            println!("config:   {}", report.config.display());
            println!("keystore: {}", report.keystore.display());
            println!("node id:  {}", report.node_id);
            println!("address:  {}", report.address);
            println!(
                "fund {} with gas and tokens (collateral), then run `dbytes provider run --config {}` \
                 with {PASSWORD_ENV} set",
                report.address,
                report.config.display()
            );
        }
        ProviderCommand::Run { config } => {
            crate::gateway_cli::init_logging();
            let daemon = ProviderDaemon::start(load(&config)?).await?;
            println!("node id: {}", daemon.node_id());
            println!("wallet:  {}", daemon.wallet());
            if let Some(addr) = daemon.metrics_addr() {
                println!("metrics: http://{addr}/metrics");
            }
            interrupted().await;
            daemon.shutdown().await?;
        }
        ProviderCommand::Status { config } => {
            print!("{}", provider_report(&load(&config)?).await?);
        }
        ProviderCommand::Deals {
            pending: _,
            action,
            config,
            wait_secs,
        } => {
            let config = load(&config)?;
            let (id, accept) = match action {
                Some(DealAction::Accept { id }) => (id, true),
                Some(DealAction::Decline { id }) => (id, false),
                None => {
                    print!("{}", deal_lines(&pending_deals(&config).await?));
                    return Ok(());
                }
            };
            match running_daemon(&config.mesh.data_dir) {
                Some(pid) => {
                    // The daemon sends from the same wallet: hand it over.
                    queue_decision(&config, DealId(id), accept)?;
                    println!(
                        "queued for the running daemon (pid {pid}); waiting up to {wait_secs} s \
                         for its transaction"
                    );
                    let outcome =
                        await_decision(&config, DealId(id), Duration::from_secs(wait_secs)).await?;
                    println!("{}", outcome.message);
                }
                None => {
                    decide_deal(&config, DealId(id), accept).await?;
                    if accept {
                        println!("accepted deal {id}");
                    } else {
                        println!("declined deal {id}; its escrow went back to the consumer");
                    }
                }
            }
        }
    }
    Ok(())
}
