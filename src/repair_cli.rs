//! `dbytes repair status`: how a gateway's redundancy stands.
//!
//! While the gateway runs it holds the book (redb opens a file in one
//! process at a time), so the report comes from the gateway itself, over
//! its admin socket; with the gateway stopped the command opens the book.
//! A running gateway whose admin socket does not answer (another user, a
//! socket removed by hand) is asked through its `/metrics` instead, which
//! give the same figures but the segment list and the all-time totals.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use dbytes_gateway::admin::{self, AdminReply, AdminRequest};
use dbytes_gateway::repair::status::{book_report, metrics_report};
use dbytes_gateway::settings::GatewaySettings;
use dbytes_ledger::book::Book;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Subcommand)]
pub enum RepairCommand {
    /// Print the repair queue, segments by healthy pieces, the most
    /// endangered segments, when the worker last ran and what it repaired.
    Status {
        /// The gateway's config file.
        #[arg(long, default_value = "dbytes-gateway/gateway.toml")]
        config: PathBuf,
        /// The gateway's data directory instead of a config file (a local
        /// network's is `<devnet dir>/gateway`).
        #[arg(long, conflicts_with = "config")]
        dir: Option<PathBuf>,
        /// A running gateway's metrics address (host:port); by default the
        /// config's `[metrics] listen`.
        #[arg(long)]
        metrics: Option<String>,
    },
}

pub async fn run(command: RepairCommand) -> anyhow::Result<()> {
    let RepairCommand::Status {
        config,
        dir,
        metrics,
    } = command;
    let (data_dir, book_path, metrics_addr) = match dir {
        Some(dir) => (dir.clone(), dir.join("book.redb"), metrics),
        None => {
            let settings = GatewaySettings::load(&config)?;
            let listen = settings.metrics.listen.trim().to_owned();
            let configured = (!listen.is_empty() && listen != "off").then_some(listen);
            let book_path = settings.book_path();
            (settings.storage.data_dir, book_path, metrics.or(configured))
        }
    };
    anyhow::ensure!(
        book_path.exists(),
        "no gateway book at {}; pass the gateway's --config or its data --dir",
        book_path.display()
    );
    let socket = admin::socket_path(&data_dir);
    let asked = admin::request(&socket, &AdminRequest::RepairStatus).await;
    if let Ok(reply) = asked {
        match reply {
            AdminReply::Report { text } => {
                print!("{text}");
                return Ok(());
            }
            AdminReply::Error { message } => anyhow::bail!(
                "the gateway on {} could not make the report: {message}",
                socket.display()
            ),
            other => anyhow::bail!(
                "the gateway on {} answered {other:?} to a repair status request",
                socket.display()
            ),
        }
    }
    let path = book_path.clone();
    let opened = tokio::task::spawn_blocking(move || Book::open(&path)).await?;
    let now = dbytes_gateway::s3::now_ms();
    match opened {
        Ok(book) => {
            let report = tokio::task::spawn_blocking(move || book_report(&book, now)).await??;
            print!("{report}");
            Ok(())
        }
        Err(err) if err.is_locked() => {
            let addr = metrics_addr.with_context(|| {
                format!(
                    "the book {} is open in a running gateway whose admin socket {} did not \
                     answer; pass --metrics <host:port> of its /metrics endpoint to ask it instead",
                    book_path.display(),
                    socket.display()
                )
            })?;
            let text = fetch_metrics(&addr).await.with_context(|| {
                format!(
                    "the book {} is open in a running gateway, and its metrics at {addr} did \
                     not answer",
                    book_path.display()
                )
            })?;
            let report = metrics_report(&text, now).with_context(|| {
                format!("the gateway at {addr} exports no repair metrics: is [repair] enabled?")
            })?;
            print!("{report}");
            Ok(())
        }
        Err(err) => Err(err).with_context(|| format!("opening the book {}", book_path.display())),
    }
}

/// `GET /metrics` from `addr` (plain HTTP/1.0, as Prometheus scrapes).
async fn fetch_metrics(addr: &str) -> anyhow::Result<String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await?;
        anyhow::Ok(reply)
    };
    let reply = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .context("no answer within 10 s")??;
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply.split_once("\r\n\r\n").context("not an HTTP reply")?;
    anyhow::ensure!(
        head.lines()
            .next()
            .is_some_and(|line| line.contains(" 200")),
        "answered {}",
        head.lines().next().unwrap_or_default()
    );
    Ok(body.to_owned())
}
