//! Lambda entry point of `transformer`: wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let t = transformer::Transformer::from_env().await?;
    lambda_http::run(transformer::router(std::sync::Arc::new(t))).await
}
