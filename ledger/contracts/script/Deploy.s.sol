// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Script, console2} from "forge-std/Script.sol";

import {Faucet} from "../src/Faucet.sol";
import {Marketplace} from "../src/Marketplace.sol";
import {ProviderRegistry} from "../src/ProviderRegistry.sol";
import {IDealBook, StorageProofs} from "../src/StorageProofs.sol";
import {StorageToken} from "../src/StorageToken.sol";

/**
 * @notice Deploys the dBytes contracts, in the order and with the defaults of
 * `dbytes contracts deploy` (which is the usual way: it needs no forge and writes the deployment
 * file every other command reads). This script is for deploying with Foundry's own tooling
 * (hardware wallets, `--verify`); it prints the addresses.
 *
 *   forge script script/Deploy.s.sol --rpc-url $RPC --broadcast --private-key $KEY
 *
 * Parameters come from the environment, each with the CLI's default: PERIOD_SECS (86400),
 * PROOF_GRACE_SECS (PERIOD_SECS / 12), GENESIS (0: the deployment block's time), CHALLENGES (4),
 * SEED_LOOKAHEAD_BLOCKS (2), FILL_PERIODS (2), EXIT_NOTICE_PERIODS (3), INITIAL_SUPPLY (1e9
 * tokens), FAUCET (true on chain ids 31337 and 1337), FAUCET_DRIP (1e5 tokens), FAUCET_CAP (1e7
 * tokens).
 *
 * The registry and the proof contract name the marketplace, deployed after them: its address is
 * computed from the deployer's nonce, and the marketplace's constructor checks every link.
 */
contract Deploy is Script {
    uint256 internal constant TOKEN = 1e18;

    /// @dev The parameters, read from the environment (kept in memory: stack depth).
    struct Params {
        uint256 periodSecs;
        uint256 grace;
        uint256 genesis;
        uint256 challenges;
        uint256 lookahead;
        uint256 fill;
        uint256 exitNotice;
        uint256 supply;
        bool faucet;
        uint256 drip;
        uint256 cap;
    }

    /// @notice The deployed contracts (`faucet` is zero without one).
    struct Deployed {
        StorageToken token;
        Faucet faucet;
        ProviderRegistry registry;
        StorageProofs proofs;
        Marketplace marketplace;
    }

    function params() internal view returns (Params memory p) {
        p.periodSecs = vm.envOr("PERIOD_SECS", uint256(86_400));
        p.grace = vm.envOr("PROOF_GRACE_SECS", p.periodSecs / 12);
        p.genesis = vm.envOr("GENESIS", uint256(0));
        p.challenges = vm.envOr("CHALLENGES", uint256(4));
        p.lookahead = vm.envOr("SEED_LOOKAHEAD_BLOCKS", uint256(2));
        p.fill = vm.envOr("FILL_PERIODS", uint256(2));
        p.exitNotice = vm.envOr("EXIT_NOTICE_PERIODS", uint256(3));
        p.supply = vm.envOr("INITIAL_SUPPLY", 1_000_000_000 * TOKEN);
        p.faucet = vm.envOr("FAUCET", block.chainid == 31_337 || block.chainid == 1337);
        p.drip = vm.envOr("FAUCET_DRIP", 100_000 * TOKEN);
        p.cap = vm.envOr("FAUCET_CAP", 10_000_000 * TOKEN);
    }

    function run() external returns (Deployed memory d) {
        Params memory p = params();
        vm.startBroadcast();
        address deployer = msg.sender;
        d.token = new StorageToken("dBytes Storage", "DBS", deployer, deployer, p.supply);
        if (p.faucet) {
            d.faucet = new Faucet(d.token, p.drip, p.cap);
            d.token.grantRole(d.token.MINTER_ROLE(), address(d.faucet));
        }
        address predicted = vm.computeCreateAddress(deployer, vm.getNonce(deployer) + 2);
        d.registry = new ProviderRegistry(d.token, predicted);
        d.proofs = new StorageProofs(
            IDealBook(predicted),
            d.registry,
            p.periodSecs,
            p.genesis,
            p.grace,
            p.challenges,
            p.lookahead
        );
        d.marketplace = new Marketplace(d.token, d.registry, d.proofs, p.fill, p.exitNotice);
        vm.stopBroadcast();
        require(address(d.marketplace) == predicted, "Deploy: marketplace address mispredicted");

        console2.log("token", address(d.token));
        console2.log("faucet", address(d.faucet));
        console2.log("registry", address(d.registry));
        console2.log("proofs", address(d.proofs));
        console2.log("marketplace", address(d.marketplace));
    }
}
