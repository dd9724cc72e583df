//! Reverts decoded into sentences.
//!
//! The client checks every call before sending it, so these are the
//! fallback: a revert the checks did not foresee (the chain changed in
//! between, or a check is missing) still reads as a sentence, not a
//! selector. A call into the marketplace can revert with an error of the
//! registry, the proof contract or the token, so every contract's errors
//! are tried.

use alloy::primitives::U256;
use alloy::sol_types::{Panic, Revert, SolError, SolInterface};

use super::bindings::{faucet::Faucet, market::Marketplace, proofs::StorageProofs};
use super::bindings::{registry::ProviderRegistry, token::StorageToken};
use super::types::{DealState, ListingStatus, policy_name};
use super::units::format_tokens;

/// A sentence for revert `data` (a custom error of any dBytes contract, a
/// `require` message, a panic, or raw bytes as a last resort).
pub fn describe(data: &[u8]) -> String {
    if data.is_empty() {
        return "the contract reverted without a reason".to_string();
    }
    if let Ok(err) = Marketplace::MarketplaceErrors::abi_decode(data) {
        return market(err);
    }
    if let Ok(err) = ProviderRegistry::ProviderRegistryErrors::abi_decode(data) {
        return registry(err);
    }
    if let Ok(err) = StorageProofs::StorageProofsErrors::abi_decode(data) {
        return proofs(err);
    }
    if let Ok(err) = StorageToken::StorageTokenErrors::abi_decode(data) {
        return token(err);
    }
    if let Ok(err) = Faucet::FaucetErrors::abi_decode(data) {
        return faucet(err);
    }
    if let Ok(revert) = Revert::abi_decode(data) {
        return revert.reason;
    }
    if let Ok(panic) = Panic::abi_decode(data) {
        return format!("the contract panicked ({panic})");
    }
    format!(
        "the contract reverted with unknown data 0x{}",
        hex::encode(data)
    )
}

fn state(value: u8) -> String {
    DealState::from_u8(value).map_or_else(|| format!("state {value}"), |s| s.to_string())
}

fn tokens(amount: U256) -> String {
    format_tokens(amount)
}

fn market(err: Marketplace::MarketplaceErrors) -> String {
    use Marketplace::MarketplaceErrors as E;
    match err {
        E::AmountTooLarge(e) => format!(
            "the amount or period {} does not fit the contract's storage",
            e.amount
        ),
        E::CollateralTooLow(e) => format!(
            "the collateral {} is below the required {} (twice the deal's total price)",
            tokens(e.collateral),
            tokens(e.required)
        ),
        E::DurationOutOfRange(e) => format!(
            "a deal of {} periods is outside the allowed {}..={} periods",
            e.periods, e.minPeriods, e.maxPeriods
        ),
        E::InvalidClock(e) => format!(
            "invalid period clock (period {} s, genesis {}, grace {} s)",
            e.periodSecs, e.genesis, e.proofGraceSecs
        ),
        E::InvalidConfig(e) => format!(
            "invalid marketplace parameters (fill periods {}, exit notice {})",
            e.fillPeriods, e.exitNoticePeriods
        ),
        E::InvalidDealState(e) => format!(
            "deal {} is {}, where this is not allowed",
            e.dealId,
            state(e.state)
        ),
        E::InvalidShortString(_) | E::StringTooLong(_) => "a name is too long".to_string(),
        E::InvalidSignature(e) => format!(
            "the signature is neither provider {}'s nor its quote signer's",
            e.provider
        ),
        E::InvalidStart(e) => format!(
            "a proposal must start after the current period {}, not at {}",
            e.currentPeriod, e.start
        ),
        E::InvalidWiring(_) => {
            "the registry and proof contracts are bound to another marketplace".to_string()
        }
        E::ListingNotActive(e) => format!("provider {}'s listing is paused or absent", e.provider),
        E::LocatorTooLong(e) => format!(
            "the metadata locator is {} bytes, at most {} are allowed",
            e.length, e.max
        ),
        E::NotConsumer(e) => format!(
            "only deal {}'s consumer may do this, not {}",
            e.dealId, e.caller
        ),
        E::NotProvider(e) => format!(
            "only deal {}'s provider may do this, not {}",
            e.dealId, e.caller
        ),
        E::NothingToReassign(e) => format!(
            "deal {} has no term left to hand to a new provider",
            e.dealId
        ),
        E::NothingToSettle(e) => format!(
            "deal {} has no closed period to settle (settled up to period {})",
            e.dealId, e.settledTo
        ),
        E::NothingToWithdraw(e) => format!("{} has no credit to withdraw", e.account),
        E::PeriodNotMissed(e) => format!(
            "period {} of deal {} is proven, settled, not under a commitment or still open",
            e.period, e.dealId
        ),
        E::PolicyMismatch(e) => format!(
            "provider {}'s listing takes deals {}, not this way",
            e.provider,
            policy_name(e.policy)
        ),
        E::PriceBelowAsk(e) => format!(
            "price {} per GiB-month is below the provider's ask of {}",
            tokens(e.offered),
            tokens(e.ask)
        ),
        E::ProposalExpired(e) => format!(
            "the proposal of deal {} expired when its start period {} began",
            e.dealId, e.start
        ),
        E::QuoteMismatch(e) => format!(
            "the quote does not match deal {} (repair fields, capacity or length)",
            e.dealId
        ),
        E::RateTooLow(e) => format!(
            "{} bytes at {} per GiB-month pay less than one base unit per period",
            e.capacityBytes,
            tokens(e.pricePerGiBMonth)
        ),
        E::ReentrancyGuardReentrantCall(_) => "reentrant call refused".to_string(),
        E::RenewalExpired(e) => format!(
            "the provider's renewal consent expired at {} (now {})",
            e.validUntil, e.timestamp
        ),
        E::SafeERC20FailedOperation(e) => format!("a transfer of token {} failed", e.token),
        E::SameProvider(e) => format!(
            "the new provider must differ from the old one ({})",
            e.provider
        ),
        E::SettleFirst(e) => format!(
            "deal {} must first be settled from period {} up to {}",
            e.dealId, e.settledTo, e.firstOpen
        ),
        E::TermOver(e) => format!(
            "deal {}'s last period (ending at {}) has begun; it can no longer be renewed",
            e.dealId, e.end
        ),
        E::TransferMismatch(e) => format!(
            "the token moved {} instead of {} (fee-on-transfer tokens are refused)",
            tokens(e.received),
            tokens(e.expected)
        ),
        E::ZeroCapacity(_) => "a deal's capacity must be more than 0 bytes".to_string(),
        E::ZeroNodeId(_) => "the consumer's node id must not be zero".to_string(),
    }
}

