//! In-memory implementations of the ports, for tests: [`InMemory`] holds files, usage, upload
//! sessions and tokens, shares, exports and the audit trail; [`InMemoryObjects`] the bucket
//! (with its multipart uploads); [`InMemoryCdn`] the invalidations asked of a CDN. They keep the contract the DynamoDB and S3
//! adapters keep (the adapters' moto tests check theirs), within one process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use matbakh_core::audit::{AuditEntry, AuditRecord};
use matbakh_core::checksum::{ChecksumAlgorithm, Integrity};
use matbakh_core::clock::iso_millis;
use matbakh_core::exports::ExportJob;
use matbakh_core::ids::{FileId, ObjectKey, Sha256, UserId};
use matbakh_core::listing::{Cursor, ListQuery, SortBy, Tag};
use matbakh_core::metadata::{ContentFacts, FileDetails, FileRecord, FileStatus, PendingRow, Pinned, Settlement};
use matbakh_core::multipart::{PartNumber, SessionState, UploadId, UploadSession, UploadedPart};
use matbakh_core::names::{DisplayName, fold};
use matbakh_core::post_policy::PresignedPost;
use matbakh_core::quota::Usage;
use matbakh_core::shares::{Share, ShareId, ShareRefusal, is_expired};
use matbakh_core::tokens::TokenGrant;
use matbakh_core::types::ContentType;
use time::OffsetDateTime;

use crate::ports::{
    AccountRepo, AuditLog, Digest, Download, EdgeCache, ExportQueue, ExportRepo, FileRepo, Head, MultipartOp,
    MultipartRequest, ObjectStore, PartUpload, PortError, PortResult, ShareRepo, SignedUrl, TokenRepo, Upload,
    UploadRepo, UsageRepo,
};

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
            Stored { details, charged, reserved: 0, settled, token: None, order: None, duplicate_of: None },
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

#[async_trait]
impl FileRepo for InMemory {
    async fn details(&self, id: FileId) -> PortResult<Option<FileDetails>> {
        Ok(self.get(id))
    }

    async fn list(&self, owner: &UserId, q: &ListQuery) -> PortResult<(Vec<FileDetails>, Option<Cursor>)> {
        let st = lock(&self.state);
        let mut found: Vec<&FileDetails> = st
            .files
            .values()
            .map(|s| &s.details)
            .filter(|d| d.record.owner == *owner)
            .filter(|d| q.tag.as_ref().is_none_or(|t| d.tags.iter().any(|x| x == t.as_str())))
            .filter(|d| {
                let r = &d.record;
                q.keeps(r.status, r.content_type.as_str(), r.created_at, r.filename.as_str())
            })
            .collect();
        found.sort_by_key(|d| sort_key(d, q.sort));
        if q.descending {
            found.reverse();
        }
        let start = match &q.cursor {
            Some(c) if c.kind != CURSOR_KIND => {
                return Err(PortError::Invalid("cursor: it belongs to another listing"));
            }
            Some(c) => found.iter().position(|d| cursor_pk(d.record.file_id) == c.pk).map_or(found.len(), |i| i + 1),
            None => 0,
        };
        let page: Vec<FileDetails> = found.iter().skip(start).take(q.limit as usize).map(|d| (*d).clone()).collect();
        let next = match page.last() {
            Some(last) if start + page.len() < found.len() => Some(Cursor {
                kind: CURSOR_KIND.into(),
                pk: cursor_pk(last.record.file_id),
                sk: String::new(),
                index_sk: String::new(),
            }),
            _ => None,
        };
        Ok((page, next))
    }

    async fn count_live(&self, owner: &UserId) -> PortResult<u64> {
        let st = lock(&self.state);
        let live = st.files.values().filter(|s| s.details.record.owner == *owner);
        Ok(live.filter(|s| s.details.record.status != FileStatus::Deleted).count() as u64)
    }

