// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Test} from "forge-std/Test.sol";
import {console2} from "forge-std/console2.sol";
import {Vm} from "forge-std/Vm.sol";

import {Marketplace} from "../src/Marketplace.sol";
import {ProviderRegistry} from "../src/ProviderRegistry.sol";
import {StorageProofs} from "../src/StorageProofs.sol";
import {StorageToken} from "../src/StorageToken.sol";
import {MarketTest, TestTree} from "./Base.t.sol";

/**
 * @notice Drives the market through random sequences of every user action. An honest provider
 * (`honest`, auto-accepting) proves every period of its deals as time passes; the other
 * (`other`, signed quotes) proves at random, exits and abandons. The handler rebuilds each
 * deal's escrow from events only, as the ledger's indexer does, and records any violation of
 * a rule that can only be checked as it happens (a period settled twice, a proven period
 * counted as missed, a state moving backwards, an honest provider slashed).
 */
contract MarketHandler is Test {
    Marketplace internal market;
    StorageProofs internal proofs;
    ProviderRegistry internal registry;
    StorageToken internal token;

    uint256 internal constant HONEST_PK = 0xB0;
    uint256 internal constant OTHER_PK = 0xB2;
    uint256[2] internal consumerKeys = [uint256(0xC0), uint256(0xC1)];
    address public honest = vm.addr(HONEST_PK);
    address public other = vm.addr(OTHER_PK);
    address public reporter = makeAddr("reporter");
    address[2] public consumers = [vm.addr(0xC0), vm.addr(0xC1)];
    bytes32 internal constant NODE = keccak256("consumer node");
    uint256 internal constant MAX_DEALS = 16;

    uint256[] public deals;
    mapping(uint256 dealId => uint256) public deposited; // escrow in, from events
    mapping(uint256 dealId => uint256) public escrowOut; // escrow out, from events
    mapping(uint256 dealId => uint256) internal nextToSettle;
    mapping(uint256 dealId => uint8) internal lastState;
    mapping(bytes32 root => uint256) internal treeSeed;
    mapping(bytes32 root => uint256) internal treeDepth;
    uint256 public honestPool; // what the honest provider deposited minus withdrew
    uint256 internal quoteNonce;
    string public violation;
    mapping(bytes4 => uint256) public calls;
    mapping(bytes32 topic => uint256) public events; // how often each market event was seen

    constructor(Marketplace market_, uint256 honestPool_) {
        market = market_;
        proofs = market_.proofs();
        registry = market_.registry();
        token = StorageToken(address(market_.token()));
        honestPool = honestPool_;
        vm.recordLogs();
    }

    function dealCount() external view returns (uint256) {
        return deals.length;
    }

    function actors() external view returns (address[5] memory) {
        return [consumers[0], consumers[1], honest, other, reporter];
    }

    // ================================================================== actions

    function openHonest(
        uint256 consumerSeed,
        uint256 capacitySeed,
        uint256 periodsSeed,
        uint256 depthSeed
    ) external {
        if (deals.length >= MAX_DEALS) return;
        uint256 c = consumerSeed % 2;
        uint64 capacity = uint64(bound(capacitySeed, 1 << 30, 4 << 30));
        uint32 periods = uint32(bound(periodsSeed, 1, 8));
        vm.prank(consumers[c]);
        try market.openDeal(honest, capacity, periods, uint96(1e18), NODE) returns (uint256 id) {
            _read();
            deals.push(id);
            _commit(id, c, HONEST_PK, 1, bound(depthSeed, 0, 3));
        } catch {
            _drop();
        }
        _sync(this.openHonest.selector);
    }

    function openOther(uint256 consumerSeed, uint256 periodsSeed, uint256 depthSeed, bool commitNow)
        external
    {
        if (deals.length >= MAX_DEALS) return;
        uint256 c = consumerSeed % 2;
        uint32 periods = uint32(bound(periodsSeed, 1, 8));
        ProviderRegistry.Quote memory q = _quote(other, consumers[c], 2 << 30, periods, 0);
        bytes memory sig = _sign(OTHER_PK, registry.hashQuote(q));
        vm.prank(consumers[c]);
        try market.openDealWithQuote(q, sig, NODE) returns (uint256 id) {
            _read();
            deals.push(id);
            if (commitNow) _commit(id, c, OTHER_PK, 1, bound(depthSeed, 0, 3));
        } catch {
            _drop();
        }
        _sync(this.openOther.selector);
    }

    function propose(uint256 consumerSeed, uint256 periodsSeed, uint256 leadSeed) external {
        if (deals.length >= MAX_DEALS) return;
        uint256 c = consumerSeed % 2;
        uint32 start = uint32(market.currentPeriod() + bound(leadSeed, 1, 3));
        uint32 periods = uint32(bound(periodsSeed, 1, 8));
        vm.prank(consumers[c]);
        try market.proposeDeal(other, 1 << 30, periods, uint96(1e18), start, NODE) returns (
            uint256 id
        ) {
            _read();
            deals.push(id);
        } catch {
            _drop();
        }
        _sync(this.propose.selector);
    }

    function answerProposal(uint256 dealSeed, uint256 answer) external {
        (uint256 id, Marketplace.Deal memory d) = _find(dealSeed, Want.Proposed);
        if (id == 0) return;
        answer %= 3;
        if (answer == 0) {
            vm.prank(other);
            try market.acceptDeal(id) {
                _read();
            } catch {
                _drop();
            }
        } else if (answer == 1) {
            vm.prank(other);
            try market.declineDeal(id) {
                _read();
            } catch {
                _drop();
            }
        } else {
            vm.prank(answer == 2 ? d.consumer : reporter);
            try market.cancelProposal(id) {
                _read();
            } catch {
                _drop();
            }
        }
        _sync(this.answerProposal.selector);
    }

    function commitOther(uint256 dealSeed, uint256 depthSeed) external {
        (uint256 id, Marketplace.Deal memory d) = _find(dealSeed, Want.OtherRunning);
        if (id == 0) return;
        (,, uint32 version) = proofs.latestCommitment(id);
        _commit(
            id, d.consumer == consumers[0] ? 0 : 1, OTHER_PK, version + 1, bound(depthSeed, 0, 3)
        );
        _sync(this.commitOther.selector);
    }

    function proveOther(uint256 dealSeed, bool previous) external {
        (uint256 id,) = _find(dealSeed, Want.OtherRunning);
        if (id == 0) return;
        uint256 period = market.currentPeriod();
        if (previous && period > 0) period -= 1;
        if (period < proofs.firstOpenPeriod()) return;
        _ensureSeed(period);
        uint256[] memory ids = new uint256[](1);
        ids[0] = id;
        _prove(period, ids, other);
        _sync(this.proveOther.selector);
    }

    /// @dev Moves time forward in steps no longer than the grace; at each step the honest
    /// provider proves every period of its deals, so it never misses one.
    function advance(uint256 secondsSeed) external {
        uint256 total = bound(secondsSeed, market.PERIOD_SECS() / 2, 4 * market.PERIOD_SECS());
        uint256 step = market.PROOF_GRACE_SECS();
        while (total > 0) {
            uint256 dt = total < step ? total : step;
            total -= dt;
            vm.warp(block.timestamp + dt);
            vm.roll(block.number + 1);
            _proveHonest();
        }
        _sync(this.advance.selector);
    }

    /// @dev Settles every deal, each by a random party and with a random bound.
    function settle(uint256 maxSeed, uint256 callerSeed) external {
        for (uint256 i; i < deals.length; ++i) {
            uint256 id = deals[i];
            Marketplace.Deal memory d = market.getDeal(id);
            uint256 pick = uint256(keccak256(abi.encode(callerSeed, i)));
            address caller = pick % 3 == 0 ? d.provider : (pick % 3 == 1 ? d.consumer : reporter);
            vm.prank(caller);
            try market.settle(id, bound(uint256(keccak256(abi.encode(maxSeed, i))), 1, 12)) {
                _read();
            } catch {
                _drop();
            }
        }
        _sync(this.settle.selector);
    }

    function reportMissed(uint256 dealSeed, uint256 periodSeed) external {
        (uint256 id, Marketplace.Deal memory d) = _pick(dealSeed);
        uint256 period = d.settledTo + periodSeed % 4;
        vm.prank(reporter);
        try market.reportMissed(id, period) {
            _read();
        } catch {
            _drop();
        }
        _sync(this.reportMissed.selector);
    }

    function terminate(uint256 dealSeed) external {
        (uint256 id, Marketplace.Deal memory d) = _pick(dealSeed);
        vm.prank(d.consumer);
        try market.terminate(id) {
            _read();
        } catch {
            _drop();
        }
        _sync(this.terminate.selector);
    }

    function renew(uint256 dealSeed, uint256 extraSeed) external {
        (uint256 id, Marketplace.Deal memory d) = _pick(dealSeed);
        uint32 extra = uint32(bound(extraSeed, 1, 4));
        bytes memory sig;
        uint64 until = uint64(block.timestamp);
        if (d.provider == other) {
            sig = _sign(OTHER_PK, market.hashRenewal(id, d.end, d.end + extra, until));
        }
        vm.prank(d.consumer);
        try market.renew(id, extra, until, sig) {
            _read();
        } catch {
            _drop();
        }
        _sync(this.renew.selector);
    }

    function exitOther(uint256 dealSeed, bool abrupt) external {
        (uint256 id,) = _find(dealSeed, Want.OtherRunning);
        if (id == 0) return;
        vm.prank(other);
        if (abrupt) {
            try market.abandon(id) {
                _read();
            } catch {
                _drop();
            }
        } else {
            try market.exitGracefully(id) {
                _read();
            } catch {
                _drop();
            }
        }
        _sync(this.exitOther.selector);
    }

    /// @dev The honest provider takes over failed or exiting deals of the other.
    function reassign(uint256 dealSeed) external {
        (uint256 id, Marketplace.Deal memory d) = _find(dealSeed, Want.OtherRepairable);
        if (deals.length >= MAX_DEALS || id == 0) return;
        uint256 start = market.currentPeriod() + 1;
        if (d.end > start) start = d.end;
        if (start >= d.termEnd) return;
        ProviderRegistry.Quote memory q =
            _quote(honest, d.consumer, d.capacityBytes, uint32(d.termEnd - start), id);
        (q.root, q.leafCount,) = proofs.latestCommitment(id);
        bytes memory sig = _sign(HONEST_PK, registry.hashQuote(q));
        vm.prank(d.consumer);
        try market.reassign(id, q, sig) returns (uint256 child) {
            _read();
            deals.push(child);
        } catch {
            _drop();
        }
        _sync(this.reassign.selector);
    }

    function closeFailed(uint256 dealSeed) external {
        (uint256 id, Marketplace.Deal memory d) = _find(dealSeed, Want.Failed);
        if (id == 0) return;
        vm.prank(d.consumer);
        try market.closeFailed(id) {
            _read();
        } catch {
            _drop();
        }
        _sync(this.closeFailed.selector);
    }

    function withdraw(uint256 actorSeed) external {
        address[5] memory all = this.actors();
        vm.prank(all[actorSeed % 5]);
        try market.withdraw() {
            _read();
        } catch {
            _drop();
        }
        _sync(this.withdraw.selector);
    }

    function moveCollateral(bool honestOne, bool deposit, uint256 amountSeed) external {
        address who = honestOne ? honest : other;
        (uint128 deposited_, uint128 locked) = registry.poolOf(who);
        uint256 amount =
            deposit ? bound(amountSeed, 1, 1e21) : bound(amountSeed, 1, 1 + deposited_ - locked);
        vm.prank(who);
        if (deposit) {
            try registry.depositCollateral(amount) {
                if (honestOne) honestPool += amount;
            } catch {
                _drop();
            }
        } else {
            try registry.withdrawCollateral(amount) {
                if (honestOne) honestPool -= amount;
            } catch {
                _drop();
            }
        }
        _sync(this.moveCollateral.selector);
    }

    // ================================================================== helpers

    function _pick(uint256 seed) internal view returns (uint256 id, Marketplace.Deal memory d) {
        if (deals.length == 0) return (0, d);
        id = deals[seed % deals.length];
        d = market.getDeal(id);
    }

    enum Want {
        Proposed,
        OtherRunning,
        OtherRepairable,
        Failed
    }

    /// @dev The first deal from a random position that fits `want` (id 0 if none).
    function _find(uint256 seed, Want want)
        internal
        view
        returns (uint256 id, Marketplace.Deal memory d)
    {
        uint256 n = deals.length;
        for (uint256 i; i < n; ++i) {
            uint256 candidate = deals[(seed % n + i) % n];
            Marketplace.Deal memory x = market.getDeal(candidate);
            bool running =
                x.state >= Marketplace.DealState.Active && x.state <= Marketplace.DealState.Exiting;
            if (
                (want == Want.Proposed && x.state == Marketplace.DealState.Proposed)
                    || (want == Want.OtherRunning && x.provider == other && running)
                    || (want == Want.OtherRepairable
                        && x.provider == other
                        && (x.state == Marketplace.DealState.Failed
                            || x.state == Marketplace.DealState.Exiting))
                    || (want == Want.Failed && x.state == Marketplace.DealState.Failed)
            ) return (candidate, x);
        }
    }

    function _quote(
        address provider,
        address consumer,
        uint64 capacity,
        uint32 periods,
        uint256 parent
    ) internal returns (ProviderRegistry.Quote memory q) {
        uint256 rate = market.rateFor(1e18, capacity);
        q = ProviderRegistry.Quote({
            provider: provider,
            consumer: consumer,
            capacityBytes: capacity,
            periods: periods,
            pricePerGiBMonth: uint96(1e18),
            collateral: uint128(2 * rate * periods),
            parentDealId: parent,
            root: 0,
            leafCount: 0,
            validUntil: uint64(block.timestamp),
            nonce: quoteNonce++
        });
    }

    function _sign(uint256 pk, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return abi.encodePacked(r, s, v);
    }

    function _commit(uint256 id, uint256 c, uint256 providerKey, uint32 version, uint256 depth)
        internal
    {
        uint256 seed = uint256(keccak256(abi.encode(id, version)));
        (bytes32 root,) = TestTree.uniform(seed, depth);
        treeSeed[root] = seed;
        treeDepth[root] = depth;
        bytes32 digest = proofs.hashCommitment(id, root, uint64(1 << depth), version);
        bytes memory cs = _sign(consumerKeys[c], digest);
        bytes memory ps = _sign(providerKey, digest);
        try proofs.commit(id, root, uint64(1 << depth), version, cs, ps) {
            _read();
        } catch {
            _drop();
        }
    }

    function _ensureSeed(uint256 period) internal {
        if (proofs.seedOf(period) != 0) return;
        try proofs.anchorSeed(period) {
            _read();
        } catch {
            _drop();
        }
        vm.roll(block.number + proofs.SEED_LOOKAHEAD_BLOCKS() + 1);
    }

    /// @dev Proves `period` for `ids` (those with a commitment in it and not proven yet).
    function _prove(uint256 period, uint256[] memory ids, address relayer) internal {
        StorageProofs.DealProof[] memory batch = new StorageProofs.DealProof[](ids.length);
        uint256 n;
        uint256 k = proofs.CHALLENGES();
        for (uint256 i; i < ids.length; ++i) {
            (bytes32 root, uint64 leafCount,) = proofs.commitmentAt(ids[i], period);
            if (leafCount == 0 || proofs.isProven(ids[i], period)) continue;
            uint256 depth = treeDepth[root];
            (, bytes32[] memory path) = TestTree.uniform(treeSeed[root], depth);
            bytes memory leaf = TestTree.leafBytes(treeSeed[root]);
            bytes memory leaves;
            bytes32[] memory siblings = new bytes32[](k * depth);
            for (uint256 j; j < k; ++j) {
                leaves = bytes.concat(leaves, leaf);
                for (uint256 l; l < depth; ++l) {
                    siblings[j * depth + l] = path[l];
                }
            }
            batch[n++] =
                StorageProofs.DealProof({dealId: ids[i], leaves: leaves, siblings: siblings});
        }
        if (n == 0) return;
        assembly ("memory-safe") {
            mstore(batch, n)
        }
        vm.prank(relayer);
        proofs.submitProofs(period, batch); // must not revert: these proofs are right
    }

    function _proveHonest() internal {
        uint256 period = market.currentPeriod();
        uint256[] memory ids = new uint256[](deals.length);
        uint256 n;
        for (uint256 i; i < deals.length; ++i) {
            Marketplace.Deal memory d = market.getDeal(deals[i]);
            if (d.provider == honest && period < d.end) ids[n++] = deals[i];
        }
        if (n == 0) return;
        assembly ("memory-safe") {
            mstore(ids, n)
        }
        _ensureSeed(period);
        _prove(period, ids, honest);
    }

    function _flag(string memory what) internal {
        if (bytes(violation).length == 0) violation = what;
    }

    /// @dev Logs of a call that reverted: Foundry records them anyway, so they are dropped.
    function _drop() internal {
        vm.getRecordedLogs();
    }

    /// @dev Reads the events of the calls since the last read like an indexer, checking the
    /// rules that can only be checked as they happen.
    function _read() internal {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            Vm.Log memory log = logs[i];
            if (log.emitter != address(market)) continue;
            bytes32 topic = log.topics[0];
            ++events[topic];
            uint256 id = log.topics.length > 1 ? uint256(log.topics[1]) : 0;
            if (topic == Marketplace.DealCreated.selector) {
                (,, uint256 start, uint256 end, uint96 rate,,) = abi.decode(
                    log.data, (uint8, uint64, uint256, uint256, uint96, uint128, bytes32)
                );
                deposited[id] += uint256(rate) * (end - start);
                nextToSettle[id] = start;
            } else if (topic == Marketplace.DealRenewed.selector) {
                (, uint256 escrowAdded,) = abi.decode(log.data, (uint256, uint256, uint256));
                deposited[id] += escrowAdded;
            } else if (topic == Marketplace.Settled.selector) {
                (
                    uint256 from,
                    uint256 to,
                    uint256 paid,,
                    uint256 refunded,
                    uint256 slashed,
                    uint256 reward
                ) = abi.decode(
                    log.data, (uint256, uint256, uint256, uint256, uint256, uint256, uint256)
                );
                escrowOut[id] += paid + refunded - (slashed - reward);
                if (from != nextToSettle[id] || to <= from) {
                    _flag("a period settled twice or skipped");
                }
                nextToSettle[id] = to;
            } else if (topic == Marketplace.ProofMissed.selector) {
                uint256 period = uint256(log.topics[2]);
                if (proofs.isProven(id, period)) _flag("a proven period counted as missed");
                if (market.getDeal(id).provider == honest) {
                    _flag("the honest provider was slashed");
                }
            } else if (
                topic == Marketplace.DealTerminated.selector
                    || topic == Marketplace.DealExiting.selector
            ) {
                (, uint256 refund) = topic == Marketplace.DealTerminated.selector
                    ? abi.decode(log.data, (uint256, uint256))
                    : _exitRefund(log.data);
                escrowOut[id] += refund;
            } else if (topic == Marketplace.DealFailed.selector) {
                (,, uint256 refund,,,) =
                    abi.decode(log.data, (uint256, bool, uint256, uint256, uint256, uint256));
                escrowOut[id] += refund;
                if (market.getDeal(id).provider == honest) {
                    _flag("the honest provider's deal failed");
                }
            } else if (
                topic == Marketplace.DealDeclined.selector
                    || topic == Marketplace.DealCancelled.selector
            ) {
                escrowOut[id] += abi.decode(log.data, (uint256));
            }
        }
    }

    /// @dev Ends an action: reads what is left and checks that no state moved backwards.
    function _sync(bytes4 action) internal {
        ++calls[action];
        _read();
        for (uint256 i; i < deals.length; ++i) {
            uint8 state = uint8(market.getDeal(deals[i]).state);
            if (state < lastState[deals[i]]) _flag("a deal's state moved backwards");
            lastState[deals[i]] = state;
        }
    }

    function _exitRefund(bytes memory data) internal pure returns (uint256 newEnd, uint256 refund) {
        (newEnd,, refund) = abi.decode(data, (uint256, uint256, uint256));
    }
}

