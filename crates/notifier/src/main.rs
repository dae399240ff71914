//! Lambda entry point of `notifier`: wiring only. Settings: those of every function that shows
//! files (`TABLE_NAME`, `BUCKET_NAME`, the files CDN's), `CONNECTIONS_TABLE`,
//! `LIVE_MANAGEMENT_URL` (the WebSocket API's `@connections` endpoint), `PUBLIC_COPY_QUEUE_URL`
//! (the thumbnailer's queue, for copies of large public originals) and, where webhooks are
//! configured, `WEBHOOK_QUEUE_URL`.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use matbakh_app::live::Live;
use notifier::adapters::ApiPush;

fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    matbakh_lambda::logs::init();
    let sdk = matbakh_aws::config::load_sdk_config().await;
    let cdn_signer = matbakh_aws::secrets::cdn_signer(&sdk, setting).await?;
    let copies = matbakh_aws::queue::public_copies(&sdk, setting);
    let services = matbakh_aws::Services::from_env().await?.sign_with(cdn_signer).copying_later(copies);
    let required = |name: &str| setting(name).ok_or_else(|| format!("{name} is not set"));
    let live = Live {
        connections: Arc::new(matbakh_aws::live::LiveTable::new(&sdk, required("CONNECTIONS_TABLE")?)),
        push: Arc::new(ApiPush::new(&sdk, &required("LIVE_MANAGEMENT_URL")?)),
        outbox: setting("WEBHOOK_QUEUE_URL")
            .map(|url| Arc::new(matbakh_aws::queue::Queue::new(&sdk, url)) as Arc<dyn matbakh_app::ports::Outbox>),
        delivery: services.delivery(),
        restore_window: services.limits.restore_window,
        admins: services.admins.clone(),
    };
    let live = &live;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        Ok::<_, lambda_runtime::Error>(notifier::handle(live, event.payload).await)
    }))
    .await
}
