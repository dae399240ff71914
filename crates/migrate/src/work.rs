//! The SQS path: `migrate enqueue` turns a run's pending rows into messages, and the
//! `migration-worker` function processes them with the same copy code as a local run.
//!
//! Small files travel as batches (the plan's batches, pending rows only). A file from the
//! multipart threshold becomes part-range messages of one upload that `enqueue` starts; each
//! part message records its parts on the row (a set, so a redelivery adds nothing), and the
//! one that completes the set sends the completion step, which checks the parts' CRCs
//! against the manifest and completes the upload conditionally. Messages of a paused or
//! aborted run are dropped unprocessed: their rows stay pending, and `enqueue` after `resume`
//! sends them again.

use aws_config::SdkConfig;
use matbakh_aws::ledger::{Delta, LedgerRow, RunRecord};
use matbakh_aws::queue::Queue;
use matbakh_core::migration::{Control, FailureReason, RowStatus, RunId, RunState};
use serde::{Deserialize, Serialize};

use crate::copy::{Copier, Copy, Outcome, Pace, parts_of, updated_row};
use crate::plan::CopySettings;
use crate::rows::{Rows, Tally, is_todo};
use crate::{Context, MigrateError};

/// Parts per part message: 4 x 8 MiB keeps a message's work well inside a Lambda timeout.
pub const PARTS_PER_MESSAGE: usize = 4;

/// One message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Work {
    /// Copy these rows (single PUTs).
    Files { run: String, seqs: Vec<u64> },
    /// Send these parts (number, offset, length) of one row's upload; `total` parts in all.
    #[serde(rename_all = "camelCase")]
    Parts { run: String, seq: u64, upload_id: String, parts: Vec<(i32, u64, u64)>, total: usize },
    /// Complete the row's upload.
    #[serde(rename_all = "camelCase")]
    Complete { run: String, seq: u64, upload_id: String },
    /// Send the run's pending files as messages (what `migrate enqueue` does); the dashboard's
    /// `resume` asks for it, since the workers dropped the messages of the paused run.
    Enqueue { run: String },
    /// Rewrite what the run recorded of users who erased their account since
    /// ([`crate::erased::redact`]); without a run, one such message per run is sent (an
    /// erase sends that, `core::migration::REDACT_ERASED_MESSAGE`). Done in any run state.
    Redact {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<String>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Enqueued {
    pub run: String,
    pub messages: usize,
    pub files: usize,
    pub multipart_files: usize,
    pub parts: usize,
}

fn usage(e: matbakh_aws::AwsError) -> MigrateError {
    match e {
        matbakh_aws::AwsError::Config(m) => MigrateError::Usage(m),
        e => e.into(),
    }
}

fn copier(ctx: &Context, record: &RunRecord, sdk: &SdkConfig) -> Result<Copier, MigrateError> {
    let settings = CopySettings::of(record)?;
    let (target, _) = ctx.target(&record.target)?;
    let source = ctx.source(&record.source, sdk, settings.http)?;
    let mut copier = Copier::new(target, source, record.id.clone(), settings, Pace::default());
    copier.files = ctx.files.clone();
    Ok(copier)
}

/// Sends the run's pending work to `queue`.
pub async fn enqueue(ctx: &Context, id: &str, queue: &Queue, sdk: &SdkConfig) -> Result<Enqueued, MigrateError> {
    let record = ctx.run(id).await?;
    ctx.ledger.control(&record.id, Control::Start, &ctx.now()).await.map_err(usage)?;
    let copier = copier(ctx, &record, sdk)?;
    Tally::take(ctx, &copier.target, &record).await?;
    let mut rows = Rows::open(ctx, &copier.target, &record).await?;
    let run = record.id.to_string();
    let mut out = Enqueued { run: run.clone(), ..Enqueued::default() };
    let mut bodies = Vec::new();
    let mut batch: Option<(u32, Vec<u64>)> = None;
    let push = |w: &Work, bodies: &mut Vec<String>| -> Result<(), MigrateError> {
        bodies.push(serde_json::to_string(w).map_err(|e| MigrateError::Check(e.to_string()))?);
        Ok(())
    };
    // A page of rows at a time: its messages are sent before the next page is read.
    while let Some(page) = rows.next_page(ctx).await? {
        for row in page.iter().filter(|r| is_todo(r)) {
            let e = &row.entry;
            if e.is_multipart(copier.settings.multipart_threshold) {
                out.multipart_files += 1;
                let all = parts_of(e, &copier.settings);
                // The upload and the parts it holds: read once, again only after starting one.
                let parts_done = || ctx.ledger.parts_of(&record.id, e.seq);
                let (upload_id, done) = match &row.upload_id {
                    Some(u) => {
                        let done = parts_done().await?;
                        // Still open, or (every part sent) completed: the Complete step adopts it.
                        if done.len() >= all.len() || copier.target.list_parts(&e.key, u).await?.is_some() {
                            (u.clone(), done)
                        } else {
                            // Gone with parts still to send: the bucket's lifecycle aborts an
                            // upload a day after it began (a run paused overnight, a backlog), so
                            // it starts again.
                            tracing::warn!(seq = e.seq, "the multipart upload lapsed: started again");
                            let mine = copier.start_upload(e).await?;
                            let kept = ctx.ledger.replace_upload(&record.id, e.seq, u, &mine).await?;
                            if kept != mine {
                                copier.target.abort_multipart(&e.key, &mine).await?;
                            }
                            (kept, parts_done().await?)
                        }
                    }
                    None => {
                        let mine = copier.start_upload(e).await?;
                        let kept = ctx.ledger.set_upload(&record.id, e.seq, &mine).await?;
                        if kept != mine {
                            copier.target.abort_multipart(&e.key, &mine).await?;
                        }
                        (kept, parts_done().await?)
                    }
                };
                let missing: Vec<(i32, u64, u64)> = all.iter().filter(|p| !done.contains(&p.0)).copied().collect();
                if missing.is_empty() {
                    push(&Work::Complete { run: run.clone(), seq: e.seq, upload_id }, &mut bodies)?;
                } else {
                    for chunk in missing.chunks(PARTS_PER_MESSAGE) {
                        out.parts += chunk.len();
                        let parts = chunk.to_vec();
                        push(
                            &Work::Parts {
                                run: run.clone(),
                                seq: e.seq,
                                upload_id: upload_id.clone(),
                                parts,
                                total: all.len(),
                            },
                            &mut bodies,
                        )?;
                    }
                }
            } else {
                out.files += 1;
                match &mut batch {
                    Some((b, seqs)) if *b == e.batch => seqs.push(e.seq),
                    _ => {
                        if let Some((_, seqs)) = batch.take() {
                            push(&Work::Files { run: run.clone(), seqs }, &mut bodies)?;
                        }
                        batch = Some((e.batch, vec![e.seq]));
                    }
                }
            }
        }
        queue.send_all(&bodies).await?;
        out.messages += bodies.len();
        bodies.clear();
    }
    if let Some((_, seqs)) = batch.take() {
        push(&Work::Files { run: run.clone(), seqs }, &mut bodies)?;
    }
    queue.send_all(&bodies).await?;
    out.messages += bodies.len();
    Ok(out)
}

/// Why a message failed: `retryable` ones are left for SQS to deliver again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WorkFailure {
    pub message: String,
    pub retryable: bool,
}

