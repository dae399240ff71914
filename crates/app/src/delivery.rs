//! Where a browser gets a file's bytes, and the public copies behind the files CDN
//! (`matbakh_core::delivery`): a public file's original and variants at stable CDN URLs, a
//! private file's at CloudFront signed URLs, and presigned S3 URLs where no CDN is configured
//! (or it has no signing key).
//!
//! A file's public copies (`p/{fileId}/...`) exist exactly while it is public and READY (but for
//! an original withheld, or still being copied: `core::delivery::public_original_may_be_missing`):
//! [`Delivery::publish`] makes them (when the file becomes READY public, or is made public, or
//! is restored public), [`Delivery::unpublish`] deletes them and invalidates
//! `/p/{fileId}/*` at the CDN (made private, deleted, erased). A large original
//! (`core::delivery::copied_apart`) is copied apart: the notifier, reading every change of a
//! file row, asks for it ([`Delivery::ask_for_large_copy`]) and the thumbnailer copies it in
//! parts ([`Delivery::publish_large_original`]).

use std::sync::Arc;
use std::time::Duration;

use matbakh_core::cdn;
use matbakh_core::clock::{Clock, SigningWindow};
use matbakh_core::delivery::{FilesCdn, ORIGINAL_CACHE_CONTROL, ServedAs, VARIANT_CACHE_CONTROL};
use matbakh_core::ids::{FileId, ObjectKey};
use matbakh_core::labels::Visibility;
use matbakh_core::metadata::{FileDetails, FileRecord, FileStatus, VariantInfo};
use matbakh_core::names::content_disposition;

use crate::error::Error;
use crate::ports::{CopyLater, Download, EdgeCache, FileLookup, ObjectAccess, ObjectLifecycle, ObjectStore, SignedUrl};
use crate::view::{FileView, VariantView};

/// How many times [`Delivery::publish_large_original`] copies an original renamed while it was
/// being copied, in all.
pub const LARGE_COPY_TRIES: usize = 3;

#[derive(Clone)]
pub struct Delivery {
    pub objects: Arc<dyn ObjectAccess>,
    /// The files CDN (`FILES_CDN_BASE_URL`), if one serves this deployment.
    pub cdn: Option<FilesCdn>,
    /// Invalidations at the files CDN (`FILES_DISTRIBUTION_ID`), where it caches.
    pub edge: Option<Arc<dyn EdgeCache>>,
    pub clock: Arc<dyn Clock>,
    /// How long image URLs are handed out unchanged (`IMAGE_URL_TTL_SECONDS`).
    pub window: Duration,
    /// Where a large original's copy is asked for (`PUBLIC_COPY_QUEUE_URL`, the thumbnailer's
    /// queue): set in the notifier ([`Self::ask_for_large_copy`]), `None` elsewhere.
    pub later: Option<Arc<dyn CopyLater>>,
}

impl Delivery {
    /// Whether `record`'s copies are served unsigned: public and stored (READY, or archived:
    /// the copies exist then), and a CDN serves public copies.
    pub(crate) fn served_publicly(&self, record: &FileRecord) -> Option<&FilesCdn> {
        // An archived file's public copies stay in the standard class: still served.
        let stored = matches!(record.status, FileStatus::Ready | FileStatus::Archived | FileStatus::Restoring);
        let public = record.labels.visibility == Visibility::Public && stored;
        self.cdn.as_ref().filter(|_| public)
    }

    /// The stable URL of a public file's original on the CDN, while its copy is there; `None`
    /// for a private file or without a CDN. A READY file's copy always is; an archived one's
    /// only if it was made before the archive took the original (S3 cannot copy an archived
    /// object): a file made public or brought back while archived gets it when its restore
    /// completes, and until then no URL that would answer 403 is handed out. Likewise an
    /// original copied in parts, whose copy may be under way (or have outlasted the request
    /// that made it public), or one withheld for a GPS position it may hold
    /// (`core::delivery::public_original_may_be_missing`).
    pub async fn public_url(&self, record: &FileRecord) -> Result<Option<String>, Error> {
        let Some(url) = self.served_publicly(record).and_then(|cdn| cdn.public_url(&record.key)) else {
            return Ok(None);
        };
        let may_be_missing =
            matbakh_core::delivery::public_original_may_be_missing(record.content_type.as_str(), record.size);
        if record.status == FileStatus::Ready && !may_be_missing {
            return Ok(Some(url));
        }
        let copied = match record.key.public_copy() {
            Some(copy) => self.objects.size(&copy).await?.is_some(),
            None => false,
        };
        Ok(copied.then_some(url))
    }

