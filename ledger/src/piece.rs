//! Piece identity: the BLAKE3 hash of a piece's bytes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The id of a piece: `blake3(piece bytes)`.
///
/// BLAKE3 (2-3 GB/s per core here) checks every piece that crosses the
/// network and lets a provider scrub its disk for rot. It is not what the
/// contract verifies: that is the SHA-256 tree of [`crate::commitment`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PieceId(#[serde(with = "hex_bytes")] pub [u8; 32]);

impl PieceId {
    /// The id of `bytes`.
    pub fn of(bytes: &[u8]) -> PieceId {
        PieceId(*blake3::hash(bytes).as_bytes())
    }

    /// Whether `bytes` are the piece this id names (constant time).
    pub fn matches(&self, bytes: &[u8]) -> bool {
        blake3::hash(bytes) == blake3::Hash::from_bytes(self.0)
    }
}

impl fmt::Display for PieceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PieceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PieceId({})", hex::encode(&self.0[..8]))
    }
}

impl std::str::FromStr for PieceId {
    type Err = hex::FromHexError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes)?;
        Ok(PieceId(bytes))
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = <&str>::deserialize(deserializer)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(serde::de::Error::custom)?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_bytes() {
        // BLAKE3 of the empty input, from the BLAKE3 reference test vectors.
        assert_eq!(
            PieceId::of(b"").to_string(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        let id = PieceId::of(b"piece");
        assert!(id.matches(b"piece"));
        assert!(!id.matches(b"piecf"));
        assert_eq!(id.to_string().parse::<PieceId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<PieceId>(&json).unwrap(), id);
        assert!("zz".parse::<PieceId>().is_err());
    }
}
