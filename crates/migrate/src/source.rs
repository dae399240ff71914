//! Where legacy files come from. A source lists its files and reads byte ranges; the copy
//! code never holds more than one part of a file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use crate::beneath;
use crate::egress::{self, HttpPolicy};
use crate::error::MigrateError;

/// A file as the source lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Relative to the source root, `/`-separated.
    pub path: String,
    pub size: u64,
    pub mtime_ms: i64,
    /// What changes with every write of the file, as the source tells it: inode and change time
    /// on a local file system, the ETag in S3, the ETag (else Last-Modified) of a web server;
    /// empty when the source has none.
    pub change: String,
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Gone, not permitted, not a file: another attempt will not help.
    #[error("unreadable: {0}")]
    Unreadable(String),
    /// Shorter than the manifest says: it changed since plan.
    #[error("changed: {0}")]
    Changed(String),
    /// May work on another attempt (I/O hiccup, network).
    #[error("transient: {0}")]
    Transient(String),
}

impl ReadError {
    /// What happened, without the class.
    pub fn message(&self) -> &str {
        match self {
            ReadError::Unreadable(m) | ReadError::Changed(m) | ReadError::Transient(m) => m,
        }
    }
}

#[async_trait]
pub trait Source: Send + Sync {
    /// The source's URL (`file:///legacy`), stored on the run.
    fn url(&self) -> &str;

    /// Sends every file to `out`, in no particular order, as it finds them (a plan never holds
    /// the listing). A source that cannot list everything fails after sending what it found.
    async fn list(&self, out: Lister) -> Result<(), MigrateError>;

    /// Exactly `len` bytes of `path` from `offset`.
    async fn read(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>, ReadError>;

    /// Reads `path` once, streaming: size, CRC64NVME, SHA-256 and its first bytes.
    async fn digest(&self, path: &str) -> Result<Digests, ReadError>;
}

/// Where a listing goes.
pub type Lister = tokio::sync::mpsc::Sender<SourceFile>;

/// What `plan` learns from reading a file once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub size: u64,
    pub crc64nvme: String,
    pub sha256: String,
    /// The first bytes (up to [`matbakh_core::sniff::SNIFF_LEN`]), for the type.
    pub head: Vec<u8>,
}

/// Running digests over a stream of chunks.
pub struct Hasher {
    crc: crc_fast::Digest,
    sha: aws_lc_rs::digest::Context,
    size: u64,
    head: Vec<u8>,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher {
            crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme),
            sha: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
            size: 0,
            head: Vec::new(),
        }
    }
}

impl Hasher {
    pub fn update(&mut self, chunk: &[u8]) {
        let room = matbakh_core::sniff::SNIFF_LEN.saturating_sub(self.head.len());
        self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
        self.crc.update(chunk);
        self.sha.update(chunk);
        self.size += chunk.len() as u64;
    }

    pub fn finish(self) -> Digests {
        Digests {
            size: self.size,
            crc64nvme: crate::crc64_base64(self.crc.finalize()),
            sha256: hex::encode(self.sha.finish().as_ref()),
            head: self.head,
        }
    }
}

/// Opens a source URL: `file:///abs/path` (or a plain path), `https-list:///path/urls.txt`
/// (a legacy web server: one URL per line; `http-list://` for plain HTTP), or
/// `s3://bucket/prefix[?endpoint=URL&region=R]` (another S3-compatible store; credentials from
/// `MIGRATE_SOURCE_ACCESS_KEY_ID` / `MIGRATE_SOURCE_SECRET_ACCESS_KEY` when set, else `sdk`'s).
/// `http` says where a web server's files may be fetched from (the run's copy settings).
pub fn open(url: &str, sdk: &aws_config::SdkConfig, http: HttpPolicy) -> Result<Arc<dyn Source>, MigrateError> {
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(Arc::new(FileSource::new(path)?));
    }
    if url.starts_with('/') || url.starts_with('.') {
        return Ok(Arc::new(FileSource::new(url)?));
    }
    if url.starts_with("s3://") {
        return Ok(Arc::new(S3Source::new(url, sdk, |k| std::env::var(k).ok())?));
    }
    if url.starts_with("https-list://") || url.starts_with("http-list://") {
        return Ok(Arc::new(HttpSource::new(url, http)?));
    }
    Err(MigrateError::Usage(format!(
        "source {url:?}: use file:///path, s3://bucket/prefix or https-list:///path/to/urls.txt"
    )))
}

