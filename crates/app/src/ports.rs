//! What the use cases need from outside, as traits. The `matbakh-aws` adapters implement them
//! on DynamoDB and S3; [`crate::fakes`] in memory.
//!
//! One trait per aggregate: a user's files ([`FileRepo`]), their storage account
//! ([`UsageRepo`]), their share links ([`ShareRepo`]), uploads in flight ([`UploadRepo`]),
//! upload tokens ([`TokenRepo`]), export jobs ([`ExportRepo`], built through [`ExportQueue`]),
//! their audit trail ([`AuditLog`]), their request counters ([`Counters`]), all of it at once ([`AccountRepo`], to erase), the bytes
//! ([`ObjectStore`]) and the CDN's copies of them ([`EdgeCache`]).

use std::ops::RangeInclusive;
use std::time::Duration;

use async_trait::async_trait;
use matbakh_core::archival::{Archival, RestoreTier};
use matbakh_core::audit::{AuditEntry, AuditRecord};
use matbakh_core::checksum::{Checksum, ChecksumAlgorithm, Integrity};
use matbakh_core::delivery::ServedAs;
use matbakh_core::exports::{ExportJob, ExportState};
use matbakh_core::ids::{FileId, ObjectKey, Sha256, UserId};
use matbakh_core::listing::{Cursor, ListQuery};
use matbakh_core::metadata::{
    ContentFacts, Disposition, ExifFacts, FileDetails, FileRecord, FileStatus, PendingRow, Pinned, Ready, Settlement,
};
use matbakh_core::multipart::{PartNumber, UploadId, UploadSession, UploadedPart};
use matbakh_core::post_policy::PresignedPost;
use matbakh_core::quota::Usage;
use matbakh_core::report::InventoryRow;
use matbakh_core::shares::{Share, ShareId, ShareRefusal};
use matbakh_core::tokens::TokenGrant;
use matbakh_core::types::ContentType;
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
    /// The owner's account was erased and its erase has not finished (its second pass has not
    /// run, [`matbakh_core::erasure`]): it takes no new upload until then.
    #[error("the account was erased; its erase has not finished")]
    AccountErased,
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
    /// The object is in an archive storage class: S3 reads it only once it is restored.
    #[error("the object is archived: it is read once restored")]
    NotRestored,
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

/// A file's row by its id: what sharing a file needs of the files table.
#[async_trait]
pub trait FileLookup: Send + Sync {
    /// A file with everything the API shows of it, whoever owns it.
    async fn details(&self, id: FileId) -> PortResult<Option<FileDetails>>;
}

/// What granting a single upload needs of the files table: a file's row, and a new upload's
/// reserved one. A port of its own (with [`FileLookup`]) so that presign and shares link only
/// these, not every DynamoDB operation [`FileRepo`] reaches through its vtable.
#[async_trait]
pub trait FileGrants: FileLookup {
    /// A new upload's PENDING row with its size reserved against the owner's `quota`, in one
    /// transaction ([`PortError::QuotaExceeded`]: nothing written).
    async fn reserve(&self, record: &FileRecord, quota: u64) -> PortResult<()>;
}

/// What granting multipart uploads needs of the files table: besides [`FileGrants`], a new
/// upload's row whose size is not known yet. A port of its own so that the multipart function
/// links only these.
#[async_trait]
pub trait FileUploads: FileGrants {
    /// A new upload's PENDING row that reserves nothing (its size is not known when it is
    /// granted); the object-created event settles it.
    async fn put_unreserved(&self, record: &FileRecord) -> PortResult<()>;
}

/// What showing and changing files needs of the files table: an owner's pages of files and
/// count, the owner's changes, soft delete and restore, and the steps to the archive tier and
/// back. A port of its own (with [`FileLookup`]) so that `files-api` links none of the DynamoDB
/// operations that uploads, processing and erasing take.
#[async_trait]
pub trait FileCatalog: FileLookup {
    /// A page of `owner`'s files as `q` asks, and where the next page starts.
    async fn list(&self, owner: &UserId, q: &ListQuery) -> PortResult<(Vec<FileDetails>, Option<Cursor>)>;

    /// How many of `owner`'s files are not deleted.
    async fn count_live(&self, owner: &UserId) -> PortResult<u64>;

    /// Writes the owner's changes (name, tags, visibility, metadata: as `after` has them) to the
    /// file they saw as `before`, if nobody changed it meanwhile and it is not deleted
    /// (`false`: read it again).
    async fn update(&self, before: &FileDetails, after: &FileRecord) -> PortResult<bool>;

