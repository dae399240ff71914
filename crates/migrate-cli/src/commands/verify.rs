//! `migrate verify`: check every copied file (or a sample) against the manifest.

use std::process::ExitCode;

use migrate::verify::VerifyOptions;
use migrate::{Context, MigrateError};

use crate::print_json;

pub async fn run(ctx: &Context, run: &str, options: VerifyOptions, json: bool) -> Result<ExitCode, MigrateError> {
    let v = migrate::verify::verify(ctx, run, &options).await?;
    if json {
        print_json(&v);
    } else {
        println!(
            "run {}: {} rows, {} checked{}, {} mismatch, {} not copied; {} files-table rows checked ({} files without one by design)",
            v.run,
            v.rows,
            v.checked,
            if v.deep { " (read back and hashed)" } else { " (size + stored CRC64NVME)" },
            v.mismatches.len(),
            v.not_copied.len(),
            v.rows_checked,
            v.unregistered
        );
        for p in v.mismatches.iter().chain(&v.not_copied).take(50) {
            println!("  {} {}: {}", p.seq, p.key, p.problem);
        }
    }
    Ok(if v.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
