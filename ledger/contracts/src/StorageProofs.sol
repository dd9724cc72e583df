// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Blockhash} from "@openzeppelin/contracts/utils/Blockhash.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

import {MerkleVerify} from "./MerkleVerify.sol";
import {PeriodClock} from "./PeriodClock.sol";
import {ProviderRegistry} from "./ProviderRegistry.sol";

/// @notice What {StorageProofs} reads of a deal from the marketplace.
interface IDealBook {
    /// @notice The parties, capacity, settlement cursor, end and state of a deal
    /// (`state` as `Marketplace.DealState`; zeros for an unknown deal).
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
        );
}

/**
 * @title StorageProofs
 * @notice The evidence side of the market: what data each deal holds (co-signed commitments),
 * the per-period challenge seeds, and which periods each deal proved. The {Marketplace} pays
 * and slashes from the proven-period bitmap kept here.
 *
 * - Commitments: consumer and provider co-sign `(root, leafCount, version)` over EIP-712
 *   ({commit}); versions strictly increase, the leaves never exceed the deal's capacity, and a
 *   new commitment takes effect at the next period boundary, so it is fixed before that
 *   period's seed exists.
 * - Seeds: one per period for every deal. Anyone anchors it, once the period has started, to
 *   a block `SEED_LOOKAHEAD_BLOCKS` ahead ({anchorSeed}); the first proof (or anyone, through
 *   {fixSeed}) fixes it from that block's hash. If nobody fixed it while the hash was readable
 *   (256 blocks, 8191 with EIP-2935), it may be re-anchored. The seed is shared by every deal
 *   of every provider, so in a live network some honest prover fixes it at once and a cheating
 *   provider cannot wait for a second draw.
 * - Challenges: leaf `uint256(keccak256(abi.encode(seed, dealId, i))) % leafCount` for
 *   `i < CHALLENGES`; the contract derives them, the prover never chooses.
 * - Proofs: {submitProofs} verifies many deals per transaction with {MerkleVerify} (the path
 *   length must equal the committed tree's depth) and sets one bit per deal and period.
 *   Anyone may relay: the bitmap is all that counts, and only the deal's provider is paid.
 *
 * @dev Departure from research/contracts-design.md, which puts all of this in the marketplace:
 * the two together exceed the 24 KiB code size limit (EIP-170). The cut follows the data:
 * proofs need only commitments, seeds and bitmaps (so a proof reads three slots of one
 * contract), settlement needs the bitmap once per 256 periods. The marketplace is the only
 * contract that may give a repair deal its parent's commitment ({inherit}).
 */