    /// An owner's soft delete at `at` of the file in status `from`: the row is DELETED,
    /// restorable for the restore window (to what it was: `deleted_from`); its bytes stay
    /// counted (as deleted) in the owner's usage. Idempotent.
    async fn soft_delete(&self, id: FileId, at: OffsetDateTime, from: FileStatus) -> PortResult<()>;

    /// DELETED → `record.status` (READY, or ARCHIVED), charging the bytes again within `quota`
    /// if the row no longer holds them ([`PortError::QuotaExceeded`]); `false` if the row is
    /// not DELETED.
    async fn restore(&self, record: &FileRecord, quota: u64) -> PortResult<bool>;

    /// A step on the way to the archive tier and back ([`matbakh_core::archival`]): if the
    /// row's status is one of `from`, it becomes `to` with `archival`; else `false`, nothing
    /// written.
    async fn set_archival(
        &self,
        id: FileId,
        from: &[FileStatus],
        to: FileStatus,
        archival: &Archival,
    ) -> PortResult<bool>;
}

/// Files and what their owners and processing added to them (tags, image facts, EXIF).
#[async_trait]
pub trait FileRepo: FileUploads + FileCatalog {
    /// Every file of `owner`, whatever its status, oldest first.
    async fn all(&self, owner: &UserId) -> PortResult<Vec<FileDetails>>;

    /// A delete marker hides the file's object: the row becomes DELETED, its stored bytes stay
    /// counted (as deleted) until [`Self::purge_deleted`], its reservation goes. `false` (nothing
    /// changed) for a row QUARANTINED or DELETED already, or an event older (`order`) than the
    /// row's last.
    async fn mark_deleted(&self, id: FileId, order: Option<&str>) -> PortResult<bool>;

    /// The file's object is gone for good: DELETED, its bytes leave the usage at once. As
    /// [`Self::mark_deleted`] otherwise.
    async fn mark_removed(&self, id: FileId, order: Option<&str>) -> PortResult<bool>;

    /// The oldest other live file of `owner` with the bytes `sha`, if any.
    async fn find_duplicate(&self, owner: &UserId, sha: &Sha256, besides: FileId) -> PortResult<Option<FileId>>;

    /// Records what reading the file's object found; `false` (nothing written) if the row is
    /// gone or an event newer than `order` changed it since.
    async fn record_content(&self, id: FileId, facts: &ContentFacts, order: Option<&str>) -> PortResult<bool>;

    /// PENDING → READY, recording what processing found (`ready`); `false` (nothing written)
    /// if the row is not PENDING (processed before, or refused meanwhile).
    async fn mark_ready(&self, id: FileId, ready: &Ready<'_>) -> PortResult<bool>;

    /// PENDING → FAILED with `reason`: an image that could not be processed stays, without
    /// variants. `false` as for [`Self::mark_ready`].
    async fn mark_failed(&self, id: FileId, reason: &str) -> PortResult<bool>;

    /// A settled PENDING row whose processing was given up → FAILED, `unprocessed`, with
    /// `reason` (its owner sees why and may delete it). `false` if the row is not PENDING or not
    /// settled yet (the sweeper's, once its grant lapses).
    async fn give_up(&self, id: FileId, reason: &str) -> PortResult<bool>;

    /// An `unprocessed` FAILED row → PENDING again, to be processed. `false` if it is not one.
    async fn reopen(&self, id: FileId) -> PortResult<bool>;

    /// Puts the search words of the file's name and its tags in its owner's indexes
    /// (idempotent; a file is indexed when its object arrives, and retagging keeps it so).
    async fn index_search(&self, record: &FileRecord) -> PortResult<()>;

    /// A DELETED file's versions are gone for good: the bytes its row still holds leave the
    /// owner's usage. `false` if the row is not DELETED or holds nothing.
    async fn purge_deleted(&self, id: FileId) -> PortResult<bool>;
}

/// Uploads in flight: PENDING rows whose grant ran out, and multipart sessions.
#[async_trait]
pub trait UploadRepo: Send + Sync {
    /// Unsettled PENDING rows whose grant ended before `cutoff`, oldest first, at most `limit`,
    /// starting after `after` (the cursor an earlier page gave); with the cursor of the next
    /// page, if there may be one.
    async fn expired_pending(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
        after: Option<&Cursor>,
    ) -> PortResult<(Vec<PendingRow>, Option<Cursor>)>;

    /// Gives `row`'s bytes back to its owner and removes it (ending its session), if it is
    /// still the unsettled row it was; `false` if something settled or released it meanwhile.
    async fn release_pending(&self, row: &PendingRow) -> PortResult<bool>;

    /// Open multipart sessions (of every mode) whose time ran out before `cutoff`, soonest
    /// first, at most `limit`.
    async fn expired_sessions(&self, cutoff: OffsetDateTime, limit: usize) -> PortResult<Vec<UploadId>>;

