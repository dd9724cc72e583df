//! Commitments a provider co-signs: the root over the pieces of a deal.
//!
//! A deal's commitment `(root, leaf count, version)` is co-signed by its
//! consumer and provider and recorded on chain; storage challenges are
//! checked against it. The root is the deal tree of
//! [`dbytes_ledger::commitment`]: each piece of the deal, in the order the
//! consumer lists them, in a slot of `2^slot_height` leaves. A provider signs
//! only after checking it holds exactly the listed pieces and that their
//! roots, as it computed them on ingest, make that root: otherwise it could
//! be slashed for pieces it never had.
//!
//! Signing itself (EIP-712 over the marketplace's `Commitment` type, with the
//! provider's wallet) is the daemon's, behind [`CommitmentSigner`].

use std::collections::{HashMap, HashSet};
use std::future::Future;

use alloy_primitives::B256;
use dbytes_ledger::commitment::{DealTree, LEAF_SIZE, MAX_DEPTH, depth, extend_root};
use dbytes_ledger::piece::PieceId;
use serde::{Deserialize, Serialize};

use crate::deal::{DealId, DealTerms};

/// The most pieces one commitment may list (it travels in one message).
pub const MAX_COMMITMENT_PIECES: usize = 1 << 17;

/// A commitment a consumer asks a provider to sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    /// The deal.
    #[serde(with = "crate::wire::raw_deal_id")]
    pub deal: DealId,
    /// The deal tree's root.
    #[serde(with = "crate::wire::raw_b256")]
    pub root: B256,
    /// The deal tree's leaf count: `pieces.len() × 2^slot_height`.
    pub leaf_count: u64,
    /// The commitment's version; strictly increasing per deal on chain.
    pub version: u32,
    /// The deal's pieces in slot order.
    #[serde(with = "crate::wire::raw_piece_ids")]
    pub pieces: Vec<PieceId>,
}

/// A piece as it stands in a deal tree: its id and its own proof tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceSlot {
    /// The piece.
    pub piece: PieceId,
    /// The root of the piece's proof tree.
    pub root: B256,
    /// The piece's leaf count.
    pub leaf_count: u64,
}

impl From<&dbytes_ledger::book::DealSlot> for PieceSlot {
    fn from(slot: &dbytes_ledger::book::DealSlot) -> PieceSlot {
        PieceSlot {
            piece: slot.piece,
            root: slot.root,
            leaf_count: slot.leaf_count,
        }
    }
}

impl Commitment {
    /// The commitment over `pieces` in this order, in slots just tall enough
    /// for the largest piece. This is how a consumer builds the commitment
    /// from the roots providers returned on upload.
    pub fn over_pieces(
        deal: DealId,
        version: u32,
        pieces: &[PieceSlot],
    ) -> Result<Commitment, CommitmentProblem> {
        let mut slot_height = 0;
        for slot in pieces {
            slot_height = slot_height.max(piece_depth(slot)?);
        }
        let (root, leaf_count) = deal_root(pieces, slot_height)?;
        Ok(Commitment {
            deal,
            root,
            leaf_count,
            version,
            pieces: pieces.iter().map(|slot| slot.piece).collect(),
        })
    }

    /// Checks that the commitment is exactly the deal tree over `held` (the
    /// pieces the provider holds for the deal, in any order) and fits the
    /// deal's capacity.
    pub fn check(&self, held: &[PieceSlot], terms: &DealTerms) -> Result<(), CommitmentProblem> {
        if self.pieces.len() > MAX_COMMITMENT_PIECES {
            return Err(CommitmentProblem::TooManyPieces {
                pieces: self.pieces.len(),
                max: MAX_COMMITMENT_PIECES,
            });
        }
        let capacity_leaves = terms.capacity_bytes / LEAF_SIZE as u64;
        if self.leaf_count > capacity_leaves {
            return Err(CommitmentProblem::ExceedsCapacity {
                leaf_count: self.leaf_count,
                capacity_bytes: terms.capacity_bytes,
            });
        }
        let mut listed = HashSet::with_capacity(self.pieces.len());
        for piece in &self.pieces {
            if !listed.insert(*piece) {
                return Err(CommitmentProblem::DuplicatePiece(*piece));
            }
        }
        if let Some(unlisted) = held.iter().find(|slot| !listed.contains(&slot.piece)) {
            return Err(CommitmentProblem::UnlistedPiece(unlisted.piece));
        }
        let by_id: HashMap<PieceId, &PieceSlot> =
            held.iter().map(|slot| (slot.piece, slot)).collect();
        let mut ordered = Vec::with_capacity(self.pieces.len());
        for piece in &self.pieces {
            match by_id.get(piece) {
                Some(slot) => ordered.push(**slot),
                None => return Err(CommitmentProblem::MissingPiece(*piece)),
            }
        }
        let slot_height = slot_height_for(self.leaf_count, ordered.len() as u64).ok_or(
            CommitmentProblem::LeafCountMismatch {
                leaf_count: self.leaf_count,
                pieces: ordered.len(),
            },
        )?;
        let (root, _) = deal_root(&ordered, slot_height)?;
        if root != self.root {
            return Err(CommitmentProblem::RootMismatch {
                claimed: self.root,
                computed: root,
            });
        }
        Ok(())
    }
}

