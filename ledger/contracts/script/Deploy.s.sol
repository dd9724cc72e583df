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
 * `dbytes contracts deploy` (which is the usual way: it needs no forge). This script is for
 * deploying with Foundry's own tooling (hardware wallets, `--verify`); it prints the addresses
 * and writes the deployment file every other command reads, to DEPLOYMENT_FILE (default
 * `broadcast/dbytes-deployment-<chain id>.json`; RPC_URL is recorded in it).
 *
 *   forge script script/Deploy.s.sol --rpc-url $RPC --broadcast --private-key $KEY
 *
 * Parameters come from the environment, each with the CLI's default: PERIOD_SECS (86400),
 * PROOF_GRACE_SECS (PERIOD_SECS / 12), GENESIS (0: the latest block's time when the script runs,
 * fixed here so that the file records it exactly), CHALLENGES (4),
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
        if (p.genesis == 0) p.genesis = block.timestamp;
        uint256 latestBlock = block.number;
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
        writeDeployment(d, p, deployer, latestBlock);
    }

    /**
     * @dev The deployment file `dbytes` reads (format 1 of `ledger/src/chain/deployment.rs`).
     * The deploy block is the last one before the deployment's transactions, so an indexer
     * starting there misses nothing. A script cannot read the hash of the chain's latest block,
     * so on a chain still at its genesis block the hash is written as zero (it only serves to
     * detect a reset chain); `dbytes contracts deploy` records it exactly.
     */
    function writeDeployment(Deployed memory d, Params memory p, address deployer, uint256 latest)
        internal
    {
        string memory c = "contracts";
        vm.serializeJson(c, '{"faucet":null}');
        vm.serializeAddress(c, "token", address(d.token));
        if (address(d.faucet) != address(0)) vm.serializeAddress(c, "faucet", address(d.faucet));
        vm.serializeAddress(c, "registry", address(d.registry));
        vm.serializeAddress(c, "proofs", address(d.proofs));
        string memory contracts = vm.serializeAddress(c, "marketplace", address(d.marketplace));

        string memory q = "parameters";
        vm.serializeUint(q, "periodSecs", p.periodSecs);
        vm.serializeUint(q, "genesis", p.genesis);
        vm.serializeUint(q, "proofGraceSecs", p.grace);
        vm.serializeUint(q, "challenges", p.challenges);
        vm.serializeUint(q, "seedLookaheadBlocks", p.lookahead);
        vm.serializeUint(q, "fillPeriods", p.fill);
        vm.serializeUint(q, "exitNoticePeriods", p.exitNotice);
        vm.serializeString(q, "tokenName", "dBytes Storage");
        vm.serializeString(q, "tokenSymbol", "DBS");
        // Amounts are decimal strings: they do not fit a JSON number.
        vm.serializeString(q, "initialSupply", vm.toString(p.supply));
        vm.serializeString(q, "faucetDrip", vm.toString(p.faucet ? p.drip : 0));
        string memory parameters =
            vm.serializeString(q, "faucetCap", vm.toString(p.faucet ? p.cap : 0));

        uint256 deployBlock = latest == 0 ? 0 : latest - 1;
        string memory json = string.concat(
            '{"format":1,"chainId":',
            vm.toString(block.chainid),
            ',"rpcUrl":"',
            vm.envOr("RPC_URL", string("http://127.0.0.1:8545")),
            '","deployer":"',
            vm.toString(deployer),
            '","deployBlock":',
            vm.toString(deployBlock),
            ',"deployBlockHash":"',
            vm.toString(blockhash(deployBlock)),
            '","deployedAt":',
            vm.toString(block.timestamp),
            ',"contracts":',
            contracts,
            ',"parameters":',
            parameters,
            "}"
        );
        string memory path = vm.envOr(
            "DEPLOYMENT_FILE",
            string.concat("broadcast/dbytes-deployment-", vm.toString(block.chainid), ".json")
        );
        vm.createDir(dirOf(path), true);
        vm.writeJson(json, path);
        console2.log("deployment", path);
    }

    /// @dev Everything before the last `/` of `path` (`.` if none).
    function dirOf(string memory path) internal pure returns (string memory) {
        bytes memory b = bytes(path);
        uint256 end = b.length;
        while (end > 0 && b[end - 1] != "/") --end;
        if (end == 0) return ".";
        bytes memory dir = new bytes(end - 1);
        for (uint256 i; i < dir.length; ++i) {
            dir[i] = b[i];
        }
        return string(dir);
    }
}
