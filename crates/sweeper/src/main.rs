//! Lambda entry point of `sweeper`: wiring only.

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    matbakh_lambda::logs::init();
    let services = matbakh_aws::Services::from_env().await?;
    let services = &services;
    // The scheduled event carries nothing the sweep needs; its context, the deadline.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let report = sweeper::sweep(
            services,
            matbakh_lambda::stop_at(
                event.context.deadline,
                time::OffsetDateTime::now_utc(),
                sweeper::SWEEP_TIME_MARGIN,
            ),
        )
        .await?;
        // Every other row and session was done; the invocation fails, so its alarm tells.
        if report.failed > 0 {
            return Err(format!(
                "{} expired uploads or sessions failed (logged); left for the next run",
                report.failed
            )
            .into());
        }
        Ok::<_, lambda_runtime::Error>(serde_json::to_value(report)?)
    }))
    .await
}
