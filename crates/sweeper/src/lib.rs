//! `sweeper`: gives back the quota of uploads that never arrived (DECISIONS 12).
//!
//! Triggered by an EventBridge schedule (hourly). Creating an upload reserves its declared size;
//! the object-created event settles it. An upload that never arrives would keep its
//! reservation forever (DynamoDB TTL must not delete such a row: the bytes would stay counted,
//! and moto never expires TTL items anyway). So each run takes the unsettled PENDING rows whose
//! grant ended more than `SWEEP_GRACE_SECONDS` ago (at most `SWEEP_MAX_ROWS`, oldest first)
//! and for each: aborts its S3 multipart upload if it has one (after that nobody can complete
//! it), looks for the object, and if there is none, releases the bytes and removes the row in
//! one transaction (marking the session aborted). A row whose object is there is left to the
//! indexer: its event is late or in the DLQ, whose alarm says so.
//!
//! Then it takes the multipart sessions still open past their expiry (plus the grace), whatever
//! mode started them (a Companion-mode session has no PENDING row; a signRequest one is bound
//! to its row only once a part is signed): it aborts each S3 upload, so the parts it holds are
//! freed, and ends the session (COMPLETED if its object did arrive, else ABORTED), which gives
//! the owner's open-upload place back. Bytes are only ever released by the row pass.
//!
//! Reads: the table's status index, object HEADs. Writes: usage counters, file rows, sessions,
//! S3 multipart aborts. Safe to run twice at once: every release is conditional.

use matbakh_api::Services;
use matbakh_api::metrics::{self, Unit};
use matbakh_aws::AwsError;
use matbakh_aws::table::PendingRow;
use matbakh_core::multipart::UploadId;
use serde::Serialize;
use tracing::Instrument;

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

/// One sweep over the expired rows, as of the services' clock.
pub async fn sweep(services: &Services) -> Result<SweepReport, AwsError> {
    let now = services.clock.now();
    let cutoff = now - services.limits.sweep_grace;
    let limit = usize::try_from(services.limits.sweep_max_rows).unwrap_or(usize::MAX);
    let rows = services.table.expired_pending(cutoff, limit).await?;
    let mut report = SweepReport::default();
    for row in rows {
        let span = tracing::info_span!("expired_upload", file_id = %row.file_id, user = %row.owner);
        report.examined += 1;
        if release(services, &row).instrument(span).await? {
            report.released += 1;
            report.released_bytes += row.charged;
        } else {
            report.awaiting_event += 1;
        }
    }
    for id in services.table.expired_sessions(cutoff, limit).await? {
        let span = tracing::info_span!("expired_session", upload_id = %id);
        if end_session(services, &id).instrument(span).await? {
            report.sessions_ended += 1;
        }
    }
    tracing::info!(?report, "sweep finished");
    metrics::emit(
        "sweep",
        &[
            ("ExpiredUploadsReleased", report.released, Unit::Count),
            ("ExpiredBytesReleased", report.released_bytes, Unit::Bytes),
            ("ExpiredUploadsAwaitingEvent", report.awaiting_event, Unit::Count),
            ("ExpiredSessionsEnded", report.sessions_ended, Unit::Count),
        ],
    );
    Ok(report)
}

/// Releases one row unless its object arrived. Aborting first means no client can complete
/// the upload between the look and the release.
async fn release(services: &Services, row: &PendingRow) -> Result<bool, AwsError> {
    if let Some(upload_id) = &row.upload_id {
        services.store.abort_multipart(&row.key, upload_id).await?;
    }
    if services.store.object_size(&row.key).await?.is_some() {
        tracing::warn!(key = row.key.as_str(), "expired upload has its object but no settled row; left to the indexer");
        return Ok(false);
    }
    let released = services.table.release_pending(row).await?;
    if released {
        tracing::info!(bytes = row.charged, "expired upload released");
    }
    Ok(released)
}

/// Aborts an expired session's S3 upload, then ends the session: COMPLETED if its object
/// arrived after all (the indexer settles it), else ABORTED. Answers whether this call ended it.
async fn end_session(services: &Services, id: &UploadId) -> Result<bool, AwsError> {
    let Some(session) = services.table.get_session(id).await? else {
        return Ok(false);
    };
    services.store.abort_multipart(&session.key, id).await?;
    let arrived = services.store.object_size(&session.key).await?.is_some();
    let ended = services.table.end_expired_session(&session, arrived).await?;
    if ended {
        tracing::info!(arrived, user = %session.owner, "expired session ended");
    }
    Ok(ended)
}
