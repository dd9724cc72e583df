//! ETags and the checksums modern SDKs send.
//!
//! s3s decodes `aws-chunked` bodies, verifies their chunk signatures and
//! hands over the verified trailers, but checks no checksum itself: the
//! gateway hashes every body once as it streams (MD5 for the ETag, plus each
//! algorithm the client named in a header, in `x-amz-sdk-checksum-algorithm`
//! or in `x-amz-trailer`), compares with what the client sent (header or
//! trailer) and refuses a mismatch with `BadDigest` before anything becomes
//! visible.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use dbytes_ledger::book::Checksums;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Md5, Sha1, Sha256};
use s3s::dto::{Checksum, ChecksumAlgorithm, ChecksumType};
use s3s::{S3Result, TrailingHeaders, s3_error};

use crate::pipeline::BodyDigest;

/// MD5 and the requested checksums of a body, fed as it streams.
pub(crate) struct BodyHasher {
    md5: Md5,
    sums: ChecksumHasher,
}

impl BodyDigest for BodyHasher {
    fn update(&mut self, bytes: &[u8]) {
        self.md5.update(bytes);
        self.sums.update(bytes);
    }
}

/// A body's MD5 and checksums.
pub(crate) struct BodyHashes {
    pub(crate) md5: [u8; 16],
    pub(crate) sums: Checksum,
}

impl BodyHasher {
    /// A hasher for the algorithms a request names: checksum values sent as
    /// headers, `x-amz-sdk-checksum-algorithm`, and checksum trailers
    /// announced in `x-amz-trailer`.
    pub(crate) fn for_request(
        sent: &Checksum,
        algorithm: Option<&ChecksumAlgorithm>,
        trailer: Option<&str>,
    ) -> S3Result<Self> {
        let mut sums = ChecksumHasher::default();
        let mut enable = |name: &str| -> S3Result<()> {
            match name.to_ascii_uppercase().as_str() {
                ChecksumAlgorithm::CRC32 => sums.crc32 = Some(Crc32::new()),
                ChecksumAlgorithm::CRC32C => sums.crc32c = Some(Crc32c::new()),
                ChecksumAlgorithm::CRC64NVME => sums.crc64nvme = Some(Crc64Nvme::new()),
                ChecksumAlgorithm::SHA1 => sums.sha1 = Some(Sha1::new()),
                ChecksumAlgorithm::SHA256 => sums.sha256 = Some(Sha256::new()),
                other => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "Unsupported checksum algorithm {other}"
                    ));
                }
            }
            Ok(())
        };
        if sent.checksum_crc32.is_some() {
            enable(ChecksumAlgorithm::CRC32)?;
        }
        if sent.checksum_crc32c.is_some() {
            enable(ChecksumAlgorithm::CRC32C)?;
        }
        if sent.checksum_crc64nvme.is_some() {
            enable(ChecksumAlgorithm::CRC64NVME)?;
        }
        if sent.checksum_sha1.is_some() {
            enable(ChecksumAlgorithm::SHA1)?;
        }
        if sent.checksum_sha256.is_some() {
            enable(ChecksumAlgorithm::SHA256)?;
        }
        if let Some(algorithm) = algorithm {
            enable(algorithm.as_str())?;
        }
        for name in trailer.into_iter().flat_map(|value| value.split(',')) {
            if let Some(algorithm) = name
                .trim()
                .to_ascii_lowercase()
                .strip_prefix("x-amz-checksum-")
            {
                enable(algorithm)?;
            }
        }
        Ok(BodyHasher {
            md5: Md5::new(),
            sums,
        })
    }

    /// A hasher for the (full-object) checksums an object already has, to
    /// carry them over a copy.
    pub(crate) fn like(existing: &Checksums) -> Self {
        let mut sums = ChecksumHasher::default();
        let full =
            |value: &Option<String>| value.as_deref().is_some_and(|value| !value.contains('-'));
        if full(&existing.crc32) {
            sums.crc32 = Some(Crc32::new());
        }
        if full(&existing.crc32c) {
            sums.crc32c = Some(Crc32c::new());
        }
        if full(&existing.crc64nvme) {
            sums.crc64nvme = Some(Crc64Nvme::new());
        }
        if full(&existing.sha1) {
            sums.sha1 = Some(Sha1::new());
        }
        if full(&existing.sha256) {
            sums.sha256 = Some(Sha256::new());
        }
        BodyHasher {
            md5: Md5::new(),
            sums,
        }
    }

    pub(crate) fn finish(self) -> BodyHashes {
        let mut md5 = [0u8; 16];
        md5.copy_from_slice(self.md5.finalize().as_ref());
        BodyHashes {
            md5,
            sums: self.sums.finalize(),
        }
    }
}

