// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {console2} from "forge-std/console2.sol";
import {Vm} from "forge-std/Vm.sol";

import {Marketplace} from "../src/Marketplace.sol";
import {ProviderRegistry} from "../src/ProviderRegistry.sol";
import {StorageProofs} from "../src/StorageProofs.sol";
import {MarketTest, TestTree} from "./Base.t.sol";

/**
 * @notice Transaction gas of each operation, printed as `gas <operation>=<gas>` (a report, not a
 * test of limits). Run: `forge test --match-contract Gas -vv`.
 *
 * Each call runs against cold state (`vm.cool` on every contract, as in a fresh transaction) and
 * is priced as a whole transaction: 21000 + calldata (4 gas per zero byte, 16 per other byte) +
 * execution - refund (at most a fifth), but at least the EIP-7623 (Prague) floor of 21000 + 10 gas
 * per calldata token (a zero byte is one token, another byte four). Proof transactions are mostly
 * calldata, so on L1 and on chains with the floor their price is the floor.
 */
abstract contract GasReport is MarketTest {
    uint256 internal constant DEPTH = 25; // 2^25 leaves of 256 bytes: an 8 GiB deal
    uint64 internal constant CAPACITY = uint64(8 * GIB);

    function setUp() public virtual override {
        super.setUp();
        list(provider, ProviderRegistry.AcceptPolicy.Auto);
        list(provider2, ProviderRegistry.AcceptPolicy.SignedQuote);
        // Warm the accounts that pay: a realistic provider and consumer already hold credit.
        vm.prank(consumer);
        market.setMetadata(keccak256("m"), "x");
    }

    /// @dev Prices `data` sent by `from` to `target` as a transaction; prints and returns it.
    function measure(string memory name, address from, address target, bytes memory data)
        internal
        returns (uint256 txGas)
    {
        vm.cool(address(market));
        vm.cool(address(proofs));
        vm.cool(address(registry));
        vm.cool(address(token));
        vm.prank(from);
        (bool ok, bytes memory ret) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
        Vm.Gas memory g = vm.lastCallGas();
        (uint256 standard, uint256 tokens) = calldataCost(data);
        uint256 gross = 21_000 + standard + g.gasTotalUsed;
        uint256 refund = g.gasRefunded > 0 ? uint256(int256(g.gasRefunded)) : 0;
        if (refund > gross / 5) refund = gross / 5;
        uint256 floor = 21_000 + 10 * tokens;
        txGas = gross - refund;
        if (txGas < floor) txGas = floor;
        console2.log(string.concat("gas ", name, "=", vm.toString(txGas)));
        console2.log(
            string.concat(
                "    exec=",
                vm.toString(uint256(g.gasTotalUsed)),
                " calldata_bytes=",
                vm.toString(data.length),
                " calldata_gas=",
                vm.toString(standard),
                " floor=",
                vm.toString(floor),
                " refund=",
                vm.toString(refund)
            )
        );
    }

    function calldataCost(bytes memory data)
        internal
        pure
        returns (uint256 standard, uint256 tokens)
    {
        for (uint256 i; i < data.length; ++i) {
            if (data[i] == 0) {
                standard += 4;
                tokens += 1;
            } else {
                standard += 16;
                tokens += 4;
            }
        }
    }

    /// @dev An auto deal of 8 GiB committed to the uniform tree of depth 25, started.
    function provingDeal() internal returns (uint256 id, uint256 start) {
        vm.prank(consumer);
        id = market.openDeal(provider, CAPACITY, 100, uint96(UNIT), NODE);
        start = deal(id).settledTo;
        commitUniform(id, DEPTH, 1);
    }

    function batchOf(uint256[] memory ids)
        internal
        view
        returns (StorageProofs.DealProof[] memory batch)
    {
        batch = new StorageProofs.DealProof[](ids.length);
        for (uint256 i; i < ids.length; ++i) {
            batch[i] = uniformProof(ids[i], DEPTH, challenges);
        }
    }

    function proofTx(uint256 period, uint256[] memory ids) internal view returns (bytes memory) {
        return abi.encodeCall(StorageProofs.submitProofs, (period, batchOf(ids)));
    }

    /// @dev Proves `ids` for periods `start` (first bitmap word, seed fixing) and then measures
    /// `start + 1` in steady state (seed already fixed by someone, bitmap word exists).
    function measureProofs(string memory name, uint256 n) internal returns (uint256 perDeal) {
        uint256[] memory ids = new uint256[](n);
        uint256 start;
        for (uint256 i; i < n; ++i) {
            (ids[i], start) = provingDeal();
        }
        warpTo(start, 0);
        ensureSeed(start);
        proofs.submitProofs(start, batchOf(ids));
        warpTo(start + 1, GRACE);
        ensureSeed(start + 1);
        perDeal = measure(name, provider, address(proofs), proofTx(start + 1, ids)) / n;
        if (n > 1) console2.log(string.concat("gas ", name, "_per_deal=", vm.toString(perDeal)));
    }
}