/// Threads listing a directory tree at once.
pub const WALK_THREADS: usize = 8;

/// A directory tree on this machine, read only beneath its root ([`beneath`]): a symbolic link
/// is neither listed nor followed, also one swapped in after the listing.
pub struct FileSource {
    root: Arc<File>,
    url: String,
}

impl FileSource {
    pub fn new(root: impl AsRef<Path>) -> Result<Self, MigrateError> {
        let root = std::fs::canonicalize(root.as_ref())
            .map_err(|e| MigrateError::Usage(format!("source {}: {e}", root.as_ref().display())))?;
        if !root.is_dir() {
            return Err(MigrateError::Usage(format!("source {}: not a directory", root.display())));
        }
        let url = format!("file://{}", root.display());
        let dir = File::open(&root).map_err(|e| MigrateError::Usage(format!("source {}: {e}", root.display())))?;
        Ok(FileSource { root: Arc::new(dir), url })
    }
}

/// One directory's entries (`dir` relative to the root, `""` for the root): its
/// subdirectories, and its files as relative paths.
fn list_dir(root: &File, dir: &str, subdirs: &mut Vec<String>, out: &mut Vec<SourceFile>, errors: &mut Vec<String>) {
    let shown = if dir.is_empty() { "." } else { dir };
    let entries = match beneath::entries(root, dir) {
        Ok(e) => e,
        Err(e) => return errors.push(classify(shown, e).message().to_owned()),
    };
    for (name, status) in entries {
        let rel = |name: &str| if dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") };
        let status = match status {
            // Symlinks and special files are not followed: a link could lead outside the tree.
            Ok(s) if s.kind == beneath::Kind::Other => continue,
            Ok(s) => s,
            Err(e) => {
                errors.push(format!("{}: {e}", rel(&name.to_string_lossy())));
                continue;
            }
        };
        let Some(path) = name.to_str().map(rel) else {
            errors.push(format!("{}: the name is not UTF-8", rel(&name.to_string_lossy())));
            continue;
        };
        match status.kind {
            beneath::Kind::Dir => subdirs.push(path),
            _ => out.push(SourceFile {
                path,
                size: status.size,
                mtime_ms: status.mtime_ms,
                change: format!("{}:{}", status.ino, status.ctime_ns),
            }),
        }
    }
}

/// Walks the tree with `threads` threads taking directories from one shared stack (a deep or
/// wide tree on a slow disk or network file system lists in parallel).
fn walk(root: &File, threads: usize, out: &Lister) -> Vec<String> {
    use std::sync::{Condvar, Mutex, PoisonError};
    struct Shared {
        dirs: Vec<String>,
        busy: usize,
        errors: Vec<String>,
    }
    let shared = Mutex::new(Shared { dirs: vec![String::new()], busy: 0, errors: Vec::new() });
    let wake = Condvar::new();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let dir = {
                        let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
                        loop {
                            if let Some(dir) = s.dirs.pop() {
                                s.busy += 1;
                                break dir;
                            }
                            if s.busy == 0 {
                                wake.notify_all();
                                return;
                            }
                            s = wake.wait(s).unwrap_or_else(PoisonError::into_inner);
                        }
                    };
                    let (mut subdirs, mut files, mut errors) = (Vec::new(), Vec::new(), Vec::new());
                    list_dir(root, &dir, &mut subdirs, &mut files, &mut errors);
                    for f in files {
                        // The receiver gone: the plan stopped; finish the walk quietly.
                        let _ = out.blocking_send(f);
                    }
                    let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
                    s.dirs.extend(subdirs);
                    s.errors.extend(errors);
                    s.busy -= 1;
                    wake.notify_all();
                }
            });
        }
    });
    shared.into_inner().unwrap_or_else(PoisonError::into_inner).errors
}

