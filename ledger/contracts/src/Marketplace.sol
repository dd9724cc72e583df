// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {PeriodClock} from "./PeriodClock.sol";
import {ProviderRegistry} from "./ProviderRegistry.sol";
import {IDealBook, StorageProofs} from "./StorageProofs.sol";

/**
 * @title Marketplace
 * @notice Storage deals between a consumer and a provider: escrow, collateral, payment per
 * proven period, slashing, renewal, termination, exits and repair. It holds every token paid
 * into deals and pays out only through a credit ledger ({withdraw}).
 *
 * Money. A deal's price is an integer `ratePerPeriod`, computed once when the deal is created as
 * `mulDiv(pricePerGiBMonth, capacityBytes * PERIOD_SECS, GiB * 30 days)`, rounding down; no price
 * per byte-second is stored (at 18 decimals a realistic one is below one base unit). The escrow
 * is exactly `ratePerPeriod * (end - settledTo)` at all times, so every settled period moves
 * exactly one rate out of escrow, and nothing is left over at the end. Payment accrues on the
 * capacity the deal reserves, not on the bytes committed so far.
 *
 * Lifecycle (states only move forward, see {DealState}): a deal opens by {proposeDeal} +
 * {acceptDeal}, or in one transaction by {openDeal} (auto-accept listing) or {openDealWithQuote}
 * (EIP-712 quote). The provider locks collateral of at least twice the total price from its pool
 * in the {ProviderRegistry}. Consumer and provider co-sign commitments to the deal's data in
 * {StorageProofs}, where the provider proves possession once per period.
 *
 * Settlement is lazy and bounded: {settle} walks at most `maxPeriods` closed periods. A proven
 * period, or one before any commitment (the capacity is reserved, nothing can be proven), pays
 * the provider, of which `HOLD_BACK_BPS` is held back until the deal ends. An unproven period
 * refunds the consumer and slashes `max(3 x rate, 5% of collateral)`: most to the consumer, a
 * capped share to whoever settled it. After `MAX_CONSECUTIVE_MISSES` in a row or
 * `MAX_TOTAL_MISSES` in all the deal fails, and the consumer can {reassign} its commitment to a
 * new provider (repair). The result of settling never depends on when or by whom it is done,
 * except for who receives the reporter share.
 *
 * @dev Every loop is bounded by a bound the caller passes and pays for (`maxPeriods`). Token
 * movements use SafeERC20, deposits check the balance delta, state is written before any call
 * out, and state-changing entry points are `nonReentrant`. The only external calls go to the
 * token and to the registry and proof contracts, whose links the constructor verifies; there is
 * no admin, no pause and no upgrade.
 *
 * Departures from research/contracts-design.md, each explained where it is made: the contract
 * is split in three (EIP-170), collateral pools live in the registry, the seed omits
 * `prevrandao`, failure forfeits all remaining collateral (abandoning forfeits only the repair
 * share), and periods before the first commitment are paid.
 */
