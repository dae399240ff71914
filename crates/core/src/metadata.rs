//! The metadata model: what the platform knows about each file.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use crate::ids::{FileId, ObjectKey, Sha256, UserId};
use crate::names::DisplayName;
use crate::types::ContentType;

/// Where a file is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    /// An upload was granted; the object may not exist yet.
    Pending,
    /// The object exists and passed the checks.
    Ready,
    /// The bytes are not what was declared, or not allowed; moved to `quarantine/`.
    Quarantined,
    /// Soft-deleted by its owner.
    Deleted,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Pending => "PENDING",
            FileStatus::Ready => "READY",
            FileStatus::Quarantined => "QUARANTINED",
            FileStatus::Deleted => "DELETED",
        }
    }
}

impl fmt::Display for FileStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FileStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "PENDING" => Ok(FileStatus::Pending),
            "READY" => Ok(FileStatus::Ready),
            "QUARANTINED" => Ok(FileStatus::Quarantined),
            "DELETED" => Ok(FileStatus::Deleted),
            other => Err(format!("unknown file status {other:?}")),
        }
    }
}

/// One file's metadata row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub file_id: FileId,
    pub owner: UserId,
    pub key: ObjectKey,
    pub filename: DisplayName,
    pub content_type: ContentType,
    pub size: u64,
    pub sha256: Option<Sha256>,
    pub status: FileStatus,
    pub created_at: OffsetDateTime,
    /// When a PENDING row lapses (its DynamoDB TTL); `None` once the file is READY.
    pub expires_at: Option<OffsetDateTime>,
}
