//! Token amounts and byte sizes as people write them ("1.5", "10 GiB") and
//! as the contracts count them (base units, bytes).

use alloy::primitives::U256;

/// Decimals of the storage token (an OpenZeppelin ERC-20 default).
pub const TOKEN_DECIMALS: u32 = 18;
/// Symbol of the storage token.
pub const TOKEN_SYMBOL: &str = "DBS";
/// Bytes in a GiB, the unit of listed prices.
pub const GIB: u64 = 1 << 30;

/// Why an amount or size could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Not a decimal token amount.
    #[error(
        "{0:?} is not a token amount; write a decimal number of {TOKEN_SYMBOL} such as 12 or \
         0.5 (at most {TOKEN_DECIMALS} decimals)"
    )]
    Amount(String),
    /// Not a size.
    #[error(
        "{0:?} is not a size; write bytes or a number with a unit, such as 4096, 10GiB or 1.5TB"
    )]
    Size(String),
}

fn ten_pow(exp: u32) -> U256 {
    U256::from(10u64).pow(U256::from(exp))
}

/// `amount` base units as tokens with the symbol, trailing zeros trimmed:
/// `1500000000000000000` is "1.5 DBS".
pub fn format_tokens(amount: U256) -> String {
    format!("{} {TOKEN_SYMBOL}", format_token_number(amount))
}

/// [`format_tokens`] without the symbol.
pub fn format_token_number(amount: U256) -> String {
    let unit = ten_pow(TOKEN_DECIMALS);
    let whole = amount / unit;
    let fraction = amount % unit;
    if fraction.is_zero() {
        return whole.to_string();
    }
    let digits = format!(
        "{:0>width$}",
        fraction.to_string(),
        width = TOKEN_DECIMALS as usize
    );
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Reads a token amount ("12", "0.5", "3 DBS") into base units.
pub fn parse_tokens(text: &str) -> Result<U256, UnitError> {
    let bad = || UnitError::Amount(text.to_string());
    let trimmed = text.trim();
    let number = trimmed
        .strip_suffix(TOKEN_SYMBOL)
        .unwrap_or(trimmed)
        .trim()
        .replace('_', "");
    let (whole, fraction) = number.split_once('.').unwrap_or((number.as_str(), ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !fraction.chars().all(|c| c.is_ascii_digit())
        || fraction.len() > TOKEN_DECIMALS as usize
    {
        return Err(bad());
    }
    let whole = if whole.is_empty() {
        U256::ZERO
    } else {
        whole.parse::<U256>().map_err(|_| bad())?
    };
    let padded = format!("{fraction:0<width$}", width = TOKEN_DECIMALS as usize);
    let fraction = padded.parse::<U256>().map_err(|_| bad())?;
    whole
        .checked_mul(ten_pow(TOKEN_DECIMALS))
        .and_then(|w| w.checked_add(fraction))
        .ok_or_else(bad)
}

/// `bytes` in the largest binary unit that keeps it readable: "1.5 GiB".
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if (value - value.round()).abs() < 0.005 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// Reads a size: plain bytes, or a number with a binary (KiB, MiB, GiB, TiB,
/// PiB; also K, M, G, T, P) or decimal (KB, MB, GB, TB, PB) unit.
pub fn parse_bytes(text: &str) -> Result<u64, UnitError> {
    let bad = || UnitError::Size(text.to_string());
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number = number.replace('_', "");
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "p" | "pib" => 1 << 50,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "pb" => 1_000_000_000_000_000,
        _ => return Err(bad()),
    };
    if number.is_empty() {
        return Err(bad());
    }
    if let Ok(whole) = number.parse::<u64>() {
        return whole.checked_mul(multiplier).ok_or_else(bad);
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let unit = ten_pow(18);
        assert_eq!(
            parse_tokens("1.5").unwrap(),
            unit * U256::from(3) / U256::from(2)
        );
        assert_eq!(parse_tokens("3 DBS").unwrap(), unit * U256::from(3));
        assert_eq!(parse_tokens(".25").unwrap(), unit / U256::from(4));
        assert_eq!(parse_tokens("0.000000000000000001").unwrap(), U256::from(1));
        assert_eq!(
            format_tokens(unit * U256::from(3) / U256::from(2)),
            "1.5 DBS"
        );
        assert_eq!(format_tokens(U256::from(1)), "0.000000000000000001 DBS");
        assert_eq!(format_tokens(U256::ZERO), "0 DBS");
        for bad in [
            "",
            ".",
            "1.2.3",
            "-1",
            "1e3",
            "0.0000000000000000001",
            "abc",
        ] {
            assert!(parse_tokens(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_bytes("10 G").unwrap(), 10 << 30);
        assert_eq!(parse_bytes("1.5TB").unwrap(), 1_500_000_000_000);
        assert_eq!(parse_bytes("0.5 MiB").unwrap(), 1 << 19);
        assert!(parse_bytes("ten").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
        assert!(parse_bytes("99999999999 PiB").is_err());
        assert_eq!(format_bytes(1536 << 20), "1.50 GiB");
        assert_eq!(format_bytes(30 << 30), "30 GiB");
        assert_eq!(format_bytes(100), "100 B");
    }
}
