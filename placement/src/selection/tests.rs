use super::*;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const PIECE: u64 = 1 << 20;

fn candidate(id: &str, region: &str, price: u128) -> Candidate {
    Candidate {
        id: id.to_owned(),
        operator: None,
        region: region.to_owned(),
        free_bytes: 10 * PIECE,
        price_per_gib_month: price,
        latency_ms: Some(20.0),
        throughput_mbps: Some(100.0),
        proof_score: 1.0,
        proofs_made: 10,
        audits_failed: 0,
    }
}

fn same_price_in_one_region(ids: &[&str]) -> Vec<Candidate> {
    ids.iter().map(|id| candidate(id, "DE", 10)).collect()
}

fn select(
    candidates: &[Candidate],
    constraints: &Constraints,
    pieces: usize,
    spares: usize,
    seed: u64,
) -> Result<Selection, SelectionError> {
    select_providers(
        candidates,
        constraints,
        pieces,
        spares,
        &mut StdRng::seed_from_u64(seed),
    )
}

fn by_id<'a>(candidates: &'a [Candidate], id: &str) -> &'a Candidate {
    candidates.iter().find(|c| c.id == id).unwrap()
}

/// The first entry of each id, as the selection reads them.
fn distinct(candidates: &[Candidate]) -> Vec<&Candidate> {
    let mut seen = BTreeSet::new();
    candidates
        .iter()
        .filter(|c| seen.insert(c.id.clone()))
        .collect()
}

#[test]
fn too_few_eligible_providers_says_how_many_and_what_excluded_them() {
    let mut candidates: Vec<Candidate> = (0..5)
        .map(|i| candidate(&format!("p{i}"), "DE", 100))
        .collect();
    candidates.push(candidate("cheap", "FR", 10));
    candidates[0].free_bytes = 0;
    let mut constraints = Constraints::new(PIECE);
    constraints.max_price_per_gib_month = Some(50);
    let err = select(&candidates, &constraints, 3, 0, 1).unwrap_err();
    let SelectionError::NotEnoughProviders {
        eligible,
        needed,
        candidates: offered,
        exclusions,
    } = &err;
    assert_eq!((*eligible, *needed, *offered), (1, 3, 6));
    assert_eq!(exclusions.most(), Some((Constraint::PriceCap, 5)));
    assert_eq!(exclusions.free_capacity, 1);
    let message = err.to_string();
    assert!(message.contains("only 1 of 6 providers"), "{message}");
    assert!(
        message.contains("3 distinct providers are needed"),
        "{message}"
    );
    assert!(
        message.contains("the price cap excluded the most (5)"),
        "{message}"
    );
}

#[test]
fn a_new_region_wins_over_a_cheaper_repeated_one() {
    let mut candidates: Vec<Candidate> = (0..4)
        .map(|i| candidate(&format!("de{i}"), "DE", 10))
        .collect();
    candidates.push(candidate("fr", "FR", 1000));
    for seed in 0..20 {
        let selection = select(&candidates, &Constraints::new(PIECE), 2, 0, seed).unwrap();
        assert!(selection.pieces.contains(&"fr".to_owned()), "{selection:?}");
    }
}

#[test]
fn a_new_operator_wins_over_a_repeated_one() {
    let mut candidates: Vec<Candidate> = (0..4)
        .map(|i| candidate(&format!("big{i}"), "DE", 10))
        .collect();
    for c in &mut candidates {
        c.operator = Some("big-hoster".to_owned());
    }
    candidates.push(candidate("solo", "DE", 20));
    for seed in 0..20 {
        let selection = select(&candidates, &Constraints::new(PIECE), 2, 0, seed).unwrap();
        assert!(
            selection.pieces.contains(&"solo".to_owned()),
            "{selection:?}"
        );
    }
}

#[test]
fn spares_follow_the_pieces_and_shrink_when_the_market_is_short() {
    let candidates: Vec<Candidate> = (0..6)
        .map(|i| candidate(&format!("p{i}"), &format!("R{i}"), 10))
        .collect();
    let selection = select(&candidates, &Constraints::new(PIECE), 4, 5, 3).unwrap();
    assert_eq!(selection.pieces.len(), 4);
    assert_eq!(selection.spares.len(), 2);
    let all: BTreeSet<_> = selection.pieces.iter().chain(&selection.spares).collect();
    assert_eq!(all.len(), 6);
}

