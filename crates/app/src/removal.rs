//! What the platform does when an object leaves a file's key (DECISIONS 13-15), and with the
//! caches made from an original that changed.
//!
//! The current state decides: if the key still has a current version (an older version was
//! removed, or the delete marker is gone again), nothing changed for the owner. Otherwise the
//! row becomes DELETED: a delete marker keeps its bytes counted until its versions go (a soft
//! delete, restorable), a permanent delete gives them back at once and removes the variants.
//! Rows QUARANTINED or DELETED by the platform are left as they are (a system move is not a
//! user delete), and an event older than the row's last one changes nothing.
//!
//! Any change to an original (a new version, a delete) removes the transformer's results made
//! from it (`results/{key}/`, DECISIONS 18), and with a CDN invalidates them there first (one
//! wildcard path a file; the variants' too when they go and a CDN serves them): a failed
//! invalidation fails the call, and the objects wait in the bucket for the retry.

use std::sync::Arc;

use matbakh_core::cdn;
use matbakh_core::clock::Clock;
use matbakh_core::ids::{FileId, ObjectKey};
use matbakh_core::imgproxy::result_prefix;
use matbakh_core::labels::Visibility;
use matbakh_core::metadata::FileStatus;

use crate::delivery::Delivery;
use crate::error::Error;
use crate::ports::{EdgeCache, FileRepo, ObjectStore};

/// What removals work with.
#[derive(Clone)]
pub struct Removals {
    pub files: Arc<dyn FileRepo>,
    pub objects: Arc<dyn ObjectStore>,
    /// The CDN of the transform results (the files CDN's `/t/*`), where what is removed is
    /// invalidated first. None: nothing is cached.
    pub cdn: Option<Arc<dyn EdgeCache>>,
    /// The files CDN, which caches variants (signed) and public copies.
    pub delivery: Delivery,
    pub clock: Arc<dyn Clock>,
}

/// An object that left a file's key.
#[derive(Debug, Clone, Copy)]
pub struct Removal<'a> {
    pub key: &'a ObjectKey,
    /// The version that went, when the event names one.
    pub version_id: Option<&'a str>,
    /// A version deleted for good (`false`: a delete marker hides the object).
    pub permanent: bool,
    /// Where the event stands among the key's events (S3's sequencer, else its time).
    pub order: Option<&'a str>,
}

/// What was removed, for the caller's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// The file became DELETED.
    pub file_deleted: bool,
    /// Transform results removed.
    pub results: usize,
    /// Invalidations asked of the CDN.
    pub invalidations: usize,
}

impl Removals {
    /// Takes `r` into account for file `id`.
    pub async fn removed(&self, id: FileId, r: Removal<'_>) -> Result<Removed, Error> {
        let mut done = Removed::default();
        let row = self.files.details(id).await?.map(|d| d.record).filter(|row| row.key == *r.key);
        let Some(row) = row else { return Ok(done) };
        // A version that was never the file (a replayed upload, removed when it arrived) going
        // away changes nothing: the accepted version is still there.
        if let Some(accepted) = row.version_id.as_deref()
            && r.version_id.is_none_or(|v| v != accepted)
            && r.permanent
            && self.objects.head(r.key, Some(accepted)).await?.is_some()
        {
            tracing::info!(file_id = %id, "a version besides the accepted one went; nothing changed");
            return Ok(done);
        }
        // Transform results are a cache: a deleted original must not stay visible through them.
        self.purge_results(r.key, &mut done).await?;
        match row.status {
            FileStatus::Quarantined => {
                tracing::info!(file_id = %id, "removal of a quarantined file (a system move); nothing to do");
            }
            FileStatus::Deleted if r.permanent => {
                // The retention window ended (or the owner erased it): the bytes the soft delete
                // kept counted leave the usage, and the variants go too.
                if self.files.purge_deleted(id).await? {
                    tracing::info!(file_id = %id, "deleted file purged; its bytes left the usage");
                }
                self.purge_variants(id, &mut done).await?;
            }
            FileStatus::Deleted => {}
            _ => {
                if self.objects.head(r.key, None).await?.is_some() {
                    tracing::info!(file_id = %id, "the key still has a current version; nothing changed");
                    return Ok(done);
                }
                // Hidden behind a marker by someone other than its owner's delete (which
                // unpublishes first): a public file's copies must not outlive it either. Before
                // the row changes (review 27): after it, a failed unpublish's retry found the row
                // DELETED and did nothing, and the copies stayed served.
                if !r.permanent && row.labels.visibility == Visibility::Public {
                    self.delivery.unpublish(id).await?;
                }
                done.file_deleted = if r.permanent {
                    self.files.mark_removed(id, r.order).await?
                } else {
                    self.files.mark_deleted(id, r.order).await?
                };
                if done.file_deleted {
                    tracing::info!(file_id = %id, permanent = r.permanent, "file deleted");
                }
                if r.permanent {
                    self.purge_variants(id, &mut done).await?;
                }
            }
        }
        Ok(done)
    }

