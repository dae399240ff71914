//! `thumbnailer`: makes responsive variants of uploaded images, and quarantines files that are
//! not what they claim to be.
//!
//! Triggered by SQS (the thumbnailer queue, fed by the bucket's SNS topic beside the indexer's),
//! with partial batch responses. For each object created under `users/{sub}/{fileId}/` whose
//! row is PENDING, it sniffs the first bytes:
//! - not on the allow-list, or contradicting the declared type: the row is marked QUARANTINED
//!   with the reason (and its bytes leave the owner's quota), then the object is copied to
//!   `quarantine/{key}` and that version deleted (DECISIONS 13, in that order);
//! - an allowed non-image (PDF, video, ZIP): READY, no variants (DECISIONS 11);
//! - an image: the `imaging` pipeline (bounded decode, orientation, sRGB) writes
//!   `derived/{fileId}/{width}.{avif,webp,jpg}` (immutable, metadata-free) and the row becomes
//!   READY with dimensions, placeholder and the variant list; a broken image becomes FAILED, a
//!   decompression bomb QUARANTINED, a HEIC (no decoder here) READY without variants.
//!
//! With `CLAMD_ADDR` set, every allowed file is first streamed to ClamAV's clamd (`clamd`); a
//! match is quarantined with the signature's name, and the row records `virusScan`.
//!
//! A record fails (and comes back, then goes to the DLQ) only when retrying can help: AWS errors,
//! a scanner that gave no verdict, and malformed messages. Everything about the file itself is recorded on its row instead.
//! Redelivered events find the row no longer PENDING and change nothing.
//!
//! It reads only the key's accepted version (DECISIONS 28, `matbakh_app::settle`: pinned by
//! whichever of the indexer and this function sees the object first), so bytes written to the
//! key again with a replayed upload URL are never checked, scanned or turned into variants.
//!
//! Reads: the object (a range first), the file row. Writes: variants, the row, the usage
//! counter (quarantine), `quarantine/` copies and deletes of quarantined versions.

pub mod clamd;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use clamd::{Clamd, ScanError, Verdict};
use matbakh_api::Services;
use matbakh_api::metrics::{self, Unit};
use matbakh_aws::AwsError;
use matbakh_aws::table::Ready;
use matbakh_core::events::{ObjectChange, ObjectEvent};
use matbakh_core::ids::{FileId, ObjectKey};
use matbakh_core::metadata::{FileRecord, FileStatus, ImageInfo, VariantInfo};
use matbakh_core::sniff::{SNIFF_LEN, Sniffed, agrees, sniff};
use matbakh_core::types::TypeClass;
use matbakh_imaging::{Disposition, ImageError, ImageLimits, Quality, Rendered};
use tracing::Instrument;

/// The function's state: the shared services plus the image settings.
#[derive(Clone)]
pub struct Thumbnailer {
    pub services: Services,
    pub limits: ImageLimits,
    pub quality: Quality,
    /// ClamAV, when configured (`CLAMD_ADDR`).
    pub scanner: Option<Clamd>,
}

/// Why one record failed: it is reported so the record comes back (or, after five tries, waits
/// in the DLQ with its alarm; malformed messages too: `matbakh_api::sqs`).
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// Pinning the accepted version failed (a port failed).
    #[error(transparent)]
    Accept(#[from] matbakh_app::Error),
    #[error("virus scan: {0}")]
    Scan(#[from] ScanError),
}

/// What became of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ready {
        variants: usize,
    },
    /// Allowed and checked, but no variants (a document, a video, an image without decoder).
    ReadyWithoutVariants,
    Quarantined(String),
    Failed(String),
    /// Nothing to do (not a user original, no row, already processed, gone).
    Skipped(&'static str),
}

/// Handles one batch; the answer names the records to deliver again.
pub async fn handle(t: &Thumbnailer, event: SqsEvent) -> SqsBatchResponse {
    matbakh_lambda::sqs::for_each_record(event, |events| async move { handle_events(t, &events).await }).await
}

async fn handle_events(t: &Thumbnailer, events: &[ObjectEvent]) -> Result<(), ThumbnailError> {
    for event in events.iter().filter(|e| e.change == ObjectChange::Created) {
        let outcome = process(t, &event.key).await?;
        tracing::info!(key_len = event.key.len(), ?outcome, "object processed");
    }
    Ok(())
}

