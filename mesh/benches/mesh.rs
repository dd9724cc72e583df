//! The piece protocol benchmark: `make bench-mesh`.
//!
//! One provider on 127.0.0.1 with its store on tmpfs (`/dev/shm` when there
//! is one), one client, both in this process. Each round puts
//! `DBYTES_BENCH_PIECES` pieces of 4 MiB (default 32) over 8 concurrent
//! streams, gets them back whole over 8 streams, reads
//! `DBYTES_BENCH_RANGES` random 4 KiB ranges one after another (default
//! 100), audits `DBYTES_BENCH_AUDITS` random pieces one after another, 4
//! random leaves each with their proofs (default 20; the gateway's audit
//! after an upload and the repair worker's), then deletes the pieces. It
//! also builds the provider daemon's on-chain proofs of
//! `DBYTES_BENCH_PERIODS` periods one after another (default 20; fresh
//! seeds, 4 challenged leaves each, as the contract asks) for a deal of
//! `DBYTES_BENCH_PROVE_PIECES` pieces of 4 MiB (default 16) kept in a store
//! of its own, each proof checked against the commitment as the contract
//! checks it. In the same round it measures raw iroh
//! stream throughput over the same endpoints' configuration: a minimal
//! protocol on its own ALPN that only streams bytes, the same 4 MiB per
//! stream, 8 streams at once, uploads and downloads.
//!
//! Diagnostic lines come first; the last line is
//!
//! ```text
//! mesh put_MBps=… get_MBps=… get_range_4KiB_p50_ms=… audit_p50_ms=… prove_p50_ms=… raw_quic_MBps=…
//! ```
//!
//! each the median over `DBYTES_BENCH_ROUNDS` rounds (default 5).
//! `raw_quic_MBps` is the faster of the raw upload and download medians,
//! so the put and get ratios to it are the stricter ones. MB are 10^6 bytes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256};
use dbytes_ledger::chain;
use dbytes_ledger::chain::proof::challenge_indexes;
use dbytes_ledger::commitment::PieceTree;
use dbytes_ledger::keys::NodeSecret;
use dbytes_ledger::piece::PieceId;
use dbytes_mesh::audit::{check_audit, pick_leaves};
use dbytes_mesh::client::{ClientConfig, PieceClient};
use dbytes_mesh::commitment::{Commitment, NoSigner, PieceSlot};
use dbytes_mesh::daemon::prove::prove_deal;
use dbytes_mesh::daemon::state::SignedCommitment;
use dbytes_mesh::deal::{DealId, DealTerms, StaticDeals};
use dbytes_mesh::metrics::ProviderMetrics;
use dbytes_mesh::provider::{ProviderConfig, ProviderNode, ScrubConfig, ServiceConfig};
use dbytes_mesh::store::{CHUNK_BYTES, PieceStore, StoreConfig};
use dbytes_mesh::transport::{TransportConfig, bind_endpoint, node_id};
use dbytes_mesh::wire::StoredPiece;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh::{EndpointAddr, EndpointId};
use rand::{Rng, SeedableRng, rngs::StdRng};

const PIECE_BYTES: usize = 4 << 20;
const RANGE_BYTES: u64 = 4 << 10;
/// Leaves asked for per audit, as the gateway asks.
const AUDIT_LEAVES: usize = 4;
/// Leaves challenged per deal per period, as the contract's deployments ask.
const PROOF_CHALLENGES: u64 = 4;
const STREAMS: usize = 8;
const RAW_ALPN: &[u8] = b"dbytes/bench-raw/0";
/// The raw protocol's first byte: the client uploads (the server reads to
/// the end and answers one byte) or downloads (the server sends
/// [`PIECE_BYTES`]).
const RAW_UPLOAD: u8 = 0;
const RAW_DOWNLOAD: u8 = 1;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The minimal byte-streaming protocol the piece protocol is measured
/// against: no framing, no hashing, no disk.
#[derive(Debug, Clone)]
struct RawStreams {
    payload: Arc<Vec<u8>>,
}

