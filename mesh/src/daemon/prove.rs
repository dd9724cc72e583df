//! Storage proofs from the piece store: a deal's challenged leaves, with
//! their paths through the deal tree the provider signed.
//!
//! The chain holds only a commitment's root and leaf count; the piece order
//! comes from the [`SignedCommitment`] this provider recorded when it
//! signed. Deal leaf `i` is leaf `i mod 2^h` of the piece in slot `i >> h`
//! ([`dbytes_ledger::commitment`]). A challenged leaf's proof is its proof
//! in its piece's own tree, which the store builds as for an audit
//! ([`PieceStore::audit`]: the leaf's 8 KiB block read from the piece file
//! and hashed against the piece's kept block roots, the whole piece
//! re-hashed only when they are missing or do not match), followed by the
//! path of the piece's slot in the deal tree. A slot challenged in its zero
//! padding (past its piece's own leaves, which the piece's tree does not
//! prove) has its piece read whole and its tree rebuilt. Every proof is
//! checked against the signed root before it is returned.
//!
//! Cost per challenged piece of 4 MiB: its kept block roots (16 KiB) and
//! the tree over them, and an 8 KiB read per challenged leaf, where reading
//! and re-hashing it costs 4 MiB of reads, BLAKE3 and 16,384 leaf hashes.
//! Blocking: run it on the blocking pool.

use std::collections::{BTreeMap, HashMap};

use alloy_primitives::B256;
use dbytes_ledger::chain::ChainError;
use dbytes_ledger::chain::proof::DealProof;
use dbytes_ledger::commitment::{
    DealTree, MerkleProof, PieceTree, ProofError, depth, extend_root, verify,
};
use dbytes_ledger::piece::PieceId;

use super::state::SignedCommitment;
use crate::commitment::slot_height_for;
use crate::deal::DealId;
use crate::store::{PieceRecord, PieceStore, StoreError};

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
    /// A proof built from the store does not lead to the signed root; it
    /// is not submitted (a bug, or the store changed while proving).
    #[error(
        "deal {deal}'s proof of leaf {index} does not verify against the committed root: {error}"
    )]
    Unverified {
        /// The deal.
        deal: DealId,
        /// The challenged deal leaf.
        index: u64,
        /// Why it does not verify.
        error: ProofError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Building a proof failed.
    #[error(transparent)]
    Proof(#[from] ChainError),
}

/// Proves `indexes` (deal leaves) of `deal` under `signed`, reading the
/// challenged leaves from `store`.
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

    // Each challenged piece is read once, for all its challenged leaves.
    let mut challenged: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for &index in indexes {
        let locals = challenged.entry(index >> slot_height).or_default();
        locals.push(index & ((1 << slot_height) - 1));
    }
    let mut proofs: HashMap<u64, MerkleProof> = HashMap::with_capacity(indexes.len());
    for (slot, mut locals) in challenged {
        let record = usize::try_from(slot)
            .ok()
            .and_then(|slot| signed.pieces.get(slot))
            .and_then(|piece| records.get(piece))
            .ok_or_else(|| {
                shape(format!(
                    "leaf {} is past the last slot",
                    slot << slot_height
                ))
            })?;
        locals.sort_unstable();
        locals.dedup();
        let slot_proofs = prove_slot(store, &tree, slot, record, &locals)?;
        proofs.extend(slot_proofs.into_iter().map(|proof| (proof.index, proof)));
    }

    let proofs = indexes
        .iter()
        .map(|&index| {
            let proof = proofs.get(&index).cloned().ok_or(ProveError::Unverified {
                deal,
                index,
                error: ProofError::IndexOutOfRange {
                    index,
                    leaf_count: signed.leaf_count,
                },
            })?;
            verify(signed.root, signed.leaf_count, &proof)
                .map_err(|error| ProveError::Unverified { deal, index, error })?;
            Ok(proof)
        })
        .collect::<Result<Vec<_>, ProveError>>()?;
    Ok(DealProof {
        deal_id: deal.0,
        proofs,
    })
}

/// The deal proofs of `locals`, leaves of `record`'s piece in `slot` of
/// `tree`. Inside the piece's own leaves: the store's proofs in the piece's
/// tree (from its kept block roots), each followed by the siblings of the
/// piece's root in the deal tree. A leaf of the slot's zero padding has no
/// proof in the piece's tree: then the piece is read whole and its tree
/// rebuilt.
fn prove_slot(
    store: &PieceStore,
    tree: &DealTree,
    slot: u64,
    record: &PieceRecord,
    locals: &[u64],
) -> Result<Vec<MerkleProof>, ProveError> {
    if locals.iter().all(|&local| local < record.leaf_count) {
        let reply = store.audit(record.deal, record.piece, locals)?;
        if reply.root != record.root
            || reply.leaf_count != record.leaf_count
            || reply.proofs.len() != locals.len()
        {
            return Err(ProveError::RootMismatch(record.deal));
        }
        let piece_depth = depth(record.leaf_count).map_err(ChainError::from)?;
        let above = slot_path(tree, slot, piece_depth)?;
        return Ok(reply
            .proofs
            .into_iter()
            .map(|proof| MerkleProof {
                index: (slot << tree.slot_height()) | proof.index,
                leaf: proof.leaf,
                path: [proof.path, above.clone()].concat(),
            })
            .collect());
    }
    let bytes = store
        .open_piece(record.deal, record.piece)?
        .read_verified()?;
    let piece_tree = PieceTree::build(&bytes);
    if piece_tree.root() != record.root {
        return Err(ProveError::RootMismatch(record.deal));
    }
    locals
        .iter()
        .map(|&local| {
            let index = (slot << tree.slot_height()) | local;
            Ok(tree
                .prove(index, &piece_tree, &bytes)
                .map_err(ChainError::from)?)
        })
        .collect()
}

