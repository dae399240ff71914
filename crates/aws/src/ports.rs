//! The ports of `matbakh-app`, implemented on DynamoDB ([`FileTable`]) and S3 ([`S3Store`]):
//! each method is the adapter operation of the same meaning.

use std::time::Duration;

use async_trait::async_trait;
use matbakh_app::ports::{
    AccountRepo, Archive, AuditLog, Counters, Digest, Download, EdgeCache, ExportQueue, ExportRepo, FileCatalog,
    FileGrants, FileLookup, FileRepo, FileUploads, Head, MultipartOp, MultipartRequest, ObjectAccess, ObjectErasure,
    ObjectLifecycle, ObjectSink, ObjectStore, ObjectStream, ObjectUploads, PartUpload, PortError, PortResult,
    ShareRepo, SignedUrl, TokenRepo, Upload, UploadRepo, UsageRepo,
};
use matbakh_core::archival::{Archival, RestoreTier};
use matbakh_core::audit::{AuditEntry, AuditRecord};
use matbakh_core::checksum::{ChecksumAlgorithm, Integrity};
use matbakh_core::delivery::ServedAs;
use matbakh_core::exports::{ExportJob, ExportState};
use matbakh_core::ids::{FileId, ObjectKey, Sha256, UserId};
use matbakh_core::listing::{Cursor, ListQuery};
use matbakh_core::metadata::{
    ContentFacts, FileDetails, FileRecord, FileStatus, PendingRow, Pinned, Ready, Settlement,
};
use matbakh_core::multipart::{UploadId, UploadSession, UploadedPart};
use matbakh_core::post_policy::PresignedPost;
use matbakh_core::quota::Usage;
use matbakh_core::shares::{Share, ShareId, ShareRefusal};
use matbakh_core::tokens::TokenGrant;
use matbakh_core::types::ContentType;
use time::OffsetDateTime;

use crate::cdn::Cdn;
use crate::error::AwsError;
use crate::export::StreamedObject;
use crate::queue::Queue;
use crate::s3::ObjectReader;
use crate::{FileTable, S3Store};

impl From<AwsError> for PortError {
    fn from(e: AwsError) -> Self {
        match e {
            AwsError::QuotaExceeded => PortError::QuotaExceeded,
            AwsError::TooManyOpenUploads => PortError::TooManyOpenUploads,
            AwsError::AccountErased => PortError::AccountErased,
            AwsError::AlreadyExists => PortError::AlreadyExists,
            AwsError::ConditionFailed => PortError::ConditionFailed,
            AwsError::ChecksumMismatch(detail) => PortError::ChecksumMismatch(detail),
            AwsError::Invalid(message) => PortError::Invalid(message),
            AwsError::NotRestored => PortError::NotRestored,
            AwsError::Service { operation, message, retryable: true } => PortError::Unavailable { operation, message },
            e => PortError::Failed(e.to_string()),
        }
    }
}

#[async_trait]
impl FileLookup for FileTable {
    async fn details(&self, id: FileId) -> PortResult<Option<FileDetails>> {
        Ok(self.file_details(id).await?)
    }
}

#[async_trait]
impl FileGrants for FileTable {
    async fn reserve(&self, record: &FileRecord, quota: u64) -> PortResult<()> {
        Ok(self.reserve_upload(record, quota).await?)
    }
}

#[async_trait]
impl FileUploads for FileTable {
    async fn put_unreserved(&self, record: &FileRecord) -> PortResult<()> {
        Ok(self.put_unreserved_file(record).await?)
    }
}

#[async_trait]
impl FileCatalog for FileTable {
    async fn list(&self, owner: &UserId, q: &ListQuery) -> PortResult<(Vec<FileDetails>, Option<Cursor>)> {
        Ok(self.list_files(owner, q).await?)
    }

    async fn count_live(&self, owner: &UserId) -> PortResult<u64> {
        Ok(self.count_files(owner).await?)
    }

