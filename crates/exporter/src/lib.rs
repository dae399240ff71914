//! `exporter`: triggered by the export queue (SQS, `ReportBatchItemFailures`, DLQ after five
//! receives). Each message names one export job (`POST /v1/me/export` made it); the function
//! builds its archive `exports/{sub}/{exportId}.zip` (`matbakh_app::archive`: every stored file
//! of the user under `files/{fileId}/{name}`, byte for byte, and `metadata.json` describing
//! them, streamed from S3 into the archive's multipart upload, one 8 MiB part in memory). A
//! redelivered message of a finished job does nothing; of an unfinished one, starts the
//! archive again.
//!
//! Reads: the user's rows and objects. Writes: the archive, the job row, an audit record.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use matbakh_app::archive::{Archiver, Built};
use serde_json::Value;

/// Works on each record; names those to deliver again.
pub async fn handle(archiver: &Archiver, event: SqsEvent) -> SqsBatchResponse {
    matbakh_lambda::sqs::each_record(event, "export", |record| async move {
        let body: Option<Value> = record.body.as_deref().and_then(|b| serde_json::from_str(b).ok());
        let Some(export_id) = body.as_ref().and_then(|b| b["exportId"].as_str()) else {
            return Err("not an export message".to_owned());
        };
        match archiver.build(export_id).await.map_err(|e| e.to_string())? {
            Built::NoSuchJob => tracing::warn!(export = export_id, "no such export job (erased?); nothing to do"),
            Built::AlreadyReady => tracing::info!(export = export_id, "already built"),
            Built::Ready(_) => {}
        }
        Ok(())
    })
    .await
}
