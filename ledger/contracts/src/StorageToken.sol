// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/**
 * @title StorageToken
 * @notice The ERC-20 (with ERC-2612 permit) that dBytes deals are priced, escrowed and
 * collateralised in. A plain token on purpose: no fees on transfer, no rebasing, no hooks,
 * so the marketplace's accounting can rely on amounts moved being amounts received.
 * @dev The initial supply goes to `initialHolder`. `MINTER_ROLE` exists only for the local
 * network's {Faucet}; on a production chain no account holds it and the admin renounces.
 */
contract StorageToken is ERC20, ERC20Permit, AccessControl {
    /// @notice The role allowed to mint (the devnet faucet).
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /**
     * @param name_ Token name, also the EIP-712 domain name of `permit`.
     * @param symbol_ Token symbol.
     * @param admin Holder of `DEFAULT_ADMIN_ROLE` (grants and revokes `MINTER_ROLE`).
     * @param initialHolder Receives `initialSupply`.
     * @param initialSupply Tokens minted at deployment, in base units.
     */
    constructor(
        string memory name_,
        string memory symbol_,
        address admin,
        address initialHolder,
        uint256 initialSupply
    ) ERC20(name_, symbol_) ERC20Permit(name_) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        if (initialSupply != 0) _mint(initialHolder, initialSupply);
    }

    /**
     * @notice Mints `amount` base units to `to`.
     * @dev Only `MINTER_ROLE`. Emits {Transfer} from the zero address.
     */
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }
}