    async fn session(&self, id: &UploadId) -> PortResult<Option<UploadSession>>;

    /// `owner`'s open sessions, newest first.
    async fn open_sessions(&self, owner: &UserId) -> PortResult<Vec<UploadSession>>;

    /// Whether an erase closed `owner`'s account (until its second pass; a consistent read):
    /// nothing may be made of their files then.
    async fn account_closed(&self, owner: &UserId) -> PortResult<bool>;

    /// Starts a planned session: reserves `record.size` of the owner's `quota`, writes the
    /// PENDING row and the session and takes one of the owner's `cap` open-upload places, in
    /// one transaction ([`PortError::QuotaExceeded`], [`PortError::TooManyOpenUploads`]:
    /// nothing written).
    async fn start_session(&self, record: &FileRecord, session: &UploadSession, quota: u64, cap: u64)
    -> PortResult<()>;

    /// Starts a session that reserves nothing up front (an upload token's, charged when it
    /// completes), taking one of the owner's `cap` open-upload places.
    async fn open_session(&self, session: &UploadSession, cap: u64) -> PortResult<()>;

    /// Binds an upload the client started itself (Uppy's signRequest mode) to the PENDING row
    /// of its key, taking an open-upload place. A row takes one upload:
    /// [`PortError::AlreadyExists`] if it has one or settled meanwhile.
    async fn bind_session(&self, session: &UploadSession, cap: u64) -> PortResult<()>;

    /// An open session is completed (it gives its place back); `false` if it was not open.
    async fn complete_session(&self, session: &UploadSession, etag: &str) -> PortResult<bool>;

    /// An open session is aborted: its reservation released, its unsettled row removed, its
    /// place given back, at once; `false` if it was not open.
    async fn abort_session(&self, session: &UploadSession) -> PortResult<bool>;

    /// Pins `version` as the accepted object of file `id` at `key`, unless another version was
    /// pinned before (DECISIONS 28); [`Pinned::Unknown`] if no row was granted for the key.
    async fn pin_version(&self, id: FileId, key: &ObjectKey, version: &str) -> PortResult<Pinned>;

    /// Settles an upload that arrived at `key` with `actual` bytes (DECISIONS 12): the row
    /// takes the real size, the owner's usage moves from what the row counted to `actual`
    /// (within `quota`, except for migrated files), its reservation and any upload token's
    /// unused allowance are given back, and its session ends, at once. Refused (nothing
    /// written) when the object is larger than granted or the quota has no room. Idempotent.
    async fn settle(&self, id: FileId, key: &ObjectKey, actual: u64, quota: u64) -> PortResult<Settlement>;

    /// Marks a refused upload QUARANTINED with `reason` and gives back everything its row
    /// counted in the owner's usage. Idempotent.
    async fn reject(&self, id: FileId, reason: &str) -> PortResult<()>;

    /// Ends an expired open session (COMPLETED if its object `arrived`, else ABORTED) and gives
    /// its owner's open-upload place back; `false` if it was no longer open.
    async fn end_expired_session(&self, session: &UploadSession, arrived: bool) -> PortResult<bool>;
}

/// Upload tokens: capabilities for Uppy's Companion mode, bounded in bytes, types and time.
#[async_trait]
pub trait TokenRepo: Send + Sync {
    /// Stores a new token's grant (by its digest; the token itself is never stored).
    async fn create(&self, grant: &TokenGrant) -> PortResult<()>;

    async fn get(&self, digest: &str) -> PortResult<Option<TokenGrant>>;

    /// Revokes `owner`'s token at once; `false` if there is no such token of theirs.
    async fn revoke(&self, digest: &str, owner: &UserId) -> PortResult<bool>;

    /// Reserves `record.size` (the most a granted form allows) against the token's allowance
    /// and the owner's `quota` and writes the PENDING row naming the token, in one transaction
    /// ([`PortError::QuotaExceeded`] if either has no room: nothing written).
    async fn reserve_upload(&self, grant: &TokenGrant, record: &FileRecord, quota: u64) -> PortResult<()>;
}

/// Everything a user has in the metadata store, as a whole (GDPR erase).
#[async_trait]
pub trait AccountRepo: Send + Sync {
    /// The ids of every file of `owner`, whatever its status.
    async fn file_ids(&self, owner: &UserId) -> PortResult<Vec<FileId>>;

    /// Deletes every item of `files`: each file's row (with its tags and search words) and the
    /// upload session it names. Answers how many; a second call finds none.
    async fn erase_files(&self, files: &[FileId]) -> PortResult<usize>;