    async fn update(&self, before: &FileDetails, after: &FileRecord) -> PortResult<bool> {
        Ok(self.update_file(before, after).await?)
    }

    async fn soft_delete(&self, id: FileId, at: OffsetDateTime, from: FileStatus) -> PortResult<()> {
        self.note_deleted(id, at, from).await?;
        self.mark_deleted(id, None).await?;
        Ok(())
    }

    async fn restore(&self, record: &FileRecord, quota: u64) -> PortResult<bool> {
        Ok(FileTable::restore(self, record, quota).await?)
    }

    async fn set_archival(
        &self,
        id: FileId,
        from: &[FileStatus],
        to: FileStatus,
        archival: &Archival,
    ) -> PortResult<bool> {
        Ok(FileTable::set_archival(self, id, from, to, archival).await?)
    }
}

#[async_trait]
impl FileRepo for FileTable {
    async fn all(&self, owner: &UserId) -> PortResult<Vec<FileDetails>> {
        Ok(self.all_files(owner).await?)
    }

    async fn mark_deleted(&self, id: FileId, order: Option<&str>) -> PortResult<bool> {
        Ok(FileTable::mark_deleted(self, id, order).await?)
    }

    async fn mark_removed(&self, id: FileId, order: Option<&str>) -> PortResult<bool> {
        Ok(FileTable::mark_removed(self, id, order).await?)
    }

    async fn purge_deleted(&self, id: FileId) -> PortResult<bool> {
        Ok(FileTable::purge_deleted(self, id).await?)
    }

    async fn find_duplicate(&self, owner: &UserId, sha: &Sha256, besides: FileId) -> PortResult<Option<FileId>> {
        Ok(FileTable::find_duplicate(self, owner, sha, besides).await?)
    }

    async fn record_content(&self, id: FileId, facts: &ContentFacts, order: Option<&str>) -> PortResult<bool> {
        Ok(FileTable::record_content(self, id, facts, order).await?)
    }

    async fn mark_ready(&self, id: FileId, ready: &Ready<'_>) -> PortResult<bool> {
        Ok(FileTable::mark_ready(self, id, ready).await?)
    }

    async fn mark_failed(&self, id: FileId, reason: &str) -> PortResult<bool> {
        Ok(FileTable::mark_failed(self, id, reason).await?)
    }

    async fn give_up(&self, id: FileId, reason: &str) -> PortResult<bool> {
        Ok(FileTable::give_up(self, id, reason).await?)
    }

    async fn reopen(&self, id: FileId) -> PortResult<bool> {
        Ok(FileTable::reopen(self, id).await?)
    }

    async fn index_search(&self, record: &FileRecord) -> PortResult<()> {
        Ok(FileTable::index_search(self, record).await?)
    }
}

#[async_trait]
impl UsageRepo for FileTable {
    async fn usage(&self, owner: &UserId) -> PortResult<Usage> {
        Ok(FileTable::usage(self, owner).await?)
    }
}

#[async_trait]
impl Counters for FileTable {
    async fn take(&self, user: &UserId, name: &str, limit: u64, until: OffsetDateTime) -> PortResult<bool> {
        Ok(self.take_request(user, name, limit, until).await?)
    }
}

#[async_trait]
impl ShareRepo for FileTable {
    async fn create(&self, share: &Share) -> PortResult<()> {
        Ok(self.put_share(share).await?)
    }

    async fn get(&self, id: &ShareId) -> PortResult<Option<Share>> {
        Ok(self.get_share(id).await?)
    }

    async fn list(&self, owner: &UserId, limit: usize) -> PortResult<Vec<Share>> {
        Ok(self.list_shares(owner, i32::try_from(limit).unwrap_or(i32::MAX)).await?)
    }

    async fn revoke(&self, id: &ShareId, owner: &UserId) -> PortResult<Option<Share>> {
        Ok(self.revoke_share(id, owner).await?)
    }

