//! The chain as the piece protocol's authority on deals and as its signer.
//!
//! [`ChainDeals`] answers [`DealAuthority`] from the marketplace through the
//! ledger's [`DealCache`] (every piece request asks; deals change at period
//! boundaries, so a few seconds of staleness are harmless). [`ChainSigner`]
//! signs a checked [`Commitment`] with the provider's wallet as the
//! marketplace's EIP-712 `Commitment` struct, so the consumer can post it
//! with its own signature.
//!
//! An RPC outage turns into [`AuthorityError::Unavailable`] (the request is
//! refused as retryable), never a crash.

use std::time::Duration;

use alloy_signer_local::PrivateKeySigner;
use dbytes_ledger::chain::ChainClient;
use dbytes_ledger::chain::Deployment;
use dbytes_ledger::chain::eip712;
use dbytes_ledger::chain::lookup::DealCache;
use dbytes_ledger::chain::types::Commitment as ChainCommitment;

use crate::commitment::{Commitment, CommitmentSigner, SignError};
use crate::deal::{AuthorityError, DealAuthority, DealId, DealTerms};

/// How long a deal answer is trusted before the chain is asked again.
pub const DEFAULT_DEAL_TTL: Duration = Duration::from_secs(2);

/// Deal terms read from the marketplace contract.
#[derive(Debug)]
pub struct ChainDeals {
    cache: DealCache,
}

impl ChainDeals {
    /// An authority reading deals through `client`, caching answers for `ttl`.
    pub fn new(client: ChainClient, ttl: Duration) -> ChainDeals {
        ChainDeals {
            cache: DealCache::new(client, ttl),
        }
    }

    /// Forgets what it knows of `deal` (after this process changed it, e.g.
    /// accepted it).
    pub fn invalidate(&self, deal: DealId) {
        self.cache.invalidate(deal.0);
    }
}

impl DealAuthority for ChainDeals {
    async fn deal_terms(&self, deal: DealId) -> Result<Option<DealTerms>, AuthorityError> {
        let info = self
            .cache
            .get(deal.0)
            .await
            .map_err(|err| AuthorityError::Unavailable(err.to_string()))?;
        Ok(info.map(|info| DealTerms {
            deal,
            active: info.active,
            consumer: info.deal.consumer,
            consumer_node: info.consumer_node_id(),
            provider: info.deal.provider,
            capacity_bytes: info.deal.capacity_bytes,
            // The consumer's gateway repairs its own deals, so no other
            // reader is authorised on chain.
            readers: Vec::new(),
        }))
    }
}

/// Signs commitments with the provider's wallet in the marketplace's
/// EIP-712 domain.
#[derive(Debug, Clone)]
pub struct ChainSigner {
    wallet: PrivateKeySigner,
    deployment: Deployment,
}

impl ChainSigner {
    /// A signer with `wallet` for the contracts of `deployment`.
    pub fn new(wallet: PrivateKeySigner, deployment: Deployment) -> ChainSigner {
        ChainSigner { wallet, deployment }
    }
}

impl CommitmentSigner for ChainSigner {
    async fn sign_commitment(
        &self,
        commitment: &Commitment,
        terms: &DealTerms,
    ) -> Result<Vec<u8>, SignError> {
        if terms.provider != self.wallet.address() {
            return Err(SignError::Failed(format!(
                "deal {} belongs to provider {}, not to this wallet {}",
                terms.deal,
                terms.provider,
                self.wallet.address()
            )));
        }
        let chain_commitment = ChainCommitment {
            root: commitment.root,
            leaf_count: commitment.leaf_count,
            version: commitment.version,
        };
        eip712::sign_commitment(
            &self.wallet,
            &self.deployment,
            commitment.deal.0,
            &chain_commitment,
        )
        .map(|signature| signature.to_vec())
        .map_err(|err| SignError::Failed(err.to_string()))
    }
}
