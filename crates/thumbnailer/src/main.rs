//! Lambda entry point of `thumbnailer`: wiring only.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use matbakh_app::ports::VirusScanner;
use matbakh_imaging::{DEFAULT_QUALITY, ImageLimits};
use thumbnailer::{Imaging, Thumbnailer};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    matbakh_lambda::logs::init();
    let services = matbakh_aws::Services::from_env().await?;
    let limits = ImageLimits::from_lookup(|name| std::env::var(name).ok())?;
    let scanner = thumbnailer::clamd::Clamd::from_lookup(|name| std::env::var(name).ok())?;
    let scanner = scanner.map(|c| Arc::new(c) as Arc<dyn VirusScanner>);
    let t = Thumbnailer::new(&services, Imaging::new(limits, DEFAULT_QUALITY), scanner);
    let t = &t;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        let stop = matbakh_lambda::stop_at(
            event.context.deadline,
            time::OffsetDateTime::now_utc(),
            matbakh_lambda::sqs::RECORD_TIME_MARGIN,
        );
        Ok::<_, lambda_runtime::Error>(thumbnailer::handle_until(t, event.payload, stop).await)
    }))
    .await
}
