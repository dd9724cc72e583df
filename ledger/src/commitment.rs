//! The piece commitment scheme: positional SHA-256 Merkle trees over the
//! bytes of pieces, which the marketplace contract verifies on chain.
//!
//! # The scheme (the contract's `MerkleVerify` implements the same)
//!
//! - A piece is cut into leaves of [`LEAF_SIZE`] bytes; the last one is
//!   zero-padded. A leaf's hash is `sha256(leaf)`; a node's is
//!   `sha256(left ‖ right)`.
//! - A tree over `leaf_count` leaves has depth `ceil(log2(leaf_count))` and
//!   is the full binary tree over `2^depth` leaves, the positions past
//!   `leaf_count` holding zero leaves. So a tree is exactly the tree over its
//!   data zero-padded to a power of two, and the root of an all-zero subtree of
//!   height `h` ([`zero_hash`]) stands in for absent nodes.
//! - **Positional**: a proof for leaf `i` folds its path bottom-up, hashing
//!   `(node, sibling)` when bit `j` of `i` is zero and `(sibling, node)` when it
//!   is one. Pairs are never sorted (OpenZeppelin's `MerkleProof` sorts them and so
//!   does not bind a leaf to its position).
//! - A proof's path has exactly `depth(leaf_count)` entries, and the
//!   commitment binds `leaf_count`: an inner node cannot pose as a leaf and a
//!   provider cannot shrink the space it is challenged over.
//! - A proof carries the leaf's bytes, not its hash: a provider must hold the
//!   data itself to answer a challenge.
//! - A **deal tree** places each piece of a deal in a slot of `2^slot_height`
//!   leaves; its root is the tree over the slots' roots (a piece's tree,
//!   extended with zero subtrees to the slot height). Its leaf count is
//!   `slots × 2^slot_height`, so leaf `i` of the deal is leaf
//!   `i mod 2^slot_height` of the piece in slot `i >> slot_height`, and the
//!   deal tree changes with a piece added or removed without rehashing data.
//!
//! # Why 256-byte leaves and SHA-256
//!
//! Measured on this project's 2-core machine (SHA-NI), one core building a
//! tree over 32 MiB: 32 B leaves 188 MB/s, 64 B 272 MB/s, 128 B 456 MB/s,
//! 256 B 698 MB/s, 1 KiB 1122 MB/s (`make bench-codec` prints the sweep).
//! On chain (anvil, research/contracts-design.md) a one-challenge proof
//! costs ~57k gas at 32 B, ~62k at 256 B and ~91k at 1 KiB: proof gas is set by
//! calldata, each doubling of the leaf adds its bytes and removes one 32-byte
//! sibling. 256 B is the knee: 3.7× the tree speed of 32 B leaves for ~9 % more
//! gas, and fast enough that building the tree of every piece a provider
//! receives costs less than writing the piece to disk with fsync
//! (~0.3-0.45 GB/s), where 32 and 64 B leaves would be the bottleneck. 1 KiB
//! would buy 1.6× more tree speed for ~47 % more gas on every proof forever.
//! SHA-256 rather than keccak: the EVM's sha256 precompile costs ≤ 5k more gas
//! per proof at depth 30 (nothing where the calldata floor binds), while
//! keccak trees build ~4× slower off chain.

use std::sync::OnceLock;

use alloy_primitives::{B256, Bytes};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bytes per leaf of every commitment tree.
pub const LEAF_SIZE: usize = 256;

/// The deepest tree the scheme allows: 2^48 leaves of 256 B = 64 PiB.
pub const MAX_DEPTH: u32 = 48;