    /// Removes the transformer's results made from `key`: after an overwrite the CDN's
    /// S3-first origin would otherwise serve them for the new bytes. A new upload has none.
    pub async fn changed(&self, key: &ObjectKey) -> Result<Removed, Error> {
        let mut done = Removed::default();
        self.purge_results(key, &mut done).await?;
        Ok(done)
    }

    async fn purge_results(&self, key: &ObjectKey, done: &mut Removed) -> Result<(), Error> {
        let edge = ObjectKey::file_id_of(key.as_str())
            .zip(cdn::file_results(key.as_str()))
            .and_then(|(file, path)| Some((self.cdn.as_ref()?, file, path)));
        let removed = self.purge(&result_prefix(key.as_str()), edge, done).await?;
        if removed > 0 {
            tracing::info!(removed, "transform results of a changed original removed");
        }
        done.results += removed;
        Ok(())
    }

    /// Removes the variants and public copies of `file` for good; the files CDN's copies of
    /// them are invalidated.
    async fn purge_variants(&self, file: FileId, done: &mut Removed) -> Result<(), Error> {
        let files_cdn = self.delivery.cdn.as_ref().zip(self.delivery.edge.as_ref());
        let edge = files_cdn.map(|(c, edge)| (edge, file, cdn::file_variants(c.base_url(), file)));
        self.purge(&ObjectKey::derived_prefix(file), edge, done).await?;
        let edge = files_cdn.map(|(_, edge)| (edge, file, cdn::public_copies(file)));
        self.purge(&ObjectKey::public_prefix(file), edge, done).await.map(|_| ())
    }

