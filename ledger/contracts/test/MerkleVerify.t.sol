// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Test} from "forge-std/Test.sol";

import {MerkleVerify} from "../src/MerkleVerify.sol";
import {TestTree} from "./Base.t.sol";

/// @dev Exposes the library over calldata, as the proof contract uses it.
contract MerkleHarness {
    function verify(
        bytes32 root,
        uint256 leafCount,
        uint256 index,
        bytes calldata leaf,
        bytes32[] calldata path
    ) external view returns (bool) {
        return MerkleVerify.verify(root, leafCount, index, leaf, path);
    }

    function computeRoot(uint256 index, bytes calldata leaf, bytes32[] calldata path)
        external
        view
        returns (bytes32)
    {
        return MerkleVerify.computeRoot(index, leaf, path);
    }

    function depth(uint256 leafCount) external pure returns (uint256) {
        return MerkleVerify.depth(leafCount);
    }
}

contract MerkleVerifyTest is Test {
    /// @dev Field order is alphabetical: that is how vm.parseJson lays out objects.
    struct Vector {
        uint256 index;
        bytes leaf;
        uint256 leafCount;
        bytes32[] path;
        bytes32 root;
    }

    MerkleHarness internal harness;

    function setUp() public {
        harness = new MerkleHarness();
    }

    function vectors() internal view returns (Vector[] memory) {
        string memory json = vm.readFile("test/vectors/merkle.json");
        assertEq(vm.parseJsonUint(json, ".leafSize"), MerkleVerify.LEAF_SIZE, "leaf size");
        return abi.decode(vm.parseJson(json, ".vectors"), (Vector[]));
    }

    // ------------------------------------------------------------------ Rust vectors

    function test_rustVectorsVerify() public view {
        Vector[] memory all = vectors();
        assertGt(all.length, 10, "vector count");
        for (uint256 i; i < all.length; ++i) {
            Vector memory v = all[i];
            assertEq(v.path.length, harness.depth(v.leafCount), "path length is the depth");
            assertTrue(
                harness.verify(v.root, v.leafCount, v.index, v.leaf, v.path), "vector verifies"
            );
        }
    }

    function test_rustVectorsTamperedLeafFails() public view {
        Vector[] memory all = vectors();
        for (uint256 i; i < all.length; ++i) {
            Vector memory v = all[i];
            for (uint256 b; b < v.leaf.length; b += 85) {
                bytes memory leaf = bytes.concat(v.leaf);
                leaf[b] = bytes1(uint8(leaf[b]) ^ 0x01);
                assertFalse(
                    harness.verify(v.root, v.leafCount, v.index, leaf, v.path), "flipped leaf bit"
                );
            }
        }
    }

    function test_rustVectorsTamperedSiblingFails() public view {
        Vector[] memory all = vectors();
        for (uint256 i; i < all.length; ++i) {
            Vector memory v = all[i];
            for (uint256 j; j < v.path.length; ++j) {
                bytes32[] memory path = copy(v.path);
                path[j] ^= bytes32(uint256(1) << 7);
                assertFalse(
                    harness.verify(v.root, v.leafCount, v.index, v.leaf, path), "flipped sibling"
                );
            }
        }
    }

    function test_rustVectorsWrongIndexFails() public view {
        Vector[] memory all = vectors();
        for (uint256 i; i < all.length; ++i) {
            Vector memory v = all[i];
            // A zero (padding) leaf legitimately verifies at a neighbouring zero position too.
            bool zeroLeaf = keccak256(v.leaf) == keccak256(new bytes(256));
            for (uint256 other; other < v.leafCount && !zeroLeaf; ++other) {
                if (other == v.index) continue;
                assertFalse(
                    harness.verify(v.root, v.leafCount, other, v.leaf, v.path), "moved leaf"
                );
            }
            assertFalse(
                harness.verify(v.root, v.leafCount, v.leafCount, v.leaf, v.path),
                "index out of range"
            );
        }
    }

    function test_rustVectorsWrongPathLengthFails() public view {
        Vector[] memory all = vectors();
        for (uint256 i; i < all.length; ++i) {
            Vector memory v = all[i];
            bytes32[] memory longer = new bytes32[](v.path.length + 1);
            for (uint256 j; j < v.path.length; ++j) {
                longer[j] = v.path[j];
            }
            assertFalse(harness.verify(v.root, v.leafCount, v.index, v.leaf, longer), "longer path");
            if (v.path.length > 0) {
                bytes32[] memory shorter = new bytes32[](v.path.length - 1);
                for (uint256 j; j < shorter.length; ++j) {
                    shorter[j] = v.path[j];
                }
                assertFalse(
                    harness.verify(v.root, v.leafCount, v.index, v.leaf, shorter), "shorter path"
                );
                // An inner node posing as a leaf: a shorter proof of the level-1 node fails.
            }
        }
    }

    function test_rustVectorsWrongLeafCountFails() public view {
        Vector[] memory all = vectors();
        for (uint256 i; i < all.length; ++i) {
            Vector memory v = all[i];
            // A leaf count of another depth changes the required path length.
            uint256 deeper = (uint256(1) << v.path.length) + 1;
            assertFalse(
                harness.verify(v.root, deeper, v.index, v.leaf, v.path), "deeper leaf count"
            );
            if (v.path.length > 0) {
                uint256 shallower = uint256(1) << (v.path.length - 1);
                assertFalse(
                    harness.verify(v.root, shallower, v.index, v.leaf, v.path),
                    "shallower leaf count"
                );
            }
            assertFalse(harness.verify(v.root, 0, v.index, v.leaf, v.path), "zero leaf count");
        }
    }

    function test_rustVectorsWrongRootFails() public view {
        Vector[] memory all = vectors();
        for (uint256 i; i < all.length; ++i) {
            Vector memory v = all[i];
            assertFalse(harness.verify(~v.root, v.leafCount, v.index, v.leaf, v.path), "other root");
        }
    }

    // ------------------------------------------------------------------ our own trees

    function test_depth() public view {
        assertEq(harness.depth(0), 0);
        assertEq(harness.depth(1), 0);
        assertEq(harness.depth(2), 1);
        assertEq(harness.depth(3), 2);
        assertEq(harness.depth(4), 2);
        assertEq(harness.depth(5), 3);
        assertEq(harness.depth(1 << 25), 25);
        assertEq(harness.depth((1 << 25) + 1), 26);
        assertEq(harness.depth(1 << 48), 48);
    }

    function testFuzz_depthIsCeilLog2(uint256 leafCount) public view {
        leafCount = bound(leafCount, 1, MerkleVerify.MAX_LEAF_COUNT);
        uint256 d = harness.depth(leafCount);
        assertGe(uint256(1) << d, leafCount, "2^depth covers the leaves");
        if (d > 0) assertLt(uint256(1) << (d - 1), leafCount, "depth is the least that does");
    }

    function test_singleLeafTreeIsTheLeafHash() public view {
        bytes memory leaf = TestTree.leafBytes(7);
        assertTrue(harness.verify(sha256(leaf), 1, 0, leaf, new bytes32[](0)));
        assertFalse(harness.verify(sha256(leaf), 1, 1, leaf, new bytes32[](0)), "index 1 of 1");
    }

    function test_rejectsLeafOfWrongSize() public view {
        bytes memory leaf = TestTree.leafBytes(7);
        bytes memory shortLeaf = new bytes(255);
        bytes memory longLeaf = bytes.concat(leaf, hex"00");
        assertFalse(harness.verify(sha256(leaf), 1, 0, shortLeaf, new bytes32[](0)));
        assertFalse(harness.verify(sha256(leaf), 1, 0, longLeaf, new bytes32[](0)));
    }

    function test_rejectsLeafCountAboveMax() public view {
        bytes memory leaf = TestTree.leafBytes(1);
        bytes32[] memory path = new bytes32[](49);
        assertFalse(harness.verify(bytes32(0), MerkleVerify.MAX_LEAF_COUNT + 1, 0, leaf, path));
    }

    /// @dev Every leaf of trees of 1..20 leaves (zero-padded) verifies at its position only.
    function test_everyLeafOfSmallTrees() public view {
        for (uint256 n = 1; n <= 20; ++n) {
            bytes32[][] memory levels = TestTree.build(n * 1000, n);
            bytes32 root = TestTree.root(levels);
            for (uint256 i; i < n; ++i) {
                bytes memory leaf = TestTree.leafBytes(n * 1000 + i);
                bytes32[] memory path = TestTree.path(levels, i);
                assertTrue(harness.verify(root, n, i, leaf, path), "leaf verifies");
                if (n > 1) {
                    assertFalse(
                        harness.verify(root, n, (i + 1) % n, leaf, path), "not at a neighbour"
                    );
                }
            }
        }
    }

    /// @dev Sorted-pair hashing (OpenZeppelin's MerkleProof) would accept a swapped pair;
    /// positional hashing does not.
    function test_positionIsBound() public view {
        bytes32[][] memory levels = TestTree.build(42, 2);
        bytes32 root = TestTree.root(levels);
        bytes memory leaf0 = TestTree.leafBytes(42);
        bytes32[] memory path = TestTree.path(levels, 0);
        assertTrue(harness.verify(root, 2, 0, leaf0, path));
        assertFalse(harness.verify(root, 2, 1, leaf0, path));
    }

    /// @dev An inner node cannot pose as a leaf: the level-1 node's 64 preimage bytes are not a
    /// 256-byte leaf, and a path one shorter fails the depth check.
    function test_innerNodeCannotPoseAsLeaf() public view {
        bytes32[][] memory levels = TestTree.build(9, 8);
        bytes32 root = TestTree.root(levels);
        bytes memory fakeLeaf = bytes.concat(levels[0][0], levels[0][1]);
        bytes32[] memory shortPath = new bytes32[](2);
        shortPath[0] = levels[1][1];
        shortPath[1] = levels[2][1];
        assertEq(sha256(fakeLeaf), levels[1][0]);
        assertFalse(harness.verify(root, 8, 0, fakeLeaf, shortPath));
    }

    function testFuzz_randomTrees(uint256 seed, uint256 leafCount, uint256 index, uint256 flip)
        public
        view
    {
        leafCount = bound(leafCount, 1, 40);
        index = bound(index, 0, leafCount - 1);
        bytes32[][] memory levels = TestTree.build(seed % 1e30, leafCount);
        bytes32 root = TestTree.root(levels);
        bytes memory leaf = TestTree.leafBytes(seed % 1e30 + index);
        bytes32[] memory path = TestTree.path(levels, index);
        assertEq(harness.computeRoot(index, leaf, path), root);
        assertTrue(harness.verify(root, leafCount, index, leaf, path));
        flip = bound(flip, 0, 256 * 8 - 1);
        leaf[flip / 8] = bytes1(uint8(leaf[flip / 8]) ^ uint8(1 << (flip % 8)));
        assertFalse(harness.verify(root, leafCount, index, leaf, path), "any flipped bit fails");
    }

    function copy(bytes32[] memory a) internal pure returns (bytes32[] memory b) {
        b = new bytes32[](a.length);
        for (uint256 i; i < a.length; ++i) {
            b[i] = a[i];
        }
    }
}
