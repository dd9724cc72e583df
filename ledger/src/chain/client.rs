//! [`ChainClient`]: the one way dBytes talks to its contracts.
//!
//! Reads are retried with backoff when the endpoint is unreachable (they
//! are idempotent); transactions are sent once, after the checks of the
//! operation found nothing the contract would refuse, and their receipts
//! are awaited. Transactions of one client are sent one at a time, so the
//! nonce a transaction gets is always the account's next.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, Log, TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use alloy::transports::{RpcError, TransportErrorKind};
use tokio::sync::Mutex;

use super::bindings::faucet::Faucet::{self, FaucetInstance};
use super::bindings::market::Marketplace::{self, MarketplaceInstance};
use super::bindings::proofs::StorageProofs::{self, StorageProofsInstance};
use super::bindings::registry::ProviderRegistry::{self, ProviderRegistryInstance};
use super::bindings::token::StorageToken::{self, StorageTokenInstance};
use super::deployment::Deployment;
use super::error::ChainError;
use super::types::PeriodClock;
use super::units::format_tokens;

/// How reads are retried while the endpoint is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (1 = no retry).
    pub attempts: u32,
    /// Delay before the first retry; doubles each time.
    pub first_delay: Duration,
    /// The longest delay between tries.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Five tries over about six seconds.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_millis(400),
            max_delay: Duration::from_secs(3),
        }
    }
}

impl RetryPolicy {
    /// No retries: fail on the first unreachable endpoint.
    pub const NONE: RetryPolicy = RetryPolicy {
        attempts: 1,
        first_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// Runs `attempt` until it succeeds, fails for good, or the tries are spent.
    pub(crate) async fn run<T, Fut>(
        &self,
        mut attempt: impl FnMut() -> Fut,
    ) -> Result<T, ChainError>
    where
        Fut: Future<Output = Result<T, ChainError>>,
    {
        let mut delay = self.first_delay;
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt().await {
                Err(err) if err.is_transient() && tries < self.attempts.max(1) => {
                    tracing::debug!(%err, tries, "chain read failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.max_delay);
                }
                other => return other,
            }
        }
    }
}

/// Installs ring as rustls' crypto provider, once per process, before the
/// first HTTP client is built (reqwest is built without a default one).
pub(crate) fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error only means another part of the process installed one first.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub(crate) struct Inner {
    pub(crate) provider: DynProvider,
    pub(crate) url: String,
    pub(crate) signer: Option<PrivateKeySigner>,
    pub(crate) retry: RetryPolicy,
    pub(crate) receipt_timeout: Duration,
    send_lock: Mutex<()>,
}

/// The transport under a [`ChainClient`] (and the deployer): an endpoint,
/// an optional wallet, retries and receipts.
#[derive(Clone)]
pub(crate) struct Rpc(pub(crate) Arc<Inner>);

impl Rpc {
    /// An HTTP(S) endpoint, signing with `signer` when there is one.
    pub(crate) fn connect(url: &str, signer: Option<PrivateKeySigner>) -> Result<Rpc, ChainError> {
        install_crypto_provider();
        let parsed = url.parse().map_err(|_| {
            ChainError::Refused(format!(
                "{url:?} is not an RPC URL; write it as http://host:port or https://host/path"
            ))
        })?;
        let builder = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id();
        let provider = match &signer {
            Some(signer) => builder
                .wallet(EthereumWallet::from(signer.clone()))
                .connect_http(parsed)
                .erased(),
            None => builder.connect_http(parsed).erased(),
        };
        Ok(Rpc(Arc::new(Inner {
            provider,
            url: url.to_string(),
            signer,
            retry: RetryPolicy::default(),
            receipt_timeout: Duration::from_secs(120),
            send_lock: Mutex::new(()),
        })))
    }

    pub(crate) fn with(self, retry: RetryPolicy, receipt_timeout: Duration) -> Rpc {
        let inner = Arc::try_unwrap(self.0).unwrap_or_else(|shared| Inner {
            provider: shared.provider.clone(),
            url: shared.url.clone(),
            signer: shared.signer.clone(),
            retry: shared.retry,
            receipt_timeout: shared.receipt_timeout,
            send_lock: Mutex::new(()),
        });
        Rpc(Arc::new(Inner {
            retry,
            receipt_timeout,
            ..inner
        }))
    }

