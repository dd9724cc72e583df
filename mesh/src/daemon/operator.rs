//! What the operator's commands do: `dbytes provider status` (read-only,
//! works while the daemon runs: it reads the daemon's `node.json` and
//! `status.json` and asks the chain) and `dbytes provider deals` (pending
//! proposals; accept or decline one: handed to the running daemon, which
//! sends it with its own transactions, or sent with the provider's wallet
//! when no daemon runs).

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use dbytes_ledger::chain::units::{format_bytes, format_tokens};
use dbytes_ledger::chain::{ChainClient, Deal, DealState, Listing, Pool};

use super::config::DaemonConfig;
use super::decisions::{Decision, DecisionOutcome, DecisionQueue};
use super::state::{NodeFile, StatusFile};
use super::{DaemonError, connect, open_wallet, unix_now};
use crate::deal::DealId;

/// A provider's state, from its files and the chain.
#[derive(Debug, Clone)]
pub struct ProviderReport {
    /// Where the daemon said it listens (absent if it never ran).
    pub node: Option<NodeFile>,
    /// The daemon's counters (absent if it never ran).
    pub status: Option<StatusFile>,
    /// The provider's wallet.
    pub wallet: Address,
    /// Its listing.
    pub listing: Option<Listing>,
    /// Its collateral pool.
    pub pool: Pool,
    /// Its credit, not yet withdrawn.
    pub credit: U256,
    /// Its deals.
    pub deals: Vec<Deal>,
}

/// The wallet address: from `node.json` if the daemon ran (no password
/// needed), else from the keystore.
async fn wallet_address(config: &DaemonConfig) -> Result<Address, DaemonError> {
    if let Ok(Some(node)) = NodeFile::load(&config.mesh.data_dir) {
        return Ok(node.wallet);
    }
    Ok(open_wallet(config).await?.address())
}

async fn provider_deals(client: &ChainClient, provider: Address) -> Result<Vec<Deal>, DaemonError> {
    let mut deals = Vec::new();
    for id in client.provider_deal_ids(provider).await? {
        if let Some(deal) = client.deal(id).await? {
            deals.push(deal);
        }
    }
    Ok(deals)
}

/// Gathers the report for the provider of `config`. Read-only.
pub async fn provider_report(config: &DaemonConfig) -> Result<ProviderReport, DaemonError> {
    let wallet = wallet_address(config).await?;
    let client = connect(config, None).await?;
    Ok(ProviderReport {
        node: NodeFile::load(&config.mesh.data_dir)?,
        status: StatusFile::load(&config.mesh.data_dir)?,
        listing: client.listing(wallet).await?,
        pool: client.pool(wallet).await?,
        credit: client.credit(wallet).await?,
        deals: provider_deals(&client, wallet).await?,
        wallet,
    })
}

/// Proposals to the provider of `config` still open (their start period has
/// not begun).
pub async fn pending_deals(config: &DaemonConfig) -> Result<Vec<Deal>, DaemonError> {
    let wallet = wallet_address(config).await?;
    let client = connect(config, None).await?;
    let current = client.current_period().await?;
    Ok(provider_deals(&client, wallet)
        .await?
        .into_iter()
        .filter(|deal| deal.state == DealState::Proposed && current < deal.settled_to)
        .collect())
}

/// A status file older than this means the daemon is not running (it
/// rewrites the file at least once a minute).
const STATUS_STALE_SECS: u64 = 90;

/// The process id of the daemon running on `data_dir`, if one is: its
/// status file is fresh and (where `/proc` tells) its process exists.
pub fn running_daemon(data_dir: &Path) -> Option<u32> {
    let status = StatusFile::load(data_dir).ok()??;
    if unix_now().saturating_sub(status.updated_at) > STATUS_STALE_SECS {
        return None;
    }
    let proc = Path::new("/proc");
    if proc.join("self").exists() && !proc.join(status.pid.to_string()).exists() {
        return None;
    }
    Some(status.pid)
}

/// Hands the operator's decision on proposal `id` to the running daemon
/// (see [`super::decisions`]); [`await_decision`] waits for its outcome.
pub fn queue_decision(config: &DaemonConfig, id: DealId, accept: bool) -> Result<(), DaemonError> {
    let decision = Decision {
        deal: id.0,
        accept,
        queued_at: unix_now(),
    };
    DecisionQueue::new(&config.mesh.data_dir).queue(&decision)?;
    Ok(())
}

