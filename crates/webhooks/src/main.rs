//! Lambda entry point of `webhooks`: wiring only. Settings: `WEBHOOK_SECRET_ID` (the Secrets
//! Manager secret with the endpoint: JSON `{"url", "secret", "previous"?}`, read once at start)
//! and `WEBHOOK_QUEUE_URL` (the queue whose messages' visibility sets the retry delays).

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use webhooks::Deliverer;
use webhooks::adapters::{HttpPost, endpoint};

fn setting(name: &str) -> Result<String, String> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| format!("{name} is not set"))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    matbakh_lambda::logs::init();
    let sdk = matbakh_aws::config::load_sdk_config().await;
    let endpoint = endpoint(&sdk, &setting("WEBHOOK_SECRET_ID")?).await?;
    let retry = matbakh_aws::queue::Queue::new(&sdk, setting("WEBHOOK_QUEUE_URL")?);
    let deliverer = Deliverer::new(
        endpoint,
        Arc::new(HttpPost::new()?),
        Arc::new(retry),
        Arc::new(matbakh_core::clock::SystemClock),
    );
    let deliverer = &deliverer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        Ok::<_, lambda_runtime::Error>(webhooks::handle(deliverer, event.payload).await)
    }))
    .await
}
