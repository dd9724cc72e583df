//! What the mesh's integration tests share: temporary directories, a
//! provider on 127.0.0.1 with an in-memory deal table, consumers, pieces.

#![allow(dead_code)] // Each test file uses its own subset.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Address;
use dbytes_ledger::keys::NodeSecret;
use dbytes_ledger::piece::PieceId;
use dbytes_mesh::client::{ClientConfig, PieceClient};
use dbytes_mesh::commitment::{Commitment, CommitmentSigner, SignError};
use dbytes_mesh::deal::{DealAuthority, DealId, DealTerms, StaticDeals};
use dbytes_mesh::provider::{ProviderConfig, ProviderNode, ScrubConfig, ServiceConfig};
use dbytes_mesh::store::StoreConfig;
use dbytes_mesh::transport::{TransportConfig, bind_endpoint, node_id};
use rand::{Rng, SeedableRng};

pub use tempfile::TempDir;

/// A directory under the system's temp dir named after `label`, removed
/// when dropped.
pub fn temp_dir(label: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("dbytes-mesh-{label}-"))
        .tempdir()
        .expect("make a temp dir")
}

/// Deterministic pseudo-random bytes.
pub fn piece_bytes(length: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut bytes = vec![0u8; length];
    rng.fill(&mut bytes[..]);
    bytes
}

/// A node secret drawn at random.
pub fn random_secret() -> NodeSecret {
    NodeSecret::from_bytes(rand::random())
}

/// Terms of an active deal between `consumer` and the provider.
pub fn terms(deal: u64, consumer: &NodeSecret, capacity_bytes: u64) -> DealTerms {
    DealTerms {
        deal: DealId::from(deal),
        active: true,
        consumer: Address::repeat_byte(0xc0),
        consumer_node: *node_id(consumer).as_bytes(),
        provider: Address::repeat_byte(0x70),
        capacity_bytes,
        readers: vec![],
    }
}

/// A signer that "signs" with BLAKE3 over the commitment's fields, so tests
/// can tell what was signed.
#[derive(Debug, Clone, Copy)]
pub struct TestSigner;

impl TestSigner {
    pub fn signature(commitment: &Commitment) -> Vec<u8> {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&commitment.deal.to_be_bytes());
        hasher.update(commitment.root.as_slice());
        hasher.update(&commitment.leaf_count.to_be_bytes());
        hasher.update(&commitment.version.to_be_bytes());
        hasher.finalize().as_bytes().to_vec()
    }
}

impl CommitmentSigner for TestSigner {
    async fn sign_commitment(
        &self,
        commitment: &Commitment,
        _terms: &DealTerms,
    ) -> Result<Vec<u8>, SignError> {
        Ok(TestSigner::signature(commitment))
    }
}

/// A deal authority that answers late, to hold a request at the provider.
pub struct SlowDeals {
    pub deals: Arc<StaticDeals>,
    pub delay: Duration,
}

impl DealAuthority for SlowDeals {
    async fn deal_terms(
        &self,
        deal: DealId,
    ) -> Result<Option<DealTerms>, dbytes_mesh::deal::AuthorityError> {
        tokio::time::sleep(self.delay).await;
        self.deals.deal_terms(deal).await
    }
}

pub fn provider_config(dir: &Path, capacity_bytes: u64) -> ProviderConfig {
    ProviderConfig {
        store: StoreConfig {
            data_dir: dir.to_path_buf(),
            capacity_bytes,
        },
        transport: TransportConfig::local(),
        service: ServiceConfig {
            provider_address: Some(Address::repeat_byte(0x70)),
            ..ServiceConfig::default()
        },
        // The tests scrub by hand.
        scrub: ScrubConfig {
            bytes_per_sec: 0,
            ..ScrubConfig::default()
        },
    }
}

/// A provider on 127.0.0.1 answering from `authority`.
pub async fn start_provider<A: DealAuthority>(
    dir: &Path,
    capacity_bytes: u64,
    authority: A,
) -> ProviderNode {
    ProviderNode::start(
        &provider_config(dir, capacity_bytes),
        &random_secret(),
        authority,
        TestSigner,
    )
    .await
    .unwrap()
}

/// A client dialing from its own endpoint on 127.0.0.1 with `secret`.
pub async fn client(secret: &NodeSecret) -> PieceClient {
    let endpoint = bind_endpoint(secret, &TransportConfig::local(), vec![])
        .await
        .unwrap();
    PieceClient::new(
        endpoint,
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            transfer_timeout: Duration::from_secs(20),
        },
    )
}

/// `(id, bytes)` of a piece.
pub fn piece(length: usize, seed: u64) -> (PieceId, Vec<u8>) {
    let bytes = piece_bytes(length, seed);
    (PieceId::of(&bytes), bytes)
}

/// Waits until `check` holds (or fails the test after 10 s).
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Files in `dir` (none if it does not exist).
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|entry| entry.unwrap().path()).collect(),
        Err(_) => vec![],
    }
}
