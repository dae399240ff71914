//! Processing an upload once its object arrived (the thumbnailer): is it what it claims, is it
//! clean, and, for an image, its responsive variants.
//!
//! For a user original whose row is PENDING, the accepted version (DECISIONS 28, pinned through
//! [`Settler::accept`]) is read:
//! - its first bytes are sniffed: a type not on the allow-list, or one contradicting the
//!   declared type, is quarantined (DECISIONS 13: the row is marked first, so the removal event
//!   of the move is known as a system move; then the version is copied to `quarantine/` and
//!   deleted);
//! - with a [`VirusScanner`], every allowed file is scanned (a match is quarantined with the
//!   signature's name; the row records `clean`, or why it was not scanned);
//! - an allowed non-image (PDF, video, ZIP) becomes READY without variants (DECISIONS 11);
//! - an image goes through the [`Renderer`]: its variants are written under
//!   `derived/{fileId}/` and the row becomes READY with them; a broken image FAILED; a bomb
//!   QUARANTINED; an image without decoder (HEIC) READY without variants. A row refused while
//!   rendering (over quota, quarantined) keeps no variants.
//!
//! Only what retrying can help is an error (a port failed, a scanner without verdict); what the
//! bytes are is recorded on the row. A redelivered event finds the row no longer PENDING.

use std::sync::Arc;

use matbakh_core::ids::{FileId, ObjectKey};
use matbakh_core::labels::Visibility;
use matbakh_core::metadata::{Disposition, FileRecord, FileStatus, ImageInfo, Ready, VariantInfo};
use matbakh_core::sniff::{SNIFF_LEN, Sniffed, agrees, sniff};
use matbakh_core::types::TypeClass;

use crate::delivery::Delivery;
use crate::error::Error;
use crate::ports::{FileRepo, ObjectStore, RenderFailure, Renderer, UploadRepo, Verdict, VirusScanner};
use crate::settle::Settler;

/// The largest refused object kept in `quarantine/` for a look (a larger one is removed): S3's
/// one-CopyObject limit, copied in parts (above `core::multipart::COPY_IN_PARTS_ABOVE`) within
/// the thumbnailer's time.
pub const QUARANTINE_COPY_MAX_BYTES: u64 = matbakh_core::multipart::SINGLE_COPY_MAX_BYTES;

/// What processing works with.
#[derive(Clone)]
pub struct Processing {
    pub files: Arc<dyn FileRepo>,
    /// Quarantine ([`UploadRepo::reject`]) gives the row's bytes back to its owner.
    pub uploads: Arc<dyn UploadRepo>,
    pub objects: Arc<dyn ObjectStore>,
    pub settler: Settler,
    pub renderer: Arc<dyn Renderer>,
    /// ClamAV, when configured.
    pub scanner: Option<Arc<dyn VirusScanner>>,
    /// The public copies of a file that is public when it becomes READY.
    pub delivery: Delivery,
}

/// The reason a file whose processing was given up shows its owner (what failed is in the
/// logs: an AWS error's text may name the account and its roles).
pub const GAVE_UP: &str = "it could not be processed; delete it and upload it again, or wait until it is retried";

/// What became of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// An image with `variants` written.
    Ready {
        variants: usize,
    },
    /// An allowed file that is not an image: checked, READY, no variants.
    Checked,
    /// An image this pipeline cannot render (HEIC): READY without variants, and why.
    KeptWithoutVariants(String),
    Quarantined(String),
    /// An image that could not be processed: FAILED, and why.
    Failed(String),
    Skipped(Skip),
}

/// Why an object needed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not under `users/{sub}/{fileId}/`.
    NotAnOriginal,
    /// No row names this key.
    NoRow,
    /// Quarantined before (its move finished now, if an earlier attempt stopped half way).
    AlreadyQuarantined,
    /// Not PENDING any more.
    AlreadyProcessed,
    /// The object is gone (deleted, or hidden by a delete marker).
    Gone,
    /// The row was refused while its variants were made; they were removed.
    RefusedWhileRendering,
    /// Its owner's account was closed by an erase while it was processed: what was made of it
    /// (variants, public copies) was removed again.
    AccountErased,
}

/// The version of a file's key that a run reads: the accepted one.
struct Object<'a> {
    key: &'a ObjectKey,
    version: Option<&'a str>,
    size: u64,
}

/// What the scan left to record.
enum Scanned {
    Infected(String),
    Gone,
    /// `clean`, or why the object was not sent.
    Note(String),
}

impl Processing {
    /// Processes the object that arrived at `key`.
    pub async fn process(&self, key: &str) -> Result<Processed, Error> {
        let Some(file_id) = ObjectKey::file_id_of(key) else { return Ok(Processed::Skipped(Skip::NotAnOriginal)) };
        let Some(details) = self.files.details(file_id).await?.filter(|d| d.record.key.as_str() == key) else {
            return Ok(Processed::Skipped(Skip::NoRow));
        };
        let mut row = details.record;
        match row.status {
            FileStatus::Pending => {}
            // Given up on earlier ([`Self::give_up`]), and delivered again (redriven from the
            // DLQ once the cause is fixed): processed as if it had just arrived.
            FileStatus::Failed if details.unprocessed => {
                if !self.files.reopen(file_id).await? {
                    return Ok(Processed::Skipped(Skip::AlreadyProcessed));
                }
                row.status = FileStatus::Pending;
            }
            // An earlier attempt marked it but may have failed before moving the object.
            FileStatus::Quarantined => {
                self.move_to_quarantine(&row.key, row.version_id.as_deref()).await?;
                return Ok(Processed::Skipped(Skip::AlreadyQuarantined));
            }
            // An earlier attempt may have failed after the row became READY but before the
            // public copies were all written: writing them again is harmless.
            FileStatus::Ready if row.labels.visibility == Visibility::Public => {
                let variants = details.image.as_ref().map_or(&[][..], |i| &i.variants[..]);
                self.delivery.publish(&*self.objects, &row, variants).await?;
                return Ok(Processed::Skipped(Skip::AlreadyProcessed));
            }
            _ => return Ok(Processed::Skipped(Skip::AlreadyProcessed)),
        }
        let Some(accepted) = self.settler.accept(file_id, &row.key).await? else {
            return Ok(Processed::Skipped(Skip::Gone));
        };
        let at = Object { key: &row.key, version: accepted.version.as_deref(), size: accepted.size };
        self.check(&row, &at).await
    }

