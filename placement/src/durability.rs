//! How durable a redundancy policy is, and the cheapest policy for a target.
//!
//! # The model
//!
//! A continuous-time Markov chain over the healthy pieces `i` of one segment
//! with policy (k, n, repair threshold r):
//!
//! - every healthy piece is lost independently at rate λ (the provider
//!   leaves, fails or drops it), so `i → i-1` at rate `iλ`;
//! - while fewer than `r` pieces are healthy (`k <= i < r`, the policy's
//!   "repair when fewer than r remain"), a repair is under way and finishes
//!   at rate `μ = 1 / repair_hours`, taking the segment back to `n`;
//! - the segment is lost when `i` reaches `k - 1`.
//!
//! λ comes from the monthly churn `c`, the share of providers gone after a
//! month: `λ = -ln(1 - c)` per month (a month is 1/12 of 365.25 days).
//!
//! # What is computed, and how exactly
//!
//! The chain has a renewal structure that gives the mean time to data loss
//! (MTTDL) in closed form. From `n` the path down to `r - 1` is forced (no
//! repair above the threshold). Below it, each state is a race: the next
//! event is a loss with probability `iλ / (iλ + μ)`, else the repair wins.
//! So one *cycle* (from n until a repair or the loss) ends in loss with
//!
//! ```text
//! q = Π_{i=k}^{r-1} iλ / (iλ + μ)
//! ```
//!
//! and lasts on average `E[D] = Σ_{i=r}^{n} 1/(iλ) + Σ_{i=k}^{r-1} reach_i / (iλ + μ)`,
//! where `reach_i` is the chance of getting down to state i. Cycles are
//! independent, so by Wald's identity `MTTDL = E[D] / q` exactly, and the
//! long-run loss rate is `q / E[D]` per hour. The annual loss probability is
//! then `1 - exp(-year / MTTDL)`: losses of a segment that is kept repaired
//! arrive at that long-run rate (a loss needs about 1/q cycles, so the time to
//! loss is close to exponential whenever loss is rare).
//!
//! Every term is a product or a sum of positive numbers, evaluated in log
//! space (`ln q = -Σ ln_1p(μ / iλ)`), so there is no cancellation: the result
//! has f64 relative precision (about 1e-14) at 11 nines as at 40. The usual
//! alternative, solving the chain's linear system for the MTTDL, loses all
//! digits once the MTTDL exceeds about 1e16 times the event times.
//!
//! Two limits of the model, both documented in `placement/README.md`: a
//! fresh segment's first year is safer than this steady-state figure (it
//! starts with all n pieces), and the repair time is exponential; a repair
//! that always finishes within `repair_hours` loses far less when the repair
//! margin (r - k) is more than one piece, so the model is conservative there.
//! Failures are independent: placement's region and operator spread is what
//! makes that assumption reasonable.
//!
//! # The planner
//!
//! [`plan`] searches every (k, n, r) within bounds for the lowest expansion
//! n/k (then the fewest pieces, then the lowest r) that reaches a target
//! number of nines within a repair budget ([`DEFAULT_MAX_REPAIRS_PER_YEAR`]).
//! Without the budget the answer is always "repair after every lost piece",
//! which is cheap in disk and ruinous in repair traffic.

use crate::policy::{MAX_PIECES, RedundancyPolicy};

/// Hours in a year of 365.25 days.
pub const HOURS_PER_YEAR: f64 = 365.25 * 24.0;

/// Hours in a twelfth of that year.
pub const HOURS_PER_MONTH: f64 = HOURS_PER_YEAR / 12.0;

/// The fewest data pieces the planner considers by default: k = 1 is plain
/// replication, which costs far more than erasure coding for the same nines.
pub const DEFAULT_MIN_DATA_PIECES: u16 = 2;

/// The most pieces the planner considers by default: every piece is another
/// provider to reach on each read and repair, and another deal to keep.
pub const DEFAULT_MAX_TOTAL_PIECES: u16 = 60;