impl ProtocolHandler for RawStreams {
    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        while let Ok((mut send, mut recv)) = connection.accept_bi().await {
            let payload = self.payload.clone();
            tokio::spawn(async move {
                let mut tag = [0u8; 1];
                if recv.read_exact(&mut tag).await.is_err() {
                    return;
                }
                if tag[0] == RAW_DOWNLOAD {
                    if send.write_all(&payload).await.is_ok() {
                        let _ = send.finish();
                    }
                    return;
                }
                while let Ok(Some(_chunk)) = recv.read_chunk(usize::MAX).await {}
                if send.write_all(&[1]).await.is_ok() {
                    let _ = send.finish();
                }
            });
        }
        Ok(())
    }
}

/// Runs `transfer(i)` for i in 0..count over [`STREAMS`] concurrent
/// workers; returns MB/s over `count` pieces.
async fn throughput<F, Fut>(count: usize, transfer: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..STREAMS)
        .map(|_| {
            let next = next.clone();
            let transfer = transfer.clone();
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    transfer(index).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a transfer worker panicked");
    }
    mb_per_sec(count * PIECE_BYTES, started.elapsed())
}

/// `count` pieces of random bytes with their ids.
fn random_pieces(rng: &mut StdRng, count: usize) -> Vec<(PieceId, Vec<u8>)> {
    (0..count)
        .map(|_| {
            let mut bytes = vec![0u8; PIECE_BYTES];
            rng.fill(&mut bytes[..]);
            (PieceId::of(&bytes), bytes)
        })
        .collect()
}

