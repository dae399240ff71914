//! Lambda entry point of `migration-api`: wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    matbakh_lambda::logs::init();
    let sdk = matbakh_aws::config::load_sdk_config().await;
    let admin = migration_api::Admin::from_env(&sdk, |k| std::env::var(k).ok())?;
    lambda_http::run(migration_api::router(admin)).await
}
