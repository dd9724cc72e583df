//! The market index: contract events folded into records in redb.
//!
//! Every write of a block's events goes through a journal that remembers
//! the value it replaced, keyed by block, so the index can be rolled back
//! to any block within the reorg window and re-read from there. The cursor
//! (last indexed block and its hash) is written in the same transaction as
//! the records, so a crash never leaves half a range indexed.

use std::path::Path;

use alloy::primitives::{Address, B256, U256};
use alloy::rpc::types::Log;
use alloy::sol_types::SolEventInterface;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::MarketError;
use super::reputation::Reputation;
use crate::chain::Deployment;
use crate::chain::bindings::market::Marketplace::MarketplaceEvents as ME;
use crate::chain::bindings::proofs::StorageProofs::StorageProofsEvents as PE;
use crate::chain::bindings::registry::ProviderRegistry::ProviderRegistryEvents as RE;
use crate::chain::listing::from_binding;
use crate::chain::types::{Commitment, DealState, ListingStatus, ListingTerms, Pool, ToU64};

/// Key-value tables; values are JSON records.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("market_meta");
const PROVIDERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("market_providers");
const DEALS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("market_deals");
/// Secondary indexes: `party (20 bytes) ‖ deal id (8 bytes, big-endian)` → empty.
const BY_PROVIDER: TableDefinition<&[u8], &[u8]> = TableDefinition::new("market_deals_by_provider");
const BY_CONSUMER: TableDefinition<&[u8], &[u8]> = TableDefinition::new("market_deals_by_consumer");
/// Hashes of indexed blocks within the reorg window: block number → hash.
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("market_blocks");
/// The journal: `block (8) ‖ sequence (4)` → [`Undo`].
const UNDO: TableDefinition<&[u8], &[u8]> = TableDefinition::new("market_undo");

/// Tables the journal can restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Journaled {
    Providers,
    Deals,
    ByProvider,
    ByConsumer,
}

impl Journaled {
    fn definition(self) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        match self {
            Journaled::Providers => PROVIDERS,
            Journaled::Deals => DEALS,
            Journaled::ByProvider => BY_PROVIDER,
            Journaled::ByConsumer => BY_CONSUMER,
        }
    }
}

/// What a journaled write replaced.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Undo {
    table: Journaled,
    key: Vec<u8>,
    old: Option<Vec<u8>>,
}

/// Where indexing stands: the last block folded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Its number.
    pub block: u64,
    /// Its hash.
    pub hash: B256,
}

/// Which deployment an index file belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    chain_id: u64,
    marketplace: Address,
    deploy_block_hash: B256,
}

/// Everything the index knows of a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderRecord {
    /// The provider's address.
    pub provider: Address,
    /// Its listing status.
    pub status: ListingStatus,
    /// Its listing terms (`None` once it left, or before it registered).
    pub terms: Option<ListingTerms>,
    /// Its collateral pool.
    pub pool: Pool,
    /// Bytes reserved by live deals.
    pub used_bytes: u64,
    /// Deals accepted and not ended.
    pub live_deals: u32,
    /// Deal-periods proven.
    pub proofs: u64,
    /// Deal-periods missed.
    pub missed: u64,
    /// The forgetting score of its proofs.
    pub reputation: Reputation,
    /// Pay for proven periods settled so far (held-back share included).
    pub paid: U256,
    /// Tokens credited to it (pay, released hold-backs, repair rewards).
    pub credited: U256,
    /// Collateral taken from it.
    pub slashed: U256,
    /// Block of its first event.
    pub since_block: u64,
}

impl ProviderRecord {
    fn new(provider: Address, block: u64) -> ProviderRecord {
        ProviderRecord {
            provider,
            status: ListingStatus::None,
            terms: None,
            pool: Pool::default(),
            used_bytes: 0,
            live_deals: 0,
            proofs: 0,
            missed: 0,
            reputation: Reputation::default(),
            paid: U256::ZERO,
            credited: U256::ZERO,
            slashed: U256::ZERO,
            since_block: block,
        }
    }

    /// Bytes free for new deals.
    pub fn free_bytes(&self) -> u64 {
        self.terms
            .as_ref()
            .map_or(0, |t| t.capacity_bytes.saturating_sub(self.used_bytes))
    }
}

