//! Every key a dBytes user holds, derived from one BIP-39 mnemonic.
//!
//! ```text
//! mnemonic ──BIP-39──▶ seed ─┬─BIP-32 m/44'/60'/0'/0/0──▶ EVM wallet key
//!                            ├─HKDF "dbytes/data/v1"──▶ data master key
//!                            │      └─HKDF "dbytes/bucket/v1" ‖ bucket id──▶ bucket key
//!                            │             └─HKDF "dbytes/version/v1" ‖ version id──▶ version key
//!                            └─HKDF "dbytes/node/v1"──▶ iroh node secret key
//! ```
//!
//! The wallet path is the one MetaMask, Foundry and anvil use, so the same
//! mnemonic opens the same account everywhere. The other keys come from
//! HKDF-SHA256 (RFC 5869) with distinct `info` strings, so learning one of
//! them (a leaked bucket key, say) reveals nothing about its siblings or its
//! parent. Secrets are zeroized when dropped.

use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use alloy_signer_local::coins_bip39::{English, Mnemonic, MnemonicError};
use coins_bip32::xkeys::XPriv;
use hkdf::Hkdf;
use rand::{CryptoRng, Rng};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The BIP-44 path of the EVM account: coin type 60 (Ether), account 0, first address.
pub const WALLET_DERIVATION_PATH: &str = "m/44'/60'/0'/0/0";

/// Salt of the HKDF extract step from the BIP-39 seed; bumping it rotates every derived key.
const ROOT_SALT: &[u8] = b"dbytes/root/v1";
const DATA_INFO: &[u8] = b"dbytes/data/v1";
const NODE_INFO: &[u8] = b"dbytes/node/v1";
const BUCKET_INFO: &[u8] = b"dbytes/bucket/v1";
const VERSION_INFO: &[u8] = b"dbytes/version/v1";

/// Why a key could not be derived or restored.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The recovery phrase is not a valid BIP-39 English mnemonic.
    #[error(
        "the recovery phrase is not a valid BIP-39 mnemonic ({0}); check the words, their order \
         and that it has 12, 15, 18, 21 or 24 of them"
    )]
    InvalidMnemonic(String),
    /// A word count BIP-39 does not define.
    #[error("a recovery phrase has 12, 15, 18, 21 or 24 words, not {0}")]
    InvalidWordCount(usize),
    /// BIP-32 derivation failed (an astronomically unlikely invalid child key).
    #[error("deriving the wallet key at {path} failed: {reason}")]
    Derivation {
        /// The derivation path that failed.
        path: String,
        /// What the BIP-32 library reported.
        reason: String,
    },
}

impl From<MnemonicError> for KeyError {
    fn from(err: MnemonicError) -> Self {
        KeyError::InvalidMnemonic(err.to_string())
    }
}

/// A user's root secret: the BIP-39 mnemonic and the seed it stretches to.
///
/// Everything else (wallet, data keys, node identity) is derived from it, so
/// this is the one thing a user must back up. Deriving the seed runs PBKDF2
/// with 2048 rounds once, at construction; later derivations are cheap.
pub struct RootSecret {
    phrase: Zeroizing<String>,
    seed: Zeroizing<[u8; 64]>,
}

impl RootSecret {
    /// Generates a fresh mnemonic of `word_count` words (24 recommended) from `rng`.
    pub fn generate<R: Rng + CryptoRng>(rng: &mut R, word_count: usize) -> Result<Self, KeyError> {
        if !matches!(word_count, 12 | 15 | 18 | 21 | 24) {
            return Err(KeyError::InvalidWordCount(word_count));
        }
        let mnemonic = Mnemonic::<English>::new_with_count(rng, word_count)?;
        Self::from_phrase(&mnemonic.to_phrase())
    }

    /// Restores the root secret from its recovery phrase (no BIP-39 passphrase).
    pub fn from_phrase(phrase: &str) -> Result<Self, KeyError> {
        Self::from_phrase_with_passphrase(phrase, "")
    }

    /// Restores the root secret from its recovery phrase and a BIP-39
    /// passphrase (the "25th word"; empty for none).
    pub fn from_phrase_with_passphrase(phrase: &str, passphrase: &str) -> Result<Self, KeyError> {
        let normalized = phrase.split_whitespace().collect::<Vec<_>>().join(" ");
        let mnemonic = Mnemonic::<English>::new_from_phrase(&normalized)?;
        let passphrase = (!passphrase.is_empty()).then_some(passphrase);
        let seed = Zeroizing::new(mnemonic.to_seed(passphrase)?);
        Ok(RootSecret {
            phrase: Zeroizing::new(normalized),
            seed,
        })
    }

    /// The recovery phrase, words separated by single spaces.
    pub fn phrase(&self) -> &str {
        &self.phrase
    }

    /// The 64-byte BIP-39 seed.
    pub fn seed(&self) -> &[u8; 64] {
        &self.seed
    }