/// @notice K = 1 (the research targets are stated for one challenge).
contract GasK1Test is GasReport {
    function setUp() public override {
        vm.warp(T0);
        vm.roll(1000);
        deployMarket(1);
        fund(consumer, 1_000_000 * UNIT);
        fund(provider, 1_000_000 * UNIT);
        fund(provider2, 1_000_000 * UNIT);
        list(provider, ProviderRegistry.AcceptPolicy.Auto);
        list(provider2, ProviderRegistry.AcceptPolicy.SignedQuote);
        vm.prank(consumer);
        market.setMetadata(keccak256("m"), "x");
    }

    function test_gasSubmitProofK1() public {
        uint256 gas = measureProofs("submit_proof", 1);
        assertLt(gas, 80_000);
    }

    function test_gasSubmitProofFirstOfDealAndPeriod() public {
        (uint256 id, uint256 start) = provingDeal();
        warpTo(start, 0);
        proofs.anchorSeed(start);
        vm.roll(block.number + LOOKAHEAD + 1);
        uint256[] memory ids = new uint256[](1);
        ids[0] = id;
        measure("submit_proof_first_fixing_seed", provider, address(proofs), proofTx(start, ids));
    }

    function test_gasSubmitProofBatch10K1() public {
        uint256 perDeal = measureProofs("submit_proof_batch10", 10);
        assertLt(perDeal, 60_000);
    }

    function test_gasSubmitProofBatch20K1() public {
        measureProofs("submit_proof_batch20", 20);
    }
}