    pub(crate) fn provider(&self) -> &DynProvider {
        &self.0.provider
    }

    pub(crate) fn url(&self) -> &str {
        &self.0.url
    }

    pub(crate) fn sender(&self, action: &str) -> Result<Address, ChainError> {
        self.0
            .signer
            .as_ref()
            .map(|s| s.address())
            .ok_or_else(|| ChainError::NoWallet {
                action: action.to_string(),
            })
    }

    /// A contract read, retried while the endpoint is unreachable.
    pub(crate) async fn call<T, Fut>(
        &self,
        action: &str,
        mut call: impl FnMut() -> Fut,
    ) -> Result<T, ChainError>
    where
        Fut: Future<Output = Result<T, alloy::contract::Error>>,
    {
        self.0
            .retry
            .run(|| {
                let fut = call();
                async move {
                    fut.await
                        .map_err(|err| ChainError::from_contract(self.url(), action, &err))
                }
            })
            .await
    }

    /// A JSON-RPC read, retried while the endpoint is unreachable.
    pub(crate) async fn rpc<T, Fut>(
        &self,
        action: &str,
        mut call: impl FnMut() -> Fut,
    ) -> Result<T, ChainError>
    where
        Fut: Future<Output = Result<T, RpcError<TransportErrorKind>>>,
    {
        self.0
            .retry
            .run(|| {
                let fut = call();
                async move {
                    fut.await
                        .map_err(|err| ChainError::from_rpc(self.url(), action, &err))
                }
            })
            .await
    }

    /// The chain id the endpoint serves.
    pub(crate) async fn chain_id(&self) -> Result<u64, ChainError> {
        self.rpc("read the chain id", || self.provider().get_chain_id())
            .await
    }

    /// The latest block's number, hash and timestamp.
    pub(crate) async fn head(&self) -> Result<(u64, B256, u64), ChainError> {
        self.block(BlockNumberOrTag::Latest)
            .await?
            .ok_or_else(|| ChainError::Unexpected {
                action: "read the latest block".into(),
                reason: "the node has no latest block".into(),
            })
    }

    /// Block `number`'s number, hash and timestamp, if it exists.
    pub(crate) async fn block(
        &self,
        number: BlockNumberOrTag,
    ) -> Result<Option<(u64, B256, u64)>, ChainError> {
        let block = self
            .rpc("read a block", || async move {
                self.provider().get_block_by_number(number).await
            })
            .await?;
        Ok(block.map(|b| (b.header.number, b.header.hash, b.header.timestamp)))
    }

    /// Logs matching `filter` in `[from, to]`, fetched in ranges the node
    /// accepts: a range the node refuses as too large is halved.
    pub(crate) async fn logs(
        &self,
        filter: &Filter,
        from: u64,
        to: u64,
    ) -> Result<Vec<Log>, ChainError> {
        const MAX_RANGE: u64 = 10_000;
        let mut logs = Vec::new();
        let mut start = from;
        let mut range = MAX_RANGE;
        while start <= to {
            let end = to.min(start.saturating_add(range - 1));
            let window = filter.clone().from_block(start).to_block(end);
            match self
                .rpc("read contract events", || self.provider().get_logs(&window))
                .await
            {
                Ok(mut batch) => {
                    logs.append(&mut batch);
                    start = end + 1;
                    range = (range * 2).min(MAX_RANGE);
                }
                Err(ChainError::Rpc { .. }) if range > 1 => range /= 2,
                Err(err) => return Err(err),
            }
        }
        Ok(logs)
    }

    /// Sends `tx` from the wallet and waits for its receipt; `action` says
    /// what it does, for errors ("open a deal with 0x…").
    pub(crate) async fn send(
        &self,
        action: &str,
        mut tx: TransactionRequest,
    ) -> Result<TransactionReceipt, ChainError> {
        tx.set_from(self.sender(action)?);
        let hash = {
            // One transaction at a time per client: the next one's nonce is
            // read only once this one is in the node's pool.
            let _turn = self.0.send_lock.lock().await;
            let pending = self
                .provider()
                .send_transaction(tx)
                .await
                .map_err(|err| ChainError::from_rpc(self.url(), action, &err))?;
            *pending.tx_hash()
        };
        tracing::debug!(%hash, action, "transaction sent");
        self.receipt(action, hash).await
    }