    /// Deletes every other item that holds `owner`'s data: the sessions of `uploads`, shares,
    /// sessions, tokens, exports, legacy mappings, budget counters, audit trail. Answers how
    /// many; a second call finds none. Their files are [`Self::erase_files`]'; their storage
    /// account is [`Self::close`]'s and [`Self::reopen`]'s.
    async fn erase(&self, owner: &UserId, uploads: &[String]) -> PortResult<usize>;

    /// Closes `owner`'s storage account for the erase made at `erased_at` (whole seconds): its
    /// counters go, and every upload grant is refused ([`PortError::AccountErased`], where the
    /// quota is checked) until [`Self::reopen`]. An account a later erase closed stays as it
    /// is. Answers whether counters went (an open account's item: one of the user's items).
    async fn close(&self, owner: &UserId, erased_at: i64) -> PortResult<bool>;

    /// Removes the account [`Self::close`] closed for the erase made at `erased_at`: the id
    /// takes uploads again (a new account's). `false`, and nothing changed, if a later erase
    /// closed it again (its own second pass reopens it) or it is not closed.
    async fn reopen(&self, owner: &UserId, erased_at: i64) -> PortResult<bool>;

    /// The legacy paths of `owner`'s migrated files.
    async fn legacy_paths(&self, owner: &UserId) -> PortResult<Vec<String>>;

    /// Marks the user whose keyed pseudonym is `stand_in` as erased, and their legacy paths by
    /// their marks, for good: a migration then never brings their files back, and the legacy
    /// redirector answers `410` for their old URLs.
    async fn mark_erased(&self, stand_in: &UserId, path_marks: &[String], at: &str) -> PortResult<()>;
}

/// A CDN's cached copies of the bucket's objects.
#[async_trait]
pub trait EdgeCache: Send + Sync {
    /// Invalidates `paths` (a trailing `*` is a wildcard); `reference` makes a retry of the
    /// same request one invalidation. Answers its id.
    async fn invalidate(&self, paths: &[String], reference: &str) -> PortResult<String>;
}

/// A user's storage account.
#[async_trait]
pub trait UsageRepo: Send + Sync {
    async fn usage(&self, owner: &UserId) -> PortResult<Usage>;
}

/// Per-user request counters of the costly requests' budgets ([`crate::throttle`]).
#[async_trait]
pub trait Counters: Send + Sync {
    /// Counts one more request on `user`'s counter `name` unless it already holds `limit`;
    /// whether it counted. One atomic step (two instances never both take the last one); the
    /// counter may be forgotten after `until`.
    async fn take(&self, user: &UserId, name: &str, limit: u64, until: OffsetDateTime) -> PortResult<bool>;
}

/// Every object version of the bucket, one row at a time (S3 Inventory, or a listing).
#[async_trait]
pub trait InventorySource: Send + Sync {
    /// Calls `each` with every object version and delete marker; answers where the rows came
    /// from (`inventory`, `listing`).
    async fn scan(&self, each: &mut (dyn FnMut(InventoryRow) + Send)) -> PortResult<&'static str>;
}

/// What a [`TransferSource`] hands each logged request to, with its CDN's name.
pub type TransferSink<'a> = dyn FnMut(&str, matbakh_core::cdn_log::Request) + Send + 'a;

/// The CDNs' access logs ([`matbakh_core::cdn_log`]).
#[async_trait]
pub trait TransferSource: Send + Sync {
    /// Calls `each` with every request the CDNs logged for `days` (UTC) and the CDN's name
    /// (`files`, `web`); answers how many log files were read.
    async fn scan(&self, days: &[time::Date], each: &mut TransferSink<'_>) -> PortResult<u64>;
}

/// Where the storage reports are kept.
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Keeps `dated` as the report of `day` (`2026-12-05`), for good, and `latest` as the latest.
    async fn save(&self, day: &str, dated: Vec<u8>, latest: Vec<u8>) -> PortResult<()>;
    /// The latest report, if one was made.
    async fn latest(&self) -> PortResult<Option<Vec<u8>>>;
}

/// Share links.
#[async_trait]
pub trait ShareRepo: Send + Sync {
    /// Stores a new link ([`PortError::AlreadyExists`] if its id is taken).
    async fn create(&self, share: &Share) -> PortResult<()>;

    async fn get(&self, id: &ShareId) -> PortResult<Option<Share>>;

    /// `owner`'s links, newest first, at most `limit`.
    async fn list(&self, owner: &UserId, limit: usize) -> PortResult<Vec<Share>>;

    /// Revokes `owner`'s link at once; `None` if there is no such link of theirs.
    async fn revoke(&self, id: &ShareId, owner: &UserId) -> PortResult<Option<Share>>;

