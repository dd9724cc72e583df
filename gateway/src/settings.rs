//! The gateway's configuration file, as its operator writes it.
//!
//! [`GatewaySettings`] is the TOML form (plain units: strings for tokens
//! and sizes, seconds for durations) of `dbytes gateway --config F`.
//! Missing fields take their defaults; unknown fields are refused, so a typo
//! does not silently fall back to a default. Relative paths are taken from
//! the directory the file is in ([`GatewaySettings::load`]), so a gateway
//! directory can be moved whole. [`TEMPLATE`] is the commented file
//! `dbytes gateway init` writes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The config file `dbytes gateway init` writes (every setting, commented).
pub const TEMPLATE: &str = include_str!("settings.template.toml");

/// A gateway's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// The S3 endpoint.
    pub s3: S3Settings,
    /// Where the gateway keeps its state and how it stores objects.
    pub storage: StorageSettings,
    /// The chain and its contracts.
    pub chain: ChainSettings,
    /// The gateway's root secret (wallet, data keys and node key).
    pub secret: SecretSettings,
    /// How the gateway reaches providers.
    pub mesh: MeshSettings,
    /// Which deals the gateway may open on its own.
    pub deals: DealSettings,
    /// The Prometheus endpoint.
    pub metrics: MetricsSettings,
    /// The repair worker.
    pub repair: RepairSettings,
    /// The chain watcher.
    pub watch: WatchSettings,
}

/// The S3 endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// Address S3 clients connect to.
    pub listen: SocketAddr,
    /// The region reported to clients (any region signs correctly).
    pub region: String,
    /// Domains for virtual-hosted-style requests (`bucket.domain`).
    pub virtual_host_domains: Vec<String>,
}

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            region: "us-east-1".to_owned(),
            virtual_host_domains: Vec::new(),
        }
    }
}

/// Where the gateway keeps its state and how it stores objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// The book (`book.redb`), the market index and the node's state.
    pub data_dir: PathBuf,
    /// Data pieces per segment of new buckets.
    pub data_pieces: u16,
    /// Pieces per segment (data + parity) of new buckets.
    pub total_pieces: u16,
    /// Segments stored at once per upload.
    pub segments_in_flight: usize,
    /// Bytes of each piece of new objects (a power of two, at least
    /// 128 KiB); 0 picks it from the redundancy (32 MiB segments).
    pub piece_size_bytes: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            data_dir: PathBuf::from("."),
            data_pieces: 4,
            total_pieces: 6,
            segments_in_flight: 2,
            piece_size_bytes: 0,
        }
    }
}

/// The chain and its contracts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainSettings {
    /// JSON-RPC endpoint; empty for the one in the deployment file.
    pub rpc_url: String,
    /// The deployment file written by `dbytes contracts deploy`.
    pub deployment: PathBuf,
}

impl Default for ChainSettings {
    fn default() -> Self {
        ChainSettings {
            rpc_url: String::new(),
            deployment: PathBuf::from(dbytes_ledger::chain::deployment::DEFAULT_FILE),
        }
    }
}

/// The gateway's root secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretSettings {
    /// The root keystore (`dbytes wallet new` writes one): the recovery
    /// phrase every key of the gateway is derived from.
    pub keystore: PathBuf,
    /// A file holding the keystore's password; when empty, the password
    /// comes from the environment variable `DBYTES_GATEWAY_PASSWORD`.
    pub password_file: PathBuf,
}

impl Default for SecretSettings {
    fn default() -> Self {
        SecretSettings {
            keystore: PathBuf::from("root-keystore.json"),
            password_file: PathBuf::new(),
        }
    }
}

/// How the gateway reaches providers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshSettings {
    /// The UDP address of the gateway's iroh endpoint.
    pub listen: SocketAddr,
    /// Relay servers: `[]` for none (direct addresses only), `["public"]`
    /// for number 0's public relays, or relay URLs.
    pub relays: Vec<String>,
}

impl Default for MeshSettings {
    fn default() -> Self {
        MeshSettings {
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            relays: Vec::new(),
        }
    }
}

/// Which deals the gateway may open on its own when placement finds too
/// little capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DealSettings {
    /// Tokens the gateway may commit to new deals in total ("0" opens none).
    pub budget: String,
    /// The highest price per GiB-month it accepts.
    pub max_price_per_gib_month: String,
    /// Capacity of each deal it opens (e.g. "8GiB").
    pub deal_size: String,
    /// Periods each deal it opens runs.
    pub deal_periods: u64,
}

