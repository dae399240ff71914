//! The migration ledger (DynamoDB, its own table): one item per run (state, totals, live
//! counters) under `pk = RUNS`, and one row per file under `pk = RUN#{id}`, sorted by the
//! manifest's sequence. Cutovers: one item per (source, prefix) under `pk = CUTOVERS`, and every
//! switch appended under `pk = CUTOVER#AUDIT` (written together, in one transaction). The legacy
//! redirector's answers, counted per source and day under `pk = LEGACY#SERVED#{source}`. Rows are written in batches of 25 (BatchWriteItem, DECISIONS 23);
//! counters are added atomically (`ADD`), so several workers can report into one run.

use std::collections::{BTreeMap, HashMap};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};
use matbakh_core::audit::PseudonymKey;
use matbakh_core::migration::eta::Tally;
use matbakh_core::migration::redirect::Served;
use matbakh_core::migration::{
    Control, FailureReason, LegacyPrefix, ManifestEntry, Prior, RowStatus, RunId, RunState, Switch,
};

use crate::dynamo::{n, s};
use crate::error::AwsError;
use crate::schema;

pub(crate) const RUNS_PK: &str = "RUNS";
const CUTOVERS_PK: &str = "CUTOVERS";
const CUTOVER_AUDIT_PK: &str = "CUTOVER#AUDIT";
/// One day (UTC) of the legacy redirector's answers for one legacy source
/// (`LEGACY#SERVED#{source}`, sort key the day).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyServedDay {
    /// `2026-12-05`.
    pub day: String,
    pub redirects: u64,
    pub gone: u64,
    /// Read through from the legacy store.
    pub fallbacks: u64,
    pub fallback_bytes: u64,
    /// `302` to the legacy store (too large to pass on).
    pub large_redirects: u64,
    /// The last request the legacy store served that day, and its path.
    pub last_legacy_at: Option<String>,
    pub last_legacy_path: Option<String>,
}

impl LegacyServedDay {
    /// Requests the legacy store served (read through or redirected to).
    pub fn by_legacy_store(&self) -> u64 {
        self.fallbacks + self.large_redirects
    }
}

/// Where a legacy prefix of a source is served from, and how it got there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cutover {
    /// The legacy source (`file:///legacy`), as runs name it.
    pub source: String,
    pub prefix: String,
    pub to: Switch,
    pub at: String,
    /// Files under the prefix migrated and verified when it was switched.
    pub verified_files: u64,
    /// Files that were not (only a forced switch to the platform has any).
    pub blocking_files: u64,
    /// Why it was switched despite them (`--force --reason`).
    pub forced_reason: Option<String>,
}

fn cutover_sk(source: &str, prefix: &LegacyPrefix) -> String {
    format!("{source}#{}", prefix.as_str())
}

fn parse_cutover(item: &HashMap<String, AttributeValue>) -> Result<Cutover, AwsError> {
    let corrupt = |e: matbakh_core::CoreError| AwsError::Corrupt(e.to_string());
    Ok(Cutover {
        source: get_s(item, "source")?,
        prefix: get_s(item, "prefix")?,
        to: Switch::parse(&get_s(item, "to")?).map_err(corrupt)?,
        at: get_s(item, "at")?,
        verified_files: get_u(item, "verifiedFiles"),
        blocking_files: get_u(item, "blockingFiles"),
        forced_reason: opt_s(item, "forcedReason"),
    })
}

/// A run as the run item holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: RunId,
    pub state: RunState,
    /// `file:///...`, `s3://...`, `https-list:...`
    pub source: String,
    /// `s3://bucket/prefix`
    pub target: String,
    pub rule: String,
    pub created_at: String,
    pub total_files: u64,
    pub total_bytes: u64,
    pub manifest_key: String,
    /// The plan's copy settings as JSON (part size, threshold, ...), so every worker copies alike.
    pub settings: String,
    pub counters: Counters,
    /// When the run first started copying (`run` or `enqueue`), and when its item last changed:
    /// the wall time of a run whose workers are Lambda functions.
    pub started_at: Option<String>,
    pub updated_at: Option<String>,
    /// The last full `verify` of the run (a sampled one is not recorded): what a cutover and a
    /// decommission check ask of every run.
    pub verification: Option<Verification>,
    /// The run a delta plan (`plan --since`) compared the source with: this run holds only
    /// what changed since that one (and the runs it was a delta of).
    pub since: Option<RunId>,
    /// Copies a Lambda worker found to have landed after the run began rolling back
    /// (`migrate::rollback::note_if_rolled_back`), and how many of them the last rollback had
    /// been told of when it began: while more were noted, the rollback is to be run again.
    pub late_copies: u64,
    pub late_copies_seen: u64,
}