    /// Counts one download through the link if it still allows one at `now` (in one
    /// conditional write, so two visitors cannot both take the last one); else why not.
    async fn use_once(&self, id: &ShareId, now: OffsetDateTime) -> PortResult<Result<Share, ShareRefusal>>;
}

/// GDPR export jobs.
#[async_trait]
pub trait ExportRepo: Send + Sync {
    /// Stores a new job as its owner's newest, if their newest is still `replacing` (the id
    /// [`Self::latest`] answered, `None` if none): of two requests that read the same newest,
    /// one makes a job, the other gets [`PortError::ConditionFailed`].
    /// [`PortError::AlreadyExists`] if its id is taken.
    async fn create(&self, job: &ExportJob, replacing: Option<&str>) -> PortResult<()>;

    async fn get(&self, id: &str) -> PortResult<Option<ExportJob>>;

    /// The owner's newest job, if any (read consistently: one made a moment ago is it).
    async fn latest(&self, owner: &UserId) -> PortResult<Option<ExportJob>>;

    /// Moves a job to `state`, with its archive once READY.
    async fn set_state(&self, id: &str, state: ExportState, archive: Option<&Archive>) -> PortResult<()>;
}

/// A finished export archive: where it is, its size, and how many files it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub key: ObjectKey,
    pub size: u64,
    pub files: u64,
}

/// The migration, told that a user erased their account (its queue): it rewrites what its runs
/// recorded of them so that nothing there names them (`migrate::erased`).
#[async_trait]
pub trait MigrationRecords: Send + Sync {
    async fn user_erased(&self) -> PortResult<()>;
}

/// Where an erase's second pass waits until it is due (`core::erasure`): a queue that delivers
/// each message after `delay` (at most [`matbakh_core::erasure::MAX_QUEUE_DELAY`]).
#[async_trait]
pub trait EraseAgainQueue: Send + Sync {
    async fn send_later(&self, job: &matbakh_core::erasure::EraseAgain, delay: std::time::Duration) -> PortResult<()>;
}

/// When a message a queue consumer received comes back (its visibility): the consumer's retry
/// delay, where the queue's own visibility timeout (sized for the function's timeout) would be
/// far too long (the webhooks' backoff, the exporter's retries).
#[async_trait]
pub trait Redelivery: Send + Sync {
    /// Makes the message of `receipt_handle` visible again after `seconds`.
    async fn after(&self, receipt_handle: &str, seconds: i32) -> PortResult<()>;
}

/// Where export jobs go to be built (the exporter's queue).
#[async_trait]
pub trait ExportQueue: Send + Sync {
    async fn enqueue(&self, job: &ExportJob) -> PortResult<()>;
}

/// Copies handed to another function: a public original copied in parts
/// (`core::delivery::copied_apart`), which could outlast the time of whoever made its file
/// public (the thumbnailer's queue, asked by the notifier).
#[async_trait]
pub trait CopyLater: Send + Sync {
    async fn copy_public_original(&self, file: FileId) -> PortResult<()>;
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

/// A download to sign: exactly one version of an object, sent with the type and the name the
/// platform chose (never what the bytes claim).
#[derive(Debug, Clone, Copy)]
pub struct Download<'a> {
    pub key: &'a ObjectKey,
    /// The accepted version; `None` in a bucket without versioning.
    pub version_id: Option<&'a str>,
    pub content_type: &'a str,
    /// The `Content-Disposition` (RFC 6266) with the file's safe name.
    pub disposition: &'a str,
    pub signed_at: OffsetDateTime,
    pub ttl: Duration,
}

/// An upload to sign: one key, one type, a size (exact when declared) and optionally the
/// bytes' SHA-256, which S3 then verifies.
#[derive(Debug, Clone)]
pub struct Upload<'a> {
    pub key: &'a ObjectKey,
    pub content_type: ContentType,
    pub size: RangeInclusive<u64>,
    pub sha256: Option<Sha256>,
    pub signed_at: OffsetDateTime,
    pub ttl: Duration,
}

/// One part of a multipart upload to sign: S3 then takes exactly `content_length` bytes when
/// it is known, and only bytes with the part's `checksum` when the client declared one.
#[derive(Debug, Clone, Copy)]
pub struct PartUpload<'a> {
    pub key: &'a ObjectKey,
    pub upload_id: &'a UploadId,
    pub part: PartNumber,
    pub content_length: Option<u64>,
    pub checksum: Option<&'a Checksum>,
    pub signed_at: OffsetDateTime,
    pub ttl: Duration,
}

