//! Which providers hold the pieces of a segment.
//!
//! [`select_providers`] picks distinct providers for the n pieces of a
//! segment (and a few spares: the gateway uploads to more than it needs and
//! cancels the long tail) among [`Candidate`]s, the providers the user has
//! deals with, under [`Constraints`]:
//!
//! 1. **Eligibility** (hard): not already holding a piece of the segment,
//!    free capacity for a piece, price within the cap, a proof record at
//!    least the minimum. Too few eligible providers is a
//!    [`SelectionError::NotEnoughProviders`] naming the constraint that
//!    excluded the most.
//! 2. **Spread** (first preference): each pick comes from the providers
//!    that add a new region, then a new operator, so n pieces span
//!    `min(n, regions available)` regions: one region's outage or one
//!    operator's mistake costs as few pieces as the market allows.
//! 3. **Score** (second preference): price, measured latency and throughput,
//!    proof score and failed audits (weights on `Candidate::score`).
//! 4. **Load**: within the best spread group, the *good* providers (at
//!    least half the best score) compete by power of two choices: two drawn
//!    at random, the better one wins. The cheapest provider wins whenever it
//!    is drawn, about 2/m of the picks among m good ones, instead of every
//!    pick, so it is not flooded, and poor ones are never picked while good
//!    ones remain.
//!
//! Every random draw comes from the caller's rng, so a seeded rng (e.g.
//! `StdRng::seed_from_u64`) makes a selection reproducible; inputs are read
//! in order, never through a hash map.

use std::collections::BTreeSet;
use std::fmt;

use rand::Rng;

/// A good provider scores at least this share of the best score in its
/// spread group; the others are left out while good ones remain.
pub const GOOD_SCORE_SHARE: f64 = 0.5;

/// A provider that could take a piece, as the caller measured it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The provider's key (its address or node id); unique per provider.
    pub id: String,
    /// Who runs it, when known; unknown counts as its own operator.
    pub operator: Option<String>,
    /// Where it is (a region code such as `DE`).
    pub region: String,
    /// Bytes it can still take under the user's deal.
    pub free_bytes: u64,
    /// Its price per GiB-month, in token base units.
    pub price_per_gib_month: u128,
    /// Measured round trip, if any.
    pub latency_ms: Option<f64>,
    /// Measured upload throughput, if any.
    pub throughput_mbps: Option<f64>,
    /// The market's proof score in [0, 1]: the expected chance its next
    /// storage proof arrives (the ledger's reputation score).
    pub proof_score: f64,
    /// Deal-periods it has proven: tells a new provider from a proven one.
    pub proofs_made: u64,
    /// The gateway's recent off-chain audits it failed.
    pub audits_failed: u64,
}

impl Candidate {
    fn operator_key(&self) -> &str {
        self.operator.as_deref().unwrap_or(&self.id)
    }
}

/// What every chosen provider must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraints {
    /// The size of one piece: a provider needs this much free.
    pub piece_size_bytes: u64,
    /// Refuse providers asking more than this per GiB-month.
    pub max_price_per_gib_month: Option<u128>,
    /// Refuse providers whose proof score is below this.
    pub min_proof_score: f64,
    /// Refuse providers that have proven fewer deal-periods than this
    /// (0 lets new providers in).
    pub min_proofs_made: u64,
    /// Providers already holding a piece of the segment (a repair places
    /// the missing pieces elsewhere).
    pub exclude: BTreeSet<String>,
}

impl Constraints {
    /// Pieces of `piece_size_bytes`, any price, any proof record, nobody
    /// excluded.
    pub fn new(piece_size_bytes: u64) -> Self {
        Constraints {
            piece_size_bytes,
            max_price_per_gib_month: None,
            min_proof_score: 0.0,
            min_proofs_made: 0,
            exclude: BTreeSet::new(),
        }
    }

    /// The constraints `candidate` breaks, if any.
    pub fn violations(&self, candidate: &Candidate) -> Vec<Constraint> {
        let mut broken = Vec::new();
        if self.exclude.contains(&candidate.id) {
            broken.push(Constraint::AlreadyHolding);
        }
        if candidate.free_bytes < self.piece_size_bytes {
            broken.push(Constraint::FreeCapacity);
        }
        if self
            .max_price_per_gib_month
            .is_some_and(|cap| candidate.price_per_gib_month > cap)
        {
            broken.push(Constraint::PriceCap);
        }
        // A NaN score fails the minimum rather than passing it.
        if candidate.proof_score.is_nan()
            || candidate.proof_score < self.min_proof_score
            || candidate.proofs_made < self.min_proofs_made
        {
            broken.push(Constraint::ProofRecord);
        }
        broken
    }
}

/// One of the hard constraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Constraint {
    /// It already holds a piece of the segment.
    AlreadyHolding,
    /// It has less free capacity than a piece.
    FreeCapacity,
    /// It asks more than the price cap.
    PriceCap,
    /// Its proof score or proven periods are below the minimum.
    ProofRecord,
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Constraint::AlreadyHolding => "already holding a piece of the segment",
            Constraint::FreeCapacity => "free capacity below the piece size",
            Constraint::PriceCap => "the price cap",
            Constraint::ProofRecord => "the minimum proof record",
        })
    }
}