#[async_trait]
impl Source for FileSource {
    fn url(&self) -> &str {
        &self.url
    }

    async fn list(&self, out: Lister) -> Result<(), MigrateError> {
        let root = self.root.clone();
        let errors = tokio::task::spawn_blocking(move || walk(&root, WALK_THREADS, &out))
            .await
            .map_err(|e| MigrateError::Source(format!("walk: {e}")))?;
        if !errors.is_empty() {
            return Err(MigrateError::Source(format!("cannot list: {}", errors.join("; "))));
        }
        Ok(())
    }

    async fn digest(&self, path: &str) -> Result<Digests, ReadError> {
        use std::io::Read;
        let (root, path) = (self.root.clone(), path.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut file = beneath::open_file(&root, &path).map_err(|e| classify(&path, e))?;
            let mut hasher = Hasher::default();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buf).map_err(|e| classify(&path, e))?;
                if n == 0 {
                    return Ok(hasher.finish());
                }
                hasher.update(&buf[..n]);
            }
        })
        .await
        .map_err(|e| ReadError::Transient(format!("hash task: {e}")))?
    }

    async fn read(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>, ReadError> {
        let (root, path) = (self.root.clone(), path.to_owned());
        tokio::task::spawn_blocking(move || {
            let file = beneath::open_file(&root, &path).map_err(|e| classify(&path, e))?;
            let mut buf = vec![0u8; len as usize];
            match file.read_exact_at(&mut buf, offset) {
                Ok(()) => Ok(buf),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    Err(ReadError::Changed(format!("{path} is shorter than planned")))
                }
                Err(e) => Err(classify(&path, e)),
            }
        })
        .await
        .map_err(|e| ReadError::Transient(format!("read task: {e}")))?
    }
}

fn classify(path: &str, e: std::io::Error) -> ReadError {
    use std::io::ErrorKind::*;
    if beneath::is_link(&e) {
        return ReadError::Unreadable(format!(
            "{path}: a symbolic link is on the way; links are not followed, they could lead out of the source"
        ));
    }
    match e.kind() {
        NotFound | PermissionDenied | IsADirectory | NotADirectory | InvalidInput => {
            ReadError::Unreadable(format!("{path}: {e}"))
        }
        _ => ReadError::Transient(format!("{path}: {e}")),
    }
}

/// A bucket of another S3-compatible store (or of AWS): the legacy files are its objects
/// under a prefix.
pub struct S3Source {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    url: String,
}

impl S3Source {
    pub fn new(
        url: &str,
        sdk: &aws_config::SdkConfig,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, MigrateError> {
        let (location, query) = url.split_once('?').unwrap_or((url, ""));
        let (bucket, prefix) = crate::parse_target(location)?;
        let mut conf = aws_sdk_s3::config::Builder::from(sdk);
        let mut local = sdk.endpoint_url().is_some();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("endpoint", v)) => {
                    conf = conf.endpoint_url(v);
                    local = true;
                }
                Some(("region", v)) => conf = conf.region(aws_config::Region::new(v.to_owned())),
                _ => return Err(MigrateError::Usage(format!("source {url:?}: unknown parameter {pair:?}"))),
            }
        }
        if let (Some(id), Some(secret)) =
            (lookup("MIGRATE_SOURCE_ACCESS_KEY_ID"), lookup("MIGRATE_SOURCE_SECRET_ACCESS_KEY"))
        {
            conf = conf.credentials_provider(aws_sdk_s3::config::Credentials::new(
                id,
                secret,
                None,
                None,
                "migrate-source",
            ));
        }
        Ok(S3Source {
            client: aws_sdk_s3::Client::from_conf(conf.force_path_style(local).build()),
            bucket,
            prefix,
            url: url.to_owned(),
        })
    }

    fn key(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }
}

