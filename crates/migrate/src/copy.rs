//! Copying one ledger row: the code local runs and the `migration-worker` function share.
//!
//! The manifest's CRC64NVME is checked twice: here, on the bytes read (a source changed since
//! plan is caught before anything is written), and by S3, which receives it with the bytes
//! (`x-amz-checksum-crc64nvme`; per part and for the whole object on multipart) and refuses
//! bytes that do not match. Writes are conditional on what the key held at plan time, so an
//! application write made since is never overwritten, and a retried write never makes a
//! second version: the retry meets the first one, recognises it by the run id in its
//! metadata and checksum, and adopts it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use matbakh_aws::AwsError;
use matbakh_aws::ledger::LedgerRow;
use matbakh_aws::transfer::{SentPart, Target, WriteCondition, Written};
use matbakh_core::ids::{FileId, ObjectKey, Sha256, UserId};
use matbakh_core::labels::{CustomMetadata, Labels, Tag, Visibility};
use matbakh_core::metadata::{FileRecord, FileStatus};
use matbakh_core::migration::backoff::{Backoff, DEFAULT_BACKOFF};
use matbakh_core::migration::throttle::TokenBucket;
use matbakh_core::migration::{
    FailureReason, ManifestEntry, RUN_METADATA_KEY, RunId, SOURCE_METADATA_KEY, SplitMix64, part_ranges, part_size_for,
};
use matbakh_core::names::DisplayName;
use matbakh_core::types::ContentType;
use tokio::sync::Semaphore;

use crate::plan::CopySettings;
use crate::source::{ReadError, Source};
use crate::{Registry, crc64_base64};

/// Bytes of file data held in memory at once by all transfers together.
pub const DEFAULT_BUFFER_BYTES: u64 = 128 * 1024 * 1024;
/// Parts of one large file in flight at once.
pub const PART_CONCURRENCY: usize = 4;

/// Limits shared by every transfer of a process: bandwidth (bytes/s) and request rate.
pub struct Throttle {
    start: Instant,
    bandwidth: Option<Mutex<TokenBucket>>,
    requests: Option<Mutex<TokenBucket>>,
}

impl Throttle {
    /// `bytes_per_second` with one second of burst; `requests_per_second` likewise.
    pub fn new(bytes_per_second: Option<u64>, requests_per_second: Option<f64>) -> Self {
        Throttle {
            start: Instant::now(),
            bandwidth: bytes_per_second.map(|r| Mutex::new(TokenBucket::new(r as f64, r as f64, 0.0))),
            requests: requests_per_second.map(|r| Mutex::new(TokenBucket::new(r, r.max(1.0), 0.0))),
        }
    }

    async fn take(&self, bucket: &Option<Mutex<TokenBucket>>, n: f64) {
        let wait = match bucket {
            Some(b) => match b.lock() {
                Ok(mut b) => b.take(n, self.start.elapsed().as_secs_f64()),
                Err(_) => 0.0,
            },
            None => 0.0,
        };
        if wait > 0.0 {
            // A wait too long for a Duration (a rate near 0) is as good as forever; never a panic.
            tokio::time::sleep(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX)).await;
        }
    }

    /// Waits until one request carrying `bytes` may go.
    pub async fn request(&self, bytes: u64) {
        self.take(&self.requests, 1.0).await;
        self.take(&self.bandwidth, bytes as f64).await;
    }
}

/// How a copy ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The target holds the file's bytes, S3-checked. `adopted`: an earlier attempt (perhaps
    /// of a process that was killed) had written it; this one only recognised it.
    Copied {
        version_id: Option<String>,
        adopted: bool,
        /// The delete marker put on the file's earlier copy (`supersedes`), if one was.
        retired: Option<String>,
    },
    Failed {
        reason: FailureReason,
        message: String,
    },
}

/// One copy's result and cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Copy {
    pub outcome: Outcome,
    /// Attempts made (requests that were retried count once per try).
    pub attempts: u32,
    pub retries: u32,
    pub ms: f64,
}