contract StorageProofs is PeriodClock, EIP712 {
    /// @notice A deal's commitment in effect and the one replacing it at `nextFrom` (a view).
    struct Commitment {
        bytes32 root;
        uint64 leafCount;
        uint32 version;
        uint32 committedFrom; // first period under any commitment; the current one is in effect from it
        bytes32 nextRoot;
        uint64 nextLeafCount;
        uint32 nextVersion;
        uint32 nextFrom; // 0 while nothing is pending
    }

    /**
     * @dev Storage of a deal's commitments: two buffers, `current` says which one holds the
     * commitment in effect; the other holds the pending one while `nextFrom != 0`. Taking the
     * pending one into effect flips `current` instead of copying a root (one SSTORE fewer per
     * commitment). Leaf counts are at most 2^48, so 56 bits hold them.
     */
    struct Buffers {
        // slot 0
        uint56 leafCount0;
        uint32 version0;
        uint56 leafCount1;
        uint32 version1;
        uint32 committedFrom;
        uint32 nextFrom;
        uint8 current;
        // slot 1, 2
        bytes32 root0;
        bytes32 root1;
    }

    /// @notice Proofs for one deal: `CHALLENGES` leaves of 256 bytes, concatenated, and their
    /// paths, concatenated (`CHALLENGES * depth(leafCount)` siblings, each path bottom-up).
    struct DealProof {
        uint256 dealId;
        bytes leaves;
        bytes32[] siblings;
    }

    /// @dev Where a commitment being recorded goes, worked out by {_window}.
    struct Window {
        address consumer;
        address provider;
        uint256 current;
        uint256 from;
        bool promote;
    }

    /// @notice EIP-712 type both parties sign.
    bytes32 public constant COMMITMENT_TYPEHASH =
        keccak256("Commitment(uint256 dealId,bytes32 root,uint64 leafCount,uint32 version)");

    /// @dev `Marketplace.DealState` values this contract relies on.
    uint8 private constant STATE_ACTIVE = 2;
    uint8 private constant STATE_EXITING = 4;

    /// @notice The marketplace whose deals these are.
    IDealBook public immutable marketplace;
    /// @notice Where provider signatures are checked (provider or its quote signer).
    ProviderRegistry public immutable registry;
    /// @notice Challenged leaves per deal per period (K).
    uint256 public immutable CHALLENGES;
    /// @notice Blocks between a seed's anchoring and the block whose hash makes it.
    uint256 public immutable SEED_LOOKAHEAD_BLOCKS;

    mapping(uint256 dealId => Buffers) private _commitments;
    mapping(uint256 dealId => mapping(uint256 word => uint256)) private _proven;
    mapping(uint256 period => uint256) private _seedAnchors;
    mapping(uint256 period => bytes32) private _seeds;

    /// @notice A co-signed commitment takes effect from `fromPeriod` on.
    event DealCommitted(
        uint256 indexed dealId, bytes32 root, uint64 leafCount, uint32 version, uint256 fromPeriod
    );
    /// @notice `period`'s seed will come from the hash of block `anchorBlock`.
    event SeedAnchored(uint256 indexed period, uint256 anchorBlock);
    /// @notice `period`'s seed is fixed to `seed`.
    event SeedFixed(uint256 indexed period, bytes32 seed);
    /// @notice `period` is proven for `dealIds` (relayed by `relayer`).
    event ProofsSubmitted(uint256 indexed period, address indexed relayer, uint256[] dealIds);

    /// @notice The caller is not the marketplace.
    error ProofsUnauthorized(address caller);
    /// @notice K outside 1..16 or a zero seed lookahead.
    error InvalidProofConfig(uint256 challenges, uint256 seedLookaheadBlocks);
    /// @notice Commitments are accepted only for running deals.
    error DealNotRunning(uint256 dealId, uint8 state);
    /// @notice Zero root, zero leaf count, or a leaf count above 2^48.
    error InvalidCommitment(bytes32 root, uint256 leafCount);
    /// @notice The committed leaves do not fit the deal's capacity.
    error CommitmentExceedsCapacity(uint256 leafCount, uint256 capacityBytes);
    /// @notice Versions must strictly increase.
    error StaleVersion(uint256 version, uint256 latest);
    /// @notice A signature is not `signer`'s (for the provider: nor its quote signer's).
    error InvalidSignature(address signer);
    /// @notice The previous commitment may still be needed for a late proof; retry at `untilTime`.
    error CommitmentInTransition(uint256 dealId, uint256 untilTime);
    /// @notice The deal ends before the commitment could take effect.
    error DealEnding(uint256 dealId, uint256 fromPeriod, uint256 end);
    /// @notice The period has not started yet.
    error PeriodNotStarted(uint256 period, uint256 currentPeriod);
    /// @notice Proofs for the period are no longer accepted.
    error ProofWindowClosed(uint256 period, uint256 deadline);
    /// @notice The seed is already fixed.
    error SeedAlreadyFixed(uint256 period);
    /// @notice The anchor block is still to come or still readable, so no re-anchoring.
    error SeedAnchorLive(uint256 period, uint256 anchorBlock);
    /// @notice The seed cannot be read: not anchored, anchor block not yet mined, or expired.
    error SeedUnavailable(uint256 period, uint256 anchorBlock);
    /// @notice The deal has no commitment in effect in the period.
    error NoCommitment(uint256 dealId, uint256 period);
    /// @notice Leaf bytes or sibling count differ from `CHALLENGES` x 256 and `CHALLENGES` x depth.
    error InvalidProofLength(uint256 dealId, uint256 leavesLength, uint256 siblingsLength);
    /// @notice Challenge `challenge` (leaf `index`) does not fold to the committed root.
    error InvalidProof(uint256 dealId, uint256 challenge, uint256 index);

    /**
     * @param marketplace_ The marketplace (deployed right after, at this predicted address; its
     * constructor checks the link).
     * @param registry_ The provider registry.
     * @param periodSecs Period length in seconds (devnet: a few; production: 86400).
     * @param genesis Unix time period 0 starts; 0 means now.
     * @param proofGraceSecs Seconds after a period during which its proofs are still accepted,
     * less than a period.
     * @param challenges K, challenged leaves per deal per period, 1 to 16.
     * @param seedLookaheadBlocks Blocks between anchoring a seed and its source block, at least 1.
     */
    constructor(
        IDealBook marketplace_,
        ProviderRegistry registry_,
        uint256 periodSecs,
        uint256 genesis,
        uint256 proofGraceSecs,
        uint256 challenges,
        uint256 seedLookaheadBlocks
    )
        PeriodClock(periodSecs, genesis == 0 ? block.timestamp : genesis, proofGraceSecs)
        EIP712("dBytes StorageProofs", "1")
    {
        if (challenges == 0 || challenges > 16 || seedLookaheadBlocks == 0) {
            revert InvalidProofConfig(challenges, seedLookaheadBlocks);
        }
        marketplace = marketplace_;
        registry = registry_;
        CHALLENGES = challenges;
        SEED_LOOKAHEAD_BLOCKS = seedLookaheadBlocks;
    }

    // ================================================================== commitments

    /**
     * @notice Records a commitment `(root, leafCount, version)` co-signed by the deal's consumer
     * and provider; it takes effect at the next period boundary (or at the deal's start).
     * @param consumerSignature The consumer's EIP-712 signature of `Commitment`; may be empty
     * when the consumer sends the transaction.
     * @param providerSignature The provider's (or its quote signer's); may be empty when the
     * provider sends the transaction.
     * @dev The deal must be running (Active, Terminating or Exiting) and end after the boundary.
     * A commitment not yet in effect is replaced; one in effect is superseded at the boundary.
     * Reverts with {CommitmentInTransition} while the commitment being superseded may still be
     * needed for a late proof (during the grace after a boundary). Emits {DealCommitted}.
     */
    function commit(
        uint256 dealId,
        bytes32 root,
        uint64 leafCount,
        uint32 version,
        bytes calldata consumerSignature,
        bytes calldata providerSignature
    ) external {
        Window memory w = _window(dealId, root, leafCount, version);
        bytes32 digest = hashCommitment(dealId, root, leafCount, version);
        if (
            !(consumerSignature.length == 0 && msg.sender == w.consumer)
                && !SignatureChecker.isValidSignatureNow(w.consumer, digest, consumerSignature)
        ) revert InvalidSignature(w.consumer);
        // The provider's own key is checked here; only a quote signer needs the registry.
        if (
            !(providerSignature.length == 0 && msg.sender == w.provider)
                && !SignatureChecker.isValidSignatureNow(w.provider, digest, providerSignature)
                && !registry.isProviderSignature(w.provider, digest, providerSignature)
        ) revert InvalidSignature(w.provider);
        _record(dealId, root, leafCount, version, w);
    }

    /**
     * @notice Gives repair deal `childId` the latest commitment of `parentId`, in effect from
     * `fromPeriod`; returns it so the marketplace can match it against the new provider's quote.
     * @dev Only the marketplace. Emits {DealCommitted} for the child.
     */
    function inherit(uint256 parentId, uint256 childId, uint256 fromPeriod)
        external
        returns (bytes32 root, uint64 leafCount, uint32 version)
    {
        if (msg.sender != address(marketplace)) revert ProofsUnauthorized(msg.sender);
        (root, leafCount, version) = latestCommitment(parentId);
        if (leafCount == 0) revert NoCommitment(parentId, fromPeriod);
        Buffers storage child = _commitments[childId];
        child.root0 = root;
        // Copied from a stored commitment (<= 2^48 leaves); the child starts before its
        // parent's term end, a uint32.
        // forge-lint: disable-next-line(unsafe-typecast)
        child.leafCount0 = uint56(leafCount);
        child.version0 = version;
        // forge-lint: disable-next-line(unsafe-typecast)
        child.committedFrom = uint32(fromPeriod);
        emit DealCommitted(childId, root, leafCount, version, fromPeriod);
    }

    // ================================================================== seeds

    /**
     * @notice Anchors `period`'s seed to block `block.number + SEED_LOOKAHEAD_BLOCKS`. Anyone
     * may call it once the period has started and while its proofs are accepted; again only if
     * the anchor block's hash became unreadable before anyone fixed the seed.
     * @return anchorBlock The block whose hash will make the seed.
     * @dev Reverts with {PeriodNotStarted}, {ProofWindowClosed}, {SeedAlreadyFixed} or
     * {SeedAnchorLive}. Emits {SeedAnchored}.
     */
    function anchorSeed(uint256 period) external returns (uint256 anchorBlock) {
        uint256 current = currentPeriod();
        if (period > current) revert PeriodNotStarted(period, current);
        if (period < firstOpenPeriod()) revert ProofWindowClosed(period, proofDeadline(period));
        if (_seeds[period] != 0) revert SeedAlreadyFixed(period);
        uint256 anchor = _seedAnchors[period];
        if (anchor != 0 && (block.number <= anchor || Blockhash.blockHash(anchor) != 0)) {
            revert SeedAnchorLive(period, anchor);
        }
        anchorBlock = block.number + SEED_LOOKAHEAD_BLOCKS;
        _seedAnchors[period] = anchorBlock;
        emit SeedAnchored(period, anchorBlock);
    }

    /**
     * @notice Fixes `period`'s seed from its anchor block's hash, if not fixed yet, and returns it.
     * @dev Provers fix it implicitly; consumers may call this too, so that no single party
     * decides whether an anchor expires. Reverts with {SeedUnavailable}. Emits {SeedFixed} once.
     */
    function fixSeed(uint256 period) public returns (bytes32 seed) {
        seed = _seeds[period];
        if (seed != 0) return seed;
        uint256 anchor = _seedAnchors[period];
        seed = _seedFrom(period, anchor);
        if (seed == 0) revert SeedUnavailable(period, anchor);
        _seeds[period] = seed;
        emit SeedFixed(period, seed);
    }

    // ================================================================== proofs

    /**
     * @notice Submits storage proofs for `period` for many deals: for each, the `CHALLENGES`
     * leaves the seed selects, checked against the commitment in effect in `period`. Each deal
     * is then marked proven for `period`; its provider is paid at settlement whoever relayed.
     * @return accepted The number of deals newly marked proven.
     * @dev The period must be started (its seed readable) and not past its deadline. Deals
     * already proven for `period` are skipped, so a copied or raced proof cannot make a batch
     * revert; any wrong proof reverts the batch. The bitmap of a deal that has ended is never
     * read again, so proving one changes nothing. Calls only the SHA-256 precompile. Emits
     * {ProofsSubmitted} with the accepted deal ids (and {SeedFixed} when it fixes the seed).
     */
    function submitProofs(uint256 period, DealProof[] calldata proofs)
        external
        returns (uint256 accepted)
    {
        if (period < firstOpenPeriod()) {
            revert ProofWindowClosed(period, proofDeadline(period));
        }
        bytes32 seed = fixSeed(period);
        uint256[] memory dealIds = new uint256[](proofs.length);
        uint256 wordIndex = period >> 8;
        // forge-lint: disable-next-line(incorrect-shift)
        uint256 bit = 1 << (period & 255);
        for (uint256 i; i < proofs.length; ++i) {
            DealProof calldata proof = proofs[i];
            uint256 dealId = proof.dealId;
            mapping(uint256 => uint256) storage bitmap = _proven[dealId];
            uint256 word = bitmap[wordIndex];
            if (word & bit != 0) continue;
            _verify(period, seed, proof);
            bitmap[wordIndex] = word | bit;
            dealIds[accepted] = dealId;
            ++accepted;
        }
        assembly ("memory-safe") {
            mstore(dealIds, accepted)
        }
        emit ProofsSubmitted(period, msg.sender, dealIds);
    }

    // ================================================================== views

    /// @notice A deal's commitment in effect (or about to be, for the first one) and the pending one.
    function commitmentOf(uint256 dealId) external view returns (Commitment memory c) {
        Buffers storage b = _commitments[dealId];
        uint256 current = b.current;
        (c.root, c.leafCount, c.version) = _entry(b, current);
        c.committedFrom = b.committedFrom;
        c.nextFrom = b.nextFrom;
        if (c.nextFrom != 0) (c.nextRoot, c.nextLeafCount, c.nextVersion) = _entry(b, 1 - current);
    }

    /**
     * @notice The commitment in effect in `period` (zeros if none), for any period still open
     * to proofs or later. Older periods may have been under a commitment since superseded.
     */
    function commitmentAt(uint256 dealId, uint256 period)
        public
        view
        returns (bytes32 root, uint64 leafCount, uint32 version)
    {
        Buffers storage b = _commitments[dealId];
        uint256 current = b.current;
        uint256 nextFrom = b.nextFrom;
        if (nextFrom != 0 && period >= nextFrom) return _entry(b, 1 - current);
        if (period >= b.committedFrom) return _entry(b, current); // zeros before any commitment
    }

    /// @notice The deal's most recent commitment, in effect or pending (zeros if none).
    function latestCommitment(uint256 dealId)
        public
        view
        returns (bytes32 root, uint64 leafCount, uint32 version)
    {
        Buffers storage b = _commitments[dealId];
        uint256 current = b.current;
        return _entry(b, b.nextFrom != 0 ? 1 - current : current);
    }

    /// @notice Whether `period` of the deal is proven.
    function isProven(uint256 dealId, uint256 period) external view returns (bool) {
        return (_proven[dealId][period >> 8] >> (period & 255)) & 1 == 1;
    }

    /**
     * @notice What settlement needs: the first period under any commitment (0 if none) and the
     * proven bits of periods `[256 * wordIndex, 256 * wordIndex + 256)`.
     */
    function provenWord(uint256 dealId, uint256 wordIndex)
        external
        view
        returns (uint256 committedFrom, uint256 word)
    {
        return (_commitments[dealId].committedFrom, _proven[dealId][wordIndex]);
    }

    /// @notice `period`'s seed: fixed, or readable from its anchor now; zero if neither.
    function seedOf(uint256 period) public view returns (bytes32 seed) {
        seed = _seeds[period];
        if (seed == 0) seed = _seedFrom(period, _seedAnchors[period]);
    }

    /// @notice The block `period`'s seed is anchored to (0 if none).
    function seedAnchorOf(uint256 period) external view returns (uint256) {
        return _seedAnchors[period];
    }

    /**
     * @notice The leaf indexes the deal must prove for `period`:
     * `uint256(keccak256(abi.encode(seed, dealId, i))) % leafCount` for `i < CHALLENGES`.
     * @dev Reverts with {SeedUnavailable} or {NoCommitment}.
     */
    function challengeIndexes(uint256 dealId, uint256 period)
        external
        view
        returns (uint256[] memory indexes)
    {
        bytes32 seed = seedOf(period);
        if (seed == 0) revert SeedUnavailable(period, _seedAnchors[period]);
        (, uint64 leafCount,) = commitmentAt(dealId, period);
        if (leafCount == 0) revert NoCommitment(dealId, period);
        indexes = new uint256[](CHALLENGES);
        for (uint256 i; i < CHALLENGES; ++i) {
            indexes[i] = _challenge(seed, dealId, i, leafCount);
        }
    }

    /// @notice The EIP-712 digest consumer and provider sign for a commitment.
    function hashCommitment(uint256 dealId, bytes32 root, uint64 leafCount, uint32 version)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(COMMITMENT_TYPEHASH, dealId, root, leafCount, version))
        );
    }

    // ================================================================== internals

    /// @dev Checks the deal can take the commitment: running, big enough, a newer version, and
    /// a pending commitment that can make way. Returns the parties and where it goes.
    function _window(uint256 dealId, bytes32 root, uint64 leafCount, uint32 version)
        private
        view
        returns (Window memory w)
    {
        uint64 capacityBytes;
        uint32 settledTo;
        uint32 end;
        uint8 state;
        (w.consumer, w.provider, capacityBytes, settledTo, end, state) =
            marketplace.commitTerms(dealId);
        if (state < STATE_ACTIVE || state > STATE_EXITING) revert DealNotRunning(dealId, state);
        if (root == 0 || leafCount == 0 || leafCount > MerkleVerify.MAX_LEAF_COUNT) {
            revert InvalidCommitment(root, leafCount);
        }
        if (uint256(leafCount) * MerkleVerify.LEAF_SIZE > capacityBytes) {
            revert CommitmentExceedsCapacity(leafCount, capacityBytes);
        }
        w.current = currentPeriod();
        w.from = w.current + 1 < settledTo ? settledTo : w.current + 1;
        if (w.from >= end) revert DealEnding(dealId, w.from, end);

        Buffers storage b = _commitments[dealId];
        uint256 nextFrom = b.nextFrom;
        (, uint256 latest) = _meta(b, nextFrom != 0 ? 1 - b.current : b.current);
        if (version <= latest) revert StaleVersion(version, latest);
        if (nextFrom != 0) {
            if (nextFrom <= firstOpenPeriod()) {
                // In effect for every period still open to proofs: promote it to current.
                w.promote = true;
            } else if (nextFrom <= w.current) {
                // In effect now, but the previous period may still be proven against the
                // current commitment: neither may be dropped until the grace ends.
                revert CommitmentInTransition(dealId, proofDeadline(nextFrom - 1));
            }
            // Otherwise it is not in effect yet and is replaced.
        }
    }

    /// @dev Stores a checked commitment where {_window} placed it.
    function _record(
        uint256 dealId,
        bytes32 root,
        uint64 leafCount,
        uint32 version,
        Window memory w
    ) private {
        Buffers storage b = _commitments[dealId];
        uint256 current = b.current;
        if (w.promote) {
            // The pending commitment takes over; its old buffer is free for the new one.
            current = 1 - current;
            // forge-lint: disable-next-line(unsafe-typecast)
            b.current = uint8(current); // 0 or 1
        }
        (uint64 currentLeafCount,) = _meta(b, current);
        if (b.nextFrom == 0 && (currentLeafCount == 0 || b.committedFrom > w.current)) {
            // The first commitment, or a replacement for it before it takes effect.
            _store(b, current, root, leafCount, version);
            b.committedFrom = uint32(w.from);
        } else {
            _store(b, 1 - current, root, leafCount, version);
            b.nextFrom = uint32(w.from);
        }
        emit DealCommitted(dealId, root, leafCount, version, w.from);
    }

    function _entry(Buffers storage b, uint256 index)
        private
        view
        returns (bytes32 root, uint64 leafCount, uint32 version)
    {
        if (index == 0) return (b.root0, b.leafCount0, b.version0);
        return (b.root1, b.leafCount1, b.version1);
    }

    /// @dev {_entry} without the root (which lives in another slot).
    function _meta(Buffers storage b, uint256 index)
        private
        view
        returns (uint64 leafCount, uint32 version)
    {
        if (index == 0) return (b.leafCount0, b.version0);
        return (b.leafCount1, b.version1);
    }

    /// @dev `leafCount <= 2^48` was checked by {_window}.
    function _store(
        Buffers storage b,
        uint256 index,
        bytes32 root,
        uint64 leafCount,
        uint32 version
    ) private {
        if (index == 0) {
            b.root0 = root;
            // forge-lint: disable-next-line(unsafe-typecast)
            b.leafCount0 = uint56(leafCount);
            b.version0 = version;
        } else {
            b.root1 = root;
            // forge-lint: disable-next-line(unsafe-typecast)
            b.leafCount1 = uint56(leafCount);
            b.version1 = version;
        }
    }

    /// @dev Checks one deal's `CHALLENGES` leaves and paths against its commitment in `period`.
    function _verify(uint256 period, bytes32 seed, DealProof calldata proof) private view {
        uint256 dealId = proof.dealId;
        (bytes32 root, uint64 leafCount,) = commitmentAt(dealId, period);
        if (leafCount == 0) revert NoCommitment(dealId, period);
        uint256 depth = MerkleVerify.depth(leafCount);
        bytes calldata leaves = proof.leaves;
        bytes32[] calldata siblings = proof.siblings;
        if (
            leaves.length != CHALLENGES * MerkleVerify.LEAF_SIZE
                || siblings.length != CHALLENGES * depth
        ) {
            revert InvalidProofLength(dealId, leaves.length, siblings.length);
        }
        uint256 leafOffset;
        uint256 pathOffset;
        assembly ("memory-safe") {
            leafOffset := leaves.offset
            pathOffset := siblings.offset
        }
        for (uint256 i; i < CHALLENGES; ++i) {
            uint256 index = _challenge(seed, dealId, i, leafCount);
            if (MerkleVerify.computeRootAt(index, leafOffset, pathOffset, depth) != root) {
                revert InvalidProof(dealId, i, index);
            }
            leafOffset += MerkleVerify.LEAF_SIZE;
            pathOffset += depth << 5;
        }
    }

    /// @dev The seed mixes in chain and contract so challenges never carry over between
    /// deployments. No `prevrandao`: read when the seed is fixed, it would let whoever fixes it
    /// choose among blocks (the anchor block's hash already commits to that block's randomness).
    function _seedFrom(uint256 period, uint256 anchor) private view returns (bytes32) {
        if (anchor == 0) return 0;
        bytes32 hash = Blockhash.blockHash(anchor);
        if (hash == 0) return 0;
        return keccak256(abi.encode(hash, period, block.chainid, address(this)));
    }

    function _challenge(bytes32 seed, uint256 dealId, uint256 i, uint256 leafCount)
        private
        pure
        returns (uint256 index)
    {
        assembly ("memory-safe") {
            let buffer := mload(0x40)
            mstore(buffer, seed)
            mstore(add(buffer, 0x20), dealId)
            mstore(add(buffer, 0x40), i)
            index := mod(keccak256(buffer, 0x60), leafCount)
        }
    }
}
