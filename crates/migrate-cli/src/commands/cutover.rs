//! `migrate cutover`: switch a legacy prefix to the platform (checked) or back, or list the
//! switches.

use std::process::ExitCode;

use aws_config::SdkConfig;
use matbakh_core::migration::{LegacyPrefix, Switch};
use migrate::cutover::CutoverOptions;
use migrate::egress::HttpPolicy;
use migrate::{Context, MigrateError};

use crate::print_json;

#[derive(clap::Args)]
pub struct Args {
    /// The legacy source the runs copied (`file:///legacy`, `s3://...`, `https-list://...`).
    #[arg(long)]
    pub source: Option<String>,
    /// The legacy path prefix to switch (whole segments: `shop/42` is `shop/42/...`).
    #[arg(long)]
    pub prefix: Option<String>,
    /// `platform` (checked: every file under it migrated and verified) or `legacy` (back).
    #[arg(long, default_value = "platform")]
    pub to: String,
    /// Check and print; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Switch to the platform although files block it (recorded with --reason).
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub reason: Option<String>,
    /// List every prefix's switch instead.
    #[arg(long)]
    pub status: bool,
    /// The legacy CDN's distribution (the stack's LegacyDistributionId): what it cached of the
    /// prefix's old URLs is invalidated once the switch is recorded.
    #[arg(long, env = "LEGACY_DISTRIBUTION_ID")]
    pub invalidate: Option<String>,
    /// Where the old domain serves the legacy tree (the stack's LegacyUrlPrefix).
    #[arg(long, default_value = matbakh_core::migration::redirect::DEFAULT_URL_PREFIX)]
    pub url_prefix: String,
}

pub async fn run(ctx: &Context, sdk: &SdkConfig, args: Args, json: bool) -> Result<ExitCode, MigrateError> {
    if args.status {
        let all = migrate::cutover::status(ctx).await?;
        if json {
            print_json(&all);
        } else if all.is_empty() {
            println!("no prefix has been switched: every legacy URL is served by the legacy store");
        }
        for c in all.iter().filter(|_| !json) {
            let forced = c.forced_reason.as_deref().map(|r| format!("  FORCED: {r}")).unwrap_or_default();
            println!(
                "{}  {}  {}  since {}  ({} verified, {} blocking){forced}",
                c.source,
                c.prefix,
                c.to.as_str(),
                c.at,
                c.verified_files,
                c.blocking_files
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let usage = |m: &str| MigrateError::Usage(m.to_owned());
    let source = args.source.ok_or_else(|| usage("--source names the legacy source the runs copied"))?;
    let prefix = LegacyPrefix::parse(&args.prefix.ok_or_else(|| usage("--prefix names the part of the tree"))?)?;
    let to = Switch::parse(&args.to)?;
    if args.force != args.reason.is_some() {
        return Err(usage("--force and --reason go together"));
    }
    let src = migrate::source::open(&source, sdk, HttpPolicy::default())?;
    let invalidate = args
        .invalidate
        .filter(|id| !id.is_empty())
        .map(|id| (matbakh_aws::cdn::Cdn::new(sdk, id), args.url_prefix.clone()));
    let opts = CutoverOptions { prefix, to, dry_run: args.dry_run, force_reason: args.reason, invalidate };
    let r = migrate::cutover::cutover(ctx, src, &opts).await?;
    if json {
        print_json(&r);
    } else {
        let done = if r.recorded { "switched" } else { "would switch (dry run)" };
        println!("{} of {}: {done} to {} ({} file(s) verified)", r.prefix, r.source, r.to.as_str(), r.verified_files);
        if let Some(path) = &r.invalidation {
            println!("{}: invalidated at the legacy CDN", path);
        }
        if r.blocking_files > 0 {
            println!("{} of {} FORCED despite: {}", r.prefix, r.source, migrate::cutover::blocking_files(&r));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether the legacy store can go: exit 0 when nothing blocks, 1 otherwise (listing it).
pub async fn decommission_check(
    ctx: &Context,
    sdk: &SdkConfig,
    source: &str,
    exclude: Option<&std::path::Path>,
    quiet_days: u32,
    json: bool,
) -> Result<ExitCode, MigrateError> {
    let excluded = match exclude {
        Some(path) => migrate::cutover::exclusions(
            &std::fs::read_to_string(path).map_err(|e| MigrateError::Usage(format!("{}: {e}", path.display())))?,
        )?,
        None => Default::default(),
    };
    let src = migrate::source::open(source, sdk, HttpPolicy::default())?;
    let d = migrate::cutover::decommission_check(ctx, src, &excluded, quiet_days).await?;
    if json {
        print_json(&d);
    } else {
        println!(
            "{}: {} file(s) ({} excluded), {} migrated and verified, {} not; {} under no prefix switched to the platform (switched: {})",
            d.source,
            d.files,
            d.excluded_files,
            d.verified_files,
            d.blocking_files,
            d.unswitched_files,
            if d.switched.is_empty() { "none".to_owned() } else { d.switched.join(", ") }
        );
        for b in &d.blocking {
            println!("  {}: {}", b.path, b.why);
        }
        if d.never_counted {
            println!(
                "old URLs: the legacy redirector never counted a request for {}: is it in front of them (LEGACY_SOURCE)?",
                d.source
            );
        } else {
            let last = d.last_legacy_read.as_ref().map(|(at, path)| format!(" (last: {path} at {at})"));
            println!(
                "old URLs in the last {} day(s): {} served by the legacy store, {} moved to the platform{}",
                d.quiet_days,
                d.legacy_reads,
                d.redirects,
                last.unwrap_or_default()
            );
        }
        println!(
            "{}",
            if d.ready { "the legacy store can go (as far as the ledger tells)" } else { "the legacy store must stay" }
        );
    }
    Ok(if d.ready { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
