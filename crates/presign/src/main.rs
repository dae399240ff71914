//! Lambda entry point of `presign`: wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    matbakh_lambda::logs::init();
    let sdk = matbakh_aws::config::load_sdk_config().await;
    let cdn_signer = matbakh_aws::secrets::cdn_signer(&sdk, |k| std::env::var(k).ok()).await?;
    let services = matbakh_aws::Services::from_env().await?.sign_with(cdn_signer);
    let auth = std::sync::Arc::new(matbakh_api::Authenticator::from_env()?);
    lambda_http::run(presign::router(services, auth)).await
}
