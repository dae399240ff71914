//! `migrate status | pause | resume | abort | runs`: the run item read and written.

use matbakh_aws::ledger::RunRecord;
use matbakh_core::migration::eta::eta_seconds;
use matbakh_core::migration::{Control, RunState};
use serde::Serialize;

use crate::{Context, MigrateError};

/// A run's progress as `status` shows it (and the web dashboard reads it).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub run: String,
    pub state: RunState,
    pub source: String,
    pub target: String,
    pub created_at: String,
    pub total_files: u64,
    pub total_bytes: u64,
    pub copied_files: u64,
    pub copied_bytes: u64,
    pub failed_files: u64,
    pub failures: std::collections::BTreeMap<String, i64>,
    pub retries: u64,
    pub active_seconds: f64,
    pub bytes_per_second: f64,
    pub files_per_second: f64,
    /// `None` until something was copied (or when nothing is left: 0).
    pub eta_seconds: Option<f64>,
    /// The last full `verify`.
    pub verification: Option<matbakh_aws::ledger::Verification>,
    /// The run this one is a delta of (`plan --since`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Copies that landed after the run began rolling back which no rollback has taken yet:
    /// run `migrate rollback` again.
    pub late_copies_pending: u64,
}

/// Seconds between two stored timestamps (`2026-03-01T12:15:00.123Z`).
fn seconds_between(from: &str, to: &str) -> Option<f64> {
    use time::format_description::well_known::Rfc3339;
    let (a, b) = (time::OffsetDateTime::parse(from, &Rfc3339).ok()?, time::OffsetDateTime::parse(to, &Rfc3339).ok()?);
    Some((b - a).as_seconds_f64().max(0.0))
}

/// The seconds run `r` spent copying: local runs add the time they spent; a run copied by
/// Lambda workers has the wall time from its first start to its last update instead.
pub fn active_seconds(r: &RunRecord) -> f64 {
    if r.counters.active_ms > 0 {
        r.counters.active_ms as f64 / 1000.0
    } else {
        match (&r.started_at, &r.updated_at) {
            (Some(s), Some(u)) => seconds_between(s, u).unwrap_or(0.0),
            _ => 0.0,
        }
    }
}

pub fn status_of(r: &RunRecord) -> Status {
    let c = &r.counters;
    let active = active_seconds(r);
    // Failed files count as left: a retryable one is tried again, and their sizes are not
    // in the counters to take them out of the bytes.
    let files_left = r.total_files.saturating_sub(c.copied.files);
    let bytes_left = r.total_bytes.saturating_sub(c.copied.bytes);
    let per = |x: f64| if active > 0.0 { x / active } else { 0.0 };
    Status {
        run: r.id.to_string(),
        state: r.state,
        source: r.source.clone(),
        target: r.target.clone(),
        created_at: r.created_at.clone(),
        total_files: r.total_files,
        total_bytes: r.total_bytes,
        copied_files: c.copied.files,
        copied_bytes: c.copied.bytes,
        failed_files: c.failed_files,
        failures: c.failures.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        retries: c.retries,
        active_seconds: active,
        bytes_per_second: per(c.copied.bytes as f64),
        files_per_second: per(c.copied.files as f64),
        eta_seconds: eta_seconds(&c.copied, active, files_left, bytes_left),
        verification: r.verification.clone(),
        since: r.since.as_ref().map(ToString::to_string),
        late_copies_pending: r.late_copies_pending(),
    }
}

/// `1.5 MiB`: bytes for people (binary units).
pub(crate) fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut v, mut i) = (b, 0);
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{v:.0} {}", UNITS[i]) } else { format!("{v:.1} {}", UNITS[i]) }
}