    async fn use_once(&self, id: &ShareId, now: OffsetDateTime) -> PortResult<Result<Share, ShareRefusal>> {
        Ok(self.use_share(id, now).await?)
    }
}

#[async_trait]
impl UploadRepo for FileTable {
    async fn account_closed(&self, owner: &UserId) -> PortResult<bool> {
        Ok(FileTable::account_closed(self, owner).await?)
    }

    async fn expired_pending(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
        after: Option<&Cursor>,
    ) -> PortResult<(Vec<PendingRow>, Option<Cursor>)> {
        Ok(FileTable::expired_pending(self, cutoff, limit, after).await?)
    }

    async fn release_pending(&self, row: &PendingRow) -> PortResult<bool> {
        Ok(FileTable::release_pending(self, row).await?)
    }

    async fn expired_sessions(&self, cutoff: OffsetDateTime, limit: usize) -> PortResult<Vec<UploadId>> {
        Ok(FileTable::expired_sessions(self, cutoff, limit).await?)
    }

    async fn session(&self, id: &UploadId) -> PortResult<Option<UploadSession>> {
        Ok(self.get_session(id).await?)
    }

    async fn pin_version(&self, id: FileId, key: &ObjectKey, version: &str) -> PortResult<Pinned> {
        Ok(FileTable::pin_version(self, id, key.as_str(), version).await?)
    }

    async fn settle(&self, id: FileId, key: &ObjectKey, actual: u64, quota: u64) -> PortResult<Settlement> {
        Ok(self.settle_upload(id, key.as_str(), actual, quota).await?)
    }

    async fn reject(&self, id: FileId, reason: &str) -> PortResult<()> {
        Ok(self.reject_upload(id, reason).await?)
    }

    async fn open_sessions(&self, owner: &UserId) -> PortResult<Vec<UploadSession>> {
        Ok(FileTable::open_sessions(self, owner).await?)
    }

    async fn start_session(
        &self,
        record: &FileRecord,
        session: &UploadSession,
        quota: u64,
        cap: u64,
    ) -> PortResult<()> {
        Ok(self.reserve_multipart(record, session, quota, cap).await?)
    }

    async fn open_session(&self, session: &UploadSession, cap: u64) -> PortResult<()> {
        Ok(self.put_session(session, cap).await?)
    }

    async fn bind_session(&self, session: &UploadSession, cap: u64) -> PortResult<()> {
        Ok(FileTable::bind_session(self, session, cap).await?)
    }

    async fn complete_session(&self, session: &UploadSession, etag: &str) -> PortResult<bool> {
        Ok(FileTable::complete_session(self, session, etag).await?)
    }

    async fn abort_session(&self, session: &UploadSession) -> PortResult<bool> {
        Ok(FileTable::abort_session(self, session).await?)
    }

    async fn end_expired_session(&self, session: &UploadSession, arrived: bool) -> PortResult<bool> {
        Ok(FileTable::end_expired_session(self, session, arrived).await?)
    }
}

#[async_trait]
impl TokenRepo for FileTable {
    async fn create(&self, grant: &TokenGrant) -> PortResult<()> {
        Ok(self.put_token(grant).await?)
    }

    async fn get(&self, digest: &str) -> PortResult<Option<TokenGrant>> {
        Ok(self.get_token(digest).await?)
    }

    async fn revoke(&self, digest: &str, owner: &UserId) -> PortResult<bool> {
        Ok(self.revoke_token(digest, owner).await?)
    }

    async fn reserve_upload(&self, grant: &TokenGrant, record: &FileRecord, quota: u64) -> PortResult<()> {
        Ok(self.reserve_token_upload(grant, record, quota).await?)
    }
}

#[async_trait]
impl AccountRepo for FileTable {
    async fn file_ids(&self, owner: &UserId) -> PortResult<Vec<FileId>> {
        Ok(self.all_file_ids(owner).await?)
    }

