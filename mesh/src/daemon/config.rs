//! The provider daemon's configuration file, and how it is checked.
//!
//! [`DaemonConfig`] is the TOML an operator edits (`dbytes provider init`
//! writes a commented one, [`config_template`]): `[mesh]` (the piece
//! protocol and store, [`ProviderSettings`]), `[chain]`, `[wallet]`,
//! `[listing]`, `[policy]`, `[metrics]`, `[intervals]` and `[faults]` (fault
//! injection for tests only). Missing fields take
//! their defaults; unknown fields are refused, so a typo is an error rather
//! than a silent default. Any field can be overridden from the environment
//! as `DBYTES_PROVIDER_<SECTION>_<FIELD>` (upper case, e.g.
//! `DBYTES_PROVIDER_CHAIN_RPC_URL`, `DBYTES_PROVIDER_MESH_LISTEN_ADDR`,
//! `DBYTES_PROVIDER_MESH_DATA_DIR`); the keystore's password comes from
//! `DBYTES_PROVIDER_PASSWORD` or `[wallet] password_file`.
//!
//! [`DaemonConfig::check`] turns the text fields (token amounts, sizes,
//! region, policy) into values, naming the field when one does not parse.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use alloy_primitives::{Address, Bytes, U256};
use dbytes_ledger::chain::listing::MAX_ADDRESS_HINTS_BYTES;
use dbytes_ledger::chain::units::{parse_bytes, parse_tokens};
use dbytes_ledger::chain::{AcceptPolicy, Region, deployment};
use serde::{Deserialize, Deserializer, Serialize};
use zeroize::Zeroizing;

use crate::settings::ProviderSettings;

/// The environment variable holding the keystore's password.
pub const PASSWORD_ENV: &str = "DBYTES_PROVIDER_PASSWORD";

/// The prefix of environment overrides: `DBYTES_PROVIDER_<SECTION>_<FIELD>`.
pub const ENV_PREFIX: &str = "DBYTES_PROVIDER_";

/// The config file's name in a directory made by `dbytes provider init`.
pub const CONFIG_FILE: &str = "provider.toml";

const SECTIONS: [&str; 8] = [
    "mesh",
    "chain",
    "wallet",
    "listing",
    "policy",
    "metrics",
    "intervals",
    "faults",
];

/// A provider daemon's whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// The piece protocol, the store and the node key.
    pub mesh: ProviderSettings,
    /// Which chain and contracts.
    pub chain: ChainSettings,
    /// The wallet that registers, accepts, proves and claims.
    pub wallet: WalletSettings,
    /// The listing published on chain.
    pub listing: ListingSettings,
    /// Which proposed deals to accept.
    pub policy: PolicySettings,
    /// The Prometheus endpoint.
    pub metrics: MetricsSettings,
    /// How often the chain loops run.
    pub intervals: IntervalSettings,
    /// Faults to inject, for tests only.
    pub faults: FaultSettings,
}

/// `[faults]`: fault injection for tests of how gateways cope with a bad
/// provider. Never set in production; the defaults inject nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSettings {
    /// Milliseconds every put, get, range get and audit answer is held back
    /// (0: none).
    pub response_delay_ms: u64,
}

/// `[chain]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainSettings {
    /// The JSON-RPC endpoint (default: the deployment file's).
    pub rpc_url: Option<String>,
    /// The deployment file written by `dbytes contracts deploy`.
    pub deployment: PathBuf,
    /// How long start-up keeps trying an unreachable endpoint (0: forever).
    pub connect_timeout_secs: u64,
}

impl Default for ChainSettings {
    fn default() -> Self {
        ChainSettings {
            rpc_url: None,
            deployment: PathBuf::from(deployment::DEFAULT_FILE),
            connect_timeout_secs: 120,
        }
    }
}

/// `[wallet]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalletSettings {
    /// A root keystore (holding a recovery phrase) or a wallet keystore.
    pub keystore: PathBuf,
    /// A file holding the keystore's password (when
    /// `DBYTES_PROVIDER_PASSWORD` is not set).
    pub password_file: Option<PathBuf>,
    /// Account index under a root keystore's phrase.
    pub account: u32,
}

impl Default for WalletSettings {
    fn default() -> Self {
        WalletSettings {
            keystore: PathBuf::from("wallet.json"),
            password_file: None,
            account: 0,
        }
    }
}

