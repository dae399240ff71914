//! The bucket (versions, multipart uploads) and the CDN.

use super::*;

/// A CDN in memory: the invalidations asked for, in order.
#[derive(Default)]
pub struct InMemoryCdn {
    invalidated: Mutex<Vec<Vec<String>>>,
    /// Invalidations to refuse before taking one (CloudFront's TooManyInvalidationsInProgress).
    refusing: Mutex<u32>,
}

impl InMemoryCdn {
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuses the next `times` invalidations, as CloudFront does with 15 in progress.
    pub fn refuse_next(&self, times: u32) {
        *lock(&self.refusing) = times;
    }

    /// The paths of each invalidation, in order.
    pub fn invalidations(&self) -> Vec<Vec<String>> {
        lock(&self.invalidated).clone()
    }
}

#[async_trait]
impl EdgeCache for InMemoryCdn {
    async fn invalidate(&self, paths: &[String], reference: &str) -> PortResult<String> {
        let mut refusing = lock(&self.refusing);
        if *refusing > 0 {
            *refusing -= 1;
            return Err(PortError::Unavailable {
                operation: "CreateInvalidation",
                message: "TooManyInvalidationsInProgress".into(),
            });
        }
        drop(refusing);
        let mut invalidated = lock(&self.invalidated);
        invalidated.push(paths.to_vec());
        Ok(format!("memory-{reference}-{}", invalidated.len()))
    }
}

/// The parts of a multipart upload S3 holds, by number: their sizes.
type Parts = BTreeMap<PartNumber, u64>;

/// What a key holds: its versions, oldest first (id and size), and whether a delete marker
/// hides the newest.
#[derive(Default)]
struct Versions {
    versions: Vec<(String, u64)>,
    hidden: bool,
    /// The bytes of versions written with them ([`InMemoryObjects::put_bytes`]).
    bytes: HashMap<String, Vec<u8>>,
}

/// A versioned bucket in memory: each key's versions and delete marker, and the multipart
/// uploads under way.
#[derive(Default)]
pub struct InMemoryObjects {
    objects: Arc<Mutex<HashMap<ObjectKey, Versions>>>,
    /// Versions written so far (each gets a new id).
    written: Arc<Mutex<u64>>,
    aborted: Mutex<Vec<UploadId>>,
    /// Multipart uploads under way: their key and the sizes of the parts received.
    uploads: Mutex<HashMap<UploadId, (ObjectKey, Parts)>>,
    /// Upload ids given so far (each is new).
    started: Mutex<u64>,
    /// The headers each public copy was written with.
    served: Mutex<HashMap<ObjectKey, ServedAs>>,
    /// The archive tier: each version's storage class (if not STANDARD), its tags, and the
    /// restores asked for.
    archive: Mutex<ArchiveTier>,
    /// Completions to fail before S3 would complete one (a network error, `InvalidPart`).
    failing_completions: Mutex<u32>,
    /// HEADs to fail per key, and whether as a passing failure (throttling) or for good.
    failing_heads: Mutex<HashMap<ObjectKey, (u32, bool)>>,
}

#[derive(Default)]
struct ArchiveTier {
    classes: HashMap<(ObjectKey, String), String>,
    tags: HashMap<(ObjectKey, String), Vec<(String, String)>>,
    restores: Vec<(ObjectKey, String, RestoreTier, u32)>,
    /// Archived versions whose restored copy is there (S3 copies them again).
    restored: HashSet<(ObjectKey, String)>,
}

impl InMemoryObjects {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores an object (visible; empty).
    pub fn insert(&self, key: ObjectKey) {
        self.put(&key, 0);
    }

    /// Writes a new version of `size` bytes at `key` (the current one from now on), as an
    /// upload does; answers its version id.
    pub fn put(&self, key: &ObjectKey, size: u64) -> String {
        write_version(&self.objects, &self.written, key, size, None)
    }

    /// The lifecycle moved `version` of `key` to `class` (as S3 does, in place).
    pub fn transition(&self, key: &ObjectKey, version: &str, class: &str) {
        lock(&self.archive).classes.insert((key.clone(), version.to_owned()), class.to_owned());
    }

