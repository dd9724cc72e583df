//! The `dbytes` command line: parses arguments and calls into the library
//! crates. No logic lives here.

use std::path::PathBuf;

use alloy_primitives::{Address, B256, U256};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use dbytes_ledger::chain::deal::DealRequest;
use dbytes_ledger::chain::deploy::{DeployOptions, deploy};
use dbytes_ledger::chain::eip712::{SignedQuote, SignedRenewal};
use dbytes_ledger::chain::units::{format_bytes, format_tokens, parse_bytes, parse_tokens};
use dbytes_ledger::chain::{AcceptPolicy, ChainClient, Region, WalletSource, deployment, wallet};
use dbytes_ledger::market::{self, ListingQuery, report};
use dbytes_ledger::{keys::RootSecret, keystore};
use zeroize::Zeroizing;

mod devnet_cli;
mod gateway_cli;
mod placement_cli;
mod provider_cli;
mod repair_cli;

/// dBytes: an S3-compatible gateway in front of a decentralized mesh of
/// storage providers, settled on an EVM chain.
#[derive(Parser)]
#[command(name = "dbytes", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, import and inspect wallets.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Deploy the contracts.
    #[command(subcommand)]
    Contracts(ContractsCommand),
    /// Search the market's listings.
    #[command(subcommand)]
    Market(MarketCommand),
    /// Open, list, renew and terminate storage deals.
    #[command(subcommand)]
    Deal(DealCommand),
    /// Run the whole local network: anvil, the contracts, providers and a
    /// gateway with an S3 user (Ctrl-C stops it; run again to resume).
    Devnet(devnet_cli::DevnetArgs),
    /// Set up and run an S3 gateway; manage its users.
    #[command(subcommand)]
    Gateway(gateway_cli::GatewayCommand),
    /// Plan redundancy: the cheapest k/n for a durability target.
    #[command(subcommand)]
    Placement(placement_cli::PlacementCommand),
    /// Run a storage provider: init, run, status, deals.
    #[command(subcommand)]
    Provider(provider_cli::ProviderCommand),
    /// See how the gateway's repair worker keeps redundancy up.
    #[command(subcommand)]
    Repair(repair_cli::RepairCommand),
    /// Get test tokens from the faucet (local networks).
    Faucet {
        /// Who receives them (default: the wallet).
        #[arg(long)]
        to: Option<Address>,
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        wallet: WalletArgs,
    },
}

/// Which deployment, through which endpoint.
#[derive(Args, Clone)]
struct ChainArgs {
    /// The deployment file written by `dbytes contracts deploy`.
    #[arg(long, env = "DBYTES_DEPLOYMENT", default_value = deployment::DEFAULT_FILE)]
    deployment: PathBuf,
    /// JSON-RPC endpoint (default: the one in the deployment file).
    #[arg(long, env = "DBYTES_RPC_URL")]
    rpc_url: Option<String>,
}

/// The wallet that signs: a keystore file or a recovery phrase.
#[derive(Args, Clone)]
struct WalletArgs {
    /// A root keystore (`dbytes wallet new`) or a Web3 wallet keystore.
    #[arg(long, env = "DBYTES_KEYSTORE")]
    keystore: Option<PathBuf>,
    /// Password of the keystore.
    #[arg(long, env = "DBYTES_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// A recovery phrase instead of a keystore.
    #[arg(
        long,
        env = "DBYTES_MNEMONIC",
        hide_env_values = true,
        conflicts_with = "keystore"
    )]
    mnemonic: Option<String>,
    /// Account index under the phrase (m/44'/60'/0'/0/<index>).
    #[arg(long, default_value_t = 0)]
    account: u32,
}

impl WalletArgs {
    fn source(&self) -> Option<WalletSource> {
        if let Some(path) = &self.keystore {
            return Some(WalletSource::Keystore {
                path: path.clone(),
                password: Zeroizing::new(self.password.clone().unwrap_or_default()),
                index: self.account,
            });
        }
        self.mnemonic.as_ref().map(|phrase| WalletSource::Mnemonic {
            phrase: Zeroizing::new(phrase.clone()),
            index: self.account,
        })
    }
}

