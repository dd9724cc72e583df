//! The gateway's side of its deals: which pieces each deal holds, in slot
//! order, and the last commitment posted for them.
//!
//! A deal's commitment is the deal tree over its pieces in the order the
//! consumer lists them (`dbytes_mesh::commitment::Commitment`). The order
//! must survive restarts, or the gateway could not sign the next version
//! the provider agrees with: each piece gets a slot number when it is
//! stored, and listing a deal's slots walks them in that order. Deleting a
//! piece drops its slot (the next commitment shrinks); the other slots keep
//! their order.
//!
//! Every change bumps the deal's `generation`; a commitment records the
//! generation it was built from, so a deal needs a new commitment exactly
//! when the two differ.

use alloy_primitives::{B256, U256};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Book, BookError, decode, encode};
use crate::piece::PieceId;

/// `deal ‖ slot` (32 + 8 bytes, big-endian) -> [`DealSlot`].
const DEAL_SLOTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("deal_slots");
/// `deal ‖ piece id` -> slot number.
const DEAL_PIECES: TableDefinition<&[u8], u64> = TableDefinition::new("deal_pieces");
/// `deal` -> [`DealPieces`].
const DEAL_BOOKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("deal_books");

/// One piece of a deal as its commitment needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealSlot {
    /// The piece.
    pub piece: PieceId,
    /// The root of its proof tree, as the provider reported it and the
    /// gateway spot-checked it.
    pub root: B256,
    /// Its proof tree's leaf count.
    pub leaf_count: u64,
}

/// A commitment the gateway posted for a deal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostedCommitment {
    /// Its version (strictly increasing per deal).
    pub version: u32,
    /// The deal tree's root.
    pub root: B256,
    /// The deal tree's leaf count.
    pub leaf_count: u64,
    /// The deal's generation it was built from.
    pub generation: u64,
    /// The period it was posted in (it takes effect at the next one).
    pub period: u64,
}

/// What the book knows of one deal's pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealPieces {
    /// The deal.
    pub deal: U256,
    /// Pieces listed now.
    pub pieces: u64,
    /// The largest leaf count of any piece ever listed (slots are as tall
    /// as the tallest piece, so this bounds the committed size from above).
    pub max_piece_leaves: u64,
    /// Bumped by every change to the list.
    pub generation: u64,
    /// The next slot number.
    next_slot: u64,
    /// The last commitment posted.
    pub committed: Option<PostedCommitment>,
}

impl DealPieces {
    /// Whether the list changed since the last commitment was posted.
    pub fn needs_commitment(&self) -> bool {
        self.committed
            .is_none_or(|committed| committed.generation != self.generation)
    }
}

fn deal_key(deal: U256) -> [u8; 32] {
    deal.to_be_bytes()
}

fn slot_key(deal: U256, slot: u64) -> Vec<u8> {
    let mut key = deal_key(deal).to_vec();
    key.extend_from_slice(&slot.to_be_bytes());
    key
}

fn piece_key(deal: U256, piece: &PieceId) -> Vec<u8> {
    let mut key = deal_key(deal).to_vec();
    key.extend_from_slice(&piece.0);
    key
}

fn read_deal(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    deal: U256,
) -> Result<Option<DealPieces>, BookError> {
    table
        .get(deal_key(deal).as_slice())?
        .map(|guard| decode("deal_books", guard.value()))
        .transpose()
}

/// [`Book::add_deal_slots`] inside `txn` (the repair worker lists
/// regenerated pieces in the same commit that updates their manifest).
pub(crate) fn add_deal_slots_in(
    txn: &redb::WriteTransaction,
    slots: &[(U256, DealSlot)],
) -> Result<usize, BookError> {
    let mut added = 0;
    {
        let mut pieces = txn.open_table(DEAL_PIECES)?;
        let mut rows = txn.open_table(DEAL_SLOTS)?;
        let mut books = txn.open_table(DEAL_BOOKS)?;
        for (deal, slot) in slots {
            let deal = *deal;
            let key = piece_key(deal, &slot.piece);
            if pieces.get(key.as_slice())?.is_some() {
                continue;
            }
            let mut book = read_deal(&books, deal)?.unwrap_or(DealPieces {
                deal,
                pieces: 0,
                max_piece_leaves: 0,
                generation: 0,
                next_slot: 0,
                committed: None,
            });
            let number = book.next_slot;
            book.next_slot += 1;
            book.pieces += 1;
            book.generation += 1;
            book.max_piece_leaves = book.max_piece_leaves.max(slot.leaf_count);
            pieces.insert(key.as_slice(), number)?;
            rows.insert(slot_key(deal, number).as_slice(), encode(slot).as_slice())?;
            books.insert(deal_key(deal).as_slice(), encode(&book).as_slice())?;
            added += 1;
        }
    }
    Ok(added)
}

impl Book {
    /// Lists each `(deal, slot)` as the last piece of its deal, in one
    /// transaction. A piece a deal lists already is left where it is.
    /// Returns how many were added.
    pub fn add_deal_slots(&self, slots: &[(U256, DealSlot)]) -> Result<usize, BookError> {
        let txn = self.db.begin_write()?;
        let added = add_deal_slots_in(&txn, slots)?;
        txn.commit()?;
        Ok(added)
    }

