//! A provider's side of the registry: its listing and its collateral pool.

use alloy::primitives::{Address, FixedBytes, U256, aliases::U96};

use super::bindings::registry::ProviderRegistry as R;
use super::client::{ChainClient, event};
use super::error::ChainError;
use super::types::{AcceptPolicy, Listing, ListingStatus, ListingTerms, Pool, Region};
use super::units::format_tokens;

/// Longest accepted address hints (`MAX_ADDRESS_HINTS_BYTES`).
pub const MAX_ADDRESS_HINTS_BYTES: usize = 512;
/// Smallest collateral multiple of a deal's price (2x), basis points.
pub const MIN_COLLATERAL_BPS: u32 = 20_000;

/// Checks listing terms as the registry does; the error names the first bad field.
pub fn check_terms(terms: &ListingTerms) -> Result<(), ChainError> {
    let refuse = |sentence: String| Err(ChainError::Refused(sentence));
    if terms.node_id.is_zero() {
        return refuse(
            "the listing's node id must be the provider's iroh node id, not zero".into(),
        );
    }
    if terms.address_hints.len() > MAX_ADDRESS_HINTS_BYTES {
        return refuse(format!(
            "the listing's address hints are {} bytes; at most {MAX_ADDRESS_HINTS_BYTES} are allowed",
            terms.address_hints.len()
        ));
    }
    if terms.capacity_bytes == 0 {
        return refuse("the listing's capacity must be more than 0 bytes".into());
    }
    if terms.price_per_gib_month == 0 {
        return refuse("the listing's price per GiB-month must be more than 0".into());
    }
    if U96::try_from(terms.price_per_gib_month).is_err() {
        return refuse(format!(
            "the listing's price {} per GiB-month is too large (it must fit 96 bits)",
            format_tokens(U256::from(terms.price_per_gib_month))
        ));
    }
    if U96::try_from(terms.collateral_per_gib).is_err() {
        return refuse(
            "the listing's collateral per GiB is too large (it must fit 96 bits)".into(),
        );
    }
    if terms.min_periods == 0 || terms.max_periods < terms.min_periods {
        return refuse(format!(
            "the listing's duration bounds {}..={} periods are invalid: the minimum must be at \
             least 1 and the maximum at least the minimum",
            terms.min_periods, terms.max_periods
        ));
    }
    if terms.collateral_bps < MIN_COLLATERAL_BPS {
        return refuse(format!(
            "the listing's collateral of {} bps of a deal's price is below the minimum of \
             {MIN_COLLATERAL_BPS} (twice the price)",
            terms.collateral_bps
        ));
    }
    Ok(())
}

pub(crate) fn to_binding(terms: &ListingTerms) -> R::ListingTerms {
    R::ListingTerms {
        nodeId: terms.node_id,
        addressHints: terms.address_hints.clone(),
        capacityBytes: terms.capacity_bytes,
        pricePerGiBMonth: U96::saturating_from(terms.price_per_gib_month),
        minPeriods: terms.min_periods,
        maxPeriods: terms.max_periods,
        collateralBps: terms.collateral_bps,
        collateralPerGiB: U96::saturating_from(terms.collateral_per_gib),
        region: FixedBytes(terms.region.0),
        policy: terms.policy.to_u8(),
        quoteSigner: terms.quote_signer.unwrap_or(Address::ZERO),
    }
}

pub(crate) fn from_binding(provider: Address, terms: R::ListingTerms) -> ListingTerms {
    let signer = terms.quoteSigner;
    ListingTerms {
        node_id: terms.nodeId,
        address_hints: terms.addressHints,
        capacity_bytes: terms.capacityBytes,
        price_per_gib_month: terms.pricePerGiBMonth.to::<u128>(),
        min_periods: terms.minPeriods,
        max_periods: terms.maxPeriods,
        collateral_bps: terms.collateralBps,
        collateral_per_gib: terms.collateralPerGiB.to::<u128>(),
        region: Region(terms.region.0),
        policy: AcceptPolicy::from_u8(terms.policy).unwrap_or(AcceptPolicy::Manual),
        quote_signer: (signer != provider && !signer.is_zero()).then_some(signer),
    }
}

impl ChainClient {
    /// `provider`'s listing, or `None` if it has none.
    pub async fn listing(&self, provider: Address) -> Result<Option<Listing>, ChainError> {
        let answer = self
            .rpc
            .call("read a listing", || async move {
                self.registry.listingOf(provider).call().await
            })
            .await?;
        let status =
            ListingStatus::from_u8(answer.status).ok_or_else(|| ChainError::Unexpected {
                action: "read a listing".into(),
                reason: "unknown listing status".into(),
            })?;
        if status == ListingStatus::None {
            return Ok(None);
        }
        Ok(Some(Listing {
            provider,
            status,
            terms: from_binding(provider, answer.terms),
            used_bytes: answer.usedBytes,
            live_deals: answer.liveDeals,
        }))
    }

    /// `provider`'s listing, or a refusal naming it for `action`.
    pub(crate) async fn require_listing(
        &self,
        provider: Address,
        action: &str,
    ) -> Result<Listing, ChainError> {
        self.listing(provider).await?.ok_or_else(|| {
            ChainError::Refused(format!(
                "cannot {action}: {provider} has no listing (find providers with `dbytes market search`)"
            ))
        })
    }

