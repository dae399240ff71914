//! `migrate run`: local workers copy the run's pending files. Each worker asks the run's
//! state before it takes a file, so a pause or an abort stops new copies at once while the
//! ones in flight finish; results reach the ledger in batches of 25 rows (or every second)
//! with the run's counters. A rerun starts where the ledger says: copied rows are skipped
//! without a request, and a copy a killed process made but never recorded is recognised by
//! its conditional write and adopted, never written twice.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use matbakh_aws::ledger::{Counters, Delta, LedgerRow};
use matbakh_core::migration::backoff::{Backoff, DEFAULT_BACKOFF};
use matbakh_core::migration::{Control, RowStatus, RunId, RunState};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::copy::{Copier, Copy, DEFAULT_BUFFER_BYTES, Outcome, Throttle, updated_row};
use crate::plan::CopySettings;
use crate::source::Source;
use crate::{Context, MigrateError};

/// Ledger rows written per flush (one BatchWriteItem).
pub const FLUSH_ROWS: usize = 25;
/// Longest a result waits for its flush.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub transfers: usize,
    /// Bytes per second for the whole process.
    pub bandwidth: Option<u64>,
    /// Requests per second for the whole process.
    pub request_rate: Option<f64>,
    pub backoff: Backoff,
    pub buffer_bytes: u64,
    pub seed: u64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            transfers: matbakh_core::migration::DEFAULT_TRANSFERS,
            bandwidth: None,
            request_rate: None,
            backoff: DEFAULT_BACKOFF,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            seed: 0x006d_6174_6261_6b68,
        }
    }
}

/// What a run reports as it goes (`--json` prints one line per event).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum Event {
    #[serde(rename_all = "camelCase")]
    Started { run: String, todo_files: u64, todo_bytes: u64, done_files: u64 },
    #[serde(rename_all = "camelCase")]
    Copied { seq: u64, key: String, size: u64, adopted: bool, attempts: u32 },
    #[serde(rename_all = "camelCase")]
    Failed { seq: u64, source: String, reason: String, message: String },
    #[serde(rename_all = "camelCase")]
    Flushed { rows: usize },
}

pub type Events = Arc<dyn Fn(&Event) + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub run: String,
    pub state: RunState,
    pub copied: u64,
    pub adopted: u64,
    pub failed: u64,
    /// Rows still pending (a pause or abort stopped the run before them).
    pub remaining: u64,
    pub bytes: u64,
    pub retries: u64,
    pub seconds: f64,
}

/// Counters recomputed from the rows: what the run item must say at the start of a session.
pub fn counters_of(rows: &[LedgerRow]) -> Counters {
    let mut c = Counters::default();
    for r in rows {
        match r.status {
            RowStatus::Copied => {
                c.copied.files += 1;
                c.copied.bytes += r.entry.size;
            }
            RowStatus::Failed => {
                c.failed_files += 1;
                if let Some(reason) = r.reason {
                    *c.failures.entry(reason).or_default() += 1;
                }
            }
            RowStatus::Pending => {}
        }
    }
    c
}

/// Whether a `run` takes the row: pending, or failed for a reason another attempt may fix.
pub fn is_todo(row: &LedgerRow) -> bool {
    match row.status {
        RowStatus::Pending => true,
        RowStatus::Failed => row.reason.is_some_and(|r| r.retryable()),
        RowStatus::Copied => false,
    }
}

/// The counter changes one copy makes (a failed row copied later un-counts its failure).
pub fn delta_of(before: &LedgerRow, copy: &Copy) -> Delta {
    let mut d = Delta { retries: u64::from(copy.retries), ..Delta::default() };
    if before.status == RowStatus::Failed {
        d.failed_files -= 1;
        if let Some(r) = before.reason {
            *d.failures.entry(r).or_default() -= 1;
        }
    }
    match &copy.outcome {
        Outcome::Copied { .. } => d.copied.add(before.entry.size, copy.ms),
        Outcome::Failed { reason, .. } => {
            d.failed_files += 1;
            *d.failures.entry(*reason).or_default() += 1;
        }
    }
    d
}

fn merge(into: &mut Delta, d: Delta) {
    into.copied.merge(&d.copied);
    into.failed_files += d.failed_files;
    into.retries += d.retries;
    into.active_ms += d.active_ms;
    for (r, c) in d.failures {
        *into.failures.entry(r).or_default() += c;
    }
}

