//! `exporter`: triggered by the export queue (SQS, `ReportBatchItemFailures`, DLQ after
//! [`EXPORT_MAX_RECEIVES`] receives). Each message names one export job (`POST /v1/me/export`
//! made it); the function builds its archive `exports/{sub}/{exportId}.zip`
//! (`matbakh_app::archive`: every stored file of the user under `files/{fileId}/{name}`, byte for
//! byte, and `metadata.json` describing them, streamed from S3 into the archive's multipart
//! upload, one 8 MiB part in memory), stopping [`EXPORT_TIME_MARGIN`] before its own timeout. A
//! redelivered message of a finished job does nothing; of an unfinished one, starts the
//! archive again. A failed delivery comes back after [`EXPORT_RETRY_SECONDS`] (the message's
//! visibility, `EXPORT_QUEUE_URL`); the last one that fails marks the job FAILED (its owner may
//! ask again) before the message goes to the DLQ, whose alarm tells operations.
//!
//! Reads: the user's rows and objects. Writes: the archive, the job row, an audit record, the
//! visibility of a message to try again.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use matbakh_app::archive::{Archiver, Built};
use matbakh_app::ports::Redelivery;
pub use matbakh_core::exports::{EXPORT_MAX_RECEIVES, EXPORT_RETRY_SECONDS, EXPORT_TIME_MARGIN};
use serde_json::Value;
use time::OffsetDateTime;

/// Works on each record, building by `deadline`; names those to deliver again, each after its
/// [`EXPORT_RETRY_SECONDS`] (`redelivery`: the message's visibility).
pub async fn handle(
    archiver: &Archiver,
    redelivery: &dyn Redelivery,
    event: SqsEvent,
    deadline: Option<OffsetDateTime>,
) -> SqsBatchResponse {
    matbakh_lambda::sqs::each_record(event, "export", |record| async move {
        let body: Option<Value> = record.body.as_deref().and_then(|b| serde_json::from_str(b).ok());
        let Some(export_id) = body.as_ref().and_then(|b| b["exportId"].as_str()) else {
            return Err("not an export message".to_owned());
        };
        let built = match archiver.build(export_id, deadline).await {
            Ok(built) => built,
            Err(e) => {
                let why = e.to_string();
                let receives = matbakh_lambda::sqs::receives(&record);
                match EXPORT_RETRY_SECONDS.get(receives as usize - 1) {
                    Some(&seconds) => {
                        if let Some(receipt) = record.receipt_handle.as_deref()
                            && let Err(e) = redelivery.after(receipt, seconds).await
                        {
                            // The queue's own visibility timeout then sets the delay.
                            tracing::warn!(error = %e, "could not set the retry delay");
                        }
                    }
                    None => {
                        archiver
                            .give_up(export_id, &why)
                            .await
                            .map_err(|e| format!("{why}; marking it FAILED: {e}"))?;
                    }
                };
                return Err(why);
            }
        };
        match built {
            Built::NoSuchJob => tracing::warn!(export = export_id, "no such export job (erased?); nothing to do"),
            Built::AlreadyReady => tracing::info!(export = export_id, "already built"),
            Built::Failed => {
                tracing::warn!(export = export_id, "the job is FAILED (given up, or taken for dead); nothing built")
            }
            Built::Ready(_) => {}
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests;