    /// `d` as the API shows it (and live updates tell it), with its variants' URLs and, for
    /// a public file, its original's stable URL.
    pub async fn view(&self, d: &FileDetails, restore_window: Duration) -> Result<FileView, Error> {
        let mut v = FileView::of(d, restore_window);
        if let Some(img) = &d.image {
            let mut variants = Vec::with_capacity(img.variants.len());
            for x in &img.variants {
                variants.push(VariantView {
                    width: x.width,
                    height: x.height,
                    content_type: x.content_type.clone(),
                    url: self.variant_url(&d.record, &x.key).await?,
                });
            }
            v = v.with_variants(variants);
        }
        v.public_url = self.public_url(&d.record).await?;
        Ok(v)
    }

    /// A variant's URL: stable on the CDN for a public file; for a private one signed (by the
    /// CDN's key, or presigned by S3) as of the start of the current window and valid for two,
    /// so every listing in a window hands out the same URL (the browser's cache of an
    /// immutable variant keeps working) and a URL works for at least a window.
    pub async fn variant_url(&self, record: &FileRecord, key: &ObjectKey) -> Result<String, Error> {
        if let Some(url) = self.served_publicly(record).and_then(|cdn| cdn.public_url(key)) {
            return Ok(url);
        }
        let window = SigningWindow::at(self.clock.now(), self.window);
        if let Some(signed) = self.cdn.as_ref().and_then(|cdn| cdn.signed_url(key, None, None, window.expires())) {
            return Ok(signed?);
        }
        Ok(self.objects.presign_get(key, window.start, window.validity()).await?)
    }

    /// A URL that downloads `d`: signed by the CDN's key where it has one, else presigned by S3.
    pub async fn download(&self, d: &Download<'_>) -> Result<SignedUrl, Error> {
        let expires_at = d.signed_at + d.ttl;
        // Served as the row's type, as the presigned S3 URL is, whatever the object was stored
        // with (security review 21: a type chosen by the uploader).
        let served_as = Some((d.disposition, d.content_type));
        let signed = self.cdn.as_ref().and_then(|cdn| cdn.signed_url(d.key, d.version_id, served_as, expires_at));
        match signed {
            Some(url) => Ok(SignedUrl { url: url?, expires_at }),
            None => Ok(self.objects.presign_download(d).await?),
        }
    }

    /// Copies a public READY file's accepted original and its `variants` under `p/{fileId}/`
    /// with the headers the CDN serves them with. Idempotent; nothing without a CDN or for a
    /// private (or not stored) file. An archived original cannot be copied until it is restored
    /// (S3 refuses): then only the variants, which stay in the standard class, and the original's
    /// copy once the restore completes ([`Files::restore_completed`](crate::files::Files)).
    /// The copies are written through `store`, the caller's bucket port: showing files needs
    /// only [`ObjectAccess`], and a function that never publishes then links no S3 CopyObject.
    /// A large original (`core::delivery::copied_apart`) is not copied here: the notifier asks
    /// the thumbnailer for its copy ([`Self::ask_for_large_copy`]).
    pub async fn publish(
        &self,
        store: &dyn ObjectLifecycle,
        record: &FileRecord,
        variants: &[VariantInfo],
    ) -> Result<usize, Error> {
        if self.served_publicly(record).is_none() {
            return Ok(0);
        }
        let mut copies = 0;
        let here = record.status == FileStatus::Ready && !matbakh_core::delivery::copied_apart(record.size);
        if let Some(to) = record.key.public_copy().filter(|_| here) {
            store.publish(&record.key, record.version_id.as_deref(), &to, &Self::served_original(record)).await?;
            copies += 1;
        }
        for v in variants {
            if let Some(to) = v.key.public_copy() {
                let served = ServedAs {
                    content_type: v.content_type.clone(),
                    cache_control: VARIANT_CACHE_CONTROL,
                    disposition: None,
                };
                store.publish(&v.key, None, &to, &served).await?;
                copies += 1;
            }
        }
        tracing::info!(file_id = %record.file_id, copies, "public copies written");
        Ok(copies)
    }

