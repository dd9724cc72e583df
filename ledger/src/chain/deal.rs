//! Deals: opening them (three ways), settling, renewing, terminating,
//! exits and repair, with the contract's arithmetic restated so the client
//! can say what a deal costs before it is opened.

use alloy::primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};

use super::bindings::market::{Marketplace as M, ProviderRegistry as MR};
use super::client::{ChainClient, event};
use super::eip712::{self, Quote, SignedQuote, SignedRenewal};
use super::error::ChainError;
use super::listing::MIN_COLLATERAL_BPS;
use super::types::{
    AcceptPolicy, Deal, DealId, DealState, Listing, ListingStatus, ListingTerms, ToU64,
};
use super::units::{GIB, format_bytes, format_tokens};

/// Seconds in the month of listed prices (30 days).
pub const MONTH_SECS: u64 = 30 * 24 * 3600;
const BPS: u64 = 10_000;

/// Pay per period for `capacity_bytes` at `price_per_gib_month`, rounded
/// down, as the marketplace's `rateFor` computes it.
pub fn rate_for(price_per_gib_month: u128, capacity_bytes: u64, period_secs: u64) -> U256 {
    U256::from(price_per_gib_month) * U256::from(capacity_bytes) * U256::from(period_secs)
        / (U256::from(GIB) * U256::from(MONTH_SECS))
}

fn ceil_div(numerator: U256, denominator: U256) -> U256 {
    numerator.div_ceil(denominator)
}

/// The collateral a listing's terms require for a deal of `periods` at
/// `rate` per period over `capacity_bytes` (the marketplace's
/// `_checkListingTerms`).
pub fn collateral_for(terms: &ListingTerms, rate: U256, periods: u64, capacity_bytes: u64) -> U256 {
    let total = rate * U256::from(periods);
    let by_price = ceil_div(total * U256::from(terms.collateral_bps), U256::from(BPS));
    let by_size = ceil_div(
        U256::from(capacity_bytes) * U256::from(terms.collateral_per_gib),
        U256::from(GIB),
    );
    by_price.max(by_size)
}

/// The least collateral any deal needs: twice its total price.
pub fn minimum_collateral(rate: U256, periods: u64) -> U256 {
    rate * U256::from(periods) * U256::from(MIN_COLLATERAL_BPS) / U256::from(BPS)
}

/// What a consumer asks a provider for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealRequest {
    /// The provider.
    pub provider: Address,
    /// Bytes to reserve (what commitments may grow to).
    pub capacity_bytes: u64,
    /// Length in periods.
    pub periods: u32,
    /// Price offered per GiB-month; `None` offers the listing's ask.
    pub price_per_gib_month: Option<u128>,
    /// The consumer's iroh node id: the only node the provider serves.
    pub consumer_node_id: B256,
}

/// What a deal costs, worked out before it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealCost {
    /// Price per GiB-month offered.
    pub price_per_gib_month: u128,
    /// Pay per period, base units.
    pub rate_per_period: U256,
    /// Escrow deposited now: `rate × periods`.
    pub escrow: U256,
    /// Collateral the provider locks.
    pub collateral: U256,
}

/// The outcome of one [`ChainClient::settle`] or [`ChainClient::report_missed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    /// First period settled.
    pub from_period: u64,
    /// First period left unsettled.
    pub to_period: u64,
    /// Paid to the provider (held-back share included).
    pub paid: U256,
    /// Of `paid`, held back until the deal ends.
    pub held_back: U256,
    /// Refunded to the consumer (its slash share included).
    pub refunded: U256,
    /// Taken from the provider's collateral.
    pub slashed: U256,
    /// Of `slashed`, paid to whoever settled.
    pub reporter_reward: U256,
    /// The deal's state after settling.
    pub state: DealState,
}

pub(crate) fn deal_from_binding(id: DealId, deal: M::Deal) -> Deal {
    Deal {
        id,
        provider: deal.provider,
        consumer: deal.consumer,
        rate_per_period: deal.ratePerPeriod.to::<u128>(),
        end: deal.end.into(),
        settled_to: deal.settledTo.into(),
        state: DealState::from_u8(deal.state).unwrap_or(DealState::None),
        missed_run: deal.missedRun,
        missed_total: deal.missedTotal,
        collateral: deal.collateral,
        capacity_bytes: deal.capacityBytes,
        fill_by: deal.fillBy.into(),
        held_back: deal.heldBack,
        slashed: deal.slashed,
        consumer_node_id: deal.consumerNodeId,
        repair_reward: deal.repairReward,
        term_end: deal.termEnd.into(),
    }
}

fn market_quote(quote: &Quote) -> MR::Quote {
    let typed = quote.to_typed();
    MR::Quote {
        provider: typed.provider,
        consumer: typed.consumer,
        capacityBytes: typed.capacityBytes,
        periods: typed.periods,
        pricePerGiBMonth: typed.pricePerGiBMonth,
        collateral: typed.collateral,
        parentDealId: typed.parentDealId,
        root: typed.root,
        leafCount: typed.leafCount,
        validUntil: typed.validUntil,
        nonce: typed.nonce,
    }
}

