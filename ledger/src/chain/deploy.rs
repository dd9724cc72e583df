//! Deploys the dBytes contracts from the committed artifacts (no forge at
//! run time) and describes the result as a [`Deployment`].
//!
//! Order: token, faucet (if any) and its minter role, registry, proofs,
//! marketplace. The registry and the proof contract name the marketplace,
//! which is deployed after them, so its address is computed from the
//! deployer's nonce; the marketplace's constructor checks every link.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;

use super::bindings::{faucet::Faucet, market::Marketplace, proofs::StorageProofs};
use super::bindings::{registry::ProviderRegistry, token::StorageToken};
use super::client::{ChainClient, RetryPolicy, Rpc};
use super::deployment::{Contracts, Deployment, FORMAT, Parameters};
use super::error::ChainError;
use super::units::TOKEN_DECIMALS;

/// Chain ids of local development chains (anvil, Hardhat, Ganache), where a
/// faucet is deployed by default.
pub const LOCAL_CHAIN_IDS: [u64; 2] = [31337, 1337];

/// What to deploy with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployOptions {
    /// Period length in seconds (production: 86400; a devnet: seconds).
    pub period_secs: u64,
    /// Proof grace after each period, seconds (less than a period).
    pub proof_grace_secs: u64,
    /// Unix time period 0 starts; `None` for the deployment's block time.
    pub genesis: Option<u64>,
    /// Challenged leaves per deal per period, 1 to 16.
    pub challenges: u64,
    /// Blocks between a seed's anchoring and its source block.
    pub seed_lookahead_blocks: u64,
    /// Periods a repair deal has for its first proof.
    pub fill_periods: u64,
    /// Notice periods of a graceful exit.
    pub exit_notice_periods: u64,
    /// Tokens minted to the deployer, base units.
    pub initial_supply: U256,
    /// Deploy a faucet: `None` decides by chain id (local chains get one).
    pub faucet: Option<bool>,
    /// Base units per faucet drip.
    pub faucet_drip: U256,
    /// Lifetime faucet cap per account.
    pub faucet_cap: U256,
}

impl Default for DeployOptions {
    /// Day-long periods with a two-hour grace, K = 4, as the design recommends.
    fn default() -> Self {
        let token = U256::from(10u64).pow(U256::from(TOKEN_DECIMALS));
        DeployOptions {
            period_secs: 86_400,
            proof_grace_secs: 7_200,
            genesis: None,
            challenges: 4,
            seed_lookahead_blocks: 2,
            fill_periods: 2,
            exit_notice_periods: 3,
            initial_supply: token * U256::from(1_000_000_000u64),
            faucet: None,
            faucet_drip: token * U256::from(100_000u64),
            faucet_cap: token * U256::from(10_000_000u64),
        }
    }
}

impl DeployOptions {
    /// Options for periods of `period_secs`, with a grace of a twelfth of a
    /// period (two hours of a day).
    pub fn with_period(period_secs: u64) -> DeployOptions {
        DeployOptions {
            period_secs,
            proof_grace_secs: period_secs / 12,
            ..DeployOptions::default()
        }
    }

    fn check(&self) -> Result<(), ChainError> {
        let refuse = |s: String| Err(ChainError::Refused(s));
        if self.period_secs == 0 {
            return refuse("the period must be at least one second".into());
        }
        if self.proof_grace_secs >= self.period_secs {
            return refuse(format!(
                "the proof grace of {} s must be shorter than the period of {} s",
                self.proof_grace_secs, self.period_secs
            ));
        }
        if !(1..=16).contains(&self.challenges) {
            return refuse(format!(
                "challenges per period must be 1 to 16, not {}",
                self.challenges
            ));
        }
        if self.seed_lookahead_blocks == 0 {
            return refuse("the seed lookahead must be at least one block".into());
        }
        if self.exit_notice_periods == 0 {
            return refuse("the exit notice must be at least one period".into());
        }
        if self.fill_periods > u64::from(u16::MAX) {
            return refuse(format!(
                "fill periods must be at most {}, not {}",
                u16::MAX,
                self.fill_periods
            ));
        }
        Ok(())
    }
}