    /// The headers a public copy of `record`'s original is served with.
    fn served_original(record: &FileRecord) -> ServedAs {
        ServedAs {
            content_type: record.content_type.as_str().to_owned(),
            cache_control: ORIGINAL_CACHE_CONTROL,
            disposition: Some(content_disposition(&record.filename, record.content_type, true)),
        }
    }

    /// Asks [`Self::later`] (the thumbnailer's queue) for the public copy of a large original
    /// (`core::delivery::copied_apart`) when a change of its row, from `old` to `new`, leaves it
    /// public and READY without a current copy: it became so (made public, processed, brought
    /// back, restored out of the archive), or its version or name changed (the copy's bytes or
    /// download name); the copier skips a copy already current
    /// ([`Self::publish_large_original`]). Any other change of such a file (tags, description)
    /// asks only if no copy is there: an ask lost on the way (a queue that refused it through
    /// every retry) is made good by the file's next change. Answers whether it asked. Read by
    /// the notifier from the table's stream, so it is asked after every writer, whoever made
    /// the change.
    pub async fn ask_for_large_copy(&self, old: Option<&FileRecord>, new: Option<&FileRecord>) -> Result<bool, Error> {
        let (Some(later), Some(new)) = (&self.later, new) else { return Ok(false) };
        let Some(to) = new.key.public_copy() else { return Ok(false) };
        let public_ready = |r: &FileRecord| self.served_publicly(r).is_some() && r.status == FileStatus::Ready;
        if !public_ready(new) || !matbakh_core::delivery::copied_apart(new.size) {
            return Ok(false);
        }
        let unchanged = old.is_some_and(|o| {
            public_ready(o)
                && (o.key.as_str(), o.version_id.as_deref(), o.filename.as_str())
                    == (new.key.as_str(), new.version_id.as_deref(), new.filename.as_str())
        });
        let ask = !unchanged || self.objects.size(&to).await?.is_none();
        if ask {
            later.copy_public_original(new.file_id).await?;
            tracing::info!(file_id = %new.file_id, size = new.size, "the original's public copy asked for");
        }
        Ok(ask)
    }

    /// Copies public READY `record`'s large original to its public key, in parts
    /// ([`ObjectStore::publish_in_parts`], the thumbnailer, as [`Self::ask_for_large_copy`]
    /// asked), unless the copy there is current already (its size and download name: an ask
    /// repeated by a stream's retry, or a restore whose copy stayed, copies no gigabytes again).
    /// Then the row is read again (`files`): made private or gone meanwhile, the public copies go
    /// again; renamed meanwhile (an earlier ask's copy may land after a later one's), it is
    /// copied again under the new name, at most [`LARGE_COPY_TRIES`] times in all. Answers how
    /// many times it copied: none for a file not (or no longer) public and READY.
    pub async fn publish_large_original(
        &self,
        store: &dyn ObjectStore,
        files: &dyn FileLookup,
        record: &FileRecord,
    ) -> Result<usize, Error> {
        let mut record = record.clone();
        let mut copies = 0;
        for _ in 0..LARGE_COPY_TRIES {
            let readable = record.status == FileStatus::Ready && self.served_publicly(&record).is_some();
            let Some(to) = record.key.public_copy().filter(|_| readable) else { return Ok(copies) };
            let served = Self::served_original(&record);
            let there = store.head(&to, None).await?;
            if there.is_some_and(|h| h.size == record.size && h.content_disposition == served.disposition) {
                tracing::info!(file_id = %record.file_id, "the original's public copy is current");
            } else {
                store.publish_in_parts(&record.key, record.version_id.as_deref(), &to, &served).await?;
                copies += 1;
            }
            let Some(now) = files.details(record.file_id).await?.filter(|d| self.served_publicly(&d.record).is_some())
            else {
                self.unpublish(record.file_id).await?;
                return Ok(copies);
            };
            if (now.record.filename.as_str(), now.record.version_id.as_deref())
                == (record.filename.as_str(), record.version_id.as_deref())
            {
                return Ok(copies);
            }
            record = now.record;
        }
        Ok(copies)
    }

