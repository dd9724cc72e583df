//! The iroh endpoint every dBytes node runs, and frames on its streams.
//!
//! A node's identity is an Ed25519 key: derived from the user's mnemonic
//! ([`dbytes_ledger::keys::RootSecret::node_secret`]) or kept in a file in
//! the provider's data directory ([`load_or_create_node_secret`]). Peers are
//! dialed from their node id and the address hints of their on-chain
//! listing ([`peer_addr`]); no discovery service is consulted. Relays (for
//! providers behind NAT) are off unless configured ([`Relays`]), which is
//! what a local network, where nothing outside is reachable, needs.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dbytes_ledger::keys::NodeSecret;
use iroh::endpoint::{IdleTimeout, QuicTransportConfig, RecvStream, SendStream, VarInt, presets};
use iroh::{
    Endpoint, EndpointAddr, EndpointId, PublicKey, RelayMode, RelayUrl, SecretKey, TransportAddr,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::{self, FRAME_PREFIX_BYTES, WireError};

/// Which relay servers an endpoint uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Relays {
    /// None: direct addresses only (loopback, LAN, public IPs).
    #[default]
    Disabled,
    /// The public relays run by number 0 (iroh's default).
    Public,
    /// These relay servers.
    Custom(Vec<RelayUrl>),
}

/// How a node's endpoint binds and talks QUIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// The UDP socket address to bind (port 0: any free port).
    pub bind_addr: SocketAddr,
    /// Relay servers, for peers behind NAT.
    pub relays: Relays,
    /// Requests a peer may have in flight on one connection (QUIC streams).
    pub max_concurrent_streams: u32,
    /// Bytes a peer may have in flight on one stream before it must wait
    /// for the reader (QUIC stream flow control window).
    pub stream_window_bytes: u32,
    /// Bytes a peer may have in flight on one connection in all.
    pub connection_window_bytes: u32,
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
}

impl TransportConfig {
    /// Loopback only, no relays: for a local network and tests.
    pub fn local() -> TransportConfig {
        TransportConfig {
            bind_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..TransportConfig::default()
        }
    }
}

