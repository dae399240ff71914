//! Settling an upload when its object arrives (DECISIONS 12), and the one object a key holds
//! for good (DECISIONS 28).
//!
//! A presigned POST or PUT (and a presigned CreateMultipartUpload) stays valid until it expires
//! and can be used again; S3 cannot forbid that, so the platform does. The first version of a
//! file's key that the indexer or the thumbnailer sees is pinned on the file's row; every other
//! version that appears on the key is deleted for good the moment either sees it, and every
//! read of the file names the pinned version.
//!
//! Settling then gives the row the object's real size and moves the owner's usage from what
//! was reserved or granted to the real bytes. An object larger than its grant, or past the
//! quota, is deleted for good, its row QUARANTINED with the reason, and any variants made of it
//! meanwhile removed. A redelivered event changes nothing.

use std::sync::Arc;

use matbakh_core::ids::{FileId, ObjectKey};
use matbakh_core::limits::Limits;
use matbakh_core::metadata::{Pinned, Settlement};

use crate::error::Error;
use crate::ports::{ObjectStore, UploadRepo};

/// What settling works with.
#[derive(Clone)]
pub struct Settler {
    pub uploads: Arc<dyn UploadRepo>,
    pub objects: Arc<dyn ObjectStore>,
    /// Where a refused upload's public copies go from (the thumbnailer may have published it
    /// before the settle).
    pub delivery: crate::delivery::Delivery,
    pub limits: Limits,
}

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

/// What settling an arrival did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The row and the usage now count `size` bytes.
    Accepted { size: u64 },
    /// An earlier delivery settled it.
    Already,
    /// The object was removed and its row QUARANTINED.
    Refused { reason: &'static str, size: u64 },
    /// Nothing to settle: no row was granted for the key, or no object is there any more.
    Nothing,
}

impl Settler {
    /// The accepted object of file `id` at `key`: the current version is pinned if none was
    /// before, and every other version of the key is removed. `None` when no row was granted
    /// for the key, or when no object is there to accept (gone, or hidden by a delete marker).
    pub async fn accept(&self, id: FileId, key: &ObjectKey) -> Result<Option<Accepted>, Error> {
        let Some(current) = self.objects.head(key, None).await? else { return Ok(None) };
        let Some(version) = current.version_id else {
            // Without versioning a key holds one object, and a new write replaces it in place.
            return Ok(Some(Accepted { version: None, size: current.size, removed: Vec::new() }));
        };
        let accepted = match self.uploads.pin_version(id, key, &version).await? {
            Pinned::Unknown => return Ok(None),
            Pinned::This => version.clone(),
            Pinned::Other(earlier) => earlier,
        };
        let removed = self.objects.remove_versions_except(key, &accepted).await?;
        if !removed.is_empty() {
            tracing::warn!(file_id = %id, removed = removed.len(), "versions besides the accepted one removed (a replayed upload)");
        }
        let size = if accepted == version {
            current.size
        } else {
            match self.objects.head(key, Some(&accepted)).await? {
                Some(head) => head.size,
                None => return Ok(None),
            }
        };
        Ok(Some(Accepted { version: Some(accepted), size, removed }))
    }

