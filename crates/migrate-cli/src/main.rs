//! `migrate`: the engineers' CLI for moving legacy files into the platform bucket.
//! Wiring only: arguments (one module per command under `commands`), the AWS configuration,
//! output and exit codes; the migration itself is the `migrate` library.

mod commands;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use matbakh_core::clock::SystemClock;
use matbakh_core::migration::Control;
use migrate::verify::VerifyOptions;
use migrate::{Context, MigrateError};

use commands::{control, cutover, enqueue, plan, report, run, verify};

#[derive(Parser)]
#[command(name = "migrate", about = "Move legacy files into the platform bucket: plan, run, verify, roll back.")]
struct Cli {
    /// Machine-readable output: one JSON document (or one JSON line per event for `run`).
    #[arg(long, global = true)]
    json: bool,
    /// The migration table (DynamoDB).
    #[arg(long, env = "MIGRATION_TABLE", global = true)]
    table: Option<String>,
    /// The platform's files table: migrated files in the user layout are registered there, and
    /// `verify` checks their rows. Without it, files are copied without rows.
    #[arg(long, env = "TABLE_NAME", global = true)]
    files_table: Option<String>,
    /// The secret holding the key of the erase pseudonyms (the stack's `ErasePseudonymSecret`):
    /// required with `--files-table`, so that no run copies back the files of a user who
    /// erased their account.
    #[arg(long, env = "ERASE_PSEUDONYM_SECRET_ID", global = true)]
    erase_secret_id: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inventory the source, write the manifest and the run's ledger.
    Plan(plan::Args),
    /// Copy the run's pending files with local workers.
    Run(run::Args),
    /// Send the run's pending work to the migration queue for the migration-worker function.
    Enqueue {
        run: String,
        /// The queue's URL.
        #[arg(long, env = "MIGRATION_QUEUE_URL")]
        queue: String,
    },
    /// Progress: files, bytes, rate, ETA, failures by reason.
    Status {
        run: String,
        /// Refresh every second until the run stops.
        #[arg(long)]
        watch: bool,
    },
    /// Every run, newest first.
    Runs,
    /// Workers take no new files; those in flight finish.
    Pause { run: String },
    /// Let workers take files again (then `migrate run`).
    Resume { run: String },
    /// Stop for good; the ledger keeps what was done.
    Abort { run: String },
    /// Check every copied file against the manifest.
    Verify {
        run: String,
        /// Read every object back and hash it.
        #[arg(long)]
        deep: bool,
        /// Check N random rows only.
        #[arg(long)]
        sample: Option<usize>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Restore the target exactly as it was before the run (needs versioning).
    Rollback {
        run: String,
        #[arg(long)]
        dry_run: bool,
        /// The files CDN's distribution (the stack's FilesDistributionId): asked to forget the
        /// public copies and transform results of the files the rollback takes away.
        #[arg(long, env = "FILES_DISTRIBUTION_ID")]
        invalidate: Option<String>,
        /// Without --files-table, roll a run in the user layout back anyway: its objects go,
        /// its file rows and mappings stay until a rollback with the table.
        #[arg(long)]
        keep_file_rows: bool,
    },
    /// Rewrite what runs recorded of users who erased their account since (ledger rows,
    /// manifests, metadata mismatches) so that nothing names them; every erase asks the
    /// migration worker for this, so by hand it is a check (needs --files-table).
    Redact {
        /// One run (default: every run).
        #[arg(long)]
        run: Option<String>,
    },
    /// Switch a legacy prefix to the platform (only when all of it is migrated and verified) or
    /// back to the legacy store; `--status` lists the switches.
    Cutover(cutover::Args),
    /// The final backup of the legacy tree: paths kept under the target, in an archive storage
    /// class, planned, copied and verified in one go (exit 1 if verify fails).
    ArchiveLegacy {
        #[arg(long)]
        source: String,
        /// `s3://bucket/prefix` (a prefix is required: `legacy-archive/2026-12-05`).
        #[arg(long)]
        target: String,
        #[arg(long, default_value = "DEEP_ARCHIVE", value_parser = migrate::plan::StorageClass::parse)]
        storage_class: migrate::plan::StorageClass,
    },
    /// Whether the legacy store can go: every file migrated, verified and switched, and no request
    /// served by the legacy store for --quiet-days (exit 1 if not).
    DecommissionCheck {
        /// The legacy source the runs copied.
        #[arg(long)]
        source: String,
        /// `legacy_path,reason` lines: files that need not be migrated.
        #[arg(long)]
        exclude: Option<std::path::PathBuf>,
        /// Days without a request served by the legacy store (the legacy redirector's counts;
        /// at most 36,500).
        #[arg(long, default_value_t = matbakh_core::migration::redirect::DEFAULT_QUIET_DAYS,
              value_parser = clap::value_parser!(u32).range(0..=36_500))]
        quiet_days: u32,
    },
    /// Which legacy path became which file (copied rows only), for rewriting pages and links.
    Mapping {
        run: String,
        /// csv, json (a line each) or nginx (a `map $uri $matbakh_file` block).
        #[arg(long, default_value = "csv", value_parser = migrate::mapping::Format::parse)]
        format: migrate::mapping::Format,
        /// nginx: the URL path the legacy store served the tree under (e.g. `/uploads`).
        #[arg(long, default_value = "")]
        url_prefix: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Summary, failures by reason, checksum coverage; `--all --html FILE`: every run on one page.
    Report {
        run: Option<String>,
        /// Write the failed rows as CSV here.
        #[arg(long)]
        failures_csv: Option<std::path::PathBuf>,
        /// Every run (with --html).
        #[arg(long)]
        all: bool,
        /// Write the report of every run as one HTML page (charts inline, no external asset).
        #[arg(long)]
        html: Option<std::path::PathBuf>,
    },
}

