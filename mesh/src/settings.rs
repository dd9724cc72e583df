//! The provider's mesh settings as an operator writes them in a config file.
//!
//! [`ProviderSettings`] is the `serde` form (plain units: bytes, seconds,
//! strings) that the CLI reads from the `[mesh]` part of the provider's TOML
//! config and overrides from the environment; [`ProviderSettings::to_config`]
//! checks it and turns it into the [`ProviderConfig`] a [`ProviderNode`]
//! starts from. Missing fields take their defaults; unknown fields are
//! refused, so a typo does not silently fall back to a default.
//!
//! [`ProviderNode`]: crate::provider::ProviderNode

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

use crate::provider::{ProviderConfig, ScrubConfig, ServiceConfig};
use crate::store::StoreConfig;
use crate::transport::{Relays, TransportConfig};

/// The mesh part of a provider's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderSettings {
    /// Where pieces, their index and the node key live.
    pub data_dir: PathBuf,
    /// Bytes of pieces offered in total.
    pub capacity_bytes: u64,
    /// The UDP address the piece protocol listens on.
    pub listen_addr: SocketAddr,
    /// Relay servers for reaching a provider behind NAT: `[]` for none (the
    /// default: direct addresses only), `["public"]` for number 0's public
    /// relays, or relay URLs.
    pub relays: Vec<String>,
    /// Requests a peer may have in flight on one connection.
    pub max_streams_per_connection: u32,
    /// Requests in flight over all connections.
    pub max_concurrent_requests: usize,
    /// Bytes per second the scrub re-hashes at most (0 turns it off).
    pub scrub_bytes_per_sec: u64,
    /// Seconds between scrub passes.
    pub scrub_interval_secs: u64,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        let transport = TransportConfig::default();
        let service = ServiceConfig::default();
        let scrub = ScrubConfig::default();
        ProviderSettings {
            data_dir: PathBuf::from("dbytes-provider"),
            capacity_bytes: 100 << 30,
            listen_addr: SocketAddr::from(([0, 0, 0, 0], 7700)),
            relays: Vec::new(),
            max_streams_per_connection: transport.max_concurrent_streams,
            max_concurrent_requests: service.max_concurrent_requests,
            scrub_bytes_per_sec: scrub.bytes_per_sec,
            scrub_interval_secs: scrub.pass_interval.as_secs(),
        }
    }
}

/// A setting that does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A relay entry is neither `public` nor a URL.
    #[error("relay {0:?} is neither \"public\" nor a relay URL (like https://relay.example.com)")]
    InvalidRelay(String),
    /// `public` mixed with URLs.
    #[error("relays are either [\"public\"] or a list of relay URLs, not both")]
    MixedRelays,
    /// A count that must be positive is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

/// Relays as a config file lists them: `[]` for none, `["public"]` for
/// number 0's public relays, or relay URLs.
pub fn parse_relays(entries: &[String]) -> Result<Relays, SettingsError> {
    Ok(match entries {
        [] => Relays::Disabled,
        [only] if only == "public" => Relays::Public,
        urls => Relays::Custom(
            urls.iter()
                .map(|url| {
                    if url == "public" {
                        return Err(SettingsError::MixedRelays);
                    }
                    url.parse()
                        .map_err(|_| SettingsError::InvalidRelay(url.clone()))
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

impl ProviderSettings {
    /// The node key file: `<data dir>/node.key`.
    pub fn node_key_path(&self) -> PathBuf {
        self.data_dir.join("node.key")
    }

    /// Checks the settings and makes the provider's configuration;
    /// `provider_address` is the provider's wallet (its deals only).
    pub fn to_config(
        &self,
        provider_address: Option<Address>,
    ) -> Result<ProviderConfig, SettingsError> {
        if self.max_streams_per_connection == 0 {
            return Err(SettingsError::Zero("max_streams_per_connection"));
        }
        if self.max_concurrent_requests == 0 {
            return Err(SettingsError::Zero("max_concurrent_requests"));
        }
        let relays = parse_relays(&self.relays)?;
        Ok(ProviderConfig {
            store: StoreConfig {
                data_dir: self.data_dir.join("store"),
                capacity_bytes: self.capacity_bytes,
            },
            transport: TransportConfig {
                bind_addr: self.listen_addr,
                relays,
                max_concurrent_streams: self.max_streams_per_connection,
                ..TransportConfig::default()
            },
            service: ServiceConfig {
                provider_address,
                max_concurrent_requests: self.max_concurrent_requests,
                ..ServiceConfig::default()
            },
            scrub: ScrubConfig {
                bytes_per_sec: self.scrub_bytes_per_sec,
                pass_interval: Duration::from_secs(self.scrub_interval_secs),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_take_defaults_and_unknown_fields_are_refused() {
        let settings: ProviderSettings =
            serde_json::from_str(r#"{"capacity_bytes": 1000, "relays": ["public"]}"#).unwrap();
        assert_eq!(settings.capacity_bytes, 1000);
        assert_eq!(
            settings.listen_addr,
            ProviderSettings::default().listen_addr
        );
        let config = settings.to_config(None).unwrap();
        assert_eq!(config.transport.relays, Relays::Public);
        assert_eq!(config.store.capacity_bytes, 1000);
        assert!(serde_json::from_str::<ProviderSettings>(r#"{"capacity": 1}"#).is_err());
    }

    #[test]
    fn relays_are_none_public_or_urls() {
        let with = |relays: &[&str]| ProviderSettings {
            relays: relays.iter().map(|relay| relay.to_string()).collect(),
            ..ProviderSettings::default()
        };
        assert_eq!(
            with(&[]).to_config(None).unwrap().transport.relays,
            Relays::Disabled
        );
        assert!(matches!(
            with(&["https://relay.example.com"])
                .to_config(None)
                .unwrap()
                .transport
                .relays,
            Relays::Custom(urls) if urls.len() == 1
        ));
        assert_eq!(
            with(&["public", "https://relay.example.com"]).to_config(None),
            Err(SettingsError::MixedRelays)
        );
        assert_eq!(
            with(&["not a url"]).to_config(None),
            Err(SettingsError::InvalidRelay("not a url".to_string()))
        );
    }
}
