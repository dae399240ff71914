//! `migration-worker`: triggered by the migration queue (SQS, `ReportBatchItemFailures`,
//! DLQ after five receives). Each message is work of one run (a batch of files, some parts
//! of a large file, or a completion step, see [`migrate::work`]); it reads the legacy source,
//! writes the platform bucket and the run's ledger in the migration table, exactly as a local
//! `migrate run` does. While a message is worked on, its visibility is extended, so a long
//! copy is not delivered twice.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use matbakh_aws::queue::Queue;
use migrate::Context;

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
    /// From the function's environment: `MIGRATION_TABLE`, `MIGRATION_QUEUE_URL`, `TABLE_NAME`.
    pub fn from_env(sdk: &SdkConfig, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let required = |k: &str| lookup(k).filter(|v| !v.is_empty()).ok_or_else(|| format!("{k} is not set"));
        let table = required("MIGRATION_TABLE")?;
        let queue = required("MIGRATION_QUEUE_URL")?;
        let files = required("TABLE_NAME")?;
        Ok(Worker {
            ctx: Context::new(sdk, &table, std::sync::Arc::new(matbakh_core::clock::SystemClock))
                .with_files(sdk, &files),
            sdk: sdk.clone(),
            queue: Queue::new(sdk, queue),
            heartbeat: DEFAULT_HEARTBEAT,
            extend_seconds: DEFAULT_EXTEND_SECONDS,
        })
    }
}

/// Works on each record; names those to deliver again: failures that may pass, and bodies
/// that are not work at all (after five receives they wait in the DLQ, whose alarm says so).
pub async fn handle(w: &Worker, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("migration_message", message_id = %id);
        let _entered = span.enter();
        let result = match migrate::work::parse(record.body.as_deref().unwrap_or_default()) {
            Ok(work) => {
                let heartbeat = record.receipt_handle.clone().map(|receipt| {
                    let (queue, every, by) = (w.queue.clone(), w.heartbeat, w.extend_seconds);
                    tokio::spawn(async move {
                        let mut tick = tokio::time::interval(every);
                        tick.tick().await;
                        loop {
                            tick.tick().await;
                            if let Err(e) = queue.extend(&receipt, by).await {
                                tracing::warn!(error = %e, "could not extend the message's visibility");
                            }
                        }
                    })
                });
                let seed = id.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
                let result = Box::pin(migrate::work::process(&w.ctx, &w.sdk, &w.queue, &work, seed)).await;
                if let Some(h) = heartbeat {
                    h.abort();
                }
                result
                    .map(|p| tracing::info!(copied = p.copied, failed = p.failed, dropped = p.dropped, "message done"))
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, retryable = e.retryable, "migration message failed; it will be delivered again");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}