#[derive(Clone)]
pub struct Copier {
    pub target: Target,
    pub source: Arc<dyn Source>,
    pub run: RunId,
    pub settings: CopySettings,
    pub backoff: Backoff,
    pub throttle: Arc<Throttle>,
    /// The platform's files table: files in the user layout get their row before their object
    /// (and none of an erased user's is copied).
    pub files: Option<Registry>,
    memory: Arc<Semaphore>,
    memory_kib: u32,
}

/// Why one attempt failed: retry it, or stop with a reason.
enum Attempt {
    Retry(String),
    Stop(FailureReason, String),
}

impl From<AwsError> for Attempt {
    fn from(e: AwsError) -> Self {
        match e {
            AwsError::ChecksumMismatch(m) => Attempt::Retry(format!("S3 refused the bytes: {m}")),
            e if e.is_retryable() => Attempt::Retry(e.to_string()),
            e => Attempt::Stop(FailureReason::Refused, e.to_string()),
        }
    }
}

impl From<ReadError> for Attempt {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Unreadable(m) => Attempt::Stop(FailureReason::SourceUnreadable, m),
            ReadError::Changed(m) => Attempt::Stop(FailureReason::SourceChanged, m),
            ReadError::Transient(m) => Attempt::Retry(m),
        }
    }
}

fn crc64(bytes: &[u8]) -> u64 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, bytes)
}

/// Metadata values must be ASCII in headers: the legacy path is percent-encoded.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~ ".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How fast a copier may go: its retry backoff, the bandwidth and request throttle it shares
/// with the run's other copiers, and the memory its bodies in flight may take.
#[derive(Clone)]
pub struct Pace {
    pub backoff: Backoff,
    pub throttle: Arc<Throttle>,
    pub buffer_bytes: u64,
}

impl Default for Pace {
    /// The defaults, unthrottled (a migration worker's: the queue's concurrency paces it).
    fn default() -> Self {
        Pace {
            backoff: DEFAULT_BACKOFF,
            throttle: Arc::new(Throttle::new(None, None)),
            buffer_bytes: DEFAULT_BUFFER_BYTES,
        }
    }
}

impl Copier {
    pub fn new(target: Target, source: Arc<dyn Source>, run: RunId, settings: CopySettings, pace: Pace) -> Self {
        let Pace { backoff, throttle, buffer_bytes } = pace;
        let memory_kib = u32::try_from(buffer_bytes / 1024).unwrap_or(u32::MAX).max(1);
        Copier {
            target: target.with_storage_class(settings.storage_class.map(|c| c.as_str())),
            source,
            run,
            settings,
            backoff,
            throttle,
            files: None,
            memory: Arc::new(Semaphore::new(memory_kib as usize)),
            memory_kib,
        }
    }

    /// Copies the row's file; never panics, never leaves a half-written object.
    pub async fn copy(&self, row: &LedgerRow, seed: u64) -> Copy {
        let started = Instant::now();
        let mut rng = SplitMix64::new(seed ^ row.entry.seq);
        let e = &row.entry;
        let (mut attempts, mut retries) = (0u32, 0u32);
        let outcome = loop {
            attempts += 1;
            let attempt = if attempts > 1 && self.landed(e).await.unwrap_or(false) {
                async {
                    self.register(e).await?;
                    self.adopt(e).await
                }
                .await
            } else if e.is_multipart(self.settings.multipart_threshold) {
                self.multipart(e, &mut rng, &mut retries).await
            } else {
                self.single(e).await
            };
            match attempt {
                Ok(outcome) => break outcome,
                Err(Attempt::Stop(reason, message)) => break Outcome::Failed { reason, message },
                Err(Attempt::Retry(message)) => match self.backoff.delay(attempts, &mut rng) {
                    Some(wait) => {
                        retries += 1;
                        tracing::debug!(key = %e.key, attempts, %message, "retrying");
                        tokio::time::sleep(wait).await;
                    }
                    None => {
                        let reason = if message.starts_with("S3 refused the bytes") {
                            FailureReason::TransferCorrupted
                        } else {
                            FailureReason::RetriesExhausted
                        };
                        break Outcome::Failed { reason, message: format!("after {attempts} attempts: {message}") };
                    }
                },
            }
        };
        let outcome = self.retire_earlier(e, outcome, &mut rng).await;
        Copy { outcome, attempts, retries, ms: started.elapsed().as_secs_f64() * 1000.0 }
    }

