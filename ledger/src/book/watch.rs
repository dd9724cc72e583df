//! What the gateway's chain watcher has learned about each deal, kept so a
//! restarted gateway neither re-reads a deal's whole proof history nor
//! forgets that it already acted on a lost deal.
//!
//! One small row per deal the watcher has looked at ([`DealWatch`]); the
//! table is read whole at the start of a round and what changed is written
//! back at its end.

use std::collections::HashMap;

use alloy_primitives::U256;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Book, BookError, decode, encode};

/// `deal` (32 bytes, big-endian) -> [`DealWatch`].
const DEAL_WATCH: TableDefinition<&[u8], &[u8]> = TableDefinition::new("deal_watch");

/// The watcher's record of one deal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealWatch {
    /// The first period not yet known to be proven (every committed period
    /// before it was proven or settled).
    pub proven_to: u64,
    /// The deal was found lost (failed, closed early, being left) while the
    /// book listed pieces under it; its segments were queued for repair.
    pub lost: bool,
}

impl Book {
    /// The watcher's record of every deal it has looked at.
    pub fn deal_watches(&self) -> Result<HashMap<U256, DealWatch>, BookError> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(DEAL_WATCH) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(HashMap::new()),
            Err(err) => return Err(err.into()),
        };
        let mut watches = HashMap::new();
        for row in table.iter()? {
            let (key, value) = row?;
            let key: [u8; 32] = key.value().try_into().map_err(|_| BookError::Corrupt {
                table: "deal_watch",
                reason: format!("a key of {} bytes, not 32", key.value().len()),
            })?;
            watches.insert(
                U256::from_be_bytes(key),
                decode("deal_watch", value.value())?,
            );
        }
        Ok(watches)
    }

    /// Stores the watcher's records of `watches` (replacing earlier ones),
    /// in one transaction.
    pub fn put_deal_watches(&self, watches: &[(U256, DealWatch)]) -> Result<(), BookError> {
        if watches.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(DEAL_WATCH)?;
            for (deal, watch) in watches {
                table.insert(
                    deal.to_be_bytes::<32>().as_slice(),
                    encode(watch).as_slice(),
                )?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deal_records_persist_and_are_replaced() {
        let dir = std::env::temp_dir().join(format!("dbytes-watch-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("book.redb");
        let (one, big) = (U256::from(1), U256::MAX);
        let lost = DealWatch {
            proven_to: 3,
            lost: true,
        };
        {
            let book = Book::open(&path).unwrap();
            assert!(book.deal_watches().unwrap().is_empty());
            book.put_deal_watches(&[(one, DealWatch::default()), (big, lost)])
                .unwrap();
        }
        let book = Book::open(&path).unwrap();
        let proven = DealWatch {
            proven_to: 7,
            lost: false,
        };
        book.put_deal_watches(&[(one, proven)]).unwrap();
        let watches = book.deal_watches().unwrap();
        assert_eq!(watches.len(), 2);
        assert_eq!((watches[&one], watches[&big]), (proven, lost));
        drop(book);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