#[test]
fn load_spreads_over_good_providers_instead_of_flooding_the_cheapest() {
    // One region, twenty operators, prices 10 to 29.
    let candidates: Vec<Candidate> = (0..20u32)
        .map(|i| candidate(&format!("p{i}"), "DE", u128::from(10 + i)))
        .collect();
    let mut rng = StdRng::seed_from_u64(42);
    let mut picks = vec![0u32; candidates.len()];
    let draws = 2000;
    for _ in 0..draws {
        let selection =
            select_providers(&candidates, &Constraints::new(PIECE), 3, 0, &mut rng).unwrap();
        for id in &selection.pieces {
            let index: usize = id[1..].parse().unwrap();
            picks[index] += 1;
        }
    }
    let cheapest = picks[0];
    // Always picking the cheapest would be 2000; power of two choices among
    // about a dozen good providers picks it in about half the segments.
    assert!(
        cheapest < draws * 3 / 4,
        "cheapest in {cheapest} of {draws}"
    );
    // Price still counts: the cheapest is picked more than a mid-priced one,
    // and the dearest (worse than half the best score) never.
    assert!(cheapest > picks[8], "{picks:?}");
    assert_eq!(picks[19], 0, "{picks:?}");
    let used = picks.iter().filter(|&&count| count > 0).count();
    assert!(used >= 8, "only {used} providers used: {picks:?}");
}

#[test]
fn poor_proof_records_and_failed_audits_lose_to_good_ones() {
    let mut candidates = same_price_in_one_region(&["flaky", "audited", "steady", "steady2"]);
    candidates[0].proof_score = 0.6;
    candidates[1].audits_failed = 2;
    for seed in 0..30 {
        let selection = select(&candidates, &Constraints::new(PIECE), 2, 0, seed).unwrap();
        let mut pieces = selection.pieces.clone();
        pieces.sort();
        assert_eq!(pieces, ["steady", "steady2"], "seed {seed}");
    }
}

#[test]
fn slow_providers_lose_to_fast_ones_and_unmeasured_ones_get_tried() {
    let mut candidates = same_price_in_one_region(&["fast", "fast2", "fast3", "slow", "new"]);
    candidates[3].latency_ms = Some(900.0);
    candidates[3].throughput_mbps = Some(2.0);
    candidates[4].latency_ms = None;
    candidates[4].throughput_mbps = None;
    let mut chosen = BTreeSet::new();
    for seed in 0..40 {
        let selection = select(&candidates, &Constraints::new(PIECE), 1, 0, seed).unwrap();
        chosen.insert(selection.pieces[0].clone());
    }
    // An unmeasured provider counts as the median one: here, a fast one.
    assert!(!chosen.contains("slow"), "{chosen:?}");
    assert!(chosen.contains("new"), "{chosen:?}");
}

fn arb_candidate() -> impl Strategy<Value = Candidate> {
    (
        (
            0u8..14,
            0u8..5,
            proptest::option::of(0u8..6),
            0u64..3 * PIECE,
        ),
        (1u128..100, proptest::option::of(0.0f64..500.0)),
        (proptest::option::of(0.0f64..1000.0), 0.0f64..=1.0),
        (0u64..50, 0u64..3),
    )
        .prop_map(
            |(
                (id, region, operator, free_bytes),
                (price_per_gib_month, latency_ms),
                (throughput_mbps, proof_score),
                (proofs_made, audits_failed),
            )| Candidate {
                id: format!("p{id}"),
                operator: operator.map(|o| format!("op{o}")),
                region: format!("R{region}"),
                free_bytes,
                price_per_gib_month,
                latency_ms,
                throughput_mbps,
                proof_score,
                proofs_made,
                audits_failed,
            },
        )
}

fn arb_constraints() -> impl Strategy<Value = Constraints> {
    (
        proptest::option::of(1u128..100),
        0.0f64..0.9,
        0u64..20,
        proptest::collection::btree_set((0u8..14).prop_map(|id| format!("p{id}")), 0..5),
    )
        .prop_map(
            |(max_price_per_gib_month, min_proof_score, min_proofs_made, exclude)| Constraints {
                piece_size_bytes: PIECE,
                max_price_per_gib_month,
                min_proof_score,
                min_proofs_made,
                exclude,
            },
        )
}

