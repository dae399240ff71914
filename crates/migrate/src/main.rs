//! `migrate`: the engineers' CLI for moving legacy files into the platform bucket.
//! Wiring only: arguments, the AWS configuration, output; the commands live in the library.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use matbakh_core::clock::SystemClock;
use matbakh_core::migration::mapping::{KeyRule, Mapper};
use matbakh_core::migration::{Control, Priority, RunState};
use migrate::control::{progress_line, status_of};
use migrate::egress::{HttpPolicy, Redirects};
use migrate::plan::{CopySettings, PlanOptions};
use migrate::run::{Event, RunOptions};
use migrate::verify::VerifyOptions;
use migrate::{Context, MigrateError};

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inventory the source, write the manifest and the run's ledger.
    Plan {
        /// `file:///path` of the legacy tree, `https-list:///path/urls.txt` (a web server's
        /// files), or `s3://bucket/prefix`.
        #[arg(long)]
        source: String,
        /// `s3://bucket/prefix` in the platform bucket.
        #[arg(long)]
        target: String,
        /// `platform` (users/{user}/{fileId}/{safeName}), `keep`, `lowercase` or `template:...`.
        #[arg(long, default_value = "platform")]
        map: String,
        /// Which path segment (1-based) names the legacy owner.
        #[arg(long, default_value_t = 2)]
        owner_segment: usize,
        /// CSV of `legacy_owner,user_id` lines.
        #[arg(long)]
        owners: Option<std::path::PathBuf>,
        /// newest, oldest, smallest or path.
        #[arg(long, default_value = "newest")]
        priority: String,
        #[arg(long, default_value_t = matbakh_core::migration::DEFAULT_BATCH_FILES)]
        batch_files: usize,
        #[arg(long, default_value = "64MiB", value_parser = parse_bytes)]
        batch_bytes: u64,
        #[arg(long, default_value = "64MiB", value_parser = parse_bytes)]
        multipart_threshold: u64,
        #[arg(long, default_value = "8MiB", value_parser = parse_bytes)]
        part_size: u64,
        /// Used for the duration estimate.
        #[arg(long, default_value_t = matbakh_core::migration::DEFAULT_TRANSFERS)]
        transfers: usize,
        /// Print counts, bytes, duration and cost; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also write the manifest (JSONL) here.
        #[arg(long)]
        manifest_out: Option<std::path::PathBuf>,
        /// Memory each of plan's two sorts holds before it spills a sorted run to disk.
        #[arg(long, default_value = "32MiB", value_parser = parse_bytes)]
        sort_memory: u64,
        /// Web server sources: `none` (a redirect fails the file) or `same-origin` (same
        /// scheme, host and port, a few hops). Stored with the run for every worker.
        #[arg(long, default_value = "none", value_parser = Redirects::parse)]
        follow_redirects: Redirects,
        /// Web server sources: also connect to loopback, link-local and private addresses
        /// (refused by default). Stored with the run for every worker.
        #[arg(long)]
        allow_private_addresses: bool,
    },
    /// Copy the run's pending files with local workers.
    Run {
        run: String,
        #[arg(long, default_value_t = matbakh_core::migration::DEFAULT_TRANSFERS)]
        transfers: usize,
        /// Bandwidth limit for the process, bytes per second (`50MiB`).
        #[arg(long, value_parser = parse_bytes)]
        bandwidth: Option<u64>,
        /// Request-rate limit for the process, requests per second.
        #[arg(long)]
        rate: Option<f64>,
        /// File data held in memory at once.
        #[arg(long, default_value = "128MiB", value_parser = parse_bytes)]
        buffer: u64,
    },
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
    },
    /// Summary, failures by reason, checksum coverage.
    Report {
        run: String,
        /// Write the failed rows as CSV here.
        #[arg(long)]
        failures_csv: Option<std::path::PathBuf>,
    },
}

