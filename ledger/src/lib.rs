//! dbytes-ledger: the books of dBytes.
//!
//! This crate holds what must agree between the gateway, the providers and
//! the chain: the keys a user derives from one mnemonic ([`keys`]), their
//! keystore files ([`keystore`]), and the piece commitment scheme the
//! marketplace contract verifies ([`commitment`]). The contract bindings, the
//! deal and payment client, the listing indexer and the local book in redb
//! join it as the market is built.
//!
//! It is not for moving bytes (that is `dbytes-mesh`) nor for S3 (that is
//! `dbytes-gateway`); it does no networking of its own.
//!
//! Main types: [`keys::RootSecret`] (mnemonic → wallet, data and node keys),
//! [`keys::VersionKey`] (the AES key of one object version),
//! [`commitment::PieceTree`], [`commitment::DealTree`] and
//! [`commitment::MerkleProof`], [`piece::PieceId`] (BLAKE3 of a piece).

pub mod book;
pub mod chain;
pub mod commitment;
pub mod keys;
pub mod keystore;
pub mod market;
pub mod piece;
