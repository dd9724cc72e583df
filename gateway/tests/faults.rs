//! Providers that misbehave, on the local network (real anvil, provider
//! daemons and the gateway), driven through the S3 API with the AWS SDK for
//! Rust:
//!
//! - a piece file corrupted or deleted on a provider's disk fails the
//!   gateway's off-chain audit; an intact one passes;
//! - a provider that silently deletes its pieces and one that corrupts them
//!   are caught by the repair worker's audit within one audit interval and
//!   by the chain within one proof period (the gateway's chain watcher
//!   reports the missed proof and the provider is slashed), their pieces
//!   are regenerated on other providers and every object reads back
//!   identical;
//! - with audits off, a deal the watcher's reports fail on chain (three
//!   missed proofs in a row) has its pieces moved by the chain alone, onto
//!   a deal the gateway opens from the market within its budget, and the
//!   failed deal is closed once empty (its repair reward credited back);
//! - a provider stopped during a multi-segment upload: the upload completes
//!   on spare providers, or fails with an S3 error leaving no version;
//! - a provider answering slowly does not slow reads (hedged reads).
//!
//! Prints `faults audit_detect_s=… chain_detect_s=…`.

#[path = "support/sdk.rs"]
mod sdk;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::primitives::ByteStream;
use dbytes_gateway::devnet::{Devnet, DevnetOptions};
use dbytes_gateway::settings::RepairSettings;
use dbytes_ledger::book::{Book, Placement};
use dbytes_ledger::chain::{ChainClient, Deal, DealState, Deployment};
use dbytes_ledger::piece::PieceId;
use dbytes_mesh::daemon::ProviderDaemon;
use sdk::{create_bucket, get, pattern, put};

/// A local network of `providers` providers with `redundancy`, periods of
/// `period_secs` and the repair worker's `repair` settings; providers run
/// their proofs loop every second (short periods need it).
async fn start_devnet(
    dir: &Path,
    providers: usize,
    redundancy: (u16, u16),
    period_secs: u64,
    repair: RepairSettings,
    piece_size_bytes: u64,
) -> Devnet {
    start(DevnetOptions {
        s3_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        period_secs,
        redundancy,
        repair,
        piece_size_bytes,
        ..DevnetOptions::new(dir.join("net"), providers)
    })
    .await
}

/// Starts the local network of `options`, providers proving every second.
/// `RUST_LOG` (e.g. `dbytes_gateway=debug`) shows what the network logs.
async fn start(options: DevnetOptions) -> Devnet {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    // SAFETY: set before the network (and any thread reading the
    // environment for it) starts; each test runs in its own process.
    unsafe { std::env::set_var("DBYTES_PROVIDER_INTERVALS_PROOFS_SECS", "1") };
    tokio::time::timeout(Duration::from_secs(150), Devnet::start(&options))
        .await
        .expect("the local network starts within 150 s")
        .expect("the local network starts")
}

/// The AWS SDK signing as the network's user, no retries.
fn s3(devnet: &Devnet) -> Client {
    sdk::client(
        &devnet.s3_endpoint(),
        devnet.access_key(),
        RetryConfig::disabled(),
    )
}

/// How a provider's pieces are named in placements.
fn provider_name(daemon: &ProviderDaemon) -> String {
    hex::encode(daemon.node_id().as_bytes())
}

/// Every placed piece in the book.
fn placed_pieces(book: &Book) -> Vec<(PieceId, Placement)> {
    book.all_manifests()
        .expect("read the manifests")
        .iter()
        .flat_map(|(_, _, manifest)| manifest.placed_pieces())
        .collect()
}

/// The pieces the book places on `provider`.
fn pieces_on(book: &Book, provider: &str) -> Vec<(PieceId, Placement)> {
    placed_pieces(book)
        .into_iter()
        .filter(|(_, placement)| placement.provider == provider)
        .collect()
}