impl From<MigrateError> for WorkFailure {
    fn from(e: MigrateError) -> Self {
        WorkFailure { retryable: e.is_retryable(), message: e.to_string() }
    }
}

impl From<matbakh_aws::AwsError> for WorkFailure {
    fn from(e: matbakh_aws::AwsError) -> Self {
        MigrateError::from(e).into()
    }
}

/// Parses one message body; a body that is not work is a permanent failure (a poison message).
pub fn parse(body: &str) -> Result<Work, WorkFailure> {
    serde_json::from_str(body)
        .map_err(|e| WorkFailure { message: format!("not a migration message: {e}"), retryable: false })
}

/// What processing a message did (for the log line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Processed {
    pub copied: usize,
    pub failed: usize,
    /// The run was not taking work: the message was dropped.
    pub dropped: bool,
}

/// A `redact` message: of one run, or one message per run.
async fn redact(ctx: &Context, queue: &Queue, run: Option<&str>) -> Result<Processed, WorkFailure> {
    match run {
        Some(id) => {
            crate::erased::redact(ctx, Some(id)).await?;
        }
        None => {
            let runs = ctx.ledger.list_runs().await?;
            let bodies = runs
                .iter()
                .map(|r| serde_json::to_string(&Work::Redact { run: Some(r.id.to_string()) }))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| MigrateError::Check(e.to_string()))?;
            queue.send_all(&bodies).await?;
            tracing::info!(runs = bodies.len(), "a redact message sent for each run");
        }
    }
    Ok(Processed::default())
}