/// Adds the checksums of verified `aws-chunked` trailers to those sent as headers.
pub(crate) fn merge_trailers(
    sent: &mut Checksum,
    trailers: Option<&TrailingHeaders>,
) -> S3Result<()> {
    let Some(headers) = trailers.and_then(TrailingHeaders::take) else {
        return Ok(());
    };
    let value = |name: &str| -> S3Result<Option<String>> {
        headers
            .get(name)
            .map(|value| {
                value
                    .to_str()
                    .map(str::to_owned)
                    .map_err(|_| s3_error!(InvalidArgument, "invalid {name} trailer"))
            })
            .transpose()
    };
    sent.checksum_crc32 = value("x-amz-checksum-crc32")?.or(sent.checksum_crc32.take());
    sent.checksum_crc32c = value("x-amz-checksum-crc32c")?.or(sent.checksum_crc32c.take());
    sent.checksum_crc64nvme = value("x-amz-checksum-crc64nvme")?.or(sent.checksum_crc64nvme.take());
    sent.checksum_sha1 = value("x-amz-checksum-sha1")?.or(sent.checksum_sha1.take());
    sent.checksum_sha256 = value("x-amz-checksum-sha256")?.or(sent.checksum_sha256.take());
    Ok(())
}

/// Checks every checksum the client sent against the body's.
pub(crate) fn verify(sent: &Checksum, computed: &Checksum) -> S3Result<()> {
    let pairs = [
        ("CRC32", &sent.checksum_crc32, &computed.checksum_crc32),
        ("CRC32C", &sent.checksum_crc32c, &computed.checksum_crc32c),
        (
            "CRC64NVME",
            &sent.checksum_crc64nvme,
            &computed.checksum_crc64nvme,
        ),
        ("SHA1", &sent.checksum_sha1, &computed.checksum_sha1),
        ("SHA256", &sent.checksum_sha256, &computed.checksum_sha256),
    ];
    for (name, sent, computed) in pairs {
        if let Some(sent) = sent
            && Some(sent) != computed.as_ref()
        {
            return Err(s3_error!(
                BadDigest,
                "The {name} you specified did not match the calculated checksum."
            ));
        }
    }
    Ok(())
}

/// Checks `Content-MD5` (base64 of the body's MD5).
pub(crate) fn verify_content_md5(content_md5: Option<&str>, md5: &[u8; 16]) -> S3Result<()> {
    let Some(sent) = content_md5 else {
        return Ok(());
    };
    let decoded = BASE64
        .decode(sent.trim())
        .map_err(|_| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid."))?;
    if decoded.len() != 16 {
        return Err(s3_error!(
            InvalidDigest,
            "The Content-MD5 you specified is not valid."
        ));
    }
    if decoded != md5 {
        return Err(s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received."
        ));
    }
    Ok(())
}

/// The checksums to store: those computed, as full-object checksums.
pub(crate) fn to_book(computed: &Checksum) -> Checksums {
    let mut stored = Checksums {
        crc32: computed.checksum_crc32.clone(),
        crc32c: computed.checksum_crc32c.clone(),
        crc64nvme: computed.checksum_crc64nvme.clone(),
        sha1: computed.checksum_sha1.clone(),
        sha256: computed.checksum_sha256.clone(),
        checksum_type: None,
    };
    if !stored.is_empty() {
        stored.checksum_type = Some(ChecksumType::FULL_OBJECT.to_owned());
    }
    stored
}

