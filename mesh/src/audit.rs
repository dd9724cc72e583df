//! Checking a provider's audit answers against the bytes a consumer sent.
//!
//! Right after an upload the gateway asks for K random leaves with their
//! proofs and checks that each proof leads to the root the provider
//! reported and that each leaf is the one it sent: a root computed over data
//! altered in a fraction `f` of its leaves survives with probability
//! `(1-f)^K`. Pure functions; the request itself is
//! [`crate::client::PieceClient::audit`].

use alloy_primitives::B256;
use dbytes_ledger::commitment::{ProofError, leaf_bytes, leaf_count_for, verify};
use rand::Rng;

use crate::wire::{AuditReply, StoredPiece};

/// `count` distinct leaf indexes of a piece of `leaf_count` leaves, drawn
/// uniformly (all of them, in order, if there are no more than `count`).
pub fn pick_leaves<R: Rng + ?Sized>(rng: &mut R, leaf_count: u64, count: usize) -> Vec<u64> {
    let Ok(leaves) = usize::try_from(leaf_count) else {
        return (0..count).map(|_| rng.gen_range(0..leaf_count)).collect();
    };
    if leaves <= count {
        return (0..leaf_count).collect();
    }
    let mut picked: Vec<u64> = rand::seq::index::sample(rng, leaves, count)
        .into_iter()
        .map(|index| index as u64)
        .collect();
    picked.sort_unstable();
    picked
}

/// How an audit answer failed to match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditMismatch {
    /// The audit was answered against another root than the one reported on
    /// upload.
    #[error("the audit answers for another root than the one reported on upload")]
    WrongRoot,
    /// The reported leaf count is not that of the bytes sent.
    #[error("{reported} leaves reported for a piece of {expected}")]
    WrongLeafCount {
        /// Leaves the bytes sent make.
        expected: u64,
        /// Leaves reported.
        reported: u64,
    },
    /// Not one proof per leaf asked for.
    #[error("{got} proofs for {asked} leaves asked for")]
    WrongCount {
        /// Leaves asked for.
        asked: usize,
        /// Proofs received.
        got: usize,
    },
    /// A proof is for another leaf than the one asked for in its place.
    #[error("proof {position} is for leaf {got}, not leaf {asked}")]
    WrongIndex {
        /// The proof's position.
        position: usize,
        /// The leaf asked for there.
        asked: u64,
        /// The leaf the proof is for.
        got: u64,
    },
    /// A proof does not lead to the root.
    #[error("the proof of leaf {index} is invalid: {error}")]
    BadProof {
        /// The leaf.
        index: u64,
        /// Why.
        error: ProofError,
    },
    /// A leaf differs from the bytes sent: the root covers other data.
    #[error("leaf {index} is not the data sent")]
    LeafDiffers {
        /// The leaf.
        index: u64,
    },
}

/// Checks `reply`, the answer to an audit of leaves `asked`, against the
/// piece's `bytes` and what the provider reported on storing it.
pub fn check_audit(
    bytes: &[u8],
    stored: &StoredPiece,
    asked: &[u64],
    reply: &AuditReply,
) -> Result<(), AuditMismatch> {
    let expected = leaf_count_for(bytes.len() as u64);
    if stored.leaf_count != expected || reply.leaf_count != expected {
        return Err(AuditMismatch::WrongLeafCount {
            expected,
            reported: if stored.leaf_count != expected {
                stored.leaf_count
            } else {
                reply.leaf_count
            },
        });
    }
    check_proofs(stored.root, expected, asked, reply)?;
    for proof in &reply.proofs {
        if proof.leaf != leaf_bytes(bytes, proof.index) {
            return Err(AuditMismatch::LeafDiffers { index: proof.index });
        }
    }
    Ok(())
}