/// The slot height `h` with `leaf_count == slots × 2^h`, if there is one.
pub fn slot_height_for(leaf_count: u64, slots: u64) -> Option<u32> {
    if slots == 0 || !leaf_count.is_multiple_of(slots) {
        return None;
    }
    let per_slot = leaf_count / slots;
    if !per_slot.is_power_of_two() {
        return None;
    }
    let height = per_slot.trailing_zeros();
    (height <= MAX_DEPTH).then_some(height)
}

fn piece_depth(slot: &PieceSlot) -> Result<u32, CommitmentProblem> {
    depth(slot.leaf_count).map_err(|_| CommitmentProblem::InvalidPiece(slot.piece))
}

/// The deal tree's root and leaf count over `pieces` in slots of
/// `2^slot_height` leaves.
fn deal_root(pieces: &[PieceSlot], slot_height: u32) -> Result<(B256, u64), CommitmentProblem> {
    if pieces.is_empty() {
        return Err(CommitmentProblem::NoPieces);
    }
    let mut slot_roots = Vec::with_capacity(pieces.len());
    for slot in pieces {
        let piece_height = piece_depth(slot)?;
        if piece_height > slot_height {
            return Err(CommitmentProblem::PieceExceedsSlot {
                piece: slot.piece,
                slot_height,
            });
        }
        slot_roots.push(extend_root(slot.root, piece_height, slot_height));
    }
    let tree = DealTree::new(slot_height, slot_roots).map_err(|_| CommitmentProblem::TooLarge)?;
    Ok((tree.root(), tree.leaf_count()))
}

/// Why a provider will not sign a commitment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CommitmentProblem {
    /// A commitment lists at least one piece.
    #[error("a commitment lists at least one piece")]
    NoPieces,
    /// More pieces than one message carries.
    #[error("the commitment lists {pieces} pieces; at most {max} fit one request")]
    TooManyPieces {
        /// Pieces listed.
        pieces: usize,
        /// The limit.
        max: usize,
    },
    /// A piece is listed twice.
    #[error("piece {0} is listed twice")]
    DuplicatePiece(#[serde(with = "crate::wire::raw_piece_id")] PieceId),
    /// A listed piece is not held by the provider under this deal.
    #[error("the provider does not hold listed piece {0} under this deal; upload it first")]
    MissingPiece(#[serde(with = "crate::wire::raw_piece_id")] PieceId),
    /// The provider holds a piece of the deal that the commitment leaves out.
    #[error(
        "the provider holds piece {0} under this deal but the commitment leaves it out; delete it or list it"
    )]
    UnlistedPiece(#[serde(with = "crate::wire::raw_piece_id")] PieceId),
    /// A piece's leaf count is not a valid tree size.
    #[error("piece {0} has an invalid leaf count")]
    InvalidPiece(#[serde(with = "crate::wire::raw_piece_id")] PieceId),
    /// The leaf count is not the number of pieces times a power of two.
    #[error("a leaf count of {leaf_count} is not {pieces} slots of 2^h leaves")]
    LeafCountMismatch {
        /// The committed leaf count.
        leaf_count: u64,
        /// Pieces listed.
        pieces: usize,
    },
    /// A piece does not fit the slot height the leaf count implies.
    #[error("piece {piece} does not fit a slot of 2^{slot_height} leaves")]
    PieceExceedsSlot {
        /// The piece.
        #[serde(with = "crate::wire::raw_piece_id")]
        piece: PieceId,
        /// The slot height.
        slot_height: u32,
    },
    /// The tree would be deeper than the scheme allows.
    #[error("the deal tree would exceed the maximum depth of {MAX_DEPTH}")]
    TooLarge,
    /// The committed leaves exceed the deal's capacity.
    #[error("{leaf_count} leaves exceed the deal's capacity of {capacity_bytes} bytes")]
    ExceedsCapacity {
        /// The committed leaf count.
        leaf_count: u64,
        /// The deal's capacity.
        capacity_bytes: u64,
    },
    /// The listed pieces, as the provider holds them, make another root.
    #[error("the pieces make root {computed}, not the claimed {claimed}")]
    RootMismatch {
        /// The root in the request.
        #[serde(with = "crate::wire::raw_b256")]
        claimed: B256,
        /// The root the provider computed.
        #[serde(with = "crate::wire::raw_b256")]
        computed: B256,
    },
}

/// Why a signer did not sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// This provider signs no commitments (no wallet configured).
    #[error("this provider has no signer configured")]
    NoSigner,
    /// The signer failed (wallet locked, chain parameters unknown, ...).
    #[error("signing failed: {0}")]
    Failed(String),
}