fn refuse<T>(sentence: String) -> Result<T, ChainError> {
    Err(ChainError::Refused(sentence))
}

impl ChainClient {
    /// Deal `id`, or `None` if no such deal exists.
    pub async fn deal(&self, id: DealId) -> Result<Option<Deal>, ChainError> {
        let deal = self
            .rpc
            .call("read a deal", || async move {
                self.market.getDeal(id).call().await
            })
            .await?;
        let deal = deal_from_binding(id, deal);
        Ok((deal.state != DealState::None).then_some(deal))
    }

    pub(crate) async fn require_deal(&self, id: DealId) -> Result<Deal, ChainError> {
        self.deal(id).await?.ok_or_else(|| {
            ChainError::Refused(format!(
                "there is no deal {id} on chain {} (list yours with `dbytes deal list`)",
                self.deployment.chain_id
            ))
        })
    }

    /// Checks `request` against the provider's listing and the contract's
    /// rules, and works out what it costs. Does not look at the consumer's
    /// balance.
    pub async fn price_deal(
        &self,
        request: &DealRequest,
    ) -> Result<(Listing, DealCost), ChainError> {
        let action = format!("open a deal with {}", request.provider);
        let listing = self.require_listing(request.provider, &action).await?;
        let terms = &listing.terms;
        if listing.status != ListingStatus::Active {
            return refuse(format!(
                "provider {}'s listing is {}: it takes no new deals",
                request.provider,
                listing.status.name()
            ));
        }
        let price = request
            .price_per_gib_month
            .unwrap_or(terms.price_per_gib_month);
        if price < terms.price_per_gib_month {
            return refuse(format!(
                "price {} per GiB-month is below the provider's ask of {}",
                format_tokens(U256::from(price)),
                format_tokens(U256::from(terms.price_per_gib_month))
            ));
        }
        if request.capacity_bytes == 0 {
            return refuse("a deal's capacity must be more than 0 bytes".into());
        }
        if request.consumer_node_id.is_zero() {
            return refuse("the consumer's node id must be its iroh node id, not zero".into());
        }
        let periods = request.periods;
        if periods < terms.min_periods || periods > terms.max_periods {
            return refuse(format!(
                "a deal of {periods} periods is outside provider {}'s bounds of {} to {} periods",
                request.provider, terms.min_periods, terms.max_periods
            ));
        }
        let free = listing.free_bytes();
        if request.capacity_bytes > free {
            return refuse(format!(
                "provider {} has {} free, less than the {} asked for",
                request.provider,
                format_bytes(free),
                format_bytes(request.capacity_bytes)
            ));
        }
        let rate = rate_for(
            price,
            request.capacity_bytes,
            self.deployment.parameters.period_secs,
        );
        if rate.is_zero() {
            return refuse(format!(
                "{} at {} per GiB-month pays less than one base unit per period; offer more \
                 capacity or a higher price",
                format_bytes(request.capacity_bytes),
                format_tokens(U256::from(price))
            ));
        }
        let cost = DealCost {
            price_per_gib_month: price,
            rate_per_period: rate,
            escrow: rate * U256::from(periods),
            collateral: collateral_for(terms, rate, periods.into(), request.capacity_bytes),
        };
        Ok((listing, cost))
    }

    /// Checks the provider's pool can lock `collateral` for a new deal.
    async fn require_collateral(
        &self,
        provider: Address,
        collateral: U256,
    ) -> Result<(), ChainError> {
        let pool = self.pool(provider).await?;
        if collateral > U256::from(pool.unlocked()) {
            return refuse(format!(
                "provider {provider} has {} of unlocked collateral, less than the {} this deal \
                 locks; ask it to deposit more or choose another provider",
                format_tokens(U256::from(pool.unlocked())),
                format_tokens(collateral)
            ));
        }
        Ok(())
    }

    /// Pays `escrow` into the marketplace from the wallet: checks the
    /// balance and approves the marketplace.
    async fn fund_escrow(
        &self,
        consumer: Address,
        escrow: U256,
        action: &str,
    ) -> Result<(), ChainError> {
        self.require_tokens(consumer, escrow, action).await?;
        self.ensure_allowance(self.deployment.contracts.marketplace, escrow)
            .await
    }

