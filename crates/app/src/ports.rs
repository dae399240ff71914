//! What the use cases need from outside, as traits. The `matbakh-aws` adapters implement them
//! on DynamoDB and S3; [`crate::fakes`] in memory.
//!
//! One trait per aggregate: a user's files ([`FileRepo`]), their storage account
//! ([`UsageRepo`]), their audit trail ([`AuditLog`]), and the bytes ([`ObjectStore`]).

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use matbakh_core::audit::{AuditEntry, AuditRecord};
use matbakh_core::ids::{FileId, ObjectKey, UserId};
use matbakh_core::listing::{Cursor, ListQuery, Tag};
use matbakh_core::metadata::{FileDetails, FileRecord};
use matbakh_core::names::DisplayName;
use matbakh_core::quota::Usage;
use time::OffsetDateTime;

/// Why a port could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The user's quota has no room for it.
    #[error("quota exceeded")]
    QuotaExceeded,
    /// The user already has as many open multipart uploads as allowed (`MAX_OPEN_UPLOADS`).
    #[error("too many open uploads")]
    TooManyOpenUploads,
    /// A write that creates found the thing already there.
    #[error("already exists")]
    AlreadyExists,
    /// A conditional write found its target not as required.
    #[error("the target is not as the write required (precondition failed)")]
    ConditionFailed,
    /// The stored bytes do not match the checksum the client declared.
    #[error("checksum mismatch: {0}")]
    ChecksumMismatch(String),
    /// The request cannot be served as asked (a cursor of another listing): the caller's mistake.
    #[error("{0}")]
    Invalid(&'static str),
    /// The dependency failed in a way that may pass (throttling, a timeout, a 5xx).
    #[error("{operation} failed: {message}")]
    Unavailable { operation: &'static str, message: String },
    /// The dependency failed for good (a bug, a stored item of the wrong shape, a setting).
    #[error("{0}")]
    Failed(String),
}

impl PortError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PortError::Unavailable { .. })
    }
}

pub type PortResult<T> = Result<T, PortError>;

/// Files and what their owners and processing added to them (tags, image facts, EXIF).
#[async_trait]
pub trait FileRepo: Send + Sync {
    /// A file with everything the API shows of it, whoever owns it.
    async fn details(&self, id: FileId) -> PortResult<Option<FileDetails>>;

    /// A page of `owner`'s files as `q` asks, and where the next page starts.
    async fn list(&self, owner: &UserId, q: &ListQuery) -> PortResult<(Vec<FileDetails>, Option<Cursor>)>;

    /// How many of `owner`'s files are not deleted.
    async fn count_live(&self, owner: &UserId) -> PortResult<u64>;

    /// Renames and retags the file its owner saw as `before`, if nobody changed it meanwhile
    /// and it is not deleted (`false`: read it again).
    async fn update(&self, before: &FileDetails, name: Option<&DisplayName>, tags: &BTreeSet<Tag>) -> PortResult<bool>;

    /// An owner's soft delete at `at`: the row is DELETED, restorable for the restore window;
    /// its bytes stay counted (as deleted) in the owner's usage. Idempotent.
    async fn soft_delete(&self, id: FileId, at: OffsetDateTime) -> PortResult<()>;

    /// DELETED → READY, charging the bytes again within `quota` if the row no longer holds
    /// them ([`PortError::QuotaExceeded`]); `false` if the row is not DELETED.
    async fn restore(&self, record: &FileRecord, quota: u64) -> PortResult<bool>;
}

/// A user's storage account.
#[async_trait]
pub trait UsageRepo: Send + Sync {
    async fn usage(&self, owner: &UserId) -> PortResult<Usage>;
}

/// Who did what to which file, kept for a retention period.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends one record, kept for `retention`.
    async fn append(&self, entry: &AuditEntry, retention: Duration) -> PortResult<()>;

    /// A page of `user`'s trail, newest first, after the record `after` (a cursor this gave),
    /// and the cursor of the next page.
    async fn page(
        &self,
        user: &UserId,
        limit: u32,
        after: Option<&str>,
    ) -> PortResult<(Vec<AuditRecord>, Option<String>)>;
}

/// The bucket: objects by key, versioned.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// A URL that GETs `key` from `signed_at` for `ttl`.
    async fn presign_get(&self, key: &ObjectKey, signed_at: OffsetDateTime, ttl: Duration) -> PortResult<String>;

    /// Hides the object behind a delete marker (its versions stay). Idempotent.
    async fn hide(&self, key: &ObjectKey) -> PortResult<()>;

    /// Removes the delete marker that hides the object, if one does. Idempotent.
    async fn unhide(&self, key: &ObjectKey) -> PortResult<()>;
}