/// Why a proof or tree was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// A commitment over zero leaves.
    #[error("a commitment covers at least one leaf")]
    ZeroLeafCount,
    /// More leaves than [`MAX_DEPTH`] allows.
    #[error("{leaf_count} leaves exceed the maximum tree depth of {MAX_DEPTH}")]
    TooManyLeaves {
        /// The leaf count asked for.
        leaf_count: u64,
    },
    /// The challenged index is past the committed leaves.
    #[error("leaf index {index} is outside the {leaf_count} committed leaves")]
    IndexOutOfRange {
        /// The index in the proof.
        index: u64,
        /// The committed leaf count.
        leaf_count: u64,
    },
    /// The path length differs from the depth the leaf count implies.
    #[error("a proof over {leaf_count} leaves has {expected} path entries, this one has {actual}")]
    WrongPathLength {
        /// The committed leaf count.
        leaf_count: u64,
        /// `depth(leaf_count)`.
        expected: u32,
        /// The proof's path length.
        actual: usize,
    },
    /// The leaf is not [`LEAF_SIZE`] bytes.
    #[error("a leaf is {LEAF_SIZE} bytes, this one is {0}")]
    WrongLeafSize(usize),
    /// The path does not lead to the committed root.
    #[error("the proof for leaf {index} does not lead to the committed root")]
    RootMismatch {
        /// The index in the proof.
        index: u64,
    },
    /// A slot is too small for the piece placed in it.
    #[error("a piece of {leaf_count} leaves does not fit a slot of 2^{slot_height} leaves")]
    PieceExceedsSlot {
        /// Leaves of the piece.
        leaf_count: u64,
        /// Height of the slot.
        slot_height: u32,
    },
}

/// The depth of a tree over `leaf_count` leaves: `ceil(log2(leaf_count))`.
pub fn depth(leaf_count: u64) -> Result<u32, ProofError> {
    if leaf_count == 0 {
        return Err(ProofError::ZeroLeafCount);
    }
    let depth = u64::BITS - (leaf_count - 1).leading_zeros();
    if depth > MAX_DEPTH {
        return Err(ProofError::TooManyLeaves { leaf_count });
    }
    Ok(depth)
}

/// The number of leaves that cover `len_bytes` bytes (at least one).
pub fn leaf_count_for(len_bytes: u64) -> u64 {
    len_bytes.div_ceil(LEAF_SIZE as u64).max(1)
}

/// `sha256(leaf)`, the leaf zero-padded to [`LEAF_SIZE`] if shorter.
///
/// # Panics
/// If `leaf` is longer than [`LEAF_SIZE`] (a caller bug: leaves come from
/// `chunks(LEAF_SIZE)`).
pub fn leaf_hash(leaf: &[u8]) -> B256 {
    assert!(
        leaf.len() <= LEAF_SIZE,
        "a leaf is at most {LEAF_SIZE} bytes"
    );
    if leaf.len() == LEAF_SIZE {
        B256::from(<[u8; 32]>::from(Sha256::digest(leaf)))
    } else {
        let mut padded = [0u8; LEAF_SIZE];
        padded[..leaf.len()].copy_from_slice(leaf);
        B256::from(<[u8; 32]>::from(Sha256::digest(padded)))
    }
}

/// `sha256(left ‖ right)`.
pub fn node_hash(left: &B256, right: &B256) -> B256 {
    let mut hasher = Sha256::new();
    hasher.update(left);
    hasher.update(right);
    B256::from(<[u8; 32]>::from(hasher.finalize()))
}

/// The root of a subtree of height `height` whose leaves are all zero.
pub fn zero_hash(height: u32) -> B256 {
    static TABLE: OnceLock<Vec<B256>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = Vec::with_capacity(MAX_DEPTH as usize + 1);
        table.push(leaf_hash(&[0u8; LEAF_SIZE]));
        for h in 1..=MAX_DEPTH as usize {
            table.push(node_hash(&table[h - 1], &table[h - 1]));
        }
        table
    });
    table[height as usize]
}

/// Extends a root of height `from` to height `to` by pairing it with zero
/// subtrees on the right (the tree over the same data, zero-padded further).
pub fn extend_root(root: B256, from: u32, to: u32) -> B256 {
    (from..to).fold(root, |node, height| node_hash(&node, &zero_hash(height)))
}

/// Every level of a tree over `base` nodes of height `base_height`.
#[derive(Debug, Clone)]
struct Levels {
    base_height: u32,
    /// `levels[0]` is the base; the last level is the root alone.
    levels: Vec<Vec<B256>>,
}