/// Everything the index knows of a deal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealRecord {
    /// The deal id.
    pub id: u64,
    /// Who pays.
    pub consumer: Address,
    /// Who stores.
    pub provider: Address,
    /// Lifecycle state.
    pub state: DealState,
    /// Bytes reserved.
    pub capacity_bytes: u64,
    /// First period.
    pub start: u64,
    /// First period after the deal.
    pub end: u64,
    /// First period not settled.
    pub settled_to: u64,
    /// Pay per period.
    pub rate_per_period: U256,
    /// Collateral posted.
    pub collateral: U256,
    /// The consumer's iroh node id.
    pub consumer_node_id: B256,
    /// The latest commitment and the period it takes effect.
    pub commitment: Option<(Commitment, u64)>,
    /// Periods proven.
    pub proven_periods: u64,
    /// Periods missed.
    pub missed_periods: u64,
    /// Paid to the provider.
    pub paid: U256,
    /// Refunded to the consumer.
    pub refunded: U256,
    /// The deal this one repairs or takes over.
    pub parent: Option<u64>,
    /// The deal that took this one over.
    pub child: Option<u64>,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Records are plain data; serialising them cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, MarketError> {
    serde_json::from_slice(bytes).map_err(|err| MarketError::Corrupt(format!("{what}: {err}")))
}

fn deal_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

fn party_key(party: Address, id: u64) -> Vec<u8> {
    let mut key = party.to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

fn undo_key(block: u64, seq: u32) -> Vec<u8> {
    let mut key = block.to_be_bytes().to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Deal ids on chain are `uint256`, handed out from 1 upwards; the index
/// keys them as `u64`, which no chain will outgrow.
fn deal_id(id: U256) -> u64 {
    id.saturating_to()
}

/// Writes of one block, journaled.
struct Journal<'t> {
    txn: &'t WriteTransaction,
    block: u64,
    seq: u32,
}

impl Journal<'_> {
    fn get(&self, table: Journaled, key: &[u8]) -> Result<Option<Vec<u8>>, MarketError> {
        let table = self.txn.open_table(table.definition())?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }

    fn put(
        &mut self,
        table: Journaled,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), MarketError> {
        let old = {
            let mut t = self.txn.open_table(table.definition())?;
            match value {
                Some(value) => t.insert(key, value)?.map(|g| g.value().to_vec()),
                None => t.remove(key)?.map(|g| g.value().to_vec()),
            }
        };
        let undo = Undo {
            table,
            key: key.to_vec(),
            old,
        };
        self.txn.open_table(UNDO)?.insert(
            undo_key(self.block, self.seq).as_slice(),
            encode(&undo).as_slice(),
        )?;
        self.seq += 1;
        Ok(())
    }

    fn provider(&self, provider: Address) -> Result<ProviderRecord, MarketError> {
        match self.get(Journaled::Providers, provider.as_slice())? {
            Some(bytes) => decode("provider record", &bytes),
            None => Ok(ProviderRecord::new(provider, self.block)),
        }
    }

    fn put_provider(&mut self, record: &ProviderRecord) -> Result<(), MarketError> {
        self.put(
            Journaled::Providers,
            record.provider.as_slice(),
            Some(&encode(record)),
        )
    }

    fn update_provider(
        &mut self,
        provider: Address,
        change: impl FnOnce(&mut ProviderRecord),
    ) -> Result<(), MarketError> {
        let mut record = self.provider(provider)?;
        change(&mut record);
        self.put_provider(&record)
    }

    fn deal(&self, id: u64) -> Result<Option<DealRecord>, MarketError> {
        self.get(Journaled::Deals, &deal_key(id))?
            .map(|bytes| decode("deal record", &bytes))
            .transpose()
    }

    fn update_deal(
        &mut self,
        id: u64,
        change: impl FnOnce(&mut DealRecord),
    ) -> Result<Option<DealRecord>, MarketError> {
        let Some(mut record) = self.deal(id)? else {
            // An event for a deal created before the index's start: nothing to update.
            return Ok(None);
        };
        change(&mut record);
        self.put(Journaled::Deals, &deal_key(id), Some(&encode(&record)))?;
        Ok(Some(record))
    }
}

/// The market index in a redb file.
#[derive(Debug)]
pub struct MarketIndex {
    db: Database,
}

impl MarketIndex {
    /// Opens (or creates) the index at `path` for `deployment`; an index of
    /// another deployment (or of a chain since reset) is refused.
    pub fn open(path: &Path, deployment: &Deployment) -> Result<MarketIndex, MarketError> {
        let db = Database::create(path).map_err(|err| MarketError::Open {
            path: path.to_owned(),
            reason: err.to_string(),
        })?;
        let index = MarketIndex { db };
        index.bind(path, deployment)?;
        Ok(index)
    }