    /// S3 made the restored copy of archived `version` of `key`: it can be copied again.
    pub fn restored(&self, key: &ObjectKey, version: &str) {
        lock(&self.archive).restored.insert((key.clone(), version.to_owned()));
    }

    /// The tags of `version` of `key`.
    pub fn tags(&self, key: &ObjectKey, version: &str) -> Vec<(String, String)> {
        lock(&self.archive).tags.get(&(key.clone(), version.to_owned())).cloned().unwrap_or_default()
    }

    /// The restores asked for: key, version, tier and days.
    pub fn restores(&self) -> Vec<(ObjectKey, String, RestoreTier, u32)> {
        lock(&self.archive).restores.clone()
    }

    /// Writes a new version holding `bytes` at `key`; answers its version id.
    pub fn put_bytes(&self, key: &ObjectKey, bytes: Vec<u8>) -> String {
        write_version(&self.objects, &self.written, key, bytes.len() as u64, Some(bytes))
    }

    /// The bytes of the current version of `key`, if a GET finds it (zeros for a version
    /// written without bytes).
    pub fn bytes(&self, key: &ObjectKey) -> Option<Vec<u8>> {
        let (version, _) = self.current(key)?;
        self.bytes_of(key, &version)
    }

    /// The keys that hold a visible object under `prefix`, sorted.
    pub fn keys_under(&self, prefix: &str) -> Vec<ObjectKey> {
        let objects = lock(&self.objects);
        let mut keys: Vec<ObjectKey> = objects
            .iter()
            .filter(|(k, h)| k.as_str().starts_with(prefix) && !h.hidden && !h.versions.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        keys
    }

    /// The bytes of `version` of `key` (zeros for a version written without bytes).
    fn bytes_of(&self, key: &ObjectKey, version: &str) -> Option<Vec<u8>> {
        let objects = lock(&self.objects);
        let held = objects.get(key)?;
        let (_, size) = held.versions.iter().find(|(v, _)| v == version)?;
        Some(held.bytes.get(version).cloned().unwrap_or_else(|| vec![0; *size as usize]))
    }

    /// The version ids `key` holds, oldest first.
    pub fn versions(&self, key: &ObjectKey) -> Vec<String> {
        lock(&self.objects).get(key).map(|h| h.versions.iter().map(|(v, _)| v.clone()).collect()).unwrap_or_default()
    }

    /// The headers the public copy at `key` was written with.
    pub fn served_as(&self, key: &ObjectKey) -> Option<ServedAs> {
        lock(&self.served).get(key).cloned()
    }

    /// The multipart uploads aborted, in order.
    pub fn aborted(&self) -> Vec<UploadId> {
        lock(&self.aborted).clone()
    }

    /// A part of `size` bytes arrives for the upload, as a browser's PUT of a signed URL would
    /// bring it (S3 takes any part of an upload it knows; the URL's signature bounds it).
    pub fn receive_part(&self, upload_id: &UploadId, part: u16, size: u64) {
        let mut uploads = lock(&self.uploads);
        let Some((_, parts)) = uploads.get_mut(upload_id) else { panic!("no upload {upload_id}") };
        parts.insert(PartNumber::new(part.into()).expect("a part number"), size);
    }

    /// Fails the next completion, as S3 does when it is out of reach or a part changed.
    pub fn fail_next_completion(&self) {
        *lock(&self.failing_completions) += 1;
    }

    /// Fails the next `times` HEADs of `key`: `retryable`, as S3 throttling would, or for good.
    pub fn fail_heads(&self, key: &ObjectKey, times: u32, retryable: bool) {
        lock(&self.failing_heads).insert(key.clone(), (times, retryable));
    }

    /// The multipart uploads S3 holds (neither completed nor aborted).
    pub fn open_uploads(&self) -> Vec<UploadId> {
        lock(&self.uploads).keys().cloned().collect()
    }

    /// Whether a GET of `key` finds an object (it exists and no delete marker hides it).
    pub fn visible(&self, key: &ObjectKey) -> bool {
        lock(&self.objects).get(key).is_some_and(|h| !h.hidden && !h.versions.is_empty())
    }

    /// The current version of `key`, if a GET finds one.
    fn current(&self, key: &ObjectKey) -> Option<(String, u64)> {
        lock(&self.objects).get(key).filter(|h| !h.hidden).and_then(|h| h.versions.last().cloned())
    }

    /// Whether `version` of `key` is in an archive class without a restored copy.
    fn archived_unrestored(&self, key: &ObjectKey, version: Option<&str>) -> bool {
        let Some((v, _)) = self.version(key, version) else { return false };
        let archive = lock(&self.archive);
        let at = (key.clone(), v);
        matbakh_core::archival::needs_restore(archive.classes.get(&at).map(String::as_str))
            && !archive.restored.contains(&at)
    }

    /// `version` of `key` (the current one if `None`), if there is one.
    fn version(&self, key: &ObjectKey, version: Option<&str>) -> Option<(String, u64)> {
        match version {
            None => self.current(key),
            Some(v) => lock(&self.objects).get(key).and_then(|h| h.versions.iter().find(|(id, _)| id == v).cloned()),
        }
    }
}

/// Adds a version to `key` (with its bytes, if given); answers its id.
fn write_version(
    objects: &Mutex<HashMap<ObjectKey, Versions>>,
    written: &Mutex<u64>,
    key: &ObjectKey,
    size: u64,
    bytes: Option<Vec<u8>>,
) -> String {
    let mut written = lock(written);
    *written += 1;
    let version = format!("v{written}");
    let mut objects = lock(objects);
    let held = objects.entry(key.clone()).or_default();
    held.versions.push((version.clone(), size));
    held.hidden = false;
    if let Some(bytes) = bytes {
        held.bytes.insert(version.clone(), bytes);
    }
    version
}

/// An object read in chunks of at most [`CHUNK`] bytes.
struct Chunks {
    bytes: Vec<u8>,
    at: usize,
}

/// The chunk size of [`Chunks`]: small, so readers meet more than one.
const CHUNK: usize = 64 * 1024;

#[async_trait]
impl ObjectStream for Chunks {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    async fn next_chunk(&mut self) -> PortResult<Option<Vec<u8>>> {
        if self.at >= self.bytes.len() {
            return Ok(None);
        }
        let end = (self.at + CHUNK).min(self.bytes.len());
        let chunk = self.bytes[self.at..end].to_vec();
        self.at = end;
        Ok(Some(chunk))
    }
}

/// An object written in parts: visible at [`ObjectSink::finish`], never before.
struct Sink {
    objects: Arc<Mutex<HashMap<ObjectKey, Versions>>>,
    written: Arc<Mutex<u64>>,
    key: ObjectKey,
    bytes: Vec<u8>,
}

#[async_trait]
impl ObjectSink for Sink {
    async fn write(&mut self, bytes: &[u8]) -> PortResult<()> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn written(&self) -> u64 {
        self.bytes.len() as u64
    }