contract InvariantTest is MarketTest {
    MarketHandler internal handler;

    function setUp() public override {
        super.setUp();
        uint256 second = 0xC1;
        fund(vm.addr(second), 1_000_000 * UNIT);
        list(provider, ProviderRegistry.AcceptPolicy.Auto);
        list(provider2, ProviderRegistry.AcceptPolicy.SignedQuote);
        handler = new MarketHandler(market, 100_000 * UNIT);
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](16);
        selectors[0] = MarketHandler.openHonest.selector;
        selectors[1] = MarketHandler.openOther.selector;
        selectors[2] = MarketHandler.propose.selector;
        selectors[3] = MarketHandler.answerProposal.selector;
        selectors[4] = MarketHandler.commitOther.selector;
        selectors[5] = MarketHandler.proveOther.selector;
        selectors[6] = MarketHandler.advance.selector;
        selectors[7] = MarketHandler.settle.selector;
        selectors[8] = MarketHandler.reportMissed.selector;
        selectors[9] = MarketHandler.terminate.selector;
        selectors[10] = MarketHandler.renew.selector;
        selectors[11] = MarketHandler.exitOther.selector;
        selectors[12] = MarketHandler.reassign.selector;
        selectors[13] = MarketHandler.closeFailed.selector;
        selectors[14] = MarketHandler.withdraw.selector;
        selectors[15] = MarketHandler.moveCollateral.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// @dev One campaign checks every invariant after each call (one campaign per invariant
    /// function would repeat the same runs five times). Long sequences, so that deals have time
    /// to fail, be repaired and close.
    /// forge-config: default.invariant.runs = 32
    /// forge-config: default.invariant.depth = 128
    function invariant_market() public view {
        checkMarketplaceIsSolvent();
        checkRegistryBacksLiveDeals();
        checkEscrowConservedPerDeal();
        checkNoViolation();
        checkHonestProviderKeepsItsCollateral();
    }

    /// @dev The marketplace holds every token it owes: escrow, held-back pay, repair rewards
    /// and credit; with no outside transfers, exactly that.
    function checkMarketplaceIsSolvent() internal view {
        uint256 owed;
        for (uint256 i; i < handler.dealCount(); ++i) {
            uint256 id = handler.deals(i);
            Marketplace.Deal memory d = market.getDeal(id);
            owed += market.escrowOf(id) + d.heldBack + d.repairReward;
        }
        address[5] memory all = handler.actors();
        for (uint256 i; i < all.length; ++i) {
            owed += market.credit(all[i]);
        }
        assertGe(token.balanceOf(address(market)), owed, "balance covers what is owed");
        assertEq(token.balanceOf(address(market)), owed, "and nothing is stranded");
    }

    /// @dev The registry holds every pool, and the locked collateral is exactly what live deals
    /// still have posted.
    function checkRegistryBacksLiveDeals() internal view {
        (uint128 d1, uint128 l1) = registry.poolOf(provider);
        (uint128 d2, uint128 l2) = registry.poolOf(provider2);
        assertEq(token.balanceOf(address(registry)), uint256(d1) + d2);
        uint256 live;
        for (uint256 i; i < handler.dealCount(); ++i) {
            Marketplace.Deal memory d = market.getDeal(handler.deals(i));
            assertLe(d.slashed, d.collateral);
            assertLe(d.settledTo, d.end);
            if (d.state >= Marketplace.DealState.Active && d.state <= Marketplace.DealState.Exiting)
            {
                live += d.collateral - d.slashed;
            }
        }
        assertEq(uint256(l1) + l2, live, "locked == collateral of live deals");
    }

    /// @dev Per deal, escrow rebuilt from events: paid + refunded + what is left == deposited.
    function checkEscrowConservedPerDeal() internal view {
        for (uint256 i; i < handler.dealCount(); ++i) {
            uint256 id = handler.deals(i);
            assertEq(
                handler.escrowOut(id) + market.escrowOf(id),
                handler.deposited(id),
                "escrow per deal"
            );
        }
    }

    /// @dev Periods settle once, proven periods are never missed, states only move forward and
    /// the honest provider is never slashed.
    function checkNoViolation() internal view {
        assertEq(handler.violation(), "");
    }

    /// @dev Prints how often the runs reached each event (`-vv`), to show they are meaningful.
    function afterInvariant() external view {
        bytes32[11] memory topics = [
            Marketplace.DealCreated.selector,
            Marketplace.DealAccepted.selector,
            Marketplace.Settled.selector,
            Marketplace.ProofMissed.selector,
            Marketplace.DealFailed.selector,
            Marketplace.DealReassigned.selector,
            Marketplace.RepairRewardPaid.selector,
            Marketplace.DealExiting.selector,
            Marketplace.DealTerminated.selector,
            Marketplace.DealRenewed.selector,
            Marketplace.DealClosed.selector
        ];
        string[11] memory names = [
            "created",
            "accepted",
            "settled",
            "missed",
            "failed",
            "reassigned",
            "repair paid",
            "exiting",
            "terminated",
            "renewed",
            "closed"
        ];
        string memory line = "events:";
        for (uint256 i; i < topics.length; ++i) {
            line = string.concat(line, " ", names[i], "=", vm.toString(handler.events(topics[i])));
        }
        console2.log(line);
    }

    function checkHonestProviderKeepsItsCollateral() internal view {
        (uint128 deposited,) = registry.poolOf(provider);
        assertEq(deposited, handler.honestPool());
        for (uint256 i; i < handler.dealCount(); ++i) {
            Marketplace.Deal memory d = market.getDeal(handler.deals(i));
            if (d.provider == provider) assertEq(d.slashed, 0);
        }
    }
}