    /// An index in memory (tests).
    pub fn in_memory(deployment: &Deployment) -> Result<MarketIndex, MarketError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|err| MarketError::Open {
                path: "<memory>".into(),
                reason: err.to_string(),
            })?;
        let index = MarketIndex { db };
        index.bind(Path::new("<memory>"), deployment)?;
        Ok(index)
    }

    fn bind(&self, path: &Path, deployment: &Deployment) -> Result<(), MarketError> {
        let identity = Identity {
            chain_id: deployment.chain_id,
            marketplace: deployment.contracts.marketplace,
            deploy_block_hash: deployment.deploy_block_hash,
        };
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let existing = meta.get("identity")?.map(|v| v.value().to_vec());
            match existing {
                Some(bytes) => {
                    let found: Identity = decode("index identity", &bytes)?;
                    if found != identity {
                        return Err(MarketError::OtherDeployment {
                            path: path.to_owned(),
                        });
                    }
                }
                None => {
                    meta.insert("identity", encode(&identity).as_slice())?;
                }
            }
            for table in [PROVIDERS, DEALS, BY_PROVIDER, BY_CONSUMER, UNDO] {
                txn.open_table(table)?;
            }
            txn.open_table(BLOCKS)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The last indexed block, or `None` before the first sync.
    pub fn cursor(&self) -> Result<Option<Cursor>, MarketError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        meta.get("cursor")?
            .map(|v| decode("cursor", v.value()))
            .transpose()
    }

    /// Folds `logs` (of blocks up to `cursor.block`, in chain order) into
    /// the index and moves the cursor there, in one transaction. Blocks
    /// older than `keep_from` leave the journal.
    pub(crate) fn apply(
        &self,
        deployment: &Deployment,
        logs: &[Log],
        cursor: Cursor,
        keep_from: u64,
    ) -> Result<(), MarketError> {
        let txn = self.db.begin_write()?;
        {
            let mut journal = Journal {
                txn: &txn,
                block: 0,
                seq: 0,
            };
            let mut blocks = txn.open_table(BLOCKS)?;
            for log in logs {
                let block = log.block_number.unwrap_or(cursor.block);
                if block != journal.block {
                    journal.block = block;
                    journal.seq = 0;
                }
                if let Some(hash) = log.block_hash {
                    blocks.insert(block, hash.as_slice())?;
                }
                apply_log(&mut journal, deployment, log)?;
            }
            blocks.insert(cursor.block, cursor.hash.as_slice())?;
            blocks.retain(|block, _| block >= keep_from)?;
            let mut undo = txn.open_table(UNDO)?;
            let limit = undo_key(keep_from, 0);
            undo.retain(|key, _| key >= limit.as_slice())?;
            txn.open_table(META)?
                .insert("cursor", encode(&cursor).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Indexed block hashes from newest to oldest (within the reorg window).
    pub(crate) fn recent_blocks(&self) -> Result<Vec<(u64, B256)>, MarketError> {
        let txn = self.db.begin_read()?;
        let blocks = txn.open_table(BLOCKS)?;
        let mut out = Vec::new();
        for entry in blocks.iter()?.rev() {
            let (block, hash) = entry?;
            out.push((block.value(), B256::from_slice(hash.value())));
        }
        Ok(out)
    }

    /// Undoes every block after `block` and sets the cursor to it (a reorg).
    pub(crate) fn rollback_to(&self, block: u64, hash: B256) -> Result<u64, MarketError> {
        let txn = self.db.begin_write()?;
        let mut undone = 0;
        {
            let mut undo = txn.open_table(UNDO)?;
            let from = undo_key(block + 1, 0);
            let entries: Vec<(Vec<u8>, Vec<u8>)> = undo
                .range(from.as_slice()..)?
                .map(|entry| entry.map(|(k, v)| (k.value().to_vec(), v.value().to_vec())))
                .collect::<Result<_, _>>()?;
            for (key, value) in entries.iter().rev() {
                let entry: Undo = decode("journal entry", value)?;
                let mut table = txn.open_table(entry.table.definition())?;
                match entry.old {
                    Some(old) => table.insert(entry.key.as_slice(), old.as_slice())?,
                    None => table.remove(entry.key.as_slice())?,
                };
                undo.remove(key.as_slice())?;
                undone += 1;
            }
            txn.open_table(BLOCKS)?.retain(|b, _| b <= block)?;
            txn.open_table(META)?
                .insert("cursor", encode(&Cursor { block, hash }).as_slice())?;
        }
        txn.commit()?;
        Ok(undone)
    }

    /// Forgets everything indexed (a reorg deeper than the window).
    pub(crate) fn reset(&self) -> Result<(), MarketError> {
        let txn = self.db.begin_write()?;
        {
            for table in [PROVIDERS, DEALS, BY_PROVIDER, BY_CONSUMER, UNDO] {
                txn.open_table(table)?.retain(|_, _| false)?;
            }
            txn.open_table(BLOCKS)?.retain(|_, _| false)?;
            txn.open_table(META)?.remove("cursor")?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Every provider the index has seen.
    pub fn providers(&self) -> Result<Vec<ProviderRecord>, MarketError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PROVIDERS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, value) = entry?;
            out.push(decode("provider record", value.value())?);
        }
        Ok(out)
    }

    /// `provider`'s record.
    pub fn provider(&self, provider: Address) -> Result<Option<ProviderRecord>, MarketError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PROVIDERS)?;
        table
            .get(provider.as_slice())?
            .map(|v| decode("provider record", v.value()))
            .transpose()
    }

    /// Deal `id`'s record.
    pub fn deal(&self, id: u64) -> Result<Option<DealRecord>, MarketError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DEALS)?;
        table
            .get(deal_key(id).as_slice())?
            .map(|v| decode("deal record", v.value()))
            .transpose()
    }

    fn deals_by(
        &self,
        index: TableDefinition<&[u8], &[u8]>,
        party: Address,
    ) -> Result<Vec<DealRecord>, MarketError> {
        let txn = self.db.begin_read()?;
        let by = txn.open_table(index)?;
        let deals = txn.open_table(DEALS)?;
        let start = party_key(party, 0);
        let end = party_key(party, u64::MAX);
        let mut out = Vec::new();
        for entry in by.range(start.as_slice()..=end.as_slice())? {
            let (key, _) = entry?;
            let id_bytes = &key.value()[20..];
            if let Some(value) = deals.get(id_bytes)? {
                out.push(decode("deal record", value.value())?);
            }
        }
        Ok(out)
    }

    /// `provider`'s deals, oldest first.
    pub fn deals_of_provider(&self, provider: Address) -> Result<Vec<DealRecord>, MarketError> {
        self.deals_by(BY_PROVIDER, provider)
    }

    /// `consumer`'s deals, oldest first.
    pub fn deals_of_consumer(&self, consumer: Address) -> Result<Vec<DealRecord>, MarketError> {
        self.deals_by(BY_CONSUMER, consumer)
    }
}