impl Constraint {
    fn remedy(self) -> &'static str {
        match self {
            Constraint::AlreadyHolding => "open deals with more providers",
            Constraint::FreeCapacity => "open deals with more capacity",
            Constraint::PriceCap => "raise the price cap or open deals with cheaper providers",
            Constraint::ProofRecord => "lower the minimum proof record",
        }
    }
}

/// How many candidates each constraint excluded (a candidate breaking two
/// counts under both).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusions {
    /// Already holding a piece of the segment.
    pub already_holding: usize,
    /// Too little free capacity.
    pub free_capacity: usize,
    /// Above the price cap.
    pub price_cap: usize,
    /// Below the minimum proof record.
    pub proof_record: usize,
}

impl Exclusions {
    fn count(&mut self, constraint: Constraint) {
        *match constraint {
            Constraint::AlreadyHolding => &mut self.already_holding,
            Constraint::FreeCapacity => &mut self.free_capacity,
            Constraint::PriceCap => &mut self.price_cap,
            Constraint::ProofRecord => &mut self.proof_record,
        } += 1;
    }

    /// The constraint that excluded the most candidates, and how many.
    pub fn most(&self) -> Option<(Constraint, usize)> {
        [
            (Constraint::AlreadyHolding, self.already_holding),
            (Constraint::FreeCapacity, self.free_capacity),
            (Constraint::PriceCap, self.price_cap),
            (Constraint::ProofRecord, self.proof_record),
        ]
        .into_iter()
        .filter(|&(_, count)| count > 0)
        // The first of equals: max_by_key would take the last.
        .fold(None, |best, (constraint, count)| match best {
            Some((_, best_count)) if best_count >= count => best,
            _ => Some((constraint, count)),
        })
    }
}

/// Why no selection could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    /// Fewer eligible providers than pieces.
    #[error("{}", not_enough_message(*.eligible, *.needed, *.candidates, .exclusions))]
    NotEnoughProviders {
        /// Providers meeting every constraint.
        eligible: usize,
        /// Pieces to place.
        needed: usize,
        /// Distinct providers offered.
        candidates: usize,
        /// What excluded the others.
        exclusions: Exclusions,
    },
}

fn not_enough_message(
    eligible: usize,
    needed: usize,
    candidates: usize,
    exclusions: &Exclusions,
) -> String {
    let mut message = format!(
        "only {eligible} of {candidates} providers can take a piece, and {needed} distinct \
         providers are needed"
    );
    match exclusions.most() {
        Some((constraint, count)) => message.push_str(&format!(
            "; {constraint} excluded the most ({count}): {}, or use fewer pieces",
            constraint.remedy()
        )),
        None => message.push_str("; open deals with more providers, or use fewer pieces"),
    }
    message
}

/// The providers chosen for a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// One provider per piece, all distinct.
    pub pieces: Vec<String>,
    /// Extra providers to upload to as well and cancel the slowest;
    /// distinct from each other and from `pieces`, possibly fewer than asked
    /// when the market is short.
    pub spares: Vec<String>,
}

/// Chooses `pieces` distinct providers and up to `spares` more (see the
/// module docs for the rules). Costs O((pieces + spares) × candidates).
///
/// Fails only when fewer than `pieces` candidates are eligible; a duplicate
/// id counts once (its first entry).
pub fn select_providers<R: Rng + ?Sized>(
    candidates: &[Candidate],
    constraints: &Constraints,
    pieces: usize,
    spares: usize,
    rng: &mut R,
) -> Result<Selection, SelectionError> {
    let mut seen = BTreeSet::new();
    let mut exclusions = Exclusions::default();
    let mut eligible = Vec::new();
    for candidate in candidates {
        if !seen.insert(candidate.id.as_str()) {
            continue;
        }
        let broken = constraints.violations(candidate);
        if broken.is_empty() {
            eligible.push(candidate);
        }
        for constraint in broken {
            exclusions.count(constraint);
        }
    }
    if eligible.len() < pieces {
        return Err(SelectionError::NotEnoughProviders {
            eligible: eligible.len(),
            needed: pieces,
            candidates: seen.len(),
            exclusions,
        });
    }
    let scores = scores(&eligible);
    let wanted = (pieces + spares).min(eligible.len());
    let mut remaining: Vec<usize> = (0..eligible.len()).collect();
    let mut regions = BTreeSet::new();
    let mut operators = BTreeSet::new();
    let mut chosen = Vec::with_capacity(wanted);
    for _ in 0..wanted {
        let spread = |&index: &usize| {
            let candidate = eligible[index];
            (
                regions.contains(candidate.region.as_str()),
                operators.contains(candidate.operator_key()),
            )
        };
        // `remaining` is never empty here: wanted <= eligible.len().
        let Some(best_spread) = remaining.iter().map(spread).min() else {
            break;
        };
        let group: Vec<usize> = remaining
            .iter()
            .copied()
            .filter(|index| spread(index) == best_spread)
            .collect();
        let best_score = group.iter().map(|&index| scores[index]).fold(0.0, f64::max);
        let good: Vec<usize> = group
            .iter()
            .copied()
            .filter(|&index| scores[index] >= GOOD_SCORE_SHARE * best_score)
            .collect();
        // Scores are finite and non-negative, so `good` holds the best of the
        // group; fall back to the whole group rather than trust that.
        let good = if good.is_empty() { group } else { good };
        let pick = power_of_two_choices(&good, &scores, rng);
        remaining.retain(|&index| index != pick);
        let candidate = eligible[pick];
        regions.insert(candidate.region.as_str());
        operators.insert(candidate.operator_key());
        chosen.push(candidate.id.clone());
    }
    let spares = chosen.split_off(pieces.min(chosen.len()));
    Ok(Selection {
        pieces: chosen,
        spares,
    })
}

