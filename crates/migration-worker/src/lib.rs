//! `migration-worker`: triggered by the migration queue (SQS, `ReportBatchItemFailures`,
//! DLQ after five receives). Each message is work of one run (a batch of files, some parts
//! of a large file, or a completion step, see [`migrate::work`]); it reads the legacy source,
//! writes the platform bucket and the run's ledger in the migration table, exactly as a local
//! `migrate run` does. While a message is worked on, its visibility is extended, so a long
//! copy is not delivered twice.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use matbakh_aws::queue::Queue;
use migrate::Context;
use tracing::Instrument;

/// How often a message being worked on has its visibility extended...
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(60);
/// ...and by how much (seconds from the extension).
pub const DEFAULT_EXTEND_SECONDS: i32 = 180;

pub struct Worker {
    pub ctx: Context,
    pub sdk: SdkConfig,
    pub queue: Queue,
    pub heartbeat: Duration,
    pub extend_seconds: i32,
}

impl Worker {
    /// From the function's environment: `MIGRATION_TABLE`, `MIGRATION_QUEUE_URL`, `TABLE_NAME`,
    /// and the key of the erase pseudonyms (`ERASE_PSEUDONYM_SECRET_ID`, read once): no erased
    /// user's file is copied.
    pub async fn from_env(sdk: &SdkConfig, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let required = |k: &str| lookup(k).filter(|v| !v.is_empty()).ok_or_else(|| format!("{k} is not set"));
        let table = required("MIGRATION_TABLE")?;
        let queue = required("MIGRATION_QUEUE_URL")?;
        let files = required("TABLE_NAME")?;
        let erasures = matbakh_aws::secrets::pseudonym_key(sdk, &required("ERASE_PSEUDONYM_SECRET_ID")?).await?;
        Ok(Worker {
            ctx: Context::new(sdk, &table, std::sync::Arc::new(matbakh_core::clock::SystemClock))
                .with_files(sdk, &files, erasures),
            sdk: sdk.clone(),
            queue: Queue::new(sdk, queue),
            heartbeat: DEFAULT_HEARTBEAT,
            extend_seconds: DEFAULT_EXTEND_SECONDS,
        })
    }
}

/// Works on each record; names those to deliver again: failures that may pass, and bodies
/// that are not work at all (after five receives they wait in the DLQ, whose alarm says so).
pub async fn handle(w: &Worker, event: SqsEvent, stop: Option<time::OffsetDateTime>) -> SqsBatchResponse {
    matbakh_lambda::sqs::each_record(event, "migration message", |record| async move {
        let id = record.message_id.clone().unwrap_or_default();
        let failed = |e: migrate::work::WorkFailure| format!("{e} (retryable: {})", e.retryable);
        let work = migrate::work::parse(record.body.as_deref().unwrap_or_default()).map_err(failed)?;
        let heartbeat = record.receipt_handle.clone().map(|receipt| {
            let (queue, every, by) = (w.queue.clone(), w.heartbeat, w.extend_seconds);
            tokio::spawn(
                async move {
                    let mut tick = tokio::time::interval(every);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        if let Err(e) = queue.extend(&receipt, by).await {
                            tracing::warn!(error = %e, "could not extend the message's visibility");
                        }
                    }
                }
                .in_current_span(),
            )
        });
        let seed = id.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let result = migrate::work::process(&w.ctx, &w.sdk, &w.queue, &work, seed, stop).await;
        if let Some(h) = heartbeat {
            h.abort();
        }
        let p = result.map_err(failed)?;
        tracing::info!(copied = p.copied, failed = p.failed, dropped = p.dropped, "message done");
        use matbakh_lambda::metrics::{self, Unit};
        metrics::emit(
            "migrate",
            &[("FilesMigrated", p.copied as u64, Unit::Count), ("FilesFailedToMigrate", p.failed as u64, Unit::Count)],
        );
        Ok::<(), String>(())
    })
    .await
}
