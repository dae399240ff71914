//! Migration rules (pure): run ids and states, the manifest line, the per-file ledger status,
//! key mapping with collision detection, batching, the ETA model, throttles, retry backoff
//! and the cost estimate. The `migrate` CLI and the `migration-worker` function share them.

pub mod backoff;
pub mod cost;
pub mod delta;
pub mod eta;
pub mod legacy_meta;
pub mod mapping;
pub mod redirect;
pub mod throttle;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::audit::{ERASED_MARK_PREFIX, PseudonymKey, erased_path, pseudonym};
use crate::error::CoreError;
use crate::ids::UserId;
pub use crate::multipart::{part_ranges, part_size_for};

/// The migration queue's message an erase sends (`migrate::work::Work::Redact` of every run):
/// the runs' records of the erased user are rewritten to name nobody (DECISIONS 17). It names
/// no one itself: the worker finds erased users by the marks their erases left.
pub const REDACT_ERASED_MESSAGE: &str = r#"{"kind":"redact"}"#;

/// Files at or above this size are copied as S3 multipart uploads. Below it one PUT is
/// cheaper for every server (no part bookkeeping, no reassembly); rclone's cutoff is 200 MiB.
/// A file held whole for its PUT counts against the transfer buffer like a part.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 64 * 1024 * 1024;
/// Size of each part of a multipart copy (S3's minimum is 5 MiB, its maximum part count 10,000).
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;
/// The largest multipart threshold and part size a plan accepts: a file copied in one PUT is
/// held whole in memory, a part likewise, and the worker function has 1,024 MB (S3 itself
/// takes up to 5 GiB in one PUT or part).
pub const MAX_COPY_BUFFER: u64 = 512 * 1024 * 1024;
/// Concurrent transfers of a local run. Memory is bounded by transfers x part size.
pub const DEFAULT_TRANSFERS: usize = 16;
/// A batch (one unit of work for a worker) holds at most this many files...
pub const DEFAULT_BATCH_FILES: usize = 100;
/// ...and at most this many bytes (a file above it is a batch of its own).
pub const DEFAULT_BATCH_BYTES: u64 = 64 * 1024 * 1024;
/// Attempts per file for retryable errors (throttling, timeouts, 5xx, connection refused).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// Metadata key every migrated object carries (`x-amz-meta-migration-run`).
pub const RUN_METADATA_KEY: &str = "migration-run";
/// Metadata key with the legacy path the object was copied from.
pub const SOURCE_METADATA_KEY: &str = "migration-source";

