//! `migrate plan`: inventory the source (parallel walk and hashing), map every file to its
//! key, refuse collisions, note what each key holds now, order and batch the work, and write
//! the manifest (S3) and the run with its ledger rows (DynamoDB). `--dry-run` stops before
//! writing and prints counts, bytes, an estimated duration and cost.
//!
//! `--since RUN` plans a delta ([`crate::delta`]): the listing meets what the earlier runs
//! copied, and only the files that changed (new, rewritten, never copied) are planned.
//!
//! Memory does not grow with the tree: the listing streams into two external sorts (copy
//! order; target keys, where collisions meet; a delta joins it with the runs in a third, by
//! path, first), and the files are then hashed, HEADed and written out a step at a time in
//! order.

use std::sync::Arc;

use matbakh_aws::ledger::{Counters, LedgerRow, RunRecord};
use matbakh_core::migration::cost::{Estimate, Estimator};
use matbakh_core::migration::delta::{self, Known, Verdict};
use matbakh_core::migration::mapping::{Mapper, collisions};
use matbakh_core::migration::{Batcher, FailureReason, ManifestEntry, Prior, Priority, RowStatus, RunId, RunState};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::delta::{DeltaReport, Join};
use crate::egress::HttpPolicy;
use crate::extsort::{ExtSort, Scratch, Sorted, io, random_u32};
use crate::metadata::{LegacyRows, MetadataReport, Mismatch};
use crate::source::{Digests, Source, SourceFile};
use crate::{Context, MigrateError, manifest_key};
use matbakh_core::migration::legacy_meta::LegacyMeta;

/// How files are copied; stored on the run, so every worker of the run copies alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopySettings {
    pub multipart_threshold: u64,
    pub part_size: u64,
    /// Where a web server's files may be fetched from (runs planned without it: the default,
    /// no redirects and public addresses only).
    #[serde(default)]
    pub http: HttpPolicy,
    /// The S3 storage class copies are written in (`None`: Standard; `archive-legacy` uses
    /// `DEEP_ARCHIVE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<StorageClass>,
}

impl CopySettings {
    /// Refuses settings whose copies S3 or a worker could not take: a multipart threshold or a
    /// part size above [`matbakh_core::migration::MAX_COPY_BUFFER`], or parts under S3's 5 MiB.
    pub fn check(&self) -> Result<(), MigrateError> {
        use matbakh_core::migration::MAX_COPY_BUFFER;
        use matbakh_core::multipart::MIN_PART_SIZE;
        let mib = |n: u64| n / (1024 * 1024);
        if self.multipart_threshold > MAX_COPY_BUFFER {
            return Err(MigrateError::Usage(format!(
                "multipart-threshold {} MiB: at most {} MiB (a file below it is held whole in memory for its PUT)",
                mib(self.multipart_threshold),
                mib(MAX_COPY_BUFFER)
            )));
        }
        if !(MIN_PART_SIZE..=MAX_COPY_BUFFER).contains(&self.part_size) {
            return Err(MigrateError::Usage(format!(
                "part-size {} MiB: {} to {} MiB (S3's smallest part; a part is held in memory)",
                mib(self.part_size),
                mib(MIN_PART_SIZE),
                mib(MAX_COPY_BUFFER)
            )));
        }
        Ok(())
    }
}

impl Default for CopySettings {
    fn default() -> Self {
        CopySettings {
            multipart_threshold: matbakh_core::migration::DEFAULT_MULTIPART_THRESHOLD,
            part_size: matbakh_core::migration::DEFAULT_PART_SIZE,
            http: HttpPolicy::default(),
            storage_class: None,
        }
    }
}

/// The S3 storage classes a run may write in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StorageClass {
    Standard,
    StandardIa,
    OnezoneIa,
    IntelligentTiering,
    GlacierIr,
    Glacier,
    DeepArchive,
}

impl StorageClass {
    pub const ALL: [StorageClass; 7] = [
        StorageClass::Standard,
        StorageClass::StandardIa,
        StorageClass::OnezoneIa,
        StorageClass::IntelligentTiering,
        StorageClass::GlacierIr,
        StorageClass::Glacier,
        StorageClass::DeepArchive,
    ];

