//! dbytes-mesh: how pieces travel between gateways and providers.
//!
//! The iroh piece protocol (put, get, range get, audit, stat, delete, sign
//! commitment), the provider side with its crash-safe piece store and scrub,
//! and the client the gateway uses. It is not for S3 (`dbytes-gateway`), nor
//! for the books and the chain (`dbytes-ledger`): deals are checked through
//! the [`deal::DealAuthority`] trait and commitments signed through
//! [`commitment::CommitmentSigner`], which the chain client implements.
//!
//! Main types:
//! - [`wire`]: [`wire::Request`], [`wire::Response`], [`wire::Refusal`] and
//!   the frame codec (pure, property-tested); [`wire::PIECE_ALPN`].
//! - [`transport`]: [`transport::bind_endpoint`] (a node's iroh endpoint,
//!   relays off unless configured), [`transport::peer_addr`].
//! - [`store::PieceStore`]: piece files, a redb index, capacity accounting,
//!   recovery after kill -9, verification on read, the scrub.
//! - [`provider::PieceService`] (the protocol handler) and
//!   [`provider::ProviderNode`] (endpoint + service + store + scrub).
//! - [`client::PieceClient`]: the gateway's side, with timeouts and
//!   cancellation; [`audit::check_audit`] checks a provider's proofs
//!   against the bytes sent.
//! - [`deal::DealAuthority`] / [`deal::StaticDeals`], [`commitment::Commitment`]
//!   / [`commitment::CommitmentSigner`].
//! - [`chain::ChainDeals`] / [`chain::ChainSigner`]: the marketplace as the
//!   deal authority and the provider wallet as the commitment signer.
//! - [`settings::ProviderSettings`]: the operator's config-file form.
//! - [`daemon::ProviderDaemon`]: the provider daemon (node + listing, deals,
//!   proofs and claims loops + `/metrics`), its TOML config
//!   ([`daemon::config::DaemonConfig`]) and `dbytes provider init`
//!   ([`daemon::init::init_provider`]).

pub mod audit;
pub mod chain;
pub mod client;
pub mod commitment;
pub mod daemon;
pub mod deal;
pub mod metrics;
pub mod provider;
pub mod settings;
pub mod store;
pub mod transport;
pub mod wire;
