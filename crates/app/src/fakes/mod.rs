//! In-memory implementations of the ports, for tests: [`InMemory`] holds files, usage, upload
//! sessions and tokens, shares, exports and the audit trail; [`InMemoryObjects`] the bucket
//! (with its multipart uploads); [`InMemoryCdn`] the invalidations asked of a CDN;
//! [`InMemoryQueue`] the export jobs sent. They keep the contract the DynamoDB and S3 adapters
//! keep (the adapters' moto tests check theirs), within one process.
//!
//! `InMemory`'s ports are implemented by aggregate: [`files`] (files, usage, the account as a
//! whole), [`uploads`] (sessions, tokens, settling), [`records`] (shares, export jobs, the audit
//! trail); [`objects`] is the bucket and the CDN.

mod files;
mod live;
mod objects;
mod records;
mod uploads;

pub use live::InMemoryLive;
pub use objects::{InMemoryCdn, InMemoryObjects};
pub use records::{InMemoryInventory, InMemoryQueue, InMemoryReports, InMemoryTransfer};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use matbakh_core::archival::{Archival, RestoreTier};
use matbakh_core::audit::{AuditEntry, AuditRecord};
use matbakh_core::checksum::{ChecksumAlgorithm, Integrity};
use matbakh_core::clock::iso_millis;
use matbakh_core::delivery::ServedAs;
use matbakh_core::exports::{ExportJob, ExportState};
use matbakh_core::ids::{FileId, ObjectKey, Sha256, UserId};
use matbakh_core::listing::{Cursor, ListQuery, SortBy};
use matbakh_core::metadata::{
    ContentFacts, FileDetails, FileRecord, FileStatus, PendingRow, Pinned, Ready, Settlement,
};
use matbakh_core::multipart::{PartNumber, SessionState, UploadId, UploadSession, UploadedPart};
use matbakh_core::names::fold;
use matbakh_core::post_policy::PresignedPost;
use matbakh_core::quota::Usage;
use matbakh_core::shares::{Share, ShareId, ShareRefusal, is_expired};
use matbakh_core::tokens::TokenGrant;
use matbakh_core::types::ContentType;
use time::OffsetDateTime;

use crate::ports::{
    AccountRepo, Archive, AuditLog, Counters, Digest, Download, EdgeCache, ExportQueue, ExportRepo, FileCatalog,
    FileGrants, FileLookup, FileRepo, FileUploads, Head, MultipartOp, MultipartRequest, ObjectAccess, ObjectErasure,
    ObjectLifecycle, ObjectSink, ObjectStore, ObjectStream, ObjectUploads, PartUpload, PortError, PortResult,
    ShareRepo, SignedUrl, TokenRepo, Upload, UploadRepo, UsageRepo,
};

/// The public originals asked to be copied elsewhere ([`crate::ports::CopyLater`]).
#[derive(Default)]
pub struct CopyRequests(Mutex<Vec<FileId>>);

impl CopyRequests {
    /// The files asked for, in order.
    pub fn sent(&self) -> Vec<FileId> {
        lock(&self.0).clone()
    }
}

#[async_trait]
impl crate::ports::CopyLater for CopyRequests {
    async fn copy_public_original(&self, file: FileId) -> PortResult<()> {
        lock(&self.0).push(file);
        Ok(())
    }
}

/// An audit trail kept in `log`, dated by `clock`, with the default retention.
pub fn trail(log: Arc<InMemory>, clock: Arc<dyn matbakh_core::clock::Clock>) -> crate::audit::Trail {
    crate::audit::Trail { log, retention: matbakh_core::limits::Limits::default().audit_retention, clock }
}

/// Delivery without a CDN: presigned URLs from `objects`, windows of the default image URL
/// lifetime, no public copies.
pub fn delivery(
    objects: Arc<dyn ObjectAccess>,
    clock: Arc<dyn matbakh_core::clock::Clock>,
) -> crate::delivery::Delivery {
    let window = matbakh_core::limits::Limits::default().image_url_ttl;
    crate::delivery::Delivery { objects, cdn: None, edge: None, clock, window, later: None }
}

/// What a cursor of this fake's listings says it continues.
const CURSOR_KIND: &str = "memory";

#[derive(Default)]
struct State {
    files: BTreeMap<FileId, Stored>,
    usage: HashMap<UserId, Usage>,
    audit: Vec<AuditEntry>,
    shares: HashMap<ShareId, Share>,
    sessions: HashMap<UploadId, UploadSession>,
    exports: HashMap<String, ExportJob>,
    tokens: HashMap<String, TokenGrant>,
    counters: HashMap<(UserId, String), u64>,
    /// Erased users' pseudonyms.
    erased: std::collections::HashSet<UserId>,
    /// Erased users' legacy paths' marks.
    erased_paths: std::collections::HashSet<String>,
    /// Legacy paths of migrated files, and whose they are.
    legacy: Vec<(String, UserId)>,
    /// Accounts an erase closed, with the erase's time (unix seconds).
    closed: HashMap<UserId, i64>,
}

