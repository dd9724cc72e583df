// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {Marketplace} from "../src/Marketplace.sol";
import {ProviderRegistry} from "../src/ProviderRegistry.sol";
import {IDealBook, StorageProofs} from "../src/StorageProofs.sol";
import {MarketTest} from "./Base.t.sol";

/// @dev Takes 1% of transfers into `taxed` only, so collateral deposits work and escrow does not.
contract TaxToken is ERC20 {
    address public taxed;

    constructor() ERC20("Tax", "TAX") {
        _mint(msg.sender, 1e30);
    }

    function tax(address account) external {
        taxed = account;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (to == taxed && from != address(0)) {
            super._update(from, address(0xdead), value / 100);
            value -= value / 100;
        }
        super._update(from, to, value);
    }
}

/// @notice Opening deals, renewals, terminations, exits, credit and metadata.
contract MarketplaceTest is MarketTest {
    uint256 internal constant CAP = 30 * GIB;
    uint256 internal constant RATE = UNIT / 24; // 30 GiB at 1 token per GiB-month, per hour

    function setUp() public override {
        super.setUp();
        list(provider, ProviderRegistry.AcceptPolicy.Auto);
    }

    // ------------------------------------------------------------------ construction

    function test_constructorChecksConfigAndWiring() public {
        vm.expectRevert(abi.encodeWithSelector(Marketplace.InvalidConfig.selector, 0, 0));
        deployMarketplace(token, registry, proofs, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.InvalidConfig.selector, 65_536, 1));
        deployMarketplace(token, registry, proofs, 65_536, 1);
        // The registry and proofs are bound to the deployed marketplace, not to a new one.
        vm.expectRevert(Marketplace.InvalidWiring.selector);
        deployMarketplace(token, registry, proofs, 1, 1);

        address next = vm.computeCreateAddress(address(this), vm.getNonce(address(this)) + 2);
        ProviderRegistry r = deployRegistry(token, next);
        StorageProofs p = deployProofs(IDealBook(next), registry, PERIOD, 0, GRACE, 1, 1);
        vm.expectRevert(Marketplace.InvalidWiring.selector); // proofs name another registry
        deployMarketplace(token, r, p, 1, 1);

        next = vm.computeCreateAddress(address(this), vm.getNonce(address(this)) + 2);
        r = deployRegistry(IERC20(address(1)), next);
        p = deployProofs(IDealBook(next), r, PERIOD, 0, GRACE, 1, 1);
        vm.expectRevert(Marketplace.InvalidWiring.selector); // registry holds another token
        deployMarketplace(token, r, p, 1, 1);
    }

    function test_deploymentState() public view {
        assertEq(address(market.token()), address(token));
        assertEq(address(market.registry()), address(registry));
        assertEq(address(market.proofs()), address(proofs));
        assertEq(market.PERIOD_SECS(), PERIOD);
        assertEq(market.PROOF_GRACE_SECS(), GRACE);
        assertEq(market.FILL_PERIODS(), FILL);
        assertEq(market.EXIT_NOTICE_PERIODS(), EXIT_NOTICE);
        assertEq(market.nextDealId(), 1);
        assertEq(market.rateFor(UNIT, CAP), RATE);
    }

    // ------------------------------------------------------------------ proposals

    function propose(uint32 periods, uint32 startPeriod) internal returns (uint256) {
        vm.prank(consumer);
        return market.proposeDeal(provider, uint64(CAP), periods, uint96(UNIT), startPeriod, NODE);
    }

    function test_proposeDepositsTheWholeEscrow() public {
        uint32 s = uint32(market.currentPeriod() + 2);
        vm.expectEmit(address(market));
        emit Marketplace.DealCreated(
            1,
            consumer,
            provider,
            Marketplace.DealState.Proposed,
            uint64(CAP),
            s,
            s + 10,
            uint96(RATE),
            uint128(20 * RATE),
            NODE
        );
        uint256 id = propose(10, s);
        assertEq(id, 1);
        assertEq(market.nextDealId(), 2);
        assertEq(token.balanceOf(address(market)), 10 * RATE);
        assertEq(market.escrowOf(id), 10 * RATE);
        Marketplace.Deal memory d = deal(id);
        assertEq(uint8(d.state), uint8(Marketplace.DealState.Proposed));
        assertEq(d.consumer, consumer);
        assertEq(d.provider, provider);
        assertEq(d.settledTo, s);
        assertEq(d.end, s + 10);
        assertEq(d.consumerNodeId, NODE);
        (, uint128 locked) = registry.poolOf(provider);
        assertEq(locked, 0, "nothing locked before acceptance");
    }

    function test_proposeChecksTheListing() public {
        uint32 s = uint32(market.currentPeriod() + 1);
        vm.startPrank(consumer);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.InvalidStart.selector, s - 1, s - 1));
        market.proposeDeal(provider, uint64(CAP), 10, uint96(UNIT), s - 1, NODE);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.ListingNotActive.selector, provider2));
        market.proposeDeal(provider2, uint64(CAP), 10, uint96(UNIT), s, NODE);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.PriceBelowAsk.selector, UNIT - 1, UNIT));
        market.proposeDeal(provider, uint64(CAP), 10, uint96(UNIT - 1), s, NODE);
        vm.expectRevert(
            abi.encodeWithSelector(Marketplace.DurationOutOfRange.selector, 0, 1, 10_000)
        );
        market.proposeDeal(provider, uint64(CAP), 0, uint96(UNIT), s, NODE);
        vm.expectRevert(
            abi.encodeWithSelector(Marketplace.DurationOutOfRange.selector, 10_001, 1, 10_000)
        );
        market.proposeDeal(provider, uint64(CAP), 10_001, uint96(UNIT), s, NODE);
        vm.expectRevert(Marketplace.ZeroCapacity.selector);
        market.proposeDeal(provider, 0, 10, uint96(UNIT), s, NODE);
        vm.expectRevert(Marketplace.ZeroNodeId.selector);
        market.proposeDeal(provider, uint64(CAP), 10, uint96(UNIT), s, bytes32(0));
        // 1 KiB at 1 base unit per GiB-month earns less than one base unit per period.
        vm.stopPrank();
        ProviderRegistry.ListingTerms memory t = terms(ProviderRegistry.AcceptPolicy.Manual);
        t.pricePerGiBMonth = 1;
        vm.prank(provider);
        registry.update(t);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.RateTooLow.selector, 1, 1024));
        vm.prank(consumer);
        market.proposeDeal(provider, 1024, 10, 1, s, NODE);
        vm.prank(provider);
        registry.setPaused(true);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.ListingNotActive.selector, provider));
        vm.prank(consumer);
        market.proposeDeal(provider, uint64(CAP), 10, uint96(UNIT), s, NODE);
    }

    function test_amountsThatDoNotFitRevert() public {
        uint32 s = uint32(market.currentPeriod() + 1);
        uint96 price = type(uint96).max;
        uint64 capacity = type(uint64).max;
        uint256 rate = market.rateFor(price, capacity);
        ProviderRegistry.ListingTerms memory t = terms(ProviderRegistry.AcceptPolicy.Auto);
        t.capacityBytes = capacity;
        vm.prank(provider);
        registry.update(t);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.AmountTooLarge.selector, rate));
        vm.prank(consumer);
        market.proposeDeal(provider, capacity, 1, price, s, NODE);
        // A start and length whose end passes 2^32.
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.AmountTooLarge.selector, uint256(type(uint32).max) + 1
            )
        );
        vm.prank(consumer);
        market.proposeDeal(provider, uint64(CAP), 1, uint96(UNIT), type(uint32).max, NODE);
    }

    function test_collateralFollowsTheListingTerms() public {
        ProviderRegistry.ListingTerms memory t = terms(ProviderRegistry.AcceptPolicy.Auto);
        t.collateralBps = 30_000; // 3x
        vm.prank(provider);
        registry.update(t);
        uint256 id = openAuto(10);
        assertEq(deal(id).collateral, 30 * RATE);
        // A per-GiB floor above the multiple wins.
        t.collateralPerGiB = uint96(UNIT);
        vm.prank(provider);
        registry.update(t);
        id = openAuto(10);
        assertEq(deal(id).collateral, 30 * UNIT);
    }

    function test_acceptLocksCollateral() public {
        uint32 s = uint32(market.currentPeriod() + 2);
        uint256 id = propose(10, s);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotProvider.selector, id, consumer));
        vm.prank(consumer);
        market.acceptDeal(id);
        vm.expectEmit(address(market));
        emit Marketplace.DealAccepted(id);
        vm.prank(provider);
        market.acceptDeal(id);
        assertEq(uint8(deal(id).state), uint8(Marketplace.DealState.Active));
        (, uint128 locked) = registry.poolOf(provider);
        assertEq(locked, 20 * RATE);
        (,, uint64 used, uint32 live) = registry.listingOf(provider);
        assertEq(used, CAP);
        assertEq(live, 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.InvalidDealState.selector, id, Marketplace.DealState.Active
            )
        );
        vm.prank(provider);
        market.acceptDeal(id);
    }

    function test_acceptUntilTheStartPeriod() public {
        uint32 s = uint32(market.currentPeriod() + 2);
        uint256 id = propose(10, s);
        warpTo(s - 1, PERIOD - 1); // last second before the start: still fine
        vm.prank(provider);
        market.acceptDeal(id);
        uint256 late = propose(10, s);
        warpTo(s, 0);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.ProposalExpired.selector, late, s));
        vm.prank(provider);
        market.acceptDeal(late);
    }

    function test_acceptNeedsRoomAndCollateral() public {
        uint32 s = uint32(market.currentPeriod() + 2);
        uint256 id = propose(10, s);
        vm.startPrank(provider);
        registry.withdrawCollateral(100_000 * UNIT - 20 * RATE + 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                ProviderRegistry.InsufficientCollateral.selector, provider, 20 * RATE, 20 * RATE - 1
            )
        );
        market.acceptDeal(id);
        vm.stopPrank();
    }

    function test_declineRefundsTheConsumer() public {
        uint256 id = propose(10, uint32(market.currentPeriod() + 2));
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotProvider.selector, id, consumer));
        vm.prank(consumer);
        market.declineDeal(id);
        vm.expectEmit(address(market));
        emit Marketplace.Credited(consumer, id, 10 * RATE);
        vm.expectEmit(address(market));
        emit Marketplace.DealDeclined(id, 10 * RATE);
        vm.prank(provider);
        market.declineDeal(id);
        assertEq(uint8(deal(id).state), uint8(Marketplace.DealState.Closed));
        assertEq(market.credit(consumer), 10 * RATE);
        assertEq(market.escrowOf(id), 0);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.InvalidDealState.selector, id, Marketplace.DealState.Closed
            )
        );
        vm.prank(provider);
        market.declineDeal(id);
    }

    function test_cancelProposal() public {
        uint32 s = uint32(market.currentPeriod() + 2);
        uint256 id = propose(10, s);
        // Others may clear it only once it has expired.
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotConsumer.selector, id, reporter));
        vm.prank(reporter);
        market.cancelProposal(id);
        vm.expectEmit(address(market));
        emit Marketplace.DealCancelled(id, 10 * RATE);
        vm.prank(consumer);
        market.cancelProposal(id);
        assertEq(market.credit(consumer), 10 * RATE);

        uint256 other = propose(5, s);
        warpTo(s, 0);
        vm.prank(reporter);
        market.cancelProposal(other);
        assertEq(market.credit(consumer), 15 * RATE);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.InvalidDealState.selector, other, Marketplace.DealState.Closed
            )
        );
        market.cancelProposal(other);
    }

    // ------------------------------------------------------------------ one-transaction opens

    function test_openDealOnAnAutoListing() public {
        uint32 s = uint32(market.currentPeriod() + 1);
        vm.expectEmit(address(market));
        emit Marketplace.DealCreated(
            1,
            consumer,
            provider,
            Marketplace.DealState.Active,
            uint64(CAP),
            s,
            s + 10,
            uint96(RATE),
            uint128(20 * RATE),
            NODE
        );
        uint256 id = openAuto(10);
        assertEq(uint8(deal(id).state), uint8(Marketplace.DealState.Active));
        assertEq(token.balanceOf(address(market)), 10 * RATE);
        (, uint128 locked) = registry.poolOf(provider);
        assertEq(locked, 20 * RATE);
    }

    function test_openDealNeedsAnAutoListing() public {
        list(provider2, ProviderRegistry.AcceptPolicy.Manual);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.PolicyMismatch.selector, provider2, ProviderRegistry.AcceptPolicy.Manual
            )
        );
        openAutoWith(provider2, uint64(CAP), 10);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.ListingNotActive.selector, reporter));
        openAutoWith(reporter, uint64(CAP), 10);
        vm.expectRevert(
            abi.encodeWithSelector(
                ProviderRegistry.InsufficientCapacity.selector, provider, 1001 * GIB, 1000 * GIB
            )
        );
        openAutoWith(provider, uint64(1001 * GIB), 10);
    }

    function test_openDealWithQuote() public {
        list(provider2, ProviderRegistry.AcceptPolicy.SignedQuote);
        ProviderRegistry.Quote memory q = quote(provider2, uint64(CAP), 10, uint128(25 * RATE));
        bytes memory sig = signQuote(PROVIDER2_PK, q);
        vm.prank(consumer);
        uint256 id = market.openDealWithQuote(q, sig, NODE);
        Marketplace.Deal memory d = deal(id);
        assertEq(d.provider, provider2);
        assertEq(d.collateral, 25 * RATE);
        assertEq(uint8(d.state), uint8(Marketplace.DealState.Active));
        assertTrue(registry.isQuoteNonceUsed(provider2, q.nonce));
        // The same quote cannot open a second deal.
        vm.expectRevert(
            abi.encodeWithSelector(ProviderRegistry.QuoteNonceUsed.selector, provider2, q.nonce)
        );
        vm.prank(consumer);
        market.openDealWithQuote(q, sig, NODE);
    }

    function test_openDealWithQuoteErrors() public {
        list(provider2, ProviderRegistry.AcceptPolicy.SignedQuote);
        ProviderRegistry.Quote memory q = quote(provider2, uint64(CAP), 10, uint128(20 * RATE - 1));
        bytes memory sig = signQuote(PROVIDER2_PK, q);
        vm.expectRevert(
            abi.encodeWithSelector(Marketplace.CollateralTooLow.selector, 20 * RATE - 1, 20 * RATE)
        );
        vm.prank(consumer);
        market.openDealWithQuote(q, sig, NODE);

        q = quote(provider2, uint64(CAP), 10, uint128(20 * RATE));
        q.parentDealId = 1;
        sig = signQuote(PROVIDER2_PK, q);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.QuoteMismatch.selector, 1));
        vm.prank(consumer);
        market.openDealWithQuote(q, sig, NODE);

        q.parentDealId = 0;
        q.root = bytes32(uint256(1));
        sig = signQuote(PROVIDER2_PK, q);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.QuoteMismatch.selector, 0));
        vm.prank(consumer);
        market.openDealWithQuote(q, sig, NODE);

        q = quote(provider2, uint64(CAP), 10, uint128(20 * RATE));
        sig = signQuote(CONSUMER_PK, q);
        vm.expectRevert(
            abi.encodeWithSelector(ProviderRegistry.InvalidSignature.selector, provider2)
        );
        vm.prank(consumer);
        market.openDealWithQuote(q, sig, NODE);
    }

    function test_escrowArrivalIsChecked() public {
        TaxToken tax = new TaxToken();
        address next = vm.computeCreateAddress(address(this), vm.getNonce(address(this)) + 2);
        ProviderRegistry r = deployRegistry(IERC20(address(tax)), next);
        StorageProofs p = deployProofs(IDealBook(next), r, PERIOD, 0, GRACE, 1, 1);
        Marketplace m = deployMarketplace(IERC20(address(tax)), r, p, FILL, EXIT_NOTICE);
        tax.tax(address(m));
        tax.transfer(provider, 1e24);
        tax.transfer(consumer, 1e24);
        vm.startPrank(provider);
        tax.approve(address(r), type(uint256).max);
        r.register(terms(ProviderRegistry.AcceptPolicy.Auto));
        r.depositCollateral(1e24);
        vm.stopPrank();
        vm.startPrank(consumer);
        tax.approve(address(m), type(uint256).max);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.TransferMismatch.selector, 10 * RATE, 10 * RATE - RATE / 10
            )
        );
        m.openDeal(provider, uint64(CAP), 10, uint96(UNIT), NODE);
        vm.stopPrank();
    }

    // ------------------------------------------------------------------ renew

    function test_renewOnAnAutoListing() public {
        uint256 id = openAuto(10);
        uint32 end = deal(id).end;
        vm.expectEmit(address(market));
        emit Marketplace.DealRenewed(id, end + 5, 5 * RATE, uint128(10 * RATE));
        vm.prank(consumer);
        market.renew(id, 5, 0, "");
        Marketplace.Deal memory d = deal(id);
        assertEq(d.end, end + 5);
        assertEq(d.collateral, 30 * RATE);
        assertEq(market.escrowOf(id), 15 * RATE);
        assertEq(token.balanceOf(address(market)), 15 * RATE);
        (, uint128 locked) = registry.poolOf(provider);
        assertEq(locked, 30 * RATE);
    }

    function test_renewAutoPathErrors() public {
        uint256 id = openAuto(10);
        vm.startPrank(consumer);
        vm.expectRevert(
            abi.encodeWithSelector(Marketplace.DurationOutOfRange.selector, 0, 1, type(uint32).max)
        );
        market.renew(id, 0, 0, "");
        vm.expectRevert(
            abi.encodeWithSelector(Marketplace.DurationOutOfRange.selector, 10_001, 1, 10_000)
        );
        market.renew(id, 10_001, 0, "");
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.AmountTooLarge.selector, uint256(deal(id).end) + type(uint32).max
            )
        );
        market.renew(id, type(uint32).max, 0, "");
        vm.stopPrank();

        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotConsumer.selector, id, provider));
        vm.prank(provider);
        market.renew(id, 1, 0, "");

        ProviderRegistry.ListingTerms memory t = terms(ProviderRegistry.AcceptPolicy.Auto);
        t.pricePerGiBMonth = uint96(2 * UNIT);
        vm.prank(provider);
        registry.update(t);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.PriceBelowAsk.selector, RATE, market.rateFor(2 * UNIT, CAP)
            )
        );
        vm.prank(consumer);
        market.renew(id, 1, 0, "");

        t.policy = ProviderRegistry.AcceptPolicy.Manual;
        vm.prank(provider);
        registry.update(t);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.PolicyMismatch.selector, provider, ProviderRegistry.AcceptPolicy.Manual
            )
        );
        vm.prank(consumer);
        market.renew(id, 1, 0, "");
    }

    function test_renewOnlyBeforeTheLastPeriod() public {
        uint256 id = openAuto(3);
        uint256 end = deal(id).end;
        warpTo(end - 1, PERIOD - 1); // the last period has not begun
        vm.prank(consumer);
        market.renew(id, 1, 0, "");
        warpTo(end + 1, 0); // the new last period (end) is under way, unsettled
        vm.expectRevert(abi.encodeWithSelector(Marketplace.TermOver.selector, id, end + 1));
        vm.prank(consumer);
        market.renew(id, 1, 0, "");
    }

    function test_renewWithTheProvidersConsent() public {
        ProviderRegistry.ListingTerms memory t = terms(ProviderRegistry.AcceptPolicy.Manual);
        t.quoteSigner = quoteSigner;
        vm.prank(provider);
        registry.update(t);
        uint256 id = openDealQuoted();
        uint32 end = deal(id).end;
        uint64 until = uint64(block.timestamp + 100);
        bytes memory sig = sign(SIGNER_PK, market.hashRenewal(id, end, end + 7, until));
        bytes memory wrong = sign(CONSUMER_PK, market.hashRenewal(id, end, end + 7, until));
        vm.startPrank(consumer);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.InvalidSignature.selector, provider));
        market.renew(id, 7, until, wrong);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.InvalidSignature.selector, provider));
        market.renew(id, 6, until, sig); // consent was for 7
        market.renew(id, 7, until, sig);
        assertEq(deal(id).end, end + 7);
        // Consent names the old end, so it cannot be replayed.
        vm.expectRevert(abi.encodeWithSelector(Marketplace.InvalidSignature.selector, provider));
        market.renew(id, 7, until, sig);
        vm.warp(until + 1);
        vm.expectRevert(
            abi.encodeWithSelector(Marketplace.RenewalExpired.selector, until, until + 1)
        );
        market.renew(id, 7, until, sig);
        vm.stopPrank();
    }

    function openDealQuoted() internal returns (uint256 id) {
        ProviderRegistry.Quote memory q = quote(provider, uint64(CAP), 10, uint128(20 * RATE));
        bytes memory sig = signQuote(PROVIDER_PK, q);
        vm.prank(consumer);
        id = market.openDealWithQuote(q, sig, NODE);
    }

    function test_hashRenewalIsEip712() public view {
        bytes32 domain = keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak256("dBytes Marketplace"),
                keccak256("1"),
                block.chainid,
                address(market)
            )
        );
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Renewal(uint256 dealId,uint32 end,uint32 newEnd,uint64 validUntil)"),
                uint256(1),
                uint32(2),
                uint32(3),
                uint64(4)
            )
        );
        assertEq(
            market.hashRenewal(1, 2, 3, 4),
            keccak256(abi.encodePacked("\x19\x01", domain, structHash))
        );
    }

    // ------------------------------------------------------------------ terminate and exits

    function test_terminateGivesOnePeriodOfNotice() public {
        uint256 id = openAuto(10);
        uint256 start = deal(id).settledTo;
        warpTo(start + 2, 100);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotConsumer.selector, id, provider));
        vm.prank(provider);
        market.terminate(id);
        vm.expectEmit(address(market));
        emit Marketplace.DealTerminated(id, uint32(start + 4), 6 * RATE);
        vm.prank(consumer);
        market.terminate(id);
        Marketplace.Deal memory d = deal(id);
        assertEq(uint8(d.state), uint8(Marketplace.DealState.Terminating));
        assertEq(d.end, start + 4);
        assertEq(market.credit(consumer), 6 * RATE);
        assertEq(market.escrowOf(id), 4 * RATE);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.InvalidDealState.selector, id, Marketplace.DealState.Terminating
            )
        );
        vm.prank(consumer);
        market.terminate(id);
        // It still closes normally at its new end.
        closeThrough(start + 3);
        market.settle(id, 100);
        assertEq(uint8(deal(id).state), uint8(Marketplace.DealState.Closed));
    }

    function test_terminateBeforeTheStartPaysTheFirstPeriod() public {
        uint32 s = uint32(market.currentPeriod() + 5);
        vm.prank(consumer);
        uint256 id = market.proposeDeal(provider, uint64(CAP), 10, uint96(UNIT), s, NODE);
        vm.prank(provider);
        market.acceptDeal(id);
        vm.prank(consumer);
        market.terminate(id);
        assertEq(deal(id).end, s + 1);
        assertEq(market.credit(consumer), 9 * RATE);
    }

    function test_terminateNearTheEndRefundsNothing() public {
        uint256 id = openAuto(3);
        warpTo(deal(id).end - 1, 0);
        vm.prank(consumer);
        market.terminate(id);
        assertEq(deal(id).end, deal(id).settledTo + 3);
        assertEq(market.credit(consumer), 0);
    }

    function test_exitGracefullyGivesNotice() public {
        uint256 id = openAuto(20);
        uint256 start = deal(id).settledTo;
        warpTo(start + 1, 0);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NotProvider.selector, id, consumer));
        vm.prank(consumer);
        market.exitGracefully(id);
        uint32 newEnd = uint32(start + 2 + EXIT_NOTICE);
        vm.expectEmit(address(market));
        emit Marketplace.DealExiting(id, newEnd, uint32(start + 20), (start + 20 - newEnd) * RATE);
        vm.prank(provider);
        market.exitGracefully(id);
        Marketplace.Deal memory d = deal(id);
        assertEq(uint8(d.state), uint8(Marketplace.DealState.Exiting));
        assertEq(d.end, newEnd);
        assertEq(d.termEnd, start + 20);
        vm.expectRevert(
            abi.encodeWithSelector(
                Marketplace.InvalidDealState.selector, id, Marketplace.DealState.Exiting
            )
        );
        vm.prank(provider);
        market.exitGracefully(id);
        // The provider keeps its held-back pay: the deal closes normally.
        closeThrough(newEnd - 1);
        market.settle(id, 100);
        d = deal(id);
        assertEq(uint8(d.state), uint8(Marketplace.DealState.Closed));
        uint256 paid = (newEnd - start) * RATE;
        assertEq(market.credit(provider), paid);
    }

    // ------------------------------------------------------------------ credit and metadata

    function test_withdraw() public {
        uint256 id = propose(10, uint32(market.currentPeriod() + 2));
        vm.prank(provider);
        market.declineDeal(id);
        uint256 before = token.balanceOf(consumer);
        vm.expectEmit(address(market));
        emit Marketplace.Withdrawn(consumer, 10 * RATE);
        vm.prank(consumer);
        assertEq(market.withdraw(), 10 * RATE);
        assertEq(token.balanceOf(consumer), before + 10 * RATE);
        assertEq(market.credit(consumer), 0);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.NothingToWithdraw.selector, consumer));
        vm.prank(consumer);
        market.withdraw();
    }

    function test_metadataPointer() public {
        (bytes32 hash, bytes memory locator) = market.metadataOf(consumer);
        assertEq(hash, 0);
        assertEq(locator.length, 0);
        vm.expectEmit(address(market));
        emit Marketplace.MetadataUpdated(
            consumer, keccak256("snapshot"), bytes("deal:7/object:abc")
        );
        vm.prank(consumer);
        market.setMetadata(keccak256("snapshot"), bytes("deal:7/object:abc"));
        (hash, locator) = market.metadataOf(consumer);
        assertEq(hash, keccak256("snapshot"));
        assertEq(string(locator), "deal:7/object:abc");
        vm.prank(consumer);
        market.setMetadata(keccak256("v2"), new bytes(256));
        (hash, locator) = market.metadataOf(consumer);
        assertEq(locator.length, 256);
        vm.expectRevert(abi.encodeWithSelector(Marketplace.LocatorTooLong.selector, 257, 256));
        vm.prank(consumer);
        market.setMetadata(keccak256("v3"), new bytes(257));
    }

    function test_commitTermsForTheProofContract() public {
        uint256 id = openAuto(10);
        (address c, address p, uint64 capacity, uint32 settledTo, uint32 end, uint8 state) =
            market.commitTerms(id);
        assertEq(c, consumer);
        assertEq(p, provider);
        assertEq(capacity, CAP);
        assertEq(settledTo, market.currentPeriod() + 1);
        assertEq(end, settledTo + 10);
        assertEq(state, uint8(Marketplace.DealState.Active));
    }
}
