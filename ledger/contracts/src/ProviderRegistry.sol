// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

/**
 * @title ProviderRegistry
 * @notice Storage providers' listings and collateral pools.
 *
 * A listing says how to reach a provider (iroh node id, address hints), what it sells
 * (capacity, price per GiB-month, minimum and maximum duration, region) and on what terms
 * (collateral per deal, accept policy). Search happens off chain: every change emits an
 * event carrying the new values, so an indexer rebuilds every listing and pool from
 * {ListingUpdated}, {ListingPaused}, {ListingRemoved} and {PoolUpdated} alone.
 *
 * A provider's signing key (its own address, or a separate quote signer) signs EIP-712
 * quotes: offers to open a deal (or to repair one) on given terms, each with a single-use
 * nonce. The marketplace redeems them here ({redeemQuote}), and asks here whether a signature
 * on a commitment or renewal is the provider's ({isProviderSignature}).
 *
 * The collateral pool holds the provider's deposited tokens. The {Marketplace} (the only
 * caller of the `onlyMarketplace` functions, fixed at construction) locks part of it for
 * each deal, unlocks it when the deal ends and takes slashed amounts out of it. Only
 * unlocked collateral can be withdrawn, and a provider can leave only once it has no live
 * deal.
 *
 * @dev Departure from research/contracts-design.md: there the marketplace holds every token.
 * Here the registry holds the pools, so a provider's idle collateral never sits in the
 * contract that pays out deals, and the marketplace's balance covers exactly escrow,
 * held-back pay, repair rewards and credit. Slashed collateral moves to the marketplace in
 * the same call that slashes it.
 */