fn clock(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// One line: bar, files, bytes, rate, ETA, failures by reason.
pub fn progress_line(s: &Status) -> String {
    let done = if s.total_bytes > 0 {
        s.copied_bytes as f64 / s.total_bytes as f64
    } else {
        s.copied_files as f64 / s.total_files.max(1) as f64
    };
    let width = 24;
    let filled = ((done * width as f64).round() as usize).min(width);
    let eta = match s.eta_seconds {
        Some(e) => format!("ETA {}", clock(e)),
        None => "ETA --".into(),
    };
    let failures = if s.failed_files == 0 {
        String::new()
    } else {
        let by: Vec<String> = s.failures.iter().filter(|(_, c)| **c > 0).map(|(r, c)| format!("{r} {c}")).collect();
        format!("  failed {} ({})", s.failed_files, by.join(", "))
    };
    let failures = match &s.verification {
        Some(v) if v.passed => format!("{failures}  verified {}", v.at),
        Some(v) => format!("{failures}  verify FAILED {} ({} problems)", v.at, v.problems),
        None => failures,
    };
    let failures = match &s.since {
        Some(since) => format!("{failures}  delta of {since}"),
        None => failures,
    };
    let failures = match s.late_copies_pending {
        0 => failures,
        n => format!("{failures}  {n} copies landed after its rollback began: run `migrate rollback {}` again", s.run),
    };
    format!(
        "{} [{}{}] {:>3.0}%  {}/{} files  {}/{}  {}/s  {}{}",
        s.state,
        "#".repeat(filled),
        ".".repeat(width - filled),
        done * 100.0,
        s.copied_files,
        s.total_files,
        human_bytes(s.copied_bytes as f64),
        human_bytes(s.total_bytes as f64),
        human_bytes(s.bytes_per_second),
        eta,
        failures
    )
}

pub async fn status(ctx: &Context, id: &str) -> Result<Status, MigrateError> {
    Ok(status_of(&ctx.run(id).await?))
}

pub async fn runs(ctx: &Context) -> Result<Vec<Status>, MigrateError> {
    Ok(ctx.ledger.list_runs().await?.iter().map(status_of).collect())
}

/// Pause, resume or abort; answers the new state, or why the run cannot take the command.
pub async fn apply(ctx: &Context, id: &str, control: Control) -> Result<RunState, MigrateError> {
    let run = ctx.run(id).await?;
    ctx.ledger.control(&run.id, control, &ctx.now()).await.map_err(|e| match e {
        matbakh_aws::AwsError::Config(m) => MigrateError::Usage(m),
        e => e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use matbakh_aws::ledger::Counters;
    use matbakh_core::migration::eta::Tally;
    use matbakh_core::migration::{FailureReason, RunId};

    #[test]
    fn the_progress_line_shows_files_bytes_rate_eta_and_failures() {
        let mut copied = Tally::default();
        for _ in 0..50 {
            copied.add(1 << 20, 100.0);
        }
        let record = RunRecord {
            id: RunId::parse("r1").unwrap(),
            state: RunState::Running,
            source: "file:///legacy".into(),
            target: "s3://bucket".into(),
            rule: "keep".into(),
            created_at: "2026-11-28T07:00:00.000Z".into(),
            total_files: 100,
            total_bytes: 100 << 20,
            manifest_key: "m".into(),
            settings: "{}".into(),
            counters: Counters {
                copied,
                failed_files: 2,
                retries: 3,
                active_ms: 5000,
                failures: [(FailureReason::SourceChanged, 2)].into(),
            },
            started_at: None,
            updated_at: None,
            verification: None,
            since: None,
            late_copies: 0,
            late_copies_seen: 0,
        };
        let s = status_of(&record);
        assert_eq!(s.bytes_per_second, 10.0 * 1024.0 * 1024.0);
        // 50 files of 1 MiB left at 100 ms each, one transfer on average: 5 s.
        assert!((s.eta_seconds.unwrap() - 5.0).abs() < 1e-9, "{:?}", s.eta_seconds);
        let line = progress_line(&s);
        assert!(
            line.starts_with(
                "RUNNING [############............]  50%  50/100 files  50.0 MiB/100.0 MiB  10.0 MiB/s  ETA 0:05"
            ),
            "{line}"
        );
        assert!(line.ends_with("failed 2 (source_changed 2)"), "{line}");

        // Copied by Lambda workers: no local copying time, the wall time from start to update.
        let mut sqs = record.clone();
        sqs.counters.active_ms = 0;
        sqs.started_at = Some("2026-11-28T07:00:00.000Z".into());
        sqs.updated_at = Some("2026-11-28T07:00:10.000Z".into());
        let s = status_of(&sqs);
        assert_eq!((s.active_seconds, s.bytes_per_second), (10.0, 5.0 * 1024.0 * 1024.0));
        assert!(s.eta_seconds.is_some());
    }
}
