//! Deal commitments: co-signed with each provider, posted on chain.
//!
//! A deal needs a new commitment when its slots in the book changed since
//! the last one (a piece stored or deleted). One round builds, for each
//! such deal, the commitment over its slots in order with the next
//! version, asks the provider to sign it (it checks it holds exactly those
//! pieces and they make that root), and posts it with the consumer's
//! wallet as the sender. A deal gets at most one commitment per period: a
//! commitment takes effect at the next period boundary anyway.

use alloy_primitives::{Bytes, U256};
use dbytes_ledger::book::{DealPieces, PostedCommitment};
use dbytes_ledger::chain::Commitment as ChainCommitment;
use dbytes_mesh::client::ClientError;
use dbytes_mesh::commitment::{Commitment, CommitmentProblem, PieceSlot};
use dbytes_mesh::deal::DealId;
use dbytes_mesh::wire::Refusal;

use super::{MeshPieceStore, MeshStoreError, blocking, lock};

/// What one commitment round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// Commitments posted: the deal and what was committed.
    pub posted: Vec<(U256, ChainCommitment)>,
    /// Deals that changed but were committed this period already.
    pub waiting: Vec<U256>,
    /// Deals whose commitment failed, and why (retried next round).
    pub failed: Vec<(U256, String)>,
}

impl MeshPieceStore {
    /// One commitment round: commits every deal whose pieces changed since
    /// its last commitment and that was not committed this period yet.
    /// Failures are reported per deal and retried next round; the round
    /// itself fails only if the chain or the book cannot be read.
    pub async fn commit_due(&self) -> Result<CommitReport, MeshStoreError> {
        let inner = &self.inner;
        let _one = inner.committing.lock().await;
        let current = inner.chain.current_period().await?;
        let book = inner.book.clone();
        let deals = blocking(move || book.all_deal_pieces()).await?;
        let mut report = CommitReport::default();
        for deal in deals {
            if !deal.needs_commitment() || deal.pieces == 0 {
                // An empty deal keeps its last commitment: a commitment
                // lists at least one piece.
                continue;
            }
            if deal
                .committed
                .is_some_and(|posted| posted.period >= current)
            {
                report.waiting.push(deal.deal);
                continue;
            }
            match self.commit_deal(&deal, current).await {
                Ok(commitment) => {
                    inner
                        .metrics
                        .commitments
                        .with_label_values(&["posted"])
                        .inc();
                    report.posted.push((deal.deal, commitment));
                }
                Err(err) => {
                    inner
                        .metrics
                        .commitments
                        .with_label_values(&["failed"])
                        .inc();
                    tracing::warn!(deal = %deal.deal, %err, "committing a deal failed; will retry");
                    report.failed.push((deal.deal, err.to_string()));
                }
            }
        }
        Ok(report)
    }

    /// Builds, co-signs and posts the next commitment of `deal`.
    async fn commit_deal(
        &self,
        deal: &DealPieces,
        current_period: u64,
    ) -> Result<ChainCommitment, MeshStoreError> {
        let inner = &self.inner;
        let id = deal.deal;
        let Some(addr) = lock(&inner.directory)
            .deal(id)
            .map(|entry| entry.addr.clone())
        else {
            return Err(MeshStoreError::Commitment {
                deal: id,
                reason: "the deal is not among the user's running deals".into(),
            });
        };
        // Read the slots after the deal's generation (`deal` was read
        // first): a piece listed in between makes the deal due again.
        let book = inner.book.clone();
        let slots = blocking(move || book.deal_slots(id)).await?;
        let slots: Vec<PieceSlot> = slots.iter().map(PieceSlot::from).collect();
        let on_chain = inner.chain.commitments(id).await?;
        let version = on_chain
            .latest()
            .map_or(0, |latest| latest.version)
            .max(deal.committed.map_or(0, |posted| posted.version))
            + 1;
        let commitment =
            Commitment::over_pieces(DealId(id), version, &slots).map_err(|problem| {
                MeshStoreError::Commitment {
                    deal: id,
                    reason: problem.to_string(),
                }
            })?;
        let signature = match inner.client.sign_commitment(&addr, &commitment).await {
            Ok(signature) => signature,
            Err(ClientError::Refused {
                refusal: Refusal::Commitment(CommitmentProblem::UnlistedPiece(piece)),
                node,
            }) => {
                // The provider holds a piece no deal lists: an upload
                // cancelled after the provider stored it, or one of a
                // failed segment. Delete it unless it is being uploaded.
                let in_flight = lock(&inner.in_flight).contains(&(id, piece));
                let book = inner.book.clone();
                let listed = blocking(move || book.deal_lists(id, &piece)).await?;
                if !in_flight && !listed {
                    let deleted = inner.client.delete_piece(&addr, DealId(id), piece).await;
                    tracing::info!(deal = %id, %piece, ?deleted, "deleted a piece no deal lists");
                }
                return Err(MeshStoreError::Provider(ClientError::Refused {
                    node,
                    refusal: Refusal::Commitment(CommitmentProblem::UnlistedPiece(piece)),
                }));
            }
            Err(err) => return Err(err.into()),
        };
        let posted = ChainCommitment {
            root: commitment.root,
            leaf_count: commitment.leaf_count,
            version,
        };
        inner
            .chain
            .commit(id, &posted, None, Some(Bytes::from(signature)))
            .await?;
        let record = PostedCommitment {
            version,
            root: commitment.root,
            leaf_count: commitment.leaf_count,
            generation: deal.generation,
            period: current_period,
        };
        let book = inner.book.clone();
        blocking(move || book.record_deal_commitment(id, record)).await?;
        tracing::info!(deal = %id, version, root = %commitment.root, pieces = slots.len(), "deal committed");
        Ok(posted)
    }
}
