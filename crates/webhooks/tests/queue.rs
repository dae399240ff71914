//! The webhooks function's handler against a real queue (moto's SQS, with a redrive policy)
//! and a real HTTP receiver in this process: what Lambda's event source mapping does (receive,
//! invoke, delete what succeeded) done by the test. Run through `scripts/test`.

use std::sync::{Arc, Mutex};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use axum::http::{HeaderMap, StatusCode};
use matbakh_core::clock::SystemClock;
use matbakh_core::webhooks::{WebhookSecret, verify};
use webhooks::adapters::HttpPost;
use webhooks::{Deliverer, Endpoint};

struct Queues {
    sqs: aws_sdk_sqs::Client,
    main: String,
    dlq: String,
}

/// A queue whose messages go to a DLQ after three receives.
async fn queues(sdk: &aws_config::SdkConfig) -> Queues {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let name = testkit::unique_user("webhooks");
    let dlq = sqs.create_queue().queue_name(format!("{name}-dlq")).send().await.unwrap().queue_url.unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let main = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"3"}}"#),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    Queues { sqs, main, dlq }
}

/// Receives what is visible (long polling), with each message's receive count.
async fn receive(q: &Queues, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let out = q
        .sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap();
    out.messages.unwrap_or_default()
}

/// One round of the event source mapping: receive, invoke, delete what succeeded. How many
/// records it handed over.
async fn round(q: &Queues, d: &Deliverer) -> usize {
    let got = receive(q, &q.main).await;
    let response = webhooks::handle(d, testkit::as_delivered(&got)).await;
    for m in &got {
        let failed = response.batch_item_failures.iter().any(|f| Some(f.item_identifier.as_str()) == m.message_id());
        if !failed {
            q.sqs.delete_message().queue_url(&q.main).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
    }
    got.len()
}

fn secret() -> WebhookSecret {
    WebhookSecret::from_bytes(&[5; 32]).unwrap()
}

/// What a receiver got: each delivery's id and whether its signature verified.
type Seen = Arc<Mutex<Vec<(String, Result<(), String>)>>>;

/// A receiver answering 500 to the first `failures` deliveries, then verifying and taking them.
async fn receiver(failures: usize) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let log = log.clone();
            async move {
                let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                let checked = verify(
                    &[secret()],
                    h("webhook-id").as_deref(),
                    h("webhook-timestamp").as_deref(),
                    h("webhook-signature").as_deref(),
                    &body,
                    now,
                )
                .map_err(|e| e.to_string());
                let mut log = log.lock().unwrap();
                log.push((h("webhook-id").unwrap_or_default(), checked.clone()));
                if log.len() <= failures || checked.is_err() {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn deliverer(sdk: &aws_config::SdkConfig, q: &Queues, url: String) -> Deliverer {
    let endpoint = Endpoint { url, secrets: vec![secret()] };
    let retry = matbakh_aws::queue::Queue::new(sdk, q.main.clone());
    // Delays of a second: the backoff is the deliverer's unit tests' to show.
    Deliverer::new(endpoint, Arc::new(HttpPost::new().unwrap()), Arc::new(retry), Arc::new(SystemClock))
        .with_retry_delays(vec![1])
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn an_endpoint_answering_500_twice_gets_the_delivery_on_the_third_try() {
    let sdk = testkit::moto_sdk().await;
    let q = queues(&sdk).await;
    let (url, seen) = receiver(2).await;
    let d = deliverer(&sdk, &q, url);
    let id = testkit::unique_user("msg");
    let body = format!(r#"{{"id":"{id}","type":"file.ready","version":1,"data":{{}}}}"#);
    q.sqs.send_message().queue_url(&q.main).message_body(&body).send().await.unwrap();
    for _ in 0..30 {
        round(&q, &d).await;
        if seen.lock().unwrap().len() >= 3 {
            break;
        }
    }
    // Every attempt signed and verified, under the same id; the third taken, then nothing more.
    let attempts = seen.lock().unwrap().clone();
    assert_eq!(attempts, vec![(id.clone(), Ok(())); 3]);
    assert_eq!(round(&q, &d).await, 0, "delivered: the message is gone");
    assert!(receive(&q, &q.dlq).await.is_empty());
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn an_endpoint_that_never_answers_leaves_the_delivery_in_the_dlq() {
    let sdk = testkit::moto_sdk().await;
    let q = queues(&sdk).await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let d = deliverer(&sdk, &q, format!("http://{closed}/hooks"));
    let body = format!(r#"{{"id":"{}","type":"export.ready","version":1}}"#, testkit::unique_user("msg"));
    q.sqs.send_message().queue_url(&q.main).message_body(&body).send().await.unwrap();
    let mut handed = 0;
    let mut dead = Vec::new();
    for _ in 0..30 {
        handed += round(&q, &d).await;
        dead = receive(&q, &q.dlq).await;
        if !dead.is_empty() {
            break;
        }
    }
    assert_eq!(handed, 3, "three attempts (the queue's maxReceiveCount), each set back by its delay");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), Some(body.as_str()), "the delivery waits in the DLQ as it was");
    // The DLQ alarm's metric: the queue's visible messages.
    let visible = q
        .sqs
        .get_queue_attributes()
        .queue_url(&q.dlq)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let count = |a: QueueAttributeName| visible.get(&a).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
    assert_eq!(
        count(QueueAttributeName::ApproximateNumberOfMessages)
            + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        1
    );
}