    /// Proposes a deal (any accept policy), depositing its escrow; the
    /// provider accepts or declines before `start_period` (default: the
    /// next period) begins.
    pub async fn propose_deal(
        &self,
        request: &DealRequest,
        start_period: Option<u64>,
    ) -> Result<DealId, ChainError> {
        let action = format!("propose a deal to {}", request.provider);
        let consumer = self.sender(&action)?;
        let (_, cost) = self.price_deal(request).await?;
        let current = self.current_period().await?;
        let start = start_period.unwrap_or(current + 1);
        if start <= current {
            return refuse(format!(
                "a proposal must start after the current period {current}, not at {start}"
            ));
        }
        let start = u32::try_from(start)
            .map_err(|_| ChainError::Refused(format!("start period {start} is too far away")))?;
        self.fund_escrow(consumer, cost.escrow, &action).await?;
        let call = self.market.proposeDeal(
            request.provider,
            request.capacity_bytes,
            request.periods,
            alloy::primitives::aliases::U96::saturating_from(cost.price_per_gib_month),
            start,
            request.consumer_node_id,
        );
        let receipt = self
            .rpc
            .send(&action, call.into_transaction_request())
            .await?;
        let created: M::DealCreated =
            event(&receipt, self.deployment.contracts.marketplace, &action)?;
        Ok(created.dealId)
    }

    /// Accepts a proposal as its provider, locking its collateral.
    pub async fn accept_deal(&self, id: DealId) -> Result<(), ChainError> {
        let action = format!("accept deal {id}");
        let provider = self.sender(&action)?;
        let deal = self.require_deal(id).await?;
        if deal.state != DealState::Proposed {
            return refuse(format!(
                "deal {id} is {}, not a proposal waiting for an answer",
                deal.state
            ));
        }
        if deal.provider != provider {
            return refuse(format!(
                "deal {id} was proposed to {}, not to {provider}",
                deal.provider
            ));
        }
        let current = self.current_period().await?;
        if current >= deal.settled_to {
            return refuse(format!(
                "the proposal of deal {id} expired when its start period {} began (now {current})",
                deal.settled_to
            ));
        }
        let listing = self.require_listing(provider, &action).await?;
        if listing.status != ListingStatus::Active {
            return refuse(format!(
                "{provider}'s listing is {}; resume it before accepting deals",
                listing.status.name()
            ));
        }
        if deal.capacity_bytes > listing.free_bytes() {
            return refuse(format!(
                "deal {id} needs {} but the listing has {} free",
                format_bytes(deal.capacity_bytes),
                format_bytes(listing.free_bytes())
            ));
        }
        let pool = self.pool(provider).await?;
        if deal.collateral > pool.unlocked() {
            return refuse(format!(
                "deal {id} locks {} of collateral but only {} is unlocked; deposit more first",
                format_tokens(U256::from(deal.collateral)),
                format_tokens(U256::from(pool.unlocked()))
            ));
        }
        self.rpc
            .send(
                &action,
                self.market.acceptDeal(id).into_transaction_request(),
            )
            .await?;
        Ok(())
    }

    /// Declines a proposal as its provider; the escrow goes back to the consumer's credit.
    pub async fn decline_deal(&self, id: DealId) -> Result<(), ChainError> {
        let action = format!("decline deal {id}");
        let provider = self.sender(&action)?;
        let deal = self.require_deal(id).await?;
        if deal.state != DealState::Proposed {
            return refuse(format!("deal {id} is {}, not a proposal", deal.state));
        }
        if deal.provider != provider {
            return refuse(format!(
                "deal {id} was proposed to {}, not to {provider}",
                deal.provider
            ));
        }
        self.rpc
            .send(
                &action,
                self.market.declineDeal(id).into_transaction_request(),
            )
            .await?;
        Ok(())
    }

    /// Withdraws a proposal (its consumer) or clears an expired one
    /// (anyone); the escrow goes to the consumer's credit.
    pub async fn cancel_proposal(&self, id: DealId) -> Result<(), ChainError> {
        let action = format!("cancel the proposal of deal {id}");
        let caller = self.sender(&action)?;
        let deal = self.require_deal(id).await?;
        if deal.state != DealState::Proposed {
            return refuse(format!("deal {id} is {}, not a proposal", deal.state));
        }
        if caller != deal.consumer && self.current_period().await? < deal.settled_to {
            return refuse(format!(
                "only deal {id}'s consumer {} may cancel it before its start period {}",
                deal.consumer, deal.settled_to
            ));
        }
        self.rpc
            .send(
                &action,
                self.market.cancelProposal(id).into_transaction_request(),
            )
            .await?;
        Ok(())
    }

    /// Opens a deal in one transaction with a provider whose listing
    /// accepts automatically; it starts at the next period.
    pub async fn open_deal(&self, request: &DealRequest) -> Result<DealId, ChainError> {
        let action = format!("open a deal with {}", request.provider);
        let consumer = self.sender(&action)?;
        let (listing, cost) = self.price_deal(request).await?;
        if listing.terms.policy != AcceptPolicy::Auto {
            return refuse(format!(
                "provider {} does not accept deals automatically (policy: {}); propose the deal \
                 or ask it for a signed quote",
                request.provider,
                listing.terms.policy.name()
            ));
        }
        self.require_collateral(request.provider, cost.collateral)
            .await?;
        self.fund_escrow(consumer, cost.escrow, &action).await?;
        let call = self.market.openDeal(
            request.provider,
            request.capacity_bytes,
            request.periods,
            alloy::primitives::aliases::U96::saturating_from(cost.price_per_gib_month),
            request.consumer_node_id,
        );
        let receipt = self
            .rpc
            .send(&action, call.into_transaction_request())
            .await?;
        let created: M::DealCreated =
            event(&receipt, self.deployment.contracts.marketplace, &action)?;
        Ok(created.dealId)
    }