/// The most repairs a year the planner allows a segment by default. Each
/// repair reads k pieces, as much as the segment's data, so 2 a year read
/// the stored data twice a year. Unbounded, the cheapest policy for any
/// target repairs after every lost piece (r = n): dozens of repairs a year,
/// whose traffic costs more than the storage it saves.
pub const DEFAULT_MAX_REPAIRS_PER_YEAR: f64 = 2.0;

/// Why a durability question has no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DurabilityError {
    /// Churn must be a share of providers lost per month in (0, 1).
    #[error(
        "provider churn must be above 0 and below 100% per month (got {monthly_churn}); \
         write it like 5%/month, 40%/year or 0.05"
    )]
    InvalidChurn {
        /// The share given.
        monthly_churn: f64,
    },
    /// A churn that could not be read.
    #[error(
        "cannot read the provider churn {text:?}: write a share with an optional period, \
         like 5%/month, 40%/year or 0.05 (per month)"
    )]
    UnreadableChurn {
        /// What was given.
        text: String,
    },
    /// The repair time must be a positive number of hours.
    #[error("the repair time must be above 0 hours (got {repair_hours})")]
    InvalidRepairHours {
        /// The hours given.
        repair_hours: f64,
    },
    /// The target must be a positive number of nines.
    #[error("the durability target must be above 0 nines (got {nines})")]
    InvalidTarget {
        /// The nines asked for.
        nines: f64,
    },
    /// The repair budget must be a positive number of repairs a year.
    #[error(
        "the most repairs a year must be above 0 (got {max_repairs_per_year}); use \
         infinity for no bound"
    )]
    InvalidRepairBudget {
        /// The bound given.
        max_repairs_per_year: f64,
    },
    /// The bounds on k and n leave no policy to consider.
    #[error(
        "no policy has {min_data_pieces} <= k < n <= {max_total_pieces} (n is at most \
         {MAX_PIECES}); raise the most pieces or lower the fewest data pieces"
    )]
    InvalidBounds {
        /// The fewest data pieces allowed.
        min_data_pieces: u16,
        /// The most pieces allowed.
        max_total_pieces: u16,
    },
    /// No policy within the bounds reaches the target.
    #[error(
        "no policy with at most {max_total_pieces} pieces and {max_repairs_per_year} repairs a \
         year reaches {target_nines} nines under this churn and repair time (the most durable, \
         {best}, reaches {best_nines:.1}); allow more pieces or repairs, repair faster or \
         lower the target"
    )]
    Unreachable {
        /// The nines asked for.
        target_nines: f64,
        /// The most pieces allowed.
        max_total_pieces: u16,
        /// The most repairs a year allowed.
        max_repairs_per_year: f64,
        /// The most durable policy within the bounds.
        best: String,
        /// Its nines.
        best_nines: f64,
    },
}

/// How providers fail and how fast the gateway repairs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureModel {
    monthly_churn: f64,
    repair_hours: f64,
}

impl FailureModel {
    /// Providers lose a share `monthly_churn` of their pieces a month (0.05
    /// for 5 %), and a repair takes `repair_hours` on average.
    pub fn new(monthly_churn: f64, repair_hours: f64) -> Result<Self, DurabilityError> {
        // Written to refuse NaN too.
        if !(monthly_churn > 0.0 && monthly_churn < 1.0) {
            return Err(DurabilityError::InvalidChurn { monthly_churn });
        }
        if !(repair_hours > 0.0 && repair_hours.is_finite()) {
            return Err(DurabilityError::InvalidRepairHours { repair_hours });
        }
        Ok(FailureModel {
            monthly_churn,
            repair_hours,
        })
    }

    /// The share of providers lost per month.
    pub fn monthly_churn(&self) -> f64 {
        self.monthly_churn
    }

    /// The mean time a repair takes.
    pub fn repair_hours(&self) -> f64 {
        self.repair_hours
    }