const TOKEN_NAME: &str = "dBytes Storage";
const TOKEN_SYMBOL: &str = "DBS";

/// Deploys the contracts through `rpc_url` with `deployer` paying, and
/// returns the deployment (which the caller saves). Takes a few blocks;
/// each transaction is awaited.
pub async fn deploy(
    rpc_url: &str,
    deployer: PrivateKeySigner,
    options: &DeployOptions,
) -> Result<Deployment, ChainError> {
    options.check()?;
    let rpc = Rpc::connect(rpc_url, Some(deployer.clone()))?
        .with(RetryPolicy::default(), Duration::from_secs(300));
    let provider = rpc.provider().clone();
    let chain_id = rpc.chain_id().await?;
    let owner = deployer.address();
    let with_faucet = options
        .faucet
        .unwrap_or(LOCAL_CHAIN_IDS.contains(&chain_id));
    let (_, head_hash, head_time) = rpc.head().await?;
    let genesis = options.genesis.unwrap_or(head_time);
    if genesis > head_time {
        return Err(ChainError::Refused(format!(
            "the genesis {genesis} is after the chain's time {head_time}; periods must have begun"
        )));
    }
    let gas = rpc.native_balance_of(owner).await?;
    if gas.is_zero() {
        return Err(ChainError::Refused(format!(
            "the deployer {owner} has no funds for gas on chain {chain_id}"
        )));
    }
    let _ = head_hash;

    let create = |action: &'static str, tx: TransactionRequest| {
        let rpc = rpc.clone();
        async move {
            let receipt = rpc.send(action, tx).await?;
            let address = receipt
                .contract_address
                .ok_or_else(|| ChainError::Unexpected {
                    action: action.to_string(),
                    reason: "the receipt names no created contract".into(),
                })?;
            Ok::<_, ChainError>((address, receipt.block_number.unwrap_or_default()))
        }
    };

    let (token, first_block) = create(
        "deploy StorageToken",
        StorageToken::deploy_builder(
            &provider,
            TOKEN_NAME.into(),
            TOKEN_SYMBOL.into(),
            owner,
            owner,
            options.initial_supply,
        )
        .into_transaction_request(),
    )
    .await?;
    let faucet = if with_faucet {
        let (faucet, _) = create(
            "deploy Faucet",
            Faucet::deploy_builder(&provider, token, options.faucet_drip, options.faucet_cap)
                .into_transaction_request(),
        )
        .await?;
        let token_contract = StorageToken::new(token, &provider);
        let minter = token_contract
            .MINTER_ROLE()
            .call()
            .await
            .map_err(|err| ChainError::from_contract(rpc_url, "read MINTER_ROLE", &err))?;
        rpc.send(
            "let the faucet mint",
            token_contract
                .grantRole(minter, faucet)
                .into_transaction_request(),
        )
        .await?;
        Some(faucet)
    } else {
        None
    };

    let nonce = provider
        .get_transaction_count(owner)
        .pending()
        .await
        .map_err(|err| ChainError::from_rpc(rpc_url, "read the deployer's nonce", &err))?;
    // Registry at `nonce`, proofs at `nonce + 1`, marketplace at `nonce + 2`.
    let predicted = owner.create(nonce + 2);
    let (registry, _) = create(
        "deploy ProviderRegistry",
        ProviderRegistry::deploy_builder(&provider, token, predicted).into_transaction_request(),
    )
    .await?;
    let (proofs, _) = create(
        "deploy StorageProofs",
        StorageProofs::deploy_builder(
            &provider,
            predicted,
            registry,
            U256::from(options.period_secs),
            U256::from(genesis),
            U256::from(options.proof_grace_secs),
            U256::from(options.challenges),
            U256::from(options.seed_lookahead_blocks),
        )
        .into_transaction_request(),
    )
    .await?;
    let (marketplace, last_block) = create(
        "deploy Marketplace",
        Marketplace::deploy_builder(
            &provider,
            token,
            registry,
            proofs,
            U256::from(options.fill_periods),
            U256::from(options.exit_notice_periods),
        )
        .into_transaction_request(),
    )
    .await?;
    if marketplace != predicted {
        return Err(ChainError::Unexpected {
            action: "deploy Marketplace".into(),
            reason: format!(
                "it landed at {marketplace}, not the predicted {predicted}: another transaction \
                 from {owner} was sent during the deployment; deploy again"
            ),
        });
    }
    let deploy_block =
        rpc.block(first_block.into())
            .await?
            .ok_or_else(|| ChainError::Unexpected {
                action: "read the deployment block".into(),
                reason: format!("block {first_block} is missing"),
            })?;
    let deployed_at = rpc
        .block(last_block.into())
        .await?
        .map_or(head_time, |(_, _, time)| time);

    let deployment = Deployment {
        format: FORMAT,
        chain_id,
        rpc_url: Some(rpc_url.to_string()),
        deployer: owner,
        deploy_block: first_block,
        deploy_block_hash: deploy_block.1,
        deployed_at,
        contracts: Contracts {
            token,
            faucet,
            registry,
            proofs,
            marketplace,
        },
        parameters: Parameters {
            period_secs: options.period_secs,
            genesis,
            proof_grace_secs: options.proof_grace_secs,
            challenges: options.challenges,
            seed_lookahead_blocks: options.seed_lookahead_blocks,
            fill_periods: options.fill_periods,
            exit_notice_periods: options.exit_notice_periods,
            token_name: TOKEN_NAME.into(),
            token_symbol: TOKEN_SYMBOL.into(),
            initial_supply: options.initial_supply,
            faucet_drip: if with_faucet {
                options.faucet_drip
            } else {
                U256::ZERO
            },
            faucet_cap: if with_faucet {
                options.faucet_cap
            } else {
                U256::ZERO
            },
        },
    };
    // Read the parameters back from the contracts: the file must say what the chain does.
    let client = ChainClient::from_rpc(rpc, deployment.clone());
    client.verify_parameters().await?;
    Ok(deployment)
}

