//! The market as seen from the contracts' events: an index in redb of
//! listings, collateral pools, deals and proofs, and the listing search
//! consumers (and gateways opening deals by themselves) run against it.
//!
//! It is not the gateway's book (`crate::book`) and keeps its own file. It
//! is rebuilt entirely from events, so it can be deleted at any time; it
//! resumes from its last indexed block, survives the endpoint going away
//! (a sync fails, the follower retries), and rolls back blocks a reorg
//! removed.
//!
//! Main types: [`MarketIndex`] (the redb file and its queries),
//! [`Follower`] (reads events into it), [`ListingQuery`] (search),
//! [`Reputation`] (a proof score that forgets old history), and the tables
//! of [`report`].

mod follow;
mod index;
pub mod report;
mod reputation;
mod search;

use std::path::PathBuf;

pub use follow::{FollowConfig, Follower, SyncReport};
pub use index::{Cursor, DealRecord, MarketIndex, ProviderRecord};
pub use reputation::{FORGETTING_FACTOR, Reputation};
pub use search::ListingQuery;

use crate::chain::ChainError;
use crate::chain::{ChainClient, deploy::LOCAL_CHAIN_IDS};

/// Opens the index at `path` for `client`'s deployment and brings it up to
/// the chain's head (what `dbytes market search` and `show` do first).
/// Local chains are read to the head; others stay 5 blocks behind it.
pub async fn open_synced(
    client: &ChainClient,
    path: &std::path::Path,
) -> Result<std::sync::Arc<MarketIndex>, MarketError> {
    let index = std::sync::Arc::new(MarketIndex::open(path, client.deployment())?);
    let config = FollowConfig {
        confirmations: if LOCAL_CHAIN_IDS.contains(&client.deployment().chain_id) {
            0
        } else {
            5
        },
        ..FollowConfig::default()
    };
    Follower::new(client.clone(), index.clone(), config)
        .sync()
        .await?;
    Ok(index)
}

/// The conventional file name of the market index.
pub const DEFAULT_INDEX_FILE: &str = "dbytes-market.redb";

/// Why the index could not be read or updated.
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    /// The chain could not be read (see the inner error; a sync can be retried).
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The index file could not be opened.
    #[error("cannot open the market index {path}: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The index file belongs to another deployment or a chain since reset.
    #[error(
        "the market index {path} was built for another deployment (or a chain since reset); \
         delete it, or pass another --index, and it is rebuilt from the chain"
    )]
    OtherDeployment {
        /// The file.
        path: PathBuf,
    },
    /// The deployment's first block is no longer on the chain.
    #[error(
        "block {block}, where the contracts were deployed, is no longer on the chain: it was \
         reset; deploy again and use the new deployment file"
    )]
    DeploymentGone {
        /// The deployment block.
        block: u64,
    },
    /// The storage engine failed.
    #[error("the market index failed: {0}")]
    Storage(#[from] redb::Error),
    /// A record did not decode.
    #[error("the market index is corrupt ({0}); delete it to rebuild it from the chain")]
    Corrupt(String),
}

macro_rules! storage_errors {
    ($($ty:ty),*) => {$(
        impl From<$ty> for MarketError {
            fn from(err: $ty) -> Self {
                MarketError::Storage(err.into())
            }
        }
    )*};
}
storage_errors!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
