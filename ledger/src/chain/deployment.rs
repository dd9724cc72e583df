//! A deployment: where the contracts live on which chain, with which
//! parameters, as a JSON file every command and daemon reads.
//!
//! ```json
//! {
//!   "format": 1,
//!   "chainId": 31337,
//!   "rpcUrl": "http://127.0.0.1:8545",
//!   "deployer": "0xf39f…",
//!   "deployBlock": 1,
//!   "deployBlockHash": "0x…",
//!   "deployedAt": 1764350000,
//!   "contracts": { "token": "0x…", "faucet": "0x…", "registry": "0x…",
//!                  "proofs": "0x…", "marketplace": "0x…" },
//!   "parameters": { "periodSecs": 86400, "genesis": 1764350000, "proofGraceSecs": 7200,
//!                   "challenges": 4, "seedLookaheadBlocks": 2, "fillPeriods": 2,
//!                   "exitNoticePeriods": 3, "tokenName": "dBytes Storage",
//!                   "tokenSymbol": "DBS", "initialSupply": "1000000000000000000000000000",
//!                   "faucetDrip": "1000000000000000000000", "faucetCap": "…" }
//! }
//! ```
//!
//! `faucet` is null on chains deployed without one; amounts are decimal
//! strings of base units. The file holds no secret. By convention it is
//! `dbytes-deployment.json` in the working directory ([`DEFAULT_FILE`],
//! overridden by `--deployment` or `DBYTES_DEPLOYMENT`); a local network
//! keeps it in its own directory. `rpcUrl` is the endpoint the contracts
//! were deployed through, the default for commands given no `--rpc-url`.

use std::path::Path;

use alloy::primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};

use super::error::ChainError;
use super::types::PeriodClock;

/// The conventional file name of a deployment.
pub const DEFAULT_FILE: &str = "dbytes-deployment.json";

/// The format version this code writes and reads.
pub const FORMAT: u32 = 1;

/// Where each contract of a deployment lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contracts {
    /// `StorageToken`.
    pub token: Address,
    /// `Faucet` (local networks only).
    pub faucet: Option<Address>,
    /// `ProviderRegistry`.
    pub registry: Address,
    /// `StorageProofs`.
    pub proofs: Address,
    /// `Marketplace`.
    pub marketplace: Address,
}

/// The parameters the contracts were deployed with (immutable on chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parameters {
    /// Period length in seconds.
    pub period_secs: u64,
    /// Unix time period 0 starts.
    pub genesis: u64,
    /// Seconds after a period during which its proofs are accepted.
    pub proof_grace_secs: u64,
    /// Challenged leaves per deal per period (K).
    pub challenges: u64,
    /// Blocks between anchoring a seed and the block whose hash makes it.
    pub seed_lookahead_blocks: u64,
    /// Periods a repair deal has for its first proof.
    pub fill_periods: u64,
    /// Notice periods of a provider's graceful exit.
    pub exit_notice_periods: u64,
    /// Token name (also its permit domain name).
    pub token_name: String,
    /// Token symbol.
    pub token_symbol: String,
    /// Tokens minted to the deployer, base units.
    #[serde(with = "decimal")]
    pub initial_supply: U256,
    /// Base units per faucet drip (0 without a faucet).
    #[serde(with = "decimal")]
    pub faucet_drip: U256,
    /// Lifetime faucet cap per account (0 without a faucet).
    #[serde(with = "decimal")]
    pub faucet_cap: U256,
}

/// A deployment of the dBytes contracts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// [`FORMAT`].
    pub format: u32,
    /// The chain's id (EIP-155).
    pub chain_id: u64,
    /// The endpoint used to deploy; the default for later commands.
    pub rpc_url: Option<String>,
    /// The account that deployed (token admin).
    pub deployer: Address,
    /// The block of the first deployment transaction: indexers start here.
    pub deploy_block: u64,
    /// Its hash, to tell a reset chain from the deployed one.
    pub deploy_block_hash: B256,
    /// Unix time of the last deployment transaction's block.
    pub deployed_at: u64,
    /// Contract addresses.
    pub contracts: Contracts,
    /// Deployment parameters.
    pub parameters: Parameters,
}

