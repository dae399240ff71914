//! Share links, export jobs (and their queue) and the audit trail.

use super::*;

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

#[async_trait]
impl ExportRepo for InMemory {
    async fn create(&self, job: &ExportJob, replacing: Option<&str>) -> PortResult<()> {
        let mut st = lock(&self.state);
        if st.exports.contains_key(&job.id) {
            return Err(PortError::AlreadyExists);
        }
        let newest = st.exports.values().filter(|j| j.owner == job.owner).max_by_key(|j| (j.created_at, j.id.clone()));
        if newest.map(|j| j.id.as_str()) != replacing {
            return Err(PortError::ConditionFailed);
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

    async fn set_state(&self, id: &str, state: ExportState, archive: Option<&Archive>) -> PortResult<()> {
        let mut st = lock(&self.state);
        let Some(job) = st.exports.get_mut(id) else { return Err(PortError::ConditionFailed) };
        job.state = state;
        if let Some(a) = archive {
            (job.key, job.size, job.files) = (Some(a.key.to_string()), Some(a.size), Some(a.files));
        }
        Ok(())
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

/// The migration queue in memory: an erase's message is recorded as `redact`.
#[async_trait]
impl crate::ports::MigrationRecords for InMemoryQueue {
    async fn user_erased(&self) -> PortResult<()> {
        lock(&self.sent).push("redact".to_owned());
        Ok(())
    }
}

/// The erase's second-pass queue in memory: each message recorded as
/// `erase-again {user} in {seconds}s`.
#[async_trait]
impl crate::ports::EraseAgainQueue for InMemoryQueue {
    async fn send_later(&self, job: &matbakh_core::erasure::EraseAgain, delay: std::time::Duration) -> PortResult<()> {
        lock(&self.sent).push(format!("erase-again {} in {}s", job.user, delay.as_secs()));
        Ok(())
    }
}

/// A bucket's object versions, as an inventory would list them.
pub struct InMemoryInventory(pub Vec<matbakh_core::report::InventoryRow>);

#[async_trait]
impl crate::ports::InventorySource for InMemoryInventory {
    async fn scan(
        &self,
        each: &mut (dyn FnMut(matbakh_core::report::InventoryRow) + Send),
    ) -> PortResult<&'static str> {
        for row in &self.0 {
            each(row.clone());
        }
        Ok("memory")
    }
}

/// CDN log lines in memory: (day, CDN, request), one log file per line.
pub struct InMemoryTransfer(pub Vec<(time::Date, &'static str, matbakh_core::cdn_log::Request)>);

#[async_trait]
impl crate::ports::TransferSource for InMemoryTransfer {
    async fn scan(&self, days: &[time::Date], each: &mut crate::ports::TransferSink<'_>) -> PortResult<u64> {
        let mut files = 0;
        for (_, cdn, request) in self.0.iter().filter(|(day, ..)| days.contains(day)) {
            each(cdn, request.clone());
            files += 1;
        }
        Ok(files)
    }
}

/// Reports kept in memory, by day.
#[derive(Default)]
pub struct InMemoryReports {
    kept: Mutex<BTreeMap<String, Vec<u8>>>,
    latest: Mutex<Option<Vec<u8>>>,
}

impl InMemoryReports {
    /// The days a report was kept for.
    pub fn days(&self) -> Vec<String> {
        lock(&self.kept).keys().cloned().collect()
    }

    /// The report kept for `day`.
    pub fn of(&self, day: &str) -> Option<Vec<u8>> {
        lock(&self.kept).get(day).cloned()
    }
}

#[async_trait]
impl crate::ports::ReportStore for InMemoryReports {
    async fn save(&self, day: &str, dated: Vec<u8>, latest: Vec<u8>) -> PortResult<()> {
        lock(&self.kept).insert(day.to_owned(), dated);
        *lock(&self.latest) = Some(latest);
        Ok(())
    }

    async fn latest(&self) -> PortResult<Option<Vec<u8>>> {
        Ok(lock(&self.latest).clone())
    }
}