    /// `provider`'s collateral pool.
    pub async fn pool(&self, provider: Address) -> Result<Pool, ChainError> {
        let answer = self
            .rpc
            .call("read a collateral pool", || async move {
                self.registry.poolOf(provider).call().await
            })
            .await?;
        Ok(Pool {
            deposited: answer.deposited,
            locked: answer.locked,
        })
    }

    /// Publishes the wallet's listing; it takes deals at once.
    pub async fn register(&self, terms: &ListingTerms) -> Result<(), ChainError> {
        let action = "register a listing";
        let provider = self.sender(action)?;
        check_terms(terms)?;
        if self.listing(provider).await?.is_some() {
            return Err(ChainError::Refused(format!(
                "{provider} already has a listing; change it with an update instead"
            )));
        }
        self.rpc
            .send(
                action,
                self.registry
                    .register(to_binding(terms))
                    .into_transaction_request(),
            )
            .await?;
        Ok(())
    }

    /// Replaces the wallet's listing terms (live deals keep theirs).
    pub async fn update_listing(&self, terms: &ListingTerms) -> Result<(), ChainError> {
        let action = "update the listing";
        let provider = self.sender(action)?;
        check_terms(terms)?;
        self.require_listing(provider, action).await?;
        self.rpc
            .send(
                action,
                self.registry
                    .update(to_binding(terms))
                    .into_transaction_request(),
            )
            .await?;
        Ok(())
    }

    /// Stops (`true`) or resumes taking new deals.
    pub async fn set_paused(&self, paused: bool) -> Result<(), ChainError> {
        let action = if paused {
            "pause the listing"
        } else {
            "resume the listing"
        };
        let provider = self.sender(action)?;
        let listing = self.require_listing(provider, action).await?;
        let wanted = if paused {
            ListingStatus::Paused
        } else {
            ListingStatus::Active
        };
        if listing.status == wanted {
            return Err(ChainError::Refused(format!(
                "{provider}'s listing is already {}",
                wanted.name()
            )));
        }
        self.rpc
            .send(
                action,
                self.registry.setPaused(paused).into_transaction_request(),
            )
            .await?;
        Ok(())
    }

    /// Removes the wallet's listing; allowed once no deal is live.
    pub async fn leave(&self) -> Result<(), ChainError> {
        let action = "leave the market";
        let provider = self.sender(action)?;
        let listing = self.require_listing(provider, action).await?;
        let pool = self.pool(provider).await?;
        if listing.live_deals != 0 || pool.locked != 0 {
            return Err(ChainError::Refused(format!(
                "{provider} still has {} live deals with {} of collateral locked; leave once they \
                 have ended (pause the listing to take no new ones)",
                listing.live_deals,
                format_tokens(U256::from(pool.locked))
            )));
        }
        self.rpc
            .send(action, self.registry.leave().into_transaction_request())
            .await?;
        Ok(())
    }

    /// Adds `amount` of the wallet's tokens to its collateral pool
    /// (approving the registry first when needed).
    pub async fn deposit_collateral(&self, amount: U256) -> Result<Pool, ChainError> {
        let action = format!("deposit {} of collateral", format_tokens(amount));
        let provider = self.sender(&action)?;
        if amount.is_zero() {
            return Err(ChainError::Refused(
                "a collateral deposit must be more than 0".into(),
            ));
        }
        self.require_tokens(provider, amount, &action).await?;
        self.ensure_allowance(self.deployment.contracts.registry, amount)
            .await?;
        let receipt = self
            .rpc
            .send(
                &action,
                self.registry
                    .depositCollateral(amount)
                    .into_transaction_request(),
            )
            .await?;
        let pool: R::PoolUpdated = event(&receipt, self.deployment.contracts.registry, &action)?;
        Ok(Pool {
            deposited: pool.deposited,
            locked: pool.locked,
        })
    }

    /// Withdraws `amount` of the wallet's unlocked collateral.
    pub async fn withdraw_collateral(&self, amount: U256) -> Result<Pool, ChainError> {
        let action = format!("withdraw {} of collateral", format_tokens(amount));
        let provider = self.sender(&action)?;
        if amount.is_zero() {
            return Err(ChainError::Refused(
                "a collateral withdrawal must be more than 0".into(),
            ));
        }
        let pool = self.pool(provider).await?;
        if amount > U256::from(pool.unlocked()) {
            return Err(ChainError::Refused(format!(
                "cannot withdraw {}: only {} of {provider}'s collateral is unlocked ({} backs live \
                 deals)",
                format_tokens(amount),
                format_tokens(U256::from(pool.unlocked())),
                format_tokens(U256::from(pool.locked))
            )));
        }
        let receipt = self
            .rpc
            .send(
                &action,
                self.registry
                    .withdrawCollateral(amount)
                    .into_transaction_request(),
            )
            .await?;
        let pool: R::PoolUpdated = event(&receipt, self.deployment.contracts.registry, &action)?;
        Ok(Pool {
            deposited: pool.deposited,
            locked: pool.locked,
        })
    }
}
