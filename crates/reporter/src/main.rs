//! Lambda entry point of `reporter`: wiring only.

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    matbakh_lambda::logs::init();
    let sdk = matbakh_aws::config::load_sdk_config().await;
    let reporting = reporter::reporting(&sdk, |k| std::env::var(k).ok())?;
    let reporting = &reporting;
    // The scheduled event carries nothing the report needs.
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        let report = reporter::run(reporting).await?;
        Ok::<_, lambda_runtime::Error>(serde_json::json!({
            "generatedAt": report.generated_at,
            "objects": report.total.objects,
            "bytes": report.total.bytes,
            "cdnRequests": report.transfer.map(|t| t.total.objects),
        }))
    }))
    .await
}
