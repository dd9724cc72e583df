// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/**
 * @title MerkleVerify
 * @notice Positional SHA-256 Merkle proofs over the dBytes piece commitment scheme.
 *
 * The scheme (the Rust side, `ledger/src/commitment.rs`, implements the same):
 * - A leaf is `LEAF_SIZE` (256) bytes; its hash is `sha256(leaf)`. An inner node is
 *   `sha256(left ‖ right)` over the two 32-byte children, with no prefixes.
 * - A tree over `leafCount` leaves has depth `ceil(log2(leafCount))` (0 for one leaf) and is
 *   the full binary tree over `2^depth` leaves, positions `>= leafCount` holding zero leaves.
 *   The prover supplies zero-subtree hashes there; the verifier only folds the path.
 * - A proof for leaf `index` carries the 256 leaf bytes and `depth` siblings, bottom-up.
 *   When bit `j` of `index` is 0 the node is `H(node, path[j])`, otherwise `H(path[j], node)`.
 *
 * Why not OpenZeppelin's `MerkleProof`: it hashes sorted pairs, so a proof does not bind the
 * leaf's position, and it accepts proofs of any length, so an inner node can pose as a leaf.
 * Here the path length must equal the depth implied by the committed leaf count, and the
 * challenged index (derived by the caller, never chosen by the prover) fixes every pair order.
 *
 * Gas: one SHA-256 precompile call over the 256-byte leaf (156 gas + call) and one per level
 * over 64 bytes of scratch space (84 gas + call), so about 250 gas per level.
 */
library MerkleVerify {
    /// @notice Bytes per leaf of every commitment tree.
    uint256 internal constant LEAF_SIZE = 256;

    /// @notice The deepest tree the scheme allows: 2^48 leaves of 256 bytes (64 PiB).
    uint256 internal constant MAX_DEPTH = 48;

    /// @notice The largest leaf count the scheme allows.
    uint256 internal constant MAX_LEAF_COUNT = 2 ** MAX_DEPTH;

    /**
     * @notice The depth of a tree over `leafCount` leaves: `ceil(log2(leafCount))`.
     * @dev The caller guarantees `1 <= leafCount <= MAX_LEAF_COUNT`; 0 returns 0.
     */
    function depth(uint256 leafCount) internal pure returns (uint256 result) {
        if (leafCount <= 1) return 0;
        // ceil(log2(n)) == floor(log2(n - 1)) + 1 for n >= 2; a short binary search.
        uint256 x = leafCount - 1;
        unchecked {
            if (x >> 32 != 0) {
                x >>= 32;
                result += 32;
            }
            if (x >> 16 != 0) {
                x >>= 16;
                result += 16;
            }
            if (x >> 8 != 0) {
                x >>= 8;
                result += 8;
            }
            if (x >> 4 != 0) {
                x >>= 4;
                result += 4;
            }
            if (x >> 2 != 0) {
                x >>= 2;
                result += 2;
            }
            if (x >> 1 != 0) {
                result += 1;
            }
            result += 1;
        }
    }

    /**
     * @notice Folds `leaf` and `path` into the root they imply for position `index`.
     * @dev Does not check lengths: `leaf.length` must be `LEAF_SIZE` and `path.length` the
     * tree depth (see {verify}).
     */
    function computeRoot(uint256 index, bytes calldata leaf, bytes32[] calldata path)
        internal
        view
        returns (bytes32)
    {
        uint256 leafOffset;
        uint256 pathOffset;
        assembly ("memory-safe") {
            leafOffset := leaf.offset
            pathOffset := path.offset
        }
        return computeRootAt(index, leafOffset, pathOffset, path.length);
    }

    /**
     * @notice {computeRoot} over raw calldata offsets: the `LEAF_SIZE` leaf bytes at
     * `leafOffset` and `depth` 32-byte siblings at `pathOffset`.
     * @dev For callers that slice many proofs out of one calldata array. The caller guarantees
     * the offsets lie within its calldata arguments. Uses the 64 bytes of scratch space and the
     * memory past the free memory pointer as temporary buffers, without moving the pointer.
     */
    function computeRootAt(uint256 index, uint256 leafOffset, uint256 pathOffset, uint256 depth_)
        internal
        view
        returns (bytes32 node)
    {
        assembly ("memory-safe") {
            let buffer := mload(0x40)
            calldatacopy(buffer, leafOffset, LEAF_SIZE)
            if iszero(staticcall(gas(), 0x02, buffer, LEAF_SIZE, 0x00, 0x20)) {
                revert(0, 0)
            }
            node := mload(0x00)
            let end := add(pathOffset, shl(5, depth_))
            for {} lt(pathOffset, end) { pathOffset := add(pathOffset, 0x20) } {
                // The node goes left (offset 0) when the index bit is 0, right (0x20) when 1.
                let nodeAt := shl(5, and(index, 1))
                mstore(nodeAt, node)
                mstore(xor(nodeAt, 0x20), calldataload(pathOffset))
                if iszero(staticcall(gas(), 0x02, 0x00, 0x40, 0x00, 0x20)) {
                    revert(0, 0)
                }
                node := mload(0x00)
                index := shr(1, index)
            }
        }
    }

    /**
     * @notice Whether `leaf` sits at position `index` of the committed tree `(root, leafCount)`.
     * @dev False for a leaf count of 0 or above `MAX_LEAF_COUNT`, an index outside the
     * committed leaves, a leaf that is not `LEAF_SIZE` bytes, or a path whose length differs
     * from `depth(leafCount)`.
     */
    function verify(
        bytes32 root,
        uint256 leafCount,
        uint256 index,
        bytes calldata leaf,
        bytes32[] calldata path
    ) internal view returns (bool) {
        if (leafCount == 0 || leafCount > MAX_LEAF_COUNT || index >= leafCount) return false;
        if (leaf.length != LEAF_SIZE || path.length != depth(leafCount)) return false;
        return computeRoot(index, leaf, path) == root;
    }
}