impl Deployment {
    /// Reads a deployment file.
    pub fn load(path: &Path) -> Result<Deployment, ChainError> {
        let error = |reason: String| ChainError::Deployment {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                error(
                    "not found; deploy the contracts with `dbytes contracts deploy` or pass \
                     --deployment with the file of an existing deployment"
                        .to_string(),
                )
            } else {
                error(err.to_string())
            }
        })?;
        let deployment: Deployment = serde_json::from_str(&text)
            .map_err(|err| error(format!("not a dBytes deployment file ({err})")))?;
        if deployment.format != FORMAT {
            return Err(error(format!(
                "format {} is not the format {FORMAT} this dbytes reads; redeploy or upgrade dbytes",
                deployment.format
            )));
        }
        Ok(deployment)
    }

    /// Writes the deployment file (atomically: a temporary file renamed over `path`).
    pub fn save(&self, path: &Path) -> Result<(), ChainError> {
        let error = |reason: String| ChainError::Deployment {
            path: path.to_owned(),
            reason,
        };
        let mut text = serde_json::to_string_pretty(self).map_err(|err| error(err.to_string()))?;
        text.push('\n');
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(|err| error(err.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|err| error(err.to_string()))
    }

    /// The period clock.
    pub fn clock(&self) -> PeriodClock {
        PeriodClock {
            period_secs: self.parameters.period_secs,
            genesis: self.parameters.genesis,
            proof_grace_secs: self.parameters.proof_grace_secs,
        }
    }

    /// A made-up deployment for unit tests of pure code (no chain behind it).
    #[cfg(test)]
    pub(crate) fn example() -> Deployment {
        Deployment {
            format: FORMAT,
            chain_id: 31337,
            rpc_url: None,
            deployer: Address::repeat_byte(0xde),
            deploy_block: 1,
            deploy_block_hash: B256::ZERO,
            deployed_at: 1_700_000_000,
            contracts: Contracts {
                token: Address::repeat_byte(1),
                faucet: None,
                registry: Address::repeat_byte(2),
                proofs: Address::repeat_byte(3),
                marketplace: Address::repeat_byte(4),
            },
            parameters: Parameters {
                period_secs: 60,
                genesis: 1_700_000_000,
                proof_grace_secs: 10,
                challenges: 4,
                seed_lookahead_blocks: 2,
                fill_periods: 2,
                exit_notice_periods: 3,
                token_name: "dBytes Storage".into(),
                token_symbol: "DBS".into(),
                initial_supply: U256::ZERO,
                faucet_drip: U256::ZERO,
                faucet_cap: U256::ZERO,
            },
        }
    }
}

/// `U256` as a decimal string, the way people read token amounts.
mod decimal {
    use alloy::primitives::U256;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &U256, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<U256, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse::<U256>().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trips_and_reads_as_documented() {
        let dir = std::env::temp_dir().join(format!("dbytes-deployment-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(DEFAULT_FILE);
        let mut deployment = Deployment::example();
        deployment.parameters.initial_supply = U256::from(10u64).pow(U256::from(27));
        deployment.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"chainId\": 31337"), "{text}");
        assert!(
            text.contains("\"initialSupply\": \"1000000000000000000000000000\""),
            "{text}"
        );
        assert!(text.contains("\"faucet\": null"), "{text}");
        assert_eq!(Deployment::load(&path).unwrap(), deployment);

        let missing = Deployment::load(&dir.join("absent.json")).unwrap_err();
        assert!(
            missing.to_string().contains("dbytes contracts deploy"),
            "{missing}"
        );
        std::fs::write(&path, "{}").unwrap();
        let bad = Deployment::load(&path).unwrap_err();
        assert!(
            bad.to_string().contains("not a dBytes deployment file"),
            "{bad}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