    /// [`Self::publish`] from `row` as a request read it, then the row read again (`files`):
    /// made private, deleted or no longer stored while the copies were written (another request
    /// found none yet to take away), they go again and the CDN forgets them (review 28: they
    /// stayed, served unsigned, for a private file). Where every publisher (processing, an
    /// update, a restore, a completed archive restore) takes back what it raced; the copier of
    /// large originals does the same in [`Self::publish_large_original`].
    pub async fn publish_checked(
        &self,
        store: &dyn ObjectLifecycle,
        files: &dyn FileLookup,
        row: &FileRecord,
        variants: &[VariantInfo],
    ) -> Result<usize, Error> {
        let copies = self.publish(store, row, variants).await?;
        if copies == 0 {
            return Ok(0);
        }
        let now = files.details(row.file_id).await?;
        if now.is_none_or(|d| self.served_publicly(&d.record).is_none()) {
            self.unpublish(row.file_id).await?;
        }
        Ok(copies)
    }

    /// Makes the public `file` at `key` private at the edge: its public copies go
    /// ([`Self::unpublish`]), and so do the transformer's results made from it. A public
    /// file's image URLs never expire, and the CDN serves a stored result by the URL's
    /// signature alone; the transformer makes none again for such a URL once the file is
    /// private. Results are deleted first (S3 refuses the CDN at once), then both paths are
    /// invalidated in one request, asked for even when nothing was left (a retry's).
    pub async fn make_private(&self, file: FileId, key: &ObjectKey) -> Result<(), Error> {
        let results = self.objects.delete_prefix(&matbakh_core::imgproxy::result_prefix(key.as_str())).await?;
        if results > 0 {
            tracing::info!(file_id = %file, results, "transform results of a file made private removed");
        }
        self.take_down(file, cdn::file_results(key.as_str())).await
    }

    /// After the row says private or deleted: the results a request of the file's
    /// never-expiring URLs stored while it was going private (between [`Self::make_private`]
    /// and the row's update, the transformer still saw it public), and the public copies a
    /// concurrent request wrote meanwhile (review 28: an update or restore of the public file
    /// copying while it went), go too, and the CDN forgets them; it is asked nothing when none
    /// was stored.
    pub async fn forget_what_was_stored_meanwhile(&self, file: FileId, key: &ObjectKey) -> Result<(), Error> {
        if self.cdn.is_none() {
            return Ok(());
        }
        let results = self.objects.delete_prefix(&matbakh_core::imgproxy::result_prefix(key.as_str())).await?;
        let copies = self.objects.delete_prefix(&ObjectKey::public_prefix(file)).await?;
        let mut paths = Vec::new();
        if copies > 0 {
            paths.push(cdn::public_copies(file));
        }
        paths.extend(cdn::file_results(key.as_str()).filter(|_| results > 0));
        if let (false, Some(edge)) = (paths.is_empty(), &self.edge) {
            let reference = format!("{file}-private-late-{}", self.clock.now().unix_timestamp_nanos());
            let invalidation = edge.invalidate(&paths, &reference).await?;
            tracing::info!(file_id = %file, results, copies, invalidation, "what was stored while going private removed");
        }
        Ok(())
    }

    /// Deletes `file`'s public copies (S3 refuses the CDN at once) and then invalidates their
    /// paths at the CDN. The invalidation is asked for even when no copy was left, so the
    /// retry of a call whose invalidation failed still makes it.
    pub async fn unpublish(&self, file: FileId) -> Result<(), Error> {
        self.take_down(file, None).await
    }

