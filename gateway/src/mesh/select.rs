//! Which of the user's deals take the pieces of a segment: the `placement`
//! crate's [`select_providers`] over the deals with room, best effort.
//!
//! The directory offers only live deals with room for the piece, one per
//! provider, healthy providers only; this picks among them by spread and
//! score. Fewer candidates than pieces is not an error here: the caller
//! decides whether what can be placed meets the success threshold.

use dbytes_placement::{Candidate, Constraints, select_providers};

/// The providers chosen for a segment, by their index in the candidates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Choice {
    /// One provider per piece, as many as there are candidates up to the
    /// pieces asked for.
    pub pieces: Vec<usize>,
    /// Up to `spares` more, to retry failed pieces on.
    pub spares: Vec<usize>,
}

/// Chooses up to `pieces` distinct providers for pieces of
/// `piece_size_bytes` and up to `spares` more.
pub(crate) fn choose(
    candidates: &[Candidate],
    piece_size_bytes: u64,
    pieces: usize,
    spares: usize,
) -> Choice {
    let constraints = Constraints::new(piece_size_bytes);
    let eligible = candidates
        .iter()
        .filter(|candidate| constraints.violations(candidate).is_empty())
        .count();
    let Ok(selection) = select_providers(
        candidates,
        &constraints,
        pieces.min(eligible),
        spares,
        &mut rand::thread_rng(),
    ) else {
        // Unreachable with at most `eligible` pieces asked; place nothing
        // rather than fail the whole gateway.
        return Choice::default();
    };
    let index_of = |id: &String| candidates.iter().position(|candidate| &candidate.id == id);
    Choice {
        pieces: selection.pieces.iter().filter_map(index_of).collect(),
        spares: selection.spares.iter().filter_map(index_of).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str, region: &str, free_bytes: u64) -> Candidate {
        Candidate {
            id: id.to_owned(),
            operator: None,
            region: region.to_owned(),
            free_bytes,
            price_per_gib_month: 1,
            latency_ms: Some(5.0),
            throughput_mbps: None,
            proof_score: 1.0,
            proofs_made: 0,
            audits_failed: 0,
        }
    }

    #[test]
    fn picks_distinct_providers_across_regions_and_spares() {
        let candidates = [
            candidate("a", "EU", 1 << 20),
            candidate("b", "EU", 1 << 20),
            candidate("c", "US", 1 << 20),
            candidate("d", "AS", 1 << 20),
        ];
        let choice = choose(&candidates, 1000, 3, 1);
        assert_eq!(choice.pieces.len(), 3);
        assert_eq!(choice.spares.len(), 1);
        let mut all: Vec<usize> = choice
            .pieces
            .iter()
            .chain(&choice.spares)
            .copied()
            .collect();
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3]);
        // The three pieces span the three regions.
        let mut regions: Vec<&str> = choice
            .pieces
            .iter()
            .map(|&index| candidates[index].region.as_str())
            .collect();
        regions.sort();
        assert_eq!(regions, vec!["AS", "EU", "US"]);
    }

    #[test]
    fn too_few_candidates_give_fewer_picks() {
        let candidates = [candidate("a", "EU", 1 << 20), candidate("b", "US", 10)];
        let choice = choose(&candidates, 1000, 3, 2);
        assert_eq!(choice.pieces, vec![0], "b has no room for the piece");
        assert!(choice.spares.is_empty());
        assert_eq!(choose(&[], 1000, 3, 2), Choice::default());
    }
}
