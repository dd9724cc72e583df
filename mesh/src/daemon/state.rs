//! What the daemon keeps on disk besides pieces: the commitments it signed
//! (the chain stores only their roots; proving needs the piece order), the
//! node's address for whoever dials it (`node.json`), its status for
//! `dbytes provider status` (`status.json`), and how far it has read the
//! marketplace's deal events (`deal_scan.json`, so a restart resumes there
//! instead of reading the chain's history again).
//!
//! Every file is written whole to a temporary file, fsynced and renamed, so
//! a reader (another process, or this one after kill -9) sees the old
//! version or the new one, never half of one. The JSON files are read-only
//! to everyone else: `status` reads them while the daemon runs.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use alloy_primitives::{Address, B256, U256};
use dbytes_ledger::piece::PieceId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::commitment::Commitment;
use crate::deal::DealId;

/// The node file's name in the data dir.
pub const NODE_FILE: &str = "node.json";
/// The status file's name in the data dir.
pub const STATUS_FILE: &str = "status.json";
/// The deal scan file's name in the data dir.
pub const DEAL_SCAN_FILE: &str = "deal_scan.json";
const COMMITMENTS_DIR: &str = "commitments";

/// Why a state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds something else than expected.
    #[error("{} is not a valid state file: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let io = |action| {
        move |source| StateError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp).map_err(io("create"))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io("write"))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io("rename"))?;
    if let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        // Makes the rename itself durable; not all platforms allow it.
        let _ = dir.sync_all();
    }
    Ok(())
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|err| StateError::Invalid {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })?;
    write_atomically(path, &bytes)
}

/// Reads a JSON file; `None` if it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|err| StateError::Invalid {
                path: path.to_path_buf(),
                reason: err.to_string(),
            }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Where a running daemon can be reached: `<data dir>/node.json`, written
/// once the node listens (tests and `dbytes devnet` dial from it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFile {
    /// The iroh node id, hex.
    pub node_id: String,
    /// The direct addresses the node is bound to.
    pub addrs: Vec<SocketAddr>,
    /// The provider's wallet.
    pub wallet: Address,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// The daemon's process id.
    pub pid: u32,
    /// When it started (unix seconds).
    pub started_at: u64,
}

impl NodeFile {
    /// `<data_dir>/node.json`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(NODE_FILE)
    }

    /// Writes the file into `data_dir`.
    pub fn save(&self, data_dir: &Path) -> Result<(), StateError> {
        write_json(&NodeFile::path(data_dir), self)
    }

    /// The file in `data_dir`, if a daemon wrote one.
    pub fn load(data_dir: &Path) -> Result<Option<NodeFile>, StateError> {
        read_json(&NodeFile::path(data_dir))
    }

    /// The node id as 32 bytes, if the file's is valid hex.
    pub fn node_id_bytes(&self) -> Option<[u8; 32]> {
        let bytes = hex::decode(&self.node_id).ok()?;
        bytes.try_into().ok()
    }
}

/// One deal as the daemon last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealStatus {
    /// The deal.
    pub deal: String,
    /// Its state on chain.
    pub state: String,
    /// The consumer's wallet.
    pub consumer: Address,
    /// Capacity reserved, bytes.
    pub capacity_bytes: u64,
    /// First period not yet settled.
    pub settled_to: u64,
    /// End period (exclusive).
    pub end: u64,
    /// Periods this daemon proved.
    pub proven: u64,
    /// Periods found closed without a proof.
    pub missed: u64,
}

/// What `dbytes provider status` reports of a running (or stopped) daemon:
/// `<data dir>/status.json`, rewritten as things happen.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusFile {
    /// When the daemon started (unix seconds).
    pub started_at: u64,
    /// When this file was written (unix seconds).
    pub updated_at: u64,
    /// The daemon's process id.
    pub pid: u32,
    /// Capacity offered by the store, bytes.
    pub capacity_bytes: u64,
    /// Bytes of pieces stored.
    pub used_bytes: u64,
    /// Pieces stored.
    pub pieces: u64,
    /// Deal periods proven on chain by this daemon, in all.
    pub proofs_made: u64,
    /// Deal periods that closed without a proof, in all.
    pub proofs_missed: u64,
    /// Tokens withdrawn from the marketplace, base units, decimal.
    pub withdrawn: String,
    /// Per deal, the first closed period not yet checked for a missed
    /// proof (`deal -> period`).
    pub accounted_to: BTreeMap<String, u64>,
    /// The provider's deals.
    pub deals: Vec<DealStatus>,
    /// The latest error of each loop that is failing now.
    pub errors: BTreeMap<String, String>,
    /// The last block whose deal events the deals loop has read.
    #[serde(default)]
    pub deals_scanned_to_block: u64,
}

impl StatusFile {
    /// `<data_dir>/status.json`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(STATUS_FILE)
    }

    /// Writes the file into `data_dir`.
    pub fn save(&self, data_dir: &Path) -> Result<(), StateError> {
        write_json(&StatusFile::path(data_dir), self)
    }

    /// The file in `data_dir`, if a daemon wrote one.
    pub fn load(data_dir: &Path) -> Result<Option<StatusFile>, StateError> {
        read_json(&StatusFile::path(data_dir))
    }
}

/// How far the deals loop has read the marketplace's `DealCreated` events
/// for this provider, and the deals they named: `<data dir>/deal_scan.json`,
/// written after every range of blocks read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealScan {
    /// The marketplace the events came from.
    pub marketplace: Address,
    /// The hash of its deployment's first block: a chain started afresh
    /// under the same address (a local network) starts the scan afresh.
    pub deploy_block_hash: B256,
    /// The first block not read yet.
    pub next_block: u64,
    /// The deals found so far, oldest first.
    pub deal_ids: Vec<U256>,
}