    async fn erase_files(&self, files: &[FileId]) -> PortResult<usize> {
        Ok(self.erase_file_items(files).await?)
    }

    async fn erase(&self, owner: &UserId, uploads: &[String]) -> PortResult<usize> {
        Ok(self.erase_items(owner, uploads).await?)
    }

    async fn close(&self, owner: &UserId, erased_at: i64) -> PortResult<bool> {
        Ok(self.close_account(owner, erased_at).await?)
    }

    async fn reopen(&self, owner: &UserId, erased_at: i64) -> PortResult<bool> {
        Ok(self.reopen_account(owner, erased_at).await?)
    }

    async fn legacy_paths(&self, owner: &UserId) -> PortResult<Vec<String>> {
        Ok(FileTable::legacy_paths(self, owner).await?)
    }

    async fn mark_erased(&self, stand_in: &UserId, path_marks: &[String], at: &str) -> PortResult<()> {
        Ok(FileTable::mark_erased(self, stand_in, path_marks, at).await?)
    }
}

#[async_trait]
impl EdgeCache for Cdn {
    async fn invalidate(&self, paths: &[String], reference: &str) -> PortResult<String> {
        Ok(Cdn::invalidate(self, paths, reference).await?)
    }
}

#[async_trait]
impl ExportRepo for FileTable {
    async fn create(&self, job: &ExportJob, replacing: Option<&str>) -> PortResult<()> {
        Ok(self.put_export(job, replacing).await?)
    }

    async fn get(&self, id: &str) -> PortResult<Option<ExportJob>> {
        Ok(self.get_export(id).await?)
    }

    async fn latest(&self, owner: &UserId) -> PortResult<Option<ExportJob>> {
        Ok(self.latest_export(owner).await?)
    }

    async fn set_state(&self, id: &str, state: ExportState, archive: Option<&Archive>) -> PortResult<()> {
        let archive = archive.map(|a| (a.key.as_str(), a.size, a.files));
        Ok(self.set_export(id, state, archive).await?)
    }
}

/// A message's visibility, set by its consumer.
#[async_trait]
impl matbakh_app::ports::Redelivery for Queue {
    async fn after(&self, receipt_handle: &str, seconds: i32) -> PortResult<()> {
        Ok(self.extend(receipt_handle, seconds).await?)
    }
}

/// The exporter reads `{"exportId": ...}`.
#[async_trait]
impl ExportQueue for Queue {
    async fn enqueue(&self, job: &ExportJob) -> PortResult<()> {
        Ok(self.send_all(&[format!("{{\"exportId\":\"{}\"}}", job.id)]).await?)
    }
}

#[async_trait]
impl matbakh_app::ports::CopyLater for Queue {
    async fn copy_public_original(&self, file: FileId) -> PortResult<()> {
        Ok(self.send_all(&[matbakh_core::delivery::copy_public_original_message(file)]).await?)
    }
}

#[async_trait]
impl matbakh_app::ports::MigrationRecords for Queue {
    async fn user_erased(&self) -> PortResult<()> {
        Ok(self.send_all(&[matbakh_core::migration::REDACT_ERASED_MESSAGE.to_owned()]).await?)
    }
}

