//! Tables for people: listings, a provider's page, deals.

use alloy::primitives::U256;

use super::index::{DealRecord, ProviderRecord};
use crate::chain::lookup::ConsumerDeal;
use crate::chain::units::{format_bytes, format_token_number, format_tokens};

/// Left-aligned columns separated by two spaces, a header line first.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.clone()));
    }
    out
}

fn score(record: &ProviderRecord) -> String {
    if record.proofs + record.missed == 0 {
        "new".to_string()
    } else {
        format!("{:.2}", record.reputation.score())
    }
}

/// The listings table of `dbytes market search`.
pub fn listings(records: &[ProviderRecord]) -> String {
    if records.is_empty() {
        return "no listing matches".to_string();
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .filter_map(|r| {
            let t = r.terms.as_ref()?;
            Some(vec![
                r.provider.to_string(),
                t.region.to_string(),
                format_token_number(U256::from(t.price_per_gib_month)),
                format_bytes(r.free_bytes()),
                format!("{}-{}", t.min_periods, t.max_periods),
                t.policy.name().to_string(),
                score(r),
                r.proofs.to_string(),
                r.missed.to_string(),
                r.live_deals.to_string(),
            ])
        })
        .collect();
    table(
        &[
            "PROVIDER",
            "REGION",
            "PRICE/GiB-MONTH",
            "FREE",
            "PERIODS",
            "POLICY",
            "SCORE",
            "PROVEN",
            "MISSED",
            "DEALS",
        ],
        &rows,
    )
}

/// The page of `dbytes market show <provider>`: listing, pool, record,
/// earnings and live deals.
pub fn provider(record: &ProviderRecord, deals: &[DealRecord]) -> String {
    let mut out = format!("provider      {}\n", record.provider);
    out.push_str(&format!("status        {}\n", record.status.name()));
    if let Some(t) = &record.terms {
        out.push_str(&format!("node id       {}\n", t.node_id));
        out.push_str(&format!(
            "addresses     {}\n",
            String::from_utf8(t.address_hints.to_vec())
                .unwrap_or_else(|_| t.address_hints.to_string())
        ));
        out.push_str(&format!("region        {}\n", t.region));
        out.push_str(&format!(
            "price         {} per GiB-month\n",
            format_tokens(U256::from(t.price_per_gib_month))
        ));
        out.push_str(&format!(
            "capacity      {} ({} used, {} free)\n",
            format_bytes(t.capacity_bytes),
            format_bytes(record.used_bytes),
            format_bytes(record.free_bytes())
        ));
        out.push_str(&format!(
            "periods       {} to {}\n",
            t.min_periods, t.max_periods
        ));
        out.push_str(&format!(
            "collateral    {:.2}x the deal's price, at least {} per GiB\n",
            f64::from(t.collateral_bps) / 10_000.0,
            format_tokens(U256::from(t.collateral_per_gib))
        ));
        out.push_str(&format!("accepts       {}\n", t.policy.name()));
    }
    out.push_str(&format!(
        "pool          {} deposited, {} locked\n",
        format_tokens(U256::from(record.pool.deposited)),
        format_tokens(U256::from(record.pool.locked))
    ));
    out.push_str(&format!(
        "proofs        {} proven, {} missed, score {}\n",
        record.proofs,
        record.missed,
        score(record)
    ));
    out.push_str(&format!(
        "earnings      {} paid, {} credited, {} slashed\n",
        format_tokens(record.paid),
        format_tokens(record.credited),
        format_tokens(record.slashed)
    ));
    let live: Vec<&DealRecord> = deals
        .iter()
        .filter(|d| d.state.is_running() || d.state == crate::chain::DealState::Proposed)
        .collect();
    out.push_str(&format!("\nlive deals ({})\n", live.len()));
    if !live.is_empty() {
        out.push_str(&deal_records(
            &live.into_iter().cloned().collect::<Vec<_>>(),
        ));
        out.push('\n');
    }
    out
}

/// Indexed deals as a table.
pub fn deal_records(deals: &[DealRecord]) -> String {
    let rows: Vec<Vec<String>> = deals
        .iter()
        .map(|d| {
            vec![
                d.id.to_string(),
                d.consumer.to_string(),
                d.state.to_string(),
                format_bytes(d.capacity_bytes),
                format!("{}-{}", d.start, d.end),
                format_token_number(d.rate_per_period),
                d.commitment.map_or("-".to_string(), |(c, _)| {
                    format_bytes(c.leaf_count.saturating_mul(256))
                }),
                format!("{}/{}", d.proven_periods, d.missed_periods),
            ]
        })
        .collect();
    table(
        &[
            "DEAL",
            "CONSUMER",
            "STATE",
            "CAPACITY",
            "PERIODS",
            "RATE/PERIOD",
            "COMMITTED",
            "PROVEN/MISSED",
        ],
        &rows,
    )
}

/// A consumer's deals (read from the chain) as a table.
pub fn consumer_deals(deals: &[ConsumerDeal]) -> String {
    if deals.is_empty() {
        return "no deals".to_string();
    }
    let rows: Vec<Vec<String>> = deals
        .iter()
        .map(|d| {
            vec![
                d.deal.id.to_string(),
                d.deal.provider.to_string(),
                d.deal.state.to_string(),
                format_bytes(d.deal.capacity_bytes),
                format!("{}-{}", d.start, d.deal.end),
                format_token_number(U256::from(d.deal.rate_per_period)),
                format_token_number(d.deal.escrow()),
                d.region.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "DEAL",
            "PROVIDER",
            "STATE",
            "CAPACITY",
            "PERIODS",
            "RATE/PERIOD",
            "ESCROW",
            "REGION",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let out = table(
            &["A", "LONG HEADER", "C"],
            &[vec!["wide cell".into(), "x".into(), "y".into()]],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "A          LONG HEADER  C");
        assert_eq!(lines[1], "wide cell  x            y");
    }
}
