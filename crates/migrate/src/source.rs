//! Where legacy files come from. A source lists its files and reads byte ranges; the copy
//! code never holds more than one part of a file.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::MigrateError;

/// A file as the source lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Relative to the source root, `/`-separated.
    pub path: String,
    pub size: u64,
    pub mtime_ms: i64,
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

#[async_trait]
pub trait Source: Send + Sync {
    /// The source's URL (`file:///legacy`), stored on the run.
    fn url(&self) -> &str;

    /// Every file, in no particular order.
    async fn list(&self) -> Result<Vec<SourceFile>, MigrateError>;

    /// Exactly `len` bytes of `path` from `offset`.
    async fn read(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>, ReadError>;
}

/// Parses a source URL: `file:///abs/path` (or a plain path).
pub fn open(url: &str) -> Result<Arc<dyn Source>, MigrateError> {
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(Arc::new(FileSource::new(path)?));
    }
    if url.starts_with('/') || url.starts_with('.') {
        return Ok(Arc::new(FileSource::new(url)?));
    }
    Err(MigrateError::Usage(format!(
        "source {url:?}: use file:///path (s3:// and https lists are not implemented yet)"
    )))
}

/// A directory tree on this machine.
pub struct FileSource {
    root: PathBuf,
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
        Ok(FileSource { root, url })
    }

    fn resolve(&self, path: &str) -> Result<PathBuf, ReadError> {
        if path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(ReadError::Unreadable(format!("{path:?} is not a relative path")));
        }
        Ok(self.root.join(path))
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<SourceFile>, errors: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return errors.push(format!("{}: {e}", dir.display())),
    };
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            walk(root, &path, out, errors);
        } else if kind.is_file() {
            let Some(rel) = path.strip_prefix(root).ok().and_then(|p| p.to_str()) else {
                errors.push(format!("{}: the name is not UTF-8", path.display()));
                continue;
            };
            match entry.metadata() {
                Ok(m) => out.push(SourceFile {
                    path: rel.replace(std::path::MAIN_SEPARATOR, "/"),
                    size: m.len(),
                    mtime_ms: m
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(0),
                }),
                Err(e) => errors.push(format!("{}: {e}", path.display())),
            }
        }
        // Symlinks and special files are not followed: a link could lead outside the tree.
    }
}

#[async_trait]
impl Source for FileSource {
    fn url(&self) -> &str {
        &self.url
    }

    async fn list(&self) -> Result<Vec<SourceFile>, MigrateError> {
        let root = self.root.clone();
        let (files, errors) = tokio::task::spawn_blocking(move || {
            let (mut files, mut errors) = (Vec::new(), Vec::new());
            walk(&root, &root, &mut files, &mut errors);
            (files, errors)
        })
        .await
        .map_err(|e| MigrateError::Source(format!("walk: {e}")))?;
        if !errors.is_empty() {
            return Err(MigrateError::Source(format!("cannot list: {}", errors.join("; "))));
        }
        Ok(files)
    }

    async fn read(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>, ReadError> {
        let full = self.resolve(path)?;
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&full).map_err(|e| classify(&path, e))?;
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
    match e.kind() {
        NotFound | PermissionDenied | IsADirectory | InvalidInput => ReadError::Unreadable(format!("{path}: {e}")),
        _ => ReadError::Transient(format!("{path}: {e}")),
    }
}
