//! Storage proofs from the piece store: a deal's challenged leaves, with
//! their paths through the deal tree the provider signed.
//!
//! The chain holds only a commitment's root and leaf count; the piece order
//! comes from the [`SignedCommitment`] this provider recorded when it
//! signed. Deal leaf `i` is leaf `i mod 2^h` of the piece in slot `i >> h`
//! ([`dbytes_ledger::commitment`]); only the challenged pieces are read
//! (verified against their ids) and their trees rebuilt. Blocking: run it
//! on the blocking pool.

use std::collections::HashMap;

use dbytes_ledger::chain::ChainError;
use dbytes_ledger::chain::proof::DealProof;
use dbytes_ledger::commitment::{DealTree, PieceTree, depth, extend_root};
use dbytes_ledger::piece::PieceId;

use super::state::SignedCommitment;
use crate::commitment::slot_height_for;
use crate::deal::DealId;
use crate::store::{PieceStore, StoreError};

/// Why a deal could not be proven.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// A piece of the commitment is not in the store (deleted, or dropped
    /// as rotted).
    #[error("piece {piece} of deal {deal}'s commitment is not stored")]
    MissingPiece {
        /// The deal.
        deal: DealId,
        /// The piece.
        piece: PieceId,
    },
    /// The recorded commitment is not a valid deal tree shape.
    #[error("deal {deal}'s recorded commitment does not describe a deal tree: {reason}")]
    Shape {
        /// The deal.
        deal: DealId,
        /// What is wrong.
        reason: String,
    },
    /// The stored pieces make another root than the one signed.
    #[error("deal {0}'s stored pieces no longer make the committed root")]
    RootMismatch(DealId),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Building a proof failed.
    #[error(transparent)]
    Proof(#[from] ChainError),
}

/// Proves `indexes` (deal leaves) of `deal` under `signed`, reading the
/// pieces from `store`.
pub fn prove_deal(
    store: &PieceStore,
    deal: DealId,
    signed: &SignedCommitment,
    indexes: &[u64],
) -> Result<DealProof, ProveError> {
    let shape = |reason: String| ProveError::Shape { deal, reason };
    let slot_height =
        slot_height_for(signed.leaf_count, signed.pieces.len() as u64).ok_or_else(|| {
            shape(format!(
                "{} leaves are not {} slots of 2^h leaves",
                signed.leaf_count,
                signed.pieces.len()
            ))
        })?;
    let records: HashMap<PieceId, _> = store
        .deal_records(deal)?
        .into_iter()
        .map(|record| (record.piece, record))
        .collect();
    let mut slot_roots = Vec::with_capacity(signed.pieces.len());
    for piece in &signed.pieces {
        let record = records.get(piece).ok_or(ProveError::MissingPiece {
            deal,
            piece: *piece,
        })?;
        let piece_depth = depth(record.leaf_count).map_err(|err| shape(err.to_string()))?;
        if piece_depth > slot_height {
            return Err(shape(format!("piece {piece} is taller than its slot")));
        }
        slot_roots.push(extend_root(record.root, piece_depth, slot_height));
    }
    let tree = DealTree::new(slot_height, slot_roots).map_err(|err| shape(err.to_string()))?;
    if tree.root() != signed.root {
        return Err(ProveError::RootMismatch(deal));
    }
    let mut pieces: HashMap<u64, (PieceTree, Vec<u8>)> = HashMap::new();
    for &index in indexes {
        let slot = index >> slot_height;
        if pieces.contains_key(&slot) {
            continue;
        }
        let piece = *usize::try_from(slot)
            .ok()
            .and_then(|slot| signed.pieces.get(slot))
            .ok_or_else(|| shape(format!("leaf {index} is past the last slot")))?;
        let bytes = store.open_piece(deal, piece)?.read_verified()?;
        let piece_tree = PieceTree::build(&bytes);
        if records
            .get(&piece)
            .is_none_or(|record| record.root != piece_tree.root())
        {
            return Err(ProveError::RootMismatch(deal));
        }
        pieces.insert(slot, (piece_tree, bytes));
    }
    Ok(DealProof::build(deal.0, &tree, indexes, |slot| {
        pieces
            .get(&slot)
            .map(|(piece_tree, bytes)| (piece_tree, bytes.as_slice()))
            .ok_or_else(|| ChainError::Refused(format!("slot {slot} was not read")))
    })?)
}
