//! The `dbytes` command line: parses arguments and calls into the library
//! crates. No logic lives here.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dbytes_ledger::{keys::RootSecret, keystore};

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
    /// Create and inspect the keys derived from a recovery phrase.
    #[command(subcommand)]
    Wallet(WalletCommand),
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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
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
    }
    Ok(())
}