    /// Copies public file `id`'s large original to its public key, as the notifier asked
    /// ([`Delivery::ask_for_large_copy`]), if the file is still public and READY; made private
    /// meanwhile, what landed goes again, also when an earlier try was cut between its copy and
    /// that check.
    pub async fn copy_public_original(&self, id: FileId) -> Result<(), Error> {
        let Some(d) = self.files.details(id).await? else {
            return Ok(()); // gone: its removal took the public copies
        };
        if self.delivery.served_publicly(&d.record).is_none() {
            let copy = d.record.key.public_copy();
            if let Some(copy) = copy
                && self.delivery.objects.size(&copy).await?.is_some()
            {
                self.delivery.unpublish(id).await?;
            }
            return Ok(());
        }
        let copied = self.delivery.publish_large_original(&*self.objects, &*self.files, &d.record).await?;
        tracing::info!(file_id = %id, copied, "public original copied as asked");
        Ok(())
    }

    /// Gives up on the object at `key`, whose last delivery failed too: a settled PENDING row
    /// becomes FAILED and `unprocessed` with [`GAVE_UP`], so its owner sees that it will not
    /// become READY by itself and may delete it (a PENDING one cannot be), and it is not shared
    /// (its bytes were not checked). Answers whether a row was marked; an unsettled row is left
    /// to the sweeper, which releases it once its grant lapses.
    pub async fn give_up(&self, key: &str) -> Result<bool, Error> {
        let Some(file_id) = ObjectKey::file_id_of(key) else { return Ok(false) };
        let Some(details) = self.files.details(file_id).await?.filter(|d| d.record.key.as_str() == key) else {
            return Ok(false);
        };
        if details.record.status != FileStatus::Pending {
            return Ok(false);
        }
        Ok(self.files.give_up(file_id, GAVE_UP).await?)
    }

    async fn check(&self, row: &FileRecord, at: &Object<'_>) -> Result<Processed, Error> {
        let file_id = row.file_id;
        let Some(head) = self.objects.read_prefix(at.key, at.version, SNIFF_LEN).await? else {
            return Ok(Processed::Skipped(Skip::Gone));
        };
        let actual = match sniff(&head) {
            Sniffed::Allowed(actual) if agrees(row.content_type, actual) => actual,
            Sniffed::Allowed(actual) => {
                let why = format!("declared {}, but the bytes are {}", row.content_type.as_str(), actual.as_str());
                return self.quarantine(file_id, at, why).await;
            }
            other => {
                let why = format!("the bytes are {}, which is not allowed", other.describe());
                return self.quarantine(file_id, at, why).await;
            }
        };
        let virus_scan = match self.scan(at).await? {
            None => None,
            Some(Scanned::Infected(name)) => return self.quarantine(file_id, at, format!("ClamAV found {name}")).await,
            Some(Scanned::Gone) => return Ok(Processed::Skipped(Skip::Gone)),
            Some(Scanned::Note(note)) => Some(note),
        };
        let virus_scan = virus_scan.as_deref();
        if actual.class() != TypeClass::Image {
            if self.files.mark_ready(file_id, &Ready { virus_scan, ..Ready::default() }).await?
                && !self.made_ready(row, at, &[]).await?
            {
                return Ok(Processed::Skipped(Skip::AccountErased));
            }
            return Ok(Processed::Checked);
        }
        let rendition = match self.renderer.check_size(at.size) {
            Err(refused) => Err(refused),
            Ok(()) => {
                // Read only once the size is known to be within the limit.
                let Some(bytes) = self.objects.read(at.key, at.version).await? else {
                    return Ok(Processed::Skipped(Skip::Gone));
                };
                self.renderer.render(bytes).await
            }
        };
        match rendition {
            Ok(rendition) => self.store_variants(row, at, rendition, virus_scan).await,
            Err(RenderFailure { disposition: Disposition::Quarantine, reason }) => {
                self.quarantine(file_id, at, reason).await
            }
            Err(RenderFailure { disposition: Disposition::Fail, reason }) => {
                self.files.mark_failed(file_id, &reason).await?;
                tracing::warn!(%reason, "image failed");
                Ok(Processed::Failed(reason))
            }
            Err(RenderFailure { disposition: Disposition::KeepWithoutVariants, reason }) => {
                if self
                    .files
                    .mark_ready(file_id, &Ready { note: Some(&reason), virus_scan, ..Ready::default() })
                    .await?
                    && !self.made_ready(row, at, &[]).await?
                {
                    return Ok(Processed::Skipped(Skip::AccountErased));
                }
                Ok(Processed::KeptWithoutVariants(reason))
            }
        }
    }