    /// A new quote nonce: random, so a provider's signers never coordinate.
    pub fn fresh_quote_nonce() -> U256 {
        U256::from_be_bytes(rand::random::<[u8; 32]>())
    }

    /// Checks a signed quote as the registry will when it is redeemed by `consumer`.
    async fn check_quote(
        &self,
        signed: &SignedQuote,
        consumer: Address,
    ) -> Result<Listing, ChainError> {
        let quote = &signed.quote;
        let now = self.now().await?;
        if now >= quote.valid_until {
            return refuse(format!(
                "the quote of {} expired at unix time {} (now {now}); ask for a new one",
                quote.provider, quote.valid_until
            ));
        }
        if let Some(quoted) = quote.consumer
            && quoted != consumer
        {
            return refuse(format!(
                "the quote is for consumer {quoted}, not {consumer}"
            ));
        }
        let nonce = quote.nonce;
        let provider = quote.provider;
        let used = self
            .rpc
            .call("read a quote nonce", || async move {
                self.registry.isQuoteNonceUsed(provider, nonce).call().await
            })
            .await?;
        if used {
            return refuse(format!(
                "provider {provider}'s quote nonce {nonce} was already used"
            ));
        }
        let listing = self.require_listing(provider, "redeem the quote").await?;
        let digest = eip712::quote_digest(&self.deployment, quote);
        let signer = eip712::recover_signer(&digest, &signed.signature);
        let allowed = Some(provider) == signer
            || (listing.terms.quote_signer.is_some() && listing.terms.quote_signer == signer);
        if !allowed {
            return refuse(format!(
                "the quote is not signed by provider {provider} or its quote signer (for this \
                 deployment on chain {})",
                self.deployment.chain_id
            ));
        }
        if listing.status != ListingStatus::Active {
            return refuse(format!(
                "provider {provider}'s listing is {}: it takes no new deals",
                listing.status.name()
            ));
        }
        if quote.capacity_bytes > listing.free_bytes() {
            return refuse(format!(
                "provider {provider} has {} free, less than the quoted {}",
                format_bytes(listing.free_bytes()),
                format_bytes(quote.capacity_bytes)
            ));
        }
        self.require_collateral(provider, U256::from(quote.collateral))
            .await?;
        Ok(listing)
    }

    /// Opens a deal in one transaction from a provider's signed quote; it
    /// starts at the next period.
    pub async fn open_deal_with_quote(
        &self,
        signed: &SignedQuote,
        consumer_node_id: B256,
    ) -> Result<DealId, ChainError> {
        let quote = &signed.quote;
        let action = format!("open a deal with {} from its quote", quote.provider);
        let consumer = self.sender(&action)?;
        if !quote.parent_deal_id.is_zero() || !quote.root.is_zero() || quote.leaf_count != 0 {
            return refuse(format!(
                "the quote is for repairing deal {}, not for a new deal; use reassign",
                quote.parent_deal_id
            ));
        }
        if quote.capacity_bytes == 0 {
            return refuse("the quote's capacity is 0 bytes".into());
        }
        if consumer_node_id.is_zero() {
            return refuse("the consumer's node id must be its iroh node id, not zero".into());
        }
        let rate = rate_for(
            quote.price_per_gib_month,
            quote.capacity_bytes,
            self.deployment.parameters.period_secs,
        );
        if rate.is_zero() {
            return refuse(
                "the quote's price and capacity pay less than one base unit per period".into(),
            );
        }
        let required = minimum_collateral(rate, quote.periods.into());
        if U256::from(quote.collateral) < required {
            return refuse(format!(
                "the quote's collateral {} is below the required {} (twice the deal's price)",
                format_tokens(U256::from(quote.collateral)),
                format_tokens(required)
            ));
        }
        if quote.periods == 0 {
            return refuse("the quote is for 0 periods".into());
        }
        self.check_quote(signed, consumer).await?;
        let escrow = rate * U256::from(quote.periods);
        self.fund_escrow(consumer, escrow, &action).await?;
        let call = self.market.openDealWithQuote(
            market_quote(quote),
            signed.signature.clone(),
            consumer_node_id,
        );
        let receipt = self
            .rpc
            .send(&action, call.into_transaction_request())
            .await?;
        let created: M::DealCreated =
            event(&receipt, self.deployment.contracts.marketplace, &action)?;
        Ok(created.dealId)
    }

