//! EIP-712 typed data the parties of a deal sign: a provider's quote, the
//! co-signed commitment, a provider's consent to a renewal.
//!
//! Each contract has its own domain (name, version "1", chain id, its
//! address), so a signature for one deployment or contract is worthless on
//! another. Signatures are 65 bytes `r ‖ s ‖ v` with `v` 27 or 28, what
//! OpenZeppelin's `SignatureChecker` accepts. The integration tests submit
//! every kind to the contracts and compare each digest with the contract's
//! own `hash*` view.

use alloy::primitives::{Address, B256, Bytes, U256, aliases::U96};
use alloy::signers::{Signature, SignerSync};
use alloy::sol_types::{Eip712Domain, SolStruct};
use serde::{Deserialize, Serialize};

use super::bindings::typed;
use super::deployment::Deployment;
use super::error::ChainError;
use super::types::{Commitment, DealId};

/// EIP-712 domain name of `ProviderRegistry` (quotes).
pub const REGISTRY_DOMAIN_NAME: &str = "dBytes ProviderRegistry";
/// EIP-712 domain name of `StorageProofs` (commitments).
pub const PROOFS_DOMAIN_NAME: &str = "dBytes StorageProofs";
/// EIP-712 domain name of `Marketplace` (renewals).
pub const MARKET_DOMAIN_NAME: &str = "dBytes Marketplace";

fn domain(name: &'static str, chain_id: u64, contract: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some(name.into()),
        Some("1".into()),
        Some(U256::from(chain_id)),
        Some(contract),
        None,
    )
}

/// The registry's domain: quotes are signed in it.
pub fn registry_domain(deployment: &Deployment) -> Eip712Domain {
    domain(
        REGISTRY_DOMAIN_NAME,
        deployment.chain_id,
        deployment.contracts.registry,
    )
}

/// The proof contract's domain: commitments are signed in it.
pub fn proofs_domain(deployment: &Deployment) -> Eip712Domain {
    domain(
        PROOFS_DOMAIN_NAME,
        deployment.chain_id,
        deployment.contracts.proofs,
    )
}

/// The marketplace's domain: renewals are signed in it.
pub fn market_domain(deployment: &Deployment) -> Eip712Domain {
    domain(
        MARKET_DOMAIN_NAME,
        deployment.chain_id,
        deployment.contracts.marketplace,
    )
}

/// A provider's offer to open a deal (or, with a parent, to repair one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quote {
    /// The provider offering.
    pub provider: Address,
    /// The only consumer that may redeem it; `None` for anyone.
    pub consumer: Option<Address>,
    /// Bytes of the deal.
    pub capacity_bytes: u64,
    /// Length in periods (for a repair: the most the child may run).
    pub periods: u32,
    /// Price in base units per GiB-month (fits 96 bits).
    pub price_per_gib_month: u128,
    /// Collateral the provider locks, at least twice the deal's total price.
    pub collateral: u128,
    /// The deal a repair quote takes over; zero for a new deal.
    pub parent_deal_id: DealId,
    /// For a repair: the parent's latest commitment root; zero otherwise.
    pub root: B256,
    /// For a repair: the parent's latest leaf count; zero otherwise.
    pub leaf_count: u64,
    /// Last unix second it may be redeemed.
    pub valid_until: u64,
    /// Single use per provider.
    pub nonce: U256,
}

impl Quote {
    /// The struct the contracts hash.
    pub(crate) fn to_typed(&self) -> typed::Quote {
        typed::Quote {
            provider: self.provider,
            consumer: self.consumer.unwrap_or(Address::ZERO),
            capacityBytes: self.capacity_bytes,
            periods: self.periods,
            pricePerGiBMonth: U96::saturating_from(self.price_per_gib_month),
            collateral: self.collateral,
            parentDealId: self.parent_deal_id,
            root: self.root,
            leafCount: self.leaf_count,
            validUntil: self.valid_until,
            nonce: self.nonce,
        }
    }
}

/// A quote and the provider's (or its quote signer's) signature, as a
/// provider hands it to a consumer (serialisable, e.g. a JSON file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedQuote {
    /// The offer.
    pub quote: Quote,
    /// 65-byte EIP-712 signature.
    pub signature: Bytes,
}

impl SignedQuote {
    /// Reads a signed quote from a JSON file (as a provider hands it over).
    pub fn load(path: &std::path::Path) -> Result<SignedQuote, ChainError> {
        read_json(path, "a signed quote")
    }

    /// Writes the signed quote as JSON.
    pub fn save(&self, path: &std::path::Path) -> Result<(), ChainError> {
        write_json(path, self)
    }
}

impl SignedRenewal {
    /// Reads a signed renewal from a JSON file.
    pub fn load(path: &std::path::Path) -> Result<SignedRenewal, ChainError> {
        read_json(path, "a signed renewal")
    }

    /// Writes the signed renewal as JSON.
    pub fn save(&self, path: &std::path::Path) -> Result<(), ChainError> {
        write_json(path, self)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    what: &str,
) -> Result<T, ChainError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| ChainError::Refused(format!("cannot read {}: {err}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|err| ChainError::Refused(format!("{} is not {what} ({err})", path.display())))
}

fn write_json<T: Serialize>(path: &std::path::Path, value: &T) -> Result<(), ChainError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|err| ChainError::Unexpected {
        action: "encode JSON".into(),
        reason: err.to_string(),
    })?;
    text.push('\n');
    std::fs::write(path, text)
        .map_err(|err| ChainError::Refused(format!("cannot write {}: {err}", path.display())))
}

