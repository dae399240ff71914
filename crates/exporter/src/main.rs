//! Lambda entry point of `exporter`: wiring only.

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    matbakh_lambda::logs::init();
    let archiver = matbakh_aws::Services::from_env().await?.archiver();
    let archiver = &archiver;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        let deadline = matbakh_lambda::stop_at(
            event.context.deadline,
            time::OffsetDateTime::now_utc(),
            exporter::EXPORT_TIME_MARGIN,
        );
        Ok::<_, lambda_runtime::Error>(exporter::handle(archiver, event.payload, deadline).await)
    }))
    .await
}
