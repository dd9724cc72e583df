use super::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn policy(k: u16, n: u16, r: u16) -> RedundancyPolicy {
    RedundancyPolicy::with_thresholds(k, n, r, n).unwrap()
}

fn failures(monthly_churn: f64, repair_hours: f64) -> FailureModel {
    FailureModel::new(monthly_churn, repair_hours).unwrap()
}

fn hours_to_loss(d: &Durability) -> f64 {
    d.mean_years_to_loss() * HOURS_PER_YEAR
}

/// The mean time to loss from n by solving the chain's linear system
/// (Gaussian elimination): an independent check of the closed form where
/// the system is well conditioned.
fn hours_to_loss_by_linear_solve(k: u16, n: u16, r: u16, model: &FailureModel) -> f64 {
    let lambda = model.piece_loss_rate_per_hour();
    let mu = 1.0 / model.repair_hours();
    let states: Vec<u16> = (k..=n).collect();
    let size = states.len();
    let index = |i: u16| usize::from(i - k);
    // (iλ + μ_i) T_i - iλ T_{i-1} - μ_i T_n = 1, with T_{k-1} = 0.
    let mut a = vec![vec![0.0; size + 1]; size];
    for &i in &states {
        let row = index(i);
        let failing = f64::from(i) * lambda;
        let repairing = if i < r { mu } else { 0.0 };
        a[row][row] += failing + repairing;
        if i > k {
            a[row][index(i - 1)] -= failing;
        }
        a[row][index(n)] -= repairing;
        a[row][size] = 1.0;
    }
    for col in 0..size {
        let pivot = (col..size)
            .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
            .unwrap();
        a.swap(col, pivot);
        let pivot_row = a[col].clone();
        for (row, values) in a.iter_mut().enumerate() {
            if row != col {
                let factor = values[col] / pivot_row[col];
                for (value, pivot) in values.iter_mut().zip(&pivot_row).skip(col) {
                    *value -= factor * pivot;
                }
            }
        }
    }
    a[index(n)][size] / a[index(n)][index(n)]
}

/// Simulates the chain from n pieces; returns the hours until the segment
/// is lost, or None if it survives `horizon_hours`. A loss is restored to n
/// pieces when `restore` is set, and `on_loss` sees every loss time.
fn simulate(
    k: u16,
    n: u16,
    r: u16,
    model: &FailureModel,
    horizon_hours: f64,
    rng: &mut StdRng,
    mut on_loss: impl FnMut(f64) -> bool,
) {
    let lambda = model.piece_loss_rate_per_hour();
    let mu = 1.0 / model.repair_hours();
    let mut healthy = n;
    let mut now = 0.0;
    loop {
        let failing = f64::from(healthy) * lambda;
        let repairing = if healthy < r { mu } else { 0.0 };
        let total = failing + repairing;
        now += -(1.0 - rng.r#gen::<f64>()).ln() / total;
        if now > horizon_hours {
            return;
        }
        if rng.r#gen::<f64>() * total < failing {
            healthy -= 1;
            if healthy < k {
                if !on_loss(now) {
                    return;
                }
                healthy = n;
            }
        } else {
            healthy = n;
        }
    }
}

#[test]
fn closed_form_matches_a_linear_solve_of_the_chain() {
    for (k, n, r, churn, repair) in [
        (3, 6, 5, 0.3, 72.0),
        (2, 4, 4, 0.2, 200.0),
        (4, 6, 6, 0.05, 24.0),
        (5, 9, 7, 0.5, 100.0),
        (3, 5, 3, 0.1, 6.0),
    ] {
        let model = failures(churn, repair);
        let closed = hours_to_loss(&model.durability(&policy(k, n, r)));
        let solved = hours_to_loss_by_linear_solve(k, n, r, &model);
        let relative = (closed - solved).abs() / solved;
        assert!(
            relative < 1e-9,
            "k={k} n={n} r={r}: closed form {closed} h, linear solve {solved} h"
        );
    }
}

#[test]
fn no_repair_loses_after_the_sum_of_the_failure_times() {
    // r = k: nothing is repaired, the segment is lost after n - k + 1 losses.
    let model = failures(0.05, 6.0);
    let lambda = model.piece_loss_rate_per_hour();
    let expected: f64 = (10..=30).map(|i| 1.0 / (f64::from(i) * lambda)).sum();
    let got = hours_to_loss(&model.durability(&policy(10, 30, 10)));
    assert!(
        (got - expected).abs() / expected < 1e-12,
        "{got} vs {expected}"
    );
}

