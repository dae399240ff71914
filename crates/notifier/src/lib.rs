//! `notifier`: triggered by two DynamoDB streams (`NEW_AND_OLD_IMAGES`): the files table's,
//! where every user-visible change is a write of a file row or an export job by whichever
//! function made it (and an erase closes the account's usage item: `account.erased`, after
//! which the user's sockets are closed), and the migration table's, filtered to run items and
//! batched over [`PROGRESS_INTERVAL_MS`] so that a run's many counter updates in that window
//! make one message. Each record becomes live messages ([`matbakh_app::live`]): pushed to the owner's
//! open sockets through the WebSocket API's `@connections` (a socket found gone is removed),
//! queued for the webhooks (`WEBHOOK_QUEUE_URL`, where configured); a run's progress goes to the
//! administrators' sockets only.
//!
//! Each user's records are handled in order, different users' at once ([`CONCURRENT_LANES`]).
//! The earliest that fails is reported (`batchItemFailures`) and the stream hands it, and every
//! record after it, over again, so webhooks are at least once with stable ids; after the event
//! source mapping's retries a record goes to its DLQ.
//!
//! A file row's change that leaves a large public original (over 1 GiB, copied in parts) public
//! and READY without a current copy also asks the thumbnailer for that copy
//! (`{"copyPublicOriginal": ...}` to its queue, `PUBLIC_COPY_QUEUE_URL`): one place, after
//! every writer (made public, processed, restored, renamed), instead of each of them.
//!
//! Reads the records' images, the connections table and whether a public copy is there; writes
//! pushes, the webhook queue, the thumbnailer queue, removals of gone sockets and EMF metrics
//! (`LiveMessages`, `LivePushes`, `LivePushesFailed`, `LiveSocketsGone`, `WebhooksQueued`).

pub mod adapters;

use std::collections::{BTreeMap, HashMap};

use futures_util::StreamExt;

use matbakh_app::live::{Change, Live, Told, for_admins};
use matbakh_aws::stream::{Row, StreamRecord};
use matbakh_core::live::{Kind, PROGRESS_INTERVAL_MS};
use matbakh_lambda::metrics::{Unit, emit};
use serde_json::{Value, json};
use tracing::Instrument;

/// Why a record was not told.
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// The record is not one we can read (a row of another shape): retrying will not help;
    /// it ends in the mapping's DLQ.
    #[error("malformed record: {0}")]
    Malformed(String),
    #[error(transparent)]
    Telling(#[from] matbakh_app::Error),
}

impl NotifierError {
    pub fn retryable(&self) -> bool {
        matches!(self, NotifierError::Telling(matbakh_app::Error::Port(p)) if p.is_retryable())
    }
}

/// One record of a batch, read.
struct Read {
    record: StreamRecord,
    row: Row,
}

fn read(raw: &Value) -> Result<Read, NotifierError> {
    let record = StreamRecord::parse(raw).map_err(|e| NotifierError::Malformed(e.to_string()))?;
    let row = record.row().map_err(|e| NotifierError::Malformed(e.to_string()))?;
    Ok(Read { record, row })
}

/// Tells one record's news, then asks the thumbnailer for the copy of a large public original
/// a file row's change left without one (`Delivery::ask_for_large_copy`): after telling, so an
/// ask that fails keeps no message from the sockets and webhooks (its retry tells them again,
/// with the same ids; one refused for good is dropped, told).
async fn handle_record(live: &Live, read: &Read) -> Result<Told, NotifierError> {
    let told = tell(live, read).await?;
    if let Row::Change(Change::File { old, new }) = &read.row {
        let (old, new) = (old.as_ref().map(|d| &d.record), new.as_ref().map(|d| &d.record));
        live.delivery.ask_for_large_copy(old, new).await?;
    }
    Ok(told)
}

/// Tells one record's news.
async fn tell(live: &Live, read: &Read) -> Result<Told, NotifierError> {
    let Read { record, row } = read;
    let messages = match row {
        Row::Change(change) => live.messages(&record.id, &record.at, change).await?,
        Row::Run(Some(run)) => {
            let status = serde_json::to_value(migrate::control::status_of(run))
                .map_err(|e| NotifierError::Malformed(e.to_string()))?;
            vec![for_admins(Kind::MigrationProgress, &record.id, &record.at, status)]
        }
        Row::Run(None) | Row::Other => vec![],
    };
    if messages.is_empty() {
        return Ok(Told::default());
    }
    let kinds: Vec<&str> = messages.iter().map(|(_, m)| m.kind.as_str()).collect();
    let told = live.tell(&messages).await?;
    tracing::info!(
        ?kinds,
        pushed = told.pushed,
        gone = told.gone,
        failed = told.failed,
        closed = told.closed,
        webhooks = told.webhooks,
        "told"
    );
    Ok(told)
}