    /// `None` without a scanner.
    async fn scan(&self, at: &Object<'_>) -> Result<Option<Scanned>, Error> {
        let Some(scanner) = &self.scanner else { return Ok(None) };
        let Some(mut object) = self.objects.open(at.key, at.version).await? else { return Ok(Some(Scanned::Gone)) };
        Ok(Some(match scanner.scan(object.as_mut()).await? {
            Verdict::Clean => Scanned::Note("clean".into()),
            Verdict::Infected(name) => Scanned::Infected(name),
            Verdict::NotScanned(why) => Scanned::Note(format!("not scanned: {why}")),
        }))
    }

    async fn store_variants(
        &self,
        row: &FileRecord,
        at: &Object<'_>,
        r: crate::ports::Rendition,
        virus_scan: Option<&str>,
    ) -> Result<Processed, Error> {
        let file_id = row.file_id;
        let mut variants = Vec::with_capacity(r.variants.len());
        for v in r.variants {
            let key = ObjectKey::variant(file_id, v.width, v.extension);
            self.objects.put_variant(&key, v.bytes, v.content_type).await?;
            variants.push(VariantInfo {
                width: v.width,
                height: v.height,
                content_type: v.content_type.to_owned(),
                key,
            });
        }
        let count = variants.len();
        let info =
            ImageInfo { width: r.width, height: r.height, frames: r.frames, placeholder: r.placeholder, variants };
        if !self.files.mark_ready(file_id, &Ready { image: Some(&info), virus_scan, ..Ready::default() }).await? {
            // Another run of the same event made it READY first (a duplicate delivery, a
            // replayed upload): the variants under its keys are that run's too, and stay
            // (review 27: they were deleted here, and the READY row listed variants gone for good).
            let now = self.files.details(file_id).await?.map(|d| d.record.status);
            if now == Some(FileStatus::Ready) {
                return Ok(Processed::Skipped(Skip::AlreadyProcessed));
            }
            // Refused meanwhile (over quota, quarantined): its variants must not stay behind.
            self.objects.delete_prefix(&ObjectKey::derived_prefix(file_id)).await?;
            return Ok(Processed::Skipped(Skip::RefusedWhileRendering));
        }
        if !self.made_ready(row, at, &info.variants).await? {
            return Ok(Processed::Skipped(Skip::AccountErased));
        }
        Ok(Processed::Ready { variants: count })
    }

    /// What follows a file's READY: its public copies, then a look at its owner's account
    /// (`false`: closed, and what was made of the file went again). An erase closes the account
    /// before it reads the user's files, and a file made READY after the erase passed it kept
    /// variants and copies no row named (review 24); asked after every write, either the erase
    /// finds them or this finds the erase.
    async fn made_ready(&self, row: &FileRecord, at: &Object<'_>, variants: &[VariantInfo]) -> Result<bool, Error> {
        self.publish(row, at, variants).await?;
        if !self.uploads.account_closed(&row.owner).await? {
            return Ok(true);
        }
        if row.labels.visibility == Visibility::Public {
            self.delivery.unpublish(row.file_id).await?;
        }
        self.objects.delete_prefix(&ObjectKey::derived_prefix(row.file_id)).await?;
        tracing::warn!("the owner's account was closed by an erase meanwhile: what was made of the file went");
        Ok(false)
    }

    /// Writes the public copies of a file that is public now it is READY (the accepted
    /// version, `at`). The row as it is after the READY decides, not `row` as read before
    /// rendering: an owner's change to public that landed meanwhile is written over that read,
    /// and its own publish, from its read, saw no variants (a review: no copies at all). Its
    /// owner may make it private while copying: read again after, and take the copies back if so.
    async fn publish(&self, row: &FileRecord, at: &Object<'_>, variants: &[VariantInfo]) -> Result<(), Error> {
        let Some(now) = self.files.details(row.file_id).await? else { return Ok(()) };
        if now.record.labels.visibility != Visibility::Public {
            return Ok(());
        }
        let ready = FileRecord {
            status: FileStatus::Ready,
            version_id: at.version.map(str::to_owned).or_else(|| now.record.version_id.clone()),
            ..now.record
        };
        self.delivery.publish_checked(&*self.objects, &*self.files, &ready, variants).await?;
        Ok(())
    }

    /// DECISIONS 13: the row first, then the move.
    async fn quarantine(&self, file_id: FileId, at: &Object<'_>, reason: String) -> Result<Processed, Error> {
        self.uploads.reject(file_id, &reason).await?;
        self.move_to_quarantine(at.key, at.version).await?;
        tracing::warn!(%reason, "file quarantined");
        Ok(Processed::Quarantined(reason))
    }

