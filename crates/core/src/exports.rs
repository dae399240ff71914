//! GDPR export jobs: one ZIP of all a user's files and their metadata, built in the background.

use time::OffsetDateTime;

use crate::ids::UserId;

/// A pending or running export older than this is taken for dead (its messages went to the
/// DLQ): asking again starts a new one. Longer than every delivery of its message can take (5
/// of at most 15 minutes, and the [`EXPORT_RETRY_SECONDS`] between them: about 2 hours), so a
/// job still being tried is never built beside a new one (review 28: at an hour, both were).
pub const EXPORT_STALE_AFTER: time::Duration = time::Duration::hours(3);
/// Deliveries of an export's message before SQS moves it to the DLQ: the export queue's
/// `maxReceiveCount` (template.yaml; a template test compares them). The exporter marks the job
/// FAILED when this delivery fails too, so its owner is not left waiting for
/// [`EXPORT_STALE_AFTER`].
pub const EXPORT_MAX_RECEIVES: u32 = 5;
/// Seconds before an export's message comes back after its first, second, ... delivery failed
/// (the queue's own visibility timeout, sized for the exporter's 15 minutes, is 90 minutes:
/// one S3 error delayed the export that long, and its FAILED came 6 hours late).
pub const EXPORT_RETRY_SECONDS: [i32; EXPORT_MAX_RECEIVES as usize - 1] = [60, 300, 900, 1800];
/// How long before Lambda's timeout an archive's build stops starting files: the time to abort
/// its upload and say why (a file being written when it passes is finished first).
pub const EXPORT_TIME_MARGIN: time::Duration = time::Duration::seconds(60);
/// How long a READY archive answers a new request instead of a new build: each is the whole
/// account, kept 7 days outside the quota, and a user asking every hour had a hundred copies
/// (security review 20). A later request builds a new one, which replaces it.
pub const EXPORT_REUSED_FOR: time::Duration = time::Duration::hours(24);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportState {
    Pending,
    Running,
    Ready,
    Failed,
}

impl ExportState {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportState::Pending => "PENDING",
            ExportState::Running => "RUNNING",
            ExportState::Ready => "READY",
            ExportState::Failed => "FAILED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "PENDING" => ExportState::Pending,
            "RUNNING" => ExportState::Running,
            "READY" => ExportState::Ready,
            "FAILED" => ExportState::Failed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportJob {
    pub id: String,
    pub owner: UserId,
    pub state: ExportState,
    pub created_at: OffsetDateTime,
    /// The archive's key, once READY.
    pub key: Option<String>,
    pub size: Option<u64>,
    pub files: Option<u64>,
}

impl ExportJob {
    /// Whether asking for an export at `now` should answer this job instead of starting one:
    /// pending or running and not stale, or READY for [`EXPORT_REUSED_FOR`].
    pub fn answers_again(&self, now: OffsetDateTime) -> bool {
        match self.state {
            ExportState::Pending | ExportState::Running => now - self.created_at < EXPORT_STALE_AFTER,
            ExportState::Ready => now - self.created_at < EXPORT_REUSED_FOR,
            ExportState::Failed => false,
        }
    }
}

/// Whether `raw` can be an export's id (32 hex digits); anything else names no export.
pub fn is_export_id(raw: &str) -> bool {
    raw.len() == 32 && raw.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_job_under_way_answers_again_until_stale_and_a_ready_one_for_a_day() {
        let at = datetime!(2026-03-01 12:00 UTC);
        let job = |state| ExportJob {
            id: "0".repeat(32),
            owner: UserId::parse("alice").unwrap(),
            state,
            created_at: at,
            key: None,
            size: None,
            files: None,
        };
        let soon = at + time::Duration::minutes(59);
        assert!(job(ExportState::Pending).answers_again(soon) && job(ExportState::Running).answers_again(soon));
        assert!(job(ExportState::Ready).answers_again(soon) && !job(ExportState::Failed).answers_again(soon));
        assert!(!job(ExportState::Running).answers_again(at + EXPORT_STALE_AFTER));
        assert!(job(ExportState::Ready).answers_again(at + EXPORT_STALE_AFTER));
        assert!(!job(ExportState::Ready).answers_again(at + EXPORT_REUSED_FOR));
    }

    #[test]
    fn only_32_hex_digits_name_an_export() {
        assert!(is_export_id(&"a1".repeat(16)));
        assert!(!is_export_id(&"a1".repeat(15)) && !is_export_id(&"g".repeat(32)) && !is_export_id("../x"));
    }
}