    async fn finish(self: Box<Self>) -> PortResult<u64> {
        let size = self.bytes.len() as u64;
        write_version(&self.objects, &self.written, &self.key, size, Some(self.bytes));
        Ok(size)
    }

    async fn abort(self: Box<Self>) -> PortResult<()> {
        Ok(())
    }
}

#[async_trait]
impl ObjectAccess for InMemoryObjects {
    async fn presign_download(&self, d: &Download<'_>) -> PortResult<SignedUrl> {
        let url = format!(
            "memory://bucket/{}?versionId={}&signedAt={}&ttl={}",
            d.key,
            d.version_id.unwrap_or("null"),
            d.signed_at.unix_timestamp(),
            d.ttl.as_secs()
        );
        Ok(SignedUrl { url, expires_at: d.signed_at + d.ttl })
    }

    async fn presign_post(&self, u: &Upload<'_>) -> PortResult<PresignedPost> {
        let mut fields = BTreeMap::from([
            ("key".to_owned(), u.key.to_string()),
            ("Content-Type".to_owned(), u.content_type.as_str().to_owned()),
            ("x-size-range".to_owned(), format!("{}-{}", u.size.start(), u.size.end())),
        ]);
        if let Some(sha) = u.sha256 {
            fields.insert("x-amz-checksum-sha256".to_owned(), sha.to_hex());
        }
        Ok(PresignedPost { url: "memory://bucket".into(), fields, expires_at: u.signed_at + u.ttl })
    }

