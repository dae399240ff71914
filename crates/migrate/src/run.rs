//! `migrate run`: local workers copy the run's pending files. Each worker asks the run's
//! state before it takes a file, so a pause or an abort stops new copies at once while the
//! ones in flight finish; results reach the ledger in batches of 25 rows (or every second)
//! with the run's counters. A rerun starts where the ledger says: copied rows are skipped
//! without a request, and a copy a killed process made but never recorded is recognised by
//! its conditional write and adopted, never written twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use matbakh_aws::ledger::{Delta, LedgerRow};
use matbakh_core::migration::backoff::{Backoff, DEFAULT_BACKOFF};
use matbakh_core::migration::{Control, RowStatus, RunId, RunState};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::copy::{Copier, Copy, DEFAULT_BUFFER_BYTES, Outcome, Pace, Throttle, updated_row};
use crate::plan::CopySettings;
use crate::rows::{Rows, Tally, is_todo};
use crate::source::Source;
use crate::{Context, MigrateError};

/// Ledger rows written per flush (one BatchWriteItem).
pub const FLUSH_ROWS: usize = 25;
/// Rows read ahead of the workers (a page of the ledger is about 2,000).
pub const QUEUE_AHEAD: usize = 1024;
/// Results waiting for the ledger writer before the copies wait for it.
pub const LEDGER_AHEAD: usize = 1024;
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
    /// How old the run state a worker acts on may be: a pause or abort stops new copies
    /// within this time (0: the state is read before every file).
    pub state_refresh: Duration,
}

/// A pause or an abort reaches local workers within this time. Reading the state before
/// every file costs one DynamoDB read per file, which on 5,000 small files is most of a run.
pub const DEFAULT_STATE_REFRESH: Duration = Duration::from_millis(500);

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            transfers: matbakh_core::migration::DEFAULT_TRANSFERS,
            bandwidth: None,
            request_rate: None,
            backoff: DEFAULT_BACKOFF,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            seed: 0x006d_6174_6261_6b68,
            state_refresh: DEFAULT_STATE_REFRESH,
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

