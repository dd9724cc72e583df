// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/**
 * @title PeriodClock
 * @notice The one definition of period boundaries, shared by {Marketplace} and {StorageProofs}.
 *
 * Period `p` covers `[GENESIS + p * PERIOD_SECS, GENESIS + (p + 1) * PERIOD_SECS)`. Proofs for
 * `p` are accepted until `proofDeadline(p)`, its end plus `PROOF_GRACE_SECS`; from then on
 * `p` is closed and can be settled. The grace is shorter than a period, so at most two periods
 * (the current one and, during the grace, the previous one) are open to proofs at any time.
 * @dev Periods are hours long in production and seconds long on a devnet; nothing relies on
 * second-level timestamp precision (L2 sequencers set timestamps).
 */
abstract contract PeriodClock {
    /// @notice Period length in seconds.
    uint256 public immutable PERIOD_SECS;
    /// @notice Unix time period 0 starts.
    uint256 public immutable GENESIS;
    /// @notice Seconds after a period ends during which its proofs are still accepted.
    uint256 public immutable PROOF_GRACE_SECS;

    /// @notice Zero period length, a genesis in the future, or a grace of a period or more.
    error InvalidClock(uint256 periodSecs, uint256 genesis, uint256 proofGraceSecs);

    constructor(uint256 periodSecs, uint256 genesis, uint256 proofGraceSecs) {
        if (periodSecs == 0 || genesis > block.timestamp || proofGraceSecs >= periodSecs) {
            revert InvalidClock(periodSecs, genesis, proofGraceSecs);
        }
        PERIOD_SECS = periodSecs;
        GENESIS = genesis;
        PROOF_GRACE_SECS = proofGraceSecs;
    }

    /// @notice The period `block.timestamp` falls in.
    function currentPeriod() public view returns (uint256) {
        return (block.timestamp - GENESIS) / PERIOD_SECS;
    }

    /// @notice Unix time `period` starts.
    function periodStart(uint256 period) public view returns (uint256) {
        return GENESIS + period * PERIOD_SECS;
    }

    /// @notice Unix time from which proofs for `period` are refused.
    function proofDeadline(uint256 period) public view returns (uint256) {
        return GENESIS + (period + 1) * PERIOD_SECS + PROOF_GRACE_SECS;
    }

    /// @notice The oldest period still open to proofs; every earlier period is closed.
    function firstOpenPeriod() public view returns (uint256) {
        uint256 elapsed = block.timestamp - GENESIS;
        return elapsed < PROOF_GRACE_SECS ? 0 : (elapsed - PROOF_GRACE_SECS) / PERIOD_SECS;
    }
}
