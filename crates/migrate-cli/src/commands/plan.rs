//! `migrate plan`: inventory the source, write the manifest and the run's ledger.

use std::collections::HashMap;
use std::process::ExitCode;

use aws_config::SdkConfig;
use matbakh_core::migration::Priority;
use matbakh_core::migration::mapping::{KeyRule, Mapper};
use migrate::egress::{HttpPolicy, Redirects};
use migrate::plan::{CopySettings, PlanOptions, StorageClass};
use migrate::{Context, MigrateError};

use crate::{parse_bytes, print_json};

#[derive(clap::Args)]
pub struct Args {
    /// `file:///path` of the legacy tree, `https-list:///path/urls.txt` (a web server's
    /// files), or `s3://bucket/prefix`.
    #[arg(long)]
    pub source: String,
    /// `s3://bucket/prefix` in the platform bucket.
    #[arg(long)]
    pub target: String,
    /// `platform` (users/{user}/{fileId}/{safeName}), `keep`, `lowercase` or `template:...`.
    #[arg(long, default_value = "platform")]
    pub map: String,
    /// Which path segment (1-based) names the legacy owner.
    #[arg(long, default_value_t = 2)]
    pub owner_segment: usize,
    /// CSV of `legacy_owner,user_id` lines.
    #[arg(long)]
    pub owners: Option<std::path::PathBuf>,
    /// newest, oldest, smallest or path.
    #[arg(long, default_value = "newest")]
    pub priority: String,
    #[arg(long, default_value_t = matbakh_core::migration::DEFAULT_BATCH_FILES)]
    pub batch_files: usize,
    #[arg(long, default_value = "64MiB", value_parser = parse_bytes)]
    pub batch_bytes: u64,
    #[arg(long, default_value = "64MiB", value_parser = parse_bytes)]
    pub multipart_threshold: u64,
    #[arg(long, default_value = "8MiB", value_parser = parse_bytes)]
    pub part_size: u64,
    /// Used for the duration estimate.
    #[arg(long, default_value_t = matbakh_core::migration::DEFAULT_TRANSFERS)]
    pub transfers: usize,
    /// Print counts, bytes, duration and cost; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also write the manifest (JSONL) here.
    #[arg(long)]
    pub manifest_out: Option<std::path::PathBuf>,
    /// Memory each of plan's two sorts holds before it spills a sorted run to disk.
    #[arg(long, default_value = "32MiB", value_parser = parse_bytes)]
    pub sort_memory: u64,
    /// Web server sources: `none` (a redirect fails the file) or `same-origin` (same
    /// scheme, host and port, a few hops). Stored with the run for every worker.
    #[arg(long, default_value = "none", value_parser = Redirects::parse)]
    pub follow_redirects: Redirects,
    /// Web server sources: also connect to loopback, link-local and private addresses
    /// (refused by default). Stored with the run for every worker.
    #[arg(long)]
    pub allow_private_addresses: bool,
    /// The S3 storage class copies are written in (STANDARD unless set; DEEP_ARCHIVE, GLACIER,
    /// GLACIER_IR, STANDARD_IA, ...).
    #[arg(long, value_parser = StorageClass::parse)]
    pub storage_class: Option<StorageClass>,
    /// The legacy file table: `postgres://user@host:port/db` (the password from PGPASSWORD or
    /// the URL), a `.csv` file with a header line, or a `.jsonl` file. Read whole before
    /// anything is written; each file takes its row's owner, name, upload time, tags...
    #[arg(long)]
    pub metadata: Option<String>,
    /// The query that gives the legacy rows (a database; `SELECT * FROM files` unless set).
    #[arg(long, conflicts_with = "metadata_query_file")]
    pub metadata_query: Option<String>,
    /// The query, from a file.
    #[arg(long)]
    pub metadata_query_file: Option<std::path::PathBuf>,
    /// `field=column,...`: where a field is read from when its column has another name
    /// (fields: path, owner, name, uploaded_at, content_type, visibility, tags, metadata.<key>).
    #[arg(long, default_value = "")]
    pub metadata_map: String,
    /// A delta of this run (the cutover's last sync): files it (and the runs it was a delta of)
    /// copied and the source lists unchanged (size, modification time, change token) are
    /// neither read nor copied; a changed file gets a key of its own.
    #[arg(long, value_parser = parse_run_id)]
    pub since: Option<matbakh_core::migration::RunId>,
}

fn parse_run_id(raw: &str) -> Result<matbakh_core::migration::RunId, String> {
    matbakh_core::migration::RunId::parse(raw).map_err(|e| e.to_string())
}

