//! `migrate enqueue`: send the run's pending work to the migration queue, for the
//! migration-worker function.

use std::process::ExitCode;

use aws_config::SdkConfig;
use migrate::{Context, MigrateError};

use crate::print_json;

pub async fn run(
    ctx: &Context,
    sdk: &SdkConfig,
    run: &str,
    queue: String,
    json: bool,
) -> Result<ExitCode, MigrateError> {
    let queue = matbakh_aws::queue::Queue::new(sdk, queue);
    let sent = migrate::work::enqueue(ctx, run, &queue, sdk).await?;
    if json {
        print_json(&sent);
    } else {
        println!(
            "run {}: {} messages sent ({} files in batches, {} large files as {} parts)",
            sent.run, sent.messages, sent.files, sent.multipart_files, sent.parts
        );
    }
    Ok(ExitCode::SUCCESS)
}
