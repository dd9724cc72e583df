//! Commitments, challenge seeds and storage proofs.
//!
//! The challenged leaves of a deal in a period are
//! `uint256(keccak256(abi.encode(seed, dealId, i))) % leafCount` for
//! `i < K` ([`challenge_indexes`], the same arithmetic the contract does);
//! a provider answers with each leaf's 256 bytes and its path in the deal
//! tree ([`DealProof`], built from [`crate::commitment`] trees).

use alloy::primitives::{B256, Bytes, U256, keccak256};
use alloy::sol_types::SolValue;
use serde::{Deserialize, Serialize};

use super::bindings::proofs::StorageProofs as P;
use super::client::{ChainClient, event};
use super::eip712;
use super::error::ChainError;
use super::types::{Commitment, CommitmentState, DealId, DealState, ToU64};
use crate::commitment::{self, DealTree, LEAF_SIZE, MAX_DEPTH, MerkleProof, PieceTree};

/// The leaf indexes deal `deal` must prove in the period whose seed is
/// `seed`, for a commitment of `leaf_count` leaves and `challenges` (K).
pub fn challenge_indexes(seed: B256, deal: DealId, challenges: u64, leaf_count: u64) -> Vec<u64> {
    if leaf_count == 0 {
        return Vec::new();
    }
    (0..challenges)
        .map(|i| {
            let hash = keccak256((seed, deal, U256::from(i)).abi_encode());
            let index = U256::from_be_bytes(hash.0) % U256::from(leaf_count);
            index.to::<u64>()
        })
        .collect()
}

/// One deal's answer to a period's challenges: K leaves and their paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealProof {
    /// The deal.
    pub deal_id: DealId,
    /// One proof per challenge, in challenge order.
    pub proofs: Vec<MerkleProof>,
}

impl DealProof {
    /// Proves `indexes` of a deal tree: `piece(slot)` returns the tree and
    /// the bytes of the piece in a slot (a provider reads them from disk).
    pub fn build<'a>(
        deal_id: DealId,
        tree: &DealTree,
        indexes: &[u64],
        mut piece: impl FnMut(u64) -> Result<(&'a PieceTree, &'a [u8]), ChainError>,
    ) -> Result<DealProof, ChainError> {
        let proofs = indexes
            .iter()
            .map(|&index| {
                let (piece_tree, bytes) = piece(index >> tree.slot_height())?;
                Ok(tree.prove(index, piece_tree, bytes)?)
            })
            .collect::<Result<Vec<_>, ChainError>>()?;
        Ok(DealProof { deal_id, proofs })
    }

    /// Checks every proof against `commitment` and that the indexes are
    /// the challenged ones, as the contract will.
    pub fn verify(&self, commitment: &Commitment, indexes: &[u64]) -> Result<(), ChainError> {
        if self.proofs.len() != indexes.len() {
            return Err(ChainError::Refused(format!(
                "deal {}'s proof answers {} challenges, not {}",
                self.deal_id,
                self.proofs.len(),
                indexes.len()
            )));
        }
        for (i, (proof, &index)) in self.proofs.iter().zip(indexes).enumerate() {
            if proof.index != index {
                return Err(ChainError::Refused(format!(
                    "deal {}'s proof {i} is for leaf {}, but the challenge is leaf {index}",
                    self.deal_id, proof.index
                )));
            }
            commitment::verify(commitment.root, commitment.leaf_count, proof).map_err(|err| {
                ChainError::Refused(format!(
                    "deal {}'s proof of challenge {i} does not verify against its commitment \
                     (root {}): {err}",
                    self.deal_id, commitment.root
                ))
            })?;
        }
        Ok(())
    }

    /// The contract's calldata form: leaves concatenated, paths concatenated.
    pub(crate) fn to_call(&self) -> P::DealProof {
        let mut leaves = Vec::with_capacity(self.proofs.len() * LEAF_SIZE);
        let mut siblings = Vec::new();
        for proof in &self.proofs {
            leaves.extend_from_slice(&proof.leaf);
            siblings.extend_from_slice(&proof.path);
        }
        P::DealProof {
            dealId: self.deal_id,
            leaves: Bytes::from(leaves),
            siblings,
        }
    }
}

fn refuse<T>(sentence: String) -> Result<T, ChainError> {
    Err(ChainError::Refused(sentence))
}

