//! `migrate run`: copy the run's pending files with local workers.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use migrate::plan::CopySettings;
use migrate::run::{Event, RunOptions};
use migrate::{Context, MigrateError};

use crate::parse_bytes;

/// A rate a token bucket can pay out: finite and above zero.
fn parse_rate(raw: &str) -> Result<f64, String> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0)
        .ok_or_else(|| format!("{raw:?} is not a rate above 0 (requests per second, e.g. 50 or 0.5)"))
}

/// A bandwidth above zero.
fn parse_rate_bytes(raw: &str) -> Result<u64, String> {
    parse_bytes(raw)
        .and_then(|b| if b > 0 { Ok(b) } else { Err(format!("{raw:?} is no bandwidth: more than 0 bytes a second")) })
}

#[derive(clap::Args)]
pub struct Args {
    pub run: String,
    /// Copies at once (1 to 1024).
    #[arg(long, default_value_t = matbakh_core::migration::DEFAULT_TRANSFERS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub transfers: usize,
    /// Bandwidth limit for the process, bytes per second (`50MiB`; more than 0).
    #[arg(long, value_parser = parse_rate_bytes)]
    pub bandwidth: Option<u64>,
    /// Request-rate limit for the process, requests per second (more than 0).
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// File data held in memory at once.
    #[arg(long, default_value = "128MiB", value_parser = parse_bytes)]
    pub buffer: u64,
}

pub async fn run(ctx: &Context, sdk: &SdkConfig, args: Args, json: bool) -> Result<ExitCode, MigrateError> {
    let Args { run, transfers, bandwidth, rate, buffer } = args;
    let record = ctx.run(&run).await?;
    let source = migrate::source::open(&record.source, sdk, CopySettings::of(&record)?.http)?;
    let opts = RunOptions { transfers, bandwidth, request_rate: rate, buffer_bytes: buffer, ..RunOptions::default() };
    let tty = !json && std::io::stderr().is_terminal();
    let progress = Arc::new(Mutex::new(Progress::new(record.total_files)));
    let events: migrate::run::Events = Arc::new(move |e: &Event| {
        if json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", serde_json::to_string(e).unwrap_or_default());
            let _ = out.flush();
            return;
        }
        let Ok(mut p) = progress.lock() else { return };
        p.note(e);
        if tty {
            p.show();
        }
    });
    let summary = migrate::run::run(ctx, &run, source, &opts, events).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({"event": "summary", "summary": summary})).unwrap_or_default()
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

/// What `run` shows on a terminal while it copies.
struct Progress {
    total: u64,
    files: u64,
    bytes: u64,
    failed: u64,
    started: Instant,
    shown: Instant,
}

impl Progress {
    fn new(total: u64) -> Self {
        Progress { total, files: 0, bytes: 0, failed: 0, started: Instant::now(), shown: Instant::now() }
    }

    fn note(&mut self, e: &Event) {
        match e {
            Event::Started { done_files, .. } => self.files = *done_files,
            Event::Copied { size, .. } => {
                self.files += 1;
                self.bytes += size;
            }
            Event::Failed { source, reason, message, .. } => {
                self.failed += 1;
                eprintln!("\nfailed: {source}: {reason}: {message}");
            }
            Event::Flushed { .. } => {}
        }
    }

    /// One status line, at most five times a second.
    fn show(&mut self) {
        if self.shown.elapsed() > Duration::from_millis(200) {
            self.shown = Instant::now();
            let rate = self.bytes as f64 / self.started.elapsed().as_secs_f64().max(1e-3) / (1024.0 * 1024.0);
            eprint!("\r{}/{} files, {:.1} MiB/s, {} failed   ", self.files, self.total, rate, self.failed);
        }
    }
}