#[test]
fn one_parity_piece_matches_the_textbook_formula_far_beyond_eleven_nines() {
    // n = k + 1 repaired after the first loss is RAID-5:
    // MTTDL = ((2n - 1)λ + μ) / (n (n - 1) λ²), exact for this chain.
    let model = failures(1e-7, 0.01);
    let (lambda, mu) = (model.piece_loss_rate_per_hour(), 1.0 / model.repair_hours());
    let n = 8.0;
    let textbook = ((2.0 * n - 1.0) * lambda + mu) / (n * (n - 1.0) * lambda * lambda);
    let d = model.durability(&policy(7, 8, 8));
    let got = hours_to_loss(&d);
    assert!(
        (got - textbook).abs() / textbook < 1e-10,
        "{got} vs {textbook}"
    );
    let expected_nines = -(HOURS_PER_YEAR / textbook).log10();
    assert!(expected_nines > 15.0, "{expected_nines}");
    assert!(
        (d.nines() - expected_nines).abs() < 1e-9,
        "{} vs {expected_nines}",
        d.nines()
    );
}

#[test]
fn mean_time_to_loss_matches_a_monte_carlo_simulation() {
    // High churn and slow repair, so losses are frequent enough to count. An
    // off-by-one in the repair threshold changes the mean by about 8x here.
    let (k, n, r) = (3, 6, 5);
    let model = failures(0.3, 72.0);
    let predicted = hours_to_loss(&model.durability(&policy(k, n, r)));
    let mut rng = StdRng::seed_from_u64(6);
    let runs = 4000;
    let mut total = 0.0;
    for _ in 0..runs {
        simulate(k, n, r, &model, f64::INFINITY, &mut rng, |t| {
            total += t;
            false
        });
    }
    let measured = total / f64::from(runs);
    // The time to loss is close to exponential: standard error = mean/sqrt(runs),
    // 1.6 % here; allow about four of them.
    let relative = (measured - predicted).abs() / predicted;
    assert!(
        relative < 0.065,
        "simulated {measured:.0} h, model {predicted:.0} h"
    );
}

#[test]
fn annual_loss_probability_matches_a_monte_carlo_simulation() {
    // A segment kept repaired (restored after each loss) for many years: the
    // share of years with a loss is the model's annual loss probability.
    let (k, n, r) = (4, 8, 6);
    let model = failures(0.3, 72.0);
    let predicted = model.durability(&policy(k, n, r)).annual_loss_probability();
    assert!(
        (0.05..0.5).contains(&predicted),
        "choose parameters with frequent loss ({predicted})"
    );
    let years = 20_000u32;
    let mut years_with_loss = vec![false; years as usize];
    let mut rng = StdRng::seed_from_u64(7);
    simulate(
        k,
        n,
        r,
        &model,
        f64::from(years) * HOURS_PER_YEAR,
        &mut rng,
        |t| {
            years_with_loss[(t / HOURS_PER_YEAR) as usize] = true;
            true
        },
    );
    let measured = years_with_loss.iter().filter(|&&lost| lost).count() as f64 / f64::from(years);
    let standard_error = (predicted * (1.0 - predicted) / f64::from(years)).sqrt();
    assert!(
        (measured - predicted).abs() < 4.0 * standard_error,
        "simulated {measured:.4}, model {predicted:.4} (±{standard_error:.4})"
    );
}

#[test]
fn published_schemes_and_the_default_policy_have_the_expected_order() {
    let model = failures(0.05, 6.0);
    let [storj, sia] = reference_schemes();
    let storj = model.durability(&storj.policy);
    let sia = model.durability(&sia.policy);
    let default = model.durability(&RedundancyPolicy::new(4, 6).unwrap());
    // Storj's 51 parity pieces and Sia's 20 are far beyond 11 nines; the
    // gateway's small default is not.
    assert!(storj.nines() > 11.0 && sia.nines() > 11.0);
    assert!(default.nines() < 11.0, "{}", default.nines());
    assert!(storj.repairs_per_year() > 0.0 && storj.repairs_per_year() < 10.0);
}

/// Whether `policy` meets the target's nines and repair budget.
fn acceptable(target: &DurabilityTarget, policy: &RedundancyPolicy) -> bool {
    let durability = target.failures.durability(policy);
    durability.meets(target.nines) && durability.repairs_per_year() <= target.max_repairs_per_year
}