/// The stored checksums in the response's form.
pub(crate) fn from_book(stored: &Checksums) -> Checksum {
    Checksum {
        checksum_crc32: stored.crc32.clone(),
        checksum_crc32c: stored.crc32c.clone(),
        checksum_crc64nvme: stored.crc64nvme.clone(),
        checksum_sha1: stored.sha1.clone(),
        checksum_sha256: stored.sha256.clone(),
        checksum_type: stored.checksum_type.clone().map(ChecksumType::from),
    }
}

/// S3's multipart ETag: the MD5 of the parts' MD5s, then `-` and the part count.
pub(crate) fn multipart_etag<'a>(
    part_etags: impl ExactSizeIterator<Item = &'a str>,
) -> Option<String> {
    let count = part_etags.len();
    let mut md5 = Md5::new();
    for etag in part_etags {
        let mut digest = [0u8; 16];
        hex::decode_to_slice(etag, &mut digest).ok()?;
        md5.update(&digest);
    }
    Some(format!("{}-{count}", hex::encode(md5.finalize())))
}

/// S3's composite checksum of a multipart object: the checksum of the
/// parts' checksums (decoded), base64, then `-` and the part count. `None`
/// unless every part has a checksum of that algorithm.
pub(crate) fn composite(algorithm: &str, part_sums: &[Option<&str>]) -> Option<String> {
    let mut joined = Vec::new();
    for sum in part_sums {
        joined.extend(BASE64.decode((*sum)?).ok()?);
    }
    let digest: Vec<u8> = match algorithm {
        ChecksumAlgorithm::CRC32 => Crc32::checksum(&joined).as_ref().to_vec(),
        ChecksumAlgorithm::CRC32C => Crc32c::checksum(&joined).as_ref().to_vec(),
        ChecksumAlgorithm::SHA1 => Sha1::checksum(&joined).as_ref().to_vec(),
        ChecksumAlgorithm::SHA256 => Sha256::checksum(&joined).as_ref().to_vec(),
        _ => return None,
    };
    Some(format!("{}-{}", BASE64.encode(digest), part_sums.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_etag_is_md5_of_md5s() {
        // Two parts "a" and "b": md5("a") = 0cc175b9…, md5("b") = 92eb5ffe….
        let a = hex::encode(Md5::checksum(b"a").as_ref());
        let b = hex::encode(Md5::checksum(b"b").as_ref());
        let mut joined = Md5::checksum(b"a").as_ref().to_vec();
        joined.extend_from_slice(Md5::checksum(b"b").as_ref());
        let expected = format!("{}-2", hex::encode(Md5::checksum(&joined).as_ref()));
        assert_eq!(
            multipart_etag([a.as_str(), b.as_str()].into_iter()),
            Some(expected)
        );
        assert_eq!(multipart_etag(["zz"].into_iter()), None);
    }

    #[test]
    fn checksums_are_verified() {
        let sent = Checksum {
            checksum_crc32: Some("wrong".into()),
            ..Default::default()
        };
        let mut hasher =
            BodyHasher::for_request(&sent, None, Some("x-amz-checksum-sha256")).unwrap();
        hasher.update(b"hello");
        let hashes = hasher.finish();
        assert!(hashes.sums.checksum_sha256.is_some());
        // CRC32 of "hello" is 0x3610a686.
        assert_eq!(hashes.sums.checksum_crc32.as_deref(), Some("NhCmhg=="));
        assert!(verify(&sent, &hashes.sums).is_err());
        assert!(verify(&hashes.sums, &hashes.sums).is_ok());
        let md5 = BASE64.encode(hashes.md5);
        assert!(verify_content_md5(Some(&md5), &hashes.md5).is_ok());
        assert!(verify_content_md5(Some("AAAA"), &hashes.md5).is_err());
    }
}