    async fn update(&self, before: &FileDetails, name: Option<&DisplayName>, tags: &BTreeSet<Tag>) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let Some(s) = st.files.get_mut(&before.record.file_id) else { return Ok(false) };
        let d = &mut s.details;
        if d.record.owner != before.record.owner
            || d.record.status == FileStatus::Deleted
            || d.revision != before.revision
        {
            return Ok(false);
        }
        if let Some(name) = name {
            d.record.filename = name.clone();
        }
        d.tags = tags.iter().map(|t| t.as_str().to_owned()).collect();
        d.revision += 1;
        Ok(true)
    }

    async fn soft_delete(&self, id: FileId, at: OffsetDateTime) -> PortResult<()> {
        let mut st = lock(&self.state);
        let State { files, usage, .. } = &mut *st;
        let Some(s) = files.get_mut(&id) else { return Err(PortError::ConditionFailed) };
        let d = &mut s.details;
        d.deleted_at.get_or_insert(at);
        if !matches!(d.record.status, FileStatus::Deleted | FileStatus::Quarantined) {
            d.record.status = FileStatus::Deleted;
            usage.entry(d.record.owner.clone()).or_default().deleted += s.charged;
        }
        Ok(())
    }

    async fn reserve(&self, record: &FileRecord, quota: u64) -> PortResult<()> {
        let mut st = lock(&self.state);
        check_reserve(&st, record, quota)?;
        put_row(&mut st, record, record.size, record.size);
        Ok(())
    }

    async fn mark_deleted(&self, id: FileId, order: Option<&str>) -> PortResult<bool> {
        Ok(retire(&mut lock(&self.state), id, order, true))
    }

    async fn mark_removed(&self, id: FileId, order: Option<&str>) -> PortResult<bool> {
        Ok(retire(&mut lock(&self.state), id, order, false))
    }

    async fn find_duplicate(&self, owner: &UserId, sha: &Sha256, besides: FileId) -> PortResult<Option<FileId>> {
        let st = lock(&self.state);
        let same = st.files.values().map(|s| &s.details.record).filter(|r| {
            r.owner == *owner && r.file_id != besides && r.sha256 == Some(*sha) && r.status != FileStatus::Deleted
        });
        Ok(same.min_by_key(|r| (r.created_at, r.file_id)).map(|r| r.file_id))
    }

    async fn record_content(&self, id: FileId, facts: &ContentFacts, order: Option<&str>) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let Some(row) = st.files.get_mut(&id) else { return Ok(false) };
        if matches!((row.order.as_deref(), order), (Some(seen), Some(new)) if seen > new) {
            return Ok(false);
        }
        row.details.record.sha256 = Some(facts.sha256);
        row.details.exif = facts.exif.clone();
        row.duplicate_of = facts.duplicate_of;
        row.order = order.map(str::to_owned).or(row.order.take());
        Ok(true)
    }

    /// Words are found by the listing's own filter here.
    async fn index_words(&self, _record: &FileRecord) -> PortResult<()> {
        Ok(())
    }

    async fn purge_deleted(&self, id: FileId) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let State { files, usage, .. } = &mut *st;
        let Some(row) = files.get_mut(&id) else { return Ok(false) };
        if row.details.record.status != FileStatus::Deleted || row.charged == 0 {
            return Ok(false);
        }
        let account = usage.entry(row.details.record.owner.clone()).or_default();
        account.charged -= row.charged;
        account.deleted -= row.charged;
        row.charged = 0;
        Ok(true)
    }

    async fn put_unreserved(&self, record: &FileRecord) -> PortResult<()> {
        let mut st = lock(&self.state);
        if st.files.contains_key(&record.file_id) {
            return Err(PortError::AlreadyExists);
        }
        put_row(&mut st, record, 0, 0);
        Ok(())
    }

    async fn restore(&self, record: &FileRecord, quota: u64) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let State { files, usage, .. } = &mut *st;
        let Some(s) = files.get_mut(&record.file_id) else { return Ok(false) };
        if s.details.record.status != FileStatus::Deleted || s.details.record.owner != record.owner {
            return Ok(false);
        }
        let account = usage.entry(record.owner.clone()).or_default();
        if s.charged > 0 {
            account.deleted -= s.charged;
        } else {
            if account.charged + record.size > quota {
                return Err(PortError::QuotaExceeded);
            }
            account.charged += record.size;
            s.charged = record.size;
        }
        s.details.record.status = FileStatus::Ready;
        s.details.deleted_at = None;
        Ok(true)
    }
}

#[async_trait]
impl UsageRepo for InMemory {
    async fn usage(&self, owner: &UserId) -> PortResult<Usage> {
        Ok(lock(&self.state).usage.get(owner).copied().unwrap_or_default())
    }
}

#[async_trait]
impl AuditLog for InMemory {
    async fn append(&self, entry: &AuditEntry, _retention: Duration) -> PortResult<()> {
        lock(&self.state).audit.push(entry.clone());
        Ok(())
    }

    /// Cursors are positions in the append order.
    async fn page(
        &self,
        user: &UserId,
        limit: u32,
        after: Option<&str>,
    ) -> PortResult<(Vec<AuditRecord>, Option<String>)> {
        let st = lock(&self.state);
        let before = match after {
            Some(c) => c.parse::<usize>().map_err(|_| PortError::Invalid("cursor: not a cursor of this trail"))?,
            None => st.audit.len(),
        };
        let mine: Vec<(usize, &AuditEntry)> =
            st.audit.iter().enumerate().take(before).filter(|(_, e)| e.user == *user).collect();
        let page: Vec<(usize, &AuditEntry)> = mine.iter().rev().take(limit as usize).copied().collect();
        let next = match page.last() {
            Some((i, _)) if mine.first().is_some_and(|(first, _)| first < i) => Some(i.to_string()),
            _ => None,
        };
        let records = page
            .into_iter()
            .map(|(_, e)| AuditRecord {
                at: iso_millis(e.at),
                action: e.action.as_str().to_owned(),
                actor: e.actor.clone(),
                file_id: e.file_id.map(|f| f.to_string()),
                result: e.result.clone(),
                ip: e.ip.clone(),
                user_agent: e.user_agent.clone(),
            })
            .collect();
        Ok((records, next))
    }
}

#[async_trait]
impl ShareRepo for InMemory {
    async fn create(&self, share: &Share) -> PortResult<()> {
        let mut st = lock(&self.state);
        if st.shares.contains_key(&share.id) {
            return Err(PortError::AlreadyExists);
        }
        st.shares.insert(share.id, share.clone());
        Ok(())
    }

