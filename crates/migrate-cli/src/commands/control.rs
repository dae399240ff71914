//! `migrate status`, `runs`, `pause`, `resume`, `abort`: where runs are, and steering them.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use matbakh_core::migration::{Control, RunState};
use migrate::control::{progress_line, status_of};
use migrate::{Context, MigrateError};

use crate::print_json;

/// Progress of one run: files, bytes, rate, ETA, failures by reason; with `watch`, every second
/// until the run stops.
pub async fn status(ctx: &Context, run: &str, watch: bool, json: bool) -> Result<ExitCode, MigrateError> {
    loop {
        let s = status_of(&ctx.run(run).await?);
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
    }
}

/// Every run, newest first.
pub async fn runs(ctx: &Context, json: bool) -> Result<ExitCode, MigrateError> {
    let runs = migrate::control::runs(ctx).await?;
    if json {
        print_json(&runs);
    } else {
        for s in &runs {
            println!("{}  {}  {} -> {}", s.run, progress_line(s), s.source, s.target);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Pause, resume or abort a run.
pub async fn control(ctx: &Context, run: &str, c: Control, json: bool) -> Result<ExitCode, MigrateError> {
    let state = migrate::control::apply(ctx, run, c).await?;
    if json {
        println!("{}", serde_json::json!({"run": run, "state": state}));
    } else {
        println!("run {run}: {state}");
    }
    Ok(ExitCode::SUCCESS)
}