    /// Settles the object that arrived at `key` for file `id`, and answers what it did and how
    /// many stray versions it removed.
    pub async fn settle(&self, id: FileId, key: &ObjectKey) -> Result<(Settled, usize), Error> {
        // The object the key holds for good (the first version seen; any other one is
        // removed): a later event may already have replaced or removed it.
        let Some(accepted) = self.accept(id, key).await? else {
            tracing::info!(file_id = %id, "no object to settle (gone, or no row for the key)");
            return Ok((Settled::Nothing, 0));
        };
        let strays = accepted.removed.len();
        let size = accepted.size;
        let settled = match self.uploads.settle(id, key, size, self.limits.user_quota_bytes).await? {
            Settlement::Accepted => {
                tracing::info!(file_id = %id, size, "upload settled");
                Settled::Accepted { size }
            }
            Settlement::AlreadySettled => Settled::Already,
            Settlement::Unknown => Settled::Nothing,
            Settlement::Refused(reason) => {
                // The thumbnailer may have published a public file already: its copies go
                // first (and the CDN forgets them), or they would stay served, counted nowhere.
                // Only then: a refusal of anything else asks the CDN for nothing.
                if self.objects.holds_any(&ObjectKey::public_prefix(id)).await? {
                    self.delivery.unpublish(id).await?;
                }
                self.objects.delete_version(key, accepted.version.as_deref()).await?;
                self.uploads.reject(id, reason).await?;
                // The thumbnailer may have made variants already; they go with the original.
                self.objects.delete_prefix(&ObjectKey::derived_prefix(id)).await?;
                tracing::warn!(file_id = %id, size, reason, "upload refused and removed");
                Settled::Refused { reason, size }
            }
        };
        Ok((settled, strays))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use matbakh_core::ids::{FileId, ObjectKey, UserId};
    use matbakh_core::limits::Limits;
    use matbakh_core::metadata::{FileRecord, FileStatus};
    use matbakh_core::names::DisplayName;
    use matbakh_core::quota::Usage;
    use matbakh_core::types::ContentType;
    use time::macros::datetime;

    use super::*;
    use crate::fakes::{InMemory, InMemoryObjects};
    use crate::ports::{FileGrants, ObjectErasure, UsageRepo};

    const QUOTA: u64 = 10_000;

    struct World {
        repo: Arc<InMemory>,
        objects: Arc<InMemoryObjects>,
        settler: Settler,
    }

    fn world() -> World {
        let (repo, objects) = (Arc::new(InMemory::new()), Arc::new(InMemoryObjects::new()));
        let limits = Limits { user_quota_bytes: QUOTA, ..Limits::default() };
        let delivery = crate::fakes::delivery(objects.clone(), Arc::new(matbakh_core::clock::SystemClock));
        let settler = Settler { uploads: repo.clone(), objects: objects.clone(), delivery, limits };
        World { settler, repo, objects }
    }

    impl World {
        /// A granted upload of `granted` bytes by alice, reserved as the upload API does.
        async fn granted(&self, granted: u64) -> (FileId, ObjectKey) {
            let at = datetime!(2026-03-01 12:00 UTC);
            let id = FileId::new(1_772_000_000_000, [granted as u8; 10]);
            let owner = UserId::parse("alice").unwrap();
            let name = DisplayName::parse("dish.jpg").unwrap();
            let record = FileRecord {
                size: granted,
                expires_at: Some(at + time::Duration::hours(1)),
                ..FileRecord::upload(id, owner, name, ContentType::parse("image/jpeg").unwrap(), at)
            };
            self.repo.reserve(&record, QUOTA).await.unwrap();
            (id, record.key)
        }

        async fn usage(&self) -> Usage {
            self.repo.usage(&UserId::parse("alice").unwrap()).await.unwrap()
        }
    }

    #[tokio::test]
    async fn an_arrival_settles_once_to_its_real_size_and_a_replayed_upload_is_removed() {
        let w = world();
        let (id, key) = w.granted(4000).await;
        let first = w.objects.put(&key, 3000);
        assert_eq!(w.settler.settle(id, &key).await.unwrap(), (Settled::Accepted { size: 3000 }, 0));
        let row = w.repo.get(id).unwrap().record;
        assert_eq!((row.size, row.version_id.as_deref()), (3000, Some(first.as_str())));
        let u = w.usage().await;
        assert_eq!((u.charged, u.reserved), (3000, 0));
        // The presigned form posted again: the new version is removed, the first one stays.
        w.objects.put(&key, 3500);
        assert_eq!(w.settler.settle(id, &key).await.unwrap(), (Settled::Already, 1));
        assert_eq!(w.objects.versions(&key), [first]);
        assert_eq!(w.usage().await.charged, 3000);
    }

    #[tokio::test]
    async fn an_arrival_larger_than_its_grant_is_removed_and_its_row_quarantined() {
        let w = world();
        let (id, key) = w.granted(4000).await;
        w.objects.put(&key, 4001);
        w.objects.insert(ObjectKey::from_stored(format!("{}w320.webp", ObjectKey::derived_prefix(id))));
        let (settled, _) = w.settler.settle(id, &key).await.unwrap();
        assert!(matches!(settled, Settled::Refused { size: 4001, .. }), "{settled:?}");
        assert!(w.objects.versions(&key).is_empty());
        assert!(!w.objects.holds_any(&ObjectKey::derived_prefix(id)).await.unwrap());
        assert_eq!(w.repo.get(id).unwrap().record.status, FileStatus::Quarantined);
        assert_eq!(w.usage().await, Usage::default());
        // Redelivered: nothing left to settle.
        assert_eq!(w.settler.settle(id, &key).await.unwrap(), (Settled::Nothing, 0));
    }

    #[tokio::test]
    async fn an_object_without_a_granted_row_is_left_alone() {
        let w = world();
        let key = ObjectKey::from_stored("users/alice/not-granted/x.jpg".into());
        w.objects.put(&key, 10);
        let id = FileId::new(1, [9; 10]);
        assert_eq!(w.settler.settle(id, &key).await.unwrap(), (Settled::Nothing, 0));
        assert_eq!(w.objects.versions(&key).len(), 1);
    }
}