fn s3_read_error<E, R>(path: &str, e: aws_sdk_s3::error::SdkError<E, R>) -> ReadError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error().and_then(|s| s.code()) {
        Some("NoSuchKey" | "AccessDenied" | "NotFound") => {
            ReadError::Unreadable(format!("{path}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)))
        }
        Some("InvalidRange") => ReadError::Changed(format!("{path} is shorter than planned")),
        _ => ReadError::Transient(format!("{path}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))),
    }
}

#[async_trait]
impl Source for S3Source {
    fn url(&self) -> &str {
        &self.url
    }

    async fn list(&self, out: Lister) -> Result<(), MigrateError> {
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&self.prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    MigrateError::Source(format!("{}: {}", self.url, aws_sdk_s3::error::DisplayErrorContext(&e)))
                })?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                let Some(path) = key.strip_prefix(&self.prefix) else { continue };
                // Folder markers are not files.
                if path.is_empty() || path.ends_with('/') {
                    continue;
                }
                let file = SourceFile {
                    path: path.to_owned(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    mtime_ms: o.last_modified().and_then(|t| t.to_millis().ok()).unwrap_or(0),
                    change: o.e_tag().unwrap_or_default().to_owned(),
                };
                if out.send(file).await.is_err() {
                    return Ok(());
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => return Ok(()),
            }
        }
    }

    async fn read(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>, ReadError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(path))
            .range(format!("bytes={offset}-{}", offset + len - 1))
            .send()
            .await
            .map_err(|e| s3_read_error(path, e))?;
        let bytes = out.body.collect().await.map_err(|e| ReadError::Transient(format!("{path}: {e}")))?.to_vec();
        if (bytes.len() as u64) < len {
            return Err(ReadError::Changed(format!("{path} is shorter than planned")));
        }
        Ok(bytes)
    }

    async fn digest(&self, path: &str) -> Result<Digests, ReadError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(path))
            .send()
            .await
            .map_err(|e| s3_read_error(path, e))?;
        let mut body = out.body;
        let mut hasher = Hasher::default();
        while let Some(chunk) = body.try_next().await.map_err(|e| ReadError::Transient(format!("{path}: {e}")))? {
            hasher.update(&chunk);
        }
        Ok(hasher.finish())
    }
}

/// Files on a legacy web server, named by a list of URLs (one per line). A file's path is its
/// URL without the scheme (`host/dir/name`), so the list is needed only to plan: a worker
/// reads `https://{path}` with range requests. Where it may connect and which redirects it
/// follows is the run's [`HttpPolicy`] ([`egress`]).
pub struct HttpSource {
    client: egress::HttpClient,
    scheme: &'static str,
    list: std::path::PathBuf,
    url: String,
}

/// Requests to the legacy server in flight while planning.
const HTTP_HEADS_IN_FLIGHT: usize = 16;

impl HttpSource {
    pub fn new(url: &str, policy: HttpPolicy) -> Result<Self, MigrateError> {
        let (scheme, list) = match url.split_once("-list://") {
            Some(("https", list)) => ("https", list),
            Some(("http", list)) => ("http", list),
            _ => return Err(MigrateError::Usage(format!("source {url:?}: use https-list:///path/to/urls.txt"))),
        };
        let client = egress::HttpClient::new(&policy)?;
        Ok(HttpSource { client, scheme, list: std::path::PathBuf::from(list), url: url.to_owned() })
    }

    /// `method` for `path` (refused before it is sent if its host is written as an address the
    /// policy does not allow; names are checked when they are resolved).
    async fn send(
        &self,
        method: &http::Method,
        path: &str,
        range: Option<(u64, u64)>,
    ) -> Result<egress::Response, ReadError> {
        self.client.send(method, path, &self.target(path), range).await
    }

    fn target(&self, path: &str) -> String {
        format!("{}://{path}", self.scheme)
    }