    /// Whether the key holds something the plan did not see, before an attempt after a failed
    /// one: a write whose answer was lost may have landed (S3 stored it, then the connection
    /// broke), and a server that refuses a conditional write before reading its body (s3s-fs
    /// answers 412 and closes) looks to the client like a broken connection. Sending the bytes
    /// again would be refused again; [`Self::adopt`] decides instead. A failed HEAD says nothing:
    /// the attempt then writes as usual.
    async fn landed(&self, e: &ManifestEntry) -> Result<bool, AwsError> {
        Ok(match (self.target.head(&e.key, None).await?, &e.prior) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(now), Some(prior)) => now.etag != prior.etag,
        })
    }

    /// Once a changed file is copied under its new key, its earlier copy goes ([`Self::retire`]).
    async fn retire_earlier(&self, e: &ManifestEntry, outcome: Outcome, rng: &mut SplitMix64) -> Outcome {
        match (outcome, &e.supersedes) {
            (Outcome::Copied { version_id, adopted, .. }, Some(old)) => match self.retire(old, rng).await {
                Ok(retired) => Outcome::Copied { version_id, adopted, retired },
                // Copied, the earlier copy still shown: a later attempt adopts the copy and
                // retires it then; a rollback finds the copy by its run id.
                Err(message) => Outcome::Failed {
                    reason: FailureReason::RetriesExhausted,
                    message: format!("copied to {}, but its earlier copy {old} could not be hidden: {message}", e.key),
                },
            },
            (outcome, _) => outcome,
        }
    }

    /// Hides a changed file's earlier copy at `old` behind a delete marker, which the platform
    /// takes as a soft delete of that file: the marker's version. Nothing when the copy is
    /// hidden already (by its owner, or by an earlier attempt whose row was not written: that
    /// marker stays unclaimed, so a rollback leaves the file deleted, restorable by its owner)
    /// or gone.
    async fn retire(&self, old: &str, rng: &mut SplitMix64) -> Result<Option<String>, String> {
        let mut tries = 0;
        loop {
            tries += 1;
            let attempt = match self.target.head(old, None).await {
                Ok(None) => Ok(None),
                Ok(Some(_)) => self.target.hide(old).await,
                Err(e) => Err(e),
            };
            match attempt {
                Ok(marker) => return Ok(marker),
                Err(e) if e.is_retryable() => match self.backoff.delay(tries, rng) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return Err(format!("after {tries} attempts: {e}")),
                },
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Registers the file in the files table before its object exists, so the event pipeline
    /// treats it as an arrived upload (settled, thumbnailed). Keys outside the user layout and
    /// types off the allow-list are copied without a row (`verify` reports them). A file whose
    /// owner erased their account on the platform stops here, before anything is written: an
    /// erase is for good, and the legacy store may still hold their files.
    async fn register(&self, e: &ManifestEntry) -> Result<(), Attempt> {
        let Some(files) = &self.files else { return Ok(()) };
        // The owner the key names, whether or not the file gets a row (a type off the
        // allow-list gets none, and was copied for an erased user: security review 20).
        let owner = e.owner();
        if let Some(owner) = &owner
            && files.erased(owner).await?
        {
            // Its old URL answers `410` from now on; the row is kept without the path
            // (`erased::kept`), the mark is what says the path was theirs.
            let mark = files.path_mark(&e.source);
            let at = matbakh_core::clock::iso_millis(time::OffsetDateTime::now_utc());
            files.table.mark_paths_erased(&[mark], &at).await?;
            return Err(Attempt::Stop(FailureReason::Erased, matbakh_aws::ledger::ERASED_MESSAGE.to_owned()));
        }
        let Some(record) = file_record(e) else { return Ok(()) };
        match files.table.register_migrated(&record, self.run.as_str(), &e.source).await {
            // Its id has a row of another key: the object would have no row (a file nobody
            // sees); said, and nothing written (security review 20).
            Err(AwsError::AlreadyExists) => Err(Attempt::Stop(
                FailureReason::TargetChanged,
                format!(
                    "file {} already has a row of another key (a rolled back run's, of another owner?): remove that row, then run again",
                    record.file_id
                ),
            )),
            other => other.map(|_| ()).map_err(Attempt::from),
        }
    }

    fn condition(e: &ManifestEntry) -> WriteCondition {
        match &e.prior {
            Some(p) => WriteCondition::Matches(p.etag.clone()),
            None => WriteCondition::Absent,
        }
    }

    async fn reserve(&self, len: u64) -> Result<tokio::sync::SemaphorePermit<'_>, Attempt> {
        let kib = u32::try_from(len.div_ceil(1024)).unwrap_or(u32::MAX).clamp(1, self.memory_kib);
        self.memory.acquire_many(kib).await.map_err(|e| Attempt::Retry(e.to_string()))
    }

    async fn single(&self, e: &ManifestEntry) -> Result<Outcome, Attempt> {
        let _held = self.reserve(e.size).await?;
        let bytes = self.source.read(&e.source, 0, e.size).await?;
        let crc = crc64_base64(crc64(&bytes));
        if crc != e.crc64nvme {
            return Err(Attempt::Stop(
                FailureReason::SourceChanged,
                format!("CRC64NVME is {crc} now, {} at plan", e.crc64nvme),
            ));
        }
        // The throttle's wait before the erased check, not between it and the write: an erase
        // in that gap leaves the file to the erase's second pass (`core::erasure`).
        self.throttle.request(e.size).await;
        self.register(e).await?;
        let source = encode_path(&e.source);
        let metadata = [(RUN_METADATA_KEY, self.run.as_str()), (SOURCE_METADATA_KEY, &source), ("sha256", &e.sha256)];
        match self.target.put(&e.key, bytes, &crc, &e.content_type, &metadata, &Self::condition(e)).await {
            Ok(w) => Ok(copied(w)),
            Err(AwsError::ConditionFailed) => self.adopt(e).await,
            Err(err) => Err(err.into()),
        }
    }

    /// The key did not hold what the plan saw: either an earlier attempt of this run wrote
    /// it (adopt that version) or someone else did (refuse, never overwrite).
    async fn adopt(&self, e: &ManifestEntry) -> Result<Outcome, Attempt> {
        let head = self.target.head(&e.key, None).await?;
        match head {
            Some(h)
                if h.metadata.get(RUN_METADATA_KEY).map(String::as_str) == Some(self.run.as_str())
                    && h.size == e.size
                    && h.crc64nvme.as_deref().is_none_or(|c| c == e.crc64nvme) =>
            {
                Ok(Outcome::Copied { version_id: h.version_id, adopted: true, retired: None })
            }
            // No metadata at all: a server that lost it in a crash after storing the bytes
            // (s3s-fs killed mid-write does). The bytes decide: ours if they hash to the manifest.
            Some(h)
                if h.metadata.is_empty() && h.size == e.size && self.same_bytes(e, h.version_id.as_deref()).await? =>
            {
                tracing::warn!(key = %e.key, "object without metadata holds this file's bytes; adopted");
                Ok(Outcome::Copied { version_id: h.version_id, adopted: true, retired: None })
            }
            Some(h) => Err(Attempt::Stop(
                FailureReason::TargetChanged,
                format!("{} was written by someone else since plan (ETag {}); not overwritten", e.key, h.etag),
            )),
            None => Err(Attempt::Stop(
                FailureReason::TargetChanged,
                format!("{} was deleted since plan; not written", e.key),
            )),
        }
    }

    /// Whether the object (version) holds exactly the manifest's bytes (read back, CRC64NVME).
    async fn same_bytes(&self, e: &ManifestEntry, version_id: Option<&str>) -> Result<bool, Attempt> {
        let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
        let read = self.target.read(&e.key, version_id, |chunk| crc.update(chunk)).await?;
        Ok(read == Some(e.size) && crc64_base64(crc.finalize()) == e.crc64nvme)
    }

    async fn multipart(&self, e: &ManifestEntry, rng: &mut SplitMix64, retries: &mut u32) -> Result<Outcome, Attempt> {
        let source = encode_path(&e.source);
        let metadata = [(RUN_METADATA_KEY, self.run.as_str()), (SOURCE_METADATA_KEY, &source), ("sha256", &e.sha256)];
        self.throttle.request(0).await;
        let upload_id = self.target.create_multipart(&e.key, &e.content_type, &metadata).await?;
        let result = self.parts_and_complete(e, &upload_id, rng, retries).await;
        if !matches!(result, Ok(Outcome::Copied { adopted: false, .. })) {
            // Best effort: the bucket's lifecycle rule aborts what this cannot.
            let _ = self.target.abort_multipart(&e.key, &upload_id).await;
        }
        result
    }

    async fn parts_and_complete(
        &self,
        e: &ManifestEntry,
        upload_id: &str,
        rng: &mut SplitMix64,
        retries: &mut u32,
    ) -> Result<Outcome, Attempt> {
        let (sent, part_retries) = self.send_parts(e, upload_id, &parts_of(e, &self.settings), rng.next_u64()).await?;
        *retries += part_retries;
        self.finish_parts(e, upload_id, sent).await
    }

    /// Sends `parts` (number, offset, length) of the file, [`PART_CONCURRENCY`] at once, each
    /// retried on its own; answers them with their CRCs and lengths, and the retries spent.
    async fn send_parts(
        &self,
        e: &ManifestEntry,
        upload_id: &str,
        parts: &[(i32, u64, u64)],
        seed: u64,
    ) -> Result<(Vec<(SentPart, Option<u64>, u64)>, u32), Attempt> {
        let mut rng = SplitMix64::new(seed);
        let mut sent = Vec::with_capacity(parts.len());
        let mut retries = 0;
        for chunk in parts.chunks(PART_CONCURRENCY) {
            let mut tasks = tokio::task::JoinSet::new();
            for &(number, offset, len) in chunk {
                let (me, e, upload_id, seed) = (self.clone(), e.clone(), upload_id.to_owned(), rng.next_u64());
                tasks.spawn(async move { me.part(&e, &upload_id, number, offset, len, seed).await });
            }
            while let Some(done) = tasks.join_next().await {
                let (part, crc, len, part_retries) =
                    done.map_err(|err| Attempt::Retry(format!("part task: {err}")))??;
                retries += part_retries;
                sent.push((part, Some(crc), len));
            }
        }
        Ok((sent, retries))
    }

    /// Completes the upload from its parts: their CRCs combined must give the manifest's
    /// (else the source changed while it was read), and S3 checks the same value again.
    async fn finish_parts(
        &self,
        e: &ManifestEntry,
        upload_id: &str,
        mut sent: Vec<(SentPart, Option<u64>, u64)>,
    ) -> Result<Outcome, Attempt> {
        sent.sort_by_key(|(p, _, _)| p.number);
        let crcs: Option<Vec<(u64, u64)>> = sent.iter().map(|(_, crc, len)| crc.map(|c| (c, *len))).collect();
        if let Some(whole) = crcs.and_then(|c| {
            c.into_iter()
                .reduce(|(a, _), (b, len)| {
                    (crc_fast::checksum_combine(crc_fast::CrcAlgorithm::Crc64Nvme, a, b, len), len)
                })
                .map(|(c, _)| crc64_base64(c))
        }) && whole != e.crc64nvme
        {
            return Err(Attempt::Stop(
                FailureReason::SourceChanged,
                format!("CRC64NVME is {whole} now, {} at plan", e.crc64nvme),
            ));
        }
        let parts: Vec<SentPart> = sent.into_iter().map(|(p, _, _)| p).collect();
        self.throttle.request(0).await;
        self.register(e).await?;
        match self.target.complete_multipart(&e.key, upload_id, &parts, &e.crc64nvme, &Self::condition(e)).await {
            Ok(w) => Ok(copied(w)),
            Err(AwsError::ConditionFailed) => self.adopt(e).await,
            Err(err) => Err(err.into()),
        }
    }

    /// Starts the multipart upload of a row's file (the `enqueue` side of the SQS path).
    pub async fn start_upload(&self, e: &ManifestEntry) -> Result<String, AwsError> {
        let source = encode_path(&e.source);
        let metadata = [(RUN_METADATA_KEY, self.run.as_str()), (SOURCE_METADATA_KEY, &source), ("sha256", &e.sha256)];
        self.target.create_multipart(&e.key, &e.content_type, &metadata).await
    }

    /// Sends some parts of an upload `enqueue` started (one SQS part message). `Err` carries
    /// the reason, and whether a redelivery may succeed.
    pub async fn copy_parts(
        &self,
        e: &ManifestEntry,
        upload_id: &str,
        parts: &[(i32, u64, u64)],
        seed: u64,
    ) -> Result<u32, (FailureReason, String, bool)> {
        match self.send_parts(e, upload_id, parts, seed).await {
            Ok((_, retries)) => Ok(retries),
            Err(Attempt::Retry(m)) => Err((FailureReason::RetriesExhausted, m, true)),
            Err(Attempt::Stop(r, m)) => Err((r, m, r.retryable())),
        }
    }

    /// The completion step of the SQS path: the parts S3 holds, checked and completed. The
    /// upload is aborted if the file cannot be completed for good.
    pub async fn complete_upload(&self, e: &ManifestEntry, upload_id: &str) -> Copy {
        let started = Instant::now();
        let listed = match self.target.list_parts(&e.key, upload_id).await {
            Ok(Some(parts)) => parts,
            // Completed already (a redelivered completion message) or aborted: look at the key.
            Ok(None) => {
                let outcome = match self.adopt(e).await {
                    Ok(o) => self.retire_earlier(e, o, &mut SplitMix64::new(e.seq)).await,
                    Err(Attempt::Stop(reason, message)) => Outcome::Failed { reason, message },
                    Err(Attempt::Retry(message)) => {
                        Outcome::Failed { reason: FailureReason::RetriesExhausted, message }
                    }
                };
                return Copy { outcome, attempts: 1, retries: 0, ms: started.elapsed().as_secs_f64() * 1000.0 };
            }
            Err(err) => {
                let outcome = Outcome::Failed { reason: FailureReason::RetriesExhausted, message: err.to_string() };
                return Copy { outcome, attempts: 1, retries: 0, ms: started.elapsed().as_secs_f64() * 1000.0 };
            }
        };
        let expected = parts_of(e, &self.settings).len();
        let sent: Vec<(SentPart, Option<u64>, u64)> = listed
            .into_iter()
            .map(|(p, len)| {
                let crc = crc64_of_base64(&p.crc64nvme);
                (p, crc, len)
            })
            .collect();
        let outcome = if sent.len() != expected {
            Outcome::Failed {
                reason: FailureReason::RetriesExhausted,
                message: format!("{} of {expected} parts uploaded", sent.len()),
            }
        } else {
            match self.finish_parts(e, upload_id, sent).await {
                Ok(o) => o,
                Err(Attempt::Stop(reason, message)) => {
                    let _ = self.target.abort_multipart(&e.key, upload_id).await;
                    Outcome::Failed { reason, message }
                }
                Err(Attempt::Retry(message)) => Outcome::Failed { reason: FailureReason::RetriesExhausted, message },
            }
        };
        let outcome = self.retire_earlier(e, outcome, &mut SplitMix64::new(e.seq)).await;
        Copy { outcome, attempts: 1, retries: 0, ms: started.elapsed().as_secs_f64() * 1000.0 }
    }

    /// One part: read, checksum, send, retrying transient failures on its own.
    async fn part(
        &self,
        e: &ManifestEntry,
        upload_id: &str,
        number: i32,
        offset: u64,
        len: u64,
        seed: u64,
    ) -> Result<(SentPart, u64, u64, u32), Attempt> {
        let mut rng = SplitMix64::new(seed);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = async {
                let _held = self.reserve(len).await?;
                let bytes = self.source.read(&e.source, offset, len).await?;
                let crc = crc64(&bytes);
                self.throttle.request(len).await;
                let part = self.target.upload_part(&e.key, upload_id, number, bytes, &crc64_base64(crc)).await?;
                Ok::<_, Attempt>((part, crc))
            }
            .await;
            match result {
                Ok((part, crc)) => return Ok((part, crc, len, attempts - 1)),
                Err(Attempt::Retry(m)) => match self.backoff.delay(attempts, &mut rng) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return Err(Attempt::Stop(FailureReason::RetriesExhausted, format!("part {number}: {m}"))),
                },
                Err(stop) => return Err(stop),
            }
        }
    }
}

