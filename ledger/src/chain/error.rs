//! What can go wrong talking to the chain, in words a person can act on.

use std::path::PathBuf;

use alloy::primitives::{Address, B256};
use alloy::transports::{RpcError, TransportErrorKind};

use crate::commitment::ProofError;
use crate::keys::KeyError;
use crate::keystore::KeystoreError;

/// Why a chain operation failed.
///
/// [`ChainError::Refused`] is a user error found before anything was sent
/// (fix the input); [`ChainError::Unreachable`] is worth retrying later;
/// [`ChainError::Reverted`] is the contract's own refusal, decoded.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The RPC endpoint did not answer (connection refused, timeout, HTTP 5xx).
    #[error(
        "cannot reach the chain's RPC endpoint at {url} ({reason}); check that the node is \
         running and that --rpc-url points at it"
    )]
    Unreachable {
        /// The endpoint.
        url: String,
        /// What the transport reported.
        reason: String,
    },
    /// The node answered with an error that is not a contract revert.
    #[error("the node at {url} refused to {action}: {reason}")]
    Rpc {
        /// The endpoint.
        url: String,
        /// What was being done.
        action: String,
        /// The node's message.
        reason: String,
    },
    /// A check before sending found the call would fail; nothing was sent.
    #[error("{0}")]
    Refused(String),
    /// The contract refused the call; `reason` is its custom error, decoded.
    #[error("could not {action}: {reason}")]
    Reverted {
        /// What was being done.
        action: String,
        /// The decoded revert.
        reason: String,
    },
    /// The transaction was mined but failed.
    #[error(
        "could not {action}: transaction {tx} failed in block {block}; the chain changed \
         between the checks and the transaction, run the command again to see why"
    )]
    Failed {
        /// What was being done.
        action: String,
        /// The transaction.
        tx: B256,
        /// The block it was mined in.
        block: u64,
    },
    /// The transaction was sent but not mined in time.
    #[error(
        "sent transaction {tx} to {action} but it was not mined within {secs} s; it may still \
         be mined: check it before sending again"
    )]
    ReceiptTimeout {
        /// What was being done.
        action: String,
        /// The transaction.
        tx: B256,
        /// How long we waited.
        secs: u64,
    },
    /// The deployment file is missing, unreadable or malformed.
    #[error("deployment file {path}: {reason}")]
    Deployment {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The endpoint serves another chain than the deployment's.
    #[error(
        "the deployment is for chain id {expected} but {url} serves chain id {actual}; use the \
         deployment file of that network or the right --rpc-url"
    )]
    WrongChain {
        /// The deployment's chain id.
        expected: u64,
        /// The endpoint's chain id.
        actual: u64,
        /// The endpoint.
        url: String,
    },
    /// A contract of the deployment has no code on the chain.
    #[error(
        "no {name} contract at {address} on chain {chain_id}: the chain was reset (anvil starts \
         empty) or the deployment file belongs to another network; deploy again with \
         `dbytes contracts deploy`"
    )]
    NotDeployed {
        /// Which contract.
        name: &'static str,
        /// Where the deployment says it is.
        address: Address,
        /// The chain.
        chain_id: u64,
    },
    /// A transaction was asked of a client without a wallet.
    #[error("{action} needs a wallet: pass --keystore (with --password) or --mnemonic")]
    NoWallet {
        /// What was being done.
        action: String,
    },
    /// The wallet could not be opened.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The wallet could not be derived.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Signing typed data failed.
    #[error("signing the {what} failed: {reason}")]
    Signing {
        /// What was signed.
        what: &'static str,
        /// The signer's error.
        reason: String,
    },
    /// A storage proof could not be built.
    #[error("building the storage proof failed: {0}")]
    Proof(#[from] ProofError),
    /// The chain answered something this client cannot make sense of.
    #[error("unexpected answer while trying to {action}: {reason}")]
    Unexpected {
        /// What was being done.
        action: String,
        /// What was odd.
        reason: String,
    },
}

impl ChainError {
    /// Whether retrying the same call later may succeed (the endpoint was
    /// unreachable or overloaded), as opposed to a refusal that will repeat.
    pub fn is_transient(&self) -> bool {
        matches!(self, ChainError::Unreachable { .. })
    }

    /// Classifies a transport error of a call to `action` at `url`, decoding
    /// a revert's custom error when there is one.
    pub(crate) fn from_rpc(
        url: &str,
        action: &str,
        err: &RpcError<TransportErrorKind>,
    ) -> ChainError {
        if let Some(payload) = err.as_error_resp() {
            if let Some(data) = payload.as_revert_data() {
                return ChainError::Reverted {
                    action: action.to_string(),
                    reason: super::revert::describe(&data),
                };
            }
            let message = payload.message.to_string();
            if message.contains("revert") {
                return ChainError::Reverted {
                    action: action.to_string(),
                    reason: message,
                };
            }
            return ChainError::Rpc {
                url: url.to_string(),
                action: action.to_string(),
                reason: message,
            };
        }
        match err {
            RpcError::Transport(kind) => match kind {
                TransportErrorKind::HttpError(http) if !is_server_trouble(http.status) => {
                    ChainError::Rpc {
                        url: url.to_string(),
                        action: action.to_string(),
                        reason: kind.to_string(),
                    }
                }
                _ => ChainError::Unreachable {
                    url: url.to_string(),
                    reason: transport_reason(kind),
                },
            },
            RpcError::NullResp => ChainError::Unexpected {
                action: action.to_string(),
                reason: "the node returned null".to_string(),
            },
            other => ChainError::Rpc {
                url: url.to_string(),
                action: action.to_string(),
                reason: other.to_string(),
            },
        }
    }

    /// Classifies an error of the generated contract bindings.
    pub(crate) fn from_contract(url: &str, action: &str, err: &alloy::contract::Error) -> Self {
        match err {
            alloy::contract::Error::TransportError(rpc) => ChainError::from_rpc(url, action, rpc),
            other => ChainError::Unexpected {
                action: action.to_string(),
                reason: other.to_string(),
            },
        }
    }
}

fn is_server_trouble(status: u16) -> bool {
    status == 429 || status >= 500
}

/// The innermost cause of a transport error ("Connection refused"), which
/// is what a person needs, rather than reqwest's outer "error sending request".
fn transport_reason(kind: &TransportErrorKind) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(kind);
    let mut last = kind.to_string();
    while let Some(err) = source {
        let text = err.to_string();
        if !text.is_empty() {
            last = text;
        }
        source = err.source();
    }
    last
}