    /// S3's name (`DEEP_ARCHIVE`); any case is read.
    pub fn parse(raw: &str) -> Result<StorageClass, String> {
        let upper = raw.to_ascii_uppercase();
        StorageClass::ALL.into_iter().find(|c| c.as_str() == upper).ok_or_else(|| {
            let names: Vec<&str> = StorageClass::ALL.iter().map(|c| c.as_str()).collect();
            format!("{raw:?} is not one of {}", names.join(", "))
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StorageClass::Standard => "STANDARD",
            StorageClass::StandardIa => "STANDARD_IA",
            StorageClass::OnezoneIa => "ONEZONE_IA",
            StorageClass::IntelligentTiering => "INTELLIGENT_TIERING",
            StorageClass::GlacierIr => "GLACIER_IR",
            StorageClass::Glacier => "GLACIER",
            StorageClass::DeepArchive => "DEEP_ARCHIVE",
        }
    }
}

impl CopySettings {
    /// The settings `record` was planned with.
    pub fn of(record: &RunRecord) -> Result<Self, MigrateError> {
        serde_json::from_str(&record.settings)
            .map_err(|e| MigrateError::Check(format!("run {} has unreadable settings: {e}", record.id)))
    }
}

#[derive(Clone)]
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
    /// Memory each of the plan's two sorts may hold before it spills a run to disk
    /// ([`DEFAULT_SORT_BYTES`](crate::extsort::DEFAULT_SORT_BYTES)).
    pub sort_bytes: usize,
    pub dry_run: bool,
    /// A local copy of the manifest (it is always stored in the target bucket too).
    pub manifest_out: Option<std::path::PathBuf>,
    /// The legacy database's rows (`--metadata`), read before anything is planned.
    pub metadata: Option<Arc<LegacyRows>>,
    /// A delta plan (`--since`): only what changed since this run (and its chain) copied.
    pub since: Option<RunId>,
}

