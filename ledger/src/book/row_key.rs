//! Byte keys of the book's tables, ordered as S3 lists.
//!
//! An object key is escaped so that byte order of the table keys is the
//! order of the object keys, whatever bytes they hold: each 0x00 becomes
//! 0x00 0x01 and the key ends with 0x00 0x00 (as FoundationDB's tuple layer).
//! After the terminator come the per-key suffixes (a version's inverted
//! sequence number, so newest versions sort first; a version id; an upload id).
//! The raw keys starting with `p` are then exactly the table keys in
//! `[escape(p), successor(escape(p)))`.

use super::records::BucketId;

/// Appends `raw` escaped (without the terminator).
fn push_escaped(out: &mut Vec<u8>, raw: &[u8]) {
    for &byte in raw {
        out.push(byte);
        if byte == 0 {
            out.push(1);
        }
    }
}

/// `bucket ‖ escape(prefix)`: every object key of the bucket starting with
/// `prefix` sorts at or after this and before its [`successor`].
pub(super) fn key_prefix(bucket: &BucketId, prefix: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + prefix.len() + 2);
    out.extend_from_slice(&bucket.0);
    push_escaped(&mut out, prefix.as_bytes());
    out
}

/// `bucket ‖ escape(key) ‖ 0x00 0x00`: the start of every row of one object key.
pub(super) fn object(bucket: &BucketId, key: &str) -> Vec<u8> {
    let mut out = key_prefix(bucket, key);
    out.extend_from_slice(&[0, 0]);
    out
}

/// The row of the version of `key` with sequence number `seq` (newest first).
pub(super) fn version(bucket: &BucketId, key: &str, seq: u64) -> Vec<u8> {
    let mut out = object(bucket, key);
    out.extend_from_slice(&(!seq).to_be_bytes());
    out
}

/// `object ‖ suffix`.
pub(super) fn with_suffix(bucket: &BucketId, key: &str, suffix: &[u8]) -> Vec<u8> {
    let mut out = object(bucket, key);
    out.extend_from_slice(suffix);
    out
}

/// The smallest byte string greater than every string starting with `bytes`,
/// or `None` when there is none (all 0xFF).
pub(super) fn successor(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = bytes.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xFF {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// Splits a row key (without its 16-byte bucket id) into the object key and
/// the suffix after the terminator. `None` if the row is malformed.
pub(super) fn split(row: &[u8]) -> Option<(String, &[u8])> {
    let body = row.get(16..)?;
    let mut raw = Vec::with_capacity(body.len());
    let mut at = 0;
    while at < body.len() {
        let byte = body[at];
        if byte == 0 {
            match body.get(at + 1)? {
                0 => {
                    return String::from_utf8(raw)
                        .ok()
                        .map(|key| (key, &body[at + 2..]));
                }
                1 => raw.push(0),
                _ => return None,
            }
            at += 2;
        } else {
            raw.push(byte);
            at += 1;
        }
    }
    None
}

/// The sequence number at the end of a version row.
pub(super) fn version_seq(suffix: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = suffix.try_into().ok()?;
    Some(!u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BUCKET: BucketId = BucketId([7; 16]);

    proptest! {
        #[test]
        fn row_order_is_key_order_then_newest_first(
            a in "[a\\x00/b]{0,6}", b in "[a\\x00/b]{0,6}", seq_a in any::<u64>(), seq_b in any::<u64>()
        ) {
            let row_a = version(&BUCKET, &a, seq_a);
            let row_b = version(&BUCKET, &b, seq_b);
            let expected = a.as_bytes().cmp(b.as_bytes()).then(seq_b.cmp(&seq_a));
            prop_assert_eq!(row_a.cmp(&row_b), expected);
            let (key, suffix) = split(&row_a).unwrap();
            prop_assert_eq!(key, a.clone());
            prop_assert_eq!(version_seq(suffix), Some(seq_a));
        }

        #[test]
        fn prefix_range_holds_exactly_the_keys_with_the_prefix(
            prefix in "[a\\x00/]{0,3}", key in "[a\\x00/]{0,5}"
        ) {
            let row = object(&BUCKET, &key);
            let start = key_prefix(&BUCKET, &prefix);
            let end = successor(&start).unwrap();
            let inside = row >= start && row < end;
            prop_assert_eq!(inside, key.starts_with(&prefix));
        }
    }

    #[test]
    fn successor_skips_trailing_ff() {
        assert_eq!(successor(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(successor(&[0xFF, 0xFF]), None);
    }
}