/// Folds one log into the records.
fn apply_log(
    journal: &mut Journal<'_>,
    deployment: &Deployment,
    log: &Log,
) -> Result<(), MarketError> {
    let contracts = &deployment.contracts;
    let address = log.address();
    let (topics, data) = (log.topics(), &log.data().data);
    if address == contracts.registry {
        if let Ok(event) = RE::decode_raw_log(topics, data) {
            apply_registry(journal, event)?;
        }
    } else if address == contracts.marketplace {
        if let Ok(event) = ME::decode_raw_log(topics, data) {
            apply_market(journal, event)?;
        }
    } else if address == contracts.proofs
        && let Ok(event) = PE::decode_raw_log(topics, data)
    {
        apply_proofs(journal, event)?;
    }
    Ok(())
}

fn apply_registry(journal: &mut Journal<'_>, event: RE) -> Result<(), MarketError> {
    match event {
        RE::ListingUpdated(e) => journal.update_provider(e.provider, |p| {
            if p.status == ListingStatus::None {
                p.status = ListingStatus::Active;
            }
            p.terms = Some(from_binding(e.provider, e.terms));
        }),
        RE::ListingPaused(e) => journal.update_provider(e.provider, |p| {
            p.status = if e.paused {
                ListingStatus::Paused
            } else {
                ListingStatus::Active
            };
        }),
        RE::ListingRemoved(e) => journal.update_provider(e.provider, |p| {
            p.status = ListingStatus::None;
            p.terms = None;
        }),
        RE::PoolUpdated(e) => journal.update_provider(e.provider, |p| {
            p.pool = Pool {
                deposited: e.deposited,
                locked: e.locked,
            };
            p.used_bytes = e.usedBytes;
            p.live_deals = e.liveDeals;
        }),
        _ => Ok(()),
    }
}