/// The eraser reads `core::erasure::EraseAgain`'s message.
#[async_trait]
impl matbakh_app::ports::EraseAgainQueue for Queue {
    async fn send_later(&self, job: &matbakh_core::erasure::EraseAgain, delay: std::time::Duration) -> PortResult<()> {
        Ok(Queue::send_later(self, &job.to_message(), delay).await?)
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
impl ObjectAccess for S3Store {
    async fn presign_download(&self, d: &Download<'_>) -> PortResult<SignedUrl> {
        let get = S3Store::presign_download(self, d).await?;
        Ok(SignedUrl { url: get.url, expires_at: get.expires_at })
    }

    async fn presign_post(&self, u: &Upload<'_>) -> PortResult<PresignedPost> {
        Ok(self.presign_upload(u).await?)
    }

    async fn size(&self, key: &ObjectKey) -> PortResult<Option<u64>> {
        Ok(self.object_size(key).await?)
    }

    async fn presign_get(&self, key: &ObjectKey, signed_at: OffsetDateTime, ttl: Duration) -> PortResult<String> {
        Ok(S3Store::presign_get(self, key, signed_at, ttl).await?.url)
    }

    async fn delete_prefix(&self, prefix: &str) -> PortResult<usize> {
        Ok(S3Store::delete_prefix(self, prefix).await?)
    }
}

#[async_trait]
impl ObjectErasure for S3Store {
    async fn holds_any(&self, prefix: &str) -> PortResult<bool> {
        Ok(S3Store::holds_any(self, prefix).await?)
    }

    async fn abort_uploads_under(&self, prefix: &str) -> PortResult<Vec<String>> {
        Ok(S3Store::abort_uploads_under(self, prefix).await?)
    }
}

#[async_trait]
impl ObjectUploads for S3Store {
    async fn create_multipart(
        &self,
        key: &ObjectKey,
        content_type: ContentType,
        checksum: Option<ChecksumAlgorithm>,
    ) -> PortResult<UploadId> {
        Ok(S3Store::create_multipart(self, key, content_type.as_str(), checksum).await?)
    }

    async fn presign_part(&self, p: &PartUpload<'_>) -> PortResult<SignedUrl> {
        let get = S3Store::presign_part(self, p).await?;
        Ok(SignedUrl { url: get.url, expires_at: get.expires_at })
    }

    async fn presign_multipart(&self, r: &MultipartRequest<'_>) -> PortResult<SignedUrl> {
        let id = |id: &UploadId| vec![("uploadId", id.as_str().to_owned())];
        let (method, query, headers) = match r.op {
            MultipartOp::Create(t) => {
                ("POST", vec![("uploads", String::new())], vec![("content-type", t.as_str().to_owned())])
            }
            MultipartOp::ListParts(upload) => ("GET", id(upload), vec![]),
            MultipartOp::Complete(upload) => ("POST", id(upload), vec![]),
            MultipartOp::Abort(upload) => ("DELETE", id(upload), vec![]),
        };
        let get = self.presign_operation(method, r.key, query, headers, r.signed_at, r.ttl).await?;
        Ok(SignedUrl { url: get.url, expires_at: get.expires_at })
    }

    async fn list_parts(&self, key: &ObjectKey, upload_id: &UploadId) -> PortResult<Option<Vec<UploadedPart>>> {
        Ok(S3Store::list_parts(self, key, upload_id).await?)
    }

    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &UploadId,
        parts: &[UploadedPart],
        integrity: Option<&Integrity>,
    ) -> PortResult<String> {
        Ok(S3Store::complete_multipart(self, key, upload_id, parts, integrity).await?)
    }

    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &UploadId) -> PortResult<()> {
        Ok(S3Store::abort_multipart(self, key, upload_id).await?)
    }
}

#[async_trait]
impl ObjectLifecycle for S3Store {
    async fn head(&self, key: &ObjectKey, version: Option<&str>) -> PortResult<Option<Head>> {
        let head = self.head_object(key, version).await?;
        Ok(head.map(|h| Head {
            size: h.size,
            version_id: h.version_id,
            storage_class: h.storage_class,
            content_disposition: h.content_disposition,
        }))
    }

    async fn publish(
        &self,
        from: &ObjectKey,
        version: Option<&str>,
        to: &ObjectKey,
        served: &ServedAs,
    ) -> PortResult<()> {
        Ok(S3Store::publish(self, from, version, to, served).await?)
    }

    async fn hide(&self, key: &ObjectKey) -> PortResult<()> {
        Ok(self.delete_version(key, None).await?)
    }