    /// λ: the rate at which one piece is lost, per hour.
    pub fn piece_loss_rate_per_hour(&self) -> f64 {
        -(-self.monthly_churn).ln_1p() / HOURS_PER_MONTH
    }

    /// The durability of `policy` under this model (see the module docs).
    /// Costs O(n).
    pub fn durability(&self, policy: &RedundancyPolicy) -> Durability {
        durability_of(
            policy.data_pieces(),
            policy.total_pieces(),
            policy.repair_threshold(),
            self,
        )
    }
}

/// How durable a policy is under a [`FailureModel`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Durability {
    ln_annual_loss: f64,
    ln_hours_to_loss: f64,
    repairs_per_year: f64,
}

impl Durability {
    /// The chance of losing a segment in a year (steady state). May round to
    /// 0 beyond about 300 nines; [`Durability::nines`] does not.
    pub fn annual_loss_probability(&self) -> f64 {
        self.ln_annual_loss.exp()
    }

    /// `-log10` of the annual loss probability: 11 means a 1e-11 chance.
    pub fn nines(&self) -> f64 {
        -self.ln_annual_loss / std::f64::consts::LN_10
    }

    /// Mean time to losing the segment, in years (may be infinite when it
    /// exceeds f64).
    pub fn mean_years_to_loss(&self) -> f64 {
        (self.ln_hours_to_loss - HOURS_PER_YEAR.ln()).exp()
    }

    /// Repairs of one segment per year on average; each reads k pieces, as
    /// much as the segment's data.
    pub fn repairs_per_year(&self) -> f64 {
        self.repairs_per_year
    }

    /// Whether this reaches `nines`.
    pub fn meets(&self, nines: f64) -> bool {
        self.nines() >= nines
    }
}

fn durability_of(
    data_pieces: u16,
    total_pieces: u16,
    repair_threshold: u16,
    failures: &FailureModel,
) -> Durability {
    let lambda = failures.piece_loss_rate_per_hour();
    let mu = 1.0 / failures.repair_hours;
    let (k, n, r) = (
        u32::from(data_pieces),
        u32::from(total_pieces),
        u32::from(repair_threshold),
    );
    // The forced walk from n down to r - 1: no repair at or above r.
    let mut cycle_hours: f64 = (r.max(k)..=n).map(|i| 1.0 / (f64::from(i) * lambda)).sum();
    // The race below the threshold, from r - 1 down to k.
    let mut ln_loss_per_cycle = 0.0;
    let mut reach = 1.0;
    for i in (k..r).rev() {
        let failing = f64::from(i) * lambda;
        cycle_hours += reach / (failing + mu);
        let ln_loss_here = -(mu / failing).ln_1p();
        ln_loss_per_cycle += ln_loss_here;
        reach *= ln_loss_here.exp();
    }
    let ln_hours_to_loss = cycle_hours.ln() - ln_loss_per_cycle;
    let ln_losses_per_year = HOURS_PER_YEAR.ln() - ln_hours_to_loss;
    let losses_per_year = ln_losses_per_year.exp();
    // P = 1 - exp(-x). For small x, ln P = ln x + ln((1 - e^-x) / x) and the
    // last term is -x/2 to within x^2/24, so stay in log space where
    // `expm1` would round to 0.
    let ln_annual_loss = if ln_losses_per_year < -20.0 {
        ln_losses_per_year - losses_per_year / 2.0
    } else {
        (-(-losses_per_year).exp_m1()).ln()
    };
    let repairs_per_year = HOURS_PER_YEAR / cycle_hours * (-(ln_loss_per_cycle.exp_m1())).max(0.0);
    Durability {
        ln_annual_loss,
        ln_hours_to_loss,
        repairs_per_year,
    }
}