    async fn get(&self, id: &ShareId) -> PortResult<Option<Share>> {
        Ok(self.share(id))
    }

    async fn list(&self, owner: &UserId, limit: usize) -> PortResult<Vec<Share>> {
        let st = lock(&self.state);
        let mut mine: Vec<Share> = st.shares.values().filter(|x| x.owner == *owner).cloned().collect();
        mine.sort_by_key(|x| std::cmp::Reverse((x.created_at, x.id.to_string())));
        mine.truncate(limit);
        Ok(mine)
    }

    async fn revoke(&self, id: &ShareId, owner: &UserId) -> PortResult<Option<Share>> {
        let mut st = lock(&self.state);
        Ok(st.shares.get_mut(id).filter(|x| x.owner == *owner).map(|x| {
            x.revoked = true;
            x.clone()
        }))
    }

    async fn use_once(&self, id: &ShareId, now: OffsetDateTime) -> PortResult<Result<Share, ShareRefusal>> {
        let mut st = lock(&self.state);
        let Some(x) = st.shares.get_mut(id) else { return Ok(Err(ShareRefusal::Unknown)) };
        Ok(if x.revoked {
            Err(ShareRefusal::Revoked)
        } else if is_expired(x.expires_at, now) {
            Err(ShareRefusal::Expired)
        } else if x.max_downloads.is_some_and(|m| x.downloads >= m) {
            Err(ShareRefusal::Exhausted)
        } else {
            x.downloads += 1;
            Ok(x.clone())
        })
    }
}

/// Ends an open session (ABORTED or COMPLETED), giving its owner's open-upload place back.
fn end_session(st: &mut State, id: &UploadId, to: SessionState) -> bool {
    let Some(x) = st.sessions.get_mut(id).filter(|x| x.state == SessionState::Open) else { return false };
    x.state = to;
    let owner = x.owner.clone();
    let usage = st.usage.entry(owner).or_default();
    usage.open_uploads = usage.open_uploads.saturating_sub(1);
    true
}

/// A row becomes DELETED after a bucket event: its stored bytes kept counted (as deleted) while
/// its versions are (`keep`), or given back; its reservation released. `false` for a row
/// QUARANTINED or DELETED already, or an event older than the row's last.
fn retire(st: &mut State, id: FileId, order: Option<&str>, keep: bool) -> bool {
    let State { files, usage, .. } = st;
    let Some(row) = files.get_mut(&id) else { return false };
    let older = matches!((row.order.as_deref(), order), (Some(seen), Some(new)) if seen > new);
    if matches!(row.details.record.status, FileStatus::Quarantined | FileStatus::Deleted) || older {
        return false;
    }
    let account = usage.entry(row.details.record.owner.clone()).or_default();
    let stored = row.charged - row.reserved;
    account.charged -= if keep { row.reserved } else { row.charged };
    account.reserved -= row.reserved;
    if keep {
        account.deleted += stored;
    }
    (row.charged, row.reserved, row.settled) = (if keep { stored } else { 0 }, 0, true);
    row.details.record.status = FileStatus::Deleted;
    row.order = order.map(str::to_owned).or(row.order.take());
    true
}

/// Whether a new row of `record.size` reserved bytes fits: no row of that id, room in `quota`.
fn check_reserve(st: &State, record: &FileRecord, quota: u64) -> PortResult<()> {
    if st.files.contains_key(&record.file_id) {
        return Err(PortError::AlreadyExists);
    }
    let charged = st.usage.get(&record.owner).map_or(0, |u| u.charged);
    if charged + record.size > quota { Err(PortError::QuotaExceeded) } else { Ok(()) }
}

/// Writes a PENDING row charging `charged` bytes (of them `reserved` held for an upload).
fn put_row(st: &mut State, record: &FileRecord, charged: u64, reserved: u64) {
    let account = st.usage.entry(record.owner.clone()).or_default();
    account.charged += charged;
    account.reserved += reserved;
    let details = FileDetails::new(record.clone());
    st.files.insert(
        record.file_id,
        Stored { details, charged, reserved, settled: false, token: None, order: None, duplicate_of: None },
    );
}

/// Whether `owner` may open another upload: fewer than `cap` open, and no session of that id.
fn check_open(st: &State, session: &UploadSession, cap: u64) -> PortResult<()> {
    if st.sessions.contains_key(&session.upload_id) {
        return Err(PortError::AlreadyExists);
    }
    let open = st.usage.get(&session.owner).map_or(0, |u| u.open_uploads);
    if open >= cap { Err(PortError::TooManyOpenUploads) } else { Ok(()) }
}

fn put_session(st: &mut State, session: &UploadSession) {
    st.usage.entry(session.owner.clone()).or_default().open_uploads += 1;
    st.sessions.insert(session.upload_id.clone(), session.clone());
}

/// Whether a file row settled (its object arrived and was accepted).
fn settled(r: &FileRecord) -> bool {
    r.status != FileStatus::Pending || r.expires_at.is_none() || r.version_id.is_some()
}