    /// Deletes every object version under `prefix` for good and answers how many. When a CDN
    /// may hold copies (`edge`: it, the file and their path) and there is anything to delete,
    /// the path is invalidated first: if that fails, the objects stay, so the retry finds them
    /// and invalidates again (deleted first, a retry would find nothing to go by).
    async fn purge(
        &self,
        prefix: &str,
        edge: Option<(&Arc<dyn EdgeCache>, FileId, String)>,
        done: &mut Removed,
    ) -> Result<usize, Error> {
        if let Some((cdn, file_id, path)) = edge
            && self.objects.holds_any(prefix).await?
        {
            let reference = format!("{file_id}-{}", self.clock.now().unix_timestamp_nanos());
            let invalidation = cdn.invalidate(&[path], &reference).await?;
            tracing::info!(%file_id, invalidation, "cached copies invalidated at the CDN");
            done.invalidations += 1;
        }
        Ok(self.objects.delete_prefix(prefix).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use matbakh_core::clock::FixedClock;
    use matbakh_core::ids::{FileId, ObjectKey, UserId};
    use matbakh_core::metadata::{FileDetails, FileRecord, FileStatus};
    use matbakh_core::names::DisplayName;
    use matbakh_core::types::ContentType;
    use time::macros::datetime;

    use super::*;
    use crate::fakes::{InMemory, InMemoryCdn, InMemoryObjects};
    use crate::ports::UsageRepo;

    struct World {
        repo: Arc<InMemory>,
        objects: Arc<InMemoryObjects>,
        cdn: Arc<InMemoryCdn>,
        files_cdn: Arc<InMemoryCdn>,
        removals: Removals,
    }

    fn world() -> World {
        let (repo, objects, cdn) =
            (Arc::new(InMemory::new()), Arc::new(InMemoryObjects::new()), Arc::new(InMemoryCdn::new()));
        let files_cdn = Arc::new(InMemoryCdn::new());
        let clock = Arc::new(FixedClock(datetime!(2026-03-01 12:00 UTC)));
        let delivery = Delivery {
            cdn: Some(matbakh_core::delivery::FilesCdn::new("https://files.matbakh.test", None)),
            edge: Some(files_cdn.clone()),
            ..crate::fakes::delivery(objects.clone(), clock.clone())
        };
        let removals =
            Removals { files: repo.clone(), objects: objects.clone(), cdn: Some(cdn.clone()), delivery, clock };
        World { repo, objects, cdn, files_cdn, removals }
    }

    impl World {
        /// A READY photo of alice (4096 bytes) with its accepted version, a variant and a
        /// transform result.
        fn photo(&self) -> (FileId, ObjectKey, String) {
            let id = FileId::new(1_772_000_000_000, [3; 10]);
            let name = DisplayName::parse("dish.jpg").unwrap();
            let at = datetime!(2026-03-01 12:00 UTC);
            let mut record = FileRecord::upload(
                id,
                UserId::parse("alice").unwrap(),
                name,
                ContentType::parse("image/jpeg").unwrap(),
                at,
            );
            let version = self.objects.put(&record.key, 4096);
            (record.size, record.status, record.version_id) = (4096, FileStatus::Ready, Some(version.clone()));
            self.objects.insert(ObjectKey::from_stored(format!("{}w320.webp", ObjectKey::derived_prefix(id))));
            self.objects.insert(ObjectKey::from_stored(format!("results/{}/rs:fit:300:0/a.webp", record.key)));
            let key = record.key.clone();
            self.repo.insert(FileDetails::new(record));
            (id, key, version)
        }

        async fn usage(&self) -> matbakh_core::quota::Usage {
            self.repo.usage(&UserId::parse("alice").unwrap()).await.unwrap()
        }
    }

    fn removal<'a>(key: &'a ObjectKey, version_id: Option<&'a str>, permanent: bool) -> Removal<'a> {
        Removal { key, version_id, permanent, order: None }
    }

    #[tokio::test]
    async fn a_delete_marker_soft_deletes_and_the_permanent_delete_later_purges() {
        use crate::ports::{ObjectAccess, ObjectErasure, ObjectLifecycle};
        let w = world();
        let (id, key, _) = w.photo();
        w.objects.hide(&key).await.unwrap();
        let done = w.removals.removed(id, removal(&key, None, false)).await.unwrap();
        assert_eq!(done, Removed { file_deleted: true, results: 1, invalidations: 1 });
        assert_eq!(w.repo.get(id).unwrap().record.status, FileStatus::Deleted);
        let u = w.usage().await;
        assert_eq!((u.charged, u.deleted), (4096, 4096), "a soft delete keeps the bytes counted");
        assert!(w.objects.holds_any(&ObjectKey::derived_prefix(id)).await.unwrap(), "variants stay for a restore");

        // a public copy left behind (the file was public) goes with the variants
        w.objects.insert(ObjectKey::variant(id, 320, "webp").public_copy().unwrap());
        w.objects.delete_prefix(key.as_str()).await.unwrap();
        let done = w.removals.removed(id, removal(&key, Some("v1"), true)).await.unwrap();
        assert_eq!(done, Removed { file_deleted: false, results: 0, invalidations: 2 });
        let u = w.usage().await;
        assert_eq!((u.charged, u.deleted), (0, 0));
        assert!(!w.objects.holds_any(&ObjectKey::derived_prefix(id)).await.unwrap());
        assert!(!w.objects.holds_any(&ObjectKey::public_prefix(id)).await.unwrap());
        let results = cdn::file_results(key.as_str()).unwrap();
        assert!(results.ends_with(&format!("{id}/*")), "{results}");
        assert_eq!(w.cdn.invalidations(), [vec![results]], "the transform results");
        let files = [vec![format!("/derived/{id}/*")], vec![format!("/p/{id}/*")]];
        assert_eq!(w.files_cdn.invalidations(), files, "the files CDN: variants and public copies");
    }

    #[tokio::test]
    async fn a_public_file_hidden_by_a_marker_loses_its_public_copies_at_once() {
        use crate::ports::{ObjectErasure, ObjectLifecycle};
        let w = world();
        let (id, key, _) = w.photo();
        let mut details = w.repo.get(id).unwrap();
        details.record.labels.visibility = Visibility::Public;
        w.repo.insert(details);
        w.objects.insert(ObjectKey::variant(id, 320, "webp").public_copy().unwrap());
        // A marker no owner's delete put there (a migration retiring a superseded copy).
        w.objects.hide(&key).await.unwrap();
        // Review 27: the CDN refuses the first invalidation; the event's retry must still take
        // the copies down (the row was marked DELETED first, and the retry did nothing).
        w.files_cdn.refuse_next(1);
        let e = w.removals.removed(id, removal(&key, None, false)).await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        let done = w.removals.removed(id, removal(&key, None, false)).await.unwrap();
        assert!(done.file_deleted);
        assert_eq!(w.repo.get(id).unwrap().record.status, FileStatus::Deleted);
        assert!(!w.objects.holds_any(&ObjectKey::public_prefix(id)).await.unwrap(), "no public copy outlives the file");
        assert!(w.files_cdn.invalidations().contains(&vec![format!("/p/{id}/*")]), "{:?}", w.files_cdn.invalidations());
        assert!(w.objects.holds_any(&ObjectKey::derived_prefix(id)).await.unwrap(), "variants stay for a restore");
    }

    #[tokio::test]
    async fn a_stray_version_going_or_a_key_still_holding_its_object_changes_nothing() {
        let w = world();
        let (id, key, _) = w.photo();
        let done = w.removals.removed(id, removal(&key, Some("v-stray"), true)).await.unwrap();
        assert_eq!(done, Removed::default());
        let done = w.removals.removed(id, removal(&key, None, false)).await.unwrap();
        assert!(!done.file_deleted, "the object is still current");
        assert_eq!(w.repo.get(id).unwrap().record.status, FileStatus::Ready);
        assert_eq!(w.usage().await.deleted, 0);
    }
}