    /// The EVM wallet at [`WALLET_DERIVATION_PATH`].
    pub fn wallet(&self) -> Result<PrivateKeySigner, KeyError> {
        self.wallet_at(WALLET_DERIVATION_PATH)
    }

    /// The EVM wallet at any BIP-32 `path` (for example `m/44'/60'/0'/0/1`).
    pub fn wallet_at(&self, path: &str) -> Result<PrivateKeySigner, KeyError> {
        let derivation = |reason: String| KeyError::Derivation {
            path: path.to_string(),
            reason,
        };
        let root = XPriv::root_from_seed(self.seed.as_slice(), None)
            .map_err(|err| derivation(err.to_string()))?;
        let child = root
            .derive_path(path)
            .map_err(|err| derivation(err.to_string()))?;
        let signing_key: &coins_bip32::ecdsa::SigningKey = child.as_ref();
        Ok(PrivateKeySigner::from_signing_key(signing_key.clone()))
    }

    /// The address of [`RootSecret::wallet`].
    pub fn address(&self) -> Result<Address, KeyError> {
        Ok(self.wallet()?.address())
    }

    /// The data master key: the root of every bucket and version key.
    pub fn data_master_key(&self) -> DataMasterKey {
        DataMasterKey(self.expand(DATA_INFO))
    }

    /// The 32-byte secret of the iroh node identity (an Ed25519 secret key).
    pub fn node_secret(&self) -> NodeSecret {
        NodeSecret(self.expand(NODE_INFO))
    }

    fn expand(&self, info: &[u8]) -> [u8; 32] {
        hkdf_sha256(Some(ROOT_SALT), self.seed.as_slice(), &[info])
    }
}

impl std::fmt::Debug for RootSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootSecret(..)")
    }
}

/// HKDF-SHA256 extract-then-expand to 32 bytes, `info` given in parts.
fn hkdf_sha256(salt: Option<&[u8]>, ikm: &[u8], info: &[&[u8]]) -> [u8; 32] {
    let mut okm = [0u8; 32];
    Hkdf::<Sha256>::new(salt, ikm)
        .expand_multi_info(info, &mut okm)
        // Invariant: 32 bytes is far below HKDF-SHA256's 255 × 32 byte limit.
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

macro_rules! secret_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps 32 raw key bytes (for keys restored from storage).
            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                $name(bytes)
            }

            /// The raw key bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

secret_key!(
    /// The root of a user's data keys. Never leaves the gateway.
    DataMasterKey
);
secret_key!(
    /// The key of one bucket, from which its object-version keys derive.
    BucketKey
);
secret_key!(
    /// The AES-256-GCM key of one object version.
    ///
    /// The codec restarts its nonces at zero for every version, so a version id
    /// must never be reused within a bucket: the gateway draws them at random.
    VersionKey
);
secret_key!(
    /// The secret key of the iroh node identity (Ed25519), as raw bytes.
    NodeSecret
);

impl DataMasterKey {
    /// The key of the bucket with the stable id `bucket_id` (not its name: a
    /// bucket deleted and created again under the same name gets a new id).
    pub fn bucket_key(&self, bucket_id: &[u8]) -> BucketKey {
        BucketKey(hkdf_sha256(None, &self.0, &[BUCKET_INFO, bucket_id]))
    }
}