pub async fn run(
    ctx: &Context,
    id: &str,
    source: Arc<dyn Source>,
    opts: &RunOptions,
    events: Events,
) -> Result<RunSummary, MigrateError> {
    let started = Instant::now();
    let record = ctx.run(id).await?;
    let run_id = record.id.clone();
    if source.url() != record.source {
        return Err(MigrateError::Usage(format!(
            "run {run_id} was planned from {}, not {}",
            record.source,
            source.url()
        )));
    }
    ctx.ledger.control(&run_id, Control::Start, &ctx.now()).await.map_err(|e| match e {
        matbakh_aws::AwsError::Config(m) => MigrateError::Usage(m),
        e => e.into(),
    })?;
    let settings: CopySettings = serde_json::from_str(&record.settings)
        .map_err(|e| MigrateError::Check(format!("run {run_id} has unreadable settings: {e}")))?;
    let rows = ctx.ledger.rows(&run_id).await?;
    ctx.ledger.reset_counters(&run_id, &counters_of(&rows), &ctx.now()).await?;
    let todo: VecDeque<LedgerRow> = rows.iter().filter(|r| is_todo(r)).cloned().collect();
    events(&Event::Started {
        run: run_id.to_string(),
        todo_files: todo.len() as u64,
        todo_bytes: todo.iter().map(|r| r.entry.size).sum(),
        done_files: rows.iter().filter(|r| r.status == RowStatus::Copied).count() as u64,
    });

    let (target, _) = ctx.target(&record.target)?;
    let copier = Copier::new(
        target,
        source,
        run_id.clone(),
        settings,
        opts.backoff,
        Arc::new(Throttle::new(opts.bandwidth, opts.request_rate)),
        opts.buffer_bytes,
    );
    let mut copier = copier;
    copier.files = ctx.files.clone();
    let queue = Arc::new(Mutex::new(todo));
    let (tx, mut rx) = mpsc::channel::<(LedgerRow, Copy)>(opts.transfers.max(1) * 2);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..opts.transfers.max(1) {
        let (ctx, copier, queue, tx, run_id, seed) =
            (ctx.clone(), copier.clone(), queue.clone(), tx.clone(), run_id.clone(), opts.seed);
        workers.spawn(async move { worker(&ctx, &run_id, &copier, &queue, &tx, seed).await });
    }
    drop(tx);

    let (mut summary_copied, mut adopted, mut failed, mut bytes, mut retries) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut pending_rows: Vec<LedgerRow> = Vec::new();
    let mut delta = Delta::default();
    let mut last_flush = Instant::now();
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    loop {
        tokio::select! {
            got = rx.recv() => {
                let Some((before, copy)) = got else { break };
                retries += u64::from(copy.retries);
                match &copy.outcome {
                    Outcome::Copied { adopted: a, .. } => {
                        summary_copied += 1;
                        bytes += before.entry.size;
                        adopted += u64::from(*a);
                        events(&Event::Copied { seq: before.entry.seq, key: before.entry.key.clone(), size: before.entry.size, adopted: *a, attempts: copy.attempts });
                    }
                    Outcome::Failed { reason, message } => {
                        failed += 1;
                        events(&Event::Failed { seq: before.entry.seq, source: before.entry.source.clone(), reason: reason.to_string(), message: message.clone() });
                    }
                }
                merge(&mut delta, delta_of(&before, &copy));
                pending_rows.push(updated_row(&before, &copy, &ctx.now()));
                if pending_rows.len() >= FLUSH_ROWS {
                    flush(ctx, &run_id, &mut pending_rows, &mut delta, &mut last_flush, &events).await?;
                }
            }
            _ = tick.tick() => {
                if !pending_rows.is_empty() {
                    flush(ctx, &run_id, &mut pending_rows, &mut delta, &mut last_flush, &events).await?;
                }
            }
        }
    }
    flush(ctx, &run_id, &mut pending_rows, &mut delta, &mut last_flush, &events).await?;
    while let Some(done) = workers.join_next().await {
        done.map_err(|e| MigrateError::Check(format!("worker: {e}")))??;
    }
    let remaining = queue.lock().map(|q| q.len() as u64).unwrap_or(0);
    let mut state = ctx.ledger.state(&run_id).await?.unwrap_or(RunState::Running);
    if state == RunState::Running && remaining == 0 {
        state = ctx.ledger.control(&run_id, Control::Finish, &ctx.now()).await?;
    }
    Ok(RunSummary {
        run: run_id.to_string(),
        state,
        copied: summary_copied,
        adopted,
        failed,
        remaining,
        bytes,
        retries,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn flush(
    ctx: &Context,
    run: &RunId,
    rows: &mut Vec<LedgerRow>,
    delta: &mut Delta,
    last: &mut Instant,
    events: &Events,
) -> Result<(), MigrateError> {
    delta.active_ms += last.elapsed().as_millis() as u64;
    *last = Instant::now();
    if !rows.is_empty() {
        ctx.ledger.put_rows(run, rows).await?;
        events(&Event::Flushed { rows: rows.len() });
    }
    ctx.ledger.add(run, delta, &ctx.now()).await?;
    rows.clear();
    *delta = Delta::default();
    Ok(())
}

async fn worker(
    ctx: &Context,
    run: &RunId,
    copier: &Copier,
    queue: &Mutex<VecDeque<LedgerRow>>,
    tx: &mpsc::Sender<(LedgerRow, Copy)>,
    seed: u64,
) -> Result<(), MigrateError> {
    loop {
        // Asked before every file: a pause stops new copies at once.
        match ctx.ledger.state(run).await? {
            Some(s) if s.takes_work() || s == RunState::Done => {}
            _ => return Ok(()),
        }
        let Some(row) = queue.lock().ok().and_then(|mut q| q.pop_front()) else { return Ok(()) };
        let copy = copier.copy(&row, seed).await;
        if tx.send((row, copy)).await.is_err() {
            return Ok(());
        }
    }
}
