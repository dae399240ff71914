//! The deliverer over in-memory ports: what the endpoint gets, when a message comes back.

use std::sync::Mutex;

use matbakh_core::clock::FixedClock;
use matbakh_core::webhooks::{Rejected, verify};

use super::*;

/// One POST as the endpoint got it: headers, body.
type Sent = (Vec<(&'static str, String)>, Vec<u8>);

/// An endpoint answering from a script of statuses (`None`: no answer at all), recording what
/// it was sent.
struct Scripted {
    answers: Mutex<Vec<Option<u16>>>,
    got: Mutex<Vec<Sent>>,
}

#[async_trait]
impl Post for Scripted {
    async fn post(&self, _url: &str, headers: &[(&'static str, String)], body: Vec<u8>) -> Result<u16, WebhookError> {
        self.got.lock().unwrap().push((headers.to_vec(), body));
        match self.answers.lock().unwrap().remove(0) {
            Some(status) => Ok(status),
            None => Err(WebhookError::Unreachable("connection refused".into())),
        }
    }
}

#[derive(Default)]
struct Delays(Mutex<Vec<(String, i32)>>);

#[async_trait]
impl Redelivery for Delays {
    async fn after(&self, receipt_handle: &str, seconds: i32) -> matbakh_app::ports::PortResult<()> {
        self.0.lock().unwrap().push((receipt_handle.to_owned(), seconds));
        Ok(())
    }
}

const NOW: i64 = 1_796_470_000;

fn secret() -> WebhookSecret {
    WebhookSecret::from_bytes(&[9; 32]).unwrap()
}

fn world(answers: Vec<Option<u16>>) -> (Deliverer, Arc<Scripted>, Arc<Delays>) {
    let post = Arc::new(Scripted { answers: Mutex::new(answers), got: Mutex::new(Vec::new()) });
    let delays = Arc::new(Delays::default());
    let endpoint = Endpoint { url: "https://backend.matbakh.test/hooks".into(), secrets: vec![secret()] };
    let clock = Arc::new(FixedClock(time::OffsetDateTime::from_unix_timestamp(NOW).unwrap()));
    (Deliverer::new(endpoint, post.clone(), delays.clone(), clock), post, delays)
}

const EVENT: &str = r#"{"id":"msg_01","type":"file.ready","version":1,"data":{"fileId":"f1"}}"#;

/// One message, delivered for the `receives`-th time.
fn event(body: &str, receives: u32) -> SqsEvent {
    let mut event = testkit::sqs_batch(&[(&format!("sqs-{receives}"), body.to_owned())]);
    let record = &mut event.records[0];
    record.receipt_handle = Some(format!("receipt-{receives}"));
    record.attributes.insert("ApproximateReceiveCount".into(), receives.to_string());
    event
}

fn failed(r: &SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
}

#[tokio::test]
async fn an_endpoint_that_answers_500_twice_gets_the_delivery_on_the_third_try() {
    let (d, post, delays) = world(vec![Some(500), Some(500), Some(204)]);
    assert_eq!(failed(&handle(&d, event(EVENT, 1)).await), ["sqs-1"]);
    assert_eq!(failed(&handle(&d, event(EVENT, 2)).await), ["sqs-2"]);
    assert!(failed(&handle(&d, event(EVENT, 3)).await).is_empty());
    // Back off: 5 s after the first failure, 30 s after the second.
    assert_eq!(*delays.0.lock().unwrap(), [("receipt-1".into(), 5), ("receipt-2".into(), 30)]);
    let got = post.got.lock().unwrap();
    assert_eq!(got.len(), 3);
    for (headers, body) in got.iter() {
        let h = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        assert_eq!(body, EVENT.as_bytes(), "the message, byte for byte");
        assert_eq!(h("webhook-id"), Some("msg_01"), "the same id on every attempt: the receiver's idempotency key");
        assert_eq!(h("content-type"), Some("application/json"));
        assert_eq!(
            verify(&[secret()], h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"), body, NOW),
            Ok(())
        );
        let other = WebhookSecret::from_bytes(&[8; 32]).unwrap();
        let forged = verify(&[other], h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"), body, NOW);
        assert_eq!(forged, Err(Rejected::NoMatch));
    }
}

#[tokio::test]
async fn an_endpoint_that_never_answers_is_given_up_after_the_last_attempt() {
    let (d, _, delays) = world(vec![None, None]);
    assert_eq!(failed(&handle(&d, event(EVENT, MAX_ATTEMPTS - 1)).await), [format!("sqs-{}", MAX_ATTEMPTS - 1)]);
    // The last attempt fails too: no delay is set, SQS moves the message to the DLQ.
    assert_eq!(failed(&handle(&d, event(EVENT, MAX_ATTEMPTS)).await), [format!("sqs-{MAX_ATTEMPTS}")]);
    assert_eq!(*delays.0.lock().unwrap(), [(format!("receipt-{}", MAX_ATTEMPTS - 1), 7200)]);
}

#[tokio::test]
async fn a_message_that_is_no_event_is_never_sent() {
    for body in ["not json", r#"{"type":"file.ready"}"#, r#"{"id":"has space"}"#, "[1]"] {
        let (d, post, delays) = world(vec![]);
        assert_eq!(failed(&handle(&d, event(body, 1)).await), ["sqs-1"], "{body}");
        assert!(post.got.lock().unwrap().is_empty(), "{body}");
        assert!(delays.0.lock().unwrap().is_empty(), "not retryable: the queue's own timeout, then the DLQ");
        assert!(matches!(d.deliver(body).await, Err(WebhookError::Malformed(_))), "{body}");
    }
}

#[test]
fn the_endpoint_comes_from_its_secret() {
    let key = WebhookSecret::encode(&[7; 32]);
    let e = Endpoint::from_secret_json(&format!(r#"{{"url":"https://b.test/h","secret":"{key}"}}"#)).unwrap();
    assert_eq!((e.url.as_str(), e.secrets.len()), ("https://b.test/h", 1));
    // As CloudFormation generates it: 44 letters and digits, no prefix; and a rotation.
    let generated = "a".repeat(44);
    let e = Endpoint::from_secret_json(&format!(
        r#"{{"url":"http://127.0.0.1:8099/","secret":"{generated}","previous":"{key}"}}"#
    ))
    .unwrap();
    assert_eq!(e.secrets.len(), 2);
    for bad in [
        r#"{"url":"http://backend.test/h","secret":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#,
        // Review 27: loopback by its prefix, another host by what the client connects to.
        r#"{"url":"http://localhost:1@backend.test/h","secret":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#,
        r#"{"url":"http://127.0.0.1:80@backend.test/","secret":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#,
        r#"{"url":"https://user:pw@b.test/h","secret":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#,
        r#"{"url":"http://localhost.backend.test/","secret":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#,
        r#"{"url":"https:///h","secret":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#,
        r#"{"url":"https://b.test/h"}"#,
        r#"{"url":"https://b.test/h","secret":"whsec_c2hvcnQ="}"#,
        "whsec_not-json",
    ] {
        assert!(matches!(Endpoint::from_secret_json(bad), Err(WebhookError::Config(_))), "{bad}");
    }
}

#[test]
fn only_answers_and_their_absence_are_retried() {
    assert!(WebhookError::Refused(500).retryable() && WebhookError::Unreachable("x".into()).retryable());
    assert!(!WebhookError::Malformed("x".into()).retryable() && !WebhookError::Config("x".into()).retryable());
}