impl DealScan {
    /// A scan of a deployment that starts at its first block.
    pub fn start(marketplace: Address, deploy_block_hash: B256, deploy_block: u64) -> DealScan {
        DealScan {
            marketplace,
            deploy_block_hash,
            next_block: deploy_block,
            deal_ids: Vec::new(),
        }
    }

    /// `<data_dir>/deal_scan.json`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(DEAL_SCAN_FILE)
    }

    /// Writes the file into `data_dir`.
    pub fn save(&self, data_dir: &Path) -> Result<(), StateError> {
        write_json(&DealScan::path(data_dir), self)
    }

    /// The scan saved in `data_dir` if it is of the same deployment as
    /// `fresh`, else `fresh` (also when the file is unreadable: reading
    /// the history again costs time, not correctness).
    pub fn resume(data_dir: &Path, fresh: DealScan) -> DealScan {
        match read_json::<DealScan>(&DealScan::path(data_dir)) {
            Ok(Some(saved))
                if saved.marketplace == fresh.marketplace
                    && saved.deploy_block_hash == fresh.deploy_block_hash
                    && saved.next_block >= fresh.next_block =>
            {
                saved
            }
            _ => fresh,
        }
    }

    /// Records the deals found in the blocks up to `to_block`.
    pub fn advance(&mut self, to_block: u64, found: impl IntoIterator<Item = U256>) {
        for id in found {
            if !self.deal_ids.contains(&id) {
                self.deal_ids.push(id);
            }
        }
        self.next_block = self.next_block.max(to_block.saturating_add(1));
    }
}

/// A commitment as the provider signed it: what the chain holds plus the
/// piece order, which only the two parties know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCommitment {
    /// The deal tree's root.
    pub root: B256,
    /// Its leaf count.
    pub leaf_count: u64,
    /// Its version.
    pub version: u32,
    /// The pieces, in slot order.
    pub pieces: Vec<PieceId>,
}

/// The commitments a provider signed, one file per deal and version under
/// `<data dir>/commitments/`.
#[derive(Debug, Clone)]
pub struct CommitmentBook {
    dir: PathBuf,
}

impl CommitmentBook {
    /// The book under `data_dir` (created if missing).
    pub fn open(data_dir: &Path) -> Result<CommitmentBook, StateError> {
        let dir = data_dir.join(COMMITMENTS_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| StateError::Io {
            action: "create",
            path: dir.clone(),
            source,
        })?;
        Ok(CommitmentBook { dir })
    }

    fn path(&self, deal: DealId, version: u32) -> PathBuf {
        self.dir.join(format!("{deal}-{version}.json"))
    }

    /// Records `commitment` durably (before its signature leaves the node).
    pub fn record(&self, commitment: &Commitment) -> Result<(), StateError> {
        let signed = SignedCommitment {
            root: commitment.root,
            leaf_count: commitment.leaf_count,
            version: commitment.version,
            pieces: commitment.pieces.clone(),
        };
        write_json(&self.path(commitment.deal, commitment.version), &signed)
    }

    /// Version `version` of `deal`'s commitment, if this provider signed it.
    pub fn get(&self, deal: DealId, version: u32) -> Result<Option<SignedCommitment>, StateError> {
        read_json(&self.path(deal, version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "dbytes-mesh-state-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn signed_commitments_and_status_survive_a_reopen() {
        let dir = temp_dir();
        let book = CommitmentBook::open(&dir).unwrap();
        let commitment = Commitment {
            deal: DealId::from(3),
            root: B256::repeat_byte(7),
            leaf_count: 8,
            version: 2,
            pieces: vec![PieceId::of(b"a"), PieceId::of(b"b")],
        };
        book.record(&commitment).unwrap();
        let again = CommitmentBook::open(&dir).unwrap();
        let signed = again.get(DealId::from(3), 2).unwrap().unwrap();
        assert_eq!(signed.pieces, commitment.pieces);
        assert_eq!(signed.root, commitment.root);
        assert_eq!(again.get(DealId::from(3), 1).unwrap(), None);

        assert_eq!(StatusFile::load(&dir).unwrap(), None);
        let status = StatusFile {
            proofs_made: 4,
            withdrawn: "12".to_string(),
            ..StatusFile::default()
        };
        status.save(&dir).unwrap();
        assert_eq!(StatusFile::load(&dir).unwrap(), Some(status));
        std::fs::write(StatusFile::path(&dir), b"{").unwrap();
        assert!(StatusFile::load(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_deal_scan_resumes_only_on_the_same_deployment() {
        let dir = temp_dir();
        let market = Address::repeat_byte(1);
        let genesis = B256::repeat_byte(2);
        let fresh = DealScan::start(market, genesis, 5);
        assert_eq!(DealScan::resume(&dir, fresh.clone()), fresh);
        let mut scan = fresh.clone();
        scan.advance(99, [U256::from(3), U256::from(4)]);
        scan.advance(120, [U256::from(4), U256::from(9)]);
        assert_eq!(scan.next_block, 121);
        assert_eq!(
            scan.deal_ids,
            vec![U256::from(3), U256::from(4), U256::from(9)]
        );
        scan.save(&dir).unwrap();
        assert_eq!(DealScan::resume(&dir, fresh.clone()), scan);
        // Another chain under the same address starts afresh.
        let other = DealScan::start(market, B256::repeat_byte(3), 5);
        assert_eq!(DealScan::resume(&dir, other.clone()), other);
        std::fs::write(DealScan::path(&dir), b"{").unwrap();
        assert_eq!(DealScan::resume(&dir, fresh.clone()), fresh);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
