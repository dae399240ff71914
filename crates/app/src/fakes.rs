//! In-memory implementations of the ports, for tests: [`InMemory`] holds files, usage and the
//! audit trail; [`InMemoryObjects`] the bucket. They keep the contract the DynamoDB and S3
//! adapters keep (the adapters' moto tests check theirs), within one process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use matbakh_core::audit::{AuditEntry, AuditRecord};
use matbakh_core::clock::iso_millis;
use matbakh_core::ids::{FileId, ObjectKey, UserId};
use matbakh_core::listing::{Cursor, ListQuery, SortBy, Tag};
use matbakh_core::metadata::{FileDetails, FileRecord, FileStatus};
use matbakh_core::names::{DisplayName, fold};
use matbakh_core::quota::Usage;
use time::OffsetDateTime;

use crate::ports::{AuditLog, FileRepo, ObjectStore, PortError, PortResult, UsageRepo};

/// What a cursor of this fake's listings says it continues.
const CURSOR_KIND: &str = "memory";

#[derive(Default)]
struct State {
    files: BTreeMap<FileId, Stored>,
    usage: HashMap<UserId, Usage>,
    audit: Vec<AuditEntry>,
}

struct Stored {
    details: FileDetails,
    /// Bytes the owner's usage counts for the row.
    charged: u64,
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
        st.files.insert(r.file_id, Stored { details, charged });
    }

    /// The audit entries recorded, oldest first.
    pub fn audit_entries(&self) -> Vec<AuditEntry> {
        lock(&self.state).audit.clone()
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

/// A versioned bucket in memory: which keys hold an object and which are hidden behind a
/// delete marker.
#[derive(Default)]
pub struct InMemoryObjects {
    objects: Mutex<HashMap<ObjectKey, bool>>,
}

impl InMemoryObjects {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores an object (visible).
    pub fn insert(&self, key: ObjectKey) {
        lock(&self.objects).insert(key, false);
    }

    /// Whether a GET of `key` finds an object (it exists and no delete marker hides it).
    pub fn visible(&self, key: &ObjectKey) -> bool {
        lock(&self.objects).get(key) == Some(&false)
    }
}

#[async_trait]
impl ObjectStore for InMemoryObjects {
    async fn presign_get(&self, key: &ObjectKey, signed_at: OffsetDateTime, ttl: Duration) -> PortResult<String> {
        Ok(format!("memory://bucket/{key}?signedAt={}&ttl={}", signed_at.unix_timestamp(), ttl.as_secs()))
    }

    async fn hide(&self, key: &ObjectKey) -> PortResult<()> {
        match lock(&self.objects).get_mut(key) {
            Some(hidden) => {
                *hidden = true;
                Ok(())
            }
            None => Err(PortError::Failed(format!("no object {key}"))),
        }
    }

    async fn unhide(&self, key: &ObjectKey) -> PortResult<()> {
        if let Some(hidden) = lock(&self.objects).get_mut(key) {
            *hidden = false;
        }
        Ok(())
    }
}
