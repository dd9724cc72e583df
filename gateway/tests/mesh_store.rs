//! The mesh piece store against real components: anvil with the contracts
//! deployed, in-process providers on 127.0.0.1 serving chain deals (the
//! marketplace as deal authority, their wallets as commitment signers), and
//! the gateway's store opening its own deals from the market index.
//!
//! Each test starts its own chain and providers (OS-chosen ports, own temp
//! dirs) and tears them down; every wait is bounded.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{B256, Bytes as ChainBytes, U256};
use bytes::Bytes;
use dbytes_gateway::codec::SegmentLayout;
use dbytes_gateway::mesh::{DealBudget, MeshPieceStore, MeshStoreConfig, MeshTuning};
use dbytes_gateway::pipeline::{
    BodyDigest, ObjectSource, PieceStore, PieceStoreError, Pipeline, PipelineConfig, PipelineError,
    WrittenData,
};
use dbytes_gateway::s3::{Gateway, GatewayConfig};
use dbytes_ledger::book::{Book, KeyId, Manifest, ManifestPart};
use dbytes_ledger::chain::anvil::{Anvil, AnvilOptions};
use dbytes_ledger::chain::deal::DealRequest;
use dbytes_ledger::chain::deploy::{DeployOptions, deploy};
use dbytes_ledger::chain::units::GIB;
use dbytes_ledger::chain::{
    AcceptPolicy, ChainClient, Deployment, ListingTerms, Region, RetryPolicy,
};
use dbytes_ledger::keys::{BucketKey, DataMasterKey, NodeSecret};
use dbytes_ledger::market::MarketIndex;
use dbytes_mesh::chain::{ChainDeals, ChainSigner};
use dbytes_mesh::client::ClientConfig;
use dbytes_mesh::commitment::{Commitment, PieceSlot};
use dbytes_mesh::deal::DealId;
use dbytes_mesh::provider::{ProviderConfig, ProviderNode, ScrubConfig, ServiceConfig};
use dbytes_mesh::store::StoreConfig;
use dbytes_mesh::transport::TransportConfig;
use dbytes_placement::RedundancyPolicy;
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const PERIOD: u64 = 3600;
const TOKEN: u128 = 1_000_000_000_000_000_000;
/// Pieces of 128 KiB (the smallest): objects of a few hundred KiB span
/// several segments.
const PIECE_SIZE: usize = 128 * 1024;
/// The consumer's dev account; providers are the accounts after it.
const CONSUMER: u32 = 1;
/// Periods and bytes of each deal the store opens.
const DEAL_PERIODS: u32 = 10;
const DEAL_BYTES: u64 = 64 << 20;

/// A provider: its node (`None` once shut down) and wallet.
struct TestProvider {
    node: Option<ProviderNode>,
    _dir: tempfile::TempDir,
}

/// A local market: anvil, the contracts, listed providers.
struct Network {
    anvil: Anvil,
    deployment: Deployment,
    providers: Vec<TestProvider>,
}

impl Network {
    /// Anvil, the contracts, and `providers` providers listed with
    /// automatic acceptance in three regions.
    async fn start(providers: usize) -> Network {
        let anvil = Anvil::spawn(&AnvilOptions::default()).expect("anvil starts (`make setup`)");
        let options = DeployOptions {
            period_secs: PERIOD,
            proof_grace_secs: 600,
            ..DeployOptions::default()
        };
        let deployment = deploy(anvil.endpoint(), anvil.account(0), &options)
            .await
            .expect("the contracts deploy");
        let mut network = Network {
            anvil,
            deployment,
            providers: Vec::new(),
        };
        for index in 0..providers {
            let provider = network.start_provider(CONSUMER + 1 + index as u32).await;
            network.providers.push(provider);
        }
        network
    }