/// `[listing]`: the terms published on chain, as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListingSettings {
    /// Capacity offered (e.g. `100GiB`); empty: `[mesh] capacity_bytes`.
    #[serde(deserialize_with = "text")]
    pub capacity: String,
    /// Price per GiB-month in tokens (e.g. `0.5`).
    #[serde(deserialize_with = "text")]
    pub price_per_gib_month: String,
    /// Shortest deal taken, in periods.
    pub min_periods: u32,
    /// Longest deal taken, in periods.
    pub max_periods: u32,
    /// Collateral as a multiple of a deal's price, in basis points
    /// (20000 = twice the price, the least the contract allows).
    pub collateral_bps: u32,
    /// Collateral per GiB of a deal's capacity, in tokens (the larger of the
    /// two rules applies).
    #[serde(deserialize_with = "text")]
    pub collateral_per_gib: String,
    /// Tokens the daemon keeps deposited in the collateral pool: it tops the
    /// pool up to this on start (0: deposit nothing).
    #[serde(deserialize_with = "text")]
    pub collateral_deposit: String,
    /// Region code (up to 8 ASCII characters, e.g. `DE`); empty for none.
    pub region: String,
    /// How deals open: `auto` (anyone, at these terms), `manual`
    /// (proposals, decided by `[policy]`) or `quote` (signed quotes).
    pub accept: String,
    /// Addresses peers dial (`host:port`); empty: the endpoint's bound
    /// direct addresses.
    pub address_hints: Vec<String>,
}

impl Default for ListingSettings {
    fn default() -> Self {
        ListingSettings {
            capacity: String::new(),
            price_per_gib_month: "1".to_string(),
            min_periods: 1,
            max_periods: 1000,
            collateral_bps: 20_000,
            collateral_per_gib: "0".to_string(),
            collateral_deposit: "0".to_string(),
            region: String::new(),
            accept: "auto".to_string(),
            address_hints: Vec::new(),
        }
    }
}

/// Who decides on proposed deals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decider {
    /// The daemon accepts or declines by the `[policy]` rules.
    #[default]
    Rules,
    /// The operator, with `dbytes provider deals accept|decline`.
    Operator,
}

/// `[policy]`: which proposed deals the daemon accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySettings {
    /// `rules` (the daemon decides) or `operator` (proposals wait for
    /// `dbytes provider deals accept|decline`).
    pub decide: Decider,
    /// Lowest price per GiB-month accepted, in tokens (empty: the listing's).
    #[serde(deserialize_with = "text")]
    pub min_price_per_gib_month: String,
    /// Shortest deal accepted, in periods (0: the listing's minimum).
    pub min_periods: u32,
    /// Longest deal accepted, in periods (0: the listing's maximum).
    pub max_periods: u32,
    /// Capacity to keep free after accepting (e.g. `10GiB`).
    #[serde(deserialize_with = "text")]
    pub keep_free: String,
    /// Only these consumers (wallet addresses); empty: anyone not denied.
    pub allow_consumers: Vec<Address>,
    /// Never these consumers.
    pub deny_consumers: Vec<Address>,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            decide: Decider::Rules,
            min_price_per_gib_month: String::new(),
            min_periods: 0,
            max_periods: 0,
            keep_free: "0".to_string(),
            allow_consumers: Vec::new(),
            deny_consumers: Vec::new(),
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Where `/metrics` is served (`127.0.0.1:9464`; port 0 picks a free
    /// one); `off` or empty turns it off.
    pub listen_addr: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            listen_addr: "127.0.0.1:9464".to_string(),
        }
    }
}

/// `[intervals]`: seconds between runs of each chain loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntervalSettings {
    /// Re-checking that the listing matches the config.
    pub listing_secs: u64,
    /// Looking for proposed deals.
    pub deals_secs: u64,
    /// Looking for challenges to answer.
    pub proofs_secs: u64,
    /// Settling deals and withdrawing credit.
    pub claims_secs: u64,
    /// The longest pause between retries after errors.
    pub max_backoff_secs: u64,
    /// Periods settled per deal per claim.
    pub settle_max_periods: u64,
}

