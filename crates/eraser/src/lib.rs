//! `eraser`: an erase's second pass (`matbakh_core::erasure`, DECISIONS 17).
//!
//! Triggered by the erase-again queue (SQS, `ReportBatchItemFailures`, DLQ after five
//! receives), where each erase (`DELETE /v1/me`, the `account` function) leaves one message
//! naming the user, due an hour later. A message not yet due is sent on with the rest of its
//! wait (SQS delays one at most 15 minutes); a due one runs the same erase again
//! ([`matbakh_app::erase::Erasure::erase_again`]): whatever landed under the user's keys after
//! the first pass read them (an upload through a URL handed out before the erase, a migration
//! copy that checked the erased mark just before it was written) goes, with its rows, variants,
//! replica copies and cached copies; the migration is told again; the pass is recorded under
//! the user's pseudonym. It asks for no third pass.
//!
//! Reads and deletes what the `account` function's erase does (the same managed policy); sends
//! to its own queue.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use matbakh_app::erase::{Again, Erasure};
use matbakh_core::erasure::EraseAgain;
use matbakh_lambda::metrics::{self, Unit};

/// Works on each record; names those to deliver again.
pub async fn handle(erasure: &Erasure, event: SqsEvent) -> SqsBatchResponse {
    matbakh_lambda::sqs::each_record(event, "erase again", |record| async move {
        let job = EraseAgain::parse(record.body.as_deref().unwrap_or_default())?;
        match erasure.erase_again(&job).await.map_err(|e| e.to_string())? {
            Again::Waiting(wait) => tracing::info!(seconds = wait.as_secs(), "not due yet; sent on"),
            Again::Erased(erased) => {
                let late = u64::try_from(erased.files + erased.object_versions).unwrap_or(u64::MAX);
                metrics::emit(
                    "erase_again",
                    &[("ErasedAgain", 1, Unit::Count), ("LateObjectsErased", late, Unit::Count)],
                );
                tracing::info!(files = erased.files, objects = erased.object_versions, "second pass done");
            }
        }
        Ok::<_, String>(())
    })
    .await
}