impl Default for TransportConfig {
    /// Every IPv4 interface on any free port, no relays, 32 streams of
    /// 2 MiB windows per connection within 16 MiB, 30 s idle timeout.
    fn default() -> Self {
        TransportConfig {
            bind_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            relays: Relays::Disabled,
            max_concurrent_streams: 32,
            stream_window_bytes: 2 << 20,
            connection_window_bytes: 16 << 20,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Why the transport failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The endpoint could not bind its socket.
    #[error("could not bind the iroh endpoint to {addr}: {reason}; pick another address or port")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid transport configuration: {0}")]
    InvalidConfig(String),
    /// 32 bytes that are not an Ed25519 public key.
    #[error("{0} is not a valid iroh node id")]
    InvalidNodeId(String),
    /// The node key file could not be read or written.
    #[error("could not {action} the node key file {}: {source}", path.display())]
    KeyFile {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The iroh secret key of a node secret.
pub fn secret_key(secret: &NodeSecret) -> SecretKey {
    SecretKey::from_bytes(secret.as_bytes())
}

/// The node id (public key) of a node secret.
pub fn node_id(secret: &NodeSecret) -> EndpointId {
    secret_key(secret).public()
}

/// Binds an endpoint with the node's key, accepting `alpns` (none for a
/// node that only dials, like a gateway's client).
pub async fn bind_endpoint(
    secret: &NodeSecret,
    config: &TransportConfig,
    alpns: Vec<Vec<u8>>,
) -> Result<Endpoint, TransportError> {
    let invalid = |what: &str| TransportError::InvalidConfig(what.to_string());
    let idle_timeout = IdleTimeout::try_from(config.idle_timeout)
        .map_err(|_| invalid("the idle timeout is too long"))?;
    let transport = QuicTransportConfig::builder()
        .max_concurrent_bidi_streams(VarInt::from_u32(config.max_concurrent_streams))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(config.stream_window_bytes))
        .receive_window(VarInt::from_u32(config.connection_window_bytes))
        .max_idle_timeout(Some(idle_timeout))
        .build();
    let relay_mode = match &config.relays {
        Relays::Disabled => RelayMode::Disabled,
        Relays::Public => RelayMode::Default,
        Relays::Custom(urls) => RelayMode::custom(urls.iter().cloned()),
    };
    let bind_error = |reason: String| TransportError::Bind {
        addr: config.bind_addr,
        reason,
    };
    // The minimal preset sets only the TLS crypto provider: no discovery
    // service is published to or asked.
    Endpoint::builder(presets::Minimal)
        .secret_key(secret_key(secret))
        .alpns(alpns)
        .relay_mode(relay_mode)
        .transport_config(transport)
        .clear_ip_transports()
        .bind_addr(config.bind_addr)
        .map_err(|err| bind_error(err.to_string()))?
        .bind()
        .await
        .map_err(|err| bind_error(err.to_string()))
}

/// The address to dial a peer at: its node id and the socket addresses (and
/// relay, if any) its listing gives.
pub fn peer_addr(
    node_id: &[u8; 32],
    addrs: impl IntoIterator<Item = SocketAddr>,
    relay: Option<RelayUrl>,
) -> Result<EndpointAddr, TransportError> {
    let id = PublicKey::from_bytes(node_id)
        .map_err(|_| TransportError::InvalidNodeId(hex::encode(node_id)))?;
    let addrs = addrs
        .into_iter()
        .map(TransportAddr::Ip)
        .chain(relay.map(TransportAddr::Relay));
    Ok(EndpointAddr::from_parts(id, addrs))
}

/// A listing's address hints as the chain stores them: the socket
/// addresses, comma-separated, as UTF-8 text (`127.0.0.1:7700,[::1]:7700`).
pub fn encode_address_hints(addrs: &[SocketAddr]) -> Vec<u8> {
    addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(",")
        .into_bytes()
}

/// The socket addresses in a listing's address hints; entries that are not
/// socket addresses (hints come from strangers' listings) are skipped.
pub fn parse_address_hints(hints: &[u8]) -> Vec<SocketAddr> {
    String::from_utf8_lossy(hints)
        .split(',')
        .filter_map(|entry| entry.trim().parse().ok())
        .collect()
}

/// The node secret kept in `path`, created (at random, readable by the owner
/// only) if the file does not exist.
pub fn load_or_create_node_secret(path: &Path) -> Result<NodeSecret, TransportError> {
    let key_error = |action: &'static str| {
        move |source| TransportError::KeyFile {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes: [u8; 32] = bytes.try_into().map_err(|bytes: Vec<u8>| {
                key_error("read")(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("it holds {} bytes, not 32", bytes.len()),
                ))
            })?;
            Ok(NodeSecret::from_bytes(bytes))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let secret = NodeSecret::from_bytes(rand::random());
            write_node_secret(path, &secret)?;
            Ok(secret)
        }
        Err(err) => Err(key_error("read")(err)),
    }
}

/// Writes `secret` to `path` (readable by the owner only), replacing the
/// file whole: a node key derived from a mnemonic, or a fresh one.
pub fn write_node_secret(path: &Path, secret: &NodeSecret) -> Result<(), TransportError> {
    let key_error = |action: &'static str| {
        move |source| TransportError::KeyFile {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(key_error("create"))?;
    file.write_all(secret.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(key_error("write"))?;
    std::fs::rename(&tmp, path).map_err(key_error("rename"))
}

/// Why a frame could not be read from or written to a stream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The stream ended cleanly before a frame began.
    #[error("the stream ended before a message")]
    Ended,
    /// The bytes are not a valid frame.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The stream failed.
    #[error("{0}")]
    Stream(String),
}

/// Reads one frame of at most `max` bytes and decodes it. The buffer grows
/// with the bytes that actually arrive, so a large declared length costs
/// nothing until the peer sends it.
pub(crate) async fn read_frame<T: DeserializeOwned>(
    recv: &mut RecvStream,
    max: usize,
) -> Result<T, FrameError> {
    let mut prefix = [0u8; FRAME_PREFIX_BYTES];
    let mut filled = 0;
    while filled < FRAME_PREFIX_BYTES {
        match recv.read(&mut prefix[filled..]).await {
            Ok(Some(read)) => filled += read,
            Ok(None) if filled == 0 => return Err(FrameError::Ended),
            Ok(None) => {
                return Err(WireError::Truncated {
                    needed: FRAME_PREFIX_BYTES,
                    available: filled,
                }
                .into());
            }
            Err(err) => return Err(FrameError::Stream(err.to_string())),
        }
    }
    let body_len = wire::frame_body_len(prefix, max)?;
    let mut body = Vec::with_capacity(body_len.min(64 << 10));
    while body.len() < body_len {
        match recv.read_chunk(body_len - body.len()).await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => {
                return Err(WireError::Truncated {
                    needed: body_len,
                    available: body.len(),
                }
                .into());
            }
            Err(err) => return Err(FrameError::Stream(err.to_string())),
        }
    }
    Ok(wire::decode_body(&body)?)
}

/// Encodes `message` and writes it as one frame.
pub(crate) async fn write_frame<T: Serialize>(
    send: &mut SendStream,
    message: &T,
) -> Result<(), FrameError> {
    let frame = wire::encode_frame(message)?;
    send.write_all(&frame)
        .await
        .map_err(|err| FrameError::Stream(err.to_string()))
}

/// A send stream that is reset (not finished) if dropped before
/// [`GuardedSend::finish`]: a request abandoned half-way must not look
/// complete to the peer.
pub(crate) struct GuardedSend {
    send: Option<SendStream>,
    code: u32,
}

impl GuardedSend {
    pub(crate) fn new(send: SendStream, code: u32) -> GuardedSend {
        GuardedSend {
            send: Some(send),
            code,
        }
    }