/// How many users' (or runs') records are told at once; each one's in order.
pub const CONCURRENT_LANES: usize = 16;

/// Whose records must be told in order: a file's or an export's owner, a run; anything else
/// is on its own.
fn lane(i: usize, r: &Result<Read, NotifierError>) -> String {
    match r.as_ref().map(|r| &r.row) {
        Ok(Row::Change(change)) => match change.owner() {
            Some(owner) => format!("user:{owner}"),
            None => format!("record:{i}"),
        },
        Ok(Row::Run(Some(run))) => format!("run:{}", run.id),
        _ => format!("record:{i}"),
    }
}

/// A stream batch (the Lambda event). Each user's records (and each run's) are told in order,
/// different users' at once ([`CONCURRENT_LANES`]); a user's records stop at the first that
/// fails in a way that may pass. The earliest such record is reported with its sequence number:
/// the stream hands it, and every record after it, over again (some then told twice, with the
/// same ids). One that fails for good is left out (logged, `StreamRecordsDropped`). Of a
/// migration run's updates in the batch only the last is told (at most one progress message
/// per run and batching window).
pub async fn handle(live: &Live, event: Value) -> Value {
    let raw = event["Records"].as_array().cloned().unwrap_or_default();
    let reads: Vec<Result<Read, NotifierError>> = raw.iter().map(read).collect();
    let mut last_of_run = HashMap::new();
    let mut lanes: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in reads.iter().enumerate() {
        if let Ok(Read { row: Row::Run(Some(run)), .. }) = r {
            last_of_run.insert(run.id.to_string(), i);
        }
        lanes.entry(lane(i, r)).or_default().push(i);
    }
    let one = |i: usize| {
        let id = raw[i]["eventID"].as_str().unwrap_or_default();
        let span = tracing::info_span!("stream_record", event_id = %id);
        let (r, last_of_run) = (&reads[i], &last_of_run);
        async move {
            let outcome = async {
                let read = r.as_ref().map_err(|e| NotifierError::Malformed(e.to_string()))?;
                if let Row::Run(Some(run)) = &read.row
                    && last_of_run.get(run.id.as_str()) != Some(&i)
                {
                    return Ok(Told::default());
                }
                handle_record(live, read).await
            }
            .instrument(span.clone())
            .await;
            if let Err(e) = &outcome {
                let then = if e.retryable() { "the stream hands it over again" } else { "left out for good" };
                span.in_scope(|| tracing::error!(error = %e, retryable = e.retryable(), "not told, or its copy not asked for; {then}"));
            }
            outcome
        }
    };
    // A record that cannot be told however often it is tried (malformed, or refused for good)
    // is left out, logged with its event id and counted (`StreamRecordsDropped`, which
    // NotifierDroppedRecordsAlarm watches): reported, it held its shard back for every retry
    // and had the records after it told again each time (review 27). One that may pass is
    // reported, and the stream hands it and what follows it over again.
    let results: Vec<(Told, Option<usize>, u64)> = futures_util::stream::iter(lanes.into_values().map(|records| {
        let one = &one;
        async move {
            let (mut told, mut dropped) = (Told::default(), 0);
            for i in records {
                match one(i).await {
                    Ok(t) => told += t,
                    Err(e) if !e.retryable() => dropped += 1,
                    Err(_) => return (told, Some(i), dropped),
                }
            }
            (told, None, dropped)
        }
    }))
    .buffer_unordered(CONCURRENT_LANES)
    .collect()
    .await;
    let (mut told, mut dropped) = (Told::default(), 0);
    for (t, _, d) in &results {
        told += *t;
        dropped += d;
    }
    let failures: Vec<Value> = results
        .iter()
        .filter_map(|(_, failed, _)| *failed)
        .min()
        .map(|i| json!({ "itemIdentifier": raw[i]["dynamodb"]["SequenceNumber"].as_str().unwrap_or_default() }))
        .into_iter()
        .collect();
    emit(
        "notify",
        &[
            ("LiveMessages", told.messages as u64, Unit::Count),
            ("LivePushes", told.pushed as u64, Unit::Count),
            ("LivePushesFailed", told.failed as u64, Unit::Count),
            ("LiveSocketsGone", told.gone as u64, Unit::Count),
            ("WebhooksQueued", told.webhooks as u64, Unit::Count),
            ("StreamRecordsDropped", dropped, Unit::Count),
        ],
    );
    json!({ "batchItemFailures": failures })
}

/// The batching window of the migration table's stream, in whole seconds (the template's
/// `MaximumBatchingWindowInSeconds`, checked against [`PROGRESS_INTERVAL_MS`] by its tests).
pub const PROGRESS_WINDOW_SECONDS: u64 = PROGRESS_INTERVAL_MS / 1000;

#[cfg(test)]
mod tests;