#[async_trait]
impl UploadRepo for InMemory {
    async fn expired_pending(&self, cutoff: OffsetDateTime, limit: usize) -> PortResult<Vec<PendingRow>> {
        let st = lock(&self.state);
        let mut rows: Vec<(OffsetDateTime, PendingRow)> = st
            .files
            .values()
            .filter_map(|s| {
                let r = &s.details.record;
                let expired = r.expires_at.filter(|at| *at < cutoff && r.status == FileStatus::Pending)?;
                let upload_id = st.sessions.values().find(|x| x.file_id == r.file_id).map(|x| x.upload_id.clone());
                let row = PendingRow {
                    file_id: r.file_id,
                    owner: r.owner.clone(),
                    key: r.key.clone(),
                    upload_id,
                    charged: s.charged,
                    reserved: s.reserved,
                    token_digest: s.token.clone(),
                };
                Some((expired, row))
            })
            .collect();
        rows.sort_by_key(|(at, row)| (*at, row.file_id));
        Ok(rows.into_iter().take(limit).map(|(_, row)| row).collect())
    }

    async fn release_pending(&self, row: &PendingRow) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let still = st.files.get(&row.file_id).is_some_and(|s| {
            s.details.record.status == FileStatus::Pending
                && s.details.record.expires_at.is_some()
                && s.charged == row.charged
        });
        if !still {
            return Ok(false);
        }
        st.files.remove(&row.file_id);
        if let Some(token) = row.token_digest.as_ref().and_then(|digest| st.tokens.get_mut(digest)) {
            token.used_bytes -= row.reserved;
        }
        let usage = st.usage.entry(row.owner.clone()).or_default();
        usage.charged -= row.charged;
        usage.reserved -= row.reserved;
        if let Some(id) = &row.upload_id {
            end_session(&mut st, id, SessionState::Aborted);
        }
        Ok(true)
    }

    async fn expired_sessions(&self, cutoff: OffsetDateTime, limit: usize) -> PortResult<Vec<UploadId>> {
        let st = lock(&self.state);
        let mut open: Vec<&UploadSession> =
            st.sessions.values().filter(|x| x.state == SessionState::Open && x.expires_at < cutoff).collect();
        open.sort_by_key(|x| x.expires_at);
        Ok(open.into_iter().take(limit).map(|x| x.upload_id.clone()).collect())
    }

    async fn session(&self, id: &UploadId) -> PortResult<Option<UploadSession>> {
        Ok(InMemory::session(self, id))
    }

    async fn end_expired_session(&self, session: &UploadSession, arrived: bool) -> PortResult<bool> {
        let to = if arrived { SessionState::Completed { etag: String::new() } } else { SessionState::Aborted };
        Ok(end_session(&mut lock(&self.state), &session.upload_id, to))
    }

    async fn pin_version(&self, id: FileId, key: &ObjectKey, version: &str) -> PortResult<Pinned> {
        let mut st = lock(&self.state);
        let Some(row) = st.files.get_mut(&id).filter(|s| s.details.record.key == *key) else {
            return Ok(Pinned::Unknown);
        };
        let pinned = row.details.record.version_id.get_or_insert_with(|| version.to_owned());
        Ok(if pinned == version { Pinned::This } else { Pinned::Other(pinned.clone()) })
    }

    async fn settle(&self, id: FileId, key: &ObjectKey, actual: u64, quota: u64) -> PortResult<Settlement> {
        let mut st = lock(&self.state);
        let State { files, usage, tokens, sessions, .. } = &mut *st;
        let Some(row) = files.get_mut(&id).filter(|s| s.details.record.key == *key) else {
            return Ok(Settlement::Unknown);
        };
        if row.settled {
            return Ok(Settlement::AlreadySettled);
        }
        let granted = row.details.record.size;
        if let Some(why) = matbakh_core::quota::exceeds_grant(granted, actual) {
            return Ok(Settlement::Refused(why));
        }
        let account = usage.entry(row.details.record.owner.clone()).or_default();
        if actual > row.charged && account.charged - row.charged + actual > quota {
            return Ok(Settlement::Refused("over the owner's storage quota"));
        }
        account.charged = account.charged - row.charged + actual;
        account.reserved -= row.reserved;
        (row.charged, row.reserved, row.settled) = (actual, 0, true);
        row.details.record.size = actual;
        row.details.record.expires_at = None;
        if let Some(token) = row.token.as_ref().and_then(|digest| tokens.get_mut(digest)) {
            token.used_bytes -= granted - actual;
        }
        let ended: Vec<UploadId> = sessions
            .values()
            .filter(|x| x.file_id == id && x.state == SessionState::Open)
            .map(|x| x.upload_id.clone())
            .collect();
        for upload in ended {
            end_session(&mut st, &upload, SessionState::Completed { etag: String::new() });
        }
        Ok(Settlement::Accepted)
    }

    async fn reject(&self, id: FileId, reason: &str) -> PortResult<()> {
        let mut st = lock(&self.state);
        let State { files, usage, .. } = &mut *st;
        let Some(row) = files.get_mut(&id) else { return Ok(()) };
        if matches!(row.details.record.status, FileStatus::Quarantined | FileStatus::Deleted) {
            return Ok(());
        }
        let account = usage.entry(row.details.record.owner.clone()).or_default();
        account.charged -= row.charged;
        account.reserved -= row.reserved;
        (row.charged, row.reserved) = (0, 0);
        row.details.record.status = FileStatus::Quarantined;
        row.details.reason = Some(reason.to_owned());
        Ok(())
    }

    async fn open_sessions(&self, owner: &UserId) -> PortResult<Vec<UploadSession>> {
        let st = lock(&self.state);
        let mut open: Vec<UploadSession> =
            st.sessions.values().filter(|x| x.owner == *owner && x.state == SessionState::Open).cloned().collect();
        open.sort_by_key(|x| std::cmp::Reverse((x.created_at, x.upload_id.to_string())));
        Ok(open)
    }

    async fn start_session(
        &self,
        record: &FileRecord,
        session: &UploadSession,
        quota: u64,
        cap: u64,
    ) -> PortResult<()> {
        let mut st = lock(&self.state);
        check_open(&st, session, cap)?;
        check_reserve(&st, record, quota)?;
        put_row(&mut st, record, record.size, record.size);
        put_session(&mut st, session);
        Ok(())
    }

    async fn open_session(&self, session: &UploadSession, cap: u64) -> PortResult<()> {
        let mut st = lock(&self.state);
        check_open(&st, session, cap)?;
        put_session(&mut st, session);
        Ok(())
    }

    async fn bind_session(&self, session: &UploadSession, cap: u64) -> PortResult<()> {
        let mut st = lock(&self.state);
        check_open(&st, session, cap)?;
        let row = st.files.get(&session.file_id).map(|s| &s.details.record);
        let bound = st.sessions.values().any(|x| x.file_id == session.file_id);
        if row.is_none_or(settled) || bound {
            return Err(PortError::AlreadyExists);
        }
        put_session(&mut st, session);
        Ok(())
    }

    async fn complete_session(&self, session: &UploadSession, etag: &str) -> PortResult<bool> {
        let to = SessionState::Completed { etag: etag.to_owned() };
        Ok(end_session(&mut lock(&self.state), &session.upload_id, to))
    }

    async fn abort_session(&self, session: &UploadSession) -> PortResult<bool> {
        let mut st = lock(&self.state);
        if !end_session(&mut st, &session.upload_id, SessionState::Aborted) {
            return Ok(false);
        }
        let size = session.reserved_bytes();
        let account = st.usage.entry(session.owner.clone()).or_default();
        account.charged -= size;
        account.reserved -= size;
        // A row whose object arrived and settled is never removed here.
        if st.files.get(&session.file_id).is_some_and(|s| !settled(&s.details.record)) {
            st.files.remove(&session.file_id);
        }
        Ok(true)
    }
}