/// A request about a multipart upload that the client sends to S3 itself (Uppy's signRequest
/// mode), to sign.
#[derive(Debug, Clone, Copy)]
pub struct MultipartRequest<'a> {
    pub key: &'a ObjectKey,
    pub op: MultipartOp<'a>,
    pub signed_at: OffsetDateTime,
    pub ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultipartOp<'a> {
    /// With the object's type, signed as its `Content-Type` header: S3 stores no other.
    Create(ContentType),
    ListParts(&'a UploadId),
    Complete(&'a UploadId),
    Abort(&'a UploadId),
}

/// An object read once: its SHA-256, size and ETag, and its first bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub sha256: Sha256,
    pub size: u64,
    pub etag: Option<String>,
    /// At most the `keep` bytes asked for.
    pub prefix: Vec<u8>,
}

/// Reads the EXIF facts the platform keeps from an image's first bytes (pure: the imaging
/// crate's parser and the deployment's GPS setting).
pub trait ExifReader: Send + Sync {
    fn read(&self, prefix: &[u8]) -> ExifFacts;
}

/// An object being read in chunks, never held whole.
#[async_trait]
pub trait ObjectStream: Send {
    /// Its size as the store reported it when the read began.
    fn size(&self) -> u64;

    /// The next chunk, `None` at the end.
    async fn next_chunk(&mut self) -> PortResult<Option<Vec<u8>>>;
}

/// An object being written in parts as it is produced (an archive), never held whole.
#[async_trait]
pub trait ObjectSink: Send {
    async fn write(&mut self, bytes: &[u8]) -> PortResult<()>;

    /// Bytes written so far.
    fn written(&self) -> u64;

    /// Makes the object visible; answers its size.
    async fn finish(self: Box<Self>) -> PortResult<u64>;

    /// Drops what was written; nothing becomes visible.
    async fn abort(self: Box<Self>) -> PortResult<()>;
}

/// ClamAV or another scanner: the verdict on one object's bytes.
#[async_trait]
pub trait VirusScanner: Send + Sync {
    /// Reads `object` to its end, or declines it (too large). An error when no verdict could
    /// be had: a file is never passed unscanned by mistake, the event comes back.
    async fn scan(&self, object: &mut dyn ObjectStream) -> PortResult<Verdict>;
}

/// What a virus scanner said of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// The name of the signature that matched.
    Infected(String),
    /// Not scanned, and why (recorded on the row): over the scanner's size limit.
    NotScanned(String),
}

/// The image pipeline (pure: the imaging crate, run off the async threads).
#[async_trait]
pub trait Renderer: Send + Sync {
    /// Refuses a source of `size` bytes before it is read into memory.
    fn check_size(&self, size: u64) -> Result<(), RenderFailure>;

    /// The image's facts and its responsive variants.
    async fn render(&self, bytes: Vec<u8>) -> Result<Rendition, RenderFailure>;
}

/// What the image pipeline made of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendition {
    /// As displayed (after EXIF orientation).
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    /// Base64 ThumbHash.
    pub placeholder: String,
    pub variants: Vec<RenderedVariant>,
}

/// One encoded variant.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedVariant {
    pub width: u32,
    pub height: u32,
    /// `avif`, `webp`, `jpg`.
    pub extension: &'static str,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for RenderedVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{} {} ({} bytes)", self.width, self.height, self.extension, self.bytes.len())
    }
}

/// Why an image got no variants, and what becomes of its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderFailure {
    pub disposition: Disposition,
    /// Stored on the file's row.
    pub reason: String,
}

/// One version of an object, as a HEAD request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub size: u64,
    /// `None` in a bucket without versioning.
    pub version_id: Option<String>,
    /// S3's storage class (`None`: STANDARD, which S3 does not name).
    pub storage_class: Option<String>,
    /// `Content-Disposition` it is served with (a public copy of an original: its download name).
    pub content_disposition: Option<String>,
}

/// A presigned URL and until when it works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUrl {
    pub url: String,
    pub expires_at: OffsetDateTime,
}