    async fn size(&self, key: &ObjectKey) -> PortResult<Option<u64>> {
        if let Some((times, retryable)) = lock(&self.failing_heads).get_mut(key).filter(|(n, _)| *n > 0) {
            *times -= 1;
            return Err(if *retryable {
                PortError::Unavailable { operation: "HeadObject", message: "SlowDown".into() }
            } else {
                PortError::Failed("HeadObject: AccessDenied".into())
            });
        }
        Ok(self.current(key).map(|(_, size)| size))
    }

    async fn presign_get(&self, key: &ObjectKey, signed_at: OffsetDateTime, ttl: Duration) -> PortResult<String> {
        Ok(format!("memory://bucket/{key}?signedAt={}&ttl={}", signed_at.unix_timestamp(), ttl.as_secs()))
    }

    /// Counts every version and delete marker.
    async fn delete_prefix(&self, prefix: &str) -> PortResult<usize> {
        lock(&self.served).retain(|key, _| !key.as_str().starts_with(prefix));
        let mut objects = lock(&self.objects);
        let under: Vec<ObjectKey> = objects.keys().filter(|k| k.as_str().starts_with(prefix)).cloned().collect();
        let mut count = 0;
        for key in under {
            if let Some(held) = objects.remove(&key) {
                count += held.versions.len() + usize::from(held.hidden);
            }
        }
        Ok(count)
    }
}

#[async_trait]
impl ObjectErasure for InMemoryObjects {
    async fn holds_any(&self, prefix: &str) -> PortResult<bool> {
        let objects = lock(&self.objects);
        Ok(objects.iter().any(|(key, held)| key.as_str().starts_with(prefix) && !held.versions.is_empty()))
    }

    async fn abort_uploads_under(&self, prefix: &str) -> PortResult<Vec<String>> {
        let mut uploads = lock(&self.uploads);
        let under: Vec<UploadId> =
            uploads.iter().filter(|(_, (key, _))| key.as_str().starts_with(prefix)).map(|(id, _)| id.clone()).collect();
        for id in &under {
            uploads.remove(id);
        }
        lock(&self.aborted).extend(under.iter().cloned());
        Ok(under.iter().map(|id| id.to_string()).collect())
    }
}

#[async_trait]
impl ObjectUploads for InMemoryObjects {
    /// The form's fields spell out what the policy pins.
    async fn create_multipart(
        &self,
        key: &ObjectKey,
        _content_type: ContentType,
        _checksum: Option<ChecksumAlgorithm>,
    ) -> PortResult<UploadId> {
        let mut started = lock(&self.started);
        *started += 1;
        let id = UploadId::parse(&format!("memory-upload-{started}")).map_err(|e| PortError::Failed(e.to_string()))?;
        lock(&self.uploads).insert(id.clone(), (key.clone(), BTreeMap::new()));
        Ok(id)
    }

    /// The URL spells out what the signature pins.
    async fn presign_part(&self, p: &PartUpload<'_>) -> PortResult<SignedUrl> {
        let mut url = format!("memory://bucket/{}?uploadId={}&partNumber={}", p.key, p.upload_id, p.part);
        if let Some(len) = p.content_length {
            url.push_str(&format!("&content-length={len}"));
        }
        if let Some(c) = p.checksum {
            url.push_str(&format!("&{}={}", c.algorithm().header(), c.value()));
        }
        Ok(SignedUrl { url, expires_at: p.signed_at + p.ttl })
    }

    async fn presign_multipart(&self, r: &MultipartRequest<'_>) -> PortResult<SignedUrl> {
        let (method, query) = match r.op {
            MultipartOp::Create(t) => ("POST", format!("uploads&content-type={}", t.as_str())),
            MultipartOp::ListParts(id) => ("GET", format!("uploadId={id}")),
            MultipartOp::Complete(id) => ("POST", format!("uploadId={id}")),
            MultipartOp::Abort(id) => ("DELETE", format!("uploadId={id}")),
        };
        Ok(SignedUrl {
            url: format!("memory://bucket/{}?{query}&method={method}", r.key),
            expires_at: r.signed_at + r.ttl,
        })
    }

