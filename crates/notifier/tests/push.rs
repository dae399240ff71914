//! The `@connections` push as the notifier makes it (the AWS SDK configured as the function
//! configures it, `matbakh_aws::config::sdk_config_from_env`): a transient failure (a 5xx,
//! throttling) is retried by the SDK's standard retry (3 attempts, exponential backoff with
//! jitter) before the push counts as failed and retryable; a gone socket (410) is said at once,
//! never retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use axum::Router;
use axum::extract::State;
use matbakh_app::ports::{PortError, Push, Pushed};
use notifier::adapters::ApiPush;

/// A management endpoint answering `answers` in turn (the last one from then on); how many
/// POSTs it got.
async fn endpoint(answers: Vec<u16>) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .fallback(|State((calls, answers)): State<(Arc<AtomicUsize>, Arc<Vec<u16>>)>| async move {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let status = answers[n.min(answers.len() - 1)];
            let body = match status {
                410 => r#"{"message": null}"#,
                429 => r#"{"message": "Rate exceeded"}"#,
                _ => r#"{"message": "Internal server error"}"#,
            };
            let mut resp = http::Response::builder().status(status);
            if status == 410 {
                resp = resp.header("x-amzn-errortype", "GoneException");
            } else if status == 429 {
                resp = resp.header("x-amzn-errortype", "LimitExceededException");
            }
            resp.body(axum::body::Body::from(body)).unwrap()
        })
        .with_state((calls.clone(), Arc::new(answers)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), calls)
}

async fn push_to(url: &str) -> ApiPush {
    let sdk = matbakh_aws::config::sdk_config_from_env(|k| (k == "AWS_REGION").then(|| "eu-central-1".to_owned()))
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new("local", "local", None, None, "tests")))
        .build();
    ApiPush::new(&sdk, url)
}

#[tokio::test]
async fn a_push_answered_500_twice_arrives_on_the_third_attempt() {
    let (url, calls) = endpoint(vec![500, 500, 200]).await;
    let pushed = push_to(&url).await.push("conn-1", br#"{"type":"file.ready"}"#).await.unwrap();
    assert_eq!(pushed, Pushed::Sent);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_push_throttled_every_time_fails_retryable_after_three_attempts() {
    let (url, calls) = endpoint(vec![429]).await;
    let failed = push_to(&url).await.push("conn-1", b"{}").await.unwrap_err();
    assert!(matches!(failed, PortError::Unavailable { .. }), "{failed:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_gone_socket_is_said_at_once() {
    let (url, calls) = endpoint(vec![410]).await;
    assert_eq!(push_to(&url).await.push("conn-1", b"{}").await.unwrap(), Pushed::Gone);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a gone socket is not retried");
}