#[async_trait]
impl TokenRepo for InMemory {
    async fn create(&self, grant: &TokenGrant) -> PortResult<()> {
        let mut st = lock(&self.state);
        if st.tokens.contains_key(&grant.digest) {
            return Err(PortError::AlreadyExists);
        }
        st.tokens.insert(grant.digest.clone(), grant.clone());
        Ok(())
    }

    async fn get(&self, digest: &str) -> PortResult<Option<TokenGrant>> {
        Ok(lock(&self.state).tokens.get(digest).cloned())
    }

    async fn revoke(&self, digest: &str, owner: &UserId) -> PortResult<bool> {
        let mut st = lock(&self.state);
        Ok(st.tokens.get_mut(digest).filter(|g| g.owner == *owner).map(|g| g.revoked = true).is_some())
    }

    async fn reserve_upload(&self, grant: &TokenGrant, record: &FileRecord, quota: u64) -> PortResult<()> {
        charge_token(&mut lock(&self.state), grant, record, quota, record.size)
    }

    async fn charge_upload(&self, grant: &TokenGrant, record: &FileRecord, quota: u64) -> PortResult<()> {
        charge_token(&mut lock(&self.state), grant, record, quota, 0)
    }
}

/// Charges `record.size` to the token and the quota and writes the row, or nothing.
fn charge_token(st: &mut State, grant: &TokenGrant, record: &FileRecord, quota: u64, reserved: u64) -> PortResult<()> {
    let token = st.tokens.get(&grant.digest).ok_or(PortError::ConditionFailed)?;
    if token.revoked || token.used_bytes + record.size > token.max_bytes {
        return Err(PortError::QuotaExceeded);
    }
    check_reserve(st, record, quota)?;
    if let Some(token) = st.tokens.get_mut(&grant.digest) {
        token.used_bytes += record.size;
    }
    put_row(st, record, record.size, reserved);
    if let Some(row) = st.files.get_mut(&record.file_id).filter(|_| reserved > 0) {
        row.token = Some(grant.digest.clone());
    }
    Ok(())
}

#[async_trait]
impl AccountRepo for InMemory {
    async fn file_ids(&self, owner: &UserId) -> PortResult<Vec<FileId>> {
        let st = lock(&self.state);
        Ok(st.files.values().map(|s| &s.details.record).filter(|r| r.owner == *owner).map(|r| r.file_id).collect())
    }

