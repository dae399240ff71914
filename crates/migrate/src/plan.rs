//! `migrate plan`: inventory the source (parallel walk and hashing), map every file to its
//! key, refuse collisions, note what each key holds now, order and batch the work, and write
//! the manifest (S3) and the run with its ledger rows (DynamoDB). `--dry-run` stops before
//! writing and prints counts, bytes, an estimated duration and cost.

use std::collections::HashMap;
use std::sync::Arc;

use matbakh_aws::ledger::{Counters, LedgerRow, RunRecord};
use matbakh_core::migration::cost::{Estimate, estimate};
use matbakh_core::migration::mapping::{Mapper, collisions};
use matbakh_core::migration::{
    FailureReason, ManifestEntry, Prior, Priority, RowStatus, RunId, RunState, order_and_batch,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::source::{Digests, Source, SourceFile};
use crate::{Context, MigrateError, manifest_key};

/// How files are copied; stored on the run, so every worker of the run copies alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopySettings {
    pub multipart_threshold: u64,
    pub part_size: u64,
}

impl Default for CopySettings {
    fn default() -> Self {
        CopySettings {
            multipart_threshold: matbakh_core::migration::DEFAULT_MULTIPART_THRESHOLD,
            part_size: matbakh_core::migration::DEFAULT_PART_SIZE,
        }
    }
}

pub struct PlanOptions {
    pub target: String,
    pub mapper: Mapper,
    pub priority: Priority,
    pub batch_files: usize,
    pub batch_bytes: u64,
    pub copy: CopySettings,
    /// Used for the duration estimate.
    pub transfers: usize,
    /// Files hashed at once.
    pub hash_parallelism: usize,
    pub dry_run: bool,
    /// A local copy of the manifest (it is always stored in the target bucket too).
    pub manifest_out: Option<std::path::PathBuf>,
}

/// What a plan found (and, unless dry, wrote).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Planned {
    pub run: Option<String>,
    pub source: String,
    pub target: String,
    pub files: u64,
    pub bytes: u64,
    pub unreadable: Vec<String>,
    pub existing_targets: u64,
    pub manifest_key: Option<String>,
    pub estimate: EstimateView,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EstimateView {
    pub seconds: f64,
    pub s3_requests: u64,
    pub ledger_writes: u64,
    pub usd_requests: f64,
    pub usd_storage_per_month: f64,
}

impl From<Estimate> for EstimateView {
    fn from(e: Estimate) -> Self {
        EstimateView {
            seconds: e.seconds,
            s3_requests: e.s3_requests,
            ledger_writes: e.ledger_writes,
            usd_requests: e.usd_requests,
            usd_storage_per_month: e.usd_storage_per_month,
        }
    }
}

/// The magic bytes decide; the name's extension only when the bytes say nothing.
fn content_type_of(head: &[u8], name: &str) -> String {
    use matbakh_core::sniff::{Sniffed, sniff};
    match sniff(head) {
        Sniffed::Allowed(t) => t.as_str().to_owned(),
        _ => matbakh_core::types::ContentType::from_file_name(name)
            .map(|t| t.as_str().to_owned())
            .unwrap_or_else(|| "application/octet-stream".to_owned()),
    }
}

/// Reads every file once, `parallelism` at once. Unreadable files come back as errors.
async fn hash_all(
    source: &Arc<dyn Source>,
    files: &[SourceFile],
    parallelism: usize,
) -> Result<Vec<Result<Digests, String>>, MigrateError> {
    let permits = Arc::new(Semaphore::new(parallelism.max(1)));
    let mut tasks = Vec::with_capacity(files.len());
    for f in files {
        let permit = permits.clone().acquire_owned().await.map_err(|e| MigrateError::Source(e.to_string()))?;
        let (source, path) = (source.clone(), f.path.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            source.digest(&path).await.map_err(|e| format!("{path}: {e}"))
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.map_err(|e| MigrateError::Source(format!("hash task: {e}")))?);
    }
    Ok(out)
}

/// What each key holds now (HEADs, 32 at once).
async fn priors(
    target: &matbakh_aws::transfer::Target,
    keys: Vec<String>,
) -> Result<HashMap<String, Prior>, MigrateError> {
    let mut out = HashMap::new();
    for chunk in keys.chunks(32) {
        let mut tasks = Vec::new();
        for key in chunk {
            let (t, key) = (target.clone(), key.clone());
            tasks.push(tokio::spawn(async move { (key.clone(), t.head(&key, None).await) }));
        }
        for t in tasks {
            let (key, head) = t.await.map_err(|e| MigrateError::Source(format!("head task: {e}")))?;
            if let Some(h) = head? {
                out.insert(key, Prior { etag: h.etag, version_id: h.version_id });
            }
        }
    }
    Ok(out)
}

