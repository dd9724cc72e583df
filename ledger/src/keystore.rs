//! Keystore files in the Web3 Secret Storage format (version 3 JSON; scrypt
//! or PBKDF2 key derivation, AES-128-CTR, Keccak MAC), the format geth,
//! MetaMask, Foundry's `cast wallet` and alloy read and write.
//!
//! Two kinds of file use it: a wallet keystore (the 32-byte EVM private key,
//! importable into any Ethereum wallet) and a root keystore (the BIP-39
//! recovery phrase, from which every other key is derived again).

use std::path::{Path, PathBuf};

use alloy_signer_local::PrivateKeySigner;
use rand::{CryptoRng, Rng};
use zeroize::Zeroizing;

use crate::keys::{KeyError, RootSecret};

/// Why a keystore could not be written or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// The password does not open this keystore (the MAC did not match).
    #[error("wrong password for keystore {0}")]
    WrongPassword(PathBuf),
    /// The file is missing, unreadable, or not a Web3 Secret Storage JSON.
    #[error("cannot use keystore {path}: {reason}")]
    Unusable {
        /// The keystore file.
        path: PathBuf,
        /// What went wrong reading or writing it.
        reason: String,
    },
    /// The file decrypted but does not hold what this kind of keystore holds.
    #[error("keystore {path} does not hold {expected}")]
    WrongContent {
        /// The keystore file.
        path: PathBuf,
        /// What it should have held.
        expected: &'static str,
    },
    /// The decrypted root entropy is not a valid mnemonic.
    #[error(transparent)]
    Key(#[from] KeyError),
}

fn keystore_error(path: &Path, err: eth_keystore::KeystoreError) -> KeystoreError {
    match err {
        eth_keystore::KeystoreError::MacMismatch => KeystoreError::WrongPassword(path.to_owned()),
        other => KeystoreError::Unusable {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    }
}

fn split(path: &Path) -> Result<(&Path, &str), KeystoreError> {
    let unusable = || KeystoreError::Unusable {
        path: path.to_owned(),
        reason: "the path must name a file inside an existing directory".to_string(),
    };
    let dir = path.parent().ok_or_else(unusable)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(unusable)?;
    Ok((
        if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        },
        name,
    ))
}

/// Encrypts the wallet's private key with `password` into `path`.
pub fn write_wallet<R: Rng + CryptoRng>(
    path: &Path,
    wallet: &PrivateKeySigner,
    password: &str,
    rng: &mut R,
) -> Result<(), KeystoreError> {
    let (dir, name) = split(path)?;
    let key = Zeroizing::new(wallet.to_bytes().0);
    eth_keystore::encrypt_key(dir, rng, key.as_slice(), password, Some(name))
        .map_err(|err| keystore_error(path, err))?;
    Ok(())
}

/// Opens a wallet keystore written by [`write_wallet`], geth, MetaMask or `cast wallet`.
pub fn read_wallet(path: &Path, password: &str) -> Result<PrivateKeySigner, KeystoreError> {
    let key = Zeroizing::new(
        eth_keystore::decrypt_key(path, password).map_err(|err| keystore_error(path, err))?,
    );
    PrivateKeySigner::from_slice(&key).map_err(|_| KeystoreError::WrongContent {
        path: path.to_owned(),
        expected: "a secp256k1 private key",
    })
}

/// Encrypts the recovery phrase of the root secret with `password` into `path`.
pub fn write_root<R: Rng + CryptoRng>(
    path: &Path,
    root: &RootSecret,
    password: &str,
    rng: &mut R,
) -> Result<(), KeystoreError> {
    let (dir, name) = split(path)?;
    eth_keystore::encrypt_key(dir, rng, root.phrase().as_bytes(), password, Some(name))
        .map_err(|err| keystore_error(path, err))?;
    Ok(())
}

/// Opens a root keystore written by [`write_root`] and restores the root secret.
pub fn read_root(path: &Path, password: &str) -> Result<RootSecret, KeystoreError> {
    let phrase = Zeroizing::new(
        eth_keystore::decrypt_key(path, password).map_err(|err| keystore_error(path, err))?,
    );
    let phrase = std::str::from_utf8(&phrase).map_err(|_| KeystoreError::WrongContent {
        path: path.to_owned(),
        expected: "a BIP-39 recovery phrase",
    })?;
    Ok(RootSecret::from_phrase(phrase)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::hex;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "dbytes-keystore-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The PBKDF2 test vector of the Web3 Secret Storage definition.
    #[test]
    fn opens_the_definitions_test_vector() {
        let dir = temp_dir();
        let path = dir.join("vector.json");
        std::fs::write(
            &path,
            r#"{"crypto":{"cipher":"aes-128-ctr","cipherparams":{"iv":"6087dab2f9fdbbfaddc31a909735c1e6"},
            "ciphertext":"5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46","kdf":"pbkdf2",
            "kdfparams":{"c":262144,"dklen":32,"prf":"hmac-sha256","salt":"ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd"},
            "mac":"517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2"},
            "id":"3198bc9c-6672-5ab3-d995-4942343ae5b6","version":3}"#,
        )
        .unwrap();
        let wallet = read_wallet(&path, "testpassword").unwrap();
        assert_eq!(
            wallet.to_bytes().0,
            hex!("7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d")
        );
        assert!(matches!(
            read_wallet(&path, "wrong"),
            Err(KeystoreError::WrongPassword(_))
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn wallet_and_root_round_trip() {
        let dir = temp_dir();
        let mut rng = rand::thread_rng();
        let root = RootSecret::generate(&mut rng, 24).unwrap();
        let wallet = root.wallet().unwrap();

        write_wallet(&dir.join("wallet.json"), &wallet, "pw", &mut rng).unwrap();
        let opened = read_wallet(&dir.join("wallet.json"), "pw").unwrap();
        assert_eq!(opened.address(), wallet.address());

        write_root(&dir.join("root.json"), &root, "pw", &mut rng).unwrap();
        let restored = read_root(&dir.join("root.json"), "pw").unwrap();
        assert_eq!(restored.phrase(), root.phrase());
        assert!(matches!(
            read_root(&dir.join("root.json"), "nope"),
            Err(KeystoreError::WrongPassword(_))
        ));

        let missing = read_wallet(&dir.join("absent.json"), "pw").unwrap_err();
        assert!(missing.to_string().contains("absent.json"), "{missing}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