fn registry(err: ProviderRegistry::ProviderRegistryErrors) -> String {
    use ProviderRegistry::ProviderRegistryErrors as E;
    let status = |s: u8| ListingStatus::from_u8(s).map_or("unknown", |s| s.name());
    match err {
        E::InsufficientCapacity(e) => format!(
            "provider {} has {} bytes free, not the {} asked for",
            e.provider, e.free, e.requested
        ),
        E::InsufficientCollateral(e) => format!(
            "provider {} has {} of unlocked collateral, not the {} needed",
            e.provider,
            tokens(e.unlocked),
            tokens(e.requested)
        ),
        E::InvalidAmount(e) => format!(
            "the amount {} is zero or did not arrive whole ({} received)",
            tokens(e.amount),
            tokens(e.received)
        ),
        E::InvalidListing(e) => format!("the listing's {} is out of bounds", e.field),
        E::InvalidShortString(_) | E::StringTooLong(_) => "a name is too long".to_string(),
        E::InvalidSignature(e) => format!(
            "the signature is neither provider {}'s nor its quote signer's",
            e.provider
        ),
        E::ListingAlreadyInState(e) => format!(
            "provider {}'s listing is already {}",
            e.provider,
            status(e.status)
        ),
        E::ListingExists(e) => format!("{} already has a listing; update it instead", e.provider),
        E::ListingNotActive(e) => format!(
            "provider {}'s listing is {}, so it takes no new deal",
            e.provider,
            status(e.status)
        ),
        E::ListingNotFound(e) => format!("{} has no listing", e.provider),
        E::ProviderHasLiveDeals(e) => format!(
            "provider {} still has {} live deals ({} locked)",
            e.provider,
            e.liveDeals,
            tokens(U256::from(e.locked))
        ),
        E::QuoteExpired(e) => format!(
            "the quote expired at {} (now {})",
            e.validUntil, e.timestamp
        ),
        E::QuoteNonceUsed(e) => format!(
            "provider {}'s quote nonce {} was already used",
            e.provider, e.nonce
        ),
        E::QuoteWrongConsumer(e) => format!("the quote is for {}, not {}", e.quoted, e.consumer),
        E::ReentrancyGuardReentrantCall(_) => "reentrant call refused".to_string(),
        E::RegistryUnauthorized(e) => format!("{} is not the marketplace", e.caller),
        E::SafeERC20FailedOperation(e) => format!("a transfer of token {} failed", e.token),
        E::SafeCastOverflowedUintDowncast(e) => {
            format!("the amount {} does not fit {} bits", e.value, e.bits)
        }
    }
}