    async fn get(&self, path: &str, range: Option<(u64, u64)>) -> Result<egress::Response, ReadError> {
        let response = self.send(&http::Method::GET, path, range).await?;
        let status = response.status().as_u16();
        match status {
            200 | 206 => Ok(response),
            416 => Err(ReadError::Changed(format!("{path} is shorter than planned"))),
            400..=499 if status != 408 && status != 429 => {
                Err(ReadError::Unreadable(format!("{path}: the server answered {status}")))
            }
            _ => Err(ReadError::Transient(format!("{path}: the server answered {status}"))),
        }
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (an HTTP date) as Unix milliseconds.
fn http_date_ms(raw: &str) -> Option<i64> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let t = time::PrimitiveDateTime::parse(raw.trim(), format).ok()?.assume_utc();
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[async_trait]
impl Source for HttpSource {
    fn url(&self) -> &str {
        &self.url
    }

    async fn list(&self, out: Lister) -> Result<(), MigrateError> {
        let text = tokio::fs::read_to_string(&self.list)
            .await
            .map_err(|e| MigrateError::Usage(format!("{}: {e}", self.list.display())))?;
        let prefix = format!("{}://", self.scheme);
        let mut paths = Vec::new();
        for (i, line) in text.lines().map(str::trim).enumerate().filter(|(_, l)| !l.is_empty() && !l.starts_with('#')) {
            let path = line.strip_prefix(&prefix).filter(|p| !p.contains(['?', '#'])).ok_or_else(|| {
                MigrateError::Usage(format!(
                    "{}:{}: {line:?} is not a {prefix} URL without query",
                    self.list.display(),
                    i + 1
                ))
            })?;
            if path.split('/').any(|s| s.is_empty() || s == "." || s == "..") || !path.contains('/') {
                return Err(MigrateError::Usage(format!(
                    "{}:{}: {line:?} has no file path",
                    self.list.display(),
                    i + 1
                )));
            }
            paths.push(path.to_owned());
        }
        let mut problems = Vec::new();
        for chunk in paths.chunks(HTTP_HEADS_IN_FLIGHT) {
            let mut heads = tokio::task::JoinSet::new();
            for path in chunk {
                let (source, path) = (self.client.clone(), path.clone());
                let url = self.target(&path);
                heads.spawn(async move {
                    let response = egress::within(&path, source.send(&http::Method::HEAD, &path, &url, None)).await;
                    (response, path)
                });
            }
            while let Some(done) = heads.join_next().await {
                let (response, path) = done.map_err(|e| MigrateError::Source(format!("HEAD task: {e}")))?;
                let response = match response {
                    Ok(r) if r.status().is_success() => r,
                    Ok(r) => {
                        problems.push(format!("{path}: {}", r.status()));
                        continue;
                    }
                    Err(e) => {
                        problems.push(e.message().to_owned());
                        continue;
                    }
                };
                let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
                let Some(size) = header("content-length").and_then(|v| v.parse().ok()) else {
                    problems.push(format!("{path}: no Content-Length"));
                    continue;
                };
                let mtime_ms = header("last-modified").and_then(http_date_ms).unwrap_or(0);
                let change = header("etag").or_else(|| header("last-modified")).unwrap_or_default().to_owned();
                if out.send(SourceFile { path, size, mtime_ms, change }).await.is_err() {
                    return Ok(());
                }
            }
        }
        if !problems.is_empty() {
            problems.sort();
            problems.truncate(20);
            return Err(MigrateError::Source(format!("cannot plan these URLs:\n  {}", problems.join("\n  "))));
        }
        Ok(())
    }

    async fn read(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>, ReadError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        egress::within(path, async {
            let response = self.get(path, Some((offset, len))).await?;
            if response.status().as_u16() == 200 && offset > 0 {
                return Err(ReadError::Unreadable(format!("{path}: the server does not answer range requests")));
            }
            let mut out = Vec::with_capacity(len as usize);
            egress::each_chunk(path, response, |chunk| {
                let room = (len as usize).saturating_sub(out.len());
                out.extend_from_slice(&chunk[..room.min(chunk.len())]);
            })
            .await?;
            if (out.len() as u64) < len {
                return Err(ReadError::Changed(format!("{path} is shorter than planned")));
            }
            Ok(out)
        })
        .await
    }

    async fn digest(&self, path: &str) -> Result<Digests, ReadError> {
        egress::within(path, async {
            let response = self.get(path, None).await?;
            let mut hasher = Hasher::default();
            egress::each_chunk(path, response, |chunk| hasher.update(chunk)).await?;
            Ok(hasher.finish())
        })
        .await
    }
}
