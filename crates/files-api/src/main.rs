//! Lambda entry point of `files-api`: wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    matbakh_lambda::logs::init();
    let auth = std::sync::Arc::new(matbakh_api::Authenticator::from_env()?);
    let sdk = matbakh_aws::config::load_sdk_config().await;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let cdn_signer = matbakh_aws::secrets::cdn_signer(&sdk, env).await?;
    let services = matbakh_aws::Services::from_env().await?.sign_with(cdn_signer);
    let signer = files_api::image_signer(&sdk, env).await?;
    lambda_http::run(files_api::router(services, auth, signer)).await
}
