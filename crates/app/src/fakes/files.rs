//! Files, their owners' usage, and an account as a whole.

use super::uploads::{check_reserve, put_row, retire};
use super::*;

#[async_trait]
impl FileLookup for InMemory {
    async fn details(&self, id: FileId) -> PortResult<Option<FileDetails>> {
        Ok(self.get(id))
    }
}

#[async_trait]
impl FileGrants for InMemory {
    async fn reserve(&self, record: &FileRecord, quota: u64) -> PortResult<()> {
        let mut st = lock(&self.state);
        check_reserve(&st, record, quota)?;
        put_row(&mut st, record, record.size, record.size);
        Ok(())
    }
}

#[async_trait]
impl FileUploads for InMemory {
    async fn put_unreserved(&self, record: &FileRecord) -> PortResult<()> {
        let mut st = lock(&self.state);
        if st.files.contains_key(&record.file_id) {
            return Err(PortError::AlreadyExists);
        }
        if st.closed.contains_key(&record.owner) {
            return Err(PortError::AccountErased);
        }
        put_row(&mut st, record, 0, 0);
        Ok(())
    }
}

#[async_trait]
impl FileCatalog for InMemory {
    async fn list(&self, owner: &UserId, q: &ListQuery) -> PortResult<(Vec<FileDetails>, Option<Cursor>)> {
        let st = lock(&self.state);
        let mut found: Vec<&FileDetails> = st
            .files
            .values()
            .map(|s| &s.details)
            .filter(|d| d.record.owner == *owner)
            .filter(|d| q.tag.as_ref().is_none_or(|t| d.record.labels.tags.contains(t)))
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

    async fn update(&self, before: &FileDetails, after: &FileRecord) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let Some(s) = st.files.get_mut(&before.record.file_id) else { return Ok(false) };
        let d = &mut s.details;
        if d.record.owner != before.record.owner || d.record.status == FileStatus::Deleted || d.edits != before.edits {
            return Ok(false);
        }
        d.record.filename = after.filename.clone();
        d.record.labels = after.labels.clone();
        d.edits += 1;
        d.revision += 1;
        Ok(true)
    }

    async fn soft_delete(&self, id: FileId, at: OffsetDateTime, from: FileStatus) -> PortResult<()> {
        let mut st = lock(&self.state);
        let State { files, usage, .. } = &mut *st;
        let Some(s) = files.get_mut(&id) else { return Err(PortError::ConditionFailed) };
        let d = &mut s.details;
        d.deleted_at.get_or_insert(at);
        d.deleted_from.get_or_insert(from);
        if !matches!(d.record.status, FileStatus::Deleted | FileStatus::Quarantined) {
            d.record.status = FileStatus::Deleted;
            usage.entry(d.record.owner.clone()).or_default().deleted += s.charged;
        }
        d.revision += 1;
        Ok(())
    }

    async fn restore(&self, record: &FileRecord, quota: u64) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let State { files, usage, closed, .. } = &mut *st;
        let Some(s) = files.get_mut(&record.file_id) else { return Ok(false) };
        if s.details.record.status != FileStatus::Deleted || s.details.record.owner != record.owner {
            return Ok(false);
        }
        let account = usage.entry(record.owner.clone()).or_default();
        if s.charged > 0 {
            account.deleted -= s.charged;
        } else {
            if closed.contains_key(&record.owner) {
                return Err(PortError::AccountErased);
            }
            if account.charged + record.size > quota {
                return Err(PortError::QuotaExceeded);
            }
            account.charged += record.size;
            s.charged = record.size;
        }
        s.details.record.status = record.status;
        (s.details.deleted_at, s.details.deleted_from) = (None, None);
        s.details.revision += 1;
        Ok(true)
    }

    async fn set_archival(
        &self,
        id: FileId,
        from: &[FileStatus],
        to: FileStatus,
        archival: &Archival,
    ) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let Some(s) = st.files.get_mut(&id).filter(|s| from.contains(&s.details.record.status)) else {
            return Ok(false);
        };
        s.details.record.status = to;
        s.details.archival = archival.clone();
        s.details.revision += 1;
        Ok(true)
    }
}

#[async_trait]
impl FileRepo for InMemory {
    async fn all(&self, owner: &UserId) -> PortResult<Vec<FileDetails>> {
        let st = lock(&self.state);
        let mut all: Vec<FileDetails> =
            st.files.values().map(|s| s.details.clone()).filter(|d| d.record.owner == *owner).collect();
        all.sort_by_key(|d| (d.record.created_at, d.record.file_id));
        Ok(all)
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
        row.details.indexed = true;
        row.details.exif = facts.exif.clone();
        row.duplicate_of = facts.duplicate_of;
        row.order = order.map(str::to_owned).or(row.order.take());
        row.details.revision += 1;
        Ok(true)
    }

