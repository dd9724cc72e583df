//! `dbytes gateway`: set up and run an S3 gateway, and manage its users.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use dbytes_gateway::admin::{self, AdminReply, AdminRequest};
use dbytes_gateway::node::GatewayNode;
use dbytes_gateway::settings::{GatewaySettings, TEMPLATE};
use dbytes_ledger::book::Book;
use dbytes_ledger::keys::RootSecret;
use dbytes_ledger::keystore;

/// The environment variable holding the gateway keystore's password.
pub const PASSWORD_ENV: &str = "DBYTES_GATEWAY_PASSWORD";

#[derive(Subcommand)]
pub enum GatewayCommand {
    /// Write a commented config file and a fresh root keystore into a
    /// directory, and print the address to fund.
    Init {
        /// The gateway's directory.
        #[arg(long, default_value = "dbytes-gateway")]
        dir: PathBuf,
        /// Restore from this recovery phrase instead of generating one.
        #[arg(long, env = "DBYTES_MNEMONIC", hide_env_values = true)]
        mnemonic: Option<String>,
    },
    /// Run the gateway: the S3 endpoint, the mesh store, the workers and
    /// `/metrics`, until Ctrl-C.
    Run {
        /// The config file (`dbytes gateway init` writes one).
        #[arg(long, default_value = "dbytes-gateway/gateway.toml")]
        config: PathBuf,
    },
    /// Issue, list and revoke S3 users and their access keys, through the
    /// running gateway (its admin socket) or, when it is stopped, on its
    /// book directly. A revoked key is refused from the next request on.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user and issue it an access key (printed once).
    Add {
        /// The user's id (owner of its buckets).
        name: String,
        #[arg(long, default_value = "dbytes-gateway/gateway.toml")]
        config: PathBuf,
    },
    /// Issue another access key to an existing user.
    Key {
        /// The user's id.
        name: String,
        #[arg(long, default_value = "dbytes-gateway/gateway.toml")]
        config: PathBuf,
    },
    /// List users and their access key ids.
    List {
        #[arg(long, default_value = "dbytes-gateway/gateway.toml")]
        config: PathBuf,
    },
    /// Remove a user (refused while it owns buckets) or revoke one access
    /// key (`--key`).
    Remove {
        /// The user's id.
        name: String,
        /// Revoke only this access key.
        #[arg(long)]
        key: Option<String>,
        #[arg(long, default_value = "dbytes-gateway/gateway.toml")]
        config: PathBuf,
    },
}

pub async fn run(command: GatewayCommand) -> anyhow::Result<()> {
    match command {
        GatewayCommand::Init { dir, mnemonic } => init(&dir, mnemonic.as_deref()),
        GatewayCommand::Run { config } => serve(&config).await,
        GatewayCommand::User(command) => user(command).await,
    }
}

/// Writes `dir/gateway.toml` and `dir/root-keystore.json`.
fn init(dir: &Path, mnemonic: Option<&str>) -> anyhow::Result<()> {
    let config = dir.join("gateway.toml");
    anyhow::ensure!(
        !config.exists(),
        "{} already exists; this directory already holds a gateway",
        config.display()
    );
    let password = std::env::var(PASSWORD_ENV).with_context(|| {
        format!("set {PASSWORD_ENV} to the password that will protect the gateway's keystore")
    })?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut rng = rand::thread_rng();
    let root = match mnemonic {
        Some(phrase) => RootSecret::from_phrase(phrase)?,
        None => RootSecret::generate(&mut rng, 24)?,
    };
    let settings = GatewaySettings::default();
    keystore::write_root(
        &dir.join(&settings.secret.keystore),
        &root,
        &password,
        &mut rng,
    )?;
    std::fs::write(&config, TEMPLATE).with_context(|| format!("writing {}", config.display()))?;
    if mnemonic.is_none() {
        println!("recovery phrase (write it down; it is the only backup of the gateway's keys):");
        println!("  {}", root.phrase());
    }
    println!(
        "wallet address (fund it with tokens for deals): {}",
        root.address()?
    );
    println!("config: {}", config.display());
    println!(
        "next: add a user with `dbytes gateway user add <name> --config {}`",
        config.display()
    );
    Ok(())
}

/// Runs the gateway of `config` until Ctrl-C.
async fn serve(config: &Path) -> anyhow::Result<()> {
    init_logging();
    let settings = GatewaySettings::load(config)?;
    let password = if settings.secret.password_file.as_os_str().is_empty() {
        std::env::var(PASSWORD_ENV).with_context(|| {
            format!(
                "set {PASSWORD_ENV} or [secret] password_file in {} to open the keystore",
                config.display()
            )
        })?
    } else {
        let path = &settings.secret.password_file;
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the password file {}", path.display()))?
            .trim_end_matches(['\r', '\n'])
            .to_owned()
    };
    let keystore = settings.secret.keystore.clone();
    let root = tokio::task::spawn_blocking(move || keystore::read_root(&keystore, &password))
        .await?
        .with_context(|| format!("opening {}", settings.secret.keystore.display()))?;
    let node = GatewayNode::start(&settings, &root).await?;
    println!("S3 endpoint: http://{}", node.s3_addr());
    if let Some(metrics) = node.metrics_addr() {
        println!("metrics: http://{metrics}/metrics");
    }
    println!("wallet: {}  node: {}", node.wallet(), node.node_id());
    tokio::signal::ctrl_c().await?;
    println!("stopping the gateway");
    node.shutdown().await;
    Ok(())
}

/// Logs to stderr, filtered by `RUST_LOG` (default: info).
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Carries out a user command: through the running gateway's admin socket
/// when one answers, else on the book directly (the gateway is stopped).
async fn user(command: UserCommand) -> anyhow::Result<()> {
    let (config, request) = match command {
        UserCommand::Add { name, config } => (config, AdminRequest::AddUser { name }),
        UserCommand::Key { name, config } => (config, AdminRequest::IssueKey { name }),
        UserCommand::List { config } => (config, AdminRequest::ListUsers),
        UserCommand::Remove {
            name,
            key: Some(key),
            config,
        } => (config, AdminRequest::RevokeKey { name, key }),
        UserCommand::Remove {
            name,
            key: None,
            config,
        } => (config, AdminRequest::RemoveUser { name }),
    };
    let settings = GatewaySettings::load(&config)?;
    let socket = admin::socket_path(&settings.storage.data_dir);
    let reply = match admin::request(&socket, &request).await {
        Ok(reply) => reply,
        Err(running) => {
            let path = settings.book_path();
            let book = tokio::task::spawn_blocking(move || Book::open(&path))
                .await?
                .with_context(|| {
                    format!(
                        "opening the book {} (no gateway answered on {}: {running})",
                        settings.book_path().display(),
                        socket.display()
                    )
                })?;
            let now = dbytes_gateway::s3::now_ms();
            tokio::task::spawn_blocking(move || admin::execute(&book, &request, now)).await?
        }
    };
    match reply {
        AdminReply::Key {
            user,
            access_key_id,
            secret_access_key,
        } => {
            println!("user: {user}");
            println!("access key id: {access_key_id}");
            println!("secret access key: {secret_access_key}");
        }
        AdminReply::Users { users } => {
            for user in users {
                println!(
                    "{}\tbuckets={}\tkeys={}",
                    user.id,
                    user.buckets,
                    user.keys.join(",")
                );
            }
        }
        AdminReply::Report { text } => print!("{text}"),
        AdminReply::Done { message } => println!("{message}"),
        AdminReply::Error { message } => anyhow::bail!(message),
    }
    Ok(())
}