pub async fn run(ctx: &Context, sdk: &SdkConfig, args: Args, json: bool) -> Result<ExitCode, MigrateError> {
    let Args {
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
        storage_class,
        metadata,
        metadata_query,
        metadata_query_file,
        metadata_map,
        since,
    } = args;
    // The legacy rows first: a database that cannot be read stops the plan before anything.
    let fields = matbakh_core::migration::legacy_meta::FieldMap::parse(&metadata_map)?;
    let query = match metadata_query_file {
        Some(path) => Some(
            std::fs::read_to_string(&path)
                .map_err(|e| MigrateError::Usage(format!("--metadata-query-file {}: {e}", path.display())))?,
        ),
        None => metadata_query,
    };
    let metadata = match metadata {
        Some(url) => {
            let src = migrate::metadata::MetadataSource { url, query, map: fields };
            Some(std::sync::Arc::new(migrate::metadata::load(&src).await?))
        }
        None if query.is_some() || !metadata_map.is_empty() => {
            return Err(MigrateError::Usage("--metadata-query and --metadata-map need --metadata".into()));
        }
        None => None,
    };
    let http = HttpPolicy { redirects: follow_redirects, allow_private_addresses };
    let src = migrate::source::open(&source, sdk, http)?;
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
        copy: CopySettings { multipart_threshold, part_size, http, storage_class },
        transfers,
        hash_parallelism: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        chunk_files: migrate::plan::PLAN_CHUNK,
        sort_bytes: usize::try_from(sort_memory).unwrap_or(usize::MAX),
        dry_run,
        manifest_out,
        metadata,
        since,
    };
    let planned = migrate::plan::plan(ctx, src, &opts).await?;
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
        if let Some(d) = &planned.delta {
            println!(
                "  delta of {} ({} run(s)): {} unchanged (not read), {} read again with the same bytes, {} changed, {} new, {} not copied before{}",
                d.since,
                d.chain,
                d.unchanged,
                d.same_bytes,
                d.changed,
                d.new,
                d.uncopied,
                if planned.run.is_none() {
                    " (a dry run reads nothing: changed counts what would be read)"
                } else {
                    ""
                }
            );
            if d.gone > 0 {
                println!(
                    "  {} file(s) copied before are no longer in the source (nothing is deleted for them):",
                    d.gone
                );
                for p in &d.gone_listed {
                    println!("    {p}");
                }
            }
        }
        println!("  {} target keys exist already (written only if unchanged at copy time)", planned.existing_targets);
        if planned.erased_left_out > 0 {
            println!("  {} files of users who erased their account left out", planned.erased_left_out);
        }
        for u in &planned.unreadable {
            println!("  unreadable, recorded as failed: {u}");
        }
        if let Some(m) = &planned.metadata {
            println!(
                "  legacy rows ({}): {} read, {} file(s) took their row, {} file(s) without a row, {} row(s) without a file, {} row(s) invalid",
                m.source, m.rows, m.matched_files, m.files_without_row, m.rows_without_file, m.invalid_rows
            );
            for l in &m.listed {
                let row = l.row.map(|r| format!(" (row {r})")).unwrap_or_default();
                let why = l.why.as_deref().map(|w| format!(": {w}")).unwrap_or_default();
                println!("    {}: {}{row}{why}", l.kind.describe(), l.path.as_deref().unwrap_or("(no path)"));
            }
            if let Some(key) = &m.mismatches_key {
                println!("    every one of them: {key} in the target bucket");
            }
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

/// `migrate archive-legacy`: the final backup of the legacy tree, paths kept as they are under
/// the target, in an archive storage class; planned, copied by local workers and verified in
/// one go (a run like any other: `report`, `verify --deep` after a restore, `rollback`).
pub async fn archive_legacy(
    ctx: &Context,
    sdk: &SdkConfig,
    source: &str,
    target: &str,
    storage_class: StorageClass,
    json: bool,
) -> Result<ExitCode, MigrateError> {
    let src = migrate::source::open(source, sdk, HttpPolicy::default())?;
    let (_, prefix) = migrate::parse_target(target)?;
    if prefix.is_empty() {
        return Err(MigrateError::Usage(format!(
            "{target}: name a prefix for the archive (s3://bucket/legacy-archive/2026-12-05)"
        )));
    }
    let mapper = Mapper {
        rule: KeyRule::parse("keep")?,
        prefix,
        owner_segment: 2,
        owners: HashMap::new(),
        source_id: src.url().to_owned(),
    };
    let opts = PlanOptions {
        target: target.to_owned(),
        mapper,
        priority: Priority::parse("path")?,
        batch_files: matbakh_core::migration::DEFAULT_BATCH_FILES,
        batch_bytes: matbakh_core::migration::DEFAULT_BATCH_BYTES,
        copy: CopySettings { storage_class: Some(storage_class), ..CopySettings::default() },
        transfers: matbakh_core::migration::DEFAULT_TRANSFERS,
        hash_parallelism: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        chunk_files: migrate::plan::PLAN_CHUNK,
        sort_bytes: 32 << 20,
        dry_run: false,
        manifest_out: None,
        metadata: None,
        since: None,
    };
    let planned = migrate::plan::plan(ctx, src.clone(), &opts).await?;
    let run = planned.run.ok_or_else(|| MigrateError::Check("the plan wrote no run".into()))?;
    let quiet: migrate::run::Events = std::sync::Arc::new(|_: &migrate::run::Event| {});
    let copied = migrate::run::run(ctx, &run, src, &migrate::run::RunOptions::default(), quiet).await?;
    let verified = migrate::verify::verify(ctx, &run, &migrate::verify::VerifyOptions::default()).await?;
    if json {
        print_json(&serde_json::json!({ "run": run, "copied": copied, "verify": verified }));
    } else {
        println!(
            "run {run}: {} file(s) archived to {target} in {}, {} failed; verify: {} of {} matched{}",
            copied.copied,
            storage_class.as_str(),
            copied.failed,
            verified.matched,
            verified.checked,
            if verified.passed() { "" } else { " (FAILED: see migrate verify)" }
        );
    }
    Ok(if verified.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