fn parse_bytes(raw: &str) -> Result<u64, String> {
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

fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn owners_table(path: &std::path::Path) -> Result<HashMap<String, String>, MigrateError> {
    let text = std::fs::read_to_string(path).map_err(|e| MigrateError::Usage(format!("{}: {e}", path.display())))?;
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let (legacy, user) = line.split_once(',').ok_or_else(|| {
            MigrateError::Usage(format!("{}:{}: expected legacy_owner,user_id", path.display(), i + 1))
        })?;
        out.insert(legacy.trim().to_owned(), user.trim().to_owned());
    }
    Ok(out)
}

async fn execute(cli: Cli) -> Result<ExitCode, MigrateError> {
    let table = cli.table.clone().ok_or_else(|| MigrateError::Usage("set --table or MIGRATION_TABLE".into()))?;
    let sdk = matbakh_aws::config::load_sdk_config().await;
    let mut ctx = Context::new(&sdk, &table, Arc::new(SystemClock));
    if let Some(files) = &cli.files_table {
        ctx = ctx.with_files(&sdk, files);
    }
    let json = cli.json;
    match cli.command {
        Command::Plan {
            source,
            target,
            map,
            owner_segment,
            owners,
            priority,
            batch_files,
            batch_bytes,
            multipart_threshold,
            part_size,
            transfers,
            dry_run,
            manifest_out,
            sort_memory,
            follow_redirects,
            allow_private_addresses,
        } => {
            let http = HttpPolicy { redirects: follow_redirects, allow_private_addresses };
            let src = migrate::source::open(&source, &sdk, http)?;
            let (_, prefix) = migrate::parse_target(&target)?;
            let mapper = Mapper {
                rule: KeyRule::parse(&map)?,
                prefix,
                owner_segment,
                owners: owners.as_deref().map(owners_table).transpose()?.unwrap_or_default(),
                source_id: src.url().to_owned(),
            };
            let opts = PlanOptions {
                target,
                mapper,
                priority: Priority::parse(&priority)?,
                batch_files,
                batch_bytes,
                copy: CopySettings { multipart_threshold, part_size, http },
                transfers,
                hash_parallelism: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
                chunk_files: migrate::plan::PLAN_CHUNK,
                sort_bytes: usize::try_from(sort_memory).unwrap_or(usize::MAX),
                dry_run,
                manifest_out,
            };
            let planned = migrate::plan::plan(&ctx, src, &opts).await?;
            if json {
                print_json(&planned);
            } else {
                let e = &planned.estimate;
                println!(
                    "{}{} files, {:.3} GiB from {} to {}",
                    planned.run.as_deref().map(|r| format!("run {r}: ")).unwrap_or_else(|| "dry run: ".into()),
                    planned.files,
                    planned.bytes as f64 / (1u64 << 30) as f64,
                    planned.source,
                    planned.target
                );
                println!(
                    "  {} target keys exist already (written only if unchanged at copy time)",
                    planned.existing_targets
                );
                for u in &planned.unreadable {
                    println!("  unreadable, recorded as failed: {u}");
                }
                println!(
                    "  estimate: {:.0} s at the assumed rate, {} S3 requests + {} ledger writes = ${:.4}, storage ${:.4}/month",
                    e.seconds, e.s3_requests, e.ledger_writes, e.usd_requests, e.usd_storage_per_month
                );
                if let Some(run) = &planned.run {
                    println!("next: migrate run {run}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { run, transfers, bandwidth, rate, buffer } => {
            let record = ctx.run(&run).await?;
            let source = migrate::source::open(&record.source, &sdk, CopySettings::of(&record)?.http)?;
            let opts =
                RunOptions { transfers, bandwidth, request_rate: rate, buffer_bytes: buffer, ..RunOptions::default() };
            let tty = !json && std::io::stderr().is_terminal();
            let progress = Arc::new(Mutex::new((0u64, 0u64, 0u64, Instant::now(), Instant::now())));
            let total = record.total_files;
            let events: migrate::run::Events = Arc::new(move |e: &Event| {
                if json {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{}", serde_json::to_string(e).unwrap_or_default());
                    let _ = out.flush();
                    return;
                }
                let Ok(mut p) = progress.lock() else { return };
                match e {
                    Event::Started { done_files, .. } => p.0 = *done_files,
                    Event::Copied { size, .. } => {
                        p.0 += 1;
                        p.1 += size;
                    }
                    Event::Failed { source, reason, message, .. } => {
                        p.2 += 1;
                        eprintln!("\nfailed: {source}: {reason}: {message}");
                    }
                    Event::Flushed { .. } => {}
                }
                if tty && p.4.elapsed() > Duration::from_millis(200) {
                    p.4 = Instant::now();
                    let rate = p.1 as f64 / p.3.elapsed().as_secs_f64().max(1e-3) / (1024.0 * 1024.0);
                    eprint!("\r{}/{} files, {:.1} MiB/s, {} failed   ", p.0, total, rate, p.2);
                }
            });
            let summary = migrate::run::run(&ctx, &run, source, &opts, events).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&serde_json::json!({"event": "summary", "summary": summary}))
                        .unwrap_or_default()
                );
            } else {
                eprintln!();
                println!(
                    "run {}: {} — {} copied ({} recognised from an earlier attempt), {} failed, {} left, {:.3} GiB in {:.1} s, {} retries",
                    summary.run,
                    summary.state,
                    summary.copied,
                    summary.adopted,
                    summary.failed,
                    summary.remaining,
                    summary.bytes as f64 / (1u64 << 30) as f64,
                    summary.seconds,
                    summary.retries
                );
            }
            Ok(if summary.failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Command::Enqueue { run, queue } => {
            let queue = matbakh_aws::queue::Queue::new(&sdk, queue);
            let sent = migrate::work::enqueue(&ctx, &run, &queue, &sdk).await?;
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
        Command::Status { run, watch } => loop {
            let s = status_of(&ctx.run(&run).await?);
            if json {
                println!("{}", serde_json::to_string(&s).unwrap_or_default());
            } else if watch && std::io::stdout().is_terminal() {
                print!("\r{}   ", progress_line(&s));
                let _ = std::io::stdout().flush();
            } else {
                println!("{}", progress_line(&s));
            }
            let settled = !matches!(s.state, RunState::Running | RunState::Planned);
            if !watch || settled {
                if watch && !json {
                    println!();
                }
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        },
        Command::Runs => {
            let runs = migrate::control::runs(&ctx).await?;
            if json {
                print_json(&runs);
            } else {
                for s in &runs {
                    println!("{}  {}  {} -> {}", s.run, progress_line(s), s.source, s.target);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Pause { run } => control(&ctx, &run, Control::Pause, json).await,
        Command::Resume { run } => control(&ctx, &run, Control::Resume, json).await,
        Command::Abort { run } => control(&ctx, &run, Control::Abort, json).await,
        Command::Verify { run, deep, sample, seed } => {
            let v = migrate::verify::verify(&ctx, &run, &VerifyOptions { deep, sample, seed }).await?;
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
        Command::Rollback { run, dry_run } => {
            let r = migrate::rollback::rollback(&ctx, &run, dry_run).await?;
            if json {
                print_json(&r);
            } else {
                let verb = if dry_run { "would remove" } else { "removed" };
                println!("run {}: {verb} {} version(s) the run wrote, over {} rows", r.run, r.removed.len(), r.rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { run, failures_csv } => {
            let (report, rows) = migrate::report::report(&ctx, &run).await?;
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
    }
}

async fn control(ctx: &Context, run: &str, c: Control, json: bool) -> Result<ExitCode, MigrateError> {
    let state = migrate::control::apply(ctx, run, c).await?;
    if json {
        println!("{}", serde_json::json!({"run": run, "state": state}));
    } else {
        println!("run {run}: {state}");
    }
    Ok(ExitCode::SUCCESS)
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
