// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {ProviderRegistry} from "../src/ProviderRegistry.sol";
import {MarketTest} from "./Base.t.sol";

/// @dev Takes 1% of every transfer: deposits must notice.
contract FeeToken is ERC20 {
    constructor() ERC20("Fee", "FEE") {
        _mint(msg.sender, 1e30);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from != address(0) && to != address(0)) {
            uint256 fee = value / 100;
            super._update(from, address(0xdead), fee);
            value -= fee;
        }
        super._update(from, to, value);
    }
}

/// @dev An ERC-1271 wallet that accepts one digest.
contract Wallet1271 {
    bytes32 public accepted;

    function accept(bytes32 digest) external {
        accepted = digest;
    }

    function isValidSignature(bytes32 digest, bytes memory) external view returns (bytes4) {
        return digest == accepted ? bytes4(0x1626ba7e) : bytes4(0xffffffff);
    }
}

contract ProviderRegistryTest is MarketTest {
    function same(ProviderRegistry.ListingTerms memory a, ProviderRegistry.ListingTerms memory b)
        internal
        pure
        returns (bool)
    {
        return keccak256(abi.encode(a)) == keccak256(abi.encode(b));
    }

    // ------------------------------------------------------------------ listings

    function test_registerPublishesTheListing() public {
        ProviderRegistry.ListingTerms memory t = terms(ProviderRegistry.AcceptPolicy.Manual);
        vm.expectEmit(address(registry));
        emit ProviderRegistry.ListingUpdated(provider, t);
        vm.prank(provider);
        registry.register(t);

        (
            ProviderRegistry.ListingStatus status,
            ProviderRegistry.ListingTerms memory stored,
            uint64 used,
            uint32 live
        ) = registry.listingOf(provider);
        assertEq(uint8(status), uint8(ProviderRegistry.ListingStatus.Active));
        t.quoteSigner = provider; // zero means the provider itself
        assertTrue(same(stored, t));
        assertEq(used, 0);
        assertEq(live, 0);
        assertEq(registry.signerOf(provider), provider);

        ProviderRegistry.DealTerms memory d = registry.dealTermsOf(provider);
        assertEq(uint8(d.policy), uint8(ProviderRegistry.AcceptPolicy.Manual));
        assertEq(d.pricePerGiBMonth, t.pricePerGiBMonth);
        assertEq(d.capacityBytes, t.capacityBytes);
        assertEq(d.collateralBps, t.collateralBps);
    }

    function test_registerTwiceReverts() public {
        list(provider, ProviderRegistry.AcceptPolicy.Auto);
        vm.expectRevert(abi.encodeWithSelector(ProviderRegistry.ListingExists.selector, provider));
        vm.prank(provider);
        registry.register(terms(ProviderRegistry.AcceptPolicy.Auto));
    }

    function test_registerRejectsEachBadField() public {
        ProviderRegistry.ListingTerms memory t;
        vm.startPrank(provider);

        t = terms(ProviderRegistry.AcceptPolicy.Auto);
        t.nodeId = 0;
        vm.expectRevert(abi.encodeWithSelector(ProviderRegistry.InvalidListing.selector, "nodeId"));
        registry.register(t);

        t = terms(ProviderRegistry.AcceptPolicy.Auto);
        t.addressHints = new bytes(513);
        vm.expectRevert(
            abi.encodeWithSelector(ProviderRegistry.InvalidListing.selector, "addressHints")
        );
        registry.register(t);

        t = terms(ProviderRegistry.AcceptPolicy.Auto);
        t.capacityBytes = 0;
        vm.expectRevert(
            abi.encodeWithSelector(ProviderRegistry.InvalidListing.selector, "capacityBytes")
        );
        registry.register(t);

        t = terms(ProviderRegistry.AcceptPolicy.Auto);
        t.pricePerGiBMonth = 0;
        vm.expectRevert(
            abi.encodeWithSelector(ProviderRegistry.InvalidListing.selector, "pricePerGiBMonth")
        );
        registry.register(t);

        t = terms(ProviderRegistry.AcceptPolicy.Auto);
        t.minPeriods = 0;
        vm.expectRevert(abi.encodeWithSelector(ProviderRegistry.InvalidListing.selector, "periods"));
        registry.register(t);

        t = terms(ProviderRegistry.AcceptPolicy.Auto);
        t.minPeriods = 5;
        t.maxPeriods = 4;
        vm.expectRevert(abi.encodeWithSelector(ProviderRegistry.InvalidListing.selector, "periods"));
        registry.register(t);

        t = terms(ProviderRegistry.AcceptPolicy.Auto);
        t.collateralBps = 19_999;
        vm.expectRevert(
            abi.encodeWithSelector(ProviderRegistry.InvalidListing.selector, "collateralBps")
        );
        registry.register(t);

        t = terms(ProviderRegistry.AcceptPolicy.Auto);
        t.addressHints = new bytes(512); // the bound itself is fine
        registry.register(t);
        vm.stopPrank();
    }

    function test_updateReplacesTermsAndKeepsPause() public {
        list(provider, ProviderRegistry.AcceptPolicy.Auto);
        vm.startPrank(provider);
        registry.setPaused(true);
        ProviderRegistry.ListingTerms memory t = terms(ProviderRegistry.AcceptPolicy.SignedQuote);
        t.pricePerGiBMonth = 7;
        t.quoteSigner = quoteSigner;
        t.region = bytes8("US-E");
        vm.expectEmit(address(registry));
        emit ProviderRegistry.ListingUpdated(provider, t);
        registry.update(t);
        vm.stopPrank();
        (ProviderRegistry.ListingStatus status, ProviderRegistry.ListingTerms memory stored,,) =
            registry.listingOf(provider);
        assertEq(uint8(status), uint8(ProviderRegistry.ListingStatus.Paused));
        assertTrue(same(stored, t));
        assertEq(registry.signerOf(provider), quoteSigner);
    }

    function test_updateWithoutListingReverts() public {
        vm.expectRevert(abi.encodeWithSelector(ProviderRegistry.ListingNotFound.selector, provider));
        vm.prank(provider);
        registry.update(terms(ProviderRegistry.AcceptPolicy.Auto));
    }

    function test_pauseAndUnpause() public {
        list(provider, ProviderRegistry.AcceptPolicy.Auto);
        vm.startPrank(provider);
        vm.expectEmit(address(registry));
        emit ProviderRegistry.ListingPaused(provider, true);
        registry.setPaused(true);
        vm.expectRevert(
            abi.encodeWithSelector(
                ProviderRegistry.ListingAlreadyInState.selector,
                provider,
                ProviderRegistry.ListingStatus.Paused
            )
        );
        registry.setPaused(true);
        vm.expectEmit(address(registry));
        emit ProviderRegistry.ListingPaused(provider, false);
        registry.setPaused(false);
        vm.expectRevert(
            abi.encodeWithSelector(
                ProviderRegistry.ListingAlreadyInState.selector,
                provider,
                ProviderRegistry.ListingStatus.Active
            )
        );
        registry.setPaused(false);
        vm.stopPrank();
    }

    function test_pauseWithoutListingReverts() public {
        vm.expectRevert(abi.encodeWithSelector(ProviderRegistry.ListingNotFound.selector, provider));
        vm.prank(provider);
        registry.setPaused(true);
    }

    function test_leaveRemovesTheListingButNotThePool() public {
        list(provider, ProviderRegistry.AcceptPolicy.Auto);
        vm.expectEmit(address(registry));
        emit ProviderRegistry.ListingRemoved(provider);
        vm.prank(provider);
        registry.leave();
        (ProviderRegistry.ListingStatus status,,,) = registry.listingOf(provider);
        assertEq(uint8(status), uint8(ProviderRegistry.ListingStatus.None));
        (uint128 deposited,) = registry.poolOf(provider);
        assertEq(deposited, 100_000 * UNIT);
        vm.prank(provider);
        registry.withdrawCollateral(deposited);
        // It may come back.
        vm.prank(provider);
        registry.register(terms(ProviderRegistry.AcceptPolicy.Manual));
    }

    function test_leaveWithoutListingReverts() public {
        vm.expectRevert(abi.encodeWithSelector(ProviderRegistry.ListingNotFound.selector, provider));
        vm.prank(provider);
        registry.leave();
    }

    function test_leaveWaitsForLiveDeals() public {
        list(provider, ProviderRegistry.AcceptPolicy.Auto);
        uint256 id = openAuto(2);
        uint128 collateral = deal(id).collateral;
        vm.expectRevert(
            abi.encodeWithSelector(
                ProviderRegistry.ProviderHasLiveDeals.selector, provider, 1, collateral
            )
        );
        vm.prank(provider);
        registry.leave();
        // Once the deal has run and closed, leaving works.
        closeThrough(deal(id).end - 1);
        market.settle(id, 10);
        vm.prank(provider);
        registry.leave();
    }

    // ------------------------------------------------------------------ collateral pool

    function test_depositAndWithdraw() public {
        vm.startPrank(provider);
        vm.expectEmit(address(registry));
        emit ProviderRegistry.PoolUpdated(provider, 500, 0, 0, 0);
        registry.depositCollateral(500);
        vm.expectEmit(address(registry));
        emit ProviderRegistry.PoolUpdated(provider, 200, 0, 0, 0);
        registry.withdrawCollateral(300);
        vm.stopPrank();
        (uint128 deposited, uint128 locked) = registry.poolOf(provider);
        assertEq(deposited, 200);
        assertEq(locked, 0);
        assertEq(token.balanceOf(address(registry)), 200);
    }

    function test_zeroAmountsRevert() public {
        vm.startPrank(provider);
        vm.expectRevert(abi.encodeWithSelector(ProviderRegistry.InvalidAmount.selector, 0, 0));
        registry.depositCollateral(0);
        vm.expectRevert(abi.encodeWithSelector(ProviderRegistry.InvalidAmount.selector, 0, 0));
        registry.withdrawCollateral(0);
        vm.stopPrank();
    }

    function test_onlyUnlockedCollateralIsWithdrawable() public {
        list(provider, ProviderRegistry.AcceptPolicy.Auto);
        uint256 id = openAuto(10);
        uint128 locked = deal(id).collateral;
        uint256 unlocked = 100_000 * UNIT - locked;
        vm.expectRevert(
            abi.encodeWithSelector(
                ProviderRegistry.InsufficientCollateral.selector, provider, unlocked + 1, unlocked
            )
        );
        vm.prank(provider);
        registry.withdrawCollateral(unlocked + 1);
        vm.prank(provider);
        registry.withdrawCollateral(unlocked);
    }

    function test_feeOnTransferDepositReverts() public {
        FeeToken fee = new FeeToken();
        ProviderRegistry other = deployRegistry(IERC20(address(fee)), address(market));
        fee.approve(address(other), 1000);
        vm.expectRevert(abi.encodeWithSelector(ProviderRegistry.InvalidAmount.selector, 1000, 990));
        other.depositCollateral(1000);
    }

    // ------------------------------------------------------------------ marketplace hooks

    function test_hooksOnlyForTheMarketplace() public {
        bytes memory unauthorized =
            abi.encodeWithSelector(ProviderRegistry.RegistryUnauthorized.selector, address(this));
        ProviderRegistry.Quote memory q = quote(provider, 1, 1, 1);
        vm.expectRevert(unauthorized);
        registry.reserve(provider, 1, 1);
        vm.expectRevert(unauthorized);
        registry.redeemQuote(q, "", consumer);
        vm.expectRevert(unauthorized);
        registry.lockMore(provider, 1);
        vm.expectRevert(unauthorized);
        registry.slash(provider, 1);
        vm.expectRevert(unauthorized);
        registry.release(provider, 1, 1, 0);
    }

    function test_reserveChecksStatusCapacityAndCollateral() public {
        vm.startPrank(address(market));
        vm.expectRevert(
            abi.encodeWithSelector(
                ProviderRegistry.ListingNotActive.selector,
                provider,
                ProviderRegistry.ListingStatus.None
            )
        );
        registry.reserve(provider, 1, 1);
        vm.stopPrank();

        list(provider, ProviderRegistry.AcceptPolicy.Manual);
        vm.prank(provider);
        registry.setPaused(true);
        vm.expectRevert(
            abi.encodeWithSelector(
                ProviderRegistry.ListingNotActive.selector,
                provider,
                ProviderRegistry.ListingStatus.Paused
            )
        );
        vm.prank(address(market));
        registry.reserve(provider, 1, 1);
        vm.prank(provider);
        registry.setPaused(false);

        uint64 capacity = uint64(1000 * GIB);
        vm.startPrank(address(market));
        vm.expectRevert(
            abi.encodeWithSelector(
                ProviderRegistry.InsufficientCapacity.selector, provider, capacity + 1, capacity
            )
        );
        registry.reserve(provider, capacity + 1, 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                ProviderRegistry.InsufficientCollateral.selector,
                provider,
                100_000 * UNIT + 1,
                100_000 * UNIT
            )
        );
        registry.reserve(provider, 1, uint128(100_000 * UNIT + 1));

        vm.expectEmit(address(registry));
        emit ProviderRegistry.PoolUpdated(provider, uint128(100_000 * UNIT), 40, capacity - 10, 1);
        registry.reserve(provider, capacity - 10, 40);
        vm.expectRevert(
            abi.encodeWithSelector(ProviderRegistry.InsufficientCapacity.selector, provider, 11, 10)
        );
        registry.reserve(provider, 11, 1);

        registry.lockMore(provider, 60);
        vm.expectRevert(
            abi.encodeWithSelector(
                ProviderRegistry.InsufficientCollateral.selector,
                provider,
                100_000 * UNIT,
                100_000 * UNIT - 100
            )
        );
        registry.lockMore(provider, uint128(100_000 * UNIT));

        // Slash 30 mid-deal, then release: 50 back to the pool, 20 taken.
        registry.slash(provider, 30);
        registry.release(provider, capacity - 10, 50, 20);
        vm.stopPrank();
        (uint128 deposited, uint128 locked) = registry.poolOf(provider);
        assertEq(locked, 0);
        assertEq(deposited, 100_000 * UNIT - 50);
        assertEq(token.balanceOf(address(market)), 50);
        (,, uint64 used, uint32 live) = registry.listingOf(provider);
        assertEq(used, 0);
        assertEq(live, 0);
    }

    function test_capacityBelowUsageOnlyBlocksNewDeals() public {
        list(provider, ProviderRegistry.AcceptPolicy.Manual);
        vm.prank(address(market));
        registry.reserve(provider, 100, 1);
        ProviderRegistry.ListingTerms memory t = terms(ProviderRegistry.AcceptPolicy.Manual);
        t.capacityBytes = 50;
        vm.prank(provider);
        registry.update(t);
        vm.expectRevert(
            abi.encodeWithSelector(ProviderRegistry.InsufficientCapacity.selector, provider, 1, 0)
        );
        vm.prank(address(market));
        registry.reserve(provider, 1, 1);
    }

    // ------------------------------------------------------------------ quotes and signatures

    function test_redeemQuote() public {
        list(provider, ProviderRegistry.AcceptPolicy.SignedQuote);
        ProviderRegistry.Quote memory q = quote(provider, uint64(GIB), 10, 100);
        bytes memory sig = signQuote(PROVIDER_PK, q);
        assertFalse(registry.isQuoteNonceUsed(provider, q.nonce));
        vm.prank(address(market));
        registry.redeemQuote(q, sig, consumer);
        assertTrue(registry.isQuoteNonceUsed(provider, q.nonce));
        (, uint128 locked) = registry.poolOf(provider);
        assertEq(locked, 100);

        vm.expectRevert(
            abi.encodeWithSelector(ProviderRegistry.QuoteNonceUsed.selector, provider, q.nonce)
        );
        vm.prank(address(market));
        registry.redeemQuote(q, sig, consumer);
    }

    function test_redeemQuoteErrors() public {
        list(provider, ProviderRegistry.AcceptPolicy.SignedQuote);
        ProviderRegistry.Quote memory q = quote(provider, uint64(GIB), 10, 100);
        bytes memory sig = signQuote(PROVIDER_PK, q);
        vm.startPrank(address(market));

        vm.expectRevert(
            abi.encodeWithSelector(ProviderRegistry.QuoteWrongConsumer.selector, consumer, reporter)
        );
        registry.redeemQuote(q, sig, reporter);

        bytes memory wrongSig = signQuote(PROVIDER2_PK, q);
        vm.expectRevert(
            abi.encodeWithSelector(ProviderRegistry.InvalidSignature.selector, provider)
        );
        registry.redeemQuote(q, wrongSig, consumer);

        q.nonce = 999;
        vm.expectRevert(
            abi.encodeWithSelector(ProviderRegistry.InvalidSignature.selector, provider)
        );
        registry.redeemQuote(q, sig, consumer); // signed with another nonce

        q = quote(provider, uint64(GIB), 10, 100);
        sig = signQuote(PROVIDER_PK, q);
        vm.warp(q.validUntil + 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                ProviderRegistry.QuoteExpired.selector, q.validUntil, q.validUntil + 1
            )
        );
        registry.redeemQuote(q, sig, consumer);
        vm.warp(q.validUntil); // inclusive
        registry.redeemQuote(q, sig, consumer);
        vm.stopPrank();
    }

    function test_quoteForAnyConsumer() public {
        list(provider, ProviderRegistry.AcceptPolicy.SignedQuote);
        ProviderRegistry.Quote memory q = quote(provider, uint64(GIB), 10, 100);
        q.consumer = address(0);
        bytes memory sig = signQuote(PROVIDER_PK, q);
        vm.prank(address(market));
        registry.redeemQuote(q, sig, reporter);
    }

    function test_quoteSignerSignsForTheProvider() public {
        ProviderRegistry.ListingTerms memory t = terms(ProviderRegistry.AcceptPolicy.SignedQuote);
        t.quoteSigner = quoteSigner;
        vm.startPrank(provider);
        registry.register(t);
        registry.depositCollateral(1000);
        vm.stopPrank();
        bytes32 digest = keccak256("anything");
        assertTrue(registry.isProviderSignature(provider, digest, sign(SIGNER_PK, digest)));
        assertTrue(registry.isProviderSignature(provider, digest, sign(PROVIDER_PK, digest)));
        assertFalse(registry.isProviderSignature(provider, digest, sign(CONSUMER_PK, digest)));
        assertFalse(registry.isProviderSignature(provider, digest, hex"1234"));

        ProviderRegistry.Quote memory q = quote(provider, uint64(GIB), 10, 100);
        bytes memory sig = signQuote(SIGNER_PK, q);
        vm.prank(address(market));
        registry.redeemQuote(q, sig, consumer);
    }

    function test_contractWalletProviderSignsWithErc1271() public {
        Wallet1271 wallet = new Wallet1271();
        bytes32 digest = keccak256("commitment");
        assertFalse(registry.isProviderSignature(address(wallet), digest, ""));
        wallet.accept(digest);
        assertTrue(registry.isProviderSignature(address(wallet), digest, ""));
    }

    function test_hashQuoteIsEip712() public view {
        ProviderRegistry.Quote memory q = ProviderRegistry.Quote({
            provider: provider,
            consumer: consumer,
            capacityBytes: 1,
            periods: 2,
            pricePerGiBMonth: 3,
            collateral: 4,
            parentDealId: 5,
            root: bytes32(uint256(6)),
            leafCount: 7,
            validUntil: 8,
            nonce: 9
        });
        bytes32 domain = keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak256("dBytes ProviderRegistry"),
                keccak256("1"),
                block.chainid,
                address(registry)
            )
        );
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Quote(address provider,address consumer,uint64 capacityBytes,uint32 periods,uint96 pricePerGiBMonth,uint128 collateral,uint256 parentDealId,bytes32 root,uint64 leafCount,uint64 validUntil,uint256 nonce)"
                ),
                q.provider,
                q.consumer,
                q.capacityBytes,
                q.periods,
                q.pricePerGiBMonth,
                q.collateral,
                q.parentDealId,
                q.root,
                q.leafCount,
                q.validUntil,
                q.nonce
            )
        );
        assertEq(registry.hashQuote(q), keccak256(abi.encodePacked("\x19\x01", domain, structHash)));
    }

    function test_quoteNoncesAreIndependentBits() public {
        list(provider, ProviderRegistry.AcceptPolicy.SignedQuote);
        uint256[4] memory nonces = [uint256(0), 255, 256, type(uint256).max];
        for (uint256 i; i < nonces.length; ++i) {
            ProviderRegistry.Quote memory q = quote(provider, 1, 1, 1);
            q.nonce = nonces[i];
            bytes memory sig = signQuote(PROVIDER_PK, q);
            vm.prank(address(market));
            registry.redeemQuote(q, sig, consumer);
        }
        for (uint256 i; i < nonces.length; ++i) {
            assertTrue(registry.isQuoteNonceUsed(provider, nonces[i]));
        }
        assertFalse(registry.isQuoteNonceUsed(provider, 1));
        assertFalse(registry.isQuoteNonceUsed(provider, 257));
        assertFalse(registry.isQuoteNonceUsed(provider2, 0));
    }
}