/// The piece files in a provider's store.
fn piece_files(daemon: &ProviderDaemon) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![daemon.data_dir().to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if dir.file_name().is_some_and(|name| name == "pieces") {
                found.push(path);
            }
        }
    }
    found
}

/// Deletes every piece file of `daemon` behind its back.
fn delete_pieces(daemon: &ProviderDaemon) -> usize {
    let files = piece_files(daemon);
    for file in &files {
        std::fs::remove_file(file).expect("delete a piece file");
    }
    files.len()
}

/// Overwrites bytes all through every piece file of `daemon`, keeping its
/// length (bit rot, or a provider cheating with other bytes).
fn corrupt_pieces(daemon: &ProviderDaemon) -> usize {
    let files = piece_files(daemon);
    for file in &files {
        let mut bytes = std::fs::read(file).expect("read a piece file");
        for index in (0..bytes.len()).step_by(97) {
            bytes[index] ^= 0x5a;
        }
        std::fs::write(file, &bytes).expect("overwrite a piece file");
    }
    files.len()
}

/// A chain reader for the network.
async fn chain(devnet: &Devnet) -> ChainClient {
    let deployment = Deployment::load(&devnet.dir().join("dbytes-deployment.json"))
        .expect("read the deployment");
    ChainClient::connect(deployment, Some(devnet.rpc_url()), None)
        .await
        .expect("connect to anvil")
}

/// The gateway's deal with `provider`.
async fn deal_with(devnet: &Devnet, chain: &ChainClient, provider: Address) -> Deal {
    let view = devnet
        .gateway()
        .store()
        .deals()
        .into_iter()
        .find(|deal| deal.provider == provider)
        .expect("the gateway has a deal with every provider");
    chain
        .deal(view.deal)
        .await
        .expect("read a deal")
        .expect("the deal exists")
}

/// The value of counter `name` on the gateway's `/metrics` (0 if absent).
async fn gateway_metric(devnet: &Devnet, name: &str) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = devnet.gateway().metrics_addr().expect("metrics are served");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to /metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("ask /metrics");
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .await
        .expect("read /metrics");
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
            rest.trim().parse().ok()
        })
        .unwrap_or(0.0)
}

/// Waits until `deal` is in `state` on chain.
async fn wait_for_state(chain: &ChainClient, deal: U256, state: DealState, limit: Duration) {
    wait_until(
        &format!("deal {deal} is {}", state.name()),
        limit,
        move || async move {
            chain
                .deal(deal)
                .await
                .ok()
                .flatten()
                .is_some_and(|record| record.state == state)
        },
    )
    .await;
}

