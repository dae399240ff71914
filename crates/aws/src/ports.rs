//! The ports of `matbakh-app`, implemented on DynamoDB ([`FileTable`]) and S3 ([`S3Store`]):
//! each method is the adapter operation of the same meaning.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use matbakh_app::ports::{AuditLog, FileRepo, ObjectStore, PortError, PortResult, UsageRepo};
use matbakh_core::audit::{AuditEntry, AuditRecord};
use matbakh_core::ids::{FileId, ObjectKey, UserId};
use matbakh_core::listing::{Cursor, ListQuery, Tag};
use matbakh_core::metadata::{FileDetails, FileRecord};
use matbakh_core::names::DisplayName;
use matbakh_core::quota::Usage;
use time::OffsetDateTime;

use crate::error::AwsError;
use crate::{FileTable, S3Store};

impl From<AwsError> for PortError {
    fn from(e: AwsError) -> Self {
        match e {
            AwsError::QuotaExceeded => PortError::QuotaExceeded,
            AwsError::TooManyOpenUploads => PortError::TooManyOpenUploads,
            AwsError::AlreadyExists => PortError::AlreadyExists,
            AwsError::ConditionFailed => PortError::ConditionFailed,
            AwsError::ChecksumMismatch(detail) => PortError::ChecksumMismatch(detail),
            AwsError::Invalid(message) => PortError::Invalid(message),
            AwsError::Service { operation, message, retryable: true } => PortError::Unavailable { operation, message },
            e => PortError::Failed(e.to_string()),
        }
    }
}

#[async_trait]
impl FileRepo for FileTable {
    async fn details(&self, id: FileId) -> PortResult<Option<FileDetails>> {
        Ok(self.file_details(id).await?)
    }

    async fn list(&self, owner: &UserId, q: &ListQuery) -> PortResult<(Vec<FileDetails>, Option<Cursor>)> {
        Ok(self.list_files(owner, q).await?)
    }

    async fn count_live(&self, owner: &UserId) -> PortResult<u64> {
        Ok(self.count_files(owner).await?)
    }

    async fn update(&self, before: &FileDetails, name: Option<&DisplayName>, tags: &BTreeSet<Tag>) -> PortResult<bool> {
        Ok(self.update_file(before, name, tags).await?)
    }

    async fn soft_delete(&self, id: FileId, at: OffsetDateTime) -> PortResult<()> {
        self.note_deleted(id, at).await?;
        self.mark_deleted(id, None).await?;
        Ok(())
    }

    async fn restore(&self, record: &FileRecord, quota: u64) -> PortResult<bool> {
        Ok(FileTable::restore(self, record, quota).await?)
    }
}

#[async_trait]
impl UsageRepo for FileTable {
    async fn usage(&self, owner: &UserId) -> PortResult<Usage> {
        Ok(FileTable::usage(self, owner).await?)
    }
}

#[async_trait]
impl AuditLog for FileTable {
    async fn append(&self, entry: &AuditEntry, retention: Duration) -> PortResult<()> {
        // Keeps two records of one millisecond apart.
        let mut nonce = [0u8; 8];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| PortError::Failed("no randomness for an audit record".into()))?;
        Ok(self.put_audit(entry, retention, u64::from_be_bytes(nonce)).await?)
    }

    async fn page(
        &self,
        user: &UserId,
        limit: u32,
        after: Option<&str>,
    ) -> PortResult<(Vec<AuditRecord>, Option<String>)> {
        Ok(self.audit_page(user, limit, after).await?)
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn presign_get(&self, key: &ObjectKey, signed_at: OffsetDateTime, ttl: Duration) -> PortResult<String> {
        Ok(S3Store::presign_get(self, key.as_str(), signed_at, ttl).await?.url)
    }

    async fn hide(&self, key: &ObjectKey) -> PortResult<()> {
        Ok(self.delete_version(key.as_str(), None).await?)
    }

    async fn unhide(&self, key: &ObjectKey) -> PortResult<()> {
        if let Some(marker) = self.current_delete_marker(key.as_str()).await? {
            self.delete_version(key.as_str(), Some(&marker)).await?;
        }
        Ok(())
    }
}
