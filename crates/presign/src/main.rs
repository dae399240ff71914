//! Lambda entry point of `presign`: wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    matbakh_lambda::logs::init();
    let auth = std::sync::Arc::new(matbakh_api::Authenticator::from_env()?);
    lambda_http::run(presign::from_env(auth).await?).await
}