    /// [`Self::unpublish`], invalidating `also` (a path of the file's) in the same request.
    async fn take_down(&self, file: FileId, also: Option<String>) -> Result<(), Error> {
        if self.cdn.is_none() {
            return Ok(());
        }
        let removed = self.objects.delete_prefix(&ObjectKey::public_prefix(file)).await?;
        if let Some(edge) = &self.edge {
            let paths: Vec<String> = std::iter::once(cdn::public_copies(file)).chain(also).collect();
            let reference = format!("{file}-private-{}", self.clock.now().unix_timestamp_nanos());
            let invalidation = edge.invalidate(&paths, &reference).await?;
            tracing::info!(file_id = %file, removed, invalidation, ?paths, "public copies removed and invalidated");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use matbakh_core::clock::FixedClock;
    use matbakh_core::ids::UserId;
    use matbakh_core::names::DisplayName;
    use matbakh_core::types::ContentType;
    use time::macros::datetime;

    use super::*;
    use crate::fakes::{InMemoryObjects, delivery};
    use crate::ports::PortResult;

    /// A public READY video of 6 GiB (its original is copied apart, in parts; the fake copies
    /// its size, not 6 GiB of bytes).
    fn video(name: &str) -> FileDetails {
        let mut r = FileRecord::upload(
            FileId::new(1_700_000_000_000, [5; 10]),
            UserId::parse("alice").unwrap(),
            DisplayName::parse(name).unwrap(),
            ContentType::parse("video/mp4").unwrap(),
            datetime!(2026-12-05 11:00 UTC),
        );
        r.status = FileStatus::Ready;
        r.size = 6 << 30;
        r.version_id = Some("v1".into());
        r.labels.visibility = Visibility::Public;
        FileDetails::new(r)
    }

    /// The file's row as each read finds it, in turn (the last one from then on).
    struct Reads(Mutex<Vec<FileDetails>>);

    #[async_trait]
    impl FileLookup for Reads {
        async fn details(&self, _: FileId) -> PortResult<Option<FileDetails>> {
            let mut reads = self.0.lock().unwrap();
            let next = if reads.len() > 1 { reads.remove(0) } else { reads[0].clone() };
            Ok(Some(next))
        }
    }

    fn public_delivery(objects: &Arc<InMemoryObjects>) -> Delivery {
        Delivery {
            cdn: Some(FilesCdn::new("https://files.test", None)),
            ..delivery(objects.clone(), Arc::new(FixedClock(datetime!(2026-12-05 12:00 UTC))))
        }
    }

    /// A copy already current (its size and download name: an ask repeated by a stream's retry)
    /// is not copied again; one under another name is, and so is one renamed while it was being
    /// copied, under the name the row has then (an earlier ask's copy may land last).
    #[tokio::test]
    async fn a_large_original_is_copied_unless_current_and_again_when_renamed_meanwhile() {
        let objects = Arc::new(InMemoryObjects::new());
        let d = public_delivery(&objects);
        let first = video("take-1.mp4");
        let key = first.record.key.clone();
        let copy = key.public_copy().unwrap();
        objects.put(&key, first.record.size);

        let reads = Reads(Mutex::new(vec![first.clone()]));
        assert_eq!(d.publish_large_original(&*objects, &reads, &first.record).await.unwrap(), 1);
        let name = |o: &InMemoryObjects| o.served_as(&copy).and_then(|s| s.disposition).unwrap_or_default();
        assert!(name(&objects).contains("take-1.mp4"), "{}", name(&objects));
        // Asked again (a stream's retry): current, not copied.
        assert_eq!(d.publish_large_original(&*objects, &reads, &first.record).await.unwrap(), 0);

        // Renamed while this copy was made: the row read after it names take-2; copied again.
        let renamed = FileDetails {
            record: FileRecord { filename: DisplayName::parse("take-2.mp4").unwrap(), ..first.record.clone() },
            ..first.clone()
        };
        let objects = Arc::new(InMemoryObjects::new());
        objects.put(&key, first.record.size);
        let d = public_delivery(&objects);
        let reads = Reads(Mutex::new(vec![renamed.clone()]));
        assert_eq!(d.publish_large_original(&*objects, &reads, &first.record).await.unwrap(), 2);
        assert!(name(&objects).contains("take-2.mp4"), "{}", name(&objects));

        // Made private while copying: the copy goes again.
        let mut private = first.clone();
        private.record.labels.visibility = Visibility::Private;
        let reads = Reads(Mutex::new(vec![private]));
        d.publish_large_original(&*objects, &reads, &renamed.record).await.unwrap();
        assert!(objects.keys_under(&ObjectKey::public_prefix(first.record.file_id)).is_empty());
    }
}
