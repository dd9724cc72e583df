//! `dbytes placement`: redundancy from a durability target, and how durable
//! a policy is. Parses arguments and prints; the model and the planner are
//! in `dbytes_placement::durability`.

use clap::{Args, Subcommand};
use dbytes_placement::RedundancyPolicy;
use dbytes_placement::durability::{
    self, DEFAULT_MAX_REPAIRS_PER_YEAR, DEFAULT_MAX_TOTAL_PIECES, DEFAULT_MIN_DATA_PIECES,
    Durability, DurabilityTarget, FailureModel, parse_monthly_churn, reference_schemes,
};

#[derive(Subcommand)]
pub enum PlacementCommand {
    /// The cheapest k, n and repair threshold that reach a durability
    /// target, compared with Storj's 29/80 and Sia's 10/30.
    Plan {
        /// Annual segment loss probability at most 10^-nines (11 = 99.999999999 %).
        #[arg(long, default_value_t = 11.0)]
        target_nines: f64,
        /// Smallest k to consider.
        #[arg(long, default_value_t = DEFAULT_MIN_DATA_PIECES)]
        min_data_pieces: u16,
        /// Largest n to consider (at most the providers you have deals with).
        #[arg(long, default_value_t = DEFAULT_MAX_TOTAL_PIECES)]
        max_pieces: u16,
        /// Most repairs of a segment a year (each reads the segment's size);
        /// `inf` for no bound.
        #[arg(long, default_value_t = DEFAULT_MAX_REPAIRS_PER_YEAR)]
        max_repairs_per_year: f64,
        #[command(flatten)]
        failures: FailureArgs,
    },
    /// How durable a k-of-n policy is (the gateway's default 4-of-6 unless given).
    Durability {
        /// k: pieces needed to read.
        #[arg(long, default_value_t = 4)]
        data_pieces: u16,
        /// n: pieces stored.
        #[arg(long, default_value_t = 6)]
        total_pieces: u16,
        /// Repair when fewer healthy pieces than this remain (default: the
        /// policy's own).
        #[arg(long)]
        repair_threshold: Option<u16>,
        #[command(flatten)]
        failures: FailureArgs,
    },
}

/// How providers fail and how fast repair is.
#[derive(Args)]
pub struct FailureArgs {
    /// Share of providers (and their pieces) lost, e.g. 5%/month, 40%/year, 0.05.
    #[arg(long, default_value = "5%/month", value_parser = parse_monthly_churn)]
    provider_churn: f64,
    /// Mean hours from a segment dropping below its repair threshold to it
    /// being whole again.
    #[arg(long, default_value_t = 6.0)]
    repair_hours: f64,
}

impl FailureArgs {
    fn model(&self) -> anyhow::Result<FailureModel> {
        Ok(FailureModel::new(self.provider_churn, self.repair_hours)?)
    }

    fn describe(&self) -> String {
        format!(
            "provider churn {}/month, repair {} h on average",
            percent(self.provider_churn),
            self.repair_hours
        )
    }
}

pub fn run(command: PlacementCommand) -> anyhow::Result<()> {
    match command {
        PlacementCommand::Plan {
            target_nines,
            min_data_pieces,
            max_pieces,
            max_repairs_per_year,
            failures,
        } => {
            let target = DurabilityTarget {
                nines: target_nines,
                failures: failures.model()?,
                min_data_pieces,
                max_total_pieces: max_pieces,
                max_repairs_per_year,
            };
            let plan = durability::plan(&target)?;
            let policy = plan.policy;
            println!(
                "target        {target_nines} nines: annual segment loss at most 1e-{target_nines}"
            );
            println!("assuming      {}", failures.describe());
            println!(
                "within        k >= {min_data_pieces}, n <= {max_pieces}, at most \
                 {max_repairs_per_year} repairs per segment a year"
            );
            println!(
                "cheapest      k={} n={} repair threshold {} (repair when fewer than {} pieces \
                 are healthy), commit uploads at {} pieces",
                policy.data_pieces(),
                policy.total_pieces(),
                policy.repair_threshold(),
                policy.repair_threshold(),
                policy.success_threshold(),
            );
            println!("expansion     {:.3}x", policy.expansion_factor());
            print_durability(&plan.durability);
            println!();
            println!("compared under the same churn and repair time:");
            print_table(&target.failures, "plan", plan.policy);
        }
        PlacementCommand::Durability {
            data_pieces,
            total_pieces,
            repair_threshold,
            failures,
        } => {
            let policy = RedundancyPolicy::new(data_pieces, total_pieces)?;
            let policy = match repair_threshold {
                Some(repair_threshold) => RedundancyPolicy::with_thresholds(
                    data_pieces,
                    total_pieces,
                    repair_threshold,
                    policy.success_threshold().max(repair_threshold),
                )?,
                None => policy,
            };
            let model = failures.model()?;
            println!("assuming      {}", failures.describe());
            println!(
                "policy        k={} n={} repair threshold {}",
                policy.data_pieces(),
                policy.total_pieces(),
                policy.repair_threshold()
            );
            println!("expansion     {:.3}x", policy.expansion_factor());
            print_durability(&model.durability(&policy));
            println!();
            print_table(&model, "this policy", policy);
        }
    }
    Ok(())
}

fn print_durability(durability: &Durability) {
    println!(
        "annual loss   {} ({:.1} nines), mean time to loss {:.3e} years",
        probability(durability),
        durability.nines(),
        durability.mean_years_to_loss()
    );
    println!(
        "repairs       {:.2} per segment per year (each reads k pieces: the segment's size)",
        durability.repairs_per_year()
    );
}

fn print_table(model: &FailureModel, label: &str, policy: RedundancyPolicy) {
    println!(
        "  {:<14} {:>6} {:>7} {:>9} {:>12} {:>7} {:>11}",
        "scheme", "k/n", "repair", "expansion", "annual loss", "nines", "repairs/yr"
    );
    let rows = std::iter::once((label, policy)).chain(
        reference_schemes()
            .into_iter()
            .map(|scheme| (scheme.name, scheme.policy)),
    );
    for (name, policy) in rows {
        let durability = model.durability(&policy);
        println!(
            "  {:<14} {:>6} {:>7} {:>8.3}x {:>12} {:>7.1} {:>11.2}",
            name,
            format!("{}/{}", policy.data_pieces(), policy.total_pieces()),
            format!("<{}", policy.repair_threshold()),
            policy.expansion_factor(),
            probability(&durability),
            durability.nines(),
            durability.repairs_per_year()
        );
    }
}

/// A probability in scientific notation, or as a power of ten once it is
/// too small for f64.
fn probability(durability: &Durability) -> String {
    let p = durability.annual_loss_probability();
    if p > 0.0 {
        format!("{p:.1e}")
    } else {
        format!("1e-{:.0}", durability.nines())
    }
}

fn percent(share: f64) -> String {
    let percent = share * 100.0;
    if (percent - percent.round()).abs() < 1e-9 {
        format!("{percent:.0}%")
    } else {
        format!("{percent:.3}%")
    }
}