contract ProviderRegistry is EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice How a provider takes deals.
    enum AcceptPolicy {
        /// Anyone may open a deal at the listed terms in one transaction.
        Auto,
        /// The provider accepts or declines each proposal (signed quotes also work).
        Manual,
        /// Deals open only from an EIP-712 quote signed by the quote signer (or by proposal).
        SignedQuote
    }

    /// @notice Whether a listing exists and takes new deals.
    enum ListingStatus {
        None,
        Active,
        Paused
    }

    /// @notice What a provider publishes; the input of {register} and {update}.
    struct ListingTerms {
        /// The provider's iroh node id (ed25519 public key), nonzero.
        bytes32 nodeId;
        /// How to reach the node (e.g. encoded socket addresses or relay URLs), at most
        /// `MAX_ADDRESS_HINTS_BYTES`; opaque to the contract.
        bytes addressHints;
        /// Total bytes offered across all deals, nonzero.
        uint64 capacityBytes;
        /// Asking price, in token base units per GiB of capacity per 30-day month, nonzero.
        uint96 pricePerGiBMonth;
        /// Shortest deal, in periods, at least 1.
        uint32 minPeriods;
        /// Longest deal, in periods, at least `minPeriods`.
        uint32 maxPeriods;
        /// Collateral per deal as a multiple of the deal's total price, in basis points;
        /// at least `MIN_COLLATERAL_BPS` (2x, Sia's default).
        uint32 collateralBps;
        /// Collateral floor per GiB of capacity (covers a repair's egress), base units; may be 0.
        uint96 collateralPerGiB;
        /// Region code: ASCII, left-aligned, zero-padded (e.g. "DE", "EU-W"); may be 0.
        bytes8 region;
        /// How deals are accepted.
        AcceptPolicy policy;
        /// Key allowed to sign quotes, commitments and renewals for the provider; the zero
        /// address means the provider's own address.
        address quoteSigner;
    }

    /// @notice What the marketplace needs of a listing to open a deal (no address hints).
    struct DealTerms {
        ListingStatus status;
        AcceptPolicy policy;
        address quoteSigner;
        uint96 pricePerGiBMonth;
        uint64 capacityBytes;
        uint64 usedBytes;
        uint32 minPeriods;
        uint32 maxPeriods;
        uint32 collateralBps;
        uint96 collateralPerGiB;
    }

    /// @dev Storage layout of a listing, packed by how the marketplace reads it.
    struct Listing {
        // slot 0: read when a deal opens
        uint96 pricePerGiBMonth;
        uint64 capacityBytes;
        uint64 usedBytes;
        uint32 liveDeals;
        // slot 1
        address quoteSigner;
        uint32 minPeriods;
        uint32 maxPeriods;
        ListingStatus status;
        AcceptPolicy policy;
        // slot 2
        uint96 collateralPerGiB;
        uint32 collateralBps;
        bytes8 region;
        // slot 3
        bytes32 nodeId;
        // slot 4+
        bytes addressHints;
    }

    /**
     * @notice A provider's signed offer (EIP-712, this contract's domain). For a new deal
     * `parentDealId`, `root` and `leafCount` are zero and `periods` is the deal's length. For a
     * repair they name the failed (or exiting) deal and the commitment the provider agrees to
     * prove, and `periods` is the longest the repair deal may run (it runs to the parent's term
     * end). `consumer` zero means any consumer.
     */
    struct Quote {
        address provider;
        address consumer;
        uint64 capacityBytes;
        uint32 periods;
        uint96 pricePerGiBMonth;
        uint128 collateral;
        uint256 parentDealId;
        bytes32 root;
        uint64 leafCount;
        uint64 validUntil; // unix seconds, inclusive
        uint256 nonce; // single use per provider
    }

    /// @notice A provider's collateral: `deposited` in total, of which `locked` backs live deals.
    struct Pool {
        uint128 deposited;
        uint128 locked;
    }

    /// @notice Longest accepted `addressHints`.
    uint256 public constant MAX_ADDRESS_HINTS_BYTES = 512;
    /// @notice Smallest collateral multiple of a deal's total price (2x), in basis points.
    uint32 public constant MIN_COLLATERAL_BPS = 20_000;

    /// @notice EIP-712 type of {Quote}.
    bytes32 public constant QUOTE_TYPEHASH = keccak256(
        "Quote(address provider,address consumer,uint64 capacityBytes,uint32 periods,uint96 pricePerGiBMonth,uint128 collateral,uint256 parentDealId,bytes32 root,uint64 leafCount,uint64 validUntil,uint256 nonce)"
    );

    /// @notice The token collateral is held in.
    IERC20 public immutable token;
    /// @notice The only contract that may lock, unlock and slash collateral.
    address public immutable marketplace;

    mapping(address provider => Listing) private _listings;
    mapping(address provider => Pool) private _pools;
    mapping(address provider => mapping(uint256 word => uint256)) private _quoteNonces;

    /// @notice `provider` registered or changed its listing; `terms` are the new values.
    event ListingUpdated(address indexed provider, ListingTerms terms);
    /// @notice `provider` stopped (`paused`) or resumed taking new deals.
    event ListingPaused(address indexed provider, bool paused);
    /// @notice `provider` left; its listing is gone (its pool stays withdrawable).
    event ListingRemoved(address indexed provider);
    /// @notice `provider`'s pool or usage changed; the arguments are the new values.
    event PoolUpdated(
        address indexed provider,
        uint128 deposited,
        uint128 locked,
        uint64 usedBytes,
        uint32 liveDeals
    );

    /// @notice The caller is not the marketplace.
    error RegistryUnauthorized(address caller);
    /// @notice `provider` already has a listing.
    error ListingExists(address provider);
    /// @notice `provider` has no listing.
    error ListingNotFound(address provider);
    /// @notice `provider`'s listing is paused or absent, so it takes no new deal.
    error ListingNotActive(address provider, ListingStatus status);
    /// @notice Listing terms out of bounds; `field` names the first bad one.
    error InvalidListing(string field);
    /// @notice The provider still has `liveDeals` deals (and `locked` collateral).
    error ProviderHasLiveDeals(address provider, uint32 liveDeals, uint128 locked);
    /// @notice A deal of `requested` bytes does not fit the `free` bytes left.
    error InsufficientCapacity(address provider, uint64 requested, uint64 free);
    /// @notice `requested` collateral exceeds the `unlocked` part of the pool.
    error InsufficientCollateral(address provider, uint256 requested, uint256 unlocked);
    /// @notice A zero amount, or one whose arrival did not match (`received`).
    error InvalidAmount(uint256 amount, uint256 received);
    /// @notice The quote's `validUntil` has passed.
    error QuoteExpired(uint256 validUntil, uint256 timestamp);
    /// @notice The quote's nonce was already used.
    error QuoteNonceUsed(address provider, uint256 nonce);
    /// @notice The quote is for another consumer.
    error QuoteWrongConsumer(address quoted, address consumer);
    /// @notice The signature is neither `provider`'s nor its quote signer's.
    error InvalidSignature(address provider);
    /// @notice Pause or unpause asked while already in that state.
    error ListingAlreadyInState(address provider, ListingStatus status);

    modifier onlyMarketplace() {
        if (msg.sender != marketplace) revert RegistryUnauthorized(msg.sender);
        _;
    }

    /**
     * @param token_ The collateral token.
     * @param marketplace_ The marketplace allowed to lock, unlock and slash (deployed right after,
     * at this predicted address; its constructor checks the link, so no admin ever sets it).
     */
    constructor(IERC20 token_, address marketplace_) EIP712("dBytes ProviderRegistry", "1") {
        token = token_;
        marketplace = marketplace_;
    }

    // ------------------------------------------------------------------ listings

    /**
     * @notice Publishes the caller's listing, taking deals at once.
     * @dev Reverts with {ListingExists} or {InvalidListing}. Emits {ListingUpdated}.
     */
    function register(ListingTerms calldata terms) external {
        Listing storage listing = _listings[msg.sender];
        if (listing.status != ListingStatus.None) revert ListingExists(msg.sender);
        _write(listing, terms);
        listing.status = ListingStatus.Active;
        emit ListingUpdated(msg.sender, terms);
    }

    /**
     * @notice Replaces the caller's listing terms; live deals keep the terms they opened with.
     * @dev Capacity may go below what live deals use: it then only blocks new deals. The
     * pause state is kept. Reverts with {ListingNotFound} or {InvalidListing}. Emits
     * {ListingUpdated}.
     */
    function update(ListingTerms calldata terms) external {
        Listing storage listing = _listings[msg.sender];
        if (listing.status == ListingStatus.None) revert ListingNotFound(msg.sender);
        _write(listing, terms);
        emit ListingUpdated(msg.sender, terms);
    }

    /**
     * @notice Stops (`paused` true) or resumes taking new deals; live deals are unaffected.
     * @dev Reverts with {ListingNotFound} or {ListingAlreadyInState}. Emits {ListingPaused}.
     */
    function setPaused(bool paused) external {
        Listing storage listing = _listings[msg.sender];
        ListingStatus status = listing.status;
        if (status == ListingStatus.None) revert ListingNotFound(msg.sender);
        ListingStatus next = paused ? ListingStatus.Paused : ListingStatus.Active;
        if (status == next) revert ListingAlreadyInState(msg.sender, status);
        listing.status = next;
        emit ListingPaused(msg.sender, paused);
    }

    /**
     * @notice Removes the caller's listing. Allowed only once no deal is live (all locked
     * collateral released); the pool stays and remains withdrawable.
     * @dev Reverts with {ListingNotFound} or {ProviderHasLiveDeals}. Emits {ListingRemoved}.
     */
    function leave() external {
        Listing storage listing = _listings[msg.sender];
        if (listing.status == ListingStatus.None) revert ListingNotFound(msg.sender);
        uint128 locked = _pools[msg.sender].locked;
        if (listing.liveDeals != 0 || locked != 0) {
            revert ProviderHasLiveDeals(msg.sender, listing.liveDeals, locked);
        }
        delete _listings[msg.sender];
        emit ListingRemoved(msg.sender);
    }

    // ------------------------------------------------------------------ collateral pool

    /**
     * @notice Adds `amount` to the caller's collateral pool (a listing is not required).
     * @dev Pulls with `transferFrom` and checks the balance delta. Reverts with
     * {InvalidAmount}. Emits {PoolUpdated}.
     */
    function depositCollateral(uint256 amount) external nonReentrant {
        if (amount == 0) revert InvalidAmount(0, 0);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert InvalidAmount(amount, received);
        Pool storage pool = _pools[msg.sender];
        pool.deposited += SafeCast.toUint128(amount);
        _emitPool(msg.sender, pool);
    }

    /**
     * @notice Withdraws `amount` of the caller's unlocked collateral.
     * @dev Reverts with {InvalidAmount} or {InsufficientCollateral}. Emits {PoolUpdated}.
     */
    function withdrawCollateral(uint256 amount) external nonReentrant {
        if (amount == 0) revert InvalidAmount(0, 0);
        Pool storage pool = _pools[msg.sender];
        uint256 unlocked = pool.deposited - pool.locked;
        if (amount > unlocked) revert InsufficientCollateral(msg.sender, amount, unlocked);
        // forge-lint: disable-next-line(unsafe-typecast)
        pool.deposited -= uint128(amount); // amount <= unlocked, a uint128
        _emitPool(msg.sender, pool);
        token.safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------ marketplace hooks

    /**
     * @notice Reserves `capacityBytes` of `provider`'s listing and locks `collateral` of its
     * pool for a new deal.
     * @dev Only the marketplace. The listing must be active. Reverts with
     * {ListingNotActive}, {InsufficientCapacity} or {InsufficientCollateral}. Emits {PoolUpdated}.
     */
    function reserve(address provider, uint64 capacityBytes, uint128 collateral)
        external
        onlyMarketplace
    {
        _reserve(provider, capacityBytes, collateral);
    }

    /**
     * @notice Redeems `quote` for `consumer`: checks it is unexpired, meant for `consumer`,
     * unused and signed by the provider or its quote signer, spends its nonce, and reserves its
     * capacity and collateral as {reserve} does.
     * @dev Only the marketplace, which checks the deal-specific fields (repair parent, root).
     * Reverts with {QuoteExpired}, {QuoteWrongConsumer}, {QuoteNonceUsed}, {InvalidSignature}
     * or as {reserve}. Emits {PoolUpdated}.
     */
    function redeemQuote(Quote calldata quote, bytes calldata signature, address consumer)
        external
        onlyMarketplace
    {
        if (block.timestamp > quote.validUntil) {
            revert QuoteExpired(quote.validUntil, block.timestamp);
        }
        if (quote.consumer != address(0) && quote.consumer != consumer) {
            revert QuoteWrongConsumer(quote.consumer, consumer);
        }
        address provider = quote.provider;
        // forge-lint: disable-next-line(incorrect-shift)
        uint256 bit = 1 << (quote.nonce & 255);
        mapping(uint256 => uint256) storage words = _quoteNonces[provider];
        uint256 word = words[quote.nonce >> 8];
        if (word & bit != 0) revert QuoteNonceUsed(provider, quote.nonce);
        words[quote.nonce >> 8] = word | bit;
        if (!isProviderSignature(provider, hashQuote(quote), signature)) {
            revert InvalidSignature(provider);
        }
        _reserve(provider, quote.capacityBytes, quote.collateral);
    }

    /**
     * @notice Locks `collateral` more of `provider`'s pool for a deal it already has (renewal).
     * @dev Only the marketplace. Reverts with {InsufficientCollateral}. Emits {PoolUpdated}.
     */
    function lockMore(address provider, uint128 collateral) external onlyMarketplace {
        Pool storage pool = _pools[provider];
        uint128 unlocked = pool.deposited - pool.locked;
        if (collateral > unlocked) revert InsufficientCollateral(provider, collateral, unlocked);
        pool.locked += collateral;
        _emitPool(provider, pool);
    }

    /**
     * @notice Takes `amount` of `provider`'s locked collateral and sends it to the
     * marketplace (a slash during a deal).
     * @dev Only the marketplace, which never asks for more than the deal locked. Emits {PoolUpdated}.
     */
    function slash(address provider, uint128 amount) external onlyMarketplace nonReentrant {
        Pool storage pool = _pools[provider];
        pool.locked -= amount;
        pool.deposited -= amount;
        _emitPool(provider, pool);
        token.safeTransfer(marketplace, amount);
    }

    /**
     * @notice Ends a deal of `provider`: frees its `capacityBytes`, unlocks `unlocked` of its
     * collateral back into the pool and sends `taken` of it to the marketplace.
     * @dev Only the marketplace; `unlocked + taken` is what the deal still had locked.
     * Emits {PoolUpdated}.
     */
    function release(address provider, uint64 capacityBytes, uint128 unlocked, uint128 taken)
        external
        onlyMarketplace
        nonReentrant
    {
        Listing storage listing = _listings[provider];
        listing.usedBytes -= capacityBytes;
        listing.liveDeals -= 1;
        Pool storage pool = _pools[provider];
        pool.locked -= unlocked + taken;
        pool.deposited -= taken;
        _emitPool(provider, pool);
        if (taken != 0) token.safeTransfer(marketplace, taken);
    }

    // ------------------------------------------------------------------ views

    /// @notice `provider`'s listing status, terms and usage (terms are zero when absent).
    function listingOf(address provider)
        external
        view
        returns (
            ListingStatus status,
            ListingTerms memory terms,
            uint64 usedBytes,
            uint32 liveDeals
        )
    {
        Listing storage listing = _listings[provider];
        status = listing.status;
        terms = ListingTerms({
            nodeId: listing.nodeId,
            addressHints: listing.addressHints,
            capacityBytes: listing.capacityBytes,
            pricePerGiBMonth: listing.pricePerGiBMonth,
            minPeriods: listing.minPeriods,
            maxPeriods: listing.maxPeriods,
            collateralBps: listing.collateralBps,
            collateralPerGiB: listing.collateralPerGiB,
            region: listing.region,
            policy: listing.policy,
            quoteSigner: listing.quoteSigner
        });
        usedBytes = listing.usedBytes;
        liveDeals = listing.liveDeals;
    }

    /// @notice The terms the marketplace checks when a deal opens (no address hints).
    function dealTermsOf(address provider) external view returns (DealTerms memory terms) {
        Listing storage listing = _listings[provider];
        terms = DealTerms({
            status: listing.status,
            policy: listing.policy,
            quoteSigner: listing.quoteSigner,
            pricePerGiBMonth: listing.pricePerGiBMonth,
            capacityBytes: listing.capacityBytes,
            usedBytes: listing.usedBytes,
            minPeriods: listing.minPeriods,
            maxPeriods: listing.maxPeriods,
            collateralBps: listing.collateralBps,
            collateralPerGiB: listing.collateralPerGiB
        });
    }

    /// @notice The key that signs for `provider` besides itself (zero without a listing).
    function signerOf(address provider) external view returns (address) {
        return _listings[provider].quoteSigner;
    }

    /**
     * @notice Whether `signature` over `digest` is `provider`'s own or its listing's quote
     * signer's (EOA or ERC-1271 contract).
     */
    function isProviderSignature(address provider, bytes32 digest, bytes calldata signature)
        public
        view
        returns (bool)
    {
        if (SignatureChecker.isValidSignatureNow(provider, digest, signature)) return true;
        address signer = _listings[provider].quoteSigner;
        return signer != provider && signer != address(0)
            && SignatureChecker.isValidSignatureNow(signer, digest, signature);
    }

    /// @notice The EIP-712 digest a provider signs for `quote`.
    function hashQuote(Quote calldata quote) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(QUOTE_TYPEHASH, quote)));
    }

    /// @notice Whether `provider`'s quote nonce `nonce` is spent.
    function isQuoteNonceUsed(address provider, uint256 nonce) external view returns (bool) {
        return (_quoteNonces[provider][nonce >> 8] >> (nonce & 255)) & 1 == 1;
    }

    /// @notice `provider`'s collateral pool.
    function poolOf(address provider) external view returns (uint128 deposited, uint128 locked) {
        Pool storage pool = _pools[provider];
        return (pool.deposited, pool.locked);
    }

    // ------------------------------------------------------------------ internals

    function _reserve(address provider, uint64 capacityBytes, uint128 collateral) private {
        Listing storage listing = _listings[provider];
        if (listing.status != ListingStatus.Active) {
            revert ListingNotActive(provider, listing.status);
        }
        uint64 used = listing.usedBytes;
        uint64 capacity = listing.capacityBytes;
        uint64 free = capacity > used ? capacity - used : 0;
        if (capacityBytes > free) revert InsufficientCapacity(provider, capacityBytes, free);
        Pool storage pool = _pools[provider];
        uint128 unlocked = pool.deposited - pool.locked;
        if (collateral > unlocked) revert InsufficientCollateral(provider, collateral, unlocked);
        listing.usedBytes = used + capacityBytes;
        listing.liveDeals += 1;
        pool.locked += collateral;
        _emitPool(provider, pool);
    }

    function _write(Listing storage listing, ListingTerms calldata terms) private {
        if (terms.nodeId == bytes32(0)) revert InvalidListing("nodeId");
        if (terms.addressHints.length > MAX_ADDRESS_HINTS_BYTES) {
            revert InvalidListing("addressHints");
        }
        if (terms.capacityBytes == 0) revert InvalidListing("capacityBytes");
        if (terms.pricePerGiBMonth == 0) revert InvalidListing("pricePerGiBMonth");
        if (terms.minPeriods == 0 || terms.maxPeriods < terms.minPeriods) {
            revert InvalidListing("periods");
        }
        if (terms.collateralBps < MIN_COLLATERAL_BPS) revert InvalidListing("collateralBps");
        listing.pricePerGiBMonth = terms.pricePerGiBMonth;
        listing.capacityBytes = terms.capacityBytes;
        listing.quoteSigner = terms.quoteSigner == address(0) ? msg.sender : terms.quoteSigner;
        listing.minPeriods = terms.minPeriods;
        listing.maxPeriods = terms.maxPeriods;
        listing.policy = terms.policy;
        listing.collateralPerGiB = terms.collateralPerGiB;
        listing.collateralBps = terms.collateralBps;
        listing.region = terms.region;
        listing.nodeId = terms.nodeId;
        listing.addressHints = terms.addressHints;
    }

    function _emitPool(address provider, Pool storage pool) private {
        Listing storage listing = _listings[provider];
        emit PoolUpdated(
            provider, pool.deposited, pool.locked, listing.usedBytes, listing.liveDeals
        );
    }
}
