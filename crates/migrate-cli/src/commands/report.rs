//! `migrate rollback` and `migrate report`: undo a run exactly, and say what it did.

use std::process::ExitCode;

use migrate::{Context, MigrateError};

use crate::print_json;

/// Restores the target exactly as it was before the run (needs versioning).
pub async fn rollback(ctx: &Context, run: &str, dry_run: bool, json: bool) -> Result<ExitCode, MigrateError> {
    let r = migrate::rollback::rollback(ctx, run, dry_run).await?;
    if json {
        print_json(&r);
    } else {
        let verb = if dry_run { "would remove" } else { "removed" };
        println!("run {}: {verb} {} version(s) the run wrote, over {} rows", r.run, r.removed.len(), r.rows);
    }
    Ok(ExitCode::SUCCESS)
}

/// Summary, failures by reason, checksum coverage; the failed rows as CSV on request.
pub async fn report(
    ctx: &Context,
    run: &str,
    failures_csv: Option<std::path::PathBuf>,
    json: bool,
) -> Result<ExitCode, MigrateError> {
    let (report, rows) = migrate::report::report(ctx, run).await?;
    if let Some(path) = failures_csv {
        std::fs::write(&path, migrate::report::failures_csv(&rows))
            .map_err(|e| MigrateError::Usage(format!("{}: {e}", path.display())))?;
    }
    if json {
        print_json(&report);
    } else {
        print!("{}", migrate::report::human(&report));
    }
    Ok(ExitCode::SUCCESS)
}