/// Reads a churn like `5%/month`, `40%/year`, `5%` or `0.05` (per month when
/// no period is given) as a monthly share.
pub fn parse_monthly_churn(text: &str) -> Result<f64, DurabilityError> {
    let unreadable = || DurabilityError::UnreadableChurn {
        text: text.to_owned(),
    };
    let trimmed = text.trim().to_ascii_lowercase();
    let (share, per_year) = match trimmed.split_once('/') {
        None => (trimmed.as_str(), false),
        Some((share, "month" | "mo" | "m")) => (share, false),
        Some((share, "year" | "yr" | "y")) => (share, true),
        Some(_) => return Err(unreadable()),
    };
    let share = share.trim();
    let share = match share.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map_err(|_| unreadable())? / 100.0,
        None => share.parse::<f64>().map_err(|_| unreadable())?,
    };
    if !(share > 0.0 && share < 1.0) {
        return Err(DurabilityError::InvalidChurn {
            monthly_churn: share,
        });
    }
    // Survive a year = survive twelve months.
    Ok(if per_year {
        -((-share).ln_1p() / 12.0).exp_m1()
    } else {
        share
    })
}

/// What the planner is asked for: a durability under a failure model,
/// within bounds on k and n.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DurabilityTarget {
    /// Annual loss probability at most `10^-nines`.
    pub nines: f64,
    /// How providers fail and how fast repair is.
    pub failures: FailureModel,
    /// k at least this.
    pub min_data_pieces: u16,
    /// n at most this (and at most [`MAX_PIECES`]).
    pub max_total_pieces: u16,
    /// Repairs of a segment a year at most this (`f64::INFINITY`: no bound).
    pub max_repairs_per_year: f64,
}

impl DurabilityTarget {
    /// A target with the default bounds ([`DEFAULT_MIN_DATA_PIECES`] <= k,
    /// n <= [`DEFAULT_MAX_TOTAL_PIECES`], at most
    /// [`DEFAULT_MAX_REPAIRS_PER_YEAR`]).
    pub fn new(nines: f64, failures: FailureModel) -> Self {
        DurabilityTarget {
            nines,
            failures,
            min_data_pieces: DEFAULT_MIN_DATA_PIECES,
            max_total_pieces: DEFAULT_MAX_TOTAL_PIECES,
            max_repairs_per_year: DEFAULT_MAX_REPAIRS_PER_YEAR,
        }
    }
}

/// The planner's answer: a policy and how durable it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// The cheapest policy that meets the target.
    pub policy: RedundancyPolicy,
    /// Its durability under the target's failure model.
    pub durability: Durability,
}

