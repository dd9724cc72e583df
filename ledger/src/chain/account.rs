//! What the CLI needs around the client: opening a deployment with a
//! wallet in one call, and an account's balances in one place.

use std::fmt;
use std::path::Path;

use alloy::primitives::{Address, U256};

use super::client::ChainClient;
use super::deployment::Deployment;
use super::error::ChainError;
use super::types::Pool;
use super::units::format_tokens;
use super::wallet::WalletSource;

impl ChainClient {
    /// Loads the deployment file at `path`, opens `wallet` (if any) and
    /// connects through `rpc_url` (or the file's `rpcUrl`).
    pub async fn open(
        path: &Path,
        rpc_url: Option<&str>,
        wallet: Option<&WalletSource>,
    ) -> Result<ChainClient, ChainError> {
        let deployment = Deployment::load(path)?;
        let signer = wallet.map(WalletSource::open).transpose()?;
        ChainClient::connect(deployment, rpc_url, signer).await
    }

    /// `account`'s gas, tokens, marketplace credit and collateral pool.
    pub async fn balances(&self, account: Address) -> Result<Balances, ChainError> {
        Ok(Balances {
            account,
            native_wei: self.native_balance(account).await?,
            tokens: self.token_balance(account).await?,
            credit: self.credit(account).await?,
            pool: self.pool(account).await?,
        })
    }
}

/// An account's balances (`dbytes wallet balance`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balances {
    /// The account.
    pub account: Address,
    /// Native balance for gas, wei.
    pub native_wei: U256,
    /// Storage tokens held.
    pub tokens: U256,
    /// Marketplace credit, withdrawable.
    pub credit: U256,
    /// Collateral pool (providers).
    pub pool: Pool,
}

impl fmt::Display for Balances {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ether has 18 decimals too; the token formatter prints the number.
        let native = format_tokens(self.native_wei);
        let native = native
            .trim_end_matches(super::units::TOKEN_SYMBOL)
            .trim_end();
        writeln!(f, "account     {}", self.account)?;
        writeln!(f, "gas         {native} (native)")?;
        writeln!(f, "tokens      {}", format_tokens(self.tokens))?;
        writeln!(
            f,
            "credit      {} (withdrawable)",
            format_tokens(self.credit)
        )?;
        write!(
            f,
            "collateral  {} deposited, {} locked",
            format_tokens(U256::from(self.pool.deposited)),
            format_tokens(U256::from(self.pool.locked))
        )
    }
}