    /// A chain client signing as dev account `index`, funded by the faucet.
    async fn party(&self, index: u32) -> ChainClient {
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

    async fn start_provider(&self, account: u32) -> TestProvider {
        let client = self.party(account).await;
        let address = client.address().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = ProviderConfig {
            store: StoreConfig {
                data_dir: dir.path().to_path_buf(),
                capacity_bytes: GIB,
            },
            transport: TransportConfig::local(),
            service: ServiceConfig {
                provider_address: Some(address),
                ..ServiceConfig::default()
            },
            scrub: ScrubConfig {
                bytes_per_sec: 0,
                ..ScrubConfig::default()
            },
        };
        let node = ProviderNode::start(
            &config,
            &NodeSecret::from_bytes(rand::random()),
            ChainDeals::new(client.clone(), Duration::from_millis(200)),
            ChainSigner::new(self.anvil.account(account), self.deployment.clone()),
        )
        .await
        .unwrap();
        let hints: Vec<String> = node.addr().ip_addrs().map(SocketAddr::to_string).collect();
        let regions = ["EU", "US", "AS"];
        let terms = ListingTerms {
            node_id: B256::from(*node.endpoint().id().as_bytes()),
            address_hints: ChainBytes::from(hints.join(",").into_bytes()),
            capacity_bytes: 100 * GIB,
            price_per_gib_month: TOKEN,
            min_periods: 1,
            max_periods: 1000,
            collateral_bps: 20_000,
            collateral_per_gib: 0,
            region: regions[account as usize % 3].parse::<Region>().unwrap(),
            policy: AcceptPolicy::Auto,
            quote_signer: None,
        };
        client.register(&terms).await.unwrap();
        client
            .deposit_collateral(U256::from(10_000 * TOKEN))
            .await
            .unwrap();
        TestProvider {
            node: Some(node),
            _dir: dir,
        }
    }

    /// The gateway's store for the consumer, with an empty book and no
    /// deals: it opens them from the market as it needs them.
    async fn store(&self, book: Book) -> (MeshPieceStore, tokio::task::JoinHandle<()>) {
        self.store_with_budget(book, U256::from(1000 * TOKEN)).await
    }

    /// [`Network::store`] that may commit `budget` base units to deals.
    async fn store_with_budget(
        &self,
        book: Book,
        budget: U256,
    ) -> (MeshPieceStore, tokio::task::JoinHandle<()>) {
        let chain = self.party(CONSUMER).await;
        let market = MarketIndex::in_memory(&self.deployment).unwrap();
        MeshPieceStore::start(MeshStoreConfig {
            node_secret: NodeSecret::from_bytes(rand::random()),
            chain,
            book,
            market: Some(Arc::new(market)),
            budget: Some(DealBudget {
                budget,
                max_price_per_gib_month: 2 * TOKEN,
                deal_periods: DEAL_PERIODS,
                deal_capacity_bytes: DEAL_BYTES,
            }),
            transport: TransportConfig::local(),
            client: ClientConfig {
                connect_timeout: Duration::from_secs(3),
                request_timeout: Duration::from_secs(10),
                transfer_timeout: Duration::from_secs(20),
            },
            tuning: MeshTuning {
                // The tests run commitment rounds by hand.
                commit_interval: Duration::from_secs(3600),
                refresh_interval: Duration::from_secs(5),
                down_for: Duration::from_secs(5),
                ..MeshTuning::default()
            },
        })
        .await
        .expect("the mesh store starts")
    }

    /// Stops provider `index` (its pieces become unreachable).
    async fn stop_provider(&mut self, index: usize) {
        if let Some(node) = self.providers[index].node.take() {
            within(20, "a provider stops", node.shutdown())
                .await
                .unwrap();
        }
    }

    async fn stop(mut self, store: MeshPieceStore, task: tokio::task::JoinHandle<()>) {
        store.shutdown().await;
        within(20, "the store's task ends", task).await.unwrap();
        for index in 0..self.providers.len() {
            self.stop_provider(index).await;
        }
        self.anvil.stop();
    }

    /// Bytes of pieces all running providers hold.
    fn stored_bytes(&self) -> u64 {
        self.providers
            .iter()
            .filter_map(|provider| provider.node.as_ref())
            .map(|node| node.store().usage().used_bytes)
            .sum()
    }
}

/// Fails the test if `work` takes longer than `secs`.
async fn within<T>(secs: u64, what: &str, work: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), work)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs} s waiting until {what}"))
}