fn proofs(err: StorageProofs::StorageProofsErrors) -> String {
    use StorageProofs::StorageProofsErrors as E;
    match err {
        E::CommitmentExceedsCapacity(e) => format!(
            "{} leaves of 256 bytes exceed the deal's capacity of {} bytes",
            e.leafCount, e.capacityBytes
        ),
        E::CommitmentInTransition(e) => format!(
            "deal {}'s previous commitment may still be proven until unix time {}; commit after that",
            e.dealId, e.untilTime
        ),
        E::DealEnding(e) => format!(
            "deal {} ends at period {}, before the commitment could take effect at {}",
            e.dealId, e.end, e.fromPeriod
        ),
        E::DealNotRunning(e) => format!("deal {} is {}, not running", e.dealId, state(e.state)),
        E::InvalidClock(e) => format!(
            "invalid period clock (period {} s, genesis {}, grace {} s)",
            e.periodSecs, e.genesis, e.proofGraceSecs
        ),
        E::InvalidCommitment(e) => format!(
            "a commitment needs a nonzero root and 1 to 2^48 leaves, not root {} over {} leaves",
            e.root, e.leafCount
        ),
        E::InvalidProof(e) => format!(
            "the proof of challenge {} (leaf {}) of deal {} does not lead to the committed root",
            e.challenge, e.index, e.dealId
        ),
        E::InvalidProofConfig(e) => format!(
            "invalid proof parameters ({} challenges, seed lookahead {} blocks)",
            e.challenges, e.seedLookaheadBlocks
        ),
        E::InvalidProofLength(e) => format!(
            "deal {}'s proof has {} leaf bytes and {} siblings, not what its commitment requires",
            e.dealId, e.leavesLength, e.siblingsLength
        ),
        E::InvalidShortString(_) | E::StringTooLong(_) => "a name is too long".to_string(),
        E::InvalidSignature(e) => format!("the signature is not {}'s", e.signer),
        E::NoCommitment(e) => format!(
            "deal {} has no commitment in effect in period {}",
            e.dealId, e.period
        ),
        E::PeriodNotStarted(e) => format!(
            "period {} has not started (the current one is {})",
            e.period, e.currentPeriod
        ),
        E::ProofWindowClosed(e) => format!(
            "proofs for period {} closed at unix time {}",
            e.period, e.deadline
        ),
        E::ProofsUnauthorized(e) => format!("{} is not the marketplace", e.caller),
        E::SeedAlreadyFixed(e) => format!("period {}'s seed is already fixed", e.period),
        E::SeedAnchorLive(e) => format!(
            "period {}'s seed is already anchored to block {}",
            e.period, e.anchorBlock
        ),
        E::SeedUnavailable(e) => format!(
            "period {}'s seed cannot be read yet (anchor block {}): anchor it and wait for that block",
            e.period, e.anchorBlock
        ),
        E::StaleVersion(e) => format!(
            "commitment version {} is not above the latest version {}",
            e.version, e.latest
        ),
    }
}

fn token(err: StorageToken::StorageTokenErrors) -> String {
    use StorageToken::StorageTokenErrors as E;
    match err {
        E::ERC20InsufficientBalance(e) => format!(
            "{} holds {} but {} is needed",
            e.sender,
            tokens(e.balance),
            tokens(e.needed)
        ),
        E::ERC20InsufficientAllowance(e) => format!(
            "{} may spend {} of the tokens but {} is needed",
            e.spender,
            tokens(e.allowance),
            tokens(e.needed)
        ),
        E::AccessControlUnauthorizedAccount(e) => {
            format!("{} lacks the role {}", e.account, e.neededRole)
        }
        other => format!("the token refused: {other:?}"),
    }
}

fn faucet(err: Faucet::FaucetErrors) -> String {
    use Faucet::FaucetErrors as E;
    match err {
        E::FaucetCapReached(e) => format!(
            "{} has already received the faucet's cap of {}",
            e.account,
            tokens(e.cap)
        ),
        E::FaucetInvalidConfig(e) => format!(
            "invalid faucet parameters (drip {}, cap {})",
            tokens(e.dripAmount),
            tokens(e.capPerAccount)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::Address;

    #[test]
    fn custom_errors_read_as_sentences() {
        let data = Marketplace::PriceBelowAsk {
            offered: U256::from(3u64) * U256::from(10u64).pow(U256::from(18)),
            ask: U256::from(5u64) * U256::from(10u64).pow(U256::from(18)),
        }
        .abi_encode();
        assert_eq!(
            describe(&data),
            "price 3 DBS per GiB-month is below the provider's ask of 5 DBS"
        );
        let data = ProviderRegistry::InsufficientCapacity {
            provider: Address::ZERO,
            requested: 10,
            free: 3,
        }
        .abi_encode();
        assert!(
            describe(&data).contains("3 bytes free"),
            "{}",
            describe(&data)
        );
        assert_eq!(describe(&[]), "the contract reverted without a reason");
        assert!(describe(&[1, 2, 3, 4]).contains("0x01020304"));
    }
}