    /// Polls for the receipt of `hash` until it is mined or the timeout passes.
    async fn receipt(&self, action: &str, hash: B256) -> Result<TransactionReceipt, ChainError> {
        let deadline = tokio::time::Instant::now() + self.0.receipt_timeout;
        let mut delay = Duration::from_millis(20);
        loop {
            let receipt = self
                .rpc("read a transaction receipt", || {
                    self.provider().get_transaction_receipt(hash)
                })
                .await?;
            if let Some(receipt) = receipt {
                if !receipt.status() {
                    return Err(ChainError::Failed {
                        action: action.to_string(),
                        tx: hash,
                        block: receipt.block_number.unwrap_or_default(),
                    });
                }
                return Ok(receipt);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ChainError::ReceiptTimeout {
                    action: action.to_string(),
                    tx: hash,
                    secs: self.0.receipt_timeout.as_secs(),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }
}

/// The first event `E` emitted by `address` in `receipt`.
pub(crate) fn event<E: SolEvent>(
    receipt: &TransactionReceipt,
    address: Address,
    action: &str,
) -> Result<E, ChainError> {
    receipt
        .inner
        .logs()
        .iter()
        .filter(|log| log.address() == address)
        .find_map(|log| E::decode_log(&log.inner).ok())
        .map(|log| log.data)
        .ok_or_else(|| ChainError::Unexpected {
            action: action.to_string(),
            reason: format!(
                "transaction {} emitted no {} event",
                receipt.transaction_hash,
                E::SIGNATURE
            ),
        })
}

/// A connection to one deployment of the dBytes contracts, with an optional
/// wallet. Cheap to clone; clones share the connection and the wallet's
/// transaction queue.
///
/// Every operation that sends a transaction first checks, with reads, what
/// the contract would refuse, and returns [`ChainError::Refused`] with a
/// sentence naming the offending input instead of sending.
#[derive(Clone)]
pub struct ChainClient {
    pub(crate) rpc: Rpc,
    pub(crate) deployment: Arc<Deployment>,
    pub(crate) token: StorageTokenInstance<DynProvider>,
    pub(crate) faucet: Option<FaucetInstance<DynProvider>>,
    pub(crate) registry: ProviderRegistryInstance<DynProvider>,
    pub(crate) proofs: StorageProofsInstance<DynProvider>,
    pub(crate) market: MarketplaceInstance<DynProvider>,
}

impl std::fmt::Debug for ChainClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainClient")
            .field("url", &self.rpc.url())
            .field("chain_id", &self.deployment.chain_id)
            .field("marketplace", &self.deployment.contracts.marketplace)
            .field("wallet", &self.address())
            .finish()
    }
}

impl ChainClient {
    /// Connects to `deployment` through `rpc_url` (or the deployment's own
    /// `rpcUrl`), signing with `signer` if given. Checks that the endpoint
    /// serves the deployment's chain and that the marketplace has code
    /// there, so a reset devnet or a wrong file fails here, clearly.
    pub async fn connect(
        deployment: Deployment,
        rpc_url: Option<&str>,
        signer: Option<PrivateKeySigner>,
    ) -> Result<ChainClient, ChainError> {
        let url = rpc_url
            .map(str::to_string)
            .or_else(|| deployment.rpc_url.clone())
            .ok_or_else(|| {
                ChainError::Refused(
                    "no RPC endpoint: pass --rpc-url (the deployment file names none)".to_string(),
                )
            })?;
        let rpc = Rpc::connect(&url, signer)?;
        let client = ChainClient::from_rpc(rpc, deployment);
        client.check_deployment().await?;
        Ok(client)
    }

    pub(crate) fn from_rpc(rpc: Rpc, deployment: Deployment) -> ChainClient {
        let provider = rpc.provider().clone();
        let c = deployment.contracts;
        ChainClient {
            token: StorageToken::new(c.token, provider.clone()),
            faucet: c.faucet.map(|f| Faucet::new(f, provider.clone())),
            registry: ProviderRegistry::new(c.registry, provider.clone()),
            proofs: StorageProofs::new(c.proofs, provider.clone()),
            market: Marketplace::new(c.marketplace, provider),
            rpc,
            deployment: Arc::new(deployment),
        }
    }

