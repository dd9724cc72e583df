// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

import {Faucet} from "../src/Faucet.sol";
import {StorageToken} from "../src/StorageToken.sol";
import {Deploys} from "./Base.t.sol";

contract StorageTokenTest is Deploys {
    StorageToken internal token;
    Faucet internal faucet;
    address internal admin = makeAddr("admin");
    address internal alice = makeAddr("alice");

    function setUp() public {
        token = deployToken("dBytes Storage", "DBS", admin, admin, 1000e18);
        faucet = deployFaucet(token, 100e18, 250e18);
        bytes32 minterRole = token.MINTER_ROLE();
        vm.prank(admin);
        token.grantRole(minterRole, address(faucet));
    }

    function test_constructorMintsAndGrantsAdmin() public view {
        assertEq(token.name(), "dBytes Storage");
        assertEq(token.symbol(), "DBS");
        assertEq(token.decimals(), 18);
        assertEq(token.totalSupply(), 1000e18);
        assertEq(token.balanceOf(admin), 1000e18);
        assertTrue(token.hasRole(token.DEFAULT_ADMIN_ROLE(), admin));
    }

    function test_zeroInitialSupply() public {
        StorageToken empty = deployToken("x", "x", admin, address(0), 0);
        assertEq(empty.totalSupply(), 0);
    }

    function test_mintOnlyMinter() public {
        bytes32 minterRole = token.MINTER_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, alice, minterRole
            )
        );
        vm.prank(alice);
        token.mint(alice, 1);

        vm.prank(address(faucet));
        token.mint(alice, 5);
        assertEq(token.balanceOf(alice), 5);
    }

    function test_permit() public {
        uint256 ownerKey = 0xA11CE;
        address owner = vm.addr(ownerKey);
        vm.prank(admin);
        token.transfer(owner, 10e18);
        uint256 deadline = block.timestamp + 1;
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"
                ),
                owner,
                alice,
                3e18,
                token.nonces(owner),
                deadline
            )
        );
        bytes32 digest =
            keccak256(abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(ownerKey, digest);
        token.permit(owner, alice, 3e18, deadline, v, r, s);
        assertEq(token.allowance(owner, alice), 3e18);
        assertEq(token.nonces(owner), 1);
    }

    // ------------------------------------------------------------------ faucet

    function test_dripMintsUpToTheCap() public {
        vm.expectEmit(address(faucet));
        emit Faucet.Dripped(alice, 100e18, 100e18);
        assertEq(faucet.drip(alice), 100e18);
        assertEq(faucet.drip(alice), 100e18);
        assertEq(faucet.drip(alice), 50e18, "the last drip stops at the cap");
        assertEq(token.balanceOf(alice), 250e18);
        assertEq(faucet.dripped(alice), 250e18);
        vm.expectRevert(abi.encodeWithSelector(Faucet.FaucetCapReached.selector, alice, 250e18));
        faucet.drip(alice);
    }

    function test_dripNeedsMinterRole() public {
        Faucet other = deployFaucet(token, 1, 1);
        bytes32 minterRole = token.MINTER_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, address(other), minterRole
            )
        );
        other.drip(alice);
    }

    function test_faucetRejectsBadConfig() public {
        vm.expectRevert(abi.encodeWithSelector(Faucet.FaucetInvalidConfig.selector, 0, 10));
        deployFaucet(token, 0, 10);
        vm.expectRevert(abi.encodeWithSelector(Faucet.FaucetInvalidConfig.selector, 10, 9));
        deployFaucet(token, 10, 9);
    }
}
