//! `dbytes provider init`: a directory a provider runs from.
//!
//! Writes `provider.toml` (commented, [`config_template`]), a root keystore
//! `wallet.json` holding the recovery phrase (given or generated), and the
//! node key derived from the same phrase under the data dir, so the whole
//! provider can be rebuilt from the phrase. Non-interactive: the password is
//! passed in (the CLI takes it from `DBYTES_PROVIDER_PASSWORD`), so `dbytes
//! devnet` can call [`init_provider`] directly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use alloy_primitives::Address;
use dbytes_ledger::keys::{KeyError, RootSecret};
use dbytes_ledger::keystore::{self, KeystoreError};
use zeroize::Zeroizing;

use super::config::{CONFIG_FILE, TemplateValues, config_template};
use crate::transport::{TransportError, node_id, write_node_secret};

/// The keystore's file name in the provider directory.
pub const KEYSTORE_FILE: &str = "wallet.json";
/// The data directory's name in the provider directory.
pub const DATA_DIR: &str = "data";

/// What to initialise.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The provider directory (created if missing).
    pub dir: PathBuf,
    /// `[chain] rpc_url` (default: the deployment file's).
    pub rpc_url: Option<String>,
    /// The deployment file (default: `dbytes-deployment.json` next to the
    /// config); made absolute if relative to the working directory.
    pub deployment: Option<PathBuf>,
    /// The recovery phrase to derive the wallet and node key from; `None`
    /// generates a 24-word one.
    pub mnemonic: Option<Zeroizing<String>>,
    /// The keystore's password.
    pub password: Zeroizing<String>,
    /// `[mesh] listen_addr`.
    pub listen_addr: SocketAddr,
    /// `[metrics] listen_addr` (`off` for none).
    pub metrics_addr: String,
}

impl InitOptions {
    /// Options with defaults: listen on every interface on port 7700,
    /// metrics on 127.0.0.1:9464, a generated phrase.
    pub fn new(dir: PathBuf, password: Zeroizing<String>) -> InitOptions {
        InitOptions {
            dir,
            rpc_url: None,
            deployment: None,
            mnemonic: None,
            password,
            listen_addr: SocketAddr::from(([0, 0, 0, 0], 7700)),
            metrics_addr: "127.0.0.1:9464".to_string(),
        }
    }
}

/// What [`init_provider`] wrote.
#[derive(Debug)]
pub struct InitReport {
    /// The config file.
    pub config: PathBuf,
    /// The keystore.
    pub keystore: PathBuf,
    /// The wallet to fund (gas and tokens).
    pub address: Address,
    /// The iroh node id.
    pub node_id: String,
    /// The phrase, if it was generated (show it once; it is the only backup).
    pub generated_phrase: Option<Zeroizing<String>>,
}

/// Why init failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The directory already holds a provider.
    #[error("{} already exists; use another --dir or move it away", .0.display())]
    Exists(PathBuf),
    /// The phrase is not a valid BIP-39 phrase.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The keystore could not be written.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The node key could not be written.
    #[error(transparent)]
    NodeKey(#[from] TransportError),
    /// A file or directory could not be written.
    #[error("could not write {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a provider directory: config, keystore, node key. Refuses to
/// overwrite an existing config or keystore. Blocking (the keystore's key
/// derivation is deliberately slow).
pub fn init_provider(options: &InitOptions) -> Result<InitReport, InitError> {
    let dir = &options.dir;
    let config = dir.join(CONFIG_FILE);
    let keystore_path = dir.join(KEYSTORE_FILE);
    for path in [&config, &keystore_path] {
        if path.exists() {
            return Err(InitError::Exists(path.clone()));
        }
    }
    let data_dir = dir.join(DATA_DIR);
    std::fs::create_dir_all(&data_dir).map_err(io_error(&data_dir))?;
    let mut rng = rand::thread_rng();
    let (root, generated) = match &options.mnemonic {
        Some(phrase) => (RootSecret::from_phrase(phrase.trim())?, false),
        None => (RootSecret::generate(&mut rng, 24)?, true),
    };
    let secret = root.node_secret();
    write_node_secret(&data_dir.join("node.key"), &secret)?;
    keystore::write_root(&keystore_path, &root, &options.password, &mut rng)?;
    let deployment = match &options.deployment {
        Some(path) if path.is_relative() => std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.clone()),
        Some(path) => path.clone(),
        None => PathBuf::from(dbytes_ledger::chain::deployment::DEFAULT_FILE),
    };
    let text = config_template(&TemplateValues {
        data_dir: DATA_DIR.to_string(),
        listen_addr: options.listen_addr,
        rpc_url: options.rpc_url.clone(),
        deployment: deployment.display().to_string(),
        keystore: KEYSTORE_FILE.to_string(),
        metrics_addr: options.metrics_addr.clone(),
    });
    std::fs::write(&config, text).map_err(io_error(&config))?;
    Ok(InitReport {
        config,
        keystore: keystore_path,
        address: root.address()?,
        node_id: node_id(&secret).to_string(),
        generated_phrase: generated.then(|| Zeroizing::new(root.phrase().to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::config::DaemonConfig;
    use crate::transport::load_or_create_node_secret;

    const PHRASE: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon \
                          abandon abandon about";

    #[test]
    fn init_writes_a_config_keystore_and_node_key_from_the_phrase() {
        let dir = std::env::temp_dir().join(format!(
            "dbytes-mesh-init-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let options = InitOptions {
            mnemonic: Some(Zeroizing::new(PHRASE.to_string())),
            rpc_url: Some("http://127.0.0.1:8545".to_string()),
            ..InitOptions::new(dir.clone(), Zeroizing::new("secret".to_string()))
        };
        let report = init_provider(&options).unwrap();
        let root = RootSecret::from_phrase(PHRASE).unwrap();
        assert_eq!(report.address, root.address().unwrap());
        assert!(report.generated_phrase.is_none());

        let config = DaemonConfig::load(&report.config).unwrap();
        assert_eq!(config.mesh.data_dir, dir.join(DATA_DIR));
        assert_eq!(config.wallet.keystore, dir.join(KEYSTORE_FILE));
        assert_eq!(
            config.chain.rpc_url.as_deref(),
            Some("http://127.0.0.1:8545")
        );
        let opened = keystore::read_root(&config.wallet.keystore, "secret").unwrap();
        assert_eq!(opened.address().unwrap(), report.address);
        let node_key = load_or_create_node_secret(&config.mesh.node_key_path()).unwrap();
        assert_eq!(node_key.as_bytes(), root.node_secret().as_bytes());
        assert_eq!(report.node_id, node_id(&node_key).to_string());

        // A second init into the same directory is refused.
        assert!(matches!(init_provider(&options), Err(InitError::Exists(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