    /// The same connection with another retry policy and receipt timeout
    /// (the defaults: five tries over ~6 s; 120 s for a receipt).
    pub fn with_retry(self, retry: RetryPolicy, receipt_timeout: Duration) -> ChainClient {
        let deployment = Arc::unwrap_or_clone(self.deployment);
        ChainClient::from_rpc(self.rpc.with(retry, receipt_timeout), deployment)
    }

    /// The same connection signing with another wallet (a second party in
    /// tests, a provider's key in a daemon).
    pub fn with_signer(&self, signer: PrivateKeySigner) -> Result<ChainClient, ChainError> {
        let inner = &self.rpc.0;
        let rpc = Rpc::connect(&inner.url, Some(signer))?.with(inner.retry, inner.receipt_timeout);
        Ok(ChainClient::from_rpc(rpc, (*self.deployment).clone()))
    }

    async fn check_deployment(&self) -> Result<(), ChainError> {
        let chain_id = self.rpc.chain_id().await?;
        if chain_id != self.deployment.chain_id {
            return Err(ChainError::WrongChain {
                expected: self.deployment.chain_id,
                actual: chain_id,
                url: self.rpc.url().to_string(),
            });
        }
        let address = self.deployment.contracts.marketplace;
        let code = self
            .rpc
            .rpc("read the marketplace's code", || async move {
                self.rpc.provider().get_code_at(address).await
            })
            .await?;
        if code.is_empty() {
            return Err(ChainError::NotDeployed {
                name: "Marketplace",
                address,
                chain_id,
            });
        }
        Ok(())
    }

    /// The deployment this client talks to.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// The wallet's address, if the client has a wallet.
    pub fn address(&self) -> Option<Address> {
        self.rpc.0.signer.as_ref().map(|s| s.address())
    }

    /// The wallet, if the client has one (for signing typed data).
    pub fn signer(&self) -> Option<&PrivateKeySigner> {
        self.rpc.0.signer.as_ref()
    }

    /// The RPC endpoint.
    pub fn rpc_url(&self) -> &str {
        self.rpc.url()
    }

    /// The underlying alloy provider, for reads this client does not wrap.
    pub fn provider(&self) -> &DynProvider {
        self.rpc.provider()
    }

    /// The period clock.
    pub fn clock(&self) -> PeriodClock {
        self.deployment.clock()
    }

    pub(crate) fn sender(&self, action: &str) -> Result<Address, ChainError> {
        self.rpc.sender(action)
    }

    /// The latest block's number and unix timestamp.
    pub async fn head(&self) -> Result<(u64, u64), ChainError> {
        let (number, _, timestamp) = self.rpc.head().await?;
        Ok((number, timestamp))
    }

    /// The latest block's timestamp: "now" as the contracts see it.
    pub async fn now(&self) -> Result<u64, ChainError> {
        Ok(self.head().await?.1)
    }

    /// The period the latest block falls in.
    pub async fn current_period(&self) -> Result<u64, ChainError> {
        Ok(self.clock().period_at(self.now().await?))
    }

    // ------------------------------------------------------------ token

    /// `account`'s storage token balance, base units.
    pub async fn token_balance(&self, account: Address) -> Result<U256, ChainError> {
        self.rpc
            .call("read a token balance", || async move {
                self.token.balanceOf(account).call().await
            })
            .await
    }

    /// `account`'s native (gas) balance, wei.
    pub async fn native_balance(&self, account: Address) -> Result<U256, ChainError> {
        self.rpc
            .rpc("read a balance", || async move {
                self.rpc.provider().get_balance(account).await
            })
            .await
    }

    /// `account`'s credit in the marketplace (what [`ChainClient::withdraw`] pays out).
    pub async fn credit(&self, account: Address) -> Result<U256, ChainError> {
        self.rpc
            .call("read a credit", || async move {
                self.market.credit(account).call().await
            })
            .await
    }

    /// Sends `amount` tokens from the wallet to `to`.
    pub async fn transfer_tokens(&self, to: Address, amount: U256) -> Result<B256, ChainError> {
        let action = format!("send {} to {to}", format_tokens(amount));
        let from = self.sender(&action)?;
        self.require_tokens(from, amount, &action).await?;
        let receipt = self
            .rpc
            .send(
                &action,
                self.token.transfer(to, amount).into_transaction_request(),
            )
            .await?;
        Ok(receipt.transaction_hash)
    }