/// The cheapest policy meeting `target` within its repair budget: the
/// lowest expansion n/k, then the fewest pieces, then the lowest repair
/// threshold (the fewest repairs, since each one reads a whole segment's
/// worth of pieces).
///
/// Searches every (k, n, r) within the bounds, O(n_max^4) operations: about
/// 2 million for n <= 60, well under a millisecond in release builds.
pub fn plan(target: &DurabilityTarget) -> Result<Plan, DurabilityError> {
    if target.nines.is_nan() || target.nines <= 0.0 {
        return Err(DurabilityError::InvalidTarget {
            nines: target.nines,
        });
    }
    if target.max_repairs_per_year.is_nan() || target.max_repairs_per_year <= 0.0 {
        return Err(DurabilityError::InvalidRepairBudget {
            max_repairs_per_year: target.max_repairs_per_year,
        });
    }
    let min_k = target.min_data_pieces.max(1);
    let max_n = target.max_total_pieces.min(MAX_PIECES);
    if min_k >= max_n {
        return Err(DurabilityError::InvalidBounds {
            min_data_pieces: target.min_data_pieces,
            max_total_pieces: target.max_total_pieces,
        });
    }
    // (k, n, r) of the cheapest so far, and of the most durable within the
    // repair budget.
    let mut cheapest: Option<(u16, u16, u16)> = None;
    let mut most_durable: Option<((u16, u16, u16), f64)> = None;
    for n in min_k + 1..=max_n {
        for k in min_k..n {
            if cheapest.is_some_and(|(best_k, best_n, _)| !cheaper(k, n, best_k, best_n)) {
                continue;
            }
            for r in k..=n {
                let durability = durability_of(k, n, r, &target.failures);
                if durability.repairs_per_year() > target.max_repairs_per_year {
                    continue;
                }
                if most_durable.is_none_or(|(_, nines)| durability.nines() > nines) {
                    most_durable = Some(((k, n, r), durability.nines()));
                }
                if durability.meets(target.nines) {
                    // r ascends: the first r that meets is the lowest.
                    cheapest = Some((k, n, r));
                    break;
                }
            }
        }
    }
    match cheapest {
        Some((k, n, r)) => {
            let policy = policy_with_repair_threshold(k, n, r);
            Ok(Plan {
                policy,
                durability: target.failures.durability(&policy),
            })
        }
        None => {
            let (best, best_nines) = match most_durable {
                Some(((k, n, r), nines)) => (format!("k={k} n={n} repair threshold {r}"), nines),
                None => ("none: every policy repairs more often".to_owned(), 0.0),
            };
            Err(DurabilityError::Unreachable {
                target_nines: target.nines,
                max_total_pieces: max_n,
                max_repairs_per_year: target.max_repairs_per_year,
                best,
                best_nines,
            })
        }
    }
}

/// Whether k/n expands less than best_k/best_n, or as much with fewer pieces.
fn cheaper(k: u16, n: u16, best_k: u16, best_n: u16) -> bool {
    // n/k < best_n/best_k without rounding.
    let (lhs, rhs) = (
        u32::from(n) * u32::from(best_k),
        u32::from(best_n) * u32::from(k),
    );
    lhs < rhs || (lhs == rhs && n < best_n)
}

/// A k-of-n policy repaired below `repair_threshold`, committing uploads at
/// the default success threshold (or at the repair threshold, if higher:
/// an upload must not start out needing repair).
fn policy_with_repair_threshold(k: u16, n: u16, repair_threshold: u16) -> RedundancyPolicy {
    let default_success = n - (n - k) / 4;
    RedundancyPolicy::with_thresholds(
        k,
        n,
        repair_threshold,
        default_success.max(repair_threshold),
    )
    // The planner only builds k < n <= MAX_PIECES and k <= r <= n.
    .expect("planned thresholds are ordered")
}

/// A published scheme to compare a plan with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReferenceScheme {
    /// Who runs it.
    pub name: &'static str,
    /// Its k, n and repair threshold, in this crate's terms.
    pub policy: RedundancyPolicy,
    /// Where the numbers come from, for people.
    pub source: &'static str,
}

/// Storj's 29/80 (repair once 52 or fewer pieces are healthy) and Sia's
/// 10/30 (renterd migrates slabs below 75 % health, i.e. fewer than 25
/// healthy pieces).
pub fn reference_schemes() -> [ReferenceScheme; 2] {
    [
        ReferenceScheme {
            name: "Storj 29/80",
            // Storj repairs at <= 52 healthy, that is below 53.
            policy: RedundancyPolicy::with_thresholds(29, 80, 53, 80)
                .expect("Storj's scheme is a valid policy"),
            source: "RS 29/80/110-52 (storj.io blog 'hot-rodding decentralized storage'; \
                     satellite flag format 29/80/110-52)",
        },
        ReferenceScheme {
            name: "Sia 10/30",
            // Health read as (healthy - k) / (n - k): < 0.75  <=>  healthy < 25.
            policy: RedundancyPolicy::with_thresholds(10, 30, 25, 30)
                .expect("Sia's scheme is a valid policy"),
            source: "renterd DefaultUploadSettings 10-of-30; autopilot.migrationHealthCutoff 0.75",
        },
    ]
}

#[cfg(test)]
mod tests;