async fn record_rows(ctx: &Context, run: &RunId, updates: Vec<(LedgerRow, Copy)>) -> Result<(), MigrateError> {
    if updates.is_empty() {
        return Ok(());
    }
    // Each row only if it is as it was read, and counted only then (review 27): a second
    // delivery of the same files (an `enqueue` run again, a message seen twice) counted every
    // copy twice. But a late copy (its run began rolling back meanwhile: `note_if_rolled_back`)
    // is written whatever the row holds, uncounted: a rollback that reset the row knew nothing
    // of it, and running it again needs the row's version and the marker that hid an earlier
    // copy.
    let mut delta = Delta::default();
    let mut rolled_back = None;
    for (before, copy) in &updates {
        let row = crate::erased::kept(ctx, vec![updated_row(before, copy, &ctx.now())]);
        if ctx.ledger.put_row_if_unchanged(run, before, &row[0]).await? {
            delta.merge(crate::run::delta_of(before, copy));
        } else {
            if rolled_back.is_none() {
                rolled_back = Some(ctx.ledger.state(run).await?.is_some_and(|s| s.rolled_back()));
            }
            if rolled_back == Some(true) {
                ctx.ledger.put_rows(run, &row).await?;
            } else {
                tracing::info!(
                    seq = before.entry.seq,
                    "the row changed since it was read (another delivery): not written again"
                );
            }
        }
    }
    if let Some(after) = ctx.ledger.add(run, &delta, &ctx.now()).await?
        && after.state == RunState::Running
        && after.counters.copied.files + after.counters.failed_files >= after.total_files
    {
        ctx.ledger.control(run, Control::Finish, &ctx.now()).await?;
    }
    Ok(())
}

fn retry_if_transient(updates: &[(LedgerRow, Copy)]) -> Result<(), WorkFailure> {
    let transient = updates
        .iter()
        .filter(|(_, c)| matches!(&c.outcome, Outcome::Failed { reason, .. } if reason.retryable()))
        .count();
    if transient > 0 {
        return Err(WorkFailure {
            message: format!("{transient} file(s) failed for a passing reason"),
            retryable: true,
        });
    }
    Ok(())
}

/// What a worker leaves of its invocation's time (`matbakh_lambda::stop_at`): it starts no new
/// file of a message after that, and cuts a copy still running short.
pub const WORK_TIME_MARGIN: time::Duration = time::Duration::seconds(30);

