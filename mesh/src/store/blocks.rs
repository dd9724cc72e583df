//! What the store keeps of a piece's proof tree so that an audit need not
//! re-hash the piece: the roots of its blocks of [`BLOCK_LEAVES`] leaves.
//!
//! A piece's tree is the tree over its bytes zero-padded to a power of two
//! leaves (`dbytes_ledger::commitment`), so from height [`BLOCK_HEIGHT`] up
//! it is the tree over the roots of its [`BLOCK_BYTES`]-byte blocks, the
//! last block padded with zero leaves: the shape of a deal tree over slots
//! of `2^BLOCK_HEIGHT` leaves, which [`DealTree`] builds and proves. An
//! audit rebuilds that tree from the kept roots (checking it still leads to
//! the indexed root), reads each challenged leaf's block from the piece,
//! hashes it and checks its root against the kept one: the leaf and the
//! hashes below the block always come from the piece's bytes.
//!
//! Cost: 32 bytes per 8 KiB block, 0.39 % of the piece (16 KiB for a 4 MiB
//! piece). Per audit: one tree over the kept roots (511 hashes for a 4 MiB
//! piece) and one 8 KiB read and 32 leaf hashes per challenged leaf, where
//! re-hashing the piece costs 16,384 leaf hashes. 8 KiB: two pages per
//! read, a quarter of the roots 2 KiB blocks would keep.
//!
//! A piece of one block keeps nothing: its audit reads the whole piece,
//! which is no more than one block.
//!
//! Pure: bytes in, hashes out; the store reads and writes them.

use alloy_primitives::B256;
use dbytes_ledger::commitment::{
    DealTree, LEAF_SIZE, MerkleProof, PieceTree, TreeBuilder, leaf_count_for, verify,
};

/// The height of a block's subtree: a block is `2^BLOCK_HEIGHT` leaves.
pub const BLOCK_HEIGHT: u32 = 5;

/// Leaves per block.
pub const BLOCK_LEAVES: u64 = 1 << BLOCK_HEIGHT;

/// Bytes per block.
pub const BLOCK_BYTES: usize = LEAF_SIZE << BLOCK_HEIGHT;

/// The first byte of an encoded [`BlockTree`]; another layout gets another
/// version, and a store that does not know it re-hashes the piece.
const ENCODING_VERSION: u8 = 1;
const HEADER_BYTES: usize = 2;

/// The block roots of a piece of more than one block, with the tree over
/// them, checked to lead to the piece's root.
#[derive(Debug, Clone)]
pub struct BlockTree {
    roots: Vec<B256>,
    tree: DealTree,
    root: B256,
    leaf_count: u64,
}

impl BlockTree {
    /// The tree over `roots`, if they are the block roots of a piece of
    /// `leaf_count` leaves whose proof root is `root`; `None` otherwise
    /// (roots lost or altered, or a piece of one block).
    pub fn from_roots(roots: Vec<B256>, root: B256, leaf_count: u64) -> Option<BlockTree> {
        if roots.len() < 2 || roots.len() as u64 != leaf_count.div_ceil(BLOCK_LEAVES) {
            return None;
        }
        let tree = DealTree::new(BLOCK_HEIGHT, roots.clone()).ok()?;
        (tree.root() == root).then_some(BlockTree {
            roots,
            tree,
            root,
            leaf_count,
        })
    }

    /// [`BlockTree::from_roots`] of roots as [`BlockTree::encode`] wrote them.
    pub fn decode(bytes: &[u8], root: B256, leaf_count: u64) -> Option<BlockTree> {
        let (header, body) = bytes.split_at_checked(HEADER_BYTES)?;
        if header != [ENCODING_VERSION, BLOCK_HEIGHT as u8] || body.len() % 32 != 0 {
            return None;
        }
        let roots = body.chunks_exact(32).map(B256::from_slice).collect();
        BlockTree::from_roots(roots, root, leaf_count)
    }