/// @notice K = 4, the deployment default, and everything that is not a proof.
contract GasTest is GasReport {
    uint256 internal constant R = 8 * UNIT / 720; // 8 GiB at 1 token per GiB-month, per hour

    function test_gasSubmitProofK4() public {
        measureProofs("submit_proof_k4", 1);
    }

    function test_gasSubmitProofBatch10K4() public {
        measureProofs("submit_proof_k4_batch10", 10);
    }

    function test_gasRegisterAndDeposit() public {
        ProviderRegistry.ListingTerms memory t = terms(ProviderRegistry.AcceptPolicy.Auto);
        address p = makeAddr("new provider");
        fund(p, 1000 * UNIT);
        measure("register", p, address(registry), abi.encodeCall(ProviderRegistry.register, (t)));
        measure(
            "deposit_collateral",
            p,
            address(registry),
            abi.encodeCall(ProviderRegistry.depositCollateral, (1000 * UNIT))
        );
    }

    function test_gasProposeAcceptOpen() public {
        uint32 s = uint32(market.currentPeriod() + 2);
        bytes memory data = abi.encodeCall(
            Marketplace.proposeDeal, (provider, CAPACITY, 100, uint96(UNIT), s, NODE)
        );
        measure("propose", consumer, address(market), data);
        measure("accept", provider, address(market), abi.encodeCall(Marketplace.acceptDeal, (1)));
        data = abi.encodeCall(Marketplace.openDeal, (provider, CAPACITY, 100, uint96(UNIT), NODE));
        measure("open_auto", consumer, address(market), data);
        ProviderRegistry.Quote memory q = quote(provider2, CAPACITY, 100, uint128(200 * R));
        data = abi.encodeCall(Marketplace.openDealWithQuote, (q, signQuote(PROVIDER2_PK, q), NODE));
        measure("open_one_tx_first_nonce_word", consumer, address(market), data);
        // Steady state: the provider's nonce word is in use (255 quotes in 256).
        q = quote(provider2, CAPACITY, 100, uint128(200 * R));
        data = abi.encodeCall(Marketplace.openDealWithQuote, (q, signQuote(PROVIDER2_PK, q), NODE));
        measure("open_one_tx", consumer, address(market), data);
    }

    function test_gasCommit() public {
        (uint256 id, uint256 start) = provingDeal(); // the first commitment was written here
        warpTo(start, GRACE);
        (bytes32 root,) = TestTree.uniform(id + 1, DEPTH);
        bytes32 digest = proofs.hashCommitment(id, root, uint64(1 << DEPTH), 2);
        bytes memory data = abi.encodeCall(
            StorageProofs.commit,
            (id, root, uint64(1 << DEPTH), 2, sign(CONSUMER_PK, digest), sign(PROVIDER_PK, digest))
        );
        measure("commit_first_update", consumer, address(proofs), data);
        // Steady state: a pending commitment is promoted and a new one queued.
        warpTo(start + 1, GRACE);
        digest = proofs.hashCommitment(id, root, uint64(1 << DEPTH), 3);
        data = abi.encodeCall(
            StorageProofs.commit,
            (id, root, uint64(1 << DEPTH), 3, sign(CONSUMER_PK, digest), sign(PROVIDER_PK, digest))
        );
        measure("commit", consumer, address(proofs), data);
        // A brand-new deal's first commitment.
        vm.prank(consumer);
        uint256 fresh = market.openDeal(provider, CAPACITY, 100, uint96(UNIT), NODE);
        digest = proofs.hashCommitment(fresh, root, uint64(1 << DEPTH), 1);
        data = abi.encodeCall(
            StorageProofs.commit,
            (
                fresh,
                root,
                uint64(1 << DEPTH),
                1,
                sign(CONSUMER_PK, digest),
                sign(PROVIDER_PK, digest)
            )
        );
        measure("commit_first", consumer, address(proofs), data);
    }

    function test_gasSettle() public {
        (uint256 id, uint256 start) = provingDeal();
        for (uint256 p = start; p < start + 34; ++p) {
            provePeriod(id, DEPTH, p);
        }
        closeThrough(start + 33);
        measure(
            "settle_first", provider, address(market), abi.encodeCall(Marketplace.settle, (id, 1))
        );
        measure("settle", provider, address(market), abi.encodeCall(Marketplace.settle, (id, 1)));
        measure(
            "settle_32_periods",
            provider,
            address(market),
            abi.encodeCall(Marketplace.settle, (id, 32))
        );
        measure("withdraw", provider, address(market), abi.encodeCall(Marketplace.withdraw, ()));
    }

    function test_gasSettleMissed() public {
        (uint256 id, uint256 start) = provingDeal();
        provePeriod(id, DEPTH, start);
        closeThrough(start + 1);
        market.settle(id, 1);
        measure(
            "settle_missed", reporter, address(market), abi.encodeCall(Marketplace.settle, (id, 1))
        );
    }

    function test_gasRenewTerminateExit() public {
        (uint256 id,) = provingDeal();
        measure(
            "renew", consumer, address(market), abi.encodeCall(Marketplace.renew, (id, 10, 0, ""))
        );
        measure("terminate", consumer, address(market), abi.encodeCall(Marketplace.terminate, (id)));
        (uint256 other,) = provingDeal();
        measure(
            "exit_gracefully",
            provider,
            address(market),
            abi.encodeCall(Marketplace.exitGracefully, (other))
        );
    }

    function test_gasReassign() public {
        (uint256 id, uint256 start) = provingDeal();
        closeThrough(start + 2);
        market.settle(id, 10); // three misses: failed
        uint256 childStart = market.currentPeriod() + 1;
        ProviderRegistry.Quote memory q =
            quote(provider2, CAPACITY, uint32(start + 100 - childStart), uint128(200 * R));
        q.parentDealId = id;
        (q.root, q.leafCount,) = proofs.latestCommitment(id);
        bytes memory data =
            abi.encodeCall(Marketplace.reassign, (id, q, signQuote(PROVIDER2_PK, q)));
        measure("reassign", consumer, address(market), data);
    }
}