fn object(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

struct NoDigest;

impl BodyDigest for NoDigest {
    fn update(&mut self, _bytes: &[u8]) {}
}

fn bucket_key() -> BucketKey {
    DataMasterKey::from_bytes([7; 32]).bucket_key(b"bucket")
}

fn pipeline(store: &MeshPieceStore) -> Pipeline {
    Pipeline::new(
        Arc::new(store.clone()),
        PipelineConfig {
            piece_size: Some(PIECE_SIZE),
            ..PipelineConfig::default()
        },
    )
}

/// Writes `data` through the pipeline; returns its manifest part.
async fn write(
    pipeline: &Pipeline,
    layout: SegmentLayout,
    data: &[u8],
) -> Result<ManifestPart, PipelineError> {
    let key_id = KeyId::random();
    let key = bucket_key().version_key(&key_id.0);
    let body = futures::stream::iter(
        data.chunks(50_000)
            .map(|chunk| Ok::<_, std::io::Error>(Bytes::copy_from_slice(chunk)))
            .collect::<Vec<_>>(),
    );
    let written = pipeline
        .write(body, layout, key, key_id, NoDigest, false)
        .await
        .map_err(|failure| failure.error)?;
    match written.data {
        WrittenData::Pieces(part) => Ok(part),
        other => panic!("expected pieces, got {other:?}"),
    }
}

async fn read(pipeline: &Pipeline, part: &ManifestPart) -> Vec<u8> {
    let source = ObjectSource::Pieces(Manifest {
        parts: vec![part.clone()],
    });
    let mut stream = pipeline.read(&bucket_key(), source, 0..part.size);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("the object reads back"));
    }
    out
}