/// Two distinct members drawn uniformly; the higher score wins (the first
/// drawn on a tie). `good` is never empty (a group holds at least one
/// remaining candidate).
fn power_of_two_choices<R: Rng + ?Sized>(good: &[usize], scores: &[f64], rng: &mut R) -> usize {
    if good.len() < 2 {
        return good[0];
    }
    let first = rng.gen_range(0..good.len());
    // A second draw among the others: distinct from the first.
    let second = (first + rng.gen_range(1..good.len())) % good.len();
    let (first, second) = (good[first], good[second]);
    if scores[second] > scores[first] {
        second
    } else {
        first
    }
}

/// Added to latencies before comparing them, so 1 ms and 2 ms count as
/// about the same while 20 ms and 200 ms do not.
const LATENCY_FLOOR_MS: f64 = 10.0;

/// Added to throughputs before comparing them.
const THROUGHPUT_FLOOR_MBPS: f64 = 1.0;

impl Candidate {
    /// The provider's score against the best measurements among `peers`, in
    /// (0, 1]; higher is better. The product of:
    ///
    /// - price: cheapest price / its price (so twice the price halves it);
    /// - latency and throughput, each relative to the best peer and counted
    ///   at half weight (square root): measurements are noisy and a piece is
    ///   uploaded once; a provider without measurements counts as the
    ///   median peer, so new providers get tried;
    /// - proof score to the fourth power (0.9 costs a third), halved per
    ///   failed audit: a provider that may lose the piece costs a repair.
    fn score(&self, peers: &PeerFigures) -> f64 {
        let price = (peers.cheapest + 1.0) / (self.price_per_gib_month as f64 + 1.0);
        let latency = measured(self.latency_ms).unwrap_or(peers.median_latency_ms);
        let latency = (peers.best_latency_ms + LATENCY_FLOOR_MS) / (latency + LATENCY_FLOOR_MS);
        let throughput = measured(self.throughput_mbps).unwrap_or(peers.median_throughput_mbps);
        let throughput = (throughput + THROUGHPUT_FLOOR_MBPS)
            / (peers.best_throughput_mbps + THROUGHPUT_FLOOR_MBPS);
        let proof = self.proof_score.clamp(0.0, 1.0).powi(4);
        let audits = 0.5f64.powi(i32::try_from(self.audits_failed.min(64)).unwrap_or(64));
        price * latency.sqrt() * throughput.sqrt() * proof * audits
    }
}

/// A measurement, if it is a usable number.
fn measured(value: Option<f64>) -> Option<f64> {
    value.filter(|v| v.is_finite() && *v >= 0.0)
}

/// The figures a candidate is scored against.
struct PeerFigures {
    cheapest: f64,
    best_latency_ms: f64,
    median_latency_ms: f64,
    best_throughput_mbps: f64,
    median_throughput_mbps: f64,
}

fn scores(eligible: &[&Candidate]) -> Vec<f64> {
    let cheapest = eligible
        .iter()
        .map(|c| c.price_per_gib_month)
        .min()
        .unwrap_or(0) as f64;
    let (best_latency_ms, median_latency_ms) = best_and_median(
        eligible.iter().filter_map(|c| measured(c.latency_ms)),
        false,
    );
    let (best_throughput_mbps, median_throughput_mbps) = best_and_median(
        eligible.iter().filter_map(|c| measured(c.throughput_mbps)),
        true,
    );
    let peers = PeerFigures {
        cheapest,
        best_latency_ms,
        median_latency_ms,
        best_throughput_mbps,
        median_throughput_mbps,
    };
    eligible.iter().map(|c| c.score(&peers)).collect()
}

/// The best (lowest, or highest when `higher_is_better`) and the median of
/// some measurements; (0, 0) when there are none, which makes every
/// candidate equal on that count.
fn best_and_median(values: impl Iterator<Item = f64>, higher_is_better: bool) -> (f64, f64) {
    let mut values: Vec<f64> = values.collect();
    if values.is_empty() {
        return (0.0, 0.0);
    }
    values.sort_by(f64::total_cmp);
    let best = if higher_is_better {
        values[values.len() - 1]
    } else {
        values[0]
    };
    (best, values[values.len() / 2])
}

#[cfg(test)]
mod tests;
