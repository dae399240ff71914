//! `sweeper`: gives back the quota of uploads that never arrived (DECISIONS 12).
//!
//! Triggered by an EventBridge schedule (hourly). Creating an upload reserves its declared size;
//! the object-created event settles it. An upload that never arrives would keep its
//! reservation forever (DynamoDB TTL must not delete such a row: the bytes would stay counted,
//! and moto never expires TTL items anyway). So each run takes the unsettled PENDING rows whose
//! grant ended more than `SWEEP_GRACE_SECONDS` ago (`SWEEP_MAX_ROWS` a page, oldest first,
//! pages until it is caught up or a minute before its timeout)
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
//! A row or session whose step keeps failing is left for the next run while the others go on;
//! the invocation then fails (so `SweeperFailuresAlarm` tells), after every other was done.
//!
//! Reads: the table's status index, object HEADs. Writes: usage counters, file rows, sessions,
//! S3 multipart aborts. Safe to run twice at once: every release is conditional.
//!
//! The sweep itself is the use case [`matbakh_app::sweep`]; this crate runs it on the
//! deployment's table and bucket and reports its numbers as metrics.

use matbakh_app::sweep::SweepReport;
use matbakh_aws::Services;
use matbakh_lambda::metrics::{self, Unit};

/// What a sweep leaves of the function's time: it takes no new page this long before
/// Lambda's timeout (a page at [`matbakh_app::sweep::SWEEP_IN_FLIGHT`] takes seconds).
pub const SWEEP_TIME_MARGIN: time::Duration = time::Duration::seconds(60);

/// One sweep over the expired rows and sessions, as of the services' clock, by `deadline`.
pub async fn sweep(
    services: &Services,
    deadline: Option<time::OffsetDateTime>,
) -> Result<SweepReport, matbakh_app::Error> {
    let report = services.sweeper().sweep(deadline).await?;
    metrics::emit(
        "sweep",
        &[
            ("ExpiredUploadsReleased", report.released, Unit::Count),
            ("ExpiredBytesReleased", report.released_bytes, Unit::Bytes),
            ("ExpiredUploadsAwaitingEvent", report.awaiting_event, Unit::Count),
            ("ExpiredSessionsEnded", report.sessions_ended, Unit::Count),
            ("ExpiredSweepFailures", report.failed, Unit::Count),
        ],
    );
    Ok(report)
}

#[cfg(test)]
mod tests;
