// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Marketplace} from "../src/Marketplace.sol";
import {PeriodClock} from "../src/PeriodClock.sol";
import {ProviderRegistry} from "../src/ProviderRegistry.sol";
import {IDealBook, StorageProofs} from "../src/StorageProofs.sol";
import {MarketTest, TestTree} from "./Base.t.sol";

contract StorageProofsTest is MarketTest {
    uint256 internal id;
    uint256 internal start;

    function setUp() public override {
        super.setUp();
        list(provider, ProviderRegistry.AcceptPolicy.Auto);
        id = openAuto(20);
        start = market.currentPeriod() + 1;
    }

    // ------------------------------------------------------------------ construction

    function test_constructorRejectsBadConfig() public {
        IDealBook book = IDealBook(address(market));
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.InvalidProofConfig.selector, 0, 1));
        deployProofs(book, registry, PERIOD, 0, GRACE, 0, 1);
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.InvalidProofConfig.selector, 17, 1));
        deployProofs(book, registry, PERIOD, 0, GRACE, 17, 1);
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.InvalidProofConfig.selector, 1, 0));
        deployProofs(book, registry, PERIOD, 0, GRACE, 1, 0);
        vm.expectRevert(
            abi.encodeWithSelector(PeriodClock.InvalidClock.selector, 0, block.timestamp, 0)
        );
        deployProofs(book, registry, 0, 0, 0, 1, 1);
        vm.expectRevert(
            abi.encodeWithSelector(PeriodClock.InvalidClock.selector, 60, block.timestamp, 60)
        );
        deployProofs(book, registry, 60, 0, 60, 1, 1);
        vm.expectRevert(
            abi.encodeWithSelector(PeriodClock.InvalidClock.selector, 60, block.timestamp + 1, 0)
        );
        deployProofs(book, registry, 60, block.timestamp + 1, 0, 1, 1);
        StorageProofs past = deployProofs(book, registry, 60, block.timestamp - 600, 5, 16, 1);
        assertEq(past.currentPeriod(), 10);
    }

    function test_clock() public view {
        assertEq(proofs.GENESIS(), T0);
        assertEq(market.GENESIS(), T0);
        assertEq(proofs.periodStart(3), T0 + 3 * PERIOD);
        assertEq(proofs.proofDeadline(3), T0 + 4 * PERIOD + GRACE);
    }

    function test_periodBoundaries() public {
        vm.warp(T0 + PERIOD - 1);
        assertEq(proofs.currentPeriod(), 0);
        vm.warp(T0 + PERIOD);
        assertEq(proofs.currentPeriod(), 1);
        // During the grace the previous period is still open.
        assertEq(proofs.firstOpenPeriod(), 0);
        vm.warp(T0 + PERIOD + GRACE - 1);
        assertEq(proofs.firstOpenPeriod(), 0);
        vm.warp(T0 + PERIOD + GRACE);
        assertEq(proofs.firstOpenPeriod(), 1);
    }

    // ------------------------------------------------------------------ commit

    function test_commitTakesEffectAtTheNextBoundary() public {
        (bytes32 root,) = TestTree.uniform(1, 4);
        bytes32 digest = proofs.hashCommitment(id, root, 16, 1);
        bytes memory c = sign(CONSUMER_PK, digest);
        bytes memory p = sign(PROVIDER_PK, digest);
        vm.expectEmit(address(proofs));
        emit StorageProofs.DealCommitted(id, root, 16, 1, uint32(start));
        vm.prank(reporter); // anyone may relay a co-signed commitment
        proofs.commit(id, root, 16, 1, c, p);

        (, uint64 before,) = proofs.commitmentAt(id, start - 1);
        assertEq(before, 0);
        (bytes32 r, uint64 n, uint32 v) = proofs.commitmentAt(id, start);
        assertEq(r, root);
        assertEq(n, 16);
        assertEq(v, 1);
        StorageProofs.Commitment memory raw = proofs.commitmentOf(id);
        assertEq(raw.committedFrom, start);
        assertEq(raw.nextFrom, 0);
    }

    function test_partiesMaySkipTheirOwnSignature() public {
        bytes32 digest = proofs.hashCommitment(id, bytes32(uint256(1)), 1, 1);
        bytes memory p = sign(PROVIDER_PK, digest);
        vm.prank(consumer);
        proofs.commit(id, bytes32(uint256(1)), 1, 1, "", p);

        digest = proofs.hashCommitment(id, bytes32(uint256(2)), 1, 2);
        bytes memory c = sign(CONSUMER_PK, digest);
        vm.prank(provider);
        proofs.commit(id, bytes32(uint256(2)), 1, 2, c, "");
    }

    function test_quoteSignerCoSignsForTheProvider() public {
        ProviderRegistry.ListingTerms memory t = terms(ProviderRegistry.AcceptPolicy.Auto);
        t.quoteSigner = quoteSigner;
        vm.prank(provider);
        registry.update(t);
        bytes32 digest = proofs.hashCommitment(id, bytes32(uint256(1)), 1, 1);
        proofs.commit(
            id, bytes32(uint256(1)), 1, 1, sign(CONSUMER_PK, digest), sign(SIGNER_PK, digest)
        );
    }

    function test_commitRejectsBadSignatures() public {
        bytes32 digest = proofs.hashCommitment(id, bytes32(uint256(1)), 1, 1);
        bytes memory c = sign(CONSUMER_PK, digest);
        bytes memory p = sign(PROVIDER_PK, digest);
        bytes memory other = sign(PROVIDER2_PK, digest);
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.InvalidSignature.selector, consumer));
        proofs.commit(id, bytes32(uint256(1)), 1, 1, other, p);
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.InvalidSignature.selector, provider));
        proofs.commit(id, bytes32(uint256(1)), 1, 1, c, other);
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.InvalidSignature.selector, consumer));
        proofs.commit(id, bytes32(uint256(1)), 1, 1, "", p); // empty only works for the sender
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.InvalidSignature.selector, consumer));
        proofs.commit(id, bytes32(uint256(1)), 1, 2, c, p); // signed another version
    }

    function test_commitRejectsBadCommitments() public {
        vm.expectRevert(
            abi.encodeWithSelector(StorageProofs.InvalidCommitment.selector, bytes32(0), 1)
        );
        proofs.commit(id, 0, 1, 1, "", "");
        vm.expectRevert(
            abi.encodeWithSelector(StorageProofs.InvalidCommitment.selector, bytes32(uint256(1)), 0)
        );
        proofs.commit(id, bytes32(uint256(1)), 0, 1, "", "");
        uint64 tooMany = uint64((1 << 48) + 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                StorageProofs.InvalidCommitment.selector, bytes32(uint256(1)), tooMany
            )
        );
        proofs.commit(id, bytes32(uint256(1)), tooMany, 1, "", "");
        // 30 GiB of capacity holds exactly 30 * 2^22 leaves of 256 bytes.
        uint64 full = uint64(30 * GIB / 256);
        vm.expectRevert(
            abi.encodeWithSelector(
                StorageProofs.CommitmentExceedsCapacity.selector, full + 1, 30 * GIB
            )
        );
        proofs.commit(id, bytes32(uint256(1)), full + 1, 1, "", "");
        commitAs(id, bytes32(uint256(1)), full, 1);
    }

    function test_commitRequiresARunningDeal() public {
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.DealNotRunning.selector, 999, 0));
        proofs.commit(999, bytes32(uint256(1)), 1, 1, "", "");

        vm.prank(consumer);
        uint256 proposed =
            market.proposeDeal(provider, uint64(GIB), 5, uint96(UNIT), uint32(start + 1), NODE);
        vm.expectRevert(
            abi.encodeWithSelector(
                StorageProofs.DealNotRunning.selector,
                proposed,
                uint8(Marketplace.DealState.Proposed)
            )
        );
        proofs.commit(proposed, bytes32(uint256(1)), 1, 1, "", "");
    }

    function test_versionsStrictlyIncrease() public {
        commitAs(id, bytes32(uint256(1)), 1, 5);
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.StaleVersion.selector, 5, 5));
        proofs.commit(id, bytes32(uint256(2)), 1, 5, "", "");
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.StaleVersion.selector, 4, 5));
        proofs.commit(id, bytes32(uint256(2)), 1, 4, "", "");
        warpTo(start, GRACE);
        commitAs(id, bytes32(uint256(2)), 1, 9); // pending from start + 1
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.StaleVersion.selector, 7, 9));
        proofs.commit(id, bytes32(uint256(3)), 1, 7, "", "");
    }

    function test_commitBeforeTheDealStartsTakesEffectAtItsStart() public {
        vm.prank(consumer);
        uint256 later =
            market.proposeDeal(provider, uint64(GIB), 5, uint96(UNIT), uint32(start + 5), NODE);
        vm.prank(provider);
        market.acceptDeal(later);
        vm.expectEmit(address(proofs));
        emit StorageProofs.DealCommitted(later, bytes32(uint256(1)), 1, 1, uint32(start + 5));
        commitAs(later, bytes32(uint256(1)), 1, 1);
    }

    function test_commitTooLateReverts() public {
        uint256 end = deal(id).end;
        warpTo(end - 1, 0);
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.DealEnding.selector, id, end, end));
        proofs.commit(id, bytes32(uint256(1)), 1, 1, "", "");
    }

    function test_commitmentLifecycle() public {
        bytes32 r1 = bytes32(uint256(1));
        bytes32 r2 = bytes32(uint256(2));
        bytes32 r3 = bytes32(uint256(3));
        bytes32 r4 = bytes32(uint256(4));
        // Two commitments in the same period: the second replaces the first before it takes effect.
        commitAs(id, r1, 1, 1);
        commitAs(id, r2, 2, 2);
        (bytes32 r,,) = proofs.commitmentAt(id, start);
        assertEq(r, r2);

        // In effect from `start`; the next one is pending from `start + 1`.
        warpTo(start, GRACE);
        commitAs(id, r3, 3, 3);
        (r,,) = proofs.commitmentAt(id, start);
        assertEq(r, r2);
        (r,,) = proofs.commitmentAt(id, start + 1);
        assertEq(r, r3);
        // Still in `start`: a newer one replaces the pending one.
        commitAs(id, r4, 4, 4);
        (r,,) = proofs.commitmentAt(id, start + 1);
        assertEq(r, r4);
        (bytes32 latest,, uint32 v) = proofs.latestCommitment(id);
        assertEq(latest, r4);
        assertEq(v, 4);

        // In the grace after `start`, r2 may still prove `start` and r4 governs `start + 1`:
        // a new commitment would have to drop r2, so it waits.
        warpTo(start + 1, GRACE - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                StorageProofs.CommitmentInTransition.selector, id, proofs.proofDeadline(start)
            )
        );
        proofs.commit(id, bytes32(uint256(5)), 5, 5, "", "");

        // After the grace r4 is promoted and the new one is pending.
        warpTo(start + 1, GRACE);
        commitAs(id, bytes32(uint256(5)), 5, 5);
        StorageProofs.Commitment memory c = proofs.commitmentOf(id);
        assertEq(c.root, r4);
        assertEq(c.leafCount, 4);
        assertEq(c.version, 4);
        assertEq(c.committedFrom, start, "first committed period never moves");
        assertEq(c.nextRoot, bytes32(uint256(5)));
        assertEq(c.nextFrom, start + 2);
    }

    // ------------------------------------------------------------------ seeds

    function test_seedLifecycle() public {
        warpTo(start, 0);
        vm.expectRevert(
            abi.encodeWithSelector(StorageProofs.PeriodNotStarted.selector, start + 1, start)
        );
        proofs.anchorSeed(start + 1);
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.SeedUnavailable.selector, start, 0));
        proofs.fixSeed(start);
        assertEq(proofs.seedOf(start), 0);

        uint256 anchor = block.number + LOOKAHEAD;
        vm.expectEmit(address(proofs));
        emit StorageProofs.SeedAnchored(start, anchor);
        assertEq(proofs.anchorSeed(start), anchor);
        assertEq(proofs.seedAnchorOf(start), anchor);
        vm.expectRevert(
            abi.encodeWithSelector(StorageProofs.SeedAnchorLive.selector, start, anchor)
        );
        proofs.anchorSeed(start);
        vm.roll(anchor); // the anchor block is the current one: its hash is not known yet
        vm.expectRevert(
            abi.encodeWithSelector(StorageProofs.SeedUnavailable.selector, start, anchor)
        );
        proofs.fixSeed(start);
        assertEq(proofs.seedOf(start), 0);

        vm.roll(anchor + 1);
        vm.expectRevert(
            abi.encodeWithSelector(StorageProofs.SeedAnchorLive.selector, start, anchor)
        );
        proofs.anchorSeed(start);
        bytes32 expected =
            keccak256(abi.encode(blockhash(anchor), start, block.chainid, address(proofs)));
        assertEq(proofs.seedOf(start), expected);
        vm.expectEmit(address(proofs));
        emit StorageProofs.SeedFixed(start, expected);
        assertEq(proofs.fixSeed(start), expected);
        assertEq(proofs.fixSeed(start), expected, "fixing again returns the same seed");
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.SeedAlreadyFixed.selector, start));
        proofs.anchorSeed(start);

        // Once fixed, the block hash expiring changes nothing.
        vm.roll(anchor + 10_000);
        assertEq(proofs.seedOf(start), expected);
    }

    function test_expiredAnchorCanBeReanchored() public {
        warpTo(start, 0);
        uint256 anchor = proofs.anchorSeed(start);
        vm.roll(anchor + 257); // blockhash() no longer serves it (no EIP-2935 history here)
        vm.expectRevert(
            abi.encodeWithSelector(StorageProofs.SeedUnavailable.selector, start, anchor)
        );
        proofs.fixSeed(start);
        uint256 again = proofs.anchorSeed(start);
        assertEq(again, block.number + LOOKAHEAD);
        vm.roll(again + 1);
        assertEq(
            proofs.fixSeed(start),
            keccak256(abi.encode(blockhash(again), start, block.chainid, address(proofs)))
        );
    }

    function test_anchorAfterTheWindowReverts() public {
        closeThrough(start);
        vm.expectRevert(
            abi.encodeWithSelector(
                StorageProofs.ProofWindowClosed.selector, start, proofs.proofDeadline(start)
            )
        );
        proofs.anchorSeed(start);
    }

    // ------------------------------------------------------------------ proofs

    /// @dev A real positional tree of 12 leaves (not a power of two): every challenged leaf is
    /// proven at its own index.
    function test_submitProofsOverARealTree() public {
        bytes32[][] memory levels = TestTree.build(777, 12);
        commitAs(id, TestTree.root(levels), 12, 1);
        warpTo(start, 0);
        fixSeed(start);
        uint256[] memory indexes = proofs.challengeIndexes(id, start);
        assertEq(indexes.length, K);
        bytes32 seed = proofs.seedOf(start);
        bytes memory leaves;
        bytes32[] memory siblings = new bytes32[](K * 4);
        for (uint256 i; i < K; ++i) {
            assertEq(
                indexes[i], uint256(keccak256(abi.encode(seed, id, i))) % 12, "challenge formula"
            );
            leaves = bytes.concat(leaves, TestTree.leafBytes(777 + indexes[i]));
            bytes32[] memory path = TestTree.path(levels, indexes[i]);
            for (uint256 l; l < 4; ++l) {
                siblings[i * 4 + l] = path[l];
            }
        }
        StorageProofs.DealProof[] memory batch = new StorageProofs.DealProof[](1);
        batch[0] = StorageProofs.DealProof({dealId: id, leaves: leaves, siblings: siblings});
        uint256[] memory ids = new uint256[](1);
        ids[0] = id;
        vm.expectEmit(address(proofs));
        emit StorageProofs.ProofsSubmitted(start, reporter, ids);
        vm.prank(reporter); // anyone may relay
        assertEq(proofs.submitProofs(start, batch), 1);
        assertTrue(proofs.isProven(id, start));
        assertFalse(proofs.isProven(id, start + 1));
        (uint256 committedFrom, uint256 word) = proofs.provenWord(id, start >> 8);
        assertEq(committedFrom, start);
        assertEq(word, uint256(1) << (start & 255));

        // A leaf proven at another index fails.
        bytes memory swapped = bytes.concat(TestTree.leafBytes(777 + (indexes[0] + 1) % 12));
        for (uint256 i = 1; i < K; ++i) {
            swapped = bytes.concat(swapped, TestTree.leafBytes(777 + indexes[i]));
        }
        batch[0].leaves = swapped;
        warpTo(start + 1, GRACE);
        fixSeed(start + 1);
        // (the challenges of start + 1 differ, so rebuild them; then swap the first leaf)
        indexes = proofs.challengeIndexes(id, start + 1);
        leaves = "";
        for (uint256 i; i < K; ++i) {
            uint256 leafIndex = i == 0 ? (indexes[0] + 1) % 12 : indexes[i];
            leaves = bytes.concat(leaves, TestTree.leafBytes(777 + leafIndex));
            bytes32[] memory path = TestTree.path(levels, indexes[i]);
            for (uint256 l; l < 4; ++l) {
                siblings[i * 4 + l] = path[l];
            }
        }
        batch[0] = StorageProofs.DealProof({dealId: id, leaves: leaves, siblings: siblings});
        vm.expectRevert(
            abi.encodeWithSelector(StorageProofs.InvalidProof.selector, id, 0, indexes[0])
        );
        proofs.submitProofs(start + 1, batch);
    }

    function test_duplicateProofsAreSkipped() public {
        commitUniform(id, 6, 1);
        warpTo(start, 0);
        fixSeed(start);
        proveUniform(id, 6, start);
        StorageProofs.DealProof[] memory batch = new StorageProofs.DealProof[](2);
        batch[0] = uniformProof(id, 6, K);
        batch[1] = uniformProof(id, 6, K);
        vm.expectEmit(address(proofs));
        emit StorageProofs.ProofsSubmitted(start, address(this), new uint256[](0));
        assertEq(proofs.submitProofs(start, batch), 0);
    }

    function test_batchOfManyDeals() public {
        uint256[] memory ids = new uint256[](5);
        ids[0] = id;
        commitUniform(id, 5, 1);
        for (uint256 i = 1; i < 5; ++i) {
            ids[i] = openAuto(20);
            commitUniform(ids[i], 5 + i, 1);
        }
        warpTo(start, 0);
        fixSeed(start);
        StorageProofs.DealProof[] memory batch = new StorageProofs.DealProof[](6);
        for (uint256 i; i < 5; ++i) {
            batch[i] = uniformProof(ids[i], 5 + i, K);
        }
        batch[5] = uniformProof(ids[2], 7, K); // a duplicate inside the batch is skipped too
        vm.expectEmit(address(proofs));
        emit StorageProofs.ProofsSubmitted(start, address(this), ids);
        assertEq(proofs.submitProofs(start, batch), 5);
        for (uint256 i; i < 5; ++i) {
            assertTrue(proofs.isProven(ids[i], start));
        }
    }

    function test_oneBadProofRevertsTheBatch() public {
        uint256 other = openAuto(20);
        commitUniform(id, 5, 1);
        commitUniform(other, 5, 1);
        warpTo(start, 0);
        fixSeed(start);
        StorageProofs.DealProof[] memory batch = new StorageProofs.DealProof[](2);
        batch[0] = uniformProof(id, 5, K);
        batch[1] = uniformProof(id, 5, K); // id's proof offered for `other`
        batch[1].dealId = other;
        uint256 index = proofs.challengeIndexes(other, start)[0];
        vm.expectRevert(
            abi.encodeWithSelector(StorageProofs.InvalidProof.selector, other, 0, index)
        );
        proofs.submitProofs(start, batch);
    }

    function test_proofLengthMustMatchKAndDepth() public {
        commitUniform(id, 5, 1);
        warpTo(start, 0);
        fixSeed(start);
        StorageProofs.DealProof[] memory batch = new StorageProofs.DealProof[](1);
        batch[0] = uniformProof(id, 5, K - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                StorageProofs.InvalidProofLength.selector, id, (K - 1) * 256, (K - 1) * 5
            )
        );
        proofs.submitProofs(start, batch);
        // A path one level short (as for a tree of half the leaves) is refused.
        batch[0] = uniformProof(id, 4, K);
        vm.expectRevert(
            abi.encodeWithSelector(StorageProofs.InvalidProofLength.selector, id, K * 256, K * 4)
        );
        proofs.submitProofs(start, batch);
        batch[0] = uniformProof(id, 6, K);
        vm.expectRevert(
            abi.encodeWithSelector(StorageProofs.InvalidProofLength.selector, id, K * 256, K * 6)
        );
        proofs.submitProofs(start, batch);
    }

    function test_noCommitmentNoProof() public {
        warpTo(start, 0);
        fixSeed(start);
        StorageProofs.DealProof[] memory batch = new StorageProofs.DealProof[](1);
        batch[0] = uniformProof(id, 5, K);
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.NoCommitment.selector, id, start));
        proofs.submitProofs(start, batch);
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.NoCommitment.selector, id, start));
        proofs.challengeIndexes(id, start);
    }

    function test_proofNeedsTheSeed() public {
        commitUniform(id, 5, 1);
        warpTo(start, 0);
        StorageProofs.DealProof[] memory batch = new StorageProofs.DealProof[](1);
        batch[0] = uniformProof(id, 5, K);
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.SeedUnavailable.selector, start, 0));
        proofs.submitProofs(start, batch);
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.SeedUnavailable.selector, start, 0));
        proofs.challengeIndexes(id, start);
    }

    function test_proofWindowEdges() public {
        commitUniform(id, 5, 1);
        warpTo(start, 0);
        proofs.anchorSeed(start);
        vm.roll(block.number + LOOKAHEAD + 1);
        // Last second of the grace: accepted (and this first proof fixes the seed).
        vm.warp(proofs.proofDeadline(start) - 1);
        proveUniform(id, 5, start);
        assertTrue(proofs.isProven(id, start));
        // At the deadline: refused.
        uint256 deadline = proofs.proofDeadline(start + 1);
        vm.warp(deadline);
        StorageProofs.DealProof[] memory batch = new StorageProofs.DealProof[](1);
        batch[0] = uniformProof(id, 5, K);
        vm.expectRevert(
            abi.encodeWithSelector(StorageProofs.ProofWindowClosed.selector, start + 1, deadline)
        );
        proofs.submitProofs(start + 1, batch);
    }

    function test_lateProofUsesTheCommitmentOfItsPeriod() public {
        commitUniform(id, 5, 1); // effective from `start`
        warpTo(start, GRACE);
        commitUniform(id, 7, 2); // effective from `start + 1`
        warpTo(start + 1, 0);
        fixSeed(start);
        fixSeed(start + 1);
        // In the grace after `start`, `start` is proven against depth 5 and `start + 1` against 7.
        StorageProofs.DealProof[] memory batch = new StorageProofs.DealProof[](1);
        batch[0] = uniformProof(id, 7, K);
        vm.expectRevert(
            abi.encodeWithSelector(StorageProofs.InvalidProofLength.selector, id, K * 256, K * 7)
        );
        proofs.submitProofs(start, batch);
        proveUniform(id, 5, start);
        proveUniform(id, 7, start + 1);
    }

    function test_inheritOnlyByTheMarketplace() public {
        vm.expectRevert(
            abi.encodeWithSelector(StorageProofs.ProofsUnauthorized.selector, address(this))
        );
        proofs.inherit(id, id + 1, start);
    }

    function test_hashCommitmentIsEip712() public view {
        bytes32 domain = keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak256("dBytes StorageProofs"),
                keccak256("1"),
                block.chainid,
                address(proofs)
            )
        );
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Commitment(uint256 dealId,bytes32 root,uint64 leafCount,uint32 version)"
                ),
                uint256(7),
                bytes32(uint256(8)),
                uint64(9),
                uint32(10)
            )
        );
        assertEq(
            proofs.hashCommitment(7, bytes32(uint256(8)), 9, 10),
            keccak256(abi.encodePacked("\x19\x01", domain, structHash))
        );
    }
}
