// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Marketplace} from "../src/Marketplace.sol";
import {ProviderRegistry} from "../src/ProviderRegistry.sol";
import {MarketTest} from "./Base.t.sol";

/// @notice Fuzzed arithmetic: the rate, escrow, collateral, settlement, slashing and refunds,
/// each against a plain re-statement of the rule.
contract FuzzTest is MarketTest {
    uint256 internal constant D = 3;

    function setUp() public override {
        super.setUp();
        list(provider, ProviderRegistry.AcceptPolicy.Auto);
    }

    // ------------------------------------------------------------------ rate and escrow

    function testFuzz_rateRoundsDownOnce(uint96 price, uint64 capacity) public view {
        uint256 rate = market.rateFor(price, capacity);
        // price * capacity * period < 2^96 * 2^64 * 2^12: no overflow in plain arithmetic.
        uint256 numerator = uint256(price) * capacity * PERIOD;
        uint256 denominator = GIB * 30 days;
        assertLe(rate * denominator, numerator, "never rounds up");
        assertGt((rate + 1) * denominator, numerator, "rounds down by less than one unit");
    }

    function testFuzz_escrowIsExactlyRateTimesPeriods(uint64 capacity, uint32 periods, uint96 price)
        public
    {
        capacity = uint64(bound(capacity, 1 << 20, 1000 * GIB));
        periods = uint32(bound(periods, 1, 10_000));
        price = uint96(bound(price, UNIT, 1000 * UNIT));
        uint256 rate = market.rateFor(price, capacity);
        vm.assume(rate * periods * 2 <= 100_000 * UNIT); // within the provider's pool
        uint256 before = token.balanceOf(consumer);
        vm.prank(consumer);
        uint256 id = market.openDeal(provider, capacity, periods, price, NODE);
        Marketplace.Deal memory d = deal(id);
        assertEq(d.ratePerPeriod, rate);
        assertEq(before - token.balanceOf(consumer), rate * periods, "escrow pulled");
        assertEq(market.escrowOf(id), rate * periods);
        assertEq(d.collateral, rate * periods * 2, "2x at the default listing multiple");
    }

    function testFuzz_collateralTerms(uint32 bps, uint96 perGiB, uint64 capacity, uint32 periods)
        public
    {
        bps = uint32(bound(bps, 20_000, 100_000));
        perGiB = uint96(bound(perGiB, 0, UNIT));
        capacity = uint64(bound(capacity, GIB, 100 * GIB));
        periods = uint32(bound(periods, 1, 500));
        ProviderRegistry.ListingTerms memory t = terms(ProviderRegistry.AcceptPolicy.Auto);
        t.collateralBps = bps;
        t.collateralPerGiB = perGiB;
        vm.prank(provider);
        registry.update(t);
        uint256 total = market.rateFor(UNIT, capacity) * periods;
        uint256 byMultiple = (total * bps + 9999) / 10_000;
        uint256 byCapacity = (uint256(capacity) * perGiB + GIB - 1) / GIB;
        uint256 expected = byMultiple > byCapacity ? byMultiple : byCapacity;
        vm.assume(expected <= 100_000 * UNIT);
        vm.prank(consumer);
        uint256 id = market.openDeal(provider, capacity, periods, uint96(UNIT), NODE);
        assertEq(deal(id).collateral, expected);
        assertGe(deal(id).collateral, 2 * total);
    }

    // ------------------------------------------------------------------ settlement

    struct Model {
        uint256 paid;
        uint256 refundedPeriods;
        uint256 slashed;
        uint256 reporterShare;
        uint256 consumerShare;
        uint256 settledTo; // relative to start
        bool failed;
    }

    /// @dev The settlement rules, restated period by period.
    function model(uint256 periods, uint256 provenMask, uint256 rate, uint256 collateral)
        internal
        pure
        returns (Model memory m)
    {
        uint256 run;
        uint256 total;
        uint256 each = 3 * rate > collateral * 500 / 10_000 ? 3 * rate : collateral * 500 / 10_000;
        for (uint256 p; p < periods; ++p) {
            m.settledTo = p + 1;
            if ((provenMask >> p) & 1 == 1) {
                ++m.paid;
                run = 0;
                continue;
            }
            ++m.refundedPeriods;
            uint256 slash = each < collateral - m.slashed ? each : collateral - m.slashed;
            uint256 share = slash / 10 < rate ? slash / 10 : rate;
            m.slashed += slash;
            m.reporterShare += share;
            m.consumerShare += slash - share;
            if (++run >= 3 || ++total >= 10) {
                m.failed = true;
                return m;
            }
        }
    }

    /// @dev A deal of up to 24 periods with a random proven pattern, settled by a reporter in
    /// random chunks: every credit matches the model exactly, whatever the chunking.
    function testFuzz_settlementMatchesTheModel(uint8 periods, uint24 provenMask, uint256 chunkSeed)
        public
    {
        periods = uint8(bound(periods, 1, 24));
        vm.prank(consumer);
        uint256 id = market.openDeal(provider, uint64(30 * GIB), periods, uint96(UNIT), NODE);
        uint256 start = deal(id).settledTo;
        commitUniform(id, D, 1);
        for (uint256 p; p < periods; ++p) {
            if ((provenMask >> p) & 1 == 1) provePeriod(id, D, start + p);
        }
        closeThrough(start + periods - 1);
        uint256 rate = deal(id).ratePerPeriod;
        uint256 collateral = deal(id).collateral;
        Model memory m = model(periods, provenMask, rate, collateral);

        for (uint256 i; i < 30 && uint8(deal(id).state) < uint8(Marketplace.DealState.Failed); ++i) {
            uint256 chunk = bound(uint256(keccak256(abi.encode(chunkSeed, i))), 1, 6);
            vm.prank(reporter);
            market.settle(id, chunk);
        }

        check(id, periods, m, rate, collateral);
    }

    function check(uint256 id, uint256 periods, Model memory m, uint256 rate, uint256 collateral)
        internal
        view
    {
        Marketplace.Deal memory d = deal(id);
        uint256 held = rate * 2000 / 10_000;
        assertEq(d.slashed, m.failed ? collateral : m.slashed, "slashed");
        assertEq(market.credit(reporter), m.reporterShare, "reporter share");
        uint256 consumerGets = m.refundedPeriods * rate + m.consumerShare;
        if (m.failed) {
            uint256 left = collateral - m.slashed;
            uint256 repair = left < collateral / 10 ? left : collateral / 10;
            consumerGets += (periods - m.settledTo) * rate + m.paid * held + left - repair;
            assertEq(uint8(d.state), uint8(Marketplace.DealState.Failed));
            assertEq(d.repairReward, repair);
            assertEq(market.credit(provider), m.paid * (rate - held), "held-back pay forfeited");
        } else {
            assertEq(uint8(d.state), uint8(Marketplace.DealState.Closed));
            assertEq(market.credit(provider), m.paid * rate, "everything paid at the end");
        }
        assertEq(market.credit(consumer), consumerGets, "consumer");
        assertEq(market.escrowOf(id), 0);
        // Conservation: every token the deal brought in is in exactly one credit (or the reward).
        assertEq(
            token.balanceOf(address(market)),
            market.credit(provider) + market.credit(consumer) + market.credit(reporter)
                + d.repairReward
        );
        assertEq(
            periods * rate + (m.failed ? collateral : m.slashed), token.balanceOf(address(market))
        );
        (uint128 deposited, uint128 locked) = registry.poolOf(provider);
        assertEq(locked, 0);
        assertEq(deposited, 100_000 * UNIT - d.slashed);
    }

    function testFuzz_slashBounds(uint64 capacity, uint32 periods, uint8 misses) public {
        capacity = uint64(bound(capacity, GIB, 100 * GIB));
        periods = uint32(bound(periods, 3, 2000));
        misses = uint8(bound(misses, 1, 2));
        vm.assume(market.rateFor(UNIT, capacity) * periods * 2 <= 100_000 * UNIT);
        vm.prank(consumer);
        uint256 id = market.openDeal(provider, capacity, periods, uint96(UNIT), NODE);
        uint256 start = deal(id).settledTo;
        commitUniform(id, D, 1);
        closeThrough(start + misses - 1);
        vm.prank(reporter);
        market.settle(id, misses);
        Marketplace.Deal memory d = deal(id);
        uint256 rate = d.ratePerPeriod;
        uint256 each =
            d.collateral * 500 / 10_000 > 3 * rate ? d.collateral * 500 / 10_000 : 3 * rate;
        uint256 expected = each * misses < d.collateral ? each * misses : d.collateral;
        assertEq(d.slashed, expected);
        assertLe(d.slashed, d.collateral);
        assertLe(
            market.credit(reporter),
            misses * rate,
            "the reporter share is capped at a rate per miss"
        );
        assertEq(market.credit(reporter) + market.credit(consumer), d.slashed + misses * rate);
    }

    // ------------------------------------------------------------------ refunds

    function testFuzz_terminateRefund(uint32 periods, uint256 when) public {
        periods = uint32(bound(periods, 1, 200));
        vm.prank(consumer);
        uint256 id = market.openDeal(provider, uint64(30 * GIB), periods, uint96(UNIT), NODE);
        uint256 start = deal(id).settledTo;
        uint256 end = start + periods;
        when = bound(when, block.timestamp, market.periodStart(end) - 1);
        vm.warp(when);
        uint256 current = market.currentPeriod();
        uint256 rate = deal(id).ratePerPeriod;
        vm.prank(consumer);
        market.terminate(id);
        uint256 expectedEnd = current + 2 < start + 1 ? start + 1 : current + 2;
        if (expectedEnd > end) expectedEnd = end;
        assertEq(deal(id).end, expectedEnd);
        assertEq(market.credit(consumer), (end - expectedEnd) * rate);
        assertEq(market.escrowOf(id) + market.credit(consumer), periods * rate, "nothing lost");
    }

    function testFuzz_renewAddsExactEscrowAndCollateral(uint32 periods, uint32 extra, uint32 bps)
        public
    {
        periods = uint32(bound(periods, 1, 1000));
        extra = uint32(bound(extra, 1, 1000));
        bps = uint32(bound(bps, 20_000, 50_000));
        ProviderRegistry.ListingTerms memory t = terms(ProviderRegistry.AcceptPolicy.Auto);
        t.collateralBps = bps;
        vm.prank(provider);
        registry.update(t);
        vm.prank(consumer);
        uint256 id = market.openDeal(provider, uint64(3 * GIB), periods, uint96(UNIT), NODE);
        Marketplace.Deal memory before = deal(id);
        uint256 balance = token.balanceOf(consumer);
        vm.prank(consumer);
        market.renew(id, extra, 0, "");
        Marketplace.Deal memory d = deal(id);
        uint256 added = uint256(before.ratePerPeriod) * extra;
        assertEq(balance - token.balanceOf(consumer), added);
        assertEq(d.end, before.end + extra);
        assertEq(d.collateral - before.collateral, (added * bps + 9999) / 10_000);
        assertEq(market.escrowOf(id), uint256(d.ratePerPeriod) * (periods + extra));
    }
}
