//! The SQS side of the object-event consumers (indexer, thumbnailer): one span per record, its
//! object events parsed, partial batch failures reported.

use std::fmt::Display;
use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use matbakh_core::events::{ObjectEvent, parse_sqs_body};

/// Runs `handle` on the object events of each record and names the records to deliver again:
/// those `handle` failed, and those whose message is not an object event (after five tries they
/// wait in the DLQ, whose alarm says so: nothing is logged and dropped).
pub async fn for_each_record<F, Fut, E>(event: SqsEvent, mut handle: F) -> SqsBatchResponse
where
    F: FnMut(Vec<ObjectEvent>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("object_event", message_id = %id);
        let _entered = span.enter();
        let result = match parse_sqs_body(record.body.as_deref().unwrap_or_default()) {
            // Boxed: the handlers' futures are deep, and one box per record is nothing.
            Ok(events) => Box::pin(handle(events)).await.map_err(|e| e.to_string()),
            Err(e) => Err(format!("malformed message: {e}")),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "object event failed; it will be delivered again");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}