impl Levels {
    fn build(base: Vec<B256>, base_height: u32) -> Levels {
        debug_assert!(!base.is_empty());
        let mut levels = vec![base];
        while let Some(below) = levels.last().filter(|level| level.len() > 1) {
            let height = base_height + levels.len() as u32 - 1;
            let above = below
                .chunks(2)
                .map(|pair| node_hash(&pair[0], pair.get(1).unwrap_or(&zero_hash(height))))
                .collect();
            levels.push(above);
        }
        Levels {
            base_height,
            levels,
        }
    }

    fn root(&self) -> B256 {
        self.levels[self.levels.len() - 1][0]
    }

    fn depth(&self) -> u32 {
        self.levels.len() as u32 - 1
    }

    /// Siblings of base node `index`, bottom-up.
    fn path(&self, mut index: u64) -> Vec<B256> {
        let mut path = Vec::with_capacity(self.levels.len() - 1);
        for (level, nodes) in self.levels[..self.levels.len() - 1].iter().enumerate() {
            let sibling = nodes
                .get((index ^ 1) as usize)
                .copied()
                .unwrap_or_else(|| zero_hash(self.base_height + level as u32));
            path.push(sibling);
            index >>= 1;
        }
        path
    }
}

/// The whole proof tree of one piece, kept to answer challenges.
///
/// Holds one hash per leaf and per inner node: 64 bytes per 256-byte leaf
/// (1/4 of the piece's size). Providers that keep many pieces rebuild it on
/// demand instead.
#[derive(Debug, Clone)]
pub struct PieceTree {
    leaf_count: u64,
    levels: Levels,
}

impl PieceTree {
    /// Builds the tree of `piece`.
    pub fn build(piece: &[u8]) -> PieceTree {
        let leaves: Vec<B256> = if piece.is_empty() {
            vec![zero_hash(0)]
        } else {
            piece.chunks(LEAF_SIZE).map(leaf_hash).collect()
        };
        PieceTree {
            leaf_count: leaves.len() as u64,
            levels: Levels::build(leaves, 0),
        }
    }

    /// The number of leaves of the piece.
    pub fn leaf_count(&self) -> u64 {
        self.leaf_count
    }

    /// `depth(leaf_count)`.
    pub fn depth(&self) -> u32 {
        self.levels.depth()
    }

    /// The root over the piece's own leaves.
    pub fn root(&self) -> B256 {
        self.levels.root()
    }

    /// The root of the piece in a deal slot of `2^slot_height` leaves.
    pub fn slot_root(&self, slot_height: u32) -> Result<B256, ProofError> {
        if slot_height < self.depth() {
            return Err(ProofError::PieceExceedsSlot {
                leaf_count: self.leaf_count,
                slot_height,
            });
        }
        Ok(extend_root(self.root(), self.depth(), slot_height))
    }

    /// The proof of leaf `index` against [`PieceTree::root`]; `piece` must be
    /// the bytes the tree was built from.
    pub fn prove(&self, piece: &[u8], index: u64) -> Result<MerkleProof, ProofError> {
        if index >= self.leaf_count {
            return Err(ProofError::IndexOutOfRange {
                index,
                leaf_count: self.leaf_count,
            });
        }
        Ok(MerkleProof {
            index,
            leaf: leaf_bytes(piece, index),
            path: self.levels.path(index),
        })
    }
}

/// The bytes of leaf `index` of `data`, zero-padded to [`LEAF_SIZE`].
pub fn leaf_bytes(data: &[u8], index: u64) -> Bytes {
    let mut leaf = vec![0u8; LEAF_SIZE];
    let start = (index as usize).saturating_mul(LEAF_SIZE).min(data.len());
    let end = (start + LEAF_SIZE).min(data.len());
    leaf[..end - start].copy_from_slice(&data[start..end]);
    leaf.into()
}

/// Builds a piece's root from bytes as they stream in, in O(depth) memory.
///
/// A provider feeds the bytes of a piece it receives and learns the root
/// when the last byte arrives, without holding the piece in memory.
#[derive(Debug, Default, Clone)]
pub struct TreeBuilder {
    partial: Vec<u8>,
    /// `frontier[h]`: a finished left subtree of height `h` awaiting its sibling.
    frontier: Vec<Option<B256>>,
    leaf_count: u64,
}

impl TreeBuilder {
    /// A builder with no bytes yet.
    pub fn new() -> TreeBuilder {
        TreeBuilder::default()
    }