/// Checks that `reply` names `root`, holds one proof per leaf of `asked`
/// in that order, and that each leaf hashes up its path to `root` in a tree
/// of `leaf_count` leaves: what anyone holding only the root can check.
pub fn check_proofs(
    root: B256,
    leaf_count: u64,
    asked: &[u64],
    reply: &AuditReply,
) -> Result<(), AuditMismatch> {
    if reply.root != root {
        return Err(AuditMismatch::WrongRoot);
    }
    if reply.proofs.len() != asked.len() {
        return Err(AuditMismatch::WrongCount {
            asked: asked.len(),
            got: reply.proofs.len(),
        });
    }
    for (position, (proof, &index)) in reply.proofs.iter().zip(asked).enumerate() {
        if proof.index != index {
            return Err(AuditMismatch::WrongIndex {
                position,
                asked: index,
                got: proof.index,
            });
        }
        verify(root, leaf_count, proof)
            .map_err(|error| AuditMismatch::BadProof { index, error })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbytes_ledger::commitment::{LEAF_SIZE, PieceTree};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn answer(piece: &[u8], asked: &[u64]) -> (StoredPiece, AuditReply) {
        let tree = PieceTree::build(piece);
        let stored = StoredPiece {
            length: piece.len() as u64,
            root: tree.root(),
            leaf_count: tree.leaf_count(),
        };
        let reply = AuditReply {
            root: tree.root(),
            leaf_count: tree.leaf_count(),
            proofs: asked
                .iter()
                .map(|&i| tree.prove(piece, i).unwrap())
                .collect(),
        };
        (stored, reply)
    }

    #[test]
    fn picked_leaves_are_distinct_and_in_range() {
        let mut rng = StdRng::seed_from_u64(1);
        let picked = pick_leaves(&mut rng, 1000, 16);
        assert_eq!(picked.len(), 16);
        assert!(picked.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(picked.iter().all(|&index| index < 1000));
        assert_eq!(pick_leaves(&mut rng, 3, 16), vec![0, 1, 2]);
    }

    #[test]
    fn an_honest_answer_passes() {
        let piece: Vec<u8> = (0..10 * LEAF_SIZE + 7).map(|i| i as u8).collect();
        let asked = [0, 5, 10];
        let (stored, reply) = answer(&piece, &asked);
        assert_eq!(check_audit(&piece, &stored, &asked, &reply), Ok(()));
    }

    #[test]
    fn a_root_over_other_data_is_caught() {
        let piece: Vec<u8> = (0..8 * LEAF_SIZE).map(|i| i as u8).collect();
        let mut altered = piece.clone();
        altered[3 * LEAF_SIZE] ^= 1;
        // The provider answers honestly for the data it hashed, which is not
        // the data sent: the altered leaf gives it away.
        let asked = [3];
        let (stored, reply) = answer(&altered, &asked);
        assert_eq!(
            check_audit(&piece, &stored, &asked, &reply),
            Err(AuditMismatch::LeafDiffers { index: 3 })
        );
        // Leaves it did not alter pass.
        let (stored, reply) = answer(&altered, &[2]);
        assert_eq!(check_audit(&piece, &stored, &[2], &reply), Ok(()));
    }

    #[test]
    fn answers_that_do_not_fit_the_question_are_refused() {
        let piece = vec![7u8; 4 * LEAF_SIZE];
        let (stored, reply) = answer(&piece, &[1, 2]);
        assert!(matches!(
            check_audit(&piece, &stored, &[1], &reply),
            Err(AuditMismatch::WrongCount { .. })
        ));
        assert!(matches!(
            check_audit(&piece, &stored, &[2, 1], &reply),
            Err(AuditMismatch::WrongIndex { .. })
        ));
        let mut other_root = reply.clone();
        other_root.root.0[0] ^= 1;
        assert_eq!(
            check_audit(&piece, &stored, &[1, 2], &other_root),
            Err(AuditMismatch::WrongRoot)
        );
        assert!(matches!(
            check_audit(&piece[..LEAF_SIZE], &stored, &[1, 2], &reply),
            Err(AuditMismatch::WrongLeafCount { .. })
        ));
        let mut bad_path = reply.clone();
        bad_path.proofs[0].path[0].0[0] ^= 1;
        assert!(matches!(
            check_audit(&piece, &stored, &[1, 2], &bad_path),
            Err(AuditMismatch::BadProof { index: 1, .. })
        ));
    }
}
