//! The ports' AWS and HTTP sides: the endpoint from Secrets Manager, POSTs through
//! `matbakh_aws::http::Web` (retry delays are the queue's: `matbakh_app::ports::Redelivery`).

use async_trait::async_trait;
use aws_config::SdkConfig;
use matbakh_aws::http::{BodyLimit, Web};
use matbakh_core::webhooks::ATTEMPT_TIMEOUT_SECONDS;

use crate::{Endpoint, Post, WebhookError};

/// The endpoint in secret `id` (see [`Endpoint::from_secret_json`]).
pub async fn endpoint(sdk: &SdkConfig, id: &str) -> Result<Endpoint, String> {
    let text =
        matbakh_aws::secrets::secret_string(sdk, id).await.map_err(|e| format!("WEBHOOK_SECRET_ID {id}: {e}"))?;
    Endpoint::from_secret_json(&text).map_err(|e| format!("WEBHOOK_SECRET_ID {id}: {e}"))
}

/// POSTs over HTTPS (rustls), [`ATTEMPT_TIMEOUT_SECONDS`] an attempt, no redirects followed (a
/// delivery goes where it was configured to go, or fails); the answer's body is read only to
/// keep the connection for the next delivery ([`BodyLimit::Ignore`]).
pub struct HttpPost(Web);

impl HttpPost {
    pub fn new() -> Result<HttpPost, String> {
        Web::new(std::time::Duration::from_secs(ATTEMPT_TIMEOUT_SECONDS))
            .map(HttpPost)
            .map_err(|e| format!("HTTP client: {e}"))
    }
}

#[async_trait]
impl Post for HttpPost {
    async fn post(&self, url: &str, headers: &[(&'static str, String)], body: Vec<u8>) -> Result<u16, WebhookError> {
        let mut request = http::Request::post(url).header(http::header::USER_AGENT, "matbakh-files-webhooks/1");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request =
            request.body(bytes::Bytes::from(body)).map_err(|e| WebhookError::Unreachable(format!("{url}: {e}")))?;
        let answer =
            self.0.send(request, BodyLimit::Ignore).await.map_err(|e| WebhookError::Unreachable(e.to_string()))?;
        Ok(answer.status.as_u16())
    }
}