/// A copy cut short at `stop`: a failure that may pass (the next delivery tries again), so
/// the row is counted and the run can end even if every delivery runs out of time on it.
fn out_of_time(started: std::time::Instant) -> Copy {
    Copy {
        outcome: Outcome::Failed {
            reason: FailureReason::RetriesExhausted,
            message: "the copy did not end before the worker's time ran out (a slow or silent source)".into(),
        },
        attempts: 1,
        retries: 0,
        ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

/// Processes one message. `queue` receives the completion step a last part message sends.
/// A files message records each file as its copy ends, starts none after `stop`, and cuts the
/// one running then short: a delivery that runs out of time keeps what it copied, and the next
/// one takes the rest.
pub async fn process(
    ctx: &Context,
    sdk: &SdkConfig,
    queue: &Queue,
    work: &Work,
    seed: u64,
    stop: Option<time::OffsetDateTime>,
) -> Result<Processed, WorkFailure> {
    let run = match work {
        Work::Files { run, .. } | Work::Parts { run, .. } | Work::Complete { run, .. } | Work::Enqueue { run } => run,
        Work::Redact { run } => return redact(ctx, queue, run.as_deref()).await,
    };
    let record = ctx.run(run).await?;
    let takes = |s: RunState| s.takes_work() || s == RunState::Done;
    if !takes(record.state) {
        tracing::info!(run = %record.id, state = %record.state, "run not taking work: message dropped");
        return Ok(Processed { dropped: true, ..Processed::default() });
    }
    if let Work::Enqueue { run } = work {
        let sent = enqueue(ctx, run, queue, sdk).await?;
        tracing::info!(run = %record.id, messages = sent.messages, files = sent.files, "pending files enqueued");
        return Ok(Processed::default());
    }
    let copier = copier(ctx, &record, sdk)?;
    let id = record.id.clone();
    match work {
        Work::Files { seqs, .. } => {
            let mut updates = Vec::new();
            let (mut dropped, mut left) = (false, 0);
            for (i, &seq) in seqs.iter().enumerate() {
                // As a local worker does: a pause stops new copies at once.
                if !ctx.ledger.state(&id).await?.is_some_and(takes) {
                    dropped = true;
                    break;
                }
                let time_left = stop.map(|at| std::time::Duration::try_from(at - ctx.clock.now()).unwrap_or_default());
                if time_left.is_some_and(|t| t.is_zero()) {
                    left = seqs.len() - i;
                    break;
                }
                let Some(row) = ctx.ledger.row(&id, seq).await? else { continue };
                if !is_todo(&row) {
                    continue;
                }
                let started = std::time::Instant::now();
                let copy = match time_left {
                    Some(t) => {
                        tokio::time::timeout(t, copier.copy(&row, seed)).await.unwrap_or_else(|_| out_of_time(started))
                    }
                    None => copier.copy(&row, seed).await,
                };
                let copy = crate::rollback::note_if_rolled_back(ctx, copy, &id).await?;
                // At once: a delivery cut short keeps what it copied.
                record_rows(ctx, &id, vec![(row.clone(), copy.clone())]).await?;
                updates.push((row, copy));
            }
            let copied = updates.iter().filter(|(_, c)| matches!(c.outcome, Outcome::Copied { .. })).count();
            let processed = Processed { copied, failed: updates.len() - copied, dropped };
            retry_if_transient(&updates)?;
            if left > 0 {
                return Err(WorkFailure {
                    message: format!("out of time with {left} file(s) of the message left for its next delivery"),
                    retryable: true,
                });
            }
            Ok(processed)
        }
        Work::Parts { seq, upload_id, parts, total, .. } => {
            let Some(row) = ctx.ledger.row(&id, *seq).await? else { return Ok(Processed::default()) };
            if row.status == RowStatus::Copied || stale(&row, upload_id) {
                return Ok(Processed::default());
            }
            match copier.copy_parts(&row.entry, upload_id, parts, seed).await {
                Ok(_) => {
                    let numbers: Vec<i32> = parts.iter().map(|p| p.0).collect();
                    let done = ctx.ledger.parts_done(&id, *seq, &numbers).await?;
                    if done.len() >= *total {
                        let body = serde_json::to_string(&Work::Complete {
                            run: id.to_string(),
                            seq: *seq,
                            upload_id: upload_id.clone(),
                        })
                        .map_err(|e| WorkFailure { message: e.to_string(), retryable: false })?;
                        queue.send_all(&[body]).await?;
                    }
                    Ok(Processed::default())
                }
                Err((_, message, true)) => Err(WorkFailure { message, retryable: true }),
                Err((reason, message, false)) => {
                    // The upload lapsed (the bucket's lifecycle aborted it): the row waits for
                    // the next `enqueue` (a resume sends one), which starts it again.
                    if copier.target.list_parts(&row.entry.key, upload_id).await?.is_none() {
                        tracing::warn!(seq, "the multipart upload is gone: the next enqueue starts it again");
                        return Ok(Processed { dropped: true, ..Processed::default() });
                    }
                    copier.target.abort_multipart(&row.entry.key, upload_id).await?;
                    let copy = Copy { outcome: Outcome::Failed { reason, message }, attempts: 1, retries: 0, ms: 0.0 };
                    record_rows(ctx, &id, vec![(row, copy)]).await?;
                    Ok(Processed { failed: 1, ..Processed::default() })
                }
            }
        }
        Work::Complete { seq, upload_id, .. } => {
            let Some(row) = ctx.ledger.row(&id, *seq).await? else { return Ok(Processed::default()) };
            if row.status == RowStatus::Copied || stale(&row, upload_id) {
                return Ok(Processed::default());
            }
            let copy = copier.complete_upload(&row.entry, upload_id).await;
            let copy = crate::rollback::note_if_rolled_back(ctx, copy, &id).await?;
            let copied = matches!(copy.outcome, Outcome::Copied { .. });
            let updates = vec![(row, copy)];
            record_rows(ctx, &id, updates.clone()).await?;
            retry_if_transient(&updates)?;
            Ok(Processed { copied: usize::from(copied), failed: usize::from(!copied), dropped: false })
        }
        // Answered before the copier was made.
        Work::Enqueue { .. } | Work::Redact { .. } => Ok(Processed::default()),
    }
}

/// Whether a message names an upload the row no longer has (one `enqueue` started again).
fn stale(row: &LedgerRow, upload_id: &str) -> bool {
    row.upload_id.as_deref().is_some_and(|current| current != upload_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_erases_message_is_a_redact_of_every_run() {
        assert_eq!(parse(matbakh_core::migration::REDACT_ERASED_MESSAGE).unwrap(), Work::Redact { run: None });
        let one = serde_json::to_string(&Work::Redact { run: Some("r1".into()) }).unwrap();
        assert_eq!(parse(&one).unwrap(), Work::Redact { run: Some("r1".into()) });
    }

    #[test]
    fn messages_round_trip_and_garbage_is_a_permanent_failure() {
        let w = Work::Parts {
            run: "r1".into(),
            seq: 3,
            upload_id: "u".into(),
            parts: vec![(1, 0, 5), (2, 5, 5)],
            total: 4,
        };
        let body = serde_json::to_string(&w).unwrap();
        assert!(body.contains(r#""kind":"parts""#) && body.contains(r#""uploadId":"u""#), "{body}");
        assert_eq!(parse(&body).unwrap(), w);
        let failure = parse("{\"kind\":\"nope\"}").unwrap_err();
        assert!(!failure.retryable);
        assert!(!parse("not json").unwrap_err().retryable);
    }
}
