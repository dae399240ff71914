//! Lambda entry point of `eraser`: wiring only.

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    matbakh_lambda::logs::init();
    let services = matbakh_aws::Services::from_env().await?;
    let sdk = matbakh_aws::config::load_sdk_config().await;
    let settings = matbakh_aws::config::EraseSettings::from_lookup(&sdk, |k| std::env::var(k).ok()).await?;
    let erasure = services.erasure(settings);
    let erasure = &erasure;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        Ok::<_, lambda_runtime::Error>(eraser::handle(erasure, event.payload).await)
    }))
    .await
}