impl RunRecord {
    /// Late copies noted since the last rollback began: run it again for them.
    pub fn late_copies_pending(&self) -> u64 {
        self.late_copies.saturating_sub(self.late_copies_seen)
    }
}

/// The outcome of a full `migrate verify` of a run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub at: String,
    /// Read back and hashed (`--deep`), or compared by S3's stored checksum.
    pub deep: bool,
    /// Every row copied and every copy matched.
    pub passed: bool,
    pub checked: u64,
    /// Mismatched or not copied rows.
    pub problems: u64,
}

/// What the workers report into the run item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub copied: Tally,
    pub failed_files: u64,
    pub retries: u64,
    /// Wall time spent copying, milliseconds (all sessions of the run).
    pub active_ms: u64,
    pub failures: BTreeMap<FailureReason, i64>,
}

/// One file's row: its manifest line and what happened to it.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerRow {
    pub entry: ManifestEntry,
    pub status: RowStatus,
    pub attempts: u32,
    /// The version this run wrote (with versioning on).
    pub version_id: Option<String>,
    pub reason: Option<FailureReason>,
    pub message: Option<String>,
    pub updated_at: String,
    /// The multipart upload an `enqueue` started for the file (SQS workers share it).
    pub upload_id: Option<String>,
    /// The delete marker this run put on the file's earlier copy (`entry.supersedes`).
    pub retired_version: Option<String>,
}

impl LedgerRow {
    pub fn pending(entry: ManifestEntry, now: &str) -> Self {
        LedgerRow {
            entry,
            status: RowStatus::Pending,
            attempts: 0,
            version_id: None,
            reason: None,
            message: None,
            updated_at: now.to_owned(),
            upload_id: None,
            retired_version: None,
        }
    }

    /// The row as kept once the file's owner erased their account (DECISIONS 17): its line
    /// kept so ([`ManifestEntry::erased`]), failed as `erased` (never tried again), and nothing
    /// of the copy or the upload it made (the erase removed them). Kept once is kept.
    pub fn erased(&self, key: &PseudonymKey, now: &str) -> LedgerRow {
        if self.is_erased() {
            return self.clone();
        }
        LedgerRow {
            entry: self.entry.erased(key),
            status: RowStatus::Failed,
            attempts: self.attempts,
            version_id: None,
            reason: Some(FailureReason::Erased),
            message: Some(ERASED_MESSAGE.to_owned()),
            updated_at: now.to_owned(),
            upload_id: None,
            retired_version: None,
        }
    }

    /// Whether the row is kept as its owner's erase left it ([`LedgerRow::erased`]).
    pub fn is_erased(&self) -> bool {
        self.reason == Some(FailureReason::Erased) && self.entry.is_erased()
    }
}

/// What an erased owner's row says (it names neither them nor the file).
pub const ERASED_MESSAGE: &str = "its owner erased their account on the platform; not migrated";

#[derive(Clone, Debug)]
pub struct Ledger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn run_sk(id: &RunId) -> String {
    format!("RUN#{id}")
}

fn rows_pk(id: &RunId) -> String {
    format!("RUN#{id}")
}

fn row_sk(seq: u64) -> String {
    format!("F#{seq:010}")
}

/// A number set attribute as sorted numbers (absent: none).
fn numbers(item: Option<&HashMap<String, AttributeValue>>, name: &str) -> Vec<i32> {
    let mut out: Vec<i32> = item
        .and_then(|a| a.get(name))
        .and_then(|v| v.as_ns().ok())
        .map(|ns| ns.iter().filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default();
    out.sort_unstable();
    out
}

fn get_s(item: &HashMap<String, AttributeValue>, name: &str) -> Result<String, AwsError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| AwsError::Corrupt(format!("ledger item without {name}")))
}

fn opt_s(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    crate::dynamo::opt_str(item, name).map(str::to_owned)
}

