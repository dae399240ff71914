//! One accepted object per key (DECISIONS 28).
//!
//! A presigned POST or PUT (and a presigned CreateMultipartUpload) stays valid until it expires
//! and can be used again; S3 cannot forbid that, so the platform does. The first version of a
//! file's key that the indexer or the thumbnailer sees is pinned on the file's row
//! ([`FileTable::pin_version`]); every other version that appears on the key is deleted for good
//! the moment either function sees it, and every read of the file (downloads, share links,
//! exports, variants, transforms) names the pinned version.

use matbakh_core::ids::FileId;

use crate::error::AwsError;
use crate::s3::S3Store;
use crate::table::{FileTable, Pinned};

/// The object a file's key holds for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Its version id (`None` in a bucket without versioning, such as Garage's locally).
    pub version: Option<String>,
    /// Its size in bytes.
    pub size: u64,
    /// Versions found on the key besides it, now deleted for good (replayed uploads).
    pub removed: Vec<String>,
}

/// The accepted object of file `file_id` at `key`: the current version is pinned if none was
/// before, and every other version of the key is removed. `None` when no row was granted for
/// the key, or when no object is there to accept (gone, or hidden by a delete marker).
pub async fn accept(
    store: &S3Store,
    table: &FileTable,
    file_id: FileId,
    key: &str,
) -> Result<Option<Accepted>, AwsError> {
    let Some(current) = store.head_object(key, None).await? else { return Ok(None) };
    let Some(version) = current.version_id else {
        // Without versioning a key holds one object, and a new write replaces it in place.
        return Ok(Some(Accepted { version: None, size: current.size, removed: Vec::new() }));
    };
    let accepted = match table.pin_version(file_id, key, &version).await? {
        Pinned::Unknown => return Ok(None),
        Pinned::This => version.clone(),
        Pinned::Other(earlier) => earlier,
    };
    let removed = store.remove_versions_except(key, &accepted).await?;
    if !removed.is_empty() {
        tracing::warn!(%file_id, removed = removed.len(), "versions besides the accepted one removed (a replayed upload)");
    }
    let size = if accepted == version {
        current.size
    } else {
        match store.head_object(key, Some(&accepted)).await? {
            Some(head) => head.size,
            None => return Ok(None),
        }
    };
    Ok(Some(Accepted { version: Some(accepted), size, removed }))
}