#[test]
fn the_planner_finds_the_cheapest_policy_meeting_the_target() {
    for max_repairs_per_year in [DEFAULT_MAX_REPAIRS_PER_YEAR, 1.0, f64::INFINITY] {
        let mut target = DurabilityTarget::new(11.0, failures(0.05, 6.0));
        target.max_total_pieces = 40;
        target.max_repairs_per_year = max_repairs_per_year;
        let plan = plan(&target).unwrap();
        let p = plan.policy;
        assert!(acceptable(&target, &p), "{p:?}");
        assert!(p.data_pieces() >= 2 && p.total_pieces() <= 40);
        // A lower repair threshold would miss the target.
        if p.repair_threshold() > p.data_pieces() {
            let lower = policy(p.data_pieces(), p.total_pieces(), p.repair_threshold() - 1);
            assert!(!acceptable(&target, &lower));
        }
        // No policy that expands less, whatever its repair threshold, meets it.
        for n in 3..=40u16 {
            for k in 2..n {
                if u32::from(n) * u32::from(p.data_pieces())
                    < u32::from(p.total_pieces()) * u32::from(k)
                {
                    for r in k..=n {
                        assert!(
                            !acceptable(&target, &policy(k, n, r)),
                            "k={k} n={n} r={r} meets the target and is cheaper than {p:?}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn without_a_repair_budget_the_cheapest_policy_repairs_after_every_loss() {
    let mut target = DurabilityTarget::new(11.0, failures(0.05, 6.0));
    let budgeted = plan(&target).unwrap();
    target.max_repairs_per_year = f64::INFINITY;
    let unbounded = plan(&target).unwrap();
    assert!(unbounded.policy.expansion_factor() < budgeted.policy.expansion_factor());
    assert_eq!(
        unbounded.policy.repair_threshold(),
        unbounded.policy.total_pieces()
    );
    assert!(unbounded.durability.repairs_per_year() > 10.0);
    assert!(budgeted.durability.repairs_per_year() <= DEFAULT_MAX_REPAIRS_PER_YEAR);
}

#[test]
fn the_planner_says_when_the_target_is_out_of_reach() {
    let mut target = DurabilityTarget::new(11.0, failures(0.5, 500.0));
    target.max_total_pieces = 6;
    let err = plan(&target).unwrap_err();
    let DurabilityError::Unreachable { best_nines, .. } = &err else {
        panic!("{err}");
    };
    assert!(*best_nines < 11.0);
    assert!(err.to_string().contains("at most 6 pieces"), "{err}");
    target.max_total_pieces = 2;
    assert!(matches!(
        plan(&target),
        Err(DurabilityError::InvalidBounds { .. })
    ));
    target.nines = f64::NAN;
    assert!(matches!(
        plan(&target),
        Err(DurabilityError::InvalidTarget { .. })
    ));
}

#[test]
fn a_policy_can_be_asked_for_by_durability() {
    let target = DurabilityTarget::new(11.0, failures(0.05, 6.0));
    let p = RedundancyPolicy::for_durability(&target).unwrap();
    assert_eq!(p, plan(&target).unwrap().policy);
    assert!(p.repair_threshold() <= p.success_threshold());
    assert!(target.failures.durability(&p).meets(11.0));
}

#[test]
fn churn_reads_as_people_write_it() {
    assert_eq!(parse_monthly_churn("5%/month").unwrap(), 0.05);
    assert_eq!(parse_monthly_churn(" 5 % ").unwrap(), 0.05);
    assert_eq!(parse_monthly_churn("0.05").unwrap(), 0.05);
    let yearly = parse_monthly_churn("46%/year").unwrap();
    // Surviving 12 months at that monthly churn is surviving the year.
    assert!(((1.0 - yearly).powi(12) - 0.54).abs() < 1e-12, "{yearly}");
    assert!(matches!(
        parse_monthly_churn("5%/week"),
        Err(DurabilityError::UnreadableChurn { .. })
    ));
    assert!(matches!(
        parse_monthly_churn("lots"),
        Err(DurabilityError::UnreadableChurn { .. })
    ));
    assert!(matches!(
        parse_monthly_churn("120%"),
        Err(DurabilityError::InvalidChurn { .. })
    ));
    assert!(FailureModel::new(0.05, 0.0).is_err());
    assert!(FailureModel::new(f64::NAN, 6.0).is_err());
}

proptest! {
    #[test]
    fn more_margin_earlier_repair_and_faster_repair_are_never_less_durable(
        k in 2u16..20,
        parity in 1u16..20,
        r_offset in 0u16..20,
        churn in 0.001f64..0.5,
        repair_hours in 0.1f64..500.0,
    ) {
        let n = k + parity;
        let r = k + r_offset % (parity + 1);
        let model = failures(churn, repair_hours);
        let base = model.durability(&policy(k, n, r)).nines();
        prop_assert!(base.is_finite() && base >= 0.0);
        // One more parity piece, same distance to repair from the top.
        let wider = model.durability(&policy(k, n + 1, r + 1)).nines();
        prop_assert!(wider >= base - 1e-9, "more parity {} < {}", wider, base);
        if r < n {
            let earlier = model.durability(&policy(k, n, r + 1)).nines();
            prop_assert!(earlier >= base - 1e-9, "earlier repair {} < {}", earlier, base);
        }
        let faster = failures(churn, repair_hours / 2.0).durability(&policy(k, n, r)).nines();
        prop_assert!(faster >= base - 1e-9, "faster repair {} < {}", faster, base);
        let churnier = failures((churn * 1.5).min(0.9), repair_hours)
            .durability(&policy(k, n, r)).nines();
        prop_assert!(churnier <= base + 1e-9, "more churn {} > {}", churnier, base);
    }
}