pub async fn plan(ctx: &Context, source: Arc<dyn Source>, opts: &PlanOptions) -> Result<Planned, MigrateError> {
    let (target, _prefix) = ctx.target(&opts.target)?;
    let files = source.list().await?;
    if files.is_empty() {
        return Err(MigrateError::Usage(format!("source {} has no files", source.url())));
    }
    // Keys first: a bad rule or a collision is found before any file is read.
    let mut keys = Vec::with_capacity(files.len());
    let mut bad = Vec::new();
    for f in &files {
        match opts.mapper.key(&f.path, f.mtime_ms) {
            Ok(k) => keys.push(k),
            Err(e) => {
                bad.push(format!("{}: {e}", f.path));
                keys.push(String::new());
            }
        }
    }
    if !bad.is_empty() {
        bad.truncate(20);
        return Err(MigrateError::Check(format!("the key rule fails for some files:\n  {}", bad.join("\n  "))));
    }
    let found = collisions(files.iter().map(|f| f.path.as_str()).zip(keys.iter().map(String::as_str)));
    if !found.is_empty() {
        let lines: Vec<String> = found.iter().take(20).map(|(k, s)| format!("{k} <- {}", s.join(", "))).collect();
        return Err(MigrateError::Check(format!(
            "{} target key(s) would receive more than one file; change the rule:\n  {}",
            found.len(),
            lines.join("\n  ")
        )));
    }

    let sizes: Vec<u64> = files.iter().map(|f| f.size).collect();
    let est = estimate(&sizes, opts.transfers, opts.copy.multipart_threshold, opts.copy.part_size);
    let bytes: u64 = sizes.iter().sum();
    if opts.dry_run {
        return Ok(Planned {
            run: None,
            source: source.url().to_owned(),
            target: opts.target.clone(),
            files: files.len() as u64,
            bytes,
            unreadable: Vec::new(),
            existing_targets: priors(&target, keys.clone()).await?.len() as u64,
            manifest_key: None,
            estimate: est.into(),
        });
    }

    let hashed = hash_all(&source, &files, opts.hash_parallelism).await?;
    let prior = priors(&target, keys.clone()).await?;
    let mut entries = Vec::with_capacity(files.len());
    let mut unreadable = HashMap::new();
    for ((f, key), h) in files.iter().zip(keys).zip(hashed) {
        let (size, crc64nvme, sha256, content_type) = match h {
            Ok(h) => (h.size, h.crc64nvme, h.sha256, content_type_of(&h.head, &f.path)),
            Err(message) => {
                unreadable.insert(f.path.clone(), message);
                (f.size, String::new(), String::new(), "application/octet-stream".to_owned())
            }
        };
        entries.push(ManifestEntry {
            seq: 0,
            source: f.path.clone(),
            prior: prior.get(&key).cloned(),
            key,
            size,
            mtime_ms: f.mtime_ms,
            content_type,
            crc64nvme,
            sha256,
            priority: 0,
            batch: 0,
        });
    }
    order_and_batch(&mut entries, opts.priority, opts.batch_files, opts.batch_bytes);

    let now_t = ctx.clock.now();
    let now = ctx.now();
    let id = RunId::new(now_t, random_u32());
    let manifest: String = entries
        .iter()
        .map(|e| serde_json::to_string(e).map(|l| l + "\n"))
        .collect::<Result<_, _>>()
        .map_err(|e| MigrateError::Check(format!("manifest: {e}")))?;
    let mkey = manifest_key(&id);
    if let Some(path) = &opts.manifest_out {
        std::fs::write(path, &manifest).map_err(|e| MigrateError::Usage(format!("{}: {e}", path.display())))?;
    }
    target.put_plain(&mkey, manifest.into_bytes(), "application/x-ndjson").await?;
    let rows: Vec<LedgerRow> = entries
        .iter()
        .map(|e| {
            let mut row = LedgerRow::pending(e.clone(), &now);
            if let Some(message) = unreadable.get(&e.source) {
                row.status = RowStatus::Failed;
                row.reason = Some(FailureReason::SourceUnreadable);
                row.message = Some(message.clone());
            }
            row
        })
        .collect();
    // Rows first, the run item last: a plan that dies half-way leaves no run to start.
    ctx.ledger.put_rows(&id, &rows).await?;
    let mut counters = Counters { failed_files: unreadable.len() as u64, ..Counters::default() };
    if !unreadable.is_empty() {
        counters.failures.insert(FailureReason::SourceUnreadable, unreadable.len() as i64);
    }
    let run = RunRecord {
        id: id.clone(),
        state: RunState::Planned,
        source: source.url().to_owned(),
        target: opts.target.clone(),
        rule: opts.mapper.rule.describe(),
        created_at: now.clone(),
        total_files: entries.len() as u64,
        total_bytes: entries.iter().map(|e| e.size).sum(),
        manifest_key: mkey.clone(),
        settings: serde_json::to_string(&opts.copy).map_err(|e| MigrateError::Check(e.to_string()))?,
        counters: Counters::default(),
        started_at: None,
        updated_at: None,
    };
    ctx.ledger.create_run(&run).await?;
    ctx.ledger.reset_counters(&id, &counters, &now).await?;
    let mut unreadable: Vec<String> = unreadable.into_values().collect();
    unreadable.sort();
    Ok(Planned {
        run: Some(id.to_string()),
        source: source.url().to_owned(),
        target: opts.target.clone(),
        files: run.total_files,
        bytes: run.total_bytes,
        existing_targets: entries.iter().filter(|e| e.prior.is_some()).count() as u64,
        unreadable,
        manifest_key: Some(mkey),
        estimate: est.into(),
    })
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // aws-lc's generator; a failure here would mean no entropy at all.
    let _ = aws_lc_rs::rand::fill(&mut b);
    u32::from_be_bytes(b)
}