    async fn list_parts(&self, key: &ObjectKey, upload_id: &UploadId) -> PortResult<Option<Vec<UploadedPart>>> {
        let uploads = lock(&self.uploads);
        let Some((_, parts)) = uploads.get(upload_id).filter(|(k, _)| k == key) else { return Ok(None) };
        let listed = parts
            .iter()
            .map(|(number, size)| UploadedPart {
                number: *number,
                size: *size,
                etag: format!("etag-{number}"),
                checksum: None,
            })
            .collect();
        Ok(Some(listed))
    }

    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &UploadId,
        parts: &[UploadedPart],
        _integrity: Option<&Integrity>,
    ) -> PortResult<String> {
        {
            let mut failing = lock(&self.failing_completions);
            if *failing > 0 {
                *failing -= 1;
                return Err(PortError::Failed("S3 did not answer".into()));
            }
        }
        let mut uploads = lock(&self.uploads);
        if !uploads.get(upload_id).is_some_and(|(k, _)| k == key) || parts.is_empty() {
            return Err(PortError::Failed(format!("no upload {upload_id} of {key} to complete")));
        }
        if self.current(key).is_some() {
            return Err(PortError::AlreadyExists);
        }
        uploads.remove(upload_id);
        self.put(key, parts.iter().map(|p| p.size).sum());
        Ok(format!("\"memory-{}-{}\"", upload_id, parts.len()))
    }

    async fn abort_multipart(&self, _key: &ObjectKey, upload_id: &UploadId) -> PortResult<()> {
        lock(&self.uploads).remove(upload_id);
        lock(&self.aborted).push(upload_id.clone());
        Ok(())
    }
}

#[async_trait]
impl ObjectLifecycle for InMemoryObjects {
    async fn head(&self, key: &ObjectKey, version: Option<&str>) -> PortResult<Option<Head>> {
        let found = match version {
            None => self.current(key),
            Some(v) => {
                let objects = lock(&self.objects);
                objects.get(key).and_then(|h| h.versions.iter().find(|(id, _)| id == v).cloned())
            }
        };
        let archive = lock(&self.archive);
        Ok(found.map(|(version, size)| Head {
            size,
            storage_class: archive.classes.get(&(key.clone(), version.clone())).cloned(),
            version_id: Some(version),
            content_disposition: lock(&self.served).get(key).and_then(|s| s.disposition.clone()),
        }))
    }

    async fn publish(
        &self,
        from: &ObjectKey,
        version: Option<&str>,
        to: &ObjectKey,
        served: &ServedAs,
    ) -> PortResult<()> {
        self.copy_version(from, version, to).await?;
        lock(&self.served).insert(to.clone(), served.clone());
        Ok(())
    }

    async fn hide(&self, key: &ObjectKey) -> PortResult<()> {
        match lock(&self.objects).get_mut(key) {
            Some(held) => {
                held.hidden = true;
                Ok(())
            }
            None => Err(PortError::Failed(format!("no object {key}"))),
        }
    }

    async fn unhide(&self, key: &ObjectKey) -> PortResult<()> {
        if let Some(held) = lock(&self.objects).get_mut(key) {
            held.hidden = false;
        }
        Ok(())
    }

    async fn set_tags(&self, key: &ObjectKey, version: Option<&str>, tags: &[(&str, &str)]) -> PortResult<()> {
        let Some((version, _)) = self.version(key, version) else {
            return Err(PortError::Failed(format!("no such object {key}")));
        };
        let tags = tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        lock(&self.archive).tags.insert((key.clone(), version), tags);
        Ok(())
    }

