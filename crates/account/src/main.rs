//! Lambda entry point of `account`: wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let services = matbakh_api::Services::from_env().await?;
    lambda_http::run(account::router(services)).await
}