    /// The roots as the store keeps them: a version and the block height,
    /// then the roots in block order.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_BYTES + 32 * self.roots.len());
        bytes.extend_from_slice(&[ENCODING_VERSION, BLOCK_HEIGHT as u8]);
        for root in &self.roots {
            bytes.extend_from_slice(root.as_slice());
        }
        bytes
    }

    /// The proof of leaf `index`, given `block`, the bytes of the block that
    /// holds it (see [`block_span`]); `None` if the block's bytes are not
    /// those the roots were built from.
    pub fn prove(&self, index: u64, block: &[u8]) -> Option<MerkleProof> {
        let slot = usize::try_from(index / BLOCK_LEAVES).ok()?;
        let kept = self.roots.get(slot)?;
        // The last block is shorter; its zero leaves are the tree's padding.
        let mut padded = [0u8; BLOCK_BYTES];
        padded.get_mut(..block.len())?.copy_from_slice(block);
        let block_tree = PieceTree::build(&padded);
        if block_tree.root() != *kept {
            return None;
        }
        let proof = self.tree.prove(index, &block_tree, &padded).ok()?;
        // The deal tree's leaf count is the piece's rounded up to whole
        // blocks; the proof must hold against the piece's own commitment.
        verify(self.root, self.leaf_count, &proof).ok()?;
        Some(proof)
    }
}

/// Where the block holding leaf `index` lies in a piece of `piece_length`
/// bytes: its offset and length (shorter for the last block).
pub fn block_span(index: u64, piece_length: u64) -> (u64, u64) {
    let offset = (index / BLOCK_LEAVES) * BLOCK_BYTES as u64;
    let length = piece_length.saturating_sub(offset).min(BLOCK_BYTES as u64);
    (offset, length)
}

/// A piece's proof root and leaf count, and its block tree if it has more
/// than one block.
#[derive(Debug, Clone)]
pub struct HashedPiece {
    /// The root of its proof tree.
    pub root: B256,
    /// Its leaf count.
    pub leaf_count: u64,
    /// Its block roots (`None` for a piece of one block).
    pub blocks: Option<BlockTree>,
}

/// Builds a piece's proof root and block roots from its bytes as they
/// stream in; holds one block and the roots.
#[derive(Debug, Default)]
pub struct BlockTreeBuilder {
    partial: Vec<u8>,
    roots: Vec<B256>,
    length: u64,
}

impl BlockTreeBuilder {
    /// A builder with no bytes yet.
    pub fn new() -> BlockTreeBuilder {
        BlockTreeBuilder::default()
    }

    /// Feeds the next bytes of the piece.
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.length += bytes.len() as u64;
        if !self.partial.is_empty() {
            let take = (BLOCK_BYTES - self.partial.len()).min(bytes.len());
            self.partial.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.partial.len() < BLOCK_BYTES {
                return;
            }
            self.roots.push(subtree_root(&self.partial));
            self.partial.clear();
        }
        let mut blocks = bytes.chunks_exact(BLOCK_BYTES);
        for block in &mut blocks {
            self.roots.push(subtree_root(block));
        }
        self.partial.extend_from_slice(blocks.remainder());
    }

    /// The root, leaf count and block tree of everything fed so far.
    pub fn finish(mut self) -> HashedPiece {
        let leaf_count = leaf_count_for(self.length);
        if self.roots.is_empty() {
            // One block, maybe short: its own tree is the piece's.
            return HashedPiece {
                root: subtree_root(&self.partial),
                leaf_count,
                blocks: None,
            };
        }
        if !self.partial.is_empty() {
            self.partial.resize(BLOCK_BYTES, 0);
            self.roots.push(subtree_root(&self.partial));
        }
        if let [root] = self.roots[..] {
            return HashedPiece {
                root,
                leaf_count,
                blocks: None,
            };
        }
        // At least two roots, and far fewer than 2^48 leaves for any piece
        // that fits in memory's address space, so the tree builds.
        let tree = DealTree::new(BLOCK_HEIGHT, self.roots.clone())
            .expect("two or more block roots of a piece make a deal tree");
        let root = tree.root();
        HashedPiece {
            root,
            leaf_count,
            blocks: Some(BlockTree {
                roots: self.roots,
                tree,
                root,
                leaf_count,
            }),
        }
    }
}

