//! The SQS side of every queue-fed function (indexer, thumbnailer, exporter, migration worker):
//! each record in its own span (attached with `Instrument`, so concurrent work never logs under
//! the wrong message), partial batch failures reported, nothing logged and dropped.

use std::fmt::Display;
use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use matbakh_core::events::{ObjectEvent, parse_sqs_body};
use time::OffsetDateTime;
use tracing::Instrument;

/// What a batch leaves of its invocation's time to answer: no record is started, and none
/// runs on, later than this before Lambda's timeout ([`crate::stop_at`]).
pub const RECORD_TIME_MARGIN: time::Duration = time::Duration::seconds(10);

/// How many times SQS has delivered `record`, this one included (1 when SQS did not say).
pub fn receives(record: &SqsMessage) -> u32 {
    record.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1).max(1)
}

/// What is left until `stop` (zero once it passed); `None` without one.
pub fn time_left(stop: Option<OffsetDateTime>) -> Option<std::time::Duration> {
    stop.map(|at| std::time::Duration::try_from(at - OffsetDateTime::now_utc()).unwrap_or_default())
}

/// `work`'s output, or `None` if `left` (when given) ran out first: the work is dropped then.
pub async fn within<T>(left: Option<std::time::Duration>, work: impl Future<Output = T>) -> Option<T> {
    match left {
        None => Some(work.await),
        Some(left) => tokio::time::timeout(left, work).await.ok(),
    }
}

/// Runs `handle` on each record, in a span named `kind` that carries its message id, and names
/// the records to deliver again: those `handle` failed. After `maxReceiveCount` tries a record
/// waits in the queue's DLQ, whose alarm says so.
pub async fn each_record<F, Fut, E>(event: SqsEvent, kind: &'static str, handle: F) -> SqsBatchResponse
where
    F: FnMut(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    each_record_until(event, kind, None, handle).await
}

/// [`each_record`] by `stop` (the invocation's deadline less a margin): a record not started
/// by then is not started, and one still running then is cut short; both are delivered again.
/// The batch answers in time, so the records it did finish are not delivered again as well
/// (review 27: Lambda's timeout failed the whole batch, without a word on why). Not for work
/// that a dropped future does not stop (a render on a blocking thread would go on beside the
/// next invocation): the thumbnailer keeps its own time (`thumbnailer::handle_until`).
pub async fn each_record_until<F, Fut, E>(
    event: SqsEvent,
    kind: &'static str,
    stop: Option<OffsetDateTime>,
    mut handle: F,
) -> SqsBatchResponse
where
    F: FnMut(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("sqs_record", kind, message_id = %id);
        let left = time_left(stop);
        let result = match left {
            Some(left) if left.is_zero() => Err("not started: the invocation is out of time".to_owned()),
            left => {
                // Boxed: the handlers' futures are deep, and one box per record is nothing.
                let work = Box::pin(handle(record)).instrument(span.clone());
                match within(left, work).await {
                    Some(done) => done.map_err(|e| e.to_string()),
                    None => Err("cut short at the invocation's time limit".to_owned()),
                }
            }
        };
        if let Err(e) = result {
            span.in_scope(|| tracing::error!(error = %e, "{kind} failed; it will be delivered again"));
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// [`each_record`] for S3 object events (the indexer, the thumbnailer), each handed over with
/// its message's [`receives`]: a message that is not one fails like any other record.
pub async fn for_each_record<F, Fut, E>(event: SqsEvent, handle: F) -> SqsBatchResponse
where
    F: FnMut(Vec<ObjectEvent>, u32) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    for_each_record_until(event, None, handle).await
}

/// [`for_each_record`] by `stop` (see [`each_record_until`]).
pub async fn for_each_record_until<F, Fut, E>(
    event: SqsEvent,
    stop: Option<OffsetDateTime>,
    mut handle: F,
) -> SqsBatchResponse
where
    F: FnMut(Vec<ObjectEvent>, u32) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    each_record_until(event, "object event", stop, |record| {
        let parsed = parse_sqs_body(record.body.as_deref().unwrap_or_default());
        let work = parsed.map(|events| handle(events, receives(&record)));
        async move {
            match work {
                Ok(fut) => fut.await.map_err(|e| e.to_string()),
                Err(e) => Err(format!("malformed message: {e}")),
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ids: &[&str]) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = ids
            .iter()
            .map(|id| {
                let mut m = SqsMessage::default();
                m.message_id = Some((*id).to_owned());
                m
            })
            .collect();
        event
    }

    fn failed(r: &SqsBatchResponse) -> Vec<&str> {
        r.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect()
    }

    /// Review 27: a record that outran the invocation had Lambda fail the whole batch; now it
    /// is cut short at `stop`, the ones after it are not started, and the batch answers with
    /// exactly those to deliver again.
    #[tokio::test]
    async fn records_past_the_stop_are_cut_short_or_not_started_and_the_rest_count() {
        let stop = OffsetDateTime::now_utc() + time::Duration::milliseconds(100);
        let mut started = Vec::new();
        let answer = each_record_until(batch(&["done", "stuck", "late"]), "test", Some(stop), |m| {
            let id = m.message_id.unwrap_or_default();
            started.push(id.clone());
            async move {
                if id == "stuck" {
                    std::future::pending::<()>().await;
                }
                Ok::<_, String>(())
            }
        })
        .await;
        assert_eq!(failed(&answer), ["stuck", "late"]);
        assert_eq!(started, ["done", "stuck"], "the late one was never started");

        // No stop: every record runs, and only failures are named.
        let answer = each_record(batch(&["a", "b"]), "test", |m| async move {
            if m.message_id.as_deref() == Some("b") { Err("refused") } else { Ok(()) }
        })
        .await;
        assert_eq!(failed(&answer), ["b"]);
    }
}