/// What moving files between browsers and the bucket needs of it: download URLs, upload forms,
/// sizes, and deleting a file's public copies ([`crate::delivery::Delivery`], single uploads,
/// export downloads; writing the copies is [`ObjectLifecycle::publish`]). A port of its own so that
/// the functions that need no more (the notifier, presign, shares) link only these S3
/// operations, not every one that [`ObjectStore`] reaches through its vtable (about 0.55 MB of
/// an arm64 bootstrap).
#[async_trait]
pub trait ObjectAccess: Send + Sync {
    /// A URL that downloads `d` (see [`Download`]).
    async fn presign_download(&self, d: &Download<'_>) -> PortResult<SignedUrl>;

    /// A browser form (POST policy) that uploads exactly what `u` describes (see [`Upload`]).
    async fn presign_post(&self, u: &Upload<'_>) -> PortResult<PresignedPost>;

    /// The size of the object at `key`, if there is one.
    async fn size(&self, key: &ObjectKey) -> PortResult<Option<u64>>;

    /// A URL that GETs `key` from `signed_at` for `ttl`.
    async fn presign_get(&self, key: &ObjectKey, signed_at: OffsetDateTime, ttl: Duration) -> PortResult<String>;

    /// Deletes every version and delete marker under `prefix` for good; answers how many.
    async fn delete_prefix(&self, prefix: &str) -> PortResult<usize>;
}

/// What erasing an account needs of the bucket: besides deleting everything under a prefix
/// ([`ObjectAccess::delete_prefix`]), whether anything is left there and aborting the uploads in
/// progress under it. A port of its own so that the account function links only these.
#[async_trait]
pub trait ObjectErasure: ObjectAccess {
    /// Whether anything (any version) is stored under `prefix`.
    async fn holds_any(&self, prefix: &str) -> PortResult<bool>;

    /// Aborts every multipart upload under `prefix`; answers their upload ids.
    async fn abort_uploads_under(&self, prefix: &str) -> PortResult<Vec<String>>;
}

/// What multipart uploads need of the bucket: starting, signing, listing, completing and
/// aborting them (and, from [`ObjectAccess`], upload forms). A port of its own so that the
/// multipart function links only these S3 operations.
#[async_trait]
pub trait ObjectUploads: ObjectAccess {
    /// Starts a multipart upload of one object; with `checksum`, S3 keeps a full-object
    /// checksum of that algorithm.
    async fn create_multipart(
        &self,
        key: &ObjectKey,
        content_type: ContentType,
        checksum: Option<ChecksumAlgorithm>,
    ) -> PortResult<UploadId>;

    /// A PUT URL for one part (see [`PartUpload`]).
    async fn presign_part(&self, p: &PartUpload<'_>) -> PortResult<SignedUrl>;

    /// A URL for a multipart request the client sends itself (see [`MultipartRequest`]).
    async fn presign_multipart(&self, r: &MultipartRequest<'_>) -> PortResult<SignedUrl>;

    /// Every part S3 holds for the upload; `None` if it knows no such upload (completed or
    /// aborted).
    async fn list_parts(&self, key: &ObjectKey, upload_id: &UploadId) -> PortResult<Option<Vec<UploadedPart>>>;

    /// Completes the upload with `parts`, never overwriting an object; answers its ETag. With
    /// `integrity`, S3 checks the whole object's checksum ([`PortError::ChecksumMismatch`]).
    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &UploadId,
        parts: &[UploadedPart],
        integrity: Option<&Integrity>,
    ) -> PortResult<String>;

    /// Aborts a multipart upload, freeing its parts; after it nobody can complete it.
    /// Idempotent.
    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &UploadId) -> PortResult<()>;
}

/// What a file's life needs of its object after the upload: whether and in which storage class
/// it is there, hiding it behind a delete marker and back (soft delete, restore), tagging it for
/// the archive tier and asking S3 to restore it, and copying it to its public place (publish).
/// A port of its own so that `files-api`, which does these, links none of the S3 operations
/// that reading, writing and multipart uploads take.
#[async_trait]
pub trait ObjectLifecycle: ObjectAccess {
    /// The object at `key` (the current version, or `version`); `None` if there is none or a
    /// delete marker hides it.
    async fn head(&self, key: &ObjectKey, version: Option<&str>) -> PortResult<Option<Head>>;

    /// Copies `version` of `from` to `to`, stored with the headers `served` names (a public
    /// copy the files CDN serves), without the GPS position an original may hold
    /// (`core::location`; one too large to rewrite, or unreadable, gets no copy).
    async fn publish(
        &self,
        from: &ObjectKey,
        version: Option<&str>,
        to: &ObjectKey,
        served: &ServedAs,
    ) -> PortResult<()>;

    /// Hides the object behind a delete marker (its versions stay). Idempotent.
    async fn hide(&self, key: &ObjectKey) -> PortResult<()>;

    /// Removes the delete marker that hides the object, if one does. Idempotent.
    async fn unhide(&self, key: &ObjectKey) -> PortResult<()>;

    /// Replaces the tags of `version` of `key` with `tags` (the lifecycle rules filter on them;
    /// no new version is written).
    async fn set_tags(&self, key: &ObjectKey, version: Option<&str>, tags: &[(&str, &str)]) -> PortResult<()>;

    /// Asks for a copy of the archived `version` of `key`, readable for `days` once S3 made it
    /// in `tier`'s time. Idempotent: a restore already under way is no error.
    async fn restore(&self, key: &ObjectKey, version: Option<&str>, tier: RestoreTier, days: u32) -> PortResult<()>;
}

/// The bucket: objects by key, versioned.
#[async_trait]
pub trait ObjectStore: ObjectErasure + ObjectUploads + ObjectLifecycle {
    /// Reads `version` of `key` (the current one if `None`) once, streaming: its SHA-256, size,
    /// ETag and first `keep` bytes; `None` if it is gone.
    async fn read_digest(&self, key: &ObjectKey, version: Option<&str>, keep: usize) -> PortResult<Option<Digest>>;

    /// The first `len` bytes of `version` of `key` (the current one if `None`); `None` if it
    /// is gone.
    async fn read_prefix(&self, key: &ObjectKey, version: Option<&str>, len: usize) -> PortResult<Option<Vec<u8>>>;

    /// The whole of `version` of `key` (the current one if `None`); `None` if it is gone.
    async fn read(&self, key: &ObjectKey, version: Option<&str>) -> PortResult<Option<Vec<u8>>>;

    /// Opens `version` of `key` for reading in chunks; `None` if it is gone,
    /// [`PortError::NotRestored`] if it is archived.
    async fn open(&self, key: &ObjectKey, version: Option<&str>) -> PortResult<Option<Box<dyn ObjectStream>>>;

    /// Writes a variant (immutable, cached for a year, no metadata).
    async fn put_variant(&self, key: &ObjectKey, bytes: Vec<u8>, content_type: &str) -> PortResult<()>;

    /// Starts writing the object `key` in parts ([`ObjectSink`]).
    async fn create(&self, key: &ObjectKey, content_type: &str) -> PortResult<Box<dyn ObjectSink>>;

    /// Copies `version` of `from` to `to` (a new object), in parts where it is large.
    async fn copy_version(&self, from: &ObjectKey, version: Option<&str>, to: &ObjectKey) -> PortResult<()>;

    /// [`ObjectLifecycle::publish`] of an original of any size, in parts where it is large
    /// (`core::delivery::copied_apart`): only the thumbnailer copies those, asked by a message,
    /// so a function that publishes small ones alone links no copy in parts.
    async fn publish_in_parts(
        &self,
        from: &ObjectKey,
        version: Option<&str>,
        to: &ObjectKey,
        served: &ServedAs,
    ) -> PortResult<()>;

    /// Deletes every version of `key` but `keep` for good; answers the ones it deleted.
    async fn remove_versions_except(&self, key: &ObjectKey, keep: &str) -> PortResult<Vec<String>>;

    /// Deletes `version` of `key` for good (`None`: hides the object behind a delete marker,
    /// or removes it in a bucket without versioning).
    async fn delete_version(&self, key: &ObjectKey, version: Option<&str>) -> PortResult<()>;
}

/// An open WebSocket of the live updates API: whose it is, and whether an administrator opened
/// it (administrators' sockets also get the migration's progress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// API Gateway's connection id.
    pub id: String,
    pub user: UserId,
    pub admin: bool,
}

/// The open sockets, and the one-time tickets that open them.
#[async_trait]
pub trait Connections: Send + Sync {
    /// Records an opened socket, kept until it closes (or `expires_at`, by TTL).
    async fn open(&self, c: &Connection, expires_at: OffsetDateTime) -> PortResult<()>;
    /// Forgets a socket (closed, or found gone); forgetting one twice is no error.
    async fn close(&self, c: &Connection) -> PortResult<()>;
    async fn of_user(&self, user: &UserId) -> PortResult<Vec<Connection>>;
    async fn of_admins(&self) -> PortResult<Vec<Connection>>;
    /// Keeps a ticket for `user`, by its digest, usable until `expires_at`.
    async fn issue_ticket(&self, digest: &str, user: &UserId, expires_at: OffsetDateTime) -> PortResult<()>;
    /// Takes the ticket: its user if it was there and usable at `now`. Gone afterwards, so a
    /// second use (even a concurrent one) finds nothing.
    async fn redeem_ticket(&self, digest: &str, now: OffsetDateTime) -> PortResult<Option<UserId>>;
}

/// What became of a message pushed to a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Sent,
    /// The socket is closed (API Gateway answers 410): forget it.
    Gone,
}

/// Sends a message to one open socket (API Gateway's `@connections` API).
#[async_trait]
pub trait Push: Send + Sync {
    async fn push(&self, connection: &str, body: &[u8]) -> PortResult<Pushed>;

    /// Closes the socket (one already gone is no error).
    async fn disconnect(&self, connection: &str) -> PortResult<()>;
}

/// The webhook queue: each message is delivered, signed, by the `webhooks` function.
#[async_trait]
pub trait Outbox: Send + Sync {
    async fn enqueue(&self, bodies: &[String]) -> PortResult<()>;
}