/// Processes the object at `key` (public for tests and the local tools).
pub async fn process(t: &Thumbnailer, key: &str) -> Result<Outcome, ThumbnailError> {
    let Some(file_id) = ObjectKey::file_id_of(key) else {
        return Ok(Outcome::Skipped("not a user original"));
    };
    process_file(t, file_id, key).instrument(tracing::info_span!("thumbnail", %file_id)).await
}

async fn process_file(t: &Thumbnailer, file_id: FileId, key: &str) -> Result<Outcome, ThumbnailError> {
    let st = &t.services;
    let Some(row) = st.table.get_file(file_id).await?.filter(|r| r.key.as_str() == key) else {
        return Ok(Outcome::Skipped("no row for this key"));
    };
    match row.status {
        FileStatus::Pending => {}
        // An earlier attempt marked it but may have failed before moving the object.
        FileStatus::Quarantined => {
            move_to_quarantine(t, key, row.version_id.as_deref()).await?;
            return Ok(Outcome::Skipped("already quarantined"));
        }
        _ => return Ok(Outcome::Skipped("already processed")),
    }
    let Some(accepted) = st.settler().accept(file_id, &ObjectKey::from_stored(key.to_owned())).await? else {
        return Ok(Outcome::Skipped("object gone"));
    };
    let at = Object { key, version: accepted.version.as_deref(), size: accepted.size };
    let Some(head) = st.store.get_head(key, at.version, SNIFF_LEN).await? else {
        return Ok(Outcome::Skipped("object gone"));
    };
    let actual = match sniff(&head) {
        Sniffed::Allowed(actual) if agrees(row.content_type, actual) => actual,
        Sniffed::Allowed(actual) => {
            let why = format!("declared {}, but the bytes are {}", row.content_type.as_str(), actual.as_str());
            return Ok(quarantine(t, file_id, &at, why).await?);
        }
        other => {
            let why = format!("the bytes are {}, which is not allowed", other.describe());
            return Ok(quarantine(t, file_id, &at, why).await?);
        }
    };
    let virus_scan = match &t.scanner {
        None => None,
        Some(scanner) => match scan(t, scanner, &at).await? {
            Scanned::Infected(name) => return Ok(quarantine(t, file_id, &at, format!("ClamAV found {name}")).await?),
            Scanned::Gone => return Ok(Outcome::Skipped("object gone")),
            Scanned::Note(note) => Some(note),
        },
    };
    let virus_scan = virus_scan.as_deref();
    if actual.class() != TypeClass::Image {
        st.table.mark_ready(file_id, &Ready { virus_scan, ..Ready::default() }).await?;
        metrics::emit("thumbnail", &[("FilesCheckedWithoutVariants", 1, Unit::Count)]);
        return Ok(Outcome::ReadyWithoutVariants);
    }
    Ok(render_and_store(t, &row, &at, virus_scan).await?)
}

/// The version of a file's key that this run reads: the accepted one.
struct Object<'a> {
    key: &'a str,
    version: Option<&'a str>,
    size: u64,
}

enum Scanned {
    Infected(String),
    Gone,
    /// What the row records: `clean`, or why the object was not sent.
    Note(String),
}

async fn scan(t: &Thumbnailer, scanner: &Clamd, at: &Object<'_>) -> Result<Scanned, ThumbnailError> {
    let started = std::time::Instant::now();
    let Some(mut object) = t.services.store.open_object(at.key, at.version).await? else { return Ok(Scanned::Gone) };
    if object.size > scanner.max_bytes {
        tracing::warn!(size = object.size, limit = scanner.max_bytes, "too large for the virus scan");
        metrics::emit("thumbnail", &[("ScansSkippedTooLarge", 1, Unit::Count)]);
        return Ok(Scanned::Note(format!("not scanned: over CLAMD_MAX_BYTES ({} bytes)", scanner.max_bytes)));
    }
    let verdict = scanner.scan(&mut object).await?;
    let millis = started.elapsed().as_millis() as u64;
    metrics::emit("thumbnail", &[("ScanMilliseconds", millis, Unit::Milliseconds)]);
    Ok(match verdict {
        Verdict::Clean => Scanned::Note("clean".into()),
        Verdict::Infected(name) => Scanned::Infected(name),
    })
}

