//! SQS: sending work in batches (10 a call, failed entries sent again) and keeping a message
//! invisible while a long copy holds it.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::error::AwsError;

#[derive(Clone, Debug)]
pub struct Queue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl Queue {
    pub fn new(sdk: &SdkConfig, url: impl Into<String>) -> Self {
        Queue { client: aws_sdk_sqs::Client::new(sdk), url: url.into() }
    }

    /// The queue named `name` (its URL looked up).
    pub async fn named(sdk: &SdkConfig, name: &str) -> Result<Self, AwsError> {
        let client = aws_sdk_sqs::Client::new(sdk);
        let out =
            client.get_queue_url().queue_name(name).send().await.map_err(|e| AwsError::from_sdk("GetQueueUrl", e))?;
        let url = out.queue_url().ok_or_else(|| AwsError::Corrupt(format!("no URL for queue {name}")))?.to_owned();
        Ok(Queue { client, url })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends every body; entries SQS refuses for a passing reason are sent again (5 tries).
    pub async fn send_all(&self, bodies: &[String]) -> Result<(), AwsError> {
        for chunk in bodies.chunks(10) {
            let mut pending: Vec<(String, &String)> =
                chunk.iter().enumerate().map(|(i, b)| (i.to_string(), b)).collect();
            let mut delay = Duration::from_millis(100);
            for attempt in 1..=5 {
                let entries = pending
                    .iter()
                    .map(|(id, body)| SendMessageBatchRequestEntry::builder().id(id).message_body(*body).build())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| AwsError::Config(e.to_string()))?;
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("SendMessageBatch", e))?;
                if let Some(bad) = out.failed().iter().find(|f| f.sender_fault()) {
                    return Err(AwsError::Service {
                        operation: "SendMessageBatch",
                        message: format!("{}: {}", bad.code(), bad.message().unwrap_or("")),
                        retryable: false,
                    });
                }
                let failed: Vec<&str> = out.failed().iter().map(|f| f.id()).collect();
                pending.retain(|(id, _)| failed.contains(&id.as_str()));
                if pending.is_empty() {
                    break;
                }
                if attempt == 5 {
                    return Err(AwsError::Service {
                        operation: "SendMessageBatch",
                        message: format!("{} messages not accepted after 5 tries", pending.len()),
                        retryable: true,
                    });
                }
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        Ok(())
    }

    /// Sends one body, delivered no sooner than `delay` from now (SQS delays at most
    /// [`MAX_QUEUE_DELAY`](matbakh_core::erasure::MAX_QUEUE_DELAY)).
    pub async fn send_later(&self, body: &str, delay: Duration) -> Result<(), AwsError> {
        let delay = delay.min(matbakh_core::erasure::MAX_QUEUE_DELAY);
        let seconds = i32::try_from(delay.as_secs()).unwrap_or(i32::MAX);
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(seconds)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("SendMessage", e))
    }

    /// Keeps the message invisible for another `seconds` (a long copy still holds it).
    pub async fn extend(&self, receipt_handle: &str, seconds: i32) -> Result<(), AwsError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("ChangeMessageVisibility", e))
    }
}

/// The export jobs' queue, `EXPORT_QUEUE_URL`: the account function sends them there, the
/// exporter sets their retry delays on it. Read at start: a function refuses to start without
/// it, rather than failing the first export.
pub fn export_queue(sdk: &SdkConfig, lookup: impl Fn(&str) -> Option<String>) -> Result<Queue, String> {
    let url = lookup("EXPORT_QUEUE_URL").filter(|v| !v.is_empty()).ok_or("EXPORT_QUEUE_URL is not set")?;
    Ok(Queue::new(sdk, url))
}

/// The queue the copy of a large public original is asked of (`PUBLIC_COPY_QUEUE_URL`, the
/// thumbnailer's: `core::delivery::copy_public_original_message`; the notifier sends them), if
/// this function has one.
pub fn public_copies(
    sdk: &SdkConfig,
    lookup: impl Fn(&str) -> Option<String>,
) -> Option<std::sync::Arc<dyn matbakh_app::ports::CopyLater>> {
    let url = lookup("PUBLIC_COPY_QUEUE_URL").filter(|v| !v.is_empty())?;
    Some(std::sync::Arc::new(Queue::new(sdk, url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_export_queue_a_function_stops_at_start() {
        let sdk = SdkConfig::builder().build();
        let missing = export_queue(&sdk, |_| None).expect_err("no queue");
        assert!(missing.contains("EXPORT_QUEUE_URL"), "{missing}");
        assert!(export_queue(&sdk, |_| Some(String::new())).is_err(), "an empty setting is none");
        let queue = export_queue(&sdk, |_| Some("http://127.0.0.1:5599/123/exports".into())).expect("a queue");
        assert_eq!(queue.url(), "http://127.0.0.1:5599/123/exports");
    }

    #[test]
    fn only_a_function_given_the_queue_hands_large_originals_on() {
        let sdk = SdkConfig::builder().build();
        assert!(public_copies(&sdk, |_| None).is_none());
        assert!(public_copies(&sdk, |_| Some(String::new())).is_none(), "an empty setting is none");
        let set = |k: &str| (k == "PUBLIC_COPY_QUEUE_URL").then(|| "http://127.0.0.1:5599/123/thumbs".to_owned());
        assert!(public_copies(&sdk, set).is_some());
    }
}
