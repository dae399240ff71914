//! Lambda entry point of `exporter`: wiring only.

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    matbakh_lambda::logs::init();
    let archiver = matbakh_aws::Services::from_env().await?.archiver();
    // The export queue, whose messages' visibility sets the retry delays.
    let sdk = matbakh_aws::config::load_sdk_config().await;
    let queue = matbakh_aws::queue::export_queue(&sdk, |k| std::env::var(k).ok())?;
    let (archiver, queue) = (&archiver, &queue);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        let deadline = matbakh_lambda::stop_at(
            event.context.deadline,
            time::OffsetDateTime::now_utc(),
            exporter::EXPORT_TIME_MARGIN,
        );
        Ok::<_, lambda_runtime::Error>(exporter::handle(archiver, queue, event.payload, deadline).await)
    }))
    .await
}