fn apply_market(journal: &mut Journal<'_>, event: ME) -> Result<(), MarketError> {
    match event {
        ME::DealCreated(e) => {
            let id = deal_id(e.dealId);
            let record = DealRecord {
                id,
                consumer: e.consumer,
                provider: e.provider,
                state: DealState::from_u8(e.state).unwrap_or(DealState::Proposed),
                capacity_bytes: e.capacityBytes,
                start: e.start.to_u64(),
                end: e.end.to_u64(),
                settled_to: e.start.to_u64(),
                rate_per_period: U256::from(e.ratePerPeriod),
                collateral: U256::from(e.collateral),
                consumer_node_id: e.consumerNodeId,
                commitment: None,
                proven_periods: 0,
                missed_periods: 0,
                paid: U256::ZERO,
                refunded: U256::ZERO,
                parent: None,
                child: None,
            };
            journal.put(Journaled::Deals, &deal_key(id), Some(&encode(&record)))?;
            journal.put(Journaled::ByProvider, &party_key(e.provider, id), Some(&[]))?;
            journal.put(Journaled::ByConsumer, &party_key(e.consumer, id), Some(&[]))?;
            // Make sure the provider has a record even if its listing predates the index.
            let provider = journal.provider(e.provider)?;
            journal.put_provider(&provider)
        }
        ME::DealAccepted(e) => set_state(journal, e.dealId, DealState::Active),
        ME::DealDeclined(e) => set_state(journal, e.dealId, DealState::Closed),
        ME::DealCancelled(e) => set_state(journal, e.dealId, DealState::Closed),
        ME::DealClosed(e) => set_state(journal, e.dealId, DealState::Closed),
        ME::ProofMissed(e) => {
            let deal = journal.update_deal(deal_id(e.dealId), |d| d.missed_periods += 1)?;
            if let Some(deal) = deal {
                journal.update_provider(deal.provider, |p| {
                    p.missed += 1;
                    p.reputation.record(false);
                })?;
            }
            Ok(())
        }
        ME::Settled(e) => {
            let deal = journal.update_deal(deal_id(e.dealId), |d| {
                d.settled_to = e.toPeriod.to_u64();
                d.paid += e.paid;
                d.refunded += e.refunded;
            })?;
            if let Some(deal) = deal {
                journal.update_provider(deal.provider, |p| {
                    p.paid += e.paid;
                    p.slashed += e.slashed;
                })?;
            }
            Ok(())
        }
        ME::DealFailed(e) => {
            let deal = journal.update_deal(deal_id(e.dealId), |d| {
                d.state = DealState::Failed;
                d.end = d.settled_to;
            })?;
            if let Some(deal) = deal {
                journal.update_provider(deal.provider, |p| p.slashed += e.collateralTaken)?;
            }
            Ok(())
        }
        ME::DealRenewed(e) => journal
            .update_deal(deal_id(e.dealId), |d| {
                d.end = e.newEnd.to_u64();
                d.collateral += U256::from(e.collateralAdded);
            })
            .map(drop),
        ME::DealTerminated(e) => journal
            .update_deal(deal_id(e.dealId), |d| {
                d.end = e.newEnd.to_u64();
                d.state = DealState::Terminating;
                d.refunded += e.refund;
            })
            .map(drop),
        ME::DealExiting(e) => journal
            .update_deal(deal_id(e.dealId), |d| {
                d.end = e.newEnd.to_u64();
                d.state = DealState::Exiting;
                d.refunded += e.refund;
            })
            .map(drop),
        ME::DealReassigned(e) => {
            let parent = deal_id(e.dealId);
            let child = deal_id(e.childId);
            journal.update_deal(parent, |d| d.child = Some(child))?;
            journal.update_deal(child, |d| d.parent = Some(parent))?;
            Ok(())
        }
        ME::Credited(e) => {
            let deal = journal.deal(deal_id(e.dealId))?;
            if let Some(deal) = deal
                && deal.provider == e.account
            {
                journal.update_provider(e.account, |p| p.credited += e.amount)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn set_state(journal: &mut Journal<'_>, id: U256, state: DealState) -> Result<(), MarketError> {
    journal
        .update_deal(deal_id(id), |d| {
            // States only move forward; a later event never lowers one.
            if state > d.state {
                d.state = state;
            }
        })
        .map(drop)
}

fn apply_proofs(journal: &mut Journal<'_>, event: PE) -> Result<(), MarketError> {
    match event {
        PE::DealCommitted(e) => journal
            .update_deal(deal_id(e.dealId), |d| {
                d.commitment = Some((
                    Commitment {
                        root: e.root,
                        leaf_count: e.leafCount,
                        version: e.version,
                    },
                    e.fromPeriod.to_u64(),
                ));
            })
            .map(drop),
        PE::ProofsSubmitted(e) => {
            for id in e.dealIds {
                let deal = journal.update_deal(deal_id(id), |d| d.proven_periods += 1)?;
                if let Some(deal) = deal {
                    journal.update_provider(deal.provider, |p| {
                        p.proofs += 1;
                        p.reputation.record(true);
                    })?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