    /// Builds a quote on the wallet's listing terms for `consumer` (any
    /// consumer if `None`), valid for `valid_secs`, and signs it.
    pub async fn make_quote(
        &self,
        consumer: Option<Address>,
        capacity_bytes: u64,
        periods: u32,
        valid_secs: u64,
    ) -> Result<SignedQuote, ChainError> {
        let action = "sign a quote";
        let provider = self.sender(action)?;
        let listing = self.require_listing(provider, action).await?;
        let price = listing.terms.price_per_gib_month;
        let rate = rate_for(
            price,
            capacity_bytes,
            self.deployment.parameters.period_secs,
        );
        let collateral = collateral_for(&listing.terms, rate, periods.into(), capacity_bytes);
        let collateral = u128::try_from(collateral).map_err(|_| {
            ChainError::Refused("the quote's collateral does not fit 128 bits".into())
        })?;
        let quote = Quote {
            provider,
            consumer,
            capacity_bytes,
            periods,
            price_per_gib_month: price,
            collateral,
            parent_deal_id: U256::ZERO,
            root: B256::ZERO,
            leaf_count: 0,
            valid_until: self.now().await? + valid_secs,
            nonce: Self::fresh_quote_nonce(),
        };
        let signer = self.signer().ok_or_else(|| ChainError::NoWallet {
            action: action.into(),
        })?;
        eip712::sign_quote(signer, &self.deployment, quote)
    }

    /// Builds and signs, as a new provider, a quote to take over failed or
    /// exiting deal `parent` on the wallet's listing terms: it names the
    /// parent's latest commitment, so the new provider agrees to prove
    /// exactly that data.
    pub async fn make_repair_quote(
        &self,
        parent: DealId,
        consumer: Address,
        valid_secs: u64,
    ) -> Result<SignedQuote, ChainError> {
        let action = format!("sign a repair quote for deal {parent}");
        let provider = self.sender(&action)?;
        let listing = self.require_listing(provider, &action).await?;
        let deal = self.require_deal(parent).await?;
        let latest = self.commitments(parent).await?.latest().ok_or_else(|| {
            ChainError::Refused(format!("deal {parent} has no commitment to take over"))
        })?;
        let current = self.current_period().await?;
        let start = (current + 1).max(deal.end);
        let periods = deal.term_end.saturating_sub(start).max(1);
        let price = listing.terms.price_per_gib_month;
        let rate = rate_for(
            price,
            deal.capacity_bytes,
            self.deployment.parameters.period_secs,
        );
        let collateral = collateral_for(&listing.terms, rate, periods, deal.capacity_bytes);
        let quote = Quote {
            provider,
            consumer: Some(consumer),
            capacity_bytes: deal.capacity_bytes,
            periods: u32::try_from(periods).unwrap_or(u32::MAX),
            price_per_gib_month: price,
            collateral: u128::try_from(collateral).unwrap_or(u128::MAX),
            parent_deal_id: parent,
            root: latest.root,
            leaf_count: latest.leaf_count,
            valid_until: self.now().await? + valid_secs,
            nonce: Self::fresh_quote_nonce(),
        };
        let signer = self.signer().ok_or(ChainError::NoWallet { action })?;
        eip712::sign_quote(signer, &self.deployment, quote)
    }

    // ------------------------------------------------------------ settlement

    fn settlement(
        &self,
        receipt: &alloy::rpc::types::TransactionReceipt,
        action: &str,
    ) -> Result<Settlement, ChainError> {
        let settled: M::Settled = event(receipt, self.deployment.contracts.marketplace, action)?;
        let market = self.deployment.contracts.marketplace;
        let failed = event::<M::DealFailed>(receipt, market, action).is_ok();
        let closed = event::<M::DealClosed>(receipt, market, action).is_ok();
        Ok(Settlement {
            from_period: settled.fromPeriod.to_u64(),
            to_period: settled.toPeriod.to_u64(),
            paid: settled.paid,
            held_back: settled.heldBack,
            refunded: settled.refunded,
            slashed: settled.slashed,
            reporter_reward: settled.reporterReward,
            state: if failed {
                DealState::Failed
            } else if closed {
                DealState::Closed
            } else {
                DealState::Active
            },
        })
    }

    /// Settles up to `max_periods` closed periods of deal `id` (anyone may).
    pub async fn settle(&self, id: DealId, max_periods: u64) -> Result<Settlement, ChainError> {
        let action = format!("settle deal {id}");
        self.sender(&action)?;
        let deal = self.require_deal(id).await?;
        if !deal.state.is_running() {
            return refuse(format!(
                "deal {id} is {}; only running deals are settled",
                deal.state
            ));
        }
        let first_open = self.clock().first_open_period(self.now().await?);
        let to = deal
            .end
            .min(first_open)
            .min(deal.settled_to.saturating_add(max_periods));
        if to <= deal.settled_to {
            return refuse(format!(
                "deal {id} has no closed period to settle: it is settled up to period {} and \
                 period {} is still open to proofs",
                deal.settled_to,
                first_open.max(deal.settled_to)
            ));
        }
        let receipt = self
            .rpc
            .send(
                &action,
                self.market
                    .settle(id, U256::from(max_periods))
                    .into_transaction_request(),
            )
            .await?;
        self.settlement(&receipt, &action)
    }