impl PlanOptions {
    /// The target key of `f` (of a later `generation` of it, for a changed file), with the
    /// owner its legacy row names, if any.
    fn key(&self, f: &SourceFile, generation: Option<&str>) -> Result<String, matbakh_core::CoreError> {
        let owner = self.metadata.as_ref().and_then(|m| m.owner(&f.path));
        self.mapper.key_of(&f.path, f.mtime_ms, owner, generation)
    }
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
    /// Files of users who erased their account on the platform, left out of the run (no ledger
    /// row, no manifest line: nothing of theirs is written again).
    pub erased_left_out: u64,
    pub manifest_key: Option<String>,
    pub estimate: EstimateView,
    /// What met between the legacy rows and the files (`--metadata`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<MetadataReport>,
    /// What a delta plan (`--since`) left out and why (on a dry run, `changed` counts the
    /// files it would read again: some may hold the same bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaReport>,
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

/// The magic bytes decide; the legacy row's type, then the name's extension, only when the bytes
/// say nothing.
fn content_type_of(head: &[u8], name: &str, legacy: Option<&str>) -> String {
    use matbakh_core::sniff::{Sniffed, sniff};
    match sniff(head) {
        Sniffed::Allowed(t) => t.as_str().to_owned(),
        _ => legacy.map(str::to_owned).unwrap_or_else(|| {
            matbakh_core::types::ContentType::from_file_name(name)
                .map(|t| t.as_str().to_owned())
                .unwrap_or_else(|| "application/octet-stream".to_owned())
        }),
    }
}

/// Reads every file once, `parallelism` at once. Unreadable files come back as errors.
async fn hash_all(
    source: &Arc<dyn Source>,
    files: &[(SourceFile, Ride)],
    parallelism: usize,
) -> Result<Vec<Result<Digests, String>>, MigrateError> {
    let permits = Arc::new(Semaphore::new(parallelism.max(1)));
    let mut tasks = Vec::with_capacity(files.len());
    for (f, _) in files {
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

/// Why a file is in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Why {
    /// A full plan: every listed file.
    Listed,
    /// A delta plan's verdicts ([`Verdict`]).
    New,
    Changed,
    Uncopied,
}

/// What rides along with a file through the copy-order sort.
#[derive(Debug, Serialize, Deserialize)]
struct Ride {
    size: u64,
    mtime_ms: i64,
    #[serde(default)]
    change: String,
    key: String,
    why: Why,
    /// A changed file: what the chain copied (the same bytes are not copied again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    known: Option<Known>,
}

/// A file in the order it is copied: (priority rank, path) sorts it, the [`Ride`] follows
/// (JSON, after a NUL: paths have none).
fn order_record(f: &SourceFile, priority: Priority, ride: &Ride) -> Result<Vec<u8>, MigrateError> {
    let mut r = priority.order_key(&f.path, f.mtime_ms, f.size);
    r.push(0);
    serde_json::to_writer(&mut r, ride).map_err(|e| MigrateError::Check(format!("scratch record: {e}")))?;
    Ok(r)
}

fn file_of(record: &[u8]) -> Result<(SourceFile, Ride), MigrateError> {
    let bad = || MigrateError::Check("a scratch record is damaged".into());
    let body = record.get(8..).ok_or_else(bad)?;
    let nul = body.iter().position(|b| *b == 0).ok_or_else(bad)?;
    let path = std::str::from_utf8(&body[..nul]).map_err(|_| bad())?.to_owned();
    let ride: Ride = serde_json::from_slice(&body[nul + 1..]).map_err(|_| bad())?;
    let file = SourceFile { path, size: ride.size, mtime_ms: ride.mtime_ms, change: ride.change.clone() };
    Ok((file, ride))
}

/// A file under its target key: sorted, equal keys meet (a collision).
fn key_record(key: &str, path: &str) -> Vec<u8> {
    let mut r = Vec::with_capacity(key.len() + 1 + path.len());
    r.extend_from_slice(key.as_bytes());
    r.push(0);
    r.extend_from_slice(path.as_bytes());
    r
}

/// Refuses keys more than one file would get, reading the files sorted by key (`by_key`).
fn check_collisions(by_key: ExtSort) -> Result<(), MigrateError> {
    let (mut found, mut shown): (usize, Vec<String>) = (0, Vec::new());
    let mut group: Vec<(String, String)> = Vec::new();
    let mut close = |group: &mut Vec<(String, String)>| {
        if group.len() > 1 {
            found += 1;
            if shown.len() < 20 {
                let pairs = group.iter().map(|(s, k)| (s.as_str(), k.as_str()));
                shown.extend(collisions(pairs).iter().map(|(k, s)| format!("{k} <- {}", s.join(", "))));
            }
        }
        group.clear();
    };
    for record in by_key.sorted()? {
        let record = record?;
        let split = record.iter().position(|b| *b == 0).unwrap_or(record.len());
        let key = String::from_utf8_lossy(&record[..split]).into_owned();
        let path = String::from_utf8_lossy(record.get(split + 1..).unwrap_or_default()).into_owned();
        if group.last().is_some_and(|(_, k)| *k != key) {
            close(&mut group);
        }
        group.push((path, key));
    }
    close(&mut group);
    if found > 0 {
        return Err(MigrateError::Check(format!(
            "{found} target key(s) would receive more than one file; change the rule:\n  {}",
            shown.join("\n  ")
        )));
    }
    Ok(())
}

/// The listing, sorted twice in bounded memory: in copy order, and by target key.
struct Inventory {
    by_order: ExtSort,
    /// A delta plan's counts so far (what it left out).
    delta: Option<DeltaReport>,
}

/// The files a plan copies, into the two sorts; what fails the key rule, collected.
struct Placer<'a> {
    opts: &'a PlanOptions,
    by_order: ExtSort,
    by_key: ExtSort,
    bad: Vec<String>,
}

impl Placer<'_> {
    /// `f` is copied: under its key (a changed file's of a new generation; an uncopied one's
    /// as given before).
    fn place(&mut self, f: &SourceFile, why: Why, known: Option<Known>) -> Result<(), MigrateError> {
        let key = match (&known, why) {
            (Some(k), Why::Uncopied) => Ok(k.key.clone()),
            (_, Why::Changed) => self.opts.key(f, Some(&delta::generation(f.size, f.mtime_ms, &f.change))),
            _ => self.opts.key(f, None),
        };
        let key = match key {
            Ok(key) => key,
            Err(e) => {
                if self.bad.len() < 20 {
                    self.bad.push(format!("{}: {e}", f.path));
                }
                return Ok(());
            }
        };
        self.by_key.push(key_record(&key, &f.path))?;
        // A changed file's copy keeps its key until the new one is in place.
        if let Some(k) = known.as_ref().filter(|k| why == Why::Changed && k.key != key) {
            self.by_key.push(key_record(&k.key, &f.path))?;
        }
        let ride = Ride { size: f.size, mtime_ms: f.mtime_ms, change: f.change.clone(), key, why, known };
        self.by_order.push(order_record(f, self.opts.priority, &ride)?)
    }

