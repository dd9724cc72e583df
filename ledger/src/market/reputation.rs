//! A provider's proof record as a score that forgets old history.
//!
//! A beta reputation with a forgetting factor, as Storj's satellite scores
//! audits (`satellite/reputation`): each proven deal-period is a success,
//! each missed one a failure, and every new outcome first discounts all
//! earlier ones by λ:
//!
//! ```text
//! success: α ← λα + 1, β ← λβ        failure: α ← λα, β ← λβ + 1
//! score = α / (α + β)
//! ```
//!
//! With λ = 0.95 an outcome's weight halves after about 14 newer ones, so a
//! provider that recovers is forgiven within a few dozen proofs, while one
//! miss among many proofs barely moves the score. A new provider starts at
//! α = 1, β = 0 (score 1, Storj's initial values); the counts beside the
//! score tell a new provider from a proven one.

use serde::{Deserialize, Serialize};

/// Weight kept by earlier outcomes at each new one (Storj's default).
pub const FORGETTING_FACTOR: f64 = 0.95;

/// A forgetting beta reputation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reputation {
    /// Discounted successes (plus the prior).
    pub alpha: f64,
    /// Discounted failures.
    pub beta: f64,
}

impl Default for Reputation {
    fn default() -> Self {
        Reputation {
            alpha: 1.0,
            beta: 0.0,
        }
    }
}

impl Reputation {
    /// Records one outcome.
    pub fn record(&mut self, proven: bool) {
        self.alpha = FORGETTING_FACTOR * self.alpha + if proven { 1.0 } else { 0.0 };
        self.beta = FORGETTING_FACTOR * self.beta + if proven { 0.0 } else { 1.0 };
    }

    /// The score in `[0, 1]`: the expected chance the next proof arrives.
    pub fn score(&self) -> f64 {
        let total = self.alpha + self.beta;
        if total <= 0.0 {
            1.0
        } else {
            self.alpha / total
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_lower_the_score_and_are_forgotten() {
        let mut r = Reputation::default();
        assert_eq!(r.score(), 1.0);
        for _ in 0..3 {
            r.record(false);
        }
        let after_misses = r.score();
        assert!(after_misses < 0.4, "{after_misses}");
        for _ in 0..60 {
            r.record(true);
        }
        assert!(r.score() > 0.95, "{}", r.score());
        // One miss after a long run of proofs costs little.
        r.record(false);
        assert!(r.score() > 0.9, "{}", r.score());
    }

    #[test]
    fn old_history_weighs_less_than_new() {
        // Same outcomes, opposite order: the recent ones decide.
        let mut bad_then_good = Reputation::default();
        let mut good_then_bad = Reputation::default();
        for i in 0..20 {
            bad_then_good.record(i >= 10);
            good_then_bad.record(i < 10);
        }
        assert!(bad_then_good.score() > good_then_bad.score());
    }
}