    /// Drops `pieces` from `deal`'s list; returns how many it listed.
    pub fn remove_deal_slots(&self, deal: U256, pieces: &[PieceId]) -> Result<usize, BookError> {
        let txn = self.db.begin_write()?;
        let mut removed = 0;
        {
            let mut index = txn.open_table(DEAL_PIECES)?;
            let mut slots = txn.open_table(DEAL_SLOTS)?;
            for piece in pieces {
                if let Some(number) = index.remove(piece_key(deal, piece).as_slice())? {
                    slots.remove(slot_key(deal, number.value()).as_slice())?;
                    removed += 1;
                }
            }
            if removed > 0 {
                let mut books = txn.open_table(DEAL_BOOKS)?;
                if let Some(mut book) = read_deal(&books, deal)? {
                    book.pieces = book.pieces.saturating_sub(removed as u64);
                    book.generation += 1;
                    books.insert(deal_key(deal).as_slice(), encode(&book).as_slice())?;
                }
            }
        }
        txn.commit()?;
        Ok(removed)
    }

    /// `deal`'s pieces in slot order.
    pub fn deal_slots(&self, deal: U256) -> Result<Vec<DealSlot>, BookError> {
        let txn = self.db.begin_read()?;
        let slots = match txn.open_table(DEAL_SLOTS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(err) => return Err(err.into()),
        };
        let start = slot_key(deal, 0);
        let end = slot_key(deal, u64::MAX);
        let mut out = Vec::new();
        for row in slots.range::<&[u8]>(start.as_slice()..=end.as_slice())? {
            out.push(decode("deal_slots", row?.1.value())?);
        }
        Ok(out)
    }

    /// Whether `deal` lists `piece`.
    pub fn deal_lists(&self, deal: U256, piece: &PieceId) -> Result<bool, BookError> {
        let txn = self.db.begin_read()?;
        match txn.open_table(DEAL_PIECES) {
            Ok(table) => Ok(table.get(piece_key(deal, piece).as_slice())?.is_some()),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// What the book knows of `deal`'s pieces, if it ever listed one.
    pub fn deal_pieces(&self, deal: U256) -> Result<Option<DealPieces>, BookError> {
        let txn = self.db.begin_read()?;
        match txn.open_table(DEAL_BOOKS) {
            Ok(table) => read_deal(&table, deal),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Every deal that ever listed a piece, by deal id.
    pub fn all_deal_pieces(&self) -> Result<Vec<DealPieces>, BookError> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(DEAL_BOOKS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(err) => return Err(err.into()),
        };
        table
            .iter()?
            .map(|row| decode("deal_books", row?.1.value()))
            .collect()
    }

    /// Records that `commitment` was posted for `deal`.
    pub fn record_deal_commitment(
        &self,
        deal: U256,
        commitment: PostedCommitment,
    ) -> Result<(), BookError> {
        let txn = self.db.begin_write()?;
        {
            let mut books = txn.open_table(DEAL_BOOKS)?;
            if let Some(mut book) = read_deal(&books, deal)? {
                book.committed = Some(commitment);
                books.insert(deal_key(deal).as_slice(), encode(&book).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(byte: u8, leaf_count: u64) -> DealSlot {
        DealSlot {
            piece: PieceId([byte; 32]),
            root: B256::repeat_byte(byte),
            leaf_count,
        }
    }

    #[test]
    fn slots_keep_their_order_across_removals_and_deals() {
        let book = Book::in_memory().unwrap();
        let (one, two) = (U256::from(1), U256::from(2));
        assert_eq!(book.deal_slots(one).unwrap(), vec![]);
        assert_eq!(book.deal_pieces(one).unwrap(), None);
        let added = book
            .add_deal_slots(&[
                (one, slot(5, 4)),
                (one, slot(3, 4)),
                (two, slot(7, 16)),
                (one, slot(9, 4)),
            ])
            .unwrap();
        assert_eq!(added, 4);
        // Listing a piece twice changes nothing.
        assert_eq!(book.add_deal_slots(&[(one, slot(3, 4))]).unwrap(), 0);
        assert_eq!(
            book.deal_slots(one).unwrap(),
            vec![slot(5, 4), slot(3, 4), slot(9, 4)]
        );
        let before = book.deal_pieces(one).unwrap().unwrap();
        assert_eq!((before.pieces, before.max_piece_leaves), (3, 4));
        assert!(before.needs_commitment());

        book.record_deal_commitment(
            one,
            PostedCommitment {
                version: 1,
                root: B256::repeat_byte(1),
                leaf_count: 12,
                generation: before.generation,
                period: 3,
            },
        )
        .unwrap();
        assert!(!book.deal_pieces(one).unwrap().unwrap().needs_commitment());

        assert_eq!(
            book.remove_deal_slots(one, &[PieceId([3; 32]), PieceId([8; 32])])
                .unwrap(),
            1
        );
        assert!(!book.deal_lists(one, &PieceId([3; 32])).unwrap());
        assert!(book.deal_lists(one, &PieceId([9; 32])).unwrap());
        assert_eq!(book.deal_slots(one).unwrap(), vec![slot(5, 4), slot(9, 4)]);
        let after = book.deal_pieces(one).unwrap().unwrap();
        assert_eq!(after.pieces, 2);
        assert!(after.needs_commitment());
        assert_eq!(after.committed.map(|c| c.version), Some(1));
        // A new piece goes after the others.
        assert_eq!(book.add_deal_slots(&[(one, slot(3, 4))]).unwrap(), 1);
        assert_eq!(
            book.deal_slots(one).unwrap(),
            vec![slot(5, 4), slot(9, 4), slot(3, 4)]
        );
        assert_eq!(book.deal_slots(two).unwrap(), vec![slot(7, 16)]);
        assert_eq!(book.all_deal_pieces().unwrap().len(), 2);
    }
}
