//! Giving back what uploads that never arrived hold (DECISIONS 12): their reserved bytes, and
//! their places among the owner's open uploads.
//!
//! A run takes the unsettled PENDING rows whose grant ended more than the grace ago (at most
//! `SWEEP_MAX_ROWS`, oldest first) and for each: aborts its S3 multipart upload if it has one
//! (after that nobody can complete it), looks for the object, and if there is none, releases
//! the bytes and removes the row. A row whose object is there is left to the indexer: its
//! event is late or in the DLQ, whose alarm says so. Then it takes the multipart sessions still
//! open past their expiry, whatever mode started them, aborts each S3 upload and ends the
//! session. Bytes are only ever released by the row pass. Safe to run twice at once: every
//! release is conditional.

use std::sync::Arc;

use matbakh_core::clock::Clock;
use matbakh_core::limits::Limits;
use matbakh_core::metadata::PendingRow;
use matbakh_core::multipart::UploadId;
use serde::Serialize;
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

impl Sweeper {
    /// One sweep, as of the clock.
    pub async fn sweep(&self) -> Result<SweepReport, Error> {
        let cutoff = self.clock.now() - self.limits.sweep_grace;
        let limit = usize::try_from(self.limits.sweep_max_rows).unwrap_or(usize::MAX);
        let mut report = SweepReport::default();
        for row in self.uploads.expired_pending(cutoff, limit).await? {
            let span = tracing::info_span!("expired_upload", file_id = %row.file_id, user = %row.owner);
            report.examined += 1;
            if self.release(&row).instrument(span).await? {
                report.released += 1;
                report.released_bytes += row.charged;
            } else {
                report.awaiting_event += 1;
            }
        }
        for id in self.uploads.expired_sessions(cutoff, limit).await? {
            let span = tracing::info_span!("expired_session", upload_id = %id);
            if self.end_session(&id).instrument(span).await? {
                report.sessions_ended += 1;
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