/// Waits up to `wait` for the daemon to carry out the decision queued on
/// `id`: the outcome if it sent the transaction, an error saying why not
/// (or that it is still queued).
pub async fn await_decision(
    config: &DaemonConfig,
    id: DealId,
    wait: Duration,
) -> Result<DecisionOutcome, DaemonError> {
    let queue = DecisionQueue::new(&config.mesh.data_dir);
    let deadline = Instant::now() + wait;
    loop {
        if let Some(outcome) = queue.outcome(id.0)? {
            return if outcome.sent {
                Ok(outcome)
            } else {
                Err(DaemonError::Decision(outcome.message))
            };
        }
        if Instant::now() >= deadline {
            return Err(DaemonError::Decision(format!(
                "the daemon has not sent the decision on deal {id} within {} s; it stays queued \
                 and the daemon sends it when it can: see `dbytes provider status` and the \
                 daemon's log",
                wait.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Accepts (`accept`) or declines proposal `id` with the provider's wallet,
/// from this process: only while no daemon runs on the wallet (see
/// [`running_daemon`]), or both could send with the same nonce.
pub async fn decide_deal(
    config: &DaemonConfig,
    id: DealId,
    accept: bool,
) -> Result<(), DaemonError> {
    let wallet = open_wallet(config).await?;
    let client = connect(config, Some(wallet)).await?;
    if accept {
        client.accept_deal(id.0).await?;
    } else {
        client.decline_deal(id.0).await?;
    }
    Ok(())
}

/// One line per deal.
pub fn deal_lines(deals: &[Deal]) -> String {
    if deals.is_empty() {
        return "no deals\n".to_string();
    }
    let mut out = String::new();
    for deal in deals {
        out.push_str(&format!(
            "deal {:>4}  {:<11} consumer {}  {:>10}  periods {}..{}  {} per period\n",
            deal.id,
            deal.state.name(),
            deal.consumer,
            format_bytes(deal.capacity_bytes),
            deal.settled_to,
            deal.end,
            format_tokens(U256::from(deal.rate_per_period)),
        ));
    }
    out
}

impl fmt::Display for ProviderReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "wallet      {}", self.wallet)?;
        match &self.node {
            Some(node) => {
                writeln!(f, "node id     {}", node.node_id)?;
                let addrs: Vec<String> = node.addrs.iter().map(ToString::to_string).collect();
                writeln!(f, "addresses   {}", addrs.join(", "))?;
            }
            None => writeln!(f, "node        never started (`dbytes provider run`)")?,
        }
        match &self.listing {
            Some(listing) => writeln!(
                f,
                "listing     {}, {} offered, {} reserved by {} live deals, {} per GiB-month",
                listing.status.name(),
                format_bytes(listing.terms.capacity_bytes),
                format_bytes(listing.used_bytes),
                listing.live_deals,
                format_tokens(U256::from(listing.terms.price_per_gib_month)),
            )?,
            None => writeln!(f, "listing     none yet (the daemon registers it on start)")?,
        }
        writeln!(
            f,
            "collateral  {} deposited, {} locked",
            format_tokens(U256::from(self.pool.deposited)),
            format_tokens(U256::from(self.pool.locked))
        )?;
        if let Some(status) = &self.status {
            let age = unix_now().saturating_sub(status.updated_at);
            writeln!(
                f,
                "store       {} of {} used ({} free), {} pieces",
                format_bytes(status.used_bytes),
                format_bytes(status.capacity_bytes),
                format_bytes(status.capacity_bytes.saturating_sub(status.used_bytes)),
                status.pieces
            )?;
            writeln!(
                f,
                "proofs      {} made, {} missed",
                status.proofs_made, status.proofs_missed
            )?;
            let withdrawn = U256::from_str_radix(&status.withdrawn, 10).unwrap_or_default();
            writeln!(
                f,
                "earnings    {} withdrawn, {} credited",
                format_tokens(withdrawn),
                format_tokens(self.credit)
            )?;
            let running = age < 120;
            writeln!(
                f,
                "daemon      {} (pid {}), up {} s, status written {} s ago",
                if running {
                    "running"
                } else {
                    "not seen recently"
                },
                status.pid,
                unix_now().saturating_sub(status.started_at),
                age
            )?;
            for (chain_loop, error) in &status.errors {
                writeln!(f, "failing     {chain_loop}: {error}")?;
            }
        } else {
            writeln!(f, "earnings    {} credited", format_tokens(self.credit))?;
        }
        write!(f, "{}", deal_lines(&self.deals))
    }
}