    /// Counts one item for each file, session, share, token, export, usage and audit record.
    async fn erase(&self, owner: &UserId, _files: &[FileId], _uploads: &[String]) -> PortResult<usize> {
        let mut st = lock(&self.state);
        let before = items(&st);
        st.files.retain(|_, s| s.details.record.owner != *owner);
        st.sessions.retain(|_, x| x.owner != *owner);
        st.shares.retain(|_, x| x.owner != *owner);
        st.tokens.retain(|_, g| g.owner != *owner);
        st.exports.retain(|_, j| j.owner != *owner);
        st.usage.remove(owner);
        st.audit.retain(|e| e.user != *owner);
        Ok(before - items(&st))
    }
}

fn items(st: &State) -> usize {
    st.files.len()
        + st.sessions.len()
        + st.shares.len()
        + st.tokens.len()
        + st.exports.len()
        + st.usage.len()
        + st.audit.len()
}

/// A CDN in memory: the invalidations asked for, in order.
#[derive(Default)]
pub struct InMemoryCdn {
    invalidated: Mutex<Vec<Vec<String>>>,
}

impl InMemoryCdn {
    pub fn new() -> Self {
        Self::default()
    }

    /// The paths of each invalidation, in order.
    pub fn invalidations(&self) -> Vec<Vec<String>> {
        lock(&self.invalidated).clone()
    }
}

#[async_trait]
impl EdgeCache for InMemoryCdn {
    async fn invalidate(&self, paths: &[String], reference: &str) -> PortResult<String> {
        let mut invalidated = lock(&self.invalidated);
        invalidated.push(paths.to_vec());
        Ok(format!("memory-{reference}-{}", invalidated.len()))
    }
}

#[async_trait]
impl ExportRepo for InMemory {
    async fn create(&self, job: &ExportJob) -> PortResult<()> {
        let mut st = lock(&self.state);
        if st.exports.contains_key(&job.id) {
            return Err(PortError::AlreadyExists);
        }
        st.exports.insert(job.id.clone(), job.clone());
        Ok(())
    }

    async fn get(&self, id: &str) -> PortResult<Option<ExportJob>> {
        Ok(lock(&self.state).exports.get(id).cloned())
    }

    async fn latest(&self, owner: &UserId) -> PortResult<Option<ExportJob>> {
        let st = lock(&self.state);
        Ok(st.exports.values().filter(|j| j.owner == *owner).max_by_key(|j| (j.created_at, j.id.clone())).cloned())
    }
}

impl InMemory {
    /// A job as stored.
    pub fn get_export(&self, id: &str) -> Option<ExportJob> {
        lock(&self.state).exports.get(id).cloned()
    }

    /// Moves a job on, as the exporter would.
    pub fn set_export(&self, job: ExportJob) {
        lock(&self.state).exports.insert(job.id.clone(), job);
    }
}

/// The exporter's queue in memory: the jobs sent, in order.
#[derive(Default)]
pub struct InMemoryQueue {
    sent: Mutex<Vec<String>>,
}

impl InMemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// The ids of the jobs sent, in order.
    pub fn sent(&self) -> Vec<String> {
        lock(&self.sent).clone()
    }
}

#[async_trait]
impl ExportQueue for InMemoryQueue {
    async fn enqueue(&self, job: &ExportJob) -> PortResult<()> {
        lock(&self.sent).push(job.id.clone());
        Ok(())
    }
}

/// The parts of a multipart upload S3 holds, by number: their sizes.
type Parts = BTreeMap<PartNumber, u64>;

/// What a key holds: its versions, oldest first (id and size), and whether a delete marker
/// hides the newest.
#[derive(Default)]
struct Versions {
    versions: Vec<(String, u64)>,
    hidden: bool,
    /// The bytes of versions written with them ([`InMemoryObjects::put_bytes`]).
    bytes: HashMap<String, Vec<u8>>,
}

/// A versioned bucket in memory: each key's versions and delete marker, and the multipart
/// uploads under way.
#[derive(Default)]
pub struct InMemoryObjects {
    objects: Mutex<HashMap<ObjectKey, Versions>>,
    /// Versions written so far (each gets a new id).
    written: Mutex<u64>,
    aborted: Mutex<Vec<UploadId>>,
    /// Multipart uploads under way: their key and the sizes of the parts received.
    uploads: Mutex<HashMap<UploadId, (ObjectKey, Parts)>>,
    /// Upload ids given so far (each is new).
    started: Mutex<u64>,
}

impl InMemoryObjects {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores an object (visible; empty).
    pub fn insert(&self, key: ObjectKey) {
        self.put(&key, 0);
    }

    /// Writes a new version of `size` bytes at `key` (the current one from now on), as an
    /// upload does; answers its version id.
    pub fn put(&self, key: &ObjectKey, size: u64) -> String {
        let mut written = lock(&self.written);
        *written += 1;
        let version = format!("v{written}");
        let mut objects = lock(&self.objects);
        let held = objects.entry(key.clone()).or_default();
        held.versions.push((version.clone(), size));
        held.hidden = false;
        version
    }

    /// Writes a new version holding `bytes` at `key`; answers its version id.
    pub fn put_bytes(&self, key: &ObjectKey, bytes: Vec<u8>) -> String {
        let version = self.put(key, bytes.len() as u64);
        if let Some(held) = lock(&self.objects).get_mut(key) {
            held.bytes.insert(version.clone(), bytes);
        }
        version
    }