    /// Feeds the next bytes of the piece.
    pub fn update(&mut self, mut bytes: &[u8]) {
        if !self.partial.is_empty() {
            let take = (LEAF_SIZE - self.partial.len()).min(bytes.len());
            self.partial.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.partial.len() < LEAF_SIZE {
                return;
            }
            let leaf = leaf_hash(&self.partial);
            self.partial.clear();
            self.push_leaf(leaf);
        }
        let mut chunks = bytes.chunks_exact(LEAF_SIZE);
        for leaf in &mut chunks {
            self.push_leaf(leaf_hash(leaf));
        }
        self.partial.extend_from_slice(chunks.remainder());
    }

    fn push_leaf(&mut self, mut node: B256) {
        self.leaf_count += 1;
        let mut height = 0;
        loop {
            if self.frontier.len() <= height {
                self.frontier.push(None);
            }
            match self.frontier[height].take() {
                Some(left) => {
                    node = node_hash(&left, &node);
                    height += 1;
                }
                None => {
                    self.frontier[height] = Some(node);
                    return;
                }
            }
        }
    }

    /// The root and leaf count of everything fed so far.
    pub fn finish(mut self) -> (B256, u64) {
        if !self.partial.is_empty() || self.leaf_count == 0 {
            let leaf = leaf_hash(&self.partial);
            self.push_leaf(leaf);
        }
        let depth = u64::BITS - (self.leaf_count - 1).leading_zeros();
        // Fold the pending left subtrees with what lies to their right (or zeros).
        let mut right: Option<B256> = None;
        for height in 0..depth {
            let left = self.frontier.get(height as usize).copied().flatten();
            right = match (left, right) {
                (Some(left), right) => Some(node_hash(&left, &right.unwrap_or(zero_hash(height)))),
                (None, Some(node)) => Some(node_hash(&node, &zero_hash(height))),
                (None, None) => None,
            };
        }
        let root = match right {
            Some(root) => root,
            // A full tree: its root sits in the frontier at the top.
            None => {
                self.frontier[depth as usize].expect("a full tree leaves its root in the frontier")
            }
        };
        (root, self.leaf_count)
    }
}

/// The tree over the pieces of one deal, each in a slot of `2^slot_height` leaves.
#[derive(Debug, Clone)]
pub struct DealTree {
    slot_height: u32,
    levels: Levels,
}

impl DealTree {
    /// The tree over `slot_roots` (from [`PieceTree::slot_root`]), in slot order.
    pub fn new(slot_height: u32, slot_roots: Vec<B256>) -> Result<DealTree, ProofError> {
        if slot_roots.is_empty() {
            return Err(ProofError::ZeroLeafCount);
        }
        let tree = DealTree {
            slot_height,
            levels: Levels::build(slot_roots, slot_height),
        };
        depth(tree.leaf_count())?;
        Ok(tree)
    }

    /// Height of every slot.
    pub fn slot_height(&self) -> u32 {
        self.slot_height
    }

    /// Number of slots.
    pub fn slots(&self) -> u64 {
        self.levels.levels[0].len() as u64
    }

    /// The committed leaf count: `slots × 2^slot_height`.
    pub fn leaf_count(&self) -> u64 {
        self.slots() << self.slot_height
    }

    /// The committed root.
    pub fn root(&self) -> B256 {
        self.levels.root()
    }

    /// The proof of deal leaf `index`, given the tree and bytes of the piece in its slot.
    pub fn prove(
        &self,
        index: u64,
        piece_tree: &PieceTree,
        piece: &[u8],
    ) -> Result<MerkleProof, ProofError> {
        if index >= self.leaf_count() {
            return Err(ProofError::IndexOutOfRange {
                index,
                leaf_count: self.leaf_count(),
            });
        }
        let slot = index >> self.slot_height;
        let local = index & ((1u64 << self.slot_height) - 1);
        if piece_tree.depth() > self.slot_height {
            return Err(ProofError::PieceExceedsSlot {
                leaf_count: piece_tree.leaf_count(),
                slot_height: self.slot_height,
            });
        }
        // Inside the piece's own depth, positions past its leaves are zero
        // leaves and `path` finds their siblings like any other's.
        let mut path = piece_tree.levels.path(local);
        // From the piece's depth up to the slot's, the node holding `local` is
        // either the piece itself (node 0) or a zero subtree to its right.
        path.extend((piece_tree.depth()..self.slot_height).map(|height| {
            if (local >> height) ^ 1 == 0 {
                extend_root(piece_tree.root(), piece_tree.depth(), height)
            } else {
                zero_hash(height)
            }
        }));
        path.extend(self.levels.path(slot));
        Ok(MerkleProof {
            index,
            leaf: leaf_bytes(piece, local),
            path,
        })
    }
}

