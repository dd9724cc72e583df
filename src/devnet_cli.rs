//! `dbytes devnet`: the whole local network (chain, contracts, providers,
//! gateway) in one command.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use dbytes_gateway::devnet::{Devnet, DevnetOptions, default_redundancy};

#[derive(Args)]
pub struct DevnetArgs {
    /// Provider daemons to run.
    #[arg(long, default_value_t = 6)]
    providers: usize,
    /// Where the network keeps everything; an existing directory resumes.
    #[arg(long, default_value = "dbytes-devnet")]
    dir: PathBuf,
    /// Port of the S3 endpoint on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 9000)]
    s3_port: u16,
    /// Period length of a fresh network, seconds (proofs are due every period).
    #[arg(long, default_value_t = 60)]
    period_secs: u64,
}

pub async fn run(args: DevnetArgs) -> anyhow::Result<()> {
    crate::gateway_cli::init_logging();
    anyhow::ensure!(
        (1..=60).contains(&args.providers),
        "--providers must be 1 to 60, not {}",
        args.providers
    );
    let options = DevnetOptions {
        s3_addr: SocketAddr::from(([127, 0, 0, 1], args.s3_port)),
        period_secs: args.period_secs,
        redundancy: default_redundancy(args.providers),
        ..DevnetOptions::new(args.dir, args.providers)
    };
    let devnet = Devnet::start(&options).await?;
    println!("{}", devnet.banner());
    wait_for_stop().await?;
    println!("stopping the local network (the chain is saved for the next run)");
    devnet.stop().await;
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM.
async fn wait_for_stop() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