    /// The version ids `key` holds, oldest first.
    pub fn versions(&self, key: &ObjectKey) -> Vec<String> {
        lock(&self.objects).get(key).map(|h| h.versions.iter().map(|(v, _)| v.clone()).collect()).unwrap_or_default()
    }

    /// The multipart uploads aborted, in order.
    pub fn aborted(&self) -> Vec<UploadId> {
        lock(&self.aborted).clone()
    }

    /// A part of `size` bytes arrives for the upload, as a browser's PUT of a signed URL would
    /// bring it (S3 takes any part of an upload it knows; the URL's signature bounds it).
    pub fn receive_part(&self, upload_id: &UploadId, part: u16, size: u64) {
        let mut uploads = lock(&self.uploads);
        let Some((_, parts)) = uploads.get_mut(upload_id) else { panic!("no upload {upload_id}") };
        parts.insert(PartNumber::new(part.into()).expect("a part number"), size);
    }

    /// The multipart uploads S3 holds (neither completed nor aborted).
    pub fn open_uploads(&self) -> Vec<UploadId> {
        lock(&self.uploads).keys().cloned().collect()
    }

    /// Whether a GET of `key` finds an object (it exists and no delete marker hides it).
    pub fn visible(&self, key: &ObjectKey) -> bool {
        lock(&self.objects).get(key).is_some_and(|h| !h.hidden && !h.versions.is_empty())
    }

    /// The current version of `key`, if a GET finds one.
    fn current(&self, key: &ObjectKey) -> Option<(String, u64)> {
        lock(&self.objects).get(key).filter(|h| !h.hidden).and_then(|h| h.versions.last().cloned())
    }
}

#[async_trait]
impl ObjectStore for InMemoryObjects {
    async fn presign_download(&self, d: &Download<'_>) -> PortResult<SignedUrl> {
        let url = format!(
            "memory://bucket/{}?versionId={}&signedAt={}&ttl={}",
            d.key,
            d.version_id.unwrap_or("null"),
            d.signed_at.unix_timestamp(),
            d.ttl.as_secs()
        );
        Ok(SignedUrl { url, expires_at: d.signed_at + d.ttl })
    }

    /// The form's fields spell out what the policy pins.
    async fn presign_post(&self, u: &Upload<'_>) -> PortResult<PresignedPost> {
        let mut fields = BTreeMap::from([
            ("key".to_owned(), u.key.to_string()),
            ("Content-Type".to_owned(), u.content_type.as_str().to_owned()),
            ("x-size-range".to_owned(), format!("{}-{}", u.size.start(), u.size.end())),
        ]);
        if let Some(sha) = u.sha256 {
            fields.insert("x-amz-checksum-sha256".to_owned(), sha.to_hex());
        }
        Ok(PresignedPost { url: "memory://bucket".into(), fields, expires_at: u.signed_at + u.ttl })
    }

    async fn size(&self, key: &ObjectKey) -> PortResult<Option<u64>> {
        Ok(self.current(key).map(|(_, size)| size))
    }

    async fn create_multipart(
        &self,
        key: &ObjectKey,
        _content_type: ContentType,
        _checksum: Option<ChecksumAlgorithm>,
    ) -> PortResult<UploadId> {
        let mut started = lock(&self.started);
        *started += 1;
        let id = UploadId::parse(&format!("memory-upload-{started}")).map_err(|e| PortError::Failed(e.to_string()))?;
        lock(&self.uploads).insert(id.clone(), (key.clone(), BTreeMap::new()));
        Ok(id)
    }

    /// The URL spells out what the signature pins.
    async fn presign_part(&self, p: &PartUpload<'_>) -> PortResult<SignedUrl> {
        let mut url = format!("memory://bucket/{}?uploadId={}&partNumber={}", p.key, p.upload_id, p.part);
        if let Some(len) = p.content_length {
            url.push_str(&format!("&content-length={len}"));
        }
        if let Some(c) = p.checksum {
            url.push_str(&format!("&{}={}", c.algorithm().header(), c.value()));
        }
        Ok(SignedUrl { url, expires_at: p.signed_at + p.ttl })
    }

    async fn presign_multipart(&self, r: &MultipartRequest<'_>) -> PortResult<SignedUrl> {
        let (method, query) = match r.op {
            MultipartOp::Create => ("POST", "uploads".to_owned()),
            MultipartOp::ListParts(id) => ("GET", format!("uploadId={id}")),
            MultipartOp::Complete(id) => ("POST", format!("uploadId={id}")),
            MultipartOp::Abort(id) => ("DELETE", format!("uploadId={id}")),
        };
        Ok(SignedUrl {
            url: format!("memory://bucket/{}?{query}&method={method}", r.key),
            expires_at: r.signed_at + r.ttl,
        })
    }