fn get_f(item: &HashMap<String, AttributeValue>, name: &str) -> f64 {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

fn get_u(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    get_f(item, name).max(0.0) as u64
}

fn fail_attr(r: FailureReason) -> String {
    format!("fail_{}", r.as_str())
}

fn row_item(run: &RunId, row: &LedgerRow) -> HashMap<String, AttributeValue> {
    let e = &row.entry;
    let mut item = schema::item(
        schema::key(rows_pk(run), row_sk(e.seq)),
        [
            ("seq".to_owned(), n(e.seq)),
            ("source".to_owned(), s(&e.source)),
            ("key".to_owned(), s(&e.key)),
            ("size".to_owned(), n(e.size)),
            ("mtimeMs".to_owned(), n(e.mtime_ms)),
            ("contentType".to_owned(), s(&e.content_type)),
            ("crc64nvme".to_owned(), s(&e.crc64nvme)),
            ("sha256".to_owned(), s(&e.sha256)),
            ("priority".to_owned(), n(e.priority)),
            ("batch".to_owned(), n(e.batch)),
            ("status".to_owned(), s(row.status.as_str())),
            ("attempts".to_owned(), n(row.attempts)),
            ("updatedAt".to_owned(), s(&row.updated_at)),
        ],
    );
    if let Some(p) = &e.prior {
        item.insert("priorEtag".into(), s(&p.etag));
        if let Some(v) = &p.version_id {
            item.insert("priorVersionId".into(), s(v));
        }
    }
    if !row.entry.change.is_empty() {
        item.insert("change".into(), s(&row.entry.change));
    }
    if let Some(run) = &row.entry.copied_by {
        item.insert("copiedBy".into(), s(run));
    }
    if let Some(key) = &row.entry.supersedes {
        item.insert("supersedes".into(), s(key));
    }
    if let Some(legacy) = &row.entry.legacy
        && let Ok(json) = serde_json::to_string(legacy)
    {
        item.insert("legacy".into(), s(json));
    }
    for (name, value) in [
        ("versionId", &row.version_id),
        ("message", &row.message),
        ("reason", &row.reason.map(|r| r.as_str().to_owned())),
        ("uploadId", &row.upload_id),
        ("retiredVersionId", &row.retired_version),
    ] {
        if let Some(v) = value {
            item.insert(name.to_owned(), s(v));
        }
    }
    item
}

fn parse_row(item: &HashMap<String, AttributeValue>) -> Result<LedgerRow, AwsError> {
    let corrupt = |e: matbakh_core::CoreError| AwsError::Corrupt(e.to_string());
    let prior = opt_s(item, "priorEtag").map(|etag| Prior { etag, version_id: opt_s(item, "priorVersionId") });
    Ok(LedgerRow {
        entry: ManifestEntry {
            seq: get_u(item, "seq"),
            source: get_s(item, "source")?,
            key: get_s(item, "key")?,
            size: get_u(item, "size"),
            mtime_ms: get_f(item, "mtimeMs") as i64,
            change: opt_s(item, "change").unwrap_or_default(),
            content_type: get_s(item, "contentType")?,
            crc64nvme: get_s(item, "crc64nvme")?,
            sha256: get_s(item, "sha256")?,
            priority: get_u(item, "priority") as u32,
            batch: get_u(item, "batch") as u32,
            prior,
            legacy: opt_s(item, "legacy")
                .map(|json| serde_json::from_str(&json))
                .transpose()
                .map_err(|e| AwsError::Corrupt(format!("ledger row's legacy metadata: {e}")))?,
            copied_by: opt_s(item, "copiedBy"),
            supersedes: opt_s(item, "supersedes"),
        },
        status: RowStatus::parse(&get_s(item, "status")?).map_err(corrupt)?,
        attempts: get_u(item, "attempts") as u32,
        version_id: opt_s(item, "versionId"),
        reason: opt_s(item, "reason").map(|r| FailureReason::parse(&r)).transpose().map_err(corrupt)?,
        message: opt_s(item, "message"),
        updated_at: get_s(item, "updatedAt")?,
        upload_id: opt_s(item, "uploadId"),
        retired_version: opt_s(item, "retiredVersionId"),
    })
}

pub(crate) fn parse_run(item: &HashMap<String, AttributeValue>) -> Result<RunRecord, AwsError> {
    let corrupt = |e: matbakh_core::CoreError| AwsError::Corrupt(e.to_string());
    let failures = FailureReason::ALL
        .into_iter()
        .filter_map(|r| item.get(&fail_attr(r)).map(|_| (r, get_f(item, &fail_attr(r)) as i64)))
        .filter(|(_, c)| *c != 0)
        .collect();
    Ok(RunRecord {
        id: RunId::parse(&get_s(item, "id")?).map_err(corrupt)?,
        state: RunState::parse(&get_s(item, "state")?).map_err(corrupt)?,
        source: get_s(item, "source")?,
        target: get_s(item, "target")?,
        rule: get_s(item, "rule")?,
        created_at: get_s(item, "createdAt")?,
        total_files: get_u(item, "totalFiles"),
        total_bytes: get_u(item, "totalBytes"),
        manifest_key: get_s(item, "manifestKey")?,
        settings: get_s(item, "settings")?,
        counters: Counters {
            copied: Tally {
                files: get_u(item, "copiedFiles"),
                bytes: get_u(item, "copiedBytes"),
                ms: get_f(item, "tMs"),
                kib: get_f(item, "tKib"),
                kib2: get_f(item, "tKib2"),
                kib_ms: get_f(item, "tKibMs"),
            },
            failed_files: get_u(item, "failedFiles"),
            retries: get_u(item, "retries"),
            active_ms: get_u(item, "activeMs"),
            failures,
        },
        started_at: opt_s(item, "startedAt"),
        updated_at: opt_s(item, "updatedAt"),
        verification: opt_s(item, "verifiedAt").map(|at| Verification {
            at,
            deep: opt_s(item, "verifiedHow").as_deref() == Some("deep"),
            passed: opt_s(item, "verifiedOutcome").as_deref() == Some("passed"),
            checked: get_u(item, "verifiedChecked"),
            problems: get_u(item, "verifiedProblems"),
        }),
        since: opt_s(item, "since").map(|r| RunId::parse(&r)).transpose().map_err(corrupt)?,
        late_copies: get_u(item, "lateCopies"),
        late_copies_seen: get_u(item, "lateCopiesSeen"),
    })
}

/// Counter changes one flush reports (negative where a failed row was copied later).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    pub copied: Tally,
    pub failed_files: i64,
    pub retries: u64,
    pub active_ms: u64,
    pub failures: BTreeMap<FailureReason, i64>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        *self == Delta::default()
    }

    /// Adds `other`'s changes to these (one flush reports many copies).
    pub fn merge(&mut self, other: Delta) {
        self.copied.merge(&other.copied);
        self.failed_files += other.failed_files;
        self.retries += other.retries;
        self.active_ms += other.active_ms;
        for (r, c) in other.failures {
            *self.failures.entry(r).or_default() += c;
        }
    }
}