impl Rpc {
    pub(crate) async fn native_balance_of(&self, account: Address) -> Result<U256, ChainError> {
        self.rpc("read a balance", || async move {
            self.provider().get_balance(account).await
        })
        .await
    }
}

impl ChainClient {
    /// Checks the deployment file's parameters against the contracts'
    /// immutables (a hand-edited or mismatched file is caught here).
    pub async fn verify_parameters(&self) -> Result<(), ChainError> {
        let p = &self.deployment.parameters;
        let read = |what: &'static str, value: U256, expected: u64| {
            if value == U256::from(expected) {
                Ok(())
            } else {
                Err(ChainError::Unexpected {
                    action: "check the deployment".into(),
                    reason: format!(
                        "the contracts' {what} is {value} but the deployment file says {expected}"
                    ),
                })
            }
        };
        let proofs = &self.proofs;
        read(
            "PERIOD_SECS",
            self.rpc
                .call("read PERIOD_SECS", || async move {
                    proofs.PERIOD_SECS().call().await
                })
                .await?,
            p.period_secs,
        )?;
        read(
            "GENESIS",
            self.rpc
                .call(
                    "read GENESIS",
                    || async move { proofs.GENESIS().call().await },
                )
                .await?,
            p.genesis,
        )?;
        read(
            "PROOF_GRACE_SECS",
            self.rpc
                .call("read PROOF_GRACE_SECS", || async move {
                    proofs.PROOF_GRACE_SECS().call().await
                })
                .await?,
            p.proof_grace_secs,
        )?;
        read(
            "CHALLENGES",
            self.rpc
                .call("read CHALLENGES", || async move {
                    proofs.CHALLENGES().call().await
                })
                .await?,
            p.challenges,
        )?;
        Ok(())
    }
}
