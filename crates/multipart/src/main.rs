//! Lambda entry point of `multipart`: wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    matbakh_lambda::logs::init();
    let services = matbakh_aws::Services::from_env().await?;
    let auth = std::sync::Arc::new(matbakh_api::Authenticator::from_env()?);
    lambda_http::run(multipart::router(services, auth)).await
}