/// The files-table row of a migrated file in the user layout (`users/{sub}/{fileId}/{name}`)
/// of an allowed type: its legacy name, its mtime as creation time, its SHA-256.
pub fn file_record(e: &ManifestEntry) -> Option<FileRecord> {
    let mut segments = e.key.split('/');
    let (Some("users"), Some(owner), Some(id), Some(_), None) =
        (segments.next(), segments.next(), segments.next(), segments.next(), segments.next())
    else {
        return None;
    };
    // The legacy row's name and upload time where it has them (validated at plan time).
    let legacy = e.legacy.clone().unwrap_or_default();
    let name = legacy.name.as_deref().unwrap_or_else(|| e.source.rsplit('/').next().unwrap_or(&e.source));
    let created_ms = legacy.uploaded_at_ms.unwrap_or(e.mtime_ms);
    let tags: Vec<Tag> = legacy.tags.iter().filter_map(|t| Tag::parse(t).ok()).collect();
    let visibility = if legacy.public == Some(true) { Visibility::Public } else { Visibility::Private };
    let labels = CustomMetadata::parse(legacy.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .and_then(|metadata| Labels::new(visibility, &tags, metadata))
        .unwrap_or_default();
    Some(FileRecord {
        file_id: FileId::parse(id).ok()?,
        owner: UserId::parse(owner).ok()?,
        key: ObjectKey::from_stored(e.key.clone()),
        filename: DisplayName::parse(name)
            .unwrap_or_else(|_| DisplayName::from_stored(e.key.rsplit('/').next().unwrap_or("file").to_owned())),
        content_type: ContentType::parse(&e.content_type).ok()?,
        size: e.size,
        sha256: Sha256::parse(&e.sha256).ok(),
        status: FileStatus::Pending,
        created_at: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(created_ms) * 1_000_000).ok()?,
        expires_at: None,
        version_id: None,
        labels,
    })
}