    async fn mark_ready(&self, id: FileId, ready: &Ready<'_>) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let Some(s) = st.files.get_mut(&id).filter(|s| s.details.record.status == FileStatus::Pending) else {
            return Ok(false);
        };
        s.details.record.status = FileStatus::Ready;
        s.details.image = ready.image.cloned();
        s.details.reason = ready.note.map(str::to_owned);
        s.virus_scan = ready.virus_scan.map(str::to_owned);
        s.details.revision += 1;
        Ok(true)
    }

    async fn mark_failed(&self, id: FileId, reason: &str) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let Some(s) = st.files.get_mut(&id).filter(|s| s.details.record.status == FileStatus::Pending) else {
            return Ok(false);
        };
        s.details.record.status = FileStatus::Failed;
        s.details.reason = Some(reason.to_owned());
        s.details.revision += 1;
        Ok(true)
    }

    async fn give_up(&self, id: FileId, reason: &str) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let Some(s) = st.files.get_mut(&id).filter(|s| s.settled && s.details.record.status == FileStatus::Pending)
        else {
            return Ok(false);
        };
        s.details.record.status = FileStatus::Failed;
        s.details.reason = Some(reason.to_owned());
        s.details.unprocessed = true;
        s.details.revision += 1;
        Ok(true)
    }

    async fn reopen(&self, id: FileId) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let Some(s) =
            st.files.get_mut(&id).filter(|s| s.details.unprocessed && s.details.record.status == FileStatus::Failed)
        else {
            return Ok(false);
        };
        s.details.record.status = FileStatus::Pending;
        s.details.reason = None;
        s.details.unprocessed = false;
        s.details.revision += 1;
        Ok(true)
    }

    /// Words and tags are found by the listing's own filters here.
    async fn index_search(&self, _record: &FileRecord) -> PortResult<()> {
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
        row.details.revision += 1;
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
impl Counters for InMemory {
    async fn take(&self, user: &UserId, name: &str, limit: u64, _until: OffsetDateTime) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let n = st.counters.entry((user.clone(), name.to_owned())).or_default();
        let counted = *n < limit;
        if counted {
            *n += 1;
        }
        Ok(counted)
    }
}

impl InMemory {
    /// How many requests all counters hold together.
    pub fn counted(&self) -> u64 {
        lock(&self.state).counters.values().sum()
    }
}

#[async_trait]
impl AccountRepo for InMemory {
    async fn file_ids(&self, owner: &UserId) -> PortResult<Vec<FileId>> {
        let st = lock(&self.state);
        Ok(st.files.values().map(|s| &s.details.record).filter(|r| r.owner == *owner).map(|r| r.file_id).collect())
    }

    /// Counts one item for each file.
    async fn erase_files(&self, files: &[FileId]) -> PortResult<usize> {
        let mut st = lock(&self.state);
        let before = items(&st);
        st.files.retain(|id, _| !files.contains(id));
        Ok(before - items(&st))
    }

    /// Counts one item for each file left, session, share, token, export, budget counter and
    /// audit record.
    async fn erase(&self, owner: &UserId, _uploads: &[String]) -> PortResult<usize> {
        let mut st = lock(&self.state);
        let before = items(&st);
        st.files.retain(|_, s| s.details.record.owner != *owner);
        st.sessions.retain(|_, x| x.owner != *owner);
        st.shares.retain(|_, x| x.owner != *owner);
        st.tokens.retain(|_, g| g.owner != *owner);
        st.exports.retain(|_, j| j.owner != *owner);
        st.counters.retain(|(user, _), _| user != owner);
        st.audit.retain(|e| e.user != *owner);
        st.legacy.retain(|(_, o)| o != owner);
        Ok(before - items(&st))
    }

    async fn close(&self, owner: &UserId, erased_at: i64) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let open = match st.closed.get(owner) {
            Some(&at) if at > erased_at => return Ok(false),
            was => was.is_none(),
        };
        let counters = st.usage.remove(owner).is_some() && open;
        st.closed.insert(owner.clone(), erased_at);
        Ok(counters)
    }

    async fn reopen(&self, owner: &UserId, erased_at: i64) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let theirs = st.closed.get(owner) == Some(&erased_at);
        if theirs {
            st.closed.remove(owner);
            st.usage.remove(owner);
        }
        Ok(theirs)
    }

    async fn legacy_paths(&self, owner: &UserId) -> PortResult<Vec<String>> {
        Ok(lock(&self.state).legacy.iter().filter(|(_, o)| o == owner).map(|(p, _)| p.clone()).collect())
    }

    async fn mark_erased(&self, stand_in: &UserId, path_marks: &[String], _at: &str) -> PortResult<()> {
        let mut st = lock(&self.state);
        st.erased.insert(stand_in.clone());
        st.erased_paths.extend(path_marks.iter().cloned());
        Ok(())
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
        + st.legacy.len()
        + st.counters.len()
}