    /// Reports `period` of deal `id` as missed, settling up to it; the
    /// caller earns the reporter share unless it is the provider.
    pub async fn report_missed(&self, id: DealId, period: u64) -> Result<Settlement, ChainError> {
        let action = format!("report period {period} of deal {id} as missed");
        self.sender(&action)?;
        let deal = self.require_deal(id).await?;
        if !deal.state.is_running() {
            return refuse(format!(
                "deal {id} is {}; only running deals are settled",
                deal.state
            ));
        }
        let first_open = self.clock().first_open_period(self.now().await?);
        let commitments = self.commitments(id).await?;
        let proven = self.is_proven(id, period).await?;
        let reason = if period < deal.settled_to {
            Some(format!(
                "it is already settled (up to period {})",
                deal.settled_to
            ))
        } else if period >= deal.end {
            Some(format!("the deal ends at period {}", deal.end))
        } else if period >= first_open {
            Some("it is still open to proofs".to_string())
        } else if commitments.current.is_none() || period < commitments.committed_from {
            Some("no commitment was in effect then".to_string())
        } else if period < deal.fill_by {
            Some(format!(
                "the repair deal has until period {} to fill",
                deal.fill_by
            ))
        } else if proven {
            Some("it was proven".to_string())
        } else {
            None
        };
        if let Some(reason) = reason {
            return refuse(format!(
                "period {period} of deal {id} cannot be reported as missed: {reason}"
            ));
        }
        let receipt = self
            .rpc
            .send(
                &action,
                self.market
                    .reportMissed(id, U256::from(period))
                    .into_transaction_request(),
            )
            .await?;
        self.settlement(&receipt, &action)
    }

    // ------------------------------------------------------------ renew, terminate, exit

    /// Extends deal `id` by `extra_periods` at its rate, depositing the
    /// escrow. Without `consent` the provider's listing must accept
    /// automatically (and still ask no more than the deal's rate).
    pub async fn renew(
        &self,
        id: DealId,
        extra_periods: u32,
        consent: Option<&SignedRenewal>,
    ) -> Result<u64, ChainError> {
        let action = format!("renew deal {id}");
        let consumer = self.sender(&action)?;
        let deal = self.require_deal(id).await?;
        if deal.state != DealState::Active {
            return refuse(format!(
                "deal {id} is {}; only active deals can be renewed",
                deal.state
            ));
        }
        if deal.consumer != consumer {
            return refuse(format!(
                "only deal {id}'s consumer {} may renew it",
                deal.consumer
            ));
        }
        let current = self.current_period().await?;
        if deal.end <= current {
            return refuse(format!(
                "deal {id}'s last period {} has begun; open a new deal instead",
                deal.end.saturating_sub(1)
            ));
        }
        if extra_periods == 0 {
            return refuse("a renewal must add at least one period".into());
        }
        let new_end = deal.end + u64::from(extra_periods);
        let new_end32 = u32::try_from(new_end)
            .map_err(|_| ChainError::Refused(format!("renewing to period {new_end} is too far")))?;
        let listing = self.listing(deal.provider).await?;
        match consent {
            None => {
                let Some(listing) = listing.as_ref().filter(|l| {
                    l.status == ListingStatus::Active && l.terms.policy == AcceptPolicy::Auto
                }) else {
                    return refuse(format!(
                        "provider {} does not renew automatically; ask it for a signed renewal",
                        deal.provider
                    ));
                };
                let ask = rate_for(
                    listing.terms.price_per_gib_month,
                    deal.capacity_bytes,
                    self.deployment.parameters.period_secs,
                );
                if ask > U256::from(deal.rate_per_period) {
                    return refuse(format!(
                        "provider {} now asks {} per period for this deal's size, more than its \
                         rate of {}; ask it for a signed renewal",
                        deal.provider,
                        format_tokens(ask),
                        format_tokens(U256::from(deal.rate_per_period))
                    ));
                }
                if extra_periods > listing.terms.max_periods {
                    return refuse(format!(
                        "provider {} renews at most {} periods at a time, not {extra_periods}",
                        deal.provider, listing.terms.max_periods
                    ));
                }
            }
            Some(signed) => {
                let renewal = &signed.renewal;
                if renewal.deal_id != id
                    || u64::from(renewal.end) != deal.end
                    || renewal.new_end != new_end32
                {
                    return refuse(format!(
                        "the renewal consent is for deal {} from period {} to {}, not deal {id} \
                         from {} to {new_end}",
                        renewal.deal_id, renewal.end, renewal.new_end, deal.end
                    ));
                }
                if self.now().await? >= renewal.valid_until {
                    return refuse(format!(
                        "the renewal consent expired at unix time {}",
                        renewal.valid_until
                    ));
                }
                let digest = eip712::renewal_digest(&self.deployment, renewal);
                let signer = eip712::recover_signer(&digest, &signed.signature);
                let quote_signer = listing.as_ref().and_then(|l| l.terms.quote_signer);
                if signer != Some(deal.provider)
                    && (quote_signer.is_none() || signer != quote_signer)
                {
                    return refuse(format!(
                        "the renewal consent is not signed by provider {} or its quote signer",
                        deal.provider
                    ));
                }
            }
        }
        let escrow = U256::from(deal.rate_per_period) * U256::from(extra_periods);
        let bps = listing
            .map_or(0, |l| l.terms.collateral_bps)
            .max(MIN_COLLATERAL_BPS);
        let collateral = ceil_div(escrow * U256::from(bps), U256::from(BPS));
        self.require_collateral(deal.provider, collateral).await?;
        self.fund_escrow(consumer, escrow, &action).await?;
        let (valid_until, signature) = consent
            .map(|s| (s.renewal.valid_until, s.signature.clone()))
            .unwrap_or_default();
        self.rpc
            .send(
                &action,
                self.market
                    .renew(id, extra_periods, valid_until, signature)
                    .into_transaction_request(),
            )
            .await?;
        Ok(new_end)
    }