impl Ledger {
    pub fn new(sdk: &SdkConfig, table: impl Into<String>) -> Self {
        Ledger { client: crate::dynamo::client(sdk), table: table.into() }
    }

    /// Writes a new run item; refuses if the id exists.
    pub async fn create_run(&self, run: &RunRecord) -> Result<(), AwsError> {
        let item = schema::item(
            schema::key(RUNS_PK, run_sk(&run.id)),
            [
                ("id".to_owned(), s(run.id.as_str())),
                ("state".to_owned(), s(run.state.as_str())),
                ("source".to_owned(), s(&run.source)),
                ("target".to_owned(), s(&run.target)),
                ("rule".to_owned(), s(&run.rule)),
                ("createdAt".to_owned(), s(&run.created_at)),
                ("updatedAt".to_owned(), s(&run.created_at)),
                ("totalFiles".to_owned(), n(run.total_files)),
                ("totalBytes".to_owned(), n(run.total_bytes)),
                ("manifestKey".to_owned(), s(&run.manifest_key)),
                ("settings".to_owned(), s(&run.settings)),
            ],
        );
        let mut item = item;
        if let Some(since) = &run.since {
            item.insert("since".to_owned(), s(since.as_str()));
        }
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(schema::ITEM_IS_NEW)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(AwsError::AlreadyExists)
            }
            Err(e) => Err(AwsError::from_sdk("PutItem", e)),
        }
    }

    pub async fn get_run(&self, id: &RunId) -> Result<Option<RunRecord>, AwsError> {
        self.get(RUNS_PK.to_owned(), run_sk(id), None).await?.as_ref().map(parse_run).transpose()
    }

    /// The run's state alone (a consistent read): what a worker asks before each file.
    pub async fn state(&self, id: &RunId) -> Result<Option<RunState>, AwsError> {
        self.get(RUNS_PK.to_owned(), run_sk(id), Some("state"))
            .await?
            .map(|i| get_s(&i, "state").and_then(|v| RunState::parse(&v).map_err(|e| AwsError::Corrupt(e.to_string()))))
            .transpose()
    }

    /// Every run, newest first.
    pub async fn list_runs(&self) -> Result<Vec<RunRecord>, AwsError> {
        let items = self.query_pk(RUNS_PK, false).await?;
        items.iter().map(parse_run).collect()
    }

    /// Applies `control` to the run's state (read, check, conditional write on the old state,
    /// so two engineers' commands cannot interleave); answers the new state.
    pub async fn control(&self, id: &RunId, control: Control, now: &str) -> Result<RunState, AwsError> {
        Ok(self.change(id, control, now).await?.1)
    }

    /// [`Self::control`], answering the state the run was in when it changed, and the new one.
    pub async fn change(&self, id: &RunId, control: Control, now: &str) -> Result<(RunState, RunState), AwsError> {
        for _ in 0..5 {
            let run = self.get_run(id).await?.ok_or_else(|| AwsError::Config(format!("no run {id}")))?;
            let next = run.state.apply(control).map_err(|e| AwsError::Config(e.to_string()))?;
            if next == run.state {
                return Ok((run.state, next));
            }
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(schema::key(RUNS_PK, run_sk(id))))
                .update_expression(if next == RunState::Running {
                    "SET #s = :next, updatedAt = :now, startedAt = if_not_exists(startedAt, :now)"
                } else {
                    "SET #s = :next, updatedAt = :now"
                })
                .condition_expression("#s = :old")
                .expression_attribute_names("#s", "state")
                .expression_attribute_values(":next", s(next.as_str()))
                .expression_attribute_values(":old", s(run.state.as_str()))
                .expression_attribute_values(":now", s(now))
                .send()
                .await;
            match out {
                Ok(_) => return Ok((run.state, next)),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => continue,
                Err(e) => return Err(AwsError::from_sdk("UpdateItem", e)),
            }
        }
        Err(AwsError::Service {
            operation: "UpdateItem",
            message: "the run state kept changing".into(),
            retryable: true,
        })
    }

    /// Writes `row` unless its stored row changed since it was read as `before` (its
    /// `updatedAt`; or it was not stored yet): `false` if it had. Another delivery of the same
    /// work that wrote it first, or a rollback that reset it meanwhile, wins (review 27).
    pub async fn put_row_if_unchanged(
        &self,
        run: &RunId,
        before: &LedgerRow,
        row: &LedgerRow,
    ) -> Result<bool, AwsError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(row_item(run, row)))
            .condition_expression("attribute_not_exists(pk) OR updatedAt = :before")
            .expression_attribute_values(":before", s(&before.updated_at))
            .send()
            .await;
        crate::dynamo::conditional(out, "PutItem")
    }

    /// Writes rows, 25 a call, retrying what DynamoDB leaves unprocessed.
    pub async fn put_rows(&self, run: &RunId, rows: &[LedgerRow]) -> Result<(), AwsError> {
        crate::dynamo::batch_put(&self.client, &self.table, rows.iter().map(|r| row_item(run, r)).collect()).await
    }

    /// Every row of the run, in manifest order (tests and small runs; a command that walks a
    /// whole run reads it a page at a time with [`Ledger::rows_page`]).
    pub async fn rows(&self, run: &RunId) -> Result<Vec<LedgerRow>, AwsError> {
        let items = self.query_pk(&rows_pk(run), true).await?;
        items.iter().map(parse_row).collect()
    }

    /// One page of the run's rows in manifest order (at most `limit` rows and DynamoDB's 1 MB),
    /// those after sequence number `after`; the page's last `seq` comes back as the cursor while
    /// more follow.
    pub async fn rows_page(
        &self,
        run: &RunId,
        after: Option<u64>,
        limit: i32,
    ) -> Result<(Vec<LedgerRow>, Option<u64>), AwsError> {
        let start = after.map(|seq| schema::key(rows_pk(run), row_sk(seq)));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(rows_pk(run)))
            .consistent_read(true)
            .limit(limit.max(1))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("Query", e))?;
        let rows: Vec<LedgerRow> = out.items().iter().map(parse_row).collect::<Result<_, _>>()?;
        let more = out.last_evaluated_key().is_some_and(|k| !k.is_empty());
        let next = if more { rows.last().map(|r| r.entry.seq) } else { None };
        Ok((rows, next))
    }

    /// One row, by its manifest sequence number.
    pub async fn row(&self, run: &RunId, seq: u64) -> Result<Option<LedgerRow>, AwsError> {
        self.get(rows_pk(run), row_sk(seq), None).await?.as_ref().map(parse_row).transpose()
    }

    /// Records the multipart upload an `enqueue` started for a pending row; answers the upload
    /// already recorded instead, if there is one (a second `enqueue` reuses it).
    pub async fn set_upload(&self, run: &RunId, seq: u64, upload_id: &str) -> Result<String, AwsError> {
        let out = self
            .update_row(run, seq)
            .update_expression("SET uploadId = if_not_exists(uploadId, :u)")
            .expression_attribute_values(":u", s(upload_id))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("UpdateItem", e))?;
        Ok(out.attributes().and_then(|a| opt_s(a, "uploadId")).unwrap_or_else(|| upload_id.to_owned()))
    }

    /// Replaces the row's multipart upload `old` (gone: the bucket's lifecycle aborted it) by
    /// `new`, forgetting the parts sent to the old one; answers the row's upload after (another
    /// `enqueue` may have replaced it first: then theirs).
    pub async fn replace_upload(&self, run: &RunId, seq: u64, old: &str, new: &str) -> Result<String, AwsError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::key(rows_pk(run), row_sk(seq))))
            .update_expression("SET uploadId = :new REMOVE partsDone")
            .condition_expression("uploadId = :old")
            .expression_attribute_values(":old", s(old))
            .expression_attribute_values(":new", s(new))
            .send()
            .await;
        if crate::dynamo::conditional(out, "UpdateItem")? {
            return Ok(new.to_owned());
        }
        let row = self.row(run, seq).await?;
        Ok(row.and_then(|r| r.upload_id).unwrap_or_default())
    }

    /// Adds part numbers to the row's set of uploaded parts; answers the set after the add.
    /// Idempotent: a redelivered part message adds nothing new.
    pub async fn parts_done(&self, run: &RunId, seq: u64, parts: &[i32]) -> Result<Vec<i32>, AwsError> {
        let out = self
            .update_row(run, seq)
            .update_expression("ADD partsDone :p")
            .expression_attribute_values(":p", AttributeValue::Ns(parts.iter().map(|p| p.to_string()).collect()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("UpdateItem", e))?;
        Ok(numbers(out.attributes(), "partsDone"))
    }

    /// The part numbers recorded as uploaded for a row.
    pub async fn parts_of(&self, run: &RunId, seq: u64) -> Result<Vec<i32>, AwsError> {
        Ok(numbers(self.get(rows_pk(run), row_sk(seq), Some("partsDone")).await?.as_ref(), "partsDone"))
    }

    /// One item, read consistently; with `projection`, that attribute only.
    async fn get(
        &self,
        pk: String,
        sk: String,
        projection: Option<&str>,
    ) -> Result<Option<HashMap<String, AttributeValue>>, AwsError> {
        let mut get =
            self.client.get_item().table_name(&self.table).set_key(Some(schema::key(pk, sk))).consistent_read(true);
        if let Some(name) = projection {
            get = get.projection_expression("#p").expression_attribute_names("#p", name);
        }
        Ok(get.send().await.map_err(|e| AwsError::from_sdk("GetItem", e))?.item)
    }

    /// An update of one existing row.
    fn update_row(
        &self,
        run: &RunId,
        seq: u64,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::key(rows_pk(run), row_sk(seq))))
            .condition_expression(schema::ITEM_EXISTS)
    }

    /// Adds a flush's counters to the run item; answers the run as it is after the add
    /// (`None` if there was nothing to add).
    pub async fn add(&self, run: &RunId, d: &Delta, now: &str) -> Result<Option<RunRecord>, AwsError> {
        if d.is_empty() {
            return Ok(None);
        }
        let mut adds = vec![
            ("copiedFiles", n(d.copied.files)),
            ("copiedBytes", n(d.copied.bytes)),
            ("tMs", n(d.copied.ms)),
            ("tKib", n(d.copied.kib)),
            ("tKib2", n(d.copied.kib2)),
            ("tKibMs", n(d.copied.kib_ms)),
            ("failedFiles", n(d.failed_files)),
            ("retries", n(d.retries)),
            ("activeMs", n(d.active_ms)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect::<Vec<_>>();
        for (r, c) in &d.failures {
            adds.push((fail_attr(*r), n(c)));
        }
        let after = self.update_run(run, "ADD", adds, now).await?;
        after.as_ref().map(parse_run).transpose()
    }

    /// Notes a copy that landed after the run began rolling back and was left for the rollback
    /// (see [`RunRecord::late_copies`]).
    pub async fn note_late_copy(&self, run: &RunId, now: &str) -> Result<(), AwsError> {
        self.update_run(run, "ADD", vec![("lateCopies".to_owned(), n(1))], now).await.map(|_| ())
    }

    /// Records that a rollback which began when `seen` late copies were noted has finished.
    pub async fn late_copies_seen(&self, run: &RunId, seen: u64, now: &str) -> Result<(), AwsError> {
        self.update_run(run, "SET", vec![("lateCopiesSeen".to_owned(), n(seen))], now).await.map(|_| ())
    }

    /// Replaces the counters with values recomputed from the rows (each `run` starts so,
    /// which repairs what a killed process added or did not add).
    pub async fn reset_counters(&self, run: &RunId, c: &Counters, now: &str) -> Result<(), AwsError> {
        let mut sets = vec![
            ("copiedFiles".to_owned(), n(c.copied.files)),
            ("copiedBytes".to_owned(), n(c.copied.bytes)),
            ("failedFiles".to_owned(), n(c.failed_files)),
        ];
        for r in FailureReason::ALL {
            sets.push((fail_attr(r), n(c.failures.get(&r).copied().unwrap_or(0))));
        }
        self.update_run(run, "SET", sets, now).await.map(|_| ())
    }

    /// Records a full verification of the run (the last one wins).
    pub async fn set_verification(&self, run: &RunId, v: &Verification) -> Result<(), AwsError> {
        let sets = vec![
            ("verifiedAt".to_owned(), s(&v.at)),
            ("verifiedHow".to_owned(), s(if v.deep { "deep" } else { "checksums" })),
            ("verifiedOutcome".to_owned(), s(if v.passed { "passed" } else { "failed" })),
            ("verifiedChecked".to_owned(), n(v.checked)),
            ("verifiedProblems".to_owned(), n(v.problems)),
        ];
        self.update_run(run, "SET", sets, &v.at).await.map(|_| ())
    }

    /// The switch of `prefix` of `source`, if one was ever recorded.
    pub async fn cutover(&self, source: &str, prefix: &LegacyPrefix) -> Result<Option<Cutover>, AwsError> {
        self.get(CUTOVERS_PK.to_owned(), cutover_sk(source, prefix), None)
            .await?
            .as_ref()
            .map(parse_cutover)
            .transpose()
    }

    /// Every recorded switch, by source and prefix.
    pub async fn cutovers(&self) -> Result<Vec<Cutover>, AwsError> {
        self.query_pk(CUTOVERS_PK, true).await?.iter().map(parse_cutover).collect()
    }

    /// Records `c` as the prefix's switch and appends it to the audit trail, in one transaction.
    pub async fn record_cutover(&self, c: &Cutover) -> Result<(), AwsError> {
        let prefix = LegacyPrefix::parse(&c.prefix).map_err(|e| AwsError::Corrupt(e.to_string()))?;
        let mut attrs = vec![
            ("source".to_owned(), s(&c.source)),
            ("prefix".to_owned(), s(&c.prefix)),
            ("to".to_owned(), s(c.to.as_str())),
            ("at".to_owned(), s(&c.at)),
            ("verifiedFiles".to_owned(), n(c.verified_files)),
            ("blockingFiles".to_owned(), n(c.blocking_files)),
        ];
        if let Some(reason) = &c.forced_reason {
            attrs.push(("forcedReason".to_owned(), s(reason)));
        }
        let mut state = schema::key(CUTOVERS_PK, cutover_sk(&c.source, &prefix));
        state.extend(attrs.clone());
        let nonce = format!("{:08x}", rand_nonce());
        let mut audit = schema::key(CUTOVER_AUDIT_PK, format!("{}#{}#{nonce}", c.at, cutover_sk(&c.source, &prefix)));
        audit.extend(attrs);
        let put = |item, condition: Option<&str>| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .set_condition_expression(condition.map(str::to_owned))
                .build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(|e| AwsError::Corrupt(e.to_string()))
        };
        let items = vec![put(state, None)?, put(audit, Some(schema::ITEM_IS_NEW))?];
        crate::dynamo::transact(&self.client, items)
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("TransactWriteItems", e))
    }

    /// The audit trail of switches, oldest first.
    pub async fn cutover_audit(&self) -> Result<Vec<Cutover>, AwsError> {
        self.query_pk(CUTOVER_AUDIT_PK, true).await?.iter().map(parse_cutover).collect()
    }

    /// `SET updatedAt = :now` and `clause` (`ADD` or `SET`) over `pairs`, on an existing run.
    async fn update_run(
        &self,
        run: &RunId,
        clause: &str,
        pairs: Vec<(String, AttributeValue)>,
        now: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, AwsError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::key(RUNS_PK, run_sk(run))))
            .condition_expression(schema::ITEM_EXISTS)
            .expression_attribute_values(":now", s(now))
            .return_values(ReturnValue::AllNew);
        let operator = if clause == "SET" { " = " } else { " " };
        let mut parts = Vec::new();
        for (i, (name, value)) in pairs.into_iter().enumerate() {
            parts.push(format!("#a{i}{operator}:a{i}"));
            update = update
                .expression_attribute_names(format!("#a{i}"), name)
                .expression_attribute_values(format!(":a{i}"), value);
        }
        let expression = if clause == "SET" {
            format!("SET updatedAt = :now, {}", parts.join(", "))
        } else {
            format!("SET updatedAt = :now {clause} {}", parts.join(", "))
        };
        update
            .update_expression(expression)
            .send()
            .await
            .map(|out| out.attributes)
            .map_err(|e| AwsError::from_sdk("UpdateItem", e))
    }

    async fn query_pk(&self, pk: &str, forward: bool) -> Result<Vec<HashMap<String, AttributeValue>>, AwsError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            .scan_index_forward(forward)
            .consistent_read(true);
        crate::dynamo::query_all(query).await
    }
}