struct Stored {
    details: FileDetails,
    /// Bytes the owner's usage counts for the row.
    charged: u64,
    /// Of them, bytes held for an upload that has not arrived.
    reserved: u64,
    /// Whether its object arrived and was settled.
    settled: bool,
    /// The upload token whose allowance the row holds, if any.
    token: Option<String>,
    /// The last bucket event that changed the row (its order).
    order: Option<String>,
    /// An older file of the owner's with the same bytes.
    duplicate_of: Option<FileId>,
    /// What the virus scan said, when one ran.
    virus_scan: Option<String>,
}

/// Files, usage and audit trails in memory.
#[derive(Default)]
pub struct InMemory {
    state: Mutex<State>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock fails by itself; the others go on.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl InMemory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the user with pseudonym `stand_in` is marked erased.
    pub fn is_erased(&self, stand_in: &UserId) -> bool {
        lock(&self.state).erased.contains(stand_in)
    }

    /// Whether the legacy path with mark `mark` is marked as an erased user's.
    pub fn is_erased_path(&self, mark: &str) -> bool {
        lock(&self.state).erased_paths.contains(mark)
    }

    /// Records that a migration mapped legacy path `path` to a file of `owner`'s.
    pub fn insert_legacy(&self, path: &str, owner: &UserId) {
        lock(&self.state).legacy.push((path.to_owned(), owner.clone()));
    }

    /// Stores a file as the indexer would have left it; a READY or FAILED file's bytes count
    /// in its owner's usage, a DELETED one's as deleted.
    pub fn insert(&self, details: FileDetails) {
        let mut st = lock(&self.state);
        let r = &details.record;
        let charged = if r.status == FileStatus::Pending { 0 } else { r.size };
        let usage = st.usage.entry(r.owner.clone()).or_default();
        usage.charged += charged;
        if r.status == FileStatus::Deleted {
            usage.deleted += charged;
        }
        let settled = r.status != FileStatus::Pending;
        st.files.insert(
            r.file_id,
            Stored {
                details,
                charged,
                reserved: 0,
                settled,
                token: None,
                order: None,
                duplicate_of: None,
                virus_scan: None,
            },
        );
    }

    /// The audit entries recorded, oldest first.
    pub fn audit_entries(&self) -> Vec<AuditEntry> {
        lock(&self.state).audit.clone()
    }

    /// Stores a multipart session; an open one takes a place among its owner's open uploads.
    pub fn insert_session(&self, session: UploadSession) {
        let mut st = lock(&self.state);
        if session.state == SessionState::Open {
            st.usage.entry(session.owner.clone()).or_default().open_uploads += 1;
        }
        st.sessions.insert(session.upload_id.clone(), session);
    }

    /// A multipart session as stored.
    pub fn session(&self, id: &UploadId) -> Option<UploadSession> {
        lock(&self.state).sessions.get(id).cloned()
    }

    /// A share link as stored.
    pub fn share(&self, id: &ShareId) -> Option<Share> {
        lock(&self.state).shares.get(id).cloned()
    }

    /// The older file with the same bytes that indexing found, if it did.
    pub fn duplicate_of(&self, id: FileId) -> Option<FileId> {
        lock(&self.state).files.get(&id).and_then(|s| s.duplicate_of)
    }

    /// What the virus scan recorded on a file's row.
    pub fn virus_scan(&self, id: FileId) -> Option<String> {
        lock(&self.state).files.get(&id).and_then(|s| s.virus_scan.clone())
    }

    /// The stored details of a file, as a test reads them back.
    pub fn get(&self, id: FileId) -> Option<FileDetails> {
        lock(&self.state).files.get(&id).map(|s| s.details.clone())
    }
}

/// Where a cursor says a page ended (shaped like the table's keys, as cursors must be).
fn cursor_pk(id: FileId) -> String {
    format!("FILE#{id}")
}

/// The sort key of a file in a listing sorted by `sort`.
fn sort_key(d: &FileDetails, sort: SortBy) -> (String, FileId) {
    let r = &d.record;
    let key = match sort {
        SortBy::Date => iso_millis(r.created_at),
        SortBy::Name => fold(r.filename.as_str()),
        SortBy::Size => format!("{:020}", r.size),
    };
    (key, r.file_id)
}
