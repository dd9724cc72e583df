//! Which of the user's deals take the pieces of a segment.
//!
//! One function, [`choose`], decides: distinct providers, healthy ones
//! first, spread over regions, then the fastest and cheapest. It stands in
//! for the `placement` crate's provider selection until that lands, and is
//! the one place to switch over.

use std::collections::BTreeSet;

/// A provider that could take a piece, as the directory measured it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    /// The provider's key (its node id); unique per provider.
    pub id: String,
    /// Its region code.
    pub region: String,
    /// Its price per GiB-month, in token base units.
    pub price_per_gib_month: u128,
    /// Measured latency of its recent requests, if any.
    pub latency_ms: Option<f64>,
    /// Its recent failed requests (reset by a success).
    pub failures: u32,
}

/// The providers chosen for a segment, by their index in the candidates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Choice {
    /// One provider per piece, as many as there are candidates up to the
    /// pieces asked for.
    pub pieces: Vec<usize>,
    /// Up to `spares` more, to retry failed pieces on.
    pub spares: Vec<usize>,
}

/// Chooses up to `pieces` distinct providers for the pieces and up to
/// `spares` more. Fewer candidates than `pieces` give fewer picks (the
/// caller decides whether that meets the success threshold); a duplicate
/// id counts once.
pub(crate) fn choose(candidates: &[Candidate], pieces: usize, spares: usize) -> Choice {
    let mut seen = BTreeSet::new();
    let mut order: Vec<usize> = (0..candidates.len())
        .filter(|&index| seen.insert(candidates[index].id.as_str()))
        .collect();
    // Unmeasured providers rank as if they answered in 50 ms: new ones get
    // traffic, slow ones lose it.
    let latency = |candidate: &Candidate| candidate.latency_ms.unwrap_or(50.0);
    order.sort_by(|&a, &b| {
        let (a, b) = (&candidates[a], &candidates[b]);
        a.failures
            .cmp(&b.failures)
            .then(latency(a).total_cmp(&latency(b)))
            .then(a.price_per_gib_month.cmp(&b.price_per_gib_month))
    });
    let wanted = (pieces + spares).min(order.len());
    let mut regions = BTreeSet::new();
    let mut picked = Vec::with_capacity(wanted);
    while picked.len() < wanted {
        // The best remaining one in a new region, else the best remaining one.
        let position = order
            .iter()
            .position(|&index| !regions.contains(candidates[index].region.as_str()))
            .unwrap_or(0);
        let index = order.remove(position);
        regions.insert(candidates[index].region.as_str());
        picked.push(index);
    }
    let spares = picked.split_off(pieces.min(picked.len()));
    Choice {
        pieces: picked,
        spares,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str, region: &str, failures: u32, latency_ms: f64) -> Candidate {
        Candidate {
            id: id.to_owned(),
            region: region.to_owned(),
            price_per_gib_month: 1,
            latency_ms: Some(latency_ms),
            failures,
        }
    }

    #[test]
    fn picks_distinct_healthy_providers_across_regions() {
        let candidates = [
            candidate("a", "EU", 0, 5.0),
            candidate("b", "EU", 0, 1.0),
            candidate("c", "US", 0, 9.0),
            candidate("d", "US", 3, 1.0),
            candidate("b", "AS", 0, 1.0),
        ];
        let choice = choose(&candidates, 2, 1);
        // The fastest (b, EU), then the best in a new region (c, US); the
        // failing one only as the last resort.
        assert_eq!(choice.pieces, vec![1, 2]);
        assert_eq!(choice.spares, vec![0]);
        let all = choose(&candidates, 3, 5);
        assert_eq!(all.pieces.len() + all.spares.len(), 4);
        assert_eq!(all.spares.last(), Some(&3));
    }

    #[test]
    fn too_few_candidates_give_fewer_picks() {
        let candidates = [candidate("a", "EU", 0, 5.0)];
        let choice = choose(&candidates, 3, 2);
        assert_eq!(choice.pieces, vec![0]);
        assert!(choice.spares.is_empty());
        assert_eq!(choose(&[], 3, 2), Choice::default());
    }
}