impl BucketKey {
    /// The key of the object version `version_id` in this bucket.
    pub fn version_key(&self, version_id: &[u8]) -> VersionKey {
        VersionKey(hkdf_sha256(None, &self.0, &[VERSION_INFO, version_id]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::hex;

    const ANVIL_MNEMONIC: &str = "test test test test test test test test test test test junk";

    #[test]
    fn anvil_mnemonic_gives_anvil_accounts() {
        let root = RootSecret::from_phrase(ANVIL_MNEMONIC).unwrap();
        let wallet = root.wallet().unwrap();
        assert_eq!(
            wallet.address(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
                .parse::<Address>()
                .unwrap()
        );
        assert_eq!(
            wallet.to_bytes().0,
            hex!("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
        );
        let second = root.wallet_at("m/44'/60'/0'/0/1").unwrap();
        assert_eq!(
            second.address(),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
                .parse::<Address>()
                .unwrap()
        );
    }

    /// Trezor's reference vectors (python-mnemonic vectors.json), passphrase "TREZOR".
    #[test]
    fn bip39_reference_vectors() {
        let vectors = [
            (
                "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon \
                 abandon about",
                hex!(
                    "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04"
                ),
            ),
            (
                "legal winner thank year wave sausage worth useful legal winner thank yellow",
                hex!(
                    "2e8905819b8723fe2c1d161860e5ee1830318dbf49a83bd451cfb8440c28bd6fa457fe1296106559a3c80937a1c1069be3a3a5bd381ee6260e8d9739fce1f607"
                ),
            ),
        ];
        for (phrase, seed) in vectors {
            let root = RootSecret::from_phrase_with_passphrase(phrase, "TREZOR").unwrap();
            assert_eq!(root.seed(), &seed, "{phrase}");
        }
    }

    /// BIP-32 test vector 1, chain m/0H/1/2H/2/1000000000.
    #[test]
    fn bip32_reference_vector() {
        let seed = hex!("000102030405060708090a0b0c0d0e0f");
        let root = XPriv::root_from_seed(&seed, None).unwrap();
        let key: &coins_bip32::ecdsa::SigningKey = root.as_ref();
        assert_eq!(
            key.to_bytes().as_slice(),
            hex!("e8f32e723decf4051aefac8e2c93c9c5b214313817cdb01a1494b917c8436b35")
        );
        let child = root.derive_path("m/0'/1/2'/2/1000000000").unwrap();
        let key: &coins_bip32::ecdsa::SigningKey = child.as_ref();
        assert_eq!(
            key.to_bytes().as_slice(),
            hex!("471b76e389e528d6de6d816857e012c5455051cad6660850e58372a6c3e6e7c8")
        );
    }

    /// RFC 5869 appendix A.1 (HKDF-SHA256, basic case) through our helper.
    #[test]
    fn hkdf_rfc5869_case_1() {
        let ikm = [0x0b; 22];
        let salt = hex!("000102030405060708090a0b0c");
        let info = hex!("f0f1f2f3f4f5f6f7f8f9");
        let mut okm = [0u8; 42];
        Hkdf::<Sha256>::new(Some(&salt), &ikm)
            .expand_multi_info(&[&info[..4], &info[4..]], &mut okm)
            .unwrap();
        assert_eq!(
            okm,
            hex!(
                "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
            )
        );
        assert_eq!(hkdf_sha256(Some(&salt), &ikm, &[&info]), okm[..32]);
    }

    #[test]
    fn derived_keys_are_distinct_and_stable() {
        let root = RootSecret::from_phrase(ANVIL_MNEMONIC).unwrap();
        let master = root.data_master_key();
        let bucket_a = master.bucket_key(b"bucket-a");
        let bucket_b = master.bucket_key(b"bucket-b");
        let all = [
            *master.as_bytes(),
            *bucket_a.as_bytes(),
            *bucket_b.as_bytes(),
            *bucket_a.version_key(b"v1").as_bytes(),
            *bucket_a.version_key(b"v2").as_bytes(),
            *bucket_b.version_key(b"v1").as_bytes(),
            *root.node_secret().as_bytes(),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Restoring from the phrase gives the same keys: a gateway rebuilt
        // from the mnemonic must be able to decrypt what it stored before.
        let again = RootSecret::from_phrase(&format!("  {}  ", ANVIL_MNEMONIC)).unwrap();
        let v1 = again
            .data_master_key()
            .bucket_key(b"bucket-a")
            .version_key(b"v1");
        assert_eq!(v1.as_bytes(), &all[3]);
        // Pinned: any change to the derivation would make every stored object
        // unreadable, so it must fail here first.
        assert_eq!(hex::encode(v1.as_bytes()), PINNED_VERSION_KEY);
        assert_eq!(
            hex::encode(again.node_secret().as_bytes()),
            PINNED_NODE_SECRET
        );
    }

    // Computed independently (Python hashlib: PBKDF2-HMAC-SHA512 seed, then HKDF-SHA256).
    const PINNED_VERSION_KEY: &str =
        "e84ba43fcebd42c9db7610fcd3358f4c80b4b7637950633467fcbe5914c44690";
    const PINNED_NODE_SECRET: &str =
        "41efc882c84359d306dc967ba2297d799ea78918677b8627dad13645cc767cc2";

    #[test]
    fn generated_phrases_restore() {
        let mut rng = rand::thread_rng();
        for words in [12, 24] {
            let root = RootSecret::generate(&mut rng, words).unwrap();
            assert_eq!(root.phrase().split(' ').count(), words);
            let restored = RootSecret::from_phrase(root.phrase()).unwrap();
            assert_eq!(root.seed(), restored.seed());
            assert_eq!(root.address().unwrap(), restored.address().unwrap());
        }
        assert!(matches!(
            RootSecret::generate(&mut rng, 13),
            Err(KeyError::InvalidWordCount(13))
        ));
    }

    #[test]
    fn bad_phrases_are_refused_with_a_clear_error() {
        // Last word changed: the checksum no longer matches.
        let err =
            RootSecret::from_phrase("test test test test test test test test test test test test")
                .unwrap_err();
        assert!(matches!(err, KeyError::InvalidMnemonic(_)));
        assert!(err.to_string().contains("BIP-39"));
        assert!(RootSecret::from_phrase("not a mnemonic").is_err());
    }
}
