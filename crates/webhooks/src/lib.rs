//! `webhooks`: triggered by the webhook queue (SQS, `ReportBatchItemFailures`, the DLQ after
//! [`MAX_ATTEMPTS`] receives). Each message is one event for the app's backend, a JSON object
//! with an `id`; it is POSTed as it is to the deployment's endpoint, signed in the Standard
//! Webhooks scheme ([`matbakh_core::webhooks`]) with the endpoint's secret (two while it is
//! rotated). A 2xx answer ends it. Anything else (another status, a timeout, no answer) makes
//! the message visible again after a growing delay ([`retry_delay`] of its receive count) and
//! reports it failed; after the last attempt SQS moves it to the DLQ, whose alarm says so.
//! Deliveries are at least once: the `webhook-id` header (the message's `id`) is the same on
//! every attempt, the receiver's idempotency key.
//!
//! Reads the queue's messages and the endpoint's secret (Secrets Manager, once at start);
//! writes HTTP POSTs, the messages' visibility and EMF metrics (`WebhooksDelivered`,
//! `WebhookAttemptsFailed`, `WebhooksGivenUp`). Uploads never wait on it: events reach it
//! through the queue, and its reserved concurrency keeps a slow endpoint from taking more.

pub mod adapters;

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
pub use matbakh_app::ports::Redelivery;
use matbakh_core::clock::Clock;
use matbakh_core::webhooks::{
    MAX_ATTEMPTS, RETRY_DELAYS_SECONDS, WebhookSecret, accepted, delay_after, sign, valid_id,
};
use matbakh_lambda::metrics::{Unit, emit};

/// Where deliveries go, and what signs them.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    /// The current secret first; the previous one too while it is rotated.
    pub secrets: Vec<WebhookSecret>,
}

impl Endpoint {
    /// The endpoint's secret as stored: JSON `{"url": "https://...", "secret": "whsec_...",
    /// "previous": "whsec_..."}` (`previous` only while the secret is rotated; the prefix may be
    /// left out, as CloudFormation generates it). The URL must be `https://`, or `http://` to a
    /// loopback address (the dev stack's receiver).
    pub fn from_secret_json(text: &str) -> Result<Endpoint, WebhookError> {
        let bad = |why: String| WebhookError::Config(why);
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("the endpoint's secret is not JSON: {e}")))?;
        let url = json["url"].as_str().map(str::trim).unwrap_or_default();
        // Read as the client reads it (review 27: `http://localhost:1@backend.example/` passed a
        // prefix check and was sent in the clear to backend.example, `localhost:1` its user info).
        let uri: Option<http::Uri> = url.parse().ok();
        let authority = uri.as_ref().and_then(|u| u.authority()).map(|a| a.as_str());
        let allowed = match (uri.as_ref().and_then(|u| u.scheme_str()), uri.as_ref().and_then(|u| u.host())) {
            (Some("https"), Some(host)) => !host.is_empty(),
            (Some("http"), Some(host)) => matches!(host, "127.0.0.1" | "[::1]" | "localhost"),
            _ => false,
        };
        if !allowed || authority.is_none_or(|a| a.contains('@')) {
            return Err(bad(format!(
                "the endpoint's url {url:?} must be https:// (http:// only to a loopback address), with no user info"
            )));
        }
        let mut secrets = Vec::new();
        for field in ["secret", "previous"] {
            if let Some(raw) = json[field].as_str().filter(|s| !s.trim().is_empty()) {
                secrets.push(WebhookSecret::parse(raw).map_err(|e| bad(format!("the endpoint's {field}: {e}")))?);
            }
        }
        if secrets.is_empty() {
            return Err(bad("the endpoint's secret holds no \"secret\"".into()));
        }
        Ok(Endpoint { url: url.to_owned(), secrets })
    }
}

