//! Uploads in flight: sessions, tokens, settling and the rows a bucket event retires.

use super::*;

/// Ends an open session (ABORTED or COMPLETED), giving its owner's open-upload place back.
pub(super) fn end_session(st: &mut State, id: &UploadId, to: SessionState) -> bool {
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
pub(super) fn retire(st: &mut State, id: FileId, order: Option<&str>, keep: bool) -> bool {
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
    row.details.deleted_from.get_or_insert(row.details.record.status);
    row.details.record.status = FileStatus::Deleted;
    row.order = order.map(str::to_owned).or(row.order.take());
    row.details.revision += 1;
    true
}

/// Whether `owner`'s account takes grants: not closed by an erase (as the table's usage update
/// requires).
pub(super) fn check_not_closed(st: &State, owner: &UserId) -> PortResult<()> {
    if st.closed.contains_key(owner) { Err(PortError::AccountErased) } else { Ok(()) }
}

/// Whether a new row of `record.size` reserved bytes fits: no row of that id, room in `quota`.
pub(super) fn check_reserve(st: &State, record: &FileRecord, quota: u64) -> PortResult<()> {
    check_not_closed(st, &record.owner)?;
    if st.files.contains_key(&record.file_id) {
        return Err(PortError::AlreadyExists);
    }
    let charged = st.usage.get(&record.owner).map_or(0, |u| u.charged);
    if charged + record.size > quota { Err(PortError::QuotaExceeded) } else { Ok(()) }
}

/// Writes a PENDING row charging `charged` bytes (of them `reserved` held for an upload).
pub(super) fn put_row(st: &mut State, record: &FileRecord, charged: u64, reserved: u64) {
    let account = st.usage.entry(record.owner.clone()).or_default();
    account.charged += charged;
    account.reserved += reserved;
    let details = FileDetails::new(record.clone());
    st.files.insert(
        record.file_id,
        Stored {
            details,
            charged,
            reserved,
            settled: false,
            token: None,
            order: None,
            duplicate_of: None,
            virus_scan: None,
        },
    );
}

/// Whether `owner` may open another upload: fewer than `cap` open, and no session of that id.
pub(super) fn check_open(st: &State, session: &UploadSession, cap: u64) -> PortResult<()> {
    check_not_closed(st, &session.owner)?;
    if st.sessions.contains_key(&session.upload_id) {
        return Err(PortError::AlreadyExists);
    }
    let open = st.usage.get(&session.owner).map_or(0, |u| u.open_uploads);
    if open >= cap { Err(PortError::TooManyOpenUploads) } else { Ok(()) }
}

pub(super) fn put_session(st: &mut State, session: &UploadSession) {
    st.usage.entry(session.owner.clone()).or_default().open_uploads += 1;
    st.sessions.insert(session.upload_id.clone(), session.clone());
}

#[async_trait]
impl UploadRepo for InMemory {
    async fn account_closed(&self, owner: &UserId) -> PortResult<bool> {
        Ok(lock(&self.state).closed.contains_key(owner))
    }

    async fn expired_pending(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
        after: Option<&Cursor>,
    ) -> PortResult<(Vec<PendingRow>, Option<Cursor>)> {
        // A row's place: its expiry (zero-padded, so the text sorts as the time) and its id.
        let place = |at: OffsetDateTime, id: FileId| format!("{:020}#{id}", at.unix_timestamp());
        let st = lock(&self.state);
        let mut rows: Vec<(String, PendingRow)> = st
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
                Some((place(expired, r.file_id), row))
            })
            .filter(|(at, _)| after.is_none_or(|c| *at > c.index_sk))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.truncate(limit);
        let next = match rows.last() {
            Some((at, row)) if rows.len() == limit => Some(Cursor {
                kind: "pending".to_owned(),
                pk: format!("FILE#{}", row.file_id),
                sk: "FILE".to_owned(),
                index_sk: at.clone(),
            }),
            _ => None,
        };
        Ok((rows.into_iter().map(|(_, row)| row).collect(), next))
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
        let pinned = row.details.record.version_id.get_or_insert_with(|| version.to_owned()).clone();
        if pinned != version {
            return Ok(Pinned::Other(pinned));
        }
        row.details.revision += 1;
        Ok(Pinned::This)
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
        row.details.revision += 1;
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
        row.details.revision += 1;
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
        let settled = st.files.get(&session.file_id).is_none_or(|s| s.settled);
        let bound = st.sessions.values().any(|x| x.file_id == session.file_id);
        if settled || bound {
            return Err(PortError::AlreadyExists);
        }
        if let Some(row) = st.files.get_mut(&session.file_id) {
            row.details.revision += 1;
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
        let size = session.reserved_bytes();
        // As the table's transaction: nothing if the row settled, or if a reservation's row is
        // gone (the sweeper gave both back).
        let row = st.files.get(&session.file_id).map(|s| (s.settled, s.charged, s.reserved, s.token.clone()));
        if row.as_ref().is_some_and(|r| r.0) || (size > 0 && row.is_none()) {
            return Ok(false);
        }
        if !end_session(&mut st, &session.upload_id, SessionState::Aborted) {
            return Ok(false);
        }
        // An upload token's session reserves at completion: what its row holds goes back.
        let (charged, reserved, token) = match (size, row) {
            (0, Some((_, charged, reserved, token))) => (charged, reserved, token),
            _ => (size, size, None),
        };
        if let Some(grant) = token.and_then(|digest| st.tokens.get_mut(&digest)) {
            grant.used_bytes -= reserved;
        }
        let account = st.usage.entry(session.owner.clone()).or_default();
        account.charged -= charged;
        account.reserved -= reserved;
        st.files.remove(&session.file_id);
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
        reserve_token_upload(&mut lock(&self.state), grant, record, quota)
    }
}

/// Reserves `record.size` against the token and the quota and writes the row naming the token,
/// or nothing.
pub(super) fn reserve_token_upload(
    st: &mut State,
    grant: &TokenGrant,
    record: &FileRecord,
    quota: u64,
) -> PortResult<()> {
    // The row first, as the table's transaction answers.
    if st.files.contains_key(&record.file_id) {
        return Err(PortError::AlreadyExists);
    }
    let token = st.tokens.get(&grant.digest).ok_or(PortError::ConditionFailed)?;
    if token.revoked || token.used_bytes + record.size > token.max_bytes {
        return Err(PortError::QuotaExceeded);
    }
    check_reserve(st, record, quota)?;
    if let Some(token) = st.tokens.get_mut(&grant.digest) {
        token.used_bytes += record.size;
    }
    put_row(st, record, record.size, record.size);
    if let Some(row) = st.files.get_mut(&record.file_id) {
        row.token = Some(grant.digest.clone());
    }
    Ok(())
}