#[derive(Subcommand)]
enum WalletCommand {
    /// Generate a new recovery phrase and write it, encrypted, to a keystore.
    New {
        /// The keystore file to write (Web3 Secret Storage JSON).
        #[arg(long, default_value = "dbytes-root.json")]
        keystore: PathBuf,
        /// Password of the keystore.
        #[arg(long, env = "DBYTES_PASSWORD", hide_env_values = true)]
        password: String,
        /// Words in the phrase: 12, 15, 18, 21 or 24.
        #[arg(long, default_value_t = 24)]
        words: usize,
    },
    /// Print the EVM address of a root keystore.
    Address {
        /// The root keystore written by `dbytes wallet new`.
        #[arg(long, default_value = "dbytes-root.json")]
        keystore: PathBuf,
        /// Password of the keystore.
        #[arg(long, env = "DBYTES_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Write a keystore for an existing recovery phrase or private key.
    Import {
        /// The keystore file to write.
        #[arg(long, default_value = "dbytes-root.json")]
        keystore: PathBuf,
        /// Password of the keystore.
        #[arg(long, env = "DBYTES_PASSWORD", hide_env_values = true)]
        password: String,
        /// The recovery phrase to import (writes a root keystore).
        #[arg(
            long,
            env = "DBYTES_MNEMONIC",
            hide_env_values = true,
            required_unless_present = "private_key"
        )]
        phrase: Option<String>,
        /// A hex private key to import instead (writes a wallet keystore).
        #[arg(
            long,
            env = "DBYTES_PRIVATE_KEY",
            hide_env_values = true,
            conflicts_with = "phrase"
        )]
        private_key: Option<String>,
    },
    /// Print an account's gas, tokens, credit and collateral.
    Balance {
        /// The account (default: the wallet's).
        #[arg(long)]
        address: Option<Address>,
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        wallet: WalletArgs,
    },
}

#[derive(Subcommand)]
enum ContractsCommand {
    /// Deploy token, faucet (local chains), registry, proofs and marketplace
    /// from the committed artifacts, and write the deployment file.
    Deploy {
        /// JSON-RPC endpoint of the chain.
        #[arg(long, env = "DBYTES_RPC_URL")]
        rpc_url: String,
        /// Where to write the deployment file.
        #[arg(long, env = "DBYTES_DEPLOYMENT", default_value = deployment::DEFAULT_FILE)]
        out: PathBuf,
        /// Overwrite an existing deployment file.
        #[arg(long)]
        force: bool,
        /// Period length in seconds.
        #[arg(long, default_value_t = 86_400)]
        period_secs: u64,
        /// Proof grace after each period (default: a twelfth of a period).
        #[arg(long)]
        proof_grace_secs: Option<u64>,
        /// Challenged leaves per deal per period (1 to 16).
        #[arg(long, default_value_t = 4)]
        challenges: u64,
        /// Blocks between a seed's anchoring and its source block.
        #[arg(long, default_value_t = 2)]
        seed_lookahead_blocks: u64,
        /// Periods a repair deal has for its first proof.
        #[arg(long, default_value_t = 2)]
        fill_periods: u64,
        /// Notice periods of a provider's graceful exit.
        #[arg(long, default_value_t = 3)]
        exit_notice_periods: u64,
        /// Tokens minted to the deployer.
        #[arg(long, value_parser = parse_tokens, default_value = "1000000000")]
        initial_supply: U256,
        /// Deploy a faucet even on a chain that is not local.
        #[arg(long, conflicts_with = "no_faucet")]
        faucet: bool,
        /// Deploy no faucet even on a local chain.
        #[arg(long)]
        no_faucet: bool,
        #[command(flatten)]
        wallet: WalletArgs,
    },
}

/// Where the market index lives.
#[derive(Args, Clone)]
struct IndexArgs {
    /// The market index file (rebuilt from the chain if missing).
    #[arg(long, env = "DBYTES_MARKET_INDEX", default_value = market::DEFAULT_INDEX_FILE)]
    index: PathBuf,
}

