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

    function run()
        external
        returns (
            StorageToken token,
            Faucet faucet,
            ProviderRegistry registry,
            StorageProofs proofs,
            Marketplace market
        )
    {
        uint256 periodSecs = vm.envOr("PERIOD_SECS", uint256(86_400));
        uint256 grace = vm.envOr("PROOF_GRACE_SECS", periodSecs / 12);
        uint256 genesis = vm.envOr("GENESIS", uint256(0));
        uint256 challenges = vm.envOr("CHALLENGES", uint256(4));
        uint256 lookahead = vm.envOr("SEED_LOOKAHEAD_BLOCKS", uint256(2));
        uint256 fill = vm.envOr("FILL_PERIODS", uint256(2));
        uint256 exitNotice = vm.envOr("EXIT_NOTICE_PERIODS", uint256(3));
        uint256 supply = vm.envOr("INITIAL_SUPPLY", 1_000_000_000 * TOKEN);
        bool withFaucet = vm.envOr("FAUCET", block.chainid == 31_337 || block.chainid == 1337);

        vm.startBroadcast();
        address deployer = msg.sender;
        token = new StorageToken("dBytes Storage", "DBS", deployer, deployer, supply);
        if (withFaucet) {
            faucet = new Faucet(
                token,
                vm.envOr("FAUCET_DRIP", 100_000 * TOKEN),
                vm.envOr("FAUCET_CAP", 10_000_000 * TOKEN)
            );
            token.grantRole(token.MINTER_ROLE(), address(faucet));
        }
        address predicted = vm.computeCreateAddress(deployer, vm.getNonce(deployer) + 2);
        registry = new ProviderRegistry(token, predicted);
        proofs = new StorageProofs(
            IDealBook(predicted), registry, periodSecs, genesis, grace, challenges, lookahead
        );
        market = new Marketplace(token, registry, proofs, fill, exitNotice);
        vm.stopBroadcast();
        require(address(market) == predicted, "Deploy: marketplace address mispredicted");

        console2.log("token", address(token));
        console2.log("faucet", address(faucet));
        console2.log("registry", address(registry));
        console2.log("proofs", address(proofs));
        console2.log("marketplace", address(market));
    }
}