impl ChainClient {
    /// Challenged leaves per deal per period (K).
    pub fn challenges(&self) -> u64 {
        self.deployment.parameters.challenges
    }

    /// Deal `id`'s commitments: the one in effect and the pending one.
    pub async fn commitments(&self, id: DealId) -> Result<CommitmentState, ChainError> {
        let c = self
            .rpc
            .call("read a commitment", || async move {
                self.proofs.commitmentOf(id).call().await
            })
            .await?;
        let current = (c.leafCount != 0).then_some(Commitment {
            root: c.root,
            leaf_count: c.leafCount,
            version: c.version,
        });
        let next = (c.nextFrom != 0).then_some((
            Commitment {
                root: c.nextRoot,
                leaf_count: c.nextLeafCount,
                version: c.nextVersion,
            },
            u64::from(c.nextFrom),
        ));
        Ok(CommitmentState {
            current,
            committed_from: c.committedFrom.into(),
            next,
        })
    }

    /// Whether `period` of deal `id` is proven.
    pub async fn is_proven(&self, id: DealId, period: u64) -> Result<bool, ChainError> {
        self.rpc
            .call("read a proof bit", || async move {
                self.proofs.isProven(id, U256::from(period)).call().await
            })
            .await
    }

    /// Records `commitment` for deal `id`, co-signed by both parties (a
    /// signature may be `None` for the party sending the transaction). It
    /// takes effect at the next period boundary; returns that period.
    pub async fn commit(
        &self,
        id: DealId,
        commitment: &Commitment,
        consumer_signature: Option<Bytes>,
        provider_signature: Option<Bytes>,
    ) -> Result<u64, ChainError> {
        let action = format!("commit version {} of deal {id}", commitment.version);
        let sender = self.sender(&action)?;
        let deal = self.require_deal(id).await?;
        if !deal.state.is_running() {
            return refuse(format!(
                "deal {id} is {}; commitments go to running deals",
                deal.state
            ));
        }
        if commitment.root.is_zero() || commitment.leaf_count == 0 {
            return refuse("a commitment needs a nonzero root and at least one leaf".into());
        }
        if commitment::depth(commitment.leaf_count).is_err() {
            return refuse(format!(
                "{} leaves exceed the deepest tree the contract verifies (2^{MAX_DEPTH})",
                commitment.leaf_count
            ));
        }
        let bytes = u128::from(commitment.leaf_count) * LEAF_SIZE as u128;
        if bytes > u128::from(deal.capacity_bytes) {
            return refuse(format!(
                "{} leaves ({bytes} bytes) exceed deal {id}'s capacity of {} bytes",
                commitment.leaf_count, deal.capacity_bytes
            ));
        }
        let state = self.commitments(id).await?;
        let latest = state.latest().map_or(0, |c| c.version);
        if commitment.version <= latest {
            return refuse(format!(
                "commitment version {} of deal {id} is not above its latest version {latest}",
                commitment.version
            ));
        }
        let now = self.now().await?;
        let clock = self.clock();
        let current = clock.period_at(now);
        let from = (current + 1).max(deal.settled_to);
        if from >= deal.end {
            return refuse(format!(
                "deal {id} ends at period {}, before the commitment could take effect at {from}",
                deal.end
            ));
        }
        if let Some((_, next_from)) = state.next
            && next_from > clock.first_open_period(now)
            && next_from <= current
        {
            return refuse(format!(
                "deal {id}'s previous commitment may still be proven for period {}; commit again \
                 after unix time {}",
                next_from - 1,
                clock.proof_deadline(next_from - 1)
            ));
        }
        let digest = eip712::commitment_digest(&self.deployment, id, commitment);
        let missing = |party: &str, expected| {
            refuse(format!(
                "the {party}'s signature is missing: only the {party} {expected} may send a \
                 commitment without its own signature"
            ))
        };
        match &consumer_signature {
            None if sender == deal.consumer => {}
            None => return missing("consumer", deal.consumer),
            Some(sig) if eip712::recover_signer(&digest, sig) == Some(deal.consumer) => {}
            Some(_) => {
                return refuse(format!(
                    "the consumer's signature is not {}'s over version {} of deal {id} (in this \
                     deployment)",
                    deal.consumer, commitment.version
                ));
            }
        }
        match &provider_signature {
            None if sender == deal.provider => {}
            None => return missing("provider", deal.provider),
            Some(sig) => {
                let signer = eip712::recover_signer(&digest, sig);
                if signer != Some(deal.provider) {
                    // A quote signer may sign for the provider; the listing says who.
                    let quote_signer = self
                        .listing(deal.provider)
                        .await?
                        .and_then(|l| l.terms.quote_signer);
                    if quote_signer.is_none() || signer != quote_signer {
                        return refuse(format!(
                            "the provider's signature is neither {}'s nor its quote signer's \
                             over version {} of deal {id} (in this deployment)",
                            deal.provider, commitment.version
                        ));
                    }
                }
            }
        }
        let receipt = self
            .rpc
            .send(
                &action,
                self.proofs
                    .commit(
                        id,
                        commitment.root,
                        commitment.leaf_count,
                        commitment.version,
                        consumer_signature.unwrap_or_default(),
                        provider_signature.unwrap_or_default(),
                    )
                    .into_transaction_request(),
            )
            .await?;
        let committed: P::DealCommitted =
            event(&receipt, self.deployment.contracts.proofs, &action)?;
        Ok(committed.fromPeriod.to_u64())
    }

