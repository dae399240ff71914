//! The transformer's [`Store`] in memory: versioned objects and the version accepted for each
//! user's file, for tests and the benchmark (which measures the handler without S3's latency).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use matbakh_aws::AwsError;
use matbakh_aws::s3::ObjectHead;
use matbakh_core::ids::ObjectKey;

use crate::{Accepted, Store};

/// One version of an object: its bytes and what a HEAD says of it.
type Version = (Vec<u8>, ObjectHead);

/// Each key's versions, oldest first, and the accepted version of users' files.
#[derive(Default)]
pub struct MemoryStore {
    objects: Mutex<HashMap<String, Vec<Version>>>,
    accepted: Mutex<HashMap<String, Accepted>>,
    written: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryStore {
    /// Writes a new version of `key` (the current one from now on); answers its version id.
    pub fn put(&self, key: &str, bytes: Vec<u8>, content_type: Option<&str>, metadata: &[(&str, &str)]) -> String {
        self.put_with(key, bytes, content_type, None, metadata)
    }

    fn put_with(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: Option<&str>,
        disposition: Option<&str>,
        metadata: &[(&str, &str)],
    ) -> String {
        let version = {
            let mut written = lock(&self.written);
            *written += 1;
            format!("v{written}")
        };
        let head = ObjectHead {
            size: bytes.len() as u64,
            etag: Some(format!("etag-{version}")),
            version_id: Some(version.clone()),
            content_type: content_type.map(str::to_owned),
            content_disposition: disposition.map(str::to_owned),
            metadata: metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            storage_class: None,
        };
        lock(&self.objects).entry(key.to_owned()).or_default().push((bytes, head));
        version
    }

    /// Makes `version` the accepted object of the user's public file at `key`, as settling
    /// does.
    pub fn accept(&self, key: &str, version: &str) {
        lock(&self.accepted).insert(key.to_owned(), Accepted { version: version.to_owned(), public: true });
    }

    /// [`Self::accept`] for a private file.
    pub fn accept_private(&self, key: &str, version: &str) {
        lock(&self.accepted).insert(key.to_owned(), Accepted { version: version.to_owned(), public: false });
    }

    /// The keys that hold anything under `prefix`.
    pub fn keys_under(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = lock(&self.objects).keys().filter(|k| k.starts_with(prefix)).cloned().collect();
        keys.sort();
        keys
    }

    fn find(&self, key: &ObjectKey, version: Option<&str>) -> Option<Version> {
        let objects = lock(&self.objects);
        let versions = objects.get(key.as_str())?;
        match version {
            None => versions.last().cloned(),
            Some(v) => versions.iter().find(|(_, h)| h.version_id.as_deref() == Some(v)).cloned(),
        }
    }
}

impl Store for MemoryStore {
    fn bucket_name(&self) -> &str {
        "memory"
    }

    async fn head(&self, key: &ObjectKey, version: Option<&str>) -> Result<Option<ObjectHead>, AwsError> {
        Ok(self.find(key, version).map(|(_, head)| head))
    }

    async fn get(&self, key: &ObjectKey, version: Option<&str>) -> Result<Option<Vec<u8>>, AwsError> {
        Ok(self.find(key, version).map(|(bytes, _)| bytes))
    }

    async fn accepted(&self, key: &ObjectKey) -> Result<Option<Accepted>, AwsError> {
        Ok(lock(&self.accepted).get(key.as_str()).cloned())
    }

    async fn put_result(
        &self,
        key: &ObjectKey,
        bytes: Vec<u8>,
        ct: &str,
        disposition: Option<&str>,
        meta: &[(&str, &str)],
    ) -> Result<(), AwsError> {
        self.put_with(key.as_str(), bytes, Some(ct), disposition, meta);
        Ok(())
    }

    async fn presign_get(&self, key: &ObjectKey, _: time::OffsetDateTime, _: Duration) -> Result<String, AwsError> {
        Ok(format!("memory://{key}"))
    }
}
