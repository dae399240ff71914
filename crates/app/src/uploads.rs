//! Single-file uploads and downloads, straight between the browser and S3: the platform signs,
//! S3 carries the bytes.

use std::sync::Arc;

use matbakh_core::audit::AuditAction;
use matbakh_core::clock::Clock;
use matbakh_core::ids::{FileId, ObjectKey, Sha256, UserId};
use matbakh_core::labels::Labels;
use matbakh_core::limits::Limits;
use matbakh_core::metadata::{FileRecord, FileStatus};
use matbakh_core::names::{DisplayName, content_disposition};
use matbakh_core::post_policy::PresignedPost;
use matbakh_core::throttle::Costly;
use matbakh_core::types::ContentType;

use crate::audit::{Access, Client, Trail};
use crate::error::Error;
use crate::ports::{Counters, Download, FileGrants, ObjectAccess, SignedUrl, Upload};

/// What the upload use cases work with.
#[derive(Clone)]
pub struct Uploads {
    pub files: Arc<dyn FileGrants>,
    pub objects: Arc<dyn ObjectAccess>,
    /// The upload grants' budget per user.
    pub counters: Arc<dyn Counters>,
    pub audit: Trail,
    pub limits: Limits,
    pub clock: Arc<dyn Clock>,
    /// Download URLs: the files CDN's signed URLs, or presigned S3 ones.
    pub delivery: crate::delivery::Delivery,
}

/// What an uploader declares about a file before sending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub filename: DisplayName,
    pub content_type: ContentType,
    pub size: u64,
    pub sha256: Option<Sha256>,
    /// Visibility, tags and metadata.
    pub labels: Labels,
}

/// A granted single upload: the form the browser posts to S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub file_id: FileId,
    pub key: ObjectKey,
    pub post: PresignedPost,
}

/// A download link of one of the caller's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadLink {
    pub link: SignedUrl,
    pub record: FileRecord,
}

impl Uploads {
    /// Grants one upload of what `d` declares: type and size within the limits, the size
    /// reserved against the caller's quota together with a PENDING row, and a POST policy that
    /// pins the key, the type, the exact size and (if declared) the SHA-256.
    pub async fn grant(&self, caller: &UserId, client: &Client, d: Declared) -> Result<Grant, Error> {
        self.limits.check_single_upload(d.content_type, d.size)?;
        let now = self.clock.now();
        crate::throttle::admit(&*self.counters, &self.limits.budgets, now, caller, Costly::UploadGrant).await?;
        let file_id = crate::random::file_id(now)?;
        tracing::Span::current().record("file_id", tracing::field::display(file_id));
        let record = FileRecord {
            size: d.size,
            sha256: d.sha256,
            expires_at: Some(now + self.limits.pending_ttl),
            labels: d.labels,
            ..FileRecord::upload(file_id, caller.clone(), d.filename, d.content_type, now)
        };
        // Sign first: if signing fails, nothing has been written.
        let post = self
            .objects
            .presign_post(&Upload {
                key: &record.key,
                content_type: d.content_type,
                size: d.size..=d.size,
                sha256: d.sha256,
                signed_at: now,
                ttl: self.limits.upload_url_ttl,
            })
            .await?;
        self.files.reserve(&record, self.limits.user_quota_bytes).await?;
        self.audit.record(client, Access::ok(caller, AuditAction::Upload, Some(file_id))).await?;
        tracing::info!(size = d.size, content_type = d.content_type.as_str(), "upload granted");
        Ok(Grant { file_id, key: record.key, post })
    }

    /// A short-lived link to exactly the accepted version of the caller's file, naming it
    /// (RFC 6266; `inline`: shown rather than saved). Someone else's file answers like a
    /// missing one, and the attempt is in the caller's trail.
    pub async fn download(
        &self,
        caller: &UserId,
        client: &Client,
        id: FileId,
        inline: bool,
    ) -> Result<DownloadLink, Error> {
        let own = self.files.details(id).await?.filter(|d| d.record.owner == *caller);
        let Some(details) = own else {
            let access = Access { result: "not_found", ..Access::ok(caller, AuditAction::Download, Some(id)) };
            self.audit.record(client, access).await?;
            return Err(Error::NotFound("file"));
        };
        if let Some(refused) = crate::archival::refusal(&details) {
            return Err(refused);
        }
        let record = details.record;
        match record.status {
            // A FAILED image is the owner's file all the same, only without variants. (An
            // archived one was refused above.)
            FileStatus::Ready | FileStatus::Failed | FileStatus::Archived | FileStatus::Restoring => {}
            FileStatus::Deleted => return Err(Error::NotFound("file")),
            FileStatus::Quarantined => {
                return Err(Error::forbidden("quarantined", "this file failed its checks and cannot be downloaded"));
            }
            FileStatus::Pending => {
                if self.objects.size(&record.key).await?.is_none() {
                    return Err(Error::conflict("upload_incomplete", "the file has not been uploaded yet"));
                }
            }
        }
        let disposition = content_disposition(&record.filename, record.content_type, inline);
        // Exactly the accepted version (DECISIONS 28): bytes written to the key again with a
        // replayed upload URL are never what a download serves.
        let link = self
            .delivery
            .download(&Download {
                key: &record.key,
                version_id: record.version_id.as_deref(),
                content_type: record.content_type.as_str(),
                disposition: &disposition,
                signed_at: self.clock.now(),
                ttl: self.limits.download_url_ttl,
            })
            .await?;
        self.audit.record(client, Access::ok(caller, AuditAction::Download, Some(id))).await?;
        tracing::info!("download granted");
        Ok(DownloadLink { link, record })
    }
}
