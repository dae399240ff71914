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
//!
//! A row or session whose step fails is tried again [`SWEEP_ATTEMPTS`] times in all if the
//! failure may pass (a transaction conflict with the owner's other uploads, throttling), then
//! counted in [`SweepReport::failed`] and left for the next run: the others go on (review 27:
//! the first failure stopped the whole run, every hour, and cut the releases in flight short).

use std::sync::Arc;

use futures_util::{StreamExt, stream};
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
    /// Rows and sessions whose step failed (each logged): left for the next run.
    pub failed: u64,
}

/// Rows (and sessions) one sweep works on at once.
pub const SWEEP_IN_FLIGHT: usize = 16;

/// Tries of one row's or session's step when its failure may pass.
pub const SWEEP_ATTEMPTS: u32 = 3;

/// The wait before the second try; doubled before each next one.
const SWEEP_RETRY_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// `step` until it succeeds, fails for good or has been tried [`SWEEP_ATTEMPTS`] times; a
/// failure is logged (in the caller's span) and answered `None`.
async fn attempt<T, F: std::future::Future<Output = Result<T, Error>>>(step: impl Fn() -> F) -> Option<T> {
    let mut wait = SWEEP_RETRY_WAIT;
    for tried in 1..=SWEEP_ATTEMPTS {
        match step().await {
            Ok(done) => return Some(done),
            Err(e) if e.is_retryable() && tried < SWEEP_ATTEMPTS => {
                tracing::warn!(error = %e, tried, "sweep step failed; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, tried, "sweep step failed; left for the next run");
                return None;
            }
        }
    }
    None
}

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
            // Each row's bytes if this run released it (`None`: it failed).
            let released: Vec<Option<Option<u64>>> = stream::iter(page)
                .map(|row| async move {
                    let span = tracing::info_span!("expired_upload", file_id = %row.file_id, user = %row.owner);
                    attempt(|| self.release(&row)).instrument(span).await.map(|r| r.then_some(row.charged))
                })
                .buffer_unordered(SWEEP_IN_FLIGHT)
                .collect()
                .await;
            report.examined += released.len() as u64;
            for outcome in released {
                match outcome {
                    Some(Some(bytes)) => {
                        report.released += 1;
                        report.released_bytes += bytes;
                    }
                    Some(None) => report.awaiting_event += 1,
                    None => report.failed += 1,
                }
            }
            match next {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        while in_time() {
            let page = self.uploads.expired_sessions(cutoff, limit).await?;
            let full = page.len() == limit;
            let outcomes: Vec<Option<bool>> = stream::iter(page)
                .map(|id| async move {
                    let span = tracing::info_span!("expired_session", upload_id = %id);
                    attempt(|| self.end_session(&id)).instrument(span).await
                })
                .buffer_unordered(SWEEP_IN_FLIGHT)
                .collect()
                .await;
            let ended = outcomes.iter().filter(|e| **e == Some(true)).count() as u64;
            report.failed += outcomes.iter().filter(|e| e.is_none()).count() as u64;
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