#[derive(Subcommand)]
enum MarketCommand {
    /// List providers taking deals that match.
    Search {
        /// At least this much free capacity (e.g. 100GiB).
        #[arg(long, value_parser = parse_bytes)]
        min_free: Option<u64>,
        /// At most this price per GiB-month, in tokens.
        #[arg(long, value_parser = parse_tokens)]
        max_price: Option<U256>,
        /// Region code (e.g. DE).
        #[arg(long)]
        region: Option<Region>,
        /// Taking deals of this many periods.
        #[arg(long)]
        periods: Option<u32>,
        /// Proof score at least this (0 to 1).
        #[arg(long)]
        min_score: Option<f64>,
        /// Accept policy: auto, manual or quote.
        #[arg(long)]
        policy: Option<AcceptPolicy>,
        /// Include paused listings.
        #[arg(long)]
        include_paused: bool,
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        index: IndexArgs,
    },
    /// A provider's listing, live deals, proof record and earnings.
    Show {
        /// The provider's address.
        provider: Address,
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        index: IndexArgs,
    },
}

#[derive(Subcommand)]
enum DealCommand {
    /// List a consumer's deals.
    List {
        /// The consumer (default: the wallet).
        #[arg(long)]
        consumer: Option<Address>,
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        wallet: WalletArgs,
    },
    /// Open a deal: automatically, by proposal (--propose) or from a quote (--quote).
    Open {
        /// The provider (not needed with --quote).
        #[arg(long, required_unless_present = "quote")]
        provider: Option<Address>,
        /// Capacity to reserve (e.g. 10GiB).
        #[arg(long, value_parser = parse_bytes, required_unless_present = "quote")]
        capacity: Option<u64>,
        /// Length in periods.
        #[arg(long, required_unless_present = "quote")]
        periods: Option<u32>,
        /// Price per GiB-month in tokens (default: the provider's ask).
        #[arg(long, value_parser = parse_tokens)]
        price: Option<U256>,
        /// The consumer's iroh node id (64 hex digits): the only node the provider serves.
        #[arg(long, env = "DBYTES_NODE_ID")]
        node_id: B256,
        /// Propose the deal for the provider to accept.
        #[arg(long, conflicts_with = "quote")]
        propose: bool,
        /// Start period of a proposal (default: the next period).
        #[arg(long, requires = "propose")]
        start: Option<u64>,
        /// A signed quote file from the provider.
        #[arg(long)]
        quote: Option<PathBuf>,
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        wallet: WalletArgs,
    },
    /// Sign a quote on your listing's terms for a consumer (providers).
    Quote {
        /// The consumer allowed to redeem it (default: anyone).
        #[arg(long)]
        consumer: Option<Address>,
        /// Capacity (e.g. 10GiB).
        #[arg(long, value_parser = parse_bytes)]
        capacity: u64,
        /// Length in periods.
        #[arg(long)]
        periods: u32,
        /// Seconds the quote stays valid.
        #[arg(long, default_value_t = 3600)]
        valid_secs: u64,
        /// Where to write the signed quote.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        wallet: WalletArgs,
    },
    /// Extend a deal by some periods at its rate.
    Renew {
        /// The deal.
        id: U256,
        /// Periods to add.
        #[arg(long)]
        periods: u32,
        /// The provider's signed consent (needed unless it renews automatically).
        #[arg(long)]
        consent: Option<PathBuf>,
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        wallet: WalletArgs,
    },
    /// End a deal with one period's notice; the rest of the escrow is refunded.
    Terminate {
        /// The deal.
        id: U256,
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        wallet: WalletArgs,
    },
}

async fn client(chain: &ChainArgs, wallet: Option<&WalletArgs>) -> anyhow::Result<ChainClient> {
    let source = wallet.and_then(WalletArgs::source);
    Ok(ChainClient::open(&chain.deployment, chain.rpc_url.as_deref(), source.as_ref()).await?)
}

fn me(client: &ChainClient, given: Option<Address>, what: &str) -> anyhow::Result<Address> {
    given
        .or(client.address())
        .with_context(|| format!("pass --{what}, or a wallet (--keystore or --mnemonic)"))
}