async fn render_and_store(
    t: &Thumbnailer,
    row: &FileRecord,
    at: &Object<'_>,
    virus_scan: Option<&str>,
) -> Result<Outcome, AwsError> {
    let st = &t.services;
    let file_id = row.file_id;
    // Refuse an oversized source before reading it into memory.
    let rendered = if at.size > t.limits.max_bytes {
        Err(ImageError::TooManyBytes { size: at.size, limit: t.limits.max_bytes })
    } else {
        let Some((bytes, _)) = st.store.get_object(at.key, at.version).await? else {
            return Ok(Outcome::Skipped("object gone"));
        };
        let (limits, quality) = (t.limits, t.quality);
        let started = std::time::Instant::now();
        let rendered = tokio::task::spawn_blocking(move || matbakh_imaging::render(&bytes, &limits, &quality))
            .await
            .unwrap_or_else(|e| Err(ImageError::Encode(format!("the render task ended: {e}"))));
        let millis = started.elapsed().as_millis() as u64;
        metrics::emit("thumbnail", &[("RenderMilliseconds", millis, Unit::Milliseconds)]);
        rendered
    };
    match rendered {
        Ok(rendered) => store_variants(t, file_id, rendered, virus_scan).await,
        Err(e) => match e.disposition() {
            Disposition::Quarantine => quarantine(t, file_id, at, e.to_string()).await,
            Disposition::Fail => {
                st.table.mark_failed(file_id, &e.to_string()).await?;
                tracing::warn!(reason = %e, "image failed");
                metrics::emit("thumbnail", &[("ImagesFailed", 1, Unit::Count)]);
                Ok(Outcome::Failed(e.to_string()))
            }
            Disposition::KeepWithoutVariants => {
                let note = e.to_string();
                st.table.mark_ready(file_id, &Ready { note: Some(&note), virus_scan, ..Ready::default() }).await?;
                Ok(Outcome::ReadyWithoutVariants)
            }
        },
    }
}

async fn store_variants(
    t: &Thumbnailer,
    file_id: FileId,
    r: Rendered,
    virus_scan: Option<&str>,
) -> Result<Outcome, AwsError> {
    let st = &t.services;
    let mut variants = Vec::with_capacity(r.variants.len());
    for v in r.variants {
        let key = ObjectKey::variant(file_id, v.width, v.format.extension());
        st.store.put_derived(&key, v.bytes, v.format.content_type()).await?;
        variants.push(VariantInfo {
            width: v.width,
            height: v.height,
            content_type: v.format.content_type().to_owned(),
            key,
        });
    }
    let count = variants.len();
    let info = ImageInfo { width: r.width, height: r.height, frames: r.frames, placeholder: r.placeholder, variants };
    if !st.table.mark_ready(file_id, &Ready { image: Some(&info), virus_scan, ..Ready::default() }).await? {
        // Refused meanwhile (over quota, quarantined): its variants must not stay behind.
        st.store.delete_prefix(&ObjectKey::derived_prefix(file_id)).await?;
        return Ok(Outcome::Skipped("refused while rendering"));
    }
    metrics::emit("thumbnail", &[("ImagesReady", 1, Unit::Count), ("VariantsWritten", count as u64, Unit::Count)]);
    Ok(Outcome::Ready { variants: count })
}

/// DECISIONS 13: the row is marked first (so the ObjectRemoved event of the move is known as a
/// system move), then the object is copied to `quarantine/` and the original version deleted.
async fn quarantine(t: &Thumbnailer, file_id: FileId, at: &Object<'_>, reason: String) -> Result<Outcome, AwsError> {
    t.services.table.quarantine(file_id, &reason).await?;
    move_to_quarantine(t, at.key, at.version).await?;
    tracing::warn!(%reason, "file quarantined");
    metrics::emit("thumbnail", &[("FilesQuarantined", 1, Unit::Count)]);
    Ok(Outcome::Quarantined(reason))
}

/// Moves the accepted `version` of `key` (the current object in a bucket without versioning).
async fn move_to_quarantine(t: &Thumbnailer, key: &str, version: Option<&str>) -> Result<(), AwsError> {
    let store = &t.services.store;
    if let Some(head) = store.head_object(key, version).await? {
        store.copy_version(key, head.version_id.as_deref(), &ObjectKey::quarantined(key)).await?;
        store.delete_version(key, head.version_id.as_deref()).await?;
    }
    Ok(())
}