    /// `period`'s seed: fixed, or readable from its anchor block; `None` if neither yet.
    pub async fn seed(&self, period: u64) -> Result<Option<B256>, ChainError> {
        let seed = self
            .rpc
            .call("read a seed", || async move {
                self.proofs.seedOf(U256::from(period)).call().await
            })
            .await?;
        Ok((!seed.is_zero()).then_some(seed))
    }

    /// The block `period`'s seed is anchored to (`None` if not anchored).
    pub async fn seed_anchor(&self, period: u64) -> Result<Option<u64>, ChainError> {
        let anchor = self
            .rpc
            .call("read a seed anchor", || async move {
                self.proofs.seedAnchorOf(U256::from(period)).call().await
            })
            .await?;
        Ok((!anchor.is_zero()).then(|| anchor.saturating_to::<u64>()))
    }

    /// Anchors `period`'s seed to a block `SEED_LOOKAHEAD_BLOCKS` ahead;
    /// returns that block. Anyone may, once the period has started.
    pub async fn anchor_seed(&self, period: u64) -> Result<u64, ChainError> {
        let action = format!("anchor the seed of period {period}");
        self.sender(&action)?;
        let now = self.now().await?;
        let clock = self.clock();
        let current = clock.period_at(now);
        if period > current {
            return refuse(format!(
                "period {period} has not started (the current one is {current})"
            ));
        }
        if period < clock.first_open_period(now) {
            return refuse(format!(
                "proofs for period {period} closed at unix time {}",
                clock.proof_deadline(period)
            ));
        }
        if let Some(anchor) = self.seed_anchor(period).await? {
            let (head, _) = self.head().await?;
            let fixed = self.seed(period).await?.is_some();
            if fixed || head < anchor + 256 {
                return refuse(format!(
                    "period {period}'s seed is already anchored to block {anchor}; wait for that \
                     block (the chain is at {head})"
                ));
            }
        }
        let receipt = self
            .rpc
            .send(
                &action,
                self.proofs
                    .anchorSeed(U256::from(period))
                    .into_transaction_request(),
            )
            .await?;
        let anchored: P::SeedAnchored = event(&receipt, self.deployment.contracts.proofs, &action)?;
        Ok(anchored.anchorBlock.saturating_to::<u64>())
    }

    /// The leaves deal `id` must prove in `period`, computed here from the
    /// period's seed and the commitment in effect (the contract derives the
    /// same; its `challengeIndexes` view is the cross-check in the tests).
    pub async fn challenged_leaves(&self, id: DealId, period: u64) -> Result<Vec<u64>, ChainError> {
        let seed = self.seed(period).await?.ok_or_else(|| {
            ChainError::Refused(format!(
                "period {period}'s seed is not readable yet: anchor it (`anchor_seed`) and wait \
                 {} blocks",
                self.deployment.parameters.seed_lookahead_blocks
            ))
        })?;
        let commitment = self.commitments(id).await?.at(period).ok_or_else(|| {
            ChainError::Refused(format!(
                "deal {id} has no commitment in effect in period {period}"
            ))
        })?;
        Ok(challenge_indexes(
            seed,
            id,
            self.challenges(),
            commitment.leaf_count,
        ))
    }