/// A proof that a leaf sits at a position of a committed tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerkleProof {
    /// The leaf's position.
    pub index: u64,
    /// The leaf's [`LEAF_SIZE`] bytes.
    pub leaf: Bytes,
    /// Siblings from the leaf's level up to just below the root.
    pub path: Vec<B256>,
}

/// Checks `proof` against the commitment `(root, leaf_count)`.
pub fn verify(root: B256, leaf_count: u64, proof: &MerkleProof) -> Result<(), ProofError> {
    let expected = depth(leaf_count)?;
    if proof.index >= leaf_count {
        return Err(ProofError::IndexOutOfRange {
            index: proof.index,
            leaf_count,
        });
    }
    if proof.path.len() != expected as usize {
        return Err(ProofError::WrongPathLength {
            leaf_count,
            expected,
            actual: proof.path.len(),
        });
    }
    if proof.leaf.len() != LEAF_SIZE {
        return Err(ProofError::WrongLeafSize(proof.leaf.len()));
    }
    let mut node = leaf_hash(&proof.leaf);
    for (level, sibling) in proof.path.iter().enumerate() {
        node = if proof.index >> level & 1 == 0 {
            node_hash(&node, sibling)
        } else {
            node_hash(sibling, &node)
        };
    }
    if node == root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch { index: proof.index })
    }
}

