//! The SQS side of every queue-fed function (indexer, thumbnailer, exporter, migration worker):
//! each record in its own span (attached with `Instrument`, so concurrent work never logs under
//! the wrong message), partial batch failures reported, nothing logged and dropped.

use std::fmt::Display;
use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use matbakh_core::events::{ObjectEvent, parse_sqs_body};
use tracing::Instrument;

/// Runs `handle` on each record, in a span named `kind` that carries its message id, and names
/// the records to deliver again: those `handle` failed. After `maxReceiveCount` tries a record
/// waits in the queue's DLQ, whose alarm says so.
pub async fn each_record<F, Fut, E>(event: SqsEvent, kind: &'static str, mut handle: F) -> SqsBatchResponse
where
    F: FnMut(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("sqs_record", kind, message_id = %id);
        // Boxed: the handlers' futures are deep, and one box per record is nothing.
        let result = Box::pin(handle(record)).instrument(span.clone()).await;
        if let Err(e) = result {
            span.in_scope(|| tracing::error!(error = %e, "{kind} failed; it will be delivered again"));
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// [`each_record`] for S3 object events (the indexer, the thumbnailer): a message that is not
/// one fails like any other record.
pub async fn for_each_record<F, Fut, E>(event: SqsEvent, mut handle: F) -> SqsBatchResponse
where
    F: FnMut(Vec<ObjectEvent>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    each_record(event, "object event", |record| {
        let parsed = parse_sqs_body(record.body.as_deref().unwrap_or_default());
        let work = parsed.map(&mut handle);
        async move {
            match work {
                Ok(fut) => fut.await.map_err(|e| e.to_string()),
                Err(e) => Err(format!("malformed message: {e}")),
            }
        }
    })
    .await
}