    async fn restore(&self, key: &ObjectKey, version: Option<&str>, tier: RestoreTier, days: u32) -> PortResult<()> {
        let Some((version, _)) = self.version(key, version) else {
            return Err(PortError::Failed(format!("no such object {key}")));
        };
        let mut archive = lock(&self.archive);
        if !archive.classes.contains_key(&(key.clone(), version.clone())) {
            return Err(PortError::Failed(format!("{key} is not archived: S3 refuses to restore it")));
        }
        archive.restores.push((key.clone(), version, tier, days));
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for InMemoryObjects {
    /// Versions written without bytes read as that many zeros.
    async fn read_digest(&self, key: &ObjectKey, version: Option<&str>, keep: usize) -> PortResult<Option<Digest>> {
        let Some(bytes) = self.read(key, version).await? else { return Ok(None) };
        let etag = self.head(key, version).await?.and_then(|h| h.version_id);
        let prefix = bytes[..keep.min(bytes.len())].to_vec();
        Ok(Some(Digest { sha256: Sha256::of(&bytes), size: bytes.len() as u64, etag, prefix }))
    }

    async fn read_prefix(&self, key: &ObjectKey, version: Option<&str>, len: usize) -> PortResult<Option<Vec<u8>>> {
        Ok(self.read(key, version).await?.map(|mut bytes| {
            bytes.truncate(len);
            bytes
        }))
    }

    async fn read(&self, key: &ObjectKey, version: Option<&str>) -> PortResult<Option<Vec<u8>>> {
        let Some(Head { version_id: Some(version), .. }) = self.head(key, version).await? else { return Ok(None) };
        Ok(self.bytes_of(key, &version))
    }

    /// As S3, refuses an archived version without its restored copy.
    async fn open(&self, key: &ObjectKey, version: Option<&str>) -> PortResult<Option<Box<dyn ObjectStream>>> {
        if self.archived_unrestored(key, version) {
            return Err(PortError::NotRestored);
        }
        let read = self.read(key, version).await?;
        Ok(read.map(|bytes| Box::new(Chunks { bytes, at: 0 }) as Box<dyn ObjectStream>))
    }

    async fn put_variant(&self, key: &ObjectKey, bytes: Vec<u8>, _content_type: &str) -> PortResult<()> {
        self.put_bytes(key, bytes);
        Ok(())
    }

    async fn create(&self, key: &ObjectKey, _content_type: &str) -> PortResult<Box<dyn ObjectSink>> {
        Ok(Box::new(Sink {
            objects: self.objects.clone(),
            written: self.written.clone(),
            key: key.clone(),
            bytes: Vec::new(),
        }))
    }

    async fn publish_in_parts(
        &self,
        from: &ObjectKey,
        version: Option<&str>,
        to: &ObjectKey,
        served: &ServedAs,
    ) -> PortResult<()> {
        ObjectLifecycle::publish(self, from, version, to, served).await
    }

    /// As S3, refuses an archived version without its restored copy (`InvalidObjectState`).
    async fn copy_version(&self, from: &ObjectKey, version: Option<&str>, to: &ObjectKey) -> PortResult<()> {
        if self.archived_unrestored(from, version) {
            return Err(PortError::Failed(format!("{from} is archived: S3 copies it once restored")));
        }
        let Some((v, size)) = self.version(from, version) else {
            return Err(PortError::Failed(format!("no object {from} to copy")));
        };
        // A version written without bytes is copied as its size (a test's 6 GiB video is no
        // 6 GiB of zeros in memory).
        let bytes = lock(&self.objects).get(from).and_then(|h| h.bytes.get(&v).cloned());
        match bytes {
            Some(bytes) => self.put_bytes(to, bytes),
            None => self.put(to, size),
        };
        Ok(())
    }

    async fn remove_versions_except(&self, key: &ObjectKey, keep: &str) -> PortResult<Vec<String>> {
        let mut objects = lock(&self.objects);
        let Some(held) = objects.get_mut(key) else { return Ok(Vec::new()) };
        let removed = held.versions.iter().filter(|(v, _)| v != keep).map(|(v, _)| v.clone()).collect();
        held.versions.retain(|(v, _)| v == keep);
        Ok(removed)
    }

    async fn delete_version(&self, key: &ObjectKey, version: Option<&str>) -> PortResult<()> {
        let mut objects = lock(&self.objects);
        let Some(held) = objects.get_mut(key) else { return Ok(()) };
        match version {
            Some(v) => held.versions.retain(|(id, _)| id != v),
            None => held.hidden = true,
        }
        if held.hidden || held.versions.is_empty() {
            lock(&self.served).remove(key);
        }
        Ok(())
    }
}