    async fn list_parts(&self, key: &ObjectKey, upload_id: &UploadId) -> PortResult<Option<Vec<UploadedPart>>> {
        let uploads = lock(&self.uploads);
        let Some((_, parts)) = uploads.get(upload_id).filter(|(k, _)| k == key) else { return Ok(None) };
        let listed = parts
            .iter()
            .map(|(number, size)| UploadedPart {
                number: *number,
                size: *size,
                etag: format!("etag-{number}"),
                checksum: None,
            })
            .collect();
        Ok(Some(listed))
    }

    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &UploadId,
        parts: &[UploadedPart],
        _integrity: Option<&Integrity>,
    ) -> PortResult<String> {
        let mut uploads = lock(&self.uploads);
        if !uploads.get(upload_id).is_some_and(|(k, _)| k == key) || parts.is_empty() {
            return Err(PortError::Failed(format!("no upload {upload_id} of {key} to complete")));
        }
        if self.current(key).is_some() {
            return Err(PortError::AlreadyExists);
        }
        uploads.remove(upload_id);
        self.put(key, parts.iter().map(|p| p.size).sum());
        Ok(format!("\"memory-{}-{}\"", upload_id, parts.len()))
    }

    async fn abort_multipart(&self, _key: &ObjectKey, upload_id: &UploadId) -> PortResult<()> {
        lock(&self.uploads).remove(upload_id);
        lock(&self.aborted).push(upload_id.clone());
        Ok(())
    }

    async fn presign_get(&self, key: &ObjectKey, signed_at: OffsetDateTime, ttl: Duration) -> PortResult<String> {
        Ok(format!("memory://bucket/{key}?signedAt={}&ttl={}", signed_at.unix_timestamp(), ttl.as_secs()))
    }

    async fn head(&self, key: &ObjectKey, version: Option<&str>) -> PortResult<Option<Head>> {
        let found = match version {
            None => self.current(key),
            Some(v) => {
                let objects = lock(&self.objects);
                objects.get(key).and_then(|h| h.versions.iter().find(|(id, _)| id == v).cloned())
            }
        };
        Ok(found.map(|(version, size)| Head { size, version_id: Some(version) }))
    }

    /// Versions written without bytes read as that many zeros.
    async fn read_digest(&self, key: &ObjectKey, version: Option<&str>, keep: usize) -> PortResult<Option<Digest>> {
        let Some(head) = self.head(key, version).await? else { return Ok(None) };
        let objects = lock(&self.objects);
        let stored = head.version_id.as_ref().and_then(|v| objects.get(key)?.bytes.get(v).cloned());
        let bytes = stored.unwrap_or_else(|| vec![0; head.size as usize]);
        let prefix = bytes[..keep.min(bytes.len())].to_vec();
        Ok(Some(Digest { sha256: Sha256::of(&bytes), size: head.size, etag: head.version_id, prefix }))
    }

    async fn remove_versions_except(&self, key: &ObjectKey, keep: &str) -> PortResult<Vec<String>> {
        let mut objects = lock(&self.objects);
        let Some(held) = objects.get_mut(key) else { return Ok(Vec::new()) };
        let removed = held.versions.iter().filter(|(v, _)| v != keep).map(|(v, _)| v.clone()).collect();
        held.versions.retain(|(v, _)| v == keep);
        Ok(removed)
    }

    async fn delete_version(&self, key: &ObjectKey, version: Option<&str>) -> PortResult<()> {
        let mut objects = lock(&self.objects);
        let Some(held) = objects.get_mut(key) else { return Ok(()) };
        match version {
            Some(v) => held.versions.retain(|(id, _)| id != v),
            None => held.hidden = true,
        }
        Ok(())
    }

    /// Counts every version and delete marker.
    async fn delete_prefix(&self, prefix: &str) -> PortResult<usize> {
        let mut objects = lock(&self.objects);
        let under: Vec<ObjectKey> = objects.keys().filter(|k| k.as_str().starts_with(prefix)).cloned().collect();
        let mut count = 0;
        for key in under {
            if let Some(held) = objects.remove(&key) {
                count += held.versions.len() + usize::from(held.hidden);
            }
        }
        Ok(count)
    }

    async fn holds_any(&self, prefix: &str) -> PortResult<bool> {
        let objects = lock(&self.objects);
        Ok(objects.iter().any(|(key, held)| key.as_str().starts_with(prefix) && !held.versions.is_empty()))
    }

    async fn abort_uploads_under(&self, prefix: &str) -> PortResult<Vec<String>> {
        let mut uploads = lock(&self.uploads);
        let under: Vec<UploadId> =
            uploads.iter().filter(|(_, (key, _))| key.as_str().starts_with(prefix)).map(|(id, _)| id.clone()).collect();
        for id in &under {
            uploads.remove(id);
        }
        lock(&self.aborted).extend(under.iter().cloned());
        Ok(under.iter().map(|id| id.to_string()).collect())
    }

    async fn hide(&self, key: &ObjectKey) -> PortResult<()> {
        match lock(&self.objects).get_mut(key) {
            Some(held) => {
                held.hidden = true;
                Ok(())
            }
            None => Err(PortError::Failed(format!("no object {key}"))),
        }
    }

    async fn unhide(&self, key: &ObjectKey) -> PortResult<()> {
        if let Some(held) = lock(&self.objects).get_mut(key) {
            held.hidden = false;
        }
        Ok(())
    }
}