    /// `path` stays as the chain copied it, under `key`.
    fn keep(&mut self, key: &str, path: &str) -> Result<(), MigrateError> {
        self.by_key.push(key_record(key, path))
    }
}

/// Lists the source into two external sorts, checking every key as it comes; refuses a rule
/// that fails for some file or sends two files to one key before any file is read. A delta
/// plan joins the listing with its `chain` first and places only what changed.
async fn inventory(
    ctx: &Context,
    target: &matbakh_aws::transfer::Target,
    source: &Arc<dyn Source>,
    opts: &PlanOptions,
    chain: &[RunRecord],
    met: &mut Met,
) -> Result<Inventory, MigrateError> {
    let mut join = match opts.since.as_ref() {
        Some(_) => {
            let mut join = Join::new(opts.sort_bytes);
            join.add_chain(ctx, target, chain).await?;
            Some(join)
        }
        None => None,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<SourceFile>(4096);
    let lister = {
        let source = source.clone();
        tokio::spawn(async move { source.list(tx).await })
    };
    let mut placer = Placer {
        opts,
        by_order: ExtSort::new("order", opts.sort_bytes),
        by_key: ExtSort::new("keys", opts.sort_bytes),
        bad: Vec::new(),
    };
    let mut listed = 0u64;
    while let Some(f) = rx.recv().await {
        listed += 1;
        if f.path.contains('\0') {
            placer.bad.push(format!("{:?}: a path with a NUL character", f.path));
            continue;
        }
        match join.as_mut() {
            Some(join) => join.add_listed(&f)?,
            None => placer.place(&f, Why::Listed, None)?,
        }
    }
    lister.await.map_err(|e| MigrateError::Source(format!("listing: {e}")))??;
    if listed == 0 {
        return Err(MigrateError::Usage(format!("source {} has no files", source.url())));
    }
    let delta = match (join, opts.since.as_ref()) {
        (Some(join), Some(since)) => {
            let mut report = DeltaReport { since: since.to_string(), chain: chain.len(), ..DeltaReport::default() };
            for path in join.paths()? {
                let path = path?;
                match (path.known, path.listed) {
                    (Some(known), None) => {
                        if known.copied {
                            report.gone += 1;
                            if report.gone_listed.len() < crate::delta::LISTED {
                                report.gone_listed.push(path.path);
                            }
                        }
                    }
                    (known, Some(f)) => match delta::verdict(known.as_ref(), f.size, f.mtime_ms, &f.change) {
                        Verdict::Unchanged => {
                            report.unchanged += 1;
                            met.meet(&f.path)?;
                            if let Some(k) = &known {
                                placer.keep(&k.key, &f.path)?;
                            }
                        }
                        Verdict::Changed => placer.place(&f, Why::Changed, known)?,
                        Verdict::Uncopied => placer.place(&f, Why::Uncopied, known)?,
                        Verdict::New => placer.place(&f, Why::New, None)?,
                    },
                    (None, None) => {}
                }
            }
            Some(report)
        }
        _ => None,
    };
    let Placer { by_order, by_key, bad, .. } = placer;
    if !bad.is_empty() {
        return Err(MigrateError::Check(format!("the key rule fails for some files:\n  {}", bad.join("\n  "))));
    }
    check_collisions(by_key)?;
    Ok(Inventory { by_order, delta })
}

/// What a run keeps of the next files of the order, and the paths it leaves out: an erased
/// user's files are left out before anything of them is read (and their legacy rows are not
/// reported as rows without a file); the kept ones go into the estimate. The plan and its dry
/// run both ask here.
async fn kept(
    listed: Vec<(SourceFile, Ride)>,
    erased: &mut crate::erased::ErasedOwners<'_>,
    met: &mut Met,
    estimator: &mut Estimator,
) -> Result<(Vec<(SourceFile, Ride)>, Vec<String>), MigrateError> {
    let mut kept = Vec::with_capacity(listed.len());
    let mut left_out = Vec::new();
    for (f, ride) in listed {
        if erased.of(&ride.key).await? {
            met.pass(&f.path);
            left_out.push(f.path);
        } else {
            estimator.add(f.size);
            kept.push((f, ride));
        }
    }
    Ok((kept, left_out))
}

/// The next `n` files of the order.
fn next_files(sorted: &mut Sorted, n: usize) -> Result<Vec<(SourceFile, Ride)>, MigrateError> {
    let mut out = Vec::with_capacity(n);
    for record in sorted.by_ref().take(n) {
        out.push(file_of(&record?)?);
    }
    Ok(out)
}

pub async fn plan(ctx: &Context, source: Arc<dyn Source>, opts: &PlanOptions) -> Result<Planned, MigrateError> {
    opts.copy.check()?;
    let (target, _prefix) = ctx.target(&opts.target)?;
    let chain = match &opts.since {
        Some(since) => {
            crate::delta::chain(ctx, since, source.url(), &opts.target, &opts.mapper.rule.describe()).await?
        }
        None => Vec::new(),
    };
    let mut met = Met::new(opts.metadata.clone())?;
    let Inventory { by_order, mut delta } = inventory(ctx, &target, &source, opts, &chain, &mut met).await?;
    // The estimate covers what the run copies: not an erased user's files, left out below.
    let mut estimator = Estimator::new(opts.copy.multipart_threshold, opts.copy.part_size);
    let step = opts.chunk_files.max(1);
    let keys_of = |chunk: &[(SourceFile, Ride)]| -> Vec<String> { chunk.iter().map(|(_, r)| r.key.clone()).collect() };
    let mut files = by_order.sorted()?;
    if opts.dry_run {
        // The run the plan would make: an erased user's files are counted as left out (and
        // nothing is marked: a dry run writes nothing).
        let (mut existing, mut erased_left_out) = (0u64, 0u64);
        let mut erased = crate::erased::ErasedOwners::new(ctx.files.as_ref());
        loop {
            let listed = next_files(&mut files, step)?;
            if listed.is_empty() {
                break;
            }
            let (chunk, left_out) = kept(listed, &mut erased, &mut met, &mut estimator).await?;
            erased_left_out += left_out.len() as u64;
            for (f, ride) in &chunk {
                met.meet(&f.path)?;
                count(delta.as_mut(), ride.why);
            }
            existing += priors(&target, &keys_of(&chunk)).await?.iter().filter(|p| p.is_some()).count() as u64;
        }
        let est = estimator.finish(opts.transfers);
        return Ok(Planned {
            run: None,
            source: source.url().to_owned(),
            target: opts.target.clone(),
            files: est.files,
            bytes: est.bytes,
            unreadable: Vec::new(),
            existing_targets: existing,
            erased_left_out,
            manifest_key: None,
            estimate: est.into(),
            metadata: met.finish()?.map(|(report, _)| report),
            delta,
        });
    }

    // In order, a step of files at a time: hash them and HEAD their keys, then number and
    // batch each, write its manifest line and its ledger row (a few hundred rows at once).
    let now_t = ctx.clock.now();
    let now = ctx.now();
    let id = RunId::new(now_t, random_u32());
    let manifest_tmp = Scratch::new("manifest.jsonl");
    let mut manifest =
        JsonLines::create(opts.manifest_out.clone().unwrap_or_else(|| manifest_tmp.0.clone()), "manifest")?;
    let mut batcher = Batcher::new(opts.batch_files, opts.batch_bytes);
    let (mut total_files, mut total_bytes, mut existing) = (0u64, 0u64, 0u64);
    let mut unreadable = Vec::new();
    let mut rows: Vec<LedgerRow> = Vec::with_capacity(ROWS_AT_ONCE);
    let mut carried = matbakh_core::migration::eta::Tally::default();
    let (mut erased, mut erased_left_out) = (crate::erased::ErasedOwners::new(ctx.files.as_ref()), 0u64);
    loop {
        let listed = next_files(&mut files, step)?;
        if listed.is_empty() {
            break;
        }
        // The left-out paths are marked (the redirector answers `410`, a cutover does not wait
        // for them).
        let (chunk, left_out) = kept(listed, &mut erased, &mut met, &mut estimator).await?;
        erased_left_out += left_out.len() as u64;
        if let Some(registry) = ctx.files.as_ref() {
            let marks: Vec<String> = left_out.iter().map(|p| registry.path_mark(p)).collect();
            registry.table.mark_paths_erased(&marks, &now).await?;
        }
        let keys = keys_of(&chunk);
        let (hashed, prior) = tokio::join!(hash_all(&source, &chunk, opts.hash_parallelism), priors(&target, &keys));
        for (((f, ride), key), (h, prior)) in chunk.iter().zip(keys).zip(hashed?.into_iter().zip(prior?)) {
            let legacy = met.meet(&f.path)?;
            // Read again, the same bytes as copied: recorded with its new listing, not copied.
            let copied_by = match (&h, &ride.known) {
                (Ok(h), Some(known)) if delta::same_bytes(known, h.size, &h.sha256) => Some(known),
                _ => None,
            };
            let (key, prior) = match copied_by {
                Some(known) => (known.key.clone(), None),
                None => (key, prior),
            };
            match (copied_by, delta.as_mut()) {
                (Some(_), Some(d)) => d.same_bytes += 1,
                _ => count(delta.as_mut(), ride.why),
            }
            let declared = legacy.as_ref().and_then(|l| l.content_type.as_deref());
            let (size, crc64nvme, sha256, content_type, failed) = match h {
                Ok(h) => (h.size, h.crc64nvme, h.sha256, content_type_of(&h.head, &f.path, declared), None),
                Err(message) => {
                    (f.size, String::new(), String::new(), "application/octet-stream".to_owned(), Some(message))
                }
            };
            let mut entry = ManifestEntry {
                seq: 0,
                source: f.path.clone(),
                prior,
                legacy,
                key,
                size,
                mtime_ms: f.mtime_ms,
                change: f.change.clone(),
                content_type,
                crc64nvme,
                sha256,
                priority: 0,
                batch: 0,
                copied_by: copied_by.map(|k| k.run.clone()),
                supersedes: None,
            };
            // A changed file under a key of its own: its earlier copy goes once it is copied.
            if copied_by.is_none()
                && let Some(known) = ride.known.as_ref().filter(|k| k.copied && k.key != entry.key)
            {
                entry.supersedes = Some(known.key.clone());
            }
            batcher.place(&mut entry);
            manifest.push(&entry)?;
            total_files += 1;
            total_bytes += entry.size;
            existing += u64::from(entry.prior.is_some());
            let mut row = LedgerRow::pending(entry, &now);
            if row.entry.copied_by.is_some() {
                row.status = RowStatus::Copied;
                carried.files += 1;
                carried.bytes += row.entry.size;
            }
            if let Some(message) = failed {
                row.status = RowStatus::Failed;
                row.reason = Some(FailureReason::SourceUnreadable);
                row.message = Some(message.clone());
                unreadable.push(message);
            }
            rows.push(row);
            if rows.len() >= ROWS_AT_ONCE {
                ctx.ledger.put_rows(&id, &rows).await?;
                rows.clear();
            }
        }
    }
    ctx.ledger.put_rows(&id, &rows).await?;
    let (manifest_path, crc) = manifest.finish()?;
    let mkey = manifest_key(&id);
    target.put_file(&mkey, &manifest_path, &crc, "application/x-ndjson").await?;
    let metadata = match met.finish()? {
        Some((mut report, mismatches)) => {
            let key = crate::metadata_mismatches_key(&id);
            target.put_file(&key, &mismatches.path, &mismatches.crc, "application/x-ndjson").await?;
            report.mismatches_key = Some(key);
            Some(report)
        }
        None => None,
    };

    // The run item last: a plan that dies half-way leaves no run to start.
    // Files an earlier run copied count as copied (their bytes, no time): a run is whole when
    // every row is copied.
    let mut counters = Counters { failed_files: unreadable.len() as u64, copied: carried, ..Counters::default() };
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
        verification: None,
        since: opts.since.clone(),
        late_copies: 0,
        late_copies_seen: 0,
    };
    ctx.ledger.create_run(&run).await?;
    ctx.ledger.reset_counters(&id, &counters, &now).await?;
    unreadable.sort();
    Ok(Planned {
        run: Some(id.to_string()),
        source: source.url().to_owned(),
        target: opts.target.clone(),
        files: total_files,
        bytes: total_bytes,
        existing_targets: existing,
        erased_left_out,
        unreadable,
        manifest_key: Some(mkey),
        estimate: estimator.finish(opts.transfers).into(),
        metadata,
        delta,
    })
}