    pub(crate) fn stream(&mut self) -> Option<&mut SendStream> {
        self.send.as_mut()
    }

    /// Finishes the stream: everything written is complete.
    pub(crate) fn finish(&mut self) -> Result<(), FrameError> {
        match self.send.take() {
            Some(mut send) => send
                .finish()
                .map_err(|err| FrameError::Stream(err.to_string())),
            None => Ok(()),
        }
    }

    /// Resets the stream with `code`.
    pub(crate) fn reset(&mut self, code: u32) {
        if let Some(mut send) = self.send.take() {
            let _ = send.reset(VarInt::from_u32(code));
        }
    }
}

impl Drop for GuardedSend {
    fn drop(&mut self) {
        self.reset(self.code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbytes_ledger::keys::RootSecret;

    #[test]
    fn node_ids_come_from_the_mnemonic() {
        let root = RootSecret::from_phrase(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        )
        .unwrap();
        let id = node_id(&root.node_secret());
        assert_eq!(id, node_id(&root.node_secret()));
        let addr = peer_addr(id.as_bytes(), [SocketAddr::from(([127, 0, 0, 1], 9))], None).unwrap();
        assert_eq!(addr.id, id);
        assert_eq!(addr.ip_addrs().count(), 1);
    }

    #[test]
    fn address_hints_round_trip_and_skip_garbage() {
        let addrs = [
            SocketAddr::from(([127, 0, 0, 1], 7700)),
            "[::1]:7701".parse().unwrap(),
        ];
        let hints = encode_address_hints(&addrs);
        assert_eq!(hints, b"127.0.0.1:7700,[::1]:7701");
        assert_eq!(parse_address_hints(&hints), addrs);
        assert_eq!(
            parse_address_hints(b"nonsense, 10.0.0.1:1 ,\xff"),
            vec![SocketAddr::from(([10, 0, 0, 1], 1))]
        );
        assert!(parse_address_hints(b"").is_empty());
    }

    #[test]
    fn node_keys_persist_in_their_file() {
        let dir =
            std::env::temp_dir().join(format!("dbytes-mesh-key-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.key");
        let first = load_or_create_node_secret(&path).unwrap();
        let second = load_or_create_node_secret(&path).unwrap();
        assert_eq!(first.as_bytes(), second.as_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            load_or_create_node_secret(&path),
            Err(TransportError::KeyFile { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
