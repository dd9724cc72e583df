// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Marketplace} from "../src/Marketplace.sol";
import {ProviderRegistry} from "../src/ProviderRegistry.sol";
import {StorageProofs} from "../src/StorageProofs.sol";
import {MarketTest} from "./Base.t.sol";

/// @notice Settlement, slashing, failure, exits and repair.
contract SettlementTest is MarketTest {
    uint256 internal constant CAP = 30 * GIB;
    uint256 internal constant R = UNIT / 24; // the rate of a 30 GiB deal at 1 token per GiB-month
    uint256 internal constant D = 5; // committed tree depth

    function setUp() public override {
        super.setUp();
        list(provider, ProviderRegistry.AcceptPolicy.Auto);
        list(provider2, ProviderRegistry.AcceptPolicy.SignedQuote);
    }

    /// @dev An auto deal of `periods`, committed before it starts.
    function committed(uint32 periods) internal returns (uint256 id, uint256 start) {
        id = openAuto(periods);
        start = deal(id).settledTo;
        commitUniform(id, D, 1);
    }

    function held(uint256 paid) internal pure returns (uint256) {
        return paid / R * (R * 2000 / 10_000);
    }

    function slashOf(uint256 collateral) internal pure returns (uint256) {
        uint256 byRate = 3 * R;
        uint256 byCollateral = collateral * 500 / 10_000;
        return byRate > byCollateral ? byRate : byCollateral;
    }

    function reward(uint256 slash) internal pure returns (uint256) {
        uint256 share = slash * 1000 / 10_000;
        return share < R ? share : R;
    }

    // ------------------------------------------------------------------ paying

    function test_periodsBeforeAnyCommitmentArePaid() public {
        uint256 id = openAuto(4);
        uint256 start = deal(id).settledTo;
        closeThrough(start + 3);
        vm.expectEmit(address(market));
        emit Marketplace.Settled(id, uint32(start), uint32(start + 4), 4 * R, held(4 * R), 0, 0, 0);
        vm.expectEmit(address(market));
        emit Marketplace.DealClosed(id, held(4 * R), 8 * R, 0);
        assertEq(market.settle(id, 10), 4);
        assertEq(market.credit(provider), 4 * R, "all pay, held-back included, at close");
        assertEq(uint8(deal(id).state), uint8(Marketplace.DealState.Closed));
        (, uint128 locked) = registry.poolOf(provider);
        assertEq(locked, 0);
        (,, uint64 used, uint32 live) = registry.listingOf(provider);
        assertEq(used, 0);
        assertEq(live, 0);
    }

    function test_provenPeriodsPayWithHoldBack() public {
        (uint256 id, uint256 start) = committed(4);
        for (uint256 p = start; p < start + 4; ++p) {
            provePeriod(id, D, p);
        }
        closeThrough(start + 1);
        market.settle(id, 10);
        assertEq(market.credit(provider), 2 * R - held(2 * R));
        assertEq(deal(id).heldBack, held(2 * R));
        assertEq(market.escrowOf(id), 2 * R);
        closeThrough(start + 3);
        vm.prank(provider);
        market.settle(id, 10);
        assertEq(market.credit(provider), 4 * R, "held back pay released at the end");
        assertEq(market.credit(consumer), 0);
        assertEq(token.balanceOf(address(market)), 4 * R);
    }

    function test_relayedProofsStillPayTheProvider() public {
        (uint256 id, uint256 start) = committed(1);
        warpTo(start, 0);
        ensureSeed(start);
        vm.startPrank(reporter);
        proveUniform(id, D, start);
        vm.stopPrank();
        closeThrough(start);
        vm.prank(reporter);
        market.settle(id, 1);
        assertEq(market.credit(provider), R);
        assertEq(market.credit(reporter), 0);
    }

    function test_missedPeriodRefundsAndSlashes() public {
        (uint256 id, uint256 start) = committed(20);
        provePeriod(id, D, start);
        provePeriod(id, D, start + 1);
        provePeriod(id, D, start + 3); // start + 2 missed
        closeThrough(start + 3);
        uint256 slash = slashOf(40 * R);
        assertEq(slash, 3 * R, "3 x rate beats 5% of 2 x 20 x rate");
        uint256 r = reward(slash);
        vm.expectEmit(address(market));
        emit Marketplace.ProofMissed(id, start + 2, reporter);
        vm.expectEmit(address(market));
        emit Marketplace.Settled(
            id, uint32(start), uint32(start + 4), 3 * R, held(3 * R), R + slash - r, slash, r
        );
        vm.prank(reporter);
        market.settle(id, 100);
        assertEq(market.credit(provider), 3 * R - held(3 * R));
        assertEq(market.credit(consumer), R + slash - r);
        assertEq(market.credit(reporter), r);
        Marketplace.Deal memory d = deal(id);
        assertEq(d.slashed, slash);
        assertEq(d.missedRun, 0);
        assertEq(d.missedTotal, 1);
        (uint128 deposited, uint128 locked) = registry.poolOf(provider);
        assertEq(deposited, 100_000 * UNIT - slash);
        assertEq(locked, 40 * R - slash);
        assertEq(token.balanceOf(address(market)), 20 * R + slash);
    }

    function test_bigCollateralSlashesFivePercent() public {
        (uint256 id, uint256 start) = committed(200);
        closeThrough(start);
        market.settle(id, 1);
        assertEq(deal(id).slashed, 400 * R * 500 / 10_000, "5% of 2 x 200 x rate beats 3 x rate");
    }

    function test_providerSettlingItsOwnMissGetsNoReporterShare() public {
        (uint256 id, uint256 start) = committed(20);
        closeThrough(start);
        vm.expectEmit(address(market));
        emit Marketplace.ProofMissed(id, start, address(0));
        vm.prank(provider);
        market.settle(id, 1);
        assertEq(market.credit(consumer), R + 3 * R);
        assertEq(market.credit(provider), 0);
    }

    function test_slashStopsAtTheCollateralLeft() public {
        (uint256 id, uint256 start) = committed(2);
        closeThrough(start + 1);
        vm.expectEmit(address(market));
        emit Marketplace.DealClosed(id, 0, 0, 0);
        market.settle(id, 2);
        Marketplace.Deal memory d = deal(id);
        assertEq(d.slashed, 4 * R, "3R, then the 1R left");
        assertEq(d.collateral, 4 * R);
        assertEq(uint8(d.state), uint8(Marketplace.DealState.Closed));
        (uint128 deposited, uint128 locked) = registry.poolOf(provider);
        assertEq(locked, 0);
        assertEq(deposited, 100_000 * UNIT - 4 * R);
    }

    function test_settleIsBoundedAndLazy() public {
        (uint256 id, uint256 start) = committed(10);
        warpTo(start, 0);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NothingToSettle.selector, id, start));
        market.settle(id, 10);
        // The grace still protects the period: one second before the deadline, nothing to settle.
        vm.warp(market.proofDeadline(start) - 1);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NothingToSettle.selector, id, start));
        market.settle(id, 10);
        provePeriod(id, D, start + 1);
        provePeriod(id, D, start + 2);
        provePeriod(id, D, start + 3);
        closeThrough(start + 3);
        assertEq(market.settle(id, 1), 1); // only `start` (missed)
        assertEq(deal(id).settledTo, start + 1);
        assertEq(market.settle(id, 2), 2);
        assertEq(market.settle(id, 10), 1);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NothingToSettle.selector, id, start + 4));
        market.settle(id, 10);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NothingToSettle.selector, id, start + 4));
        market.settle(id, 0);
    }

    function test_settleNeedsARunningDeal() public {
        uint32 s = uint32(market.currentPeriod() + 1);
        vm.prank(consumer);
        uint256 id = market.proposeDeal(provider, uint64(CAP), 5, uint96(UNIT), s, NODE);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.InvalidDealState.selector, id, Marketplace.DealState.Proposed
            )
        );
        market.settle(id, 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.InvalidDealState.selector, 99, Marketplace.DealState.None
            )
        );
        market.settle(99, 1);
    }

    function test_proofsAfterTheDealEndChangeNothing() public {
        (uint256 id, uint256 start) = committed(2);
        provePeriod(id, D, start);
        provePeriod(id, D, start + 1);
        closeThrough(start + 1);
        market.settle(id, 10);
        uint256 balance = token.balanceOf(address(market));
        provePeriod(id, D, start + 2); // accepted by the proof contract: possession is possession
        assertTrue(proofs.isProven(id, start + 2));
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.InvalidDealState.selector, id, Marketplace.DealState.Closed
            )
        );
        market.settle(id, 10);
        assertEq(token.balanceOf(address(market)), balance);
    }

    // ------------------------------------------------------------------ reportMissed

    function test_reportMissed() public {
        (uint256 id, uint256 start) = committed(20);
        provePeriod(id, D, start);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.PeriodNotMissed.selector, id, start + 1));
        vm.prank(reporter);
        market.reportMissed(id, start + 1); // still open
        closeThrough(start + 2);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.PeriodNotMissed.selector, id, start));
        vm.prank(reporter);
        market.reportMissed(id, start); // proven
        vm.expectRevert(abi.encodeWithSelector(Marketplace.PeriodNotMissed.selector, id, start + 3));
        vm.prank(reporter);
        market.reportMissed(id, start + 3); // not closed yet
        vm.prank(reporter);
        assertEq(
            market.reportMissed(id, start + 2), 3, "settles everything up to the reported period"
        );
        assertEq(deal(id).missedTotal, 2);
        assertEq(market.credit(reporter), 2 * reward(3 * R));
        vm.expectRevert(abi.encodeWithSelector(Marketplace.PeriodNotMissed.selector, id, start + 1));
        market.reportMissed(id, start + 1); // already settled
    }

    function test_stateGuards() public {
        (uint256 id, uint256 start) = committed(2);
        vm.prank(consumer);
        market.terminate(id);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.InvalidDealState.selector, id, Marketplace.DealState.Terminating
            )
        );
        vm.prank(consumer);
        market.renew(id, 1, 0, "");
        closeThrough(start + 1);
        market.settle(id, 10);
        assertEq(uint8(deal(id).state), uint8(Marketplace.DealState.Closed));
        bytes memory closed = abi.encodeWithSelector(
            Marketplace.InvalidDealState.selector, id, Marketplace.DealState.Closed
        );
        vm.expectRevert(closed);
        vm.prank(provider);
        market.abandon(id);
        vm.expectRevert(closed);
        market.reportMissed(id, start);
        vm.expectRevert(closed);
        vm.prank(consumer);
        market.terminate(id);
        vm.expectRevert(closed);
        vm.prank(provider);
        market.exitGracefully(id);
    }

    function test_reportMissedNeedsACommitment() public {
        uint256 id = openAuto(5);
        uint256 start = deal(id).settledTo;
        closeThrough(start);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.PeriodNotMissed.selector, id, start));
        market.reportMissed(id, start);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.PeriodNotMissed.selector, id, start + 5));
        market.reportMissed(id, start + 5); // past the end
    }

    // ------------------------------------------------------------------ failure

    function test_threeConsecutiveMissesFailTheDeal() public {
        (uint256 id, uint256 start) = committed(20);
        closeThrough(start + 5);
        uint256 s = 3 * R;
        uint256 repair = 40 * R / 10;
        uint256 left = 40 * R - 3 * s;
        vm.expectEmit(address(market));
        emit Marketplace.DealFailed(id, uint32(start + 2), false, 17 * R, 0, left, repair);
        vm.prank(reporter);
        assertEq(market.settle(id, 100), 3, "stops at the failure");
        Marketplace.Deal memory d = deal(id);
        assertEq(uint8(d.state), uint8(Marketplace.DealState.Failed));
        assertEq(d.end, start + 3);
        assertEq(d.settledTo, start + 3);
        assertEq(d.termEnd, start + 20);
        assertEq(d.slashed, d.collateral, "all collateral taken");
        assertEq(d.repairReward, repair);
        assertEq(market.escrowOf(id), 0);
        assertEq(market.credit(reporter), 3 * reward(s));
        assertEq(market.credit(consumer), 3 * R + 3 * (s - reward(s)) + 17 * R + (left - repair));
        (uint128 deposited, uint128 locked) = registry.poolOf(provider);
        assertEq(locked, 0);
        assertEq(deposited, 100_000 * UNIT - 40 * R);
        (,, uint64 used, uint32 live) = registry.listingOf(provider);
        assertEq(used, 0);
        assertEq(live, 0);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.InvalidDealState.selector, id, Marketplace.DealState.Failed
            )
        );
        market.settle(id, 1);
    }

    function test_tenMissesInAllFailTheDeal() public {
        (uint256 id, uint256 start) = committed(30);
        for (uint256 i; i < 9; ++i) {
            provePeriod(id, D, start + 2 * i + 1); // miss, prove, miss, prove, ...
        }
        closeThrough(start + 25);
        market.settle(id, 100);
        Marketplace.Deal memory d = deal(id);
        assertEq(uint8(d.state), uint8(Marketplace.DealState.Failed));
        assertEq(d.settledTo, start + 19, "the tenth miss, at start + 18, fails it");
        assertEq(d.missedTotal, 10);
    }

    function test_heldBackIsForfeitedOnFailure() public {
        (uint256 id, uint256 start) = committed(20);
        provePeriod(id, D, start);
        provePeriod(id, D, start + 1);
        closeThrough(start + 4);
        market.settle(id, 100);
        assertEq(uint8(deal(id).state), uint8(Marketplace.DealState.Failed));
        assertEq(deal(id).heldBack, 0);
        assertEq(
            market.credit(provider), 2 * R - held(2 * R), "the held-back fifth went to the consumer"
        );
    }

    function test_failureDuringNotice() public {
        (uint256 id, uint256 start) = committed(20);
        vm.prank(consumer);
        market.terminate(id); // ends at start + 1 (not started yet: one period)
        closeThrough(start);
        market.settle(id, 10);
        assertEq(
            uint8(deal(id).state), uint8(Marketplace.DealState.Closed), "one miss, then the end"
        );
    }

    // ------------------------------------------------------------------ abandon

    function test_abandonForfeitsHeldBackAndTheRepairShare() public {
        (uint256 id, uint256 start) = committed(20);
        provePeriod(id, D, start);
        provePeriod(id, D, start + 1);
        provePeriod(id, D, start + 2);
        // `start` is closed but unsettled.
        vm.expectRevert(
            abi.encodeWithSelector(Marketplace.SettleFirst.selector, id, start, start + 1)
        );
        vm.prank(provider);
        market.abandon(id);
        closeThrough(start + 1);
        market.settle(id, 10);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotProvider.selector, id, consumer));
        vm.prank(consumer);
        market.abandon(id);
        uint256 repair = 40 * R / 10;
        vm.expectEmit(address(market));
        emit Marketplace.DealFailed(
            id, uint32(start + 2), true, 18 * R, held(2 * R), repair, repair
        );
        vm.prank(provider);
        market.abandon(id); // `start + 2` was proven but is still open: forfeited too
        Marketplace.Deal memory d = deal(id);
        assertEq(uint8(d.state), uint8(Marketplace.DealState.Failed));
        assertEq(d.termEnd, start + 20);
        assertEq(market.credit(consumer), 18 * R + held(2 * R));
        assertEq(market.credit(provider), 2 * R - held(2 * R));
        (uint128 deposited, uint128 locked) = registry.poolOf(provider);
        assertEq(locked, 0);
        assertEq(
            deposited, 100_000 * UNIT - repair, "the rest of the collateral is back in the pool"
        );
    }

    // ------------------------------------------------------------------ repair

    function repairQuote(uint256 parentId, uint32 periods)
        internal
        returns (ProviderRegistry.Quote memory q)
    {
        q = quote(provider2, uint64(CAP), periods, uint128(2 * periods * R));
        q.parentDealId = parentId;
        (q.root, q.leafCount,) = proofs.latestCommitment(parentId);
    }

    function failedDeal() internal returns (uint256 id, uint256 start) {
        (id, start) = committed(20);
        closeThrough(start + 2);
        market.settle(id, 10);
        assertEq(uint8(deal(id).state), uint8(Marketplace.DealState.Failed));
    }

    function test_reassignAFailedDeal() public {
        (uint256 parent, uint256 start) = failedDeal();
        uint256 childStart = market.currentPeriod() + 1;
        uint32 periods = uint32(start + 20 - childStart);
        ProviderRegistry.Quote memory q = repairQuote(parent, periods);
        bytes memory sig = signQuote(PROVIDER2_PK, q);
        uint256 credit = market.credit(consumer);
        uint256 escrow = periods * R;
        assertGt(credit, escrow, "the refunds cover the child's escrow");
        uint256 childId = market.nextDealId();
        vm.expectEmit(address(market));
        emit Marketplace.DealReassigned(parent, childId, provider2, 4 * R);
        vm.expectEmit(address(market));
        emit Marketplace.CreditSpent(consumer, childId, escrow);
        vm.prank(consumer);
        assertEq(market.reassign(parent, q, sig), childId);

        assertEq(uint8(deal(parent).state), uint8(Marketplace.DealState.Closed));
        assertEq(deal(parent).repairReward, 0);
        Marketplace.Deal memory c = deal(childId);
        assertEq(c.provider, provider2);
        assertEq(c.consumer, consumer);
        assertEq(c.consumerNodeId, NODE);
        assertEq(c.settledTo, childStart);
        assertEq(c.end, start + 20);
        assertEq(c.fillBy, childStart + FILL);
        assertEq(c.repairReward, 4 * R);
        assertEq(market.credit(consumer), credit - escrow);
        (bytes32 root, uint64 leafCount,) = proofs.commitmentAt(childId, childStart);
        assertEq(root, q.root);
        assertEq(leafCount, q.leafCount);

        // Filling: the first FILL periods may go unproven without a slash; the first proof
        // pays the repair reward.
        provePeriodOf(childId, parent, D, childStart + FILL);
        closeThrough(childStart + FILL);
        vm.expectEmit(address(market));
        emit Marketplace.RepairRewardPaid(childId, provider2, 4 * R);
        market.settle(childId, 10);
        c = deal(childId);
        assertEq(c.slashed, 0, "no slash while filling");
        assertEq(c.missedTotal, 0);
        assertEq(c.fillBy, 0);
        assertEq(c.repairReward, 0);
        assertEq(market.credit(provider2), 4 * R + R - held(R));
        // Filled: a miss now slashes.
        closeThrough(childStart + FILL + 1);
        market.settle(childId, 10);
        assertEq(deal(childId).missedTotal, 1);
    }

    function test_unfilledRepairDealSlashesAfterTheDeadline() public {
        (uint256 parent, uint256 start) = failedDeal();
        uint256 childStart = market.currentPeriod() + 1;
        ProviderRegistry.Quote memory q = repairQuote(parent, uint32(start + 20 - childStart));
        bytes memory sig = signQuote(PROVIDER2_PK, q);
        vm.prank(consumer);
        uint256 childId = market.reassign(parent, q, sig);
        closeThrough(childStart + FILL);
        market.settle(childId, 10);
        Marketplace.Deal memory c = deal(childId);
        assertEq(c.missedTotal, 1, "only the period past the deadline counts");
        assertEq(c.repairReward, 4 * R, "still earmarked");
        vm.expectRevert(
            abi.encodeWithSelector(Marketplace.PeriodNotMissed.selector, childId, childStart)
        );
        market.reportMissed(childId, childStart);
    }

    function test_repairRewardTravelsToTheNextRepair() public {
        (uint256 parent, uint256 start) = failedDeal();
        uint256 childStart = market.currentPeriod() + 1;
        ProviderRegistry.Quote memory q = repairQuote(parent, uint32(start + 20 - childStart));
        bytes memory sig = signQuote(PROVIDER2_PK, q);
        vm.prank(consumer);
        uint256 childId = market.reassign(parent, q, sig);
        // The repairer never delivers: after the fill deadline three misses fail it too.
        closeThrough(childStart + FILL + 2);
        market.settle(childId, 10);
        Marketplace.Deal memory c = deal(childId);
        assertEq(uint8(c.state), uint8(Marketplace.DealState.Failed));
        assertEq(c.repairReward, 4 * R + c.collateral / 10);
        // Closing it instead of repairing again hands the reward to the consumer.
        uint256 before = market.credit(consumer);
        vm.expectEmit(address(market));
        emit Marketplace.DealClosed(childId, 0, 0, c.repairReward);
        vm.prank(consumer);
        market.closeFailed(childId);
        assertEq(market.credit(consumer), before + c.repairReward);
    }

    function test_unclaimedRepairRewardReturnsAtClose() public {
        (uint256 parent, uint256 start) = failedDeal();
        uint256 childStart = market.currentPeriod() + 1;
        ProviderRegistry.Quote memory q = repairQuote(parent, uint32(start + 20 - childStart));
        bytes memory sig = signQuote(PROVIDER2_PK, q);
        vm.prank(consumer);
        uint256 childId = market.reassign(parent, q, sig);
        vm.prank(consumer);
        market.terminate(childId); // runs one period, within the fill window
        assertEq(deal(childId).end, childStart + 1);
        closeThrough(childStart);
        uint256 before = market.credit(consumer);
        market.settle(childId, 10);
        assertEq(uint8(deal(childId).state), uint8(Marketplace.DealState.Closed));
        assertEq(
            market.credit(consumer),
            before + R + 4 * R,
            "the unproven filling period and the reward"
        );
    }

    function test_reassignPullsWhatCreditDoesNotCover() public {
        (uint256 parent, uint256 start) = failedDeal();
        vm.prank(consumer);
        market.withdraw();
        uint256 childStart = market.currentPeriod() + 1;
        uint32 periods = uint32(start + 20 - childStart);
        ProviderRegistry.Quote memory q = repairQuote(parent, periods);
        bytes memory sig = signQuote(PROVIDER2_PK, q);
        uint256 balance = token.balanceOf(consumer);
        vm.prank(consumer);
        market.reassign(parent, q, sig);
        assertEq(token.balanceOf(consumer), balance - periods * R);
    }

    function test_reassignErrors() public {
        (uint256 id, uint256 start) = committed(20);
        ProviderRegistry.Quote memory q = repairQuote(id, 20);
        bytes memory sig = signQuote(PROVIDER2_PK, q);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.InvalidDealState.selector, id, Marketplace.DealState.Active
            )
        );
        vm.prank(consumer);
        market.reassign(id, q, sig);

        closeThrough(start + 2);
        market.settle(id, 10);
        uint32 periods = uint32(start + 20 - market.currentPeriod() - 1);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotConsumer.selector, id, provider2));
        vm.prank(provider2);
        market.reassign(id, q, sig);

        q = repairQuote(id, periods);
        q.parentDealId = id + 1;
        vm.expectRevert(abi.encodeWithSelector(Marketplace.QuoteMismatch.selector, id));
        vm.prank(consumer);
        market.reassign(id, q, sig);

        q = repairQuote(id, periods);
        q.capacityBytes = uint64(CAP + 1);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.QuoteMismatch.selector, id));
        vm.prank(consumer);
        market.reassign(id, q, sig);

        q = repairQuote(id, periods - 1);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.QuoteMismatch.selector, id));
        vm.prank(consumer);
        market.reassign(id, q, sig);

        q = repairQuote(id, periods);
        q.root = bytes32(uint256(123));
        sig = signQuote(PROVIDER2_PK, q);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.QuoteMismatch.selector, id));
        vm.prank(consumer);
        market.reassign(id, q, sig);

        q = repairQuote(id, periods);
        q.provider = provider;
        sig = signQuote(PROVIDER_PK, q);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.SameProvider.selector, provider));
        vm.prank(consumer);
        market.reassign(id, q, sig);

        q = repairQuote(id, periods);
        sig = signQuote(PROVIDER_PK, q); // not provider2's signature
        vm.expectRevert(
            abi.encodeWithSelector(ProviderRegistry.InvalidSignature.selector, provider2)
        );
        vm.prank(consumer);
        market.reassign(id, q, sig);

        warpTo(start + 19, 0); // only the last period of the term would be left: still fine
        q = repairQuote(id, 0);
        vm.warp(market.periodStart(start + 20) - 1);
        q.validUntil = uint64(block.timestamp);
        sig = signQuote(PROVIDER2_PK, q);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NothingToReassign.selector, id));
        vm.prank(consumer);
        market.reassign(id, q, sig);
    }

    function test_reassignNeedsACommitment() public {
        uint256 id = openAuto(20);
        vm.prank(provider);
        market.abandon(id);
        uint256 childStart = market.currentPeriod() + 1;
        ProviderRegistry.Quote memory q = quote(provider2, uint64(CAP), 20, uint128(40 * R));
        q.parentDealId = id;
        bytes memory sig = signQuote(PROVIDER2_PK, q);
        vm.expectRevert(abi.encodeWithSelector(StorageProofs.NoCommitment.selector, id, childStart));
        vm.prank(consumer);
        market.reassign(id, q, sig);
        // Nothing to repair: the consumer closes it.
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotConsumer.selector, id, provider));
        vm.prank(provider);
        market.closeFailed(id);
        vm.prank(consumer);
        market.closeFailed(id);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.InvalidDealState.selector, id, Marketplace.DealState.Closed
            )
        );
        vm.prank(consumer);
        market.closeFailed(id);
    }

    function test_handOverOnGracefulExit() public {
        (uint256 id, uint256 start) = committed(20);
        provePeriod(id, D, start);
        vm.prank(provider);
        market.exitGracefully(id);
        uint256 parentEnd = deal(id).end;
        assertEq(parentEnd, start + 1 + EXIT_NOTICE);
        ProviderRegistry.Quote memory q = repairQuote(id, uint32(start + 20 - parentEnd));
        bytes memory sig = signQuote(PROVIDER2_PK, q);
        vm.prank(consumer);
        uint256 childId = market.reassign(id, q, sig);
        assertEq(deal(childId).settledTo, parentEnd, "the child starts when the notice ends");
        assertEq(deal(childId).end, start + 20);
        assertEq(deal(childId).repairReward, 0);
        assertEq(uint8(deal(id).state), uint8(Marketplace.DealState.Exiting));
        assertEq(deal(id).termEnd, 0);
        // Handed over once only.
        q = repairQuote(id, uint32(start + 20 - parentEnd));
        sig = signQuote(PROVIDER2_PK, q);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NothingToReassign.selector, id));
        vm.prank(consumer);
        market.reassign(id, q, sig);
        // The exiting provider keeps proving through its notice and closes with its pay.
        for (uint256 p = start + 1; p < parentEnd; ++p) {
            provePeriod(id, D, p);
        }
        closeThrough(parentEnd - 1);
        market.settle(id, 100);
        assertEq(uint8(deal(id).state), uint8(Marketplace.DealState.Closed));
        assertEq(market.credit(provider), (parentEnd - start) * R);
    }
}