/// A run's id: `r` + UTC time of planning + random hex, so ids sort by creation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    pub fn new(created: time::OffsetDateTime, random: u32) -> Self {
        let t = created.to_offset(time::UtcOffset::UTC);
        let stamp = t
            .format(time::macros::format_description!("[year][month][day]t[hour][minute][second]"))
            .unwrap_or_default();
        RunId(format!("r{stamp}-{random:08x}"))
    }

    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok { Ok(RunId(raw.to_owned())) } else { Err(CoreError::invalid("run", format!("{raw:?} is not a run id"))) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RunId {
    type Error = CoreError;
    fn try_from(raw: String) -> Result<Self, CoreError> {
        RunId::parse(&raw)
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a run is. Workers take new work only while it is `Running` (or `Planned`, which the
/// first `run` or `enqueue` moves to `Running`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunState {
    Planned,
    Running,
    Paused,
    Aborted,
    Done,
    /// `rollback` is removing what the run wrote: no worker takes its work (a message of a DONE
    /// run coming back during a rollback copied its files again behind it: security review
    /// 20); running `rollback` again carries it on.
    RollingBack,
    /// `rollback` removed what the run wrote; the run is over.
    RolledBack,
}

/// Where a legacy prefix is served from (issue 19): the legacy store (the default, and where a
/// rollback puts it back) or the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    Legacy,
    Platform,
}

impl Switch {
    pub fn parse(s: &str) -> Result<Switch, CoreError> {
        match s {
            "legacy" => Ok(Switch::Legacy),
            "platform" => Ok(Switch::Platform),
            other => Err(CoreError::invalid("to", format!("{other:?} is not platform or legacy"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Switch::Legacy => "legacy",
            Switch::Platform => "platform",
        }
    }
}

/// A legacy path prefix a cutover switches: relative, `/`-separated, whole segments (`shop/42`
/// names `shop/42/...`, never `shop/420/...`); kept with a trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LegacyPrefix(String);

impl LegacyPrefix {
    pub fn parse(raw: &str) -> Result<LegacyPrefix, CoreError> {
        let trimmed = raw.trim_matches('/');
        let bad = |why: &str| Err(CoreError::invalid("prefix", format!("{raw:?} {why}")));
        if trimmed.is_empty() {
            return bad("is empty: name a part of the tree (the whole tree is every top-level prefix)");
        }
        if let Some(why) = bad_legacy_path(trimmed) {
            return bad(why);
        }
        Ok(LegacyPrefix(format!("{trimmed}/")))
    }

    /// Whether the legacy file at `path` (relative) lies under this prefix.
    pub fn holds(&self, path: &str) -> bool {
        path.starts_with(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `path` cannot name a part of a legacy tree (relative, `/`-separated whole segments):
/// an empty, `.` or `..` segment, or a control character; `None` if it can.
pub fn bad_legacy_path(path: &str) -> Option<&'static str> {
    if path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Some("has an empty, . or .. segment");
    }
    path.chars().any(char::is_control).then_some("has a control character")
}

/// What an engineer asks of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Start,
    Pause,
    Resume,
    Abort,
    Finish,
    RollBack,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Planned => "PLANNED",
            RunState::Running => "RUNNING",
            RunState::Paused => "PAUSED",
            RunState::Aborted => "ABORTED",
            RunState::Done => "DONE",
            RunState::RollingBack => "ROLLING_BACK",
            RunState::RolledBack => "ROLLED_BACK",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        Ok(match raw {
            "PLANNED" => RunState::Planned,
            "RUNNING" => RunState::Running,
            "PAUSED" => RunState::Paused,
            "ABORTED" => RunState::Aborted,
            "DONE" => RunState::Done,
            "ROLLING_BACK" => RunState::RollingBack,
            "ROLLED_BACK" => RunState::RolledBack,
            _ => return Err(CoreError::invalid("state", format!("{raw:?} is not a run state"))),
        })
    }

    /// Whether workers may start new copies.
    pub fn takes_work(self) -> bool {
        matches!(self, RunState::Planned | RunState::Running)
    }

    /// Whether a rollback started (or finished): what the run wrote is not the platform's.
    pub fn rolled_back(self) -> bool {
        matches!(self, RunState::RollingBack | RunState::RolledBack)
    }

    /// The state after `control`, or why it cannot apply. Pausing a paused run and resuming a
    /// running one are no-ops (so a retried command is harmless); an aborted run stays aborted.
    /// A rollback is two steps: `RollBack` before any row is touched (ROLLING_BACK, which no
    /// worker takes), `Finish` once every row is (ROLLED_BACK).
    pub fn apply(self, control: Control) -> Result<RunState, CoreError> {
        use {Control::*, RunState::*};
        let refuse = |why: &str| Err(CoreError::invalid("state", format!("the run is {}: {why}", self.as_str())));
        match (self, control) {
            (RolledBack, Abort | RollBack | Finish) => Ok(RolledBack),
            (RolledBack, _) => refuse("it was rolled back; plan a new run"),
            (RollingBack, RollBack) => Ok(RollingBack),
            (RollingBack, Finish) => Ok(RolledBack),
            (RollingBack, _) => refuse("it is being rolled back; run rollback again to finish it"),
            (Running, RollBack) => refuse("abort or pause it first, so no worker writes while it is rolled back"),
            (_, RollBack) => Ok(RollingBack),
            (Aborted, Abort) => Ok(Aborted),
            (Aborted, _) => refuse("an aborted run cannot continue; rollback or plan a new run"),
            (Done, Finish | Start) => Ok(Done),
            (Done, Abort) => Ok(Aborted),
            (Done, _) => refuse("it has finished"),
            (Planned | Running, Start) => Ok(Running),
            (Paused, Start) => refuse("resume it first"),
            (Planned | Running | Paused, Pause) => Ok(Paused),
            (Paused | Running, Resume) => Ok(Running),
            (Planned, Resume) => Ok(Planned),
            (_, Abort) => Ok(Aborted),
            (Running, Finish) => Ok(Done),
            (_, Finish) => Ok(self),
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A ledger row's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RowStatus {
    /// Not copied yet.
    Pending,
    /// S3 holds the object with the manifest's checksum; `versionId` is the version this run made.
    Copied,
    /// Not copied, for the reason on the row; a later `run` tries again if it is retryable.
    Failed,
}

impl RowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Pending => "PENDING",
            RowStatus::Copied => "COPIED",
            RowStatus::Failed => "FAILED",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        Ok(match raw {
            "PENDING" => RowStatus::Pending,
            "COPIED" => RowStatus::Copied,
            "FAILED" => RowStatus::Failed,
            _ => return Err(CoreError::invalid("status", format!("{raw:?} is not a ledger status"))),
        })
    }
}

/// Why a file was not copied. Each is reported by name; `retryable` ones are tried again by
/// the next `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The source's bytes no longer match the checksum taken at `plan`.
    SourceChanged,
    /// The source could not be read (permissions, gone, I/O error).
    SourceUnreadable,
    /// The target key changed since `plan` (an application write): it is never overwritten.
    TargetChanged,
    /// S3 received bytes that do not match the checksum sent with them.
    TransferCorrupted,
    /// A retryable error outlasted every attempt.
    RetriesExhausted,
    /// S3 refused the request for good (permissions, bad request).
    Refused,
    /// The file's owner erased their account on the platform (GDPR): a migration never brings
    /// their files back.
    Erased,
    /// The run began rolling back while the file was being copied: the copy that landed after
    /// was undone by its worker (review 26).
    RolledBack,
}

impl FailureReason {
    pub const ALL: [FailureReason; 8] = [
        FailureReason::SourceChanged,
        FailureReason::SourceUnreadable,
        FailureReason::TargetChanged,
        FailureReason::TransferCorrupted,
        FailureReason::RetriesExhausted,
        FailureReason::Refused,
        FailureReason::Erased,
        FailureReason::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::SourceChanged => "source_changed",
            FailureReason::SourceUnreadable => "source_unreadable",
            FailureReason::TargetChanged => "target_changed",
            FailureReason::TransferCorrupted => "transfer_corrupted",
            FailureReason::RetriesExhausted => "retries_exhausted",
            FailureReason::Refused => "refused",
            FailureReason::Erased => "erased",
            FailureReason::RolledBack => "rolled_back",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        FailureReason::ALL
            .into_iter()
            .find(|r| r.as_str() == raw)
            .ok_or_else(|| CoreError::invalid("reason", format!("{raw:?} is not a failure reason")))
    }

    /// Whether another attempt in a later `run` may succeed without anyone changing anything.
    pub fn retryable(self) -> bool {
        matches!(self, FailureReason::TransferCorrupted | FailureReason::RetriesExhausted)
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the target key held when the run was planned: a later write there is an application
/// write, and the copy refuses to overwrite it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prior {
    pub etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

/// One line of the manifest: a source file, where it goes, and what its bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestEntry {
    /// Position in the manifest; the ledger row's sort key.
    pub seq: u64,
    /// Path relative to the source root, `/`-separated.
    pub source: String,
    /// Target object key.
    pub key: String,
    pub size: u64,
    /// Source modification time, Unix milliseconds.
    pub mtime_ms: i64,
    /// What changes with every write of the source file (inode and change time, an ETag), as
    /// listed at plan time; empty when the source has none (and in runs planned before it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub change: String,
    pub content_type: String,
    /// Full-object CRC64NVME, Base64 as S3 spells it: sent with the bytes, checked by S3.
    pub crc64nvme: String,
    /// SHA-256, hex: the platform's content hash (dedup, audit).
    pub sha256: String,
    /// Lower goes first.
    pub priority: u32,
    pub batch: u32,
    /// The target key's object at plan time, if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<Prior>,
    /// What the legacy database's row says of the file (`plan --metadata`), validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<legacy_meta::LegacyMeta>,
    /// A delta plan's file whose bytes an earlier run (this one) copied to `key` already: listed
    /// otherwise since (a chmod, a touch), read, the same bytes. Nothing is copied; the row is
    /// recorded as copied (with no version of this run's, so a rollback leaves it) and checked
    /// by `verify`, so the file's new listing is what a cutover compares with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_by: Option<String>,
    /// A changed file's earlier copy (its key), when this copy goes to another key (a new file
    /// id): once this copy is in place, the earlier one is hidden behind a delete marker, which
    /// the platform takes as a soft delete of that file (restorable for the restore window). A
    /// rollback of this run removes the marker again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
}

impl ManifestEntry {
    /// Whether the file is copied as a multipart upload of `part_size` parts.
    pub fn is_multipart(&self, threshold: u64) -> bool {
        self.size >= threshold
    }

    /// The platform user the target key (`users/{owner}/...`) gives the file to, if any.
    pub fn owner(&self) -> Option<UserId> {
        crate::ids::ObjectKey::owner_of(&self.key)
    }

    /// The line as kept once the file's owner erased their account (DECISIONS 17): the legacy
    /// path becomes its keyed mark ([`erased_path`], what the erase leaves for the redirector),
    /// the target key names the owner's keyed [`pseudonym`] instead of them, and everything else
    /// that named the user or the file (the legacy record, the earlier copy's key, the change
    /// token, the key's object at plan time) is dropped. What stays (position, size, times,
    /// type, checksums, batch, the run that copied it) names nobody and still adds up in the
    /// run's totals. A line already kept so is returned as it is.
    pub fn erased(&self, key: &PseudonymKey) -> ManifestEntry {
        if self.is_erased() {
            return self.clone();
        }
        let stand_in = match self.owner() {
            Some(owner) => pseudonym(key, &owner).to_string(),
            None => "erased".to_owned(),
        };
        ManifestEntry {
            source: erased_path(key, &self.source),
            key: format!("users/{stand_in}/"),
            change: String::new(),
            prior: None,
            legacy: None,
            supersedes: None,
            ..self.clone()
        }
    }

    /// Whether this is a line kept after its owner's erase ([`ManifestEntry::erased`]).
    pub fn is_erased(&self) -> bool {
        self.source.starts_with(ERASED_MARK_PREFIX) && self.key.starts_with("users/erased")
    }
}

/// How plan orders the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Recently modified files first: the ones users open soonest.
    Newest,
    Oldest,
    /// Small files first: the most files done early.
    Smallest,
    /// Source path order.
    Path,
}

impl Priority {
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        Ok(match raw {
            "newest" => Priority::Newest,
            "oldest" => Priority::Oldest,
            "smallest" => Priority::Smallest,
            "path" => Priority::Path,
            _ => {
                return Err(CoreError::invalid("priority", format!("{raw:?}: use newest, oldest, smallest or path")));
            }
        })
    }

    /// Where a file goes in the order (lower first); ties go by source path.
    pub fn rank(self, mtime_ms: i64, size: u64) -> u64 {
        // Unix milliseconds as an order-preserving unsigned number (negative times sort first).
        let time = (mtime_ms as u64) ^ (1 << 63);
        match self {
            Priority::Newest => u64::MAX - time,
            Priority::Oldest => time,
            Priority::Smallest => size,
            Priority::Path => 0,
        }
    }

    /// The bytes a file sorts by in the copy order: its [`Priority::rank`], then its source
    /// path (byte order, as `str` compares).
    pub fn order_key(self, source: &str, mtime_ms: i64, size: u64) -> Vec<u8> {
        let mut key = Vec::with_capacity(8 + source.len());
        key.extend_from_slice(&self.rank(mtime_ms, size).to_be_bytes());
        key.extend_from_slice(source.as_bytes());
        key
    }
}

/// Numbers entries in their final order (`seq`, priority rank) and packs them into batches of
/// at most `max_files` files and `max_bytes` bytes; a file over `max_bytes` is a batch of its
/// own. Fed one entry at a time, so a plan need not hold its entries together.
#[derive(Debug, Clone)]
pub struct Batcher {
    max_files: usize,
    max_bytes: u64,
    next: u64,
    batch: u32,
    files: usize,
    bytes: u64,
}

impl Batcher {
    pub fn new(max_files: usize, max_bytes: u64) -> Self {
        Batcher { max_files: max_files.max(1), max_bytes, next: 0, batch: 0, files: 0, bytes: 0 }
    }

    /// Places the next entry in order.
    pub fn place(&mut self, e: &mut ManifestEntry) {
        if self.files > 0 && (self.files >= self.max_files || self.bytes + e.size > self.max_bytes) {
            self.batch += 1;
            self.files = 0;
            self.bytes = 0;
        }
        self.files += 1;
        self.bytes += e.size;
        e.seq = self.next;
        e.priority = u32::try_from(self.next).unwrap_or(u32::MAX);
        e.batch = self.batch;
        self.next += 1;
    }
}

/// A small deterministic generator (SplitMix64) for jitter and samples: seeded, so a test
/// or a `--sample` rerun sees the same choices.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// `k` distinct indexes of `0..n`, in increasing order.
    /// Floyd's algorithm: memory for the `k` chosen, not for all `n`.
    pub fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut chosen = std::collections::BTreeSet::new();
        for j in n - k.min(n)..n {
            let t = self.below(j as u64 + 1) as usize;
            if !chosen.insert(t) {
                chosen.insert(j);
            }
        }
        chosen.into_iter().collect()
    }
}

#[cfg(test)]
mod tests;
