//! Lambda entry point of `account`: wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    matbakh_lambda::logs::init();
    let services = matbakh_aws::Services::from_env().await?;
    let sdk = matbakh_aws::config::load_sdk_config().await;
    let erasure = account::EraseSettings::from_lookup(&sdk, |k| std::env::var(k).ok()).await?;
    let exports = matbakh_aws::queue::export_queue(&sdk, |k| std::env::var(k).ok())?;
    let auth = std::sync::Arc::new(matbakh_api::Authenticator::from_env()?);
    lambda_http::run(account::router(services, auth, erasure, exports)).await
}