/// Signs commitments the provider has checked, with the provider's wallet.
///
/// Called only after [`Commitment::check`] passed against the provider's
/// own piece index and the deal is active. The signature is opaque here: the
/// chain client produces the EIP-712 signature the marketplace's `commit`
/// expects (`Commitment(uint256 dealId,bytes32 root,uint64 leafCount,uint32
/// version)` in the contract's domain) and the consumer submits it.
pub trait CommitmentSigner: Send + Sync + 'static {
    /// Signs `commitment` of the deal with `terms`.
    fn sign_commitment(
        &self,
        commitment: &Commitment,
        terms: &DealTerms,
    ) -> impl Future<Output = Result<Vec<u8>, SignError>> + Send;
}

impl<T: CommitmentSigner> CommitmentSigner for std::sync::Arc<T> {
    fn sign_commitment(
        &self,
        commitment: &Commitment,
        terms: &DealTerms,
    ) -> impl Future<Output = Result<Vec<u8>, SignError>> + Send {
        self.as_ref().sign_commitment(commitment, terms)
    }
}

/// A signer that refuses every commitment: for providers without a wallet.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSigner;

impl CommitmentSigner for NoSigner {
    async fn sign_commitment(
        &self,
        _commitment: &Commitment,
        _terms: &DealTerms,
    ) -> Result<Vec<u8>, SignError> {
        Err(SignError::NoSigner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::Address;
    use dbytes_ledger::commitment::PieceTree;

    fn slot(bytes: &[u8]) -> PieceSlot {
        let tree = PieceTree::build(bytes);
        PieceSlot {
            piece: PieceId::of(bytes),
            root: tree.root(),
            leaf_count: tree.leaf_count(),
        }
    }

    fn terms(capacity_bytes: u64) -> DealTerms {
        DealTerms {
            deal: DealId::from(1),
            active: true,
            consumer: Address::ZERO,
            consumer_node: [0; 32],
            provider: Address::ZERO,
            capacity_bytes,
            readers: vec![],
        }
    }

    #[test]
    fn a_commitment_checks_against_the_pieces_it_was_built_from() {
        let pieces = [slot(&[1; 700]), slot(&[2; 4 * 256]), slot(&[3; 10])];
        let commitment = Commitment::over_pieces(DealId::from(1), 1, &pieces).unwrap();
        // Slots of 4 leaves (the 4-leaf piece), 3 slots.
        assert_eq!(commitment.leaf_count, 12);
        let tree = DealTree::new(
            2,
            [&[1u8; 700][..], &[2; 4 * 256], &[3; 10]]
                .iter()
                .map(|bytes| PieceTree::build(bytes).slot_root(2).unwrap())
                .collect(),
        )
        .unwrap();
        assert_eq!(commitment.root, tree.root());

        // The provider may hold them in any order.
        let mut held = pieces.to_vec();
        held.reverse();
        assert_eq!(commitment.check(&held, &terms(1 << 20)), Ok(()));

        // Taller slots are fine when the leaf count says so.
        let mut taller = commitment.clone();
        taller.leaf_count = 24;
        assert!(matches!(
            taller.check(&held, &terms(1 << 20)),
            Err(CommitmentProblem::RootMismatch { .. })
        ));
    }

    #[test]
    fn a_provider_refuses_commitments_that_are_not_exactly_what_it_holds() {
        let pieces = [slot(&[1; 700]), slot(&[2; 300])];
        let commitment = Commitment::over_pieces(DealId::from(1), 1, &pieces).unwrap();
        let terms = terms(1 << 20);

        assert_eq!(
            commitment.check(&pieces[..1], &terms),
            Err(CommitmentProblem::MissingPiece(pieces[1].piece))
        );
        let extra = slot(&[9; 9]);
        assert_eq!(
            commitment.check(&[pieces[0], pieces[1], extra], &terms),
            Err(CommitmentProblem::UnlistedPiece(extra.piece))
        );
        let mut duplicate = commitment.clone();
        duplicate.pieces.push(pieces[0].piece);
        assert_eq!(
            duplicate.check(&pieces, &terms),
            Err(CommitmentProblem::DuplicatePiece(pieces[0].piece))
        );
        let mut swapped = commitment.clone();
        swapped.pieces.reverse();
        assert!(matches!(
            swapped.check(&pieces, &terms),
            Err(CommitmentProblem::RootMismatch { .. })
        ));
        let mut odd = commitment.clone();
        odd.leaf_count = 6;
        assert!(matches!(
            odd.check(&pieces, &terms),
            Err(CommitmentProblem::LeafCountMismatch { .. })
        ));
        assert!(matches!(
            commitment.check(&pieces, &self::terms(256)),
            Err(CommitmentProblem::ExceedsCapacity { .. })
        ));
        let mut empty = commitment.clone();
        empty.pieces.clear();
        assert!(empty.check(&[], &terms).is_err());
    }

    #[test]
    fn slot_heights_divide_the_leaf_count() {
        assert_eq!(slot_height_for(12, 3), Some(2));
        assert_eq!(slot_height_for(3, 3), Some(0));
        assert_eq!(slot_height_for(6, 2), None);
        assert_eq!(slot_height_for(7, 2), None);
        assert_eq!(slot_height_for(4, 0), None);
    }
}