    /// Checks `account` holds `amount` tokens.
    pub(crate) async fn require_tokens(
        &self,
        account: Address,
        amount: U256,
        action: &str,
    ) -> Result<(), ChainError> {
        let balance = self.token_balance(account).await?;
        if balance < amount {
            let hint = if self.deployment.contracts.faucet.is_some() {
                "; get test tokens with `dbytes faucet`"
            } else {
                ""
            };
            return Err(ChainError::Refused(format!(
                "to {action}, {account} needs {} but holds {}{hint}",
                format_tokens(amount),
                format_tokens(balance)
            )));
        }
        Ok(())
    }

    /// Approves `spender` for at least `amount` of the wallet's tokens, if
    /// it is not already.
    pub(crate) async fn ensure_allowance(
        &self,
        spender: Address,
        amount: U256,
    ) -> Result<(), ChainError> {
        if amount.is_zero() {
            return Ok(());
        }
        let action = format!("approve {} for {spender}", format_tokens(amount));
        let owner = self.sender(&action)?;
        let allowance = self
            .rpc
            .call("read an allowance", || async move {
                self.token.allowance(owner, spender).call().await
            })
            .await?;
        if allowance >= amount {
            return Ok(());
        }
        self.rpc
            .send(
                &action,
                self.token
                    .approve(spender, amount)
                    .into_transaction_request(),
            )
            .await?;
        Ok(())
    }

    /// Mints test tokens from the local network's faucet to `to`; returns
    /// the amount minted.
    pub async fn faucet_drip(&self, to: Address) -> Result<U256, ChainError> {
        let faucet = self.faucet.as_ref().ok_or_else(|| {
            ChainError::Refused(format!(
                "chain {} was deployed without a faucet (only local networks have one); get \
                 tokens from the token's holders",
                self.deployment.chain_id
            ))
        })?;
        let action = format!("get test tokens for {to} from the faucet");
        let already = self
            .rpc
            .call("read the faucet", || async move {
                faucet.dripped(to).call().await
            })
            .await?;
        let cap = self.deployment.parameters.faucet_cap;
        if !cap.is_zero() && already >= cap {
            return Err(ChainError::Refused(format!(
                "{to} has already received the faucet's cap of {}",
                format_tokens(cap)
            )));
        }
        let receipt = self
            .rpc
            .send(&action, faucet.drip(to).into_transaction_request())
            .await?;
        let dripped: Faucet::Dripped = event(&receipt, *faucet.address(), &action)?;
        Ok(dripped.amount)
    }

    // ------------------------------------------------------------ credit and metadata

    /// Pays out the wallet's whole credit; returns the amount.
    pub async fn withdraw(&self) -> Result<U256, ChainError> {
        let action = "withdraw credit from the marketplace";
        let account = self.sender(action)?;
        let credit = self.credit(account).await?;
        if credit.is_zero() {
            return Err(ChainError::Refused(format!(
                "{account} has no credit to withdraw; credit comes from settled deals"
            )));
        }
        let receipt = self
            .rpc
            .send(action, self.market.withdraw().into_transaction_request())
            .await?;
        let withdrawn: Marketplace::Withdrawn =
            event(&receipt, self.deployment.contracts.marketplace, action)?;
        Ok(withdrawn.amount)
    }

    /// Sets the wallet's metadata pointer (hash and locator of its encrypted
    /// gateway snapshot).
    pub async fn set_metadata(&self, hash: B256, locator: Bytes) -> Result<(), ChainError> {
        const MAX_LOCATOR_BYTES: usize = 256;
        if locator.len() > MAX_LOCATOR_BYTES {
            return Err(ChainError::Refused(format!(
                "the metadata locator is {} bytes; at most {MAX_LOCATOR_BYTES} are allowed",
                locator.len()
            )));
        }
        self.rpc
            .send(
                "set the metadata pointer",
                self.market
                    .setMetadata(hash, locator)
                    .into_transaction_request(),
            )
            .await?;
        Ok(())
    }

    /// `account`'s metadata pointer (hash, locator); zero and empty if never set.
    pub async fn metadata(&self, account: Address) -> Result<(B256, Bytes), ChainError> {
        let answer = self
            .rpc
            .call("read a metadata pointer", || async move {
                self.market.metadataOf(account).call().await
            })
            .await?;
        Ok((answer.hash, answer.locator))
    }
}