/// Why a delivery did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The message is no event (no JSON object with a valid `id`): another attempt will not
    /// help; it ends in the DLQ, where it can be looked at.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The endpoint answered, not with a 2xx.
    #[error("the endpoint answered {0}")]
    Refused(u16),
    /// No answer: refused connection, timeout, TLS.
    #[error("the endpoint did not answer: {0}")]
    Unreachable(String),
    /// The endpoint's configuration cannot work (a bad URL, a bad secret).
    #[error("configuration: {0}")]
    Config(String),
}

impl WebhookError {
    /// Whether a later attempt may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, WebhookError::Refused(_) | WebhookError::Unreachable(_))
    }
}

/// Sends one signed POST; the status it got back.
#[async_trait]
pub trait Post: Send + Sync {
    async fn post(&self, url: &str, headers: &[(&'static str, String)], body: Vec<u8>) -> Result<u16, WebhookError>;
}

pub struct Deliverer {
    endpoint: Endpoint,
    post: Arc<dyn Post>,
    retry: Arc<dyn Redelivery>,
    clock: Arc<dyn Clock>,
    /// Seconds before the attempt after the n-th failed one ([`RETRY_DELAYS_SECONDS`]).
    delays: Vec<i32>,
}

impl Deliverer {
    pub fn new(endpoint: Endpoint, post: Arc<dyn Post>, retry: Arc<dyn Redelivery>, clock: Arc<dyn Clock>) -> Self {
        Deliverer { endpoint, post, retry, clock, delays: RETRY_DELAYS_SECONDS.to_vec() }
    }

    /// Other retry delays (tests against a real queue wait seconds, not hours).
    pub fn with_retry_delays(mut self, delays: Vec<i32>) -> Self {
        self.delays = delays;
        self
    }

    /// One attempt at delivering `body` (the message's text).
    pub async fn deliver(&self, body: &str) -> Result<(), WebhookError> {
        let event: serde_json::Value =
            serde_json::from_str(body).map_err(|e| WebhookError::Malformed(format!("not JSON: {e}")))?;
        let id = event
            .get("id")
            .and_then(|v| v.as_str())
            .filter(|id| valid_id(id))
            .ok_or_else(|| WebhookError::Malformed("no valid \"id\"".into()))?;
        let signed = sign(&self.endpoint.secrets, id, self.clock.now().unix_timestamp(), body.as_bytes());
        let mut headers = signed.headers().to_vec();
        headers.push(("content-type", "application/json".to_owned()));
        let status = self.post.post(&self.endpoint.url, &headers, body.as_bytes().to_vec()).await?;
        if accepted(status) { Ok(()) } else { Err(WebhookError::Refused(status)) }
    }

    /// One record: delivered, or put back for a later attempt (and reported failed).
    async fn record(&self, record: SqsMessage) -> Result<(), WebhookError> {
        let attempt = matbakh_lambda::sqs::receives(&record);
        let outcome = self.deliver(record.body.as_deref().unwrap_or_default()).await;
        match &outcome {
            Ok(()) => {
                tracing::info!(attempt, "delivered");
                emit("deliver", &[("WebhooksDelivered", 1, Unit::Count)]);
            }
            Err(e) => {
                let last = attempt >= MAX_ATTEMPTS;
                tracing::warn!(attempt, last, retryable = e.retryable(), error = %e, "not delivered");
                emit(
                    "deliver",
                    &[("WebhookAttemptsFailed", 1, Unit::Count), ("WebhooksGivenUp", u64::from(last), Unit::Count)],
                );
                if let Some(receipt) = record.receipt_handle.as_deref().filter(|_| !last && e.retryable())
                    && let Err(why) = self.retry.after(receipt, delay_after(&self.delays, attempt)).await
                {
                    // The queue's own visibility timeout then sets the delay.
                    tracing::warn!(error = %why, "could not set the retry delay");
                }
            }
        }
        outcome
    }
}

/// Delivers each record; names the ones to try again (SQS retries them until the DLQ).
pub async fn handle(d: &Deliverer, event: SqsEvent) -> SqsBatchResponse {
    matbakh_lambda::sqs::each_record(event, "webhook", |record| d.record(record)).await
}

#[cfg(test)]
mod tests;