pub(crate) fn parse_bytes(raw: &str) -> Result<u64, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(raw.len());
    let (num, unit) = raw.split_at(split);
    let num: f64 = num.parse().map_err(|_| format!("{raw:?} is not a size (e.g. 8MiB, 500K, 1G)"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown unit {other:?} in {raw:?}")),
    };
    Ok((num * mult) as u64)
}

pub(crate) fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

async fn execute(cli: Cli) -> Result<ExitCode, MigrateError> {
    let table = cli.table.clone().ok_or_else(|| MigrateError::Usage("set --table or MIGRATION_TABLE".into()))?;
    let sdk = matbakh_aws::config::load_sdk_config_chain().await;
    let mut ctx = Context::new(&sdk, &table, Arc::new(SystemClock));
    if let Some(files) = &cli.files_table {
        let secret = cli.erase_secret_id.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
            MigrateError::Usage(
                "with --files-table, set --erase-secret-id or ERASE_PSEUDONYM_SECRET_ID (the stack's ErasePseudonymSecret): runs must not copy back an erased user's files".into(),
            )
        })?;
        let erasures = matbakh_aws::secrets::pseudonym_key(&sdk, secret).await.map_err(MigrateError::Usage)?;
        ctx = ctx.with_files(&sdk, files, erasures);
    }
    let json = cli.json;
    match cli.command {
        Command::Plan(args) => plan::run(&ctx, &sdk, args, json).await,
        Command::Run(args) => run::run(&ctx, &sdk, args, json).await,
        Command::Enqueue { run, queue } => enqueue::run(&ctx, &sdk, &run, queue, json).await,
        Command::Status { run, watch } => control::status(&ctx, &run, watch, json).await,
        Command::Runs => control::runs(&ctx, json).await,
        Command::Pause { run } => control::control(&ctx, &run, Control::Pause, json).await,
        Command::Resume { run } => control::control(&ctx, &run, Control::Resume, json).await,
        Command::Abort { run } => control::control(&ctx, &run, Control::Abort, json).await,
        Command::Verify { run, deep, sample, seed } => {
            verify::run(&ctx, &run, VerifyOptions { deep, sample, seed }, json).await
        }
        Command::Rollback { run, dry_run, invalidate, keep_file_rows } => {
            let invalidate = invalidate.filter(|id| !id.is_empty()).map(|id| matbakh_aws::cdn::Cdn::new(&sdk, id));
            let opts = migrate::rollback::RollbackOptions { dry_run, invalidate, keep_file_rows };
            report::rollback(&ctx, &run, &opts, json).await
        }
        Command::Redact { run } => report::redact(&ctx, run.as_deref(), json).await,
        Command::Report { run, failures_csv, all, html } => match (run, all, html) {
            (Some(run), false, None) => report::report(&ctx, &run, failures_csv, json).await,
            (None, true, Some(path)) if failures_csv.is_none() => report::html(&ctx, &path).await,
            _ => Err(MigrateError::Usage("report RUN [--failures-csv F], or report --all --html FILE".into())),
        },
        Command::Cutover(args) => cutover::run(&ctx, &sdk, args, json).await,
        Command::DecommissionCheck { source, exclude, quiet_days } => {
            cutover::decommission_check(&ctx, &sdk, &source, exclude.as_deref(), quiet_days, json).await
        }
        Command::ArchiveLegacy { source, target, storage_class } => {
            plan::archive_legacy(&ctx, &sdk, &source, &target, storage_class, json).await
        }
        Command::Mapping { run, format, url_prefix, out } => {
            report::mapping(&ctx, &run, format, &url_prefix, out).await
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // File buffers are large and short-lived, read on many blocking threads: with one malloc
    // arena per thread, freed buffers pile up in arenas nobody reuses and memory grows past the
    // transfer buffer budget. Two arenas keep them reused (no new pages to fault in).
    // SAFETY: mallopt only changes allocator tuning and is called before any other thread runs.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let cli = Cli::parse();
    let json = cli.json;
    match execute(cli).await {
        Ok(code) => code,
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({"error": e.to_string(), "retryable": e.is_retryable()}));
            } else {
                eprintln!("migrate: {e}");
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