/// Runs aws-cli against `endpoint`; `None` when aws-cli is not installed
/// (outside CI, where it is required).
async fn aws(
    dir: &Path,
    endpoint: &str,
    key: &dbytes_ledger::book::AccessKey,
    args: &[&str],
) -> std::process::Output {
    let mut command = tokio::process::Command::new("aws");
    command
        .arg("--endpoint-url")
        .arg(endpoint)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("AWS_ACCESS_KEY_ID", &key.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret_access_key)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
        .env("AWS_CONFIG_FILE", dir.join("no-config"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .kill_on_drop(true);
    for (name, value) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PYENV") || name == "PYTHONPATH" {
            command.env(name, value);
        }
    }
    let output = within(120, "aws-cli finishes", command.output())
        .await
        .expect("aws-cli runs");
    assert!(
        output.status.success(),
        "aws {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn aws_available() -> bool {
    let available = std::process::Command::new("aws")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !available {
        if std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false") {
            panic!("aws-cli is required under CI; `pip install -r gateway/tests/requirements.txt`");
        }
        eprintln!("\n!!! SKIPPED: aws-cli is not installed !!!\n");
    }
    available
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_round_trip_through_the_mesh_and_read_back_with_n_minus_k_providers_gone() {
    if !aws_available() {
        return;
    }
    let mut network = Network::start(6).await;
    let dir = tempfile::tempdir().unwrap();
    let book = Book::open(dir.path().join("book.redb")).unwrap();
    book.add_user("alice", "Alice", 0).unwrap();
    let alice = book.issue_access_key("alice", 0).unwrap();
    let (store, task) = network.store(book.clone()).await;
    assert!(
        store.deals().is_empty(),
        "the consumer starts without deals"
    );
    // 3-of-5: 5 pieces per segment on 5 of the 6 providers.
    let gateway = Gateway::new(
        book,
        Arc::new(store.clone()),
        DataMasterKey::from_bytes(rand::random()),
        GatewayConfig {
            default_redundancy: RedundancyPolicy::new(3, 5).unwrap(),
            pipeline: PipelineConfig {
                piece_size: Some(PIECE_SIZE),
                ..PipelineConfig::default()
            },
            free_interval: Duration::from_secs(3600),
            ..GatewayConfig::default()
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (shutdown, stopped) = oneshot::channel::<()>();
    let server = {
        let gateway = gateway.clone();
        tokio::spawn(async move {
            gateway
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
        })
    };

    let data = object(1_000_000, 1);
    std::fs::write(dir.path().join("up"), &data).unwrap();
    let up = dir.path().join("up").to_string_lossy().into_owned();
    let down = dir.path().join("down").to_string_lossy().into_owned();
    aws(
        dir.path(),
        &endpoint,
        &alice,
        &["s3api", "create-bucket", "--bucket", "photos"],
    )
    .await;
    aws(
        dir.path(),
        &endpoint,
        &alice,
        &[
            "s3api",
            "put-object",
            "--bucket",
            "photos",
            "--key",
            "big.bin",
            "--body",
            &up,
        ],
    )
    .await;
    // The store opened deals with providers from the market by itself.
    let deals = store.deals();
    assert!(deals.len() >= 5, "deals opened: {deals:?}");
    assert!(network.stored_bytes() >= data.len() as u64 * 5 / 3);
    let pieces: i64 = network
        .providers
        .iter()
        .filter_map(|provider| provider.node.as_ref())
        .map(|node| {
            store
                .metrics()
                .pieces_per_provider
                .with_label_values(&[hex::encode(node.endpoint().id().as_bytes()).as_str()])
                .get()
        })
        .sum();
    assert!(pieces > 0, "pieces per provider are counted");

    let get = |range: Option<&'static str>| {
        let (dir, endpoint, alice, down) = (dir.path(), &endpoint, &alice, &down);
        async move {
            let mut args = vec![
                "s3api",
                "get-object",
                "--bucket",
                "photos",
                "--key",
                "big.bin",
            ];
            if let Some(range) = range {
                args.extend_from_slice(&["--range", range]);
            }
            args.push(down);
            aws(dir, endpoint, alice, &args).await;
            std::fs::read(down).unwrap()
        }
    };
    assert!(
        get(None).await == data,
        "the object reads back byte-identical"
    );
    assert!(
        get(Some("bytes=1000-1999")).await == data[1000..2000],
        "a range inside one piece reads back"
    );

    // Lose n - k = 2 providers holding pieces: every byte still reads back.
    let mut stopped_providers = 0;
    for index in 0..network.providers.len() {
        let holds = network.providers[index]
            .node
            .as_ref()
            .is_some_and(|node| node.store().usage().piece_count > 0);
        if holds && stopped_providers < 2 {
            network.stop_provider(index).await;
            stopped_providers += 1;
        }
    }
    assert_eq!(stopped_providers, 2);
    assert!(
        get(None).await == data,
        "the object reads back byte-identical with 2 of 5 providers gone"
    );
    assert!(get(Some("bytes=999000-999999")).await == data[999_000..]);

    let _ = shutdown.send(());
    within(20, "the gateway stops", server)
        .await
        .unwrap()
        .unwrap();
    network.stop(store, task).await;
}

/// Writes a 300 kB object (from `seed`) at 3-of-5 that must fail: `why`.
async fn failed_write(store: &MeshPieceStore, seed: u64, why: &str) -> PipelineError {
    let pipeline = pipeline(store);
    let layout = pipeline
        .layout(RedundancyPolicy::new(3, 5).unwrap())
        .unwrap();
    within(
        60,
        "the write fails",
        write(&pipeline, layout, &object(300_000, seed)),
    )
    .await
    .expect_err(why)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deals_opened_from_the_market_stop_at_the_budget() {
    let network = Network::start(4).await;
    let consumer = network.party(CONSUMER).await;
    let provider = network.party(CONSUMER + 1).await.address().unwrap();
    let (_, cost) = consumer
        .price_deal(&DealRequest {
            provider,
            capacity_bytes: DEAL_BYTES,
            periods: DEAL_PERIODS,
            price_per_gib_month: None,
            // Any node id: the price does not depend on it.
            consumer_node_id: B256::repeat_byte(1),
        })
        .await
        .unwrap();
    // Every listing has the same price: the budget pays for two deals.
    let budget = cost.escrow * U256::from(5) / U256::from(2);
    let (store, task) = network
        .store_with_budget(Book::in_memory().unwrap(), budget)
        .await;
    let error = failed_write(&store, 3, "5 pieces need 5 deals; the budget pays for 2").await;
    match &error {
        PipelineError::Store(PieceStoreError::NotEnoughStored { reason, .. }) => {
            assert!(reason.contains("opened 2 new deal(s)"), "{reason}");
            assert!(reason.contains("deal budget"), "{reason}");
        }
        other => panic!("expected NotEnoughStored, got {other:?}"),
    }
    let deals = store.deals();
    assert_eq!(deals.len(), 2, "{deals:?}");
    let mut escrow = U256::ZERO;
    for deal in &deals {
        escrow += consumer.deal(deal.deal).await.unwrap().unwrap().escrow();
    }
    assert!(escrow <= budget, "{escrow} escrowed, budget {budget}");
    assert_eq!(network.stored_bytes(), 0, "nothing is left on providers");
    network.stop(store, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_providers_for_the_policy_is_a_clear_error() {
    let network = Network::start(3).await;
    let (store, task) = network.store(Book::in_memory().unwrap()).await;
    let error = failed_write(&store, 2, "5 pieces cannot go to 3 providers").await;
    match &error {
        PipelineError::Store(PieceStoreError::NotEnoughStored {
            stored,
            needed,
            reason,
        }) => {
            assert_eq!((*stored, *needed), (0, 5));
            assert!(reason.contains("only 3 provider(s)"), "{reason}");
            assert!(reason.contains("opened 3 new deal(s)"), "{reason}");
        }
        other => panic!("expected NotEnoughStored, got {other:?}"),
    }
    assert!(
        error.to_string().contains("add providers or deals"),
        "{error}"
    );
    assert_eq!(network.stored_bytes(), 0, "nothing is left on providers");
    network.stop(store, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commitments_reach_the_chain_and_deletes_free_room_and_shrink_them() {
    let network = Network::start(4).await;
    let book = Book::in_memory().unwrap();
    let (store, task) = network.store(book.clone()).await;
    let chain = network.party(CONSUMER).await;
    let pipeline = pipeline(&store);
    let layout = pipeline
        .layout(RedundancyPolicy::new(2, 4).unwrap())
        .unwrap();
    let first = within(60, "a write", write(&pipeline, layout, &object(400_000, 3)))
        .await
        .unwrap();
    let second = within(60, "a write", write(&pipeline, layout, &object(200_000, 4)))
        .await
        .unwrap();
    assert_eq!(read(&pipeline, &first).await, object(400_000, 3));

    let report = within(60, "a commitment round", store.commit_due())
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.posted.len(), 4, "one commitment per deal");
    // Each root is the deal tree over the deal's pieces in slot order, as
    // the test computes it from the book.
    for (deal, posted) in &report.posted {
        let slots: Vec<PieceSlot> = book
            .deal_slots(*deal)
            .unwrap()
            .iter()
            .map(PieceSlot::from)
            .collect();
        let expected = Commitment::over_pieces(DealId(*deal), 1, &slots).unwrap();
        assert_eq!(
            (posted.root, posted.leaf_count),
            (expected.root, expected.leaf_count)
        );
        assert_eq!(posted.version, 1);
    }
    // Nothing changed: the next round posts nothing.
    assert!(store.commit_due().await.unwrap().posted.is_empty());

    // A period later the commitments are in effect on chain.
    // Past the proof grace too: a new commitment may follow once the
    // period before the pending one took effect is closed to proofs.
    network.anvil.increase_time(PERIOD + 700).await.unwrap();
    let period = chain.current_period().await.unwrap();
    for (deal, posted) in &report.posted {
        let state = chain.commitments(*deal).await.unwrap();
        assert_eq!(state.at(period), Some(*posted), "deal {deal}");
    }

    // Deleting the first object frees its bytes on the providers and its
    // room on the deals; the next round commits the smaller lists.
    let before = network.stored_bytes();
    let first_pieces: Vec<_> = first.placed_pieces().collect();
    within(60, "the deletes", store.delete_pieces(&first_pieces))
        .await
        .unwrap();
    let after = network.stored_bytes();
    assert!(
        after < before,
        "{after} bytes held after deleting, {before} before"
    );
    let remaining = second.placed_pieces().count() as u64;
    let listed: u64 = book
        .all_deal_pieces()
        .unwrap()
        .iter()
        .map(|deal| deal.pieces)
        .sum();
    assert_eq!(
        listed, remaining,
        "the deals list only the second object's pieces"
    );
    assert_eq!(read(&pipeline, &second).await, object(200_000, 4));

    let shrunk = within(60, "a commitment round", store.commit_due())
        .await
        .unwrap();
    assert!(shrunk.failed.is_empty(), "{:?}", shrunk.failed);
    assert_eq!(shrunk.posted.len(), 4);
    for (deal, posted) in &shrunk.posted {
        let old = report
            .posted
            .iter()
            .find(|(old_deal, _)| old_deal == deal)
            .map(|(_, old)| *old)
            .unwrap();
        assert_eq!(posted.version, 2);
        assert!(posted.leaf_count < old.leaf_count, "deal {deal} shrinks");
        assert_eq!(
            chain.commitments(*deal).await.unwrap().latest(),
            Some(*posted)
        );
    }
    // A second round in the same period waits for the next one.
    network.stop(store, task).await;
}