/// Whether the run's counters account for every file as copied or failed for good (counters
/// are recomputed from the rows when a session starts and complete when it finishes).
fn settled(record: &matbakh_aws::ledger::RunRecord) -> bool {
    let c = &record.counters;
    let retryable: i64 = c.failures.iter().filter(|(r, _)| r.retryable()).map(|(_, n)| *n).sum();
    c.copied.files + c.failed_files == record.total_files && retryable == 0
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
    let settings = CopySettings::of(&record)?;
    // A finished run whose counters account for every file has nothing left: its rows are not
    // read again (each was recorded once S3 had checked its bytes against the manifest).
    if record.state == RunState::Done && settled(&record) {
        events(&Event::Started {
            run: run_id.to_string(),
            todo_files: 0,
            todo_bytes: 0,
            done_files: record.counters.copied.files,
        });
        return Ok(RunSummary {
            run: run_id.to_string(),
            state: RunState::Done,
            copied: 0,
            adopted: 0,
            failed: 0,
            remaining: 0,
            bytes: 0,
            retries: 0,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let (target, _) = ctx.target(&record.target)?;
    // Two passes over the rows, a page at a time: the first sets the counters and sizes the
    // work, the second feeds the workers (so a run of any size holds only a page in memory).
    let tally = Tally::take(ctx, &target, &record).await?;
    events(&Event::Started {
        run: run_id.to_string(),
        todo_files: tally.todo_files,
        todo_bytes: tally.todo_bytes,
        done_files: tally.done_files,
    });
    let (todo_tx, todo_rx) = mpsc::channel::<LedgerRow>(QUEUE_AHEAD);
    let producer = {
        let (ctx, mut rows) = (ctx.clone(), Rows::open(ctx, &target, &record).await?);
        tokio::spawn(async move {
            while let Some(page) = rows.next_page(&ctx).await? {
                for row in page.into_iter().filter(is_todo) {
                    if todo_tx.send(row).await.is_err() {
                        return Ok::<bool, MigrateError>(false);
                    }
                }
            }
            Ok(true)
        })
    };

    let pace = Pace {
        backoff: opts.backoff,
        throttle: Arc::new(Throttle::new(opts.bandwidth, opts.request_rate)),
        buffer_bytes: opts.buffer_bytes,
    };
    let mut copier = Copier::new(target, source, run_id.clone(), settings, pace);
    copier.files = ctx.files.clone();
    let queue = Arc::new(tokio::sync::Mutex::new(todo_rx));
    let state = StateCache::start(ctx, &run_id, opts.state_refresh).await?;
    let (tx, mut rx) = mpsc::channel::<(LedgerRow, Copy)>(opts.transfers.max(1) * 2);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..opts.transfers.max(1) {
        let worker = Worker {
            ctx: ctx.clone(),
            copier: copier.clone(),
            queue: queue.clone(),
            results: tx.clone(),
            seed: opts.seed,
            state: state.clone(),
        };
        workers.spawn(worker.run());
    }
    drop(tx);

    let (mut summary_copied, mut adopted, mut failed, mut bytes, mut retries) = (0u64, 0u64, 0u64, 0u64, 0u64);
    // The ledger is written by its own task, so results wait for DynamoDB only when it falls
    // [`LEDGER_AHEAD`] rows behind (then the copies slow down to its pace, memory stays put).
    let (ledger_tx, ledger_rx) = mpsc::channel::<(LedgerRow, Delta)>(LEDGER_AHEAD);
    let recorder = tokio::spawn(write_ledger(ctx.clone(), run_id.clone(), ledger_rx, events.clone()));
    while let Some((before, copy)) = rx.recv().await {
        retries += u64::from(copy.retries);
        match &copy.outcome {
            Outcome::Copied { adopted: a, .. } => {
                summary_copied += 1;
                bytes += before.entry.size;
                adopted += u64::from(*a);
                events(&Event::Copied {
                    seq: before.entry.seq,
                    key: before.entry.key.clone(),
                    size: before.entry.size,
                    adopted: *a,
                    attempts: copy.attempts,
                });
            }
            Outcome::Failed { reason, message } => {
                failed += 1;
                events(&Event::Failed {
                    seq: before.entry.seq,
                    source: before.entry.source.clone(),
                    reason: reason.to_string(),
                    message: message.clone(),
                });
            }
        }
        let delta = delta_of(&before, &copy);
        let _ = ledger_tx.send((updated_row(&before, &copy, &ctx.now()), delta)).await;
    }
    drop(ledger_tx);
    recorder.await.map_err(|e| MigrateError::Check(format!("ledger task: {e}")))??;
    while let Some(done) = workers.join_next().await {
        done.map_err(|e| MigrateError::Check(format!("worker: {e}")))??;
    }
    // Rows the workers did not take: those still queued, plus, when the feeder could not hand
    // over everything (a pause or abort stopped the workers), the ones it never read.
    let queued = queue.lock().await.len() as u64;
    drop(queue);
    let fed_all = producer.await.map_err(|e| MigrateError::Check(format!("row feeder: {e}")))??;
    let remaining =
        if fed_all { queued } else { tally.todo_files.saturating_sub(summary_copied + failed).max(queued + 1) };
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

/// Ledger writes in flight at once (each one BatchWriteItem of up to 25 rows).
const LEDGER_WRITES_IN_FLIGHT: usize = 4;

/// Writes result rows 25 at a time (several batches in flight) and adds the counters once per
/// [`FLUSH_INTERVAL`], until the results end; then writes what is left.
async fn write_ledger(
    ctx: Context,
    run: RunId,
    mut rx: mpsc::Receiver<(LedgerRow, Delta)>,
    events: Events,
) -> Result<(), MigrateError> {
    let mut rows: Vec<LedgerRow> = Vec::new();
    let mut delta = Delta::default();
    let mut last = Instant::now();
    let mut writes: tokio::task::JoinSet<Result<usize, MigrateError>> = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    let write = |writes: &mut tokio::task::JoinSet<_>, batch: Vec<LedgerRow>| {
        let (ctx, run) = (ctx.clone(), run.clone());
        writes.spawn(async move {
            let batch = crate::erased::kept(&ctx, batch);
            ctx.ledger.put_rows(&run, &batch).await?;
            Ok(batch.len())
        });
    };
    let mut open = true;
    while open || !rows.is_empty() {
        tokio::select! {
            got = rx.recv(), if open => match got {
                Some((row, d)) => {
                    rows.push(row);
                    delta.merge(d);
                }
                None => open = false,
            },
            _ = tick.tick() => {
                delta.active_ms += last.elapsed().as_millis() as u64;
                last = Instant::now();
                ctx.ledger.add(&run, &delta, &ctx.now()).await?;
                delta = Delta::default();
            }
        }
        while rows.len() >= FLUSH_ROWS || (!open && !rows.is_empty()) {
            while writes.len() >= LEDGER_WRITES_IN_FLIGHT {
                if let Some(done) = writes.join_next().await {
                    let n = done.map_err(|e| MigrateError::Check(format!("ledger write: {e}")))??;
                    events(&Event::Flushed { rows: n });
                }
            }
            let batch: Vec<LedgerRow> = rows.drain(..rows.len().min(FLUSH_ROWS)).collect();
            write(&mut writes, batch);
        }
    }
    while let Some(done) = writes.join_next().await {
        let n = done.map_err(|e| MigrateError::Check(format!("ledger write: {e}")))??;
        events(&Event::Flushed { rows: n });
    }
    delta.active_ms += last.elapsed().as_millis() as u64;
    ctx.ledger.add(&run, &delta, &ctx.now()).await?;
    Ok(())
}

/// The run's state as the workers of one process share it. With a refresh period, a
/// background task reads it that often and workers never wait for DynamoDB; with zero, every
/// file reads it (a pause then stops the very next file).
struct StateCache {
    refresh: Duration,
    latest: std::sync::RwLock<Option<RunState>>,
}

impl StateCache {
    async fn start(ctx: &Context, run: &RunId, refresh: Duration) -> Result<Arc<Self>, MigrateError> {
        let cache = Arc::new(StateCache { refresh, latest: std::sync::RwLock::new(ctx.ledger.state(run).await?) });
        if !refresh.is_zero() {
            let (weak, ctx, run) = (Arc::downgrade(&cache), ctx.clone(), run.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(refresh);
                loop {
                    tick.tick().await;
                    let Some(cache) = weak.upgrade() else { return };
                    // A failed read keeps the last state; the next tick tries again.
                    if let Ok(state) = ctx.ledger.state(&run).await
                        && let Ok(mut latest) = cache.latest.write()
                    {
                        *latest = state;
                    }
                }
            });
        }
        Ok(cache)
    }

    async fn get(&self, ctx: &Context, run: &RunId) -> Result<Option<RunState>, MigrateError> {
        if self.refresh.is_zero() {
            return Ok(ctx.ledger.state(run).await?);
        }
        Ok(self.latest.read().map(|s| *s).unwrap_or(None))
    }
}

/// One of a run's copy workers: takes rows from the shared queue while the run takes work,
/// and sends each copy's result on.
struct Worker {
    ctx: Context,
    copier: Copier,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<LedgerRow>>>,
    results: mpsc::Sender<(LedgerRow, Copy)>,
    seed: u64,
    state: Arc<StateCache>,
}

impl Worker {
    async fn run(self) -> Result<(), MigrateError> {
        loop {
            // Asked before every file (through the shared cache): a pause stops new copies.
            match self.state.get(&self.ctx, &self.copier.run).await? {
                Some(s) if s.takes_work() || s == RunState::Done => {}
                _ => return Ok(()),
            }
            let Some(row) = self.queue.lock().await.recv().await else { return Ok(()) };
            let copy = self.copier.copy(&row, self.seed).await;
            let (target, run) = (&self.copier.target, &self.copier.run);
            let copy = crate::rollback::undo_if_rolled_back(&self.ctx, target, &row, copy, run).await?;
            if self.results.send((row, copy)).await.is_err() {
                return Ok(());
            }
        }
    }
}