    /// Ends deal `id` with one period's notice (the consumer); the escrow of
    /// the periods cut goes to its credit. Returns the new end period.
    pub async fn terminate(&self, id: DealId) -> Result<u64, ChainError> {
        let action = format!("terminate deal {id}");
        let consumer = self.sender(&action)?;
        let deal = self.require_deal(id).await?;
        if deal.state != DealState::Active {
            return refuse(format!(
                "deal {id} is {}; only active deals can be terminated",
                deal.state
            ));
        }
        if deal.consumer != consumer {
            return refuse(format!(
                "only deal {id}'s consumer {} may terminate it",
                deal.consumer
            ));
        }
        let receipt = self
            .rpc
            .send(
                &action,
                self.market.terminate(id).into_transaction_request(),
            )
            .await?;
        let terminated: M::DealTerminated =
            event(&receipt, self.deployment.contracts.marketplace, &action)?;
        Ok(terminated.newEnd.to_u64())
    }

    /// Gives notice on deal `id` as its provider (graceful exit). Returns the new end period.
    pub async fn exit_gracefully(&self, id: DealId) -> Result<u64, ChainError> {
        let action = format!("exit deal {id}");
        let provider = self.sender(&action)?;
        let deal = self.require_deal(id).await?;
        if deal.state != DealState::Active {
            return refuse(format!(
                "deal {id} is {}; only active deals can be exited",
                deal.state
            ));
        }
        if deal.provider != provider {
            return refuse(format!(
                "only deal {id}'s provider {} may exit it",
                deal.provider
            ));
        }
        let receipt = self
            .rpc
            .send(
                &action,
                self.market.exitGracefully(id).into_transaction_request(),
            )
            .await?;
        let exiting: M::DealExiting =
            event(&receipt, self.deployment.contracts.marketplace, &action)?;
        Ok(exiting.newEnd.to_u64())
    }

    /// Stops serving deal `id` at once as its provider (abrupt exit).
    pub async fn abandon(&self, id: DealId) -> Result<(), ChainError> {
        let action = format!("abandon deal {id}");
        let provider = self.sender(&action)?;
        let deal = self.require_deal(id).await?;
        if !deal.state.is_running() {
            return refuse(format!("deal {id} is {}, not running", deal.state));
        }
        if deal.provider != provider {
            return refuse(format!(
                "only deal {id}'s provider {} may abandon it",
                deal.provider
            ));
        }
        let first_open = self.clock().first_open_period(self.now().await?);
        if deal.settled_to < deal.end.min(first_open) {
            return refuse(format!(
                "settle deal {id} first: it is settled up to period {} and periods up to {} are closed",
                deal.settled_to,
                deal.end.min(first_open)
            ));
        }
        self.rpc
            .send(&action, self.market.abandon(id).into_transaction_request())
            .await?;
        Ok(())
    }

