// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {StorageToken} from "./StorageToken.sol";

/**
 * @title Faucet
 * @notice Funds test accounts on a local network: anyone may ask for tokens for any
 * account, `dripAmount` at a time, up to `capPerAccount` in total per account.
 * @dev Must hold the token's `MINTER_ROLE`. Deployed only on devnets (see
 * `script/Deploy.s.sol`); the cap keeps a runaway script from minting without bound.
 */
contract Faucet {
    /// @notice The token minted.
    StorageToken public immutable token;
    /// @notice Base units minted per {drip}.
    uint256 public immutable dripAmount;
    /// @notice The most one account can ever receive from this faucet.
    uint256 public immutable capPerAccount;

    /// @notice Base units already minted to each account.
    mapping(address account => uint256) public dripped;

    /// @notice `account` received `amount`; it has now received `total` in all.
    event Dripped(address indexed account, uint256 amount, uint256 total);

    /// @notice `account` has already received `capPerAccount`.
    error FaucetCapReached(address account, uint256 cap);

    /// @notice A faucet configuration that could never pay out.
    error FaucetInvalidConfig(uint256 dripAmount, uint256 capPerAccount);

    /**
     * @param token_ The token (this contract needs its `MINTER_ROLE`).
     * @param dripAmount_ Base units per drip, nonzero.
     * @param capPerAccount_ Lifetime cap per account, at least `dripAmount_`.
     */
    constructor(StorageToken token_, uint256 dripAmount_, uint256 capPerAccount_) {
        if (dripAmount_ == 0 || capPerAccount_ < dripAmount_) {
            revert FaucetInvalidConfig(dripAmount_, capPerAccount_);
        }
        token = token_;
        dripAmount = dripAmount_;
        capPerAccount = capPerAccount_;
    }

    /**
     * @notice Mints up to `dripAmount` to `account`, less if that would pass its cap.
     * @return amount The base units minted.
     * @dev Reverts with {FaucetCapReached} once the account has received its cap.
     */
    function drip(address account) external returns (uint256 amount) {
        uint256 already = dripped[account];
        uint256 room = capPerAccount - already;
        if (room == 0) revert FaucetCapReached(account, capPerAccount);
        amount = room < dripAmount ? room : dripAmount;
        dripped[account] = already + amount;
        emit Dripped(account, amount, already + amount);
        token.mint(account, amount);
    }
}
