//! `migrate plan`: inventory the source (parallel walk and hashing), map every file to its
//! key, refuse collisions, note what each key holds now, order and batch the work, and write
//! the manifest (S3) and the run with its ledger rows (DynamoDB). `--dry-run` stops before
//! writing and prints counts, bytes, an estimated duration and cost.

use std::collections::HashMap;
use std::sync::Arc;

use matbakh_aws::ledger::{Counters, LedgerRow, RunRecord};
use matbakh_core::migration::cost::{Estimate, estimate};
use matbakh_core::migration::mapping::{Mapper, collisions};
use matbakh_core::migration::{Batcher, FailureReason, ManifestEntry, Prior, Priority, RowStatus, RunId, RunState};
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
    /// Files mapped, hashed and HEADed per step ([`PLAN_CHUNK`]).
    pub chunk_files: usize,
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

/// What each key holds now (HEADs, 32 at once), in the order of `keys`.
async fn priors(target: &matbakh_aws::transfer::Target, keys: &[String]) -> Result<Vec<Option<Prior>>, MigrateError> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(32) {
        let mut tasks = Vec::new();
        for key in chunk {
            let (t, key) = (target.clone(), key.clone());
            tasks.push(tokio::spawn(async move { t.head(&key, None).await }));
        }
        for t in tasks {
            let head = t.await.map_err(|e| MigrateError::Source(format!("head task: {e}")))??;
            out.push(head.map(|h| Prior { etag: h.etag, version_id: h.version_id }));
        }
    }
    Ok(out)
}

/// Files mapped, hashed and HEADed at a time: the plan's memory for file contents and
/// requests does not grow with the tree.
pub const PLAN_CHUNK: usize = 2048;

fn key_hash(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Refuses a key rule that fails for some file, or that sends two files to one key. Holds 12
/// bytes a file (a hash of its key), and the real keys only of files whose hashes meet.
fn check_keys(files: &[SourceFile], mapper: &Mapper) -> Result<(), MigrateError> {
    let mut bad = Vec::new();
    let mut hashes: Vec<(u64, u32)> = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        match mapper.key(&f.path, f.mtime_ms) {
            Ok(k) => hashes.push((key_hash(&k), i as u32)),
            Err(e) if bad.len() < 20 => bad.push(format!("{}: {e}", f.path)),
            Err(_) => {}
        }
    }
    if !bad.is_empty() {
        return Err(MigrateError::Check(format!("the key rule fails for some files:\n  {}", bad.join("\n  "))));
    }
    hashes.sort_unstable();
    let mut suspects = Vec::new();
    for group in hashes.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
        for &(_, i) in group {
            let f = &files[i as usize];
            suspects.push((f.path.as_str(), mapper.key(&f.path, f.mtime_ms).unwrap_or_default()));
        }
    }
    let found = collisions(suspects.iter().map(|(s, k)| (*s, k.as_str())));
    if !found.is_empty() {
        let lines: Vec<String> = found.iter().take(20).map(|(k, s)| format!("{k} <- {}", s.join(", "))).collect();
        return Err(MigrateError::Check(format!(
            "{} target key(s) would receive more than one file; change the rule:\n  {}",
            found.len(),
            lines.join("\n  ")
        )));
    }
    Ok(())
}

/// A file in the plan's scratch directory, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        Scratch(std::env::temp_dir().join(format!("migrate-{}-{:08x}-{name}", std::process::id(), random_u32())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> MigrateError + '_ {
    move |e| MigrateError::Usage(format!("{}: {e}", path.display()))
}

/// Where a file's entry lies in the scratch file, and where it goes in the order.
struct Spilled {
    rank: u64,
    index: u32,
    offset: u64,
    len: u32,
}