impl Ledger {
    /// Counts one answer of the legacy redirector of `source` on the day of `at` (an ISO
    /// timestamp): one `ADD`, so every concurrent redirector counts into the same item.
    pub async fn count_legacy_served(
        &self,
        source: &str,
        at: &str,
        served: Served,
        path: &str,
    ) -> Result<(), AwsError> {
        let day = at.get(..10).ok_or_else(|| AwsError::Corrupt(format!("{at:?} is not a timestamp")))?;
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::key(legacy_served_pk(source), day)))
            .expression_attribute_names("#c", served.counter())
            .expression_attribute_values(":one", n(1));
        update = match served {
            Served::Fallback { bytes } => update
                .update_expression("ADD #c :one, fallbackBytes :b SET lastLegacyAt = :at, lastLegacyPath = :p")
                .expression_attribute_values(":b", n(bytes))
                .expression_attribute_values(":at", s(at))
                .expression_attribute_values(":p", s(path)),
            Served::LargeRedirect => update
                .update_expression("ADD #c :one SET lastLegacyAt = :at, lastLegacyPath = :p")
                .expression_attribute_values(":at", s(at))
                .expression_attribute_values(":p", s(path)),
            Served::Redirect | Served::Gone => update.update_expression("ADD #c :one"),
        };
        update.send().await.map_err(|e| AwsError::from_sdk("UpdateItem", e))?;
        Ok(())
    }

    /// Every counted day of `source`, oldest first (one small item a day).
    pub async fn legacy_served(&self, source: &str) -> Result<Vec<LegacyServedDay>, AwsError> {
        Ok(self
            .query_pk(&legacy_served_pk(source), true)
            .await?
            .iter()
            .map(|item| LegacyServedDay {
                day: opt_s(item, schema::SK).unwrap_or_default(),
                redirects: get_u(item, "redirects"),
                gone: get_u(item, "gone"),
                fallbacks: get_u(item, "fallbacks"),
                fallback_bytes: get_u(item, "fallbackBytes"),
                large_redirects: get_u(item, "largeRedirects"),
                last_legacy_at: opt_s(item, "lastLegacyAt"),
                last_legacy_path: opt_s(item, "lastLegacyPath"),
            })
            .collect())
    }
}

fn legacy_served_pk(source: &str) -> String {
    format!("LEGACY#SERVED#{source}")
}

/// A few random bits, so two switches in the same millisecond keep two audit entries.
fn rand_nonce() -> u32 {
    let mut b = [0u8; 4];
    aws_lc_rs::rand::fill(&mut b).map(|()| u32::from_be_bytes(b)).unwrap_or_default()
}