    /// Moves the accepted `version` of `key` (the current object in a bucket without
    /// versioning) to `quarantine/{key}` (one over 1 GiB copied in parts by the S3 adapter). One
    /// larger than [`QUARANTINE_COPY_MAX_BYTES`] is removed without a copy: its copy could
    /// outlast this function's time on every delivery, the refused bytes left under the owner's
    /// key, no longer counted.
    async fn move_to_quarantine(&self, key: &ObjectKey, version: Option<&str>) -> Result<(), Error> {
        if let Some(head) = self.objects.head(key, version).await? {
            let version = head.version_id.as_deref();
            if head.size > QUARANTINE_COPY_MAX_BYTES {
                tracing::warn!(key = key.as_str(), size = head.size, "too large to keep in quarantine: removed");
            } else {
                self.objects.copy_version(key, version, &ObjectKey::quarantined(key.as_str())).await?;
            }
            self.objects.delete_version(key, version).await?;
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
    use matbakh_core::limits::Limits;
    use matbakh_core::metadata::FileDetails;
    use matbakh_core::names::DisplayName;
    use matbakh_core::quota::Usage;
    use matbakh_core::types::ContentType;
    use time::macros::datetime;

    use super::*;
    use crate::fakes::{InMemory, InMemoryObjects};
    use crate::ports::{FileGrants, ObjectStream, PortError, PortResult, RenderedVariant, Rendition, UsageRepo};

    const QUOTA: u64 = 1_000_000;
    /// The first bytes of a JPEG, and of a PDF.
    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0];
    const PDF: &[u8] = b"%PDF-1.7\n";

    /// A pipeline that answers as told, and remembers the bytes it was given.
    struct FakeRenderer {
        answer: Result<Rendition, RenderFailure>,
        max_bytes: u64,
        seen: Mutex<Vec<Vec<u8>>>,
        /// A refusal that lands while rendering (the owner went over quota meanwhile).
        refuse_meanwhile: Mutex<Option<(Arc<InMemory>, FileId)>>,
        /// Another run of the same event that made the row READY while this one rendered.
        ready_meanwhile: Mutex<Option<(Arc<InMemory>, FileId)>>,
        /// Its owner's change to public that lands while rendering.
        public_meanwhile: Mutex<Option<(Arc<InMemory>, FileId)>>,
    }

    impl FakeRenderer {
        fn new(answer: Result<Rendition, RenderFailure>, max_bytes: u64) -> Self {
            FakeRenderer {
                answer,
                max_bytes,
                seen: Mutex::default(),
                refuse_meanwhile: Mutex::default(),
                ready_meanwhile: Mutex::default(),
                public_meanwhile: Mutex::default(),
            }
        }
    }

    #[async_trait]
    impl Renderer for FakeRenderer {
        fn check_size(&self, size: u64) -> Result<(), RenderFailure> {
            match size > self.max_bytes {
                true => Err(RenderFailure { disposition: Disposition::Quarantine, reason: format!("{size} bytes") }),
                false => Ok(()),
            }
        }

        async fn render(&self, bytes: Vec<u8>) -> Result<Rendition, RenderFailure> {
            self.seen.lock().unwrap().push(bytes);
            let refusal = self.refuse_meanwhile.lock().unwrap().take();
            if let Some((repo, id)) = refusal {
                repo.reject(id, "over quota").await.unwrap();
            }
            let other = self.ready_meanwhile.lock().unwrap().take();
            if let Some((repo, id)) = other {
                assert!(repo.mark_ready(id, &Ready::default()).await.unwrap());
            }
            let public = self.public_meanwhile.lock().unwrap().take();
            if let Some((repo, id)) = public {
                let before = repo.get(id).unwrap();
                let mut after = before.record.clone();
                after.labels.visibility = Visibility::Public;
                assert!(crate::ports::FileCatalog::update(&*repo, &before, &after).await.unwrap());
            }
            self.answer.clone()
        }
    }

    /// A scanner with a fixed verdict (`None`: unreachable).
    struct FakeScanner(Option<Verdict>);

    #[async_trait]
    impl VirusScanner for FakeScanner {
        async fn scan(&self, object: &mut dyn ObjectStream) -> PortResult<Verdict> {
            while object.next_chunk().await?.is_some() {}
            self.0.clone().ok_or(PortError::Unavailable { operation: "scan", message: "unreachable".into() })
        }
    }

    fn two_variants() -> Rendition {
        let variant = |width, extension, content_type| RenderedVariant {
            width,
            height: width / 2,
            extension,
            content_type,
            bytes: vec![7; width as usize],
        };
        Rendition {
            width: 800,
            height: 400,
            frames: 1,
            placeholder: "3OcRJYB4d3h/iIeHeEh3eIhw+j2w".into(),
            variants: vec![variant(320, "webp", "image/webp"), variant(640, "jpg", "image/jpeg")],
        }
    }

    struct World {
        repo: Arc<InMemory>,
        objects: Arc<InMemoryObjects>,
        renderer: Arc<FakeRenderer>,
        processing: Processing,
    }

    fn world(answer: Result<Rendition, RenderFailure>, scanner: Option<Verdict>) -> World {
        world_with(FakeRenderer::new(answer, 1 << 20), scanner)
    }

    fn world_with(renderer: FakeRenderer, scanner: Option<Verdict>) -> World {
        let (repo, objects, renderer) =
            (Arc::new(InMemory::new()), Arc::new(InMemoryObjects::new()), Arc::new(renderer));
        let delivery = crate::fakes::delivery(objects.clone(), Arc::new(FixedClock(datetime!(2026-12-05 10:00 UTC))));
        let settler = Settler {
            uploads: repo.clone(),
            objects: objects.clone(),
            delivery: delivery.clone(),
            limits: Limits::default(),
        };
        let processing = Processing {
            files: repo.clone(),
            uploads: repo.clone(),
            objects: objects.clone(),
            settler,
            renderer: renderer.clone(),
            scanner: scanner.map(|v| Arc::new(FakeScanner(Some(v))) as Arc<dyn VirusScanner>),
            delivery,
        };
        World { repo, objects, renderer, processing }
    }

    fn alice() -> UserId {
        UserId::parse("alice").unwrap()
    }

    impl World {
        /// A PENDING upload of `bytes` declared as `declared`, reserved and arrived.
        async fn arrived(&self, declared: &str, bytes: Vec<u8>) -> (FileId, ObjectKey) {
            let at = datetime!(2026-03-01 12:00 UTC);
            let id = FileId::new(1_772_000_000_000, [bytes.len() as u8; 10]);
            let name = DisplayName::parse("dish.jpg").unwrap();
            let record = FileRecord {
                size: bytes.len() as u64,
                ..FileRecord::upload(id, alice(), name, ContentType::parse(declared).unwrap(), at)
            };
            self.repo.reserve(&record, QUOTA).await.unwrap();
            self.objects.put_bytes(&record.key, bytes);
            (id, record.key)
        }

        /// A public JPEG upload, arrived, with a files CDN to take its public copies.
        async fn public_arrival(&mut self) -> (FileId, ObjectKey) {
            self.processing.delivery.cdn = Some(matbakh_core::delivery::FilesCdn::new("https://files.test", None));
            let (id, key) = self.arrived("image/jpeg", jpeg(5000)).await;
            let mut row = self.row(id).record;
            row.labels.visibility = Visibility::Public;
            self.repo.insert(FileDetails::new(row));
            (id, key)
        }

        fn row(&self, id: FileId) -> FileDetails {
            self.repo.get(id).unwrap()
        }

        async fn usage(&self) -> Usage {
            self.repo.usage(&alice()).await.unwrap()
        }
    }

    fn jpeg(len: usize) -> Vec<u8> {
        let mut bytes = JPEG.to_vec();
        bytes.resize(len, 1);
        bytes
    }

    #[tokio::test]
    async fn a_public_upload_gets_public_copies_of_the_accepted_version_and_its_variants() {
        let mut w = world(Ok(two_variants()), None);
        let (id, key) = w.public_arrival().await;
        // a replayed upload wrote other bytes after the accepted ones
        let accepted = w.objects.versions(&key)[0].clone();
        w.objects.put_bytes(&key, b"replayed".to_vec());
        w.repo.pin_version(id, &key, &accepted).await.unwrap();

        assert_eq!(w.processing.process(key.as_str()).await.unwrap(), Processed::Ready { variants: 2 });
        let copies: Vec<String> =
            w.objects.keys_under(&ObjectKey::public_prefix(id)).iter().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(
            copies,
            [format!("p/{id}/320.webp"), format!("p/{id}/640.jpg"), format!("p/{id}/original/dish.jpg")]
        );
        let original = w.objects.bytes(&ObjectKey::from_stored(copies[2].clone())).unwrap();
        assert_eq!(original, jpeg(5000), "the accepted version, not the replayed bytes");

        // a private upload gets none
        let mut w = world(Ok(two_variants()), None);
        w.processing.delivery.cdn = Some(matbakh_core::delivery::FilesCdn::new("https://files.test", None));
        let (id, key) = w.arrived("image/jpeg", jpeg(5000)).await;
        assert_eq!(w.processing.process(key.as_str()).await.unwrap(), Processed::Ready { variants: 2 });
        assert!(w.objects.keys_under(&ObjectKey::public_prefix(id)).is_empty());
    }

    /// A file its owner made public while it was processed (the change landed before its
    /// READY) gets its public copies: the row as it is once READY decides, not the read taken
    /// before rendering (a review: neither the owner's change, which saw no variants, nor
    /// processing, which read it private, made any).
    #[tokio::test]
    async fn a_file_made_public_while_it_was_processed_gets_its_public_copies() {
        let mut w = world(Ok(two_variants()), None);
        w.processing.delivery.cdn = Some(matbakh_core::delivery::FilesCdn::new("https://files.test", None));
        let (id, key) = w.arrived("image/jpeg", jpeg(5000)).await;
        *w.renderer.public_meanwhile.lock().unwrap() = Some((w.repo.clone(), id));
        assert_eq!(w.processing.process(key.as_str()).await.unwrap(), Processed::Ready { variants: 2 });
        assert_eq!(w.row(id).record.labels.visibility, Visibility::Public);
        assert_eq!(w.objects.keys_under(&ObjectKey::public_prefix(id)).len(), 3, "two variants and the original");
    }

    /// Review 24: an erase deletes a step's variants and public copies, then its rows; a file
    /// the thumbnailer made READY in between kept what it had written, with no row naming it,
    /// for good (an erased user's photos, in the bucket). The thumbnailer looks at the account
    /// after its writes: closed by the erase, what it made goes.
    #[tokio::test]
    async fn what_is_made_of_a_file_while_its_owners_account_is_erased_goes_again() {
        use crate::ports::AccountRepo;
        let mut w = world(Ok(two_variants()), None);
        let (id, key) = w.public_arrival().await;
        w.repo.close(&alice(), datetime!(2026-03-01 12:00 UTC).unix_timestamp()).await.unwrap();
        assert_eq!(w.processing.process(key.as_str()).await.unwrap(), Processed::Skipped(Skip::AccountErased));
        assert!(w.objects.keys_under(&ObjectKey::derived_prefix(id)).is_empty(), "no variant left");
        assert!(w.objects.keys_under(&ObjectKey::public_prefix(id)).is_empty(), "no public copy left");
        // Another user's file is made as ever.
        let w = world(Ok(two_variants()), None);
        let (id, key) = w.arrived("image/jpeg", jpeg(5000)).await;
        w.repo.close(&UserId::parse("bob").unwrap(), 1).await.unwrap();
        assert_eq!(w.processing.process(key.as_str()).await.unwrap(), Processed::Ready { variants: 2 });
        assert_eq!(w.objects.keys_under(&ObjectKey::derived_prefix(id)).len(), 2);
    }

    /// The attack (security review, 2026-12-06): a public upload granted without a size (sign
    /// mode's unsized PUT: nothing reserved, the room at signing time allowed, and as many
    /// grants as the budget lets) arrives; the thumbnailer makes it READY and publishes it
    /// before the indexer settles it; the settle refuses it (the quota has no room by then)
    /// and removed the original and the variants, but the public copies stayed, served by the
    /// CDN and counted against no quota. Now the refusal unpublishes the file too.
    #[tokio::test]
    async fn a_public_upload_refused_by_its_settle_after_it_was_published_is_unpublished() {
        use crate::ports::{FileGrants, FileUploads};
        let mut w = world(Ok(two_variants()), None);
        let cdn = Arc::new(crate::fakes::InMemoryCdn::new());
        w.processing.delivery.cdn = Some(matbakh_core::delivery::FilesCdn::new("https://files.test", None));
        w.processing.delivery.edge = Some(cdn.clone());
        w.processing.settler.delivery = w.processing.delivery.clone();
        // The quota all but spent by another upload, settled since the grant.
        let at = datetime!(2026-03-01 12:00 UTC);
        let name = || DisplayName::parse("dish.jpg").unwrap();
        let jpg = || ContentType::parse("image/jpeg").unwrap();
        let quota = w.processing.settler.limits.user_quota_bytes;
        let other = FileRecord {
            size: quota - 1000,
            ..FileRecord::upload(FileId::new(1_772_000_000_000, [9; 10]), alice(), name(), jpg(), at)
        };
        w.repo.reserve(&other, quota).await.unwrap();
        // The unsized grant: a public row that reserves nothing.
        let id = FileId::new(1_772_000_000_000, [5; 10]);
        let mut record = FileRecord { size: 5000, ..FileRecord::upload(id, alice(), name(), jpg(), at) };
        record.labels.visibility = Visibility::Public;
        w.repo.put_unreserved(&record).await.unwrap();
        w.objects.put_bytes(&record.key, jpeg(5000));

        assert_eq!(w.processing.process(record.key.as_str()).await.unwrap(), Processed::Ready { variants: 2 });
        assert_eq!(w.objects.keys_under(&ObjectKey::public_prefix(id)).len(), 3, "published");
        let (settled, _) = w.processing.settler.settle(id, &record.key).await.unwrap();
        assert!(matches!(settled, crate::settle::Settled::Refused { .. }), "{settled:?}");
        assert!(w.objects.keys_under(&ObjectKey::public_prefix(id)).is_empty(), "its public copies are gone");
        assert_eq!(cdn.invalidations(), [vec![format!("/p/{id}/*")]], "and the CDN forgets them");
    }

    #[tokio::test]
    async fn an_image_gets_its_variants_and_becomes_ready_once() {
        let w = world(Ok(two_variants()), None);
        let (id, key) = w.arrived("image/jpeg", jpeg(5000)).await;
        assert_eq!(w.processing.process(key.as_str()).await.unwrap(), Processed::Ready { variants: 2 });
        let row = w.row(id);
        assert_eq!(row.record.status, FileStatus::Ready);
        let image = row.image.unwrap();
        assert_eq!((image.width, image.height, image.variants.len()), (800, 400, 2));
        let webp = ObjectKey::variant(id, 320, "webp");
        assert_eq!(image.variants[0].key, webp);
        assert_eq!(w.objects.bytes(&webp).unwrap(), vec![7; 320]);
        assert_eq!(w.objects.keys_under(&ObjectKey::derived_prefix(id)).len(), 2);
        assert_eq!(w.renderer.seen.lock().unwrap().as_slice(), [jpeg(5000)]);
        // A redelivered event changes nothing.
        assert_eq!(w.processing.process(key.as_str()).await.unwrap(), Processed::Skipped(Skip::AlreadyProcessed));
        assert_eq!(w.renderer.seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn only_the_accepted_version_is_rendered_and_a_replayed_upload_is_removed() {
        let w = world(Ok(two_variants()), None);
        let (id, key) = w.arrived("image/jpeg", jpeg(5000)).await;
        let first = w.objects.versions(&key);
        // The indexer pinned the first version; then the form was posted again.
        w.processing.settler.accept(id, &key).await.unwrap();
        w.objects.put_bytes(&key, jpeg(6000));
        assert_eq!(w.processing.process(key.as_str()).await.unwrap(), Processed::Ready { variants: 2 });
        assert_eq!(w.renderer.seen.lock().unwrap().as_slice(), [jpeg(5000)]);
        assert_eq!(w.objects.versions(&key), first);
    }

    #[tokio::test]
    async fn bytes_that_contradict_the_declared_type_are_quarantined_and_leave_the_quota() {
        for (declared, bytes, reason) in [
            ("image/jpeg", PDF.to_vec(), "declared image/jpeg, but the bytes are application/pdf"),
            ("image/jpeg", b"\x7fELF\x02\x01".to_vec(), "the bytes are ELF executable, which is not allowed"),
        ] {
            let w = world(Ok(two_variants()), None);
            let (id, key) = w.arrived(declared, bytes.clone()).await;
            assert_eq!(w.processing.process(key.as_str()).await.unwrap(), Processed::Quarantined(reason.into()));
            let row = w.row(id);
            assert_eq!((row.record.status, row.reason.as_deref()), (FileStatus::Quarantined, Some(reason)));
            assert!(!w.objects.visible(&key), "the original left its key");
            assert_eq!(w.objects.bytes(&ObjectKey::quarantined(key.as_str())), Some(bytes));
            assert_eq!(w.usage().await.charged, 0);
            assert!(w.renderer.seen.lock().unwrap().is_empty(), "never decoded");
            // Redelivered: the move is finished, nothing else happens.
            assert_eq!(w.processing.process(key.as_str()).await.unwrap(), Processed::Skipped(Skip::AlreadyQuarantined));
        }
    }

    #[tokio::test]
    async fn an_allowed_document_is_checked_and_ready_without_variants() {
        let w = world(Ok(two_variants()), Some(Verdict::Clean));
        let (id, key) = w.arrived("application/pdf", PDF.to_vec()).await;
        assert_eq!(w.processing.process(key.as_str()).await.unwrap(), Processed::Checked);
        assert_eq!(w.row(id).record.status, FileStatus::Ready);
        assert_eq!(w.repo.virus_scan(id).as_deref(), Some("clean"));
        assert!(w.objects.keys_under(&ObjectKey::derived_prefix(id)).is_empty());
    }

    #[tokio::test]
    async fn the_scanner_decides_before_anything_is_rendered() {
        let w = world(Ok(two_variants()), Some(Verdict::Infected("Eicar-Test".into())));
        let (id, key) = w.arrived("image/jpeg", jpeg(3000)).await;
        let outcome = w.processing.process(key.as_str()).await.unwrap();
        assert_eq!(outcome, Processed::Quarantined("ClamAV found Eicar-Test".into()));
        assert_eq!(w.row(id).record.status, FileStatus::Quarantined);
        assert!(w.renderer.seen.lock().unwrap().is_empty());

        let w = world(Ok(two_variants()), Some(Verdict::NotScanned("over CLAMD_MAX_BYTES (10 bytes)".into())));
        let (id, key) = w.arrived("image/jpeg", jpeg(3000)).await;
        assert_eq!(w.processing.process(key.as_str()).await.unwrap(), Processed::Ready { variants: 2 });
        assert_eq!(w.repo.virus_scan(id).as_deref(), Some("not scanned: over CLAMD_MAX_BYTES (10 bytes)"));

        // No verdict: an error (the event comes back), the row untouched.
        let mut w = world(Ok(two_variants()), None);
        w.processing.scanner = Some(Arc::new(FakeScanner(None)));
        let (id, key) = w.arrived("image/jpeg", jpeg(3000)).await;
        let err = w.processing.process(key.as_str()).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert_eq!(w.row(id).record.status, FileStatus::Pending);
    }

    /// Its last delivery failed too (here: the scanner never answered): the file is FAILED and
    /// unprocessed, so its owner may delete it, and a redrive once the cause is fixed makes it
    /// READY. An upload never settled is the sweeper's and stays PENDING.
    #[tokio::test]
    async fn a_file_given_up_on_is_failed_until_a_redelivery_processes_it() {
        let mut w = world(Ok(two_variants()), None);
        w.processing.scanner = Some(Arc::new(FakeScanner(None)));
        let (id, key) = w.arrived("image/jpeg", jpeg(3000)).await;
        w.processing.settler.settle(id, &key).await.unwrap(); // the indexer's part
        assert!(w.processing.process(key.as_str()).await.unwrap_err().is_retryable());
        assert!(w.processing.give_up(key.as_str()).await.unwrap());
        let row = w.row(id);
        assert_eq!(
            (row.record.status, row.reason.as_deref(), row.unprocessed),
            (FileStatus::Failed, Some(GAVE_UP), true)
        );
        assert!(!w.processing.give_up(key.as_str()).await.unwrap(), "once");
        assert_eq!(w.usage().await.charged, 3000, "its bytes are its owner's still");

        w.processing.scanner = Some(Arc::new(FakeScanner(Some(Verdict::Clean))));
        assert_eq!(w.processing.process(key.as_str()).await.unwrap(), Processed::Ready { variants: 2 });
        let row = w.row(id);
        assert_eq!((row.record.status, row.reason, row.unprocessed), (FileStatus::Ready, None, false));
        assert_eq!(w.repo.virus_scan(id).as_deref(), Some("clean"));
        assert!(!w.processing.give_up(key.as_str()).await.unwrap(), "a READY file is not given up");

        // Arrived, but the indexer has not settled it.
        let (id, key) = w.arrived("image/jpeg", jpeg(2000)).await;
        assert!(!w.processing.give_up(key.as_str()).await.unwrap());
        assert_eq!(w.row(id).record.status, FileStatus::Pending);
        // A failed image (checked, only not rendered) is not reopened by a redelivery.
        let w = world(Err(RenderFailure { disposition: Disposition::Fail, reason: "truncated".into() }), None);
        let (id, key) = w.arrived("image/jpeg", jpeg(3000)).await;
        assert_eq!(w.processing.process(key.as_str()).await.unwrap(), Processed::Failed("truncated".into()));
        assert_eq!(w.processing.process(key.as_str()).await.unwrap(), Processed::Skipped(Skip::AlreadyProcessed));
        assert!(!w.row(id).unprocessed);
    }

    #[tokio::test]
    async fn what_the_pipeline_refuses_is_failed_kept_or_quarantined_as_it_says() {
        let refused = |disposition, reason: &str| Err(RenderFailure { disposition, reason: reason.into() });
        let w = world(refused(Disposition::Fail, "truncated"), None);
        let (id, key) = w.arrived("image/jpeg", jpeg(3000)).await;
        assert_eq!(w.processing.process(key.as_str()).await.unwrap(), Processed::Failed("truncated".into()));
        let row = w.row(id);
        assert_eq!((row.record.status, row.reason.as_deref()), (FileStatus::Failed, Some("truncated")));
        assert!(w.objects.visible(&key), "a failed image stays");

        let w = world(refused(Disposition::KeepWithoutVariants, "no decoder for HEIC"), None);
        let (id, key) = w.arrived("image/jpeg", jpeg(3000)).await;
        let outcome = w.processing.process(key.as_str()).await.unwrap();
        assert_eq!(outcome, Processed::KeptWithoutVariants("no decoder for HEIC".into()));
        let row = w.row(id);
        assert_eq!((row.record.status, row.reason.as_deref()), (FileStatus::Ready, Some("no decoder for HEIC")));

        let w = world(refused(Disposition::Quarantine, "declares 90000x90000 pixels"), None);
        let (id, key) = w.arrived("image/jpeg", jpeg(3000)).await;
        assert!(matches!(w.processing.process(key.as_str()).await.unwrap(), Processed::Quarantined(_)));
        assert_eq!(w.row(id).record.status, FileStatus::Quarantined);
        assert!(!w.objects.visible(&key));
    }

    /// A refused original larger than is kept in quarantine (its copy could outlast every
    /// delivery, its bytes left under the owner's key) is removed without a copy.
    #[tokio::test]
    async fn a_quarantined_original_too_large_to_keep_is_removed_without_a_copy() {
        let w = world(Ok(two_variants()), None);
        let id = FileId::new(1_772_000_000_000, [7; 10]);
        let video = ContentType::parse("video/mp4").unwrap();
        let at = datetime!(2026-03-01 12:00 UTC);
        let record = FileRecord {
            status: FileStatus::Quarantined,
            ..FileRecord::upload(id, alice(), DisplayName::parse("long-take.mp4").unwrap(), video, at)
        };
        let key = record.key.clone();
        w.repo.insert(FileDetails::new(record));
        w.objects.put(&key, QUARANTINE_COPY_MAX_BYTES + 1);
        let outcome = w.processing.process(key.as_str()).await.unwrap();
        assert_eq!(outcome, Processed::Skipped(Skip::AlreadyQuarantined));
        assert!(!w.objects.visible(&key), "the refused bytes left the owner's key");
        assert!(w.objects.keys_under("quarantine/").is_empty(), "no copy");
    }

    #[tokio::test]
    async fn a_source_over_the_size_limit_is_quarantined_without_being_read() {
        let w = world_with(FakeRenderer::new(Ok(two_variants()), 2999), None);
        let (id, key) = w.arrived("image/jpeg", jpeg(3000)).await;
        assert_eq!(w.processing.process(key.as_str()).await.unwrap(), Processed::Quarantined("3000 bytes".into()));
        assert_eq!(w.row(id).record.status, FileStatus::Quarantined);
        assert!(w.renderer.seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_row_refused_while_rendering_keeps_no_variants() {
        let w = world(Ok(two_variants()), None);
        let (id, key) = w.arrived("image/jpeg", jpeg(3000)).await;
        *w.renderer.refuse_meanwhile.lock().unwrap() = Some((w.repo.clone(), id));
        let outcome = w.processing.process(key.as_str()).await.unwrap();
        assert_eq!(outcome, Processed::Skipped(Skip::RefusedWhileRendering));
        assert!(w.objects.keys_under(&ObjectKey::derived_prefix(id)).is_empty());
        assert_eq!(w.row(id).record.status, FileStatus::Quarantined);
    }

    /// Review 27: two runs of one event (a duplicate delivery, a replayed upload) render the
    /// same version into the same variant keys; the one that lost the race to READY deleted
    /// them, and the READY row listed variants gone for good.
    #[tokio::test]
    async fn a_run_that_loses_the_race_to_ready_leaves_the_variants_it_shares_with_the_winner() {
        let w = world(Ok(two_variants()), None);
        let (id, key) = w.arrived("image/jpeg", jpeg(3000)).await;
        *w.renderer.ready_meanwhile.lock().unwrap() = Some((w.repo.clone(), id));
        let outcome = w.processing.process(key.as_str()).await.unwrap();
        assert_eq!(outcome, Processed::Skipped(Skip::AlreadyProcessed));
        assert_eq!(w.objects.keys_under(&ObjectKey::derived_prefix(id)).len(), 2, "the variants stay");
        assert_eq!(w.row(id).record.status, FileStatus::Ready);
    }

    #[tokio::test]
    async fn objects_that_are_no_files_are_skipped() {
        let w = world(Ok(two_variants()), None);
        let skipped = |s| Ok::<_, ()>(Processed::Skipped(s));
        assert_eq!(w.processing.process("exports/alice/x.zip").await.map_err(|_| ()), skipped(Skip::NotAnOriginal));
        let (id, key) = w.arrived("image/jpeg", jpeg(3000)).await;
        let other = format!("users/bob/{id}/dish.jpg");
        assert_eq!(w.processing.process(&other).await.map_err(|_| ()), skipped(Skip::NoRow));
        w.objects.delete_version(&key, None).await.unwrap();
        assert_eq!(w.processing.process(key.as_str()).await.map_err(|_| ()), skipped(Skip::Gone));
    }
}