pub async fn plan(ctx: &Context, source: Arc<dyn Source>, opts: &PlanOptions) -> Result<Planned, MigrateError> {
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    let (target, _prefix) = ctx.target(&opts.target)?;
    let mut files = source.list().await?;
    if files.is_empty() {
        return Err(MigrateError::Usage(format!("source {} has no files", source.url())));
    }
    // Path order, so a file's index breaks ties in the priority order as its path would.
    files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    // Keys first: a bad rule or a collision is found before any file is read.
    check_keys(&files, &opts.mapper)?;
    let sizes: Vec<u64> = files.iter().map(|f| f.size).collect();
    let est = estimate(&sizes, opts.transfers, opts.copy.multipart_threshold, opts.copy.part_size);
    let bytes: u64 = sizes.iter().sum();
    drop(sizes);
    let keys_of = |chunk: &[SourceFile]| -> Vec<String> {
        chunk.iter().map(|f| opts.mapper.key(&f.path, f.mtime_ms).unwrap_or_default()).collect()
    };
    if opts.dry_run {
        let mut existing = 0u64;
        for chunk in files.chunks(opts.chunk_files.max(1)) {
            existing += priors(&target, &keys_of(chunk)).await?.iter().filter(|p| p.is_some()).count() as u64;
        }
        return Ok(Planned {
            run: None,
            source: source.url().to_owned(),
            target: opts.target.clone(),
            files: files.len() as u64,
            bytes,
            unreadable: Vec::new(),
            existing_targets: existing,
            manifest_key: None,
            estimate: est.into(),
        });
    }

    // Phase 1, a chunk at a time: hash, HEAD, and spill each entry to a scratch file; keep
    // only where it lies and where it goes (24 bytes a file).
    let spill = Scratch::new("entries.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&spill.0).map_err(io(&spill.0))?);
    let mut spilled: Vec<Spilled> = Vec::with_capacity(files.len());
    let mut unreadable: HashMap<u32, String> = HashMap::new();
    let mut offset = 0u64;
    for (c, chunk) in files.chunks(opts.chunk_files.max(1)).enumerate() {
        let keys = keys_of(chunk);
        let hashed = hash_all(&source, chunk, opts.hash_parallelism).await?;
        let prior = priors(&target, &keys).await?;
        for (i, ((f, key), (h, prior))) in chunk.iter().zip(keys).zip(hashed.into_iter().zip(prior)).enumerate() {
            let index = (c * opts.chunk_files.max(1) + i) as u32;
            let (size, crc64nvme, sha256, content_type) = match h {
                Ok(h) => (h.size, h.crc64nvme, h.sha256, content_type_of(&h.head, &f.path)),
                Err(message) => {
                    unreadable.insert(index, message);
                    (f.size, String::new(), String::new(), "application/octet-stream".to_owned())
                }
            };
            let entry = ManifestEntry {
                seq: 0,
                source: f.path.clone(),
                prior,
                key,
                size,
                mtime_ms: f.mtime_ms,
                content_type,
                crc64nvme,
                sha256,
                priority: 0,
                batch: 0,
            };
            let line = serde_json::to_vec(&entry).map_err(|e| MigrateError::Check(format!("manifest: {e}")))?;
            out.write_all(&line).map_err(io(&spill.0))?;
            let len = line.len() as u32;
            spilled.push(Spilled { rank: opts.priority.rank(entry.mtime_ms, entry.size), index, offset, len });
            offset += u64::from(len);
        }
    }
    out.flush().map_err(io(&spill.0))?;
    drop(out);
    drop(files);
    spilled.sort_unstable_by_key(|s| (s.rank, s.index));

    // Phase 2, in order: number and batch each entry, write the manifest line and the ledger
    // row (25 a call, a few hundred rows held at once).
    let now_t = ctx.clock.now();
    let now = ctx.now();
    let id = RunId::new(now_t, random_u32());
    let manifest_tmp = Scratch::new("manifest.jsonl");
    let manifest_path = opts.manifest_out.clone().unwrap_or_else(|| manifest_tmp.0.clone());
    let entries_file = std::fs::File::open(&spill.0).map_err(io(&spill.0))?;
    let mut manifest = std::io::BufWriter::new(std::fs::File::create(&manifest_path).map_err(io(&manifest_path))?);
    let mut batcher = Batcher::new(opts.batch_files, opts.batch_bytes);
    let (mut total_files, mut total_bytes, mut existing) = (0u64, 0u64, 0u64);
    let mut rows: Vec<LedgerRow> = Vec::with_capacity(ROWS_AT_ONCE);
    let mut line = Vec::new();
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
    for s in &spilled {
        line.resize(s.len as usize, 0);
        entries_file.read_exact_at(&mut line, s.offset).map_err(io(&spill.0))?;
        let mut entry: ManifestEntry =
            serde_json::from_slice(&line).map_err(|e| MigrateError::Check(format!("scratch entry: {e}")))?;
        batcher.place(&mut entry);
        line.clear();
        serde_json::to_writer(&mut line, &entry).map_err(|e| MigrateError::Check(format!("manifest: {e}")))?;
        line.push(b'\n');
        crc.update(&line);
        manifest.write_all(&line).map_err(io(&manifest_path))?;
        total_files += 1;
        total_bytes += entry.size;
        existing += u64::from(entry.prior.is_some());
        let mut row = LedgerRow::pending(entry, &now);
        if let Some(message) = unreadable.get(&s.index) {
            row.status = RowStatus::Failed;
            row.reason = Some(FailureReason::SourceUnreadable);
            row.message = Some(message.clone());
        }
        rows.push(row);
        if rows.len() == ROWS_AT_ONCE {
            ctx.ledger.put_rows(&id, &rows).await?;
            rows.clear();
        }
    }
    ctx.ledger.put_rows(&id, &rows).await?;
    manifest.flush().map_err(io(&manifest_path))?;
    drop(manifest);
    let mkey = manifest_key(&id);
    let crc = crate::crc64_base64(crc.finalize());
    target.put_file(&mkey, &manifest_path, &crc, "application/x-ndjson").await?;

    // The run item last: a plan that dies half-way leaves no run to start.
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
        total_files,
        total_bytes,
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
        files: total_files,
        bytes: total_bytes,
        existing_targets: existing,
        unreadable,
        manifest_key: Some(mkey),
        estimate: est.into(),
    })
}

/// Ledger rows handed to DynamoDB at once during a plan (written 25 a call).
const ROWS_AT_ONCE: usize = 500;

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // aws-lc's generator; a failure here would mean no entropy at all.
    let _ = aws_lc_rs::rand::fill(&mut b);
    u32::from_be_bytes(b)
}