contract Marketplace is IDealBook, PeriodClock, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    // ================================================================== types

    /// @notice Where a deal is in its life. Transitions only go to a higher value.
    enum DealState {
        None,
        /// Escrow deposited, waiting for the provider until the start period begins.
        Proposed,
        /// Accepted: running, or waiting for its start period.
        Active,
        /// The consumer gave notice; the deal ends at `end`.
        Terminating,
        /// The provider gave notice (graceful exit); the deal ends at `end` and may be handed over.
        Exiting,
        /// Too many missed proofs, or abandoned by the provider; may be reassigned.
        Failed,
        /// Settled and paid out, declined or cancelled; terminal.
        Closed
    }

    /**
     * @notice A deal, packed so that settlement reads slots 0-3.
     * @dev The start period is not stored: it is in {DealCreated}, and `settledTo` equals it
     * until the first settlement (while proposed it is also the acceptance deadline).
     */
    struct Deal {
        // slot 0
        address provider;
        uint96 ratePerPeriod;
        // slot 1
        address consumer;
        uint32 end; // exclusive
        uint32 settledTo; // first period not yet settled
        DealState state;
        uint8 missedRun; // consecutive missed periods
        uint8 missedTotal;
        // slot 2
        uint128 collateral; // posted, including renewals
        uint64 capacityBytes;
        uint32 fillBy; // repair deals: unproven periods before it are not slashed; 0 once filled
        // slot 3
        uint128 heldBack; // pay withheld until the deal ends
        uint128 slashed; // collateral taken so far
        // slot 4
        bytes32 consumerNodeId; // the consumer's iroh node id: providers serve reads only to it
        // slot 5
        uint128 repairReward; // earmarked for the provider that fills a reassigned deal
        uint32 termEnd; // how far a successor of a failed or exiting deal may run; 0 if none
    }

    /// @dev A deal about to be written by {_createDeal}.
    struct NewDeal {
        address consumer;
        address provider;
        uint64 capacityBytes;
        uint256 start;
        uint256 periods;
        uint256 pricePerGiBMonth;
        uint256 collateral;
        bytes32 consumerNodeId;
        DealState state;
    }

    /// @dev Settlement tallies, in memory to stay clear of the stack limit.
    struct Tally {
        uint256 paidPeriods;
        uint256 refundedPeriods;
        uint256 missed;
        uint256 slashTotal;
        uint256 consumerSlash;
        uint256 reporterSlash;
        uint256 failedAt;
        uint256 run;
        uint256 total;
        uint256 slashEach;
        uint256 collateralLeft;
        bool failed;
        bool filled;
    }

    // ================================================================== constants

    /// @notice Bytes in a GiB, the unit of listed prices.
    uint256 public constant GIB = 1 << 30;
    /// @notice Seconds in the month of listed prices (30 days).
    uint256 public constant MONTH_SECS = 30 days;
    /// @notice Smallest collateral multiple of a deal's total price (2x, Sia's default), in bps.
    uint256 public constant MIN_COLLATERAL_BPS = 20_000;
    /// @notice Share of each proven period's pay held back until the deal ends.
    uint256 public constant HOLD_BACK_BPS = 2_000;
    /// @notice A missed period slashes at least this many periods' pay ...
    uint256 public constant SLASH_RATE_MULTIPLE = 3;
    /// @notice ... and at least this share of the deal's collateral.
    uint256 public constant SLASH_COLLATERAL_BPS = 500;
    /// @notice Share of a slash paid to whoever settles the missed period (never the provider) ...
    uint256 public constant REPORTER_BPS = 1_000;
    /// @notice ... capped at this many periods' pay.
    uint256 public constant REPORTER_CAP_RATE_MULTIPLE = 1;
    /// @notice Consecutive missed periods that fail a deal.
    uint256 public constant MAX_CONSECUTIVE_MISSES = 3;
    /// @notice Missed periods over a deal's life that fail it.
    uint256 public constant MAX_TOTAL_MISSES = 10;
    /// @notice Share of a failed deal's collateral earmarked for the provider that repairs it.
    uint256 public constant REPAIR_REWARD_BPS = 1_000;
    /// @notice Longest metadata locator.
    uint256 public constant MAX_LOCATOR_BYTES = 256;
    /// @notice EIP-712 type of a provider's consent to a renewal (this contract's domain).
    bytes32 public constant RENEWAL_TYPEHASH =
        keccak256("Renewal(uint256 dealId,uint32 end,uint32 newEnd,uint64 validUntil)");
    uint256 private constant BPS = 10_000;

    // ================================================================== immutables

    /// @notice The token deals are paid in.
    IERC20 public immutable token;
    /// @notice Listings, collateral pools and quotes.
    ProviderRegistry public immutable registry;
    /// @notice Commitments, seeds and proofs; its period clock is this contract's.
    StorageProofs public immutable proofs;
    /// @notice Periods a repair deal has for its first proof.
    uint256 public immutable FILL_PERIODS;
    /// @notice Notice periods of a graceful exit.
    uint256 public immutable EXIT_NOTICE_PERIODS;

    // ================================================================== storage

    /// @notice Id the next deal gets; ids start at 1 and are never reused.
    uint256 public nextDealId = 1;
    /// @notice Pull-payment ledger: base units each account can {withdraw}.
    mapping(address account => uint256) public credit;

    mapping(uint256 dealId => Deal) private _deals;
    mapping(address consumer => bytes32) private _metadataHashes;
    mapping(address consumer => bytes) private _metadataLocators;

    // ================================================================== events

    /// @notice A deal was proposed (`state` Proposed) or opened (`state` Active). A repair or
    /// hand-over deal is followed by {DealReassigned} naming its parent.
    event DealCreated(
        uint256 indexed dealId,
        address indexed consumer,
        address indexed provider,
        DealState state,
        uint64 capacityBytes,
        uint256 start,
        uint256 end,
        uint96 ratePerPeriod,
        uint128 collateral,
        bytes32 consumerNodeId
    );
    /// @notice The provider accepted a proposal; its collateral is locked.
    event DealAccepted(uint256 indexed dealId);
    /// @notice The provider declined a proposal; `refund` went to the consumer's credit.
    event DealDeclined(uint256 indexed dealId, uint256 refund);
    /// @notice A proposal was withdrawn or expired; `refund` went to the consumer's credit.
    event DealCancelled(uint256 indexed dealId, uint256 refund);
    /// @notice `period` of the deal was not proven; `reporter` (0 if none) shared the slash.
    event ProofMissed(uint256 indexed dealId, uint256 indexed period, address reporter);
    /// @notice Periods `[fromPeriod, toPeriod)` were settled: `paid` to the provider, of which
    /// `heldBack` withheld; `refunded` to the consumer (its slash share included); `slashed`
    /// taken from collateral, of which `reporterReward` to the reporter.
    event Settled(
        uint256 indexed dealId,
        uint256 fromPeriod,
        uint256 toPeriod,
        uint256 paid,
        uint256 heldBack,
        uint256 refunded,
        uint256 slashed,
        uint256 reporterReward
    );
    /// @notice The deal failed at `atPeriod` (missed proofs, or `abandoned` by its provider).
    /// `refund` of escrow and `heldBackForfeited` went to the consumer; `collateralTaken` left the
    /// provider's pool, of which `repairReward` is earmarked for a repair and the rest went to the
    /// consumer. The commitment a repair inherits is the deal's latest in {StorageProofs}.
    event DealFailed(
        uint256 indexed dealId,
        uint256 atPeriod,
        bool abandoned,
        uint256 refund,
        uint256 heldBackForfeited,
        uint256 collateralTaken,
        uint256 repairReward
    );
    /// @notice The consumer extended the deal to `newEnd`, adding escrow and collateral.
    event DealRenewed(
        uint256 indexed dealId, uint256 newEnd, uint256 escrowAdded, uint256 collateralAdded
    );
    /// @notice The consumer gave notice: the deal ends at `newEnd`; `refund` went to its credit.
    event DealTerminated(uint256 indexed dealId, uint256 newEnd, uint256 refund);
    /// @notice The provider gave notice: the deal ends at `newEnd` and may be handed over up to
    /// `termEnd`; `refund` went to the consumer's credit.
    event DealExiting(uint256 indexed dealId, uint256 newEnd, uint256 termEnd, uint256 refund);
    /// @notice The deal's commitment moved to `childId` with `provider`, taking `repairReward`
    /// along (any of the child's escrow paid from credit shows as {CreditSpent}).
    event DealReassigned(
        uint256 indexed dealId,
        uint256 indexed childId,
        address indexed provider,
        uint256 repairReward
    );
    /// @notice The deal closed: `heldBackReleased` to the provider, `collateralReleased` back to
    /// its pool, `repairRewardReturned` to the consumer.
    event DealClosed(
        uint256 indexed dealId,
        uint256 heldBackReleased,
        uint256 collateralReleased,
        uint256 repairRewardReturned
    );
    /// @notice The repair deal delivered its first proof: its provider got the earmarked reward.
    event RepairRewardPaid(uint256 indexed dealId, address indexed provider, uint256 amount);
    /// @notice `amount` was added to `account`'s credit because of `dealId`.
    event Credited(address indexed account, uint256 indexed dealId, uint256 amount);
    /// @notice `amount` of `account`'s credit paid escrow of `dealId`.
    event CreditSpent(address indexed account, uint256 indexed dealId, uint256 amount);
    /// @notice `account` withdrew `amount`.
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice `account`'s metadata pointer is now (`hash`, `locator`).
    event MetadataUpdated(address indexed account, bytes32 hash, bytes locator);

    // ================================================================== errors

    /// @notice A deployment parameter is out of bounds.
    error InvalidConfig(uint256 fillPeriods, uint256 exitNoticePeriods);
    /// @notice The registry or proof contract is bound to another marketplace, registry or token.
    error InvalidWiring();
    /// @notice The deal is in `state`, where this call is not allowed.
    error InvalidDealState(uint256 dealId, DealState state);
    /// @notice Only the deal's consumer may do this.
    error NotConsumer(uint256 dealId, address caller);
    /// @notice Only the deal's provider may do this.
    error NotProvider(uint256 dealId, address caller);
    /// @notice The provider's listing does not take deals (or renewals) this way.
    error PolicyMismatch(address provider, ProviderRegistry.AcceptPolicy policy);
    /// @notice The listing is paused or absent.
    error ListingNotActive(address provider);
    /// @notice The price offered is below the provider's ask.
    error PriceBelowAsk(uint256 offered, uint256 ask);
    /// @notice The duration is outside the allowed bounds.
    error DurationOutOfRange(uint256 periods, uint256 minPeriods, uint256 maxPeriods);
    /// @notice The price and capacity give a rate of zero base units per period.
    error RateTooLow(uint256 pricePerGiBMonth, uint256 capacityBytes);
    /// @notice An amount or period number does not fit its storage type.
    error AmountTooLarge(uint256 amount);
    /// @notice Collateral below twice the deal's total price.
    error CollateralTooLow(uint256 collateral, uint256 required);
    /// @notice Zero capacity.
    error ZeroCapacity();
    /// @notice Zero consumer node id.
    error ZeroNodeId();
    /// @notice A proposal must start after the current period.
    error InvalidStart(uint256 start, uint256 currentPeriod);
    /// @notice The proposal's start period has begun; it can no longer be accepted.
    error ProposalExpired(uint256 dealId, uint256 start);
    /// @notice The quote is for a repair (or not), or for another deal, capacity or length.
    error QuoteMismatch(uint256 dealId);
    /// @notice The renewal consent's `validUntil` has passed.
    error RenewalExpired(uint256 validUntil, uint256 timestamp);
    /// @notice The signature is neither the provider's nor its quote signer's.
    error InvalidSignature(address provider);
    /// @notice No closed period is left to settle.
    error NothingToSettle(uint256 dealId, uint256 settledTo);
    /// @notice The period is proven, already settled, not under a commitment, or still open.
    error PeriodNotMissed(uint256 dealId, uint256 period);
    /// @notice Closed periods before `firstOpen` must be settled first.
    error SettleFirst(uint256 dealId, uint256 settledTo, uint256 firstOpen);
    /// @notice The deal's last period has begun; it can no longer be extended.
    error TermOver(uint256 dealId, uint256 end);
    /// @notice No term is left to hand to a new provider.
    error NothingToReassign(uint256 dealId);
    /// @notice The new provider must differ from the failed or exiting one.
    error SameProvider(address provider);
    /// @notice The caller's credit is zero.
    error NothingToWithdraw(address account);
    /// @notice The metadata locator is too long.
    error LocatorTooLong(uint256 length, uint256 max);
    /// @notice The token moved a different amount than asked (fee-on-transfer tokens are refused).
    error TransferMismatch(uint256 expected, uint256 received);

    // ================================================================== construction

    /**
     * @param token_ The payment and collateral token (a plain ERC-20, see {StorageToken}).
     * @param registry_ The registry, deployed with this contract's (predicted) address.
     * @param proofs_ The proof contract, deployed with this contract's address and `registry_`;
     * its period clock is this contract's.
     * @param fillPeriods Periods a repair deal has for its first proof (at most 65535).
     * @param exitNoticePeriods Notice of a graceful exit, at least 1.
     * @dev The three contracts reference each other, so the registry and proof contract are
     * deployed first with this contract's address computed from the deployer's nonce (see
     * `script/Deploy.s.sol`); the constructor checks every link, so no admin ever sets one.
     */
    constructor(
        IERC20 token_,
        ProviderRegistry registry_,
        StorageProofs proofs_,
        uint256 fillPeriods,
        uint256 exitNoticePeriods
    )
        PeriodClock(proofs_.PERIOD_SECS(), proofs_.GENESIS(), proofs_.PROOF_GRACE_SECS())
        EIP712("dBytes Marketplace", "1")
    {
        if (exitNoticePeriods == 0 || fillPeriods > type(uint16).max) {
            revert InvalidConfig(fillPeriods, exitNoticePeriods);
        }
        if (
            registry_.marketplace() != address(this) || registry_.token() != token_
                || address(proofs_.marketplace()) != address(this)
                || proofs_.registry() != registry_
        ) revert InvalidWiring();
        token = token_;
        registry = registry_;
        proofs = proofs_;
        FILL_PERIODS = fillPeriods;
        EXIT_NOTICE_PERIODS = exitNoticePeriods;
    }

    // ================================================================== opening deals

    /**
     * @notice Proposes a deal to `provider`, depositing its whole escrow now. The provider may
     * {acceptDeal} until `startPeriod` begins; otherwise the proposal can be cancelled for a
     * full refund ({cancelProposal}).
     * @param capacityBytes Bytes reserved (what commitments may grow to), nonzero.
     * @param periods Length in periods, within the listing's bounds.
     * @param pricePerGiBMonth Price offered, at least the listing's ask.
     * @param startPeriod First period of the deal, after the current one.
     * @param consumerNodeId The consumer's iroh node id, nonzero.
     * @return dealId The new deal's id.
     * @dev Any accept policy takes proposals. Collateral follows the listing's terms at proposal
     * time. Emits {DealCreated}.
     */
    function proposeDeal(
        address provider,
        uint64 capacityBytes,
        uint32 periods,
        uint96 pricePerGiBMonth,
        uint32 startPeriod,
        bytes32 consumerNodeId
    ) external nonReentrant returns (uint256 dealId) {
        uint256 current = currentPeriod();
        if (startPeriod <= current) revert InvalidStart(startPeriod, current);
        ProviderRegistry.DealTerms memory terms = _activeTerms(provider);
        dealId = _createDeal(
            NewDeal({
                consumer: msg.sender,
                provider: provider,
                capacityBytes: capacityBytes,
                start: startPeriod,
                periods: periods,
                pricePerGiBMonth: pricePerGiBMonth,
                collateral: _checkListingTerms(terms, capacityBytes, periods, pricePerGiBMonth),
                consumerNodeId: consumerNodeId,
                state: DealState.Proposed
            })
        );
        _pull(msg.sender, _escrowOf(_deals[dealId]));
    }

    /**
     * @notice Accepts a proposal, reserving its capacity and locking its collateral.
     * @dev Only the provider, before the start period begins, while its listing is active with
     * room for the capacity and enough unlocked collateral. Emits {DealAccepted}.
     */
    function acceptDeal(uint256 dealId) external nonReentrant {
        Deal storage deal = _deals[dealId];
        _requireState(dealId, deal, DealState.Proposed);
        if (msg.sender != deal.provider) revert NotProvider(dealId, msg.sender);
        if (currentPeriod() >= deal.settledTo) revert ProposalExpired(dealId, deal.settledTo);
        deal.state = DealState.Active;
        emit DealAccepted(dealId);
        registry.reserve(deal.provider, deal.capacityBytes, deal.collateral);
    }

    /**
     * @notice Declines a proposal; its escrow goes to the consumer's credit.
     * @dev Only the provider. Emits {DealDeclined}.
     */
    function declineDeal(uint256 dealId) external nonReentrant {
        Deal storage deal = _deals[dealId];
        _requireState(dealId, deal, DealState.Proposed);
        if (msg.sender != deal.provider) revert NotProvider(dealId, msg.sender);
        emit DealDeclined(dealId, _closeProposal(dealId, deal));
    }

    /**
     * @notice Withdraws a proposal (the consumer, any time before acceptance) or clears an
     * expired one (anyone, once its start period has begun); escrow goes to the consumer's credit.
     * @dev Emits {DealCancelled}.
     */
    function cancelProposal(uint256 dealId) external nonReentrant {
        Deal storage deal = _deals[dealId];
        _requireState(dealId, deal, DealState.Proposed);
        if (msg.sender != deal.consumer && currentPeriod() < deal.settledTo) {
            revert NotConsumer(dealId, msg.sender);
        }
        emit DealCancelled(dealId, _closeProposal(dealId, deal));
    }

    /**
     * @notice Opens a deal in one transaction with a provider whose listing auto-accepts, on the
     * listing's terms; it starts at the next period.
     * @dev Parameters as {proposeDeal}, without the start. Emits {DealCreated}.
     */
    function openDeal(
        address provider,
        uint64 capacityBytes,
        uint32 periods,
        uint96 pricePerGiBMonth,
        bytes32 consumerNodeId
    ) external nonReentrant returns (uint256 dealId) {
        ProviderRegistry.DealTerms memory terms = _activeTerms(provider);
        if (terms.policy != ProviderRegistry.AcceptPolicy.Auto) {
            revert PolicyMismatch(provider, terms.policy);
        }
        dealId = _createDeal(
            NewDeal({
                consumer: msg.sender,
                provider: provider,
                capacityBytes: capacityBytes,
                start: currentPeriod() + 1,
                periods: periods,
                pricePerGiBMonth: pricePerGiBMonth,
                collateral: _checkListingTerms(terms, capacityBytes, periods, pricePerGiBMonth),
                consumerNodeId: consumerNodeId,
                state: DealState.Active
            })
        );
        Deal storage deal = _deals[dealId];
        registry.reserve(provider, capacityBytes, deal.collateral);
        _pull(msg.sender, _escrowOf(deal));
    }

    /**
     * @notice Opens a deal in one transaction from a provider's signed quote; it starts at the
     * next period.
     * @param quote The offer ({ProviderRegistry.Quote}); `parentDealId`, `root` and `leafCount`
     * must be zero and `consumer` the caller or zero.
     * @param signature The provider's (or its quote signer's) EIP-712 signature of `quote`.
     * @dev The listing must be active (every accept policy honours a signed quote); the quote's
     * nonce is spent. Collateral is the quote's, at least twice the total price. Emits {DealCreated}.
     */
    function openDealWithQuote(
        ProviderRegistry.Quote calldata quote,
        bytes calldata signature,
        bytes32 consumerNodeId
    ) external nonReentrant returns (uint256 dealId) {
        if (quote.parentDealId != 0 || quote.root != 0 || quote.leafCount != 0) {
            revert QuoteMismatch(quote.parentDealId);
        }
        dealId = _createDeal(
            NewDeal({
                consumer: msg.sender,
                provider: quote.provider,
                capacityBytes: quote.capacityBytes,
                start: currentPeriod() + 1,
                periods: quote.periods,
                pricePerGiBMonth: quote.pricePerGiBMonth,
                collateral: quote.collateral,
                consumerNodeId: consumerNodeId,
                state: DealState.Active
            })
        );
        registry.redeemQuote(quote, signature, msg.sender);
        _pull(msg.sender, _escrowOf(_deals[dealId]));
    }

    // ================================================================== settlement

    /**
     * @notice Settles up to `maxPeriods` of the deal's periods whose proof window has closed.
     * Proven periods pay the provider (`HOLD_BACK_BPS` held back); missed ones refund the
     * consumer and slash collateral. The deal fails after too many misses, and closes (held-back
     * pay and collateral released) once its last period is settled. Anyone may call.
     * @return settled Periods settled by this call.
     * @dev A caller other than the provider receives `REPORTER_BPS` of each slash, capped at one
     * period's pay. Reverts with {InvalidDealState} or {NothingToSettle}. Emits {Settled},
     * {ProofMissed} per missed period, {Credited}, and {DealFailed} or {DealClosed} when they happen.
     */
    function settle(uint256 dealId, uint256 maxPeriods)
        external
        nonReentrant
        returns (uint256 settled)
    {
        Deal storage deal = _deals[dealId];
        _requireRunning(dealId, deal);
        uint256 from = deal.settledTo;
        uint256 to = Math.min(Math.min(deal.end, firstOpenPeriod()), from + maxPeriods);
        if (to <= from) revert NothingToSettle(dealId, from);
        return _settle(dealId, deal, to);
    }

    /**
     * @notice Reports `period` of the deal as missed, settling the deal up to and including it;
     * the caller gets the reporter share of every slash on the way (unless it is the provider).
     * @dev Reverts with {PeriodNotMissed} unless the period is unsettled, closed to proofs, under
     * a commitment, past a repair deal's fill deadline, and not proven. Effects as {settle}.
     */
    function reportMissed(uint256 dealId, uint256 period)
        external
        nonReentrant
        returns (uint256 settled)
    {
        Deal storage deal = _deals[dealId];
        _requireRunning(dealId, deal);
        (uint256 committedFrom, uint256 word) = proofs.provenWord(dealId, period >> 8);
        if (
            period < deal.settledTo || period >= deal.end || period >= firstOpenPeriod()
                || committedFrom == 0 || period < committedFrom || period < deal.fillBy
                || (word >> (period & 255)) & 1 == 1
        ) revert PeriodNotMissed(dealId, period);
        return _settle(dealId, deal, period + 1);
    }

    // ================================================================== renew, terminate, exit

    /**
     * @notice Extends an active deal by `extraPeriods` at its rate, depositing the extra escrow;
     * the provider locks more collateral: the extension's price times its listing's multiple.
     * @param validUntil Last unix second `providerSignature` is valid (ignored without one).
     * @param providerSignature The provider's (or quote signer's) EIP-712 `Renewal(dealId, end,
     * newEnd, validUntil)`; may be empty when the listing auto-accepts, is active, asks no more
     * than the deal's rate and allows `extraPeriods`.
     * @dev Only the consumer, while Active and before its last period begins (else {TermOver}).
     * Emits {DealRenewed}.
     */
    function renew(
        uint256 dealId,
        uint32 extraPeriods,
        uint64 validUntil,
        bytes calldata providerSignature
    ) external nonReentrant {
        Deal storage deal = _deals[dealId];
        _requireState(dealId, deal, DealState.Active);
        if (msg.sender != deal.consumer) revert NotConsumer(dealId, msg.sender);
        address provider = deal.provider;
        uint32 end = deal.end;
        // An extension starts at `end`, which must still be in the future: periods already
        // under way could not have been proven for a term that did not include them.
        if (end <= currentPeriod()) revert TermOver(dealId, end);
        uint256 newEnd = uint256(end) + extraPeriods;
        if (extraPeriods == 0) revert DurationOutOfRange(0, 1, type(uint32).max);
        uint32 newEnd32 = _toUint32(newEnd);
        ProviderRegistry.DealTerms memory terms = registry.dealTermsOf(provider);
        if (providerSignature.length == 0) {
            if (
                terms.status != ProviderRegistry.ListingStatus.Active
                    || terms.policy != ProviderRegistry.AcceptPolicy.Auto
            ) revert PolicyMismatch(provider, terms.policy);
            uint256 ask = rateFor(terms.pricePerGiBMonth, deal.capacityBytes);
            if (ask > deal.ratePerPeriod) revert PriceBelowAsk(deal.ratePerPeriod, ask);
            if (extraPeriods > terms.maxPeriods) {
                revert DurationOutOfRange(extraPeriods, 1, terms.maxPeriods);
            }
        } else {
            if (block.timestamp > validUntil) revert RenewalExpired(validUntil, block.timestamp);
            bytes32 digest = _hashTypedDataV4(
                keccak256(abi.encode(RENEWAL_TYPEHASH, dealId, end, newEnd32, validUntil))
            );
            if (!registry.isProviderSignature(provider, digest, providerSignature)) {
                revert InvalidSignature(provider);
            }
        }
        uint256 escrowAdded = uint256(deal.ratePerPeriod) * extraPeriods;
        uint128 collateralAdded = _toUint128(
            Math.mulDiv(
                escrowAdded,
                Math.max(terms.collateralBps, MIN_COLLATERAL_BPS),
                BPS,
                Math.Rounding.Ceil
            )
        );
        deal.end = newEnd32;
        deal.collateral = _toUint128(uint256(deal.collateral) + collateralAdded);
        emit DealRenewed(dealId, newEnd32, escrowAdded, collateralAdded);
        registry.lockMore(provider, collateralAdded);
        _pull(msg.sender, escrowAdded);
    }

    /**
     * @notice Ends an active deal with one period's notice: it runs through the period after the
     * current one (a deal not started yet runs its first period), and the escrow for the periods
     * cut goes to the consumer's credit now.
     * @dev Only the consumer, while Active. Emits {DealTerminated}.
     */
    function terminate(uint256 dealId) external nonReentrant {
        Deal storage deal = _deals[dealId];
        _requireState(dealId, deal, DealState.Active);
        if (msg.sender != deal.consumer) revert NotConsumer(dealId, msg.sender);
        uint256 newEnd =
            Math.min(deal.end, Math.max(uint256(deal.settledTo) + 1, currentPeriod() + 2));
        uint256 refund = _shortenTo(dealId, deal, newEnd);
        deal.state = DealState.Terminating;
        emit DealTerminated(dealId, newEnd, refund);
    }

    /**
     * @notice Graceful exit: the provider gives `EXIT_NOTICE_PERIODS` of notice, keeps proving
     * until then and keeps its held-back pay and collateral. The escrow for the rest of the term
     * goes to the consumer's credit now, and the consumer may {reassign} the deal so that a new
     * provider takes over when the notice ends (hand-over).
     * @dev Only the provider, while Active. Emits {DealExiting}.
     */
    function exitGracefully(uint256 dealId) external nonReentrant {
        Deal storage deal = _deals[dealId];
        _requireState(dealId, deal, DealState.Active);
        if (msg.sender != deal.provider) revert NotProvider(dealId, msg.sender);
        uint32 termEnd = deal.end;
        uint256 newEnd =
            Math.min(termEnd, Math.max(deal.settledTo, currentPeriod() + 1) + EXIT_NOTICE_PERIODS);
        uint256 refund = _shortenTo(dealId, deal, newEnd);
        deal.termEnd = termEnd;
        deal.state = DealState.Exiting;
        emit DealExiting(dealId, newEnd, termEnd, refund);
    }

    /**
     * @notice Abrupt exit: the provider stops now. Every unsettled period (all still open to
     * proofs) is refunded, the held-back pay is forfeited to the consumer and `REPAIR_REWARD_BPS`
     * of the collateral is earmarked for the provider that repairs the deal; the rest of the
     * collateral returns to the pool. Costs the provider less than failing by missed proofs.
     * @dev Only the provider, while running, once every closed period is settled (else
     * {SettleFirst}). Emits {DealFailed} with `abandoned` true.
     */
    function abandon(uint256 dealId) external nonReentrant {
        Deal storage deal = _deals[dealId];
        _requireRunning(dealId, deal);
        if (msg.sender != deal.provider) revert NotProvider(dealId, msg.sender);
        uint256 firstOpen = firstOpenPeriod();
        if (deal.settledTo < Math.min(deal.end, firstOpen)) {
            revert SettleFirst(dealId, deal.settledTo, firstOpen);
        }
        _fail(dealId, deal, deal.settledTo, true);
    }

    // ================================================================== repair

    /**
     * @notice Moves a failed deal's commitment, or an exiting deal's remaining term, to a new
     * provider the consumer picks. The child deal inherits the latest commitment (root, leaf
     * count, version), the capacity and the consumer node id, and runs to the original term's
     * end. Its escrow comes from the consumer's credit first (where the parent's refund went),
     * then from its wallet. The new provider has `FILL_PERIODS` to deliver a first proof (until
     * then unproven periods are refunded, not slashed) and then receives the earmarked repair
     * reward.
     * @param quote The new provider's signed quote naming this deal as `parentDealId`, its
     * latest commitment as `root` and `leafCount`, its capacity, and `periods` at least the
     * child's length: the provider consents to prove exactly that data.
     * @dev Only the consumer. A failed parent closes; an exiting parent runs to its notice end
     * and the child starts right after. Emits {DealCreated}, {DealReassigned}, and
     * {DealClosed} for a failed parent.
     */
    function reassign(
        uint256 dealId,
        ProviderRegistry.Quote calldata quote,
        bytes calldata signature
    ) external nonReentrant returns (uint256 childId) {
        Deal storage parent = _deals[dealId];
        uint256 start = _checkReassign(dealId, parent, quote);
        childId = _createDeal(
            NewDeal({
                consumer: msg.sender,
                provider: quote.provider,
                capacityBytes: quote.capacityBytes,
                start: start,
                periods: parent.termEnd - start,
                pricePerGiBMonth: quote.pricePerGiBMonth,
                collateral: quote.collateral,
                consumerNodeId: parent.consumerNodeId,
                state: DealState.Active
            })
        );
        _handOver(dealId, parent, childId, start);
        (bytes32 root, uint64 leafCount,) = proofs.inherit(dealId, childId, start);
        if (quote.root != root || quote.leafCount != leafCount) revert QuoteMismatch(dealId);
        registry.redeemQuote(quote, signature, msg.sender);
        _fundFromCredit(childId, _escrowOf(_deals[childId]));
    }

    /**
     * @notice Closes a failed deal the consumer will not repair; the earmarked repair reward goes
     * to the consumer's credit.
     * @dev Only the consumer, while Failed. Emits {DealClosed}.
     */
    function closeFailed(uint256 dealId) external nonReentrant {
        Deal storage deal = _deals[dealId];
        _requireState(dealId, deal, DealState.Failed);
        if (msg.sender != deal.consumer) revert NotConsumer(dealId, msg.sender);
        uint256 reward = deal.repairReward;
        deal.repairReward = 0;
        deal.termEnd = 0;
        deal.state = DealState.Closed;
        emit DealClosed(dealId, 0, 0, reward);
        _credit(msg.sender, dealId, reward);
    }

    // ================================================================== credit and metadata

    /**
     * @notice Pays out the caller's whole credit.
     * @return amount The base units sent.
     * @dev Reverts with {NothingToWithdraw}. Emits {Withdrawn}.
     */
    function withdraw() external nonReentrant returns (uint256 amount) {
        amount = credit[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        credit[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /**
     * @notice Sets the caller's metadata pointer: the hash and location of its encrypted gateway
     * metadata snapshot, so that a gateway can be rebuilt from its owner's mnemonic alone.
     * @param locator Where the snapshot lives (opaque; at most `MAX_LOCATOR_BYTES`).
     * @dev One record per account, overwritten each time. Emits {MetadataUpdated}.
     */
    function setMetadata(bytes32 hash, bytes calldata locator) external {
        if (locator.length > MAX_LOCATOR_BYTES) {
            revert LocatorTooLong(locator.length, MAX_LOCATOR_BYTES);
        }
        _metadataHashes[msg.sender] = hash;
        _metadataLocators[msg.sender] = locator;
        emit MetadataUpdated(msg.sender, hash, locator);
    }

    // ================================================================== views

    /// @notice The deal record (all zero for an unknown id).
    function getDeal(uint256 dealId) external view returns (Deal memory) {
        return _deals[dealId];
    }

    /// @notice Escrow the deal still holds: `ratePerPeriod * (end - settledTo)`.
    function escrowOf(uint256 dealId) external view returns (uint256) {
        return _escrowOf(_deals[dealId]);
    }

    /// @inheritdoc IDealBook
    function commitTerms(uint256 dealId)
        external
        view
        returns (
            address consumer,
            address provider,
            uint64 capacityBytes,
            uint32 settledTo,
            uint32 end,
            uint8 state
        )
    {
        Deal storage deal = _deals[dealId];
        return (
            deal.consumer,
            deal.provider,
            deal.capacityBytes,
            deal.settledTo,
            deal.end,
            uint8(deal.state)
        );
    }

    /// @notice `account`'s metadata pointer.
    function metadataOf(address account)
        external
        view
        returns (bytes32 hash, bytes memory locator)
    {
        return (_metadataHashes[account], _metadataLocators[account]);
    }

    /// @notice Pay per period for `capacityBytes` at `pricePerGiBMonth`, rounded down.
    function rateFor(uint256 pricePerGiBMonth, uint256 capacityBytes)
        public
        view
        returns (uint256)
    {
        return Math.mulDiv(pricePerGiBMonth, capacityBytes * PERIOD_SECS, GIB * MONTH_SECS);
    }

    /// @notice The EIP-712 digest a provider signs to consent to a renewal.
    function hashRenewal(uint256 dealId, uint32 end, uint32 newEnd, uint64 validUntil)
        external
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(RENEWAL_TYPEHASH, dealId, end, newEnd, validUntil))
        );
    }

    // ================================================================== internals: opening

    function _activeTerms(address provider)
        private
        view
        returns (ProviderRegistry.DealTerms memory terms)
    {
        terms = registry.dealTermsOf(provider);
        if (terms.status != ProviderRegistry.ListingStatus.Active) {
            revert ListingNotActive(provider);
        }
    }

    /// @dev Checks a request against a listing's terms; returns the collateral they require.
    function _checkListingTerms(
        ProviderRegistry.DealTerms memory terms,
        uint256 capacityBytes,
        uint256 periods,
        uint256 pricePerGiBMonth
    ) private view returns (uint256) {
        if (pricePerGiBMonth < terms.pricePerGiBMonth) {
            revert PriceBelowAsk(pricePerGiBMonth, terms.pricePerGiBMonth);
        }
        if (periods < terms.minPeriods || periods > terms.maxPeriods) {
            revert DurationOutOfRange(periods, terms.minPeriods, terms.maxPeriods);
        }
        uint256 total = rateFor(pricePerGiBMonth, capacityBytes) * periods;
        return Math.max(
            Math.mulDiv(total, terms.collateralBps, BPS, Math.Rounding.Ceil),
            Math.mulDiv(capacityBytes, terms.collateralPerGiB, GIB, Math.Rounding.Ceil)
        );
    }

    /// @dev Validates the amounts and writes a new deal; callers reserve capacity and
    /// collateral in the registry and collect escrow.
    function _createDeal(NewDeal memory request) private returns (uint256 dealId) {
        if (request.capacityBytes == 0) revert ZeroCapacity();
        if (request.consumerNodeId == 0) revert ZeroNodeId();
        if (request.periods == 0) revert DurationOutOfRange(0, 1, type(uint32).max);
        uint256 rate = rateFor(request.pricePerGiBMonth, request.capacityBytes);
        if (rate == 0) revert RateTooLow(request.pricePerGiBMonth, request.capacityBytes);
        if (rate > type(uint96).max) revert AmountTooLarge(rate);
        uint256 required = rate * request.periods * MIN_COLLATERAL_BPS / BPS;
        if (request.collateral < required) revert CollateralTooLow(request.collateral, required);
        uint32 end = _toUint32(request.start + request.periods);
        dealId = nextDealId++;
        Deal storage deal = _deals[dealId];
        deal.provider = request.provider;
        // forge-lint: disable-next-line(unsafe-typecast)
        deal.ratePerPeriod = uint96(rate); // checked just above
        deal.consumer = request.consumer;
        deal.end = end;
        deal.settledTo = uint32(request.start); // < end
        deal.state = request.state;
        deal.collateral = _toUint128(request.collateral);
        deal.capacityBytes = request.capacityBytes;
        deal.consumerNodeId = request.consumerNodeId;
        _emitCreated(dealId, deal);
    }

    function _emitCreated(uint256 dealId, Deal storage deal) private {
        emit DealCreated(
            dealId,
            deal.consumer,
            deal.provider,
            deal.state,
            deal.capacityBytes,
            deal.settledTo,
            deal.end,
            deal.ratePerPeriod,
            deal.collateral,
            deal.consumerNodeId
        );
    }

    function _closeProposal(uint256 dealId, Deal storage deal) private returns (uint256 refund) {
        refund = _escrowOf(deal);
        deal.settledTo = deal.end;
        deal.state = DealState.Closed;
        _credit(deal.consumer, dealId, refund);
    }

    /// @dev Checks a reassignment of `parent` under `quote`; returns the child's start period.
    function _checkReassign(
        uint256 dealId,
        Deal storage parent,
        ProviderRegistry.Quote calldata quote
    ) private view returns (uint256 start) {
        DealState state = parent.state;
        if (state != DealState.Failed && state != DealState.Exiting) {
            revert InvalidDealState(dealId, state);
        }
        if (msg.sender != parent.consumer) revert NotConsumer(dealId, msg.sender);
        start = Math.max(currentPeriod() + 1, parent.end);
        uint256 termEnd = parent.termEnd;
        if (start >= termEnd) revert NothingToReassign(dealId);
        if (
            quote.parentDealId != dealId || quote.capacityBytes != parent.capacityBytes
                || quote.periods < termEnd - start
        ) revert QuoteMismatch(dealId);
        if (quote.provider == parent.provider) revert SameProvider(quote.provider);
    }

    /// @dev Moves the repair reward to the child, ends the parent's claim on a successor and
    /// closes a failed parent.
    function _handOver(uint256 dealId, Deal storage parent, uint256 childId, uint256 start)
        private
    {
        Deal storage child = _deals[childId];
        uint128 reward = parent.repairReward;
        child.fillBy = _toUint32(start + FILL_PERIODS);
        child.repairReward = reward;
        parent.repairReward = 0;
        parent.termEnd = 0;
        if (parent.state == DealState.Failed) {
            parent.state = DealState.Closed;
            emit DealClosed(dealId, 0, 0, 0);
        }
        emit DealReassigned(dealId, childId, child.provider, reward);
    }

    /// @dev Collects `escrow` for `dealId` from the caller's credit first, then its wallet.
    function _fundFromCredit(uint256 dealId, uint256 escrow) private {
        uint256 fromCredit = Math.min(credit[msg.sender], escrow);
        if (fromCredit != 0) {
            credit[msg.sender] -= fromCredit;
            emit CreditSpent(msg.sender, dealId, fromCredit);
        }
        if (escrow > fromCredit) _pull(msg.sender, escrow - fromCredit);
    }

    // ================================================================== internals: settlement

    /// @dev Settles `[settledTo, to)`, stopping early if the deal fails.
    function _settle(uint256 dealId, Deal storage deal, uint256 to)
        private
        returns (uint256 settled)
    {
        uint256 from = deal.settledTo;
        Tally memory tally = _walk(dealId, deal, from, to);
        uint256 end = tally.failed ? tally.failedAt + 1 : to;
        settled = end - from;

        uint256 rate = deal.ratePerPeriod;
        uint256 paid = tally.paidPeriods * rate;
        // Held back per period, so the split never depends on how settlement is chunked.
        uint256 held = tally.paidPeriods * (rate * HOLD_BACK_BPS / BPS);
        uint256 refunded = tally.refundedPeriods * rate + tally.consumerSlash;
        // forge-lint: disable-next-line(unsafe-typecast)
        deal.settledTo = uint32(end); // end <= deal.end, a uint32
        deal.missedRun = uint8(tally.run);
        deal.missedTotal = uint8(tally.total);
        // Both are at most the escrow (< 2^96 * 2^32) and the collateral (a uint128).
        // forge-lint: disable-next-line(unsafe-typecast)
        if (held != 0) deal.heldBack += uint128(held);
        // forge-lint: disable-next-line(unsafe-typecast)
        if (tally.slashTotal != 0) deal.slashed += uint128(tally.slashTotal);
        emit Settled(dealId, from, end, paid, held, refunded, tally.slashTotal, tally.reporterSlash);
        address provider = deal.provider;
        _credit(provider, dealId, paid - held);
        _credit(deal.consumer, dealId, refunded);
        _credit(msg.sender, dealId, tally.reporterSlash);
        if (tally.filled) {
            uint256 reward = deal.repairReward;
            deal.repairReward = 0;
            deal.fillBy = 0;
            if (reward != 0) {
                emit RepairRewardPaid(dealId, provider, reward);
                _credit(provider, dealId, reward);
            }
        }
        if (tally.slashTotal != 0) registry.slash(provider, uint128(tally.slashTotal));

        if (tally.failed) {
            _fail(dealId, deal, tally.failedAt, false);
        } else if (end == deal.end) {
            _close(dealId, deal);
        }
    }

    /// @dev Classifies periods `[from, to)`, stopping at a failure.
    function _walk(uint256 dealId, Deal storage deal, uint256 from, uint256 to)
        private
        returns (Tally memory tally)
    {
        uint256 fillBy = deal.fillBy;
        tally.run = deal.missedRun;
        tally.total = deal.missedTotal;
        uint256 wordIndex = from >> 8;
        (uint256 committedFrom, uint256 word) = proofs.provenWord(dealId, wordIndex);
        for (uint256 p = from; p < to; ++p) {
            if (committedFrom == 0 || p < committedFrom) {
                // No data committed yet: the capacity is reserved, so the period is paid.
                ++tally.paidPeriods;
                continue;
            }
            if (p >> 8 != wordIndex) {
                wordIndex = p >> 8;
                (, word) = proofs.provenWord(dealId, wordIndex);
            }
            if ((word >> (p & 255)) & 1 == 1) {
                ++tally.paidPeriods;
                tally.run = 0;
                if (fillBy != 0) {
                    tally.filled = true;
                    fillBy = 0;
                }
                continue;
            }
            ++tally.refundedPeriods;
            if (p < fillBy) continue; // a repair deal still filling: no slash, no miss
            if (_miss(dealId, deal, tally, p)) break;
        }
    }

    /// @dev Records missed period `p`: slashes `max(3 x rate, 5% of collateral)` (at most what is
    /// left) and splits it between consumer and reporter; true when the deal fails.
    function _miss(uint256 dealId, Deal storage deal, Tally memory tally, uint256 p)
        private
        returns (bool failed)
    {
        uint256 rate = deal.ratePerPeriod;
        if (tally.missed == 0) {
            uint256 collateral = deal.collateral;
            tally.collateralLeft = collateral - deal.slashed;
            tally.slashEach =
                Math.max(SLASH_RATE_MULTIPLE * rate, collateral * SLASH_COLLATERAL_BPS / BPS);
        }
        uint256 slash = Math.min(tally.slashEach, tally.collateralLeft);
        tally.collateralLeft -= slash;
        address reporter = msg.sender == deal.provider ? address(0) : msg.sender;
        uint256 reward = reporter == address(0)
            ? 0
            : Math.min(slash * REPORTER_BPS / BPS, REPORTER_CAP_RATE_MULTIPLE * rate);
        tally.slashTotal += slash;
        tally.reporterSlash += reward;
        tally.consumerSlash += slash - reward;
        ++tally.missed;
        ++tally.run;
        ++tally.total;
        emit ProofMissed(dealId, p, reporter);
        if (tally.run >= MAX_CONSECUTIVE_MISSES || tally.total >= MAX_TOTAL_MISSES) {
            tally.failed = true;
            tally.failedAt = p;
            return true;
        }
    }

    /**
     * @dev Fails a deal settled up to `settledTo`: the rest of the escrow and the held-back pay
     * go to the consumer, and collateral is taken: all that is left when proofs were missed (the
     * repair share earmarked, the rest to the consumer), only the repair share when the provider
     * `abandoned` the deal.
     */
    function _fail(uint256 dealId, Deal storage deal, uint256 atPeriod, bool abandoned) private {
        uint256 refund = _escrowOf(deal);
        uint256 forfeited = deal.heldBack;
        uint256 collateral = deal.collateral;
        uint256 left = collateral - deal.slashed;
        uint256 repairShare = Math.min(left, collateral * REPAIR_REWARD_BPS / BPS);
        uint256 taken = abandoned ? repairShare : left;

        if (deal.termEnd == 0) deal.termEnd = deal.end;
        deal.end = deal.settledTo;
        deal.heldBack = 0;
        // taken and repairShare are at most the collateral, a uint128.
        // forge-lint: disable-next-line(unsafe-typecast)
        deal.slashed += uint128(taken);
        // forge-lint: disable-next-line(unsafe-typecast)
        deal.repairReward += uint128(repairShare);
        deal.state = DealState.Failed;
        emit DealFailed(dealId, atPeriod, abandoned, refund, forfeited, taken, repairShare);
        _credit(deal.consumer, dealId, refund + forfeited + (taken - repairShare));
        // forge-lint: disable-next-line(unsafe-typecast)
        registry.release(deal.provider, deal.capacityBytes, uint128(left - taken), uint128(taken));
    }

    /// @dev Closes a deal settled to its end: held-back pay to the provider, collateral back to
    /// its pool, an unclaimed repair reward back to the consumer.
    function _close(uint256 dealId, Deal storage deal) private {
        uint256 held = deal.heldBack;
        uint256 reward = deal.repairReward;
        uint256 left = deal.collateral - deal.slashed;
        deal.heldBack = 0;
        deal.repairReward = 0;
        deal.state = DealState.Closed;
        emit DealClosed(dealId, held, left, reward);
        _credit(deal.provider, dealId, held);
        _credit(deal.consumer, dealId, reward);
        // forge-lint: disable-next-line(unsafe-typecast)
        registry.release(deal.provider, deal.capacityBytes, uint128(left), 0); // <= collateral
    }

    // ================================================================== internals: misc

    /// @dev Moves `end` back to `newEnd`, refunding the periods cut to the consumer.
    function _shortenTo(uint256 dealId, Deal storage deal, uint256 newEnd)
        private
        returns (uint256 refund)
    {
        refund = uint256(deal.ratePerPeriod) * (deal.end - newEnd);
        // forge-lint: disable-next-line(unsafe-typecast)
        deal.end = uint32(newEnd); // newEnd <= deal.end
        _credit(deal.consumer, dealId, refund);
    }

    function _credit(address account, uint256 dealId, uint256 amount) private {
        if (amount == 0) return;
        credit[account] += amount;
        emit Credited(account, dealId, amount);
    }

    /// @dev Pulls `amount` from `from` (always the caller) and checks it all arrived.
    function _pull(address from, uint256 amount) private {
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(from, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert TransferMismatch(amount, received);
    }

    function _escrowOf(Deal storage deal) private view returns (uint256) {
        return uint256(deal.ratePerPeriod) * (deal.end - deal.settledTo);
    }

    function _requireState(uint256 dealId, Deal storage deal, DealState state) private view {
        if (deal.state != state) revert InvalidDealState(dealId, deal.state);
    }

    function _requireRunning(uint256 dealId, Deal storage deal) private view {
        DealState state = deal.state;
        if (state < DealState.Active || state > DealState.Exiting) {
            revert InvalidDealState(dealId, state);
        }
    }

    function _toUint128(uint256 value) private pure returns (uint128) {
        if (value > type(uint128).max) revert AmountTooLarge(value);
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint128(value);
    }

    function _toUint32(uint256 value) private pure returns (uint32) {
        if (value > type(uint32).max) revert AmountTooLarge(value);
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint32(value);
    }
}
