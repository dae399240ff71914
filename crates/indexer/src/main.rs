//! Lambda entry point of `indexer`: wiring only.

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    matbakh_lambda::logs::init();
    let env = |name: &str| std::env::var(name).ok();
    let services = matbakh_aws::Services::from_env().await?;
    let ix = &indexer::Indexer::new(services, env)?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        let stop = matbakh_lambda::stop_at(
            event.context.deadline,
            time::OffsetDateTime::now_utc(),
            matbakh_lambda::sqs::RECORD_TIME_MARGIN,
        );
        Ok::<_, lambda_runtime::Error>(indexer::handle_until(ix, event.payload, stop).await)
    }))
    .await
}
