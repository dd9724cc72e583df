// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Test} from "forge-std/Test.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {Faucet} from "../src/Faucet.sol";
import {Marketplace} from "../src/Marketplace.sol";
import {ProviderRegistry} from "../src/ProviderRegistry.sol";
import {IDealBook, StorageProofs} from "../src/StorageProofs.sol";
import {StorageToken} from "../src/StorageToken.sol";

/// @notice Positional SHA-256 trees built the slow, obvious way (the reference for tests).
library TestTree {
    uint256 internal constant LEAF_SIZE = 256;

    /// @dev 256 bytes derived from `seed`, all nonzero-ish like real ciphertext.
    function leafBytes(uint256 seed) internal pure returns (bytes memory leaf) {
        leaf = new bytes(LEAF_SIZE);
        for (uint256 i; i < LEAF_SIZE; i += 32) {
            bytes32 word = keccak256(abi.encode(seed, i));
            assembly ("memory-safe") {
                mstore(add(add(leaf, 0x20), i), word)
            }
        }
    }

    function depth(uint256 leafCount) internal pure returns (uint256 d) {
        while ((uint256(1) << d) < leafCount) ++d;
    }

    /// @dev Every level of the tree over `leafCount` leaves `leafBytes(seed + i)`, zero leaves
    /// past `leafCount` up to a power of two. levels[0] are leaf hashes; the last is the root.
    function build(uint256 seed, uint256 leafCount)
        internal
        pure
        returns (bytes32[][] memory levels)
    {
        uint256 d = depth(leafCount);
        levels = new bytes32[][](d + 1);
        uint256 width = uint256(1) << d;
        levels[0] = new bytes32[](width);
        for (uint256 i; i < width; ++i) {
            levels[0][i] =
                i < leafCount ? sha256(leafBytes(seed + i)) : sha256(new bytes(LEAF_SIZE));
        }
        for (uint256 l = 1; l <= d; ++l) {
            width >>= 1;
            levels[l] = new bytes32[](width);
            for (uint256 i; i < width; ++i) {
                levels[l][i] =
                    sha256(abi.encodePacked(levels[l - 1][2 * i], levels[l - 1][2 * i + 1]));
            }
        }
    }

    function root(bytes32[][] memory levels) internal pure returns (bytes32) {
        return levels[levels.length - 1][0];
    }

    function path(bytes32[][] memory levels, uint256 index)
        internal
        pure
        returns (bytes32[] memory p)
    {
        p = new bytes32[](levels.length - 1);
        for (uint256 l; l < p.length; ++l) {
            p[l] = levels[l][index ^ 1];
            index >>= 1;
        }
    }

    /// @dev The "uniform" tree: every one of the 2^d leaves is `leafBytes(seed)`, so the path of
    /// any index is the same list of level hashes. Lets tests and gas benchmarks prove any
    /// challenged index of a deep tree without building it.
    function uniform(uint256 seed, uint256 d)
        internal
        pure
        returns (bytes32 root_, bytes32[] memory p)
    {
        p = new bytes32[](d);
        bytes32 node = sha256(leafBytes(seed));
        for (uint256 l; l < d; ++l) {
            p[l] = node;
            node = sha256(abi.encodePacked(node, node));
        }
        root_ = node;
    }
}

/**
 * @notice Deploys the contracts from their compiled artifacts (`vm.getCode`) rather than with
 * `new`: tests then run the very bytecode that ships, and no test contract embeds (and makes
 * solc re-optimize) the creation code of four contracts, which kept the whole build within
 * solcjs's 2 GiB WebAssembly heap. A constructor's revert reason is passed through.
 */
abstract contract Deploys is Test {
    function create(string memory artifact, bytes memory args) internal returns (address deployed) {
        bytes memory code = bytes.concat(vm.getCode(artifact), args);
        assembly ("memory-safe") {
            deployed := create(0, add(code, 0x20), mload(code))
            if iszero(deployed) {
                returndatacopy(0, 0, returndatasize())
                revert(0, returndatasize())
            }
        }
    }

    function deployToken(
        string memory name,
        string memory symbol,
        address admin,
        address holder,
        uint256 supply
    ) internal returns (StorageToken) {
        return StorageToken(
            create("StorageToken.sol:StorageToken", abi.encode(name, symbol, admin, holder, supply))
        );
    }

    function deployFaucet(StorageToken token_, uint256 drip, uint256 cap)
        internal
        returns (Faucet)
    {
        return Faucet(create("Faucet.sol:Faucet", abi.encode(token_, drip, cap)));
    }

    function deployRegistry(IERC20 token_, address marketplace)
        internal
        returns (ProviderRegistry)
    {
        return ProviderRegistry(
            create("ProviderRegistry.sol:ProviderRegistry", abi.encode(token_, marketplace))
        );
    }

    function deployProofs(
        IDealBook book,
        ProviderRegistry registry_,
        uint256 periodSecs,
        uint256 genesis,
        uint256 graceSecs,
        uint256 k,
        uint256 lookahead
    ) internal returns (StorageProofs) {
        return StorageProofs(
            create(
                "StorageProofs.sol:StorageProofs",
                abi.encode(book, registry_, periodSecs, genesis, graceSecs, k, lookahead)
            )
        );
    }

    function deployMarketplace(
        IERC20 token_,
        ProviderRegistry registry_,
        StorageProofs proofs_,
        uint256 fillPeriods,
        uint256 exitNoticePeriods
    ) internal returns (Marketplace) {
        return Marketplace(
            create(
                "Marketplace.sol:Marketplace",
                abi.encode(token_, registry_, proofs_, fillPeriods, exitNoticePeriods)
            )
        );
    }
}