/// A provider's consent to extend a deal from `end` to `new_end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Renewal {
    /// The deal.
    pub deal_id: DealId,
    /// Its current end period.
    pub end: u32,
    /// The end period after renewal.
    pub new_end: u32,
    /// Last unix second the consent may be used.
    pub valid_until: u64,
}

/// A renewal and the provider's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRenewal {
    /// The consent.
    pub renewal: Renewal,
    /// 65-byte EIP-712 signature.
    pub signature: Bytes,
}

/// The digest a provider signs for `quote` (the registry's `hashQuote`).
pub fn quote_digest(deployment: &Deployment, quote: &Quote) -> B256 {
    quote
        .to_typed()
        .eip712_signing_hash(&registry_domain(deployment))
}

/// The digest both parties sign for `commitment` of `deal` (the proof
/// contract's `hashCommitment`).
pub fn commitment_digest(deployment: &Deployment, deal: DealId, commitment: &Commitment) -> B256 {
    typed::Commitment {
        dealId: deal,
        root: commitment.root,
        leafCount: commitment.leaf_count,
        version: commitment.version,
    }
    .eip712_signing_hash(&proofs_domain(deployment))
}

/// The digest a provider signs to consent to `renewal` (the marketplace's `hashRenewal`).
pub fn renewal_digest(deployment: &Deployment, renewal: &Renewal) -> B256 {
    typed::Renewal {
        dealId: renewal.deal_id,
        end: renewal.end,
        newEnd: renewal.new_end,
        validUntil: renewal.valid_until,
    }
    .eip712_signing_hash(&market_domain(deployment))
}

fn sign<S: SignerSync>(signer: &S, digest: &B256, what: &'static str) -> Result<Bytes, ChainError> {
    let signature = signer
        .sign_hash_sync(digest)
        .map_err(|err| ChainError::Signing {
            what,
            reason: err.to_string(),
        })?;
    Ok(Bytes::copy_from_slice(&signature.as_bytes()))
}

/// Signs `quote` as its provider (or the provider's quote signer).
pub fn sign_quote<S: SignerSync>(
    signer: &S,
    deployment: &Deployment,
    quote: Quote,
) -> Result<SignedQuote, ChainError> {
    let signature = sign(signer, &quote_digest(deployment, &quote), "quote")?;
    Ok(SignedQuote { quote, signature })
}

/// Signs `commitment` of `deal`, as its consumer or its provider: the
/// contract needs both signatures (or one, from whichever party sends the
/// transaction).
pub fn sign_commitment<S: SignerSync>(
    signer: &S,
    deployment: &Deployment,
    deal: DealId,
    commitment: &Commitment,
) -> Result<Bytes, ChainError> {
    sign(
        signer,
        &commitment_digest(deployment, deal, commitment),
        "commitment",
    )
}

/// Signs `renewal` as the deal's provider (or its quote signer).
pub fn sign_renewal<S: SignerSync>(
    signer: &S,
    deployment: &Deployment,
    renewal: Renewal,
) -> Result<SignedRenewal, ChainError> {
    let signature = sign(signer, &renewal_digest(deployment, &renewal), "renewal")?;
    Ok(SignedRenewal { renewal, signature })
}

/// The address that signed `digest`, or `None` for a malformed signature.
pub fn recover_signer(digest: &B256, signature: &[u8]) -> Option<Address> {
    let signature = Signature::try_from(signature).ok()?;
    signature.recover_address_from_prehash(digest).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::local::PrivateKeySigner;

    #[test]
    fn type_strings_match_the_contracts() {
        assert_eq!(
            typed::Quote::eip712_encode_type(),
            "Quote(address provider,address consumer,uint64 capacityBytes,uint32 periods,\
             uint96 pricePerGiBMonth,uint128 collateral,uint256 parentDealId,bytes32 root,\
             uint64 leafCount,uint64 validUntil,uint256 nonce)"
        );
        assert_eq!(
            typed::Commitment::eip712_encode_type(),
            "Commitment(uint256 dealId,bytes32 root,uint64 leafCount,uint32 version)"
        );
        assert_eq!(
            typed::Renewal::eip712_encode_type(),
            "Renewal(uint256 dealId,uint32 end,uint32 newEnd,uint64 validUntil)"
        );
    }

    #[test]
    fn signatures_recover_to_the_signer() {
        let signer = PrivateKeySigner::random();
        let deployment = Deployment::example();
        let commitment = Commitment {
            root: B256::repeat_byte(7),
            leaf_count: 1024,
            version: 1,
        };
        let signature = sign_commitment(&signer, &deployment, U256::from(1), &commitment).unwrap();
        assert_eq!(signature.len(), 65);
        let digest = commitment_digest(&deployment, U256::from(1), &commitment);
        assert_eq!(recover_signer(&digest, &signature), Some(signer.address()));
        // Another deal, another digest.
        let other = commitment_digest(&deployment, U256::from(2), &commitment);
        assert_ne!(recover_signer(&other, &signature), Some(signer.address()));
    }
}
