//! Lambda entry point of `transformer`: wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    matbakh_lambda::logs::init();
    let t = transformer::Transformer::from_env().await?;
    lambda_http::run(transformer::router(std::sync::Arc::new(t))).await
}