    /// Submits proofs for `period` for many deals in one transaction;
    /// returns how many deals were newly marked proven (deals already
    /// proven are skipped by the contract). Every proof is checked here
    /// first against the commitment in effect and the challenged leaves.
    pub async fn submit_proofs(
        &self,
        period: u64,
        proofs: &[DealProof],
    ) -> Result<u64, ChainError> {
        let action = format!("submit proofs for period {period}");
        self.sender(&action)?;
        if proofs.is_empty() {
            return refuse("no proofs to submit".into());
        }
        let now = self.now().await?;
        let clock = self.clock();
        if period < clock.first_open_period(now) {
            return refuse(format!(
                "proofs for period {period} closed at unix time {}",
                clock.proof_deadline(period)
            ));
        }
        if period > clock.period_at(now) {
            return refuse(format!("period {period} has not started yet"));
        }
        for proof in proofs {
            let deal = self.require_deal(proof.deal_id).await?;
            if deal.state == DealState::None {
                return refuse(format!("there is no deal {}", proof.deal_id));
            }
            let commitment = self
                .commitments(proof.deal_id)
                .await?
                .at(period)
                .ok_or_else(|| {
                    ChainError::Refused(format!(
                        "deal {} has no commitment in effect in period {period}",
                        proof.deal_id
                    ))
                })?;
            let indexes = self.challenged_leaves(proof.deal_id, period).await?;
            proof.verify(&commitment, &indexes)?;
        }
        let batch: Vec<P::DealProof> = proofs.iter().map(DealProof::to_call).collect();
        let receipt = self
            .rpc
            .send(
                &action,
                self.proofs
                    .submitProofs(U256::from(period), batch)
                    .into_transaction_request(),
            )
            .await?;
        let submitted: P::ProofsSubmitted =
            event(&receipt, self.deployment.contracts.proofs, &action)?;
        Ok(submitted.dealIds.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_stay_inside_the_tree_and_vary() {
        let seed = B256::repeat_byte(9);
        let indexes = challenge_indexes(seed, U256::from(1), 16, 1000);
        assert_eq!(indexes.len(), 16);
        assert!(indexes.iter().all(|&i| i < 1000));
        assert_ne!(indexes, challenge_indexes(seed, U256::from(2), 16, 1000));
        assert_eq!(challenge_indexes(seed, U256::from(1), 4, 1), vec![0; 4]);
        // keccak256(abi.encode(seed, 1, 0)) computed independently of this code.
        let hash = keccak256(
            [
                seed.as_slice(),
                &U256::from(1).to_be_bytes::<32>(),
                &[0u8; 32],
            ]
            .concat(),
        );
        assert_eq!(
            indexes[0],
            (U256::from_be_bytes(hash.0) % U256::from(1000)).to::<u64>()
        );
    }

    #[test]
    fn deal_proofs_verify_and_catch_a_wrong_index() {
        let pieces: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i + 1; 3000]).collect();
        let trees: Vec<PieceTree> = pieces.iter().map(|p| PieceTree::build(p)).collect();
        let slot_height = 4;
        let roots = trees
            .iter()
            .map(|t| t.slot_root(slot_height).unwrap())
            .collect();
        let tree = DealTree::new(slot_height, roots).unwrap();
        let commitment = Commitment {
            root: tree.root(),
            leaf_count: tree.leaf_count(),
            version: 1,
        };
        let indexes = challenge_indexes(B256::repeat_byte(3), U256::from(7), 4, tree.leaf_count());
        let proof = DealProof::build(U256::from(7), &tree, &indexes, |slot| {
            Ok((&trees[slot as usize], pieces[slot as usize].as_slice()))
        })
        .unwrap();
        proof.verify(&commitment, &indexes).unwrap();
        let call = proof.to_call();
        assert_eq!(call.leaves.len(), 4 * LEAF_SIZE);
        assert_eq!(
            call.siblings.len(),
            4 * commitment::depth(tree.leaf_count()).unwrap() as usize
        );
        let mut shifted = indexes.clone();
        shifted[0] = (shifted[0] + 1) % tree.leaf_count();
        assert!(proof.verify(&commitment, &shifted).is_err());
    }
}
