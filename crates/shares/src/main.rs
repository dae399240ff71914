//! Lambda entry point of `shares`: wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let services = matbakh_api::Services::from_env().await?;
    if services.share_key.is_none() {
        return Err("SHARE_SIGNING_KEY is not set: share links cannot be signed".into());
    }
    lambda_http::run(shares::router(services)).await
}