    async fn unhide(&self, key: &ObjectKey) -> PortResult<()> {
        if let Some(marker) = self.current_delete_marker(key).await? {
            self.delete_version(key, Some(&marker)).await?;
        }
        Ok(())
    }

    async fn set_tags(&self, key: &ObjectKey, version: Option<&str>, tags: &[(&str, &str)]) -> PortResult<()> {
        Ok(S3Store::set_tags(self, key, version, tags).await?)
    }

    async fn restore(&self, key: &ObjectKey, version: Option<&str>, tier: RestoreTier, days: u32) -> PortResult<()> {
        Ok(S3Store::restore(self, key, version, tier, days).await?)
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn read_digest(&self, key: &ObjectKey, version: Option<&str>, keep: usize) -> PortResult<Option<Digest>> {
        let read = S3Store::read_digest(self, key, version, keep).await?;
        Ok(read.map(|r| Digest { sha256: r.sha256, size: r.size, etag: r.etag, prefix: r.prefix }))
    }

    async fn read_prefix(&self, key: &ObjectKey, version: Option<&str>, len: usize) -> PortResult<Option<Vec<u8>>> {
        Ok(self.get_head(key, version, len).await?)
    }

    async fn read(&self, key: &ObjectKey, version: Option<&str>) -> PortResult<Option<Vec<u8>>> {
        Ok(self.get_object(key, version).await?.map(|(bytes, _)| bytes))
    }

    async fn open(&self, key: &ObjectKey, version: Option<&str>) -> PortResult<Option<Box<dyn ObjectStream>>> {
        let reader = self.open_object(key, version).await?;
        Ok(reader.map(|r| Box::new(r) as Box<dyn ObjectStream>))
    }

    async fn put_variant(&self, key: &ObjectKey, bytes: Vec<u8>, content_type: &str) -> PortResult<()> {
        Ok(self.put_derived(key, bytes, content_type).await?)
    }

    async fn create(&self, key: &ObjectKey, content_type: &str) -> PortResult<Box<dyn ObjectSink>> {
        Ok(Box::new(StreamedObject::start(self, key, content_type).await?))
    }

    async fn copy_version(&self, from: &ObjectKey, version: Option<&str>, to: &ObjectKey) -> PortResult<()> {
        Ok(S3Store::copy_version(self, from, version, to).await?)
    }

    async fn publish_in_parts(
        &self,
        from: &ObjectKey,
        version: Option<&str>,
        to: &ObjectKey,
        served: &ServedAs,
    ) -> PortResult<()> {
        Ok(S3Store::publish_in_parts(self, from, version, to, served).await?)
    }

    async fn remove_versions_except(&self, key: &ObjectKey, keep: &str) -> PortResult<Vec<String>> {
        Ok(S3Store::remove_versions_except(self, key, keep).await?)
    }

    async fn delete_version(&self, key: &ObjectKey, version: Option<&str>) -> PortResult<()> {
        Ok(S3Store::delete_version(self, key, version).await?)
    }
}

#[async_trait]
impl ObjectStream for ObjectReader {
    fn size(&self) -> u64 {
        self.size
    }

    async fn next_chunk(&mut self) -> PortResult<Option<Vec<u8>>> {
        Ok(ObjectReader::next_chunk(self).await?.map(|chunk| chunk.as_ref().to_vec()))
    }
}

#[async_trait]
impl ObjectSink for StreamedObject {
    async fn write(&mut self, bytes: &[u8]) -> PortResult<()> {
        Ok(StreamedObject::write(self, bytes).await?)
    }

    fn written(&self) -> u64 {
        StreamedObject::written(self)
    }

    async fn finish(self: Box<Self>) -> PortResult<u64> {
        Ok(StreamedObject::finish(*self).await?)
    }

    async fn abort(self: Box<Self>) -> PortResult<()> {
        Ok(StreamedObject::abort(*self).await?)
    }
}