/// Counts a planned file of a delta plan by why it is copied.
fn count(delta: Option<&mut DeltaReport>, why: Why) {
    let Some(d) = delta else { return };
    match why {
        Why::Changed => d.changed += 1,
        Why::Uncopied => d.uncopied += 1,
        Why::New | Why::Listed => d.new += 1,
    }
}

/// The legacy rows meeting the files, in plan order: every mismatch counted, listed up to
/// [`crate::metadata::LISTED`] a kind, and written whole to a scratch file.
struct Met {
    rows: Option<Arc<LegacyRows>>,
    report: MetadataReport,
    out: Option<(Scratch, JsonLines)>,
}

impl Met {
    fn new(rows: Option<Arc<LegacyRows>>) -> Result<Met, MigrateError> {
        let report = rows.as_ref().map(|r| MetadataReport::new(&r.source, r.rows)).unwrap_or_default();
        let out = match &rows {
            Some(_) => {
                let scratch = Scratch::new("metadata-mismatches.jsonl");
                let lines = JsonLines::create(scratch.0.clone(), "mismatches")?;
                Some((scratch, lines))
            }
            None => None,
        };
        Ok(Met { rows, report, out })
    }

    fn count(&mut self, m: &Mismatch) -> Result<(), MigrateError> {
        self.report.count(m);
        if let Some((_, out)) = &mut self.out {
            out.push(m)?;
        }
        Ok(())
    }

