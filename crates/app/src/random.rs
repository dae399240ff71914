//! Fresh identifiers from the system's secure random source.

use matbakh_core::ids::FileId;
use time::OffsetDateTime;

use crate::ports::PortError;

/// `N` bytes from the system's secure random source.
pub fn bytes<const N: usize>() -> Result<[u8; N], PortError> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PortError::Failed("the system's random source failed".into()))?;
    Ok(bytes)
}

/// A fresh file id for a file created at `now` (UUIDv7: time-ordered, 74 random bits).
pub fn file_id(now: OffsetDateTime) -> Result<FileId, PortError> {
    let ms = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    Ok(FileId::new(ms, bytes()?))
}