/// Deterministic test vectors for the contract's `MerkleVerify`: piece trees
/// of several shapes and a deal tree, with proofs of their first, middle and
/// last leaves. Written to `ledger/contracts/test/vectors/merkle.json`, which
/// the Foundry tests verify on chain; keys are in alphabetical order so
/// `vm.parseJson` decodes each vector into a struct.
pub fn test_vectors() -> serde_json::Value {
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed as u32) as u8 ^ (i >> 8) as u8)
            .collect()
    }
    fn vector(root: B256, leaf_count: u64, proof: MerkleProof) -> serde_json::Value {
        serde_json::json!({
            "index": proof.index,
            "leaf": proof.leaf,
            "leafCount": leaf_count,
            "path": proof.path,
            "root": root,
        })
    }
    let mut vectors = Vec::new();
    for (seed, len) in [
        (1u8, 256usize),
        (2, 512),
        (3, 700),
        (4, 5 * 256),
        (5, 8 * 256),
        (6, 13 * 256 - 9),
    ] {
        let piece = pattern(len, seed);
        let tree = PieceTree::build(&piece);
        let last = tree.leaf_count() - 1;
        let mut indexes = vec![0, last / 2, last];
        indexes.dedup();
        for index in indexes {
            let proof = tree.prove(&piece, index).expect("index is in range");
            vectors.push(vector(tree.root(), tree.leaf_count(), proof));
        }
    }
    // A deal of three pieces (3, 4 and 2 leaves) in slots of 4 leaves.
    let pieces: Vec<Vec<u8>> = [(7u8, 3 * 256 - 100), (8, 4 * 256), (9, 2 * 256)]
        .iter()
        .map(|&(seed, len)| pattern(len, seed))
        .collect();
    let trees: Vec<PieceTree> = pieces.iter().map(|piece| PieceTree::build(piece)).collect();
    let slot_height = 2;
    let deal = DealTree::new(
        slot_height,
        trees
            .iter()
            .map(|tree| tree.slot_root(slot_height).expect("pieces fit their slots"))
            .collect(),
    )
    .expect("three slots make a valid deal tree");
    for index in [0u64, 3, 5, 9, 11] {
        let slot = (index >> slot_height) as usize;
        let proof = deal
            .prove(index, &trees[slot], &pieces[slot])
            .expect("index is in range");
        vectors.push(vector(deal.root(), deal.leaf_count(), proof));
    }
    serde_json::json!({ "leafSize": LEAF_SIZE, "vectors": vectors })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The scheme's definition, written the slow obvious way: the tree over
    /// the data zero-padded to 2^depth leaves.
    fn reference_root(data: &[u8], leaf_count: u64) -> B256 {
        let depth = depth(leaf_count).unwrap();
        let mut level: Vec<B256> = (0..1u64 << depth)
            .map(|i| leaf_hash(&leaf_bytes(data, i)))
            .collect();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
        }
        level[0]
    }

    #[test]
    fn depth_matches_the_leaf_count() {
        assert_eq!(depth(0), Err(ProofError::ZeroLeafCount));
        assert_eq!(depth(1), Ok(0));
        assert_eq!(depth(2), Ok(1));
        assert_eq!(depth(3), Ok(2));
        assert_eq!(depth(4), Ok(2));
        assert_eq!(depth(5), Ok(3));
        assert_eq!(depth(1 << 48), Ok(48));
        assert!(matches!(
            depth((1 << 48) + 1),
            Err(ProofError::TooManyLeaves { .. })
        ));
    }

    #[test]
    fn small_trees_match_their_definition() {
        let leaf = |byte: u8| [byte; LEAF_SIZE];
        let one = PieceTree::build(&leaf(1));
        assert_eq!(one.root(), leaf_hash(&leaf(1)));
        let three: Vec<u8> = [leaf(1), leaf(2), leaf(3)].concat();
        let expected = node_hash(
            &node_hash(&leaf_hash(&leaf(1)), &leaf_hash(&leaf(2))),
            &node_hash(&leaf_hash(&leaf(3)), &zero_hash(0)),
        );
        assert_eq!(PieceTree::build(&three).root(), expected);
        assert_eq!(zero_hash(0), leaf_hash(&[]));
        assert_eq!(zero_hash(1), node_hash(&zero_hash(0), &zero_hash(0)));
    }

    /// The committed vectors are what this code produces: regenerate with
    /// `DBYTES_UPDATE_VECTORS=1 cargo test -p dbytes-ledger vectors` after a
    /// deliberate change of the scheme (and the contract must follow).
    #[test]
    fn contract_vectors_file_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("contracts/test/vectors/merkle.json");
        let generated = serde_json::to_string_pretty(&test_vectors()).unwrap() + "\n";
        if std::env::var_os("DBYTES_UPDATE_VECTORS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is stale: run DBYTES_UPDATE_VECTORS=1 cargo test -p dbytes-ledger vectors",
            path.display()
        );
        for vector in test_vectors()["vectors"].as_array().unwrap() {
            let proof: MerkleProof = serde_json::from_value(vector.clone()).unwrap();
            let root: B256 = serde_json::from_value(vector["root"].clone()).unwrap();
            verify(root, vector["leafCount"].as_u64().unwrap(), &proof).unwrap();
        }
    }

    fn piece_strategy() -> impl Strategy<Value = Vec<u8>> {
        (1usize..=20 * LEAF_SIZE).prop_flat_map(|len| proptest::collection::vec(any::<u8>(), len))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_leaf_proves_and_the_root_matches_the_definition(
            piece in piece_strategy(),
            cuts in proptest::collection::vec(0usize..2000, 0..8),
        ) {
            let tree = PieceTree::build(&piece);
            prop_assert_eq!(tree.leaf_count(), leaf_count_for(piece.len() as u64));
            prop_assert_eq!(tree.root(), reference_root(&piece, tree.leaf_count()));

            // The streaming builder agrees whatever the chunking.
            let mut builder = TreeBuilder::new();
            let mut rest = &piece[..];
            for cut in cuts {
                let (head, tail) = rest.split_at(cut.min(rest.len()));
                builder.update(head);
                rest = tail;
            }
            builder.update(rest);
            prop_assert_eq!(builder.finish(), (tree.root(), tree.leaf_count()));

            for index in 0..tree.leaf_count() {
                let proof = tree.prove(&piece, index).unwrap();
                prop_assert_eq!(proof.path.len() as u32, tree.depth());
                prop_assert_eq!(verify(tree.root(), tree.leaf_count(), &proof), Ok(()));
            }
        }

        #[test]
        fn any_change_breaks_the_proof(
            piece in piece_strategy(),
            pick in any::<u64>(),
            flip in 0usize..LEAF_SIZE * 8,
        ) {
            let tree = PieceTree::build(&piece);
            let index = pick % tree.leaf_count();
            let proof = tree.prove(&piece, index).unwrap();
            let (root, count) = (tree.root(), tree.leaf_count());

            let mut leaf = proof.clone();
            let mut bytes = leaf.leaf.to_vec();
            bytes[flip / 8] ^= 1 << (flip % 8);
            leaf.leaf = bytes.into();
            prop_assert_eq!(verify(root, count, &leaf), Err(ProofError::RootMismatch { index }));

            if !proof.path.is_empty() {
                let mut sibling = proof.clone();
                let level = (pick as usize / 7) % sibling.path.len();
                sibling.path[level].0[flip % 32] ^= 1 << (flip % 8);
                prop_assert_eq!(verify(root, count, &sibling), Err(ProofError::RootMismatch { index }));

                // Another index under the same leaf and path: the position is bound.
                let mut moved = proof.clone();
                moved.index = (index + 1 + pick % (count - 1).max(1)) % count;
                if moved.index != index && tree.prove(&piece, moved.index).unwrap().leaf != proof.leaf {
                    prop_assert!(verify(root, count, &moved).is_err());
                }
                let mut short = proof.clone();
                short.path.pop();
                prop_assert!(matches!(verify(root, count, &short), Err(ProofError::WrongPathLength { .. })), "wrong error");
            }
            let mut other_root = root;
            other_root.0[flip % 32] ^= 1 << (flip % 8);
            prop_assert_eq!(verify(other_root, count, &proof), Err(ProofError::RootMismatch { index }));
            let mut long = proof.clone();
            long.path.push(B256::ZERO);
            prop_assert!(matches!(verify(root, count, &long), Err(ProofError::WrongPathLength { .. })), "wrong error");
            let mut past = proof.clone();
            past.index = count;
            prop_assert!(matches!(verify(root, count, &past), Err(ProofError::IndexOutOfRange { .. })), "wrong error");
        }

        #[test]
        fn deal_trees_are_trees_over_padded_slots(
            pieces in proptest::collection::vec(
                (1usize..=6 * LEAF_SIZE).prop_flat_map(|len| proptest::collection::vec(any::<u8>(), len)),
                1..6,
            ),
            extra_height in 0u32..3,
        ) {
            let trees: Vec<PieceTree> = pieces.iter().map(|p| PieceTree::build(p)).collect();
            let slot_height = trees.iter().map(PieceTree::depth).max().unwrap() + extra_height;
            let deal = DealTree::new(
                slot_height,
                trees.iter().map(|t| t.slot_root(slot_height).unwrap()).collect(),
            ).unwrap();
            // The definition: the tree over the concatenation of the pieces,
            // each zero-padded to its slot.
            let slot_bytes = LEAF_SIZE << slot_height;
            let mut data = vec![0u8; slot_bytes * pieces.len()];
            for (slot, piece) in pieces.iter().enumerate() {
                data[slot * slot_bytes..slot * slot_bytes + piece.len()].copy_from_slice(piece);
            }
            prop_assert_eq!(deal.root(), reference_root(&data, deal.leaf_count()));
            for index in 0..deal.leaf_count() {
                let slot = (index >> slot_height) as usize;
                let proof = deal.prove(index, &trees[slot], &pieces[slot]).unwrap();
                prop_assert_eq!(&proof.leaf, &leaf_bytes(&data, index));
                prop_assert_eq!(verify(deal.root(), deal.leaf_count(), &proof), Ok(()));
            }
        }
    }

    #[test]
    fn a_piece_larger_than_its_slot_is_refused() {
        let tree = PieceTree::build(&[1u8; 5 * LEAF_SIZE]);
        assert!(matches!(
            tree.slot_root(2),
            Err(ProofError::PieceExceedsSlot { .. })
        ));
        assert_eq!(tree.slot_root(3).unwrap(), tree.root());
    }
}