    /// The metadata of the file at `path` (none without `--metadata`, or without a valid row).
    fn meet(&mut self, path: &str) -> Result<Option<LegacyMeta>, MigrateError> {
        let Some(rows) = self.rows.clone() else { return Ok(None) };
        match rows.meet(path) {
            Ok(meta) => {
                self.report.matched_files += 1;
                Ok(Some(meta.clone()))
            }
            Err(m) => {
                self.count(&m)?;
                Ok(None)
            }
        }
    }

    /// A file left out of the plan: its row (if any) is met, nothing of it reported.
    fn pass(&mut self, path: &str) {
        if let Some(rows) = &self.rows {
            let _ = rows.meet(path);
        }
    }

    /// The report and the file of every mismatch, once every file has met its row.
    fn finish(mut self) -> Result<Option<(MetadataReport, Mismatches)>, MigrateError> {
        let Some(rows) = self.rows.clone() else { return Ok(None) };
        for m in rows.unmet() {
            self.count(&m)?;
        }
        let Some((scratch, out)) = self.out.take() else { return Ok(None) };
        let (path, crc) = out.finish()?;
        Ok(Some((self.report, Mismatches { path, crc, _scratch: scratch })))
    }
}

/// The written file of every mismatch (removed when this is dropped).
struct Mismatches {
    path: std::path::PathBuf,
    crc: String,
    _scratch: Scratch,
}

