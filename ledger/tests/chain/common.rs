//! A local market for each test: anvil from the pinned binary, the
//! contracts deployed from the committed artifacts, funded parties.

use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use dbytes_ledger::chain::anvil::{Anvil, AnvilOptions};
use dbytes_ledger::chain::deploy::{DeployOptions, deploy};
use dbytes_ledger::chain::units::GIB;
use dbytes_ledger::chain::{
    AcceptPolicy, ChainClient, Deployment, ListingTerms, Region, RetryPolicy,
};
use dbytes_ledger::commitment::{DealTree, PieceTree};

/// Period length of test deployments; time is moved, never waited for.
pub const PERIOD: u64 = 3600;
/// Proof grace of test deployments.
pub const GRACE: u64 = 600;
/// One token in base units.
pub const TOKEN: u128 = 1_000_000_000_000_000_000;

/// Dev accounts by role.
pub const CONSUMER: u32 = 1;
pub const PROVIDER: u32 = 2;
pub const PROVIDER2: u32 = 3;
pub const STRANGER: u32 = 4;

pub use tempfile::TempDir;

/// A directory under the system's temp dir named after `label`, removed
/// when dropped.
pub fn temp_dir(label: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("dbytes-{label}-"))
        .tempdir()
        .expect("make a temp dir")
}

/// A deployed market on a private anvil (killed when dropped).
pub struct Market {
    pub anvil: Anvil,
    pub deployment: Deployment,
    pub dir: TempDir,
}

impl Market {
    pub async fn start() -> Market {
        let anvil =
            Anvil::spawn(&AnvilOptions::default()).expect("anvil starts (run `make setup`)");
        let options = DeployOptions {
            period_secs: PERIOD,
            proof_grace_secs: GRACE,
            ..DeployOptions::default()
        };
        let deployment = deploy(anvil.endpoint(), anvil.account(0), &options)
            .await
            .expect("the contracts deploy");
        Market {
            anvil,
            deployment,
            dir: temp_dir("market"),
        }
    }

    /// A client signing as dev account `index`, funded from the faucet.
    pub async fn party(&self, index: u32) -> ChainClient {
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

    /// Moves the chain's clock to `offset` seconds into `period`.
    pub async fn go_to(&self, client: &ChainClient, period: u64, offset: u64) {
        let target = self.deployment.clock().period_start(period) + offset;
        let now = client.now().await.unwrap();
        assert!(target > now, "cannot go back in time: {now} -> {target}");
        self.anvil.increase_time(target - now).await.unwrap();
    }
}

/// Listing terms at `price` tokens per GiB-month.
pub fn terms(policy: AcceptPolicy, price_tokens: u128, region: &str) -> ListingTerms {
    ListingTerms {
        node_id: B256::repeat_byte(0x11),
        address_hints: Bytes::from_static(b"127.0.0.1:4433"),
        capacity_bytes: 1000 * GIB,
        price_per_gib_month: price_tokens * TOKEN,
        min_periods: 1,
        max_periods: 1000,
        collateral_bps: 20_000,
        collateral_per_gib: 0,
        region: region.parse::<Region>().unwrap(),
        policy,
        quote_signer: None,
    }
}

/// Registers `client` as a provider with `terms` and 10000 tokens of collateral.
pub async fn list(client: &ChainClient, terms: &ListingTerms) {
    client.register(terms).await.unwrap();
    client
        .deposit_collateral(U256::from(10_000 * TOKEN))
        .await
        .unwrap();
}

pub fn node_id(byte: u8) -> B256 {
    B256::repeat_byte(byte)
}

/// Real pieces (pseudo-random bytes), their trees and the deal tree over them.
pub struct Pieces {
    pub bytes: Vec<Vec<u8>>,
    pub trees: Vec<PieceTree>,
    pub deal: DealTree,
}

impl Pieces {
    pub fn new(count: usize, len: usize) -> Pieces {
        let bytes: Vec<Vec<u8>> = (0..count)
            .map(|i| {
                (0..len)
                    .map(|j| ((j as u64).wrapping_mul(2654435761) >> (i % 7)) as u8 ^ i as u8)
                    .collect()
            })
            .collect();
        let trees: Vec<PieceTree> = bytes.iter().map(|b| PieceTree::build(b)).collect();
        let slot_height = trees.iter().map(|t| t.depth()).max().unwrap();
        let roots = trees
            .iter()
            .map(|t| t.slot_root(slot_height).unwrap())
            .collect();
        let deal = DealTree::new(slot_height, roots).unwrap();
        Pieces { bytes, trees, deal }
    }
}

pub fn addr(client: &ChainClient) -> Address {
    client.address().unwrap()
}