/// Polls `check` every 200 ms until it is true or `limit` passes; returns
/// when it became true.
async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> Instant
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return Instant::now();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_fails_corrupted_and_deleted_piece_files_and_passes_intact_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 1-of-3: every provider holds the whole object.
    let devnet = start_devnet(dir.path(), 3, (1, 3), 3600, RepairSettings::default(), 0).await;
    let client = s3(&devnet);
    create_bucket(&client, "audit").await;
    let body = pattern(300_000, 1);
    put(&client, "audit", "object", body.clone()).await;
    let book = devnet.gateway().gateway().book();
    let store = devnet.gateway().store();
    let providers = devnet.providers();
    for provider in providers {
        let pieces = pieces_on(book, &provider_name(provider));
        assert_eq!(pieces.len(), 1, "each provider holds one piece");
        let (id, placement) = &pieces[0];
        assert!(
            store.audit_piece(*id, placement).await,
            "an intact piece passes"
        );
    }
    assert_eq!(corrupt_pieces(&providers[0]), 1);
    assert_eq!(delete_pieces(&providers[1]), 1);
    let audit = |index: usize| {
        let (id, placement) = pieces_on(book, &provider_name(&providers[index]))[0].clone();
        async move { store.audit_piece(id, &placement).await }
    };
    assert!(!audit(0).await, "a corrupted piece file fails its audit");
    assert!(!audit(1).await, "a deleted piece file fails its audit");
    assert!(audit(2).await, "the intact copy still passes");
    // And the object still reads back, from the intact copy.
    assert_eq!(get(&client, "audit", "object").await, body);
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleting_and_a_corrupting_provider_are_caught_by_audit_and_chain_slashed_and_repaired() {
    const PERIOD_SECS: u64 = 15;
    const AUDIT_INTERVAL_SECS: u64 = 5;
    let dir = tempfile::tempdir().expect("temp dir");
    let repair = RepairSettings {
        interval_secs: 1,
        audit_interval_secs: AUDIT_INTERVAL_SECS,
        ..RepairSettings::default()
    };
    // 4-of-6 over ten providers: four spare providers to repair onto.
    let devnet = start_devnet(dir.path(), 10, (4, 6), PERIOD_SECS, repair, 0).await;
    let client = s3(&devnet);
    create_bucket(&client, "faults").await;
    let mut objects = Vec::new();
    for index in 0..8u64 {
        let body = pattern(600_000 + index as usize * 1000, 100 + index);
        let key = format!("object-{index}");
        put(&client, "faults", &key, body.clone()).await;
        objects.push((key, body));
    }
    let book = devnet.gateway().gateway().book();
    let store = devnet.gateway().store();
    // The two providers holding the most pieces misbehave.
    let mut by_pieces: Vec<(usize, usize)> = devnet
        .providers()
        .iter()
        .enumerate()
        .map(|(index, daemon)| (index, pieces_on(book, &provider_name(daemon)).len()))
        .collect();
    by_pieces.sort_by_key(|(_, pieces)| std::cmp::Reverse(*pieces));
    let (deleter, corrupter) = (by_pieces[0].0, by_pieces[1].0);
    assert!(by_pieces[1].1 > 0, "both misbehaving providers hold pieces");
    let faulty = [deleter, corrupter];
    let names: Vec<String> = faulty
        .iter()
        .map(|&index| provider_name(&devnet.providers()[index]))
        .collect();

    // Commit every deal now (not at the store's next round): the
    // commitments take effect at the next period boundary.
    let report = store.commit_due().await.expect("commit the deals");
    assert!(report.failed.is_empty(), "commitments: {report:?}");
    let chain = chain(&devnet).await;
    let clock = chain.clock();
    let wallets: Vec<Address> = faulty
        .iter()
        .map(|&index| devnet.providers()[index].wallet())
        .collect();
    let mut deals = Vec::new();
    for wallet in &wallets {
        deals.push(deal_with(&devnet, &chain, *wallet).await.id);
    }
    // Both prove a period under the commitment: the chain holds them to it.
    let proven_period = {
        let (chain, deals) = (&chain, &deals);
        let proven = std::sync::Mutex::new(0u64);
        let proven_ref = &proven;
        wait_until(
            "both providers prove a period under their commitment",
            Duration::from_secs(4 * PERIOD_SECS),
            move || async move {
                let Ok(period) = chain.current_period().await else {
                    return false;
                };
                for deal in deals {
                    let committed = chain
                        .commitments(*deal)
                        .await
                        .is_ok_and(|state| state.at(period).is_some());
                    if !committed || !chain.is_proven(*deal, period).await.unwrap_or(false) {
                        return false;
                    }
                }
                *proven_ref.lock().unwrap() = period;
                true
            },
        )
        .await;
        proven.into_inner().unwrap()
    };
    // Misbehave just before the next period starts, so its proof is the
    // first one they cannot make.
    let next_start = clock.period_start(proven_period + 1);
    let now = chain.now().await.expect("chain time");
    let wait = next_start.saturating_sub(now).saturating_sub(2);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let pools_before = [
        chain.pool(wallets[0]).await.expect("pool"),
        chain.pool(wallets[1]).await.expect("pool"),
    ];
    let failures_before = gateway_metric(&devnet, "dbytes_repair_audit_failures_total").await;
    let fault_at = Instant::now();
    let fault_period = chain.current_period().await.expect("period");
    assert!(delete_pieces(&devnet.providers()[deleter]) > 0);
    assert!(corrupt_pieces(&devnet.providers()[corrupter]) > 0);
    let first_missed = fault_period + 1;

    // Watched side by side: the audit (within one audit interval plus the
    // round's own time), the chain (the first period after the fault is
    // reported missed once it closes, the providers slashed) and the repair
    // (no piece left on either).
    let deadline = clock.proof_deadline(first_missed);
    let watch_interval = (PERIOD_SECS / 4).max(1);
    let (network, names_ref, chain_ref, deals_ref) = (&devnet, &names, &chain, &deals);
    let audit = wait_until(
        "the audit catches the faults",
        Duration::from_secs(AUDIT_INTERVAL_SECS + 20),
        move || async move {
            gateway_metric(network, "dbytes_repair_audit_failures_total").await > failures_before
        },
    );
    let slashed = async move {
        let caught = wait_until(
            "the chain watcher reports both missed proofs",
            Duration::from_secs(3 * PERIOD_SECS + 30),
            move || async move {
                let mut all = true;
                for deal in deals_ref {
                    let record = chain_ref.deal(*deal).await.ok().flatten();
                    all &= record.is_some_and(|deal| deal.slashed > 0);
                }
                all
            },
        )
        .await;
        (caught, chain_ref.now().await.expect("chain time"))
    };
    let repaired = wait_until(
        "the faulty providers' pieces are repaired elsewhere",
        Duration::from_secs(90),
        move || async move {
            names_ref
                .iter()
                .all(|name| pieces_on(book, name).is_empty())
        },
    );
    let (audit_caught, (chain_caught, reported_at), _) = tokio::join!(audit, slashed, repaired);
    let audit_detect_s = audit_caught.duration_since(fault_at).as_secs_f64();
    let chain_detect_s = chain_caught.duration_since(fault_at).as_secs_f64();

    for (key, body) in &objects {
        assert_eq!(&get(&client, "faults", key).await, body, "{key} reads back");
    }
    // Every segment back at six pieces on six distinct providers.
    for (_, _, manifest) in book.all_manifests().expect("manifests") {
        for segment in manifest.parts.iter().flat_map(|part| &part.segments) {
            let providers: std::collections::HashSet<_> = segment
                .pieces
                .iter()
                .filter_map(|piece| piece.placement.as_ref().map(|p| p.provider.clone()))
                .collect();
            assert_eq!(providers.len(), 6, "a segment on six distinct providers");
        }
    }
    for (index, deal) in deals.iter().enumerate() {
        let record = chain.deal(*deal).await.expect("deal").expect("deal");
        assert!(record.missed_total >= 1, "deal {deal} counts a miss");
        assert!(
            record.settled_to > first_missed,
            "deal {deal} is settled through the first missed period {first_missed}: {record:?}"
        );
        assert!(
            !chain.is_proven(*deal, first_missed).await.expect("proven"),
            "period {first_missed} of deal {deal} was not proven"
        );
        let pool = chain.pool(wallets[index]).await.expect("pool");
        assert!(
            pool.deposited < pools_before[index].deposited,
            "the provider's collateral pool was slashed: {:?} -> {pool:?}",
            pools_before[index]
        );
    }
    // Reported within a watcher round of the first missed period closing
    // (plus a few blocks for the transactions).
    assert!(
        reported_at <= deadline + watch_interval + 10,
        "reported at {reported_at}, period {first_missed} closed at {deadline}"
    );
    assert!(
        audit_detect_s <= (AUDIT_INTERVAL_SECS + 15) as f64,
        "audit took {audit_detect_s:.1} s"
    );
    println!("faults audit_detect_s={audit_detect_s:.1} chain_detect_s={chain_detect_s:.1}");
    eprintln!("faults audit_detect_s={audit_detect_s:.1} chain_detect_s={chain_detect_s:.1}");
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_stopped_during_a_multi_segment_upload_leaves_a_whole_object_or_none() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 128 KiB pieces, 4-of-6: half-MiB segments, so 12 MiB is ~24 segments.
    let mut devnet = start_devnet(
        dir.path(),
        10,
        (4, 6),
        3600,
        RepairSettings::default(),
        128 << 10,
    )
    .await;
    let client = s3(&devnet);
    create_bucket(&client, "upload").await;
    let body = pattern(12 << 20, 7);
    let upload = {
        let client = client.clone();
        let body = body.clone();
        tokio::spawn(async move {
            client
                .put_object()
                .bucket("upload")
                .key("big")
                .body(ByteStream::from(body))
                .send()
                .await
        })
    };
    // Once pieces are landing, stop a provider that holds some.
    let victim = {
        let providers = devnet.providers();
        let started = Instant::now();
        loop {
            if let Some(index) = providers
                .iter()
                .position(|daemon| daemon.node().store().usage().piece_count > 0)
            {
                break index;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no piece landed within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let victim_name = provider_name(&devnet.providers()[victim]);
    assert!(devnet.stop_provider(victim).await);
    let outcome = tokio::time::timeout(Duration::from_secs(120), upload)
        .await
        .expect("the upload ends within 2 minutes")
        .expect("the upload task");
    let book = devnet.gateway().gateway().book();
    match outcome {
        Ok(_) => {
            // Completed: whole, on the providers still running.
            assert_eq!(get(&client, "upload", "big").await, body);
            let head = client
                .head_object()
                .bucket("upload")
                .key("big")
                .send()
                .await
                .expect("HEAD");
            assert_eq!(head.content_length(), Some(body.len() as i64));
            let manifests = book.all_manifests().expect("manifests");
            assert_eq!(manifests.len(), 1, "one version in the book");
            let segments: Vec<_> = manifests[0]
                .2
                .parts
                .iter()
                .flat_map(|part| &part.segments)
                .collect();
            assert!(segments.len() >= 20, "{} segments", segments.len());
            // Segments stored after the stop avoid the stopped provider.
            let last = segments.last().expect("a segment");
            assert!(
                last.pieces
                    .iter()
                    .filter_map(|piece| piece.placement.as_ref())
                    .all(|placement| placement.provider != victim_name),
                "the last segment avoids the stopped provider"
            );
            eprintln!("faults upload_with_provider_stopped=completed");
        }
        Err(err) => {
            // Failed: an S3 error, and no trace of a version.
            let service = err.as_service_error().map(|e| format!("{e:?}"));
            assert!(
                service.is_some(),
                "the upload failed with an S3 error: {err:?}"
            );
            let head = client
                .head_object()
                .bucket("upload")
                .key("big")
                .send()
                .await;
            assert!(head.is_err(), "no version is visible after a failed upload");
            let listed = client
                .list_objects_v2()
                .bucket("upload")
                .send()
                .await
                .expect("list");
            assert_eq!(listed.key_count(), Some(0));
            assert!(book.all_manifests().expect("manifests").is_empty());
            eprintln!("faults upload_with_provider_stopped=failed_cleanly");
        }
    }
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_provider_does_not_slow_reads() {
    const DELAY: Duration = Duration::from_secs(6);
    let dir = tempfile::tempdir().expect("temp dir");
    let devnet = start_devnet(dir.path(), 10, (4, 6), 3600, RepairSettings::default(), 0).await;
    let client = s3(&devnet);
    create_bucket(&client, "slow").await;
    let body = pattern(4 << 20, 11);
    put(&client, "slow", "object", body.clone()).await;
    let time_reads = || async {
        let mut worst = Duration::ZERO;
        for _ in 0..3 {
            let started = Instant::now();
            assert_eq!(get(&client, "slow", "object").await, body);
            worst = worst.max(started.elapsed());
        }
        worst
    };
    let baseline = time_reads().await;
    // Slow down a provider holding a data piece (reads ask those first).
    let book = devnet.gateway().gateway().book();
    let manifests = book.all_manifests().expect("manifests");
    let first_data_piece = manifests[0].2.parts[0].segments[0].pieces[0]
        .placement
        .clone()
        .expect("placed");
    let slow = devnet
        .providers()
        .iter()
        .find(|daemon| provider_name(daemon) == first_data_piece.provider)
        .expect("the provider of the first data piece");
    slow.set_response_delay(DELAY);
    let slowed = time_reads().await;
    slow.set_response_delay(Duration::ZERO);
    eprintln!(
        "faults slow_provider_read_ms baseline={} with_{}s_delay={}",
        baseline.as_millis(),
        DELAY.as_secs(),
        slowed.as_millis()
    );
    // Without hedging a read would wait for the slow provider's 6 s.
    assert!(
        slowed < baseline + Duration::from_millis(2500) && slowed < DELAY / 2,
        "reads took {slowed:?} with a slow provider, {baseline:?} without"
    );
    devnet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deal_failed_on_chain_is_replaced_by_a_deal_from_the_market_and_closed() {
    const PERIOD_SECS: u64 = 10;
    const BUDGET_TOKENS: u64 = 100;
    let dir = tempfile::tempdir().expect("temp dir");
    // No audit after the first (empty) round: only the chain can tell.
    let repair = RepairSettings {
        interval_secs: 1,
        audit_interval_secs: 3600,
        ..RepairSettings::default()
    };
    // Six providers with deals hold the six pieces of every 4-of-6
    // segment; two more only list on the market. When a deal fails, no
    // provider the gateway has a deal with may take the lost piece (each
    // holds one of the segment already): the repair must open a deal from
    // the market, within the budget.
    let mut devnet = start(DevnetOptions {
        s3_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        period_secs: PERIOD_SECS,
        redundancy: (4, 6),
        repair,
        market_providers: 2,
        deal_budget: BUDGET_TOKENS.to_string(),
        ..DevnetOptions::new(dir.path().join("net"), 8)
    })
    .await;
    let market: Vec<Address> = devnet.providers()[6..]
        .iter()
        .map(ProviderDaemon::wallet)
        .collect();
    let market_names: Vec<String> = devnet.providers()[6..].iter().map(provider_name).collect();
    let has_market_deal = |devnet: &Devnet| {
        devnet
            .gateway()
            .store()
            .deals()
            .iter()
            .any(|deal| market.contains(&deal.provider))
    };
    assert!(
        !has_market_deal(&devnet),
        "no deal with a market provider at start"
    );
    let client = s3(&devnet);
    create_bucket(&client, "chain").await;
    let mut objects = Vec::new();
    for index in 0..4u64 {
        let body = pattern(500_000, 200 + index);
        let key = format!("object-{index}");
        put(&client, "chain", &key, body.clone()).await;
        objects.push((key, body));
    }
    let book = &devnet.gateway().gateway().book().clone();
    for name in &market_names {
        assert!(pieces_on(book, name).is_empty());
    }
    let daemon = &devnet.providers()[0];
    let name = provider_name(daemon);
    assert!(!pieces_on(book, &name).is_empty());
    let report = devnet
        .gateway()
        .store()
        .commit_due()
        .await
        .expect("commit the deals");
    assert!(report.failed.is_empty(), "commitments: {report:?}");
    let chain = chain(&devnet).await;
    let deal = deal_with(&devnet, &chain, daemon.wallet()).await.id;
    let chain_ref = &chain;
    wait_until(
        "the provider proves a period under its commitment",
        Duration::from_secs(4 * PERIOD_SECS),
        move || async move {
            let Ok(period) = chain_ref.current_period().await else {
                return false;
            };
            chain_ref
                .commitments(deal)
                .await
                .is_ok_and(|state| state.at(period).is_some())
                && chain_ref.is_proven(deal, period).await.unwrap_or(false)
        },
    )
    .await;
    assert!(delete_pieces(daemon) > 0);
    let fault_at = Instant::now();
    // Three misses in a row fail the deal: the watcher's reports do it.
    let limit = Duration::from_secs(6 * PERIOD_SECS + 30);
    wait_for_state(&chain, deal, DealState::Failed, limit).await;
    let failed_s = fault_at.elapsed().as_secs_f64();
    let consumer = devnet.gateway().store().consumer();
    let failed = chain.deal(deal).await.expect("read").expect("the deal");
    assert!(failed.repair_reward > 0, "failing earmarks a repair reward");
    let credit_before = chain.credit(consumer).await.expect("credit");
    // The provider goes away for good: its own claims loop would otherwise
    // settle the failed deal, which closes it too; now only the gateway can.
    assert!(devnet.stop_provider(0).await);
    let name_ref = &name;
    wait_until(
        "the failed deal's pieces are moved",
        Duration::from_secs(90),
        move || async move { pieces_on(book, name_ref).is_empty() },
    )
    .await;
    let moved_s = fault_at.elapsed().as_secs_f64();
    // They went to a market provider, under a deal the gateway opened.
    assert!(
        has_market_deal(&devnet),
        "a deal was opened from the market"
    );
    let on_market: usize = market_names
        .iter()
        .map(|name| pieces_on(book, name).len())
        .sum();
    assert!(on_market > 0, "the moved pieces are on a market provider");
    let mut escrow = U256::ZERO;
    for view in devnet.gateway().store().deals() {
        let record = chain.deal(view.deal).await.expect("read").expect("deal");
        if record.state.is_running() {
            escrow += record.escrow();
        }
    }
    let token = U256::from(10u64).pow(U256::from(18u64));
    assert!(
        escrow <= U256::from(BUDGET_TOKENS) * token,
        "running deals hold {escrow}, over the budget"
    );
    // Every piece gone from the failed deal, the watcher closes it and
    // takes its repair reward back.
    wait_for_state(&chain, deal, DealState::Closed, Duration::from_secs(90)).await;
    let credit_after = chain.credit(consumer).await.expect("credit");
    assert!(
        credit_after >= credit_before + U256::from(failed.repair_reward),
        "the repair reward is credited: {credit_before} -> {credit_after}"
    );
    assert!(gateway_metric(&devnet, "dbytes_watch_missed_reports_total").await >= 1.0);
    assert!(gateway_metric(&devnet, "dbytes_watch_deals_lost_total").await >= 1.0);
    assert!(gateway_metric(&devnet, "dbytes_watch_segments_queued_total").await >= 1.0);
    // Counted once the watcher has the receipt (a moment after the test
    // may see the block).
    let devnet_ref = &devnet;
    wait_until(
        "the watcher counts the closed deal",
        Duration::from_secs(10),
        move || async move {
            gateway_metric(devnet_ref, "dbytes_watch_deals_closed_total").await == 1.0
        },
    )
    .await;
    assert!(gateway_metric(&devnet, "dbytes_gateway_deals_opened_total").await >= 1.0);
    assert_eq!(
        gateway_metric(&devnet, "dbytes_repair_audit_failures_total").await,
        0.0,
        "no audit found it"
    );
    for (key, body) in &objects {
        assert_eq!(&get(&client, "chain", key).await, body, "{key} reads back");
    }
    eprintln!(
        "faults deal_failed_s={failed_s:.1} moved_to_new_deal_s={moved_s:.1} closed_s={:.1}",
        fault_at.elapsed().as_secs_f64()
    );
    devnet.stop().await;
}