    /// Moves failed or exiting deal `id` to the provider of `signed` (a
    /// repair quote); returns the new deal's id. Escrow comes from the
    /// consumer's credit first.
    pub async fn reassign(&self, id: DealId, signed: &SignedQuote) -> Result<DealId, ChainError> {
        let quote = &signed.quote;
        let action = format!("reassign deal {id} to {}", quote.provider);
        let consumer = self.sender(&action)?;
        let parent = self.require_deal(id).await?;
        if !matches!(parent.state, DealState::Failed | DealState::Exiting) {
            return refuse(format!(
                "deal {id} is {}; only failed or exiting deals are reassigned",
                parent.state
            ));
        }
        if parent.consumer != consumer {
            return refuse(format!(
                "only deal {id}'s consumer {} may reassign it",
                parent.consumer
            ));
        }
        let current = self.current_period().await?;
        let start = (current + 1).max(parent.end);
        if start >= parent.term_end {
            return refuse(format!(
                "deal {id} has no term left to hand over (it ran to period {})",
                parent.term_end
            ));
        }
        let periods = parent.term_end - start;
        if quote.parent_deal_id != id {
            return refuse(format!(
                "the quote is for deal {}, not {id}",
                quote.parent_deal_id
            ));
        }
        if quote.capacity_bytes != parent.capacity_bytes {
            return refuse(format!(
                "the quote covers {} but deal {id} has {}",
                format_bytes(quote.capacity_bytes),
                format_bytes(parent.capacity_bytes)
            ));
        }
        if u64::from(quote.periods) < periods {
            return refuse(format!(
                "the quote allows {} periods but the repair runs {periods} (periods {start} to {})",
                quote.periods, parent.term_end
            ));
        }
        if quote.provider == parent.provider {
            return refuse(format!(
                "the new provider must differ from the old one ({})",
                parent.provider
            ));
        }
        let latest = self.commitments(id).await?.latest();
        match latest {
            Some(c) if c.root == quote.root && c.leaf_count == quote.leaf_count => {}
            Some(c) => {
                return refuse(format!(
                    "the quote names root {} over {} leaves but deal {id}'s latest commitment is \
                     {} over {} leaves",
                    quote.root, quote.leaf_count, c.root, c.leaf_count
                ));
            }
            None => return refuse(format!("deal {id} has no commitment to reassign")),
        }
        let rate = rate_for(
            quote.price_per_gib_month,
            quote.capacity_bytes,
            self.deployment.parameters.period_secs,
        );
        if rate.is_zero() {
            return refuse("the quote's price pays less than one base unit per period".into());
        }
        let required = minimum_collateral(rate, periods);
        if U256::from(quote.collateral) < required {
            return refuse(format!(
                "the quote's collateral {} is below the required {}",
                format_tokens(U256::from(quote.collateral)),
                format_tokens(required)
            ));
        }
        self.check_quote(signed, consumer).await?;
        let escrow = rate * U256::from(periods);
        let from_wallet = escrow.saturating_sub(self.credit(consumer).await?);
        self.fund_escrow(consumer, from_wallet, &action).await?;
        let receipt = self
            .rpc
            .send(
                &action,
                self.market
                    .reassign(id, market_quote(quote), signed.signature.clone())
                    .into_transaction_request(),
            )
            .await?;
        let reassigned: M::DealReassigned =
            event(&receipt, self.deployment.contracts.marketplace, &action)?;
        Ok(reassigned.childId)
    }

    /// Closes failed deal `id` without repair; its repair reward goes to the consumer's credit.
    pub async fn close_failed(&self, id: DealId) -> Result<(), ChainError> {
        let action = format!("close failed deal {id}");
        let consumer = self.sender(&action)?;
        let deal = self.require_deal(id).await?;
        if deal.state != DealState::Failed {
            return refuse(format!("deal {id} is {}, not failed", deal.state));
        }
        if deal.consumer != consumer {
            return refuse(format!(
                "only deal {id}'s consumer {} may close it",
                deal.consumer
            ));
        }
        self.rpc
            .send(
                &action,
                self.market.closeFailed(id).into_transaction_request(),
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::types::Region;

    #[test]
    fn rate_and_collateral_follow_the_contract() {
        // 1 token per GiB-month, 30 GiB, hour periods: 30 tokens / 720 periods.
        let unit = 10u128.pow(18);
        let rate = rate_for(unit, 30 * GIB, 3600);
        assert_eq!(rate, U256::from(30 * unit / 720));
        let terms = ListingTerms {
            node_id: B256::repeat_byte(1),
            address_hints: Default::default(),
            capacity_bytes: 1000 * GIB,
            price_per_gib_month: unit,
            min_periods: 1,
            max_periods: 100,
            collateral_bps: 25_000,
            collateral_per_gib: 0,
            region: Region::NONE,
            policy: AcceptPolicy::Auto,
            quote_signer: None,
        };
        let collateral = collateral_for(&terms, rate, 10, 30 * GIB);
        assert_eq!(
            collateral,
            (rate * U256::from(10u64) * U256::from(25_000u64)).div_ceil(U256::from(BPS))
        );
        let floor = ListingTerms {
            collateral_per_gib: 1000 * unit,
            ..terms
        };
        assert_eq!(
            collateral_for(&floor, rate, 10, 30 * GIB),
            U256::from(30_000 * unit)
        );
        // Rounding down: a tiny deal pays nothing per period.
        assert!(rate_for(1, 1, 1).is_zero());
    }
}