/// @notice Deploys the market and gives tests actors, listings, deals, signatures and proofs.
abstract contract MarketTest is Deploys {
    uint256 internal constant PERIOD = 1 hours;
    uint256 internal constant GRACE = 10 minutes;
    uint256 internal constant K = 4;
    uint256 internal constant LOOKAHEAD = 2;
    uint256 internal constant FILL = 2;
    uint256 internal constant EXIT_NOTICE = 3;
    uint256 internal constant T0 = 1_700_000_000;
    uint256 internal constant GIB = 1 << 30;
    uint256 internal constant UNIT = 1e18;

    uint256 internal constant CONSUMER_PK = 0xC0;
    uint256 internal constant PROVIDER_PK = 0xB0;
    uint256 internal constant PROVIDER2_PK = 0xB2;
    uint256 internal constant SIGNER_PK = 0x51;

    StorageToken internal token;
    ProviderRegistry internal registry;
    StorageProofs internal proofs;
    Marketplace internal market;

    address internal consumer = vm.addr(CONSUMER_PK);
    address internal provider = vm.addr(PROVIDER_PK);
    address internal provider2 = vm.addr(PROVIDER2_PK);
    address internal quoteSigner = vm.addr(SIGNER_PK);
    address internal reporter = makeAddr("reporter");
    bytes32 internal constant NODE = keccak256("consumer node");

    uint256 internal quoteNonce;
    uint256 internal challenges;

    function setUp() public virtual {
        vm.warp(T0);
        vm.roll(1000);
        deployMarket(K);
        fund(consumer, 1_000_000 * UNIT);
        fund(provider, 1_000_000 * UNIT);
        fund(provider2, 1_000_000 * UNIT);
    }

    function deployMarket(uint256 k) internal {
        token = deployToken("dBytes Storage", "DBS", address(this), address(this), 1e30);
        address predicted = vm.computeCreateAddress(address(this), vm.getNonce(address(this)) + 2);
        registry = deployRegistry(token, predicted);
        proofs = deployProofs(IDealBook(predicted), registry, PERIOD, 0, GRACE, k, LOOKAHEAD);
        market = deployMarketplace(token, registry, proofs, FILL, EXIT_NOTICE);
        assertEq(address(market), predicted);
        challenges = k;
    }

    function fund(address account, uint256 amount) internal {
        token.transfer(account, amount);
        vm.startPrank(account);
        token.approve(address(market), type(uint256).max);
        token.approve(address(registry), type(uint256).max);
        vm.stopPrank();
    }

    // ---------------------------------------------------------------- listings

    function terms(ProviderRegistry.AcceptPolicy policy)
        internal
        pure
        returns (ProviderRegistry.ListingTerms memory t)
    {
        t = ProviderRegistry.ListingTerms({
            nodeId: keccak256("provider node"),
            addressHints: bytes("127.0.0.1:4433"),
            capacityBytes: uint64(1000 * GIB),
            pricePerGiBMonth: uint96(UNIT), // 1 token per GiB-month
            minPeriods: 1,
            maxPeriods: 10_000,
            collateralBps: 20_000,
            collateralPerGiB: 0,
            region: bytes8("DE"),
            policy: policy,
            quoteSigner: address(0)
        });
    }

    function list(address who, ProviderRegistry.AcceptPolicy policy) internal {
        vm.startPrank(who);
        registry.register(terms(policy));
        registry.depositCollateral(100_000 * UNIT);
        vm.stopPrank();
    }

    // ---------------------------------------------------------------- deals

    /// @dev A 30 GiB auto deal of `periods` periods with `provider` (listing auto-accepts).
    function openAuto(uint32 periods) internal returns (uint256 dealId) {
        return openAutoWith(provider, uint64(30 * GIB), periods);
    }

    function openAutoWith(address who, uint64 capacity, uint32 periods)
        internal
        returns (uint256 dealId)
    {
        vm.prank(consumer);
        dealId = market.openDeal(who, capacity, periods, uint96(UNIT), NODE);
    }

    function quote(address who, uint64 capacity, uint32 periods, uint128 collateral)
        internal
        returns (ProviderRegistry.Quote memory q)
    {
        q = ProviderRegistry.Quote({
            provider: who,
            consumer: consumer,
            capacityBytes: capacity,
            periods: periods,
            pricePerGiBMonth: uint96(UNIT),
            collateral: collateral,
            parentDealId: 0,
            root: bytes32(0),
            leafCount: 0,
            validUntil: uint64(block.timestamp + 1 hours),
            nonce: quoteNonce++
        });
    }

    function signQuote(uint256 pk, ProviderRegistry.Quote memory q)
        internal
        view
        returns (bytes memory)
    {
        return sign(pk, registry.hashQuote(q));
    }

    function sign(uint256 pk, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return abi.encodePacked(r, s, v);
    }

    function deal(uint256 dealId) internal view returns (Marketplace.Deal memory) {
        return market.getDeal(dealId);
    }

    function rateOf(uint256 dealId) internal view returns (uint256) {
        return market.getDeal(dealId).ratePerPeriod;
    }

    // ---------------------------------------------------------------- time

    /// @dev Warps to `offset` seconds into `period`.
    function warpTo(uint256 period, uint256 offset) internal {
        vm.warp(market.periodStart(period) + offset);
    }

    /// @dev Warps to where every period before `period` is closed (just past the grace).
    function closeThrough(uint256 period) internal {
        vm.warp(market.proofDeadline(period));
    }

    // ---------------------------------------------------------------- commitments and proofs

    function commitAs(uint256 dealId, bytes32 root, uint64 leafCount, uint32 version) internal {
        bytes32 digest = proofs.hashCommitment(dealId, root, leafCount, version);
        proofs.commit(
            dealId, root, leafCount, version, sign(CONSUMER_PK, digest), sign(PROVIDER_PK, digest)
        );
    }

    /// @dev Commits the uniform tree of depth `d` (2^d leaves) for `dealId`.
    function commitUniform(uint256 dealId, uint256 d, uint32 version)
        internal
        returns (bytes32 root)
    {
        (root,) = TestTree.uniform(dealId, d);
        commitAs(dealId, root, uint64(1 << d), version);
    }

    /// @dev Anchors `period`'s seed, mines past the anchor and fixes it.
    function fixSeed(uint256 period) internal returns (bytes32) {
        proofs.anchorSeed(period);
        vm.roll(block.number + LOOKAHEAD + 1);
        return proofs.fixSeed(period);
    }

    /// @dev Makes sure `period`'s seed is fixed (the clock must be inside its window).
    function ensureSeed(uint256 period) internal {
        if (proofs.seedOf(period) != 0) {
            proofs.fixSeed(period);
            return;
        }
        if (proofs.seedAnchorOf(period) == 0) proofs.anchorSeed(period);
        vm.roll(block.number + LOOKAHEAD + 1);
        proofs.fixSeed(period);
    }

    /// @dev Proves `period` for a deal committed to the uniform tree of depth `d`, warping into
    /// the period first.
    function provePeriod(uint256 dealId, uint256 d, uint256 period) internal {
        provePeriodOf(dealId, dealId, d, period);
    }

    /// @dev As {provePeriod} for a deal committed to the uniform tree of another deal (a repair).
    function provePeriodOf(uint256 dealId, uint256 treeOf, uint256 d, uint256 period) internal {
        if (block.timestamp < market.periodStart(period)) warpTo(period, 0);
        ensureSeed(period);
        StorageProofs.DealProof[] memory batch = new StorageProofs.DealProof[](1);
        batch[0] = uniformProof(treeOf, d, challenges);
        batch[0].dealId = dealId;
        proofs.submitProofs(period, batch);
    }

    /// @dev The proof of a uniform tree of depth `d` (any challenged index works).
    function uniformProof(uint256 dealId, uint256 d, uint256 k)
        internal
        pure
        returns (StorageProofs.DealProof memory p)
    {
        (, bytes32[] memory path) = TestTree.uniform(dealId, d);
        bytes memory leaf = TestTree.leafBytes(dealId);
        bytes memory leaves;
        bytes32[] memory siblings = new bytes32[](k * d);
        for (uint256 i; i < k; ++i) {
            leaves = bytes.concat(leaves, leaf);
            for (uint256 l; l < d; ++l) {
                siblings[i * d + l] = path[l];
            }
        }
        p = StorageProofs.DealProof({dealId: dealId, leaves: leaves, siblings: siblings});
    }

    function proveUniform(uint256 dealId, uint256 d, uint256 period) internal {
        StorageProofs.DealProof[] memory batch = new StorageProofs.DealProof[](1);
        batch[0] = uniformProof(dealId, d, challenges);
        proofs.submitProofs(period, batch);
    }
}
