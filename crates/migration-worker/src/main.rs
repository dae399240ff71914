//! Lambda entry point of `migration-worker`: wiring only.

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    matbakh_lambda::logs::init();
    let sdk = matbakh_aws::config::load_sdk_config().await;
    let worker = migration_worker::Worker::from_env(&sdk, |k| std::env::var(k).ok()).await?;
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        let stop = matbakh_lambda::stop_at(
            event.context.deadline,
            time::OffsetDateTime::now_utc(),
            migrate::work::WORK_TIME_MARGIN,
        );
        Ok::<_, lambda_runtime::Error>(migration_worker::handle(worker, event.payload, stop).await)
    }))
    .await
}