/// The parts of a file as (number, offset, length).
pub fn parts_of(e: &ManifestEntry, settings: &CopySettings) -> Vec<(i32, u64, u64)> {
    part_ranges(e.size, part_size_for(e.size, settings.part_size))
        .into_iter()
        .enumerate()
        .map(|(i, (offset, len))| (i as i32 + 1, offset, len))
        .collect()
}

fn crc64_of_base64(value: &str) -> Option<u64> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(value).ok()?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

fn copied(w: Written) -> Outcome {
    Outcome::Copied { version_id: w.version_id, adopted: false, retired: None }
}

/// The row after `copy`.
pub fn updated_row(row: &LedgerRow, copy: &Copy, now: &str) -> LedgerRow {
    let mut next = row.clone();
    next.attempts = row.attempts + copy.attempts;
    next.updated_at = now.to_owned();
    match &copy.outcome {
        Outcome::Copied { version_id, retired, .. } => {
            next.status = matbakh_core::migration::RowStatus::Copied;
            next.version_id = version_id.clone();
            next.retired_version = retired.clone();
            next.reason = None;
            next.message = None;
        }
        Outcome::Failed { reason, message } => {
            next.status = matbakh_core::migration::RowStatus::Failed;
            next.reason = Some(*reason);
            next.message = Some(message.clone());
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_paths_become_ascii_metadata() {
        assert_eq!(encode_path("users/42/Café 1.jpg"), "users/42/Caf%C3%A9 1.jpg");
        assert_eq!(encode_path("a%b"), "a%25b");
    }

    #[test]
    fn part_checksums_combine_into_the_whole_files() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = crc64(&data);
        let parts = part_ranges(data.len() as u64, 1_000_003);
        let combined = parts
            .iter()
            .map(|&(o, l)| (crc64(&data[o as usize..(o + l) as usize]), l))
            .reduce(|(a, _), (b, l)| (crc_fast::checksum_combine(crc_fast::CrcAlgorithm::Crc64Nvme, a, b, l), l))
            .unwrap()
            .0;
        assert_eq!(combined, whole);
    }
}