fn mb_per_sec(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn raw_upload(connection: &Connection, payload: &[u8]) {
    let (mut send, mut recv) = connection.open_bi().await.expect("open a raw stream");
    send.write_all(&[RAW_UPLOAD])
        .await
        .expect("write the raw tag");
    send.write_all(payload).await.expect("upload raw bytes");
    send.finish().expect("finish a raw upload");
    let done = recv.read_to_end(1).await.expect("read the raw receipt");
    assert_eq!(done, [1], "the raw server acknowledges the upload");
}

async fn raw_download(connection: &Connection) {
    let (mut send, mut recv) = connection.open_bi().await.expect("open a raw stream");
    send.write_all(&[RAW_DOWNLOAD])
        .await
        .expect("write the raw tag");
    send.finish().expect("finish a raw request");
    let mut received = 0;
    while let Some(chunk) = recv.read_chunk(usize::MAX).await.expect("download raw") {
        received += chunk.len();
    }
    assert_eq!(received, PIECE_BYTES, "the raw server sends a whole piece");
}

/// A store directory: on tmpfs when the machine has `/dev/shm`, removed
/// when dropped.
struct StoreDir(PathBuf);

impl StoreDir {
    fn new(label: &str) -> StoreDir {
        let shm = PathBuf::from("/dev/shm");
        let base = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        let path = base.join(format!("dbytes-bench-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create the bench store directory");
        StoreDir(path)
    }
}

impl Drop for StoreDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A deal's pieces in a store of their own under a signed commitment, as
/// the provider daemon's proofs loop finds them.
struct ProveBench {
    store: PieceStore,
    deal: DealId,
    signed: SignedCommitment,
}

impl ProveBench {
    fn new(data_dir: PathBuf, deal: DealId, pieces: &[(PieceId, Vec<u8>)]) -> ProveBench {
        let capacity_bytes = (pieces.len() * PIECE_BYTES) as u64;
        let config = StoreConfig {
            data_dir,
            capacity_bytes,
        };
        let (store, _) =
            PieceStore::open(&config, ProviderMetrics::new()).expect("open the proofs' store");
        let slots: Vec<PieceSlot> = pieces
            .iter()
            .map(|(piece, bytes)| {
                let mut ingest = store
                    .begin_put(deal, *piece, bytes.len() as u64, capacity_bytes)
                    .expect("begin a put");
                for chunk in bytes.chunks(CHUNK_BYTES) {
                    ingest.write(chunk).expect("write a piece");
                }
                let stored = ingest.finish().expect("store a piece");
                PieceSlot {
                    piece: *piece,
                    root: stored.root,
                    leaf_count: stored.leaf_count,
                }
            })
            .collect();
        let commitment =
            Commitment::over_pieces(deal, 1, &slots).expect("a commitment over the pieces");
        ProveBench {
            store,
            deal,
            signed: SignedCommitment {
                root: commitment.root,
                leaf_count: commitment.leaf_count,
                version: commitment.version,
                pieces: commitment.pieces,
            },
        }
    }

    /// Milliseconds to build the deal's proof in each of `periods` periods,
    /// each checked against the commitment as the contract checks it.
    fn period_latencies_ms(&self, periods: usize, rng: &mut StdRng) -> Vec<f64> {
        let on_chain = chain::Commitment {
            root: self.signed.root,
            leaf_count: self.signed.leaf_count,
            version: self.signed.version,
        };
        (0..periods)
            .map(|_| {
                let seed = B256::from(rng.r#gen::<[u8; 32]>());
                let indexes =
                    challenge_indexes(seed, self.deal.0, PROOF_CHALLENGES, self.signed.leaf_count);
                let started = Instant::now();
                let proof = prove_deal(&self.store, self.deal, &self.signed, &indexes)
                    .expect("prove the deal");
                let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
                proof
                    .verify(&on_chain, &indexes)
                    .expect("the proof verifies against the commitment");
                elapsed_ms
            })
            .collect()
    }
}

struct Bench {
    client: PieceClient,
    provider: EndpointAddr,
    raw: Connection,
    deal: DealId,
    pieces: Arc<Vec<(PieceId, Vec<u8>)>>,
    /// What the provider must report for each piece, to check audits by.
    stored: Vec<StoredPiece>,
    prove: ProveBench,
}

struct Round {
    put_mbps: f64,
    get_mbps: f64,
    range_p50_ms: f64,
    audit_p50_ms: f64,
    prove_p50_ms: f64,
    raw_upload_mbps: f64,
    raw_download_mbps: f64,
}

impl Bench {
    async fn round(&self, ranges: usize, audits: usize, periods: usize, rng: &mut StdRng) -> Round {
        let count = self.pieces.len();
        let raw_upload_mbps = {
            let raw = self.raw.clone();
            let pieces = self.pieces.clone();
            throughput(count, move |index| {
                let raw = raw.clone();
                let pieces = pieces.clone();
                async move { raw_upload(&raw, &pieces[index].1).await }
            })
            .await
        };
        let put_mbps = {
            let (client, provider, deal) = (self.client.clone(), self.provider.clone(), self.deal);
            let pieces = self.pieces.clone();
            throughput(count, move |index| {
                let (client, provider, pieces) = (client.clone(), provider.clone(), pieces.clone());
                async move {
                    let (piece, bytes) = &pieces[index];
                    let stored = client
                        .put_piece(&provider, deal, *piece, bytes)
                        .await
                        .expect("put a piece");
                    assert_eq!(stored.length, bytes.len() as u64);
                }
            })
            .await
        };
        let raw_download_mbps = {
            let raw = self.raw.clone();
            throughput(count, move |_| {
                let raw = raw.clone();
                async move { raw_download(&raw).await }
            })
            .await
        };
        let get_mbps = {
            let (client, provider, deal) = (self.client.clone(), self.provider.clone(), self.deal);
            let pieces = self.pieces.clone();
            throughput(count, move |index| {
                let (client, provider, pieces) = (client.clone(), provider.clone(), pieces.clone());
                async move {
                    let piece = pieces[index].0;
                    let bytes = client
                        .get_piece(&provider, deal, piece)
                        .await
                        .expect("get a piece");
                    assert_eq!(bytes.len(), PIECE_BYTES);
                }
            })
            .await
        };
        let mut latencies_ms = Vec::with_capacity(ranges);
        for _ in 0..ranges {
            let (piece, bytes) = &self.pieces[rng.gen_range(0..count)];
            let offset = rng.gen_range(0..(PIECE_BYTES as u64 - RANGE_BYTES));
            let started = Instant::now();
            let range = self
                .client
                .get_range(&self.provider, self.deal, *piece, offset, RANGE_BYTES)
                .await
                .expect("get a range");
            latencies_ms.push(started.elapsed().as_secs_f64() * 1e3);
            let start = offset as usize;
            assert_eq!(range, bytes[start..start + RANGE_BYTES as usize]);
        }
        let mut audit_latencies_ms = Vec::with_capacity(audits);
        for _ in 0..audits {
            let index = rng.gen_range(0..count);
            let (piece, bytes) = &self.pieces[index];
            let stored = &self.stored[index];
            let asked = pick_leaves(rng, stored.leaf_count, AUDIT_LEAVES);
            let started = Instant::now();
            let reply = self
                .client
                .audit(&self.provider, self.deal, *piece, asked.clone())
                .await
                .expect("audit a piece");
            audit_latencies_ms.push(started.elapsed().as_secs_f64() * 1e3);
            check_audit(bytes, stored, &asked, &reply).expect("the audit answer checks out");
        }
        // The daemon builds proofs on the blocking pool; this thread is one.
        let prove_latencies_ms =
            tokio::task::block_in_place(|| self.prove.period_latencies_ms(periods, rng));
        for (piece, _) in self.pieces.iter() {
            self.client
                .delete_piece(&self.provider, self.deal, *piece)
                .await
                .expect("delete a piece");
        }
        Round {
            put_mbps,
            get_mbps,
            range_p50_ms: median(latencies_ms),
            audit_p50_ms: median(audit_latencies_ms),
            prove_p50_ms: median(prove_latencies_ms),
            raw_upload_mbps,
            raw_download_mbps,
        }
    }
}

fn main() {
    let rounds = env_number("DBYTES_BENCH_ROUNDS", 5).max(1);
    let piece_count = env_number("DBYTES_BENCH_PIECES", 32).max(STREAMS);
    let ranges = env_number("DBYTES_BENCH_RANGES", 100).max(1);
    let audits = env_number("DBYTES_BENCH_AUDITS", 20).max(1);
    let periods = env_number("DBYTES_BENCH_PERIODS", 20).max(1);
    let prove_pieces = env_number("DBYTES_BENCH_PROVE_PIECES", 16).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    runtime.block_on(async move {
        let store_dir = StoreDir::new("mesh");
        let prove_dir = StoreDir::new("prove");
        println!(
            "mesh store_dir={} pieces_per_round={piece_count} piece_MiB={} streams={STREAMS} rounds={rounds} prove_pieces={prove_pieces}",
            store_dir.0.display(),
            PIECE_BYTES >> 20,
        );
        let mut rng = StdRng::seed_from_u64(7);
        let pieces = random_pieces(&mut rng, piece_count);
        let stored = pieces
            .iter()
            .map(|(_, bytes)| {
                let tree = PieceTree::build(bytes);
                StoredPiece {
                    length: bytes.len() as u64,
                    root: tree.root(),
                    leaf_count: tree.leaf_count(),
                }
            })
            .collect();

        let consumer = NodeSecret::from_bytes(rng.r#gen());
        let deal = DealId::from(1);
        let deals = Arc::new(StaticDeals::new());
        let capacity_bytes = (piece_count as u64 + 1) * PIECE_BYTES as u64;
        deals.insert(DealTerms {
            deal,
            active: true,
            consumer: Address::repeat_byte(0xc0),
            consumer_node: *node_id(&consumer).as_bytes(),
            provider: Address::repeat_byte(0x70),
            capacity_bytes,
            readers: vec![],
        });
        let transport = TransportConfig::local();
        let config = ProviderConfig {
            store: StoreConfig {
                data_dir: store_dir.0.clone(),
                capacity_bytes,
            },
            transport: transport.clone(),
            service: ServiceConfig::default(),
            scrub: ScrubConfig {
                bytes_per_sec: 0,
                ..ScrubConfig::default()
            },
        };
        let provider = ProviderNode::start(
            &config,
            &NodeSecret::from_bytes(rng.r#gen()),
            deals,
            NoSigner,
        )
        .await
        .expect("start the provider");

        let raw_endpoint = bind_endpoint(
            &NodeSecret::from_bytes(rng.r#gen()),
            &transport,
            vec![RAW_ALPN.to_vec()],
        )
        .await
        .expect("bind the raw endpoint");
        let raw_router = Router::builder(raw_endpoint)
            .accept(
                RAW_ALPN,
                RawStreams {
                    payload: Arc::new(pieces[0].1.clone()),
                },
            )
            .spawn();

        let client_endpoint = bind_endpoint(&consumer, &transport, vec![])
            .await
            .expect("bind the client endpoint");
        let raw = client_endpoint
            .connect(raw_router.endpoint().addr(), RAW_ALPN)
            .await
            .expect("connect to the raw endpoint");
        let client = PieceClient::new(client_endpoint, ClientConfig::default());
        let provider_addr = provider.addr();
        let provider_id: EndpointId = provider_addr.id;
        client
            .stat(&provider_addr)
            .await
            .expect("the provider answers a stat");

        let prove_pieces = random_pieces(&mut rng, prove_pieces);
        let prove = tokio::task::block_in_place(|| {
            ProveBench::new(prove_dir.0.clone(), DealId::from(2), &prove_pieces)
        });
        drop(prove_pieces);
        let bench = Bench {
            client,
            provider: provider_addr,
            raw,
            deal,
            pieces: Arc::new(pieces),
            stored,
            prove,
        };
        // A warm-up round: connections open, windows grow, files are cached.
        bench.round(ranges, audits, periods, &mut rng).await;
        let mut results = Vec::with_capacity(rounds);
        for round in 1..=rounds {
            let result = bench.round(ranges, audits, periods, &mut rng).await;
            println!(
                "mesh round={round} put_MBps={:.0} get_MBps={:.0} get_range_4KiB_p50_ms={:.3} audit_p50_ms={:.3} prove_p50_ms={:.3} raw_upload_MBps={:.0} raw_download_MBps={:.0}",
                result.put_mbps,
                result.get_mbps,
                result.range_p50_ms,
                result.audit_p50_ms,
                result.prove_p50_ms,
                result.raw_upload_mbps,
                result.raw_download_mbps,
            );
            results.push(result);
        }
        let put = median(results.iter().map(|r| r.put_mbps).collect());
        let get = median(results.iter().map(|r| r.get_mbps).collect());
        let range_p50 = median(results.iter().map(|r| r.range_p50_ms).collect());
        let audit_p50 = median(results.iter().map(|r| r.audit_p50_ms).collect());
        let prove_p50 = median(results.iter().map(|r| r.prove_p50_ms).collect());
        let raw_upload = median(results.iter().map(|r| r.raw_upload_mbps).collect());
        let raw_download = median(results.iter().map(|r| r.raw_download_mbps).collect());
        let raw = raw_upload.max(raw_download);
        println!(
            "mesh raw_upload_MBps={raw_upload:.0} raw_download_MBps={raw_download:.0} put_of_raw_upload={:.2} get_of_raw_download={:.2} provider={provider_id}",
            put / raw_upload,
            get / raw_download,
        );
        println!(
            "mesh put_MBps={put:.0} get_MBps={get:.0} get_range_4KiB_p50_ms={range_p50:.3} audit_p50_ms={audit_p50:.3} prove_p50_ms={prove_p50:.3} raw_quic_MBps={raw:.0}"
        );
        bench.client.endpoint().close().await;
        raw_router
            .shutdown()
            .await
            .expect("stop the raw endpoint");
        provider.shutdown().await.expect("stop the provider");
    });
}
