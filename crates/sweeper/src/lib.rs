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
//! Reads: the table's status index, object HEADs. Writes: usage counters, file rows, sessions,
//! S3 multipart aborts. Safe to run twice at once: every release is conditional.

use matbakh_api::Services;
use matbakh_api::metrics::{self, Unit};
use matbakh_aws::AwsError;
use matbakh_aws::table::PendingRow;
use serde::Serialize;

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
        let _entered = span.enter();
        report.examined += 1;
        if release(services, &row).await? {
            report.released += 1;
            report.released_bytes += row.charged;
        } else {
            report.awaiting_event += 1;
        }
    }
    tracing::info!(?report, "sweep finished");
    metrics::emit(
        "sweep",
        &[
            ("ExpiredUploadsReleased", report.released, Unit::Count),
            ("ExpiredBytesReleased", report.released_bytes, Unit::Bytes),
            ("ExpiredUploadsAwaitingEvent", report.awaiting_event, Unit::Count),
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
