//! Where the key that signs transactions comes from: the recovery phrase
//! (the wallet of [`RootSecret`]) or a keystore file, either a root keystore
//! (`dbytes wallet new`) or a plain Web3 wallet keystore (geth, MetaMask,
//! `cast wallet`).

use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use rand::{CryptoRng, Rng};
use zeroize::Zeroizing;

use super::error::ChainError;
use crate::keys::RootSecret;
use crate::keystore::{self, KeystoreError};

/// The BIP-44 path of account `index` (`m/44'/60'/0'/0/index`); index 0 is
/// [`RootSecret::wallet`], the others are the accounts anvil and wallets
/// derive from the same phrase.
pub fn account_path(index: u32) -> String {
    format!("m/44'/60'/0'/0/{index}")
}

/// How to obtain the signing key.
#[derive(Clone)]
pub enum WalletSource {
    /// A BIP-39 recovery phrase and the account index under it.
    Mnemonic {
        /// The phrase.
        phrase: Zeroizing<String>,
        /// Account index (0 for the dBytes wallet).
        index: u32,
    },
    /// A keystore file: a root keystore (holding a phrase; `index` picks
    /// the account) or a wallet keystore (holding one key).
    Keystore {
        /// The file.
        path: PathBuf,
        /// Its password.
        password: Zeroizing<String>,
        /// Account index for a root keystore.
        index: u32,
    },
}

impl std::fmt::Debug for WalletSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalletSource::Mnemonic { index, .. } => write!(f, "Mnemonic(account {index})"),
            WalletSource::Keystore { path, index, .. } => {
                write!(f, "Keystore({}, account {index})", path.display())
            }
        }
    }
}

impl WalletSource {
    /// Opens the key.
    pub fn open(&self) -> Result<PrivateKeySigner, ChainError> {
        match self {
            WalletSource::Mnemonic { phrase, index } => {
                Ok(RootSecret::from_phrase(phrase)?.wallet_at(&account_path(*index))?)
            }
            WalletSource::Keystore {
                path,
                password,
                index,
            } => open_keystore(path, password, *index),
        }
    }
}

/// Opens a root or wallet keystore, telling them apart by what decrypts.
fn open_keystore(path: &Path, password: &str, index: u32) -> Result<PrivateKeySigner, ChainError> {
    let secret = Zeroizing::new(eth_keystore::decrypt_key(path, password).map_err(
        |err| match err {
            eth_keystore::KeystoreError::MacMismatch => {
                KeystoreError::WrongPassword(path.to_owned())
            }
            other => KeystoreError::Unusable {
                path: path.to_owned(),
                reason: other.to_string(),
            },
        },
    )?);
    if let Ok(phrase) = std::str::from_utf8(&secret)
        && let Ok(root) = RootSecret::from_phrase(phrase)
    {
        return Ok(root.wallet_at(&account_path(index))?);
    }
    if secret.len() == 32
        && let Ok(signer) = PrivateKeySigner::from_slice(&secret)
    {
        return Ok(signer);
    }
    Err(KeystoreError::WrongContent {
        path: path.to_owned(),
        expected: "a recovery phrase or a secp256k1 private key",
    }
    .into())
}

/// Writes a root keystore for an existing recovery `phrase` (`dbytes wallet
/// import`); returns the wallet address.
pub fn import_phrase<R: Rng + CryptoRng>(
    path: &Path,
    phrase: &str,
    password: &str,
    rng: &mut R,
) -> Result<Address, ChainError> {
    refuse_overwrite(path)?;
    let root = RootSecret::from_phrase(phrase)?;
    keystore::write_root(path, &root, password, rng)?;
    Ok(root.address()?)
}

/// Writes a wallet keystore for a hex private key; returns its address.
pub fn import_private_key<R: Rng + CryptoRng>(
    path: &Path,
    private_key_hex: &str,
    password: &str,
    rng: &mut R,
) -> Result<Address, ChainError> {
    refuse_overwrite(path)?;
    let invalid = || {
        ChainError::Refused(
            "the private key is not a valid secp256k1 key (64 hex digits, optionally 0x-prefixed)"
                .to_string(),
        )
    };
    let bytes = Zeroizing::new(
        hex::decode(private_key_hex.trim().trim_start_matches("0x")).map_err(|_| invalid())?,
    );
    let signer = PrivateKeySigner::from_slice(&bytes).map_err(|_| invalid())?;
    keystore::write_wallet(path, &signer, password, rng)?;
    Ok(signer.address())
}

fn refuse_overwrite(path: &Path) -> Result<(), ChainError> {
    if path.exists() {
        return Err(ChainError::Refused(format!(
            "{} already exists; choose another --keystore or move it away first",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The phrase anvil and Hardhat derive their dev accounts from.
    const DEV_PHRASE: &str = "test test test test test test test test test test test junk";

    #[test]
    fn opens_both_kinds_of_keystore() {
        let dir = std::env::temp_dir().join(format!("dbytes-wallet-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut rng = rand::thread_rng();

        let root_path = dir.join("root.json");
        let address = import_phrase(&root_path, DEV_PHRASE, "pw", &mut rng).unwrap();
        assert_eq!(
            address.to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        let source = WalletSource::Keystore {
            path: root_path.clone(),
            password: Zeroizing::new("pw".into()),
            index: 1,
        };
        assert_eq!(
            source.open().unwrap().address().to_string(),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        );
        assert!(import_phrase(&root_path, DEV_PHRASE, "pw", &mut rng).is_err());

        let key_path = dir.join("key.json");
        let key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
        let address = import_private_key(&key_path, key, "pw", &mut rng).unwrap();
        let opened = WalletSource::Keystore {
            path: key_path,
            password: Zeroizing::new("pw".into()),
            index: 0,
        }
        .open()
        .unwrap();
        assert_eq!(opened.address(), address);

        let wrong = WalletSource::Keystore {
            path: root_path,
            password: Zeroizing::new("nope".into()),
            index: 0,
        }
        .open()
        .unwrap_err();
        assert!(wrong.to_string().contains("wrong password"), "{wrong}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
