//! `migrate rollback` and `migrate report`: undo a run exactly, and say what it did.

use std::io::Write;
use std::process::ExitCode;

use migrate::{Context, MigrateError};

use crate::print_json;

/// Restores the target exactly as it was before the run (needs versioning).
pub async fn rollback(
    ctx: &Context,
    run: &str,
    opts: &migrate::rollback::RollbackOptions,
    json: bool,
) -> Result<ExitCode, MigrateError> {
    let r = migrate::rollback::rollback(ctx, run, opts).await?;
    if json {
        print_json(&r);
    } else {
        let (remove, make) = if opts.dry_run { ("would remove", "would make") } else { ("removed", "made") };
        println!("run {}: {remove} {} version(s) the run wrote, over {} rows", r.run, r.removed.len(), r.rows);
        println!(
            "run {}: {remove} {} file row(s) it registered; {make} {} earlier file(s) it retired READY again",
            r.run, r.files_retired, r.files_restored
        );
        if r.files_unpublished > 0 {
            println!(
                "run {}: removed the public copies and transform results of {} file(s)",
                r.run, r.files_unpublished
            );
            match r.invalidated.is_empty() {
                false => println!("run {}: the files CDN was asked to forget {}", r.run, r.invalidated.join(" ")),
                true => println!(
                    "run {}: the files CDN was not told (no --invalidate): it serves what it cached of them until its max-age",
                    r.run
                ),
            }
        }
        if r.late_copies_pending > 0 {
            println!(
                "run {}: {} copies landed after this rollback began (workers in flight): run `migrate rollback {}` again",
                r.run, r.late_copies_pending, r.run
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Rewrites what runs recorded of erased users, and says what it changed per run.
pub async fn redact(ctx: &Context, run: Option<&str>, json: bool) -> Result<ExitCode, MigrateError> {
    let done = migrate::erased::redact(ctx, run).await?;
    if json {
        print_json(&done);
    } else {
        for r in &done {
            println!(
                "run {}: {} row(s) rewritten ({} kept before), {} manifest line(s), {} mismatch line(s), {} earlier version(s) removed",
                r.run, r.rows, r.rows_kept_before, r.manifest_lines, r.mismatch_lines, r.versions_removed
            );
        }
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

/// The run's mapping (legacy path to file) to `out` or standard output; the counts on stderr.
/// A file is written beside `out` and renamed when complete: a failed export leaves nothing.
pub async fn mapping(
    ctx: &Context,
    run: &str,
    format: migrate::mapping::Format,
    url_prefix: &str,
    out: Option<std::path::PathBuf>,
) -> Result<ExitCode, MigrateError> {
    let failed = |path: &std::path::Path, e: std::io::Error| MigrateError::Usage(format!("{}: {e}", path.display()));
    let done = match &out {
        Some(path) => {
            let partial = path.with_extension("partial");
            let file = std::fs::File::create(&partial).map_err(|e| failed(&partial, e))?;
            let mut sink = std::io::BufWriter::new(file);
            let written = migrate::mapping::export(ctx, run, format, url_prefix, &mut sink).await;
            let flushed = written.and_then(|done| {
                sink.flush().map_err(|e| failed(&partial, e))?;
                Ok(done)
            });
            match flushed {
                Ok(done) => {
                    std::fs::rename(&partial, path).map_err(|e| failed(path, e))?;
                    done
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e);
                }
            }
        }
        None => {
            let mut sink = std::io::BufWriter::new(std::io::stdout());
            let done = migrate::mapping::export(ctx, run, format, url_prefix, &mut sink).await?;
            sink.flush().map_err(|e| MigrateError::Usage(format!("writing the mapping: {e}")))?;
            done
        }
    };
    eprintln!("run {run}: {} file(s) mapped, {} row(s) not copied (no mapping yet)", done.lines, done.skipped);
    if done.unnamed > 0 {
        eprintln!(
            "run {run}: {} copied file(s) left out: their legacy paths hold control characters, which this format cannot name",
            done.unnamed
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Every run on one HTML page at `path` (written beside it, then renamed: complete or absent).
pub async fn html(ctx: &Context, path: &std::path::Path) -> Result<ExitCode, MigrateError> {
    let o = migrate::overview::overview(ctx).await?;
    let partial = path.with_extension("partial");
    let failed = |p: &std::path::Path, e: std::io::Error| MigrateError::Usage(format!("{}: {e}", p.display()));
    std::fs::write(&partial, migrate::overview::html(&o)).map_err(|e| failed(&partial, e))?;
    std::fs::rename(&partial, path).map_err(|e| failed(path, e))?;
    eprintln!("{}: {} run(s)", path.display(), o.runs.len());
    Ok(ExitCode::SUCCESS)
}
