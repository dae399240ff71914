//! Migration of legacy files into the platform bucket, for the `migrate` CLI and the
//! `migration-worker` function (which run the same copy code, [`copy`]).
//!
//! Reads a source tree (`file://`), writes objects to the target bucket (S3, checksummed and
//! conditional), the manifest to `migration/{run}/manifest.jsonl` in that bucket, and the run
//! and its per-file ledger to the migration table (DynamoDB).

pub mod beneath;
pub mod control;
pub mod copy;
pub mod cutover;
pub mod delta;
pub mod egress;
pub mod erased;
pub mod error;
pub mod extsort;
pub mod mapping;
pub mod metadata;
pub mod overview;
pub mod plan;
pub mod report;
pub mod rollback;
pub mod rows;
pub mod run;
pub mod source;
pub mod verify;
pub mod work;

use std::sync::Arc;

use aws_config::SdkConfig;
use matbakh_aws::ledger::{Ledger, RunRecord};
use matbakh_aws::transfer::Target;
use matbakh_core::clock::Clock;
use matbakh_core::migration::RunId;

pub use error::MigrateError;

/// `s3://bucket/prefix` split into its bucket and key prefix (empty, or ending in `/`).
pub fn parse_target(url: &str) -> Result<(String, String), MigrateError> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| MigrateError::Usage(format!("target {url:?}: use s3://bucket/prefix")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !bucket_ok {
        return Err(MigrateError::Usage(format!("target {url:?}: {bucket:?} is not a bucket name")));
    }
    let prefix = prefix.trim_matches('/');
    Ok((bucket.to_owned(), if prefix.is_empty() { String::new() } else { format!("{prefix}/") }))
}

/// The platform's files table, where migrated files in the user layout get their rows (and
/// `verify` checks them), with the key of the erase pseudonyms: a file of a user who erased
/// their account on the platform is never registered nor copied (GDPR, DECISIONS 17).
#[derive(Clone, Debug)]
pub struct Registry {
    pub table: matbakh_aws::FileTable,
    pub erasures: matbakh_core::audit::PseudonymKey,
}

impl Registry {
    /// Whether `owner` erased their account: the mark their erase left under their keyed pseudonym.
    pub async fn erased(&self, owner: &matbakh_core::ids::UserId) -> Result<bool, matbakh_aws::AwsError> {
        self.table.was_erased(&matbakh_core::audit::pseudonym(&self.erasures, owner)).await
    }

    /// The keyed mark of a legacy path (`core::audit::erased_path`): what an erased user's
    /// paths are known by once nothing names them.
    pub fn path_mark(&self, path: &str) -> String {
        matbakh_core::audit::erased_path(&self.erasures, path)
    }

    /// Whether `path` was the legacy path of a user who erased their account (its mark is
    /// there: left by their erase, a plan or a copy since, or `migrate redact`).
    pub async fn path_erased(&self, path: &str) -> Result<bool, matbakh_aws::AwsError> {
        self.table.legacy_path_erased(&self.path_mark(path)).await
    }
}

/// What every command works with: the target bucket, the ledger table, the clock.
#[derive(Clone)]
pub struct Context {
    pub ledger: Ledger,
    /// Where migrated files are registered ([`Registry`]); none: copied without rows.
    pub files: Option<Registry>,
    sdk: SdkConfig,
    pub clock: Arc<dyn Clock>,
    /// Ledger rows read a page ([`PAGE_ROWS`]).
    pub page_rows: i32,
    /// The sources opened so far, by URL and HTTP policy ([`Self::source`]).
    sources: Arc<std::sync::Mutex<Sources>>,
}

type Sources = std::collections::HashMap<(String, egress::HttpPolicy), Arc<dyn source::Source>>;

/// Ledger rows a command reads at once (a page of a Query; about 0.5 MB).
pub const PAGE_ROWS: i32 = 1000;

impl Context {
    pub fn new(sdk: &SdkConfig, table: &str, clock: Arc<dyn Clock>) -> Self {
        Self::split(sdk, sdk, table, clock)
    }