/// The siblings, from height `piece_depth` up, of a piece of that depth in
/// `slot` of `tree`: the zero subtrees padding the slot, then the slot's
/// path. They are the same for every leaf of the piece, and the same as for
/// the first leaf of the slot if it held a piece of one zero leaf (whose
/// siblings below `piece_depth` are zero subtrees too): that is how the
/// ledger's [`DealTree::prove`] gives them without reading the piece.
fn slot_path(tree: &DealTree, slot: u64, piece_depth: u32) -> Result<Vec<B256>, ProveError> {
    let zero_leaf = PieceTree::build(&[]);
    let mut path = tree
        .prove(slot << tree.slot_height(), &zero_leaf, &[])
        .map_err(ChainError::from)?
        .path;
    // `prove_deal` checked that the piece fits its slot; were it taller, the
    // proofs would fail their check against the signed root, not panic here.
    path.drain(..(piece_depth as usize).min(path.len()));
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use dbytes_ledger::chain;
    use dbytes_ledger::chain::proof::challenge_indexes;
    use dbytes_ledger::commitment::LEAF_SIZE;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::commitment::{Commitment, PieceSlot};
    use crate::metrics::ProviderMetrics;
    use crate::store::StoreConfig;

    const DEAL: DealId = DealId(alloy_primitives::U256::from_limbs([9, 0, 0, 0]));

    /// Leaves per block whose root the store keeps.
    const BLOCK_LEAVES: u64 = 32;
    const BLOCK_BYTES: usize = LEAF_SIZE * BLOCK_LEAVES as usize;

    /// Slot 0: 40 blocks and a short one (1,284 leaves, zero padding after
    /// them); slot 1: 64 whole blocks (2,048 leaves, the slot height);
    /// slot 2: less than one block (no kept roots).
    const LENGTHS: [usize; 3] = [40 * BLOCK_BYTES + 1000, 64 * BLOCK_BYTES, 3000];

    /// One deal's pieces in a store of their own under a signed commitment;
    /// the store's directory is removed when dropped.
    struct Proving {
        store: PieceStore,
        signed: SignedCommitment,
        pieces: Vec<Vec<u8>>,
        dir: PathBuf,
    }

    impl Drop for Proving {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    impl Proving {
        fn new(label: &str) -> Proving {
            let dir = std::env::temp_dir().join(format!(
                "dbytes-prove-{label}-{}-{:016x}",
                std::process::id(),
                rand::random::<u64>()
            ));
            let config = StoreConfig {
                data_dir: dir.clone(),
                capacity_bytes: 1 << 30,
            };
            let (store, _) = PieceStore::open(&config, ProviderMetrics::new()).unwrap();
            let mut rng = rand::rngs::StdRng::seed_from_u64(label.len() as u64);
            let mut pieces = Vec::new();
            let mut slots = Vec::new();
            for length in LENGTHS {
                let mut bytes = vec![0u8; length];
                rng.fill(&mut bytes[..]);
                let id = PieceId::of(&bytes);
                let mut ingest = store.begin_put(DEAL, id, length as u64, 1 << 30).unwrap();
                ingest.write(&bytes).unwrap();
                let stored = ingest.finish().unwrap();
                slots.push(PieceSlot {
                    piece: id,
                    root: stored.root,
                    leaf_count: stored.leaf_count,
                });
                pieces.push(bytes);
            }
            let commitment = Commitment::over_pieces(DEAL, 1, &slots).unwrap();
            Proving {
                store,
                signed: SignedCommitment {
                    root: commitment.root,
                    leaf_count: commitment.leaf_count,
                    version: commitment.version,
                    pieces: commitment.pieces,
                },
                pieces,
                dir,
            }
        }

        fn piece(&self, slot: usize) -> PieceId {
            self.signed.pieces[slot]
        }

        /// Deal leaf `local` of the piece in `slot`.
        fn leaf(&self, slot: u64, local: u64) -> u64 {
            (slot << slot_height_for(self.signed.leaf_count, 3).unwrap()) | local
        }

        fn prove(&self, indexes: &[u64]) -> Result<DealProof, ProveError> {
            prove_deal(&self.store, DEAL, &self.signed, indexes)
        }

        /// Proves `indexes`; the proof is the one the ledger builds from
        /// the pieces' whole trees, and it verifies as the contract checks.
        fn proves(&self, indexes: &[u64]) {
            let proof = self.prove(indexes).unwrap();
            let slot_height = slot_height_for(self.signed.leaf_count, 3).unwrap();
            let trees: Vec<PieceTree> = self.pieces.iter().map(|p| PieceTree::build(p)).collect();
            let slot_roots = trees
                .iter()
                .map(|tree| tree.slot_root(slot_height).unwrap())
                .collect();
            let tree = DealTree::new(slot_height, slot_roots).unwrap();
            let expected = DealProof::build(DEAL.0, &tree, indexes, |slot| {
                Ok((&trees[slot as usize], self.pieces[slot as usize].as_slice()))
            })
            .unwrap();
            assert_eq!(proof, expected);
            let on_chain = chain::Commitment {
                root: self.signed.root,
                leaf_count: self.signed.leaf_count,
                version: self.signed.version,
            };
            assert_eq!(proof.verify(&on_chain, indexes).ok(), Some(()));
        }

        /// XORs `mask` into byte `offset` of the piece file of `slot`.
        fn rot(&self, slot: usize, offset: usize) {
            let path = self.store.piece_file(DEAL, self.piece(slot));
            let mut on_disk = std::fs::read(&path).unwrap();
            on_disk[offset] ^= 0x10;
            std::fs::write(&path, &on_disk).unwrap();
        }

        fn is_stored(&self, slot: usize) -> bool {
            self.store.record(DEAL, self.piece(slot)).unwrap().is_some()
        }
    }

    /// Whether proving failed because the store found the piece corrupt.
    fn is_corrupt(proved: Result<DealProof, ProveError>) -> bool {
        matches!(proved, Err(ProveError::Store(StoreError::Corrupt { .. })))
    }

    #[test]
    fn proofs_from_kept_block_roots_are_the_ledgers_and_verify() {
        let test = Proving::new("kept");
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..30 {
            let seed = B256::from(rng.r#gen::<[u8; 32]>());
            test.proves(&challenge_indexes(seed, DEAL.0, 4, test.signed.leaf_count));
        }
        let indexes = [
            test.leaf(1, 777),
            test.leaf(0, 0),
            test.leaf(0, 1283),
            test.leaf(1, 2047),
            test.leaf(1, 777),
            test.leaf(2, 5),
        ];
        test.proves(&indexes);

        // Rot in blocks no challenge touches goes unseen (the scrub's job):
        // the proofs came from the challenged blocks, not a re-hash.
        test.rot(0, 20 * BLOCK_BYTES + 3);
        test.rot(1, 50 * BLOCK_BYTES);
        test.proves(&indexes);
        assert!(test.is_stored(0) && test.is_stored(1));
    }

    #[test]
    fn a_corrupted_challenged_leaf_gives_no_proof() {
        let test = Proving::new("corrupt");
        test.rot(1, 777 * LEAF_SIZE + 100);
        let indexes = [test.leaf(0, 3), test.leaf(1, 777)];
        assert!(is_corrupt(test.prove(&indexes)));
        assert!(!test.is_stored(1), "the rotted piece is dropped");
        assert!(matches!(
            test.prove(&indexes),
            Err(ProveError::MissingPiece { piece, .. }) if piece == test.piece(1)
        ));

        // The same for a piece of one block (no kept roots) and for one
        // whose file is gone.
        let test = Proving::new("corrupt-small");
        test.rot(2, 5 * LEAF_SIZE);
        assert!(is_corrupt(test.prove(&[test.leaf(2, 5)])));
        let test = Proving::new("corrupt-gone");
        std::fs::remove_file(test.store.piece_file(DEAL, test.piece(0))).unwrap();
        assert!(is_corrupt(test.prove(&[test.leaf(0, 1)])));
    }

    #[test]
    fn pieces_without_kept_roots_are_proven_by_rehashing_and_keep_them() {
        let test = Proving::new("rehash");
        test.store.forget_block_roots(DEAL, test.piece(1));
        assert!(!test.store.keeps_block_roots(DEAL, test.piece(1)));
        test.proves(&[test.leaf(1, 9), test.leaf(0, 40)]);
        assert!(
            test.store.keeps_block_roots(DEAL, test.piece(1)),
            "kept from the first proof on"
        );

        // Without roots, rot anywhere in the piece fails its proof.
        test.store.forget_block_roots(DEAL, test.piece(1));
        test.rot(1, 60 * BLOCK_BYTES);
        assert!(is_corrupt(test.prove(&[test.leaf(1, 9)])));
    }

    #[test]
    fn a_challenge_in_a_slots_padding_reads_the_whole_piece() {
        let test = Proving::new("padding");
        let padding = [test.leaf(0, 1500), test.leaf(2, 12), test.leaf(2, 2047)];
        test.proves(&padding);
        // So rot anywhere in that piece is found, and the piece dropped.
        test.rot(0, 20 * BLOCK_BYTES + 3);
        assert!(is_corrupt(
            test.prove(&[test.leaf(0, 1), test.leaf(0, 1500)])
        ));
        assert!(!test.is_stored(0));
    }
}