/// The root of the tree over `bytes` (at most one block).
fn subtree_root(bytes: &[u8]) -> B256 {
    let mut tree = TreeBuilder::new();
    tree.update(bytes);
    tree.finish().0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pattern(length: usize, seed: u8) -> Vec<u8> {
        (0..length)
            .map(|i| {
                (i as u32).wrapping_mul(131).wrapping_add(u32::from(seed)) as u8 ^ (i >> 9) as u8
            })
            .collect()
    }

    fn built(bytes: &[u8], chunk: usize) -> HashedPiece {
        let mut builder = BlockTreeBuilder::new();
        for part in bytes.chunks(chunk.max(1)) {
            builder.update(part);
        }
        builder.finish()
    }

    fn block_of(bytes: &[u8], index: u64) -> &[u8] {
        let (offset, length) = block_span(index, bytes.len() as u64);
        &bytes[offset as usize..(offset + length) as usize]
    }

    proptest! {
        /// Any length, fed in any chunk size: the ledger's root and leaf
        /// count, and every leaf proven from its block alone verifies and is
        /// the ledger's proof.
        #[test]
        fn the_block_tree_is_the_piece_tree(
            length in 0usize..40_000,
            chunk in 1usize..20_000,
            seed: u8,
        ) {
            let bytes = pattern(length, seed);
            let hashed = built(&bytes, chunk);
            let tree = PieceTree::build(&bytes);
            prop_assert_eq!(hashed.root, tree.root());
            prop_assert_eq!(hashed.leaf_count, tree.leaf_count());
            prop_assert_eq!(hashed.blocks.is_some(), hashed.leaf_count > BLOCK_LEAVES);
            if let Some(blocks) = hashed.blocks {
                let decoded = BlockTree::decode(&blocks.encode(), hashed.root, hashed.leaf_count)
                    .expect("the encoded roots decode");
                for index in [0, hashed.leaf_count / 2, hashed.leaf_count - 1] {
                    let proof = decoded.prove(index, block_of(&bytes, index)).expect("a proof");
                    prop_assert_eq!(proof, tree.prove(&bytes, index).unwrap());
                }
            }
        }

        /// Any flipped byte of the block, or of the kept roots, and no
        /// proof comes out.
        #[test]
        fn a_flipped_byte_gives_no_proof(
            at in 0usize..BLOCK_BYTES,
            flip in 1u8..,
            root_byte in 0usize..(HEADER_BYTES + 32 * 5),
        ) {
            let bytes = pattern(4 * BLOCK_BYTES + 1000, 3);
            let hashed = built(&bytes, 4096);
            let blocks = hashed.blocks.expect("five blocks");
            let index = 2 * BLOCK_LEAVES + 7;
            let mut block = block_of(&bytes, index).to_vec();
            block[at] ^= flip;
            prop_assert!(blocks.prove(index, &block).is_none());

            let mut encoded = blocks.encode();
            encoded[root_byte] ^= flip;
            prop_assert!(BlockTree::decode(&encoded, hashed.root, hashed.leaf_count).is_none());
        }
    }

    #[test]
    fn roots_of_another_piece_or_length_are_refused() {
        let bytes = pattern(3 * BLOCK_BYTES, 1);
        let hashed = built(&bytes, BLOCK_BYTES);
        let encoded = hashed.blocks.expect("three blocks").encode();
        assert!(BlockTree::decode(&encoded, hashed.root, hashed.leaf_count).is_some());
        assert!(BlockTree::decode(&encoded, B256::ZERO, hashed.leaf_count).is_none());
        assert!(BlockTree::decode(&encoded, hashed.root, hashed.leaf_count + 40).is_none());
        assert!(
            BlockTree::decode(
                &encoded[..encoded.len() - 32],
                hashed.root,
                hashed.leaf_count
            )
            .is_none()
        );
        assert!(BlockTree::decode(&[], hashed.root, hashed.leaf_count).is_none());
    }

    #[test]
    fn the_last_block_is_short() {
        assert_eq!(block_span(0, 100), (0, 100));
        assert_eq!(
            block_span(BLOCK_LEAVES, 10_000),
            (BLOCK_BYTES as u64, 10_000 - BLOCK_BYTES as u64)
        );
        assert_eq!(
            block_span(BLOCK_LEAVES - 1, 2 * BLOCK_BYTES as u64),
            (0, BLOCK_BYTES as u64)
        );
    }
}