fn tokens_u128(amount: U256, what: &str) -> anyhow::Result<u128> {
    u128::try_from(amount).map_err(|_| anyhow::anyhow!("the {what} is too large"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Devnet(args) => devnet_cli::run(args).await?,
        Command::Gateway(command) => gateway_cli::run(command).await?,
        Command::Placement(command) => placement_cli::run(command)?,
        Command::Provider(command) => provider_cli::run(command).await?,
        Command::Repair(command) => repair_cli::run(command).await?,
        Command::Wallet(WalletCommand::New {
            keystore: path,
            password,
            words,
        }) => {
            anyhow::ensure!(
                !path.exists(),
                "{} already exists; choose another --keystore or move it away first",
                path.display()
            );
            let mut rng = rand::thread_rng();
            let root = RootSecret::generate(&mut rng, words)?;
            keystore::write_root(&path, &root, &password, &mut rng)?;
            println!("recovery phrase (write it down; it is the only backup of every key):");
            println!("  {}", root.phrase());
            println!("address: {}", root.address()?);
            println!("keystore: {}", path.display());
        }
        Command::Wallet(WalletCommand::Address {
            keystore: path,
            password,
        }) => {
            let root = keystore::read_root(&path, &password)
                .with_context(|| format!("opening {}", path.display()))?;
            println!("{}", root.address()?);
        }
        Command::Wallet(WalletCommand::Import {
            keystore: path,
            password,
            phrase,
            private_key,
        }) => {
            let mut rng = rand::thread_rng();
            let address = match (phrase, private_key) {
                (_, Some(key)) => wallet::import_private_key(&path, &key, &password, &mut rng)?,
                (Some(phrase), None) => wallet::import_phrase(&path, &phrase, &password, &mut rng)?,
                (None, None) => anyhow::bail!("pass --phrase or --private-key"),
            };
            println!("address: {address}");
            println!("keystore: {}", path.display());
        }
        Command::Wallet(WalletCommand::Balance {
            address,
            chain,
            wallet,
        }) => {
            let client = client(&chain, Some(&wallet)).await?;
            let account = me(&client, address, "address")?;
            println!("{}", client.balances(account).await?);
        }
        Command::Contracts(ContractsCommand::Deploy {
            rpc_url,
            out,
            force,
            period_secs,
            proof_grace_secs,
            challenges,
            seed_lookahead_blocks,
            fill_periods,
            exit_notice_periods,
            initial_supply,
            faucet,
            no_faucet,
            wallet,
        }) => {
            anyhow::ensure!(
                force || !out.exists(),
                "{} already exists (a deployment other commands may be using); pass --force to \
                 overwrite it or --out to write elsewhere",
                out.display()
            );
            let signer = wallet
                .source()
                .context("the deployer needs a wallet: pass --keystore or --mnemonic")?
                .open()?;
            let defaults = DeployOptions::with_period(period_secs);
            let options = DeployOptions {
                proof_grace_secs: proof_grace_secs.unwrap_or(defaults.proof_grace_secs),
                challenges,
                seed_lookahead_blocks,
                fill_periods,
                exit_notice_periods,
                initial_supply,
                faucet: if faucet {
                    Some(true)
                } else if no_faucet {
                    Some(false)
                } else {
                    None
                },
                ..defaults
            };
            let deployment = deploy(&rpc_url, signer, &options).await?;
            deployment.save(&out)?;
            println!("chain id     {}", deployment.chain_id);
            println!("token        {}", deployment.contracts.token);
            if let Some(faucet) = deployment.contracts.faucet {
                println!("faucet       {faucet}");
            }
            println!("registry     {}", deployment.contracts.registry);
            println!("proofs       {}", deployment.contracts.proofs);
            println!("marketplace  {}", deployment.contracts.marketplace);
            println!("deployment   {}", out.display());
        }
        Command::Market(MarketCommand::Search {
            min_free,
            max_price,
            region,
            periods,
            min_score,
            policy,
            include_paused,
            chain,
            index,
        }) => {
            let client = client(&chain, None).await?;
            let index = market::open_synced(&client, &index.index).await?;
            let query = ListingQuery {
                min_free_bytes: min_free,
                max_price_per_gib_month: max_price.map(|p| tokens_u128(p, "price")).transpose()?,
                region,
                periods,
                min_score,
                policy,
                include_paused,
            };
            println!("{}", report::listings(&index.search(&query)?));
        }
        Command::Market(MarketCommand::Show {
            provider,
            chain,
            index,
        }) => {
            let client = client(&chain, None).await?;
            let index = market::open_synced(&client, &index.index).await?;
            let record = index
                .provider(provider)?
                .with_context(|| format!("{provider} has never listed on this market"))?;
            let deals = index.deals_of_provider(provider)?;
            print!("{}", report::provider(&record, &deals));
        }
        Command::Deal(DealCommand::List {
            consumer,
            chain,
            wallet,
        }) => {
            let client = client(&chain, Some(&wallet)).await?;
            let consumer = me(&client, consumer, "consumer")?;
            println!(
                "{}",
                report::consumer_deals(&client.consumer_deals(consumer).await?)
            );
        }
        Command::Deal(DealCommand::Open {
            provider,
            capacity,
            periods,
            price,
            node_id,
            propose,
            start,
            quote,
            chain,
            wallet,
        }) => {
            let client = client(&chain, Some(&wallet)).await?;
            let id = if let Some(path) = quote {
                client
                    .open_deal_with_quote(&SignedQuote::load(&path)?, node_id)
                    .await?
            } else {
                let request = DealRequest {
                    provider: provider.context("pass --provider")?,
                    capacity_bytes: capacity.context("pass --capacity")?,
                    periods: periods.context("pass --periods")?,
                    price_per_gib_month: price.map(|p| tokens_u128(p, "price")).transpose()?,
                    consumer_node_id: node_id,
                };
                let (_, cost) = client.price_deal(&request).await?;
                println!(
                    "{} for {} periods: escrow {}, provider collateral {}",
                    format_bytes(request.capacity_bytes),
                    request.periods,
                    format_tokens(cost.escrow),
                    format_tokens(cost.collateral)
                );
                if propose {
                    client.propose_deal(&request, start).await?
                } else {
                    client.open_deal(&request).await?
                }
            };
            let deal = client
                .deal(id)
                .await?
                .context("the new deal is not on chain")?;
            println!(
                "deal {id}: {} with {}, periods {} to {}",
                deal.state, deal.provider, deal.settled_to, deal.end
            );
        }
        Command::Deal(DealCommand::Quote {
            consumer,
            capacity,
            periods,
            valid_secs,
            out,
            chain,
            wallet,
        }) => {
            let client = client(&chain, Some(&wallet)).await?;
            let quote = client
                .make_quote(consumer, capacity, periods, valid_secs)
                .await?;
            quote.save(&out)?;
            println!(
                "quote written to {} (valid until unix time {})",
                out.display(),
                quote.quote.valid_until
            );
        }
        Command::Deal(DealCommand::Renew {
            id,
            periods,
            consent,
            chain,
            wallet,
        }) => {
            let client = client(&chain, Some(&wallet)).await?;
            let consent = consent.map(|path| SignedRenewal::load(&path)).transpose()?;
            let end = client.renew(id, periods, consent.as_ref()).await?;
            println!("deal {id} now ends at period {end}");
        }
        Command::Deal(DealCommand::Terminate { id, chain, wallet }) => {
            let client = client(&chain, Some(&wallet)).await?;
            let end = client.terminate(id).await?;
            println!(
                "deal {id} ends at period {end}; the rest of its escrow is in your credit (`withdraw`)"
            );
        }
        Command::Faucet { to, chain, wallet } => {
            let client = client(&chain, Some(&wallet)).await?;
            let to = me(&client, to, "to")?;
            let amount = client.faucet_drip(to).await?;
            println!("{} sent to {to}", format_tokens(amount));
        }
    }
    Ok(())
}