impl Default for IntervalSettings {
    fn default() -> Self {
        IntervalSettings {
            listing_secs: 600,
            deals_secs: 15,
            proofs_secs: 30,
            claims_secs: 3600,
            max_backoff_secs: 300,
            settle_max_periods: 64,
        }
    }
}

/// Accepts a string, an integer or a float as text (token amounts and sizes
/// may be written either way, and environment overrides parse as numbers).
fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        String(String),
        Integer(i64),
        Float(f64),
    }
    Ok(match Text::deserialize(deserializer)? {
        Text::String(text) => text,
        Text::Integer(number) => number.to_string(),
        Text::Float(number) => number.to_string(),
    })
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("could not read the provider config {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML does not parse or has unknown or mistyped fields.
    #[error("the provider config {} is invalid: {reason}", path.display())]
    Parse {
        /// The file (or the environment).
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// An environment override names no known section.
    #[error(
        "environment variable {0} overrides nothing: use DBYTES_PROVIDER_<SECTION>_<FIELD> with a \
         section of mesh, chain, wallet, listing, policy, metrics, intervals or faults"
    )]
    UnknownOverride(String),
    /// A field's value does not make sense.
    #[error("[{section}] {field} = {value:?}: {reason}")]
    Field {
        /// The section.
        section: &'static str,
        /// The field.
        field: &'static str,
        /// The value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// No password for the keystore.
    #[error(
        "the keystore {} needs its password: set {PASSWORD_ENV} or [wallet] password_file",
        keystore.display()
    )]
    NoPassword {
        /// The keystore.
        keystore: PathBuf,
    },
}

/// The `[listing]` terms as values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingPlan {
    /// Capacity offered.
    pub capacity_bytes: u64,
    /// Price per GiB-month, base units.
    pub price_per_gib_month: u128,
    /// Shortest deal, periods.
    pub min_periods: u32,
    /// Longest deal, periods.
    pub max_periods: u32,
    /// Collateral multiple, basis points.
    pub collateral_bps: u32,
    /// Collateral per GiB, base units.
    pub collateral_per_gib: u128,
    /// Pool deposit to keep, base units.
    pub collateral_deposit: U256,
    /// Region.
    pub region: Region,
    /// How deals open.
    pub accept: AcceptPolicy,
    /// Configured address hints (empty: the endpoint's).
    pub address_hints: Vec<SocketAddr>,
}

/// The `[policy]` rules as values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptRules {
    /// Who decides.
    pub decide: Decider,
    /// Lowest price per GiB-month accepted, base units.
    pub min_price_per_gib_month: u128,
    /// Shortest deal, periods.
    pub min_periods: u32,
    /// Longest deal, periods.
    pub max_periods: u32,
    /// Bytes to keep free.
    pub keep_free_bytes: u64,
    /// Only these consumers (empty: any).
    pub allow_consumers: Vec<Address>,
    /// Never these.
    pub deny_consumers: Vec<Address>,
}

/// The whole configuration, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedConfig {
    /// The listing.
    pub listing: ListingPlan,
    /// The accept rules.
    pub rules: AcceptRules,
    /// Where metrics are served, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
}

