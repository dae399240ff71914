//! Integrity checksums S3 verifies on arrival (DECISIONS 21): CRC64NVME or CRC32C, which S3
//! keeps as a full-object checksum also for multipart objects. SHA-256 stays in our metadata
//! for dedup and audit; S3 cannot combine it across parts.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::CoreError;

/// A CRC algorithm S3 can check per part and combine into a full-object checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    Crc32c,
    Crc64Nvme,
}

impl ChecksumAlgorithm {
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        match raw.to_ascii_uppercase().as_str() {
            "CRC32C" => Ok(Self::Crc32c),
            "CRC64NVME" => Ok(Self::Crc64Nvme),
            _ => Err(CoreError::invalid("checksum.algorithm", format!("{raw:?} is not CRC64NVME or CRC32C"))),
        }
    }

    /// As S3 spells it (`x-amz-checksum-algorithm`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
        }
    }

    /// The request header that carries a value of this algorithm.
    pub fn header(self) -> &'static str {
        match self {
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
        }
    }

    fn len(self) -> usize {
        match self {
            Self::Crc32c => 4,
            Self::Crc64Nvme => 8,
        }
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A checksum value: the algorithm and its Base64 value, as S3 expects it in headers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checksum {
    algorithm: ChecksumAlgorithm,
    base64: String,
}

impl Checksum {
    /// Parses a Base64 value of `algorithm`; `field` names it in the error.
    pub fn parse(algorithm: ChecksumAlgorithm, raw: &str, field: &'static str) -> Result<Self, CoreError> {
        match STANDARD.decode(raw) {
            Ok(bytes) if bytes.len() == algorithm.len() => Ok(Checksum { algorithm, base64: STANDARD.encode(bytes) }),
            _ => Err(CoreError::invalid(
                field,
                format!("{raw:?} is not a Base64 {algorithm} value ({} bytes)", algorithm.len()),
            )),
        }
    }

    pub fn algorithm(&self) -> ChecksumAlgorithm {
        self.algorithm
    }

    /// The Base64 value.
    pub fn value(&self) -> &str {
        &self.base64
    }
}

/// What a multipart upload promises about its bytes: the algorithm S3 keeps a full-object
/// checksum in, and the whole object's value if the client declared it at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integrity {
    pub algorithm: ChecksumAlgorithm,
    pub full_object: Option<Checksum>,
}

impl Integrity {
    /// Parses `{algorithm, value?}` as a request carries it.
    pub fn parse(algorithm: &str, value: Option<&str>) -> Result<Self, CoreError> {
        let algorithm = ChecksumAlgorithm::parse(algorithm)?;
        let full_object = value.map(|v| Checksum::parse(algorithm, v, "checksum.value")).transpose()?;
        Ok(Integrity { algorithm, full_object })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_parse_case_insensitively_and_name_their_headers() {
        assert_eq!(ChecksumAlgorithm::parse("crc64nvme").unwrap(), ChecksumAlgorithm::Crc64Nvme);
        assert_eq!(ChecksumAlgorithm::parse("CRC32C").unwrap().header(), "x-amz-checksum-crc32c");
        assert!(ChecksumAlgorithm::parse("SHA256").is_err());
        assert!(ChecksumAlgorithm::parse("CRC32").is_err());
    }

    #[test]
    fn values_must_decode_to_the_algorithms_width() {
        let crc32c = ChecksumAlgorithm::Crc32c;
        assert_eq!(Checksum::parse(crc32c, "yZRlqg==", "c").unwrap().value(), "yZRlqg==");
        // 8 bytes is a CRC64NVME, not a CRC32C.
        assert!(Checksum::parse(crc32c, "AAAAAAAAAAA=", "c").is_err());
        assert!(Checksum::parse(ChecksumAlgorithm::Crc64Nvme, "AAAAAAAAAAA=", "c").is_ok());
        assert!(Checksum::parse(crc32c, "not base64!", "c").is_err());
        assert!(Checksum::parse(crc32c, "", "c").is_err());
    }
}