    /// The ledger through `dynamodb`, the buckets through `s3` (another endpoint, such as an
    /// enforcing local S3 while DynamoDB stays on moto).
    pub fn split(dynamodb: &SdkConfig, s3: &SdkConfig, table: &str, clock: Arc<dyn Clock>) -> Self {
        Context {
            ledger: Ledger::new(dynamodb, table),
            files: None,
            sdk: s3.clone(),
            clock,
            page_rows: PAGE_ROWS,
            sources: Arc::default(),
        }
    }

    /// Reads ledger rows `n` a page (tests use small pages to cross page boundaries).
    pub fn with_page_rows(mut self, n: i32) -> Self {
        self.page_rows = n;
        self
    }

    /// Registers migrated files in the files table `table` (`TABLE_NAME` of the functions),
    /// none of a user erased under `erasures` (the key `ERASE_PSEUDONYM_SECRET_ID` names).
    pub fn with_files(
        mut self,
        dynamodb: &SdkConfig,
        table: &str,
        erasures: matbakh_core::audit::PseudonymKey,
    ) -> Self {
        self.files = Some(Registry { table: matbakh_aws::FileTable::new(dynamodb, table), erasures });
        self
    }

    /// A client for the bucket of `target_url`; SDK retries off (the copy code retries and
    /// counts attempts itself).
    pub fn target(&self, target_url: &str) -> Result<(Target, String), MigrateError> {
        let (bucket, prefix) = parse_target(target_url)?;
        Ok((Target::new(&self.sdk, bucket, false), prefix))
    }

    /// The source at `url` read with `http` ([`source::open`] with `sdk`), opened once: a
    /// migration worker's messages of one run then share its connections (to a legacy web
    /// server: one TLS handshake an instance, not one a message) and its reader's setup.
    pub fn source(
        &self,
        url: &str,
        sdk: &SdkConfig,
        http: egress::HttpPolicy,
    ) -> Result<Arc<dyn source::Source>, MigrateError> {
        let key = (url.to_owned(), http);
        let mut opened = self.sources.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(source) = opened.get(&key) {
            return Ok(source.clone());
        }
        let source = source::open(url, sdk, http)?;
        opened.insert(key, source.clone());
        Ok(source)
    }

    /// Makes `source` the one [`Self::source`] answers for `url` read with `http` (a source of
    /// the embedder's own, or a test's that misbehaves on purpose).
    pub fn use_source(&self, url: &str, http: egress::HttpPolicy, source: Arc<dyn source::Source>) {
        let mut opened = self.sources.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        opened.insert((url.to_owned(), http), source);
    }

    pub fn now(&self) -> String {
        matbakh_core::clock::iso_millis(self.clock.now())
    }

    pub async fn run(&self, id: &str) -> Result<RunRecord, MigrateError> {
        let id = RunId::parse(id)?;
        self.ledger.get_run(&id).await?.ok_or_else(|| MigrateError::Usage(format!("there is no run {id}")))
    }
}

/// The key the manifest of `run` is stored under, in the target bucket.
pub fn manifest_key(run: &RunId) -> String {
    format!("migration/{run}/manifest.jsonl")
}

/// Every row and file that did not meet (`plan --metadata`), one JSON object a line.
pub fn metadata_mismatches_key(run: &RunId) -> String {
    format!("migration/{run}/metadata-mismatches.jsonl")
}

/// S3's Base64 of a CRC64NVME (big-endian bytes).
pub fn crc64_base64(crc: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_to_bucket_and_prefix() {
        assert_eq!(parse_target("s3://files-bucket").unwrap(), ("files-bucket".into(), String::new()));
        assert_eq!(parse_target("s3://files-bucket/").unwrap(), ("files-bucket".into(), String::new()));
        assert_eq!(
            parse_target("s3://files-bucket/legacy/2024").unwrap(),
            ("files-bucket".into(), "legacy/2024/".into())
        );
        for bad in ["files-bucket", "s3://", "s3://UPPER/x", "https://x/y"] {
            assert!(matches!(parse_target(bad), Err(MigrateError::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn crc64nvme_is_spelt_as_s3_spells_it() {
        // S3's documented CRC64NVME of "123456789" is 0xAE8B14860A799888.
        let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, b"123456789");
        assert_eq!(crc, 0xAE8B_1486_0A79_9888);
        assert_eq!(crc64_base64(crc), "rosUhgp5mIg=");
    }
}