fn field_error(
    section: &'static str,
    field: &'static str,
    value: &str,
    reason: impl ToString,
) -> ConfigError {
    ConfigError::Field {
        section,
        field,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn tokens_u128(
    section: &'static str,
    field: &'static str,
    value: &str,
) -> Result<u128, ConfigError> {
    let amount = parse_tokens(value).map_err(|err| field_error(section, field, value, err))?;
    u128::try_from(amount).map_err(|_| field_error(section, field, value, "too large"))
}

impl DaemonConfig {
    /// Reads `path`, applies the environment's overrides, and makes relative
    /// paths relative to the file's directory.
    pub fn load(path: &Path) -> Result<DaemonConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let overrides = std::env::vars().filter(|(name, _)| name.starts_with(ENV_PREFIX));
        let mut config = DaemonConfig::parse(&text, overrides, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    /// Parses TOML `text` with `overrides` (`(variable, value)` pairs);
    /// `origin` names the text in errors.
    pub fn parse(
        text: &str,
        overrides: impl IntoIterator<Item = (String, String)>,
        origin: &Path,
    ) -> Result<DaemonConfig, ConfigError> {
        let parse_error = |reason: String| ConfigError::Parse {
            path: origin.to_path_buf(),
            reason,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|err: toml::de::Error| parse_error(err.to_string()))?;
        for (name, raw) in overrides {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let rest = rest.to_ascii_lowercase();
            if rest == "password" {
                continue;
            }
            let Some((section, field)) = SECTIONS.iter().find_map(|section| {
                rest.strip_prefix(section)
                    .and_then(|tail| tail.strip_prefix('_'))
                    .map(|field| (*section, field))
            }) else {
                return Err(ConfigError::UnknownOverride(name));
            };
            let value = override_value(&raw);
            let entry = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(section_table) = entry else {
                return Err(parse_error(format!("[{section}] is not a table")));
            };
            section_table.insert(field.to_string(), value);
        }
        DaemonConfig::deserialize(toml::Value::Table(table))
            .map_err(|err| parse_error(err.to_string()))
    }

    /// Makes the relative paths relative to `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        resolve(&mut self.mesh.data_dir);
        resolve(&mut self.chain.deployment);
        resolve(&mut self.wallet.keystore);
        if let Some(file) = self.wallet.password_file.as_mut() {
            resolve(file);
        }
    }

    /// The keystore's password: `DBYTES_PROVIDER_PASSWORD`, else the first
    /// line of `[wallet] password_file`.
    pub fn password(&self) -> Result<Zeroizing<String>, ConfigError> {
        if let Ok(password) = std::env::var(PASSWORD_ENV) {
            return Ok(Zeroizing::new(password));
        }
        let Some(file) = &self.wallet.password_file else {
            return Err(ConfigError::NoPassword {
                keystore: self.wallet.keystore.clone(),
            });
        };
        let text =
            Zeroizing::new(
                std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
                    path: file.clone(),
                    source,
                })?,
            );
        Ok(Zeroizing::new(
            text.lines().next().unwrap_or_default().to_string(),
        ))
    }

    /// Checks every text field and returns the values.
    pub fn check(&self) -> Result<CheckedConfig, ConfigError> {
        let listing = &self.listing;
        let capacity_bytes = if listing.capacity.trim().is_empty() {
            self.mesh.capacity_bytes
        } else {
            parse_bytes(&listing.capacity)
                .map_err(|err| field_error("listing", "capacity", &listing.capacity, err))?
        };
        let price_per_gib_month = tokens_u128(
            "listing",
            "price_per_gib_month",
            &listing.price_per_gib_month,
        )?;
        let collateral_per_gib =
            tokens_u128("listing", "collateral_per_gib", &listing.collateral_per_gib)?;
        let collateral_deposit = parse_tokens(&listing.collateral_deposit).map_err(|err| {
            field_error(
                "listing",
                "collateral_deposit",
                &listing.collateral_deposit,
                err,
            )
        })?;
        let region = if listing.region.trim().is_empty() {
            Region::NONE
        } else {
            listing
                .region
                .parse()
                .map_err(|err: String| field_error("listing", "region", &listing.region, err))?
        };
        let accept: AcceptPolicy = listing
            .accept
            .parse()
            .map_err(|err: String| field_error("listing", "accept", &listing.accept, err))?;
        let address_hints = listing
            .address_hints
            .iter()
            .map(|hint| {
                hint.parse::<SocketAddr>().map_err(|_| {
                    field_error(
                        "listing",
                        "address_hints",
                        hint,
                        "not a socket address like 203.0.113.5:7700",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let policy = &self.policy;
        let min_price_per_gib_month = if policy.min_price_per_gib_month.trim().is_empty() {
            price_per_gib_month
        } else {
            tokens_u128(
                "policy",
                "min_price_per_gib_month",
                &policy.min_price_per_gib_month,
            )?
        };
        let keep_free_bytes = parse_bytes(&policy.keep_free)
            .map_err(|err| field_error("policy", "keep_free", &policy.keep_free, err))?;
        let metrics_addr = match self.metrics.listen_addr.trim() {
            "" | "off" | "0" => None,
            addr => Some(addr.parse::<SocketAddr>().map_err(|_| {
                field_error(
                    "metrics",
                    "listen_addr",
                    addr,
                    "not a socket address like 127.0.0.1:9464 (or off)",
                )
            })?),
        };
        Ok(CheckedConfig {
            listing: ListingPlan {
                capacity_bytes,
                price_per_gib_month,
                min_periods: listing.min_periods,
                max_periods: listing.max_periods,
                collateral_bps: listing.collateral_bps,
                collateral_per_gib,
                collateral_deposit,
                region,
                accept,
                address_hints,
            },
            rules: AcceptRules {
                decide: policy.decide,
                min_price_per_gib_month,
                min_periods: if policy.min_periods == 0 {
                    listing.min_periods
                } else {
                    policy.min_periods
                },
                max_periods: if policy.max_periods == 0 {
                    listing.max_periods
                } else {
                    policy.max_periods
                },
                keep_free_bytes,
                allow_consumers: policy.allow_consumers.clone(),
                deny_consumers: policy.deny_consumers.clone(),
            },
            metrics_addr,
        })
    }
}

impl ListingPlan {
    /// The address hints to publish: the configured ones, else `bound`, as
    /// many as fit the registry's limit (a host with many interfaces binds
    /// more addresses than a listing holds).
    pub fn hints(&self, bound: &[SocketAddr]) -> Bytes {
        let addrs = if self.address_hints.is_empty() {
            bound
        } else {
            &self.address_hints
        };
        let mut fitting = addrs.len();
        while fitting > 0
            && crate::transport::encode_address_hints(&addrs[..fitting]).len()
                > MAX_ADDRESS_HINTS_BYTES
        {
            fitting -= 1;
        }
        Bytes::from(crate::transport::encode_address_hints(&addrs[..fitting]))
    }
}

/// An environment value as TOML (a number, a boolean, an array) or else as
/// a plain string.
fn override_value(raw: &str) -> toml::Value {
    format!("value = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut table| table.remove("value"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// What `dbytes provider init` fills into the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateValues {
    /// `[mesh] data_dir`.
    pub data_dir: String,
    /// `[mesh] listen_addr`.
    pub listen_addr: SocketAddr,
    /// `[chain] rpc_url` (commented out when `None`).
    pub rpc_url: Option<String>,
    /// `[chain] deployment`.
    pub deployment: String,
    /// `[wallet] keystore`.
    pub keystore: String,
    /// `[metrics] listen_addr`.
    pub metrics_addr: String,
}

/// A TOML string literal.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// The commented config `dbytes provider init` writes: every field with its
/// default, explained.
pub fn config_template(values: &TemplateValues) -> String {
    let mesh = ProviderSettings::default();
    let rpc_url = match &values.rpc_url {
        Some(url) => format!("rpc_url = {}", quoted(url)),
        None => "# rpc_url = \"http://127.0.0.1:8545\"".to_string(),
    };
    format!(
        r#"# dBytes provider configuration (`dbytes provider run --config <this file>`).
# Relative paths are relative to this file. Any field can be overridden from
# the environment as DBYTES_PROVIDER_<SECTION>_<FIELD>, e.g.
# DBYTES_PROVIDER_CHAIN_RPC_URL or DBYTES_PROVIDER_MESH_LISTEN_ADDR.

[mesh]
# Pieces, their index, the node key and the daemon's state live here.
data_dir = {data_dir}
# Bytes of pieces offered in total.
capacity_bytes = {capacity}
# UDP address of the piece protocol (port 0 picks a free one).
listen_addr = {listen}
# Relays for reaching a provider behind NAT: [] (direct only), ["public"]
# or relay URLs.
relays = []
max_streams_per_connection = {streams}
max_concurrent_requests = {requests}
# Bytes per second the scrub re-hashes (0 turns it off), and the pause
# between passes.
scrub_bytes_per_sec = {scrub}
scrub_interval_secs = {scrub_interval}

[chain]
# JSON-RPC endpoint; default: the one named in the deployment file.
{rpc_url}
# The deployment file written by `dbytes contracts deploy`.
deployment = {deployment}
# How long start-up waits for an unreachable endpoint (0: for ever).
connect_timeout_secs = 120

[wallet]
# The keystore holding the provider's wallet. Its password comes from the
# DBYTES_PROVIDER_PASSWORD environment variable or from password_file.
keystore = {keystore}
# password_file = "password.txt"
account = 0

[listing]
# Capacity offered on the market (e.g. "100GiB"); empty: mesh.capacity_bytes.
capacity = ""
# Price per GiB-month, in tokens.
price_per_gib_month = "1"
# Deal lengths taken, in periods.
min_periods = 1
max_periods = 1000
# Collateral per deal: collateral_bps of its price (20000 = 2x, the least
# allowed) or collateral_per_gib tokens per GiB, whichever is larger.
collateral_bps = 20000
collateral_per_gib = "0"
# Tokens to keep in the collateral pool (topped up on start). Every deal locks
# collateral from it: with none, no deal can open.
collateral_deposit = "0"
# Region code, e.g. "DE"; empty for none.
region = ""
# How deals open: "auto" (anyone, at these terms), "manual" (proposals,
# decided by [policy]) or "quote" (signed quotes).
accept = "auto"
# Addresses peers dial ("host:port"); empty: the addresses the node binds.
address_hints = []

[policy]
# Who decides on proposed deals: "rules" (the daemon, by the rules below) or
# "operator" (`dbytes provider deals --pending`, `accept ID`, `decline ID`).
decide = "rules"
# Lowest price per GiB-month accepted; empty: the listing's price.
min_price_per_gib_month = ""
# Deal lengths accepted; 0: the listing's bounds.
min_periods = 0
max_periods = 0
# Capacity to keep free after accepting a deal.
keep_free = "0"
# Consumers (wallet addresses) to accept only / never.
allow_consumers = []
deny_consumers = []

[metrics]
# Prometheus /metrics (keep it on a local address); "off" turns it off.
listen_addr = {metrics}

[intervals]
# Seconds between runs of each loop; errors back off up to max_backoff_secs.
listing_secs = 600
deals_secs = 15
proofs_secs = 30
claims_secs = 3600
max_backoff_secs = 300
# Periods settled per deal per claim (each settle transaction is bounded).
settle_max_periods = 64

[faults]
# Fault injection, for tests only: leave it at 0 on a real provider.
# Milliseconds every put, get, range get and audit answer is held back.
response_delay_ms = 0
"#,
        data_dir = quoted(&values.data_dir),
        capacity = mesh.capacity_bytes,
        listen = quoted(&values.listen_addr.to_string()),
        streams = mesh.max_streams_per_connection,
        requests = mesh.max_concurrent_requests,
        scrub = mesh.scrub_bytes_per_sec,
        scrub_interval = mesh.scrub_interval_secs,
        rpc_url = rpc_url,
        deployment = quoted(&values.deployment),
        keystore = quoted(&values.keystore),
        metrics = quoted(&values.metrics_addr),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> TemplateValues {
        TemplateValues {
            data_dir: "data".to_string(),
            listen_addr: SocketAddr::from(([0, 0, 0, 0], 7700)),
            rpc_url: Some("http://127.0.0.1:8545".to_string()),
            deployment: "dbytes-deployment.json".to_string(),
            keystore: "wallet.json".to_string(),
            metrics_addr: "127.0.0.1:9464".to_string(),
        }
    }

    #[test]
    fn the_template_parses_to_the_defaults_it_documents() {
        let text = config_template(&values());
        let config = DaemonConfig::parse(&text, [], Path::new("provider.toml")).unwrap();
        let defaults = DaemonConfig::default();
        assert_eq!(config.mesh.data_dir, PathBuf::from("data"));
        assert_eq!(config.mesh.capacity_bytes, defaults.mesh.capacity_bytes);
        assert_eq!(config.listing, defaults.listing);
        assert_eq!(config.policy, defaults.policy);
        assert_eq!(config.intervals, defaults.intervals);
        assert_eq!(config.faults, defaults.faults);
        assert_eq!(config.faults.response_delay_ms, 0);
        assert_eq!(
            config.chain.rpc_url.as_deref(),
            Some("http://127.0.0.1:8545")
        );
        let checked = config.check().unwrap();
        assert_eq!(checked.listing.accept, AcceptPolicy::Auto);
        assert_eq!(checked.listing.capacity_bytes, defaults.mesh.capacity_bytes);
        assert_eq!(checked.listing.price_per_gib_month, 10u128.pow(18));
        assert_eq!(checked.rules.min_price_per_gib_month, 10u128.pow(18));
        assert_eq!(
            checked.metrics_addr,
            Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
    }

    #[test]
    fn environment_overrides_win_and_unknown_ones_are_refused() {
        let text = config_template(&values());
        let overrides = [
            ("DBYTES_PROVIDER_CHAIN_RPC_URL", "http://10.0.0.1:8545"),
            ("DBYTES_PROVIDER_MESH_LISTEN_ADDR", "127.0.0.1:0"),
            ("DBYTES_PROVIDER_MESH_CAPACITY_BYTES", "4096"),
            ("DBYTES_PROVIDER_LISTING_PRICE_PER_GIB_MONTH", "2"),
            ("DBYTES_PROVIDER_POLICY_DECIDE", "operator"),
            ("DBYTES_PROVIDER_FAULTS_RESPONSE_DELAY_MS", "250"),
            ("DBYTES_PROVIDER_PASSWORD", "not a field"),
        ]
        .map(|(name, value)| (name.to_string(), value.to_string()));
        let config = DaemonConfig::parse(&text, overrides, Path::new("p.toml")).unwrap();
        assert_eq!(
            config.chain.rpc_url.as_deref(),
            Some("http://10.0.0.1:8545")
        );
        assert_eq!(
            config.mesh.listen_addr,
            SocketAddr::from(([127, 0, 0, 1], 0))
        );
        assert_eq!(config.mesh.capacity_bytes, 4096);
        assert_eq!(config.policy.decide, Decider::Operator);
        assert_eq!(config.faults.response_delay_ms, 250);
        assert_eq!(
            config.check().unwrap().listing.price_per_gib_month,
            2 * 10u128.pow(18)
        );

        let unknown = [("DBYTES_PROVIDER_NOPE_X".to_string(), "1".to_string())];
        assert!(matches!(
            DaemonConfig::parse(&text, unknown, Path::new("p.toml")),
            Err(ConfigError::UnknownOverride(_))
        ));
        let typo = [("DBYTES_PROVIDER_CHAIN_RPC".to_string(), "x".to_string())];
        assert!(matches!(
            DaemonConfig::parse(&text, typo, Path::new("p.toml")),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused_by_name() {
        let parse = |text: &str| DaemonConfig::parse(text, [], Path::new("p.toml"));
        assert!(matches!(
            parse("[listing]\nprise = \"1\"\n"),
            Err(ConfigError::Parse { .. })
        ));
        let bad_price = parse("[listing]\nprice_per_gib_month = \"cheap\"\n").unwrap();
        assert!(matches!(
            bad_price.check(),
            Err(ConfigError::Field {
                field: "price_per_gib_month",
                ..
            })
        ));
        let bad_hint = parse("[listing]\naddress_hints = [\"nowhere\"]\n").unwrap();
        assert!(matches!(
            bad_hint.check(),
            Err(ConfigError::Field {
                field: "address_hints",
                ..
            })
        ));
        let numbers = parse("[listing]\nprice_per_gib_month = 3\ncapacity = \"1GiB\"\n")
            .unwrap()
            .check()
            .unwrap();
        assert_eq!(numbers.listing.price_per_gib_month, 3 * 10u128.pow(18));
        assert_eq!(numbers.listing.capacity_bytes, 1 << 30);
        let off = parse("[metrics]\nlisten_addr = \"off\"\n").unwrap();
        assert_eq!(off.check().unwrap().metrics_addr, None);
    }

    #[test]
    fn address_hints_fit_the_listing() {
        let plan = DaemonConfig::default().check().unwrap().listing;
        let many: Vec<SocketAddr> = (0..100u16)
            .map(|port| SocketAddr::from(([10, 0, 0, 1], 7000 + port)))
            .collect();
        let hints = plan.hints(&many);
        assert!(hints.len() <= MAX_ADDRESS_HINTS_BYTES);
        assert!(hints.starts_with(b"10.0.0.1:7000,10.0.0.1:7001"));
        assert_eq!(plan.hints(&many[..1]).as_ref(), b"10.0.0.1:7000");
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let mut config = DaemonConfig::default();
        config.wallet.keystore = PathBuf::from("/abs/wallet.json");
        config.resolve_paths(Path::new("/etc/dbytes"));
        assert_eq!(
            config.mesh.data_dir,
            Path::new("/etc/dbytes/dbytes-provider")
        );
        assert_eq!(config.wallet.keystore, Path::new("/abs/wallet.json"));
        assert_eq!(
            config.chain.deployment,
            Path::new("/etc/dbytes").join(deployment::DEFAULT_FILE)
        );
    }
}