/// A JSON-lines file written a line at a time, with the CRC64NVME of what was written (the
/// checksum its upload is sent with): the manifest, the metadata mismatches.
pub(crate) struct JsonLines {
    path: std::path::PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    crc: crc_fast::Digest,
    line: Vec<u8>,
    /// What the lines are, for errors.
    what: &'static str,
}

impl JsonLines {
    pub(crate) fn create(path: std::path::PathBuf, what: &'static str) -> Result<JsonLines, MigrateError> {
        let file = std::fs::File::create(&path).map_err(io(&path))?;
        let crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
        Ok(JsonLines { out: std::io::BufWriter::new(file), path, crc, line: Vec::new(), what })
    }

    fn push(&mut self, value: &impl Serialize) -> Result<(), MigrateError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, value).map_err(|e| MigrateError::Check(format!("{}: {e}", self.what)))?;
        self.line.push(b'\n');
        self.write_line()
    }

    /// A line as it is (one JSON value, no newline).
    pub(crate) fn push_line(&mut self, line: &str) -> Result<(), MigrateError> {
        self.line.clear();
        self.line.extend_from_slice(line.as_bytes());
        self.line.push(b'\n');
        self.write_line()
    }

    fn write_line(&mut self) -> Result<(), MigrateError> {
        use std::io::Write;
        self.crc.update(&self.line);
        self.out.write_all(&self.line).map_err(io(&self.path))
    }

    /// Flushes and closes the file: its path and CRC64NVME (Base64, as S3 spells it).
    pub(crate) fn finish(self) -> Result<(std::path::PathBuf, String), MigrateError> {
        use std::io::Write;
        let JsonLines { path, mut out, crc, .. } = self;
        out.flush().map_err(io(&path))?;
        drop(out);
        Ok((path, crate::crc64_base64(crc.finalize())))
    }
}

/// Ledger rows handed to DynamoDB at once during a plan (written 25 a call).
const ROWS_AT_ONCE: usize = 500;
