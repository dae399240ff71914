//! Lambda entry point of `files-api`: wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    matbakh_lambda::logs::init();
    let auth = std::sync::Arc::new(matbakh_api::Authenticator::from_env()?);
    lambda_http::run(files_api::from_env(auth).await?).await
}
