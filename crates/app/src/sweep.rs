//! Giving back what uploads that never arrived hold (DECISIONS 12): their reserved bytes, and
//! their places among the owner's open uploads.
//!
//! A run takes the unsettled PENDING rows whose grant ended more than the grace ago (a page of
//! `SWEEP_MAX_ROWS` at a time, oldest first, [`SWEEP_IN_FLIGHT`] rows at once) and for each:
//! aborts its S3 multipart upload if it has one (after that nobody can complete it), looks for
//! the object, and if there is none, releases the bytes and removes the row. A row whose object
//! is there is left to the indexer: its event is late or in the DLQ, whose alarm says so. It
//! takes pages, each after the last row of the one before (so rows left to the indexer hold up
//! nothing behind them), until it is caught up or its deadline passes, so one user's thousands
//! of abandoned grants do not keep everyone else's reservations waiting for later runs
//! (security review 21).
//! Then the same with the multipart sessions still open past their expiry, whatever mode
//! started them: it aborts each S3 upload and ends the session. Bytes are only ever released
//! by the row pass. Safe to run twice at once: every release is conditional.

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt, stream};
use matbakh_core::clock::Clock;
use matbakh_core::limits::Limits;
use matbakh_core::metadata::PendingRow;
use matbakh_core::multipart::UploadId;
use serde::Serialize;
use time::OffsetDateTime;
use tracing::Instrument;

use crate::error::Error;
use crate::ports::{ObjectStore, UploadRepo};

/// What the sweep works with.
#[derive(Clone)]
pub struct Sweeper {
    pub uploads: Arc<dyn UploadRepo>,
    pub objects: Arc<dyn ObjectStore>,
    pub limits: Limits,
    pub clock: Arc<dyn Clock>,
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    /// Expired rows looked at.
    pub examined: u64,
    /// Rows whose grant this run gave back.
    pub released: u64,
    /// Bytes given back to their owners' quotas.
    pub released_bytes: u64,
    /// Rows whose object is there but not settled yet (late or failed events).
    pub awaiting_event: u64,
    /// Open sessions past their expiry whose S3 upload this run aborted.
    pub sessions_ended: u64,
}

/// Rows (and sessions) one sweep works on at once.
pub const SWEEP_IN_FLIGHT: usize = 16;

impl Sweeper {
    /// One sweep, as of the clock, taking no new page once `deadline` has passed.
    pub async fn sweep(&self, deadline: Option<OffsetDateTime>) -> Result<SweepReport, Error> {
        let cutoff = self.clock.now() - self.limits.sweep_grace;
        let limit = usize::try_from(self.limits.sweep_max_rows).unwrap_or(usize::MAX);
        let in_time = || deadline.is_none_or(|at| self.clock.now() < at);
        let mut report = SweepReport::default();
        let mut after = None;
        while in_time() {
            let (page, next) = self.uploads.expired_pending(cutoff, limit, after.as_ref()).await?;
            // Each row's bytes if this run released it.
            let released: Vec<Option<u64>> = stream::iter(page)
                .map(|row| async move {
                    let span = tracing::info_span!("expired_upload", file_id = %row.file_id, user = %row.owner);
                    Ok::<_, Error>(self.release(&row).instrument(span).await?.then_some(row.charged))
                })
                .buffer_unordered(SWEEP_IN_FLIGHT)
                .try_collect()
                .await?;
            let examined = released.len() as u64;
            let freed: Vec<u64> = released.into_iter().flatten().collect();
            report.examined += examined;
            report.released += freed.len() as u64;
            report.released_bytes += freed.iter().sum::<u64>();
            report.awaiting_event += examined - freed.len() as u64;
            match next {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        while in_time() {
            let page = self.uploads.expired_sessions(cutoff, limit).await?;
            let full = page.len() == limit;
            let ended: Vec<bool> = stream::iter(page)
                .map(|id| async move {
                    let span = tracing::info_span!("expired_session", upload_id = %id);
                    self.end_session(&id).instrument(span).await
                })
                .buffer_unordered(SWEEP_IN_FLIGHT)
                .try_collect()
                .await?;
            let ended = ended.iter().filter(|e| **e).count() as u64;
            report.sessions_ended += ended;
            if !full || ended == 0 {
                break;
            }
        }
        tracing::info!(?report, "sweep finished");
        Ok(report)
    }

    /// Releases one row unless its object arrived. Aborting first means no client can complete
    /// the upload between the look and the release.
    async fn release(&self, row: &PendingRow) -> Result<bool, Error> {
        if let Some(upload_id) = &row.upload_id {
            self.objects.abort_multipart(&row.key, upload_id).await?;
        }
        if self.objects.size(&row.key).await?.is_some() {
            tracing::warn!(
                key = row.key.as_str(),
                "expired upload has its object but no settled row; left to the indexer"
            );
            return Ok(false);
        }
        let released = self.uploads.release_pending(row).await?;
        if released {
            tracing::info!(bytes = row.charged, "expired upload released");
        }
        Ok(released)
    }

    /// Aborts an expired session's S3 upload, then ends the session: COMPLETED if its object
    /// arrived after all (the indexer settles it), else ABORTED. Answers whether this call
    /// ended it.
    async fn end_session(&self, id: &UploadId) -> Result<bool, Error> {
        let Some(session) = self.uploads.session(id).await? else {
            return Ok(false);
        };
        self.objects.abort_multipart(&session.key, id).await?;
        let arrived = self.objects.size(&session.key).await?.is_some();
        let ended = self.uploads.end_expired_session(&session, arrived).await?;
        if ended {
            tracing::info!(arrived, user = %session.owner, "expired session ended");
        }
        Ok(ended)
    }
}