/// The eligibility rules, written out again independently of the code.
fn eligible(c: &Candidate, constraints: &Constraints) -> bool {
    !constraints.exclude.contains(&c.id)
        && c.free_bytes >= constraints.piece_size_bytes
        && constraints
            .max_price_per_gib_month
            .is_none_or(|cap| c.price_per_gib_month <= cap)
        && c.proof_score >= constraints.min_proof_score
        && c.proofs_made >= constraints.min_proofs_made
}

proptest! {
    #[test]
    fn every_selection_keeps_every_constraint(
        candidates in proptest::collection::vec(arb_candidate(), 0..24),
        constraints in arb_constraints(),
        pieces in 1usize..8,
        spares in 0usize..4,
        seed: u64,
    ) {
        let distinct_candidates = distinct(&candidates);
        let eligible_ids: Vec<&Candidate> = distinct_candidates
            .iter()
            .copied()
            .filter(|c| eligible(c, &constraints))
            .collect();
        let result = select(&candidates, &constraints, pieces, spares, seed);
        // Determinism: the same seed, the same answer.
        prop_assert_eq!(&result, &select(&candidates, &constraints, pieces, spares, seed));
        match result {
            Err(SelectionError::NotEnoughProviders { eligible: count, needed, candidates: offered, .. }) => {
                prop_assert!(eligible_ids.len() < pieces);
                prop_assert_eq!(count, eligible_ids.len());
                prop_assert_eq!(needed, pieces);
                prop_assert_eq!(offered, distinct_candidates.len());
            }
            Ok(selection) => {
                prop_assert!(eligible_ids.len() >= pieces);
                prop_assert_eq!(selection.pieces.len(), pieces);
                prop_assert_eq!(
                    selection.spares.len(),
                    spares.min(eligible_ids.len() - pieces)
                );
                let chosen: Vec<&String> =
                    selection.pieces.iter().chain(&selection.spares).collect();
                // Distinct providers.
                let unique: BTreeSet<&String> = chosen.iter().copied().collect();
                prop_assert_eq!(unique.len(), chosen.len());
                for id in &chosen {
                    // The first entry of an id is the one the selection reads.
                    let c = distinct_candidates.iter().find(|c| &&c.id == id).unwrap();
                    prop_assert!(!constraints.exclude.contains(&c.id), "excluded {}", c.id);
                    prop_assert!(c.free_bytes >= PIECE, "no room on {}", c.id);
                    prop_assert!(
                        constraints.max_price_per_gib_month
                            .is_none_or(|cap| c.price_per_gib_month <= cap),
                        "{} above the price cap", c.id
                    );
                    prop_assert!(
                        c.proof_score >= constraints.min_proof_score
                            && c.proofs_made >= constraints.min_proofs_made,
                        "{} below the proof record", c.id
                    );
                }
                // Region spread is as wide as the eligible market allows.
                let regions_available: BTreeSet<&str> =
                    eligible_ids.iter().map(|c| c.region.as_str()).collect();
                let regions_used: BTreeSet<&str> = selection
                    .pieces
                    .iter()
                    .map(|id| by_id(&candidates, id).region.as_str())
                    .collect();
                prop_assert_eq!(regions_used.len(), pieces.min(regions_available.len()));
            }
        }
    }

    #[test]
    fn within_one_region_operator_spread_is_as_wide_as_possible(
        mut candidates in proptest::collection::vec(arb_candidate(), 1..24),
        pieces in 1usize..8,
        seed: u64,
    ) {
        for c in &mut candidates {
            c.region = "DE".to_owned();
        }
        let constraints = Constraints::new(0);
        let pool = distinct(&candidates);
        prop_assume!(pool.len() >= pieces);
        let operator = |c: &Candidate| c.operator.clone().unwrap_or_else(|| c.id.clone());
        let available: BTreeSet<String> = pool.iter().map(|c| operator(c)).collect();
        let selection = select(&candidates, &constraints, pieces, 0, seed).unwrap();
        let used: BTreeSet<String> = selection
            .pieces
            .iter()
            .map(|id| operator(by_id(&candidates, id)))
            .collect();
        prop_assert_eq!(used.len(), pieces.min(available.len()));
    }
}