impl Default for DealSettings {
    fn default() -> Self {
        DealSettings {
            budget: "0".to_owned(),
            max_price_per_gib_month: "1".to_owned(),
            deal_size: "8GiB".to_owned(),
            deal_periods: 720,
        }
    }
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Address of `/metrics`; empty to serve none.
    pub listen: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            listen: "127.0.0.1:9100".to_owned(),
        }
    }
}

/// The repair worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepairSettings {
    /// Whether the worker runs.
    pub enabled: bool,
    /// Seconds between passes over the repair queue.
    pub interval_secs: u64,
    /// Seconds between audits of every placed piece.
    pub audit_interval_secs: u64,
    /// The most segments repaired per second.
    pub segments_per_sec: u32,
    /// The most regenerated bytes stored per second.
    pub bytes_per_sec: u64,
}

impl Default for RepairSettings {
    fn default() -> Self {
        RepairSettings {
            enabled: true,
            interval_secs: 30,
            audit_interval_secs: 600,
            segments_per_sec: 4,
            bytes_per_sec: 64 << 20,
        }
    }
}

impl RepairSettings {
    /// The worker's tuning.
    pub fn tuning(&self) -> crate::repair::RepairTuning {
        crate::repair::RepairTuning {
            audit_interval: std::time::Duration::from_secs(self.audit_interval_secs.max(1)),
            interval: std::time::Duration::from_secs(self.interval_secs.max(1)),
            segments_per_sec: f64::from(self.segments_per_sec.max(1)),
            bytes_per_sec: self.bytes_per_sec.max(1) as f64,
        }
    }
}

/// The chain watcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchSettings {
    /// Whether it runs.
    pub enabled: bool,
    /// Seconds between rounds; 0 for a quarter of a period (1 s to 60 s).
    pub interval_secs: u64,
}

impl Default for WatchSettings {
    fn default() -> Self {
        WatchSettings {
            enabled: true,
            interval_secs: 0,
        }
    }
}

impl WatchSettings {
    /// The watcher's tuning on a chain with `period_secs` periods.
    pub fn tuning(&self, period_secs: u64) -> crate::watch::WatchTuning {
        let mut tuning = crate::watch::WatchTuning::for_period(period_secs);
        if self.interval_secs > 0 {
            tuning.interval = std::time::Duration::from_secs(self.interval_secs);
        }
        tuning
    }
}

/// A config file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("cannot read the gateway config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of this shape.
    #[error("the gateway config {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the line and the field).
        message: String,
    },
}

impl GatewaySettings {
    /// Reads `path`, with relative paths taken from its directory.
    pub fn load(path: &Path) -> Result<GatewaySettings, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut settings: GatewaySettings =
            toml::from_str(&text).map_err(|err| SettingsError::Parse {
                path: path.to_owned(),
                message: err.to_string(),
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        settings.resolve_paths(base);
        Ok(settings)
    }

    /// Makes every relative path relative to `base` instead.
    pub fn resolve_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if !path.as_os_str().is_empty() && path.is_relative() {
                *path = base.join(&*path);
            }
        };
        resolve(&mut self.storage.data_dir);
        resolve(&mut self.chain.deployment);
        resolve(&mut self.secret.keystore);
        resolve(&mut self.secret.password_file);
    }

    /// The book: `<data dir>/book.redb`.
    pub fn book_path(&self) -> PathBuf {
        self.storage.data_dir.join("book.redb")
    }

    /// The market index: `<data dir>/market.redb`.
    pub fn market_index_path(&self) -> PathBuf {
        self.storage.data_dir.join("market.redb")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parses_to_the_defaults() {
        let parsed: GatewaySettings = toml::from_str(TEMPLATE).unwrap();
        assert_eq!(parsed, GatewaySettings::default());
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let err = toml::from_str::<GatewaySettings>("[s3]\nlisten_addr = \"127.0.0.1:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_addr"), "{err}");
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(
            &path,
            "[storage]\ndata_dir = \"state\"\n[secret]\nkeystore = \"/abs/root.json\"\n",
        )
        .unwrap();
        let settings = GatewaySettings::load(&path).unwrap();
        assert_eq!(settings.storage.data_dir, dir.path().join("state"));
        assert_eq!(settings.secret.keystore, PathBuf::from("/abs/root.json"));
        assert_eq!(
            settings.chain.deployment,
            dir.path().join("dbytes-deployment.json")
        );
        assert_eq!(settings.secret.password_file, PathBuf::new());
    }
}
